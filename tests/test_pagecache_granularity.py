"""The page cache by file and folio, large folios, readahead and the memory limit
(docs/model.md 11.3-11.5 and 12) on hand-built scenarios whose every number is worked out
here from the costs; every run is also checked record for record against the reference.

Costs are vmlab's defaults (fault 500, struct page 100, zero fill 700, page-cache hit 800,
wake-up 2 000, access 1) with a fixed I/O of 70 000 ns and pte 60; policy ``nopage`` (the lock
is kept during a wait), one thread unless said otherwise, no gaps.
"""
import numpy as np
import pytest

import vmlab
import vmlab.engine
from naive_engine import canonical, first_difference, simulate
from vmlab import Costs, Fixed, Scenario, ScenarioError, Trace, Vma
from vmlab.model import File
from vmlab.trace import Op

PAGE = 4096
BASE = 0x400 * PAGE
IO = 70_000
WAKE = 2_000
COSTS = Costs(io_ns=Fixed(IO), pte_ns=60)
R, W = Op.LOAD, Op.STORE
READ_FAULT = 500 + 100   # fault_ns + struct_page_ns: a file read fault's handler
ANON_WRITE = 500 + 100 + 700
# the kernel's own frames under memory_bytes (docs/model.md 12): from time 0 a PGD and one
# thread's kernel stack; at the first PTE of these tests' pages (all in one 512-page range)
# a PTE, a PMD and a PUD table
OWN0 = 1 + 4
TABLES = 3


def trace(rows):
    """rows: (tid, asid, address, op, gap_ns)."""
    tid, asid, addr, op, gap = (np.array(c) for c in zip(*rows))
    return Trace(addr=addr.astype(np.uint64), op=op.astype(np.uint8), tid=tid.astype(np.uint32),
                 asid=asid.astype(np.uint16), gap_ns=gap.astype(np.uint64))


def both(sc, policy="nopage"):
    """The reference's result, after checking the engine's records are the same."""
    ref = simulate(sc, policy)
    eng = vmlab.engine.run(sc, policy)
    diff = first_difference(canonical(eng), canonical(ref))
    assert diff is None, diff
    return ref


def reads(pages, vma=None, **kw):
    """One thread reading ``pages`` of one 64-page private file VMA, kernel model."""
    tr = trace([(0, 0, BASE + p * PAGE, R, 0) for p in pages])
    v = vma or Vma(BASE, BASE + 64 * PAGE, "file")
    return both(Scenario(tr, vmas=[v], costs=COSTS, fault_model="kernel", **kw))


# -- readahead (11.5) -----------------------------------------------------------------------

def test_a_major_fault_reads_the_read_around_window_and_the_mark_reads_the_next():
    r = reads([20, 21, 22, 24], ra_pages=8)
    # page 20 misses: read-around start 20 - 8 // 2 = 16, size 8, async 2: pages 16..23 in one
    # I/O at h = 600, done at 70 600; woken 72 600; the mark on page 16 + 8 - 2 = 22
    assert r.faults["start_ns"][0] == 0 and r.faults["end_ns"][0] == READ_FAULT + IO + WAKE
    # page 21: resident, not marked: a minor fault (600 + page-cache hit 800)
    t1 = 72_601
    assert r.faults["start_ns"][1] == t1 and r.faults["end_ns"][1] == t1 + 600 + 800
    # page 22 carries the mark: a minor fault that reads the next window, start 16 + 8 = 24,
    # size min(2 * 8, 8) = 8, from its lookup at h = 74 002 + 600: done at 144 602
    t2 = t1 + 1400 + 1
    assert r.faults["end_ns"][2] == t2 + 1400
    # page 24 is in flight and carries the window's mark (its start): the lookup reads the
    # next window, 32..39, then the fault waits for page 24's I/O (minor: it issued none of
    # its own; the kernel calls do_async_mmap_readahead() for a folio it finds, 11.5)
    t3 = t2 + 1400 + 1
    assert r.faults["start_ns"][3] == t3 and r.faults["end_ns"][3] == t2 + 600 + IO + WAKE
    assert r.faults["major"] == [1, 0, 0, 0]
    assert r.faults["io_wait_ns"][3] == t2 + 600 + IO + WAKE - (t3 + 600)
    c = r.counters
    assert (c["n_io"], c["n_read_pages"], c["n_readahead_pages"]) == (3, 24, 23)


