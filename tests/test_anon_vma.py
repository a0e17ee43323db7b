"""A new VMA's anon_vma (docs/model.md 15.8, ``anon_vma_fallback``): the first VMA-locked or
speculative fault that needs it falls back to mmap_lock, which makes it."""
import numpy as np
import pytest

from naive_engine import canonical, first_difference
from naive_engine import simulate as reference
from vmlab import Scenario, ScenarioError, Trace, Vma, simulate
from vmlab.model import get_policy, merge_vmas
from vmlab.studies import ladder
from vmlab.trace import Op

PAGE = 4096
BASE = 0x7F00_0000_0000


def run_both(sc, policy):
    r = simulate(sc, policy)
    assert first_difference(canonical(r.raw), canonical(reference(sc, policy))) is None
    return r


def counts(r):
    return tuple(int(r.summary[k]) for k in ("n_mmap_lock_read", "n_vma_lock_read",
                                             "n_vma_lock_fallbacks"))


def one_thread(pages, ops, vma, **kw):
    tr = Trace(np.array([vma.start + p * PAGE for p in pages], np.uint64), op=ops,
               gap_ns=[1000] * len(pages))
    return Scenario(tr, vmas=(vma,), **kw)


@pytest.mark.parametrize("policy", ["per_vma_lock", "per_vma_retry_vma", "per_vma_no_retry"])
def test_the_first_fault_of_a_new_anonymous_vma_falls_back_once(policy):
    fresh = Vma(BASE, BASE + 8 * PAGE, "anon")
    sc = one_thread([0, 1, 2, 3], [Op.STORE] * 4, fresh)
    assert counts(run_both(sc, policy)) == (1, 3, 1)
    # a VMA with its anon_vma from the start, or the knob off: every fault under its VMA lock
    had = Vma(BASE, BASE + 8 * PAGE, "anon", anon_vma=True)
    assert counts(run_both(one_thread([0, 1, 2, 3], [Op.STORE] * 4, had), policy)) == (0, 4, 0)
    off = get_policy(policy).replace(name="off", anon_vma_fallback=False)
    assert counts(run_both(sc, off)) == (0, 4, 0)


def test_kernel_model_only_the_faults_that_need_it():
    # reads map the zero page (no anon_vma); the first write copies it and falls back; a
    # private file's write copies the page (it needs one too); a shared mapping never does
    kw = dict(fault_model="kernel")
    anon = Vma(BASE, BASE + 8 * PAGE, "anon")
    sc = one_thread([0, 1, 0, 2], [Op.LOAD, Op.LOAD, Op.STORE, Op.STORE], anon, **kw)
    assert counts(run_both(sc, "per_vma_lock")) == (1, 3, 1)
    priv = Vma(BASE, BASE + 8 * PAGE, "file", prot="rw")
    sc = one_thread([0, 1, 2], [Op.LOAD, Op.STORE, Op.STORE], priv, **kw)
    r = run_both(sc, "per_vma_lock")
    assert int(r.summary["n_vma_lock_fallbacks"]) == 1
    shared = Vma(BASE, BASE + 8 * PAGE, "anon", private=False)
    sc = one_thread([0, 1], [Op.STORE, Op.STORE], shared, **kw)
    assert int(run_both(sc, "per_vma_lock").summary["n_vma_lock_fallbacks"]) == 0


def test_threads_that_meet_a_new_vma_together_all_fall_back():
    vma = Vma(BASE, BASE + 8 * PAGE, "anon")
    tr = Trace(np.array([BASE, BASE + PAGE, BASE + 2 * PAGE], np.uint64), op=[Op.STORE] * 3,
               tid=[0, 1, 2])
    r = run_both(Scenario(tr, vmas=(vma,)), "per_vma_lock")
    assert counts(r) == (3, 0, 3)


def test_speculative_faults_fall_back_without_an_abort():
    sc = one_thread([0, 1], [Op.STORE] * 2, Vma(BASE, BASE + 8 * PAGE, "anon"))
    r = run_both(sc, "spf")
    assert int(r.summary["n_vma_lock_fallbacks"]) == 1 and int(r.summary["n_spf_aborts"]) == 0
    assert int(r.summary["n_mmap_lock_read"]) == 1


def test_this_hosts_loops():
    # measured (docs/model.md 15.8): 100 chunks of 512 KiB, each written once a page; a chunk
    # that merges into its neighbour (mmap, touch, munmap: ebizzy's loop) makes no fault take
    # mmap_lock; chunks kept apart by a PROT_NONE page did in 89 of 100 (the other 11 met
    # a neighbour they merged with, which a table of separate VMAs does not show)
    pages = 128
    vmas = tuple(Vma(BASE + j * (pages + 1) * PAGE, BASE + (j * (pages + 1) + pages) * PAGE,
                     "anon", name=f"chunk{j}") for j in range(100))
    addr = np.concatenate([v.start + np.arange(pages, dtype=np.uint64) * PAGE for v in vmas])
    sc = Scenario(Trace(addr.astype(np.uint64), op=[Op.STORE] * len(addr)), vmas=vmas)
    assert int(simulate(sc, "per_vma_lock").summary["n_mmap_lock_read"]) == 100
    loop = ladder.ebizzy_scenario(1, n_iters=100)
    r = simulate(loop, "per_vma_lock")
    assert int(r.summary["n_mmap_lock_read"]) == 0 and int(r.summary["n_faults"]) == 100 * 128


def test_a_merged_vma_has_an_anon_vma_if_one_of_its_parts_had():
    a = Vma(BASE, BASE + PAGE, "anon")
    b = Vma(BASE + PAGE, BASE + 2 * PAGE, "anon", anon_vma=True)
    c = Vma(BASE + 4 * PAGE, BASE + 5 * PAGE, "anon")
    merged = merge_vmas([a, b, c])
    assert [v.anon_vma for v in merged] == [True, False]


def test_bad_values_are_refused_in_one_line():
    with pytest.raises(ScenarioError, match="anon_vma_fallback applies to VMA-locked") as e:
        get_policy("fault_retry_v57").replace(anon_vma_fallback=True)
    assert "\n" not in str(e.value)
    with pytest.raises(ScenarioError, match="anon_vma must be True"):
        Vma(BASE, BASE + PAGE, "anon", anon_vma="yes")
    assert all(get_policy(p).anon_vma_fallback
               for p in ("per_vma_lock", "per_vma_retry_vma", "per_vma_no_retry", "spf"))
