"""Engine scenarios for traces recorded with their mappings (``vmlab record``).

A recorded trace carries the mappings of its run (rows that live for a range of records) and
the page-cache state of its files when the run started.  The engine's VMAs are static and its
page cache starts from an explicit preload, so this module translates:

* :func:`vmas_for`: one static VMA per address range with what the kernel knew about it when
  the program touched it: backing, ``prot``, ``private``, the file's identity and offset;
* :func:`files_for`: each mapped file's size (``File``), so fault-around and readahead clip at
  its end;
* :func:`preload_for`: the file pages resident when the run started;
* :func:`scenario_for`: all of it with :data:`~vmlab.model.scenario.KERNEL_DEFAULTS` (the
  kernel fault model, fault-around, readahead, the two-list replacement), the memory limit
  ``memory_bytes`` when one is given, and any override (docs/model.md section 11,
  "Defaults").

An implementation may not run every mechanism of docs/model.md sections 11-12 (each refuses
those it does not run); :func:`runnable` turns a scenario into one it accepts, *saying* what
it left out and what the recording did not know (never silently).
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import ScenarioError, VmlabError
from ..trace.mappings import NO_FILE, PROT_EXEC, PROT_READ, PROT_WRITE, Backing


#: Engine backing of each recorded backing (the engine knows file and anonymous memory; the
#: kernel's special mappings, vDSO and vvar, fault like anonymous read-only memory: a fault
#: maps a page nobody reads from disk, and nothing is charged).
ENGINE_BACKING = {Backing.FILE: "file", Backing.ANON: "anon", Backing.STACK: "anon",
                  Backing.HEAP: "anon", Backing.SPECIAL: "anon"}
_NAMES = {Backing.STACK: "[stack]", Backing.HEAP: "[heap]", Backing.SPECIAL: "[special]",
          Backing.ANON: "anon"}


def _prot_text(prot):
    return "".join(c for c, bit in (("r", PROT_READ), ("w", PROT_WRITE), ("x", PROT_EXEC))
                   if prot & bit)


def file_names(mappings):
    """The identity (``Vma.file``) of each file of ``mappings``: its path, with ``#inode``
    added when two different files (device, inode) share one path (a file replaced during
    the run)."""
    out = []
    for f in mappings.files:
        twin = sum(1 for g in mappings.files if g.path == f.path and (g.dev, g.inode) != (f.dev, f.inode))
        out.append(f"{f.path}#{f.inode}" if twin else f.path)
    if len(set(out)) != len(out):   # same path and inode on two devices: number them
        out = [f"{n}@{i}" if out.count(n) > 1 else n for i, n in enumerate(out)]
    return out


def _first_access(trace, asid, page_size):
    """Sorted distinct page numbers of ``asid``'s accesses and the record index of the first
    access to each."""
    from ..trace.model import Op

    op = np.asarray(trace.op)
    keep = op != Op.LOCK_W
    asids = np.asarray(trace.asid)
    if asids.size and (asids != asid).any():
        keep &= asids == asid
    idx = np.flatnonzero(keep)
    pages = np.asarray(trace.addr, np.uint64)[idx] // np.uint64(page_size)
    uniq, first = np.unique(pages, return_index=True)
    return uniq, idx[first]


def vmas_for(trace):
    """Static engine VMAs from the trace's mappings (see the module docstring).

    The run's address space changes (the dynamic loader reserves a library's span, then maps
    its segments over it and ``mprotect``s the gaps; ``munmap``; ``brk``); the engine's VMAs
    do not.  The address space is cut at every row boundary; each piece takes the row that
    existed when the program first touched the piece (the kernel faulted it under that
    mapping), or, if it was never touched, the row that lived last.  Its ``prot`` is the
    union of the permissions of every row that mapped the range at some time (an
    ``mprotect`` to read-only after the loader wrote the relocations keeps ``w``: the writes
    happened; so does a range unmapped and mapped again as something writable, such as the
    loader's ``ld.so.cache`` mapping whose addresses a later buffer reuses: the static VMA
    keeps the first mapping's backing, and a write to it is a copy-on-write fault).
    Neighbouring pieces that map the same thing (same backing, prot, sharing, file and
    continuous offsets) are one VMA.
    """
    from .scenario import Vma

    m = trace.mappings
    if m is None:
        raise VmlabError("this trace carries no mappings: record it with `vmlab record`")
    ps = int(trace.page_size)
    names = file_names(m)
    t = m.table
    out = []
    for asid in np.unique(t["asid"]):
        rows = t[t["asid"] == asid]
        uniq, first = _first_access(trace, int(asid), ps)
        cuts = np.unique(np.concatenate([rows["start"], rows["end"]]))
        pieces = []     # [start, end, backing, prot, shared, file, offset, kind]
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            lo, hi = int(lo), int(hi)
            cover = rows[(rows["start"] <= lo) & (rows["end"] >= hi)]
            if not len(cover):
                continue
            a, b = np.searchsorted(uniq, [lo // ps, -(-hi // ps)])
            if b > a:
                r = int(first[a:b].min())
                live = cover[(cover["from_record"] <= r) & (r < cover["until_record"])]
                if not len(live):  # touched before any row of it existed: the next one
                    later = cover[cover["from_record"] > r]
                    live = later[np.argsort(later["from_record"], kind="stable")] if len(later) \
                        else cover[np.lexsort((cover["from_record"], cover["until_record"]))][::-1]
                row = live[0]
            else:
                row = cover[np.lexsort((cover["from_record"], cover["until_record"]))][-1]

            def ident(x):
                f = int(x["file"])
                off = int(x["file_offset"]) + (lo - int(x["start"])) if f != NO_FILE else 0
                return (ENGINE_BACKING[Backing(int(x["backing"]))], int(x["shared"]), f, off)

            me = ident(row)
            prot = 0
            for x in cover:   # every row: a range unmapped and mapped again may be written
                prot |= int(x["prot"])
            pieces.append([lo, hi, me[0], prot, me[1], me[2], me[3], Backing(int(row["backing"]))])
        merged = []
        for p in pieces:
            q = merged[-1] if merged else None
            if (q is not None and q[1] == p[0] and q[2:6] == p[2:6]
                    and (q[5] == NO_FILE or q[6] + (q[1] - q[0]) == p[6])):
                q[1] = p[1]
            else:
                merged.append(list(p))
        merged += _unrecorded(uniq, first, rows, ps, trace)
        merged.sort(key=lambda p: p[0])
        for lo, hi, backing, prot, shared, f, off, kind in merged:
            if f != NO_FILE:
                name = names[f].rsplit("/", 1)[-1]
            elif kind is None:
                name = UNRECORDED
            else:
                name = _NAMES.get(kind, "anon")
            out.append(Vma(lo, hi, backing=backing, asid=int(asid),
                           name=f"{name}@{lo:#x}", prot=_prot_text(prot),
                           private=not shared, file=names[f] if f != NO_FILE else None,
                           offset=off if f != NO_FILE else 0))
    return out


#: Name prefix of the VMAs :func:`vmas_for` adds for pages the trace touches outside every
#: recorded mapping (a mapping the recording missed, or a kernel-mode fault of ``exec`` in a
#: perf recording, taken before the first mapping event).
UNRECORDED = "unrecorded"


def _unrecorded(uniq, first, rows, page_size, trace):
    """Pieces (as in :func:`vmas_for`) for the touched pages no row ever covered: anonymous,
    any access allowed, one per run of consecutive pages."""
    if not len(uniq):
        return []
    lo = rows["start"] // np.uint64(page_size)
    hi = -(-rows["end"].astype(np.int64) // page_size)
    covered = np.zeros(len(uniq), bool)
    for a, b in zip(lo, hi):
        i, j = np.searchsorted(uniq, [a, b])
        covered[i:j] = True
    pages = uniq[~covered].astype(np.int64)
    if not len(pages):
        return []
    breaks = np.flatnonzero(np.diff(pages) != 1) + 1
    out = []
    for run in np.split(pages, breaks):
        out.append([int(run[0]) * page_size, (int(run[-1]) + 1) * page_size, "anon",
                    PROT_READ | PROT_WRITE | PROT_EXEC, 0, NO_FILE, 0, None])
    return out


def unrecorded_pages(vmas, page_size=4096):
    """Pages of the VMAs :func:`vmas_for` added for accesses outside every recorded mapping
    (0 for a complete recording)."""
    return sum((v.end - v.start) // page_size for v in vmas if v.name.startswith(UNRECORDED + "@"))


def files_for(trace, vmas=None):
    """``File`` objects (name and size in bytes) of the files the VMAs map, from the
    recorded files table, so fault-around and readahead stop at the end of each file."""
    from .scenario import File

    m = trace.mappings
    vmas = vmas_for(trace) if vmas is None else vmas
    names = file_names(m)
    used = {v.file for v in vmas if v.file is not None}
    out = []
    for name, f in zip(names, m.files):
        if name in used and f.size_bytes:
            out.append(File(name, size_bytes=int(f.size_bytes)))
    return out


#: What :func:`preload_for` assumes of a file whose page-cache state the recording does not
#: know (``residency_when == "unknown"``: a file a perf recording saw mapped only during the
#: run, such as the locale files): ``"resident"`` (the recordings are of warm runs, as the
#: measured ones) or ``"cold"``.
UNKNOWN_RESIDENCY = ("resident", "cold")


def unknown_files(trace, vmas=None):
    """Identities of the files the VMAs map whose page-cache state was not measured."""
    m = trace.mappings
    vmas = vmas_for(trace) if vmas is None else vmas
    by_name = dict(zip(file_names(m), m.files))
    used = {v.file for v in vmas if v.file is not None}
    return sorted(n for n in used if by_name[n].resident is None)


def preload_for(trace, vmas=None, unknown="resident"):
    """Addresses (address space 0) of the pages of file VMAs whose file page was resident
    when the recording started: the page cache the run began with.  ``unknown`` says what
    to assume for files the recording did not measure (:data:`UNKNOWN_RESIDENCY`)."""
    if unknown not in UNKNOWN_RESIDENCY:
        raise ScenarioError(f"unknown residency must be one of {UNKNOWN_RESIDENCY}, got "
                            f"{unknown!r}")
    m = trace.mappings
    if m is None:
        return np.zeros(0, np.uint64)
    vmas = vmas_for(trace) if vmas is None else vmas
    ps = int(trace.page_size)
    by_name = dict(zip(file_names(m), m.files))
    out = []
    for v in vmas:
        info = by_name.get(v.file)
        if v.asid != 0 or info is None:
            continue
        res = info.resident
        if res is None:
            if unknown == "cold":
                continue
            res = np.ones(-(-int(info.size_bytes) // ps), bool)
        pages = np.arange(v.start, v.end, ps, dtype=np.uint64)
        fpage = v.offset // ps + np.arange(len(pages))
        ok = fpage < len(res)
        ok[ok] = res[fpage[ok]]
        out.append(pages[ok])
    if not out:
        return np.zeros(0, np.uint64)
    return np.unique(np.concatenate(out))


def scenario_for(trace, *, memory_bytes=None, memory_pages=None, unknown="resident",
                 **overrides):
    """The engine scenario of a recorded trace, as close to the kernel as the recording
    allows: VMAs, files and preload as above, :data:`KERNEL_DEFAULTS` (``fault_model``
    ``"kernel"``, ``fault_around_pages`` 16, ``ra_pages`` 32, ``replacement``
    ``"twolist"``), the memory limit ``memory_bytes`` (anonymous and page-cache pages, like a
    cgroup; ``None``: unlimited) or ``memory_pages`` (page-cache frames only), and
    ``overrides`` (any Scenario field: ``replacement="lru"``, ``fault_around_pages=1``...)
    on top.  ``unknown``: the page-cache state assumed for files the recording did not
    measure (:data:`UNKNOWN_RESIDENCY`; :func:`runnable` names them).  The result may ask for mechanisms the engine does not run yet:
    :func:`runnable` says which and leaves them out."""
    from .scenario import KERNEL_DEFAULTS, Scenario

    vmas = overrides.pop("vmas", None) or vmas_for(trace)
    files = overrides.pop("files", None)
    files = files_for(trace, vmas) if files is None else files
    pre = overrides.pop("preload", None)
    if pre is None:
        pre = preload_for(trace, vmas, unknown)
        if memory_pages is not None and len(pre) > memory_pages:
            pre = pre[:memory_pages]
    kw = {**KERNEL_DEFAULTS, **overrides}
    if memory_bytes is not None and memory_pages is not None:
        raise ScenarioError("give memory_bytes or memory_pages, not both")
    return Scenario(trace, vmas=vmas, files=files, preload=pre if len(pre) else None,
                    memory_pages=memory_pages, memory_bytes=memory_bytes, **kw)


# -- what the engine runs ----------------------------------------------------------------
#: What each mechanism is, for the note :func:`runnable` writes.
KNOB_TEXT = {"fault_model": "the kernel fault model", "ra_pages": "readahead",
             "folio_pages": "large folios", "memory_bytes": "the memory limit on anonymous "
             "and page-cache pages (memory_bytes)",
             "file": "page-cache sharing between mappings of one file"}


def runnable(scenario, runs):
    """``(scenario, left_out)``: ``scenario`` without the mechanisms an implementation does
    not run (``runs``: the names of :meth:`Scenario.granularity_knobs` it runs, e.g. the
    engine's ``vmlab.engine.prepare.RUNS_KNOBS``), and one phrase per thing the replay does
    not know or leaves out: pages outside every recorded mapping, files whose page-cache
    state was not measured, and each mechanism dropped.  A memory limit that cannot be
    charged to anonymous pages becomes a limit on page-cache frames (``memory_pages``), and
    says so."""
    vmas = scenario.resolved_vmas()
    asked = scenario.granularity_knobs(vmas)
    drop = [k for k in asked if k not in runs]
    said = []
    n_unrec = unrecorded_pages(vmas, int(scenario.trace.page_size))
    if n_unrec:
        said.append(f"the mappings of {n_unrec} touched page(s) (not in the recording: "
                    f"anonymous VMAs named {UNRECORDED!r})")
    if scenario.trace.mappings is not None:
        unknown = unknown_files(scenario.trace, vmas)
        if unknown:
            shown = ", ".join(n.rsplit("/", 1)[-1] for n in unknown[:3])
            said.append(f"the page-cache state of {len(unknown)} file(s) ({shown}"
                        f"{', ...' if len(unknown) > 3 else ''}: not measured by the "
                        "recording; scenario_for's unknown= says what was assumed)")
    if not drop:
        return scenario, said
    changes = {}
    if "fault_model" in drop:
        raise ScenarioError("this engine does not run the kernel fault model: a recorded "
                            "trace cannot be replayed like the kernel")
    if "ra_pages" in drop:
        changes["ra_pages"] = 0
        said.append("readahead (ra_pages=0)")
    if "folio_pages" in drop:
        from .scenario import File
        changes["folio_pages"] = 1
        changes["files"] = tuple(File(f.name, f.size_bytes) for f in scenario.files)
        said.append("large folios (folio_pages=1)")
    if "file" in drop:
        changes["vmas"] = [v.__class__(**{**_vma_fields(v), "file": None, "offset": 0})
                           for v in vmas]
        changes["files"] = ()
        said.append("shared page cache and file sizes (each mapping a file of its own)")
    if "memory_bytes" in drop:
        ps = int(scenario.trace.page_size)
        mem = max(1, scenario.memory_bytes // ps)
        changes["memory_bytes"] = None
        changes["memory_pages"] = mem
        if scenario.preload is not None and len(scenario.preload) > mem:
            changes["preload"] = np.asarray(scenario.preload)[:mem]
        said.append(f"memory_bytes (replaced by memory_pages={mem}: page-cache frames only)")
    return scenario.replace(**changes), said


def _vma_fields(v):
    from dataclasses import fields
    return {f.name: getattr(v, f.name) for f in fields(v)}
