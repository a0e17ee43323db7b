#!/usr/bin/env python3
"""Measure real programs natively for notebook 08 ("Does vmlab agree with this kernel?").

    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py [--runs 5] [--out data/native]
    PYTHONPATH=. .venv/bin/python scripts/measure_programs.py --readme-only   # README.md only

Writes, in --out (default ``data/native``):

* ``native_faults.csv``: one row per native run: program, setting (unlimited or limit),
  limit_bytes, run, page_faults, major_faults, minor_faults, seconds, oom_killed,
  peak_bytes, helper_faults (see :mod:`vmlab.measure`);
* ``native_faults.json``: the machine (kernel, CPU, CPUs, page size), the perf version, the
  exact command of every program, how its input was generated, and the method;
* ``perf_<program>.vmt``: a ``vmlab record --with perf`` trace of one run of each program
  (faults with read/write, real threads and times, and the run's mappings): small;
* ``README.md``: what all this is, with the summary table computed from the CSV.

Lackey recordings of the same runs are not shipped: every access of even the smallest of
these runs is tens of millions of records (hundreds of MB); ``vmlab record`` makes them on
any machine in a minute or two.

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
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from vmlab.calibrate import machine_info
from vmlab.measure import cgroup_version, measure_program
from vmlab.trace.record import record_perf, require

MB = 2**20

#: (name, argv with {dir} for the input folder, input description, limits for the sweep)
PROGRAMS = [
    ("gzip", ["gzip", "-9", "-c", "{dir}/text.txt"],
     "text.txt: 20,000 generated lines (awk), 1.0 MB",
     [4 * MB, 3 * MB, 2 * MB, 1.5 * MB, 1.25 * MB, 1 * MB, 0.9 * MB, 0.75 * MB, 0.6 * MB]),
    ("sort", ["sort", "-S", "16M", "-o", "/dev/null", "{dir}/numbers.txt"],
     "numbers.txt: 200,000 generated pseudo-random integers (awk LCG), 2.0 MB; sort uses "
     "min(CPUs, 8) threads, so two on a 2-CPU machine",
     [24 * MB, 16 * MB, 12 * MB, 8 * MB, 6 * MB, 4 * MB, 3 * MB, 2 * MB]),
    ("xz_T2", ["xz", "-T2", "-3", "--block-size=1MiB", "-c", "{dir}/seq.txt"],
     "seq.txt: seq 1 500000, 3.3 MB; two compressor threads", None),
    ("awk", ["awk", "{ s += $1 } END { print s }", "{dir}/numbers.txt"],
     "numbers.txt as for sort", None),
    ("python_dict", ["/usr/bin/python3", "-S", "-c",
                     "d = {i: str(i) for i in range(100000)}"],
     "no input: CPython builds a 100,000-entry dict (about 20 MB of heap)",
     [48 * MB, 40 * MB, 32 * MB, 28 * MB, 24 * MB, 20 * MB, 16 * MB, 12 * MB]),
    ("sqlite", ["sqlite3", ":memory:",
                "create table t(a integer, b text); "
                "with recursive c(x) as (select 1 union all select x + 1 from c where x < 50000) "
                "insert into t select x, printf('%08d', x * 7919 % 100003) from c; "
                "create index i on t(b); select count(*) from t where b like '0001%';"],
     "no input: an in-memory table of 50,000 rows and an index", None),
]


def make_inputs(d):
    d = Path(d)
    subprocess.run(["awk", "BEGIN { for (i = 1; i <= 20000; i++) print \"line \" i \" of a "
                    "generated text, value \" (i * 7919) % 10007 }"],
                   stdout=open(d / "text.txt", "w"), check=True)
    subprocess.run(["awk", "BEGIN { s = 12345; for (i = 0; i < 200000; i++) "
                    "{ s = (s * 1103515245 + 12345) % 2147483648; print s } }"],
                   stdout=open(d / "numbers.txt", "w"), check=True)
    subprocess.run(["seq", "1", "500000"], stdout=open(d / "seq.txt", "w"), check=True)


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
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.readme_only:
        write_readme(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    require("perf")
    can_limit = cgroup_version() is not None and not a.no_limits
    rows, commands = [], {}
    work = tempfile.mkdtemp(prefix="vmlab-measure-")  # $TMPDIR: must be disk-backed
    make_inputs(work)
    only = set(a.only.split(",")) if a.only else None
    for name, template, what, limits in PROGRAMS:
        if only and name not in only:
            continue
        cmd = [x.replace("{dir}", ".") for x in template]
        commands[name] = {"command": shlex.join(cmd), "input": what,
                          "limits_bytes": [int(x) for x in limits] if limits else None}
        print(f"== {name}: {shlex.join(cmd)}", file=sys.stderr)
        subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL)   # warm the page cache
        got = measure_program(cmd, runs=a.runs, cwd=work)
        if limits and can_limit:
            got += [r for r in measure_program(cmd, runs=a.runs, cwd=work, cold=True,
                                               limits_bytes=[int(x) for x in limits])
                    if r["setting"] == "limit"]
        for r in got:
            rows.append({"program": name, **r})
        trace = out / f"perf_{name}.vmt"
        record_perf(cmd, trace, cwd=work, quiet=True, stdout=subprocess.DEVNULL)
        os.chmod(trace, 0o644)
    fields = ["program", "setting", "limit_bytes", "run", "page_faults", "major_faults",
              "minor_faults", "seconds", "exit_code", "oom_killed", "peak_bytes", "helper_faults"]
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
                      "posix_fadvise DONTNEED) in a fresh memory cgroup entered through "
                      "vmlab's cgexec helper, whose own faults are subtracted "
                      "(helper_faults)"}
    (out / "native_faults.json").write_text(json.dumps(meta, indent=1) + "\n")
    subprocess.run(["rm", "-rf", work])
    write_readme(out)
    print(f"wrote {out / 'native_faults.csv'} ({len(rows)} runs)", file=sys.stderr)


def summary(out):
    """Median, min and max of page faults and major faults per program and setting, and the
    OOM kills, from native_faults.csv (a pandas DataFrame)."""
    import pandas as pd

    df = pd.read_csv(out / "native_faults.csv")
    df["limit_mb"] = (df["limit_bytes"] / MB).round(2)
    g = df.groupby(["program", "setting", "limit_mb"], dropna=False, sort=False)
    return g.agg(runs=("run", "count"), page_faults=("page_faults", "median"),
                 pf_min=("page_faults", "min"), pf_max=("page_faults", "max"),
                 major_faults=("major_faults", "median"), mj_min=("major_faults", "min"),
                 mj_max=("major_faults", "max"), oom_kills=("oom_killed", "sum")).reset_index()


def write_readme(out):
    out = Path(out)
    meta = json.loads((out / "native_faults.json").read_text())
    s = summary(out)
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
        "and times, and the run's mappings with the page-cache state of its start-up files). "
        "Lackey recordings of the same runs are not shipped: the smallest is tens of "
        "millions of records (hundreds of MB); `vmlab record` makes one in a minute or two.",
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
