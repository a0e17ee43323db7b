"""Statistics: summaries, VMA inference, stack distances, LRU and working-set curves."""
import json
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from vmlab.trace import Op, Trace, TraceMeta, open_trace
from vmlab.trace import build, stats, synth
from vmlab.trace.vmas import VmaRange, infer_vmas, label_vmas

PS = 4096
L, S, I, M, W = Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY, Op.LOCK_W


def make(addrs, ops=None, tids=None, asids=None, gaps=None, page_size=PS, source="hand",
         sizes=None):
    return Trace(np.array(addrs, np.uint64), op=None if ops is None else np.array(ops),
                 tid=tids, asid=asids, gap_ns=gaps,
                 size=None if sizes is None else np.array(sizes, np.uint32),
                 meta=TraceMeta(page_size=page_size, source=source))


# -- naive references, written plainly -------------------------------------------------------

def naive_stack_distances(keys):
    """LRU stack as a list, most recent first: distance = position in the stack."""
    stack, out = [], []
    for k in keys:
        if k in stack:
            d = stack.index(k)
            stack.pop(d)
            out.append(d)
        else:
            out.append(-1)
        stack.insert(0, k)
    return out


def simulate_lru_misses(keys, capacity):
    cache, misses = OrderedDict(), 0
    for k in keys:
        if k in cache:
            cache.move_to_end(k)
        else:
            misses += 1
            if capacity > 0:
                cache[k] = True
                if len(cache) > capacity:
                    cache.popitem(last=False)
    return misses


def naive_working_set(keys, window):
    n = len(keys)
    return sum(len(set(keys[max(0, t - window + 1):t + 1])) for t in range(n)) / n


