"""The event loop: ``_simulate`` replays one ``KernelInputs`` under the knobs of docs/model.md.

Only numpy and numba here.  Everything is an array or a scalar; policies arrive as rows of
knob values, backings and replacement algorithms as integer codes (``vmlab.engine.codes``).
The plain-Python reference simulator in ``tests/naive_engine.py`` implements the same
contract independently; the two must agree record for record.

Structure: events keyed ``(time, kind, id)``: each thread's next step in an array, I/O
completions, adversary calls and signal arrivals in a binary heap (``events``).  A thread
runs its own steps inline as long as each next step's key is below every other pending key
(nothing else can happen before it), which makes a stream of page hits or uncontended
faults a tight loop (the fast path, ``fastrun``; off with ``fast_path=False``).

``_simulate`` (Python) has ``_setup`` allocate the state (``state``: the work arrays ``W``,
the scalar state ``G``) and runs the loop in passes: ``_run_pass`` takes events in key
order until the run ends or a record table needs room, the tables grow in numpy between
passes (``_make_room``), and ``_finish`` closes the books.  ``_run_thread`` runs one
thread's steps, each a phase function (``record``, ``lockphases``, ``fault``, ``signals``)
that returns its next step and the phase it goes on with in the same step.  The phase
functions are compiled each on its own (numba's compile time of one large function grows
faster than its size), without reference counting (``njit_borrow``: a call costs no count
per array argument), and get the two state tuples by reference (``vmlab._numba.byref``: one
pointer each, not the ~850 LLVM arguments of their arrays).  The phases a step runs are
inlined into the loop by LLVM (``njit_phase``); those that run once per I/O or more rarely
are calls; a record's own phases (start, access, end), which run at every record, are
inlined by numba into ``_run_thread`` (docs/performance.md, fifth and sixth sessions).
"""
from __future__ import annotations

import numpy as np

from ..._numba import byref, njit, njit_borrow, njit_pass, njit_verb
from .. import codes as C
from . import state as g
from .accounting import (MAX_BINS, REC_MARGIN, _close_books, _grow, _grow1, _handler_extra,
                         _low_room, _oom)
from .arrivals import _on_adversary, _on_io
from .events import NO_STEP, _heap_pop, _heap_push, _key_lt, _limit, _next_arrival
from .fastrun import _rec_end_inline
from .fault import (_ph_abort, _ph_drop_wait, _ph_fault_end, _ph_install, _ph_lookup,
                    _ph_minor_map, _ph_sigbus, _ph_woken)
from .lockphases import _ph_granted, _ph_lock_req, _ph_release_w, _ph_wtry
from .locks import _note_mmap_grant
from .pagecache import (F_FILE, F_MSIO, F_PIN, F_RES, PRELOAD_PIN, _admit_entry, _insert,
                        _note_candidate)
from .record import _ph_access, _ph_rec_end, _ph_start
from .signals import _on_signal, _ph_deliver


@njit(inline="always")
def _ev_low(nev, cap_e, nf, cap_f, n_cand, margin):
    """The eviction table has less room than the fault table's free rows, the adversary's
    notes and one step's worst case (``margin``)."""
    return cap_e - nev < (cap_f - nf) + n_cand + margin


@njit_verb
def _needs_room(K, W, G):
    """A record table (or the adversary's notes) has fewer free rows than one step may
    need: the pass ends, the tables grow, the loop goes on."""
    keep = K.keep_records
    if _low_room(keep, G[g.G_NF], W.faults.shape[0], G[g.G_NL], W.locks.shape[0],
                 G[g.G_NS], W.sigs.shape[0], G[g.G_TRACK_CAND] == 1, G[g.G_N_CAND],
                 W.cand.shape[0], W.TS.shape[0]):
        return True
    if keep and _ev_low(G[g.G_NEV], W.evs.shape[0], G[g.G_NF], W.faults.shape[0],
                        G[g.G_N_CAND], G[g.G_EV_MARGIN]):
        return True
    return K.designs and keep and G[g.G_NVL] + REC_MARGIN > W.vlocks.shape[0]


