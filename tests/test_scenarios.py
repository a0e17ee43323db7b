"""The ready-made experiments of vmlab.scenarios: exact costs where the model fixes them,
closed forms where probability does, and the historical numbers MODEL.md cites."""
import math

import numpy as np
import pytest

from vmlab import Costs, Fixed, ScenarioError, Uniform, simulate
from vmlab import scenarios as S
from vmlab.trace.model import Op

COSTS = Costs()


# -- device memory: exact totals and the crossover -----------------------------------------

def test_crossover_fraction_formula():
    # f* = (remap_fixed_ns + N pte_ns) / (N (fault_ns + driver_ns [+ struct_page_ns]))
    n = 4096
    assert S.crossover_fraction(COSTS, n, "nopfn") == (20_000 + n * 60) / (n * 800)
    assert S.crossover_fraction(COSTS, n, "nopage") == (20_000 + n * 60) / (n * 900)
    c = Costs(remap_fixed_ns=10_000, pte_ns=100, fault_ns=1_000, driver_ns=0)
    assert S.crossover_fraction(c, 1000, "nopfn") == pytest.approx(110_000 / 1_000_000)
    assert S.crossover_fraction(None, n) == S.crossover_fraction(COSTS, n, "nopfn")
    with pytest.raises(ScenarioError):
        S.crossover_fraction(COSTS, n, "remap_pfn_range")


def test_crossover_tends_to_pte_over_fault_cost():
    assert S.crossover_fraction(COSTS, 1 << 30) == pytest.approx(60 / 800, rel=1e-4)


def test_eager_vs_lazy_totals_are_exact():
    df = S.eager_vs_lazy([0.01, 0.1, 0.5], n_pages=2048, n_jobs=1)
    for _, row in df.iterrows():
        k = row["touched_pages"]
        if row["policy"] == "remap_pfn_range":
            assert row["total_ns"] == S.eager_total_ns(COSTS, 2048, k)
            assert row["mmap_latency_ns"] == 20_000 + 2048 * 60
            assert row["n_faults"] == 0
            assert row["page_table_bytes"] == 4096 * 4
            # the other thread's first fault (at 1 µs) waits for the rest of the remap
            assert row["stalled_ns"] == 20_000 + 2048 * 60 - 1_000
            assert row["struct_page_bytes"] == 0
        else:
            assert row["total_ns"] == S.lazy_total_ns(COSTS, k, row["policy"])
            assert row["mmap_latency_ns"] == 0 and row["stalled_ns"] == 0
            assert row["n_faults"] == k
            assert row["page_table_bytes"] == 4096 * math.ceil(k / 512)
            sp = 64 * k if row["policy"] == "nopage" else 0
            assert row["struct_page_bytes"] == sp


@pytest.mark.parametrize("lazy", ["nopfn", "nopage"])
def test_simulated_crossover_matches_closed_form(lazy):
    fr = [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.2]
    df = S.eager_vs_lazy(fr, n_pages=4096, policies=(lazy, "remap_pfn_range"), n_jobs=1)
    sim = S.simulated_crossover(df, lazy=lazy)
    assert sim == pytest.approx(S.crossover_fraction(COSTS, 4096, lazy), rel=0.01)


def test_simulated_crossover_nan_without_crossing():
    df = S.eager_vs_lazy([0.5, 1.0], n_pages=512, n_jobs=1)
    assert math.isnan(S.simulated_crossover(df))


def test_touched_pages_and_validation():
    assert S.touched_pages(1000, 0.0) == 1
    assert S.touched_pages(1000, 0.1234) == 123
    with pytest.raises(ScenarioError):
        S.device_mapping(100, 1.5)
    with pytest.raises(ScenarioError):
        S.device_mapping(100, 0.5, backing="file")


def test_iomem_sigbus_under_nopage_only():
    df = S.eager_vs_lazy([0.1], n_pages=512, backing="iomem", n_jobs=1).set_index("policy")
    assert df.loc["nopage", "n_sigbus"] == 1 and df.loc["nopage", "n_faults"] == 1
    assert df.loc["nopfn", "n_sigbus"] == 0 and df.loc["nopfn", "n_faults"] == 51
    assert df.loc["remap_pfn_range", "n_faults"] == 0


# -- mmap_sem: Lespinasse's numbers ------------------------------------------------------

