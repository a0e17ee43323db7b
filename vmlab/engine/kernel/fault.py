"""A fault attempt's phases after the grant (docs/model.md sections 5, 6, 11, 12, 15): the
lookup (the page cache, readahead, the I/O or the wait, and a speculative attempt's check),
a wait's end (woken, aborted by a signal, or begun after a release's line cost), a
page-cache hit's mapping, the install and the fault's end, and SIGBUS.

Each phase is ``_ph_x(K, W, G, th, t) -> (next step time, phase to go on with)`` (state.py)."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_phase, njit_verb, prefetch
from .. import codes as C
from . import state as g
from .accounting import (_attempt_wasted, _count_in_bin, _fault_done, _hist_bucket, _oom,
                         _thread_ends)
from .events import _draw, _heap_push, _io_slot, _io_woken_at, _key_lt, _limit
from .granularity import (PT_COPY, _around_mappable, _around_skipped, _install_page,
                          _map_around, _map_finish)
from .locks import _fault_lock, _kernel_made, _needs_anon_vma, _release_cost, _release_hold
from .pagecache import (F_FILE, F_INFL, F_MSIO, F_PIN, F_PTE, F_RES, PT_TLB, PT_YOUNG,
                        _admit_entry, _admit_page, _batch_count, _note_candidate, _note_if_free,
                        _pin, _reclaim, _touch, _unpin)
from .readahead import RA_MISS, _async_window, _read_folios, _sync_window


@njit_phase
def _ph_lookup(K, W, G, th, t):
    """PH_LOOKUP: the handler's CPU is done.  A speculative attempt re-checks its count; the
    page is installed at once (anon, device, eager, a copy), fails (iomem without struct
    page: SIGBUS), or is looked up (context, file: the page cache), which may start a wait."""
    TS, FL = W.TS, W.FL
    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    p = K.rec_page[TS[th, C.TS_POS]]
    v = K.page_vma[p]
    bk = K.vma_backing[v]
    pr = K.vma_pol[v]
    pol = K.pol
    TS[th, C.TS_SEG] = C.CAT_ATT_CPU
    if K.designs and _needs_anon_vma(K, W, TS[th, C.TS_POS], v):
        W.anon_vma[v] = 1   # (made by this attempt, under whichever lock: 15.8)
    case = TS[th, C.TS_CASE]
    if (case == C.CASE_COPY or case == C.CASE_MKWRITE) and (FL[p] & F_PTE) == 0 \
            and (W.PT[p] & PT_COPY) == 0:
        # the read-only PTE went with its page since the grant: look it up
        case = C.CASE_COW if case == C.CASE_COPY else C.CASE_SHARED
        TS[th, C.TS_CASE] = case
        TS[th, C.TS_AROUND_DONE] = 1
    if K.designs and TS[th, C.TS_HOW] == C.FLK_SPEC:
        nxt = _spf_validate(K, W, G, th, t, p, v, case)
        if nxt == t:
            return t, C.PH_LOCK_REQ  # (under mmap_sem at once, in this step)
        if nxt >= 0:
            return nxt, g.STEP_DONE  # (back to PH_LOCK_REQ once the line is paid)
    if case == C.CASE_COW:
        TS[th, C.TS_COW] = 1
    if case == C.CASE_COPY or case == C.CASE_MKWRITE or pol[pr, C.K_EAGER] == 1 \
            or bk == C.B_ANON or bk == C.B_DEVICE or (
            bk == C.B_IOMEM and pol[pr, C.K_STRUCT_PAGE] == 0):
        TS[th, C.TS_PHASE] = C.PH_INSTALL
        return t, C.PH_INSTALL
    if bk == C.B_IOMEM:
        TS[th, C.TS_PHASE] = C.PH_SIGBUS
        return t, g.STEP_DONE
    if bk == C.B_CONTEXT:
        if (FL[p] & F_RES) != 0:
            TS[th, C.TS_PHASE] = C.PH_INSTALL
            return t, C.PH_INSTALL
        return _wait_begins(K, W, G, th, t, p, p, 2, False, 0)
    # file: the page's page-cache entry (itself, or its folio)
    s = g._entry(K, G, p)
    RAM = W.RAM
    if case == C.CASE_READ and TS[th, C.TS_AROUND_DONE] == 0 and K.fault_around > 1 and \
            G[g.G_HAS_WINDOWS] == 1 and K.win_hi[p] - K.win_lo[p] > 1 and not (
                (FL[s] & F_RES) != 0 and (FL[s] & F_INFL) == 0 and RAM[s] == 0):
        # kernel model: the resident neighbours are mapped first, a CPU segment of its own;
        # the page's own lookup follows (11.3)
        n_around = _fault_around(K, W, G, th, t, p, True)
        if n_around < 0:
            return -1, g.HALT
        TS[th, C.TS_AROUND_DONE] = 1
        TS[th, C.TS_PHASE] = C.PH_LOOKUP
        return t + n_around * K.costs[C.COST_PTE], g.STEP_DONE
    if (FL[s] & F_RES) != 0:
        # the folio is found, resident or in flight: its mark starts the next window before
        # any wait (11.5)
        _pin(s, W.PIN, FL)
        marked = False
        if K.ra_pages > 0 and K.vma_madv[v] != 1 and TS[th, C.TS_K] == 0:
            marked = RAM[s] == 1
            _readahead_async(K, W, G, th, t, p, v, s)
        if (FL[s] & F_INFL) != 0:
            return _wait_begins(K, W, G, th, t, p, s, 1, False, 0)
        if marked and pol[pr, C.K_RA_DROP] == 1 and _may_drop(K, TS, th, pr) and not (
                K.designs and TS[th, C.TS_HOW] == C.FLK_SPEC):
            return _readahead_drop(K, W, G, th, t, pr, s)
        TS[th, C.TS_PHASE] = C.PH_MINOR_MAP
        return t + K.costs[C.COST_PAGECACHE_HIT], g.STEP_DONE
    # allocate the frames, evicting if needed, and issue the I/O
    if G[g.G_CACHE_MODE] == 1:
        ok, G[g.G_N_RESIDENT], G[g.G_N_ENT], G[g.G_HAND], G[g.G_NEV] = _admit_entry(
            s, K.memory_pages, G[g.G_N_ANON], G[g.G_N_RESIDENT], G[g.G_N_ENT], K.replacement,
            G[g.G_HAND], FL.shape[0], W.LL, FL, W.cnt, K.twolist_ratio, K.page_vma.shape[0],
            K.slot_frames, K.sp_off, K.sp_pages, W.MAPC, K.charge_anon, W.evs, G[g.G_NEV],
            K.keep_records, t, C.BY_FAULT, th, K.workingset, W.SH, G, K.page_vma, K.vma_exec,
            K.young, W.PT, W.BQ, W.PIN)
        if not ok:
            # no frame and no victim under memory_bytes: OOM (section 12)
            _oom(W, G, th, t)
            return -1, g.HALT
        W.cnt[C.CNT_READ_PAGES] += K.slot_frames[s]
    elif K.workingset or K.young:  # (entries are pages: G_N_ENT is G_N_RESIDENT, one frame
        #                             each)
        _ok, G[g.G_N_RESIDENT], _n, G[g.G_HAND], G[g.G_NEV] = _admit_entry(
            s, K.memory_pages, 0, G[g.G_N_RESIDENT], G[g.G_N_RESIDENT], K.replacement,
            G[g.G_HAND], FL.shape[0], W.LL, FL, W.cnt, K.twolist_ratio, K.page_vma.shape[0],
            K.slot_frames, K.sp_off, K.sp_pages, W.MAPC, False, W.evs, G[g.G_NEV],
            K.keep_records, t, C.BY_FAULT, th, K.workingset, W.SH, G, K.page_vma, K.vma_exec,
            K.young, W.PT, W.BQ, W.PIN)
    else:  # (one page an I/O, its pages read counted at the end)
        G[g.G_N_RESIDENT], G[g.G_HAND], G[g.G_NEV] = _admit_page(
            s, K.memory_pages, G[g.G_N_RESIDENT], K.replacement, G[g.G_HAND], FL.shape[0],
            W.LL, FL, W.cnt, K.twolist_ratio, W.evs, G[g.G_NEV], K.keep_records, t, th)
    FL[s] |= F_INFL
    FL[s] &= np.uint8(255 - F_MSIO)
    d = _next_io_ns(K, G)
    W.cnt[C.CNT_IO] += 1
    _count_in_bin(W, G, C.TSB_IOS, t)
    io_c = t + d
    _pin(s, W.PIN, FL)
    TS[th, C.TS_MAJOR] = 1
    if K.ra_pages > 0:  # (the readahead mark exists only with readahead)
        RAM[s] = 0
    if K.ra_pages > 0 and K.vma_madv[v] != 1:
        _readahead_sync(K, W, G, th, t, p, v, s, io_c)
    return _wait_begins(K, W, G, th, t, p, s, 1, True, io_c)


@njit_verb
def _next_io_ns(K, G):
    """The next I/O time draw (docs/model.md section 1), counted; the table slot of the one
    after it is fetched ahead (the fast path reads it from G_IO_SLOT)."""
    tflat = K.tflat
    n_quant = K.tables.shape[1]
    io_cnt = G[g.G_IO_CNT]
    slot = G[g.G_IO_SLOT] if G[g.G_IO_SLOT_CNT] == io_cnt else \
        _io_slot(K.seed, K.io_dist, n_quant, io_cnt)
    d = tflat[slot]
    io_cnt += 1
    G[g.G_IO_CNT] = io_cnt
    G[g.G_IO_SLOT_CNT] = io_cnt
    G[g.G_IO_SLOT] = _io_slot(K.seed, K.io_dist, n_quant, io_cnt)
    prefetch(tflat, G[g.G_IO_SLOT])
    return d


@njit_borrow
def _fault_around(K, W, G, th, t, p, kernel_model):
    """Map the resident neighbours of page ``p``'s fault-around window (docs/model.md 8 and
    11.3); they count as hits for readahead's miss count.  Returns how many, or -1 on an OOM
    of the page tables they need (charged first: section 12)."""
    if kernel_model and _around_skipped(
            p, K.fault_around, K.page_vma, K.page_vpn, K.page_rank, K.by_key, K.vma_asid,
            K.vma_vpn0, K.vma_p0, K.vma_p1, K.last_lo, K.page_slot, W.FL, W.PT, W.RAM):
        return 0
    if not _charge_tables_around(K, W, G, th, t, p):
        return -1
    n_around = _map_around(p, kernel_model, K.page_vma, K.page_vpn, K.page_rank, K.by_key,
                           K.vma_p0, K.vma_p1, K.win_lo, K.win_hi, K.page_slot, W.FL, W.PT,
                           W.MAPC, W.RAM)
    W.cnt[C.CNT_PTES] += n_around
    v = K.page_vma[p]
    ri = K.vma_asid[v] * K.f_npages.shape[0] + K.vma_file[v]
    W.RA[ri, RA_MISS] = max(0, W.RA[ri, RA_MISS] - n_around)
    return n_around


@njit_borrow
def _readahead_async(K, W, G, th, t, p, v, s):
    """Asynchronous readahead (11.5): a page-cache hit from user space on file page ``p``
    (entry ``s``); a folio carrying the mark starts the next window's read."""
    RA, RAM = W.RA, W.RAM
    f = K.vma_file[v]
    ri = K.vma_asid[v] * K.f_npages.shape[0] + f
    if RA[ri, RA_MISS] > 0:
        RA[ri, RA_MISS] -= 1
    if RAM[s] != 1:
        return
    RAM[s] = 0
    o = K.vma_off[v] + K.page_vpn[p] - K.vma_vpn0[v]
    k = s - K.page_vma.shape[0]     # (s is a folio entry: P + k)
    st0, sz = _async_window(RA, ri, o, K.f_fstart[k], K.f_fstart[k] + K.f_fsize[k], K.ra_pages,
                            K.vma_madv[v])
    # one request, one draw: counted if it reads a folio
    d = K.tflat[_io_slot(K.seed, K.io_dist, K.tables.shape[1], G[g.G_IO_CNT])]
    n_rd, pg = _read_window(K, W, G, th, t, f, st0, st0 + sz, st0, t + d)
    if n_rd > 0:
        G[g.G_IO_CNT] += 1
        G[g.G_IO_SLOT_CNT] = -1
        W.cnt[C.CNT_IO] += 1
        W.cnt[C.CNT_READ_PAGES] += pg
        W.cnt[C.CNT_RA_PAGES] += pg
        _count_in_bin(W, G, C.TSB_IOS, t)


