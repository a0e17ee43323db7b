"""The kernel's reclaim call (docs/model.md 8.4, ``Scenario.reclaim_priorities``): a charge
over ``memory_bytes`` runs try_charge_memcg's reclaim calls, each do_try_to_free_pages'
priorities 12 to 0 scanning ``size >> priority`` entries of each list.  Found on the host:
``gzip -c`` of a 588 KB file OOM-killed at 0.65-0.7 MB with its page cache charged and its
LRU lists empty (the kernel's OOM reports), where one victim at a time thrashed on for
thousands of major faults.  The cases are counted by hand from section 8.4's rules; each
runs in the reference and in the engine, which must agree record for record
(tests/test_engine_vs_reference.py draws the knob too)."""
from __future__ import annotations

import numpy as np
import pytest

import vmlab
from naive_engine import NaiveSimulator, canonical, first_difference
from vmlab import Scenario, Trace, Vma
from vmlab.engine import run as engine_run
from vmlab.errors import ScenarioError
from vmlab.model.scenario import KERNEL_DEFAULTS
from vmlab.trace import Op
from test_lru_add_batch import FIXED, _reads_run

PS = 4096
BASE = 0x7f00_0000_0000
#: X is a page of a text VMA, A B C pages of a data file (one page table holds them all)
PAGES = {"X": BASE, "A": BASE + 16 * PS, "B": BASE + 17 * PS, "C": BASE + 18 * PS,
         "a": BASE + 32 * PS}
#: (a is a page of a third file through a private writable mapping: written, it is copied)
VMAS = (Vma(BASE, BASE + 16 * PS, "file", prot="rx", file="text", madvise="random"),
        Vma(BASE + 16 * PS, BASE + 32 * PS, "file", prot="r", file="data", madvise="random"),
        Vma(BASE + 32 * PS, BASE + 48 * PS, "file", prot="rw", private=True, file="rw",
            madvise="random"))


def _scenario(seq, room, **kw):
    """Loads of ``seq`` (one thread) under a limit with ``room`` frames for the page cache
    beside the kernel's own (``FIXED``); no LRU-add batches, the TLB on."""
    tr = Trace(addr=np.array([PAGES[c] for c in seq], np.uint64),
               op=np.array([Op.STORE if c == "a" else Op.LOAD for c in seq], np.uint8),
               gap_ns=np.full(len(seq), 10, np.uint64))
    knobs = dict(memory_bytes=(FIXED + room) * PS, fault_model="kernel",
                 replacement="twolist", tlb_young=True, reclaim_batch=32,
                 reclaim_priorities=True)
    knobs.update(kw)
    return Scenario(tr, vmas=VMAS, **knobs)


def _both(sc):
    """The reference's simulator after the run and the result, checked against the
    engine's."""
    sim = NaiveSimulator(sc, "nopage")
    ref = sim.run()
    eng = engine_run(sc, "nopage")
    diff = first_difference(canonical(eng), canonical(ref))
    assert diff is None, diff
    return sim, vmlab.simulate(sc)


def _evicted(r):
    names = {(0, 0): "X", (1, 0): "A", (1, 1): "B", (1, 2): "C", (2, 0): "a"}
    return "".join(names[(f, p)] for f, p in zip(r.evictions["file"],
                                                  r.evictions["file_page"]))


def test_a_round_that_frees_nothing_runs_again_and_active_text_is_kept():
    # Two frames.  X and A fault in (inactive, young PTEs); X's hits find its translation
    # in the TLB and set nothing.  B's charge, one call: priority 1 scans 2 >> 1 = 1
    # entry, X, young and executable: activated (marked).  Priority 0: the inactive list
    # holds A alone: young, kept (marked); the active list (X) may not be deactivated (the
    # inactive list, 1, is not low against 1): skipped.  Nothing freed: the round runs
    # again (memcg_full_walk) and priority 0 evicts A, old and marked.  C's charge keeps B
    # and takes it in its second round the same way: X, active, is never met.
    sim, r = _both(_scenario("XAXBXC", 2))
    assert _evicted(r) == "AB"
    assert [k for k in sim.active] == [(0, 0)] and not r.summary["oom"]


def test_a_call_that_meets_only_busy_folios_deactivates_by_force():
    # Two frames.  X faults in.  A is written through a private file mapping: its folio is
    # read (the second frame), then its private copy is charged with the folio pinned.  The
    # call: priority 1 activates X (young, executable); priority 0 keeps A (pinned) and
    # skips the active list (not low).  The full walk's round frees nothing either, so a
    # third round runs forced: A kept, X deactivated (old since its check).  The charge
    # still does not fit: its second call meets A (kept, to the newest end) and then X, old
    # and marked: evicted, and read again at the next record, whose charge takes a's
    # folio (its PTE maps the copy now: unmapped, marked)
    sim, r = _both(_scenario("XaX", 2))
    assert _evicted(r) == "Xa"
    assert r.summary["n_major"] == 3 and not r.summary["oom"]


def test_calls_repeat_while_the_charge_does_not_fit():
    # One frame.  X faults in.  A's charge: call 1 activates X (young, executable) and
    # frees nothing, with nothing skipped (the active list was empty as the priority
    # began); call 2 (after the stock's drain) deactivates X (the inactive list is empty,
    # so low); call 3, the first of the 16 retries, evicts X
    sim, r = _both(_scenario("XA", 1))
    assert _evicted(r) == "X" and not r.summary["oom"]


def test_a_reclaim_whose_lists_are_empty_frees_nothing_and_the_charge_fails():
    # test_lru_add_batch's case under the reclaim call: the page cache sits in the batch,
    # the lists are empty, no chunk is scanned and so nothing drains: an OOM after the
    # retries, as the kernel's OOM report shows it
    sc = _reads_run(8)
    sc = sc.replace(reclaim_priorities=True, reclaim_batch=32)
    sim, r = _both(sc)
    assert r.summary["oom"] and len(r.evictions) == 0


def test_the_knob_is_a_kernel_default_and_checked():
    assert KERNEL_DEFAULTS["reclaim_priorities"] is True
    with pytest.raises(ScenarioError, match="reclaim_priorities must be True or False"):
        _scenario("XA", 1, reclaim_priorities=1)
