"""Reader and writer for CSV traces with named columns.

Reading
-------
The first line is a header naming the columns, matched case-insensitively (surrounding
blanks and double quotes ignored) to ``tid``, ``asid``, ``addr``, ``op``, ``size``,
``gap_ns`` and ``call``, in any order.  Only ``addr`` is required; missing columns default to
tid 0, asid 0, op ``load``, size 8 (0 for ``lock_w`` and ``lock_r`` records, as
:class:`~vmlab.trace.model.Trace` does), no ``gap_ns`` and no ``call``.  An unknown column is an error listing the expected names, unless
``ignore_unknown=True`` (its values are then skipped unchecked).

Values: integers in decimal or ``0x`` hex (any column but ``op``); ``op`` is a name
(``load``, ``store``, ``ifetch``, ``modify``, ``lock_w``, ``lock_r``, also ``read``/``write``,
or the letters ``L S I M W R``; any case) or an integer code 0-5; ``call`` is a name
(``mmap``, ``munmap``, ``mprotect``, ``mremap``, ``brk``, ``kernel``, ``unknown``; any case)
or its code 0-6: on a ``lock_w`` record the system call it is (docs/model.md 15.12, one of
``unknown`` to ``brk``), on an access (``load``, ``store``, ``ifetch``, ``modify``)
``kernel`` if the kernel made it inside a system call (its fault has no
``FAULT_FLAG_USER``) or ``unknown`` (the program's own), on a ``lock_r`` record ``unknown``
only.  A value may be surrounded by
blanks and by double quotes (no commas or quotes inside).  Ranges: tid and size < 2^32,
asid < 4096 (the engine's limit, :data:`~vmlab.trace.model.MAX_ASIDS`), addr < 2^64,
gap_ns < 2^62 (a thread's gaps must also total below 2^62 ns); size 0 only for ``lock_w`` and ``lock_r`` records (a
``lock_r`` record's size is its hold in ns, 0 for the cost ``mmap_read_cs_ns``).  Blank lines are
skipped; ``\\r\\n`` line ends are accepted.  Every line needs exactly the header's number of
fields.  (Quoted fields spanning lines, as general CSV allows, are not supported.)  An access
whose ``size`` bytes cross a page boundary (option ``page_size``, default 4096) becomes a
record per page, as lackey's reader makes it (:func:`vmlab.trace.build.split_page_crossings`):
the CPU faults on each page it touches.

Errors name the file, the line and the column: ``trace.csv:12: column 'addr': expected a
decimal or 0x-hex integer, found 'zz'``; a call that does not fit its record says what the
record may carry: ``trace.csv:3: column 'call': a LOAD record has call code 1 (mmap); an
access is 0 (the program's own) or 6 (kernel: ...), found '0x1000,load,mmap'``.

Writing
-------
:func:`write` writes the header ``tid,asid,addr,op,size[,gap_ns][,call]``, addresses as ``0x``
hex, op and call as their lower-case names (``kernel`` on an access the kernel made), the
other columns in decimal.  It reads back identically (an access that crosses a page boundary
as its pieces).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..._numba import njit
from ...errors import TraceFormatError
from ..model import (ALL_COLUMNS, CALL_BY_NAME, GAP_LIMIT, GAP_LIMIT_TEXT, MAX_ASIDS, MAX_CALL,
                     MAX_SIZE, MAX_TID, MAX_WRITER_CALL, Call, Op, TraceMeta, call_misfit,
                     first_bad_record)
from ..build import iter_page_crossings_split
from . import _text
from ._text import ERR_CAPACITY, check_file, check_options, scan_hex, shorten

NAME = "csv"
#: gap_ns is present when the header has that column
WITH_GAP = False

# column codes used by the kernel (index into ALL_COLUMNS), -1 = ignored column
_TID, _ASID, _ADDR, _OP, _SIZE, _GAP, _CALL = range(7)
assert ALL_COLUMNS == ("tid", "asid", "addr", "op", "size", "gap_ns", "call")
#: each column's largest value (the trace's limits, vmlab.trace.model)
_MAXIMA = np.array([MAX_TID, MAX_ASIDS - 1, 2**64 - 1, 5, MAX_SIZE, GAP_LIMIT - 1, int(MAX_CALL)],
                   np.uint64)
#: why, where a message says it
_WHY = {_ASID: f"address-space ids are below {MAX_ASIDS}",
        _GAP: f"gaps are below {GAP_LIMIT_TEXT}"}
_DTYPES = (np.uint32, np.uint16, np.uint64, np.uint8, np.uint32, np.uint64, np.uint8)
#: shortest record line: "0\n"
_MIN_LINE = 2

ERR_VALUE = 1    # not an integer / unknown op name (aux: field index)
ERR_RANGE = 2    # out of the column's range (aux: field index)
ERR_FEW = 3      # fewer fields than the header (aux: fields found)
ERR_MANY = 4     # more fields than the header
ERR_SIZE0 = 5    # size 0 on a record that is not a lock record (aux: field index)
ERR_CALL = 6     # a call that does not fit its record (model.call_misfit; aux: field index)

_OP_NAMES = {"load": Op.LOAD, "store": Op.STORE, "ifetch": Op.IFETCH, "modify": Op.MODIFY,
             "lock_w": Op.LOCK_W, "lock_r": Op.LOCK_R, "read": Op.LOAD, "write": Op.STORE,
             "l": Op.LOAD, "s": Op.STORE, "i": Op.IFETCH, "m": Op.MODIFY, "w": Op.LOCK_W,
             "r": Op.LOCK_R}


def _pack(name):
    h = 0
    for ch in name.encode():
        h = (h << 8) | ch
    return h


_OP_KEYS = np.array([_pack(k) for k in _OP_NAMES], np.uint64)
_OP_CODES = np.array([int(v) for v in _OP_NAMES.values()], np.uint8)
_CALL_KEYS = np.array([_pack(c.name.lower()) for c in Call], np.uint64)
_CALL_CODES = np.array([int(c) for c in Call], np.uint8)
_KERNEL = np.uint64(int(Call.KERNEL))
_MAX_WRITER = np.uint64(int(MAX_WRITER_CALL))

#: The call names as the messages list them: the writers', the access's, unknown last.
_CALL_NAMES = ", ".join([n for n in CALL_BY_NAME if n != "unknown"] + ["unknown"])

_READ_OPTIONS = {"chunk_records", "show_progress", "block_bytes", "threads", "page_size",
                 "ignore_unknown"}

_U64_TENTH = np.uint64((2**64 - 1) // 10)
_U64_LAST = np.uint64((2**64 - 1) % 10)


@njit
def _blank(c):
    return c == 32 or c == 9


@njit
def _parse_int(buf, i):
    """Decimal or 0x-hex integer at ``buf[i]``: (value, end, status 0 ok/1 bad/2 overflow)."""
    v = np.uint64(0)
    status = 0
    if buf[i] == 48 and (buf[i + 1] == 120 or buf[i + 1] == 88):
        i += 2
        s = i
        v, i = scan_hex(buf, i)
        if i == s:
            return v, i, 1
        if i - s > 16:
            z = s
            while buf[z] == 48:
                z += 1
            if i - z > 16:
                status = 2
        return v, i, status
    s = i
    while True:
        c = buf[i]
        if c < 48 or c > 57:
            break
        d = np.uint64(c - 48)
        if v > _U64_TENTH or (v == _U64_TENTH and d > _U64_LAST):
            status = 2
        else:
            v = v * np.uint64(10) + d
        i += 1
    if i == s:
        return v, i, 1
    return v, i, status


@njit
def _parse_name(buf, i, keys, codes, top):
    """A name among ``keys`` (packed, lower case, at most 8 letters) or a code up to ``top``
    at ``buf[i]``: (code, end, status)."""
    c = buf[i]
    if 48 <= c <= 57:
        v, i, status = _parse_int(buf, i)
        if status != 0:
            return np.uint64(0), i, status
        if v > np.uint64(top):
            return v, i, 2
        return v, i, 0
    h = np.uint64(0)
    k = 0
    while True:
        c = buf[i]
        if 65 <= c <= 90:
            c += 32
        elif not (97 <= c <= 122 or c == 95):
            break
        h = (h << np.uint64(8)) | np.uint64(c)
        k += 1
        i += 1
    if k == 0 or k > 8:
        return np.uint64(0), i, 1
    for m in range(len(keys)):
        if keys[m] == h:
            return np.uint64(codes[m]), i, 0
    return np.uint64(0), i, 1


@njit
def _parse(buf, start, end, kinds, maxima, tid, asid, addr, op, size, gap, call):
    cap = len(addr)
    nf = len(kinds)
    has_size = False
    for f in range(nf):
        if kinds[f] == 4:
            has_size = True
    size_field = -1
    n = 0
    i = start
    while i < end:
        # blank line?
        j = i
        while _blank(buf[j]) or buf[j] == 13:
            j += 1
        if buf[j] == 10:
            i = j + 1
            continue
        line = i
        if n >= cap:
            return n, ERR_CAPACITY, line, 0
        o = np.uint64(0)
        sz = np.uint64(8)
        k_call = np.uint64(0)
        call_field = -1
        for f in range(nf):
            while _blank(buf[i]):
                i += 1
            quoted = buf[i] == 34
            if quoted:
                i += 1
            kind = kinds[f]
            if kind < 0:
                while buf[i] != 44 and buf[i] != 10:
                    i += 1
            else:
                if kind == 3:
                    v, i, status = _parse_name(buf, i, _OP_KEYS, _OP_CODES, 5)
                elif kind == 6:
                    v, i, status = _parse_name(buf, i, _CALL_KEYS, _CALL_CODES, MAX_CALL)
                else:
                    v, i, status = _parse_int(buf, i)
                if status == 0 and v > maxima[kind]:
                    status = 2
                if quoted:
                    if buf[i] == 34:
                        i += 1
                    else:
                        status = 1
                while _blank(buf[i]) or (buf[i] == 13 and buf[i + 1] == 10):
                    i += 1
                if status == 0 and buf[i] != 44 and buf[i] != 10:
                    status = 1
                if status != 0:
                    return n, status, line, f  # ERR_VALUE == 1, ERR_RANGE == 2
                if kind == 0:
                    tid[n] = v
                elif kind == 1:
                    asid[n] = v
                elif kind == 2:
                    addr[n] = v
                elif kind == 3:
                    o = v
                elif kind == 4:
                    sz = v
                    size_field = f
                elif kind == 5:
                    gap[n] = v
                else:
                    k_call = v
                    call_field = f
            c = buf[i]
            if f < nf - 1:
                if c != 44:
                    return n, ERR_FEW, line, f + 1
                i += 1
            elif c != 10:
                return n, ERR_MANY, line, 0
        i += 1
        if not has_size and o >= np.uint64(4):
            sz = np.uint64(0)      # a lock record (LOCK_W, LOCK_R)
        if sz == np.uint64(0) and o < np.uint64(4):
            return n, ERR_SIZE0, line, size_field
        if k_call != np.uint64(0) and (
                (o == np.uint64(4) and k_call > _MAX_WRITER) or o == np.uint64(5)
                or (o < np.uint64(4) and k_call != _KERNEL)):
            return n, ERR_CALL, line, call_field
        if call_field >= 0:
            call[n] = k_call
        op[n] = o
        size[n] = sz
        n += 1
    return n, 0, 0, 0


def _split_header(text):
    return [f.strip().strip('"').strip().lower() for f in text.split(",")]


def _read_header(path):
    """(column names, byte offset after the header line, header line number)."""
    with open(path, "rb") as f:
        offset = 0
        lineno = 0
        while True:
            raw = f.readline(1 << 20)
            lineno += 1
            if not raw:
                raise _text.no_records_error(
                    path, "no records" if offset == 0 else "no header line, no records")
            offset += len(raw)
            text = raw.decode("utf-8", "replace").lstrip("\ufeff").strip()
            if text:
                return _split_header(text), offset, lineno


def sniff(head: bytes) -> bool:
    """True if the first non-blank line is a CSV header with an ``addr`` column."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    for line in text.splitlines():
        if line.strip():
            names = _split_header(line)
            return "addr" in names and all(re.fullmatch(r"[a-z_][a-z0-9_ ]*", n) for n in names)
    return False


