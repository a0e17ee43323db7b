"""The command line as a new user types it: conversion, info, synth, run --json, and one-line
errors for bad input."""
import json
from pathlib import Path

import pytest

from vmlab.cli import main

FIX = Path(__file__).parent / "fixtures"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_lackey_then_info(tmp_path, capsys):
    dst = tmp_path / "true.vmt"
    code, _, err = run_cli(capsys, "trace", "convert", str(FIX / "lackey_true.txt"), str(dst), "--quiet")
    assert code == 0 and dst.exists()
    code, out, _ = run_cli(capsys, "trace", "info", str(dst), "--json")
    assert code == 0
    info = json.loads(out)
    lines = [l for l in (FIX / "lackey_true.txt").read_text().splitlines()
             if l and not l.startswith("==")]
    assert info["n_records"] == len(lines)
    assert info["n_threads"] == 1
    assert info["distinct_pages"] > 0
    assert len(info["vmas"]) >= 1
    code, out, _ = run_cli(capsys, "trace", "info", str(dst))
    assert "distinct pages" in out and "VMAs" in out


def test_synth_run_json(tmp_path, capsys):
    dst = tmp_path / "z.vmt"
    code, _, _ = run_cli(capsys, "trace", "synth", "zipf", "--n", "20000", "--pages", "2000",
                         "--seed", "3", "-o", str(dst))
    assert code == 0
    code, out, _ = run_cli(capsys, "run", str(dst), "--policy", "fault_retry",
                           "--memory-fraction", "0.1", "--json")
    assert code == 0
    s = json.loads(out)
    for key in ("n_accesses", "n_faults", "n_major", "n_minor", "n_retries", "n_sigbus",
                "n_wasted_io", "fault_latency_ns_p50", "fault_latency_ns_p99", "elapsed_ns"):
        assert key in s
    assert s["n_accesses"] == 20000
    assert s["n_faults"] == s["n_major"] + s["n_minor"]
    # fault_retry drops the lock on the first attempt of every major fault: one retry each
    assert s["n_retries"] == s["n_major"]


def test_synth_to_csv_roundtrip(tmp_path, capsys):
    dst = tmp_path / "s.csv"
    code, _, _ = run_cli(capsys, "trace", "synth", "sequential", "--n", "100", "--pages", "10",
                         "-o", str(dst))
    assert code == 0
    assert dst.read_text().splitlines()[0].startswith("tid,asid,addr,op,size")


