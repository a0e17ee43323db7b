"""Infer the VMAs (mapped address ranges) a trace touches by clustering its pages.

A trace records addresses, not mappings.  :func:`infer_vmas` recovers plausible mappings:
for each address space it takes the sorted distinct pages the trace touches and starts a new
range wherever more than ``gap_pages`` untouched pages separate two touched ones.  On a
``lackey`` trace of a small program this separates text, heap, the shared libraries and the
stack.  The result is an *inference*: two real VMAs closer than ``gap_pages`` pages come out
as one range, and a sparsely touched VMA can come out as several.  :func:`label_vmas` then
names each range ``text``, ``data`` or ``stack``, from the trace's instruction fetches, its
stack operations (:func:`stack_ops`), a recorded trace's mappings, or the address.

Memory stays bounded for memory-mapped traces of any length: the records are read in
chunks of ``chunk_records``; each chunk is reduced to its distinct pages with a count, and
the chunk results are merged into a running sorted set (linear merges).  Memory is
proportional to the number of distinct pages, not to the number of records.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace

import numpy as np

from .._numba import njit
from .model import Op, Trace, names_pages

#: Records read at a time by the streaming passes.
DEFAULT_CHUNK = 1 << 22

#: Lowest address :func:`label_vmas` accepts for a stack without other evidence (x86-64
#: user stacks sit just below 0x7fffffffffff; the mmap area, where vmlab's synthetic files
#: live, is lower).  Under valgrind the client's stack is far lower (valgrind 3.19 on x86-64
#: puts it just below 0x1fff001000): :func:`stack_ops` finds it there.
STACK_MIN_ADDR = 0x7FF000000000

#: Bytes a stack operation moves: an x86-64 word (push, pop).
STACK_WORD = 8
#: Stack operations (:func:`stack_ops`) that make a range a stack for :func:`label_vmas`
#: (the stacks of the shipped lackey traces hold 144 to 2,180; other ranges none).
STACK_OP_MIN = 4


@dataclass(frozen=True)
class VmaRange:
    """A range of virtual addresses a trace touches, inferred by :func:`infer_vmas`.

    Attributes
    ----------
    asid : int
        Address-space id.
    start, end : int
        Byte addresses, page-aligned; ``end`` is exclusive.
    pages_touched : int
        Distinct pages of the range that at least one record touches.
    records : int
        Records whose address falls in the range.
    label : str
        Heuristic label (``"text"``, ``"data"``, ``"stack"``; see :func:`label_vmas`) or
        ``""`` when unlabelled.
    """

    asid: int
    start: int
    end: int
    pages_touched: int
    records: int
    label: str = ""

    @property
    def size(self):
        """Length of the range in bytes."""
        return self.end - self.start

    def pages(self, page_size=4096):
        """Length of the range in pages."""
        return (self.end - self.start) // page_size

    def __contains__(self, addr):
        return self.start <= addr < self.end


# ---------------------------------------------------------------------------------------
# Streaming distinct-page sets


@njit
def _merge_counts(ak, ac, bk, bc):
    """Merge two sorted unique key arrays with counts into one (linear time)."""
    na, nb = len(ak), len(bk)
    ok = np.empty(na + nb, np.uint64)
    oc = np.empty(na + nb, np.int64)
    i = j = m = 0
    while i < na and j < nb:
        if ak[i] < bk[j]:
            ok[m] = ak[i]
            oc[m] = ac[i]
            i += 1
        elif bk[j] < ak[i]:
            ok[m] = bk[j]
            oc[m] = bc[j]
            j += 1
        else:
            ok[m] = ak[i]
            oc[m] = ac[i] + bc[j]
            i += 1
            j += 1
        m += 1
    while i < na:
        ok[m] = ak[i]
        oc[m] = ac[i]
        i += 1
        m += 1
    while j < nb:
        ok[m] = bk[j]
        oc[m] = bc[j]
        j += 1
        m += 1
    return ok[:m].copy(), oc[:m].copy()


def unique_counts(keys):
    """Sorted distinct values of a uint64 array and how often each occurs.

    When the values span a narrow range (at most ``max(2**22, 2 * len(keys))``) they are
    counted with ``bincount`` (linear time).  Otherwise runs of equal consecutive values
    are collapsed first (cheap, and traces have much locality) and the run heads sorted.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo < max(1 << 22, 2 * n):
        c = np.bincount((keys - np.uint64(lo)).astype(np.intp), minlength=hi - lo + 1)
        nz = np.flatnonzero(c)
        return nz.astype(np.uint64) + np.uint64(lo), c[nz].astype(np.int64)
    heads = np.empty(n, bool)
    heads[0] = True
    np.not_equal(keys[1:], keys[:-1], out=heads[1:])
    starts = np.flatnonzero(heads)
    vals = keys[starts]
    lens = np.diff(np.append(starts, n))
    if len(vals) == 1:
        return vals, lens.astype(np.int64)
    order = np.argsort(vals, kind="stable")
    sv = vals[order]
    sl = lens[order]
    new = np.empty(len(sv), bool)
    new[0] = True
    np.not_equal(sv[1:], sv[:-1], out=new[1:])
    first = np.flatnonzero(new)
    return sv[first], np.add.reduceat(sl, first).astype(np.int64)


