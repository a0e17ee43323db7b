"""A woken lock waiter's wake-up (``Costs.lock_wakeup_ns``, docs/model.md 15.14): a thread
granted a lock it waited for holds it from the grant and runs after the draw, in the engine
and the reference simulator alike (hand-checked times, exact)."""
from __future__ import annotations

import numpy as np
import pytest

import naive_engine
from test_lock_readers import _chain_trace, _run_both
from vmlab import Costs, simulate
from vmlab.errors import ScenarioError
from vmlab.model import Empirical, Fixed
from vmlab.trace import Op, Trace

BASE = 0x400000
PAGE = 4096
D = 2_000


@pytest.mark.parametrize("policy", ["fault_retry", "per_vma_lock"])
def test_each_woken_waiter_runs_its_wakeup_after_the_grant(policy):
    costs = Costs(mmap_cs_ns=1000, mmap_read_cs_ns=50, lock_wakeup_ns=Fixed(D))
    r = _run_both(_chain_trace(), costs, policy)
    lk = r.locks.set_index("thread")
    # the first reader is granted at once: no wake-up
    assert tuple(lk.loc[0, ["acquire_ns", "release_ns"]]) == (0, 5000)
    # the writer is granted at 5000 and runs at 7000 (its acquire_returned), holding 1 us
    assert tuple(lk.loc[1, ["request_ns", "acquire_ns", "release_ns"]]) == (100, 7000, 8000)
    # the last reader: granted at 8000, runs at 10000
    assert tuple(lk.loc[3, ["acquire_ns", "release_ns"]]) == (10_000, 10_050)
    s = r.summary
    assert s["mmap_lock_write_wait_ns"] == 6900
    if policy == "fault_retry":
        # the fault and the reader are granted together at 8000; each draws its wake-up
        assert lk.loc[2, "acquire_ns"] == 10_000
        assert s["mmap_lock_read_wait_ns"] == 9800 + 9700
    else:
        assert s["mmap_lock_read_wait_ns"] == 9700
    th = r.threads.set_index("thread")
    # the wake-up is lock wait (the thread does not run), not hold
    assert th.loc[3, "lock_wait_ns"] == 9700 and th.loc[1, "lock_wait_ns"] == 6900


def test_a_woken_reader_holds_the_lock_before_it_runs():
    """rwsem_mark_wake() grants woken readers the lock before they run: a writer that comes
    during a woken reader's wake-up waits for the reader's release."""
    t = Trace(np.array([0, 0, 0], np.uint64), op=np.array([Op.LOCK_W, Op.LOCK_R, Op.LOCK_W],
                                                           np.uint8),
              tid=np.array([0, 1, 2], np.uint32), size=np.array([0, 50, 0], np.uint64),
              gap_ns=np.array([0, 100, 2000], np.uint64))
    r = _run_both(t, Costs(mmap_cs_ns=1000, lock_wakeup_ns=Fixed(D)), "per_vma_lock")
    lk = r.locks.set_index("thread")
    assert tuple(lk.loc[0, ["acquire_ns", "release_ns"]]) == (0, 1000)
    # granted at 1000, runs at 3000, holds 50 ns
    assert tuple(lk.loc[1, ["request_ns", "acquire_ns", "release_ns"]]) == (100, 3000, 3050)
    # the writer asked at 2000 (the lock held by the reader that had not yet run): granted
    # at 3050, runs at 5050
    assert tuple(lk.loc[2, ["request_ns", "acquire_ns", "release_ns"]]) == (2000, 5050, 6050)
    # without the wake-up the reader is done before the writer asks
    r0 = _run_both(t, Costs(mmap_cs_ns=1000), "per_vma_lock").locks.set_index("thread")
    assert tuple(r0.loc[1, ["acquire_ns", "release_ns"]]) == (1000, 1050)
    assert tuple(r0.loc[2, ["acquire_ns", "release_ns"]]) == (2000, 3000)


