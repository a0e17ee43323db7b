"""Does vmlab agree with this kernel?  (notebook 08)

Predicted page faults (the engine replaying each program's full valgrind lackey recording
with its mappings and page-cache state, :func:`vmlab.model.recorded.scenario_for`) against
the faults the kernel itself took running the same program natively (``perf stat``), with
unlimited memory and under a sweep of cgroup memory limits.

=============================  =============================================================
:func:`record_program`         record one program of :data:`vmlab.measure.PROGRAMS` with
                               lackey and strip it (the shipped ``lackey_<name>.vmt``)
:func:`load_recordings`        the shipped (or freshly made) stripped recordings
:func:`predict`                the engine's counts for a recording, unlimited or limited
:func:`agreement_table`        predicted against measured, unlimited memory, per program
:func:`limit_table`            predicted against measured major faults under each limit
:func:`knee_bytes`             the largest limit where major faults have started to rise
:func:`fault_breakdown`        a prediction's faults by VMA kind and fault case
=============================  =============================================================

Predictions come from lackey recordings only, never from perf's own fault records: replaying
the kernel's faults to predict the kernel's fault count would be circular.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import VmlabError
from ..measure import MB, PROGRAMS, make_inputs

#: Where the shipped measurements and recordings live.
DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "native"
#: The filter of the shipped stripped recordings (:mod:`vmlab.trace.strip`).
FILTER_PAGES = 32


def program_command(name):
    """``argv`` of program ``name`` of :data:`vmlab.measure.PROGRAMS`, relative to its input
    folder (as measured)."""
    for n, template, _what, _sweep in PROGRAMS:
        if n == name:
            return [x.replace("{dir}", ".") for x in template]
    raise VmlabError(f"no program {name!r}; programs are {[p[0] for p in PROGRAMS]}")


def record_program(name, out_dir, work_dir=None):
    """Record program ``name`` under valgrind lackey (:func:`vmlab.trace.record.record_lackey`,
    after one warm run so that the page cache is as the measured unlimited runs see it) and
    write it stripped (:func:`vmlab.trace.strip.strip_trace`) as ``out_dir/lackey_<name>.vmt``.
    The full recording goes to a temporary file next to it.  Returns ``(path, info)``."""
    from ..trace.native import open_trace
    from ..trace.record import record_lackey
    from ..trace.strip import strip_trace

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    own = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="vmlab-inputs-")) if own else Path(work_dir)
    try:
        if own:
            make_inputs(work)
        cmd = program_command(name)
        subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with tempfile.TemporaryDirectory(prefix="vmlab-lackey-", dir=out_dir) as tmp:
            full, info = record_lackey(cmd, Path(tmp) / "full.vmt", cwd=work, quiet=True,
                                       stdout=subprocess.DEVNULL)
            path, sinfo = strip_trace(open_trace(full), out_dir / f"lackey_{name}.vmt",
                                      filter_pages=FILTER_PAGES)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    os.chmod(path, 0o644)
    return path, {**info, **sinfo}
