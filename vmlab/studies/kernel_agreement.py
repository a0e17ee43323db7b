"""Does vmlab agree with this kernel?  (notebook 08)

Predicted page faults (the engine replaying each program's full valgrind lackey recording
with its mappings and page-cache state, :func:`vmlab.model.recorded.scenario_for`) against
the faults the kernel itself took running the same program natively (``perf stat``), with
unlimited memory and under a sweep of cgroup memory limits.

=============================  =============================================================
:func:`record_program`         record one program of :data:`vmlab.measure.PROGRAMS` with
                               lackey and strip it (the shipped ``lackey_<name>.vmt``)
:func:`load_recordings`        the shipped (or freshly made) stripped recordings
:func:`predict`                the engine's counts for a recording, unlimited or limited
:func:`agreement_table`        predicted against measured, unlimited memory, per program
:func:`limit_table`            predicted against measured major faults under each limit
:func:`knee_bytes`             the largest limit where major faults have started to rise
:func:`within_factor`          a predicted count within a factor of a measured one
:func:`count_target_text`      issue 9's count target on a limit table, in words
:func:`major_fault_pages`      a prediction's major faults, page by page
:func:`kernel_major_sites`     the kernel's major faults, site by site (shipped, traced)
=============================  =============================================================

Predictions come from lackey recordings only, never from perf's own fault records: replaying
the kernel's faults to predict the kernel's fault count would be circular.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import VmlabError
from ..measure import MB, PROGRAMS, make_inputs
# (VALGRIND_OBJECTS: notebook 08 reads it from here)
from ..validate import VALGRIND_OBJECTS, cold_residency, predict  # noqa: F401

#: Where the shipped measurements and recordings live.
DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "native"
#: The filter of the shipped stripped recordings (:mod:`vmlab.trace.strip`), in pages: a
#: quarter of the smallest memory limit of the program's sweep or less, so the sweep's
#: replacement barely notices (tests/test_strip.py); 512 pages for the programs replayed with
#: unlimited memory only, where stripping changes no count.  All seven recordings together
#: are about 4 MB.
FILTER_PAGES = {"gzip": 32, "python_dict": 128, "md5sum": 16}
FILTER_PAGES_UNLIMITED = 512


def filter_pages(name):
    """The strip filter of program ``name`` (:data:`FILTER_PAGES`)."""
    return FILTER_PAGES.get(name, FILTER_PAGES_UNLIMITED)


def program_command(name):
    """``argv`` of program ``name`` of :data:`vmlab.measure.PROGRAMS`, relative to its input
    folder (as measured)."""
    for n, template, _what, _sweep in PROGRAMS:
        if n == name:
            return [x.replace("{dir}", ".") for x in template]
    raise VmlabError(f"no program {name!r}; programs are {[p[0] for p in PROGRAMS]}")


def record_program(name, out_dir, work_dir=None):
    """Record program ``name`` under valgrind lackey (:func:`vmlab.trace.record.record_lackey`,
    after one warm run so that the page cache is as the measured unlimited runs see it) and
    write it stripped (:func:`vmlab.trace.strip.strip_trace`) as ``out_dir/lackey_<name>.vmt``.
    The full recording goes to a temporary file next to it.  Returns ``(path, info)``."""
    from ..trace.native import open_trace
    from ..trace.record import record_lackey
    from ..trace.strip import strip_trace

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    own = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="vmlab-inputs-")) if own else Path(work_dir)
    try:
        if own:
            make_inputs(work)
        cmd = program_command(name)
        subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with tempfile.TemporaryDirectory(prefix="vmlab-lackey-", dir=out_dir) as tmp:
            full, info = record_lackey(cmd, Path(tmp) / "full.vmt", cwd=work, quiet=True,
                                       stdout=subprocess.DEVNULL)
            path, sinfo = strip_trace(open_trace(full), out_dir / f"lackey_{name}.vmt",
                                      filter_pages=filter_pages(name))
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    os.chmod(path, 0o644)
    return path, {**info, **sinfo}


def load_recordings(data_dir=None, names=None):
    """The stripped lackey recordings ``lackey_<name>.vmt`` of ``data_dir`` (default the
    shipped ``data/native``): ``{name: Trace}``, in :data:`PROGRAMS` order."""
    from ..trace.native import open_trace

    d = Path(data_dir) if data_dir else DATA_DIR
    out = {}
    for name, *_rest in PROGRAMS:
        if names is not None and name not in names:
            continue
        p = d / f"lackey_{name}.vmt"
        if not p.exists():
            raise VmlabError(f"{p}: no recording (scripts/measure_programs.py --lackey makes it)")
        out[name] = open_trace(p)
    return out


def _native(native_df):
    from ..measure import summarize_runs

    return summarize_runs(native_df)


def agreement_table(native_df, recordings):
    """Predicted against measured page faults with unlimited memory: one row per program
    with ``predicted``, ``measured`` (median over the runs), ``measured_min``/``max``,
    ``ratio`` = predicted / measured and ``in_target`` (0.9 <= ratio <= 1.1)."""
    s = _native(native_df)
    un = s[s["setting"] == "unlimited"].set_index("program")
    rows = []
    for name, tr in recordings.items():
        if name not in un.index:
            continue
        p = predict(tr)
        m = un.loc[name]
        ratio = p["page_faults"] / m["page_faults"]
        rows.append({"program": name, "accesses_recorded": len(tr),
                     "predicted": p["page_faults"], "predicted_major": p["major_faults"],
                     "measured": float(m["page_faults"]), "measured_min": int(m["pf_min"]),
                     "measured_max": int(m["pf_max"]), "measured_major": float(m["major_faults"]),
                     "ratio": ratio, "in_target": bool(0.9 <= ratio <= 1.1)})
    return pd.DataFrame(rows)


def limit_table(native_df, trace, program, cold_cache=None):
    """Major faults under each memory limit the program was measured at: ``limit_mb``,
    measured median/min/max, the kernel's OOM kills out of its runs, and the prediction
    (``predicted_major``, ``predicted_oom``) with ``memory_bytes`` = the limit, from the cold
    page cache when ``cold_cache`` is given.

    Issue 9's count target per limit: ``target_applies`` where the kernel's own run-to-run
    spread is narrower than 2x (``measured_max < 2 * max(measured_min, 1)``) and no run was
    OOM-killed (a killed run's counts stop at the kill); ``within_2x`` where the prediction
    is within a factor 2 of the measured median (both at least 1)."""
    s = _native(native_df)
    lim = s[(s["program"] == program) & (s["setting"] == "limit")]
    rows = []
    for r in lim.sort_values("limit_mb", ascending=False).itertuples():
        limit = int(round(r.limit_mb * MB / 4096)) * 4096
        p = predict(trace, memory_bytes=limit, cold_cache=cold_cache)
        rows.append({"program": program, "limit_mb": r.limit_mb, "limit_bytes": limit,
                     "measured_major": float(r.major_faults), "measured_min": int(r.mj_min),
                     "measured_max": int(r.mj_max), "oom_kills": int(r.oom_kills),
                     "runs": int(r.runs), "predicted_major": p["major_faults"],
                     "predicted_pages_read": p["pages_read"],
                     "predicted_faults": p["page_faults"], "predicted_oom": p["oom"],
                     "target_applies": bool(r.mj_max < 2 * max(r.mj_min, 1)
                                            and r.oom_kills == 0),
                     "within_2x": within_factor(p["major_faults"], r.major_faults, 2)})
    return pd.DataFrame(rows)


def count_target_text(table):
    """Issue 9's count target on one :func:`limit_table` in words: the limits where it
    applies, how many the prediction meets, and the kernel's counts where its spread is
    wider (or runs were killed) against the prediction's."""
    a = table[table["target_applies"]]
    mb = ", ".join(f"{x:g}" for x in a["limit_mb"])
    text = (f"Where the kernel's own run-to-run spread is narrower than 2x and no run was "
            f"killed ({mb or 'no limit'} MB), vmlab's major faults are within 2x of the "
            f"kernel's median at {int(a['within_2x'].sum())} of {len(a)} limits")
    missed = a.loc[~a["within_2x"], "limit_mb"]
    text += "." if missed.empty else f" (not at {', '.join(f'{x:g}' for x in missed)} MB)."
    wide = table[~table["target_applies"] & ~table["predicted_oom"]]
    if len(wide):
        text += " Elsewhere the kernel's spread is wider, or runs were killed: " + ", ".join(
            f"{x.limit_mb:g} MB {x.measured_major:g} ({x.measured_min}-{x.measured_max}, "
            f"{x.oom_kills} of {x.runs} killed) against {x.predicted_major}"
            for x in wide.itertuples()) + "."
    return text


def within_factor(predicted, measured, factor):
    """Whether ``predicted`` is within ``factor`` of ``measured`` either way (counts below 1
    taken as 1: 0 and 1 major faults are the same answer)."""
    a, b = max(float(predicted), 1.0), max(float(measured), 1.0)
    return bool(b / factor <= a <= b * factor)


def knee_bytes(limit_bytes, majors, rise=5):
    """The limit where major faults start rising: the largest limit whose major faults
    exceed those at the largest limit by more than ``rise`` (``None`` if none does)."""
    order = np.argsort(limit_bytes)[::-1]
    lim = np.asarray(limit_bytes)[order]
    mj = np.asarray(majors, float)[order]
    base = mj[0]
    above = np.flatnonzero(mj > base + rise)
    return None if not len(above) else int(lim[above[0]])


def _objects(vmas, alias=None):
    """The object each VMA belongs to: the file's name (or ``alias[file identity]``),
    ``[stack]``, ``[vdso/vvar]`` or ``anon`` (heap, bss, anonymous mmap)."""
    out = []
    alias = alias or {}
    for v in vmas:
        kind = v.name.split("@")[0]
        if v.file is not None:
            out.append(alias.get(v.file, v.file.rsplit("/", 1)[-1]))
        elif kind == "[stack]":
            out.append("[stack]")
        elif kind == "[special]":
            out.append("[vdso/vvar]")
        elif kind == "unrecorded":
            out.append("(no recorded mapping)")
        else:
            out.append("anon")
    return out


def faults_by_object(lackey_trace, perf_trace):
    """Where the predicted and the kernel's faults land: the faults of the prediction
    (lackey replay) and of the perf recording of a native run (the kernel's own faults,
    user and kernel mode on user addresses), per object (:func:`_objects`).  Columns
    ``object``, ``predicted``, ``kernel``, ``difference``."""
    from ..engine.prepare import RUNS_KNOBS
    from ..model.generations import separate
    from ..model.recorded import runnable, scenario_for, vmas_for
    from ..simulation import simulate
    from ..trace.model import Op

    sc, _ = runnable(scenario_for(lackey_trace), RUNS_KNOBS)
    f = simulate(sc).faults
    vm = sc.resolved_vmas()
    obj = np.array(_objects(vm), dtype=object)
    pred = pd.Series(obj[f["vma"].to_numpy()]).value_counts()
    perf_trace = separate(perf_trace)     # (the addresses its VMAs are for)
    pv = vmas_for(perf_trace)
    pobj = np.array(_objects(pv, _same_files(perf_trace, lackey_trace)), dtype=object)
    op = np.asarray(perf_trace.op)
    addr = np.asarray(perf_trace.addr)[op < Op.LOCK_W]     # lock records: no access
    starts = np.array([v.start for v in pv], np.uint64)
    k = np.searchsorted(starts, addr, side="right") - 1
    kern = pd.Series(pobj[k]).value_counts()
    df = pd.DataFrame({"predicted": pred, "kernel": kern}).fillna(0).astype(int)
    df["difference"] = df["predicted"] - df["kernel"]
    df.index.name = "object"
    return df.reset_index().sort_values("kernel", ascending=False, kind="stable")


def _same_files(trace, named_by):
    """``{file identity in trace: object name in named_by}`` for the files both recordings
    mapped (same device and inode): the two recorders name a file differently (valgrind the
    path the program opened, ``libstdc++.so.6``; perf the path the kernel resolved,
    ``libstdc++.so.6.0.30``), so without it one library is two objects, each off by its
    faults."""
    from ..model.recorded import file_names

    if trace.mappings is None or named_by.mappings is None:
        return {}
    name = {(f.dev, f.inode): n.rsplit("/", 1)[-1]
            for n, f in zip(file_names(named_by.mappings), named_by.mappings.files)}
    return {n: name[(f.dev, f.inode)]
            for n, f in zip(file_names(trace.mappings), trace.mappings.files)
            if (f.dev, f.inode) in name}


def can_remeasure():
    """Why this machine cannot re-measure the programs natively (``""`` if it can): Linux,
    root (memory cgroups), perf, a cgroup memory controller."""
    import sys

    from ..measure import cgroup_version
    from ..trace.record import require

    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "not root (the memory-limit sweep needs memory cgroups)"
    try:
        require("perf")
    except VmlabError as e:
        return str(e)
    if cgroup_version() is None:
        return "no cgroup memory controller"
    return ""


def recordings_match(recordings):
    """Whether the programs and libraries the shipped recordings ran are this machine's (same
    path and size for every file measured before the run): only then do a fresh native
    measurement and the shipped recordings describe the same runs."""
    for tr in recordings.values():
        for f in tr.mappings.files:
            if f.residency_when != "before_run":
                continue
            try:
                if os.path.getsize(f.path) != f.size_bytes:
                    return False
            except OSError:
                return False
    return True


#: Seconds a memory-limited native run may take when the notebook measures again: near its
#: OOM limit a program can thrash on file pages for minutes instead of being killed.
RUN_TIMEOUT_S = 15


def native_data(recordings, remeasure="unlimited", runs=3, names=None):
    """The native measurements to compare with: ``(runs DataFrame, metadata, source)``.

    ``remeasure``: ``"unlimited"`` measures the unlimited-memory runs again (:func:`vmlab.
    measure.measure_programs`, ``runs`` runs each, seconds) and keeps the shipped
    memory-limit sweeps; ``"all"`` measures the sweeps too (minutes: near the OOM limit a
    run may thrash until :data:`RUN_TIMEOUT_S` ends it); ``"never"`` reads the shipped
    ``data/native`` measurements only.  Measuring happens only when this machine can
    (:func:`can_remeasure`) and its binaries are those of the shipped recordings
    (:func:`recordings_match`).  ``source`` says what was measured, and why not."""
    from ..calibrate import machine_info
    from ..measure import load_native, measure_programs

    df, meta = load_native(DATA_DIR)
    if remeasure not in ("unlimited", "all", "never"):
        raise VmlabError(f"remeasure must be 'unlimited', 'all' or 'never', got {remeasure!r}")
    why = "remeasure='never'" if remeasure == "never" else can_remeasure()
    if not why and not recordings_match(recordings):
        why = "this machine's binaries differ from those of the shipped recordings"
    if why:
        return df, meta, f"shipped measurements (data/native; {why})"
    sweeps = remeasure == "all"
    rows, commands = measure_programs(runs=runs, only=set(names) if names else None,
                                      limits=sweeps, timeout=RUN_TIMEOUT_S)
    new = pd.DataFrame(rows)
    meta = {**meta, "machine": machine_info(), "runs": runs,
            "programs": {n: {**meta["programs"].get(n, {}), **c} for n, c in commands.items()}}
    if sweeps:
        return new, meta, f"measured now on this machine ({runs} runs per setting)"
    shipped = df[df["setting"] != "unlimited"]
    return (pd.concat([new, shipped], ignore_index=True), meta,
            f"unlimited runs measured now on this machine ({runs} runs each); the memory-limit "
            "sweeps shipped (data/native: minutes to measure)")


def major_faults_by_object(trace, memory_bytes, cold_cache):
    """The predicted major faults of a cold run under ``memory_bytes``, per object, with how
    many fall in a writable private file segment (``data_segment``: ``.data``/relro, written
    by the loader, so the fault is a copy-on-write that reads the page cache)."""
    from ..engine.prepare import RUNS_KNOBS
    from ..model.recorded import runnable, scenario_for
    from ..simulation import simulate

    sc, _ = runnable(scenario_for(trace, memory_bytes=memory_bytes,
                                  residency=cold_residency(trace, cold_cache)), RUNS_KNOBS)
    f = simulate(sc).faults
    f = f[f["major"]]
    vm = sc.resolved_vmas()
    obj = np.array(_objects(vm), dtype=object)
    data = np.array([v.file is not None and "w" in v.prot and v.private for v in vm])
    df = pd.DataFrame({"object": obj[f["vma"].to_numpy()],
                       "data_segment": data[f["vma"].to_numpy()]})
    out = df.groupby("object").agg(major_faults=("object", "size"),
                                   data_segment=("data_segment", "sum"))
    return out.reset_index().sort_values("major_faults", ascending=False, kind="stable")


def major_fault_pages(trace, memory_bytes, cold_cache):
    """The predicted major faults of a cold run under ``memory_bytes``, one row each, in
    order: ``object`` (:func:`_objects`), ``segment`` (``data``: a writable private file
    mapping, ``.data``/relro; ``text``: executable; ``read-only``; ``anon``) and
    ``file_page`` (the faulting page's page in its file)."""
    from ..engine.prepare import RUNS_KNOBS
    from ..model.recorded import runnable, scenario_for
    from ..simulation import simulate

    sc, _ = runnable(scenario_for(trace, memory_bytes=memory_bytes,
                                  residency=cold_residency(trace, cold_cache)), RUNS_KNOBS)
    f = simulate(sc).faults
    f = f[f["major"]].sort_values("start_ns", kind="stable")
    vm = sc.resolved_vmas()
    obj = _objects(vm)
    ps = int(trace.page_size)
    rows = []
    for r in f.itertuples():
        v = vm[r.vma]
        seg = ("anon" if v.file is None else "data" if ("w" in v.prot and v.private)
               else "text" if "x" in v.prot else "read-only")
        rows.append({"object": obj[r.vma], "segment": seg,
                     "file_page": (r.vpn - v.start // ps + v.offset // ps
                                   if v.file is not None else None)})
    return pd.DataFrame(rows, columns=["object", "segment", "file_page"])


def kernel_major_sites(data_dir=None):
    """The kernel's major faults in the shipped traced runs (``kernel_majors.csv``,
    :func:`vmlab.measure.major_fault_sites`): one row per program and site with ``site``
    (``exec (kernel mode)`` for exec's own write, else the file's name and page),
    ``runs`` (how many runs took it) and ``per_run`` (the program's median major faults
    per traced run)."""
    d = Path(data_dir) if data_dir else DATA_DIR
    df = pd.read_csv(d / "kernel_majors.csv", keep_default_na=False)
    out = []
    for prog, g in df.groupby("program", sort=False):
        runs = g["run"].nunique()
        per_run = float(g.groupby("run").size().median())
        for (mode, ip, file, off), h in g.groupby(["mode", "ip", "file", "file_offset"],
                                                   sort=False):
            if file:
                site = f"{file.rsplit('/', 1)[-1]} page {int(off) // 4096}"
            else:
                site = f"{ip.split('+')[0]} ({mode} mode)"
            out.append({"program": prog, "limit_mb": int(g["limit_bytes"].iloc[0]) / MB,
                        "site": site, "runs": f"{h['run'].nunique()}/{runs}",
                        "per_run": per_run})
    return pd.DataFrame(out)


def sites_text(kernel_sites, predicted_sites, program):
    """``(kernel, predicted)``: the major-fault sites of ``program`` in words, from
    :func:`kernel_major_sites` and the per-object counts of :func:`major_fault_pages`
    (columns ``program``, ``object``, ``segment``, ``predicted_major``)."""
    k = kernel_sites[kernel_sites["program"] == program]
    p = predicted_sites[predicted_sites["program"] == program]
    kernel = ", ".join(f"{r.site} ({r.runs} runs)" for r in k.itertuples())
    predicted = ", ".join(f"{r.predicted_major} in {r.object}'s {r.segment} pages"
                          for r in p.itertuples())
    return kernel or "none", predicted or "none"
