"""Trace statistics: a streaming summary, LRU stack distances, miss-ratio and
working-set curves.

:func:`summarize` reads a trace once, in chunks, so it runs in bounded memory on a
memory-mapped trace of any length (memory grows with the number of distinct pages and
threads, not records).  The locality functions (:func:`reuse_distance`,
:func:`miss_ratio_curve`, :func:`working_set_curve`) need O(records) memory.

Pages are identified by (address space, page number): the same virtual page in two address
spaces counts twice.  The locality functions look at memory accesses only: ``LOCK_W``
records (mmap/munmap calls) are skipped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .._io import printable
from .._numba import njit
from .model import Call, Op, Trace
from .vmas import DEFAULT_CHUNK, PageAccumulator, VmaRange

#: Stack distance of a first reference (cold miss).
COLD = -1
#: Stack distance given to records that are not memory accesses (``LOCK_W``, ``LOCK_R``).
NOT_ACCESS = -2

_OP_NAMES = [op.name.lower() for op in Op]


@dataclass
class TraceSummary:
    """What :func:`summarize` finds in a trace.

    Attributes
    ----------
    n_records, n_threads, n_address_spaces, distinct_pages : int
        ``distinct_pages`` counts (asid, page) pairs of the records that name pages
        (:func:`vmlab.trace.model.names_pages`: not the lock records without a region).
    op_counts : dict
        Operation name ("load", "store", "ifetch", "modify", "lock_w", "lock_r") -> records; an
        unknown code ``c`` would appear as ``"op<c>"``.
    thread_counts : dict
        Thread id -> records, sorted by thread id.
    vmas : list of VmaRange
        Inferred ranges (see :func:`vmlab.trace.vmas.infer_vmas`).
    addr_min, addr_max : int or None
        Lowest and highest address of the records that name pages (accesses, and the
        ``LOCK_W`` records that name a region: :func:`vmlab.trace.model.names_pages`); None
        when there are none.
    has_gap : bool
    total_gap_ns : int
        Sum of the ``gap_ns`` column (0 without one).
    page_size : int
    source, notes : str
    gap_pages : int
        The ``gap_pages`` used to infer the VMAs.
    recorded : dict
        For a recording (a trace with mappings, :mod:`vmlab.trace.mappings`), what it holds
        besides the accesses: ``rows``, ``files``, ``files_resident_measured`` (files whose
        page-cache residency was measured), ``files_with_large_folios`` and
        ``pages_in_large_folios`` (the measured folio layouts), ``file_reads``, ``moves``,
        ``placements``, ``zaps``; empty otherwise.
    kernel_made : int
        Accesses the kernel made inside a system call (``call`` ``KERNEL``: their faults
        are taken in kernel mode, docs/model.md 15.3).
    """

    n_records: int
    n_threads: int
    n_address_spaces: int
    distinct_pages: int
    op_counts: dict
    thread_counts: dict
    vmas: list
    addr_min: int | None
    addr_max: int | None
    has_gap: bool
    total_gap_ns: int
    page_size: int
    source: str = ""
    notes: str = ""
    gap_pages: int = 16
    vma_pages: list = field(default_factory=list)
    recorded: dict = field(default_factory=dict)
    kernel_made: int = 0

    def __post_init__(self):
        self.vma_pages = [v.pages(self.page_size) for v in self.vmas]

    @property
    def footprint_bytes(self):
        """Bytes of distinct pages touched."""
        return self.distinct_pages * self.page_size

    def to_dict(self):
        """A JSON-serialisable dict (VMAs as dicts)."""
        d = asdict(self)
        d["vmas"] = [asdict(v) for v in self.vmas]
        d["thread_counts"] = {int(k): int(v) for k, v in self.thread_counts.items()}
        return d

    def to_frame(self, what="summary"):
        """A pandas DataFrame.

        Parameters
        ----------
        what : str
            ``"summary"``: one row of scalar fields, one column per operation count;
            ``"vmas"``: one row per inferred VMA; ``"threads"``: tid and records.
        """
        import pandas as pd

        if what == "vmas":
            rows = [dict(asdict(v), pages=v.pages(self.page_size)) for v in self.vmas]
            cols = ["asid", "start", "end", "pages", "pages_touched", "records", "label"]
            return pd.DataFrame(rows, columns=cols)
        if what == "threads":
            return pd.DataFrame({"tid": list(self.thread_counts),
                                 "records": list(self.thread_counts.values())})
        if what != "summary":
            raise ValueError(f"what must be 'summary', 'vmas' or 'threads', got {what!r}")
        row = {k: v for k, v in self.to_dict().items()
               if k not in ("op_counts", "thread_counts", "vmas", "vma_pages", "recorded")}
        row.update({f"recorded_{k}": v for k, v in self.recorded.items()})
        row["n_vmas"] = len(self.vmas)
        row.update({f"n_{k}": v for k, v in self.op_counts.items()})
        return pd.DataFrame([row])

    def __str__(self):
        n = self.n_records
        pct = (lambda c: f" ({100.0 * c / n:.1f}%)") if n else (lambda c: "")
        # strings read from the file are printed escaped (a control character cannot clear
        # the terminal or fake a line)
        lines = [f"source          {printable(self.source) or '-'}"]
        if self.notes:
            lines.append(f"notes           {printable(self.notes)}")
        lines.append(f"records         {n:,}")
        lines.append(f"threads         {self.n_threads:,}")
        lines.append(f"address spaces  {self.n_address_spaces:,}")
        lines.append(f"page size       {self.page_size:,} bytes")
        lines.append(f"distinct pages  {self.distinct_pages:,} ({_human_bytes(self.footprint_bytes)})")
        if self.addr_min is not None:
            lines.append(f"addresses       {self.addr_min:#x} .. {self.addr_max:#x}")
        ops = ", ".join(f"{k} {c:,}{pct(c)}" for k, c in self.op_counts.items() if c)
        lines.append(f"operations      {ops or '-'}")
        if self.kernel_made:
            lines.append(f"kernel-made     {self.kernel_made:,} accesses (call kernel: made by "
                         "the kernel in a system call, faults in kernel mode)")
        if self.has_gap:
            mean = self.total_gap_ns / n if n else 0.0
            lines.append(f"compute gaps    total {_human_ns(self.total_gap_ns)}, "
                         f"mean {mean:,.1f} ns/record")
        else:
            lines.append("compute gaps    none (no gap_ns column: 0 ns)")
        items = list(self.thread_counts.items())
        shown = ", ".join(f"{t}: {c:,}" for t, c in items[:8])
        more = f", ... ({len(items) - 8} more)" if len(items) > 8 else ""
        lines.append(f"records/thread  {shown or '-'}{more}")
        if self.recorded:
            r = self.recorded
            lines.append(f"recorded        {r['rows']:,} mapping rows, {r['files']:,} files "
                         f"({r['files_resident_measured']:,} with their page-cache residency, "
                         f"{r['files_with_large_folios']:,} with large folios: "
                         f"{r['pages_in_large_folios']:,} pages), {r['file_reads']:,} file "
                         f"reads, {r['moves']:,} moves, {r['placements']:,} placements, "
                         f"{r['zaps']:,} zaps")
        lines.append(f"VMAs (inferred, gap {self.gap_pages} pages): {len(self.vmas)}")
        if self.vmas:
            lines.append(f"  {'asid':>4}  {'start':>14}  {'end':>14}  {'pages':>10}  "
                         f"{'touched':>10}  {'records':>12}  label")
            limit = 40
            for v, p in list(zip(self.vmas, self.vma_pages))[:limit]:
                lines.append(f"  {v.asid:>4}  {v.start:>#14x}  {v.end:>#14x}  {p:>10,}  "
                             f"{v.pages_touched:>10,}  {v.records:>12,}  {printable(v.label)}")
            if len(self.vmas) > limit:
                lines.append(f"  ... {len(self.vmas) - limit} more")
        return "\n".join(lines)


def _human_bytes(b):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1024.0


def _human_ns(ns):
    if ns >= 10**9:
        return f"{ns / 1e9:,.3f} s"
    if ns >= 10**6:
        return f"{ns / 1e6:,.3f} ms"
    if ns >= 10**3:
        return f"{ns / 1e3:,.3f} µs"
    return f"{ns} ns"


@njit
def _scan_chunk(addr, op, tid, keep, op_hist, tid_hist):
    """One pass: the address min/max of the records ``keep`` marks, op histogram, tid
    histogram for tids < len(tid_hist).

    Returns (min, max, records counted in min/max, number of records whose tid is too
    large for tid_hist).
    """
    amin = addr[0]
    amax = addr[0]
    n_kept = 0
    big = 0
    nt = len(tid_hist)
    for i in range(len(addr)):
        if keep[i]:
            a = addr[i]
            if n_kept == 0 or a < amin:
                amin = a
            if n_kept == 0 or a > amax:
                amax = a
            n_kept += 1
        op_hist[op[i]] += 1
        t = tid[i]
        if t < nt:
            tid_hist[t] += 1
        else:
            big += 1
    return amin, amax, n_kept, big


class _TidCounter:
    """Records per thread id: an array for small ids, a dict for the others."""

    def __init__(self, dense=1 << 16, limit=1 << 22):
        self.arr = np.zeros(dense, np.int64)
        self.extra = {}
        self.limit = limit

    def add_large(self, values):
        values = np.asarray(values)
        hi = int(values.max())
        if hi < self.limit:
            self.arr = np.concatenate((self.arr, np.zeros(hi + 1 - len(self.arr), np.int64)))
            np.add.at(self.arr, values.astype(np.int64), 1)
            return
        u, c = np.unique(values, return_counts=True)
        small = u < len(self.arr)
        np.add.at(self.arr, u[small].astype(np.int64), c[small])
        for k, v in zip(u[~small].tolist(), c[~small].tolist()):
            self.extra[k] = self.extra.get(k, 0) + v

    def as_dict(self):
        nz = np.flatnonzero(self.arr)
        d = dict(zip(nz.tolist(), self.arr[nz].tolist()))
        for k, v in self.extra.items():
            d[k] = d.get(k, 0) + v
        return dict(sorted(d.items()))


def summarize(trace, gap_pages=16, chunk_records=DEFAULT_CHUNK):
    """Summarise a trace in one streaming pass (bounded memory on memory-mapped traces).

    Parameters
    ----------
    trace : Trace
    gap_pages : int
        Passed to the VMA inference (see :func:`vmlab.trace.vmas.infer_vmas`).
    chunk_records : int
        Records read per step.

    Returns
    -------
    TraceSummary
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"summarize() needs a Trace, got {type(trace).__name__}")
    cols = trace.columns
    acc = PageAccumulator(trace.page_size)
    ops = np.zeros(256, np.int64)
    threads = _TidCounter()
    state = {"min": None, "max": None, "gap": 0, "kernel": 0}
    has_gap = trace.has_gap
    has_call = trace.has_call

    def per_chunk(lo, hi, keep):
        tid = np.asarray(cols["tid"][lo:hi])
        amin, amax, n_kept, big = _scan_chunk(np.asarray(cols["addr"][lo:hi]),
                                              np.asarray(cols["op"][lo:hi]), tid, keep, ops,
                                              threads.arr)
        if big:
            threads.add_large(tid[tid >= len(threads.arr)])
        if n_kept:
            amin, amax = int(amin), int(amax)
            state["min"] = amin if state["min"] is None else min(state["min"], amin)
            state["max"] = amax if state["max"] is None else max(state["max"], amax)
        if has_gap:
            state["gap"] += int(np.sum(cols["gap_ns"][lo:hi], dtype=np.uint64))
        if has_call:
            state["kernel"] += int(np.count_nonzero(np.asarray(cols["call"][lo:hi])
                                                    == Call.KERNEL))

    acc.feed(trace, chunk_records, callback=per_chunk)
    op_counts = {name: int(ops[i]) for i, name in enumerate(_OP_NAMES)}
    for code in np.flatnonzero(ops[len(_OP_NAMES):]):
        op_counts[f"op{int(code) + len(_OP_NAMES)}"] = int(ops[code + len(_OP_NAMES)])
    thread_counts = threads.as_dict()
    return TraceSummary(
        n_records=len(trace), n_threads=len(thread_counts),
        n_address_spaces=len(acc.pages), distinct_pages=acc.distinct_pages,
        op_counts=op_counts, thread_counts=thread_counts,
        vmas=acc.vmas(trace.page_size, gap_pages=gap_pages), addr_min=state["min"],
        addr_max=state["max"], has_gap=has_gap, total_gap_ns=state["gap"],
        page_size=trace.page_size, source=trace.meta.source, notes=trace.meta.notes,
        gap_pages=gap_pages, recorded=_recorded(trace.mappings), kernel_made=state["kernel"])


