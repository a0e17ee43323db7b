"""vmlab.studies.dos: the fadvise adversary's eviction probability in the retry window, and
which retry policies livelock."""
import math

import numpy as np
import pytest

from vmlab import Costs, Fixed, ScenarioError, Uniform, simulate
from vmlab.studies import dos


def test_dos_retry_once_without_adversary():
    r = simulate(dos.fadvise_attack(0, 50_000, n_faults=20), "fault_retry")
    assert r.summary["retries_per_fault"] == 1.0 and r.summary["n_adversary_evictions"] == 0


def test_dos_eviction_probability_in_retry_window():
    # The window from I/O completion to the retry's lookup is wakeup_ns + fault_ns +
    # struct_page_ns = 2.6 µs; a Poisson adversary at rate l evicts with p = 1 - exp(-l w),
    # and an unbounded retry then needs 1 + p / (1 - p) retries per fault (geometric).
    rate = 100_000
    r = simulate(dos.fadvise_attack(rate, 10_000, n_faults=3_000), "fault_retry_unbounded")
    p = 1 - math.exp(-rate * 2_600e-9)
    assert r.summary["retries_per_fault"] == pytest.approx(1 + p / (1 - p), abs=0.04)


def test_grid_livelock_only_unbounded():
    df = dos.grid([3_000_000], [100_000], n_faults=5, n_jobs=1).set_index("policy")
    assert df.loc["fault_retry_unbounded", "livelock"]
    assert not df.loc["fault_retry", "livelock"] and not df.loc["fault_retry_v57", "livelock"]
    assert df.loc["fault_retry", "slowdown"] <= 2.0
    assert df.loc["fault_retry", "retries_per_fault"] == 1.0
    assert df.loc["fault_retry_unbounded", "slowdown"] == pytest.approx(20, rel=0.01)
    assert not df.loc["fault_retry_unbounded", "finished"]
    assert list(df.columns[:4]) == ["adversary_rate_hz", "io_ns", "signal_rate_hz", "elapsed_ns"]


def test_dos_signal_storm_livelocks_v57_not_fault_retry():
    df = dos.grid([1_000_000], [1_000_000], signal_rate_hz=10_000, n_faults=5,
                    policies=("fault_retry", "fault_retry_v57"), n_jobs=1).set_index("policy")
    assert df.loc["fault_retry_v57", "livelock"] and not df.loc["fault_retry", "livelock"]


def test_dos_periodic_and_victims():
    sc = dos.fadvise_attack(1_000_000, 10_000, kind="periodic", n_faults=4, n_victims=3)
    assert sc.adversary.kind == "periodic" and sc.adversary.period_ns == 1_000
    assert sc.trace.n_threads == 3 and len(sc.trace) == 12
    with pytest.raises(ScenarioError):
        dos.fadvise_attack(1, 1, kind="bursty")


# -- the formulas the notebook's prose states ------------------------------------------------

def test_retry_window_and_eviction_probability():
    c = Costs()
    assert dos.retry_window_ns(c) == c.wakeup_ns + c.fault_ns + c.struct_page_ns == 2_600
    assert dos.eviction_probability(0) == 0.0
    assert dos.eviction_probability(100_000) == pytest.approx(1 - math.exp(-0.26), rel=1e-12)


@pytest.mark.parametrize("rate", [1_000, 10_000, 100_000, 1_000_000, 3_000_000])
def test_unbounded_retries_formula_counts_the_retry_every_fault_makes(rate):
    # one retry by design, then a geometric count of lost pages: 1 + p / (1 - p), never
    # p / (1 - p) alone (which gave 0.30 at 100 kHz against the measured 1.3)
    p = dos.eviction_probability(rate)
    assert dos.unbounded_retries_per_fault(rate) == pytest.approx(1 + p / (1 - p), rel=1e-12)
    assert dos.unbounded_retries_per_fault(rate) == pytest.approx(math.exp(rate * 2.6e-6),
                                                                   rel=1e-9)
    assert dos.unbounded_retries_sd(rate) == pytest.approx(math.sqrt(p) / (1 - p), rel=1e-12)
    assert dos.unbounded_retries_per_fault(0) == 1.0


def test_unbounded_retries_formula_matches_the_simulation_at_every_rate():
    # the notebook's grid: each finished rate within 3 standard errors of 1 + p / (1 - p); a
    # rate whose runs are cut by the horizon only gives a lower bound
    rates = [1_000, 10_000, 100_000, 1_000_000, 3_000_000]
    g = dos.grid(rates, [70_000, 1_000_000, 8_000_000], n_faults=10,
                 policies=("fault_retry_unbounded",))
    a = dos.retries_agreement(g)
    assert list(a.index) == [float(r) for r in rates]
    assert a.loc[[1_000, 10_000, 100_000, 1_000_000], "agrees"].all()
    assert a.loc[100_000, "measured"] == pytest.approx(1.3, abs=0.05)  # not p/(1-p) = 0.30
    assert a.loc[1_000_000, "measured"] == pytest.approx(13.5, abs=0.2)
    cut = a.loc[3_000_000]
    assert not cut["finished"] and not cut["agrees"] and cut["measured"] < cut["predicted"]


def test_retries_agreement_on_a_larger_sample():
    # 600 faults at 100 kHz: the mean is within 3 standard errors (about 0.08) of 1.297
    g = dos.grid([100_000], [10_000], n_faults=600, policies=("fault_retry_unbounded",),
                 n_jobs=1)
    a = dos.retries_agreement(g).loc[100_000]
    assert a["finished"] and a["n_faults"] == 600 and abs(a["z"]) <= 3


