"""Ready-made experiments from the kernel history: scenarios and tidy result tables.

Each function builds the :class:`~vmlab.model.scenario.Scenario` of one episode of the story
MODEL.md tells, or runs a small family of them and returns a tidy DataFrame.  The notebooks
under ``notebooks/`` call these functions and stay thin; everything here is tested in
``tests/test_scenarios.py``.

=======================  ===============================================================
function                 episode
=======================  ===============================================================
:func:`spufs`            Benjamin Herrenschmidt's spufs waits (NOPAGE_RETRY, 2006)
:func:`lespinasse`       Michel Lespinasse's 2010 mmap_sem test (FAULT_FLAG_ALLOW_RETRY)
:func:`google_reverse`   Ying Han's 2008 64-thread reverse-order workload
:func:`dos`              Andrew Morton's fadvise(DONTNEED) objection to unbounded retries
:func:`device_mapping`   Jes Sorensen's nopfn() against remap_pfn_range() (2006)
:func:`real_program`     shipped lackey traces, VMAs inferred, across memory sizes
:func:`perf_replay`      shipped perf page-fault traces with their own threads and timing
=======================  ===============================================================

Choices where MODEL.md is silent (docs/model.md does not cover these yet):

* *Writer throughput* (:func:`writer_ops_per_s`) is counted while the readers still run:
  mmap/munmap calls completed before the earlier of the last reader's end and the loop's
  end, divided by that span.  The summary's ``writer_ops_per_s`` averages over the loop's
  whole life, which after the readers finish measures an idle lock.
* *Livelock* in :func:`dos_grid`: the victim has not finished at the horizon *and* the
  fault it is stuck in has been retried at least ``livelock_retries`` times (default 2,
  more than the single retry a bounded ``fault_retry`` can take).  The engine's own
  ``livelock`` flag marks any thread caught at the horizon after one retry, which a
  bounded policy also is when the horizon falls inside its second attempt.
* *Device mapping costs* (:func:`eager_vs_lazy`) are those of the device VMA only: the
  mapping thread's time, PTEs and ``struct page`` memory; the second thread's lock wait is
  reported apart as ``stalled_ns``.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from .analysis import simulate
from .errors import ScenarioError
from .model.costs import HDD, NVME, SPUFS, Costs, Fixed, as_dist
from .model.policies import get_policy
from .model.scenario import Adversary, Scenario, Vma, poisson_signals
from .trace import synth
from .trace.build import concat
from .trace.model import Op, Trace, TraceMeta

#: Lespinasse's disk: about 18 ms per random 4 KiB read (MODEL.md section 5).
LESPINASSE_IO = Fixed(18_000_000)
#: Start of the device mapping of :func:`device_mapping` (away from files and the lock loop).
DEVICE_BASE = 0x7E0000000000
#: Start of the second thread's anonymous mapping in :func:`device_mapping`.
OTHER_BASE = 0x7D0000000000
#: sizeof(struct page) on 64-bit Linux.
STRUCT_PAGE_BYTES = 64
#: The three retry variants of MODEL.md section 4.
RETRY_POLICIES = ("fault_retry", "fault_retry_unbounded", "fault_retry_v57")


# ---------------------------------------------------------------------------------------
# Running several policies


def run_policies(scenario, policies, n_jobs=None):
    """Simulate ``scenario`` under each policy, in parallel threads.

    Parameters
    ----------
    scenario : Scenario
    policies : sequence of str or Policy
    n_jobs : int, optional
        Worker threads (default: the number of CPUs; the kernel releases the GIL).

    Returns
    -------
    dict
        Policy name -> :class:`~vmlab.results.Result`, in the order given.
    """
    pols = [get_policy(p) for p in policies]
    return dict(zip([p.name for p in pols], _pmap(lambda p: simulate(scenario, p), pols, n_jobs)))


def summary_table(results):
    """One summary row per Result of a ``{name: Result}`` dict (a tidy DataFrame)."""
    return pd.DataFrame([r.summary for r in results.values()])


def _pmap(fn, items, n_jobs=None):
    items = list(items)
    n_jobs = n_jobs or os.cpu_count() or 1
    if n_jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(n_jobs, len(items))) as ex:
        return list(ex.map(fn, items))


# ---------------------------------------------------------------------------------------
# spufs: long interruptible waits


def spufs(n_threads=1, wait=SPUFS, signal_rate_hz=10.0, fatal=False, n_accesses=50,
          gap_ns=10_000, horizon_ns=600 * 10**9, seed=0):
    """Benjamin Herrenschmidt's spufs problem: faults that wait for a free SPU.

    Each thread touches ``n_accesses`` distinct pages of one ``context`` VMA (an SPU's
    local store mapped by spufs), so every access is a major fault whose handler waits
    ``wait`` for the SPU to be scheduled, while signals arrive at ``signal_rate_hz``.
    Under blocking ``nopage`` a signal waits for the end of the wait; under
    ``nopage_refault`` it aborts the wait at once, and the wait starts again from scratch.

    Parameters
    ----------
    n_threads : int
        Threads, each with its own pages (default 1).
    wait : Dist or int
        The context wait ``wait_ns`` (default :data:`~vmlab.model.costs.SPUFS`, uniform on
        0 to a 100 ms time slice).
    signal_rate_hz : float
        Poisson signal rate per thread, in Hz (0: no signals).
    fatal : bool
        Signals are fatal (SIGKILL): the run then measures the time to kill.
    n_accesses : int
        Pages each thread touches.
    gap_ns : int
        Compute time before each access, in ns.
    horizon_ns : int
        End of the run (default 600 simulated seconds).
    seed : int

    Returns
    -------
    Scenario
    """
    if n_threads < 1 or n_accesses < 1:
        raise ScenarioError("spufs() needs n_threads >= 1 and n_accesses >= 1")
    pages = n_threads * n_accesses
    # staggered sequential scans of n_accesses pages each: thread t owns its own pages
    tr = synth.shared_file(n_threads, n_accesses, pages=pages, pattern="sequential",
                           gap_ns=int(gap_ns), seed=seed)
    vma = Vma(synth.DEFAULT_BASE, synth.DEFAULT_BASE + pages * tr.page_size,
              backing="context", name="spu context")
    signals = (poisson_signals(signal_rate_hz, fatal=fatal),) if signal_rate_hz > 0 else ()
    return Scenario(tr, vmas=(vma,), policy="nopage_refault",
                    costs=Costs(wait_ns=as_dist(wait, "wait")), signals=signals,
                    horizon_ns=int(horizon_ns), seed=seed)


def time_to_kill_ns(result):
    """Per killed thread, the time from its fatal signal's arrival to its death (ns).

    Returns
    -------
    Series
        Indexed by thread; threads never killed are left out.
    """
    s = result.signals
    th = result.threads
    killed = th[th["state"] == "killed"]
    first = s[s["fatal"]].groupby("thread")["arrival_ns"].min()
    out = killed.set_index("thread")["end_ns"] - first.reindex(killed["thread"]).values
    return out.rename("time_to_kill_ns")


def signal_table(n_threads=8, wait=SPUFS, signal_rate_hz=10.0, n_accesses=50,
                 policies=("nopage", "nopage_refault"), seed=0, n_jobs=None):
    """The spufs experiment for several policies, with and without fatal signals.

    Runs :func:`spufs` twice per policy: non-fatal signals (latency of delivery, retries)
    and fatal ones (time to kill).

    Returns
    -------
    (DataFrame, dict, dict)
        One row per policy: ``signal_latency_ns_p50``/``_p99``/``_max``, ``n_signals``,
        ``retries_per_fault``, ``elapsed_ns``, ``time_to_kill_ns_p50``/``_max``,
        ``n_killed``; the non-fatal Results by policy; the fatal ones (a fatal signal's
        delivery latency is the time to kill: the thread dies at delivery).
    """
    sc = spufs(n_threads, wait, signal_rate_hz, False, n_accesses, seed=seed)
    sk = spufs(n_threads, wait, signal_rate_hz, True, n_accesses, seed=seed)
    pols = [get_policy(p) for p in policies]
    runs = _pmap(lambda job: simulate(job[0], job[1]), [(sc, p) for p in pols] +
                 [(sk, p) for p in pols], n_jobs)
    live, dead = runs[:len(pols)], runs[len(pols):]
    rows = []
    for p, r, k in zip(pols, live, dead):
        s = r.summary
        ttk = time_to_kill_ns(k)
        rows.append({
            "policy": p.name,
            "signal_latency_ns_p50": s["signal_latency_ns_p50"],
            "signal_latency_ns_p99": s["signal_latency_ns_p99"],
            "signal_latency_ns_max": s["signal_latency_ns_max"],
            "n_signals": s["n_signals"],
            "retries_per_fault": s["retries_per_fault"],
            "fault_latency_ns_p50": s["fault_latency_ns_p50"],
            "fault_latency_ns_p99": s["fault_latency_ns_p99"],
            "elapsed_ns": s["elapsed_ns"],
            "time_to_kill_ns_p50": float(ttk.median()) if len(ttk) else math.nan,
            "time_to_kill_ns_max": float(ttk.max()) if len(ttk) else math.nan,
            "n_killed": int(len(ttk)),
        })
    return (pd.DataFrame(rows), {p.name: r for p, r in zip(pols, live)},
            {p.name: k for p, k in zip(pols, dead)})


def refault_expected(wait=SPUFS, signal_rate_hz=10.0, costs=None):
    """Closed form of a ``nopage_refault`` context fault under Poisson signals.

    Every attempt draws a fresh wait ``W`` and is aborted by the first signal ``S ~
    Exp(rate)`` that comes before it; it succeeds with probability ``q = E[exp(-rate W)]``.
    Attempts are independent trials, so (renewal argument, e.g. Ross, *Introduction to
    Probability Models*, on tasks restarted at Poisson interruptions):

    * expected attempts ``1 / q``, expected retries ``1 / q - 1``;
    * expected time waiting ``E[min(W, S)] / q = (1 - q) / (rate q)``;
    * expected latency ``(1 - q) / (rate q) + c / q + (1 / q - 1) signal_ns + wakeup_ns``
      with ``c = fault_ns + driver_ns + struct_page_ns`` the handler CPU of an attempt.

    ``q`` is computed on the engine's own quantile table of ``wait``, so the formula
    describes exactly the distribution the simulation draws from.  It neglects signals
    that arrive during the microseconds of handler CPU (each adds an attempt).

    Parameters
    ----------
    wait : Dist or int
    signal_rate_hz : float
    costs : Costs, optional

    Returns
    -------
    dict
        ``q``, ``retries_per_fault``, ``fault_latency_ns_mean``.
    """
    costs = costs or Costs()
    w = as_dist(wait, "wait").table().astype(float)
    lam = float(signal_rate_hz) / 1e9
    c = costs.fault_ns + costs.driver_ns + costs.struct_page_ns
    if lam == 0:
        return {"q": 1.0, "retries_per_fault": 0.0,
                "fault_latency_ns_mean": float(w.mean()) + c + costs.wakeup_ns}
    q = float(np.mean(np.exp(-lam * w)))
    lat = (1 - q) / (lam * q) + c / q + (1 / q - 1) * costs.signal_ns + costs.wakeup_ns
    return {"q": q, "retries_per_fault": 1 / q - 1, "fault_latency_ns_mean": lat}


def restart_table(rates_hz, wait=SPUFS, n_threads=8, n_accesses=50, seed=0, n_jobs=None):
    """Simulated against closed-form cost of ``nopage_refault``'s restarts, per signal rate.

    Returns
    -------
    DataFrame
        ``signal_rate_hz``, ``retries_per_fault`` and ``retries_per_fault_closed``,
        ``fault_latency_ns_mean`` and ``fault_latency_ns_mean_closed``, ``ratio``
        (simulated / closed-form latency).
    """
    def one(rate):
        r = simulate(spufs(n_threads, wait, rate, False, n_accesses, seed=seed), "nopage_refault")
        cf = refault_expected(wait, rate)
        s = r.summary
        return {"signal_rate_hz": float(rate),
                "retries_per_fault": s["retries_per_fault"],
                "retries_per_fault_closed": cf["retries_per_fault"],
                "fault_latency_ns_mean": s["fault_latency_ns_mean"],
                "fault_latency_ns_mean_closed": cf["fault_latency_ns_mean"],
                "ratio": s["fault_latency_ns_mean"] / cf["fault_latency_ns_mean"]}

    return pd.DataFrame(_pmap(one, list(rates_hz), n_jobs))


# ---------------------------------------------------------------------------------------
# mmap_sem: Lespinasse 2010, Ying Han 2008


def lespinasse(io_ns=LESPINASSE_IO, n_reads=200, n_lock_ops=100_000, pages=1 << 20,
               read_gap_ns=1_000, lock_gap_ns=500, costs=None, seed=0):
    """Michel Lespinasse's 2010 test: random reads of a file on disk beside an mmap loop.

    Thread 0 reads ``n_reads`` random pages of a ``pages``-page file mapping (each a major
    fault on a slow disk); thread 1 loops mmap/munmap (``LOCK_W`` records, ``mmap_sem``
    held for write for ``mmap_cs_ns``).  MODEL.md cites 55 loop iterations/s before his
    patch (``nopage``: the reader holds ``mmap_sem`` across each 18 ms read) and
    15,000/s after (``fault_retry``: the lock is dropped during the read).  Measure with
    :func:`writer_ops_per_s`; the loop need not outlast the reads.

    Parameters
    ----------
    io_ns : Dist or int
        Disk read time (default 18 ms, fixed).
    n_reads : int
        Random reads by thread 0.
    n_lock_ops : int
        mmap/munmap calls by thread 1.
    pages : int
        File size in pages (default 4 GiB of 4 KiB pages: reads practically never hit).
    read_gap_ns, lock_gap_ns : int
        Compute time before each read and each mmap/munmap call, in ns.  The loop runs at
        most ``1e9 / (mmap_cs_ns + lock_gap_ns)`` times a second.
    costs : Costs, optional
        Other costs (``io_ns`` is set from the argument).
    seed : int

    Returns
    -------
    Scenario
    """
    tr = synth.random_reads_with_mmap_loop(n_reads=n_reads, pages=pages, n_lock_ops=n_lock_ops,
                                           read_gap_ns=read_gap_ns, lock_gap_ns=lock_gap_ns,
                                           seed=seed)
    costs = (costs or Costs()).replace(io_ns=as_dist(io_ns, "io_ns"))
    vma = Vma(synth.DEFAULT_BASE, synth.DEFAULT_BASE + pages * tr.page_size, backing="file",
              name="file")
    return Scenario(tr, vmas=(vma,), costs=costs, seed=seed)


def google_reverse(n_threads=64, pages=4096, io_ns=HDD, n_lock_ops=20_000, lock_gap_ns=500,
                   split=True, costs=None, seed=0):
    """Ying Han's 2008 workload: many threads fault one file in reverse page order while
    another thread loops mmap/munmap.

    Parameters
    ----------
    n_threads : int
        Faulting threads (default 64), tids ``0..n_threads-1``; the loop is tid
        ``n_threads``.
    pages : int
        File size in pages.
    io_ns : Dist or int
        Read time per page (default :data:`~vmlab.model.costs.HDD`, 8 ms).
    n_lock_ops : int
        mmap/munmap calls of the loop.
    lock_gap_ns : int
        Loop overhead before each call, in ns.
    split : bool
        Threads read disjoint slices (default) or the whole file each
        (:func:`vmlab.trace.synth.reverse_file`).
    costs : Costs, optional
    seed : int

    Returns
    -------
    Scenario
    """
    rev = synth.reverse_file(n_threads=n_threads, pages=pages, split=split)
    loop = synth.lock_loop(n_lock_ops, tid=n_threads, cs_gap_ns=lock_gap_ns)
    tr = concat([rev, loop])
    costs = (costs or Costs()).replace(io_ns=as_dist(io_ns, "io_ns"))
    vma = Vma(synth.DEFAULT_BASE, synth.DEFAULT_BASE + pages * tr.page_size, backing="file",
              name="file")
    return Scenario(tr, vmas=(vma,), costs=costs, seed=seed)


def _writer_window(result):
    """(LOCK_W records, window start, window end) of :func:`writer_ops_per_s`."""
    lk = result.locks
    w = lk[(lk["kind"] == "lock_w") & (lk["release_ns"] >= 0)]
    if not len(w):
        return w, 0, 0
    writers = set(w["thread"].unique())
    th = result.threads
    readers = th[~th["thread"].isin(writers)]
    t0 = int(w["request_ns"].min())
    t_end = int(w["release_ns"].max())
    if len(readers):
        t_end = min(t_end, int(readers["end_ns"].max()))
    return w, t0, t_end


def writer_ops_per_s(result):
    """mmap/munmap calls per second completed while the faulting threads were running.

    The window runs from the loop's first request to the earlier of the loop's last
    release and the end of the last thread that has access records.  Returns NaN without
    ``LOCK_W`` records.
    """
    w, t0, t_end = _writer_window(result)
    if not len(w) or t_end <= t0:
        return math.nan
    return int((w["release_ns"] <= t_end).sum()) * 1e9 / (t_end - t0)


def mmap_sem_table(results):
    """Per policy: concurrent writer throughput, writer waits, fault latency tails.

    Parameters
    ----------
    results : dict
        Policy name -> Result of :func:`lespinasse` or :func:`google_reverse`.

    Returns
    -------
    DataFrame
        ``policy``, ``writer_ops_per_s`` (:func:`writer_ops_per_s`),
        ``writer_wait_ns_p50``/``_p99``/``_max`` (lock wait of the loop's calls requested in
        the same window), ``fault_latency_ns_p50``/``_p99``/``_max``,
        ``fault_lock_wait_ns_max`` (a fault's longest wait for ``mmap_sem``),
        ``reader_elapsed_ns``, ``n_faults``.
    """
    rows = []
    for name, r in results.items():
        w, t0, t_end = _writer_window(r)
        ww = w[w["request_ns"] <= t_end]["wait_ns"]
        s = r.summary
        th = r.threads
        readers = th[~th["thread"].isin(set(w["thread"].unique()))]
        f = r.faults
        rows.append({
            "policy": name,
            "writer_ops_per_s": writer_ops_per_s(r),
            "writer_wait_ns_p50": float(ww.median()) if len(ww) else math.nan,
            "writer_wait_ns_p99": float(ww.quantile(0.99)) if len(ww) else math.nan,
            "writer_wait_ns_max": float(ww.max()) if len(ww) else math.nan,
            "fault_latency_ns_p50": s["fault_latency_ns_p50"],
            "fault_latency_ns_p99": s["fault_latency_ns_p99"],
            "fault_latency_ns_max": s["fault_latency_ns_max"],
            "fault_lock_wait_ns_max": float(f["lock_wait_ns"].max()) if len(f) else math.nan,
            "reader_elapsed_ns": int(readers["end_ns"].max()) if len(readers) else 0,
            "n_faults": s["n_faults"],
        })
    return pd.DataFrame(rows)


def threads_table(results):
    """Per policy and thread: when it ended, where its time went, its mmap-family calls.

    Parameters
    ----------
    results : dict
        Policy name -> Result.

    Returns
    -------
    DataFrame
        ``policy``, ``thread``, ``tid``, ``state``, ``end_ns``, ``records_done``,
        ``n_lock_w`` (its ``LOCK_W`` calls completed) and the time breakdown columns.
    """
    frames = []
    for name, r in results.items():
        th = r.threads.copy()
        lk = r.locks
        w = lk[(lk["kind"] == "lock_w") & (lk["release_ns"] >= 0)].groupby("thread").size()
        th["n_lock_w"] = th["thread"].map(w).fillna(0).astype(int)
        th["state"] = th["state"].astype(str)
        th.insert(0, "policy", name)
        frames.append(th)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------
# The fadvise(DONTNEED) adversary


def dos(adversary_rate_hz, io_ns, signal_rate_hz=0.0, kind="poisson", n_faults=20,
        gap_ns=1_000, horizon_ns=None, horizon_factor=20, n_victims=1, costs=None, seed=0):
    """Andrew Morton's objection: a victim faulting a file beside an fadvise adversary.

    The victim (thread 0; with ``n_victims`` > 1, threads ``0..n_victims-1``, each with its
    own pages) reads ``n_faults`` pages of a file in order (each a major fault); an
    adversary calls ``fadvise(FADV_DONTNEED)`` on the whole file at ``adversary_rate_hz``.
    It evicts only resident, unlocked, *unmapped* pages: exactly a lock-dropping fault's
    page between its I/O completion and its retry's lookup (about ``wakeup_ns + fault_ns +
    struct_page_ns`` = 2.6 µs at the defaults).

    Parameters
    ----------
    adversary_rate_hz : float
        fadvise calls per second (0: no adversary).
    io_ns : Dist or int
        Read time per page.
    signal_rate_hz : float
        Poisson signals to the victim (a signal storm; 0: none).
    kind : {"poisson", "periodic"}
        The adversary's schedule.  A periodic schedule faster than the window evicts at
        every retry; a Poisson one with probability ``1 - exp(-rate * window)``.
    n_faults : int
        Pages the victim reads.
    gap_ns : int
        Victim compute time before each access, in ns.
    horizon_ns : int, optional
        End of the run; default ``horizon_factor`` times the victim's run time without an
        adversary (estimated as ``n_faults * (mean io + gap + 10 µs)``).
    horizon_factor : float
    n_victims : int
        Victim threads (default 1).
    costs : Costs, optional
    seed : int

    Returns
    -------
    Scenario
    """
    if kind not in ("poisson", "periodic"):
        raise ScenarioError(f"dos(): kind must be 'poisson' or 'periodic', got {kind!r}")
    io = as_dist(io_ns, "io_ns")
    costs = (costs or Costs()).replace(io_ns=io)
    pages = n_victims * n_faults
    tr = synth.shared_file(n_victims, n_faults, pages=pages, pattern="sequential",
                           gap_ns=int(gap_ns), seed=seed)
    vma = Vma(synth.DEFAULT_BASE, synth.DEFAULT_BASE + pages * tr.page_size, backing="file",
              name="file")
    adv = None
    if adversary_rate_hz and adversary_rate_hz > 0:
        if kind == "poisson":
            adv = Adversary(kind="poisson", rate_hz=float(adversary_rate_hz))
        else:
            adv = Adversary(kind="periodic", period_ns=max(1, int(round(1e9 / adversary_rate_hz))))
    if horizon_ns is None:
        horizon_ns = int(horizon_factor * n_faults * (io.table_mean_ns() + gap_ns + 10_000))
    signals = (poisson_signals(signal_rate_hz),) if signal_rate_hz and signal_rate_hz > 0 else ()
    return Scenario(tr, vmas=(vma,), policy="fault_retry", costs=costs, adversary=adv,
                    signals=signals, horizon_ns=int(horizon_ns), seed=seed)


def _io_label(io):
    io = as_dist(io, "io_ns")
    return float(io.value_ns) if isinstance(io, Fixed) else io.table_mean_ns()


def victim_outcome(result, livelock_retries=2):
    """Whether the DoS victim finished, and whether it is livelocked (see module notes).

    Returns
    -------
    dict
        ``finished``, ``max_retries`` (most retries of one fault, finished or not),
        ``stuck_retries`` (retries of the fault in progress at the horizon, 0 if none),
        ``livelock``.
    """
    f = result.faults
    th = result.threads
    finished = bool((th["state"] == "done").all())
    unf = f[f["outcome"] == "unfinished"]
    stuck = int(unf["retries"].max()) if len(unf) else 0
    return {"finished": finished,
            "max_retries": int(f["retries"].max()) if len(f) else 0,
            "stuck_retries": stuck,
            "livelock": (not finished) and stuck >= livelock_retries}


def dos_grid(rates_hz, io_ns_values, policies=RETRY_POLICIES, horizon_ns=None,
             signal_rate_hz=0.0, kind="poisson", n_faults=20, horizon_factor=20,
             livelock_retries=2, seed=0, n_jobs=None):
    """The DoS experiment over a grid of adversary rates, I/O latencies and policies.

    Every point is compared with the same victim, I/O latency and policy without an
    adversary (the baseline).

    Parameters
    ----------
    rates_hz : sequence of float
        Adversary rates (fadvise calls per second).
    io_ns_values : sequence of Dist or int
        I/O latencies.
    policies : sequence of str or Policy
        Default: the three retry variants.
    horizon_ns : int, optional
        Fixed horizon for every point; default ``horizon_factor`` times the point's
        baseline run time.
    signal_rate_hz : float
        Signal storm against the victim (also in the baseline).
    kind : {"poisson", "periodic"}
    n_faults : int
    horizon_factor : float
    livelock_retries : int
        Retries of the fault stuck at the horizon from which a victim that did not finish
        counts as livelocked.
    seed : int
    n_jobs : int, optional

    Returns
    -------
    DataFrame
        One row per (rate, io, policy): ``adversary_rate_hz``, ``io_ns`` (mean),
        ``policy``, ``signal_rate_hz``, ``elapsed_ns``, ``baseline_elapsed_ns``,
        ``slowdown`` (elapsed / baseline; a lower bound when unfinished),
        ``retries_per_fault``, ``max_retries``, ``n_faults_done``, ``n_adversary_evictions``,
        ``n_wasted_io``, ``finished``, ``livelock``, ``horizon_ns``.
    """
    pols = [get_policy(p) for p in policies]
    ios = list(io_ns_values)
    base_jobs = [(io, p) for io in ios for p in pols]

    def base(job):
        io, p = job
        sc = dos(0, io, signal_rate_hz=signal_rate_hz, kind=kind, n_faults=n_faults, seed=seed,
                 horizon_factor=horizon_factor)
        return simulate(sc, p).summary["elapsed_ns"]

    baselines = dict(zip([(i, p.name) for i in range(len(ios)) for p in pols],
                         _pmap(base, base_jobs, n_jobs)))
    jobs = [(rate, i, p) for rate in rates_hz for i in range(len(ios)) for p in pols]

    def one(job):
        rate, i, p = job
        b = baselines[(i, p.name)]
        h = horizon_ns if horizon_ns is not None else int(horizon_factor * b)
        sc = dos(rate, ios[i], signal_rate_hz=signal_rate_hz, kind=kind, n_faults=n_faults,
                 horizon_ns=h, seed=seed)
        r = simulate(sc, p)
        s = r.summary
        out = victim_outcome(r, livelock_retries)
        f = r.faults
        return {
            "adversary_rate_hz": float(rate),
            "io_ns": _io_label(ios[i]),
            "policy": p.name,
            "signal_rate_hz": float(signal_rate_hz),
            "elapsed_ns": s["elapsed_ns"],
            "baseline_elapsed_ns": b,
            "slowdown": s["elapsed_ns"] / b if b else math.nan,
            "retries_per_fault": s["retries_per_fault"],
            "max_retries": out["max_retries"],
            "n_faults_done": int((f["outcome"] == "done").sum()),
            "n_adversary_evictions": s["n_adversary_evictions"],
            "n_wasted_io": s["n_wasted_io"],
            "finished": out["finished"],
            "livelock": out["livelock"],
            "horizon_ns": h,
        }

    return pd.DataFrame(_pmap(one, jobs, n_jobs))


# ---------------------------------------------------------------------------------------
# Device memory: nopfn vs remap_pfn_range vs nopage


def device_mapping(n_pages=4096, touched_fraction=0.1, backing="device", other_thread=True,
                   other_pages=64, other_gap_ns=1_000, costs=None, seed=0):
    """A driver's mapping of device memory, touched in part, beside another thread.

    Thread 0 ``mmap()``s ``n_pages`` pages of device memory and touches
    ``max(1, round(touched_fraction * n_pages))`` distinct pages of it, chosen at random,
    once each.  Under ``remap_pfn_range`` it maps every page at ``mmap()`` time, holding
    ``mmap_sem`` for write for ``remap_fixed_ns + n_pages * pte_ns``; under ``nopage`` and
    ``nopfn`` each touched page faults once.  With ``other_thread``, thread 1 faults its own
    anonymous mapping (``other_pages`` pages, ``nopage``, one access every
    ``other_gap_ns``) from time ``other_gap_ns`` on: it stalls while the eager mapping
    holds the lock.

    Parameters
    ----------
    n_pages : int
        Size of the device mapping in pages.
    touched_fraction : float
        Fraction of the pages thread 0 touches, in [0, 1].
    backing : {"device", "iomem"}
        Device memory with ``struct page`` or without (PCI BAR, mspec: ``nopage`` SIGBUSes).
    other_thread : bool
        Add thread 1.
    other_pages : int
    other_gap_ns : int
    costs : Costs, optional
    seed : int
        Which pages are touched.

    Returns
    -------
    Scenario
    """
    if backing not in ("device", "iomem"):
        raise ScenarioError(f"device_mapping(): backing must be 'device' or 'iomem', got {backing!r}")
    if not 0.0 <= touched_fraction <= 1.0:
        raise ScenarioError(f"touched_fraction must be in [0, 1], got {touched_fraction}")
    ps = 4096
    n_touch = touched_pages(n_pages, touched_fraction)
    rng = np.random.default_rng(seed)
    pages = np.sort(rng.permutation(n_pages)[:n_touch]).astype(np.uint64)
    addr = np.uint64(DEVICE_BASE) + pages * np.uint64(ps)
    tid = np.zeros(n_touch, np.uint8)
    gap = np.zeros(n_touch, np.uint64)
    vmas = [Vma(DEVICE_BASE, DEVICE_BASE + n_pages * ps, backing=backing, name="device",
                map_thread=0)]
    if other_thread:
        oaddr = np.uint64(OTHER_BASE) + np.arange(other_pages, dtype=np.uint64) * np.uint64(ps)
        addr = np.concatenate((addr, oaddr))
        tid = np.concatenate((tid, np.ones(other_pages, np.uint8)))
        gap = np.concatenate((gap, np.full(other_pages, other_gap_ns, np.uint64)))
        vmas.append(Vma(OTHER_BASE, OTHER_BASE + other_pages * ps, backing="anon",
                        policy="nopage", name="other thread's heap"))
    tr = Trace(addr, tid=tid, gap_ns=gap, meta=TraceMeta(
        page_size=ps, source=f"vmlab.scenarios.device_mapping(n_pages={n_pages}, "
                             f"touched_fraction={touched_fraction}, seed={seed})"))
    return Scenario(tr, vmas=tuple(vmas), policy="nopfn", costs=costs or Costs(), seed=seed)


def touched_pages(n_pages, touched_fraction):
    """Pages :func:`device_mapping` touches: ``max(1, round(touched_fraction * n_pages))``."""
    return max(1, int(round(touched_fraction * n_pages)))


def _device_row(result, n_pages, fraction):
    pol = result.policy
    th = result.threads.set_index("thread")
    t0 = th.loc[0]
    f = result.faults
    dev = f[(f["vma_name"] == "device")]
    done = dev[dev["outcome"] == "done"]
    lk = result.locks
    remap = lk[lk["kind"] == "remap"]
    n_pte = n_pages if pol.eager else int(done["vpn"].nunique())
    n_sp = int(done["vpn"].nunique()) if (pol.needs_struct_page and not pol.eager) else 0
    others = th.drop(index=0)
    return {
        "touched_fraction": float(fraction),
        "touched_pages": touched_pages(n_pages, fraction),
        "n_pages": int(n_pages),
        "policy": pol.name,
        # the mapping thread's time but its compute gaps: mmap() (remap) + faults + accesses
        "total_ns": int(t0["end_ns"] - t0["compute_ns"]),
        "mmap_latency_ns": int(remap["hold_ns"].sum()) if len(remap) else 0,
        "n_faults": int(len(dev)),
        "n_sigbus": int((dev["outcome"] == "sigbus").sum()),
        "page_table_bytes": 4096 * math.ceil(n_pte / 512),
        "pte_bytes": 8 * n_pte,
        "struct_page_bytes": STRUCT_PAGE_BYTES * n_sp,
        "stalled_ns": int(others["lock_wait_ns"].sum()) if len(others) else 0,
    }


def eager_vs_lazy(fractions, n_pages=4096, policies=("nopage", "nopfn", "remap_pfn_range"),
                  backing="device", other_thread=True, costs=None, seed=0, n_jobs=None):
    """Eager ``remap_pfn_range`` against lazy ``nopfn``/``nopage`` over touched fractions.

    Parameters
    ----------
    fractions : sequence of float
        Touched fractions of the mapping.
    n_pages : int
    policies : sequence of str or Policy
    backing : {"device", "iomem"}
    other_thread : bool
        Measure the stall of a second thread (see :func:`device_mapping`).
    costs : Costs, optional
    seed : int
    n_jobs : int, optional

    Returns
    -------
    DataFrame
        One row per (fraction, policy): ``touched_fraction``, ``touched_pages``,
        ``n_pages``, ``policy``, ``total_ns`` (the mapping thread's mmap() plus faults plus
        accesses), ``mmap_latency_ns`` (the remap's write hold of ``mmap_sem``),
        ``n_faults``, ``n_sigbus``, ``page_table_bytes`` (4 KiB per 512 PTEs of the device
        VMA), ``pte_bytes`` (8 per PTE), ``struct_page_bytes`` (64 per touched page under a
        ``struct page`` policy), ``stalled_ns`` (lock wait of the other thread).
    """
    pols = [get_policy(p) for p in policies]
    jobs = [(f, p) for f in fractions for p in pols]

    def one(job):
        f, p = job
        sc = device_mapping(n_pages, f, backing=backing, other_thread=other_thread,
                            costs=costs, seed=seed)
        return _device_row(simulate(sc, p), n_pages, f)

    return pd.DataFrame(_pmap(one, jobs, n_jobs))


def _lazy_fault_ns(costs, policy):
    pol = get_policy(policy)
    if pol.eager:
        raise ScenarioError(f"{pol.name} is eager: it takes no faults")
    return costs.fault_ns + costs.driver_ns + (costs.struct_page_ns if pol.needs_struct_page else 0)


def eager_total_ns(costs, n_pages, n_touched):
    """Closed form of ``remap_pfn_range``'s total: ``remap_fixed_ns + n_pages * pte_ns``
    plus ``access_ns`` per touched page (MODEL.md section 3)."""
    return costs.remap_fixed_ns + n_pages * costs.pte_ns + n_touched * costs.access_ns


def lazy_total_ns(costs, n_touched, policy="nopfn"):
    """Closed form of a lazy policy's total on device memory: per touched page one fault
    (``fault_ns + driver_ns``, plus ``struct_page_ns`` for the ``nopage`` family) and one
    access."""
    return n_touched * (_lazy_fault_ns(costs, policy) + costs.access_ns)


def crossover_fraction(costs=None, n_pages=4096, policy="nopfn"):
    """Touched fraction at which eager ``remap_pfn_range`` and a lazy policy cost the same.

    Setting :func:`eager_total_ns` equal to :func:`lazy_total_ns` with ``f * n_pages``
    touched pages (the access costs cancel)::

        f* = (remap_fixed_ns + n_pages * pte_ns) / (n_pages * (fault_ns + driver_ns [+ struct_page_ns]))

    Below ``f*`` lazy faulting is cheaper; above it mapping everything up front is.
    With the default costs and 4096 pages: 0.0811 for ``nopfn``, 0.0721 for ``nopage``.

    Parameters
    ----------
    costs : Costs, optional
    n_pages : int
    policy : str or Policy
        The lazy policy.

    Returns
    -------
    float
        May exceed 1 (then eager never pays off).
    """
    costs = costs or Costs()
    return (costs.remap_fixed_ns + n_pages * costs.pte_ns) / (n_pages * _lazy_fault_ns(costs, policy))


def simulated_crossover(df, lazy="nopfn", eager="remap_pfn_range", x="touched_fraction",
                        y="total_ns"):
    """Where the simulated ``y`` of ``lazy`` and ``eager`` cross, interpolated linearly in ``x``.

    Parameters
    ----------
    df : DataFrame
        From :func:`eager_vs_lazy`.

    Returns
    -------
    float
        The first crossing, or NaN if the curves do not cross within the range of ``x``.
    """
    a = df[df["policy"] == lazy].groupby(x)[y].mean()
    b = df[df["policy"] == eager].groupby(x)[y].mean()
    d = (a - b).dropna().sort_index()
    xs, ds = d.index.to_numpy(float), d.to_numpy(float)
    for i in range(len(xs)):
        if ds[i] == 0:
            return float(xs[i])
        if i and np.sign(ds[i]) != np.sign(ds[i - 1]):
            return float(xs[i - 1] + (xs[i] - xs[i - 1]) * ds[i - 1] / (ds[i - 1] - ds[i]))
    return math.nan


# ---------------------------------------------------------------------------------------
# Shipped traces


#: Backings by inferred VMA label (``backing="by_label"``): code is file-backed (the binary
#: and its libraries), the rest anonymous.
BACKING_BY_LABEL = {"text": "file", "data": "anon", "stack": "anon"}


def _add_mmap_loop(trace, n_ops, gap_ns):
    tid = int(trace.tid.max()) + 1 if len(trace) else 0
    asid = int(trace.asid.min()) if len(trace) else 0
    return concat([trace, synth.lock_loop(n_ops, tid=tid, cs_gap_ns=gap_ns, asid=asid)])


def program_scenario(name, backing="file", io_ns=NVME, costs=None, mmap_loop_ops=0,
                     mmap_loop_gap_ns=500, **fields):
    """A Scenario for a shipped trace, VMAs inferred and given backings.

    Parameters
    ----------
    name : str
        A shipped trace (:func:`vmlab.datasets.list_shipped`).
    backing : str or dict
        Backing of every inferred VMA; ``"by_label"`` for :data:`BACKING_BY_LABEL`, or a
        dict from label (``text``, ``data``, ``stack``) to backing.
    io_ns : Dist or int
        Read time of a file page.
    costs : Costs, optional
    mmap_loop_ops : int
        Add a thread (the next free tid) looping ``mmap_loop_ops`` mmap/munmap calls
        (``LOCK_W``), as in Lespinasse's test, to see what the program's faults do to it.
    mmap_loop_gap_ns : int
        That loop's overhead before each call, in ns.
    **fields
        Other Scenario fields (``memory_pages``, ``signals``...).

    Returns
    -------
    Scenario
    """
    from .datasets import load_shipped
    from .trace.vmas import infer_vmas

    tr = load_shipped(name)
    if mmap_loop_ops:
        tr = _add_mmap_loop(tr, mmap_loop_ops, mmap_loop_gap_ns)
    costs = (costs or Costs()).replace(io_ns=as_dist(io_ns, "io_ns"))
    if isinstance(backing, str) and backing != "by_label":
        return Scenario(tr, backing=backing, costs=costs, **fields)
    table = BACKING_BY_LABEL if backing == "by_label" else dict(backing)
    vmas = []
    for r in infer_vmas(tr):
        if r.label not in table:
            raise ScenarioError(f"backing table has no entry for VMA label {r.label!r} "
                                f"(labels: text, data, stack)")
        vmas.append(Vma(r.start, r.end, backing=table[r.label], asid=r.asid,
                        name=f"{r.label}@{r.start:#x}"))
    return Scenario(tr, vmas=tuple(vmas), costs=costs, **fields)


def vma_table(scenario):
    """The VMAs of a scenario (given or inferred) as a DataFrame.

    Returns
    -------
    DataFrame
        ``name``, ``asid``, ``start`` (hex), ``pages``, ``pages_touched``, ``records``,
        ``backing``, ``policy`` (the VMA's own, or empty: the run's).
    """
    tr = scenario.trace
    ps = tr.page_size
    acc = np.asarray(tr.op) != Op.LOCK_W
    addr = np.asarray(tr.addr)[acc]
    asid = np.asarray(tr.asid)[acc]
    rows = []
    for v in scenario.resolved_vmas():
        m = (asid == v.asid) & (addr >= v.start) & (addr < v.end)
        rows.append({"name": v.name, "asid": int(v.asid), "start": f"{int(v.start):#x}",
                     "pages": int((v.end - v.start) // ps),
                     "pages_touched": int(len(np.unique(addr[m] // ps))),
                     "records": int(m.sum()), "backing": v.backing,
                     "policy": v.policy.name if v.policy is not None else ""})
    return pd.DataFrame(rows)


def distinct_pages(trace, vmas=None, backing=None):
    """Distinct (address space, page) pairs touched by access records of ``trace``.

    With ``vmas`` and ``backing``, only pages inside VMAs of that backing count.
    """
    acc = np.asarray(trace.op) != Op.LOCK_W
    asid = np.asarray(trace.asid)[acc].astype(np.uint64)
    addr = np.asarray(trace.addr)[acc]
    keep = np.ones(len(addr), bool)
    if vmas is not None and backing is not None:
        keep[:] = False
        for v in vmas:
            if v.backing == backing:
                keep |= (asid == v.asid) & (addr >= v.start) & (addr < v.end)
    shift = np.uint64(int(trace.page_size).bit_length() - 1)
    keys = (asid[keep] << np.uint64(52)) | (addr[keep] >> shift)
    return int(len(np.unique(keys)))


def real_program(name, memory_fractions=(1.0, 0.5, 0.25, 0.1),
                 policies=("nopage", "fault_retry"), backing="file", io_ns=NVME,
                 replacement="lru", costs=None, n_jobs=None):
    """Replay a shipped lackey trace under each policy across page-cache sizes.

    The trace's VMAs are inferred (:func:`vmlab.trace.vmas.infer_vmas`) and given
    ``backing`` (see :func:`program_scenario`).  A memory fraction ``m`` gives the page
    cache ``max(2 * threads + 1, ceil(m * distinct file pages))`` frames (1.0: every
    file page fits, only cold misses; anonymous pages use no frames).

    Parameters
    ----------
    name : str
        A shipped trace (:func:`vmlab.datasets.list_shipped`).
    memory_fractions : sequence of float
    policies : sequence of str or Policy
    backing : str or dict
        See :func:`program_scenario` (``"by_label"``: code file-backed, data anonymous).
    io_ns : Dist or int
    replacement : {"lru", "fifo", "clock"}
    costs : Costs, optional
    n_jobs : int, optional

    Returns
    -------
    DataFrame
        One row per (memory fraction, policy): ``program``, ``memory_fraction``,
        ``memory_pages``, ``file_pages`` (distinct file pages touched) and the summary
        columns.
    """
    base = program_scenario(name, backing=backing, io_ns=io_ns, costs=costs,
                            replacement=replacement)
    tr = base.trace
    n_distinct = max(1, distinct_pages(tr, base.resolved_vmas(), "file"))
    floor = 2 * tr.n_threads + 1
    pols = [get_policy(p) for p in policies]
    jobs = [(m, p) for m in memory_fractions for p in pols]

    def one(job):
        m, p = job
        mp = max(floor, int(math.ceil(m * n_distinct)))
        r = simulate(base.replace(memory_pages=mp), p)
        row = {"program": name, "memory_fraction": float(m), "memory_pages": mp,
               "file_pages": n_distinct}
        row.update(r.summary)
        return row

    return pd.DataFrame(_pmap(one, jobs, n_jobs))


def perf_replay(name, policies=("nopage", "nopage_refault", "fault_retry", "fault_retry_v57"),
                backing="file", io_ns=NVME, mmap_loop_ops=0, mmap_loop_gap_ns=500, costs=None,
                n_jobs=None, results=False):
    """Replay a shipped perf page-fault trace with its own threads and timing.

    The trace's ``gap_ns`` (from perf's timestamps) is each thread's time between faults;
    its VMAs are inferred and given ``backing``.  Since a perf fault trace records faults
    only, every record is a first touch: the replay shows what those faults would cost
    under each policy, on top of the program's own measured time.

    Parameters
    ----------
    name : str
        A shipped trace (:func:`vmlab.datasets.list_shipped`).
    policies : sequence of str or Policy
    backing : str or dict
        See :func:`program_scenario`.
    io_ns : Dist or int
    mmap_loop_ops : int
        Add an mmap/munmap loop thread (see :func:`program_scenario`).
    mmap_loop_gap_ns : int
    costs : Costs, optional
    n_jobs : int, optional
    results : bool
        Also return the Results by policy.

    Returns
    -------
    DataFrame or (DataFrame, dict)
        One summary row per policy, with ``program``, ``n_threads`` and
        ``writer_ops_per_s_concurrent`` (:func:`writer_ops_per_s`, NaN without a loop).
    """
    sc = program_scenario(name, backing=backing, io_ns=io_ns, costs=costs,
                          mmap_loop_ops=mmap_loop_ops, mmap_loop_gap_ns=mmap_loop_gap_ns)
    res = run_policies(sc, policies, n_jobs)
    df = summary_table(res)
    df.insert(0, "n_threads", sc.trace.n_threads)
    df.insert(0, "program", name)
    df["writer_ops_per_s_concurrent"] = [writer_ops_per_s(r) for r in res.values()]
    return (df, res) if results else df
