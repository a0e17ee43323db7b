"""Building and reshaping traces: interleave, slice, concatenate, relocate, filter, cut at pages.

Every function returns a new :class:`~vmlab.trace.model.Trace` and never writes to its
inputs' arrays (they may be read-only memory maps).  A result may share unchanged columns
with its input (a slice shares all of them; :func:`relocate` shares every column but
``addr``), so treat traces as immutable.  The work is vectorised numpy or linear numba
kernels; only ``interleave(how="time")`` sorts (O(n log n)).  :func:`split_page_crossings`
works on a reader's chunk of columns (a dict of arrays) and returns one, for the readers of
real programs' accesses.
"""
from __future__ import annotations

import numpy as np

from .._numba import njit
from ..errors import TraceFormatError
from .model import ALL_COLUMNS, Op, Trace, TraceMeta, narrow_dtype, parse_op
from .synth import round_robin_positions

_CHUNK = 1 << 22


def _check_traces(traces, what):
    traces = list(traces)
    if not traces:
        raise ValueError(f"{what}() needs at least one trace")
    for i, t in enumerate(traces):
        if not isinstance(t, Trace):
            raise TypeError(f"{what}(): item {i} is a {type(t).__name__}, not a Trace")
    sizes = {t.page_size for t in traces}
    if len(sizes) > 1:
        detail = ", ".join(f"trace {i}: {t.page_size}" for i, t in enumerate(traces))
        raise TraceFormatError(
            f"{what}(): the traces have different page sizes ({detail}); convert them to one "
            "page size first")
    return traces


def _col_dtype(traces, name):
    dts = [t.columns[name].dtype for t in traces if name in t.columns]
    return np.result_type(*dts) if dts else np.dtype(np.uint64)