def _simulate(K):
    """Replay ``K`` (a ``KernelInputs``); returns the record tables, the thread table, the
    counters, the time series and the latency histograms.

    The passes are driven from Python: ``_setup`` allocates, ``_run_pass`` runs until the
    run ends (its last pass closes the books: ``_end_run``) or a table needs room, the tables
    grow here (numpy), and ``_finish`` cuts the records to their rows.  (Called from a compiled ``_simulate``, ``_run_pass`` would be linked into it, and
    numba optimises and generates code for everything linked into a function again: the whole
    engine a second time, 12.5 s of the first compile; docs/performance.md.)  A pass call
    from Python costs the unboxing of the state's arrays, tens of microseconds, and a run
    takes a pass per doubling of a table."""
    W, G = _setup(K)
    while True:
        W = _make_room(K, W, G)
        if not _run_pass(K, W, G):
            break
    return _finish(W, G)


def _make_room(K, W, G):
    """``W`` with every table that has fewer free rows than a pass needs grown (records
    twice as long, the adversary's notes and the signal rings as the pass asks)."""
    grown = {}
    T = W.TS.shape[0]
    if K.keep_records:
        for name, used in (("faults", g.G_NF), ("locks", g.G_NL), ("sigs", g.G_NS),
                           ("vlocks", g.G_NVL)):
            if name == "vlocks" and not K.designs:
                continue
            a = getattr(W, name)
            while G[used] + REC_MARGIN > a.shape[0]:
                a = _grow(a)
            if a is not getattr(W, name):
                grown[name] = a
    cand = W.cand
    if G[g.G_TRACK_CAND] == 1 and G[g.G_N_CAND] + T + REC_MARGIN > cand.shape[0]:
        grown["cand"] = _grow1(cand, G[g.G_N_CAND] + T + REC_MARGIN)
    if K.keep_records:
        evs = W.evs
        nf_cap = grown.get("faults", W.faults).shape[0]
        while _ev_low(G[g.G_NEV], evs.shape[0], G[g.G_NF], nf_cap, G[g.G_N_CAND],
                      G[g.G_EV_MARGIN]):
            evs = _grow(evs)
        if evs is not W.evs:
            grown["evs"] = evs
    if G[g.G_PEND_FULL] == 1:
        for name in ("pend_t", "pend_f", "pend_row"):
            grown[name] = _grow_rings(getattr(W, name), W.pend_h, W.pend_n)
        W.pend_h[:] = 0
        G[g.G_PEND_FULL] = 0
    return W._replace(**grown) if grown else W


