"""Closed-form checks of the engine: results the model must reproduce analytically.

Each test builds a scenario simple enough that probability theory (or plain arithmetic)
predicts the outcome, runs the numba engine through :func:`vmlab.simulate`, and compares.
Statistical checks use a fixed seed (so the suite is deterministic) and a tolerance of
``Z = 4`` standard errors *estimated from the simulated sample itself* (sample standard
deviation over the square root of the sample size); a correct engine fails such a check
with probability about 6e-5 per fresh seed.

Two systematic effects are far below these tolerances and are stated where they apply:

* Random times are drawn from a 65536-entry quantile table (docs/model.md section 1), so a
  Poisson process of rate ``r`` has gaps whose mean is the *table's* mean, slightly below
  ``1/r`` (the table truncates the exponential tail at ``ln(131072) ~ 11.8`` means).  The
  predictions use the table's own rate ``1 / Dist.table_mean_ns()``; the remaining departure
  from memorylessness is of order 1/65536.
* Times are integers, so a window ``[a, b]`` contains ``b - a + 1`` instants where events may
  coincide; the extra nanosecond changes a prediction by about ``r * 1 ns`` (<= 4e-4 relative
  here).
"""
from __future__ import annotations

import math
from collections import OrderedDict, deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import vmlab
from vmlab.model import Adversary, Costs, Exponential, Fixed, Scenario, Vma, poisson_signals
from vmlab.model.scenario import signal_interval_dist
from vmlab.trace import Op, Trace
from vmlab.trace.stats import COLD, miss_ratio_curve, reuse_distance

PAGE = 4096
BASE = 0x1000_0000
Z = 4.0  # tolerance in standard errors


def distinct_pages(n, backing, vma_pages=None):
    """One thread touching pages 0..n-1 of one VMA once each, back to back (no gaps)."""
    addr = (BASE + np.arange(n, dtype=np.uint64) * PAGE).astype(np.uint64)
    vma = Vma(BASE, BASE + (vma_pages or n) * PAGE, backing)
    return Trace(addr=addr), vma


