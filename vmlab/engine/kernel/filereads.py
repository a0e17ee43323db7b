"""``read()``-family calls during the run (docs/model.md 11.7, ``Scenario.reads``): each
brings its readahead windows' missing folios into the page cache as a readahead does, then
the folios of the pages it copies as a fault does, and marks them accessed.  Applied when
its thread starts the record where the call returned (record.py ``_ph_start``).  A call
of a stream (``FileRead.stream``, 11.7.1) has no given windows: the kernel's ``read()``
readahead decides them as the call runs, from its stream's state (``W.RS``, the kernel's
``struct file_ra_state``) and the page cache as the run finds it.  The reference simulator
(tests/naive_engine.py ``_read_call``) implements the same independently."""
from __future__ import annotations

from ..._numba import njit_borrow, njit_verb
from .. import codes as C
from . import state as g
from .accounting import _count_in_bin, _oom
from .fault import _read_window
from .pagecache import F_MSIO, F_RES, _admit_entry, _pin, _touch, _unpin
from .readahead import _folio_at, _read_ends


# a read() stream's readahead state, one row of W.RS per (file, stream): the window
# (start, size, async part) and the page of the previous call's end (ra->prev_pos; -1 none)
RS_START, RS_SIZE, RS_ASYNC, RS_PREV = 0, 1, 2, 3


def init_ra_size(req, M):
    """get_init_ra_size of mm/readahead.c: the first window of a sequential read of ``req``
    pages, ``M`` the largest.  Plain Python, compiled below for the run and called as is by
    the recording's replay (``vmlab.model.recorded``)."""
    new = 1
    while new < req:
        new *= 2
    if new <= M // 32:
        return 4 * new
    if new <= M // 4:
        return 2 * new
    return M


def next_ra_size(cur, M):
    """get_next_ra_size of mm/readahead.c: the window after one of ``cur`` pages."""
    if cur < M // 16:
        return 4 * cur
    if cur <= M // 2:
        return 2 * cur
    return M


_init_ra_size = njit_verb(init_ra_size)
_next_ra_size = njit_verb(next_ra_size)


@njit_borrow
def _cached(K, W, f, o):
    """File page ``o`` of file ``f`` is in the page cache (or its read is in flight)."""
    return (W.FL[K.page_vma.shape[0] + _folio_at(K.f_base, K.f_fstart, f, o)] & F_RES) != 0


@njit_borrow
def _ra_read(K, W, G, th, t, f, lo, hi, mark):
    """A window ``[lo, hi)`` of file ``f`` read by the call (the folio of page ``mark``
    marked, -1: none): its missing folios come in as a readahead's.  Returns pages read."""
    if lo < 0:
        lo = 0
    if hi > K.f_npages[f]:
        hi = K.f_npages[f]
    if lo >= hi:
        return 0
    _n, pg = _read_window(K, W, G, th, t, f, lo, hi, mark, -1)
    _read_ends(f, lo, hi, K.page_vma.shape[0], K.f_base, K.f_fstart, W.FL)
    return pg


@njit_borrow
def _sync_ra(K, W, G, th, t, f, r, index, req):
    """page_cache_sync_ra: file page ``index`` is missing for a read of ``req`` pages from
    it; stream ``r``'s window is set and read (docs/model.md 11.7.1).  Returns pages read."""
    RS = W.RS
    R = K.ra_pages
    if R == 0:                   # no readahead: the page alone
        return _ra_read(K, W, G, th, t, f, index, index + 1, -1)
    M = R if R > req else req    # (an oversized read is read whole)
    pi = RS[r, RS_PREV]
    if index == 0 or req > R or (pi >= 0 and 0 <= index - pi <= 1):
        size = _init_ra_size(req, M)
        RS[r, RS_START] = index
        RS[r, RS_SIZE] = size
        RS[r, RS_ASYNC] = size - req if size > req else size >> 1
    else:
        # page_cache_prev_miss: the cached run that ends before the page
        j = index - 1
        scanned = 0
        while scanned < M and j >= 0 and _cached(K, W, f, j):
            j -= 1
            scanned += 1
        contig = index - j - 1
        if contig <= req:        # a small random read: as is, the state left alone
            return _ra_read(K, W, G, th, t, f, index, index + req, -1)
        if j < 0:                # cached from the file's start: a long stream
            contig *= 2
        RS[r, RS_START] = index
        RS[r, RS_SIZE] = contig + req if contig + req < M else M
        RS[r, RS_ASYNC] = 1
    st = RS[r, RS_START]
    sz = RS[r, RS_SIZE]
    return _ra_read(K, W, G, th, t, f, st, st + sz, st + sz - RS[r, RS_ASYNC])


