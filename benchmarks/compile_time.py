"""Where the fault engine's compile time goes (issue 8 item 6).

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_time.py

With an empty numba cache (give it a fresh ``NUMBA_CACHE_DIR``: the script refuses a warm
one), times ``import vmlab`` and the first small ``simulate()``, wall and CPU seconds (CPU is
what a quiet machine's wall time would be: compiling is single-threaded), then lists numba's
own timers: each compiled function (inclusive of what it compiles on the way) and each
compiler pass, from numba's event API (``numba.core.event``).
"""
from __future__ import annotations

import collections
import os
import sys
import time

from numba.core import event


def main():
    if "NUMBA_CACHE_DIR" not in os.environ:
        sys.exit("give an empty cache: NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_time.py")
    w0, c0 = time.perf_counter(), time.process_time()
    import numpy as np

    import vmlab
    w1, c1 = time.perf_counter(), time.process_time()
    base = 0x7F0000000000
    small = vmlab.Scenario(vmlab.Trace(np.array([base], np.uint64)),
                           vmas=[vmlab.Vma(base, base + 4096, "file")])
    with event.install_recorder("numba:compile") as rc, \
            event.install_recorder("numba:run_pass") as rp:
        r = vmlab.simulate(small, "nopage")
    w2, c2 = time.perf_counter(), time.process_time()
    print(f"import vmlab: {w1 - w0:.1f} s wall, {c1 - c0:.1f} s CPU")
    print(f"first simulate(): {w2 - w1:.1f} s wall, {c2 - c1:.1f} s CPU; its timing "
          + ", ".join(f"{k} {v:.2f} s" for k, v in r.timing.items()))
    funcs, passes, open_ = collections.Counter(), collections.Counter(), {}
    for ts, e in rc.buffer:
        k = e.data["dispatcher"].py_func.__qualname__
        if e.is_start:
            open_.setdefault(k, []).append(ts)
        else:
            funcs[k] += ts - open_[k].pop()
    for ts, e in rp.buffer:
        k = f"{e.data['name']} [{e.data['qualname'].split('.')[-1]}]"
        if e.is_start:
            open_.setdefault(k, []).append(ts)
        else:
            passes[k] += ts - open_[k].pop()
    print("compiled functions (wall s, inclusive of functions compiled on the way):")
    for k, v in funcs.most_common(15):
        print(f"  {v:7.2f}  {k}")
    print("compiler passes (wall s):")
    for k, v in passes.most_common(12):
        print(f"  {v:7.2f}  {k}")


if __name__ == "__main__":
    main()
