"""The numba event loop: ``_simulate`` replays prepared arrays under the knobs of docs/model.md.

Only numpy and numba here.  Everything is an array or a scalar; policies arrive as rows of
knob values, backings and replacement policies as integer codes (see ``codes`` below).  The
plain-Python reference simulator in ``tests/naive_engine.py`` implements the same contract
independently; the two must agree record for record.

Structure: events keyed ``(time, kind, id)``: each thread's next step in an array, I/O
completions, adversary calls and signal arrivals in a binary heap.  A thread runs its own
steps inline as long as each next step's key is below every other pending key (nothing else
can happen before it), which makes a stream of page hits or uncontended faults a tight loop.
"""
from __future__ import annotations

import numpy as np

from .._numba import njit, prefetch
from . import codes as C

# per-page flag bits (one byte a page: the whole flag array stays in cache)
F_PTE = np.uint8(1)      # a PTE maps the page
F_RES = np.uint8(2)      # file: in the page cache; context: ready
F_INFL = np.uint8(4)     # I/O in flight
F_MSIO = np.uint8(8)     # mapped since its last I/O (else an eviction wastes that I/O)
F_REF = np.uint8(16)     # CLOCK reference bit
F_FILE = np.uint8(32)    # file backing (its references drive replacement)
F_PIN = np.uint8(64)     # pinned: PIN[p] > 0 (a copy of the count's sign, one byte to read)

# how many records ahead the inline loop prefetches page state
PF_DIST = 16

# most columns of the time series: past this, its bins become twice as wide
MAX_BINS = 1 << 18

# free rows the event loop keeps in its record tables (and adversary notes, plus T)
REC_MARGIN = 8

# a blocked thread's next step: later than any simulated time
NO_STEP = np.int64(1 << 62)

# ---------------------------------------------------------------------------------------
# random numbers (docs/model.md section 1)


