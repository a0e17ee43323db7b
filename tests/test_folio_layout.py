"""Large folios at record time: vmlab.trace.folios.folio_layout on real files (root), the
``folios`` of a recording's files through the native format, and into ``File.folios``.

The tests that read the real page cache need root (``/proc/kpageflags``) and say so in
their skip reason.
"""
from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.model.recorded import files_for, runnable, scenario_for
from vmlab.model.scenario import File
from vmlab.trace import Op, open_trace
from vmlab.trace import folios as folios_mod
from vmlab.trace.folios import _folios, _populate, folio_layout
from vmlab.trace.mappings import (FOREVER, MAPPING_DTYPE, Backing, FileInfo, Mappings,
                                  file_info, mapped_file, residency)
from vmlab.trace.native import TraceWriter, read_header
from vmt_header import edit_header  # noqa: E402

PS = 4096
BASE = 0x400000


def _can_read_kpageflags():
    try:
        with open("/proc/kpageflags", "rb") as f:
            return len(f.read(8)) == 8
    except OSError:
        return False


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not _can_read_kpageflags() or mmap.PAGESIZE != PS,
    reason="needs root and a readable /proc/kpageflags (4 KiB pages) to see frames' folios")


def _drop_from_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _new_file(tmp_path, n_pages, name="data.bin"):
    p = tmp_path / name
    with open(p, "wb") as f:
        f.write(np.random.default_rng(1).integers(0, 256, n_pages * PS, np.uint8).tobytes())
        f.flush()
        os.fsync(f.fileno())
    _drop_from_cache(p)
    return p