def test_lespinasse_writer_throughput():
    res = S.run_policies(S.lespinasse(n_reads=30, n_lock_ops=5_000), ["nopage", "fault_retry"])
    t = S.mmap_sem_table(res).set_index("policy")
    # nopage: one mmap/munmap per 18 ms read (MODEL.md: 55/s before the patch)
    assert t.loc["nopage", "writer_ops_per_s"] == pytest.approx(1e9 / 18_002_800, rel=0.01)
    # fault_retry: the loop runs at its own pace, 1 / (mmap_cs_ns + loop gap)
    assert t.loc["fault_retry", "writer_ops_per_s"] == pytest.approx(1e9 / 1_800, rel=0.01)
    assert t.loc["nopage", "writer_wait_ns_max"] >= 18_000_000
    assert t.loc["fault_retry", "writer_wait_ns_max"] < 5_000


def test_lespinasse_calibrated_loop_gives_15000_per_s():
    sc = S.lespinasse(n_reads=10, n_lock_ops=1_000, lock_gap_ns=66_667 - 1_300)
    r = simulate(sc, "fault_retry")
    assert S.writer_ops_per_s(r) == pytest.approx(15_000, rel=0.01)


def test_writer_ops_nan_without_loop():
    r = simulate(S.dos(0, 10_000, n_faults=3), "nopage")
    assert math.isnan(S.writer_ops_per_s(r))


def test_google_reverse_threads():
    sc = S.google_reverse(n_threads=8, pages=64, n_lock_ops=100)
    tids = np.unique(sc.trace.tid)
    assert tids.tolist() == list(range(9))
    lock = sc.trace.op == Op.LOCK_W
    assert set(np.unique(sc.trace.tid[lock])) == {8}
    assert int((~lock).sum()) == 64
    t = S.mmap_sem_table(S.run_policies(sc, ["nopage", "fault_retry"])).set_index("policy")
    assert t.loc["fault_retry", "writer_ops_per_s"] > 100 * t.loc["nopage", "writer_ops_per_s"]


# -- spufs -----------------------------------------------------------------------------

def test_spufs_signal_latency_and_time_to_kill():
    table, live, killed = S.signal_table(n_threads=4, n_accesses=20, signal_rate_hz=10, n_jobs=1)
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
    r = simulate(S.spufs(n_threads=3, n_accesses=10, fatal=True), "nopage")
    ttk = S.time_to_kill_ns(r)
    s = r.signals[r.signals["delivery_ns"] >= 0]
    assert sorted(ttk.tolist()) == sorted(s["latency_ns"].tolist())


def test_refault_expected_closed_form_without_signals():
    cf = S.refault_expected(Fixed(1_000_000), 0)
    assert cf["q"] == 1 and cf["retries_per_fault"] == 0
    assert cf["fault_latency_ns_mean"] == 1_000_000 + 500 + 300 + 100 + 2_000


def test_refault_restarts_match_closed_form():
    # A task restarted from scratch at every Poisson interruption: attempts are Bernoulli
    # trials with success q = E[exp(-rate W)], expected time (1 - q) / (rate q)
    # (renewal reward argument, Ross, Introduction to Probability Models, ch. 7).
    wait = Uniform(0, 100_000_000)
    r = simulate(S.spufs(n_threads=32, n_accesses=50, wait=wait, signal_rate_hz=30),
                 "nopage_refault")
    cf = S.refault_expected(wait, 30)
    assert r.summary["fault_latency_ns_mean"] == pytest.approx(cf["fault_latency_ns_mean"], rel=0.06)
    assert r.summary["retries_per_fault"] == pytest.approx(cf["retries_per_fault"], rel=0.1)


# -- the fadvise adversary --------------------------------------------------------------

def test_dos_retry_once_without_adversary():
    r = simulate(S.dos(0, 50_000, n_faults=20), "fault_retry")
    assert r.summary["retries_per_fault"] == 1.0 and r.summary["n_adversary_evictions"] == 0


def test_dos_eviction_probability_in_retry_window():
    # The window from I/O completion to the retry's lookup is wakeup_ns + fault_ns +
    # struct_page_ns = 2.6 µs; a Poisson adversary at rate l evicts with p = 1 - exp(-l w),
    # and an unbounded retry then needs 1 + p / (1 - p) retries per fault (geometric).
    rate = 100_000
    r = simulate(S.dos(rate, 10_000, n_faults=3_000), "fault_retry_unbounded")
    p = 1 - math.exp(-rate * 2_600e-9)
    assert r.summary["retries_per_fault"] == pytest.approx(1 + p / (1 - p), abs=0.04)


