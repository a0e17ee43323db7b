"""The columnar trace model shared by every reader, writer, generator and the engine.

A trace is a set of equally long columns, one entry per record:

===========  =========  =====================================================
column       dtype      meaning
===========  =========  =====================================================
``tid``      unsigned   thread id (dense or not; the engine maps them)
``asid``     unsigned   address-space id (one ``mmap_sem`` each; default 0)
``addr``     uint64     virtual address
``op``       uint8      an :class:`Op` code
``size``     unsigned   access size in bytes; for ``LOCK_W``, the length of the
                        range the call modifies (0: the whole address space);
                        for ``LOCK_R``, the read hold in ns (0: the cost
                        ``mmap_read_cs_ns``)
``gap_ns``   unsigned   optional: compute time since the same thread's
                        previous record, in nanoseconds
``call``     uint8      optional: for a ``LOCK_W`` record, the system call it is
                        (a :class:`Call` code; 0 ``UNKNOWN``); for an access,
                        ``KERNEL`` if the kernel made it inside a system call
                        (its fault is not the user's: no ``FAULT_FLAG_USER``),
                        else 0; 0 on a ``LOCK_R``; absent: every writer
                        ``UNKNOWN``, every access the program's own
===========  =========  =====================================================

Why a column of its own for the call, and not bits of an existing field: ``op`` is compared
with ``Op.LOCK_W`` in every layer (bits there would change what every such test means),
``addr`` and ``size`` carry the writer's full 64-bit range, and ``gap_ns`` is a time.  An
optional ``uint8`` column costs nothing for a trace without it (every trace written before
writers named their call) and one byte a record for one with it.

Columns may be memory-mapped (see :func:`vmlab.trace.native.open_trace`), so a trace of
10^9 records costs no memory until it is read.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from ..errors import TraceFormatError


class Op(enum.IntEnum):
    """Operation codes of a trace record.

    ``LOCK_W`` is not a memory access: the thread takes ``mmap_sem`` for write for
    ``mmap_cs_ns`` (an mmap/munmap/mprotect call), as MODEL.md section 2 defines it.  Its
    ``addr`` and ``size`` are the range ``[addr, addr + size)`` the call modifies (munmap,
    mprotect, mremap's source, brk's change, or a new mapping); ``size`` 0 means the whole
    address space, the meaning every ``LOCK_W`` had before writers named their range (a real
    call never has length 0).  docs/model.md section 15.2 says which VMAs such a writer
    write-locks.

    ``LOCK_R`` is not a memory access either: the thread takes its address space's
    ``mmap_sem`` for read, holds it, and releases it (a reader that is not a fault: a read
    of ``/proc/PID/maps``, ``madvise``, ``mincore``, ``get_user_pages``).  Its ``size`` is
    the hold in nanoseconds, 0 meaning the cost ``mmap_read_cs_ns``; its ``addr`` is
    informative only (the range the call names, if any): a reader locks no VMA.
    docs/model.md section 15.9 fixes its semantics.
    """

    LOAD = 0
    STORE = 1
    IFETCH = 2
    MODIFY = 3
    LOCK_W = 4
    LOCK_R = 5


class Call(enum.IntEnum):
    """The system call a ``LOCK_W`` record is, or the one an access is made in (the trace's
    optional ``call`` column).

    It decides the writer's hold of ``mmap_lock`` when the record does not say it (a cost per
    call: ``Costs.hold_mmap_ns``...) and, under Dufour's per-VMA count
    (``spf_count="change"``), where in that hold the call changes its VMA: docs/model.md
    15.12.  ``UNKNOWN`` is the meaning every ``LOCK_W`` had before records named their call
    (a hold of ``mmap_cs_ns``, the change at the grant).  ``BRK`` is a ``brk`` that grows the
    heap; one that shrinks it unmaps the heap's tail (the kernel's ``do_vmi_munmap``) and is
    an ``MUNMAP``.

    ``KERNEL`` is the one code an access may carry: the kernel made the access itself, inside
    a system call of the thread (``copy_to_user`` into ``read()``'s buffer, ``put_user``, the
    ELF loader clearing a segment's tail at ``execve``).  Its fault is taken in kernel mode,
    without ``FAULT_FLAG_USER``, and every arch handler since 6.4 sends such a fault straight
    to ``mmap_lock`` (``if (!(flags & FAULT_FLAG_USER)) goto lock_mmap;``): docs/model.md
    15.3.  A recording marks the accesses it knows the kernel made (``vmlab record``: the
    perf reader's ``exceptions:page_fault_kernel`` samples, lackey's stores of a system call).
    """

    UNKNOWN = 0
    MMAP = 1
    MUNMAP = 2
    MPROTECT = 3
    MREMAP = 4
    BRK = 5
    KERNEL = 6


#: The calls whose change to their VMA comes at the end of their hold of ``mmap_lock``:
#: ``mmap`` merges into (``vma_merge_new_range``/``vma_expand``) or links its VMA after its
#: search for a gap, a growing ``brk`` extends the heap VMA after its checks
#: (``do_brk_flags``).  ``munmap`` splits first (``__split_vma`` before the detach and the
#: zap), ``mprotect`` splits or merges and sets the flags before its PTE walk, ``mremap``
#: starts its change (the shrink's unmap, the growth's expand, the move's copy of the VMA)
#: at once: their change is at the grant, as every writer's is when its call is unknown.
#: docs/model.md 15.12.
CHANGE_AT_RELEASE = frozenset({Call.MMAP, Call.BRK})

#: The calls that downgrade ``mmap_lock`` to read before the long part of their hold: an
#: ``munmap`` (and a ``brk`` that lowers the break, which is one) detaches its VMAs holding it
#: for write, then ``mmap_write_downgrade()`` (which ends the VMA write locks) and zaps the
#: pages and frees the page tables holding it for read (since 4.20; ``do_vmi_align_munmap``
#: with ``unlock``).  An ``mremap`` that shrinks in place is one too (``mremap_at()`` ->
#: ``shrink_vma()`` unmaps the tail with ``unlock``): the perf reader names it ``MUNMAP``; an
#: ``MREMAP`` record is a move or a growth, which keeps the write lock.  docs/model.md 15.13.
DOWNGRADES = frozenset({Call.MUNMAP})

#: The largest :class:`Call` code.
MAX_CALL = max(Call)
#: The largest code a ``LOCK_W`` record may carry (the writers' calls).
MAX_WRITER_CALL = Call.BRK
CALL_BY_NAME = {c.name.lower(): c for c in Call}


def parse_call(name):
    """The :class:`Call` for a name (``"mmap"``, ``"munmap"``, ``"mprotect"``, ``"mremap"``,
    ``"brk"``, ``"kernel"``, ``"unknown"``, any case) or a code."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        if 0 <= int(name) <= MAX_CALL:
            return Call(int(name))
    elif isinstance(name, str) and name.strip().lower() in CALL_BY_NAME:
        return CALL_BY_NAME[name.strip().lower()]
    raise ValueError(f"unknown call {name!r}; expected one of "
                     f"{', '.join(CALL_BY_NAME)} (or a code 0 to {int(MAX_CALL)})")


def bad_call_record(op, call, max_call=MAX_CALL):
    """Index of the first record whose ``call`` code does not fit its record, or -1: a code
    over ``max_call`` (:data:`MAX_CALL`; :data:`MAX_WRITER_CALL` in a file older than
    ``KERNEL``), ``KERNEL`` on a ``LOCK_W``, a writer's call on an access, anything but 0 on
    a ``LOCK_R`` (vectorised: one pass over both columns)."""
    call = np.asarray(call)
    if not len(call):
        return -1
    if not call.any():
        return -1
    op = np.asarray(op)
    lock_w = op == Op.LOCK_W
    bad = (call > max_call) | (lock_w & (call == Call.KERNEL)) | (
        ~lock_w & (call != 0) & ((call != Call.KERNEL) | (op >= FIRST_LOCK_OP)))
    return int(np.argmax(bad)) if bad.any() else -1


def call_misfit(op, call):
    """Why call code ``call`` (at most :data:`MAX_CALL`) does not fit a record of op code
    ``op``, and what such a record carries (one clause, for a message), or None if it fits."""
    c, o = int(call), int(op)
    if bad_call_record(np.array([o]), np.array([c])) < 0:
        return None
    name = Call(c).name.lower()
    if o == Op.LOCK_W:
        return (f"a LOCK_W record has call code {c} ({name}); a writer names one of 0 to "
                f"{int(MAX_WRITER_CALL)} (unknown, mmap, munmap, mprotect, mremap, brk)")
    if o == Op.LOCK_R:
        return f"a LOCK_R record has call code {c} ({name}); a reader names no call (0)"
    return (f"a {Op(o).name} record has call code {c} ({name}); an access is 0 (the "
            f"program's own) or {int(Call.KERNEL)} (kernel: made by the kernel in a system "
            "call)")


def call_error(op, call, i, max_call=MAX_CALL, older=" in this version"):
    """The one-line message for :func:`bad_call_record`'s record ``i`` (``older`` ends the
    list of codes when ``max_call`` is that of an older file version)."""
    c = int(call[i])
    if c > max_call:
        return (f"record {i}: call code {c} is not one of 0 to {int(max_call)} "
                f"({', '.join(n for n, k in CALL_BY_NAME.items() if k <= max_call)}"
                f"{'' if max_call == MAX_CALL else older})")
    return f"record {i}: {call_misfit(op[i], c)}"


#: The record kinds that are lock operations, not memory accesses: every op code from
#: ``LOCK_W`` up (``op >= FIRST_LOCK_OP``), so that a test over a column stays one compare.
FIRST_LOCK_OP = Op.LOCK_W

# -- the value limits of a record ------------------------------------------------------------
# One place for them: every reader, the .vmt writer and verifier, and Trace itself refuse a
# record outside them (first_bad_record), so whatever vmlab reads it can write, read back and
# replay.  README "What is checked on input", docs/model.md section 1 "Limits".

#: The largest op code.
MAX_OP = int(max(Op))
#: Largest size of an access (bytes) and of a ``LOCK_R`` hold (ns); a ``LOCK_W``'s size is
#: the length of its range, any 64-bit value.
MAX_SIZE = (1 << 32) - 1
#: Largest thread id (the ``tid`` column is 32 bits).
MAX_TID = (1 << 32) - 1
#: Address-space ids are below this: the engine keys a page by ``asid << 52 | vpn`` in 64
#: bits (12 asid bits) and keeps per-address-space lock queues of one row per thread.
ASID_BITS = 12
MAX_ASIDS = 1 << ASID_BITS
#: Every ``gap_ns``, and the total of one thread's gaps, is below this (2**62 ns, 146 years):
#: the engine adds a thread's gaps and the run's costs in int64, each below 2**62.
GAP_LIMIT = 1 << 62
#: Gaps adding up to less than this in all (float64 sums, exact within a part in 2**30 here)
#: keep every thread's total below :data:`GAP_LIMIT`: the threads' totals need not be followed.
GAP_SUM_SAFE = GAP_LIMIT * (1 - 2.0 ** -20)
#: How the limits read in messages.
GAP_LIMIT_TEXT = "2**62 ns (146 years)"
_OP_NAMES_TEXT = ", ".join(op.name.lower() for op in Op)


@dataclass(frozen=True)
class BadRecord:
    """The first record outside the limits: its index, the column at fault, and what is
    wrong (``reason`` names the record: ``"record 3 has op code 9; expected 0 to 5 ..."``).
    ``damage`` is true for values vmlab never wrote in any version (an undefined op or call
    code, a size-0 access): in a ``.vmt`` file they mean the file is damaged."""

    index: int
    column: str
    reason: str
    damage: bool

    def message(self):
        """One line: ``column 'op': record 3 has op code 9; expected 0 to 5 (...)``."""
        return f"column {self.column!r}: {self.reason}"


def first_bad_record(columns, max_op=MAX_OP, older=" in this version", step=1 << 20,
                     max_call=MAX_CALL):
    """The :class:`BadRecord` of the first record of ``columns`` (a mapping of column name
    to array; ``tid``, ``asid``, ``gap_ns``, ``call`` optional) outside the limits, or None.

    Refused: an op code over ``max_op``; an access (not ``LOCK_W``/``LOCK_R``) of size 0 or
    over :data:`MAX_SIZE`, a ``LOCK_R`` hold over :data:`MAX_SIZE`; a tid over
    :data:`MAX_TID`; an asid of :data:`MAX_ASIDS` or more; a ``gap_ns`` of
    :data:`GAP_LIMIT` or more; a call code that does not fit its record, or over
    ``max_call`` (:func:`bad_call_record`).  (``older`` ends the list of op or call codes
    when ``max_op`` or ``max_call`` is that of an older file version.)  Block by block: a
    few SIMD reductions clear a block at memory speed, only a block that fails one is looked
    at record by record.  (A thread's total of
    gaps is :func:`first_gap_total_over`'s.)"""
    op, size = columns["op"], columns["size"]
    tid, asid = columns.get("tid"), columns.get("asid")
    gap, call = columns.get("gap_ns"), columns.get("call")
    n = len(op)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        o = np.asarray(op[lo:hi])
        z = np.asarray(size[lo:hi])
        found = []          # (index in block, order, BadRecord maker)
        if o.max() > max_op:
            k = int(np.argmax(o > max_op))
            found.append((k, 0, lambda k, v=int(o[k]): BadRecord(
                lo + k, "op", f"record {lo + k} has op code {v}; expected 0 to {max_op} "
                f"({', '.join(x.name.lower() for x in Op if x <= max_op)}"
                f"{'' if max_op == MAX_OP else older})", True)))
        if z.min() == 0 or z.max() > MAX_SIZE:
            bad = ((z == 0) & (o < FIRST_LOCK_OP)) | ((z > MAX_SIZE) & (o != Op.LOCK_W))
            if bad.any():
                k = int(np.argmax(bad))
                found.append((k, 1, lambda k, v=int(z[k]), w=int(o[k]): _bad_size(lo + k, w, v)))
        for rank, (name, col, top, want) in enumerate((
                ("tid", tid, MAX_TID, "a thread id below 2**32"),
                ("asid", asid, MAX_ASIDS - 1,
                 f"an address-space id below {MAX_ASIDS} (the engine keys pages by "
                 f"{ASID_BITS} asid bits)"),
                ("gap_ns", gap, GAP_LIMIT - 1, f"a gap below {GAP_LIMIT_TEXT}")), start=2):
            if col is None or np.iinfo(col.dtype).max <= top:
                continue
            c = np.asarray(col[lo:hi])
            if c.max() > top:
                k = int(np.argmax(c > top))
                found.append((k, rank, lambda k, name=name, v=int(c[k]), want=want: BadRecord(
                    lo + k, name, f"record {lo + k} has {name} {v}; expected {want}", False)))
        if call is not None:
            k = bad_call_record(o, np.asarray(call[lo:hi]), max_call)
            if k >= 0:
                found.append((k, 5, lambda k, c=np.asarray(call[lo:hi]): BadRecord(
                    lo + k, "call", call_error(o, c, k, max_call, older).replace(
                        f"record {k}", f"record {lo + k}", 1), True)))
        if found:
            k, _rank, make = min(found, key=lambda f: (f[0], f[1]))
            return make(k)
    return None


def _bad_size(i, o, z):
    if z == 0:
        return BadRecord(i, "size", f"record {i} is a {Op(o).name} of size 0; only lock_w and "
                         "lock_r records have size 0", True)
    what = "a LOCK_R hold of" if o == Op.LOCK_R else f"a {Op(o).name} of size"
    unit = " ns" if o == Op.LOCK_R else ""
    return BadRecord(i, "size", f"record {i} is {what} {z}{unit}; expected at most "
                     f"{MAX_SIZE} (2**32-1{unit}; only a lock_w range may be longer)", False)


def first_gap_total_over(tid, gap, limit=GAP_LIMIT, step=1 << 20):
    """``(record, tid)`` of the first record at which its thread's gaps (``gap_ns``, each
    below ``limit``) add up to ``limit`` or more, or None.

    The sum of the whole column bounds every thread's: when it stays below ``limit`` (every
    real trace: 2**62 ns is 146 years) one pass over the column, block by block, decides.
    Only otherwise are the threads' running totals followed, in Python ints (no
    overflow)."""
    n = len(gap)
    if n == 0:
        return None
    total = 0
    for lo in range(0, n, step):
        total += float(np.sum(np.asarray(gap[lo:lo + step]), dtype=np.float64))
    if total < limit * (GAP_SUM_SAFE / GAP_LIMIT):
        return None
    running = {}
    for lo in range(0, n, step):
        g = np.asarray(gap[lo:lo + step])
        t = np.asarray(tid[lo:lo + step]) if tid is not None else np.zeros(len(g), np.uint8)
        first = None
        for u in np.unique(t).tolist():
            sel = np.flatnonzero(t == u)
            csum = np.cumsum(g[sel].astype(object)) + running.get(u, 0)
            over = np.flatnonzero(csum >= limit)
            if len(over) and (first is None or int(sel[over[0]]) < first[0]):
                first = (int(sel[over[0]]), u)
            running[u] = int(csum[-1])
        if first is not None:
            return lo + first[0], first[1]
    return None


def is_access(op):
    """True where ``op`` (a code or an array of codes) is a memory access, not a lock
    operation (``LOCK_W``, ``LOCK_R``)."""
    return np.asarray(op) < FIRST_LOCK_OP


#: Where a ``LOCK_W`` record puts a new mapping whose address the trace does not know (an
#: ``mmap`` with no hint: the kernel picks a hole, and the call modifies no VMA): the first
#: address of the kernel half of a 64-bit address space, above every user VMA.
NEW_MAPPING_ADDR = 1 << 63


def names_pages(op, addr, size):
    """True where a record names pages of its address space: every memory access, and each
    ``LOCK_W`` whose range is the region it maps or unmaps.  A ``LOCK_W`` for the whole
    address space (size 0) or for a new mapping at :data:`NEW_MAPPING_ADDR` names no page,
    and a ``LOCK_R``'s address is informative only: such records say nothing about where
    the mappings are (VMA inference and a trace's summary skip them)."""
    op = np.asarray(op)
    keep = op < FIRST_LOCK_OP
    lw = op == Op.LOCK_W
    if lw.any():
        keep = keep | (lw & (np.asarray(size) != 0) &
                       (np.asarray(addr) < np.uint64(NEW_MAPPING_ADDR)))
    return keep


#: One-letter names used by text formats and summaries.
OP_LETTERS = {Op.LOAD: "L", Op.STORE: "S", Op.IFETCH: "I", Op.MODIFY: "M", Op.LOCK_W: "W",
              Op.LOCK_R: "R"}
OP_BY_NAME = {}
for _op in Op:
    OP_BY_NAME[_op.name.lower()] = _op
    OP_BY_NAME[OP_LETTERS[_op]] = _op
    OP_BY_NAME[OP_LETTERS[_op].lower()] = _op
OP_BY_NAME.update({"read": Op.LOAD, "write": Op.STORE, "ifetch": Op.IFETCH, "lock_w": Op.LOCK_W,
                   "lock_r": Op.LOCK_R})

#: Required columns and the dtype kind each must have ("u": unsigned integer).
REQUIRED_COLUMNS = ("tid", "asid", "addr", "op", "size")
OPTIONAL_COLUMNS = ("gap_ns", "call")
ALL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
#: The dtype a column gets when vmlab builds it without a better choice.
DEFAULT_DTYPES = {
    "tid": np.uint32,
    "asid": np.uint16,
    "addr": np.uint64,
    "op": np.uint8,
    "size": np.uint32,
    "gap_ns": np.uint64,
    "call": np.uint8,
}


def parse_op(name):
    """Return the :class:`Op` for a name such as ``"load"``, ``"S"`` or ``"lock_w"``."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        if 0 <= int(name) <= max(Op):
            return Op(int(name))
        name = int(name)
    try:
        return OP_BY_NAME[str(name).strip()] if str(name).strip() in OP_BY_NAME else OP_BY_NAME[str(name).strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown operation {name!r}; expected one of load, store, ifetch, modify, lock_w, "
            "lock_r (or L, S, I, M, W, R)"
        ) from None


#: Page sizes a trace may declare.  Below 512 bytes a 64-bit address's page number would
#: not leave the engine's int64 page ids room; above 1 GiB no MMU maps pages.
MIN_PAGE_SIZE = 1 << 9
MAX_PAGE_SIZE = 1 << 30


@dataclass(frozen=True)
class TraceMeta:
    """Metadata carried by a trace.

    Attributes
    ----------
    page_size : int
        Bytes per page (a power of two from 512 to 1 GiB); default 4096.
    source : str
        Where the trace came from (a command line, a generator call...).
    notes : str
        Free-form notes.
    """

    page_size: int = 4096
    source: str = ""
    notes: str = ""

    def __post_init__(self):
        ps = self.page_size
        if (isinstance(ps, bool) or not isinstance(ps, (int, np.integer))
                or not MIN_PAGE_SIZE <= ps <= MAX_PAGE_SIZE or (ps & (ps - 1)) != 0):
            raise TraceFormatError(
                f"page_size must be a power of two from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE} "
                f"(1 GiB), got {ps!r}")
        for name in ("source", "notes"):
            if not isinstance(getattr(self, name), str):
                raise TraceFormatError(f"{name} must be a string, got "
                                       f"{type(getattr(self, name)).__name__}")


class Trace:
    """A columnar memory-access trace.

    Parameters
    ----------
    addr : array_like of uint64
        Virtual addresses.
    op : array_like of uint8, optional
        :class:`Op` codes; default all ``LOAD``.
    tid, asid : array_like of unsigned int, optional
        Thread and address-space ids; default all 0.
    size : array_like of unsigned int, optional
        Access sizes in bytes; default 8 (0 for ``LOCK_W``: the whole address space; 0 for
        ``LOCK_R``: a hold of ``mmap_read_cs_ns``).
    gap_ns : array_like of unsigned int, optional
        Compute time since the same thread's previous record.
    call : array_like of unsigned int, optional
        Each ``LOCK_W`` record's :class:`Call` code (0 on every other record); default
        none (every writer ``UNKNOWN``).
    meta : TraceMeta, optional
        Page size, source and notes.
    mappings : vmlab.trace.mappings.Mappings, optional
        The mappings of the recorded run and the page-cache state of its files
        (``vmlab record``); ``None`` for traces that do not carry them.

    The arrays are kept as given when they already have an unsigned dtype (no copy), so a
    trace can wrap memory-mapped columns.
    """

    __slots__ = ("columns", "meta", "mappings", "_n_threads", "_checked", "__weakref__")

    def __init__(self, addr, op=None, tid=None, asid=None, size=None, gap_ns=None, meta=None,
                 *, call=None, mappings=None, _n_threads=None, _checked=False):
        mapped = any(isinstance(c, np.memmap) for c in (addr, op, tid, asid, size, gap_ns, call))
        addr = _as_unsigned("addr", addr, np.uint64)
        n = len(addr)
        cols = {"addr": addr}
        cols["op"] = (np.zeros(n, np.uint8) if op is None else _as_unsigned("op", op, np.uint8))
        cols["tid"] = np.zeros(n, np.uint32) if tid is None else _as_unsigned("tid", tid, np.uint32)
        cols["asid"] = np.zeros(n, np.uint16) if asid is None else _as_unsigned("asid", asid, np.uint16)
        if size is not None:
            cols["size"] = _as_unsigned("size", size, np.uint32)
        if gap_ns is not None:
            cols["gap_ns"] = _as_unsigned("gap_ns", gap_ns, np.uint64)
        if call is not None:
            cols["call"] = _as_unsigned("call", call, np.uint8)
        for name, col in cols.items():
            if len(col) != n:
                raise TraceFormatError(f"column {name!r} has {len(col)} records, addr has {n}")
        if size is None:
            size = np.full(n, 8, np.uint32)
            size[cols["op"] >= FIRST_LOCK_OP] = 0
            cols["size"] = size
        # read-only: a column replaced after the length checks could not be trusted
        self.columns = MappingProxyType({k: cols[k] for k in ALL_COLUMNS if k in cols})
        if meta is not None and not isinstance(meta, TraceMeta):
            raise TraceFormatError(f"meta must be a TraceMeta (TraceMeta(page_size=..., "
                                   f"source=...)), got {meta!r}")
        self.meta = meta if meta is not None else TraceMeta()
        self.mappings = mappings
        self._n_threads = _n_threads
        self._checked = bool(_checked)
        if not self._checked and not mapped:
            # (memory-mapped columns are checked by the native reader's verify pass, or by
            # check() before a replay: reading them here would defeat the mapping)
            self.check()

    def check(self, path=None):
        """Raise :class:`TraceFormatError` (naming ``path`` if given, the column and the
        first bad record) if a record is outside the limits (:func:`first_bad_record`) or a
        thread's gaps add up to :data:`GAP_LIMIT` or more (:func:`first_gap_total_over`);
        else mark the trace checked.  Every trace built from arrays is checked when it is
        built; the engine checks one that is not (a ``.vmt`` opened with ``verify=False``)
        before its replay."""
        if self._checked:
            return
        check_columns(self.columns, path)
        self._checked = True

    def __reduce__(self):  # the read-only mapping does not pickle; rebuild from its columns
        return (_rebuild, (dict(self.columns), self.meta, self._n_threads, self._checked))

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_columns(cls, columns, meta=None, *, n_threads=None, mappings=None, _checked=False):
        """Build a trace from a mapping of column name to array (see the module docstring).
        ``_checked``: the columns are known to be within the limits (a verified file, a part
        of a checked trace)."""
        unknown = set(columns) - set(ALL_COLUMNS)
        if unknown:
            raise TraceFormatError(
                f"unknown column(s) {sorted(unknown)}; expected {', '.join(ALL_COLUMNS)}")
        if "addr" not in columns:
            raise TraceFormatError("a trace needs an 'addr' column")
        return cls(meta=meta, mappings=mappings, _n_threads=n_threads, _checked=_checked,
                   **dict(columns))

    # -- access -------------------------------------------------------------------------
    def __len__(self):
        return len(self.columns["addr"])

    def __getattr__(self, name):
        if name in ALL_COLUMNS:
            cols = object.__getattribute__(self, "columns")
            return cols.get(name)
        raise AttributeError(name)

    @property
    def n_records(self):
        return len(self)

    @property
    def has_gap(self):
        return "gap_ns" in self.columns

    @property
    def has_call(self):
        """Whether the trace has a ``call`` column (its writers name their system call)."""
        return "call" in self.columns

    def calls(self):
        """Each record's :class:`Call` code as a uint8 array (all 0 without a ``call``
        column)."""
        c = self.columns.get("call")
        return np.zeros(len(self), np.uint8) if c is None else c

    def kernel_made(self):
        """Whether each record is an access the kernel made in a system call (``call`` is
        ``KERNEL``: its fault has no ``FAULT_FLAG_USER``), as a bool array."""
        c = self.columns.get("call")
        return np.zeros(len(self), bool) if c is None else np.asarray(c) == Call.KERNEL

    @property
    def page_size(self):
        return self.meta.page_size

    @property
    def n_threads(self):
        """Number of distinct thread ids."""
        if self._n_threads is None:
            self._n_threads = int(len(np.unique(self.columns["tid"]))) if len(self) else 0
        return self._n_threads

    def pages(self):
        """Virtual page numbers (``addr // page_size``) as uint64."""
        shift = int(self.meta.page_size).bit_length() - 1
        return self.columns["addr"] >> np.uint64(shift)

    def with_meta(self, **changes):
        """A trace sharing these columns with some metadata fields changed."""
        return Trace.from_columns(self.columns, replace(self.meta, **changes),
                                  n_threads=self._n_threads, mappings=self.mappings,
                                  _checked=self._checked)

    def __getitem__(self, key):
        """Slice or boolean/integer index; returns a new trace (views for slices).

        A contiguous slice keeps the mappings, renumbered to the slice's records; any other
        selection drops them (record numbers no longer say when a mapping existed).
        """
        if isinstance(key, (int, np.integer)):
            raise TypeError("index a trace with a slice or an array; use trace.record(i) for one")
        cols = {k: v[key] for k, v in self.columns.items()}
        mappings = None
        if self.mappings is not None and isinstance(key, slice) and key.step in (None, 1):
            lo, hi, _ = key.indices(len(self))
            mappings = self.mappings.window(lo, max(lo, hi))
        # (a part of a checked trace is within the limits: its threads' gaps add up to
        # no more than the whole's)
        return Trace.from_columns(cols, self.meta, mappings=mappings, _checked=self._checked)

    def record(self, i):
        """Record ``i`` as a dict of Python scalars."""
        out = {k: int(v[i]) for k, v in self.columns.items()}
        out["op"] = Op(out["op"])
        if "call" in out:
            out["call"] = Call(out["call"])
        return out

    def save(self, path, **kwargs):
        """Write this trace in vmlab's native format (see :mod:`vmlab.trace.native`)."""
        from .native import save_trace

        return save_trace(self, path, **kwargs)

    def __repr__(self):
        cols = ", ".join(f"{k}:{v.dtype}" for k, v in self.columns.items())
        return (f"<Trace {len(self):,} records, page_size={self.meta.page_size}, "
                f"columns=[{cols}], source={self.meta.source!r}>")

    def equals(self, other):
        """True when both traces have the same records (values, not dtypes) and page size."""
        if len(self) != len(other) or self.meta.page_size != other.meta.page_size:
            return False
        if self.has_gap != other.has_gap or self.has_call != other.has_call:
            return False
        return all(np.array_equal(v, other.columns[k]) for k, v in self.columns.items())


def check_columns(columns, path=None, max_op=MAX_OP, older=" in this version",
                  max_call=MAX_CALL):
    """Raise :class:`TraceFormatError` (naming ``path`` if given) for the first record of
    ``columns`` outside the limits (:func:`first_bad_record`: ``column 'op': record 3 has op
    code 9; ...``, ``: the file is damaged`` after a value no vmlab writes when ``path`` is
    given) or the first record at which a thread's gaps add up to :data:`GAP_LIMIT`."""
    bad = first_bad_record(columns, max_op, older, max_call=max_call)
    if bad is not None:
        raise TraceFormatError(
            bad.message() + (": the file is damaged" if bad.damage and path is not None else ""),
            path)
    gap = columns.get("gap_ns")
    if gap is not None:
        over = first_gap_total_over(columns.get("tid"), gap)
        if over is not None:
            raise TraceFormatError(gap_total_error(*over), path)


def gap_total_error(i, tid):
    """The message for :func:`first_gap_total_over`'s ``(record, tid)``."""
    return (f"column 'gap_ns': record {i}: the gaps of thread {tid} add up to "
            f"{GAP_LIMIT_TEXT} or more by this record; a thread's gaps must total below "
            f"{GAP_LIMIT_TEXT}")


def _rebuild(columns, meta, n_threads, checked=False):
    return Trace.from_columns(columns, meta, n_threads=n_threads, _checked=checked)


def _as_unsigned(name, values, default_dtype):
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TraceFormatError(f"column {name!r} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "u":
        # a big-endian column (np.fromfile(..., ">u8")) in this machine's order: the engine
        # reads native integers only
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind in "ib" or (arr.dtype.kind == "O" and len(arr) == 0) or len(arr) == 0:
        if len(arr) and arr.dtype.kind == "i" and arr.min() < 0:
            bad = int(np.argmax(arr < 0))
            raise TraceFormatError(
                f"column {name!r} must be non-negative; record {bad} is {int(arr[bad])}")
        if len(arr) and arr.dtype.kind == "i" and int(arr.max()) > np.iinfo(default_dtype).max:
            # wider than the default (a LOCK_W range of 4 GiB or more): widen, never wrap
            return arr.astype(narrow_dtype(int(arr.max())))
        return arr.astype(default_dtype)
    raise TraceFormatError(
        f"column {name!r} must hold unsigned integers, got dtype {arr.dtype}")


def narrow_dtype(max_value, minimum=np.uint8):
    """Smallest unsigned dtype (at least ``minimum``) that holds ``max_value``."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if np.dtype(dt).itemsize < np.dtype(minimum).itemsize:
            continue
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise OverflowError(max_value)


def lock_w_ranges(trace):
    """The ranges the ``LOCK_W`` records of ``trace`` modify, as three arrays
    ``(index, start, end)`` (``end`` exclusive, uint64; a record of size 0, the whole
    address space, gives ``start = 0`` and ``end = 2**64 - 1``).  A range that runs past the
    end of the address space is an error naming the record."""
    op = np.asarray(trace.op)
    idx = np.flatnonzero(op == Op.LOCK_W)
    start = np.asarray(trace.addr)[idx].astype(np.uint64)
    size = np.asarray(trace.size)[idx].astype(np.uint64)
    whole = size == 0
    end = start + size
    over = ~whole & (end <= start)     # wrapped: the end (exclusive) must fit in 64 bits
    if over.any():
        i = int(idx[np.argmax(over)])
        raise TraceFormatError(
            f"record {i}: LOCK_W range {int(start[np.argmax(over)]):#x} + "
            f"{int(size[np.argmax(over)])} bytes runs past the end of the 64-bit address space")
    start[whole] = 0
    end[whole] = np.uint64(2**64 - 1)
    return idx, start, end
