"""vmlab's native trace format (``.vmt``): memory-mapped columns behind a JSON header.

Layout of a file::

    0   8 bytes   magic  b"VMLTRACE"
    8   uint32    format version (little endian)
    12  uint32    length H of the JSON header in bytes
    16  H bytes   JSON header (UTF-8)
    ... padding to a multiple of 4096
    column data, each column little-endian, starting on a 4096-byte boundary

The JSON header holds ``n_records``, ``page_size``, ``source``, ``notes``, ``n_threads`` and a
list ``columns`` of ``{"name", "dtype", "offset", "nbytes", "crc32"}``.  Opening checks the
header against its schema (:func:`check_header`: types, ranges, every column after the header,
inside the file, aligned, not overlapping another) and maps one ``np.memmap`` per column.  By
default it then reads every column once (:func:`verify_columns`: CRC-32s, then every record
against the limits every reader applies, :func:`vmlab.trace.model.check_columns`: op codes,
sizes, thread and address-space ids, gaps and each thread's total of gaps), at a few percent of the cost of replaying the file; ``verify=False`` reads no
record, for milliseconds at any size.

Version 2 (written only for a trace that carries mappings, so that a trace without them stays
readable by older vmlab) adds two optional header fields, after the columns' data, each blob on
a 4096-byte boundary with its CRC-32 (see :mod:`vmlab.trace.mappings`):

* ``mappings``: ``{"n_rows", "dtype" (the numpy descr of MAPPING_DTYPE), "offset", "nbytes",
  "crc32", "source"}``: the mappings table, little-endian structured rows;
* ``files``: a list of ``{"path", "dev", "inode", "size_bytes", "residency_when", "n_pages",
  "resident"}``, ``resident`` being ``null`` (not measured) or ``{"offset", "nbytes",
  "crc32"}`` of a bitmap (``numpy.packbits``, little bit order: page ``i`` is bit ``i % 8`` of
  byte ``i // 8``).

Version 3 (written only for a trace whose mappings carry file reads, so that a recording
without them stays readable by the vmlab that reads version 2) adds ``file_reads``:
``{"n_rows", "dtype" (the numpy descr of FILE_READ_DTYPE), "offset", "nbytes", "crc32"}``,
the ``read()``-family calls of the run (:mod:`vmlab.trace.mappings`), and each ``files``
entry may carry ``read_ahead_kb`` (its device's readahead window; absent or ``null``: not
measured).

Any version with ``files`` (no version of its own: a vmlab that does not know the field
ignores it) lets a ``files`` entry carry ``folios``: ``{"offset", "nbytes", "crc32",
"n_rows"}`` of ``n_rows`` little-endian ``uint64`` pairs ``(first_page, n_pages)``, the
file's large folios when it was measured (absent or ``null``: not measured; ``n_rows`` 0:
measured, none).

Version 4 (written only for a trace holding ``LOCK_R`` records, readers of ``mmap_lock``
that are not faults, so that a trace without them stays readable by the vmlab that reads
version 3) changes no field: it allows op code 5 (``LOCK_R``, whose ``size`` is a hold in ns,
0 allowed).  A vmlab that reads versions 1-3 refuses such a file by its version, in one line,
instead of calling its op codes damage; op code 5 in a file of version 1-3 is damage.

Version 5 (written only for a trace with a ``call`` column, so that a trace without one
stays readable by the vmlab that reads version 4) allows the optional column ``call``
(``<u1``): each ``LOCK_W`` record's system call, a :class:`~vmlab.trace.model.Call` code
(0 unknown, 1 mmap, 2 munmap, 3 mprotect, 4 mremap, 5 brk), 0 on every other record.  A
vmlab that reads versions 1-4 refuses such a file by its version; a ``call`` column in a
file of version 1-4 is a header error, and a code over 5, or a nonzero code on a record
that is not a ``LOCK_W``, is damage named by its record.

Version 6 (written only for a trace whose mappings carry moves, so that a recording without
them stays readable by the vmlab that reads version 5) adds ``moves``: ``{"n_rows", "dtype"
(the numpy descr of MOVE_DTYPE), "offset", "nbytes", "crc32"}``, the mappings that
``mremap`` moved, in call order (:mod:`vmlab.trace.mappings`).  A vmlab that reads versions
1-5 refuses such a file by its version; a ``moves`` field in a file of version 1-5 is a
header error.

Version 7 (written only for a trace whose mappings carry placements, so that a recording
without them stays readable by the vmlab that reads version 6) adds ``placements``:
``{"n_rows", "dtype" (the numpy descr of PLACEMENT_DTYPE), "offset", "nbytes", "crc32"}``,
the ``mmap`` calls the kernel would have placed 2 MiB-aligned to their file offset, in call
order (:mod:`vmlab.trace.mappings`).  A vmlab that reads versions 1-6 refuses such a file
by its version; a ``placements`` field in a file of version 1-6 is a header error.

Version 8 (written only for a trace whose mappings carry zaps, so that a recording without
them stays readable by the vmlab that reads version 7) adds ``zaps``: ``{"n_rows", "dtype"
(the numpy descr of ZAP_DTYPE), "offset", "nbytes", "crc32"}``, the ``madvise`` calls that
zapped a range (``MADV_DONTNEED``, ``MADV_DONTNEED_LOCKED``), in call order
(:mod:`vmlab.trace.mappings`).  A vmlab that reads versions 1-7 refuses such a file by its
version; a ``zaps`` field in a file of version 1-7 is a header error.

Version 9 (written only for a trace some access of which carries ``call`` 6, ``KERNEL``,
so that a trace without one stays readable by the vmlab that reads version 8) changes no
field: it allows ``KERNEL`` on an access record (``LOAD``, ``STORE``, ``IFETCH``,
``MODIFY``), an access the kernel made itself inside a system call (``copy_to_user`` into a
``read()`` buffer, the ELF loader's clear at ``execve``), whose fault has no
``FAULT_FLAG_USER``.  A vmlab that reads versions 1-8 refuses such a file by its version;
``KERNEL`` on an access in a file of version 5-8 is damage named by its record, as is
``KERNEL`` on a ``LOCK_W``/``LOCK_R`` or a writer's call on an access in any version.

Version 10 (written only for a trace whose files' entries do not fit in the header, so that
a recording whose files fit stays readable by the vmlab that reads version 9) moves them out
of it: ``files_table`` ``{"offset", "nbytes", "crc32"}`` is a JSON block holding the list
``files`` would hold, and there is no ``files`` field (``git log`` maps each loose object it
reads: 470 files filled the 64 KiB header).  A vmlab that reads versions 1-9 refuses such a
file by its version; a ``files_table`` field in a file of version 1-9 is a header error.

Every version opens; version 1 files have ``trace.mappings = None``, version 2 files have
no file reads, files before version 6 no moves, files before version 7 no placements,
files before version 8 no zaps.  The tables are small: they are read and their CRC-32s
checked on every open.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import weakref
import zlib
from pathlib import Path

import numpy as np

from .._io import publish, stop_signals_held, temp_beside, temp_dir_beside
from ..errors import TraceFormatError
from .model import (ALL_COLUMNS, DEFAULT_DTYPES, GAP_SUM_SAFE, MAX_CALL, MAX_PAGE_SIZE,
                    MAX_WRITER_CALL, MIN_PAGE_SIZE, REQUIRED_COLUMNS, Call, Op, Trace,
                    TraceMeta, check_columns, first_bad_record, first_gap_total_over,
                    gap_total_error, narrow_dtype)

MAGIC = b"VMLTRACE"
FORMAT_VERSION = 1
#: The version of a file whose header carries the optional mappings and files tables.
MAPPINGS_VERSION = 2
#: The version of a file whose mappings also carry the file reads table.
READS_VERSION = 3
#: The version of a file holding LOCK_R records (op code 5).
LOCK_R_VERSION = 4
#: The version of a file with a ``call`` column (each writer's system call).
CALL_VERSION = 5
#: The version of a file whose mappings carry the moves table (``mremap``).
MOVES_VERSION = 6
#: The version of a file whose mappings carry the placements table (large file ``mmap``).
PLACEMENTS_VERSION = 7
#: The version of a file whose mappings carry the zaps table (``madvise(MADV_DONTNEED)``).
ZAPS_VERSION = 8
#: The version of a file some access of which the kernel made (``call`` ``KERNEL``).
KERNEL_VERSION = 9
#: The version of a file whose files table is a block of its own (``files_table``), not a
#: header field: a recording that mapped too many files for the header (``git log`` maps
#: each loose object it reads).
FILES_TABLE_VERSION = 10
SUPPORTED_VERSIONS = (FORMAT_VERSION, MAPPINGS_VERSION, READS_VERSION, LOCK_R_VERSION,
                      CALL_VERSION, MOVES_VERSION, PLACEMENTS_VERSION, ZAPS_VERSION,
                      KERNEL_VERSION, FILES_TABLE_VERSION)
ALIGN = 4096
#: Where the addr column starts: the header (magic, version, JSON) must fit before it.
ADDR_OFFSET = 1 << 16
_CHUNK = 1 << 24  # bytes per checksum / copy step
#: Largest defined op code, and the one op whose records have size 0.
MAX_OP = max(int(op) for op in Op)
#: The largest op code of a file before version 4 (LOCK_R came with it).
MAX_OP_V3 = int(Op.LOCK_W)
LOCK_W = int(Op.LOCK_W)


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


class TraceWriter:
    """Stream records into a native trace file in bounded memory.

    The ``addr`` column (the largest) streams straight into a temporary file beside
    ``path``, after a reserved header area; the other columns go to temporary per-column
    files, and :meth:`close` narrows each to the smallest dtype its values need, appends it,
    writes the header and renames the file to ``path``.  If anything fails (or the ``with``
    block raises), no file appears at ``path``.

    Parameters
    ----------
    path : str or Path
        Destination file.
    meta : TraceMeta, optional
    with_gap : bool
        Whether the trace has a ``gap_ns`` column.
    with_call : bool
        Whether the trace has a ``call`` column (format version 5, 9 once an access carries
        ``KERNEL``; a chunk without it appends zeros: writers of unknown call, the program's
        own accesses).
    mappings : vmlab.trace.mappings.Mappings, optional
        Tables stored with the records (format version 2); may also be set as the attribute
        ``mappings`` any time before :meth:`close`.
    """

    def __init__(self, path, meta=None, with_gap=False, mappings=None, with_call=False):
        self.path = Path(path)
        self.meta = meta or TraceMeta()
        self.mappings = mappings
        self.names = (list(REQUIRED_COLUMNS) + (["gap_ns"] if with_gap else [])
                      + (["call"] if with_call else []))
        self._files = {}
        self._out = self._dir = None
        try:
            with stop_signals_held():   # (each name holds its file before a signal lands)
                self._out = temp_beside(self.path)
                self._dir = temp_dir_beside(self.path)
            for n in self.names:
                self._files[n] = open(self._out if n == "addr" else os.path.join(self._dir, n),
                                      "wb")
            self._files["addr"].seek(ADDR_OFFSET)
        except BaseException:
            self.abort()
            raise
        # a writer dropped without close() or abort() (an exception outside a ``with``
        # block, a forgotten close) leaves nothing behind once collected or at exit
        self._finalizer = weakref.finalize(self, _discard, self._files, self._out, self._dir)
        self._addr_crc = 0
        self._max = {n: 0 for n in self.names}
        # dtype of each temporary column; a column whose values outgrow it (a LOCK_W range
        # of 4 GiB or more in the uint32 size column) is widened, never wrapped
        self._src = {n: np.dtype(DEFAULT_DTYPES[n]) for n in self.names}
        self._tids = set()
        self._kernel = False    # an access the kernel made was written (version 9)
        self._gap_sum = 0.0
        self.n_records = 0
        self._closed = False

    def append(self, **columns):
        """Append a chunk: keyword arrays of equal length, one per column.

        Missing ``tid``/``asid`` default to 0, ``op`` to ``LOAD``, ``size`` to 8.
        """
        if "addr" not in columns:
            raise TraceFormatError("append() needs an 'addr' column")
        n = len(columns["addr"])
        extra = set(columns) - set(self.names)
        if extra:
            raise TraceFormatError(f"this writer has no column(s) {sorted(extra)}")
        ready = {}
        for name in self.names:
            col = columns.get(name)
            if col is None:
                if name == "gap_ns":
                    raise TraceFormatError("this writer was opened with_gap=True; give gap_ns")
                col = np.full(n, 8 if name == "size" else 0, DEFAULT_DTYPES[name])
            col = np.asarray(col)
            if len(col) != n:
                raise TraceFormatError(f"column {name!r} has {len(col)} records, addr has {n}")
            if col.dtype.kind not in "ui":
                raise TraceFormatError(f"column {name!r} must be integers, got {col.dtype}")
            if col.dtype.kind == "i" and n and col.min() < 0:
                raise TraceFormatError(f"column {name!r} has negative values")
            top = np.iinfo(self._src[name]).max
            if n and np.iinfo(col.dtype).max > top and int(col.max()) > top:
                if name != "size":
                    raise TraceFormatError(f"column {name!r} has values over {top}", self.path)
                self._widen(name)       # a LOCK_W range of 4 GiB or more
            ready[name] = np.ascontiguousarray(col.astype(self._src[name], copy=False))
        if n:
            # what open_trace refuses is never written: a record outside the limits
            bad = first_bad_record(ready)
            if bad is not None:
                i = bad.index
                raise TraceFormatError(
                    bad.message().replace(f"record {i}", f"record {self.n_records + i}", 1),
                    self.path)
            if "gap_ns" in ready:
                # (a thread's gaps must total below GAP_LIMIT: followed exactly at close,
                # only when all the gaps together come near it)
                self._gap_sum += float(np.sum(ready["gap_ns"], dtype=np.float64))
        for name in self.names:
            col = ready[name]
            if n:
                lo, hi = int(col.min()), int(col.max())
                self._max[name] = max(self._max[name], hi)
                if name == "call" and hi >= Call.KERNEL and not self._kernel:
                    self._kernel = bool((col == Call.KERNEL).any())
                if name == "tid" and len(self._tids) <= 1 << 16:
                    # most traces have one thread or few: avoid sorting when the chunk is uniform
                    self._tids.update([lo] if lo == hi else np.unique(col).tolist())
            mv = memoryview(col.astype("<" + col.dtype.str[1:], copy=False)).cast("B")
            if name == "addr":
                self._addr_crc = zlib.crc32(mv, self._addr_crc)
            self._files[name].write(mv)
        self.n_records += n

    def close(self):
        """Assemble the final file atomically and return ``path``."""
        if self._closed:
            return self.path
        self._closed = True
        self._finalizer.detach()    # from here close() removes what it does not publish
        try:
            for f in self._files.values():
                f.close()
            self._check_gap_totals()
            layout = []
            offset = ADDR_OFFSET
            for name in ["addr"] + [n for n in self.names if n != "addr"]:
                src = self._src[name]
                dt = src if name in ("addr", "op") else narrow_dtype(self._max[name])
                layout.append((name, src, dt, offset))
                offset = _align(offset + self.n_records * dt.itemsize)
            n_threads = len(self._tids) if len(self._tids) <= 1 << 16 else None
            cols_hdr = [{"name": n, "dtype": "<" + dt.str[1:], "offset": off,
                         "nbytes": self.n_records * dt.itemsize, "crc32": None}
                        for n, _src, dt, off in layout]
            with open(self._out, "r+b") as out:
                out.truncate(offset)
                for col_hdr, (name, src, dt, off) in zip(cols_hdr, layout):
                    if name == "addr":
                        col_hdr["crc32"] = self._addr_crc
                        continue
                    out.seek(off)
                    col_hdr["crc32"] = self._copy_column(name, src, dt, out)
                tables = _write_tables(out, offset, self.mappings)
                hdr = self._header(cols_hdr, n_threads, tables)
                if 16 + len(hdr) > ADDR_OFFSET and self.mappings is not None:
                    # too many files for the header: their table in a block of its own
                    tables = _write_tables(out, offset, self.mappings, files_table=True)
                    hdr = self._header(cols_hdr, n_threads, tables)
                if 16 + len(hdr) > ADDR_OFFSET:
                    raise TraceFormatError(
                        f"trace metadata too long for the header ({len(hdr)} bytes, at most "
                        f"{ADDR_OFFSET - 16}): shorten source or notes", self.path)
                out.seek(0)
                out.write(MAGIC)
                out.write(np.uint32(self._file_version(tables)).tobytes())
                out.write(np.uint32(len(hdr)).tobytes())
                out.write(hdr)
            publish(self._out, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._out)
            raise
        finally:
            # (a stop signal that lands inside the removal would leave the folder half
            # removed: held until it is gone, then raised here)
            with stop_signals_held():
                shutil.rmtree(self._dir, ignore_errors=True)
        return self.path

    def _check_gap_totals(self):
        """Refuse a trace one of whose threads' gaps add up to GAP_LIMIT or more (read back
        from the temporary columns: only when all the gaps together come near it)."""
        if "gap_ns" not in self.names or self._gap_sum < GAP_SUM_SAFE:
            return
        cols = {}
        for name in ("tid", "gap_ns"):
            cols[name] = np.memmap(os.path.join(self._dir, name), mode="r",
                                   dtype="<" + self._src[name].str[1:], shape=(self.n_records,))
        over = first_gap_total_over(cols["tid"], cols["gap_ns"])
        del cols
        if over is not None:
            raise TraceFormatError(gap_total_error(*over), self.path)

    def _widen(self, name):
        """Rewrite the temporary column ``name`` as uint64 (the records written so far)."""
        f = self._files[name]
        f.close()
        path = os.path.join(self._dir, name)
        wide = path + ".u8"
        step = max(1, _CHUNK // self._src[name].itemsize)
        with open(path, "rb") as src, open(wide, "wb") as dst:   # in blocks: bounded memory
            while True:
                block = np.fromfile(src, dtype="<" + self._src[name].str[1:], count=step)
                if not len(block):
                    break
                block.astype("<u8").tofile(dst)
        os.replace(wide, path)
        self._files[name] = open(path, "ab")
        self._src[name] = np.dtype(np.uint64)

    def _file_version(self, tables):
        """The oldest version that holds ``tables`` and the records written."""
        v = _version(tables)
        if self._kernel:
            return max(v, KERNEL_VERSION)
        if "call" in self.names:
            return max(v, CALL_VERSION)
        return max(v, LOCK_R_VERSION) if self.n_records and self._max["op"] > MAX_OP_V3 else v

    def _header(self, cols_hdr, n_threads, tables):
        return json.dumps({
            "format": "vmlab-trace", "version": self._file_version(tables),
            "n_records": self.n_records,
            "page_size": int(self.meta.page_size), "source": self.meta.source,
            "notes": self.meta.notes, "n_threads": n_threads, "columns": cols_hdr, **tables,
        }, indent=1).encode()

    def _copy_column(self, name, src, dt, out):
        crc = 0
        step = max(1, _CHUNK // src.itemsize)
        path = os.path.join(self._dir, name)
        if self.n_records == 0:
            return crc
        # read the temporary column in fixed blocks (no mapping: resident memory stays bounded
        # whatever the trace length)
        buf = np.empty(step, dtype="<" + src.str[1:])
        with open(path, "rb", buffering=0) as f:
            left = self.n_records
            while left:
                k = min(step, left)
                view = memoryview(buf[:k]).cast("B")
                got = 0
                while got < len(view):
                    r = f.readinto(view[got:])
                    if not r:
                        raise OSError(f"temporary column {name!r} is short")
                    got += r
                block = buf[:k].astype("<" + dt.str[1:], copy=False)
                mv = memoryview(np.ascontiguousarray(block)).cast("B")
                crc = zlib.crc32(mv, crc)
                out.write(mv)
                left -= k
        return crc

    def abort(self):
        """Discard everything written so far."""
        self._closed = True
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        _discard(self._files, self._out, self._dir)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _discard(files, out, folder):
    """Close a writer's temporary files and remove them (its file and column folder)."""
    with stop_signals_held():   # (all of it removed before a stop signal lands)
        for f in files.values():
            # (a close flushes what is buffered: on a full disk it fails, and the files go
            # all the same)
            with contextlib.suppress(OSError):
                f.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if out is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)