@njit_borrow
def _readahead_sync(K, W, G, th, t, p, v, s, io_c):
    """Synchronous readahead (11.5): a page-cache miss on file page ``p`` (entry ``s``, read
    until ``io_c``); the window joins the request."""
    f = K.vma_file[v]
    o = K.vma_off[v] + K.page_vpn[p] - K.vma_vpn0[v]
    ri = K.vma_asid[v] * K.f_npages.shape[0] + f
    x_end = K.vma_off[v] + K.vma_npages[v] if K.vma_exec[v] == 1 else -1
    st0, sz, asz = _sync_window(W.RA, ri, o, K.ra_pages, K.vma_madv[v], x_end)
    if sz > 0:
        mk = st0 + sz - asz
        k = s - K.page_vma.shape[0]     # (s is a folio entry: P + k)
        if mk < K.f_npages[f] and K.f_fstart[k] <= mk < K.f_fstart[k] + K.f_fsize[k]:
            W.RAM[s] = 1
        n_rd, pg = _read_window(K, W, G, th, t, f, st0, st0 + sz, mk, io_c)
        W.cnt[C.CNT_READ_PAGES] += pg
        W.cnt[C.CNT_RA_PAGES] += pg


@njit_borrow
def _read_window(K, W, G, th, t, f, lo, hi, mark, io_c):
    """readahead._read_folios on the kernel state: returns (folios read, pages read)."""
    n_rd, pg, G[g.G_N_RESIDENT], G[g.G_N_ENT], G[g.G_HAND], G[g.G_HN], G[g.G_NEV] = \
        _read_folios(f, lo, hi, mark, io_c, K.page_vma.shape[0], K.f_base, K.f_fstart,
                     K.f_npages, K.memory_pages, G[g.G_N_ANON], G[g.G_N_RESIDENT],
                     G[g.G_N_ENT], K.replacement, G[g.G_HAND], W.FL.shape[0], W.LL, W.FL,
                     W.cnt, K.twolist_ratio, K.slot_frames, K.sp_off, K.sp_pages, W.MAPC,
                     W.RAM, W.ht, W.hk, G[g.G_HN], W.evs, G[g.G_NEV], K.keep_records, t, th,
                     K.workingset, W.SH, G, K.page_vma, K.vma_exec, K.young, W.PT, W.BQ, W.PIN)
    return n_rd, pg


