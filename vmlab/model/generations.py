"""Address ranges mapped again as something else, for the static VMAs of a recording.

The engine's VMAs are static: one backing per address range for the whole run.  A recorded
run reuses addresses: the loader maps ``ld.so.cache``, reads it and unmaps it, and a library
or a heap arena is mapped over the same addresses later; a program ``dlclose`` s a plug-in
and the next one lands where it was.  :func:`separate` gives each later mapping that the
program touches where an earlier mapping of another identity was touched a range of its own:
its accesses (while it lives), its mapping rows and its moves are shifted by
``level << SHIFT``, far above every user address, so the static VMAs of
:func:`vmlab.model.recorded.vmas_for` give it its own backing, file and offset.  Faults,
fault-around, readahead and the page cache (keyed by file and offset) are then exact for
both; under a memory limit the shifted range's page tables are charged anew (the kernel may
reuse the old range's tables), a few frames at most.

A mapping's *identity* at an address is what the kernel would find there: engine backing,
sharing, and for a file, the file and the offset.  Rows that continue one another (the same
identity, overlapping, one starting where the other ends: an ``mprotect``, a ``brk`` that
grows the heap) form one mapping and move together.  Levels: of two rows over one piece of
the address space at different times, with different identities there, both touched while
they lived (anywhere in their ranges: fault-around crosses pieces), the later one's mapping
gets a level above the earlier's; levels are the longest such chain (docs/model.md 11.10).

The same shift puts a mapping where the kernel would have placed it (:func:`placement_deltas`,
docs/model.md 11.11): valgrind chooses every address itself, while the kernel places a file
mapping of 2 MiB or more that the program let it place congruent to its file offset modulo
2 MiB (``thp_get_unmapped_area()``), which decides where fault-around's windows and the page
tables cut the file.  Such a mapping, and every row mapped inside its range later (a loader's
segments), moves up by the difference, plus ``k << PLACE_SHIFT`` (a range of its own).
"""
from __future__ import annotations

import weakref

import numpy as np

from .._numba import njit
from ..errors import TraceFormatError
from ..trace.mappings import Mappings
from ..trace.model import Op

#: A level-``k`` mapping's addresses are shifted by ``k << SHIFT`` (2^56: above every user
#: address of x86-64, arm64 and riscv; 255 levels fit in 64 bits).  A recording that needs
#: more levels, or whose placements reach 2^56, gets the smallest shift that clears its
#: placed addresses instead (:func:`shifts`).
SHIFT = 56

#: The alignment the kernel gives a large file mapping it places (``PMD_SIZE``, x86-64).
PLACE_ALIGN = 2 << 20

#: The ``k``-th placed mapping also moves up by ``k << PLACE_SHIFT`` (k = 1, 2, ...): above every
#: user address of a 4-level x86-64 address space (2^47), below the levels' shift.  A
#: recording whose mappings reach higher (5-level paging) uses its own top bit instead.
PLACE_SHIFT = 47

#: Records a pass over the trace reads at once.
CHUNK = 1 << 24

_cache = weakref.WeakKeyDictionary()


def separate(trace):
    """``trace`` with each reused range's later mappings shifted apart (see the module
    docstring), or ``trace`` itself when nothing needs it (no mappings, no reuse).  Cached
    per trace object: every function of :mod:`vmlab.model.recorded` sees the same one."""
    if trace.mappings is None:
        return trace
    try:
        got = _cache[trace]     # (None: nothing to separate, or a result of this function)
        return trace if got is None else got
    except KeyError:
        pass
    _check_page_aligned(trace)
    levels = row_levels(trace)
    place_shift, level_shift = shifts(trace, int(levels.max(initial=0)))
    delta = ((levels.astype(np.uint64) << np.uint64(level_shift))
             + placement_deltas(trace, place_shift))
    if not delta.any():
        _cache[trace] = None
        return trace
    out = _shifted(trace, delta)
    _cache[trace] = out     # (kept while trace lives; out is its own entry, never a value)
    _cache[out] = None
    return out


def _check_page_aligned(trace):
    """Refuse, naming the row, a mapping row whose start or end is not a multiple of the
    trace's page size (the kernel maps whole pages; every VMA made from the rows must)."""
    t = trace.mappings.table
    ps = np.uint64(trace.page_size)
    for name in ("start", "end"):
        bad = np.flatnonzero(t[name] % ps)
        if len(bad):
            i = int(bad[0])
            raise TraceFormatError(f"mapping {i}: {name} {int(t[name][i]):#x} is not a multiple "
                                   f"of the page size {int(ps)}")


