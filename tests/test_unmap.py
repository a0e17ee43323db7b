"""Mappings that end during the run (docs/model.md 11.9): an ``Unmap`` at a record removes the
PTEs of its range when that record's thread starts it; anonymous frames and private copies
are given back to ``memory_bytes`` (page tables stay); file pages stay in the page cache,
unmapped; a later access faults afresh.  Checked by hand, in the engine and the reference
simulator alike."""
import numpy as np
import pytest

import memory_cases
import vmlab
import vmlab.engine
from memory_cases import ANON_WRITE, COSTS, OWN0, PAGE, R, W, trace
from naive_engine import canonical, first_difference, simulate
from vmlab import Scenario, ScenarioError, Unmap, Vma

TABLES = 3                       # a PTE, a PMD and a PUD table for pages below 512


def both(sc, policy="nopage"):
    """The reference's result, after checking the engine's records are the same (with and
    without the fast path)."""
    return memory_cases.both(sc, policy, fast_paths=(True, False))


ANON = Vma(0, 8 * PAGE, "anon")


def anon_rewrite(unmaps, memory_frames=None, fault_model="kernel"):
    """Thread 0 writes anonymous pages 0, 1, then 0 and 1 again."""
    tr = trace([(0, 0, 0, W), (0, 0, PAGE, W), (0, 0, 0, W), (0, 0, PAGE, W)])
    mb = None if memory_frames is None else memory_frames * PAGE
    return both(Scenario(tr, vmas=[ANON], costs=COSTS, fault_model=fault_model,
                         memory_bytes=mb, unmaps=unmaps))


def test_an_access_after_its_unmap_faults_afresh():
    r = anon_rewrite(())
    assert r.counters["n_faults"] == 2 and r.counters["n_ptes_end"] == 2
    # page 0 unmapped before record 2: its second write is a new anonymous fault
    r = anon_rewrite([Unmap(2, 0, PAGE)])
    assert r.counters["n_faults"] == 3 and list(r.faults["vpn"]) == [0, 1, 0]
    assert r.counters["n_ptes_end"] == 2
    # both unmapped at record 2 (one range): two more faults
    r = anon_rewrite([Unmap(2, 0, 2 * PAGE)])
    assert r.counters["n_faults"] == 4
    # an unmap of a range nobody touched, or of another address space, changes nothing
    for u in (Unmap(2, 4 * PAGE, 8 * PAGE), Unmap(2, 0, 2 * PAGE, asid=1)):
        r = anon_rewrite([u])
        assert r.counters["n_faults"] == 2
    # the page model too
    assert anon_rewrite([Unmap(2, 0, PAGE)], fault_model="page").counters["n_faults"] == 3


def test_the_unmap_happens_at_its_records_start_and_costs_nothing():
    r = anon_rewrite([Unmap(2, 0, PAGE)])
    # writes at 0 and ANON_WRITE + 1 (a fault, then its access of 1 ns); the third record
    # starts at 2 * (ANON_WRITE + 1) and faults there
    assert list(r.faults["start_ns"]) == [0, ANON_WRITE + 1, 2 * (ANON_WRITE + 1)]


def test_an_unmapped_anonymous_page_gives_its_frame_back():
    # 5 frames of the kernel's at time 0, 3 tables and 2 pages: 10 frames hold the run
    assert anon_rewrite((), OWN0 + TABLES + 2).counters["oom_ns"] == -1
    r = anon_rewrite((), OWN0 + TABLES + 1)
    assert r.counters["oom_ns"] == ANON_WRITE + 1 + ANON_WRITE
    # page 0 unmapped before record 1: page 1 takes its frame; page 0's new fault at record
    # 2 finds none (page 1 holds it, the tables stay)
    r = anon_rewrite([Unmap(1, 0, PAGE)], OWN0 + TABLES + 1)
    assert r.counters["n_faults"] == 3
    assert r.counters["oom_ns"] == 2 * (ANON_WRITE + 1) + ANON_WRITE
    # ...unless page 1 is unmapped before it: then page 0 fits, and the OOM moves to page
    # 1's fourth write
    r = anon_rewrite([Unmap(1, 0, PAGE), Unmap(2, PAGE, 2 * PAGE)], OWN0 + TABLES + 1)
    assert r.counters["n_faults"] == 4
    assert r.counters["oom_ns"] == 3 * (ANON_WRITE + 1) + ANON_WRITE
    # and unmapping each page before the other's write, every write fits in one frame
    r = anon_rewrite([Unmap(1, 0, PAGE), Unmap(2, PAGE, 2 * PAGE), Unmap(3, 0, PAGE)],
                     OWN0 + TABLES + 1)
    assert r.counters["oom_ns"] == -1 and r.counters["n_faults"] == 4