class PageSet:
    """A growing set of distinct page numbers with a record count per page."""

    __slots__ = ("keys", "counts")

    def __init__(self):
        self.keys = np.zeros(0, np.uint64)
        self.counts = np.zeros(0, np.int64)

    def add(self, pages):
        k, c = unique_counts(pages)
        if len(self.keys) == 0:
            self.keys, self.counts = k, c
        elif len(k):
            self.keys, self.counts = _merge_counts(self.keys, self.counts, k, c)

    def __len__(self):
        return len(self.keys)


def stack_ops(op, size, addr, tid, asid):
    """Which records are stack operations of one-byte x86-64 instructions.

    A record is one when it is a ``LOAD`` or ``STORE`` of :data:`STACK_WORD` (8) bytes, the
    record before it is an ``IFETCH`` of one byte at some address ``x``, and the record
    after it the ``IFETCH`` at ``x + 1``, all three of one thread and address space: a
    one-byte instruction that moved a word and fell through to the next.  The one-byte
    x86-64 instructions that move a word of memory all address it through the stack
    pointer: ``push`` and ``pop`` of a register, ``pushf``, ``popf`` and ``leave`` (the
    one-byte string instructions move 1 or 4 bytes; ``ret`` does not fall through).  A
    lackey trace writes each instruction's fetch, with its length, just before the
    instruction's data accesses, so these records land where the stack pointer points: the
    main stack wherever the loader put it (valgrind puts its client's far below the
    kernel's place), a thread's stack.  A trace without one-byte fetches (perf, synthetic
    traces: every size 8 by default) has none, nor one with records dropped between
    (:mod:`vmlab.trace.strip` keeps an instruction's fetch only on a new page), nor one of
    another architecture.

    Parameters
    ----------
    op, size, addr, tid, asid : array_like
        Columns of consecutive records (the first and the last have no neighbour on one
        side: never stack operations).

    Returns
    -------
    ndarray of bool
    """
    out = np.zeros(len(op), bool)
    out[_stack_op_index(op, size, addr, tid, asid)] = True
    return out


def _stack_op_index(op, size, addr, tid, asid):
    """Indices of the stack operations of :func:`stack_ops` (in increasing order)."""
    op, size = np.asarray(op), np.asarray(size)
    if len(op) < 3:
        return np.zeros(0, np.intp)
    i = np.flatnonzero((op[:-2] == Op.IFETCH) & (size[:-2] == 1))   # one-byte fetches
    if len(i) == 0:
        return i
    j, k = i + 1, i + 2
    addr, tid, asid = np.asarray(addr), np.asarray(tid), np.asarray(asid)
    oj = op[j]
    ok = ((size[j] == STACK_WORD) & ((oj == Op.LOAD) | (oj == Op.STORE))
          & (op[k] == Op.IFETCH) & (addr[k] == addr[i] + np.uint64(1))
          & (tid[i] == tid[j]) & (tid[k] == tid[j]) & (asid[i] == asid[j]) & (asid[k] == asid[j]))
    return j[ok]


def mapped_stacks(mappings):
    """``(asid, start, end)`` of the mappings a recorded trace names as the stack
    (:attr:`vmlab.trace.mappings.Backing.STACK`, ``[stack]``); ``None`` without mappings."""
    if mappings is None:
        return None
    from .mappings import Backing

    t = mappings.table
    rows = t[t["backing"] == Backing.STACK]
    return [(int(r["asid"]), int(r["start"]), int(r["end"])) for r in rows]


