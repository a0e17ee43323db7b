"""Turn a Scenario and a policy into the arrays the kernel takes.

This is the one-off preparation the benchmarks report separately from the replay: dense page
ids, per-thread record order, VMA lookup, quantile tables.  The per-trace part (pages and
threads) is cached on the trace object, so ``compare`` and ``sweep`` pay it once.
"""
from __future__ import annotations

import math
import os
import tempfile
import weakref
from dataclasses import dataclass

import numpy as np

from ..errors import ScenarioError
from ..model.costs import LIMIT_TEXT, MAX_NS, TABLE_SIZE, writer_parts_ns
from ..model.scenario import (min_memory_pages, refuse_knobs,
                             signal_interval_dist)
from .._numba import njit, prefetch
from ..trace.model import ASID_BITS, CHANGE_AT_RELEASE, MAX_CALL, Call, Op, lock_w_ranges
from . import codes as C
from .fastpath import fast_path_eligibility, knob_row
from .kernel import KernelInputs

#: The knobs of docs/model.md sections 11-12 the engine runs (``refuse_knobs`` refuses the
#: others): every one of them.
RUNS_KNOBS = ("fault_model", "file", "folio_pages", "memory_bytes", "ra_pages", "reads",
              "reclaim_batch", "lru_add_batch", "tlb_young", "reclaim_ages_active",
              "reclaim_priorities", "workingset")
_ASID_BITS = ASID_BITS      # (trace.check() refuses a larger asid)
_VPN_BITS = 64 - ASID_BITS
_CHUNK = 1 << 24
_LOCK_W = int(Op.LOCK_W)
_LOCK_R = int(Op.LOCK_R)
_LOCKR_BASE = C.LOCKR_PAGE_BASE
#: Traces longer than this get their per-record page ids in a temporary memory-mapped file.
MEMMAP_RECORDS = 50_000_000

_trace_cache = weakref.WeakKeyDictionary()


@dataclass
class TraceIndex:
    """Per-trace preparation: dense pages and per-thread order."""

    # per position: records grouped by thread (thr_off), in trace order within a thread, so
    # the kernel reads each thread's records sequentially
    rec_page: np.ndarray        # int32/int64 dense page id, or -(asid+1) for LOCK_W,
    #                             -(asid+1) - codes.LOCKR_PAGE_BASE for LOCK_R
    rec_gap: np.ndarray         # uint64 gap_ns (a narrower dtype only for long 1-thread traces)
    keys: np.ndarray            # sorted unique (asid << 52 | vpn); position = key rank
    first_rec: np.ndarray       # first record index touching each page, by key rank
    rank: np.ndarray            # page id -> key rank
    by_key: np.ndarray          # key rank -> page id
    thr_tid: np.ndarray         # thread index -> tid
    thr_off: np.ndarray         # thread index -> first position in order
    thr_access: np.ndarray      # thread index -> 1 if it has an access record (not only LOCK_W)
    n_asid: int


def index_trace(trace):
    """Dense page ids and thread order for ``trace`` (cached per trace object)."""
    try:
        return _trace_cache[trace]
    except (KeyError, TypeError):
        pass
    idx = _index_trace(trace)
    try:
        _trace_cache[trace] = idx
    except TypeError:
        pass
    return idx


def _index_trace(trace):
    n = len(trace)
    if n == 0:
        raise ScenarioError("the trace has no records; nothing to simulate")
    # the limits the engine's int64 times and 64-bit page keys rely on (asids below
    # 2**ASID_BITS, each gap and each thread's total of gaps below 2**62): checked when the
    # trace was built or its file verified, else here, once
    trace.check()
    shift = int(trace.page_size).bit_length() - 1
    uniq, first, rank, by_key, rec_page = _pages_chunked(trace, shift, n)
    # threads: a counting sort by thread, chunk by chunk (no argsort of the whole trace)
    tids = np.zeros(0, np.int64)
    n_asid = 1
    for lo in range(0, n, _CHUNK):
        tc = np.asarray(trace.tid[lo:lo + _CHUNK])
        a, b = int(tc.min()), int(tc.max())
        tids = np.union1d(tids, [a] if a == b else np.unique(tc))
        n_asid = max(n_asid, int(np.max(trace.asid[lo:lo + _CHUNK])) + 1)
    T = len(tids)
    if T == 1:
        thr_off = np.array([0, n], np.int64)
        rec_gap = _gaps(trace, None)
    else:
        counts = np.zeros(T, np.int64)
        for lo in range(0, n, _CHUNK):
            th = np.searchsorted(tids, np.asarray(trace.tid[lo:lo + _CHUNK]))
            counts += np.bincount(th, minlength=T)
        thr_off = np.zeros(T + 1, np.int64)
        thr_off[1:] = np.cumsum(counts)
        order = _scratch(n, np.int64)
        cursor = thr_off[:-1].copy()
        for lo in range(0, n, _CHUNK):
            th = np.searchsorted(tids, np.asarray(trace.tid[lo:lo + _CHUNK]))
            _fill_order(th, lo, cursor, order)
        rec_page = _gather(rec_page, order)
        rec_gap = _gaps(trace, order)
        del order
    thr_access = np.zeros(T, np.int64)
    for j in range(T):
        for lo in range(thr_off[j], thr_off[j + 1], _CHUNK):
            if (rec_page[lo:min(thr_off[j + 1], lo + _CHUNK)] >= 0).any():
                thr_access[j] = 1
                break
    return TraceIndex(rec_page, rec_gap, uniq, first, rank, by_key, tids.astype(np.int64),
                      thr_off, thr_access, n_asid)


def _gather(col, order):
    """``col[order]``, chunk by chunk (into a temporary file when the trace is long)."""
    out = _scratch(len(order), col.dtype)
    for lo in range(0, len(order), _CHUNK):
        out[lo:lo + _CHUNK] = col[order[lo:lo + _CHUNK]]
    return out


def _gaps(trace, order):
    """The trace's gaps as uint64 in position order (``order``, or record order if None).

    One dtype for the kernel: each new dtype would mean a new compilation (~1 min).  A long
    one-thread trace keeps its own column (no copy of it is made)."""
    if not trace.has_gap:
        return np.zeros(1, np.uint64)
    gap = trace.gap_ns
    if order is None:
        if gap.dtype == np.uint64 or len(gap) > MEMMAP_RECORDS:
            return gap
        return np.asarray(gap).astype(np.uint64)
    out = _scratch(len(order), np.uint64)
    for lo in range(0, len(order), _CHUNK):
        out[lo:lo + _CHUNK] = np.asarray(gap)[order[lo:lo + _CHUNK]]
    return out


def _pages_chunked(trace, shift, n):
    """Distinct pages, first touches and per-record ids in one pass over the trace, chunk by
    chunk, through a hash table of the distinct keys: memory grows with distinct pages, not
    records (per-record ids go to a temporary file for long traces).

    A page's id is the order of its first touch, so the id the table hands out when it first
    meets a key is already the final one; sorting the distinct keys at the end gives ``rank``
    and ``by_key``.  (``tests/reference_index.py`` computes the same with one sort.)"""
    rec_page = None
    for ptype, limit in ((np.int32, _MAX_INT32_PAGES), (np.int64, np.iinfo(np.int64).max)):
        rec_page = _scratch(n, ptype)
        tab, kid, first, count = _new_page_table()
        complete = True
        for lo in range(0, n, _CHUNK):
            hi = min(n, lo + _CHUNK)
            out = np.asarray(rec_page[lo:hi])
            tab, kid, first, count, done = _page_ids_of_chunk(
                np.asarray(trace.addr[lo:hi]), np.asarray(trace.asid[lo:hi]),
                np.asarray(trace.op[lo:hi]), np.uint64(shift), lo, tab, kid, first, count,
                limit, out)
            if done < hi - lo:      # more distinct pages than int32 ids hold: int64 ids
                complete = False
                break
        del tab
        if complete:
            break
    kid, first = kid[:count], first[:count]
    by_key = np.argsort(kid, kind="stable").astype(np.int64)   # key rank -> page id
    rank = np.empty(count, np.int64)                            # page id -> key rank
    rank[by_key] = np.arange(count, dtype=np.int64)
    return kid[by_key], first[by_key], rank, by_key, rec_page


#: Most distinct pages with int32 page ids.
_MAX_INT32_PAGES = 2**31 - 2
#: Multiplier of the page table's hash (2^64 / golden ratio, odd): consecutive page numbers
#: land far apart.
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_PAGE_TABLE_SLOTS = 1 << 16
#: How many records ahead ``_page_ids_of_chunk`` prefetches the table slot (a table of 10^6
#: pages is 32 MB: most probes would otherwise wait for memory; 14 -> 5 ns a record).
_PAGE_PREFETCH = 64


def _new_page_table():
    """An empty table for ``_page_ids_of_chunk``: slots of (key, id + 1; 0 = empty), the
    keys by id and the first touches by id (room for half the slots)."""
    half = _PAGE_TABLE_SLOTS // 2
    return (np.zeros(2 * _PAGE_TABLE_SLOTS, np.uint64), np.empty(half, np.uint64),
            np.empty(half, np.int64), 0)


