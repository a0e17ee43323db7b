"""``vmlab validate``: predicted against measured page faults of a real program.

1. Record the program with lackey (:func:`vmlab.trace.record.record_lackey`): every access,
   the mappings of the run and the page-cache state of its files.
2. Predict its faults with the engine as it stands: the VMAs and their backings come from the
   recorded mappings (:func:`scenario_for`), the file pages that were resident when the
   recording started are preloaded, memory is unlimited or the limit of the sweep.
3. Measure the program natively (:mod:`vmlab.measure`): ``perf stat -e
   page-faults,major-faults`` with unlimited memory and, as root with a cgroup memory
   controller, under each memory limit of the sweep.
4. Put the two side by side with their ratio (:func:`format_table`).

The predicted counts are what the engine's model gives; the granularity of the real kernel
(fault-around, the zero page, copy-on-write, readahead, large folios, kernel-mode faults)
is what closes the gap, and improves the prediction as the engine learns it.  The
measured side is exact for this machine.
"""
from __future__ import annotations

import math
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from .errors import VmlabError

from .model.recorded import scenario_for

def predict(trace, memory_pages=None):
    """The engine's fault counts for a recorded trace: ``{"page_faults", "major_faults"}``."""
    from .simulation import simulate

    res = simulate(scenario_for(trace, memory_pages, records=False))
    s = res.summary
    return {"page_faults": int(s["n_faults"]), "major_faults": int(s["n_major"])}


def _ratio(p, m):
    if m in (None, 0) or p is None:
        return math.nan
    return p / m


def validate(argv, *, runs=3, limits_mb=None, keep=None, cwd=None, cold=False):
    """Record, predict and measure ``argv`` (see the module docstring).

    Returns a dict: ``program``, ``record`` (info of the recording), ``rows`` (one per
    setting: ``setting``, ``limit_bytes``, predicted and measured medians, measured min/max,
    ratio, OOM kills).
    """
    from .measure import cgroup_version, measure_program, why_no_cgroup
    from .trace.native import open_trace
    from .trace.record import record_lackey

    if limits_mb is not None and cgroup_version() is None:
        raise VmlabError(why_no_cgroup())
    with tempfile.TemporaryDirectory(prefix="vmlab-validate-") as tmp:
        path = Path(keep) if keep else Path(tmp) / "run.vmt"
        _, info = record_lackey(argv, path, cwd=cwd, quiet=True, stdout=subprocess.DEVNULL)
        trace = open_trace(path)
        limits = None
        if limits_mb == "auto":
            limits = "auto"
        elif limits_mb:
            limits = [int(x * 2**20) // 4096 * 4096 for x in limits_mb]
        rows = measure_program(argv, runs=runs, limits_bytes=limits, cwd=cwd, cold=cold)
        settings = []
        for key in dict.fromkeys((r["setting"], r["limit_bytes"]) for r in rows):
            group = [r for r in rows if (r["setting"], r["limit_bytes"]) == key]
            mem_pages = None if key[1] is None else max(1, key[1] // trace.page_size)
            pred = predict(trace, mem_pages)
            meas_pf = [r["page_faults"] for r in group]
            meas_mj = [r["major_faults"] for r in group]
            settings.append({
                "setting": key[0], "limit_bytes": key[1],
                "predicted_page_faults": pred["page_faults"],
                "measured_page_faults": statistics.median(meas_pf),
                "measured_page_faults_min": min(meas_pf), "measured_page_faults_max": max(meas_pf),
                "page_fault_ratio": _ratio(pred["page_faults"], statistics.median(meas_pf)),
                "predicted_major_faults": pred["major_faults"],
                "measured_major_faults": statistics.median(meas_mj),
                "measured_major_faults_min": min(meas_mj), "measured_major_faults_max": max(meas_mj),
                "major_fault_ratio": _ratio(pred["major_faults"], statistics.median(meas_mj)),
                "oom_kills": sum(1 for r in group if r.get("oom_killed")), "runs": len(group)})
    return {"program": list(argv), "kernel": os.uname().release, "record": info,
            "rows": settings}


def format_table(res):
    """The predicted/measured table of :func:`validate` as text."""
    lines = [f"program: {' '.join(res['program'])}   (kernel {res['kernel']}; "
             f"{res['record']['records']:,} accesses recorded)",
             f"{'memory':>12} {'faults pred':>12} {'measured':>16} {'ratio':>7} "
             f"{'major pred':>11} {'measured':>14} {'ratio':>7} {'OOM':>5}"]
    for r in res["rows"]:
        mem = "unlimited" if r["limit_bytes"] is None else f"{r['limit_bytes'] / 2**20:.2f} MB"
        mpf = f"{r['measured_page_faults']:g} [{r['measured_page_faults_min']}-{r['measured_page_faults_max']}]"
        mmj = f"{r['measured_major_faults']:g} [{r['measured_major_faults_min']}-{r['measured_major_faults_max']}]"
        lines.append(f"{mem:>12} {r['predicted_page_faults']:>12,} {mpf:>16} "
                     f"{r['page_fault_ratio']:>7.2f} {r['predicted_major_faults']:>11,} {mmj:>14} "
                     f"{r['major_fault_ratio']:>7.2f} {r['oom_kills']:>2}/{r['runs']}")
    lines.append("measured: median [min-max] over the runs; ratio = predicted / measured median")
    return "\n".join(lines)
