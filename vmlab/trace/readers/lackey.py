"""Reader (and writer) for valgrind lackey ``--trace-mem=yes`` output.

Accepted lines::

    I  04010a0,3          instruction fetch ('I' then two spaces)  -> Op.IFETCH
     L 1ffefffd28,8       load   (space, letter, space)            -> Op.LOAD
     S 1ffefffd28,8       store                                    -> Op.STORE
     M 1ffefffd28,8       modify (load then store, one record)     -> Op.MODIFY
    ==1234== ...          any valgrind message: skipped
    (blank line)          skipped

The address is hexadecimal without ``0x`` (at most 64 bits, leading zeros allowed), the size
decimal, 1 to 2^32-1.  ``\\r\\n`` line ends are accepted.  Every record gets tid 0 and asid 0;
there is no ``gap_ns``.  An access that crosses a page boundary (option ``page_size``,
default 4096) is read as a record per page it touches, in address order
(:func:`vmlab.trace.build.split_page_crossings`: the CPU faults on each page).

The file is parsed by a numba kernel over 64 MiB blocks on two threads (see
:mod:`vmlab.trace.readers._text`), tens of millions of records per second in bounded memory.
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

NAME = "lackey"
WITH_GAP = False

#: shortest record line: "I  0,1\n"
_MIN_LINE = 7
_MAX_SIZE = 0xFFFFFFFF

ERR_PREFIX = 1      # line does not start with 'I  ', ' L ', ' S ', ' M ' or '=='
ERR_FIELD = 2       # '<hex>,<size>' missing, truncated or with a bad character
ERR_SIZE = 3        # size is not a decimal number ending the line
ERR_SIZE_RANGE = 4  # size 0 or >= 2^32
ERR_ADDR_RANGE = 5  # address over 64 bits

_PREFIX = {int(Op.LOAD): " L ", int(Op.STORE): " S ", int(Op.IFETCH): "I  ",
           int(Op.MODIFY): " M "}

_READ_OPTIONS = {"chunk_records", "show_progress", "block_bytes", "threads", "page_size"}


#: op code of a line's first two bytes (c0 << 8 | c1), 255 if not a record prefix
_PREFIX_OP = np.full(1 << 16, 255, np.uint8)
_PREFIX_OP[(ord("I") << 8) | ord(" ")] = Op.IFETCH
_PREFIX_OP[(ord(" ") << 8) | ord("L")] = Op.LOAD
_PREFIX_OP[(ord(" ") << 8) | ord("S")] = Op.STORE
_PREFIX_OP[(ord(" ") << 8) | ord("M")] = Op.MODIFY


@njit
def _parse(buf, start, end, addr, op, size):
    """Parse the lackey lines in ``buf[start:end]`` (which ends with a newline).

    Returns ``(n_records, error_code, error_offset, op_of_the_bad_line)``.  Only reads
    inside the range: a byte other than a newline is always followed by another byte.
    """
    cap = len(addr)
    n = 0
    i = start
    while i < end:
        c = buf[i]
        o = _PREFIX_OP[(np.intp(c) << 8) | np.intp(buf[i + 1])] if c != 10 else np.uint8(255)
        if o == 255 or buf[i + 2] != 32:  # not a record: blank, '==PID==' or bad
            if c == 10:
                i += 1
            elif c == 13 and buf[i + 1] == 10:
                i += 2
            elif c == 61 and buf[i + 1] == 61:
                while buf[i] != 10:
                    i += 1
                i += 1
            else:
                return n, ERR_PREFIX, i, 0
            continue
        line = i
        i += 3
        # address: hex digits up to ','
        s = i
        a, i = scan_hex(buf, i)
        if buf[i] != 44 or i == s:
            return n, ERR_FIELD, line, o
        if i - s > 16:
            z = s
            while buf[z] == 48:
                z += 1
            if i - z > 16:
                return n, ERR_ADDR_RANGE, line, o
        i += 1
        # size: decimal up to the end of the line; fast paths for 1 and 2 digits
        c0 = np.intp(buf[i]) - 48
        c1 = np.intp(buf[i + 1]) - 48 if c0 != -38 else -1
        if 0 < c0 <= 9 and c1 == -38:
            v = c0
            i += 2
        elif 0 < c0 <= 9 and 0 <= c1 <= 9 and buf[i + 2] == 10:
            v = c0 * 10 + c1
            i += 3
        else:
            v = 0
            s = i
            while True:
                c = buf[i]
                if c < 48 or c > 57:
                    break
                if v <= _MAX_SIZE:
                    v = v * 10 + (c - 48)
                i += 1
            if c == 13:
                i += 1
                c = buf[i]
            if c != 10 or i == s:
                return n, ERR_SIZE, line, o
            i += 1
            if v == 0 or v > _MAX_SIZE:
                return n, ERR_SIZE_RANGE, line, o
        if n >= cap:
            return n, ERR_CAPACITY, line, o
        addr[n] = a
        op[n] = o
        size[n] = v
        n += 1
    return n, 0, 0, 0


def _kernel(buf, start, end, cols):
    return _parse(buf, start, end, cols["addr"], cols["op"], cols["size"])


def _describe(err, aux, text):
    if err == ERR_PREFIX:
        return ("expected a lackey line ('I  <hex>,<size>', ' L ', ' S ' or ' M ' "
                f"'<hex>,<size>', or '==PID==' message), found {shorten(text)!r}")
    prefix = _PREFIX.get(aux, "")
    rest = text[3:]
    if err == ERR_FIELD:
        return f"expected '<hex>,<size>' after {prefix!r}, found {shorten(rest)!r}"
    if err == ERR_SIZE:
        return (f"expected a decimal size after the ',' in '<hex>,<size>' "
                f"(after {prefix!r}), found {shorten(rest)!r}")
    if err == ERR_SIZE_RANGE:
        return f"access size must be 1 to {_MAX_SIZE} bytes, found {shorten(rest)!r}"
    if err == ERR_ADDR_RANGE:
        return f"address does not fit in 64 bits: {shorten(rest)!r}"
    return f"internal parser error {err} at {shorten(text)!r}"


def sniff(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) looks like lackey output."""
    lines = head.split(b"\n")
    if len(lines) > 1 and not head.endswith(b"\n"):
        lines = lines[:-1]  # a partial last line
    records = 0
    header = False
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line:
            continue
        if _RE_PID.match(line):
            header = header or b"Lackey" in line
            continue
        if not _RE_RECORD.match(line):
            return False
        records += 1
        if records == SNIFF_RECORDS:
            break  # (a bad line further on is the reader's to report, with its number)
    return records > 0 or header