def _recorded(m):
    """:attr:`TraceSummary.recorded` of a trace's mappings (``None``: {})."""
    if m is None:
        return {}
    large = [f.folios for f in m.files if f.folios]
    return {"rows": len(m.table), "files": len(m.files),
            "files_resident_measured": sum(f.resident is not None for f in m.files),
            "files_with_large_folios": len(large),
            "pages_in_large_folios": int(sum(n for fol in large for _, n in fol)),
            "file_reads": len(m.reads), "moves": len(m.moves), "placements": len(m.placements),
            "zaps": len(m.zaps)}


# ---------------------------------------------------------------------------------------
# Locality


def _access_mask(trace):
    op = np.asarray(trace.op)
    return op < Op.LOCK_W      # lock records (LOCK_W, LOCK_R) are no access


def page_ids(trace, mask=None):
    """Dense ids for the (asid, page) of each selected record.

    Returns ``(ids, n_ids)``: int64 ids in ``[0, n_ids)``, equal exactly when two records
    touch the same page of the same address space.  Ids are not necessarily compact
    (a narrow page span is indexed directly, without sorting).
    """
    pages = trace.pages() if mask is None else trace.pages()[mask]
    pages = np.asarray(pages)
    if len(pages) == 0:
        return np.zeros(0, np.int64), 0
    asid = np.asarray(trace.asid if mask is None else trace.asid[mask])
    pmin, pmax = int(pages.min()), int(pages.max())
    span = pmax - pmin + 1
    if int(asid.min()) == int(asid.max()):
        n_as, a_idx = 1, None
    else:
        u, a_idx = np.unique(asid, return_inverse=True)
        n_as = len(u)
        a_idx = a_idx.ravel().astype(np.int64)
    rel = (pages - np.uint64(pmin)).astype(np.int64) if span < (1 << 62) else None
    if rel is not None and n_as * span <= max(1 << 24, 4 * len(pages)):
        ids = rel if a_idx is None else a_idx * span + rel
        return ids, n_as * span
    if rel is not None and n_as * span < (1 << 62):
        key = rel if a_idx is None else a_idx * span + rel
        u, inv = np.unique(key, return_inverse=True)
    else:
        pair = np.stack([np.zeros(len(pages), np.uint64) if a_idx is None else
                         a_idx.astype(np.uint64), pages.astype(np.uint64)], axis=1)
        u, inv = np.unique(pair, axis=0, return_inverse=True)
    return inv.ravel().astype(np.int64), len(u)


