"""Spatially sampled replay (SHARDS-style miniature simulation) and one-pass LRU fault curves.

A scenario with ``sample_rate=R`` replays a *miniature*: the records of the pages whose hash
falls below ``R`` (every access to a kept page, in every thread and address space), with the
page cache shrunk to ``round(R * memory_pages)`` frames.  Page-cache behaviour depends on the
pages' reference streams, and a hash keeps or drops a page with all its references, so the
miniature's fault ratio estimates the full trace's for any replacement algorithm (Waldspurger
et al., SHARDS, FAST'15; miniature simulation, ATC'17).  Counts are scaled back by ``1/R``.

What does not survive sampling: every figure made of time shared between threads.  The
miniature has about ``R`` times the faults of the full run, so its threads spend less time in
I/O and under ``mmap_sem``: lock waits, signal latencies, the writer's operations per second
and the elapsed time are those of a different, lighter run.  A sampled summary gives them as
NaN (docs/performance.md, "Sampled replay").

The sampled trace is computed once per (trace, R) in one chunked pass and cached on the trace
object, like the engine's index.
"""
from __future__ import annotations

import math
import threading
import weakref

import numpy as np

from ._numba import njit
from .errors import ScenarioError
from .model._checks import LIMIT, LIMIT_TEXT, whole_values
from .model.scenario import min_memory_pages
from .trace.model import Op, Trace
from .trace.stats import COLD, reuse_distance

#: Bits of the address-space id in a page key (as in the engine's index).
_VPN_BITS = 52
_CHUNK = 1 << 24
_LOCK_W = int(Op.LOCK_W)
#: LOCK_W records have no page: they are kept by a hash of their record number, salted so
#: that it does not coincide with a page key's hash.
_LOCK_SALT = np.uint64(0xD6E8FEB86659FD93)
#: Two-sided 95% normal quantile of the fault-count interval.
Z95 = 1.959963984540054
#: Summary figures that are counts of events on pages or records: scaled by 1/R.
SCALED_COUNTS = ("n_accesses", "n_faults", "n_major", "n_minor", "n_retries", "n_sigbus",
                 "n_io", "n_wasted_io", "n_evictions", "n_adversary_evictions", "n_lock_w",
                 "n_unfinished_records", "n_abandoned_records", "n_ptes_end",
                 "n_mmap_lock_read", "n_vma_lock_read", "n_vma_lock_fallbacks", "n_spf_aborts",
                 "n_mmap_lock_read_other", "n_mmap_lock_read_kernel", "n_anon_vma_fallbacks")
#: Summary figures made of time shared between threads: NaN in a sampled run.
UNSAMPLED = ("writer_ops_per_s", "signal_latency_ns_p50", "signal_latency_ns_p99",
             "signal_latency_ns_max", "lock_wait_ns_total", "elapsed_ns", "n_signals",
             "mmap_lock_read_wait_ns", "mmap_lock_read_wait_ns_p50", "mmap_lock_read_wait_ns_p99",
             "mmap_lock_read_wait_ns_max", "mmap_lock_write_wait_ns",
             "mmap_lock_write_wait_ns_p50", "mmap_lock_write_wait_ns_p99",
             "mmap_lock_write_wait_ns_max", "vma_lock_write_wait_ns")

_cache = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


