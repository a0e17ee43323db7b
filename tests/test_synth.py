"""Synthetic workload generators: exact orders, distributions, seeds, metadata."""
import inspect

import numpy as np
import pytest

from vmlab.trace import Op, Trace
from vmlab.trace import synth
from vmlab.trace.model import lock_w_ranges
from vmlab.trace.synth import DEFAULT_BASE, GENERATORS

PS = 4096


def pages_of(t, base=DEFAULT_BASE):
    return ((t.addr.astype(np.int64) - base) // t.page_size).astype(np.int64)


# -- exact orders -------------------------------------------------------------------------

def test_sequential_exact_order_and_wrap():
    t = synth.sequential(10, pages=4)
    assert pages_of(t).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert (t.addr % PS == 0).all()
    assert not t.has_gap
    assert (t.op == Op.LOAD).all() and (t.size == 8).all()


def test_sequential_per_page_spreads_over_page():
    t = synth.sequential(8, pages=3, per_page=2, start_page=1)
    off = (t.addr - DEFAULT_BASE).astype(np.int64)
    assert (off // PS).tolist() == [1, 1, 2, 2, 0, 0, 1, 1]
    assert (off % PS).tolist() == [0, 2048] * 4


def test_sequential_stride():
    t = synth.sequential(6, pages=8, stride_bytes=3 * PS)
    assert pages_of(t).tolist() == [0, 3, 6, 1, 4, 7]


def test_strided_exact():
    t = synth.strided(5, stride_bytes=1000, base_addr=0x1000)
    assert t.addr.tolist() == [0x1000 + 1000 * i for i in range(5)]
    w = synth.strided(6, stride_bytes=PS, pages=2, base_addr=0)
    assert (w.addr // PS).tolist() == [0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("split", [True, False])
def test_reverse_file_exact_per_thread_order(split):
    T, pages = 3, 8
    t = synth.reverse_file(n_threads=T, pages=pages, split=split)
    p = pages_of(t)
    if split:
        slices = [[0, 1, 2], [3, 4, 5], [6, 7]]  # array_split sizes 3, 3, 2
        assert len(t) == pages
        assert sorted(p.tolist()) == list(range(pages))
    else:
        slices = [list(range(pages))] * T
        assert len(t) == T * pages
    for tid in range(T):
        assert p[t.tid == tid].tolist() == slices[tid][::-1]
    # round-robin: the first T records are one per thread
    assert t.tid[:T].tolist() == list(range(T))


def test_reverse_file_default_is_64_threads():
    t = synth.reverse_file(pages=640)
    assert t.n_threads == 64
    assert np.bincount(t.tid).tolist() == [10] * 64


def test_lock_loop_all_lock_w():
    t = synth.lock_loop(50, tid=7, cs_gap_ns=250)
    assert len(t) == 50
    assert (t.op == Op.LOCK_W).all()
    assert (t.tid == 7).all() and (t.size == 4096).all()  # the page it maps and unmaps
    assert (synth.lock_loop(3, lock_size=0).size == 0).all()  # the whole address space
    assert t.has_gap and (t.gap_ns == 250).all()
    assert t.n_threads == 1


def test_random_reads_with_mmap_loop():
    t = synth.random_reads_with_mmap_loop(n_reads=100, pages=1 << 16, n_lock_ops=1000,
                                          read_gap_ns=1000, lock_gap_ns=300, seed=3)
    assert len(t) == 1100 and t.has_gap
    r, w = t.tid == 0, t.tid == 1
    assert (t.op[r] == Op.LOAD).all() and r.sum() == 100
    assert (t.op[w] == Op.LOCK_W).all() and w.sum() == 1000
    assert (t.gap_ns[r] == 1000).all() and (t.gap_ns[w] == 300).all()
    assert (pages_of(t[r]) < 1 << 16).all()
    # global order follows each thread's compute-only clock
    clock = np.zeros(len(t), np.int64)
    for tid in (0, 1):
        m = t.tid == tid
        clock[m] = np.cumsum(t.gap_ns[m].astype(np.int64))
    assert (np.diff(clock) >= 0).all()


# -- distributions ------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.2])
def test_zipf_rank_frequency_slope(alpha):
    t = synth.zipf(2_000_000, pages=2000, alpha=alpha, seed=11)
    counts = np.sort(np.bincount(pages_of(t), minlength=2000))[::-1]
    top = 100
    ranks = np.arange(1, top + 1)
    slope = np.polyfit(np.log(ranks), np.log(counts[:top]), 1)[0]
    assert abs(slope + alpha) <= 0.1, slope


def test_zipf_unshuffled_rank_is_page_and_frequencies_match():
    pages, alpha, n = 50, 1.0, 500_000
    t = synth.zipf(n, pages=pages, alpha=alpha, shuffle=False, seed=2)
    freq = np.bincount(pages_of(t), minlength=pages) / n
    w = np.arange(1, pages + 1) ** -alpha
    p = w / w.sum()
    # 5 standard errors on each rank
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n)).all()


def test_zipf_alpha_zero_is_uniform_and_shuffle_scatters():
    t = synth.zipf(200_000, pages=100, alpha=0.0, seed=1)
    c = np.bincount(pages_of(t), minlength=100)
    assert c.min() > 1700 and c.max() < 2300
    hot = synth.zipf(100_000, pages=1000, alpha=1.2, seed=4)
    top10 = np.argsort(np.bincount(pages_of(hot), minlength=1000))[-10:]
    assert top10.max() - top10.min() > 50  # hot pages are not adjacent


def test_zipf_sampler_equals_searchsorted():
    rng = np.random.default_rng(0)
    for pages in (1, 2, 3, 1000, 5000):
        for alpha in (0.0, 0.7, 1.0, 2.5):
            u = rng.random(50_000)
            u[:2] = [0.0, np.nextafter(1.0, 0.0)]
            cdf, guide, res = synth._zipf_tables(pages, alpha, None)
            out = np.empty(len(u), np.uint64)
            synth._zipf_addr(u, cdf, guide, res, np.zeros(1, guide.dtype), False,
                             np.uint64(0), np.uint64(1), out)
            assert np.array_equal(out, synth.zipf_ranks(u, cdf))


def test_uniform_chi_square():
    n, pages = 100_000, 100
    t = synth.uniform(n, pages=pages, seed=5)
    c = np.bincount(pages_of(t), minlength=pages)
    assert len(c) == pages
    chi2 = ((c - n / pages) ** 2 / (n / pages)).sum()
    assert chi2 < 99 + 5 * np.sqrt(2 * 99)  # 99 degrees of freedom: mean 99, sd 14


def test_unaligned_offsets_keep_pages():
    a = synth.uniform(10_000, pages=64, seed=9)
    b = synth.uniform(10_000, pages=64, seed=9, aligned=False, size=16)
    assert np.array_equal(a.addr // PS, b.addr // PS)
    off = b.addr % PS
    assert (off % 16 == 0).all() and off.max() > PS // 2
    assert "aligned=False" in b.meta.source


def test_write_fraction():
    t = synth.uniform(100_000, pages=10, write_fraction=0.25, seed=1)
    frac = (t.op == Op.STORE).mean()
    assert abs(frac - 0.25) < 0.01
    assert set(np.unique(t.op).tolist()) == {Op.LOAD, Op.STORE}


def test_gap_column_decision():
    assert not synth.uniform(10, pages=4, seed=0).has_gap
    t = synth.uniform(10, pages=4, seed=0, gap_ns=500)
    assert t.has_gap and (t.gap_ns == 500).all()


def test_phases_working_sets():
    t = synth.phases(n=4000, n_phases=4, ws_pages=100, overlap=0.5, seed=3)
    p = pages_of(t)
    for k in range(4):
        seg = p[k * 1000:(k + 1) * 1000]
        lo = round(k * 100 * 0.5)
        assert seg.min() >= lo and seg.max() < lo + 100
        assert len(np.unique(seg)) > 90
    e = synth.phases(phases=[(10, 2, 0), (5, 3, 1000)], dist="zipf", seed=1)
    p = pages_of(e)
    assert len(e) == 15 and p[:10].max() < 2 and (p[10:] >= 1000).all() and p[10:].max() < 1003
    with pytest.raises(ValueError):
        synth.phases(n=3, phases=[(10, 2, 0)])


@pytest.mark.parametrize("pattern", ["uniform", "zipf", "sequential"])
def test_shared_file(pattern):
    T, m, pages = 4, 20_000, 500
    t = synth.shared_file(T, m, pages, pattern=pattern, alpha=1.2, seed=8)
    assert len(t) == T * m
    assert t.tid[:2 * T].tolist() == list(range(T)) * 2
    assert np.bincount(t.tid).tolist() == [m] * T
    p = pages_of(t)
    assert p.max() < pages
    per = [p[t.tid == k] for k in range(T)]
    if pattern == "sequential":
        for k in range(T):
            start = k * pages // T
            assert per[k][:3].tolist() == [start, start + 1, start + 2]
    else:
        assert not np.array_equal(per[0], per[1])  # independent streams
    if pattern == "zipf":  # one set of hot pages for the file
        hottest = {int(np.argmax(np.bincount(x, minlength=pages))) for x in per}
        assert len(hottest) == 1


# -- seeds, metadata, registry -----------------------------------------------------------

SEEDED = {
    "uniform": dict(n=1000, pages=100),
    "zipf": dict(n=1000, pages=100, alpha=0.9),
    "phases": dict(n=1000, n_phases=3, ws_pages=50, dist="zipf"),
    "shared_file": dict(n_threads=3, n_per_thread=300, pages=100),
    "random_reads_with_mmap_loop": dict(n_reads=200, n_lock_ops=100, pages=1000),
    "sequential": dict(n=1000, pages=100, aligned=False),
    "app_start": dict(n_threads=3, faults_per_thread=50, writes_per_writer=50),
}


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_seeds_reproduce_and_differ(name):
    f, kw = GENERATORS[name], SEEDED[name]
    a, b, c = f(seed=1, **kw), f(seed=1, **kw), f(seed=2, **kw)
    assert a.equals(b) and a.meta.source == b.meta.source
    assert not a.equals(c)
    assert a.meta.source.startswith(f"synth:{name}(") and "seed=1" in a.meta.source


def test_seed_none_is_recorded():
    t = synth.uniform(100, pages=10)
    seed = int(t.meta.source.split("seed=")[1].rstrip(")"))
    assert synth.uniform(100, pages=10, seed=seed).equals(t)


def test_source_describes_call():
    t = synth.zipf(100, pages=10, alpha=0.5, seed=3)
    assert t.meta.source.startswith("synth:zipf(n=100, pages=10, alpha=0.5")
    assert "base_addr=0x7f0000000000" in t.meta.source


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_documented_for_cli(name):
    f = GENERATORS[name]
    doc = inspect.getdoc(f)
    assert "Parameters\n----------" in doc and "Returns\n-------" in doc
    for p in inspect.signature(f).parameters:
        assert f"\n{p} :" in doc or f", {p} :" in doc, (name, p)


SMALL = {"sequential": dict(n=50, pages=8), "strided": dict(n=50, stride_bytes=64),
         "uniform": dict(n=50, pages=8), "zipf": dict(n=50, pages=8),
         "phases": dict(n=50, n_phases=2, ws_pages=4), "lock_loop": dict(n=5),
         "shared_file": dict(n_threads=2, n_per_thread=5, pages=8),
         "reverse_file": dict(n_threads=2, pages=8),
         "random_reads_with_mmap_loop": dict(n_reads=5, n_lock_ops=5, pages=8),
         "pft_threads": dict(n_threads=2, pages_per_thread=4),
         "ebizzy": dict(n_threads=2, n_iters=2, chunk_pages=2),
         "app_start": dict(n_threads=2, faults_per_thread=3, writes_per_writer=3)}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_return_valid_traces(name):
    t = GENERATORS[name](**SMALL[name])
    assert isinstance(t, Trace) and len(t) > 0
    for col in t.columns.values():
        assert col.dtype.kind == "u" and len(col) == len(t)
    assert t.page_size == PS


def test_empty_and_bad_arguments():
    assert len(synth.uniform(0, pages=3, seed=0)) == 0
    assert len(synth.zipf(0, pages=3, seed=0)) == 0
    with pytest.raises(ValueError):
        synth.zipf(10, pages=10, alpha=-1)
    with pytest.raises(ValueError):
        synth.uniform(10, pages=0)
    with pytest.raises(Exception):
        synth.uniform(10, pages=4, page_size=3000)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_bad_argument_is_refused_naming_its_parameter(name):
    # a word, a negative number and a number past 64 bits are wrong for every parameter
    # (but a seed or a Zipf exponent may be any size): each is refused before any work, in
    # an error that names the parameter (once some ended in a numba OverflowError, a bare
    # "'<=' not supported", or were taken as True)
    # and a fraction above 1, a whole number's 0.5
    f = GENERATORS[name]
    fractions = ("write_fraction", "overlap", "on_file_fraction", "long_read_fraction")
    for p in inspect.signature(f).parameters:
        for bad in ("abc", -1, 2**65, 1.5 if p in fractions else 0.5):
            if bad == 2**65 and p in ("seed", "alpha") or p == "alpha" and bad == 0.5:
                continue
            with pytest.raises((ValueError, TypeError)) as e:
                f(**(SMALL[name] | {p: bad}))
            assert p in str(e.value), (p, bad, str(e.value))


def test_other_page_size():
    t = synth.sequential(4, pages=4, page_size=65536, base_addr=0)
    assert t.page_size == 65536 and t.addr.tolist() == [0, 65536, 131072, 196608]


# -- workloads of the lock designs after 2010 ---------------------------------------------

def _per_thread_clock_is_monotone(t):
    clock = np.zeros(len(t), np.int64)
    for tid in np.unique(t.tid):
        m = t.tid == tid
        clock[m] = np.cumsum(t.gap_ns[m].astype(np.int64))
    assert (np.diff(clock) >= 0).all()


def test_pft_threads_touch_their_own_slices_once():
    t = synth.pft_threads(n_threads=3, pages_per_thread=100, touch_gap_ns=40)
    assert len(t) == 300 and (t.op == Op.STORE).all() and (t.gap_ns == 40).all()
    pages = pages_of(t)
    assert len(np.unique(pages)) == 300                      # every page first-touched once
    for tid in range(3):
        assert np.array_equal(pages[t.tid == tid], np.arange(tid * 100, tid * 100 + 100))
    _per_thread_clock_is_monotone(t)


def test_ebizzy_iterations_and_writer_ranges():
    T, it, cp, nb = 3, 4, 8, 1
    t = synth.ebizzy(n_threads=T, n_iters=it, chunk_pages=cp, neighbour_pages=nb)
    assert len(t) == T * it * (cp + 2)
    idx, start, end = lock_w_ranges(t)
    assert len(idx) == 2 * T * it and (end - start == (cp + 2 * nb) * PS).all()
    for tid in range(T):
        m = t.tid == tid
        ops = t.op[m].reshape(it, cp + 2)
        assert (ops[:, 0] == Op.LOCK_W).all() and (ops[:, -1] == Op.LOCK_W).all()
        assert (ops[:, 1:-1] == Op.STORE).all()
        # chunk j = iteration * T + thread, fresh pages every iteration
        pages = pages_of(t[m]).reshape(it, cp + 2)[:, 1:-1]
        j = np.arange(it) * T + tid
        assert np.array_equal(pages, j[:, None] * cp + np.arange(cp)[None, :])
        # the writers' range: the chunk and one page of each neighbour (another thread's chunk)
        a = t.addr[m].reshape(it, cp + 2)
        assert (a[:, 0] == a[:, -1]).all()
        assert np.array_equal((a[:, 0].astype(np.int64) - synth.DEFAULT_BASE) // PS, j * cp - nb)
    _per_thread_clock_is_monotone(t)


def test_app_start_threads_and_writers():
    t = synth.app_start(n_threads=4, n_files=3, file_pages=256, faults_per_thread=200,
                        n_writers=2, writes_per_writer=300, on_file_fraction=0.3,
                        write_pages=4, seed=5)
    assert np.bincount(t.tid).tolist() == [200] * 4 + [300] * 2
    readers = t.tid < 4
    assert (t.op[readers] == Op.LOAD).all() and (t.op[~readers] == Op.LOCK_W).all()
    files = np.arange(3) * (256 + 64)          # first pages, from DEFAULT_BASE
    vpn = pages_of(t)
    f = np.searchsorted(files, vpn[readers], side="right") - 1
    assert (f >= 0).all() and (vpn[readers] - files[f] < 256).all()
    idx, start, end = lock_w_ranges(t)
    assert (end - start == 4 * PS).all()
    on_file = start != synth.DEFAULT_LOCK_ADDR
    # about 30% of 600 calls change a file mapping: binomial sd 11, 4 sd
    assert abs(int(on_file.sum()) - 180) <= 45
    first = (start[on_file].astype(np.int64) - DEFAULT_BASE) // PS
    last = (end[on_file].astype(np.int64) - DEFAULT_BASE) // PS
    fs = np.searchsorted(files, first, side="right") - 1
    assert (fs >= 0).all() and (last <= files[fs] + 256).all()     # inside its file
    _per_thread_clock_is_monotone(t)


@pytest.mark.parametrize("make", [
    lambda **kw: synth.sequential(10, **kw), lambda **kw: synth.uniform(10, **kw),
    lambda **kw: synth.zipf(10, **kw), lambda **kw: synth.strided(10, 64, **kw),
    lambda **kw: synth.shared_file(n_threads=2, n_per_thread=5, **kw),
    lambda **kw: synth.reverse_file(n_threads=2, **kw),
])
def test_a_region_past_the_64_bit_address_space_is_refused_not_wrapped(make):
    with pytest.raises(ValueError) as e:
        make(pages=2**52)
    assert str(e.value) == ("4,503,599,627,370,496 pages of 4096 bytes from base_addr "
                            "0x7f0000000000 run past the 64-bit address space")
    top = make(pages=4, base_addr=2**64 - 4 * 4096)  # ending exactly at 2**64: accepted
    assert int(top.addr.max()) < 2**64 and int(top.addr.min()) >= 2**64 - 4 * 4096


def test_phases_region_is_checked_at_its_highest_page():
    with pytest.raises(ValueError, match="run past the 64-bit address space"):
        synth.phases(phases=[(5, 4, 0), (5, 4, 2**52)])
