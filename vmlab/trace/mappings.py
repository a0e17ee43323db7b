"""The mappings of a recorded run and the page-cache state of its files.

A trace recorded from a real program (``vmlab record``) carries, beside its records:

* **mappings**: one row per mapping of the run, valid for the records
  ``[from_record, until_record)`` (a mapping made by ``mmap`` in the middle of the run starts at
  the first record after the call; one removed by ``munmap`` ends there; an ``mprotect`` ends
  the old row and starts a new one with the new permissions).  Columns (:data:`MAPPING_DTYPE`):

  ================  ======  ==============================================================
  ``asid``          uint16  address space (the trace's ``asid``)
  ``start``         uint64  first byte (page-aligned)
  ``end``           uint64  one past the last byte (page-aligned)
  ``prot``          uint8   ``PROT_READ`` 1 | ``PROT_WRITE`` 2 | ``PROT_EXEC`` 4
  ``shared``        uint8   1 for ``MAP_SHARED``, 0 for private
  ``backing``       uint8   a :class:`Backing` code: file, anon, stack, heap, special
  ``file``          uint32  index into :attr:`Mappings.files`, :data:`NO_FILE` if none
  ``file_offset``   uint64  byte offset in the file of ``start`` (0 without a file)
  ``from_record``   uint64  first record the mapping exists for
  ``until_record``  uint64  first record it no longer exists for (:data:`FOREVER`: the end)
  ================  ======  ==============================================================

* **files**: per mapped file, its identity (path, device, inode), its size and which of its
  pages were in the page cache (:class:`FileInfo`; ``resident`` is a bool array, one entry
  per page of the file, or ``None`` when not measured).  ``residency_when`` says when the
  snapshot was taken: ``"before_run"`` (before the program started: exact),
  ``"at_open"`` (when the run first opened the file: pages the run read in between count as
  resident) or ``"unknown"``.  ``read_ahead_kb`` is the readahead window of the file's
  device (its backing device's ``read_ahead_kb``, the kernel's ``ra_pages``), ``None`` when
  not measured.  ``folios`` is the large folios its resident pages were in at that moment,
  ``(first_page, n_pages)`` pairs (:func:`vmlab.trace.folios.folio_layout`; ``None`` when
  not measured: it needs root).

* **file reads**: one row per ``read()``-family system call of the run on a regular file
  (and, at record 0, the kernel's own reads at ``exec`` of the program's and its
  interpreter's headers, program headers and notes), the file range it read and the record
  number it happened at (:data:`FILE_READ_DTYPE`,
  :data:`READ_CALLS`).  These put pages in the page cache without a fault; a user-space
  access trace does not show them.  ``Mappings.reads`` (empty when the recording did not
  track them).

  ================  ======  ==============================================================
  ``asid``          uint16  address space
  ``file``          uint32  index into :attr:`Mappings.files`
  ``offset``        uint64  first byte read
  ``nbytes``        uint64  bytes read (the call's result, > 0)
  ``at_record``     uint64  the records before the call returned (the call happened between
                            record ``at_record - 1`` and record ``at_record``)
  ``call``          uint8   a :data:`READ_CALLS` index: which call read it
  ================  ======  ==============================================================

* **moves**: one row per ``mremap`` that moved pages to another address (the kernel's
  ``move_page_tables``: the pages keep their frames and take no new fault at the new
  address), in call order (:data:`MOVE_DTYPE`).  ``Mappings.moves`` (empty when the recording
  did not track them, or nothing moved).  A move's record is the one at which its old rows
  end and its new row starts (a mapping that grows or shrinks in place is no move):

  ================  ======  ==============================================================
  ``asid``          uint16  address space
  ``start``         uint64  first byte moved (the old address, page-aligned)
  ``end``           uint64  one past the last byte moved: ``start + min(old_len, new_len)``
  ``to``            uint64  where ``start`` went (the new address, page-aligned)
  ``at_record``     uint64  the record at which the move happens (the call happened between
                            record ``at_record - 1`` and record ``at_record``)
  ================  ======  ==============================================================

* **placements**: one row per successful ``mmap`` that the kernel would have placed at an
  address of its own choosing, congruent to the file offset modulo 2 MiB (``PMD_SIZE``), and
  the recorder saw elsewhere (valgrind picks every mapping's address itself): a file mapping
  without ``MAP_FIXED``/``MAP_FIXED_NOREPLACE`` that holds a whole 2 MiB-aligned chunk of its
  file (``thp_get_unmapped_area()``), in call order (:data:`PLACEMENT_DTYPE`).
  ``Mappings.placements`` (empty when the recording did not track them, or saw the kernel's
  own addresses). A placement's record is the one at which the rows of its mapping start:

  ================  ======  ==============================================================
  ``asid``          uint16  address space
  ``start``         uint64  first byte of the mapping as recorded (page-aligned)
  ``end``           uint64  one past its last byte as recorded (page-aligned)
  ``at_record``     uint64  the record at which its rows start (the call happened between
                            record ``at_record - 1`` and record ``at_record``)
  ``file_offset``   uint64  byte offset in the file of ``start``
  ================  ======  ==============================================================

* **zaps**: one row per successful ``madvise`` with ``MADV_DONTNEED`` (4) or
  ``MADV_DONTNEED_LOCKED`` (24) on a non-empty range, in call order (:data:`ZAP_DTYPE`): the
  kernel frees the range's anonymous pages and removes its page table entries, the mapping
  stays, and the next access faults again (a zero-filled page, or for a private file mapping
  the file's page again).  ``Mappings.zaps`` (empty when the recording did not track them,
  or nothing was zapped):

  ================  ======  ==============================================================
  ``asid``          uint16  address space
  ``start``         uint64  first byte zapped (page-aligned)
  ``end``           uint64  one past the last byte zapped: ``start + len`` rounded up to
                            pages, as the kernel does
  ``at_record``     uint64  the record at which the call had returned (the call happened
                            between record ``at_record - 1`` and record ``at_record``)
  ``advice``        uint8   the ``madvise`` advice: 4 or 24 (:data:`ZAP_ADVICE`)
  ================  ======  ==============================================================

The residency snapshot uses ``mincore(2)`` on a read-only shared mapping of the file (ctypes):
mapping a file and asking ``mincore`` reads none of its pages, so the snapshot does not
change what it measures.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import enum
import mmap
import os
from dataclasses import dataclass

import numpy as np

from ..errors import TraceFormatError
from .model import MAX_ASIDS


class Backing(enum.IntEnum):
    """What a mapping's pages are backed by (``/proc/PID/maps`` names in brackets)."""

    ANON = 0      # anonymous private or shared memory
    FILE = 1      # a file's pages (private: copy-on-write on a store)
    STACK = 2     # the main thread's stack ([stack])
    HEAP = 3      # the brk heap ([heap])
    SPECIAL = 4   # [vdso], [vvar], [vsyscall]: the kernel's own pages, never faulted in


PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
NO_FILE = 0xFFFFFFFF
FOREVER = 0xFFFFFFFFFFFFFFFF

MAPPING_DTYPE = np.dtype([
    ("asid", "<u2"), ("start", "<u8"), ("end", "<u8"), ("prot", "u1"), ("shared", "u1"),
    ("backing", "u1"), ("file", "<u4"), ("file_offset", "<u8"), ("from_record", "<u8"),
    ("until_record", "<u8")])

RESIDENCY_WHEN = ("before_run", "at_open", "unknown")

#: The largest file a recording may name (1 TiB): the replay keeps per-page tables of each
#: file its calls read (the page cache's state, readahead marks, the record each page came
#: in), 10 bytes a page, 2.5 GB at this size.
MAX_FILE_BYTES = 1 << 40

FILE_READ_DTYPE = np.dtype([
    ("asid", "<u2"), ("file", "<u4"), ("offset", "<u8"), ("nbytes", "<u8"),
    ("at_record", "<u8"), ("call", "u1")])
#: The calls of the file reads table, by code: the kernel's ``exec`` reads the first
#: ``BINPRM_BUF_SIZE`` (256) bytes of the program and of its ELF interpreter before any
#: instruction runs; the others are the system calls of that name (``preadv`` and
#: ``preadv2`` with an offset, ``readv``, and ``sendfile``'s reading side, at the file
#: position).
READ_CALLS = ("exec", "read", "pread64", "readv", "preadv", "preadv2", "sendfile")

