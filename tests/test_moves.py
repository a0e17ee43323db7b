"""Mappings that move (``mremap``): the moves table of a recording's mappings, kept in the
native format (version 6), renumbered by strip and slicing, recorded by both recorders, and
turned into ``Unmap(..., to=...)`` by ``unmaps_for`` (docs/model.md 11.9).

Tests that run valgrind, perf or a C compiler say so in their skip reason and are skipped
only when that is missing.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, open_trace
from vmlab.trace.mappings import (FILE_READ_DTYPE, FOREVER, MAPPING_DTYPE, MOVE_DTYPE, NO_FILE,
                                  Backing, Mappings)
from vmlab.trace.native import MOVES_VERSION, READS_VERSION, TraceWriter, read_header
from vmlab.trace.strip import strip_trace

PS = 4096
A, B, G = 0x10000, 0x40000, 0x14000      # the source, the destination, the guard page


def _rows(*rows):
    t = np.zeros(len(rows), MAPPING_DTYPE)
    for i, (start, end, backing, frm, until) in enumerate(rows):
        t[i] = (0, start, end, 3, 0, backing, NO_FILE, 0, frm, until)
    return t


def _moves(*rows):
    return np.array([(0, *r) for r in rows], MOVE_DTYPE)


def _grown(at=3):
    """4 anonymous pages at A (a guard page after them) moved to B and grown to 8 at ``at``."""
    t = _rows((A, A + 4 * PS, Backing.ANON, 0, at), (G, G + PS, Backing.ANON, 0, FOREVER),
              (B, B + 8 * PS, Backing.ANON, at, FOREVER))
    return Mappings(t, [], "test", None, _moves((A, A + 4 * PS, B, at)))


def _write(path, mappings, addr, op=None):
    op = [Op.STORE] * len(addr) if op is None else op
    with TraceWriter(path, mappings=mappings) as w:
        w.append(addr=np.array(addr, np.uint64), op=np.array(op, np.uint8))
    return open_trace(path)


# writes A..A+3 (records 0-3 before the move at 4), then B..B+7 (records 4-11)
GROWN_ADDR = [A + i * PS for i in range(4)] + [B + i * PS for i in range(8)]


# -- the table --------------------------------------------------------------------------
def test_moves_are_kept_compared_and_shown():
    m = _grown()
    assert m.moves.dtype == MOVE_DTYPE and len(m.moves) == 1
    assert m == _grown() and m != _grown(at=4) and m != Mappings(m.table, [], "test")
    assert "1 moves" in repr(m)
    df = m.moves_frame()
    assert df.to_dict("records") == [{"asid": 0, "start": A, "end": A + 4 * PS, "to": B,
                                      "at_record": 3, "pages": 4}]
    # a table without moves has an empty one
    assert len(Mappings(m.table, [], "test").moves) == 0


@pytest.mark.parametrize("move, match", [
    ((A, A, B, 3), r"move 0: end 0x10000 is not above start 0x10000"),
    ((A + 8, A + 4 * PS, B, 3), r"move 0: start 0x10008 is not a multiple of 4096"),
    ((A, A + 4 * PS - 1, B, 3), r"move 0: end 0x13fff is not a multiple of 4096"),
    ((A, A + 4 * PS, B + 1, 3), r"move 0: to 0x40001 is not a multiple of 4096"),
    ((A, A + 4 * PS, A + 2 * PS, 3), r"move 0: the destination \[0x12000, 0x16000\) "
                                      r"overlaps the source \[0x10000, 0x14000\)"),
    ((A, A + 4 * PS, 2**64 - PS, 3), r"move 0: the destination \[0xfffffffffffff000, "
                                      r"0x10000000000003000\) lies past the end"),
    ((A, A + 4 * PS, B, 5), r"move 0: at_record 5 is not a record at which a mapping row "
                            r"of address space 0 starts or ends"),
    ((A, A + 4 * PS, B, FOREVER), r"move 0: at_record 18446744073709551615 is not a record"),
])
def test_a_bad_move_is_one_line_naming_it(move, match):
    with pytest.raises(TraceFormatError, match=match):
        Mappings(_grown().table, [], "test", None, _moves(move))
    # another address space's rows do not place a move
    other = np.array([(1, A, A + 4 * PS, B, 3)], MOVE_DTYPE)
    with pytest.raises(TraceFormatError, match="address space 1 starts or ends"):
        Mappings(_grown().table, [], "test", None, other)
    with pytest.raises(TraceFormatError, match="moves table must have the fields"):
        Mappings(_grown().table, [], "test", None, np.zeros(1, FILE_READ_DTYPE))


# -- the native format --------------------------------------------------------------------
def test_moves_round_trip_through_version_6(tmp_path):
    tr = _write(tmp_path / "m.vmt", _grown(), GROWN_ADDR)
    assert read_header(tmp_path / "m.vmt")["version"] == MOVES_VERSION == 6
    assert int.from_bytes((tmp_path / "m.vmt").read_bytes()[8:12], "little") == 6
    assert tr.mappings == _grown()
    # without moves the file keeps the version it had (2 here; 3 with file reads)
    plain = Mappings(_grown().table, [], "test")
    assert len(_write(tmp_path / "p.vmt", plain, GROWN_ADDR).mappings.moves) == 0
    assert read_header(tmp_path / "p.vmt")["version"] == 2
    reads = np.array([(0, 0, 0, 10, 0, 1)], FILE_READ_DTYPE)
    from vmlab.trace.mappings import FileInfo
    f = [FileInfo("/data/f", 1, 2, PS)]
    _write(tmp_path / "r.vmt", Mappings(plain.table, f, "test", reads), GROWN_ADDR)
    assert read_header(tmp_path / "r.vmt")["version"] == READS_VERSION
    both = _write(tmp_path / "b.vmt", Mappings(plain.table, f, "test", reads, _grown().moves),
                  GROWN_ADDR)
    assert read_header(tmp_path / "b.vmt")["version"] == 6
    assert np.array_equal(both.mappings.reads, reads)
    assert np.array_equal(both.mappings.moves, _grown().moves)
    # with a call column (version 5) and moves: 6
    with TraceWriter(tmp_path / "c.vmt", mappings=_grown(), with_call=True) as w:
        w.append(addr=np.array(GROWN_ADDR, np.uint64))
    assert read_header(tmp_path / "c.vmt")["version"] == 6
    assert open_trace(tmp_path / "c.vmt").has_call


def _edit(path, change):
    """Rewrite ``path``'s JSON header through ``change(hdr)`` (the header area keeps its
    length: the columns stay where they are)."""
    raw = bytearray(path.read_bytes())
    hlen = int.from_bytes(raw[12:16], "little")
    hdr = json.loads(raw[16:16 + hlen])
    change(hdr)
    text = json.dumps(hdr).encode()
    assert len(text) <= hlen
    raw[16:16 + hlen] = text.ljust(hlen)
    raw[8:12] = int(hdr["version"]).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


def test_damaged_moves_are_one_clear_error(tmp_path):
    p = tmp_path / "m.vmt"
    _write(p, _grown(), GROWN_ADDR)
    good = p.read_bytes()
    hdr = read_header(p)
    raw = bytearray(good)
    raw[hdr["moves"]["offset"] + 3] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(TraceFormatError, match="checksum mismatch in moves"):
        open_trace(p)

    def case(change, match):
        p.write_bytes(good)
        _edit(p, change)
        with pytest.raises(TraceFormatError, match=match) as e:
            open_trace(p)
        assert "\n" not in str(e.value)

    case(lambda h: h["moves"].update(n_rows=2), r"moves table: 34 bytes do not hold 2 rows")
    case(lambda h: h["moves"].update(nbytes=10**9), r"file is truncated: moves needs bytes")
    case(lambda h: h["moves"].update(dtype=[["asid", "<u2"], ["start", "<u8"]]),
         r"moves table has fields \('asid', 'start'\), expected \('asid', 'start', 'end', "
         r"'to', 'at_record'\)")
    case(lambda h: h.update(moves=[1]), r"header field 'moves' must be an object")
    case(lambda h: h["moves"].pop("offset"), r"header field 'moves' needs offset")
    case(lambda h: h.update(version=5), r"header field 'moves' needs format version 6, the "
                                        r"file says version 5")


def test_a_moves_table_that_breaks_the_rules_is_refused_on_open(tmp_path):
    # the bytes are intact (checksum rewritten) but the move is not at a row's end
    import zlib
    p = tmp_path / "m.vmt"
    _write(p, _grown(), GROWN_ADDR)
    hdr = read_header(p)
    raw = bytearray(p.read_bytes())
    mv = np.frombuffer(bytes(raw[hdr["moves"]["offset"]:][:hdr["moves"]["nbytes"]]),
                       MOVE_DTYPE).copy()
    mv["at_record"] = 7
    raw[hdr["moves"]["offset"]:hdr["moves"]["offset"] + mv.nbytes] = mv.tobytes()
    p.write_bytes(bytes(raw))
    _edit(p, lambda h: h["moves"].update(crc32=zlib.crc32(mv.tobytes())))
    with pytest.raises(TraceFormatError, match=r"m\.vmt: move 0: at_record 7 is not a record"):
        open_trace(p)


# -- slicing and stripping ----------------------------------------------------------------
def test_a_slice_keeps_the_moves_inside_it_renumbered(tmp_path):
    tr = _write(tmp_path / "m.vmt", _grown(), GROWN_ADDR)
    assert tr[1:10].mappings.moves["at_record"].tolist() == [2]
    assert tr[1:10].mappings.moves["start"].tolist() == [A]
    # a window starting at the move, or ending at it, or before it, has none
    for lo, hi in ((3, 10), (0, 3), (0, 2)):
        assert len(tr[lo:hi].mappings.moves) == 0


def test_strip_keeps_each_move_at_its_rows_end(tmp_path):
    # A's pages written twice each before the move: strip drops the repeats
    addr = [A, A, A + PS, A + PS, A + 2 * PS, A + 3 * PS] + [B + i * PS for i in range(8)]
    t = _rows((A, A + 4 * PS, Backing.ANON, 0, 6), (G, G + PS, Backing.ANON, 0, FOREVER),
              (B, B + 8 * PS, Backing.ANON, 6, FOREVER))
    tr = _write(tmp_path / "m.vmt", Mappings(t, [], "test", None, _moves((A, A + 4 * PS, B, 6))),
                addr)
    path, info = strip_trace(tr, tmp_path / "s.vmt", filter_pages=4)
    s = open_trace(path)
    assert info["records_out"] == 12
    assert s.mappings.moves["at_record"].tolist() == [4]
    assert s.mappings.table["until_record"][0] == 4