def test_madvise_random_reads_one_page_and_sequential_doubles_the_window():
    base = dict(start=BASE, end=BASE + 64 * PAGE, backing="file")
    rnd = reads([20, 21], vma=Vma(**base, madvise="random"), ra_pages=8)
    assert (rnd.counters["n_io"], rnd.counters["n_read_pages"]) == (2, 2)
    assert rnd.faults["major"] == [1, 1]
    # sequential: start 20, size 2 * 8, async 8: pages 20..35; the mark on 28
    seq = reads([20, 27, 28], vma=Vma(**base, madvise="sequential"), ra_pages=8)
    assert seq.counters["n_read_pages"] == 16 + 16      # and the mark read 36..51
    assert seq.faults["major"] == [1, 0, 0] and seq.counters["n_io"] == 2
    # ra_pages = 0: no readahead at all
    off = reads([20, 21])
    assert (off.counters["n_io"], off.counters["n_read_pages"]) == (2, 2)


def test_readahead_is_clipped_to_the_file_and_stops_when_memory_is_full():
    v = Vma(BASE, BASE + 64 * PAGE, "file", file="f")
    # a 22-page file: the window 16..23 reads 16..21 only
    r = reads([20], vma=v, ra_pages=8, files=[File("f", size_bytes=21 * PAGE + 1)])
    assert r.counters["n_read_pages"] == 6
    # 4 frames beside the kernel's own at the I/O: the faulting page, then 3 of the window; no
    # OOM. The install charges the 3 page tables: they evict the 3 window pages (unmapped)
    m = reads([20], ra_pages=8, memory_bytes=(OWN0 + 4) * PAGE)
    assert m.counters["n_read_pages"] == 4 and m.counters["oom_ns"] == -1
    assert m.counters["n_evictions"] == TABLES


def test_readahead_evicts_no_mapped_folio_and_ends_instead():
    # 7 frames beside the kernel's own 5; page 0 misses: it and 1..6 of its window 0..7 fill
    # them (7 finds no victim, all in flight). Its install charges the 3 page tables: they
    # evict LRU's 1, 2, 3 (0 is pinned).  Page 40 misses: its fault evicts LRU's victim, page
    # 4; its window 36..43 evicts 5 and 6 for 36 and 37, then finds only page 0, which a PTE
    # maps: the readahead ends (it would have evicted it under section 8's rule alone).
    # Page 0 is then a hit through its PTE: no third fault
    tr = trace([(0, 0, BASE + p * PAGE, R, 0) for p in (0, 40, 0)])
    kw = dict(vmas=[Vma(BASE, BASE + 64 * PAGE, "file")], costs=COSTS, fault_model="kernel",
              ra_pages=8, memory_bytes=(OWN0 + 7) * PAGE, records=True)
    r = both(Scenario(tr, replacement="lru", **kw))
    assert r.faults["major"] == [1, 1] and r.counters["n_read_pages"] == 7 + 3
    t0 = READ_FAULT + IO + WAKE                    # page 0's install
    t = t0 + 1 + READ_FAULT                        # page 40's lookup
    assert r.evictions["file_page"] == [1, 2, 3, 4, 5, 6]
    assert r.evictions["time_ns"] == [t0] * 3 + [t] * 3
    assert r.evictions["cause"] == [0, 0, 0, 0, 1, 1]   # the tables', the fault's, readahead's
    # FIFO: page 40's fault itself takes page 0 (a faulting allocation may evict a mapped
    # folio), its window then 4..6 for 36..38; the third access faults again, its fault
    # evicts page 40 (mapped) and its window 0..7 evicts 36..38 (unmapped) for 1..3
    f = both(Scenario(tr, replacement="fifo", **kw))
    assert f.faults["major"] == [1, 1, 1] and f.counters["n_read_pages"] == 7 + 4 + 4
    assert f.evictions["file_page"] == [1, 2, 3, 0, 4, 5, 6, 40, 36, 37, 38]
    assert f.evictions["cause"] == [0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1]


