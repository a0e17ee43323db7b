"""Where the fault engine's replay time goes, line by line (a profile for issue 8's speed work).

    python benchmarks/profile_engine.py 1|4 [--reps 20] [--top 40] [--keep DIR]

Runs ``bench_engine.py``'s scenario [1] (the standard trace) or [4] (8 threads, signals, an
mmap loop) ``--reps`` times under ``perf record`` (Linux ``perf``; as root, or with
``kernel.perf_event_paranoid`` <= 1) and prints the share of the replay's samples on each
source line of ``vmlab/engine/kernel/`` (and each file).

perf cannot name numba's code by itself: it is compiled in memory.  So the script compiles
the engine afresh (an empty ``NUMBA_CACHE_DIR``) with ``NUMBA_DEBUGINFO=1``, takes the object
code of the event loop's library (its two objects: the loop, with every phase and verb
inlined into ``_run_pass``, and the functions it calls), the addresses they were loaded at,
and maps each sample's address through the objects' line tables (``addr2line``).  perf
records only the replays (it attaches after the compile).  Samples land on the instruction
after a stall, so a line's share is where the time shows, usually one instruction after the
load that missed the cache.  The debug-info build keeps the same
optimisation level; its rates are a few percent below the normal build's.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _loaded_objects(out_dir):
    """The object code of ``_run_pass``'s library, written to ``out_dir``: the loop's object
    and, where the pass was split (``vmlab._numba.split_called_functions``), the called
    functions' object.  For each, (path, offset to add to a sample address to get an address
    in the object's ``.ltext`` section, that section's size)."""
    from vmlab.engine.kernel import loop

    (cres,) = loop._run_pass.overloads.values()
    lib = cres.library
    ee = lib._codegen._engine._ee
    parts = [("run_pass.o", lib._get_compiled_object(), cres.fndesc.llvm_func_name)]
    if getattr(lib, "_called_object", None) is not None:
        parts.append(("called.o", lib._called_object, None))
    out = []
    for file_name, data, name in parts:
        obj = Path(out_dir) / file_name
        obj.write_bytes(data)
        nm = subprocess.run(["nm", "--defined-only", str(obj)], capture_output=True,
                            text=True, check=True).stdout.splitlines()
        if name is None:   # (any global function of the object)
            name = next(line.split()[2] for line in nm if line.split()[1] == "T")
        at = next(int(line.split()[0], 16) for line in nm if line.endswith(" " + name))
        sizes = subprocess.run(["size", "-A", str(obj)], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        size = next(int(line.split()[1]) for line in sizes if line.startswith(".ltext"))
        out.append((obj, at - ee.get_function_address(name), size))
    return out


def _lines(obj, offsets):
    """``{offset: "file:line"}`` for the object addresses ``offsets`` (paths from vmlab/)."""
    offsets = sorted(offsets)
    out = {}
    for lo in range(0, len(offsets), 2000):
        part = offsets[lo:lo + 2000]
        res = subprocess.run(["addr2line", "-e", str(obj), "-j", ".ltext"]
                             + [hex(a) for a in part], capture_output=True, text=True,
                             check=True).stdout.splitlines()
        for a, where in zip(part, res):
            out[a] = re.sub(r".*/vmlab/", "", where)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("which", choices=("1", "4"), help="bench_engine.py's scenario")
    ap.add_argument("--reps", type=int, default=20, help="replays recorded (default 20)")
    ap.add_argument("--top", type=int, default=40, help="lines listed (default 40)")
    ap.add_argument("--keep", default=None, help="keep the perf data and object code here")
    a = ap.parse_args(argv)
    for tool in ("perf", "nm", "addr2line"):
        if shutil.which(tool) is None:
            sys.exit(f"profile_engine: needs {tool!r} on PATH (Debian: linux-perf, binutils)")
    work = Path(a.keep or tempfile.mkdtemp(prefix="vmlab-profile-"))
    work.mkdir(parents=True, exist_ok=True)
    # a fresh cache, compiled with line tables: set before numba is imported
    os.environ["NUMBA_CACHE_DIR"] = str(work / "numba-cache")
    os.environ["NUMBA_DEBUGINFO"] = "1"
    import warnings

    warnings.filterwarnings("ignore", message=".*Could not find source.*")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_engine as be
    from vmlab.engine.kernel import loop
    from vmlab.engine.prepare import prepare
    from vmlab.engine.run import compile_kernel

    if a.which == "1":
        tr, sc, *_ = be.standard(10_000_000)
        policy = "nopage"
    else:
        tr, sc = be.threads_scenario(2_000_000)
        policy = "nopage_refault"
    prep = prepare(sc, policy)
    t0 = time.process_time()
    compile_kernel(prep.inputs)
    print(f"compiled with debug info in {time.process_time() - t0:.1f} s CPU", file=sys.stderr)
    loop._simulate(prep.inputs)
    objects = _loaded_objects(work)
    data = work / "perf.data"
    perf = subprocess.Popen(["perf", "record", "-q", "-F", "4999", "-p", str(os.getpid()),
                             "-o", str(data)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # (perf attaches)
    cpu = []
    for _ in range(a.reps):
        c0 = time.process_time()
        loop._simulate(prep.inputs)
        cpu.append(time.process_time() - c0)
    perf.send_signal(signal.SIGINT)
    perf.wait()
    ips = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip"], capture_output=True,
                         text=True, check=True).stdout.split()
    hits = [collections.Counter() for _ in objects]
    n_all = 0
    for ip in ips:
        n_all += 1
        for h, (obj, shift, size) in zip(hits, objects):
            off = int(ip, 16) + shift
            if 0 <= off < size:
                h[off] += 1
                break
    by_line, by_file = collections.Counter(), collections.Counter()
    for h, (obj, shift, size) in zip(hits, objects):
        where = _lines(obj, h)
        for off, k in h.items():
            by_line[where[off]] += k
            by_file[where[off].split(":")[0]] += k
    n = sum(sum(h.values()) for h in hits)
    best = len(tr) / min(cpu) / 1e6
    print(f"[{a.which}] {len(tr):,} records, {a.reps} replays, best {best:.1f} M records/s "
          f"(debug-info build); {n:,} of {n_all:,} samples in the engine's code")
    print("\nby file")
    for f, k in by_file.most_common():
        print(f"  {100 * k / n:5.1f}%  {f}")
    print(f"\nby line (top {a.top}; '?' is code without a line, e.g. numba's own helpers)")
    for line, k in by_line.most_common(a.top):
        print(f"  {100 * k / n:5.1f}%  {line}")
    if a.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