@njit_borrow
def _spf_validate(K, W, G, th, t, p, v, case):
    """docs/model.md 15.4: a speculative attempt never waits, and re-reads its sequence
    count before the install; a page that needs a wait or a changed count sends the fault
    to mmap_sem afresh (k = 0), its CPU wasted (not a retry against max_retries).  Returns
    the next step time of such a fallback, or -1 (the attempt goes on)."""
    TS, FL, cnt = W.TS, W.FL, W.cnt
    bk = K.vma_backing[v]
    e_ = g._entry(K, G, p)   # (its page-cache entry; a context page's own)
    hit = (FL[e_] & F_RES) != 0 and (FL[e_] & F_INFL) == 0
    needs = (bk == C.B_FILE and case != C.CASE_COPY and case != C.CASE_MKWRITE and
             not hit) or (bk == C.B_CONTEXT and (FL[e_] & F_RES) == 0)
    seq = W.mm_seq[K.vma_asid[v]] if K.pol[K.vma_pol[v], C.K_SPF_SCOPE] == 1 else W.vl_seq[v]
    if not (needs or seq != TS[th, C.TS_SEQ0]):
        return -1
    vline_ns = K.costs[C.COST_VMA_LINE]
    if not needs:
        cnt[C.CNT_SPF_ABORT] += 1
    cnt[C.CNT_VMA_FALLBACK] += 1
    TS[th, C.TS_HOW] = C.FLK_MMAP
    TS[th, C.TS_K] = 0
    TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
    if K.keep_records:
        r = TS[th, C.TS_VL_ROW]
        W.vlocks[r, C.VL_OUTCOME] = C.VO_FALLBACK if needs else C.VO_ABORT
        if needs or (seq & 1) == 0 or vline_ns == 0:
            W.vlocks[r, C.VL_RELEASE] = t
        # (else the abort instant is when the line cost below ends, recorded then: never,
        # when that is after the horizon)
    if not needs and (seq & 1) == 1 and vline_ns > 0:
        # re-reading a count a writer holds costs its line (15.1); the attempt's CPU is
        # settled when that ends
        TS[th, C.TS_PAID] = 2
        return t + vline_ns
    W.TT[th, C.CAT_WASTED] += TS[th, C.TS_ATT_CPU]
    W.TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
    TS[th, C.TS_ATT_CPU] = 0
    TS[th, C.TS_ATT_WAIT] = 0
    return t


