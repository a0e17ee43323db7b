"""The file reads table of a recording: read()-family calls and exec's reads, kept in the
native format (version 3), renumbered by strip and slicing, and turned into the page cache a
replay starts from (with the kernel's readahead).

Tests that run valgrind, perf or a C compiler say so in their skip reason and are skipped
only when that is missing.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

from vmlab import simulate
from vmlab.model import FileRead
from vmlab.errors import TraceFormatError
from vmlab.engine.kernel.filereads import init_ra_size, next_ra_size
from vmlab.model.recorded import (preload_for, ra_pages_for, read_pages, reads_for, runnable,
                                  scenario_for)
from vmlab.trace import Op, open_trace
from vmlab.trace.mappings import (FILE_READ_DTYPE, FOREVER, MAPPING_DTYPE, READ_CALLS,
                                  Backing, FileInfo, Mappings)
from vmlab.trace.native import TraceWriter, read_header
from vmlab.trace.record import (AddressSpace, FileTable, SyscallTracker, exec_reads,
                               exec_stores)
from vmlab.trace.strip import strip_trace
from vmt_header import edit_header  # noqa: E402

PS = 4096
BASE = 0x400000
HAVE_CC = shutil.which("cc") or shutil.which("gcc")
HAVE_VALGRIND = shutil.which("valgrind")
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="needs a C compiler (apt-get install gcc)")
needs_valgrind = pytest.mark.skipif(not HAVE_VALGRIND,
                                    reason="needs valgrind (apt-get install valgrind)")


def _code(name):
    return READ_CALLS.index(name)


# -- the syscall stream ---------------------------------------------------------------------
def _tracker(tmp_path):
    return SyscallTracker(AddressSpace(), FileTable({}, late_when=None), str(tmp_path))


def _feed(tr, lines):
    for at, text in lines:
        tr.line(f"SYSCALL[7,1](0) {text}".encode(), at)


def test_read_family_calls_give_file_ranges(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(100_000))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(bytes(50))
    tr = _tracker(tmp_path)
    _feed(tr, [
        (1, "sys_openat ( 4294967196, 0x10(data.bin), 0 ) --> Success(0x3)"),
        (2, "sys_read ( 3, 0x7000, 832 ) --> [async] ... "),
        (5, "... [async] --> Success(0x340)"),                     # read 832 at 0
        (6, "sys_pread64 ( 3, 0x7000, 784, 64 ) --> Success(0x310)"),  # no position change
        (7, "sys_readv ( 3, 0x8000, 2 ) --> Success(0x1000)"),        # at 832, 4096 bytes
        (8, "sys_preadv ( 3, 0x8000, 2, 50000 ) --> Success(0x10)"),
        (9, "sys_preadv2 ( 3, 0x8000, 2, -1, 0 ) --> Success(0x20)"),  # at the position
        (10, "sys_preadv2 ( 3, 0x8000, 2, 7, 0 ) --> Success(0x20)"),
        (11, "sys_lseek ( 3, 90000, 0 )[sync] --> Success(0x15f90)"),
        (12, "sys_dup ( 3 )[sync] --> Success(0x4)"),
        (13, "sys_read ( 4, 0x7000, 100 ) --> Success(0x64)"),        # shared position
        (14, "sys_sendfile ( 1, 3, 0x0, 30 ) --> Success(0x1e)"),     # at 90100
        (15, "sys_sendfile ( 1, 3, 0x7ff0, 30 ) --> Success(0x1e)"),  # offset in memory
        (16, "sys_read ( 3, 0x7000, 10 ) --> Failure(0xb)"),          # failed: nothing
        (17, "sys_read ( 3, 0x7000, 10 ) --> Success(0x0)"),          # end of file
        (18, "sys_openat ( 4294967196, 0x10(sub), 65536 ) --> Success(0x5)"),
        (19, "sys_openat ( 5, 0x20(f), 0 ) --> Success(0x6)"),        # relative to a dir fd
        (20, "sys_read ( 6, 0x7000, 4096 ) --> Success(0x32)"),
        (21, "sys_read ( 9, 0x7000, 10 ) --> Success(0xa)"),          # not a tracked file
    ])
    got = [(tr.files.files[f].path, o, n, at, READ_CALLS[c])
           for _a, f, o, n, at, c in tr.reads_table()]
    d, f = str(data), str(tmp_path / "sub" / "f")
    assert got == [(d, 0, 832, 5, "read"), (d, 64, 784, 6, "pread64"),
                   (d, 832, 4096, 7, "readv"), (d, 50000, 16, 8, "preadv"),
                   (d, 4928, 32, 9, "preadv2"), (d, 7, 32, 10, "preadv2"),
                   (d, 90000, 100, 13, "read"), (d, 90100, 30, 14, "sendfile"),
                   (f, 0, 50, 20, "read")]
    assert tr.n_unknown_reads == 1


def _elf(path, phdrs):
    """A 64-bit little-endian ELF header with program headers ``(type, offset, filesz)``."""
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, len(phdrs),
                              64, 0, 0)
    ph = b"".join(struct.pack("<IIQQQQQQ", t, 4, off, 0, 0, sz, sz, 8) for t, off, sz in phdrs)
    path.write_bytes((hdr + ph).ljust(9000, b"\0"))


def test_exec_reads_are_the_elf_loaders(tmp_path):
    _elf(tmp_path / "prog", [(6, 64, 4 * 56), (3, 288, 28), (0x6474e553, 320, 32),
                             (1, 0, 9000)])
    assert exec_reads(tmp_path / "prog") == [(0, 256), (64, 224), (288, 28), (320, 32)]
    assert exec_reads(tmp_path / "prog", interpreter=True) == [(0, 64), (64, 224), (320, 32)]
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert exec_reads(tmp_path / "script") == []


def test_exec_stores_clear_the_page_after_each_data_segments_file_end(tmp_path):
    # a data segment at file offset 0x168f0, 0xd90 bytes in the file and 0xc85d0 in memory
    # (gzip's): exec's padzero clears from file offset 0x17680 to the page's end; a
    # segment whose file part ends on a page boundary, or has no bss, clears nothing
    _elf(tmp_path / "prog", [(1, 0, 0x2128), (1, 0x168f0, 0xd90), (1, 0x20000, 0x1000)])
    raw = bytearray((tmp_path / "prog").read_bytes())
    # p_memsz of the second PT_LOAD (program headers at 64, 56 bytes each, p_memsz at +40)
    struct.pack_into("<Q", raw, 64 + 56 + 40, 0xc85d0)
    struct.pack_into("<Q", raw, 64 + 2 * 56 + 40, 0x3000)       # page-aligned file end
    (tmp_path / "prog").write_bytes(bytes(raw))
    segs = [("file", 0x108000, 0x10b000, "r----", 1, 2, 0, 1, None),
            ("file", 0x11f000, 0x121000, "rw---", 1, 2, 0x16000, 1, None),
            ("file", 0x130000, 0x131000, "rw---", 1, 2, 0x20000, 1, None)]
    assert exec_stores(str(tmp_path / "prog"), segs, {1: str(tmp_path / "prog")}) == [
        0x11f000 + 0x1680]


# -- the format -----------------------------------------------------------------------------
def _reads(*rows):
    return np.array([(0, f, o, n, at, _code(c)) for f, o, n, at, c in rows], FILE_READ_DTYPE)


def _trace(tmp_path, reads, records, *, name="t.vmt", ra_kb=None, resident=None, size=40,
           folios=None):
    """One file of ``size`` pages mapped at BASE (r, private) and read by ``reads``;
    ``records``: (page, op) accesses."""
    t = np.zeros(1, MAPPING_DTYPE)
    t[0] = (0, BASE, BASE + size * PS, 1, 0, Backing.FILE, 0, 0, 0, FOREVER)
    res = np.zeros(size, bool) if resident is None else resident
    files = [FileInfo("/data/f", 1, 2, size * PS, res, "before_run", ra_kb, folios)]
    addr = np.array([BASE + p * PS for p, _o in records], np.uint64)
    op = np.array([o for _p, o in records], np.uint8)
    with TraceWriter(tmp_path / name, mappings=Mappings(t, files, "test", reads)) as w:
        w.append(addr=addr, op=op)
    return open_trace(tmp_path / name)


def test_file_reads_round_trip_through_version_3(tmp_path):
    reads = _reads((0, 0, 832, 0, "exec"), (0, 4096, 100, 2, "read"))
    tr = _trace(tmp_path, reads, [(0, Op.LOAD)] * 3, ra_kb=8192)
    assert read_header(tmp_path / "t.vmt")["version"] == 3
    assert np.array_equal(tr.mappings.reads, reads)
    assert tr.mappings.files[0].read_ahead_kb == 8192
    # without reads the file stays version 2 (older vmlab reads it)
    tr2 = _trace(tmp_path, None, [(0, Op.LOAD)], name="v2.vmt")
    assert read_header(tmp_path / "v2.vmt")["version"] == 2
    assert len(tr2.mappings.reads) == 0 and tr2.mappings.files[0].read_ahead_kb is None
    # a slice keeps the reads before its end, renumbered
    assert tr[1:3].mappings.reads["at_record"].tolist() == [0, 1]


def test_damaged_file_reads_are_one_clear_error(tmp_path):
    _trace(tmp_path, _reads((0, 0, 832, 0, "exec")), [(0, Op.LOAD)])
    p = tmp_path / "t.vmt"
    hdr = read_header(p)
    raw = bytearray(p.read_bytes())
    raw[hdr["file_reads"]["offset"] + 3] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(TraceFormatError, match="checksum mismatch in file_reads"):
        open_trace(p)
    one = [FileInfo("/data/f", 1, 2, PS)]
    with pytest.raises(TraceFormatError, match="file read 0: reads 0 bytes"):
        Mappings(np.zeros(0, MAPPING_DTYPE), one, "", _reads((0, 0, 0, 0, "read")))
    with pytest.raises(TraceFormatError, match="file read 0: file index 3 but only 1 file"):
        Mappings(np.zeros(0, MAPPING_DTYPE), one, "", _reads((3, 0, 1, 0, "read")))


def test_bad_read_ahead_kb_in_the_header_is_refused(tmp_path):
    _trace(tmp_path, _reads((0, 0, 832, 0, "exec")), [(0, Op.LOAD)], ra_kb=128)
    p = tmp_path / "t.vmt"
    edit_header(p, lambda h: h["files"][0].update(read_ahead_kb="lots"))
    with pytest.raises(TraceFormatError, match=r"files\[0\].read_ahead_kb must be"):
        open_trace(p)


def test_strip_keeps_each_read_between_the_same_records(tmp_path):
    recs = [(0, Op.LOAD), (0, Op.LOAD), (0, Op.LOAD), (1, Op.LOAD), (1, Op.LOAD), (2, Op.LOAD)]
    tr = _trace(tmp_path, _reads((0, 0, 10, 0, "exec"), (0, 0, 10, 2, "read"),
                                 (0, 0, 10, 4, "read"), (0, 0, 10, 6, "read")), recs)
    path, info = strip_trace(tr, tmp_path / "s.vmt", filter_pages=4)
    s = open_trace(path)
    assert info["records_out"] == 3          # the first access of pages 0, 1, 2
    # kept records were 0, 3, 5: a read before record 2 comes before kept record 1 (old 3)
    assert s.mappings.reads["at_record"].tolist() == [0, 1, 2, 3]


# -- the readahead of reads -----------------------------------------------------------------
def test_readahead_window_sizes_follow_mm_readahead():
    assert [init_ra_size(n, 32) for n in (1, 2, 3, 8, 9, 32)] == [4, 4, 8, 16, 32, 32]
    assert [init_ra_size(n, 2048) for n in (1, 16, 64, 65, 600)] == [4, 64, 256, 256, 2048]
    assert [next_ra_size(n, 32) for n in (1, 4, 16, 17, 32)] == [4, 8, 32, 32, 32]


def _when(tr, ra, start=None):
    w = read_pages(tr, {"/data/f": start}, ra)["/data/f"]
    return {int(p): int(w[p]) for p in np.flatnonzero(w != np.iinfo(np.uint64).max)}


def test_a_first_read_and_its_sequential_successor(tmp_path):
    # ld.so's read of a library's first 832 bytes: the initial window, 4 pages; reading on
    # from page 1 (the readahead mark: start + size - async_size = 0 + 4 - 3) reads the
    # next window ahead, 8 pages, while the call's own pages are resident
    tr = _trace(tmp_path, _reads((0, 0, 832, 3, "read"), (0, 832, 2 * PS, 5, "read")),
                [(0, Op.LOAD)])
    assert _when(tr, 32) == {**{p: 3 for p in range(4)}, **{p: 5 for p in range(4, 12)}}
    # without readahead only the pages read; with this host's 8 MiB window the first read
    # still brings 4 pages
    assert _when(tr, 0) == {0: 3, 1: 5, 2: 5}
    assert _when(tr, 2048) == {**{p: 3 for p in range(4)}, **{p: 5 for p in range(4, 20)}}


def test_a_random_small_read_reads_itself_only(tmp_path):
    tr = _trace(tmp_path, _reads((0, 20 * PS + 5, 100, 1, "pread64")), [(0, Op.LOAD)])
    assert _when(tr, 32) == {20: 1}
    # pages already resident are not read again
    res = np.zeros(40, bool)
    res[:4] = True
    tr = _trace(tmp_path, _reads((0, 0, 832, 1, "read")), [(0, Op.LOAD)], name="r.vmt",
                resident=res)
    assert _when(tr, 32, res.copy()) == {}


def test_reads_before_the_first_touch_are_the_starting_page_cache(tmp_path):
    # exec reads page 0 (4-page window: 0-3); page 2 is touched at record 1, page 3 at
    # record 4; a read at record 3 brings page 3 in (before its touch: resident at time 0),
    # one at record 5 brings page 30 in after page 30's touch at record 2 (not resident)
    tr = _trace(tmp_path, _reads((0, 0, 256, 0, "exec"), (0, 3 * PS, 8, 3, "pread64"),
                                 (0, 30 * PS, 8, 5, "pread64")),
                [(5, Op.LOAD), (2, Op.LOAD), (30, Op.LOAD), (6, Op.LOAD), (3, Op.LOAD),
                 (7, Op.LOAD)], ra_kb=128)
    pre = ((preload_for(tr) - BASE) // PS).tolist()
    assert pre == [0, 1, 2, 3]
    assert ra_pages_for(tr) == (32, "")
    assert scenario_for(tr, ra_pages=0).ra_pages == 0     # an override wins
    # the scenario starts from the recorded page cache (nothing here) and has the reads
    # as operations at their records (docs/model.md 11.7): exec's opens the initial window
    # (4 pages) and copies page 0; the read at record 3 finds page 3 in that window (no
    # window, a copy marked accessed); the one at record 5 reads page 30 alone, after a
    # previous read that ended in page 3
    given = scenario_for(tr, dynamic_reads=False)
    assert given.ra_pages == 32 and given.preload is None
    assert given.reads == (FileRead(0, "/data/f", 0, 4, 0, 1),
                           FileRead(3, "/data/f", 0, 0, 3, 4),
                           FileRead(5, "/data/f", 30, 31, 30, 31, prev=3))
    # by default one FileRead a call, of its stream (exec's: 1), the windows left to the run
    # (11.7.1), which reads the same pages here (the faults' readahead included)
    sc = scenario_for(tr)
    assert sc.reads == (FileRead(0, "/data/f", 0, 0, 0, 1, stream=1, pos_end=0),
                        FileRead(3, "/data/f", 0, 0, 3, 4, stream=0, pos_end=3),
                        FileRead(5, "/data/f", 0, 0, 30, 31, prev=3, stream=0, pos_end=30))
    assert simulate(sc).raw.counters["n_read_pages"] == \
        simulate(given).raw.counters["n_read_pages"] == 32
    assert [f.name for f in sc.files] == ["/data/f"]
    # unlimited, the two give the same faults: each page read before its first touch is
    # resident by then either way
    old = sc.replace(reads=(), preload=preload_for(tr))
    assert simulate(sc).summary["n_major"] == simulate(old).summary["n_major"]


def test_the_devices_readahead_is_the_scenarios(tmp_path):
    tr = _trace(tmp_path, None, [(0, Op.LOAD)], ra_kb=8192)
    assert ra_pages_for(tr) == (2048, "")
    sc = scenario_for(tr)
    assert sc.ra_pages == 2048
    tr = _trace(tmp_path, None, [(0, Op.LOAD)], name="old.vmt")   # not measured: the default
    assert scenario_for(tr).ra_pages == 32
    from vmlab.engine.prepare import RUNS_KNOBS
    _sc, said = runnable(scenario_for(tr), RUNS_KNOBS)
    assert not any("readahead window" in s for s in said)


# -- on a real program ----------------------------------------------------------------------
READER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <stdio.h>
static char a[8192], b[8192];
static int initialised = 1;
extern char _edata[];
int main(int argc, char **argv) {
    printf("%lx\n", (unsigned long)_edata);
    int fd = open(argv[1], O_RDONLY);
    struct iovec v[2] = {{a, 100}, {b, 5000}};
    if (!initialised || read(fd, a, 10) != 10 || pread(fd, a, 20, 9000) != 20 || readv(fd, v, 2) != 5100)
        return 1;
    if (preadv(fd, v, 2, 12000) != 5100 || lseek(fd, 30000, SEEK_SET) != 30000)
        return 2;
    return read(fd, a, 8192) == 8192 ? 0 : 3;
}
"""


