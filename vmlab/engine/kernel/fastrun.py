"""The fast path (docs/model.md, "fast path"; off with ``fast_path=False``): a thread runs
its own records inline, hits and lone uncontended faults, as long as nothing else can
happen before each one ends; and a record's end that comes before anything else goes
straight on to the next record's access.  Same records as the general path, step for step
(tests/test_engine_fast_path.py).

``_fast_run`` is one tight loop: the standard trace spends almost all its time in it, so
its scalar state is loaded from ``G`` into locals once and stored back once.  It is a call
of its own, not inlined into the event loop: in a function of its own LLVM keeps the loop's
values in registers, where inside the whole event loop it spilled most of them to the
stack (the standard trace about 7% faster; docs/performance.md, twenty-first session).
``_lone_fault`` is the one judge of which faults it runs, for it and for the call's
caller (``record._may_run_fast``), so that a run is called only when it takes a record."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_verb, prefetch
from .. import codes as C
from . import state as g
from .accounting import REC_MARGIN, _fit_bins, _hist_bucket
from .events import _draw, _io_slot, _key_lt, _limit
from .locks import _kernel_made
from .pagecache import (F_FILE, F_INFL, F_MSIO, F_PTE, F_RES, _choose_victim, _evict, _insert,
                        _lru_victim, _note_eviction, _touch)

# how many records ahead the inline loop prefetches page state
PF_DIST = 16
# how many records ahead it prefetches an LRU touch's list neighbours
PF_NEAR = 6


@njit_borrow
def _fast_run(K, W, G, th, t, pos):
    """Thread ``th`` at ``t`` starts record ``pos``: run its hits on mapped pages and its
    lone faults (no lock wait, no lock drop, no shared I/O, no signal) inline while each
    ends before every other pending event.  Returns ``(t, pos, ended)``: where the thread
    is now, and whether it ran out of records (else record ``pos`` starts at ``t`` as a
    PH_START would start it: nothing it depends on has changed)."""
    rec_page, rec_gap, has_gap = K.rec_page, K.rec_gap, K.has_gap
    page_vma, vma_asid = K.page_vma, K.vma_asid
    keep_records, replacement, memory_pages = K.keep_records, K.replacement, K.memory_pages
    # under workingset no file fault runs here (fastpath.py) and a file hit stops the run:
    # the touches here are plain (ws=False, compiled out of the loop)
    workingset = K.workingset
    seed, io_dist, tflat = K.seed, K.io_dist, K.tflat
    costs = K.costs
    access_ns = costs[C.COST_ACCESS]
    wakeup_ns = costs[C.COST_WAKEUP]
    FL, LL, TS, TT, cnt = W.FL, W.LL, W.TS, W.TT, W.cnt
    faults, locks, evs, ts_bins, hist_fault = W.faults, W.locks, W.evs, W.ts_bins, W.hist_fault
    S = FL.shape[0]
    n_quant = K.tables.shape[1]
    end = K.thr_off[th + 1]
    myk = (C.EV_THREAD << 40) | th
    found, lim_t, lim_k = _limit(G[g.G_HN], W.ht[0], W.hk[0], G[g.G_O_FOUND] == 1,
                                 G[g.G_O_T], G[g.G_O_K])
    if not found or K.horizon < lim_t:
        lim_t = K.horizon + 1
        lim_k = 0
    # the scalar state, in locals for the loop
    nf, nl, nev = G[g.G_NF], G[g.G_NL], G[g.G_NEV]
    io_cnt, ctx_cnt = G[g.G_IO_CNT], G[g.G_CTX_CNT]
    io_slot_cnt, io_slot = G[g.G_IO_SLOT_CNT], G[g.G_IO_SLOT]
    n_resident, hand = G[g.G_N_RESIDENT], G[g.G_HAND]
    bin_ns, n_bins = G[g.G_BIN_NS], G[g.G_N_BINS]
    bin_b, bin_lo, bin_hi = G[g.G_BIN_B], G[g.G_BIN_LO], G[g.G_BIN_HI]
    gsum = 0
    nh = 0
    n_flt = 0  # faults, major faults, I/Os and PTEs made here: counted at the end
    n_maj = 0
    n_kern = 0  # of them, faults the kernel made (docs/model.md 15.3)
    n_io = 0
    fcpu = 0
    fwait = 0
    while pos < end:
        if keep_records and (nf + REC_MARGIN > faults.shape[0] or
                             nl + REC_MARGIN > locks.shape[0]):
            break  # the tables need room: the general path goes on
        # the state of the page PF_DIST records ahead is fetched into cache while this
        # record is handled (from the run's second record on: with other threads' steps
        # close by, most runs stop at one)
        pf = pos + PF_DIST
        if nh > 0 and pf < end:
            p2 = rec_page[np.uintp(pf)]
            if p2 >= 0:
                prefetch(FL, p2)
                prefetch(LL, 2 * p2)
                prefetch(page_vma, p2)
            # two stages: the list neighbours of the page PF_NEAR records ahead (its own
            # line fetched PF_DIST - PF_NEAR records ago) are the lines an LRU touch writes
            if replacement == C.REPL_LRU:
                pn = pos + PF_NEAR
                q = rec_page[np.uintp(pn)]
                if q >= 0:
                    a = LL[np.uintp(2 * q)]
                    if a >= 0:
                        prefetch(LL, 2 * a)
                        prefetch(LL, 2 * LL[np.uintp(2 * q + 1)])
        p = rec_page[np.uintp(pos)]
        if p < 0:
            break
        gap = np.int64(rec_gap[np.uintp(pos)]) if has_gap else np.int64(0)
        if (FL[p] & F_PTE) == 0:
            # an uncontended fault that needs no lock drop, no shared I/O and no signal:
            # the same steps as the general path, in one go
            a_t = t + gap
            kind_w, d, fend = _lone_fault(K, W, p, a_t, io_slot_cnt, io_slot, io_cnt, ctx_cnt)
            if kind_w == FK_NO:
                break
            e = fend + access_ns
            if not _key_lt(e, myk, lim_t, lim_k):
                break
            # commit
            if _kernel_made(K, pos):
                n_kern += 1     # (its mmap_sem read: counted as the others, at the end)
            if kind_w == FK_IO:
                h = fend - d - wakeup_ns  # (the handler's CPU ends, the read starts)
                io_cnt += 1
                # the next I/O time draw's table entry: fetch it now
                io_slot_cnt = io_cnt
                io_slot = _io_slot(seed, io_dist, n_quant, io_cnt)
                prefetch(tflat, io_slot)
                n_io += 1
                if memory_pages >= 0 and n_resident >= memory_pages:
                    if replacement <= C.REPL_FIFO:
                        victim = _lru_victim(S, LL, FL)
                    else:
                        victim, hand = _choose_victim(replacement, hand, S, LL, FL, n_resident,
                                                      cnt, K.twolist_ratio)
                    if victim >= 0:
                        _evict(victim, replacement, S, LL, FL, cnt)
                        n_resident -= 1
                        # (room: at most one eviction a fault row)
                        nev = _note_eviction(evs, nev, keep_records, h, victim, C.BY_FAULT, th)
                _insert(p, replacement, hand, S, LL, FL)
                n_resident += 1
                b = bin_b if bin_lo <= h < bin_hi else h // bin_ns
                if b >= ts_bins.shape[1]:
                    bin_ns, b, n_bins = _fit_bins(ts_bins, h, bin_ns, n_bins)
                    bin_hi = 0  # (the cached bin is stale)
                ts_bins[C.TSB_IOS, b] += 1
                if b >= n_bins:
                    n_bins = b + 1
            elif kind_w == FK_CTX:
                ctx_cnt += 1
                FL[p] |= F_RES
            fl = FL[p] | F_PTE | F_MSIO
            FL[p] = fl
            if (fl & F_FILE) != 0:
                _touch(p, replacement, S, LL, FL, cnt, False, G, K.slot_frames)
            n_flt += 1
            if kind_w == FK_IO or kind_w == FK_CTX:
                n_maj += 1
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
            wt = d + wakeup_ns if (kind_w == FK_IO or kind_w == FK_CTX) else 0
            fwait += wt
            fcpu += fend - a_t - wt
            if keep_records:
                faults[nf, C.F_THREAD] = th
                faults[nf, C.F_PAGE] = p
                faults[nf, C.F_START] = a_t
                faults[nf, C.F_END] = fend
                faults[nf, C.F_ATTEMPTS] = 1
                major = kind_w == FK_IO or kind_w == FK_CTX
                faults[nf, C.F_MAJOR] = 1 if major else 0
                faults[nf, C.F_LOCKWAIT] = 0
                faults[nf, C.F_IOWAIT] = wt
                faults[nf, C.F_OUTCOME] = C.OUT_DONE
                faults[nf, C.F_RETRIES] = 0
                nf += 1
                locks[nl, C.L_THREAD] = th
                locks[nl, C.L_ASID] = vma_asid[page_vma[p]]
                locks[nl, C.L_MODE] = 0
                locks[nl, C.L_KIND] = C.LK_FAULT
                locks[nl, C.L_REQUEST] = a_t
                locks[nl, C.L_ACQUIRE] = a_t
                locks[nl, C.L_RELEASE] = fend
                locks[nl, C.L_DOWNGRADE] = -1
                nl += 1
            gsum += gap
            nh += 1
            t = e
            pos += 1
            continue
        e = t + gap + access_ns
        if not _key_lt(e, myk, lim_t, lim_k):
            break
        if (FL[p] & F_FILE) != 0:
            if workingset:
                break  # (its touch marks and activates under workingset: the general path)
            _touch(p, replacement, S, LL, FL, cnt, False, G, K.slot_frames)
        gsum += gap
        nh += 1
        t = e
        pos += 1
    G[g.G_NF], G[g.G_NL], G[g.G_NEV] = nf, nl, nev
    G[g.G_IO_CNT], G[g.G_CTX_CNT] = io_cnt, ctx_cnt
    G[g.G_IO_SLOT_CNT], G[g.G_IO_SLOT] = io_slot_cnt, io_slot
    G[g.G_N_RESIDENT], G[g.G_HAND] = n_resident, hand
    G[g.G_BIN_NS], G[g.G_N_BINS] = bin_ns, n_bins
    G[g.G_BIN_B], G[g.G_BIN_LO], G[g.G_BIN_HI] = bin_b, bin_lo, bin_hi
    ended = False
    if n_flt > 0:
        cnt[C.CNT_IO] += n_io
        cnt[C.CNT_PTES] += n_flt
        cnt[C.CNT_FAULTS] += n_flt
        cnt[C.CNT_MMAP_READ_KERNEL] += n_kern
        cnt[C.CNT_MAJOR] += n_maj
        cnt[C.CNT_MINOR] += n_flt - n_maj
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
            ended = True  # PH_START again: the thread ends
            TS[th, C.TS_PHASE] = C.PH_START
    return t, pos, ended


# how a lone fault runs on the fast path (``_lone_fault``): not here (the general path), no
# wait, a file read, a wait in the device's context, a page-cache hit
FK_NO, FK_NONE, FK_IO, FK_CTX, FK_PCH = -1, 0, 1, 2, 3


@njit_verb
def _lone_fault(K, W, p, a_t, io_slot_cnt, io_slot, io_cnt, ctx_cnt):
    """A fault on unmapped page ``p`` whose access comes at ``a_t``, if the fast path can
    run it (no lock wait, no lock drop, no read another fault started, the VMA's class not
    the general path's): ``(kind, wait, end)`` with ``kind`` an ``FK_*`` code, the wait for
    its read or the device (draw number ``io_cnt``, whose slot is ``io_slot`` if
    ``io_slot_cnt == io_cnt``; draw ``ctx_cnt``), and the time its handler ends.  The one
    judge of a lone fault, for ``_fast_run`` and for ``record._may_run_fast``."""
    v = np.uintp(K.page_vma[p])  # (ids are never negative: no wrap-around code)
    asid = np.uintp(K.vma_asid[v])
    if W.lk_writer[asid] != 0 or W.lk_qn[asid] != 0:
        return FK_NO, 0, 0
    cls = K.vma_fast[v]
    if cls == C.FP_GENERAL:
        return FK_NO, 0, 0  # SIGBUS or fault-around: the general path
    h = a_t + W.vf_h[v]
    FL = W.FL
    if cls == C.FP_NO_WAIT:
        return FK_NONE, 0, h
    costs = K.costs
    if cls == C.FP_FILE:
        if (FL[p] & F_INFL) != 0:
            return FK_NO, 0, 0
        if (FL[p] & F_RES) != 0:
            return FK_PCH, 0, h + costs[C.COST_PAGECACHE_HIT]
        if K.vma_drop[v]:
            return FK_NO, 0, 0
        slot = io_slot if io_slot_cnt == io_cnt else \
            _io_slot(K.seed, K.io_dist, K.tables.shape[1], io_cnt)
        d = K.tflat[slot]
        return FK_IO, d, h + d + costs[C.COST_WAKEUP]
    # the device's context
    if (FL[p] & F_RES) != 0:
        return FK_NONE, 0, h
    if K.vma_drop[v]:
        return FK_NO, 0, 0
    d = _draw(K.tables, K.wait_dist, K.seed, 2, ctx_cnt)
    return FK_CTX, d, h + d + costs[C.COST_WAKEUP]


@njit_verb
def _rec_end_inline(K, W, G, th, nxt):
    """A record's end (after a hit or a fault) at ``nxt`` that comes before anything else
    happens, with no signal waiting and a next record that cannot run inline (its gap lets
    other events in): do what PH_REC_END and PH_START would do, in one go, and go on to the
    next record's access.  Returns the thread's next step."""
    TS, TT = W.TS, W.TT
    pos = TS[th, C.TS_POS]
    if pos + 1 >= K.thr_off[th + 1]:
        return nxt
    found, lt, lk = _limit(G[g.G_HN], W.ht[0], W.hk[0], G[g.G_O_FOUND] == 1, G[g.G_O_T],
                           G[g.G_O_K])
    myk = (C.EV_THREAD << 40) | th
    if not (found and _key_lt(nxt, myk, lt, lk)):
        return nxt
    nx = pos + 1
    gap = np.int64(K.rec_gap[nx]) if K.has_gap else np.int64(0)
    if _key_lt(nxt + gap + K.costs[C.COST_ACCESS], myk, lt, lk):
        return nxt
    seg = TS[th, C.TS_SEG]
    if seg < C.TT_NCAT:
        TT[th, seg] += nxt - TS[th, C.TS_ACC]
    TT[th, C.TT_RECORDS] += 1
    W.cnt[C.CNT_ACCESSES] += 1
    TS[th, C.TS_ACCESS_DONE] = 0
    TS[th, C.TS_POS] = pos + 1
    TS[th, C.TS_AFTER] = C.PH_START
    TS[th, C.TS_ACC] = nxt
    TS[th, C.TS_SEG] = C.CAT_COMPUTE
    TS[th, C.TS_PHASE] = C.PH_ACCESS
    _prefetch_access(K, W, th, nx)
    return nxt + gap


@njit_verb
def _prefetch_access(K, W, th, pos):
    """The access of record ``pos`` comes after its gap: fetch its page's state meanwhile,
    and this thread's records 16 positions on (each thread's records are a stream of their
    own; the hardware follows few streams at once)."""
    p = K.rec_page[pos]
    if p >= 0:
        prefetch(W.FL, p)
        prefetch(W.LL, 2 * p)
        prefetch(K.page_vma, p)
        prefetch(W.PIN, p)  # (a fault pins its page)
    if pos + 16 < K.thr_off[th + 1]:
        prefetch(K.rec_page, pos + 16)
        prefetch(K.rec_gap, pos + 16)
