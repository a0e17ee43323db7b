"""Readahead on file faults (docs/model.md 11.5): the per-(address space, file) window state
(the kernel's ``struct file_ra_state``), the window a synchronous or an asynchronous
readahead reads, and reading a window's folios as one I/O request.  The reference simulator
(tests/naive_engine.py) implements the same independently."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_verb
from .. import codes as C
from .events import _heap_push
from .pagecache import F_INFL, F_MSIO, F_RES, _insert_entry, _reclaim

# readahead state columns, one row per (address space, file)
RA_START, RA_SIZE, RA_ASYNC, RA_MISS = 0, 1, 2, 3
#: mmap_miss above this: the file misses far more than it hits, read only the faulting
#: folio (the kernel's MMAP_LOTSAMISS)
MMAP_LOTSAMISS = 100
#: mmap_miss never counts past this
MMAP_MISS_MAX = 1000


@njit_verb
def _next_size(s, M):
    """The next asynchronous window after one of ``s`` pages (get_next_ra_size)."""
    if 16 * s < M:
        return 4 * s
    if 2 * s <= M:
        return 2 * s
    return M


@njit_borrow
def _sync_window(RA, ri, o, R, madv, x_end):
    """A page-cache miss on file page ``o``: update the state ``RA[ri]`` and return the window
    ``(start, size, async_size)`` to read, or size 0 for the faulting folio alone.
    ``x_end``: for a fault in an executable VMA, the file page just past the VMA (the window
    reads forward to it, the kernel's VM_EXEC case), else -1 (read-around)."""
    if madv == 2:   # sequential: the largest window, from the faulting page on
        RA[ri, RA_START] = o
        RA[ri, RA_SIZE] = 2 * R
        RA[ri, RA_ASYNC] = R
        return o, 2 * R, R
    miss = RA[ri, RA_MISS] + 1
    if miss > MMAP_MISS_MAX:
        miss = MMAP_MISS_MAX
    RA[ri, RA_MISS] = miss
    if miss > MMAP_LOTSAMISS:
        return 0, 0, 0
    if x_end >= 0:   # executable: forward from the fault, within the VMA, no async part
        end = o + R
        if end > x_end:
            end = x_end
        RA[ri, RA_START] = o
        RA[ri, RA_SIZE] = end - o
        RA[ri, RA_ASYNC] = 0
        return o, end - o, 0
    start = o - R // 2
    if start < 0:
        start = 0
    RA[ri, RA_START] = start
    RA[ri, RA_SIZE] = R
    RA[ri, RA_ASYNC] = R // 4
    return start, R, R // 4


@njit_borrow
def _async_window(RA, ri, o, f0, f1, R, madv):
    """A marked folio (file pages ``[f0, f1)``, holding file page ``o``) was found resident:
    the next window ``(start, size)`` (its mark goes on ``start``)."""
    M = 2 * R if madv == 2 else R
    marked = RA[ri, RA_START] + RA[ri, RA_SIZE] - RA[ri, RA_ASYNC]
    if f0 <= marked < f1:   # this stream's mark: the window moves on and grows
        start = RA[ri, RA_START] + RA[ri, RA_SIZE]
        size = _next_size(RA[ri, RA_SIZE], M)
    else:                          # another stream's mark: start afresh after the page
        start = o + 1
        size = M
    RA[ri, RA_START] = start
    RA[ri, RA_SIZE] = size
    RA[ri, RA_ASYNC] = size
    return start, size


@njit_borrow
def _folio_at(f_base, f_fstart, f, o):
    """The folio (an index into ``f_fstart``) of file ``f`` that holds file page ``o``: the
    last of the file's folios that starts at or before it (a binary search)."""
    a = f_base[f]
    b = f_base[f + 1]
    while b - a > 1:
        m = (a + b) // 2
        if f_fstart[m] <= o:
            a = m
        else:
            b = m
    return a


@njit_borrow
def _read_folios(f, lo, hi, mark, io_c, P, f_base, f_fstart, f_npages, limit, n_anon, n_frames,
                 n_ent, replacement, hand, S, LL, FL, cnt, twolist_ratio, slot_frames, sp_off,
                 sp_pages, MAPC, RAM, ht, hk, hn, evs, nev, keep, t, th, ws, SH, G, page_vma,
                 vma_exec, young, PT, BQ, PIN):
    """Allocate and issue, completing at ``io_c``, the folios of file ``f`` holding file pages
    ``[lo, hi)`` that are neither resident nor in flight, in ascending order; the folio
    holding file page ``mark`` gets the readahead mark if it is one of them.  ``io_c < 0``:
    a ``read()`` call's window (docs/model.md 11.7), read by the time the call returns: no
    I/O event, not counted as wasted I/O, in flight (locked, as the kernel's batch is) until
    :func:`_read_ends`.  A folio that
    finds no frame ends the readahead there (it never causes an OOM).  Returns (folios
    read, pages read, n_frames, n_ent, hand, hn, nev): the evictions it makes are recorded
    at ``t`` for readahead by thread ``th`` (``ws`` ... ``PT``: workingset's and the young
    bits', for ``_reclaim`` and ``_insert_entry``; ``BQ`` the LRU-add batches)."""
    n = 0
    pages = 0
    if hi > f_npages[f]:
        hi = f_npages[f]
    if lo < 0:
        lo = 0
    if lo >= hi:
        return 0, 0, n_frames, n_ent, hand, hn, nev
    mk = _folio_at(f_base, f_fstart, f, mark) if 0 <= mark < f_npages[f] else -1
    for k in range(_folio_at(f_base, f_fstart, f, lo), _folio_at(f_base, f_fstart, f, hi - 1) + 1):
        s = P + k
        if (FL[s] & F_RES) != 0:   # resident, or in flight
            continue
        ok, n_frames, n_ent, hand, nev = _reclaim(
            slot_frames[s], limit, n_anon, n_frames, n_ent, replacement, hand, S, LL, FL, cnt,
            twolist_ratio, P, slot_frames, sp_off, sp_pages, MAPC, evs, nev, keep, t,
            C.BY_READAHEAD, th, ws, SH, G, page_vma, vma_exec, young, PT, BQ, PIN)
        if not ok:
            break
        _insert_entry(s, replacement, hand, S, LL, FL, cnt, ws, SH, G, slot_frames, th, BQ)
        n_frames += slot_frames[s]
        n_ent += 1
        RAM[s] = 1 if k == mk else 0
        FL[s] |= F_INFL
        if io_c < 0:
            FL[s] |= F_MSIO   # (and no I/O event: the caller ends the window, _read_ends)
        else:
            FL[s] &= np.uint8(255 - F_MSIO)
            hn = _heap_push(ht, hk, hn, io_c, (C.EV_IO << 40) | s)
        n += 1
        pages += slot_frames[s]
    return n, pages, n_frames, n_ent, hand, hn, nev


@njit_borrow
def _read_ends(f, lo, hi, P, f_base, f_fstart, FL):
    """A ``read()`` call's window (``_read_folios`` with ``io_c < 0``) has been read: its
    folios (in flight and counted as used, a state no fault's I/O has) are resident."""
    if hi > lo:
        for k in range(_folio_at(f_base, f_fstart, f, lo), _folio_at(f_base, f_fstart, f, hi - 1) + 1):
            if (FL[P + k] & (F_INFL | F_MSIO)) == (F_INFL | F_MSIO):
                FL[P + k] &= np.uint8(255 - F_INFL)
