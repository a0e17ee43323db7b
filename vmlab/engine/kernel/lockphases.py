"""The lock phases (docs/model.md sections 4 and 15): a request (a fault's attempt takes a
VMA read lock, a speculative sequence count or mmap_sem for read; a writer mmap_sem for
write; a LOCK_R record for read, docs/model.md 15.9), the grant (the handler, a critical
section, a remap or a read hold begins) and the release of a record's hold.  The verbs
they use are in locks.py."""
from __future__ import annotations

from ..._numba import njit_borrow, njit_phase, njit_verb
from .. import codes as C
from . import state as g
from .fault import _take_unreclaimable
from .granularity import _kernel_case
from .locks import (RWSEM_WAIT_TIMEOUT_NS, _anon_vma_fallback, _attempt_row,
                    _free_for_writer, _kernel_made, _mmap_read_release, _needs_anon_vma,
                    _note_mmap_grant, _resumes, _vma_try_read, _woken_at, _write_lock_vmas,
                    _write_unlock_vmas)
from .pagecache import F_PTE


@njit_phase
def _ph_lock_req(K, W, G, th, t):
    """PH_LOCK_REQ: what the request takes.  First a CPU segment paid before it (the VMA
    lookup, a speculative abort's re-read; docs/model.md 15.1), then the VMA lock or the
    speculative attempt of the lock designs (each may fall back to mmap_sem), then
    mmap_sem: granted at once, or queued."""
    TS, cnt = W.TS, W.cnt
    designs, keep_records = K.designs, K.keep_records
    lookup_ns = K.costs[C.COST_VMA_LOOKUP]
    vline_ns = K.costs[C.COST_VMA_LINE]
    if TS[th, C.TS_PAID] != 0:
        # a CPU segment of docs/model.md 15.1 ended: it is the attempt's CPU
        paid = TS[th, C.TS_PAID]
        TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
        TS[th, C.TS_ACC] = t
        if paid == 2:
            # a speculative attempt aborted at h: it ends now, the re-read's line cost paid
            # (docs/model.md 15.6); its CPU is wasted
            if keep_records:
                W.vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
            W.TT[th, C.CAT_WASTED] += TS[th, C.TS_ATT_CPU]
            W.TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
            TS[th, C.TS_ATT_CPU] = 0
            TS[th, C.TS_ATT_WAIT] = 0
        if paid != 1:
            TS[th, C.TS_PAID] = 0
    lkind = TS[th, C.TS_LOCK_KIND]
    if designs and lkind == C.LK_FAULT and lookup_ns > 0 and \
            (TS[th, C.TS_HOW] == C.FLK_VMA or TS[th, C.TS_HOW] == C.FLK_SPEC):
        # the RCU walk of the VMA tree comes first (docs/model.md 15.1)
        if TS[th, C.TS_PAID] == 1:
            TS[th, C.TS_PAID] = 0
        else:
            TS[th, C.TS_PAID] = 1
            TS[th, C.TS_SEG] = C.CAT_ATT_CPU
            return t + lookup_ns, g.STEP_DONE  # (on the CPU: nothing more this step)
    if designs and lkind == C.LK_FAULT and TS[th, C.TS_HOW] == C.FLK_VMA:
        # docs/model.md 15.3: the VMA's read lock, found under RCU; a VMA that is
        # write-locked or of a backing not handled so falls back to mmap_sem with the same
        # in-kernel index
        pos = TS[th, C.TS_POS]
        v = K.page_vma[K.rec_page[pos]]
        no_anon_vma = _needs_anon_vma(K, W, pos, v)
        took, G[g.G_NVL] = _vma_try_read(th, t, t - lookup_ns, v, K.vma_pol[v],
                                         K.vma_backing[v], K.pol, W.vl_readers, W.vl_wlocked,
                                         W.vl_ops, W.vlocks, G[g.G_NVL], keep_records, TS,
                                         no_anon_vma)
        if took:
            cnt[C.CNT_VMA_READ] += 1
            TS[th, C.TS_LINE_N] = W.vl_readers[v] - 1
            _attempt_holds(K, W, th, t, v)
            return -1, C.PH_GRANTED
        cnt[C.CNT_VMA_FALLBACK] += 1
        cnt[C.CNT_ANON_VMA_FALLBACK] += _anon_vma_fallback(K, pos, v, no_anon_vma)
        TS[th, C.TS_HOW] = C.FLK_MMAP
    elif designs and lkind == C.LK_FAULT and TS[th, C.TS_HOW] == C.FLK_SPEC:
        # docs/model.md 15.4: no lock; the sequence count of its scope, read now, must be
        # even (no writer inside) and unchanged at the install
        pos = TS[th, C.TS_POS]
        v = K.page_vma[K.rec_page[pos]]
        pr = K.vma_pol[v]
        seq = W.mm_seq[K.vma_asid[v]] if K.pol[pr, C.K_SPF_SCOPE] == 1 else W.vl_seq[v]
        no_anon_vma = _needs_anon_vma(K, W, pos, v)
        if ((K.pol[pr, C.K_VMA_BACKINGS] >> K.vma_backing[v]) & 1) == 0 or (
                K.pol[pr, C.K_ANON_VMA] == 1 and no_anon_vma):
            cnt[C.CNT_VMA_FALLBACK] += 1       # (same in-kernel index)
            cnt[C.CNT_ANON_VMA_FALLBACK] += _anon_vma_fallback(K, pos, v, no_anon_vma)
            TS[th, C.TS_HOW] = C.FLK_MMAP
            if keep_records:
                G[g.G_NVL] = _attempt_row(W.vlocks, G[g.G_NVL], th, v, C.VLK_SEQ,
                                          t - lookup_ns, -1, C.VO_FALLBACK)
        elif (seq & 1) == 1:
            if keep_records:
                G[g.G_NVL] = _attempt_row(W.vlocks, G[g.G_NVL], th, v, C.VLK_SEQ,
                                          t - lookup_ns, -1, C.VO_ABORT)
            cnt[C.CNT_SPF_ABORT] += 1
            cnt[C.CNT_VMA_FALLBACK] += 1
            TS[th, C.TS_HOW] = C.FLK_MMAP
            TS[th, C.TS_K] = 0
            if vline_ns > 0:
                # reading a count a writer holds costs its line (15.1)
                TS[th, C.TS_PAID] = 3
                TS[th, C.TS_SEG] = C.CAT_ATT_CPU
                return t + vline_ns, g.STEP_DONE  # (on the CPU: nothing more this step)
        else:
            TS[th, C.TS_SEQ0] = seq
            if keep_records:
                G[g.G_NVL] = _attempt_row(W.vlocks, G[g.G_NVL], th, v, C.VLK_SEQ,
                                          t - lookup_ns, t, C.VO_HELD)
                TS[th, C.TS_VL_ROW] = G[g.G_NVL] - 1
            TS[th, C.TS_LINE_N] = 0
            _attempt_holds(K, W, th, t, v)
            return -1, C.PH_GRANTED
    # mmap_sem
    mode = TS[th, C.TS_LOCK_MODE]
    if lkind == C.LK_FAULT:
        cnt[C.CNT_MMAP_READ] += 1
        if _kernel_made(K, TS[th, C.TS_POS]):
            cnt[C.CNT_MMAP_READ_KERNEL] += 1
        a = K.vma_asid[K.page_vma[K.rec_page[TS[th, C.TS_POS]]]]
        TS[th, C.TS_ATTEMPTS] += 1
        TS[th, C.TS_WAIT_KIND] = 0
        TS[th, C.TS_WAIT_DROP] = 0
    elif lkind == C.LK_REMAP:
        a = K.vma_asid[TS[th, C.TS_CUR_VMA]]
    else:
        a = TS[th, C.TS_ASID_LOCKW]
        if lkind == C.LK_LOCKR:
            cnt[C.CNT_MMAP_READ_OTHER] += 1
    TS[th, C.TS_LOCK_ASID] = a
    TS[th, C.TS_REQ_T] = t
    if lkind == C.LK_LOCKW and G[g.G_LW_FIRST] < 0:
        G[g.G_LW_FIRST] = t
    if keep_records:
        nl = G[g.G_NL]
        locks = W.locks
        locks[nl, C.L_THREAD] = th
        locks[nl, C.L_ASID] = a
        locks[nl, C.L_MODE] = mode
        locks[nl, C.L_KIND] = lkind
        locks[nl, C.L_REQUEST] = t
        locks[nl, C.L_ACQUIRE] = -1
        locks[nl, C.L_RELEASE] = -1
        locks[nl, C.L_DOWNGRADE] = -1
        TS[th, C.TS_LOCK_ROW] = nl
        G[g.G_NL] = nl + 1
    lk_readers, lk_writer, lk_qn = W.lk_readers, W.lk_writer, W.lk_qn
    if mode == 0:
        ok = lk_writer[a] == 0 and lk_qn[a] == 0
    else:
        ok = lk_writer[a] == 0 and lk_readers[a] == 0 and lk_qn[a] == 0
    if not ok and K.rwsem_steal and lk_writer[a] == 0 and lk_readers[a] == 0 and \
            W.lk_handoff[a] == 0:
        ok = True   # docs/model.md section 4: the free lock is taken past the queue
    TS[th, C.TS_SEG] = C.CAT_LOCK_WAIT
    TS[th, C.TS_PHASE] = C.PH_GRANTED
    if ok:
        if mode == 0:
            lk_readers[a] += 1
            TS[th, C.TS_LINE_N] = lk_readers[a] - 1
        else:
            lk_writer[a] = 1
        return t, C.PH_GRANTED
    lk_q = W.lk_q
    lk_q[a, (W.lk_qh[a] + lk_qn[a]) % lk_q.shape[1]] = th * 2 + mode
    lk_qn[a] += 1
    return -1, g.HALT  # blocked until a release grants it


