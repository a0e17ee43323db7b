"""Accesses the kernel made (``call`` ``KERNEL`` on an access: its fault has no
``FAULT_FLAG_USER``) through every trace reader and writer: the trace's check, the native
format (version 9, written only when needed), CSV, the perf reader, the lackey recorder
(the kernel's stores of a system call and the ELF loader's clear), strip, build and
conversion."""
from __future__ import annotations

import os
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.trace import Call, Op, Trace, open_trace, read_trace, write_trace
from vmlab.trace.build import concat, interleave
from vmlab.trace.convert import convert, losses
from vmlab.trace.model import call_misfit
from vmlab.trace.native import (CALL_VERSION, KERNEL_VERSION, ZAPS_VERSION, TraceWriter,
                                read_header)
from vmlab.trace.readers import perf
from vmlab.trace.strip import strip_trace
from vmt_header import edit_header

K = int(Call.KERNEL)
ACCESSES = (Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY)


def _mixed():
    """A writer (mmap), a kernel-made store, the program's load, a reader, a kernel-made
    fetch and modify."""
    return Trace([0x10000, 0x11000, 0x11008, 0x12000, 0x13000, 0x14000],
                 op=[Op.LOCK_W, Op.STORE, Op.LOAD, Op.LOCK_R, Op.IFETCH, Op.MODIFY],
                 size=[4096, 8, 8, 0, 4, 8], call=[Call.MMAP, K, 0, 0, K, K])


def _version(path):
    return int(np.fromfile(path, "<u4", 1, offset=8)[0])


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


# -- the trace ---------------------------------------------------------------------------------

def test_kernel_on_an_access_is_accepted_and_marked():
    t = _mixed()
    assert t.kernel_made().tolist() == [False, True, False, False, True, True]
    assert t.record(1)["call"] is Call.KERNEL
    assert not Trace([1, 2]).kernel_made().any()        # no call column: the program's own
    for op in ACCESSES:
        assert call_misfit(op, K) is None and call_misfit(op, 0) is None


@pytest.mark.parametrize("op, call, words", [
    (Op.LOCK_W, K, r"record 1: a LOCK_W record has call code 6 \(kernel\); a writer names one "
                   r"of 0 to 5 \(unknown, mmap, munmap, mprotect, mremap, brk\)"),
    (Op.LOCK_R, K, r"record 1: a LOCK_R record has call code 6 \(kernel\); a reader names no "
                   r"call \(0\)"),
    (Op.LOCK_R, Call.MUNMAP, r"record 1: a LOCK_R record has call code 2 \(munmap\)"),
    (Op.STORE, Call.MMAP, r"record 1: a STORE record has call code 1 \(mmap\); an access is 0 "
                          r"\(the program's own\) or 6 \(kernel: made by the kernel in a "
                          r"system call\)"),
    (Op.IFETCH, Call.BRK, r"record 1: a IFETCH record has call code 5 \(brk\); an access is 0"),
])
def test_a_call_that_does_not_fit_its_record_is_one_line(op, call, words):
    with pytest.raises(TraceFormatError, match="column 'call': " + words) as e:
        Trace([0x1000, 0x2000], op=[Op.LOAD, op], call=[K, call])
    _one_line(e)


# -- the native format -------------------------------------------------------------------------

def test_version_9_only_when_an_access_is_the_kernels(tmp_path):
    t = _mixed()
    p = t.save(tmp_path / "k.vmt")
    assert _version(p) == read_header(p)["version"] == KERNEL_VERSION
    back = open_trace(p)
    assert back.equals(t) and back.kernel_made().tolist() == t.kernel_made().tolist()
    # the same calls without a kernel-made access keep version 5 (older vmlab reads them)
    plain = Trace(t.addr, op=t.op, size=t.size, call=np.where(t.kernel_made(), 0, t.call))
    assert _version(plain.save(tmp_path / "p.vmt")) == CALL_VERSION
    # streamed: the one KERNEL in the last chunk decides; a chunk without a call column
    # appends the program's own accesses
    with TraceWriter(tmp_path / "w.vmt", with_call=True) as w:
        w.append(addr=np.arange(1, 4, dtype=np.uint64) << 12)
        w.append(addr=np.array([0x9000], np.uint64), op=np.array([Op.STORE], np.uint8),
                 call=np.array([K], np.uint8))
    w9 = open_trace(tmp_path / "w.vmt")
    assert _version(tmp_path / "w.vmt") == KERNEL_VERSION
    assert w9.kernel_made().tolist() == [False, False, False, True]
    with TraceWriter(tmp_path / "z.vmt", with_call=True) as w:
        w.append(addr=np.array([0x9000], np.uint64), call=np.array([0], np.uint8))
    assert _version(tmp_path / "z.vmt") == CALL_VERSION


