"""The event loop: ``simulate`` replays one ``KernelInputs`` under the knobs of docs/model.md.

Only numpy and numba here.  Everything is an array or a scalar; policies arrive as rows of
knob values, backings and replacement algorithms as integer codes (``vmlab.engine.codes``).
The plain-Python reference simulator in ``tests/naive_engine.py`` implements the same
contract independently; the two must agree record for record.

Structure: events keyed ``(time, kind, id)``: each thread's next step in an array, I/O
completions, adversary calls and signal arrivals in a binary heap (``events``).  A thread
runs its own steps inline as long as each next step's key is below every other pending key
(nothing else can happen before it), which makes a stream of page hits or uncontended
faults a tight loop (the fast path, off with ``fast_path=False``).

The parts live beside this file: ``events`` (draws, heap, arrivals), ``pagecache`` (admit,
touch, victim, evict, remove), ``locks`` (mmap_sem), ``accounting`` (records, bins, closing a
fault).  Helpers that take arrays are inlined by numba only where they have no branches of
their own: an inlined helper with branches still costs two reference-count calls per array
argument at every call (docs/performance.md).
"""
from __future__ import annotations

import numpy as np

from ..._numba import njit, prefetch
from .. import codes as C
from .accounting import (MAX_BINS, REC_MARGIN, _attempt_wasted, _close_fault, _fit_bins, _grow,
                         _close_books, _end_thread, _grow1, _handler_extra, _hist_bucket,
                         _low_room, _series)
from .events import (NO_STEP, _draw, _heap_pop, _heap_push, _io_slot, _key_lt, _limit,
                     _next_arrival, _other_min, _with_step)
from .granularity import PT_COPY, _allows, _install_page, _kernel_case, _map_around
from .locks import (_attempt_row, _release_line_ns, _vma_read_release, _vma_try_read,
                    _wake_writer, _write_lock_vmas, _write_unlock_vmas)
from .readahead import RA_MISS, _async_window, _read_folios, _sync_window
from .pagecache import (F_FILE, F_INFL, F_MSIO, F_PIN, F_PTE, F_REF, F_RES,
                        _admit_entry, _choose_victim, _note_eviction, _reclaim, _evict, _insert, _list_insert_after,
                        _list_remove, _lru_victim, _note_candidate, _pin, _remove, _touch_twolist,
                        _unpin)

@njit
def _note_mmap_grant(th, t, lkind, locks, keep_records, TS, cnt, hist_rwait, hist_wwait):
    """Thread ``th``'s mmap_sem request (kind ``lkind``) holds the lock from ``t``: its lock
    record's acquire time and the waits by mode (docs/model.md 15.6)."""
    if keep_records:
        locks[TS[th, C.TS_LOCK_ROW], C.L_ACQUIRE] = t
    wt = t - TS[th, C.TS_REQ_T]
    if lkind == C.LK_FAULT:
        cnt[C.CNT_RWAIT] += wt
        if wt > cnt[C.CNT_RWAIT_MAX]:
            cnt[C.CNT_RWAIT_MAX] = wt
        hist_rwait[_hist_bucket(wt)] += 1
    else:
        cnt[C.CNT_WWAIT] += wt
        if wt > cnt[C.CNT_WWAIT_MAX]:
            cnt[C.CNT_WWAIT_MAX] = wt
        hist_wwait[_hist_bucket(wt)] += 1
        TS[th, C.TS_W_GRANT] = t


@njit(inline="always")
def _ev_low(nev, cap_e, nf, cap_f, n_cand, margin):
    """The eviction table has less room than the fault table's free rows, the adversary's
    notes and one step's worst case (``margin``)."""
    return cap_e - nev < (cap_f - nf) + n_cand + margin


# how many records ahead the inline loop prefetches page state
PF_DIST = 16
# the pin that keeps another cgroup's preloaded folio out of reach of the limit's reclaim
PRELOAD_PIN = 1 << 30


