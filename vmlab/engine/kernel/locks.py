"""Locks: ``mmap_sem`` per address space (a reader count, a writer flag and a FIFO queue of
waiters, docs/model.md section 4), and the per-VMA read/write locks and sequence counts of
the lock designs after 2010 (section 15)."""
from __future__ import annotations

from ..._numba import njit_borrow, njit_phase, njit_verb
from .. import codes as C
from . import state as g
from .accounting import _hist_bucket
from .events import _draw, _with_step

#: The random stream of the woken lock waiters' delays (docs/model.md sections 1 and 15.14).
STREAM_WAKE = 4
#: A writer first in mmap_sem's queue that has waited this long asks for the hand-off
#: (``rwsem_steal``, docs/model.md section 4: the kernel's RWSEM_WAIT_TIMEOUT, 4 ms).
RWSEM_WAIT_TIMEOUT_NS = 4_000_000


@njit_borrow
def _wake_writer(a, lk_writer, lk_q, lk_qh, lk_qn):
    """The last reader of address space ``a``'s mmap_sem left: a writer at the head of its
    queue takes the lock.  Returns that writer's thread, or -1."""
    w = lk_q[a, lk_qh[a]]
    if (w & 1) == 1 and lk_writer[a] == 0:
        lk_writer[a] = 1
        lk_qh[a] = (lk_qh[a] + 1) % lk_q.shape[1]
        lk_qn[a] -= 1
        return w >> 1
    return -1


@njit_verb
def _woken_at(K, G, t):
    """When a thread granted at ``t`` a lock it waited for runs (docs/model.md 15.14): ``t``
    plus the next draw of ``lock_wakeup_ns`` (none is drawn when it is always 0)."""
    if not K.wake_on:
        return t
    d = _draw(K.tables, K.wake_dist, K.seed, STREAM_WAKE, G[g.G_WAKE_CNT])
    G[g.G_WAKE_CNT] += 1
    return t + d



# ---- the VMA read/write lock and the sequence counts (docs/model.md section 15) -----------
# A VMA's lock: a reader count (vl_readers), a write-locked flag (vl_wlocked) and a sequence
# count (vl_seq; mm_seq per address space), odd while a writer is inside.  Readers never
# queue on it (a VMA lock that cannot be taken is a fallback to mmap_sem); a writer that
# write-locked VMAs with readers inside waits for them (drain_th: at most one a space, since
# it holds mmap_sem for write meanwhile).

@njit_verb
def _kernel_made(K, pos):
    """Record ``pos`` is an access the kernel made in a system call (no ``FAULT_FLAG_USER``)."""
    return len(K.rec_kernel) > 0 and K.rec_kernel[pos] == 1


@njit_verb
def _fault_lock(K, pos, pr, retry):
    """What the attempt of record ``pos``'s fault takes under policy row ``pr`` (a ``FLK_*``;
    ``retry``: an attempt after a retry): the policy's ``fault_lock``, its ``retry_lock`` for
    a retry of a VMA-locked fault, and ``mmap_sem`` for every attempt of a fault the kernel
    made under a VMA lock (docs/model.md 15.3: the arch code sends a fault without
    ``FAULT_FLAG_USER`` to ``lock_mmap`` before ``lock_vma_under_rcu()``; a speculative attempt
    is tried for it as for any, as Dufour's and Lespinasse's x86 code did)."""
    fl = K.pol[pr, C.K_FAULT_LOCK]
    if fl != C.FLK_VMA:
        return fl if not retry else C.FLK_MMAP
    if _kernel_made(K, pos):
        return C.FLK_MMAP
    return K.pol[pr, C.K_RETRY_LOCK] if retry else C.FLK_VMA


@njit_verb
def _needs_anon_vma(K, W, pos, v):
    """docs/model.md 15.8: the fault of record ``pos`` on VMA ``v`` needs the VMA's anon_vma
    and the VMA has none: a private anonymous VMA (page model: any fault there, which makes a
    page of its own; kernel model: a write) or, in the kernel model, a write to a private
    file VMA (its copy)."""
    if W.anon_vma[v] != 0 or not K.vma_private[v]:
        return False
    bk = K.vma_backing[v]
    if not K.kernel_model:
        return bk == C.B_ANON
    return K.rec_write[pos] == 1 and (bk == C.B_ANON or bk == C.B_FILE)


