"""The engine's preparation: one-sort and chunked indexing give the same page ids."""
import importlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import vmlab
from reference_index import pages_in_one_sort

# the module (vmlab.engine exports a function of the same name)
P = importlib.import_module("vmlab.engine.prepare")


def _chunked(tr, shift, chunk, slots=None, max_int32=None):
    """``_pages_chunked`` with a small chunk (and a small first page table, and few int32
    page ids, to reach its growth and int64 fallback)."""
    saved = P._CHUNK, P._PAGE_TABLE_SLOTS, P._MAX_INT32_PAGES
    try:
        P._CHUNK = chunk
        if slots is not None:
            P._PAGE_TABLE_SLOTS = slots
        if max_int32 is not None:
            P._MAX_INT32_PAGES = max_int32
        return P._pages_chunked(tr, shift, len(tr))
    finally:
        P._CHUNK, P._PAGE_TABLE_SLOTS, P._MAX_INT32_PAGES = saved


def _assert_same(one, many):
    for name, a, b in zip(("keys", "first", "rank", "by_key", "rec_page"), one, many):
        assert np.asarray(a).dtype == np.asarray(b).dtype, name
        assert np.array_equal(np.asarray(a), np.asarray(b)), name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(0, 40),
                          st.booleans()), min_size=1, max_size=200),
       st.integers(1, 17), st.sampled_from([2, 4, 1 << 16]))
def test_one_sort_and_chunked_indexing_agree(recs, chunk, slots):
    tid = np.array([r[0] for r in recs])
    asid = np.array([r[1] for r in recs])
    addr = np.array([0x10000 + r[2] * 4096 + 8 for r in recs], np.uint64)
    op = np.array([4 if r[3] and i % 3 == 0 else 0 for i, r in enumerate(recs)], np.uint8)
    tr = vmlab.Trace(addr, op=op, tid=tid, asid=asid)
    shift = 12
    one = pages_in_one_sort(tr, shift)
    _assert_same(one, _chunked(tr, shift, chunk, slots))
    # every access record's id names its own page
    uniq, first, rank, by_key, rec_page = one
    acc = op != 4
    keys = (asid.astype(np.uint64) << np.uint64(52)) | (addr >> np.uint64(shift))
    assert np.array_equal(uniq[rank[rec_page[acc]]], keys[acc])
    assert np.all(rec_page[~acc] == -(asid[~acc] + 1))


def test_chunked_indexing_of_wide_keys_and_many_pages():
    """Addresses over the whole 64-bit range, 4096 address spaces, a few LOCK_W records,
    a page table that doubles many times across chunks and scratch-file page ids."""
    rng = np.random.default_rng(7)
    n = 30_000
    addr = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    addr[n // 2:] = addr[rng.integers(0, n // 2, size=n - n // 2)]   # repeats, far apart
    asid = rng.integers(0, 4096, size=n).astype(np.uint16)
    asid[n // 2:] = 7
    op = np.where(rng.random(n) < 0.01, 4, 1).astype(np.uint8)
    tr = vmlab.Trace(addr, op=op, asid=asid, meta=vmlab.TraceMeta(page_size=1 << 16))
    shift = 16
    one = pages_in_one_sort(tr, shift)
    old = P.MEMMAP_RECORDS
    try:
        P.MEMMAP_RECORDS = 1000
        many = _chunked(tr, shift, 4096, slots=2)
    finally:
        P.MEMMAP_RECORDS = old
    assert isinstance(many[4], np.memmap)
    _assert_same(one, many)


def test_chunked_indexing_falls_back_to_int64_ids():
    """More distinct pages than int32 ids hold (a lowered limit here): int64 ids, same
    values; exactly at the limit they stay int32."""
    tr = vmlab.Trace(np.arange(500, dtype=np.uint64) % 37 * 4096, op=np.tile([0, 4], 250))
    one = pages_in_one_sort(tr, 12)
    d = len(one[0])
    for limit, dtype in ((d - 1, np.int64), (d, np.int32), (3, np.int64)):
        many = _chunked(tr, 12, 64, slots=4, max_int32=limit)
        assert many[4].dtype == dtype
        for a, b in zip(one, many):
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_chunked_indexing_of_lock_w_only():
    tr = vmlab.Trace(np.zeros(10, np.uint64), op=np.full(10, 4, np.uint8),
                     asid=np.arange(10) % 3)
    _assert_same(pages_in_one_sort(tr, 12), _chunked(tr, 12, 3))


def test_index_puts_each_threads_records_together_in_trace_order():
    tid = np.array([5, 2, 5, 9, 2, 5])
    addr = np.array([0x10000 + i * 4096 for i in range(6)], np.uint64)
    gap = np.array([10, 20, 30, 40, 50, 60], np.uint32)
    tr = vmlab.Trace(addr, tid=tid, gap_ns=gap)
    idx = P.index_trace(tr)
    assert idx.thr_tid.tolist() == [2, 5, 9] and idx.thr_off.tolist() == [0, 2, 5, 6]
    # positions: thread 2's records 1, 4; thread 5's 0, 2, 5; thread 9's 3
    assert idx.rec_gap.dtype == np.uint64
    assert idx.rec_gap.tolist() == [20, 50, 10, 30, 60, 40]
    assert idx.by_key[np.argsort(idx.by_key)].tolist() == list(range(6))
    pages = idx.keys[idx.rank[idx.rec_page]]
    assert (pages - 0x10).tolist() == [1, 4, 0, 2, 5, 3]


def test_long_trace_paths_give_the_same_run(monkeypatch):
    """Chunked indexing and temporary-file arrays (the path of traces over 5e7 records),
    forced on a small trace, give the same run record for record."""
    from vmlab.trace import synth
    from vmlab.trace.build import interleave

    parts = [synth.zipf(3000, 200, alpha=1.0, seed=s, gap_ns=150) for s in range(3)]
    lock = synth.lock_loop(40, cs_gap_ns=2_000)

    def run():
        tr = interleave(parts + [lock], how="round_robin")   # a new trace: no cached index
        sc = vmlab.Scenario(tr, backing="file", memory_pages=60,
                            signals=[vmlab.poisson_signals(20_000)], seed=4)
        return vmlab.simulate(sc, "nopage_refault")

    a = run()
    monkeypatch.setattr(P, "_CHUNK", 1000)
    monkeypatch.setattr(P, "MEMMAP_RECORDS", 500)
    b = run()
    timing = ("prepare_s", "kernel_s")
    assert {k: v for k, v in a.summary.items() if k not in timing} == \
        {k: v for k, v in b.summary.items() if k not in timing}
    assert len(a.faults) > 100 and len(a.signals) > 0 and len(a.locks) > 0
    for name in ("faults", "signals", "locks", "threads"):
        assert getattr(a, name).equals(getattr(b, name)), name