MOVE_DTYPE = np.dtype([
    ("asid", "<u2"), ("start", "<u8"), ("end", "<u8"), ("to", "<u8"), ("at_record", "<u8")])
#: The alignment of a move's addresses: the page size of every recorder (``vmlab record``).
MOVE_ALIGN = 4096

PLACEMENT_DTYPE = np.dtype([
    ("asid", "<u2"), ("start", "<u8"), ("end", "<u8"), ("at_record", "<u8"),
    ("file_offset", "<u8")])
#: The alignment the kernel gives a large file mapping it places itself (``PMD_SIZE`` on
#: x86-64, ``thp_get_unmapped_area()``): its address and file offset agree modulo it.
PLACEMENT_ALIGN = 2 << 20
#: ``mmap`` flags that make the kernel take the caller's address (``uapi/asm-generic/mman``).
MAP_FIXED, MAP_FIXED_NOREPLACE = 0x10, 0x100000

ZAP_DTYPE = np.dtype([
    ("asid", "<u2"), ("start", "<u8"), ("end", "<u8"), ("at_record", "<u8"),
    ("advice", "<u1")])
#: ``madvise`` advice that zaps a range (``uapi/asm-generic/mman-common``): ``MADV_DONTNEED``
#: and ``MADV_DONTNEED_LOCKED``.
MADV_DONTNEED, MADV_DONTNEED_LOCKED = 4, 24
ZAP_ADVICE = (MADV_DONTNEED, MADV_DONTNEED_LOCKED)


