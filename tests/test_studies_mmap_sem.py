"""vmlab.studies.mmap_sem: the writer throughputs MODEL.md cites for Lespinasse's test
(55/s before his patch, 15,000/s after), and Ying Han's reverse-order workload."""
import math

import numpy as np
import pytest

from vmlab import simulate
from vmlab.simulation import compare
from vmlab.studies import dos, mmap_sem
from vmlab.trace.model import Op


def test_lespinasse_writer_throughput():
    _, res = compare(mmap_sem.lespinasse(n_reads=30, n_lock_ops=5_000), ["nopage", "fault_retry"],
                     results=True)
    t = mmap_sem.mmap_sem_table(res).set_index("policy")
    # nopage: one mmap/munmap per 18 ms read (MODEL.md: 55/s before the patch)
    assert t.loc["nopage", "writer_ops_per_s"] == pytest.approx(1e9 / 18_002_800, rel=0.01)
    # fault_retry: the loop runs at its own pace, 1 / (mmap_cs_ns + loop gap)
    assert t.loc["fault_retry", "writer_ops_per_s"] == pytest.approx(1e9 / 1_800, rel=0.01)
    assert t.loc["nopage", "writer_wait_ns_max"] >= 18_000_000
    assert t.loc["fault_retry", "writer_wait_ns_max"] < 5_000


def test_lespinasse_calibrated_loop_gives_15000_per_s():
    sc = mmap_sem.lespinasse(n_reads=10, n_lock_ops=1_000, lock_gap_ns=66_667 - 1_300)
    r = simulate(sc, "fault_retry")
    assert r.summary["writer_ops_per_s"] == pytest.approx(15_000, rel=0.01)


def test_writer_ops_nan_without_loop():
    # no writer, no throughput: NaN, where 0 would read as a writer starved by the faults
    r = simulate(dos.fadvise_attack(0, 10_000, n_faults=3), "nopage")
    assert r.writer_window_ns() is None
    assert math.isnan(r.summary["writer_ops_per_s"])
    assert math.isnan(mmap_sem.mmap_sem_table({"nopage": r})["writer_wait_ns_max"].iloc[0])


def test_google_reverse_threads():
    sc = mmap_sem.google_reverse(n_threads=8, pages=64, n_lock_ops=100)
    tids = np.unique(sc.trace.tid)
    assert tids.tolist() == list(range(9))
    lock = sc.trace.op == Op.LOCK_W
    assert set(np.unique(sc.trace.tid[lock])) == {8}
    assert int((~lock).sum()) == 64
    _, res = compare(sc, ["nopage", "fault_retry"], results=True)
    t = mmap_sem.mmap_sem_table(res).set_index("policy")
    assert t.loc["fault_retry", "writer_ops_per_s"] > 100 * t.loc["nopage", "writer_ops_per_s"]


def test_threads_table_counts_lock_calls():
    _, res = compare(mmap_sem.lespinasse(n_reads=5, n_lock_ops=300), ["nopage", "fault_retry"],
                     results=True)
    tt = mmap_sem.threads_table(res)
    assert len(tt) == 4 and set(tt["policy"]) == {"nopage", "fault_retry"}
    assert tt.groupby("policy")["n_lock_w"].max().tolist() == [300, 300]
    assert (tt.groupby("policy")["n_lock_w"].min() == 0).all()


def test_writer_alone_is_measured_over_its_whole_span():
    # no access thread beside the loop: 100 calls of mmap_cs_ns + loop gap = 1.8 µs each,
    # from the first request (after the first 0.5 µs gap) to the last release
    from vmlab import Scenario
    from vmlab.trace import synth

    r = simulate(Scenario(synth.lock_loop(100, tid=0, cs_gap_ns=500)), "nopage")
    assert r.writer_window_ns() == (500, 100 * 1_800, 100)
    assert r.summary["writer_ops_per_s"] == 100 * 1e9 / (100 * 1_800 - 500)
