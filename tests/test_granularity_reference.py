"""The kernel fault model (docs/model.md sections 11.1-11.3) in the reference simulator, on
hand-built scenarios whose every number is worked out here from the costs.

Costs are vmlab's defaults (fault 500, struct page 100, zero fill 700, copy page 700,
page-cache hit 800, pte 60, wake-up 2 000, access 1) with a fixed I/O of 70 000 ns; the policy
is ``nopage`` (the lock is kept during a wait).  Every run is also checked record for record
against the engine.
"""
import dataclasses

import numpy as np
import pytest

import vmlab.engine
from naive_engine import canonical, first_difference, simulate
from vmlab import Costs, Fixed, Scenario, ScenarioError, Trace, Vma
from vmlab.trace import Op

PAGE = 4096
BASE = 0x400 * PAGE            # aligned to any fault-around window
IO = 70_000
COSTS = Costs(io_ns=Fixed(IO), pte_ns=60)  # pte_ns pinned at MODEL.md's value
R, W, M = Op.LOAD, Op.STORE, Op.MODIFY


def run(rows, backing="file", model="kernel", vma=None, **kw):
    """rows: (op, page index), one thread, no gaps; one VMA of 16 pages.  The reference's
    result, after checking that the engine's records are the same."""
    tr = Trace(addr=np.array([BASE + i * PAGE + 8 for _, i in rows], np.uint64),
               op=np.array([op for op, _ in rows], np.uint8), tid=np.zeros(len(rows), np.uint32))
    v = vma or Vma(BASE, BASE + 16 * PAGE, backing)
    sc = Scenario(tr, vmas=[v], costs=COSTS, fault_model=model, **kw)
    r = simulate(sc, "nopage")
    diff = first_difference(canonical(vmlab.engine.run(sc, "nopage")), canonical(r))
    assert diff is None, diff
    return r


def test_anon_read_maps_the_zero_page_and_a_write_copies_it():
    r = run([(R, 0), (W, 0), (W, 0), (R, 0)], backing="anon")
    # read: fault 500, no extra (the zero page), ends 500; the access ends 501
    # write: COW of the zero page, fault 500 + struct page 100 + zero fill 700 = 1300 from 501
    assert r.faults["start_ns"] == [0, 501] and r.faults["end_ns"] == [500, 1801]
    assert r.faults["major"] == [0, 0]
    assert r.threads["end_ns"] == [1801 + 1 + 1 + 1]   # then two hits
    assert r.counters["n_faults"] == 2 and r.counters["n_ptes_end"] == 1
    # the page model: one fault (500 + 800), its access and three hits
    p = run([(R, 0), (W, 0), (W, 0), (R, 0)], backing="anon", model="page")
    assert p.faults["end_ns"] == [1300] and p.threads["end_ns"] == [1304]


def test_anon_write_first_is_one_fault_and_modify_is_a_write():
    for op in (W, M):
        r = run([(op, 0), (R, 0), (W, 0)], backing="anon")
        assert r.faults["end_ns"] == [1300] and r.threads["end_ns"] == [1303]


def test_shared_anon_reads_get_a_page_not_the_zero_page():
    r = run([(R, 0), (W, 0)], vma=Vma(BASE, BASE + 16 * PAGE, "anon", private=False))
    assert r.faults["end_ns"] == [1300] and r.threads["end_ns"] == [1302]


def test_private_file_page_read_then_written_takes_a_cow_fault_and_keeps_its_copy():
    rows = [(R, 0), (W, 0), (R, 1), (R, 2), (R, 3), (W, 0)]
    r = run(rows, memory_pages=3)
    # read 0: 600 handler, I/O at 600, wake-up at 600 + IO + 2000, read-only PTE; access +1
    t0 = 600 + IO + 2000
    # write 0: wp_page_copy, 500 + struct page 100 + copy 700, no lookup, minor
    t1 = t0 + 1 + 1300
    assert r.faults["end_ns"][:2] == [t0, t1] and r.faults["major"] == [1, 0, 1, 1, 1]
    # pages 1-3 are major faults; page 3's I/O evicts page 0 (least recently used: the COW
    # write went to the copy, not the page-cache page), and the copy stays mapped: the last
    # write is a hit
    assert r.counters["n_faults"] == 5 and r.counters["n_evictions"] == 1
    last = t1 + 1 + 3 * (600 + IO + 2000 + 1)
    assert r.threads["end_ns"] == [last + 1]
    assert r.counters["n_ptes_end"] == 4


