"""Signals (docs/model.md section 7): an arrival queues the signal on its thread (and aborts
an interruptible wait), delivery takes pending signals one at a time on the way back to
user space; a fatal one ends the thread."""
from __future__ import annotations

from ..._numba import njit_borrow
from .. import codes as C
from . import state as g
from .accounting import _fault_done, _hist_bucket, _thread_ends
from .events import NO_STEP, _heap_push, _next_arrival


@njit_borrow
def _on_signal(K, W, G, th, t):
    """A signal arrives for thread ``th`` at ``t``: record and queue it, schedule the next
    arrival.  Returns True if it aborts an interruptible wait (the thread runs now)."""
    TS = W.TS
    if W.TT[th, C.TT_STATE] != C.ST_RUNNING:
        return False
    fatal = K.sig_fatal[th]
    row = -1
    if K.keep_records:
        ns = G[g.G_NS]
        sigs = W.sigs
        row = ns
        sigs[ns, C.S_THREAD] = th
        sigs[ns, C.S_ARRIVAL] = t
        sigs[ns, C.S_DELIVERY] = -1
        sigs[ns, C.S_FATAL] = fatal
        sigs[ns, C.S_ABORTED] = 0
        G[g.G_NS] = ns + 1
    W.cnt[C.CNT_SIGNALS] += 1
    # queue it (a full queue is grown before the next event)
    pend_n = W.pend_n
    m = W.pend_t.shape[1]
    slot = (W.pend_h[th] + pend_n[th]) % m
    W.pend_t[th, slot] = t
    W.pend_f[th, slot] = fatal
    W.pend_row[th, slot] = row
    pend_n[th] += 1
    if pend_n[th] == m:
        G[g.G_PEND_FULL] = 1
    # schedule the next arrival
    nxt_t, W.sig_cnt[th] = _next_arrival(K.sig_kind[th], K.sig_param[th], t, W.sig_cnt[th],
                                         K.sig_times, K.sig_toff[th], K.sig_toff[th + 1],
                                         K.tables, K.seed, 16 + th)
    if nxt_t >= 0 and nxt_t <= K.horizon:
        G[g.G_HN] = _heap_push(W.ht, W.hk, G[g.G_HN], nxt_t, (C.EV_SIGNAL << 40) | th)
    # an interruptible wait is aborted at once
    if TS[th, C.TS_INTR] == 1:
        # (the wait is over: a second signal at this instant, before the thread's step,
        # only queues)
        TS[th, C.TS_INTR] = 0
        TS[th, C.TS_PHASE] = C.PH_ABORT
        W.tn[th] = NO_STEP  # a pending wake-up (context wait) is cancelled
        if K.keep_records and row >= 0:
            W.sigs[row, C.S_ABORTED] = 1
        return True
    return False


@njit_borrow
def _ph_deliver(K, W, G, th, t):
    """PH_DELIVER: one pending signal at a time, re-checking after each (the kernel's
    exit-to-user loop): a signal arriving during handling joins the batch.  Then TS_AFTER."""
    TS, TT = W.TS, W.TT
    pend_n = W.pend_n
    TT[th, C.CAT_SIGNAL] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    if pend_n[th] == 0:
        TS[th, C.TS_PHASE] = TS[th, C.TS_AFTER]
        return t, g.STEP_DONE
    m = W.pend_t.shape[1]
    slot = W.pend_h[th]
    W.pend_h[th] = (slot + 1) % m
    pend_n[th] -= 1
    if K.keep_records:
        W.sigs[W.pend_row[th, slot], C.S_DELIVERY] = t
    W.hist_sig[_hist_bucket(t - W.pend_t[th, slot])] += 1
    W.cnt[C.CNT_SIG_DELIVERED] += 1
    if W.pend_f[th, slot] == 1:
        # a fatal signal: the thread ends now; later ones are dropped
        pend_n[th] = 0
        if TS[th, C.TS_IN_FAULT] == 1 and TS[th, C.TS_AFTER] == C.PH_ACCESS:
            G[g.G_N_IN_FAULT] -= 1
            _fault_done(K, W, th, t, C.OUT_KILLED)
        # the current record (a fault aborted) is abandoned; the rest never run
        _thread_ends(K, W, G, th, t, C.ST_KILLED)
        return -1, g.HALT
    return t + K.costs[C.COST_SIGNAL], g.STEP_DONE
