"""Sweeps on a real two-process dask LocalCluster (vmlab/distributed.py)."""
import pandas as pd
import pytest

import vmlab
from vmlab import Scenario, VmlabError
from vmlab.distributed import (_worker_trace, local_cluster, point_keys, read_cache, trace_checksum,
                               trace_file)
from vmlab.trace import open_trace, synth

distributed = pytest.importorskip("distributed")

TIMING = ["prepare_s", "kernel_s"]   # wall-clock seconds: the only figures that may differ


@pytest.fixture(scope="module")
def client():
    cluster = local_cluster(2)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def trace():
    return synth.zipf(60_000, 6_000, alpha=0.9, seed=11)


def same_rows(a, b):
    cols = [c for c in a.columns if c not in TIMING]
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True),
                                  check_dtype=False)


def test_dask_sweep_returns_the_local_rows(client, trace, tmp_path):
    sc = Scenario(trace, records=False)
    grid = {"memory_pages": [300, 1200], "replacement": ["lru", "fifo", "clock"],
            "sample_rate": [None, 0.25]}
    local = vmlab.sweep(sc, grid, n_jobs=1, show_progress=False)
    on_dask = vmlab.sweep(sc, grid, client=client, show_progress=False)
    same_rows(local, on_dask)
    # the same from a file, which each worker opens by its path
    p = tmp_path / "z.vmt"
    trace.save(p)
    tr = open_trace(p)
    assert trace_file(tr) == p
    from_file = vmlab.sweep(Scenario(tr, records=False), grid, client=client,
                            show_progress=False)
    same_rows(local, from_file)


def test_dask_sweep_of_a_recording_keeps_its_reads_and_unmaps(client):
    # a task ships the scenario on a placeholder trace; the fields that name records of the
    # trace (reads, unmaps) travel beside it and are put back on the worker
    from pathlib import Path

    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.recorded import runnable, scenario_for

    path = Path(__file__).resolve().parent.parent / "data" / "native" / "lackey_gzip.vmt"
    sc, _ = runnable(scenario_for(open_trace(path)), RUNS_KNOBS)
    assert sc.reads and sc.unmaps
    sc = sc.replace(records=False)
    grid = {"memory_bytes": [471_859, 1 << 20]}
    local = vmlab.sweep(sc, grid, n_jobs=1, show_progress=False)
    same_rows(local, vmlab.sweep(sc, grid, client=client, show_progress=False))
    want = vmlab.simulate(sc.replace(memory_bytes=471_859)).summary
    assert local["n_faults"].iloc[0] == want["n_faults"]


def test_interrupted_sweep_resumes_from_the_parquet_cache(client, trace, tmp_path):
    sc = Scenario(trace, records=False, policy="fault_retry")
    cache = tmp_path / "cache"
    half = vmlab.sweep(sc, {"memory_pages": [300, 600]}, client=client, cache=cache,
                       show_progress=False)
    parts = sorted(cache.glob("part-*.parquet"))
    assert parts
    # mark the cached rows: a resumed sweep must take them from the cache, not replay them
    for part in parts:
        df = pd.read_parquet(part)
        df["n_faults"] = -1
        df.to_parquet(part, index=False)
    full = vmlab.sweep(sc, {"memory_pages": [300, 600, 1200, 2400]}, client=client,
                       cache=cache, show_progress=False)
    assert full["n_faults"].tolist()[:2] == [-1, -1]
    local = vmlab.sweep(sc, {"memory_pages": [1200, 2400]}, n_jobs=1, show_progress=False)
    assert full["n_faults"].tolist()[2:] == local["n_faults"].tolist()
    assert half["memory_pages"].tolist() == [300, 600]
    assert len(read_cache(cache)) == 4
    # nothing left to run: the cache answers alone
    again = vmlab.sweep(sc, {"memory_pages": [300, 600, 1200, 2400]}, client=client,
                        cache=cache, show_progress=False)
    same_rows(full, again)


def test_cache_keys_name_trace_scenario_point_and_version(trace):
    sc = Scenario(trace, records=False)
    ck = trace_checksum(trace)
    k1, k2 = point_keys(sc, [{"memory_pages": 300}, {"memory_pages": 600}], ck)
    assert k1 != k2
    assert point_keys(sc, [{"memory_pages": 300}], ck) == [k1]
    assert point_keys(sc.replace(replacement="fifo"), [{"memory_pages": 300}], ck) != [k1]
    assert point_keys(sc, [{"memory_pages": 300}], "other") != [k1]
    other = synth.zipf(60_000, 6_000, alpha=0.9, seed=12)
    assert trace_checksum(other) != ck
    assert trace_checksum(synth.zipf(60_000, 6_000, alpha=0.9, seed=11)) == ck


def test_worker_refuses_a_different_file_at_the_path(tmp_path, trace):
    p = tmp_path / "z.vmt"
    trace.save(p)
    assert _worker_trace(str(p), trace_checksum(open_trace(p))).equals(trace)
    with pytest.raises(VmlabError, match="does not name the same trace"):
        _worker_trace(str(p), "vmt-0000")


def test_damaged_cache_part_is_one_clear_error(tmp_path):
    (tmp_path / "part-0.parquet").write_text("not parquet")
    with pytest.raises(VmlabError, match="part-0.parquet: not a readable Parquet part"):
        read_cache(tmp_path)


def test_cli_sweep_on_a_scheduler_address(client, trace, tmp_path, capsys):
    from vmlab.cli import main

    p = tmp_path / "z.vmt"
    trace.save(p)
    out = tmp_path / "r.parquet"
    addr = client.scheduler.address
    assert main(["sweep", str(p), "--grid", "memory_pages=300,1200", "--policy",
                 "nopage,fault_retry", "--scheduler", addr, "--out", str(out), "--quiet"]) == 0
    df = pd.read_parquet(out)
    assert df["policy"].tolist() == ["nopage", "nopage", "fault_retry", "fault_retry"]
    local = vmlab.sweep(Scenario(open_trace(p), records=False),
                        {"policy": ["nopage", "fault_retry"], "memory_pages": [300, 1200]},
                        n_jobs=1, show_progress=False)
    same_rows(local, df)
    assert "dask dashboard at" in capsys.readouterr().err
    assert main(["sweep", str(p), "--grid", "memory_pages", "--out", str(out)]) == 2
    assert "expected KEY=V1,V2" in capsys.readouterr().err
    assert main(["sweep", str(p), "--grid", "memory_pages=10", "--out", str(tmp_path / "r.txt")]) == 2
    assert main(["sweep", str(p), "--grid", "memroy_pages=10", "--scheduler", addr,
                 "--out", str(out)]) == 2
    assert "memory_pages" in capsys.readouterr().err   # did you mean
    # a scheduler that is no address, and a bad scenario value that dask returns to us:
    # one line each (once a ValueError and a TypeError with their tracebacks)
    for argv, words in ((["--grid", "memory_pages=10", "--scheduler", "synchronous"],
                         "--scheduler 'synchronous' is not 'local' or a scheduler address"),
                        (["--grid", "signals=1", "--scheduler", addr],
                         "signals must be SignalSchedule objects, got 1")):
        assert main(["sweep", str(p), *argv, "--out", str(tmp_path / "s.csv")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "s.csv").exists()
