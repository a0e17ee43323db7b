"""Mappings that move (``mremap``): the moves table of a recording's mappings, kept in the
native format (version 6), renumbered by strip and slicing, recorded by both recorders, and
turned into ``Unmap(..., to=...)`` by ``unmaps_for`` (docs/model.md 11.9).

Tests that run valgrind, perf or a C compiler say so in their skip reason and are skipped
only when that is missing.
"""
from __future__ import annotations


import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, open_trace
from vmlab.trace.mappings import (FILE_READ_DTYPE, FOREVER, MAPPING_DTYPE, MOVE_DTYPE, NO_FILE,
                                  Backing, Mappings)
from vmlab.trace.native import (KERNEL_VERSION, MOVES_VERSION, READS_VERSION, TraceWriter,
                                read_header)
from vmlab.trace.strip import strip_trace
from vmt_header import check_damaged_table, edit_header  # noqa: E402

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


def test_a_mapping_row_of_an_address_space_past_the_limit_is_one_line_naming_it():
    # (found by benchmarks/fuzz_mappings.py: the error named an "unrecorded" VMA instead)
    t = _grown().table.copy()
    t["asid"][1] = 65535
    with pytest.raises(TraceFormatError, match=r"^mapping 1: address space 65535; expected an "
                                               r"address-space id below 4096"):
        Mappings(t, [], "test")


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


def test_damaged_moves_are_one_clear_error(tmp_path):
    p = tmp_path / "m.vmt"
    _write(p, _grown(), GROWN_ADDR)
    check_damaged_table(p, "moves", "moves table", MOVE_DTYPE.names, 6)


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
    edit_header(p, lambda h: h["moves"].update(crc32=zlib.crc32(mv.tobytes())))
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


# -- the recorders --------------------------------------------------------------------------
def _rows_of(t):
    return sorted((int(r["start"]), int(r["end"]), int(r["from_record"]),
                   int(r["until_record"])) for r in t)


def test_lackeys_syscall_lines_record_each_move(tmp_path):
    from vmlab.trace.record import AddressSpace, FileTable, SyscallTracker

    sp = AddressSpace()
    tr = SyscallTracker(sp, FileTable({}, late_when=None), str(tmp_path))
    C, D, E, F, X, Y = 0x80000, 0xA0000, 0xC0000, 0xD0000, 0xE0000, 0xF0000
    lines = [
        (1, "sys_mmap ( 0x0, 16384, 3, 34, 4294967295, 0 ) --> [pre-success] Success(0x10000)"),
        # moved and grown (MREMAP_MAYMOVE): 4 pages go, 4 new ones after them
        (2, "sys_mremap ( 0x10000, 16384, 32768, 0x1 ) --> [pre-success] Success(0x40000)"),
        # grown in place: no move
        (3, "sys_mremap ( 0x40000, 32768, 40960, 0x1 ) --> [pre-success] Success(0x40000)"),
        # shrunk and moved to a fixed address (MREMAP_FIXED): the first 2 pages move
        (4, "sys_mremap ( 0x40000, 40960, 8192, 0x3, 0x80000 ) --> [pre-success] "
            "Success(0x80000)"),
        # MREMAP_DONTUNMAP: the old range stays mapped (its rows end and start again)
        (5, "sys_mremap ( 0x80000, 8192, 8192, 0x5 ) --> [pre-success] Success(0xa0000)"),
        (6, "sys_mremap ( 0xa0000, 8192, 16384, 0x1 ) --> [pre-fail] Failure(0xc)"),
        # made, moved and unmapped at one record: nothing any access saw, no move kept
        (7, "sys_mmap ( 0x0, 4096, 3, 34, 4294967295, 0 ) --> Success(0xc0000)"),
        (7, "sys_mremap ( 0xc0000, 4096, 8192, 0x1 ) --> Success(0xd0000)"),
        (7, "sys_munmap ( 0xd0000, 8192 )[sync] --> Success(0x0)"),
        # moved twice at one record: both kept, in call order
        (8, "sys_mremap ( 0xa0000, 8192, 8192, 0x1 ) --> Success(0xe0000)"),
        (8, "sys_mremap ( 0xe0000, 8192, 8192, 0x1 ) --> Success(0xf0000)"),
    ]
    for at, text in lines:
        tr.line(f"SYSCALL[7,1](25) {text} ".encode(), at)
    assert _rows_of(sp.table()) == sorted([
        (A, A + 4 * PS, 1, 2), (B, B + 8 * PS, 2, 3), (B, B + 10 * PS, 3, 4),
        (C, C + 2 * PS, 4, 5), (C, C + 2 * PS, 5, FOREVER), (D, D + 2 * PS, 5, 8),
        (Y, Y + 2 * PS, 8, FOREVER)])
    assert sp.moves_table().tolist() == [
        (0, A, A + 4 * PS, B, 2), (0, B, B + 2 * PS, C, 4), (0, C, C + 2 * PS, D, 5),
        (0, D, D + 2 * PS, X, 8), (0, X, X + 2 * PS, Y, 8)]
    assert sp.moves[3] == (E, E + PS, F, 7) and len(sp.moves) == 6   # seen, not kept
    Mappings(sp.table(), [], "test", None, sp.moves_table())     # a consistent table


