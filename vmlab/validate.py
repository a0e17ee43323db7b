"""``vmlab validate``: predicted against measured page faults of a real program.

1. Record the program with lackey (:func:`vmlab.trace.record.record_lackey`): every access,
   the mappings of the run and the page-cache state of its files.
2. Predict its faults with the engine, replaying the recording like the kernel
   (:func:`vmlab.model.recorded.scenario_for`: VMAs with their prot, sharing, file and offset,
   the page cache the recording started from, the kernel fault model, fault-around,
   readahead, the two-list replacement), memory unlimited or ``memory_bytes`` = the limit
   of the sweep, from the page cache the native runs start from: the cold snapshot when
   they are cold, else the cache as the recording left it (:func:`residency_now`); the
   faults on valgrind's own pages are left out (:data:`VALGRIND_OBJECTS`).
3. Measure the program natively (:mod:`vmlab.measure`): ``perf stat -e
   page-faults,major-faults`` with unlimited memory and, as root with a cgroup memory
   controller, under each memory limit of the sweep.  Every run starts from the page cache
   the prediction starts from (:func:`vmlab.measure.measure_program` with ``hold``): the
   pages of that cache are held resident, the others of the program's and the recording's
   files dropped before each run, so a later run does not find what an earlier one read.
4. Put the two side by side with their ratio (:func:`format_table`).

Notebook 08 does this for seven programs and explains each difference by mechanism.  The
measured side is exact for this machine.
"""
from __future__ import annotations

import math
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .errors import VmlabError

#: Objects only a valgrind run has (its preloaded core and the tool's redirection page).
VALGRIND_OBJECTS = ("vgpreload_core-amd64-linux.so", "lackey-amd64-linux")