def test_a_writer_that_waited_for_its_vmas_readers_wakes_too():
    """A writer waiting in vma_start_write() for a fault's VMA read lock runs D after the
    fault lets go: its VMA lock write wait grows by D, its release by D."""
    t = Trace(np.array([BASE, 0], np.uint64), op=np.array([Op.STORE, Op.LOCK_W], np.uint8),
              tid=np.array([0, 1], np.uint32), size=np.array([8, 0], np.uint64),
              gap_ns=np.array([0, 100], np.uint64))
    base = Costs(mmap_cs_ns=1000)
    r0 = _run_both(t, base, "per_vma_lock")
    r = _run_both(t, base.replace(lock_wakeup_ns=Fixed(D)), "per_vma_lock")
    assert r0.summary["vma_lock_write_wait_ns"] > 0
    assert r.summary["vma_lock_write_wait_ns"] == r0.summary["vma_lock_write_wait_ns"] + D
    w0, w = (x.locks.set_index("thread").loc[1] for x in (r0, r))
    # mmap_lock was granted at once (no wake-up for it), the hold ends D later
    assert w["acquire_ns"] == w0["acquire_ns"] == 100
    assert w["release_ns"] == w0["release_ns"] + D
    assert r.summary["mmap_lock_write_wait_ns"] == 0


def test_draws_are_per_wakeup_and_reproducible():
    """Each wake-up takes the next draw of its own stream: two readers granted together get
    two draws; the same seed gives the same run."""
    costs = Costs(mmap_cs_ns=1000, mmap_read_cs_ns=50,
                  lock_wakeup_ns=Empirical([1_000, 3_000, 9_000, 27_000]))
    a = _run_both(_chain_trace(), costs, "fault_retry")
    b = _run_both(_chain_trace(), costs, "fault_retry")
    assert a.locks.equals(b.locks)
    lk = a.locks.set_index("thread")
    granted_at = lk.loc[1, "release_ns"]   # the writer's release grants both
    delays = {lk.loc[th, "acquire_ns"] - granted_at for th in (2, 3)}
    assert delays <= {1_000, 3_000, 9_000, 27_000}


def test_the_default_is_no_wakeup_and_the_cost_is_checked():
    assert Costs().lock_wakeup_ns == Fixed(0)
    c = Costs(lock_wakeup_ns=500)
    assert c.lock_wakeup_ns == Fixed(500)
    assert Costs.from_dict(c.to_dict()) == c
    with pytest.raises(ScenarioError, match="lock_wakeup_ns must be a finite number"):
        Costs(lock_wakeup_ns=-1)


def test_a_costs_profile_carries_the_wakeup(tmp_path):
    """`vmlab run --costs FILE` reads it as any other distribution of a profile."""
    from vmlab.model import LogNormal

    p = tmp_path / "busy.toml"
    p.write_text('[costs]\nlock_wakeup_ns = { kind = "lognormal", median_ns = 50000, '
                 'p99_ns = 4000000 }\n')
    c = Costs.from_file(p)
    assert c.lock_wakeup_ns == LogNormal(median_ns=50_000, p99_ns=4_000_000)
    assert Costs.from_dict(c.to_dict()) == c


# -- Linux 5.3+: a release wakes every queued reader (Scenario.rwsem_wake_all_readers) -----

def _past_a_writer_trace():
    """A writer holds 1 us from 0; reader 1 asks at 100, writer 2 at 200, reader 3 at 300."""
    return Trace(np.array([0, 0, 0, 0], np.uint64),
                 op=np.array([Op.LOCK_W, Op.LOCK_R, Op.LOCK_W, Op.LOCK_R], np.uint8),
                 tid=np.array([0, 1, 2, 3], np.uint32), size=np.array([0, 50, 0, 50], np.uint64),
                 gap_ns=np.array([0, 100, 200, 300], np.uint64))