def test_a_fault_in_an_executable_vma_reads_forward_to_the_vma_end():
    # file "f", 64 pages; an executable VMA maps its pages 10..29 (20 pages at offset 10), a
    # read-only one all 64.  A miss on file page 20 (the text's page 10) reads forward:
    # start 20, end min(20 + 8, 30) = 28, async 0: pages 20..27 in the faulting folio's I/O
    # (read-around would have read 16..23)
    text = Vma(BASE, BASE + 20 * PAGE, "file", file="f", offset=10 * PAGE, prot="rx")
    rest = Vma(BASE + 32 * PAGE, BASE + 96 * PAGE, "file", file="f", prot="r")
    r = reads([10, 17], vma=text, ra_pages=8, files=[File("f", size_bytes=64 * PAGE)])
    assert r.faults["major"] == [1, 0] and r.counters["n_read_pages"] == 8
    assert r.counters["n_io"] == 1 and r.counters["n_readahead_pages"] == 7
    # file page 27 (the text's page 17) was read and carries no mark (async_size 0: the mark
    # would be page 28, outside the window): a minor fault that starts no readahead
    t1 = READ_FAULT + IO + WAKE + 1
    assert r.faults["end_ns"][1] == t1 + READ_FAULT + 800
    # near the VMA's end the window stops there: a miss on file page 26 reads 26..29 only,
    # though the file goes on
    e = both(Scenario(trace([(0, 0, BASE + 16 * PAGE, R, 0)]), vmas=[text, rest],
                      costs=COSTS, fault_model="kernel", ra_pages=8))
    assert e.counters["n_read_pages"] == 4
    # the same file page through the read-only VMA is read around: 22..29
    o = both(Scenario(trace([(0, 0, BASE + (32 + 26) * PAGE, R, 0)]), vmas=[text, rest],
                      costs=COSTS, fault_model="kernel", ra_pages=8))
    assert o.counters["n_read_pages"] == 8


def test_the_executable_window_counts_misses_and_honours_madvise():
    # mmap_miss is counted before the VM_EXEC case: past MMAP_LOTSAMISS (100 misses) an
    # executable VMA reads the faulting page alone.  Misses 3 apart with ra_pages 2: each of
    # the first 100 reads its page and the next (forward window o..o+1), the 101st and 102nd
    # their own page only
    text = Vma(BASE, BASE + 400 * PAGE, "file", prot="rx")
    r = reads([3 * i for i in range(102)], vma=text, ra_pages=2)
    assert r.faults["major"] == [1] * 102 and r.counters["n_io"] == 102
    assert (r.counters["n_read_pages"], r.counters["n_readahead_pages"]) == (202, 100)
    # madvise random: the faulting page alone; sequential: start 20, size 2 * 8 (the kernel
    # takes VM_SEQ_READ before VM_EXEC)
    base = dict(start=BASE, end=BASE + 64 * PAGE, backing="file", prot="rx")
    rnd = reads([20], vma=Vma(**base, madvise="random"), ra_pages=8)
    assert rnd.counters["n_read_pages"] == 1
    seq = reads([20], vma=Vma(**base, madvise="sequential"), ra_pages=8)
    assert seq.counters["n_read_pages"] == 16


# -- the page cache by file (11.4) ------------------------------------------------------------