def shifts(trace, top_level):
    """``(place_shift, level_shift)`` for ``trace``'s mappings with levels up to
    ``top_level`` (docs/model.md 11.10): ``PLACE_SHIFT`` and ``SHIFT`` when everything fits
    under them (every recording of a 4-level address space with fewer than 256 levels and
    512 placements); otherwise the placements go above the highest mapped address and the
    levels above the highest placed one, so that no shifted range meets another.  Raises
    :class:`~vmlab.errors.TraceFormatError` when the levels cannot fit in 64-bit addresses."""
    t = trace.mappings.table
    top = int(t["end"].max(initial=1)) - 1
    place_shift = max(PLACE_SHIFT, top.bit_length())
    n_placed = len(trace.mappings.placements)
    placed_bits = place_shift + n_placed.bit_length()
    if placed_bits <= SHIFT and top_level < 1 << (64 - SHIFT):
        return place_shift, SHIFT
    if n_placed and placed_bits > 64:
        raise TraceFormatError(
            f"mappings: {n_placed} placed mapping(s) do not fit in 64-bit addresses above the "
            f"recording's highest mapped address ({top:#x}); expected mappings below 2**56")
    if top_level.bit_length() + placed_bits > 64:
        raise TraceFormatError(
            f"mappings: {top_level + 1} generations of one address range do not fit in 64-bit "
            f"addresses above the recording's ({placed_bits} bits); expected at most "
            f"{(1 << max(0, 64 - placed_bits)) - 1} remappings of a range")
    return place_shift, placed_bits


def placement_deltas(trace, place_shift=PLACE_SHIFT):
    """How far each mapping row of ``trace`` moves to sit where the kernel would have put it
    (docs/model.md 11.11): for the ``k``-th placement the recorder noted (``mappings.placements``:
    a file mapping of 2 MiB or more whose address the program left to the kernel), its rows
    and the rows mapped inside its range at or after its record (a later placement over the
    same range takes the rows from its own record on) move by ``(offset - start) mod
    PLACE_ALIGN``, the kernel's alignment, plus ``k << place_shift`` (:func:`shifts`); rows
    already so aligned, and every other row, stay (0)."""
    m = trace.mappings
    t = m.table
    delta = np.zeros(len(t), np.uint64)
    pl = m.placements
    if not len(pl):
        return delta
    for k, p in enumerate(pl[np.argsort(pl["at_record"], kind="stable")], start=1):
        low = (int(p["file_offset"]) - int(p["start"])) % PLACE_ALIGN
        rows = ((t["asid"] == p["asid"]) & (t["start"] >= p["start"]) & (t["end"] <= p["end"])
                & (t["from_record"] >= p["at_record"]))
        delta[rows] = (low + (k << place_shift)) if low else 0
    return delta


def _mappings_of(rows):
    """Group the rows of one address space into mappings (union-find): rows that continue one
    another, the same identity and overlapping or adjacent ranges, one starting at the
    record the other ends.  Returns each row's mapping id (0..m-1)."""
    from .recorded import row_identity

    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_end = {}
    for i, r in enumerate(rows):
        by_end.setdefault(int(r["until_record"]), []).append(i)
    for j, r in enumerate(rows):
        for i in by_end.get(int(r["from_record"]), ()):
            a = rows[i]
            lo, hi = max(int(a["start"]), int(r["start"])), min(int(a["end"]), int(r["end"]))
            if lo <= hi and row_identity(a, lo) == row_identity(r, lo):
                parent[find(j)] = find(i)
    roots = [find(i) for i in range(len(rows))]
    _, ids = np.unique(roots, return_inverse=True)
    return ids


