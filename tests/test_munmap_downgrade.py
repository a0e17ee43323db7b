"""An munmap downgrades mmap_lock to read before it zaps (docs/model.md 15.13): hand-checked
cases in the reference simulator (a fault queued behind it is granted at the downgrade, a
second writer waits to its release, its VMA write locks and its sequence counts end at the
downgrade), each with the engine equal to the reference record for record (random cases:
tests/test_engine_vs_reference.py, whose costs draw ``munmap_write_ns``), and the lock
records written as the kernel's tracepoints and read back."""
from __future__ import annotations

import pytest

from naive_engine import simulate as reference
import writer_cases
from writer_cases import ANON, DUFOUR, OTHER, PAGE, read, rows, same, writer
from vmlab import simulate
from vmlab.model import Costs, Fixed
from vmlab.model.costs import writer_parts_ns
from vmlab.trace import Call
from vmlab.trace.model import DOWNGRADES, MAX_WRITER_CALL
from vmlab.trace.readers.mmap_lock import KINDS, read_capture

# a fault on ANON: 500 + 100 + 700 = 1300 ns of handler; an munmap holds 5000 ns, 1000 of
# them for write
COSTS = Costs(io_ns=Fixed(1000), pte_ns=60, signal_ns=900, mmap_cs_ns=1300,
              hold_munmap_ns=5000, munmap_write_ns=1000, hold_mprotect_ns=2000)


def scenario(rows, costs=COSTS):
    """rows: (tid, op, addr, size, gap_ns, call)."""
    return writer_cases.scenario(rows, costs)


def test_which_calls_downgrade_and_their_parts():
    assert DOWNGRADES == {Call.MUNMAP}
    write, rest = writer_parts_ns(Costs())
    # unknown, mmap, munmap (3.7 of its 33 us for write), mprotect, mremap, brk (the codes a
    # writer names: KERNEL, an access's, is past them)
    n = int(MAX_WRITER_CALL) + 1
    assert write.tolist()[:n] == [3_900, 2_800, 3_700, 11_000, 12_000, 1_800]
    assert rest.tolist()[:n] == [0, 0, 29_300, 0, 0, 0]
    # a write part as long as the hold, or longer: no downgrade
    write, rest = writer_parts_ns(Costs(hold_munmap_ns=2000, munmap_write_ns=2500))
    assert (write[Call.MUNMAP], rest[Call.MUNMAP]) == (2000, 0)


@pytest.mark.parametrize("policy", ["fault_retry_v57", "per_vma_lock", "spf"])
def test_a_fault_behind_the_munmap_is_granted_at_the_downgrade(policy):
    # the munmap of OTHER (a whole-space writer under fault_retry_v57: it has no VMA locks)
    # is granted at 0, downgrades at 1000 and releases at 5000.  The fault on ANON at 100:
    # under mmap_lock it queues and is granted at 1000 (the downgrade), ending at 2300; under
    # the VMA designs it does not touch OTHER and runs at once, ending at 1400.
    sc = scenario([writer(1, OTHER, Call.MUNMAP), read(0, ANON, gap=100)])
    r = reference(sc, policy)
    w = next(x for x in rows(r, "locks") if x["mode"] == 1)
    assert (w["acquire_ns"], w["downgrade_ns"], w["release_ns"]) == (0, 1000, 5000)
    fault = rows(r, "faults")[0]
    if policy == "fault_retry_v57":
        f = next(x for x in rows(r, "locks") if x["mode"] == 0)
        assert (f["request_ns"], f["acquire_ns"], f["release_ns"]) == (100, 1000, 2300)
        assert (fault["end_ns"], fault["lock_wait_ns"]) == (2300, 900)
    else:
        assert (fault["end_ns"], fault["lock_wait_ns"]) == (1400, 0)
    # the writer's hold is its whole call, write part and read part
    assert rows(r, "threads")[1]["lock_hold_ns"] == 5000
    same(sc, policy)


@pytest.mark.parametrize("policy", ["per_vma_lock", "spf"])
def test_the_vma_write_locks_end_at_the_downgrade(policy):
    # the munmap of ANON write-locks it from 0 to its downgrade at 1000.  A fault on ANON at
    # 100 falls back (per_vma_lock: the VMA is write-locked; spf: its count is odd) to
    # mmap_lock for read, queued, granted at 1000 with the munmap holding it for read: done
    # at 2300.  A second fault at 1500 finds the VMA unlocked (its count even): it runs
    # under its VMA lock (speculatively) at once, ending at 2800.
    sc = scenario([writer(2, ANON, Call.MUNMAP), read(0, ANON, gap=100),
                   read(1, ANON + PAGE, gap=1500)])
    r = reference(sc, policy)
    ends = {f["thread"]: f["end_ns"] for f in rows(r, "faults")}
    assert ends == {0: 2300, 1: 2800}
    assert r.lock_counters["n_vma_lock_fallbacks"] == 1
    assert r.lock_counters["n_mmap_lock_read"] == 1
    assert r.lock_counters["n_spf_aborts"] == (1 if policy == "spf" else 0)
    same(sc, policy)


def test_a_second_writer_waits_to_the_release():
    # munmap granted at 0 (downgrade 1000, release 5000); an mprotect at 200 queues, a fault
    # at 300 queues behind it (FIFO): the downgrade grants no one (a writer heads the queue),
    # the mprotect is granted at the release, 5000, holds to 7000, then the fault: 8300
    sc = scenario([writer(1, OTHER, Call.MUNMAP), writer(2, OTHER, Call.MPROTECT, gap=200),
                   read(0, ANON, gap=300)])
    r = reference(sc, "fault_retry_v57")
    locks = sorted(rows(r, "locks"), key=lambda x: x["request_ns"])
    assert [(x["mode"], x["acquire_ns"], x["downgrade_ns"], x["release_ns"]) for x in locks] \
        == [(1, 0, 1000, 5000), (1, 5000, -1, 7000), (0, 7000, -1, 8300)]
    same(sc, "fault_retry_v57")


