"""twolist's young bits in the kernel fault model (docs/model.md 8.2), by hand.

One thread, loads only, one-page folios, three or four frames, fault-around off: every
expected eviction is worked out in the comments from section 8.2's rules, checked on the
reference simulator and then on the engine, which must agree with it record for record.  A
letter is a page of a data VMA (``prot="r"``), ``X`` and ``Y`` pages of a text VMA
(``prot="rx"``), ``a`` the data file's first page through a second VMA mapping the same
file, ``S``/``T``/``U`` pages 0-2 of a third file read with readahead.
"""
from __future__ import annotations

import numpy as np
import pytest

from naive_engine import NaiveSimulator, canonical, first_difference
from vmlab.engine import run as engine_run
from vmlab.model import Costs, Fixed, Scenario, Vma
from vmlab.trace import Op, Trace

PAGE = 4096
DATA = 0x400 * PAGE
DATA2 = 0x600 * PAGE
TEXT = 0x800 * PAGE
SEQ = 0xa00 * PAGE
COSTS = Costs(io_ns=Fixed(70_000))
# (with ra_pages, only the last VMA reads ahead: madvise random on the others)
VMAS = (Vma(DATA, DATA + 16 * PAGE, "file", prot="r", file="data", madvise="random"),
        Vma(TEXT, TEXT + 16 * PAGE, "file", prot="rx", file="text", madvise="random"),
        Vma(DATA2, DATA2 + 16 * PAGE, "file", prot="r", file="data", madvise="random"),
        Vma(SEQ, SEQ + 16 * PAGE, "file", prot="r", file="seq", madvise="sequential"))
# (the VMAs' files in the order the scenario's file table numbers them)
FILES = {"data": "ABCDEFGH", "text": "XY", "seq": "STU"}


def addr(ch):
    if ch in "XY":
        return TEXT + "XY".index(ch) * PAGE
    if ch == "a":
        return DATA2
    if ch in "STU":
        return SEQ + "STU".index(ch) * PAGE
    return DATA + "ABCDEFGH".index(ch) * PAGE


def scenario(seq, memory_pages, fault_model="kernel", replacement="twolist", **kw):
    trace = Trace(addr=np.array([addr(c) + 8 for c in seq], np.uint64),
                  op=np.full(len(seq), Op.LOAD, np.uint8),
                  tid=np.ones(len(seq), np.uint32),
                  gap_ns=np.full(len(seq), 10, np.uint64))
    return Scenario(trace, vmas=VMAS, costs=COSTS, memory_pages=memory_pages,
                    replacement=replacement, fault_model=fault_model, **kw)


def reference(sc):
    sim = NaiveSimulator(sc, "nopage")
    return sim, sim.run()


def names(sim, keys):
    files = [f[0] for f in sim.files]
    return "".join(FILES[files[f]][k] for f, k in keys)


def evicted(sim, result):
    files = [f[0] for f in sim.files]
    return "".join(FILES[files[f]][p]
                   for f, p in zip(result.evictions["file"], result.evictions["file_page"]))


