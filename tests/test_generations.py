"""vmlab.model.generations: a range a recording maps again as something else gets addresses
of its own before the static VMAs are made (docs/model.md 11.10)."""
from __future__ import annotations

import numpy as np

import vmlab
from vmlab.model.generations import SHIFT, row_levels, separate
from vmlab.model.recorded import scenario_for, unmaps_for, vmas_for
from vmlab.model.scenario import Unmap
from vmlab.trace import Op
from vmlab.trace.mappings import FOREVER, MAPPING_DTYPE, NO_FILE, Backing, FileInfo, Mappings

PS = 4096
X = 0x7F0000000000          # the reused range
F, ANON = Backing.FILE, Backing.ANON


def _rows(*rows):
    t = np.zeros(len(rows), MAPPING_DTYPE)
    for i, (start, end, prot, backing, f, off, frm, until) in enumerate(rows):
        t[i] = (0, start, end, prot, 0, backing, f, off, frm, until)
    return t


FILES = [FileInfo("/etc/ld.so.cache", 1, 7, 2 * PS, np.ones(2, bool), "before_run"),
         FileInfo("/lib/libp.so", 1, 8, 2 * PS, np.ones(2, bool), "before_run")]


def _trace(rows, addr, op, size=None):
    return vmlab.Trace(np.array(addr, np.uint64), op=np.array(op, np.uint8),
                       size=None if size is None else np.array(size, np.uint32),
                       mappings=Mappings(_rows(*rows), FILES, "test"))


def _cache_then_heap():
    """ld.so.cache's two pages at X read (records 0-2) and unmapped at 3; an anonymous
    mapping over X from 3, written twice (3, 4) and read (5)."""
    return _trace([(X, X + 2 * PS, 1, F, 0, 0, 0, 3),
                   (X, X + 2 * PS, 3, ANON, NO_FILE, 0, 3, FOREVER)],
                  [X, X + PS, X, X, X + PS, X + 16],
                  [Op.LOAD, Op.LOAD, Op.LOAD, Op.STORE, Op.STORE, Op.LOAD])


def test_a_range_touched_under_two_identities_is_shifted_apart():
    tr = _cache_then_heap()
    assert row_levels(tr).tolist() == [0, 1]
    sep = separate(tr)
    assert separate(tr) is sep and separate(sep) is sep           # cached, idempotent
    assert np.asarray(sep.addr).tolist() == [X, X + PS, X] + [
        a + (1 << SHIFT) for a in (X, X + PS, X + 16)]
    assert sep.mappings.table["start"].tolist() == [X, X + (1 << SHIFT)]
    v = vmas_for(tr)
    assert [(x.start, x.backing, x.file) for x in v] == [
        (X, "file", "/etc/ld.so.cache"), (X + (1 << SHIFT), "anon", None)]
    # the cache's range is unmapped when its row ends: no row maps it after
    assert unmaps_for(tr) == [Unmap(3, X, X + 2 * PS)]
    r = vmlab.simulate(scenario_for(tr))
    # the file read fault maps both pages (fault-around, both cached); the heap: two
    # anonymous write faults, its own frames (before, the static VMA was the cache's: the
    # writes were copy-on-write faults on the cache's pages)
    f = r.faults
    assert f["vma"].tolist() == [0, 1, 1] and f["major"].sum() == 0


def test_what_is_touched_under_one_identity_stays():
    """The loader's pattern: a reservation never touched, segments mapped over it (one
    with another offset); a file mapped, unmapped and mapped again at the same offset; an
    mprotect: no level anywhere, the trace itself comes back."""
    rows = [(X, X + 2 * PS, 0, F, 1, 0, 0, 1),               # the reservation, untouched
            (X, X + PS, 5, F, 1, 0, 1, FOREVER),              # text
            (X + PS, X + 2 * PS, 3, F, 1, 4 * PS, 1, 3),      # data at another offset
            (X + PS, X + 2 * PS, 1, F, 1, 4 * PS, 3, FOREVER),  # relro: an mprotect
            (X + 8 * PS, X + 9 * PS, 1, F, 0, 0, 0, 2),        # the cache, unmapped...
            (X + 8 * PS, X + 9 * PS, 1, F, 0, 0, 4, FOREVER)]  # ...and mapped again
    tr = _trace(rows, [X + 8 * PS, X, X + PS, X + PS, X + 8 * PS],
                [Op.LOAD, Op.IFETCH, Op.STORE, Op.LOAD, Op.LOAD])
    assert not row_levels(tr).any()
    assert separate(tr) is tr