@njit_verb
def _release_reader(K, W, G, th, t):
    """The end of a LOCK_R record's hold at ``t`` (docs/model.md 15.9): the release's line
    cost first (the other readers as it begins), then the read hold is let go; the last
    reader out lets a queued writer go."""
    TS = W.TS
    a = TS[th, C.TS_LOCK_ASID]
    if TS[th, C.TS_REL_PAID] == 0 and G[g.G_LINE_ON] == 1:
        cost = (K.costs[C.COST_MMAP_LINE] * K.costs[C.COST_MMAP_REL_LINES]
                * (W.lk_readers[a] - 1))
        if cost > 0:
            TS[th, C.TS_REL_PAID] = 1
            return t + cost, g.STEP_DONE  # (on the CPU: the phase runs again after it)
    TS[th, C.TS_REL_PAID] = 0
    w = _mmap_read_release(K, W, G, th, t)
    if w >= 0:
        _resumes(G, W.tn[w], w)
    TS[th, C.TS_LR_NEXT] += 1
    W.TT[th, C.TT_RECORDS] += 1
    TS[th, C.TS_POS] += 1
    TS[th, C.TS_PHASE] = C.PH_REC_END
    return t, g.STEP_DONE


@njit_verb
def _attempt_holds(K, W, th, t, v):
    """A fault's attempt holds VMA ``v``'s read lock or runs speculatively from ``t``: one
    more attempt, granted at once."""
    TS = W.TS
    TS[th, C.TS_ATTEMPTS] += 1
    TS[th, C.TS_WAIT_KIND] = 0
    TS[th, C.TS_WAIT_DROP] = 0
    TS[th, C.TS_LOCK_ASID] = K.vma_asid[v]
    TS[th, C.TS_REQ_T] = t
    TS[th, C.TS_SEG] = C.CAT_LOCK_WAIT
    TS[th, C.TS_PHASE] = C.PH_GRANTED


