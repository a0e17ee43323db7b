"""Faults holding ``mmap_sem`` across I/O: Lespinasse 2010 and Ying Han 2008 (notebook 03).

Under ``nopage`` a fault holds ``mmap_sem`` for read through its disk read, so an
mmap/munmap loop in the same process (``LOCK_W`` records) waits behind every read;
``fault_retry`` drops the lock during the read.

======================  ====================================================================
:func:`lespinasse`      random reads of a file on disk beside an mmap/munmap loop
:func:`google_reverse`  many threads faulting a file in reverse order beside that loop
:func:`mmap_sem_table`  per policy: writer throughput and waits, fault latency tails
:func:`threads_table`   per policy and thread: end, time breakdown, mmap-family calls
======================  ====================================================================

Writer throughput is the summary's ``writer_ops_per_s``: the loop's calls completed while
the faulting threads still run, over that span (:meth:`vmlab.results.Result.writer_window_ns`).
"""
from __future__ import annotations

import math

import pandas as pd

from ..model.costs import HDD, Costs, Fixed, as_dist
from ..model.scenario import Scenario, Vma
from ..trace import synth
from ..trace.build import concat

#: Lespinasse's disk: about 18 ms per random 4 KiB read (MODEL.md section 5).
LESPINASSE_IO = Fixed(18_000_000)
#: Lespinasse's 2010 measurement (MODEL.md): iterations per second of the mmap/munmap loop
#: beside the random reads, before his patch (``nopage``) and after it (``fault_retry``).
LESPINASSE_WRITER_OPS_PER_S = {"nopage": 55, "fault_retry": 15_000}


def lespinasse(io_ns=LESPINASSE_IO, n_reads=200, n_lock_ops=100_000, pages=1 << 20,
               read_gap_ns=1_000, lock_gap_ns=500, costs=None, seed=0):
    """Michel Lespinasse's 2010 test: random reads of a file on disk beside an mmap loop.

    Thread 0 reads ``n_reads`` random pages of a ``pages``-page file mapping (each a major
    fault on a slow disk); thread 1 loops mmap/munmap (``LOCK_W`` records, ``mmap_sem``
    held for write for ``mmap_cs_ns``).  MODEL.md cites 55 loop iterations/s before his
    patch (``nopage``: the reader holds ``mmap_sem`` across each 18 ms read) and
    15,000/s after (``fault_retry``: the lock is dropped during the read).  Measure with
    the summary's ``writer_ops_per_s``; the loop need not outlast the reads.

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


def mmap_sem_table(results):
    """Per policy: concurrent writer throughput, writer waits, fault latency tails.

    Parameters
    ----------
    results : dict
        Policy name -> Result of :func:`lespinasse` or :func:`google_reverse`.

    Returns
    -------
    DataFrame
        ``policy``, ``writer_ops_per_s`` (the summary's), ``writer_wait_ns_p50``/``_p99``/
        ``_max`` (lock wait of the loop's calls requested in the same window), ``fault_latency_ns_p50``/``_p99``/``_max``,
        ``fault_lock_wait_ns_max`` (a fault's longest wait for ``mmap_sem``),
        ``reader_elapsed_ns`` (end of the last thread with access records), ``n_faults``.
    """
    rows = []
    for name, r in results.items():
        window = r.writer_window_ns()
        lk = r.locks
        if window is None:
            ww = lk["wait_ns"].iloc[:0]
        else:
            ww = lk[(lk["kind"] == "lock_w") & (lk["release_ns"] >= 0)
                    & (lk["request_ns"] <= window[1])]["wait_ns"]
        s = r.summary
        f = r.faults
        rows.append({
            "policy": name,
            "writer_ops_per_s": s["writer_ops_per_s"],
            "writer_wait_ns_p50": float(ww.median()) if len(ww) else math.nan,
            "writer_wait_ns_p99": float(ww.quantile(0.99)) if len(ww) else math.nan,
            "writer_wait_ns_max": float(ww.max()) if len(ww) else math.nan,
            "fault_latency_ns_p50": s["fault_latency_ns_p50"],
            "fault_latency_ns_p99": s["fault_latency_ns_p99"],
            "fault_latency_ns_max": s["fault_latency_ns_max"],
            "fault_lock_wait_ns_max": float(f["lock_wait_ns"].max()) if len(f) else math.nan,
            "reader_elapsed_ns": max(0, int(r.counters["access_threads_end_ns"])),
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