def _setup(K):
    """The state of a run before its first event: the work arrays ``W`` and the scalar
    state ``G`` (numpy; the first pass puts the preload in the page cache and the first
    arrivals in the heap: ``_start_run``)."""
    T = K.thr_off.shape[0] - 1
    P = K.page_vma.shape[0]
    NS = K.slot_frames.shape[0]  # page-cache entries: pages, then folios (docs/model.md 11.4)
    n_asid, nvma = K.n_asid, K.vma_backing.shape[0]
    keep = K.keep_records
    G = np.zeros(g.G_NCOL, np.int64)
    # (entries are their pages, one frame each, unless files, folios, readahead or a memory
    # limit are asked for: then the run has no fast path, and G_N_ENT counts entries apart
    # from the frames in G_N_RESIDENT)
    G[g.G_CACHE_MODE] = NS != P or K.charge_anon or K.ra_pages > 0
    G[g.G_RECLAIM_BATCH] = K.reclaim_batch
    G[g.G_LRU_BATCH] = K.lru_batch
    G[g.G_AGE_ALL] = K.age_all
    G[g.G_PRIO] = K.reclaim_prio
    G[g.G_SCAN_LEFT] = -1
    # fault-around windows wider than a page exist (else win_lo/win_hi are empty)
    G[g.G_HAS_WINDOWS] = (K.win_lo.shape[0] == P and P > 0 and
                          (K.fault_around > 1 or G[g.G_CACHE_MODE] == 1))
    G[g.G_TRACK_CAND] = K.adv_kind != C.SCHED_NONE  # (else nobody reads its notes)
    G[g.G_LINE_ON] = (K.costs[C.COST_MMAP_LINE] > 0 or K.costs[C.COST_VMA_LINE] > 0
                      or K.costs[C.COST_FAULT_SHARED] > 0
                      or K.costs[C.COST_LINE_MISS] * K.costs[C.COST_VMA_REREAD_LINES] > 0)

    # ---- page state: flag bits (F_*) and the pin count per entry (pagecache.py)
    FL = np.full(NS, F_MSIO, np.uint8)
    FL[np.flatnonzero(K.vma_backing[K.page_vma] == C.B_FILE)] |= F_FILE
    FL[P:] |= F_FILE
    # the page-cache lists: entry p's previous at LL[2 p], its next at LL[2 p + 1]; sentinel
    # NS (the list of LRU, FIFO and CLOCK, twolist's inactive list), sentinel NS + 1
    # (twolist's active list)
    LL = np.full(2 * (NS + 2), -1, np.int32)
    LL[2 * NS:2 * NS + 2] = NS
    LL[2 * NS + 2:] = NS + 1
    G[g.G_HAND] = NS
    # the adversary's notes: room for the preload's (noted before the first pass's check)
    cand = np.empty(max(64, 2 * K.preload.shape[0] + T + REC_MARGIN), np.int32)

    # ---- threads
    TS = np.zeros((T, C.TS_NCOL), np.int64)
    TT = np.zeros((T, C.TT_NCOL), np.int64)
    TS[:, C.TS_POS] = K.thr_off[:T]
    TS[:, C.TS_EMAP] = K.emap_off[:T]
    TS[:, [C.TS_FAULT_ROW, C.TS_LOCK_ROW, C.TS_WAIT_PAGE, C.TS_VL_ROW]] = -1
    TS[:, C.TS_LW_NEXT] = K.thr_lw_off[:T]
    TS[:, C.TS_LR_NEXT] = K.thr_lr_off[:T]
    TS[:, C.TS_UM_NEXT] = K.thr_um_off[:T]
    TS[:, C.TS_RD_NEXT] = K.thr_rd_off[:T]
    TS[:, C.TS_PHASE] = C.PH_START
    TS[:, C.TS_SEG] = C.CAT_COMPUTE
    TT[:, C.TT_TID] = K.thr_tid
    TT[:, C.TT_STATE] = C.ST_RUNNING

    # ---- records and tallies
    # evictions: room for a step's worst case (a folio and a readahead window, one frame
    # each at least) and for an adversary call (its notes) beyond the fault table's free
    # rows, so that the fast path (one eviction a fault row at most) needs no check of its own
    ev_margin = 2 * K.ra_pages + 3 * int(K.f_fsize.max()) + \
        T + REC_MARGIN + 4
    G[g.G_EV_MARGIN] = ev_margin
    cnt = np.zeros(C.N_COUNTERS, np.int64)
    cnt[C.CNT_OOM_NS] = -1
    cnt[C.CNT_OOM_THREAD] = -1
    G[g.G_BIN_NS] = K.bin_ns
    G[g.G_BIN_HI] = K.bin_ns
    G[g.G_IO_SLOT_CNT] = -1
    G[g.G_N_ALIVE] = T
    G[g.G_N_ACC_ALIVE] = K.thr_access.sum()
    G[g.G_ACC_END] = -1
    G[g.G_LW_FIRST] = -1
    G[g.G_LW_LAST] = -1
    G[g.G_STOP_T] = K.horizon

    def zeros(*shape, dtype=np.int64):
        return np.zeros(shape, dtype)

    hist = 64 + 58 * 64  # log buckets (accounting._hist_bucket)
    W = g.Work(
        FL=FL, PIN=zeros(NS, dtype=np.int32), PT=zeros(P, dtype=np.uint8),
        MAPC=zeros(NS, dtype=np.int32), RAM=zeros(NS, dtype=np.uint8),
        CHG=zeros(P, dtype=np.uint8), PTF=zeros(K.pt_n, dtype=np.uint8), RA=zeros(n_asid * K.f_npages.shape[0], 4), LL=LL,
        BQ=zeros(T, 2 + K.lru_batch),
        RS=np.tile(np.array([0, 0, 0, -1], np.int64), (K.rd_streams, 1)),
        SH=np.full(NS if K.workingset else 0, -1, np.int64),   # shadow entries (8.1)
        cand=cand,
        # mmap_sem per address space: waiting thread*2 + mode in a ring per space (a thread
        # waits at most once, so T slots always suffice); the lock designs' VMA locks
        lk_readers=zeros(n_asid), lk_writer=zeros(n_asid), lk_q=zeros(n_asid, T + 1),
        lk_qh=zeros(n_asid), lk_qn=zeros(n_asid), lk_woken=zeros(n_asid),
        lk_handoff=zeros(n_asid), vl_readers=zeros(nvma),
        vl_wlocked=zeros(nvma), vl_seq=zeros(nvma), vl_ops=zeros(nvma), mm_seq=zeros(n_asid),
        drain_th=np.full(n_asid, -1, np.int64), anon_vma=K.vma_anon_vma.copy(),
        TS=TS, TT=TT, tn=zeros(T), fstart=zeros(T), vf_h=zeros(nvma),
        pend_t=zeros(T, 8), pend_f=zeros(T, 8), pend_row=zeros(T, 8), pend_h=zeros(T),
        pend_n=zeros(T), sig_cnt=zeros(T),
        # the heap: at most one pending signal and one context completion a thread, one
        # adversary call and one I/O an entry: it never needs to grow
        ht=np.empty(2 * T + NS + 2, np.int64), hk=np.empty(2 * T + NS + 2, np.int64),
        faults=np.empty((1024 if keep else 0, C.F_NCOL), np.int64),
        sigs=np.empty((256 if keep else 0, C.S_NCOL), np.int64),
        locks=np.empty((1024 if keep else 0, C.L_NCOL), np.int64),
        evs=np.empty(((1024 + K.preload.shape[0] + ev_margin) if keep else 0, C.E_NCOL),
                     np.int64),
        vlocks=np.empty((256 if keep and K.designs else 0, C.VL_NCOL), np.int64),
        cnt=cnt, ts_bins=zeros(C.TSB_NCOL, MAX_BINS), hist_fault=zeros(hist),
        hist_sig=zeros(hist),
        hist_rwait=zeros(hist),   # mmap_sem waits, read (faults)
        hist_wwait=zeros(hist))   # and write (LOCK_W, eager mappings)
    return W, G


