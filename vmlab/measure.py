"""Measure real programs natively: page faults and major faults from ``perf stat``, with
unlimited memory and under cgroup memory limits (v1 or v2).  Used by ``vmlab validate``,
``scripts/measure_programs.py`` (the data of notebook 08) and the notebook itself.

A memory-limited run goes through ``cgexec`` (``vmlab/data/cgexec.c``, compiled at run
time): ``perf stat`` runs ``cgexec PROCS_FILE PROGRAM ARGS``, which moves itself into a fresh
cgroup and execs the program, so the program and its children are charged to the cgroup
and perf stays outside.  ``perf stat`` counts cgexec's own few faults before the exec too:
:func:`helper_faults` measures them (``cgexec`` running ``true`` minus ``true`` alone) and
:func:`run_limited` subtracts them (the ``helper_faults`` field says how many).

Without swap, a limit below the program's anonymous working set ends in an OOM kill:
``oom_killed`` is taken from the cgroup's own OOM-kill counter (v1 ``memory.oom_control``,
v2 ``memory.events``) and confirmed by the program's death by SIGKILL.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .errors import VmlabError
from .trace.record import require

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


def cgroup_version():
    """1 or 2 when this process can create memory cgroups (root and a memory controller),
    else ``None``."""
    if os.geteuid() != 0:
        return None
    if (V1_ROOT / "memory.limit_in_bytes").exists() and os.access(V1_ROOT, os.W_OK):
        return 1
    ctrl = V2_ROOT / "cgroup.controllers"
    if ctrl.exists() and "memory" in ctrl.read_text().split():
        return 2
    return None


def why_no_cgroup():
    """One line saying why memory-limited runs are not possible here (``None`` if they are)."""
    if os.geteuid() != 0:
        return "memory-limit runs need root (they create a cgroup)"
    if cgroup_version() is None:
        return "no cgroup memory controller (v1 /sys/fs/cgroup/memory or v2 'memory' controller)"
    return None


def _parse_perf_stat(text):
    out = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 3 or line.startswith("#"):
            continue
        value, _unit, event = parts[0], parts[1], parts[2]
        name = event.split(":")[0].strip()
        try:
            out[name] = int(value)
        except ValueError:
            out[name] = None   # "<not counted>" / "<not supported>"
    return out


def perf_stat(argv, *, cwd=None, stdin=None, prefix=(), env=None, timeout=None,
              on_timeout=None):
    """Run ``argv`` once under ``perf stat -e page-faults,major-faults,minor-faults``.

    Returns a dict: ``page_faults``, ``major_faults``, ``minor_faults``, ``seconds``,
    ``exit_code`` (perf's: the workload's exit status when it exited normally) and
    ``timed_out``.  ``timeout`` (seconds): past it, ``on_timeout()`` is called to end the
    workload (default: SIGINT to perf's process group) and perf prints the counts up to
    there; ``timed_out`` is then True.
    """
    perf = require("perf")
    with tempfile.NamedTemporaryFile(prefix="vmlab-perfstat-", suffix=".csv") as tmp:
        cmd = [perf, "stat", "-x", ",", "-o", tmp.name,
               "-e", "page-faults,major-faults,minor-faults", "--", *prefix, *argv]
        t0 = time.perf_counter()
        timed_out = False
        with subprocess.Popen(cmd, cwd=cwd,
                              stdin=stdin if stdin is not None else subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                              start_new_session=True) as p:
            try:
                _, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                if on_timeout is not None:
                    on_timeout()
                else:     # the workload ends on SIGINT; perf stat prints its counts
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGINT)
                _, err = p.communicate()
        r = subprocess.CompletedProcess(cmd, p.returncode, None, err)
        seconds = time.perf_counter() - t0
        counts = _parse_perf_stat(Path(tmp.name).read_text())
    if "page-faults" not in counts:
        raise VmlabError(f"perf stat printed no page-fault count for {argv[0]!r}: "
                         f"{r.stderr.decode(errors='replace').strip()[:200]}")
    code = r.returncode  # perf's own status (a workload killed by a signal still gives 0)
    return {"page_faults": counts.get("page-faults"), "major_faults": counts.get("major-faults"),
            "minor_faults": counts.get("minor-faults"), "seconds": seconds, "exit_code": code,
            "timed_out": timed_out}


class MemoryCgroup:
    """A fresh memory cgroup (v1 or v2) with a limit, removed on exit."""

    def __init__(self, limit_bytes=None, version=None):
        self.version = version or cgroup_version()
        if self.version is None:
            raise VmlabError(why_no_cgroup())
        root = V1_ROOT if self.version == 1 else V2_ROOT
        self.path = root / f"vmlab-{os.getpid()}-{time.monotonic_ns()}"
        self.limit_bytes = limit_bytes

    def __enter__(self):
        self.path.mkdir()
        try:
            if self.version == 1:
                if self.limit_bytes is not None:
                    (self.path / "memory.limit_in_bytes").write_text(str(int(self.limit_bytes)))
                with contextlib.suppress(OSError):
                    (self.path / "memory.swappiness").write_text("0")
            else:
                if self.limit_bytes is not None:
                    (self.path / "memory.max").write_text(str(int(self.limit_bytes)))
                with contextlib.suppress(OSError):
                    (self.path / "memory.swap.max").write_text("0")
        except OSError:
            self.__exit__(None, None, None)
            raise
        return self

    @property
    def procs(self):
        return self.path / "cgroup.procs"

    def oom_kills(self):
        name, key = (("memory.oom_control", "oom_kill") if self.version == 1
                     else ("memory.events", "oom_kill"))
        with contextlib.suppress(OSError):
            for line in (self.path / name).read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
        return 0

    def peak_bytes(self):
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / name).read_text())
        return None

    def __exit__(self, *exc):
        for _ in range(50):
            try:
                self.path.rmdir()
                return False
            except FileNotFoundError:
                return False
            except OSError:
                # a task may still be exiting; v1 keeps page-cache charges: move them up
                if self.version == 1:
                    with contextlib.suppress(OSError):
                        (self.path / "memory.force_empty").write_text("0")
                time.sleep(0.02)
        return False




def cgexec_binary():
    """The compiled cgexec helper (built once per process, static when possible, removed
    at exit: :func:`vmlab.calibrate.process_helper`)."""
    from .calibrate import process_helper

    return process_helper("cgexec")


def helper_faults(runs=5):
    """Page faults perf stat counts for cgexec itself (median over ``runs`` of cgexec
    running ``true`` minus ``true`` alone); cgexec moves into the root cgroup here."""
    true = shutil.which("true") or "/bin/true"
    version = cgroup_version()
    procs = (V1_ROOT if version == 1 else V2_ROOT) / "cgroup.procs"
    with_h = [perf_stat([true], prefix=(cgexec_binary(), str(procs)))["page_faults"]
              for _ in range(runs)]
    alone = [perf_stat([true])["page_faults"] for _ in range(runs)]
    return max(0, round(statistics.median(with_h) - statistics.median(alone)))


def run_limited(argv, limit_bytes, *, cwd=None, helper=None, timeout=None):
    """Run ``argv`` once in a fresh memory cgroup limited to ``limit_bytes`` (``None``: no
    limit) under perf stat.  Returns :func:`perf_stat`'s dict plus ``limit_bytes``,
    ``oom_killed``, ``peak_bytes`` and ``helper_faults`` (already subtracted from
    ``page_faults`` and ``minor_faults``).  ``timeout`` (seconds): a run still going then
    (thrashing on file pages near the OOM limit can last minutes) has every process of its
    cgroup killed and ``timed_out`` True."""
    helper = helper_faults() if helper is None else helper
    with MemoryCgroup(limit_bytes) as cg:
        def kill():
            with contextlib.suppress(OSError, ValueError):
                for pid in Path(cg.procs).read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)
        res = perf_stat(argv, cwd=cwd, prefix=(cgexec_binary(), str(cg.procs)),
                        timeout=timeout, on_timeout=kill)
        time.sleep(0.01)
        res["oom_killed"] = cg.oom_kills() > 0
        res["peak_bytes"] = cg.peak_bytes()
    for k in ("page_faults", "minor_faults"):
        if res[k] is not None:
            res[k] = max(0, res[k] - helper)
    res["limit_bytes"] = limit_bytes
    res["helper_faults"] = helper
    return res


_MAJ = re.compile(r"majfault \[(?P<ip>[^\]]*)\] => (?P<target>\S+) \((?P<how>[^)]*)\)")


def parse_major_faults(text):
    """The major faults of ``perf trace -F maj --no-syscalls`` output: one dict per fault
    with ``ip`` (the faulting instruction: ``symbol+offset`` when perf resolved it),
    ``mode`` (``"kernel"`` when the faulting instruction is in the kernel, as exec's
    ``elf_load`` writing the start of the bss, else ``"user"``), ``file`` and
    ``file_offset`` (the faulting address's file and offset when perf resolved it, else
    ``None``) and ``address`` (the raw address when it did not)."""
    out = []
    for line in text.splitlines():
        m = _MAJ.search(line)
        if m is None:
            continue
        target, how = m["target"], m["how"]
        file = off = addr = None
        if "@0x" in target:
            file, _, o = target.rpartition("@0x")
            off = int(o, 16)
        else:
            with contextlib.suppress(ValueError):
                addr = int(target, 16)
        out.append({"ip": m["ip"], "mode": "kernel" if how.endswith("k") else "user",
                    "file": file, "file_offset": off, "address": addr})
    return out


def major_fault_sites(argv, limit_bytes, *, cwd=None, runs=3, hold=None):
    """Where the kernel takes its major faults in cold runs of ``argv`` under the memory
    limit ``limit_bytes``, the way the limited runs are measured (the program's files
    dropped but for the pages of ``hold``, held as :func:`measure_program` holds them, by
    default the cold page cache found before the first run; a fresh memory cgroup entered
    through cgexec), traced by ``perf trace -F maj --no-syscalls``.  Returns one dict per
    fault (:func:`parse_major_faults`) with ``run``, ``oom_killed`` and the run's
    ``cold_extra_pages``/``cold_missing_pages`` (:func:`cold_difference`).  Needs root, perf
    and a cgroup memory controller."""
    perf = require("perf")
    if cgroup_version() is None:
        raise VmlabError(why_no_cgroup())
    if hold is None:
        hold = cold_page_cache(argv, cwd)
    rows = []
    with hold_page_cache(hold):
        for run in range(runs):
            extra, missing = cold_difference(argv, cwd, hold)   # drops the files first
            with MemoryCgroup(int(limit_bytes) // 4096 * 4096) as cg, \
                    tempfile.NamedTemporaryFile(prefix="vmlab-maj-", suffix=".txt") as log:
                r = subprocess.run([perf, "trace", "-F", "maj", "--no-syscalls", "-o",
                                    log.name, "--", cgexec_binary(), str(cg.procs), *argv],
                                   cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if r.returncode != 0 and not Path(log.name).stat().st_size:
                    raise VmlabError("perf trace failed: "
                                     f"{r.stderr.decode(errors='replace')[:200]}")
                killed = cg.oom_kills() > 0
                for f in parse_major_faults(Path(log.name).read_text(errors="replace")):
                    rows.append({"run": run, "oom_killed": killed, "cold_extra_pages": extra,
                                 "cold_missing_pages": missing, **f})
    return rows


#: How long :func:`charge_at_exit` holds the program at its ``exit_group`` (microseconds).
EXIT_HOLD_US = 500_000


def charge_at_exit(argv, limit_bytes, *, cwd=None, hold=None):
    """What the cgroup is charged for a cold run of ``argv`` under ``limit_bytes``
    (``None``: no limit) when the program calls ``exit_group``, before it frees anything:
    ``strace`` (outside the cgroup) holds that call for :data:`EXIT_HOLD_US` while the
    cgroup's counters are read.  The run starts as :func:`measure_program`'s cold runs do
    (the program's files dropped but for ``hold``, held while it runs).

    Returns pages: ``file`` (page cache: v1 ``cache``, v2 ``file``), ``anon`` (v1 ``rss``,
    v2 ``anon``), ``kernel`` (v1 ``memory.kmem.usage_in_bytes``, v2 ``kernel``),
    ``usage`` (v1 ``memory.usage_in_bytes``, v2 ``memory.current``) and ``other`` =
    ``usage - file - anon - kernel`` (in v1 the per-CPU charge stock, up to 63 pages a CPU
    charged ahead and not yet used, is in ``usage`` only), ``peak`` (v1
    ``max_usage_in_bytes``, v2 ``memory.peak``, read after the exit), ``mapped_file`` and
    the raw ``stat`` (``memory.stat``, byte fields in pages).  For a program that ends with
    ``exit_group`` (not one killed first).  Needs root, strace and a cgroup memory
    controller."""
    strace = require("strace")
    version = cgroup_version()
    if version is None:
        raise VmlabError(why_no_cgroup())
    ps = os.sysconf("SC_PAGE_SIZE")
    files = program_files(argv, cwd)
    with hold_page_cache(hold or {}):
        drop_from_cache(files)
        limit = None if limit_bytes is None else int(limit_bytes) // ps * ps
        with MemoryCgroup(limit, version) as cg:
            p = subprocess.Popen([strace, "-f", "-qq", "-o", os.devnull, "-e",
                                  "trace=exit_group", "-e",
                                  f"inject=exit_group:delay_enter={EXIT_HOLD_US}",
                                  cgexec_binary(), str(cg.procs), *argv], cwd=cwd,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                stat = _wait_for_exit_group(cg, p)
                if version == 1:
                    usage = int((cg.path / "memory.usage_in_bytes").read_text())
                    kernel = int((cg.path / "memory.kmem.usage_in_bytes").read_text())
                else:
                    usage = int((cg.path / "memory.current").read_text())
                    kernel = stat.get("kernel", 0) * ps
            finally:
                p.wait()
            peak = cg.peak_bytes()
    raw = {k: (v // ps if not k.startswith(("pg", "workingset", "hierarchical", "total_pg"))
               else v) for k, v in stat.items()}
    file, anon = (raw.get("cache", 0), raw.get("rss", 0)) if version == 1 else (
        raw.get("file", 0), raw.get("anon", 0))
    out = {"file": file, "anon": anon, "kernel": kernel // ps, "usage": usage // ps,
           "peak": None if peak is None else peak // ps,
           "mapped_file": raw.get("mapped_file", 0), "stat": raw}
    out["other"] = out["usage"] - file - anon - out["kernel"]
    return out


#: ``exit_group``'s system call number, by machine (``/proc/PID/syscall``'s first field).
EXIT_GROUP_NR = {"x86_64": 231, "aarch64": 94}


def _wait_for_exit_group(cg, p):
    """``memory.stat`` of ``cg`` once a process of it sits in its held ``exit_group``
    (``/proc/PID/syscall`` names the call a stopped task is in), while ``p`` still runs."""
    nr = EXIT_GROUP_NR.get(os.uname().machine)
    if nr is None:
        raise VmlabError(f"charge_at_exit knows exit_group's number on "
                         f"{', '.join(EXIT_GROUP_NR)} only, not {os.uname().machine}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.01)
        if p.poll() is not None:
            raise VmlabError("the program ended before its exit_group could be held "
                             "(killed, or strace cannot inject delays)")
        with contextlib.suppress(OSError):
            for pid in cg.procs.read_text().split():
                with contextlib.suppress(OSError):
                    call = Path(f"/proc/{pid}/syscall").read_text().split()
                    if call and call[0] == str(nr):
                        return _read_stat(cg)
    raise VmlabError("the program did not reach exit_group within 60 s")


def _read_stat(cg):
    stat = {}
    for line in (cg.path / "memory.stat").read_text().splitlines():
        k, _, v = line.partition(" ")
        with contextlib.suppress(ValueError):
            stat[k] = int(v)
    return stat


def repeat(fn, runs, *args, **kwargs):
    """``[fn(*args, **kwargs) for each run]`` with ``run`` numbered in each dict."""
    out = []
    for i in range(runs):
        r = fn(*args, **kwargs)
        r["run"] = i
        out.append(r)
    return out


def auto_limits(peak_bytes, fractions=(1.5, 1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1)):
    """A sweep of limits around a measured peak (bytes, rounded to pages)."""
    return [max(4096, int(peak_bytes * f) // 4096 * 4096) for f in fractions]


def program_files(argv, cwd=None):
    """The files a run of ``argv`` reads at start: the executable, its interpreter and
    libraries, and the arguments that name existing files."""
    from .trace.record import resolve_program, startup_files

    files = [f.path for f in startup_files(resolve_program(argv)).values()]
    for a in argv[1:]:
        p = Path(cwd or ".") / a
        if p.is_file():
            files.append(str(p.resolve()))
    return files


def drop_from_cache(paths):
    """``posix_fadvise(DONTNEED)`` on each file: its clean pages leave the page cache unless
    a process maps them (shared libraries in use elsewhere stay); needs no root."""
    for path in paths:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def page_ranges(resident):
    """A residency bool array as ``[[first, end), ...]`` runs of resident pages (JSON-sized)."""
    r = np.asarray(resident, bool)
    if not r.size:
        return []
    d = np.diff(np.concatenate([[0], r.view(np.int8), [0]]))
    return [[int(a), int(b)] for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]


def cold_page_cache(argv, cwd=None, where="exec", files=()):
    """The page cache a cold run of ``argv`` starts from: its files (:func:`program_files`)
    dropped as before each limited run, then measured with ``mincore``.  Returns ``{path:
    [[first, end), ...] resident page runs}``.

    ``where="exec"`` (default) measures where the program would start: from a static helper
    (``vmlab/data/mincore.c``) that ``perf stat`` runs as it runs the program, so the pages
    that ``perf`` itself reads back between the drop and the program's ``exec`` (the data
    segments of the C library and the loader: copy-on-write pages that no process maps after
    its first write, so the drop takes them out, and every new process reads them again)
    are resident, as the measured run finds them.  ``where="drop"`` measures right after
    the drop, from this process (what stays is what other processes map).  ``files``: more
    files dropped and measured with the program's (the files a recording of it mapped)."""
    from .trace.mappings import residency

    files = list(dict.fromkeys([*program_files(argv, cwd),
                                *(os.path.realpath(f) for f in files)]))
    if where not in ("exec", "drop"):
        raise VmlabError(f"where must be 'exec' or 'drop', got {where!r}")
    drop_from_cache(files)
    out = {}
    if where == "drop":
        for path in files:
            with contextlib.suppress(OSError):
                out[os.path.realpath(path)] = page_ranges(residency(path))
        return out
    perf = require("perf")
    r = subprocess.run([perf, "stat", "-x", ",", "-o", os.devnull, "-e", "page-faults", "--",
                        mincore_binary(), *files], capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise VmlabError(f"the page-cache snapshot failed: {r.stderr.strip()[:200]}")
    for line in r.stdout.splitlines():
        path, _, runs = line.rpartition("\t")
        if not path or runs == "!":
            continue
        out[os.path.realpath(path)] = [[int(a), int(b)] for a, b in
                                       (x.split("-") for x in runs.split(",") if x)]
    return out


@contextlib.contextmanager
def hold_page_cache(cold, page_size=4096):
    """Keep the page runs of ``cold`` (``{path: [[first, end), ...]}``, as
    :func:`cold_page_cache` returns) resident while the ``with`` block runs, by mapping them
    from this process: a mapped page is not dropped by ``posix_fadvise(DONTNEED)``
    (:func:`drop_from_cache`) and, charged to this process's cgroup, not reclaimed by a run's
    cgroup limit.  Each file is mapped read-only and shared with ``MADV_RANDOM``, and one
    byte of every page of its runs is read: a page not resident is read alone (no readahead
    around it), so the block starts with exactly those pages held, whatever was resident
    before.  A held page keeps its whole folio (the kernel drops folios, not pages: a page
    cached through a large folio holds its neighbours too).  Files that no longer exist or
    are shorter are held as far as they go.  Yields the number of pages held.

    Without it, what a cold run finds resident is whatever other processes happen to map
    when it runs, which is not what a snapshot taken at another time says (docs/model.md
    11.8: the sweep of ``python_dict`` took 1 major fault a run at 8 MB where its snapshot
    gives 3)."""
    maps = []
    held = 0
    try:
        for path, runs in (cold or {}).items():
            if not runs:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    continue
                m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            maps.append(m)
            m.madvise(mmap.MADV_RANDOM)
            last = (size - 1) // page_size
            for first, end in runs:
                for page in range(int(first), min(int(end), last + 1)):
                    m[page * page_size]          # the fault maps (and if needed reads) it
                    held += 1
        yield held
    finally:
        for m in maps:
            m.close()


def cold_difference(argv, cwd, expected, files=()):
    """``(extra, missing)``: how many pages of the program's files are resident where
    ``argv`` would start (:func:`cold_page_cache` at ``exec``, which drops them first) beyond
    ``expected`` (``{path: runs}``), and how many of ``expected`` are not.  Called right
    before a cold run, it says whether that run started from ``expected``: the snapshot
    leaves the page cache as the run's own ``perf stat`` start will find it."""
    now = cold_page_cache(argv, cwd, files=files)
    extra = missing = 0
    for path in set(now) | set(expected or {}):
        a = _page_set(now.get(path, []))
        b = _page_set((expected or {}).get(path, []))
        extra += len(a - b)
        missing += len(b - a)
    return extra, missing


def _page_set(runs):
    return {p for first, end in runs for p in range(int(first), int(end))}


def mincore_binary():
    """The compiled page-cache snapshot helper (built once per process, static when
    possible: it must touch no shared library)."""
    from .calibrate import process_helper

    return process_helper("mincore")


def measure_program(argv, *, runs=5, limits_bytes=None, cwd=None, cold=False, timeout=None,
                    hold=None, files=()):
    """Measure ``argv`` natively: ``runs`` unlimited runs under perf stat and, when
    ``limits_bytes`` is given (a list, or ``"auto"``: a sweep around the peak measured in an
    unlimited cgroup), ``runs`` runs per limit in a cgroup.  Returns a list of row dicts
    with ``setting`` (``"unlimited"`` or ``"limit"``), ``limit_bytes`` and the counts.

    ``cold``: every run starts from one cold page cache: the program's files
    (:func:`program_files`) are dropped before it, so their pages are read again, by the
    run, and charged to its cgroup (pages already cached are charged to whoever read them
    first, so a warm run under a limit takes no major fault on them), except the pages of
    ``hold`` (``{path: runs}``; default: :func:`cold_page_cache` measured once before the
    first run), which this process keeps resident by mapping them for the whole
    measurement (:func:`hold_page_cache`).  Each cold row says how far its run's start was
    from ``hold`` (``cold_extra_pages``: resident beyond it, mapped by some other process
    then; ``cold_missing_pages``), measured right before the run.  ``files``: more files
    dropped with the program's.  With ``hold`` a warm snapshot (:func:`vmlab.validate`
    gives the cache as its recording left it), every run starts from that warm cache.  The
    default keeps the cache as it is: warm after the first run, as a user would see it.
    """
    rows = []
    if cold and hold is None:
        hold = cold_page_cache(argv, cwd, files=files)
    held = hold_page_cache(hold) if cold else contextlib.nullcontext()

    def prepare():
        if not cold:
            return {}
        extra, missing = cold_difference(argv, cwd, hold, files)   # drops the files first
        return {"cold_extra_pages": extra, "cold_missing_pages": missing}

    with held:
        for i in range(runs):
            before = prepare()
            r = perf_stat(argv, cwd=cwd)
            rows.append({"setting": "unlimited", "limit_bytes": None, "run": i, **r, **before})
        if limits_bytes:
            if cgroup_version() is None:
                raise VmlabError(why_no_cgroup())
            helper = helper_faults()
            if limits_bytes == "auto":
                prepare()
                peak = run_limited(argv, None, cwd=cwd, helper=helper)["peak_bytes"]
                if not peak:
                    raise VmlabError("the cgroup reported no peak memory use; give the limits")
                limits_bytes = auto_limits(peak)
            for limit in limits_bytes:
                for i in range(runs):
                    before = prepare()
                    r = run_limited(argv, int(limit), cwd=cwd, helper=helper, timeout=timeout)
                    rows.append({"setting": "limit", "run": i, **r, **before})
    return rows


# -- the programs of notebook 08 --------------------------------------------------------------
MB = 2**20

#: The programs of notebook 08 and data/native: (name, argv with {dir} for the input folder,
#: input description, memory limits in bytes for the cgroup sweep or None).  Small inputs:
#: each program's full valgrind lackey recording (the prediction's input) is 20-70 million
#: accesses, one to three minutes of valgrind, and a few MB once stripped.
PROGRAMS = [
    ("gzip", ["gzip", "-9", "-c", "{dir}/text.txt"],
     "text.txt: 2,000 generated lines (awk), 81 KB",
     [1 * MB, 0.75 * MB, 0.6 * MB, 0.55 * MB, 0.5 * MB, 0.45 * MB, 0.4 * MB, 0.35 * MB]),
    ("sort", ["sort", "-S", "1M", "-o", "/dev/null", "{dir}/numbers.txt"],
     "numbers.txt: 5,000 generated pseudo-random integers (awk LCG), 51 KB (below GNU "
     "sort's 128 Ki-line threshold for sorting on threads: one thread)", None),
    ("xz_T2", ["xz", "-T2", "-0", "--block-size=64KiB", "-c", "{dir}/seq.txt"],
     "seq.txt: seq 1 25000, 134 KB; three 64 KiB blocks on two compressor threads", None),
    ("awk", ["awk", "{ s += $1 } END { print s }", "{dir}/numbers20k.txt"],
     "numbers20k.txt: 20,000 integers generated as numbers.txt, 205 KB", None),
    ("python_dict", ["/usr/bin/python3", "-S", "-c",
                     "d = {i: str(i) for i in range(20000)}"],
     "no input: CPython builds a 20,000-entry dict (about 2 MB of heap)",
     [8 * MB, 7 * MB, 6 * MB, 5.5 * MB, 5 * MB, 4.75 * MB, 4.5 * MB, 4 * MB]),
    ("sqlite", ["sqlite3", ":memory:",
                "create table t(a integer, b text); "
                "with recursive c(x) as (select 1 union all select x + 1 from c where x < 5000) "
                "insert into t select x, printf('%08d', x * 7919 % 100003) from c; "
                "create index i on t(b); select count(*) from t where b like '0001%';"],
     "no input: an in-memory table of 5,000 rows and an index", None),
    ("md5sum", ["md5sum", "{dir}/seq600k.txt"],
     "seq600k.txt: seq 1 600000, 4.4 MB read with read() in 32 KiB calls (a stream through "
     "the page cache, a tiny loop of text)",
     [4 * MB, 3 * MB, 2.25 * MB, 1.5 * MB, 1.1 * MB, 0.8 * MB, 0.6 * MB, 0.45 * MB]),
]


def make_inputs(d):
    d = Path(d)

    def numbers(name, n):
        subprocess.run(["awk", f"BEGIN {{ s = 12345; for (i = 0; i < {n}; i++) "
                        "{ s = (s * 1103515245 + 12345) % 2147483648; print s } }"],
                       stdout=open(d / name, "w"), check=True)

    subprocess.run(["awk", "BEGIN { for (i = 1; i <= 2000; i++) print \"line \" i \" of a "
                    "generated text, value \" (i * 7919) % 10007 }"],
                   stdout=open(d / "text.txt", "w"), check=True)
    numbers("numbers.txt", 5000)
    numbers("numbers20k.txt", 20000)
    subprocess.run(["seq", "1", "25000"], stdout=open(d / "seq.txt", "w"), check=True)
    subprocess.run(["seq", "1", "600000"], stdout=open(d / "seq600k.txt", "w"), check=True)
    # written back now: posix_fadvise(DONTNEED) leaves dirty pages in the page cache, so a
    # cold run within the kernel's writeback delay (30 s) would find its input resident
    for name in ("text.txt", "numbers.txt", "numbers20k.txt", "seq.txt", "seq600k.txt"):
        fd = os.open(d / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def measure_programs(*, runs=5, only=None, limits=True, record_dir=None, timeout=None,
                     hold_cold=None, unlimited=True):
    """Measure :data:`PROGRAMS` as ``scripts/measure_programs.py`` does (the notebook calls
    this when it runs as root on Linux): ``runs`` warm unlimited runs each and, with
    ``limits`` and a cgroup memory controller, ``runs`` cold runs per limit of the programs
    that have a sweep, every one from the same cold page cache (:func:`measure_program`'s
    ``hold``): ``hold_cold[name]`` when given (``{name: {path: runs}}``, e.g. the shipped
    ``cold_page_cache`` of ``native_faults.json``, so that the runs start where the shipped
    recordings' predictions do), else the one found before the sweep.  With
    ``record_dir``, one ``vmlab record --with perf`` trace of each program is written there.
    ``unlimited=False`` measures the sweeps only.  Returns ``(rows, commands)``: run dicts
    (with ``program``) and, per program, its command line, input, limits, the cold page
    cache its sweep held (``cold_page_cache``) and the one found before the sweep
    (``cold_page_cache_found``).
    """
    import shlex

    require("perf")
    can_limit = limits and cgroup_version() is not None
    rows, commands = [], {}
    work = tempfile.mkdtemp(prefix="vmlab-measure-")  # $TMPDIR: must be disk-backed
    try:
        make_inputs(work)
        for name, template, what, sweep in PROGRAMS:
            if only and name not in only:
                continue
            cmd = [x.replace("{dir}", ".") for x in template]
            commands[name] = {"command": shlex.join(cmd), "input": what,
                              "limits_bytes": [int(x) for x in sweep] if sweep else None}
            subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL)  # warm the page cache
            got = measure_program(cmd, runs=runs, cwd=work) if unlimited else []
            if sweep and can_limit:
                snapshot = cold_page_cache(cmd, cwd=work)
                hold = cold_in_folder(hold_cold.get(name), work) if hold_cold else snapshot
                got += [r for r in measure_program(cmd, runs=runs, cwd=work, cold=True,
                                                   limits_bytes=[int(x) for x in sweep],
                                                   timeout=timeout, hold=hold)
                        if r["setting"] == "limit"]
                commands[name]["cold_page_cache"] = hold
                commands[name]["cold_page_cache_found"] = snapshot
            rows += [{"program": name, **r} for r in got]
            if record_dir is not None:
                record_program_perf(name, cmd, record_dir, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows, commands


def record_program_perf(name, cmd, out_dir, cwd):
    """One ``vmlab record --with perf`` trace of program ``name`` running ``cmd`` in ``cwd``,
    written as ``out_dir/perf_<name>.vmt`` (readable by all); returns its path."""
    from .trace.record import record_perf

    trace = Path(out_dir) / f"perf_{name}.vmt"
    record_perf(cmd, trace, cwd=cwd, quiet=True, stdout=subprocess.DEVNULL)
    os.chmod(trace, 0o644)
    return trace


def perf_capture(argv, text, events, *, record_args=(), fields="comm,pid,tid,time,event,trace",
                 cwd=None):
    """Run ``argv`` under ``perf record -e EVENTS RECORD_ARGS`` and write ``perf script -F
    FIELDS --ns`` of it to ``text`` (the ``perf.data`` beside it); returns ``text``.  A
    recording perf refuses (not root, no such tracepoint) is one line naming perf's last."""
    perf = require("perf")
    data = str(text) + ".data"
    r = subprocess.run([perf, "record", "-q", "-o", data, "-e", events, *record_args, "--",
                        *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise VmlabError(f"perf record of {events} failed: "
                         f"{(r.stderr.strip().splitlines() or ['?'])[-1][:160]}")
    with open(text, "w") as f:
        subprocess.run([perf, "script", "-i", data, "-F", fields, "--ns"], stdout=f,
                       stderr=subprocess.DEVNULL, check=True)
    return text


def cold_in_folder(cold, work):
    """A cold page cache measured with another input folder: the inputs (files not found,
    from a removed temporary folder) become the same names in ``work``."""
    out = {}
    for path, runs in (cold or {}).items():
        if not os.path.exists(path):
            path = os.path.realpath(os.path.join(work, os.path.basename(path)))
        out[path] = runs
    return out


def summarize_runs(df):
    """Median, min and max of page faults and major faults per program and setting, and the
    OOM kills, from a DataFrame of runs (``data/native/native_faults.csv`` or
    :func:`measure_programs`'s rows)."""
    import pandas as pd

    df = pd.DataFrame(df).copy()
    df["limit_mb"] = (pd.to_numeric(df["limit_bytes"]) / MB).round(2)
    if "oom_killed" not in df:
        df["oom_killed"] = False
    df["oom_killed"] = df["oom_killed"].fillna(False).astype(bool)
    g = df.groupby(["program", "setting", "limit_mb"], dropna=False, sort=False)
    return g.agg(runs=("run", "count"), page_faults=("page_faults", "median"),
                 pf_min=("page_faults", "min"), pf_max=("page_faults", "max"),
                 major_faults=("major_faults", "median"), mj_min=("major_faults", "min"),
                 mj_max=("major_faults", "max"), oom_kills=("oom_killed", "sum")).reset_index()


def load_native(data_dir=None):
    """The shipped native measurements: ``(runs DataFrame, metadata dict)`` from
    ``data/native/native_faults.csv`` and ``.json``."""
    import json

    import pandas as pd

    d = Path(data_dir) if data_dir else Path(__file__).resolve().parent.parent / "data" / "native"
    try:
        df = pd.read_csv(d / "native_faults.csv")
        meta = json.loads((d / "native_faults.json").read_text())
    except FileNotFoundError as e:
        raise VmlabError(f"{e.filename}: no native measurements there (scripts/"
                         "measure_programs.py makes them)") from None
    return df, meta