def mean_and_se(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


def assert_close(measured, se, predicted, what):
    tol = Z * se
    assert abs(measured - predicted) <= tol, (
        f"{what}: measured {measured:.6g}, predicted {predicted:.6g}, "
        f"|diff| = {abs(measured - predicted):.4g} > {Z} SE = {tol:.4g}")


# -- 1. a wait restarted from scratch by Poisson signals ---------------------------------

RESTART_CASES = [
    # (wait w ns, signal rate Hz, fault_ns, driver_ns, struct_page_ns, access_ns, seed)
    pytest.param(100_000, 1e4, 0, 0, 0, 0, 1, id="pure-restart-lw=1"),
    pytest.param(60_000, 2.5e4, 500, 300, 100, 1, 2, id="with-handler-cpu-lw=1.5"),
]


@pytest.mark.parametrize("w,rate,fault_ns,driver_ns,struct_page_ns,access_ns,seed", RESTART_CASES)
def test_restart_completion_time_under_poisson_signals(w, rate, fault_ns, driver_ns,
                                                       struct_page_ns, access_ns, seed):
    """Mean latency of a ``context`` fault under ``nopage_refault`` with Poisson signals.

    Source: the completion time of a job of fixed work ``w`` under the *preemptive-repeat
    (restart)* discipline with Poisson(lambda) interruptions and no down time,
    ``E[T] = (exp(lambda*w) - 1) / lambda`` -- Kulkarni, Nicola & Trivedi, "The completion
    time of a job on multi-mode systems", Adv. Appl. Prob. 19 (1987) 932-954 (the
    zero-repair-time special case); also Gaver, "A waiting line with interrupted service,
    including priorities", J. R. Stat. Soc. B 24 (1962).

    Model mapping (docs/model.md section 5): each attempt pays handler CPU
    ``c0 = fault_ns + driver_ns + struct_page_ns`` (not interruptible: a signal arriving then
    is pending when the wait begins and aborts it at its start, ``h``), then waits ``w``;
    a signal in the wait aborts it at once; ``signal_ns = wakeup_ns = 0`` so the access
    re-executes at the abort instant.  With ``X`` the first arrival after an attempt starts,
    the attempt lasts ``D = c0 + w`` if ``X > c0 + w`` else ``max(X, c0)``, so
    ``E[D] = c0 + (exp(-lambda*c0) - exp(-lambda*(c0+w))) / lambda`` and, attempts being
    i.i.d. (memoryless arrivals), ``E[T] = E[D] / P(no arrival in c0 + w)``::

        E[T] = c0 * exp(lambda*(c0 + w)) + (exp(lambda*w) - 1) / lambda

    which is the classic formula when ``c0 = 0``.  The latency ends at the PTE install, so
    ``access_ns`` is not part of it (a signal during the access is delivered at the record's
    end and the next fault starts afresh).  20,000 faults; tolerance 4 sample SE.
    """
    n = 20_000
    trace, vma = distinct_pages(n, "context")
    costs = Costs(access_ns=access_ns, fault_ns=fault_ns, driver_ns=driver_ns,
                  struct_page_ns=struct_page_ns, signal_ns=0, wakeup_ns=0, wait_ns=Fixed(w))
    sched = poisson_signals(rate)
    res = vmlab.simulate(Scenario(trace, vmas=[vma], costs=costs, signals=[sched], seed=seed),
                         "nopage_refault")
    f = res.faults
    assert len(f) == n and (f["outcome"] == "done").all()
    lam = 1.0 / signal_interval_dist(sched).table_mean_ns()
    c0 = fault_ns + driver_ns + struct_page_ns
    predicted = c0 * math.exp(lam * (c0 + w)) + math.expm1(lam * w) / lam
    mean, se = mean_and_se(f["latency_ns"])
    assert_close(mean, se, predicted, "mean restart completion time (ns)")
    # attempts of one fault: 1 + aborts, geometric with success probability exp(-lambda*(c0+w))
    mean_a, se_a = mean_and_se(f["attempts"])
    assert_close(mean_a, se_a, math.exp(lam * (c0 + w)), "mean attempts per fault")


# -- 2. delay of a signal that meets an uninterruptible wait ------------------------------

def _waiting_thread(policy, n=20_000, w=10_000, rate=5e4, seed=3):
    trace, vma = distinct_pages(n, "context")
    costs = Costs(access_ns=7, fault_ns=500, driver_ns=300, struct_page_ns=100, signal_ns=0,
                  wakeup_ns=2_000, wait_ns=Fixed(w))
    res = vmlab.simulate(Scenario(trace, vmas=[vma], costs=costs, signals=[poisson_signals(rate)],
                                  seed=seed), policy)
    record_ns = (costs.fault_ns + costs.driver_ns + costs.struct_page_ns + w + costs.wakeup_ns
                 + costs.access_ns)
    return res, record_ns, n


def test_signal_latency_blocking_wait_is_half_a_record():
    """Under blocking ``nopage`` a signal waits for the end of the current record: mean L/2.

    Source: renewal theory's inspection paradox -- the residual life seen by an arrival
    independent of a renewal process (here Poisson, so PASTA applies) has mean
    ``E[X^2] / (2 E[X])``; with every interval of fixed length ``L`` this is ``L/2``
    (S. M. Ross, *Introduction to Probability Models*, chapter 7 "Renewal Theory and Its
    Applications": the limiting mean excess and the inspection paradox).

    Set-up: one thread, back-to-back faults on distinct ``context`` pages with a fixed wait,
    ``signal_ns = 0`` so the thread is inside a record at every instant; each record lasts
    exactly ``L = fault_ns + driver_ns + struct_page_ns + w + wakeup_ns + access_ns``
    (asserted exactly through the thread's end time).  Signals are delivered at the end of
    the record they arrive in.  Within a record arrivals are i.i.d. uniform given their
    number, so the sample SE of the latencies is the SE of their mean (ratio estimator);
    about 13,000 signals, tolerance 4 sample SE.
    """
    res, L, n = _waiting_thread("nopage")
    assert int(res.threads["end_ns"][0]) == n * L  # no time lost: the thread never pauses
    s = res.signals
    lat = s["latency_ns"].to_numpy()
    assert len(lat) > 10_000 and (lat >= 0).all() and (lat <= L).all()
    assert not s["aborted_wait"].any()
    mean, se = mean_and_se(lat)
    assert_close(mean, se, L / 2, "mean signal latency under nopage (ns)")


@pytest.mark.nojit
def test_signal_latency_interruptible_wait_is_zero():
    """Under ``nopage_refault`` a signal that meets the (interruptible) wait is delivered at
    once: latency exactly 0 (docs/model.md sections 5 and 7, *Interruptible*).

    With every CPU cost zero the thread is always in the wait and *every* latency is exactly
    0.  In the scenario of the previous test (handler CPU ``c0 = 900`` ns, ``access_ns = 7``)
    the rule is exact too: a signal arriving during the wait is delivered at its arrival; one
    arriving during an attempt's handler CPU is pending when the wait would begin and aborts
    it then, at ``attempt start + c0`` (an attempt starts at the fault's start or at the
    previous abort, ``signal_ns`` being 0); one arriving during the access waits for the
    record's end (at most ``access_ns``).
    """
    res, L, n = _waiting_thread("nopage_refault")
    s = res.signals
    aborted = s["aborted_wait"].to_numpy()
    arrival = s["arrival_ns"].to_numpy()
    delivery = s["delivery_ns"].to_numpy()
    c0, access_ns = 900, 7
    assert aborted.sum() > 10_000 and (delivery >= arrival).all()
    attempt_starts = set(res.faults["start_ns"].tolist()) | set(delivery[aborted].tolist())
    record_ends = set((res.faults["end_ns"] + access_ns).tolist())
    for a, d in zip(arrival[delivery > arrival].tolist(), delivery[delivery > arrival].tolist()):
        in_handler = (d - c0) in attempt_starts and d - c0 <= a
        in_access = d in record_ends and d - access_ns <= a
        assert in_handler or in_access, (a, d)
    # the waits take w / (c0 + w + access) of the time: most signals are delivered at once
    assert np.mean(delivery == arrival) > 0.85

    trace, vma = distinct_pages(5_000, "context")
    costs = Costs(access_ns=0, fault_ns=0, driver_ns=0, struct_page_ns=0, signal_ns=0,
                  wakeup_ns=0, wait_ns=Fixed(50_000))
    res = vmlab.simulate(Scenario(trace, vmas=[vma], costs=costs, signals=[poisson_signals(1e4)],
                                  seed=5), "nopage_refault")
    lat = res.signals["latency_ns"].to_numpy()
    assert len(lat) > 1_000
    assert (lat == 0).all()


# -- 3. eager versus lazy mapping of a device VMA ------------------------------------------

@pytest.mark.parametrize("n_pages,costs", [
    pytest.param(1_000, Costs(), id="defaults-integer-crossover"),
    pytest.param(777, Costs(fault_ns=450, driver_ns=333, access_ns=3, pte_ns=61,
                            remap_fixed_ns=19_000), id="fractional-crossover"),
])
def test_eager_versus_lazy_crossover(n_pages, costs):
    """``remap_pfn_range`` versus ``nopfn`` on a ``device`` VMA of N pages, k pages touched.

    Source: MODEL.md section 3 and docs/model.md sections 5-6 (plain arithmetic).  Eager:
    the thread holds ``mmap_sem`` for write ``remap_fixed_ns + N*pte_ns`` before its first
    record, then every access hits: ``end = remap_fixed + N*pte + k*access``.  Lazy: each
    first touch is a minor fault of ``fault_ns + driver_ns`` (no ``struct_page_ns``) plus the
    access: ``end = k*(fault + driver + access)``.  Both exact.  The access costs cancel in
    the difference, so ``eager - lazy = remap_fixed + N*pte - k*(fault + driver)`` changes
    sign at ``k* = (remap_fixed + N*pte) / (fault + driver)``.
    """
    c = costs
    fixed = c.remap_fixed_ns + n_pages * c.pte_ns
    per_fault = c.fault_ns + c.driver_ns
    k_star = fixed / per_fault
    lo = math.floor(k_star)
    ks = sorted({1, lo - 1, lo, lo + 1, lo + 2, n_pages} & set(range(1, n_pages + 1)))
    for k in ks:
        trace, vma = distinct_pages(k, "device", vma_pages=n_pages)
        sc = Scenario(trace, vmas=[vma], costs=c)
        eager = vmlab.simulate(sc, "remap_pfn_range")
        lazy = vmlab.simulate(sc, "nopfn")
        e_end = int(eager.threads["end_ns"][0])
        l_end = int(lazy.threads["end_ns"][0])
        assert e_end == fixed + k * c.access_ns, k
        assert l_end == k * (per_fault + c.access_ns), k
        assert eager.summary["n_faults"] == 0 and lazy.summary["n_faults"] == k
        assert lazy.summary["n_minor"] == k
        # the sign of (eager - lazy) is the sign of (k* - k), flipping exactly at k*
        assert np.sign(e_end - l_end) == np.sign(fixed - k * per_fault), k
        assert (e_end > l_end) == (k < k_star) and (e_end < l_end) == (k > k_star), k


# -- 4. attempts of an unbounded retry under a Poisson fadvise adversary --------------------

def test_unbounded_retry_attempts_under_poisson_adversary():
    """Attempts of ``fault_retry_unbounded`` faults while a Poisson(r) adversary evicts.

    Source: the void probability of a Poisson process, ``P(no event in w) = exp(-r*w)``
    (Ross, *Introduction to Probability Models*, chapter 5 "The Exponential Distribution and
    the Poisson Process"), and the mean ``1/p`` of a
    geometric number of trials with success probability ``p``.

    Every cold file fault's first attempt issues the read and drops ``mmap_sem`` (section 5,
    *Lock dropped*): it always ends in a retry.  Each later attempt finds the page read but
    unmapped during the window from I/O completion ``c`` to its lookup at
    ``c + wakeup_ns + fault_ns + struct_page_ns`` (no lock contention: one thread); an
    adversary call in the window evicts it, and the attempt re-reads it and retries again.
    So the retries of one fault are geometric with ``p = exp(-r*w)``, mean ``exp(r*w)``, and
    ``attempts = 1 + retries`` has mean ``1 + exp(r*w)`` (the brief's "attempts ~ exp(r*w)"
    counts the post-I/O lookups, i.e. the retries).  Exact side conditions: every eviction
    causes one retry (``n_retries = n_faults + n_adversary_evictions``) and every attempt but
    the last reads the page (``n_io = n_retries``).  20,000 faults, r*w = 1; tolerance 4 SE.
    """
    n = 20_000
    trace, vma = distinct_pages(n, "file")
    costs = Costs(io_ns=Fixed(10_000))
    w = costs.wakeup_ns + costs.fault_ns + costs.struct_page_ns
    adv = Adversary(kind="poisson", rate_hz=1e9 / w)
    res = vmlab.simulate(Scenario(trace, vmas=[vma], costs=costs, adversary=adv, seed=4),
                         "fault_retry_unbounded")
    s = res.summary
    f = res.faults
    assert len(f) == n and (f["outcome"] == "done").all()
    assert s["n_retries"] == n + s["n_adversary_evictions"]
    assert s["n_io"] == s["n_retries"]
    r = 1.0 / Exponential(1e9 / adv.rate_hz).table_mean_ns()
    mean_r, se_r = mean_and_se(f["retries"])
    assert_close(mean_r, se_r, math.exp(r * w), "mean retries per fault")
    mean_a, se_a = mean_and_se(f["attempts"])
    assert_close(mean_a, se_a, 1 + math.exp(r * w), "mean attempts per fault")


# -- 5. LRU faults equal the stack-distance count -------------------------------------------

def _single_thread_file_run(pages, offsets, ops, capacity, replacement):
    addr = np.array([BASE + p * PAGE + o for p, o in zip(pages, offsets)], np.uint64)
    trace = Trace(addr=addr, op=np.array(ops, np.uint8))
    n_vma = max(pages) + 1
    sc = Scenario(trace, vmas=[Vma(BASE, BASE + n_vma * PAGE, "file")], memory_pages=capacity,
                  replacement=replacement, costs=Costs(io_ns=Fixed(1_000)))
    return trace, vmlab.simulate(sc, "nopage")


_ACCESS_OPS = [int(Op.LOAD), int(Op.STORE), int(Op.IFETCH), int(Op.MODIFY)]


@st.composite
def page_traces(draw):
    n_pages = draw(st.integers(1, 24))
    n = draw(st.integers(1, 250))
    # a mix of hot and cold pages gives reuse at many distances
    pages = draw(st.lists(st.integers(0, n_pages - 1), min_size=n, max_size=n))
    offsets = draw(st.lists(st.integers(0, PAGE - 1), min_size=n, max_size=n))
    ops = draw(st.lists(st.sampled_from(_ACCESS_OPS), min_size=n, max_size=n))
    capacity = draw(st.integers(3, 12))
    return pages, offsets, ops, capacity


_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_SETTINGS
@given(page_traces())
def test_lru_faults_equal_stack_distance_count(case):
    """Single thread, ``nopage``, one file VMA, ``memory_pages = C``, LRU replacement.

    Source: Mattson, Gecsei, Slutz & Traiger, "Evaluation techniques for storage
    hierarchies", IBM Systems Journal 9(2), 1970: LRU is a stack algorithm, so a cache of
    ``C`` pages misses exactly the references whose stack distance is ``>= C`` plus the
    cold ones.  One thread holds at most one page in flight (the one being read), so every
    other resident page is eligible and the engine's cache is exactly an LRU cache of ``C``.
    Exact equality, checked through both :func:`reuse_distance` and :func:`miss_ratio_curve`.
    """
    pages, offsets, ops, capacity = case
    trace, res = _single_thread_file_run(pages, offsets, ops, capacity, "lru")
    d = reuse_distance(trace)
    expected = int(np.count_nonzero((d == COLD) | (d >= capacity)))
    assert res.summary["n_faults"] == expected
    sizes, ratio = miss_ratio_curve(distances=d, sizes=[capacity])
    assert res.summary["n_faults"] == round(ratio[0] * len(trace))
    assert res.summary["n_major"] == expected  # every miss reads the page
    assert res.summary["n_evictions"] == max(0, expected - capacity)


# -- 6. replacement policies against plain implementations ----------------------------------

def lru_misses(keys, capacity):
    """Faulting positions under LRU: an OrderedDict, least recent first."""
    cache, out = OrderedDict(), []
    for i, k in enumerate(keys):
        if k in cache:
            cache.move_to_end(k)
            continue
        out.append(i)
        if len(cache) == capacity:
            cache.popitem(last=False)
        cache[k] = True
    return out


def fifo_misses(keys, capacity):
    """Faulting positions under FIFO: a deque in insertion order; hits change nothing."""
    queue, resident, out = deque(), set(), []
    for i, k in enumerate(keys):
        if k in resident:
            continue
        out.append(i)
        if len(queue) == capacity:
            resident.discard(queue.popleft())
        queue.append(k)
        resident.add(k)
    return out


def clock_misses(keys, capacity):
    """Faulting positions under CLOCK as docs/model.md section 8 defines it.

    ``frames`` is the circular list, ``hand`` the index the hand points at.  Victim: the
    first page at or after the hand whose bit is clear, clearing bits as the hand passes.
    The new page goes just behind the hand (in the victim's slot, the hand moving on past
    it; or, while frames are free, inserted before the hand's page) with its bit clear.  A
    hit sets the bit, and so does the access that completes a fault (section 3: the
    faulting access is one reference for replacement).
    """
    frames, bit, hand, out = [], {}, 0, []
    for i, k in enumerate(keys):
        if k in bit:
            bit[k] = True
            continue
        out.append(i)
        if len(frames) < capacity:
            frames.insert(hand, k)
            hand = (hand + 1) % len(frames)
        else:
            while bit[frames[hand]]:
                bit[frames[hand]] = False
                hand = (hand + 1) % len(frames)
            del bit[frames[hand]]
            frames[hand] = k
            hand = (hand + 1) % len(frames)
        bit[k] = False
        bit[k] = True  # the access that completes the fault is a reference
    return out


def twolist_misses(keys, capacity):
    """Faulting positions under twolist as docs/model.md section 8 defines it (capacities
    here are far below 1 GiB, so the inactive ratio is 1).

    Two queues, oldest first: ``inactive`` (new pages) and ``active``.  A reference to an
    inactive page sets its mark, a second one moves it to the active queue (mark cleared);
    references to active pages change nothing.  The access that completes a fault is the
    page's first reference.  A miss with every frame taken first moves the oldest active
    pages to the inactive queue (marks cleared) while ``len(inactive) < len(active)``, then
    evicts the oldest inactive page.
    """
    inactive, active, marked, out = [], [], set(), []
    for i, k in enumerate(keys):
        if k in active:
            continue
        if k in inactive:
            if k in marked:
                marked.discard(k)
                inactive.remove(k)
                active.append(k)
            else:
                marked.add(k)
            continue
        out.append(i)
        if len(inactive) + len(active) == capacity:
            while len(inactive) < len(active):
                a = active.pop(0)
                marked.discard(a)
                inactive.append(a)
            victim = inactive.pop(0) if inactive else active.pop(0)
            marked.discard(victim)
        inactive.append(k)
        marked.add(k)  # the access that completes the fault is a reference
    return out


REFERENCE = {"lru": lru_misses, "fifo": fifo_misses, "clock": clock_misses,
             "twolist": twolist_misses}


@pytest.mark.nojit
@_SETTINGS
@given(page_traces(), st.sampled_from(sorted(REFERENCE)))
def test_replacement_matches_plain_implementation(case, replacement):
    """Which accesses fault, for LRU, FIFO, CLOCK and twolist, against plain implementations.

    Source: the policy definitions of docs/model.md section 8 (and section 3 for which
    accesses are references).  Single thread, ``nopage``, one file VMA: the sequence of
    faulting pages (faults in start order) must be identical to the reference simulation's.
    """
    pages, offsets, ops, capacity = case
    trace, res = _single_thread_file_run(pages, offsets, ops, capacity, replacement)
    expected = [pages[i] for i in REFERENCE[replacement](pages, capacity)]
    got = (res.faults.sort_values("start_ns", kind="stable")["vpn"].to_numpy().astype(np.int64)
           - BASE // PAGE).tolist()
    assert got == expected