def initialised_end(tmp_path):
    """The program's ``_edata`` as it printed it."""
    return int((tmp_path / "out.txt").read_text().split()[0], 16)


@needs_cc
@needs_valgrind
def test_record_lackey_keeps_the_programs_reads(tmp_path):
    from vmlab.trace.record import record_lackey

    (tmp_path / "r.c").write_text(READER)
    subprocess.run([HAVE_CC, "-O1", "-o", str(tmp_path / "r"), str(tmp_path / "r.c")],
                   check=True)
    data = tmp_path / "in.bin"
    data.write_bytes(os.urandom(50_000))
    with open(tmp_path / "out.txt", "w") as out:
        path, info = record_lackey([str(tmp_path / "r"), str(data)], tmp_path / "r.vmt",
                                   quiet=True, stdout=out)
    assert info["exit_code"] == 0 and initialised_end(tmp_path)
    tr = open_trace(path)
    m = tr.mappings
    # the first record is exec's store clearing the page after the program's data (_edata)
    edata = initialised_end(tmp_path)
    if edata % PS:
        assert (int(tr.addr[0]), int(tr.op[0])) == (edata, int(Op.STORE))
    rows = [(m.files[f].path, o, n, READ_CALLS[c]) for _a, f, o, n, _at, c in m.reads]
    mine = [r[1:] for r in rows if r[0] == str(data)]
    assert mine == [(0, 10, "read"), (9000, 20, "pread64"), (10, 5100, "readv"),
                    (12000, 5100, "preadv"), (30000, 8192, "read")]
    # exec's reads of the program come first, at record 0
    assert rows[0][0] == str(tmp_path / "r") and rows[0][1:] == (0, 256, "exec")
    assert all(at == 0 for *_x, at, c in m.reads if c == _code("exec"))
    # the program's reads come in order, after the loader's
    ats = [int(at) for _a, f, _o, _n, at, _c in m.reads if m.files[f].path == str(data)]
    assert ats == sorted(ats) and ats[0] > 0


