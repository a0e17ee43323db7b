"""Events and arrivals: random draws, the event heap, the earliest pending key, and the one
arrival scheduler shared by signals and the adversary (docs/model.md sections 1, 2, 7, 8)."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_verb, prefetch
from .. import codes as C

# a blocked thread's next step: later than any simulated time
NO_STEP = np.int64(1 << 62)

# ---------------------------------------------------------------------------------------
# random numbers (docs/model.md section 1)


@njit_verb
def _mix(seed, stream, counter):
    z = (seed ^ (np.uint64(stream) * np.uint64(0xD1B54A32D192ED03))) + \
        (np.uint64(counter) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z


@njit_verb
def _quantile(seed, stream, counter):
    """Which of a table's 65,536 quantiles draw number ``counter`` of ``stream`` takes."""
    return np.int64(_mix(seed, stream, counter) >> np.uint64(48))


@njit_verb
def _draw(tables, dist, seed, stream, counter):
    return tables[dist, _quantile(seed, stream, counter)]


@njit_verb
def _io_slot(seed, io_dist, n_quant, counter):
    """Where I/O draw number ``counter`` is in the flattened tables (``_draw``'s entry)."""
    return io_dist * n_quant + _quantile(seed, 1, counter)


#: The random streams of the waits for a CPU after an I/O or context wake-up: one a thread,
#: ``STREAM_IO_WAKE0 + thread`` (docs/model.md sections 1 and 15.14), so that wake-ups at
#: one instant draw the same whatever order they are made in.
STREAM_IO_WAKE0 = 1 << 32


@njit_verb
def _io_woken_at(K, W, th, t):
    """When thread ``th``, whose wait for I/O or a context completes at ``t``, runs
    (docs/model.md 15.14): ``t`` plus ``wakeup_ns`` plus its next draw of ``io_wakeup_ns``
    (none is drawn when it is always 0)."""
    t += K.costs[C.COST_WAKEUP]
    if not K.io_wake_on:
        return t
    TS = W.TS
    d = _draw(K.tables, K.io_wake_dist, K.seed, STREAM_IO_WAKE0 + th, TS[th, C.TS_IO_WAKE_N])
    TS[th, C.TS_IO_WAKE_N] += 1
    return t + d


# ---------------------------------------------------------------------------------------
# the event heap (I/O completions, adversary calls, signal arrivals): parallel arrays of
# time and key (kind << 40 | id)


@njit_verb
def _key_lt(t1, k1, t2, k2):
    return t1 < t2 or (t1 == t2 and k1 < k2)


@njit_verb
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


@njit_verb
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



@njit_verb
def _with_step(found, lt, lk, t, th):
    """The smaller of the pending key ``(lt, lk)`` (if ``found``) and thread ``th``'s step at
    ``t``: how a grant updates the other threads' earliest step."""
    k = (C.EV_THREAD << 40) | th
    if not found or _key_lt(t, k, lt, lk):
        return True, t, k
    return found, lt, lk


@njit_verb
def _limit(hn, h_t, h_k, o_found, o_t, o_k):
    """The smallest pending key: the heap's top ``(h_t, h_k)`` (if ``hn`` > 0) or the other
    threads' earliest step."""
    if hn > 0 and (not o_found or _key_lt(h_t, h_k, o_t, o_k)):
        return True, h_t, h_k
    return o_found, o_t, o_k



@njit_borrow
def _next_arrival(kind, param, t, count, times, lo, hi, tables, seed, stream):
    """The one arrival scheduler (signals and the adversary): the arrival after the one at
    ``t`` (or the first, from ``t`` = the schedule's start and ``count`` = 0) of a schedule
    of code ``kind``: Poisson (``param`` is the interval table's row; draw ``count`` of
    ``stream``), periodic (``param`` is the period), or explicit times (``times[lo:hi]``).
    Returns ``(time, count)``, time -1 when the schedule has no more arrivals.  Not inlined:
    it runs once an arrival."""
    if kind == C.SCHED_POISSON:
        d = _draw(tables, param, seed, stream, count)
        # the next draw of this stream is at its next arrival: its table entry (a random
        # one of 65,536: a cache miss) is fetched now, to be found in cache then
        prefetch(tables[param], _quantile(seed, stream, count + 1))
        return t + d, count + 1
    if kind == C.SCHED_PERIODIC:
        return t + param, count
    if kind == C.SCHED_TIMES and lo + count < hi:
        return times[lo + count], count + 1
    return np.int64(-1), count