def test_the_writer_refuses_kernel_on_a_lock_record_naming_it(tmp_path):
    with pytest.raises(TraceFormatError, match=r"column 'call': record 3: a LOCK_W record has "
                                               r"call code 6 \(kernel\)") as e:
        with TraceWriter(tmp_path / "bad.vmt", with_call=True) as w:
            w.append(addr=np.array([1, 2], np.uint64) << 12, call=np.array([K, 0], np.uint8))
            w.append(addr=np.array([3, 4], np.uint64) << 12,
                     op=np.array([Op.LOAD, Op.LOCK_W], np.uint8),
                     size=np.array([8, 0], np.uint32), call=np.array([0, K], np.uint8))
    _one_line(e)
    assert not (tmp_path / "bad.vmt").exists()


def test_kernel_in_an_older_file_is_damage_named_by_its_record(tmp_path):
    p = _mixed().save(tmp_path / "k.vmt")
    good = p.read_bytes()
    for older in (CALL_VERSION, ZAPS_VERSION):
        p.write_bytes(good)
        edit_header(p, lambda h: h.update(version=older))
        with pytest.raises(TraceFormatError, match=(
                rf"column 'call': record 1: call code 6 is not one of 0 to 5 \(unknown, mmap, "
                rf"munmap, mprotect, mremap, brk in a file of version {older}\): the file is "
                r"damaged")) as e:
            open_trace(p)
        _one_line(e)
        open_trace(p, verify=False)          # (the header alone is fine: no record read)
    # before version 5 the column itself is a header error
    p.write_bytes(good)
    edit_header(p, lambda h: h.update(version=4))
    with pytest.raises(TraceFormatError, match="column 'call' needs format version 5"):
        open_trace(p)


def test_kernel_on_a_writer_in_a_version_9_file_is_damage(tmp_path):
    """A call byte changed (and its column's CRC made to match): damage named by record."""
    p = _mixed().save(tmp_path / "k.vmt")
    col = next(c for c in read_header(p)["columns"] if c["name"] == "call")
    raw = bytearray(p.read_bytes())
    raw[col["offset"]] = K                   # record 0 is the LOCK_W
    p.write_bytes(bytes(raw))
    crc = zlib.crc32(bytes(raw[col["offset"]:col["offset"] + col["nbytes"]]))
    edit_header(p, lambda h: next(c for c in h["columns"] if c["name"] == "call").update(
        crc32=crc))
    with pytest.raises(TraceFormatError, match=r"column 'call': record 0: a LOCK_W record has "
                                               r"call code 6 \(kernel\).*the file is damaged"):
        open_trace(p)


# -- CSV ---------------------------------------------------------------------------------------

def test_csv_round_trip_writes_kernel(tmp_path):
    t = _mixed()
    p = write_trace(t, tmp_path / "k.csv", "csv")
    lines = p.read_text().splitlines()
    assert lines[0] == "tid,asid,addr,op,size,call"
    assert lines[2] == "0,0,0x11000,store,8,kernel" and lines[4].endswith(",lock_r,0,unknown")
    back = read_trace(p)
    assert back.equals(t)
    assert write_trace(back, tmp_path / "again.csv", "csv").read_bytes() == p.read_bytes()
    # a name in any case, or the code; to the native format and back
    q = tmp_path / "c.csv"
    q.write_text('addr,op,call\n0x1000,load,KERNEL\n0x2000,S,6\n0x3000,m, "Kernel" \n'
                 "0x4000,lock_w,brk\n0x5000,i,unknown\n")
    c = read_trace(q)
    assert c.calls().tolist() == [K, K, K, Call.BRK, 0]
    v = convert(q, tmp_path / "c.vmt")
    assert _version(v) == KERNEL_VERSION and open_trace(v).equals(c)