def save_trace(trace, path, chunk_records=1 << 22):
    """Write ``trace`` to ``path`` in the native format (atomically). Returns the path."""
    if not isinstance(trace, Trace):
        raise TraceFormatError(f"save_trace needs a vmlab Trace, got {type(trace).__name__}")
    with TraceWriter(path, trace.meta, with_gap=trace.has_gap, with_call=trace.has_call,
                     mappings=getattr(trace, "mappings", None)) as w:
        n = len(trace)
        for lo in range(0, max(n, 1), chunk_records):
            w.append(**{k: v[lo:lo + chunk_records] for k, v in trace.columns.items()})
    return Path(path)


#: The dtypes a column may have in a file: the widest is the model's (ids and sizes fit in
#: 32 bits, asids in 16), narrower ones are the writer's narrowing.
_COLUMN_DTYPES = {name: tuple(f"<u{k}" for k in (1, 2, 4, 8)
                              if k <= np.dtype(DEFAULT_DTYPES[name]).itemsize)
                  for name in ALL_COLUMNS}
_COLUMN_DTYPES["addr"] = ("<u8",)
_COLUMN_DTYPES["size"] = ("<u1", "<u2", "<u4", "<u8")   # u8: LOCK_W ranges of 4 GiB or more
#: Largest record count a header may state (every count vmlab keeps stays below 2**62).
_MAX_RECORDS = 1 << 62


