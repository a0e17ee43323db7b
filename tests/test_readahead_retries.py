"""A marked folio's readahead drops the fault's lock and retries (docs/model.md 11.5,
``readahead_drops_lock``), against a capture of this host's kernel."""
from pathlib import Path

import numpy as np
import pytest

from vmlab import Vma, simulate
from vmlab.model import get_policy
from vmlab.studies import ladder
from vmlab.trace.readers import mmap_lock as M

# scripts/readahead_retries.c on a cold 64 MiB file (kernel 6.18, read_ahead_kb 8192):
#   perf record -e 'mmap_lock:*' -o ra.data ./readahead_retries f64
#   perf script -F comm,pid,tid,cpu,time,event,trace --ns -i ra.data | grep '^ *seqscan '
CAPTURE = Path(__file__).parent / "fixtures" / "perf_readahead_retries.txt"


def scan(n_pages, ra_pages, every=64):
    # the program's usleep(2000) took 2.1 ms there
    return ladder.readahead_scan_scenario(n_pages, ra_pages, pause_ns=2_100_000, every=every)


def read_acquisitions(result):
    lk = result.locks
    return lk.loc[lk["mode"] == "read", "acquire_ns"].to_numpy(np.int64)


def test_the_capture_takes_mmap_lock_for_read_nine_times():
    c = M.read_capture(CAPTURE)
    assert len(c) == 9 and (c.mode == 0).all() and c.success.all()
    assert len(set(c.tid.tolist())) == 1


def test_per_vma_lock_takes_mmap_lock_where_the_kernel_did():
    c = M.read_capture(CAPTURE)
    host = np.sort(c.acquire_ns) - c.acquire_ns.min()
    assert ladder.READAHEAD_SCAN == {"n_pages": 16384, "ra_pages": 2048, "pause_ns": 2_100_000,
                                     "every": 64}
    r = simulate(ladder.readahead_scan_scenario(), get_policy("per_vma_lock"))
    got = read_acquisitions(r)
    got = got - got[0]
    # the first fault's retry after its read, then the marks at file pages 1536, 2048,
    # 4096, ..., 14336: 9, as the kernel; each at the kernel's instant within 1% of the scan
    assert len(got) == len(host) == 9
    assert int(r.summary["n_major"]) == 1 and int(r.faults["retries"].sum()) == 9
    np.testing.assert_allclose(got / host[-1], host / host[-1], atol=0.01)


@pytest.mark.parametrize("n_pages, ra_pages, every, marks", [
    (4096, 2048, 64, 2),      # read-around [0, 2048) marked at 1536, then [2048, 4096) at 2048
    (16384, 2048, 64, 8),
    # marked at 24, then at each window's start, 32 to 992 (the last reads nothing past the
    # file's end, and still drops the lock); a pause every 16 pages lets each window's read
    # complete before the scan reaches it
    (1024, 32, 16, 1 + (1024 - 32) // 32),
])
def test_the_presets_retry_once_a_mark(n_pages, ra_pages, every, marks):
    sc = scan(n_pages, ra_pages, every=every)
    pv = simulate(sc, get_policy("per_vma_lock"))
    assert int(pv.summary["n_mmap_lock_read"]) == 1 + marks
    rv = simulate(sc, get_policy("per_vma_retry_vma"))
    assert int(rv.summary["n_mmap_lock_read"]) == 0
    assert int(rv.faults["retries"].sum()) == 1 + marks
    nr = simulate(sc, get_policy("per_vma_no_retry"))
    assert int(nr.faults["retries"].sum()) == 0 and int(nr.summary["n_mmap_lock_read"]) == 0
    # without the knob only the first fault's read is a retry
    off = simulate(sc, get_policy("per_vma_lock").replace(name="no_ra_drop",
                                                          readahead_drops_lock=False))
    assert int(off.summary["n_mmap_lock_read"]) == 1
    # a retry is an attempt, not a fault: as many faults with the knob as without it, one per
    # fault-around window and one more for a mark inside a window (fault-around skips a
    # marked folio); the no-retry fault maps its page alone after its read (finish_fault,
    # 11.3), and the next page faults
    n = n_pages // 16 + (1 if ra_pages // 4 % 16 else 0)
    assert int(pv.summary["n_faults"]) == int(rv.summary["n_faults"]) == \
        int(off.summary["n_faults"]) == n
    assert int(nr.summary["n_faults"]) == n + 1


def test_madvise_random_reads_no_window_and_drops_nothing():
    sc = scan(1024, 32)
    vma = sc.vmas[0]
    rnd = sc.replace(vmas=(Vma(vma.start, vma.end, "file", name="f", prot="r", private=False,
                               madvise="random"),))
    r = simulate(rnd, get_policy("per_vma_lock"))
    assert int(r.faults["retries"].sum()) == int(r.summary["n_major"])


def test_the_knob_is_refused_on_an_eager_policy_and_must_be_a_bool():
    from vmlab import ScenarioError
    with pytest.raises(ScenarioError, match="eager policy never waits"):
        get_policy("remap_pfn_range").replace(readahead_drops_lock=True)
    with pytest.raises(ScenarioError, match="readahead_drops_lock must be True or False"):
        get_policy("per_vma_lock").replace(readahead_drops_lock=1)


def test_the_anchor_table_puts_the_capture_beside_the_runs():
    t = ladder.readahead_anchor(CAPTURE).set_index("source")
    assert list(t.index) == ["this kernel", "per_vma_lock", "per_vma_retry_vma",
                             "per_vma_lock, no readahead drop"]
    assert t["n_mmap_lock_read"].tolist() == [9, 9, 0, 1]
    assert t.loc["per_vma_retry_vma", "n_retries"] == 9
    host, pv = (np.array(t.loc[k, "instants_ms"]) for k in ("this kernel", "per_vma_lock"))
    assert host[0] == pv[0] == 0 and abs(host[-1] - 471.42) < 0.01
    np.testing.assert_allclose(pv, host, rtol=0.01)
    assert 0 < t.loc["per_vma_lock", "largest_gap"] < 0.01
    assert t.loc["this kernel", "largest_gap"] == 0
    assert np.isnan(t.loc["per_vma_retry_vma", "largest_gap"])
