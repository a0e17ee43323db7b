"""The kernel fault model's verbs (docs/model.md section 11): which case a fault is, what a
PTE allows, installing a case's PTE (and counting the PTEs that map a folio) and
fault-around over a page's window (the page model's too).  PTE state lives in ``PT`` beside the
page flags: ``PT_RO`` (with ``F_PTE``: the zero page or a page-cache page mapped read-only)
and ``PT_COPY`` (the PTE maps a private copy of a file page; ``F_PTE`` is then clear, as the
page-cache page itself is no longer mapped), and ``PT_YOUNG`` (the accessed bit: every
kernel-model install sets it, as x86 installs young PTEs; docs/model.md 8.2).  In the page
model ``PT`` stays zero."""
from __future__ import annotations

import numpy as np

from ..._numba import njit_borrow, njit_verb
from .. import codes as C
from .pagecache import F_INFL, F_MSIO, F_PTE, F_RES, PT_YOUNG

PT_RO = np.uint8(C.PT_RO)
PT_TLB = np.uint8(C.PT_TLB)
PT_COPY = np.uint8(C.PT_COPY)


@njit_verb
def _allows(p, write, FL, PT):
    """A PTE lets this access through without a fault (a write needs a writable one)."""
    if (PT[p] & PT_COPY) != 0:
        return True
    if (FL[p] & F_PTE) == 0:
        return False
    return not (write and (PT[p] & PT_RO) != 0)


@njit_verb
def _kernel_case(p, write, backing, private, FL, PT, sp_ns, zero_fill_ns, copy_ns):
    """(handler extra, case) of a kernel-model fault on an anon or file VMA, from the access
    and the PTE's state at the grant (docs/model.md 11.2)."""
    present = (FL[p] & F_PTE) != 0 or (PT[p] & PT_COPY) != 0
    if backing == C.B_ANON:
        if private and not write:
            return 0, C.CASE_ZERO
        return sp_ns + zero_fill_ns, C.CASE_ANON
    if not write:
        return sp_ns, C.CASE_READ
    if private:
        if present:
            return sp_ns + copy_ns, C.CASE_COPY
        return 2 * sp_ns + copy_ns, C.CASE_COW
    if present:
        return 0, C.CASE_MKWRITE
    return sp_ns, C.CASE_SHARED


@njit_verb
def _install_case(p, case, FL, PT, cnt):
    """Install the PTE a fault of ``case`` leaves (CASE_NONE: the page model's PTE); never
    turns a writable PTE read-only.  Counts a new PTE in CNT_PTES.  A kernel-model PTE is
    installed young."""
    present = (FL[p] & F_PTE) != 0 or (PT[p] & PT_COPY) != 0
    if not present:
        cnt[C.CNT_PTES] += 1
    if case == C.CASE_READ or case == C.CASE_ZERO:
        if not present:
            FL[p] |= F_PTE
            PT[p] = PT_RO | PT_YOUNG
    elif case == C.CASE_COPY or case == C.CASE_COW:
        FL[p] &= np.uint8(255 - F_PTE)   # the PTE maps the copy, not the page-cache page
        PT[p] = PT_COPY
    elif case == C.CASE_NONE:
        FL[p] |= F_PTE
    else:
        FL[p] |= F_PTE
        PT[p] = (PT[p] & np.uint8(255 - PT_RO - PT_TLB)) | PT_YOUNG
    FL[p] |= F_MSIO


@njit_verb
def _install_page(p, s, case, FL, PT, MAPC, cnt):
    """``_install_case`` for page ``p`` whose page-cache entry is ``s``: when the entry is a
    folio of its own (``s != p``) it counts the PTEs that map it (a private copy maps it no
    more) and is marked mapped since its I/O."""
    was = (FL[p] & F_PTE) != 0
    _install_case(p, case, FL, PT, cnt)
    if s != p:
        now = (FL[p] & F_PTE) != 0
        if now and not was:
            MAPC[s] += 1
        elif was and not now:
            MAPC[s] -= 1
        if MAPC[s] > 0:
            FL[s] |= F_PTE
        else:
            FL[s] &= np.uint8(255 - F_PTE)
        FL[s] |= F_MSIO


@njit_verb
def _around_mappable(q, s, FL, PT, RAM):
    """Fault-around maps neighbour ``q`` (page-cache entry ``s``): no PTE, no private copy,
    its folio resident, not in flight, not marked for readahead (docs/model.md 11.3)."""
    return (FL[q] & F_PTE) == 0 and (PT[q] & PT_COPY) == 0 and \
        (FL[s] & (F_RES | F_INFL)) == F_RES and RAM[s] == 0


@njit_borrow
def _map_around(p, kernel_model, page_vma, page_vpn, page_rank, by_key, vma_p0, vma_p1,
                win_lo, win_hi, page_slot, FL, PT, MAPC, RAM):
    """Fault-around of page ``p`` (docs/model.md 8 and 11.3): map every page of its window
    ``[win_lo[p], win_hi[p])`` (the aligned ``F`` pages and its folio, clipped to the VMA and
    the file) whose PTE is none and whose page-cache entry is resident, not in flight and
    not carrying the readahead mark; read-only in the kernel model.  Returns how many."""
    n = 0
    v = page_vma[p]
    lo_vpn = win_lo[p]
    hi_vpn = win_hi[p]
    # neighbours are adjacent in key order (the VMA is a key range)
    for d in (-1, 1):
        j = page_rank[p] + d
        while vma_p0[v] <= j < vma_p1[v]:
            q = by_key[j]
            u = page_vpn[q]
            if u < lo_vpn or u >= hi_vpn:
                break
            s = page_slot[q]
            if _around_mappable(q, s, FL, PT, RAM):
                FL[q] |= F_PTE
                FL[q] |= F_MSIO
                if kernel_model:
                    PT[q] = PT_RO | PT_YOUNG   # (x86: a prefaulted PTE is young too)
                if s != q:
                    MAPC[s] += 1
                    FL[s] |= F_PTE
                    FL[s] |= F_MSIO
                n += 1
            j += d
    return n


