"""Spatially sampled replay and one-pass LRU fault curves (vmlab/sampling.py)."""
import json
import math

import numpy as np
import pytest

import vmlab
from vmlab import Scenario, ScenarioError, Trace, simulate
from vmlab.engine import index_trace
from vmlab.sampling import (SCALED_COUNTS, UNSAMPLED, fault_curve, miniature, page_hash,
                            sample_counts, sample_trace, threshold)
from vmlab.trace import Op, TraceMeta, synth

M64 = (1 << 64) - 1


def splitmix_finalizer(x):
    """splitmix64's finalizer, written out with Python integers."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


@pytest.fixture(scope="module")
def zipf():
    return synth.zipf(300_000, 30_000, alpha=0.9, seed=5)


def test_page_hash_is_the_fixed_mixer_of_asid_and_page():
    asid = np.array([0, 0, 3, 4095], np.uint64)
    vpn = np.array([0, 1, 12345, (1 << 52) - 1], np.uint64)
    want = [splitmix_finalizer((int(a) << 52) | int(v)) for a, v in zip(asid, vpn)]
    assert page_hash(asid, vpn).tolist() == want
    assert int(threshold(0.25)) == 1 << 62


def test_sample_trace_keeps_every_access_of_kept_pages_in_all_threads():
    rng = np.random.default_rng(0)
    n = 5000
    op = rng.choice([0, 1, 4], size=n, p=[0.6, 0.35, 0.05]).astype(np.uint8)
    tr = Trace(addr=rng.integers(0, 400, n).astype(np.uint64) * 4096 + 8,
               tid=rng.integers(0, 3, n), asid=rng.integers(0, 2, n), op=op,
               gap_ns=rng.integers(0, 100, n))
    rate = 0.3
    st = sample_trace(tr, rate)
    assert sample_trace(tr, rate) is st  # computed once per (trace, rate)
    # naive: record by record, with a per-thread carry of dropped gaps
    keep, gaps, carry = [], [], {}
    for i in range(n):
        if op[i] == Op.LOCK_W:
            h = splitmix_finalizer(i ^ 0xD6E8FEB86659FD93)
        else:
            h = splitmix_finalizer((int(tr.asid[i]) << 52) | (int(tr.addr[i]) >> 12))
        t = int(tr.tid[i])
        if h < int(threshold(rate)):
            keep.append(i)
            gaps.append(carry.get(t, 0) + int(tr.gap_ns[i]))
            carry[t] = 0
        else:
            carry[t] = carry.get(t, 0) + int(tr.gap_ns[i])
    keep = np.array(keep)
    for name in ("addr", "tid", "asid", "op", "size"):
        np.testing.assert_array_equal(st.columns[name], tr.columns[name][keep])
    assert st.gap_ns.tolist() == gaps
    n_acc = int(np.count_nonzero(op != Op.LOCK_W))
    assert sample_counts(tr, rate) == (n_acc, int(np.count_nonzero(op[keep] != Op.LOCK_W)))
    # a page is kept with all its references
    kept_pages = set(zip(st.asid[st.op != Op.LOCK_W].tolist(), (st.addr[st.op != Op.LOCK_W] >> 12).tolist()))
    all_refs = [(int(a), int(p)) for a, p, o in zip(tr.asid, tr.addr >> np.uint64(12), op) if o != Op.LOCK_W]
    assert sum((a, p) in kept_pages for a, p in all_refs) == int(np.count_nonzero(st.op != Op.LOCK_W))


def test_sampled_run_is_the_miniature_scaled(zipf):
    D = len(index_trace(zipf).keys)
    sc = Scenario(zipf, memory_pages=D // 5, records=False, sample_rate=0.2)
    res = simulate(sc)
    mini = miniature(sc)
    assert mini.memory_pages == round(D // 5 * 0.2) and mini.sample_rate is None
    assert len(mini.trace) == len(sample_trace(zipf, 0.2))
    m = simulate(mini).summary
    s = res.summary
    for k in SCALED_COUNTS:
        if k != "n_accesses":
            assert s[k] == round(m[k] / 0.2), k
    assert s["n_accesses"] == len(zipf)           # the trace's own count (SHARDS-adj)
    assert s["n_records"] == len(zipf)
    for k in UNSAMPLED:
        assert math.isnan(s[k]), k
    assert s["sample_rate"] == 0.2
    assert s["n_faults_ci_low"] < s["n_faults"] < s["n_faults_ci_high"]
    assert len(res.faults) == 0                    # records=False is honoured
    # the interval: Horvitz-Thompson variance from the miniature's faults per page
    mf = simulate(mini).faults
    f_p = mf.groupby(["asid", "vpn"]).size().to_numpy().astype(float)
    half = 1.959963984540054 * math.sqrt(0.8 * (f_p ** 2).sum()) / 0.2
    assert s["n_faults_ci_high"] == pytest.approx(m["n_faults"] / 0.2 + half, rel=1e-12)
    assert s["n_faults_ci_low"] == pytest.approx(m["n_faults"] / 0.2 - half, rel=1e-12)
    exact = simulate(sc.replace(sample_rate=None)).summary
    assert exact["sample_rate"] == 1.0 and exact["n_faults_ci_low"] == exact["n_faults"]
    one = simulate(sc.replace(sample_rate=1.0)).summary
    assert one["n_faults"] == exact["n_faults"] and one["elapsed_ns"] == exact["elapsed_ns"]


@pytest.mark.parametrize("replacement", ["lru", "fifo", "clock"])
def test_sampling_error_against_exact_replay(zipf, replacement):
    """Tolerance: at R = 0.2 on 3*10^5 Zipf records (about 5,600 sampled pages) the fault
    ratio is within 0.02 of exact replay at 10-80% of the pages (measured: 0.005-0.020,
    largest at the smallest cache, where the miniature holds 550 frames), and within 0.01
    from 40% up."""
    D = len(index_trace(zipf).keys)
    for frac in (0.1, 0.2, 0.4, 0.8):
        sc = Scenario(zipf, memory_pages=int(D * frac), replacement=replacement, records=False)
        e = simulate(sc).summary
        s = simulate(sc.replace(sample_rate=0.2)).summary
        err = abs(s["n_faults"] / s["n_accesses"] - e["n_faults"] / e["n_accesses"])
        assert err <= (0.02 if frac < 0.4 else 0.01), frac


def test_sampled_multithread_trace_with_writer():
    tr = synth.zipf(60_000, 4_000, alpha=0.8, seed=2)
    tid = (np.arange(len(tr)) % 3).astype(np.uint32)
    op = np.asarray(tr.op).copy()
    op[::50] = Op.LOCK_W
    tr = Trace(addr=tr.addr, tid=tid, op=op, gap_ns=np.full(len(tr), 100, np.uint64))
    sc = Scenario(tr, memory_pages=1000, policy="fault_retry", sample_rate=0.25,
                  signals=vmlab.poisson_signals(1000.0))
    s = simulate(sc).summary
    assert s["n_faults"] > 0 and math.isnan(s["writer_ops_per_s"])
    assert math.isnan(s["lock_wait_ns_total"]) and math.isnan(s["signal_latency_ns_p99"])
    assert s["n_lock_w"] == round(int(np.count_nonzero(sample_trace(tr, 0.25).op == Op.LOCK_W)) / 0.25)


def test_sampling_refusals(zipf):
    with pytest.raises(ScenarioError, match="sample_rate must be a number in"):
        Scenario(zipf, sample_rate=0)
    with pytest.raises(ScenarioError, match="sample_rate must be a number in"):
        Scenario(zipf, sample_rate=float("nan"))
    with pytest.raises(ScenarioError, match="fault-around"):
        Scenario(zipf, fault_around_pages=16, sample_rate=0.5)
    with pytest.raises(ScenarioError, match="scales to 2 frames, too few"):
        simulate(Scenario(zipf, memory_pages=20, sample_rate=0.1))
    tiny = Trace(addr=np.array([4096], np.uint64))
    with pytest.raises(ScenarioError, match="keeps no record"):
        for r in (0.5, 0.25, 0.1, 0.01):   # one of them drops the only page
            simulate(Scenario(tiny, sample_rate=r))
    # fault_curve too: once a curve of zero faults
    with pytest.raises(ScenarioError, match="keeps no record"):
        for r in (0.5, 0.25, 0.1, 0.01):
            vmlab.fault_curve(tiny, [1, 2], sample_rate=r)


def test_sweep_and_compare_with_sampling(zipf):
    D = len(index_trace(zipf).keys)
    sc = Scenario(zipf, records=False, sample_rate=0.1)
    df = vmlab.sweep(sc, {"memory_pages": [D // 10, D // 2], "replacement": ["lru", "clock"]},
                     n_jobs=2, show_progress=False)
    assert len(df) == 4 and (df["sample_rate"] == 0.1).all()
    assert df["elapsed_ns"].isna().all()
    one = simulate(sc.replace(memory_pages=D // 10, replacement="clock")).summary
    assert df.loc[1, "n_faults"] == one["n_faults"]
    df2 = vmlab.sweep(Scenario(zipf, records=False, memory_pages=D // 2),
                      {"sample_rate": [None, 0.1]}, n_jobs=1, show_progress=False)
    assert not math.isnan(df2.loc[0, "elapsed_ns"]) and math.isnan(df2.loc[1, "elapsed_ns"])
    cmp = vmlab.compare(sc.replace(memory_pages=D // 2), ["nopage", "fault_retry"], n_jobs=1)
    assert (cmp["sample_rate"] == 0.1).all()


def test_cli_sample_rate(tmp_path, capsys):
    from vmlab.cli import main

    p = tmp_path / "z.vmt"
    synth.zipf(50_000, 5_000, alpha=0.9, seed=1).save(p)
    assert main(["run", str(p), "--memory-fraction", "0.2", "--sample-rate", "0.2", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["sample_rate"] == 0.2 and s["elapsed_ns"] is None
    assert main(["run", str(p), "--sample-rate", "2"]) == 2
    assert "sample_rate must be a number in (0, 1]" in capsys.readouterr().err


# -- one-pass fault curves ----------------------------------------------------------------


def test_fault_curve_equals_replay_at_every_size():
    tr = synth.zipf(20_000, 1_500, alpha=0.8, seed=7)
    D = len(index_trace(tr).keys)
    sizes = np.arange(3, D + 2)
    curve = fault_curve(tr, sizes)
    assert curve["memory_pages"].tolist() == sizes.tolist()
    for size, n_faults in zip(sizes, curve["n_faults"]):
        r = simulate(Scenario(tr, memory_pages=int(size), records=False)).summary
        assert r["n_faults"] == n_faults, size
    assert (curve["fault_ratio"] == curve["n_faults"] / len(tr)).all()


def test_sampled_fault_curve_equals_sampled_lru_replay(zipf):
    D = len(index_trace(zipf).keys)
    sizes = [D // 10, D // 4, D // 2]
    curve = fault_curve(zipf, sizes, sample_rate=0.1)
    for size, n_faults in zip(sizes, curve["n_faults"]):
        s = simulate(Scenario(zipf, memory_pages=size, records=False, sample_rate=0.1)).summary
        assert s["n_faults"] == n_faults
    exact = fault_curve(zipf, sizes)
    assert (abs(curve["fault_ratio"] - exact["fault_ratio"]) <= 0.03).all()
    with pytest.raises(ScenarioError, match="sizes must be"):
        fault_curve(zipf, [0, 10])
    # a fraction of a page is refused, not cut to a whole page
    with pytest.raises(ScenarioError) as e:
        fault_curve(zipf, [10, 1.5])
    assert str(e.value) == "fault_curve: sizes must be whole numbers of pages, got 1.5 at position 1"


def test_fault_curve_skips_lock_w_records():
    op = np.zeros(10, np.uint8)
    op[3] = Op.LOCK_W
    tr = Trace(addr=(np.arange(10) % 4).astype(np.uint64) * 4096, op=op,
               meta=TraceMeta(page_size=4096))
    c = fault_curve(tr, [1, 4])
    assert c["n_accesses"].tolist() == [9, 9]
    assert c["n_faults"].tolist() == [9, 4]


def test_explorer_sample_rate_control():
    from vmlab.widgets import Explorer

    e = Explorer(generator="zipf", n_records=100_000, pages=20_000, policies=("nopage",),
                 memory_fraction=0.5, run=False)
    exact = e.update()
    assert exact is not None and e.last_results["nopage"].summary["sample_rate"] == 1.0
    e.controls["sample_rate"].value = 0.1      # the observer re-runs at once
    s = e.last_results["nopage"].summary
    assert s["sample_rate"] == 0.1 and math.isnan(s["elapsed_ns"])
    assert abs(s["n_faults"] / s["n_accesses"] - exact.loc[0, "n_faults"] / 100_000) < 0.05


def test_memory_curve_plot_draws_sampled_band_and_exact(zipf):
    import matplotlib

    matplotlib.use("Agg")
    from vmlab import plots

    D = len(index_trace(zipf).keys)
    grid = {"replacement": ["lru", "fifo"], "memory_pages": [D // 10, D // 2, D]}
    sc = Scenario(zipf, records=False)
    s = vmlab.sweep(sc.replace(sample_rate=0.1), grid, n_jobs=1, show_progress=False)
    e = vmlab.sweep(sc, grid, n_jobs=1, show_progress=False)
    ax = plots.memory_curve(s, exact=e)
    assert "R = 0.1" in ax.get_title()
    assert len(ax.lines) == 4 and len(ax.collections) == 2     # two lines each, two bands
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["lru", "fifo", "exact replay", "95% interval (page sampling)"]
    matplotlib.pyplot.close(ax.figure)
