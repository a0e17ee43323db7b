"""Invariants and determinism of the engine on small generated scenarios.

The scenarios come from ``tests/scenario_strategies.py`` (several threads, every policy and
backing, signals, writers, the adversary, small page caches, short horizons).  For each
run: no time is lost or counted twice (docs/model.md section 9), every record is accounted
for exactly once, and each user-visible fault is counted once (MODEL.md section 3).  Runs are
deterministic (MODEL.md section 2): the same scenario and seed give the same result in a
fresh process and whatever the number of ``sweep`` workers.  ``records=False`` changes only
how percentiles are computed (a log-bucket histogram, within 1.6%).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings

import budgeted
import vmlab
from scenario_strategies import cases
from vmlab.engine import codes as C
from vmlab.results import _hist_value

N_EXAMPLES = int(os.environ.get("VMLAB_PROPERTY_EXAMPLES", "200"))
_SETTINGS = settings(max_examples=N_EXAMPLES, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.filter_too_much])
TIMING = ("prepare_s", "kernel_s")


def check_time_accounting(res):
    """Per thread, the 8 categories sum to the thread's end time (nothing lost or doubled)."""
    th = res.threads
    cats = th[list(C.CATEGORY_NAMES)].to_numpy(np.int64)
    assert (cats >= 0).all(), th
    total = cats.sum(axis=1)
    bad = total != th["end_ns"].to_numpy(np.int64)
    assert not bad.any(), th[bad].to_string()


def check_record_accounting(res, scenario):
    """Every record is completed, abandoned or unfinished, once."""
    s = res.summary
    done = int(res.threads["records_done"].sum())
    assert done + s["n_abandoned_records"] + s["n_unfinished_records"] == len(scenario.trace), (
        done, s["n_abandoned_records"], s["n_unfinished_records"], len(scenario.trace))


def check_fault_counting(res):
    """One user-visible fault is one fault record, major or minor; retries are the attempts
    that ended in a retry (the last one may have no attempt after it: docs/model.md section 13)."""
    s = res.summary
    f = res.faults
    assert s["n_faults"] == len(f)
    assert s["n_major"] + s["n_minor"] == s["n_faults"], (s["n_major"], s["n_minor"], s["n_faults"])
    assert s["n_major"] == int(f["major"].sum())
    assert s["n_retries"] == int(f["retries"].sum())
    assert ((f["retries"] >= f["attempts"] - 1) & (f["retries"] <= f["attempts"])).all()
    assert (f["attempts"] >= 1).all()
    assert s["n_sigbus"] == int((f["outcome"] == "sigbus").sum())


@_SETTINGS
@given(cases())
def test_invariants(case):
    scenario, policy = case
    res = budgeted.simulate(scenario, policy)
    check_time_accounting(res)
    check_record_accounting(res, scenario)
    check_fault_counting(res)


# -- records=False ----------------------------------------------------------------------------

REL = 0.016  # the histogram's documented precision


def _order_statistic(x, q):
    """The percentile the histogram approximates: the ceil(q*n)-th smallest value (numpy's
    ``inverted_cdf``; the records=True summary interpolates linearly instead)."""
    return float(np.percentile(x, q, method="inverted_cdf"))


def _close(approx, exact):
    return abs(approx - exact) <= REL * abs(exact) + 0.5  # values < 64 ns are kept exactly


