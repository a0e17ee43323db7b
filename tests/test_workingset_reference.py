"""twolist's workingset protection (docs/model.md 8.1) in the reference simulator, by hand.

One thread, loads only, the page model, one-page folios, three or four frames: every
expected list is worked out in the comments from section 8.1's rules.  A letter is a page of
a data VMA (``prot="r"``), ``X`` and ``Y`` pages of a text VMA (``prot="rx"``); each VMA
maps a file of its own.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import budgeted
from naive_engine import NaiveSimulator
from scenario_strategies import granular_cases
from vmlab.errors import ScenarioError
from vmlab.model import Adversary, Costs, Fixed, Scenario, Vma
from vmlab.trace import Op, Trace

PAGE = 4096
DATA = 0x400 * PAGE
TEXT = 0x800 * PAGE
COSTS = Costs(io_ns=Fixed(70_000))
VMAS = (Vma(DATA, DATA + 16 * PAGE, "file", prot="r"),
        Vma(TEXT, TEXT + 16 * PAGE, "file", prot="rx"))


def addr(ch, stride=1):
    """A letter's address: with ``stride`` 2, the first page of the letter's two-page folio."""
    if ch in "XY":
        return TEXT + "XY".index(ch) * stride * PAGE
    return DATA + "ABCDEFGH".index(ch) * stride * PAGE


def run(seq, memory_pages, workingset=True, **kw):
    stride = kw.get("folio_pages", 1)
    trace = Trace(addr=np.array([addr(c, stride) + 8 for c in seq], np.uint64),
                  op=np.full(len(seq), Op.LOAD, np.uint8),
                  tid=np.ones(len(seq), np.uint32),
                  gap_ns=np.full(len(seq), 10, np.uint64))
    sc = Scenario(trace, vmas=VMAS, costs=COSTS, memory_pages=memory_pages,
                  replacement="twolist", workingset=workingset, **kw)
    sim = NaiveSimulator(sc, "nopage")
    result = sim.run()
    return sim, result


def names(keys, folio_pages=1):
    """Page-cache keys (file, first page of the folio) as the letters of this file's traces."""
    return "".join("ABCDEFGH"[k // folio_pages] if f == 0 else "XY"[k // folio_pages]
                   for f, k in keys)


def evicted(result, folio_pages=1):
    return "".join("ABCDEFGH"[p // folio_pages] if f == 0 else "XY"[p // folio_pages]
                   for f, p in zip(result.evictions["file"], result.evictions["file_page"]))


# -- refault activation ---------------------------------------------------------------------

def test_a_refault_within_the_active_lists_size_is_activated():
    # A A B B: both active (age 2: two activations).  C D fill the four frames, inactive.
    # E evicts C (shadow 2, age 3).  C evicts D (shadow 3, age 4): C's refault distance is
    # 4 - 2 = 2, the active list holds 2 pages: C joins the active list (age 5).
    sim, r = run("AABBCDEC", 4)
    assert names(sim.active) == "ABC" and names(sim.lru_order) == "E"
    assert sim.nonresident_age == 5 and sim.shadows == {(0, 3): 3}   # D's, E's
    assert evicted(r) == "CD"
    # Without it C comes back inactive, like any other new page.
    sim, _ = run("AABBCDEC", 4, workingset=False)
    assert names(sim.active) == "AB" and names(sim.lru_order) == "EC"


def test_a_refault_further_than_the_active_lists_size_is_not():
    # As above with F between: F evicts D (age 4), C evicts E (age 5): distance 5 - 2 = 3 > 2.
    sim, r = run("AABBCDEFC", 4)
    assert names(sim.active) == "AB" and names(sim.lru_order) == "FC"
    assert evicted(r) == "CDE"
    assert (0, 2) not in sim.shadows          # C's shadow was consumed by its refault


def test_the_activated_refault_outlives_the_pages_evicted_after_it():
    # After AABBCDEC (active A B C, inactive E): F finds the inactive list low (1 < 3),
    # deactivates A, evicts E; G evicts A.  Plain twolist keeps A (active) and evicts C.
    sim, r = run("AABBCDECFG", 4)
    assert evicted(r) == "CDEA"
    assert names(sim.active) == "BC" and names(sim.lru_order) == "FG"
    sim, r = run("AABBCDECFG", 4, workingset=False)
    assert evicted(r) == "CDEC"
    assert names(sim.active) == "AB" and names(sim.lru_order) == "FG"


def test_an_adversarys_eviction_leaves_no_shadow_and_clears_those_in_its_range():
    # fadvise(DONTNEED) invalidates: no shadow entry for what it drops, and the shadow
    # entries of its range go too.  A A B B C D E: E's fault evicted C (shadow 2).  One call
    # while E's read is in flight: every other page is mapped, so it evicts nothing and only
    # clears C's shadow.
    sim, r = run("AABBCDE", 4)
    assert sim.shadows == {(0, 2): 2}
    adv = Adversary(kind="times", times_ns=(int(r.faults["end_ns"][-1]) - 1,), vma=0)
    sim, r = run("AABBCDE", 4, adversary=adv)
    assert r.counters["n_adversary_evictions"] == 0 and sim.shadows == {}


# -- executable pages -----------------------------------------------------------------------

def test_a_referenced_text_page_is_activated_where_reclaim_finds_it():
    # X A B fill three frames, each marked by its fault.  C: the scan finds X first,
    # referenced and mapped by an executable VMA: activated (age 1); A is evicted.
    sim, r = run("XABC", 3)
    assert evicted(r) == "A"
    assert names(sim.active) == "X" and names(sim.lru_order) == "BC"
    # Plain twolist evicts the oldest page, text or not.
    sim, r = run("XABC", 3, workingset=False)
    assert evicted(r) == "X"


def test_a_referenced_text_page_goes_round_the_active_list_again():
    # X Y A: three frames.  B: X and Y are activated at the scan, A is evicted (active X Y,
    # inactive B).  X is read again (its young bit).  C: the inactive list is low (1 < 2):
    # X, referenced text, goes round the active list (unmarked); Y is deactivated; B goes.
    sim, r = run("XYABXC", 3)
    assert evicted(r) == "AB"
    assert names(sim.active) == "X" and names(sim.lru_order) == "YC"
    # Without the second read of X, X is the one deactivated.
    sim, r = run("XYABC", 3)
    assert evicted(r) == "AB"
    assert names(sim.active) == "Y" and names(sim.lru_order) == "XC"


def test_a_data_page_read_again_while_active_is_deactivated_all_the_same():
    # A A B B C C: all three active; D inactive.  A is read again.  E: the inactive list is
    # low (1 < 3): A, the oldest activation, is deactivated although referenced (not text);
    # then 2 < 2 is false.  D is evicted.  The same as plain twolist.
    for ws in (True, False):
        sim, r = run("AABBCCDAE", 4, workingset=ws)
        assert evicted(r) == "D"
        assert names(sim.active) == "BC" and names(sim.lru_order) == "AE"


def test_workingset_must_be_a_bool():
    trace = Trace(addr=np.array([DATA], np.uint64), op=np.array([Op.LOAD], np.uint8),
                  tid=np.ones(1, np.uint32))
    with pytest.raises(ScenarioError, match="workingset must be True or False"):
        Scenario(trace, vmas=VMAS, workingset="yes")


# -- random scenarios -----------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(granular_cases())
def test_the_lists_and_the_shadows_stay_consistent_on_random_scenarios(case):
    """Under twolist with workingset, at the end of any run: the two lists and the threads'
    LRU-add batches (docs/model.md 12.1) hold exactly the page cache, each folio once, no
    folio has a shadow entry while resident, every shadow's age is below the nonresident
    age, and that age is at least one page per reclaim eviction."""
    sc, policy = case
    sc = sc.replace(replacement="twolist", workingset=True)
    sim, r = budgeted.reference_run(sc, policy)
    batched = [k for _adds, keys in sim.batches.values() for k in keys]
    assert set(sim.lru_order) | set(sim.active) | set(batched) == set(sim.cache)
    assert len(sim.lru_order) + len(sim.active) + len(batched) == len(sim.cache)
    assert all(sim.cache[k].batched for k in batched)
    assert not set(sim.shadows) & set(sim.cache)
    assert all(0 <= age < sim.nonresident_age for age in sim.shadows.values())
    assert sim.nonresident_age >= r.counters["n_evictions"]
    base = budgeted.reference(sc.replace(workingset=False), policy)
    if r.counters["n_evictions"] == 0 and base.counters["n_evictions"] == 0:
        # nothing was reclaimed: the protection never acted, the runs are the same
        assert r.faults == base.faults


def test_an_implementation_without_it_refuses_it_and_runnable_leaves_it_out():
    from vmlab.model.recorded import runnable
    from vmlab.model.scenario import refuse_knobs

    trace = Trace(addr=np.array([DATA], np.uint64), op=np.array([Op.LOAD], np.uint8),
                  tid=np.ones(1, np.uint32))
    sc = Scenario(trace, vmas=VMAS, replacement="twolist", workingset=True)
    with pytest.raises(ScenarioError, match=r"workingset=True: specified in docs/model.md"):
        refuse_knobs(sc, sc.resolved_vmas(), runs=("fault_model",))
    plain, said = runnable(sc, runs=("fault_model",))
    assert plain.workingset is False and said == [
        "twolist's protection of the working set (workingset=False)"]
    # the other replacements have no active list: nothing to refuse
    refuse_knobs(sc.replace(replacement="lru"), sc.resolved_vmas(), runs=())


def test_refault_distances_and_the_active_list_count_pages_not_folios():
    # Two-page folios, eight frames (four folios).  Letters are folios: A = pages 0-1, B =
    # 2-3, ... (each access reads its folio's first page).  A A: active (age 2 pages); B B:
    # active (age 4).  C D inactive: full.  E evicts C (shadow 4, age 6).  C evicts D (age
    # 8): distance 8 - 4 = 4 pages, the active list holds 4 pages (two folios): C is active.
    # (The aging's inactive * ratio < active counts folios: 2 < 2 is false.)
    sim, r = run("AABBCDEC", 8, folio_pages=2)
    assert names(sim.active, 2) == "ABC" and names(sim.lru_order, 2) == "E"
    assert sim.nonresident_age == 10
    assert evicted(r, folio_pages=2) == "CD"