@pytest.mark.parametrize("wake", [0, D])
def test_a_writers_release_grants_every_queued_reader(wake):
    """docs/model.md section 4: with rwsem_wake_all_readers, the writer's release at 1000
    grants readers 1 and 3 together, past writer 2, which waits for both; without, reader 3
    waits behind writer 2."""
    import naive_engine
    from vmlab.model import Scenario, Vma
    from vmlab.simulation import simulate

    costs = Costs(mmap_cs_ns=1000, lock_wakeup_ns=Fixed(wake))
    out = {}
    for all_readers in (False, True):
        sc = Scenario(_past_a_writer_trace(), vmas=(Vma(BASE, BASE + 4096, backing="anon"),),
                      costs=costs, rwsem_wake_all_readers=all_readers)
        r = simulate(sc, "per_vma_lock")
        assert naive_engine.first_difference(
            naive_engine.canonical(r.raw),
            naive_engine.canonical(naive_engine.simulate(sc, "per_vma_lock"))) is None
        out[all_readers] = r.locks.set_index("thread")
    fifo, fair = out[False], out[True]
    # FIFO: reader 1 at 1000 (+wake), writer 2 after it, reader 3 after writer 2
    assert tuple(fifo.loc[1, ["acquire_ns", "release_ns"]]) == (1000 + wake, 1050 + wake)
    assert tuple(fifo.loc[2, ["acquire_ns", "release_ns"]]) == (1050 + 2 * wake, 2050 + 2 * wake)
    assert fifo.loc[3, "acquire_ns"] == 2050 + 3 * wake
    # 5.3+: readers 1 and 3 both at 1000 (+wake), writer 2 after both have left
    assert tuple(fair.loc[1, ["acquire_ns", "release_ns"]]) == (1000 + wake, 1050 + wake)
    assert tuple(fair.loc[3, ["acquire_ns", "release_ns"]]) == (1000 + wake, 1050 + wake)
    assert tuple(fair.loc[2, ["acquire_ns", "release_ns"]]) == (1050 + 2 * wake, 2050 + 2 * wake)


def test_the_wake_rule_is_checked():
    from vmlab.model import Scenario

    with pytest.raises(ScenarioError, match="rwsem_wake_all_readers must be True or False"):
        Scenario(_past_a_writer_trace(), rwsem_wake_all_readers="yes")


def test_a_sweep_sets_the_wake_rule_and_the_wakeup():
    """Every scenario field is a sweep key (the wake rule among them), costs by their names."""
    from vmlab.model import Scenario, Vma
    from vmlab.simulation import sweep

    sc = Scenario(_past_a_writer_trace(), vmas=(Vma(BASE, BASE + 4096, backing="anon"),),
                  costs=Costs(mmap_cs_ns=1000), policy="per_vma_lock")
    df = sweep(sc, {"rwsem_wake_all_readers": [False, True], "lock_wakeup_ns": [0, D]},
               n_jobs=1)
    got = df.set_index(["rwsem_wake_all_readers", "lock_wakeup_ns"])["mmap_lock_read_wait_ns"]
    # reader 1 waits 900 (+D); reader 3 behind writer 2 (FIFO: 1750, +3D) or with reader 1
    # (5.3+: 700, +D)
    assert got[(False, 0)] == 900 + 1750 and got[(True, 0)] == 900 + 700
    assert got[(False, D)] == (900 + D) + (1750 + 3 * D)
    assert got[(True, D)] == (900 + D) + (700 + D)


def test_an_munmaps_downgrade_grants_every_queued_reader_too():
    """docs/model.md 15.13 with section 4's 5.3 rule: the munmap of OTHER is granted at 0 and
    downgrades at 1000 (released at 5000); faults on ANON at 100 and 300 take mmap_lock
    (fault_retry_v57), an mprotect of OTHER at 200 sits between them.  At the downgrade the
    first fault is granted either way; the second with it under the 5.3 rule, else only after
    the mprotect (granted at 5000, 2 us)."""
    from dataclasses import replace

    import naive_engine
    from test_munmap_downgrade import COSTS
    from writer_cases import ANON, OTHER, read, rows, same, scenario, writer
    from vmlab.trace import Call

    sc = scenario([writer(1, OTHER, Call.MUNMAP), read(0, ANON, gap=100),
                   writer(2, OTHER, Call.MPROTECT, gap=200), read(3, ANON, gap=300)], COSTS)
    got = {}
    for all_readers in (False, True):
        s = replace(sc, rwsem_wake_all_readers=all_readers)
        same(s, "fault_retry_v57")
        lk = rows(naive_engine.simulate(s, "fault_retry_v57"), "locks")
        got[all_readers] = {x["thread"]: (x["request_ns"], x["acquire_ns"]) for x in lk}
    assert got[False][0] == got[True][0] == (100, 1000)
    assert got[False][2] == (200, 5000) and got[False][3] == (300, 7000)
    assert got[True][3] == (300, 1000) and got[True][2] == (200, 5000)


