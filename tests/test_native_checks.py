"""What opening a ``.vmt`` checks (issue 13): the header schema, one line per bad field;
the column layout; CRCs, op codes and sizes on every read that replays or converts; and the
temporary files of a write (named after the destination and the writer's pid, removed by the
next write once the writer is dead; created with the umask's mode)."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from vmlab.errors import TraceFormatError, VmlabError
from vmlab.trace import Op, Trace, TraceMeta, open_trace, read_trace, save_trace
from vmlab.trace.convert import convert
from vmlab.trace.native import ALIGN, HeaderError, TraceWriter, crc32_combine


def _trace(n=50, gap=True):
    rng = np.random.default_rng(1)
    op = rng.integers(0, 5, n).astype(np.uint8)
    return Trace(rng.integers(0, 1 << 40, n).astype(np.uint64), op=op,
                 tid=rng.integers(0, 3, n).astype(np.uint32),
                 size=np.where(op == Op.LOCK_W, 0, 8).astype(np.uint32),
                 gap_ns=rng.integers(0, 1000, n).astype(np.uint64) if gap else None)


@pytest.fixture
def vmt(tmp_path):
    p = tmp_path / "t.vmt"
    save_trace(_trace(), p)
    return p


def _header(path):
    data = path.read_bytes()
    hlen = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[16:16 + hlen]), data


def _rewrite(path, hdr, data):
    raw = json.dumps(hdr).encode()
    path.write_bytes(data[:12] + struct.pack("<I", len(raw)) + raw + data[16 + len(raw):])


def _col(hdr, name):
    return next(c for c in hdr["columns"] if c["name"] == name)


def test_valid_file_reads_back(vmt):
    assert open_trace(vmt).equals(_trace())
    assert open_trace(vmt, verify=False).equals(_trace())


@pytest.mark.parametrize("column", ["addr", "op", "tid", "size", "gap_ns"])
def test_one_flipped_bit_in_any_column_is_refused_naming_it(vmt, column):
    hdr, data = _header(vmt)
    c = _col(hdr, column)
    data = bytearray(data)
    data[c["offset"] + c["nbytes"] // 2] ^= 1 if column != "op" else 0  # op: see below
    if column == "op":  # a flip that keeps a defined op: the CRC must catch it
        i = c["offset"] + 7
        data[i] = (data[i] + 1) % 4
    vmt.write_bytes(bytes(data))
    with pytest.raises(TraceFormatError, match=rf"column '{column}': checksum mismatch") as e:
        open_trace(vmt)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(vmt))
    for read in (lambda: read_trace(vmt), lambda: convert(vmt, vmt.with_name("o.vmt"))):
        with pytest.raises(TraceFormatError, match="checksum mismatch"):
            read()
    assert not vmt.with_name("o.vmt").exists()
    assert len(open_trace(vmt, verify=False)) == 50  # header-only open still works


def test_undefined_op_and_size_0_load_are_refused_even_with_matching_crc(tmp_path):
    import zlib

    for name, op, size, words in [("op", 9, 8, "column 'op': record 3 has op code 9"),
                                  ("size", 0, 0, "column 'size': record 3 is a LOAD of size 0")]:
        p = tmp_path / f"{name}.vmt"
        save_trace(_trace(gap=False), p)
        hdr, data = _header(p)
        data = bytearray(data)
        c = _col(hdr, name)
        itemsize = np.dtype(c["dtype"]).itemsize
        if name == "size":
            o = _col(hdr, "op")
            data[o["offset"] + 3] = Op.LOAD
            _col(hdr, "op")["crc32"] = zlib.crc32(bytes(data[o["offset"]:o["offset"] + o["nbytes"]]))
        data[c["offset"] + 3 * itemsize:c["offset"] + 4 * itemsize] = \
            (op if name == "op" else size).to_bytes(itemsize, "little")
        c["crc32"] = zlib.crc32(bytes(data[c["offset"]:c["offset"] + c["nbytes"]]))
        _rewrite(p, hdr, bytes(data))
        with pytest.raises(TraceFormatError, match=words):
            open_trace(p)


def test_the_writer_refuses_what_open_refuses(tmp_path):
    with pytest.raises(TraceFormatError, match="op code 7"):
        save_trace(Trace(np.array([1, 2], np.uint64), op=np.array([0, 7], np.uint8)),
                   tmp_path / "a.vmt")
    with pytest.raises(TraceFormatError, match="a STORE of size 0"):
        save_trace(Trace(np.array([1, 2], np.uint64), op=np.array([0, 1], np.uint8),
                         size=np.array([8, 0], np.uint32)), tmp_path / "b.vmt")
    with pytest.raises(TraceFormatError, match="column 'tid' has values over 4294967295"):
        with TraceWriter(tmp_path / "c.vmt") as w:
            w.append(addr=np.array([1], np.uint64), tid=np.array([1 << 40], np.uint64))
    assert sorted(os.listdir(tmp_path)) == []


BAD_HEADERS = [
    # (change, words)
    (lambda h: h.update(columns=5), "columns must be a list, got int"),
    (lambda h: h.update(n_records=None), "n_records must be an integer, got null"),
    (lambda h: h.update(n_records=50.0), "n_records must be an integer, got float 50.0"),
    (lambda h: h.update(n_records=-1), "n_records must be at least 0, got -1"),
    (lambda h: h.update(page_size=1), "page_size must be 512 to 1073741824, got 1"),
    (lambda h: h.update(page_size=2**70), "page_size must be 512 to"),
    (lambda h: h.update(page_size=3072), "page_size must be a power of two"),
    (lambda h: h.update(n_threads="3"), "n_threads must be an integer, got str"),
    (lambda h: h.update(n_threads=51), "n_threads must be 1 to 50, got 51"),
    (lambda h: h.update(source=[1]), "source must be a string"),
    (lambda h: h.pop("page_size"), "'page_size' is missing"),
    (lambda h: h.update(format="zip"), "format must be 'vmlab-trace'"),
    (lambda h: _col(h, "addr").pop("offset"), "column 'addr': 'offset' is missing"),
    (lambda h: _col(h, "tid").pop("nbytes"), "column 'tid': 'nbytes' is missing"),
    (lambda h: _col(h, "op").update(crc32="x"), "column 'op': crc32 must be an integer"),
    (lambda h: _col(h, "op").update(crc32=-1), "column 'op': crc32 must be 0 to 4294967295"),
    (lambda h: _col(h, "addr").update(offset=0), "column 'addr': offset (after the"),
    (lambda h: _col(h, "addr").update(offset=-4096), "must be at least"),
    (lambda h: _col(h, "addr").update(offset=ALIGN + 8), "not a multiple of 4096"),
    (lambda h: _col(h, "addr").update(dtype="<f8"), "column 'addr': dtype must be one of <u8"),
    (lambda h: _col(h, "asid").update(dtype="<u4"), "column 'asid': dtype must be one of"),
    (lambda h: _col(h, "tid").update(dtype=7), "dtype must be one of"),
    (lambda h: _col(h, "op").update(nbytes=51), "51 bytes do not hold 50 records"),
    (lambda h: _col(h, "op").update(offset=_col(h, "addr")["offset"]), "overlap"),
    (lambda h: _col(h, "op").update(offset=1 << 40), "past the end of the file"),
    (lambda h: h["columns"].append(dict(_col(h, "op"))), "column 'op' appears twice"),
    (lambda h: h["columns"].remove(_col(h, "addr")), "column(s) ['addr'] are missing"),
    (lambda h: h["columns"].append({"name": "pid"}), "columns[6].name must be one of"),
    (lambda h: h["columns"].append(3), "columns[6] must be an object"),
]


@pytest.mark.parametrize("change, words", BAD_HEADERS)
def test_header_schema_one_clear_line(vmt, change, words):
    hdr, data = _header(vmt)
    change(hdr)
    _rewrite(vmt, hdr, data)
    for verify in (True, False):
        with pytest.raises(HeaderError) as e:
            open_trace(vmt, verify=verify)
        assert words in str(e.value)
        assert "\n" not in str(e.value) and str(e.value).startswith(f"{vmt}: bad header: ")


def test_every_bad_field_is_listed(vmt):
    hdr, data = _header(vmt)
    hdr.update(n_records=None, page_size=4096.0, n_threads=-3)
    _col(hdr, "asid").pop("offset")
    _rewrite(vmt, hdr, data)
    with pytest.raises(HeaderError) as e:
        open_trace(vmt)
    assert len(e.value.problems) == 4
    assert "n_records" in e.value.problems[0] and "asid" in e.value.problems[3]


@pytest.mark.parametrize("raw, words", [
    (b"[" * 20000 + b"]" * 20000, "nested too deeply"),
    (b'{"n_records": 1' + b"0" * 5000 + b"}", "thousands of digits"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
])
def test_unparsable_headers(vmt, raw, words):
    data = vmt.read_bytes()
    vmt.write_bytes(data[:12] + struct.pack("<I", len(raw)) + raw + data[16 + len(raw):])
    with pytest.raises(TraceFormatError, match=words):
        open_trace(vmt)


def test_fixed_header_damage(vmt):
    data = vmt.read_bytes()
    vmt.write_bytes(data[:12] + struct.pack("<I", 1 << 31) + data[16:])
    with pytest.raises(TraceFormatError, match="header length 2147483648 is over"):
        open_trace(vmt)
    vmt.write_bytes(data[:100])
    with pytest.raises(TraceFormatError, match="header truncated"):
        open_trace(vmt)
    with pytest.raises(TraceFormatError, match="is a directory"):
        open_trace(vmt.parent)


def test_crc32_combine_matches_zlib():
    import zlib

    rng = np.random.default_rng(0)
    for la, lb in [(0, 5), (5, 0), (1, 1), (1000, 12345), (1 << 20, 77)]:
        a, b = rng.bytes(la), rng.bytes(lb)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), lb) == zlib.crc32(a + b)


# ---------------------------------------------------------------------------- temporary files
def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_a_dead_writer_are_removed_by_the_next_write(tmp_path):
    dst = tmp_path / "o.vmt"
    dead = _dead_pid()
    stale_file = tmp_path / f".o.vmt.vmlab-tmp-{dead}-0a1b2c3d"
    stale_dir = tmp_path / f".o.vmt.vmlab-tmp-{dead}-0a1b2c3e.d"
    alive_file = tmp_path / f".o.vmt.vmlab-tmp-{os.getppid()}-00000000"  # a live process
    other = tmp_path / f".p.vmt.vmlab-tmp-{dead}-00000000"  # another destination
    lookalike = tmp_path / f".o.vmt.vmlab-tmp-{dead}-nothex"
    stale_file.write_bytes(b"x" * 1000)
    stale_dir.mkdir()
    (stale_dir / "tid").write_bytes(b"x")
    for p in (alive_file, other, lookalike):
        p.write_bytes(b"")
    save_trace(_trace(), dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["o.vmt", alive_file.name, other.name, lookalike.name])


def test_a_full_disk_leaves_no_temporaries(tmp_path):
    """On a full disk a write fails, and so does the close of a temporary that still holds
    buffered bytes: the writer's discard went no further and left gigabytes behind (a
    recording of ``sed`` on this host: 3.7 GB); now everything goes and the first error is
    the one raised."""
    import errno

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.f.close()
            raise OSError(errno.ENOSPC, "No space left on device")

    dst = tmp_path / "o.vmt"
    with pytest.raises(OSError, match="No space left"):
        with TraceWriter(dst) as w:
            w.append(addr=np.arange(10, dtype=np.uint64), op=np.zeros(10, np.uint8))
            for name in w._files:
                w._files[name] = Full(w._files[name])
            w.append(addr=np.arange(10, dtype=np.uint64), op=np.zeros(10, np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_temporaries_get_the_mode_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        save_trace(_trace(), tmp_path / "a.vmt")
        (tmp_path / "b").write_bytes(b"")
    finally:
        os.umask(old)
    assert (tmp_path / "a.vmt").stat().st_mode & 0o777 == (tmp_path / "b").stat().st_mode & 0o777
    assert (tmp_path / "a.vmt").stat().st_mode & 0o777 == 0o640


def test_destination_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "d.vmt").mkdir()
    with pytest.raises(VmlabError, match="is a directory"):
        save_trace(_trace(), tmp_path / "d.vmt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.vmt"]


def test_page_size_range():
    for bad in (0, 1, 256, 3000, 1 << 31, 1 << 70, True, 4096.0):
        with pytest.raises(TraceFormatError, match="page_size"):
            TraceMeta(page_size=bad)
    assert TraceMeta(page_size=512).page_size == 512
    assert TraceMeta(page_size=1 << 30).page_size == 1 << 30


def test_a_writer_dropped_without_close_leaves_nothing(tmp_path):
    # an exception outside a ``with`` block, or a forgotten close(): the writer's temporary
    # file and column folder go when it is collected, or when the interpreter exits
    import gc

    w = TraceWriter(tmp_path / "a.vmt")
    w.append(addr=np.arange(10, dtype=np.uint64))
    assert len(os.listdir(tmp_path)) == 2   # the temporary file and its column folder
    del w
    gc.collect()
    assert os.listdir(tmp_path) == []
    code = ("import sys, numpy as np; from vmlab.trace.native import TraceWriter; "
            "w = TraceWriter(sys.argv[1]); w.append(addr=np.arange(5, dtype=np.uint64))")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b.vmt")], check=True)
    assert os.listdir(tmp_path) == []
    # close() publishes, and leaves nothing else
    w = TraceWriter(tmp_path / "c.vmt")
    w.append(addr=np.arange(3, dtype=np.uint64))
    w.close()
    del w
    gc.collect()
    assert os.listdir(tmp_path) == ["c.vmt"] and len(open_trace(tmp_path / "c.vmt")) == 3
    with pytest.raises(TraceFormatError, match="save_trace needs a vmlab Trace, got str"):
        save_trace("c.vmt", tmp_path / "d.vmt")
