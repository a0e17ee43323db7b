"""Retries and livelock as docs/model.md section 13 defines them (issue 9 item 8), in the
engine and the reference alike: a retry is an attempt that ended in a retry, counted also when
no attempt follows it; the records, the summary and the series count the same attempts; a
thread is livelocked at the horizon only if it could still retry.

Costs are vmlab's defaults with a fixed I/O of 10 000 ns: an attempt on a file page is
handler 600 (fault 500 + struct page 100), I/O 10 000 and wake-up 2 000, so a lock-dropping
attempt ends in a retry at 12 600 after it began.
"""
import numpy as np
import pytest

import vmlab
from naive_engine import simulate as reference
from vmlab import Adversary, Costs, Fixed, Scenario, SignalSchedule, Trace, Vma

PAGE = 4096
BASE = 0x400 * PAGE
COSTS = Costs(io_ns=Fixed(10_000))


def one_read(**kw):
    tr = Trace(addr=np.array([BASE + 8], np.uint64), op=np.zeros(1, np.uint8),
               tid=np.zeros(1, np.uint32))
    return Scenario(tr, vmas=[Vma(BASE, BASE + 4 * PAGE)], costs=COSTS, **kw)


def both(sc, policy):
    """(engine result, reference result) for one run."""
    return vmlab.simulate(sc, policy), reference(sc, policy)


def test_a_retry_that_no_attempt_follows_is_counted():
    # fault_retry_v57 drops the lock on attempt 0 and checks signals before retrying: a fatal
    # signal that arrived during the I/O ends the thread at the retry, 12 600.  One attempt,
    # one retry (attempts - 1 would say 0).
    sc = one_read(signals=[SignalSchedule("times", times_ns=(5_000,), fatal=True)])
    eng, ref = both(sc, "fault_retry_v57")
    assert ref.faults["attempts"] == [1] and ref.faults["retries"] == [1]
    assert ref.faults["end_ns"] == [12_600] and ref.counters["n_retries"] == 1
    f = eng.faults
    assert (f["attempts"].tolist(), f["retries"].tolist(), f["end_ns"].tolist()) == ([1], [1], [12_600])
    assert eng.summary["n_retries"] == 1 == int(eng.series["retries"].sum())


def test_a_thread_in_its_last_allowed_attempt_is_not_livelocked():
    # fault_retry (max_retries 1) under an adversary that evicts every page it can, every
    # 1 000 ns: attempt 0 drops the lock and ends in a retry at 12 600 (its page evicted
    # meanwhile); attempt 1 keeps the lock and waits for its I/O until 25 200.  A horizon at
    # 20 000 catches attempt 1, which cannot retry: unfinished, not livelocked.
    sc = one_read(horizon_ns=20_000, adversary=Adversary("periodic", period_ns=1_000))
    eng, ref = both(sc, "fault_retry")
    assert (ref.faults["attempts"], ref.faults["retries"], ref.faults["outcome"]) == ([2], [1], [3])
    assert ref.counters["n_livelocked_threads"] == 0 and ref.counters["n_unfinished_records"] == 1
    assert eng.faults["retries"].tolist() == [1] and eng.faults["attempts"].tolist() == [2]
    assert eng.summary["n_livelocked_threads"] == 0 and not eng.summary["livelock"]
    # the same run with unbounded retries could retry again: livelocked
    eng, ref = both(sc, "fault_retry_unbounded")
    assert ref.counters["n_livelocked_threads"] == 1
    assert eng.summary["n_livelocked_threads"] == 1 and eng.summary["livelock"]


@pytest.mark.parametrize("policy", ["fault_retry_v57", "fault_retry_unbounded", "nopage_refault"])
def test_records_summary_and_series_count_the_same_retries(policy):
    # four threads on two pages, periodic signals and an adversary: retries of every kind
    # (dropped locks, aborted waits, re-executions that find the page mapped)
    n = 40
    rng = np.random.default_rng(7)
    tr = Trace(addr=(BASE + PAGE * rng.integers(0, 2, n)).astype(np.uint64),
               op=np.zeros(n, np.uint8), tid=rng.integers(0, 4, n).astype(np.uint32),
               gap_ns=rng.integers(0, 5_000, n).astype(np.uint64))
    sc = Scenario(tr, vmas=[Vma(BASE, BASE + 4 * PAGE)], costs=COSTS, horizon_ns=400_000,
                  signals=[SignalSchedule("periodic", period_ns=3_000)],
                  adversary=Adversary("periodic", period_ns=1_500))
    eng, ref = both(sc, policy)
    assert sum(ref.faults["retries"]) == ref.counters["n_retries"] > 0
    assert eng.summary["n_retries"] == ref.counters["n_retries"]
    assert int(eng.faults["retries"].sum()) == eng.summary["n_retries"] == int(eng.series["retries"].sum())
    f = eng.faults
    assert ((f["retries"] >= f["attempts"] - 1) & (f["retries"] <= f["attempts"])).all()