# (trace, frames, knobs, evictions, active list after, inactive list after (oldest first))
CASES = {
    # A B C fault in, each PTE young.  D: the scan keeps A, B, C (young: marked, to the
    # newest end, bits cleared) and meets A again, old: A is the victim.
    "first_scan_learns": ("ABCD", 3, {}, "A", "", "BCD"),
    # As above, then B is read (young again) before E: the scan finds B young and marked
    # (PG_referenced from the first scan): activated; C old: evicted.
    "second_reference_activates": ("ABCDBE", 3, {}, "AC", "B", "DE"),
    # A read again before D changes nothing (its PTE is young already): A still goes first.
    "a_hit_on_a_young_pte_is_no_second_reference": ("ABCAD", 3, {}, "A", "", "BCD"),
    # X (text) is activated by its first young PTE; A and B are kept, A met again is evicted.
    "text_activated_on_its_first_young_pte": ("XABC", 3, {}, "A", "X", "BC"),
    # After XYAB: active X Y (oldest first), inactive B.  X read (young).  C: the inactive
    # list is low (1 < 2): X, young text, goes round the active list (bit cleared); Y, old
    # since the scan, is deactivated, marked; the scan keeps B (young) and evicts Y (old).
    "young_text_goes_round_the_active_list": ("XYABXC", 3, {}, "AY", "X", "BC"),
    # A through two VMAs (the data file's page 0 mapped twice): two young mappings
    # activate it at the first scan (referenced_ptes > 1); B is kept, C kept, B evicted.
    "two_young_mappings_activate": ("AaBCD", 3, {}, "B", "A", "CD"),
    # 8.3, the TLB: as second_reference_activates, but B's read hits its TLB entry (loaded
    # by its fault): no young bit.  E's scan finds B old: the victim (C, D stay).
    "a_tlb_hit_sets_no_young_bit": ("ABCDBE", 3, {"tlb_young": True}, "AB", "", "CDE"),
    # 8.3, aging at every reclaim: X is activated by C's scan (A evicted); at D's reclaim
    # the whole active list is aged: X, old since that scan, is deactivated (newest end of
    # the inactive list, its mark kept); the scan then evicts B.  Without it the inactive
    # list (C) is not low and X stays active.
    "a_reclaim_ages_the_whole_active_list": ("XABCD", 3, {"reclaim_ages_active": True}, "AB",
                                             "", "CXD"),
    "the_active_list_aged_only_while_low": ("XABCD", 3, {}, "AB", "X", "CD"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_reference_follows_section_8_2(case):
    seq, frames, kw, ev, active, inactive = CASES[case]
    sim, r = reference(scenario(seq, frames, **kw))
    assert evicted(sim, r) == ev
    assert names(sim, sim.active) == active and names(sim, sim.lru_order) == inactive


def test_a_readahead_allocation_takes_an_old_mapped_folio_but_no_young_one():
    # Four frames, readahead windows of 2 * 2 pages on the sequential VMA only.  A B C D
    # fill them; E's scan keeps all four (marked, bits cleared) and evicts A, met again:
    # inactive B C D (old) and E (young).  S misses: its own folio's allocation evicts B.
    # The window [0, 4) reads on, each allocation one pass: T's evicts C and U's D, old
    # although mapped (unmapping them); page 3's finds E young (kept, to the newest end,
    # its bit cleared) and S, T, U in flight: no victim in one pass, the window ends.
    sc = scenario("ABCDES", 4, ra_pages=2)
    sim, r = reference(sc)
    assert evicted(sim, r) == "ABCD"
    assert r.counters["n_readahead_pages"] == 2
    assert names(sim, sim.lru_order) == "STUE"
    e = engine_run(sc, "nopage")
    assert first_difference(canonical(e), canonical(r)) is None
    # The page model's twolist keeps section 11.5's shortcut (a mapped folio is young): the
    # readahead evicts none of C, D, E and reads nothing beyond S.
    sim, r = reference(scenario("ABCDES", 4, ra_pages=2, fault_model="page"))
    assert evicted(sim, r) == "AB" and r.counters["n_readahead_pages"] == 0


def test_other_replacements_and_the_page_model_are_unchanged():
    # LRU in the kernel model, and twolist in the page model, read no young bits: a hit is
    # a reference as in section 8 (twolist: A read twice is activated, B goes).
    sim, r = reference(scenario("ABCAD", 3, fault_model="page"))
    assert evicted(sim, r) == "B" and names(sim, sim.active) == "A"
    sim, r = reference(scenario("ABCAD", 3, replacement="lru"))
    assert evicted(sim, r) == "B"


def test_hot_text_in_the_tlb_is_reclaimed_and_faulted_again():
    # X read between every data page: with every hit young (8.2) X stays active and is
    # never evicted; with the TLB and aging at every reclaim (8.3, the kernel's defaults)
    # its young bit is set only when its fault loads the TLB, a reclaim deactivates it and
    # the next evicts it, and X faults again: the kernel's hot-text major faults
    seq = "XAXBXCXDXEXFXGXH"
    sim, r = reference(scenario(seq, 3))
    assert "X" not in evicted(sim, r)
    sc = scenario(seq, 3, tlb_young=True, reclaim_ages_active=True)
    sim, r = reference(sc)
    assert evicted(sim, r).count("X") >= 2
    e = engine_run(sc, "nopage")
    assert first_difference(canonical(e), canonical(r)) is None


def test_refault_activation_still_applies_with_young_bits():
    # workingset (8.1) on top: A B C D evicts A (shadow 0, age 1).  A refaults at once:
    # distance 1 > 0 pages active: inactive.  Its allocation evicts B (old, marked).
    sim, r = reference(scenario("ABCDA", 3, workingset=True))
    assert evicted(sim, r) == "AB" and names(sim, sim.active) == ""
    e = engine_run(scenario("ABCDA", 3, workingset=True), "nopage")
    assert first_difference(canonical(e), canonical(r)) is None


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_engine_agrees_on_the_hand_checked_cases(case):
    seq, frames, kw, ev, _a, _i = CASES[case]
    sc = scenario(seq, frames, **kw)
    sim, ref = reference(sc)
    e = engine_run(sc, "nopage")
    diff = first_difference(canonical(e), canonical(ref))
    assert diff is None, diff
    assert evicted(sim, e) == ev
