"""Runs of the engine and the reference simulator under one event budget, for the tests that
replay random scenarios.

Hypothesis can draw a runaway case (a 1 ns retry livelock under a fast adversary, a signal
storm): the engine stops at its default budget (about 2*10^7 events), the reference, which
has none by default, runs to the horizon (a fuzzing run saw 20 M events and 8.5 GB).  Each
function here runs one simulator with :data:`EVENT_BUDGET` and returns its result when the
run did not reach it.  A run that did reach it is no test of anything: its books close at a
point each simulator picks by its own count of events (docs/model.md 9), so in a hypothesis
test the case is rejected (``hypothesis.reject``), and a hand-written scenario fails.
"""
from __future__ import annotations

import pytest
from hypothesis import currently_in_test_context, reject

import vmlab
import vmlab.engine
from naive_engine import NaiveSimulator

#: Far above what a generated case needs (a few events a record), far below a runaway's.
EVENT_BUDGET = 1_000_000


def _within_budget(reached, who):
    """Reject the hypothesis case (fail a hand-written test) whose run reached the budget."""
    if not reached:
        return
    if currently_in_test_context():
        reject()
    pytest.fail(f"{who} reached the event budget of {EVENT_BUDGET} events: a hand-written "
                f"scenario must stay below it", pytrace=False)


def reference_run(scenario, policy=None):
    """The reference simulator after its run under the budget, and the run's result (for
    tests that read the simulator's own state)."""
    sim = NaiveSimulator(scenario, policy, EVENT_BUDGET)
    result = sim.run()
    _within_budget(sim.stopped_by_budget, "the reference simulator")
    return sim, result


def reference(scenario, policy=None):
    """``naive_engine.simulate`` under the budget."""
    return reference_run(scenario, policy)[1]


def engine(scenario, policy=None, **kw):
    """``vmlab.engine.run`` under the budget (``kw``: its other arguments, e.g. fast_path)."""
    result = vmlab.engine.run(scenario, policy, event_budget=EVENT_BUDGET, **kw)
    _within_budget(result.counters["stopped_by_event_budget"], "the engine")
    return result


def simulate(scenario, policy=None, **kw):
    """``vmlab.simulate`` (a Result) under the budget."""
    result = vmlab.simulate(scenario, policy, event_budget=EVENT_BUDGET, **kw)
    _within_budget(result.counters["stopped_by_event_budget"], "the engine")
    return result
