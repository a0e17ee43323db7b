#!/usr/bin/env python3
"""Measure real programs natively for notebook 08 ("Does vmlab agree with this kernel?").

    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py [--runs 5] [--out data/native]
    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py --readme-only   # README.md only
    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py --lackey-only   # recordings only
    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py --perf-only     # perf_*.vmt only
    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py --mmap-lock-reads
    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py --lock-wakeups
    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py --io-wakeups

Writes, in --out (default ``data/native``):

* ``native_faults.csv``: one row per native run: program, setting (unlimited or limit),
  limit_bytes, run, page_faults, major_faults, minor_faults, seconds, oom_killed,
  peak_bytes, helper_faults (see :mod:`vmlab.measure`);
* ``native_faults.json``: the machine (kernel, CPU, CPUs, page size), the perf version, the
  exact command of every program, how its input was generated, and the method;
* ``perf_<program>.vmt``: a ``vmlab record --with perf`` trace of one run of each program
  (faults with read/write, real threads and times, and the run's mappings): small;
* ``README.md``: what all this is, with the summary table computed from the CSV.

* ``mmap_lock_reads.csv`` (with ``--mmap-lock-reads``): each program's read acquisitions of
  ``mmap_lock`` by caller, three warm runs (:mod:`vmlab.studies.lock_callers`).

* ``io_wakeups.csv`` (with ``--io-wakeups``): how long a faulting thread woken from its read
  takes to run, under the same loads (:mod:`vmlab.studies.lock_wakeups`).
* ``lock_wakeups.csv`` and ``lock_wakeups_runs.csv`` (with ``--lock-wakeups``): how long a
  thread woken from an ``mmap_lock`` wait takes to run when the CPUs are busy, one row per
  wake-up and one per run (:mod:`vmlab.studies.lock_wakeups`).

* ``lackey_<program>.vmt`` (with ``--lackey`` or ``--lackey-only``): each program recorded
  with ``vmlab record`` (valgrind lackey, 20-70 million accesses) and stripped
  (:mod:`vmlab.trace.strip`, :func:`vmlab.studies.kernel_agreement.record_program`): the
  prediction's input, about 4 MB for the six.

Unlimited runs start from a warm page cache (the programs' files were read by an earlier
run), as a user sees them.  Memory-limited runs (root, cgroup v1 or v2) start cold: the
program's files are dropped from the page cache first (``posix_fadvise(DONTNEED)``; shared
libraries mapped by other processes stay), so the run reads them and they are charged to
its cgroup, as in KERNEL-2026.md section 1.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from vmlab.calibrate import machine_info
from vmlab.measure import PROGRAMS, cgroup_version, measure_programs, summarize_runs
from vmlab.trace.record import require

def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", default="data/native")
    p.add_argument("--readme-only", action="store_true",
                   help="only rewrite README.md from the CSV and JSON already in --out")
    p.add_argument("--only", default=None, help="comma-separated program names")
    p.add_argument("--no-limits", action="store_true")
    p.add_argument("--lackey", action="store_true",
                   help="also record each program with valgrind lackey (1-3 min each)")
    p.add_argument("--lackey-only", action="store_true",
                   help="only the lackey recordings (the native measurements are kept)")
    p.add_argument("--mmap-lock-reads", action="store_true",
                   help="only mmap_lock_reads.csv: each program's mmap_lock read acquisitions "
                        "by caller, three warm runs under perf record -g")
    p.add_argument("--lock-wakeups", action="store_true",
                   help="only lock_wakeups.csv and lock_wakeups_runs.csv: how long a thread "
                   "woken from an mmap_lock wait takes to run, vmlab/data/lock_wakeups.c under "
                   "each load, three runs (vmlab.studies.lock_wakeups)")
    p.add_argument("--io-wakeups", action="store_true",
                   help="only io_wakeups.csv: how long a faulting thread woken from its read "
                   "takes to run, the same program and loads, three runs each, recorded "
                   "system-wide with the scheduler's wake-ups (vmlab.studies.lock_wakeups)")
    p.add_argument("--perf-only", action="store_true",
                   help="only the perf recordings perf_<program>.vmt, warm (the native "
                        "measurements are kept)")
    p.add_argument("--major-sites", action="store_true",
                   help="only kernel_majors.csv: where the kernel takes its major faults at "
                        "the largest limit of each sweep (perf trace, root)")
    p.add_argument("--sweeps-only", action="store_true",
                   help="measure the memory-limit sweeps again and keep every other row, "
                        "file and recording of --out")
    p.add_argument("--hold-shipped", action="store_true",
                   help="start every cold run from the cold page cache already in --out's "
                        "native_faults.json (held by mapping it), so that the shipped "
                        "recordings' predictions start where the runs do")
    p.add_argument("--timeout", type=float, default=30,
                   help="seconds a memory-limited run may take before its cgroup is killed "
                        "(thrashing near the OOM limit can last minutes)")
    a = p.parse_args(argv)
    out = Path(a.out)
    hold = None
    if a.hold_shipped:
        old_meta = json.loads((out / "native_faults.json").read_text())
        hold = {n: c["cold_page_cache"] for n, c in old_meta["programs"].items()
                if c.get("cold_page_cache")}
    if a.major_sites:
        write_major_sites(out, a.runs, a.only, hold)
        return
    if a.readme_only:
        write_readme(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    if a.lackey or a.lackey_only:
        record_lackey_programs(out, a.only)
        if a.lackey_only:
            return
    if a.perf_only:
        record_perf_programs(out, a.only)
        return
    if a.lock_wakeups:
        write_lock_wakeups(out)
        return
    if a.io_wakeups:
        write_io_wakeups(out)
        return
    if a.mmap_lock_reads:
        write_mmap_lock_reads(out, a.only)
        return
    require("perf")
    t0 = time.monotonic()
    rows, commands = measure_programs(runs=a.runs, only=set(a.only.split(",")) if a.only else None,
                                      limits=not a.no_limits,
                                      record_dir=None if a.sweeps_only else out,
                                      hold_cold=hold, unlimited=not a.sweeps_only,
                                      timeout=a.timeout)
    print(f"measured in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    fields = ["program", "setting", "limit_bytes", "run", "page_faults", "major_faults",
              "minor_faults", "seconds", "exit_code", "oom_killed", "peak_bytes", "helper_faults",
              "timed_out", "cold_extra_pages", "cold_missing_pages"]
    if a.sweeps_only:
        import pandas as pd

        old_rows = pd.read_csv(out / "native_faults.csv").to_dict("records")
        swept = {r["program"] for r in rows}
        rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                for r in old_rows
                if not (r["program"] in swept and r["setting"] == "limit")] + rows
        order = {n: i for i, (n, *_rest) in enumerate(PROGRAMS)}
        rows.sort(key=lambda r: order.get(r["program"], len(order)))   # stable: as measured
        old_meta = json.loads((out / "native_faults.json").read_text())
        commands = {n: {**c, **commands.get(n, {})} for n, c in old_meta["programs"].items()}
    with open(out / "native_faults.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else
                            round(r[k], 4) if isinstance(r.get(k), float) else r.get(k))
                        for k in fields})
    meta = {"machine": machine_info(), "perf": version(["perf", "--version"]),
            "cgroup": cgroup_version(), "runs": a.runs, "programs": commands,
            "method": "perf stat -x, -e page-faults,major-faults,minor-faults -- COMMAND in "
                      "the folder of the generated inputs, stdout to /dev/null; unlimited "
                      "runs warm, limited runs cold (the program's files dropped with "
                      "posix_fadvise DONTNEED but for the pages of cold_page_cache, which the "
                      "measuring process holds resident by mapping them for the whole sweep, "
                      "so that every run starts from it; each run's distance from it, "
                      "measured right before the run where the program starts, is in "
                      "cold_extra_pages and cold_missing_pages) in a fresh memory cgroup "
                      "entered through vmlab's cgexec helper, whose own faults are "
                      "subtracted (helper_faults)"}
    (out / "native_faults.json").write_text(json.dumps(meta, indent=1) + "\n")
    write_readme(out)
    print(f"wrote {out / 'native_faults.csv'} ({len(rows)} runs)", file=sys.stderr)


def write_major_sites(out, runs, only=None, hold=None):
    """``kernel_majors.csv``: each swept program's major faults with their sites
    (:func:`vmlab.measure.major_fault_sites`) at the largest limit of its sweep."""
    import tempfile

    import pandas as pd

    from vmlab.measure import PROGRAMS, cold_in_folder, major_fault_sites, make_inputs
    from vmlab.studies.kernel_agreement import program_command

    rows = []
    with tempfile.TemporaryDirectory(prefix="vmlab-measure-") as work:
        make_inputs(work)
        for name, _t, _w, sweep in PROGRAMS:
            if not sweep or (only and name not in only.split(",")):
                continue
            limit = int(max(sweep)) // 4096 * 4096
            held = cold_in_folder(hold[name], work) if hold and name in hold else None
            for r in major_fault_sites(program_command(name), limit, cwd=work, runs=runs,
                                       hold=held):
                rows.append({"program": name, "limit_bytes": limit, **r,
                             "address": "" if r["address"] is None else hex(r["address"])})
    df = pd.DataFrame(rows)
    df["file_offset"] = df["file_offset"].astype("Int64")
    df.to_csv(Path(out) / "kernel_majors.csv", index=False)
    print(f"wrote {Path(out) / 'kernel_majors.csv'} ({len(df)} major faults)", file=sys.stderr)


def record_perf_programs(out, only=None):
    """``perf_<program>.vmt`` of each program, recorded as ``measure_programs`` records it:
    after a warm-up run, in a folder of freshly generated inputs."""
    import tempfile

    from vmlab.measure import make_inputs, record_program_perf
    from vmlab.studies.kernel_agreement import program_command

    require("perf")
    with tempfile.TemporaryDirectory(prefix="vmlab-measure-") as work:
        make_inputs(work)
        for name, *_rest in PROGRAMS:
            if only and name not in only.split(","):
                continue
            cmd = program_command(name)
            subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL)  # warm the page cache
            print(record_program_perf(name, cmd, out, work), file=sys.stderr)


def write_mmap_lock_reads(out, only=None, runs=3):
    """``mmap_lock_reads.csv``: each program's read acquisitions of ``mmap_lock`` by caller
    (:func:`vmlab.studies.lock_callers.capture`), ``runs`` warm runs, in a folder of freshly
    generated inputs."""
    import tempfile

    import pandas as pd

    from vmlab.measure import make_inputs
    from vmlab.studies import lock_callers
    from vmlab.studies.kernel_agreement import program_command

    rows = []
    with tempfile.TemporaryDirectory(prefix="vmlab-measure-") as work:
        make_inputs(work)
        for name, *_rest in PROGRAMS:
            if only and name not in only.split(","):
                continue
            for i, counts in enumerate(lock_callers.capture(program_command(name), cwd=work,
                                                            runs=runs)):
                rows.append({"program": name, "run": i, **counts.to_dict()})
    path = Path(out) / "mmap_lock_reads.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"wrote {path} ({len(rows)} runs)", file=sys.stderr)


def write_lock_wakeups(out, runs=3):
    """``lock_wakeups.csv`` (one row per wake-up) and ``lock_wakeups_runs.csv`` (one row per
    run): :func:`vmlab.studies.lock_wakeups.measure`."""
    from vmlab.studies import lock_wakeups

    t0 = time.time()
    wakes, runs_df = lock_wakeups.measure(runs=runs)
    wakes.to_csv(Path(out) / lock_wakeups.HOST_CSV.name, index=False)
    runs_df.to_csv(Path(out) / lock_wakeups.HOST_RUNS_CSV.name, index=False)
    print(f"wrote {lock_wakeups.HOST_CSV.name} ({len(wakes)} wake-ups) and "
          f"{lock_wakeups.HOST_RUNS_CSV.name} ({len(runs_df)} runs) in "
          f"{time.time() - t0:.0f} s", file=sys.stderr)


def write_io_wakeups(out, runs=3):
    """``io_wakeups.csv`` (one row per wake-up of a faulting thread from its read): the I/O
    wake-ups of :func:`vmlab.studies.lock_wakeups.measure` with ``io``."""
    from vmlab.studies import lock_wakeups

    t0 = time.time()
    _wakes, _runs, io = lock_wakeups.measure(runs=runs, io=True)
    io.to_csv(Path(out) / lock_wakeups.IO_CSV.name, index=False)
    print(f"wrote {lock_wakeups.IO_CSV.name} ({len(io)} wake-ups) in "
          f"{time.time() - t0:.0f} s", file=sys.stderr)


def record_lackey_programs(out, only=None):
    from vmlab.measure import PROGRAMS
    from vmlab.studies.kernel_agreement import record_program

    require("valgrind")
    for name, *_rest in PROGRAMS:
        if only and name not in only.split(","):
            continue
        path, info = record_program(name, out)
        print(f"{path}: {info['records_in']:,} accesses, {info['records_out']:,} kept",
              file=sys.stderr)


def write_readme(out):
    out = Path(out)
    meta = json.loads((out / "native_faults.json").read_text())
    import pandas as pd

    s = summarize_runs(pd.read_csv(out / "native_faults.csv"))
    m = meta["machine"]
    lines = [
        "# Native page-fault measurements (data for notebook 08)", "",
        "How many page faults and major faults the kernel itself takes on real programs, "
        "measured with `perf stat -e page-faults,major-faults,minor-faults`, with unlimited "
        "memory and under a sweep of cgroup memory limits; made by "
        "`scripts/measure_programs.py` (the measuring code is `vmlab/measure.py`).", "",
        f"Machine: Linux {m['kernel']} ({m['machine']}, {m['cpu']}, {m['cpus']} CPUs, "
        f"{m['page_size']}-byte pages), {meta['perf']}, cgroup v{meta['cgroup']} memory "
        f"controller, no swap; {meta['runs']} runs per setting.", "",
        f"Method: {meta['method']}.", "",
        "Files: `native_faults.csv` (one row per run), `native_faults.json` (machine, "
        "commands, inputs), `perf_<program>.vmt` (one `vmlab record --with perf` run of each "
        "program: every fault with read/write/fetch from the x86 error code, real threads "
        "and times, and the run's mappings with the page-cache state of its start-up files), "
        "`lackey_<program>.vmt` (a `vmlab record` valgrind lackey recording of each program, "
        "20-70 million accesses, stripped by `vmlab.trace.strip`: every first read and first "
        "write of every page kept, the prediction's input for notebook 08), "
        "`kernel_majors.csv` (`--major-sites`: where the kernel takes its major faults at "
        "the largest limit of each sweep, `perf trace -F maj`, 5 cold runs). Limited runs "
        "start from the cold page cache in `native_faults.json` (`cold_page_cache`: the "
        "resident page runs of each program file where the program starts, after the drop "
        "and perf's own start, which reads back the data pages of the libraries perf "
        "uses), held resident by the measuring process for the whole sweep "
        "(`vmlab.measure.hold_page_cache`: it maps those pages), so that what other "
        "processes happen to map cannot change it from run to run; `cold_extra_pages` and "
        "`cold_missing_pages` (CSV, both files) are each run's distance from it, measured "
        "right before the run (`cold_page_cache_found`: the state found before the sweep, "
        "which the sweep held unless `--hold-shipped` held the one already shipped). "
        "The sweeps of gzip and python_dict were measured again on 2026-12-03 with "
        "`--sweeps-only --hold-shipped` (21 s; `--major-sites --hold-shipped` 5 s): before, "
        "the cold state was whatever other processes mapped at the time of each run, and "
        "the shipped snapshot had been taken hours after the runs. "
        "The perf recordings were made again on 2026-12-05 with `--perf-only` (12 s), so "
        "that their faults taken in kernel mode (`exceptions:page_fault_kernel`) carry the "
        "`call` code `kernel`, and the lackey recordings with `--lackey-only` (about 4 "
        "min), so that the kernel's stores into the programs' buffers and exec's clear do; "
        "`mmap_lock_reads.csv` (`--mmap-lock-reads`, the same day) "
        "has each program's read acquisitions of `mmap_lock` by caller (kernel-mode fault, "
        "user-mode fault, `anon_vma` trylock, not a fault), three warm runs under "
        "`perf record -g -e mmap_lock:mmap_lock_start_locking --filter 'write == 0'` "
        "(`vmlab.studies.lock_callers`). "
        "`lock_wakeups.csv` and `lock_wakeups_runs.csv` (`--lock-wakeups`, 2026-12-05, 11 s) "
        "have how long a thread woken from an `mmap_lock` wait takes to run when the CPUs "
        "are busy: `vmlab/data/lock_wakeups.c` (16 threads faulting cold file pages, 2 "
        "mapping and `mprotect`ing, and under load `busy` 4 more spinning) three times under "
        "each load with `perf record -e 'mmap_lock:*'`, one row per acquisition that "
        "waited (the time from the release that let it go to its `acquire_returned`) and "
        "one per run (its read and write waits; `vmlab.studies.lock_wakeups`, "
        "docs/model.md 15.14). "
        "`io_wakeups.csv` (`--io-wakeups`, 2026-12-05) has the same program's other "
        "wake-ups under the same loads, three runs each of their own recorded system-wide "
        "(`perf record -a`) with `sched:sched_wakeup` and `sched:sched_switch` beside "
        "`mmap_lock:*`: one row per wake-up of a faulting thread outside an `mmap_lock` "
        "wait (its read's), the time from its `sched_wakeup` to the `sched_switch` that put "
        "it on a CPU (`Costs.io_wakeup_ns`).",
        "", "## Programs", ""]
    for name, p in meta["programs"].items():
        lines.append(f"* `{name}`: `{p['command']}`; {p['input']}")
    lines += ["", "## Summary (median [min-max] over the runs)", "",
              "| program | memory | page faults | major faults | OOM kills |",
              "|---|---|---|---|---|"]
    for r in s.itertuples():
        mem = "unlimited" if r.setting == "unlimited" else f"{r.limit_mb:g} MB"
        lines.append(f"| {r.program} | {mem} | {r.page_faults:g} [{r.pf_min}-{r.pf_max}] | "
                     f"{r.major_faults:g} [{r.mj_min}-{r.mj_max}] | {int(r.oom_kills)}/{r.runs} |")
    lines += ["", "A killed run's counts stop at the kill.", ""]
    (out / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
