"""The kernel's mmap_lock tracepoint text: a real capture read, a run written and read back."""
from pathlib import Path

import numpy as np
import pytest

from vmlab import Costs, HDD, Scenario, TraceFormatError, simulate
from vmlab.trace import synth
from vmlab.trace.model import Op
from vmlab.trace.readers import mmap_lock as M

FIX = Path(__file__).parent / "fixtures"
# perf record -e 'mmap_lock:*' -- python3.11 -S -I perf_mmap_lock_program.py (kernel 6.18,
# perf 6.1), printed with perf script -F comm,pid,tid,cpu,time,event,trace --ns
NS = FIX / "perf_mmap_lock_ns.txt"
# the first 60 lines of the same recording in perf script's default layout (microseconds)
DEFAULT = FIX / "perf_mmap_lock_default_head.txt"


def test_real_capture_pairs_every_event():
    c = M.read_capture(NS)
    text = NS.read_text()
    # counted with grep: 177 start_locking (109 write), 205 acquire_returned, 177 released
    assert text.count("mmap_lock_start_locking") == 177
    assert len(c) == 205 and c.n_unmatched_releases == 0
    assert np.bincount(c.kind).tolist() == [177, 0, 28]      # 28 mmap_write_downgrade
    assert np.bincount(c.mode).tolist() == [68 + 28, 109]
    assert (c.acquire_ns >= 0).all() and (c.release_ns >= 0).all() and c.success.all()
    assert np.unique(c.tid, return_counts=True)[1].tolist() == [125, 72, 8]
    assert set(c.pid.tolist()) == {1589} and set(c.asid.tolist()) == {0}
    assert (c.wait_ns >= 0).all() and (c.hold_ns >= 0).all()
    # the first operation, by hand: lines 1-3
    first = text.splitlines()[:3]
    assert "4684.498567" in first[0] and c.tid[0] == 1589 and c.mode[0] == 1
    ts = [int(line.split()[3].rstrip(":").replace(".", "")) for line in first]
    assert (c.request_ns[0], c.acquire_ns[0], c.release_ns[0]) == tuple(ts)


def test_default_layout_in_microseconds():
    c = M.read_capture(DEFAULT)
    assert (c.pid == -1).all() and (c.tid == 1589).all()
    assert c.request_ns[0] == 4684_498567_000 and (c.request_ns % 1000 == 0).all()


def test_capture_round_trips_through_the_writer(tmp_path):
    c = M.read_capture(NS)
    p = M.write_events(tmp_path / "w.txt", c.tid, c.asid, c.mode, c.request_ns, c.acquire_ns,
                       c.release_ns, kind=c.kind, pids={0: 1589})
    d = M.read_capture(p)
    for k in ("tid", "pid", "asid", "mode", "kind", "request_ns", "acquire_ns", "release_ns"):
        assert np.array_equal(getattr(c, k), getattr(d, k)), k
    # the writer prints what the kernel prints: one start per lock, none per downgrade
    assert p.read_text().count("start_locking") == 177


def test_writers_as_a_trace():
    c = M.read_capture(NS)
    t = c.to_trace()
    assert len(t) == 109 and (t.op == Op.LOCK_W).all() and (t.size == 0).all()
    assert np.array_equal(np.sort(t.tid), np.sort(c.tid[c.mode == 1]))
    # gaps rebuild each thread's request times
    for tid in np.unique(t.tid):
        req = c.request_ns[(c.mode == 1) & (c.tid == tid)]
        got = c.request_ns.min() + np.cumsum(t.gap_ns[t.tid == tid].astype(np.int64))
        assert np.array_equal(got, req)


@pytest.mark.parametrize("policy", ["nopage", "fault_retry"])
def test_a_run_written_as_tracepoints_reads_back(tmp_path, policy):
    tr = synth.random_reads_with_mmap_loop(n_reads=20, pages=1 << 12, n_lock_ops=3000, seed=4)
    r = simulate(Scenario(tr, backing="file", costs=Costs(io_ns=HDD)), policy)
    p = r.write_mmap_lock_events(tmp_path / "run.txt", t0_ns=5_000_000_000)
    c = M.read_capture(p)
    lk = r.locks
    assert len(c) == len(lk)
    assert np.array_equal(c.wait_ns, np.where(lk.acquire_ns >= 0, lk.wait_ns, -1))
    assert np.array_equal(c.request_ns, lk.request_ns + 5_000_000_000)
    tids = r.threads["tid"].to_numpy()
    assert np.array_equal(c.tid, tids[lk.thread])
    assert np.array_equal(c.mode, (lk["mode"] == "write").astype(np.int8))
    # under nopage the loop waits behind whole disk reads; under fault_retry it never does
    big = (c.mode == 1) & (c.wait_ns > 1_000_000)
    assert big.any() if policy == "nopage" else not big.any()


