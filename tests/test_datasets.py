"""Tests of vmlab.datasets and of the shipped traces in data/ (made by scripts/make_data.sh)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from vmlab import datasets
from vmlab.errors import VmlabError
from vmlab.trace import Op, Trace, save_trace

SHIPPED = {"lackey_ls", "lackey_gzip", "lackey_python_dict",
           "perf_mmap_faults", "perf_sort_parallel", "perf_xz_threads"}


def test_data_dir_is_beside_the_package():
    assert datasets.DATA_DIR.name == "data"
    assert (datasets.DATA_DIR.parent / "vmlab" / "datasets.py").is_file()


def test_list_shipped_names():
    names = datasets.list_shipped()
    assert names == sorted(names)
    assert SHIPPED <= set(names)
    assert all(not n.endswith(".vmt") for n in names)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_trace_opens_and_is_consistent(name):
    path = datasets.shipped_path(name)
    assert path == datasets.shipped_path(name + ".vmt") and path.suffix == ".vmt"
    t = datasets.load_shipped(name, verify=True)
    assert isinstance(t, Trace) and len(t) > 0 and t.page_size == 4096
    assert t.meta.source  # the command that made it
    if name.startswith("lackey_"):
        assert t.meta.source.startswith("valgrind --tool=lackey")
        assert not t.has_gap and t.n_threads == 1
        assert set(np.unique(t.op).tolist()) <= {Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY}
    else:
        assert t.meta.source.startswith("perf record")
        assert t.has_gap and t.n_threads >= 4  # real multi-threaded runs
        op = np.asarray(t.op)
        assert set(np.unique(op).tolist()) == {Op.LOAD, Op.LOCK_W}
        assert np.all(np.asarray(t.size)[op == Op.LOCK_W] == 0)
        assert np.all(np.asarray(t.size)[op == Op.LOAD] == 8)
        # each thread's first record has gap 0
        _, first = np.unique(np.asarray(t.tid), return_index=True)
        assert np.all(np.asarray(t.gap_ns)[first] == 0)


def test_mmap_faults_trace_has_the_writer_thread():
    t = datasets.load_shipped("perf_mmap_faults")
    op, tid = np.asarray(t.op), np.asarray(t.tid)
    writers = np.unique(tid[op == Op.LOCK_W])
    # the mmap/munmap loop thread dominates the LOCK_W records
    top = max(writers, key=lambda w: int(((tid == w) & (op == Op.LOCK_W)).sum()))
    assert ((tid == top) & (op == Op.LOCK_W)).sum() > 0.9 * (op == Op.LOCK_W).sum()
    assert (op == Op.LOAD).sum() > 5000


def test_readme_matches_the_files():
    text = (datasets.DATA_DIR / "README.md").read_text()
    for name in datasets.list_shipped():
        path = datasets.shipped_path(name)
        t = datasets.load_shipped(name)
        m = re.search(rf"## `{name}\.vmt`.*?records: ([\d,]+); size: ([\d,]+) bytes",
                      text, re.S)
        assert m, name
        assert int(m[1].replace(",", "")) == len(t)
        assert int(m[2].replace(",", "")) == path.stat().st_size
    total = sum(datasets.shipped_path(n).stat().st_size for n in datasets.list_shipped())
    assert total < 8 * 2**20  # "a few MB"


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(datasets.UnknownTraceError) as e:
        datasets.load_shipped("no_such_trace")
    msg = str(e.value)
    assert "'no_such_trace'" in msg
    for name in SHIPPED:
        assert name in msg
    assert isinstance(e.value, VmlabError) and isinstance(e.value, LookupError)


@pytest.mark.parametrize("bad", ["", "../data/perf_mmap_faults", "perf_mmap_faults/x", ".vmt"])
def test_bad_names_are_refused(bad):
    with pytest.raises(datasets.UnknownTraceError):
        datasets.shipped_path(bad)


def test_other_data_dir(tmp_path):
    assert datasets.list_shipped(tmp_path) == []
    assert datasets.list_shipped(tmp_path / "absent") == []
    with pytest.raises(datasets.UnknownTraceError, match="none .*make_data.sh"):
        datasets.shipped_path("x", data_dir=tmp_path)
    save_trace(Trace(np.arange(5, dtype=np.uint64) * 4096), tmp_path / "tiny.vmt")
    (tmp_path / "notes.txt").write_text("not a trace")
    assert datasets.list_shipped(tmp_path) == ["tiny"]
    assert len(datasets.load_shipped("tiny", data_dir=tmp_path)) == 5