def cold_residency(trace, cold_cache):
    """``{file identity: bool array}``: the page-cache state of a cold run for each file of
    ``cold_cache`` (:func:`vmlab.measure.cold_page_cache`, by real path: the resident page
    runs after the drop), for :func:`vmlab.model.recorded.scenario_for`'s ``residency``."""
    from .model.recorded import file_names

    ps = int(trace.page_size)
    out = {}
    for name, info in zip(file_names(trace.mappings), trace.mappings.files):
        ranges = cold_cache.get(os.path.realpath(info.path))
        if ranges is None:
            continue
        res = np.zeros(-(-int(info.size_bytes) // ps), bool)
        for a, b in ranges:
            res[a:b] = True
        out[name] = res
    return out


def residency_now(trace):
    """``{file identity: bool array}``: the page-cache state now (``mincore``, no page read:
    :func:`vmlab.trace.mappings.residency`) of each recorded file still at its recorded path
    with its recorded device and inode, for :func:`vmlab.model.recorded.preload_for`'s
    ``residency``.

    The recording changes the cache it measured: valgrind reads the ELF files it loads
    (their symbol tables too) and the program under it reads what it reads natively, so the
    native runs after it start from this state, not from the recording's snapshot (a libc
    page that was not resident before the recording was a predicted major fault that no
    measured run took)."""
    return {name: resident for name, _, resident in _recorded_files_now(trace)}


def _recorded_files_now(trace):
    """``(file identity, real path, bool array resident now)`` of each recorded file still
    at its recorded path with its recorded device and inode."""
    from .model.recorded import file_names
    from .trace.mappings import file_info

    ps = int(trace.page_size)
    if trace.mappings is None:
        return []
    out = []
    for name, info in zip(file_names(trace.mappings), trace.mappings.files):
        now = file_info(info.path, "at_open", ps)
        if (now.dev, now.inode) == (info.dev, info.inode) and now.resident is not None:
            out.append((name, os.path.realpath(info.path), now.resident))
    return out


def predict(trace, memory_bytes=None, cold_cache=None, residency=None, **overrides):
    """The engine's counts for a recorded trace (:func:`vmlab.model.recorded.scenario_for`,
    every mechanism the engine runs): ``page_faults`` and ``major_faults`` without the faults
    on valgrind's own pages (:data:`VALGRIND_OBJECTS`, counted apart in
    ``valgrind_faults``: a native run does not have them), ``pages_read`` (I/O of faults and
    readahead, in pages), ``oom`` (the run ended in an OOM), ``left_out`` (what the replay
    does not know, :func:`~vmlab.model.recorded.runnable`).

    ``memory_bytes``: the cgroup limit (``None``: unlimited).  ``cold_cache``: the page cache
    of a cold run (``{path: page ranges}``) instead of the recording's warm one;
    ``residency``: ``{file identity: bool array}`` (:func:`residency_now`) replacing the
    recorded state of those files."""
    from .engine.prepare import RUNS_KNOBS
    from .model.recorded import runnable, scenario_for
    from .simulation import simulate

    if cold_cache is not None:
        residency = cold_residency(trace, cold_cache)
    sc, left = runnable(scenario_for(trace, memory_bytes=memory_bytes, residency=residency,
                                     **overrides), RUNS_KNOBS)
    res = simulate(sc)
    s = res.summary
    f = res.faults
    oom = bool((res.threads["state"] == "oom").any())
    vg = f["vma_name"].astype(str).str.startswith(VALGRIND_OBJECTS)
    return {"page_faults": int(s["n_faults"]) - int(vg.sum()),
            "major_faults": int(s["n_major"]) - int((vg & f["major"]).sum()),
            "valgrind_faults": int(vg.sum()), "pages_read": int(res.raw.counters["n_read_pages"]),
            "oom": oom, "left_out": left}


def _ratio(p, m):
    if m in (None, 0) or p is None:
        return math.nan
    return p / m


def _check_options(runs, limits_mb, keep):
    """``runs``, ``limits_mb`` and ``keep`` refused, before anything runs, unless they can mean
    what was typed: one run or more, limits that are positive finite numbers of MB (or
    ``"auto"``), a kept trace named ``.vmt``."""
    from .model._checks import as_whole, is_finite_number

    if as_whole(runs) is None or runs < 1:
        raise VmlabError(f"--runs must be at least 1, got {runs!r}")
    if limits_mb is not None and limits_mb != "auto":
        for x in limits_mb:
            if not (is_finite_number(x) and 0 < x < 2**42):
                raise VmlabError(f"--limits-mb: each limit must be a positive number of MB "
                                 f"below 2**42, got {x!r}")
            if int(x * 2**20) < 4096:
                raise VmlabError(f"--limits-mb: a limit of {x!r} MB is below one page")
    if keep is not None and Path(keep).suffix.lower() != ".vmt":
        raise VmlabError(f"--keep {keep}: the recording is kept as a .vmt trace; name the "
                         "file .vmt")


def validate(argv, *, runs=3, limits_mb=None, keep=None, cwd=None, cold=False):
    """Record, predict and measure ``argv`` (see the module docstring).

    Returns a dict: ``program``, ``record`` (info of the recording), ``rows`` (one per
    setting: ``setting``, ``limit_bytes``, predicted and measured medians, measured min/max,
    ratio, whether the prediction ends in an OOM kill and the measured OOM kills).
    """
    from .measure import (cgroup_version, cold_page_cache, measure_program, page_ranges,
                          why_no_cgroup)
    from .trace.native import open_trace
    from .trace.record import record_lackey

    _check_options(runs, limits_mb, keep)
    if limits_mb is not None and cgroup_version() is None:
        raise VmlabError(why_no_cgroup())
    with tempfile.TemporaryDirectory(prefix="vmlab-validate-") as tmp:
        path = Path(keep) if keep else Path(tmp) / "run.vmt"
        _, info = record_lackey(argv, path, cwd=cwd, quiet=True, stdout=subprocess.DEVNULL)
        trace = open_trace(path)
        limits = None
        if limits_mb == "auto":
            limits = "auto"
        elif limits_mb:
            limits = [int(x * 2**20) // 4096 * 4096 for x in limits_mb]
        # every run starts from one page cache, held resident while they run (its other
        # pages of the program's and the recording's files dropped before each): with cold,
        # all those files dropped; else the cache as the recording left it, which the
        # first run would find anyway and the next ones, after the first's reads, would not.
        # The recording's files count either way: a file the loader or the program opens by
        # a name no argument gives (ld.so.cache, a locale file) is in the recording, and a
        # state of it that no run controls is not what the runs find
        now = _recorded_files_now(trace)
        files = list(dict.fromkeys(path for _, path, _ in now))
        if cold:
            cold_cache, warm = cold_page_cache(argv, cwd, files=files), None
            hold = cold_cache
        else:
            cold_cache = None
            warm = {name: resident for name, _, resident in now}
            hold = {path: page_ranges(resident) for _, path, resident in now}
        rows = measure_program(argv, runs=runs, limits_bytes=limits, cwd=cwd, cold=True,
                               hold=hold, files=files)
        settings = []
        notes = []
        for key in dict.fromkeys((r["setting"], r["limit_bytes"]) for r in rows):
            group = [r for r in rows if (r["setting"], r["limit_bytes"]) == key]
            pred = predict(trace, memory_bytes=key[1], cold_cache=cold_cache, residency=warm)
            notes += [n for n in pred["left_out"] if n not in notes]
            meas_pf = [r["page_faults"] for r in group]
            meas_mj = [r["major_faults"] for r in group]
            settings.append({
                "setting": key[0], "limit_bytes": key[1],
                "predicted_page_faults": pred["page_faults"],
                "measured_page_faults": statistics.median(meas_pf),
                "measured_page_faults_min": min(meas_pf), "measured_page_faults_max": max(meas_pf),
                "page_fault_ratio": _ratio(pred["page_faults"], statistics.median(meas_pf)),
                "predicted_major_faults": pred["major_faults"],
                "measured_major_faults": statistics.median(meas_mj),
                "measured_major_faults_min": min(meas_mj), "measured_major_faults_max": max(meas_mj),
                "major_fault_ratio": _ratio(pred["major_faults"], statistics.median(meas_mj)),
                "predicted_oom": pred["oom"],
                "oom_kills": sum(1 for r in group if r.get("oom_killed")), "runs": len(group)})
    return {"program": list(argv), "kernel": os.uname().release, "record": info,
            "rows": settings, "not_modelled": notes}


def format_table(res):
    """The predicted/measured table of :func:`validate` as text."""
    lines = [f"program: {' '.join(res['program'])}   (kernel {res['kernel']}; "
             f"{res['record']['records']:,} accesses recorded)",
             f"{'memory':>12} {'faults pred':>12} {'measured':>16} {'ratio':>7} "
             f"{'major pred':>11} {'measured':>14} {'ratio':>7} {'OOM pred':>9} {'measured':>9}"]
    for r in res["rows"]:
        mem = "unlimited" if r["limit_bytes"] is None else f"{r['limit_bytes'] / 2**20:.2f} MB"
        mpf = f"{r['measured_page_faults']:g} [{r['measured_page_faults_min']}-{r['measured_page_faults_max']}]"
        mmj = f"{r['measured_major_faults']:g} [{r['measured_major_faults_min']}-{r['measured_major_faults_max']}]"
        lines.append(f"{mem:>12} {r['predicted_page_faults']:>12,} {mpf:>16} "
                     f"{r['page_fault_ratio']:>7.2f} {r['predicted_major_faults']:>11,} {mmj:>14} "
                     f"{r['major_fault_ratio']:>7.2f} {'yes' if r['predicted_oom'] else 'no':>9} "
                     f"{r['oom_kills']:>6}/{r['runs']}")
    lines.append("measured: median [min-max] over the runs; ratio = predicted / measured median; "
                 "predicted without the faults on valgrind's own pages; OOM: the prediction "
                 "ends in an OOM kill / the runs the kernel killed")
    for n in res.get("not_modelled", ()):
        lines.append(f"not modelled: {n}")
    return "\n".join(lines)
