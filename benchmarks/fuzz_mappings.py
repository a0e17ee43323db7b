"""Semantic fuzzing of recordings' mappings tables: valid files, odd contents.

    python benchmarks/fuzz_mappings.py [--n 1500] [--seed 0] [SEED.vmt ...]

``benchmarks/fuzz.py`` damages a ``.vmt``'s bytes, which its checksums catch.  Here each
input is a shipped recording (``data/native/lackey_{awk,sqlite,md5sum,sort}.vmt`` by
default) whose mappings table has one to three fields of random rows changed
(``tests/fuzzing.py``'s :func:`mutate_mappings`: a boundary value, another row's value, or
the value moved by a page or a MiB), written again with valid checksums, then read, turned
into a scenario and simulated as ``vmlab run`` and ``vmlab validate`` would
(:func:`check_recording`).  Every input must run or be refused with one line (a
:class:`~vmlab.errors.VmlabError`); anything else (another exception, a multi-line
message) is a failure.  Prints the counts, every failure and the most frequent refusals.
Exit code 1 if anything failed.
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fuzzing  # noqa: E402
from vmlab.trace.native import open_trace  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("traces", nargs="*")
    a = p.parse_args(argv)
    traces = [open_trace(x) for x in (a.traces or fuzzing.RECORDING_SEEDS)]
    counts, failures, refusals = (collections.Counter() for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="vmlab-fuzzmap-") as d:
        for i in range(a.n):
            rnd = random.Random(a.seed + i)
            tr = rnd.choice(traces)
            outcome, detail = fuzzing.check_recording(tr, fuzzing.mutate_mappings(tr, rnd), d)
            counts[outcome] += 1
            (failures if outcome == "failure" else refusals)[detail] += outcome != "ok"
    print(f"{a.n} mutated recordings: {counts['ok']} ran, {counts['refused']} refused with one "
          f"line, failures: {counts['failure']}")
    for k, v in failures.most_common():
        print(f"  FAILURE x{v} (seed {a.seed}): {k}")
    for k, v in refusals.most_common(8):
        if v:
            print(f"  refused x{v}: {k}")
    return 1 if counts["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
