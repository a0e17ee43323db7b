"""What the heap's events do besides signals (signals.py): an I/O completes (docs/model.md
section 6; a lock-dropping context wait's completion too) and the adversary calls (section
8)."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_phase
from .. import codes as C
from . import state as g
from .events import _heap_push, _io_woken_at, _next_arrival
from .pagecache import (F_FILE, F_INFL, F_MSIO, F_PIN, F_PTE, F_RES, _batch_drain_all,
                        _forget_shadows,
                        _note_eviction, _note_if_free, _remove, _unpin)


@njit_phase
def _on_io(K, W, G, p, t):
    """The I/O of page-cache entry ``p`` completes at ``t`` (or, for a context page, the
    context a lock-dropping wait asked for is ready): the threads asleep on it wake."""
    FL, TS, tn = W.FL, W.TS, W.tn
    if (FL[p] & F_FILE) == 0:
        FL[p] |= F_RES  # a lock-dropping context wait completed: ready from now
        return
    track = G[g.G_TRACK_CAND] == 1
    FL[p] &= np.uint8(255 - F_INFL)
    G[g.G_N_CAND] = _note_if_free(p, FL, W.cand, G[g.G_N_CAND], track)
    for th in range(TS.shape[0]):
        if TS[th, C.TS_WAIT_PAGE] == p and TS[th, C.TS_PHASE] == C.PH_WAIT_IO:
            TS[th, C.TS_WAIT_PAGE] = -1
            if TS[th, C.TS_WAIT_DROP] == 1:
                # the lock-dropping attempt lets its page go at completion
                _unpin(p, W.PIN, FL)
                G[g.G_N_CAND] = _note_if_free(p, FL, W.cand, G[g.G_N_CAND], track)
            TS[th, C.TS_PHASE] = C.PH_WOKEN
            tn[th] = _io_woken_at(K, W, th, t)


@njit_borrow
def _on_adversary(K, W, G, t):
    """The adversary calls at ``t``: it evicts the pages of its range that are resident,
    unmapped, unpinned and not in flight (fadvise DONTNEED), and comes back later.  Under
    workingset each call clears its range's shadow entries first (docs/model.md 8.1)."""
    FL, cand, cnt = W.FL, W.cand, W.cnt
    S = FL.shape[0]
    if K.workingset:
        _forget_shadows(K.adv_entries, W.SH)
    if G[g.G_LRU_BATCH] > 0:
        # (a folio in a CPU's LRU-add batch fails the invalidation: fadvise then drains
        # every CPU's batch and tries again, lru_add_drain_all; docs/model.md 12.1)
        _batch_drain_all(W.BQ, S, W.LL, FL, cnt, K.workingset, G, K.slot_frames)
    j = 0
    for i in range(G[g.G_N_CAND]):
        p = cand[i]
        if (FL[p] & (F_RES | F_INFL | F_PIN | F_PTE)) == F_RES:
            if K.adv_target[p] == 1:
                G[g.G_HAND] = _remove(p, K.replacement, G[g.G_HAND], S, W.LL, FL, cnt,
                                      K.workingset, G, K.slot_frames)
                G[g.G_N_RESIDENT] -= K.slot_frames[p]
                G[g.G_N_ENT] -= 1
                G[g.G_NEV] = _note_eviction(W.evs, G[g.G_NEV], K.keep_records, t, p,
                                            C.BY_ADVERSARY, -1)
                cnt[C.CNT_ADV_EVICTIONS] += 1
                if (FL[p] & F_MSIO) == 0:
                    cnt[C.CNT_WASTED_IO] += 1
            else:
                cand[j] = p
                j += 1
    G[g.G_N_CAND] = j
    nxt_t, G[g.G_ADV_CNT] = _next_arrival(K.adv_kind, K.adv_param, t, G[g.G_ADV_CNT],
                                          K.adv_times, 0, K.adv_times.shape[0], K.tables,
                                          K.seed, 3)
    if nxt_t >= 0 and nxt_t <= K.horizon:
        G[g.G_HN] = _heap_push(W.ht, W.hk, G[g.G_HN], nxt_t, C.EV_ADVERSARY << 40)
