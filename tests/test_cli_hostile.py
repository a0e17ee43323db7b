"""The command line against hostile input (issue 13): values that cannot mean what was typed
are refused in one line, outputs never land under a wrong name, SIGTERM ends a conversion
cleanly, and nothing half-written remains."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import vmlab
from vmlab.cli import main
from vmlab.errors import ScenarioError, TraceFormatError
from vmlab.trace.build import split_page_crossings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "data" / "lackey_ls.vmt"


def _one_line_error(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("vmlab: error: "), err
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--signal-rate-hz", "nan"], "--signal-rate-hz must be a finite rate >= 0"),
    (["--signal-rate-hz", "-1"], "--signal-rate-hz must be"),
    (["--adversary-rate-hz", "nan"], "--adversary-rate-hz must be"),
    (["--adversary-rate-hz", "inf"], "--adversary-rate-hz must be"),
    (["--horizon-ns", "0"], "--horizon-ns must be at least 1"),
    (["--memory-pages", "0"], "--memory-pages must be at least 1"),
    (["--fault-around-pages", "0"], "--fault-around-pages must be at least 1"),
    (["--fault-around-pages", "3"], "fault_around_pages must be a power of two"),
    (["--replacement", "lfu"], "unknown replacement 'lfu'"),
    (["--memory-fraction", "nan"], "--memory-fraction must be in (0, 1]"),
])
def test_run_refuses_values_that_cannot_mean_what_was_typed(capsys, args, words):
    assert words in _one_line_error(capsys, ["run", SHIPPED, *args])


@pytest.mark.parametrize("args, words", [
    (["--page-size", "0"], "--page-size must be from 512"),
    (["--page-size", "1"], "--page-size must be from 512"),
    (["--page-size", str(1 << 70)], "--page-size must be from 512"),
    (["--page-size", "3000"], "--page-size must be a power of two"),
])
def test_convert_refuses_bad_page_sizes(tmp_path, capsys, args, words):
    assert words in _one_line_error(capsys, ["trace", "convert", SHIPPED, tmp_path / "o.vmt",
                                             *args])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["o.txt", "o.lackey.gz", "o", "o.VMTX"])
def test_output_suffix_must_name_a_format(tmp_path, capsys, name):
    for argv in (["trace", "convert", SHIPPED, tmp_path / name],
                 ["trace", "synth", "uniform", "--n", "10", "--pages", "2", "-o", tmp_path / name]):
        assert "cannot tell the output format" in _one_line_error(capsys, argv)
    assert list(tmp_path.iterdir()) == []


def test_lackey_output_is_lackey_text(tmp_path, capsys):
    out = tmp_path / "o.lackey"
    assert main(["trace", "convert", str(SHIPPED), str(out), "--quiet"]) == 0
    assert out.read_bytes()[:3] in (b"I  ", b" L ", b" S ", b" M ")
    # the shipped recording predates the split of page-crossing accesses: 15 of them
    shipped = vmlab.open_trace(SHIPPED)
    split = split_page_crossings(shipped.columns, shipped.page_size)
    assert len(split["addr"]) == len(shipped) + 15
    assert vmlab.trace.read_trace(out).equals(vmlab.Trace(**split))


def test_output_folder_and_info_on_folder(tmp_path, capsys):
    (tmp_path / "d.vmt").mkdir()
    assert "is a directory" in _one_line_error(capsys, ["trace", "convert", SHIPPED,
                                                        tmp_path / "d.vmt"])
    assert "is a directory" in _one_line_error(capsys, ["trace", "info", "--verify", tmp_path])
    assert "is a directory" in _one_line_error(capsys, ["trace", "info", tmp_path])


def test_synth_too_big_is_one_line(capsys):
    assert "n must be an integer" in _one_line_error(
        capsys, ["trace", "synth", "zipf", "--n", "1e12", "--pages", "10", "-o", "x.vmt"])


def test_damaged_vmt_is_refused_by_run_and_info(tmp_path, capsys):
    bad = tmp_path / "bad.vmt"
    data = bytearray(SHIPPED.read_bytes())
    data[(1 << 16) + 800] ^= 4
    bad.write_bytes(bytes(data))
    for argv in (["run", bad], ["trace", "info", bad], ["trace", "convert", bad, tmp_path / "o.vmt"]):
        assert "checksum mismatch" in _one_line_error(capsys, argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.vmt"]


def test_python_api_refusals():
    with pytest.raises(ScenarioError, match="needs a Scenario, got NoneType"):
        vmlab.simulate(None)
    tr = vmlab.Trace(np.array([4096], np.uint64))
    with pytest.raises(ScenarioError, match="got Trace: wrap the trace"):
        vmlab.simulate(tr)
    with pytest.raises(TraceFormatError, match="column 'op' has 3 records, addr has 5"):
        vmlab.Trace(np.arange(5, dtype=np.uint64), op=np.zeros(3, np.uint8))
    with pytest.raises(TypeError):
        tr.columns["op"] = np.zeros(3, np.uint8)  # read-only: checked lengths stay true
    with pytest.raises(TraceFormatError, match="page_size"):
        vmlab.Trace(np.array([2**64 - 1], np.uint64), meta=vmlab.TraceMeta(page_size=1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminating_signal_during_conversion_is_clean(tmp_path, sig):
    """SIGTERM, and SIGHUP (a closed terminal) alike: one line, the signal's exit code,
    no temporary file left."""
    src = tmp_path / "big.din"
    line = b"0 7f0000001000\n1 7f0000002008\n"
    with open(src, "wb") as f:
        for _ in range(40):
            f.write(line * 100_000)
    dst = tmp_path / "o.vmt"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "vmlab.cli", "trace", "convert", str(src),
                          str(dst), "--quiet"], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        if any(".vmlab-tmp-" in n for n in os.listdir(tmp_path)):
            break
        time.sleep(0.01)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip("the conversion finished before the signal")
    assert p.returncode == 128 + sig
    assert err.decode() == f"vmlab: terminated ({signal.Signals(sig).name})\n"
    assert sorted(os.listdir(tmp_path)) == ["big.din"]


def test_a_stop_signal_inside_the_writability_check_leaves_nothing(tmp_path, monkeypatch):
    # check_writable creates a temporary file and removes it; a stop signal that lands in
    # between is held until the file is gone (make test once found it left behind)
    from vmlab import _io

    def stop(signum, frame):
        raise KeyboardInterrupt

    real = _io._new_temp

    def new_temp(path, folder):
        tmp = real(path, folder)
        # lands here, before the removal.  Sent to this (the main) thread: sent to the
        # process, another thread of the test worker may take it only after the test has
        # put the worker's own handler back, and that one ends the worker
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        return tmp

    monkeypatch.setattr(_io, "_new_temp", new_temp)
    old = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            _io.check_writable(tmp_path / "o.vmt")
    finally:
        signal.signal(signal.SIGTERM, old)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, words", [
    (["uniform", "--n", "10", "--pages", "5", "--aligned", "no"],
     "uniform: aligned must be True or False, got 'no'"),
    (["zipf", "--n", "10", "--pages", "5", "--size", str(1 << 40)],
     "zipf: size must be below 2**32"),
    (["sequential", "--n", "10", "--pages", "5", "--op", "-1"], "sequential: op: unknown operation -1"),
    (["uniform", "--n", "10", "--pages", "5", "--write-fraction", "abc"],
     "uniform: write_fraction must be a number, got 'abc'"),
    (["app_start", "--lock-addr", "-1"], "app_start: lock_addr must be >= 0"),
])
def test_synth_names_the_parameter_it_refuses(tmp_path, capsys, args, words):
    assert words in _one_line_error(capsys, ["trace", "synth", *args, "-o", tmp_path / "o.vmt"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["run"], ["sweep", "--grid", "memory_pages=64,128",
                                               "--out", "{d}/s.csv"]])
def test_sampling_a_recording_is_refused_in_cli_terms(tmp_path, capsys, command):
    # a recording replays like the kernel, which spatial sampling cannot scale: the refusal
    # names --sample-rate and --backing (once the scenario's fault_around_pages=1 advice,
    # then its ra_pages one, in API terms, one at a time)
    rec = ROOT / "data" / "native" / "lackey_gzip.vmt"
    argv = [command[0], rec, *[a.format(d=tmp_path) for a in command[1:]], "--sample-rate", "0.5"]
    line = _one_line_error(capsys, argv)
    assert "--sample-rate 0.5" in line and "is a recording" in line and "--backing" in line
    assert list(tmp_path.iterdir()) == []


def test_sweep_refuses_its_input_as_output_and_a_zero_horizon(tmp_path, capsys):
    # once the table replaced the trace (--out IN.csv, or ./IN.csv) and --horizon-ns 0 ran
    # with the one-hour default
    src = tmp_path / "in.csv"
    assert main(["trace", "convert", str(SHIPPED), str(src), "--quiet"]) == 0
    capsys.readouterr()
    before = src.read_bytes()
    for out in (src, f"{tmp_path}/./in.csv"):
        line = _one_line_error(capsys, ["sweep", src, "--grid", "memory_pages=10", "--out", out])
        assert "that is the input trace" in line
    assert "--horizon-ns must be at least 1" in _one_line_error(
        capsys, ["sweep", src, "--grid", "memory_pages=10", "--horizon-ns", "0",
                 "--out", tmp_path / "s.csv"])
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
