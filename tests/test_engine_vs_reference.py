"""The numba engine must agree with the reference simulator record for record.

For hypothesis-generated small scenarios (tests/scenario_strategies.py) and policies (every
preset and random knob rows), ``vmlab.engine.run(scenario, policy)`` and
``naive_engine.simulate(scenario, policy)`` must give equal canonical records: faults,
signals, mmap_sem requests, threads and counters.  A failure prints the scenario (trace
included) and the first differing row.

Run it alone with::

    /work/venv-dev/bin/python -m pytest -q tests/test_engine_vs_reference.py

``VMLAB_AGREEMENT_EXAMPLES=2000`` runs more examples; ``-k hand`` runs only the hand-built
scenarios of tests/test_naive_engine.py.  Skipped while ``vmlab.engine`` has no ``run``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

engine = pytest.importorskip("vmlab.engine", reason="vmlab.engine is not importable yet")
if not hasattr(engine, "run"):
    pytest.skip("vmlab.engine has no run() yet: nothing to compare with the reference",
                allow_module_level=True)

import budgeted  # noqa: E402
from naive_engine import canonical, first_difference  # noqa: E402
from scenario_strategies import (cases, granular_cases, kernel_cases, lock_cases, on_a_grid,  # noqa: E402
                                 read_cases, unmap_cases, young_cases)
from vmlab.model import (Adversary, Costs, Fixed, Scenario, SignalSchedule,  # noqa: E402
                         Uniform, Vma)
from vmlab.trace import Call, Op, Trace  # noqa: E402

N_EXAMPLES = int(os.environ.get("VMLAB_AGREEMENT_EXAMPLES", "150"))
#: the settings of every random agreement test below
agreement = settings(max_examples=N_EXAMPLES, deadline=None,
                     phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.filter_too_much])


def describe(scenario, policy):
    """Everything needed to rebuild a failing case by hand."""
    t = scenario.trace
    recs = []
    for i in range(len(t)):
        op = Op(int(t.op[i]))
        gap = f" +{int(t.gap_ns[i])}" if t.has_gap else ""
        call = f" {Call(int(t.calls()[i])).name.lower()}" if t.has_call else ""
        what = (f"LOCK_W {int(t.addr[i]):#x}+{int(t.size[i])}{call}" if op == Op.LOCK_W else f"LOCK_R {int(t.size[i])} ns" if op == Op.LOCK_R
                else f"{op.name} {int(t.addr[i]):#x}")
        recs.append(f"  [{i}] tid {int(t.tid[i])} asid {int(t.asid[i])} {what}{gap}")
    lines = [f"policy: {policy!r}", "vmas:"]
    lines += [f"  {v!r}" for v in scenario.resolved_vmas()]
    lines += [f"costs: {scenario.costs!r}",
              f"memory_pages={scenario.memory_pages} replacement={scenario.replacement} "
              f"fault_around_pages={scenario.fault_around_pages} horizon_ns={scenario.horizon_ns} "
              f"seed={scenario.seed} fault_model={scenario.fault_model} "
              f"folio_pages={scenario.folio_pages} memory_bytes={scenario.memory_bytes} "
              f"ra_pages={scenario.ra_pages} files={scenario.files!r}",
              f"signals: {scenario.signals!r}", f"adversary: {scenario.adversary!r}",
              f"preload: {None if scenario.preload is None else [hex(int(a)) for a in scenario.preload]}",
              f"trace ({len(t)} records):"] + recs
    return "\n".join(lines)


def check_agreement(scenario, policy):
    """The engine's records against the reference's, both under the event budget of
    tests/budgeted.py: a case that reaches it in either is no test of agreement (the two
    count their events apart and stop at different points, docs/model.md 9), hypothesis
    rejects it and a hand-written one fails."""
    ref_run = budgeted.reference(scenario, policy)
    got_run = budgeted.engine(scenario, policy)
    reference = canonical(ref_run)
    got = canonical(got_run)
    diff = first_difference(got, reference)
    if diff is not None:
        dump = os.environ.get("VMLAB_AGREEMENT_DUMP")
        if dump:  # keep the failing case for debugging
            import pickle

            with open(dump, "wb") as f:
                pickle.dump((scenario, policy), f)
        pytest.fail(f"engine and reference disagree\n{diff}\n\n{describe(scenario, policy)}",
                    pytrace=False)


def test_engine_matches_reference_with_a_preload_larger_than_the_first_notes():
    """A preload of 300 pages with an adversary: each preloaded page is a note for the
    adversary before the first event (the notes' first table held 64; the first pass's
    check came too late for the preload's notes)."""
    rows = [(1, i % 300, 100) for i in range(400)]
    sc = Scenario(_trace(rows), vmas=[Vma(BASE, BASE + 300 * PAGE, "file")],
                  costs=Costs(io_ns=Fixed(70_000)), memory_pages=320,
                  preload=[BASE + i * PAGE for i in range(300)],
                  adversary=Adversary("periodic", period_ns=50_000), horizon_ns=4_000_000)
    check_agreement(sc, "nopage")
    assert engine.run(sc, "nopage").counters["n_adversary_evictions"] > 64


def test_engine_matches_reference_when_an_adversary_drains_every_threads_batch():
    """docs/model.md 12.1: an adversary call drains every thread's LRU-add batch, in thread
    order.  The reference drained them in the order the batches had been made since the last
    drain, so a later reclaim chose another victim (found by hypothesis on a fresh clone)."""
    from vmlab.model import get_policy

    pol = get_policy("fault_retry_unbounded")
    vmas = [Vma(0x3FA000, 0x404000, "file", policy=pol, prot="rx", private=True, file="B",
                offset=20480, anon_vma=True),
            Vma(0x404000, 0x409000, "anon", policy=pol, prot="rx", private=True, anon_vma=True)]
    rows = [(86, 0x3FE001), (112, 0x406B10), (112, 0x3FB001), (169, 0x3FA001), (169, 0x3FD001),
            (169, 0x3FC012)]
    tr = Trace(addr=np.array([a for _, a in rows], np.uint64),
               op=np.full(len(rows), Op.LOAD, np.uint8),
               tid=np.array([t for t, _ in rows], np.uint32), size=np.full(len(rows), 8))
    costs = Costs(access_ns=1, fault_ns=431, zero_fill_ns=3, pagecache_hit_ns=4, struct_page_ns=1,
                  driver_ns=4, pte_ns=0, remap_fixed_ns=1, signal_ns=8, mmap_cs_ns=1,
                  wakeup_ns=41, copy_page_ns=0, io_ns=Fixed(3), wait_ns=Fixed(0))
    sc = Scenario(tr, vmas=vmas, costs=costs, replacement="twolist", fault_around_pages=2,
                  fault_model="kernel", memory_bytes=86016, lru_add_batch=2,
                  adversary=Adversary("poisson", rate_hz=5_000_000, vma=0),
                  horizon_ns=2_000_000)
    check_agreement(sc, pol)
    assert engine.run(sc, pol).counters["n_adversary_evictions"] > 10


@agreement
@given(cases())
def test_engine_matches_reference(case):
    check_agreement(*case)


# -- a few fixed scenarios first: quicker to read when they fail ----------------------------

PAGE = 4096
BASE = 0x400 * PAGE


def _trace(rows):
    return Trace(addr=np.array([0 if a is None else BASE + a * PAGE for _, a, _ in rows], np.uint64),
                 op=np.array([Op.LOCK_W if a is None else Op.LOAD for _, a, _ in rows], np.uint8),
                 tid=np.array([t for t, _, _ in rows], np.uint32),
                 gap_ns=np.array([g for _, _, g in rows], np.uint64))


def _hand_cases():
    io = Costs(io_ns=Fixed(70_000), wait_ns=Uniform(0, 20_000))
    file_vma = [Vma(BASE, BASE + 16 * PAGE, "file")]
    mixed = [Vma(BASE, BASE + 8 * PAGE, "file"), Vma(BASE + 8 * PAGE, BASE + 12 * PAGE, "context"),
             Vma(BASE + 12 * PAGE, BASE + 16 * PAGE, "device", policy="remap_pfn_range")]
    rows = [(1, i % 13, 100) for i in range(20)] + [(2, None, 5000)] * 5 + [(3, 9, 0), (3, 14, 10)]
    sig = SignalSchedule("periodic", period_ns=7000, threads=(1, 3))
    out = []
    for pol in ("nopage", "nopage_refault", "fault_retry", "fault_retry_unbounded",
                "fault_retry_v57"):
        out.append((pol + "-file", Scenario(_trace(rows[:20] + rows[20:25]), vmas=file_vma,
                                            costs=io, memory_pages=7, replacement="clock"), pol))
        out.append((pol + "-mixed", Scenario(_trace(rows), vmas=mixed, costs=io, signals=sig,
                                             memory_pages=7, fault_around_pages=4,
                                             horizon_ns=500_000), pol))
    adv = Adversary("periodic", period_ns=1000)
    out.append(("livelock", Scenario(_trace([(1, 0, 0)]), vmas=file_vma, adversary=adv,
                                     costs=io.replace(io_ns=Fixed(10_000)), horizon_ns=100_000),
                "fault_retry_unbounded"))
    return out


def _readahead_cases():
    """Two threads reading one file in order under readahead, so that lookups meet marks
    (docs/model.md 11.5, ``readahead_drops_lock``), beside a writer, with signals and the
    line costs of 15.1."""
    from vmlab.model import get_policy
    vmas = [Vma(BASE, BASE + 48 * PAGE, "file", name="f", prot="r", private=False)]
    rows = [(1 + i % 2, i // 2 + 24 * (i % 2), 3000) for i in range(48)] + [(3, None, 9000)] * 4
    sig = SignalSchedule("periodic", period_ns=11_000, threads=(1,))
    lines = Costs(io_ns=Fixed(20_000), mmap_lock_line_ns=40, vma_lock_line_ns=30,
                  vma_lookup_ns=7)
    out = []
    for pol in ("fault_retry_v57", "per_vma_lock", "per_vma_retry_vma", "spf"):
        for around in (1, 4):
            out.append((f"{pol}-around{around}", Scenario(
                _trace(rows), vmas=vmas, costs=lines, signals=sig, fault_model="kernel",
                ra_pages=8, fault_around_pages=around, horizon_ns=2_000_000), pol))
    completed = get_policy("per_vma_lock").replace(name="completed", fault_completed=True)
    out.append(("completed", Scenario(_trace(rows), vmas=vmas, costs=lines,
                                      fault_model="kernel", ra_pages=8), completed))
    return out


@pytest.mark.parametrize("scenario, policy",
                         [pytest.param(sc, pol, id=name) for name, sc, pol in _readahead_cases()])
def test_engine_matches_reference_where_readahead_drops_the_lock(scenario, policy):
    check_agreement(scenario, policy)
    from vmlab.model import get_policy
    pol = get_policy(policy) if isinstance(policy, str) else policy
    if pol.fault_lock != "speculative":   # (its hits go on speculatively)
        off = pol.replace(readahead_drops_lock=False)
        assert engine.run(scenario, pol).faults["retries"].sum() > \
            engine.run(scenario, off).faults["retries"].sum()


@pytest.mark.nojit
@pytest.mark.parametrize("scenario, policy",
                         [pytest.param(sc, pol, id=name) for name, sc, pol in _hand_cases()])
def test_engine_matches_reference_on_hand_scenarios(scenario, policy):
    check_agreement(scenario, policy)


def test_engine_matches_reference_while_its_tables_grow():
    """More fault, lock and signal rows than the engine's first tables hold, signals piling
    up behind long uninterruptible waits, and the adversary's notes growing: the engine
    grows these between passes of its event loop, and must still agree record for record."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(700):
        for tid in (1, 2, 3):
            rows.append((tid, int(rng.integers(0, 300)), int(rng.integers(0, 400))))
    rows += [(4, None, 3000)] * 60
    sc = Scenario(_trace(rows), vmas=[Vma(BASE, BASE + 300 * PAGE, "file")],
                  costs=Costs(io_ns=Fixed(70_000)), memory_pages=40,
                  signals=SignalSchedule("periodic", period_ns=2_000, threads=(1,)),
                  adversary=Adversary("periodic", period_ns=5_000), horizon_ns=40_000_000)
    for policy in ("nopage", "fault_retry"):
        check_agreement(sc, policy)
    r = engine.run(sc, "nopage")
    assert len(r.faults["start_ns"]) > 1024 and len(r.locks["request_ns"]) > 1024
    assert len(r.signals["arrival_ns"]) > 256
    assert engine.run(sc, "fault_retry").counters["n_adversary_evictions"] > 64


@agreement
@given(kernel_cases())
def test_engine_matches_reference_under_the_kernel_fault_model(case):
    check_agreement(*case)


@agreement
@given(young_cases())
def test_engine_matches_reference_with_young_bits(case):
    """docs/model.md 8.2: twolist in the kernel fault model reads the PTEs' young bits."""
    check_agreement(*case)


@agreement
@given(granular_cases())
def test_engine_matches_reference_with_files_folios_readahead_and_memory_limits(case):
    """docs/model.md 11.3-12 in both fault models: shared files, folios, readahead,
    memory_bytes."""
    check_agreement(*case)


@agreement
@given(unmap_cases())
def test_engine_matches_reference_with_mappings_that_end(case):
    """docs/model.md 11.9: unmaps in the middle of the run, under reclaim and memory limits,
    with other threads faulting on the same pages."""
    check_agreement(*case)


@agreement
@given(read_cases())
def test_engine_matches_reference_with_reads(case):
    """docs/model.md 11.7: read() calls during the run bring folios into the page cache
    (charged, evicting, an OOM where nothing can go) and mark them accessed."""
    check_agreement(*case)


@agreement
@given(lock_cases())
def test_engine_matches_reference_with_lock_designs(case):
    """The lock designs after 2010 (docs/model.md section 15), also on VMAs whose policies
    override the run's: VMA locks, retries under either lock, speculative attempts,
    VM_FAULT_COMPLETED, writers that name their range and wait for a VMA's readers, and the
    costs of 15.1 (VMA lookup, lock-word lines)."""
    check_agreement(*case)


# -- signals at the instants where something else happens --------------------------------

def _instants(result):
    """Every instant at which a run's lock records and fault records say something happens."""
    out = set()
    for table, cols in ((result.locks, ("request_ns", "acquire_ns", "release_ns",
                                        "downgrade_ns")),
                        (result.faults, ("start_ns", "end_ns"))):
        for c in cols:
            out.update(int(x) for x in table[c] if x >= 0)
    return sorted(out)


@agreement
@given(st.one_of(lock_cases(), cases(), granular_cases(), read_cases(), unmap_cases(),
                 kernel_cases(), young_cases()), st.data())
def test_engine_matches_reference_with_signals_at_the_instants_of_other_events(case, data):
    """Signals sent, and (where a file is mapped) the adversary called, exactly when a lock
    is requested, granted or released or a fault starts or ends (the instants of an engine
    run of the case): section 2's order at equal times decides who goes first, and random
    arrival times almost never test it."""
    import dataclasses

    scenario, policy = case
    instants = _instants(budgeted.engine(scenario, policy))
    if not instants:
        return
    # (an instant twice: two signals at once)
    times = sorted(data.draw(st.lists(st.sampled_from(instants), min_size=1, max_size=6)))
    tids = sorted({int(t) for t in scenario.trace.tid})
    chosen = data.draw(st.lists(st.sampled_from(tids), min_size=1, unique=True))
    sig = SignalSchedule("times", times_ns=tuple(times), fatal=data.draw(st.booleans()),
                         threads=tuple(chosen))
    changes = {"signals": (sig,)}
    # (reads or unmaps beside an adversary are not run yet, docs/model.md 11.7, 11.9)
    if any(v.backing == "file" for v in scenario.resolved_vmas()) and not scenario.reads \
            and not scenario.unmaps \
            and data.draw(st.booleans()):
        calls = tuple(sorted(set(data.draw(st.lists(st.sampled_from(instants), min_size=1,
                                                     max_size=6)))))
        adv = scenario.adversary or Adversary("times", times_ns=calls)
        changes["adversary"] = dataclasses.replace(adv, kind="times", times_ns=calls,
                                                   rate_hz=0.0, period_ns=0)
    scenario = scenario.replace(**changes)
    scenario.validate(policy)
    check_agreement(scenario, policy)


@agreement
@given(on_a_grid(st.one_of(cases(), lock_cases(), granular_cases(), read_cases(),
                           unmap_cases(), kernel_cases(), young_cases())))
def test_engine_matches_reference_with_every_time_on_a_grid(case):
    """Every cost, gap and period a multiple of one unit: I/O completions, grants, releases,
    signals, adversary calls and thread steps fall on the same instants all the time."""
    check_agreement(*case)


def test_a_signal_aborting_a_wait_resumes_its_thread_after_a_lower_threads_release():
    """docs/model.md section 2: an abort by a signal is a thread step (kind 3) at the signal's
    arrival, so a lower thread's release at that same instant comes first, and the aborted
    fault's own release then finds no other holder.  (The engine once ran the aborted thread
    inside the signal's event: its release paid the line cost of a holder already gone.)"""
    vmas = [Vma(BASE, BASE + 4 * PAGE, "file", policy="nopage_refault")]
    costs = Costs(io_ns=Fixed(1_000_000), fault_ns=500, mmap_lock_line_ns=100)
    # thread 0 (tid 1): a reader of mmap_lock, not a fault, of 1,000 ns after 10 ns; thread 1
    # (tid 2): a file fault at 0 that holds mmap_lock over its I/O, interruptibly
    tr = Trace(addr=np.array([0, BASE], np.uint64), op=np.array([Op.LOCK_R, Op.LOAD], np.uint8),
               size=np.array([1000, 8], np.uint64), tid=np.array([1, 2], np.uint32),
               gap_ns=np.array([10, 0], np.uint64))
    # the reader: granted at 10 beside the fault (100 ns of line), holds to 1,110, and its
    # release, beside the fault again, takes effect at 1,210: the signal comes then
    sc = Scenario(tr, vmas=vmas, costs=costs, horizon_ns=3_000_000,
                  signals=SignalSchedule("times", times_ns=(1210,), threads=(2,)))
    check_agreement(sc, None)
    r = engine.run(sc)
    locks = r.locks
    got = sorted(zip(locks["thread"], locks["acquire_ns"], locks["release_ns"]))
    assert got[0] == (0, 10, 1210)
    # the fault's release at the abort: the reader is gone, so it costs nothing
    assert got[1] == (1, 0, 1210)
    assert list(r.signals["arrival_ns"]) == [1210] and list(r.signals["aborted_wait"]) == [1]


def test_two_signals_at_one_instant_abort_a_wait_once():
    """The first of two signals arriving at the same instant aborts the interruptible wait;
    the second, before the aborted thread's step (kind 3) at that instant, finds no wait to
    abort and only queues (docs/model.md section 2).  A fresh-clone run found the engine
    marking both once the abort became a thread step."""
    vmas = [Vma(BASE, BASE + 4 * PAGE, "context", policy="nopage_refault")]
    tr = Trace(addr=np.array([BASE], np.uint64), op=np.array([Op.LOAD], np.uint8),
               tid=np.array([1], np.uint32), gap_ns=np.array([0], np.uint64))
    sc = Scenario(tr, vmas=vmas, costs=Costs(wait_ns=Fixed(10_000)), horizon_ns=1_000_000,
                  signals=SignalSchedule("times", times_ns=(1000, 1000), threads=(1,)))
    check_agreement(sc, None)
    sig = engine.run(sc).signals
    assert list(sig["arrival_ns"]) == [1000, 1000]
    assert list(sig["aborted_wait"]) == [1, 0]


def test_a_retry_requests_its_lock_in_the_step_that_ended_its_attempt():
    """An attempt that ends in a retry (here: its readahead dropped mmap_lock, docs/model.md
    11.5) asks for the lock again in the same step, before a lower thread's step at that
    instant: under rwsem_steal the writer that release woke (thread 1) runs its try after
    the retry has taken the free lock, and waits for its release.  The engine once made the
    retry's request a step of its own, and the writer went first (a 1,500-example agreement
    run found it; this is that case, shrunk)."""
    from vmlab.model import File, Exponential, get_policy

    addr = [4251719, 4231447, 4256725, 4277859, 4214959, 4244188, 4207503, 4235520, 4244843,
            0, 0, 4210688]
    tr = Trace(addr=np.array(addr, np.uint64),
               op=np.array([3, 1, 3, 2, 2, 0, 2, 0, 2, 4, 4, 4], np.uint8),
               tid=np.array([154, 129, 154, 175, 129, 175, 175, 175, 154, 154, 129, 154],
                            np.uint32),
               size=np.array([8] * 9 + [0, 0, 4096], np.uint64))
    policy = get_policy("nopage").replace(
        name="random", needs_struct_page=False, max_retries=3, check_signal_before_retry=True,
        readahead_drops_lock=True)
    vmas = (Vma(4206592, 4247552, "file", policy="fault_retry_v57", prot="rw", anon_vma=True),
            Vma(4251648, 4259840, "file", policy="nopage_refault", prot="rw", file="A",
                offset=24576, madvise="sequential"),
            Vma(4259840, 4284416, "file", policy="fault_retry", prot="rwx", file="B",
                offset=16384, madvise="sequential"))
    costs = Costs(access_ns=0, fault_ns=1, zero_fill_ns=262, pagecache_hit_ns=131,
                  struct_page_ns=2, driver_ns=97, pte_ns=3, signal_ns=1, mmap_cs_ns=9,
                  wakeup_ns=92, copy_page_ns=231, io_ns=Exponential(mean_ns=4593),
                  wait_ns=Fixed(0))
    files = (File("A", size_bytes=56842, folio_pages=2, folios=((0, 16),)),
             File("B", folios=((0, 16),)))
    sc = Scenario(tr, vmas=vmas, costs=costs, fault_around_pages=4, seed=2, ra_pages=4,
                  files=files, rwsem_steal=True, lru_add_batch=3,
                  preload=np.array([0x404000], np.uint64))
    check_agreement(sc, policy)
    lk = engine.run(sc, policy).locks
    rows = sorted(zip(lk["thread"], lk["mode"], lk["request_ns"], lk["acquire_ns"],
                      lk["release_ns"]))
    retry = [r for r in rows if r[0] == 2][-1]
    writer = [r for r in rows if r[0] == 1][-1]
    assert retry[2] == retry[3] == 5884          # asked and took the free lock at once
    assert writer[1] == 1 and writer[2] == 5881 and writer[3] == retry[4]