@njit_borrow
def _async_ra(K, W, G, th, t, f, r, index, req):
    """page_cache_async_ra: the read meets the readahead mark on file page ``index``;
    stream ``r``'s window moves on and is read.  Returns pages read."""
    RS = W.RS
    R = K.ra_pages
    if R == 0:
        return 0
    M = R if R > req else req
    if index == RS[r, RS_START] + RS[r, RS_SIZE] - RS[r, RS_ASYNC]:
        RS[r, RS_START] += RS[r, RS_SIZE]
        RS[r, RS_SIZE] = _next_ra_size(RS[r, RS_SIZE], M)
    else:                        # another stream's mark: sized from the cache after it
        s = index + 1
        n = K.f_npages[f]
        while s < n and s - index <= M and _cached(K, W, f, s):
            s += 1
        if s - index > M or s >= n:
            return 0
        RS[r, RS_START] = s
        RS[r, RS_SIZE] = _next_ra_size(s - index + req, M)
    RS[r, RS_ASYNC] = RS[r, RS_SIZE]
    st = RS[r, RS_START]
    return _ra_read(K, W, G, th, t, f, st, st + RS[r, RS_SIZE], st)


@njit_borrow
def _read_call(K, W, G, th, t, ri):
    """Read ``ri`` (``K.rd_op``), a ``read()`` call that returned before thread ``th``'s record
    at ``t`` (docs/model.md 11.7): its window's missing folios come in as a readahead's (no
    frame ends the window), then the folios of the pages it copies (a missing one through
    its own readahead first, else charged as a fault's), each marked accessed once (the
    first not when it holds the previous read's end).  Returns False on an OOM."""
    if K.rd_op[ri, 6] >= 0:
        return _read_call_stream(K, W, G, th, t, ri)
    f, lo, hi = K.rd_op[ri, 0], K.rd_op[ri, 1], K.rd_op[ri, 2]
    a, b, prev = K.rd_op[ri, 3], K.rd_op[ri, 4], K.rd_op[ri, 5]
    FL, cnt = W.FL, W.cnt
    P = K.page_vma.shape[0]
    pages = 0
    if lo < hi:
        _n, pages = _read_window(K, W, G, th, t, f, lo, hi, -1, -1)
        _read_ends(f, max(lo, 0), min(hi, K.f_npages[f]), P, K.f_base, K.f_fstart, FL)
    k0 = _folio_at(K.f_base, K.f_fstart, f, a)
    k1 = _folio_at(K.f_base, K.f_fstart, f, b - 1) if a < b else k0 - 1
    for k in range(k0, k1 + 1):
        s = P + k
        if (FL[s] & F_RES) == 0:
            # a page the call finds missing opens its synchronous readahead first
            # (page_cache_sync_ra: __GFP_NORETRY, unmapped victims), then, if that found no
            # frame, the call reads it alone charged as a fault's (filemap_create_folio)
            o = K.f_fstart[k]
            _n, pg = _read_window(K, W, G, th, t, f, o, o + 1, -1, -1)
            _read_ends(f, o, o + 1, P, K.f_base, K.f_fstart, FL)
            pages += pg
        if (FL[s] & F_RES) == 0:
            ok, G[g.G_N_RESIDENT], G[g.G_N_ENT], G[g.G_HAND], G[g.G_NEV] = _admit_entry(
                s, K.memory_pages, G[g.G_N_ANON], G[g.G_N_RESIDENT], G[g.G_N_ENT],
                K.replacement, G[g.G_HAND], FL.shape[0], W.LL, FL, cnt, K.twolist_ratio, P,
                K.slot_frames, K.sp_off, K.sp_pages, W.MAPC, K.charge_anon, W.evs,
                G[g.G_NEV], K.keep_records, t, C.BY_READ, th, K.workingset, W.SH, G,
                K.page_vma, K.vma_exec, K.young, W.PT, W.BQ, W.PIN)
            if not ok:
                _oom(W, G, th, t)
                return False
            FL[s] |= F_MSIO
            W.RAM[s] = 0
            pages += K.slot_frames[s]
        if k == k0 and prev >= 0 and K.f_fstart[k] <= prev < K.f_fstart[k] + K.f_fsize[k]:
            continue   # (read again inside the folio the previous read ended in)
        _touch(s, K.replacement, FL.shape[0], W.LL, FL, cnt, K.workingset, G, K.slot_frames)
    if pages > 0:
        cnt[C.CNT_IO] += 1
        cnt[C.CNT_READ_PAGES] += pages
        _count_in_bin(W, G, C.TSB_IOS, t)
    return True