@njit_borrow
def _unmap_pages(pages, dest, a, b, page_slot, FL, PT, MAPC, CHG, cnt):
    """A mapping ends (docs/model.md 11.9): remove the PTE of each page ``pages[a:b]`` (a
    page-cache page's folio is mapped one PTE less; a private copy's PTE goes with its page)
    and give back the frame each anonymous page or private copy held.  Page tables stay.
    A page with a destination (``dest[j] >= 0``: a move) hands its PTE, its read-only,
    private-copy and young bits and its frame to that page instead (the same page-cache page
    or folio: its map count stays).  Returns the frames given back."""
    freed = 0
    for j in range(a, b):
        p = pages[j]
        q = dest[j]
        mapped = (FL[p] & F_PTE) != 0
        if q >= 0:
            if mapped:
                FL[p] &= np.uint8(255 - F_PTE)
                FL[q] |= F_PTE | F_MSIO
            PT[q] = PT[p] & np.uint8(255 - PT_TLB)   # (mremap flushes the old range)
            PT[p] = 0
            CHG[q] = CHG[p]
            CHG[p] = 0
            continue
        if mapped:
            FL[p] &= np.uint8(255 - F_PTE)
            cnt[C.CNT_PTES] -= 1
            s = page_slot[p]
            if s != p:
                MAPC[s] -= 1
                if MAPC[s] == 0:
                    FL[s] &= np.uint8(255 - F_PTE)
        elif (PT[p] & PT_COPY) != 0:
            cnt[C.CNT_PTES] -= 1
        PT[p] = 0
        if CHG[p] != 0:
            CHG[p] = 0
            freed += 1
    return freed


@njit_borrow
def _around_skipped(p, F, page_vma, page_vpn, page_rank, by_key, vma_asid, vma_vpn0, vma_p0,
                    vma_p1, last_lo, page_slot, FL, PT, RAM):
    """Fault-around of page ``p`` maps nothing (docs/model.md 11.3): the file's last folio
    overlaps its aligned window, the first folio of that window fault-around could map is
    that one (``filemap_map_pages()`` then skips ``filemap_map_pmd()``, the only place that
    installs a missing page table), and the page table of ``p`` maps no page now."""
    if last_lo[p] < 0:
        return False
    v = page_vma[p]
    u = page_vpn[p]
    lo = max(u - u % F, vma_vpn0[v])
    last = last_lo[p]
    # the first folio fault-around finds: resident, not in flight, not marked (the PTEs
    # are not looked at yet)
    j = page_rank[p]
    while j - 1 >= vma_p0[v] and page_vpn[by_key[j - 1]] >= lo:
        j -= 1
    first_is_last = False
    while j < vma_p1[v]:
        q = by_key[j]
        s = page_slot[q]
        if (FL[s] & (F_RES | F_INFL)) == F_RES and RAM[s] == 0:
            first_is_last = page_vpn[q] >= last
            break
        if page_vpn[q] >= last:
            break   # (the last folio is not mappable: nothing is)
        j += 1
    if not first_is_last:
        return False
    # an empty page table: no page of this address space's 512-page range has a PTE
    asid = vma_asid[v]
    t0 = u - u % 512
    for d in (-1, 1):
        j = page_rank[p] + (0 if d > 0 else -1)
        while 0 <= j < by_key.shape[0]:
            q = by_key[j]
            w = page_vpn[q]
            if vma_asid[page_vma[q]] != asid or w < t0 or w >= t0 + 512:
                break
            if (FL[q] & F_PTE) != 0 or (PT[q] & PT_COPY) != 0:
                return False
            j += d
    return True


@njit_borrow
def _map_finish(p, fr_lo, fr_hi, page_vma, page_vpn, page_rank, by_key, vma_p0, vma_p1,
                page_slot, FL, PT, MAPC):
    """finish_fault() of a read fault on page ``p`` whose own PTE it is installing: the other
    pages of its folio ``[fr_lo[p], fr_hi[p])`` (the folio fits: docs/model.md 11.3) get
    read-only PTEs, when none of them has a PTE or a private copy (else ``p`` alone:
    ``pte_range_none()``).  Returns how many were mapped besides ``p``."""
    lo = fr_lo[p]
    hi = fr_hi[p]
    if hi - lo <= 1:
        return 0
    r = page_rank[p]
    for k in range(r - (page_vpn[p] - lo), r + (hi - page_vpn[p])):
        q = by_key[k]
        if q != p and ((FL[q] & F_PTE) != 0 or (PT[q] & PT_COPY) != 0):
            return 0
    n = 0
    for k in range(r - (page_vpn[p] - lo), r + (hi - page_vpn[p])):
        q = by_key[k]
        if q == p:
            continue
        s = page_slot[q]
        FL[q] |= F_PTE | F_MSIO
        PT[q] = PT_RO | PT_YOUNG
        if s != q:
            MAPC[s] += 1
            FL[s] |= F_PTE | F_MSIO
        n += 1
    return n