def _columns(path, names, lineno, ignore_unknown):
    kinds = []
    for name in names:
        if name in ALL_COLUMNS:
            if ALL_COLUMNS.index(name) in kinds:
                raise TraceFormatError(f"column {name!r} appears twice in the header", path,
                                       lineno)
            kinds.append(ALL_COLUMNS.index(name))
        elif ignore_unknown:
            kinds.append(-1)
        else:
            unknown = [n for n in names if n not in ALL_COLUMNS]
            raise TraceFormatError(
                f"unknown column(s) {', '.join(map(repr, unknown))} in the header; expected "
                f"names among {', '.join(ALL_COLUMNS)} (addr required; pass "
                "ignore_unknown=True to skip other columns)", path, lineno)
    if _ADDR not in kinds:
        raise TraceFormatError(
            f"the header has no 'addr' column (found {', '.join(map(repr, names))}); "
            f"expected names among {', '.join(ALL_COLUMNS)}", path, lineno)
    return np.array(kinds, np.int64)


def iter_chunks(path, *, chunk_records=1 << 22, show_progress=None, **options):
    """Yield dicts of numpy columns (addr, op, size, and tid/asid/gap_ns when in the header),
    the records of at most ``chunk_records`` lines each (more where an access crosses a page
    boundary: its pieces).

    Options: ``ignore_unknown`` (skip columns with other names instead of failing),
    ``block_bytes``, ``threads`` (see :mod:`vmlab.trace.readers._text`).
    """
    check_options(options, _READ_OPTIONS, "csv.iter_chunks")
    page_size = TraceMeta(page_size=options.get("page_size", 4096)).page_size   # checked
    path = check_file(path)
    names, offset, lineno = _read_header(path)
    kinds = _columns(path, names, lineno, bool(options.get("ignore_unknown", False)))
    present = [ALL_COLUMNS[k] for k in sorted(set(kinds.tolist()) - {-1})]
    keep = sorted(set(present) | {"op", "size"}, key=ALL_COLUMNS.index)

    def outputs(cap):
        return {name: np.empty(cap if name in keep else 0, dt)
                for name, dt in zip(ALL_COLUMNS, _DTYPES)}

    def kernel(buf, start, end, cols):
        return _parse(buf, start, end, kinds, _MAXIMA, *cols.values())

    def _op_and_call(fields):
        """The op and call codes of a line the parser read up to its call check."""
        def value(kind, names):
            k = kinds.tolist().index(kind)
            v = fields[k].strip().strip('"').strip().lower()
            return int(v, 16) if v.startswith("0x") else int(v) if v.isdigit() else names[v]
        return (value(_OP, _OP_NAMES) if _OP in kinds else Op.LOAD,
                value(_CALL, CALL_BY_NAME))

    def describe(err, aux, text):
        fields = text.rstrip("\r").split(",")
        if err in (ERR_VALUE, ERR_RANGE, ERR_SIZE0, ERR_CALL):
            name = names[aux] if 0 <= aux < len(names) else "?"
            value = fields[aux].strip() if aux < len(fields) else ""
            col = f"column {name!r}"
            if err == ERR_CALL:
                return f"{col}: {call_misfit(*_op_and_call(fields))}, found {shorten(text)!r}"
            if err == ERR_SIZE0:
                return (f"{col}: size 0 is only allowed for lock_w and lock_r records, found "
                        f"{shorten(text)!r}")
            if err == ERR_RANGE:
                limit = int(_MAXIMA[kinds[aux]])
                why = _WHY.get(int(kinds[aux]))
                return (f"{col}: value {shorten(value)!r} is out of range (0 to {limit}"
                        f"{': ' + why if why else ''})")
            if kinds[aux] == _OP:
                return (f"{col}: expected an operation (load, store, ifetch, modify, lock_w, "
                        f"lock_r, L, S, I, M, W, R or 0-5), found {shorten(value)!r}")
            if kinds[aux] == _CALL:
                return (f"{col}: expected a call ({_CALL_NAMES} or 0-{int(MAX_CALL)}), found "
                        f"{shorten(value)!r}")
            return f"{col}: expected a decimal or 0x-hex integer, found {shorten(value)!r}"
        if err == ERR_FEW:
            return (f"expected {len(names)} fields ({','.join(names)}), found {aux}: "
                    f"{shorten(text)!r}")
        if err == ERR_MANY:
            return (f"expected {len(names)} fields ({','.join(names)}), found more: "
                    f"{shorten(text)!r}")
        return f"internal parser error {err} at {shorten(text)!r}"

    total = 0
    for chunk in _text.parse_blocks(
            path, outputs, kernel, describe, min_line=_MIN_LINE, chunk_records=chunk_records,
            block_bytes=options.get("block_bytes"), threads=options.get("threads", 2),
            show_progress=show_progress, start_offset=offset, desc=f"csv {path.name}"):
        # an access that crosses a page boundary: a record per page (the faults it takes)
        for piece in iter_page_crossings_split({k: v for k, v in chunk.items() if k in keep},
                                               page_size, chunk_records):
            total += len(piece["addr"])
            yield piece
    if total == 0:
        raise _text.no_records_error(path, "no records after the header")