@pytest.mark.parametrize("argv, needle", [
    (["run", "/nonexistent/x.vmt"], "x.vmt"),
    (["trace", "info", "/nonexistent/y.vmt"], "y.vmt"),
    (["trace", "synth", "nosuchgen", "-o", "a.vmt"], "unknown generator"),
    (["trace", "synth", "zipf", "--n", "-5", "--pages", "3", "-o", "q.vmt"], "n"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmlab: error:") and needle in lines[0]


def test_policy_backing_refused(tmp_path, capsys):
    dst = tmp_path / "z.vmt"
    run_cli(capsys, "trace", "synth", "uniform", "--n", "100", "--pages", "10", "-o", str(dst))
    code, _, err = run_cli(capsys, "run", str(dst), "--policy", "remap_pfn_range")
    assert code == 2 and "remap_pfn_range" in err and "device" in err


def test_bad_lackey_line_names_file_and_line(tmp_path, capsys):
    src = tmp_path / "bad.lackey"
    src.write_text("==1== hello\nI  0400d7d4,8\n L zz12,8\n")
    code, _, err = run_cli(capsys, "trace", "convert", str(src), str(tmp_path / "o.vmt"),
                           "--from", "lackey", "--quiet")
    assert code == 2 and "bad.lackey:3" in err
    assert not (tmp_path / "o.vmt").exists()


@pytest.fixture(scope="module")
def zipf(tmp_path_factory):
    dst = tmp_path_factory.mktemp("run") / "z.vmt"
    assert main(["trace", "synth", "zipf", "--n", "5000", "--pages", "500", "--seed", "1",
                 "-o", str(dst)]) == 0
    return dst


def test_run_matrix_table_csv_and_json(zipf, capsys):
    import csv
    import io

    import vmlab
    from vmlab.trace import open_trace

    argv = ["run", str(zipf), "--policy", "nopage,fault_retry", "--memory-fraction", "0.1,0.5"]
    code, out, _ = run_cli(capsys, *argv, "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    # one row per (memory, policy) pair, memory-major
    assert [(r["memory_fraction"], r["policy"]) for r in rows] == [
        ("0.1", "nopage"), ("0.1", "fault_retry"), ("0.5", "nopage"), ("0.5", "fault_retry")]
    tr = open_trace(zipf)
    distinct = len(set(tr.pages().tolist()))
    assert [int(r["memory_pages"]) for r in rows[::2]] == [round(0.1 * distinct), round(0.5 * distinct)]
    # each row is the summary of that single run
    want = vmlab.simulate(vmlab.Scenario(tr, memory_pages=int(rows[2]["memory_pages"]),
                                         costs=vmlab.Costs(io_ns=vmlab.NVME)), "nopage").summary
    assert int(rows[2]["n_faults"]) == want["n_faults"]
    assert float(rows[2]["elapsed_ns"]) == want["elapsed_ns"]
    code, out, _ = run_cli(capsys, *argv, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d["memory_fraction"], d["policy"]) for d in lines] == [
        (0.1, "nopage"), (0.1, "fault_retry"), (0.5, "nopage"), (0.5, "fault_retry")]
    assert lines[2]["n_faults"] == want["n_faults"]
    code, out, _ = run_cli(capsys, *argv)
    table = out.splitlines()
    # a trace with no mappings: the header says what the pages are taken for, and how to
    # change it
    assert "file backing (the trace records no mappings" in table[0]
    assert "--backing" in table[0]
    assert table[2].split()[:3] == ["policy", "memory", "faults"]
    body = table[3:]
    assert len(body) == 4 and body[2].split()[0] == "nopage"
    assert f"{want['n_faults']:,}" in body[2].split()
    assert "µs" in body[2] and "e+" not in out  # times carry units, no raw exponents


def test_run_memory_pages_list_and_bad_lists(zipf, capsys):
    code, out, _ = run_cli(capsys, "run", str(zipf), "--memory-pages", "50,100", "--csv")
    assert code == 0
    assert [l.split(",")[1] for l in out.splitlines()[1:]] == ["50", "100"]
    for argv, needle in ((["--memory-fraction", "0.1,x"], "'x'"),
                         (["--memory-fraction", "0.1,2"], "(0, 1]"),
                         (["--policy", "nopage,nopeg"], "nopeg")):
        code, _, err = run_cli(capsys, "run", str(zipf), *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err


def test_run_into_a_closed_pipe_ends_quietly(zipf):
    import subprocess
    import sys

    cmd = (f"{sys.executable} -m vmlab.cli run {zipf} --policy nopage,fault_retry "
           f"--memory-pages 40,60,80,100 --json | head -c 10")
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and len(p.stdout) == 10
    assert p.stderr == ""  # no BrokenPipeError traceback


def test_kernel_install_prefix(tmp_path, capsys):
    import sys

    code, _, err = run_cli(capsys, "kernel", "install", "--prefix", str(tmp_path))
    assert code == 0 and "vmlab" in err
    spec = json.loads((tmp_path / "share/jupyter/kernels/vmlab/kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and spec["language"] == "python"
    assert spec["display_name"].startswith("vmlab")
    # a name Jupyter cannot hold (a path, a space, nothing) is refused in one line, and
    # nothing is written (once a ValueError traceback, or the default 'python3' kernel)
    for bad in ("../../evil", "a b", ""):
        code, _, err = run_cli(capsys, "kernel", "install", "--prefix", str(tmp_path / "b"),
                               "--name", bad)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "a kernel name is" in err
    assert not (tmp_path / "b").exists() and not (tmp_path.parent / "evil").exists()


def test_convert_notes_what_the_output_format_drops(tmp_path, capsys):
    """Nothing is lost silently: a recording's mappings do not fit in CSV, and lackey text has
    no threads or gaps; each loss is one note line, and the native file keeps everything."""
    import numpy as np

    from vmlab.trace import Trace, save_trace
    from vmlab.trace.mappings import FOREVER, MAPPING_DTYPE, Backing, FileInfo, Mappings

    base, ps = 0x400000, 4096
    table = np.zeros(1, MAPPING_DTYPE)
    table[0] = (0, base, base + 4 * ps, 1, 0, Backing.FILE, 0, 0, 0, FOREVER)
    files = [FileInfo("/data/f", 1, 2, 4 * ps, np.zeros(4, bool), "before_run", None)]
    tr = Trace(np.array([base, base + ps, base + 2 * ps], np.uint64), tid=[0, 1, 1],
               gap_ns=[5, 6, 7], mappings=Mappings(table, files, "test"))
    src = tmp_path / "rec.vmt"
    save_trace(tr, src)
    code, _, err = run_cli(capsys, "trace", "convert", str(src), str(tmp_path / "r.csv"))
    notes = [l for l in err.splitlines() if l.startswith("note:")]
    assert code == 0 and len(notes) == 1
    assert "mappings and page-cache state (1 mapping row)" in notes[0] and "rec.vmt" in notes[0]
    code, _, err = run_cli(capsys, "trace", "convert", str(src), str(tmp_path / "r.lackey"))
    notes = [l for l in err.splitlines() if l.startswith("note:")]
    assert code == 0 and len(notes) == 3
    assert any("(tid)" in n for n in notes) and any("(gap_ns)" in n for n in notes)
    code, _, err = run_cli(capsys, "trace", "convert", str(src), str(tmp_path / "r2.vmt"))
    assert code == 0 and "note:" not in err


@pytest.mark.parametrize("knobs", [{"replacement": "twolist"}, {"fault_around_pages": 16},
                                   {"replacement": "clock", "fault_around_pages": 4}])
def test_run_replacement_and_fault_around_on_inferred_vmas(zipf, capsys, knobs):
    # a trace with no mappings: the options replace the defaults (lru, 1 page) of its
    # inferred VMAs (once a TypeError: the keyword was given twice)
    import vmlab
    from vmlab.trace import open_trace

    argv = [f"--{k.replace('_', '-')}={v}" for k, v in knobs.items()]
    code, out, err = run_cli(capsys, "run", str(zipf), "--memory-fraction", "0.3", *argv,
                             "--json")
    assert code == 0, err
    row = json.loads(out)
    tr = open_trace(zipf)
    want = vmlab.simulate(vmlab.Scenario(tr, memory_pages=row["memory_pages"],
                                         costs=vmlab.Costs(io_ns=vmlab.NVME),
                                         **({"replacement": "lru"} | knobs))).summary
    assert (row["n_faults"], row["elapsed_ns"]) == (want["n_faults"], want["elapsed_ns"])


def test_run_on_a_recording_replays_all_of_it(capsys):
    # a recorded trace's scenario (scenario_for) is the run's, whole: its reads (gzip's
    # input, a file no VMA maps) and its ended mappings included, under every memory size
    import vmlab
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.recorded import runnable, scenario_for
    from vmlab.trace import open_trace

    path = Path(__file__).resolve().parent.parent / "data" / "native" / "lackey_gzip.vmt"
    code, out, _ = run_cli(capsys, "run", str(path), "--memory-bytes", "471859,1048576",
                           "--no-records", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    sc, _ = runnable(scenario_for(open_trace(path)), RUNS_KNOBS)
    assert sc.reads and sc.unmaps
    for row in rows:
        want = vmlab.simulate(sc.replace(memory_bytes=row["memory_bytes"], records=False,
                                         costs=sc.costs.replace(io_ns=vmlab.NVME))).summary
        assert row["n_faults"] == want["n_faults"] and row["n_major"] == want["n_major"]
        assert row["elapsed_ns"] == want["elapsed_ns"]


def test_run_table_of_lock_designs_counts_mmap_lock(capsys):
    # a lock design after 2010 adds the faults' mmap_lock reads (of them, those of faults
    # the kernel made), the VMA locks and the fallbacks to the table (docs/model.md 15.6)
    import vmlab
    from vmlab.model.recorded import scenario_for
    from vmlab.trace import open_trace

    path = Path(__file__).resolve().parent.parent / "data" / "native" / "perf_gzip.vmt"
    code, out, _ = run_cli(capsys, "run", str(path), "--policy", "nopage,per_vma_lock")
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.strip()]
    head = lines[-3]
    for h in ("mmap_lock reads", "kernel mode", "VMA locks", "fallbacks"):
        assert h in head
    s = vmlab.simulate(scenario_for(open_trace(path)), "per_vma_lock").summary
    row = lines[-1].split()
    assert row[0] == "per_vma_lock"
    want = [f"{int(s[k]):,}" for k in ("n_mmap_lock_read", "n_mmap_lock_read_kernel",
                                       "n_vma_lock_read", "n_vma_lock_fallbacks")]
    assert row[-6:-2] == want
    code, out, _ = run_cli(capsys, "run", str(path), "--policy", "nopage")
    assert "mmap_lock reads" not in out