def test_two_mappings_of_one_file_share_its_pages_across_address_spaces():
    a = Vma(BASE, BASE + 16 * PAGE, "file", asid=0, file="lib.so")
    b = Vma(BASE + 32 * PAGE, BASE + 48 * PAGE, "file", asid=1, file="lib.so", offset=4 * PAGE)
    # thread 0 reads file page 6 through A (its page 6); thread 1, later, reads the same file
    # page through B (its page 2): a page-cache hit, no second I/O
    tr = trace([(0, 0, BASE + 6 * PAGE, R, 0), (1, 1, BASE + 34 * PAGE, R, 200_000)])
    r = both(Scenario(tr, vmas=[a, b], costs=COSTS, fault_model="kernel"))
    assert r.faults["major"] == [1, 0] and r.counters["n_io"] == 1
    assert r.faults["end_ns"][1] == 200_000 + READ_FAULT + 800
    assert r.counters["n_ptes_end"] == 2          # PTEs stay per address space and page
    # without file=..., each VMA maps a file of its own: two I/Os
    a2, b2 = Vma(BASE, BASE + 16 * PAGE, "file"), Vma(BASE + 32 * PAGE, BASE + 48 * PAGE, "file",
                                                      asid=1)
    r2 = both(Scenario(tr, vmas=[a2, b2], costs=COSTS, fault_model="kernel"))
    assert r2.faults["major"] == [1, 1] and r2.counters["n_io"] == 2


def test_evicting_a_shared_page_unmaps_it_in_every_address_space():
    a = Vma(BASE, BASE + 16 * PAGE, "file", asid=0, file="f")
    b = Vma(BASE, BASE + 16 * PAGE, "file", asid=1, file="f")
    # both map file page 0; then thread 0 reads pages 1..5: with 5 frames (2 threads) page 0
    # is evicted and both PTEs go; thread 1's second access to page 0 faults again
    rows = [(0, 0, BASE, R, 0), (1, 1, BASE, R, 100_000)]
    rows += [(0, 0, BASE + p * PAGE, R, 0) for p in range(1, 6)]
    rows += [(1, 1, BASE, R, 1_000_000)]
    r = both(Scenario(trace(rows), vmas=[a, b], costs=COSTS, fault_model="kernel",
                      memory_pages=5, replacement="fifo"))
    assert r.counters["n_evictions"] == 2          # page 0, then page 1 for its re-read
    per_thread = [sum(1 for t in r.faults["thread"] if t == i) for i in (0, 1)]
    assert per_thread == [6, 2] and r.counters["n_io"] == 7


# -- large folios (11.3) ------------------------------------------------------------------

def test_a_folio_is_read_by_one_io_and_mapped_together_at_a_hit():
    # 4-page folios: the fault on page 5 reads file pages 4..7 in one I/O; woken, the fault's
    # finish_fault() maps the whole folio (pages 4, 6 and 7 besides 5: 3 * pte 60 before the
    # release, Linux 6.18, docs/model.md 11.3); 6, 4 and 7 are then hits, no fault
    r = reads([5, 6, 4, 7], folio_pages=4)
    assert r.counters["n_io"] == 1 and r.counters["n_read_pages"] == 4
    assert r.counters["n_faults"] == 1 and r.faults["major"] == [1]
    assert r.faults["end_ns"][0] == READ_FAULT + IO + WAKE + 3 * 60
    assert r.counters["n_ptes_end"] == 4
    # each read maps its own folio: 9 (8..11), 12 (12..15) and 6 (4..7) fault, 4 is mapped
    r1 = reads([9, 12, 6, 4], folio_pages=4)
    assert r1.counters["n_faults"] == 3 and r1.counters["n_io"] == 3
    # a per-file folio size overrides the scenario's
    v = Vma(BASE, BASE + 64 * PAGE, "file", file="f")
    r2 = reads([5], vma=v, files=[File("f", folio_pages=8)])
    assert r2.counters["n_read_pages"] == 8


