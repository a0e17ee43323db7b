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
:func:`rising`                 where major faults have started to rise (:data:`KNEE_FACTOR`)
:func:`knee_bytes`             the largest limit where major faults have started to rise
:func:`sweep_summary`          OOM limits and knees of every sweep (:func:`format_summary`)
:func:`kills_text`             the kernel's OOM kills, limit by limit, in words
:func:`predicted_oom_text`     vmlab's predicted OOM kills in words
:func:`rise_differences`       the limits where only one side's major faults have risen
:func:`knee_text`              where major faults start rising, both sides, with the rule
:func:`thrash_text`            thrashing without a kill, or straight to an OOM kill
:func:`differences_text`       the objects where predicted and kernel faults differ
:func:`count_range`            ``1 to 3 faults``
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


#: Major faults have "started to rise" at a limit where they are more than this many times
#: their count at the sweep's largest limit (:func:`rising`): the factor the count target
#: takes as agreement, so a count within it of the ample-memory count is no rise yet.
KNEE_FACTOR = 2


def rising(majors, factor=KNEE_FACTOR):
    """Where major faults have started to rise: a boolean array, one per limit of a sweep in
    order from the largest limit down (``majors[0]`` is the largest limit's count), true where
    the count is more than ``factor`` times the largest limit's (counts below 1 taken as 1,
    as in :func:`within_factor`: 0 and 1 major faults are the same answer)."""
    mj = np.asarray(majors, float)
    if not len(mj):
        return np.zeros(0, bool)
    return mj > factor * max(mj[0], 1.0)


def knee_bytes(limit_bytes, majors, factor=KNEE_FACTOR):
    """The limit where major faults start rising: the largest limit whose major faults are
    more than ``factor`` times those at the largest limit (:func:`rising`; ``None`` if no
    limit's are)."""
    lim = np.asarray(limit_bytes)
    order = np.argsort(lim, kind="stable")[::-1]
    above = np.flatnonzero(rising(np.asarray(majors, float)[order], factor))
    return None if not len(above) else int(lim[order][above[0]])


def _and(items):
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def limits_text(limit_mb, mask):
    """The limits of a sweep where ``mask`` holds, in words: ``from 0.4 MB down`` when they
    are the two or more smallest limits of the sweep, else ``at 0.55 and 0.45 MB``; ``""``
    when there are none.  ``limit_mb`` in any order (``mask`` in the same)."""
    lim = np.asarray(limit_mb, float)
    mask = np.asarray(mask, bool)
    order = np.argsort(lim, kind="stable")[::-1]
    lim, mask = lim[order], mask[order]
    if not mask.any():
        return ""
    k = int(mask.sum())
    if k >= 2 and mask[-k:].all():
        return f"from {lim[-k]:g} MB down"
    return "at " + _and(f"{x:g}" for x in lim[mask]) + " MB"


def kills_text(table):
    """The kernel's OOM kills over one :func:`limit_table`, limit by limit, in words: from
    the largest limit where a run was killed down, ``k of n runs at X MB`` (``none at X MB``
    where no run was), and ``all n runs from X MB down`` for the smallest limits where every
    run was; ``no run at any limit measured`` when none was.  Read after "OOM-kills"."""
    t = table.sort_values("limit_mb", ascending=False)
    lim = t["limit_mb"].to_numpy(float)
    kills = t["oom_kills"].to_numpy(int)
    runs = t["runs"].to_numpy(int)
    if not kills.any():
        return "no run at any limit measured"
    tail = len(lim)                 # the smallest limits where every run was killed
    while tail > 0 and kills[tail - 1] == runs[tail - 1]:
        tail -= 1
    if len(lim) - tail < 2:         # one limit is no "from ... down"
        tail = len(lim)
    parts = [f"{kills[i]} of {runs[i]} runs at {lim[i]:g} MB" if kills[i]
             else f"none at {lim[i]:g} MB" for i in range(int(np.flatnonzero(kills)[0]), tail)]
    if tail < len(lim):
        n = runs[tail:]
        every = f"all {n[0]}" if (n == n[0]).all() else "all"
        parts.append(f"{every} runs from {lim[tail]:g} MB down")
    return _and(parts)


def predicted_oom_text(table):
    """vmlab's predicted OOM kills over one :func:`limit_table` in words (read after "vmlab
    predicts"): ``an OOM kill from 0.4 MB down`` (:func:`limits_text`) or ``no OOM kill at any
    limit measured``."""
    where = limits_text(table["limit_mb"], table["predicted_oom"])
    return f"an OOM kill {where}" if where else "no OOM kill at any limit measured"


