"""vmlab's native trace format (``.vmt``): memory-mapped columns behind a JSON header.

Layout of a file::

    0   8 bytes   magic  b"VMLTRACE"
    8   uint32    format version (little endian)
    12  uint32    length H of the JSON header in bytes
    16  H bytes   JSON header (UTF-8)
    ... padding to a multiple of 4096
    column data, each column little-endian, starting on a 4096-byte boundary

The JSON header holds ``n_records``, ``page_size``, ``source``, ``notes``, ``n_threads`` and a
list ``columns`` of ``{"name", "dtype", "offset", "nbytes", "crc32"}``.  Opening is a header
parse and one ``np.memmap`` per column: no record is read, so it takes milliseconds at any
size.  ``verify=True`` recomputes every column's CRC-32 and compares it with the header.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .._io import publish, temp_beside
from ..errors import TraceFormatError
from .model import ALL_COLUMNS, DEFAULT_DTYPES, REQUIRED_COLUMNS, Trace, TraceMeta, narrow_dtype

MAGIC = b"VMLTRACE"
FORMAT_VERSION = 1
ALIGN = 4096
#: Where the addr column starts: the header (magic, version, JSON) must fit before it.
ADDR_OFFSET = 1 << 16
_CHUNK = 1 << 24  # bytes per checksum / copy step


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
    """

    def __init__(self, path, meta=None, with_gap=False):
        self.path = Path(path)
        self.meta = meta or TraceMeta()
        self.names = list(REQUIRED_COLUMNS) + (["gap_ns"] if with_gap else [])
        self._out = temp_beside(self.path)
        self._dir = tempfile.mkdtemp(prefix=".vmlab-", dir=self.path.parent)
        self._files = {n: open(os.path.join(self._dir, n), "wb") for n in self.names
                       if n != "addr"}
        self._files["addr"] = open(self._out, "wb")
        self._files["addr"].seek(ADDR_OFFSET)
        self._addr_crc = 0
        self._max = {n: 0 for n in self.names}
        # dtype of each temporary column; a column whose values outgrow it (a LOCK_W range
        # of 4 GiB or more in the uint32 size column) is widened, never wrapped
        self._src = {n: np.dtype(DEFAULT_DTYPES[n]) for n in self.names}
        self._tids = set()
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
            if n and col.dtype.itemsize > self._src[name].itemsize \
                    and int(col.max()) > np.iinfo(self._src[name]).max:
                self._widen(name)
            col = np.ascontiguousarray(col.astype(self._src[name], copy=False))
            if n:
                lo, hi = int(col.min()), int(col.max())
                self._max[name] = max(self._max[name], hi)
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
        try:
            for f in self._files.values():
                f.close()
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
                hdr = self._header(cols_hdr, n_threads)
                if 16 + len(hdr) > ADDR_OFFSET:
                    raise TraceFormatError(
                        f"trace metadata too long for the header ({len(hdr)} bytes, at most "
                        f"{ADDR_OFFSET - 16}): shorten source or notes", self.path)
                out.seek(0)
                out.write(MAGIC)
                out.write(np.uint32(FORMAT_VERSION).tobytes())
                out.write(np.uint32(len(hdr)).tobytes())
                out.write(hdr)
            publish(self._out, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._out)
            raise
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        return self.path

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

    def _header(self, cols_hdr, n_threads):
        return json.dumps({
            "format": "vmlab-trace", "version": FORMAT_VERSION, "n_records": self.n_records,
            "page_size": int(self.meta.page_size), "source": self.meta.source,
            "notes": self.meta.notes, "n_threads": n_threads, "columns": cols_hdr,
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
        for f in self._files.values():
            f.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._out)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def save_trace(trace, path, chunk_records=1 << 22):
    """Write ``trace`` to ``path`` in the native format (atomically). Returns the path."""
    with TraceWriter(path, trace.meta, with_gap=trace.has_gap) as w:
        n = len(trace)
        for lo in range(0, max(n, 1), chunk_records):
            w.append(**{k: v[lo:lo + chunk_records] for k, v in trace.columns.items()})
    return Path(path)


def read_header(path):
    """Parse and check the header of a native trace file; return it as a dict."""
    path = Path(path)
    try:
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
            if version != FORMAT_VERSION:
                raise TraceFormatError(
                    f"trace format version {version} is not supported; this vmlab reads "
                    f"version {FORMAT_VERSION}", path)
            hlen = int(np.frombuffer(fixed, "<u4", 1, 12)[0])
            raw = f.read(hlen)
    except FileNotFoundError:
        raise TraceFormatError("no such file", path) from None
    if len(raw) < hlen:
        raise TraceFormatError(f"header truncated: expected {hlen} bytes, found {len(raw)}", path)
    try:
        hdr = json.loads(raw)
    except ValueError as e:
        raise TraceFormatError(f"header is not valid JSON ({e})", path) from None
    for key in ("n_records", "page_size", "columns"):
        if key not in hdr:
            raise TraceFormatError(f"header has no {key!r} field", path)
    names = [c.get("name") for c in hdr["columns"]]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise TraceFormatError(f"header lacks column(s) {missing}", path)
    for c in hdr["columns"]:
        if c["name"] not in ALL_COLUMNS:
            raise TraceFormatError(f"header names unknown column {c['name']!r}", path)
        dt = np.dtype(c["dtype"])
        if dt.kind != "u" or c["nbytes"] != hdr["n_records"] * dt.itemsize:
            raise TraceFormatError(
                f"column {c['name']!r}: dtype {c['dtype']} and {c['nbytes']} bytes do not fit "
                f"{hdr['n_records']} records", path)
        if c["offset"] + c["nbytes"] > size:
            raise TraceFormatError(
                f"file is truncated: column {c['name']!r} needs bytes up to "
                f"{c['offset'] + c['nbytes']}, the file has {size}", path)
    return hdr


def open_trace(path, verify=False):
    """Open a native trace without reading its records (memory-mapped, read-only).

    Parameters
    ----------
    path : str or Path
    verify : bool
        Recompute each column's CRC-32 and raise :class:`TraceFormatError` on a mismatch.
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
    return Trace.from_columns(cols, meta, n_threads=hdr.get("n_threads"))


def verify_columns(path, hdr, cols):
    """Raise :class:`TraceFormatError` naming the first column whose CRC-32 differs."""
    for c in hdr["columns"]:
        arr = cols[c["name"]]
        crc = 0
        view = np.asarray(arr).view(np.uint8) if len(arr) else np.zeros(0, np.uint8)
        for lo in range(0, len(view), _CHUNK):
            crc = zlib.crc32(view[lo:lo + _CHUNK], crc)
        if c.get("crc32") is not None and crc != c["crc32"]:
            raise TraceFormatError(
                f"checksum mismatch in column {c['name']!r}: header says {c['crc32']:#010x}, "
                f"data gives {crc:#010x} (the file is corrupt)", path)