def _concat_column(traces, name, dtype):
    """Concatenate one column over the traces; a missing gap column counts as zeros."""
    parts = []
    for t in traces:
        col = t.columns.get(name)
        parts.append(np.zeros(len(t), dtype) if col is None else col)
    if not parts:
        return np.zeros(0, dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def _max_tid(t):
    return int(t.tid.max()) if len(t) else -1


def _sources(traces):
    return " | ".join(t.meta.source or "?" for t in traces)


def concat(traces):
    """Records of several traces one after the other.

    Thread ids and address-space ids are kept as they are (a thread appearing in two
    traces continues in the second).  If some traces have a ``gap_ns`` column and others
    do not, the result has one, with 0 for the records of the latter.

    Parameters
    ----------
    traces : sequence of Trace
        At least one; all must have the same page size (TraceFormatError otherwise).

    Returns
    -------
    Trace
    """
    traces = _check_traces(traces, "concat")
    names = [c for c in ALL_COLUMNS if any(c in t.columns for t in traces)]
    cols = {c: _concat_column(traces, c, _col_dtype(traces, c)) for c in names}
    meta = TraceMeta(page_size=traces[0].page_size, source=f"concat[{_sources(traces)}]")
    return Trace.from_columns(cols, meta)


def slice_records(trace, start=None, stop=None):
    """Records ``start:stop`` of a trace (Python slice rules; negative indices count from
    the end).  The result's columns are views of the input's (no copy).

    Parameters
    ----------
    trace : Trace
    start, stop : int, optional

    Returns
    -------
    Trace
    """
    _check_traces([trace], "slice_records")
    lo, hi, _ = slice(start, stop).indices(len(trace))
    out = trace[lo:max(lo, hi)]
    return out.with_meta(source=f"{trace.meta.source} [records {lo}:{max(lo, hi)}]")


@njit
def _per_thread_clock(idx, gap, out):
    """out[i] = sum of gap over the records j <= i of record i's thread."""
    sums = np.zeros(idx.max() + 1 if len(idx) else 1, np.uint64)
    for i in range(len(idx)):
        k = idx[i]
        sums[k] += gap[i]
        out[i] = sums[k]


def _dense(tid):
    tid = np.asarray(tid)
    if len(tid) == 0:
        return np.zeros(0, np.int64)
    if int(tid.max()) < (1 << 22):
        return tid.astype(np.int64)
    return np.unique(tid, return_inverse=True)[1].astype(np.int64).ravel()


def interleave(traces, how="round_robin", seed=None, same_process=True):
    """Make several traces the threads of one process.

    Thread ids are renumbered so they cannot collide: trace k's tids are offset by the sum
    over the earlier traces of (their largest tid + 1); trace 0 keeps its tids.  With
    ``same_process=True`` (default) every record gets asid 0 (one address space, one
    ``mmap_sem``); with False the asids are kept as they are (equal asids in two traces
    then mean a shared address space).  Every thread keeps the order of its records; with
    ``"round_robin"`` and ``"random"`` each source trace's whole record order is kept too.

    ``how`` chooses the global order (the engine replays each thread in its own order, so
    this matters for readers of the file and for tools that look at the global order):

    * ``"round_robin"``: one record from each trace in turn (trace 0, 1, ..., K-1, 0, ...);
      a trace that runs out drops out.
    * ``"time"``: by each record's start time on its thread's compute-only clock (the
      cumulative ``gap_ns`` of its thread up to and including the record, ignoring access
      and fault time); ties are broken by trace index, then record order.  Every trace
      needs a ``gap_ns`` column.  The threads of a multi-thread source are reordered
      among themselves by the same clock.
    * ``"random"``: a seeded random merge, every interleaving of the traces' record
      sequences being equally likely.

    Parameters
    ----------
    traces : sequence of Trace
        All with the same page size.
    how : str
        "round_robin", "time" or "random".
    seed : int, optional
        Seed for ``how="random"``.
    same_process : bool
        Put every record in address space 0 (default True).

    Returns
    -------
    Trace
        ``meta.notes`` lists the tid offset given to each trace.
    """
    traces = _check_traces(traces, "interleave")
    if how not in ("round_robin", "time", "random"):
        raise ValueError(f"how must be 'round_robin', 'time' or 'random', got {how!r}")
    lengths = np.array([len(t) for t in traces], np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    offsets, off = [], 0
    for t in traces:
        offsets.append(off)
        off += _max_tid(t) + 1
    max_tid = max(0, off - 1)

    if how == "round_robin":
        k, j = round_robin_positions(lengths)
        gather = starts[k] + j
    elif how == "random":
        rng = np.random.default_rng(seed)
        labels = np.repeat(np.arange(len(traces), dtype=narrow_dtype(max(len(traces) - 1, 0))),
                           lengths)
        rng.shuffle(labels)
        dest = np.argsort(labels, kind="stable")  # record r of the concatenation -> position
        gather = np.empty(total, np.int64)
        gather[dest] = np.arange(total, dtype=np.int64)
    else:
        missing = [i for i, t in enumerate(traces) if not t.has_gap]
        if missing:
            raise TraceFormatError(
                f"interleave(how='time') needs a gap_ns column in every trace; trace(s) "
                f"{missing} have none (use how='round_robin' or 'random', or add gaps)")
        clock = np.empty(total, np.uint64)
        for t, s in zip(traces, starts.tolist()):
            if len(t):
                _per_thread_clock(_dense(t.tid), np.asarray(t.gap_ns).astype(np.uint64, copy=False),
                                  clock[s:s + len(t)])
        gather = np.argsort(clock, kind="stable")

    cols = {}
    tid_dt = narrow_dtype(max_tid, minimum=_col_dtype(traces, "tid"))
    tid = np.empty(total, tid_dt)
    for t, s, o in zip(traces, starts.tolist(), offsets):
        part = tid[s:s + len(t)]
        part[:] = t.tid
        part += tid_dt.type(o)
    cols["tid"] = tid[gather]
    del tid
    if same_process:
        cols["asid"] = np.zeros(total, np.uint8)
    else:
        cols["asid"] = _concat_column(traces, "asid", _col_dtype(traces, "asid"))[gather]
    for name in ("addr", "op", "size", "gap_ns", "call"):
        if name in ("gap_ns", "call") and not any(name in t.columns for t in traces):
            continue
        cols[name] = _concat_column(traces, name, _col_dtype(traces, name))[gather]
    notes = "; ".join(f"trace {i} tids +{o}" for i, o in enumerate(offsets))
    src = f"interleave(how={how!r}" + (f", seed={seed!r}" if how == "random" else "") + \
        f", same_process={same_process})[{_sources(traces)}]"
    return Trace.from_columns(cols, TraceMeta(page_size=traces[0].page_size, source=src,
                                              notes=notes))


def relocate(trace, src_start, src_end, dst_start, asid=None, allow_merge=False):
    """Move the addresses in ``[src_start, src_end)`` by ``dst_start - src_start``.

    Records outside the source range keep their address.  Moving a range onto addresses
    the trace already uses outside the source range would silently merge two mappings, so
    it is refused (TraceFormatError naming how many records are in the way) unless
    ``allow_merge=True``.  Source and destination ranges may overlap each other (a shift by
    less than the range length): only addresses *outside* the source range count as in
    the way.  A shift that is not a multiple of the page size is allowed but changes which
    records share a page.

    Parameters
    ----------
    trace : Trace
    src_start, src_end : int
        The byte range to move (``src_end`` exclusive).
    dst_start : int
        Where ``src_start`` goes.
    asid : int, optional
        Move only records of this address space (default: all).
    allow_merge : bool
        Allow the destination to overlap addresses used outside the source range.

    Returns
    -------
    Trace
        Shares every column but ``addr`` with ``trace``.
    """
    _check_traces([trace], "relocate")
    src_start, src_end, dst_start = int(src_start), int(src_end), int(dst_start)
    if not 0 <= src_start <= src_end <= 1 << 64 or dst_start < 0:
        raise ValueError(f"invalid range [{src_start:#x}, {src_end:#x}) -> {dst_start:#x}")
    length = src_end - src_start
    dst_end = dst_start + length
    if dst_end > 1 << 64:
        raise ValueError(f"destination [{dst_start:#x}, {dst_end:#x}) passes the end of the "
                         "64-bit address space")
    shift = np.uint64((dst_start - src_start) % (1 << 64))  # wraps: a negative shift works
    s0, s1 = np.uint64(src_start), np.uint64(min(src_end, (1 << 64) - 1))
    d0, d1 = np.uint64(dst_start), np.uint64(min(dst_end, (1 << 64) - 1))
    full_src = src_end == 1 << 64
    full_dst = dst_end == 1 << 64
    addr_in = trace.addr
    asid_col = trace.asid
    out = np.empty(len(trace), np.uint64)
    in_way = 0
    for lo in range(0, len(trace), _CHUNK):
        hi = min(len(trace), lo + _CHUNK)
        a = np.asarray(addr_in[lo:hi]).astype(np.uint64, copy=False)
        m = (a >= s0) & ((a < s1) | full_src)
        if asid is not None:
            sel = np.asarray(asid_col[lo:hi]) == asid
            m &= sel
        if not allow_merge and length:
            other = ~m if asid is None else (~m & sel)
            in_way += int(np.count_nonzero(other & (a >= d0) & ((a < d1) | full_dst)))
        o = out[lo:hi]
        o[:] = a
        np.add(o, shift, out=o, where=m)
    if in_way:
        raise TraceFormatError(
            f"relocate(): {in_way} record(s) outside [{src_start:#x}, {src_end:#x}) already "
            f"use the destination [{dst_start:#x}, {dst_end:#x}); the ranges would merge "
            "(pass allow_merge=True if that is intended)")
    cols = dict(trace.columns)
    cols["addr"] = out
    src = (f"{trace.meta.source} [relocate {src_start:#x}-{src_end:#x} -> {dst_start:#x}"
           + (f" asid {asid}" if asid is not None else "") + "]")
    return Trace.from_columns(cols, TraceMeta(page_size=trace.page_size, source=src,
                                              notes=trace.meta.notes),
                              n_threads=trace._n_threads)


def _ops_lut(ops):
    if isinstance(ops, (str, int, np.integer, Op)):
        ops = [ops]
    lut = np.zeros(256, bool)
    for o in ops:
        lut[int(parse_op(o))] = True
    return lut


def _mask_filter(trace, mask, note):
    cols = {k: v[mask] for k, v in trace.columns.items()}
    return Trace.from_columns(cols, TraceMeta(page_size=trace.page_size,
                                              source=f"{trace.meta.source} [{note}]",
                                              notes=trace.meta.notes))


def filter_ops(trace, ops, exclude=False):
    """Keep the records whose operation is in ``ops`` (or, with ``exclude``, is not).

    Parameters
    ----------
    trace : Trace
    ops : str, int or sequence of them
        Operation names ("load", "S", "lock_w", ...) or codes.
    exclude : bool
        Drop the listed operations instead of keeping them.

    Returns
    -------
    Trace
    """
    _check_traces([trace], "filter_ops")
    lut = _ops_lut(ops)
    if exclude:
        lut = ~lut
    mask = lut[np.asarray(trace.op)]
    names = ",".join(Op(i).name.lower() for i in np.flatnonzero(lut[:len(Op)]))
    return _mask_filter(trace, mask, f"ops {names}")


def filter_threads(trace, tids, exclude=False):
    """Keep the records of the given thread ids (or, with ``exclude``, of the others).

    Parameters
    ----------
    trace : Trace
    tids : int or sequence of int
    exclude : bool
        Drop the listed threads instead of keeping them.

    Returns
    -------
    Trace
    """
    _check_traces([trace], "filter_threads")
    if isinstance(tids, (int, np.integer)):
        tids = [tids]
    want = np.unique(np.asarray(list(tids), dtype=np.int64))
    tid = np.asarray(trace.tid)
    if len(want) and want.min() >= 0 and want.max() < (1 << 22) and len(tid):
        lut = np.zeros(max(int(want.max()), int(tid.max())) + 1, bool)
        lut[want] = True
        mask = lut[tid]
    else:
        mask = np.isin(tid, want)
    if exclude:
        mask = ~mask
    return _mask_filter(trace, mask, ("without" if exclude else "threads") + " "
                        + ",".join(map(str, want.tolist())))


__all__ = ["interleave", "concat", "slice_records", "relocate", "filter_ops",
           "filter_threads"]


@njit
def _pages_after_first(a, z, op, shift, first_lock_op):
    """How many pages past its first an access at ``a`` of ``z`` bytes touches (0 for a
    lock record, and none past the top of the 64-bit address space)."""
    if op >= first_lock_op or z <= 1:
        return np.uint64(0)
    mask = np.uint64((1 << shift) - 1)
    top = np.uint64((1 << (64 - shift)) - 1)
    return min(((a & mask) + z - np.uint64(1)) >> np.uint64(shift),
               top - (a >> np.uint64(shift)))


@njit
def _piece_ends(addr, op, size, shift, first_lock_op):
    """For each record of a chunk, how many records the chunk's records up to it (itself
    included) become when each access is cut at the pages it touches."""
    ends = np.empty(len(addr), np.int64)
    n = 0
    for i in range(len(addr)):
        n += 1 + int(_pages_after_first(np.uint64(addr[i]), np.uint64(size[i]), op[i], shift,
                                        first_lock_op))
        ends[i] = n
    return ends


@njit
def _cut_at_pages(addr, op, size, shift, first_lock_op, rec, out_addr, out_size):
    """Fill ``rec`` (each piece's record), ``out_addr`` and ``out_size``: a piece runs to the
    end of its page, the last one to the end of the access."""
    page = np.uint64(1 << shift)
    mask = page - np.uint64(1)
    k = 0
    for i in range(len(addr)):
        start = np.uint64(addr[i])
        left = np.uint64(size[i])
        span = int(_pages_after_first(start, left, op[i], shift, first_lock_op))
        for j in range(span + 1):
            piece = left if j == span else page - (start & mask)
            rec[k] = i
            out_addr[k] = start
            out_size[k] = piece
            k += 1
            left -= piece
            start += piece
    return k


def split_page_crossings(columns, page_size):
    """The records of ``columns`` (a dict of equal-length arrays with ``addr``, ``op`` and
    ``size``) with every memory access that crosses a page boundary cut into one record per
    page it touches, in address order: the CPU checks each page an access touches and faults
    on each one not mapped (a 4-byte store at ``0x...ffd`` is a write fault on both pages).
    A record names one page, its ``addr``'s (docs/model.md section 1), so the readers of
    real programs' accesses (lackey's output, ``vmlab record --with lackey``) cut them as
    they read.

    Each piece keeps the record's other columns and its part of the bytes; a piece after the
    first has ``gap_ns`` 0 (it is the same instruction).  Lock records are left whole (their
    ``size`` is a range or a hold), and so is what would run past the top of the 64-bit
    address space.  Returns ``columns`` itself when no access crosses a page."""
    shift = int(page_size).bit_length() - 1
    addr, op, size = (np.asarray(columns[k]) for k in ("addr", "op", "size"))
    n = int(_piece_ends(addr, op, size, shift, int(Op.LOCK_W))[-1]) if len(addr) else 0
    if n == len(addr):
        return columns
    rec = np.empty(n, np.int64)
    out_addr = np.empty(n, np.uint64)
    out_size = np.empty(n, np.uint64)
    _cut_at_pages(addr, op, size, shift, int(Op.LOCK_W), rec, out_addr, out_size)
    out = {name: np.asarray(col)[rec] for name, col in columns.items()}
    out["addr"] = out_addr.astype(addr.dtype, copy=False)
    out["size"] = out_size.astype(size.dtype, copy=False)
    if "gap_ns" in out:
        later = np.zeros(n, bool)
        later[1:] = rec[1:] == rec[:-1]
        out["gap_ns"][later] = 0
    return out


def iter_page_crossings_split(columns, page_size, max_records):
    """:func:`split_page_crossings` of ``columns``, yielded as dicts of at most
    ``max_records`` records (more only for one access that alone touches more pages): a
    reader's chunk stays bounded when its accesses are large (a 4 GiB access is a million
    records at 4 KiB pages).  Yields ``columns`` itself when no access crosses a page."""
    shift = int(page_size).bit_length() - 1
    addr, op, size = (np.asarray(columns[k]) for k in ("addr", "op", "size"))
    if not len(addr):
        return
    ends = _piece_ends(addr, op, size, shift, int(Op.LOCK_W))
    if int(ends[-1]) == len(addr):
        yield columns
        return
    i0 = 0
    while i0 < len(addr):
        base = int(ends[i0 - 1]) if i0 else 0
        i1 = max(i0 + 1, int(np.searchsorted(ends, base + max_records, side="right")))
        yield split_page_crossings({k: v[i0:i1] for k, v in columns.items()}, page_size)
        i0 = i1
