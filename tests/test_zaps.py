"""Ranges zapped by ``madvise(MADV_DONTNEED)`` (and ``MADV_DONTNEED_LOCKED``): the zaps
table of a recording's mappings, kept in the native format (version 8), renumbered by strip
and slicing, and recorded by the lackey recorder.

Tests that run valgrind or a C compiler say so in their skip reason and are skipped only
when that is missing.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, Trace, open_trace
from vmlab.trace.mappings import (FILE_READ_DTYPE, FOREVER, MAPPING_DTYPE, PLACEMENT_DTYPE,
                                  NO_FILE, ZAP_DTYPE, Backing, FileInfo, Mappings)
from vmlab.trace.native import (KERNEL_VERSION, PLACEMENTS_VERSION, SUPPORTED_VERSIONS,
                                ZAPS_VERSION, TraceWriter, read_header)
from vmlab.trace.strip import strip_trace
from vmt_header import check_damaged_table, edit_header  # noqa: E402

PS = 4096
A = 0x4000000                  # a 16-page anonymous mapping, zapped whole


def _zapped(at=4, advice=4, n_pages=16):
    """An anonymous page from record 0, the 16-page anonymous mapping at A from record 2,
    and one zap of it at record ``at``."""
    t = np.zeros(2, MAPPING_DTYPE)
    t[0] = (0, 0x1000, 0x2000, 3, 0, Backing.ANON, 0xFFFFFFFF, 0, 0, FOREVER)
    t[1] = (0, A, A + 16 * PS, 3, 0, Backing.ANON, 0xFFFFFFFF, 0, 2, FOREVER)
    z = np.array([(0, A, A + n_pages * PS, at, advice)], ZAP_DTYPE)
    return Mappings(t, [], "test", zaps=z)


# two accesses to the anonymous page, then four stores to the mapping, the zap (at record
# 6), four stores again
ADDR = [0x1000, 0x1008] + [A + i * PS for i in range(4)] * 2


def _write(path, mappings, addr=ADDR):
    with TraceWriter(path, mappings=mappings) as w:
        w.append(addr=np.array(addr, np.uint64), op=np.full(len(addr), Op.STORE, np.uint8))
    return open_trace(path)


# -- the table --------------------------------------------------------------------------
def test_zaps_are_kept_compared_and_shown():
    m = _zapped()
    assert m.zaps.dtype == ZAP_DTYPE and len(m.zaps) == 1
    assert m == _zapped() and m != _zapped(at=5) and m != _zapped(advice=24)
    assert m != Mappings(m.table, [], "test")
    assert "1 zaps" in repr(m)
    assert m.zaps_frame().to_dict("records") == [
        {"asid": 0, "start": A, "end": A + 16 * PS, "at_record": 4, "advice": 4,
         "pages": 16}]
    assert len(Mappings(m.table, [], "test").zaps) == 0


@pytest.mark.parametrize("rows, match", [
    ([(0, A, A, 2, 4)], r"zap 0: end 0x4000000 is not above start 0x4000000"),
    ([(0, A + 8, A + PS, 2, 4)], r"zap 0: start 0x4000008 is not a multiple of 4096"),
    ([(0, A, A + PS - 1, 2, 4)], r"zap 0: end 0x4000fff is not a multiple of 4096"),
    ([(0, A, A + PS, 5, 4), (0, A, A + PS, 2, 4)],
     r"zap 1: at_record 2 is before the previous zap's 5"),
    ([(0, A, A + PS, 2, 8)], r"zap 0: advice 8 is not one of 4, 24"),
])
def test_a_bad_zap_is_one_line_naming_it(rows, match):
    table = _zapped().table
    with pytest.raises(TraceFormatError, match=match) as e:
        Mappings(table, [], "test", zaps=np.array(rows, ZAP_DTYPE))
    assert "\n" not in str(e.value)
    with pytest.raises(TraceFormatError, match="zaps table must have the fields"):
        Mappings(table, [], "test", zaps=np.zeros(1, FILE_READ_DTYPE))
    with pytest.raises(TraceFormatError, match="zaps table must be one-dimensional"):
        Mappings(table, [], "test", zaps=np.zeros((1, 1), ZAP_DTYPE))


# -- the native format --------------------------------------------------------------------
def test_zaps_round_trip_through_version_8(tmp_path):
    tr = _write(tmp_path / "z.vmt", _zapped())
    assert read_header(tmp_path / "z.vmt")["version"] == ZAPS_VERSION == 8
    assert 8 in SUPPORTED_VERSIONS
    assert int.from_bytes((tmp_path / "z.vmt").read_bytes()[8:12], "little") == 8
    assert tr.mappings == _zapped()
    # without zaps the file keeps the version it had: 2, or 7 with placements
    plain = Mappings(_zapped().table, [], "test")
    assert len(_write(tmp_path / "n.vmt", plain).mappings.zaps) == 0
    assert read_header(tmp_path / "n.vmt")["version"] == 2
    t = np.zeros(1, MAPPING_DTYPE)
    t[0] = (0, A, A + 16 * PS, 1, 0, Backing.FILE, 0, 0, 0, FOREVER)
    files = [FileInfo("/data/big", 1, 2, 16 * PS)]
    pl = np.array([(0, A, A + 16 * PS, 0, 0)], PLACEMENT_DTYPE)
    v7 = Mappings(t, files, "test", placements=pl)
    old = _write(tmp_path / "p.vmt", v7, [A] * 10)
    assert read_header(tmp_path / "p.vmt")["version"] == PLACEMENTS_VERSION
    assert old.mappings.zaps.dtype == ZAP_DTYPE and len(old.mappings.zaps) == 0
    assert old.mappings == v7
    both = Mappings(t, files, "test", placements=pl,
                    zaps=np.array([(0, A, A + PS, 3, 24)], ZAP_DTYPE))
    assert _write(tmp_path / "b.vmt", both, [A] * 10).mappings == both
    assert read_header(tmp_path / "b.vmt")["version"] == 8


def test_damaged_zaps_are_one_clear_error(tmp_path):
    p = tmp_path / "z.vmt"
    _write(p, _zapped())
    check_damaged_table(p, "zaps", "zaps table", ZAP_DTYPE.names, 8)
    good = p.read_bytes()
    entry = read_header(p)["zaps"]

    # intact bytes (checksum rewritten) that break the table's rules: named by its row
    raw = bytearray(good)
    z = np.frombuffer(bytes(raw[entry["offset"]:][:entry["nbytes"]]), ZAP_DTYPE).copy()
    z["advice"] = 8
    raw[entry["offset"]:entry["offset"] + z.nbytes] = z.tobytes()
    p.write_bytes(bytes(raw))
    edit_header(p, lambda h: h["zaps"].update(crc32=zlib.crc32(z.tobytes())))
    with pytest.raises(TraceFormatError, match=r"z\.vmt: zap 0: advice 8 is not one of"):
        open_trace(p)


# -- slicing and stripping ----------------------------------------------------------------
def test_a_window_keeps_the_zaps_made_in_it_renumbered(tmp_path):
    m = _zapped(at=6)
    # a zap before the window acted on pages the window starts without: dropped
    for lo, hi, want in ((0, 10, [6]), (2, 10, [4]), (6, 10, [0]), (6, 7, [0]),
                         (7, 10, []), (0, 6, []), (0, 1, [])):
        assert m.window(lo, hi).zaps["at_record"].tolist() == want, (lo, hi)
    tr = _write(tmp_path / "z.vmt", m)
    assert tr[4:10].mappings.zaps.tolist() == [(0, A, A + 16 * PS, 2, 4)]
    assert len(tr[7:10].mappings.zaps) == 0


def test_strip_keeps_each_zap_between_the_same_kept_records(tmp_path):
    # the anonymous page read four times first, each mapped page stored to twice before
    # the zap and once after it: strip drops the repeats, not the stores after the zap
    addr = [0x1000] * 4 + [A, A, A + PS, A + PS] + [A, A + PS]
    t = _zapped().table
    t["from_record"][1] = 4
    m = Mappings(t, [], "test", zaps=np.array([(0, A, A + 16 * PS, 8, 4)], ZAP_DTYPE))
    tr = _write(tmp_path / "z.vmt", m, addr)
    s = open_trace(strip_trace(tr, tmp_path / "s.vmt", filter_pages=4)[0])
    kept = np.asarray(s.addr).tolist()
    (at,) = s.mappings.zaps["at_record"].tolist()
    assert kept[:at][-2:] == [A, A + PS]        # the first stores before it
    assert kept[at:] == [A, A + PS]             # the stores after it


# -- the recorder -------------------------------------------------------------------------
def test_lackeys_madvise_lines_record_each_zap(tmp_path):
    from vmlab.trace.record import AddressSpace, FileTable, SyscallTracker

    sp = AddressSpace()
    tr = SyscallTracker(sp, FileTable({}, late_when=None), str(tmp_path))
    lines = [
        (1, "sys_mmap ( 0x0, 65536, 3, 34, 4294967295, 0 ) --> [pre-success] "
            "Success(0x5000000)"),
        # MADV_DONTNEED on the whole mapping
        (2, "sys_madvise ( 0x5000000, 65536, 4 ) --> [pre-success] Success(0x0)"),
        # MADV_DONTNEED_LOCKED on a length not a page multiple: rounded up, as the kernel does
        (3, "sys_madvise ( 0x5002000, 5000, 24 ) --> Success(0x0)"),
        # MADV_FREE (lazy), MADV_WILLNEED, MADV_REMOVE: no zap
        (4, "sys_madvise ( 0x5000000, 65536, 8 ) --> Success(0x0)"),
        (4, "sys_madvise ( 0x5000000, 65536, 3 ) --> Success(0x0)"),
        (4, "sys_madvise ( 0x5000000, 65536, 9 ) --> Success(0x0)"),
        # a failed call (EINVAL) and a zero length: no zap
        (5, "sys_madvise ( 0x5000001, 4096, 4 ) --> [pre-fail] Failure(0x16)"),
        (6, "sys_madvise ( 0x5000000, 0, 4 ) --> Success(0x0)"),
        # a call valgrind runs asynchronously, its result on a later line
        (7, "sys_madvise ( 0x5004000, 4096, 4 ) --> [async] ... "),
    ]
    for at, text in lines:
        tr.line(f"SYSCALL[7,1](28) {text} ".encode(), at)
    tr.line(b"SYSCALL[7,1](28) ... [async] --> Success(0x0) ", 9)
    assert sp.zaps_table().tolist() == [
        (0, 0x5000000, 0x5010000, 2, 4),
        (0, 0x5002000, 0x5004000, 3, 24),
        (0, 0x5004000, 0x5005000, 9, 4)]
    # the mapping stays: a zap removes pages, not the VMA
    assert sp.table()[["start", "end"]].tolist() == [(0x5000000, 0x5010000)]
    Mappings(sp.table(), [], "test", zaps=sp.zaps_table())     # consistent


ZAPPER = r"""
#include <stdio.h>
#include <sys/mman.h>