class PageAccumulator:
    """Streaming collector of distinct pages per address space (and of IFETCH pages).

    Feed it chunks of columns with :meth:`add`; read :attr:`pages` (asid -> PageSet),
    :attr:`ifetch` (asid -> PageSet of pages touched by IFETCH records) and :attr:`stack`
    (asid -> PageSet of pages touched by stack operations, :func:`stack_ops`, with how many).
    :meth:`feed` also keeps a recorded trace's stack mappings (:attr:`stacks`,
    :func:`mapped_stacks`).
    """

    def __init__(self, page_size):
        self.shift = np.uint64(int(page_size).bit_length() - 1)
        self.pages = {}
        self.ifetch = {}
        self.stack = {}
        self.stacks = None

    def add(self, addr, asid, op, keep):
        """One chunk of columns; ``keep`` marks the records that name pages
        (:func:`vmlab.trace.model.names_pages`: not a lock record without a region)."""
        pages = np.asarray(addr) >> self.shift
        asid = np.asarray(asid)
        op = np.asarray(op)
        if not keep.all():
            pages, asid, op = pages[keep], asid[keep], op[keep]
        if len(pages) == 0:
            return
        is_if = op == Op.IFETCH
        any_if = bool(is_if.any())
        lo, hi = int(asid.min()), int(asid.max())
        groups = [(lo, None)] if lo == hi else [(int(a), asid == a) for a in np.unique(asid)]
        for a, mask in groups:
            p = pages if mask is None else pages[mask]
            self.pages.setdefault(a, PageSet()).add(p)
            if any_if:
                m = is_if if mask is None else (is_if & mask)
                if m.any():
                    self.ifetch.setdefault(a, PageSet()).add(pages[m])

    def add_stack(self, addr, asid):
        """Addresses of stack operations (:func:`stack_ops`) and their address spaces."""
        pages = np.asarray(addr) >> self.shift
        asid = np.asarray(asid)
        for a in np.unique(asid).tolist():
            self.stack.setdefault(int(a), PageSet()).add(pages[asid == a])

    def feed(self, trace, chunk_records=DEFAULT_CHUNK, callback=None):
        """Add every record of ``trace``, ``chunk_records`` at a time.

        ``callback(lo, hi, keep)`` (optional) is called for each chunk, with the chunk's
        records that name pages marked, so one pass over a memory-mapped trace can compute
        other statistics at the same time.
        """
        n = len(trace)
        cols = trace.columns
        self.stacks = mapped_stacks(trace.mappings)
        tail = None   # the previous chunk's last two records, for stack_ops across chunks
        for lo in range(0, n, chunk_records):
            hi = min(n, lo + chunk_records)
            addr, op = np.asarray(cols["addr"][lo:hi]), np.asarray(cols["op"][lo:hi])
            size, asid = np.asarray(cols["size"][lo:hi]), np.asarray(cols["asid"][lo:hi])
            keep = names_pages(op, addr, size)
            self.add(addr, asid, op, keep)
            tail = self._stack_chunk(tail, op, size, addr, np.asarray(cols["tid"][lo:hi]), asid)
            if callback is not None:
                callback(lo, hi, keep)
        return self

    def _stack_chunk(self, tail, *cols):
        """Add the stack operations of one chunk of columns (op, size, addr, tid, asid),
        those at its edges judged with ``tail``, the previous chunk's last two records;
        return the new tail."""
        # the previous chunk's last record and this one's first, between their neighbours
        edge = None if tail is None else tuple(np.concatenate((t, c[:2]))
                                               for t, c in zip(tail, cols))
        for part in (cols, edge):
            if part is not None:
                m = _stack_op_index(*part)
                if len(m):
                    self.add_stack(part[2][m], part[4][m])
        if tail is not None and len(cols[0]) < 2:
            return tuple(np.concatenate((t, c))[-2:] for t, c in zip(tail, cols))
        return tuple(c[-2:] for c in cols)

    @property
    def distinct_pages(self):
        return sum(len(s) for s in self.pages.values())

    def vmas(self, page_size, gap_pages=16, label=True):
        """Cluster the collected pages into :class:`VmaRange` objects."""
        out, has_if, n_stack = [], [], []
        for a in sorted(self.pages):
            s = self.pages[a]
            if len(s) == 0:
                continue
            keys, counts = s.keys, s.counts
            # A new range starts where more than gap_pages untouched pages separate two
            # consecutive touched pages.
            split = np.flatnonzero(np.diff(keys) > np.uint64(gap_pages + 1)) + 1
            starts = np.concatenate(([0], split))
            ends = np.concatenate((split, [len(keys)]))
            recs = np.add.reduceat(counts, starts)
            fk, sk = self.ifetch.get(a), self.stack.get(a)
            for i, (b, e) in enumerate(zip(starts.tolist(), ends.tolist())):
                first, last = int(keys[b]), int(keys[e - 1])
                out.append(VmaRange(asid=a, start=first * page_size, end=(last + 1) * page_size,
                                    pages_touched=e - b, records=int(recs[i])))
                if fk is not None and len(fk):
                    j = np.searchsorted(fk.keys, np.uint64(first))
                    has_if.append(bool(j < len(fk.keys) and int(fk.keys[j]) <= last))
                else:
                    has_if.append(False)
                if sk is not None and len(sk):
                    j0 = int(np.searchsorted(sk.keys, np.uint64(first), "left"))
                    j1 = int(np.searchsorted(sk.keys, np.uint64(last), "right"))
                    n_stack.append(int(sk.counts[j0:j1].sum()))
                else:
                    n_stack.append(0)
        return label_vmas(out, has_if, n_stack, self.stacks) if label else out