@njit
def _stack_distance_kernel(ids, n_ids, out):
    """LRU stack distances with a Fenwick tree over last-access times.

    A mark sits at the time of each page's latest reference; the distance of a
    re-reference is the number of marks after the page's previous reference, i.e. the
    number of distinct other pages referenced since.
    """
    n = len(ids)
    last = np.full(n_ids, -1, np.int64)
    tree = np.zeros(n + 1, np.int32)
    marks = 0
    for t in range(n):
        p = ids[t]
        l = last[p]
        if l < 0:
            out[t] = -1
        else:
            # prefix sum of marks at times <= l
            s = 0
            i = l + 1
            while i > 0:
                s += tree[i]
                i -= i & (-i)
            out[t] = marks - s
            i = l + 1
            while i <= n:
                tree[i] -= 1
                i += i & (-i)
            marks -= 1
        i = t + 1
        while i <= n:
            tree[i] += 1
            i += i & (-i)
        marks += 1
        last[p] = t


def reuse_distance(trace):
    """LRU stack distance of every record's page reference.

    The distance of a reference is the number of *distinct other* pages referenced since
    the previous reference to the same (asid, page): 0 for an immediate re-reference.  An
    LRU cache of ``C`` pages hits a reference exactly when its distance is ``< C``.
    Computed in O(n log n) with a Fenwick tree over last-access times (a numba kernel);
    memory about 12 bytes per record plus 8 per distinct page.

    Parameters
    ----------
    trace : Trace

    Returns
    -------
    numpy.ndarray of int64
        One distance per record: ``COLD`` (-1) for a first reference, ``NOT_ACCESS`` (-2)
        for ``LOCK_W`` records, which are not memory accesses and are skipped.
    """
    mask = _access_mask(trace)
    all_access = bool(mask.all())
    ids, n_ids = page_ids(trace, None if all_access else mask)
    d = np.empty(len(ids), np.int64)
    if len(ids):
        _stack_distance_kernel(ids, max(n_ids, 1), d)
    if all_access:
        return d
    out = np.full(len(trace), NOT_ACCESS, np.int64)
    out[mask] = d
    return out


