"""The page cache: the only place that knows replacement codes (docs/model.md section 8).

Pages are dense ids; their state is one flag byte each (``F_*``) plus a pin count.  The
resident file pages sit on doubly linked lists over the ids (``LL[2 p]`` and ``LL[2 p + 1]``
are ``p``'s previous and next: one flat array, whose index is a shift where a table's would
be a multiply by its row length): the inactive list (LRU, FIFO, CLOCK, and ``twolist``'s
inactive list) with sentinel ``S = P``, and ``twolist``'s active list with sentinel
``S + 1``.

With ``workingset`` (docs/model.md 8.1, twolist only) the general path's verbs also keep a
shadow entry per page-cache entry (``SH``: the nonresident age at its eviction by reclaim,
-1 for none), the nonresident age and the active list's frames (``G[G_NR_AGE]``,
``G[G_ACT_FRAMES]``): insert activates a recent refault, touch marks an active entry, the
victim's scan keeps referenced text, evict leaves a shadow, the adversary clears them.  The
fast path never runs a page-cache insert or eviction under it (fastpath.py).

With ``young`` (twolist in the kernel fault model, docs/model.md 8.2) a reference is the
young bit of the PTE it goes through (``PT_YOUNG`` in ``PT``, set by installs and hits), and
reclaim reads and clears those bits (``_victim_young``): the kernel's folio_referenced,
folio_check_references and shrink_active_list."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_phase, njit_verb, prefetch
from .. import codes as C
from .state import (G_ACT_FRAMES, G_BATCHED, G_LRU_BATCH, G_N_FOREIGN, G_NR_AGE,
                    G_RECLAIM_BATCH, G_SCAN_LEFT, G_AGE_ALL, G_PRIO, G_REFAULT_ACT,
                    G_REFAULT_SNAP)

# per-page flag bits (one byte a page: the whole flag array stays in cache)
F_PTE = np.uint8(1)      # a PTE maps the page
F_RES = np.uint8(2)      # file: in the page cache; context: ready
F_INFL = np.uint8(4)     # I/O in flight
F_MSIO = np.uint8(8)     # mapped since its last I/O (else an eviction wastes that I/O)
F_REF = np.uint8(16)     # reference bit: CLOCK's, and twolist's "referenced on the inactive list"
F_FILE = np.uint8(32)    # file backing (its references drive replacement)
F_PIN = np.uint8(64)     # pinned: PIN[p] > 0 (a copy of the count's sign, one byte to read)
F_ACT = np.uint8(128)    # twolist: on the active list
#: the PTE state's young bit (``PT``, kernel model: codes.PT_YOUNG; docs/model.md 8.2)
PT_YOUNG = np.uint8(C.PT_YOUNG)
#: ... and its TLB bit (tlb_young, docs/model.md 8.3)
PT_TLB = np.uint8(C.PT_TLB)


# ---------------------------------------------------------------------------------------
# the page-cache lists (doubly linked over dense page ids; sentinels n_pages and n_pages + 1).
# A listed entry's links are never negative: the list verbs index with them as unsigned, and
# numba then adds no wrap-around of negative indices to each access.


@njit_verb
def _list_insert_after(LL, node, at):
    b = LL[np.uintp(2 * at + 1)]
    LL[np.uintp(2 * node)] = at
    LL[np.uintp(2 * node + 1)] = b
    LL[np.uintp(2 * at + 1)] = node
    LL[np.uintp(2 * b)] = node


@njit_verb
def _list_remove(LL, node):
    a = LL[np.uintp(2 * node)]
    b = LL[np.uintp(2 * node + 1)]
    LL[np.uintp(2 * a + 1)] = b
    LL[np.uintp(2 * b)] = a
    LL[np.uintp(2 * node)] = -1
    LL[np.uintp(2 * node + 1)] = -1


#: the pin that keeps another cgroup's preloaded folio (under memory_bytes) out of reach of
#: the limit's reclaim: on the lists here, on no list of this cgroup's in the kernel
PRELOAD_PIN = 1 << 30

#: flags that make a page-cache entry no victim: its I/O in flight, or pinned by a fault
F_BUSY = F_INFL | F_PIN
#: ... and, for a readahead allocation, mapped by a PTE (docs/model.md 11.5: the kernel's
#: one __GFP_NORETRY reclaim pass keeps every folio a young PTE maps)
F_BUSY_RA = F_INFL | F_PIN | F_PTE


@njit_borrow
def _choose_victim(replacement, hand, S, LL, FL, n_resident, cnt, twolist_ratio):
    """The page to evict (or -1) and the new CLOCK hand (docs/model.md section 8)."""
    return _choose_victim_not(replacement, hand, S, LL, FL, n_resident, cnt, twolist_ratio,
                              F_BUSY)


@njit_borrow
def _choose_victim_not(replacement, hand, S, LL, FL, n_resident, cnt, twolist_ratio, busy):
    """``_choose_victim`` passing over the entries with any of the flags ``busy`` (as over
    ineligible ones: CLOCK leaves their bits)."""
    victim = -1
    if replacement == C.REPL_TWOLIST:
        # age the active list into the inactive one (oldest activation first) while the
        # inactive list is low, as the kernel's inactive_is_low: inactive * ratio < active
        n_act = cnt[C.CNT_ACTIVE]
        while (n_resident - n_act) * twolist_ratio < n_act:
            x = LL[2 * (S + 1)]
            _list_remove(LL, x)
            _list_insert_after(LL, x, S)
            FL[x] &= np.uint8(255 - F_ACT - F_REF)
            n_act -= 1
        cnt[C.CNT_ACTIVE] = n_act
        victim = _lru_victim_not(S, LL, FL, busy)
        if victim < 0:
            victim = _lru_victim_not(S + 1, LL, FL, busy)
    elif replacement == C.REPL_CLOCK:
        x = hand
        guard = 0
        while guard < 3 * (n_resident + 1):
            guard += 1
            if x == S:
                x = LL[2 * S + 1]
                continue
            if (FL[x] & busy) != 0:
                x = LL[2 * x + 1]
            elif (FL[x] & F_REF) != 0:
                FL[x] &= np.uint8(255 - F_REF)
                x = LL[2 * x + 1]
            else:
                victim = x
                break
        if victim >= 0:
            hand = LL[2 * victim + 1]
            if hand == S:
                hand = LL[2 * S + 1]
            if hand == victim:
                hand = S
    else:
        victim = _lru_victim_not(S, LL, FL, busy)
    return victim, hand


@njit_verb
def _note_candidate(cand, n_cand, p):
    """Note page ``p`` for the adversary: it became resident, unmapped and unpinned (stale
    notes are skipped when the adversary runs).  The event loop keeps room for it."""
    cand[n_cand] = p
    return n_cand + 1


@njit_verb
def _pin(p, PIN, FL):
    """A fault takes a reference on page ``p`` (it cannot be evicted while pinned)."""
    PIN[p] += 1
    FL[p] |= F_PIN


@njit_verb
def _unpin(p, PIN, FL):
    """A fault lets go of its reference on page ``p``."""
    PIN[p] -= 1
    if PIN[p] == 0:
        FL[p] &= np.uint8(255 - F_PIN)


@njit_verb
def _lru_victim(S, LL, FL):
    """LRU and FIFO: the page nearest the tail that is neither in flight nor pinned (or -1)."""
    return _lru_victim_not(S, LL, FL, F_BUSY)


@njit_verb
def _lru_victim_not(S, LL, FL, busy):
    """The page nearest the tail of list ``S`` with none of the flags ``busy`` (or -1)."""
    x = LL[2 * S]
    while x != S:
        if (FL[x] & busy) == 0:
            return x
        x = LL[2 * x]
    return -1


@njit_verb
def _evict(victim, replacement, S, LL, FL, cnt):
    """Take ``victim`` out of the page cache (its PTE goes with it)."""
    _list_remove(LL, victim)
    if (FL[victim] & F_ACT) != 0:
        cnt[C.CNT_ACTIVE] -= 1
    FL[victim] &= np.uint8(255 - F_RES - F_ACT)
    cnt[C.CNT_EVICTIONS] += 1
    if (FL[victim] & F_PTE) != 0:
        FL[victim] &= np.uint8(255 - F_PTE)
        cnt[C.CNT_PTES] -= 1
    if (FL[victim] & F_MSIO) == 0:
        cnt[C.CNT_WASTED_IO] += 1
    if replacement != C.REPL_CLOCK:
        # the next victim is the new tail: fetch its state for the next eviction
        nv = LL[2 * S]
        prefetch(FL, nv)
        prefetch(LL, 2 * LL[2 * nv])


@njit_verb
def _insert(p, replacement, hand, S, LL, FL):
    """Put file page ``p`` in the page cache: at the head (LRU, FIFO; twolist: of the inactive
    list) or behind the hand (CLOCK), its reference bit clear."""
    FL[p] |= F_RES
    FL[p] &= np.uint8(255 - F_REF)
    if replacement == C.REPL_CLOCK:
        _list_insert_after(LL, p, LL[2 * hand])
    else:
        _list_insert_after(LL, p, S)


@njit_verb
def _touch(s, replacement, S, LL, FL, cnt, ws, G, slot_frames):
    """A reference to resident file entry ``s`` (a hit, or a fault's access): LRU moves it to
    the head, CLOCK sets its reference bit, twolist marks or activates it (``ws``: under
    workingset, whose scalars ``G`` and frames ``slot_frames`` an activation changes)."""
    if replacement == C.REPL_LRU:
        if LL[2 * S + 1] != s:
            _list_remove(LL, s)
            _list_insert_after(LL, s, S)
    elif replacement == C.REPL_CLOCK:
        FL[s] |= F_REF
    elif replacement == C.REPL_TWOLIST:
        # (the fast path passes ws=False: compiled out there, its loop keeps no workingset
        # state live)
        if ws:
            _touch_ws(s, S, LL, FL, cnt, G, slot_frames)
        else:
            _touch_twolist(s, S, LL, FL, cnt)


@njit_verb
def _note_if_free(s, FL, cand, n_cand, track_cand):
    """Entry ``s`` may have become unpinned and unmapped: note it for the adversary if so
    (returns the notes' new length)."""
    if track_cand and (FL[s] & F_PIN) == 0 and (FL[s] & F_PTE) == 0:
        return _note_candidate(cand, n_cand, s)
    return n_cand


@njit_borrow
def _touch_twolist(p, S, LL, FL, cnt):
    """twolist: a reference to resident file entry ``p``.  On the inactive list, the first
    reference sets its bit and the second activates it (head of the active list, bit clear:
    the kernel's mark_page_accessed); on the active list nothing moves (the active list is
    aged in activation order, as the kernel deactivates referenced file pages too)."""
    f = FL[p]
    if (f & F_ACT) != 0:
        return
    if (f & F_REF) == 0:
        FL[p] = f | F_REF
        return
    _activate(p, S, LL, FL, cnt)


@njit_borrow
def _touch_ws(p, S, LL, FL, cnt, G, slot_frames):
    """``_touch_twolist`` under workingset (docs/model.md 8.1): an activation also grows the
    nonresident age and the active list's frames by ``p``'s frames (workingset_activation),
    and a reference to an active entry sets its bit, the young bit the aging reads."""
    f = FL[p]
    if (f & F_ACT) != 0:
        FL[p] = f | F_REF
        return
    if (f & F_REF) == 0:
        FL[p] = f | F_REF
        return
    _activate_ws(p, S, LL, FL, cnt, G, slot_frames)


@njit_verb
def _activate(p, S, LL, FL, cnt):
    """Move inactive entry ``p`` to the head of the active list, its bit clear.  An entry in
    an LRU-add batch is only flagged active: it joins the active list when its batch drains
    (the kernel's __lru_cache_activate_folio; docs/model.md 12.1)."""
    if LL[2 * p] <= -2:
        FL[p] = (FL[p] | F_ACT) & np.uint8(255 - F_REF)
        return
    _list_remove(LL, p)
    _list_insert_after(LL, p, S + 1)
    FL[p] = (FL[p] | F_ACT) & np.uint8(255 - F_REF)
    cnt[C.CNT_ACTIVE] += 1


@njit_verb
def _activate_ws(p, S, LL, FL, cnt, G, slot_frames):
    """``_activate`` under workingset: the active list's frames and the nonresident age grow
    by the entry's frames (workingset_activation, move_folios_to_lru)."""
    if LL[2 * p] > -2:   # (a batched entry's frames join the active list's at its drain)
        G[G_ACT_FRAMES] += slot_frames[p]
    _activate(p, S, LL, FL, cnt)
    G[G_NR_AGE] += slot_frames[p]


@njit_borrow
def _remove(p, replacement, hand, S, LL, FL, cnt, ws, G, slot_frames):
    """Drop resident entry ``p`` from the page cache (the adversary's fadvise: an
    invalidation, which leaves no shadow entry); returns the CLOCK hand, moved on if it was
    on ``p``."""
    if replacement == C.REPL_CLOCK and hand == p:
        hand = LL[2 * p + 1]
    _list_remove(LL, p)
    if (FL[p] & F_ACT) != 0:
        cnt[C.CNT_ACTIVE] -= 1
        if ws:
            G[G_ACT_FRAMES] -= slot_frames[p]
    FL[p] &= np.uint8(255 - F_RES - F_ACT)
    return hand


@njit_borrow
def _forget_shadows(entries, SH):
    """The adversary's call (an invalidation of its range) clears the shadow entries of its
    range's ``entries``, resident or not (docs/model.md 8.1)."""
    for i in range(entries.shape[0]):
        SH[entries[i]] = -1


# ---------------------------------------------------------------------------------------
# the general path's page cache (docs/model.md 11.4 and 12): an entry is an id of its own.
# Without files, folios, readahead or a memory limit an entry is its page (``slot == p``,
# one frame) and these verbs do exactly what the ones above do; with them, an entry is a
# folio ``P + k`` of ``slot_frames[P + k]`` frames, mapped by the pages
# ``sp_pages[sp_off[k]:sp_off[k + 1]]`` (any address space), ``MAPC`` of which map it now.


@njit_borrow
def _evict_entry(victim, P, S, LL, FL, cnt, slot_frames, sp_off, sp_pages, MAPC):
    """Take entry ``victim`` out of the page cache, removing every PTE that maps it (a private
    copy's PTE stays: it maps a page of its own).  Returns the frames it freed."""
    _list_remove(LL, victim)
    if (FL[victim] & F_ACT) != 0:
        cnt[C.CNT_ACTIVE] -= 1
    FL[victim] &= np.uint8(255 - F_RES - F_ACT)
    cnt[C.CNT_EVICTIONS] += 1
    if victim >= P:
        k = victim - P
        for j in range(sp_off[k], sp_off[k + 1]):
            q = sp_pages[j]
            if (FL[q] & F_PTE) != 0:
                FL[q] &= np.uint8(255 - F_PTE)
                cnt[C.CNT_PTES] -= 1
        MAPC[victim] = 0
        FL[victim] &= np.uint8(255 - F_PTE)
    elif (FL[victim] & F_PTE) != 0:
        FL[victim] &= np.uint8(255 - F_PTE)
        cnt[C.CNT_PTES] -= 1
    if (FL[victim] & F_MSIO) == 0:
        cnt[C.CNT_WASTED_IO] += 1
    return slot_frames[victim]


@njit_verb
def _exec_mapped(s, P, FL, page_vma, vma_exec, sp_off, sp_pages):
    """A PTE of an executable VMA maps entry ``s``'s page-cache page itself (a private
    copy's PTE clears the page's ``F_PTE``: it maps a page of its own; docs/model.md 8.1)."""
    if (FL[s] & F_PTE) == 0:
        return False
    if s < P:
        return vma_exec[page_vma[s]] == 1
    k = s - P
    for j in range(sp_off[k], sp_off[k + 1]):
        q = sp_pages[j]
        if (FL[q] & F_PTE) != 0 and vma_exec[page_vma[q]] == 1:
            return True
    return False


@njit_borrow
def _victim_ws(S, LL, FL, n_ent, cnt, twolist_ratio, busy, G, slot_frames, P, sp_off,
               sp_pages, page_vma, vma_exec):
    """twolist's victim under workingset (docs/model.md 8.1), or -1.  The active list is aged
    as in section 8, except that its oldest entry, when referenced and mapped by an
    executable VMA, goes round to the head, unmarked (shrink_active_list; the nonresident
    age grows); then the inactive list is scanned oldest first, a referenced executable
    entry activated on the way (folio_check_references), the first other eligible entry
    being the victim; else the oldest eligible active entry.  An entry with any of the
    flags ``busy`` is not eligible (``_choose_victim_not``)."""
    n_act = cnt[C.CNT_ACTIVE]
    while (n_ent - n_act) * twolist_ratio < n_act:
        x = LL[2 * (S + 1)]
        _list_remove(LL, x)
        if (FL[x] & F_REF) != 0 and _exec_mapped(x, P, FL, page_vma, vma_exec, sp_off,
                                                 sp_pages):
            _list_insert_after(LL, x, S + 1)
            FL[x] &= np.uint8(255 - F_REF)
            G[G_NR_AGE] += slot_frames[x]
            continue
        _list_insert_after(LL, x, S)
        FL[x] &= np.uint8(255 - F_ACT - F_REF)
        n_act -= 1
        G[G_ACT_FRAMES] -= slot_frames[x]
    cnt[C.CNT_ACTIVE] = n_act
    x = LL[2 * S]
    while x != S:
        nx = LL[2 * x]   # (read first: an activation moves x)
        if (FL[x] & busy) == 0:
            if (FL[x] & F_REF) != 0 and _exec_mapped(x, P, FL, page_vma, vma_exec, sp_off,
                                                     sp_pages):
                _activate_ws(x, S, LL, FL, cnt, G, slot_frames)
            else:
                return x
        x = nx
    return _lru_victim_not(S + 1, LL, FL, busy)


@njit_verb
def _read_young(s, P, FL, PT, page_vma, vma_exec, sp_off, sp_pages):
    """folio_referenced on entry ``s`` (docs/model.md 8.2): read and clear the young bits of
    the PTEs that map its page-cache page itself.  Returns (the VMAs with a young PTE, 2
    standing for two or more; whether one of them is executable)."""
    if (FL[s] & F_PTE) == 0:
        return 0, False
    if s < P:
        if (PT[s] & PT_YOUNG) == 0:
            return 0, False
        PT[s] &= np.uint8(255 - PT_YOUNG)
        return 1, vma_exec[page_vma[s]] == 1
    k = s - P
    n_vmas = 0
    v0 = -1
    exe = False
    for j in range(sp_off[k], sp_off[k + 1]):
        q = sp_pages[j]
        if (FL[q] & F_PTE) != 0 and (PT[q] & PT_YOUNG) != 0:
            PT[q] &= np.uint8(255 - PT_YOUNG)
            v = page_vma[q]
            if n_vmas == 0:
                n_vmas = 1
                v0 = v
            elif v != v0:
                n_vmas = 2
            if vma_exec[v] == 1:
                exe = True
    return n_vmas, exe


@njit_verb
def _mark_young(x, n_vmas, exe, S, LL, FL, cnt, ws, G, slot_frames):
    """folio_check_references on inactive entry ``x`` whose PTEs were young (``n_vmas``
    VMAs, ``exe`` one executable): it is marked (PG_referenced) and activated (newest end of
    the active list) if it was marked before, is young in two VMAs or an executable one, else
    kept (newest end of the inactive list).  Returns whether it was activated."""
    referenced = (FL[x] & F_REF) != 0
    FL[x] |= F_REF
    _list_remove(LL, x)
    if referenced or n_vmas > 1 or exe:
        _list_insert_after(LL, x, S + 1)
        FL[x] |= F_ACT
        cnt[C.CNT_ACTIVE] += 1
        if ws:
            G[G_ACT_FRAMES] += slot_frames[x]
            G[G_NR_AGE] += slot_frames[x]
        return True
    _list_insert_after(LL, x, S)
    return False


@njit_borrow
def _victim_young(S, LL, FL, PT, n_ent, cnt, twolist_ratio, one_pass, ws, G, slot_frames, P,
                  sp_off, sp_pages, page_vma, vma_exec):
    """twolist's victim in the kernel fault model (docs/model.md 8.2), or -1.  The active
    list is aged while low, oldest first: an entry with a young PTE of an executable VMA
    goes round to its head (shrink_active_list), any other is deactivated, its
    ``F_REF`` (PG_referenced) kept.  The inactive list is then scanned oldest first with
    folio_check_references: an eligible entry without young PTEs is the victim; one with
    is marked and activated (marked before, two VMAs, or an executable one) or kept (moved
    to the head).  ``one_pass`` (a readahead allocation, __GFP_NORETRY) meets each entry
    once and finds no victim on the active list; otherwise kept entries are met again,
    old, and with no inactive victim the oldest eligible active entry is one.  Under
    ``ws`` activations and rotations grow the nonresident age (8.1).  A pass examines at
    most ``G[G_SCAN_LEFT]`` entries when that is not -1 (a batch's top-up), counting them
    off it."""
    while (n_ent - cnt[C.CNT_ACTIVE]) * twolist_ratio < cnt[C.CNT_ACTIVE]:
        _age_oldest_active(S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off, sp_pages,
                           page_vma, vma_exec)
    n_act = cnt[C.CNT_ACTIVE]
    n_scan = n_ent - n_act
    budget = G[G_SCAN_LEFT]
    if one_pass and 0 <= budget < n_scan:
        n_scan = budget
    x = LL[2 * S]
    while x != S and n_scan > 0:
        nx = LL[2 * x]   # (read first: an activation or a keep moves x)
        if one_pass:
            n_scan -= 1
            if budget >= 0:
                G[G_SCAN_LEFT] -= 1
        if (FL[x] & F_BUSY) == 0:
            n_vmas, exe = _read_young(x, P, FL, PT, page_vma, vma_exec, sp_off, sp_pages)
            if n_vmas == 0:
                return x
            if not _mark_young(x, n_vmas, exe, S, LL, FL, cnt, ws, G, slot_frames) \
                    and nx == S:
                nx = x   # (kept, and it was the newest: it is met again at once)
        x = nx
    if one_pass:
        return -1
    return _lru_victim_not(S + 1, LL, FL, F_BUSY)


@njit_borrow
def _age_oldest_active(S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off, sp_pages, page_vma,
                       vma_exec):
    """shrink_active_list on the oldest active entry (docs/model.md 8.2): its young bits are
    read and cleared; with a young PTE of an executable VMA it goes round to the head of the
    active list, else it is deactivated (newest end of the inactive list, its ``F_REF``,
    PG_referenced, kept).  Under ``ws`` the nonresident age and the active frames follow."""
    x = LL[2 * (S + 1)]
    _list_remove(LL, x)
    n_vmas, exe = _read_young(x, P, FL, PT, page_vma, vma_exec, sp_off, sp_pages)
    if n_vmas > 0 and exe:
        _list_insert_after(LL, x, S + 1)
        if ws:
            G[G_NR_AGE] += slot_frames[x]
        return
    _list_insert_after(LL, x, S)
    FL[x] &= np.uint8(255 - F_ACT)
    cnt[C.CNT_ACTIVE] -= 1
    if ws:
        G[G_ACT_FRAMES] -= slot_frames[x]


@njit_borrow
def _age_active_all(S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off, sp_pages, page_vma,
                    vma_exec):
    """``reclaim_ages_active`` (docs/model.md 8.3): a reclaim that starts ages the whole
    active list once, oldest first (``_age_oldest_active`` on each entry)."""
    for _i in range(cnt[C.CNT_ACTIVE]):
        _age_oldest_active(S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off, sp_pages,
                           page_vma, vma_exec)


@njit_verb
def _insert_entry(s, replacement, hand, S, LL, FL, cnt, ws, SH, G, slot_frames, th, BQ):
    """``_insert`` on the general path: under ``ws`` a shadow entry in ``s``'s slot is
    consumed, and when its refault distance (the nonresident age now minus the one it
    holds) is at most the active list's frames, ``s`` joins the active list's head,
    unmarked, and the age grows by its frames (workingset_refault, docs/model.md 8.1).
    With LRU-add batches (``G[G_LRU_BATCH]``) the entry of thread ``th`` (not -1) goes into
    its batch instead, flagged active or not, and reaches its list when the batch drains
    (docs/model.md 12.1)."""
    batched = G[G_LRU_BATCH] > 0 and th >= 0
    if ws and SH[s] >= 0:
        distance = G[G_NR_AGE] - SH[s]
        SH[s] = -1
        if distance <= G[G_ACT_FRAMES]:
            G[G_REFAULT_ACT] += 1
            FL[s] |= F_RES | F_ACT
            FL[s] &= np.uint8(255 - F_REF)
            G[G_NR_AGE] += slot_frames[s]
            if batched:
                _batch_add(s, th, BQ, S, LL, FL, cnt, ws, G, slot_frames)
                return
            _list_insert_after(LL, s, S + 1)
            cnt[C.CNT_ACTIVE] += 1
            G[G_ACT_FRAMES] += slot_frames[s]
            return
    if batched:
        FL[s] |= F_RES
        FL[s] &= np.uint8(255 - F_REF)
        _batch_add(s, th, BQ, S, LL, FL, cnt, ws, G, slot_frames)
        return
    _insert(s, replacement, hand, S, LL, FL)


# ---------------------------------------------------------------------------------------
# the per-CPU LRU-add batches (docs/model.md 12.1): a folio the kernel adds to the LRU waits
# in its CPU's batch (a thread's here) until the batch is full, a large folio joins it, or
# the thread drains it (a reclaim that finds its cgroup's lists not empty, an unmap); until
# then no reclaim sees it.  (Calls, not inlined verbs: each inlined copy cost LLVM time in
# the first compile, and batches run under memory_bytes only.)


@njit_borrow
def _batch_drain(th, BQ, S, LL, FL, cnt, ws, G, slot_frames):
    """Thread ``th``'s batch goes onto the lists in the order it was added (each entry at
    the head of the active list if flagged active, else of the inactive list), and empties
    (folio_batch_move_lru)."""
    n = BQ[th, 1]
    for i in range(n):
        s = BQ[th, 2 + i]
        if (FL[s] & F_ACT) != 0:
            _list_insert_after(LL, s, S + 1)
            cnt[C.CNT_ACTIVE] += 1
            if ws:
                G[G_ACT_FRAMES] += slot_frames[s]
        else:
            _list_insert_after(LL, s, S)
    G[G_BATCHED] -= n
    BQ[th, 0] = 0
    BQ[th, 1] = 0


@njit_borrow
def _batch_add(s, th, BQ, S, LL, FL, cnt, ws, G, slot_frames):
    """Page-cache entry ``s`` joins thread ``th``'s batch; a full batch, or a large folio,
    drains it (folio_batch_add_and_move)."""
    n = BQ[th, 1]
    BQ[th, 2 + n] = s
    BQ[th, 1] = n + 1
    BQ[th, 0] += 1
    LL[2 * s] = -2 - th
    LL[2 * s + 1] = -2 - th
    G[G_BATCHED] += 1
    if BQ[th, 0] >= G[G_LRU_BATCH] or slot_frames[s] > 1:
        _batch_drain(th, BQ, S, LL, FL, cnt, ws, G, slot_frames)


@njit_borrow
def _batch_count(th, BQ, S, LL, FL, cnt, ws, G, slot_frames):
    """An anonymous folio (a page, or a private copy) joins thread ``th``'s batch: it takes
    a place, and a full batch drains."""
    if G[G_LRU_BATCH] > 0:
        BQ[th, 0] += 1
        if BQ[th, 0] >= G[G_LRU_BATCH]:
            _batch_drain(th, BQ, S, LL, FL, cnt, ws, G, slot_frames)


@njit_borrow
def _batch_drain_all(BQ, S, LL, FL, cnt, ws, G, slot_frames):
    """Every thread's batch drains (lru_add_drain_all)."""
    for th in range(BQ.shape[0]):
        if BQ[th, 0] > 0:
            _batch_drain(th, BQ, S, LL, FL, cnt, ws, G, slot_frames)


@njit_verb
def _note_eviction(evs, nev, keep, t, entry, cause, th):
    """An eviction record (the loop keeps room for it: loop.py ``_ev_low``)."""
    if keep:
        evs[nev, C.E_TIME] = t
        evs[nev, C.E_ENTRY] = entry
        evs[nev, C.E_CAUSE] = cause
        evs[nev, C.E_THREAD] = th
        return nev + 1
    return nev


# ---------------------------------------------------------------------------------------
# the kernel's reclaim call (docs/model.md 8.4): try_charge_memcg retries
# do_try_to_free_pages, whose priority loop scans each list ``size >> priority`` entries in
# chunks (shrink_inactive_list, shrink_active_list) until it has freed its target

#: mm/vmscan.c's first priority; mm/internal.h's retries of a charge that reclaims nothing
DEF_PRIORITY = 12
MAX_RECLAIM_RETRIES = 16


@njit_verb
def _n_inactive(n_ent, cnt, G):
    """The cgroup's entries on the inactive list: of ``n_ent`` in the page cache, not those
    in a batch (12.1), on the active list, or another cgroup's (the preload)."""
    n = n_ent - G[G_BATCHED] - cnt[C.CNT_ACTIVE] - G[G_N_FOREIGN]
    return n if n > 0 else 0


@njit_verb
def _reclaim_entry(x, P, S, LL, FL, cnt, slot_frames, sp_off, sp_pages, MAPC, ws, SH, G, evs,
                   nev, keep, t, cause, th):
    """Reclaim evicts entry ``x`` (``_evict_entry``): under ``ws`` it leaves a shadow entry
    holding the nonresident age before this eviction's increment (workingset_eviction,
    8.1), and the eviction is recorded.  Returns (frames freed, nev)."""
    active = (FL[x] & F_ACT) != 0
    freed = _evict_entry(x, P, S, LL, FL, cnt, slot_frames, sp_off, sp_pages, MAPC)
    if ws:
        SH[x] = G[G_NR_AGE]
        G[G_NR_AGE] += freed
        if active:
            G[G_ACT_FRAMES] -= freed
    return freed, _note_eviction(evs, nev, keep, t, x, cause, th)


@njit_borrow
def _shrink_inactive(k, n_ent, S, LL, FL, cnt, P, slot_frames, sp_off, sp_pages, MAPC, evs,
                     nev, keep, t, cause, th, ws, SH, G, page_vma, vma_exec, PT, BQ, PIN):
    """shrink_inactive_list: thread ``th``'s batch drained (lru_add_drain), up to ``k`` of
    the cgroup's entries from the inactive list's oldest end checked in turn
    (folio_check_references): one not eligible (in flight, pinned) is kept (newest end);
    one with a young PTE is marked and activated (marked before, two VMAs, an executable
    one) or kept; one without is evicted.  Returns (frames freed, n_ent, nev)."""
    if th >= 0 and BQ[th, 0] > 0:
        _batch_drain(th, BQ, S, LL, FL, cnt, ws, G, slot_frames)
    n_in = _n_inactive(n_ent, cnt, G)
    if k > n_in:
        k = n_in
    freed = 0
    x = LL[2 * S]
    while k > 0 and x != S:
        nx = LL[2 * x]   # (read first: x moves)
        if PIN[x] >= PRELOAD_PIN:
            x = nx
            continue
        k -= 1
        if (FL[x] & F_BUSY) != 0:
            _list_remove(LL, x)
            _list_insert_after(LL, x, S)
            x = nx
            continue
        n_vmas, exe = _read_young(x, P, FL, PT, page_vma, vma_exec, sp_off, sp_pages)
        if n_vmas == 0:
            got, nev = _reclaim_entry(x, P, S, LL, FL, cnt, slot_frames, sp_off, sp_pages,
                                      MAPC, ws, SH, G, evs, nev, keep, t, cause, th)
            freed += got
            n_ent -= 1
            x = nx
            continue
        _mark_young(x, n_vmas, exe, S, LL, FL, cnt, ws, G, slot_frames)
        x = nx
    return freed, n_ent, nev


@njit_borrow
def _shrink_active(k, S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off, sp_pages, page_vma,
                   vma_exec, th, BQ):
    """shrink_active_list: thread ``th``'s batch drained, up to ``k`` entries from the
    active list's oldest end aged (``_age_oldest_active``: referenced text goes round, any
    other is deactivated)."""
    if th >= 0 and BQ[th, 0] > 0:
        _batch_drain(th, BQ, S, LL, FL, cnt, ws, G, slot_frames)
    if k > cnt[C.CNT_ACTIVE]:
        k = cnt[C.CNT_ACTIVE]
    for _i in range(k):
        _age_oldest_active(S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off, sp_pages,
                           page_vma, vma_exec)


@njit_borrow
def _reclaim_call(target, n_ent, twolist_ratio, S, LL, FL, cnt, P, slot_frames, sp_off,
                  sp_pages, MAPC, evs, nev, keep, t, cause, th, ws, SH, G, page_vma, vma_exec,
                  PT, BQ, PIN):
    """do_try_to_free_pages for the cgroup (docs/model.md 8.4): priorities 12 down to 0; at
    each, the inactive and the active list scanned ``size >> priority`` entries (their sizes
    as the priority starts), in alternate chunks of ``G[G_RECLAIM_BATCH]``, the active one
    only when it may be deactivated (the inactive list low, refaults activated since the
    last call, or forced), until ``target`` frames are freed; a call that freed nothing runs
    again (memcg_full_walk), and then, if it skipped a deactivation, once more, forced.
    Returns (frames freed, n_ent, nev)."""
    chunk = G[G_RECLAIM_BATCH]
    freed = 0
    force = False
    full_walk = False
    skipped = False
    while True:
        for prio in range(DEF_PRIORITY, -1, -1):
            n_act = cnt[C.CNT_ACTIVE]
            n_in = _n_inactive(n_ent, cnt, G)
            may_deactivate = (force or G[G_REFAULT_ACT] != G[G_REFAULT_SNAP]
                              or n_in * twolist_ratio < n_act)
            n_in >>= prio
            n_act >>= prio
            while n_in > 0 or n_act > 0:
                if n_in > 0:
                    k = min(n_in, chunk)
                    n_in -= k
                    got, n_ent, nev = _shrink_inactive(
                        k, n_ent, S, LL, FL, cnt, P, slot_frames, sp_off, sp_pages, MAPC,
                        evs, nev, keep, t, cause, th, ws, SH, G, page_vma, vma_exec, PT, BQ,
                        PIN)
                    freed += got
                if n_act > 0:
                    k = min(n_act, chunk)
                    n_act -= k
                    if may_deactivate:
                        _shrink_active(k, S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off,
                                       sp_pages, page_vma, vma_exec, th, BQ)
                    else:
                        skipped = True
                if freed >= target:
                    break
            if freed >= target:
                break
        G[G_REFAULT_SNAP] = G[G_REFAULT_ACT]
        if freed > 0:
            return freed, n_ent, nev
        if not full_walk:
            full_walk = True   # (memcg_full_walk: once more, as it was)
            continue
        if not skipped or force:
            return freed, n_ent, nev
        force = True
        skipped = False


@njit_borrow
def _charge_reclaim(need, limit, n_other, n_frames, n_ent, twolist_ratio, S, LL, FL, cnt, P,
                    slot_frames, sp_off, sp_pages, MAPC, evs, nev, keep, t, cause, th, ws, SH,
                    G, page_vma, vma_exec, PT, BQ, PIN):
    """try_charge_memcg (docs/model.md 8.4): reclaim calls until ``need`` frames fit under
    ``limit`` beside ``n_frames`` and ``n_other``.  A readahead's charge (__GFP_NORETRY)
    fails after its second call; any other once MAX_RECLAIM_RETRIES calls in a row freed
    nothing (or one did, for a folio of more than 8 pages).  Returns (ok, n_frames, n_ent,
    nev)."""
    target = need if need > G[G_RECLAIM_BATCH] else G[G_RECLAIM_BATCH]
    drained = False
    retries = MAX_RECLAIM_RETRIES
    while True:
        freed, n_ent, nev = _reclaim_call(target, n_ent, twolist_ratio, S, LL, FL, cnt, P,
                                          slot_frames, sp_off, sp_pages, MAPC, evs, nev, keep,
                                          t, cause, th, ws, SH, G, page_vma, vma_exec, PT, BQ,
                                          PIN)
        n_frames -= freed
        if n_frames + n_other + need <= limit:
            return True, n_frames, n_ent, nev
        if not drained:
            drained = True   # (drain_all_stock, and one more call)
            continue
        if cause == C.BY_READAHEAD:
            return False, n_frames, n_ent, nev
        if freed > 0 and need <= 8:
            continue
        if retries > 0:
            retries -= 1
            continue
        return False, n_frames, n_ent, nev


@njit_borrow
def _reclaim(need, limit, n_other, n_frames, n_ent, replacement, hand, S, LL, FL, cnt,
             twolist_ratio, P, slot_frames, sp_off, sp_pages, MAPC, evs, nev, keep, t, cause,
             th, ws, SH, G, page_vma, vma_exec, young, PT, BQ, PIN):
    """Evict victims (section 8's rule; under ``ws``, 8.1's, each eviction leaving a shadow
    entry in ``SH``) until ``need`` more frames fit under ``limit`` (-1: none) beside the
    page cache's ``n_frames`` and ``n_other`` anonymous ones, recording each eviction (at
    ``t``, for ``cause`` by thread ``th``) when ``keep``.  Returns (ok, n_frames, n_ent, hand,
    nev); ok is False when no victim was eligible before they fit.  A readahead allocation
    (``cause`` BY_READAHEAD) evicts no entry that a PTE maps (11.5), or, under ``young``
    (8.2: the young bits in ``PT``), none a young PTE maps, in one pass.  A reclaim that
    starts (the frames do not fit) frees at least ``G[G_RECLAIM_BATCH]`` frames while
    victims last (memory_bytes: the kernel's SWAP_CLUSTER_MAX, section 12).  With LRU-add
    batches (12.1) a reclaim that starts drains thread ``th``'s batch (``BQ``) first if its
    cgroup has an entry on the lists (the kernel's shrink_*_list call lru_add_drain only
    when they scan a list); entries still batched are no victims."""
    if G[G_PRIO] == 1 and limit >= 0 and n_frames + n_other + need > limit:
        ok, n_frames, n_ent, nev = _charge_reclaim(
            need, limit, n_other, n_frames, n_ent, twolist_ratio, S, LL, FL, cnt, P,
            slot_frames, sp_off, sp_pages, MAPC, evs, nev, keep, t, cause, th, ws, SH, G,
            page_vma, vma_exec, PT, BQ, PIN)
        return ok, n_frames, n_ent, hand, nev
    busy = F_BUSY_RA if cause == C.BY_READAHEAD else F_BUSY
    batch = G[G_RECLAIM_BATCH] if limit >= 0 and n_frames + n_other + need > limit else 0
    if batch > 0 and G[G_LRU_BATCH] > 0 and th >= 0 and BQ[th, 0] > 0 and \
            n_ent - G[G_BATCHED] - G[G_N_FOREIGN] > 0:
        _batch_drain(th, BQ, S, LL, FL, cnt, ws, G, slot_frames)
    if batch > 0 and young and G[G_AGE_ALL] == 1:
        _age_active_all(S, LL, FL, PT, cnt, ws, G, slot_frames, P, sp_off, sp_pages,
                        page_vma, vma_exec)
    freed_all = 0
    while limit >= 0 and (n_frames + n_other + need > limit or freed_all < batch):
        fits = n_frames + n_other + need <= limit
        n_list = n_ent - G[G_BATCHED]   # (entries on the lists)
        if young:
            # the batch's top-up (its frames fit already): one pass over the inactive list
            # as it is when the top-up starts, no folio met twice, no active fallback
            if fits and G[G_SCAN_LEFT] < 0:
                G[G_SCAN_LEFT] = n_list - cnt[C.CNT_ACTIVE]
            victim = _victim_young(S, LL, FL, PT, n_list, cnt, twolist_ratio,
                                   cause == C.BY_READAHEAD or fits, ws, G, slot_frames, P,
                                   sp_off, sp_pages, page_vma, vma_exec)
        elif ws:
            victim = _victim_ws(S, LL, FL, n_list, cnt, twolist_ratio, busy, G, slot_frames,
                                P, sp_off, sp_pages, page_vma, vma_exec)
        else:
            victim, hand = _choose_victim_not(replacement, hand, S, LL, FL, n_list, cnt,
                                              twolist_ratio, busy)
        if victim < 0:
            G[G_SCAN_LEFT] = -1
            if n_frames + n_other + need <= limit:
                break   # (the batch ends early: its frames fit)
            return False, n_frames, n_ent, hand, nev
        freed, nev = _reclaim_entry(victim, P, S, LL, FL, cnt, slot_frames, sp_off, sp_pages,
                                    MAPC, ws, SH, G, evs, nev, keep, t, cause, th)
        freed_all += freed
        n_frames -= freed
        n_ent -= 1
    G[G_SCAN_LEFT] = -1
    return True, n_frames, n_ent, hand, nev


@njit_borrow
def _admit_entry(s, limit, n_other, n_frames, n_ent, replacement, hand, S, LL, FL, cnt,
                 twolist_ratio, P, slot_frames, sp_off, sp_pages, MAPC, may_fail, evs, nev,
                 keep, t, cause, th, ws, SH, G, page_vma, vma_exec, young, PT, BQ, PIN):
    """Give entry ``s`` its frames (``_reclaim``) and put it in the page cache
    (``_insert_entry``).  When no victim is eligible: ``may_fail`` (the memory limit)
    returns ok = False with nothing inserted; otherwise (``memory_pages``, whose minimum
    leaves a victim for every thread) the entry goes in all the same.  Returns (ok,
    n_frames, n_ent, hand, nev)."""
    ok, n_frames, n_ent, hand, nev = _reclaim(
        slot_frames[s], limit, n_other, n_frames, n_ent, replacement, hand, S, LL, FL, cnt,
        twolist_ratio, P, slot_frames, sp_off, sp_pages, MAPC, evs, nev, keep, t, cause, th,
        ws, SH, G, page_vma, vma_exec, young, PT, BQ, PIN)
    if not ok and may_fail:
        return False, n_frames, n_ent, hand, nev
    _insert_entry(s, replacement, hand, S, LL, FL, cnt, ws, SH, G, slot_frames, th, BQ)
    return True, n_frames + slot_frames[s], n_ent + 1, hand, nev


@njit_phase
def _admit_page(p, limit, n_frames, replacement, hand, S, LL, FL, cnt, twolist_ratio, evs, nev,
                keep, t, th):
    """``_admit_entry`` for a page that is its own entry (one frame, ``memory_pages`` only:
    no entry reads ``slot_frames``, a load that misses the cache for a cold page): evict
    victims while the cache is full, then insert ``p``.  Returns (n_frames, hand, nev)."""
    while limit >= 0 and n_frames >= limit:
        if replacement <= C.REPL_FIFO:
            victim = _lru_victim(S, LL, FL)
        else:
            victim, hand = _choose_victim(replacement, hand, S, LL, FL, n_frames, cnt,
                                          twolist_ratio)
        if victim < 0:
            break
        _evict(victim, replacement, S, LL, FL, cnt)
        n_frames -= 1
        nev = _note_eviction(evs, nev, keep, t, victim, C.BY_FAULT, th)
    _insert(p, replacement, hand, S, LL, FL)
    return n_frames + 1, hand, nev