def test_an_adversary_drops_only_folios_wholly_in_its_range():
    from vmlab import Adversary

    # 4-page folios; the range is pages 0..5: folio 0..3 is dropped, folio 4..7 is not
    tr = trace([(0, 0, BASE + 1 * PAGE, W, 0), (0, 0, BASE + 5 * PAGE, W, 0),
                (0, 0, BASE + 1 * PAGE, R, 500_000)])
    v = Vma(BASE, BASE + 16 * PAGE, "file")
    sc = Scenario(tr, vmas=[v], costs=COSTS, fault_model="kernel", folio_pages=4,
                  adversary=Adversary("times", times_ns=(400_000,), first_page=0, n_pages=6))
    r = both(sc)
    # the writes made private copies (the page-cache folios are unmapped): the adversary drops
    # folio 0 only; the private copy of page 1 survives, so the read is a hit
    assert r.counters["n_adversary_evictions"] == 1 and r.counters["n_faults"] == 2


# -- the memory limit (12) -------------------------------------------------------------------

def test_a_limit_below_the_anonymous_working_set_ends_the_run_with_an_oom():
    # 3 frames beside the kernel's own, four anonymous pages written: the fourth write's
    # install finds no frame
    tr = trace([(7, 0, BASE + p * PAGE, W, 0) for p in range(4)] + [(7, 0, BASE, R, 0)])
    v = Vma(BASE, BASE + 16 * PAGE, "anon")
    sc = Scenario(tr, vmas=[v], costs=COSTS, fault_model="kernel",
                  memory_bytes=(OWN0 + TABLES + 3) * PAGE + 100)
    r = both(sc)
    t3 = 3 * (ANON_WRITE + 1)
    assert (r.counters["oom_thread"], r.counters["oom_ns"]) == (0, t3 + ANON_WRITE)
    assert r.threads["state"] == [4] and r.threads["end_ns"] == [t3 + ANON_WRITE]
    assert r.faults["outcome"][3] == 3 and r.faults["end_ns"][3] == -1   # unfinished
    assert r.counters["n_unfinished_records"] == 2
    assert r.counters["n_livelocked_threads"] == 0
    s = vmlab.simulate(sc, "nopage").summary
    assert s["oom"] and s["oom_thread"] == 7 and s["oom_ns"] == t3 + ANON_WRITE
    assert not s["livelock"]
    # with room for all four, no OOM
    ok = vmlab.simulate(sc.replace(memory_bytes=(OWN0 + TABLES + 4) * PAGE), "nopage").summary
    assert not ok["oom"] and ok["oom_thread"] == -1 and ok["oom_ns"] == -1


def test_a_grant_made_at_the_oom_instant_holds_the_lock():
    # docs/model.md 2 and 12: one frame beside the kernel's own (two PGDs, three stacks;
    # no PTE is installed before the OOM). Thread 0 (address space 0) misses a file page at
    # 600, charges the frame for the I/O and drops mmap_sem to wait (fault_retry); the release
    # grants the LOCK_W writer (thread 2, queued behind it since 0) at once. Thread 1 (address
    # space 1) misses another file's page at 600 too, finds the only frame in flight: OOM at
    # 600. The writer holds the lock from 600 even though its resume never runs.
    a = Vma(BASE, BASE + 16 * PAGE, "file", asid=0, file="a")
    b = Vma(BASE + 32 * PAGE, BASE + 48 * PAGE, "file", asid=1, file="b")
    tr = trace([(1, 0, BASE, R, 0), (2, 1, BASE + 32 * PAGE, R, 0), (3, 0, 0, Op.LOCK_W, 0)])
    sc = Scenario(tr, vmas=[a, b], costs=COSTS, memory_bytes=(2 + 3 * 4 + 1) * PAGE)
    r = both(sc, "fault_retry")
    assert (r.counters["oom_thread"], r.counters["oom_ns"]) == (1, READ_FAULT)
    writer = r.locks["thread"].index(2)
    assert (r.locks["request_ns"][writer], r.locks["acquire_ns"][writer],
            r.locks["release_ns"][writer]) == (0, READ_FAULT, -1)
    assert r.lock_waits["mmap_lock_write_wait_ns"] == READ_FAULT
    assert r.threads["lock_wait_ns"][2] == READ_FAULT and r.threads["state"] == [4, 4, 4]
    s = vmlab.simulate(sc, "fault_retry").summary
    assert s["oom"] and s["oom_thread"] == 2 and s["oom_ns"] == READ_FAULT


