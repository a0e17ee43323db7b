"""Accounting: record tables, the time series, the latency histogram, closing a fault and
the handler CPU (docs/model.md section 9)."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_verb
from .. import codes as C
from . import state as g

# most columns of the time series: past this, its bins become twice as wide
MAX_BINS = 1 << 18

# free rows the event loop keeps in its record tables (and adversary notes, plus T)
REC_MARGIN = 8


# ---------------------------------------------------------------------------------------
# growable record tables (grown between the event loop's passes, in Python: loop._make_room)


def _grow(a):
    """A copy of the table ``a`` with room for twice its rows (and 16 more)."""
    b = np.empty((2 * a.shape[0] + 16, a.shape[1]), a.dtype)
    b[:a.shape[0]] = a
    return b


def _grow1(a, need):
    """A copy of ``a`` longer than ``need`` (zeros beyond ``a``)."""
    m = a.shape[0]
    while m <= need:
        m = 2 * m + 64
    b = np.zeros(m, a.dtype)
    b[:a.shape[0]] = a
    return b


@njit_verb
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


@njit_borrow
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
        for row in range(bins.shape[0]):
            for i in range(half, bins.shape[1]):
                bins[row, i] = 0
        bin_ns *= 2
        n_bins = (n_bins + 1) // 2
        b = t // bin_ns
    return bin_ns, b, n_bins


@njit_borrow
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


@njit_verb
def _low_room(keep_records, nf, cap_f, nl, cap_l, ns, cap_s, track_cand, n_cand, cap_c, T):
    """Fewer than REC_MARGIN free rows in a record table or in the adversary's notes
    (capacities given as numbers)."""
    if keep_records and (nf + REC_MARGIN > cap_f or nl + REC_MARGIN > cap_l
                         or ns + REC_MARGIN > cap_s):
        return True
    return track_cand and n_cand + T + REC_MARGIN > cap_c


@njit_verb
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


@njit_verb
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
        faults[fr, C.F_RETRIES] = TS[th, C.TS_RETRIES]
    # retries: the attempts that ended in a retry, also the last one when no attempt followed
    # (the page mapped meanwhile, a fatal signal, the horizon): docs/model.md section 13
    cnt[C.CNT_RETRIES] += TS[th, C.TS_RETRIES]
    if TS[th, C.TS_MAJOR] == 1:
        cnt[C.CNT_MAJOR] += 1
    else:
        cnt[C.CNT_MINOR] += 1



@njit_borrow
def _end_thread(th, t, state, TT, TS, thr_off, thr_access, cnt, n_acc_alive, acc_end):
    """Thread ``th`` ends at ``t`` in ``state`` (done, killed, sigbus); a killed or SIGBUS
    thread abandons the records it has not done.  Returns the access threads still alive and
    the time the last of them ended (the window of writer throughput).  Not inlined: it runs
    once a thread."""
    TT[th, C.TT_STATE] = state
    TT[th, C.TT_END] = t
    if thr_access[th] == 1:
        n_acc_alive -= 1
        if n_acc_alive == 0:
            acc_end = t
    if state != C.ST_DONE:
        cnt[C.CNT_ABANDONED] += thr_off[th + 1] - TS[th, C.TS_POS]
        TS[th, C.TS_POS] = thr_off[th + 1]
    return n_acc_alive, acc_end


@njit_borrow
def _close_books(stop_t, TT, TS, thr_off, faults, keep_records, cnt, pol, vma_pol, page_vma,
                 rec_page, oom):
    """The run stopped at ``stop_t`` (the horizon, or the event budget's stop): every thread
    still running ends there, unfinished, its current segment and attempt charged up to
    ``stop_t`` and its fault in progress recorded ``unfinished`` (a thread whose fault has
    been retried and could retry again is livelocked; docs/model.md section 13).  After an
    OOM (``oom``, docs/model.md section 12) they end in state oom.  Returns the latest
    thread end."""
    end_time = 0
    for th in range(TT.shape[0]):
        if TT[th, C.TT_STATE] == C.ST_RUNNING:
            # (an OOM ends every running thread there: state oom, never livelocked)
            TT[th, C.TT_STATE] = C.ST_OOM if oom else C.ST_UNFINISHED
            TT[th, C.TT_END] = stop_t
            seg = TS[th, C.TS_SEG]
            dt = stop_t - TS[th, C.TS_ACC]
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
                TS[th, C.TS_F_LOCKWAIT] += stop_t - TS[th, C.TS_REQ_T]
            cnt[C.CNT_UNFINISHED] += thr_off[th + 1] - TS[th, C.TS_POS]
            if TS[th, C.TS_IN_FAULT] == 1:
                _close_fault(th, -1, C.OUT_UNFINISHED, TS, faults, keep_records, cnt)
                # livelocked: retried, and could retry again (docs/model.md section 13)
                retries = TS[th, C.TS_RETRIES]
                mr = pol[vma_pol[page_vma[rec_page[TS[th, C.TS_POS]]]], C.K_MAX_RETRIES]
                if retries >= 1 and (mr < 0 or retries < mr) and not oom:
                    cnt[C.CNT_LIVELOCKED] += 1
        if TT[th, C.TT_END] > end_time:
            end_time = TT[th, C.TT_END]
    return end_time


# ---------------------------------------------------------------------------------------
# verbs on the scalar state G (state.py)


@njit_verb
def _count_in_bin(W, G, row, t):
    """Count one event of series ``row`` (codes.TSB_*) at ``t`` in the time series."""
    ts_bins = W.ts_bins
    b = t // G[g.G_BIN_NS]
    if b >= ts_bins.shape[1]:
        G[g.G_BIN_NS], b, G[g.G_N_BINS] = _fit_bins(ts_bins, t, G[g.G_BIN_NS], G[g.G_N_BINS])
        G[g.G_BIN_HI] = 0  # (the fast path's cached bin is stale)
    ts_bins[row, b] += 1
    if b >= G[g.G_N_BINS]:
        G[g.G_N_BINS] = b + 1


@njit_verb
def _thread_ends(K, W, G, th, t, state):
    """Thread ``th`` ends at ``t`` in ``state`` (ST_DONE, ST_KILLED, ST_SIGBUS)."""
    G[g.G_N_ALIVE] -= 1
    G[g.G_N_ACC_ALIVE], G[g.G_ACC_END] = _end_thread(th, t, state, W.TT, W.TS, K.thr_off,
                                                     K.thr_access, W.cnt, G[g.G_N_ACC_ALIVE],
                                                     G[g.G_ACC_END])


@njit_verb
def _oom(W, G, th, t):
    """A charge of thread ``th`` found no frame at ``t`` under memory_bytes: the run ends
    there (docs/model.md section 12)."""
    G[g.G_OOM] = 1
    G[g.G_STOP_T] = t
    W.cnt[C.CNT_OOM_NS] = t
    W.cnt[C.CNT_OOM_THREAD] = th


@njit_verb
def _fault_done(K, W, th, t, outcome):
    """Thread ``th``'s open fault ends at ``t`` with ``outcome``: its record and counts."""
    _close_fault(th, t, outcome, W.TS, W.faults, K.keep_records, W.cnt)
    W.TS[th, C.TS_IN_FAULT] = 0
    W.TS[th, C.TS_FAULT_ROW] = -1
