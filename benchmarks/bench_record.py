"""What ``vmlab record`` (lackey) costs over the valgrind run itself.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_record.py [--reps 3] [-- PROGRAM ARGS...]

Baseline, in the same process and interleaved with vmlab's runs: the valgrind command
``vmlab record`` runs (lackey with --trace-syscalls and -d), its trace written into a pipe
that ``cat > /dev/null`` drains (the cheapest sink that keeps every record; lackey issues one
write() per line, so a regular file is slower still, shown as a second baseline).  The
target (docs/recording.md, issue 9): vmlab record <= 1.2 x the valgrind run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from vmlab.trace.record import record_lackey, resolve_program


def _time(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = ["ls", "-la", "/usr/bin"]
    if "--" in argv:
        i = argv.index("--")
        prog, argv = argv[i + 1:], argv[:i]
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args(argv)
    exe = resolve_program(prog)
    vg = [shutil.which("valgrind"), "--tool=lackey", "--trace-mem=yes", "--trace-syscalls=yes",
          "-d", "--vgdb=no"]
    with tempfile.TemporaryDirectory(prefix="vmlab-bench-record-") as d:
        def pipe():
            subprocess.run(" ".join([*vg, "--log-fd=3", exe, *prog[1:]])
                           + " 3>&1 1>/dev/null 2>/dev/null | cat > /dev/null", shell=True)

        def to_file():
            subprocess.run([*vg, f"--log-file={d}/t.txt", exe, *prog[1:]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.unlink(f"{d}/t.txt")

        def record():
            record_lackey(prog, f"{d}/t.vmt", quiet=True, stdout=subprocess.DEVNULL)
            os.unlink(f"{d}/t.vmt")

        times = {"valgrind -> pipe": [], "valgrind -> file": [], "vmlab record": []}
        for _ in range(a.reps):
            times["valgrind -> pipe"].append(_time(pipe))
            times["vmlab record"].append(_time(record))
            times["valgrind -> file"].append(_time(to_file))
    base = statistics.median(times["valgrind -> pipe"])
    print(f"program: {' '.join(prog)}; {a.reps} interleaved runs each (median seconds)")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"  {k:<18} {m:8.2f} s   x{m / base:5.2f} of valgrind -> pipe   runs {[round(x, 2) for x in v]}")


if __name__ == "__main__":
    main()