@njit_verb
def _anon_vma_fallback(K, pos, v, no_anon_vma):
    """1 if the fallback of record ``pos``'s fault on VMA ``v`` is the user's fault's for the
    anon_vma it lacks (``no_anon_vma``, docs/model.md 15.8; counted in
    ``n_anon_vma_fallbacks``, the kernel's ``vmf_anon_prepare()`` trylock since 6.5): its
    backing is handled under the design's lock and ``anon_vma_fallback`` is on; else 0."""
    pr = K.vma_pol[v]
    return 1 if (no_anon_vma and K.pol[pr, C.K_ANON_VMA] == 1 and not _kernel_made(K, pos)
                 and ((K.pol[pr, C.K_VMA_BACKINGS] >> K.vma_backing[v]) & 1) == 1) else 0


@njit_borrow
def _vma_try_read(th, t, t_req, v, pr, bk, pol, vl_readers, vl_wlocked, vl_ops, vlocks, nvl,
                  keep_records, TS, no_anon_vma):
    """A fault's attempt, begun at ``t_req``, asks for VMA ``v``'s read lock at ``t`` (its
    policy row ``pr``, the VMA's backing ``bk``): taken unless the backing is not handled
    under a VMA lock, a writer has it write-locked, or the fault needs an anon_vma the VMA
    lacks under ``anon_vma_fallback`` (``no_anon_vma``): a fallback.  Records the attempt;
    returns (taken, the records' new length)."""
    took = ((pol[pr, C.K_VMA_BACKINGS] >> bk) & 1) == 1 and vl_wlocked[v] == 0 and not (
        no_anon_vma and pol[pr, C.K_ANON_VMA] == 1)
    if took:
        vl_readers[v] += 1
        vl_ops[v] += 1
        TS[th, C.TS_VL_OPS0] = vl_ops[v]   # (a re-read compares, docs/model.md 15.1)
    TS[th, C.TS_VL_ROW] = -1
    if keep_records:
        nvl = _attempt_row(vlocks, nvl, th, v, C.VLK_VMA, t_req, t if took else -1,
                           C.VO_HELD if took else C.VO_FALLBACK)
        TS[th, C.TS_VL_ROW] = nvl - 1
    return took, nvl


@njit_borrow
def _attempt_row(vlocks, nvl, th, v, lock, t_req, t_acq, outcome):
    """Append a record of a VMA lock or speculative attempt; returns the new length."""
    vlocks[nvl, C.VL_THREAD] = th
    vlocks[nvl, C.VL_VMA] = v
    vlocks[nvl, C.VL_LOCK] = lock
    vlocks[nvl, C.VL_REQUEST] = t_req
    vlocks[nvl, C.VL_ACQUIRE] = t_acq
    vlocks[nvl, C.VL_RELEASE] = -1
    vlocks[nvl, C.VL_OUTCOME] = outcome
    return nvl + 1


@njit_borrow
def _vma_read_release(th, t, v, a, vl_readers, vl_wlocked, vl_ops, drain_th, vlocks,
                      keep_records, TS):
    """Thread ``th`` releases VMA ``v``'s read lock at ``t``.  A writer of address space ``a``
    waiting for the readers of its VMAs goes on once the last of them has left: returns
    that writer, or -1."""
    vl_readers[v] -= 1
    vl_ops[v] += 1
    if keep_records:
        vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
    w = drain_th[a]
    if w < 0 or vl_readers[v] != 0 or vl_wlocked[v] == 0:
        return -1
    for u in range(TS[w, C.TS_W_V0], TS[w, C.TS_W_V1]):
        if vl_readers[u] != 0:
            return -1
    drain_th[a] = -1
    return w


@njit_borrow
def _write_lock_vmas(a, v0, v1, vl_readers, vl_wlocked, vl_seq, vl_ops, mm_seq, pol, vma_pol,
                     late):
    """A writer granted mmap_sem for write on address space ``a`` write-locks VMAs
    ``[v0, v1)`` (``vma_start_write``) and makes the sequence counts odd; a VMA whose policy
    has ``spf_count="change"`` (``pol``'s K_SPF_COUNT) has its count changed once and never
    odd (docs/model.md 15.4): here, unless the writer's call changes its VMAs at its release
    (``late``: an mmap, a growing brk, 15.12).  Returns True if readers are inside (the
    writer waits for them)."""
    mm_seq[a] += 1
    busy = False
    for v in range(v0, v1):
        vl_wlocked[v] = 1
        vl_ops[v] += 1
        if pol[vma_pol[v], C.K_SPF_COUNT] == 0:
            vl_seq[v] += 1
        elif not late:
            vl_seq[v] += 2
        if vl_readers[v] != 0:
            busy = True
    return busy


