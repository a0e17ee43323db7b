"""The large folios a file has in the page cache now (Linux, root).

Since Linux 6.x the page cache of many filesystems holds a file in *large folios* (2 to 512
pages, each aligned to its size in the file) whose sizes readahead chose; a fault maps a
whole folio at once, so the faults a program takes depend on that layout
(``vmlab.model.scenario.File.folios``).  :func:`folio_layout` measures it without putting
any page in the page cache:

1. map the file read-only and shared, ``MADV_RANDOM`` (a fault on a page marked for
   readahead then starts none) and ask ``mincore(2)`` which pages are resident;
2. fault in each resident page for reading, and no other (``MADV_POPULATE_READ`` on each
   run of them): a minor fault each (the page is in the cache: no I/O), and a PTE;
3. read the mapping's entries in ``/proc/self/pagemap`` (bit 63 present, bits 0-54 the
   frame number, zero unless ``CAP_SYS_ADMIN``) and each frame's ``/proc/kpageflags``
   (root only): a folio is a ``KPF_COMPOUND_HEAD`` page followed, at the next file pages,
   by ``KPF_COMPOUND_TAIL`` pages at the next frames.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os

import numpy as np

from .mappings import MAX_FOLIO_PAGES, _libc_fns, mapped_file, mapped_residency

PAGEMAP = "/proc/self/pagemap"
KPAGEFLAGS = "/proc/kpageflags"
KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL = 15, 16
PM_PRESENT = np.uint64(1 << 63)
PM_PFN_MASK = np.uint64((1 << 55) - 1)
MADV_RANDOM, MADV_POPULATE_READ = 1, 22
#: Frames this close together are read from ``/proc/kpageflags`` in one ``pread`` (8 bytes
#: each: reading a gap of 4 KiB costs less than another system call).
_KPF_GAP = 512


def folio_layout(path, resident=None):
    """The large folios (2 pages or more) of the file at ``path`` in the page cache now.

    Parameters
    ----------
    path : str or path-like
    resident : bool array, optional
        The file's residency just measured (:func:`vmlab.trace.mappings.residency`): only
        those pages are read, if ``mincore`` still finds them resident.

    Returns
    -------
    tuple of ``(first_page, n_pages)`` pairs in file pages, sorted (empty: no resident
    page is part of a large folio), or ``None`` when the layout cannot be measured: not
    root, no ``/proc/kpageflags``, ``/proc/self/pagemap`` shows no frame numbers, the file
    is empty or cannot be opened or mapped.
    """
    page = mmap.PAGESIZE
    try:
        kpf = os.open(KPAGEFLAGS, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with mapped_file(path) as (addr, size, n_pages):
            if not n_pages:
                return None
            res = mapped_residency(addr, size, n_pages, path)
            if resident is not None and len(resident) == n_pages:
                res &= np.asarray(resident, bool)
            pages = np.flatnonzero(res)
            if not len(pages):
                return ()
            _libc_fns().madvise(addr, size, MADV_RANDOM)
            if not _populate(addr, pages, page):
                return None
            entries = _pagemap(addr // page, n_pages)
            if entries is None:
                return None
            present = (entries & PM_PRESENT) != 0
            pfn = entries & PM_PFN_MASK
            if present.any() and not pfn[present].any():
                return None     # not CAP_SYS_ADMIN: the kernel hides the frame numbers
            # while mapped: the PTEs hold the folios, so no frame changes hands meanwhile
            flags = _kpageflags(kpf, pfn[present])
    except OSError:
        return None
    finally:
        os.close(kpf)
    if flags is None:
        return None
    all_flags = np.zeros(n_pages, np.uint64)
    all_flags[present] = flags
    return _folios(present, pfn, all_flags)


def _populate(addr, pages, page):
    """Fault in ``pages`` (sorted page numbers) of the mapping at ``addr`` for reading, one
    ``MADV_POPULATE_READ`` per run of consecutive pages: unlike a load, it reports a page
    gone past a shrunk end of file as an error instead of a ``SIGBUS``.  False when a
    run fails (the file changed meanwhile); a kernel without it (before 5.14) reads the
    pages' bytes instead."""
    lib = _libc_fns()
    cuts = np.flatnonzero(np.diff(pages) != 1) + 1
    for lo, hi in zip(pages[np.r_[0, cuts]].tolist(), pages[np.r_[cuts - 1, -1]].tolist()):
        if lib.madvise(addr + lo * page, (hi + 1 - lo) * page, MADV_POPULATE_READ) != 0:
            if ctypes.get_errno() == errno.EINVAL and lo == int(pages[0]):
                size = (int(pages[-1]) + 1) * page
                view = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(addr))
                int(view[pages * page].sum())
                return True
            return False
    return True


def _pagemap(first_vpn, n_pages):
    """The ``/proc/self/pagemap`` entries of ``n_pages`` virtual pages from ``first_vpn``
    (one ``pread``); ``None`` when it cannot be read."""
    try:
        fd = os.open(PAGEMAP, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.pread(fd, 8 * n_pages, 8 * first_vpn)
    finally:
        os.close(fd)
    if len(raw) != 8 * n_pages:
        return None
    return np.frombuffer(raw, "<u8").astype(np.uint64)


def _kpageflags(fd, pfns):
    """The ``/proc/kpageflags`` words of ``pfns``, in their order: one ``pread`` per run of
    frames less than :data:`_KPF_GAP` apart (a folio's frames are consecutive).  ``None``
    when a read comes back short."""
    out = np.zeros(len(pfns), np.uint64)
    if not len(pfns):
        return out
    order = np.argsort(pfns, kind="stable")
    s = pfns[order]
    cuts = np.flatnonzero(np.diff(s) > _KPF_GAP) + 1
    for lo_i, hi_i in zip(np.r_[0, cuts], np.r_[cuts, len(s)]):
        lo, hi = int(s[lo_i]), int(s[hi_i - 1]) + 1
        raw = os.pread(fd, 8 * (hi - lo), 8 * lo)
        if len(raw) != 8 * (hi - lo):
            return None
        words = np.frombuffer(raw, "<u8")
        out[order[lo_i:hi_i]] = words[(s[lo_i:hi_i] - np.uint64(lo)).astype(np.intp)]
    return out


def _folios(present, pfn, flags):
    """``(first_page, n_pages)`` of each head page and the tail pages after it at the next
    frames; a run whose size is no power of two, or is not aligned to it, is left out."""
    head = present & ((flags >> np.uint64(KPF_COMPOUND_HEAD)) & np.uint64(1) != 0)
    tail = present & ~head & ((flags >> np.uint64(KPF_COMPOUND_TAIL)) & np.uint64(1) != 0)
    # page j continues the run of page j - 1: a tail at the frame after j - 1's
    link = np.zeros(len(present), bool)
    link[1:] = tail[1:] & present[:-1] & (pfn[1:] == pfn[:-1] + np.uint64(1))
    starts = np.flatnonzero(~link)
    lengths = np.diff(np.r_[starts, len(present)])
    keep = head[starts] & (lengths >= 2)
    out = []
    for first, n in zip(starts[keep].tolist(), lengths[keep].tolist()):
        # a folio cut short (a tail page not mapped, one past the end of the file) or a
        # torn read: not a folio size, or not aligned to it
        if n & (n - 1) or first % n or n > MAX_FOLIO_PAGES:
            continue
        out.append((first, n))
    return tuple(out)
