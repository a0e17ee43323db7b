"""vmlab.studies.real_programs: shipped traces across page-cache sizes, inferred VMAs'
backings, perf traces keeping their threads."""
import math

import pytest

from vmlab import ScenarioError
from vmlab.studies import real_programs as rp


def _need(name):
    from vmlab import datasets

    if name not in datasets.list_shipped():
        pytest.skip(f"shipped trace {name} not present")


def test_real_program_memory_sizes():
    _need("lackey_ls")
    df = rp.real_program("lackey_ls", [1.0, 0.25], ["nopage", "fault_retry"], backing="by_label",
                        n_jobs=1)
    assert len(df) == 4 and set(df["policy"]) == {"nopage", "fault_retry"}
    full = df[(df["memory_fraction"] == 1.0) & (df["policy"] == "nopage")].iloc[0]
    assert full["n_major"] == full["file_pages"] and full["n_evictions"] == 0
    small = df[(df["memory_fraction"] == 0.25) & (df["policy"] == "nopage")].iloc[0]
    assert small["memory_pages"] == math.ceil(0.25 * full["file_pages"])
    assert small["n_major"] > full["n_major"]


def test_program_scenario_backings():
    _need("lackey_gzip")
    sc = rp.program_scenario("lackey_gzip", backing="by_label")
    vt = rp.vma_table(sc)
    assert set(vt["backing"]) <= {"file", "anon"}
    assert (vt.loc[vt["name"].str.startswith("text"), "backing"] == "file").all()
    # the top range is valgrind's client stack (near 0x1fff000000, far below the kernel's
    # place for stacks): its push/pop records label it
    top = vt.loc[vt["start"].map(lambda s: int(s, 16)).idxmax()]
    assert top["name"].startswith("stack@0x1ff") and top["backing"] == "anon"
    assert vt["name"].str.startswith("stack@").sum() == 1
    with pytest.raises(ScenarioError):
        rp.program_scenario("lackey_gzip", backing={"text": "file"})
    assert rp.distinct_pages(sc.trace) == vt["pages_touched"].sum()


def test_perf_replay_keeps_threads():
    _need("perf_sort_parallel")
    df = rp.perf_replay("perf_sort_parallel", ["nopage", "fault_retry"], n_jobs=1)
    assert list(df["policy"]) == ["nopage", "fault_retry"]
    assert (df["n_threads"] > 1).all() and (df["program"] == "perf_sort_parallel").all()
    d2 = rp.perf_replay("perf_sort_parallel", ["nopage"], mmap_loop_ops=100, n_jobs=1)
    assert d2["n_threads"].iloc[0] == df["n_threads"].iloc[0] + 1