@njit_borrow
def _write_unlock_vmas(a, v0, v1, vl_wlocked, vl_seq, vl_ops, mm_seq, pol, vma_pol, late):
    """The writer releases mmap_sem: its VMAs unlock at once (``vma_end_write_all``), the
    sequence counts are even again (a ``spf_count="change"`` VMA's already is: it changes
    here, by 2, when the writer's change comes at its release, ``late``, 15.12)."""
    mm_seq[a] += 1
    for v in range(v0, v1):
        vl_wlocked[v] = 0
        vl_ops[v] += 1
        if pol[vma_pol[v], C.K_SPF_COUNT] == 0:
            vl_seq[v] += 1
        elif late:
            vl_seq[v] += 2


@njit_borrow
def _release_line_ns(how, a, v, lk_readers, vl_readers, vl_wlocked, mline_ns, vline_ns):
    """The line cost of releasing what a fault's attempt holds (``how``, a ``codes.FLK_*``:
    mmap_sem of address space ``a``, or VMA ``v``'s read lock): ``line_ns`` (per release:
    the line cost times the lines a release writes) times the other holders of the word as
    the release begins; a writer waiting for the VMA's readers holds
    it too (docs/model.md 15.1)."""
    if how == C.FLK_MMAP:
        return mline_ns * (lk_readers[a] - 1)
    if how == C.FLK_VMA:
        return vline_ns * (vl_readers[v] - 1 + vl_wlocked[v])
    return 0


# ---- verbs of a fault's attempt and of a grant, on the kernel state (state.py) -----------


@njit_phase
def _release_hold(K, W, G, th, t):
    """Thread ``th``'s fault attempt lets go at ``t`` of what it holds (``TS_HOW``): a VMA
    read lock, a speculative attempt (its end), nothing (VM_FAULT_COMPLETED), or mmap_sem for
    read, whose last reader out lets a queued writer go.  A thread that resumes then (after
    its wake-up, :func:`_woken_at`) becomes the other threads' earliest step if it is;
    returns it, or -1."""
    TS = W.TS
    w = -1
    how = TS[th, C.TS_HOW]
    if K.designs and how != C.FLK_MMAP:
        if how == C.FLK_VMA:
            # a VMA read lock (docs/model.md 15.3)
            v = K.page_vma[K.rec_page[TS[th, C.TS_POS]]]
            w = _vma_read_release(th, t, v, K.vma_asid[v], W.vl_readers, W.vl_wlocked,
                                  W.vl_ops, W.drain_th, W.vlocks, K.keep_records, TS)
            if w >= 0:
                W.tn[w] = _woken_at(K, G, t)
            TS[th, C.TS_HOW] = C.FLK_NONE
        elif how == C.FLK_SPEC:
            # a validated speculative attempt ends (docs/model.md 15.6)
            if K.keep_records:
                W.vlocks[TS[th, C.TS_VL_ROW], C.VL_RELEASE] = t
            TS[th, C.TS_HOW] = C.FLK_NONE
    else:
        w = _mmap_read_release(K, W, G, th, t)
    if w >= 0:
        _resumes(G, W.tn[w], w)
    return w


@njit_verb
def _mmap_read_release(K, W, G, th, t):
    """Thread ``th`` lets go of its read hold of its address space's mmap_sem at ``t`` (its
    lock row's release): the last reader out lets a queued writer go, which resumes after
    its wake-up (``W.tn``); its index is returned (-1: none)."""
    a = W.TS[th, C.TS_LOCK_ASID]
    if K.keep_records:
        W.locks[W.TS[th, C.TS_LOCK_ROW], C.L_RELEASE] = t
    W.lk_readers[a] -= 1
    if W.lk_readers[a] == 0 and W.lk_qn[a] > 0:
        if K.rwsem_steal:
            return _free_for_writer(K, W, G, a, t)
        w = _wake_writer(a, W.lk_writer, W.lk_q, W.lk_qh, W.lk_qn)
        if w >= 0:
            W.tn[w] = _woken_at(K, G, t)
        return w
    return -1


