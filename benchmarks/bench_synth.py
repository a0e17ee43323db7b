"""Throughput of the synthetic generators at 10^8 records.

Each generator is timed (best of ``--repeat``, after a small warm-up run that compiles
the numba kernels) and reported in records per second and as a ratio of its time to a
baseline measured in the same process: numpy's ``rng.random(n)`` for the same ``n``
(allocation of the 800 MB result included, as it is for the generators).

Usage::

    python benchmarks/bench_synth.py [--n 100000000] [--pages 1048576] [--repeat 2]
"""
from __future__ import annotations

import argparse
import gc
import os
import time

import numpy as np

from vmlab.trace import synth


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        del out
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10**8)
    ap.add_argument("--pages", type=int, default=1 << 20)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    n, pages = args.n, args.pages

    cases = {
        "zipf": lambda m: synth.zipf(m, pages=pages, alpha=args.alpha, seed=1),
        "uniform": lambda m: synth.uniform(m, pages=pages, seed=1),
        "sequential": lambda m: synth.sequential(m, pages=pages),
    }
    for make in cases.values():  # compile kernels, touch the allocator
        make(1000)
    rng = np.random.default_rng(0)
    base = best_time(lambda: rng.random(n), args.repeat)
    print(f"n = {n:,} records, pages = {pages:,}, alpha = {args.alpha}, "
          f"CPUs = {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, "
          f"best of {args.repeat}")
    print(f"{'generator':<12} {'seconds':>8} {'Mrecords/s':>11} {'x baseline':>11}")
    print(f"{'baseline':<12} {base:8.3f} {n / base / 1e6:11.1f} {1.0:11.2f}   "
          "(numpy rng.random(n))")
    for name, make in cases.items():
        t = best_time(lambda: make(n), args.repeat)
        print(f"{name:<12} {t:8.3f} {n / t / 1e6:11.1f} {t / base:11.2f}")


if __name__ == "__main__":
    main()