@njit
def _mix(x):
    """splitmix64's finalizer: a fixed bijective mixer of 64-bit keys (every output bit
    depends on every input bit), so consecutive page numbers hash independently."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def threshold(rate):
    """The hash threshold of ``rate``: a page is kept when its hash is below it."""
    return np.uint64(min(int(rate * 2.0**64), 2**64 - 1))


@njit
def _page_hashes(asid, vpn, out):
    for i in range(asid.shape[0]):
        out[i] = _mix((np.uint64(asid[i]) << np.uint64(_VPN_BITS)) | np.uint64(vpn[i]))


def page_hash(asid, vpn):
    """The sampling hash of pages ``(asid, vpn)`` (arrays), as uint64."""
    asid = np.asarray(asid, np.uint64).ravel()
    vpn = np.asarray(vpn, np.uint64).ravel()
    out = np.empty(len(vpn), np.uint64)
    _page_hashes(np.broadcast_to(asid, vpn.shape).copy() if len(asid) == 1 else asid, vpn, out)
    return out


@njit
def _sample_chunk(addr, asid, op, th, multi, gap, has_gap, shift, thr, base, carry, out_idx,
                  out_gap):
    """Indices (``base + i``) of the kept records of one chunk into ``out_idx`` and their gaps
    into ``out_gap``; returns how many.  A kept record's gap is its own plus those of its
    thread's records dropped since the thread's previous kept record (``carry``), so each
    thread keeps its compute time."""
    k = 0
    for i in range(addr.shape[0]):
        if op[i] >= _LOCK_W:       # a lock record (LOCK_W, LOCK_R): no page
            h = _mix(np.uint64(base + i) ^ _LOCK_SALT)
        else:
            h = _mix((np.uint64(asid[i]) << np.uint64(_VPN_BITS)) | (addr[i] >> shift))
        t = th[i] if multi else 0
        g = gap[i] if has_gap else np.uint64(0)
        if h < thr:
            out_idx[k] = base + i
            out_gap[k] = carry[t] + g
            carry[t] = 0
            k += 1
        else:
            carry[t] += g
    return k


def sample_trace(trace, rate):
    """The records of ``trace`` whose page hashes below ``rate`` (cached per (trace, rate)).

    Every access to a kept page is kept, whatever its thread or address space; ``LOCK_W``
    records (no page) are kept at the same rate by a hash of their record number.  Gaps are
    carried over dropped records within each thread.  One chunked pass; memory grows with the
    kept records only.  Returns an in-memory :class:`Trace`.
    """
    return _sampled(trace, rate)[0]


def sample_counts(trace, rate):
    """``(accesses in the trace, accesses kept)`` of :func:`sample_trace` (``LOCK_W`` records
    are not accesses)."""
    return _sampled(trace, rate)[1]


def _sampled(trace, rate):
    rate = float(rate)
    if not 0 < rate <= 1:
        raise ScenarioError(f"sample_rate must be in (0, 1], got {rate!r}")
    with _cache_lock:  # sweeps call from several threads: sample once
        per = _cache.setdefault(trace, {})
        if rate not in per:
            per[rate] = _sample_trace(trace, rate)
        return per[rate]


def _sample_trace(trace, rate):
    n = len(trace)
    n_lock_w = 0
    for lo in range(0, n, _CHUNK):
        n_lock_w += int(np.count_nonzero(np.asarray(trace.op[lo:lo + _CHUNK]) >= _LOCK_W))
    if rate >= 1:
        return trace, (n - n_lock_w, n - n_lock_w)
    shift = np.uint64(int(trace.page_size).bit_length() - 1)
    thr = threshold(rate)
    tids = np.zeros(0, np.int64)
    for lo in range(0, n, _CHUNK):
        tc = np.asarray(trace.tid[lo:lo + _CHUNK])
        a, b = int(tc.min()), int(tc.max())
        tids = np.union1d(tids, [a] if a == b else np.unique(tc))
    carry = np.zeros(max(1, len(tids)), np.uint64)
    no_th = np.zeros(1, np.int64)
    has_gap = trace.has_gap
    no_gap = np.zeros(1, np.uint64)
    idx_parts, gap_parts = [], []
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        th = (np.searchsorted(tids, np.asarray(trace.tid[lo:hi])).astype(np.int64)
              if len(tids) > 1 else no_th)
        gap = np.asarray(trace.gap_ns[lo:hi]).astype(np.uint64, copy=False) if has_gap else no_gap
        out_idx = np.empty(hi - lo, np.int64)
        out_gap = np.empty(hi - lo, np.uint64)
        k = _sample_chunk(np.asarray(trace.addr[lo:hi]), np.asarray(trace.asid[lo:hi]),
                          np.asarray(trace.op[lo:hi]), th, len(tids) > 1, gap, has_gap, shift, thr, lo, carry,
                          out_idx, out_gap)
        idx_parts.append(out_idx[:k].copy())
        gap_parts.append(out_gap[:k].copy())
    idx = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int64)
    cols = {}
    for name, col in trace.columns.items():
        if name == "gap_ns":
            continue
        parts = []
        for lo in range(0, len(idx), _CHUNK):
            parts.append(np.asarray(col[idx[lo:lo + _CHUNK]]))
        cols[name] = np.concatenate(parts) if parts else np.zeros(0, col.dtype)
    if has_gap:
        cols["gap_ns"] = np.concatenate(gap_parts)
    src = trace.meta.source or "trace"
    meta = trace.meta.__class__(page_size=trace.page_size, source=f"{src} [pages sampled at "
                                f"R={rate:g}]", notes=trace.meta.notes)
    kept = len(idx) - int(np.count_nonzero(cols["op"] >= _LOCK_W))
    return Trace.from_columns(cols, meta), (n - n_lock_w, kept)


def _sample_or_refuse(trace, rate):
    """:func:`sample_trace` at ``rate``, refused when it keeps no record (a curve or a run of
    nothing would read as zero faults)."""
    st = sample_trace(trace, rate)
    if len(st) == 0:
        raise ScenarioError(f"sample_rate={rate:g} keeps no record of this {len(trace):,}"
                            "-record trace; use a larger sample_rate")
    return st


def miniature(scenario):
    """The scenario the engine replays for a sampled ``scenario``: the sampled trace, the
    full trace's VMAs, the page cache scaled by R, the preload filtered to kept pages, and
    per-fault records on (their pages give the confidence interval)."""
    rate = scenario.sample_rate
    if rate is None or rate >= 1:
        return scenario
    st = _sample_or_refuse(scenario.trace, rate)
    changes = {"trace": st, "vmas": scenario.resolved_vmas(), "sample_rate": None,
               "records": True}
    if scenario.memory_pages is not None:
        mem = int(round(scenario.memory_pages * rate))
        if mem < 1:
            raise ScenarioError(
                f"memory_pages={scenario.memory_pages} at sample_rate={rate:g} scales to "
                f"{scenario.memory_pages * rate:.3g} frames; use memory_pages >= "
                f"{math.ceil(0.5 / rate)} or a larger sample_rate")
        changes["memory_pages"] = mem
    if scenario.preload is not None and len(scenario.preload):
        shift = np.uint64(int(st.page_size).bit_length() - 1)
        pre = np.asarray(scenario.preload, np.uint64)
        keep = page_hash(np.zeros(1, np.uint64), pre >> shift) < threshold(rate)
        changes["preload"] = pre[keep]
    mini = scenario.replace(**changes)
    if mini.memory_pages is not None:
        from .engine.prepare import index_trace

        T = len(index_trace(st).thr_tid)
        floor = min_memory_pages(T)
        if mini.memory_pages < floor:
            raise ScenarioError(
                f"memory_pages={scenario.memory_pages} at sample_rate={rate:g} scales to "
                f"{mini.memory_pages} frames, too few for the sample's {T} threads (every "
                f"in-flight or pinned page needs a frame: at least {floor}); use "
                f"memory_pages >= {math.ceil(floor / rate)} or a larger sample_rate")
    return mini


def run_sampled(scenario, policy=None, **run_options):
    """Replay the miniature of ``scenario`` (engine ``run``, which takes ``run_options``);
    the raw columns carry ``sample`` (rate and the per-page fault sums the interval needs)."""
    from .engine.run import run

    raw = run(miniature(scenario), policy, **run_options)
    f = raw.faults
    if len(f["vpn"]):
        key = (f["asid"].astype(np.uint64) << np.uint64(_VPN_BITS)) | f["vpn"].astype(np.uint64)
        _, per_page = np.unique(key, return_counts=True)
    else:
        per_page = np.zeros(0, np.int64)
    n_full, n_kept = sample_counts(scenario.trace, scenario.sample_rate)
    raw.sample = {"rate": float(scenario.sample_rate),
                  "fault_sq_sum": float(np.sum(per_page.astype(np.float64) ** 2)),
                  "n_accesses_trace": n_full, "n_accesses_kept": n_kept}
    raw.n_records = len(scenario.trace)
    if not scenario.records:  # the user asked for no records: keep only the summary's inputs
        for table in (raw.faults, raw.signals, raw.locks):
            for k in table:
                table[k] = table[k][:0]
    return raw


def scale_summary(s, sample):
    """A sampled run's summary: counts scaled by 1/R, time figures shared between threads
    NaN, and the 95% interval of ``n_faults``.

    The interval is the normal one of the Horvitz-Thompson estimator under independent
    page sampling: ``n_faults = sum_p f_p / R`` over kept pages ``p`` with ``f_p`` faults,
    variance estimated by ``(1 - R) / R**2 * sum_p f_p**2``.  It covers the sampling of
    pages, not the miniature's own bias (a cache of ``round(R * C)`` frames)."""
    rate = sample["rate"]
    s = dict(s)
    raw_faults = s["n_faults"]
    replayed = s["n_accesses"] / sample["n_accesses_kept"] if sample["n_accesses_kept"] else 0.0
    for k in SCALED_COUNTS:
        s[k] = int(round(s[k] / rate))
    # the trace's own access count (SHARDS-adj): a hot page kept or dropped moves the sample's
    # accesses far from R times the trace's, mostly hits; its faults scale by 1/R
    s["n_accesses"] = int(round(sample["n_accesses_trace"] * replayed))
    for k in UNSAMPLED:
        s[k] = math.nan
    s["page_table_bytes"] = 4096 * math.ceil(s["n_ptes_end"] / 512)
    if not math.isnan(s["struct_page_bytes"]):
        s["struct_page_bytes"] = s["struct_page_bytes"] / rate
    half = Z95 * math.sqrt(max(0.0, (1 - rate) * sample["fault_sq_sum"])) / rate
    est = raw_faults / rate
    s["sample_rate"] = rate
    s["n_faults_ci_low"] = max(0.0, est - half)
    s["n_faults_ci_high"] = est + half
    return s