# ---------------------------------------------------------------------------------------


def label_vmas(vmas, has_ifetch=None, n_stack_ops=None, stacks=None):
    """Label inferred ranges ``"stack"``, ``"text"`` or ``"data"`` (a heuristic).

    Rules, in order, applied per range:

    1. ``"stack"``:

       * for a recorded trace (``stacks`` given: its mappings), a range that overlaps a
         mapping the recording names as the stack (``[stack]``);
       * otherwise, a range no instruction is fetched from that holds at least
         :data:`STACK_OP_MIN` (4) stack operations (:func:`stack_ops`: the word accesses
         of one-byte instructions, push and pop): the stack pointer points there,
         wherever that is (valgrind puts its client's stack just below 0x1fff001000), and
         a thread's stack counts too;
       * or the highest range of its address space, if it starts at or above
         ``STACK_MIN_ADDR`` (0x7ff000000000, where x86-64 Linux puts user stacks);

    2. ``"text"``: a range touched by at least one ``IFETCH`` record (``has_ifetch[i]``);
    3. ``"data"``: everything else.

    This is a guess from the trace alone: a JIT's code cache is "text", and a trace
    without IFETCH records has no "text"; without one-byte fetches or mappings (a perf
    trace, a synthetic one) only the address tells a stack.

    Parameters
    ----------
    vmas : list of VmaRange
    has_ifetch : sequence of bool, optional
        Whether each range was touched by an instruction fetch; default all False.
    n_stack_ops : sequence of int, optional
        Stack operations (:func:`stack_ops`) in each range; default all 0.
    stacks : sequence of (asid, start, end), optional
        The stack mappings of a recorded trace (:func:`mapped_stacks`); ``None`` (default)
        when the trace has no mappings.

    Returns
    -------
    list of VmaRange
        New objects with ``label`` set, in the same order.
    """
    if has_ifetch is None:
        has_ifetch = [False] * len(vmas)
    if n_stack_ops is None:
        n_stack_ops = [0] * len(vmas)
    top = {}
    for i, v in enumerate(vmas):
        if v.asid not in top or v.start > vmas[top[v.asid]].start:
            top[v.asid] = i
    out = []
    for i, v in enumerate(vmas):
        if stacks is not None:
            is_stack = any(a == v.asid and s < v.end and v.start < e for a, s, e in stacks)
        else:
            is_stack = ((top.get(v.asid) == i and v.start >= STACK_MIN_ADDR)
                        or (not has_ifetch[i] and n_stack_ops[i] >= STACK_OP_MIN))
        if is_stack:
            lab = "stack"
        elif has_ifetch[i]:
            lab = "text"
        else:
            lab = "data"
        out.append(replace(v, label=lab))
    return out


def infer_vmas(trace, gap_pages=16, chunk_records=DEFAULT_CHUNK, label=True):
    """Infer the mapped ranges a trace touches, per address space.

    The distinct pages each address space touches are sorted, and a new range starts
    wherever the number of untouched pages between two consecutive touched pages exceeds
    ``gap_pages``.  A ``LOCK_W`` record counts like an access where it names the region it
    maps or unmaps, not where it names the whole address space (size 0) or a new mapping at
    :data:`~vmlab.trace.model.NEW_MAPPING_ADDR`; ``LOCK_R`` records do not count (their
    address is informative only): :func:`vmlab.trace.model.names_pages`.

    Parameters
    ----------
    trace : Trace
        Any trace, memory-mapped ones included (read in chunks; memory grows with the
        number of distinct pages only).
    gap_pages : int
        Largest run of untouched pages kept inside one range (default 16).
    chunk_records : int
        Records read per step.
    label : bool
        Set each range's ``label`` with :func:`label_vmas` (default True).

    Returns
    -------
    list of VmaRange
        Sorted by address space, then address.
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"infer_vmas() needs a Trace, got {type(trace).__name__}")
    if gap_pages < 0:
        raise ValueError(f"gap_pages must be >= 0, got {gap_pages}")
    key = (int(gap_pages), bool(label))
    known = _inferred.get(trace)
    if known is not None and key in known:
        return list(known[key])
    acc = PageAccumulator(trace.page_size).feed(trace, chunk_records)
    out = acc.vmas(trace.page_size, gap_pages=gap_pages, label=label)
    _inferred.setdefault(trace, {})[key] = tuple(out)
    return out


#: inferred ranges per trace (a scenario without VMAs infers them at every run; compare and
#: sweep run one trace many times).  VmaRange is frozen, so sharing the ranges is safe.
_inferred = weakref.WeakKeyDictionary()
