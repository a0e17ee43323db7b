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
