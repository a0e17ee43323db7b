"""Writers name their call (docs/model.md 15.12): the trace's ``call`` column, its native
format (version 5), and in the reference simulator, by hand-checked cases, each call's hold
and, under Dufour's count (``spf_count="change"``), the place of its change; the engine equal
to the reference record for record on the same cases (random ones:
tests/test_engine_vs_reference.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from naive_engine import simulate as reference
import writer_cases
from writer_cases import ANON, DUFOUR, OTHER, read, rows, same, writer
from vmlab import simulate
from vmlab.errors import TraceFormatError
from vmlab.model import Costs, Fixed
from vmlab.model.costs import HOLD_FIELDS, writer_holds_ns
from vmlab.trace import Call, Op, Trace, open_trace, parse_call, synth
from vmlab.trace.model import CHANGE_AT_RELEASE, MAX_WRITER_CALL
from vmlab.trace.native import CALL_VERSION, LOCK_R_VERSION, TraceWriter

#: the codes a writer may name (KERNEL is an access's: tests/test_kernel_made.py)
WRITER_CALLS = [c for c in Call if c <= MAX_WRITER_CALL]
# a fault on ANON: 500 + 100 + 700 = 1300 ns of handler; an unknown writer holds 1300
COSTS = Costs(io_ns=Fixed(1000), pte_ns=60, signal_ns=900, mmap_cs_ns=1300)
# every known call holds 700 ns (the place of the change is what differs)
EVEN = Costs(io_ns=Fixed(1000), pte_ns=60, signal_ns=900, mmap_cs_ns=1300,
             **{name: 700 for name in HOLD_FIELDS.values()})


def scenario(rows, costs=COSTS):
    """rows: (tid, op, addr, size, gap_ns, call)."""
    return writer_cases.scenario(rows, costs)


# -- the trace -------------------------------------------------------------------------------

def test_call_names_and_codes():
    assert [parse_call(n) for n in ("mmap", "MUNMAP", " mprotect ", "mremap", "brk", "unknown")] \
        == [Call.MMAP, Call.MUNMAP, Call.MPROTECT, Call.MREMAP, Call.BRK, Call.UNKNOWN]
    assert parse_call(2) is Call.MUNMAP and parse_call("Kernel") is parse_call(6) is Call.KERNEL
    for bad in ("madvise", 7, -1, True):
        with pytest.raises(ValueError, match="unknown call"):
            parse_call(bad)
    assert CHANGE_AT_RELEASE == {Call.MMAP, Call.BRK}
    h = writer_holds_ns(Costs())
    assert h.tolist()[:len(WRITER_CALLS)] == [3_900, 2_800, 33_000, 11_000, 12_000, 1_800]


def test_a_call_only_on_lock_w_records_and_in_range():
    with pytest.raises(TraceFormatError, match=r"record 1: a LOAD record has call code 2 \(munmap\)"):
        Trace([1, 2], op=[Op.LOCK_W, Op.LOAD], call=[1, 2])
    with pytest.raises(TraceFormatError, match="record 0: call code 7 is not one of 0 to 6"):
        Trace([1], op=[Op.LOCK_W], call=[7])
    t = Trace([1, 2, 3], op=[Op.LOCK_W, Op.LOAD, Op.LOCK_W], call=[1, 0, 2])
    assert t.has_call and t.calls().tolist() == [1, 0, 2]
    assert t.record(2)["call"] is Call.MUNMAP
    assert t[1:].calls().tolist() == [0, 2]
    old = Trace([1, 2], op=[Op.LOCK_W, Op.LOAD])
    assert not old.has_call and old.calls().tolist() == [0, 0]
    assert not old.equals(Trace([1, 2], op=[Op.LOCK_W, Op.LOAD], call=[0, 0]))


def test_generators_name_their_calls():
    t = synth.ebizzy(n_threads=2, n_iters=3, chunk_pages=4)
    w = t.op == Op.LOCK_W
    assert not t.calls()[~w].any()
    for tid in (0, 1):
        mine = t.calls()[w & (t.tid == tid)].tolist()
        assert mine == [Call.MMAP, Call.MUNMAP] * 3
    assert not synth.lock_loop(4).has_call           # one pair per record, as before
    assert synth.lock_loop(5, calls=("mmap", "munmap")).calls().tolist() == [1, 2, 1, 2, 1]
    assert synth.lock_loop(2, calls="brk").calls().tolist() == [5, 5]
    with pytest.raises(ValueError, match="unknown call"):
        synth.lock_loop(2, calls="fork")


def test_native_version_5_round_trip_and_older_files(tmp_path):
    t = synth.ebizzy(n_threads=2, n_iters=2, chunk_pages=4)
    p = t.save(tmp_path / "calls.vmt")
    assert int(np.fromfile(p, "<u4", 1, offset=8)[0]) == CALL_VERSION
    back = open_trace(p)
    assert back.equals(t) and back.calls().tolist() == t.calls().tolist()
    # a trace without calls keeps the version it had (LOCK_R: 4) and opens without them
    old = Trace([1, 2], op=[Op.LOCK_W, Op.LOCK_R])
    p4 = old.save(tmp_path / "old.vmt")
    assert int(np.fromfile(p4, "<u4", 1, offset=8)[0]) == LOCK_R_VERSION
    assert not open_trace(p4).has_call


def _rewrite(path, edit):
    """Rewrite a native file's header (and data) with ``edit(hdr, data) -> bytes``."""
    raw = bytearray(path.read_bytes())
    hlen = int(np.frombuffer(raw, "<u4", 1, 12)[0])
    hdr = json.loads(raw[16:16 + hlen])
    return hdr, raw, hlen