def test_dos_grid_livelock_only_unbounded():
    df = S.dos_grid([3_000_000], [100_000], n_faults=5, n_jobs=1).set_index("policy")
    assert df.loc["fault_retry_unbounded", "livelock"]
    assert not df.loc["fault_retry", "livelock"] and not df.loc["fault_retry_v57", "livelock"]
    assert df.loc["fault_retry", "slowdown"] <= 2.0
    assert df.loc["fault_retry", "retries_per_fault"] == 1.0
    assert df.loc["fault_retry_unbounded", "slowdown"] == pytest.approx(20, rel=0.01)
    assert not df.loc["fault_retry_unbounded", "finished"]
    assert list(df.columns[:4]) == ["adversary_rate_hz", "io_ns", "signal_rate_hz", "elapsed_ns"]


def test_dos_signal_storm_livelocks_v57_not_fault_retry():
    df = S.dos_grid([1_000_000], [1_000_000], signal_rate_hz=10_000, n_faults=5,
                    policies=("fault_retry", "fault_retry_v57"), n_jobs=1).set_index("policy")
    assert df.loc["fault_retry_v57", "livelock"] and not df.loc["fault_retry", "livelock"]


def test_dos_periodic_and_victims():
    sc = S.dos(1_000_000, 10_000, kind="periodic", n_faults=4, n_victims=3)
    assert sc.adversary.kind == "periodic" and sc.adversary.period_ns == 1_000
    assert sc.trace.n_threads == 3 and len(sc.trace) == 12
    with pytest.raises(ScenarioError):
        S.dos(1, 1, kind="bursty")


# -- shipped traces ----------------------------------------------------------------------

def _need(name):
    from vmlab import datasets

    if name not in datasets.list_shipped():
        pytest.skip(f"shipped trace {name} not present")


def test_real_program_memory_sizes():
    _need("lackey_ls")
    df = S.real_program("lackey_ls", [1.0, 0.25], ["nopage", "fault_retry"], backing="by_label",
                        n_jobs=1)
    assert len(df) == 4 and set(df["policy"]) == {"nopage", "fault_retry"}
    full = df[(df["memory_fraction"] == 1.0) & (df["policy"] == "nopage")].iloc[0]
    assert full["n_major"] == full["file_pages"] and full["n_evictions"] == 0
    small = df[(df["memory_fraction"] == 0.25) & (df["policy"] == "nopage")].iloc[0]
    assert small["memory_pages"] == math.ceil(0.25 * full["file_pages"])
    assert small["n_major"] > full["n_major"]


def test_program_scenario_backings():
    _need("lackey_gzip")
    sc = S.program_scenario("lackey_gzip", backing="by_label")
    vt = S.vma_table(sc)
    assert set(vt["backing"]) <= {"file", "anon"}
    assert (vt.loc[vt["name"].str.startswith("text"), "backing"] == "file").all()
    with pytest.raises(ScenarioError):
        S.program_scenario("lackey_gzip", backing={"text": "file"})
    assert S.distinct_pages(sc.trace) == vt["pages_touched"].sum()


def test_perf_replay_keeps_threads():
    _need("perf_sort_parallel")
    df = S.perf_replay("perf_sort_parallel", ["nopage", "fault_retry"], n_jobs=1)
    assert list(df["policy"]) == ["nopage", "fault_retry"]
    assert (df["n_threads"] > 1).all() and (df["program"] == "perf_sort_parallel").all()
    d2 = S.perf_replay("perf_sort_parallel", ["nopage"], mmap_loop_ops=100, n_jobs=1)
    assert d2["n_threads"].iloc[0] == df["n_threads"].iloc[0] + 1


def test_threads_table_counts_lock_calls():
    res = S.run_policies(S.lespinasse(n_reads=5, n_lock_ops=300), ["nopage", "fault_retry"])
    tt = S.threads_table(res)
    assert len(tt) == 4 and set(tt["policy"]) == {"nopage", "fault_retry"}
    assert tt.groupby("policy")["n_lock_w"].max().tolist() == [300, 300]
    assert (tt.groupby("policy")["n_lock_w"].min() == 0).all()
