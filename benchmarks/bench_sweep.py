"""Sampled sweeps against exact ones, and sweeps on a dask cluster of 1 and 2 workers.

    python benchmarks/bench_sweep.py [--records 100000000] [--rate 0.01] [--points 20]
                                     [--replacements lru,fifo,clock] [--dask-records 10000000]
                                     [--dir DIR] [--keep] [--skip-dask] [--skip-sampling]

1. Sampling (issue 11's targets: R = 0.01 on 10^8 Zipf records, a 20-point memory sweep,
   mean absolute error of the fault ratio <= 0.005 and maximum <= 0.01 for every
   replacement algorithm, the sampled sweep >= 50x faster than the exact one).  The trace is
   ``bench_large``'s (Zipf 1.0 over 10^6 pages, one thread, streamed to a ``.vmt`` and
   memory-mapped).  Memory sizes: 20 points from 5% to 100% of the distinct pages.  Every
   algorithm of ``vmlab.model.scenario.REPLACEMENTS`` is measured, so a new one (the
   two-list policy) joins the table when the engine has it.  Both sweeps run one point at a
   time (``n_jobs=1``); the one-off trace index (exact) and sampling pass (sampled) are
   timed apart and added in the end-to-end ratio.
2. Dask (target: the same rows as the local sweep; 2 worker processes >= 1.7x one): a
   18-point exact sweep (memory x replacement) of the first trace's configuration on a
   10^7-record trace, on a ``LocalCluster`` of 1 and one of 2 one-thread workers, each
   warmed up by one sweep first (workers open the trace and load the kernel), their sweeps
   alternating over three rounds (the median of the rounds' ratios: the shared machine's
   speed drifts), timed against the same sweep run locally in this process, and against
   the machine's own ceiling: the same points split over 1 and 2 plain worker processes
   (no scheduler).

The machine is shared: the load average is printed with the figures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_large  # noqa: E402  (the trace generator)

import vmlab  # noqa: E402
from vmlab.distributed import local_cluster  # noqa: E402
from vmlab.engine import index_trace  # noqa: E402
from vmlab.model.scenario import REPLACEMENTS  # noqa: E402
from vmlab.sampling import sample_trace  # noqa: E402
from vmlab.trace import open_trace  # noqa: E402

TIMING = ("prepare_s", "kernel_s")


def load():
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def vma_of(trace):
    """One file VMA over the generator's pages (no inference pass over the trace)."""
    return (vmlab.Vma(bench_large.BASE, bench_large.BASE + bench_large.PAGES * bench_large.PAGE_SIZE,
                      backing="file", name="zipf"),)


def sampling(path, n, rate, points, replacements):
    tr = open_trace(path)
    t0 = time.perf_counter()
    D = len(index_trace(tr).keys)
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample_trace(tr, rate)
    sample_s = time.perf_counter() - t0
    sizes = [int(round(f * D)) for f in np.linspace(0.05, 1.0, points)]
    sc = vmlab.Scenario(tr, vmas=vma_of(tr), records=False, horizon_ns=10**18)
    print(f"[1] sampling: {n:,} records, {D:,} distinct pages, {points} sizes "
          f"{sizes[0]:,}..{sizes[-1]:,} pages, R = {rate:g} ({load()})")
    print(f"    one-off: trace index {index_s:.1f} s (exact), sampling pass {sample_s:.2f} s "
          f"({len(sample_trace(tr, rate)):,} records kept)")
    print(f"    {'replacement':<12}{'exact s':>10}{'sampled s':>11}{'speed-up':>10}"
          f"{'end-to-end':>12}{'MAE':>9}{'max err':>9}{'max at':>10}")
    tot_e = tot_s = 0.0
    out = {}
    for repl in replacements:
        grid = {"memory_pages": sizes}
        base = sc.replace(replacement=repl)
        t0 = time.perf_counter()
        ex = vmlab.sweep(base, grid, n_jobs=1, show_progress=False)
        exact_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sm = vmlab.sweep(base.replace(sample_rate=rate), grid, n_jobs=1, show_progress=False)
        sampled_s = time.perf_counter() - t0
        err = (sm["n_faults"] / sm["n_accesses"] - ex["n_faults"] / ex["n_accesses"]).abs()
        worst = int(err.idxmax())
        e2e = (exact_s + index_s / len(replacements)) / (sampled_s + sample_s / len(replacements))
        print(f"    {repl:<12}{exact_s:>10.1f}{sampled_s:>11.2f}{exact_s / sampled_s:>9.0f}x"
              f"{e2e:>11.0f}x{err.mean():>9.4f}{err.max():>9.4f}{sizes[worst]:>10,}")
        tot_e += exact_s
        tot_s += sampled_s
        out[repl] = (ex, sm)
    print(f"    all: exact {tot_e:.1f} s, sampled {tot_s:.2f} s: {tot_e / tot_s:.0f}x "
          f"({load()})")
    print("    targets: MAE <= 0.005, max <= 0.01, speed-up >= 50x", flush=True)
    return out


_PLAIN = {}


def _plain_points(path, points):
    """In a plain worker process: the grid ``points`` of the benchmark's scenario on the trace
    at ``path`` (the machine's own two-process ceiling, without dask)."""
    from vmlab.simulation import apply_point

    if path not in _PLAIN:  # opened once a process, like a dask worker's trace
        tr = open_trace(path)
        _PLAIN[path] = vmlab.Scenario(tr, vmas=vma_of(tr), records=False, horizon_ns=10**18)
    sc = _PLAIN[path]
    return [vmlab.simulate(*apply_point(sc, p)).summary["n_faults"] for p in points]


