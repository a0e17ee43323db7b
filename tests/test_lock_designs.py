"""The lock designs after 2010 as policy knobs and presets (docs/model.md section 15.1)."""
import pytest

from vmlab import Costs, Scenario, ScenarioError, Trace, Vma, simulate
from vmlab.model import LADDER_ORDER, LOCK_PRESETS, PRESETS, Policy, get_policy


def test_presets_have_the_knobs_of_section_11():
    pv = get_policy("per_vma_lock")
    assert (pv.fault_lock, pv.retry_lock, pv.drop_lock_attempts, pv.max_retries,
            pv.check_signal_before_retry) == ("vma", "mmap", 1, -1, True)
    # per_vma_lock is the 5.7 retry rule behind a VMA-locked first attempt
    v57 = get_policy("fault_retry_v57")
    assert pv.replace(name=v57.name, fault_lock="mmap", anon_vma_fallback=False) == v57
    assert get_policy("per_vma_retry_vma") == pv.replace(name="per_vma_retry_vma", retry_lock="vma")
    nr = get_policy("per_vma_no_retry")
    assert (nr.fault_lock, nr.drop_lock_attempts, nr.max_retries) == ("vma", 0, 0)
    spf = get_policy("spf")
    assert (spf.fault_lock, spf.spf_scope, spf.retry_lock) == ("speculative", "vma", "mmap")
    assert all(p.vma_lock_backings == ("file", "anon") for p in LOCK_PRESETS.values())
    assert LADDER_ORDER[0] == "nopage" and set(LOCK_PRESETS) <= set(LADDER_ORDER)


def test_single_lock_presets_keep_their_meaning():
    assert not any(p.lock_design for p in PRESETS.values())
    assert all(p.lock_design for p in LOCK_PRESETS.values())
    completed = get_policy("fault_retry").replace(name="completed", fault_completed=True)
    assert completed.lock_design


def test_backings_are_canonical():
    a = Policy("a", fault_lock="vma", vma_lock_backings=["anon", "file", "anon"])
    assert a.vma_lock_backings == ("file", "anon")
    assert a == Policy("a", fault_lock="vma")


@pytest.mark.parametrize("knobs, words", [
    (dict(fault_lock="rcu"), "fault_lock must be one of"),
    (dict(fault_lock=1), "fault_lock must be one of"),
    (dict(retry_lock="vma"), "needs fault_lock='vma'"),
    (dict(fault_lock="speculative", retry_lock="vma"), "needs fault_lock='vma'"),
    (dict(spf_scope="mm"), "speculative faults only"),
    (dict(spf_scope="process", fault_lock="speculative"), "spf_scope must be one of"),
    (dict(spf_count="change"), "spf_count applies to the VMA's sequence count"),
    (dict(spf_count="change", fault_lock="vma"), "spf_count applies"),
    (dict(spf_count="change", fault_lock="speculative", spf_scope="mm"), "spf_count applies"),
    (dict(spf_count="split", fault_lock="speculative"), "spf_count must be one of"),
    (dict(vma_lock_backings="file"), "must be a tuple of backings"),
    (dict(vma_lock_backings=("disk",)), "unknown backing 'disk'"),
    (dict(fault_completed=True), "drop_lock_attempts=0 never drops it"),
    (dict(fault_completed=1, drop_lock_attempts=1), "must be True or False"),
    (dict(eager=True, needs_struct_page=False, fault_lock="vma"), "eager policy never faults"),
])
def test_bad_lock_knobs_are_refused_in_one_line(knobs, words):
    with pytest.raises(ScenarioError, match=words) as e:
        Policy("p", **knobs)
    assert "\n" not in str(e.value)


def test_unknown_preset_lists_the_ladder():
    with pytest.raises(ScenarioError, match="per_vma_no_retry"):
        get_policy("per_vma")


def _scenario(**costs):
    tr = Trace([0x1000, 0x2000], tid=[0, 0])
    return Scenario(tr, vmas=[Vma(0x1000, 0x3000, backing="anon")], costs=Costs(**costs))


@pytest.mark.parametrize("name", sorted(LOCK_PRESETS))
def test_the_engine_runs_every_lock_preset(name):
    _scenario().validate(name)
    assert simulate(_scenario(), name).summary["n_faults"] == 2


@pytest.mark.parametrize("cost", ["vma_lookup_ns", "mmap_lock_line_ns", "vma_lock_line_ns"])
def test_lock_costs_default_to_zero(cost):
    assert getattr(Costs(), cost) == 0
    assert simulate(_scenario(**{cost: 5}), "per_vma_lock").summary["n_faults"] == 2


# -- writers name their range (docs/model.md section 15.2) --------------------------------
import numpy as np  # noqa: E402

from vmlab.trace import open_trace, synth  # noqa: E402
from vmlab.trace.model import Op, lock_w_ranges  # noqa: E402
from vmlab.trace.native import TraceWriter  # noqa: E402


def test_lock_w_ranges_size_zero_is_the_whole_address_space():
    t = Trace([0x1000, 0x6000, 0x9000], op=[Op.LOAD, Op.LOCK_W, Op.LOCK_W], size=[8, 0x2000, 0])
    idx, start, end = lock_w_ranges(t)
    assert idx.tolist() == [1, 2]
    assert start.tolist() == [0x6000, 0] and end.tolist() == [0x8000, 2**64 - 1]


def test_a_range_past_the_address_space_is_refused():
    t = Trace(np.array([2**64 - 4096], np.uint64), op=[Op.LOCK_W], size=[8192])
    with pytest.raises(Exception, match="record 0: LOCK_W range .* runs past the end"):
        lock_w_ranges(t)


def test_wide_ranges_widen_the_size_column_never_wrap(tmp_path):
    t = Trace([0x1000, 0x7F0000000000], op=[Op.LOAD, Op.LOCK_W], size=[8, 2**40])
    assert t.size.tolist() == [8, 2**40]
    t.save(tmp_path / "a.vmt")
    assert open_trace(tmp_path / "a.vmt", verify=True).equals(t)
    # the streaming writer widens a column whose values outgrow it after earlier chunks
    with TraceWriter(tmp_path / "b.vmt") as w:
        w.append(addr=np.arange(3, dtype=np.uint64), size=np.full(3, 8, np.uint32))
        w.append(addr=np.array([5], np.uint64), op=np.array([Op.LOCK_W], np.uint8),
                 size=np.array([2**35], np.uint64))
    assert open_trace(tmp_path / "b.vmt", verify=True).size.tolist() == [8, 8, 8, 2**35]


def test_generators_name_the_loops_range():
    t = synth.random_reads_with_mmap_loop(n_reads=10, pages=64, n_lock_ops=20, seed=1)
    idx, start, end = lock_w_ranges(t)
    assert len(idx) == 20 and (start == synth.DEFAULT_LOCK_ADDR).all()
    assert (end - start == 4096).all()
    # the loop's range touches no page the reads touch
    reads = np.asarray(t.addr)[np.asarray(t.op) == Op.LOAD]
    assert ((reads < start.min()) | (reads >= end.max())).all()
    whole = synth.random_reads_with_mmap_loop(n_reads=1, pages=4, n_lock_ops=3, seed=1, lock_size=0)
    assert (lock_w_ranges(whole)[2] == 2**64 - 1).all()