def meta_for(path, **options) -> TraceMeta:
    """Metadata of a trace read from ``path``: source ``csv:<file name>``."""
    return TraceMeta(page_size=options.get("page_size", 4096), source=f"csv:{Path(path).name}")


# ------------------------------------------------------------------------------------
# writer

def _name_table(names):
    raw = [n.lower().encode() for n in names]
    table = np.zeros((len(raw), 8), np.uint8)
    for k, b in enumerate(raw):
        table[k, :len(b)] = np.frombuffer(b, np.uint8)
    return table, np.array([len(b) for b in raw], np.int64)


_NAME_BYTES, _NAME_LEN = _name_table([op.name for op in Op])
_CALL_BYTES, _CALL_LEN = _name_table([c.name for c in Call])


@njit(inline="always")
def _put_name(out, j, table, lengths, k):
    """Write name ``k`` of a name table at ``out[j]``; the position after it."""
    for m in range(lengths[k]):
        out[j + m] = table[k, m]
    return j + lengths[k]


@njit
def _format(tid, asid, addr, op, size, gap, with_gap, call, with_call, out):
    j = 0
    for r in range(len(addr)):
        j = _text.put_dec(out, j, np.uint64(tid[r]))
        out[j] = 44
        j = _text.put_dec(out, j + 1, np.uint64(asid[r]))
        out[j] = 44
        out[j + 1] = 48
        out[j + 2] = 120
        j = _text.put_hex(out, j + 3, np.uint64(addr[r]), 1)
        out[j] = 44
        j += 1
        j = _put_name(out, j, _NAME_BYTES, _NAME_LEN, op[r])
        out[j] = 44
        j = _text.put_dec(out, j + 1, np.uint64(size[r]))
        if with_gap:
            out[j] = 44
            j = _text.put_dec(out, j + 1, np.uint64(gap[r]))
        if with_call:
            out[j] = 44
            j = _put_name(out, j + 1, _CALL_BYTES, _CALL_LEN, call[r])
        out[j] = 10
        j += 1
    return j


