"""Synthetic workloads: seeded, vectorised trace generators.

Every generator returns a :class:`~vmlab.trace.model.Trace` whose ``meta.source`` records
the call (``"synth:zipf(n=..., pages=..., alpha=..., seed=...)"``), so a trace file says
how to make it again.  Conventions shared by all generators:

* **Seeds.** ``seed`` (int or None) feeds :class:`numpy.random.SeedSequence`; independent
  streams (page choices, in-page offsets, load/store choice, per-thread streams, the Zipf
  rank permutation) are spawned from it, so switching ``aligned`` or ``write_fraction`` does
  not change which pages are chosen.  The same arguments give the same trace, bit for bit.
  ``seed=None`` draws fresh OS entropy and records it in ``meta.source`` as the seed, so
  even such a trace can be made again.
* **Addresses.** A generator touches ``pages`` pages from ``base_addr`` (default
  ``0x7f0000000000``, the x86-64 mmap area, i.e. a file mapping).  With ``aligned=True``
  (default) every address is the first byte of its page; with ``aligned=False`` each
  record gets a seeded random offset inside its page, a multiple of ``size``.
* **Compute gaps.** ``gap_ns=None`` (default) gives a trace *without* a ``gap_ns`` column,
  which the engine reads as 0 ns between a thread's records.  An integer gives a
  ``gap_ns`` column holding that constant for every record, the first one of each thread
  included (time from the thread's start to its first record).  The two workloads from
  the kernel history (:func:`lock_loop`, :func:`random_reads_with_mmap_loop`) always
  have gaps.
* **Operations.** ``op`` (a name such as ``"load"``/``"store"`` or a code) for every
  record, except that ``write_fraction`` > 0 turns that fraction of records, chosen at
  random, into ``STORE``.  ``size`` is the access size in bytes; a ``LOCK_W`` record's
  ``addr``/``size`` are the range its call modifies (0: the whole address space); a
  ``LOCK_R`` record's ``size`` is its read hold of ``mmap_lock`` in ns (0: the cost
  ``mmap_read_cs_ns``).
* **Columns** use the narrowest unsigned dtype that holds them (the trace model accepts
  any unsigned dtype), which keeps 10^8-record traces to about 1.2 GB.

Large traces are produced chunk by chunk (random numbers drawn into a reused buffer and
turned into addresses by numba kernels), so 10^8 records take a few seconds; see
``benchmarks/bench_synth.py``.

:data:`GENERATORS` maps a name to each generator; each has a numpydoc docstring whose
``Parameters`` section lists what a command line can expose.
"""
from __future__ import annotations

import math
import threading

import numpy as np
from numba import prange

from .._numba import njit
from ..model._checks import is_bool, is_number
from .model import Call, Op, Trace, TraceMeta, narrow_dtype, parse_call, parse_op

#: Default start of generated file mappings (x86-64 mmap area).
DEFAULT_BASE = 0x7F0000000000
#: Default address of the region an mmap/munmap loop maps and unmaps (away from files).
DEFAULT_LOCK_ADDR = 0x600000000000
#: Records generated per step (random numbers are drawn into a buffer this long).
_CHUNK = 1 << 20
#: Records per call of a parallel kernel (few calls: each is a thread barrier).
_PAR_CHUNK = 1 << 22
#: The address kernels are ``parallel=True``; numba's fallback "workqueue" threading
#: layer aborts when two Python threads enter parallel code at once, so calls are
#: serialised (one lock acquisition per chunk).
_PAR_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------
# Kernels


@njit(parallel=True)
def _zipf_addr(u, cdf, guide, resolved, perm, use_perm, base, page_size, out):
    """Inverse-CDF sampling: out[i] = base + page(rank) * page_size.

    rank = number of cdf entries <= u[i], exactly ``np.searchsorted(cdf, u, "right")``.
    The M = len(guide) - 1 buckets [k/M, (k+1)/M) have M a power of two, so ``k =
    int(u * M)`` is exact; ``guide[k]`` is the rank at the bucket's lower edge and
    ``guide[k + 1]`` an upper bound.  A bucket without a cdf point inside (most of the
    probability mass) is resolved by one lookup in ``resolved``; the others by a binary
    search between the two bounds.
    """
    m = len(guide) - 1
    for i in prange(len(u)):
        x = u[i]
        k = int(x * m)
        p = np.int64(resolved[k])
        if p < 0:
            lo = np.int64(guide[k])
            hi = np.int64(guide[k + 1])
            while lo < hi:
                mid = (lo + hi) >> 1
                if cdf[mid] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            p = np.int64(perm[lo]) if use_perm else lo
        out[i] = base + np.uint64(p) * page_size


@njit
def _scale_pages(pages, base, page_size, out):
    for i in range(len(pages)):
        out[i] = base + pages[i] * page_size


@njit(parallel=True)
def _seq_addr(start, n, per_page, stride, region, first, within, base, out):
    """Scan: record i (global index start+i) visits step (start+i)//per_page."""
    for i in prange(n):
        g = start + i
        step = g // per_page
        k = g - step * per_page
        off = (first + step * stride) % region
        out[i] = base + off + k * within


@njit
def _add_offsets(addr, offsets):
    for i in range(len(addr)):
        addr[i] += offsets[i]


# ---------------------------------------------------------------------------------------
# Helpers


def _seed(seed):
    """The seed to use and record: ``None`` becomes fresh OS entropy (an int), so the
    trace's ``meta.source`` still says how to make it again."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _streams(seed, k):
    """``k`` independent Generators spawned from ``seed``."""
    ss = np.random.SeedSequence(seed)
    return [np.random.Generator(np.random.PCG64(s)) for s in ss.spawn(k)]


def _fmt(key, v):
    if key.endswith("addr") and isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return hex(v)
    return repr(v)


def _source(name, **params):
    return f"synth:{name}(" + ", ".join(f"{k}={_fmt(k, v)}" for k, v in params.items()) + ")"


#: Bound of every whole-number parameter but addresses, sizes and ids: counts, gaps and
#: holds are added up in the engine's int64 (times below 2**62 ns, 146 years).
_INT_LIMIT = 62


def _check_pos(name, v, allow_zero=False, bits=_INT_LIMIT):
    """``v`` as an int: a whole number, positive (or 0 with ``allow_zero``), below
    ``2**bits``."""
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise TypeError(f"{name} must be an integer, got {v!r}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {v}")
    if v >> bits:
        raise ValueError(f"{name} must be below 2**{bits}, got {v}")
    return int(v)


def _check_real(name, v, lo=0.0, hi=math.inf, hi_open=False):
    """``v`` as a float: a real number (not a bool) in ``[lo, hi]`` (``[lo, hi)`` with
    ``hi_open``), finite."""
    if not is_number(v):
        raise TypeError(f"{name} must be a number, got {v!r}")
    v = float(v)
    if not (math.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi)):
        where = f"[{lo:g}, {hi:g}{')' if hi_open else ']'}" if math.isfinite(hi) else f">= {lo:g}"
        raise ValueError(f"{name} must be a finite number {'in ' if math.isfinite(hi) else ''}"
                         f"{where}, got {v}")
    return v


def _check_bool(name, v):
    """``v`` as a bool: True or False (not any value that happens to be truthy)."""
    if not is_bool(v):
        raise TypeError(f"{name} must be True or False, got {v!r}")
    return bool(v)


def _check_access(size, op, write_fraction, gap_ns, aligned=True):
    """The access columns' parameters shared by the generators, checked before any work:
    ``(size, op code, write_fraction, gap_ns)``."""
    _check_bool("aligned", aligned)
    size = _check_pos("size", size, bits=32)
    try:
        code = int(parse_op(op))
    except ValueError as e:
        raise ValueError(f"op: {e}") from None
    wf = _check_real("write_fraction", write_fraction, 0.0, 1.0)
    gap = None if gap_ns is None else _check_pos("gap_ns", gap_ns, allow_zero=True)
    return size, code, wf, gap


def _check_lock_range(addr, lock_size, addr_name="addr"):
    """``lock_size`` checked: a ``LOCK_W`` range ``[addr, addr + lock_size)`` inside the
    64-bit address space (0: the whole address space)."""
    ls = _check_pos("lock_size", lock_size, allow_zero=True, bits=64)
    addr = _check_pos(addr_name, addr, allow_zero=True, bits=64)
    if addr + ls >= 2**64:   # the end (exclusive) must fit in 64 bits
        raise ValueError(f"the range {addr:#x} + lock_size={ls} runs past the 64-bit address space")
    return ls


def _check_region(base_addr, pages, page_size):
    """``base_addr`` checked, and the region of ``pages`` pages from it inside the 64-bit
    address space (its exclusive end at most 2**64): addresses never wrap."""
    base_addr = _check_pos("base_addr", base_addr, allow_zero=True, bits=64)
    if base_addr + pages * page_size > 1 << 64:
        raise ValueError(f"{pages:,} pages of {page_size} bytes from base_addr {base_addr:#x} "
                         f"run past the 64-bit address space")
    return base_addr


def _check_page_size(page_size):
    TraceMeta(page_size=page_size)  # validates: positive power of two
    return int(page_size)


#: Largest number of guide-table buckets (tables cost 8 bytes per bucket or less).
_MAX_BUCKETS = 1 << 25


def _zipf_cdf(pages, alpha):
    """Cumulative Zipf weights of ranks 1..pages (float64, last entry exactly 1)."""
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    w = np.arange(1, pages + 1, dtype=np.float64) ** (-float(alpha))
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _zipf_tables(pages, alpha, perm):
    """cdf, guide table (M+1 entries, M a power of two) and resolved-bucket table."""
    cdf = _zipf_cdf(pages, alpha)
    m = 1 << max(0, int(pages - 1).bit_length())
    if pages <= 1 << 16:  # small tables stay in cache: 4x buckets resolve more samples
        m *= 4
    m = min(m, _MAX_BUCKETS)
    idx = np.int32 if pages < (1 << 31) else np.int64
    edges = np.arange(m + 1, dtype=np.float64) / m  # exact: m is a power of two
    guide = np.minimum(np.searchsorted(cdf, edges, side="right"), pages - 1).astype(idx)
    single = guide[:-1] == guide[1:]
    if perm is None:
        resolved = np.where(single, guide[:-1], -1).astype(idx)
    else:
        resolved = np.where(single, perm[guide[:-1]], -1).astype(idx)
    return cdf, guide, resolved


def zipf_ranks(u, cdf):
    """Reference inverse-CDF sampling (plain ``searchsorted``), for tests and small n."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _fill_zipf(out, rng, pages, alpha, perm, base, page_size):
    if perm is not None:
        perm = perm.astype(np.int32 if pages < (1 << 31) else np.int64)
    cdf, guide, resolved = _zipf_tables(pages, alpha, perm)
    use_perm = perm is not None
    perm_arr = perm if use_perm else np.zeros(1, guide.dtype)
    buf = np.empty(min(_PAR_CHUNK, len(out)), np.float64)
    for lo in range(0, len(out), _PAR_CHUNK):
        hi = min(len(out), lo + _PAR_CHUNK)
        u = buf[: hi - lo]
        rng.random(out=u)
        with _PAR_LOCK:
            _zipf_addr(u, cdf, guide, resolved, perm_arr, use_perm, np.uint64(base),
                       np.uint64(page_size), out[lo:hi])