@needs_cc
def test_mincore_helper_sees_the_page_cache(tmp_path):
    from vmlab.measure import drop_from_cache, mincore_binary

    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(5 * PS))
    with open(f, "rb") as fh:
        os.fsync(fh.fileno())
        fh.read()
    out = subprocess.run([mincore_binary(), str(f), str(tmp_path / "missing")],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"{f}\t0-5", f"{tmp_path / 'missing'}\t!"]
    drop_from_cache([f])
    out = subprocess.run([mincore_binary(), str(f)], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == [f"{f}\t"]


# -- measuring the kernel's side ------------------------------------------------------------
def test_perf_trace_major_faults_are_parsed():
    from vmlab.measure import parse_major_faults

    text = ("     0.000 ( 0.000 ms): gzip/10239 majfault [elf_load+0x28a] => 0x560af476f680 (?k)\n"
            "     7.576 ( 0.000 ms): python3/10489 majfault [strchr+0x23] => "
            "/usr/bin/python3.11@0x11bd6 (d.)\n"
            "some other line\n"
            "    36.138 ( 0.000 ms): python3/10489 majfault [0x2d1280] => "
            "/usr/bin/python3.11@0x2d1280 (d.)\n")
    assert parse_major_faults(text) == [
        {"ip": "elf_load+0x28a", "mode": "kernel", "file": None, "file_offset": None,
         "address": 0x560af476f680},
        {"ip": "strchr+0x23", "mode": "user", "file": "/usr/bin/python3.11",
         "file_offset": 0x11bd6, "address": None},
        {"ip": "0x2d1280", "mode": "user", "file": "/usr/bin/python3.11",
         "file_offset": 0x2d1280, "address": None}]


def test_shipped_kernel_major_sites_load():
    from vmlab.studies.kernel_agreement import kernel_major_sites

    k = kernel_major_sites()
    gz = k[k["program"] == "gzip"]
    # every traced cold gzip run under 1 MB: one major fault, exec's own write
    assert gz["per_run"].tolist() == [1.0] and gz["site"].tolist() == ["elf_load in kernel mode"]
    assert gz["runs"].tolist() == ["5/5"]


def _perf_works():
    p = shutil.which("perf")
    return bool(p) and subprocess.run([p, "stat", "-e", "page-faults", "true"],
                                      capture_output=True).returncode == 0


@needs_cc
@pytest.mark.skipif(not _perf_works(), reason="needs a working perf (apt-get install "
                    "linux-perf; as non-root kernel.perf_event_paranoid=-1)")
def test_cold_snapshot_is_taken_where_the_program_starts(tmp_path):
    from vmlab.measure import cold_page_cache

    f = tmp_path / "input.bin"
    f.write_bytes(os.urandom(3 * PS))
    with open(f, "rb") as fh:
        os.fsync(fh.fileno())
    argv = ["/bin/cat", str(f)]
    at_exec = cold_page_cache(argv, tmp_path)
    at_drop = cold_page_cache(argv, tmp_path, where="drop")
    assert at_exec[str(f.resolve())] == [] and at_drop[str(f.resolve())] == []
    # perf's own start can only add pages of the files it shares with the program
    for path, runs in at_drop.items():
        dropped = sum(b - a for a, b in runs)
        assert sum(b - a for a, b in at_exec.get(path, [])) >= dropped - 2, path
    with pytest.raises(Exception, match="where must be"):
        cold_page_cache(argv, tmp_path, where="later")


def test_a_cold_run_keeps_only_the_recorded_folios_it_starts_with(tmp_path):
    # the recording found pages 0-15 in a 16-page folio and 16-19 in a 4-page one; a cold
    # run that starts with pages 0-15 resident (the snapshot) keeps the first, and reads
    # 16-19 again with its own readahead: not the recorded folio (under a limit a 64-page
    # folio from an earlier run would be charged whole where the kernel reads small ones)
    res = np.zeros(40, bool)
    res[:20] = True
    tr = _trace(tmp_path, _reads((0, 0, 832, 0, "read")), [(0, Op.LOAD)], resident=res,
                folios=((0, 16), (16, 4)))
    assert scenario_for(tr).files[0].folios == ((0, 16), (16, 4))
    cold = np.zeros(40, bool)
    cold[:16] = True
    assert scenario_for(tr, residency={"/data/f": cold}).files[0].folios == ((0, 16),)


def test_a_read_that_copies_nothing_is_no_operation(tmp_path):
    # a read at the file's end (or of a file whose size the recording saw as 0, as
    # /proc/self/maps) copies no page: neither replay makes a FileRead of it
    tr = _trace(tmp_path, _reads((0, 0, 100, 0, "read"), (0, 40 * PS, 100, 1, "read")),
                [(0, Op.LOAD), (1, Op.LOAD), (2, Op.LOAD)], ra_kb=128)
    for dynamic in (False, True):
        reads = reads_for(tr, dynamic=dynamic)
        assert [(r.record, r.copy_start, r.copy_end) for r in reads] == [(0, 0, 1)]