@njit_borrow
def _read_strict(K, W, G, th, t, s):
    """The call reads folio ``s`` alone, charged as a fault's (filemap_create_folio).
    Returns its pages, or -1 on an OOM."""
    FL = W.FL
    ok, G[g.G_N_RESIDENT], G[g.G_N_ENT], G[g.G_HAND], G[g.G_NEV] = _admit_entry(
        s, K.memory_pages, G[g.G_N_ANON], G[g.G_N_RESIDENT], G[g.G_N_ENT],
        K.replacement, G[g.G_HAND], FL.shape[0], W.LL, FL, W.cnt, K.twolist_ratio,
        K.page_vma.shape[0], K.slot_frames, K.sp_off, K.sp_pages, W.MAPC, K.charge_anon,
        W.evs, G[g.G_NEV], K.keep_records, t, C.BY_READ, th, K.workingset, W.SH, G,
        K.page_vma, K.vma_exec, K.young, W.PT, W.BQ, W.PIN)
    if not ok:
        _oom(W, G, th, t)
        return -1
    FL[s] |= F_MSIO
    W.RAM[s] = 0
    return K.slot_frames[s]


@njit_borrow
def _read_call_stream(K, W, G, th, t, ri):
    """Read ``ri`` of a stream (docs/model.md 11.7.1), page by page as the kernel's
    read path meets them: a missing page opens the stream's synchronous window (and, if
    that found it no frame, is read alone charged as a fault's); a page whose folio carries
    the readahead mark moves the window on (asynchronous); each folio copied is marked
    accessed once (the first not when it holds the previous read's end).  The stream's
    ``prev_pos`` is the call's end.  Returns False on an OOM."""
    f, a, b, prev = K.rd_op[ri, 0], K.rd_op[ri, 3], K.rd_op[ri, 4], K.rd_op[ri, 5]
    r = K.rd_op[ri, 6]
    FL, cnt = W.FL, W.cnt
    P = K.page_vma.shape[0]
    pages = 0
    k_last = -1
    for o in range(a, b):
        k = _folio_at(K.f_base, K.f_fstart, f, o)
        s = P + k
        if (FL[s] & F_RES) == 0:
            pages += _sync_ra(K, W, G, th, t, f, r, o, b - o)
        if (FL[s] & F_RES) == 0:
            pg = _read_strict(K, W, G, th, t, s)
            if pg < 0:
                return False
            pages += pg
        if W.RAM[s] == 1:
            # (the folio being read is held meanwhile: the kernel's batch holds a reference)
            W.RAM[s] = 0
            _pin(s, W.PIN, FL)
            pages += _async_ra(K, W, G, th, t, f, r, o, b - o)
            _unpin(s, W.PIN, FL)
        if k != k_last:
            if not (k_last < 0 and prev >= 0 and
                    K.f_fstart[k] <= prev < K.f_fstart[k] + K.f_fsize[k]):
                _touch(s, K.replacement, FL.shape[0], W.LL, FL, cnt, K.workingset, G,
                       K.slot_frames)
            k_last = k
    W.RS[r, RS_PREV] = K.rd_op[ri, 7]
    if pages > 0:
        cnt[C.CNT_IO] += 1
        cnt[C.CNT_READ_PAGES] += pages
        _count_in_bin(W, G, C.TSB_IOS, t)
    return True