# -- Linux 5.x-6.x: a woken writer takes the lock itself; the free lock is stolen until its
#    hand-off (Scenario.rwsem_steal) -------------------------------------------------------

def _steal_run(trace, wake, steal=True, policy="per_vma_lock"):
    import naive_engine
    from vmlab.model import Scenario, Vma
    from vmlab.simulation import simulate

    sc = Scenario(trace, vmas=(Vma(BASE, BASE + 4096, backing="anon"),),
                  costs=Costs(mmap_cs_ns=1000, lock_wakeup_ns=Fixed(wake)), rwsem_steal=steal)
    r = simulate(sc, policy)
    assert naive_engine.first_difference(
        naive_engine.canonical(r.raw),
        naive_engine.canonical(naive_engine.simulate(sc, policy))) is None
    return r.locks.set_index("thread")


def test_a_reader_takes_the_free_lock_while_the_woken_writer_waits_for_a_cpu():
    """Writer 0 holds from 0 to 1000; writer 1 asks at 100 and is woken at 1000, running at
    3000; reader 2 comes at 1500, finds the lock free and takes it (50 ns).  Writer 1 then
    finds it free and takes it at 3000.  FIFO: writer 1 holds from 1000 (running at 3000),
    reader 2 waits for it."""
    t = Trace(np.array([0, 0, 0], np.uint64), op=np.array([Op.LOCK_W, Op.LOCK_W, Op.LOCK_R],
                                                           np.uint8),
              tid=np.array([0, 1, 2], np.uint32), size=np.array([0, 0, 50], np.uint64),
              gap_ns=np.array([0, 100, 1500], np.uint64))
    steal, fifo = _steal_run(t, D), _steal_run(t, D, steal=False)
    assert tuple(steal.loc[2, ["request_ns", "acquire_ns", "release_ns"]]) == (1500, 1500, 1550)
    assert tuple(steal.loc[1, ["request_ns", "acquire_ns", "release_ns"]]) == (100, 3000, 4000)
    assert tuple(fifo.loc[1, ["acquire_ns", "release_ns"]]) == (3000, 4000)
    assert tuple(fifo.loc[2, ["acquire_ns", "release_ns"]]) == (4000 + D, 4050 + D)


def test_a_writer_that_waited_4_ms_is_handed_the_lock():
    """Writer 0 holds from 0 to 1000; writer 1 asks at 100, is woken at 1000 and runs 5 ms
    later (5 ms wake-ups); reader 2 took the free lock at 1500 for 10 ms.  When writer 1 runs
    it finds it taken, has waited 5.0 ms and asks for the hand-off: reader 3, at 7000, may not
    take the lock past it and queues; at reader 2's release the lock is handed to writer 1,
    which runs 5 ms later; reader 3 follows it."""
    W5 = 5_000_000
    t = Trace(np.array([0, 0, 0, 0], np.uint64),
              op=np.array([Op.LOCK_W, Op.LOCK_W, Op.LOCK_R, Op.LOCK_R], np.uint8),
              tid=np.array([0, 1, 2, 3], np.uint32),
              size=np.array([0, 0, 10_000_000, 50], np.uint64),
              gap_ns=np.array([0, 100, 1500, 7000], np.uint64))
    lk = _steal_run(t, W5)
    assert tuple(lk.loc[2, ["acquire_ns", "release_ns"]]) == (1500, 10_001_500)
    assert tuple(lk.loc[1, ["request_ns", "acquire_ns", "release_ns"]]) == (
        100, 10_001_500 + W5, 10_002_500 + W5)
    assert tuple(lk.loc[3, ["request_ns", "acquire_ns"]]) == (7000, 10_002_500 + 2 * W5)
    # with reader 2 short no hand-off is needed: reader 3 too takes the free lock past the
    # woken writer (at 7000), and writer 1 takes it when it runs
    t2 = Trace(t.addr, op=t.op, tid=t.tid, size=np.array([0, 0, 50, 50], np.uint64),
               gap_ns=t.gap_ns)
    lk2 = _steal_run(t2, W5)
    assert tuple(lk2.loc[3, ["request_ns", "acquire_ns"]]) == (7000, 7000)
    assert lk2.loc[1, "acquire_ns"] == 1000 + W5


