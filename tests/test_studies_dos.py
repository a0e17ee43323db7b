"""vmlab.studies.dos: the fadvise adversary's eviction probability in the retry window, and
which retry policies livelock."""
import math

import pytest

from vmlab import ScenarioError, simulate
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