@njit_phase
def _wait_begins(K, W, G, th, t, p, s, need_wait, issued, io_c):
    """The attempt waits at ``t``: for file I/O on entry ``s`` (``need_wait`` 1; ``issued``:
    its own, completing at ``io_c``) or for page ``p``'s context (2).  Whether it drops the
    lock (and retries), sleeps interruptibly or not, follows from the policy and the retries
    so far (docs/model.md section 5); an I/O nothing can precede completes inline."""
    TS = W.TS
    pol = K.pol
    pr = K.vma_pol[K.page_vma[p]]
    retries = TS[th, C.TS_RETRIES]
    mr = pol[pr, C.K_MAX_RETRIES]
    left = mr < 0 or retries < mr
    drop = _may_drop(K, TS, th, pr)
    intr = left and (not drop) and pol[pr, C.K_INTERRUPTIBLE] == 1 and \
        _signals_reach(K, W, th)
    TS[th, C.TS_KEEP_K] = 1 if _retry_is_first(K, TS, th, pr, issued or need_wait == 2) else 0
    TS[th, C.TS_WAIT_DROP] = 1 if drop else 0
    TS[th, C.TS_WAIT_KIND] = need_wait
    TS[th, C.TS_WAIT_START] = t
    TS[th, C.TS_SEG] = C.CAT_ATT_WAIT
    nxt = -1
    paying = False
    if drop:
        rc = _release_cost(K, W, G, th)
        if rc > 0:
            # the release takes effect after its line cost and the wait begins then
            # (docs/model.md 15.1): PH_DROP_WAIT
            paying = True
            TS[th, C.TS_SEG] = C.CAT_ATT_CPU
            TS[th, C.TS_PHASE] = C.PH_DROP_WAIT
            nxt = t + rc
        else:
            _release_hold(K, W, G, th, t)
        if K.designs and pol[pr, C.K_COMPLETED] == 1:
            # VM_FAULT_COMPLETED (docs/model.md 15.5): the lock is gone, the pin stays; the
            # wake-up installs the PTE, with no retry
            if not paying:
                TS[th, C.TS_HOW] = C.FLK_NONE
            TS[th, C.TS_WAIT_DROP] = 0
            drop = False
    pending = W.pend_n[th] > 0
    io_inline = False
    if issued:
        iok = (C.EV_IO << 40) | s
        found, lt, lk = _limit(G[g.G_HN], W.ht[0], W.hk[0], G[g.G_O_FOUND] == 1, G[g.G_O_T],
                               G[g.G_O_K])
        if K.fast_path and not paying and (not (intr and pending)) and \
                io_c <= K.horizon and (not found or _key_lt(io_c, iok, lt, lk)):
            # nothing else happens before the I/O completes: complete it inline
            io_inline = True
        else:
            G[g.G_HN] = _heap_push(W.ht, W.hk, G[g.G_HN], io_c, iok)
    if paying:
        if need_wait == 2:
            # the context wait is drawn now; it begins after the release
            TS[th, C.TS_MAJOR] = 1
            d = _draw(K.tables, K.wait_dist, K.seed, 2, G[g.G_CTX_CNT])
            G[g.G_CTX_CNT] += 1
            TS[th, C.TS_CTX_DONE] = t + d
            if drop:
                G[g.G_HN] = _heap_push(W.ht, W.hk, G[g.G_HN], t + d, (C.EV_IO << 40) | p)
        return nxt, g.STEP_DONE
    if intr and pending:
        # an interruptible sleep with a signal pending returns at once; the oldest pending
        # signal is the one that aborted it
        if K.keep_records:
            W.sigs[W.pend_row[th, W.pend_h[th]], C.S_ABORTED] = 1
        TS[th, C.TS_PHASE] = C.PH_ABORT
        return t, g.STEP_DONE
    TS[th, C.TS_INTR] = 1 if intr else 0
    if need_wait == 1 and io_inline:
        FL = W.FL
        FL[s] &= np.uint8(255 - F_INFL)
        if drop:
            _unpin(s, W.PIN, FL)
        G[g.G_N_CAND] = _note_if_free(s, FL, W.cand, G[g.G_N_CAND], G[g.G_TRACK_CAND] == 1)
        TS[th, C.TS_PHASE] = C.PH_WOKEN
        return _io_woken_at(K, W, th, io_c), g.STEP_DONE
    if need_wait == 1:
        TS[th, C.TS_WAIT_PAGE] = s
        TS[th, C.TS_PHASE] = C.PH_WAIT_IO
        return -1, g.HALT  # the I/O completion wakes it
    # a context wait that begins makes the fault major
    TS[th, C.TS_MAJOR] = 1
    d = _draw(K.tables, K.wait_dist, K.seed, 2, G[g.G_CTX_CNT])
    G[g.G_CTX_CNT] += 1
    if drop:
        # the context is ready from the wait's completion on, before any thread step at
        # that instant: an event
        G[g.G_HN] = _heap_push(W.ht, W.hk, G[g.G_HN], t + d, (C.EV_IO << 40) | p)
    TS[th, C.TS_PHASE] = C.PH_WOKEN
    return _io_woken_at(K, W, th, t + d), g.STEP_DONE