@_SETTINGS
@given(cases())
def test_records_false_same_counters_and_close_percentiles(case):
    """``records=False`` gives the same counters and thread table, and latency figures within
    1.6% (README, "The library") of the same figures computed from the per-record rows."""
    scenario, policy = case
    full = budgeted.simulate(scenario, policy)
    lean = budgeted.simulate(scenario.replace(records=False), policy)
    assert full.counters == lean.counters
    pd.testing.assert_frame_equal(full.threads, lean.threads)
    # latency figures are checked below; struct_page_bytes needs the fault rows (NaN without);
    # writer_ops_per_s comes from kernel counters, so it is equal with or without records
    approx = ("fault_latency_ns", "signal_latency_ns", "mmap_lock_read_wait_ns_p",
              "mmap_lock_write_wait_ns_p")
    for k, v in full.summary.items():
        if k in TIMING or k.startswith(approx) or k == "struct_page_bytes":
            continue
        w = lean.summary[k]
        assert v == w or (isinstance(v, float) and math.isnan(v) and math.isnan(w)), (k, v, w)

    f = full.faults
    lat = f.loc[f["outcome"] == "done", "latency_ns"].to_numpy()
    sg = full.signals
    slat = sg.loc[sg["delivery_ns"] >= 0, "latency_ns"].to_numpy()
    for prefix, x, qs in (("fault_latency_ns", lat, (50, 90, 99, 100)),
                          ("signal_latency_ns", slat, (50, 99, 100))):
        for q in qs:
            name = f"{prefix}_{'max' if q == 100 else f'p{q}'}"
            got = lean.summary[name]
            if len(x) == 0:
                assert math.isnan(got), (name, got)
                continue
            want = _order_statistic(x, q)
            assert _close(got, want), (name, got, want)
    if len(lat):
        assert _close(lean.summary["fault_latency_ns_mean"], float(lat.mean())), (
            lean.summary["fault_latency_ns_mean"], float(lat.mean()))
    lk = full.raw.locks
    for mode, side in ((0, "read"), (1, "write")):
        sel = (lk["mode"] == mode) & (lk["acquire_ns"] >= 0)
        waits = (lk["acquire_ns"] - lk["request_ns"])[sel]
        for q in (50, 99):
            name = f"mmap_lock_{side}_wait_ns_p{q}"
            got = lean.summary[name]
            if len(waits) == 0:
                assert math.isnan(got) and math.isnan(full.summary[name]), name
            else:
                assert _close(got, _order_statistic(waits, q)), (name, got)


def test_records_false_summary_percentiles_on_a_large_sample():
    """On a sample large enough for interpolation not to matter, the records=False summary
    percentiles are within 1.6% of the records=True ones (linear interpolation)."""
    from vmlab.model import Costs, LogNormal, Scenario, poisson_signals
    from vmlab.trace import synth

    tr = synth.uniform(20_000, pages=4_096, seed=7)
    sc = Scenario(tr, backing="file", memory_pages=1_024, seed=3,
                  costs=Costs(io_ns=LogNormal(70_000, 110_000)), signals=[poisson_signals(2e4)])
    full = vmlab.simulate(sc, "nopage_refault").summary
    lean = vmlab.simulate(sc.replace(records=False), "nopage_refault").summary
    for k in ("fault_latency_ns_mean", "fault_latency_ns_p50", "fault_latency_ns_p90",
              "fault_latency_ns_p99", "fault_latency_ns_max", "signal_latency_ns_p50",
              "signal_latency_ns_p99", "signal_latency_ns_max"):
        assert _close(lean[k], full[k]), (k, lean[k], full[k])


def test_histogram_bucket_value_is_within_precision():
    """Every bucket's representative value is within 0.8% of every value it holds."""
    for b in range(64, 64 * 40):
        e = (b - 64) // 64 + 6
        lo = (64 + (b - 64) % 64) << (e - 6)
        hi = lo + (1 << (e - 6)) - 1
        v = _hist_value(b)
        assert lo <= v <= hi and (v - lo) <= 0.008 * lo


# -- determinism ------------------------------------------------------------------------------

_SCENARIO_SRC = r'''
import numpy as np
import vmlab
from vmlab.model import Adversary, Costs, NVME, Scenario, Uniform, poisson_signals
from vmlab.trace import synth, build

def scenario():
    tr = synth.shared_file(3, 400, pages=256, seed=11)
    return Scenario(tr, backing="file", memory_pages=64, replacement="clock", seed=12345,
                    costs=Costs(io_ns=NVME, wait_ns=Uniform(0, 50_000)),
                    signals=[poisson_signals(3e4)],
                    adversary=Adversary(kind="poisson", rate_hz=2e5))
'''


def _summary_in_process():
    ns = {}
    exec(_SCENARIO_SRC, ns)
    res = vmlab.simulate(ns["scenario"](), "fault_retry_v57")
    return res, json.loads(json.dumps(_plain(res.summary)))


def _plain(d):
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items() if k not in TIMING}