def test_memory_bytes_counts_anonymous_and_page_cache_frames_together():
    anon = Vma(BASE, BASE + 16 * PAGE, "anon")
    f = Vma(BASE + 32 * PAGE, BASE + 48 * PAGE, "file")
    A = [(0, 0, BASE + p * PAGE, W, 0) for p in range(2)]
    F = [(0, 0, BASE + (32 + p) * PAGE, R, 0) for p in range(2)]
    sc = Scenario(trace(A + F + [(0, 0, BASE + 2 * PAGE, W, 0), (0, 0, BASE + 3 * PAGE, W, 0)]),
                  vmas=[anon, f], costs=COSTS, fault_model="kernel",
                  memory_bytes=(OWN0 + TABLES + 3) * PAGE)
    r = both(sc)
    # (beside the kernel's own frames, the page tables charged at the first write) two anon
    # frames + file page 32 fill the 3 frames; file page 33 evicts 32; the third
    # anon page evicts 33; the fourth finds only anonymous frames: OOM at its install
    assert r.counters["n_evictions"] == 2
    assert r.counters["oom_ns"] == r.faults["start_ns"][5] + ANON_WRITE
    # a read of an anonymous page maps the zero page: no frame, no OOM
    z = both(sc.replace(trace=trace([(0, 0, BASE + p * PAGE, R, 0) for p in range(8)])))
    assert z.counters["oom_ns"] == -1


def test_preloaded_folios_under_memory_bytes_belong_to_another_cgroup():
    # preloaded file pages are resident, not charged and never reclaimed by the limit
    v = Vma(BASE, BASE + 16 * PAGE, "file")
    pre = np.array([BASE + p * PAGE for p in range(8)], np.uint64)
    tr = trace([(0, 0, BASE + p * PAGE, R, 0) for p in range(10)])
    r = both(Scenario(tr, vmas=[v], costs=COSTS, fault_model="kernel", preload=pre,
                      memory_bytes=(OWN0 + TABLES + 1) * PAGE))
    assert r.faults["major"] == [0] * 8 + [1, 1] and r.counters["n_evictions"] == 1
    assert r.counters["oom_ns"] == -1


def test_bad_file_layouts_are_refused_with_one_line():
    v = Vma(BASE, BASE + 16 * PAGE, "file", file="f")
    tr = trace([(0, 0, BASE + 9 * PAGE, R, 0)])
    sc = Scenario(tr, vmas=[v], fault_model="kernel", files=[File("f", size_bytes=4 * PAGE)])
    with pytest.raises(ScenarioError, match="beyond the end of file 'f'"):
        vmlab.engine.run(sc, "nopage")
    with pytest.raises(ScenarioError, match="cannot be sampled"):
        Scenario(tr, vmas=[v], ra_pages=8, sample_rate=0.5)
    with pytest.raises(ScenarioError, match="folio"):
        Scenario(tr, vmas=[v], folio_pages=3)


