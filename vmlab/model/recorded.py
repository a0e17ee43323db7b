"""Engine scenarios for traces recorded with their mappings (``vmlab record``).

The engine's VMAs are static, its page cache starts with an explicit preload: this module
derives both from a recorded trace's mappings and page-cache snapshot.  (The engine learns
the kernel's fault granularity separately; this is only the translation of the tables.)
"""
from __future__ import annotations

import numpy as np

from ..errors import VmlabError
from ..trace.mappings import NO_FILE, Backing


#: Engine backing of each recorded backing (the engine knows file and anonymous memory).
ENGINE_BACKING = {Backing.FILE: "file", Backing.ANON: "anon", Backing.STACK: "anon",
                  Backing.HEAP: "anon", Backing.SPECIAL: "anon"}


def vmas_for(trace):
    """Static engine VMAs from the trace's mappings: the address ranges every mapping row
    covered at some time, merged while adjacent with the same engine backing.  Where rows
    of different backings used the same addresses at different times, the row that existed
    first wins (the engine's VMAs do not change during a run)."""
    from .scenario import Vma

    m = trace.mappings
    if m is None:
        raise VmlabError("this trace carries no mappings: record it with `vmlab record`")
    t = np.sort(m.table, order=["from_record", "start"])
    taken = []      # (start, end, backing) already claimed
    for r in t:
        lo, hi = int(r["start"]), int(r["end"])
        pieces = [(lo, hi)]
        for s, e, _b in taken:
            nxt = []
            for a, b in pieces:
                if b <= s or a >= e:
                    nxt.append((a, b))
                    continue
                if a < s:
                    nxt.append((a, s))
                if b > e:
                    nxt.append((e, b))
            pieces = nxt
        back = ENGINE_BACKING[Backing(int(r["backing"]))]
        taken.extend((a, b, back) for a, b in pieces)
    taken.sort()
    merged = []
    for s, e, b in taken:
        if merged and merged[-1][1] == s and merged[-1][2] == b:
            merged[-1][1] = e
        else:
            merged.append([s, e, b])
    return [Vma(s, e, backing=b) for s, e, b in merged]


def preload_for(trace, page_size=4096):
    """Addresses of the file pages whose file page was resident when the recording started
    (each mapping row of a file with a residency snapshot, page by page)."""
    m = trace.mappings
    if m is None:
        return np.zeros(0, np.uint64)
    out = []
    for r in m.table:
        f = int(r["file"])
        if f == NO_FILE or m.files[f].resident is None:
            continue
        res = m.files[f].resident
        start, end, off = int(r["start"]), int(r["end"]), int(r["file_offset"])
        pages = np.arange(start, end, page_size, dtype=np.uint64)
        fpage = (off + (pages - start).astype(np.int64)) // page_size
        ok = (fpage < len(res))
        ok[ok] = res[fpage[ok]]
        out.append(pages[ok])
    if not out:
        return np.zeros(0, np.uint64)
    return np.unique(np.concatenate(out))


def preload_within(trace, vmas, memory_pages=None):
    """:func:`preload_for`, kept to the pages inside file VMAs of ``vmas`` (the only ones
    the engine can preload) and, with a limit, to the first ``memory_pages`` of them."""
    pre = preload_for(trace, trace.page_size)
    if len(pre):
        starts = np.array([v.start for v in vmas], np.uint64)
        ends = np.array([v.end for v in vmas], np.uint64)
        is_file = np.array([v.backing == "file" for v in vmas])
        k = np.searchsorted(starts, pre, side="right") - 1
        ok = (k >= 0) & (pre < ends[np.maximum(k, 0)]) & is_file[np.maximum(k, 0)]
        pre = pre[ok]
    if memory_pages is not None and len(pre) > memory_pages:
        pre = pre[:memory_pages]
    return pre


def scenario_for(trace, memory_pages=None, **kwargs):
    """The engine scenario of a recorded trace: VMAs from its mappings, the resident file
    pages preloaded, ``memory_pages`` frames (``None``: unlimited)."""
    from .scenario import Scenario

    vmas = vmas_for(trace)
    pre = preload_within(trace, vmas, memory_pages)
    return Scenario(trace, vmas=vmas, preload=pre if len(pre) else None,
                    memory_pages=memory_pages, **kwargs)
