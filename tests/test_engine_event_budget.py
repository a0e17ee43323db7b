"""Every run ends in bounded wall time: the event budget (issue 13, item 4).

A run that takes more events than its budget stops at the time of the event that exceeded
it; its books are closed there as at the horizon (unfinished records, faults in progress
``unfinished``), and it reports ``livelock`` with ``livelock_reason == "event_budget"``.
The default budget (``vmlab.engine.default_event_budget``) is far above what a legitimate
replay takes and stops a runaway one after seconds.
"""
from __future__ import annotations

import numpy as np
import pytest

import vmlab
from naive_engine import simulate as reference
from vmlab.engine import codes as C
from vmlab.engine import default_event_budget, prepare, run
from vmlab.errors import ScenarioError
from vmlab.results import Result

PAGE = 4096
BASE = 0x400000


def storm(n=300, horizon_ns=None):
    """The issue's reproduction: 300 accesses, a 1e9 Hz Poisson signal storm."""
    addr = (BASE + (np.arange(n) % 16) * PAGE).astype(np.uint64)
    kw = {} if horizon_ns is None else {"horizon_ns": horizon_ns}
    return vmlab.Scenario(vmlab.Trace(addr), vmas=[vmlab.Vma(BASE, BASE + 16 * PAGE, "anon")],
                          signals=[vmlab.poisson_signals(1e9)], **kw)


def _books_balance(threads):
    cats = sum(np.asarray(threads[name]) for name in C.CATEGORY_NAMES)
    assert np.array_equal(cats, np.asarray(threads["end_ns"]))


def test_signal_storm_stops_at_the_budget_and_reports_livelock():
    sc = storm()
    raw = run(sc, "nopage", event_budget=100_000)
    res = Result(raw, sc)
    s = res.summary
    assert s["livelock"] and s["livelock_reason"] == "event_budget"
    assert s["n_unfinished_records"] > 0
    assert s["n_events"] == 100_000
    # stopped long before the hour: the books close at the stop, nothing lost
    end = np.asarray(raw.threads["end_ns"])
    assert 0 < end.max() < sc.horizon_ns
    assert (np.asarray(raw.threads["state"]) == C.ST_UNFINISHED).all()
    _books_balance(raw.threads)


def test_the_budget_is_on_by_default():
    """Every run gets the default budget unless told otherwise (running the storm to it takes
    seconds: benchmarks/bench_engine.py measures it)."""
    sc = storm(n=20)
    assert prepare(sc, "nopage").inputs.event_budget == default_event_budget(20, 1)
    assert prepare(sc, "nopage", event_budget=-1).inputs.event_budget == -1
    assert default_event_budget(10**9, 1) > 60 * 10**9


def test_no_budget_runs_to_the_horizon():
    sc = storm(horizon_ns=200_000)
    raw = run(sc, "nopage", event_budget=-1)
    res = Result(raw, sc)
    assert raw.counters["stopped_by_event_budget"] == 0
    assert (np.asarray(raw.threads["end_ns"]) == 200_000).all()
    assert res.summary["livelock_reason"] == ""
    _books_balance(raw.threads)


def test_legitimate_run_is_far_below_its_budget():
    tr = vmlab.trace.synth.zipf(20_000, 2_000, alpha=1.0, seed=1)
    sc = vmlab.Scenario(tr, backing="file", memory_pages=200,
                        signals=[vmlab.poisson_signals(1000)])
    res = vmlab.simulate(sc, "fault_retry")
    assert not res.summary["livelock"] and res.summary["n_unfinished_records"] == 0
    assert res.summary["n_events"] * 100 < default_event_budget(len(tr), 1)


def test_reference_stops_at_its_budget_the_same_way():
    sc = storm(n=40)
    ref = reference(sc, "nopage", event_budget=5_000)
    assert ref.counters["n_unfinished_records"] > 0
    end = ref.threads["end_ns"][0]
    assert 0 < end < sc.horizon_ns
    cats = sum(ref.threads[name][0] for name in C.CATEGORY_NAMES)
    assert cats == end


@pytest.mark.parametrize("bad", [-2, 1.5, True, "10", float("nan")])
def test_bad_budget_is_refused(bad):
    with pytest.raises(ScenarioError, match="event_budget"):
        run(storm(n=4), "nopage", event_budget=bad)


def test_the_front_door_takes_the_budget():
    """``vmlab.simulate(..., event_budget=N)`` reaches the engine, exact and sampled alike."""
    s = vmlab.simulate(storm(), "nopage", event_budget=50_000).summary
    assert s["livelock_reason"] == "event_budget" and s["n_events"] == 50_000
    with pytest.raises(ScenarioError, match="event_budget"):
        vmlab.simulate(storm(), "nopage", event_budget=-5)


def test_the_random_scenario_tests_reject_a_run_that_reaches_their_budget(monkeypatch):
    """tests/budgeted.py, the runs of the tests that replay hypothesis scenarios: a run that
    reaches the budget is a rejected case inside a hypothesis test, a failure outside one;
    a run below it is returned."""
    import budgeted
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    monkeypatch.setattr(budgeted, "EVENT_BUDGET", 1_000)
    runs = (budgeted.reference, budgeted.engine, budgeted.simulate)
    for sim in runs:
        with pytest.raises(pytest.fail.Exception, match="reached the event budget of 1000"):
            sim(storm(n=40), "nopage")
        calm = storm(n=40).replace(signals=())
        assert sim(calm, "nopage").counters["n_unfinished_records"] == 0

    @settings(max_examples=3, database=None)
    @given(st.sampled_from(runs))
    def every_case_runs_away(sim):
        sim(storm(n=40), "nopage")

    with pytest.raises(Unsatisfiable):
        every_case_runs_away()