class HeaderError(TraceFormatError):
    """A native trace's header breaks the schema; ``problems`` holds one line per bad field."""

    def __init__(self, problems, path):
        self.problems = list(problems)
        super().__init__("bad header: " + "; ".join(self.problems), path)


def _int_field(value, what, lo, hi, problems):
    """``value`` if it is an int in ``[lo, hi]`` (not a bool, not a float), else ``None`` with a
    problem noted."""
    if isinstance(value, bool) or not isinstance(value, int):
        got = "null" if value is None else f"{type(value).__name__} {_short(value)}"
        problems.append(f"{what} must be an integer, got {got}")
        return None
    if not lo <= value <= hi:
        want = f"at least {lo}" if hi is None or hi >= 1 << 62 else f"{lo} to {hi}"
        problems.append(f"{what} must be {want}, got {_short(value)}")
        return None
    return value


def _short(value, n=40):
    text = repr(value)
    return text if len(text) <= n else text[:n - 3] + "..."


def check_header(hdr, file_size, header_end):
    """The schema problems of a parsed header (one line per bad field), ``[]`` if none.

    Checks types and ranges of every field vmlab uses, and that each column lies after the
    header, inside the file, with the size its dtype and ``n_records`` give, without
    overlapping another column.
    """
    if not isinstance(hdr, dict):
        return [f"the header must be a JSON object, got {type(hdr).__name__}"]
    problems = []
    if hdr.get("format", "vmlab-trace") != "vmlab-trace":
        problems.append(f"format must be 'vmlab-trace', got {_short(hdr['format'])}")
    if "version" in hdr and (isinstance(hdr["version"], bool)
                             or hdr["version"] not in SUPPORTED_VERSIONS):
        problems.append(f"version must be one of {', '.join(map(str, SUPPORTED_VERSIONS))}, "
                        f"got {_short(hdr['version'])}")
    for key in ("n_records", "page_size", "columns"):
        if key not in hdr:
            problems.append(f"{key!r} is missing")
    n = None
    if "n_records" in hdr:
        n = _int_field(hdr["n_records"], "n_records", 0, _MAX_RECORDS, problems)
    if "page_size" in hdr:
        ps = _int_field(hdr["page_size"], "page_size", MIN_PAGE_SIZE, MAX_PAGE_SIZE, problems)
        if ps is not None and ps & (ps - 1):
            problems.append(f"page_size must be a power of two, got {ps}")
    for key in ("source", "notes"):
        if key in hdr and not isinstance(hdr[key], str):
            problems.append(f"{key} must be a string, got {type(hdr[key]).__name__}")
    if hdr.get("n_threads") is not None:
        _int_field(hdr["n_threads"], "n_threads", 1 if n else 0,
                   min(n, 1 << 32) if n is not None else 1 << 32, problems)
    cols = hdr.get("columns")
    if "columns" in hdr and not isinstance(cols, list):
        problems.append(f"columns must be a list, got {type(cols).__name__}")
        cols = None
    spans = []
    seen = set()
    for k, c in enumerate(cols or ()):
        if not isinstance(c, dict):
            problems.append(f"columns[{k}] must be an object, got {type(c).__name__}")
            continue
        name = c.get("name")
        if not isinstance(name, str) or name not in ALL_COLUMNS:
            problems.append(f"columns[{k}].name must be one of {', '.join(ALL_COLUMNS)}, "
                            f"got {_short(name)}")
            continue
        if name in seen:
            problems.append(f"column {name!r} appears twice")
            continue
        seen.add(name)
        where = f"column {name!r}"
        dtype = None
        names = _COLUMN_DTYPES[name]
        if c.get("dtype") in names or (c.get("dtype") == "|u1" and "<u1" in names):
            dtype = np.dtype(c["dtype"])
        else:
            problems.append(f"{where}: dtype must be one of {', '.join(names)}, "
                            f"got {_short(c.get('dtype'))}")
        for key in ("offset", "nbytes", "crc32"):
            if key not in c:
                problems.append(f"{where}: {key!r} is missing")
        off = nbytes = None
        if "offset" in c:
            off = _int_field(c["offset"], f"{where}: offset (after the {header_end}-byte header)",
                             header_end, 1 << 63, problems)
            if off is not None and off % ALIGN:
                problems.append(f"{where}: offset {off} is not a multiple of {ALIGN}")
                off = None
        if "nbytes" in c:
            nbytes = _int_field(c["nbytes"], f"{where}: nbytes", 0, 1 << 63, problems)
        if "crc32" in c:
            _int_field(c["crc32"], f"{where}: crc32", 0, 0xFFFFFFFF, problems)
        if nbytes is not None and dtype is not None and n is not None \
                and nbytes != n * dtype.itemsize:
            problems.append(f"{where}: {nbytes} bytes do not hold {n} records of {dtype.str}")
            nbytes = None
        if off is not None and nbytes is not None:
            if off + nbytes > file_size:
                problems.append(f"{where}: bytes {off} to {off + nbytes} lie past the end of "
                                f"the file ({file_size} bytes): the file is truncated")
            elif nbytes:
                spans.append((off, off + nbytes, name))
    version = hdr.get("version", FORMAT_VERSION)
    if "call" in seen and isinstance(version, int) and version < CALL_VERSION:
        problems.append(f"column 'call' needs format version {CALL_VERSION}, the file says "
                        f"version {version}")
    for key, need in (("moves", MOVES_VERSION), ("placements", PLACEMENTS_VERSION),
                      ("zaps", ZAPS_VERSION), ("files_table", FILES_TABLE_VERSION)):
        if key in hdr and isinstance(version, int) and version < need:
            problems.append(f"header field '{key}' needs format version {need}, the file "
                            f"says version {version}")
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if cols is not None and missing:
        problems.append(f"column(s) {missing} are missing")
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            problems.append(f"columns {an!r} (bytes {a0}-{a1}) and {bn!r} (bytes {b0}-{b1}) "
                            "overlap")
    return problems


