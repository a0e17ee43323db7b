"""Tests of the reference simulator itself (tests/naive_engine.py), on hand-built scenarios.

Every expected number is worked out in the test from the costs, with docs/model.md's rules.
Unless a test says otherwise the costs are vmlab's defaults (fault 500, struct page 100,
zero fill 700, page-cache hit 800, driver 300, pte 60, remap fixed 20 000, signal 900,
mmap_cs 1 300, wake-up 2 000, access 1) with a fixed I/O time of 70 000 ns.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import budgeted
from naive_engine import (CATEGORIES, NaiveSimulator, canonical, first_difference, lock_r_done,
                          mix, simulate)
from scenario_strategies import cases
from vmlab.errors import ScenarioError
from vmlab.model import (Adversary, Costs, Fixed, Scenario, SignalSchedule, Vma)
from vmlab.trace import Op, Trace

PAGE = 4096
BASE = 0x400 * PAGE                   # vpn 0x400, aligned to any fault-around window
IO = 70_000
# The hand-worked timelines below use MODEL.md section 5's costs; the defaults moved to this
# host's pte_ns, signal_ns and mmap_cs_ns (docs/model.md section 14), so they are pinned here.
COSTS = Costs(io_ns=Fixed(IO), pte_ns=60, signal_ns=900, mmap_cs_ns=1_300)
W = "W"                               # a LOCK_W record in the row lists below


def page(i):
    return BASE + i * PAGE


def trace_of(rows):
    """rows: (tid, page index or W, gap_ns)."""
    tid = [r[0] for r in rows]
    addr = [0 if r[1] == W else page(r[1]) + 8 for r in rows]
    op = [Op.LOCK_W if r[1] == W else Op.LOAD for r in rows]
    gap = [r[2] for r in rows]
    return Trace(addr=np.array(addr, np.uint64), op=np.array(op, np.uint8),
                 tid=np.array(tid, np.uint32), gap_ns=np.array(gap, np.uint64))


def scenario(rows, backing="file", n_pages=16, start_page=0, **kw):
    kw.setdefault("costs", COSTS)
    vmas = kw.pop("vmas", None) or [Vma(page(start_page), page(start_page + n_pages), backing)]
    return Scenario(trace_of(rows), vmas=vmas, **kw)


def rows_of(result, table):
    """A result table as a list of dicts, one per row, in the order the simulator made them."""
    cols = getattr(result, table)
    names = list(cols)
    return [dict(zip(names, vals)) for vals in zip(*(cols[n] for n in names))]


def only(result, table):
    rows = rows_of(result, table)
    assert len(rows) == 1, rows
    return rows[0]


def thread_times(result, i):
    row = rows_of(result, "threads")[i]
    return {c: row[c + "_ns"] for c in CATEGORIES if row[c + "_ns"]}


# -- the random function ------------------------------------------------------------------

def test_mix_is_splitmix64_for_stream_0():
    # With seed 0 and stream 0, mix(0, 0, c) is SplitMix64's (c+1)-th output from state 0,
    # whose first values are published with the algorithm (Vigna, prng.di.unimi.it).
    assert mix(0, 0, 0) == 0xE220A8397B1DCDAF
    assert mix(0, 0, 1) == 0x6E789E6AA1B965F4
    assert mix(0, 0, 2) == 0x06C45D188009454F
    assert 0 <= mix(2**64 - 1, 17, 12345) < 2**64


# -- single faults --------------------------------------------------------------------------

def test_single_major_file_fault_under_nopage():
    r = simulate(scenario([(1, 0, 0)]), "nopage")
    f = only(r, "faults")
    latency = 500 + 100 + IO + 2000     # fault_ns + struct_page_ns + io + wakeup_ns
    assert (f["start_ns"], f["end_ns"]) == (0, latency)
    assert (f["major"], f["attempts"], f["outcome"]) == (1, 1, 0)
    assert (f["lock_wait_ns"], f["io_wait_ns"]) == (0, IO + 2000)
    assert only(r, "locks") == dict(thread=0, asid=0, mode=0, kind=0, request_ns=0, acquire_ns=0,
                                    release_ns=latency, downgrade_ns=-1)
    assert thread_times(r, 0) == {"fault_cpu": 600, "io_wait": IO + 2000, "hit": 1}
    assert r.threads["end_ns"] == [latency + 1]
    assert r.counters["n_io"] == 1 and r.counters["n_major"] == 1


def test_minor_page_cache_hit_then_plain_hit():
    sc = scenario([(1, 0, 0), (1, 0, 0)], preload=np.array([page(0)]))
    r = simulate(sc, "nopage")
    f = only(r, "faults")
    assert (f["end_ns"], f["major"]) == (500 + 100 + 800, 0)   # fault + struct page + hit
    assert r.threads["end_ns"] == [1400 + 1 + 1]               # then two accesses
    assert r.counters["n_accesses"] == 2 and r.counters["n_minor"] == 1
    assert r.counters["n_io"] == 0 and r.counters["n_ptes_end"] == 1


def test_sigbus_on_iomem_under_nopage_and_fine_under_nopfn():
    rows = [(1, 0, 0), (1, 0, 0), (1, 1, 0)]
    r = simulate(scenario(rows, "iomem"), "nopage")
    f = only(r, "faults")
    assert (f["outcome"], f["end_ns"]) == (1, 500 + 300)       # fault_ns + driver_ns, SIGBUS
    assert (r.threads["state"], r.threads["end_ns"]) == ([2], [800])
    assert r.counters["n_sigbus"] == 1 and r.counters["n_abandoned_records"] == 3
    assert only(r, "locks")["release_ns"] == 800

    r = simulate(scenario(rows, "iomem"), "nopfn")
    assert r.faults["end_ns"] == [800, 800 + 1 + 1 + 800]      # minor faults, no struct page
    assert r.threads["state"] == [0] and r.counters["n_accesses"] == 3


def test_records_outside_every_vma_are_refused():
    with pytest.raises(ScenarioError, match=r"record 1: address 0x5008"):
        simulate(scenario([(1, 0, 0), (1, -0x3FB, 0)]))


# -- page cache -----------------------------------------------------------------------------

@pytest.mark.parametrize("replacement, seq, resident", [
    # A B C A D: LRU evicts B (A was used after C); FIFO evicts A (first in).
    ("lru", "ABCAD", "ACD"),
    ("fifo", "ABCAD", "BCD"),
    # A B C D: the hand clears A, B, C and takes A; ring B C D, hand on B, D referenced.
    # Then B is referenced; E: B gets a second chance, C goes.  LRU agrees here, FIFO not.
    ("clock", "ABCDBE", "BDE"),
    ("lru", "ABCDBE", "BDE"),
    ("fifo", "ABCDBE", "CDE"),
    # ...then F: the hand (on D, referenced) clears D and takes B; LRU takes D.
    ("clock", "ABCDBEF", "DEF"),
    ("lru", "ABCDBEF", "BEF"),
    # twolist: the faulting access marks a page, its next reference activates it.  A B C A D:
    # A is active; D evicts the oldest inactive page, B.
    ("twolist", "ABCAD", "ACD"),
    # A A B B: both active.  C D: D finds the inactive list low (1 < 2), deactivates A (the
    # oldest activation), evicts C; E evicts A.  B stays: twice referenced.  LRU keeps C D E.
    ("twolist", "AABBCDE", "BDE"),
    ("lru", "AABBCDE", "CDE"),
])
def test_replacement_victims_with_three_frames(replacement, seq, resident):
    rows = [(1, "ABCDEF".index(ch), 0) for ch in seq]
    sim = NaiveSimulator(scenario(rows, memory_pages=3, replacement=replacement), "nopage")
    r = sim.run()
    # (the page cache is keyed by (file, folio): one-page folios of the VMA's own file, whose
    # page k is the VMA's page k)
    assert {k for _, k in sim.cache} == {"ABCDEF".index(ch) for ch in resident}
    assert r.counters["n_evictions"] == len(set(seq)) - 3
    # Evicted pages were mapped, so no I/O was wasted; their PTEs went with them.
    assert r.counters["n_wasted_io"] == 0 and r.counters["n_ptes_end"] == 3


def test_fault_around_maps_resident_neighbours_in_the_vma():
    # VMA pages 1..8; window of 4 around page 2 is pages 0..3, page 0 is outside the VMA.
    sc = scenario([(1, 2, 0), (1, 3, 0), (1, 4, 0)], start_page=1, n_pages=8,
                  fault_around_pages=4, preload=np.array([page(1), page(2), page(3)]))
    r = simulate(sc, "nopage")
    first = 500 + 100 + 800 + 2 * 60    # minor fault + two extra PTEs (pages 1 and 3)
    second_start = first + 1 + 1        # page 3 is now a plain hit
    assert r.faults["end_ns"] == [first, second_start + 600 + IO + 2000]
    assert r.faults["major"] == [0, 1]
    assert r.counters["n_ptes_end"] == 4
    assert thread_times(r, 0) == {"fault_cpu": first + 600, "io_wait": IO + 2000, "hit": 3}


# -- mmap_sem -------------------------------------------------------------------------------

def test_fair_mmap_sem_queue_behind_a_writer():
    # t1 writes [0, 1300); t2 (read, anon fault) queues at 0; t3 (write) at 10; t4 (read) at 20
    # must queue behind t3's write although t2 will hold the lock for read.
    rows = [(1, W, 0), (2, 0, 0), (3, W, 10), (4, 1, 20)]
    r = simulate(scenario(rows, "anon"), "nopage")
    anon = 500 + 100 + 700
    locks = sorted(rows_of(r, "locks"), key=lambda x: x["thread"])
    got = [(x["mode"], x["kind"], x["request_ns"], x["acquire_ns"], x["release_ns"]) for x in locks]
    assert got == [(1, 1, 0, 0, 1300),
                   (0, 0, 0, 1300, 1300 + anon),
                   (1, 1, 10, 1300 + anon, 1300 + anon + 1300),
                   (0, 0, 20, 2600 + 1300, 3900 + anon)]
    assert r.faults["lock_wait_ns"] == [1300, 3900 - 20]
    assert r.counters["n_lock_w"] == 2


def test_consecutive_readers_enter_together():
    rows = [(1, W, 0), (2, 0, 0), (3, 1, 0)]
    r = simulate(scenario(rows, "anon"), "nopage")
    assert r.faults["start_ns"] == [0, 0]
    assert [x for x in r.locks["acquire_ns"]] == [0, 1300, 1300]


@pytest.mark.parametrize("policy", ["nopage", "fault_retry"])
def test_fault_retry_lets_a_writer_in_during_the_io(policy):
    rows = [(1, 0, 0), (2, W, 1000)]
    r = simulate(scenario(rows), policy)
    w = [x for x in rows_of(r, "locks") if x["kind"] == 1][0]
    f = only(r, "faults")
    if policy == "nopage":              # the writer waits for the whole fault
        assert (w["acquire_ns"], w["release_ns"]) == (72_600, 73_900)
        assert f["end_ns"] == 72_600
        return
    # Attempt 0 drops the lock at 600; the writer gets it at once.
    assert (w["acquire_ns"], w["release_ns"]) == (1000, 2300)
    # Attempt 1 starts at the wake-up (70 600 + 2 000) and hits in the page cache.
    assert (f["attempts"], f["major"], f["end_ns"]) == (2, 1, 72_600 + 600 + 800)
    assert f["io_wait_ns"] == IO + 2000
    # the first attempt's CPU is wasted; its wait ran to completion (the page stays for the
    # retry): I/O wait (docs/model.md section 9)
    assert thread_times(r, 0) == {"wasted": 600, "io_wait": IO + 2000, "fault_cpu": 1400,
                                  "hit": 1}
    assert thread_times(r, 1) == {"compute": 1000, "lock_hold": 1300}
    assert r.counters["n_retries"] == 1


# -- signals --------------------------------------------------------------------------------

def test_nopage_refault_aborts_a_context_wait_and_reexecutes():
    sc = scenario([(1, 0, 0)], "context", costs=COSTS.replace(wait_ns=Fixed(10_000)),
                  signals=SignalSchedule("times", times_ns=(3000,)))
    h = 500 + 300 + 100                 # fault + driver + struct page
    r = simulate(sc, "nopage_refault")
    f = only(r, "faults")
    # Aborted at 3000; signal handled until 3900; the second attempt waits from scratch.
    second_h = 3900 + h
    assert (f["attempts"], f["major"], f["end_ns"]) == (2, 1, second_h + 10_000 + 2000)
    assert f["io_wait_ns"] == (3000 - h) + 12_000
    assert only(r, "signals") == dict(thread=0, arrival_ns=3000, delivery_ns=3000, fatal=0,
                                      aborted_wait=1)
    assert [(x["request_ns"], x["release_ns"]) for x in rows_of(r, "locks")] == [
        (0, 3000), (3900, second_h + 12_000)]
    assert thread_times(r, 0) == {"wasted": 3000, "signal": 900, "fault_cpu": h,
                                  "io_wait": 12_000, "hit": 1}

    # nopage: the wait cannot be interrupted; the signal waits for the end of the record.
    r = simulate(sc, "nopage")
    assert r.faults["end_ns"] == [h + 12_000]
    assert only(r, "signals")["delivery_ns"] == h + 12_000 + 1
    assert r.threads["end_ns"] == [h + 12_000 + 1 + 900]


def test_fatal_signal_kills_the_thread_and_drops_later_signals():
    rows = [(1, i, 0) for i in range(5)]
    sig = SignalSchedule("times", times_ns=(1000, 1100), fatal=True)
    r = simulate(scenario(rows, "anon", signals=sig), "nopage")
    end = 500 + 100 + 700 + 1           # the first record completes, then the signal kills
    assert rows_of(r, "signals") == [
        dict(thread=0, arrival_ns=1000, delivery_ns=end, fatal=1, aborted_wait=0),
        dict(thread=0, arrival_ns=1100, delivery_ns=-1, fatal=1, aborted_wait=0)]
    assert (r.threads["state"], r.threads["end_ns"], r.threads["records_done"]) == ([1], [end], [1])
    assert r.counters["n_abandoned_records"] == 4


def test_fatal_signal_during_an_interruptible_wait_kills_the_fault():
    sc = scenario([(1, 0, 0), (1, 1, 0)], "context", costs=COSTS.replace(wait_ns=Fixed(10_000)),
                  signals=SignalSchedule("times", times_ns=(5000,), fatal=True))
    r = simulate(sc, "nopage_refault")
    f = only(r, "faults")
    assert (f["outcome"], f["end_ns"], f["attempts"]) == (2, 5000, 1)
    assert r.signals["aborted_wait"] == [1] and r.signals["delivery_ns"] == [5000]
    assert thread_times(r, 0) == {"wasted": 5000}
    assert r.counters["n_abandoned_records"] == 2


def test_poisson_signal_times_come_from_stream_16_plus_thread():
    from vmlab.model.costs import Exponential
    rate = 1e5
    sc = scenario([(1, 0, 0), (2, 0, 100_000)], "anon", seed=7,
                  signals=SignalSchedule("poisson", rate_hz=rate, threads=(2,), start_ns=100))
    r = simulate(sc, "nopage")
    table = Exponential(1e9 / rate).table()
    draws = [int(table[mix(7, 16 + 1, c) >> 48]) for c in range(20)]
    arrivals = [a for a in 100 + np.cumsum(draws) if a <= r.threads["end_ns"][1]]
    assert len(arrivals) >= 3
    assert r.signals["thread"] == [1] * len(arrivals)
    assert r.signals["arrival_ns"] == arrivals


# -- eager mapping --------------------------------------------------------------------------

def test_remap_pfn_range_maps_eagerly_under_the_write_lock():
    # Thread tid 1 touches the VMA first, so it maps all 10 pages at time 0; tid 2's access at
    # time 0 faults, waits for the write lock and installs its page as nopfn would.
    rows = [(1, 3, 0), (2, 7, 0), (1, 4, 0)]
    r = simulate(scenario(rows, "device", n_pages=10), "remap_pfn_range")
    mapping = 20_000 + 10 * 60
    assert rows_of(r, "locks")[0] == dict(thread=0, asid=0, mode=1, kind=2, request_ns=0,
                                          acquire_ns=0, release_ns=mapping, downgrade_ns=-1)
    f = only(r, "faults")
    assert (f["thread"], f["lock_wait_ns"], f["end_ns"], f["major"]) == (
        1, mapping, mapping + 500 + 300, 0)
    assert r.threads["end_ns"] == [mapping + 2, mapping + 800 + 1]
    assert thread_times(r, 0) == {"lock_hold": mapping, "hit": 2}
    assert r.counters["n_ptes_end"] == 10


# -- livelock -------------------------------------------------------------------------------

def test_unbounded_retry_livelocks_under_an_fadvise_adversary():
    # Each attempt: handler 600, I/O 10 000, wake-up 2 000 = a 12 600 ns cycle; an adversary
    # every 1 000 ns hits every 2 000 ns window between I/O completion and retry.
    costs = COSTS.replace(io_ns=Fixed(10_000))
    sc = scenario([(1, 0, 0)], costs=costs, horizon_ns=100_000,
                  adversary=Adversary("periodic", period_ns=1000))
    r = simulate(sc, "fault_retry_unbounded")
    f = only(r, "faults")
    # Attempts start at 0, 12 600, ..., 88 200 (8 of them); the 8th is waiting at the horizon.
    assert (f["attempts"], f["outcome"], f["end_ns"], f["major"]) == (8, 3, -1, 1)
    assert f["io_wait_ns"] == 7 * 12_000 + (100_000 - 88_800)
    c = r.counters
    # 8 I/Os, each evicted by the adversary (the last completes at 98 800, evicted at 99 000).
    assert (c["n_io"], c["n_adversary_evictions"], c["n_wasted_io"]) == (8, 8, 8)
    assert (c["n_livelocked_threads"], c["n_unfinished_records"], c["n_retries"]) == (1, 1, 7)
    assert (r.threads["state"], r.threads["end_ns"]) == ([3], [100_000])
    # the retried attempts' CPU is wasted; their waits ran to completion: I/O wait
    assert thread_times(r, 0) == {"wasted": 7 * 600, "fault_cpu": 600,
                                  "io_wait": 7 * 12_000 + 100_000 - 88_800}

    # One retry only: the second attempt keeps the lock and the fault completes.
    r = simulate(sc, "fault_retry")
    f = only(r, "faults")
    assert (f["attempts"], f["outcome"], f["end_ns"]) == (2, 0, 12_600 + 12_600)
    assert r.counters["n_livelocked_threads"] == 0 and r.counters["n_io"] == 2


# -- invariants on random scenarios ---------------------------------------------------------

@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases())
def test_invariants_on_random_scenarios(case):
    sc, policy = case
    r = budgeted.reference(sc, policy)
    # Time breakdown: the categories split each thread's life exactly.
    for i, end in enumerate(r.threads["end_ns"]):
        assert sum(r.threads[c + "_ns"][i] for c in CATEGORIES) == end
        assert 0 <= end <= sc.horizon_ns
    # Every record is completed, abandoned (thread dead) or unfinished (horizon).
    c = r.counters
    assert (c["n_accesses"] + c["n_lock_w"] + lock_r_done(r) + c["n_abandoned_records"]
            + c["n_unfinished_records"]) == len(sc.trace)
    assert sum(r.threads["records_done"]) == c["n_accesses"] + c["n_lock_w"] + lock_r_done(r)
    for state, done, n in zip(r.threads["state"], r.threads["records_done"],
                              np.bincount(np.unique(sc.trace.tid, return_inverse=True)[1])):
        # done => every record completed (a thread with every record completed may still be
        # killed by a fatal signal delivered after its last record).
        assert state != 0 or done == n
        assert done == n or state != 0
    # Faults: unfinished iff no end; attempts >= 1; majors need an I/O or a context wait.
    for f in rows_of(r, "faults"):
        assert (f["end_ns"] == -1) == (f["outcome"] == 3)
        assert f["attempts"] >= 1 and (f["end_ns"] == -1 or f["end_ns"] >= f["start_ns"])
    # Locks: acquired after requested, released after acquired.
    for x in rows_of(r, "locks"):
        assert x["acquire_ns"] == -1 or x["acquire_ns"] >= x["request_ns"]
        assert x["release_ns"] == -1 or x["release_ns"] >= x["acquire_ns"] >= 0
    # Deterministic, and canonical() compares equal to itself.
    a, b = canonical(r), canonical(budgeted.reference(sc, policy))
    assert first_difference(a, b) is None and a == b


def test_v57_checks_signals_before_retrying():
    sc = scenario([(1, 0, 0)], signals=SignalSchedule("times", times_ns=(1000,)))
    # Attempt 0 drops the lock at 600 and wakes at 72 600 with the signal pending: back to
    # user space, delivery until 73 500, the access re-executes: attempt 1 hits at 73 500+600.
    r = simulate(sc, "fault_retry_v57")
    f = only(r, "faults")
    assert (f["attempts"], f["major"], f["end_ns"]) == (2, 1, 73_500 + 600 + 800)
    assert r.signals["delivery_ns"] == [72_600]
    # fault_retry retries in the kernel at once; the signal waits for the end of the record.
    r = simulate(sc, "fault_retry")
    assert r.faults["end_ns"] == [72_600 + 600 + 800]
    assert r.signals["delivery_ns"] == [74_001]


def test_signals_arriving_during_delivery_join_the_batch():
    # Choice documented in naive_engine: delivery loops until nothing is pending (the
    # kernel's exit-to-user loop), so the signal at 1 700 (while the first, delivered at 1 301,
    # is handled until 2 201) is delivered at 2 201, before the next record.
    sig = SignalSchedule("times", times_ns=(1000, 1700))
    r = simulate(scenario([(1, 0, 0), (1, 1, 0)], "anon", signals=sig), "nopage")
    assert r.signals["delivery_ns"] == [1301, 2201]
    assert r.faults["start_ns"] == [0, 3101]


def test_default_signal_schedules_skip_lock_w_only_threads():
    # SignalSchedule(threads=None) applies to "every thread that has access records".
    rows = [(1, 0, 0), (2, W, 0), (2, W, 3000)]
    r = simulate(scenario(rows, "anon", signals=SignalSchedule("periodic", period_ns=1000)),
                 "nopage")
    assert set(r.signals["thread"]) == {0}
    r = simulate(scenario(rows, "anon", signals=SignalSchedule("periodic", period_ns=1000,
                                                               threads=(2,))), "nopage")
    assert set(r.signals["thread"]) == {1}