@njit_borrow
def _start_run(K, W, G):
    """Before the first event: each VMA's handler CPU, the first arrival of every signal
    schedule and of the adversary, the preload."""
    # each VMA's handler CPU (fault_ns + extra, both paths); the fast path's class and
    # lock-drop flag come from fast_path_eligibility (vmlab/engine/fastpath.py)
    costs, pol, vma_backing = K.costs, K.pol, K.vma_backing
    for v in range(vma_backing.shape[0]):
        pr = K.vma_pol[v]
        W.vf_h[v] = costs[C.COST_FAULT] + _handler_extra(
            vma_backing[v], pol[pr, C.K_EAGER] == 1, pol[pr, C.K_STRUCT_PAGE] == 1,
            costs[C.COST_STRUCT_PAGE], costs[C.COST_ZERO_FILL], costs[C.COST_DRIVER])

    # ---- the first arrival of every signal schedule and of the adversary
    ht, hk = W.ht, W.hk
    seed = np.uint64(K.seed)
    for th in range(W.tn.shape[0]):
        first, W.sig_cnt[th] = _next_arrival(K.sig_kind[th], K.sig_param[th],
                                             K.sig_start[th], 0, K.sig_times, K.sig_toff[th],
                                             K.sig_toff[th + 1], K.tables, seed, 16 + th)
        if first >= 0:
            G[g.G_HN] = _heap_push(ht, hk, G[g.G_HN], first, (C.EV_SIGNAL << 40) | th)
    first, G[g.G_ADV_CNT] = _next_arrival(K.adv_kind, K.adv_param, K.adv_start, 0, K.adv_times,
                                          0, K.adv_times.shape[0], K.tables, seed, 3)
    if first >= 0:
        G[g.G_HN] = _heap_push(ht, hk, G[g.G_HN], first, C.EV_ADVERSARY << 40)

    # ---- the kernel's own memory at time 0 under memory_bytes: a PGD per address space and
    # each thread's kernel stack (docs/model.md 12); above the limit, the run is an OOM there
    if K.charge_anon:
        G[g.G_N_ANON] = K.k_fixed
        if K.k_fixed > K.memory_pages:
            _oom(W, G, 0, 0)

    # ---- preload
    preload, FL, LL = K.preload, W.FL, W.LL
    S = FL.shape[0]
    P = K.page_vma.shape[0]
    for i in range(preload.shape[0]):
        p = preload[i]
        if (FL[p] & F_RES) == 0 and K.charge_anon:
            # under memory_bytes, a preloaded folio is another cgroup's page cache: resident,
            # not charged to the limit, never reclaimed by it (docs/model.md section 12)
            _insert(p, K.replacement, G[g.G_HAND], S, LL, FL)
            G[g.G_N_ENT] += 1
            G[g.G_N_FOREIGN] += 1
            W.PIN[p] = PRELOAD_PIN
            FL[p] |= F_PIN
        elif (FL[p] & F_RES) == 0:
            # (no page is mapped yet, so an eviction here wastes no I/O and unmaps nothing;
            # the entries counted apart before the call: numba compiles no conditional
            # expression among more than 30 arguments)
            n_ent = G[g.G_N_ENT] if G[g.G_CACHE_MODE] == 1 else G[g.G_N_RESIDENT]
            ok, G[g.G_N_RESIDENT], G[g.G_N_ENT], G[g.G_HAND], G[g.G_NEV] = _admit_entry(
                p, K.memory_pages, G[g.G_N_ANON], G[g.G_N_RESIDENT], n_ent,
                K.replacement, G[g.G_HAND], S, LL, FL, W.cnt, K.twolist_ratio, P,
                K.slot_frames, K.sp_off, K.sp_pages, W.MAPC, False, W.evs, G[g.G_NEV],
                K.keep_records, 0, C.BY_PRELOAD, -1, K.workingset, W.SH, G, K.page_vma,
                K.vma_exec, K.young, W.PT, W.BQ, W.PIN)
            if G[g.G_TRACK_CAND] == 1:
                G[g.G_N_CAND] = _note_candidate(W.cand, G[g.G_N_CAND], p)