def read_header(path):
    """Parse and check the header of a native trace file; return it as a dict.

    Raises :class:`HeaderError` listing every bad field (see :func:`check_header`).
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise TraceFormatError("is a directory, expected a vmlab trace file", path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            fixed = f.read(16)
            if len(fixed) < 16:
                raise TraceFormatError(
                    f"file is {size} bytes, too short for a vmlab trace header (16 bytes at least)",
                    path)
            if fixed[:8] != MAGIC:
                raise TraceFormatError(
                    f"not a vmlab trace: magic is {fixed[:8]!r}, expected {MAGIC!r} "
                    "(convert other formats with `vmlab trace convert`)", path)
            version = int(np.frombuffer(fixed, "<u4", 1, 8)[0])
            if version not in SUPPORTED_VERSIONS:
                raise TraceFormatError(
                    f"trace format version {version} is not supported; this vmlab reads "
                    f"versions {', '.join(map(str, SUPPORTED_VERSIONS))}", path)
            hlen = int(np.frombuffer(fixed, "<u4", 1, 12)[0])
            if hlen > ADDR_OFFSET - 16:
                raise TraceFormatError(
                    f"header length {hlen} is over the {ADDR_OFFSET - 16} bytes a header may "
                    "take: the file is damaged", path)
            raw = f.read(hlen)
    except FileNotFoundError:
        raise TraceFormatError("no such file", path) from None
    except IsADirectoryError:
        raise TraceFormatError("is a directory, expected a vmlab trace file", path) from None
    except PermissionError:
        raise TraceFormatError("permission denied", path) from None
    if len(raw) < hlen:
        raise TraceFormatError(f"header truncated: expected {hlen} bytes, found {len(raw)}", path)
    try:
        hdr = json.loads(raw)
    except RecursionError:
        raise HeaderError(["the JSON is nested too deeply"], path) from None
    except ValueError as e:
        why = ("an integer of thousands of digits" if "integer string conversion" in str(e)
               else str(e))
        raise TraceFormatError(f"header is not valid JSON ({_short(why, 100)})", path) from None
    problems = check_header(hdr, size, 16 + hlen)
    if problems:
        raise HeaderError(problems, path)
    return hdr


def open_trace(path, verify=True):
    """Open a native trace memory-mapped and read-only, after checking it.

    Parameters
    ----------
    path : str or Path
    verify : bool
        Read every column once (default): recompute its CRC-32 and check every record
        against the limits (:func:`vmlab.trace.model.check_columns`: op codes defined,
        ``LOCK_R`` only from version 4, sizes, ids, gaps, call codes, ``KERNEL`` only from
        version 9), raising
        :class:`TraceFormatError` naming the first damaged column or bad record.  This costs
        a few percent of a replay of the same file (``benchmarks/bench_verify.py``).
        ``verify=False`` checks the header only (types, ranges, column layout) and reads no
        record: for a file just written, or to look at metadata (the engine checks the
        records once before replaying them).
    """
    hdr = read_header(path)
    n = hdr["n_records"]
    cols = {}
    for c in hdr["columns"]:
        if n == 0:
            cols[c["name"]] = np.zeros(0, np.dtype(c["dtype"]))
        else:
            cols[c["name"]] = np.memmap(path, dtype=np.dtype(c["dtype"]), mode="r",
                                        offset=c["offset"], shape=(n,))
    if verify:
        verify_columns(path, hdr, cols)
    meta = TraceMeta(page_size=int(hdr["page_size"]), source=hdr.get("source", ""),
                     notes=hdr.get("notes", ""))
    mappings = read_tables(path, hdr)
    # (verified: within the limits; else the engine checks the columns before a replay)
    return Trace.from_columns(cols, meta, n_threads=hdr.get("n_threads"), mappings=mappings,
                              _checked=verify)


def _crc_part(view, lo, hi):
    crc = 0
    for a in range(lo, hi, _CHUNK):
        crc = zlib.crc32(view[a:min(hi, a + _CHUNK)], crc)
    return crc


def verify_columns(path, hdr, cols):
    """Raise :class:`TraceFormatError` naming the first column whose CRC-32 differs from the
    header's, or the column and first record whose value is outside the limits every reader
    applies (:func:`vmlab.trace.model.check_columns`: op codes, ``LOCK_R`` before version 4,
    sizes, thread and address-space ids, gaps and each thread's total of gaps, call codes,
    ``KERNEL`` before version 9).

    Columns are checksummed in parallel pieces (zlib releases the GIL) combined with
    :func:`crc32_combine`, so the pass runs at memory speed on every core.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(4, os.cpu_count() or 1))
    version = hdr.get("version", FORMAT_VERSION)
    max_op = MAX_OP if version >= LOCK_R_VERSION else MAX_OP_V3
    max_call = MAX_CALL if version >= KERNEL_VERSION else MAX_WRITER_CALL
    jobs = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for c in hdr["columns"]:
            arr = cols[c["name"]]
            view = np.asarray(arr).reshape(-1).view(np.uint8) if len(arr) else np.zeros(0, np.uint8)
            step = max(_CHUNK, -(-len(view) // workers))
            parts = [(lo, min(len(view), lo + step)) for lo in range(0, len(view), step)]
            jobs.append((c, [(hi - lo, pool.submit(_crc_part, view, lo, hi)) for lo, hi in parts]))
        values = pool.submit(_check_values, path, cols, max_op, max_call, version)
        for c, parts in jobs:
            crc = 0
            for nbytes, fut in parts:
                crc = crc32_combine(crc, fut.result(), nbytes)
            if crc != c["crc32"]:
                raise TraceFormatError(
                    f"column {c['name']!r}: checksum mismatch (header says {c['crc32']:#010x}, "
                    f"the data gives {crc:#010x}): the file is damaged", path)
        values.result()   # (after the checksums: a damaged column is named as such first)


def _check_values(path, cols, max_op, max_call, version):
    """The records' values against the limits (:func:`vmlab.trace.model.check_columns`), the
    op and call codes against those of the file's version."""
    if "op" in cols and "size" in cols and len(cols["op"]):
        check_columns({k: np.asarray(v) for k, v in cols.items()}, path, max_op,
                      f" in a file of version {version}", max_call)


# CRC-32 combination (zlib's crc32_combine, which Python's zlib does not expose): the CRC of
# A+B from crc(A), crc(B) and len(B), by applying len(B) zero bytes to crc(A) as a GF(2)
# matrix power (the standard method, Mark Adler's description in zlib's crc32.c).
_CRC_POLY = 0xEDB88320


def _gf2_times(mat, vec):
    s = 0
    k = 0
    while vec:
        if vec & 1:
            s ^= mat[k]
        vec >>= 1
        k += 1
    return s


def _gf2_square(mat):
    return [_gf2_times(mat, mat[k]) for k in range(32)]


def crc32_combine(crc1, crc2, len2):
    """CRC-32 of the concatenation of two byte strings, from their CRCs and the second's
    length (as zlib's ``crc32_combine``)."""
    if len2 <= 0:
        return crc1
    odd = [_CRC_POLY] + [1 << k for k in range(31)]  # operator for one zero bit
    even = _gf2_square(odd)                          # two zero bits
    odd = _gf2_square(even)                          # four zero bits
    while True:
        even = _gf2_square(odd)  # first pass: one zero byte
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


# -- versions 2, 3, 6, 7, 8 and 10: the mappings, files, file reads, moves, placements, zaps --
def _version(tables):
    """The oldest version that holds ``tables`` (the header fields of :func:`_write_tables`)."""
    if "files_table" in tables:
        return FILES_TABLE_VERSION
    if "zaps" in tables:
        return ZAPS_VERSION
    if "placements" in tables:
        return PLACEMENTS_VERSION
    if "moves" in tables:
        return MOVES_VERSION
    if "file_reads" in tables:
        return READS_VERSION
    return MAPPINGS_VERSION if tables else FORMAT_VERSION

def _write_blob(out, offset, data):
    """Write ``data`` (bytes) at ``offset``; return its header entry and the next aligned
    offset."""
    out.seek(offset)
    out.write(data)
    return ({"offset": offset, "nbytes": len(data), "crc32": zlib.crc32(data)},
            _align(offset + len(data)))


def _write_tables(out, offset, mappings, files_table=False):
    """Append the mappings table and the residency bitmaps at ``offset`` (aligned); return
    the header fields that describe them ({} without mappings).  ``files_table``: the files'
    entries as a JSON block of their own (``files_table``, version 10) instead of the header
    field ``files``."""
    if mappings is None:
        return {}
    from .mappings import (FILE_READ_DTYPE, MAPPING_DTYPE, MOVE_DTYPE, PLACEMENT_DTYPE,
                           ZAP_DTYPE)

    table = np.ascontiguousarray(mappings.table.astype(MAPPING_DTYPE.newbyteorder("<")))
    entry, offset = _write_blob(out, offset, table.tobytes())
    fields = {"mappings": {"n_rows": len(table), "dtype": MAPPING_DTYPE.descr, **entry,
                           "source": mappings.source}}
    for key, rows, dtype in (("file_reads", mappings.reads, FILE_READ_DTYPE),
                             ("moves", mappings.moves, MOVE_DTYPE),
                             ("placements", mappings.placements, PLACEMENT_DTYPE),
                             ("zaps", mappings.zaps, ZAP_DTYPE)):
        if len(rows):     # (absent when empty: the file keeps the version it had without)
            rows = np.ascontiguousarray(rows.astype(dtype.newbyteorder("<")))
            entry, offset = _write_blob(out, offset, rows.tobytes())
            fields[key] = {"n_rows": len(rows), "dtype": dtype.descr, **entry}
    files = []
    for f in mappings.files:
        item = {"path": f.path, "dev": int(f.dev), "inode": int(f.inode),
                "size_bytes": int(f.size_bytes), "residency_when": f.residency_when,
                "n_pages": None if f.resident is None else len(f.resident), "resident": None}
        if f.read_ahead_kb is not None:
            item["read_ahead_kb"] = int(f.read_ahead_kb)
        if f.resident is not None:
            bits = np.packbits(f.resident, bitorder="little").tobytes()
            item["resident"], offset = _write_blob(out, offset, bits)
        if f.folios is not None:    # (absent: not measured; a vmlab before it ignores it)
            pairs = np.asarray(f.folios, "<u8").reshape(-1, 2)
            item["folios"], offset = _write_blob(out, offset, pairs.tobytes())
            item["folios"]["n_rows"] = len(pairs)
        files.append(item)
    if files_table:
        fields["files_table"], offset = _write_blob(out, offset, json.dumps(files).encode())
    else:
        fields["files"] = files
    out.truncate(offset)
    return fields


def _read_blob(path, entry, size, what):
    try:
        off, nbytes, crc = int(entry["offset"]), int(entry["nbytes"]), entry.get("crc32")
    except (KeyError, TypeError, ValueError):
        raise TraceFormatError(f"header field {what!r} needs offset, nbytes and crc32",
                               path) from None
    if off < 0 or nbytes < 0 or off + nbytes > size:
        raise TraceFormatError(f"file is truncated: {what} needs bytes up to {off + nbytes}, "
                               f"the file has {size}", path)
    with open(path, "rb") as f:
        f.seek(off)
        data = f.read(nbytes)
    if crc is not None and zlib.crc32(data) != crc:
        raise TraceFormatError(f"checksum mismatch in {what} (the file is corrupt)", path)
    return data


def read_tables(path, hdr):
    """The :class:`~vmlab.trace.mappings.Mappings` of a version-2 file (``None`` when the
    header has none). The tables are small: they are read and checked at once."""
    if "mappings" not in hdr:
        return None
    from .mappings import (FILE_READ_DTYPE, MAPPING_DTYPE, MOVE_DTYPE, PLACEMENT_DTYPE,
                           ZAP_DTYPE, FileInfo, Mappings)

    path = Path(path)
    size = path.stat().st_size
    m = hdr["mappings"]
    listed = hdr.get("files")
    if "files_table" in hdr:    # version 10: the files' entries in a block of their own
        raw = _read_blob(path, hdr["files_table"], size, "files_table")
        try:
            listed = json.loads(raw)
        except ValueError:
            raise TraceFormatError("the files table is not JSON (the file is corrupt)",
                                   path) from None
    if not isinstance(m, dict) or not isinstance(listed, list):
        raise TraceFormatError("header field 'mappings' must be an object and 'files' a list",
                               path)
    table = _read_table(path, m, size, "mappings", "mappings table", MAPPING_DTYPE)
    reads = _read_optional_table(path, hdr, size, "file_reads", "file reads table",
                                 FILE_READ_DTYPE)
    moves = _read_optional_table(path, hdr, size, "moves", "moves table", MOVE_DTYPE)
    placements = _read_optional_table(path, hdr, size, "placements", "placements table",
                                      PLACEMENT_DTYPE)
    zaps = _read_optional_table(path, hdr, size, "zaps", "zaps table", ZAP_DTYPE)
    files = []
    for i, item in enumerate(listed):
        try:
            resident = None
            if item.get("resident") is not None:
                n_pages = int(item["n_pages"])
                bits = _read_blob(path, item["resident"], size, f"files[{i}].resident")
                if len(bits) * 8 < n_pages:
                    raise TraceFormatError(f"files[{i}]: residency bitmap shorter than "
                                           f"{n_pages} pages", path)
                resident = np.unpackbits(np.frombuffer(bits, np.uint8), count=n_pages,
                                         bitorder="little").astype(bool)
            ra = item.get("read_ahead_kb")
            if ra is not None and (isinstance(ra, bool) or not isinstance(ra, int) or ra < 0):
                raise TraceFormatError(f"files[{i}].read_ahead_kb must be a non-negative "
                                       f"integer or null, got {_short(ra)}", path)
            folios = None
            if item.get("folios") is not None:
                n_rows = int(item["folios"]["n_rows"])
                raw = _read_blob(path, item["folios"], size, f"files[{i}].folios")
                if n_rows < 0 or len(raw) != 16 * n_rows:
                    raise TraceFormatError(f"files[{i}].folios: {len(raw)} bytes do not hold "
                                           f"{n_rows} (first_page, n_pages) pairs", path)
                folios = [tuple(r) for r in
                          np.frombuffer(raw, "<u8").reshape(-1, 2).tolist()]
            files.append(FileInfo(str(item["path"]), int(item["dev"]), int(item["inode"]),
                                  int(item["size_bytes"]), resident,
                                  item.get("residency_when", "unknown"), ra, folios))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, TraceFormatError):
                if e.path is None:    # FileInfo's own checks: name the file and the entry
                    raise TraceFormatError(f"files[{i}]: {e.reason}", path) from None
                raise
            raise TraceFormatError(f"header field files[{i}] is malformed ({e})", path) from None
    try:
        return Mappings(table, files, m.get("source", ""), reads, moves, placements, zaps)
    except TraceFormatError as e:
        raise TraceFormatError(e.reason, path) from None


def _read_optional_table(path, hdr, size, key, label, want):
    """The table of the header field ``key`` (``file_reads``: version 3, ``moves``:
    version 6, ``placements``: version 7, ``zaps``: version 8), empty without one."""
    if key not in hdr:
        return np.zeros(0, want)
    r = hdr[key]
    if not isinstance(r, dict):
        raise TraceFormatError(f"header field {key!r} must be an object", path)
    return _read_table(path, r, size, key, label, want)


def _read_table(path, entry, size, key, label, want):
    """The table the header's ``entry`` (``hdr[key]``: dtype, offset, n_rows) describes,
    checked against the fields of ``want`` and returned as ``want``."""
    try:
        dtype = np.dtype([tuple(d) for d in entry["dtype"]])
    except (KeyError, TypeError, ValueError):
        raise TraceFormatError(f"header field '{key}' has no valid dtype", path) from None
    if dtype.names != want.names:
        raise TraceFormatError(f"{label} has fields {dtype.names}, expected {want.names}", path)
    data = _read_blob(path, entry, size, key)
    n_rows = entry.get("n_rows")
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) \
            or len(data) != n_rows * dtype.itemsize:
        raise TraceFormatError(f"{label}: {len(data)} bytes do not hold {_short(n_rows)} rows",
                               path)
    return np.frombuffer(data, dtype).astype(want)
