"""``vmlab record``: run a real program and store its accesses with the mappings of that run
and the page-cache state of its files.

Two tools:

``lackey`` (default): every memory access, from ``valgrind --tool=lackey --trace-mem=yes``.
    The mappings come from valgrind itself, in the same run: valgrind's address-space
    manager prints the client's memory layout at start-up (``-d``: the executable, the
    dynamic loader, the stack and the brk segment, each marked client-owned ``file``/``anon``
    apart from valgrind's own ``FILE``/``ANON`` segments, with device, inode and offset), and
    ``--trace-syscalls=yes`` prints every ``mmap``, ``munmap``, ``mprotect``, ``mremap``,
    ``brk``, ``open``/``openat``, ``dup*`` and ``close`` *in the same stream as lackey's
    records*, so each change of the address space lands exactly between the two accesses it
    separates.  This is why valgrind's own view was chosen over ``/proc/PID/maps`` snapshots
    (which race with the program, and under valgrind also list valgrind's own mappings) and
    over a separate ``perf`` run (whose addresses are those of another process: valgrind
    loads the client at its own addresses).

``perf``: the faults the kernel actually took, with real threads and times
    (``perf record`` of the ``exceptions:page_fault_user``/``page_fault_kernel`` tracepoints,
    whose ``error_code`` says read, write or instruction fetch, or of the ``page-faults``
    software event where the tracepoints are missing), plus ``--show-mmap-events`` and the
    ``munmap``/``mprotect``/``brk``/``mremap`` syscall tracepoints for the mappings
    (see :mod:`vmlab.trace.readers.perf`).

Page-cache state: before the program starts, the executable, its ELF interpreter and the
shared libraries it needs (``DT_NEEDED``, followed recursively) are measured with
``mincore(2)`` (:func:`vmlab.trace.mappings.residency`); each file is measured before vmlab
reads its ELF headers, so the snapshot is exact (``residency_when = "before_run"``).  Files
the run opens later (``dlopen``, data files) are measured when the record stream shows their
``open`` (``"at_open"``: pages the run read before that instant count as resident; valgrind
reads the symbol tables of every object it maps, so for those the snapshot is an upper bound).
With the residency each file's large folios are measured (:func:`vmlab.trace.folios.
folio_layout`, root only: ``FileInfo.folios``), from the resident pages alone.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import VmlabError
from .mappings import (FILE_READ_DTYPE, FOREVER, MAPPING_DTYPE, MOVE_DTYPE, NO_FILE,
                       PLACEMENT_DTYPE, PROT_EXEC, PROT_READ, PROT_WRITE, READ_CALLS, ZAP_ADVICE,
                       ZAP_DTYPE, Backing, FileInfo, Mappings, file_info, kernel_aligns)
from .build import split_page_crossings
from .model import Call, Op, TraceMeta
from .native import TraceWriter

PAGE = 4096
INSTALL = {"valgrind": "valgrind is not installed: install it (Debian/Ubuntu: "
                       "`apt-get install valgrind`)",
           "perf": "perf is not installed: install it (Debian: `apt-get install linux-perf`, "
                   "Ubuntu: `apt-get install linux-tools-generic`)"}


def require(tool):
    """Raise :class:`VmlabError` with one line saying what to install when ``tool`` is
    missing; return its path."""
    path = shutil.which(tool)
    if path is None:
        raise VmlabError(INSTALL[tool])
    if tool == "perf":
        r = subprocess.run([path, "--version"], capture_output=True, text=True)
        if r.returncode != 0:  # Debian's /usr/bin/perf wrapper without the kernel's perf
            raise VmlabError(INSTALL["perf"] + f" ({(r.stderr or r.stdout).strip()[:120]})")
    return path


def resolve_program(argv):
    """The program's path (``PATH`` lookup), or :class:`VmlabError`."""
    if not argv:
        raise VmlabError("no program given: vmlab record -o OUT.vmt -- PROGRAM ARGS...")
    prog = argv[0]
    path = prog if "/" in prog else shutil.which(prog)
    if path is None or not os.path.isfile(path):
        raise VmlabError(f"program {prog!r} not found (not a file, not on PATH)")
    if not os.access(path, os.X_OK):
        raise VmlabError(f"program {path!r} is not executable")
    return os.path.abspath(path)


# -- ELF: the files a program maps at start ----------------------------------------------
_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
             "/lib", "/usr/lib", "/usr/local/lib", "/lib/aarch64-linux-gnu",
             "/usr/lib/aarch64-linux-gnu")