def kernel_aligns(length, flags, offset):
    """Whether the kernel places a file mapping of ``length`` bytes at file byte ``offset``
    (``mmap`` ``flags``) at an address congruent to ``offset`` modulo
    :data:`PLACEMENT_ALIGN`: the address is its to choose (no ``MAP_FIXED``, no
    ``MAP_FIXED_NOREPLACE``) and the mapping holds a whole aligned chunk of the file
    (``__thp_get_unmapped_area()`` gives up otherwise). ``length`` is rounded up to pages
    first, as ``do_mmap()`` does."""
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) or length <= 0 or offset < 0:
        return False
    end = offset + -(-length // MOVE_ALIGN) * MOVE_ALIGN
    aligned = -(-offset // PLACEMENT_ALIGN) * PLACEMENT_ALIGN
    return end - aligned >= PLACEMENT_ALIGN


def _range_frame(rows):
    """A table of address ranges (moves, placements, zaps) as a DataFrame: its columns and
    each row's ``pages``."""
    import pandas as pd

    df = pd.DataFrame({name: rows[name] for name in rows.dtype.names})
    df["pages"] = (rows["end"] - rows["start"]) // MOVE_ALIGN
    return df


def _calls_in_order(rows, name, plural, other):
    """Check a table of calls (``asid, start, end, at_record, ...`` rows): one-dimensional,
    each range by :func:`_check_range` with ``other(row)``, ``at_record`` never decreasing;
    yields ``(where, row)`` for the caller's own checks."""
    if rows.ndim != 1:
        raise TraceFormatError(f"{plural} table must be one-dimensional")
    last = 0
    for i, row in enumerate(rows.tolist()):
        where = f"{name} {i}"
        _check_range(where, row[1], row[2], other(row))
        if row[3] < last:
            raise TraceFormatError(f"{where}: at_record {row[3]} is before the previous "
                                   f"{name}'s {last} ({plural} are in call order)")
        last = row[3]
        yield where, row


def _check_range(where, start, end, other=None):
    """A table row's ``[start, end)``: not empty, and it and ``other`` (``(name, value)``,
    if given) multiples of :data:`MOVE_ALIGN`; else one line naming ``where``."""
    if end <= start:
        raise TraceFormatError(f"{where}: end {end:#x} is not above start {start:#x}")
    for name, v in (("start", start), ("end", end)) + ((other,) if other else ()):
        if v % MOVE_ALIGN:
            raise TraceFormatError(f"{where}: {name} {v:#x} is not a multiple of {MOVE_ALIGN}")


@dataclass(frozen=True, eq=False)
class FileInfo:
    """A mapped file: identity, size and page-cache residency when the run started."""

    path: str
    dev: int
    inode: int
    size_bytes: int
    resident: np.ndarray | None = None
    residency_when: str = "unknown"
    read_ahead_kb: int | None = None
    folios: tuple | None = None

    def __post_init__(self):
        if not 0 <= self.size_bytes < MAX_FILE_BYTES:
            raise TraceFormatError(f"file {self.path!r}: size_bytes {self.size_bytes}; expected "
                                   f"a size below {MAX_FILE_BYTES:,} bytes (1 TiB: the replay "
                                   "keeps tables of 10 bytes per page of each file it reads)")
        if self.residency_when not in RESIDENCY_WHEN:
            raise TraceFormatError(f"residency_when must be one of {RESIDENCY_WHEN}, "
                                   f"got {self.residency_when!r}")
        if self.resident is not None:
            r = np.asarray(self.resident, dtype=bool)
            object.__setattr__(self, "resident", r)
        if self.folios is not None:
            object.__setattr__(self, "folios", _check_folios(self.path, self.folios))

    @property
    def resident_pages(self):
        """Number of pages of the file that were resident (None when not measured)."""
        return None if self.resident is None else int(self.resident.sum())

    def __eq__(self, other):
        if not isinstance(other, FileInfo):
            return NotImplemented
        same_res = ((self.resident is None and other.resident is None)
                    or (self.resident is not None and other.resident is not None
                        and np.array_equal(self.resident, other.resident)))
        return (self.path, self.dev, self.inode, self.size_bytes, self.residency_when,
                self.read_ahead_kb, self.folios) == (
            other.path, other.dev, other.inode, other.size_bytes, other.residency_when,
            other.read_ahead_kb, other.folios) and same_res


#: The largest folio of the page cache (``MAX_PAGECACHE_ORDER`` 9 on x86-64), as
#: ``File.folios`` takes it.
MAX_FOLIO_PAGES = 512


def _check_folios(path, folios):
    """``folios`` as a sorted tuple of ``(first_page, n_pages)`` int pairs, each a power of
    two in [2, 512] aligned to its size, none overlapping; :class:`TraceFormatError` (one
    line) otherwise."""
    what = f"file {path!r}: folios"
    try:
        pairs = sorted((int(a), int(n)) for a, n in folios)
    except (TypeError, ValueError, OverflowError):
        raise TraceFormatError(f"{what} must be (first_page, n_pages) integer pairs") from None
    for first, n in pairs:
        if not 2 <= n <= MAX_FOLIO_PAGES or n & (n - 1) or first < 0 or first % n:
            raise TraceFormatError(f"{what}: ({first}, {n}) is not a folio (n_pages a power "
                                   f"of two in [2, {MAX_FOLIO_PAGES}], first_page a multiple "
                                   "of it)")
    for (a, n), (b, _) in zip(pairs, pairs[1:]):
        if a + n > b:
            raise TraceFormatError(f"{what}: the folio at page {a} overlaps the one at {b}")
    return tuple(pairs)


def _as_table(rows, dtype, label):
    """``rows`` as a structured array of ``dtype`` (one line when its fields do not fit)."""
    rows = np.asarray(rows)
    if rows.dtype == dtype:
        return rows
    try:
        return rows.astype(dtype)
    except (TypeError, ValueError):
        raise TraceFormatError(f"{label} must have the fields {dtype.names}") from None


class Mappings:
    """The mappings table of a run and its files (see the module docstring).

    Parameters
    ----------
    table : numpy structured array of :data:`MAPPING_DTYPE` (or anything convertible)
    files : sequence of :class:`FileInfo`
    source : str
        How the mappings were obtained (e.g. ``"valgrind -d segment table + --trace-syscalls"``).
    reads : numpy structured array of :data:`FILE_READ_DTYPE`, optional
        The run's file reads (empty: not recorded).
    moves : numpy structured array of :data:`MOVE_DTYPE`, optional
        The run's mappings that moved (``mremap``), in call order (empty: none, or not
        recorded).
    placements : numpy structured array of :data:`PLACEMENT_DTYPE`, optional
        The run's ``mmap`` calls the kernel would have placed 2 MiB-aligned to their file
        offset, in call order (empty: none, or not recorded).
    zaps : numpy structured array of :data:`ZAP_DTYPE`, optional
        The run's ``madvise(MADV_DONTNEED)`` calls (and ``MADV_DONTNEED_LOCKED``), in call
        order (empty: none, or not recorded).
    """

    __slots__ = ("table", "files", "source", "reads", "moves", "placements", "zaps")

    def __init__(self, table, files=(), source="", reads=None, moves=None, placements=None,
                 zaps=None):
        self.table = _as_table(table, MAPPING_DTYPE, "mappings table")
        self.files = tuple(files)
        self.source = str(source)
        self.reads = _as_table(np.zeros(0, FILE_READ_DTYPE) if reads is None else reads,
                               FILE_READ_DTYPE, "file reads table")
        self.moves = _as_table(np.zeros(0, MOVE_DTYPE) if moves is None else moves,
                               MOVE_DTYPE, "moves table")
        self.placements = _as_table(
            np.zeros(0, PLACEMENT_DTYPE) if placements is None else placements,
            PLACEMENT_DTYPE, "placements table")
        self.zaps = _as_table(np.zeros(0, ZAP_DTYPE) if zaps is None else zaps,
                              ZAP_DTYPE, "zaps table")
        self.check()

    def check(self):
        """Raise :class:`TraceFormatError` naming the first inconsistent row."""
        t = self.table
        if t.ndim != 1:
            raise TraceFormatError("mappings table must be one-dimensional")
        bad = np.flatnonzero(t["end"] <= t["start"])
        if len(bad):
            i = int(bad[0])
            raise TraceFormatError(f"mapping {i}: end {int(t['end'][i]):#x} is not above start "
                                   f"{int(t['start'][i]):#x}")
        bad = np.flatnonzero(t["asid"] >= MAX_ASIDS)
        if len(bad):
            raise TraceFormatError(f"mapping {int(bad[0])}: address space {int(t['asid'][bad[0]])}"
                                   f"; expected an address-space id below {MAX_ASIDS} (the "
                                   "records' limit)")
        bad = np.flatnonzero(t["backing"] > max(Backing))
        if len(bad):
            raise TraceFormatError(f"mapping {int(bad[0])}: unknown backing code "
                                   f"{int(t['backing'][bad[0]])}")
        has_file = t["file"] != NO_FILE
        bad = np.flatnonzero(has_file & (t["file"] >= len(self.files)))
        if len(bad):
            raise TraceFormatError(f"mapping {int(bad[0])}: file index {int(t['file'][bad[0]])} "
                                   f"but only {len(self.files)} file(s)")
        bad = np.flatnonzero(t["until_record"] < t["from_record"])
        if len(bad):
            raise TraceFormatError(f"mapping {int(bad[0])}: until_record before from_record")
        r = self.reads
        if r.ndim != 1:
            raise TraceFormatError("file reads table must be one-dimensional")
        bad = np.flatnonzero(r["file"] >= len(self.files))
        if len(bad):
            raise TraceFormatError(f"file read {int(bad[0])}: file index {int(r['file'][bad[0]])} "
                                   f"but only {len(self.files)} file(s)")
        bad = np.flatnonzero((r["nbytes"] == 0) | (r["call"] >= len(READ_CALLS)))
        if len(bad):
            i = int(bad[0])
            raise TraceFormatError(f"file read {i}: " + (
                "reads 0 bytes" if r["nbytes"][i] == 0 else
                f"call code {int(r['call'][i])} is not one of 0 to {len(READ_CALLS) - 1}"))
        self._check_moves()
        self._check_placements()
        self._check_zaps()

    def _check_moves(self):
        """Each move: a non-empty aligned source range, a destination inside the address
        space that does not overlap it (``mremap`` refuses that), at a record where a
        mapping row of its address space starts or ends (the move's old rows end and its
        new row starts at that record)."""
        mv = self.moves
        if mv.ndim != 1:
            raise TraceFormatError("moves table must be one-dimensional")
        t = self.table
        changes = {}
        for i, (asid, start, end, to, at) in enumerate(mv.tolist()):
            where = f"move {i}"
            _check_range(where, start, end, ("to", to))
            dest_end = to + end - start
            if dest_end > 2**64:
                raise TraceFormatError(f"{where}: the destination [{to:#x}, {dest_end:#x}) "
                                       "lies past the end of the address space")
            if to < end and start < dest_end:
                raise TraceFormatError(f"{where}: the destination [{to:#x}, {dest_end:#x}) "
                                       f"overlaps the source [{start:#x}, {end:#x})")
            if asid not in changes:
                rows = t[t["asid"] == asid]
                changes[asid] = set(rows["from_record"].tolist()) | set(
                    rows["until_record"][rows["until_record"] != FOREVER].tolist())
            if at not in changes[asid]:
                raise TraceFormatError(f"{where}: at_record {at} is not a record at which a "
                                       f"mapping row of address space {asid} starts or ends")

    def _check_placements(self):
        """Each placement: a non-empty page-aligned range (its file offset page-aligned
        too, as ``mmap`` needs it), in call order (``at_record`` never decreasing)."""
        for _where, _row in _calls_in_order(self.placements, "placement", "placements",
                                            lambda r: ("file_offset", r[4])):
            pass

    def _check_zaps(self):
        """Each zap: a non-empty page-aligned range, in call order (``at_record`` never
        decreasing), its advice one of :data:`ZAP_ADVICE`."""
        for where, row in _calls_in_order(self.zaps, "zap", "zaps", lambda r: None):
            if row[4] not in ZAP_ADVICE:
                raise TraceFormatError(f"{where}: advice {row[4]} is not one of "
                                       f"{', '.join(map(str, ZAP_ADVICE))} (MADV_DONTNEED, "
                                       "MADV_DONTNEED_LOCKED)")

    def __len__(self):
        return len(self.table)

    def __eq__(self, other):
        if not isinstance(other, Mappings):
            return NotImplemented
        return (np.array_equal(self.table, other.table) and self.files == other.files
                and self.source == other.source and np.array_equal(self.reads, other.reads)
                and np.array_equal(self.moves, other.moves)
                and np.array_equal(self.placements, other.placements)
                and np.array_equal(self.zaps, other.zaps))

    def __repr__(self):
        return (f"<Mappings {len(self.table)} rows, {len(self.files)} files, "
                f"{len(self.reads)} file reads, {len(self.moves)} moves, "
                f"{len(self.placements)} placements, {len(self.zaps)} zaps, "
                f"source={self.source!r}>")

    def at(self, record):
        """The rows valid for record number ``record`` (the address space at that moment)."""
        t = self.table
        return t[(t["from_record"] <= record) & (record < t["until_record"])]

    def window(self, lo, hi):
        """The mappings of records ``[lo, hi)`` renumbered from 0: rows that exist in the
        window, with ``from_record``/``until_record`` clipped to it; the file reads up to its
        end; the moves strictly inside it (``lo < at_record < hi``); the placements made
        before its end (``at_record < hi``), those before it at its first record; the zaps
        made in it (``lo <= at_record < hi``)."""
        t = self.table
        keep = (t["from_record"] < max(hi, lo + 1)) & (t["until_record"] > lo)
        out = t[keep].copy()
        out["from_record"] = np.maximum(out["from_record"], lo) - lo
        ends = out["until_record"]
        out["until_record"] = np.where(ends >= hi, FOREVER, ends - lo)
        # reads before the window happened before its first record; after it, not at all
        r = self.reads[self.reads["at_record"] <= max(hi, lo)].copy()
        r["at_record"] = np.maximum(r["at_record"], lo) - lo
        # a move at the window's first record or before it moved pages the window never
        # saw mapped there; one at its end or after it happens after the window
        mv = self.moves[(self.moves["at_record"] > lo) & (self.moves["at_record"] < hi)].copy()
        mv["at_record"] -= np.uint64(lo)
        # a placement's rows start at its record: one made before the window (or at its
        # first record) placed mappings the window may start with, so it moves to record 0
        # (the window's rows alive there start at 0 too; a later placement over the same
        # range stays after it, in call order); one at its end or after it, none
        pl = self.placements
        pl = pl[pl["at_record"] < hi].copy()
        pl["at_record"] = np.maximum(pl["at_record"], lo) - np.uint64(lo)
        # a zap before the window acted on pages the window starts without (it knows
        # nothing mapped before it); one at its end or after it happens after the window
        z = self.zaps
        z = z[(z["at_record"] >= lo) & (z["at_record"] < hi)].copy()
        z["at_record"] -= np.uint64(lo)
        return Mappings(out, self.files, self.source, r, mv, pl, z)

    def frame(self):
        """The table as a pandas DataFrame with readable columns (``backing`` and ``perms``
        as text, ``path``, ``dev``, ``inode`` of the file joined in)."""
        import pandas as pd

        t = self.table
        df = pd.DataFrame({name: t[name] for name in MAPPING_DTYPE.names})
        df["backing"] = [Backing(b).name.lower() for b in t["backing"]]
        df["perms"] = [perm_string(p, s) for p, s in zip(t["prot"], t["shared"])]
        paths = [f.path for f in self.files]
        df["path"] = [paths[f] if f != NO_FILE else "" for f in t["file"]]
        df["dev"] = [self.files[f].dev if f != NO_FILE else 0 for f in t["file"]]
        df["inode"] = [self.files[f].inode if f != NO_FILE else 0 for f in t["file"]]
        df["pages"] = (t["end"] - t["start"]) // 4096
        return df

    def moves_frame(self):
        """One row per move: the columns of :data:`MOVE_DTYPE` and its ``pages``."""
        return _range_frame(self.moves)

    def placements_frame(self):
        """One row per placement: the columns of :data:`PLACEMENT_DTYPE` and its ``pages``."""
        return _range_frame(self.placements)

    def zaps_frame(self):
        """One row per zap: the columns of :data:`ZAP_DTYPE` and its ``pages``."""
        return _range_frame(self.zaps)

    def files_frame(self):
        """One row per file: path, dev, inode, size, pages, resident pages, when measured."""
        import pandas as pd

        return pd.DataFrame([{
            "path": f.path, "dev": f.dev, "inode": f.inode, "size_bytes": f.size_bytes,
            "pages": None if f.resident is None else len(f.resident),
            "resident_pages": f.resident_pages, "residency_when": f.residency_when}
            for f in self.files])


def perm_string(prot, shared):
    """``/proc/PID/maps`` style permissions: ``r-xp``, ``rw-s``..."""
    prot = int(prot)
    return ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") + \
        ("x" if prot & PROT_EXEC else "-") + ("s" if shared else "p")


# -- page-cache residency ----------------------------------------------------------------
_libc = None


def _libc_fns():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                             ctypes.c_int, ctypes.c_long]
        lib.mmap.restype = ctypes.c_void_p
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc = lib
    return _libc


@contextlib.contextmanager
def mapped_file(path, page_size=None):
    """``(addr, size, n_pages)`` of a read-only shared mapping of the file at ``path``
    (libc ``mmap`` through ctypes: its address is needed for ``mincore`` and
    ``/proc/self/pagemap``), unmapped on exit; ``addr`` is ``None`` for an empty file.
    Mapping reads no page.  Raises ``OSError`` when the file cannot be opened or mapped."""
    page_size = page_size or mmap.PAGESIZE
    lib = _libc_fns()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        n_pages = -(-size // page_size)
        addr = None
        if n_pages:
            addr = lib.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                err = ctypes.get_errno()
                raise OSError(err, f"mmap: {os.strerror(err)}", str(path))
    finally:
        os.close(fd)
    try:
        yield addr, size, n_pages
    finally:
        if addr is not None:
            lib.munmap(addr, size)


def mapped_residency(addr, size, n_pages, path="", page_size=None):
    """``mincore(2)`` of the mapping at ``addr`` (:func:`mapped_file`): a bool array, one
    entry per page of ``page_size`` (``n_pages`` of them).  ``mincore`` writes one byte per
    *system* page, so it gets a vector of that length; a larger page is resident when all
    its system pages are (a smaller one when its system page is)."""
    sys_page = mmap.PAGESIZE
    page_size = page_size or sys_page
    vec = np.zeros(-(-size // sys_page), np.uint8)
    if len(vec) and _libc_fns().mincore(addr, size, vec.ctypes.data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mincore: {os.strerror(err)}", str(path))
    res = (vec & 1).astype(bool)
    if page_size > sys_page:
        k = page_size // sys_page
        res = np.pad(res, (0, n_pages * k - len(res)), constant_values=True)
        res = res.reshape(n_pages, k).all(axis=1)
    elif page_size < sys_page:
        res = np.repeat(res, sys_page // page_size)[:n_pages]
    return res


def residency(path, page_size=None):
    """Which pages of the file at ``path`` are in the page cache now: a bool array, one entry
    per page (``ceil(size / page_size)`` entries).

    Maps the file read-only and shared (libc ``mmap`` through ctypes) and asks
    ``mincore(2)``; no page is read.  Raises ``OSError`` when the file cannot be opened or
    mapped.
    """
    with mapped_file(path, page_size) as (addr, size, n_pages):
        return mapped_residency(addr, size, n_pages, path, page_size)


def read_ahead_kb(dev):
    """The readahead window (KiB) of the device with number ``dev`` (``st_dev``): its backing
    device's ``/sys/class/bdi/MAJ:MIN/read_ahead_kb``, or for a partition its disk's
    ``queue/read_ahead_kb``; ``None`` when neither can be read (not Linux, no sysfs)."""
    mm = f"{os.major(dev)}:{os.minor(dev)}"
    for p in (f"/sys/class/bdi/{mm}/read_ahead_kb",
              f"/sys/dev/block/{mm}/queue/read_ahead_kb",
              f"/sys/dev/block/{mm}/../queue/read_ahead_kb"):
        try:
            with open(p) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            continue
    return None


def file_info(path, when, page_size=None):
    """A :class:`FileInfo` for ``path`` with its residency and its large folios measured now
    (``when`` says what "now" is: ``before_run`` or ``at_open``).  A file that cannot be
    read gets its identity (if it can be stat-ed) and ``resident=None``; ``folios`` is
    ``None`` where :func:`vmlab.trace.folios.folio_layout` cannot measure (not root) or the
    pages are not the system's."""
    from .folios import folio_layout

    try:
        st = os.stat(path)
    except OSError:
        return FileInfo(str(path), 0, 0, 0, None, "unknown")
    try:
        res = residency(path, page_size)
    except OSError:
        return FileInfo(str(path), st.st_dev, st.st_ino, st.st_size, None, "unknown",
                        read_ahead_kb(st.st_dev))
    # right after the residency: it reads only the pages found resident, so it changes
    # neither (no I/O, no readahead)
    folios = folio_layout(path, res) if (page_size or mmap.PAGESIZE) == mmap.PAGESIZE else None
    return FileInfo(str(path), st.st_dev, st.st_ino, st.st_size, res, when,
                    read_ahead_kb(st.st_dev), folios)
