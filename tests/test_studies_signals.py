"""vmlab.studies.signals: signal latency and time to kill under spufs waits, and the
closed form of nopage_refault's restarts."""
import math

import numpy as np
import pytest

from vmlab import Costs, Fixed, Uniform, simulate
from vmlab.studies import signals


def test_spufs_signal_latency_and_time_to_kill():
    table, live, killed = signals.signal_table(n_threads=4, n_accesses=20, signal_rate_hz=10, n_jobs=1)
    t = table.set_index("policy")
    assert t.loc["nopage", "signal_latency_ns_p50"] > 1_000_000
    assert t.loc["nopage_refault", "signal_latency_ns_p50"] < 100_000
    assert t.loc["nopage", "time_to_kill_ns_p50"] > 1_000_000
    assert t.loc["nopage_refault", "time_to_kill_ns_p50"] < 100_000
    assert t.loc["nopage", "retries_per_fault"] == 0
    assert t.loc["nopage_refault", "retries_per_fault"] > 0
    assert (t["n_killed"] == 4).all()
    assert set(live) == set(killed) == {"nopage", "nopage_refault"}


def test_time_to_kill_is_fatal_signal_latency():
    r = simulate(signals.spufs(n_threads=3, n_accesses=10, fatal=True), "nopage")
    ttk = signals.time_to_kill_ns(r)
    s = r.signals[r.signals["delivery_ns"] >= 0]
    assert sorted(ttk.tolist()) == sorted(s["latency_ns"].tolist())


def test_refault_expected_closed_form_without_signals():
    cf = signals.refault_expected(Fixed(1_000_000), 0)
    assert cf["q"] == 1 and cf["retries_per_fault"] == 0
    assert cf["fault_latency_ns_mean"] == 1_000_000 + 500 + 300 + 100 + 2_000


def test_refault_restarts_match_closed_form():
    # A task restarted from scratch at every Poisson interruption: attempts are Bernoulli
    # trials with success q = E[exp(-rate W)], expected time (1 - q) / (rate q)
    # (renewal reward argument, Ross, Introduction to Probability Models, ch. 7).
    wait = Uniform(0, 100_000_000)
    r = simulate(signals.spufs(n_threads=32, n_accesses=50, wait=wait, signal_rate_hz=30),
                 "nopage_refault")
    cf = signals.refault_expected(wait, 30)
    assert r.summary["fault_latency_ns_mean"] == pytest.approx(cf["fault_latency_ns_mean"], rel=0.06)
    assert r.summary["retries_per_fault"] == pytest.approx(cf["retries_per_fault"], rel=0.1)


def test_wait_residual_closed_form():
    # waits uniform on [0, a]: the residual has density 2 (a - r) / a^2, so median
    # a (1 - 1/sqrt 2), p99 0.9 a, mean a / 3; on the 65,536-entry table within 1e-4
    a = 100_000_000
    res = signals.wait_residual(Uniform(0, a))
    assert res["p50_ns"] == pytest.approx(a * (1 - 2 ** -0.5), rel=1e-4)
    assert res["p99_ns"] == pytest.approx(0.9 * a, rel=1e-4)
    assert res["mean_ns"] == pytest.approx(a / 3, rel=1e-4)
    assert res["wait_mean_ns"] == pytest.approx(a / 2, rel=1e-4)
    # a fixed wait w: the residual is uniform on [0, w]
    fixed = signals.wait_residual(Fixed(1_000_000), n_signals=100)
    assert fixed["p50_ns"] == pytest.approx(500_000) and fixed["mean_ns"] == pytest.approx(500_000)
    # median's standard error: sqrt(0.25 / n) / density, density 1 / w
    assert fixed["p50_se_ns"] == pytest.approx(0.05 * 1_000_000)