int main(void) {
    volatile char *p = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 2;
    for (int i = 0; i < 16; i++) p[i * 4096] = 1;
    if (madvise((void *)p, 16 * 4096, MADV_DONTNEED)) return 3;
    for (int i = 0; i < 16; i++) p[i * 4096] = 2;
    printf("%lx\n", (unsigned long)p);
    return 0;
}
"""


def test_a_recorded_madvise_dontneed_is_one_zap(tmp_path_factory, tmp_path):
    from test_record import HAVE_VALGRIND, compile_c

    if not HAVE_VALGRIND:
        pytest.skip("needs valgrind (apt-get install valgrind)")
    from vmlab.trace.record import record_lackey

    prog = compile_c(tmp_path_factory, "zapper", ZAPPER)
    with open(tmp_path / "out.txt", "w") as out:
        path, info = record_lackey([str(prog)], tmp_path / "z.vmt", stdout=out)
    assert info["exit_code"] == 0
    p = int((tmp_path / "out.txt").read_text(), 16)
    tr = open_trace(path)
    hdr = read_header(path)     # (version 9: a lackey recording has the kernel's stores)
    assert "zaps" in hdr and hdr["version"] == KERNEL_VERSION
    m = tr.mappings
    rows = m.table[(m.table["start"] == p)]
    assert rows[["end", "backing"]].tolist() == [(p + 16 * PS, Backing.ANON)]
    mine = m.zaps[(m.zaps["start"] < p + 16 * PS) & (m.zaps["end"] > p)]
    assert mine[["asid", "start", "end", "advice"]].tolist() == [(0, p, p + 16 * PS, 4)]
    # the two rounds of stores to the mapping's pages: the zap lies between them
    addr = np.asarray(tr.addr)
    op = np.asarray(tr.op)
    stores = np.flatnonzero((addr >= p) & (addr < p + 16 * PS)
                            & ((op == Op.STORE) | (op == Op.MODIFY)))
    assert len(stores) == 32
    at = int(mine["at_record"][0])
    assert stores[15] < at <= stores[16]


# -- the replay (docs/model.md 11.9) ----------------------------------------------------------

def test_a_zap_is_an_unmap_of_a_range_rows_still_map():
    """Four anonymous pages written (records 0-3), zapped before record 4, written again:
    the zap is ``Unmap(4, ...)`` though the row lives on, and the second round faults afresh
    (8 anonymous faults; without the zap, 4)."""
    import vmlab
    from vmlab.model.recorded import scenario_for, unmaps_for
    from vmlab.model.scenario import Unmap


    X = 0x7F0000000000
    t = np.zeros(1, MAPPING_DTYPE)
    t[0] = (0, X, X + 16 * PS, 3, 0, Backing.ANON, NO_FILE, 0, 0, FOREVER)
    zaps = np.array([(0, X, X + 4 * PS, 4, 4)], ZAP_DTYPE)
    addr = [X + (i % 4) * PS for i in range(8)]

    def trace(z):
        return Trace(np.array(addr, np.uint64), op=np.full(8, Op.STORE, np.uint8),
                     mappings=Mappings(t, [], "test", zaps=z))

    assert unmaps_for(trace(zaps)) == [Unmap(4, X, X + 4 * PS)]
    assert vmlab.simulate(scenario_for(trace(zaps))).summary["n_faults"] == 8
    assert vmlab.simulate(scenario_for(trace(None))).summary["n_faults"] == 4


ZAP_PROG = r"""
#include <sys/mman.h>
int main(void) {
    long n = 256, ps = 4096;
    volatile char *p = mmap(0, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    for (int round = 0; round < 3; round++) {     /* write every page, then give them back */
        for (long i = 0; i < n; i++)
            p[i * ps] = 1;
        madvise((void *)p, n * ps, MADV_DONTNEED);
    }
    return 0;
}
"""


def test_a_program_that_gives_its_pages_back_takes_the_faults_the_kernel_takes(tmp_path):
    """256 anonymous pages written three times, ``madvise(MADV_DONTNEED)`` after each round:
    the kernel takes 768 faults on them; ``vmlab validate`` predicts the run's page faults
    within 3% (without the zaps it would predict 256 of those 768)."""
    import shutil
    import subprocess

    from vmlab.validate import validate

    cc = shutil.which("cc") or shutil.which("gcc")
    if not (cc and shutil.which("valgrind") and shutil.which("perf")):
        pytest.skip("needs a C compiler, valgrind and perf (make test installs them)")
    (tmp_path / "zap.c").write_text(ZAP_PROG)
    subprocess.run([cc, "-O1", "-o", str(tmp_path / "zap"), str(tmp_path / "zap.c")],
                   check=True)
    res = validate([str(tmp_path / "zap")], runs=3)
    (row,) = res["rows"]
    predicted, measured = row["predicted_page_faults"], row["measured_page_faults"]
    assert measured > 768 and abs(predicted / measured - 1) <= 0.03, row