def _fill_uniform(out, rng, pages, base, page_size):
    for lo in range(0, len(out), _CHUNK):
        hi = min(len(out), lo + _CHUNK)
        p = rng.integers(0, pages, size=hi - lo, dtype=np.uint64)
        _scale_pages(p, np.uint64(base), np.uint64(page_size), out[lo:hi])


def _fill_seq(out, start_index, per_page, stride, region, first, within, base):
    with _PAR_LOCK:
        _seq_addr(np.uint64(start_index), len(out), np.uint64(per_page), np.uint64(stride),
                  np.uint64(region), np.uint64(first), np.uint64(within), np.uint64(base),
                  out)


def _finish(addr, *, rng_off, rng_op, aligned, size, page_size, op, write_fraction, tid=None,
            asid=None, gap_ns=None, source="", notes=""):
    """Add in-page offsets and build the other columns."""
    n = len(addr)
    size, code, write_fraction, gap_ns = _check_access(size, op, write_fraction, gap_ns,
                                                       aligned)
    if not aligned:
        if size > page_size:
            raise ValueError(f"size ({size}) must not exceed page_size ({page_size}) "
                             "when aligned=False")
        slots = page_size // size
        for lo in range(0, n, _CHUNK):
            hi = min(n, lo + _CHUNK)
            off = rng_off.integers(0, slots, size=hi - lo, dtype=np.uint64)
            off *= np.uint64(size)
            _add_offsets(addr[lo:hi], off)
    op_col = np.full(n, code, np.uint8)
    if write_fraction:
        for lo in range(0, n, _CHUNK):
            hi = min(n, lo + _CHUNK)
            op_col[lo:hi][rng_op.random(hi - lo) < write_fraction] = Op.STORE
    size_col = np.full(n, size, narrow_dtype(size))
    if code >= Op.LOCK_W and not write_fraction:   # lock records: the whole space / the cost
        size_col[:] = 0
    if tid is None:
        tid = np.zeros(n, np.uint8)
    if asid is None:
        asid = np.zeros(n, np.uint8)
    gap = None
    if gap_ns is not None:
        gap = np.full(n, gap_ns, narrow_dtype(gap_ns))
    return Trace(addr, op=op_col, tid=tid, asid=asid, size=size_col, gap_ns=gap,
                 meta=TraceMeta(page_size=page_size, source=source, notes=notes))


def _round_robin_tids(n_threads, n_per_thread):
    return np.tile(np.arange(n_threads, dtype=narrow_dtype(max(n_threads - 1, 0))), n_per_thread)


# ---------------------------------------------------------------------------------------
# Single-thread generators


