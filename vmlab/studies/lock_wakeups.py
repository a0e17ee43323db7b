"""How long a thread woken from an ``mmap_lock`` wait takes to run (docs/model.md 15.14).

A reader that waited for ``mmap_lock`` is granted the lock by the thread that releases it
(``rwsem_mark_wake()`` adds the reader's count before waking it) and then needs a CPU.  On an
idle machine that is a few microseconds; when every CPU is busy it is the scheduler's
run-queue latency, up to a time slice (milliseconds), and the woken reader holds the lock all
that time: a writer that comes meanwhile waits for it, and readers queue behind the writer.
:class:`vmlab.Costs`' ``lock_wakeup_ns`` is that delay.

:func:`wakeup_delays` measures it from a capture of the kernel's ``mmap_lock`` tracepoints
(:func:`vmlab.trace.readers.mmap_lock.read_capture`): for each acquisition that waited, the
time from the release that let it go to its ``acquire_returned``.  :func:`capture` runs a
program under ``perf`` and does so; ``vmlab/data/lock_wakeups.c`` is the program the shipped
measurement (:data:`HOST_CSV`, ``scripts/measure_programs.py --lock-wakeups``) ran, an app
start in small; :func:`host_delays` gives the shipped delays as a distribution.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ScenarioError
from ..model import Costs, Empirical, Scenario
from ..trace.readers.mmap_lock import perf_samples, read_capture, wait_summary

#: The shipped measurement: one row per wake-up (``load``, ``run``, ``mode``, ``delay_ns``),
#: and one per run (``load``, ``run`` and :func:`run_summary`'s figures).
HOST_CSV = Path(__file__).resolve().parent.parent.parent / "data" / "native" / \
    "lock_wakeups.csv"
HOST_RUNS_CSV = HOST_CSV.with_name("lock_wakeups_runs.csv")
#: The shipped measurement of the other wake-ups (:func:`io_wakeup_delays`, for
#: ``Costs(io_wakeup_ns=...)``): one row per wake-up (``load``, ``run``, ``delay_ns``), runs
#: of their own (``scripts/measure_programs.py --io-wakeups``).
IO_CSV = HOST_CSV.with_name("io_wakeups.csv")
#: The events of a capture that measures the I/O wake-ups too (recorded system-wide: the
#: wake-up of a thread whose read completed is made by the interrupt's context).
IO_EVENTS = "mmap_lock:*,sched:sched_wakeup,sched:sched_switch"
#: The program of the measurement: ``vmlab/data/lock_wakeups.c`` (in the package, built
#: with the system's C compiler, :func:`vmlab.calibrate.compile_c`).
PROGRAM = "lock_wakeups"
#: Its files: 8 files of 16 MiB, dropped from the page cache by the program.
N_FILES, FILE_MIB = 8, 16
#: The program's shape in the shipped measurement: faulting threads, reads each, writer
#: threads, iterations each (an ``mmap``, an ``mprotect`` and an ``munmap`` of a 512 KiB
#: chunk), microseconds slept between calls.
N_FAULTERS, FAULTS, N_WRITERS, ITERATIONS, SLEEP_US = 16, 400, 2, 400, 100
#: The loads of the shipped measurement: ``vmlab/data/lock_wakeups.c`` as above and, under
#: ``busy``, 4 threads more that only spin (this host has 2 CPUs: about 11 runnable threads
#: a CPU), under ``faulting``, none (9 a CPU: the faulting threads spin between their reads).
LOADS = {load: tuple(str(v) for v in (N_FAULTERS, FAULTS, N_WRITERS, ITERATIONS, SLEEP_US,
                                      spinners))
         for load, spinners in (("busy", 4), ("faulting", 0))}
#: A read acquisition that waited at least this long counts as one that waited.
WAITED_NS = 10_000


def wakeup_delays(cap):
    """The wake-ups of a capture (a :class:`~vmlab.trace.readers.mmap_lock.LockCapture`):
    a DataFrame with one row per acquisition that waited, ``tid``, ``mode`` (0 read,
    1 write) and ``delay_ns``, the time from the release that let it go to its
    ``acquire_returned``.

    An acquisition waited when another thread of its address space released the lock between
    its request and its acquisition; the release that let it go is the last such release of
    the write lock (a read request waits only for writers; a downgrade ends a write hold) or,
    for a write request, of either mode.  Trylocks and downgrades never wait."""
    rows = []
    ok = (cap.kind == 0) & (cap.acquire_ns >= 0)
    for a in np.unique(cap.asid):
        rel = (cap.asid == a) & (cap.release_ns >= 0)
        for want_write in (0, 1):
            # the releases a request of this mode waits for, in time order
            m = rel if want_write else rel & (cap.mode == 1)
            order = np.argsort(cap.release_ns[m], kind="stable")
            r_t = cap.release_ns[m][order]
            r_tid = cap.tid[m][order]
            sel = np.flatnonzero(ok & (cap.asid == a) & (cap.mode == want_write))
            for i in sel:
                j = np.searchsorted(r_t, cap.acquire_ns[i], side="right") - 1
                while j >= 0 and r_tid[j] == cap.tid[i]:
                    j -= 1
                if j >= 0 and r_t[j] > cap.request_ns[i]:
                    rows.append((int(cap.tid[i]), want_write, int(cap.acquire_ns[i] - r_t[j])))
    return pd.DataFrame(rows, columns=["tid", "mode", "delay_ns"]).astype(np.int64)


def io_wakeup_delays(path, pid):
    """The wake-ups from I/O of process ``pid`` in a ``perf script`` text recorded
    system-wide with :data:`IO_EVENTS`: a DataFrame with one row per wake-up, ``tid`` and
    ``delay_ns``, the time from the ``sched:sched_wakeup`` of the thread to the
    ``sched:sched_switch`` that put it on a CPU.

    The threads are the process's faulting threads, those that take ``mmap_lock`` for read
    and never for write (their only other sleeps are their reads'); a wake-up counts unless
    the thread was waiting for ``mmap_lock`` then (its request made, its
    ``acquire_returned`` not yet): that one is :func:`wakeup_delays`'.  These are the
    wake-ups ``Costs.io_wakeup_ns`` adds to ``wakeup_ns`` (docs/model.md 15.14)."""
    modes = {}              # tid -> the mmap_lock modes it asked for
    waiting = {}            # tid -> inside an mmap_lock wait
    woken = {}              # tid -> time of its wake-up while not in a lock wait
    rows = []
    for _comm, p, tid, t, event, fields in perf_samples(path):
        if event == "mmap_lock:mmap_lock_start_locking" and p == pid:
            modes.setdefault(tid, set()).add(fields.get("write"))
            waiting[tid] = True
        elif event == "mmap_lock:mmap_lock_acquire_returned" and p == pid:
            waiting[tid] = False
        elif event == "sched:sched_wakeup":
            target = fields.get("pid", "")
            if target.isdigit() and not waiting.get(int(target), False):
                woken.setdefault(int(target), t)
        elif event == "sched:sched_switch":
            nxt = fields.get("next_pid", "")
            if nxt.isdigit() and int(nxt) in woken:
                rows.append((int(nxt), t - woken.pop(int(nxt))))
    faulting = {tid for tid, m in modes.items() if m == {"false"}}
    df = pd.DataFrame([r for r in rows if r[0] in faulting], columns=["tid", "delay_ns"])
    return df.astype(np.int64)


def _program_pid(path, comm):
    """The process of the first sample line whose command is ``comm`` (perf keeps 15
    characters of it), or -1."""
    comm = comm[:15]
    for c, pid, _tid, _t, _event, _fields in perf_samples(path):
        if c == comm:
            return pid
    return -1


def capture(argv, cwd=None, io=False):
    """Run ``argv`` under ``perf record -e 'mmap_lock:*'``: its :func:`wakeup_delays` and
    :func:`run_summary`; with ``io``, recorded system-wide with the scheduler's wake-ups too
    (:data:`IO_EVENTS`), and its :func:`io_wakeup_delays` as a third result.  Needs ``perf``
    and the tracepoints (root, or ``kernel.perf_event_paranoid`` -1)."""
    from ..measure import perf_capture

    with tempfile.TemporaryDirectory(prefix="vmlab-wakeups-") as d:
        text = perf_capture(argv, os.path.join(d, "locks.txt"),
                            IO_EVENTS if io else "mmap_lock:*",
                            record_args=("-a",) if io else (),
                            fields="comm,pid,tid,cpu,time,event,trace", cwd=cwd)
        cap = read_capture(text, other_events="skip")
        if not io:
            return wakeup_delays(cap), run_summary(cap)
        pid = _program_pid(text, os.path.basename(argv[0]))
        if pid < 0:
            raise ScenarioError(f"{argv[0]}: none of its events in the capture")
        cap = cap.select(cap.pid == pid)
        return wakeup_delays(cap), run_summary(cap), io_wakeup_delays(text, pid)


def run_summary(cap):
    """A capture's ``mmap_lock`` waits in brief, and the pace of the program's threads, as a
    dict: read and write acquisitions, their mean waits (ns, request to
    ``acquire_returned``), the share of the reads that waited :data:`WAITED_NS` or more, the
    read waits of 1-10 ms and of 10-100 ms (the bins of the 2025-26 measurements), the
    capture's span (s); and, for :func:`host_anchor`, ``fault_cycle_ns`` (the median over
    the threads that only read, of the time between their read requests), ``write_cycle_ns``
    (the same over the threads with 100 or more write requests, between those) and
    ``write_hold_ns`` (their mean write hold, up to the release or the downgrade)."""
    wait = np.where(cap.acquire_ns >= 0, cap.acquire_ns - cap.request_ns, -1)
    w = wait_summary(cap.mode, wait)
    span = (int(cap.release_ns.max()) - int(cap.request_ns.min())) / 1e9 if len(cap.mode) \
        else 0.0
    reads = (cap.mode == 0) & (wait >= 0)
    fault_cycles, write_cycles, holds = [], [], []
    for t in np.unique(cap.tid):
        mine = cap.tid == t
        n_w = int((mine & (cap.mode == 1)).sum())
        if n_w >= 100:
            req = np.sort(cap.request_ns[mine & (cap.mode == 1)])
            write_cycles.append((req[-1] - req[0]) / (len(req) - 1))
            ok = mine & (cap.mode == 1) & (cap.acquire_ns >= 0) & (cap.release_ns >= 0)
            holds.extend((cap.release_ns[ok] - cap.acquire_ns[ok]).tolist())
        elif n_w == 0 and int((mine & reads).sum()) >= 100:
            req = np.sort(cap.request_ns[mine & reads])
            fault_cycles.append((req[-1] - req[0]) / (len(req) - 1))
    nan = float("nan")
    return {"n_read": w["read"]["n"], "read_wait_mean_ns": w["read"]["mean_ns"],
            "share_read_waited": float((wait[reads] >= WAITED_NS).mean()) if reads.any()
            else nan,
            "n_read_1_10ms": w["read"]["bins"]["1-10ms"],
            "n_read_10_100ms": w["read"]["bins"]["10-100ms"],
            "n_write": w["write"]["n"], "write_wait_mean_ns": w["write"]["mean_ns"],
            "span_s": span,
            "fault_cycle_ns": float(np.median(fault_cycles)) if fault_cycles else nan,
            "write_cycle_ns": float(np.median(write_cycles)) if write_cycles else nan,
            "write_hold_ns": float(np.mean(holds)) if holds else nan}


def measure(runs=3, loads=None, work=None, io=False):
    """Build :data:`PROGRAM`, write its files and run it ``runs`` times under each of
    ``loads`` (names of :data:`LOADS`; all by default), each under :func:`capture`.
    Returns (wake-ups, runs) as DataFrames, the shipped files' rows; with ``io``, (wake-ups,
    runs, I/O wake-ups), the last :data:`IO_CSV`'s rows."""
    from ..calibrate import compile_c

    loads = list(loads or LOADS)
    unknown = [load for load in loads if load not in LOADS]
    if unknown:
        raise ScenarioError(f"load {unknown[0]!r}: expected one of {', '.join(LOADS)}")
    wakes, summaries, io_wakes = [], [], []
    with tempfile.TemporaryDirectory(prefix="vmlab-wakeups-", dir=work) as d:
        exe = str(compile_c(PROGRAM, d, extra=("-pthread",)))
        files = []
        for i in range(N_FILES):
            path = os.path.join(d, f"file{i}")
            with open(path, "wb") as f:
                f.write(os.urandom(FILE_MIB << 20))
            files.append(path)
        for load in loads:
            for run in range(runs):
                got = capture([exe, *LOADS[load], *files], io=io)
                for df, out in [(got[0], wakes)] + ([(got[2], io_wakes)] if io else []):
                    df.insert(0, "run", run)
                    df.insert(0, "load", load)
                    out.append(df)
                summaries.append({"load": load, "run": run, **got[1]})
    result = (pd.concat(wakes, ignore_index=True), pd.DataFrame(summaries))
    if io:
        result += (pd.concat(io_wakes, ignore_index=True),)
    return result