@njit_borrow
def _end_run(K, W, G):
    """After the last event: close every unfinished thread's books at the stop (the
    horizon, the event budget's event, the OOM) and put the run's totals in the counters."""
    TS, TT, tn, cnt = W.TS, W.TT, W.tn, W.cnt
    designs = K.designs
    stop_t = G[g.G_STOP_T]
    if G[g.G_OOM] == 1:
        # a release before the OOM at the same instant granted mmap_sem to queued threads
        # whose resumes never run: the lock is theirs from the grant all the same
        # (docs/model.md 2 and 12), so their records say so
        for th in range(TS.shape[0]):
            if tn[th] == stop_t and TS[th, C.TS_PHASE] == C.PH_GRANTED and not (designs and (
                    TS[th, C.TS_W_LOCKED] == 1 or (TS[th, C.TS_LOCK_KIND] == C.LK_FAULT and
                                                   TS[th, C.TS_HOW] != C.FLK_MMAP))):
                _note_mmap_grant(K, W, th, stop_t, TS[th, C.TS_LOCK_KIND])
    end_time = _close_books(stop_t, TT, TS, K.thr_off, W.faults, K.keep_records, cnt, K.pol,
                            K.vma_pol, K.page_vma, K.rec_page, G[g.G_OOM] == 1)
    cnt[C.CNT_END] = end_time
    cnt[C.CNT_BIN_NS] = G[g.G_BIN_NS]
    cnt[C.CNT_EVENTS] = G[g.G_N_EV]
    cnt[C.CNT_BUDGET_STOP] = G[g.G_BUDGET_HIT]
    cnt[C.CNT_LW_FIRST] = G[g.G_LW_FIRST]
    cnt[C.CNT_LW_LAST] = G[g.G_LW_LAST]
    cnt[C.CNT_ACC_END] = stop_t if G[g.G_N_ACC_ALIVE] > 0 else G[g.G_ACC_END]
    cnt[C.CNT_RESIDENT] = G[g.G_N_RESIDENT]
    # faults opened by the general path (the fast path's, the rest, each took mmap_sem for
    # read at once: counted here, to keep the fast path as it was)
    n_fast = cnt[C.CNT_FAULTS] - G[g.G_N_GEN_FAULTS]
    cnt[C.CNT_MMAP_READ] += n_fast
    W.hist_rwait[0] += n_fast
    if G[g.G_CACHE_MODE] == 0:
        # every I/O read one page (counted here: the fast path counts I/Os only)
        cnt[C.CNT_READ_PAGES] = cnt[C.CNT_IO]


def _finish(W, G):
    """The run's results: the record tables cut to their rows, the thread table, the
    counters, the time series and the histograms."""
    nf, ns, nl, nvl, nev = G[g.G_NF], G[g.G_NS], G[g.G_NL], G[g.G_NVL], G[g.G_NEV]
    return (W.faults[:nf], W.sigs[:ns], W.locks[:nl], W.TT, W.cnt,
            W.ts_bins[:, :G[g.G_N_BINS]].copy(), W.hist_fault, W.hist_sig, W.vlocks[:nvl],
            W.hist_rwait, W.hist_wwait, W.evs[:nev])