def test_page_tables_stay_charged():
    # page 0 and page 512 (a second PTE table); unmapping page 0 gives its frame back but not
    # its table: with one frame fewer than 5 + 4 tables + 2 pages, page 512's write fits
    # only because page 0's frame came back
    vmas = [Vma(0, 1024 * PAGE, "anon")]
    tr = trace([(0, 0, 0, W), (0, 0, 512 * PAGE, W)])
    frames = OWN0 + TABLES + 1 + 1
    sc = Scenario(tr, vmas=vmas, costs=COSTS, fault_model="kernel", memory_bytes=frames * PAGE)
    assert both(sc).counters["oom_ns"] > 0
    assert both(sc.replace(unmaps=[Unmap(1, 0, PAGE)])).counters["oom_ns"] == -1
    # the tables are not given back: one frame fewer is an OOM even with the unmap
    sc2 = sc.replace(memory_bytes=(frames - 1) * PAGE, unmaps=[Unmap(1, 0, PAGE)])
    assert both(sc2).counters["oom_ns"] > 0


def test_a_file_page_stays_in_the_page_cache_unmapped():
    # read file page 0, unmap it, read it again: a minor fault (the page is resident)
    v = Vma(0, 4 * PAGE, "file", file="f", prot="r")
    tr = trace([(0, 0, 0, R), (0, 0, 0, R)])
    sc = Scenario(tr, vmas=[v], costs=COSTS, fault_model="kernel", unmaps=[Unmap(1, 0, PAGE)])
    r = both(sc)
    assert list(r.faults["major"]) == [1, 0]
    assert r.counters["n_io"] == 1
    assert vmlab.engine.run(sc, "nopage").counters["n_resident_end"] == 1
    # (without the unmap the second read is a hit)
    assert both(sc.replace(unmaps=())).counters["n_faults"] == 1


def test_a_private_copy_is_given_back_and_its_page_cache_page_kept():
    v = Vma(0, 4 * PAGE, "file", file="f", prot="rw")
    tr = trace([(0, 0, 0, R), (0, 0, 0, W), (0, 0, 0, W)])
    frames = OWN0 + TABLES + 1 + 1      # the file page and its private copy
    sc = Scenario(tr, vmas=[v], costs=COSTS, fault_model="kernel", memory_bytes=frames * PAGE,
                  unmaps=[Unmap(2, 0, PAGE)])
    r = both(sc)
    # read (major), the copy (wp_page_copy), then after the unmap a COW fault of the
    # resident page: the copy's frame came back, so it fits
    assert r.counters["n_faults"] == 3 and r.counters["oom_ns"] == -1
    assert list(r.faults["major"]) == [1, 0, 0]


def test_unmaps_are_checked():
    tr = trace([(0, 0, 0, W), (0, 0, PAGE, W)])
    with pytest.raises(ScenarioError, match="record 2 is not a record"):
        Scenario(tr, vmas=[ANON], unmaps=[Unmap(2, 0, PAGE)])
    with pytest.raises(ScenarioError, match="not aligned"):
        Scenario(tr, vmas=[ANON], unmaps=[Unmap(1, 0, 100)])
    with pytest.raises(ScenarioError, match="start < end"):
        Unmap(1, PAGE, PAGE)
    with pytest.raises(ScenarioError, match="unmaps\\[0\\] must be an Unmap"):
        Scenario(tr, vmas=[ANON], unmaps=[(1, 0, PAGE)])
    dev = Scenario(tr, vmas=[Vma(0, 8 * PAGE, "device")], unmaps=[Unmap(1, 0, PAGE)])
    with pytest.raises(ScenarioError, match="backed by device"):
        vmlab.engine.run(dev, "nopage")
    with pytest.raises(ScenarioError, match="backed by device"):
        simulate(dev, "nopage")


# -- mappings that move (mremap) ----------------------------------------------------------
FAR = 16 * PAGE
ANON2 = Vma(FAR, FAR + 8 * PAGE, "anon")


def moved(records, unmaps, memory_frames=None):
    mb = None if memory_frames is None else memory_frames * PAGE
    return both(Scenario(trace(records), vmas=[ANON, ANON2], costs=COSTS, fault_model="kernel",
                         memory_bytes=mb, unmaps=unmaps))


