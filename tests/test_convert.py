"""Format registry, detection, streaming conversion and writing (vmlab.trace.convert)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, Trace, open_trace
from vmlab.trace.build import split_page_crossings
from vmlab.trace import convert as conv_mod
from vmlab.trace.convert import (FORMATS, WRITE_FORMATS, convert, detect_format, read_trace,
                                 write_trace)

LACKEY_TRUE = Path(__file__).parent / "fixtures" / "lackey_true.txt"


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _sample(n=500, gap=True, seed=0):
    rng = np.random.default_rng(seed)
    op = rng.integers(0, 5, n).astype(np.uint8)
    size = rng.integers(1, 4096, n).astype(np.uint32)
    size[op == Op.LOCK_W] = 0
    return Trace(addr=rng.integers(0, 2**64, n, dtype=np.uint64), op=op, size=size,
                 tid=rng.integers(0, 8, n).astype(np.uint32),
                 asid=rng.integers(0, 3, n).astype(np.uint16),
                 gap_ns=rng.integers(0, 10**6, n).astype(np.uint64) if gap else None)


def test_registry():
    assert set(FORMATS) == {"lackey", "din", "csv", "perf"}
    assert set(WRITE_FORMATS) >= {"vmt", "csv", "din"}
    for fmt in ("lackey", "din", "csv"):
        mod = conv_mod.reader(fmt)
        assert mod.NAME == fmt and mod.WITH_GAP is False
        assert callable(mod.sniff) and callable(mod.iter_chunks) and callable(mod.meta_for)
    with pytest.raises(TraceFormatError, match="unknown trace format 'foo'"):
        conv_mod.reader("foo")


def test_perf_reader_is_imported_lazily_or_reported_missing():
    try:
        mod = conv_mod.reader("perf")
    except TraceFormatError as e:  # not written yet: a clear error, never ImportError
        assert "perf" in str(e)
    else:
        assert mod.NAME == "perf"


def test_convert_lackey_real_output(tmp_path):
    before = _digest(LACKEY_TRUE)
    dst = convert(LACKEY_TRUE, tmp_path / "true.vmt", chunk_records=100)
    assert dst == tmp_path / "true.vmt"
    vmt = open_trace(dst, verify=True)
    mem = read_trace(LACKEY_TRUE)
    assert vmt.equals(mem) and len(vmt) == 2000
    assert vmt.meta.source == "lackey:lackey_true.txt"
    assert np.bincount(vmt.op, minlength=4).tolist() == [288, 170, 1522, 20]
    assert _digest(LACKEY_TRUE) == before
    assert sorted(os.listdir(tmp_path)) == ["true.vmt"]


@pytest.mark.parametrize("fmt", ["csv", "din", "lackey"])
def test_detect_write_read_convert_every_format(tmp_path, fmt):
    trace = _sample(gap=(fmt == "csv"))
    if fmt != "csv":
        trace = trace[trace.op != Op.LOCK_W]
    path = write_trace(trace, tmp_path / f"t.{fmt}", fmt)
    assert detect_format(path) == fmt
    got = read_trace(path)  # auto-detected
    assert got.meta.source == f"{fmt}:t.{fmt}"
    # an access that crosses a page boundary is read as a record per page, in every format
    want = split_page_crossings(trace.columns, 4096)
    assert len(want["addr"]) > len(trace)
    assert np.array_equal(got.addr, want["addr"]) and np.array_equal(got.size, want["size"])
    dst = convert(path, tmp_path / "t.vmt", page_size=8192)
    vmt = open_trace(dst)
    assert vmt.equals(read_trace(path, page_size=8192))
    at_8k = split_page_crossings(trace.columns, 8192)      # cut at the page size read with
    assert np.array_equal(vmt.addr, at_8k["addr"]) and len(at_8k["addr"]) < len(want["addr"])
    assert vmt.has_gap == (fmt == "csv")
    if fmt == "csv":
        assert all(np.array_equal(vmt.columns[k], at_8k[k]) for k in at_8k)


def test_vmt_files(tmp_path):
    trace = _sample()
    path = write_trace(trace, tmp_path / "a.vmt", "vmt")
    assert detect_format(path) == "vmt"
    got = read_trace(path)
    assert not got.addr.flags.writeable and got.equals(trace)  # memory-mapped, read-only
    again = convert(path, tmp_path / "b.vmt")
    assert open_trace(again).equals(trace)
    assert read_trace(path, page_size=8192).page_size == 8192
    assert open_trace(convert(path, tmp_path / "c.vmt", page_size=16384)).page_size == 16384
    with pytest.raises(TypeError, match="do not apply"):
        read_trace(path, threads=2)


def test_convert_refuses_dst_equal_src(tmp_path):
    src = write_trace(_sample(gap=False), tmp_path / "t.csv", "csv")
    before = _digest(src)
    for dst in (src, tmp_path / "." / "t.csv"):
        with pytest.raises(TraceFormatError, match="onto itself"):
            convert(src, dst)
    os.symlink(src, tmp_path / "link.csv")
    with pytest.raises(TraceFormatError, match="onto itself"):
        convert(src, tmp_path / "link.csv")
    assert _digest(src) == before


def _failing_lackey(tmp_path, bad_line=30001):
    lines = ["==7== Lackey"] + [f"I  {0x400000 + 4 * i:08x},4" for i in range(40000)]
    lines[bad_line - 1] = " L 7fff0000"  # truncated: no size
    src = tmp_path / "in" / "bad.txt"
    src.parent.mkdir()
    src.write_text("\n".join(lines) + "\n")
    return src


def test_failed_conversion_is_atomic(tmp_path):
    src = _failing_lackey(tmp_path)
    before = _digest(src)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TraceFormatError) as err:
        # small chunks: many records are appended to the writer before the error
        convert(src, out / "bad.vmt", chunk_records=1000)
    assert err.value.line == 30001 and "bad.txt:30001:" in str(err.value)
    assert os.listdir(out) == []  # no dst, no temporary file or directory
    assert os.listdir(src.parent) == ["bad.txt"]
    assert _digest(src) == before
    # a previous file at dst survives a failed conversion untouched
    previous = write_trace(_sample(), out / "bad.vmt", "vmt")
    old = _digest(previous)
    with pytest.raises(TraceFormatError):
        convert(src, previous, "lackey", block_bytes=4096)
    assert _digest(previous) == old and os.listdir(out) == ["bad.vmt"]


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    src = _failing_lackey(tmp_path, bad_line=40000)
    from vmlab.trace.native import TraceWriter

    calls = []
    real_append = TraceWriter.append

    def append(self, **cols):
        calls.append(len(cols["addr"]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_append(self, **cols)

    monkeypatch.setattr(TraceWriter, "append", append)
    with pytest.raises(KeyboardInterrupt):
        convert(src, tmp_path / "x.vmt", chunk_records=500)
    assert sorted(os.listdir(tmp_path)) == ["in"]


def test_write_trace_is_atomic(tmp_path):
    trace = Trace(addr=[1, 2, 3], op=[0, 1, Op.LOCK_W])
    for fmt in ("din", "lackey"):
        with pytest.raises(TraceFormatError, match="record 2 is LOCK_W"):
            write_trace(trace, tmp_path / f"x.{fmt}", fmt)
    # (a trace vmlab could not write back is refused when it is built)
    with pytest.raises(TraceFormatError, match="column 'size': record 1 is a STORE of size 0"):
        Trace(addr=[1, 2], op=[0, 1], size=[4, 0])
    big = Trace(addr=[1, 2], op=[0, Op.LOCK_W], size=[4, 2**32])
    with pytest.raises(TraceFormatError, match="column 'size': record 1 is a LOCK_W range of "
                                               "4294967296 bytes"):
        write_trace(big, tmp_path / "x.csv", "csv")
    assert os.listdir(tmp_path) == []
    with pytest.raises(TraceFormatError, match="cannot write format 'perf'"):
        write_trace(trace, tmp_path / "x.perf", "perf")


def test_detect_format_errors(tmp_path):
    with pytest.raises(TraceFormatError, match="no such file"):
        detect_format(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(TraceFormatError, match="file is empty") as err:
        detect_format(tmp_path / "empty.txt")
    assert "empty.txt" in str(err.value)
    (tmp_path / "junk.txt").write_text("hello world\nthis is not a trace\n")
    with pytest.raises(TraceFormatError, match="cannot tell the trace format") as err:
        detect_format(tmp_path / "junk.txt")
    assert "junk.txt" in str(err.value) and "lackey" in str(err.value)
    with pytest.raises(TraceFormatError, match="no such file"):
        convert(tmp_path / "missing.txt", tmp_path / "x.vmt")
    assert sorted(os.listdir(tmp_path)) == ["empty.txt", "junk.txt"]


@pytest.mark.parametrize("name, good, bad, want", [
    ("t.lackey", [b"==1== Lackey, an example Valgrind tool"]
     + [b" L %08x,4" % (0x1000 + 64 * i) for i in range(40)], b" L 0000\xff\xfe,4",
     "t.lackey:42: expected '<hex>,<size>' after ' L '"),
    ("t.din", [b"0 %x 4" % (0x1000 + 64 * i) for i in range(40)], b"0 zz\xff 4",
     "t.din:41: expected a hexadecimal address after the label"),
])
def test_a_bad_line_after_the_first_records_is_reported_by_the_reader(tmp_path, name, good, bad,
                                                                       want):
    """The format is told by the file's first records; a bad line further on (within the
    64 KiB looked at) gets the reader's message with its line number, not "cannot tell the
    trace format"."""
    src = tmp_path / name
    src.write_bytes(b"\n".join(good + [bad] + good[-3:]) + b"\n")
    assert detect_format(src) == name.split(".")[1]
    with pytest.raises(TraceFormatError) as err:
        convert(src, tmp_path / "x.vmt")
    assert want in str(err.value)
    assert sorted(os.listdir(tmp_path)) == [name]


def test_convert_empty_input_leaves_nothing(tmp_path):
    src = tmp_path / "only_pid.txt"
    src.write_text("==5== Lackey, an example Valgrind tool\n==5== \n")
    with pytest.raises(TraceFormatError, match="no records"):
        convert(src, tmp_path / "x.vmt")
    assert os.listdir(tmp_path) == ["only_pid.txt"]


def test_convert_streams_in_bounded_chunks(tmp_path, monkeypatch):
    trace = _sample(5000, gap=False)
    trace = trace[trace.op != Op.LOCK_W]
    trace = Trace(**split_page_crossings(trace.columns, 4096))   # a line is one record
    src = write_trace(trace, tmp_path / "t.din", "din")
    from vmlab.trace.native import TraceWriter

    sizes = []
    real_append = TraceWriter.append

    def append(self, **cols):
        sizes.append(len(cols["addr"]))
        return real_append(self, **cols)

    monkeypatch.setattr(TraceWriter, "append", append)
    convert(src, tmp_path / "t.vmt", chunk_records=256, show_progress=False)
    assert max(sizes) <= 256 and sum(sizes) == len(trace) and len(sizes) >= len(trace) // 256
