"""The command line against more hostile input (QA round 2): a conversion onto its own input
in any format, SIGHUP, terminal escapes in a trace's strings, outputs that cannot be written
(found before the work, named as typed), empty --backing, synth sizes known before
generating, threads killed by SIGBUS, and perf input with other events."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

import vmlab
from vmlab import _io, cli
from vmlab.cli import main
from vmlab.trace import synth

from test_cli import zipf  # noqa: F401  (the run tests' trace: 5,000 Zipf records)

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures"
SHIPPED = ROOT / "data" / "lackey_ls.vmt"

TEXTS = {
    "lackey": "==1== Lackey, an example Valgrind tool\n==1== \nI  04000000,3\n L 04001000,8\n",
    "csv": "tid,addr,op\n0,0x1000,LOAD\n",
    "din": "0 7f0000001000\n1 7f0000002008\n",
}


def _error(capsys, argv):
    """The one stderr line of a refused command (exit 2, nothing on stdout)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1, (code, out, err)
    return err.rstrip("\n")


def _snapshot(folder):
    """Every name under ``folder`` (hidden ones included) with its content's digest."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                         if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def erofs(monkeypatch):
    """A read-only file system for vmlab's temporary files (the tests may run as root, to
    whom a chmod-ed folder is writable)."""
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(path):
        if _io.TMP_MARK in os.fspath(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

    def fake_open(path, *a, **k):
        refuse(path)
        return real_open(path, *a, **k)

    def fake_mkdir(path, *a, **k):
        refuse(path)
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


# -- 1. a conversion onto its own input --------------------------------------------------


@pytest.mark.parametrize("fmt", ["lackey", "csv", "din", "vmt"])
@pytest.mark.parametrize("how", ["same", "dot", "symlink", "hardlink"])
def test_convert_onto_its_input_is_refused_in_every_format(tmp_path, capsys, monkeypatch,
                                                           fmt, how):
    monkeypatch.chdir(tmp_path)
    src = Path(f"in.{fmt}")
    if fmt == "vmt":
        Path("in.csv").write_text(TEXTS["csv"])
        assert main(["trace", "convert", "--quiet", "in.csv", str(src)]) == 0
        Path("in.csv").unlink()
        capsys.readouterr()
    else:
        src.write_text(TEXTS[fmt])
    dst = {"same": src, "dot": Path(".") / src, "symlink": Path(f"link.{fmt}"),
           "hardlink": Path(f"hard.{fmt}")}[how]
    if how == "symlink":
        os.symlink(src, dst)
    elif how == "hardlink":
        os.link(src, dst)
    dst_text = f"./{src}" if how == "dot" else str(dst)
    before = _snapshot(tmp_path)
    assert _error(capsys, ["trace", "convert", "--quiet", src, dst_text]) == (
        f"vmlab: error: {dst_text}: refusing to convert a file onto itself "
        f"(the output is the input {src})")
    assert _snapshot(tmp_path) == before


# -- 2. SIGHUP: tests/test_cli_hostile.py, with SIGTERM ------------------------------


# -- 3. terminal escapes in a trace's strings --------------------------------------------


def test_info_prints_the_header_strings_escaped(tmp_path, capsys):
    path = tmp_path / "ansi.vmt"
    vmlab.Trace(np.array([0x1000, 0x2000], np.uint64), meta=vmlab.TraceMeta(
        source="\x1b[2J\x1b[31mEVIL\x1b[0m\nrecords         999,999\rX",
        notes="\x1b]0;pwned\x07\u202e")).save(path)
    assert main(["trace", "info", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == r"source          \x1b[2J\x1b[31mEVIL\x1b[0m\nrecords         999,999\rX"
    assert lines[1] == r"notes           \x1b]0;pwned\x07\u202e"
    assert lines[2] == "records         2"
    assert not any(c in out for c in "\x1b\r\x07\u202e")


def test_printable():
    assert _io.printable("csv:a b/ü.csv") == "csv:a b/ü.csv"
    assert _io.printable("a\tb\x00\x7f\x9b") == r"a\tb\x00\x7f\x9b"


# -- 4, 5. outputs that cannot be written -------------------------------------------------


def test_sweep_to_an_unwritable_place_fails_before_any_point(tmp_path, capsys, monkeypatch,
                                                             erofs):
    import vmlab.distributed

    def no_cluster(*a, **k):
        raise AssertionError("the sweep started")

    monkeypatch.setattr(vmlab.distributed, "connect", no_cluster)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    for out in ("x.csv", "new/dir/x.parquet"):
        assert _error(capsys, ["sweep", SHIPPED, "--grid", "memory_pages=10,20", "--out",
                               out]) == (
            f"vmlab: error: {out}: cannot write the output file there: Read-only file system")
    assert _snapshot(tmp_path) == before


def test_calibrate_to_an_unwritable_place_fails_before_measuring(tmp_path, capsys,
                                                                 monkeypatch, erofs):
    import vmlab.calibrate

    def no_measure(*a, **k):
        raise AssertionError("calibrate measured")

    monkeypatch.setattr(vmlab.calibrate, "calibrate", no_measure)
    out = tmp_path / "h.json"
    assert _error(capsys, ["calibrate", "-o", out]) == (
        f"vmlab: error: {out}: cannot write the output file there: Read-only file system")
    assert _snapshot(tmp_path) == {}


@pytest.mark.parametrize("argv, words", [
    (["record", "-o", "{d}/r.txt", "--", "true"], "a recording is written as a .vmt trace"),
    (["calibrate", "-o", "{d}/h.yaml"], "a costs profile is written as .json or .toml"),
    (["calibrate", "-o", "{d}/h"], "a costs profile is written as .json or .toml"),
    (["report", "--jobs", "0", "--out", "{d}/rep"], "--jobs must be at least 1"),
    (["report", "--timeout", "-1", "--out", "{d}/rep"], "--timeout must be a positive number"),
    (["report", "--out", "{d}/file"], "is a file; the report is a folder"),
    (["batch", "01", "--grid", "BACKING='file'", "--jobs", "-2", "--out", "{d}/b.csv"],
     "--jobs must be at least 1"),
    (["batch", "01", "--grid", "BACKING='file'", "--out", "{d}/dir.csv"], "is a directory"),
    (["validate", "--runs", "0", "--", "true"], "--runs must be at least 1, got 0"),
    (["validate", "--limits-mb", "-5", "--", "true"], "each limit must be a positive number"),
    (["validate", "--limits-mb", "1e400", "--", "true"], "each limit must be a positive"),
    (["validate", "--keep", "{d}/k.txt", "--", "true"], "the recording is kept as a .vmt"),
])
def test_outputs_and_options_that_cannot_mean_what_was_typed(tmp_path, capsys, monkeypatch,
                                                              argv, words):
    # refused before anything runs or is written: once a .txt received a binary .vmt, a
    # .yaml JSON, --jobs 0 ran on every CPU, --out FILE failed with "File exists", validate
    # --runs 0 printed an empty table and --limits-mb 1e400 an OverflowError traceback
    import vmlab.calibrate
    import vmlab.trace.record

    def no_work(*a, **k):
        raise AssertionError("the command ran")

    monkeypatch.setattr(vmlab.calibrate, "calibrate", no_work)
    monkeypatch.setattr(vmlab.trace.record, "record", no_work)
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dir.csv").mkdir()
    before = _snapshot(tmp_path)
    line = _error(capsys, [a.format(d=tmp_path) for a in argv])
    assert words in line, line
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["o.vmt", "o.csv", "o.lackey"])
def test_convert_and_synth_name_the_output_not_its_temporary_file(tmp_path, capsys, erofs,
                                                                  name):
    src = tmp_path / "a.csv"
    src.write_text(TEXTS["csv"])
    before = _snapshot(tmp_path)
    out = tmp_path / name
    want = f"vmlab: error: {out}: cannot write the output file there: Read-only file system"
    assert _error(capsys, ["trace", "convert", "--quiet", src, out]) == want
    assert _error(capsys, ["trace", "synth", "uniform", "--n", "10", "--pages", "2",
                           "-o", out]) == want
    assert _snapshot(tmp_path) == before


def test_convert_into_proc_names_the_output(tmp_path, capsys):
    src = tmp_path / "a.csv"
    src.write_text(TEXTS["csv"])
    assert _error(capsys, ["trace", "convert", src, "/proc/o.vmt"]) == (
        "vmlab: error: /proc/o.vmt: cannot write the output file there: "
        "No such file or directory")


def test_a_write_error_on_a_temporary_file_names_the_output(tmp_path, capsys, monkeypatch):
    import vmlab.trace.convert

    src = tmp_path / "a.csv"
    src.write_text(TEXTS["csv"])

    def disk_full(trace, path, fmt, **k):
        tmp = _io.temp_beside(path)
        os.unlink(tmp)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(vmlab.trace.convert, "write_trace", disk_full)
    assert _error(capsys, ["trace", "convert", src, tmp_path / "o.csv"]) == (
        f"vmlab: error: {tmp_path / 'o.csv'}: No space left on device")
    assert _io.destination_of("/d/.o.vmt.vmlab-tmp-12-0abc.d") == "/d/o.vmt"
    assert _io.destination_of("/d/o.vmt") == "/d/o.vmt"


# -- 6. --backing '' ----------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["run", "sweep"])
def test_empty_backing_is_refused_like_an_unknown_one(tmp_path, capsys, cmd):
    argv = [cmd, SHIPPED, "--backing", ""]
    if cmd == "sweep":
        argv += ["--grid", "memory_pages=10,20", "--out", tmp_path / "x.csv"]
    assert _error(capsys, argv) == (
        "vmlab: error: unknown backing ''; backings are file, anon, device, iomem, context")
    assert _snapshot(tmp_path) == {}


# -- 7. synth options ---------------------------------------------------------------------


def test_synth_phases_says_what_it_expects(tmp_path, capsys):
    for value, want in (
            ("0", "phases: phases must be a list of (length, ws_pages, offset_pages) triples, "
                  "e.g. [(1000, 64, 0), (1000, 64, 32)], got 0"),
            ("[(10, 4, 0), 5]", "phases: phase 1: expected (length, ws_pages, offset_pages), "
                                "got 5")):
        assert _error(capsys, ["trace", "synth", "phases", "--phases", value, "-o",
                               tmp_path / "x.vmt"]) == f"vmlab: error: {want}"
    assert _snapshot(tmp_path) == {}


@pytest.mark.parametrize("argv, want", [
    (["zipf", "--n", "10", "--pages", str(2**62)],
     "zipf: a Zipf law over 4,611,686,018,427,387,904 pages needs about 206,158,430,208 GiB "
     "of memory for its tables, more than this machine's 1.00 GiB; ask for fewer pages"),
    (["zipf", "--n", str(10**12), "--pages", "10"],
     "zipf: 1,000,000,000,000 records need about 22,352 GiB of memory to generate (a generated "
     "trace is built in memory), more than this machine's 1.00 GiB; ask for fewer records"),
    (["pft_threads", "--n-threads", "100000"],
     "pft_threads: 409,600,000 records need about 39.7 GiB of memory to generate (a generated "
     "trace is built in memory), more than this machine's 1.00 GiB; ask for fewer records"),
    (["reverse_file", "--pages", str(2**40), "--split", "False"],
     "reverse_file: 70,368,744,177,664 records need about 3,670,016 GiB of memory to generate "
     "(a generated trace is built in memory), more than this machine's 1.00 GiB; ask for "
     "fewer records"),
])
def test_synth_sizes_are_checked_before_generating(tmp_path, capsys, monkeypatch, argv, want):
    monkeypatch.setattr(cli, "_memory_bytes", lambda: (1 << 30, "this machine's"))
    assert _error(capsys, ["trace", "synth", *argv, "-o", tmp_path / "x.vmt"]) == (
        f"vmlab: error: {want}")
    assert _snapshot(tmp_path) == {}


def _cgroups(tmp_path, proc, files):
    """A fake /proc/self/cgroup (``proc``) and cgroup mount (``files``: path -> text)."""
    tmp_path.mkdir(parents=True)
    (tmp_path / "cgroup").write_text(proc)
    for rel, text in files.items():
        f = tmp_path / "mnt" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return dict(proc_cgroup=tmp_path / "cgroup", mount=tmp_path / "mnt")


def test_the_memory_bound_is_the_cgroup_limit_when_smaller(tmp_path):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cg = "this process's cgroup limit of"
    # cgroup v2: the smallest limit along the ancestors ("max" is none)
    v2 = _cgroups(tmp_path / "v2", "0::/a/b\n", {
        "cgroup.controllers": "memory", "a/memory.max": str(3 << 20),
        "a/b/memory.max": "max"})
    assert _io.memory_limit(**v2) == (3 << 20, cg)
    # cgroup v1: memory.limit_in_bytes; no limit is a page-rounded 2^63 - 1
    v1 = _cgroups(tmp_path / "v1", "4:memory:/job\n3:cpu:/\n", {
        "memory/memory.limit_in_bytes": "9223372036854771712",
        "memory/job/memory.limit_in_bytes": str(5 << 20)})
    assert _io.memory_limit(**v1) == (5 << 20, cg)
    # a container sees its own cgroup at the mount's root: the path is not there
    hidden = _cgroups(tmp_path / "hidden", "4:memory:/elsewhere/x\n", {
        "memory/memory.limit_in_bytes": str(7 << 20)})
    assert _io.memory_limit(**hidden) == (7 << 20, cg)
    # no limit, a limit above physical memory, or no cgroup file: physical memory
    for i, limit in enumerate(("9223372036854771712", str(physical * 2))):
        none = _cgroups(tmp_path / f"none{i}", "4:memory:/\n",
                        {"memory/memory.limit_in_bytes": limit})
        assert _io.memory_limit(**none) == (physical, "this machine's")
    assert _io.memory_limit(proc_cgroup=tmp_path / "none", mount=tmp_path) == (
        physical, "this machine's")


def test_synth_names_the_cgroup_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_memory_bytes", lambda: (1 << 30, "this process's cgroup limit of"))
    assert _error(capsys, ["trace", "synth", "zipf", "--n", str(10**12), "--pages", "10", "-o",
                           tmp_path / "x.vmt"]) == (
        "vmlab: error: zipf: 1,000,000,000,000 records need about 22,352 GiB of memory to "
        "generate (a generated trace is built in memory), more than this process's cgroup "
        "limit of 1.00 GiB; ask for fewer records")
    assert _snapshot(tmp_path) == {}


SMALL = {
    "sequential": dict(n=50, pages=7), "strided": dict(n=50, stride_bytes=64),
    "uniform": dict(n=50, pages=7), "zipf": dict(n=50, pages=7),
    "phases": dict(phases=[(10, 4, 0), (7, 3, 2)], dist="zipf"),
    "shared_file": dict(n_threads=3, n_per_thread=11, pages=9, pattern="zipf"),
    "lock_loop": dict(n=13), "reverse_file": dict(n_threads=4, pages=10, split=False),
    "random_reads_with_mmap_loop": dict(n_reads=5, n_lock_ops=7, n_lock_reads=3, pages=16),
    "pft_threads": dict(n_threads=3, pages_per_thread=5),
    "ebizzy": dict(n_threads=2, n_iters=3, chunk_pages=4),
    "app_start": dict(n_threads=3, faults_per_thread=4, n_writers=2, writes_per_writer=5,
                      n_readers=2, reads_per_reader=6, n_files=2, file_pages=32),
}


@pytest.mark.parametrize("name", list(synth.GENERATORS))
def test_planned_size_counts_every_generators_records(name):
    records, zipf_pages, nbytes = synth.planned_size(name, **SMALL[name])
    assert records == len(synth.GENERATORS[name](**SMALL[name]))
    assert zipf_pages == {"zipf": 7, "phases": 4, "shared_file": 9}.get(name, 0)
    assert nbytes > 0


# -- 8. threads killed by SIGBUS ----------------------------------------------------------


def test_run_says_when_sigbus_killed_a_thread(zipf, capsys):
    assert main(["run", str(zipf), "--backing", "iomem"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "SIGBUS: 1 thread killed, 5,000 records abandoned"
    assert main(["run", str(zipf), "--backing", "iomem", "--policy", "nopage,nopfn",
                 "--memory-pages", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "nopage, 10 pages: SIGBUS: 1 thread killed, 5,000 records abandoned"
    assert not any("nopfn" in line and "SIGBUS" in line for line in lines)
    assert main(["run", str(zipf)]) == 0
    assert "abandoned" not in capsys.readouterr().out


def test_killed_line():
    assert cli._killed_line({"n_sigbus": 2, "n_abandoned_records": 1}) == (
        "SIGBUS: 2 threads killed, 1 record abandoned")
    assert cli._killed_line({"n_sigbus": 0, "n_abandoned_records": 5}) == (
        "killed threads: 5 records abandoned")
    assert cli._killed_line({"n_sigbus": 0, "n_abandoned_records": 0}) == ""


# -- 9. perf input with other events ------------------------------------------------------


def test_perf_other_events_hint_names_the_option(tmp_path, capsys):
    lines = (FIX / "perf_mmap_faults_fields.txt").read_text().splitlines(keepends=True)
    lines.insert(3, "              sh  3541/3541    517.837870600:   sched:sched_switch: x\n")
    src = tmp_path / "p.txt"
    src.write_text("".join(lines))
    want = (f"vmlab: error: {src}:4: unexpected event 'sched:sched_switch': expected "
            "page-faults or syscalls:sys_enter_{mmap,munmap,mprotect,mremap,brk,madvise,"
            "mincore} (give --other-events skip to ignore other events)")
    for argv in (["trace", "info", src], ["trace", "convert", src, tmp_path / "o.vmt"],
                 ["trace", "convert", src, tmp_path / "o.csv"], ["run", src]):
        assert _error(capsys, argv) == want
    assert sorted(os.listdir(tmp_path)) == ["p.txt"]
    # the library spells the hint as its keyword (one error, two spellings)
    with pytest.raises(vmlab.TraceFormatError) as e:
        vmlab.trace.read_trace(src)
    assert str(e.value) == want.removeprefix("vmlab: error: ").replace(
        "(give --other-events skip", "(pass other_events='skip'")
    assert e.value.cli_text() == want.removeprefix("vmlab: error: ")
    assert main(["trace", "convert", "--quiet", "--other-events", "skip", str(src),
                 str(tmp_path / "o.vmt")]) == 0
    capsys.readouterr()
    assert len(vmlab.open_trace(tmp_path / "o.vmt")) == len(vmlab.trace.read_trace(
        src, other_events="skip"))
    csv = tmp_path / "a.csv"
    csv.write_text(TEXTS["csv"])
    assert _error(capsys, ["trace", "info", "--other-events", "skip", csv]) == (
        f"vmlab: error: --other-events applies to perf input only; {csv} is csv")


def test_validate_cold_reaches_the_library(monkeypatch, capsys):
    """`vmlab validate --cold` asks for cold runs and a prediction from the same cold cache
    (the library's ``validate(cold=True)``); without it, warm."""
    import vmlab.validate as v

    seen = []

    def fake(argv, **kw):
        seen.append((argv, kw))
        return {"program": argv, "kernel": "k", "record": {"records": 1}, "rows": [],
                "not_modelled": []}

    monkeypatch.setattr(v, "validate", fake)
    assert main(["validate", "--cold", "--runs", "2", "--", "true"]) == 0
    assert main(["validate", "--", "true"]) == 0
    capsys.readouterr()
    assert [kw["cold"] for _argv, kw in seen] == [True, False]
    assert seen[0][0] == ["true"] and seen[0][1]["runs"] == 2


def test_a_stop_signal_taken_by_another_thread_waits_for_the_held_block():
    """A signal sent to the process may be taken by a thread that does not block it; its
    Python handler still runs in the main thread.  Inside ``stop_signals_held`` it is only
    noted, and raised once the block is over (before, it was raised inside the block: a
    SIGHUP once left a half-made temporary folder behind)."""
    import signal
    import threading
    import time

    seen = []

    def handler(signum, frame):
        raise cli.Terminated(signum)

    previous = signal.signal(signal.SIGHUP, handler)
    try:
        with pytest.raises(cli.Terminated):
            with _io.stop_signals_held():
                t = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGHUP))
                t.start()
                t.join()
                for _ in range(200):    # (bytecode boundaries, where a handler would run)
                    time.sleep(0.001)
                seen.append("the block ran to its end")
        assert seen == ["the block ran to its end"]
        assert signal.getsignal(signal.SIGHUP) is handler
    finally:
        signal.signal(signal.SIGHUP, previous)
