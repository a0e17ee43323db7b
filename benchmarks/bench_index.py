"""Trace index benchmark: the dense page ids of a long trace.  Every figure is printed with
the baseline it is measured against in the same process.

    python benchmarks/bench_index.py [--records 100000000] [--pages 1000000] [--repeat 3]
                                     [--skip-one-sort]

1. The trace: ``synth.zipf(N, pages, alpha=1.0, seed=1)``, generated in memory (one thread,
   about 12 bytes a record; 1.2 GB at the default 10^8 records).
2. Page ids of the whole trace by ``_pages_chunked`` (one pass through a hash table of the
   distinct pages, chunk by chunk; per-record ids in a temporary memory-mapped file above
   5*10^7 records), the path ``index_trace`` takes at every length, against the one-sort
   reference of ``tests/reference_index.py`` (one stable sort of every record's key; memory
   grows with the records, about 40 bytes each), run on the same trace: ns/record, ratio,
   identical outputs, and each one's peak anonymous memory growth (sampled every 20 ms from
   ``/proc/self/status``, as in bench_large.py).  The hash pass runs ``--repeat`` times
   (every time printed, the best one compared); its user time is steady but its system time
   (new page-cache pages of the scratch file) varies a lot between runs on the shared VM.
   The one-sort baseline runs once.  ``--skip-one-sort`` leaves the baseline out (it needs
   about 5 GB at 10^8 records).
3. The whole ``index_trace`` (page ids, then threads and gaps) on a fresh copy of the trace:
   ns/record, and as a ratio to the page ids alone (section 2's chunked run).

Numba kernels are compiled (or loaded from the cache) on a small prefix first, not timed.
One thread: nothing here needs the second core.  Linux only (``/proc``).
"""
from __future__ import annotations

import argparse
import gc
import importlib
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import vmlab  # noqa: E402
from bench_large import MemWatch, fmt_mb  # noqa: E402
from reference_index import pages_in_one_sort  # noqa: E402
from vmlab.trace import synth  # noqa: E402

# the module (vmlab.engine exports a function of the same name)
P = importlib.import_module("vmlab.engine.prepare")

NAMES = ("keys", "first_rec", "rank", "by_key", "rec_page")


def timed(fn, *args):
    with MemWatch() as m:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        out = fn(*args)
        el = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    m.user_s, m.sys_s = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return out, el, m


def split(m, n):
    """CPU time per record, user and system (this process, every thread)."""
    return f"user {m.user_s / n * 1e9:.1f} + sys {m.sys_s / n * 1e9:.1f} ns"


def warm_up(tr, shift):
    """Compile (or load) the kernels of both paths for this trace's dtypes."""
    small = tr[:5000]
    old = P._CHUNK
    try:
        P._CHUNK = 1000
        P._pages_chunked(small, shift, len(small))
    finally:
        P._CHUNK = old
    pages_in_one_sort(small, shift)
    P._index_trace(small)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000_000)
    ap.add_argument("--pages", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the chunked path (best kept)")
    ap.add_argument("--skip-one-sort", action="store_true",
                    help="leave out the one-sort baseline (memory grows with the records)")
    a = ap.parse_args()
    n = a.records
    if n < 1:
        ap.error("--records must be at least 1")

    t0 = time.perf_counter()
    tr = synth.zipf(n, a.pages, alpha=1.0, seed=1)
    gen = time.perf_counter() - t0
    shift = int(tr.page_size).bit_length() - 1
    print(f"[1] trace: synth.zipf({n:,}, {a.pages:,}, alpha=1.0, seed=1), 1 thread, "
          f"generated in {gen:.1f} s; columns "
          + ", ".join(f"{k}:{v.dtype}" for k, v in tr.columns.items()), flush=True)
    warm_up(tr, shift)

    runs = []
    for _ in range(max(1, a.repeat)):
        many = None
        gc.collect()
        many, el, m = timed(P._pages_chunked, tr, shift, n)
        runs.append((el, m))
    el_c, m_c = min(runs, key=lambda r: r[0])
    scratch = isinstance(many[4], np.memmap)
    n_keys = len(many[0])
    print(f"[2] page ids: {len(many[0]):,} distinct pages")
    print(f"    chunked (_pages_chunked):       {el_c:7.2f} s, {el_c / n * 1e9:6.1f} ns/record "
          f"({split(m_c, n)}), peak anonymous memory +{fmt_mb(m_c.anon_growth)}, page ids in "
          f"a scratch file: {scratch}")
    if len(runs) > 1:
        print(f"      best of {len(runs)} runs: "
              + "; ".join(f"{el / n * 1e9:.1f} ns/record ({split(m, n)})" for el, m in runs))
    sys.stdout.flush()
    if not a.skip_one_sort:
        one, el_o, m_o = timed(pages_in_one_sort, tr, shift)
        same = all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(one, many))
        dt = many[4].dtype == one[4].dtype
        print(f"    one sort (reference):           {el_o:7.2f} s, {el_o / n * 1e9:6.1f} ns/record "
              f"({split(m_o, n)}), peak anonymous memory +{fmt_mb(m_o.anon_growth)}")
        print(f"    chunked / one sort: time {el_c / el_o:.3f}x (speed-up {el_o / el_c:.2f}x), "
              f"peak anonymous memory {m_c.anon_growth / max(m_o.anon_growth, 1):.3f}x; "
              f"identical {', '.join(NAMES)}: {same} (same page-id dtype: {dt})")
        del one
    del many
    gc.collect()

    # a fresh trace object with the same columns: index_trace caches per object
    tr2 = vmlab.Trace(tr.addr, op=tr.op, tid=tr.tid, asid=tr.asid, size=tr.size,
                      meta=tr.meta)
    idx, el_i, m_i = timed(P.index_trace, tr2)
    print(f"[3] index_trace (page ids, threads, gaps): {el_i:.2f} s, {el_i / n * 1e9:.1f} "
          f"ns/record, peak anonymous memory +{fmt_mb(m_i.anon_growth)}; index_trace / page ids "
          f"(chunked) = {el_i / el_c:.2f}x; same distinct pages: {len(idx.keys) == n_keys}")


if __name__ == "__main__":
    main()