def _default_sizes(max_size):
    if max_size <= 0:
        return np.array([1], np.int64)
    s = np.unique(np.concatenate((2 ** np.arange(int(np.log2(max_size)) + 1), [max_size])))
    return s.astype(np.int64)


def miss_ratio_curve(trace=None, sizes=None, distances=None):
    """Miss ratio of an LRU page cache as a function of its size (in pages).

    From the stack-distance histogram: at cache size ``C`` the misses are the cold misses
    plus the references whose distance is ``>= C`` (exact for LRU, all sizes at once).
    The ratio is misses over memory accesses (``LOCK_W`` records excluded).

    Parameters
    ----------
    trace : Trace, optional
        The trace (not needed when ``distances`` is given).
    sizes : array_like of int, optional
        Cache sizes in pages; default powers of two up to the number of distinct pages,
        plus that number.
    distances : array_like of int, optional
        Output of :func:`reuse_distance`, to avoid recomputing it.

    Returns
    -------
    (numpy.ndarray of int64, numpy.ndarray of float64)
        ``(sizes, miss_ratio)``.
    """
    if distances is None:
        if trace is None:
            raise ValueError("miss_ratio_curve() needs a trace or distances")
        distances = reuse_distance(trace)
    d = np.asarray(distances)
    d = d[d != NOT_ACCESS]
    total = len(d)
    cold = int(np.count_nonzero(d == COLD))
    warm = d[d >= 0]
    hist = np.bincount(warm) if len(warm) else np.zeros(0, np.int64)
    cum = np.concatenate(([0], np.cumsum(hist)))  # cum[c] = references with distance < c
    if sizes is None:
        sizes = _default_sizes(cold)
    sizes = np.asarray(sizes, dtype=np.int64)
    if (sizes < 0).any():
        raise ValueError("cache sizes must be >= 0")
    hits = cum[np.minimum(sizes, len(cum) - 1)]
    miss = (total - hits) / total if total else np.zeros(len(sizes))
    return sizes, np.asarray(miss, np.float64)


