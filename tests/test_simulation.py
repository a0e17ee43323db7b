"""The front door (vmlab.simulation): many runs at once, in order, refused before any runs."""
import pandas as pd
import pytest

import vmlab
from vmlab import Costs, Fixed, Scenario, ScenarioError, Vma, compare, simulate, simulate_many
from vmlab.trace import synth


def _scenario(**fields):
    tr = synth.random_reads_with_mmap_loop(n_reads=10, pages=256, n_lock_ops=50, seed=3)
    return Scenario(tr, backing="file", costs=Costs(io_ns=Fixed(100_000)), **fields)


def test_simulate_many_keeps_order_and_matches_simulate():
    sc = _scenario()
    runs = [(sc, "nopage"), (sc.replace(memory_pages=40), "fault_retry"), (sc, None)]
    for n_jobs in (1, 2):
        got = simulate_many(runs, n_jobs=n_jobs)
        for (s, p), r in zip(runs, got):
            want = simulate(s, p)
            assert r.policy_name == want.policy_name
            assert r.counters == want.counters
            pd.testing.assert_frame_equal(r.faults, want.faults)
    assert simulate_many(runs, keep=lambda r: r.summary["n_faults"], n_jobs=2) == \
        [simulate(s, p).summary["n_faults"] for s, p in runs]


def test_simulate_many_refuses_before_running_anything():
    ran = []
    sc = _scenario()
    with pytest.raises(ScenarioError, match="too small"):
        simulate_many([(sc, "nopage"), (sc.replace(memory_pages=2), "nopage")],
                      keep=ran.append, n_jobs=1)
    assert ran == []


@pytest.mark.parametrize("runs, message", [
    (lambda sc: [sc, None], "runs must be (scenario, policy) pairs; item 0 is Scenario"),
    (lambda sc: [(sc, "nopage"), (sc, "nopage", 2)],
     "runs must be (scenario, policy) pairs; item 1 is tuple of length 3"),
    (lambda sc: [("nopage", sc)], "runs must be (scenario, policy) pairs; item 0 is a pair whose "
                                  "first element is str, not a Scenario"),
])
def test_simulate_many_names_the_item_that_is_no_pair(runs, message):
    with pytest.raises(ScenarioError) as e:
        simulate_many(runs(_scenario()))
    assert str(e.value) == message


def test_a_single_vma_is_taken_as_a_list():
    sc = _scenario()
    vma = Vma(0x7F0000000000, 0x7F0000000000 + 4096, "file")
    assert Scenario(sc.trace, vmas=vma).vmas == (vma,)
    with pytest.raises(ScenarioError, match="^vmas must be a list of Vma objects, got int$"):
        Scenario(sc.trace, vmas=5)


def test_compare_results_are_the_rows():
    sc = _scenario()
    table, results = compare(sc, ["nopage", "fault_retry"], results=True, n_jobs=2)
    assert list(results) == list(table["policy"]) == ["nopage", "fault_retry"]
    pd.testing.assert_frame_equal(table, pd.DataFrame([r.summary for r in results.values()]))
    pd.testing.assert_frame_equal(compare(sc, ["nopage", "fault_retry"], n_jobs=1)
                                  .drop(columns=["prepare_s", "kernel_s"]),
                                  table.drop(columns=["prepare_s", "kernel_s"]))


def test_compare_refuses_two_policies_of_one_name():
    sc = _scenario()
    mine = vmlab.get_policy("fault_retry").replace(name="nopage")
    with pytest.raises(ScenarioError, match="nopage more than once"):
        compare(sc, ["nopage", mine])


def test_compare_takes_one_policy_and_refuses_none():
    sc = _scenario()
    one = compare(sc, "nopage", n_jobs=1)     # a name alone is one policy, not its letters
    assert list(one["policy"]) == ["nopage"]
    with pytest.raises(ScenarioError, match="no policy to run"):
        compare(sc, [])


def test_sweep_grid_values_are_lists():
    sc = _scenario()
    for grid, msg in (({"memory_pages": 50}, r"grid\['memory_pages'\] must be a list of "
                                              r"values, got 50 \(int\); for one fixed value "
                                              r"write \[50\]"),
                      ({"policy": "nopage"}, r"grid\['policy'\] must be a list"),
                      ({"memory_pages": []}, r"grid\['memory_pages'\] has no values"),
                      ([("memory_pages", [50])], "grid must be a dict")):
        with pytest.raises(ScenarioError, match=msg):
            vmlab.sweep(sc, grid, show_progress=False)
    rows = vmlab.sweep(sc, {"memory_pages": range(40, 60, 10)}, show_progress=False)
    assert list(rows["memory_pages"]) == [40, 50]       # any iterable of values


def test_front_door_examples_run():
    """The Examples of simulate, simulate_many, compare and sweep run as printed."""
    import doctest

    import vmlab.simulation as front

    for fn in (front.simulate, front.simulate_many, front.compare, front.sweep):
        assert "Examples\n    --------\n    >>> " in fn.__doc__, fn.__name__
    res = doctest.testmod(front, optionflags=doctest.NORMALIZE_WHITESPACE, report=True)
    assert res.failed == 0 and res.attempted >= 4 * 6
