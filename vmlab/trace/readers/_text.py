"""Shared machinery of the text-format readers and writers.

Reading
-------
:func:`parse_blocks` reads a file in large binary blocks (``readinto`` a reusable numpy
``uint8`` buffer, cut after the last newline; the partial line is carried over to the next
block), splits every block into ``threads`` parts at newlines and hands each part to a
format's numba kernel on a thread pool (the kernels release the GIL).  Reading block *k+1*
overlaps parsing block *k*, and the consumer of block *k*'s records (e.g. a
:class:`~vmlab.trace.native.TraceWriter`) works while block *k+1* is parsed.  Memory stays
bounded: two input buffers plus a small pool of output arrays (the records of a few
blocks), reused once the consumer holds no view of them.

Every block handed to a kernel ends with ``\\n`` (a final line without one gets a sentinel
newline), so a kernel that sees a byte other than ``\\n`` may always read the next byte.

A kernel never raises: it returns ``(n_records, error_code, error_offset, aux)``.  On an
error, :func:`parse_blocks` counts the newlines before the offset (re-reading the file: the
error path may be slow, the fast path counts nothing) and raises
:class:`~vmlab.errors.TraceFormatError` with the 1-based line number and the format's own
description of what was expected.

Writing
-------
:func:`write_text` streams a trace through a formatting kernel into a file chunk by chunk,
atomically (:func:`vmlab._io.atomic_path`).
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..._io import atomic_path, progress
from ..._numba import njit
from ...errors import TraceFormatError

#: The hint of a reader that met an event it does not read: the keyword that skips them
#: (:class:`vmlab.errors.TraceFormatError` ``option``; the CLI spells it ``--other-events skip``).
SKIP_OTHER_EVENTS = ("other_events", "skip", "to ignore other events")


NL = 10
#: Largest block read at once (bytes).
MAX_BLOCK = 64 << 20
#: Longest line accepted (a file without newlines must not be read whole into memory).
MAX_LINE = 16 << 20
#: Records a format's sniffer reads before it decides: the file's first lines tell its
#: format; a bad line further on is the reader's to report, with its line number.
SNIFF_RECORDS = 32
#: Blocks smaller than this are parsed by one thread.
MIN_SPLIT = 1 << 15
#: Records formatted at once by the writers.
WRITE_CHUNK = 1 << 20
#: Error code a kernel returns when its output arrays are full (a bug, never bad input).
ERR_CAPACITY = 99

#: hex digit value of each byte, 255 for a non-hex byte
HEX_VALUE = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    HEX_VALUE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    HEX_VALUE[_c] = 10 + _i
#: lower-case hex digits, for the writers
HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8).copy()


# ------------------------------------------------------------------------------------
# common checks


def check_file(path):
    """Return ``Path(path)`` or raise a clear error if it is not a readable file."""
    path = Path(path)
    if not path.exists():
        raise TraceFormatError("no such file", path)
    if path.is_dir():
        raise TraceFormatError("is a directory, expected a trace file", path)
    return path


def check_options(options, allowed, func):
    """Raise TypeError naming any option not in ``allowed``."""
    unknown = set(options) - set(allowed)
    if unknown:
        raise TypeError(f"{func}() got unexpected option(s) {sorted(unknown)}; "
                        f"accepted: {', '.join(sorted(allowed))}")


def block_size(chunk_records, block_bytes=None):
    """Bytes per block: ``block_bytes`` if given, else ~16 bytes per record, capped at 64 MiB."""
    if block_bytes is None:
        block_bytes = min(MAX_BLOCK, max(16, int(chunk_records) * 16))
    block_bytes = int(block_bytes)
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be positive, got {block_bytes}")
    return block_bytes


def no_records_error(path, what="no records"):
    """The error for an input that holds no record."""
    return TraceFormatError(f"file is empty: {what}", path)


def shorten(text, limit=60):
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ------------------------------------------------------------------------------------
# small kernels


@njit
def _last_newline(buf, n):
    i = n - 1
    while i >= 0 and buf[i] != NL:
        i -= 1
    return i


@njit
def _next_newline(buf, start, end):
    i = start
    while i < end and buf[i] != NL:
        i += 1
    return i


@njit
def _count_newlines(buf, n):
    c = 0
    for i in range(n):
        if buf[i] == NL:
            c += 1
    return c


def line_at(path, offset):
    """(1-based line number, line text) of the line holding byte ``offset`` of ``path``."""
    count = 0
    step = 1 << 24
    buf = np.empty(step, np.uint8)
    with open(path, "rb", buffering=0) as f:
        pos = 0
        while pos < offset:
            got = f.readinto(memoryview(buf)[:min(step, offset - pos)])
            if not got:
                break
            count += int(_count_newlines(buf, got))
            pos += got
        f.seek(offset)
        text = f.read(240).split(b"\n", 1)[0]
    return count + 1, text.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------
# block reader


class _BlockReader:
    """Fills buffers with whole lines of a file, carrying partial lines over."""

    def __init__(self, path, f, block_bytes, start_offset):
        self.path = path
        self.f = f
        self.block = block_bytes
        self.pos = start_offset  # file offset of the next byte to read
        self.carry = np.zeros(0, np.uint8)
        self.eof = False

    def fill(self, buf):
        """Read into ``buf`` (may be replaced by a bigger one).

        Returns ``(buf, nbytes, base_offset)`` with ``buf[:nbytes]`` ending in a newline,
        or ``None`` at end of file.
        """
        base = self.pos - len(self.carry)
        k = len(self.carry)
        if buf is None or len(buf) < max(self.block, k) + 1:
            buf = np.empty(max(self.block, 2 * k) + 1, np.uint8)
        buf[:k] = self.carry
        self.carry = self.carry[:0]
        while True:
            cap = len(buf) - 1  # keep one byte for a sentinel newline
            while k < cap and not self.eof:
                got = self.f.readinto(memoryview(buf)[k:cap])
                if not got:
                    self.eof = True
                    break
                k += got
                self.pos += got
            if self.eof:
                if k == 0:
                    return None
                if buf[k - 1] != NL:
                    buf[k] = NL
                    k += 1
                return buf, k, base
            last = int(_last_newline(buf, k))
            if last >= 0:
                self.carry = buf[last + 1:k].copy()
                return buf, last + 1, base
            # a line longer than the buffer: grow it, up to a limit
            if k > MAX_LINE:
                line, _ = line_at(self.path, base)
                raise TraceFormatError(
                    f"line longer than {MAX_LINE >> 20} MiB (no newline): not a text trace?",
                    self.path, line)
            bigger = np.empty(2 * len(buf), np.uint8)
            bigger[:k] = buf[:k]
            buf = bigger


def _split(buf, nbytes, parts):
    """Cut ``buf[:nbytes]`` into up to ``parts`` (start, end) ranges ending at newlines."""
    if parts <= 1 or nbytes < MIN_SPLIT:
        return [(0, nbytes)]
    bounds = []
    start = 0
    for p in range(1, parts):
        cut = int(_next_newline(buf, max(start, nbytes * p // parts), nbytes)) + 1
        if cut >= nbytes:
            break
        if cut > start:
            bounds.append((start, cut))
            start = cut
    bounds.append((start, nbytes))
    return bounds


class _OutputPool:
    """Output column arrays, reused once nobody holds a view of them.

    Reusing them matters: touching fresh memory (page faults) costs as much as parsing on
    some machines.  A set of arrays is reused only when its arrays' reference counts show
    that no yielded view of them is alive (a consumer that keeps chunks gets fresh arrays).
    """

    def __init__(self, outputs, keep):
        self.outputs = outputs
        self.keep = keep
        self.free = []

    def take(self, cap):
        for k, (have, cols) in enumerate(self.free):
            if have >= cap and _unreferenced(cols):
                del self.free[k]
                return have, cols
        return cap, self.outputs(cap)

    def give(self, entries):
        self.free.extend(entries)
        del self.free[:-self.keep]


def _unreferenced(cols):
    for name in cols:
        # references: the dict, the argument of getrefcount
        if sys.getrefcount(cols[name]) > 2:
            return False
    return True


def parse_blocks(path, outputs, kernel, describe_error, *, min_line, chunk_records=1 << 22,
                 block_bytes=None, threads=2, show_progress=None, start_offset=0, desc=None):
    """Parse ``path`` block by block and yield dicts of column arrays.

    Parameters
    ----------
    outputs : callable ``(capacity) -> dict of arrays``
        Allocates the output columns of one part (arrays of length ``capacity``, or 0 for
        a column the kernel does not fill).
    kernel : callable ``(buf, start, end, columns) -> (n, err, err_pos, aux)``
        Parses the lines in ``buf[start:end]`` into the first ``n`` entries of the columns;
        ``err`` is 0 or an error code found at byte ``err_pos`` of ``buf``, ``aux`` a detail
        for the message.  Never raises.
    describe_error : callable ``(err, aux, line_text) -> str``
    min_line : int
        Bytes of the shortest record line (bounds the records of a part).
    chunk_records : int
        At most this many records per yielded dict.
    block_bytes : int, optional
        Bytes read at once (default from ``chunk_records``, at most 64 MiB).
    threads : int
        Parts each block is parsed in, concurrently.
    start_offset : int
        Byte where parsing starts (after a header); line numbers still count from byte 0.

    Yields dicts of array views.  The arrays behind them are reused for later chunks only
    once no view of them is referenced any more, so keeping a chunk is safe.
    """
    path = Path(path)
    chunk_records = int(chunk_records)
    if chunk_records < 1:
        raise ValueError(f"chunk_records must be positive, got {chunk_records}")
    block = block_size(chunk_records, block_bytes)
    threads = max(1, int(threads))
    total = path.stat().st_size
    pool = _OutputPool(outputs, keep=3 * threads + 2)
    standard = (block // threads + 4096) // min_line + 1

    def run(buf, start, end, cols):
        return kernel(buf, start, end, cols)

    with open(path, "rb", buffering=0) as f, \
            ThreadPoolExecutor(max_workers=threads) as executor, \
            progress(total=total, desc=desc or f"reading {path.name}", unit="B",
                     enabled=show_progress) as bar:
        f.seek(start_offset)
        bar.update(start_offset)
        reader = _BlockReader(path, f, block, start_offset)
        bufs = [None, None]
        which = 0

        def submit(filled):
            buf, nbytes, base = filled
            jobs = []
            for a, b in _split(buf, nbytes, threads):
                cap, cols = pool.take(max(standard, (b - a) // min_line + 1))
                jobs.append((cap, cols, executor.submit(run, buf, a, b, cols)))
            return jobs, base, nbytes

        filled = reader.fill(bufs[which])
        if filled is None:
            return
        bufs[which] = filled[0]
        pending = submit(filled)
        del filled
        while pending is not None:
            which ^= 1
            nxt = reader.fill(bufs[which])  # overlaps the parse of the pending block
            if nxt is not None:
                bufs[which] = nxt[0]
            jobs, base, nbytes = pending
            results = [fut.result() for _cap, _cols, fut in jobs]
            for n, err, err_pos, aux in results:
                if err:
                    line, text = line_at(path, base + int(err_pos))
                    raise TraceFormatError(describe_error(int(err), int(aux), text), path, line)
            pending = submit(nxt) if nxt is not None else None
            nxt = None
            bar.update(nbytes)
            for (_cap, cols, _fut), (n, _err, _pos, _aux) in zip(jobs, results):
                n = int(n)
                for lo in range(0, n, chunk_records):
                    hi = min(n, lo + chunk_records)
                    yield {k: v[lo:hi] for k, v in cols.items()}
            pool.give([(cap, cols) for cap, cols, _fut in jobs])
            del jobs, results, cols


# ------------------------------------------------------------------------------------
# writing


def write_text(path, n_records, format_chunk, *, header=b"", chunk_records=WRITE_CHUNK,
               show_progress=None, desc="writing"):
    """Atomically write ``header`` then ``format_chunk(lo, hi) -> bytes-like`` for each chunk."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as out, \
            progress(total=n_records, desc=desc, unit="records", enabled=show_progress) as bar:
        out.write(header)
        for lo in range(0, n_records, chunk_records):
            hi = min(n_records, lo + chunk_records)
            out.write(format_chunk(lo, hi))
            bar.update(hi - lo)
    return path


