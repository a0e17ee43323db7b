"""The value limits of a trace's records (vmlab.trace.model: first_bad_record,
first_gap_total_over), one set for every input: vmlab.Trace, the text readers, the .vmt writer
and verifier, and the engine (a gap of 2**63 ns once wrapped its int64 times: a segfault or a
record reported done that never started).  Each refusal is one line naming the file, the
record or line, and the column."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

import vmlab
from vmlab.cli import main
from vmlab.errors import TraceFormatError
from vmlab.trace.model import GAP_LIMIT, MAX_ASIDS, Op, first_gap_total_over
from vmlab.trace.native import open_trace
from vmlab.trace.readers import csv_format

from test_cli_hostile import _one_line_error

U64 = np.uint64


def _craft(path, cols, version=4):
    """A .vmt file holding ``cols`` as given (valid checksums, no check of the values)."""
    off, entries = 1 << 16, []
    for name, a in cols.items():
        a = np.ascontiguousarray(a)
        entries.append({"name": name, "dtype": "<" + a.dtype.str[1:], "offset": off,
                        "nbytes": a.nbytes, "crc32": zlib.crc32(a.tobytes())})
        off += -(-max(a.nbytes, 1) // 4096) * 4096
    hdr = json.dumps({"format": "vmlab-trace", "version": version,
                      "n_records": len(cols["addr"]), "page_size": 4096, "source": "",
                      "notes": "", "n_threads": None, "columns": entries}).encode()
    with open(path, "wb") as f:
        f.write(b"VMLTRACE" + np.uint32(version).tobytes() + np.uint32(len(hdr)).tobytes() + hdr)
        for e, a in zip(entries, cols.values()):
            f.seek(e["offset"])
            f.write(np.ascontiguousarray(a).tobytes())
        f.truncate(off)
    return path


def _cols(n=3, **changes):
    cols = {"addr": (np.arange(n, dtype=U64) + 1) * U64(4096), "op": np.zeros(n, np.uint8),
            "tid": np.zeros(n, np.uint32), "asid": np.zeros(n, np.uint16),
            "size": np.full(n, 8, np.uint32), "gap_ns": np.zeros(n, U64)}
    cols.update(changes)
    return cols


# -- vmlab.Trace ------------------------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    (dict(op=np.array([0, 9, 200], np.uint8)),
     "column 'op': record 1 has op code 9; expected 0 to 5 (load, store, ifetch, modify, "
     "lock_w, lock_r)"),
    (dict(size=np.array([8, 0, 8], np.uint32)),
     "column 'size': record 1 is a LOAD of size 0; only lock_w and lock_r records have size 0"),
    (dict(size=np.array([8, 8, 2**32], U64)),
     "column 'size': record 2 is a LOAD of size 4294967296; expected at most 4294967295 "
     "(2**32-1; only a lock_w range may be longer)"),
    (dict(op=[0, Op.LOCK_R, 0], size=np.array([8, 2**32, 8], U64)),
     "column 'size': record 1 is a LOCK_R hold of 4294967296 ns; expected at most 4294967295"),
    (dict(tid=np.array([0, 2**40, 0])),
     "column 'tid': record 1 has tid 1099511627776; expected a thread id below 2**32"),
    (dict(asid=np.array([0, 0, 70000])),
     "column 'asid': record 2 has asid 70000; expected an address-space id below 4096"),
    (dict(asid=np.array([0, MAX_ASIDS, 0])),
     "column 'asid': record 1 has asid 4096; expected an address-space id below 4096"),
    (dict(gap_ns=np.array([0, 2**62, 0], U64)),
     "column 'gap_ns': record 1 has gap_ns 4611686018427387904; expected a gap below 2**62 ns"),
    (dict(gap_ns=np.array([2**64 - 1, 0, 0], U64)),
     "column 'gap_ns': record 0 has gap_ns 18446744073709551615; expected a gap below 2**62"),
    (dict(gap_ns=np.array([2**62 - 1, 5, 2**62 - 1], U64), tid=[0, 1, 0]),
     "column 'gap_ns': record 2: the gaps of thread 0 add up to 2**62 ns (146 years) or more "
     "by this record; a thread's gaps must total below 2**62 ns (146 years)"),
    (dict(op=[Op.LOAD, Op.LOCK_W, Op.LOAD], call=[0, 0, 1]),
     "column 'call': record 2: a LOAD record has call code 1"),
])
def test_trace_refuses_records_the_vmt_verifier_refuses(kw, message):
    with pytest.raises(TraceFormatError) as e:
        vmlab.Trace(np.array([1, 2, 3], U64), **kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_trace_keeps_what_is_within_the_limits():
    tr = vmlab.Trace(np.array([1, 2, 3, 4], U64), op=[0, Op.LOCK_W, Op.LOCK_R, 0],
                     size=np.array([2**32 - 1, 2**40, 0, 1], U64), tid=[0, 2**32 - 1, 1, 0],
                     asid=[MAX_ASIDS - 1, 0, 0, 0],
                     gap_ns=np.array([2**62 - 2, 2**62 - 1, 2**62 - 1, 1], U64))
    assert tr.columns["size"].tolist()[1] == 2**40
    # the threads' totals: thread 0 reaches 2**62 - 1, the others one gap each
    assert first_gap_total_over(tr.tid, tr.gap_ns) is None
    assert first_gap_total_over(np.zeros(2, np.uint8), np.array([2**61, 2**61], U64)) == (1, 0)


def test_big_endian_columns_replay_like_native_ones_and_meta_is_checked():
    # np.fromfile(path, ">u8") gives big-endian columns: once a numba TypingError at the
    # first replay; a meta that is not a TraceMeta was an AttributeError later on
    cols = dict(op=[0, 1, 0, 0], tid=[0, 1, 0, 1], gap_ns=[5, 7, 0, 3])
    addr = np.array([0, 7, 14, 3], U64) * 4096
    native = vmlab.Trace(addr, **{k: np.array(v, U64) for k, v in cols.items()})
    swapped = vmlab.Trace(addr.astype(">u8"), **{k: np.array(v, ">u8") for k, v in cols.items()})
    assert all(c.dtype.isnative for c in swapped.columns.values())
    assert swapped.equals(native)
    sc = vmlab.Scenario(swapped, records=False)
    got = vmlab.simulate(sc, "fault_retry").summary
    want = vmlab.simulate(sc.replace(trace=native), "fault_retry").summary
    assert (got["n_faults"], got["elapsed_ns"]) == (want["n_faults"], want["elapsed_ns"])
    with pytest.raises(TraceFormatError, match="meta must be a TraceMeta"):
        vmlab.Trace(addr, meta="gzip")


def test_bad_op_is_no_longer_counted_as_an_access():
    """The QA report: op code 9 once replayed as an access; only save() refused it."""
    with pytest.raises(TraceFormatError, match="column 'op': record 1 has op code 9"):
        vmlab.Trace(np.array([0x1000, 0x1008, 0x1010], U64), op=np.array([0, 9, 200], np.uint8))


# -- the engine --------------------------------------------------------------------------

@pytest.mark.parametrize("gaps, horizon, want", [
    # a gap at the limit's edge: the record never starts within the horizon
    ((2**62 - 1, 0), None, dict(n_accesses=0, n_unfinished_records=2,
                                elapsed_ns=3_600 * 10**9)),
    # the thread's gaps total 2**62 - 1 with the longest horizon: no int64 overflow
    ((2**62 - 2, 1), 2**62 - 1, dict(n_accesses=0, n_faults=1, n_unfinished_records=2,
                                     elapsed_ns=2**62 - 1)),
    ((0, 2**62 - 1), 2**62 - 1, dict(n_accesses=1, n_unfinished_records=1,
                                     elapsed_ns=2**62 - 1)),
])
def test_engine_times_stay_in_int64_at_the_limits(gaps, horizon, want):
    tr = vmlab.Trace(np.array([0x1000, 0x2000], U64), gap_ns=np.array(gaps, U64))
    kw = {} if horizon is None else {"horizon_ns": horizon}
    s = vmlab.simulate(vmlab.Scenario(tr, **kw)).summary
    assert {k: s[k] for k in want} == want


def test_engine_checks_an_unverified_file(tmp_path):
    p = _craft(tmp_path / "g.vmt", _cols(2, gap_ns=np.array([2**63 - 1, 0], U64)))
    tr = open_trace(p, verify=False)         # the header only: no record read
    with pytest.raises(TraceFormatError) as e:
        vmlab.simulate(vmlab.Scenario(tr))
    assert str(e.value).startswith("column 'gap_ns': record 0 has gap_ns 9223372036854775807")
    p = _craft(tmp_path / "t.vmt", _cols(3, gap_ns=np.array([2**62 - 1, 1, 0], U64)))
    with pytest.raises(TraceFormatError, match="column 'gap_ns': record 1: the gaps of thread 0"):
        vmlab.simulate(vmlab.Scenario(open_trace(p, verify=False)))


# -- .vmt files --------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    (dict(size=np.array([2**64 - 1, 4, 8], U64)),
     "column 'size': record 0 is a LOAD of size 18446744073709551615; expected at most "
     "4294967295"),
    (dict(gap_ns=np.array([0, 2**64 - 1, 0], U64)),
     "column 'gap_ns': record 1 has gap_ns 18446744073709551615; expected a gap below 2**62"),
    (dict(gap_ns=np.array([2**62 - 1, 0, 1], U64)),
     "column 'gap_ns': record 2: the gaps of thread 0 add up to 2**62 ns"),
    (dict(asid=np.array([0, 65535, 0], np.uint16)),
     "column 'asid': record 1 has asid 65535; expected an address-space id below 4096"),
])
def test_vmt_values_are_checked_like_the_text_readers(tmp_path, capsys, changes, message):
    p = _craft(tmp_path / "v.vmt", _cols(**changes))
    with pytest.raises(TraceFormatError) as e:
        open_trace(p)
    assert str(e.value).startswith(f"{p}: {message}")
    for argv in (["run", p], ["trace", "info", p], ["trace", "convert", p, tmp_path / "o.csv"]):
        line = _one_line_error(capsys, argv)
        assert line.startswith(f"vmlab: error: {p}: {message}"), line
    assert sorted(x.name for x in tmp_path.iterdir()) == ["v.vmt"]


def test_vmt_damage_is_still_called_damage(tmp_path):
    p = _craft(tmp_path / "o.vmt", _cols(op=np.array([0, 7, 0], np.uint8)))
    with pytest.raises(TraceFormatError, match="column 'op': record 1 has op code 7; expected 0 "
                                               "to 5 .*: the file is damaged$"):
        open_trace(p)


def test_writer_refuses_what_open_would_refuse(tmp_path):
    from vmlab.trace.native import TraceWriter

    with pytest.raises(TraceFormatError) as e:
        with TraceWriter(tmp_path / "w.vmt", with_gap=True) as w:
            w.append(addr=np.array([1, 2], U64), gap_ns=np.array([0, 0], U64))
            w.append(addr=np.array([1, 2], U64), gap_ns=np.array([0, 2**62], U64))
    assert str(e.value).startswith(f"{tmp_path / 'w.vmt'}: column 'gap_ns': record 3 has gap_ns")
    with pytest.raises(TraceFormatError) as e:      # a thread's total, followed across chunks
        with TraceWriter(tmp_path / "w.vmt", with_gap=True) as w:
            w.append(addr=np.array([1, 2], U64), gap_ns=np.array([0, 2**62 - 1], U64),
                     tid=np.array([0, 1]))
            w.append(addr=np.array([1, 2], U64), gap_ns=np.array([0, 1], U64),
                     tid=np.array([0, 1]))
    assert str(e.value) == (f"{tmp_path / 'w.vmt'}: column 'gap_ns': record 3: the gaps of "
                            "thread 1 add up to 2**62 ns (146 years) or more by this record; "
                            "a thread's gaps must total below 2**62 ns (146 years)")
    assert list(tmp_path.iterdir()) == []


# -- the text readers and the command line -------------------------------------------------

@pytest.mark.parametrize("text, line, message", [
    ("tid,addr,op,gap_ns\n0,0x1000,load,9223372036854775807\n0,0x2000,load,0\n", 2,
     "column 'gap_ns': value '9223372036854775807' is out of range (0 to 4611686018427387903: "
     "gaps are below 2**62 ns (146 years))"),
    ("tid,addr,op,gap_ns\n0,0x1000,load,0\n0,0x1000,load,18446744073709551615\n", 3,
     "column 'gap_ns': value '18446744073709551615' is out of range (0 to 4611686018427387903: "
     "gaps are below 2**62 ns (146 years))"),
    ("asid,addr\n0,1\n4096,1\n", 3,
     "column 'asid': value '4096' is out of range (0 to 4095: address-space ids are below 4096)"),
])
def test_csv_reader_limits(tmp_path, capsys, text, line, message):
    src = tmp_path / "t.csv"
    src.write_text(text)
    with pytest.raises(TraceFormatError) as e:
        list(csv_format.iter_chunks(src))
    assert e.value.line == line and str(e.value) == f"{src}:{line}: {message}"
    out = _one_line_error(capsys, ["trace", "convert", src, tmp_path / "t.vmt"])
    assert out == f"vmlab: error: {src}:{line}: {message}"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["t.csv"]


def test_csv_convert_refuses_a_thread_total_of_gaps(tmp_path, capsys):
    src = tmp_path / "t.csv"
    src.write_text(f"tid,addr,gap_ns\n0,1,{2**62 - 1}\n1,2,{2**62 - 1}\n0,3,1\n")
    # the input is at fault, and named (once the output was, which does not exist)
    want = (f"vmlab: error: {src}: column 'gap_ns': record 2: the gaps of thread 0 add up to "
            "2**62 ns (146 years) or more by this record; a thread's gaps must total below "
            "2**62 ns (146 years) (records counted from 0 in the file's order)")
    for command in (["trace", "convert", src, tmp_path / "t.vmt"], ["trace", "info", src],
                    ["run", src]):
        assert _one_line_error(capsys, command) == want
    assert sorted(x.name for x in tmp_path.iterdir()) == ["t.csv"]


def test_csv_limits_round_trip(tmp_path, capsys):
    """What vmlab reads it writes back and reads again (the QA report: a .vmt vmlab
    accepted was converted to a CSV vmlab then refused)."""
    src = tmp_path / "a.csv"
    src.write_text(f"tid,asid,addr,op,size,gap_ns\n{2**32 - 1},4095,0x1000,load,{2**32 - 1},"
                   f"{2**62 - 1}\n0,0,0x2000,lock_r,{2**32 - 1},0\n")
    assert main(["trace", "convert", "--quiet", str(src), str(tmp_path / "a.vmt")]) == 0
    assert main(["trace", "convert", "--quiet", str(tmp_path / "a.vmt"),
                 str(tmp_path / "b.csv")]) == 0
    # the 4 GiB load is a record per page it touches (its first keeps the gap); the lock
    # record's size is a hold, whole; what vmlab wrote reads back as it was
    lines = (tmp_path / "b.csv").read_text().splitlines()[1:]
    pages = 2**32 // 4096
    assert len(lines) == pages + 1
    assert lines[:2] == [f"{2**32 - 1},4095,0x1000,load,4096,{2**62 - 1}",
                         f"{2**32 - 1},4095,0x2000,load,4096,0"]
    assert lines[-2:] == [f"{2**32 - 1},4095,{hex(pages * 4096)},load,4095,0",
                          f"0,0,0x2000,lock_r,{2**32 - 1},0"]
    assert main(["trace", "convert", "--quiet", str(tmp_path / "b.csv"),
                 str(tmp_path / "b.vmt")]) == 0
    assert open_trace(tmp_path / "b.vmt").equals(open_trace(tmp_path / "a.vmt"))
    capsys.readouterr()


def test_csv_writer_refuses_a_lock_w_range_it_cannot_read_back(tmp_path):
    tr = vmlab.Trace(np.array([0x1000], U64), op=[Op.LOCK_W], size=np.array([2**32], U64))
    with pytest.raises(TraceFormatError) as e:
        csv_format.write(tr, tmp_path / "w.csv")
    assert str(e.value) == (f"{tmp_path / 'w.csv'}: column 'size': record 0 is a LOCK_W range "
                            "of 4294967296 bytes; a CSV trace holds sizes up to 4294967295 "
                            "(2**32-1)")
    assert list(tmp_path.iterdir()) == []


def test_gap_limit_is_the_engines():
    from vmlab.engine.kernel.events import NO_STEP
    from vmlab.model.scenario import MAX_ASIDS as SCENARIO_MAX_ASIDS

    assert GAP_LIMIT == int(NO_STEP) == 1 << 62
    assert SCENARIO_MAX_ASIDS == MAX_ASIDS == 4096


# -- costs and the horizon against the engine's int64 times ---------------------------------

def _four_threads(**costs):
    base = 0x7F0000000000
    tr = vmlab.Trace(np.array([base + i * 4096 for i in range(4)], U64),
                     tid=np.array([1, 2, 3, 4]))
    return dict(trace=tr, vmas=[vmlab.Vma(base, base + 4 * 4096, "file")],
                costs=vmlab.Costs().replace(**costs))


def test_costs_that_could_wrap_the_engines_times_are_refused():
    """Each cost and the horizon are below 2**62 alone; together they wrapped (a fault's
    start came out at -2**63) before this check."""
    big = 2**62 - 2**12
    sc = vmlab.Scenario(horizon_ns=big, **_four_threads(fault_ns=2**61, io_ns=2**61,
                                                        wakeup_ns=2**61, access_ns=2**61))
    with pytest.raises(vmlab.ScenarioError) as e:
        vmlab.simulate(sc, "nopage")
    assert str(e.value) == (
        "horizon_ns 4,611,686,018,427,383,808 with costs this large could overflow the "
        "engine's 64-bit times: one step can add 9,223,372,036,854,871,808 ns (the largest "
        "term: access_ns, 2,305,843,009,213,693,952 ns) and 4 threads' totals must stay "
        "below 2**63 ns; lower horizon_ns or the costs")
    # the line costs grow with the threads on the word
    sc = vmlab.Scenario(horizon_ns=2**60, **_four_threads(mmap_lock_line_ns=2**58,
                                                          mmap_lock_acquire_lines=64))
    with pytest.raises(vmlab.ScenarioError, match=r"the largest term: mmap_lock_line_ns times "
                                                  r"its lines times the threads"):
        vmlab.simulate(sc, "nopage")


def test_large_costs_inside_the_room_give_exact_times():
    """Four threads, each waiting 2**57 ns for its read (a horizon of 2**59): the engine's
    records are the reference simulator's, every fault starting at 0 and ending past its
    read."""
    from naive_engine import canonical, first_difference
    from naive_engine import simulate as reference

    from vmlab.engine import run

    sc = vmlab.Scenario(horizon_ns=2**59, **_four_threads(io_ns=2**57))
    r = vmlab.simulate(sc, "nopage")
    assert (r.faults["start_ns"] == 0).all() and (r.faults["end_ns"] > 2**57).all()
    assert first_difference(canonical(run(sc, "nopage")),
                            canonical(reference(sc, "nopage"))) is None