def _at_limits(limit_mb, majors):
    """``0.5 MB (5 major faults)``, or for more limits ``0.5 MB (8) and 0.45 MB (14)``."""
    unit = " major faults" if len(limit_mb) == 1 else ""
    return _and(f"{x:g} MB ({m:g}{unit})" for x, m in zip(limit_mb, majors))


def thrash_text(table, side, factor=KNEE_FACTOR):
    """How one side of one :func:`limit_table` (``side``: ``"kernel"``, the measured medians
    and OOM kills, or ``"vmlab"``, the prediction) gets from "everything fits" to the OOM
    kill, in words read after "it": the limits where it thrashes without being killed (its
    major faults risen by :func:`rising` and no run killed), or that it goes straight to an
    OOM kill.  The wording, by the numbers:

    * some such limits: ``thrashes without a kill at 0.5 MB (5 major faults)``, for three
      limits or more next to each other ``thrashes without a kill at the 5 limits from 2.25
      to 0.6 MB (4 to 200 major faults)``; then ``, and is never killed`` when no run is
      killed at any limit;
    * none, and a kill somewhere: ``goes straight from 'everything fits' to an OOM kill``;
    * none, and no kill: ``neither thrashes nor is killed at any limit measured``.
    """
    if side not in ("kernel", "vmlab"):
        raise ValueError(f"side must be 'kernel' or 'vmlab', got {side!r}")
    t = table.sort_values("limit_mb", ascending=False)
    majors = t["measured_major" if side == "kernel" else "predicted_major"].to_numpy(float)
    killed = (t["oom_kills"].to_numpy() > 0 if side == "kernel"
              else t["predicted_oom"].to_numpy(bool))
    mask = rising(majors, factor) & ~killed
    lim = t["limit_mb"].to_numpy(float)
    if not mask.any():
        return ("goes straight from 'everything fits' to an OOM kill" if killed.any()
                else "neither thrashes nor is killed at any limit measured")
    idx = np.flatnonzero(mask)
    if len(idx) >= 3 and (np.diff(idx) == 1).all():
        where = (f"at the {len(idx)} limits from {lim[idx[0]]:g} to {lim[idx[-1]]:g} MB "
                 f"({majors[idx].min():g} to {majors[idx].max():g} major faults)")
    else:
        where = "at " + _at_limits(lim[idx], majors[idx])
    return f"thrashes without a kill {where}" + ("" if killed.any() else ", and is never killed")


def rise_differences(table, factor=KNEE_FACTOR):
    """The limits of one :func:`limit_table` where no run was killed, in the kernel or in the
    prediction, and the major faults have risen (:func:`rising`) on one side only: rows with
    ``limit_mb``, ``measured_major`` and ``predicted_major``, largest limit first.  (Where a
    run was killed its counts stop at the kill, so they are left out.)"""
    t = table.sort_values("limit_mb", ascending=False)
    free = (t["oom_kills"].to_numpy() == 0) & ~t["predicted_oom"].to_numpy(bool)
    differ = rising(t["measured_major"], factor) != rising(t["predicted_major"], factor)
    return t.loc[free & differ, ["limit_mb", "measured_major", "predicted_major"]]


def knee_text(table, factor=KNEE_FACTOR):
    """Where major faults start rising (:func:`rising`) in the kernel and in vmlab over one
    :func:`limit_table`, with the rule and the counts, and the limits where only one side's
    have risen (:func:`rising`, :func:`rise_differences`): ``major faults first exceed 2x their
    count at the largest limit (1) at 0.5 MB in the kernel (5) and at 0.5 MB in vmlab (8);
    where neither side was killed, the two agree at every limit on whether they have risen``
    (or ``..., only one side's have risen at 1.5 MB (the kernel 26, vmlab 2)``).  Each side's
    base is named when the two differ; a side whose faults never rise that far reads
    ``nowhere in the sweep``; a table with no limit, ``no limit was swept``."""
    if table.empty:
        return "no limit was swept"
    t = table.sort_values("limit_mb", ascending=False)
    lim = t["limit_mb"].to_numpy(float)
    parts, bases = [], []
    for who, col in (("the kernel", "measured_major"), ("vmlab", "predicted_major")):
        mj = t[col].to_numpy(float)
        bases.append(mj[0])
        up = np.flatnonzero(rising(mj, factor))
        parts.append(f"at {lim[up[0]]:g} MB in {who} ({mj[up[0]]:g})" if len(up)
                     else f"nowhere in the sweep in {who}")
    base = (f"{bases[0]:g}" if bases[0] == bases[1]
            else f"the kernel {bases[0]:g}, vmlab {bases[1]:g}")
    d = rise_differences(table, factor)
    rest = ("the two agree at every limit on whether they have risen" if d.empty else
            "only one side's have risen at " + _and(
                f"{r.limit_mb:g} MB (the kernel {r.measured_major:g}, vmlab {r.predicted_major:g})"
                for r in d.itertuples()))
    return (f"major faults first exceed {factor:g}x their count at the largest limit "
            f"({base}) {parts[0]} and {parts[1]}; where neither side was killed, {rest}")


