"""Large file mappings the kernel places itself (``thp_get_unmapped_area()``): the
placements table of a recording's mappings, kept in the native format (version 7),
renumbered by strip and slicing, and recorded by the lackey recorder (valgrind chooses every
address itself).

Tests that run valgrind or a C compiler say so in their skip reason and are skipped only
when that is missing.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, open_trace
from vmlab.trace.mappings import (FILE_READ_DTYPE, FOREVER, MAPPING_DTYPE, MOVE_DTYPE,
                                  PLACEMENT_DTYPE, Backing, FileInfo, Mappings, kernel_aligns)
from vmlab.trace.native import (KERNEL_VERSION, MOVES_VERSION, PLACEMENTS_VERSION,
                                SUPPORTED_VERSIONS, TraceWriter, read_header)
from vmlab.trace.strip import strip_trace
from vmt_header import check_damaged_table, edit_header  # noqa: E402

PS = 4096
MB2 = 2 << 20
A = 0x4000000                  # the recorded (valgrind's) address of the placed mapping
FILE = [FileInfo("/data/big", 1, 2, 2 * MB2)]


def _placed(at=2, off=0, n_pages=1024):
    """One 4 MiB file mapping at A made at record ``at`` (an anonymous page before it from
    record 0) and its placement."""
    t = np.zeros(2, MAPPING_DTYPE)
    t[0] = (0, 0x1000, 0x2000, 3, 0, Backing.ANON, 0xFFFFFFFF, 0, 0, FOREVER)
    t[1] = (0, A, A + n_pages * PS, 1, 0, Backing.FILE, 0, off, at, FOREVER)
    pl = np.array([(0, A, A + n_pages * PS, at, off)], PLACEMENT_DTYPE)
    return Mappings(t, FILE, "test", None, None, pl)


# two accesses to the anonymous page, then eight to the file mapping (from record 2)
ADDR = [0x1000, 0x1008] + [A + i * PS for i in range(8)]


def _write(path, mappings, addr=ADDR):
    with TraceWriter(path, mappings=mappings) as w:
        w.append(addr=np.array(addr, np.uint64), op=np.full(len(addr), Op.LOAD, np.uint8))
    return open_trace(path)


# -- the table --------------------------------------------------------------------------
def test_placements_are_kept_compared_and_shown():
    m = _placed()
    assert m.placements.dtype == PLACEMENT_DTYPE and len(m.placements) == 1
    assert m == _placed() and m != _placed(at=3) and m != Mappings(m.table, FILE, "test")
    assert "1 placements" in repr(m)
    assert m.placements_frame().to_dict("records") == [
        {"asid": 0, "start": A, "end": A + 2 * MB2, "at_record": 2, "file_offset": 0,
         "pages": 1024}]
    assert len(Mappings(m.table, FILE, "test").placements) == 0


@pytest.mark.parametrize("rows, match", [
    ([(0, A, A, 2, 0)], r"placement 0: end 0x4000000 is not above start 0x4000000"),
    ([(0, A + 8, A + MB2, 2, 0)], r"placement 0: start 0x4000008 is not a multiple of 4096"),
    ([(0, A, A + MB2 - 1, 2, 0)], r"placement 0: end 0x41fffff is not a multiple of 4096"),
    ([(0, A, A + MB2, 2, 100)], r"placement 0: file_offset 0x64 is not a multiple of 4096"),
    ([(0, A, A + MB2, 5, 0), (0, A, A + MB2, 2, 0)],
     r"placement 1: at_record 2 is before the previous placement's 5"),
])
def test_a_bad_placement_is_one_line_naming_it(rows, match):
    with pytest.raises(TraceFormatError, match=match) as e:
        Mappings(_placed().table, FILE, "test", None, None, np.array(rows, PLACEMENT_DTYPE))
    assert "\n" not in str(e.value)
    with pytest.raises(TraceFormatError, match="placements table must have the fields"):
        Mappings(_placed().table, FILE, "test", None, None, np.zeros(1, FILE_READ_DTYPE))
    with pytest.raises(TraceFormatError, match="placements table must be one-dimensional"):
        Mappings(_placed().table, FILE, "test", None, None, np.zeros((1, 1), PLACEMENT_DTYPE))


@pytest.mark.parametrize("length, flags, off, placed", [
    (2 * MB2, 2, 0, True),                  # 4 MiB at 0: two whole chunks
    (MB2, 2, 0, True),                      # exactly one
    (MB2 - 100, 2, 0, True),                # rounded up to pages first, as do_mmap() does
    (MB2 - 2 * PS, 2, 0, False),
    (MB2, 2, PS, False),                    # 2 MiB at 4096: no whole aligned chunk
    (MB2 + PS, 2, PS, False),
    (2 * MB2 - PS, 2, PS, True),            # [4096, 4 MiB) holds [2 MiB, 4 MiB)
    (2 * MB2, 2 | 0x10, 0, False),          # MAP_FIXED
    (2 * MB2, 2 | 0x100000, 0, False),      # MAP_FIXED_NOREPLACE
    (2 * MB2, 1, 0, True),                  # MAP_SHARED too
])
def test_the_kernels_rule(length, flags, off, placed):
    assert kernel_aligns(length, flags, off) is placed


# -- the native format --------------------------------------------------------------------
def test_placements_round_trip_through_version_7(tmp_path):
    tr = _write(tmp_path / "p.vmt", _placed())
    assert read_header(tmp_path / "p.vmt")["version"] == PLACEMENTS_VERSION == 7
    assert 7 in SUPPORTED_VERSIONS
    assert int.from_bytes((tmp_path / "p.vmt").read_bytes()[8:12], "little") == 7
    assert tr.mappings == _placed()
    # without placements the file keeps the version it had: 2, or 6 with moves
    plain = Mappings(_placed().table, FILE, "test")
    assert len(_write(tmp_path / "n.vmt", plain).mappings.placements) == 0
    assert read_header(tmp_path / "n.vmt")["version"] == 2
    t = np.zeros(2, MAPPING_DTYPE)
    t[0] = (0, 0x1000, 0x2000, 3, 0, Backing.ANON, 0xFFFFFFFF, 0, 0, 2)
    t[1] = (0, 0x9000, 0xA000, 3, 0, Backing.ANON, 0xFFFFFFFF, 0, 2, FOREVER)
    v6 = Mappings(t, [], "test", None, np.array([(0, 0x1000, 0x2000, 0x9000, 2)], MOVE_DTYPE))
    old = _write(tmp_path / "m.vmt", v6, [0x1000, 0x1000] + [0x9000] * 8)
    assert read_header(tmp_path / "m.vmt")["version"] == MOVES_VERSION
    assert old.mappings.placements.dtype == PLACEMENT_DTYPE and len(old.mappings.placements) == 0
    both = Mappings(t, [], "test", None, v6.moves,
                    np.array([(0, 0x9000, 0xA000, 2, 0)], PLACEMENT_DTYPE))
    assert _write(tmp_path / "b.vmt", both, [0x1000, 0x1000] + [0x9000] * 8).mappings == both
    assert read_header(tmp_path / "b.vmt")["version"] == 7


def test_damaged_placements_are_one_clear_error(tmp_path):
    p = tmp_path / "p.vmt"
    _write(p, _placed())
    check_damaged_table(p, "placements", "placements table", PLACEMENT_DTYPE.names, 7)
    good = p.read_bytes()
    entry = read_header(p)["placements"]

    # intact bytes (checksum rewritten) that break the table's rules: named by its row
    p.write_bytes(good)
    raw = bytearray(good)
    pl = np.frombuffer(bytes(raw[entry["offset"]:][:entry["nbytes"]]), PLACEMENT_DTYPE).copy()
    pl["end"] = pl["start"]
    raw[entry["offset"]:entry["offset"] + pl.nbytes] = pl.tobytes()
    p.write_bytes(bytes(raw))
    edit_header(p, lambda h: h["placements"].update(crc32=zlib.crc32(pl.tobytes())))
    with pytest.raises(TraceFormatError, match=r"p\.vmt: placement 0: end 0x4000000 is not "
                                               r"above start"):
        open_trace(p)


# -- slicing and stripping ----------------------------------------------------------------
def test_a_window_keeps_the_placements_made_before_its_end_renumbered(tmp_path):
    m = _placed(at=2)
    # its rows start at 2: a window from 2 or later may start with them alive, so it keeps
    # the placement at its first record; a window that ends by 2 has none
    for lo, hi, want in ((0, 10, [2]), (1, 10, [1]), (2, 10, [0]), (2, 3, [0]),
                         (3, 10, [0]), (0, 2, []), (0, 1, [])):
        assert m.window(lo, hi).placements["at_record"].tolist() == want, (lo, hi)
    tr = _write(tmp_path / "p.vmt", m)
    assert tr[2:6].mappings.placements.tolist() == [(0, A, A + 2 * MB2, 0, 0)]
    assert tr[3:6].mappings.placements.tolist() == [(0, A, A + 2 * MB2, 0, 0)]


def test_strip_keeps_each_placement_at_its_rows_start(tmp_path):
    # the anonymous page read four times before the mapping: strip drops the repeats
    addr = [0x1000] * 4 + [A + i * PS for i in range(4)]
    tr = _write(tmp_path / "p.vmt", _placed(at=4), addr)
    s = open_trace(strip_trace(tr, tmp_path / "s.vmt", filter_pages=4)[0])
    assert s.mappings.placements["at_record"].tolist() == [1]
    assert s.mappings.table["from_record"][1] == 1


# -- the recorder -------------------------------------------------------------------------
def test_lackeys_mmap_lines_record_each_placement(tmp_path):
    from vmlab.trace.record import AddressSpace, FileTable, SyscallTracker

    big = tmp_path / "big"
    big.write_bytes(b"\0" * 3 * MB2)
    sp = AddressSpace()
    files = FileTable({}, late_when=None)
    tr = SyscallTracker(sp, files, str(tmp_path))
    lines = [
        (1, "sys_openat ( 4294967196, 0x4034bb0(big), 0 ) --> [pre-success] Success(0x3)"),
        # 4 MiB at offset 0, address left to the kernel: placed
        (2, "sys_mmap ( 0x0, 4194304, 1, 2, 3, 0 ) --> [pre-success] Success(0x5001000)"),
        # the same with MAP_FIXED, and with MAP_FIXED_NOREPLACE: the caller's address
        (3, "sys_mmap ( 0x9000000, 4194304, 1, 18, 3, 0 ) --> Success(0x9000000)"),
        (4, "sys_mmap ( 0xa000000, 4194304, 1, 1048578, 3, 0 ) --> Success(0xa000000)"),
        # anonymous (fd -1, MAP_ANONYMOUS): no file to align to
        (5, "sys_mmap ( 0x0, 4194304, 3, 34, 4294967295, 0 ) --> Success(0xb000000)"),
        # 2 MiB at offset 4096: no whole aligned chunk of the file
        (6, "sys_mmap ( 0x0, 2097152, 1, 2, 3, 4096 ) --> Success(0xc000000)"),
        # [4096, 4 MiB + 4096) holds [2 MiB, 4 MiB): placed, a length not a page multiple
        (7, "sys_mmap ( 0x0, 4194000, 1, 1, 3, 4096 ) --> Success(0xd000000)"),
        (8, "sys_mmap ( 0x0, 4194304, 1, 2, 3, 0 ) --> [pre-fail] Failure(0xc)"),
    ]
    for at, text in lines:
        tr.line(f"SYSCALL[7,1](9) {text} ".encode(), at)
    assert sp.placements_table().tolist() == [
        (0, 0x5001000, 0x5001000 + 2 * MB2, 2, 0),
        (0, 0xd000000, 0xd000000 + 2 * MB2, 7, PS)]
    t = sp.table()
    for start, end, at, off in sp.placements:   # each the range of the rows it made
        row = t[t["start"] == start]
        assert row[["end", "from_record", "file_offset"]].tolist() == [(end, at, off)]
    assert set(t["file"][t["backing"] == Backing.FILE].tolist()) == {0}
    Mappings(t, files.files, "test", None, None, sp.placements_table())   # consistent


PLACER = r"""
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) return 1;
    volatile char *p = mmap(NULL, 4 << 20, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return 2;
    char c = p[4096];
    printf("%lx\n", (unsigned long)p);
    return c;
}
"""


def test_a_recorded_large_file_mapping_is_one_placement(tmp_path_factory, tmp_path):
    from test_record import HAVE_VALGRIND, compile_c

    if not HAVE_VALGRIND:
        pytest.skip("needs valgrind (apt-get install valgrind)")
    from vmlab.trace.record import record_lackey

    prog = compile_c(tmp_path_factory, "placer", PLACER)
    data = tmp_path / "data"
    data.write_bytes(b"\0" * 2 * MB2)
    with open(tmp_path / "out.txt", "w") as out:
        path, info = record_lackey([str(prog), str(data)], tmp_path / "p.vmt", stdout=out)
    assert info["exit_code"] == 0
    p = int((tmp_path / "out.txt").read_text(), 16)
    tr = open_trace(path)
    hdr = read_header(path)     # (version 9: a lackey recording has the kernel's stores)
    assert "placements" in hdr and hdr["version"] == KERNEL_VERSION
    m = tr.mappings
    f = [i for i, x in enumerate(m.files) if x.path == str(data)]
    rows = m.table[m.table["file"] == f[0]]
    assert rows[["start", "end", "file_offset"]].tolist() == [(p, p + 2 * MB2, 0)]
    mine = m.placements[m.placements["start"] == p]
    assert mine.tolist() == [(0, p, p + 2 * MB2, int(rows["from_record"][0]), 0)]