@njit_verb
def _signals_reach(K, W, th):
    """Thread ``th``'s signals stop its current fault, at a check before a retry or in an
    interruptible wait (docs/model.md 7 and 15.3): any signal the user's fault; a fault the
    kernel made in a system call only a fatal one (the kernel's ``fault_signal_pending()``:
    ``fatal_signal_pending() || (user_mode(regs) && signal_pending())``)."""
    return K.sig_fatal[th] or not _kernel_made(K, W.TS[th, C.TS_POS])


@njit_verb
def _may_drop(K, TS, th, pr):
    """Whether thread ``th``'s attempt, under policy row ``pr``, drops its lock to wait (or
    for a readahead) and retries: retries are left and the attempt is one of the first
    ``drop_lock_attempts`` in the kernel (docs/model.md section 5, step 4)."""
    mr = K.pol[pr, C.K_MAX_RETRIES]
    dla = K.pol[pr, C.K_DROP_LOCK]
    return (mr < 0 or TS[th, C.TS_RETRIES] < mr) and (dla < 0 or TS[th, C.TS_K] < dla)


@njit_verb
def _retry_is_first(K, TS, th, pr, major):
    """docs/model.md 15.10: the retry of thread ``th``'s lock-dropping attempt is a first
    attempt again (``k`` kept): the attempt held its VMA's lock, was not ``major`` (issued no
    read, began no context wait) and the retry takes mmap_sem: the arch code sets
    ``FAULT_FLAG_TRIED`` for that retry only after ``VM_FAULT_MAJOR``."""
    return K.designs and TS[th, C.TS_HOW] == C.FLK_VMA and not major and \
        K.pol[pr, C.K_RETRY_LOCK] == C.FLK_MMAP


@njit_borrow
def _readahead_drop(K, W, G, th, t, pr, s):
    """A lookup's asynchronous readahead dropped the attempt's lock (``readahead_drops_lock``,
    docs/model.md 11.5; policy row ``pr``): once the release takes effect (after its line
    cost: PH_DROP_WAIT) the pin on entry ``s`` goes and the attempt ends in a retry, with no
    wait and no wake-up."""
    TS = W.TS
    TS[th, C.TS_KEEP_K] = 1 if _retry_is_first(K, TS, th, pr, False) else 0
    TS[th, C.TS_WAIT_DROP] = 1
    TS[th, C.TS_WAIT_KIND] = 3
    TS[th, C.TS_WAIT_START] = t
    rc = _release_cost(K, W, G, th)
    if rc > 0:
        TS[th, C.TS_SEG] = C.CAT_ATT_CPU
        TS[th, C.TS_PHASE] = C.PH_DROP_WAIT
        return t + rc, g.STEP_DONE
    _release_hold(K, W, G, th, t)
    TS[th, C.TS_SEG] = C.CAT_ATT_WAIT
    FL = W.FL
    _unpin(s, W.PIN, FL)
    G[g.G_N_CAND] = _note_if_free(s, FL, W.cand, G[g.G_N_CAND], G[g.G_TRACK_CAND] == 1)
    TS[th, C.TS_PHASE] = C.PH_WOKEN
    return t, C.PH_WOKEN     # (the retry follows in this step)


@njit_verb
def _release_deferred(K, W, G, th, t):
    """The release of thread ``th``'s attempt at ``t`` pays a line cost (docs/model.md
    15.1): it takes effect then, and the phase runs again from the release on
    (``TS_REL_PAID``).  Returns when, or -1 when it costs nothing (the release is now)."""
    rc = _release_cost(K, W, G, th)
    if rc <= 0:
        return -1
    W.TS[th, C.TS_REL_PAID] = 1
    W.TS[th, C.TS_SEG] = C.CAT_ATT_CPU
    return t + rc


@njit_borrow
def _ph_drop_wait(K, W, G, th, t):
    """PH_DROP_WAIT: a lock-dropping wait whose release paid a line cost: the release takes
    effect now and the wait begins (docs/model.md 15.1)."""
    TS, FL = W.TS, W.FL
    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    _release_hold(K, W, G, th, t)
    if K.designs:
        TS[th, C.TS_HOW] = C.FLK_NONE  # (a retry takes its lock anew)
    p = K.rec_page[TS[th, C.TS_POS]]
    TS[th, C.TS_WAIT_START] = t
    TS[th, C.TS_SEG] = C.CAT_ATT_WAIT
    s = g._entry(K, G, p)   # (the page-cache entry its I/O reads)
    if TS[th, C.TS_WAIT_KIND] == 3:
        # a readahead's drop (11.5): the pin goes with the lock, and the retry follows
        _unpin(s, W.PIN, FL)
        G[g.G_N_CAND] = _note_if_free(s, FL, W.cand, G[g.G_N_CAND], G[g.G_TRACK_CAND] == 1)
        TS[th, C.TS_PHASE] = C.PH_WOKEN
        return t, C.PH_WOKEN     # (the retry follows in this step)
    if TS[th, C.TS_WAIT_KIND] == 1 and (FL[s] & F_INFL) != 0:
        TS[th, C.TS_WAIT_PAGE] = s
        TS[th, C.TS_PHASE] = C.PH_WAIT_IO
        return -1, g.HALT  # the I/O completion wakes it
    TS[th, C.TS_PHASE] = C.PH_WOKEN
    if TS[th, C.TS_WAIT_KIND] == 1:
        # its I/O completed during the release: the wake-up follows
        if TS[th, C.TS_WAIT_DROP] == 1:
            _unpin(s, W.PIN, FL)
            G[g.G_N_CAND] = _note_if_free(s, FL, W.cand, G[g.G_N_CAND],
                                          G[g.G_TRACK_CAND] == 1)
        return _io_woken_at(K, W, th, t), g.STEP_DONE
    c_done = TS[th, C.TS_CTX_DONE]
    return _io_woken_at(K, W, th, c_done if c_done > t else t), g.STEP_DONE