def _compound_pages(path, resident):
    """Independent of vmlab's code: a Python mmap, one pagemap and one kpageflags read per
    resident page; ``{page: (pfn, head, tail)}``."""
    out = {}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        m.madvise(mmap.MADV_RANDOM)
        base = np.frombuffer(m, np.uint8).ctypes.data
        with open("/proc/self/pagemap", "rb", buffering=0) as pm, \
                open("/proc/kpageflags", "rb", buffering=0) as kf:
            for page in np.flatnonzero(resident).tolist():
                _ = m[page * PS]          # a minor fault: the page gets a PTE
                pm.seek((base // PS + page) * 8)
                entry = int.from_bytes(pm.read(8), "little")
                assert entry >> 63, f"page {page} has no PTE after being read"
                pfn = entry & ((1 << 55) - 1)
                kf.seek(pfn * 8)
                flags = int.from_bytes(kf.read(8), "little")
                out[page] = (pfn, bool(flags >> 15 & 1), bool(flags >> 16 & 1))
    return out


# -- the real page cache ---------------------------------------------------------------------
@needs_root
def test_layout_of_a_cached_file_agrees_with_its_frames(tmp_path):
    p = _new_file(tmp_path, 1024)
    with open(p, "rb") as f:      # sequential reads: readahead picks the folios' sizes
        while f.read(1 << 16):
            pass
    before = residency(p)
    got = folio_layout(p)
    after = residency(p)
    assert np.array_equal(before, after), "measuring the layout changed the residency"
    assert got is not None and before.sum() > 0
    covered = np.zeros(len(before), bool)
    for first, n in got:
        assert n >= 2 and n & (n - 1) == 0 and first % n == 0 and first + n <= len(before)
        assert not covered[first:first + n].any(), "folios overlap"
        covered[first:first + n] = True
    assert list(got) == sorted(got)
    assert not (covered & ~before).any(), "a folio covers a page that is not resident"
    frames = _compound_pages(p, before)
    compound = {pg for pg, (_pfn, head, tail) in frames.items() if head or tail}
    # every page the frames say is part of a large folio is in one, the others are single
    assert set(np.flatnonzero(covered).tolist()) == compound
    assert int(covered.sum()) + (len(frames) - len(compound)) == int(before.sum())
    for first, n in got:
        pfn0, head, _tail = frames[first]
        assert head and all(frames[first + i] == (pfn0 + i, False, True) for i in range(1, n))


@needs_root
def test_a_file_not_in_the_cache_has_no_folios_and_stays_out(tmp_path):
    p = _new_file(tmp_path, 64)
    if residency(p).any():
        pytest.skip("the kernel kept pages of a just-written file after DONTNEED")
    assert folio_layout(p) == ()
    assert not residency(p).any(), "measuring the layout read pages"


@needs_root
def test_file_info_measures_the_layout_with_the_residency(tmp_path):
    p = _new_file(tmp_path, 256)
    with open(p, "rb") as f:
        f.read()
    info = file_info(p, "before_run")
    assert info.folios == folio_layout(p)
    assert file_info(p, "before_run", page_size=2 * PS).folios is None  # not the system's pages


def test_cannot_measure_gives_none(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert folio_layout(empty) is None
    assert folio_layout(tmp_path / "missing") is None
    assert folio_layout(tmp_path) is None          # a directory cannot be mapped
    some = tmp_path / "some"
    some.write_bytes(b"x" * PS)
    monkeypatch.setattr(folios_mod, "KPAGEFLAGS", str(tmp_path / "no-kpageflags"))
    assert folio_layout(some) is None              # as without root
    info = file_info(some, "before_run")
    assert info.resident is not None and info.folios is None


def test_hidden_frame_numbers_give_none(tmp_path, monkeypatch):
    """Without CAP_SYS_ADMIN the kernel's pagemap shows present pages with frame 0."""
    p = tmp_path / "f"
    p.write_bytes(b"x" * 4 * PS)
    monkeypatch.setattr(folios_mod, "KPAGEFLAGS", os.devnull)
    monkeypatch.setattr(folios_mod, "_pagemap",
                        lambda vpn, n: np.full(n, 1 << 63, np.uint64))
    assert folio_layout(p) is None


def test_a_file_shrunk_while_mapped_is_an_error_not_a_sigbus(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 8 * PS)
    with mapped_file(p) as (addr, _size, n_pages):
        assert _populate(addr, np.arange(n_pages), PS)
        os.truncate(p, PS)
        assert not _populate(addr, np.arange(2, n_pages), PS)


def test_a_kernel_without_populate_read_reads_the_bytes(tmp_path, monkeypatch):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 8 * PS)
    monkeypatch.setattr(folios_mod, "MADV_POPULATE_READ", 0x7FFF)   # EINVAL, as before 5.14
    with mapped_file(p) as (addr, _size, _n):
        assert _populate(addr, np.array([1, 2, 5]), PS)
    if os.geteuid() == 0 and _can_read_kpageflags():
        assert folio_layout(p) is not None


def test_runs_that_are_not_whole_aligned_folios_are_left_out():
    H, T = np.uint64(1 << 15), np.uint64(1 << 16)
    # pages 0-3 one folio; 4-5 single; 8-9 a head and a tail, 10-11 tails at other frames;
    # 12-13 a two-page folio; 16-18 a run of 3 (cut short); 21-22 two pages, misaligned
    pfn = np.array([100, 101, 102, 103, 7, 9, 0, 0, 200, 201, 300, 301, 400, 401, 0, 0,
                    500, 501, 502, 0, 0, 600, 601, 0], np.uint64)
    flags = np.zeros(len(pfn), np.uint64)
    flags[[0, 8, 12, 16, 21]] = H
    flags[[1, 2, 3, 9, 10, 11, 13, 17, 18, 22]] = T
    present = pfn != 0
    assert _folios(present, pfn, flags) == ((0, 4), (8, 2), (12, 2))


# -- recordings: the native format and the scenario ------------------------------------------
def _trace(tmp_path, folios, name="t.vmt", size=64):
    t = np.zeros(2, MAPPING_DTYPE)
    t[0] = (0, BASE, BASE + size * PS, 1, 0, Backing.FILE, 0, 0, 0, FOREVER)
    t[1] = (0, 0x10000000, 0x10000000 + size * PS, 1, 0, Backing.FILE, 1, 0, 0, FOREVER)
    files = [FileInfo("/data/f", 1, 2, size * PS, np.ones(size, bool), "before_run",
                      folios=folios),
             FileInfo("/data/g", 1, 3, size * PS, np.ones(size, bool), "before_run",
                      folios=())]
    with TraceWriter(tmp_path / name, mappings=Mappings(t, files, "test")) as w:
        w.append(addr=np.array([BASE, 0x10000000], np.uint64),
                 op=np.array([Op.LOAD, Op.LOAD], np.uint8))
    return open_trace(tmp_path / name)


def test_folios_round_trip_and_old_traces_load_with_none(tmp_path):
    lay = ((0, 16), (16, 4), (32, 32))
    tr = _trace(tmp_path, lay)
    f, g = tr.mappings.files
    assert f.folios == lay and g.folios == ()
    assert read_header(tmp_path / "t.vmt")["version"] == 2    # no version of its own
    assert tr.mappings == _trace(tmp_path, lay, name="u.vmt").mappings
    assert tr.mappings != _trace(tmp_path, ((0, 16),), name="v.vmt").mappings
    # an older recording: no folios in its files entries
    old = tmp_path / "old.vmt"
    old.write_bytes((tmp_path / "t.vmt").read_bytes())

    def strip(hdr):
        for item in hdr["files"]:
            item.pop("folios", None)
    edit_header(old, strip)
    assert [x.folios for x in open_trace(old).mappings.files] == [None, None]
    assert _trace(tmp_path, None, name="n.vmt").mappings.files[0].folios is None


def test_damaged_folios_are_one_clear_error(tmp_path):
    _trace(tmp_path, ((0, 16),))
    p = tmp_path / "t.vmt"
    good = p.read_bytes()
    off = read_header(p)["files"][0]["folios"]["offset"]
    raw = bytearray(good)
    raw[off + 8] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(TraceFormatError, match=r"checksum mismatch in files\[0\].folios"):
        open_trace(p)
    # a pair that is no folio (the checksum made to agree): named, with the file
    raw = bytearray(good)
    raw[off + 8:off + 16] = (3).to_bytes(8, "little")
    p.write_bytes(bytes(raw))
    edit_header(p, lambda h: h["files"][0]["folios"].update(crc32=None))
    with pytest.raises(TraceFormatError, match=r"files\[0\]: file '/data/f': folios: "
                                               r"\(0, 3\) is not a folio") as e:
        open_trace(p)
    assert e.value.path == str(p)
    p.write_bytes(good)
    edit_header(p, lambda h: h["files"][0]["folios"].update(n_rows=5))
    with pytest.raises(TraceFormatError, match=r"files\[0\].folios: 16 bytes do not hold 5"):
        open_trace(p)
    with pytest.raises(TraceFormatError, match="overlaps"):
        FileInfo("/x", 1, 2, PS, folios=((0, 8), (4, 4)))


def test_files_for_passes_the_layout_and_dropping_folios_drops_it(tmp_path):
    lay = ((0, 16), (32, 32))
    tr = _trace(tmp_path, lay)
    assert files_for(tr) == [File("/data/f", 64 * PS, folios=lay), File("/data/g", 64 * PS)]
    assert files_for(_trace(tmp_path, None, name="n.vmt"))[0].folios == ()
    sc = scenario_for(tr)
    assert sc.files[0].folios == lay
    runs = ("fault_model", "ra_pages", "memory_bytes", "file", "workingset")
    small, said = runnable(sc, runs=runs)
    assert all(f.folios == () for f in small.files) and small.folio_pages == 1
    assert any("recorded folio layouts" in s for s in said)


# -- against the kernel: a program that reads a file cached in large folios ------------------

SCAN_PROG = r"""
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    /* with a second argument at a fixed, 2 MiB-aligned address (valgrind keeps it: the
       folios alone decide); else where the kernel chooses (a mapping this large 2 MiB-aligned,
       thp_get_unmapped_area; valgrind chooses its own: docs/model.md 11.11) */
    volatile char *p = argc > 2 ? mmap((void *)0x200000000, st.st_size, PROT_READ,
                                       MAP_PRIVATE | MAP_FIXED, fd, 0)
                                : mmap(0, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    long sum = 0;
    for (long i = 0; i < st.st_size; i += 4096)
        sum += p[i];                        /* one read a page, in order */
    return sum == 1;
}
"""


@needs_root
@pytest.mark.parametrize("where", ["fixed", "kernel's"])
def test_a_file_in_large_folios_takes_the_faults_the_kernel_takes(tmp_path, where):
    """A program reads every page of a 16 MiB file that ``cat`` put in the page cache (the
    kernel's readahead gives it folios of 4 to 256 pages here): ``vmlab validate`` predicts
    the kernel's page faults from the recorded folio layout within 3%, where the same
    prediction with one-page folios, fault-around's 16 pages a fault, is far above.  Mapped
    at a fixed address, or where the kernel chooses: 2 MiB-aligned, where valgrind puts it
    elsewhere (docs/model.md 11.11)."""
    import shutil
    import subprocess

    from vmlab.validate import predict, validate

    import platform
    import re

    cc = shutil.which("cc") or shutil.which("gcc")
    if not (cc and shutil.which("valgrind") and shutil.which("perf")):
        pytest.skip("needs a C compiler, valgrind and perf (make test installs them)")
    release = tuple(int(x) for x in re.findall(r"\d+", platform.release())[:2])
    if release < (6, 18):
        pytest.skip(f"kernel {platform.release()}: the model maps large folios as Linux 6.18 "
                    "does (docs/model.md 11.3), which earlier kernels do not")
    (tmp_path / "scan.c").write_text(SCAN_PROG)
    subprocess.run([cc, "-O1", "-o", str(tmp_path / "scan"), str(tmp_path / "scan.c")],
                   check=True)
    data = tmp_path / "data.bin"
    data.write_bytes(np.random.default_rng(0).integers(0, 255, 4096 * 4096, np.uint8).tobytes())
    fd = os.open(data, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)
    layout = folio_layout(data)
    if not layout or max(n for _, n in layout) <= 16:
        pytest.skip(f"this file system cached the file in no folio larger than fault-around's "
                    f"16 pages: {layout!r}")
    argv = [str(tmp_path / "scan"), str(data)] + (["fixed"] if where == "fixed" else [])
    res = validate(argv, runs=3, keep=tmp_path / "r.vmt")
    (row,) = res["rows"]
    predicted, measured = row["predicted_page_faults"], row["measured_page_faults"]
    assert abs(predicted / measured - 1) <= 0.03, row
    # the layout is what makes the difference: without it (one-page folios), a fault a
    # fault-around window of 16 pages on the file's 4,096
    trace = open_trace(tmp_path / "r.vmt")
    (info,) = [f for f in trace.mappings.files if f.path == str(data)]
    assert info.folios and max(n for _, n in info.folios) > 16   # measured at record time
    flat = predict(trace, files=tuple(File(f.name, f.size_bytes) for f in files_for(trace)))
    assert flat["page_faults"] - predicted >= 0.3 * 4096 / 16, (flat, row)


def test_a_file_of_a_terabyte_or_more_is_one_clear_error(tmp_path):
    """A recording naming a file of 2^63 bytes once made the replay ask for 2 PiB of
    per-page tables (MemoryError, found by benchmarks/fuzz_mappings.py): files are limited
    to 1 TiB, said in one line naming the entry."""
    from vmlab.trace.mappings import MAX_FILE_BYTES

    with pytest.raises(TraceFormatError, match=r"^file '/data/h': size_bytes 1099511627776; "
                                               r"expected a size below 1,099,511,627,776"):
        FileInfo("/data/h", 1, 4, MAX_FILE_BYTES)
    FileInfo("/data/h", 1, 4, MAX_FILE_BYTES - 1)
    _trace(tmp_path, None)
    p = tmp_path / "t.vmt"
    edit_header(p, lambda h: h["files"][0].update(size_bytes=2**63 - 1))
    with pytest.raises(TraceFormatError, match=r"files\[0\]: file '/data/f': size_bytes "
                                               r"9223372036854775807; expected") as e:
        open_trace(p)
    assert e.value.path == str(p)
