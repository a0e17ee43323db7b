"""``vmlab calibrate``: measure this machine's fault and syscall costs and write a costs
profile that :meth:`vmlab.model.costs.Costs.from_file` and ``vmlab run --costs`` read.

The measurements come from ``vmlab/data/calibrate.c`` (compiled at run time with the system's
C compiler; see its header for what each one does).  Each batch measurement is repeated
``runs`` times in one process and the profile takes the **minimum over the runs** of the
per-operation mean (the run least disturbed by other processes on a shared machine, as in
``KERNEL-2026.md``); every run's value is kept in ``measurements``.

How the costs follow from the measurements (``docs/model.md``, costs):

============================  =====================================================
``fault_ns``                  zero-page read fault (the bare trap, lookup, walk, PTE)
``zero_fill_ns``              anonymous write fault - ``fault_ns``
``pagecache_hit_ns``          page-cache hit fault, no fault-around - ``fault_ns``
``pte_ns``                    ``MAP_POPULATE`` of a resident file, per page
``remap_fixed_ns``            the same measurement's fixed part (one page's mmap)
``mmap_cs_ns``                ``mmap`` + ``munmap`` of 64 KiB
``signal_ns``                 ``raise(SIGUSR1)`` with an empty handler
``io_ns``                     the major-fault samples (``Empirical``), when the file's
                              pages could be dropped from the page cache
``access_ns``, ``struct_page_ns``, ``driver_ns``, ``wakeup_ns``, ``wait_ns``: defaults (not
measurable from user space)
============================  =====================================================

The page-cache hit fault with fault-around and the pages it maps per fault, and the null
syscall, are recorded in ``measurements`` too (the engine's fault-around cost per extra page
is ``pte_ns``; the measured cost per page mapped by fault-around is reported beside it).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .errors import VmlabError
from .model.costs import Costs

#: Batch measurements of calibrate.c, in its output order.
BATCH = ("zero_read", "anon_write", "cache_hit", "cache_around", "around_pages",
         "populate_page", "populate_fixed", "mmap_pair", "signal", "null_syscall")


def c_compiler():
    """The system's C compiler (``cc``, ``gcc`` or ``clang``), or :class:`VmlabError`
    saying what to install."""
    for cc in ("cc", "gcc", "clang"):
        path = shutil.which(cc)
        if path:
            return path
    raise VmlabError("no C compiler found: install one (Debian/Ubuntu: `apt-get install gcc`)")


def compile_c(name, out_dir, extra=()):
    """Compile the package's ``vmlab/data/NAME.c`` into ``out_dir``; return the binary."""
    src = resources.files("vmlab").joinpath("data", f"{name}.c")
    out = Path(out_dir) / name
    with resources.as_file(src) as path:
        r = subprocess.run([c_compiler(), "-O2", "-o", str(out), str(path), *extra],
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise VmlabError(f"compiling {name}.c failed: {r.stderr.strip()[:300]}")
    return out


_HELPERS = {}


def process_helper(name):
    """``vmlab/data/NAME.c`` compiled once per process (static when possible) into a private
    temporary folder that is removed when the process exits; returns the binary's path
    (raises VmlabError when it cannot be built)."""
    if name not in _HELPERS:
        import atexit
        import shutil
        import tempfile

        d = tempfile.mkdtemp(prefix=f"vmlab-{name}-")
        atexit.register(shutil.rmtree, d, True)
        try:
            path = compile_c(name, d, extra=("-static",))
        except VmlabError:
            path = compile_c(name, d)
        _HELPERS[name] = str(path)
    return _HELPERS[name]


def machine_info():
    """Kernel, CPU model, CPU count and page size of this machine."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"kernel": platform.release(), "machine": platform.machine(), "cpu": cpu,
            "cpus": os.cpu_count(), "page_size": os.sysconf("SC_PAGESIZE")}


def measure(*, pages=4096, runs=9, major_samples=300, workdir=None):
    """Run the calibration program; return ``{name: [values]}`` (ns per operation; for
    ``major`` one value per timed fault; ``major_skipped`` when the cache could not be
    dropped).

    ``workdir`` holds the temporary test files; it must be on a disk-backed file system
    (default: the current directory; a tmpfs cannot drop its pages, so no major fault).
    """
    if runs < 1 or pages < 32:
        raise VmlabError(f"calibrate needs runs >= 1 and pages >= 32, got {runs}, {pages}")
    workdir = os.path.abspath(workdir or os.getcwd())
    with tempfile.TemporaryDirectory(prefix="vmlab-calibrate-") as tmp:
        binary = compile_c("calibrate", tmp)
        r = subprocess.run([str(binary), workdir, str(pages), str(runs), str(major_samples)],
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise VmlabError(f"calibration program failed (exit {r.returncode}): "
                         f"{r.stderr.strip()[:300]}")
    values = {}
    for line in r.stdout.splitlines():
        name, _i, v = line.split()
        values.setdefault(name, []).append(float(v))
    missing = [k for k in BATCH if k not in values]
    if missing:
        raise VmlabError(f"calibration program printed no {missing}")
    return values


def profile_from(values, runs=None):
    """The costs profile (a dict with ``costs``, ``measurements``, ``machine``) from
    :func:`measure`'s values."""
    best = {k: float(np.min(values[k])) for k in BATCH}
    if best["populate_page"] <= 0:
        raise VmlabError(
            "calibrate: mapping more pages measured no slower than mapping one (populate_page "
            f"{best['populate_page']:.1f} ns): the machine was too busy; run it again when "
            "it is quieter, or with more --runs")
    fault = best["zero_read"]
    costs = Costs().to_dict()
    costs.update({
        "fault_ns": round(fault),
        "zero_fill_ns": max(0, round(best["anon_write"] - fault)),
        "pagecache_hit_ns": max(0, round(best["cache_hit"] - fault)),
        "pte_ns": round(best["populate_page"]),
        "remap_fixed_ns": max(0, round(float(np.median(values["populate_fixed"])))),
        "mmap_cs_ns": round(best["mmap_pair"]),
        "signal_ns": round(best["signal"]),
    })
    meas = {f"{k}_ns" if k != "around_pages" else k: best[k] for k in BATCH}
    meas["around_extra_page_ns"] = ((best["cache_around"] - best["cache_hit"])
                                    / max(1.0, best["around_pages"] - 1))
    meas["runs"] = {k: values[k] for k in BATCH}
    majors = values.get("major")
    if majors:
        arr = np.asarray(majors)
        costs["io_ns"] = {"kind": "empirical", "samples_ns": [float(x) for x in np.sort(arr)]}
        meas["major_fault_ns"] = {q: float(np.percentile(arr, p)) for q, p in
                                  (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
        meas["major_fault_samples"] = len(arr)
    else:
        meas["major_fault_ns"] = None
        meas["major_fault_note"] = ("not measured: " + ("the test file's pages could not be "
                                    "dropped (tmpfs?)" if "major_skipped" in values
                                    else "disabled"))
    Costs.from_dict(costs)  # the profile must load
    return {"costs": costs, "measurements": meas, "machine": machine_info(),
            "method": "vmlab calibrate: minimum over runs of the per-operation mean"
                      + (f" ({runs} runs)" if runs else "")}


def add_lock_wakeups(prof, load, runs=3):
    """Measure how long a thread woken from an ``mmap_lock`` wait, and one woken from its
    read, take to run on this machine under ``load`` (:func:`vmlab.studies.lock_wakeups.measure`
    with ``io``: needs ``perf`` and the tracepoints, so root) and put them in the profile
    ``prof`` as the costs ``lock_wakeup_ns`` and ``io_wakeup_ns`` (empirical distributions),
    with their summaries in ``measurements``."""
    from .studies.lock_wakeups import measure as measure_wakeups
    from .studies.lock_wakeups import summary

    wakes, _runs, io = measure_wakeups(runs=runs, loads=[load], io=True)
    for cost, df, what in (("lock_wakeup_ns", wakes, "acquisition of mmap_lock waited"),
                           ("io_wakeup_ns", io, "faulting thread was woken from its read")):
        d = np.sort(df["delay_ns"].to_numpy(dtype=np.float64))
        if len(d) == 0:
            raise VmlabError(f"calibrate --lock-wakeups {load}: no {what} in {runs} runs; "
                             f"nothing to measure (run it again, or with more --runs)")
        prof["costs"][cost] = {"kind": "empirical", "samples_ns": d.tolist()}
        prof["measurements"][cost] = {"load": load, "runs": runs, **summary(d)}
    Costs.from_dict(prof["costs"])  # the profile must load
    return prof


def calibrate(out, *, runs=9, pages=4096, major=True, major_samples=300, lock_wakeups=None):
    """Measure, and write the profile to ``out`` (JSON, or TOML for a ``.toml`` name),
    atomically; ``lock_wakeups`` (a load of :data:`vmlab.studies.lock_wakeups.LOADS`) adds
    the lock wake-ups of :func:`add_lock_wakeups`. Returns the profile dict."""
    out = Path(out)
    values = measure(pages=pages, runs=runs, major_samples=major_samples if major else 0,
                     workdir=out.parent if str(out.parent) else None)
    prof = profile_from(values, runs)
    if lock_wakeups is not None:
        add_lock_wakeups(prof, lock_wakeups)
    text = to_toml(prof) if out.suffix.lower() == ".toml" else json.dumps(prof, indent=1)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text + "\n")
    return prof


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(prof):
    """The profile in TOML (tables ``costs``, ``measurements``, ``machine``; ``None``
    values are left out, TOML has no null)."""
    lines = []
    for key, val in prof.items():
        if not isinstance(val, dict):
            lines.append(f"{key} = {_toml_value(val)}")
    for key, val in prof.items():
        if isinstance(val, dict):
            lines.append(f"\n[{key}]")
            for k, v in val.items():
                if v is not None:
                    lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines)
