"""Accounting: record tables, the time series, the latency histogram, closing a fault and
the handler CPU (docs/model.md section 9)."""
from __future__ import annotations

import numpy as np

from ..._numba import njit, prefetch
from .. import codes as C

# most columns of the time series: past this, its bins become twice as wide
MAX_BINS = 1 << 18

# free rows the event loop keeps in its record tables (and adversary notes, plus T)
REC_MARGIN = 8


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
def _low_room(keep_records, nf, cap_f, nl, cap_l, ns, cap_s, track_cand, n_cand, cap_c, T):
    """Fewer than REC_MARGIN free rows in a record table or in the adversary's notes
    (capacities given as numbers: an array argument costs reference counting per call)."""
    if keep_records and (nf + REC_MARGIN > cap_f or nl + REC_MARGIN > cap_l
                         or ns + REC_MARGIN > cap_s):
        return True
    return track_cand and n_cand + T + REC_MARGIN > cap_c


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

