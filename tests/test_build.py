"""Reshaping traces: properties of interleave, concat/slice, relocate and the filters."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, Trace, TraceMeta
from vmlab.trace import build, synth

SETTINGS = settings(max_examples=60, deadline=None)


def readonly(t):
    for col in t.columns.values():
        col.setflags(write=False)
    return t


@st.composite
def traces(draw, max_len=25, gap=None, page_size=4096):
    n = draw(st.integers(0, max_len))
    ints = lambda lo, hi: st.lists(st.integers(lo, hi), min_size=n, max_size=n)
    cols = dict(
        addr=np.array(draw(ints(0, 64)), np.uint64) * np.uint64(1024),
        op=np.array(draw(ints(0, 4)), np.uint8),
        tid=np.array(draw(ints(0, 3)), np.uint32),
        asid=np.array(draw(ints(0, 1)), np.uint16),
        size=np.full(n, 8, np.uint32),
    )
    if gap is None:
        gap = draw(st.booleans())
    if gap:
        cols["gap_ns"] = np.array(draw(ints(0, 50)), np.uint64)
    return readonly(Trace.from_columns(cols, TraceMeta(page_size=page_size, source="h")))


def records(t, idx=None):
    """(tid, asid, addr, op, gap) tuples of the records (gap 0 when absent)."""
    idx = np.arange(len(t)) if idx is None else idx
    gap = t.gap_ns if t.has_gap else np.zeros(len(t), np.uint64)
    return [(int(t.tid[i]), int(t.asid[i]), int(t.addr[i]), int(t.op[i]), int(gap[i]))
            for i in idx]


# -- interleave ----------------------------------------------------------------------------

def _check_interleave(srcs, out, same_process, whole_source=True):
    """Every source's records appear once, tids offset, each thread in order; with
    ``whole_source`` the source's full record order (across its threads) too."""
    assert len(out) == sum(len(s) for s in srcs)
    off = 0
    for s in srcs:
        hi = off + (int(s.tid.max()) + 1 if len(s) else 0)
        want = [(tid + off, 0 if same_process else asid, addr, op, gap)
                for tid, asid, addr, op, gap in records(s)]
        if whole_source:
            sel = np.flatnonzero((out.tid >= off) & (out.tid < hi))
            assert records(out, sel) == want
        for tid in range(off, hi):
            got = records(out, np.flatnonzero(out.tid == tid))
            assert got == [r for r in want if r[0] == tid]
        off = hi


@SETTINGS
@given(st.lists(traces(), min_size=1, max_size=4), st.sampled_from(["round_robin", "random"]),
       st.booleans(), st.integers(0, 2**32))
def test_interleave_preserves_order_and_count(srcs, how, same_process, seed):
    out = build.interleave(srcs, how=how, seed=seed, same_process=same_process)
    _check_interleave(srcs, out, same_process)
    if how == "random":
        assert out.equals(build.interleave(srcs, how=how, seed=seed, same_process=same_process))


@SETTINGS
@given(st.lists(traces(gap=True), min_size=1, max_size=4))
def test_interleave_time(srcs):
    out = build.interleave(srcs, how="time")
    _check_interleave(srcs, out, True, whole_source=False)
    clock = np.zeros(len(out), np.int64)
    for tid in np.unique(out.tid):
        m = out.tid == tid
        clock[m] = np.cumsum(out.gap_ns[m].astype(np.int64))
    assert (np.diff(clock) >= 0).all()


def test_interleave_round_robin_exact_and_tid_offsets():
    a = Trace(np.array([1, 2, 3], np.uint64), tid=np.array([0, 2, 2]))
    b = Trace(np.array([10], np.uint64), tid=np.array([5]))
    c = Trace(np.array([20, 21], np.uint64))
    out = build.interleave([a, b, c])
    assert out.addr.tolist() == [1, 10, 20, 2, 21, 3]
    assert out.tid.tolist() == [0, 8, 9, 2, 9, 2]  # b offset by 3, c by 3 + 6
    assert "trace 1 tids +3" in out.meta.notes
    assert not out.has_gap


def test_interleave_widens_tid_dtype():
    a = synth.reverse_file(n_threads=300, pages=300)  # tids up to 299
    b = synth.uniform(5, pages=4, seed=1)              # uint8 tid column
    out = build.interleave([b, a, b])
    assert out.tid.dtype.itemsize >= 2
    assert sorted(np.unique(out.tid).tolist()) == list(range(302))


def test_interleave_time_ties_by_trace_then_record():
    a = Trace(np.array([1, 2], np.uint64), gap_ns=np.array([5, 5]))
    b = Trace(np.array([10, 11], np.uint64), gap_ns=np.array([5, 0]))
    out = build.interleave([a, b], how="time")
    assert out.addr.tolist() == [1, 10, 11, 2]


def test_interleave_time_needs_gaps_and_same_page_size():
    a = synth.uniform(5, pages=3, seed=0)
    with pytest.raises(TraceFormatError, match="gap_ns"):
        build.interleave([a, a], how="time")
    big = synth.uniform(5, pages=3, seed=0, page_size=8192)
    with pytest.raises(TraceFormatError, match="page size"):
        build.interleave([a, big])
    with pytest.raises(ValueError):
        build.interleave([a], how="fifo")


def test_interleave_lespinasse_style():
    reads = synth.uniform(100, pages=1000, seed=1, gap_ns=1000)
    loop = synth.lock_loop(300, cs_gap_ns=200)
    out = build.interleave([reads, loop], how="time")
    assert out.n_threads == 2
    assert (out.op[out.tid == 1] == Op.LOCK_W).all()
    assert (out.asid == 0).all()