def test_private_file_page_written_first_is_one_cow_fault():
    r = run([(W, 0), (R, 0), (W, 0)])
    # do_cow_fault: 500 + 2 * struct page 100 + copy 700 = 1400, then the miss: I/O, wake-up
    assert r.faults["end_ns"] == [1400 + IO + 2000] and r.faults["major"] == [1]
    assert r.threads["end_ns"] == [1400 + IO + 2000 + 3]


def test_shared_file_page_read_then_written_is_made_writable_in_place():
    v = Vma(BASE, BASE + 16 * PAGE, "file", private=False)
    r = run([(R, 0), (W, 0), (W, 0)], vma=v)
    t0 = 600 + IO + 2000
    # page_mkwrite: 500, no extra, no lookup
    assert r.faults["end_ns"] == [t0, t0 + 1 + 500]
    assert r.threads["end_ns"] == [t0 + 1 + 500 + 2]


def test_fault_around_maps_resident_neighbours_before_the_lookup():
    # pages 1-3 resident, page 0 not: the read fault on 0 maps 1-3 at 600 (3 PTEs, 180 ns),
    # then its own lookup misses at 780
    pre = [BASE + i * PAGE for i in (1, 2, 3)]
    rows = [(R, 0), (R, 1), (R, 2), (R, 3), (R, 4)]
    r = run(rows, fault_around_pages=4, preload=pre)
    t0 = 780 + IO + 2000
    assert r.faults["end_ns"][0] == t0 and r.faults["start_ns"][1] == t0 + 4
    # pages 1-3 were hits; page 4 (next window, not resident) is a major fault
    assert r.counters["n_faults"] == 2 and r.counters["n_io"] == 2
    # the page model maps neighbours only at a page-cache hit: page 1 faults (a hit with
    # fault-around of 2 and 3), so three faults
    p = run(rows, fault_around_pages=4, preload=pre, model="page")
    assert p.counters["n_faults"] == 3


def test_fault_around_at_a_hit_maps_the_window_read_only():
    pre = [BASE + i * PAGE for i in range(4)]
    r = run([(R, 0), (R, 3), (W, 2)], fault_around_pages=4, preload=pre)
    # hit: 600 + page-cache hit 800, install at 1400 with 3 neighbours, release 1400 + 180
    assert r.faults["end_ns"][0] == 1580
    # page 3 is a hit; page 2 was mapped read-only: the write is a COW fault (minor)
    assert r.faults["start_ns"] == [0, 1582] and r.faults["end_ns"][1] == 1582 + 1300
    assert r.faults["major"] == [0, 0]


def test_the_window_runs_f_pages_from_a_vma_that_starts_inside_it():
    """do_fault_around(): the window starts at the F-aligned page below the fault or at the
    VMA's start, whichever is higher, and runs F pages from there (clipped to the VMA and
    the page table), not to the next F-aligned page.  A file VMA of 10 pages starting 13
    pages into a 16-page window, every page resident: the first read maps all 10, so the
    reads of the other nine are hits (clipping at the aligned end mapped 3, then 7 more:
    two faults)."""
    start = BASE + 13 * PAGE
    pre = [start + i * PAGE for i in range(10)]
    v = Vma(start, start + 10 * PAGE, "file")
    tr_rows = [(R, 13 + i) for i in (0, 9, 4, 7)]
    r = run(tr_rows, vma=v, fault_around_pages=16, preload=pre)
    assert r.counters["n_faults"] == 1 and r.counters["n_ptes_end"] == 10
    # the window stops at the page table's end: a VMA starting 2 pages before it
    end = BASE + 512 * PAGE            # BASE is 2 page tables from 0: a table ends here
    v2 = Vma(end - 2 * PAGE, end + 8 * PAGE, "file")
    pre2 = [end + (i - 2) * PAGE for i in range(10)]
    r2 = run([(R, 510), (R, 511), (R, 512), (R, 519)], vma=v2, fault_around_pages=16,
             preload=pre2)
    assert r2.counters["n_faults"] == 2 and r2.counters["n_ptes_end"] == 10