def test_native_bad_calls_are_one_line_errors(tmp_path):
    with pytest.raises(TraceFormatError, match=r"record 1: a LOAD record has call code 1"):
        with TraceWriter(tmp_path / "w.vmt", with_call=True) as w:
            w.append(addr=[1, 2], op=[Op.LOCK_W, Op.LOAD], size=[0, 8], call=[1, 1])
    assert not (tmp_path / "w.vmt").exists()
    # damage: a code over 5 in the file (the CRC rewritten to match)
    import zlib
    t = Trace([1, 2], op=[Op.LOCK_W, Op.LOCK_W], call=[1, 2])
    p = t.save(tmp_path / "d.vmt")
    hdr, raw, hlen = _rewrite(p, None)
    col = next(c for c in hdr["columns"] if c["name"] == "call")
    raw[col["offset"] + 1] = 9
    new_crc = zlib.crc32(bytes(raw[col["offset"]:col["offset"] + col["nbytes"]]))
    text = json.dumps(hdr).replace(f'"crc32": {col["crc32"]}', f'"crc32": {new_crc}')
    text = text.ljust(hlen)
    raw[16:16 + hlen] = text.encode()
    p.write_bytes(bytes(raw))
    with pytest.raises(TraceFormatError, match=r"column 'call': record 1: call code 9 is not "
                                               r"one of 0 to 5.*the file is damaged"):
        open_trace(p)
    # a call column in a file that says version 4
    p = t.save(tmp_path / "v4.vmt")
    hdr, raw, hlen = _rewrite(p, None)
    hdr["version"] = LOCK_R_VERSION
    raw[8:12] = np.uint32(LOCK_R_VERSION).tobytes()
    raw[16:16 + hlen] = json.dumps(hdr).ljust(hlen).encode()
    p.write_bytes(bytes(raw))
    with pytest.raises(TraceFormatError, match="column 'call' needs format version 5, the file "
                                               "says version 4"):
        open_trace(p)


# -- each call's hold ------------------------------------------------------------------------

def test_each_call_holds_its_own_cost():
    # one thread's six writers back to back: unknown (mmap_cs_ns), then each call's cost
    c = Costs(mmap_cs_ns=1300, hold_mmap_ns=100, hold_munmap_ns=2000, hold_mprotect_ns=300,
              hold_mremap_ns=400, hold_brk_ns=50)
    calls = [Call.UNKNOWN, Call.MMAP, Call.MUNMAP, Call.MPROTECT, Call.MREMAP, Call.BRK]
    sc = scenario([writer(0, ANON, k) for k in calls], costs=c)
    for policy in ("fault_retry_v57", "per_vma_lock", DUFOUR):
        r = reference(sc, policy)
        locks = rows(r, "locks")
        assert [w["acquire_ns"] for w in locks] == [0, 1300, 1400, 3400, 3700, 4100]
        assert [w["release_ns"] - w["acquire_ns"] for w in locks] == [1300, 100, 2000, 300, 400, 50]
        same(sc, policy)
    assert simulate(sc, DUFOUR).summary["elapsed_ns"] == 4150


# -- where each call changes its VMA under Dufour's count --------------------------------------

@pytest.mark.parametrize("call", WRITER_CALLS)
def test_a_writer_granted_before_the_count_read(call):
    # the writer is granted at 0 and holds 700 (1300 if its call is unknown); the fault
    # starts at 100 and reads the count there, validating at 1400.  An mmap or a growing brk
    # changes the VMA at its release, 700, inside the window: the attempt aborts at 1400 and
    # handles the fault under mmap_lock (free by then), 1400 + 1300.  The other calls change
    # it at the grant, before the read: the attempt validates.
    sc = scenario([writer(1, ANON, call), read(0, ANON, gap=100)], costs=EVEN)
    r = reference(sc, DUFOUR)
    fault = rows(r, "faults")[0]
    if call in CHANGE_AT_RELEASE:
        assert r.lock_counters["n_spf_aborts"] == 1
        assert (fault["attempts"], fault["end_ns"], fault["lock_wait_ns"]) == (2, 2700, 0)
    else:
        assert r.lock_counters["n_spf_aborts"] == 0
        assert (fault["attempts"], fault["end_ns"]) == (1, 1400)
    same(sc, DUFOUR)
    # the hold rule (spf's default count) sees the writer inside whatever its call: odd at
    # 100, the attempt aborts at once and waits for the release
    hold = reference(sc, "spf")
    end = 700 if call != Call.UNKNOWN else 1300
    assert hold.lock_counters["n_spf_aborts"] == 1
    assert rows(hold, "faults")[0]["end_ns"] == end + 1300
    same(sc, "spf")