@pytest.mark.parametrize("line, words", [
    ("0x1000,lock_w,kernel", r"a LOCK_W record has call code 6 \(kernel\); a writer names one "
                             r"of 0 to 5"),
    ("0x1000,lock_r,kernel", r"a LOCK_R record has call code 6 \(kernel\); a reader names no "
                             r"call \(0\)"),
    ("0x1000,lock_r,mprotect", r"a LOCK_R record has call code 3 \(mprotect\)"),
    ("0x1000,load,mmap", r"a LOAD record has call code 1 \(mmap\); an access is 0 \(the "
                         r"program's own\) or 6 \(kernel"),
    ("0x1000,0x3,4", r"a MODIFY record has call code 4 \(mremap\); an access is 0"),
    ("0x1000,store,kernal", r"expected a call \(mmap, munmap, mprotect, mremap, brk, kernel, "
                            r"unknown or 0-6\), found 'kernal'"),
    ("0x1000,store,7", r"value '7' is out of range \(0 to 6\)"),
])
def test_csv_refuses_a_call_that_does_not_fit_in_one_line(tmp_path, line, words):
    q = tmp_path / "c.csv"
    q.write_text("addr,op,call\n0x2000,store,kernel\n" + line + "\n")
    with pytest.raises(TraceFormatError, match=r"c\.csv:3: column 'call': " + words) as e:
        read_trace(q)
    _one_line(e)


def test_csv_without_an_op_column_holds_loads_which_name_no_writer(tmp_path):
    q = tmp_path / "c.csv"
    q.write_text("addr,call\n0x1000,kernel\n0x2000,mmap\n")
    with pytest.raises(TraceFormatError, match=r"c\.csv:3: column 'call': a LOAD record has "
                                               r"call code 1 \(mmap\)"):
        read_trace(q)


# -- perf --------------------------------------------------------------------------------------

TRACEPOINTS = """\
 t 100/100  10.000001000:   exceptions:page_fault_user: address=0x55e5d89de020 ip=0x55e5d89de020 error_code=0x14
 t 100/100  10.000002000:   exceptions:page_fault_kernel: address=0x7ffd0100 ip=0xffffffff81b73418 error_code=0x2
 t 100/100  10.000003000:   exceptions:page_fault_kernel: address=0xffffffff81000000 ip=0xffffffff81b73418 error_code=0x0
 t 100/100  10.000004000:   exceptions:page_fault_user: address=0x7ffd0200 ip=0x55e5d89de100 error_code=0x6
 t 100/100  10.000005000:   exceptions:page_fault_kernel: address=0x55e5d89e0000 ip=0xffffffff821ec6bd error_code=0x0
 t 100/100  10.000006000:      syscalls:sys_enter_munmap: addr: 0x55e5d89df000, len: 0x00001000
"""