def _grow_rings(a, head, n):
    """Each row of ``a`` is a ring (head ``head[i]``, ``n[i]`` items): a copy twice as wide,
    each ring unrolled from column 0."""
    T, m = a.shape
    b = np.zeros((T, 2 * m), np.int64)
    for i in range(T):
        b[i, :n[i]] = a[i, (head[i] + np.arange(n[i])) % m]
    return b


@njit_pass
def _run_pass(inputs, work, G):
    """Take events in key order until the run ends (every thread done, the horizon, the
    event budget, an OOM: closes the books, returns False) or a table needs room (returns
    True); the first pass starts the run (``_start_run``).  The phases
    get the two state tuples by reference (``vmlab._numba.byref``)."""
    K = byref(inputs)
    W = byref(work)
    if G[g.G_STARTED] == 0:
        _start_run(K, W, G)
        G[g.G_STARTED] = 1
    tn, ht, hk = W.tn, W.ht, W.hk
    T = tn.shape[0]
    horizon, event_budget = K.horizon, K.event_budget
    while G[g.G_N_ALIVE] > 0 and G[g.G_OOM] == 0:
        if G[g.G_PEND_FULL] == 1 or _needs_room(K, W, G):
            return True
        # the two earliest thread steps, in (time, thread) order: one scan (a blocked
        # thread's step is NO_STEP, later than any time)
        bth = 0
        bt = tn[0]
        sth = -1
        st = NO_STEP
        for i in range(1, T):
            ti = tn[i]
            if ti < bt:
                sth = bth
                st = bt
                bth = i
                bt = ti
            elif ti < st:
                sth = i
                st = ti
        if bt == NO_STEP:
            bth = -1
        hn = G[g.G_HN]
        if hn > 0 and (bth < 0 or _key_lt(ht[0], hk[0], bt, (C.EV_THREAD << 40) | bth)):
            t = ht[0]
            key = hk[0]
            if t > horizon:
                break
            G[g.G_HN] = _heap_pop(ht, hk, hn)
            kind = key >> 40
            ident = key & ((1 << 40) - 1)
        elif bth >= 0:
            t = bt
            if t > horizon:
                break
            kind = C.EV_THREAD
            ident = bth
            tn[bth] = NO_STEP
        else:
            break
        # the event budget: a run that takes far more events than its records need stops
        # here (its books are closed at t, as at the horizon)
        if event_budget >= 0 and G[g.G_N_EV] + 1 > event_budget:
            G[g.G_BUDGET_HIT] = 1
            G[g.G_STOP_T] = t
            break
        G[g.G_N_EV] += 1
        if kind == C.EV_IO:
            _on_io(K, W, G, ident, t)
            continue
        if kind == C.EV_ADVERSARY:
            _on_adversary(K, W, G, t)
            continue
        th = ident
        if kind == C.EV_SIGNAL:
            # a signal that aborts an interruptible wait resumes the thread at its arrival,
            # as a thread step (kind 3): after the other arrivals at that instant and after
            # the steps there of lower threads (docs/model.md section 2)
            if _on_signal(K, W, G, th, t):
                tn[th] = t
            continue
        # other threads' next steps change during this run only through grants it makes
        G[g.G_O_FOUND] = 1 if st != NO_STEP else 0
        G[g.G_O_T] = st
        G[g.G_O_K] = (C.EV_THREAD << 40) | sth
        _run_thread(K, W, G, th, t)
    _end_run(K, W, G)
    return False