def test_a_woken_writer_runs_before_a_higher_thread_maps_again():
    """rwsem_steal at one instant (docs/model.md section 2): thread 20 maps two device VMAs
    eagerly (1 us each, from 0); thread 10's writer asks at 100.  At 1000 the first mapping
    releases and wakes the writer, which (a lower thread, at once) takes the free lock
    before thread 20's next mapping asks for it; that one waits for the writer's release."""
    import naive_engine
    from vmlab.model import Scenario, Vma
    from vmlab.simulation import simulate

    t = Trace(np.array([0, BASE + 2 * 4096], np.uint64),
              op=np.array([Op.LOCK_W, Op.LOAD], np.uint8), tid=np.array([10, 20], np.uint32),
              size=np.array([0, 8], np.uint64), gap_ns=np.array([100, 5000], np.uint64))
    vmas = (Vma(BASE, BASE + 4096, backing="device", map_thread=20),
            Vma(BASE + 4096, BASE + 3 * 4096, backing="device", map_thread=20))
    sc = Scenario(t, vmas=vmas, costs=Costs(mmap_cs_ns=500, remap_fixed_ns=1000, pte_ns=0),
                  rwsem_steal=True)
    r = simulate(sc, "remap_pfn_range")
    assert naive_engine.first_difference(
        naive_engine.canonical(r.raw),
        naive_engine.canonical(naive_engine.simulate(sc, "remap_pfn_range"))) is None
    lk = r.locks.sort_values(["thread", "request_ns"])
    got = [tuple(x) for x in lk[["thread", "request_ns", "acquire_ns", "release_ns"]].to_numpy()]
    assert got == [(0, 100, 1000, 1500), (1, 0, 0, 1000), (1, 1000, 1500, 2500)]


# -- a woken I/O or context waiter's wait for a CPU (Costs.io_wakeup_ns) --------------------

FILE = 0x7F0000000000
CTX = 0x7F0000100000
IO = 1_000_000


def _run_io(rows, costs, policy):
    """rows: (tid, op, addr, size, gap_ns) on a 4-page file VMA at FILE and a 4-page context
    VMA at CTX; both simulators, which must agree."""
    from vmlab.model import Scenario, Vma

    t = Trace(np.array([r[2] for r in rows], np.uint64), op=np.array([r[1] for r in rows],
                                                                      np.uint8),
              tid=np.array([r[0] for r in rows], np.uint32),
              size=np.array([r[3] for r in rows], np.uint64),
              gap_ns=np.array([r[4] for r in rows], np.uint64))
    sc = Scenario(t, vmas=(Vma(FILE, FILE + 4 * PAGE, "file"),
                           Vma(CTX, CTX + 4 * PAGE, "context")), costs=costs)
    r = simulate(sc, policy)
    ref = naive_engine.simulate(sc, policy)
    assert naive_engine.first_difference(naive_engine.canonical(r.raw),
                                         naive_engine.canonical(ref)) is None
    return r


def _with_and_without(rows, policy, delay=D, **costs):
    base = Costs(io_ns=Fixed(IO), wait_ns=Fixed(IO), mmap_cs_ns=1000, **costs)
    return (_run_io(rows, base, policy),
            _run_io(rows, base.replace(io_wakeup_ns=Fixed(delay)), policy))


