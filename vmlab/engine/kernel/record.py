"""A record's phases (docs/model.md sections 3 and 7): its start (eager mappings, the end of
the thread, the gap; the fast path's run), its access (a hit, a fault's first attempt, a
LOCK_W or LOCK_R record) and its end (signal delivery comes next).

Each phase is ``_ph_x(K, W, G, th, t) -> (next step time, phase to go on with)`` (state.py),
inlined into the event loop's ``_run_thread``: they run at every record."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_verb
from .. import codes as C
from . import state as g
from .accounting import _count_in_bin, _thread_ends
from .events import _key_lt, _limit
from .fastrun import FK_NO, _fast_run, _lone_fault, _prefetch_access
from .filereads import _read_call
from .granularity import _allows, _unmap_pages
from .locks import _fault_lock
from .pagecache import F_FILE, F_PTE, PT_TLB, PT_YOUNG, _batch_drain, _touch


@njit_verb
def _ph_start(K, W, G, th, t):
    """PH_START: account the interval that just ended; then an eager mapping (a remap under
    mmap_sem for write), the thread's end, or the gap before the record's access."""
    TS, TT = W.TS, W.TT
    seg = TS[th, C.TS_SEG]
    TT[th, seg] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    ei = TS[th, C.TS_EMAP]
    if ei < K.emap_off[th + 1]:
        TS[th, C.TS_EMAP] = ei + 1
        TS[th, C.TS_CUR_VMA] = K.emap_vma[ei]
        TS[th, C.TS_LOCK_KIND] = C.LK_REMAP
        TS[th, C.TS_LOCK_MODE] = 1
        TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
        return t, C.PH_LOCK_REQ
    pos = TS[th, C.TS_POS]
    ui = TS[th, C.TS_UM_NEXT]
    while ui < K.thr_um_off[th + 1] and K.um_pos[ui] <= pos:
        # a mapping ends before this record (docs/model.md 11.9); the call drains the
        # thread's LRU-add batch first (unmap_region, zap_page_range_single: 12.1)
        if W.BQ[th, 0] > 0:
            _batch_drain(th, W.BQ, W.FL.shape[0], W.LL, W.FL, W.cnt, K.workingset, G,
                         K.slot_frames)
        G[g.G_N_ANON] -= _unmap_pages(K.um_pages, K.um_dest, K.um_off[ui], K.um_off[ui + 1],
                                      K.page_slot, W.FL, W.PT, W.MAPC, W.CHG, W.cnt)
        ui += 1
    TS[th, C.TS_UM_NEXT] = ui
    ri = TS[th, C.TS_RD_NEXT]
    while ri < K.thr_rd_off[th + 1] and K.rd_pos[ri] <= pos:
        # a read() call returned before this record (docs/model.md 11.7)
        TS[th, C.TS_RD_NEXT] = ri + 1
        if not _read_call(K, W, G, th, t, ri):
            return -1, g.HALT
        ri += 1
    if pos >= K.thr_off[th + 1]:
        _thread_ends(K, W, G, th, t, C.ST_DONE)
        TS[th, C.TS_SEG] = C.CAT_COMPUTE
        return -1, g.HALT
    # fast path: a run of hits on mapped pages (and lone faults), while nothing else can
    # happen before each one ends and no signal waits for delivery
    if K.fast_path and W.pend_n[th] == 0 and not K.kernel_model and \
            _may_run_fast(K, W, G, th, t, pos):
        t, pos, ended = _fast_run(K, W, G, th, t, pos)
        if ended:
            return t, g.STEP_DONE
    gap = np.int64(K.rec_gap[pos]) if K.has_gap else np.int64(0)
    _prefetch_access(K, W, th, pos)
    TS[th, C.TS_SEG] = C.CAT_COMPUTE
    TS[th, C.TS_PHASE] = C.PH_ACCESS
    return t + gap, g.STEP_DONE


@njit_verb
def _may_run_fast(K, W, G, th, t, pos):
    """Whether the fast path's run takes record ``pos`` (else calling it costs more than it
    saves: with other threads' steps close by, most runs would stop at once): the record
    must end before every other pending event, a hit after its access, a fault as
    ``fastrun._lone_fault`` runs it (``_fast_run`` judges the same way)."""
    p = K.rec_page[pos]
    if p < 0:
        return False
    found, lim_t, lim_k = _limit(G[g.G_HN], W.ht[0], W.hk[0], G[g.G_O_FOUND] == 1,
                                 G[g.G_O_T], G[g.G_O_K])
    if not found or K.horizon < lim_t:
        return True
    gap = np.int64(K.rec_gap[pos]) if K.has_gap else np.int64(0)
    e = t + gap
    if (W.FL[p] & F_PTE) == 0:
        kind, _, e = _lone_fault(K, W, p, e, G[g.G_IO_SLOT_CNT], G[g.G_IO_SLOT], G[g.G_IO_CNT],
                                 G[g.G_CTX_CNT])
        if kind == FK_NO:
            return False
    return _key_lt(e + K.costs[C.COST_ACCESS], (C.EV_THREAD << 40) | th, lim_t, lim_k)


@njit_verb
def _ph_access(K, W, G, th, t):
    """PH_ACCESS: the access after the gap.  A LOCK_W record requests mmap_sem for write, a
    LOCK_R record for read (docs/model.md 15.9); a
    PTE that allows the access is a hit (or, re-executed mid-fault, the fault's end); else
    a fault opens (its first attempt) or goes on (a re-execution) with a request."""
    TS, TT, FL = W.TS, W.TT, W.FL
    rec_page = K.rec_page
    seg = TS[th, C.TS_SEG]
    TT[th, seg] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    pos = TS[th, C.TS_POS]
    p = rec_page[pos]
    if p < 0:
        if p >= -C.LOCKR_PAGE_BASE:
            # LOCK_W: the page slot holds -(asid + 1)
            TS[th, C.TS_ASID_LOCKW] = -p - 1
            TS[th, C.TS_LOCK_KIND] = C.LK_LOCKW
            TS[th, C.TS_LOCK_MODE] = 1
        else:
            # LOCK_R: -(asid + 1) - LOCKR_PAGE_BASE
            TS[th, C.TS_ASID_LOCKW] = -p - 1 - C.LOCKR_PAGE_BASE
            TS[th, C.TS_LOCK_KIND] = C.LK_LOCKR
            TS[th, C.TS_LOCK_MODE] = 0
        TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
        return t, C.PH_LOCK_REQ
    kernel_model = K.kernel_model
    if ((FL[p] & F_PTE) != 0 and not kernel_model) or (
            kernel_model and _allows(p, K.rec_write[pos] == 1, FL, W.PT)):
        if TS[th, C.TS_FAULT_ROW] != -1 or TS[th, C.TS_IN_FAULT] == 1:
            # re-executed after a return to user space: someone mapped it
            G[g.G_N_IN_FAULT] -= 1
            TS[th, C.TS_PHASE] = C.PH_FAULT_END
            return t, g.STEP_DONE
        # (a hit through a private copy is no reference to the file page)
        if K.young:
            # the access sets the PTE's young bit, all a page-table access does (8.2), or,
            # with the TLB (8.3), only the page walk of a translation the TLB lacks
            if not K.tlb:
                W.PT[p] |= PT_YOUNG
            elif (W.PT[p] & PT_TLB) == 0:
                W.PT[p] |= PT_YOUNG | PT_TLB
        elif (FL[p] & F_FILE) != 0 and (FL[p] & F_PTE) != 0:
            _touch(g._entry(K, G, p), K.replacement, FL.shape[0], W.LL, FL, W.cnt,
                   K.workingset, G, K.slot_frames)
        TS[th, C.TS_SEG] = C.CAT_HIT
        TS[th, C.TS_ACCESS_DONE] = 1
        TS[th, C.TS_PHASE] = C.PH_REC_END
        return t + K.costs[C.COST_ACCESS], g.STEP_DONE
    if TS[th, C.TS_IN_FAULT] == 0:
        TS[th, C.TS_IN_FAULT] = 1
        TS[th, C.TS_ATTEMPTS] = 0
        TS[th, C.TS_RETRIES] = 0
        TS[th, C.TS_COW] = 0
        TS[th, C.TS_MAJOR] = 0
        TS[th, C.TS_F_LOCKWAIT] = 0
        TS[th, C.TS_F_IOWAIT] = 0
        W.fstart[th] = t
        G[g.G_N_IN_FAULT] += 1
        if K.keep_records:
            nf = G[g.G_NF]
            faults = W.faults
            faults[nf, C.F_THREAD] = th
            faults[nf, C.F_PAGE] = p
            faults[nf, C.F_START] = t
            faults[nf, C.F_END] = -1
            faults[nf, C.F_OUTCOME] = C.OUT_UNFINISHED
            TS[th, C.TS_FAULT_ROW] = nf
            G[g.G_NF] = nf + 1
        W.cnt[C.CNT_FAULTS] += 1
        G[g.G_N_GEN_FAULTS] += 1
        _count_in_bin(W, G, C.TSB_FAULTS, t)
    TS[th, C.TS_K] = 0
    if K.designs:
        TS[th, C.TS_HOW] = _fault_lock(K, TS[th, C.TS_POS], K.vma_pol[K.page_vma[p]], False)
    TS[th, C.TS_LOCK_KIND] = C.LK_FAULT
    TS[th, C.TS_LOCK_MODE] = 0
    TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
    return t, C.PH_LOCK_REQ


@njit_verb
def _ph_rec_end(K, W, G, th, t, ph):
    """PH_REC_END (the record is done) and PH_DELIVER_REEXEC (back to user space mid-fault):
    pending signals are delivered first, then the next record starts, or the access runs
    again."""
    TS, TT = W.TS, W.TT
    seg = TS[th, C.TS_SEG]
    if seg < C.TT_NCAT:
        TT[th, seg] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    if ph == C.PH_REC_END and TS[th, C.TS_ACCESS_DONE] == 1:
        TS[th, C.TS_ACCESS_DONE] = 0
        TS[th, C.TS_POS] += 1
        TT[th, C.TT_RECORDS] += 1
        W.cnt[C.CNT_ACCESSES] += 1
    TS[th, C.TS_AFTER] = C.PH_ACCESS if ph == C.PH_DELIVER_REEXEC else C.PH_START
    TS[th, C.TS_SEG] = C.CAT_SIGNAL
    # with nothing pending, delivery is a no-op: go straight on
    TS[th, C.TS_PHASE] = C.PH_DELIVER if W.pend_n[th] > 0 else TS[th, C.TS_AFTER]
    return t, g.STEP_DONE