def test_same_result_in_a_fresh_process():
    """The same scenario and seed give the same summary, bit for bit, in a fresh process
    (different hash seed, fresh numba dispatch), and the same fault records."""
    res, here = _summary_in_process()
    code = _SCENARIO_SRC + r'''
import json, sys
res = vmlab.simulate(scenario(), "fault_retry_v57")
s = {k: (v.item() if hasattr(v, "item") else v) for k, v in res.summary.items()
     if k not in ("prepare_s", "kernel_s")}
f = res.faults
print(json.dumps({"summary": s, "faults": f[["thread", "vpn", "start_ns", "end_ns",
      "attempts"]].to_numpy().tolist(), "signals": res.signals[["arrival_ns",
      "delivery_ns"]].to_numpy().tolist()}))
'''
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there["summary"] == here
    assert here["n_faults"] > 100 and here["n_retries"] > 0 and here["n_signals"] > 0
    assert there["faults"] == res.faults[["thread", "vpn", "start_ns", "end_ns",
                                          "attempts"]].to_numpy().tolist()
    assert there["signals"] == res.signals[["arrival_ns", "delivery_ns"]].to_numpy().tolist()


def test_sweep_same_rows_whatever_the_workers():
    """``sweep`` gives identical rows, in grid order, with 1 and 2 workers."""
    ns = {}
    exec(_SCENARIO_SRC, ns)
    sc = ns["scenario"]()
    grid = {"policy": ["nopage", "nopage_refault", "fault_retry", "fault_retry_unbounded"],
            "memory_pages": [16, 64], "seed": [1, 2]}
    one = vmlab.sweep(sc, grid, n_jobs=1, show_progress=False).drop(columns=list(TIMING))
    two = vmlab.sweep(sc, grid, n_jobs=2, show_progress=False).drop(columns=list(TIMING))
    assert len(one) == 16
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    # and each row is the run of its point (not another point's, nor a shared-state mix-up)
    again = vmlab.simulate(sc.replace(memory_pages=64, seed=2), "fault_retry").summary
    row = one[(one["policy"] == "fault_retry") & (one["memory_pages"] == 64)
              & (one["seed"] == 2)].iloc[0]
    for k, v in _plain(again).items():
        if k != "policy":
            assert row[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(row[k])), k


def test_writer_ops_counted_while_access_threads_run():
    """The mmap/munmap loop's throughput is measured while the faulting threads run, from the
    LOCK_W records themselves: same figure as counting the lock records by hand."""
    import numpy as np
    import pytest

    from vmlab.trace import synth

    tr = synth.random_reads_with_mmap_loop(n_reads=20, pages=1 << 12, n_lock_ops=5000, seed=4)
    sc = vmlab.Scenario(tr, backing="file", costs=vmlab.Costs(io_ns=vmlab.Fixed(1_000_000)))
    r = vmlab.simulate(sc, "nopage")
    lk = r.locks[r.locks["kind"] == "lock_w"]
    acc_end = r.threads.loc[r.threads["tid"] == 0, "end_ns"].max()
    t0 = lk["request_ns"].min()
    t1 = min(lk["release_ns"].max(), acc_end)
    n = int(np.sum(lk["release_ns"] <= t1))
    assert r.summary["writer_ops_per_s"] == pytest.approx(n * 1e9 / (t1 - t0), rel=1e-12)
    # blocking nopage: about one mmap/munmap per 1 ms read
    assert 500 < r.summary["writer_ops_per_s"] < 2000


def test_time_series_stays_bounded_by_widening_its_bins():
    """A run longer than MAX_BINS bins gets bins twice as wide (as often as needed): the
    series keeps every event, on at most MAX_BINS rows, and says which width it used."""
    from vmlab.engine._kernel import MAX_BINS
    from vmlab.trace import synth

    tr = synth.zipf(3000, 2000, alpha=0.6, seed=2)
    sc = vmlab.Scenario(tr, backing="file", memory_pages=200, bin_ns=1,
                        costs=vmlab.Costs(io_ns=vmlab.Fixed(50_000)))
    for records in (True, False):
        r = vmlab.simulate(sc.replace(records=records), "nopage")
        width = r.raw.bin_ns
        assert width > 1 and width & (width - 1) == 0          # 1 ns doubled k times
        assert len(r.series) <= MAX_BINS
        assert r.summary["elapsed_ns"] // width < MAX_BINS
        assert int(r.series["faults"].sum()) == r.summary["n_faults"]
        assert int(r.series["ios"].sum()) == r.summary["n_io"]
        if records:
            # each fault sits in the bin of its start time
            f = r.faults
            expect = np.bincount(f["start_ns"].to_numpy() // width, minlength=len(r.series))
            assert np.array_equal(r.series["faults"].to_numpy(), expect[: len(r.series)])
