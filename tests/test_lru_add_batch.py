"""The per-CPU LRU-add batches (docs/model.md 12.1, ``Scenario.lru_add_batch``): a folio the
run adds waits in its thread's batch, out of reclaim's reach, until the batch fills, a large
folio joins it, or the thread drains it (a reclaim that finds its cgroup's lists not empty,
an unmap).  Found on the host: an OOM-killed ``wc -l`` under 244 KiB had 10 page-cache pages
charged and none on the LRU lists (``inactive_file 0``, ``active_file 0`` in the kernel's
OOM report).  These cases are counted by hand; each runs in the engine and in the reference,
which must agree record for record (tests/test_engine_vs_reference.py draws the knob too)."""
from __future__ import annotations

import numpy as np
import pytest

import vmlab
from naive_engine import NaiveSimulator, canonical, first_difference
from vmlab import File, FileRead, Scenario, Trace, Vma
from vmlab.engine import run as engine_run
from vmlab.errors import ScenarioError
from vmlab.trace import Op

PS = 4096
BASE = 0x7f00_0000_0000
ANON = 0x7f10_0000_0000
#: the kernel's own frames of one thread on one page table each level (docs/model.md 12):
#: a PGD, a 16 KiB kernel stack, a PUD, a PMD and a PTE table
FIXED = 1 + 4 + 3


def _reads_run(batch, n_reads=7, anon=False, extra_frames=0):
    """lib's one page touched at every record; the records 1.. each read one new page of
    ``input`` (a file no VMA maps; no readahead window); ``anon``: a write to an anonymous
    page first (its folio, and a PMD and a PTE table of its own).  Room for lib's page and
    six of input's."""
    n = n_reads + 2
    addrs = [BASE] * n
    ops = [Op.LOAD] * n
    vmas = [Vma(BASE, BASE + PS, "file", file="lib")]
    frames = FIXED + 1 + 6 + extra_frames
    if anon:
        addrs[0], ops[0] = ANON, Op.STORE
        vmas.append(Vma(ANON, ANON + PS, "anon"))
        frames += 3
    tr = Trace(addr=np.array(addrs, np.uint64), op=np.array(ops, np.uint8))
    sc = Scenario(tr, vmas=vmas, files=[File("lib", size_bytes=PS),
                                        File("input", size_bytes=64 * PS)],
                  reads=[FileRead(2 + i, "input", 0, 0, i, i + 1) for i in range(n_reads)],
                  memory_bytes=frames * PS, fault_model="kernel", replacement="twolist",
                  lru_add_batch=batch)
    return sc


def _both(sc):
    """The engine's result, checked against the reference's."""
    ref = NaiveSimulator(sc, "nopage").run()
    eng = engine_run(sc, "nopage")
    diff = first_difference(canonical(eng), canonical(ref))
    assert diff is None, diff
    return vmlab.simulate(sc)


def test_a_reclaim_that_finds_its_lists_empty_ends_in_an_oom():
    # a batch of 8 or more: lib's folio and input 0-5 fill the frames and all sit in the
    # batch (7 adds); the 7th read's charge finds no folio on the lists, so it drains
    # nothing and finds no victim: an OOM at its record, with six input pages charged
    r = _both(_reads_run(8))
    assert r.summary["oom"] and len(r.evictions) == 0
    assert r.threads["state"].tolist() == ["oom"]
    # without batches the same charge takes input 0 (unmapped, the oldest): no OOM
    r0 = _both(_reads_run(0))
    assert not r0.summary["oom"]
    assert r0.evictions["file"].tolist() == [1] and r0.evictions["file_page"].tolist() == [0]


def test_a_full_batch_drains_and_its_folios_are_victims_again():
    # a batch of 7: the 7th add (input 5) fills it, so it drains onto the inactive list in
    # the order added; the 7th read then takes input 0 as without batches
    r = _both(_reads_run(7))
    r0 = _both(_reads_run(0))
    assert not r.summary["oom"]
    assert r.evictions[["file", "file_page"]].values.tolist() == \
        r0.evictions[["file", "file_page"]].values.tolist() == [[1, 0]]


def test_anonymous_folios_take_places_in_the_batch():
    # the anonymous page written first is the batch's first add: with a batch of 8 the 8th
    # add (input 5) drains it, and the 7th read finds its victim; with 9 it is an OOM
    assert not _both(_reads_run(8, anon=True)).summary["oom"]
    assert _both(_reads_run(9, anon=True)).summary["oom"]


def test_a_reclaim_with_a_folio_on_its_lists_drains_the_batch_first():
    # a batch of 4: lib 0 and input 0-2 drain at the 4th add; input 3-5 wait in the batch;
    # the 7th read's reclaim finds the lists not empty, drains (input 3-5 join the
    # inactive list behind input 2) and takes input 0; the 8th and 9th reads take 1 and 2
    # (lib's page is mapped and young: readahead's victims are unmapped ones)
    r = _both(_reads_run(4, n_reads=9))
    assert not r.summary["oom"]
    assert r.evictions["file_page"].tolist() == [0, 1, 2]


def test_batches_apply_to_twolist_under_memory_bytes_in_the_kernel_model_only():
    sc = _reads_run(8)
    assert sc.lru_add_batch_applies
    for other in (sc.replace(replacement="lru"), sc.replace(memory_bytes=None, memory_pages=7),
                  sc.replace(fault_model="page", reads=(), files=())):
        assert not other.lru_add_batch_applies
    # LRU under the same limit: no batch, so no OOM
    assert not vmlab.simulate(sc.replace(replacement="lru")).summary["oom"]


def test_lru_add_batch_is_checked():
    tr = Trace(np.array([BASE], np.uint64))
    for bad in (-1, 1.5, "31", 5000):
        with pytest.raises(ScenarioError, match="lru_add_batch must be an integer from 0"):
            Scenario(tr, lru_add_batch=bad)