def test_perfs_mremap_events_record_each_move():
    from vmlab.trace.record import FileTable, mappings_from_perf

    files = FileTable({}, late_when=None)
    mm = ("mmap2", 100, A, 4 * PS, 0, 0, 0, "rw-p", "//anon", 1)
    ev = [mm,
          ("mremap", 100, {"addr": A, "old_len": 4 * PS, "new_len": 8 * PS, "flags": 1,
                           "new_addr": 0}, 2),
          ("mremap_result", 100, B, 2),
          ("mremap", 100, {"addr": B, "old_len": 8 * PS, "new_len": 8 * PS, "flags": 5,
                           "new_addr": 0}, 3),
          ("mremap_result", 100, 0x80000, 3),
          ("mremap", 100, {"addr": 0x80000, "old_len": 8 * PS, "new_len": 9 * PS, "flags": 1},
           4),
          ("mremap_result", 100, 2**64 - 12, 4),                   # -ENOMEM: nothing
          ("mmap2", 200, A, PS, 0, 0, 0, "rw-p", "//anon", 5),     # another process
          ("mremap", 200, {"addr": A, "old_len": PS, "new_len": PS, "flags": 1}, 6),
          ("mremap_result", 200, 0x90000, 6)]
    t, moves = mappings_from_perf(ev, files, {100: 0, 200: 1})
    assert moves.tolist() == [(0, A, A + 4 * PS, B, 2), (0, B, B + 8 * PS, 0x80000, 3),
                              (1, A, A + PS, 0x90000, 6)]
    assert _rows_of(t[t["asid"] == 0]) == sorted([
        (A, A + 4 * PS, 1, 2), (B, B + 8 * PS, 2, 3), (B, B + 8 * PS, 3, FOREVER),
        (0x80000, 0x80000 + 8 * PS, 3, FOREVER)])
    Mappings(t, [], "test", None, moves)


#: Writes N anonymous pages, which cannot grow in place (a guard page after them), moves
#: them with mremap(MREMAP_MAYMOVE) to 2N pages and writes all 2N: the first N are the
#: same pages (no fault in the kernel), the next N new ones.
MOVER = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#define N 256
int main(void) {
    long ps = 4096;
    char *p = mmap(NULL, (N + 1) * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED || mprotect(p + N * ps, ps, PROT_NONE)) return 1;
    for (int i = 0; i < N; i++) p[i * ps] = 1;
    char *q = mremap(p, N * ps, 2 * N * ps, MREMAP_MAYMOVE);
    if (q == MAP_FAILED || q == p) return 2;
    for (int i = 0; i < 2 * N; i++) q[i * ps] = 2;
    printf("%lx %lx\n", (unsigned long)p, (unsigned long)q);
    return 0;
}
"""
N = 256


@pytest.fixture(scope="module")
def mover_bin(tmp_path_factory):
    """:data:`MOVER` compiled."""
    from test_record import compile_c

    return compile_c(tmp_path_factory, "mover", MOVER)


def _record_mover(mover_bin, record):
    """``(trace, p, q, path)``: the recording of :data:`MOVER` by ``record``
    (``record_lackey`` or ``record_perf``), where it moved from and to (as the program
    printed them), and the recording's file."""
    d = mover_bin.parent
    name = record.__name__
    with open(d / f"{name}.txt", "w") as out:
        path, info = record([str(mover_bin)], d / f"{name}.vmt", stdout=out)
    assert info["exit_code"] == 0
    p, q = (int(x, 16) for x in (d / f"{name}.txt").read_text().split())
    return open_trace(path), p, q, path