def write(trace, path, *, show_progress=None):
    """Write ``trace`` as CSV (header ``tid,asid,addr,op,size[,gap_ns][,call]``), atomically.

    A record that would not read back (outside the limits, :func:`~vmlab.trace.model.
    first_bad_record`, or a ``lock_w`` range of 4 GiB or more) is an error naming the first
    one.
    """
    n = len(trace)
    c = trace.columns
    bad = first_bad_record(c)
    if bad is not None:
        raise TraceFormatError(bad.message(), path)
    bad = _text.first_index(
        lambda lo, hi: (c["size"][lo:hi] > MAX_SIZE) & (c["op"][lo:hi] == Op.LOCK_W), n)
    if bad >= 0:
        raise TraceFormatError(
            f"column 'size': record {bad} is a LOCK_W range of {int(c['size'][bad])} bytes; "
            f"a CSV trace holds sizes up to {MAX_SIZE} (2**32-1)", path)
    with_gap = trace.has_gap
    with_call = trace.has_call
    header = (b"tid,asid,addr,op,size" + (b",gap_ns" if with_gap else b"")
              + (b",call" if with_call else b"") + b"\n")
    empty = np.zeros(0, np.uint64)
    empty8 = np.zeros(0, np.uint8)

    buf = np.empty(min(n, _text.WRITE_CHUNK) * 112, np.uint8)  # reused; 112 >= longest line

    def chunk(lo, hi):
        out = buf
        gap = c["gap_ns"][lo:hi] if with_gap else empty
        call = c["call"][lo:hi] if with_call else empty8
        j = _format(c["tid"][lo:hi], c["asid"][lo:hi], c["addr"][lo:hi], c["op"][lo:hi],
                    c["size"][lo:hi], gap, with_gap, call, with_call, out)
        return out[:j]

    return _text.write_text(path, n, chunk, header=header, show_progress=show_progress,
                            desc=f"writing {Path(path).name}")