@njit
def _page_table_insert(tab, bits, key, v):
    """Put ``key`` with value ``v`` (> 0) in the first free slot of its probe sequence."""
    mask = (1 << bits) - 1
    s = np.int64((key * _HASH_MUL) >> np.uint64(64 - bits))
    while tab[2 * s + 1] != 0:
        s = (s + 1) & mask
    tab[2 * s] = key
    tab[2 * s + 1] = v


@njit
def _page_ids_of_chunk(addr, asid, op, shift, base, tab, kid, first, count, limit, out):
    """Page ids of records ``base + i`` into ``out[i]``, adding new keys to the table.

    The table (open addressing, linear probing) is twice as large as the keys it holds at
    most: it doubles, and ``kid`` / ``first`` with it, when half full.  Returns the (maybe
    new) arrays, the number of distinct pages, and the records done: fewer than the chunk's
    if a page beyond ``limit`` distinct ones turned up (the ids would not fit ``out``)."""
    slots = tab.shape[0] // 2
    bits = 0
    while (1 << bits) < slots:
        bits += 1
    mask = slots - 1
    hshift = np.uint64(64 - bits)
    n = addr.shape[0]
    for i in range(n):
        if i + _PAGE_PREFETCH < n:   # a hint only (LOCK_W records' slots are harmless)
            ka = (np.uint64(asid[i + _PAGE_PREFETCH]) << np.uint64(_VPN_BITS)) | \
                (np.uint64(addr[i + _PAGE_PREFETCH]) >> shift)
            prefetch(tab, 2 * np.int64((ka * _HASH_MUL) >> hshift))
        a = np.uint64(asid[i])
        if op[i] == _LOCK_W:
            out[i] = -(np.int64(a) + 1)
            continue
        if op[i] == _LOCK_R:
            out[i] = -(np.int64(a) + 1) - _LOCKR_BASE
            continue
        key = (a << np.uint64(_VPN_BITS)) | (np.uint64(addr[i]) >> shift)
        s = np.int64((key * _HASH_MUL) >> hshift)
        while True:
            v = tab[2 * s + 1]
            if v == 0:
                if count >= limit:
                    return tab, kid, first, count, i
                tab[2 * s] = key
                tab[2 * s + 1] = np.uint64(count + 1)
                kid[count] = key
                first[count] = base + i
                out[i] = count
                count += 1
                if 2 * count >= slots:
                    slots *= 2
                    bits += 1
                    mask = slots - 1
                    hshift = np.uint64(64 - bits)
                    tab = np.zeros(2 * slots, np.uint64)
                    for j in range(count):
                        _page_table_insert(tab, bits, kid[j], np.uint64(j + 1))
                    # (copied by a loop: a slice assignment would compile numba's shape
                    # error message, seconds of compile time)
                    kid2 = np.empty(slots // 2, np.uint64)
                    first2 = np.empty(slots // 2, np.int64)
                    for j in range(count):
                        kid2[j] = kid[j]
                        first2[j] = first[j]
                    kid, first = kid2, first2
                break
            if tab[2 * s] == key:
                out[i] = v - 1
                break
            s = (s + 1) & mask
    return tab, kid, first, count, n


@njit
def _fill_order(th, base, cursor, order):
    """Scatter record indices ``base + i`` to their thread's next slot (stable)."""
    for i in range(th.shape[0]):
        t = th[i]
        order[cursor[t]] = base + i
        cursor[t] += 1


def _scratch(n, dtype):
    """An array of ``n`` items; in an unlinked temporary file when the trace is long, so that
    memory does not grow with trace length."""
    if n <= MEMMAP_RECORDS:
        return np.empty(n, dtype)
    fd, path = tempfile.mkstemp(prefix="vmlab-", suffix=".bin")
    os.close(fd)
    arr = np.memmap(path, dtype=dtype, mode="w+", shape=(n,))
    os.unlink(path)  # the mapping keeps it alive; nothing is left behind
    return arr


def _with_extra_pages(idx, extra):
    """The index with pages no record touches added (preloaded pages): ids are renumbered."""
    # the new pages get ids after the existing ones, which keep theirs
    keys = np.sort(np.concatenate([idx.keys, extra]))   # (disjoint, both sorted)
    old_pos = np.searchsorted(keys, idx.keys)
    first = np.full(len(keys), np.iinfo(np.int64).max, np.int64)
    first[old_pos] = idx.first_rec
    n_old = len(idx.keys)
    rank = np.empty(len(keys), np.int64)
    rank[:n_old] = old_pos[idx.rank]
    rank[n_old:] = np.searchsorted(keys, extra)
    by_key = np.empty(len(keys), np.int64)
    by_key[rank] = np.arange(len(keys), dtype=np.int64)
    return TraceIndex(idx.rec_page, idx.rec_gap, keys, first, rank, by_key, idx.thr_tid,
                      idx.thr_off, idx.thr_access, idx.n_asid)


#: Most page-cache entries (folios of the mapped files) a run with files, folios, readahead
#: or a memory limit may have: each takes a few bytes of the kernel's arrays.
MAX_CACHE_ENTRIES = 1 << 26


def _vma_ranges(keys, vma_asid, vma_first_vpn, vma_end_vpn):
    """Each VMA's key-rank range ``[p0, p1)`` over the sorted page ``keys``, and each key's
    VMA (-1: in none)."""
    vkey0 = (vma_asid.astype(np.uint64) << np.uint64(_VPN_BITS)) | vma_first_vpn.astype(np.uint64)
    p0 = np.searchsorted(keys, vkey0).astype(np.int64)
    # the end is exclusive and may be the top of the address space (end page 2**52): its key
    # is then the next address space's first, or past every key
    p1 = np.array([len(keys) if k >= 1 << 64 else int(np.searchsorted(keys, np.uint64(k)))
                   for k in ((int(a) << _VPN_BITS) + int(e)
                             for a, e in zip(vma_asid, vma_end_vpn))], np.int64)
    key_vma = np.full(len(keys), -1, np.int32)
    for i in range(len(vma_asid)):
        key_vma[p0[i]:p1[i]] = i
    return p0, p1, key_vma


@dataclass
class FolioLayout:
    """Every file's folios (docs/model.md 11.4): folio ``f_base[f] + j`` of file ``f`` starts at
    file page ``start[f_base[f] + j]`` and spans ``size[...]`` pages (its order, which may
    reach past the file's end; the frames it takes stop there)."""
    f_base: np.ndarray   # int64 [files + 1]
    start: np.ndarray    # int64 [folios]
    size: np.ndarray     # int64 [folios]

    def index(self, fid, o):
        """The folio (over all files) holding file page ``o`` of file ``fid`` (arrays)."""
        out = np.empty(len(o), np.int64)
        for f in np.unique(fid):
            m = fid == f
            a, b = self.f_base[f], self.f_base[f + 1]
            out[m] = a + np.searchsorted(self.start[a:b], o[m], side="right") - 1
        return out


def _file_folios(npg, fp, listed):
    """One file's folios, ``(starts, sizes)`` by offset: ``listed`` (``File.folios``), and the
    ``fp``-aligned blocks of the other pages, each one folio where it holds no listed folio,
    else its uncovered pages one folio each."""
    nblk = -(-npg // fp)
    if not listed:
        return np.arange(nblk, dtype=np.int64) * fp, np.full(nblk, fp, np.int64)
    ls = np.array([a for a, _ in listed], np.int64)
    ln = np.array([n for _, n in listed], np.int64)
    top = max(npg, int((ls + ln).max()))
    cover = np.zeros(top + 1, np.int64)
    np.add.at(cover, ls, 1)
    np.add.at(cover, ls + ln, -1)
    covered = np.cumsum(cover)[:npg] > 0
    hit = np.zeros(nblk, bool)
    hit[np.flatnonzero(covered) // fp] = True
    whole = np.flatnonzero(~hit) * fp
    single = np.flatnonzero(~covered & hit[np.arange(npg) // fp])
    starts = np.concatenate([ls, whole, single])
    sizes = np.concatenate([ln, np.full(len(whole), fp, np.int64),
                            np.ones(len(single), np.int64)])
    order = np.argsort(starts, kind="stable")
    return starts[order], sizes[order]


def _folio_layout(files):
    """:class:`FolioLayout` of ``files`` (:meth:`Scenario.file_table`'s); refuses more than
    :data:`MAX_CACHE_ENTRIES` folios before building them."""
    counts = [-(-npg // fp) + len(listed) * (fp + 1) for _, npg, fp, listed in files]
    if sum(counts) > MAX_CACHE_ENTRIES:
        big = int(np.argmax(counts))
        name = files[big][0] or "of a file VMA of its own"
        raise ScenarioError(
            f"file {name!r} spans {files[big][1]} pages: more than {MAX_CACHE_ENTRIES} page-cache "
            "folios in all; give the files' size_bytes (File) or larger folio_pages")
    parts = [_file_folios(npg, fp, listed) for _, npg, fp, listed in files]
    f_base = np.zeros(len(files) + 1, np.int64)
    f_base[1:] = np.cumsum([len(st) for st, _ in parts])
    start = np.concatenate([st for st, _ in parts]) if parts else np.zeros(0, np.int64)
    size = np.concatenate([sz for _, sz in parts]) if parts else np.zeros(0, np.int64)
    return FolioLayout(f_base, start.astype(np.int64), size.astype(np.int64))


def _windows(vpn, vma, F, files, vma_file, vma_off, vs, ve, cache_mode, layout):
    """The fault-around window ``[lo, hi)`` (virtual pages) of each page ``vpn`` of VMA
    ``vma``: ``F`` pages from the ``F``-aligned page below, or from the VMA's start when the
    VMA starts after it (``do_fault_around()``), clipped to the VMA, the page table and the
    file's end; in ``cache_mode``, the first and the last folio it overlaps join whole when
    they fit (docs/model.md 11.3).  Pages of other backings: the page alone.

    Returns ``(lo, hi, fr_lo, fr_hi, last_lo)``: the window; the pages ``finish_fault()``
    maps (the page's folio when it fits, else the page: 11.3); and where the file's last
    folio starts if it overlaps the aligned window (-1 if not), the case in which an empty
    page table gets no fault-around."""
    vma = vma.astype(np.int64)
    vpn = np.asarray(vpn, np.int64)
    fid = vma_file[vma]
    a = vpn - vpn % F
    pt = vpn - vpn % 512
    lo = np.maximum(a, vs[vma])
    hi = np.minimum(np.minimum(lo + F, pt + 512), ve[vma])
    aligned_hi = hi         # (do_fault_around()'s own window ends there)
    fr_lo, fr_hi = vpn.copy(), vpn + 1
    last_lo = np.full(len(vpn), -1, np.int64)
    if cache_mode and len(files):
        n = np.array([f[1] for f in files], np.int64)[np.maximum(fid, 0)]
        base = vs[vma] - vma_off[vma]           # the virtual page of file page 0
        hi = np.minimum(hi, np.maximum(base + n, vpn + 1))
        isf = (fid >= 0) & (vpn - base < n)
        f, b = fid[isf], base[isf]

        def folio(u):
            """The folio (virtual start, size, file end) holding virtual page ``u``."""
            j = layout.index(f, u - b)
            return b + layout.start[j], layout.size[j], layout.start[j] + layout.size[j]

        v0, v1, tb = vs[vma][isf], ve[vma][isf], pt[isf]

        def fits(st, sz):
            return (sz > 1) & (st >= v0) & (st + sz <= v1) & (st >= tb) & (st + sz <= tb + 512)

        # filemap_map_folio_range() maps a folio whole when it fits and ends before the
        # file's last page (``file_end >= folio_next_index()``, file_end the last index)
        n_f = n[isf]
        s0, z0, e0 = folio(lo[isf])
        s1, z1, e1 = folio(hi[isf] - 1)
        lo[isf] = np.where(fits(s0, z0) & (e0 <= n_f - 1), np.minimum(lo[isf], s0), lo[isf])
        hi[isf] = np.where(fits(s1, z1) & (e1 <= n_f - 1), np.maximum(hi[isf], s1 + z1), hi[isf])
        # finish_fault() maps the faulting folio whole when it fits inside the file
        sv, zv, ev = folio(vpn[isf])
        whole = fits(sv, zv) & (ev <= n_f)
        fr_lo[isf] = np.where(whole, sv, vpn[isf])
        fr_hi[isf] = np.where(whole, sv + zv, vpn[isf] + 1)
        sl, _, _ = folio(b + n_f - 1)
        last_lo[isf] = np.where(sl < aligned_hi[isf], sl, -1)
    elif len(files):
        # (every folio one page: the file's last page, when the aligned window holds it)
        n = np.array([f[1] for f in files], np.int64)[np.maximum(fid, 0)]
        last = vs[vma] - vma_off[vma] + n - 1
        last_lo = np.where((fid >= 0) & (last >= lo) & (last < aligned_hi), last, -1)
    lo = np.where(fid >= 0, lo, vpn)
    hi = np.where(fid >= 0, hi, vpn + 1)
    return lo, hi, fr_lo, fr_hi, last_lo


def _cache_layout(files, layout, vma_file, vma_off, vma_first_vpn, page_vma, page_vpn, first_rec,
                  trace, ps):
    """Page-cache entries by file and folio (docs/model.md 11.4): entry ``P + k`` is folio
    ``k`` of ``layout`` (files in order, folios by offset).  Returns ``page_slot`` (each file
    page's entry, other pages their own id), ``slot_frames`` (frames an entry takes), and the
    pages that map each folio (``sp_off``, ``sp_pages``)."""
    P = len(page_vma)
    f_base = layout.f_base
    page_slot = np.arange(P, dtype=np.int64)
    fid = vma_file[page_vma] if P else np.zeros(0, np.int64)
    isf = fid >= 0
    if isf.any():
        pv = page_vma[isf].astype(np.int64)
        ff = fid[isf]
        o = vma_off[pv] + page_vpn[isf] - vma_first_vpn[pv]
        n = np.array([f[1] for f in files], np.int64)[ff]
        bad = np.flatnonzero(o >= n)
        if len(bad):
            j = int(np.flatnonzero(isf)[bad[0]])
            r = int(first_rec[j])
            what = (f"record {r} (thread {int(trace.tid[r])}, address {int(trace.addr[r]):#x})"
                    if r < len(trace) else f"preload address {int(page_vpn[j]) * ps:#x}")
            name = files[int(ff[bad[0]])][0]
            raise ScenarioError(f"{what} is beyond the end of file {name!r} ({int(n[bad[0]])} "
                                "pages); make File.size_bytes cover every page the VMAs touch")
        page_slot[isf] = P + layout.index(ff, o)
    n_slots = P + int(f_base[-1])
    slot_frames = np.ones(n_slots, np.int64)
    npg = np.repeat(np.array([f[1] for f in files], np.int64), np.diff(f_base))
    slot_frames[P:] = np.minimum(layout.size, npg - layout.start)
    fpages = np.flatnonzero(page_slot >= P)
    order = fpages[np.argsort(page_slot[fpages], kind="stable")]
    sp_off = np.zeros(int(f_base[-1]) + 1, np.int64)
    np.add.at(sp_off, page_slot[order] - P + 1, 1)
    sp_off = np.cumsum(sp_off)
    return page_slot, slot_frames, sp_off, order.astype(np.int64)


@dataclass
class Prepared:
    """Everything the kernel needs, plus what the wrapper needs to label results."""

    inputs: KernelInputs
    index: TraceIndex
    vmas: tuple
    vma_policies: tuple
    policy: object
    page_vma: np.ndarray
    page_vpn: np.ndarray
    page_asid: np.ndarray


# a page table has 512 entries: a PTE table maps 512 pages, a PMD table 512 PTE tables, a
# PUD table 512 PMD tables (2 MB, 1 GB and 512 GB with 4 KB pages; docs/model.md 12)
TABLE_SHIFTS = (9, 18, 27)
# frames of a thread's kernel stack (THREAD_SIZE, 16 KB on x86-64)
KERNEL_STACK_FRAMES = 4


def _page_tables(charge, page_asid, page_vpn, vma_asid, vma_vpn0, vma_vpn1, n_threads):
    """The page-table ids the kernel's own memory is charged by (docs/model.md 12): for each
    page the ids of the PTE, PMD and PUD tables that map it, for each VMA the ids of every
    table its whole span needs (an eager mapping's), and the frames charged at time 0 (a PGD
    per address space, each thread's kernel stack).  Empty without ``charge``."""
    nv = len(vma_asid)
    if not charge:
        return dict(pt_page=np.zeros((0, 3), np.int32), pt_voff=np.zeros(nv + 1, np.int64),
                    pt_vids=np.zeros(0, np.int32), pt_n=0, k_fixed=0)

    def key(asid, level, r):    # (asid < 2**12, level < 3, r < 2**40)
        return (np.int64(asid) << 44) | (np.int64(level) << 40) | r

    per_vma = []
    for v in range(nv):
        ks = [key(vma_asid[v], lv, np.arange(int(vma_vpn0[v]) >> sh,
                                              ((int(vma_vpn1[v]) - 1) >> sh) + 1, dtype=np.int64))
              for lv, sh in enumerate(TABLE_SHIFTS)]
        per_vma.append(np.concatenate(ks))
    every = np.unique(np.concatenate(per_vma)) if nv else np.zeros(0, np.int64)
    pt_voff = np.zeros(nv + 1, np.int64)
    pt_voff[1:] = np.cumsum([len(k) for k in per_vma])
    pt_vids = (np.searchsorted(every, np.concatenate(per_vma)).astype(np.int32) if nv
               else np.zeros(0, np.int32))
    pages = np.asarray(page_vpn, np.int64)
    asids = np.asarray(page_asid, np.int64)
    pt_page = np.stack([np.searchsorted(every, key(asids, lv, pages >> sh))
                        for lv, sh in enumerate(TABLE_SHIFTS)], axis=1).astype(np.int32) \
        if len(pages) else np.zeros((0, 3), np.int32)
    n_pgd = len(np.unique(np.asarray(vma_asid)))
    return dict(pt_page=pt_page, pt_voff=pt_voff, pt_vids=pt_vids, pt_n=len(every),
                k_fixed=n_pgd + KERNEL_STACK_FRAMES * int(n_threads))


def twolist_ratio(memory_pages, page_size):
    """twolist's inactive ratio: the kernel's inactive_is_low (mm/vmscan.c) keeps
    ``inactive * ratio >= active`` with ``ratio = int_sqrt(10 * gb)`` for a list of ``gb``
    GiB, 1 below 1 GiB.  Reclaim runs only when every frame is taken, so the lists then hold
    exactly ``memory_pages`` pages: the ratio is a constant of the run."""
    if memory_pages < 0:
        return 1
    gb = (int(memory_pages) * int(page_size)) >> 30
    return math.isqrt(10 * gb) if gb else 1


def _record_writes(trace, idx, vmas, page_vma, kernel_model):
    """The kernel model's store flags in the kernel's record order (threads grouped), after
    refusing an access the program could not have made (docs/model.md 11.1: the first such
    record in trace order); an empty array for the page model, which does not read them.

    Chunk by chunk, into a temporary file for a long trace: memory does not grow with the
    trace (a whole-trace pass took 18 GB for 375 million records)."""
    if not kernel_model:
        return np.zeros(0, np.uint8)
    n = len(trace)
    shift = np.uint64(int(trace.page_size).bit_length() - 1)
    # by VMA, and for records in no VMA (index -1, the last entry): may it be read, written
    readable = np.array([bool(v.prot) for v in vmas] + [True])
    writable = np.array(["w" in v.prot for v in vmas] + [True])
    out = _scratch(n, np.uint8)
    one_thread = len(idx.thr_tid) == 1
    cursor = idx.thr_off[:-1].copy()
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        write = np.empty(hi - lo, np.uint8)
        # one thread: positions are records, and each record's page is already known
        pages = idx.rec_page[lo:hi] if one_thread else np.zeros(0, idx.rec_page.dtype)
        j = _writes_checked(np.asarray(trace.op[lo:hi]), np.asarray(trace.asid[lo:hi]),
                            np.asarray(trace.addr[lo:hi]), pages, idx.keys, idx.by_key,
                            page_vma, readable, writable, shift, np.uint64(_VPN_BITS), write)
        if j >= 0:
            r = lo + j
            key = (np.uint64(trace.asid[r]) << np.uint64(_VPN_BITS)) | (
                np.uint64(trace.addr[r]) >> shift)
            v = vmas[int(page_vma[idx.by_key[np.searchsorted(idx.keys, key)]])]
            what = "writes" if write[j] else "accesses"
            raise ScenarioError(f"record {r}: thread {int(trace.tid[r])} {what} "
                                f"{int(trace.addr[r]):#x} in VMA {v.label}, whose prot is "
                                f"{v.prot or 'none'!r}")
        _put_in_thread_order(out, write, trace, idx, lo, hi, cursor, one_thread)
    return out


@njit
def _writes_checked(op, asid, addr, pages, keys, by_key, page_vma, readable, writable,
                    shift, vpn_bits, write):
    """Fill ``write`` (1 for a store or modify) for a chunk of records in trace order and
    return the first access its VMA's prot forbids (-1: none).  A record's page is
    ``pages[i]`` when given, else looked up by its key."""
    for i in range(len(op)):
        o = op[i]
        w = o == _STORE or o == _MODIFY
        write[i] = w
        if o >= _LOCK_W:
            continue        # a lock record (LOCK_W, LOCK_R) is no access
        if len(pages):
            p = pages[i]
        else:
            key = (np.uint64(asid[i]) << vpn_bits) | (np.uint64(addr[i]) >> shift)
            p = by_key[np.searchsorted(keys, key)]
        v = page_vma[p]
        if not readable[v] or (w and not writable[v]):
            return i
    return -1


_STORE, _MODIFY, _LOCK_W = int(Op.STORE), int(Op.MODIFY), int(Op.LOCK_W)


def _put_in_thread_order(out, values, trace, idx, lo, hi, cursor, one_thread):
    """Store ``values``, one per record of the trace's records ``[lo, hi)``, in ``out`` in the
    kernel's record order (threads grouped): each thread's share of the chunk, in trace
    order, at its ``cursor`` (advanced)."""
    if one_thread:
        out[lo:hi] = values
        return
    th = np.searchsorted(idx.thr_tid, np.asarray(trace.tid[lo:hi]))
    by_thread = values[np.argsort(th, kind="stable")]
    counts = np.bincount(th, minlength=len(cursor))
    at = 0
    for t in np.flatnonzero(counts):
        c = int(counts[t])
        out[cursor[t]:cursor[t] + c] = by_thread[at:at + c]
        cursor[t] += c
        at += c


def _record_kernel(trace, idx):
    """1 for each access the kernel made in a system call (``call`` ``KERNEL``: its fault has
    no ``FAULT_FLAG_USER``, docs/model.md 15.3), in the kernel's record order; an empty array
    for a trace with none (every fault the user's).  Chunk by chunk, as
    :func:`_record_writes`."""
    if not trace.has_call:
        return np.zeros(0, np.uint8)
    n = len(trace)
    if not any(bool((np.asarray(trace.columns["call"][lo:lo + _CHUNK]) == Call.KERNEL).any())
               for lo in range(0, n, _CHUNK)):
        return np.zeros(0, np.uint8)
    out = _scratch(n, np.uint8)
    one_thread = len(idx.thr_tid) == 1
    cursor = idx.thr_off[:-1].copy()
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        made = (np.asarray(trace.columns["call"][lo:hi]) == Call.KERNEL).astype(np.uint8)
        _put_in_thread_order(out, made, trace, idx, lo, hi, cursor, one_thread)
    return out


#: The default event budget: EVENTS_PER_RECORD events for each record and thread, plus
#: EVENTS_BASE (docs/model.md section 10).  A record takes a few events (access, end, about
#: four more for a major fault, two a signal), so no legitimate replay comes near it; a
#: runaway one (a signal storm, an unbounded retry loop under an adversary) meets it after
#: seconds of wall time instead of running for hours to its horizon.
EVENTS_PER_RECORD = 64
EVENTS_BASE = 20_000_000


def _records_of(trace, op):
    """The indices of ``trace``'s records of operation ``op``, found chunk by chunk (no mask
    of the whole trace: a byte a record)."""
    return np.concatenate([np.zeros(0, np.int64)] + [
        lo + np.flatnonzero(np.asarray(trace.op[lo:lo + _CHUNK]) == op)
        for lo in range(0, len(trace), _CHUNK)])


def _lock_w_order(trace, idx):
    """The LOCK_W records in thread order (trace order within a thread) and each thread's
    share of them: ``(rec, thr_lw_off)``, thread i's records ``rec[thr_lw_off[i]:thr_lw_off[i +
    1]]``; every per-writer table of the kernel is in this order."""
    rec = _records_of(trace, Op.LOCK_W)
    th = np.searchsorted(idx.thr_tid, np.asarray(trace.tid)[rec].astype(np.int64))
    order = np.argsort(th, kind="stable")
    thr_lw_off = np.zeros(len(idx.thr_tid) + 1, np.int64)
    thr_lw_off[1:] = np.cumsum(np.bincount(th, minlength=len(idx.thr_tid)))
    return rec[order], thr_lw_off


def _lock_design_tables(trace, lw_rec, vma_pols, vma_asid, vma_first_vpn, vma_end_vpn, ps):
    """The writers' VMAs for the lock designs after 2010 (docs/model.md 15.2): whether any VMA's
    policy is such a design, and, if so, for each LOCK_W record ``lw_rec`` (thread order,
    :func:`_lock_w_order`) the VMAs its range overlaps, ``[lw_v0, lw_v1)`` (VMAs are in
    (address space, start) order, so they are contiguous)."""
    empty = np.zeros(0, np.int64)
    if not any(p.lock_design for p in vma_pols):
        return False, empty, empty
    rec, start, end = lock_w_ranges(trace)
    at = np.searchsorted(rec, lw_rec)          # each writer's row of the ranges (rec sorted)
    start, end = start[at], end[at]
    asid = np.asarray(trace.asid)[lw_rec].astype(np.int64)
    lw_v0 = np.zeros(len(rec), np.int64)
    lw_v1 = np.zeros(len(rec), np.int64)
    vstart = vma_first_vpn.astype(np.uint64) * np.uint64(ps)
    # each VMA's last byte (its end may be the top of the address space, 2**64)
    vlast = (vma_end_vpn - 1).astype(np.uint64) * np.uint64(ps) + np.uint64(ps - 1)
    for a in np.unique(asid):
        mine = np.flatnonzero(vma_asid == a)     # consecutive, by start
        sel = asid == a
        base = int(mine[0]) if len(mine) else 0
        # overlap: a VMA's last byte is at or past the range's start and its start before
        # the range's end
        lw_v0[sel] = base + np.searchsorted(vlast[mine], start[sel], side="left")
        lw_v1[sel] = base + np.searchsorted(vstart[mine], end[sel], side="left")
    return True, lw_v0, np.maximum(lw_v1, lw_v0)


def _lock_w_calls(trace, lw_rec, costs):
    """Each LOCK_W record's hold (ns) and whether its change comes at its release (1) or
    its grant (0), from its call (docs/model.md 15.12: ``mmap_cs_ns`` and the grant for a
    call the trace does not name), for the writers ``lw_rec`` (thread order,
    :func:`_lock_w_order`).  ``lw_hold`` is the part held for write; ``lw_read`` the part
    held for read after a downgrade (0: none; 15.13).  Returns ``(lw_hold, lw_read,
    lw_late)``."""
    c = trace.columns.get("call")       # (calls() of a trace without them: n zeros)
    call = (np.zeros(len(lw_rec), np.int64) if c is None
            else np.asarray(c)[lw_rec].astype(np.int64))
    write_ns, read_ns = writer_parts_ns(costs)
    lw_hold, lw_read = write_ns[call], read_ns[call]
    late = np.zeros(int(MAX_CALL) + 1, np.int64)
    late[[int(c) for c in CHANGE_AT_RELEASE]] = 1
    return lw_hold, lw_read, late[call]


def _lock_r_holds(trace, idx, mmap_read_cs_ns):
    """Each LOCK_R record's hold (ns; its ``size``, or ``mmap_read_cs_ns`` for size 0), in
    thread order (thread i's are ``lr_hold[thr_lr_off[i]:thr_lr_off[i + 1]]``), docs/model.md
    15.9."""
    T = len(idx.thr_tid)
    rec = _records_of(trace, Op.LOCK_R)
    th = np.searchsorted(idx.thr_tid, np.asarray(trace.tid)[rec].astype(np.int64))
    order = np.argsort(th, kind="stable")      # thread order, trace order within a thread
    raw = np.asarray(trace.size)[rec[order]]
    if len(raw) and int(raw.max()) >= MAX_NS:
        i = int(rec[order][np.argmax(raw >= MAX_NS)])
        raise ScenarioError(f"record {i}: a LOCK_R hold of {int(trace.size[i])} ns; holds must "
                            f"be below {LIMIT_TEXT} ns")
    hold = raw.astype(np.int64)
    hold[hold == 0] = int(mmap_read_cs_ns)
    thr_lr_off = np.zeros(T + 1, np.int64)
    thr_lr_off[1:] = np.cumsum(np.bincount(th, minlength=T))
    return hold, thr_lr_off


def _key_span(keys, asid, vs, ve):
    """``(lo, hi)``: the positions in sorted ``keys`` of address space ``asid``'s pages
    ``[vs, ve)``."""
    base = np.uint64(asid) << np.uint64(_VPN_BITS)
    lo = int(np.searchsorted(keys, base | np.uint64(vs)))
    top = (asid << _VPN_BITS) + ve      # (the next address space's first key at most)
    hi = len(keys) if top >= 1 << 64 else int(np.searchsorted(keys, np.uint64(top)))
    return lo, hi


def _with_move_pages(idx, moves):
    """``idx`` with the destination of every page a move (``(asid, vs, ve, to)``, in record
    order) may hand its state to: the page at the same offset from ``to`` of each page of
    ``[vs, ve)`` the run has (a page moved twice, the second time from a page the first move
    added)."""
    keys = idx.keys
    for asid, vs, ve, to in moves:
        lo, hi = _key_span(keys, asid, vs, ve)
        if lo == hi:
            continue
        dest = keys[lo:hi] - np.uint64(vs) + np.uint64(to)
        pos = np.minimum(np.searchsorted(keys, dest), len(keys) - 1)
        new = dest[keys[pos] != dest]
        if len(new):
            keys = np.union1d(keys, new)
    if len(keys) == len(idx.keys):
        return idx
    return _with_extra_pages(idx, np.setdiff1d(keys, idx.keys, assume_unique=True))


def _unmap_tables(ranges, trace, idx):
    """The mappings that end or move during the run (docs/model.md 11.9) for the kernel: each
    unmap at its thread's position of its record, thread by thread in record order, with the
    pages (touched, or fault-around's) of its range.  A move is two entries: the unmap of its
    destination, then its source's pages with their destinations.  Returns ``(um_pos,
    um_off, um_pages, um_dest, thr_um_off)`` (``um_dest[j]``: the page ``um_pages[j]`` hands
    its state to, -1 for a page that is unmapped).  ``ranges``: the scenario's
    :meth:`~vmlab.model.scenario.Scenario.unmap_ranges`."""
    T = len(idx.thr_tid)
    if not ranges:
        return (np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64),
                np.zeros(0, np.int64), np.zeros(T + 1, np.int64))
    th_of, pos_of, pages, dests = [], [], [], []
    at_pos = _thread_positions(trace, idx, [r[0] for r in ranges])
    for (rec, asid, vs, ve, to), pos in zip(ranges, at_pos.tolist()):
        th = int(np.searchsorted(idx.thr_tid, int(trace.tid[rec])))
        entries = []
        if to >= 0:
            lo, hi = _key_span(idx.keys, asid, to, to + ve - vs)
            entries.append((idx.by_key[lo:hi], None))
        lo, hi = _key_span(idx.keys, asid, vs, ve)
        src = idx.by_key[lo:hi]
        dest = None
        if to >= 0:
            dkeys = idx.keys[lo:hi] - np.uint64(vs) + np.uint64(to)
            at = np.minimum(np.searchsorted(idx.keys, dkeys), len(idx.keys) - 1)
            if (idx.keys[at] != dkeys).any():
                raise RuntimeError("vmlab: a moved page's destination is not among the run's "
                                   "pages (prepare's _with_move_pages)")
            dest = idx.by_key[at]
        entries.append((src, dest))
        for p, d in entries:
            th_of.append(th)
            pos_of.append(pos)
            pages.append(p.astype(np.int64))
            dests.append(np.full(len(p), -1, np.int64) if d is None else d.astype(np.int64))
    order = np.lexsort((np.arange(len(pages)), np.array(pos_of), np.array(th_of)))
    um_pos = np.array(pos_of, np.int64)[order]
    lens = np.array([len(pages[i]) for i in order], np.int64)
    um_off = np.zeros(len(order) + 1, np.int64)
    um_off[1:] = np.cumsum(lens)
    um_pages = np.concatenate([pages[i] for i in order])
    um_dest = np.concatenate([dests[i] for i in order])
    thr_um_off = np.zeros(T + 1, np.int64)
    thr_um_off[1:] = np.cumsum(np.bincount(np.array(th_of, np.int64), minlength=T))
    return um_pos, um_off, um_pages.astype(np.int64), um_dest, thr_um_off


def _read_tables(ops, trace, idx):
    """The reads during the run (docs/model.md 11.7) for the kernel, each at its thread's
    position of its record, thread by thread in record order (ties in the order given).
    ``ops``: the scenario's :meth:`~vmlab.model.scenario.Scenario.read_ops`.  Returns
    ``(rd_pos, rd_op, thr_rd_off, n_streams)``: ``rd_op[i]`` is ``(file, start, end,
    copy_start, copy_end, prev, stream row, pos_end)``, the stream row -1 for a read whose
    windows are given, else the row of its (file, stream) readahead state (11.7.1)."""
    T = len(idx.thr_tid)
    if not ops:
        return (np.zeros(0, np.int64), np.zeros((0, 8), np.int64), np.zeros(T + 1, np.int64),
                0)
    rows = {}
    ops = [o[:7] + ((rows.setdefault((o[1], o[7]), len(rows)) if o[7] >= 0 else -1),
                    o[8]) for o in ops]
    recs = [o[0] for o in ops]
    pos = _thread_positions(trace, idx, recs)
    th = np.searchsorted(idx.thr_tid, np.asarray(trace.tid[np.asarray(recs, np.int64)]))
    order = np.lexsort((np.arange(len(ops)), pos, th))
    rd_op = np.array([ops[i][1:] for i in order], np.int64).reshape(len(ops), 8)
    thr_rd_off = np.zeros(T + 1, np.int64)
    thr_rd_off[1:] = np.cumsum(np.bincount(th.astype(np.int64), minlength=T))
    return pos[order].astype(np.int64), rd_op, thr_rd_off, len(rows)


def _thread_positions(trace, idx, recs):
    """The positions of the records ``recs`` in the kernel's order (threads grouped, trace
    order within a thread): one pass over the trace's thread ids, chunk by chunk, up to the
    last of them (not a count over every earlier record for each: a recording with
    thousands of unmaps over 10^8 records would take hours)."""
    recs = np.asarray(recs, np.int64)
    if len(idx.thr_tid) == 1:
        return recs.copy()
    T = len(idx.thr_tid)
    out = np.empty(len(recs), np.int64)
    order = np.argsort(recs, kind="stable")
    srt = recs[order]
    before = np.zeros(T, np.int64)      # each thread's records before the chunk
    j = 0
    for lo in range(0, int(srt[-1]) + 1 if len(srt) else 0, _CHUNK):
        hi = min(len(trace), lo + _CHUNK)
        th = np.searchsorted(idx.thr_tid, np.asarray(trace.tid[lo:hi]))
        counts = np.bincount(th, minlength=T)
        k = int(np.searchsorted(srt, hi))
        if k > j:   # records srt[j:k] are in this chunk: their rank among their thread's
            loc = srt[j:k] - lo
            rank = np.empty(hi - lo, np.int64)
            rank[np.argsort(th, kind="stable")] = np.arange(hi - lo)
            first = np.cumsum(counts) - counts      # each thread's first slot in the sort
            t = th[loc]
            out[order[j:k]] = idx.thr_off[t] + before[t] + rank[loc] - first[t]
            j = k
        before += counts
    return out


def default_event_budget(n_records, n_threads):
    """The event budget of a run of ``n_records`` records on ``n_threads`` threads."""
    return EVENTS_PER_RECORD * (int(n_records) + int(n_threads)) + EVENTS_BASE


def _with_window_pages(idx, fa, files, vma_asid, vma_file, vma_off, vma_first_vpn,
                       vma_end_vpn, layout):
    """``idx`` with the pages that fault-around, folios or readahead windows may map without
    any record touching them (the union of the windows of the trace's pages)."""
    vma_p0, vma_p1, key_vma = _vma_ranges(idx.keys, vma_asid, vma_first_vpn, vma_end_vpn)
    if (key_vma >= 0).all():
        key_vpn = (idx.keys & np.uint64((1 << _VPN_BITS) - 1)).astype(np.int64)
        lo, hi, fr_lo, fr_hi, _ = _windows(key_vpn, key_vma, fa, files, vma_file, vma_off,
                                           vma_first_vpn, vma_end_vpn, True, layout)
        # (and the folio finish_fault() maps: both hold the page, their union is a range)
        lo, hi = np.minimum(lo, fr_lo), np.maximum(hi, fr_hi)
        if ((hi - lo) > 1).any():
            # the union of the windows (they are intervals in key order, their ends never
            # decreasing): one run of new keys per merged interval, so that the work is
            # the pages that may be mapped, not pages times window size
            a = vma_asid[key_vma].astype(np.uint64) << np.uint64(_VPN_BITS)
            klo = a + lo.astype(np.uint64)
            khi = a + hi.astype(np.uint64)
            reach = np.maximum.accumulate(khi)
            new = np.ones(len(klo), bool)
            new[1:] = klo[1:] > reach[:-1]
            first = np.flatnonzero(new)
            m_lo = klo[first]
            m_hi = np.maximum.reduceat(khi, first)
            n = (m_hi - m_lo).astype(np.int64)
            step = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
            ext = np.repeat(m_lo, n) + step.astype(np.uint64)
            # (both sorted and unique: a search, not numpy's hashing setdiff1d)
            pos = np.minimum(np.searchsorted(idx.keys, ext), len(idx.keys) - 1)
            extra = ext[idx.keys[pos] != ext]
            if len(extra):
                idx = _with_extra_pages(idx, extra)
    return idx


def _policy_rows(vma_pols):
    """Each VMA's row in the table of the distinct policies' knobs (``codes.K_*``)."""
    uniq_pols = []
    vma_pol = np.zeros(len(vma_pols), np.int64)
    for i, p in enumerate(vma_pols):
        if p not in uniq_pols:
            uniq_pols.append(p)
        vma_pol[i] = uniq_pols.index(p)
    pol_tab = np.zeros((max(1, len(uniq_pols)), C.K_NCOL), np.int64)
    for j, p in enumerate(uniq_pols):
        pol_tab[j] = knob_row(p)
    return vma_pol, pol_tab


def _eager_mappings(trace, idx, vmas, vma_pols, vma_p0, vma_p1):
    """The eager mappings (``remap_pfn_range``) by owner thread, in VMA order: the VMA's
    ``map_thread``, else the thread of its first record: ``(emap_off, emap_vma)``."""
    T = len(idx.thr_tid)
    emap = [[] for _ in range(T)]
    for i, (v, p) in enumerate(zip(vmas, vma_pols)):
        if not p.eager:
            continue
        if v.map_thread is not None:
            j = np.searchsorted(idx.thr_tid, int(v.map_thread))
            if j >= T or idx.thr_tid[j] != int(v.map_thread):
                raise ScenarioError(f"VMA {v.label}: map_thread {v.map_thread} is not a thread of the trace")
        elif vma_p1[i] > vma_p0[i]:
            r = int(idx.first_rec[vma_p0[i]:vma_p1[i]].min())
            j = int(np.searchsorted(idx.thr_tid, int(trace.tid[r])))
        else:
            j = 0
        emap[j].append(i)
    emap_off = np.zeros(T + 1, np.int64)
    emap_off[1:] = np.cumsum([len(e) for e in emap])
    emap_vma = np.array([i for e in emap for i in e], np.int64)
    return emap_off, emap_vma


def _check_arguments(scenario, event_budget):
    """One line for an event budget or a scenario that is not one."""
    if event_budget is not None and (isinstance(event_budget, bool) or
                                     not isinstance(event_budget, (int, np.integer)) or
                                     event_budget < -1):
        raise ScenarioError(f"event_budget={event_budget!r}: give a number of events >= 0, "
                            "or -1 for no bound")
    if not callable(getattr(type(scenario), "validate", None)):
        hint = (": wrap the trace, e.g. Scenario(trace, backing='file')"
                if hasattr(scenario, "columns") else "")
        raise ScenarioError(f"simulate() needs a Scenario, got {type(scenario).__name__}{hint}")


def _signal_arrays(scenario, idx, dist_index):
    """Each thread's signal schedule as arrays (code, parameter, start, fatal) and the
    explicit times, thread ``i``'s at ``sig_times[sig_toff[i]:sig_toff[i + 1]]``;
    ``dist_index`` gives a distribution's row of the quantile tables."""
    T = len(idx.thr_tid)
    sched = scenario.signal_schedule_of(idx.thr_tid)
    sig_kind = np.zeros(T, np.int64)
    sig_param = np.zeros(T, np.int64)
    sig_start = np.zeros(T, np.int64)
    sig_fatal = np.zeros(T, np.int64)
    times = []
    sig_toff = np.zeros(T + 1, np.int64)
    # a schedule for "every thread" skips threads made only of LOCK_W records
    access_tids = set(idx.thr_tid[idx.thr_access == 1].tolist())
    for j, tid in enumerate(idx.thr_tid):
        s = sched.get(int(tid))
        if s is not None and s.threads is None and int(tid) not in access_tids:
            s = None
        tl = []
        if s is not None:
            sig_kind[j] = C.SCHEDULE_CODES[s.kind]
            sig_start[j] = s.start_ns
            sig_fatal[j] = int(s.fatal)
            if s.kind == "poisson":
                sig_param[j] = dist_index(signal_interval_dist(s))
            elif s.kind == "periodic":
                sig_param[j] = int(s.period_ns)
            else:
                tl = list(s.times_ns)
        times.extend(tl)
        sig_toff[j + 1] = sig_toff[j] + len(tl)
    sig_times = np.array(times, np.int64)
    return sig_kind, sig_param, sig_start, sig_fatal, sig_times, sig_toff


def _adversary_arrays(scenario, vmas, dist_index, NS, P, idx, key_vpn, vma_p0, vma_p1,
                      vma_first_vpn, vma_end_vpn, cache_mode, files, vma_file, vma_off, layout):
    """The adversary's schedule (code, parameter, start, explicit times) and its target: 1
    for each page-cache entry of its range (the folios wholly inside it, docs/model.md
    11.4)."""
    adv = scenario.adversary
    adv_target = np.zeros(NS, np.uint8)
    adv_kind, adv_param, adv_start = C.SCHED_NONE, 0, 0
    adv_times = np.zeros(0, np.int64)
    if adv is not None:
        vi = scenario.adversary_vma(vmas)
        lo = vma_first_vpn[vi] + int(adv.first_page)
        hi = vma_end_vpn[vi] if adv.n_pages is None else lo + int(adv.n_pages)
        sel = np.arange(vma_p0[vi], vma_p1[vi])
        sel = sel[(key_vpn[sel] >= lo) & (key_vpn[sel] < hi)]
        if cache_mode:
            # the folios that lie wholly in the range (docs/model.md 11.4)
            fi = int(vma_file[vi])
            npg = files[fi][1]
            olo = int(vma_off[vi]) + lo - int(vma_first_vpn[vi])
            ohi = min(int(vma_off[vi]) + hi - int(vma_first_vpn[vi]), npg)
            a, b = layout.f_base[fi], layout.f_base[fi + 1]
            st, sz = layout.start[a:b], layout.size[a:b]
            k = np.flatnonzero((st >= olo) & (np.minimum(st + sz, npg) <= ohi))
            adv_target[P + a + k] = 1
        else:
            adv_target[idx.by_key[sel]] = 1
        adv_kind = C.SCHEDULE_CODES[adv.kind]
        adv_start = int(adv.start_ns)
        if adv.kind == "poisson":
            from ..model.costs import Exponential

            adv_param = dist_index(Exponential(1e9 / adv.rate_hz))
        elif adv.kind == "periodic":
            adv_param = int(adv.period_ns)
        else:
            adv_times = np.array(adv.times_ns, np.int64)
    return adv_kind, adv_param, adv_start, adv_times, adv_target


def _memory_limit(scenario, T, layout, cache_mode, ps):
    """The limit in frames (-1: none): ``memory_pages``, checked against the frames that
    in-flight and pinned pages (or folios) need, or ``memory_bytes`` (no minimum)."""
    memory_pages = -1 if scenario.memory_pages is None else int(scenario.memory_pages)
    if memory_pages >= 0 and memory_pages < min_memory_pages(T):
        raise ScenarioError(
            f"memory_pages={memory_pages} is too small for {T} threads: every in-flight or "
            f"pinned page needs a frame; use at least {min_memory_pages(T)}")
    big = int(layout.size.max()) if len(layout.size) else 1
    if memory_pages >= 0 and cache_mode and memory_pages < min_memory_pages(T) * big:
        raise ScenarioError(
            f"memory_pages={memory_pages} is too small for {T} threads with folios of {big} "
            f"pages: every in-flight or pinned folio needs its frames; use at least "
            f"{min_memory_pages(T) * big} (or memory_bytes, which has no minimum)")
    memory_limit = memory_pages
    if scenario.memory_bytes is not None:
        memory_limit = int(scenario.memory_bytes) // ps
    return memory_limit


def _preload_entries(preload_keys, idx, vma_backing, page_vma, cache_mode, page_slot):
    """The page-cache entries resident at time 0, in the order given: the preloaded pages
    of file VMAs (address space 0), or their folios, each once."""
    preload = np.zeros(0, np.int64)
    if preload_keys is not None and len(preload_keys):
        # preloaded pages are in address space 0; only file pages use the page cache
        pos = idx.by_key[np.searchsorted(idx.keys, preload_keys)]
        pos = pos[vma_backing[page_vma[pos]] == C.B_FILE]
        # first occurrence order, no duplicates
        _, first_i = np.unique(pos, return_index=True)
        preload = pos[np.sort(first_i)].astype(np.int64)
        if cache_mode:   # their folios, in the order of their first page
            ent = page_slot[preload]
            _, first_i = np.unique(ent, return_index=True)
            preload = ent[np.sort(first_i)].astype(np.int64)
    return preload


#: A step of the engine adds a handful of costs to a thread's time; the check below allows
#: for this many of each of the largest (a fault's lookup, line costs, handler, I/O, wake-up
#: and signal are each added once per step).
_STEP_TERMS = 4


def _check_time_room(scenario, costs, tables, holds, vma_npages, T):
    """Refuse costs and a horizon that could overflow the engine's int64 times.

    A thread stops at the first step past ``horizon_ns``, and one step adds at most the
    costs below (the largest value of every distribution, every scalar cost, a writer's
    hold, an eager remap's PTEs, the line costs with every thread on the word), each at most
    :data:`_STEP_TERMS` times; the run's totals add up to ``T`` threads' times.  So
    ``T * (horizon + _STEP_TERMS * step)`` must stay below 2**63.  Every realistic input is
    many orders of magnitude below; an input near the limits of each field (2**62 ns) gets one
    line naming the largest term instead of wrapped times."""
    terms = {name: int(v) for name, v in costs.scalar_items().items()
             if not name.endswith("_lines") and not name.endswith("_line_ns")}
    terms["the largest value of io_ns, wait_ns, lock_wakeup_ns, io_wakeup_ns or a signal's "
          "or adversary's "
          "distribution"] = (
        int(tables.max()) if tables.size else 0)
    terms["a LOCK_W or LOCK_R hold"] = max((int(h.max()) for h in holds if len(h)), default=0)
    terms["pte_ns times the largest VMA's pages (an eager remap)"] = (
        int(costs.pte_ns) * int(vma_npages.max()) if len(vma_npages) else 0)
    for kind in ("mmap_lock", "vma_lock"):
        lines = max(getattr(costs, f"{kind}_acquire_lines"), getattr(costs, f"{kind}_release_lines"))
        terms[f"{kind}_line_ns times its lines times the threads"] = (
            int(getattr(costs, f"{kind}_line_ns")) * int(lines) * T)
    step = sum(terms.values())
    horizon = int(scenario.horizon_ns)
    if max(T, 1) * (horizon + _STEP_TERMS * step) < 2**63:
        return
    name, value = max(terms.items(), key=lambda kv: kv[1])
    raise ScenarioError(
        f"horizon_ns {horizon:,} with costs this large could overflow the engine's 64-bit "
        f"times: one step can add {step:,} ns (the largest term: {name}, {value:,} ns) and "
        f"{max(T, 1):,} threads' totals must stay below 2**63 ns; lower horizon_ns or the costs")


def prepare(scenario, policy=None, fast_path=True, event_budget=None):
    """Validate ``scenario`` for ``policy`` and build the kernel's inputs.

    ``fast_path=False`` makes the kernel take every step through its event loop (the same
    records, slower: a check of the fast path).  ``event_budget`` bounds the events the run
    may take (``None``: :func:`default_event_budget`; -1: no bound); a run that exceeds it
    stops there, its unfinished records reported as at a horizon, and counts as livelocked
    (``livelock_reason`` ``"event_budget"``)."""
    _check_arguments(scenario, event_budget)
    pol, vmas, vma_pols = scenario.validate(policy)
    refuse_knobs(scenario, vmas, runs=RUNS_KNOBS)
    kernel_model = scenario.fault_model == "kernel"
    # twolist in the kernel model reads the PTEs' young bits (docs/model.md 8.2-8.3)
    young = kernel_model and scenario.replacement == "twolist"
    trace = scenario.trace
    idx = index_trace(trace)
    preload_keys = None
    if scenario.preload is not None:
        shift = int(trace.page_size).bit_length() - 1
        preload_keys = np.asarray(scenario.preload, dtype=np.uint64).ravel() >> np.uint64(shift)
        extra = np.setdiff1d(preload_keys, idx.keys)
        if len(extra):
            idx = _with_extra_pages(idx, extra)
    ps = int(trace.page_size)
    T = len(idx.thr_tid)
    nv = len(vmas)
    vma_asid = np.array([v.asid for v in vmas], np.int64)
    vma_first_vpn = np.array([v.start // ps for v in vmas], np.int64)
    vma_end_vpn = np.array([v.end // ps for v in vmas], np.int64)
    vma_npages = vma_end_vpn - vma_first_vpn
    # the page cache by file and folio, readahead, the memory limit (docs/model.md 11.3-12)
    knobs = scenario.granularity_knobs(vmas)
    cache_mode = bool(set(knobs) - {"fault_model"})
    files, vma_file = scenario.file_table(vmas)
    vma_file = np.array(vma_file, np.int64)
    vma_off = np.array([v.offset // ps for v in vmas], np.int64)
    fa = int(scenario.fault_around_pages)
    # (entries are folios only in cache mode: otherwise a file VMA may have no size at all)
    layout = _folio_layout(files if cache_mode else [])
    unmaps = scenario.unmap_ranges(vmas, vma_pols)
    moves = [(asid, vs, ve, to) for _r, asid, vs, ve, to in unmaps if to >= 0]
    while True:
        n_keys = len(idx.keys)
        if cache_mode:
            # the pages fault-around may map without any record touching them join the pages
            idx = _with_window_pages(idx, fa, files, vma_asid, vma_file, vma_off,
                                     vma_first_vpn, vma_end_vpn, layout)
        # and so do the pages a move hands its pages' state to (docs/model.md 11.9)
        idx = _with_move_pages(idx, moves)
        if len(idx.keys) == n_keys or not (cache_mode and moves):
            break
    P = len(idx.keys)
    # arrays indexed by key rank first (VMAs are key ranges), page id order at the end
    key_asid = (idx.keys >> np.uint64(_VPN_BITS)).astype(np.int64)
    key_vpn = (idx.keys & np.uint64((1 << _VPN_BITS) - 1)).astype(np.int64)
    page_asid = key_asid[idx.rank]
    page_vpn = key_vpn[idx.rank]

    # VMAs -> dense page ranges
    vma_p0, vma_p1, key_vma = _vma_ranges(idx.keys, vma_asid, vma_first_vpn, vma_end_vpn)
    if P and (key_vma < 0).any():
        bad = int(np.flatnonzero(key_vma < 0)[0])
        r = int(idx.first_rec[bad])
        if r >= len(trace):
            raise ScenarioError(
                f"preload address {int(key_vpn[bad]) * ps:#x} is in no VMA; preload only "
                "pages of file VMAs")
        raise ScenarioError(
            f"record {r} (thread {int(trace.tid[r])}, address {int(trace.addr[r]):#x}, "
            f"address space {int(key_asid[bad])}) is in no VMA; add a VMA that covers it "
            "(or leave vmas=None to infer them from the trace)")
    page_vma = key_vma[idx.rank]
    if cache_mode:
        f_base = layout.f_base
        page_slot, slot_frames, sp_off, sp_pages = _cache_layout(
            files, layout, vma_file, vma_off, vma_first_vpn, page_vma, page_vpn, idx.first_rec,
            trace, ps)
    else:   # every page its own entry of one frame: the page cache of docs/model.md 8
        page_slot = np.arange(P, dtype=np.int64)
        slot_frames = np.ones(P, np.int64)
        f_base = np.zeros(len(files) + 1, np.int64)
        sp_off = np.zeros(1, np.int64)
        sp_pages = np.zeros(0, np.int64)
    NS = len(slot_frames)   # page-cache entries (ids >= P: folios)
    if fa > 1 or cache_mode:
        key_page_vma = page_vma[idx.by_key] if P else page_vma
        ws = _windows(key_vpn, key_page_vma, fa, files, vma_file, vma_off, vma_first_vpn,
                      vma_end_vpn, cache_mode, layout)
        win_lo, win_hi, fr_lo, fr_hi, last_lo = (w[idx.rank] if P else w for w in ws)
        # a page table an eager mapping covers (remap_pfn_range at the mmap) is never empty:
        # no empty-table quirk there (docs/model.md 11.3)
        eager = [i for i, pol in enumerate(vma_pols) if pol.eager]
        if eager and P:
            tabs = {(int(vma_asid[i]) << 40) | r for i in eager
                    for r in range(int(vma_first_vpn[i]) >> 9, (int(vma_end_vpn[i]) - 1 >> 9) + 1)}
            covered = np.isin((page_asid.astype(np.int64) << 40) | (page_vpn >> 9),
                              np.fromiter(tabs, np.int64, len(tabs)))
            last_lo = np.where(covered, -1, last_lo)
    else:   # every window is its page: the kernel reads no window (loop.py: G_HAS_WINDOWS)
        win_lo = win_hi = fr_lo = fr_hi = last_lo = np.zeros(0, np.int64)

    vma_pol, pol_tab = _policy_rows(vma_pols)
    vma_backing = np.array([C.BACKING_CODES[v.backing] for v in vmas], np.int64)
    vma_private = np.array([int(v.private) for v in vmas], np.int64)
    vma_anon_vma = np.array([int(v.anon_vma) for v in vmas], np.uint8)
    rec_write = _record_writes(trace, idx, vmas, page_vma, kernel_model)
    rec_kernel = _record_kernel(trace, idx)

    emap_off, emap_vma = _eager_mappings(trace, idx, vmas, vma_pols, vma_p0, vma_p1)
    # distributions
    dists = []

    def dist_index(d):
        for j, e in enumerate(dists):
            if e == d:
                return j
        dists.append(d)
        return len(dists) - 1

    costs = scenario.costs
    io_dist = dist_index(costs.io_ns)
    wait_dist = dist_index(costs.wait_ns)
    wake_dist = dist_index(costs.lock_wakeup_ns)
    io_wake_dist = dist_index(costs.io_wakeup_ns)

    sig_kind, sig_param, sig_start, sig_fatal, sig_times, sig_toff = _signal_arrays(
        scenario, idx, dist_index)

    adv_kind, adv_param, adv_start, adv_times, adv_target = _adversary_arrays(
        scenario, vmas, dist_index, NS, P, idx, key_vpn, vma_p0, vma_p1, vma_first_vpn,
        vma_end_vpn, cache_mode, files, vma_file, vma_off, layout)

    tables = np.empty((len(dists), TABLE_SIZE), np.int64)
    for j, d in enumerate(dists):
        tables[j] = d.table()

    memory_limit = _memory_limit(scenario, T, layout, cache_mode, ps)
    preload = _preload_entries(preload_keys, idx, vma_backing, page_vma, cache_mode, page_slot)

    lw_rec, thr_lw_off = _lock_w_order(trace, idx)
    designs, lw_v0, lw_v1 = _lock_design_tables(trace, lw_rec, vma_pols, vma_asid,
                                                vma_first_vpn, vma_end_vpn, ps)
    lw_hold, lw_read, lw_late = _lock_w_calls(trace, lw_rec, costs)
    lr_hold, thr_lr_off = _lock_r_holds(trace, idx, costs.mmap_read_cs_ns)
    um_pos, um_off, um_pages, um_dest, thr_um_off = _unmap_tables(unmaps, trace, idx)
    rd_pos, rd_op, thr_rd_off, rd_streams = _read_tables(scenario.read_ops(files), trace,
                                                         idx)
    _check_time_room(scenario, costs, tables, (lw_hold, lw_read, lr_hold), vma_npages, T)
    cost_arr = np.array([getattr(costs, name) for name in C.COST_NAMES], np.int64)
    lock_costs = bool(costs.mmap_lock_line_ns or costs.vma_lock_line_ns or costs.vma_lookup_ns
                      or costs.fault_shared_ns
                      or costs.line_miss_ns * costs.vma_lock_reread_lines)
    fa = int(scenario.fault_around_pages)
    # twolist's protection of the working set (docs/model.md 8.1; the other replacements
    # have no active list and ignore the knob)
    workingset = bool(scenario.workingset) and scenario.replacement == "twolist"
    io_wake_on = bool(tables[io_wake_dist].max() > 0)
    vma_fast = np.zeros(nv, np.int64)
    vma_drop = np.zeros(nv, np.bool_)
    for i in range(nv):
        vma_fast[i], vma_drop[i] = fast_path_eligibility(int(vma_backing[i]),
                                                         pol_tab[vma_pol[i]], fa, lock_costs,
                                                         workingset, io_wake_on)
    inputs = KernelInputs(
        rec_page=idx.rec_page, rec_gap=idx.rec_gap, has_gap=bool(trace.has_gap),
        rec_write=rec_write, rec_kernel=rec_kernel, vma_private=vma_private, vma_anon_vma=vma_anon_vma,
        kernel_model=kernel_model,
        thr_off=idx.thr_off, thr_tid=idx.thr_tid, thr_access=idx.thr_access,
        page_vma=page_vma, page_vpn=page_vpn, page_rank=idx.rank, by_key=idx.by_key,
        vma_backing=vma_backing, vma_pol=vma_pol, vma_asid=vma_asid, vma_p0=vma_p0,
        vma_p1=vma_p1, vma_npages=vma_npages, vma_fast=vma_fast, vma_drop=vma_drop,
        emap_vma=emap_vma, emap_off=emap_off,
        pol=pol_tab, costs=cost_arr, tables=tables, tflat=tables.ravel(),
        io_dist=io_dist, wait_dist=wait_dist, wake_dist=wake_dist,
        wake_on=bool(tables[wake_dist].max() > 0), io_wake_dist=io_wake_dist,
        io_wake_on=io_wake_on,
        wake_all_readers=bool(scenario.rwsem_wake_all_readers),
        rwsem_steal=bool(scenario.rwsem_steal),
        sig_kind=sig_kind, sig_param=sig_param, sig_start=sig_start, sig_fatal=sig_fatal,
        sig_times=sig_times, sig_toff=sig_toff,
        adv_kind=adv_kind, adv_param=adv_param, adv_start=adv_start, adv_times=adv_times,
        adv_target=adv_target, adv_entries=np.flatnonzero(adv_target).astype(np.int64),
        memory_pages=memory_limit, replacement=C.REPLACEMENT_CODES[scenario.replacement],
        twolist_ratio=twolist_ratio(memory_limit, ps), workingset=workingset,
        young=young, tlb=young and bool(scenario.tlb_young),
        age_all=young and bool(scenario.reclaim_ages_active),
        reclaim_prio=(young and bool(scenario.reclaim_priorities)
                      and scenario.memory_bytes is not None),
        charge_anon=scenario.memory_bytes is not None,
        reclaim_batch=int(scenario.reclaim_batch) if scenario.memory_bytes is not None else 1,
        lru_batch=int(scenario.lru_add_batch) if scenario.lru_add_batch_applies else 0,
        **_page_tables(scenario.memory_bytes is not None, page_asid, page_vpn, vma_asid,
                       vma_first_vpn, vma_end_vpn, T),
        page_slot=page_slot, slot_frames=slot_frames, sp_off=sp_off, sp_pages=sp_pages,
        win_lo=win_lo, win_hi=win_hi, fr_lo=fr_lo, fr_hi=fr_hi, last_lo=last_lo,
        vma_file=vma_file, vma_off=vma_off,
        vma_vpn0=vma_first_vpn,
        vma_madv=np.array([("normal", "random", "sequential").index(v.madvise) for v in vmas],
                          np.int64),
        vma_exec=np.array([int("x" in v.prot) for v in vmas], np.int64),
        f_npages=np.array([f[1] for f in files] or [0], np.int64),
        f_fstart=layout.start if len(layout.start) else np.zeros(1, np.int64),
        f_fsize=layout.size if len(layout.size) else np.ones(1, np.int64), f_base=f_base,
        ra_pages=int(scenario.ra_pages),
        fault_around=int(scenario.fault_around_pages), preload=preload,
        designs=designs, lw_v0=lw_v0, lw_v1=lw_v1, thr_lw_off=thr_lw_off,
        lw_hold=lw_hold, lw_read=lw_read, lw_late=lw_late,
        lr_hold=lr_hold, thr_lr_off=thr_lr_off,
        um_pos=um_pos, um_off=um_off, um_pages=um_pages, um_dest=um_dest,
        thr_um_off=thr_um_off, rd_pos=rd_pos, rd_op=rd_op, thr_rd_off=thr_rd_off, rd_streams=rd_streams,
        n_asid=int(idx.n_asid), horizon=int(scenario.horizon_ns),
        seed=np.uint64(int(scenario.seed)),
        keep_records=bool(scenario.records), bin_ns=int(scenario.bin_ns),
        # (the page model's, with each page its own page-cache entry)
        # (and without unmaps: its runs of records would pass an unmap's record by)
        fast_path=bool(fast_path) and not kernel_model and not cache_mode and not len(um_pos),
        event_budget=(default_event_budget(len(trace), T) if event_budget is None
                      else int(event_budget)),
    )
    return Prepared(inputs, idx, vmas, vma_pols, pol, page_vma, page_vpn, page_asid)