@pytest.fixture(scope="module")
def mover(mover_bin):
    """The lackey recording of :data:`MOVER` (:func:`_record_mover`)."""
    from test_record import HAVE_VALGRIND

    if not HAVE_VALGRIND:
        pytest.skip("needs valgrind (apt-get install valgrind)")
    from vmlab.trace.record import record_lackey

    return _record_mover(mover_bin, record_lackey)


def test_a_recorded_mremap_is_one_move_at_its_rows_end(mover):
    tr, p, q, path = mover
    mv = tr.mappings.moves
    assert len(mv) == 1
    at = int(mv["at_record"][0])
    assert mv.tolist() == [(0, p, p + N * PS, q, at)]
    hdr = read_header(path)     # (version 9: a lackey recording has the kernel's stores)
    assert "moves" in hdr and hdr["version"] == KERNEL_VERSION
    t = tr.mappings.table
    old = t[(t["start"] == p) & (t["end"] == p + N * PS)]
    new = t[(t["start"] == q) & (t["end"] == q + 2 * N * PS)]
    assert old["until_record"].tolist() == [at] and new["from_record"].tolist() == [at]
    # every write to the old pages comes before the move, every write to the new after it
    a = np.asarray(tr.addr)
    i = np.arange(len(a))
    assert (i[(a >= p) & (a < p + N * PS)] < at).all()
    assert (i[(a >= q) & (a < q + 2 * N * PS)] >= at).all()


def test_perf_records_the_move_and_the_kernel_takes_no_fault_on_moved_pages(mover_bin):
    from test_record import HAVE_PERF_RECORD

    if not HAVE_PERF_RECORD:
        pytest.skip("needs perf (apt-get install linux-perf) and root or "
                    "kernel.perf_event_paranoid=-1")
    from vmlab.model.recorded import unmaps_for
    from vmlab.model.scenario import Unmap
    from vmlab.trace.record import record_perf

    tr, p, q, _path = _record_mover(mover_bin, record_perf)
    mv = tr.mappings.moves
    assert len(mv) == 1
    at = int(mv["at_record"][0])
    assert mv.tolist() == [(0, p, p + N * PS, q, at)]
    # the kernel's own faults: the N old pages, then only the N new pages at q
    a = np.asarray(tr.addr)[np.asarray(tr.op) < Op.LOCK_W]
    assert ((a >= p) & (a < p + N * PS)).sum() == N
    assert ((a >= q) & (a < q + N * PS)).sum() == 0
    assert ((a >= q + N * PS) & (a < q + 2 * N * PS)).sum() == N
    assert Unmap(at, p, p + N * PS, 0, to=q) in unmaps_for(tr)