def test_readers_at_the_head_are_granted_together_and_hold_it_with_the_munmap():
    # two faults at 100 and 200 wait for the munmap; at the downgrade (1000) both are
    # granted, with the munmap a reader too.  A writer at 300 is behind them: granted when
    # the last of the three lets go, the munmap at 5000.
    sc = scenario([writer(2, OTHER, Call.MUNMAP), read(0, ANON, gap=100),
                   read(1, ANON + PAGE, gap=200), writer(3, OTHER, Call.MMAP, gap=300)])
    r = reference(sc, "fault_retry_v57")
    ends = {f["thread"]: f["end_ns"] for f in rows(r, "faults")}
    assert ends == {0: 2300, 1: 2300}
    mm = next(x for x in rows(r, "locks") if x["thread"] == 3)
    assert (mm["acquire_ns"], mm["release_ns"]) == (5000, 5000 + 2800)
    same(sc, "fault_retry_v57")


def test_without_a_shorter_write_part_the_munmap_holds_for_write():
    # munmap_write_ns at or over its hold: today's behaviour, the fault waits to 5000
    c = Costs(io_ns=Fixed(1000), pte_ns=60, signal_ns=900, mmap_cs_ns=1300,
              hold_munmap_ns=5000, munmap_write_ns=5000)
    sc = scenario([writer(1, OTHER, Call.MUNMAP), read(0, ANON, gap=100)], costs=c)
    r = reference(sc, "fault_retry_v57")
    assert rows(r, "faults")[0]["end_ns"] == 6300
    assert all(x["downgrade_ns"] == -1 for x in rows(r, "locks"))
    same(sc, "fault_retry_v57")
    # a writer of unknown call never downgrades either
    sc = scenario([writer(1, OTHER, Call.UNKNOWN), read(0, ANON, gap=100)])
    assert rows(reference(sc, "fault_retry_v57"), "faults")[0]["end_ns"] == 2600
    same(sc, "fault_retry_v57")


def test_dufour_count_changes_at_the_grant_and_the_hold_count_ends_at_the_downgrade():
    # Dufour's count (spf_count="change"): the munmap changes ANON at its grant (0); an
    # attempt reading the count at 500 validates at 1800 (nothing changed meanwhile).  Under
    # spf (the hold rule) the count is odd from 0 to the downgrade (1000): the attempt at 500
    # aborts, waits for mmap_lock, granted at the downgrade, done at 2300.
    sc = scenario([writer(1, ANON, Call.MUNMAP), read(0, ANON, gap=500)])
    r = reference(sc, DUFOUR)
    assert r.lock_counters["n_spf_aborts"] == 0 and rows(r, "faults")[0]["end_ns"] == 1800
    same(sc, DUFOUR)
    r = reference(sc, "spf")
    assert r.lock_counters["n_spf_aborts"] == 1 and rows(r, "faults")[0]["end_ns"] == 2300
    same(sc, "spf")


def test_line_costs_count_the_downgraded_writer_as_a_reader():
    # with mmap_lock's line at 10 ns: the fault granted at the downgrade shares the word with
    # the munmap (one other holder): its handler pays 10 (1 line), its release too (the
    # munmap still holds it): granted 1000, ends 1000 + 1300 + 10 + 10
    c = Costs(io_ns=Fixed(1000), pte_ns=60, signal_ns=900, mmap_cs_ns=1300,
              hold_munmap_ns=5000, munmap_write_ns=1000, mmap_lock_line_ns=10)
    sc = scenario([writer(1, OTHER, Call.MUNMAP), read(0, ANON, gap=100)], costs=c)
    r = reference(sc, "fault_retry_v57")
    assert rows(r, "faults")[0]["end_ns"] == 2320
    same(sc, "fault_retry_v57")


def test_the_tracepoint_text_shows_the_downgrade(tmp_path):
    sc = scenario([writer(1, OTHER, Call.MUNMAP), read(0, ANON, gap=100)])
    res = simulate(sc, "fault_retry_v57")
    lk = res.locks
    assert lk.loc[lk["mode"] == "write", "downgrade_ns"].tolist() == [1000]
    assert lk.loc[lk["mode"] == "read", "downgrade_ns"].tolist() == [-1]
    path = res.write_mmap_lock_events(tmp_path / "dg.txt")
    text = path.read_text().splitlines()
    writer_lines = [x.split(": ", 1)[1] for x in text if " 1000/1 " in x]
    assert [x.split(":")[1] + (" write=false" if "write=false" in x else " write=true")
            for x in writer_lines] == [
        "mmap_lock_start_locking write=true", "mmap_lock_acquire_returned write=true",
        "mmap_lock_acquire_returned write=false", "mmap_lock_released write=false"]
    cap = read_capture(path)
    mine = cap.tid == 1
    assert cap.kind[mine].tolist() == [KINDS.index("lock"), KINDS.index("downgrade")]
    assert cap.acquire_ns[mine].tolist() == [0, 1000]
    assert cap.release_ns[mine].tolist() == [1000, 5000]
    # the split of the hold that measured munmap_write_ns on this host
    write, rest = cap.downgrade_parts()
    assert write.tolist() == [1000] and rest.tolist() == [4000]