@njit_phase
def _ph_woken(K, W, G, th, t):
    """PH_WOKEN: a wait ended.  A lock-dropping attempt ends in a retry (after signals, if
    the policy checks them); otherwise the page is installed."""
    TS = W.TS
    TS[th, C.TS_INTR] = 0
    TS[th, C.TS_ATT_WAIT] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_F_IOWAIT] += t - TS[th, C.TS_WAIT_START]
    TS[th, C.TS_ACC] = t
    TS[th, C.TS_SEG] = C.CAT_ATT_CPU
    p = K.rec_page[TS[th, C.TS_POS]]
    if TS[th, C.TS_WAIT_DROP] == 1:
        _attempt_wasted(th, TS, W.TT, True)  # the attempt ends in a retry
        _count_in_bin(W, G, C.TSB_RETRIES, t)
        pr = K.vma_pol[K.page_vma[p]]
        if K.pol[pr, C.K_CHECK_SIGNAL] == 1 and W.pend_n[th] > 0 and _signals_reach(K, W, th):
            TS[th, C.TS_PHASE] = C.PH_DELIVER_REEXEC
            return t, g.STEP_DONE
        if TS[th, C.TS_KEEP_K] == 0:
            TS[th, C.TS_K] += 1
        if K.designs:
            # the retry takes retry_lock (docs/model.md 15.3)
            TS[th, C.TS_HOW] = _fault_lock(K, TS[th, C.TS_POS], pr, True)
        TS[th, C.TS_PHASE] = C.PH_LOCK_REQ
        return t, C.PH_LOCK_REQ     # (the retry's request in this step)
    if TS[th, C.TS_WAIT_KIND] == 2:
        W.FL[p] |= F_RES
    TS[th, C.TS_PHASE] = C.PH_INSTALL
    return t, C.PH_INSTALL


@njit_borrow
def _ph_abort(K, W, G, th, t):
    """PH_ABORT: an interruptible wait aborted by a signal at ``t``: the attempt lets its
    page and its lock go (after the release's line cost, when there is one: the phase runs
    again then), its time is wasted, and the signals are delivered before re-executing."""
    TS, FL = W.TS, W.FL
    if TS[th, C.TS_REL_PAID] == 0:
        TS[th, C.TS_INTR] = 0
        TS[th, C.TS_ATT_WAIT] += t - TS[th, C.TS_ACC]
        TS[th, C.TS_F_IOWAIT] += t - TS[th, C.TS_WAIT_START]
        TS[th, C.TS_ACC] = t
        p = K.rec_page[TS[th, C.TS_POS]]
        if TS[th, C.TS_WAIT_KIND] == 1:
            TS[th, C.TS_WAIT_PAGE] = -1
            s = g._entry(K, G, p)
            _unpin(s, W.PIN, FL)
            if (FL[s] & F_INFL) == 0:
                G[g.G_N_CAND] = _note_if_free(s, FL, W.cand, G[g.G_N_CAND],
                                              G[g.G_TRACK_CAND] == 1)
        nxt = _release_deferred(K, W, G, th, t)
        if nxt >= 0:
            return nxt, g.STEP_DONE  # (on the CPU: nothing more this step)
    else:
        TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
        TS[th, C.TS_ACC] = t
        TS[th, C.TS_REL_PAID] = 0
    _release_hold(K, W, G, th, t)
    _attempt_wasted(th, TS, W.TT, False)
    _count_in_bin(W, G, C.TSB_RETRIES, t)
    TS[th, C.TS_PHASE] = C.PH_DELIVER_REEXEC
    return t, g.STEP_DONE


@njit_borrow
def _take_unreclaimable(K, W, G, th, t, need):
    """``need`` unreclaimable frames (anonymous, or the kernel's own) take room under the
    memory limit at ``t``, evicting page-cache folios (docs/model.md section 12).  Returns
    False on an OOM."""
    ok, G[g.G_N_RESIDENT], G[g.G_N_ENT], G[g.G_HAND], G[g.G_NEV] = _reclaim(
        need, K.memory_pages, G[g.G_N_ANON], G[g.G_N_RESIDENT], G[g.G_N_ENT], K.replacement,
        G[g.G_HAND], W.FL.shape[0], W.LL, W.FL, W.cnt, K.twolist_ratio, K.page_vma.shape[0],
        K.slot_frames, K.sp_off, K.sp_pages, W.MAPC, W.evs, G[g.G_NEV], K.keep_records, t,
        C.BY_FAULT, th, K.workingset, W.SH, G, K.page_vma, K.vma_exec, K.young, W.PT, W.BQ, W.PIN)
    if not ok:
        _oom(W, G, th, t)
        return False
    G[g.G_N_ANON] += need
    return True


@njit_verb
def _mark_tables(K, W, q):
    """Marks the page tables page ``q``'s PTE needs as charged; returns how many were not."""
    need = 0
    for lv in range(3):
        i = K.pt_page[q, lv]
        if W.PTF[i] == 0:
            W.PTF[i] = 1
            need += 1
    return need


