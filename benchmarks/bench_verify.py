"""What verifying a ``.vmt`` on open costs, against a replay of the same file (issue 13).

    python benchmarks/bench_verify.py [--records 10000000] [--repeat 3]

Writes a Zipf trace (alpha 1.0 over 10^6 pages, one thread) to a temporary ``.vmt``, then,
``--repeat`` times, alternating so both see the same page-cache state:

* replay: ``open_trace(verify=False)`` + trace index + ``simulate`` of the standard scenario
  (10% memory, LRU, nopage, summary only): what ``vmlab run`` does after the open;
* verify: ``verify_columns`` on the opened trace: every column's CRC-32 plus the op/size
  check, i.e. what ``open_trace(verify=True)`` adds.

Prints each time and the ratio verify / replay (best of the repeats for each).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import vmlab
from vmlab.engine import index_trace
from vmlab.trace import synth
from vmlab.trace.native import open_trace, read_header, save_trace, verify_columns

BASE = 0x7F0000000000


def replay(path):
    t0 = time.perf_counter()
    tr = open_trace(path, verify=False)
    idx = index_trace(tr)
    sc = vmlab.Scenario(tr, vmas=[vmlab.Vma(BASE, BASE + (1 << 20) * 4096, "file")],
                        memory_pages=max(1, len(idx.keys) // 10), records=False)
    r = vmlab.simulate(sc, "nopage")
    return time.perf_counter() - t0, r


def verify(path):
    tr = open_trace(path, verify=False)
    hdr = read_header(path)
    t0 = time.perf_counter()
    verify_columns(path, hdr, tr.columns)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "zipf.vmt"
        save_trace(synth.zipf(a.records, 1_000_000, alpha=1.0, seed=1), path)
        size_mb = os.path.getsize(path) / 1e6
        replay(path)  # compile / warm the numba cache and the page cache
        replays, verifies = [], []
        for _ in range(a.repeat):
            replays.append(replay(path)[0])
            verifies.append(verify(path))
        rp, vf = min(replays), min(verifies)
        print(f"{a.records:,} records, {size_mb:,.0f} MB file, {os.cpu_count()} cores")
        print(f"replay (open + index + simulate): best {rp:.3f} s of "
              f"{', '.join(f'{x:.3f}' for x in replays)}")
        print(f"verify (CRC-32 of every column + op/size check): best {vf:.3f} s of "
              f"{', '.join(f'{x:.3f}' for x in verifies)} ({size_mb / vf:,.0f} MB/s)")
        print(f"verify / replay = {vf / rp:.1%}")


if __name__ == "__main__":
    main()
