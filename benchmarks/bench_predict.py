"""What ``vmlab validate``'s prediction costs on a long recording, by stage.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_predict.py [--lines 40000] [--reps 3]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_predict.py --trace rec.vmt

The recording: ``sed -n s/9/x/gp`` over ``seq 1 LINES`` (about 2,000 accesses a line:
80 million records at the default), recorded once with ``vmlab record`` (valgrind lackey),
or the ``.vmt`` given with ``--trace``.  Its columns are copied into memory first, so that
the figures are the model's work and not the disk's (this VM's page cache is reclaimed
proactively; a memory-mapped recording is read from disk at ~100 MB/s).

Baseline, in the same process: one numba pass over the records that reads each record's
address, operation and address space and sums their page numbers (the least a stage that
looks at every record must do).  Then, each on a fresh trace object (every stage caches per
trace), the best of ``--reps``:

1. ``generations.separate`` (the ranges mapped again, shifted apart);
2. the whole ``model.recorded.scenario_for`` (separate, the VMAs, the page cache, the
   unmaps: what ``vmlab validate`` builds before it runs);
3. ``simulate`` of that scenario (the record flags and the kernel model's run; the trace's
   page index was made by ``scenario_for``, as in ``vmlab validate``).

Each is printed in ns/record and as a ratio to the baseline.  Numba kernels are compiled
(or loaded) by a first untimed run.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vmlab
from vmlab._numba import njit
from vmlab.trace.native import open_trace


@njit
def _touch(addr, op, asid, shift):
    s = np.uint64(0)
    for i in range(len(addr)):
        s += (np.uint64(addr[i]) >> shift) + np.uint64(op[i]) + np.uint64(asid[i])
    return s


def _in_memory(tr):
    """A fresh trace object over in-memory copies of ``tr``'s columns (no cache shared)."""
    return vmlab.Trace(**{k: np.array(v) for k, v in tr.columns.items()},
                       mappings=tr.mappings, meta=tr.meta)


def _best(setup, fn, reps):
    """The best and every time of ``fn(setup())`` over ``reps`` runs, ``setup`` untimed."""
    times = []
    for _ in range(reps):
        x = setup()
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return min(times), times


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=40000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--trace", help="a recording (.vmt) to use instead of recording sed")
    a = p.parse_args(argv)
    from vmlab.model.generations import separate
    from vmlab.model.recorded import scenario_for

    with tempfile.TemporaryDirectory(prefix="vmlab-bench-predict-") as d:
        if a.trace:
            path = Path(a.trace)
        else:
            from vmlab.trace.record import record_lackey

            nums = Path(d) / "nums.txt"
            nums.write_text("".join(f"{i}\n" for i in range(1, a.lines + 1)))
            path = Path(d) / "sed.vmt"
            t = time.perf_counter()
            record_lackey(["sed", "-n", "s/9/x/gp", str(nums)], path, quiet=True,
                          stdout=subprocess.DEVNULL)
            print(f"recorded sed over {a.lines:,} lines in {time.perf_counter() - t:.1f} s")
        base = open_trace(path)
        tr = _in_memory(base)
        n = len(tr)
        shift = np.uint64(tr.page_size.bit_length() - 1)
        cols = (np.asarray(tr.addr), np.asarray(tr.op), np.asarray(tr.asid))
        _touch(*(c[:10] for c in cols), shift)
        vmlab.simulate(scenario_for(_in_memory(base)))            # compile / load, untimed
        fresh = lambda: _in_memory(base)                           # noqa: E731
        stages = {"baseline: one numba pass": (lambda: cols, lambda c: _touch(*c, shift)),
                  "separate": (fresh, separate),
                  "scenario_for": (fresh, scenario_for),
                  "simulate": (lambda: scenario_for(_in_memory(base)), vmlab.simulate)}
        print(f"{path.name}: {n:,} records, {len(base.mappings.table)} mapping rows; "
              f"best of {a.reps} (seconds of every run)")
        ref = None
        for name, (setup, fn) in stages.items():
            best, times = _best(setup, fn, a.reps)
            ref = ref or best
            print(f"  {name:<26} {best:7.2f} s  {best / n * 1e9:6.1f} ns/record  "
                  f"x{best / ref:6.1f} of the baseline   {[round(x, 2) for x in times]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
