"""vmlab.studies.signals: signal latency and time to kill under spufs waits, and the
closed form of nopage_refault's restarts."""
import pytest

from vmlab import Fixed, Uniform, simulate
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