def test_a_recorded_folio_layout_maps_each_folio_in_one_fault():
    """File.folios (docs/model.md 11.4): folios of 16, 4 and 32 pages and one-page folios
    between them, every page resident, no fault-around: a read of every page takes one fault
    per folio, 1 + 1 + 12 + 1, and each maps its whole folio.  The same file with
    ``folio_pages=8`` around the listed folios: the blocks [40, 48) and [48, 56) hold no
    listed folio and are one folio each; [56, 64) holds one of 4 pages at 60, so pages 56-59
    are one-page folios."""
    from vmlab.model.scenario import File
    v = Vma(BASE, BASE + 64 * PAGE, "file", file="data")
    pre = [BASE + i * PAGE for i in range(64)]
    rows = [(R, i) for i in range(64)]
    f = File("data", size_bytes=64 * PAGE, folios=[(0, 16), (16, 4), (32, 32)])
    r = run(rows, vma=v, preload=pre, files=(f,))
    assert r.counters["n_faults"] == 15 and r.counters["n_ptes_end"] == 64
    f8 = File("data", size_bytes=64 * PAGE, folio_pages=8, folios=[(0, 16), (16, 4), (60, 4)])
    r8 = run(rows, vma=v, preload=pre, files=(f8,))
    # [0,16) [16,20) 20..23 singles ([16,24) holds a listed folio) [24,32) [32,40) [40,48)
    # [48,56) 56..59 singles [60,64)
    assert r8.counters["n_faults"] == 1 + 1 + 4 + 1 + 1 + 1 + 1 + 4 + 1


def test_the_files_last_folio_is_mapped_whole_only_from_an_empty_page_table():
    """Linux 6.18 (docs/model.md 11.3): fault-around never maps the folio holding the file's
    last page beyond its window (``file_end >= folio_next_index()`` compares with the last
    index), and skips an empty page table when that folio comes first: finish_fault() then
    maps the folio whole.  A 32-page file, one folio of 32 pages, resident; a read of page
    20 from an empty page table maps all 32 (the read of page 3 is no fault); after a read
    of another VMA's page in the same page table, it maps its window [16, 32) only and page
    3 takes a fault of its own.  Measured on 6.18: a 256-page last folio, 16 faults in a
    populated table, 1 from an empty one (tests/test_folio_layout.py)."""
    from vmlab.model.scenario import File
    v = Vma(BASE, BASE + 32 * PAGE, "file", file="data")
    other = Vma(BASE + 64 * PAGE, BASE + 80 * PAGE, "file")     # same page table
    f = File("data", size_bytes=32 * PAGE, folios=[(0, 32)])
    pre = [BASE + i * PAGE for i in range(32)] + [BASE + 64 * PAGE]
    rows = [(R, 20), (R, 3)]
    empty = run(rows, vma=v, fault_around_pages=16, preload=pre[:32], files=(f,))
    assert empty.counters["n_faults"] == 1 and empty.counters["n_ptes_end"] == 32
    tr = Trace(addr=np.array([BASE + 64 * PAGE, BASE + 20 * PAGE, BASE + 3 * PAGE], np.uint64),
               op=np.array([R, R, R], np.uint8), tid=np.zeros(3, np.uint32))
    sc = Scenario(tr, vmas=[v, other], costs=COSTS, fault_model="kernel", fault_around_pages=16,
                  preload=pre, files=(f,))
    r = simulate(sc, "nopage")
    assert first_difference(canonical(vmlab.engine.run(sc, "nopage")), canonical(r)) is None
    assert r.counters["n_faults"] == 3 and r.faults["start_ns"][2] > r.faults["start_ns"][1]


def test_a_listed_folio_is_read_by_one_io_and_evicted_whole():
    """A cold file with a listed folio of 8 pages at page 8: the first read there reads the
    whole folio (8 pages, one I/O) and maps it all (finish_fault(): it fits in the VMA, the
    page table and the file), so the next read of another of its pages takes no fault; under
    a limit, the folio is evicted as one entry."""
    from vmlab.model.scenario import File
    v = Vma(BASE, BASE + 16 * PAGE, "file", file="data")
    f = File("data", size_bytes=16 * PAGE, folios=[(8, 8)])
    r = run([(R, 9), (R, 12), (R, 0), (R, 1)], vma=v, files=(f,))
    assert r.counters["n_io"] == 3 and r.counters["n_read_pages"] == 8 + 1 + 1
    assert r.counters["n_major"] == 3 and r.counters["n_faults"] == 3
    # 24 frames: the folio (the oldest entry) goes whole, and a read of it reads 8 pages again
    v64 = Vma(BASE, BASE + 64 * PAGE, "file", file="data")
    f64 = File("data", size_bytes=64 * PAGE, folios=[(8, 8)])
    rows = [(R, 9)] + [(R, i) for i in range(16, 41)] + [(R, 12)]
    lim = run(rows, vma=v64, files=(f64,), memory_pages=24, replacement="lru")
    assert lim.counters["n_io"] == 27 and lim.counters["n_read_pages"] == 8 + 25 + 8
    assert lim.evictions["file_page"][0] == 8