@njit_verb
def _free_for_writer(K, W, G, a, t):
    """``rwsem_steal`` (docs/model.md section 4): address space ``a``'s mmap_sem is free at
    ``t`` and a writer is first in its queue: handed to it if it asked for the hand-off
    (granted, resuming after its wake-up), else woken to take the lock itself when it runs
    (``PH_WTRY``), unless it already is.  Returns the thread that resumes, or -1."""
    w = W.lk_q[a, W.lk_qh[a]]
    if (w & 1) == 0:
        return -1
    if W.lk_handoff[a] == 1:
        W.lk_handoff[a] = 0
        w = _wake_writer(a, W.lk_writer, W.lk_q, W.lk_qh, W.lk_qn)
        W.tn[w] = _woken_at(K, G, t)
        return w
    if W.lk_woken[a] == 1:
        return -1
    W.lk_woken[a] = 1
    W.TS[w >> 1, C.TS_PHASE] = C.PH_WTRY
    W.tn[w >> 1] = _woken_at(K, G, t)
    return w >> 1


@njit_verb
def _resumes(G, t, w):
    """Thread ``w`` resumes at ``t`` (granted during another thread's run): the other
    threads' earliest step (G_O_*) takes it into account."""
    found, ot, ok = _with_step(G[g.G_O_FOUND] == 1, G[g.G_O_T], G[g.G_O_K], t, w)
    G[g.G_O_FOUND] = 1 if found else 0
    G[g.G_O_T] = ot
    G[g.G_O_K] = ok


@njit_verb
def _release_cost(K, W, G, th):
    """The line cost of the release thread ``th``'s attempt is about to make (0 unless lock
    words' lines cost something; docs/model.md 15.1)."""
    if G[g.G_LINE_ON] == 0:
        return 0
    TS = W.TS
    v = K.page_vma[K.rec_page[TS[th, C.TS_POS]]]
    costs = K.costs
    how = TS[th, C.TS_HOW] if K.designs else C.FLK_MMAP
    cost = _release_line_ns(how, TS[th, C.TS_LOCK_ASID], v, W.lk_readers, W.vl_readers,
                            W.vl_wlocked,
                            costs[C.COST_MMAP_LINE] * costs[C.COST_MMAP_REL_LINES],
                            costs[C.COST_VMA_LINE] * costs[C.COST_VMA_REL_LINES])
    if how == C.FLK_VMA and W.vl_ops[v] != TS[th, C.TS_VL_OPS0]:
        # the handler's re-read of fields beside the word, which another thread's acquisition
        # or release wrote since this attempt's grant: a transfer a line (docs/model.md 15.1)
        cost += costs[C.COST_VMA_REREAD_LINES] * costs[C.COST_LINE_MISS]
    return cost


@njit_phase
def _note_mmap_grant(K, W, th, t, lkind):
    """Thread ``th``'s mmap_sem request (kind ``lkind``, mode ``TS_LOCK_MODE``) holds the
    lock from ``t``: its lock record's acquire time and the waits by mode (docs/model.md
    15.6)."""
    TS, cnt = W.TS, W.cnt
    if K.keep_records:
        W.locks[TS[th, C.TS_LOCK_ROW], C.L_ACQUIRE] = t
    wt = t - TS[th, C.TS_REQ_T]
    if TS[th, C.TS_LOCK_MODE] == 0:
        # read: a fault's attempt or a LOCK_R record (docs/model.md 15.9)
        cnt[C.CNT_RWAIT] += wt
        if wt > cnt[C.CNT_RWAIT_MAX]:
            cnt[C.CNT_RWAIT_MAX] = wt
        W.hist_rwait[_hist_bucket(wt)] += 1
    else:
        cnt[C.CNT_WWAIT] += wt
        if wt > cnt[C.CNT_WWAIT_MAX]:
            cnt[C.CNT_WWAIT_MAX] = wt
        W.hist_wwait[_hist_bucket(wt)] += 1
        TS[th, C.TS_W_GRANT] = t