@njit_verb
def _charge_tables(K, W, G, th, t, p):
    """Under memory_bytes, the page tables page ``p``'s PTE needs that no PTE needed before
    take a frame each, unreclaimable (docs/model.md section 12).  Returns False on an OOM
    (the run ends: the flags set here are read no more)."""
    if not K.charge_anon:
        return True
    need = _mark_tables(K, W, p)
    return need == 0 or _take_unreclaimable(K, W, G, th, t, need)


@njit_borrow
def _charge_tables_around(K, W, G, th, t, p):
    """Under memory_bytes, the page tables of the neighbours fault-around is about to map
    (``_around_mappable`` in ``_map_around``'s window) take their frames first
    (docs/model.md section 12).  Returns False on an OOM."""
    if not K.charge_anon:
        return True
    FL, PT, RAM = W.FL, W.PT, W.RAM
    v = K.page_vma[p]
    need = 0
    for d in (-1, 1):
        j = K.page_rank[p] + d
        while K.vma_p0[v] <= j < K.vma_p1[v]:
            q = K.by_key[j]
            u = K.page_vpn[q]
            if u < K.win_lo[p] or u >= K.win_hi[p]:
                break
            if _around_mappable(q, K.page_slot[q], FL, PT, RAM):
                need += _mark_tables(K, W, q)
            j += d
    return need == 0 or _take_unreclaimable(K, W, G, th, t, need)


@njit_verb
def _charge_anon(K, W, G, th, t, p):
    """Page ``p`` (anonymous, or a private copy) takes a frame of the memory limit at ``t``
    (docs/model.md section 12).  Returns False on an OOM."""
    if not _take_unreclaimable(K, W, G, th, t, 1):
        return False
    W.CHG[p] = 1
    # (the new anonymous folio takes a place in the thread's LRU-add batch: 12.1)
    _batch_count(th, W.BQ, W.FL.shape[0], W.LL, W.FL, W.cnt, K.workingset, G, K.slot_frames)
    return True


@njit_phase
def _ph_minor_map(K, W, G, th, t):
    """PH_MINOR_MAP: a page-cache hit maps its page (and, in the page model, its
    fault-around neighbours); the install follows after their PTEs' cost."""
    TS, FL = W.TS, W.FL
    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    p = K.rec_page[TS[th, C.TS_POS]]
    case = TS[th, C.TS_CASE]
    s = g._entry(K, G, p)
    if not _charge_tables(K, W, G, th, t, p):
        return -1, g.HALT
    if K.charge_anon and case == C.CASE_COW and W.CHG[p] == 0:
        # the private copy takes a frame of the limit (section 12)
        if not _charge_anon(K, W, G, th, t, p):
            return -1, g.HALT
    # (the kernel model with fault_around_pages 1 has no fault-around: finish_fault() only)
    around = G[g.G_HAS_WINDOWS] == 1 and TS[th, C.TS_AROUND_DONE] == 0 and not (
        K.kernel_model and K.fault_around == 1)
    # a kernel-model read that fault-around does not map: finish_fault() maps its folio
    finish = K.kernel_model and case == C.CASE_READ and G[g.G_HAS_WINDOWS] == 1 and not around
    if around and K.kernel_model and case == C.CASE_READ and _around_skipped(
            p, K.fault_around, K.page_vma, K.page_vpn, K.page_rank, K.by_key, K.vma_asid,
            K.vma_vpn0, K.vma_p0, K.vma_p1, K.last_lo, K.page_slot, FL, W.PT, W.RAM):
        around = False   # (an empty page table and the file's last folio first: 11.3)
        finish = True
    _install_page(p, s, case, FL, W.PT, W.MAPC, W.cnt)
    TS[th, C.TS_INSTALLED] = 1
    n_around = 0
    if around and K.win_hi[p] - K.win_lo[p] > 1:
        n_around = _fault_around(K, W, G, th, t, p, K.kernel_model)
        if n_around < 0:
            return -1, g.HALT
    elif finish:
        n_around = _map_finish(p, K.fr_lo, K.fr_hi, K.page_vma, K.page_vpn, K.page_rank,
                               K.by_key, K.vma_p0, K.vma_p1, K.page_slot, FL, W.PT, W.MAPC)
        W.cnt[C.CNT_PTES] += n_around
    _unpin(s, W.PIN, FL)
    _note_unmapped_copy(K, W, G, s)
    TS[th, C.TS_PHASE] = C.PH_INSTALL
    return t + n_around * K.costs[C.COST_PTE], g.STEP_DONE


@njit_verb
def _note_unmapped_copy(K, W, G, s):
    """Kernel model: a private copy maps the page-cache entry ``s`` no more: the adversary
    may take it."""
    FL = W.FL
    if K.kernel_model and G[g.G_TRACK_CAND] == 1 and \
            (FL[s] & (F_RES | F_INFL | F_PIN | F_PTE)) == F_RES:
        G[g.G_N_CAND] = _note_candidate(W.cand, G[g.G_N_CAND], s)


