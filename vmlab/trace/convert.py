"""Front door of trace formats: detect, read, convert (streaming) and write.

Reader formats (``FORMATS``): ``lackey`` (valgrind lackey ``--trace-mem=yes``), ``din``
(Dinero IV, traditional and extended), ``csv`` (named columns) and ``perf`` (``perf script``
output).  ``vmt`` is vmlab's native format (:mod:`vmlab.trace.native`).

Every reader module in :mod:`vmlab.trace.readers` has ``NAME``, ``WITH_GAP``,
``sniff(head)``, ``iter_chunks(path, *, chunk_records, show_progress, **options)`` and
``meta_for(path, **options)``; they are imported lazily, on first use.

Options accepted everywhere a reader runs: ``page_size`` (of the resulting trace, default
4096), ``chunk_records``, ``block_bytes`` and ``threads`` (text readers), plus each format's
own (``din``: ``default_size``; ``csv``: ``ignore_unknown``).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from .readers._text import check_file, first_index
from .._io import refuse_onto_itself
from ..errors import TraceFormatError
from .model import Call, Op, Trace
from .native import MAGIC, TraceWriter, open_trace, save_trace

#: Reader formats, in the order auto-detection tries them.
FORMATS = ("lackey", "perf", "din", "csv")
#: Formats :func:`write_trace` writes.
WRITE_FORMATS = ("vmt", "csv", "din", "lackey")
#: Bytes of a file looked at by :func:`detect_format`.
SNIFF_BYTES = 1 << 16

_MODULES = {
    "lackey": "vmlab.trace.readers.lackey",
    "din": "vmlab.trace.readers.din",
    "csv": "vmlab.trace.readers.csv_format",
    "perf": "vmlab.trace.readers.perf",
}


def reader(fmt):
    """The reader module of format ``fmt`` (imported on first use)."""
    if fmt not in _MODULES:
        raise TraceFormatError(
            f"unknown trace format {fmt!r}; expected one of {', '.join(FORMATS)} or vmt")
    try:
        return importlib.import_module(_MODULES[fmt])
    except ModuleNotFoundError as e:
        if e.name != _MODULES[fmt]:
            raise
        raise TraceFormatError(f"the {fmt!r} reader is not available in this vmlab") from None


def detect_format(path):
    """Name of the format of ``path`` (``"vmt"`` or one of :data:`FORMATS`).

    Looks at the first 64 KiB.  Raises :class:`TraceFormatError` if the file is missing,
    empty, or matches no format.
    """
    path = check_file(path)
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head:
        raise TraceFormatError("file is empty: no records", path)
    if head.startswith(MAGIC):
        return "vmt"
    for fmt in FORMATS:
        try:
            mod = reader(fmt)
        except TraceFormatError:  # a reader not available (yet)
            continue
        if mod.sniff(head):
            return fmt
    first = next((line.strip() for line in head.split(b"\n") if line.strip()), b"")
    first = first[:60].decode("utf-8", "replace")
    raise TraceFormatError(
        f"cannot tell the trace format (first non-blank line {first!r}); expected a vmlab trace, "
        f"{', '.join(FORMATS)}; give the format explicitly (fmt=... / --from)", path)


def _open_vmt(path, options):
    """open_trace, with ``page_size`` the only option that applies (it re-labels the trace)."""
    options = {k: v for k, v in options.items() if k != "show_progress"}
    page_size = options.pop("page_size", None)
    if options:
        raise TypeError(f"options {sorted(options)} do not apply to vmt files")
    trace = open_trace(path)
    return trace if page_size is None else trace.with_meta(page_size=page_size)


def read_trace(path, fmt=None, **options) -> Trace:
    """Read a trace file of any supported format into memory.

    ``fmt`` is detected when ``None``; native ``.vmt`` files are memory-mapped with
    :func:`~vmlab.trace.native.open_trace` (no records read).
    """
    path = check_file(path)
    fmt = fmt or detect_format(path)
    if fmt == "vmt":
        return _open_vmt(path, options)
    mod = reader(fmt)
    meta = mod.meta_for(path, **options)
    parts = {}
    for chunk in mod.iter_chunks(path, **options):
        for k, v in chunk.items():
            parts.setdefault(k, []).append(np.array(v))  # copy: frees the reader's buffers
    cols = {k: (np.concatenate(v) if len(v) > 1 else v[0]) for k, v in parts.items()}
    if "addr" not in cols:
        raise TraceFormatError("file is empty: no records", path)
    try:
        return Trace.from_columns(cols, meta)
    except TraceFormatError as e:   # a check over the whole trace (a thread's total of gaps)
        raise _of_input(e, path) from None


def _of_input(error, src):
    """``error``, raised by a check over the records read from ``src`` (after its reader's
    own checks, which name the line), as an error of ``src``: its records counted from 0 in
    the file's order."""
    return TraceFormatError(f"{error.reason} (records counted from 0 in the file's order)", src)