def test_levels_are_the_longest_chain_and_continuations_move_together():
    """The cache, then plug-in one, then an anonymous mapping at X: levels 0, 1, 2; the
    plug-in's mprotect'ed continuation moves with it, and so do a move out of it and a
    LOCK_W inside it (a LOCK_W of the whole address space stays)."""
    rows = [(X, X + PS, 1, F, 0, 0, 0, 2),
            (X, X + 2 * PS, 3, F, 1, 0, 2, 4),                # the plug-in...
            (X, X + 2 * PS, 1, F, 1, 0, 4, 7),                # ...mprotected
            (X, X + PS, 3, ANON, NO_FILE, 0, 7, FOREVER)]
    addr = [X, X, X, X, X + PS, 0, X + 8, X]
    op = [Op.LOAD, Op.LOAD, Op.LOAD, Op.LOCK_W, Op.LOAD, Op.LOCK_W, Op.LOAD, Op.STORE]
    size = [8, 8, 8, PS, 8, 0, 8, 8]
    tr = _trace(rows, addr, op, size)
    assert row_levels(tr).tolist() == [0, 1, 1, 2]
    s1, s2 = 1 << SHIFT, 2 << SHIFT
    assert np.asarray(separate(tr).addr).tolist() == [
        X, X, X + s1, X + s1, X + PS + s1, 0, X + 8 + s1, X + s2]
    assert [(v.start, v.file) for v in vmas_for(tr)] == [
        (X, "/etc/ld.so.cache"), (X + s1, "/lib/libp.so"), (X + s2, None)]


def test_a_long_recording_is_separated_chunk_by_chunk(monkeypatch):
    """Records past the first chunk are shifted as the first are (the rows' windows cut
    across chunks)."""
    import vmlab.model.generations as gen

    n = 1000
    addr = np.where(np.arange(n) < 500, X, X + 8).astype(np.uint64)
    op = np.where(np.arange(n) < 500, Op.LOAD, Op.STORE).astype(np.uint8)
    tr = vmlab.Trace(addr, op=op, mappings=Mappings(_rows(
        (X, X + PS, 1, F, 0, 0, 0, 500), (X, X + PS, 3, ANON, NO_FILE, 0, 500, FOREVER)),
        FILES, "test"))
    want = np.where(np.arange(n) < 500, X, X + 8 + (1 << SHIFT)).astype(np.uint64)
    monkeypatch.setattr(gen, "CHUNK", 37)
    assert np.array_equal(np.asarray(separate(tr).addr), want)


def _remapped(n, base=X):
    """One two-page range mapped ``n`` times, a file and an anonymous mapping in turn, each
    generation reading (writing) both pages: ``n - 1`` levels."""
    rows, addr, op = [], [], []
    for k in range(n):
        anon = k % 2
        rows.append((base, base + 2 * PS, 3 if anon else 1, ANON if anon else F,
                     NO_FILE if anon else 0, 0, 2 * k, FOREVER if k == n - 1 else 2 * k + 2))
        addr += [base, base + PS]
        op += [Op.LOAD, Op.STORE if anon else Op.LOAD]
    return _trace(rows, addr, op)


def test_more_levels_than_fit_above_2_56_get_a_smaller_shift():
    """300 generations of one range (git log over a large repository maps its loose objects
    at one address again and again): the levels go to the smallest shift above the
    recording's addresses (2^47 here) instead of being dropped, and every generation faults
    as its own mapping: a file generation's read maps both pages (fault-around, one fault),
    an anonymous one's read and write take one fault each.  Before, the levels were dropped
    and the run took 2 faults."""
    from vmlab.model.generations import shifts

    tr = _remapped(300)
    assert row_levels(tr).max() == 299
    assert shifts(tr, 299) == (47, 47)
    assert shifts(tr, 255) == (47, SHIFT)                # as before when they fit
    sep = separate(tr)
    assert np.asarray(sep.addr)[-2:].tolist() == [X + (299 << 47), X + PS + (299 << 47)]
    f = vmlab.simulate(scenario_for(tr)).faults
    assert len(f) == 150 * 1 + 150 * 2 and f["vma"].nunique() == 300


def test_levels_that_cannot_fit_in_64_bits_are_one_clear_error():
    """Mappings that reach 2^63 leave room for one level above them, not two: a
    TraceFormatError naming the mappings and the limit, not a wrapped address."""
    import pytest

    from vmlab.errors import TraceFormatError

    tr = _remapped(3, base=(1 << 63) - 4 * PS)
    with pytest.raises(TraceFormatError, match=r"mappings: 3 generations .* at most 1 "):
        separate(tr)


# -- where the kernel places a large file mapping (docs/model.md 11.11) --------------------