@njit_phase
def _ph_install(K, W, G, th, t):
    """PH_INSTALL: map the page (charging a frame for an anonymous page or a private copy),
    release what the attempt holds (after its line cost, when there is one: the phase runs
    again then): the fault is done, its access follows."""
    TS, FL = W.TS, W.FL
    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    if TS[th, C.TS_REL_PAID] == 0:
        p = K.rec_page[TS[th, C.TS_POS]]
        case = TS[th, C.TS_CASE]
        s = g._entry(K, G, p)
        if not _charge_tables(K, W, G, th, t, p):
            return -1, g.HALT   # (its page tables first, as the kernel allocates them)
        if K.charge_anon and W.CHG[p] == 0 and (
                case == C.CASE_ANON or case == C.CASE_COPY or case == C.CASE_COW or
                (case == C.CASE_NONE and K.vma_backing[K.page_vma[p]] == C.B_ANON)):
            # an anonymous page or a private copy takes a frame of the limit, at the
            # install, the faulting folio still pinned (section 12)
            if not _charge_anon(K, W, G, th, t, p):
                return -1, g.HALT
        if TS[th, C.TS_WAIT_KIND] == 1 and TS[th, C.TS_WAIT_DROP] == 0:
            _unpin(s, W.PIN, FL)
        TS[th, C.TS_WAIT_KIND] = 0
        if TS[th, C.TS_INSTALLED] == 0:
            _install_page(p, s, case, FL, W.PT, W.MAPC, W.cnt)
            if K.kernel_model and case == C.CASE_READ and G[g.G_HAS_WINDOWS] == 1:
                # after the read it waited for, finish_fault() maps the folio (11.3): their
                # PTEs' cost first, then this phase again
                n = _map_finish(p, K.fr_lo, K.fr_hi, K.page_vma, K.page_vpn, K.page_rank,
                                K.by_key, K.vma_p0, K.vma_p1, K.page_slot, FL, W.PT, W.MAPC)
                if n > 0:
                    W.cnt[C.CNT_PTES] += n
                    TS[th, C.TS_INSTALLED] = 1
                    return t + n * K.costs[C.COST_PTE], g.STEP_DONE
        # (else the hit installed it at i, docs/model.md 5: an eviction since then took the
        # PTE away, and the release does not put it back)
        TS[th, C.TS_INSTALLED] = 0
        _note_unmapped_copy(K, W, G, s)
        nxt = _release_deferred(K, W, G, th, t)
        if nxt >= 0:
            return nxt, g.STEP_DONE  # (on the CPU: nothing more this step)
    else:
        TS[th, C.TS_REL_PAID] = 0
    w = _release_hold(K, W, G, th, t)
    G[g.G_N_IN_FAULT] -= 1  # the fault is done once its release takes effect (15.1)
    TT = W.TT
    TT[th, C.CAT_FAULT_CPU] += TS[th, C.TS_ATT_CPU]
    TT[th, C.CAT_IO_WAIT] += TS[th, C.TS_ATT_WAIT]
    TS[th, C.TS_ATT_CPU] = 0
    TS[th, C.TS_ATT_WAIT] = 0
    TS[th, C.TS_PHASE] = C.PH_FAULT_END
    if w < 0 or th < w:
        return t, C.PH_FAULT_END  # (a writer granted now with a lower id goes first)
    return t, g.STEP_DONE


@njit_borrow
def _ph_sigbus(K, W, G, th, t):
    """PH_SIGBUS: the handler failed (iomem without struct page): the attempt releases its
    lock (after its line cost, when there is one: the phase runs again then), the fault
    ends in SIGBUS, and so does the thread."""
    TS = W.TS
    TS[th, C.TS_ATT_CPU] += t - TS[th, C.TS_ACC]
    TS[th, C.TS_ACC] = t
    if TS[th, C.TS_REL_PAID] == 0:
        nxt = _release_deferred(K, W, G, th, t)
        if nxt >= 0:
            return nxt, g.STEP_DONE  # (on the CPU: nothing more this step)
    else:
        TS[th, C.TS_REL_PAID] = 0
    _release_hold(K, W, G, th, t)
    W.TT[th, C.CAT_FAULT_CPU] += TS[th, C.TS_ATT_CPU]
    TS[th, C.TS_ATT_CPU] = 0
    # iomem never waits, so the fault is minor with no I/O wait
    G[g.G_N_IN_FAULT] -= 1
    _fault_done(K, W, th, t, C.OUT_SIGBUS)
    W.cnt[C.CNT_SIGBUS] += 1
    _thread_ends(K, W, G, th, t, C.ST_SIGBUS)
    W.pend_n[th] = 0  # pending signals die with the thread
    return -1, g.HALT


@njit_phase
def _ph_fault_end(K, W, G, th, t):
    """PH_FAULT_END: the fault completed at ``t``; the access follows (a reference to the
    page-cache page when the PTE maps it, or a do_cow_fault copied it; docs/model.md
    11.2; under ``young`` only the PTE's young bit, 8.2)."""
    TS, FL = W.TS, W.FL
    p = K.rec_page[TS[th, C.TS_POS]]
    s = g._entry(K, G, p)
    if K.young:
        if (FL[p] & F_PTE) != 0:
            W.PT[p] |= PT_YOUNG | (PT_TLB if K.tlb else np.uint8(0))
    elif (FL[p] & F_FILE) != 0 and (not K.kernel_model or (
            (FL[s] & F_RES) != 0 and ((FL[p] & F_PTE) != 0 or TS[th, C.TS_COW] == 1))):
        if (FL[s] & F_RES) != 0 or K.replacement == C.REPL_CLOCK:
            _touch(s, K.replacement, FL.shape[0], W.LL, FL, W.cnt, K.workingset, G,
                   K.slot_frames)
    W.hist_fault[_hist_bucket(t - W.fstart[th])] += 1
    _fault_done(K, W, th, t, C.OUT_DONE)
    TS[th, C.TS_SEG] = C.CAT_HIT
    TS[th, C.TS_ACCESS_DONE] = 1
    TS[th, C.TS_PHASE] = C.PH_REC_END
    return t + K.costs[C.COST_ACCESS], g.STEP_DONE