def test_cli_run_takes_memory_bytes_and_reports_the_oom(tmp_path, capsys):
    import json

    from vmlab.cli import main
    from vmlab.trace import save_trace

    tr = trace([(0, 0, BASE + p * PAGE, W, 0) for p in range(4)])
    path = tmp_path / "t.vmt"
    save_trace(tr, path)
    assert main(["run", str(path), "--backing", "anon", "--memory-bytes",
                 f"{(OWN0 + TABLES + 3) * PAGE},{(OWN0 + TABLES + 4) * PAGE}", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["memory_bytes"] for r in rows] == [(OWN0 + TABLES + k) * PAGE for k in (3, 4)]
    assert [r["oom"] for r in rows] == [True, False]
    assert rows[0]["oom_thread"] == 0 and rows[0]["oom_ns"] > 0
    assert main(["run", str(path), "--memory-bytes", "0"]) == 2
    assert "--memory-bytes must be at least 1" in capsys.readouterr().err


# -- eviction records (Result.evictions) ----------------------------------------------------

def test_eviction_records_say_which_page_when_and_by_whom():
    from vmlab import Adversary

    v = Vma(BASE, BASE + 64 * PAGE, "file", name="data")
    # 5 frames, readahead 4: page 0 misses (read-around 0..3: start max(0, 0 - 2) = 0, the
    # mark on 0 + 4 - 1 = 3); page 8 misses: its own frame is the fifth, then its window 6..9
    # evicts 1, 2, 3 (FIFO, passing over page 0, which a PTE maps: 11.5) for 6, 7, 9 at its
    # lookup; an adversary call at 500 000 drops the unmapped pages, so that page 60 and its
    # window find frames free for 60, 58 and 59, and 61 none (0 and 8 are mapped)
    tr = trace([(3, 0, BASE, R, 0), (3, 0, BASE + 8 * PAGE, R, 0),
                (3, 0, BASE + 60 * PAGE, R, 600_000)])
    sc = Scenario(tr, vmas=[v], costs=COSTS, fault_model="kernel", ra_pages=4,
                  memory_pages=5, replacement="fifo",
                  adversary=Adversary("times", times_ns=(500_000,)))
    both(sc)
    ev = vmlab.simulate(sc, "nopage").evictions
    h2 = READ_FAULT + IO + WAKE + 1 + READ_FAULT     # the second fault's lookup
    first = ev[ev["time_ns"] == h2]
    assert list(first["file_page"]) == [1, 2, 3] and set(first["cause"]) == {"readahead"}
    assert list(first["thread"]) == [0, 0, 0]
    assert list(first["vpn"]) == [0x401, 0x402, 0x403] and set(first["vma_name"]) == {"data"}
    adv = ev[ev["cause"] == "adversary"]
    # unmapped then: 6, 7, 9 (read ahead); 0 and 8 are mapped
    assert sorted(adv["file_page"]) == [6, 7, 9]
    assert (adv["time_ns"] == 500_000).all() and (adv["thread"] == -1).all()
    assert len(ev) == 3 + 3
    # every eviction is recorded once: the counters agree with the table
    s = vmlab.simulate(sc, "nopage").summary
    assert len(ev) == s["n_evictions"] + s["n_adversary_evictions"]
    assert len(ev[ev["cause"] != "adversary"]) == s["n_evictions"]


def test_a_hit_page_evicted_while_its_fault_around_runs_stays_unmapped():
    # page model, fault-around 4, five frames all preloaded (pages 0..4, page 0 the LRU's
    # oldest).  Thread 0 reads page 0: a hit, installed at i = 600 + 800 = 1 400 with pages
    # 1..3 around it, the lock released at 1 400 + 3 * 60 = 1 580.  Thread 1 (gap 900) misses
    # page 8 and evicts page 0 at its lookup 900 + 600 = 1 500, between the install and the
    # release: the release must not map page 0 again, so thread 0's next read of it is a
    # major fault (docs/model.md 5 and 8)
    tr = trace([(1, 0, BASE, R, 0), (2, 0, BASE + 8 * PAGE, R, 900), (1, 0, BASE, R, 0)])
    sc = Scenario(tr, vmas=[Vma(BASE, BASE + 16 * PAGE, "file")], costs=COSTS, memory_pages=5,
                  fault_around_pages=4, preload=[BASE + p * PAGE for p in range(5)])
    r = both(sc)
    assert r.faults["vpn"] == [0x400, 0x408, 0x400]
    assert r.faults["start_ns"] == [0, 900, 1_581]
    assert r.faults["end_ns"] == [1_580, 900 + READ_FAULT + IO + WAKE,
                                  1_581 + READ_FAULT + IO + WAKE]
    assert r.faults["major"] == [0, 1, 1]
    # page 0 by thread 1 at 1 500; then page 1 (the oldest left) by thread 0's refault
    assert r.evictions["time_ns"] == [1_500, 1_581 + READ_FAULT]
    assert r.evictions["file_page"] == [0, 1]
    assert r.evictions["thread"] == [1, 0]
