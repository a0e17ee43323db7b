"""Who takes ``mmap_lock`` for read on this kernel, and what vmlab says (docs/model.md 15.3).

Under per-VMA locks (6.4 and later) a fault still takes ``mmap_lock`` for read when

* it was taken in kernel mode (``copy_to_user`` in ``read()``, the ELF loader at ``execve``):
  the arch code sends a fault without ``FAULT_FLAG_USER`` to ``lock_mmap`` at once;
* it is the user's and its VMA lock failed or its attempt retried (``lock_mm_and_find_vma``
  from a user-mode fault);
* it needs its VMA's ``anon_vma`` and the VMA has none: ``vmf_anon_prepare()`` takes
  ``mmap_read_trylock()`` (6.5 and later; 6.4 falls back before the handler).

Other readers (``acct_collect`` at exit, ``/proc`` readers, ``madvise``, ``get_user_pages``)
are not faults.  A capture with call chains tells them apart::

    perf record -g -e mmap_lock:mmap_lock_start_locking --filter 'write == 0' -- PROGRAM
    perf script -F comm,pid,tid,time,event,trace,ip,sym --ns > reads.txt

:func:`read_callers` classifies each read acquisition of such a text, :func:`capture` runs a
program under ``perf`` and classifies its acquisitions (root, or a permissive
``perf_event_paranoid``), :func:`run_counts` gives a vmlab run's by the same classes, and
:func:`compare` sets the shipped captures of :data:`vmlab.measure.PROGRAMS`
(``data/native/mmap_lock_reads.csv``, made by ``scripts/measure_programs.py
--mmap-lock-reads``) beside ``per_vma_lock`` on each program's shipped perf or lackey
recording.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from ..errors import TraceFormatError, VmlabError
from ..trace.readers.mmap_lock import START, _bool, _parse

#: The shipped captures (one row per program and run, a column per class).
CAPTURES = Path(__file__).resolve().parent.parent.parent / "data" / "native" / \
    "mmap_lock_reads.csv"

#: The caller classes, in the order tables show them.
CLASSES = ("kernel-mode fault", "user-mode fault", "anon_vma trylock", "not a fault")
#: Addresses from here up are the kernel's (x86-64 and arm64 with 48-bit user space).
KERNEL_SPACE = 0xFFFF_8000_0000_0000
_EVENT = START                  # the tracepoint of a request: each acquisition once
_ENTRY = "asm_exc_page_fault"   # the frame below it is the one the fault interrupted


def _classify(frames):
    """The class of one acquisition from its call chain ``[(address, symbol), ...]``, the
    innermost frame first."""
    names = [s for _a, s in frames]
    if any("vmf_anon_prepare" in s for s in names):
        return "anon_vma trylock", ""
    if _ENTRY in names:
        i = names.index(_ENTRY)
        if i + 1 < len(frames):
            addr, sym = frames[i + 1]
            return ("kernel-mode fault" if addr >= KERNEL_SPACE else "user-mode fault"), sym
        return "user-mode fault", ""
    return "not a fault", next((s for s in names if "mmap_lock" not in s
                                and "lock_mm" not in s), "")


def read_callers(path):
    """The read acquisitions of ``mmap_lock`` in a ``perf script`` text with call chains (see
    the module's docstring), one row each: ``tid``, ``time_s``, ``cls`` (one of
    :data:`CLASSES`) and ``where`` (the function the fault interrupted, or the reader's
    first frame).  A write acquisition is skipped; a ``start_locking`` sample without a call
    chain is refused in one line (record with ``-g``)."""
    path = Path(path)
    rows, cur = [], None

    def close(lineno):
        if cur is None:
            return
        if not cur["frames"]:
            raise TraceFormatError(f"a {_EVENT} sample has no call chain: record with "
                                   "`perf record -g`", path, lineno)
        cls, where = _classify(cur["frames"])
        rows.append({"tid": cur["tid"], "time_s": cur["time"], "cls": cls, "where": where})

    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise TraceFormatError("no such file", path) from None
    except IsADirectoryError:
        raise TraceFormatError("is a folder, not a perf script text", path) from None
    with f:
        lineno = 0
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            if line[0] in " \t":
                if cur is not None:
                    toks = line.split()
                    try:
                        addr = int(toks[0], 16)
                    except ValueError:
                        raise TraceFormatError(f"expected a call-chain line 'ADDRESS SYMBOL', "
                                               f"found {line.strip()[:80]!r}", path, lineno)
                    cur["frames"].append((addr, toks[1] if len(toks) > 1 else "[unknown]"))
                continue
            close(lineno)
            cur = None
            # (the sample line as the tracepoints' reader reads it)
            sample = _parse(line.split(), path, lineno)
            if sample is None:
                raise TraceFormatError("expected 'COMM PID/TID TIME: mmap_lock:...' (perf "
                                       "script -F comm,pid,tid,time,event,trace,ip,sym)",
                                       path, lineno)
            _pid, tid, t_ns, event, fields, _comm = sample
            if event != _EVENT or _bool(fields, "write", path, lineno):
                continue            # another event, or a write: not a read acquisition
            cur = {"tid": tid, "time": t_ns / 1e9, "frames": []}
        close(lineno)
    return pd.DataFrame(rows, columns=["tid", "time_s", "cls", "where"])


def class_counts(callers):
    """Read acquisitions per class (every class of :data:`CLASSES`, 0 where none)."""
    return callers["cls"].value_counts().reindex(CLASSES, fill_value=0).astype(int)


def run_counts(result):
    """A vmlab run's read acquisitions of ``mmap_lock``, by the classes of :data:`CLASSES`
    (docs/model.md 15.6): the faults the kernel made (``n_mmap_lock_read_kernel``), the
    user's faults' other acquisitions (fallbacks for a write-locked VMA or a backing not
    handled, and retries), the fallbacks for a missing ``anon_vma``
    (``n_anon_vma_fallbacks``, the kernel's trylock since 6.5), and the ``LOCK_R`` readers."""
    s = result.summary
    kernel, anon = int(s["n_mmap_lock_read_kernel"]), int(s["n_anon_vma_fallbacks"])
    return pd.Series({"kernel-mode fault": kernel,
                      "user-mode fault": int(s["n_mmap_lock_read"]) - kernel - anon,
                      "anon_vma trylock": anon,
                      "not a fault": int(s["n_mmap_lock_read_other"])}, dtype=int)


def capture(argv, cwd=None, runs=3):
    """Run ``argv`` ``runs`` times under ``perf record -g`` of the read acquisitions of
    ``mmap_lock`` (after one run that warms the page cache) and classify each run's: a list
    of :func:`class_counts`, one per run.  Needs ``perf`` and the ``mmap_lock`` tracepoints
    (root, or ``kernel.perf_event_paranoid`` -1)."""
    from ..measure import perf_capture

    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = []
    with tempfile.TemporaryDirectory(prefix="vmlab-locks-") as d:
        text = os.path.join(d, "reads.txt")
        for _ in range(runs):
            perf_capture(argv, text, _EVENT, record_args=("-g", "--filter", "write == 0"),
                         fields="comm,pid,tid,time,event,trace,ip,sym", cwd=cwd)
            out.append(class_counts(read_callers(text)))
    return out


def compare(policy="per_vma_lock", source="perf", captures=None, data_dir=None):
    """Per program of the shipped captures: the host's median read acquisitions per class
    (over its runs, with their range) beside ``policy`` on the program's shipped recording
    (:func:`vmlab.model.recorded.scenario_for`): ``source`` ``"perf"``, the faults the kernel
    took (``perf_<program>.vmt``), or ``"lackey"``, the program's own accesses with the
    kernel's stores (``lackey_<program>.vmt``: a prediction).  Columns:
    ``(class, "host")``, ``(class, "host_min")``, ``(class, "host_max")``,
    ``(class, "vmlab")`` for each class but ``not a fault`` (the recordings carry no
    readers that are not faults), and the faults' totals."""
    from .. import simulate
    from ..model import recorded
    from ..trace import open_trace
    from .kernel_agreement import DATA_DIR

    if source not in ("perf", "lackey"):
        raise VmlabError(f"source must be 'perf' or 'lackey', got {source!r}")
    path = Path(captures or CAPTURES)
    try:
        caps = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise VmlabError(f"{path}: cannot read the captures ({str(e).splitlines()[0]})") from None
    missing = [c for c in ("program", *CLASSES[:3]) if c not in caps.columns]
    if missing:
        raise VmlabError(f"{path}: expected the columns program, {', '.join(CLASSES)}; "
                         f"missing {', '.join(missing)}")
    rows = {}
    for name, g in caps.groupby("program", sort=False):
        trace = open_trace(Path(data_dir or DATA_DIR) / f"{source}_{name}.vmt")
        run = run_counts(simulate(recorded.scenario_for(trace), policy))
        row = {}
        for c in CLASSES[:3]:
            row[(c, "host")] = float(g[c].median())
            row[(c, "host_min")], row[(c, "host_max")] = int(g[c].min()), int(g[c].max())
            row[(c, "vmlab")] = int(run[c])
        faults = g[list(CLASSES[:3])].sum(axis=1)
        row[("faults", "host")] = float(faults.median())
        row[("faults", "host_min")], row[("faults", "host_max")] = int(faults.min()), int(
            faults.max())
        row[("faults", "vmlab")] = int(run[list(CLASSES[:3])].sum())
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index.name = "program"
    return out


def largest_gap(table):
    """The largest difference, over programs and classes, between vmlab's count and the
    host's median in a :func:`compare` table."""
    return int((table.xs("vmlab", axis=1, level=1) - table.xs("host", axis=1, level=1)).abs()
               .to_numpy().max())