def _elf_deps(path):
    """``(interpreter, needed names, runpath dirs)`` of an ELF file ((None, [], []) for
    anything else).  Reads the program and section headers only."""
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 64 or ident[:4] != b"\x7fELF" or ident[4] != 2:
                return None, [], []
            e = "<" if ident[5] == 1 else ">"
            phoff, = struct.unpack_from(e + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(e + "HH", ident, 54)
            f.seek(phoff)
            ph = f.read(phentsize * phnum)
            interp, dyn, loads = None, None, []
            for k in range(phnum):
                p_type, _flags, p_offset, p_vaddr, _pa, p_filesz, _memsz = struct.unpack_from(
                    e + "IIQQQQQ", ph, k * phentsize)
                if p_type == 3:  # PT_INTERP
                    f.seek(p_offset)
                    interp = f.read(p_filesz).rstrip(b"\0").decode()
                elif p_type == 2:  # PT_DYNAMIC
                    dyn = (p_offset, p_filesz)
                elif p_type == 1:  # PT_LOAD
                    loads.append((p_vaddr, p_offset, p_filesz))
            if dyn is None:
                return interp, [], []
            f.seek(dyn[0])
            raw = f.read(dyn[1])
            needed, runpath, strtab = [], [], None
            for k in range(0, len(raw) - 15, 16):
                tag, val = struct.unpack_from(e + "qQ", raw, k)
                if tag == 0:
                    break
                if tag == 5:  # DT_STRTAB (a virtual address)
                    strtab = val
                elif tag == 1:
                    needed.append(val)
                elif tag in (15, 29):  # DT_RPATH, DT_RUNPATH
                    runpath.append(val)
            if strtab is None:
                return interp, [], []
            off = next((o + strtab - v for v, o, sz in loads if v <= strtab < v + sz), None)
            if off is None:
                return interp, [], []

            def string(i):
                f.seek(off + i)
                return f.read(256).split(b"\0", 1)[0].decode(errors="replace")

            origin = os.path.dirname(os.path.abspath(path))
            dirs = [d.replace("$ORIGIN", origin) for i in runpath for d in string(i).split(":")]
            return interp, [string(i) for i in needed], dirs
    except (OSError, struct.error, UnicodeDecodeError):
        return None, [], []


#: Bytes the kernel's ``execve`` reads from the start of the program (``BINPRM_BUF_SIZE``,
#: ``prepare_binprm``) and of its ELF interpreter (``sizeof(Elf64_Ehdr)``).
BINPRM_BUF_SIZE = 256
ELF64_EHDR_SIZE = 64


def exec_reads(path, interpreter=False):
    """The file ranges ``(offset, nbytes)`` the kernel's ELF loader (``load_elf_binary``)
    reads from ``path`` before the program's first instruction: the header (256 bytes of the
    program, 64 of its interpreter), the program headers, and the ``PT_INTERP`` string and
    the ``PT_GNU_PROPERTY`` note of the program (the note of the interpreter too).  These
    are ``kernel_read``s through the page cache, with its readahead, not faults.  ``[]``
    for a file that is not a 64-bit ELF file."""
    try:
        size = os.path.getsize(path)
        elf = _program_headers(path)
        if elf is None:
            return []
        phoff, phentsize, phnum, headers = elf
        out = [(0, min(size, ELF64_EHDR_SIZE if interpreter else BINPRM_BUF_SIZE))]
        if phnum:
            out.append((phoff, phentsize * phnum))
        for p_type, p_offset, p_filesz, _memsz in headers:
            if (p_type == 3 and not interpreter) or p_type == 0x6474e553:  # INTERP, PROPERTY
                out.append((p_offset, p_filesz))
    except (OSError, struct.error):
        return []
    return [(o, min(n, size - o)) for o, n in out if n > 0 and o < size]


def startup_files(program):
    """The executable, its interpreter and its ``DT_NEEDED`` closure, each measured for
    page-cache residency *before* vmlab reads it: ``{(dev, inode): FileInfo}``."""
    out = {}
    todo = [program]
    seen = set()
    extra = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    while todo:
        path = os.path.realpath(todo.pop(0))
        if path in seen:
            continue
        seen.add(path)
        info = file_info(path, "before_run")  # before _elf_deps reads it
        if info.inode:
            out.setdefault((info.dev, info.inode), info)
        interp, needed, runpath = _elf_deps(path)
        if interp:
            todo.append(interp)
        for name in needed:
            if "/" in name:
                todo.append(name)
                continue
            for d in [*runpath, *extra, *_LIB_DIRS]:
                cand = os.path.join(d, name)
                if os.path.isfile(cand):
                    todo.append(cand)
                    break
    return out


# -- the address space as valgrind reports it ---------------------------------------------
#: ``mremap`` flags (``include/uapi/linux/mman.h``).
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4


class AddressSpace:
    """Live mappings of one address space; every change closes the rows it overlaps at the
    record number it happens (rows never overlap at any record number).  :attr:`moves`: the
    ``mremap`` calls that moved pages, ``(start, end, to, at)`` in call order.
    :attr:`placements`: the ``mmap`` calls the kernel would have placed 2 MiB-aligned to
    their file offset where the recorder chose another address, ``(start, end, at,
    file_offset)`` in call order.  :attr:`zaps`: the ``madvise`` calls that zapped a range
    (``MADV_DONTNEED``, ``MADV_DONTNEED_LOCKED``), ``(start, end, at, advice)`` in call
    order."""

    def __init__(self):
        self.live = []     # [start, end, prot, shared, backing, file, offset, from_record]
        self.done = []
        self.moves = []
        self.placements = []
        self.zaps = []

    def carve(self, a, b, at):
        """Remove ``[a, b)`` from the live rows at record ``at``; return the removed parts'
        attributes (for mprotect/mremap)."""
        keep, removed = [], []
        for row in self.live:
            s, e = row[0], row[1]
            if e <= a or s >= b:
                keep.append(row)
                continue
            lo, hi = max(s, a), min(e, b)
            off = row[6] + (lo - s) if row[5] != NO_FILE else 0
            part = [lo, hi, row[2], row[3], row[4], row[5], off, row[7]]
            removed.append(part)
            if part[7] < at:
                self.done.append(part + [at])
            # a part created at this very record and removed at once never existed
            if s < a:
                keep.append([s, a, *row[2:]])
            if e > b:
                keep.append([b, e, row[2], row[3], row[4], row[5],
                             row[6] + (b - s) if row[5] != NO_FILE else 0, row[7]])
        self.live = keep
        return removed

    def add(self, start, end, prot, shared, backing, file, offset, at):
        if end <= start:
            return
        self.carve(start, end, at)
        self.live.append([start, end, prot, shared, int(backing), file, offset, at])

    def protect(self, a, b, prot, at):
        for part in self.carve(a, b, at):
            part[2] = prot
            part[7] = at
            self.live.append(part)

    def remap(self, old, old_len, new_len, new, flags, at):
        """A successful ``mremap(old, old_len, new_len, flags)`` that returned ``new`` (all
        lengths page-aligned): the old range's rows end at ``at`` and a row for ``[new, new +
        new_len)`` with the attributes of the old range's first part starts there.  When the
        mapping moved (``new != old``), the first ``min(old_len, new_len)`` bytes' pages went
        with it (``move_page_tables``: a shrink unmaps the tail first, a growth maps fresh
        pages after the moved ones): one entry of :attr:`moves`.  With
        ``MREMAP_DONTUNMAP`` the old range stays mapped, empty of pages: its rows end and
        start again, unchanged, at ``at`` (as an ``mprotect`` to the same permissions)."""
        parts = self.carve(old, old + old_len, at)
        if not parts:
            return
        if flags & MREMAP_DONTUNMAP and new != old:
            for part in parts:
                part[7] = at
                self.live.append(part)
        p = min(parts, key=lambda q: q[0])
        self.add(new, new + new_len, p[2], p[3], p[4], p[5], p[6], at)
        moved = min(old_len, new_len)
        if new != old and moved:
            self.moves.append((old, old + moved, new, at))

    def _rows(self):
        return self.done + [row + [FOREVER] for row in self.live]

    def table(self, asid=0):
        rows = self._rows()
        t = np.zeros(len(rows), MAPPING_DTYPE)
        for i, r in enumerate(sorted(rows, key=lambda r: (r[7], r[0]))):
            t[i] = (asid, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
        return t

    def moves_table(self, asid=0):
        """:attr:`moves` as a :data:`~vmlab.trace.mappings.MOVE_DTYPE` array.  A move at a
        record where no row starts or ends is left out: every call at that record then
        changed only mappings made at that same record, which no access found mapped, so it
        moved no page (an ``mmap``, ``mremap`` and ``munmap`` of one range in a row)."""
        rows = self._rows()
        changes = {r[7] for r in rows} | {r[8] for r in rows}
        kept = [(asid, *mv) for mv in self.moves if mv[3] in changes]
        return np.array(kept, MOVE_DTYPE)

    def placements_table(self, asid=0):
        """:attr:`placements` as a :data:`~vmlab.trace.mappings.PLACEMENT_DTYPE` array."""
        rows = sorted(self.placements, key=lambda p: p[2])   # (stable: call order at a record)
        return np.array([(asid, *p) for p in rows], PLACEMENT_DTYPE)

    def zaps_table(self, asid=0):
        """:attr:`zaps` as a :data:`~vmlab.trace.mappings.ZAP_DTYPE` array."""
        rows = sorted(self.zaps, key=lambda z: z[2])   # (stable: call order at a record)
        return np.array([(asid, *z) for z in rows], ZAP_DTYPE)


def _page_up(x):
    return (x + PAGE - 1) // PAGE * PAGE


_SEG = re.compile(r"aspacem\s+\d+: (file|anon|FILE|ANON|RSVN|    ) ([0-9a-f]+)-([0-9a-f]+)\s+"
                  r"\S+\s+([-rwxTH]{5})?\s*(SmFixed|SmLower|SmUpper)?"
                  r"(?:\s*d=0x([0-9a-f]+) i=(\d+)\s+o=(\d+)\s+\((\d+),\d+\))?")
_SEGNAME = re.compile(r"aspacem \((\d+),\d+,\d+\) (.*)$")


def parse_startup_layout(text):
    """The client segments of valgrind's "Memory layout at client startup" table (``-d``):
    ``(segments, names)`` with segments as ``(kind, start, end_exclusive, perms, dev, inode,
    offset, name_index, smode)``."""
    lines = text.splitlines()
    try:
        first = next(i for i, line in enumerate(lines)
                     if "SHOW_SEGMENTS: Memory layout at client startup" in line)
    except StopIteration:
        raise VmlabError("valgrind printed no start-up memory layout (is `valgrind -d` "
                         "supported by this valgrind?)") from None
    segs, names = [], {}
    for line in lines[first + 1:]:
        if "aspacem >>>" in line:
            break
        m = _SEGNAME.search(line)
        if m:
            names[int(m[1])] = m[2]
            continue
        m = _SEG.search(line)
        if m:
            segs.append((m[1], int(m[2], 16), int(m[3], 16) + 1, m[4] or "-----",
                         int(m[6], 16) if m[6] else 0, int(m[7]) if m[7] else 0,
                         int(m[8]) if m[8] else 0, int(m[9]) if m[9] else -1, m[5]))
    return segs, names


def _prot(perms):
    return ((PROT_READ if perms[0] == "r" else 0) | (PROT_WRITE if perms[1] == "w" else 0)
            | (PROT_EXEC if perms[2] == "x" else 0))


class FileTable:
    """The files of the run, indexed by (dev, inode)."""

    def __init__(self, known, late_when="at_open"):
        self.known = dict(known)   # (dev, inode) -> FileInfo measured before the run
        self.late_when = late_when  # files first seen later: measured then, or not at all
        self.files = []
        self.index = {}

    def add(self, path=None, dev=0, inode=0):
        if path is not None and not inode:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                dev, inode = st.st_dev, st.st_ino
        key = (dev, inode)
        if inode and key in self.index:
            return self.index[key]
        info = self.known.get(key)
        if info is None:
            info = file_info(path, self.late_when) if path and self.late_when else None
            if info is None or not info.inode:
                size = 0
                with contextlib.suppress(OSError, TypeError):
                    size = os.stat(path).st_size
                info = FileInfo(str(path or f"<dev {dev:#x} inode {inode}>"), dev, inode, size)
        self.files.append(info)
        i = len(self.files) - 1
        if inode:
            self.index[key] = i
        return i


_SYSCALL = re.compile(rb"SYSCALL\[(\d+),(\d+)\]\((\d+)\) (.*?)\s*$")
_RESULT = re.compile(r"(Success|Failure)\(0x([0-9a-fA-F]+)\)")
_PATHARG = re.compile(r"0x[0-9a-fA-F]+\((.*)\)")
_AT_FDCWD = 4294967196


class SyscallTracker:
    """Applies valgrind's ``--trace-syscalls`` lines to an :class:`AddressSpace`, and keeps
    the run's reads of regular files (:attr:`reads`, rows of
    :data:`~vmlab.trace.mappings.FILE_READ_DTYPE` as tuples).

    A read's file range needs the file position of its descriptor: each ``open`` starts an
    open file description at 0, ``dup``/``dup2``/``dup3``/``fcntl(F_DUPFD)`` share it,
    ``read``/``readv``/``write``/``writev``/``preadv2(-1)``/``sendfile(NULL)`` move it by
    their result, ``lseek`` sets it to its result; ``pread64``/``preadv``/``preadv2``
    name their offset.  ``sendfile`` with an offset pointer reads at an offset the trace
    does not show (valgrind prints the pointer, not the value): not recorded, counted in
    :attr:`n_unknown_reads`."""

    def __init__(self, space, files, cwd, heap_base=None):
        self.space = space
        self.files = files
        self.cwd = cwd
        self.fds = {}           # fd -> file index
        self.desc = {}          # fd -> open file description: {"pos", "file", "regular"}
        self.paths = {}         # fd -> path (for openat relative to a directory fd)
        self.pending = {}       # (pid, tid) -> (name, args)
        self.brk = heap_base
        self.heap_base = heap_base
        self.reads = []         # (asid, file, offset, nbytes, at_record, call)
        self.n_unknown_reads = 0

    def line(self, raw, at):
        m = _SYSCALL.match(raw)
        if m is None:
            return
        key = (int(m[1]), int(m[2]))
        rest = m[4].decode("utf-8", "replace")
        if rest.startswith("... [async] -->"):
            call = self.pending.pop(key, None)
            if call is not None:
                self._apply(call[0], call[1], rest, at)
            return
        name, _, tail = rest.partition(" ")
        if not name.startswith("sys_"):
            return
        name = name[4:]
        arrow = tail.rfind("-->")
        args = tail[:arrow] if arrow >= 0 else tail
        args = args.strip().removesuffix("[sync]").strip().removeprefix("(").removesuffix(")")
        result = tail[arrow + 3:] if arrow >= 0 else ""
        if "[async]" in result and "Success" not in result and "Failure" not in result:
            self.pending[key] = (name, args)
            return
        self._apply(name, args, result, at)

    def _apply(self, name, args, result, at):
        r = _RESULT.search(result)
        if r is None or r[1] != "Success":
            return
        value = int(r[2], 16)
        if name in ("open", "openat", "openat2", "creat"):
            m = _PATHARG.search(args)
            if m is None:
                return
            path = m[1]
            dirfd = int(args.split(",", 1)[0]) if name.startswith("openat") else _AT_FDCWD
            if not path.startswith("/"):
                base = self.cwd if dirfd == _AT_FDCWD else self.paths.get(dirfd)
                if base is None:
                    return
                path = os.path.join(base, path)
            path = os.path.normpath(path)
            self.fds[value] = self.files.add(path)
            self.paths[value] = path
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                regular = False
            self.desc[value] = {"pos": 0, "file": self.fds[value], "regular": regular}
            return
        nums = []
        for a in args.split(","):
            a = a.strip()
            try:
                nums.append(int(a, 0))
            except ValueError:
                nums.append(None)
        if name == "close":
            self.fds.pop(nums[0], None)
            self.desc.pop(nums[0], None)
            self.paths.pop(nums[0], None)
        elif name in ("dup", "dup2", "dup3", "fcntl") and nums and nums[0] in self.fds:
            if name != "fcntl" or (len(nums) > 1 and nums[1] in (0, 1030)):  # F_DUPFD(_CLOEXEC)
                self.fds[value] = self.fds[nums[0]]
                if nums[0] in self.desc:
                    self.desc[value] = self.desc[nums[0]]    # one description: one position
                if nums[0] in self.paths:
                    self.paths[value] = self.paths[nums[0]]
        elif name in _POSITIONED and nums and (nums[0] in self.desc or name == "sendfile"):
            self._read_or_write(name, nums, value, at)
        elif name == "mmap" and len(nums) >= 6:
            length, prot, flags, fd, off = nums[1], nums[2], nums[3], nums[4], nums[5]
            shared = 1 if flags & 0x3 in (0x1, 0x3) else 0
            if flags & 0x20 or fd in (None, 0xFFFFFFFF):
                backing, file, off = Backing.ANON, NO_FILE, 0
            else:
                backing, file = Backing.FILE, self.fds.get(fd, NO_FILE)
            self.space.add(value, value + _page_up(length), prot & 7, shared, backing, file,
                           off, at)
            # valgrind chose this address; the kernel would have aligned a large file
            # mapping to its offset (thp_get_unmapped_area()): say so, the replay moves it
            if backing == Backing.FILE and kernel_aligns(length, flags, off):
                self.space.placements.append((value, value + _page_up(length), at, off))
        elif name == "munmap" and len(nums) >= 2:
            self.space.carve(nums[0], nums[0] + _page_up(nums[1]), at)
        elif name == "madvise" and len(nums) >= 3:
            # ( addr, len, advice ): MADV_DONTNEED(_LOCKED) frees the range's pages and its
            # page table entries; the mapping stays (the next access faults afresh)
            start, length, advice = nums[0], nums[1], nums[2]
            if (advice in ZAP_ADVICE and start is not None and length is not None
                    and value == 0 and length > 0):
                self.space.zaps.append((start, start + _page_up(length), at, advice))
        elif name == "mprotect" and len(nums) >= 3:
            self.space.protect(nums[0], nums[0] + _page_up(nums[1]), nums[2] & 7, at)
        elif name == "mremap" and len(nums) >= 3:
            # ( old, old_len, new_len, flags[, new_address with MREMAP_FIXED] )
            flags = nums[3] if len(nums) > 3 and nums[3] is not None else 0
            self.space.remap(nums[0], _page_up(nums[1]), _page_up(nums[2]), value, flags, at)
        elif name == "brk":
            if self.heap_base is None:
                self.heap_base = self.brk = value
            new = _page_up(value)
            cur = _page_up(self.brk)
            if new > cur:
                self.space.add(cur, new, PROT_READ | PROT_WRITE, 0, Backing.HEAP, NO_FILE, 0, at)
            elif new < cur:
                self.space.carve(new, cur, at)
            self.brk = value


    def _read_or_write(self, name, nums, value, at):
        """A call on a tracked descriptor that reads its file or moves its position."""
        if name == "sendfile":
            return self._sendfile(nums, value, at)
        d = self.desc[nums[0]]
        if name == "lseek":
            d["pos"] = value
            return
        if name in ("write", "writev"):
            d["pos"] += value
            return
        if name in ("pread64", "preadv"):
            offset = nums[3] if len(nums) > 3 else None
        elif name == "preadv2":
            offset = nums[3] if len(nums) > 3 else None
            if offset is not None and offset >= 1 << 63:   # -1 (printed signed or not)
                offset = -1
            if offset == -1:
                offset = d["pos"]
                d["pos"] += value
        else:                                    # read, readv: at the position, moving it
            offset = d["pos"]
            d["pos"] += value
        if offset is None or offset < 0:
            self.n_unknown_reads += 1
            return
        if value > 0 and d["regular"]:
            self.reads.append((0, d["file"], offset, value, at, READ_CALLS.index(name)))

    def _sendfile(self, nums, value, at):
        # sendfile(out_fd, in_fd, offset pointer, count): the reading side is in_fd
        if len(nums) < 3 or nums[1] not in self.desc:
            return
        d = self.desc[nums[1]]
        if nums[2] != 0:          # the offset is in memory: not in the trace
            self.n_unknown_reads += 1
            return
        offset = d["pos"]
        d["pos"] += value
        if value > 0 and d["regular"]:
            self.reads.append((0, d["file"], offset, value, at, READ_CALLS.index("sendfile")))

    def reads_table(self):
        """The recorded file reads as a :data:`FILE_READ_DTYPE` array, in call order."""
        return np.array(self.reads, FILE_READ_DTYPE)


#: Calls that read a file or move a descriptor's position (see :class:`SyscallTracker`).
_POSITIONED = ("read", "pread64", "readv", "preadv", "preadv2", "sendfile", "lseek", "write",
               "writev")


def initial_space(segs, names, files):
    """The client's start-up mappings (record 0) from valgrind's layout table; returns
    ``(space, heap_base)``."""
    space = AddressSpace()
    heap_base = None
    for k, (kind, start, end, perms, dev, inode, off, name, _smode) in enumerate(segs):
        nxt = segs[k + 1] if k + 1 < len(segs) else None
        prev = segs[k - 1] if k else None
        if kind == "file":
            path = names.get(name)
            fi = files.add(path, dev, inode) if path else files.add(None, dev, inode)
            space.add(start, end, _prot(perms), 0, Backing.FILE, fi, off, 0)
        elif kind == "anon":
            if nxt is not None and nxt[0] == "RSVN" and nxt[8] == "SmLower":
                heap_base = start        # valgrind's brk segment: the heap grows from here
            elif prev is not None and prev[0] == "RSVN" and prev[8] == "SmUpper":
                # the main stack and the reservation it grows down into
                space.add(prev[1], end, _prot(perms), 0, Backing.STACK, NO_FILE, 0, 0)
            else:
                space.add(start, end, _prot(perms), 0, Backing.ANON, NO_FILE, 0, 0)
    return space, heap_base


def record(argv, out, *, tool="lackey", cwd=None, quiet=False, stdout=None):
    """Record ``argv`` with ``tool`` (``"lackey"`` or ``"perf"``) into the native trace
    ``out``; see :func:`record_lackey` and :func:`record_perf`."""
    if tool == "lackey":
        return record_lackey(argv, out, cwd=cwd, quiet=quiet, stdout=stdout)
    if tool == "perf":
        return record_perf(argv, out, cwd=cwd, quiet=quiet, stdout=stdout)
    raise VmlabError(f"--with must be lackey or perf, got {tool!r}")


# -- lackey ------------------------------------------------------------------------------
_BLOCK = 1 << 22


def record_lackey(argv, out, *, cwd=None, quiet=False, stdout=None):
    """Record ``argv`` under valgrind lackey into the native trace ``out`` (atomically).

    Returns ``(trace_path, info)`` with ``info`` a dict: ``records``, ``seconds``,
    ``exit_code``, ``n_mappings``, ``n_files``.  The program's standard output goes to
    ``stdout`` (a file object or ``subprocess.DEVNULL``; default: ours); with ``quiet`` its
    standard error is not shown.
    """
    from .readers import lackey as lk

    valgrind = require("valgrind")
    program = resolve_program(argv)
    cwd = os.path.abspath(cwd or os.getcwd())
    known = startup_files(program)
    files = FileTable(known)
    out = Path(out).resolve()  # the program (and perf) may run in another folder
    meta = TraceMeta(source="vmlab record --with lackey -- " + " ".join(argv),
                     notes="valgrind --tool=lackey --trace-mem=yes --trace-syscalls=yes -d; "
                           "one thread (lackey does not tell threads apart); mappings from "
                           "valgrind's start-up layout and the syscall trace; the kernel's "
                           "stores into user memory (read, fstat... buffers) as one STORE "
                           "record per page where the call returns, call kernel; the "
                           "read()-family file ranges and exec's reads in the file reads "
                           "table; exec's own stores (the start of each .bss in its .data "
                           "page, call kernel) first; the vDSO "
                           "valgrind hides as [vdso]/[vvar] rows where its layout leaves "
                           "them, read by the loader at the start and by the first time call")
    helper, why_not = iovtrace_binary()
    if helper is None:
        meta = TraceMeta(source=meta.source, notes=meta.notes + "; the buffers of readv, "
                         f"preadv, recvmsg... not recorded ({why_not})")
    errf = tempfile.TemporaryFile()
    vdir = tempfile.mkdtemp(prefix="vmlab-iov-")
    vpath = os.path.join(vdir, "vectors.log")
    Path(vpath).touch()
    rfd, wfd = os.pipe()
    cmd = [valgrind, "--tool=lackey", "--trace-mem=yes", "--trace-syscalls=yes", "-d",
           "--vgdb=no", f"--log-fd={wfd}", program, *argv[1:]]
    if helper is not None:
        cmd = [helper, vpath, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, pass_fds=(wfd,), stderr=errf, cwd=cwd, stdout=stdout)
    os.close(wfd)
    writer = TraceWriter(out, meta, with_call=True)   # (the kernel's stores: call KERNEL)
    n = 0
    tracker = None
    pending_lines = []        # syscall lines seen before the layout table was parsed
    vectors = VectorLog(vpath)
    kwrites = KernelWrites(vectors=vectors if helper is not None else None)
    vdso = VdsoReads(None)
    try:
        cap = _BLOCK // 7 + 2
        addr = np.empty(cap, np.uint64)
        op = np.empty(cap, np.uint8)
        size = np.empty(cap, np.uint32)
        carry = b""
        exec_done = False
        with os.fdopen(rfd, "rb", buffering=0) as pipe:
            while True:
                data = pipe.read(_BLOCK)
                if not data:
                    break
                if not exec_done and n == 0:
                    # valgrind prints the client's start-up layout (to stderr) before the
                    # client's first instruction: the exec's own stores go before every
                    # record (the first blocks may hold only valgrind's preamble)
                    got = _exec_store_records(errf, program, writer, vdso)
                    if got is not None:
                        exec_done = True
                        n += got
                data = carry + data
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                if cut == 0:
                    continue
                try:
                    n = _feed(data[:cut], n, writer, addr, op, size, lk, pending_lines,
                              kwrites, vdso)
                except VmlabError:
                    _refuse_if_forked(argv, pending_lines, data, pipe)
                    raise
            if carry:
                n = _feed(carry + b"\n", n, writer, addr, op, size, lk, pending_lines, kwrites,
                          vdso)
        code = proc.wait()
        elapsed = time.perf_counter() - t0
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
        _check_one_process(argv, program, err, pending_lines, n)
        segs, names = parse_startup_layout(err)
        space, heap_base = initial_space(segs, names, files)
        for start, end, prot in vdso.rows():
            space.add(start, end, prot, 0, Backing.SPECIAL, NO_FILE, 0, 0)
        tracker = SyscallTracker(space, files, cwd, heap_base)
        for raw, at in pending_lines:
            tracker.line(raw, at)
        # the program's own stderr went to the same file as valgrind's debug log
        if not quiet:
            own = [line for line in err.splitlines()
                   if not re.match(r"^(--\d+[:-]|==\d+==|\s+/tmp/vgdb-pipe)", line)]
            if own:
                sys.stderr.write("\n".join(own) + "\n")
        if n == 0:
            raise VmlabError(f"valgrind recorded no access (exit code {code}); is {argv[0]!r} "
                             "a program valgrind can run?")
        if vdso.place is None and vdso_layout() is not None:
            writer.meta = TraceMeta(source=meta.source, notes=meta.notes + "; not the vDSO "
                                    "(valgrind's start-up layout shows no place for it): the "
                                    "kernel's 1-2 faults on it are missing")
        reads = _exec_rows(program, files) + tracker.reads
        writer.mappings = Mappings(space.table(), files.files,
                                   "valgrind -d start-up layout + --trace-syscalls=yes",
                                   np.array(reads, FILE_READ_DTYPE), space.moves_table(),
                                   space.placements_table(), space.zaps_table())
        writer.close()
    except BaseException:
        writer.abort()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        raise
    finally:
        errf.close()
        vectors.close()
        shutil.rmtree(vdir, ignore_errors=True)
    return out, {"records": n, "seconds": elapsed, "exit_code": code,
                 "n_mappings": len(writer.mappings), "n_files": len(files.files),
                 "kernel_write_calls": kwrites.n_calls, "kernel_write_records": kwrites.n_records,
                 "vector_calls_unresolved": kwrites.n_unresolved}


_EXEC_OF = re.compile(r"^--(\d+):\d+: *syswrap Exec of (.*)$", re.M)
#: valgrind's -d line when the client forks (its child is traced into the same stream).
_FORKED = re.compile(rb"clone\(v?fork\): process \d+ created child (\d+)")


def _forked(argv, child):
    """The one-line refusal of a recording whose program forked ``child``."""
    return VmlabError(
        f"{argv[0]} started another process (pid {child}) during the recording: a lackey "
        "recording follows one process, and the child's accesses would be mixed into its "
        "parent's; record a program that does not fork (or use `vmlab record --with perf`, "
        "which keeps each process's faults apart)")


def _fork_child(syscall_lines):
    """The pid of a child the program forked, from the syscall trace (valgrind's line about
    the fork, or a second process's calls), or None."""
    pids = []
    for raw, _at in syscall_lines:
        f = _FORKED.search(raw)
        if f is not None:
            return int(f[1])
        m = _SYSCALL.match(raw)
        if m is not None and int(m[1]) not in pids:
            pids.append(int(m[1]))
    return pids[1] if len(pids) > 1 else None


def _refuse_if_forked(argv, syscall_lines, data, pipe):
    """After a line of valgrind's stream could not be read: if the program forked (the
    child's lines interleave with its parent's and can cut them), say so instead.  Looks at
    the syscall lines read so far, then reads the rest of the stream, without keeping it,
    until valgrind's line about the fork or its end."""
    child = _fork_child(syscall_lines)
    if child is not None:
        raise _forked(argv, child)
    while data:
        m = _FORKED.search(data)
        if m is not None:
            raise _forked(argv, int(m[1]))
        data = data[-200:] + pipe.read(_BLOCK)
        if len(data) <= 200:
            return


def _check_one_process(argv, program, err, syscall_lines, n):
    """Refuse a lackey recording that is not all of the program's run: valgrind (without
    ``--trace-children``) stops tracing at an ``execve`` (the new program runs natively,
    unrecorded: a launcher, a shell wrapper, a shim such as pyenv's), and a forked child
    writes its accesses into the same stream as its parent's, where nothing tells them
    apart.  ``err``: valgrind's debug log; ``syscall_lines``: the ``(line, record)`` pairs
    of the syscall trace."""
    child = _fork_child(syscall_lines)
    if child is not None:
        raise _forked(argv, child)
    ex = _EXEC_OF.search(err)
    if ex is not None:
        script = ""
        with contextlib.suppress(OSError):
            with open(program, "rb") as f:
                if f.read(2) == b"#!":
                    script = f" ({program} is a script: its interpreter ran first)"
        raise VmlabError(
            f"{argv[0]} replaced itself with {ex[2].strip()} (execve) after {n:,} records"
            f"{script}; valgrind does not follow an exec, so the rest of the run was not "
            "recorded: record the program that does the work itself (for a launcher or a "
            "shim, the executable it starts)")


def exec_stores(program, segs, names, page_size=PAGE):
    """The addresses the kernel's ELF loader writes in the program's and its interpreter's
    memory before the first instruction: for each ``PT_LOAD`` segment whose ``p_memsz``
    exceeds its ``p_filesz`` (``.data`` followed by ``.bss``), ``padzero`` clears the rest of
    the page holding the segment's file end (``elf_load``): a kernel-mode write fault on a
    private file page, a copy-on-write that needs the file page (the one major fault a cold
    ``gzip`` takes under a limit where memory is ample).  ``segs``/``names``: valgrind's
    start-up layout (:func:`parse_startup_layout`), which says where each file's pages are;
    one address per page, at the first byte cleared.  The kernel makes these stores (its
    ``clear_user``): a recording writes them with call ``KERNEL``."""
    interp, _n, _r = _elf_deps(program)
    out = []
    for path in (program, interp):
        if path is None:
            continue
        real = os.path.realpath(path)
        for p_offset, p_filesz, p_memsz in _load_segments(real):
            if p_memsz <= p_filesz:
                continue
            end = p_offset + p_filesz          # the file offset of the first byte cleared
            for kind, start, stop, _perms, _dev, _ino, off, name, _sm in segs:
                if kind != "file" or os.path.realpath(names.get(name, "")) != real:
                    continue
                if off <= end < off + (stop - start) or (end == off + (stop - start)
                                                         and end % page_size):
                    addr = start + (end - off)
                    if addr % page_size:
                        out.append(addr)
                    break
    return out


def _program_headers(path):
    """``(e_phoff, e_phentsize, e_phnum, [(p_type, p_offset, p_filesz, p_memsz), ...])`` of
    a 64-bit ELF file, ``None`` for any other file (``OSError``/``struct.error`` pass)."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 64 or ident[:4] != b"\x7fELF" or ident[4] != 2:
            return None
        e = "<" if ident[5] == 1 else ">"
        phoff, = struct.unpack_from(e + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", ident, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    headers = []
    for k in range(phnum):
        p_type, _fl, p_offset, _va, _pa, p_filesz, p_memsz = struct.unpack_from(
            e + "IIQQQQQ", ph, k * phentsize)
        headers.append((p_type, p_offset, p_filesz, p_memsz))
    return phoff, phentsize, phnum, headers


def _load_segments(path):
    """``(p_offset, p_filesz, p_memsz)`` of each ``PT_LOAD`` of a 64-bit ELF file."""
    try:
        elf = _program_headers(path)
    except (OSError, struct.error):
        return []
    return [] if elf is None else [(o, fs, ms) for t, o, fs, ms in elf[3] if t == 1]


def _exec_store_records(errf, program, writer, vdso=None):
    """Append the exec's stores (:func:`exec_stores`) from the start-up layout valgrind has
    written to ``errf`` so far (read with ``pread``: valgrind shares the file offset), then,
    with ``vdso`` (a :class:`VdsoReads` without a place yet), the loader's read of the vDSO
    placed in that layout; return how many records, ``None`` while the layout is not
    complete."""
    size = os.fstat(errf.fileno()).st_size
    text = os.pread(errf.fileno(), size, 0).decode("utf-8", "replace")
    if "SHOW_SEGMENTS: Memory layout at client startup" not in text \
            or "aspacem >>>" not in text.split("Memory layout at client startup", 1)[1]:
        return None                   # not printed yet
    segs, names = parse_startup_layout(text)
    n = _append(writer, exec_stores(program, segs, names), Op.STORE, 0, Call.KERNEL)
    if vdso is not None:
        vdso.place = vdso_place(segs, vdso_layout())
        n = _append(writer, vdso.start(), Op.LOAD, n)
    return n


def _exec_rows(program, files):
    """File reads table rows (at record 0) of the kernel's ``exec`` of ``program``: its
    reads of the program and of its interpreter (:func:`exec_reads`)."""
    rows = []
    interp, _needed, _runpath = _elf_deps(program)
    for path, is_interp in ((program, False), (interp, True)):
        if path is None:
            continue
        got = exec_reads(path, interpreter=is_interp)
        if got:
            f = files.add(os.path.realpath(path))
            rows += [(0, f, o, k, 0, READ_CALLS.index("exec")) for o, k in got]
    return rows


#: System calls that write into the caller's memory, valgrind's names: which argument (from
#: 0) is the buffer and how many bytes the kernel wrote (``None``: the call's result).
KERNEL_WRITES = {"read": (1, None), "pread64": (1, None), "getdents64": (1, None),
                 "getdents": (1, None), "getrandom": (0, None), "readlink": (1, None),
                 "readlinkat": (2, None), "recvfrom": (1, None), "newfstatat": (2, 144),
                 "newfstat": (1, 144), "fstat": (1, 144), "newlstat": (1, 144),
                 "newstat": (1, 144), "statx": (4, 256)}


_IOVTRACE = {}


def iovtrace_binary():
    """``(path, "")`` of the compiled ``vmlab/data/iovtrace.c`` (built once per process,
    static when possible), or ``(None, why)`` where it cannot be built (not x86-64 Linux,
    no C compiler)."""
    if "path" not in _IOVTRACE:
        import platform

        from ..calibrate import process_helper

        if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
            _IOVTRACE["path"] = (None, "the iovtrace helper is for x86-64 Linux")
        else:
            try:
                _IOVTRACE["path"] = (process_helper("iovtrace"), "")
            except VmlabError as e:
                _IOVTRACE["path"] = (None, str(e))
    return _IOVTRACE["path"]


#: Calls whose buffers the kernel finds through a vector in user memory (``struct iovec``,
#: ``struct msghdr``): valgrind prints the vector's address only, so their ranges come from
#: the ``iovtrace`` helper's log (:class:`VectorLog`).
VECTOR_WRITES = ("readv", "preadv", "preadv2", "recvmsg", "recvmmsg", "process_vm_readv")


class VectorLog:
    """The log of ``vmlab/data/iovtrace.c`` (the helper ``record_lackey`` runs valgrind
    under), read as the recording goes: one entry per vector call, ``(pid, nr, arg0, arg1,
    arg2, result)`` and the ranges the kernel wrote.  The helper writes an entry at the
    call's return, before valgrind resumes and prints the result line, so the entry of a
    result line is always in the log when the line is read."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.carry = b""
        self.entries = []

    def _more(self):
        data = self.carry + self.f.read()
        cut = data.rfind(b"\n") + 1
        self.carry = data[cut:]
        for line in data[:cut].splitlines():
            parts = line.split()
            if len(parts) < 7:
                continue
            try:
                key = (int(parts[0]), int(parts[2]), int(parts[3], 16), int(parts[4], 16),
                       int(parts[5], 16), int(parts[6]))
                ranges = [tuple(int(x, 16) for x in r.split(b":")) for r in parts[7:]]
            except ValueError:
                continue
            self.entries.append((key, ranges))

    def take(self, key):
        """The ranges ``[(addr, nbytes)]`` of the first unclaimed entry with ``key``
        (``None`` if there is none)."""
        for attempt in (0, 1):
            for i, (k, ranges) in enumerate(self.entries):
                if k == key:
                    del self.entries[i]
                    return ranges
            if attempt == 0:
                self._more()
        return None

    def close(self):
        self.f.close()


#: The calls a native program makes through the vDSO, reading its data page (``[vvar]``),
#: where under valgrind (which unmaps the vDSO and gives the client none) the C library
#: makes the system call: valgrind's names.
VDSO_DATA_CALLS = ("clock_gettime", "gettimeofday", "time", "clock_getres")

#: Where the loader reads the vDSO's ELF header (``setup_vdso()``: the program headers'
#: offset, ``e_phoff``): the page this host's kernel took its fault on.
VDSO_HEADER_OFFSET = 0x20


def vdso_layout(maps="/proc/self/maps"):
    """This kernel's vDSO mappings, from a process's maps (the recorder's own: every process
    of one kernel has the same): ``{name: (offset, size)}`` of ``[vvar]``,
    ``[vvar_vclock]`` and ``[vdso]``, offsets from the lowest of them (the data pages sit
    right below the code); ``None`` without a ``[vdso]`` and a ``[vvar]``."""
    found = {}
    with contextlib.suppress(OSError), open(maps) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] in ("[vvar]", "[vvar_vclock]", "[vdso]"):
                a, b = (int(x, 16) for x in parts[0].split("-"))
                found[parts[5]] = (a, b)
    if "[vdso]" not in found or "[vvar]" not in found:
        return None
    lo = min(a for a, _ in found.values())
    return {name: (a - lo, b - a) for name, (a, b) in found.items()}


def vdso_place(segs, layout):
    """Where the client's vDSO would be in valgrind's start-up layout (``segs``, as
    :func:`parse_startup_layout` gives them): valgrind keeps the process's own data pages (a
    read-only segment of its own, ``ANON``, as large as ``[vvar]`` and ``[vvar_vclock]``
    together) and unmaps the code; the code's place is then the same distance above them.
    Returns ``{name: (start, end)}`` for the names of ``layout``, or ``None`` where no such
    segment is found or the code's place is a segment of the client's."""
    if layout is None:
        return None
    data = [n for n in layout if n != "[vdso]"]
    lo = min(layout[n][0] for n in data)
    hi = max(layout[n][0] + layout[n][1] for n in data)
    cands = [s for s in segs if s[0] == "ANON" and s[3].startswith("r--")
             and s[2] - s[1] == hi - lo]
    if not cands:
        return None
    base = max(s[1] for s in cands) - lo
    out = {n: (base + off, base + off + size) for n, (off, size) in layout.items()}
    v0, v1 = out["[vdso]"]
    if any(s[0] in ("file", "anon") and s[1] < v1 and v0 < s[2] for s in segs):
        return None
    return out


class VdsoReads:
    """The vDSO's page faults a native run takes and a lackey recording cannot see
    (valgrind gives the client no vDSO, so the C library makes system calls instead): the
    loader's read of the vDSO's ELF header at start (:meth:`start`), and the first read of
    its data page by a call of :data:`VDSO_DATA_CALLS` (:meth:`loads`, at that call's line).
    Measured on this host with ``perf``: 1 fault in the vDSO for a program that calls none
    of them, 1 more at the first ``clock_gettime``.  ``place``: :func:`vdso_place`
    (``None``: nothing is recorded)."""

    def __init__(self, place):
        self.place = place
        self.read_data = False

    def start(self):
        """The loader's read, at the start: its address (none without a place)."""
        return () if self.place is None else (self.place["[vdso]"][0] + VDSO_HEADER_OFFSET,)

    def loads(self, raw):
        """The data page's address at the first call that reads it (empty for any other
        line)."""
        if self.place is None or self.read_data:
            return ()
        m = _SYSCALL.match(raw)
        if m is None:
            return ()
        name = m[4].decode("utf-8", "replace").partition("(")[0].strip()
        if not name.startswith("sys_") or name[4:] not in VDSO_DATA_CALLS:
            return ()
        self.read_data = True
        return (self.place["[vvar]"][0],)

    def rows(self):
        """``(start, end, prot)`` of the mappings, from record 0."""
        if self.place is None:
            return []
        return [(a, b, PROT_READ | (PROT_EXEC if name == "[vdso]" else 0))
                for name, (a, b) in sorted(self.place.items(), key=lambda x: x[1])]


class KernelWrites:
    """The stores the kernel makes into user memory for a system call (``copy_to_user``:
    ``read``'s buffer, ``fstat``'s struct, ``readv``'s vector of buffers...), from
    valgrind's ``--trace-syscalls`` lines and, for the calls whose buffers are in a vector
    (:data:`VECTOR_WRITES`), the ``iovtrace`` log (``vectors``, a :class:`VectorLog`).

    lackey traces the program's instructions only, so the first touch of a fresh buffer that
    ``read()`` filled would look like a load (a zero-page read fault, then a copy-on-write
    fault at the program's first store) where the kernel took one write fault, in kernel
    mode, inside the call.  Each such call becomes one ``STORE`` record per page of the bytes
    written, placed where the call returns, with call ``KERNEL`` (the kernel made it: its
    fault has no ``FAULT_FLAG_USER``; KERNEL-2026.md section 1: "kernel-mode faults").
    A vector call whose entry is not in the log (no ``vectors``: no C compiler to build the
    helper) writes no record and is counted in :attr:`n_unresolved`.
    """

    def __init__(self, page_size=PAGE, vectors=None):
        self.page_size = page_size
        self.vectors = vectors
        self.pending = {}       # (pid, tid) -> (name, args, pid, nr)
        self.n_calls = 0
        self.n_records = 0
        self.n_unresolved = 0

    def stores(self, raw):
        """Page addresses the kernel wrote for this syscall line (empty for most lines)."""
        m = _SYSCALL.match(raw)
        if m is None:
            return ()
        key = (int(m[1]), int(m[2]))
        rest = m[4].decode("utf-8", "replace")
        if rest.startswith("... [async] -->"):
            call = self.pending.pop(key, None)
            return self._apply(*call, rest) if call else ()
        name, _, tail = rest.partition(" ")
        name = name[4:] if name.startswith("sys_") else ""
        if name not in KERNEL_WRITES and name not in VECTOR_WRITES:
            return ()
        arrow = tail.rfind("-->")
        args = tail[:arrow] if arrow >= 0 else tail
        result = tail[arrow + 3:] if arrow >= 0 else ""
        call = (name, args, int(m[1]), int(m[3]))
        if "[async]" in result and "Success" not in result and "Failure" not in result:
            self.pending[key] = call
            return ()
        return self._apply(*call, result)

    def _apply(self, name, args, pid, nr, result):
        r = _RESULT.search(result)
        if r is None or r[1] != "Success":
            return ()
        parts = args.strip().removesuffix("[sync]").strip().removeprefix("(").removesuffix(")")
        parts = parts.split(",")
        if name in VECTOR_WRITES:
            return self._vector(parts, pid, nr, int(r[2], 16))
        which, size = KERNEL_WRITES[name]
        if which >= len(parts):
            return ()
        buf = _number(parts[which])
        if buf is None:
            return ()
        n = int(r[2], 16) if size is None else size
        return self._pages([(buf, n)])

    def _vector(self, parts, pid, nr, result):
        nums = [_number(x) for x in parts[:3]]
        if result <= 0 or len(nums) < 3 or None in nums:
            return ()
        ranges = self.vectors.take((pid, nr, *nums, result)) if self.vectors else None
        if ranges is None:
            self.n_unresolved += 1
            return ()
        return self._pages(ranges)

    def _pages(self, ranges):
        """One address per page the ranges touch (each range's first at its own byte), in
        order, each page once."""
        ps = self.page_size
        out, seen = [], set()
        for buf, n in ranges:
            if n <= 0 or buf == 0 or n > 1 << 40:
                continue
            first = buf // ps * ps
            for a in [buf] + list(range(first + ps, buf + n, ps)):
                if a // ps not in seen:
                    seen.add(a // ps)
                    out.append(a)
        if not out:
            return ()
        self.n_calls += 1
        self.n_records += len(out)
        return out


def _number(tok):
    """An integer argument as valgrind prints it (``3``, ``0x1fff000630``,
    ``0x10a010(/path)``), ``None`` if it is not one."""
    try:
        return int(tok.strip().split("(", 1)[0], 0)
    except ValueError:
        return None


def _feed(block, n, writer, addr, op, size, lk, syscalls, kwrites=None, vdso=None):
    """Parse one block of complete lines: lackey records go to ``writer``; syscall lines are
    kept with the number of records before them; the kernel's stores into user memory
    (:class:`KernelWrites`) become ``STORE`` records with call ``KERNEL`` where their call
    returns, and the vDSO's data read (:class:`VdsoReads`: the vDSO's code reads it, in
    user mode, call 0) a ``LOAD`` where the call that makes it is."""
    pos = 0
    end = len(block)
    buf = np.frombuffer(block, np.uint8)
    while pos < end:
        nxt = _next_special(block, pos)
        seg_end = end if nxt < 0 else nxt
        if seg_end > pos:
            k, err, where, _o = lk._parse(buf, pos, seg_end, addr, op, size)
            if err:
                line = block[where:block.find(b"\n", where)].decode("utf-8", "replace")
                raise VmlabError(f"unexpected line in valgrind's output: {line[:100]!r}")
            if k:
                # an access that crosses a page boundary: a record per page (its faults)
                cols = split_page_crossings({"addr": addr[:k], "op": op[:k], "size": size[:k]},
                                            writer.meta.page_size)
                writer.append(**cols)
                n += len(cols["addr"])
        if nxt < 0:
            break
        eol = block.find(b"\n", nxt) + 1
        line = block[nxt:eol]
        if line.startswith(b"SYSCALL["):
            syscalls.append((line, n))
            if vdso is not None:
                n = _append(writer, vdso.loads(line), Op.LOAD, n)
            if kwrites is not None:
                n = _append(writer, kwrites.stores(line), Op.STORE, n, Call.KERNEL)
        pos = eol
    return n


def _append(writer, pages, kind, n, call=Call.UNKNOWN):
    """Append one ``kind`` record of 8 bytes at each address of ``pages`` (with ``call``:
    ``KERNEL`` for the kernel's own stores; the writer needs a call column); the new
    count."""
    if pages:
        k = len(pages)
        extra = {"call": np.full(k, int(call), np.uint8)} if call else {}
        writer.append(addr=np.array(pages, np.uint64), op=np.full(k, int(kind), np.uint8),
                      size=np.full(k, 8, np.uint32), **extra)
    return n + len(pages)


def _next_special(block, pos):
    """Offset of the next line that is neither a lackey record nor a ``==PID==`` line
    (``SYSCALL[...``, ``--PID--`` or `` --> ...``), -1 if none."""
    a = block.find(b"SYSCALL[", pos)
    if pos == 0 and (block.startswith(b"--") or block.startswith(b" -->")):
        return 0
    cands = [x for x in (a,) if x >= 0]
    # "--PID-- message" lines, and " --> result" continuations of a syscall line that
    # valgrind cut in two (unimplemented syscalls)
    for pat in (b"\n--", b"\n --> "):
        b = block.find(pat, pos - 1 if pos else 0)
        if b >= 0:
            cands.append(b + 1)
    return min(cands) if cands else -1


# -- perf --------------------------------------------------------------------------------
_SPECIAL = ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]")


def _perf_events(perf):
    """The perf events to record: the fault tracepoints when this kernel has them (they say
    read, write or fetch), else the page-faults software event; the mapping syscalls."""
    lst = subprocess.run([perf, "list", "tracepoint"], capture_output=True, text=True).stdout
    ev = []
    if "exceptions:page_fault_user" in lst:
        ev += ["-e", "exceptions:page_fault_user", "-e", "exceptions:page_fault_kernel"]
    else:
        ev += ["-e", "page-faults", "-c", "1"]
    ev += ["-d"]  # data mmap events (MMAP2 of non-executable mappings) and sample addresses
    for s in ("mmap", "munmap", "mprotect", "mremap", "brk"):
        if f"syscalls:sys_enter_{s}" in lst:
            ev += ["-e", f"syscalls:sys_enter_{s}"]
    for s in ("brk", "mremap"):   # the new break; where a moved mapping went
        if f"syscalls:sys_exit_{s}" in lst:
            ev += ["-e", f"syscalls:sys_exit_{s}"]
    return ev


def mappings_from_perf(events, files, asid_of_pid):
    """The mappings table and the moves table (``mremap``,
    :meth:`AddressSpace.remap`) built from the perf reader's ``mappings_sink`` events."""
    spaces = {}
    brk = {}
    moving = {}     # pid -> the arguments of its mremap() in progress
    for ev in events:
        kind, pid = ev[0], ev[1]
        space = spaces.setdefault(pid, AddressSpace())
        if kind == "mmap2":
            _k, _pid, start, length, pgoff, dev, ino, perms, path, at = ev
            prot = _prot(perms[:3] + "--")
            shared = 1 if perms[3] == "s" else 0
            if path == "[stack]":
                space.add(start, start + length, prot, 0, Backing.STACK, NO_FILE, 0, at)
            elif path == "[heap]":
                space.add(start, start + length, prot, 0, Backing.HEAP, NO_FILE, 0, at)
            elif path in _SPECIAL:
                space.add(start, start + length, prot, 0, Backing.SPECIAL, NO_FILE, 0, at)
            elif path.startswith("//anon") or not ino:
                space.add(start, start + length, prot, shared, Backing.ANON, NO_FILE, 0, at)
            else:
                fi = files.add(path, dev, ino)
                space.add(start, start + length, prot, shared, Backing.FILE, fi, pgoff, at)
        elif kind == "munmap":
            args, at = ev[2], ev[3]
            if "addr" in args and "len" in args:
                space.carve(args["addr"], args["addr"] + _page_up(args["len"]), at)
        elif kind == "mprotect":
            args, at = ev[2], ev[3]
            if {"start", "len", "prot"} <= set(args):
                space.protect(args["start"], args["start"] + _page_up(args["len"]),
                              args["prot"] & 7, at)
        elif kind == "mremap":
            moving[pid] = ev[2]
        elif kind == "mremap_result":  # where the mapping is now (sys_exit_mremap)
            value, at = ev[2], ev[3]
            args = moving.pop(pid, None)
            if args is None or value >= 1 << 63 or not {"addr", "old_len", "new_len"} <= set(args):
                continue    # failed (-errno), or its arguments were not recorded
            space.remap(args["addr"], _page_up(args["old_len"]), _page_up(args["new_len"]),
                        value, args.get("flags", 0), at)
        elif kind == "brk_result":   # the break after a brk() call (sys_exit_brk)
            value, at = ev[2], ev[3]
            cur = brk.get(pid)
            if cur is None:
                brk[pid] = value          # brk(0) at start: the heap's base
                continue
            new, old = _page_up(value), _page_up(cur)
            if new > old:
                space.add(old, new, PROT_READ | PROT_WRITE, 0, Backing.HEAP, NO_FILE, 0, at)
            elif new < old:
                space.carve(new, old, at)
            brk[pid] = value
    mine = [(asid_of_pid[pid], space) for pid, space in spaces.items() if pid in asid_of_pid]
    tables = [space.table(asid) for asid, space in mine]
    moves = [space.moves_table(asid) for asid, space in mine]
    return (np.concatenate(tables) if tables else np.zeros(0, MAPPING_DTYPE),
            np.concatenate(moves) if moves else np.zeros(0, MOVE_DTYPE))


def record_perf(argv, out, *, cwd=None, quiet=False, stdout=None):
    """Record ``argv`` natively under ``perf record`` into the native trace ``out``: every
    page fault with its real thread, time (``gap_ns``, each thread's first record offset
    from the start of the recording) and, with the ``exceptions:page_fault_*`` tracepoints,
    read/write/fetch; the ``mmap_sem`` writer syscalls as ``LOCK_W``; the mappings from the
    run's own ``PERF_RECORD_MMAP2`` events and ``munmap``/``mprotect``/``brk`` tracepoints."""
    from .readers import perf as perf_reader

    perf = require("perf")
    program = resolve_program(argv)
    cwd = os.path.abspath(cwd or os.getcwd())
    files = FileTable(startup_files(program), late_when=None)
    out = Path(out).resolve()  # the program (and perf) may run in another folder
    with tempfile.TemporaryDirectory(prefix="vmlab-perf-", dir=out.parent) as tmp:
        data = os.path.join(tmp, "perf.data")
        events = _perf_events(perf)
        t0 = time.perf_counter()
        r = subprocess.run([perf, "record", "-q", "-m", "1024", "-o", data, *events, "--",
                            program, *argv[1:]], cwd=cwd, stdout=stdout,
                           stderr=subprocess.PIPE if quiet else None)
        elapsed = time.perf_counter() - t0
        if not os.path.exists(data) or os.path.getsize(data) == 0:
            said = (r.stderr or b"").decode(errors="replace").strip().splitlines()
            raise VmlabError(f"perf record wrote no data (exit {r.returncode})"
                             + (f": {said[-1][:200]}" if said else "")
                             + "; as non-root set kernel.perf_event_paranoid=-1")
        text = os.path.join(tmp, "perf.txt")
        with open(text, "wb") as f:
            s = subprocess.run([perf, "script", "-i", data, "--ns", "--show-mmap-events",
                                "--show-task-events", "-F",
                                "comm,pid,tid,time,event,addr,trace"],
                               stdout=f, stderr=subprocess.PIPE)
        if s.returncode != 0:
            raise VmlabError(f"perf script failed: {s.stderr.decode(errors='replace')[:200]}")
        sink = []
        meta = TraceMeta(
            source="vmlab record --with perf -- " + " ".join(argv),
            notes="perf record " + " ".join(events) + "; fault records (op from the x86 error "
                  "code and call kernel for page_fault_kernel when the exceptions "
                  "tracepoints were recorded), syscalls as LOCK_W, "
                  "gap_ns from perf times with each thread's first record offset from the "
                  "recording's start; mappings from PERF_RECORD_MMAP2 and the syscall "
                  "tracepoints")
        n = 0
        pids = {}
        with TraceWriter(out, meta, with_gap=True, with_call=True) as w:
            for chunk in perf_reader.iter_chunks(text, thread_start="offset",
                                                  mappings_sink=sink, other_events="skip",
                                                  show_progress=False):
                w.append(**chunk)
                n += len(chunk["addr"])
            # asid = pid in order of first appearance, as the reader numbers them
            for ev in sink:
                if ev[1] is not None:
                    pids.setdefault(ev[1], None)
            asid_of = _asids_in_order(text)
            table, moves = mappings_from_perf(sink, files, asid_of)
            # no placements: perf sees the addresses the kernel chose (already aligned);
            # no zaps: the perf reader would need the syscalls:sys_enter_madvise tracepoint
            w.mappings = Mappings(table, files.files,
                                  "perf PERF_RECORD_MMAP2 + syscalls:sys_enter_{munmap,"
                                  "mprotect,mremap,brk}/sys_exit_{brk,mremap} tracepoints",
                                  moves=moves)
            n_rows = len(w.mappings)
    return out, {"records": n, "seconds": elapsed, "exit_code": r.returncode,
                 "n_mappings": n_rows, "n_files": len(files.files)}


def _asids_in_order(text):
    """pid -> asid as the perf reader numbers them (pids in order of their first sample)."""
    from .readers.perf import _OTHER, _event_kind, _parse_sample

    asid = {}
    with open(text, errors="replace") as f:
        for line in f:
            if "PERF_RECORD_" in line:
                continue
            m = _parse_sample(line.split())
            if m is None:
                continue
            id_tok, _time, _period, event, _k = m
            first, slash, _second = id_tok.partition("/")
            if slash and _event_kind(event) != _OTHER and first.isdigit():
                asid.setdefault(int(first), len(asid))
    return asid