@njit_phase
def _ph_granted(K, W, G, th, t):
    """PH_GRANTED: the lock is held.  A writer of the lock designs write-locks its VMAs
    first (and waits for their readers); then a fault's handler CPU, a LOCK_W critical
    section or a remap."""
    TS, TT, cnt = W.TS, W.TT, W.cnt
    designs = K.designs
    costs = K.costs
    seg = TS[th, C.TS_SEG]
    TT[th, seg] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    lkind = TS[th, C.TS_LOCK_KIND]
    if not (designs and (
            TS[th, C.TS_W_LOCKED] == 1 or
            (lkind == C.LK_FAULT and TS[th, C.TS_HOW] != C.FLK_MMAP))):
        # mmap_sem granted now (docs/model.md 15.6: its waits by mode)
        _note_mmap_grant(K, W, th, t, lkind)
    elif lkind != C.LK_FAULT:
        # a writer whose VMAs' readers have left (15.2)
        cnt[C.CNT_VWWAIT] += t - TS[th, C.TS_W_GRANT]
    if designs and lkind != C.LK_FAULT and lkind != C.LK_LOCKR and TS[th, C.TS_W_LOCKED] == 0:
        # docs/model.md 15.2: the writer write-locks the VMAs it modifies and waits for the
        # readers already inside (vma_start_write)
        if lkind == C.LK_REMAP:
            TS[th, C.TS_W_V0] = TS[th, C.TS_CUR_VMA]
            TS[th, C.TS_W_V1] = TS[th, C.TS_CUR_VMA] + 1
        else:
            TS[th, C.TS_W_V0] = K.lw_v0[TS[th, C.TS_LW_NEXT]]
            TS[th, C.TS_W_V1] = K.lw_v1[TS[th, C.TS_LW_NEXT]]
        TS[th, C.TS_W_LOCKED] = 1
        a = TS[th, C.TS_LOCK_ASID]
        # a LOCK_W record's call says where it changes its VMAs (docs/model.md 15.12)
        late = lkind == C.LK_LOCKW and K.lw_late[TS[th, C.TS_LW_NEXT]] == 1
        if _write_lock_vmas(a, TS[th, C.TS_W_V0], TS[th, C.TS_W_V1], W.vl_readers,
                            W.vl_wlocked, W.vl_seq, W.vl_ops, W.mm_seq, K.pol, K.vma_pol,
                            late):
            W.drain_th[a] = th
            TS[th, C.TS_SEG] = C.CAT_LOCK_WAIT
            return -1, g.HALT  # the last reader out resumes it (locks._vma_read_release)
    if lkind == C.LK_FAULT:
        TS[th, C.TS_F_LOCKWAIT] += t - TS[th, C.TS_REQ_T]
        pos = TS[th, C.TS_POS]
        TS[th, C.TS_SEG] = C.CAT_ATT_CPU
        TS[th, C.TS_PHASE] = C.PH_LOOKUP
        v = K.page_vma[K.rec_page[pos]]
        hcpu = W.vf_h[v]  # fault_ns + handler extra
        TS[th, C.TS_CASE] = C.CASE_NONE
        TS[th, C.TS_AROUND_DONE] = 0
        if K.kernel_model and K.pol[K.vma_pol[v], C.K_EAGER] == 0 and (
                K.vma_backing[v] == C.B_ANON or K.vma_backing[v] == C.B_FILE):
            extra, case = _kernel_case(K.rec_page[pos], K.rec_write[pos] == 1,
                                       K.vma_backing[v], K.vma_private[v] == 1, W.FL, W.PT,
                                       costs[C.COST_STRUCT_PAGE], costs[C.COST_ZERO_FILL],
                                       costs[C.COST_COPY_PAGE])
            TS[th, C.TS_CASE] = case
            if case == C.CASE_COW or case == C.CASE_SHARED:
                TS[th, C.TS_AROUND_DONE] = 1  # write faults: no fault-around
            hcpu = costs[C.COST_FAULT] + extra
        if G[g.G_LINE_ON] == 1:
            # the lock word's lines at the grant, and the work on machine-wide state the
            # other threads inside a fault share (docs/model.md 15.1)
            how = TS[th, C.TS_HOW] if designs else C.FLK_MMAP
            hcpu += TS[th, C.TS_LINE_N] * (
                costs[C.COST_MMAP_LINE] * costs[C.COST_MMAP_ACQ_LINES] if how == C.FLK_MMAP
                else costs[C.COST_VMA_LINE] * costs[C.COST_VMA_ACQ_LINES] if how == C.FLK_VMA
                else 0) + costs[C.COST_FAULT_SHARED] * (G[g.G_N_IN_FAULT] - 1)
        return t + hcpu, g.STEP_DONE
    TS[th, C.TS_SEG] = C.CAT_LOCK_HOLD
    TS[th, C.TS_PHASE] = C.PH_RELEASE_W
    if lkind == C.LK_LOCKW:
        # its call's hold (mmap_cs_ns for a call the trace does not name, 15.12)
        return t + K.lw_hold[TS[th, C.TS_LW_NEXT]], g.STEP_DONE
    if lkind == C.LK_LOCKR:
        # docs/model.md 15.9: the record's hold, after the word's line at the grant
        hold = K.lr_hold[TS[th, C.TS_LR_NEXT]]
        if G[g.G_LINE_ON] == 1:
            hold += TS[th, C.TS_LINE_N] * costs[C.COST_MMAP_LINE] * costs[C.COST_MMAP_ACQ_LINES]
        return t + hold, g.STEP_DONE
    v = TS[th, C.TS_CUR_VMA]
    return t + costs[C.COST_REMAP_FIXED] + K.vma_npages[v] * costs[C.COST_PTE], g.STEP_DONE