def _touched(trace, queries):
    """For each query ``(asid, lo, hi, t0, t1)``: whether an access record in ``[t0, t1)``
    of address space ``asid`` falls in ``[lo, hi)``.  One pass over the chunks the queries'
    windows cover."""
    out = np.zeros(len(queries), bool)
    if not queries:
        return out
    n = len(trace)
    t0 = np.array([min(int(x[3]), n) for x in queries], np.int64)
    t1 = np.array([min(int(x[4]), n) for x in queries], np.int64)
    for c0 in range(int(t0.min()), int(t1.max()), CHUNK):
        c1 = min(n, c0 + CHUNK)
        live = np.flatnonzero(~out & (t0 < c1) & (t1 > c0))
        if not len(live):
            continue
        op = np.asarray(trace.op[c0:c1])
        addr = np.asarray(trace.addr[c0:c1])
        asid = np.asarray(trace.asid[c0:c1])
        for i in live:
            a, lo, hi = (int(v) for v in queries[i][:3])
            s, e = max(int(t0[i]), c0) - c0, min(int(t1[i]), c1) - c0
            out[i] = _any_access_in(op, addr, asid, s, e, a, np.uint64(lo), np.uint64(hi),
                                    int(Op.LOCK_W))
    return out


@njit
def _any_access_in(op, addr, asid, s, e, a, lo, hi, lock_w):
    """Whether an access record among ``s..e-1`` of a chunk, of address space ``a``, falls
    in ``[lo, hi)`` (stops at the first)."""
    for k in range(s, e):
        if op[k] < lock_w and asid[k] == a and lo <= addr[k] < hi:
            return True
    return False


def row_levels(trace):
    """Each mapping row's level (0: in place), per :func:`separate`."""
    t = trace.mappings.table
    levels = np.zeros(len(t), np.int64)
    for asid in np.unique(t["asid"]):
        which = np.flatnonzero(t["asid"] == asid)
        rows = t[which]
        a, b = _pairs_of_identities(rows)
        if not len(a):
            continue
        # each row of such a pair: touched anywhere in its range while it lived?  (a row
        # touched elsewhere still needs its whole range: fault-around crosses the piece)
        cand = np.union1d(a, b)
        hit = np.zeros(len(rows), bool)
        hit[cand] = _touched(trace, [
            (int(asid), int(rows[i]["start"]), int(rows[i]["end"]),
             int(rows[i]["from_record"]), int(rows[i]["until_record"])) for i in cand])
        mapping = _mappings_of(rows)
        # a touched mapping over a touched one of another identity is a level above it
        keep = hit[a] & hit[b] & (mapping[a] != mapping[b])
        m = int(mapping.max()) + 1
        edges = np.unique(mapping[b][keep].astype(np.int64) * m + mapping[a][keep])
        if not len(edges):
            continue
        after = {}
        for mb, ma in zip((edges // m).tolist(), (edges % m).tolist()):
            after.setdefault(mb, set()).add(ma)
        level = _longest_chains(m, after)
        if level is None:
            continue        # (a cycle: leave this address space as the static VMAs had it)
        levels[which] = level[mapping]
    return levels


def _pairs_of_identities(rows):
    """The pairs ``(a, b)`` of rows (indices into ``rows``, one address space) that map one
    piece of the address space at different times, ``a`` earlier (``from_record``; ties in
    row order), with different identities there (:func:`vmlab.model.recorded.row_identity`:
    engine backing, sharing, file, file offset): two arrays, each pair once."""
    from .recorded import row_identities

    cuts = np.unique(np.concatenate([rows["start"], rows["end"]]))
    n = len(rows)
    found = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        cover = np.flatnonzero((rows["start"] <= lo) & (rows["end"] >= hi))
        if len(cover) < 2:
            continue
        cover = cover[np.argsort(rows["from_record"][cover], kind="stable")]
        ident = row_identities(rows[cover], lo)
        ids = np.unique(ident, axis=0, return_inverse=True)[1].ravel()
        x, y = np.nonzero(np.triu(ids[:, None] != ids[None, :], 1))
        found.append(cover[x].astype(np.int64) * n + cover[y])
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.unique(np.concatenate(found))
    return pairs // n, pairs % n


def _longest_chains(m, after):
    """Levels of ``m`` mappings under ``after[b] = {a, ...}`` (``b`` a level above each
    ``a``): the longest chain below each; None if the constraints have a cycle."""
    level = np.zeros(m, np.int64)
    state = np.zeros(m, np.int8)     # 0 new, 1 on the stack, 2 done

    for root in range(m):
        if state[root]:
            continue
        stack = [(root, iter(sorted(after.get(root, ()))))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[node] = 2
                below = after.get(node, ())
                level[node] = 1 + max(level[a] for a in below) if below else 0
            elif state[nxt] == 1:
                return None
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(after.get(nxt, ())))))
    return level