def _read_perf(path, **kw):
    chunks = list(perf.iter_chunks(path, show_progress=False, **kw))
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def test_perf_page_fault_kernel_samples_are_the_kernels(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text(TRACEPOINTS)
    c = _read_perf(p)
    # the kernel-mode fault on a kernel address is skipped, as before
    assert c["addr"].tolist()[:4] == [0x55E5D89DE020, 0x7FFD0100, 0x7FFD0200, 0x55E5D89E0000]
    assert c["op"].tolist() == [Op.IFETCH, Op.STORE, Op.STORE, Op.LOAD, Op.LOCK_W]
    assert c["call"].tolist() == [0, K, 0, K, Call.MUNMAP]
    assert read_trace(p, fmt="perf").kernel_made().sum() == 2


# the software event, as perf script -F +addr prints it (the ip after the data address's
# symbol and dso), and with call chains (-g: the ip is the chain's first line)
SOFTWARE = """\
 cat  3541   517.837600:          1   page-faults:     555784afb240 __environ+0x0 (/usr/bin/cat) ffffffff81752b6a elf_load+0x28a ([kernel.kallsyms])
 cat  3541   517.837700:          1   page-faults:     7f87df8bd068 [unknown] (//anon)     7f87df8a1000 main+0x10 (/usr/bin/cat)
 cat  3541   517.837800:          1   page-faults:     7f87df8bd068 [unknown] (//anon) ffffffff821ec6bd __put_user_8+0xd ([kernel.kallsyms])
 cat  3541   517.837900:          1   page-faults:     7f87df8c0000 [unknown] (//anon) 7f87df8a1004 ffff800000000000 ([unknown])
 cat  3541   517.838000:          1   page-faults:     7f87df8c1000 [unknown] (//anon) 7f87df8a1008 ffff8000 (/usr/bin/cat)
"""
CHAIN = """\
cat 19491/19491  2728.049916:          1             page-faults:     564cdcd4b0a4 _edata+0x0 (/tmp/cat)
\tffffffff81752b6a elf_load+0x28a ([kernel.kallsyms])
\tffffffff8175320a load_elf_binary+0x66a ([kernel.kallsyms])
\t    7f916a298ad7 [unknown] ([unknown])

cat 19491/19491  2728.049920:          1             page-faults:     7ffe1ee35e19 [unknown] ([stack])
\t    564cdcd4a100 main+0x20 (/tmp/cat)
\tffffffff8175396b load_elf_binary+0xdcb ([kernel.kallsyms])

cat 19491/19491  2728.049930:          1             page-faults:     7ffe1ee36000 [unknown] ([stack])
cat 19491/19491  2728.049940:          1             page-faults:     7ffe1ee37000 [unknown] ([stack])
\tffffffff81b73418 _copy_to_user+0x28 ([kernel.kallsyms])
\tffffffff8175396b load_elf_binary+0xdcb ([kernel.kallsyms])
"""


def test_perf_software_samples_at_a_kernel_ip_are_the_kernels(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text(SOFTWARE)
    c = _read_perf(p)
    assert c["addr"].tolist()[1] == 0x7F87DF8BD068 and set(c["op"].tolist()) == {Op.LOAD}
    # a kernel ip (its dso, or its address) marks the record; a user ip does not, nor does
    # a kernel-looking token that is not a full address
    assert c["call"].tolist() == [K, 0, K, K, 0]
    q = tmp_path / "c.txt"
    q.write_text(CHAIN)
    assert _read_perf(q)["call"].tolist() == [K, 0, 0, K]
    # a chunk's end between a sample and its chain changes nothing
    for n in (1, 2, 3):
        chunks = list(perf.iter_chunks(q, chunk_records=n, show_progress=False))
        assert [len(ch["addr"]) for ch in chunks[:-1]] == [n] * (len(chunks) - 1)
        assert np.concatenate([ch["call"] for ch in chunks]).tolist() == [K, 0, 0, K]
    # the recommended -F list prints no ip: the software event cannot tell
    r = tmp_path / "f.txt"
    r.write_text(" cat 3541/3541  517.837600:   page-faults:  555784afb240\n")
    assert _read_perf(r)["call"].tolist() == [0]


# -- the lackey recorder -----------------------------------------------------------------------

def test_lackey_kernel_stores_are_the_kernels_and_vdso_reads_the_users(tmp_path):
    """_feed: lackey's records stay the program's, the stores of a read() (KernelWrites)
    are the kernel's, the vDSO's data read (VdsoReads) stays the program's."""
    from vmlab.trace.readers import lackey as lk
    from vmlab.trace.record import KernelWrites, VdsoReads, _feed

    block = (b"I  04001000,3\n"
             b" L 1ffefff000,8\n"
             b"SYSCALL[7,1](0) sys_read ( 3, 0x10ff8, 9000 )[sync] --> Success(0x2000) \n"
             b" S 04022000,8\n"
             b"SYSCALL[7,1](228) sys_clock_gettime( 1, 0x1fff000660 )[sync] --> Success(0x0)\n"
             b" M 04022008,4\n")
    cap = 64
    addr, op, size = np.empty(cap, np.uint64), np.empty(cap, np.uint8), np.empty(cap, np.uint32)
    kw = KernelWrites()
    vdso = VdsoReads({"[vvar]": (0x7000, 0x9000), "[vdso]": (0x9000, 0xB000)})
    with TraceWriter(tmp_path / "l.vmt", with_call=True) as w:
        n = _feed(block, 0, w, addr, op, size, lk, [], kw, vdso)
    t = open_trace(tmp_path / "l.vmt")
    assert n == len(t) == 8
    assert t.addr.tolist() == [0x4001000, 0x1FFEFFF000, 0x10FF8, 0x11000, 0x12000, 0x4022000,
                               0x7000, 0x4022008]
    assert t.op.tolist() == [Op.IFETCH, Op.LOAD, Op.STORE, Op.STORE, Op.STORE, Op.STORE,
                             Op.LOAD, Op.MODIFY]
    assert t.calls().tolist() == [0, 0, K, K, K, 0, 0, 0]
    assert _version(tmp_path / "l.vmt") == KERNEL_VERSION


def test_lackey_exec_stores_are_the_kernels(tmp_path, monkeypatch):
    """The ELF loader's padzero clear, written before the first record, is the kernel's."""
    import tempfile

    from vmlab.trace import record

    monkeypatch.setattr(record, "exec_stores", lambda program, segs, names: [0x5010, 0x8020])
    with tempfile.TemporaryFile() as errf:
        errf.write(b"--1:1:aspacem SHOW_SEGMENTS: Memory layout at client startup\n"
                   b"--1:1:aspacem >>>\n")
        errf.flush()
        with TraceWriter(tmp_path / "e.vmt", with_call=True) as w:
            assert record._exec_store_records(errf, "/bin/true", w) == 2
    t = open_trace(tmp_path / "e.vmt")
    assert t.op.tolist() == [Op.STORE] * 2 and t.kernel_made().all()


@pytest.mark.skipif(not shutil.which("valgrind"), reason="needs valgrind (apt-get install "
                    "valgrind)")
def test_a_lackey_recording_marks_the_read_buffer_stores(tmp_path):
    """`vmlab record -- cat FILE`: the pages cat's read() fills are kernel-made stores."""
    from vmlab.trace.record import record_lackey

    f = tmp_path / "five_pages"
    f.write_bytes(os.urandom(5 * 4096 - 100))
    path, info = record_lackey(["/bin/cat", str(f)], tmp_path / "cat.vmt",
                               stdout=subprocess.DEVNULL, quiet=True)
    t = open_trace(path)
    assert _version(path) == KERNEL_VERSION
    k = t.kernel_made()
    assert (t.op[k] == Op.STORE).all()
    assert k.sum() >= info["kernel_write_records"] > 0
    # the file's read: five consecutive kernel-made stores on five consecutive pages
    pages = np.asarray(t.addr[k]) >> 12
    runs = np.flatnonzero(np.convolve(np.diff(pages) == 1, np.ones(4, int), "valid") == 4)
    assert len(runs) >= 1
    # the program's own accesses to the buffer afterwards stay the program's
    assert (~k).sum() > 1000


# -- strip, build, conversion ------------------------------------------------------------------

def test_strip_keeps_the_call_codes(tmp_path):
    a, b, c = 0x10000, 0x11000, 0x12000
    t = Trace([a, a + 8, a + 16, 0x20000, b, b + 8, c, c + 8],
              op=[Op.LOAD, Op.STORE, Op.STORE, Op.LOCK_W, Op.STORE, Op.LOAD, Op.LOAD,
                  Op.STORE],
              size=[8, 8, 8, 4096, 8, 8, 8, 8], call=[0, K, 0, Call.MMAP, K, 0, 0, 0])
    t.save(tmp_path / "t.vmt")
    out, info = strip_trace(open_trace(tmp_path / "t.vmt"), tmp_path / "s.vmt")
    s = open_trace(out)
    # kept: a's first read, a's first write (the kernel's), the mmap, b's first touch (the
    # kernel's store), c's first read and first write (the program's)
    assert s.addr.tolist() == [a, a + 8, 0x20000, b, c, c + 8]
    assert s.calls().tolist() == [0, K, Call.MMAP, K, 0, 0]
    assert _version(out) == KERNEL_VERSION
    # without a call column, none
    plain = Trace(t.addr, op=t.op, size=t.size)
    plain.save(tmp_path / "p.vmt")
    out, _ = strip_trace(open_trace(tmp_path / "p.vmt"), tmp_path / "ps.vmt")
    assert not open_trace(out).has_call


def test_concat_and_interleave_keep_the_call_column():
    t = _mixed()
    other = Trace([0x30000, 0x31000], op=[Op.LOAD, Op.STORE])          # no call column
    both = concat([t, other])
    assert both.calls().tolist() == t.calls().tolist() + [0, 0]
    mixed = interleave([t, other])
    assert sorted(mixed.addr[mixed.kernel_made()].tolist()) == \
        sorted(t.addr[t.kernel_made()].tolist())


def test_din_and_lackey_say_they_drop_the_kernels_accesses(tmp_path):
    t = Trace([0x1000, 0x2000], op=[Op.LOAD, Op.STORE], call=[0, K])
    for fmt in ("din", "lackey"):
        assert "which accesses the kernel made in a system call (call kernel)" in losses(t, fmt)
        back = read_trace(write_trace(t, tmp_path / f"t.{fmt}", fmt), fmt=fmt)
        assert not back.kernel_made().any()
    assert losses(t, "csv") == [] and losses(t, "vmt") == []
    assert not losses(Trace([0x1000], call=[0]), "din")
