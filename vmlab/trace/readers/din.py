"""Reader and writer for Dinero IV ``din`` traces (traditional and extended).

Reading -- one record per line, fields separated by spaces or tabs, leading blanks and
blank lines skipped, ``\\r\\n`` accepted:

* **traditional din** (Dinero III/IV ``-informat d``): ``LABEL ADDRESS``, where LABEL is
  ``0`` read (-> ``Op.LOAD``), ``1`` write (-> ``Op.STORE``) or ``2`` instruction fetch
  (-> ``Op.IFETCH``), and ADDRESS is hexadecimal, with or without ``0x``.  As in Dinero,
  the rest of the line is ignored (it may hold comments), so a third field is *not* a
  size: every record gets the size ``default_size`` (option, default **4**, Dinero's word).
  Labels ``3`` (escape: unknown access type) and ``4`` (escape: cache flush) are not
  memory accesses vmlab can model: they raise an error saying so.
* **extended din** (Dinero IV ``-informat D``, "xdin"): ``TYPE ADDRESS SIZE``, where TYPE
  is ``r`` read, ``w`` write or ``i`` instruction fetch (either case), ADDRESS and SIZE are
  hexadecimal with optional ``0x`` (Dinero IV reads the size as hex too: ``w 1000 10`` is
  a 16-byte write).  The rest of the line is ignored.  Dinero's other types ``m`` (misc),
  ``c`` (copy-back) and ``v`` (invalidate) raise an "unsupported" error.

Both forms may be mixed in one file (the label decides).  Addresses must fit in 64 bits;
sizes must be 1 to 2^32-1.  Records get tid 0 and asid 0; there is no ``gap_ns``.  An access
whose bytes cross a page boundary (option ``page_size``, default 4096) becomes a record per
page, as lackey's reader makes it (:func:`vmlab.trace.build.split_page_crossings`): the CPU
faults on each page it touches.

Writing (:func:`write`) -- the traditional form when every record's size is 4 (it reads
back identically, an access that crosses a page boundary as its pieces), else the extended form with hex sizes.  Addresses are written in
lower-case hex without ``0x``.  tid, asid, gap_ns and call are dropped (din has no place
for them: an access the kernel made becomes the program's); ``MODIFY`` is written as a
write (``1``/``w``): the read half is lost; ``LOCK_W`` (not a memory access) cannot be
written: an error names the first such record.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..._numba import njit
from ...errors import TraceFormatError
from ..build import iter_page_crossings_split
from ..model import Op, TraceMeta
from . import _text
from ._text import (ERR_CAPACITY, SNIFF_RECORDS, address_outputs, check_file, check_options,
                    scan_hex, shorten)

NAME = "din"
WITH_GAP = False
#: size of a traditional-din record (option ``default_size``)
DEFAULT_SIZE = 4

_MAX_SIZE = 0xFFFFFFFF
#: shortest record line: "0 0\n"
_MIN_LINE = 4

ERR_LABEL = 1         # unknown label
ERR_UNSUPPORTED = 2   # a Dinero label vmlab does not model (3, 4, m, c, v)
ERR_SHORT = 3         # line ends before the address
ERR_ADDR = 4          # bad hex address
ERR_ADDR_RANGE = 5    # address over 64 bits
ERR_NOSIZE = 6        # extended line without size
ERR_SIZE = 7          # bad hex size
ERR_SIZE_RANGE = 8    # size 0 or >= 2^32

# label byte -> op code (0-2), 100 + op for extended labels, 254 unsupported, 255 unknown
_LABELS = np.full(256, 255, np.uint8)
for _ch, _code in {"0": 0, "1": 1, "2": 2, "r": 100, "w": 101, "i": 102,
                   "R": 100, "W": 101, "I": 102}.items():
    _LABELS[ord(_ch)] = _code
for _ch in "34mcvMCV":
    _LABELS[ord(_ch)] = 254

_UNSUPPORTED = {"3": "escape record (unknown access type)", "4": "escape record (cache flush)",
                "m": "miscellaneous access", "c": "copy-back", "v": "invalidate"}

_READ_OPTIONS = {"chunk_records", "show_progress", "block_bytes", "threads", "page_size",
                 "default_size"}


@njit
def _blank(c):
    return c == 32 or c == 9


@njit
def _end(c):
    """True for a byte that ends a field: blank, '\\r' or '\\n'."""
    return c == 32 or c == 9 or c == 13 or c == 10


@njit
def _hex(buf, i):
    """Parse hex (optional 0x) at ``buf[i]``; return (value, end, status 0/1 bad/2 > 64 bits)."""
    if buf[i] == 48 and (buf[i + 1] == 120 or buf[i + 1] == 88):
        i += 2
    s = i
    v, i = scan_hex(buf, i)
    if i == s or not _end(buf[i]):
        return v, i, 1
    if i - s > 16:
        z = s
        while buf[z] == 48:
            z += 1
        if i - z > 16:
            return v, i, 2
    return v, i, 0


@njit
def _parse(buf, start, end, default_size, addr, op, size):
    cap = len(addr)
    n = 0
    i = start
    while i < end:
        while _blank(buf[i]):
            i += 1
        c = buf[i]
        if c == 10 or (c == 13 and buf[i + 1] == 10):  # blank line
            while buf[i] != 10:
                i += 1
            i += 1
            continue
        line = i
        code = _LABELS[c]
        if code == 255 or not _end(buf[i + 1]):
            return n, ERR_LABEL, line, 0
        if code == 254:
            return n, ERR_UNSUPPORTED, line, c
        i += 1
        while _blank(buf[i]):
            i += 1
        if buf[i] == 10 or buf[i] == 13:
            return n, ERR_SHORT, line, 0
        a, i, status = _hex(buf, i)
        if status == 1:
            return n, ERR_ADDR, line, 0
        if status == 2:
            return n, ERR_ADDR_RANGE, line, 0
        if code >= 100:
            code -= 100
            while _blank(buf[i]):
                i += 1
            if buf[i] == 10 or buf[i] == 13:
                return n, ERR_NOSIZE, line, 0
            v, i, status = _hex(buf, i)
            if status != 0:
                return n, ERR_SIZE, line, 0
            if v == 0 or v > np.uint64(_MAX_SIZE):
                return n, ERR_SIZE_RANGE, line, 0
            sz = v
        else:
            sz = np.uint64(default_size)
        while buf[i] != 10:  # the rest of the line is a comment
            i += 1
        i += 1
        if n >= cap:
            return n, ERR_CAPACITY, line, 0
        addr[n] = a
        op[n] = code
        size[n] = sz
        n += 1
    return n, 0, 0, 0


def _describe(err, aux, text):
    t = shorten(text.strip())
    if err == ERR_LABEL:
        # the error offset is the label's first byte; the "line" may be only blanks and
        # stray bytes such as a lone '\r', so take the field from there, never split()[0]
        label = text.replace("\t", " ").split(" ", 1)[0][:20] if text else "\n"
        return (f"unknown din label {label!r} in {text[:60]!r}; expected 0 (read), 1 (write), "
                "2 (instruction fetch) or extended r, w, i")
    if err == ERR_UNSUPPORTED:
        label = chr(aux)
        what = _UNSUPPORTED.get(label.lower(), "")
        return (f"din label {label!r} ({what}) is not supported: vmlab models only reads "
                "(0/r), writes (1/w) and instruction fetches (2/i)")
    if err == ERR_SHORT:
        return f"expected 'LABEL ADDRESS' (hex address after the label), found {t!r}"
    if err == ERR_ADDR:
        return f"expected a hexadecimal address after the label, found {t!r}"
    if err == ERR_ADDR_RANGE:
        return f"address does not fit in 64 bits: {t!r}"
    if err == ERR_NOSIZE:
        return f"expected 'TYPE ADDRESS SIZE' (extended din needs a hex size), found {t!r}"
    if err == ERR_SIZE:
        return f"expected a hexadecimal size after the address, found {t!r}"
    if err == ERR_SIZE_RANGE:
        return f"access size must be 1 to {_MAX_SIZE} bytes, found {t!r}"
    return f"internal parser error {err} at {t!r}"


_RE_LINE = re.compile(rb"[ \t]*[012rwiRWI][ \t]+(0[xX])?[0-9a-fA-F]+([ \t][^\n]*)?\Z")


def sniff(head: bytes) -> bool:
    """True if every complete non-blank line of ``head`` is a din record (and one is)."""
    lines = head.split(b"\n")
    if len(lines) > 1 and not head.endswith(b"\n"):
        lines = lines[:-1]
    records = 0
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        if not _RE_LINE.match(line):
            return False
        records += 1
        if records == SNIFF_RECORDS:
            break  # (a bad line further on is the reader's to report, with its number)
    return records > 0


def iter_chunks(path, *, chunk_records=1 << 22, show_progress=None, **options):
    """Yield dicts ``{"addr", "op", "size"}`` of numpy arrays, the records of at most
    ``chunk_records`` lines each (more where an access crosses a page boundary: its pieces).

    Options: ``default_size`` (size of traditional records, default 4), ``block_bytes``,
    ``threads`` (see :mod:`vmlab.trace.readers._text`).
    """
    check_options(options, _READ_OPTIONS, "din.iter_chunks")
    page_size = TraceMeta(page_size=options.get("page_size", 4096)).page_size   # checked
    path = check_file(path)
    default_size = int(options.get("default_size", DEFAULT_SIZE))
    if not 1 <= default_size <= _MAX_SIZE:
        raise ValueError(f"default_size must be 1 to {_MAX_SIZE}, got {default_size}")

    def kernel(buf, start, end, cols):
        return _parse(buf, start, end, default_size, cols["addr"], cols["op"], cols["size"])

    total = 0
    for chunk in _text.parse_blocks(
            path, address_outputs, kernel, _describe, min_line=_MIN_LINE, chunk_records=chunk_records,
            block_bytes=options.get("block_bytes"), threads=options.get("threads", 2),
            show_progress=show_progress, desc=f"din {path.name}"):
        # an access that crosses a page boundary: a record per page (the faults it takes)
        for piece in iter_page_crossings_split(chunk, page_size, chunk_records):
            total += len(piece["addr"])
            yield piece
    if total == 0:
        raise _text.no_records_error(
            path, "no records" if path.stat().st_size == 0 else "no records (only blank lines)")


def meta_for(path, **options) -> TraceMeta:
    """Metadata of a trace read from ``path``: source ``din:<file name>``."""
    return TraceMeta(page_size=options.get("page_size", 4096), source=f"din:{Path(path).name}")


# ------------------------------------------------------------------------------------
# writer

_TRAD_LABEL = np.frombuffer(b"0121", np.uint8).copy()  # LOAD STORE IFETCH MODIFY
_EXT_LABEL = np.frombuffer(b"rwiw", np.uint8).copy()


@njit
def _format(addr, op, size, extended, out):
    j = 0
    for r in range(len(addr)):
        o = op[r]
        out[j] = _EXT_LABEL[o] if extended else _TRAD_LABEL[o]
        out[j + 1] = 32
        j = _text.put_hex(out, j + 2, np.uint64(addr[r]), 1)
        if extended:
            out[j] = 32
            j = _text.put_hex(out, j + 1, np.uint64(size[r]), 1)
        out[j] = 10
        j += 1
    return j


def write(trace, path, *, show_progress=None):
    """Write ``trace`` as din (see the module docstring for the form chosen and the losses)."""
    n = len(trace)
    op, size, addr = trace.op, trace.size, trace.addr
    bad = _text.first_index(lambda lo, hi: op[lo:hi] > Op.MODIFY, n)
    if bad >= 0:
        raise TraceFormatError(
            f"record {bad} is {Op(int(op[bad])).name}, which din cannot represent "
            "(only reads, writes and instruction fetches)", path)
    bad = _text.first_index(lambda lo, hi: size[lo:hi] == 0, n)
    if bad >= 0:
        raise TraceFormatError(f"record {bad} has size 0, which din cannot represent", path)
    extended = _text.first_index(lambda lo, hi: size[lo:hi] != DEFAULT_SIZE, n) >= 0

    buf = np.empty(min(n, _text.WRITE_CHUNK) * 40, np.uint8)  # reused; 40 >= longest line

    def chunk(lo, hi):
        out = buf
        j = _format(addr[lo:hi], op[lo:hi], size[lo:hi], extended, out)
        return out[:j]

    return _text.write_text(path, n, chunk, show_progress=show_progress,
                            desc=f"writing {Path(path).name}")