@pytest.mark.parametrize("call", WRITER_CALLS)
def test_a_writer_granted_inside_the_window(call):
    # the fault reads the count at 0 and validates at 1300; the writer is granted at 500:
    # a change at the grant (500) or at the release (1200) is inside the window either way,
    # except an unknown call's release (1800) which Dufour's count never sees; the grant of
    # every writer is inside, so every call aborts the attempt
    sc = scenario([read(0, ANON), writer(1, ANON, call, gap=500)], costs=EVEN)
    r = reference(sc, DUFOUR)
    assert r.lock_counters["n_spf_aborts"] == 1
    fault = rows(r, "faults")[0]
    release = 500 + (1300 if call == Call.UNKNOWN else 700)
    assert (fault["attempts"], fault["end_ns"]) == (2, max(1300, release) + 1300)
    same(sc, DUFOUR)


def test_an_mmap_released_after_the_window_does_not_abort():
    # the mmap is granted at 500 inside the window 0..1300 but, holding 2800 (the default),
    # changes the VMA at 3300, after the validation: the attempt completes at 1300; an munmap
    # granted at 500 aborts it
    c = Costs(io_ns=Fixed(1000), pte_ns=60, signal_ns=900, mmap_cs_ns=1300)
    mm = scenario([read(0, ANON), writer(1, ANON, Call.MMAP, gap=500)], costs=c)
    r = reference(mm, DUFOUR)
    assert r.lock_counters["n_spf_aborts"] == 0 and rows(r, "faults")[0]["end_ns"] == 1300
    same(mm, DUFOUR)
    mu = scenario([read(0, ANON), writer(1, ANON, Call.MUNMAP, gap=500)], costs=c)
    r = reference(mu, DUFOUR)
    # aborted at 1300, then under mmap_lock: granted at the munmap's downgrade (500 + its
    # write part, 3700; 15.13), not at its release (500 + 33000)
    assert r.lock_counters["n_spf_aborts"] == 1
    assert rows(r, "faults")[0]["end_ns"] == 4_200 + 1300
    same(mu, DUFOUR)
    # a writer of another VMA changes nothing the attempt reads, whatever its call
    r = reference(scenario([read(0, ANON), writer(1, OTHER, Call.MMAP, gap=500)], costs=EVEN),
                  DUFOUR)
    assert r.lock_counters["n_spf_aborts"] == 0


# -- CSV ----------------------------------------------------------------------------------------

def test_csv_carries_the_call_column(tmp_path):
    from vmlab.trace import read_trace, write_trace
    t = synth.ebizzy(n_threads=2, n_iters=2, chunk_pages=4)
    p = write_trace(t, tmp_path / "e.csv", "csv")
    header, first = p.read_text().splitlines()[:2]
    assert header == "tid,asid,addr,op,size,gap_ns,call" and first.endswith(",lock_w,24576,2000,mmap")
    back = read_trace(p)
    assert back.equals(t)
    # names in any case, or codes; absent on other records or unknown
    q = tmp_path / "c.csv"
    q.write_text("addr,op,call\n0x1000,lock_w,MUNMAP\n0x2000,w,4\n0x3000,load,unknown\n0x4000,W,\"brk\"\n")
    assert read_trace(q).calls().tolist() == [2, 4, 0, 5]
    assert not read_trace(write_trace(Trace([1], op=[Op.LOCK_W]), tmp_path / "o.csv",
                                      "csv")).has_call


@pytest.mark.parametrize("line, message", [
    ("0x1000,load,mmap", r"c.csv:3: column 'call': a LOAD record has call code 1 \(mmap\); "
                         r"an access is 0 \(the program's own\) or 6 \(kernel"),
    ("0x1000,lock_w,fork", r"c.csv:3: column 'call': expected a call \(mmap, munmap, mprotect, "
                           r"mremap, brk, kernel, unknown or 0-6\), found 'fork'"),
    ("0x1000,lock_w,7", r"c.csv:3: column 'call': value '7' is out of range \(0 to 6\)"),
])
def test_csv_bad_calls_name_the_line(tmp_path, line, message):
    from vmlab.trace import read_trace
    q = tmp_path / "c.csv"
    q.write_text("addr,op,call\n0x2000,lock_w,mmap\n" + line + "\n")
    with pytest.raises(TraceFormatError, match=message):
        read_trace(q)
