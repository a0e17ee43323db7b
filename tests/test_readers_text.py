"""Text trace readers and writers: lackey, din, csv."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, Trace
from vmlab.trace.convert import read_trace, write_trace
from vmlab.trace.readers import csv_format, din, lackey
from vmlab.trace.build import split_page_crossings
from vmlab.trace.model import GAP_LIMIT, MAX_ASIDS

FIXTURES = Path(__file__).parent / "fixtures"
LACKEY_TRUE = FIXTURES / "lackey_true.txt"

HYPO = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

U64 = st.integers(0, 2**64 - 1)
SIZE = st.integers(1, 2**32 - 1)
LETTER = {Op.LOAD: " L ", Op.STORE: " S ", Op.IFETCH: "I  ", Op.MODIFY: " M "}


def _write(tmp, name, data):
    path = Path(tmp) / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _collect(mod, path, **options):
    chunks = list(mod.iter_chunks(path, **options))
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}, chunks


@st.composite
def traces(draw, ops=(0, 1, 2, 3), full=False, max_size=60):
    n = draw(st.integers(1, max_size))
    op = draw(st.lists(st.sampled_from(ops), min_size=n, max_size=n))
    addr = draw(st.lists(U64, min_size=n, max_size=n))
    size = [0 if o == Op.LOCK_W and draw(st.booleans()) else draw(SIZE) for o in op]
    cols = dict(addr=np.array(addr, np.uint64), op=np.array(op, np.uint8),
                size=np.array(size, np.uint32))
    if full:
        cols["tid"] = np.array(draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n)),
                               np.uint32)
        cols["asid"] = np.array(draw(st.lists(st.integers(0, MAX_ASIDS - 1), min_size=n,
                                              max_size=n)), np.uint16)
        if draw(st.booleans()):
            # each gap below 2**62, a thread's total too (at most max_size gaps)
            gap = st.integers(0, GAP_LIMIT // max_size - 1)
            cols["gap_ns"] = np.array(draw(st.lists(gap, min_size=n, max_size=n)), np.uint64)
    return Trace(**cols)


small_blocks = st.fixed_dictionaries({
    "chunk_records": st.integers(1, 40), "block_bytes": st.integers(1, 80),
    "threads": st.integers(1, 2)})


# ------------------------------------------------------------------------------------
# lackey


def test_lackey_real_valgrind_output():
    cols, _ = _collect(lackey, LACKEY_TRUE)
    counts = np.bincount(cols["op"], minlength=5)
    assert counts.tolist() == [288, 170, 1522, 20, 0]  # LOAD STORE IFETCH MODIFY LOCK_W
    assert len(cols["addr"]) == 2000
    assert (int(cols["addr"][0]), int(cols["op"][0]), int(cols["size"][0])) == (0x0401AB70, 2, 3)
    assert (int(cols["addr"][2]), int(cols["op"][2]), int(cols["size"][2])) == (0x1FFF000778, 1, 8)
    trace = read_trace(LACKEY_TRUE)
    assert trace.meta.source == "lackey:lackey_true.txt"
    assert np.array_equal(trace.addr, cols["addr"]) and not trace.has_gap
    assert not trace.tid.any() and not trace.asid.any()


def test_lackey_chunking_never_changes_records():
    ref, _ = _collect(lackey, LACKEY_TRUE)
    for options in ({"chunk_records": 1}, {"chunk_records": 7, "block_bytes": 13},
                    {"block_bytes": 1, "threads": 1}, {"block_bytes": 4096, "threads": 2}):
        cols, chunks = _collect(lackey, LACKEY_TRUE, **options)
        assert max(len(c["addr"]) for c in chunks) <= options.get("chunk_records", 1 << 22)
        for k in ref:
            assert np.array_equal(cols[k], ref[k]), (options, k)


def test_lackey_split_into_parts_matches_single_thread(tmp_path):
    rng = np.random.default_rng(3)
    n = 20000  # ~300 kB: blocks of 64 kB are split between two threads
    addr = rng.integers(0, 2**48, n, dtype=np.uint64)
    op = rng.integers(0, 4, n).astype(np.uint8)
    size = rng.integers(1, 64, n).astype(np.uint32)
    path = tmp_path / "big.txt"
    write_trace(Trace(addr=addr, op=op, size=size), path, "lackey")
    # (an access that crosses a page boundary is read as a record per page)
    want = split_page_crossings({"addr": addr, "op": op, "size": size}, 4096)
    assert len(want["addr"]) > n
    for threads in (1, 2, 3):
        cols, _ = _collect(lackey, path, block_bytes=1 << 16, threads=threads)
        for k in ("addr", "op", "size"):
            assert np.array_equal(cols[k], want[k]), (threads, k)
    # an error late in the file (in a second part) still gets its exact line number
    lines = path.read_bytes().split(b"\n")
    lines[17345] = b" S 12345"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(TraceFormatError) as err:
        list(lackey.iter_chunks(path, block_bytes=1 << 16))
    assert err.value.line == 17346 and "big.txt:17346:" in str(err.value)


def _lackey_text(trace, rng_lines, crlf):
    out = []
    for a, o, s in zip(trace.addr.tolist(), trace.op.tolist(), trace.size.tolist()):
        if rng_lines.draw(st.integers(0, 6)) == 0:
            out.append(rng_lines.draw(st.sampled_from(["==123== Lackey, an example", "", "==9== "])))
        out.append(f"{LETTER[Op(o)]}{a:0{rng_lines.draw(st.integers(1, 18))}x},{s}")
    nl = "\r\n" if crlf else "\n"
    return nl.join(out) + (nl if rng_lines.draw(st.booleans()) else "")


@HYPO
@given(traces(), small_blocks, st.data(), st.booleans())
def test_lackey_parses_generated_text(trace, options, data, crlf):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, "gen.txt", _lackey_text(trace, data, crlf))
        got = read_trace(path, "lackey", **options)
    want = _split(trace)
    assert np.array_equal(got.addr, want.addr)
    assert np.array_equal(got.op, want.op)
    assert np.array_equal(got.size, want.size)


@HYPO
@given(traces(), small_blocks)
def test_lackey_writer_round_trip(trace, options):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.txt"
        write_trace(trace, path, "lackey")
        assert lackey.sniff(path.read_bytes()[:65536])
        got = read_trace(path, "lackey", **options)
    assert got.equals(_split(trace).with_meta(source=got.meta.source))


def _split(trace):
    """``trace`` as the lackey reader gives it back: each access that crosses a page
    boundary a record per page (:func:`vmlab.trace.build.split_page_crossings`)."""
    return Trace(**split_page_crossings(trace.columns, trace.page_size))


def test_lackey_reads_an_access_across_pages_as_a_record_per_page(tmp_path):
    # a 4-byte store at 0x1ffd writes 3 bytes of one page and 1 of the next; an instruction
    # fetch of 5 bytes at 0x3ffe reads 2 and 3; one load stays whole
    path = _write(tmp_path, "x.txt", " S 1ffd,4\n L 2000,1\nI  3ffe,5\n")
    got = read_trace(path, "lackey")
    assert got.addr.tolist() == [0x1ffd, 0x2000, 0x2000, 0x3ffe, 0x4000]
    assert got.size.tolist() == [3, 1, 1, 2, 3]
    assert got.op.tolist() == [Op.STORE, Op.STORE, Op.LOAD, Op.IFETCH, Op.IFETCH]
    # at another page size, at its boundaries: none crossed at 64 KiB
    assert len(read_trace(path, "lackey", page_size=65536)) == 3


def test_split_page_crossings_keeps_columns_and_leaves_locks_whole():
    cols = {"addr": np.array([0x1ffd, 0x2ff0, 2**64 - 2, 0x3000, 0x5000], np.uint64),
            "op": np.array([Op.STORE, Op.MODIFY, Op.LOAD, Op.LOCK_W, Op.LOAD], np.uint8),
            "size": np.array([4, 8200, 8, 8192, 8], np.uint32),
            "tid": np.array([1, 2, 3, 4, 5], np.uint32),
            "gap_ns": np.array([10, 20, 30, 40, 50], np.uint64)}
    got = split_page_crossings(cols, 4096)
    assert got["addr"].tolist() == [0x1ffd, 0x2000, 0x2ff0, 0x3000, 0x4000, 2**64 - 2,
                                    0x3000, 0x5000]
    assert got["size"].tolist() == [3, 1, 16, 4096, 4088, 8, 8192, 8]   # bytes kept
    assert got["tid"].tolist() == [1, 1, 2, 2, 2, 3, 4, 5]
    assert got["gap_ns"].tolist() == [10, 0, 20, 0, 0, 30, 40, 50]      # one instruction
    assert got["op"].tolist() == [Op.STORE, Op.STORE, Op.MODIFY, Op.MODIFY, Op.MODIFY,
                                  Op.LOAD, Op.LOCK_W, Op.LOAD]
    # the last page of the address space has no page after it; nothing crosses: as given
    whole = {k: v[2:] for k, v in cols.items()}
    assert split_page_crossings(whole, 4096) is whole
    assert split_page_crossings(cols, 1 << 20)["addr"].tolist() == cols["addr"].tolist()


def test_lackey_long_lines_grow_the_buffer(tmp_path):
    path = _write(tmp_path, "long.txt", "==1== " + "x" * 5000 + "\nI  10,4\n L 20,8")
    cols, _ = _collect(lackey, path, block_bytes=64)
    assert cols["addr"].tolist() == [0x10, 0x20] and cols["op"].tolist() == [2, 0]


def test_lackey_address_with_leading_zeros_fits(tmp_path):
    path = _write(tmp_path, "z.txt", "I  0000000ffffffffffffffff,3\n")
    assert int(read_trace(path, "lackey").addr[0]) == 2**64 - 1


# ------------------------------------------------------------------------------------
# din


@HYPO
@given(traces(), small_blocks, st.booleans())
def test_din_round_trip(trace, options, all_default):
    if all_default:
        trace = Trace(addr=trace.addr, op=trace.op, size=np.full(len(trace), 4, np.uint32))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.din"
        write_trace(trace, path, "din")
        text = path.read_text()
        assert text[0] in ("012" if all_default else "rwi")  # traditional only if sizes are 4
        got = read_trace(path, "din", **options)
    want = _split(trace)        # an access that crosses a page comes back a record per page
    expected_op = want.op.copy()
    expected_op[expected_op == Op.MODIFY] = Op.STORE  # documented loss
    assert np.array_equal(got.addr, want.addr)
    assert np.array_equal(got.op, expected_op)
    assert np.array_equal(got.size, want.size)


@HYPO
@given(st.lists(st.tuples(st.sampled_from("012rwiRWI"), U64, SIZE, st.booleans(),
                          st.sampled_from(["", " # comment", "\tjunk 1 2"]),
                          st.sampled_from([" ", "\t", "  "])), min_size=1, max_size=40),
       small_blocks)
def test_din_parses_mixed_handwritten_lines(records, options):
    lines, want = [], []
    for label, addr, size, prefix, comment, blank in records:
        a = ("0x" if prefix else "") + f"{addr:x}"
        if label in "012":
            lines.append(f"{blank}{label}{blank}{a}{comment}")
            want.append((addr, int(label), 4))
        else:
            lines.append(f"{label}{blank}{a}{blank}{'0X' if prefix else ''}{size:X}{comment}")
            want.append((addr, "rwi".index(label.lower()), size))
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, "h.din", "\n".join(lines) + "\n")
        assert din.sniff(path.read_bytes())
        got = read_trace(path, "din", **options)
    a, o, z = (np.array(c, t) for c, t in zip(zip(*want), (np.uint64, np.uint8, np.uint32)))
    cut = split_page_crossings({"addr": a, "op": o, "size": z}, 4096)
    assert np.array_equal(got.addr, cut["addr"]) and np.array_equal(got.size, cut["size"])
    assert np.array_equal(got.op, cut["op"])


def test_din_default_size_option(tmp_path):
    path = _write(tmp_path, "t.din", "0 10\n1 20\nw 30 10\n")
    got = read_trace(path, "din", default_size=8)
    assert got.size.tolist() == [8, 8, 16]
    assert got.meta.source == "din:t.din"


def test_din_writer_refuses_lock_w(tmp_path):
    trace = Trace(addr=[1, 2, 3], op=[0, Op.LOCK_W, Op.LOCK_W])
    with pytest.raises(TraceFormatError, match="record 1 is LOCK_W"):
        write_trace(trace, tmp_path / "x.din", "din")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------
# csv


@HYPO
@given(traces(ops=(0, 1, 2, 3, 4), full=True), small_blocks)
def test_csv_round_trip(trace, options):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.csv"
        write_trace(trace, path, "csv")
        head = path.read_text().split("\n", 2)
        assert head[0] == "tid,asid,addr,op,size" + (",gap_ns" if trace.has_gap else "")
        assert head[1].split(",")[2].startswith("0x")
        got = read_trace(path, "csv", **options)
    assert got.equals(_split(trace).with_meta(source=got.meta.source))


def test_csv_and_din_read_an_access_across_pages_as_a_record_per_page(tmp_path):
    # as lackey's reader: a 4-byte store at 0x1ffd is two records, 3 bytes and 1; the
    # pieces keep the record's thread and a later piece has gap 0 (the same instruction)
    path = _write(tmp_path, "x.csv", "tid,addr,op,size,gap_ns\n7,0x1ffd,store,4,50\n7,0x2000,load,1,9\n")
    got = read_trace(path, "csv")
    assert got.addr.tolist() == [0x1ffd, 0x2000, 0x2000]
    assert got.size.tolist() == [3, 1, 1] and got.tid.tolist() == [7, 7, 7]
    assert got.gap_ns.tolist() == [50, 0, 9]
    assert len(read_trace(path, "csv", page_size=65536)) == 2
    path = _write(tmp_path, "x.din", "1 1ffe\nr 3ff0 20\n")      # Dinero's 4-byte word
    got = read_trace(path, "din")
    assert got.addr.tolist() == [0x1ffe, 0x2000, 0x3ff0, 0x4000]
    assert got.size.tolist() == [2, 2, 16, 16]


def test_large_accesses_are_cut_into_bounded_chunks(tmp_path):
    """A 16 MiB access is 4,096 records at 4 KiB pages: a reader yields them in chunks of at
    most ``chunk_records`` (one access alone may exceed it), so a few lines of huge sizes
    cannot make one chunk of millions of records."""
    from vmlab.trace.build import iter_page_crossings_split
    from vmlab.trace.readers import csv_format

    lines = "".join(f"0x{(k << 24) + 8:x},load,{1 << 24}\n" for k in range(3))
    path = _write(tmp_path, "big.csv", "addr,op,size\n" + lines + "0x10,store,8\n")
    sizes = [len(c["addr"]) for c in csv_format.iter_chunks(path, chunk_records=1000)]
    assert sum(sizes) == 3 * 4097 + 1 and max(sizes) == 4097
    got = read_trace(path, "csv", chunk_records=1000)
    assert got.size.tolist()[:2] == [4088, 4096] and int(got.size.sum()) == 3 * (1 << 24) + 8
    cols = {"addr": np.array([0, 4090, 8190, 20000], np.uint64),
            "op": np.zeros(4, np.uint8), "size": np.array([8, 12, 4, 8], np.uint32)}
    parts = list(iter_page_crossings_split(cols, 4096, 3))
    assert [len(p["addr"]) for p in parts] == [3, 3]      # records kept whole in a part
    assert np.concatenate([p["addr"] for p in parts]).tolist() == [
        0, 4090, 4096, 8190, 8192, 20000]


def test_csv_names_codes_order_and_defaults(tmp_path):
    text = ('\ufeffOP , "Addr",Extra, Size\n'
            "load,0x10,a,4\n"
            "\n"
            'S,16,"b c",8\r\n'
            ' "IFETCH" , 0X1F ,,2\n'
            "3,1,x,1\n"
            "W,2,y,0\n"
            "lock_w,3,z,5\n")
    path = _write(tmp_path, "t.csv", text)
    with pytest.raises(TraceFormatError, match="'extra'") as err:
        read_trace(path, "csv")
    assert err.value.line == 1
    got = read_trace(path, "csv", ignore_unknown=True)
    assert got.addr.tolist() == [0x10, 16, 0x1F, 1, 2, 3]
    assert got.op.tolist() == [0, 1, 2, 3, 4, 4]
    assert got.size.tolist() == [4, 8, 2, 1, 0, 5]
    assert not got.tid.any() and not got.has_gap


def test_csv_missing_size_defaults_to_8_and_0_for_lock_w(tmp_path):
    path = _write(tmp_path, "t.csv", "addr,op,gap_ns\n1,load,5\n2,lock_w,6\n")
    got = read_trace(path)
    assert got.size.tolist() == [8, 0] and got.gap_ns.tolist() == [5, 6]
    path = _write(tmp_path, "a.csv", "addr\n1\n2\n")
    assert read_trace(path).op.tolist() == [0, 0]


# ------------------------------------------------------------------------------------
# malformed inputs: file name and exact line number in every message

BAD = [
    # (fmt, file content, line, words in the message)
    ("lackey", "==1== hi\nI  0401,3\n L 0400\n", 3, "expected '<hex>,<size>' after ' L ', found '0400'"),
    ("lackey", "I  0401,3\n L 04zz,8\n", 2, "'04zz,8'"),
    ("lackey", "I  0401,3\n\n S 10,0\n", 3, "size must be 1 to"),
    ("lackey", "I  0401,3\n S 10,4294967296\n", 2, "size must be 1 to"),
    ("lackey", "I  1,3\nI  1,3\n S 1ffffffffffffffff,4\n", 3, "64 bits"),
    ("lackey", "I  1,3\nX  1,3\n", 2, "expected a lackey line"),
    ("lackey", "I  1,3\n L 5,\n", 2, "decimal size"),
    ("lackey", "I  1,3\n L ,4\n", 2, "expected '<hex>,<size>'"),
    ("lackey", "I  1,3x\n", 1, "decimal size"),
    ("din", "0 1000\n7 2000\n", 2, "unknown din label '7'"),
    ("din", "0 1000\n\n3 2000\n", 3, "'3' (escape record (unknown access type)) is not supported"),
    ("din", "0 1\n4 2000\n", 2, "'4' (escape record (cache flush)) is not supported"),
    ("din", "r 1 4\nm 2000 4\n", 2, "not supported"),
    ("din", "r 10 4\nw 20\n", 2, "needs a hex size"),
    ("din", "0 1000\n0 10g0\n", 2, "hexadecimal address"),
    ("din", "r 10 0\n", 1, "size must be 1 to"),
    ("din", "r 10 100000000\n", 1, "size must be 1 to"),
    ("din", "0 1\n1 10000000000000000\n", 2, "64 bits"),
    ("din", "0 1\n0\n", 2, "expected 'LABEL ADDRESS'"),
    ("din", "0 1000\n\r\r\n", 2, "unknown din label '\\r\\r'"),
    ("din", "0 1000\n \t\r \n", 2, "unknown din label '\\r'"),
    ("csv", "addr,op\n0x10,load\n0x20,bogus\n", 3, "column 'op'"),
    ("csv", "tid,addr,size\n1,0x10,4\n1,zz,4\n", 3, "column 'addr': expected a decimal or 0x-hex integer, found 'zz'"),
    ("csv", "addr,foo\n1,2\n", 1, "expected names among tid, asid, addr, op, size, gap_ns"),
    ("csv", "\ntid,size\n1,2\n", 2, "no 'addr' column"),
    ("csv", "addr,addr\n1,2\n", 1, "twice"),
    ("csv", "addr,size\n1,2\n1\n", 3, "expected 2 fields"),
    ("csv", "addr,size\n1,2\n1,2,3\n", 3, "expected 2 fields"),
    ("csv", "addr,size\n1,2\n\n1,0\n", 4, "size 0 is only allowed for lock_w"),
    ("csv", "addr,size\n1,4294967296\n", 2, "column 'size': value '4294967296' is out of range"),
    ("csv", "asid,addr\n65536,1\n", 2, "column 'asid'"),
    ("csv", "addr\n18446744073709551616\n", 2, "out of range"),
    ("csv", "addr\n0x1ffffffffffffffff\n", 2, "out of range"),
    ("csv", "addr,op\n1,7\n", 2, "out of range"),
]


@pytest.mark.parametrize("fmt, text, line, words", BAD)
def test_malformed_input_names_file_and_line(tmp_path, fmt, text, line, words):
    path = _write(tmp_path, f"bad_{fmt}.txt", text)
    for options in ({}, {"block_bytes": 3, "chunk_records": 1}):
        with pytest.raises(TraceFormatError) as err:
            read_trace(path, fmt, **options)
        e = err.value
        assert e.line == line and e.path == str(path)
        assert str(e).startswith(f"{path}:{line}: ")
        assert words in str(e)
        assert "\n" not in str(e)


EMPTY = [
    ("lackey", "", "file is empty: no records"),
    ("lackey", "==12== Lackey\n==12== \n", "only valgrind '==PID==' lines"),
    ("din", "", "file is empty: no records"),
    ("din", "\n  \n", "no records"),
    ("csv", "", "file is empty: no records"),
    ("csv", "addr,op\n\n", "no records after the header"),
]


@pytest.mark.parametrize("fmt, text, words", EMPTY)
def test_empty_input_is_an_error(tmp_path, fmt, text, words):
    path = _write(tmp_path, "empty.txt", text)
    with pytest.raises(TraceFormatError, match="file is empty") as err:
        read_trace(path, fmt)
    assert words in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("mod", [lackey, din, csv_format])
def test_missing_file_and_bad_option(tmp_path, mod):
    with pytest.raises(TraceFormatError, match="no such file") as err:
        list(mod.iter_chunks(tmp_path / "nope.txt"))
    assert "nope.txt" in str(err.value)
    with pytest.raises(TypeError, match="bogus"):
        list(mod.iter_chunks(LACKEY_TRUE, bogus=1))


def test_sniffers():
    head = LACKEY_TRUE.read_bytes()[:65536]
    assert lackey.sniff(head) and not din.sniff(head) and not csv_format.sniff(head)
    assert lackey.sniff(b"==1== Lackey, an example Valgrind tool\n==1== \n")
    d = b"0 1000\n2 0x40 comment\nr 10 4\n"
    assert din.sniff(d) and not lackey.sniff(d) and not csv_format.sniff(d)
    c = b"tid,addr,op\n0,0x10,load\n"
    assert csv_format.sniff(c) and not lackey.sniff(c) and not din.sniff(c)
    assert not csv_format.sniff(b"tid,op\n1,2\n") and not din.sniff(b"hello\n")


def test_line_without_newline_is_bounded(tmp_path, monkeypatch):
    from vmlab.trace.readers import _text

    monkeypatch.setattr(_text, "MAX_LINE", 1000)
    path = _write(tmp_path, "bin.txt", "I  10,4\n" + "x" * 5000)
    with pytest.raises(TraceFormatError, match="longer than") as err:
        read_trace(path, "lackey", block_bytes=64)
    assert err.value.line == 2