def test_trylock_and_failures(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(
        "x 1/2 [000] 1.000000000: mmap_lock:mmap_lock_acquire_returned: mm=0x1 memcg_id=0 write=false success=true\n"
        "x 1/2 [000] 1.000000100: mmap_lock:mmap_lock_released: mm=0x1 memcg_id=0 write=false\n"
        "x 1/3 [001] 1.000000200: mmap_lock:mmap_lock_acquire_returned: mm=0x1 memcg_id=0 write=false success=false\n"
        "x 1/3 [001] 1.000000300: mmap_lock:mmap_lock_start_locking: mm=0x1 memcg_id=0 write=true\n"
        "x 1/3 [001] 1.000000400: mmap_lock:mmap_lock_acquire_returned: mm=0x1 memcg_id=0 write=true success=false\n"
        "x 1/4 [001] 1.000000500: mmap_lock:mmap_lock_released: mm=0x2 memcg_path=\"/\" write=true\n"
        "x 1/4 [001] 1.000000600: mmap_lock:mmap_lock_start_locking: mm=0x2 memcg_path=\"/\" write=true\n")
    c = M.read_capture(p)
    assert [M.KINDS[k] for k in c.kind] == ["trylock", "trylock", "lock", "lock"]
    assert c.acquire_ns.tolist() == [1_000_000_000, -1, -1, -1]
    assert c.release_ns.tolist() == [1_000_000_100, -1, -1, -1]
    assert c.success.tolist() == [True, False, False, False]
    assert c.asid.tolist() == [0, 0, 0, 1] and c.n_unmatched_releases == 1


@pytest.mark.parametrize("text, words", [
    ("", "no mmap_lock event"),
    ("hello world\n", "expected a perf script line"),
    ("x 1/2 1.0: sched:sched_switch: prev=1\n", "unexpected event 'sched:sched_switch'"),
    ("x 1/2 1.0: mmap_lock:mmap_lock_released: mm=0x1 memcg_id=0\n", "write=\\(missing\\)"),
    ("x 1/2 1.0: mmap_lock:mmap_lock_released: memcg_id=0 write=true\n", "mm=\\(missing\\)"),
    ("x 1/2 1.0: mmap_lock:mmap_lock_acquire_returned: mm=0x1 write=true success=maybe\n",
     "success=maybe"),
    ("x 1/2 2.0: mmap_lock:mmap_lock_released: mm=0x1 write=true\n"
     "x 1/2 1.0: mmap_lock:mmap_lock_released: mm=0x1 write=true\n", "time goes backwards"),
    ("x 1/2 9999999999.0: mmap_lock:mmap_lock_released: mm=0x1 write=true\n", "out of range"),
])
def test_bad_captures_get_one_line(tmp_path, text, words):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(TraceFormatError, match=words) as e:
        M.read_capture(p)
    assert "\n" not in str(e.value) and "bad.txt" in str(e.value)


def test_other_events_can_be_skipped(tmp_path):
    p = tmp_path / "o.txt"
    p.write_text("x 1/2 1.0: sched:sched_switch: prev=1\n" + NS.read_text())
    assert len(M.read_capture(p, other_events="skip")) == 205


def test_wait_summary_bins_and_totals():
    mode = [0, 0, 0, 1, 1, 0]
    wait = [500, 2_000_000, 20_000_000, 999, 1_000, -1]    # -1: never granted
    s = M.wait_summary(mode, wait)
    assert s["read"]["n"] == 3 and s["read"]["total_ns"] == 22_000_500
    assert s["read"]["bins"]["<1us"] == 1 and s["read"]["bins"]["1-10ms"] == 1
    assert s["read"]["bins"]["10-100ms"] == 1 and s["read"]["max_ns"] == 20_000_000
    assert s["write"]["bins"]["<1us"] == 1 and s["write"]["bins"]["1-10us"] == 1
    assert s["write"]["p50_ns"] == 999.5
    assert sum(s["read"]["bins"].values()) == 3
    empty = M.wait_summary([1], [5])["read"]
    assert empty["n"] == 0 and empty["total_ns"] == 0 and np.isnan(empty["mean_ns"])


def test_a_capture_and_a_run_summarised_alike(tmp_path):
    c = M.read_capture(NS)
    s = c.wait_summary()
    assert s["read"]["n"] + s["write"]["n"] == 205
    assert s["write"]["total_ns"] == int(c.wait_ns[c.mode == 1].sum())
    tr = synth.random_reads_with_mmap_loop(n_reads=5, pages=1 << 12, n_lock_ops=500, seed=4)
    r = simulate(Scenario(tr, backing="file", costs=Costs(io_ns=HDD)), "nopage")
    run = M.read_capture(r.write_mmap_lock_events(tmp_path / "run.txt")).wait_summary()
    lk = r.locks
    direct = M.wait_summary((lk["mode"] == "write").astype(int), lk["wait_ns"])
    assert run == direct
    # the mmap loop's waits behind 8 ms disk reads land in the 1-10 ms bin
    assert run["write"]["bins"]["1-10ms"] >= 1
