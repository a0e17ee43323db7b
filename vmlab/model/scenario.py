"""A scenario: a trace, its VMAs (backing and policy), the page cache, costs, signals, the
adversary, the horizon and the seed.  Validation happens here, before any kernel runs, with
messages that say what to change.

Limits (the engine keeps times and counts in int64): every time in ns (horizon, bin width,
signal and adversary periods, start times and explicit times) and every count (page-cache
frames, fault-around window, page ranges) is below ``2**62``; address-space ids are below
:data:`MAX_ASIDS` (4096); addresses are in ``[0, 2**64)``; seeds in ``[0, 2**64)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from ..errors import ScenarioError
from ..trace.model import MAX_ASIDS as TRACE_MAX_ASIDS
from ..trace.model import Trace
from ._checks import (LIMIT, LIMIT_TEXT, as_whole, checked_keywords, did_you_mean, first_outside,
                      is_bool, is_finite_number, is_number, unknown_names, whole_values)
from .costs import Costs, Exponential, cost_names
from .policies import BACKINGS, can_serve, get_policy

REPLACEMENTS = ("lru", "fifo", "clock", "twolist")  # one row each: docs/extending.md
SCHEDULE_KINDS = ("poisson", "periodic", "times")
#: Fault models (docs/model.md section 11): "page", one fault per first access to a page (every
#: trace without mappings); "kernel", read/write faults, the zero page, COW, like Linux 6.x.
FAULT_MODELS = ("page", "kernel")
#: madvise() hints a VMA may carry (docs/model.md section 11.5: readahead).
MADVISE = ("normal", "random", "sequential")
#: Largest folio: a PMD's worth of 4 KiB pages (the kernel's MAX_PAGECACHE_ORDER on x86-64),
#: so a folio never crosses a page table (docs/model.md section 11.3).
MAX_FOLIO_PAGES = 512
#: The largest readahead window, in pages (4 GiB of 4 KiB pages).  The kernel takes any
#: ``read_ahead_kb`` but reads no further than the file's end; the engine keeps room for two
#: windows of evictions per step, so a window is bounded here, not by the memory it would take.
MAX_RA_PAGES = 1 << 20

#: The knobs a recorded trace replays with (docs/model.md section 11, "Defaults"): the
#: kernel's fault granularity, fault_around_bytes 64 KiB, ra_pages 32 (128 KiB), the
#: active/inactive lists (without their protection of the working set, ``workingset``:
#: measured against notebook 08's sweeps it does not help yet, docs/model.md 8.1 "Status").
#: ``Scenario(trace, vmas=..., **KERNEL_DEFAULTS)``.
KERNEL_DEFAULTS = {"fault_model": "kernel", "fault_around_pages": 16, "ra_pages": 32,
                   "replacement": "twolist", "reclaim_batch": 32, "lru_add_batch": 31,
                   "tlb_young": True, "reclaim_ages_active": True,
                   "reclaim_priorities": True}
#: The largest ``reclaim_batch`` (frames; a reclaim frees at most what the cache holds anyway).
MAX_RECLAIM_BATCH = 1 << 20
#: The largest ``lru_add_batch`` (folios; the kernel's PAGEVEC_SIZE is 15 before 6.x's 31).
MAX_LRU_ADD_BATCH = 4096
#: Longest horizon: simulated times stay below 2**62 ns (the engine's 'no step' mark).
MAX_HORIZON_NS = LIMIT
#: Address-space ids are below this (the engine's key has 12 asid bits; a trace's limit,
#: vmlab.trace.model.MAX_ASIDS).
MAX_ASIDS = TRACE_MAX_ASIDS
#: Thread ids are below this (the trace's ``tid`` column is uint32).
MAX_TID = 1 << 32
#: Highest Poisson rate: one event per ns on average (a faster rate draws gaps of 0 ns).
MAX_RATE_HZ = 1e9
#: Lowest Poisson rate (about one event per 12 years): the largest gap of its table,
#: ``ln(2 * 65536)`` = 11.8 means, stays below 2**62 ns.
MIN_RATE_HZ = 2.6e-9
#: Default horizon: one simulated hour.  Every run has one (livelocks must end).
DEFAULT_HORIZON_NS = 3_600 * 10**9


@checked_keywords()
@dataclass(frozen=True)
class Vma:
    """An address range ``[start, end)`` of one address space with a backing.

    ``policy`` overrides the scenario's policy for this VMA (``None``: use the run's policy).
    ``map_thread`` is the thread id that maps an eager VMA (default: the first thread that
    touches it).

    The kernel fault model (docs/model.md section 11) also reads: ``prot`` (letters of
    ``"rwx"``, in any order; ``""`` is ``PROT_NONE``), ``private`` (``MAP_PRIVATE``; False:
    ``MAP_SHARED``), ``file`` and ``offset`` (a file VMA's file identity and the byte offset of
    ``start`` in it: VMAs naming one file share its page-cache pages; ``None``: a file of its
    own), ``madvise`` (``"normal"``, ``"random"``, ``"sequential"``: readahead).

    ``anon_vma``: the VMA has its ``anon_vma`` when the run starts (a mapping merged into a
    neighbour that had one, or one written before the trace began); without it, under the
    policy knob ``anon_vma_fallback``, the first VMA-locked or speculative fault that needs
    one falls back to ``mmap_lock`` (docs/model.md 15.8).
    """

    start: int
    end: int
    backing: str = "file"
    policy: object = None
    asid: int = 0
    name: str = ""
    map_thread: object = None
    prot: str = "rw"
    private: bool = True
    file: object = None
    offset: int = 0
    madvise: str = "normal"
    anon_vma: bool = False

    def __post_init__(self):
        for name in ("start", "end"):
            v = getattr(self, name)
            w = as_whole(v)
            if w is None:
                shown = self.name or f"[{self.start!r}, {self.end!r})"
                raise ScenarioError(f"VMA {shown}: {name} must be an integer address, got {v!r}")
            object.__setattr__(self, name, w)
        if self.backing not in BACKINGS:
            raise ScenarioError(
                f"VMA {self.label}: unknown backing {self.backing!r}; backings are {', '.join(BACKINGS)}")
        if not 0 <= self.start < self.end:
            raise ScenarioError(f"VMA {self.label}: needs 0 <= start < end, got "
                                f"[{self.start:#x}, {self.end:#x})")
        if self.end > 2**64:
            raise ScenarioError(f"VMA {self.label}: needs 0 <= start < end <= 2**64 (the top of an "
                                f"address space), got end {self.end:#x}")
        asid = as_whole(self.asid)
        if asid is None or not 0 <= asid < MAX_ASIDS:
            raise ScenarioError(f"VMA {self.label}: asid must be an address-space id in "
                                f"[0, {MAX_ASIDS}), got {self.asid!r}")
        object.__setattr__(self, "asid", asid)
        if self.map_thread is not None:
            t = as_whole(self.map_thread)
            if t is None or not 0 <= t < MAX_TID:
                raise ScenarioError(f"VMA {self.label}: map_thread must be a thread id (an "
                                    f"integer in [0, 2**32)) or None, got {self.map_thread!r}")
            object.__setattr__(self, "map_thread", t)
        if self.policy is not None:
            object.__setattr__(self, "policy", get_policy(self.policy))
        self._check_mapping()

    def _check_mapping(self):
        """The fields of the kernel fault model: prot, private, file, offset, madvise."""
        prot = self.prot
        letters = prot.replace("-", "") if isinstance(prot, str) else None
        if letters is None or set(letters) - set("rwx") or len(set(letters)) != len(letters):
            raise ScenarioError(f"VMA {self.label}: prot must be letters of 'rwx' (like 'r-x' "
                                f"or 'rw'; '' is PROT_NONE), got {prot!r}")
        object.__setattr__(self, "prot", "".join(c for c in "rwx" if c in letters))
        if not is_bool(self.private):
            raise ScenarioError(f"VMA {self.label}: private must be True (MAP_PRIVATE) or False "
                                f"(MAP_SHARED), got {self.private!r}")
        object.__setattr__(self, "private", bool(self.private))
        if not is_bool(self.anon_vma):
            raise ScenarioError(f"VMA {self.label}: anon_vma must be True (it has one at the "
                                f"start) or False, got {self.anon_vma!r}")
        object.__setattr__(self, "anon_vma", bool(self.anon_vma))
        if self.file is not None:
            if not isinstance(self.file, str) or not self.file:
                raise ScenarioError(f"VMA {self.label}: file must be a file's identity (a "
                                    f"non-empty string, such as its path) or None, got {self.file!r}")
            if self.backing != "file":
                raise ScenarioError(f"VMA {self.label}: file={self.file!r} needs backing 'file', "
                                    f"not {self.backing!r}")
        off = as_whole(self.offset)
        if off is None or not 0 <= off < LIMIT:
            raise ScenarioError(f"VMA {self.label}: offset must be a byte offset in the file (an "
                                f"integer in [0, {LIMIT_TEXT})), got {self.offset!r}")
        if off and self.backing != "file":
            raise ScenarioError(f"VMA {self.label}: offset={off} needs backing 'file', not "
                                f"{self.backing!r}")
        object.__setattr__(self, "offset", off)
        if self.madvise not in MADVISE:
            raise ScenarioError(f"VMA {self.label}: unknown madvise {self.madvise!r}; choose one "
                                f"of {', '.join(MADVISE)}")

    @property
    def label(self):
        return self.name or f"[{self.start:#x}, {self.end:#x})"


def _check_folio_pages(what, v):
    """A folio size: a power of two in [1, MAX_FOLIO_PAGES], as a Python int."""
    w = as_whole(v)
    if w is None or not 1 <= w <= MAX_FOLIO_PAGES or w & (w - 1):
        raise ScenarioError(f"{what}: folio_pages must be a power of two in [1, {MAX_FOLIO_PAGES}] "
                            f"(pages per page-cache folio), got {v!r}")
    return w


def _check_folios(name, folios):
    """``File.folios`` as a sorted tuple of ``(first_page, n_pages)`` int pairs; refuses a
    pair that is not one, a size that is no folio size, a misaligned start, an overlap."""
    what = f"File {name!r}: folios"
    try:
        pairs = [tuple(x) for x in folios]
    except TypeError:
        raise ScenarioError(f"{what} must be (first_page, n_pages) pairs, got {folios!r}") from None
    out = []
    for i, pr in enumerate(pairs):
        ws = [as_whole(x) for x in pr]
        if len(ws) != 2 or None in ws:
            raise ScenarioError(f"{what}[{i}] must be a pair of whole numbers (first_page, "
                                f"n_pages), got {pr!r}")
        first, n = ws
        if not 1 <= n <= MAX_FOLIO_PAGES or n & (n - 1):
            raise ScenarioError(f"{what}[{i}]: n_pages must be a power of two in "
                                f"[1, {MAX_FOLIO_PAGES}], got {n}")
        if not 0 <= first < LIMIT or first % n:
            raise ScenarioError(f"{what}[{i}]: first_page must be a multiple of n_pages={n} in "
                                f"[0, {LIMIT_TEXT}) (a folio is aligned to its size), got {first}")
        out.append((first, n))
    out.sort()
    for a, b in zip(out, out[1:]):
        if a[0] + a[1] > b[0]:
            raise ScenarioError(f"{what}: the folio of {a[1]} pages at page {a[0]} overlaps the "
                                f"one of {b[1]} pages at page {b[0]}")
    return tuple(out)


@checked_keywords()
@dataclass(frozen=True)
class File:
    """A file that VMAs map (``Vma(file=name)``): its size, which clips fault-around and
    readahead, and the size of its page-cache folios (docs/model.md sections 11.3-11.5).

    ``size_bytes``: ``None`` means as long as the furthest VMA that maps it.
    ``folio_pages``: ``None`` means the scenario's ``folio_pages``.
    ``folios``: folios of their own size, as ``(first_page, n_pages)`` pairs in file pages
    (``n_pages`` a power of two up to 512, ``first_page`` a multiple of it): the layout a
    real page cache holds, which its readahead built with folios of several sizes (a
    recording measures it, docs/recording.md).  The other pages take folios of
    ``folio_pages`` where that aligned block holds no listed folio, else one page each
    (docs/model.md 11.4).
    """

    name: str
    size_bytes: int | None = None
    folio_pages: int | None = None
    folios: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError(f"File: name must be a non-empty string (the identity VMAs give as "
                                f"file=...), got {self.name!r}")
        if self.size_bytes is not None:
            n = as_whole(self.size_bytes)
            if n is None or not 0 <= n < LIMIT:
                raise ScenarioError(f"File {self.name!r}: size_bytes must be an integer in "
                                    f"[0, {LIMIT_TEXT}) or None, got {self.size_bytes!r}")
            object.__setattr__(self, "size_bytes", n)
        if self.folio_pages is not None:
            object.__setattr__(self, "folio_pages",
                               _check_folio_pages(f"File {self.name!r}", self.folio_pages))
        object.__setattr__(self, "folios", _check_folios(self.name, self.folios))


@checked_keywords()
@dataclass(frozen=True)
class FileRead:
    """A ``read()``-family call (or exec's read of a binary) at a point of the access stream
    (docs/model.md 11.7): when the thread of record ``record`` starts that record, before
    its gap, the folios of file pages ``[start, end)`` of ``file`` that are not in the page
    cache enter it (charged, evicting under the limit as a readahead does: a folio that
    finds no frame ends the window), then the folios of ``[copy_start, copy_end)``, the
    pages the call copies, are read too if missing (charged as a fault's folio is: no
    frame is an OOM) and marked accessed (``folio_mark_accessed``), except the first when
    it holds file page ``prev`` (the end of the previous read of this open file: the kernel
    marks a folio once per run of reads inside it; -1 for none).  Either range may be
    empty (a call that opened two windows is two FileReads, the second with its copy).  ``file`` names a
    :class:`File` of the scenario (with ``size_bytes``); no VMA needs to map it.

    With ``stream`` (0 or more) the call's windows are not given (``start == end``): the
    kernel's ``read()`` readahead decides them when the call runs, from the page cache as
    the run finds it and the state of the call's stream (one ``struct file_ra_state`` per
    file and stream; docs/model.md 11.7.1).  ``pos_end`` is then the page of the byte just
    past the call (``ra->prev_pos``; -1: ``copy_end``)."""

    record: int
    file: str
    start: int
    end: int
    copy_start: int
    copy_end: int
    prev: int = -1
    stream: int = -1
    pos_end: int = -1

    def __post_init__(self):
        for name in ("record", "start", "end", "copy_start", "copy_end", "prev", "stream",
                     "pos_end"):
            v = getattr(self, name)
            w = as_whole(v)
            if w is None:
                raise ScenarioError(f"FileRead: {name} must be an integer, got {v!r}")
            object.__setattr__(self, name, w)
        if not isinstance(self.file, str):
            raise ScenarioError(f"FileRead at record {self.record}: file must be a File's name, "
                                f"got {self.file!r}")
        if not (0 <= self.start <= self.end and 0 <= self.copy_start <= self.copy_end):
            raise ScenarioError(f"FileRead at record {self.record}: needs 0 <= start <= end and "
                                f"0 <= copy_start <= copy_end (file pages), got [{self.start}, "
                                f"{self.end}) and [{self.copy_start}, {self.copy_end})")
        if self.prev < -1:
            raise ScenarioError(f"FileRead at record {self.record}: prev must be a file page or "
                                f"-1, got {self.prev}")
        if self.stream < -1 or self.pos_end < -1:
            raise ScenarioError(f"FileRead at record {self.record}: stream and pos_end must be "
                                f"-1 or more, got {self.stream} and {self.pos_end}")
        if self.stream >= 0 and self.start != self.end:
            raise ScenarioError(f"FileRead at record {self.record}: a read of stream "
                                f"{self.stream} has its windows decided at run time; give "
                                f"start == end, got [{self.start}, {self.end})")


@checked_keywords()
@dataclass(frozen=True)
class Unmap:
    """A mapping that ends (``munmap``, a ``brk`` shrink) or moves (``mremap``) at a point of
    the access stream (docs/model.md 11.9): when the thread of record ``record`` starts that
    record, before its gap, the PTEs of ``[start, end)`` in address space ``asid`` are
    removed and the anonymous frames and private copies they held are given back to
    ``memory_bytes``.

    With ``to`` (an address), the mapping moves instead, as ``mremap`` moves it
    (``move_page_tables``): the PTEs of ``[to, to + end - start)`` are removed first, then
    each page of ``[start, end)`` hands its PTE (read-only, private copy, young bit) and its
    frame to the page at the same offset from ``to``; nothing is given back.  Addresses are
    page-aligned (checked against the trace's page size)."""

    record: int
    start: int
    end: int
    asid: int = 0
    to: int | None = None

    def __post_init__(self):
        for name in ("record", "start", "end", "asid") + (("to",) if self.to is not None else ()):
            v = getattr(self, name)
            w = as_whole(v)
            if w is None:
                raise ScenarioError(f"Unmap: {name} must be an integer, got {v!r}")
            object.__setattr__(self, name, w)
        if not 0 <= self.start < self.end <= 2**64:
            raise ScenarioError(f"Unmap at record {self.record}: needs 0 <= start < end <= "
                                f"2**64, got [{self.start:#x}, {self.end:#x})")
        if not 0 <= self.asid < MAX_ASIDS:
            raise ScenarioError(f"Unmap at record {self.record}: asid must be in "
                                f"[0, {MAX_ASIDS}), got {self.asid}")
        if self.to is not None:
            dest_end = self.to + self.end - self.start
            if not (0 <= self.to and dest_end <= 2**64):
                raise ScenarioError(f"Unmap at record {self.record}: the move's destination "
                                    f"[{self.to:#x}, {dest_end:#x}) must lie in [0, 2**64)")
            if self.to < self.end and self.start < dest_end:
                raise ScenarioError(f"Unmap at record {self.record}: the move's destination "
                                    f"[{self.to:#x}, {dest_end:#x}) overlaps its source "
                                    f"[{self.start:#x}, {self.end:#x}) (mremap refuses that)")


def unmap_problem(u, vmas, vma_pols=None):
    """Why the run's VMAs cannot take :class:`Unmap` ``u`` (docs/model.md 11.9), or "".

    A range may not meet a VMA mapped eagerly or one backed by ``device``, ``iomem`` or
    ``context`` memory (only lazily faulted file and anonymous pages are unmapped).  A move
    (``u.to``) must keep every page the same page: the destination of each part of the
    source that a VMA covers lies in one VMA of the same backing and sharing and, for a file,
    of the same (named) file at the same file offset; a part of either range in no VMA has
    nothing to move.
    ``vma_pols``: each VMA's policy (None: none is eager)."""
    pols = vma_pols if vma_pols is not None else [None] * len(vmas)
    ranges = [(u.start, u.end)] + ([] if u.to is None else [(u.to, u.to + u.end - u.start)])
    for lo, hi in ranges:
        for v, p in zip(vmas, pols):
            if v.asid != u.asid or v.end <= lo or hi <= v.start:
                continue
            if (p is not None and p.eager) or v.backing not in ("file", "anon"):
                why = "is mapped eagerly" if p is not None and p.eager else \
                    f"is backed by {v.backing}"
                return (f"meets VMA {v.label}, which {why}: only lazily faulted file and anon "
                        "pages can be unmapped or moved")
    if u.to is None:
        return ""
    d = u.to - u.start
    for v in vmas:
        if v.asid != u.asid or v.end <= u.start or u.end <= v.start:
            continue
        lo, hi = max(v.start, u.start) + d, min(v.end, u.end) + d
        dest = [w for w in vmas if w.asid == u.asid and w.start < hi and lo < w.end]
        w = dest[0] if len(dest) == 1 and dest[0].start <= lo and hi <= dest[0].end else None
        same = (w is not None and w.backing == v.backing and w.private == v.private
                and (v.backing == "anon" or (v.file is not None and w.file == v.file
                                             and w.offset - w.start + d == v.offset - v.start)))
        if not same:
            return (f"moves the pages of VMA {v.label} to [{lo:#x}, {hi:#x}), which "
                    + ("no one VMA covers" if w is None else f"VMA {w.label} maps as other memory")
                    + ": a moved page must stay the same page (same backing, file and offset)")
    return ""


@checked_keywords()
@dataclass(frozen=True)
class SignalSchedule:
    """Signals sent to threads: Poisson (``rate_hz``), periodic (``period_ns``) or at explicit
    ``times_ns``, from ``start_ns``; ``fatal`` signals end the thread.

    ``threads``: thread ids it applies to (``None``: every thread that has access records).
    """

    kind: str = "poisson"
    rate_hz: float = 0.0
    period_ns: int = 0
    times_ns: tuple = ()
    start_ns: int = 0
    fatal: bool = False
    threads: tuple | None = None

    def __post_init__(self):
        _check_schedule(self, "signal schedule")
        if not is_bool(self.fatal):
            raise ScenarioError(f"signal schedule: fatal must be True or False, got {self.fatal!r}")
        object.__setattr__(self, "fatal", bool(self.fatal))
        if self.threads is not None:
            ids, bad = whole_values(self.threads)
            if bad is None:
                bad = first_outside(ids, 0, MAX_TID)
            if bad is not None:
                raise ScenarioError(f"signal schedule: threads must be thread ids (integers in "
                                    f"[0, 2**32)) or None, got {bad[1]!r}")
            object.__setattr__(self, "threads", tuple(int(t) for t in ids))


@checked_keywords()
@dataclass(frozen=True)
class Adversary:
    """A process calling ``fadvise(FADV_DONTNEED)`` on a page range of a file VMA.

    ``vma``: index in the scenario's VMA list or VMA name (default: the first file VMA).
    ``first_page``/``n_pages``: the range within the VMA, in pages (default: all of it).
    """

    kind: str = "periodic"
    rate_hz: float = 0.0
    period_ns: int = 0
    times_ns: tuple = ()
    start_ns: int = 0
    vma: object = None
    first_page: int = 0
    n_pages: int | None = None

    def __post_init__(self):
        _check_schedule(self, "adversary")
        v = self.vma
        if v is not None and not isinstance(v, str):
            w = as_whole(v)
            if w is None:
                raise ScenarioError(f"adversary: vma must be a VMA index, a VMA name or None, "
                                    f"got {v!r}")
            object.__setattr__(self, "vma", w)
        first = as_whole(self.first_page)
        if first is None or not 0 <= first < LIMIT:
            raise ScenarioError(f"adversary: first_page must be an integer >= 0 (pages from the "
                                f"VMA's start), got {self.first_page!r}")
        object.__setattr__(self, "first_page", first)
        if self.n_pages is not None:
            n = as_whole(self.n_pages)
            if n is None or not 1 <= n < LIMIT:
                raise ScenarioError(f"adversary: n_pages must be a positive integer or None (to "
                                    f"the VMA's end), got {self.n_pages!r}")
            object.__setattr__(self, "n_pages", n)


def _check_ns(what, name, v):
    """A time field of a schedule: an integer number of ns in [0, 2**62), as a Python int."""
    w = as_whole(v)
    if w is None:
        raise ScenarioError(f"{what}: {name} must be a whole number of ns, got {v!r}")
    if w < 0:
        raise ScenarioError(f"{what}: {name} must be >= 0, got {v!r}")
    if w >= LIMIT:
        raise ScenarioError(f"{what}: {name} must be below {LIMIT_TEXT} ns (146 years), got {v!r}")
    return w


def _check_schedule(sched, what):
    """Check a SignalSchedule's or an Adversary's schedule fields and store them normalized
    (integer ns, ``times_ns`` a tuple of ints)."""
    kind = sched.kind
    if kind not in SCHEDULE_KINDS:
        raise ScenarioError(f"{what}: unknown kind {kind!r}; kinds are {', '.join(SCHEDULE_KINDS)}")
    rate = sched.rate_hz
    if kind == "poisson":
        if not is_number(rate) or not rate > 0:
            raise ScenarioError(f"{what}: a poisson schedule needs rate_hz > 0, got {rate!r}")
        if not rate <= MAX_RATE_HZ:
            raise ScenarioError(f"{what}: rate_hz must be at most 1e9 (one per ns on average), "
                                f"got {rate!r}")
        if rate < MIN_RATE_HZ:
            raise ScenarioError(f"{what}: rate_hz={rate!r} is too low: its gaps would reach "
                                f"{LIMIT_TEXT} ns; use rate_hz >= {MIN_RATE_HZ}")
    elif not is_finite_number(rate) or rate < 0:
        raise ScenarioError(f"{what}: rate_hz must be a finite number >= 0, got {rate!r}")
    period = as_whole(sched.period_ns)
    if period is None:
        raise ScenarioError(f"{what}: period_ns must be a whole number of ns, got {sched.period_ns!r}")
    if kind == "periodic" and not period > 0:
        hint = (f" (rate_hz={rate!r} is the mean rate of kind='poisson')"
                if is_finite_number(rate) and rate > 0 else "")
        raise ScenarioError(f"{what}: a periodic schedule needs period_ns > 0, got "
                            f"{sched.period_ns!r}{hint}")
    object.__setattr__(sched, "period_ns", _check_ns(what, "period_ns", period))
    times, bad = whole_values(sched.times_ns)
    if bad is not None:
        raise ScenarioError(f"{what}: times_ns must be whole numbers of ns, got {bad[1]!r}"
                            + (f" at position {bad[0]}" if bad[0] is not None else ""))
    times = [int(t) for t in times]
    if times and (min(times) < 0 or any(b < a for a, b in zip(times, times[1:]))):
        raise ScenarioError(f"{what}: times_ns must be non-negative and sorted")
    if times and times[-1] >= LIMIT:
        raise ScenarioError(f"{what}: times_ns must be below {LIMIT_TEXT} ns (146 years), got "
                            f"{times[-1]}")
    object.__setattr__(sched, "times_ns", tuple(times))
    object.__setattr__(sched, "start_ns", _check_ns(what, "start_ns", sched.start_ns))


def poisson_signals(rate_hz, fatal=False, threads=None, start_ns=0):
    """Signals at ``rate_hz`` per thread as a Poisson process."""
    return SignalSchedule("poisson", rate_hz=rate_hz, fatal=fatal, threads=threads, start_ns=start_ns)


def periodic_signals(period_ns, fatal=False, threads=None, start_ns=0):
    """One signal every ``period_ns`` per thread."""
    return SignalSchedule("periodic", period_ns=period_ns, fatal=fatal, threads=threads,
                          start_ns=start_ns)


def _unknown_fields(unknown):
    return unknown_names("scenario field", unknown, "fields", scenario_fields())


def _as_tuple(field, value, cls, form):
    """A field that holds ``cls`` objects as a tuple: one object, a list or tuple of them, or
    None (none); anything else is refused naming the field."""
    if isinstance(value, cls):
        return (value,)
    if value is None:
        return ()
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ScenarioError(f"{field} must be {form}, got {value!r}")
    return tuple(value)


@checked_keywords(_unknown_fields)
@dataclass(frozen=True)
class Scenario:
    """Everything a run needs but the policy.

    Parameters
    ----------
    trace : Trace
    vmas : list of Vma, optional
        Default: one VMA per address cluster the trace touches (:func:`vmlab.trace.vmas.infer_vmas`),
        each with ``backing``.
    backing : str
        Backing of inferred VMAs.
    policy : str or Policy
        Default policy of the run (``simulate(scenario, policy)`` replaces it); VMAs may
        override it.
    memory_pages : int, optional
        Page-cache frames for file pages (``None``: unlimited).
    replacement : {"lru", "fifo", "clock", "twolist"}
    fault_around_pages : int
        1 = off (2006 kernels); 16 since Linux 3.15.
    costs : Costs
    signals : list of SignalSchedule
    adversary : Adversary, optional
    preload : array of addresses, optional
        File pages resident (unmapped) at time 0, in this order (kept as a read-only uint64
        copy).
    horizon_ns : int
        The run stops there; unfinished work is reported, never dropped.
    seed : int
    records : bool
        Keep per-fault, per-signal and per-lock records (switch off for 10^9-record traces:
        summaries and histograms are still exact counts; percentiles then come from a
        log-bucket histogram, within 1.6%).
    bin_ns : int
        Width of the time-series bins.
    fault_model : {"page", "kernel"}
        "page": one fault per first access to a page (the default, and every trace without
        mappings); "kernel": read and write faults, the zero page, COW, fault-around before
        the lookup (docs/model.md section 11).  :data:`KERNEL_DEFAULTS` are the knobs of a
        recorded trace.
    ra_pages : int
        Readahead window in pages on a major fault (0: off; the kernel's default is 32).
    folio_pages : int
        Pages per page-cache folio (a power of two; files may override it in ``files``).
    memory_bytes : int, optional
        A cgroup-style limit charged by page-cache and anonymous pages (no swap: a limit below
        the anonymous working set ends the run with an OOM); replaces ``memory_pages``.
    files : list of File
        Sizes and folio sizes of the files the VMAs name.
    workingset : bool
        twolist only: the kernel's protection of the working set (docs/model.md 8.1): a
        refault of a folio evicted recently (its refault distance at most the active list's
        pages) joins the active list, and a referenced folio of an executable file mapping is
        activated where reclaim finds it.  The other replacements have no active list and
        ignore it.
    unmaps : list of Unmap
        Mappings that end during the run (docs/model.md 11.9): their PTEs go, their
        anonymous frames are given back; a later access faults afresh.
    reads : list of FileRead
        ``read()``-family calls during the run (docs/model.md 11.7): the page-cache folios
        they bring in, charged at their record, and the folios they mark accessed.
    reclaim_batch : int
        Under ``memory_bytes``: the frames a reclaim frees at least once it starts, while
        victims last (docs/model.md 12; the kernel's memcg reclaim asks for
        ``SWAP_CLUSTER_MAX`` = 32 pages, ``KERNEL_DEFAULTS``); 1: one victim at a time.
    lru_add_batch : int
        Under ``memory_bytes`` with ``twolist`` in the kernel fault model: the folios each
        thread's LRU-add batch holds (the kernel's per-CPU ``folio_batch``, 31 on 6.18,
        ``KERNEL_DEFAULTS``; docs/model.md 12.1).  A folio the run adds waits there, out of
        reclaim's reach, until the batch fills or drains; 0: no batches (every folio is on
        its list at once).  Ignored elsewhere.
    tlb_young : bool
        With ``twolist`` in the kernel fault model: an access sets its PTE's young bit only
        when the translation is not in the TLB (x86's page walker; docs/model.md 8.3): the
        access that ends a fault loads it, and it stays until the PTE changes or goes
        (reclaim clears young bits without a flush).  ``KERNEL_DEFAULTS``: True.
    reclaim_ages_active : bool
        With ``twolist`` in the kernel fault model: a reclaim that starts (a charge whose
        frames do not fit) first ages the whole active list once (docs/model.md 8.3).
        ``KERNEL_DEFAULTS``: True.  Not used where ``reclaim_priorities`` applies.
    reclaim_priorities : bool
        Under ``memory_bytes`` with ``twolist`` in the kernel fault model: a charge whose
        frames do not fit runs the kernel's reclaim calls (docs/model.md 8.4:
        ``try_charge_memcg``'s retries of ``do_try_to_free_pages``, priorities 12 to 0, each
        scanning ``size >> priority`` of the inactive and the active list in chunks of
        ``reclaim_batch``) instead of taking one victim at a time; a charge fails (an OOM,
        or the end of a readahead window) as the kernel's does.  ``KERNEL_DEFAULTS``: True.
    rwsem_wake_all_readers : bool
        ``mmap_lock``'s wake rule since Linux 5.3 (docs/model.md section 4): a release that
        finds a reader first in the queue grants every reader in it, up to 256, past the
        writers waiting between them (``rwsem_mark_wake()``); False (the default): only the
        consecutive readers at the head, as the kernel before 5.3 and section 4.
    rwsem_steal : bool
        ``mmap_lock``'s hand-over rule of Linux 5.x-6.x (docs/model.md section 4): a writer
        first in the queue is woken when the lock is free and takes it itself when it runs
        (after its ``lock_wakeup_ns``); meanwhile a request that finds the lock free takes it
        past the queue ("optimistic lock stealing"), until the writer has waited 4 ms
        (``RWSEM_WAIT_TIMEOUT``) and the lock is handed to it.  False (the default): the
        queue's head is granted at the release (section 4's FIFO).
    sample_rate : float, optional
        Spatially sampled replay (:mod:`vmlab.sampling`): keep every access to the pages whose
        hash falls below ``sample_rate`` (in (0, 1]), shrink the page cache by the same factor
        and scale the counts back.  ``None`` (or 1): exact replay.
    """

    trace: Trace
    vmas: tuple | None = None
    backing: str = "file"
    policy: object = "nopage"
    memory_pages: int | None = None
    replacement: str = "lru"
    fault_around_pages: int = 1
    costs: Costs = field(default_factory=Costs)
    signals: tuple = ()
    adversary: Adversary | None = None
    preload: object = None
    horizon_ns: int = DEFAULT_HORIZON_NS
    seed: int = 0
    records: bool = True
    bin_ns: int = 1_000_000
    fault_model: str = "page"
    ra_pages: int = 0
    folio_pages: int = 1
    memory_bytes: int | None = None
    files: tuple = ()
    sample_rate: float | None = None
    workingset: bool = False
    unmaps: tuple = ()
    reads: tuple = ()
    reclaim_batch: int = 1
    lru_add_batch: int = 0
    tlb_young: bool = False
    reclaim_ages_active: bool = False
    reclaim_priorities: bool = False
    rwsem_wake_all_readers: bool = False
    rwsem_steal: bool = False

    def __post_init__(self):
        if not isinstance(self.trace, Trace):
            raise ScenarioError(f"trace must be a vmlab Trace, got {type(self.trace).__name__}")
        if self.vmas is not None:
            if isinstance(self.vmas, Vma):
                vmas = (self.vmas,)  # (one VMA: a list of one, as for files)
            else:
                try:
                    vmas = tuple(self.vmas)
                except TypeError:
                    raise ScenarioError(f"vmas must be a list of Vma objects, got "
                                        f"{type(self.vmas).__name__}") from None
            for v in vmas:
                if not isinstance(v, Vma):
                    raise ScenarioError(f"vmas must be Vma objects, got {v!r}")
            object.__setattr__(self, "vmas", vmas)
        if self.backing not in BACKINGS:
            raise ScenarioError(f"unknown backing {self.backing!r}; backings are {', '.join(BACKINGS)}")
        object.__setattr__(self, "policy", get_policy(self.policy))
        if self.replacement not in REPLACEMENTS:
            raise ScenarioError(
                f"unknown replacement {self.replacement!r}; choose one of {', '.join(REPLACEMENTS)}")
        for name in ("workingset", "tlb_young", "reclaim_ages_active", "reclaim_priorities",
                     "rwsem_wake_all_readers", "rwsem_steal"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ScenarioError(f"{name} must be True or False, got "
                                    f"{getattr(self, name)!r}")
        object.__setattr__(self, "workingset", bool(self.workingset))
        if self.memory_pages is not None:
            mp = as_whole(self.memory_pages)
            if mp is None or mp < 1:
                raise ScenarioError(
                    f"memory_pages must be a positive integer or None, got {self.memory_pages!r}")
            if mp >= LIMIT:
                raise ScenarioError(f"memory_pages must be below {LIMIT_TEXT} (or None: unlimited), "
                                    f"got {self.memory_pages!r}")
            object.__setattr__(self, "memory_pages", mp)
        fa = self.fault_around_pages
        if not isinstance(fa, (int, np.integer)) or is_bool(fa) or fa < 1 or fa & (fa - 1):
            raise ScenarioError(f"fault_around_pages must be a power of two >= 1, got {fa!r}")
        if fa >= LIMIT:
            raise ScenarioError(f"fault_around_pages must be below {LIMIT_TEXT}, got {fa!r}")
        object.__setattr__(self, "fault_around_pages", int(fa))
        if not isinstance(self.costs, Costs):
            raise ScenarioError("costs must be a vmlab Costs object (Costs(io_ns=..., ...))")
        object.__setattr__(self, "signals", _as_tuple("signals", self.signals, SignalSchedule,
                                                      "SignalSchedule objects"))
        for s in self.signals:
            if not isinstance(s, SignalSchedule):
                raise ScenarioError(f"signals must be SignalSchedule objects, got {s!r}")
        if self.adversary is not None and not isinstance(self.adversary, Adversary):
            raise ScenarioError(f"adversary must be an Adversary, got {self.adversary!r}")
        for name in ("horizon_ns", "bin_ns"):
            v = getattr(self, name)
            w = as_whole(v)
            if w is None:
                raise ScenarioError(f"{name} must be a whole number of ns, got {v!r}")
            if w <= 0:
                raise ScenarioError(f"{name} must be > 0, got {v}")
            if w >= MAX_HORIZON_NS:
                raise ScenarioError(f"{name} must be below 2**62 ns (146 years), got {v}")
            object.__setattr__(self, name, w)
        seed = as_whole(self.seed)
        if seed is None:
            raise ScenarioError(f"seed must be an integer in [0, 2**64), got {self.seed!r}")
        if not 0 <= seed < 2**64:
            raise ScenarioError(f"seed must be in [0, 2**64), got {self.seed}")
        object.__setattr__(self, "seed", seed)
        if not is_bool(self.records):
            raise ScenarioError(f"records must be True or False, got {self.records!r}")
        object.__setattr__(self, "records", bool(self.records))
        if self.preload is not None:
            addrs, bad = whole_values(self.preload)
            if bad is None:
                bad = first_outside(addrs, 0, 2**64)
            if bad is not None:
                at = f" (entry {bad[0]})" if bad[0] is not None else ""
                raise ScenarioError(f"preload must be addresses (integers in [0, 2**64)), got "
                                    f"{bad[1]!r}{at}")
            addrs = np.array(addrs, dtype=np.uint64)  # a copy: later changes to the user's don't leak in
            addrs.setflags(write=False)
            object.__setattr__(self, "preload", addrs)
        self._check_granularity()

    def _whole_in(self, name, lo, hi, what):
        """Field ``name`` as a whole number in ``[lo, hi]``, or one error saying ``what``
        (``{hi}`` formatted in)."""
        v = getattr(self, name)
        w = as_whole(v)
        if w is None or not lo <= w <= hi:
            raise ScenarioError(f"{name} must be an integer {what.format(hi=hi)}, got {v!r}")
        object.__setattr__(self, name, w)

    def _check_granularity(self):
        """The knobs of docs/model.md sections 11-12 (fault model, readahead, folios, memory
        limit, files)."""
        if self.fault_model not in FAULT_MODELS:
            raise ScenarioError(f"unknown fault_model {self.fault_model!r}; choose one of "
                                f"{', '.join(FAULT_MODELS)}")
        self._whole_in("ra_pages", 0, MAX_RA_PAGES, "from 0 (off) to {hi:,} (readahead window "
                       "in pages: at most 4 GiB)")
        object.__setattr__(self, "folio_pages", _check_folio_pages("scenario", self.folio_pages))
        self._whole_in("reclaim_batch", 1, MAX_RECLAIM_BATCH, "from 1 to {hi:,} (frames a "
                       "reclaim frees at least; the kernel's 32)")
        self._whole_in("lru_add_batch", 0, MAX_LRU_ADD_BATCH, "from 0 (off) to {hi:,} (folios "
                       "a thread's LRU-add batch holds; the kernel's 31)")
        if self.memory_bytes is not None:
            mb = as_whole(self.memory_bytes)
            if mb is None or not 1 <= mb < LIMIT:
                raise ScenarioError(f"memory_bytes must be a positive integer below {LIMIT_TEXT} "
                                    f"or None (unlimited), got {self.memory_bytes!r}")
            if self.memory_pages is not None:
                raise ScenarioError("give memory_bytes (anonymous and page-cache pages charged to "
                                    "one limit) or memory_pages (page-cache frames only), not both")
            object.__setattr__(self, "memory_bytes", mb)
        files = self.files
        if isinstance(files, File):
            files = (files,)
        if isinstance(files, (str, bytes)) or not hasattr(files, "__iter__"):
            raise ScenarioError(f"files must be a list of File objects, got {files!r}")
        files = tuple(files)
        names = set()
        for f in files:
            if not isinstance(f, File):
                raise ScenarioError(f"files must be File objects, got {f!r}")
            if f.name in names:
                raise ScenarioError(f"files: {f.name!r} is given twice; give each file once")
            names.add(f.name)
        object.__setattr__(self, "files", files)
        self._check_unmaps()
        self._check_reads()
        if self.sample_rate is not None:
            r = self.sample_rate
            if not is_finite_number(r) or not 0 < r <= 1:
                raise ScenarioError(f"sample_rate must be a number in (0, 1] (the fraction of "
                                    f"pages kept) or None, got {r!r}")
            object.__setattr__(self, "sample_rate", float(r))
            if r < 1 and self.fault_around_pages > 1:
                raise ScenarioError(
                    f"fault_around_pages={self.fault_around_pages} cannot be sampled: fault-around "
                    "maps a page's neighbours, which spatial sampling leaves out; use "
                    "fault_around_pages=1 or sample_rate=None")
            asked = [text for text in (
                self.ra_pages and f"ra_pages={self.ra_pages}",
                (self.folio_pages != 1 or any(f.folio_pages not in (None, 1) or f.folios for f in files))
                and "folio_pages > 1",
                self.memory_bytes is not None and "memory_bytes") if text]
            if r < 1 and self.unmaps:
                asked.append("unmaps")
            if r < 1 and self.reads:
                asked.append("reads")
            if r < 1 and asked:
                raise ScenarioError(
                    f"{', '.join(asked)} cannot be sampled: readahead and folios read a page's "
                    "neighbours and memory_bytes charges anonymous pages, which spatial "
                    "sampling leaves out or does not scale; use sample_rate=None")

    def _record_ops(self, field, cls, form, section, hint=""):
        """Field ``field`` (operations at records of the trace: ``Unmap``, ``FileRead``) as a
        tuple, each a ``cls`` at a record of the trace; refused with an adversary (not run
        together yet, docs/model.md ``section``)."""
        ops = _as_tuple(field, getattr(self, field), cls, f"{form} or a list of them")
        n = len(self.trace)
        for i, o in enumerate(ops):
            if not isinstance(o, cls):
                raise ScenarioError(f"{field}[{i}] must be {form}, got {o!r}")
            if not 0 <= o.record < n:
                raise ScenarioError(f"{field}[{i}]: record {o.record} is not a record of the "
                                    f"trace (0 to {n - 1}){hint}")
        if ops and self.adversary is not None:
            raise ScenarioError(f"{field} with an adversary are not run yet (docs/model.md "
                                f"{section}): leave one of them out")
        object.__setattr__(self, field, ops)
        return ops

    def _check_unmaps(self):
        ps = int(self.trace.meta.page_size)
        um = self._record_ops("unmaps", Unmap, "an Unmap(record, start, end, asid)", "11.9",
                              "; a mapping that outlives the run needs no Unmap")
        for i, u in enumerate(um):
            if u.start % ps or u.end % ps:
                raise ScenarioError(f"unmaps[{i}]: [{u.start:#x}, {u.end:#x}) is not aligned to "
                                    f"the page size {ps}")
            if u.to is not None and u.to % ps:
                raise ScenarioError(f"unmaps[{i}]: the destination {u.to:#x} is not aligned to "
                                    f"the page size {ps}")

    def _check_reads(self):
        rd = self._record_ops("reads", FileRead, "a FileRead(record, file, start, end, "
                              "copy_start, copy_end)", "11.7")
        sizes = {f.name: f.size_bytes for f in self.files}
        ps = int(self.trace.meta.page_size)
        for i, r in enumerate(rd):
            if sizes.get(r.file) is None:
                raise ScenarioError(f"reads[{i}]: file {r.file!r} is not among files with a "
                                    "size (give File(name, size_bytes) in files)"
                                    + did_you_mean([r.file], sorted(sizes)))
            pages = -(-sizes[r.file] // ps)
            if max(r.end, r.copy_end) > pages:
                raise ScenarioError(f"reads[{i}]: pages [{min(r.start, r.copy_start)}, "
                                    f"{max(r.end, r.copy_end)}) go beyond the end of {r.file!r} "
                                    f"({pages} pages)")

    def read_ops(self, files):
        """The reads as ``(record, file index in files, start, end, copy_start, copy_end,
        prev, stream, pos_end)`` in record order (ties in the order given); ``files``: :meth:`file_table`'s."""
        index = {f[0]: i for i, f in enumerate(files)}
        out = [(r.record, index[r.file], r.start, r.end, r.copy_start, r.copy_end, r.prev,
                r.stream, r.copy_end if r.pos_end < 0 else r.pos_end) for r in self.reads]
        return sorted(out, key=lambda r: r[0])

    def unmap_ranges(self, vmas, vma_pols):
        """The unmaps as ``(record, asid, first vpn, end vpn, destination vpn)`` in record
        order (ties in the order given; the destination is -1 for an unmap that is not a
        move), checked against the run's VMAs (:func:`unmap_problem`)."""
        ps = int(self.trace.meta.page_size)
        out = []
        for i, u in enumerate(self.unmaps):
            why = unmap_problem(u, vmas, vma_pols)
            if why:
                raise ScenarioError(f"unmaps[{i}] (record {u.record}) {why}")
            out.append((u.record, u.asid, u.start // ps, u.end // ps,
                        -1 if u.to is None else u.to // ps))
        return sorted(out, key=lambda r: r[0])

    def replace(self, **changes):
        """A copy with some fields changed (``costs`` fields may be given directly too)."""
        costs = cost_names()
        unknown = [k for k in changes if k not in scenario_fields() and k not in costs]
        if unknown:
            raise ScenarioError(
                f"unknown scenario field(s) or cost(s) {sorted(unknown)}; fields are "
                f"{scenario_fields()}, costs are {costs}"
                + did_you_mean(unknown, scenario_fields() + costs))
        cost_changes = {k: changes.pop(k) for k in list(changes) if k in costs}
        sc = replace(self, **changes)
        if cost_changes:
            sc = replace(sc, costs=sc.costs.replace(**cost_changes))
        return sc

    # -- resolution --------------------------------------------------------------------
    def resolved_vmas(self):
        """The VMAs of the run, sorted by (asid, start), inferred if none were given."""
        vmas = self.vmas
        if vmas is None:
            from ..trace.vmas import infer_vmas

            regions = infer_vmas(self.trace)
            for r in regions:
                if not 0 <= r.asid < MAX_ASIDS:
                    raise ScenarioError(f"the trace's address-space ids must be below {MAX_ASIDS}, "
                                        f"got {r.asid} (the asid column)")
            vmas = tuple(Vma(r.start, r.end, backing=self.backing, asid=r.asid,
                             name=getattr(r, "label", "") and f"{r.label}@{r.start:#x}")
                         for r in regions)
        return tuple(sorted(vmas, key=lambda v: (v.asid, v.start)))

    def validate(self, policy=None):
        """Check the scenario for ``policy``; raise :class:`ScenarioError` saying what to change.

        Returns ``(policy, vmas, vma_policies)``.
        """
        pol = get_policy(policy) if policy is not None else self.policy
        vmas = self.resolved_vmas()
        ps = self.trace.meta.page_size
        for v in vmas:
            if v.start % ps or v.end % ps:
                raise ScenarioError(f"VMA {v.label} is not aligned to the page size {ps}")
        for a, b in zip(vmas, vmas[1:]):
            if a.asid == b.asid and b.start < a.end:
                raise ScenarioError(
                    f"VMAs {a.label} and {b.label} overlap in address space {a.asid}; "
                    "make their ranges disjoint")
        for v in vmas:
            if v.offset % ps:
                raise ScenarioError(f"VMA {v.label}: offset {v.offset} is not a multiple of the "
                                    f"page size {ps}")
        named = {v.file for v in vmas if v.file is not None}
        read = {r.file for r in self.reads}
        for f in self.files:
            if f.name in read:
                continue
            if f.name not in named:
                raise ScenarioError(f"files: no VMA maps {f.name!r} (VMAs name files "
                                    f"{sorted(named)})" + did_you_mean([f.name], sorted(named)))
        vma_pols = []
        for v in vmas:
            p = v.policy or pol
            why = can_serve(p, v.backing)
            if why:
                raise ScenarioError(f"VMA {v.label}: {why}")
            vma_pols.append(p)
        if self.adversary is not None:
            self.adversary_vma(vmas)
        return pol, vmas, tuple(vma_pols)

    def granularity_knobs(self, vmas):
        """The mechanisms of docs/model.md sections 11-12 this scenario asks for, by name
        (``"fault_model"``, ``"ra_pages"``, ``"folio_pages"``, ``"memory_bytes"``, ``"file"``,
        ``"workingset"``),
        each with how it was asked: an implementation refuses those it does not run
        (:func:`refuse_knobs`) instead of silently ignoring them."""
        asked = {}
        if self.fault_model != "page":
            asked["fault_model"] = f"fault_model={self.fault_model!r}"
        if self.ra_pages:
            asked["ra_pages"] = f"ra_pages={self.ra_pages}"
        if self.folio_pages != 1 or any(f.folio_pages not in (None, 1) or f.folios for f in self.files):
            asked["folio_pages"] = "folio_pages > 1"
        if self.memory_bytes is not None:
            asked["memory_bytes"] = "memory_bytes"
        if any(v.file is not None for v in vmas):
            asked["file"] = "a VMA's file (page-cache sharing)"
        if self.workingset and self.replacement == "twolist":
            asked["workingset"] = "workingset=True"
        if self.reads:
            asked["reads"] = "reads (FileRead)"
        if self.reclaim_batch != 1 and self.memory_bytes is not None:
            asked["reclaim_batch"] = f"reclaim_batch={self.reclaim_batch}"
        if self.lru_add_batch_applies:
            asked["lru_add_batch"] = f"lru_add_batch={self.lru_add_batch}"
        young = self.fault_model == "kernel" and self.replacement == "twolist"
        if self.tlb_young and young:
            asked["tlb_young"] = "tlb_young=True"
        if self.reclaim_ages_active and young:
            asked["reclaim_ages_active"] = "reclaim_ages_active=True"
        if self.reclaim_priorities and young and self.memory_bytes is not None:
            asked["reclaim_priorities"] = "reclaim_priorities=True"
        return asked

    @property
    def lru_add_batch_applies(self):
        """``lru_add_batch`` takes effect: set, under ``memory_bytes``, with ``twolist`` in
        the kernel fault model (docs/model.md 12.1)."""
        return (self.lru_add_batch > 0 and self.memory_bytes is not None
                and self.fault_model == "kernel" and self.replacement == "twolist")

    def file_table(self, vmas):
        """The files ``vmas`` map (docs/model.md 11.4): ``(files, vma_file)``, ``files`` a list
        of ``(name, n_pages, folio_pages, folios)`` (``folios``: ``File.folios``) and ``vma_file[i]`` the index in it of VMA ``i``'s
        file (-1 for VMAs that are not file-backed).  A file VMA without ``file`` maps a file
        of its own (named ``None``); a file's size in pages is ``ceil(size_bytes / page
        size)``, or, without ``size_bytes``, the furthest page a VMA maps."""
        ps = int(self.trace.meta.page_size)
        given = {f.name: f for f in self.files}
        files, vma_file, index = [], [], {}
        for v in vmas:
            if v.backing != "file":
                vma_file.append(-1)
                continue
            if v.file is None or v.file not in index:
                if v.file is not None:
                    index[v.file] = len(files)
                files.append([v.file, 0, 0])
                vma_file.append(len(files) - 1)
            else:
                vma_file.append(index[v.file])
            f = files[vma_file[-1]]
            f[1] = max(f[1], v.offset // ps + (v.end - v.start) // ps)
        # then the files only reads name (their page cache, no VMA: docs/model.md 11.7)
        for r in self.reads:
            if r.file not in index:
                index[r.file] = len(files)
                files.append([r.file, 0, 0])
        out = []
        for name, reach, _ in files:
            g = given.get(name) if name is not None else None
            n = reach if g is None or g.size_bytes is None else -(-g.size_bytes // ps)
            fp = self.folio_pages if g is None or g.folio_pages is None else g.folio_pages
            listed = () if g is None else g.folios
            if listed and listed[-1][0] >= n:
                raise ScenarioError(f"File {name!r}: the folio at page {listed[-1][0]} starts "
                                    f"beyond the file's end ({n} pages)")
            out.append((name, int(n), int(fp), listed))
        return out, vma_file

    def adversary_vma(self, vmas):
        """Index of the adversary's VMA in ``vmas``; checks it is a file VMA."""
        adv = self.adversary
        if adv.vma is None:
            idx = next((i for i, v in enumerate(vmas) if v.backing == "file"), None)
            if idx is None:
                raise ScenarioError("the adversary needs a file VMA and the scenario has none")
        elif isinstance(adv.vma, str):
            idx = next((i for i, v in enumerate(vmas) if v.name == adv.vma), None)
            if idx is None:
                raise ScenarioError(f"adversary: no VMA named {adv.vma!r}; names are "
                                    f"{[v.name for v in vmas if v.name]}")
        else:
            idx = int(adv.vma)
            if not 0 <= idx < len(vmas):
                raise ScenarioError(f"adversary: VMA index {idx} out of range (0..{len(vmas) - 1})")
        v = vmas[idx]
        if v.backing != "file":
            raise ScenarioError(f"adversary: VMA {v.label} is {v.backing!r}; "
                                "fadvise(FADV_DONTNEED) acts on file VMAs")
        n = (v.end - v.start) // int(self.trace.meta.page_size)
        if adv.first_page >= n:
            raise ScenarioError(f"adversary: first_page={adv.first_page} is outside VMA {v.label}, "
                                f"which has {n} pages; use first_page in [0, {n})")
        if adv.n_pages is not None and adv.first_page + adv.n_pages > n:
            raise ScenarioError(f"adversary: first_page + n_pages = {adv.first_page + adv.n_pages} "
                                f"goes past the end of VMA {v.label}, which has {n} pages; use "
                                f"n_pages <= {n - adv.first_page} (or None: to the VMA's end)")
        return idx

    def check_threads(self, tids):
        """Checks that need the trace's thread ids ``tids``: the page cache holds every thread's
        in-flight and pinned pages, and the signal schedules name threads of the trace, one
        schedule each (the engine's prepare() makes the same checks)."""
        T = len(tids)
        if self.memory_pages is not None and self.memory_pages < min_memory_pages(T):
            raise ScenarioError(
                f"memory_pages={self.memory_pages} is too small for {T} threads: every in-flight or "
                f"pinned page needs a frame; use at least {min_memory_pages(T)}")
        self.signal_schedule_of(tids)

    def signal_schedule_of(self, tids):
        """Map thread id -> SignalSchedule; refuses two schedules for one thread."""
        out = {}
        present = set(int(t) for t in tids)
        for s in self.signals:
            targets = s.threads if s.threads is not None else sorted(present)
            for t in targets:
                if t not in present:
                    raise ScenarioError(f"signal schedule names thread {t}, which is not in the trace "
                                        f"(threads: {sorted(present)[:10]}...)")
                if t in out:
                    raise ScenarioError(f"thread {t} has two signal schedules; give each thread one")
                out[t] = s
        return out


def refuse_knobs(scenario, vmas, runs=(), who="this engine"):
    """Raise one ScenarioError naming the knobs of docs/model.md sections 11-12 that
    ``scenario`` asks for and ``who`` does not run (``runs``: the names it does run)."""
    asked = [text for name, text in scenario.granularity_knobs(vmas).items() if name not in runs]
    if asked:
        raise ScenarioError(f"{', '.join(asked)}: specified in docs/model.md sections 11-12 but "
                            f"not run by {who} yet; leave "
                            + ("it" if len(asked) == 1 else "them") + " at the default")


def scenario_fields():
    """The fields of :class:`Scenario`, in order."""
    return [f.name for f in fields(Scenario)]


def signal_interval_dist(schedule):
    """The distribution of a Poisson schedule's gaps."""
    return Exponential(1e9 / schedule.rate_hz)


def min_memory_pages(n_threads):
    """The smallest page cache ``memory_pages`` a run with ``n_threads`` threads may have,
    ``2 * n_threads + 1``: each thread may hold a frame in flight and one pinned, neither
    evictable, so one more is needed for a victim always to exist (docs/model.md section 8)."""
    return 2 * int(n_threads) + 1
