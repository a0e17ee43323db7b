"""The numba fault kernel, by part.

``simulate(inputs)`` replays one :class:`KernelInputs` (built by ``vmlab.engine.prepare``).
Files: ``events`` (random draws, the event heap, arrivals of signals and adversary calls),
``pagecache`` (admit, touch, victim, evict, remove: the only code that knows replacement
algorithms), ``locks`` (mmap_sem and the VMA locks, the release of a fault's attempt),
``accounting`` (record tables, bins, closing a fault, ending a thread), ``granularity`` and
``readahead`` (the kernel fault model), ``filereads`` (``read()`` calls during the run),
``state`` (the work arrays and the scalar state the
phases share), the phases one function each: ``record`` (a record's start, access and
end), ``lockphases`` (request, grant, a writer's release), ``fault`` (lookup, waits,
install, SIGBUS, the fault's end), ``signals`` (arrival, delivery), ``arrivals`` (I/O
completions, the adversary), ``fastrun`` (the fast path), and ``loop`` (the event loop:
passes, event selection, dispatch by phase).  docs/model.md is the contract.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..._numba import refresh_stale_caches
from . import (accounting, arrivals, events, fastrun, fault, filereads, granularity, lockphases,
               locks, loop, pagecache, readahead, record, signals, state)
from .accounting import MAX_BINS
from .loop import _simulate

# numba checks each cached function against its own file only; these compile into each other
refresh_stale_caches(__path__[0], (accounting, arrivals, events, fastrun, fault, filereads,
                                   granularity, lockphases, locks, loop, pagecache, readahead,
                                   record, signals, state))


class KernelInputs(NamedTuple):
    """Everything the kernel reads, by name (arrays are numpy, scalars Python/numpy numbers).

    Pages are dense ids in first-touch order, threads dense indexes in tid order, VMAs in
    (address space, start) order; see ``vmlab.engine.prepare`` for how each is built.
    """

    # records, in thread order: thread i's are rec_page[thr_off[i]:thr_off[i + 1]]
    rec_page: np.ndarray     # int32: dense page id, or -(asid + 1) for a LOCK_W record,
    #                          -(asid + 1) - codes.LOCKR_PAGE_BASE for a LOCK_R record
    rec_gap: np.ndarray      # gap_ns before each record (unused when not has_gap)
    has_gap: bool
    rec_write: np.ndarray    # uint8: 1 for a store (STORE, MODIFY); read by the kernel model only
    rec_kernel: np.ndarray   # uint8: 1 for an access the kernel made (call KERNEL: no
    #                          FAULT_FLAG_USER, docs/model.md 15.3); empty when no record is
    thr_off: np.ndarray      # int64 [T + 1]
    thr_tid: np.ndarray      # int64 [T]: the trace's thread id
    thr_access: np.ndarray   # int64 [T]: 1 if the thread has access records (not only LOCK_W)
    # pages
    page_vma: np.ndarray     # int32 [P]: VMA index
    page_vpn: np.ndarray     # int64 [P]: virtual page number
    page_rank: np.ndarray    # int64 [P]: rank in (asid, vpn) key order
    by_key: np.ndarray       # int64 [P]: page id of key rank j (a VMA's pages are a key range)
    # VMAs
    vma_backing: np.ndarray  # int64: codes.B_*
    vma_pol: np.ndarray      # int64: row of ``pol``
    vma_asid: np.ndarray     # int64
    vma_p0: np.ndarray       # int64: first key rank of the VMA's touched pages
    vma_p1: np.ndarray       # int64: one past the last
    vma_npages: np.ndarray   # int64: pages the VMA spans (touched or not)
    vma_private: np.ndarray  # int64: 1 for MAP_PRIVATE (kernel model)
    vma_anon_vma: np.ndarray  # uint8: 1 for a VMA with its anon_vma at time 0 (docs/model.md 15.8)
    vma_fast: np.ndarray     # int64: fast-path class (codes.FP_*): fastpath.fast_path_eligibility
    vma_drop: np.ndarray     # bool: a waiting fault there drops mmap_sem (the fast path leaves it)
    emap_vma: np.ndarray     # int64: eager mappings, thread by thread (VMA indexes)
    emap_off: np.ndarray     # int64 [T + 1]
    # policies, costs, distributions
    pol: np.ndarray          # int64 [n_policies, codes.K_NCOL]: knob rows
    costs: np.ndarray        # int64 [codes.COST_*]
    tables: np.ndarray       # int64 [n_dists, TABLE_SIZE]: quantile tables
    tflat: np.ndarray        # the same tables, flat (tables.ravel())
    io_dist: int             # row of ``tables`` for I/O times
    wait_dist: int           # row of ``tables`` for context waits
    wake_dist: int           # row of ``tables`` for a woken lock waiter's delay (15.14)
    wake_on: bool            # ... and whether it can be other than 0
    io_wake_dist: int        # row of ``tables`` for a thread's wait for a CPU after I/O (15.14)
    io_wake_on: bool         # ... and whether it can be other than 0
    wake_all_readers: bool   # a release that grants a reader grants every queued one (5.3+)
    rwsem_steal: bool        # a queue's head writer is woken to try; the free lock is taken
    #                          past the queue until its hand-off (docs/model.md section 4)
    # signals, per thread: schedule code, parameter (period, or a table row), start, fatal
    sig_kind: np.ndarray
    sig_param: np.ndarray
    sig_start: np.ndarray
    sig_fatal: np.ndarray
    sig_times: np.ndarray    # explicit times, thread i's at sig_toff[i]:sig_toff[i + 1]
    sig_toff: np.ndarray
    # the adversary (kind SCHED_NONE: none)
    adv_kind: int
    adv_param: int
    adv_start: int
    adv_times: np.ndarray
    adv_target: np.ndarray   # uint8 [entries]: 1 for the page-cache entries of its range
    adv_entries: np.ndarray  # int64: those entries (whose shadows each call clears, 8.1)
    # page cache
    memory_pages: int        # frames (memory_pages, or memory_bytes / page size), -1 unlimited
    replacement: int         # codes.REPL_*
    twolist_ratio: int       # twolist: the active list is aged while inactive * ratio < active
    workingset: bool         # twolist's protection of the working set (docs/model.md 8.1)
    young: bool              # twolist in the kernel model reads the PTEs' young bits (8.2)
    tlb: bool                # ... a hit sets one only when its translation is not in the TLB
    age_all: bool            # ... a reclaim that starts ages the whole active list (8.3)
    reclaim_prio: bool       # ... under memory_bytes, a charge runs the kernel's reclaim calls (8.4)
    fault_around: int        # fault_around_pages
    kernel_model: bool       # fault_model "kernel" (docs/model.md section 11)
    preload: np.ndarray      # int64: page-cache entries resident at time 0, in order
    # the page cache by file and folio, readahead, the memory limit (docs/model.md 11.3-12).
    # Entry ids: a page's own id, or P + k for folio k (then the run has no fast path)
    charge_anon: bool        # memory_bytes: anonymous pages take frames of the limit too
    reclaim_batch: int       # frames a reclaim frees at least (memory_bytes; else 1)
    lru_batch: int           # folios a thread's LRU-add batch holds (memory_bytes with young
    #                          bits; else 0: no batches; docs/model.md 12.1)
    # the kernel's own memory under memory_bytes (docs/model.md 12): page-table pages, ids of
    # (address space, level, 512-entry-aligned range); empty without memory_bytes
    pt_page: np.ndarray      # int32 [P, 3]: the PTE, PMD and PUD table ids each page needs
    pt_voff: np.ndarray      # int64 [VMAs + 1]: VMA v spans pt_vids[pt_voff[v]:pt_voff[v + 1]]
    pt_vids: np.ndarray      # int32: the table ids of each VMA's whole span (eager mappings)
    pt_n: int                # table ids
    k_fixed: int             # frames charged at time 0: a PGD per address space, 4 per thread
    page_slot: np.ndarray    # int64 [P]: each page's page-cache entry
    slot_frames: np.ndarray  # int64 [entries]: frames each takes (a folio's pages in the file)
    sp_off: np.ndarray       # int64: the pages mapping folio k are sp_pages[sp_off[k]:sp_off[k+1]]
    sp_pages: np.ndarray     # int64
    win_lo: np.ndarray       # int64 [P]: fault-around window of each page, first vpn
    win_hi: np.ndarray       # int64 [P]: one past its last
    fr_lo: np.ndarray        # int64 [P]: the pages finish_fault() maps, first vpn (its folio
    fr_hi: np.ndarray        # int64 [P]:   when it fits, else the page; kernel model, 11.3)
    last_lo: np.ndarray      # int64 [P]: first vpn of the file's last folio if it overlaps the
    #                          page's aligned window, else -1 (an empty table's quirk, 11.3)
    vma_file: np.ndarray     # int64: the VMA's file (-1: not file-backed)
    vma_off: np.ndarray      # int64: the file page of the VMA's first page
    vma_vpn0: np.ndarray     # int64: the VMA's first virtual page
    vma_madv: np.ndarray     # int64: 0 normal, 1 random, 2 sequential
    vma_exec: np.ndarray     # int64: 1 for a VMA whose prot has ``x`` (11.5's forward window,
    #                          8.1's text)
    f_npages: np.ndarray     # int64: each file's size in pages
    f_fstart: np.ndarray     # int64 [folios]: folio k's first file page (docs/model.md 11.4)
    f_fsize: np.ndarray      # int64 [folios]: its size in pages (its order; frames: slot_frames)
    f_base: np.ndarray       # int64: its first folio (entry P + f_base[f])
    ra_pages: int            # readahead window (0: off)
    # the lock designs after 2010 (docs/model.md section 15)
    designs: bool            # some VMA's policy is such a design (else none of this is read)
    lw_v0: np.ndarray        # int64: each LOCK_W record's VMAs [lw_v0, lw_v1), in thread order
    lw_v1: np.ndarray
    thr_lw_off: np.ndarray   # int64 [T + 1]: thread i's LOCK_W records are lw_v0[off[i]:off[i+1]]
    #                          (and lw_hold, lw_late: kept with or without the designs)
    lw_hold: np.ndarray      # int64: each LOCK_W record's hold (ns), from its call (15.12),
    #                          for write (up to its downgrade, if it downgrades: 15.13)
    lw_read: np.ndarray      # int64: the rest of its hold, for read after its downgrade (0: none)
    lw_late: np.ndarray      # int64: 1 if its change comes at its release, 0 at its grant
    # readers of mmap_sem that are not faults (docs/model.md 15.9)
    lr_hold: np.ndarray      # int64: each LOCK_R record's hold (ns), in thread order
    thr_lr_off: np.ndarray   # int64 [T + 1]: thread i's are lr_hold[off[i]:off[i + 1]]
    # mappings that end or move (docs/model.md 11.9), thread by thread in record order:
    # unmap u happens when its thread starts the record at position um_pos[u] and removes the
    # PTEs of the pages um_pages[um_off[u]:um_off[u + 1]], or hands each page's PTE and frame
    # to page um_dest[j] when that is not -1 (a move)
    um_pos: np.ndarray       # int64 [U]
    um_off: np.ndarray       # int64 [U + 1]
    um_pages: np.ndarray     # int64
    um_dest: np.ndarray      # int64, beside um_pages
    thr_um_off: np.ndarray   # int64 [T + 1]: thread i's unmaps are um_pos[off[i]:off[i + 1]]
    # read()-family calls (docs/model.md 11.7), thread by thread in record order: read i
    # happens when its thread starts the record at position rd_pos[i]; rd_op[i] is (file,
    # start, end, copy_start, copy_end, prev, stream row, pos_end) in file pages; the stream
    # row is -1 for given windows, else the read's row of W.RS (docs/model.md 11.7.1)
    rd_pos: np.ndarray       # int64 [R]
    rd_op: np.ndarray        # int64 [R, 8]
    rd_streams: int          # rows of W.RS: the (file, stream) pairs of run-time readahead
    thr_rd_off: np.ndarray   # int64 [T + 1]: thread i's reads are rd_pos[off[i]:off[i + 1]]
    # run
    n_asid: int
    horizon: int             # horizon_ns
    seed: np.uint64
    keep_records: bool
    bin_ns: int              # initial time-series bin width
    fast_path: bool          # run steps inline while nothing else can happen first (same records)
    event_budget: int        # at most this many events (thread steps included); -1: no limit


def simulate(inputs):
    """Run the kernel on ``inputs`` (a :class:`KernelInputs`)."""
    return _simulate(inputs)


__all__ = ["KernelInputs", "MAX_BINS", "simulate"]