@njit
def _simulate(K):
    """Replay ``K`` (a ``KernelInputs``); returns the record tables, the thread table, the
    counters, the time series and the two latency histograms."""
    # the inputs, once, as local names (a field read inside the loop would cost reference
    # counting at every read)
    rec_page, rec_gap, has_gap = K.rec_page, K.rec_gap, K.has_gap
    thr_off, thr_tid, thr_access = K.thr_off, K.thr_tid, K.thr_access
    page_vma, page_vpn, page_rank, by_key = K.page_vma, K.page_vpn, K.page_rank, K.by_key
    vma_backing, vma_pol, vma_asid = K.vma_backing, K.vma_pol, K.vma_asid
    vma_p0, vma_p1, vma_npages = K.vma_p0, K.vma_p1, K.vma_npages
    emap_vma, emap_off = K.emap_vma, K.emap_off
    pol, costs, tables, tflat = K.pol, K.costs, K.tables, K.tflat
    io_dist, wait_dist = K.io_dist, K.wait_dist
    sig_kind, sig_param, sig_start, sig_fatal = K.sig_kind, K.sig_param, K.sig_start, K.sig_fatal
    sig_times, sig_toff = K.sig_times, K.sig_toff
    adv_kind, adv_param, adv_start = K.adv_kind, K.adv_param, K.adv_start
    adv_times, adv_target = K.adv_times, K.adv_target
    memory_pages, replacement, twolist_ratio = K.memory_pages, K.replacement, K.twolist_ratio
    fault_around, preload = K.fault_around, K.preload
    n_asid, horizon, seed = K.n_asid, K.horizon, K.seed
    keep_records, bin_ns = K.keep_records, K.bin_ns
    fast_path, event_budget = K.fast_path, K.event_budget
    rec_write, vma_private, kernel_model = K.rec_write, K.vma_private, K.kernel_model
    charge_anon, page_slot, slot_frames = K.charge_anon, K.page_slot, K.slot_frames
    sp_off, sp_pages, win_lo, win_hi = K.sp_off, K.sp_pages, K.win_lo, K.win_hi
    vma_file, vma_off, vma_vpn0, vma_madv = K.vma_file, K.vma_off, K.vma_vpn0, K.vma_madv
    f_npages, f_folio, f_base, ra_pages = K.f_npages, K.f_folio, K.f_base, K.ra_pages
    designs, lw_v0, lw_v1, thr_lw_off = K.designs, K.lw_v0, K.lw_v1, K.thr_lw_off
    T = thr_off.shape[0] - 1
    P = page_vma.shape[0]
    NS = slot_frames.shape[0]  # page-cache entries: pages, then folios (docs/model.md 11.4)
    # (entries are their pages, one frame each, unless files, folios, readahead or a memory
    # limit are asked for: then the run has no fast path, and n_ent counts entries apart
    # from the frames in n_resident)
    cache_mode = NS != P or charge_anon or K.ra_pages > 0
    # (without it a page's entry is the page itself: ``page_slot`` is read only in
    # cache_mode, a load that misses the cache for a cold page at every fault step)
    # fault-around windows wider than a page exist (else win_lo/win_hi are empty)
    has_windows = win_lo.shape[0] == P and P > 0 and (K.fault_around > 1 or cache_mode)
    seed = np.uint64(seed)

    access_ns = costs[C.COST_ACCESS]
    fault_ns = costs[C.COST_FAULT]
    zero_fill_ns = costs[C.COST_ZERO_FILL]
    pch_ns = costs[C.COST_PAGECACHE_HIT]
    sp_ns = costs[C.COST_STRUCT_PAGE]
    driver_ns = costs[C.COST_DRIVER]
    pte_ns = costs[C.COST_PTE]
    remap_fixed_ns = costs[C.COST_REMAP_FIXED]
    signal_ns = costs[C.COST_SIGNAL]
    mmap_cs_ns = costs[C.COST_MMAP_CS]
    wakeup_ns = costs[C.COST_WAKEUP]
    copy_ns = costs[C.COST_COPY_PAGE]
    # docs/model.md 15.1: the VMA lookup and the lock words' cache lines
    lookup_ns = costs[C.COST_VMA_LOOKUP]
    mline_ns = costs[C.COST_MMAP_LINE]
    vline_ns = costs[C.COST_VMA_LINE]
    line_on = mline_ns > 0 or vline_ns > 0

    # ---- page state
    # per-page state: flag bits (F_*) and the pin count (faults holding a reference)
    FL = np.full(NS, F_MSIO, np.uint8)
    PIN = np.zeros(NS, np.int32)
    PT = np.zeros(P, np.uint8)  # the kernel model's PTE state (granularity.py)
    MAPC = np.zeros(NS, np.int32)  # a folio's pages whose PTE maps it
    RAM = np.zeros(NS, np.uint8)   # 1: the folio carries the readahead mark (11.5)
    CHG = np.zeros(P, np.uint8)    # 1: an anonymous page (or private copy) holds a frame
    # readahead state per (address space, file): row asid * n_files + file (readahead.py)
    n_files = f_npages.shape[0]
    RA = np.zeros((n_asid * n_files, 4), np.int64)
    for q in range(P):
        if vma_backing[page_vma[q]] == C.B_FILE:
            FL[q] |= F_FILE
    for q in range(P, NS):
        FL[q] |= F_FILE
    # the page-cache lists: row = (prev, next); sentinel row P (the list of LRU, FIFO and
    # CLOCK, twolist's inactive list), sentinel row P + 1 (twolist's active list)
    LL = np.full((NS + 2, 2), -1, np.int32)
    S = NS  # sentinel
    LL[S, 0] = S
    LL[S, 1] = S
    LL[S + 1, 0] = S + 1
    LL[S + 1, 1] = S + 1
    hand = S
    n_resident = 0  # frames the page cache holds
    n_ent = 0       # its entries (cache_mode only; else n_resident)
    n_anon = 0      # frames of anonymous pages and private copies (memory_bytes only)
    oom = False     # a charge found no frame: the run ends (docs/model.md section 12)
    # pages resident, unmapped and unpinned appear here for the adversary (stale entries ok)
    cand = np.empty(64, np.int32)
    n_cand = 0
    track_cand = adv_kind != C.SCHED_NONE  # (without an adversary nobody reads them)
    pend_full = False  # a thread's signal queue is full: grow them before the next event

    # ---- locks
    lk_readers = np.zeros(n_asid, np.int64)
    lk_writer = np.zeros(n_asid, np.int64)
    # waiting thread*2 + mode, a ring per address space: a thread waits at most once, so T
    # slots always suffice
    lk_q = np.zeros((n_asid, T + 1), np.int64)
    lk_qh = np.zeros(n_asid, np.int64)
    lk_qn = np.zeros(n_asid, np.int64)
    # the lock designs after 2010 (locks.py; used only when ``designs``)
    nvma0 = vma_backing.shape[0]
    vl_readers = np.zeros(nvma0, np.int64)
    vl_wlocked = np.zeros(nvma0, np.int64)
    vl_seq = np.zeros(nvma0, np.int64)
    mm_seq = np.zeros(n_asid, np.int64)
    drain_th = np.full(n_asid, -1, np.int64)

    # ---- threads
    TS = np.zeros((T, C.TS_NCOL), np.int64)
    TT = np.zeros((T, C.TT_NCOL), np.int64)
    for th in range(T):
        TS[th, C.TS_POS] = thr_off[th]
        TS[th, C.TS_EMAP] = emap_off[th]
        TS[th, C.TS_FAULT_ROW] = -1
        TS[th, C.TS_LOCK_ROW] = -1
        TS[th, C.TS_WAIT_PAGE] = -1
        TS[th, C.TS_VL_ROW] = -1
        TS[th, C.TS_LW_NEXT] = thr_lw_off[th]
        TS[th, C.TS_PHASE] = C.PH_START
        TS[th, C.TS_SEG] = C.CAT_COMPUTE
        TT[th, C.TT_TID] = thr_tid[th]
        TT[th, C.TT_STATE] = C.ST_RUNNING
    pcap = 8
    pend_t = np.zeros((T, pcap), np.int64)
    pend_f = np.zeros((T, pcap), np.int64)
    pend_row = np.zeros((T, pcap), np.int64)
    pend_h = np.zeros(T, np.int64)
    pend_n = np.zeros(T, np.int64)
    sig_cnt = np.zeros(T, np.int64)  # draws / index into explicit times

    # ---- records
    faults = np.empty((1024 if keep_records else 0, C.F_NCOL), np.int64)
    nf = 0
    sigs = np.empty((256 if keep_records else 0, C.S_NCOL), np.int64)
    ns = 0
    locks = np.empty((1024 if keep_records else 0, C.L_NCOL), np.int64)
    nl = 0
    # evictions: room for a step's worst case (a folio and a readahead window, one frame
    # each at least) and for an adversary call (its notes) beyond the fault table's free
    # rows, so that the fast path (one eviction a fault row at most) needs no check of its own
    ev_margin = 2 * K.ra_pages + 3 * (f_folio.max() if f_folio.shape[0] else 1) + T + \
        REC_MARGIN + 4
    evs = np.empty(((1024 + preload.shape[0] + ev_margin) if keep_records else 0, C.E_NCOL),
                   np.int64)
    nev = 0
    vlocks = np.empty((256 if keep_records and designs else 0, C.VL_NCOL), np.int64)
    nvl = 0
    cnt = np.zeros(C.N_COUNTERS, np.int64)
    ts_bins = np.zeros((C.TSB_NCOL, MAX_BINS), np.int64)  # (pages are zeroed as touched)
    n_bins = 0
    hist_fault = np.zeros(64 + 58 * 64, np.int64)
    hist_sig = np.zeros(64 + 58 * 64, np.int64)
    hist_rwait = np.zeros(64 + 58 * 64, np.int64)   # mmap_sem waits, read (faults)
    hist_wwait = np.zeros(64 + 58 * 64, np.int64)   # and write (LOCK_W, eager mappings)
    io_cnt = 0
    ctx_cnt = 0
    adv_cnt = 0

    # each VMA, once: the handler CPU (fault_ns + extra, both paths); the fast path's class
    # and lock-drop flag come from fast_path_eligibility (vmlab/engine/fastpath.py)
    nvma = vma_backing.shape[0]
    vf_cls = K.vma_fast
    vf_drop = K.vma_drop
    vf_h = np.zeros(nvma, np.int64)
    for v in range(nvma):
        pr = vma_pol[v]
        vf_h[v] = fault_ns + _handler_extra(vma_backing[v], pol[pr, C.K_EAGER] == 1,
                                            pol[pr, C.K_STRUCT_PAGE] == 1, sp_ns, zero_fill_ns,
                                            driver_ns)

    # the fast path's current time bin, and the quantile tables as one flat array
    bin_b = 0
    bin_lo = 0
    bin_hi = bin_ns
    n_quant = tables.shape[1]
    # the I/O draw number io_slot_cnt sits at tflat[io_slot] (computed ahead, prefetched)
    io_slot_cnt = -1
    io_slot = 0

    # per-fault scratch when records are off
    fstart = np.zeros(T, np.int64)

    # ---- events: a heap for I/O completions, adversary calls and signal arrivals; each
    # thread's next step in tn (time, or NO_STEP while it is blocked), scanned for the minimum
    tn = np.zeros(T, np.int64)
    # at most one pending signal and one context completion a thread, one adversary call and
    # one I/O a page: the heap never needs to grow
    ht = np.empty(2 * T + NS + 2, np.int64)
    hk = np.empty(2 * T + NS + 2, np.int64)
    hn = 0

    # the first arrival of every signal schedule and of the adversary
    for th in range(T):
        first, sig_cnt[th] = _next_arrival(sig_kind[th], sig_param[th], sig_start[th], 0,
                                           sig_times, sig_toff[th], sig_toff[th + 1], tables,
                                           seed, 16 + th)
        if first >= 0:
            hn = _heap_push(ht, hk, hn, first, (C.EV_SIGNAL << 40) | th)
    first, adv_cnt = _next_arrival(adv_kind, adv_param, adv_start, 0, adv_times, 0,
                                   adv_times.shape[0], tables, seed, 3)
    if first >= 0:
        hn = _heap_push(ht, hk, hn, first, C.EV_ADVERSARY << 40)

    # ---- preload
    for i in range(preload.shape[0]):
        p = preload[i]
        if (FL[p] & F_RES) == 0 and charge_anon:
            # under memory_bytes, a preloaded folio is another cgroup's page cache: resident,
            # not charged to the limit, never reclaimed by it (docs/model.md section 12)
            _insert(p, replacement, hand, S, LL, FL)
            n_ent += 1
            PIN[p] = PRELOAD_PIN
            FL[p] |= F_PIN
        elif (FL[p] & F_RES) == 0:
            # (no page is mapped yet, so an eviction here wastes no I/O and unmaps nothing)
            ok, n_resident, n_ent, hand, nev = _admit_entry(
                p, memory_pages, n_anon, n_resident, n_ent if cache_mode else n_resident,
                replacement, hand, S, LL, FL, cnt, twolist_ratio, P, slot_frames, sp_off,
                sp_pages, MAPC, False, evs, nev, keep_records, 0, C.BY_PRELOAD, -1)
            if track_cand:
                n_cand = _note_candidate(cand, n_cand, p)

    n_alive = T
    # faults opened by the general path (the fast path's, the rest, each took mmap_sem for
    # read at once: counted at the end, to keep the fast path as it was)
    n_gen_faults = 0
    # writer throughput is measured while threads with access records run
    n_acc_alive = 0
    for th in range(T):
        n_acc_alive += thr_access[th]
    acc_end = -1
    lw_first = -1
    lw_last = -1
    # events taken (heap events and thread steps, inline ones included), and where the run
    # stopped: the horizon, or the time of the event that exceeded the budget
    n_ev = 0
    cnt[C.CNT_OOM_NS] = -1
    cnt[C.CNT_OOM_THREAD] = -1
    budget_hit = False
    stop_t = horizon
    # The event loop runs in passes.  Record tables, the adversary's notes and the signal
    # queues grow between passes, never inside one: an array variable reassigned inside the
    # loop would cost two reference-count calls at every join of its control flow.  A pass
    # ends (and a thread's inline run yields) when fewer than REC_MARGIN free rows are left;
    # one step adds at most two.
    while True:
        if keep_records:
            while nf + REC_MARGIN > faults.shape[0]:
                faults = _grow(faults)
            while nl + REC_MARGIN > locks.shape[0]:
                locks = _grow(locks)
            while ns + REC_MARGIN > sigs.shape[0]:
                sigs = _grow(sigs)
            while designs and nvl + REC_MARGIN > vlocks.shape[0]:
                vlocks = _grow(vlocks)
        if track_cand and n_cand + T + REC_MARGIN > cand.shape[0]:
            cand = _grow1(cand, n_cand + T + REC_MARGIN)
        if keep_records:
            while _ev_low(nev, evs.shape[0], nf, faults.shape[0], n_cand, ev_margin):
                evs = _grow(evs)
        if pend_full:
            m = pend_t.shape[1]
            a1 = np.zeros((T, 2 * m), np.int64)
            a2 = np.zeros((T, 2 * m), np.int64)
            a3 = np.zeros((T, 2 * m), np.int64)
            for tt in range(T):
                for q in range(pend_n[tt]):
                    src = (pend_h[tt] + q) % m
                    a1[tt, q] = pend_t[tt, src]
                    a2[tt, q] = pend_f[tt, src]
                    a3[tt, q] = pend_row[tt, src]
                pend_h[tt] = 0
            pend_t, pend_f, pend_row = a1, a2, a3
            pend_full = False
        grow = False
        while n_alive > 0 and not oom:
            if _low_room(keep_records, nf, faults.shape[0], nl, locks.shape[0], ns, sigs.shape[0],
                         track_cand, n_cand, cand.shape[0], T) or pend_full or (
                    keep_records and _ev_low(nev, evs.shape[0], nf, faults.shape[0], n_cand,
                                             ev_margin)) or (
                    designs and keep_records and nvl + REC_MARGIN > vlocks.shape[0]):
                grow = True
                break
            # the two earliest thread steps, in (time, thread) order: one scan (a blocked
            # thread's step is NO_STEP, later than any time)
            bth = 0
            bt = tn[0]
            sth = -1
            st = NO_STEP
            for i in range(1, T):
                ti = tn[i]
                if ti < bt:
                    sth = bth
                    st = bt
                    bth = i
                    bt = ti
                elif ti < st:
                    sth = i
                    st = ti
            if bt == NO_STEP:
                bth = -1
            if hn > 0 and (bth < 0 or _key_lt(ht[0], hk[0], bt, (C.EV_THREAD << 40) | bth)):
                t = ht[0]
                key = hk[0]
                if t > horizon:
                    break
                hn = _heap_pop(ht, hk, hn)
                kind = key >> 40
                ident = key & ((1 << 40) - 1)
            elif bth >= 0:
                t = bt
                if t > horizon:
                    break
                kind = C.EV_THREAD
                ident = bth
                tn[bth] = NO_STEP
            else:
                break
            # the event budget: a run that takes far more events than its records need stops
            # here (its books are closed at t, as at the horizon)
            n_ev += 1
            if event_budget >= 0 and n_ev > event_budget:
                budget_hit = True
                stop_t = t
                n_ev -= 1  # (not taken)
                break

            if kind == C.EV_IO:
                p = ident
                if (FL[p] & F_FILE) == 0:
                    FL[p] |= F_RES  # a lock-dropping context wait completed: ready from now
                    continue
                FL[p] &= np.uint8(255 - F_INFL)
                if (FL[p] & F_PIN) == 0 and (FL[p] & F_PTE) == 0:
                    if track_cand:
                        n_cand = _note_candidate(cand, n_cand, p)
                for th in range(T):
                    if TS[th, C.TS_WAIT_PAGE] == p and TS[th, C.TS_PHASE] == C.PH_WAIT_IO:
                        TS[th, C.TS_WAIT_PAGE] = -1
                        if TS[th, C.TS_WAIT_DROP] == 1:
                            # the lock-dropping attempt lets its page go at completion
                            _unpin(p, PIN, FL)
                            if (FL[p] & F_PIN) == 0 and (FL[p] & F_PTE) == 0:
                                if track_cand:
                                    n_cand = _note_candidate(cand, n_cand, p)
                        TS[th, C.TS_PHASE] = C.PH_WOKEN
                        tn[th] = t + wakeup_ns
                continue

            if kind == C.EV_ADVERSARY:
                j = 0
                for i in range(n_cand):
                    p = cand[i]
                    if (FL[p] & (F_RES | F_INFL | F_PIN | F_PTE)) == F_RES:
                        if adv_target[p] == 1:
                            # evict
                            hand = _remove(p, replacement, hand, S, LL, FL, cnt)
                            n_resident -= slot_frames[p]
                            n_ent -= 1
                            nev = _note_eviction(evs, nev, keep_records, t, p, C.BY_ADVERSARY,
                                                 -1)
                            cnt[C.CNT_ADV_EVICTIONS] += 1
                            if (FL[p] & F_MSIO) == 0:
                                cnt[C.CNT_WASTED_IO] += 1
                        else:
                            cand[j] = p
                            j += 1
                n_cand = j
                nxt_t, adv_cnt = _next_arrival(adv_kind, adv_param, t, adv_cnt, adv_times, 0,
                                               adv_times.shape[0], tables, seed, 3)
                if nxt_t >= 0 and nxt_t <= horizon:
                    hn = _heap_push(ht, hk, hn, nxt_t, C.EV_ADVERSARY << 40)
                continue

            if kind == C.EV_SIGNAL:
                th = ident
                if TT[th, C.TT_STATE] != C.ST_RUNNING:
                    continue
                fatal = sig_fatal[th]
                row = -1
                if keep_records:
                    row = ns
                    sigs[ns, C.S_THREAD] = th
                    sigs[ns, C.S_ARRIVAL] = t
                    sigs[ns, C.S_DELIVERY] = -1
                    sigs[ns, C.S_FATAL] = fatal
                    sigs[ns, C.S_ABORTED] = 0
                    ns += 1
                cnt[C.CNT_SIGNALS] += 1
                # queue it (a full queue is grown before the next event)
                m = pend_t.shape[1]
                slot = (pend_h[th] + pend_n[th]) % m
                pend_t[th, slot] = t
                pend_f[th, slot] = fatal
                pend_row[th, slot] = row
                pend_n[th] += 1
                if pend_n[th] == m:
                    pend_full = True
                # schedule the next arrival
                nxt_t, sig_cnt[th] = _next_arrival(sig_kind[th], sig_param[th], t, sig_cnt[th],
                                                   sig_times, sig_toff[th], sig_toff[th + 1],
                                                   tables, seed, 16 + th)
                if nxt_t >= 0 and nxt_t <= horizon:
                    hn = _heap_push(ht, hk, hn, nxt_t, (C.EV_SIGNAL << 40) | th)
                # an interruptible wait is aborted at once
                if TS[th, C.TS_INTR] == 1:
                    TS[th, C.TS_PHASE] = C.PH_ABORT
                    tn[th] = NO_STEP  # a pending wake-up (context wait) is cancelled
                    if keep_records and row >= 0:
                        sigs[row, C.S_ABORTED] = 1
                    # fall through to run the thread now
                else:
                    continue
            else:
                th = ident

            # ================= run thread th at time t =================
            # other threads' next steps change during this run only through grants it makes
            if kind == C.EV_THREAD:
                o_found = st != NO_STEP
                o_t = st
                o_k = (C.EV_THREAD << 40) | sth
            else:
                o_found, o_t, o_k = _other_min(tn, th)
            while True:
                ph = TS[th, C.TS_PHASE]
                nxt = -1  # time of this thread's next step; -1: it blocks (someone wakes it)

                if ph == C.PH_START:
                    # account the interval that just ended, start computing
                    seg = TS[th, C.TS_SEG]
                    TT[th, seg] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    ei = TS[th, C.TS_EMAP]
                    if ei < emap_off[th + 1]:
                        TS[th, C.TS_EMAP] = ei + 1
                        v = emap_vma[ei]
                        TS[th, C.TS_CUR_VMA] = v
                        TS[th, C.TS_LOCK_KIND] = C.LK_REMAP
                        TS[th, C.TS_LOCK_MODE] = 1
                        TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
                        nxt = t
                        ph = C.PH_LOCK_REQ
                    elif TS[th, C.TS_POS] >= thr_off[th + 1]:
                        n_alive -= 1
                        n_acc_alive, acc_end = _end_thread(th, t, C.ST_DONE, TT, TS, thr_off,
                                                           thr_access, cnt, n_acc_alive, acc_end)
                        TS[th, C.TS_SEG] = C.CAT_COMPUTE
                        break
                    else:
                        pos = TS[th, C.TS_POS]
                        # fast path: a run of hits on mapped pages, while nothing else can happen
                        # before each one ends and no signal waits for delivery
                        if fast_path and pend_n[th] == 0 and not kernel_model:
                            end = thr_off[th + 1]
                            myk = (C.EV_THREAD << 40) | th
                            found, lim_t, lim_k = _limit(hn, ht[0], hk[0], o_found, o_t, o_k)
                            if not found or horizon < lim_t:
                                lim_t = horizon + 1
                                lim_k = 0
                            gsum = 0
                            nh = 0
                            fcpu = 0
                            fwait = 0
                            while pos < end:
                                if keep_records and (nf + REC_MARGIN > faults.shape[0] or
                                                     nl + REC_MARGIN > locks.shape[0]):
                                    break  # the tables need room: the general path goes on
                                # the state of the page PF_DIST records ahead is fetched into
                                # cache while this record is handled (from the run's second record
                                # on: with other threads' steps close by, most runs stop at one)
                                pf = pos + PF_DIST
                                if nh > 0 and pf < end:
                                    p2 = rec_page[pf]
                                    if p2 >= 0:
                                        prefetch(FL, p2)
                                        prefetch(LL, p2)
                                        prefetch(page_vma, p2)
                                p = rec_page[pos]
                                if p < 0:
                                    break
                                g = np.int64(rec_gap[pos]) if has_gap else np.int64(0)
                                if (FL[p] & F_PTE) == 0:
                                    # an uncontended fault that needs no lock drop, no shared I/O
                                    # and no signal: the same steps as the general path, in one go
                                    a_t = t + g
                                    v = page_vma[p]
                                    asid = vma_asid[v]
                                    if lk_writer[asid] != 0 or lk_qn[asid] != 0:
                                        break
                                    cls = vf_cls[v]
                                    if cls == C.FP_GENERAL:
                                        break  # SIGBUS or fault-around: the general path
                                    h = a_t + vf_h[v]
                                    # 0 none, 1 file I/O, 2 context wait, 3 page-cache hit
                                    kind_w = 0
                                    d = 0
                                    if cls == C.FP_NO_WAIT:
                                        fend = h
                                    elif cls == C.FP_FILE:
                                        if (FL[p] & F_INFL) != 0:
                                            break
                                        if (FL[p] & F_RES) != 0:
                                            kind_w = 3
                                            fend = h + pch_ns
                                        else:
                                            if vf_drop[v]:
                                                break
                                            kind_w = 1
                                            slot = io_slot if io_slot_cnt == io_cnt else \
                                                _io_slot(seed, io_dist, n_quant, io_cnt)
                                            d = tflat[slot]
                                            fend = h + d + wakeup_ns
                                    else:  # context
                                        if (FL[p] & F_RES) != 0:
                                            fend = h
                                        else:
                                            if vf_drop[v]:
                                                break
                                            kind_w = 2
                                            d = _draw(tables, wait_dist, seed, 2, ctx_cnt)
                                            fend = h + d + wakeup_ns
                                    e = fend + access_ns
                                    if not _key_lt(e, myk, lim_t, lim_k):
                                        break
                                    # commit
                                    if kind_w == 1:
                                        io_cnt += 1
                                        # the next I/O time draw's table entry: fetch it now
                                        io_slot_cnt = io_cnt
                                        io_slot = _io_slot(seed, io_dist, n_quant, io_cnt)
                                        prefetch(tflat, io_slot)
                                        cnt[C.CNT_IO] += 1
                                        if memory_pages >= 0 and n_resident >= memory_pages:
                                            if replacement <= C.REPL_FIFO:
                                                victim = _lru_victim(S, LL, FL)
                                            else:
                                                victim, hand = _choose_victim(
                                                    replacement, hand, S, LL, FL, n_resident, cnt,
                                                    twolist_ratio)
                                            if victim >= 0:
                                                _evict(victim, replacement, S, LL, FL, cnt)
                                                n_resident -= 1
                                                # (room: at most one eviction a fault row;
                                                # written out: _note_eviction's branch would
                                                # cost reference counting at every call)
                                                if keep_records:
                                                    evs[nev, C.E_TIME] = h
                                                    evs[nev, C.E_ENTRY] = victim
                                                    evs[nev, C.E_CAUSE] = C.BY_FAULT
                                                    evs[nev, C.E_THREAD] = th
                                                    nev += 1
                                        _insert(p, replacement, hand, S, LL, FL)
                                        n_resident += 1
                                        b = bin_b if bin_lo <= h < bin_hi else h // bin_ns
                                        if b >= ts_bins.shape[1]:
                                            bin_ns, b, n_bins = _fit_bins(ts_bins, h, bin_ns,
                                                                          n_bins)
                                            bin_hi = 0  # (the cached bin is stale)
                                        ts_bins[C.TSB_IOS, b] += 1
                                        if b >= n_bins:
                                            n_bins = b + 1
                                    elif kind_w == 2:
                                        ctx_cnt += 1
                                        FL[p] |= F_RES
                                    FL[p] |= F_PTE
                                    cnt[C.CNT_PTES] += 1
                                    FL[p] |= F_MSIO
                                    if (FL[p] & F_FILE) != 0:
                                        if replacement == C.REPL_LRU:
                                            if LL[S, 1] != p:
                                                _list_remove(LL, p)
                                                _list_insert_after(LL, p, S)
                                        elif replacement == C.REPL_CLOCK:
                                            FL[p] |= F_REF
                                        elif replacement == C.REPL_TWOLIST:
                                            _touch_twolist(p, S, LL, FL, cnt)
                                    cnt[C.CNT_FAULTS] += 1
                                    if kind_w == 1 or kind_w == 2:
                                        cnt[C.CNT_MAJOR] += 1
                                    else:
                                        cnt[C.CNT_MINOR] += 1
                                    if a_t < bin_lo or a_t >= bin_hi:
                                        # the fault's time bin (cached: a division costs more)
                                        bin_b = a_t // bin_ns
                                        bin_lo = bin_b * bin_ns
                                        bin_hi = bin_lo + bin_ns
                                    b = bin_b
                                    if b >= ts_bins.shape[1]:
                                        bin_ns, b, n_bins = _fit_bins(ts_bins, a_t, bin_ns, n_bins)
                                        bin_b = b
                                        bin_lo = b * bin_ns
                                        bin_hi = bin_lo + bin_ns
                                    ts_bins[C.TSB_FAULTS, b] += 1
                                    if b >= n_bins:
                                        n_bins = b + 1
                                    hist_fault[_hist_bucket(fend - a_t)] += 1
                                    wt = d + wakeup_ns if (kind_w == 1 or kind_w == 2) else 0
                                    fwait += wt
                                    fcpu += fend - a_t - wt
                                    if keep_records:
                                        faults[nf, C.F_THREAD] = th
                                        faults[nf, C.F_PAGE] = p
                                        faults[nf, C.F_START] = a_t
                                        faults[nf, C.F_END] = fend
                                        faults[nf, C.F_ATTEMPTS] = 1
                                        major = kind_w == 1 or kind_w == 2
                                        faults[nf, C.F_MAJOR] = 1 if major else 0
                                        faults[nf, C.F_LOCKWAIT] = 0
                                        faults[nf, C.F_IOWAIT] = wt
                                        faults[nf, C.F_OUTCOME] = C.OUT_DONE
                                        faults[nf, C.F_RETRIES] = 0
                                        nf += 1
                                        locks[nl, C.L_THREAD] = th
                                        locks[nl, C.L_ASID] = asid
                                        locks[nl, C.L_MODE] = 0
                                        locks[nl, C.L_KIND] = C.LK_FAULT
                                        locks[nl, C.L_REQUEST] = a_t
                                        locks[nl, C.L_ACQUIRE] = a_t
                                        locks[nl, C.L_RELEASE] = fend
                                        nl += 1
                                    gsum += g
                                    nh += 1
                                    t = e
                                    pos += 1
                                    continue
                                e = t + g + access_ns
                                if not _key_lt(e, myk, lim_t, lim_k):
                                    break
                                if (FL[p] & F_FILE) != 0:
                                    if replacement == C.REPL_LRU:
                                        if LL[S, 1] != p:
                                            _list_remove(LL, p)
                                            _list_insert_after(LL, p, S)
                                    elif replacement == C.REPL_CLOCK:
                                        FL[p] |= F_REF
                                    elif replacement == C.REPL_TWOLIST:
                                        _touch_twolist(p, S, LL, FL, cnt)
                                gsum += g
                                nh += 1
                                t = e
                                pos += 1
                            if nh > 0:
                                TT[th, C.CAT_COMPUTE] += gsum
                                TT[th, C.CAT_HIT] += nh * access_ns
                                TT[th, C.CAT_FAULT_CPU] += fcpu
                                TT[th, C.CAT_IO_WAIT] += fwait
                                TT[th, C.TT_RECORDS] += nh
                                cnt[C.CNT_ACCESSES] += nh
                                TS[th, C.TS_POS] = pos
                                TS[th, C.TS_ACC] = t
                                TS[th, C.TS_SEG] = C.CAT_SIGNAL
                                if pos >= end:
                                    nxt = t  # PH_START again: the thread ends
                                    TS[th, C.TS_PHASE] = C.PH_START
                                # else the record that stopped the run starts below, as a new
                                # PH_START would start it (nothing it depends on has changed)
                        if nxt < 0:
                            g = np.int64(rec_gap[pos]) if has_gap else np.int64(0)
                            # the access comes after the gap: fetch its page's state meanwhile
                            # fetch the page's state, and this thread's records 16 positions
                            # on (each thread's records are a stream of their own; the hardware
                            # follows few streams at once)
                            p = rec_page[pos]
                            if p >= 0:
                                prefetch(FL, p)
                                prefetch(LL, p)
                                prefetch(page_vma, p)
                            if pos + 16 < thr_off[th + 1]:
                                prefetch(rec_page, pos + 16)
                                prefetch(rec_gap, pos + 16)
                            TS[th, C.TS_SEG] = C.CAT_COMPUTE
                            TS[th, C.TS_PHASE] = C.PH_ACCESS
                            nxt = t + g

                elif ph == C.PH_ACCESS:
                    seg = TS[th, C.TS_SEG]
                    TT[th, seg] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    if p < 0:
                        # LOCK_W: the page slot holds -(asid + 1)
                        TS[th, C.TS_ASID_LOCKW] = -p - 1
                        TS[th, C.TS_LOCK_KIND] = C.LK_LOCKW
                        TS[th, C.TS_LOCK_MODE] = 1
                        TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
                        nxt = t
                        ph = C.PH_LOCK_REQ
                    elif ((FL[p] & F_PTE) != 0 and not kernel_model) or (
                            kernel_model and _allows(p, rec_write[pos] == 1, FL, PT)):
                        if TS[th, C.TS_FAULT_ROW] != -1 or TS[th, C.TS_IN_FAULT] == 1:
                            # re-executed after a return to user space: someone mapped it
                            TS[th, C.TS_PHASE] = C.PH_FAULT_END
                            nxt = t
                        else:
                            # (a hit through a private copy is no reference to the file page)
                            if (FL[p] & F_FILE) != 0 and (FL[p] & F_PTE) != 0:
                                s = page_slot[p] if cache_mode else p
                                if replacement == C.REPL_LRU:
                                    if LL[S, 1] != s:
                                        _list_remove(LL, s)
                                        _list_insert_after(LL, s, S)
                                elif replacement == C.REPL_CLOCK:
                                    FL[s] |= F_REF
                                elif replacement == C.REPL_TWOLIST:
                                    _touch_twolist(s, S, LL, FL, cnt)
                            TS[th, C.TS_SEG] = C.CAT_HIT
                            TS[th, C.TS_ACCESS_DONE] = 1
                            TS[th, C.TS_PHASE] = C.PH_REC_END
                            nxt = t + access_ns
                    else:
                        if TS[th, C.TS_IN_FAULT] == 0:
                            TS[th, C.TS_IN_FAULT] = 1
                            TS[th, C.TS_ATTEMPTS] = 0
                            TS[th, C.TS_RETRIES] = 0
                            TS[th, C.TS_COW] = 0
                            TS[th, C.TS_MAJOR] = 0
                            TS[th, C.TS_F_LOCKWAIT] = 0
                            TS[th, C.TS_F_IOWAIT] = 0
                            fstart[th] = t
                            if keep_records:
                                faults[nf, C.F_THREAD] = th
                                faults[nf, C.F_PAGE] = p
                                faults[nf, C.F_START] = t
                                faults[nf, C.F_END] = -1
                                faults[nf, C.F_OUTCOME] = C.OUT_UNFINISHED
                                TS[th, C.TS_FAULT_ROW] = nf
                                nf += 1
                            cnt[C.CNT_FAULTS] += 1
                            n_gen_faults += 1
                            b = t // bin_ns
                            if b >= ts_bins.shape[1]:
                                bin_ns, b, n_bins = _fit_bins(ts_bins, t, bin_ns, n_bins)
                                bin_hi = 0  # (the fast path's cached bin is stale)
                            ts_bins[C.TSB_FAULTS, b] += 1
                            if b >= n_bins:
                                n_bins = b + 1
                        TS[th, C.TS_K] = 0
                        if designs:
                            TS[th, C.TS_HOW] = pol[vma_pol[page_vma[p]], C.K_FAULT_LOCK]
                        TS[th, C.TS_LOCK_KIND] = C.LK_FAULT
                        TS[th, C.TS_LOCK_MODE] = 0
                        TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
                        nxt = t
                        ph = C.PH_LOCK_REQ

                # (a step that moves on at the same time with nothing new before it sets ``ph``
                # and falls through to the next phase below, skipping a trip round the loop)
                if ph == C.PH_LOCK_REQ and TS[th, C.TS_PAID] != 0:
                    # a CPU segment of docs/model.md 15.1 ended: it is the attempt's CPU
                    paid = TS[th, C.TS_PAID]
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    if paid == 2:
                        # a speculative attempt aborted at h: it ends now, the re-read's
                        # line cost paid (docs/model.md 15.6); its CPU is wasted
                        if keep_records:
                            vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
                        TT[th, C.CAT_WASTED] += TS[th, C.TS_ATT_CPU]
                        TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
                        TS[th, C.TS_ATT_CPU] = 0
                        TS[th, C.TS_ATT_WAIT] = 0
                    if paid != 1:
                        TS[th, C.TS_PAID] = 0
                if ph == C.PH_LOCK_REQ and lookup_ns > 0 and designs and \
                        TS[th, C.TS_LOCK_KIND] == C.LK_FAULT and \
                        (TS[th, C.TS_HOW] == C.FLK_VMA or TS[th, C.TS_HOW] == C.FLK_SPEC):
                    # the RCU walk of the VMA tree comes first (docs/model.md 15.1)
                    if TS[th, C.TS_PAID] == 1:
                        TS[th, C.TS_PAID] = 0
                    else:
                        TS[th, C.TS_PAID] = 1
                        TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                        nxt = t + lookup_ns
                        ph = C.PH_WAIT_IO  # (asleep on the CPU: nothing more this step)
                if ph == C.PH_LOCK_REQ and designs and TS[th, C.TS_LOCK_KIND] == C.LK_FAULT and \
                        TS[th, C.TS_HOW] == C.FLK_VMA:
                    # docs/model.md 15.3: the VMA's read lock, found under RCU; a VMA that is
                    # write-locked or of a backing not handled so falls back to mmap_sem with
                    # the same in-kernel index
                    pos = TS[th, C.TS_POS]
                    v = page_vma[rec_page[pos]]
                    took, nvl = _vma_try_read(th, t, t - lookup_ns, v, vma_pol[v],
                                              vma_backing[v], pol, vl_readers, vl_wlocked,
                                              vlocks, nvl, keep_records, TS)
                    if took:
                        cnt[C.CNT_VMA_READ] += 1
                        TS[th, C.TS_LINE_N] = vl_readers[v] - 1
                        TS[th, C.TS_ATTEMPTS] += 1
                        TS[th, C.TS_WAIT_KIND] = 0
                        TS[th, C.TS_WAIT_DROP] = 0
                        TS[th, C.TS_LOCK_ASID] = vma_asid[v]
                        TS[th, C.TS_REQ_T] = t
                        TS[th, C.TS_SEG] = C.CAT_LOCK_WAIT
                        TS[th, C.TS_PHASE] = C.PH_GRANTED
                        ph = C.PH_GRANTED
                    else:
                        cnt[C.CNT_VMA_FALLBACK] += 1
                        TS[th, C.TS_HOW] = C.FLK_MMAP
                elif ph == C.PH_LOCK_REQ and designs and TS[th, C.TS_LOCK_KIND] == C.LK_FAULT and \
                        TS[th, C.TS_HOW] == C.FLK_SPEC:
                    # docs/model.md 15.4: no lock; the sequence count of its scope, read now,
                    # must be even (no writer inside) and unchanged at the install
                    pos = TS[th, C.TS_POS]
                    v = page_vma[rec_page[pos]]
                    pr = vma_pol[v]
                    seq = mm_seq[vma_asid[v]] if pol[pr, C.K_SPF_SCOPE] == 1 else vl_seq[v]
                    if ((pol[pr, C.K_VMA_BACKINGS] >> vma_backing[v]) & 1) == 0:
                        cnt[C.CNT_VMA_FALLBACK] += 1       # (same in-kernel index)
                        TS[th, C.TS_HOW] = C.FLK_MMAP
                        if keep_records:
                            nvl = _attempt_row(vlocks, nvl, th, v, C.VLK_SEQ, t - lookup_ns, -1,
                                               C.VO_FALLBACK)
                    elif (seq & 1) == 1:
                        if keep_records:
                            nvl = _attempt_row(vlocks, nvl, th, v, C.VLK_SEQ, t - lookup_ns, -1,
                                               C.VO_ABORT)
                        cnt[C.CNT_SPF_ABORT] += 1
                        cnt[C.CNT_VMA_FALLBACK] += 1
                        TS[th, C.TS_HOW] = C.FLK_MMAP
                        TS[th, C.TS_K] = 0
                        if vline_ns > 0:
                            # reading a count a writer holds costs its line (15.1)
                            TS[th, C.TS_PAID] = 3
                            TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                            nxt = t + vline_ns
                            ph = C.PH_WAIT_IO  # (asleep on the CPU: nothing more this step)
                    else:
                        TS[th, C.TS_SEQ0] = seq
                        if keep_records:
                            nvl = _attempt_row(vlocks, nvl, th, v, C.VLK_SEQ, t - lookup_ns, t,
                                               C.VO_HELD)
                            TS[th, C.TS_VL_ROW] = nvl - 1
                        TS[th, C.TS_LINE_N] = 0
                        TS[th, C.TS_ATTEMPTS] += 1
                        TS[th, C.TS_WAIT_KIND] = 0
                        TS[th, C.TS_WAIT_DROP] = 0
                        TS[th, C.TS_LOCK_ASID] = vma_asid[v]
                        TS[th, C.TS_REQ_T] = t
                        TS[th, C.TS_SEG] = C.CAT_LOCK_WAIT
                        TS[th, C.TS_PHASE] = C.PH_GRANTED
                        ph = C.PH_GRANTED
                if ph == C.PH_LOCK_REQ:
                    a = 0
                    lkind = TS[th, C.TS_LOCK_KIND]
                    mode = TS[th, C.TS_LOCK_MODE]
                    if lkind == C.LK_FAULT:
                        cnt[C.CNT_MMAP_READ] += 1
                        pos = TS[th, C.TS_POS]
                        a = vma_asid[page_vma[rec_page[pos]]]
                        TS[th, C.TS_ATTEMPTS] += 1
                        TS[th, C.TS_WAIT_KIND] = 0
                        TS[th, C.TS_WAIT_DROP] = 0
                    elif lkind == C.LK_REMAP:
                        a = vma_asid[TS[th, C.TS_CUR_VMA]]
                    else:
                        a = TS[th, C.TS_ASID_LOCKW]
                    TS[th, C.TS_LOCK_ASID] = a
                    TS[th, C.TS_REQ_T] = t
                    if lkind == C.LK_LOCKW and lw_first < 0:
                        lw_first = t
                    if keep_records:
                        locks[nl, C.L_THREAD] = th
                        locks[nl, C.L_ASID] = a
                        locks[nl, C.L_MODE] = mode
                        locks[nl, C.L_KIND] = lkind
                        locks[nl, C.L_REQUEST] = t
                        locks[nl, C.L_ACQUIRE] = -1
                        locks[nl, C.L_RELEASE] = -1
                        TS[th, C.TS_LOCK_ROW] = nl
                        nl += 1
                    if mode == 0:
                        ok = lk_writer[a] == 0 and lk_qn[a] == 0
                    else:
                        ok = lk_writer[a] == 0 and lk_readers[a] == 0 and lk_qn[a] == 0
                    TS[th, C.TS_SEG] = C.CAT_LOCK_WAIT
                    if ok:
                        if mode == 0:
                            lk_readers[a] += 1
                            TS[th, C.TS_LINE_N] = lk_readers[a] - 1
                        else:
                            lk_writer[a] = 1
                        TS[th, C.TS_PHASE] = C.PH_GRANTED
                        nxt = t
                        ph = C.PH_GRANTED
                    else:
                        m = lk_q.shape[1]
                        lk_q[a, (lk_qh[a] + lk_qn[a]) % m] = th * 2 + mode
                        lk_qn[a] += 1
                        TS[th, C.TS_PHASE] = C.PH_GRANTED
                        break  # blocked until a release grants it

                if ph == C.PH_GRANTED:
                    seg = TS[th, C.TS_SEG]
                    TT[th, seg] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    lkind = TS[th, C.TS_LOCK_KIND]
                    if not (designs and (
                            TS[th, C.TS_W_LOCKED] == 1 or
                            (lkind == C.LK_FAULT and TS[th, C.TS_HOW] != C.FLK_MMAP))):
                        # mmap_sem granted now (docs/model.md 15.6: its waits by mode)
                        _note_mmap_grant(th, t, lkind, locks, keep_records, TS, cnt, hist_rwait,
                                         hist_wwait)
                    elif lkind != C.LK_FAULT:
                        # a writer whose VMAs' readers have left (15.2)
                        cnt[C.CNT_VWWAIT] += t - TS[th, C.TS_W_GRANT]
                    if designs and lkind != C.LK_FAULT and TS[th, C.TS_W_LOCKED] == 0:
                        # docs/model.md 15.2: the writer write-locks the VMAs it modifies and
                        # waits for the readers already inside (vma_start_write)
                        if lkind == C.LK_REMAP:
                            TS[th, C.TS_W_V0] = TS[th, C.TS_CUR_VMA]
                            TS[th, C.TS_W_V1] = TS[th, C.TS_CUR_VMA] + 1
                        else:
                            TS[th, C.TS_W_V0] = lw_v0[TS[th, C.TS_LW_NEXT]]
                            TS[th, C.TS_W_V1] = lw_v1[TS[th, C.TS_LW_NEXT]]
                        TS[th, C.TS_W_LOCKED] = 1
                        a = TS[th, C.TS_LOCK_ASID]
                        if _write_lock_vmas(a, TS[th, C.TS_W_V0], TS[th, C.TS_W_V1], vl_readers,
                                            vl_wlocked, vl_seq, mm_seq):
                            drain_th[a] = th
                            TS[th, C.TS_SEG] = C.CAT_LOCK_WAIT
                            break  # the last reader out resumes it (locks._vma_read_release)
                    if lkind == C.LK_FAULT:
                        TS[th, C.TS_F_LOCKWAIT] += t - TS[th, C.TS_REQ_T]
                        pos = TS[th, C.TS_POS]
                        TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                        TS[th, C.TS_PHASE] = C.PH_LOOKUP
                        v = page_vma[rec_page[pos]]
                        hcpu = vf_h[v]  # fault_ns + handler extra
                        TS[th, C.TS_CASE] = C.CASE_NONE
                        TS[th, C.TS_AROUND_DONE] = 0
                        if kernel_model and pol[vma_pol[v], C.K_EAGER] == 0 and (
                                vma_backing[v] == C.B_ANON or vma_backing[v] == C.B_FILE):
                            extra, case = _kernel_case(rec_page[pos], rec_write[pos] == 1,
                                                       vma_backing[v], vma_private[v] == 1, FL,
                                                       PT, sp_ns, zero_fill_ns, copy_ns)
                            TS[th, C.TS_CASE] = case
                            if case == C.CASE_COW or case == C.CASE_SHARED:
                                TS[th, C.TS_AROUND_DONE] = 1  # write faults: no fault-around
                            hcpu = fault_ns + extra
                        if line_on:
                            # the lock word's line at the grant (docs/model.md 15.1)
                            how = TS[th, C.TS_HOW] if designs else C.FLK_MMAP
                            hcpu += TS[th, C.TS_LINE_N] * (
                                mline_ns if how == C.FLK_MMAP else
                                vline_ns if how == C.FLK_VMA else 0)
                        nxt = t + hcpu
                    elif lkind == C.LK_LOCKW:
                        TS[th, C.TS_SEG] = C.CAT_LOCK_HOLD
                        TS[th, C.TS_PHASE] = C.PH_RELEASE_W
                        nxt = t + mmap_cs_ns
                    else:
                        v = TS[th, C.TS_CUR_VMA]
                        TS[th, C.TS_SEG] = C.CAT_LOCK_HOLD
                        TS[th, C.TS_PHASE] = C.PH_RELEASE_W
                        nxt = t + remap_fixed_ns + vma_npages[v] * pte_ns

                elif ph == C.PH_RELEASE_W:
                    seg = TS[th, C.TS_SEG]
                    TT[th, seg] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    lkind = TS[th, C.TS_LOCK_KIND]
                    if lkind == C.LK_REMAP:
                        v = TS[th, C.TS_CUR_VMA]
                        newly = vma_npages[v] - (vma_p1[v] - vma_p0[v])
                        for j in range(vma_p0[v], vma_p1[v]):
                            q = by_key[j]
                            if (FL[q] & F_PTE) == 0:
                                FL[q] |= F_PTE
                                newly += 1
                        cnt[C.CNT_PTES] += newly
                    else:
                        cnt[C.CNT_LOCK_W] += 1
                        lw_last = t
                        if acc_end < 0 or t <= acc_end:
                            cnt[C.CNT_LW_WINDOW] += 1
                        TT[th, C.TT_RECORDS] += 1
                        TS[th, C.TS_POS] += 1
                    # release the write lock and grant waiters
                    a = TS[th, C.TS_LOCK_ASID]
                    if designs:
                        if lkind == C.LK_LOCKW:
                            TS[th, C.TS_LW_NEXT] += 1
                        if TS[th, C.TS_W_LOCKED] == 1:
                            _write_unlock_vmas(a, TS[th, C.TS_W_V0], TS[th, C.TS_W_V1],
                                               vl_wlocked, vl_seq, mm_seq)
                            TS[th, C.TS_W_LOCKED] = 0
                    if keep_records:
                        locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                    lk_writer[a] = 0
                    m = lk_q.shape[1]
                    h0 = lk_qh[a]
                    while lk_qn[a] > 0:
                        w = lk_q[a, lk_qh[a]]
                        wth = w >> 1
                        wmode = w & 1
                        if wmode == 1:
                            if lk_readers[a] == 0 and lk_writer[a] == 0:
                                lk_writer[a] = 1
                            else:
                                break
                        else:
                            if lk_writer[a] == 0:
                                lk_readers[a] += 1
                            else:
                                break
                        lk_qh[a] = (lk_qh[a] + 1) % m
                        lk_qn[a] -= 1
                        tn[wth] = t
                        o_found, o_t, o_k = _with_step(o_found, o_t, o_k, t, wth)
                        if wmode == 1:
                            break
                    if line_on:
                        # readers granted together hold the word together (docs/model.md 15.1)
                        j = h0
                        while j != lk_qh[a]:
                            if (lk_q[a, j] & 1) == 0:
                                TS[lk_q[a, j] >> 1, C.TS_LINE_N] = lk_readers[a] - 1
                            j = (j + 1) % m
                    TS[th, C.TS_PHASE] = C.PH_REC_END
                    nxt = t

                elif ph == C.PH_LOOKUP:
                    seg = TS[th, C.TS_SEG]
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    v = page_vma[p]
                    bk = vma_backing[v]
                    pr = vma_pol[v]
                    TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                    need_wait = 0
                    io_inline = False
                    issued = False
                    spf_out = False
                    io_c = 0
                    case = TS[th, C.TS_CASE]
                    if (case == C.CASE_COPY or case == C.CASE_MKWRITE) and (FL[p] & F_PTE) == 0 \
                            and (PT[p] & PT_COPY) == 0:
                        # the read-only PTE went with its page since the grant: look it up
                        case = C.CASE_COW if case == C.CASE_COPY else C.CASE_SHARED
                        TS[th, C.TS_CASE] = case
                        TS[th, C.TS_AROUND_DONE] = 1
                    if designs and TS[th, C.TS_HOW] == C.FLK_SPEC:
                        # docs/model.md 15.4: a speculative attempt never waits, and re-reads
                        # its sequence count before the install; a page that needs a wait or a
                        # changed count sends the fault to mmap_sem afresh (k = 0), its CPU
                        # wasted (not a retry against max_retries)
                        # (its page-cache entry; a context page's own)
                        e_ = page_slot[p] if cache_mode else p
                        hit = (FL[e_] & F_RES) != 0 and (FL[e_] & F_INFL) == 0
                        needs = (bk == C.B_FILE and case != C.CASE_COPY and
                                 case != C.CASE_MKWRITE and not hit) or (
                                 bk == C.B_CONTEXT and (FL[e_] & F_RES) == 0)
                        seq = mm_seq[vma_asid[v]] if pol[pr, C.K_SPF_SCOPE] == 1 else vl_seq[v]
                        if needs or seq != TS[th, C.TS_SEQ0]:
                            if not needs:
                                cnt[C.CNT_SPF_ABORT] += 1
                            cnt[C.CNT_VMA_FALLBACK] += 1
                            TS[th, C.TS_HOW] = C.FLK_MMAP
                            TS[th, C.TS_K] = 0
                            TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
                            nxt = t
                            spf_out = True
                            if keep_records:
                                r = TS[th, C.TS_VL_ROW]
                                vlocks[r, C.VL_OUTCOME] = C.VO_FALLBACK if needs else C.VO_ABORT
                                if needs or (seq & 1) == 0 or vline_ns == 0:
                                    vlocks[r, C.VL_RELEASE] = t
                                # (else the abort instant is when the line cost below ends,
                                # recorded then: never, when that is after the horizon)
                            if not needs and (seq & 1) == 1 and vline_ns > 0:
                                # re-reading a count a writer holds costs its line (15.1);
                                # the attempt's CPU is settled when that ends
                                TS[th, C.TS_PAID] = 2
                                nxt = t + vline_ns
                            else:
                                TT[th, C.CAT_WASTED] += TS[th, C.TS_ATT_CPU]
                                TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
                                TS[th, C.TS_ATT_CPU] = 0
                                TS[th, C.TS_ATT_WAIT] = 0
                    if case == C.CASE_COW and not spf_out:
                        TS[th, C.TS_COW] = 1
                    if spf_out:
                        pass  # (back to PH_LOCK_REQ, under mmap_sem)
                    elif case == C.CASE_COPY or case == C.CASE_MKWRITE or pol[pr, C.K_EAGER] == 1 \
                            or bk == C.B_ANON or bk == C.B_DEVICE or (
                            bk == C.B_IOMEM and pol[pr, C.K_STRUCT_PAGE] == 0):
                        TS[th, C.TS_PHASE] = C.PH_INSTALL
                        nxt = t
                        ph = C.PH_INSTALL
                    elif bk == C.B_IOMEM:
                        TS[th, C.TS_PHASE] = C.PH_SIGBUS
                        nxt = t
                    elif bk == C.B_CONTEXT:
                        if (FL[p] & F_RES) != 0:
                            TS[th, C.TS_PHASE] = C.PH_INSTALL
                            nxt = t
                            ph = C.PH_INSTALL
                        else:
                            need_wait = 2
                    else:  # file: the page's page-cache entry (itself, or its folio)
                        s = page_slot[p] if cache_mode else p
                        if case == C.CASE_READ and TS[th, C.TS_AROUND_DONE] == 0 and \
                                has_windows and win_hi[p] - win_lo[p] > 1 and not (
                                    (FL[s] & F_RES) != 0 and (FL[s] & F_INFL) == 0 and
                                    RAM[s] == 0):
                            # kernel model: the resident neighbours are mapped first, a CPU
                            # segment of its own; the page's own lookup follows (11.3)
                            n_around = _map_around(p, True, page_vma, page_vpn, page_rank,
                                                   by_key, vma_p0, vma_p1, win_lo, win_hi,
                                                   page_slot, FL, PT, MAPC, RAM)
                            cnt[C.CNT_PTES] += n_around
                            ri = vma_asid[v] * n_files + vma_file[v]
                            RA[ri, RA_MISS] = max(0, RA[ri, RA_MISS] - n_around)
                            TS[th, C.TS_AROUND_DONE] = 1
                            TS[th, C.TS_PHASE] = C.PH_LOOKUP
                            nxt = t + n_around * pte_ns
                        elif (FL[s] & F_RES) != 0 and (FL[s] & F_INFL) == 0:
                            _pin(s, PIN, FL)
                            if ra_pages > 0 and vma_madv[v] != 1 and TS[th, C.TS_K] == 0:
                                # asynchronous readahead (11.5): a hit from user space
                                f = vma_file[v]
                                ri = vma_asid[v] * n_files + f
                                if RA[ri, RA_MISS] > 0:
                                    RA[ri, RA_MISS] -= 1
                                if RAM[s] == 1:
                                    RAM[s] = 0
                                    fp = f_folio[f]
                                    o = vma_off[v] + page_vpn[p] - vma_vpn0[v]
                                    st0, sz = _async_window(RA, ri, o, fp, ra_pages,
                                                            vma_madv[v])
                                    # one request, one draw: counted if it reads a folio
                                    d = tflat[_io_slot(seed, io_dist, n_quant, io_cnt)]
                                    n_rd, pg, n_resident, n_ent, hand, hn, nev = _read_folios(
                                        f, st0, st0 + sz, st0, t + d, P, f_base, f_folio,
                                        f_npages, memory_pages, n_anon, n_resident, n_ent,
                                        replacement, hand, S, LL, FL, cnt, twolist_ratio,
                                        slot_frames, sp_off, sp_pages, MAPC, RAM, ht, hk, hn,
                                        evs, nev, keep_records, t, th)
                                    if n_rd > 0:
                                        io_cnt += 1
                                        io_slot_cnt = -1
                                        cnt[C.CNT_IO] += 1
                                        cnt[C.CNT_READ_PAGES] += pg
                                        cnt[C.CNT_RA_PAGES] += pg
                                        b = t // bin_ns
                                        if b >= ts_bins.shape[1]:
                                            bin_ns, b, n_bins = _fit_bins(ts_bins, t, bin_ns,
                                                                          n_bins)
                                            bin_hi = 0  # (the fast path's cached bin is stale)
                                        ts_bins[C.TSB_IOS, b] += 1
                                        if b >= n_bins:
                                            n_bins = b + 1
                            TS[th, C.TS_PHASE] = C.PH_MINOR_MAP
                            nxt = t + pch_ns
                        elif (FL[s] & F_INFL) != 0:
                            _pin(s, PIN, FL)
                            need_wait = 1
                        else:
                            # allocate the frames, evicting if needed, and issue the I/O
                            ok = True
                            if cache_mode:
                                ok, n_resident, n_ent, hand, nev = _admit_entry(
                                    s, memory_pages, n_anon, n_resident, n_ent, replacement,
                                    hand, S, LL, FL, cnt, twolist_ratio, P, slot_frames, sp_off,
                                    sp_pages, MAPC, charge_anon, evs, nev, keep_records, t,
                                    C.BY_FAULT, th)
                            else:
                                # an entry is its page, one frame, no limit: _admit_entry's
                                # steps written out (a call with its eight arrays costs 16
                                # reference-count calls, and this runs once a major fault)
                                while memory_pages >= 0 and n_resident >= memory_pages:
                                    if replacement <= C.REPL_FIFO:
                                        victim = _lru_victim(S, LL, FL)
                                    else:
                                        victim, hand = _choose_victim(
                                            replacement, hand, S, LL, FL, n_resident, cnt,
                                            twolist_ratio)
                                    if victim < 0:
                                        break
                                    _evict(victim, replacement, S, LL, FL, cnt)
                                    n_resident -= 1
                                    if keep_records:
                                        evs[nev, C.E_TIME] = t
                                        evs[nev, C.E_ENTRY] = victim
                                        evs[nev, C.E_CAUSE] = C.BY_FAULT
                                        evs[nev, C.E_THREAD] = th
                                        nev += 1
                                _insert(s, replacement, hand, S, LL, FL)
                                n_resident += 1
                            if not ok:
                                # no frame and no victim under memory_bytes: OOM (section 12)
                                oom = True
                                stop_t = t
                                cnt[C.CNT_OOM_NS] = t
                                cnt[C.CNT_OOM_THREAD] = th
                                break
                            if cache_mode:  # (else one page an I/O, counted at the end)
                                cnt[C.CNT_READ_PAGES] += slot_frames[s]
                            FL[s] |= F_INFL
                            FL[s] &= np.uint8(255 - F_MSIO)
                            slot = io_slot if io_slot_cnt == io_cnt else \
                                _io_slot(seed, io_dist, n_quant, io_cnt)
                            d = tflat[slot]
                            io_cnt += 1
                            io_slot_cnt = io_cnt
                            io_slot = _io_slot(seed, io_dist, n_quant, io_cnt)
                            prefetch(tflat, io_slot)
                            cnt[C.CNT_IO] += 1
                            b = t // bin_ns
                            if b >= ts_bins.shape[1]:
                                bin_ns, b, n_bins = _fit_bins(ts_bins, t, bin_ns, n_bins)
                                bin_hi = 0  # (the fast path's cached bin is stale)
                            ts_bins[C.TSB_IOS, b] += 1
                            if b >= n_bins:
                                n_bins = b + 1
                            io_c = t + d
                            issued = True
                            _pin(s, PIN, FL)
                            TS[th, C.TS_MAJOR] = 1
                            need_wait = 1
                            if ra_pages > 0:  # (the readahead mark exists only with readahead)
                                RAM[s] = 0
                            if ra_pages > 0 and vma_madv[v] != 1:
                                # synchronous readahead: the window joins the request (11.5)
                                f = vma_file[v]
                                fp = f_folio[f]
                                o = vma_off[v] + page_vpn[p] - vma_vpn0[v]
                                ri = vma_asid[v] * n_files + f
                                st0, sz, asz = _sync_window(RA, ri, o, ra_pages, vma_madv[v])
                                if sz > 0:
                                    mk = st0 + sz - asz
                                    if mk < f_npages[f] and mk // fp == o // fp:
                                        RAM[s] = 1
                                    n_rd, pg, n_resident, n_ent, hand, hn, nev = _read_folios(
                                        f, st0, st0 + sz, mk, io_c, P, f_base, f_folio,
                                        f_npages, memory_pages, n_anon, n_resident, n_ent,
                                        replacement, hand, S, LL, FL, cnt, twolist_ratio,
                                        slot_frames, sp_off, sp_pages, MAPC, RAM, ht, hk, hn,
                                        evs, nev, keep_records, t, th)
                                    cnt[C.CNT_READ_PAGES] += pg
                                    cnt[C.CNT_RA_PAGES] += pg
                    if need_wait > 0:
                        retries = TS[th, C.TS_RETRIES]
                        mr = pol[pr, C.K_MAX_RETRIES]
                        left = mr < 0 or retries < mr
                        dla = pol[pr, C.K_DROP_LOCK]
                        drop = left and (dla < 0 or TS[th, C.TS_K] < dla)
                        intr = left and (not drop) and pol[pr, C.K_INTERRUPTIBLE] == 1
                        TS[th, C.TS_WAIT_DROP] = 1 if drop else 0
                        TS[th, C.TS_WAIT_KIND] = need_wait
                        TS[th, C.TS_WAIT_START] = t
                        TS[th, C.TS_SEG] = C.CAT_ATT_WAIT
                        paying = False
                        if drop:
                            rc = 0
                            if line_on:
                                v = page_vma[p]
                                rc = _release_line_ns(TS[th, C.TS_HOW] if designs else C.FLK_MMAP,
                                                      TS[th, C.TS_LOCK_ASID], v, lk_readers,
                                                      vl_readers, vl_wlocked, mline_ns, vline_ns)
                            if rc > 0:
                                # the release takes effect after its line cost and the wait
                                # begins then (docs/model.md 15.1): PH_DROP_WAIT
                                paying = True
                                TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                                TS[th, C.TS_PHASE] = C.PH_DROP_WAIT
                                nxt = t + rc
                            else:
                                w = -1
                                if designs and TS[th, C.TS_HOW] != C.FLK_MMAP:
                                    # a VMA read lock (docs/model.md 15.3)
                                    if TS[th, C.TS_HOW] == C.FLK_VMA:
                                        v = page_vma[rec_page[TS[th, C.TS_POS]]]
                                        w = _vma_read_release(th, t, v, vma_asid[v], vl_readers,
                                                              vl_wlocked, drain_th, vlocks,
                                                              keep_records, TS, tn)
                                        TS[th, C.TS_HOW] = C.FLK_NONE
                                    elif TS[th, C.TS_HOW] == C.FLK_SPEC:
                                        # a validated speculative attempt ends (docs/model.md 15.6)
                                        if keep_records:
                                            vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
                                        TS[th, C.TS_HOW] = C.FLK_NONE
                                else:
                                    a = TS[th, C.TS_LOCK_ASID]
                                    if keep_records:
                                        locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                                    # release the read hold; the last reader out lets a queued writer go
                                    lk_readers[a] -= 1
                                    if lk_readers[a] == 0 and lk_qn[a] > 0:
                                        w = _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn)
                                if w >= 0:
                                    o_found, o_t, o_k = _with_step(o_found, o_t, o_k, t, w)
                            if designs and pol[pr, C.K_COMPLETED] == 1:
                                # VM_FAULT_COMPLETED (docs/model.md 15.5): the lock is gone, the
                                # pin stays; the wake-up installs the PTE, with no retry
                                if not paying:
                                    TS[th, C.TS_HOW] = C.FLK_NONE
                                TS[th, C.TS_WAIT_DROP] = 0
                                drop = False
                        if issued:
                            iok = (C.EV_IO << 40) | s
                            found, lt, lk = _limit(hn, ht[0], hk[0], o_found, o_t, o_k)
                            if fast_path and not paying and (not (intr and pend_n[th] > 0)) and \
                                    io_c <= horizon and (not found or _key_lt(io_c, iok, lt, lk)):
                                # nothing else happens before the I/O completes: complete it inline
                                io_inline = True
                            else:
                                hn = _heap_push(ht, hk, hn, io_c, iok)
                        if paying:
                            if need_wait == 2:
                                # the context wait is drawn now; it begins after the release
                                TS[th, C.TS_MAJOR] = 1
                                d = _draw(tables, wait_dist, seed, 2, ctx_cnt)
                                ctx_cnt += 1
                                TS[th, C.TS_CTX_DONE] = t + d
                                if drop:
                                    hn = _heap_push(ht, hk, hn, t + d, (C.EV_IO << 40) | p)
                        elif intr and pend_n[th] > 0:
                            # an interruptible sleep with a signal pending returns at once; the
                            # oldest pending signal is the one that aborted it
                            if keep_records:
                                sigs[pend_row[th, pend_h[th]], C.S_ABORTED] = 1
                            TS[th, C.TS_PHASE] = C.PH_ABORT
                            nxt = t
                        else:
                            TS[th, C.TS_INTR] = 1 if intr else 0
                            if need_wait == 1 and io_inline:
                                FL[s] &= np.uint8(255 - F_INFL)
                                if drop:
                                    _unpin(s, PIN, FL)
                                if (FL[s] & F_PIN) == 0 and (FL[s] & F_PTE) == 0:
                                    if track_cand:
                                        n_cand = _note_candidate(cand, n_cand, s)
                                TS[th, C.TS_PHASE] = C.PH_WOKEN
                                nxt = io_c + wakeup_ns
                            elif need_wait == 1:
                                TS[th, C.TS_WAIT_PAGE] = s
                                TS[th, C.TS_PHASE] = C.PH_WAIT_IO
                                break  # the I/O completion wakes it
                            else:
                                # a context wait that begins makes the fault major
                                TS[th, C.TS_MAJOR] = 1
                                d = _draw(tables, wait_dist, seed, 2, ctx_cnt)
                                ctx_cnt += 1
                                if drop:
                                    # the context is ready from the wait's completion on,
                                    # before any thread step at that instant: an event
                                    hn = _heap_push(ht, hk, hn, t + d, (C.EV_IO << 40) | p)
                                TS[th, C.TS_PHASE] = C.PH_WOKEN
                                nxt = t + d + wakeup_ns

                elif ph == C.PH_DROP_WAIT:
                    # a lock-dropping wait whose release paid a line cost: the release takes
                    # effect now and the wait begins (docs/model.md 15.1)
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    w = -1
                    if designs and TS[th, C.TS_HOW] != C.FLK_MMAP:
                        # a VMA read lock (docs/model.md 15.3)
                        if TS[th, C.TS_HOW] == C.FLK_VMA:
                            v = page_vma[rec_page[TS[th, C.TS_POS]]]
                            w = _vma_read_release(th, t, v, vma_asid[v], vl_readers,
                                                  vl_wlocked, drain_th, vlocks,
                                                  keep_records, TS, tn)
                            TS[th, C.TS_HOW] = C.FLK_NONE
                        elif TS[th, C.TS_HOW] == C.FLK_SPEC:
                            # a validated speculative attempt ends (docs/model.md 15.6)
                            if keep_records:
                                vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
                            TS[th, C.TS_HOW] = C.FLK_NONE
                    else:
                        a = TS[th, C.TS_LOCK_ASID]
                        if keep_records:
                            locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                        # release the read hold; the last reader out lets a queued writer go
                        lk_readers[a] -= 1
                        if lk_readers[a] == 0 and lk_qn[a] > 0:
                            w = _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn)
                    if w >= 0:
                        o_found, o_t, o_k = _with_step(o_found, o_t, o_k, t, w)
                    if designs:
                        TS[th, C.TS_HOW] = C.FLK_NONE  # (a retry takes its lock anew)
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    TS[th, C.TS_WAIT_START] = t
                    TS[th, C.TS_SEG] = C.CAT_ATT_WAIT
                    s = page_slot[p] if cache_mode else p  # (the entry its I/O reads)
                    if TS[th, C.TS_WAIT_KIND] == 1 and (FL[s] & F_INFL) != 0:
                        TS[th, C.TS_WAIT_PAGE] = s
                        TS[th, C.TS_PHASE] = C.PH_WAIT_IO
                        break  # the I/O completion wakes it
                    TS[th, C.TS_PHASE] = C.PH_WOKEN
                    if TS[th, C.TS_WAIT_KIND] == 1:
                        # its I/O completed during the release: the wake-up follows
                        if TS[th, C.TS_WAIT_DROP] == 1:
                            _unpin(s, PIN, FL)
                            if (FL[s] & F_PIN) == 0 and (FL[s] & F_PTE) == 0:
                                if track_cand:
                                    n_cand = _note_candidate(cand, n_cand, s)
                        nxt = t + wakeup_ns
                    else:
                        c_done = TS[th, C.TS_CTX_DONE]
                        nxt = (c_done if c_done > t else t) + wakeup_ns

                elif ph == C.PH_WOKEN:
                    TS[th, C.TS_INTR] = 0
                    TS[th, C.TS_ATT_WAIT] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_F_IOWAIT] += t - TS[th, C.TS_WAIT_START]
                    TS[th, C.TS_ACC] = t
                    TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    if TS[th, C.TS_WAIT_DROP] == 1:
                        _attempt_wasted(th, TS, TT, True)  # the attempt ends in a retry
                        b = t // bin_ns
                        if b >= ts_bins.shape[1]:
                            bin_ns, b, n_bins = _fit_bins(ts_bins, t, bin_ns, n_bins)
                            bin_hi = 0  # (the fast path's cached bin is stale)
                        ts_bins[C.TSB_RETRIES, b] += 1
                        if b >= n_bins:
                            n_bins = b + 1
                        v = page_vma[p]
                        if pol[vma_pol[v], C.K_CHECK_SIGNAL] == 1 and pend_n[th] > 0:
                            TS[th, C.TS_PHASE] = C.PH_DELIVER_REEXEC
                            nxt = t
                        else:
                            TS[th, C.TS_K] += 1
                            if designs:
                                # the retry takes retry_lock (docs/model.md 15.3)
                                fl = pol[vma_pol[v], C.K_FAULT_LOCK]
                                TS[th, C.TS_HOW] = C.FLK_VMA if (
                                    fl == C.FLK_VMA and
                                    pol[vma_pol[v], C.K_RETRY_LOCK] == C.FLK_VMA) else C.FLK_MMAP
                            TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
                            nxt = t
                    else:
                        if TS[th, C.TS_WAIT_KIND] == 2:
                            FL[p] |= F_RES
                        TS[th, C.TS_PHASE] = C.PH_INSTALL
                        nxt = t
                        ph = C.PH_INSTALL

                elif ph == C.PH_ABORT:
                    if TS[th, C.TS_REL_PAID] == 0:
                        # an interruptible wait aborted by a signal at t
                        TS[th, C.TS_INTR] = 0
                        TS[th, C.TS_ATT_WAIT] += t - TS[th, C.TS_ACC]
                        TS[th, C.TS_F_IOWAIT] += t - TS[th, C.TS_WAIT_START]
                        TS[th, C.TS_ACC] = t
                        pos = TS[th, C.TS_POS]
                        p = rec_page[pos]
                        if TS[th, C.TS_WAIT_KIND] == 1:
                            TS[th, C.TS_WAIT_PAGE] = -1
                            s = page_slot[p] if cache_mode else p
                            _unpin(s, PIN, FL)
                            if (FL[s] & F_PIN) == 0 and (FL[s] & F_PTE) == 0 and \
                                    (FL[s] & F_INFL) == 0:
                                if track_cand:
                                    n_cand = _note_candidate(cand, n_cand, s)
                        if line_on:
                            # the release takes effect after its line cost (docs/model.md
                            # 15.1): the phase runs again then, from the release on
                            v = page_vma[rec_page[TS[th, C.TS_POS]]]
                            rc = _release_line_ns(TS[th, C.TS_HOW] if designs else C.FLK_MMAP,
                                                  TS[th, C.TS_LOCK_ASID], v, lk_readers, vl_readers,
                                                  vl_wlocked, mline_ns, vline_ns)
                            if rc > 0:
                                TS[th, C.TS_REL_PAID] = 1
                                TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                                nxt = t + rc
                                ph = C.PH_WAIT_IO  # (asleep on the CPU: nothing more this step)
                    else:
                        TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                        TS[th, C.TS_ACC] = t
                        TS[th, C.TS_REL_PAID] = 0
                    if ph == C.PH_ABORT:
                        w = -1
                        if designs and TS[th, C.TS_HOW] != C.FLK_MMAP:
                            # a VMA read lock (docs/model.md 15.3), a speculative attempt,
                            # or nothing held (VM_FAULT_COMPLETED)
                            if TS[th, C.TS_HOW] == C.FLK_VMA:
                                v = page_vma[rec_page[TS[th, C.TS_POS]]]
                                w = _vma_read_release(th, t, v, vma_asid[v], vl_readers,
                                                      vl_wlocked, drain_th, vlocks,
                                                      keep_records, TS, tn)
                                TS[th, C.TS_HOW] = C.FLK_NONE
                            elif TS[th, C.TS_HOW] == C.FLK_SPEC:
                                # a validated speculative attempt ends (docs/model.md 15.6)
                                if keep_records:
                                    vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
                                TS[th, C.TS_HOW] = C.FLK_NONE
                        else:
                            a = TS[th, C.TS_LOCK_ASID]
                            if keep_records:
                                locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                            # release the read hold; the last reader out lets a queued writer go
                            lk_readers[a] -= 1
                            if lk_readers[a] == 0 and lk_qn[a] > 0:
                                w = _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn)
                        if w >= 0:
                            o_found, o_t, o_k = _with_step(o_found, o_t, o_k, t, w)
                        _attempt_wasted(th, TS, TT, False)
                        b = t // bin_ns
                        if b >= ts_bins.shape[1]:
                            bin_ns, b, n_bins = _fit_bins(ts_bins, t, bin_ns, n_bins)
                            bin_hi = 0  # (the fast path's cached bin is stale)
                        ts_bins[C.TSB_RETRIES, b] += 1
                        if b >= n_bins:
                            n_bins = b + 1
                        TS[th, C.TS_PHASE] = C.PH_DELIVER_REEXEC
                        nxt = t

                elif ph == C.PH_DELIVER_REEXEC or ph == C.PH_REC_END:
                    seg = TS[th, C.TS_SEG]
                    if seg < C.TT_NCAT:
                        TT[th, seg] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    if ph == C.PH_REC_END and TS[th, C.TS_ACCESS_DONE] == 1:
                        TS[th, C.TS_ACCESS_DONE] = 0
                        TS[th, C.TS_POS] += 1
                        TT[th, C.TT_RECORDS] += 1
                        cnt[C.CNT_ACCESSES] += 1
                    TS[th, C.TS_AFTER] = C.PH_ACCESS if ph == C.PH_DELIVER_REEXEC else C.PH_START
                    TS[th, C.TS_SEG] = C.CAT_SIGNAL
                    # with nothing pending, delivery is a no-op: go straight on
                    TS[th, C.TS_PHASE] = C.PH_DELIVER if pend_n[th] > 0 else TS[th, C.TS_AFTER]
                    nxt = t

                elif ph == C.PH_DELIVER:
                    # one pending signal at a time, re-checking after each (the kernel's
                    # exit-to-user loop): a signal arriving during handling joins the batch
                    TT[th, C.CAT_SIGNAL] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    if pend_n[th] == 0:
                        TS[th, C.TS_PHASE] = TS[th, C.TS_AFTER]
                        nxt = t
                    else:
                        m = pend_t.shape[1]
                        slot = pend_h[th]
                        pend_h[th] = (slot + 1) % m
                        pend_n[th] -= 1
                        if keep_records:
                            sigs[pend_row[th, slot], C.S_DELIVERY] = t
                        hist_sig[_hist_bucket(t - pend_t[th, slot])] += 1
                        cnt[C.CNT_SIG_DELIVERED] += 1
                        if pend_f[th, slot] == 1:
                            # a fatal signal: the thread ends now; later ones are dropped
                            pend_n[th] = 0
                            if TS[th, C.TS_IN_FAULT] == 1 and TS[th, C.TS_AFTER] == C.PH_ACCESS:
                                _close_fault(th, t, C.OUT_KILLED, TS, faults, keep_records, cnt)
                                TS[th, C.TS_IN_FAULT] = 0
                                TS[th, C.TS_FAULT_ROW] = -1
                            # the current record (a fault aborted) is abandoned; the rest never run
                            n_alive -= 1
                            n_acc_alive, acc_end = _end_thread(th, t, C.ST_KILLED, TT, TS,
                                                               thr_off, thr_access, cnt,
                                                               n_acc_alive, acc_end)
                            break
                        nxt = t + signal_ns
                elif ph == C.PH_MINOR_MAP:
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    case = TS[th, C.TS_CASE]
                    s = page_slot[p] if cache_mode else p
                    if charge_anon and case == C.CASE_COW and CHG[p] == 0:
                        # the private copy takes a frame of the limit (section 12)
                        ok, n_resident, n_ent, hand, nev = _reclaim(
                            1, memory_pages, n_anon, n_resident, n_ent, replacement, hand, S,
                            LL, FL, cnt, twolist_ratio, P, slot_frames, sp_off, sp_pages, MAPC,
                            evs, nev, keep_records, t, C.BY_FAULT, th)
                        if not ok:
                            oom = True
                            stop_t = t
                            cnt[C.CNT_OOM_NS] = t
                            cnt[C.CNT_OOM_THREAD] = th
                            break
                        CHG[p] = 1
                        n_anon += 1
                    _install_page(p, s, case, FL, PT, MAPC, cnt)
                    TS[th, C.TS_INSTALLED] = 1
                    n_around = 0
                    if has_windows and win_hi[p] - win_lo[p] > 1 and \
                            TS[th, C.TS_AROUND_DONE] == 0:
                        n_around = _map_around(p, kernel_model, page_vma, page_vpn, page_rank,
                                               by_key, vma_p0, vma_p1, win_lo, win_hi,
                                               page_slot, FL, PT, MAPC, RAM)
                        cnt[C.CNT_PTES] += n_around
                        v = page_vma[p]
                        ri = vma_asid[v] * n_files + vma_file[v]
                        RA[ri, RA_MISS] = max(0, RA[ri, RA_MISS] - n_around)
                    _unpin(s, PIN, FL)
                    if kernel_model and track_cand and \
                            (FL[s] & (F_RES | F_INFL | F_PIN | F_PTE)) == F_RES:
                        # a private copy maps the page no more: the adversary may take it
                        n_cand = _note_candidate(cand, n_cand, s)
                    TS[th, C.TS_PHASE] = C.PH_INSTALL
                    nxt = t + n_around * pte_ns

                if ph == C.PH_INSTALL:
                    # map the page, release the read lock: the fault is done
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    if TS[th, C.TS_REL_PAID] == 0:
                        pos = TS[th, C.TS_POS]
                        p = rec_page[pos]
                        case = TS[th, C.TS_CASE]
                        s = page_slot[p] if cache_mode else p
                        if charge_anon and CHG[p] == 0 and (
                                case == C.CASE_ANON or case == C.CASE_COPY or
                                case == C.CASE_COW or
                                (case == C.CASE_NONE and vma_backing[page_vma[p]] == C.B_ANON)):
                            # an anonymous page or a private copy takes a frame of the limit,
                            # at the install, the faulting folio still pinned (section 12)
                            ok, n_resident, n_ent, hand, nev = _reclaim(
                                1, memory_pages, n_anon, n_resident, n_ent, replacement, hand,
                                S, LL, FL, cnt, twolist_ratio, P, slot_frames, sp_off,
                                sp_pages, MAPC, evs, nev, keep_records, t, C.BY_FAULT, th)
                            if not ok:
                                oom = True
                                stop_t = t
                                cnt[C.CNT_OOM_NS] = t
                                cnt[C.CNT_OOM_THREAD] = th
                                break
                            CHG[p] = 1
                            n_anon += 1
                        if TS[th, C.TS_WAIT_KIND] == 1 and TS[th, C.TS_WAIT_DROP] == 0:
                            _unpin(s, PIN, FL)
                        TS[th, C.TS_WAIT_KIND] = 0
                        if TS[th, C.TS_INSTALLED] == 0:
                            _install_page(p, s, case, FL, PT, MAPC, cnt)
                        # (else the hit installed it at i, docs/model.md 5: an eviction since
                        # then took the PTE away, and the release does not put it back)
                        TS[th, C.TS_INSTALLED] = 0
                        if kernel_model and track_cand and \
                                (FL[s] & (F_RES | F_INFL | F_PIN | F_PTE)) == F_RES:
                            # a private copy maps the page no more: the adversary may take it
                            n_cand = _note_candidate(cand, n_cand, s)
                        if line_on:
                            # the release takes effect after its line cost (docs/model.md
                            # 15.1): the phase runs again then, from the release on
                            v = page_vma[rec_page[TS[th, C.TS_POS]]]
                            rc = _release_line_ns(TS[th, C.TS_HOW] if designs else C.FLK_MMAP,
                                                  TS[th, C.TS_LOCK_ASID], v, lk_readers, vl_readers,
                                                  vl_wlocked, mline_ns, vline_ns)
                            if rc > 0:
                                TS[th, C.TS_REL_PAID] = 1
                                TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                                nxt = t + rc
                                ph = C.PH_WAIT_IO  # (asleep on the CPU: nothing more this step)
                    else:
                        TS[th, C.TS_REL_PAID] = 0
                if ph == C.PH_INSTALL:
                    w = -1
                    if designs and TS[th, C.TS_HOW] != C.FLK_MMAP:
                        # a VMA read lock (docs/model.md 15.3), a speculative attempt,
                        # or nothing held (VM_FAULT_COMPLETED)
                        if TS[th, C.TS_HOW] == C.FLK_VMA:
                            v = page_vma[rec_page[TS[th, C.TS_POS]]]
                            w = _vma_read_release(th, t, v, vma_asid[v], vl_readers,
                                                  vl_wlocked, drain_th, vlocks,
                                                  keep_records, TS, tn)
                            TS[th, C.TS_HOW] = C.FLK_NONE
                        elif TS[th, C.TS_HOW] == C.FLK_SPEC:
                            # a validated speculative attempt ends (docs/model.md 15.6)
                            if keep_records:
                                vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
                            TS[th, C.TS_HOW] = C.FLK_NONE
                    else:
                        a = TS[th, C.TS_LOCK_ASID]
                        if keep_records:
                            locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                        # release the read hold; the last reader out lets a queued writer go
                        lk_readers[a] -= 1
                        if lk_readers[a] == 0 and lk_qn[a] > 0:
                            w = _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn)
                    if w >= 0:
                        o_found, o_t, o_k = _with_step(o_found, o_t, o_k, t, w)
                    TT[th, C.CAT_FAULT_CPU] += TS[th, C.TS_ATT_CPU]
                    TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
                    TS[th, C.TS_ATT_CPU] = 0
                    TS[th, C.TS_ATT_WAIT] = 0
                    TS[th, C.TS_PHASE] = C.PH_FAULT_END
                    nxt = t
                    if w < 0 or th < w:
                        ph = C.PH_FAULT_END  # (a writer granted now with a lower id goes first)

                if ph == C.PH_SIGBUS:
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    if TS[th, C.TS_REL_PAID] == 0:
                        if line_on:
                            # the release takes effect after its line cost (docs/model.md
                            # 15.1): the phase runs again then, from the release on
                            v = page_vma[rec_page[TS[th, C.TS_POS]]]
                            rc = _release_line_ns(TS[th, C.TS_HOW] if designs else C.FLK_MMAP,
                                                  TS[th, C.TS_LOCK_ASID], v, lk_readers, vl_readers,
                                                  vl_wlocked, mline_ns, vline_ns)
                            if rc > 0:
                                TS[th, C.TS_REL_PAID] = 1
                                TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                                nxt = t + rc
                                ph = C.PH_WAIT_IO  # (asleep on the CPU: nothing more this step)
                    else:
                        TS[th, C.TS_REL_PAID] = 0
                if ph == C.PH_FAULT_END:
                    # the fault completed at t; the access follows
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    # (kernel model: a reference when the PTE maps the page-cache page, or a
                    # do_cow_fault copied it; docs/model.md 11.2)
                    s = page_slot[p] if cache_mode else p
                    if (FL[p] & F_FILE) != 0 and (not kernel_model or (
                            (FL[s] & F_RES) != 0 and
                            ((FL[p] & F_PTE) != 0 or TS[th, C.TS_COW] == 1))):
                        if replacement == C.REPL_LRU:
                            if LL[S, 1] != s and (FL[s] & F_RES) != 0:
                                _list_remove(LL, s)
                                _list_insert_after(LL, s, S)
                        elif replacement == C.REPL_CLOCK:
                            FL[s] |= F_REF
                        elif replacement == C.REPL_TWOLIST and (FL[s] & F_RES) != 0:
                            _touch_twolist(s, S, LL, FL, cnt)
                    lat = t - fstart[th]
                    hist_fault[_hist_bucket(lat)] += 1
                    _close_fault(th, t, C.OUT_DONE, TS, faults, keep_records, cnt)
                    TS[th, C.TS_IN_FAULT] = 0
                    TS[th, C.TS_FAULT_ROW] = -1
                    TS[th, C.TS_SEG] = C.CAT_HIT
                    TS[th, C.TS_ACCESS_DONE] = 1
                    TS[th, C.TS_PHASE] = C.PH_REC_END
                    nxt = t + access_ns

                elif ph == C.PH_SIGBUS:
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    w = -1
                    if designs and TS[th, C.TS_HOW] != C.FLK_MMAP:
                        # a VMA read lock (docs/model.md 15.3), a speculative attempt,
                        # or nothing held (VM_FAULT_COMPLETED)
                        if TS[th, C.TS_HOW] == C.FLK_VMA:
                            v = page_vma[rec_page[TS[th, C.TS_POS]]]
                            w = _vma_read_release(th, t, v, vma_asid[v], vl_readers,
                                                  vl_wlocked, drain_th, vlocks,
                                                  keep_records, TS, tn)
                            TS[th, C.TS_HOW] = C.FLK_NONE
                        elif TS[th, C.TS_HOW] == C.FLK_SPEC:
                            # a validated speculative attempt ends (docs/model.md 15.6)
                            if keep_records:
                                vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
                            TS[th, C.TS_HOW] = C.FLK_NONE
                    else:
                        a = TS[th, C.TS_LOCK_ASID]
                        if keep_records:
                            locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                        # release the read hold; the last reader out lets a queued writer go
                        lk_readers[a] -= 1
                        if lk_readers[a] == 0 and lk_qn[a] > 0:
                            w = _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn)
                    if w >= 0:
                        o_found, o_t, o_k = _with_step(o_found, o_t, o_k, t, w)
                    TT[th, C.CAT_FAULT_CPU] += TS[th, C.TS_ATT_CPU]
                    TS[th, C.TS_ATT_CPU] = 0
                    # iomem never waits, so the fault is minor with no I/O wait
                    _close_fault(th, t, C.OUT_SIGBUS, TS, faults, keep_records, cnt)
                    cnt[C.CNT_SIGBUS] += 1
                    TS[th, C.TS_IN_FAULT] = 0
                    TS[th, C.TS_FAULT_ROW] = -1
                    n_alive -= 1
                    n_acc_alive, acc_end = _end_thread(th, t, C.ST_SIGBUS, TT, TS, thr_off,
                                                       thr_access, cnt, n_acc_alive, acc_end)
                    # pending signals die with the thread
                    m = pend_t.shape[1]
                    pend_n[th] = 0
                    break

                elif ph < 0 or ph > C.PH_DROP_WAIT:
                    raise RuntimeError("vmlab engine: unknown thread phase")

                # ---- a record's end (after a hit or a fault) that comes before anything else
                # happens, with no signal waiting and a next record that cannot run inline (its
                # gap lets other events in): do what PH_REC_END and PH_START would do, in one go,
                # and go on to the next record's access
                if fast_path and nxt >= 0 and TS[th, C.TS_PHASE] == C.PH_REC_END and \
                        pend_n[th] == 0 and TS[th, C.TS_ACCESS_DONE] == 1 and nxt <= horizon:
                    pos = TS[th, C.TS_POS]
                    if pos + 1 < thr_off[th + 1]:
                        found, lt, lk = _limit(hn, ht[0], hk[0], o_found, o_t, o_k)
                        myk = (C.EV_THREAD << 40) | th
                        if found and _key_lt(nxt, myk, lt, lk):
                            nx = pos + 1
                            g = np.int64(rec_gap[nx]) if has_gap else np.int64(0)
                            if not _key_lt(nxt + g + access_ns, myk, lt, lk):
                                seg = TS[th, C.TS_SEG]
                                if seg < C.TT_NCAT:
                                    TT[th, seg] += nxt - TS[th, C.TS_ACC]
                                TT[th, C.TT_RECORDS] += 1
                                cnt[C.CNT_ACCESSES] += 1
                                TS[th, C.TS_ACCESS_DONE] = 0
                                TS[th, C.TS_POS] = pos + 1
                                TS[th, C.TS_AFTER] = C.PH_START
                                TS[th, C.TS_ACC] = nxt
                                TS[th, C.TS_SEG] = C.CAT_COMPUTE
                                TS[th, C.TS_PHASE] = C.PH_ACCESS
                                p = rec_page[nx]  # (as for the access after a gap above)
                                if p >= 0:
                                    prefetch(FL, p)
                                    prefetch(LL, p)
                                    prefetch(page_vma, p)
                                if nx + 16 < thr_off[th + 1]:
                                    prefetch(rec_page, nx + 16)
                                    prefetch(rec_gap, nx + 16)
                                nxt += g

                # ---- go on inline if nothing else can happen before the next step
                if nxt < 0:
                    break
                if nxt > horizon:
                    tn[th] = nxt
                    break
                found, lt, lk = _limit(hn, ht[0], hk[0], o_found, o_t, o_k)
                if fast_path and (not found or _key_lt(nxt, (C.EV_THREAD << 40) | th, lt, lk)) and \
                        (event_budget < 0 or n_ev < event_budget) and not \
                        _low_room(keep_records, nf, faults.shape[0], nl, locks.shape[0], ns,
                                  sigs.shape[0], track_cand, n_cand, cand.shape[0], T) and not (
                            keep_records and _ev_low(nev, evs.shape[0], nf, faults.shape[0],
                                                     n_cand, ev_margin)) and not (
                        designs and keep_records and nvl + REC_MARGIN > vlocks.shape[0]):
                    n_ev += 1  # (a step taken inline is an event all the same)
                    t = nxt
                    continue
                tn[th] = nxt  # (or the tables need room: the pass ends, the thread goes on)
                break
        if not grow:
            break

    if oom:
        # a release before the OOM at the same instant granted mmap_sem to queued threads
        # whose resumes never run: the lock is theirs from the grant all the same
        # (docs/model.md 2 and 12), so their records say so
        for th in range(T):
            if tn[th] == stop_t and TS[th, C.TS_PHASE] == C.PH_GRANTED and not (designs and (
                    TS[th, C.TS_W_LOCKED] == 1 or (TS[th, C.TS_LOCK_KIND] == C.LK_FAULT and
                                                   TS[th, C.TS_HOW] != C.FLK_MMAP))):
                _note_mmap_grant(th, stop_t, TS[th, C.TS_LOCK_KIND], locks, keep_records, TS,
                                 cnt, hist_rwait, hist_wwait)
    # ---- the horizon (or the event budget's stop): close every unfinished thread's books
    end_time = _close_books(stop_t, TT, TS, thr_off, faults, keep_records, cnt,
                            pol, vma_pol, page_vma, rec_page, oom)
    cnt[C.CNT_END] = end_time
    cnt[C.CNT_BIN_NS] = bin_ns
    cnt[C.CNT_EVENTS] = n_ev
    cnt[C.CNT_BUDGET_STOP] = 1 if budget_hit else 0
    if n_acc_alive > 0:
        acc_end = stop_t
    cnt[C.CNT_LW_FIRST] = lw_first
    cnt[C.CNT_LW_LAST] = lw_last
    cnt[C.CNT_ACC_END] = acc_end
    cnt[C.CNT_RESIDENT] = n_resident
    n_fast = cnt[C.CNT_FAULTS] - n_gen_faults
    cnt[C.CNT_MMAP_READ] += n_fast
    hist_rwait[0] += n_fast
    if not cache_mode:
        # every I/O read one page (counted here: the fast path counts I/Os only)
        cnt[C.CNT_READ_PAGES] = cnt[C.CNT_IO]
    return (faults[:nf], sigs[:ns], locks[:nl], TT, cnt, _series(ts_bins, n_bins), hist_fault,
            hist_sig, vlocks[:nvl], hist_rwait, hist_wwait, evs[:nev])
