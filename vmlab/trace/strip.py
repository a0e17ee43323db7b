"""Trace stripping: drop the accesses a small LRU filter of pages would hit.

A full access trace (valgrind lackey: every load, store and instruction fetch) of a small
program is tens to hundreds of millions of records, nearly all of them to the few pages the
program touched just before.  For page faults those records change nothing:

* an access is **kept** when its page (address space and page number) is not among the
  ``filter_pages`` pages accessed most recently, or when it writes (``STORE``, ``MODIFY``)
  a page the filter holds but has not seen written since the page entered it;
* every lock record (``LOCK_W``, ``LOCK_R``) is kept, and the filter is emptied wherever the trace's mappings
  change (a mapping row starts or ends) and at every zap (``madvise(MADV_DONTNEED)``: the
  next access to a zapped page faults again), so the first access to a page under each
  mapping, and after each zap, is kept.  The file reads table (:mod:`vmlab.trace.mappings`)
  keeps every row, each between the same kept records as before; so do the moves table,
  each move at the record its mapping rows start and end at, the placements table, each at
  the record its rows start at, and the zaps table, each between the same kept records as
  before.

What this preserves: the first read and the first write of every page in every mapping
epoch, in their order, each with its ``call`` code (a first write the kernel made,
``KERNEL``, stays the kernel's: its fault has no ``FAULT_FLAG_USER``; every writer keeps its
call), so the fault counts of a replay with unlimited memory are exactly the same in both
fault models (tests/test_strip.py).  What it changes: under a memory limit,
replacement no longer sees the order of the references inside the filter (a page pushed out
of the filter may have been re-referenced after the page that stays), so LRU's misses move a
little: 6% at a limit equal to the filter, within 3% from four times the filter on, in
tests/test_strip.py (the limits of notebook 08 are hundreds of pages).  The two-list
replacement sees fewer references to hot pages (so does the kernel: the accessed bit records
one reference however many accesses a page gets between two scans).  The number of records
changes, hence the CPU time a replay gives to accesses; a trace with times (``gap_ns``) is
refused.
"""
from __future__ import annotations

import numpy as np

from .._numba import njit
from ..errors import VmlabError
from .model import Op, TraceMeta
from .native import TraceWriter

#: The filter's size by default: a few pages more than an x86 instruction touches at most
#: (code, two data operands, the stack), so a loop's pages stay in it.
DEFAULT_FILTER_PAGES = 8


@njit(cache=True)
def _strip(pages, asid, op, cuts, base, keys, written, keep, lock_w, store, modify):
    """Mark ``keep`` for one chunk; ``keys``/``written`` (MRU first, -1 empty) carry the
    filter between chunks; ``cuts`` are record numbers where the filter empties; ``base`` is
    the chunk's first record number.  Returns how many of ``cuts`` were passed."""
    k = keys.shape[0]
    c = 0
    n_cuts = cuts.shape[0]
    for i in range(pages.shape[0]):
        r = base + i
        while c < n_cuts and cuts[c] <= r:
            for j in range(k):
                keys[j] = -1
                written[j] = 0
            c += 1
        o = op[i]
        if o >= lock_w:      # a lock record (LOCK_W, LOCK_R)
            keep[i] = 1
            continue
        key = (np.int64(asid[i]) << 52) | np.int64(pages[i])
        w = 1 if (o == store or o == modify) else 0
        pos = -1
        for j in range(k):
            if keys[j] == key:
                pos = j
                break
        if pos < 0:
            keep[i] = 1
            pos = k - 1
            keys[pos] = key
            written[pos] = w
        else:
            if w and not written[pos]:
                keep[i] = 1
                written[pos] = 1
            else:
                keep[i] = 0
        # move to the front
        kk = keys[pos]
        ww = written[pos]
        for j in range(pos, 0, -1):
            keys[j] = keys[j - 1]
            written[j] = written[j - 1]
        keys[0] = kk
        written[0] = ww
    return c