@pytest.mark.parametrize("io_ns", [70_000, 1_000_000, 8_000_000])
def test_bounded_retry_max_slowdown_is_exact_and_below_two(io_ns):
    c = Costs()
    bound = dos.bounded_retry_max_slowdown(io_ns)
    f = c.fault_ns + c.struct_page_ns
    per_fault = 1_000 + c.access_ns + 2 * f + io_ns + c.wakeup_ns + c.pagecache_hit_ns
    assert bound == pytest.approx(2 - (1_000 + c.access_ns + 2 * f + 2 * c.pagecache_hit_ns)
                                  / per_fault, rel=1e-12)
    assert bound < 2
    # a periodic adversary faster than the window evicts every page once: the bound is reached
    base = simulate(dos.fadvise_attack(0, io_ns, n_faults=10), "fault_retry")
    hit = simulate(dos.fadvise_attack(2_000_000, io_ns, kind="periodic", n_faults=10),
                   "fault_retry")
    assert hit.summary["n_adversary_evictions"] == 10
    assert hit.summary["elapsed_ns"] / base.summary["elapsed_ns"] == pytest.approx(bound,
                                                                                  rel=1e-12)


def test_grid_slowdown_net_of_signals_within_the_bound():
    # the notebook's storm point: with Poisson signals the whole-run slowdown of fault_retry
    # can pass the bound (2.011 at seed 0: 2,784 signals against 1,356), net of the handling
    # it is exactly the bound
    df = dos.grid([1_000_000], [1_000_000], signal_rate_hz=100_000, n_faults=10,
                  policies=("fault_retry",), n_jobs=1).iloc[0]
    assert df["fault_retry_bound"] == pytest.approx(dos.bounded_retry_max_slowdown(1_000_000))
    assert df["slowdown_net_of_signals"] == pytest.approx(df["fault_retry_bound"], rel=1e-12)
    assert df["signal_handling_ns"] == df["n_signals"] * Costs().signal_ns
    assert df["baseline_signal_handling_ns"] == df["baseline_n_signals"] * Costs().signal_ns
    assert df["slowdown"] > 2 > df["slowdown_net_of_signals"]
    assert df["n_signals"] > 2 * df["baseline_n_signals"]


def test_grid_without_signals_net_slowdown_is_the_slowdown():
    df = dos.grid([100_000, 1_000_000], [70_000], n_faults=10, n_jobs=1)
    assert (df["slowdown_net_of_signals"] == df["slowdown"]).all()
    assert (df["n_signals"] == 0).all() and (df["signal_handling_ns"] == 0).all()
    bounded = df[df["policy"] != "fault_retry_unbounded"]
    assert (bounded["slowdown"] <= bounded["fault_retry_bound"] * (1 + 1e-12)).all()


def test_the_closed_forms_count_the_wake_up_after_a_read():
    # a busy machine's wake-up after a read (io_wakeup_ns, docs/model.md 15.14) widens the
    # window and lengthens both reads (once left out: 1.30 retries predicted, 9.7 measured)
    c = Costs(io_wakeup_ns=Fixed(20_000))
    assert dos.retry_window_ns(c) == dos.retry_window_ns() + 20_000
    n = r = 0
    for seed in range(2):
        s = simulate(dos.fadvise_attack(1e5, 100_000, n_faults=1_000, costs=c, seed=seed),
                     "fault_retry_unbounded").summary
        n, r = n + s["n_faults"], r + s["n_retries"]
    pred, sd = dos.unbounded_retries_per_fault(1e5, c), dos.unbounded_retries_sd(1e5, c)
    assert pred == pytest.approx(math.exp(1e5 * 22.6e-6), rel=1e-9)
    assert abs(r / n - pred) < 3 * sd / math.sqrt(n)
    # a drawn wake-up: the chance is the mean over the engine's table, not at its mean
    u = Costs(io_wakeup_ns=Uniform(0, 40_000))
    table = u.io_wakeup_ns.table().astype(float)
    want = 1 - math.exp(-1e5 * 2.6e-6) * float(np.mean(np.exp(-1e5 * table / 1e9)))
    assert dos.eviction_probability(1e5, u) == pytest.approx(want, rel=1e-12)
    # the bound with the wake-ups is reached exactly by an adversary that evicts every page
    io = 1_000_000
    base = simulate(dos.fadvise_attack(0, io, n_faults=10, costs=c), "fault_retry")
    hit = simulate(dos.fadvise_attack(2_000_000, io, kind="periodic", n_faults=10, costs=c),
                   "fault_retry")
    assert hit.summary["elapsed_ns"] / base.summary["elapsed_ns"] == pytest.approx(
        dos.bounded_retry_max_slowdown(io, costs=c), rel=1e-12)


def test_retries_agreement_refuses_a_periodic_grid_and_keeps_its_columns_when_empty():
    g = dos.grid([100_000], [100_000], kind="periodic", n_faults=10,
                 policies=("fault_retry_unbounded",), n_jobs=1)
    with pytest.raises(ScenarioError, match="Poisson adversary's"):
        dos.retries_agreement(g)
    empty = dos.retries_agreement(dos.grid([100_000], [100_000], n_faults=5,
                                           policies=("fault_retry",), n_jobs=1))
    assert empty.empty and list(empty.columns) == ["p", "predicted", "measured", "n_faults",
                                                   "se", "z", "finished", "agrees"]