def plain_processes(path, points, workers, rounds=1):
    """Points per second with ``workers`` plain processes, each given an equal share of the
    points in one call after a warm-up point of its own (no scheduler at all); one rate per
    round, the pool kept across rounds."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        list(ex.map(_plain_points, [path] * workers, [points[:1]] * workers))  # warm each up
        shares = [points[k::workers] for k in range(workers)]
        rates = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            list(ex.map(_plain_points, [path] * workers, shares))
            rates.append(len(points) / (time.perf_counter() - t0))
        return rates


def _ratios(one, two):
    """Round-by-round ratios two / one and their median."""
    r = [b / a for a, b in zip(one, two)]
    return r, float(np.median(r))


def dask_scaling(path, n, rounds=3):
    """The dask figures.  This machine's speed drifts by tens of percent over a minute (a
    shared VM), so the 1-worker and 2-worker clusters are both started first and their sweeps
    alternate, ``rounds`` times; each round gives a ratio, and the median is the figure."""
    import distributed

    tr = open_trace(path)
    D = len(index_trace(tr).keys)
    sc = vmlab.Scenario(tr, vmas=vma_of(tr), records=False, horizon_ns=10**18)
    grid = {"replacement": ["lru", "fifo", "clock"],
            "memory_pages": [int(D * f) for f in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)]}
    n_points = len(grid["replacement"]) * len(grid["memory_pages"])
    # four points: a first wave of two a worker warms both workers (trace, index, kernel)
    warm = {"memory_pages": [int(D * 0.1), int(D * 0.2)], "replacement": ["lru", "clock"]}
    print(f"[2] dask: {n_points}-point exact sweep on {n:,} records, {rounds} alternating "
          f"rounds ({load()})", flush=True)
    vmlab.sweep(sc, warm, n_jobs=1, show_progress=False)
    t0 = time.perf_counter()
    local = vmlab.sweep(sc, grid, n_jobs=1, show_progress=False)
    local_s = time.perf_counter() - t0
    print(f"    local, one thread: {local_s:.1f} s ({n_points / local_s:.2f} points/s)")
    cols = [c for c in local.columns if c not in TIMING]
    clusters, clients = {}, {}
    rates = {1: [], 2: []}
    same = {1: True, 2: True}
    try:
        for workers in (1, 2):
            clusters[workers] = local_cluster(workers)
            clients[workers] = distributed.Client(clusters[workers])
            vmlab.sweep(sc, warm, client=clients[workers], show_progress=False)
        for _ in range(rounds):
            for workers in (1, 2):
                t0 = time.perf_counter()
                df = vmlab.sweep(sc, grid, client=clients[workers], show_progress=False)
                rates[workers].append(n_points / (time.perf_counter() - t0))
                same[workers] &= df[cols].equals(local[cols])
    finally:
        for workers in clients:
            clients[workers].close()
            clusters[workers].close()
    for workers in (1, 2):
        print(f"    {workers} worker{'s' if workers > 1 else ' '}: "
              f"{', '.join(f'{r:.2f}' for r in rates[workers])} points/s, rows identical to "
              f"the local sweep: {same[workers]}", flush=True)
    each, med = _ratios(rates[1], rates[2])
    print(f"    2 workers / 1 worker: {med:.2f}x, median of the rounds "
          f"({', '.join(f'{r:.2f}' for r in each)}; target 1.7x; {load()})")
    # the machine's own ceiling: the same points in 1 and 2 plain processes, no dask
    points = [{"replacement": r, "memory_pages": m}
              for r in grid["replacement"] for m in grid["memory_pages"]]
    plain = {w: plain_processes(path, points, w, rounds) for w in (1, 2)}
    p_each, p_med = _ratios(plain[1], plain[2])
    print(f"    baseline, plain processes (no dask): 1 process "
          f"{', '.join(f'{r:.2f}' for r in plain[1])} points/s, 2 processes "
          f"{', '.join(f'{r:.2f}' for r in plain[2])}: {p_med:.2f}x (median); dask's 2-worker "
          f"scaling is {med / p_med:.0%} of it ({load()})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000_000)
    p.add_argument("--rate", type=float, default=0.01)
    p.add_argument("--points", type=int, default=20)
    p.add_argument("--replacements", default=",".join(REPLACEMENTS))
    p.add_argument("--dask-records", type=int, default=10_000_000)
    p.add_argument("--dir", default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--skip-dask", action="store_true")
    p.add_argument("--skip-sampling", action="store_true")
    a = p.parse_args(argv)
    own = a.dir is None
    d = Path(tempfile.mkdtemp(prefix="vmlab-bench-sweep-") if own else a.dir)
    d.mkdir(parents=True, exist_ok=True)
    wall0 = time.perf_counter()
    paths = {}
    try:
        for n, skip in ((a.records, a.skip_sampling), (a.dask_records, a.skip_dask)):
            if skip or n in paths:
                continue
            paths[n] = d / f"zipf-{n}.vmt"
            el, size, _ = bench_large.make_trace(paths[n], n)
            print(f"    trace {n:,} records: " + ("reused" if el is None else f"{el:.0f} s"),
                  flush=True)
        if not a.skip_sampling:
            sampling(paths[a.records], a.records, a.rate, a.points,
                     [r.strip() for r in a.replacements.split(",") if r.strip()])
        if not a.skip_dask:
            dask_scaling(paths[a.dask_records], a.dask_records)
    finally:
        if not a.keep:
            for q in paths.values():
                q.unlink(missing_ok=True)
            if own:
                shutil.rmtree(d, ignore_errors=True)
    print(f"total wall time {time.perf_counter() - wall0:.0f} s")


if __name__ == "__main__":
    main()