def sweep_summary(sweeps):
    """One row per program of ``sweeps`` (``{program: limit_table}``), limits in MB as the
    sweep names them (``limit_mb``), NaN where there is none: ``kernel_oom_mb`` (the largest
    limit where the kernel killed a run), ``predicted_oom_mb`` (the largest where vmlab
    predicts a kill), ``kernel_knee_mb`` and ``predicted_knee_mb`` (where major faults start
    rising, :func:`knee_bytes`)."""
    rows = []
    for name, t in sweeps.items():
        mb = dict(zip(t["limit_bytes"], t["limit_mb"]))
        knee_k = knee_bytes(t["limit_bytes"], t["measured_major"])
        knee_p = knee_bytes(t["limit_bytes"], t["predicted_major"])
        rows.append({"program": name,
                     "kernel_oom_mb": t.loc[t["oom_kills"] > 0, "limit_mb"].max(),
                     "predicted_oom_mb": t.loc[t["predicted_oom"].astype(bool), "limit_mb"].max(),
                     "kernel_knee_mb": np.nan if knee_k is None else mb[knee_k],
                     "predicted_knee_mb": np.nan if knee_p is None else mb[knee_p]})
    return pd.DataFrame(rows, columns=["program", "kernel_oom_mb", "predicted_oom_mb",
                                       "kernel_knee_mb", "predicted_knee_mb"])


def format_summary(summary):
    """:func:`sweep_summary` for display: each ``*_mb`` as text with 2 decimals (``0.55``),
    ``none`` where there is no such limit in the sweep."""
    out = summary.copy()
    for c in out.columns:
        if c.endswith("_mb"):
            out[c] = [f"{x:.2f}" if pd.notna(x) else "none" for x in summary[c]]
    return out


#: Objects of :func:`faults_by_object` that are locale data (``LC_CTYPE``, ``SYS_LC_MESSAGES``,
#: ``locale-archive``).
LOCALE_PREFIXES = ("LC_", "SYS_LC_", "locale")


def count_range(lo, hi, noun="fault"):
    """``1 to 3 faults``, ``2 faults``, ``1 fault``."""
    if lo == hi:
        return f"{hi} {noun}{'' if hi == 1 else 's'}"
    return f"{lo} to {hi} {noun}s"


def differences_text(objects):
    """``(text, smallest, largest)``: the objects where predicted and kernel faults differ, of
    rows of :func:`faults_by_object` with a ``program`` column, in words (``libc.so.6 (gzip
    -3, sqlite +1) and libm.so.6 (sqlite +1)``, programs whose difference is 0 left out, the
    object with the most differing faults first), and the smallest and largest difference in
    size among them (``("", 0, 0)`` when every difference is 0)."""
    d = objects[objects["difference"] != 0]
    if d.empty:
        return "", 0, 0
    size = d["difference"].abs().groupby(d["object"], sort=False).sum()
    text = _and(
        f"{obj} (" + ", ".join(f"{r.program} {signed(r.difference)}"
                               for r in d[d["object"] == obj].itertuples()) + ")"
        for obj in size.sort_values(ascending=False, kind="stable").index)
    a = d["difference"].abs()
    return text, int(a.min()), int(a.max())


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
    (``elf_load in kernel mode`` for exec's own write, else the file's name and page),
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
                site = f"{ip.split('+')[0]} in {mode} mode"
            out.append({"program": prog, "limit_mb": int(g["limit_bytes"].iloc[0]) / MB,
                        "site": site, "runs": f"{h['run'].nunique()}/{runs}",
                        "per_run": per_run})
    return pd.DataFrame(out)


def signed(n):
    """A whole-number difference with its sign (``+2``, ``-3``), and ``0`` for none."""
    n = int(n)
    return f"{n:+,d}" if n else "0"


def sites_text(kernel_sites, predicted_sites, program):
    """``(kernel, predicted)``: the major-fault sites of ``program`` in words, from
    :func:`kernel_major_sites` and the per-object counts of :func:`major_fault_pages`
    (columns ``program``, ``object``, ``segment``, ``predicted_major``)."""
    k = kernel_sites[kernel_sites["program"] == program]
    p = predicted_sites[predicted_sites["program"] == program]
    kernel = ", ".join(f"{r.site}: {r.runs} runs" for r in k.itertuples())
    predicted = ", ".join(f"{r.predicted_major} in {r.object}'s {r.segment} pages"
                          for r in p.itertuples())
    return kernel or "none", predicted or "none"