def convert(src, dst, fmt=None, *, show_progress=None, **options) -> Path:
    """Convert a trace file to vmlab's native format, streaming in bounded memory.

    Parameters
    ----------
    src, dst : str or Path
        Input file and output ``.vmt`` file (must differ).
    fmt : str, optional
        Input format (detected when ``None``); ``"vmt"`` re-writes a native trace.
    show_progress : bool, optional
        Progress bar on stderr; default: only when stderr is a terminal.
    **options
        ``page_size`` and reader options (see the module docstring).

    The output appears atomically: on any error (or Ctrl-C) nothing is left at ``dst``
    (a previous file there is untouched) and no temporary file remains.
    """
    src, dst = check_file(src), Path(dst)
    refuse_onto_itself(src, dst)
    fmt = fmt or detect_format(src)
    if fmt == "vmt":
        return Path(save_trace(_open_vmt(src, options), dst))
    mod = reader(fmt)
    meta = mod.meta_for(src, **options)
    chunks = mod.iter_chunks(src, show_progress=show_progress, **options)
    try:
        first = next(chunks)
    except StopIteration:  # readers raise on empty input; be safe anyway
        raise TraceFormatError("file is empty: no records", src) from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with TraceWriter(dst, meta, with_gap="gap_ns" in first, with_call="call" in first) as writer:
            writer.append(**first)
            del first
            for chunk in chunks:
                writer.append(**chunk)
    except TraceFormatError as e:
        if e.path == str(dst):   # the writer's checks of what was read: the input's fault
            raise _of_input(e, src) from None
        raise
    finally:
        chunks.close()
    return dst


def losses(trace, fmt):
    """What writing ``trace`` as ``fmt`` leaves out, as phrases for a note (empty for the
    native format, which keeps everything).  ``csv`` keeps every column but not a
    recording's mappings and page-cache state; ``din`` and ``lackey`` keep addr, op and size
    only (and din writes a ``MODIFY`` as a write; an access the kernel made, call
    ``KERNEL``, becomes the program's)."""
    if fmt == "vmt":
        return []
    out = []
    maps = getattr(trace, "mappings", None)
    if maps is not None:
        k = len(maps.table)
        out.append(f"the recorded mappings and page-cache state ({k:,} mapping "
                   f"row{'' if k == 1 else 's'}), which replay the run like the kernel")
    if fmt in ("din", "lackey"):
        n = len(trace)
        cols = trace.columns

        def varies(name):
            col = cols[name]
            return n > 0 and first_index(lambda lo, hi: col[lo:hi] != col[0], n) >= 0

        if varies("tid"):
            out.append("the thread of each record (tid)")
        if varies("asid"):
            out.append("the address space of each record (asid)")
        if "gap_ns" in cols:
            out.append("the compute gaps (gap_ns)")
        if "call" in cols and first_index(lambda lo, hi: cols["call"][lo:hi] == Call.KERNEL,
                                          n) >= 0:
            out.append("which accesses the kernel made in a system call (call kernel)")
        if fmt == "din" and first_index(lambda lo, hi: trace.op[lo:hi] == Op.MODIFY, n) >= 0:
            out.append("the read half of each MODIFY (written as a write)")
    return out


def write_trace(trace, path, fmt, *, show_progress=None) -> Path:
    """Write ``trace`` to ``path`` as ``fmt`` (one of :data:`WRITE_FORMATS`), atomically.

    ``csv`` keeps every column; ``din`` and ``lackey`` keep addr, op and size only (an
    access the kernel made becomes the program's; see :mod:`vmlab.trace.readers.din` for
    how ops and sizes are written).
    """
    path = Path(path)
    if fmt == "vmt":
        return Path(save_trace(trace, path))
    if fmt in ("csv", "din", "lackey"):
        mod = reader(fmt)
        mod.write(trace, path, show_progress=show_progress)
        return path
    raise TraceFormatError(
        f"cannot write format {fmt!r}; expected one of {', '.join(WRITE_FORMATS)}", path)


__all__ = ["FORMATS", "WRITE_FORMATS", "convert", "detect_format", "losses", "read_trace",
           "reader", "write_trace"]
