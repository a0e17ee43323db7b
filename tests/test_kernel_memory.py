"""The kernel's own memory under ``memory_bytes`` (docs/model.md section 12): a PGD per address
space and a 4-frame kernel stack per thread from time 0, and a frame for each page table (PTE,
PMD, PUD: 512 entries each) at the install of the first PTE it holds, unreclaimable.  Checked
by hand, in the engine and the reference simulator alike."""
from memory_cases import ANON_WRITE, COSTS, OWN0, PAGE, R, W, both, trace
from vmlab import PRESETS, Scenario, Vma


def anon_writes(memory_frames, pages=(0x3fe, 0x3ff, 0x400), fault_model="kernel"):
    """One thread writing anonymous pages of a VMA that straddles a PTE table's boundary
    (virtual page 0x400 starts the next 512-page range)."""
    v = Vma(0x3fc * PAGE, 0x402 * PAGE, "anon")
    tr = trace([(0, 0, p * PAGE, W) for p in pages])
    return both(Scenario(tr, vmas=[v], costs=COSTS, fault_model=fault_model,
                         memory_bytes=memory_frames * PAGE))


def test_each_page_table_takes_a_frame_at_its_first_pte():
    # 5 frames at time 0; the first write: its PTE, PMD and PUD tables (3) and its page (1);
    # the second: its page; the third, in the next PTE table (same PMD and PUD): that table
    # and its page.  5 + 4 + 1 + 2 = 12 frames
    r = anon_writes(OWN0 + 4 + 1 + 2)
    assert r.counters["oom_ns"] == -1 and r.counters["n_faults"] == 3
    # one frame fewer: the third write's install finds none (nothing reclaimable)
    r = anon_writes(OWN0 + 4 + 1 + 1)
    t2 = 2 * (ANON_WRITE + 1)
    assert (r.counters["oom_thread"], r.counters["oom_ns"]) == (0, t2 + ANON_WRITE)
    assert r.faults["end_ns"][2] == -1
    # the same pages in one table need one table fewer
    r = anon_writes(OWN0 + 3 + 3, pages=(0x3fc, 0x3fd, 0x3ff))
    assert r.counters["oom_ns"] == -1
    # the page model installs a PTE at every fault and charges the same
    assert anon_writes(OWN0 + 4 + 1 + 2, fault_model="page").counters["oom_ns"] == -1
    assert anon_writes(OWN0 + 4 + 1 + 1, fault_model="page").counters["oom_ns"] == \
        2 * (ANON_WRITE + 1) + ANON_WRITE


def test_a_pmd_and_a_pud_table_are_charged_per_1_gb_and_512_gb_range():
    # pages 0 and 512: a second PTE table; 2**18 (1 GB apart with 4 KB pages): a second PTE
    # and PMD table; 2**27 (512 GB): a second PTE, PMD and PUD table.  Zero-page reads: no
    # anonymous frame
    for second, tables in ((1 << 9, 3 + 1), (1 << 18, 3 + 2), (1 << 27, 3 + 3)):
        vmas = [Vma(0, 16 * PAGE, "anon"), Vma(second * PAGE, (second + 16) * PAGE, "anon")]
        tr = trace([(0, 0, 0, R), (0, 0, second * PAGE, R)])
        ok = both(Scenario(tr, vmas=vmas, costs=COSTS, fault_model="kernel",
                           memory_bytes=(OWN0 + tables) * PAGE))
        assert ok.counters["oom_ns"] == -1
        oom = both(Scenario(tr, vmas=vmas, costs=COSTS, fault_model="kernel",
                            memory_bytes=(OWN0 + tables - 1) * PAGE))
        assert oom.counters["oom_ns"] > 0 and oom.faults["end_ns"][1] == -1


def test_a_page_table_evicts_page_cache_as_an_anonymous_page_does():
    # file pages 0x3ff and 0x400 read (page model): the first I/O takes a frame (6), its
    # install 3 tables (9); the second I/O a frame (10); its install a PTE table: at 10 frames
    # it evicts the first page (mapped, not pinned: section 8), no OOM
    v = Vma(0x3f0 * PAGE, 0x410 * PAGE, "file")
    tr = trace([(0, 0, 0x3ff * PAGE, R), (0, 0, 0x400 * PAGE, R)])
    r = both(Scenario(tr, vmas=[v], costs=COSTS, memory_bytes=10 * PAGE, records=True))
    assert r.counters["oom_ns"] == -1 and r.counters["n_evictions"] == 1
    assert r.evictions["file_page"] == [0xf]


def test_the_kernel_stacks_and_pgds_are_charged_at_time_0():
    # two threads in two address spaces: 2 PGDs and 8 stack frames; below that, an OOM at 0
    vs = [Vma(0, 16 * PAGE, "anon", asid=0), Vma(0, 16 * PAGE, "anon", asid=1)]
    tr = trace([(1, 0, 0, R), (2, 1, 0, R)])
    sc = Scenario(tr, vmas=vs, costs=COSTS, fault_model="kernel", memory_bytes=9 * PAGE)
    r = both(sc)
    assert (r.counters["oom_thread"], r.counters["oom_ns"]) == (0, 0)
    assert r.threads["state"] == [4, 4] and r.counters["n_faults"] == 0
    # 10 frames start; each thread's read then needs its own 3 tables
    assert both(sc.replace(memory_bytes=(10 + 6) * PAGE)).counters["oom_ns"] == -1
    assert both(sc.replace(memory_bytes=(10 + 5) * PAGE)).counters["oom_ns"] > 0
    # no memory_bytes, nothing charged: memory_pages counts page-cache frames only
    assert both(sc.replace(memory_bytes=None, memory_pages=5)).counters["oom_ns"] == -1


def test_an_eager_mapping_charges_every_table_of_its_span():
    # a device VMA of 1026 pages, 0x3fe..0x800: PTE tables 1, 2 and 3 (0x3fe.., 0x400.., 0x600..)
    # and one PMD and PUD: 5 tables at the remap's end; a limit 1 frame short is an OOM there
    v = Vma(0x3fe * PAGE, (0x3fe + 1026) * PAGE, "device", policy=PRESETS["remap_pfn_range"])
    tr = trace([(0, 0, 0x3fe * PAGE, R), (0, 0, 0x700 * PAGE, R)])
    sc = Scenario(tr, vmas=[v], costs=COSTS, memory_bytes=(OWN0 + 5) * PAGE)
    assert both(sc).counters["oom_ns"] == -1
    r = both(sc.replace(memory_bytes=(OWN0 + 4) * PAGE))
    remap = COSTS.remap_fixed_ns + 1026 * COSTS.pte_ns
    assert (r.counters["oom_thread"], r.counters["oom_ns"]) == (0, remap)