# -- concat / slice ------------------------------------------------------------------------

@SETTINGS
@given(traces(), st.data())
def test_concat_slice_inverse(t, data):
    k = data.draw(st.integers(0, len(t)))
    parts = [build.slice_records(t, 0, k), build.slice_records(t, k, None)]
    assert build.concat(parts).equals(t)
    j = data.draw(st.integers(0, len(t)))
    assert len(build.slice_records(t, k, j)) == max(0, j - k)


@SETTINGS
@given(st.lists(traces(), min_size=1, max_size=4))
def test_slice_of_concat_gives_back_parts(ts):
    c = build.concat(ts)
    lo = 0
    for t in ts:
        part = build.slice_records(c, lo, lo + len(t))
        assert records(part) == records(t)
        lo += len(t)
    assert c.has_gap == any(t.has_gap for t in ts)


def test_concat_page_size_error():
    a = synth.uniform(3, pages=2, seed=0)
    b = synth.uniform(3, pages=2, seed=0, page_size=65536)
    with pytest.raises(TraceFormatError, match="different page sizes"):
        build.concat([a, b])
    with pytest.raises(ValueError):
        build.concat([])


def test_slice_negative_indices_and_views():
    t = synth.sequential(10, pages=10)
    s = build.slice_records(t, -3)
    assert len(s) == 3 and s.addr.tolist() == t.addr[-3:].tolist()
    assert np.shares_memory(s.addr, t.addr)
    assert "[records 7:10]" in s.meta.source


# -- relocate ------------------------------------------------------------------------------

@SETTINGS
@given(traces(gap=False), st.integers(0, 64), st.integers(0, 32), st.integers(0, 128))
def test_relocate_moves_only_the_range(t, s_page, length, d_page):
    src_start, src_end = s_page * 1024, (s_page + length) * 1024
    dst = d_page * 1024
    a = t.addr.astype(np.int64)
    inside = (a >= src_start) & (a < src_end)
    in_way = (~inside) & (a >= dst) & (a < dst + (src_end - src_start))
    if in_way.any():
        with pytest.raises(TraceFormatError, match="merge"):
            build.relocate(t, src_start, src_end, dst)
        out = build.relocate(t, src_start, src_end, dst, allow_merge=True)
    else:
        out = build.relocate(t, src_start, src_end, dst)
    b = out.addr.astype(np.int64)
    assert (b[~inside] == a[~inside]).all()
    assert (b[inside] == a[inside] + dst - src_start).all()
    for name in ("tid", "asid", "op", "size"):
        assert np.array_equal(out.columns[name], t.columns[name])


def test_relocate_asid_only_and_negative_shift():
    t = Trace(np.array([0x5000, 0x5000, 0x9000], np.uint64), asid=np.array([0, 1, 0]))
    out = build.relocate(t, 0x5000, 0x6000, 0x1000, asid=1)
    assert out.addr.tolist() == [0x5000, 0x1000, 0x9000]
    with pytest.raises(ValueError):
        build.relocate(t, 0x5000, 0x6000, (1 << 64) - 0x800)


# -- filters -------------------------------------------------------------------------------

@SETTINGS
@given(traces(), st.lists(st.sampled_from(["load", "S", "ifetch", "M", "lock_w", 0, 4]),
                          min_size=1, max_size=3))
def test_filter_ops_counts(t, ops):
    codes = {int(Op.LOAD if o == "load" else Op.STORE if o == "S" else Op.IFETCH
                 if o == "ifetch" else Op.MODIFY if o == "M" else Op.LOCK_W if o == "lock_w"
                 else o) for o in ops}
    kept = build.filter_ops(t, ops)
    dropped = build.filter_ops(t, ops, exclude=True)
    assert len(kept) == sum(int(o) in codes for o in t.op)
    assert len(kept) + len(dropped) == len(t)
    assert set(kept.op.tolist()) <= codes
    assert records(kept) == [r for r in records(t) if r[3] in codes]


@SETTINGS
@given(traces(), st.lists(st.integers(0, 5), max_size=3))
def test_filter_threads_counts(t, tids):
    kept = build.filter_threads(t, tids)
    assert records(kept) == [r for r in records(t) if r[0] in tids]
    assert len(kept) + len(build.filter_threads(t, tids, exclude=True)) == len(t)


def test_filter_ops_unknown_name():
    with pytest.raises(ValueError, match="unknown operation"):
        build.filter_ops(synth.uniform(3, pages=2, seed=0), "jump")


def test_memmapped_inputs_untouched(tmp_path):
    from vmlab.trace import open_trace

    src = build.interleave([synth.uniform(1000, pages=50, seed=1, gap_ns=3),
                            synth.lock_loop(10)], how="time")
    path = src.save(tmp_path / "t.vmt")
    t = open_trace(path)
    before = {k: np.array(v) for k, v in t.columns.items()}
    outs = [build.interleave([t, t], how=h, seed=1) for h in ("round_robin", "time", "random")]
    outs += [build.relocate(t, 0x7F0000000000, 0x7F0000010000, 0x100000000),
             build.filter_ops(t, "lock_w"), build.filter_threads(t, [0]), build.concat([t, t]),
             build.slice_records(t, 5, 50)]
    for k, v in t.columns.items():
        assert np.array_equal(v, before[k])
    assert len(outs[0]) == 2 * len(t) and outs[0].n_threads == 4