def test_a_large_mapping_moves_to_the_kernels_alignment_with_the_segments_inside_it():
    """A 4 MiB file mapping valgrind put 3 pages past a 2 MiB boundary, whose address the
    program left to the kernel (a placement): a reservation (records 0-1) that a loader then
    maps over in three rows, one of them another segment (records 2-), and an unrelated
    mapping beyond.  The placed rows move so that their addresses are congruent to their
    offsets modulo 2 MiB, into a range of their own; the other mapping stays.  Fault-around
    then cuts the file at its 16-page boundaries: pages 0..31 in two faults, where valgrind's
    placement took three (the VMA's first window runs 16 pages from its start, the next
    ones from 16-page boundaries 3 pages off the file's)."""
    from vmlab.model.generations import PLACE_ALIGN, PLACE_SHIFT, placement_deltas
    from vmlab.trace.mappings import PLACEMENT_DTYPE

    big = [FileInfo("/data/big", 1, 9, 1024 * PS, np.ones(1024, bool), "before_run")]
    A = X + 3 * PS                               # valgrind's address
    O = X + 2048 * PS                            # another mapping, beyond
    rows = _rows((A, A + 1024 * PS, 1, F, 0, 0, 0, 2),                       # reservation
                 (A, A + 64 * PS, 1, F, 0, 0, 2, FOREVER),
                 (A + 64 * PS, A + 80 * PS, 5, F, 0, 64 * PS, 2, FOREVER),   # a segment
                 (A + 80 * PS, A + 1024 * PS, 1, F, 0, 80 * PS, 2, FOREVER),
                 (O, O + 4 * PS, 3, ANON, NO_FILE, 0, 0, FOREVER))
    pl = np.zeros(1, PLACEMENT_DTYPE)
    pl[0] = (0, A, A + 1024 * PS, 0, 0)
    addr = [O, O] + [A + i * PS for i in range(32)]

    def trace(placements):
        return vmlab.Trace(np.array(addr, np.uint64), op=np.full(len(addr), Op.LOAD, np.uint8),
                           mappings=Mappings(rows, big, "test", placements=placements))

    tr = trace(pl)
    low = PLACE_ALIGN - 3 * PS
    assert placement_deltas(tr).tolist() == [low + (1 << PLACE_SHIFT)] * 4 + [0]
    sep = separate(tr)
    a = np.asarray(sep.addr)
    assert a[:2].tolist() == [O, O]
    assert ((a[2:] - (1 << PLACE_SHIFT)) % PLACE_ALIGN).tolist() == [i * PS for i in range(32)]
    t = sep.mappings.table
    assert ((t["start"][:4] - t["file_offset"][:4]) % PLACE_ALIGN).tolist() == [0] * 4
    assert t["start"][4] == O
    placed = vmlab.simulate(scenario_for(tr)).faults
    flat = vmlab.simulate(scenario_for(trace(None))).faults
    on_file = [int(f["vma_name"].astype(str).str.contains("big").sum()) for f in (placed, flat)]
    assert on_file == [2, 3]


def test_a_mapping_row_off_the_page_grid_is_one_line_naming_it():
    """(benchmarks/fuzz_mappings.py: such a row was refused as 'unmaps[0]: [0x1, ...) is not
    aligned', a field the user never wrote.)"""
    import pytest

    from vmlab.errors import TraceFormatError

    tr = _trace([(X, X + 2 * PS, 1, F, 0, 0, 0, 3), (X + 1, X + 2 * PS, 3, ANON, NO_FILE, 0, 3,
                                                     FOREVER)], [X, X + PS], [Op.LOAD] * 2)
    with pytest.raises(TraceFormatError, match=r"^mapping 1: start 0x7f0000000001 is not a "
                                               r"multiple of the page size 4096$"):
        vmas_for(tr)


def test_placements_that_cannot_fit_in_64_bits_are_one_clear_error():
    """A placement (11.11) in a recording whose mappings reach the top of the 64-bit space
    has nowhere above them to go: one line, not a negative shift (found by
    benchmarks/fuzz_mappings.py)."""
    import pytest

    from vmlab.errors import TraceFormatError
    from vmlab.trace.mappings import PLACEMENT_DTYPE

    top = 2**64 - 4 * PS
    pl = np.zeros(1, PLACEMENT_DTYPE)
    pl[0] = (0, X, X + 2 * PS, 0, 3 * PS)
    tr = vmlab.Trace(np.array([X, X + PS], np.uint64), op=np.zeros(2, np.uint8),
                     mappings=Mappings(_rows((X, X + 2 * PS, 1, F, 0, 3 * PS, 0, FOREVER),
                                             (top, top + 2 * PS, 3, ANON, NO_FILE, 0, 0,
                                              FOREVER)), FILES, "test", placements=pl))
    with pytest.raises(TraceFormatError, match=r"^mappings: 1 placed mapping\(s\) do not fit "
                                               r"in 64-bit addresses above the recording's "
                                               r"highest mapped address \(0xffffffffffffdfff\)"):
        separate(tr)


def test_a_zaps_row_is_looked_for_at_its_record_and_the_one_before_only():
    """(benchmarks/fuzz_mappings.py: a zap at record 2016 of an address space without rows
    looked back one record at a time, recursively, and hit Python's recursion limit.)"""
    from vmlab.model.generations import _row_alive

    t = _rows((X, X + 2 * PS, 1, F, 0, 0, 0, 3), (X, X + 2 * PS, 3, ANON, NO_FILE, 0, 5, 9))
    assert _row_alive(t, 0, X, 2) == 0 and _row_alive(t, 0, X, 3) == 0   # alive, or just ended
    assert _row_alive(t, 0, X, 4) is None                               # nothing at 3 or 4
    assert _row_alive(t, 0, X + PS, 6) == 1
    assert _row_alive(t, 1, X, 100_000) is None and _row_alive(t, 0, X, 0) == 0