@njit
def _forward_gaps(ids, n_ids, out):
    """out[i] = min(next reference to ids[i] after i, n) - i."""
    n = len(ids)
    nxt = np.full(n_ids, n, np.int64)
    for i in range(n - 1, -1, -1):
        p = ids[i]
        out[i] = nxt[p] - i
        nxt[p] = i


def working_set_curve(trace, windows=None):
    """Denning's average working-set size as a function of the window length.

    ``s(T)`` is the mean over every record ``t`` of the number of distinct pages among the
    memory accesses ``t-T+1 .. t`` (the window is cut at the start of the trace).  Windows
    are counted in memory-access records (``LOCK_W`` records are skipped).  Computed
    exactly for all windows at once from the forward inter-reference gaps ``g_i``:
    ``s(T) = mean_i min(T, g_i)``, where ``g_i`` is the distance to the next reference
    of the same page, or to the end of the trace.

    Parameters
    ----------
    trace : Trace
    windows : array_like of int, optional
        Window lengths in records (>= 1); default powers of two up to the trace length.

    Returns
    -------
    (numpy.ndarray of int64, numpy.ndarray of float64)
        ``(windows, mean working-set size in pages)``.
    """
    mask = _access_mask(trace)
    ids, n_ids = page_ids(trace, None if mask.all() else mask)
    n = len(ids)
    if windows is None:
        windows = _default_sizes(n)
    windows = np.asarray(windows, dtype=np.int64)
    if (windows < 1).any():
        raise ValueError("windows must be >= 1 record")
    if n == 0:
        return windows, np.zeros(len(windows))
    g = np.empty(n, np.int64)
    _forward_gaps(ids, max(n_ids, 1), g)
    g.sort()
    prefix = np.concatenate(([0], np.cumsum(g)))
    k = np.searchsorted(g, windows, side="left")  # g[:k] < T
    total = prefix[k] + windows * (n - k)
    return windows, total / n


__all__ = ["TraceSummary", "summarize", "reuse_distance", "miss_ratio_curve",
           "working_set_curve", "page_ids", "COLD", "NOT_ACCESS", "VmaRange"]