@njit_verb
def _run_thread(K, W, G, th, t):
    """Run thread ``th`` from ``t``: its phases, step after step, inline as long as nothing
    else can happen before its next step; then its next step goes in ``tn`` (or it blocks,
    ends, or the run stops).  (Inlined into ``_run_pass``: compiled on its own, it would
    compile every phase linked into it once more.)"""
    TS = W.TS
    horizon = K.horizon
    while True:
        ph = TS[th, C.TS_PHASE]
        if ph < 0 or ph > C.PH_WTRY:
            raise RuntimeError("vmlab engine: unknown thread phase")
        nxt = -1  # time of this thread's next step; -1: it blocks (someone wakes it)
        # (a phase that moves on at the same time with nothing new before it returns the
        # next phase, run at once below, skipping a trip round the loop)
        if ph == C.PH_START:
            nxt, ph = _ph_start(K, W, G, th, t)          # (these three are inlined: they
        elif ph == C.PH_ACCESS:                           # run at every record)
            nxt, ph = _ph_access(K, W, G, th, t)
        if ph == C.PH_LOCK_REQ:
            nxt, ph = _ph_lock_req(K, W, G, th, t)
        if ph == C.PH_GRANTED:
            nxt, ph = _ph_granted(K, W, G, th, t)
        elif ph == C.PH_RELEASE_W:
            nxt, ph = _ph_release_w(K, W, G, th, t)
        elif ph == C.PH_LOOKUP:
            nxt, ph = _ph_lookup(K, W, G, th, t)
        elif ph == C.PH_DROP_WAIT:
            nxt, ph = _ph_drop_wait(K, W, G, th, t)
        elif ph == C.PH_WTRY:
            nxt, ph = _ph_wtry(K, W, G, th, t)
            if ph == C.PH_GRANTED:
                nxt, ph = _ph_granted(K, W, G, th, t)
        elif ph == C.PH_WOKEN:
            nxt, ph = _ph_woken(K, W, G, th, t)
        elif ph == C.PH_ABORT:
            nxt, ph = _ph_abort(K, W, G, th, t)
        elif ph == C.PH_DELIVER_REEXEC or ph == C.PH_REC_END:
            nxt, ph = _ph_rec_end(K, W, G, th, t, ph)
        elif ph == C.PH_DELIVER:
            nxt, ph = _ph_deliver(K, W, G, th, t)
        elif ph == C.PH_MINOR_MAP:
            nxt, ph = _ph_minor_map(K, W, G, th, t)
        if ph == C.PH_INSTALL:
            nxt, ph = _ph_install(K, W, G, th, t)
        if ph == C.PH_SIGBUS:
            nxt, ph = _ph_sigbus(K, W, G, th, t)
        if ph == C.PH_FAULT_END:
            nxt, ph = _ph_fault_end(K, W, G, th, t)
        if ph == g.HALT:
            return
        if ph >= 0 and nxt >= 0:
            # a phase to run at once, in this same step, that the dispatch above had passed
            # (an attempt that ends in a retry goes on to the retry's request: nothing comes
            # between, not even a lower thread's step at this instant; docs/model.md 2)
            t = nxt
            continue
        # a record's end before anything else happens goes straight on (fastrun.py)
        if K.fast_path and nxt >= 0 and TS[th, C.TS_PHASE] == C.PH_REC_END and \
                W.pend_n[th] == 0 and TS[th, C.TS_ACCESS_DONE] == 1 and nxt <= horizon:
            nxt = _rec_end_inline(K, W, G, th, nxt)
        # ---- go on inline if nothing else can happen before the next step
        if nxt < 0:
            return
        if nxt > horizon:
            W.tn[th] = nxt
            return
        found, lt, lk = _limit(G[g.G_HN], W.ht[0], W.hk[0], G[g.G_O_FOUND] == 1, G[g.G_O_T],
                               G[g.G_O_K])
        if K.fast_path and (not found or _key_lt(nxt, (C.EV_THREAD << 40) | th, lt, lk)) and \
                (K.event_budget < 0 or G[g.G_N_EV] < K.event_budget) and \
                not _needs_room(K, W, G):
            G[g.G_N_EV] += 1  # (a step taken inline is an event all the same)
            t = nxt
            continue
        W.tn[th] = nxt  # (or the tables need room: the pass ends, the thread goes on)
        return


#: The functions ``_run_pass`` compiles by way of ``_run_thread`` and after it, in the order
#: its typing meets them (the phases in their dispatch order above, the record's inline end,
#: the run's end).  ``run.compile_kernel``'s helper process compiles them from the last one
#: back into numba's cache while the pass compiles from the first: where the two meet, the
#: pass loads what the helper finished (docs/performance.md, nineteenth session).  A phase
#: left out only compiles in the pass, as before.
COMPILE_ORDER = (_ph_start, _ph_access, _ph_lock_req, _ph_granted, _ph_release_w, _ph_lookup,
                 _ph_drop_wait, _ph_wtry, _ph_woken, _ph_abort, _ph_rec_end, _ph_deliver, _ph_minor_map,
                 _ph_install, _ph_sigbus, _ph_fault_end, _rec_end_inline, _end_run)