@njit
def put_hex(out, j, value, min_digits):
    """Write ``value`` (uint64) in lower-case hex, at least ``min_digits`` digits; return end."""
    nd = 1
    v = value >> np.uint64(4)
    while v != 0:
        nd += 1
        v >>= np.uint64(4)
    if nd < min_digits:
        nd = min_digits
    v = value
    for k in range(nd - 1, -1, -1):
        out[j + k] = HEX_DIGITS[np.intp(v & np.uint64(15))]
        v >>= np.uint64(4)
    return j + nd


@njit
def put_dec(out, j, value):
    """Write ``value`` (uint64) in decimal; return the end."""
    nd = 1
    v = value // np.uint64(10)
    while v != 0:
        nd += 1
        v //= np.uint64(10)
    v = value
    for k in range(nd - 1, -1, -1):
        out[j + k] = np.uint8(48 + np.intp(v % np.uint64(10)))
        v //= np.uint64(10)
    return j + nd


def first_index(mask_fn, n, step=1 << 22):
    """Index of the first record where ``mask_fn(lo, hi)`` is true, or -1 (chunked)."""
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        hits = np.flatnonzero(mask_fn(lo, hi))
        if len(hits):
            return lo + int(hits[0])
    return -1


def address_outputs(cap):
    """Output columns of the address-only text readers (lackey, din): addr, op, size."""
    return {"addr": np.empty(cap, np.uint64), "op": np.empty(cap, np.uint8),
            "size": np.empty(cap, np.uint32)}


@njit
def scan_hex(buf, i):
    """Hex digits from ``buf[i]`` (no prefix): ``(value, end)``; ``end == i`` when there are
    none.  Callers check the digit count (``end - i > 16`` overflows 64 bits) and the
    terminator; the buffer ends with a non-digit, so the scan stops."""
    v = np.uint64(0)
    while True:
        d = HEX_VALUE[buf[i]]
        if d == 255:
            return v, i
        v = (v << np.uint64(4)) | np.uint64(d)
        i += 1
