"""Long fuzz runs of every trace reader and of ``.vmt`` corruption (issue 13).

    python benchmarks/fuzz.py [--n 100000] [--seed 0] [--time-limit 1.0] [--save FOLDER]

Input ``i`` is seed file ``random.Random(seed + i).choice(...)`` changed by one to three
mutations (``tests/fuzzing.py``: bit flips, interesting bytes, long runs, huge numbers,
deleted/duplicated/swapped lines, truncation, the issue's hostile lines; for ``.vmt`` header
fields of the wrong type or range, moved or repeated columns, damaged column bytes).  Every
fifth text input is also converted to ``.vmt`` and read back.  Prints, per seed, how many
inputs were read soundly and how many refused with one line, the most frequent refusal
messages, the slowest input, and every failure (another exception, a multi-line message, a
damaged column read, a wrong conversion, or over ``--time-limit`` seconds of CPU time, ten times
that of wall time: the machine may be shared); failing inputs are
saved to ``--save`` to replay.  Exit code 1 if anything failed.
"""
from __future__ import annotations

import argparse
import collections
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fuzzing  # noqa: E402


def _kind(message):
    """A refusal message without its file name, line number and quoted values."""
    m = re.sub(r"^\S+?:(\d+:)? ", "", message)
    m = re.sub(r"'[^']*'|\"[^\"]*\"|0x[0-9a-f]+|\d+", "_", m)
    return m[:90]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=1.0)
    ap.add_argument("--save", default="fuzz-failures")
    ap.add_argument("--every", type=int, default=10_000, help="progress line every N inputs")
    a = ap.parse_args()

    seeds = fuzzing.seeds()
    originals = fuzzing.seed_traces(seeds)
    names = sorted(seeds)
    counts = collections.Counter()
    kinds = collections.Counter()
    mutations = collections.Counter()
    failures = []
    slowest = (0.0, None)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name in names:  # warm up (numba caches) outside the time limit
            fuzzing.check(d / "warm", *seeds[name], originals.get(name), convert_to=d / "w.vmt",
                          time_limit_s=600)
        for i in range(a.n):
            rnd = random.Random(a.seed + i)
            name = rnd.choice(names)
            fmt, data = seeds[name]
            mutated, how = fuzzing.mutate(fmt, data, rnd)
            mutations.update(how)
            outcome, detail, elapsed = fuzzing.check(
                d / ("in.vmt" if fmt == "vmt" else "in.txt"), fmt, mutated, originals.get(name),
                convert_to=d / "out.vmt" if fmt != "vmt" and i % 5 == 0 else None,
                time_limit_s=a.time_limit)
            counts[(name, outcome)] += 1
            if elapsed > slowest[0]:
                slowest = (elapsed, f"input {i} ({name}, {'+'.join(how)}, {len(mutated):,} bytes)")
            if outcome == "refused":
                kinds[_kind(detail)] += 1
            elif outcome == "failure":
                save = Path(a.save)
                save.mkdir(parents=True, exist_ok=True)
                (save / f"{i}.{fmt}").write_bytes(mutated)
                failures.append((i, name, how, detail))
                print(f"FAILURE input {i} ({name}, {'+'.join(how)}): {detail}", flush=True)
            if a.every and (i + 1) % a.every == 0:
                print(f"  {i + 1:,} inputs, {len(failures)} failure(s), "
                      f"{time.perf_counter() - t_start:,.0f} s", flush=True)
    total = time.perf_counter() - t_start
    print(f"\n{a.n:,} inputs (seed {a.seed}) in {total:,.0f} s, "
          f"{a.n / total:,.0f} inputs/s; limit {a.time_limit} s of CPU per input")
    print(f"{'seed':16s} {'read':>8s} {'refused':>8s} {'failed':>8s}")
    for name in names:
        print(f"{name:16s} {counts[(name, 'ok')]:8,} {counts[(name, 'refused')]:8,} "
              f"{counts[(name, 'failure')]:8,}")
    print("mutations applied: " + ", ".join(f"{k} {v:,}" for k, v in mutations.most_common()))
    print(f"slowest input: {slowest[0]:.3f} s of CPU, {slowest[1]}")
    print(f"{len(kinds):,} distinct refusal messages; the most frequent:")
    for k, v in kinds.most_common(12):
        print(f"  {v:7,}  {k}")
    print(f"failures: {len(failures)}" + (f" (inputs saved in {a.save}/)" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
