"""The kernel's fast path changes speed, never records.

The fast path runs a thread's steps inline (runs of hits and uncontended faults, I/O
completions and record ends) while nothing else can happen first.  With it off
(``run(..., fast_path=False)``) every step goes through the event loop.  For the same
hypothesis scenarios as the reference agreement test, both must give identical faults,
signals, lock requests, threads and counters.  Which faults may take the fast path is
decided by ``vmlab.engine.fastpath.fast_path_eligibility`` alone; the tests below use it to
make sure the generated cases do reach the fast path.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budgeted
from naive_engine import canonical, first_difference
from scenario_strategies import cases, lock_cases, on_a_grid
from vmlab.engine import codes as C
from vmlab.engine import fast_path_eligibility
from vmlab.engine.fastpath import KNOB_EFFECT, knob_row
from vmlab.model import Costs, Fixed, Scenario, Vma
from vmlab.trace import Trace

N_EXAMPLES = int(os.environ.get("VMLAB_FAST_PATH_EXAMPLES", "100"))


def _pair(scenario, policy):
    """The runs with the fast path on and off, under tests/budgeted.py's budget: the two
    count their events apart, so a case that reaches it in either is rejected."""
    on = budgeted.engine(scenario, policy)
    off = budgeted.engine(scenario, policy, fast_path=False)
    return on, off


def _eligible_vmas(scenario, policy):
    """The VMAs of ``scenario`` whose faults the fast path may run."""
    pol, vmas, vma_pols = scenario.validate(policy)
    out = []
    for v, p in zip(vmas, vma_pols):
        c = scenario.costs
        cls, _ = fast_path_eligibility(C.BACKING_CODES[v.backing], knob_row(p),
                                       int(scenario.fault_around_pages),
                                       bool(c.vma_lookup_ns or c.mmap_lock_line_ns
                                            or c.vma_lock_line_ns),
                                       scenario.workingset and scenario.replacement == "twolist",
                                       c.io_wakeup_ns.table().max() > 0)
        if cls != C.FP_GENERAL:
            out.append(v)
    return out


@settings(max_examples=N_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(cases())
def test_fast_path_on_and_off_give_identical_records(case):
    scenario, policy = case
    on, off = _pair(scenario, policy)
    diff = first_difference(canonical(on), canonical(off))
    assert diff is None, f"fast path on vs off:\n{diff}"
    # the same series too, and the fast path took no more events than the event loop
    for k in ("faults", "retries", "ios"):
        assert np.array_equal(on.series[k], off.series[k])
    assert on.counters["n_events"] <= off.counters["n_events"]


@settings(max_examples=N_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(lock_cases())
def test_fast_path_on_and_off_agree_with_lock_designs(case):
    """The lock designs and costs of docs/model.md 15 keep their faults off the fast path;
    the inline steps of the rest must not change a record."""
    scenario, policy = case
    on, off = _pair(scenario, policy)
    diff = first_difference(canonical(on), canonical(off))
    assert diff is None, f"fast path on vs off:\n{diff}"


@settings(max_examples=N_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(on_a_grid(st.one_of(cases(), lock_cases())))
def test_fast_path_on_and_off_agree_with_every_time_on_a_grid(case):
    """Where every event falls on a grid, the fast path's "nothing else happens before"
    meets equal keys all the time: the inline steps must still not change a record."""
    scenario, policy = case
    on, off = _pair(scenario, policy)
    diff = first_difference(canonical(on), canonical(off))
    assert diff is None, f"fast path on vs off:\n{diff}"


@pytest.mark.nojit
def test_every_knob_is_classified_for_the_fast_path():
    """A new policy knob must say what it means for the fast path (vmlab/engine/fastpath.py)."""
    assert sorted(KNOB_EFFECT) == list(range(C.K_NCOL))


@pytest.mark.nojit
def test_fast_path_runs_eligible_faults_and_takes_fewer_events():
    """One thread faulting on eligible VMAs of every class: the fast path is used (far fewer
    loop events) and the records are the same."""
    base, page = 0x400000, 4096
    vmas = [Vma(base, base + 64 * page, "file"), Vma(base + 64 * page, base + 96 * page, "anon"),
            Vma(base + 96 * page, base + 128 * page, "context")]
    rng = np.random.default_rng(3)
    addr = base + rng.integers(0, 128, 2_000).astype(np.uint64) * page
    sc = Scenario(Trace(addr.astype(np.uint64)), vmas=vmas, memory_pages=16,
                  costs=Costs(io_ns=Fixed(5_000), wait_ns=Fixed(3_000)))
    assert len(_eligible_vmas(sc, "nopage")) == 3
    on, off = _pair(sc, "nopage")
    assert first_difference(canonical(on), canonical(off)) is None
    assert on.counters["n_faults"] > 100
    assert on.counters["n_events"] * 10 < off.counters["n_events"]
