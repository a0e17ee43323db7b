"""The cold page cache a memory-limited run starts from, held resident by the measuring
process (vmlab.measure.hold_page_cache), and issue 9's count target on a limit table."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from vmlab.measure import cold_in_folder, drop_from_cache, hold_page_cache
from vmlab.studies.kernel_agreement import count_target_text, within_factor
from vmlab.trace.mappings import residency

PS = 4096


def _perf_works():
    p = shutil.which("perf")
    return bool(p) and shutil.which("cc") is not None and subprocess.run(
        [p, "stat", "-e", "page-faults", "true"], capture_output=True).returncode == 0


needs_perf = pytest.mark.skipif(not _perf_works(), reason="needs a working perf and a C "
                                "compiler (apt-get install linux-perf gcc; as non-root "
                                "kernel.perf_event_paranoid=-1)")


def _file(tmp_path, pages, name="f.bin"):
    f = tmp_path / name
    f.write_bytes(os.urandom(pages * PS))
    with open(f, "rb") as fh:
        os.fsync(fh.fileno())      # clean: a drop takes dirty pages out only once written
    return f


def _resident(f):
    return np.flatnonzero(residency(str(f))).tolist()


def test_hold_keeps_exactly_the_held_pages_through_a_drop(tmp_path):
    # from a cold file: a page cached by a read() may sit in a large folio, and holding one
    # of its pages keeps the whole folio (the kernel drops folios, not pages)
    f = _file(tmp_path, 8)
    drop_from_cache([f])
    with hold_page_cache({str(f): [[1, 3], [6, 7]]}) as held:
        assert held == 3
        drop_from_cache([f])
        assert _resident(f) == [1, 2, 6]
    drop_from_cache([f])
    assert _resident(f) == []


def test_hold_reads_missing_pages_alone(tmp_path):
    f = _file(tmp_path, 16)
    drop_from_cache([f])
    assert _resident(f) == []
    with hold_page_cache({str(f): [[4, 5], [9, 10]]}) as held:
        assert held == 2
        assert _resident(f) == [4, 9]      # MADV_RANDOM: no readahead around them


def test_hold_skips_what_does_not_exist(tmp_path):
    f = _file(tmp_path, 2)
    with hold_page_cache({str(tmp_path / "gone"): [[0, 4]], str(f): [[1, 9]],
                          str(tmp_path): []}) as held:
        assert held == 1                   # the file ends at page 2


def test_a_snapshot_from_another_folder_names_this_folders_inputs(tmp_path):
    f = _file(tmp_path, 1, "text.txt")
    got = cold_in_folder({"/tmp/vmlab-measure-gone/text.txt": [], "/bin/sh": [[0, 1]]},
                         tmp_path)
    assert got == {str(f.resolve()): [], "/bin/sh": [[0, 1]]}


@needs_perf
def test_cold_runs_start_from_the_held_snapshot(tmp_path):
    from vmlab.measure import cold_difference, cold_page_cache, measure_program

    f = _file(tmp_path, 6, "input.bin")
    argv = ["/bin/cat", "input.bin"]
    key = str(f.resolve())
    hold = {**cold_page_cache(argv, tmp_path), key: [[2, 4]]}
    with hold_page_cache(hold):
        assert cold_difference(argv, tmp_path, hold) == (0, 0)
        assert cold_difference(argv, tmp_path, {**hold, key: [[2, 3]]}) == (1, 0)
        assert cold_difference(argv, tmp_path, {**hold, key: [[0, 4]]}) == (0, 2)
    rows = measure_program(argv, runs=2, cwd=tmp_path, cold=True, hold=hold)
    assert [(r["cold_extra_pages"], r["cold_missing_pages"]) for r in rows] == [(0, 0)] * 2
    assert _resident(f) == [0, 1, 2, 3, 4, 5]   # the last run read its input; the hold ended


def test_within_factor():
    assert within_factor(3, 3, 2) and within_factor(6, 3, 2) and within_factor(2, 3.5, 2)
    assert not within_factor(7, 3, 2) and not within_factor(1, 3, 2)
    assert within_factor(0, 1, 2) and within_factor(2, 0, 2) and not within_factor(3, 0, 2)


def test_count_target_text_names_the_limits_it_applies_to():
    t = pd.DataFrame({"limit_mb": [8.0, 5.5, 5.0, 4.0], "measured_major": [3.0, 3.0, 43.0, 3.0],
                      "measured_min": [3, 2, 5, 3], "measured_max": [3, 3, 1253, 3],
                      "oom_kills": [0, 0, 5, 5], "runs": [5] * 4,
                      "predicted_major": [3, 7, 19, 3],
                      "predicted_oom": [False, False, False, True],
                      "target_applies": [True, True, False, False],
                      "within_2x": [True, False, False, True]})
    assert count_target_text(t) == (
        "Where the kernel's own run-to-run spread is narrower than 2x and no run was killed "
        "(8, 5.5 MB), vmlab's major faults are within 2x of the kernel's median at 1 of 2 "
        "limits (not at 5.5 MB). Elsewhere the kernel's spread is wider, or runs were "
        "killed: 5 MB 43 (5-1253, 5 of 5 killed) against 19.")


def _can_charge():
    from vmlab.measure import cgroup_version

    return (os.geteuid() == 0 and shutil.which("strace") is not None and _perf_works()
            and cgroup_version() is not None)


@pytest.mark.skipif(not _can_charge(), reason="needs root, strace, a C compiler and a cgroup "
                    "memory controller (apt-get install strace gcc)")
def test_the_kernel_charges_the_pages_a_cold_read_brings_in(tmp_path):
    # what vmlab does not charge yet (docs/model.md 11.8): a read() of a cold file charges
    # its page cache to the reader's cgroup; pages another cgroup holds are not charged
    from vmlab.measure import charge_at_exit

    f = _file(tmp_path, 64, "input.bin")
    argv = ["/bin/cat", "input.bin"]
    cold = charge_at_exit(argv, None, cwd=tmp_path)
    held = charge_at_exit(argv, None, cwd=tmp_path, hold={str(f.resolve()): [[0, 64]]})
    assert cold["file"] - held["file"] >= 64
    for r in (cold, held):
        assert r["anon"] >= 1 and r["kernel"] >= 1
        assert r["usage"] == r["file"] + r["anon"] + r["kernel"] + r["other"]
    with pytest.raises(Exception, match="ended before its exit_group"):
        charge_at_exit(["/bin/sh", "-c", "kill -9 $$"], None, cwd=tmp_path)