def test_write_faults_get_no_fault_around():
    pre = [BASE + i * PAGE for i in range(4)]
    r = run([(W, 0), (R, 1)], fault_around_pages=4, preload=pre)
    # do_cow_fault at a page-cache hit: 500 + 900, hit 800, install: 2200; page 1 unmapped
    assert r.faults["end_ns"] == [2200, 2201 + 600 + 800 + 2 * 60]


@pytest.mark.parametrize("vma, op, message", [
    (Vma(BASE, BASE + 16 * PAGE, "file", prot="r"), W, "thread 0 writes 0x400008 in VMA"),
    (Vma(BASE, BASE + 16 * PAGE, "anon", prot=""), R, "thread 0 accesses 0x400008 in VMA"),
])
def test_accesses_the_program_could_not_make_are_refused(vma, op, message):
    tr = Trace(addr=np.array([BASE + 8], np.uint64), op=np.array([op], np.uint8))
    sc = Scenario(tr, vmas=[vma], fault_model="kernel")
    for sim in (simulate, vmlab.engine.run):
        with pytest.raises(ScenarioError, match="record 0: " + message):
            sim(sc, "nopage")
    run([(op, 0)], vma=vma, model="page")   # the page model does not read prot


# -- random scenarios -------------------------------------------------------------------------

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402

import budgeted  # noqa: E402
from naive_engine import CATEGORIES, lock_r_done  # noqa: E402
from scenario_strategies import kernel_cases  # noqa: E402

_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


@_SETTINGS
@given(kernel_cases())
def test_kernel_model_invariants_on_random_scenarios(case):
    sc, policy = case
    r = budgeted.reference(sc, policy)
    for i, end in enumerate(r.threads["end_ns"]):
        assert sum(r.threads[c + "_ns"][i] for c in CATEGORIES) == end
    c = r.counters
    assert (c["n_accesses"] + c["n_lock_w"] + lock_r_done(r) + c["n_abandoned_records"]
            + c["n_unfinished_records"]) == len(sc.trace)
    assert c["n_retries"] == sum(r.faults["retries"])
    # a thread completes at most two faults on a page (a read fault, then a write fault)
    # unless the page was evicted (or the adversary dropped it) in between
    if c["n_evictions"] == 0 and c["n_adversary_evictions"] == 0:
        done = [(t, a, v) for t, a, v, o in zip(r.faults["thread"], r.faults["asid"],
                                                r.faults["vpn"], r.faults["outcome"]) if o == 0]
        if done:
            assert np.unique(np.array(done), axis=0, return_counts=True)[1].max() <= 2


@_SETTINGS
@given(kernel_cases())
def test_kernel_model_is_the_page_model_for_reads_of_non_anonymous_pages(case):
    """docs/model.md 11.3: with fault_around_pages 1 and one page per folio, a read fault on a
    file page costs what a page model fault costs, and device, iomem and context VMAs are the
    same in both.  (A large folio is mapped whole by the kernel model's read fault, and
    twolist's reclaim reads young bits in the kernel model only: differences by design.)"""
    sc, policy = case
    assume(all(v.backing != "anon" for v in sc.vmas))
    # twolist reads the PTEs' young bits in the kernel model only (section 8.2): its victims
    # differ from the page model's by design
    assume(sc.replacement != "twolist")
    op = np.where(sc.trace.op >= Op.LOCK_W, sc.trace.op, Op.LOAD).astype(np.uint8)   # locks kept
    tr = Trace(addr=sc.trace.addr, op=op, tid=sc.trace.tid, asid=sc.trace.asid,
               gap_ns=sc.trace.gap_ns if sc.trace.has_gap else None)
    # (one page a folio: neither folio_pages nor a listed layout, File.folios)
    files = tuple(dataclasses.replace(f, folio_pages=1, folios=()) for f in sc.files)
    kernel = sc.replace(trace=tr, fault_around_pages=1, folio_pages=1, files=files)
    page = kernel.replace(fault_model="page")
    assert first_difference(canonical(budgeted.reference(kernel, policy)),
                            canonical(budgeted.reference(page, policy))) is None