def test_a_moved_page_keeps_its_pte_and_its_frame():
    """mremap moves the page tables: pages written before the move are mapped at the new
    address (no fault there) with the same frames, and the old address faults afresh."""
    writes = [(0, 0, 0, W), (0, 0, PAGE, W), (0, 0, FAR, W), (0, 0, FAR + PAGE, W)]
    move = Unmap(2, 0, 2 * PAGE, to=FAR)
    r = moved(writes, [move])
    assert r.counters["n_faults"] == 2 and r.counters["n_ptes_end"] == 2
    # without the move (an munmap, then new memory there): four faults
    assert moved(writes, [Unmap(2, 0, 2 * PAGE)]).counters["n_faults"] == 4
    # the frames moved with the pages: two frames hold the run, as without a move
    assert moved(writes, [move], OWN0 + TABLES + 2).counters["oom_ns"] == -1
    # the old address is empty after the move: a write there is a new fault, and a frame
    again = writes + [(0, 0, 0, W)]
    r = moved(again, [move])
    assert r.counters["n_faults"] == 3 and list(r.faults["vpn"]) == [0, 1, 0]
    assert moved(again, [move], OWN0 + TABLES + 2).counters["oom_ns"] > 0


def test_a_move_keeps_a_read_only_pte_read_only_and_empties_the_destination_first():
    # a read maps the zero page read-only; moved, a write to it is a write fault
    r = moved([(0, 0, 0, R), (0, 0, FAR, R), (0, 0, FAR, W)], [Unmap(1, 0, PAGE, to=FAR)])
    assert r.counters["n_faults"] == 2 and list(r.faults["vpn"]) == [0, FAR // PAGE]
    # what the destination held before the move is unmapped (its frame given back)
    r = moved([(0, 0, FAR, W), (0, 0, 0, W), (0, 0, FAR, W)], [Unmap(2, 0, PAGE, to=FAR)],
              OWN0 + TABLES + 1)
    assert r.counters["oom_ns"] > 0       # the second write needed a second frame
    r = moved([(0, 0, FAR, W), (0, 0, 0, R), (0, 0, FAR, R)], [Unmap(2, 0, PAGE, to=FAR)])
    assert r.counters["n_faults"] == 2 and r.counters["n_ptes_end"] == 1


def test_a_moved_file_page_is_the_same_page_cache_page():
    a = Vma(0, 4 * PAGE, "file", file="f", prot="r")
    b = Vma(FAR, FAR + 4 * PAGE, "file", file="f", offset=0, prot="r")
    tr = trace([(0, 0, 0, R), (0, 0, FAR, R), (0, 0, FAR + PAGE, R)])
    sc = Scenario(tr, vmas=[a, b], costs=COSTS, fault_model="kernel",
                  unmaps=[Unmap(1, 0, PAGE, to=FAR)])
    r = both(sc)
    # one read from the disk; the moved PTE maps it at FAR; page 1 of the file is a new fault
    assert r.counters["n_io"] >= 1 and list(r.faults["vpn"]) == [0, FAR // PAGE + 1]


def test_moves_are_checked():
    tr = trace([(0, 0, 0, W), (0, 0, PAGE, W)])
    with pytest.raises(ScenarioError, match="overlaps its source"):
        Unmap(1, 0, 2 * PAGE, to=PAGE)
    with pytest.raises(ScenarioError, match="the destination 0x10100 is not aligned"):
        Scenario(tr, vmas=[ANON, ANON2], unmaps=[Unmap(1, 0, PAGE, to=FAR + 256)])
    file_b = Vma(FAR, FAR + 8 * PAGE, "file", file="g")
    for vmas, why in (([ANON, file_b], "maps as other memory"),
                      ([ANON], "no one VMA covers")):
        sc = Scenario(tr, vmas=vmas, unmaps=[Unmap(1, 0, PAGE, to=FAR)])
        for run in (vmlab.engine.run, simulate):
            with pytest.raises(ScenarioError, match=f"moves the pages of VMA .* {why}"):
                run(sc, "nopage")


# -- from a recording -------------------------------------------------------------------
def _recorded(tmp_path, rows, addr, op):
    from vmlab.trace import open_trace
    from vmlab.trace.mappings import MAPPING_DTYPE, Mappings
    from vmlab.trace.native import TraceWriter

    t = np.zeros(len(rows), MAPPING_DTYPE)
    for i, (start, end, backing, frm, until) in enumerate(rows):
        t[i] = (0, start, end, 3, 0, backing, 0xFFFFFFFF, 0, frm, until)
    with TraceWriter(tmp_path / "m.vmt", mappings=Mappings(t, [], "test")) as w:
        w.append(addr=np.array(addr, np.uint64), op=np.array(op, np.uint8))
    return open_trace(tmp_path / "m.vmt")


def test_unmaps_for_a_recording(tmp_path):
    from vmlab.model.recorded import scenario_for, unmaps_for
    from vmlab.trace.mappings import FOREVER, Backing

    A, H = 0x10000, 0x100000
    rows = [
        (A, A + 4 * PAGE, Backing.ANON, 0, 3),              # munmap before record 3
        (A, A + 2 * PAGE, Backing.ANON, 4, FOREVER),         # mmap'd again at 4 (half of it)
        (H, H + 2 * PAGE, Backing.HEAP, 0, 1),               # brk grows at 1...
        (H, H + 4 * PAGE, Backing.HEAP, 1, 2),
        (H, H + 1 * PAGE, Backing.HEAP, 2, 5),               # ...shrinks at 2...
        (H, H + 1 * PAGE, Backing.HEAP, 5, 6),               # (mprotect-like split at 5)
        (H, H + 1 * PAGE, Backing.HEAP, 6, FOREVER),
        (0x200000, 0x201000, Backing.ANON, 0, 8),            # ends with the trace: nothing
    ]
    # writes A, H + 3, [brk shrink] A + 3, [munmap] H, A again after its new mmap, A + 1,
    # H twice
    addr = [A, H + 3 * PAGE, A + 3 * PAGE, H, A, A + PAGE, H, H]
    tr = _recorded(tmp_path, rows, addr, [W] * len(addr))
    u = unmaps_for(tr)
    assert [(x.record, x.start, x.end) for x in u] == [
        (2, H + PAGE, H + 4 * PAGE),     # the brk shrink
        (3, A, A + 4 * PAGE),            # the munmap (the new mapping starts at 4)
    ]
    sc = scenario_for(tr, memory_bytes=64 * PAGE)
    assert sc.unmaps == tuple(u)
    r = vmlab.engine.run(sc, "nopage")
    # A's write at record 4 faults afresh (its first PTE went with the munmap)
    assert list(r.faults["vpn"]) == [A // PAGE, H // PAGE + 3, A // PAGE + 3, H // PAGE,
                                     A // PAGE, A // PAGE + 1]
    ref = simulate(sc, "nopage")
    assert first_difference(canonical(r), canonical(ref)) is None
    # without the unmaps, A's write at record 3 hits
    assert vmlab.engine.run(sc.replace(unmaps=()), "nopage").counters["n_faults"] == 5


def test_a_loader_replacing_and_mprotecting_its_mappings_unmaps_nothing(tmp_path):
    # ld.so's reservation replaced by the segments at record 1, relro's mprotect at record 3:
    # rows end, but rows alive at that record still map every byte
    from test_recorded import _loader_trace
    from vmlab.model.recorded import scenario_for, unmaps_for

    tr = _loader_trace(tmp_path)
    assert unmaps_for(tr) == []
    assert scenario_for(tr).unmaps == ()


def test_an_unmaps_thread_position_is_found_in_one_pass(monkeypatch):
    """Each unmap's position in the kernel's order (threads grouped, trace order within a
    thread) is its record's rank among its thread's records: computed chunk by chunk in one
    pass (chunks of 7 records here), the same as counting every earlier record."""
    import importlib

    prep = importlib.import_module("vmlab.engine.prepare")
    monkeypatch.setattr(prep, "_CHUNK", 7)
    rng = np.random.default_rng(3)
    tid = rng.choice([4, 9, 2], 200)
    tr = vmlab.Trace(rng.integers(0, 64, 200).astype(np.uint64) * PAGE, tid=tid)
    idx = prep.index_trace(tr)
    recs = rng.choice(200, 40, replace=False)
    th = np.searchsorted(idx.thr_tid, tid[recs])
    want = [int(idx.thr_off[t]) + int(np.count_nonzero(tid[:r] == tid[r]))
            for r, t in zip(recs, th)]
    assert prep._thread_positions(tr, idx, recs).tolist() == want
    one = vmlab.Trace(np.zeros(5, np.uint64))
    assert prep._thread_positions(one, prep.index_trace(one), [3, 1]).tolist() == [3, 1]
