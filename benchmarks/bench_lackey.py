"""Benchmark: converting valgrind lackey output to vmlab's native format.

Generates (once, cached in the work directory) a synthetic lackey ``--trace-mem=yes`` file of
N records with a realistic line mix (~60% ``I``, 25% ``L``, 10% ``S``, 5% ``M``; 9-12 digit
hex addresses; x86-like sizes), then, each in a fresh child process (so the generator's
memory does not count):

* ``convert()`` to ``.vmt``: records/s, MB/s, peak RSS of the child;
* the reader alone (``lackey.iter_chunks``, records discarded): records/s.

Baselines measured on the same (page-cached) file: ``wc -l`` and ``np.fromfile``.

``ru_maxrss`` is not used for the peak RSS: Linux keeps the parent's high-water mark across
fork+exec, so the child reports ``VmHWM`` from ``/proc/self/status`` instead.

Usage::

    python benchmarks/bench_lackey.py [--records 100000000] [--workdir /tmp/vmlab-bench]
                                      [--keep] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: op letters in lackey order of the prefix table below
_PREFIX = np.frombuffer(b"I   L  S  M ", np.uint8).reshape(4, 3)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_MIX = (0.60, 0.25, 0.10, 0.05)  # I, L, S, M


def _lines(rng, m):
    """Bytes of ``m`` synthetic lackey lines, built with vectorised numpy."""
    kind = rng.choice(4, size=m, p=_MIX)
    ndig = rng.integers(9, 13, size=m)  # 9..12 hex digits
    top = rng.integers(1, 16, size=m, dtype=np.uint64)
    low = rng.integers(0, 1 << 44, size=m, dtype=np.uint64)
    shift = (4 * (ndig - 1)).astype(np.uint64)
    addr = (top << shift) | (low & ((np.uint64(1) << shift) - np.uint64(1)))
    ifetch = kind == 0
    size = np.where(ifetch, rng.integers(1, 16, size=m),
                    rng.choice(np.array([1, 2, 4, 8, 8, 8, 16, 32]), size=m))
    # no access crosses a page (the reader would make it a record per page): moved back
    # within its page, so the reader returns exactly one record a line
    cross = (addr & np.uint64(4095)) + size.astype(np.uint64) > np.uint64(4096)
    addr = np.where(cross, addr - size.astype(np.uint64), addr)
    width = 3 + 12 + 1 + 2 + 1
    out = np.empty((m, width), np.uint8)
    keep = np.ones((m, width), bool)
    out[:, :3] = _PREFIX[kind]
    for k in range(12):
        nib = (addr >> np.uint64(4 * (11 - k))) & np.uint64(15)
        out[:, 3 + k] = _HEX[nib]
        keep[:, 3 + k] = k >= 12 - ndig
    out[:, 15] = ord(",")
    out[:, 16] = 48 + size // 10
    keep[:, 16] = size >= 10
    out[:, 17] = 48 + size % 10
    out[:, 18] = 10
    return out[keep].tobytes()


def generate(path, n_records, seed=1, chunk=1 << 21):
    """Write ``n_records`` synthetic lackey lines (with a valgrind header/footer) to ``path``."""
    rng = np.random.default_rng(seed)
    tmp = Path(str(path) + ".part")
    with open(tmp, "wb") as f:
        f.write(b"==4242== Lackey, an example Valgrind tool\n==4242== Command: ./synthetic\n"
                b"==4242== \n")
        for lo in range(0, n_records, chunk):
            f.write(_lines(rng, min(chunk, n_records - lo)))
        f.write(b"==4242== \n==4242== Exit code:       0\n")
    os.replace(tmp, path)


_CHILD = r"""
import json, sys, threading, time
from pathlib import Path
mode, src, dst, small, threads = sys.argv[1:6]
from vmlab.trace.convert import convert
from vmlab.trace.readers import lackey

def status():
    return {k: int(v.split()[0]) for k, v in (l.split(":", 1) for l in
            open("/proc/self/status").read().splitlines() if ":" in l) if v.strip().endswith("kB")}

peak_anon = [0]
done = threading.Event()
def sample():  # RssAnon has no high-water mark: sample it
    while not done.wait(0.01):
        peak_anon[0] = max(peak_anon[0], status()["RssAnon"])
# warm-up on a tiny file so numba's (cached) compilation is not timed
convert(small, dst, "lackey")
for _ in lackey.iter_chunks(small):
    pass
Path(dst).unlink()
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
if mode == "convert":
    convert(src, dst, "lackey", threads=int(threads))
    n = None
else:
    n = 0
    for c in lackey.iter_chunks(src, threads=int(threads)):
        n += len(c["addr"])
dt = time.perf_counter() - t
done.set()
# VmHWM: peak RSS of this process image (ru_maxrss would include the parent's RSS at fork)
print(json.dumps({"seconds": dt, "records": n, "maxrss_kb": status()["VmHWM"],
                  "anon_kb": peak_anon[0]}))
"""


def _child(mode, src, dst, small, threads):
    os.sync()  # start each run without another run's dirty pages being written back
    res = subprocess.run([sys.executable, "-c", _CHILD, mode, str(src), str(dst), str(small),
                          str(threads)], capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"benchmark child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=float, default=1e8, help="records to generate (1e8)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "vmlab-bench"))
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--threads", type=int, default=2, help="parser threads (2)")
    args = ap.parse_args(argv)
    n = int(args.records)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"lackey_{n}.txt"
    small = work / "lackey_small.txt"
    dst = work / f"lackey_{n}.vmt"
    try:
        if not src.exists():
            t = time.perf_counter()
            generate(src, n)
            print(f"generated {n:,} records ({src.stat().st_size / 1e6:,.0f} MB) in "
                  f"{time.perf_counter() - t:.1f} s -> {src}")
        if not small.exists():
            generate(small, 10_000, seed=2)
        nbytes = src.stat().st_size

        # baselines (file read once first so every pass sees a warm page cache)
        subprocess.run(["wc", "-l", str(src)], check=True, capture_output=True)
        t = time.perf_counter()
        subprocess.run(["wc", "-l", str(src)], check=True, capture_output=True)
        t_wc = time.perf_counter() - t
        t = time.perf_counter()
        data = np.fromfile(src, np.uint8)
        t_np = time.perf_counter() - t
        del data

        parse = _child("parse", src, dst, small, args.threads)
        conv = _child("convert", src, dst, small, args.threads)
        if parse["records"] != n:
            sys.exit(f"reader returned {parse['records']} records, expected {n}")

        for label, res in (("lackey convert", conv), ("lackey parse only", parse)):
            s = res["seconds"]
            print(f"{label}: {n / s / 1e6:.1f} Mrec/s, {nbytes / s / 1e6:,.0f} MB/s "
                  f"({t_wc / s:.2f} x the speed of wc -l, {t_np / s:.2f} x np.fromfile on the "
                  f"same file), {s:.2f} s, peak RSS {res['maxrss_kb'] / 1024:,.0f} MB "
                  f"(anonymous {res['anon_kb'] / 1024:,.0f} MB)")
        print(f"baselines: wc -l {t_wc:.2f} s ({nbytes / t_wc / 1e6:,.0f} MB/s), "
              f"np.fromfile {t_np:.2f} s ({nbytes / t_np / 1e6:,.0f} MB/s); "
              f"{nbytes / 1e6:,.0f} MB, {n:,} records, {os.cpu_count()} CPUs")
    finally:
        if not args.keep:
            for p in (src, small, dst):
                p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
