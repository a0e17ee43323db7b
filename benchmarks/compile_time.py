"""Where the fault engine's compile time goes (issue 8 item 6).

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_time.py

With an empty numba cache (give it a fresh ``NUMBA_CACHE_DIR``: the script refuses a warm
one), times ``import vmlab`` and the first small ``simulate()``, wall and CPU seconds (CPU is
what a quiet machine's wall time would be: compiling is single-threaded), then lists numba's
own timers: each compiled function (inclusive of what it compiles on the way) and each
compiler pass, from numba's event API (``numba.core.event``).  The timers see this process
only: a helper process compiles part of the engine beside it
(``vmlab.engine.run._CompileHelper``); ``VMLAB_COMPILE_HELPER=0`` compiles it all here.
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
    funcs, own, passes, open_ = (collections.Counter(), collections.Counter(),
                                 collections.Counter(), {})
    stack = []  # (function, start, seconds of the compiles nested in it)
    for ts, e in rc.buffer:
        k = e.data["dispatcher"].py_func.__qualname__
        if e.is_start:
            stack.append([k, ts, 0.0])
        else:
            k, t0, nested = stack.pop()
            funcs[k] += ts - t0
            own[k] += ts - t0 - nested
            if stack:
                stack[-1][2] += ts - t0
    # a pass's own time: without the compiles nested in it (type inference compiles the
    # functions it calls)
    merged = sorted([(ts, 0, e) for ts, e in rc.buffer] + [(ts, 1, e) for ts, e in rp.buffer],
                    key=lambda x: x[0])
    pstack = []
    for ts, is_pass, e in merged:
        if is_pass:
            k = f"{e.data['name']} [{e.data['qualname'].split('.')[-1]}]"
            if e.is_start:
                pstack.append([k, ts, 0.0])
            else:
                k, t0, nested = pstack.pop()
                passes[k] += ts - t0 - nested
        elif e.is_start:
            open_.setdefault("compile", []).append((ts, len(pstack)))
        else:
            t0, depth = open_["compile"].pop()
            if depth and depth == len(pstack):
                pstack[-1][2] += ts - t0
    by_pass = collections.Counter()
    for k, v in passes.items():
        by_pass[k.split(" [")[0]] += v
    from vmlab.engine.kernel.loop import COMPILE_ORDER
    loaded = [d.py_func.__name__ for d in COMPILE_ORDER if sum(d.stats.cache_hits.values())]
    print(f"phases the helper process compiled (loaded from the cache): {len(loaded)} of "
          f"{len(COMPILE_ORDER)}" + (f" ({', '.join(loaded)})" if loaded else ""))
    print("compiled functions (wall s, inclusive of functions compiled on the way):")
    for k, v in funcs.most_common(15):
        print(f"  {v:7.2f}  {k}")
    print(f"compiled functions, own time (wall s, without the functions compiled on the way; "
          f"{len(own)} functions, {sum(own.values()):.1f} s in all):")
    for k, v in own.most_common(25):
        print(f"  {v:7.2f}  {k}")
    print("compiler passes, own time (wall s), summed over the functions:")
    for k, v in by_pass.most_common(8):
        print(f"  {v:7.2f}  {k}")
    print("compiler passes, own time (wall s), by function:")
    for k, v in passes.most_common(20):
        print(f"  {v:7.2f}  {k}")


if __name__ == "__main__":
    main()
