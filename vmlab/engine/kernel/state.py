"""The kernel's mutable state: the work arrays (one ``Work`` tuple) and the scalar state
(one int64 array ``G``, columns ``G_*``), shared by the event loop and the phase functions.

Every phase is a function of ``(K, W, G, th, t)``: the inputs (``KernelInputs``), the work
arrays, the scalar state, the thread and the time.  A scalar that a phase changes lives in
``G`` so that no phase returns more than its next step.  Arrays are never reassigned inside
a pass of the event loop: the record tables, the signal queues and the adversary's notes
grow between passes, and ``W`` is rebuilt then (loop.py).

The phase functions and the verbs they call are compiled with ``vmlab._numba.njit_borrow`` (numba's
reference counting off): they only read and write arrays their caller owns, never allocate,
and so pay no ``NRT_incref``/``NRT_decref`` pair per array argument per call
(docs/performance.md, fifth session).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..._numba import njit_verb


# ---- the scalar state G[...] (int64; flags are 0/1)
# page cache
G_N_RESIDENT = 0    # frames the page cache holds
G_N_ENT = 1         # its entries (cache_mode only; else equal to G_N_RESIDENT)
G_N_ANON = 2        # unreclaimable frames: anonymous pages, private copies, the kernel's own
#                     (page tables, PGDs, kernel stacks; memory_bytes only)
G_HAND = 3          # CLOCK's hand (a page-cache entry, or the sentinel)
G_N_CAND = 4        # notes in W.cand (pages the adversary may take; stale ones are skipped)
G_OOM = 5           # 1 once a charge found no frame: the run ends (docs/model.md section 12)
# record tables: rows used (the tables grow between passes)
G_NF = 6            # fault records
G_NS = 7            # signal records
G_NL = 8            # lock records
G_NEV = 9           # eviction records
G_NVL = 10          # VMA lock / speculative attempt records
# the time series: the bin width, the bins used, and the fast path's cached bin [lo, hi)
G_BIN_NS = 11
G_N_BINS = 12
G_BIN_B = 13
G_BIN_LO = 14
G_BIN_HI = 15       # 0 marks the cached bin stale (the bins were widened)
# draw counters (docs/model.md section 1) and the next I/O draw's table slot, fetched ahead
G_IO_CNT = 16       # I/O time draws taken
G_CTX_CNT = 17      # context wait draws taken
G_ADV_CNT = 18      # the adversary's arrival count
G_IO_SLOT_CNT = 19  # the draw number whose slot G_IO_SLOT holds (-1: none)
G_IO_SLOT = 20
# events
G_HN = 21           # events in the heap (W.ht, W.hk)
G_PEND_FULL = 22    # 1: a thread's signal queue is full (grown before the next event)
G_N_EV = 23         # events taken (thread steps inline included)
G_BUDGET_HIT = 24   # 1: the event budget stopped the run
G_STOP_T = 25       # where the run stops: the horizon, the budget's event, the OOM
# the earliest pending step of the threads other than the one running (found, time, key):
# grants during a thread's run update it (events._with_step) so that it needs no rescan
G_O_FOUND = 26
G_O_T = 27
G_O_K = 28
# threads and the writers' window (docs/model.md 15.6)
G_N_ALIVE = 29      # threads still running
G_N_ACC_ALIVE = 30  # of them, threads with access records
G_ACC_END = 31      # when the last access thread ended (-1: not yet)
G_LW_FIRST = 32     # the first LOCK_W request (-1: none)
G_LW_LAST = 33      # the last LOCK_W release
G_N_GEN_FAULTS = 34  # faults opened by the general path (the fast path's: cnt minus these)
# constants of the run, set once
G_CACHE_MODE = 35   # 1: entries are not their pages (files, folios, readahead, a limit)
G_HAS_WINDOWS = 36  # 1: fault-around windows wider than a page exist
G_TRACK_CAND = 37   # 1: there is an adversary (else nobody reads its notes)
G_LINE_ON = 38      # 1: a lock word's line costs something (docs/model.md 15.1)
G_EV_MARGIN = 39    # eviction rows kept free beyond the fault table's (loop._ev_low)
G_STARTED = 40      # 1 once the first pass put the preload and the first arrivals in place
# twolist's protection of the working set (docs/model.md 8.1; kept only when K.workingset)
G_NR_AGE = 41       # the nonresident age (lruvec->nonresident_age), in pages: grows at each
#                     reclaim eviction and each activation; a shadow entry holds its value
G_ACT_FRAMES = 42   # frames of the entries on the active list (NR_ACTIVE_FILE): a refault
#                     whose distance is at most this joins the active list
G_RECLAIM_BATCH = 43  # frames a reclaim under memory_bytes frees at least (docs/model.md 12)
G_SCAN_LEFT = 44    # inactive entries a batch's top-up may still examine (-1: no budget)
# the per-CPU LRU-add batches (docs/model.md 12.1; memory_bytes with young bits only)
G_LRU_BATCH = 45    # folios a thread's batch holds before it drains (0: no batches)
G_BATCHED = 46      # page-cache entries in some thread's batch (off the lists)
G_N_FOREIGN = 47    # entries on the lists that are another cgroup's (the preload under
#                     memory_bytes): reclaim of this cgroup does not see them
G_AGE_ALL = 48      # 1: a reclaim that starts ages the whole active list (reclaim_ages_active)
# the kernel's reclaim call (docs/model.md 8.4; memory_bytes with young bits only)
G_PRIO = 49         # 1: a charge over the limit runs try_charge_memcg's reclaim calls
G_REFAULT_ACT = 50  # refaults workingset activated (WORKINGSET_ACTIVATE_FILE)
G_REFAULT_SNAP = 51  # ... its value at the end of the last reclaim call (snapshot_refaults)
G_WAKE_CNT = 52     # draws of lock_wakeup_ns taken (docs/model.md 15.14)
G_N_IN_FAULT = 53   # threads inside a fault, from its opening to its end (fault_shared_ns,
#                     docs/model.md 15.1)
G_NCOL = 54

# what a phase function returns beside its next step time: the phase to run next within
# the same step (a ``PH_*``), or one of these
STEP_DONE = -1      # nothing more this step (the next one at the returned time)
HALT = -2           # the thread's run stops: it blocks, ends, or the run stops (an OOM)


@njit_verb
def _entry(K, G, p):
    """Page ``p``'s page-cache entry: ``page_slot[p]`` when entries are not their pages
    (G_CACHE_MODE), else ``p`` itself without reading ``page_slot`` (a load that misses the
    cache for a cold page, at every fault step)."""
    return K.page_slot[p] if G[G_CACHE_MODE] == 1 else p


class Work(NamedTuple):
    """The kernel's work arrays (allocated by ``loop._setup``; docs/model.md)."""

    # pages and page-cache entries (pagecache.py, granularity.py, readahead.py)
    FL: np.ndarray          # uint8 [entries]: flag bits F_*
    PIN: np.ndarray         # int32 [entries]: pin count (faults holding a reference)
    PT: np.ndarray          # uint8 [P]: the kernel model's PTE state (PT_*)
    MAPC: np.ndarray        # int32 [entries]: a folio's pages whose PTE maps it
    RAM: np.ndarray         # uint8 [entries]: 1 while the folio carries the readahead mark
    CHG: np.ndarray         # uint8 [P]: 1 once an anonymous page (or private copy) holds a frame
    PTF: np.ndarray         # uint8 [K.pt_n]: 1 once a page table holds a frame (docs/model.md 12)
    RA: np.ndarray          # int64 [asid * files, 4]: readahead state (readahead.RA_*)
    RS: np.ndarray          # int64 [K.rd_streams, 4]: read() streams' readahead state
    #                         (filereads.RS_*; docs/model.md 11.7.1)
    LL: np.ndarray          # int32 [entries + 2, 2]: the page-cache lists (prev, next); an
    #                         entry in thread t's LRU-add batch holds (-2 - t, -2 - t)
    BQ: np.ndarray          # int64 [T, 2 + G_LRU_BATCH]: each thread's LRU-add batch: folios
    #                         added (anonymous ones too), page-cache entries, then those entries
    SH: np.ndarray          # int64 [entries]: the shadow entry reclaim left in the entry's slot,
    #                         the nonresident age at its eviction (-1: none; docs/model.md 8.1;
    #                         empty without K.workingset, which alone reads it)
    cand: np.ndarray        # int32: the adversary's notes (grown between passes)
    # mmap_sem per address space (locks.py)
    lk_readers: np.ndarray
    lk_writer: np.ndarray
    lk_q: np.ndarray        # [asid, T + 1]: waiting thread * 2 + mode, a ring
    lk_qh: np.ndarray
    lk_qn: np.ndarray
    lk_woken: np.ndarray    # [asid] 1: the writer first in the queue is woken to try (rwsem_steal)
    lk_handoff: np.ndarray  # [asid] 1: ... and the lock goes to it at the next release
    # the lock designs after 2010 (locks.py; used only when K.designs)
    vl_readers: np.ndarray
    vl_wlocked: np.ndarray
    vl_seq: np.ndarray
    vl_ops: np.ndarray      # [VMAs]: acquisitions and releases of the VMA's lock word so far
    mm_seq: np.ndarray
    drain_th: np.ndarray
    anon_vma: np.ndarray    # [VMAs]: 1 once a fault made the VMA's anon_vma (docs/model.md 15.8)
    # threads
    TS: np.ndarray          # [T, TS_NCOL]: each thread's state (codes.TS_*)
    TT: np.ndarray          # [T, TT_NCOL]: the thread table returned (codes.TT_*)
    tn: np.ndarray          # [T]: each thread's next step (events.NO_STEP while blocked)
    fstart: np.ndarray      # [T]: when the open fault began
    vf_h: np.ndarray        # [VMAs]: handler CPU of a fault there (fault_ns + extra)
    # pending signals, a ring per thread (grown between passes)
    pend_t: np.ndarray
    pend_f: np.ndarray
    pend_row: np.ndarray
    pend_h: np.ndarray
    pend_n: np.ndarray
    sig_cnt: np.ndarray     # [T]: each signal schedule's draws / index into explicit times
    # the event heap: I/O completions, adversary calls, signal arrivals (events.py)
    ht: np.ndarray
    hk: np.ndarray
    # records (grown between passes) and tallies (accounting.py)
    faults: np.ndarray
    sigs: np.ndarray
    locks: np.ndarray
    evs: np.ndarray
    vlocks: np.ndarray
    cnt: np.ndarray         # counters: codes.CNT_*
    ts_bins: np.ndarray     # [TSB_NCOL, MAX_BINS]: the time series
    hist_fault: np.ndarray
    hist_sig: np.ndarray
    hist_rwait: np.ndarray
    hist_wwait: np.ndarray
