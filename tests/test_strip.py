"""vmlab.trace.strip: what a stripped trace keeps, and the fault counts it preserves."""
from __future__ import annotations

import numpy as np
import pytest

import vmlab
from vmlab.errors import VmlabError
from vmlab.model import Scenario
from vmlab.trace import Op, Trace, open_trace
from vmlab.trace.mappings import FOREVER, MAPPING_DTYPE, NO_FILE, Backing, FileInfo, Mappings
from vmlab.trace.native import TraceWriter
from vmlab.trace.strip import strip_trace

PS = 4096


def _write(path, addr, op, mappings=None):
    with TraceWriter(path, mappings=mappings) as w:
        w.append(addr=np.asarray(addr, np.uint64), op=np.asarray(op, np.uint8),
                 size=np.where(np.asarray(op) == Op.LOCK_W, 0, 8).astype(np.uint32))
    return open_trace(path)


def test_keeps_first_touches_first_writes_and_lock_w(tmp_path):
    a, b, c = 0x10000, 0x11000, 0x12000
    addr = [a, a + 8, b, a, a + 16, 0, b, c, b + 8]
    op = [Op.LOAD, Op.LOAD, Op.LOAD, Op.STORE, Op.STORE, Op.LOCK_W, Op.IFETCH, Op.LOAD,
          Op.MODIFY]
    tr = _write(tmp_path / "t.vmt", addr, op)
    out, info = strip_trace(tr, tmp_path / "s.vmt", filter_pages=2)
    s = open_trace(out)
    # kept: a (first), b (first), a's first STORE, the LOCK_W, c (first), b again (it left
    # the 2-page filter when c came in: b was behind a and c), not the repeats
    assert np.asarray(s.addr).tolist() == [a, b, a, 0, c, b + 8]
    assert info == {"records_in": 9, "records_out": 6, "filter_pages": 2}
    assert "stripped" in s.meta.notes


def test_filter_empties_where_the_mappings_change(tmp_path):
    t = np.zeros(2, MAPPING_DTYPE)
    t["start"], t["end"] = 0x10000, 0x20000
    t["backing"] = Backing.ANON
    t["file"] = NO_FILE
    t["prot"] = 3
    t["from_record"] = [0, 3]
    t["until_record"] = [3, FOREVER]
    m = Mappings(t, [], "test")
    tr = _write(tmp_path / "t.vmt", [0x10000] * 6, [Op.LOAD] * 6, mappings=m)
    out, info = strip_trace(tr, tmp_path / "s.vmt")
    s = open_trace(out)
    assert len(s) == 2      # the first access under each row
    assert s.mappings.table["from_record"].tolist() == [0, 1]
    assert s.mappings.table["until_record"].tolist() == [1, FOREVER]


def _random_trace(rng, n=20_000, pages=300):
    """Accesses with locality: a random walk over pages, loads, stores, fetches."""
    steps = rng.integers(-3, 4, n)
    page = np.abs(np.cumsum(steps)) % pages
    addr = (0x100000 + page * PS + rng.integers(0, PS // 8, n) * 8).astype(np.uint64)
    op = rng.choice([Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY], n, p=[.6, .25, .1, .05])
    return addr, op.astype(np.uint8)


@pytest.mark.parametrize("seed", [1, 2])
def test_fault_counts_survive_stripping(tmp_path, seed):
    rng = np.random.default_rng(seed)
    addr, op = _random_trace(rng)
    t = np.zeros(2, MAPPING_DTYPE)
    t["start"] = [0x100000, 0x100000 + 150 * PS]
    t["end"] = [0x100000 + 150 * PS, 0x100000 + 300 * PS]
    t["prot"] = 3
    t["backing"] = [Backing.FILE, Backing.ANON]
    t["file"] = [0, NO_FILE]
    t["until_record"] = FOREVER
    res = np.zeros(150, bool)
    res[::3] = True
    m = Mappings(t, [FileInfo("/data/f", 1, 2, 150 * PS, res, "before_run")], "test")
    full = _write(tmp_path / "t.vmt", addr, op, mappings=m)
    out, info = strip_trace(full, tmp_path / "s.vmt", filter_pages=8)
    small = open_trace(out)
    assert info["records_out"] < info["records_in"] / 2
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.recorded import runnable, scenario_for

    def kernel(tr):
        sc, _ = runnable(scenario_for(tr, records=False), RUNS_KNOBS)
        s = vmlab.simulate(sc).summary
        return s["n_faults"], s["n_major"]

    assert kernel(small) == kernel(full)
    # under a limit the order of references inside the filter is lost, so LRU misses move
    # (6% at 8 frames with these traces); from 4x the filter on they stay within 3%
    for frames in (32, 64, 128, 256):
        full_mj, small_mj = [vmlab.simulate(Scenario(tr, backing="file", memory_pages=frames,
                                                     records=False)).summary["n_major"]
                             for tr in (full, small)]
        assert small_mj == pytest.approx(full_mj, rel=0.03)


def test_refuses_traces_with_times(tmp_path):
    tr = Trace(np.array([0x1000], np.uint64), op=np.zeros(1, np.uint8),
               gap_ns=np.array([5], np.uint64))
    with pytest.raises(VmlabError, match="has times"):
        strip_trace(tr, tmp_path / "s.vmt")
    with pytest.raises(VmlabError, match="filter_pages"):
        strip_trace(tr, tmp_path / "s.vmt", filter_pages=0)
    assert not (tmp_path / "s.vmt").exists()