def test_unmaps_for_a_recorded_move_moves_its_pages(mover, tmp_path):
    from naive_engine import canonical, first_difference, simulate

    import vmlab.engine
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.recorded import runnable, scenario_for, unmaps_for
    from vmlab.model.scenario import Unmap

    tr, p, q, _path = mover
    at = int(tr.mappings.moves["at_record"][0])
    u = unmaps_for(tr)
    assert Unmap(at, p, p + N * PS, 0, to=q) in u
    assert [x for x in u if x.record == at] == [Unmap(at, p, p + N * PS, 0, to=q)]
    sc = scenario_for(tr)
    assert Unmap(at, p, p + N * PS, 0, to=q) in sc.unmaps
    assert not [s for s in runnable(sc, RUNS_KNOBS)[1] if "move" in s]
    # the reference (the stripped recording: the same faults with unlimited memory): the
    # moved pages take no fault at their new address, the N new ones do
    s = open_trace(strip_trace(tr, tmp_path / "s.vmt")[0])
    sc = scenario_for(s)
    r = simulate(sc, "nopage")
    vpn = np.asarray(r.faults["vpn"])
    assert ((vpn >= q // PS) & (vpn < q // PS + N)).sum() == 0
    assert ((vpn >= q // PS + N) & (vpn < q // PS + 2 * N)).sum() == N
    plain = sc.replace(unmaps=[Unmap(x.record, x.start, x.end, x.asid) for x in sc.unmaps])
    assert simulate(plain, "nopage").counters["n_faults"] == r.counters["n_faults"] + N
    # the engine runs the move as the reference does
    assert first_difference(canonical(vmlab.engine.run(sc, "nopage")), canonical(r)) is None


# -- unmaps_for and scenario_for --------------------------------------------------------------
C, X = 0x80000, 0xC0000


def _unmaps(rows, moves, n=12):
    """unmaps_for of a trace of ``n`` writes to an unrelated page and these mappings."""
    import tempfile
    from pathlib import Path

    from vmlab.model.recorded import unmaps_for

    m = Mappings(_rows(*rows), [], "test", None, _moves(*moves))
    with tempfile.TemporaryDirectory() as d:
        return unmaps_for(_write(Path(d) / "t.vmt", m, [0x900000] * n))


def test_unmaps_for_moves_then_unmaps_what_is_left():
    from vmlab.model.scenario import Unmap

    an = Backing.ANON
    # moved and grown: the move alone
    assert _unmaps([(A, A + 4 * PS, an, 0, 2), (B, B + 8 * PS, an, 2, FOREVER)],
                   [(A, A + 4 * PS, B, 2)]) == [Unmap(2, A, A + 4 * PS, 0, to=B)]
    # shrunk and moved (MREMAP_FIXED): the first 2 pages move, then the tail is unmapped
    assert _unmaps([(A, A + 4 * PS, an, 0, 2), (B, B + 2 * PS, an, 2, FOREVER)],
                   [(A, A + 2 * PS, B, 2)]) == [Unmap(2, A, A + 2 * PS, 0, to=B),
                                                Unmap(2, A + 2 * PS, A + 4 * PS, 0)]
    # MREMAP_DONTUNMAP: the old range is mapped again at once: the move alone
    assert _unmaps([(A, A + 2 * PS, an, 0, 2), (A, A + 2 * PS, an, 2, FOREVER),
                    (B, B + 2 * PS, an, 2, FOREVER)],
                   [(A, A + 2 * PS, B, 2)]) == [Unmap(2, A, A + 2 * PS, 0, to=B)]
    # moved and unmapped before the next record: the destination goes after the move
    assert _unmaps([(A, A + 2 * PS, an, 0, 2), (G, G + PS, an, 0, FOREVER)],
                   [(A, A + 2 * PS, B, 2)]) == [Unmap(2, A, A + 2 * PS, 0, to=B),
                                                Unmap(2, B, B + 2 * PS, 0)]
    # moved twice at one record, in call order; the middle range ends unmapped (empty)
    assert _unmaps([(A, A + 2 * PS, an, 0, 2), (C, C + 2 * PS, an, 2, FOREVER)],
                   [(A, A + 2 * PS, B, 2), (B, B + 2 * PS, C, 2)]) == [
        Unmap(2, A, A + 2 * PS, 0, to=B), Unmap(2, B, B + 2 * PS, 0, to=C),
        Unmap(2, B, B + 2 * PS, 0)]
    # X unmapped, then A moved over it (free, then realloc): the move clears X's pages
    assert _unmaps([(A, A + 2 * PS, an, 0, 2), (X, X + 2 * PS, an, 0, 2),
                    (X, X + 2 * PS, an, 2, FOREVER)],
                   [(A, A + 2 * PS, X, 2)]) == [Unmap(2, A, A + 2 * PS, 0, to=X)]
    # a munmap at an earlier record and a move at the trace's end (nothing after it)
    assert _unmaps([(A, A + 2 * PS, an, 0, 12), (B, B + 2 * PS, an, 12, FOREVER),
                    (X, X + PS, an, 0, 3)], [(A, A + 2 * PS, B, 12)]) == [
        Unmap(3, X, X + PS, 0)]


def _file_then_moved(tmp_path, touched_after=True):
    """A file mapped at B and read (record 1), unmapped at 2; anonymous pages at A written
    (records 0 and 2) and moved over B at 3, written there (3, 4) when ``touched_after``,
    else a page of another mapping C written (3): nothing touches B after the move."""
    from vmlab.trace.mappings import FileInfo

    t = _rows((A, A + 4 * PS, Backing.ANON, 0, 3), (B, B + 4 * PS, Backing.ANON, 3, FOREVER),
              (B, B + 4 * PS, Backing.FILE, 0, 2), (C, C + PS, Backing.ANON, 0, FOREVER))
    t["file"][2], t["prot"][2] = 0, 1
    files = [FileInfo("/data/f", 1, 2, 4 * PS, np.ones(4, bool), "before_run")]
    m = Mappings(t, files, "test", None, _moves((A, A + 4 * PS, B, 3)))
    if touched_after:
        return _write(tmp_path / "f.vmt", m, [A, B, A + PS, B, B + PS],
                      [Op.STORE, Op.LOAD, Op.STORE, Op.STORE, Op.STORE])
    return _write(tmp_path / "f.vmt", m, [A, B, A + PS, C],
                  [Op.STORE, Op.LOAD, Op.STORE, Op.STORE])


def test_a_move_over_a_range_an_earlier_mapping_used_is_followed(tmp_path):
    """The anonymous pages moved over the file's old range and written there: the range is
    mapped again as something else and touched under both, so the moved-in mapping gets
    addresses of its own (vmlab.model.generations), and the move is followed: its pages
    keep their PTEs, the writes after it take no fault (before: the move was replayed as
    an unmap, and the writes faulted as copies of the file's pages, 5 faults)."""
    import vmlab
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.generations import SHIFT
    from vmlab.model.recorded import runnable, scenario_for, unmaps_for
    from vmlab.model.scenario import Unmap

    tr = _file_then_moved(tmp_path)
    B1 = B + (1 << SHIFT)
    assert unmaps_for(tr) == [Unmap(2, B, B + 4 * PS), Unmap(3, A, A + 4 * PS, to=B1)]
    sc = scenario_for(tr)
    assert sc.unmaps == (Unmap(2, B, B + 4 * PS), Unmap(3, A, A + 4 * PS, to=B1))
    same, said = runnable(sc, RUNS_KNOBS)
    assert said == []
    assert vmlab.simulate(same).summary["n_faults"] == 3      # A, B (the file), A + PS


def test_a_move_the_static_vmas_cannot_take_is_an_unmap_and_says_so(tmp_path):
    """The same move with nothing touching B after it: no second identity to separate, the
    static VMA at B is the file's, which cannot take the anonymous pages."""
    import vmlab
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.recorded import runnable, scenario_for, unmaps_for
    from vmlab.model.scenario import Unmap

    tr = _file_then_moved(tmp_path, touched_after=False)
    assert unmaps_for(tr) == [Unmap(2, B, B + 4 * PS), Unmap(3, A, A + 4 * PS, to=B)]
    sc = scenario_for(tr)
    assert sc.unmaps == (Unmap(2, B, B + 4 * PS), Unmap(3, A, A + 4 * PS))
    same, said = runnable(sc, RUNS_KNOBS)
    assert said == [
        "the move (mremap) of [0x10000, 0x14000) to 0x40000 at record 3 (replayed as the "
        "unmap of its source: the static VMAs cannot take it, it moves the pages of VMA "
        "anon@0x10000 to [0x40000, 0x44000), which VMA f@0x40000 maps as other memory: a "
        "moved page must stay the same page (same backing, file and offset))"]
    assert vmlab.simulate(same).summary["n_faults"] == 4
    # unmaps given by hand are the caller's: nothing said
    assert runnable(scenario_for(tr, unmaps=()), RUNS_KNOBS)[1] == []


def test_many_moves_not_followed_are_counted_after_the_first_few(tmp_path):
    from vmlab.model.recorded import MOVES_NAMED, runnable, scenario_for
    from vmlab.model.scenario import Unmap
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.trace import Trace

    tr = _file_then_moved(tmp_path, touched_after=False)
    m = tr.mappings
    k = MOVES_NAMED + 2        # the same move recorded k times (one record, in a row)
    many = Trace.from_columns(tr.columns, tr.meta, mappings=Mappings(
        m.table, m.files, m.source, None, np.repeat(m.moves, k)))
    sc = scenario_for(many)
    assert sc.unmaps == (Unmap(2, B, B + 4 * PS),) + (Unmap(3, A, A + 4 * PS),) * k
    said = runnable(sc, RUNS_KNOBS)[1]
    assert len(said) == MOVES_NAMED + 1 and said[0] == said[MOVES_NAMED - 1]
    assert said[-1] == "2 more move(s) replayed as the unmap of their source the same way"


def test_unmap_ranges_merge_whatever_pairs_they_are_made_of():
    """``unmaps_for`` merges what is left of ended rows (lists) with moves' destinations
    (tuples); two of them starting at one address were compared as a list and a tuple
    (TypeError, found by benchmarks/fuzz_mappings.py)."""
    from vmlab.model.recorded import _merge

    assert _merge([[5, 10], (5, 7), (1, 3), [2, 4]]) == [[1, 4], [5, 10]]
