"""``read()``-family calls during the run (docs/model.md 11.7, ``Scenario.reads``): each
brings its readahead windows' missing folios into the page cache as a readahead does, then
the folios of the pages it copies as a fault does, and marks them accessed.  Applied when
its thread starts the record where the call returned (record.py ``_ph_start``).  The
reference simulator (tests/naive_engine.py ``_read_call``) implements the same
independently."""
from __future__ import annotations

from ..._numba import njit_borrow
from .. import codes as C
from . import state as g
from .accounting import _count_in_bin, _oom
from .fault import _read_window
from .pagecache import F_MSIO, F_RES, _admit_entry, _touch
from .readahead import _folio_at, _read_ends


@njit_borrow
def _read_call(K, W, G, th, t, ri):
    """Read ``ri`` (``K.rd_op``), a ``read()`` call that returned before thread ``th``'s record
    at ``t`` (docs/model.md 11.7): its window's missing folios come in as a readahead's (no
    frame ends the window), then the folios of the pages it copies (a missing one through
    its own readahead first, else charged as a fault's), each marked accessed once (the
    first not when it holds the previous read's end).  Returns False on an OOM."""
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
                K.page_vma, K.vma_exec, K.young, W.PT, W.BQ)
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
