"""twolist's workingset protection (docs/model.md 8.1) in the engine, on the hand-checked cases.

The scenarios and the expected evictions are those of tests/test_workingset_reference.py,
where each is worked out from section 8.1's rules; here the engine must evict the same
folios in the same order, and agree with the reference record for record, in the page fault
model (the kernel model's twolist reads young bits: section 8.2, tests/test_young_bits.py).  (The random scenarios of tests/test_engine_vs_reference.py draw workingset too.)
"""
from __future__ import annotations

import numpy as np
import pytest

from naive_engine import NaiveSimulator, canonical, first_difference
from test_workingset_reference import COSTS, VMAS, addr, evicted
from vmlab.engine import codes as C
from vmlab.engine import fast_path_eligibility, run
from vmlab.engine.fastpath import knob_row
from vmlab.model import PRESETS, Adversary, Scenario
from vmlab.trace import Op, Trace

# (trace, frames, folio pages, evictions with workingset, evictions without)
CASES = [
    ("AABBCDEC", 4, 1, "CD", "CD"),           # C's refault joins the active list
    ("AABBCDEFC", 4, 1, "CDE", "CDE"),        # too far: C comes back inactive
    ("AABBCDECFG", 4, 1, "CDEA", "CDEC"),     # the activated refault outlives A
    ("XABC", 3, 1, "A", "X"),                 # referenced text activated at the scan
    ("XYABXC", 3, 1, "AB", "XYA"),            # ... and kept on the active list by its read
    ("XYABC", 3, 1, "AB", "XY"),
    ("AABBCCDAE", 4, 1, "D", "D"),            # data read while active is deactivated
    ("AABBCDEC", 8, 2, "CD", "CD"),           # distances count pages, not folios
]


def scenario(seq, memory_pages, folio_pages=1, workingset=True, **kw):
    trace = Trace(addr=np.array([addr(c, folio_pages) + 8 for c in seq], np.uint64),
                  op=np.full(len(seq), Op.LOAD, np.uint8),
                  tid=np.ones(len(seq), np.uint32),
                  gap_ns=np.full(len(seq), 10, np.uint64))
    return Scenario(trace, vmas=VMAS, costs=COSTS, memory_pages=memory_pages,
                    replacement="twolist", workingset=workingset, folio_pages=folio_pages, **kw)


def agree(sc):
    """The engine's result, checked against the reference's record for record."""
    e = run(sc, "nopage")
    ref = NaiveSimulator(sc, "nopage").run()
    diff = first_difference(canonical(e), canonical(ref))
    assert diff is None, diff
    return e


@pytest.mark.parametrize("fault_model", ["page"])
@pytest.mark.parametrize("seq,frames,folio,with_ws,without", CASES)
def test_the_engine_evicts_what_section_8_1_says(seq, frames, folio, with_ws, without,
                                                 fault_model):
    # (the kernel fault model reads the PTEs' young bits instead of the trace's marks:
    # section 8.2, its hand-checked cases in tests/test_young_bits.py)
    e = agree(scenario(seq, frames, folio, fault_model=fault_model))
    assert evicted(e, folio) == with_ws
    e = agree(scenario(seq, frames, folio, workingset=False, fault_model=fault_model))
    assert evicted(e, folio) == without


def test_the_adversary_clears_the_shadows_of_its_range():
    # AABBCDECFG evicts CDEA: C's refault is activated by its shadow.  One adversary call
    # while E's read is in flight (every other page mapped: it evicts nothing) clears C's
    # shadow: C comes back inactive and is evicted again, as without workingset.
    pre = run(scenario("AABBCDE", 4), "nopage")
    adv = Adversary(kind="times", times_ns=(int(pre.faults["end_ns"][-1]) - 1,), vma=0)
    e = agree(scenario("AABBCDECFG", 4, adversary=adv))
    assert e.counters["n_adversary_evictions"] == 0
    assert evicted(e) == "CDEC"


def test_a_run_with_workingset_keeps_file_faults_off_the_fast_path():
    knobs = knob_row(PRESETS["nopage"])
    assert fast_path_eligibility(C.B_FILE, knobs, 1)[0] == C.FP_FILE
    assert fast_path_eligibility(C.B_FILE, knobs, 1, workingset=True)[0] == C.FP_GENERAL
    assert fast_path_eligibility(C.B_ANON, knobs, 1, workingset=True)[0] == C.FP_NO_WAIT
    # the records are those of the event loop's every step
    sc = scenario("XYABXCAXDBYE" * 3, 3)
    on, off = run(sc, "nopage"), run(sc, "nopage", fast_path=False)
    assert first_difference(canonical(on), canonical(off)) is None
    assert on.counters["n_evictions"] > 0


def test_other_replacements_ignore_the_knob():
    for repl in ("lru", "fifo", "clock"):
        a = agree(scenario("XABCAXBC", 3).replace(replacement=repl))
        b = run(scenario("XABCAXBC", 3, workingset=False).replace(replacement=repl), "nopage")
        assert first_difference(canonical(a), canonical(b)) is None