def fault_curve(trace, sizes, sample_rate=None):
    """Faults of an LRU page cache at each size in ``sizes`` (pages), from LRU stack
    distances in one pass over the trace.

    A reference faults in an LRU cache of ``C`` pages exactly when it is a first reference or
    its stack distance is ``>= C``; the histogram of distances gives every size at once.  This
    is exactly what ``simulate`` counts for a one-thread trace whose pages are all
    file-backed under LRU with ``fault_around_pages=1`` and no adversary or preload (the
    thread's records replay in trace order; a multi-thread trace replays interleaved by
    time, which record order only approximates).

    With ``sample_rate=R`` the distances are those of the sampled trace (:func:`sample_trace`),
    each size is scaled to ``round(R * C)`` pages and the faults back by 1/R, over the trace's
    own access count (SHARDS-adj).

    Returns a DataFrame: ``memory_pages``, ``n_faults``, ``n_accesses``, ``fault_ratio``,
    ``sample_rate``.
    """
    import pandas as pd

    ints, bad = whole_values(sizes)
    if bad is not None:
        raise ScenarioError(f"fault_curve: sizes must be whole numbers of pages, got {bad[1]!r}"
                            + (f" at position {bad[0]}" if bad[0] is not None else ""))
    if len(ints) == 0 or min(ints) < 1 or max(ints) >= LIMIT:
        raise ScenarioError(f"fault_curve: sizes must be page-cache sizes of at least 1 page "
                            f"(and below {LIMIT_TEXT})")
    sizes = np.asarray(ints, dtype=np.int64)
    rate = 1.0 if sample_rate is None else float(sample_rate)
    if not 0 < rate <= 1:
        raise ScenarioError(f"fault_curve: sample_rate must be in (0, 1], got {sample_rate!r}")
    tr = _sample_or_refuse(trace, rate) if rate < 1 else trace
    d = reuse_distance(tr)
    d = d[d != -2]                                  # LOCK_W records: not accesses
    n_acc = sample_counts(trace, rate)[0]
    cold = int(np.count_nonzero(d == COLD))
    warm = np.sort(d[d != COLD])
    scaled = np.maximum(1, np.rint(sizes * rate).astype(np.int64)) if rate < 1 else sizes
    over = len(warm) - np.searchsorted(warm, scaled, side="left")   # distance >= size
    faults = (cold + over) / rate
    return pd.DataFrame({
        "memory_pages": sizes,
        "n_faults": np.rint(faults).astype(np.int64) if rate < 1 else (cold + over).astype(np.int64),
        "n_accesses": np.full(len(sizes), n_acc, np.int64),
        "fault_ratio": faults / n_acc if n_acc else np.zeros(len(sizes)),
        "sample_rate": np.full(len(sizes), rate),
    })


__all__ = ["sample_trace", "miniature", "run_sampled", "scale_summary", "fault_curve",
           "page_hash", "threshold"]