def test_wait_residual_is_nopage_signal_latency():
    # under blocking nopage a signal is held for the rest of its wait (plus microseconds):
    # the simulated median within 4 standard errors of the closed form
    wait = Uniform(0, 100_000_000)
    r = simulate(signals.spufs(n_threads=32, n_accesses=50, wait=wait, signal_rate_hz=10),
                 "nopage")
    lat = r.signals["latency_ns"]
    res = signals.wait_residual(wait, n_signals=len(lat))
    assert len(lat) > 500
    assert abs(lat.median() - res["p50_ns"]) < 4 * res["p50_se_ns"]


def test_restart_table_agrees_within_sampling_error():
    # 30 seeds of 320 faults pooled: simulated retries and mean latency within 3 standard
    # errors of the closed form (a miss by sampling alone: 0.3% per comparison)
    wait = Uniform(0, 100_000_000)
    t = signals.restart_table([3, 30], wait=wait, n_threads=8, n_accesses=40, seed=100,
                              n_seeds=30)
    assert (t["n_faults"] == 30 * 320).all()
    assert (t[["retries_z", "latency_z"]].abs() < 3).all().all()
    assert ((t["ratio"] - 1).abs() < 0.02).all()


def test_restart_table_standard_error_is_the_seed_to_seed_scatter():
    # faults are independent, so the per-fault standard error of the pooled mean matches
    # the scatter of the per-seed means / sqrt(seeds): within 40% for 30 seeds (the
    # standard deviation of 30 values is itself uncertain by about 13%)
    wait = Uniform(0, 100_000_000)
    pooled = signals.restart_table([10], wait=wait, n_threads=8, n_accesses=40, seed=200,
                                   n_seeds=30).iloc[0]
    per_seed = [signals.restart_table([10], wait=wait, n_threads=8, n_accesses=40, seed=s)
                .iloc[0] for s in range(200, 230)]
    for col, se in (("retries_per_fault", "retries_per_fault_se"),
                    ("fault_latency_ns_mean", "fault_latency_ns_mean_se")):
        means = np.array([p[col] for p in per_seed])
        assert means.mean() == pytest.approx(pooled[col])
        assert means.std(ddof=1) / np.sqrt(30) == pytest.approx(pooled[se], rel=0.4)


def test_unmodelled_retries_are_negligible():
    # signals outside the waits add about rate x / q retries per fault, x the microseconds
    # of gap, handler CPU, signal handling and wake-up: below 0.2% of the closed form here
    wait = Uniform(0, 100_000_000)
    assert signals.unmodelled_retries(wait, 0) == 0
    for rate in (1, 10, 100):
        extra = signals.unmodelled_retries(wait, rate)
        cf = signals.refault_expected(wait, rate)
        x = signals.GAP_NS + 500 + 300 + 100 + 2_600 + 2_000
        assert extra == pytest.approx(rate * 1e-9 * x / cf["q"], rel=1e-3)
        assert 0 < extra < 0.002 * cf["retries_per_fault"]
    # a busy machine's wake-up after the wait (io_wakeup_ns) is exposure too: its mean
    slow = Costs(io_wakeup_ns=Uniform(0, 100_000))
    extra = signals.unmodelled_retries(wait, 10, costs=slow)
    q = signals.refault_expected(wait, 10, costs=slow)["q"]
    assert extra == pytest.approx(math.expm1(10e-9 * (x + 50_000)) / q, rel=1e-3)


def test_the_closed_form_counts_the_wake_up_after_the_wait():
    # a busy machine's wake-up after a wait (io_wakeup_ns, docs/model.md 15.14) is in the
    # latency: exact with a fixed wait and no signals (once left out: 50 µs short)
    sc = signals.spufs(2, Fixed(2_000_000), 0.0, False, 5, seed=0)
    sc = sc.replace(costs=sc.costs.replace(io_wakeup_ns=Fixed(50_000)))
    f = simulate(sc, "nopage_refault").faults
    want = signals.refault_expected(Fixed(2_000_000), 0.0, sc.costs)["fault_latency_ns_mean"]
    assert (f["latency_ns"] == want).all() and len(f) == 10
    assert want == signals.refault_expected(Fixed(2_000_000), 0.0)["fault_latency_ns_mean"] + 50_000