@njit
def _mix(seed, stream, counter):
    z = (seed ^ (np.uint64(stream) * np.uint64(0xD1B54A32D192ED03))) + \
        (np.uint64(counter) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z


@njit(inline="always")
def _draw(tables, dist, seed, stream, counter):
    return tables[dist, np.int64(_mix(seed, stream, counter) >> np.uint64(48))]


@njit(inline="always")
def _io_slot(seed, io_dist, n_quant, counter):
    """Where I/O draw number ``counter`` is in the flattened tables (``_draw``'s entry)."""
    return io_dist * n_quant + np.int64(_mix(seed, 1, counter) >> np.uint64(48))


# ---------------------------------------------------------------------------------------
# the event heap (I/O completions, adversary calls, signal arrivals): parallel arrays of
# time and key (kind << 40 | id)


@njit
def _key_lt(t1, k1, t2, k2):
    return t1 < t2 or (t1 == t2 and k1 < k2)


@njit
def _heap_push(ht, hk, n, t, k):
    """Insert event ``(t, k)`` into the heap of size ``n``; returns the new size."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if _key_lt(t, k, ht[parent], hk[parent]):
            ht[i] = ht[parent]
            hk[i] = hk[parent]
            i = parent
        else:
            break
    ht[i] = t
    hk[i] = k
    return n + 1


@njit
def _heap_pop(ht, hk, n):
    """Remove the top (caller has read it); returns the new size."""
    n -= 1
    if n == 0:
        return 0
    t = ht[n]
    k = hk[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _key_lt(ht[c + 1], hk[c + 1], ht[c], hk[c]):
            c += 1
        if _key_lt(ht[c], hk[c], t, k):
            ht[i] = ht[c]
            hk[i] = hk[c]
            i = c
        else:
            break
    ht[i] = t
    hk[i] = k
    return n


# ---------------------------------------------------------------------------------------
# growable record tables


@njit
def _grow(a):
    b = np.empty((2 * a.shape[0] + 16, a.shape[1]), a.dtype)
    b[: a.shape[0]] = a
    return b


@njit
def _grow1(a, need):
    m = a.shape[0]
    while m <= need:
        m = 2 * m + 64
    b = np.zeros(m, a.dtype)
    b[: a.shape[0]] = a
    return b


@njit
def _hist_bucket(x):
    if x < 64:
        return x if x > 0 else 0
    # e = floor(log2(x)) by halving steps
    e = 0
    y = x
    if y >= (1 << 32):
        y >>= 32
        e += 32
    if y >= (1 << 16):
        y >>= 16
        e += 16
    if y >= (1 << 8):
        y >>= 8
        e += 8
    if y >= (1 << 4):
        y >>= 4
        e += 4
    if y >= (1 << 2):
        y >>= 2
        e += 2
    if y >= 2:
        e += 1
    return 64 + (e - 6) * 64 + ((x >> (e - 6)) & 63)


# ---------------------------------------------------------------------------------------
# the page-cache list (one doubly linked list over dense page ids; sentinel = n_pages)


@njit(inline="always")
def _list_insert_after(LL, node, at):
    b = LL[at, 1]
    LL[node, 0] = at
    LL[node, 1] = b
    LL[at, 1] = node
    LL[b, 0] = node


@njit(inline="always")
def _list_remove(LL, node):
    a = LL[node, 0]
    b = LL[node, 1]
    LL[a, 1] = b
    LL[b, 0] = a
    LL[node, 0] = -1
    LL[node, 1] = -1


@njit
def _fit_bins(bins, t, bin_ns, n_bins):
    """Make room in the time series (MAX_BINS columns) for time ``t``: bins twice as wide
    (adding pairs, in place) as often as needed, so the series stays bounded however long
    the run.  Returns ``(bin_ns, b, n_bins)``."""
    b = t // bin_ns
    while b >= bins.shape[1]:
        half = bins.shape[1] // 2
        for i in range(half):
            for row in range(bins.shape[0]):
                bins[row, i] = bins[row, 2 * i] + bins[row, 2 * i + 1]
        bins[:, half:] = 0
        bin_ns *= 2
        n_bins = (n_bins + 1) // 2
        b = t // bin_ns
    return bin_ns, b, n_bins


@njit
def _choose_victim(replacement, hand, S, LL, FL, n_resident):
    """The page to evict (or -1) and the new CLOCK hand (docs/model.md section 8)."""
    victim = -1
    if replacement == C.REPL_CLOCK:
        x = hand
        guard = 0
        while guard < 3 * (n_resident + 1):
            guard += 1
            if x == S:
                x = LL[S, 1]
                continue
            if (FL[x] & F_INFL) != 0 or (FL[x] & F_PIN) != 0:
                x = LL[x, 1]
            elif (FL[x] & F_REF) != 0:
                FL[x] &= np.uint8(255 - F_REF)
                x = LL[x, 1]
            else:
                victim = x
                break
        if victim >= 0:
            hand = LL[victim, 1]
            if hand == S:
                hand = LL[S, 1]
            if hand == victim:
                hand = S
    else:
        victim = _lru_victim(S, LL, FL)
    return victim, hand


@njit
def _handler_extra(bk, eager, struct_page, sp_ns, zero_fill_ns, driver_ns):
    """Handler CPU beyond ``fault_ns`` (docs/model.md section 5, step 2)."""
    if eager:
        return driver_ns
    if bk == C.B_FILE:
        return sp_ns
    if bk == C.B_ANON:
        return sp_ns + zero_fill_ns
    if bk == C.B_IOMEM:
        return driver_ns
    return driver_ns + (sp_ns if struct_page else 0)


@njit
def _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn):
    """The last reader of address space ``a``'s mmap_sem left at ``t``: a writer at the head
    of its queue takes the lock and resumes at ``t``.  Returns that writer's thread, or -1.
    (Called only when someone is queued: a call with array arguments costs reference
    counting, too much for every release.)"""
    w = lk_q[a, lk_qh[a]]
    if (w & 1) == 1 and lk_writer[a] == 0:
        lk_writer[a] = 1
        lk_qh[a] = (lk_qh[a] + 1) % lk_q.shape[1]
        lk_qn[a] -= 1
        tn[w >> 1] = t
        return w >> 1
    return -1


@njit(inline="always")
def _with_step(found, lt, lk, t, th):
    """The smaller of the pending key ``(lt, lk)`` (if ``found``) and thread ``th``'s step at
    ``t``: how a grant updates the other threads' earliest step."""
    k = (C.EV_THREAD << 40) | th
    if not found or _key_lt(t, k, lt, lk):
        return True, t, k
    return found, lt, lk


@njit(inline="always")
def _other_min(tn, th):
    """The earliest next step of the threads other than ``th``: ``(found, time, key)``."""
    found = False
    lt = 0
    lk = 0
    for i in range(tn.shape[0]):
        if i != th and tn[i] != NO_STEP:
            k = (C.EV_THREAD << 40) | i
            if not found or _key_lt(tn[i], k, lt, lk):
                lt = tn[i]
                lk = k
                found = True
    return found, lt, lk


@njit(inline="always")
def _limit(hn, h_t, h_k, o_found, o_t, o_k):
    """The smallest pending key: the heap's top ``(h_t, h_k)`` (if ``hn`` > 0) or the other
    threads' earliest step.  (Scalars only: an array argument costs reference counting.)"""
    if hn > 0 and (not o_found or _key_lt(h_t, h_k, o_t, o_k)):
        return True, h_t, h_k
    return o_found, o_t, o_k


@njit
def _low_room(keep_records, nf, cap_f, nl, cap_l, ns, cap_s, track_cand, n_cand, cap_c, T):
    """Fewer than REC_MARGIN free rows in a record table or in the adversary's notes
    (capacities given as numbers: an array argument costs reference counting per call)."""
    if keep_records and (nf + REC_MARGIN > cap_f or nl + REC_MARGIN > cap_l
                         or ns + REC_MARGIN > cap_s):
        return True
    return track_cand and n_cand + T + REC_MARGIN > cap_c


@njit(inline="always")
def _note_candidate(cand, n_cand, p):
    """Note page ``p`` for the adversary: it became resident, unmapped and unpinned (stale
    notes are skipped when the adversary runs).  The event loop keeps room for it."""
    cand[n_cand] = p
    return n_cand + 1


@njit(inline="always")
def _pin(p, PIN, FL):
    """A fault takes a reference on page ``p`` (it cannot be evicted while pinned)."""
    PIN[p] += 1
    FL[p] |= F_PIN


@njit(inline="always")
def _unpin(p, PIN, FL):
    """A fault lets go of its reference on page ``p``."""
    PIN[p] -= 1
    if PIN[p] == 0:
        FL[p] &= np.uint8(255 - F_PIN)


@njit(inline="always")
def _lru_victim(S, LL, FL):
    """LRU and FIFO: the page nearest the tail that is neither in flight nor pinned (or -1)."""
    x = LL[S, 0]
    while x != S:
        if (FL[x] & F_INFL) == 0 and (FL[x] & F_PIN) == 0:
            return x
        x = LL[x, 0]
    return -1


@njit(inline="always")
def _evict(victim, replacement, S, LL, FL, cnt):
    """Take ``victim`` out of the page cache (its PTE goes with it)."""
    _list_remove(LL, victim)
    FL[victim] &= np.uint8(255 - F_RES)
    cnt[C.CNT_EVICTIONS] += 1
    if (FL[victim] & F_PTE) != 0:
        FL[victim] &= np.uint8(255 - F_PTE)
        cnt[C.CNT_PTES] -= 1
    if (FL[victim] & F_MSIO) == 0:
        cnt[C.CNT_WASTED_IO] += 1
    if replacement != C.REPL_CLOCK:
        # the next victim is the new tail: fetch its state for the next eviction
        nv = LL[S, 0]
        prefetch(FL, nv)
        prefetch(LL, LL[nv, 0])


@njit(inline="always")
def _insert(p, replacement, hand, S, LL, FL):
    """Put file page ``p`` in the page cache: at the head (LRU, FIFO) or behind the hand."""
    FL[p] |= F_RES
    FL[p] &= np.uint8(255 - F_REF)
    if replacement == C.REPL_CLOCK:
        _list_insert_after(LL, p, LL[hand, 0])
    else:
        _list_insert_after(LL, p, S)


@njit(inline="always")
def _admit(p, memory_pages, n_resident, replacement, hand, S, LL, FL, cnt):
    """Give file page ``p`` a page-cache frame, evicting a victim when all are taken."""
    if memory_pages >= 0 and n_resident >= memory_pages:
        victim, hand = _choose_victim(replacement, hand, S, LL, FL, n_resident)
        if victim >= 0:
            _evict(victim, replacement, S, LL, FL, cnt)
            n_resident -= 1
    _insert(p, replacement, hand, S, LL, FL)
    return n_resident + 1, hand


@njit(inline="always")
def _attempt_wasted(th, TS, TT, wait_kept):
    """The attempt in progress ended without completing the fault: its CPU is wasted.  Its
    wait is I/O wait when ``wait_kept`` (a lock-dropping wait ran to completion: the page
    or context it waited for stays for the retry), wasted otherwise (a wait cut short by a
    signal; docs/model.md section 9)."""
    TS[th, C.TS_RETRIES] += 1
    TT[th, C.CAT_WASTED] += TS[th, C.TS_ATT_CPU]
    if wait_kept:
        TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
    else:
        TT[th, C.CAT_WASTED] += TS[th, C.TS_ATT_WAIT]
    TS[th, C.TS_ATT_CPU] = 0
    TS[th, C.TS_ATT_WAIT] = 0


@njit(inline="always")
def _close_fault(th, t_end, outcome, TS, faults, keep_records, cnt):
    """Write thread ``th``'s fault record (if kept) and count it: one user-visible fault,
    however many attempts it took."""
    if keep_records:
        fr = TS[th, C.TS_FAULT_ROW]
        faults[fr, C.F_END] = t_end
        faults[fr, C.F_OUTCOME] = outcome
        faults[fr, C.F_ATTEMPTS] = TS[th, C.TS_ATTEMPTS]
        faults[fr, C.F_MAJOR] = TS[th, C.TS_MAJOR]
        faults[fr, C.F_LOCKWAIT] = TS[th, C.TS_F_LOCKWAIT]
        faults[fr, C.F_IOWAIT] = TS[th, C.TS_F_IOWAIT]
    cnt[C.CNT_RETRIES] += TS[th, C.TS_ATTEMPTS] - 1
    if TS[th, C.TS_MAJOR] == 1:
        cnt[C.CNT_MAJOR] += 1
    else:
        cnt[C.CNT_MINOR] += 1


# ---------------------------------------------------------------------------------------


@njit
def _simulate(
    # records
    rec_page, rec_gap, has_gap, thr_off, thr_tid, thr_access,
    # pages
    page_vma, page_vpn, page_asid, page_rank, by_key,
    # vmas
    vma_backing, vma_pol, vma_asid, vma_p0, vma_p1, vma_npages, vma_first_vpn,
    emap_vma, emap_off,
    # policies, costs, distributions
    pol, costs, tables, io_dist, wait_dist,
    # signals
    sig_kind, sig_param, sig_start, sig_fatal, sig_times, sig_toff,
    # adversary
    adv_kind, adv_param, adv_start, adv_times, adv_target,
    # page cache
    memory_pages, replacement, fault_around, preload,
    # run
    n_asid, horizon, seed, keep_records, bin_ns,
):
    T = thr_off.shape[0] - 1
    P = page_vma.shape[0]
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

    # ---- page state
    # per-page state: flag bits (F_*) and the pin count (faults holding a reference)
    FL = np.zeros(P, np.uint8)
    PIN = np.zeros(P, np.int32)
    FL[:] |= F_MSIO
    for q in range(P):
        if vma_backing[page_vma[q]] == C.B_FILE:
            FL[q] |= F_FILE
    # the page-cache list: row = (prev, next), sentinel row P
    LL = np.full((P + 1, 2), -1, np.int32)
    S = P  # sentinel
    LL[S, 0] = S
    LL[S, 1] = S
    hand = S
    n_resident = 0
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

    # ---- threads
    TS = np.zeros((T, C.TS_NCOL), np.int64)
    TT = np.zeros((T, C.TT_NCOL), np.int64)
    for th in range(T):
        TS[th, C.TS_POS] = thr_off[th]
        TS[th, C.TS_EMAP] = emap_off[th]
        TS[th, C.TS_FAULT_ROW] = -1
        TS[th, C.TS_LOCK_ROW] = -1
        TS[th, C.TS_WAIT_PAGE] = -1
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
    cnt = np.zeros(C.N_COUNTERS, np.int64)
    ts_bins = np.zeros((C.TSB_NCOL, MAX_BINS), np.int64)  # (pages are zeroed as touched)
    n_bins = 0
    hist_fault = np.zeros(64 + 58 * 64, np.int64)
    hist_sig = np.zeros(64 + 58 * 64, np.int64)
    io_cnt = 0
    ctx_cnt = 0
    adv_cnt = 0

    # each VMA, once: the fast path's class (0 no wait, 1 file, 2 context, -1 always the
    # general path: SIGBUS, or file with fault-around), the handler CPU (fault_ns + extra,
    # both paths) and whether its policy drops the lock
    nvma = vma_backing.shape[0]
    vf_cls = np.zeros(nvma, np.int64)
    vf_h = np.zeros(nvma, np.int64)
    vf_drop = np.zeros(nvma, np.bool_)
    for v in range(nvma):
        bk = vma_backing[v]
        pr = vma_pol[v]
        eager = pol[pr, C.K_EAGER] == 1
        spn = pol[pr, C.K_STRUCT_PAGE] == 1
        vf_drop[v] = pol[pr, C.K_MAX_RETRIES] != 0 and pol[pr, C.K_DROP_LOCK] != 0
        vf_h[v] = fault_ns + _handler_extra(bk, eager, spn, sp_ns, zero_fill_ns, driver_ns)
        if bk == C.B_IOMEM and spn and not eager:
            vf_cls[v] = -1
        elif eager or bk == C.B_ANON or bk == C.B_DEVICE or bk == C.B_IOMEM:
            vf_cls[v] = 0
        elif bk == C.B_FILE:
            vf_cls[v] = 1 if fault_around <= 1 else -1
        else:
            vf_cls[v] = 2

    # the fast path's current time bin, and the quantile tables as one flat array
    bin_b = 0
    bin_lo = 0
    bin_hi = bin_ns
    n_quant = tables.shape[1]
    tflat = tables.reshape(-1)
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
    ht = np.empty(2 * T + P + 2, np.int64)
    hk = np.empty(2 * T + P + 2, np.int64)
    hn = 0

    for th in range(T):
        k = sig_kind[th]
        if k == C.SCHED_POISSON:
            first = sig_start[th] + _draw(tables, sig_param[th], seed, 16 + th, 0)
            sig_cnt[th] = 1
            hn = _heap_push(ht, hk, hn, first, (C.EV_SIGNAL << 40) | th)
        elif k == C.SCHED_PERIODIC:
            hn = _heap_push(ht, hk, hn, sig_start[th] + sig_param[th],
                            (C.EV_SIGNAL << 40) | th)
        elif k == C.SCHED_TIMES:
            if sig_toff[th + 1] > sig_toff[th]:
                hn = _heap_push(ht, hk, hn, sig_times[sig_toff[th]], (C.EV_SIGNAL << 40) | th)
                sig_cnt[th] = 1
    if adv_kind == C.SCHED_POISSON:
        hn = _heap_push(ht, hk, hn, adv_start + _draw(tables, adv_param, seed, 3, 0),
                        C.EV_ADVERSARY << 40)
        adv_cnt = 1
    elif adv_kind == C.SCHED_PERIODIC:
        hn = _heap_push(ht, hk, hn, adv_start + adv_param, C.EV_ADVERSARY << 40)
    elif adv_kind == C.SCHED_TIMES and adv_times.shape[0] > 0:
        hn = _heap_push(ht, hk, hn, adv_times[0], C.EV_ADVERSARY << 40)
        adv_cnt = 1

    # ---- preload
    for i in range(preload.shape[0]):
        p = preload[i]
        if (FL[p] & F_RES) == 0:
            # (no page is mapped yet, so an eviction here wastes no I/O and unmaps nothing)
            n_resident, hand = _admit(p, memory_pages, n_resident, replacement, hand, S, LL, FL,
                                      cnt)
            if track_cand:
                n_cand = _note_candidate(cand, n_cand, p)

    n_alive = T
    # writer throughput is measured while threads with access records run
    n_acc_alive = 0
    for th in range(T):
        n_acc_alive += thr_access[th]
    acc_end = -1
    lw_first = -1
    lw_last = -1
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
        if track_cand and n_cand + T + REC_MARGIN > cand.shape[0]:
            cand = _grow1(cand, n_cand + T + REC_MARGIN)
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
        while n_alive > 0:
            if _low_room(keep_records, nf, faults.shape[0], nl, locks.shape[0], ns, sigs.shape[0],
                         track_cand, n_cand, cand.shape[0], T) or pend_full:
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
                            if replacement == C.REPL_CLOCK and hand == p:
                                hand = LL[p, 1]
                            _list_remove(LL, p)
                            FL[p] &= np.uint8(255 - F_RES)
                            n_resident -= 1
                            cnt[C.CNT_ADV_EVICTIONS] += 1
                            if (FL[p] & F_MSIO) == 0:
                                cnt[C.CNT_WASTED_IO] += 1
                        else:
                            cand[j] = p
                            j += 1
                n_cand = j
                nxt_t = -1
                if adv_kind == C.SCHED_POISSON:
                    nxt_t = t + _draw(tables, adv_param, seed, 3, adv_cnt)
                    adv_cnt += 1
                elif adv_kind == C.SCHED_PERIODIC:
                    nxt_t = t + adv_param
                elif adv_kind == C.SCHED_TIMES:
                    if adv_cnt < adv_times.shape[0]:
                        nxt_t = adv_times[adv_cnt]
                        adv_cnt += 1
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
                nxt_t = -1
                sk = sig_kind[th]
                if sk == C.SCHED_POISSON:
                    nxt_t = t + _draw(tables, sig_param[th], seed, 16 + th, sig_cnt[th])
                    sig_cnt[th] += 1
                elif sk == C.SCHED_PERIODIC:
                    nxt_t = t + sig_param[th]
                elif sk == C.SCHED_TIMES:
                    idx = sig_toff[th] + sig_cnt[th]
                    if idx < sig_toff[th + 1]:
                        nxt_t = sig_times[idx]
                        sig_cnt[th] += 1
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
                        TT[th, C.TT_STATE] = C.ST_DONE
                        TT[th, C.TT_END] = t
                        n_alive -= 1
                        if thr_access[th] == 1:
                            n_acc_alive -= 1
                            if n_acc_alive == 0:
                                acc_end = t
                        TS[th, C.TS_SEG] = C.CAT_COMPUTE
                        break
                    else:
                        pos = TS[th, C.TS_POS]
                        # fast path: a run of hits on mapped pages, while nothing else can happen
                        # before each one ends and no signal waits for delivery
                        if pend_n[th] == 0:
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
                                    if cls < 0:
                                        break  # SIGBUS or fault-around: the general path
                                    h = a_t + vf_h[v]
                                    # 0 none, 1 file I/O, 2 context wait, 3 page-cache hit
                                    kind_w = 0
                                    d = 0
                                    if cls == 0:
                                        fend = h
                                    elif cls == 1:
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
                                            if replacement == C.REPL_CLOCK:
                                                victim, hand = _choose_victim(replacement, hand, S,
                                                                              LL, FL, n_resident)
                                            else:
                                                victim = _lru_victim(S, LL, FL)
                                            if victim >= 0:
                                                _evict(victim, replacement, S, LL, FL, cnt)
                                                n_resident -= 1
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
                    elif (FL[p] & F_PTE) != 0:
                        if TS[th, C.TS_FAULT_ROW] != -1 or TS[th, C.TS_IN_FAULT] == 1:
                            # re-executed after a return to user space: someone mapped it
                            TS[th, C.TS_PHASE] = C.PH_FAULT_END
                            nxt = t
                        else:
                            if (FL[p] & F_FILE) != 0:
                                if replacement == C.REPL_LRU:
                                    if LL[S, 1] != p:
                                        _list_remove(LL, p)
                                        _list_insert_after(LL, p, S)
                                elif replacement == C.REPL_CLOCK:
                                    FL[p] |= F_REF
                            TS[th, C.TS_SEG] = C.CAT_HIT
                            TS[th, C.TS_ACCESS_DONE] = 1
                            TS[th, C.TS_PHASE] = C.PH_REC_END
                            nxt = t + access_ns
                    else:
                        if TS[th, C.TS_IN_FAULT] == 0:
                            TS[th, C.TS_IN_FAULT] = 1
                            TS[th, C.TS_ATTEMPTS] = 0
                            TS[th, C.TS_RETRIES] = 0
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
                            b = t // bin_ns
                            if b >= ts_bins.shape[1]:
                                bin_ns, b, n_bins = _fit_bins(ts_bins, t, bin_ns, n_bins)
                                bin_hi = 0  # (the fast path's cached bin is stale)
                            ts_bins[C.TSB_FAULTS, b] += 1
                            if b >= n_bins:
                                n_bins = b + 1
                        TS[th, C.TS_K] = 0
                        TS[th, C.TS_LOCK_KIND] = C.LK_FAULT
                        TS[th, C.TS_LOCK_MODE] = 0
                        TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
                        nxt = t
                        ph = C.PH_LOCK_REQ

                # (a step that moves on at the same time with nothing new before it sets ``ph``
                # and falls through to the next phase below, skipping a trip round the loop)
                if ph == C.PH_LOCK_REQ:
                    a = page_asid[0] if P > 0 else 0
                    lkind = TS[th, C.TS_LOCK_KIND]
                    mode = TS[th, C.TS_LOCK_MODE]
                    if lkind == C.LK_FAULT:
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
                    if keep_records:
                        locks[TS[th, C.TS_LOCK_ROW], C.L_ACQUIRE] = t
                    if lkind == C.LK_FAULT:
                        TS[th, C.TS_F_LOCKWAIT] += t - TS[th, C.TS_REQ_T]
                        pos = TS[th, C.TS_POS]
                        TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                        TS[th, C.TS_PHASE] = C.PH_LOOKUP
                        nxt = t + vf_h[page_vma[rec_page[pos]]]  # fault_ns + handler extra
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
                    if keep_records:
                        locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                    lk_writer[a] = 0
                    m = lk_q.shape[1]
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
                    io_c = 0
                    if pol[pr, C.K_EAGER] == 1 or bk == C.B_ANON or bk == C.B_DEVICE or (
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
                    else:  # file
                        if (FL[p] & F_RES) != 0 and (FL[p] & F_INFL) == 0:
                            _pin(p, PIN, FL)
                            TS[th, C.TS_PHASE] = C.PH_MINOR_MAP
                            nxt = t + pch_ns
                        elif (FL[p] & F_INFL) != 0:
                            _pin(p, PIN, FL)
                            need_wait = 1
                        else:
                            # allocate a frame, evicting if needed, and issue the I/O
                            n_resident, hand = _admit(p, memory_pages, n_resident, replacement,
                                                      hand, S, LL, FL, cnt)
                            FL[p] |= F_INFL
                            FL[p] &= np.uint8(255 - F_MSIO)
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
                            _pin(p, PIN, FL)
                            TS[th, C.TS_MAJOR] = 1
                            need_wait = 1
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
                        if drop:
                            a = TS[th, C.TS_LOCK_ASID]
                            if keep_records:
                                locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                            # release read lock
                            # release the read hold; the last reader out lets a queued writer go
                            w = -1
                            lk_readers[a] -= 1
                            if lk_readers[a] == 0 and lk_qn[a] > 0:
                                w = _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn)
                                if w >= 0:
                                    o_found, o_t, o_k = _with_step(o_found, o_t, o_k, t, w)
                        if issued:
                            iok = (C.EV_IO << 40) | p
                            found, lt, lk = _limit(hn, ht[0], hk[0], o_found, o_t, o_k)
                            if (not (intr and pend_n[th] > 0)) and io_c <= horizon and (
                                    not found or _key_lt(io_c, iok, lt, lk)):
                                # nothing else happens before the I/O completes: complete it inline
                                io_inline = True
                            else:
                                hn = _heap_push(ht, hk, hn, io_c, iok)
                        if intr and pend_n[th] > 0:
                            # an interruptible sleep with a signal pending returns at once; the
                            # oldest pending signal is the one that aborted it
                            if keep_records:
                                sigs[pend_row[th, pend_h[th]], C.S_ABORTED] = 1
                            TS[th, C.TS_PHASE] = C.PH_ABORT
                            nxt = t
                        else:
                            TS[th, C.TS_INTR] = 1 if intr else 0
                            if need_wait == 1 and io_inline:
                                FL[p] &= np.uint8(255 - F_INFL)
                                if drop:
                                    _unpin(p, PIN, FL)
                                if (FL[p] & F_PIN) == 0 and (FL[p] & F_PTE) == 0:
                                    if track_cand:
                                        n_cand = _note_candidate(cand, n_cand, p)
                                TS[th, C.TS_PHASE] = C.PH_WOKEN
                                nxt = io_c + wakeup_ns
                            elif need_wait == 1:
                                TS[th, C.TS_WAIT_PAGE] = p
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
                            TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
                            nxt = t
                    else:
                        if TS[th, C.TS_WAIT_KIND] == 2:
                            FL[p] |= F_RES
                        TS[th, C.TS_PHASE] = C.PH_INSTALL
                        nxt = t
                        ph = C.PH_INSTALL

                elif ph == C.PH_ABORT:
                    # an interruptible wait aborted by a signal at t
                    TS[th, C.TS_INTR] = 0
                    TS[th, C.TS_ATT_WAIT] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_F_IOWAIT] += t - TS[th, C.TS_WAIT_START]
                    TS[th, C.TS_ACC] = t
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    if TS[th, C.TS_WAIT_KIND] == 1:
                        TS[th, C.TS_WAIT_PAGE] = -1
                        _unpin(p, PIN, FL)
                        if (FL[p] & F_PIN) == 0 and (FL[p] & F_PTE) == 0 and (FL[p] & F_INFL) == 0:
                            if track_cand:
                                n_cand = _note_candidate(cand, n_cand, p)
                    a = TS[th, C.TS_LOCK_ASID]
                    if keep_records:
                        locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                    # release the read hold; the last reader out lets a queued writer go
                    w = -1
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
                            TT[th, C.TT_STATE] = C.ST_KILLED
                            TT[th, C.TT_END] = t
                            n_alive -= 1
                            if thr_access[th] == 1:
                                n_acc_alive -= 1
                                if n_acc_alive == 0:
                                    acc_end = t
                            if TS[th, C.TS_IN_FAULT] == 1 and TS[th, C.TS_AFTER] == C.PH_ACCESS:
                                _close_fault(th, t, C.OUT_KILLED, TS, faults, keep_records, cnt)
                                TS[th, C.TS_IN_FAULT] = 0
                                TS[th, C.TS_FAULT_ROW] = -1
                            # the current record (a fault aborted) is abandoned; the rest never run
                            cnt[C.CNT_ABANDONED] += thr_off[th + 1] - TS[th, C.TS_POS]
                            TS[th, C.TS_POS] = thr_off[th + 1]
                            break
                        nxt = t + signal_ns
                elif ph == C.PH_MINOR_MAP:
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    if (FL[p] & F_PTE) == 0:
                        FL[p] |= F_PTE
                        cnt[C.CNT_PTES] += 1
                    FL[p] |= F_MSIO
                    n_around = 0
                    if fault_around > 1:
                        v = page_vma[p]
                        lo_vpn = page_vpn[p] - (page_vpn[p] % fault_around)
                        hi_vpn = lo_vpn + fault_around
                        # neighbours are adjacent in key order (the VMA is a key range)
                        j = page_rank[p] - 1
                        while j >= vma_p0[v] and page_vpn[by_key[j]] >= lo_vpn:
                            q = by_key[j]
                            if (FL[q] & (F_RES | F_PTE | F_INFL)) == F_RES:
                                FL[q] |= F_PTE
                                FL[q] |= F_MSIO
                                n_around += 1
                            j -= 1
                        j = page_rank[p] + 1
                        while j < vma_p1[v] and page_vpn[by_key[j]] < hi_vpn:
                            q = by_key[j]
                            if (FL[q] & (F_RES | F_PTE | F_INFL)) == F_RES:
                                FL[q] |= F_PTE
                                FL[q] |= F_MSIO
                                n_around += 1
                            j += 1
                        cnt[C.CNT_PTES] += n_around
                    _unpin(p, PIN, FL)
                    TS[th, C.TS_PHASE] = C.PH_INSTALL
                    nxt = t + n_around * pte_ns

                if ph == C.PH_INSTALL:
                    # map the page, release the read lock: the fault is done
                    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
                    TS[th, C.TS_ACC] = t
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    if TS[th, C.TS_WAIT_KIND] == 1 and TS[th, C.TS_WAIT_DROP] == 0:
                        _unpin(p, PIN, FL)
                    TS[th, C.TS_WAIT_KIND] = 0
                    if (FL[p] & F_PTE) == 0:
                        FL[p] |= F_PTE
                        cnt[C.CNT_PTES] += 1
                    FL[p] |= F_MSIO
                    a = TS[th, C.TS_LOCK_ASID]
                    if keep_records:
                        locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                    # release the read hold; the last reader out lets a queued writer go
                    w = -1
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

                if ph == C.PH_FAULT_END:
                    # the fault completed at t; the access follows
                    pos = TS[th, C.TS_POS]
                    p = rec_page[pos]
                    if (FL[p] & F_FILE) != 0:
                        if replacement == C.REPL_LRU:
                            if LL[S, 1] != p and (FL[p] & F_RES) != 0:
                                _list_remove(LL, p)
                                _list_insert_after(LL, p, S)
                        elif replacement == C.REPL_CLOCK:
                            FL[p] |= F_REF
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
                    a = TS[th, C.TS_LOCK_ASID]
                    if keep_records:
                        locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
                    # release the read hold; the last reader out lets a queued writer go
                    w = -1
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
                    TT[th, C.TT_STATE] = C.ST_SIGBUS
                    TT[th, C.TT_END] = t
                    n_alive -= 1
                    if thr_access[th] == 1:
                        n_acc_alive -= 1
                        if n_acc_alive == 0:
                            acc_end = t
                    cnt[C.CNT_ABANDONED] += thr_off[th + 1] - TS[th, C.TS_POS]
                    TS[th, C.TS_POS] = thr_off[th + 1]
                    # pending signals die with the thread
                    m = pend_t.shape[1]
                    pend_n[th] = 0
                    break

                elif ph < 0 or ph > C.PH_DELIVER:
                    raise RuntimeError("vmlab engine: unknown thread phase")

                # ---- a record's end (after a hit or a fault) that comes before anything else
                # happens, with no signal waiting and a next record that cannot run inline (its
                # gap lets other events in): do what PH_REC_END and PH_START would do, in one go,
                # and go on to the next record's access
                if nxt >= 0 and TS[th, C.TS_PHASE] == C.PH_REC_END and pend_n[th] == 0 \
                        and TS[th, C.TS_ACCESS_DONE] == 1 and nxt <= horizon:
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
                if (not found or _key_lt(nxt, (C.EV_THREAD << 40) | th, lt, lk)) and not \
                        _low_room(keep_records, nf, faults.shape[0], nl, locks.shape[0], ns,
                                  sigs.shape[0], track_cand, n_cand, cand.shape[0], T):
                    t = nxt
                    continue
                tn[th] = nxt  # (or the tables need room: the pass ends, the thread goes on)
                break
        if not grow:
            break

    # ---- the horizon: close every unfinished thread's books
    end_time = 0
    for th in range(T):
        if TT[th, C.TT_STATE] == C.ST_RUNNING:
            TT[th, C.TT_STATE] = C.ST_UNFINISHED
            TT[th, C.TT_END] = horizon
            seg = TS[th, C.TS_SEG]
            dt = horizon - TS[th, C.TS_ACC]
            if dt < 0:
                dt = 0
            if seg == C.CAT_ATT_CPU:
                TS[th, C.TS_ATT_CPU] += dt
            elif seg == C.CAT_ATT_WAIT:
                TS[th, C.TS_ATT_WAIT] += dt
                TS[th, C.TS_F_IOWAIT] += dt
            else:
                TT[th, seg] += dt
            TT[th, C.CAT_FAULT_CPU] += TS[th, C.TS_ATT_CPU]
            TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
            if seg == C.CAT_LOCK_WAIT and TS[th, C.TS_LOCK_KIND] == C.LK_FAULT:
                TS[th, C.TS_F_LOCKWAIT] += horizon - TS[th, C.TS_REQ_T]
            cnt[C.CNT_UNFINISHED] += thr_off[th + 1] - TS[th, C.TS_POS]
            if TS[th, C.TS_IN_FAULT] == 1:
                _close_fault(th, -1, C.OUT_UNFINISHED, TS, faults, keep_records, cnt)
                if TS[th, C.TS_RETRIES] >= 1:
                    cnt[C.CNT_LIVELOCKED] += 1
        if TT[th, C.TT_END] > end_time:
            end_time = TT[th, C.TT_END]
    cnt[C.CNT_END] = end_time
    cnt[C.CNT_BIN_NS] = bin_ns
    if n_acc_alive > 0:
        acc_end = horizon
    cnt[C.CNT_LW_FIRST] = lw_first
    cnt[C.CNT_LW_LAST] = lw_last
    cnt[C.CNT_ACC_END] = acc_end
    cnt[C.CNT_RESIDENT] = n_resident
    return (faults[:nf], sigs[:ns], locks[:nl], TT, cnt, ts_bins[:, :n_bins].copy(), hist_fault,
            hist_sig)