def test_a_nopage_fault_holds_mmap_lock_through_its_wait_for_a_cpu():
    """nopage holds mmap_lock across the read: the wait for a CPU after it lengthens the hold
    by D, and a writer that asked meanwhile waits D longer."""
    rows = [(0, Op.LOAD, FILE, 8, 0), (1, Op.LOCK_W, 0, 0, 100)]
    r0, r = _with_and_without(rows, "nopage")
    f0, f = r0.faults.iloc[0], r.faults.iloc[0]
    assert f["end_ns"] == f0["end_ns"] + D and f["io_wait_ns"] == f0["io_wait_ns"] + D
    l0, lk = (x.locks.set_index("thread") for x in (r0, r))
    assert lk.loc[0, "release_ns"] == l0.loc[0, "release_ns"] + D
    assert lk.loc[1, "acquire_ns"] == l0.loc[1, "acquire_ns"] + D > IO
    assert r.summary["mmap_lock_write_wait_ns"] == r0.summary["mmap_lock_write_wait_ns"] + D


def test_per_vma_no_retry_holds_the_vma_lock_through_it_and_a_writer_of_the_vma_waits():
    rows = [(0, Op.LOAD, FILE, 8, 0), (1, Op.LOCK_W, FILE, PAGE, 100)]
    r0, r = _with_and_without(rows, "per_vma_no_retry")
    assert r.faults.iloc[0]["end_ns"] == r0.faults.iloc[0]["end_ns"] + D
    assert r.summary["vma_lock_write_wait_ns"] == r0.summary["vma_lock_write_wait_ns"] + D > IO
    assert r.summary["n_mmap_lock_read"] == 0


def test_per_vma_lock_waits_for_a_cpu_holding_nothing():
    """per_vma_lock drops its VMA lock to wait: the wait for a CPU delays its retry under
    mmap_lock by D, and a writer of that VMA is not delayed."""
    rows = [(0, Op.LOAD, FILE, 8, 0), (1, Op.LOCK_W, FILE, PAGE, 100)]
    r0, r = _with_and_without(rows, "per_vma_lock")
    assert r.faults.iloc[0]["end_ns"] == r0.faults.iloc[0]["end_ns"] + D
    l0, lk = (x.locks for x in (r0, r))
    retry0 = l0[(l0["thread"] == 0) & (l0["kind"] == "fault")]["request_ns"].max()
    retry = lk[(lk["thread"] == 0) & (lk["kind"] == "fault")]["request_ns"].max()
    assert retry == retry0 + D
    w0, w = (x[x["thread"] == 1].iloc[0] for x in (l0, lk))
    assert (w["acquire_ns"], w["release_ns"]) == (w0["acquire_ns"], w0["release_ns"])


def test_a_context_wait_is_followed_by_the_wait_for_a_cpu_too():
    rows = [(0, Op.LOAD, CTX, 8, 0)]
    r0, r = _with_and_without(rows, "nopage")
    assert r.faults.iloc[0]["end_ns"] == r0.faults.iloc[0]["end_ns"] + D
    assert r.faults.iloc[0]["major"]


def test_each_thread_draws_its_io_wakeups_from_its_own_stream():
    """Two threads asleep on one read wake at its completion and draw one delay each, from
    streams of their own: the same run whatever order the wake-ups are made in, and a
    thread's draws do not depend on the other threads'."""
    delays = [1_000, 3_000, 9_000, 27_000]
    costs = Costs(io_ns=Fixed(IO), io_wakeup_ns=Empirical(delays))
    rows = [(0, Op.LOAD, FILE, 8, 0), (1, Op.LOAD, FILE, 8, 10)]
    a = _run_io(rows, costs, "nopage")
    assert a.faults.equals(_run_io(rows, costs, "nopage").faults)
    done = IO + a.faults["start_ns"].min()
    lo = Costs().wakeup_ns
    waits = sorted(int(e) for e in a.faults["end_ns"])
    assert all(any(lo + d <= e - done <= lo + d + 10_000 for d in delays) for e in waits)
    # thread 0 alone draws what it drew beside thread 1
    alone = _run_io(rows[:1], costs, "nopage")
    assert alone.faults.iloc[0]["end_ns"] == a.faults.iloc[0]["end_ns"]


def test_the_io_wakeup_default_and_profile():
    assert Costs().io_wakeup_ns == Fixed(0)
    c = Costs(io_wakeup_ns=500)
    assert c.io_wakeup_ns == Fixed(500) and Costs.from_dict(c.to_dict()) == c
    with pytest.raises(ScenarioError, match="io_wakeup_ns must be a finite number"):
        Costs(io_wakeup_ns=-1)