def strip_trace(trace, out, *, filter_pages=DEFAULT_FILTER_PAGES, chunk_records=1 << 24):
    """Write ``trace`` stripped (see the module docstring) to the native trace ``out``, its
    mappings renumbered to the kept records.  Returns ``(path, info)`` with ``records_in``,
    ``records_out`` and ``filter_pages``."""
    from .mappings import FOREVER, Mappings

    if isinstance(filter_pages, bool) or not isinstance(filter_pages, (int, np.integer)) \
            or not 1 <= filter_pages <= 4096:
        raise VmlabError(f"filter_pages must be an integer from 1 to 4096, got {filter_pages!r}")
    if trace.has_gap:
        raise VmlabError("strip_trace: this trace has times (gap_ns); stripping is for access "
                         "traces without times (valgrind lackey)")
    m = trace.mappings
    if m is not None and len(m.table):
        t = m.table
        cuts = np.unique(np.concatenate([t["from_record"], t["until_record"],
                                         m.zaps["at_record"]]))
        cuts = cuts[(cuts > 0) & (cuts != FOREVER)].astype(np.int64)
    else:
        cuts = np.zeros(0, np.int64)
    shift = int(trace.page_size).bit_length() - 1
    keys = np.full(int(filter_pages), -1, np.int64)
    written = np.zeros(int(filter_pages), np.uint8)
    meta = trace.meta
    note = (f"stripped: accesses a {int(filter_pages)}-page LRU filter (with a write bit, "
            "emptied at every mapping change) would hit were dropped (vmlab.trace.strip)")
    meta = TraceMeta(page_size=meta.page_size, source=meta.source,
                     notes=(meta.notes + "; " if meta.notes else "") + note)
    kept_at = []           # original record numbers of the kept records
    n = len(trace)
    with TraceWriter(out, meta, with_call=trace.has_call) as w:
        c = 0
        for lo in range(0, n, chunk_records):
            hi = min(n, lo + chunk_records)
            addr = np.asarray(trace.addr[lo:hi], np.uint64)
            op = np.asarray(trace.op[lo:hi], np.uint8)
            asid = np.asarray(trace.asid[lo:hi])
            keep = np.zeros(hi - lo, np.uint8)
            c += _strip((addr >> np.uint64(shift)).astype(np.int64), asid.astype(np.int64), op,
                        cuts[c:], lo, keys, written, keep, int(Op.LOCK_W), int(Op.STORE),
                        int(Op.MODIFY))
            sel = np.flatnonzero(keep)
            kept_at.append(sel + lo)
            call = {"call": np.asarray(trace.call[lo:hi])[sel]} if trace.has_call else {}
            w.append(addr=addr[sel], op=op[sel], size=np.asarray(trace.size[lo:hi])[sel],
                     tid=np.asarray(trace.tid[lo:hi])[sel], asid=asid[sel], **call)
        kept = np.concatenate(kept_at) if kept_at else np.zeros(0, np.int64)
        if m is not None:
            t = m.table.copy()
            for col in ("from_record", "until_record"):
                v = t[col]
                finite = v != FOREVER
                v[finite] = np.searchsorted(kept, v[finite].astype(np.int64)).astype(np.uint64)
            reads = m.reads.copy()   # a read keeps its place between the kept records
            reads["at_record"] = np.searchsorted(kept, reads["at_record"].astype(np.int64))
            moves = m.moves.copy()   # a move stays at its rows' end (renumbered as they are)
            moves["at_record"] = np.searchsorted(kept, moves["at_record"].astype(np.int64))
            placed = m.placements.copy()   # a placement stays at its rows' start
            placed["at_record"] = np.searchsorted(kept, placed["at_record"].astype(np.int64))
            zaps = m.zaps.copy()   # a zap stays between the same kept records, like a read
            zaps["at_record"] = np.searchsorted(kept, zaps["at_record"].astype(np.int64))
            w.mappings = Mappings(t, m.files, m.source, reads, moves, placed, zaps)
    return w.path, {"records_in": n, "records_out": int(len(kept)),
                    "filter_pages": int(filter_pages)}