_RE_PID = re.compile(rb"==\d+==")
_RE_RECORD = re.compile(rb"(I  | [LSM] )[0-9a-fA-F]+,\d+\Z")


def iter_chunks(path, *, chunk_records=1 << 22, show_progress=None, **options):
    """Yield dicts ``{"addr", "op", "size"}`` of numpy arrays, the records of at most
    ``chunk_records`` lines each (more where an access crosses a page boundary: its pieces).

    Options: ``block_bytes`` (bytes read at once, default 16 x ``chunk_records`` capped at
    64 MiB), ``threads`` (parser threads, default 2).  Raises
    :class:`~vmlab.errors.TraceFormatError` naming the file and line of the first bad line,
    or if the file holds no record.
    """
    check_options(options, _READ_OPTIONS, "lackey.iter_chunks")
    page_size = TraceMeta(page_size=options.get("page_size", 4096)).page_size   # checked
    path = check_file(path)
    total = 0
    for chunk in _text.parse_blocks(
            path, address_outputs, _kernel, _describe, min_line=_MIN_LINE, chunk_records=chunk_records,
            block_bytes=options.get("block_bytes"), threads=options.get("threads", 2),
            show_progress=show_progress, desc=f"lackey {path.name}"):
        # an access that crosses a page boundary: a record per page (the faults it takes)
        for piece in iter_page_crossings_split(chunk, page_size, chunk_records):
            total += len(piece["addr"])
            yield piece
    if total == 0:
        if path.stat().st_size == 0:
            raise _text.no_records_error(path)
        raise _text.no_records_error(path, "no records (only valgrind '==PID==' lines)")


def meta_for(path, **options) -> TraceMeta:
    """Metadata of a trace read from ``path``: source ``lackey:<file name>``."""
    return TraceMeta(page_size=options.get("page_size", 4096), source=f"lackey:{Path(path).name}")


# ------------------------------------------------------------------------------------
# writer


@njit
def _format(addr, op, size, out):
    j = 0
    for r in range(len(addr)):
        o = op[r]
        if o == 2:
            out[j] = 73
            out[j + 1] = 32
        else:
            out[j] = 32
            out[j + 1] = 76 if o == 0 else (83 if o == 1 else 77)
        out[j + 2] = 32
        j = _text.put_hex(out, j + 3, np.uint64(addr[r]), 8)
        out[j] = 44
        j = _text.put_dec(out, j + 1, np.uint64(size[r]))
        out[j] = 10
        j += 1
    return j


def write(trace, path, *, show_progress=None):
    """Write ``trace`` as lackey text (tid, asid, gap_ns and call are dropped: an access
    the kernel made becomes the program's).

    Addresses get at least 8 hex digits like valgrind's.  ``LOCK_W`` records and sizes 0
    cannot be written: a :class:`~vmlab.errors.TraceFormatError` names the first one.
    """
    n = len(trace)
    op, size, addr = trace.op, trace.size, trace.addr
    bad = _text.first_index(lambda lo, hi: op[lo:hi] > Op.MODIFY, n)
    if bad >= 0:
        raise TraceFormatError(
            f"record {bad} is {Op(int(op[bad])).name}, which lackey format cannot represent",
            path)
    bad = _text.first_index(lambda lo, hi: size[lo:hi] == 0, n)
    if bad >= 0:
        raise TraceFormatError(f"record {bad} has size 0, which lackey format cannot represent",
                               path)

    buf = np.empty(min(n, _text.WRITE_CHUNK) * 48, np.uint8)  # reused; 48 >= longest line

    def chunk(lo, hi):
        out = buf
        j = _format(addr[lo:hi], op[lo:hi], size[lo:hi], out)
        return out[:j]

    return _text.write_text(path, n, chunk, show_progress=show_progress,
                            desc=f"writing {Path(path).name}")