#: The columns each shipped file must have.
_COLUMNS = {"wake-ups": ("load", "run", "delay_ns"),
            "runs": ("load", "run", "n_read", "read_wait_mean_ns", "share_read_waited",
                     "n_read_1_10ms", "write_wait_mean_ns", "fault_cycle_ns", "write_cycle_ns",
                     "write_hold_ns")}


def read_host(path=None):
    """The shipped measurement (:data:`HOST_CSV`, or ``path``: a file of wake-ups or, like
    :data:`HOST_RUNS_CSV`, of runs) as a DataFrame; a file that is missing or lacks the
    columns is refused in one line naming it."""
    path = Path(path or HOST_CSV)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ScenarioError(f"{path}: not a CSV of lock wake-ups "
                            f"({str(e).splitlines()[0][:120]})") from None
    kind = "runs" if "n_read" in df.columns else "wake-ups"
    missing = [c for c in _COLUMNS[kind] if c not in df.columns]
    if missing:
        raise ScenarioError(f"{path}: expected the columns {', '.join(_COLUMNS[kind])}; "
                            f"missing {', '.join(missing)}")
    return df


def host_delays(load="busy", scale=1.0, path=None, io=False):
    """The shipped wake-up delays under ``load`` (one of :data:`LOADS`), each times
    ``scale``, as an :class:`~vmlab.model.Empirical` distribution, ready for
    ``Costs(lock_wakeup_ns=...)``; with ``io``, the I/O wake-ups (:data:`IO_CSV`), for
    ``Costs(io_wakeup_ns=...)``."""
    if load not in LOADS:
        raise ScenarioError(f"load {load!r}: expected one of {', '.join(LOADS)}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0):
        raise ScenarioError(f"scale must be a finite number >= 0, got {scale!r}")
    path = path or (IO_CSV if io else HOST_CSV)
    df = read_host(path)
    d = df.loc[df["load"] == load, "delay_ns"].to_numpy(dtype=np.float64)
    if len(d) == 0:
        raise ScenarioError(f"{path}: no wake-ups under load {load!r}")
    return Empirical(np.sort(d * scale).tolist())


def anchor_scenario(run, wakeup=None, seed=0, io_wakeup=None):
    """The app start in small of :data:`PROGRAM` as vmlab plays it, at the pace one run of
    it went (a row of :data:`HOST_RUNS_CSV`: ``fault_cycle_ns``, ``write_cycle_ns``,
    ``write_hold_ns``): :data:`N_FAULTERS` threads each fault :data:`FAULTS` random pages of
    :data:`N_FILES` files (the time between two faults of a thread is the run's, less a
    major fault's modelled time), :data:`N_WRITERS` threads make ``3 * ITERATIONS`` calls
    on 512 KiB of their own (no file VMA), each holding ``mmap_lock`` for write the run's
    mean hold, at the run's pace; ``wakeup`` is ``lock_wakeup_ns`` and ``io_wakeup`` is
    ``io_wakeup_ns`` (None: 0; a faulting thread's modelled read includes its mean).  The lock is
    this host's kernel's (``rwsem_wake_all_readers``: a release grants every queued reader;
    ``rwsem_steal``: a woken writer takes the lock itself, the free lock is taken past the
    queue until the writer's hand-off; docs/model.md section 4)."""
    from ..trace import synth
    from .ladder import _file_vmas

    costs = Costs(mmap_cs_ns=int(round(run["write_hold_ns"])),
                  lock_wakeup_ns=wakeup if wakeup is not None else 0,
                  io_wakeup_ns=io_wakeup if io_wakeup is not None else 0)
    fault = costs.io_ns.table_mean_ns() + costs.fault_ns + costs.wakeup_ns + \
        costs.io_wakeup_ns.table_mean_ns() + costs.pagecache_hit_ns
    file_pages = (FILE_MIB << 20) // 4096
    tr = synth.app_start(n_threads=N_FAULTERS, n_files=N_FILES, file_pages=file_pages,
                         faults_per_thread=FAULTS, n_writers=N_WRITERS,
                         writes_per_writer=3 * ITERATIONS, on_file_fraction=0.0,
                         write_pages=(512 << 10) // 4096,
                         fault_gap_ns=max(0, int(round(run["fault_cycle_ns"] - fault))),
                         write_gap_ns=max(0, int(round(run["write_cycle_ns"]
                                                       - run["write_hold_ns"]))),
                         seed=seed)
    return Scenario(tr, vmas=_file_vmas(N_FILES, file_pages), costs=costs, seed=seed,
                    rwsem_wake_all_readers=True, rwsem_steal=True)


def host_anchor(load="busy", path=None, runs_path=None):
    """This host's runs of :data:`PROGRAM` under ``load`` beside vmlab's ``per_vma_lock``
    on :func:`anchor_scenario` at each run's pace, without wake-ups, with the load's
    measured lock wake-ups (:func:`host_delays`), and with its wake-ups after reads too
    (:func:`host_delays` with ``io``): a DataFrame, one row per source, medians over the
    runs of ``n_read``, ``read_wait_mean_ns``, ``share_read_waited``, ``n_read_1_10ms`` and
    ``write_wait_mean_ns`` (docs/model.md 15.14)."""
    from ..simulation import simulate_many
    from .ladder import lock_measures, mmap_lock_waits

    runs = read_host(runs_path or HOST_RUNS_CSV)
    runs = runs[runs["load"] == load].reset_index(drop=True)
    if runs.empty:
        raise ScenarioError(f"{runs_path or HOST_RUNS_CSV}: no runs under load {load!r}")
    cols = ["n_read", "read_wait_mean_ns", "share_read_waited", "n_read_1_10ms",
            "write_wait_mean_ns"]
    rows = [{"source": "this host", **runs[cols].median().to_dict()}]
    wake = host_delays(load, path=path)
    io = host_delays(load, io=True)
    for name, w, iw in (("vmlab, no wake-up", None, None),
                        ("vmlab, this host's wake-ups", wake, None),
                        ("vmlab, this host's wake-ups and reads' wake-ups", wake, io)):
        res = simulate_many([(anchor_scenario(r, w, seed=i, io_wakeup=iw), "per_vma_lock")
                             for i, r in runs.iterrows()], desc="host anchor")
        got = []
        for r in res:
            m = lock_measures(r)
            rw = mmap_lock_waits(r, "read")
            got.append({"n_read": m["n_mmap_lock_read_total"],
                        "read_wait_mean_ns": m["mmap_lock_read_wait_ns_mean"],
                        "share_read_waited": float((rw >= WAITED_NS).mean()) if len(rw)
                        else math.nan,
                        "n_read_1_10ms": m["n_read_waits_1_10ms"],
                        "write_wait_mean_ns": m["mmap_lock_write_wait_ns_mean"]})
        rows.append({"source": name, **pd.DataFrame(got)[cols].median().to_dict()})
    return pd.DataFrame(rows)


def summary(delays):
    """Count, mean and percentiles (50, 90, 99) of a sequence of delays (ns), and the share
    of them of 1 ms or more, as a dict."""
    d = np.asarray(delays, dtype=np.float64)
    if len(d) == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(d, [50, 90, 99])
    return {"n": int(len(d)), "mean_ns": float(d.mean()), "p50_ns": float(p50),
            "p90_ns": float(p90), "p99_ns": float(p99), "max_ns": float(d.max()),
            "share_1ms": float((d >= 1_000_000).mean())}