def page_keys(t):
    """(asid, page) of each memory-access record."""
    keep = t.op != W
    return list(zip(t.asid[keep].tolist(), (t.addr[keep] // t.page_size).tolist()))


@st.composite
def small_traces(draw):
    n = draw(st.integers(1, 60))
    pages = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    offs = draw(st.lists(st.integers(0, PS - 1), min_size=n, max_size=n))
    ops = draw(st.lists(st.sampled_from([0, 0, 1, 2, 4]), min_size=n, max_size=n))
    asids = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    addr = [0x10000000 + p * PS + o for p, o in zip(pages, offs)]
    return make(addr, ops=ops, asids=asids)


# -- summary -------------------------------------------------------------------------------

def hand_trace():
    addrs = [0x400000, 0x400010, 0x401000, 0x601000, 0x601008, 0x7FFD0000F000, 0x600000000000]
    ops = [I, I, I, S, L, M, W]
    tids = [0, 0, 1, 1, 1, 5, 5]
    # (the LOCK_W names its region, a page: test_lock_records_without_a_region_name_no_pages)
    return make(addrs, ops=ops, tids=tids, gaps=[1, 2, 3, 4, 5, 6, 7],
                sizes=[8, 8, 8, 8, 8, 8, PS])


@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 20])
def test_summarize_exact(chunk):
    s = stats.summarize(hand_trace(), chunk_records=chunk)
    assert s.n_records == 7 and s.n_threads == 3 and s.n_address_spaces == 1
    assert s.distinct_pages == 5  # 0x400, 0x401, 0x601, stack page, lock page
    assert s.op_counts == {"load": 1, "store": 1, "ifetch": 3, "modify": 1, "lock_w": 1,
                           "lock_r": 0}
    assert s.thread_counts == {0: 2, 1: 3, 5: 2}
    assert s.addr_min == 0x400000 and s.addr_max == 0x7FFD0000F000
    assert s.has_gap and s.total_gap_ns == 28
    assert s.page_size == PS and s.source == "hand"
    assert [(v.start, v.end, v.pages_touched, v.records, v.label) for v in s.vmas] == [
        (0x400000, 0x402000, 2, 3, "text"),
        (0x601000, 0x602000, 1, 2, "data"),
        (0x600000000000, 0x600000001000, 1, 1, "data"),
        (0x7FFD0000F000, 0x7FFD00010000, 1, 1, "stack"),
    ]
    assert s.vma_pages == [2, 1, 1, 1]


def test_summarize_multi_asid_and_big_tids():
    t = make([0x1000, 0x1000, 0x2000, 0x1000], tids=np.array([1 << 30, 3, 3, 1 << 30], np.uint32),
             asids=[0, 1, 1, 2])
    s = stats.summarize(t, chunk_records=2)
    assert s.n_address_spaces == 3 and s.distinct_pages == 4  # (asid, page) pairs
    assert s.thread_counts == {3: 2, 1 << 30: 2}
    assert not s.has_gap and s.total_gap_ns == 0


def test_summarize_outputs():
    s = stats.summarize(hand_trace())
    d = s.to_dict()
    json.dumps(d)
    assert d["vmas"][0]["label"] == "text" and d["thread_counts"][5] == 2
    text = str(s)
    for needle in ("records         7", "distinct pages  5", "ifetch 3", "stack", "0x400000"):
        assert needle in text
    f = s.to_frame()
    assert f.loc[0, "n_records"] == 7 and f.loc[0, "n_ifetch"] == 3 and f.loc[0, "n_vmas"] == 4
    assert len(s.to_frame("vmas")) == 4 and list(s.to_frame("threads").tid) == [0, 1, 5]
    empty = stats.summarize(make([]))
    assert empty.n_records == 0 and empty.addr_min is None and "records         0" in str(empty)


def test_summarize_memmapped_in_chunks(tmp_path):
    t = build.interleave([synth.zipf(50_000, pages=300, seed=1, gap_ns=10),
                          synth.lock_loop(100), synth.sequential(1000, pages=20,
                                                                 base_addr=0x7FFFF0000000)])
    path = t.save(tmp_path / "t.vmt")
    m = open_trace(path)
    a = stats.summarize(m, chunk_records=4096)
    b = stats.summarize(t)
    assert a.to_dict() | {"source": ""} == b.to_dict() | {"source": ""}
    assert a.distinct_pages == len(np.unique(t.addr // PS))
    assert a.total_gap_ns == 50_000 * 10 + 100 * 100  # zipf gaps + lock_loop's cs_gap_ns


# -- VMA inference -------------------------------------------------------------------------

def test_infer_vmas_lackey_like():
    text = [0x400000 + i * PS for i in range(5)]
    heap = [0x602000 + i * PS for i in range(0, 40, 3)]  # gaps of 2 pages: one range
    lib = [0x7F1234560000 + i * PS for i in (0, 1, 30)]  # 28-page hole: two ranges
    stack = [0x7FFDFFFF0000, 0x7FFDFFFF1000]
    addrs = text + heap + lib + stack
    ops = [I] * 5 + [L] * len(heap) + [I, L, L] + [S, S]
    vm = infer_vmas(make(addrs, ops=ops), gap_pages=16)
    got = [(hex(v.start), hex(v.end), v.pages_touched, v.label) for v in vm]
    assert got == [
        ("0x400000", "0x405000", 5, "text"),
        (hex(0x602000), hex(0x602000 + 40 * PS), 14, "data"),
        (hex(0x7F1234560000), hex(0x7F1234562000), 2, "text"),
        (hex(0x7F1234560000 + 30 * PS), hex(0x7F1234560000 + 31 * PS), 1, "data"),
        (hex(0x7FFDFFFF0000), hex(0x7FFDFFFF2000), 2, "stack"),
    ]
    assert sum(v.records for v in vm) == len(addrs)


def test_lock_records_without_a_region_name_no_pages():
    """A LOCK_W for the whole address space (size 0) or for a new mapping at
    NEW_MAPPING_ADDR (the perf reader's mmap with no hint), and a LOCK_R, say nothing about
    where the mappings are: no page, no VMA, no address in the summary's range.  A LOCK_W
    that names its region (an munmap) counts like an access."""
    from vmlab.trace.model import NEW_MAPPING_ADDR, names_pages

    R = Op.LOCK_R
    addrs = [0x400000, 0x401000, 0, NEW_MAPPING_ADDR, 0x7F0000000000, 0x7F0000005000,
             0x601000]
    ops = [I, L, W, W, R, W, S]
    sizes = [8, 8, 0, 0x2000, 0, 0x1000, 8]
    t = Trace(np.array(addrs, np.uint64), op=np.array(ops), size=np.array(sizes, np.uint32),
              meta=TraceMeta(page_size=PS, source="hand"))
    assert names_pages(t.op, t.addr, t.size).tolist() == [True, True, False, False, False,
                                                          True, True]
    for chunk in (1, 3, 100):
        s = stats.summarize(t, chunk_records=chunk)
        assert s.distinct_pages == 4                      # 0x400, 0x401, the munmap's, 0x601
        assert (s.addr_min, s.addr_max) == (0x400000, 0x7F0000005000)
        assert s.op_counts["lock_w"] == 3 and s.op_counts["lock_r"] == 1
        got = [(v.start, v.end, v.records) for v in infer_vmas(t, chunk_records=chunk)]
        assert got == [(0x400000, 0x402000, 2), (0x601000, 0x602000, 1),
                       (0x7F0000005000, 0x7F0000006000, 1)]
    # a trace of lock records alone has no address range
    only = Trace(np.array([0, NEW_MAPPING_ADDR], np.uint64), op=np.array([W, W]),
                 size=np.array([0, 4096], np.uint32), meta=TraceMeta(page_size=PS))
    s = stats.summarize(only)
    assert s.distinct_pages == 0 and s.addr_min is None and s.vmas == []


def test_infer_vmas_gap_boundary_and_asids():
    # 16 untouched pages between: same range; 17: split
    t = make([0, 17 * PS, 100 * PS, 118 * PS, 0], asids=[0, 0, 0, 0, 1])
    vm = infer_vmas(t, gap_pages=16, chunk_records=2)
    assert [(v.asid, v.start // PS, v.end // PS) for v in vm] == [
        (0, 0, 18), (0, 100, 101), (0, 118, 119), (1, 0, 1)]
    assert [v.records for v in vm] == [2, 1, 1, 1]
    assert len(infer_vmas(t, gap_pages=0)) == 5
    assert all(v.label == "" for v in infer_vmas(t, label=False))


def test_label_vmas_rules():
    v = [VmaRange(0, 0x1000, 0x2000, 1, 1), VmaRange(0, 0x7FF000001000, 0x7FF000002000, 1, 1),
         VmaRange(1, 0x1000, 0x2000, 1, 1)]
    assert [x.label for x in label_vmas(v, [True, True, False])] == ["text", "stack", "data"]
    assert VmaRange(0, 0x1000, 0x3000, 2, 2).pages() == 2 and 0x1fff in v[0]
    # stack operations: enough of them, in a range nothing is fetched from
    w = [VmaRange(0, 0x1000, 0x2000, 9, 9), VmaRange(0, 0x5000, 0x6000, 9, 9),
         VmaRange(0, 0x9000, 0xA000, 9, 9), VmaRange(0, 0x1FFEFFE000, 0x1FFEFFF000, 9, 9)]
    assert [x.label for x in label_vmas(w, [True, False, False, False], [4, 3, 0, 4])] == [
        "text", "data", "data", "stack"]
    # a recording's mappings decide: the range over its [stack], not the highest one
    assert [x.label for x in label_vmas(v, [False, False, False], [4, 0, 0],
                                        stacks=[(1, 0x1000, 0x2000)])] == [
        "data", "data", "stack"]
    assert [x.label for x in label_vmas(v, stacks=[])] == ["data"] * 3


def _lackey_like(stack_top=0x1FFF001000, pushes=6):
    """A lackey-like trace (valgrind's layout: nothing above 0x1fff001000): code, a heap,
    and a stack that ``pushes`` push/pop pairs touch, each a one-byte fetch, its 8-byte
    access and the next instruction's fetch; decoys that are no stack operation, and one
    store to the stack by a longer instruction."""
    code, heap, sp = 0x108000, 0x4A15000, stack_top - 0x100
    recs = []                                              # (op, addr, size, tid)
    for n in range(pushes):
        pc = code + 0x40 * n
        recs += [(I, pc, 1, 0), (S, sp - 8 * n, 8, 0),     # push %rbp
                 (I, pc + 1, 3, 0), (L, heap + 8 * n, 8, 0),   # mov (%rax),%rdx
                 (I, pc + 4, 1, 0), (L, sp - 8 * n, 8, 0),     # pop %rbp
                 (I, pc + 5, 2, 0)]
    c = code + 0x400
    recs += [(I, c, 1, 0), (S, heap + 0x100, 1, 0), (I, c + 1, 1, 0),       # stosb: 1 byte
             (I, c + 2, 1, 0), (L, heap + 0x200, 8, 0), (I, c + 0x400, 4, 0),  # no fall-through
             (I, c + 3, 1, 0), (L, heap + 0x300, 8, 1), (I, c + 4, 1, 0),   # another thread's
             (I, c + 5, 1, 0), (M, heap + 0x400, 8, 0), (I, c + 6, 1, 0),   # a modify
             (I, c + 7, 5, 0), (S, sp - 0x40, 8, 0), (I, c + 12, 1, 0)]     # mov %rax,-0x40(%rsp)
    op, addr, size, tid = zip(*recs)
    return make(list(addr), ops=list(op), tids=list(tid), sizes=list(size))


def test_stack_ops_are_word_accesses_of_one_byte_instructions():
    from vmlab.trace.vmas import stack_ops

    t = _lackey_like()
    got = np.flatnonzero(stack_ops(t.op, t.size, t.addr, t.tid, t.asid))
    assert got.tolist() == [i for n in range(6) for i in (7 * n + 1, 7 * n + 5)]
    assert (t.addr[got] >= 0x1FFF000000).all()
    # a synthetic trace (every size 8 by default) and a perf-like one have none
    assert not stack_ops(*(np.asarray(c) for c in (
        [I, L, I], [8, 8, 8], [0x1000, 0x5000, 0x1001], [0, 0, 0], [0, 0, 0]))).any()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_valgrind_client_stack_labelled_from_its_stack_operations(chunk):
    """Under valgrind the client stack sits near 0x1fff000000, far below STACK_MIN_ADDR:
    the push/pop records tell it (in any chunking of the records)."""
    vm = infer_vmas(_lackey_like(), chunk_records=chunk)
    assert [(hex(v.start), v.label) for v in vm] == [
        ("0x108000", "text"), ("0x4a15000", "data"), ("0x1fff000000", "stack")]
    assert stats.summarize(_lackey_like(), chunk_records=chunk).vmas == vm
    # one push/pop pair (2 stack operations) is too few (STACK_OP_MIN: 4); two pairs do
    assert infer_vmas(_lackey_like(pushes=1), chunk_records=chunk)[-1].label == "data"
    assert infer_vmas(_lackey_like(pushes=2), chunk_records=chunk)[-1].label == "stack"


def test_recorded_stack_mapping_names_the_stack():
    from vmlab.trace.mappings import FOREVER, MAPPING_DTYPE, NO_FILE, Backing, Mappings

    t = _lackey_like(pushes=0)          # no stack operations
    rows = np.zeros(2, MAPPING_DTYPE)
    rows[0] = (0, 0x1FFE801000, 0x1FFF001000, 3, 0, Backing.STACK, NO_FILE, 0, 0, FOREVER)
    rows[1] = (0, 0x4A15000, 0x4A16000, 3, 0, Backing.ANON, NO_FILE, 0, 0, FOREVER)
    rec = Trace.from_columns(t.columns, t.meta, mappings=Mappings(rows, (), "test"))
    assert [v.label for v in infer_vmas(t)] == ["text", "data", "data"]
    assert [v.label for v in infer_vmas(rec)] == ["text", "data", "stack"]
    # a recording without a [stack] row over the top range: no stack, whatever its address
    high = make([0x400000, 0x7FFD0000F000], ops=[I, S])
    rows = np.zeros(1, MAPPING_DTYPE)
    rows[0] = (0, 0x7FFD00000000, 0x7FFD00010000, 1, 0, Backing.SPECIAL, NO_FILE, 0, 0,
               FOREVER)
    high_rec = Trace.from_columns(high.columns, high.meta, mappings=Mappings(rows, (), "t"))
    assert [v.label for v in infer_vmas(high)] == ["text", "stack"]
    assert [v.label for v in infer_vmas(high_rec)] == ["text", "data"]


# -- stack distances and curves ------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(small_traces())
def test_stack_distance_matches_naive(t):
    d = stats.reuse_distance(t)
    keep = t.op != W
    assert (d[~keep] == stats.NOT_ACCESS).all()
    assert d[keep].tolist() == naive_stack_distances(page_keys(t))


def test_stack_distance_known_sequence():
    addrs = [p * PS for p in [1, 2, 3, 1, 1, 2, 4, 3]]
    assert stats.reuse_distance(make(addrs)).tolist() == [-1, -1, -1, 2, 0, 2, -1, 3]


def test_stack_distance_larger_random_and_sparse_pages():
    t = synth.zipf(3000, pages=200, alpha=0.9, seed=3)
    assert stats.reuse_distance(t).tolist() == naive_stack_distances(page_keys(t))
    far = make([(1 << 50) * k for k in [0, 5, 0, 7, 5]])  # wide page span: sorted ids path
    assert stats.reuse_distance(far).tolist() == [-1, -1, 1, -1, 2]


@settings(max_examples=40, deadline=None)
@given(small_traces(), st.lists(st.integers(0, 15), min_size=1, max_size=5))
def test_lru_miss_ratio_equals_simulation(t, sizes):
    keys = page_keys(t)
    s, mr = stats.miss_ratio_curve(t, sizes)
    assert s.tolist() == sizes
    for c, r in zip(sizes, mr):
        expect = simulate_lru_misses(keys, c) / len(keys) if keys else 0.0
        assert r == pytest.approx(expect, abs=1e-12)


def test_lru_miss_ratio_on_zipf():
    t = synth.zipf(20_000, pages=500, alpha=1.0, seed=5)
    keys = page_keys(t)
    sizes, mr = stats.miss_ratio_curve(t)
    assert sizes[-1] == len(set(keys)) and (np.diff(mr) <= 0).all()
    for c in (1, 16, 100, 499):
        _, r = stats.miss_ratio_curve(t, [c], distances=stats.reuse_distance(t))
        assert r[0] == simulate_lru_misses(keys, c) / len(keys)


@settings(max_examples=40, deadline=None)
@given(small_traces(), st.lists(st.integers(1, 70), min_size=1, max_size=4))
def test_working_set_equals_naive(t, windows):
    keys = page_keys(t)
    w, ws = stats.working_set_curve(t, windows)
    for T, v in zip(windows, ws):
        expect = naive_working_set(keys, T) if keys else 0.0
        assert v == pytest.approx(expect, rel=1e-12, abs=1e-12)


def test_working_set_scan():
    t = synth.sequential(1000, pages=10)
    w, ws = stats.working_set_curve(t, [1, 5, 10, 1000])
    assert ws[0] == 1.0 and ws[2] == pytest.approx((sum(range(1, 11)) + 990 * 10) / 1000)
    assert ws[-1] <= 10


def test_summarize_tells_what_a_recording_holds():
    """A recording's summary counts its mapping rows, files (measured residency, large
    folios), file reads, moves, placements and zaps; a plain trace has none of it."""
    from vmlab.trace.mappings import (FOREVER, MAPPING_DTYPE, PLACEMENT_DTYPE, ZAP_DTYPE,
                                      Backing, FileInfo, Mappings)

    t = np.zeros(2, MAPPING_DTYPE)
    t[0] = (0, 0x400000, 0x800000, 1, 0, Backing.FILE, 0, 0, 0, FOREVER)
    t[1] = (0, 0x900000, 0x901000, 3, 0, Backing.ANON, 0xFFFFFFFF, 0, 0, FOREVER)
    files = [FileInfo("/data/a", 1, 2, 1024 * 4096, np.ones(1024, bool), "before_run",
                      folios=((0, 16), (64, 64))),
             FileInfo("/data/b", 1, 3, 4096)]
    pl = np.array([(0, 0x400000, 0x800000, 0, 0)], PLACEMENT_DTYPE)
    zaps = np.array([(0, 0x900000, 0x901000, 1, 4), (0, 0x900000, 0x901000, 1, 24)], ZAP_DTYPE)
    tr = Trace(np.array([0x400000, 0x900000], np.uint64),
               mappings=Mappings(t, files, "test", placements=pl, zaps=zaps))
    s = stats.summarize(tr)
    assert s.recorded == {"rows": 2, "files": 2, "files_resident_measured": 1,
                          "files_with_large_folios": 1, "pages_in_large_folios": 80,
                          "file_reads": 0, "moves": 0, "placements": 1, "zaps": 2}
    assert "recorded        2 mapping rows, 2 files (1 with their page-cache residency, 1 " \
           "with large folios: 80 pages), 0 file reads, 0 moves, 1 placements, 2 zaps" \
           in str(s)
    assert s.to_frame()["recorded_placements"].tolist() == [1]
    assert s.to_frame()["recorded_zaps"].tolist() == [2]
    plain = stats.summarize(Trace(np.array([0x400000], np.uint64)))
    assert plain.recorded == {} and "recorded " not in str(plain)


def test_summary_counts_the_accesses_the_kernel_made():
    from vmlab.trace import Call, Trace
    from vmlab.trace.stats import summarize

    k = int(Call.KERNEL)
    tr = Trace(np.array([0x1000, 0x2000, 0x3000, 0x4000], np.uint64),
               op=np.array([1, 1, 0, 4], np.uint8), size=[8, 8, 8, 0],
               call=np.array([k, 0, k, 2], np.uint8))
    s = summarize(tr, chunk_records=3)
    assert s.kernel_made == 2 and s.to_dict()["kernel_made"] == 2
    assert "kernel-made     2 accesses" in str(s)
    assert summarize(Trace(np.array([0x1000], np.uint64))).kernel_made == 0
    assert "kernel-made" not in str(summarize(Trace(np.array([0x1000], np.uint64))))