@njit_verb
def _writer_done(G, cnt, TT, TS, th, t):
    """A writer's record done at ``t`` (its release, or an munmap's after its downgrade):
    counted, the writers' window noted (``writer_ops_per_s``), the thread's position past it."""
    cnt[C.CNT_LOCK_W] += 1
    G[g.G_LW_LAST] = t
    if G[g.G_ACC_END] < 0 or t <= G[g.G_ACC_END]:
        cnt[C.CNT_LW_WINDOW] += 1
    TT[th, C.TT_RECORDS] += 1
    TS[th, C.TS_POS] += 1


@njit_borrow
def _ph_release_w(K, W, G, th, t):
    """PH_RELEASE_W: the end of a record's hold (a LOCK_W record, an eager remap, a LOCK_R
    record): its effect, then the release; queued threads are granted in order (readers
    together, a writer alone), each resuming after its wake-up."""
    TS, TT, cnt, FL = W.TS, W.TT, W.cnt, W.FL
    seg = TS[th, C.TS_SEG]
    TT[th, seg] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    lkind = TS[th, C.TS_LOCK_KIND]
    if lkind == C.LK_LOCKR:
        return _release_reader(K, W, G, th, t)
    if lkind == C.LK_LOCKW and K.lw_read[TS[th, C.TS_LW_NEXT]] > 0:
        # docs/model.md 15.13: an munmap downgrades to read for the rest of its hold
        if TS[th, C.TS_DOWNGRADED] == 0:
            return _downgrade(K, W, G, th, t)
        TS[th, C.TS_DOWNGRADED] = 0
        _writer_done(G, cnt, TT, TS, th, t)
        TS[th, C.TS_LW_NEXT] += 1
        w = _mmap_read_release(K, W, G, th, t)
        if w >= 0:
            _resumes(G, W.tn[w], w)
        TS[th, C.TS_PHASE] = C.PH_REC_END
        return t, g.STEP_DONE
    if lkind == C.LK_REMAP:
        v = TS[th, C.TS_CUR_VMA]
        if K.charge_anon:
            # the page tables of the VMA's whole span take their frames first (section 12)
            need = 0
            for i in range(K.pt_voff[v], K.pt_voff[v + 1]):
                if W.PTF[K.pt_vids[i]] == 0:
                    W.PTF[K.pt_vids[i]] = 1
                    need += 1
            if need > 0 and not _take_unreclaimable(K, W, G, th, t, need):
                return -1, g.HALT
        newly = K.vma_npages[v] - (K.vma_p1[v] - K.vma_p0[v])
        for j in range(K.vma_p0[v], K.vma_p1[v]):
            q = K.by_key[j]
            if (FL[q] & F_PTE) == 0:
                FL[q] |= F_PTE
                newly += 1
        cnt[C.CNT_PTES] += newly
    else:
        _writer_done(G, cnt, TT, TS, th, t)
    # release the write lock and grant waiters
    _end_write(K, W, th)
    if lkind == C.LK_LOCKW:
        TS[th, C.TS_LW_NEXT] += 1
    if K.keep_records:
        W.locks[TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
    _grant_waiters(K, W, G, TS[th, C.TS_LOCK_ASID], t)
    TS[th, C.TS_PHASE] = C.PH_REC_END
    return t, g.STEP_DONE


@njit_verb
def _end_write(K, W, th):
    """Thread ``th`` stops holding its address space's mmap_sem for write (a release or a
    downgrade): its VMAs unlock (``vma_end_write_all``) and the sequence counts move
    (docs/model.md 15.2, 15.4), and the lock has no writer."""
    TS = W.TS
    a = TS[th, C.TS_LOCK_ASID]
    if K.designs and TS[th, C.TS_W_LOCKED] == 1:
        late = TS[th, C.TS_LOCK_KIND] == C.LK_LOCKW and K.lw_late[TS[th, C.TS_LW_NEXT]] == 1
        _write_unlock_vmas(a, TS[th, C.TS_W_V0], TS[th, C.TS_W_V1], W.vl_wlocked,
                           W.vl_seq, W.vl_ops, W.mm_seq, K.pol, K.vma_pol, late)
        TS[th, C.TS_W_LOCKED] = 0
    W.lk_writer[a] = 0


@njit_borrow
def _downgrade(K, W, G, th, t):
    """A writer's call downgrades mmap_sem to read at ``t`` (``mmap_write_downgrade()``,
    docs/model.md 15.13): it ends its write hold as a release would (its VMAs unlock, the
    counts move) but keeps the lock for read; the readers at the head of the queue are
    granted with it, a writer keeps waiting.  It holds for read the rest of its hold."""
    TS = W.TS
    _end_write(K, W, th)
    a = TS[th, C.TS_LOCK_ASID]
    W.lk_readers[a] += 1
    TS[th, C.TS_DOWNGRADED] = 1
    if K.keep_records:
        W.locks[TS[th, C.TS_LOCK_ROW], C.L_DOWNGRADE] = t
    _grant_waiters(K, W, G, a, t)
    return t + K.lw_read[TS[th, C.TS_LW_NEXT]], g.STEP_DONE  # (phase PH_RELEASE_W again)


@njit_phase
def _ph_wtry(K, W, G, th, t):
    """PH_WTRY (``rwsem_steal``, docs/model.md section 4): a writer woken first in mmap_sem's
    queue runs: it takes the lock if it is free (``PH_GRANTED`` next, at once), else it waits
    at the head again, asking for the hand-off once it has waited RWSEM_WAIT_TIMEOUT."""
    a = W.TS[th, C.TS_LOCK_ASID]
    W.lk_woken[a] = 0
    W.TS[th, C.TS_PHASE] = C.PH_GRANTED
    if W.lk_writer[a] == 0 and W.lk_readers[a] == 0:
        W.lk_qh[a] = (W.lk_qh[a] + 1) % W.lk_q.shape[1]   # (it is the queue's head)
        W.lk_qn[a] -= 1
        W.lk_writer[a] = 1
        W.lk_handoff[a] = 0
        return t, C.PH_GRANTED
    if t - W.TS[th, C.TS_REQ_T] >= RWSEM_WAIT_TIMEOUT_NS:
        W.lk_handoff[a] = 1
    return -1, g.HALT


#: The most readers one release wakes (the kernel's MAX_READERS_WAKEUP).
MAX_READERS_WAKEUP = 256


@njit_verb
def _grant_all_readers(K, W, G, a, t):
    """Linux 5.3 and later (``rwsem_wake_all_readers``, docs/model.md section 4): the queue's
    head is a reader and no writer holds the lock: every reader in the queue, up to
    :data:`MAX_READERS_WAKEUP`, is granted at ``t`` in queue order, past the writers, which
    keep their order; each resumes after its wake-up."""
    TS = W.TS
    lk_readers, lk_q, lk_qh, lk_qn = W.lk_readers, W.lk_q, W.lk_qh, W.lk_qn
    m = lk_q.shape[1]
    h0 = lk_qh[a]
    n = lk_qn[a]
    n_grant = 0
    for i in range(n):
        if (lk_q[a, (h0 + i) % m] & 1) == 0 and n_grant < MAX_READERS_WAKEUP:
            n_grant += 1
    lk_readers[a] += n_grant
    kept = 0
    granted = 0
    for i in range(n):
        w = lk_q[a, (h0 + i) % m]
        if (w & 1) == 0 and granted < n_grant:
            granted += 1
            wth = w >> 1
            if G[g.G_LINE_ON] == 1:
                # readers granted together hold the word together (docs/model.md 15.1)
                TS[wth, C.TS_LINE_N] = lk_readers[a] - 1
            W.tn[wth] = _woken_at(K, G, t)
            _resumes(G, W.tn[wth], wth)
        else:
            lk_q[a, (h0 + kept) % m] = w
            kept += 1
    lk_qn[a] = kept


@njit_verb
def _grant_waiters(K, W, G, a, t):
    """Address space ``a``'s mmap_sem has no writer now (at ``t``): the queue's head is
    granted in order, the consecutive readers at its head together (every queued reader under
    ``rwsem_wake_all_readers``: :func:`_grant_all_readers`), a writer alone once no one holds
    the lock (docs/model.md section 4); each holds it from ``t`` and resumes after its
    wake-up (:func:`locks._woken_at`, docs/model.md 15.14)."""
    TS = W.TS
    lk_readers, lk_writer, lk_q, lk_qh, lk_qn = W.lk_readers, W.lk_writer, W.lk_q, W.lk_qh, \
        W.lk_qn
    m = lk_q.shape[1]
    h0 = lk_qh[a]
    if K.wake_all_readers and lk_writer[a] == 0 and lk_qn[a] > 0 and (lk_q[a, h0] & 1) == 0:
        _grant_all_readers(K, W, G, a, t)
        return
    if K.rwsem_steal and lk_qn[a] > 0 and (lk_q[a, h0] & 1) == 1:
        # a writer first: woken to try, or handed the lock (docs/model.md section 4)
        if lk_readers[a] == 0 and lk_writer[a] == 0:
            w = _free_for_writer(K, W, G, a, t)
            if w >= 0:
                _resumes(G, W.tn[w], w)
        return
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
        W.tn[wth] = _woken_at(K, G, t)
        _resumes(G, W.tn[wth], wth)
        if wmode == 1:
            break
    if G[g.G_LINE_ON] == 1:
        # readers granted together hold the word together (docs/model.md 15.1)
        j = h0
        while j != lk_qh[a]:
            if (lk_q[a, j] & 1) == 0:
                TS[lk_q[a, j] >> 1, C.TS_LINE_N] = lk_readers[a] - 1
            j = (j + 1) % m
