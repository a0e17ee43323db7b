"""Compile the fault engine (or load it from numba's cache) before parallel work.

``python -m vmlab.engine`` (``make test`` and ``make report`` call it first): each
process that later replays a trace then finds the kernel in the cache instead of compiling
it at the same time as its neighbours.
"""
from __future__ import annotations

import sys
import time

import numpy as np


def warm(verbose=False):
    """Compile (or load) the kernel for the input types replays use: traces with and without
    a gap column.  Returns the seconds it took."""
    from ..model import Scenario, Vma
    from ..trace import Trace
    from .run import run

    base = 0x7F0000000000
    addr = np.arange(4, dtype=np.uint64) * np.uint64(4096) + np.uint64(base)
    vmas = [Vma(base, base + 4 * 4096, "file")]
    traces = (Trace(addr),
              Trace(addr, tid=np.array([1, 2, 1, 2], np.uint32),
                    gap_ns=np.array([10, 20, 30, 40], np.uint64)))
    t0 = time.perf_counter()
    for tr in traces:  # (prepare's own numba functions compile on the way)
        run(Scenario(tr, vmas=vmas, memory_pages=8), "nopage")
    took = time.perf_counter() - t0
    if verbose:
        print(f"vmlab: fault engine ready ({took:.1f} s)", file=sys.stderr)
    return took

