"""Engine benchmark at 10^9 records: memory grows with distinct pages, not with trace length.

The issue's requirement: "the engine's state grows with distinct pages and threads, not with
trace length; per-fault records can be switched off (summary and histograms only) for traces of
10^9 records".  Every figure of the large run is printed next to the same figure for a
baseline run of the same configuration on a shorter trace (default 10^7 records), measured in
the same process, and as a ratio to it.

    python benchmarks/bench_large.py [--records 1000000000] [--baseline-records 10000000]
                                     [--dir DIR] [--keep] [--bin-ns NS] [--horizon-ns NS]

1. Generation: Zipf alpha 1.0 over 10^6 pages, one thread, seed 1, streamed to a ``.vmt``
   file with ``TraceWriter`` in blocks of 2^24 records (bounded memory).  The records are
   exactly those of ``synth.zipf(N, 10**6, alpha=1.0, seed=1)`` (the same random streams,
   drawn block by block; checked on the baseline trace).  Time, rate and file size.
2. Replay: ``open_trace`` (memory-mapped), one file VMA over the 10^6 pages, memory_pages =
   10% of the distinct pages, LRU, ``records=False``, policy ``nopage``.  The one-off trace
   index (``vmlab.engine.index_trace``), then ``simulate``: prepare and kernel time, M
   accesses/s, and memory: ``ru_maxrss`` (the kernel's high-water mark is reset before each
   measured phase through ``/proc/self/clear_refs``, so it is that phase's peak), the RSS
   right before and after, and the anonymous / file-backed split of the peak (sampled every
   20 ms from ``/proc/self/status``; file-backed pages are the memory-mapped trace columns and
   the page-id scratch file, page cache that the OS reclaims under pressure).
3. Verdict: whether memory grew with trace length, per phase, anonymous and file-backed.

``--lackey`` runs issue 11's pipeline instead: a generated lackey text of ``--records`` lines
(the same Zipf page stream, 18 bytes a line), converted to ``.vmt``, a sampling pass at
``--rate`` (0.01), a sampled ``--points``-point (20) LRU memory sweep from 5% to 100% of the
distinct pages (estimated from the sample), its report (``memory_curve`` PNG and a Markdown
table), then the one-off index and one exact replay at the 10% point, compared with the
sampled one.  Each step's time and peak anonymous and file-backed memory are printed; the
target is lackey -> curve and report under 10 minutes in under 2 GB of anonymous memory.
The files go to ``--dir`` (default ``$TMPDIR/vmlab-large``): about 42 bytes a record.

The time horizon defaults to "unbounded" (10^18 ns): with Scenario's default (1 h simulated)
a 10^9-record run at NVMe I/O costs would stop early and leave most records unfinished.
``--bin-ns`` defaults to Scenario's default (1 ms time-series bins).

The default baseline (10^7) fits one chunk of ``index_trace``, so it is indexed by one sort
with its page ids in memory; traces above 2^24 records are indexed chunk by chunk, and above
5*10^7 their page ids go to a scratch file.  The table says which runs used the scratch file.

Disk: about 23 bytes per record while the large trace is written (12 in the final file) and
4 bytes per record of page-id scratch in the temporary directory while it is indexed.
Linux only (``/proc``).  About 3.5 minutes at 10^9 records on the 2-core VM: 2.5 generating
the trace, about 20 s for the one-off index (a hash pass; 400 s before) and 35-40 s of replay.
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import vmlab
from vmlab.engine import index_trace
from vmlab.engine._kernel import _simulate
from vmlab.model.scenario import DEFAULT_HORIZON_NS
from vmlab.trace import Op, TraceMeta, TraceWriter, read_header, synth

PAGES = 1_000_000
ALPHA = 1.0
SEED = 1
PAGE_SIZE = 4096
BASE = synth.DEFAULT_BASE
#: Records generated and appended per step: a multiple of the generator's parallel block, so
#: the random numbers are drawn in the same order as one ``synth.zipf`` call would draw them.
BLOCK = 1 << 24
#: Disk the generation needs per record at its peak: the addr column (8 bytes), the writer's
#: temporary tid/asid/op/size columns at their default dtypes (4+2+1+4) and their narrowed
#: copies (4 x 1 byte) appended when the writer closes.
WRITE_BYTES_PER_RECORD = 8 + 11 + 4
#: Per-record page ids that ``index_trace`` keeps in a temporary file for long traces.
SCRATCH_BYTES_PER_RECORD = 4
#: A phase's memory "grew with trace length" when the large run's growth is more than twice
#: the baseline's and more than this many bytes above it (sampling and allocator noise).
GROWTH_SLACK = 64 << 20
MB = 1 << 20


# ---------------------------------------------------------------------------------------
# Generation


def source_of(n):
    """``meta.source`` of a generated trace: says how to make it again."""
    return (f"synth:zipf(n={n}, pages={PAGES}, alpha={ALPHA}, shuffle=True, "
            f"base_addr={BASE:#x}, page_size={PAGE_SIZE}, aligned=True, size=8, op='load', "
            f"write_fraction=0.0, gap_ns=None, seed={SEED}) streamed by bench_large.py")


def generate(path, n, progress=False):
    """Write ``synth.zipf(n, PAGES, alpha=ALPHA, seed=SEED)`` to ``path`` block by block.

    ``synth.zipf`` builds the whole trace in memory (8 bytes a record for the addresses
    alone), so this uses the generator's own streams and sampler step by step: the page
    stream, the rank permutation (drawn once) and ``_fill_zipf`` on one block at a time.
    The writer narrows tid/asid/size to one byte each when it closes.
    """
    rng, rng_perm, _rng_off, _rng_op = synth._streams(SEED, 4)  # the streams zipf() spawns
    perm = rng_perm.permutation(PAGES).astype(np.int64)
    m = min(BLOCK, n)
    addr = np.empty(m, np.uint64)
    zeros = np.zeros(m, np.uint8)             # tid 0, address space 0
    ops = np.full(m, Op.LOAD, np.uint8)
    sizes = np.full(m, 8, np.uint8)
    t0 = time.perf_counter()
    next_report = 0.1
    with TraceWriter(path, TraceMeta(page_size=PAGE_SIZE, source=source_of(n))) as w:
        for lo in range(0, n, BLOCK):
            k = min(BLOCK, n - lo)
            synth._fill_zipf(addr[:k], rng, PAGES, ALPHA, perm, BASE, PAGE_SIZE)
            w.append(addr=addr[:k], tid=zeros[:k], asid=zeros[:k], op=ops[:k], size=sizes[:k])
            done = (lo + k) / n
            if progress and done >= next_report:
                print(f"      ... {done:4.0%} written, {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
                while next_report <= done:
                    next_report += 0.1
        if progress:
            print("      ... closing (narrowing and appending the small columns)",
                  file=sys.stderr, flush=True)
    return Path(path)


def existing(path, n):
    """True if ``path`` already holds the trace this benchmark would generate."""
    try:
        hdr = read_header(path)
    except vmlab.TraceFormatError:
        return False
    return hdr["n_records"] == n and hdr.get("source") == source_of(n)


def make_trace(path, n, progress=False):
    """Generate (or reuse) the trace; return (seconds or None if reused, bytes, peak)."""
    if existing(path, n):
        return None, path.stat().st_size, None
    with MemWatch() as mw:
        t0 = time.perf_counter()
        generate(path, n, progress)
        el = time.perf_counter() - t0
    return el, path.stat().st_size, mw


# ---------------------------------------------------------------------------------------
# Memory measurement


def status():
    """This process's memory figures from ``/proc/self/status``, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def maxrss():
    """``ru_maxrss`` of this process, in bytes (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak():
    """Reset the kernel's resident-set high-water mark (VmHWM, and so ``ru_maxrss``) to the
    current RSS; False if this kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemWatch:
    """Memory of the ``with`` block: RSS before and after, ``ru_maxrss`` (reset on entry), and
    the peaks of anonymous and file-backed RSS, sampled every 20 ms by a thread (the numba
    kernels release the GIL, so the sampler runs during the replay too)."""

    interval = 0.02

    def __enter__(self):
        gc.collect()
        self.reset = reset_peak()
        self.before = status()
        self.peak_anon = self.before["RssAnon"]
        self.peak_file = self.before["RssFile"] + self.before["RssShmem"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            s = status()
            self.peak_anon = max(self.peak_anon, s["RssAnon"])
            self.peak_file = max(self.peak_file, s["RssFile"] + s["RssShmem"])

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.after = status()
        self.maxrss = maxrss()
        self.peak_anon = max(self.peak_anon, self.after["RssAnon"])
        self.peak_file = max(self.peak_file, self.after["RssFile"] + self.after["RssShmem"])
        return False

    @property
    def growth(self):
        """Peak RSS growth: ``ru_maxrss`` minus the RSS right before."""
        return self.maxrss - self.before["VmRSS"]

    @property
    def anon_growth(self):
        return self.peak_anon - self.before["RssAnon"]

    @property
    def file_growth(self):
        return self.peak_file - (self.before["RssFile"] + self.before["RssShmem"])


# ---------------------------------------------------------------------------------------
# Replay


def replay(path, n, bin_ns, horizon_ns):
    """Open, index and simulate one trace; return a dict of figures."""
    t0 = time.perf_counter()
    tr = vmlab.open_trace(path)
    open_s = time.perf_counter() - t0
    assert len(tr) == n
    with MemWatch() as m_index:
        t0 = time.perf_counter()
        idx = index_trace(tr)  # dense page ids, thread order: once per trace, cached on it
        index_s = time.perf_counter() - t0
    distinct = len(idx.keys)
    mem = distinct // 10
    kw = {} if bin_ns is None else {"bin_ns": bin_ns}
    sc = vmlab.Scenario(tr, vmas=[vmlab.Vma(BASE, BASE + PAGES * PAGE_SIZE, "file")],
                        memory_pages=mem, records=False, horizon_ns=horizon_ns, **kw)
    compiled = len(_simulate.signatures)
    with MemWatch() as m_run:
        r = vmlab.simulate(sc, "nopage")
    s = r.summary
    n_bins = len(r.raw.series["faults"])
    out = {
        "n": n, "open_s": open_s, "index_s": index_s, "distinct": distinct, "memory": mem,
        "prepare_s": r.timing["prepare_s"], "kernel_s": r.timing["kernel_s"],
        "rate": s["n_accesses"] / r.timing["kernel_s"], "n_accesses": s["n_accesses"],
        "n_faults": s["n_faults"], "unfinished": s["n_unfinished_records"],
        "elapsed_ns": s["elapsed_ns"], "p99": s["fault_latency_ns_p99"],
        "n_bins": n_bins, "bins_bytes": 3 * 8 * n_bins,
        # the kernel's time-series array doubles from 64 bins: its largest width
        "bins_cap_bytes": 3 * 8 * 64 * (1 << max(0, (max(n_bins, 1) - 1) // 64).bit_length()),
        "recompiled": len(_simulate.signatures) > compiled,
        "scratch": isinstance(idx.rec_page, np.memmap),
        "m_index": m_index, "m_run": m_run,
    }
    del r, sc, idx, tr
    gc.collect()
    return out


def warm_up():
    """Load the kernel from the numba cache (or compile it) outside the measured runs."""
    small = vmlab.Scenario(vmlab.Trace(np.array([BASE], np.uint64)),
                           vmas=[vmlab.Vma(BASE, BASE + PAGE_SIZE, "file")], records=False)
    t0 = time.perf_counter()
    vmlab.simulate(small, "nopage")
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------
# Report


def fmt_mb(b):
    return f"{b / MB:,.0f} MB"


def row(label, big, base, unit="", ratio=True, fmt="{:,.2f}"):
    """One line of the comparison table: large run, baseline, large / baseline."""
    b1 = fmt.format(big) + unit
    b0 = fmt.format(base) + unit
    r = f"{big / base:,.2f}x" if ratio and base else ""
    print(f"    {label:<44}{b1:>16}{b0:>16}{r:>10}")


def grew(big, base):
    """True if a growth figure of the large run is beyond noise relative to the baseline."""
    return big > 2 * max(base, 0) and big - base > GROWTH_SLACK


def verdict(label, big, base, n_ratio):
    word = "GREW with trace length" if grew(big, base) else "bounded"
    ratio = f"{big / base:.1f}x" if base > 0 else "n/a"
    print(f"    {label:<56}{fmt_mb(big):>10} vs {fmt_mb(base):>8} ({ratio} for {n_ratio:.0f}x "
          f"the records): {word}")
    return grew(big, base)


# ---------------------------------------------------------------------------------------
# From lackey text to a sampled memory curve and its report (``--lackey``)

#: Bytes of one generated lackey line: `` L 7f00000a1000,8\n`` (12 hex digits).
LACKEY_LINE = 18
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def lackey_lines(addr):
    """The lackey ``--trace-mem=yes`` lines of loads of 8 bytes at ``addr`` (12 hex digits)."""
    out = np.empty((len(addr), LACKEY_LINE), np.uint8)
    out[:, :3] = np.frombuffer(b" L ", np.uint8)
    for j in range(12):
        out[:, 3 + j] = _HEX[((addr >> np.uint64(4 * (11 - j))) & np.uint64(15)).astype(np.intp)]
    out[:, 15:] = np.frombuffer(b",8\n", np.uint8)
    return out.tobytes()


def write_lackey(path, n):
    """``n`` lackey lines of the same Zipf page stream as :func:`generate` (reused when a file
    of the right size is there: the content is a function of ``n`` alone)."""
    if path.exists() and path.stat().st_size == n * LACKEY_LINE:
        return None
    rng, rng_perm, _rng_off, _rng_op = synth._streams(SEED, 4)
    perm = rng_perm.permutation(PAGES).astype(np.int64)
    block = 1 << 22
    addr = np.empty(min(block, n), np.uint64)
    t0 = time.perf_counter()
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        for lo in range(0, n, block):
            k = min(block, n - lo)
            synth._fill_zipf(addr[:k], rng, PAGES, ALPHA, perm, BASE, PAGE_SIZE)
            f.write(lackey_lines(addr[:k]))
    tmp.replace(path)
    return time.perf_counter() - t0


def markdown_table(df):
    """A DataFrame as a Markdown table (numbers to 4 significant digits)."""
    def cell(v):
        return f"{v:,.0f}" if isinstance(v, (int, np.integer)) or float(v) >= 1000 else f"{v:.4g}"
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---:|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines)


def pipeline(n, d, rate, points, keep):
    """lackey text -> .vmt -> sampled 20-point memory sweep -> report; then the one-off
    index and one exact replay, compared with the sampled point of the same size."""
    from vmlab import plots
    from vmlab.sampling import sample_counts, sample_trace
    from vmlab.trace import convert_trace

    lk, vmt, out = d / f"zipf_{n}.lackey", d / f"zipf_{n}_lackey.vmt", d / f"report_{n}"
    need = n * (LACKEY_LINE + 12 + WRITE_BYTES_PER_RECORD)
    if shutil.disk_usage(d).free < need:
        sys.exit(f"not enough disk in {d}: about {need / 1e9:.0f} GB needed")
    steps = {}
    print(f"[1] lackey text: {n:,} lines of Zipf {ALPHA} over {PAGES:,} pages", flush=True)
    el = write_lackey(lk, n)
    print(f"    {'reused' if el is None else f'{el:.0f} s'}, {lk.stat().st_size / 1e9:.1f} GB",
          flush=True)
    first = warm_up()
    print(f"    kernel warm-up {first:.2f} s (numba cache; not counted)", flush=True)
    try:
        with MemWatch() as m:
            t0 = time.perf_counter()
            convert_trace(lk, vmt, "lackey", show_progress=False)
            steps["convert (lackey -> .vmt)"] = (time.perf_counter() - t0, m)
        tr = vmlab.open_trace(vmt)
        vma = (vmlab.Vma(BASE, BASE + PAGES * PAGE_SIZE, backing="file", name="zipf"),)
        with MemWatch() as m:
            t0 = time.perf_counter()
            st = sample_trace(tr, rate)
            steps[f"sampling pass (R = {rate:g})"] = (time.perf_counter() - t0, m)
        from vmlab.engine import index_trace

        d_est = len(index_trace(st).keys) / rate        # distinct pages, from the sample
        sizes = [int(round(f * d_est)) for f in np.linspace(0.05, 1.0, points)]
        sc = vmlab.Scenario(tr, vmas=vma, records=False, horizon_ns=10**18)
        with MemWatch() as m:
            t0 = time.perf_counter()
            curve = vmlab.sweep(sc.replace(sample_rate=rate), {"memory_pages": sizes},
                                show_progress=False)
            steps[f"sampled {points}-point memory sweep (LRU)"] = (time.perf_counter() - t0, m)
        with MemWatch() as m:
            t0 = time.perf_counter()
            out.mkdir(exist_ok=True)
            ax = plots.memory_curve(curve, title=f"LRU fault ratio, {n:,} lackey records, "
                                                 f"pages sampled at R = {rate:g}")
            ax.figure.savefig(out / "curve.png", dpi=100)
            cols = ["memory_pages", "n_faults", "n_faults_ci_low", "n_faults_ci_high",
                    "n_accesses"]
            t = curve[cols].copy()
            t["fault_ratio"] = t["n_faults"] / t["n_accesses"]
            (out / "report.md").write_text(
                f"# Sampled memory curve\n\n{n:,} lackey records ({lk.name}), "
                f"{sample_counts(tr, rate)[1]:,} accesses kept at R = {rate:g}, about "
                f"{d_est:,.0f} distinct pages.\n\n![curve](curve.png)\n\n"
                + markdown_table(t) + "\n")
            steps["report (figure, table)"] = (time.perf_counter() - t0, m)
        total = sum(v[0] for v in steps.values())
        with MemWatch() as m:
            t0 = time.perf_counter()
            D = len(index_trace(tr).keys)
            steps["one-off index (exact)"] = (time.perf_counter() - t0, m)
        k = 1                                         # the 10% point
        with MemWatch() as m:
            t0 = time.perf_counter()
            ex = vmlab.simulate(sc.replace(memory_pages=sizes[k])).summary
            steps[f"exact replay at {sizes[k]:,} pages"] = (time.perf_counter() - t0, m)
        print(f"[2] steps on {n:,} records (load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})")
        print(f"    {'step':<44}{'time s':>9}{'peak anon MB':>14}{'peak file MB':>14}")
        for name, (el, m) in steps.items():
            print(f"    {name:<44}{el:>9.1f}{m.peak_anon / MB:>14,.0f}{m.peak_file / MB:>14,.0f}")
        peak_anon = max(m.peak_anon for _, m in steps.values())
        print(f"    lackey -> sampled curve and report: {total:.0f} s (target < 600 s); "
              f"peak anonymous memory {peak_anon / MB:,.0f} MB (target < 2,048 MB)")
        sm = curve.iloc[k]
        print(f"    distinct pages {D:,} (estimated from the sample: {d_est:,.0f}); fault "
              f"ratio at {sizes[k]:,} pages: exact {ex['n_faults'] / ex['n_accesses']:.4f}, "
              f"sampled {sm['n_faults'] / sm['n_accesses']:.4f} (95% interval of the count "
              f"{sm['n_faults_ci_low']:,.0f}..{sm['n_faults_ci_high']:,.0f}, exact "
              f"{ex['n_faults']:,})")
        print(f"    report in {out}")
    finally:
        if not keep:
            for q in (lk, vmt):
                q.unlink(missing_ok=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000_000,
                    help="records of the large trace (default 10^9)")
    ap.add_argument("--baseline-records", type=int, default=10_000_000,
                    help="records of the baseline trace (default 10^7)")
    ap.add_argument("--dir", type=Path, default=None,
                    help="where the trace files go (default: a temporary directory, deleted "
                         "at the end); matching files already there are reused")
    ap.add_argument("--keep", action="store_true", help="keep the trace files")
    ap.add_argument("--bin-ns", type=int, default=None,
                    help="time-series bin width (default: Scenario's, 1 ms)")
    ap.add_argument("--horizon-ns", type=int, default=10**18,
                    help="simulated time horizon (default 10^18 ns: the whole trace)")
    ap.add_argument("--lackey", action="store_true",
                    help="instead: lackey text of --records lines -> .vmt -> sampled memory "
                         "sweep -> report, then the index and one exact replay")
    ap.add_argument("--rate", type=float, default=0.01, help="sample rate of --lackey")
    ap.add_argument("--points", type=int, default=20, help="memory sizes of --lackey")
    a = ap.parse_args()
    if a.lackey:
        d = a.dir or Path(tempfile.gettempdir()) / "vmlab-large"
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        pipeline(a.records, d, a.rate, a.points, a.keep)
        print(f"total wall time {time.perf_counter() - t0:.0f} s")
        return
    if a.baseline_records >= a.records:
        ap.error("--baseline-records must be below --records")
    wall0 = time.perf_counter()

    own_dir = a.dir is None
    d = Path(tempfile.mkdtemp(prefix="vmlab-large-")) if own_dir else a.dir
    d.mkdir(parents=True, exist_ok=True)
    paths = {n: d / f"zipf_{n}.vmt" for n in (a.baseline_records, a.records)}
    need = sum(WRITE_BYTES_PER_RECORD * n for n, p in paths.items() if not existing(p, n))
    free = shutil.disk_usage(d).free
    tmp = tempfile.gettempdir()
    scratch_free = shutil.disk_usage(tmp).free
    scratch_need = SCRATCH_BYTES_PER_RECORD * a.records
    if os.stat(tmp).st_dev == os.stat(d).st_dev:  # one file system: both needs add up
        scratch_need += need
    if free < need or scratch_free < scratch_need:
        sys.exit(f"not enough disk: the traces need about {need / 1e9:.1f} GB in {d} "
                 f"({free / 1e9:.1f} GB free) and the index "
                 f"{SCRATCH_BYTES_PER_RECORD * a.records / 1e9:.1f} GB of scratch in {tmp} "
                 f"({scratch_free / 1e9:.1f} GB free)")
    N, B = a.records, a.baseline_records
    try:
        # -- 1. generation ---------------------------------------------------------------
        print(f"[1] generate: Zipf alpha {ALPHA} over {PAGES:,} pages, 1 thread, seed {SEED}, "
              f"streamed in blocks of {BLOCK:,} records to {d}", flush=True)
        gen = {}
        for n in (B, N):
            gen[n] = make_trace(paths[n], n, progress=n == N)
        same = np.array_equal(np.asarray(vmlab.open_trace(paths[B]).addr),
                              synth.zipf(B, PAGES, alpha=ALPHA, seed=SEED).addr)
        for n, tag in ((N, "large"), (B, "baseline")):
            el, size, mw = gen[n]
            if el is None:
                print(f"    {tag:<8} {n:>13,} records: reused {paths[n].name}, "
                      f"{size / 1e6:,.0f} MB")
                continue
            print(f"    {tag:<8} {n:>13,} records: {el:7.1f} s, {n / el / 1e6:5.1f} M records/s, "
                  f"{size / 1e6:8,.0f} MB ({size / n:.2f} bytes/record, {size / el / 1e6:4.0f} "
                  f"MB/s); peak anonymous memory +{fmt_mb(mw.anon_growth)}")
        if gen[N][0] is not None and gen[B][0] is not None:
            print(f"    large / baseline: generation rate {N / gen[N][0] / (B / gen[B][0]):.2f}x, "
                  f"peak anonymous memory "
                  f"{gen[N][2].anon_growth / max(gen[B][2].anon_growth, 1):.2f}x")
        print(f"    baseline records identical to synth.zipf({B:,}, {PAGES:,}, alpha={ALPHA}, "
              f"seed={SEED}): {same}", flush=True)

        # -- 2. replay -------------------------------------------------------------------
        first = warm_up()
        print(f"[2] replay: one file VMA, memory 10% of the distinct pages, LRU, nopage, "
              f"records=False, horizon {a.horizon_ns:.3g} ns, bins "
              f"{'1 ms (default)' if a.bin_ns is None else f'{a.bin_ns:,} ns'}; first call "
              f"{first:.2f} s (numba cache or compile, not counted below)", flush=True)
        base = replay(paths[B], B, a.bin_ns, a.horizon_ns)
        print(f"    baseline done ({base['index_s'] + base['prepare_s'] + base['kernel_s']:.1f} s);"
              f" large run...", flush=True)
        big = replay(paths[N], N, a.bin_ns, a.horizon_ns)
        print(f"    {'':<44}{f'{N:,}':>16}{f'{B:,}':>16}{'ratio':>10}")
        row("distinct pages", big["distinct"], base["distinct"], fmt="{:,.0f}")
        row("memory_pages (10%)", big["memory"], base["memory"], fmt="{:,.0f}")
        row("faults", big["n_faults"], base["n_faults"], fmt="{:,.0f}")
        row("fault ratio", big["n_faults"] / big["n_accesses"],
            base["n_faults"] / base["n_accesses"], fmt="{:.4f}")
        row("unfinished records", big["unfinished"], base["unfinished"], ratio=False,
            fmt="{:,.0f}")
        row("simulated time", big["elapsed_ns"] / 3.6e12, base["elapsed_ns"] / 3.6e12, " h")
        row("fault latency p99 (histogram)", big["p99"] / 1e3, base["p99"] / 1e3, " us",
            fmt="{:,.1f}")
        row("open_trace", big["open_s"] * 1e3, base["open_s"] * 1e3, " ms", ratio=False)
        row("one-off index (index_trace)", big["index_s"], base["index_s"], " s")
        row("  per record", big["index_s"] / N * 1e9, base["index_s"] / B * 1e9, " ns")
        row("prepare (per run)", big["prepare_s"], base["prepare_s"], " s")
        row("kernel", big["kernel_s"], base["kernel_s"], " s")
        row("kernel throughput, M accesses/s", big["rate"] / 1e6, base["rate"] / 1e6, "")
        row("end to end (index+prepare+kernel), M/s",
            N / (big["index_s"] + big["prepare_s"] + big["kernel_s"]) / 1e6,
            B / (base["index_s"] + base["prepare_s"] + base["kernel_s"]) / 1e6, "")
        for phase, key in (("index", "m_index"), ("run", "m_run")):
            m1, m0 = big[key], base[key]
            print(f"    memory of the {phase} phase"
                  + ("" if m1.reset else " (high-water mark could not be reset: ru_maxrss is "
                                         "the process's peak)"))
            row("  RSS right before", m1.before["VmRSS"] / MB, m0.before["VmRSS"] / MB, " MB",
                ratio=False, fmt="{:,.0f}")
            row("  RSS right after", m1.after["VmRSS"] / MB, m0.after["VmRSS"] / MB, " MB",
                ratio=False, fmt="{:,.0f}")
            row("  peak RSS (ru_maxrss)", m1.maxrss / MB, m0.maxrss / MB, " MB", fmt="{:,.0f}")
            row("  peak RSS growth (ru_maxrss - before)", m1.growth / MB, m0.growth / MB, " MB",
                fmt="{:,.0f}")
            row("    anonymous (sampled peak - before)", m1.anon_growth / MB,
                m0.anon_growth / MB, " MB", fmt="{:,.0f}")
            row("    file-backed mapped (sampled)", m1.file_growth / MB, m0.file_growth / MB,
                " MB", fmt="{:,.0f}")
        row("time-series bins", big["n_bins"], base["n_bins"], fmt="{:,.0f}")
        row("  kernel's bin array at its largest", big["bins_cap_bytes"] / MB,
            base["bins_cap_bytes"] / MB, " MB", fmt="{:,.1f}")
        print(f"    page ids in a scratch file (index_trace): large {big['scratch']}, "
              f"baseline {base['scratch']}; kernel compiled during a measured run: "
              f"{big['recompiled'] or base['recompiled']}")
        if big["unfinished"] or base["unfinished"]:
            print("    WARNING: records left unfinished at the horizon; throughput counts only "
                  "the accesses replayed (raise --horizon-ns)")
        if big["elapsed_ns"] > DEFAULT_HORIZON_NS:
            print(f"    note: the large run simulates {big['elapsed_ns'] / 3.6e12:.1f} h; "
                  f"Scenario's default horizon ({DEFAULT_HORIZON_NS / 3.6e12:.0f} h) would "
                  "stop it early")

        # -- 3. verdict ------------------------------------------------------------------
        ratio = N / B
        print(f"[3] memory against trace length ({ratio:.0f}x the records; 'grew' = more than "
              f"2x the baseline's growth and {GROWTH_SLACK // MB} MB above it)")
        anon = []
        for phase, key in (("index", "m_index"), ("replay", "m_run")):
            m1, m0 = big[key], base[key]
            anon.append(verdict(f"{phase}: anonymous (arrays, temporaries, engine state)",
                                m1.anon_growth, m0.anon_growth, ratio))
            verdict(f"{phase}: file-backed mapped (trace columns, page ids)",
                    m1.file_growth, m0.file_growth, ratio)
            verdict(f"{phase}: peak RSS growth (ru_maxrss, all pages)",
                    m1.growth, m0.growth, ratio)
        total = grew(big["m_index"].growth, base["m_index"].growth) or \
            grew(big["m_run"].growth, base["m_run"].growth)
        if any(anon):
            print("    => the engine's own (anonymous) memory GREW with trace length")
        else:
            print("    => the engine's own (anonymous) memory did not grow with trace length")
        if total and not any(anon):
            print("       (the peak RSS did: file-backed pages of the memory-mapped trace and "
                  "page-id scratch, page cache the OS reclaims under memory pressure)")
    finally:
        if not a.keep:
            for p in paths.values():
                p.unlink(missing_ok=True)
            if own_dir:
                shutil.rmtree(d, ignore_errors=True)
        elif own_dir:
            print(f"    traces kept in {d}")
    print(f"total wall time {time.perf_counter() - wall0:.0f} s")


if __name__ == "__main__":
    main()