def sequential(n, pages, per_page=1, stride_bytes=None, start_page=0, base_addr=DEFAULT_BASE,
               page_size=4096, aligned=True, size=8, op="load", write_fraction=0.0,
               gap_ns=None, seed=None):
    """A scan over ``pages`` pages in address order, wrapping around at the end.

    The scan makes ``per_page`` consecutive accesses at each step, then moves
    ``stride_bytes`` forward (default one page).  Access ``k`` of a step is at byte
    ``k * (page_size // per_page)`` (rounded down to a multiple of ``size``) of the step's
    address, so the accesses spread over the page.  The scanned region is
    ``[base_addr, base_addr + pages * page_size)``; offsets wrap modulo its length.

    Parameters
    ----------
    n : int
        Number of records.
    pages : int
        Length of the scanned region, in pages.
    per_page : int
        Consecutive accesses per step (default 1).
    stride_bytes : int, optional
        Distance between steps in bytes (default ``page_size``).
    start_page : int
        Page of the region where the scan starts (default 0).
    base_addr : int
        First address of the region (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    aligned : bool
        If False, add a seeded random in-page offset to each access's page start instead
        of the ``per_page`` spreading (default True).
    size : int
        Access size in bytes (default 8).
    op : str
        Operation of every record: load, store, ifetch or modify (default load).
    write_fraction : float
        Fraction of records turned into stores at random (default 0).
    gap_ns : int, optional
        Constant compute time before each record, in ns (default: no gap column).
    seed : int, optional
        Seed for the random parts (offsets, stores); the scan itself is deterministic.

    Returns
    -------
    Trace
    """
    _check_access(size, op, write_fraction, gap_ns, aligned)
    n = _check_pos("n", n, allow_zero=True)
    pages = _check_pos("pages", pages)
    per_page = _check_pos("per_page", per_page)
    page_size = _check_page_size(page_size)
    stride = page_size if stride_bytes is None else _check_pos("stride_bytes", stride_bytes)
    size = _check_pos("size", size)
    region = pages * page_size
    base_addr = _check_region(base_addr, pages, page_size)
    within = (page_size // per_page) // size * size if aligned else 0
    first = (_check_pos("start_page", start_page, allow_zero=True) % pages) * page_size
    addr = np.empty(n, np.uint64)
    _fill_seq(addr, 0, per_page, stride, region, first, within, base_addr)
    seed = _seed(seed)
    rng_off, rng_op = _streams(seed, 2)
    src = _source("sequential", n=n, pages=pages, per_page=per_page, stride_bytes=stride,
                  start_page=start_page, base_addr=base_addr, page_size=page_size,
                  aligned=aligned, size=size, op=str(op), write_fraction=write_fraction,
                  gap_ns=gap_ns, seed=seed)
    return _finish(addr, rng_off=rng_off, rng_op=rng_op, aligned=aligned, size=size,
                   page_size=page_size, op=op, write_fraction=write_fraction, gap_ns=gap_ns,
                   source=src)


def strided(n, stride_bytes, pages=None, base_addr=DEFAULT_BASE, page_size=4096, size=8,
            op="load", write_fraction=0.0, gap_ns=None, seed=None):
    """Accesses ``stride_bytes`` apart: record i is at ``base_addr + i * stride_bytes``.

    Sub-page strides (e.g. 64 bytes, one cache line) touch each page several times in a
    row; strides above a page skip pages.  With ``pages`` set, offsets wrap modulo
    ``pages * page_size`` (a repeated scan of a region); without it the addresses grow.

    Parameters
    ----------
    n : int
        Number of records.
    stride_bytes : int
        Distance between consecutive accesses, in bytes.
    pages : int, optional
        Region length in pages at which the offsets wrap (default: no wrap).
    base_addr : int
        First address (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    size : int
        Access size in bytes (default 8).
    op : str
        Operation of every record (default load).
    write_fraction : float
        Fraction of records turned into stores at random (default 0).
    gap_ns : int, optional
        Constant compute time before each record, in ns (default: no gap column).
    seed : int, optional
        Seed for the stores (the addresses are deterministic).

    Returns
    -------
    Trace
    """
    _check_access(size, op, write_fraction, gap_ns)
    n = _check_pos("n", n, allow_zero=True)
    stride = _check_pos("stride_bytes", stride_bytes)
    page_size = _check_page_size(page_size)
    if pages is None:
        region = max(1, n) * stride  # never wraps
        base_addr = _check_pos("base_addr", base_addr, allow_zero=True, bits=64)
        if base_addr + region >= 1 << 64:
            raise ValueError(f"n={n:,} records {stride:,} bytes apart from base_addr "
                             f"{base_addr:#x} run past the 64-bit address space")
    else:
        region = _check_pos("pages", pages) * page_size
        base_addr = _check_region(base_addr, region // page_size, page_size)
    addr = np.empty(n, np.uint64)
    _fill_seq(addr, 0, 1, stride, region, 0, 0, base_addr)
    seed = _seed(seed)
    rng_off, rng_op = _streams(seed, 2)
    src = _source("strided", n=n, stride_bytes=stride, pages=pages, base_addr=base_addr,
                  page_size=page_size, size=size, op=str(op), write_fraction=write_fraction,
                  gap_ns=gap_ns, seed=seed)
    return _finish(addr, rng_off=rng_off, rng_op=rng_op, aligned=True, size=size,
                   page_size=page_size, op=op, write_fraction=write_fraction, gap_ns=gap_ns,
                   source=src)


def uniform(n, pages, base_addr=DEFAULT_BASE, page_size=4096, aligned=True, size=8, op="load",
            write_fraction=0.0, gap_ns=None, seed=None):
    """Each record touches a page drawn uniformly at random from ``pages`` pages.

    Parameters
    ----------
    n : int
        Number of records.
    pages : int
        Number of pages in the region, starting at ``base_addr``.
    base_addr : int
        First address of the region (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    aligned : bool
        Addresses at page starts (default True) or at random in-page offsets.
    size : int
        Access size in bytes (default 8).
    op : str
        Operation of every record (default load).
    write_fraction : float
        Fraction of records turned into stores at random (default 0).
    gap_ns : int, optional
        Constant compute time before each record, in ns (default: no gap column).
    seed : int, optional
        Random seed.

    Returns
    -------
    Trace
    """
    _check_access(size, op, write_fraction, gap_ns, aligned)
    n = _check_pos("n", n, allow_zero=True)
    pages = _check_pos("pages", pages)
    page_size = _check_page_size(page_size)
    base_addr = _check_region(base_addr, pages, page_size)
    seed = _seed(seed)
    rng, rng_off, rng_op = _streams(seed, 3)
    addr = np.empty(n, np.uint64)
    _fill_uniform(addr, rng, pages, base_addr, page_size)
    src = _source("uniform", n=n, pages=pages, base_addr=base_addr, page_size=page_size,
                  aligned=aligned, size=size, op=str(op), write_fraction=write_fraction,
                  gap_ns=gap_ns, seed=seed)
    return _finish(addr, rng_off=rng_off, rng_op=rng_op, aligned=aligned, size=size,
                   page_size=page_size, op=op, write_fraction=write_fraction, gap_ns=gap_ns,
                   source=src)


def zipf(n, pages, alpha=1.0, shuffle=True, base_addr=DEFAULT_BASE, page_size=4096,
         aligned=True, size=8, op="load", write_fraction=0.0, gap_ns=None, seed=None):
    """Pages drawn from a bounded Zipf law: rank r (1..pages) has probability ∝ r**-alpha.

    Any ``alpha >= 0`` works (``alpha=0`` is uniform; 1 and below are allowed, unlike
    ``numpy.random.Generator.zipf``, which needs alpha > 1 and is unbounded).  Ranks are
    sampled by inverse CDF on the cumulative weights (the result equals
    ``np.searchsorted(cdf, u, side="right")`` for uniform ``u``; a guide table makes each
    search about one step).  With ``shuffle=True`` (default) a seeded random permutation
    maps ranks to pages, so the hot pages are scattered over the region; with
    ``shuffle=False`` rank r is page r-1 (hot pages first).

    Parameters
    ----------
    n : int
        Number of records.
    pages : int
        Number of pages in the region (the Zipf support).
    alpha : float
        Zipf exponent, >= 0 (default 1.0).
    shuffle : bool
        Scatter the ranks over the pages with a seeded permutation (default True).
    base_addr : int
        First address of the region (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    aligned : bool
        Addresses at page starts (default True) or at random in-page offsets.
    size : int
        Access size in bytes (default 8).
    op : str
        Operation of every record (default load).
    write_fraction : float
        Fraction of records turned into stores at random (default 0).
    gap_ns : int, optional
        Constant compute time before each record, in ns (default: no gap column).
    seed : int, optional
        Random seed.

    Returns
    -------
    Trace
    """
    _check_bool("shuffle", shuffle)
    _check_access(size, op, write_fraction, gap_ns, aligned)
    alpha = _check_real("alpha", alpha)
    n = _check_pos("n", n, allow_zero=True)
    pages = _check_pos("pages", pages)
    page_size = _check_page_size(page_size)
    base_addr = _check_region(base_addr, pages, page_size)
    alpha = float(alpha)
    seed = _seed(seed)
    rng, rng_perm, rng_off, rng_op = _streams(seed, 4)
    perm = rng_perm.permutation(pages).astype(np.int64) if shuffle else None
    addr = np.empty(n, np.uint64)
    _fill_zipf(addr, rng, pages, alpha, perm, base_addr, page_size)
    src = _source("zipf", n=n, pages=pages, alpha=alpha, shuffle=shuffle, base_addr=base_addr,
                  page_size=page_size, aligned=aligned, size=size, op=str(op),
                  write_fraction=write_fraction, gap_ns=gap_ns, seed=seed)
    return _finish(addr, rng_off=rng_off, rng_op=rng_op, aligned=aligned, size=size,
                   page_size=page_size, op=op, write_fraction=write_fraction, gap_ns=gap_ns,
                   source=src)


def phases(n=None, phases=None, n_phases=4, ws_pages=1024, overlap=0.0, dist="uniform",
           alpha=1.0, base_addr=DEFAULT_BASE, page_size=4096, aligned=True, size=8, op="load",
           write_fraction=0.0, gap_ns=None, seed=None):
    """A program whose working set changes: consecutive phases over different page sets.

    Either give ``phases``, a list of ``(length, ws_pages, offset_pages)`` tuples (phase k
    makes ``length`` records over pages ``[offset_pages, offset_pages + ws_pages)`` of the
    region), or give ``n``, ``n_phases`` and ``ws_pages``: ``n`` records split into
    ``n_phases`` phases of (nearly) equal length, phase k starting at page
    ``round(k * ws_pages * (1 - overlap))``, so consecutive working sets share an
    ``overlap`` fraction of their pages.  Inside a phase, pages are drawn uniformly or
    from a (shuffled) Zipf law; each phase has its own permutation.

    Parameters
    ----------
    n : int, optional
        Total number of records (required unless ``phases`` is given; if both are given
        they must agree).
    phases : list of (int, int, int), optional
        Explicit ``(length, ws_pages, offset_pages)`` per phase.
    n_phases : int
        Number of phases when ``phases`` is not given (default 4).
    ws_pages : int
        Working-set size of each phase in pages when ``phases`` is not given (default 1024).
    overlap : float
        Fraction of a phase's pages shared with the next one, in [0, 1) (default 0).
    dist : str
        Distribution inside a phase: "uniform" or "zipf" (default uniform).
    alpha : float
        Zipf exponent when ``dist="zipf"`` (default 1.0).
    base_addr : int
        First address of the region (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    aligned : bool
        Addresses at page starts (default True) or at random in-page offsets.
    size : int
        Access size in bytes (default 8).
    op : str
        Operation of every record (default load).
    write_fraction : float
        Fraction of records turned into stores at random (default 0).
    gap_ns : int, optional
        Constant compute time before each record, in ns (default: no gap column).
    seed : int, optional
        Random seed.

    Returns
    -------
    Trace
    """
    _check_access(size, op, write_fraction, gap_ns, aligned)
    alpha = _check_real("alpha", alpha)
    page_size = _check_page_size(page_size)
    if dist not in ("uniform", "zipf"):
        raise ValueError(f"dist must be 'uniform' or 'zipf', got {dist!r}")
    if phases is None:
        if n is None:
            raise ValueError("phases() needs n (with n_phases and ws_pages) or a phases list")
        n = _check_pos("n", n, allow_zero=True)
        n_phases = _check_pos("n_phases", n_phases)
        ws_pages = _check_pos("ws_pages", ws_pages)
        overlap = _check_real("overlap", overlap, 0.0, 1.0, hi_open=True)
        bounds = np.linspace(0, n, n_phases + 1).round().astype(np.int64)
        spec = [(int(bounds[k + 1] - bounds[k]), ws_pages,
                 int(round(k * ws_pages * (1.0 - overlap)))) for k in range(n_phases)]
    else:
        if not isinstance(phases, (list, tuple)):
            raise TypeError("phases must be a list of (length, ws_pages, offset_pages) "
                            f"triples, e.g. [(1000, 64, 0), (1000, 64, 32)], got {phases!r}")
        spec = []
        for k, ph in enumerate(phases):
            if not isinstance(ph, (list, tuple)) or len(ph) != 3:
                raise ValueError(f"phase {k}: expected (length, ws_pages, offset_pages), got {ph!r}")
            spec.append((_check_pos(f"phase {k} length", ph[0], allow_zero=True),
                         _check_pos(f"phase {k} ws_pages", ph[1]),
                         _check_pos(f"phase {k} offset_pages", ph[2], allow_zero=True)))
        total = sum(s[0] for s in spec)
        if n is not None and n != total:
            raise ValueError(f"n={n} but the phases add up to {total} records")
        n = total
    seed = _seed(seed)
    rng, rng_perm, rng_off, rng_op = _streams(seed, 4)
    addr = np.empty(n, np.uint64)
    lo = 0
    base_addr = _check_region(base_addr, max((off + ws for _, ws, off in spec), default=0),
                              page_size)
    for length, ws, off in spec:
        out = addr[lo:lo + length]
        b = base_addr + off * page_size
        if dist == "uniform":
            _fill_uniform(out, rng, ws, b, page_size)
        else:
            perm = rng_perm.permutation(ws).astype(np.int64)
            _fill_zipf(out, rng, ws, float(alpha), perm, b, page_size)
        lo += length
    src = _source("phases", n=n, phases=[tuple(s) for s in spec], dist=dist,
                  alpha=float(alpha), base_addr=base_addr, page_size=page_size,
                  aligned=aligned, size=size, op=str(op), write_fraction=write_fraction,
                  gap_ns=gap_ns, seed=seed)
    return _finish(addr, rng_off=rng_off, rng_op=rng_op, aligned=aligned, size=size,
                   page_size=page_size, op=op, write_fraction=write_fraction, gap_ns=gap_ns,
                   source=src)


# ---------------------------------------------------------------------------------------
# Multi-thread workloads


def shared_file(n_threads, n_per_thread, pages, pattern="uniform", alpha=1.0, shuffle=True,
                base_addr=DEFAULT_BASE, page_size=4096, aligned=True, size=8, op="load",
                write_fraction=0.0, gap_ns=None, seed=None):
    """Several threads of one process accessing one shared file mapping.

    Records are interleaved round-robin (thread 0, 1, ..., n_threads-1, 0, 1, ...); thread
    ``t`` has tid ``t``.  Each thread draws from its own seeded stream.  With
    ``pattern="zipf"`` all threads share one rank-to-page permutation (the file has one set
    of hot pages).  With ``pattern="sequential"`` thread ``t`` scans the whole file starting
    at page ``t * pages // n_threads``, wrapping around (staggered scans).

    Parameters
    ----------
    n_threads : int
        Number of threads.
    n_per_thread : int
        Records per thread.
    pages : int
        Size of the file mapping in pages.
    pattern : str
        "uniform", "zipf" or "sequential" (default uniform).
    alpha : float
        Zipf exponent for ``pattern="zipf"`` (default 1.0).
    shuffle : bool
        Scatter Zipf ranks over the file with a seeded permutation (default True).
    base_addr : int
        Start of the mapping (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    aligned : bool
        Addresses at page starts (default True) or at random in-page offsets.
    size : int
        Access size in bytes (default 8).
    op : str
        Operation of every record (default load).
    write_fraction : float
        Fraction of records turned into stores at random (default 0).
    gap_ns : int, optional
        Constant compute time before each record, in ns (default: no gap column).
    seed : int, optional
        Random seed.

    Returns
    -------
    Trace
    """
    _check_bool("shuffle", shuffle)
    _check_access(size, op, write_fraction, gap_ns, aligned)
    alpha = _check_real("alpha", alpha)
    T = _check_pos("n_threads", n_threads)
    m = _check_pos("n_per_thread", n_per_thread, allow_zero=True)
    pages = _check_pos("pages", pages)
    page_size = _check_page_size(page_size)
    base_addr = _check_region(base_addr, pages, page_size)
    if pattern not in ("uniform", "zipf", "sequential"):
        raise ValueError(f"pattern must be 'uniform', 'zipf' or 'sequential', got {pattern!r}")
    seed = _seed(seed)
    rng_perm, rng_off, rng_op = _streams(seed, 3)
    thread_ss = np.random.SeedSequence(seed).spawn(4)[3].spawn(T)
    thread_rngs = [np.random.Generator(np.random.PCG64(s)) for s in thread_ss]
    perm = None
    if pattern == "zipf" and shuffle:
        perm = rng_perm.permutation(pages).astype(np.int64)
    addr = np.empty(T * m, np.uint64)
    grid = addr.reshape(m, T) if T * m else addr.reshape(0, T)
    col = np.empty(m, np.uint64)
    for t in range(T):
        if pattern == "uniform":
            _fill_uniform(col, thread_rngs[t], pages, base_addr, page_size)
        elif pattern == "zipf":
            _fill_zipf(col, thread_rngs[t], pages, float(alpha), perm, base_addr, page_size)
        else:
            _fill_seq(col, 0, 1, page_size, pages * page_size, (t * pages // T) * page_size,
                      0, base_addr)
        grid[:, t] = col
    tid = _round_robin_tids(T, m)
    src = _source("shared_file", n_threads=T, n_per_thread=m, pages=pages, pattern=pattern,
                  alpha=float(alpha), shuffle=shuffle, base_addr=base_addr,
                  page_size=page_size, aligned=aligned, size=size, op=str(op),
                  write_fraction=write_fraction, gap_ns=gap_ns, seed=seed)
    return _finish(addr, rng_off=rng_off, rng_op=rng_op, aligned=aligned, size=size,
                   page_size=page_size, op=op, write_fraction=write_fraction, tid=tid,
                   gap_ns=gap_ns, source=src)


def lock_loop(n, tid=0, cs_gap_ns=100, addr=DEFAULT_LOCK_ADDR, asid=0, page_size=4096,
              lock_size=4096, calls=None):
    """A thread that only calls mmap/munmap: ``n`` ``LOCK_W`` records.

    With ``calls=None`` each record makes the thread take ``mmap_sem`` for write for the
    engine's ``mmap_cs_ns`` (one mmap+munmap pair, a writer of unknown call); ``calls``
    names the records' calls instead, cycled over the records (``("mmap", "munmap")``:
    alternate calls, each with its own hold, docs/model.md 15.12).  ``cs_gap_ns`` is the
    thread's own time between two calls (loop overhead), stored in the ``gap_ns`` column of
    every record, the first included.  All records carry the range they modify, ``addr``
    (the region being mapped, away from the file mappings) and size ``lock_size``.

    Parameters
    ----------
    n : int
        Number of mmap/munmap calls.
    tid : int
        Thread id of the loop (default 0).
    cs_gap_ns : int
        Compute time before each call, in ns (default 100).
    addr : int
        Address of the region mapped and unmapped (default 0x600000000000).
    asid : int
        Address space (default 0).
    page_size : int
        Bytes per page (default 4096).
    lock_size : int
        Bytes of the region each call maps and unmaps (default 4096, one page; 0 names the
        whole address space, the meaning of ``LOCK_W`` records before writers had ranges).
    calls : str or sequence of str, optional
        The records' calls (``"mmap"``, ``"munmap"``, ``"mprotect"``, ``"mremap"``,
        ``"brk"``), cycled; default none (no ``call`` column: each record one pair).

    Returns
    -------
    Trace
    """
    n = _check_pos("n", n, allow_zero=True)
    codes = None
    if calls is not None:
        names = tuple(calls) if isinstance(calls, (list, tuple, np.ndarray)) else (calls,)
        if not names:
            raise ValueError("calls must name at least one call, or be None")
        try:
            codes = np.array([parse_call(c) for c in names], np.uint8)
        except ValueError as e:
            raise ValueError(f"calls: {e}") from None
    tid = _check_pos("tid", tid, allow_zero=True, bits=32)
    asid = _check_pos("asid", asid, allow_zero=True, bits=12)
    g = _check_pos("cs_gap_ns", cs_gap_ns, allow_zero=True)
    page_size = _check_page_size(page_size)
    ls = _check_lock_range(addr, lock_size)
    extra = {} if codes is None else {"calls": ",".join(Call(c).name.lower() for c in codes)}
    src = _source("lock_loop", n=n, tid=tid, cs_gap_ns=g, addr=addr, asid=asid,
                  page_size=page_size, lock_size=ls, **extra)
    return Trace(np.full(n, addr, np.uint64), op=np.full(n, Op.LOCK_W, np.uint8),
                 tid=np.full(n, tid, narrow_dtype(tid)), asid=np.full(n, asid, narrow_dtype(asid)),
                 size=np.full(n, ls, narrow_dtype(ls)), gap_ns=np.full(n, g, narrow_dtype(g)),
                 call=None if codes is None else np.resize(codes, n),
                 meta=TraceMeta(page_size=page_size, source=src), _n_threads=1 if n else 0)


def reverse_file(n_threads=64, pages=1 << 16, split=True, base_addr=DEFAULT_BASE,
                 page_size=4096, size=8, op="load", gap_ns=None):
    """Ying Han's 2008 workload: many threads faulting a large file in reverse page order.

    The benchmark posted with the 2008 page-fault-retry patch had a high count of threads
    (64) each faulting in pages of one large mmapped file, in reverse order, while the
    measured quantity was how other threads' mmap/munmap calls fared.  Which pages each
    thread read is not settled by the sources at hand, so both readings are offered:

    * ``split=True`` (default): the file is cut into ``n_threads`` contiguous slices
      (``np.array_split`` sizes: the first ``pages % n_threads`` slices get one page more)
      and thread ``t`` reads slice ``t`` from its last page to its first.  Every page is
      faulted exactly once: ``pages`` records in all.
    * ``split=False``: every thread reads the whole file from the last page to the first
      (``n_threads * pages`` records; threads fault on the same pages).

    One access per page, at the page start.  Records are interleaved round-robin across
    threads (a thread whose slice is exhausted drops out); thread ``t`` has tid ``t``.

    Parameters
    ----------
    n_threads : int
        Number of threads (default 64).
    pages : int
        File size in pages (default 65536, 256 MiB of 4 KiB pages).
    split : bool
        Threads read disjoint slices (default True) or the whole file each.
    base_addr : int
        Start of the file mapping (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    size : int
        Access size in bytes (default 8).
    op : str
        Operation of every record (default load).
    gap_ns : int, optional
        Constant compute time before each record, in ns (default: no gap column).

    Returns
    -------
    Trace
    """
    _check_bool("split", split)
    _check_access(size, op, 0.0, gap_ns)
    T = _check_pos("n_threads", n_threads)
    pages = _check_pos("pages", pages)
    page_size = _check_page_size(page_size)
    base_addr = _check_region(base_addr, pages, page_size)
    if split:
        lengths = np.full(T, pages // T, np.int64)
        lengths[: pages % T] += 1
        firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    else:
        lengths = np.full(T, pages, np.int64)
        firsts = np.zeros(T, np.int64)
    order_t, order_j = round_robin_positions(lengths)
    # record (thread t, j-th access) reads page firsts[t] + lengths[t] - 1 - j
    page = firsts[order_t] + lengths[order_t] - 1 - order_j
    addr = np.uint64(base_addr) + page.astype(np.uint64) * np.uint64(page_size)
    tid = order_t.astype(narrow_dtype(T - 1))
    src = _source("reverse_file", n_threads=T, pages=pages, split=split, base_addr=base_addr,
                  page_size=page_size, size=size, op=str(op), gap_ns=gap_ns)
    return _finish(addr, rng_off=None, rng_op=None, aligned=True, size=size,
                   page_size=page_size, op=op, write_fraction=0.0, tid=tid, gap_ns=gap_ns,
                   source=src)


def random_reads_with_mmap_loop(n_reads=1000, pages=1 << 20, n_lock_ops=300_000,
                                read_gap_ns=1000, lock_gap_ns=500, base_addr=DEFAULT_BASE,
                                lock_addr=DEFAULT_LOCK_ADDR, page_size=4096, aligned=True,
                                size=8, seed=None, lock_size=4096, n_lock_reads=0,
                                lock_read_gap_ns=10_000, lock_read_hold_ns=0):
    """Michel Lespinasse's 2010 workload: random reads of a big file beside an mmap loop.

    Thread 0 reads ``n_reads`` pages of a ``pages``-page file mapping chosen uniformly at
    random (every read is likely a major fault); thread 1 is an mmap/munmap loop of
    ``n_lock_ops`` ``LOCK_W`` records at ``lock_addr``.  His patch description: thread A's
    random reads ran at about 55/s and thread B's loop at 55 iterations/s before the retry
    patch, 15,000/s after.

    Both threads have gaps: ``read_gap_ns`` (default 1 µs: picking an offset and touching
    a byte) before each read and ``lock_gap_ns`` (default 0.5 µs of loop overhead) before
    each mmap/munmap call.  The records are ordered by each thread's cumulative gap (the
    order they would issue in if faults and critical sections took no time; ties: thread 0
    first).  The engine replays each thread in its own order anyway; this ordering only
    makes the file read sensibly.  The defaults give the loop enough calls (300,000) to
    outlast 1,000 disk reads at 18 ms even at 15,000 calls/s.

    Optionally a third thread (tid 2) reads ``mmap_lock`` without faulting: ``n_lock_reads``
    ``LOCK_R`` records (docs/model.md 15.9: a ``/proc/PID/maps`` reader, ``mincore``...),
    ``lock_read_gap_ns`` apart, each holding the lock ``lock_read_hold_ns`` (0: the cost
    ``mmap_read_cs_ns``); it queues behind the loop's writers like any reader.

    Parameters
    ----------
    n_reads : int
        Random reads by thread 0 (default 1000).
    pages : int
        File size in pages (default 1048576, 4 GiB of 4 KiB pages).
    n_lock_ops : int
        mmap/munmap calls by thread 1 (default 300000).
    read_gap_ns : int
        Compute time before each read, in ns (default 1000).
    lock_gap_ns : int
        Compute time before each mmap/munmap call, in ns (default 500).
    base_addr : int
        Start of the file mapping (default 0x7f0000000000).
    lock_addr : int
        Address the loop maps and unmaps (default 0x600000000000).
    page_size : int
        Bytes per page (default 4096).
    aligned : bool
        Reads at page starts (default True) or at random in-page offsets.
    size : int
        Read size in bytes (default 8).
    seed : int, optional
        Random seed.
    lock_size : int
        Bytes each mmap/munmap call maps at ``lock_addr`` (default 4096: a new mapping that
        touches no file VMA, as in his test; 0 names the whole address space).
    n_lock_reads : int
        ``LOCK_R`` records of thread 2 (default 0: no such thread).
    lock_read_gap_ns : int
        Compute time before each, in ns (default 10000).
    lock_read_hold_ns : int
        Each one's hold of ``mmap_lock`` for read, in ns (default 0: ``mmap_read_cs_ns``).

    Returns
    -------
    Trace
    """
    _check_bool("aligned", aligned)
    nq = _check_pos("n_lock_reads", n_lock_reads, allow_zero=True)
    qg = _check_pos("lock_read_gap_ns", lock_read_gap_ns, allow_zero=True)
    qh = _check_pos("lock_read_hold_ns", lock_read_hold_ns, allow_zero=True)
    nr = _check_pos("n_reads", n_reads, allow_zero=True)
    nl = _check_pos("n_lock_ops", n_lock_ops, allow_zero=True)
    pages = _check_pos("pages", pages)
    rg = _check_pos("read_gap_ns", read_gap_ns, allow_zero=True)
    lg = _check_pos("lock_gap_ns", lock_gap_ns, allow_zero=True)
    page_size = _check_page_size(page_size)
    size = _check_pos("size", size, bits=32)
    ls = _check_lock_range(lock_addr, lock_size, "lock_addr")
    seed = _seed(seed)
    reads = uniform(nr, pages, base_addr=base_addr, page_size=page_size, aligned=aligned,
                    size=size, seed=seed)
    t_read = np.arange(1, nr + 1, dtype=np.uint64) * np.uint64(rg)
    t_lock = np.arange(1, nl + 1, dtype=np.uint64) * np.uint64(lg)
    t_q = np.arange(1, nq + 1, dtype=np.uint64) * np.uint64(qg)
    order = np.argsort(np.concatenate((t_read, t_lock, t_q)), kind="stable")
    addr = np.concatenate((reads.addr, np.full(nl, lock_addr, np.uint64),
                           np.zeros(nq, np.uint64)))[order]
    op = np.concatenate((np.zeros(nr, np.uint8), np.full(nl, Op.LOCK_W, np.uint8),
                         np.full(nq, Op.LOCK_R, np.uint8)))[order]
    tid = np.concatenate((np.zeros(nr, np.uint8), np.ones(nl, np.uint8),
                          np.full(nq, 2, np.uint8)))[order]
    szt = narrow_dtype(max(size, ls, qh))
    sz = np.concatenate((np.full(nr, size, szt), np.full(nl, ls, szt),
                         np.full(nq, qh, szt)))[order]
    gap = np.concatenate((np.full(nr, rg, np.uint64), np.full(nl, lg, np.uint64),
                          np.full(nq, qg, np.uint64)))[order]
    gap = gap.astype(narrow_dtype(max(rg, lg, qg)))
    readers = {} if not nq else dict(n_lock_reads=nq, lock_read_gap_ns=qg, lock_read_hold_ns=qh)
    src = _source("random_reads_with_mmap_loop", n_reads=nr, pages=pages, n_lock_ops=nl,
                  read_gap_ns=rg, lock_gap_ns=lg, base_addr=base_addr, lock_addr=lock_addr,
                  page_size=page_size, aligned=aligned, size=size, lock_size=ls, seed=seed,
                  **readers)
    return Trace(addr, op=op, tid=tid, asid=np.zeros(nr + nl + nq, np.uint8), size=sz,
                 gap_ns=gap, meta=TraceMeta(page_size=page_size, source=src),
                 _n_threads=(nr > 0) + (nl > 0) + (nq > 0))


# ---------------------------------------------------------------------------------------
# Round-robin helper (shared with build.interleave)


@njit
def _rr_kernel(lengths, order_k, order_j):
    K = len(lengths)
    active = np.arange(K)
    n_active = 0
    for k in range(K):
        if lengths[k] > 0:
            active[n_active] = k
            n_active += 1
    p = 0
    j = 0
    while n_active > 0:
        expired = False
        for a in range(n_active):
            k = active[a]
            order_k[p] = k
            order_j[p] = j
            p += 1
            if lengths[k] == j + 1:
                expired = True
        j += 1
        if expired:
            m = 0
            for a in range(n_active):
                k = active[a]
                if lengths[k] > j:
                    active[m] = k
                    m += 1
            n_active = m


def round_robin_positions(lengths):
    """Round-robin schedule of sequences of the given lengths.

    Returns ``(k, j)``, two int64 arrays of length ``sum(lengths)``: output record ``p`` is
    element ``j[p]`` of sequence ``k[p]``.  Each round takes one element from every
    sequence that still has one, in sequence order.  Linear time.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    order_k = np.empty(total, np.int64)
    order_j = np.empty(total, np.int64)
    if total:
        _rr_kernel(lengths, order_k, order_j)
    return order_k, order_j


#: Generator name -> function, for the command line (``vmlab trace synth NAME``).

# ---------------------------------------------------------------------------------------
# Workloads of the lock designs after 2010 (docs/model.md section 15)

def _by_clock(threads, page_size, source):
    """A trace from per-thread record lists ``(addr, op, size, gap_ns[, call])`` (numpy
    arrays per thread, tid = list index), ordered by each thread's compute-only clock (the
    cumulative gap; ties: lower tid first), as :func:`random_reads_with_mmap_loop` orders its
    two.  The trace has a ``call`` column when some thread gives one (0 for the others)."""
    with_call = any(len(cols) > 4 for cols in threads)
    threads = [cols if len(cols) > 4 else (*cols, np.zeros(len(cols[0]), np.uint8))
               for cols in threads]
    parts = [(t, *cols) for t, cols in enumerate(threads) if len(cols[0])]
    if not parts:
        return Trace(np.zeros(0, np.uint64), meta=TraceMeta(page_size=page_size, source=source))
    addr = np.concatenate([p[1] for p in parts]).astype(np.uint64)
    op = np.concatenate([p[2] for p in parts]).astype(np.uint8)
    size = np.concatenate([p[3] for p in parts]).astype(np.uint64)
    gap = np.concatenate([p[4] for p in parts]).astype(np.uint64)
    tid = np.concatenate([np.full(len(p[1]), p[0], np.uint32) for p in parts])
    clock = np.concatenate([np.cumsum(p[4].astype(np.uint64)) for p in parts])
    order = np.lexsort((tid, clock))
    return Trace(addr[order], op=op[order], tid=tid[order].astype(narrow_dtype(int(tid.max()))),
                 asid=np.zeros(len(addr), np.uint8),
                 size=size[order].astype(narrow_dtype(int(size.max()))),
                 gap_ns=gap[order].astype(narrow_dtype(int(gap.max()))),
                 call=(np.concatenate([p[5] for p in parts]).astype(np.uint8)[order]
                       if with_call else None),
                 meta=TraceMeta(page_size=page_size, source=source),
                 _n_threads=len(parts))


def pft_threads(n_threads=4, pages_per_thread=4096, touch_gap_ns=50, base_addr=DEFAULT_BASE,
                page_size=4096, phase_ns=0):
    """mmtests ``pft-threads``: threads first-touching their own slices of one anonymous region.

    Thread ``t`` stores to each page of pages ``[t * pages_per_thread, (t + 1) *
    pages_per_thread)`` of one region at ``base_addr``, in order: every record is a
    zero-fill fault on an ``anon`` VMA, with ``touch_gap_ns`` of user work before it.  All
    threads fault on one address space (and one VMA), so the rate is bounded by the lock
    words they share (``mmap_lock_line_ns``/``vma_lock_line_ns``, docs/model.md 15.1): the
    per-thread rate falls and the total flattens as threads grow, the shape of the 2-socket
    results in KERNEL-2026.md section 2.

    Parameters
    ----------
    n_threads : int
        Faulting threads (default 4).
    pages_per_thread : int
        Pages each thread touches (default 4096).
    touch_gap_ns : int
        User work before each touch, in ns (default 50).
    base_addr : int
        Start of the region (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).
    phase_ns : int
        Thread ``t``'s first touch comes ``t * phase_ns // n_threads`` ns later than thread 0's
        (default 0: all start together).  Identical threads started at one instant stay in
        step forever in a replay; a long run's threads are out of step, and ``phase_ns`` of
        about one fault's time spreads them evenly over it.

    Returns
    -------
    Trace
    """
    T = _check_pos("n_threads", n_threads)
    n = _check_pos("pages_per_thread", pages_per_thread)
    g = _check_pos("touch_gap_ns", touch_gap_ns, allow_zero=True)
    phase = _check_pos("phase_ns", phase_ns, allow_zero=True)
    page_size = _check_page_size(page_size)
    base_addr = _check_region(base_addr, T * n, page_size)
    src = _source("pft_threads", n_threads=T, pages_per_thread=n, touch_gap_ns=g,
                  base_addr=base_addr, page_size=page_size,
                  **({"phase_ns": phase} if phase else {}))
    threads = []
    for t in range(T):
        pages = np.arange(t * n, (t + 1) * n, dtype=np.uint64)
        gaps = np.full(n, g, np.uint64)
        gaps[0] += np.uint64(t * phase // T)
        threads.append((np.uint64(base_addr) + pages * np.uint64(page_size),
                        np.full(n, Op.STORE, np.uint8), np.full(n, 8, np.uint64), gaps))
    return _by_clock(threads, page_size, src)


def ebizzy(n_threads=8, n_iters=50, chunk_pages=16, neighbour_pages=1, touch_gap_ns=200,
           iter_gap_ns=2000, base_addr=DEFAULT_BASE, page_size=4096):
    """ebizzy ``-mTt``-like: threads that allocate (mmap), fill and free (munmap) chunks.

    Each thread repeats ``n_iters`` times: a ``LOCK_W`` for the ``mmap`` of a fresh
    ``chunk_pages``-page chunk, a store to every page of the chunk (zero-fill faults, each
    after ``touch_gap_ns``), a ``LOCK_W`` for its ``munmap``; ``iter_gap_ns`` of search work
    before each iteration's ``mmap``.  The writers name their calls (``call`` column:
    ``mmap``, ``munmap``), which give their holds and, under Dufour's count, where each
    changes its VMA (docs/model.md 15.12).  Chunk ``j = iteration * n_threads + thread`` lies at
    ``base_addr + j * chunk_pages`` pages, so chunks allocated at about the same time by
    different threads are neighbours, as an allocator's mappings are.  A writer's range is
    its chunk plus ``neighbour_pages`` on each side: with one VMA per chunk, a new mapping
    merging with, or an unmap splitting, the adjacent VMA write-locks it (0: the chunk
    alone, the form for the kernel's merged table, where the chunk lies inside the one VMA
    every writer changes: :func:`vmlab.studies.ladder.ebizzy_scenario`, docs/model.md
    15.8).  The pages are fresh every iteration because vmlab's VMAs are static (an
    unmapped chunk's PTEs would otherwise stay).  The writers' ranges are what aborts
    speculative faults (docs/model.md 15.4).

    Parameters
    ----------
    n_threads : int
        Threads (default 8).
    n_iters : int
        Allocate-fill-free iterations per thread (default 50).
    chunk_pages : int
        Pages per chunk (default 16).
    neighbour_pages : int
        Pages of each neighbour inside a writer's range (default 1).
    touch_gap_ns : int
        Work before each page's store, in ns (default 200).
    iter_gap_ns : int
        Work before each iteration's mmap, in ns (default 2000).
    base_addr : int
        Start of the chunks (default 0x7f0000000000).
    page_size : int
        Bytes per page (default 4096).

    Returns
    -------
    Trace
    """
    T = _check_pos("n_threads", n_threads)
    it = _check_pos("n_iters", n_iters, allow_zero=True)
    cp = _check_pos("chunk_pages", chunk_pages)
    nb = _check_pos("neighbour_pages", neighbour_pages, allow_zero=True)
    tg = _check_pos("touch_gap_ns", touch_gap_ns, allow_zero=True)
    ig = _check_pos("iter_gap_ns", iter_gap_ns, allow_zero=True)
    base_addr = _check_pos("base_addr", base_addr, allow_zero=True, bits=64)
    page_size = _check_page_size(page_size)
    if base_addr < nb * page_size or base_addr + (T * it + 1) * cp * page_size > 2**64:
        raise ValueError(f"the chunks and their neighbours must fit in the address space: "
                         f"base_addr {base_addr:#x} is below neighbour_pages={nb:,} pages or "
                         f"{T * it + 1:,} chunks of {cp:,} pages from it run past 2**64")
    src = _source("ebizzy", n_threads=T, n_iters=it, chunk_pages=cp, neighbour_pages=nb,
                  touch_gap_ns=tg, iter_gap_ns=ig, base_addr=base_addr, page_size=page_size)
    ps = np.uint64(page_size)
    per = cp + 2
    threads = []
    for t in range(T):
        j = np.arange(it, dtype=np.uint64) * np.uint64(T) + np.uint64(t)
        start = np.uint64(base_addr) + j * np.uint64(cp) * ps
        addr = np.empty((it, per), np.uint64)
        addr[:, 0] = addr[:, -1] = start - np.uint64(nb) * ps
        addr[:, 1:-1] = start[:, None] + np.arange(cp, dtype=np.uint64)[None, :] * ps
        op = np.full((it, per), Op.STORE, np.uint8)
        op[:, 0] = op[:, -1] = Op.LOCK_W
        size = np.full((it, per), 8, np.uint64)
        size[:, 0] = size[:, -1] = (cp + 2 * nb) * page_size
        gap = np.full((it, per), tg, np.uint64)
        gap[:, 0], gap[:, -1] = ig, 0
        call = np.zeros((it, per), np.uint8)
        call[:, 0], call[:, -1] = Call.MMAP, Call.MUNMAP
        threads.append((addr.ravel(), op.ravel(), size.ravel(), gap.ravel(), call.ravel()))
    return _by_clock(threads, page_size, src)


def app_start(n_threads=16, n_files=8, file_pages=4096, faults_per_thread=400,
              n_writers=2, writes_per_writer=400, on_file_fraction=0.25, write_pages=16,
              fault_gap_ns=20_000, write_gap_ns=100_000, base_addr=DEFAULT_BASE,
              lock_addr=DEFAULT_LOCK_ADDR, page_size=4096, seed=None, n_readers=0,
              reads_per_reader=0, read_gap_ns=100_000, read_hold_ns=0, long_read_fraction=0.0,
              long_read_hold_ns=1_000_000):
    """An application start: many threads faulting file pages while a few threads map, unmap
    and protect, the workload of the 2025-26 retry-under-the-VMA-lock measurements.

    Threads ``0..n_threads-1`` each read ``faults_per_thread`` pages chosen uniformly in
    ``n_files`` files of ``file_pages`` pages (file ``f`` mapped at ``base_addr + f *
    (file_pages + 64)`` pages: one file VMA each, 64 pages apart), ``fault_gap_ns`` of work
    before each.  Threads ``n_threads..n_threads+n_writers-1`` each make ``writes_per_writer``
    ``mmap_sem`` writer calls, ``write_gap_ns`` apart: a fraction ``on_file_fraction`` of them
    an ``mprotect`` of ``write_pages`` pages inside a random file (write-locking that file's
    VMA, so faults on it fall back to ``mmap_sem``), the rest new mappings of ``write_pages``
    pages at ``lock_addr`` (no VMA touched).  Whether a read is a major fault is the
    scenario's page cache (cold by default, ``preload`` for a warm start).

    Optionally, ``n_readers`` more threads (after the writers) each make ``reads_per_reader``
    ``LOCK_R`` records: readers of ``mmap_lock`` that are not faults (``/proc/PID/maps``
    readers, ``madvise``, ``mincore``, ``get_user_pages``; docs/model.md 15.9), each after an
    exponentially distributed gap of mean ``read_gap_ns`` (independent arrivals, seeded), each
    holding the lock ``read_hold_ns`` (0: the cost ``mmap_read_cs_ns``), or, with probability
    ``long_read_fraction``, ``long_read_hold_ns`` (a long reader: ``get_user_pages`` faulting
    pages in under the lock, a ``smaps`` read of a big process).

    Parameters
    ----------
    n_threads : int
        Faulting threads (default 16).
    n_files : int
        File mappings (default 8).
    file_pages : int
        Pages per file (default 4096).
    faults_per_thread : int
        Reads per faulting thread (default 400).
    n_writers : int
        Threads making writer calls (default 2).
    writes_per_writer : int
        Writer calls per writer thread (default 400).
    on_file_fraction : float
        Fraction of writer calls that change a file mapping (default 0.25).
    write_pages : int
        Pages a writer call covers (default 16).
    fault_gap_ns : int
        Work before each read, in ns (default 20000).
    write_gap_ns : int
        Work before each writer call, in ns (default 100000).
    base_addr : int
        Start of the first file (default 0x7f0000000000).
    lock_addr : int
        Where new mappings go (default 0x600000000000).
    page_size : int
        Bytes per page (default 4096).
    seed : int, optional
        Random seed.
    n_readers : int
        Threads that read-lock ``mmap_lock`` without faulting (default 0).
    reads_per_reader : int
        ``LOCK_R`` records per reader thread (default 0).
    read_gap_ns : int
        Mean work before each of them, in ns (default 100000; exponential).
    read_hold_ns : int
        Each one's hold, in ns (default 0: the cost ``mmap_read_cs_ns``).
    long_read_fraction : float
        Fraction of them that are long readers (default 0).
    long_read_hold_ns : int
        A long reader's hold, in ns (default 1000000).

    Returns
    -------
    Trace
    """
    T = _check_pos("n_threads", n_threads, allow_zero=True)
    R = _check_pos("n_readers", n_readers, allow_zero=True)
    nr = _check_pos("reads_per_reader", reads_per_reader, allow_zero=True)
    rgap = _check_pos("read_gap_ns", read_gap_ns, allow_zero=True)
    rhold = _check_pos("read_hold_ns", read_hold_ns, allow_zero=True)
    lhold = _check_pos("long_read_hold_ns", long_read_hold_ns)
    long_read_fraction = _check_real("long_read_fraction", long_read_fraction, 0.0, 1.0)
    F = _check_pos("n_files", n_files)
    fp = _check_pos("file_pages", file_pages)
    nf = _check_pos("faults_per_thread", faults_per_thread, allow_zero=True)
    W = _check_pos("n_writers", n_writers, allow_zero=True)
    nw = _check_pos("writes_per_writer", writes_per_writer, allow_zero=True)
    wp = _check_pos("write_pages", write_pages)
    fg = _check_pos("fault_gap_ns", fault_gap_ns, allow_zero=True)
    wg = _check_pos("write_gap_ns", write_gap_ns, allow_zero=True)
    on_file_fraction = _check_real("on_file_fraction", on_file_fraction, 0.0, 1.0)
    if wp > fp:
        raise ValueError(f"write_pages={wp} must not exceed file_pages={fp}")
    page_size = _check_page_size(page_size)
    base_addr = _check_region(base_addr, F * (fp + 64), page_size)
    _check_lock_range(lock_addr, wp * page_size, "lock_addr")
    seed = _seed(seed)
    src = _source("app_start", n_threads=T, n_files=F, file_pages=fp, faults_per_thread=nf,
                  n_writers=W, writes_per_writer=nw, on_file_fraction=on_file_fraction,
                  write_pages=wp, fault_gap_ns=fg, write_gap_ns=wg, base_addr=base_addr,
                  lock_addr=lock_addr, page_size=page_size, seed=seed,
                  **({} if not (R and nr) else dict(
                      n_readers=R, reads_per_reader=nr, read_gap_ns=rgap, read_hold_ns=rhold,
                      long_read_fraction=long_read_fraction, long_read_hold_ns=lhold)))
    # (a third stream for the readers: the first two, and so the faults and writers of a
    # trace without readers, stay as they were)
    rng_r, rng_w, rng_l = _streams(seed, 3)
    ps = np.uint64(page_size)
    file_start = np.uint64(base_addr) + np.arange(F, dtype=np.uint64) * np.uint64(fp + 64) * ps
    threads = []
    for _ in range(T):
        f = rng_r.integers(0, F, nf)
        pg = rng_r.integers(0, fp, nf).astype(np.uint64)
        threads.append((file_start[f] + pg * ps, np.full(nf, Op.LOAD, np.uint8),
                        np.full(nf, 8, np.uint64), np.full(nf, fg, np.uint64)))
    for _ in range(W):
        on_file = rng_w.random(nw) < float(on_file_fraction)
        f = rng_w.integers(0, F, nw)
        pg = rng_w.integers(0, fp - wp + 1, nw).astype(np.uint64)
        addr = np.where(on_file, file_start[f] + pg * ps, np.uint64(lock_addr))
        threads.append((addr, np.full(nw, Op.LOCK_W, np.uint8),
                        np.full(nw, wp * page_size, np.uint64), np.full(nw, wg, np.uint64)))
    for _ in range(R if nr else 0):
        gap = np.rint(rng_l.exponential(rgap, nr)).astype(np.uint64)
        hold = np.where(rng_l.random(nr) < float(long_read_fraction), np.uint64(lhold),
                        np.uint64(rhold))
        threads.append((np.zeros(nr, np.uint64), np.full(nr, Op.LOCK_R, np.uint8), hold, gap))
    return _by_clock(threads, page_size, src)


# ---------------------------------------------------------------------------------------
# Sizes, known before generating


def _count(v):
    """A count argument as an int (0 when it is not one: the generator refuses it itself)."""
    ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
    return int(v) if ok else 0


def _phases_size(a):
    if a["phases"] is None:
        return _count(a["n"]), _count(a["ws_pages"]) if a["dist"] == "zipf" else 0
    if not isinstance(a["phases"], (list, tuple)):
        return 0, 0
    ok = [ph for ph in a["phases"] if isinstance(ph, (list, tuple)) and len(ph) == 3]
    return (sum(_count(ph[0]) for ph in ok),
            max((_count(ph[1]) for ph in ok), default=0) if a["dist"] == "zipf" else 0)


def _reverse_file_size(a):
    t, pages = _count(a["n_threads"]), _count(a["pages"])
    return (pages if a["split"] else t * pages), 0


def _app_start_size(a):
    c = {k: _count(a[k]) for k in ("n_threads", "faults_per_thread", "n_writers",
                                   "writes_per_writer", "n_readers", "reads_per_reader")}
    return (c["n_threads"] * c["faults_per_thread"] + c["n_writers"] * c["writes_per_writer"]
            + c["n_readers"] * c["reads_per_reader"]), 0


#: Per generator: (its records and its Zipf-table pages, from its arguments (defaults
#: applied); peak bytes of memory per record while it builds them, measured with
#: 8-million-record traces: the ones that merge per-thread streams hold several copies).
_SIZES = {
    "sequential": (lambda a: (_count(a["n"]), 0), 24),
    "strided": (lambda a: (_count(a["n"]), 0), 24),
    "uniform": (lambda a: (_count(a["n"]), 0), 24),
    "zipf": (lambda a: (_count(a["n"]), _count(a["pages"])), 24),
    "phases": (_phases_size, 24),
    "shared_file": (lambda a: (_count(a["n_threads"]) * _count(a["n_per_thread"]),
                               _count(a["pages"]) if a["pattern"] == "zipf" else 0), 24),
    "lock_loop": (lambda a: (_count(a["n"]), 0), 24),
    "reverse_file": (_reverse_file_size, 56),
    "random_reads_with_mmap_loop": (
        lambda a: (_count(a["n_reads"]) + _count(a["n_lock_ops"]) + _count(a["n_lock_reads"]),
                   0), 64),
    "pft_threads": (lambda a: (_count(a["n_threads"]) * _count(a["pages_per_thread"]), 0), 104),
    "ebizzy": (lambda a: (_count(a["n_threads"]) * _count(a["n_iters"])
                          * (_count(a["chunk_pages"]) + 2), 0), 104),
    "app_start": (_app_start_size, 104),
}
#: Peak bytes of memory per page of a Zipf law's tables (cdf, weights, permutation copies).
ZIPF_BYTES_PER_PAGE = 48


def planned_size(name, **kwargs):
    """What generator ``name`` would build with ``kwargs``, computed from the arguments
    alone (nothing is generated): ``(records, zipf_pages, nbytes)``, the trace's records,
    the pages of its largest Zipf law (0: none) and about the peak memory building it
    takes.  Arguments the generator would refuse count as 0 (it says what is wrong)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; generators are {', '.join(GENERATORS)}")
    import inspect

    bound = inspect.signature(GENERATORS[name]).bind_partial(**kwargs)
    bound.apply_defaults()
    size, per_record = _SIZES[name]
    records, zipf_pages = size(bound.arguments)
    return records, zipf_pages, records * per_record + zipf_pages * ZIPF_BYTES_PER_PAGE


GENERATORS = {
    "sequential": sequential,
    "strided": strided,
    "uniform": uniform,
    "zipf": zipf,
    "phases": phases,
    "shared_file": shared_file,
    "lock_loop": lock_loop,
    "reverse_file": reverse_file,
    "random_reads_with_mmap_loop": random_reads_with_mmap_loop,
    "pft_threads": pft_threads,
    "ebizzy": ebizzy,
    "app_start": app_start,
}

__all__ = ["GENERATORS", "DEFAULT_BASE", "DEFAULT_LOCK_ADDR", "sequential", "strided",
           "uniform", "zipf", "phases", "shared_file", "lock_loop", "reverse_file",
           "random_reads_with_mmap_loop", "pft_threads", "ebizzy", "app_start",
           "round_robin_positions", "zipf_ranks", "planned_size"]
