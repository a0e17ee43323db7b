"""read() calls whose windows the run decides (docs/model.md 11.7.1, ``FileRead.stream``):
the kernel's read() readahead (page_cache_sync_ra, page_cache_async_ra) run on the page
cache as the run finds it.  With memory to spare it opens the windows the recording's replay
opened (``recorded.reads_for``); under a limit a page evicted before the program read it
opens a new window, as the kernel's readahead thrashing does.  Hand-counted cases, each
checked in the engine and the reference; tests/test_engine_vs_reference.py draws streams
too."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vmlab
from naive_engine import NaiveSimulator, canonical, first_difference
from vmlab import File, FileRead, Scenario, Trace, Vma
from vmlab.engine import run as engine_run
from vmlab.errors import ScenarioError

PS = 4096
BASE = 0x7f00_0000_0000
DATA = Path(__file__).resolve().parent.parent / "data" / "native"


def _run(calls, ra_pages=8, **kw):
    """lib's one page touched at every record; ``calls``: ``(first, end, pos_end)`` of
    stream 0 of a 64-page file no VMA maps, one call at each record from 1 on."""
    n = len(calls) + 2
    tr = Trace(np.full(n, BASE, np.uint64))
    prev, reads = -1, []
    for i, (a, b, pe) in enumerate(calls):
        reads.append(FileRead(1 + i, "data", 0, 0, a, b, prev, stream=0, pos_end=pe))
        prev = b - 1
    sc = Scenario(tr, vmas=[Vma(BASE, BASE + PS, "file", file="lib")],
                  files=[File("lib", size_bytes=PS), File("data", size_bytes=64 * PS)],
                  reads=reads, ra_pages=ra_pages, fault_model="kernel", **kw)
    ref = NaiveSimulator(sc, "nopage").run()
    diff = first_difference(canonical(engine_run(sc, "nopage")), canonical(ref))
    assert diff is None, diff
    return vmlab.simulate(sc)


def test_a_sequential_stream_ramps_its_window_up():
    # ra_pages 8, reads of 2 pages from 0: the first opens [0, 4) (get_init_ra_size(2, 8)
    # = 4, marked at 2); the second meets the mark and reads [4, 12) (size 8, marked at
    # 4); the third [12, 20); the fourth to sixth copy what is there; the seventh meets the
    # mark at 12 and reads [20, 28): 4 + 8 + 8 + 8 pages in four I/Os
    r = _run([(2 * i, 2 * i + 2, 2 * i + 2) for i in range(7)])
    assert r.raw.counters["n_read_pages"] == 28 + 1     # (+ lib's page)
    assert r.raw.counters["n_io"] == 4 + 1


def test_a_random_read_leaves_the_state_and_a_sequential_one_restarts_it():
    # [0, 2) opens [0, 4); [30, 31) is a small random read: the page alone, the state
    # left; [31, 32) follows it (prev_pos 31): a new window of get_init_ra_size(1, 8) = 2,
    # [31, 33) marked at 32; [32, 33) meets the mark: [33, 37)
    r = _run([(0, 2, 2), (30, 31, 31), (31, 32, 32), (32, 33, 33)])
    assert r.raw.counters["n_read_pages"] == 4 + 1 + 2 + 4 + 1


def test_without_readahead_each_missing_page_is_read_alone():
    r = _run([(0, 2, 2), (2, 4, 4)], ra_pages=0)
    assert r.raw.counters["n_read_pages"] == 4 + 1


def test_pages_evicted_before_they_are_read_are_read_again():
    # 16 KiB of page cache under memory_bytes: the windows outgrow it, a readahead takes
    # the pages read ahead but not yet copied, and the program's next read finds them gone:
    # more pages read than the file has, as the kernel's readahead thrashing
    calls = [(2 * i, 2 * i + 2, 2 * i + 2) for i in range(32)]
    free = _run(calls)
    tight = _run(calls, memory_bytes=(8 + 12) * PS, replacement="twolist")
    assert free.raw.counters["n_read_pages"] == 64 + 1
    assert tight.raw.counters["n_read_pages"] > 64 + 1
    assert not tight.summary["oom"]


def test_the_recording_replay_and_the_run_open_the_same_windows_with_memory_to_spare():
    from vmlab.studies import kernel_agreement as ka
    from vmlab.validate import predict
    meta = json.loads((DATA / "native_faults.json").read_text())
    trace = ka.load_recordings(names=["md5sum"])["md5sum"]
    cold = meta["programs"]["md5sum"]["cold_page_cache"]
    given = predict(trace, cold_cache=cold, dynamic_reads=False)
    run = predict(trace, cold_cache=cold, dynamic_reads=True)
    assert run["pages_read"] == given["pages_read"] > 1000
    # one fault more: the run's windows carry their readahead marks (the replay's given
    # windows do not), and exec's read of md5sum's first pages marks page 3, where a
    # text fault then starts an asynchronous readahead, as the kernel's does
    assert (given["page_faults"], run["page_faults"]) == (85, 86)


def test_a_stream_read_has_no_given_window():
    with pytest.raises(ScenarioError, match="give start == end"):
        FileRead(3, "data", 0, 4, 0, 2, stream=0)
    with pytest.raises(ScenarioError, match="stream and pos_end must be -1 or more"):
        FileRead(3, "data", 0, 0, 0, 2, stream=-2)