@njit
def _shift_chunk(a, asid, size, op, c0, lo, hi, row_asid, start, end, delta, lock_w):
    """Shift, in place, the addresses ``a`` of records ``c0..`` that row ``i`` covers while
    it lives (records ``lo[i]..hi[i]``) by ``delta[i]``: an access inside its range, or a
    ``LOCK_W`` whose range (size > 0) lies inside it.  Rows in order, each seeing the
    addresses the rows before it left."""
    for i in range(len(lo)):
        s = max(lo[i], c0) - c0
        e = min(hi[i], c0 + len(a)) - c0
        for k in range(s, e):
            x = a[k]
            if asid[k] != row_asid[i] or x < start[i] or x >= end[i]:
                continue
            if op[k] < lock_w or (op[k] == lock_w and size[k] > 0
                                  and x + np.uint64(size[k]) <= end[i]):
                a[k] = x + delta[i]


def _shifted(trace, delta):
    """The trace with each row ``i`` shifted by ``delta[i]`` (uint64): its accesses while it
    lives, its range, the moves into and out of it, and the ``LOCK_W`` ranges that lie inside
    it."""
    from ..engine.prepare import _scratch

    m = trace.mappings
    t = m.table.copy()
    moved = np.flatnonzero(delta > 0)
    n = len(trace)
    addr = _scratch(n, np.uint64)
    rows = t[moved]
    lo = np.asarray(rows["from_record"], np.int64)
    hi = np.minimum(np.asarray(rows["until_record"], np.uint64), n).astype(np.int64)
    for c0 in range(0, n, CHUNK):
        c1 = min(n, c0 + CHUNK)
        a = addr[c0:c1]         # (shifted where it lies, no chunk-sized temporary)
        a[:] = trace.addr[c0:c1]
        _shift_chunk(a, np.asarray(trace.asid[c0:c1]), np.asarray(trace.size[c0:c1]),
                     np.asarray(trace.op[c0:c1]), c0, lo, hi,
                     np.asarray(rows["asid"], np.int64), np.asarray(rows["start"], np.uint64),
                     np.asarray(rows["end"], np.uint64), delta[moved], int(Op.LOCK_W))
    t["start"] += delta
    t["end"] += delta
    moves = m.moves.copy()
    for j, x in enumerate(m.moves):
        r = int(x["at_record"])
        src = _row_at(m.table, x["asid"], int(x["start"]), r, ending=True)
        dst = _row_at(m.table, x["asid"], int(x["to"]), r, ending=False)
        if src is not None:
            moves[j]["start"] += delta[src]
            moves[j]["end"] += delta[src]
        if dst is not None:
            moves[j]["to"] += delta[dst]
    zaps = m.zaps.copy()     # a zap goes with the row that maps it when it is made
    for j, z in enumerate(m.zaps):
        i = _row_alive(m.table, z["asid"], int(z["start"]), int(z["at_record"]))
        if i is not None:
            zaps[j]["start"] += delta[i]
            zaps[j]["end"] += delta[i]
    cols = dict(trace.columns)
    cols["addr"] = addr
    # (the placements are applied: the shifted rows sit where the kernel would put them)
    mp = Mappings(t, m.files, m.source, m.reads, moves, zaps=zaps)
    return type(trace).from_columns(cols, trace.meta, n_threads=trace._n_threads,
                                    mappings=mp, _checked=trace._checked)


def _row_alive(table, asid, at, record):
    """The row of address space ``asid`` that maps ``at`` when a call returns just before
    ``record`` (alive at ``record``, or else at ``record - 1``): a zap's row."""
    where = (table["asid"] == asid) & (table["start"] <= at) & (table["end"] > at)
    for r in (record, record - 1) if record > 0 else (record,):
        hit = np.flatnonzero(where & (table["from_record"] <= r) & (table["until_record"] > r))
        if len(hit):
            return int(hit[0])
    return None


def _row_at(table, asid, at, record, ending):
    """The row of address space ``asid`` that maps ``at`` and ends (``ending``) or starts at
    ``record``: a move's source and destination rows."""
    key = "until_record" if ending else "from_record"
    hit = np.flatnonzero((table["asid"] == asid) & (table["start"] <= at) & (table["end"] > at)
                         & (table[key] == record))
    return int(hit[0]) if len(hit) else None
