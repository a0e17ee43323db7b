"""Engine scenarios for traces recorded with their mappings (``vmlab record``).

A recorded trace carries the mappings of its run (rows that live for a range of records) and
the page-cache state of its files when the run started.  The engine's VMAs are static and its
page cache starts from an explicit preload, so this module translates:

* :func:`vmas_for`: one static VMA per address range with what the kernel knew about it when
  the program touched it: backing, ``prot``, ``private``, the file's identity and offset;
* :func:`files_for`: each mapped file's size (``File``), so fault-around and readahead clip at
  its end;
* :func:`preload_for`: the file pages resident when the run started;
* :func:`reads_for`: the ``read()``-family calls and exec's reads, as
  :class:`~vmlab.model.scenario.FileRead` s at their records: the readahead windows they
  open (mm/readahead.c) and the pages they copy (docs/model.md 11.7);
* :func:`unmaps_for`: the mappings that end during the run (``munmap``, a ``brk`` shrink),
  as :class:`~vmlab.model.scenario.Unmap` s: their PTEs go and their anonymous frames are
  given back where the recording says; and those that move (``mremap``, the recording's
  moves table), whose pages go with them (docs/model.md 11.9);
* :func:`ra_pages_for`: the readahead window of the recorded devices;
* :func:`scenario_for`: all of it with :data:`~vmlab.model.scenario.KERNEL_DEFAULTS` (the
  kernel fault model, fault-around, readahead, the two-list replacement), the memory limit
  ``memory_bytes`` when one is given, and any override (docs/model.md section 11,
  "Defaults").

An implementation may not run every mechanism of docs/model.md sections 11-12 (each refuses
those it does not run); :func:`runnable` turns a scenario into one it accepts, *saying* what
it left out and what the recording did not know (never silently).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ScenarioError, VmlabError
from ..trace.mappings import NO_FILE, PROT_EXEC, PROT_READ, PROT_WRITE, Backing
from .generations import separate


#: Engine backing of each recorded backing.  The kernel's special mappings (vDSO and vvar)
#: are ``device`` memory: a fault maps a page nobody reads from disk and nothing is charged,
#: and their ``vm_ops`` have no ``->map_pages``, so under per-VMA locks such a fault takes
#: ``mmap_lock`` (``vmf_can_call_fault()``, docs/model.md 11.7), as ``vma_lock_backings``
#: says of ``device``.
ENGINE_BACKING = {Backing.FILE: "file", Backing.ANON: "anon", Backing.STACK: "anon",
                  Backing.HEAP: "anon", Backing.SPECIAL: "device"}
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


def _first_access(trace, asid):
    """Sorted distinct page numbers of ``asid``'s accesses and the record index of the first
    access to each.

    From the trace's index (:func:`vmlab.engine.prepare.index_trace`: one chunked pass whose
    memory grows with the distinct pages, cached per trace object, so the replay that follows
    reuses it), not from a sort of every record: a 375-million-record recording took 17 GB
    that way."""
    from ..engine.prepare import _VPN_BITS, _key_span, index_trace

    idx = index_trace(trace)
    lo, hi = _key_span(idx.keys, asid, 0, 1 << _VPN_BITS)
    return idx.keys[lo:hi] & np.uint64((1 << _VPN_BITS) - 1), idx.first_rec[lo:hi].copy()


def row_identity(row, at):
    """What the kernel finds at address ``at`` under mapping row ``row``: engine backing,
    sharing, file and file offset (0 without a file)."""
    f = int(row["file"])
    off = int(row["file_offset"]) + (at - int(row["start"])) if f != NO_FILE else 0
    return (ENGINE_BACKING[Backing(int(row["backing"]))], int(row["shared"]), f, off)


#: Each recorded backing code's engine backing as a small integer (:func:`row_identities`).
_ENGINE_CODE = np.array([sorted(set(ENGINE_BACKING.values())).index(ENGINE_BACKING[b])
                         for b in sorted(Backing)], np.int64)


def row_identities(rows, at):
    """:func:`row_identity` of each of ``rows`` (all mapping ``at``) as one int64 row of four:
    the engine backing (as a code), sharing, file, file offset (as its 64 bits).  Two rows
    have the same identity exactly when their rows here are equal."""
    f = rows["file"].astype(np.int64)
    off = np.where(f != NO_FILE, rows["file_offset"].astype(np.uint64)
                   + (np.uint64(at) - rows["start"].astype(np.uint64)), np.uint64(0))
    return np.stack([_ENGINE_CODE[rows["backing"].astype(np.int64)],
                     rows["shared"].astype(np.int64), f, off.view(np.int64)], axis=1)


def vmas_for(trace):
    """Static engine VMAs from the trace's mappings (see the module docstring).

    The run's address space changes (the dynamic loader reserves a library's span, then maps
    its segments over it and ``mprotect``s the gaps; ``munmap``; ``brk``); the engine's VMAs
    do not.  The address space is cut at every row boundary; each piece takes the row that
    existed when the program first touched the piece (the kernel faulted it under that
    mapping), or, if it was never touched, the row that lived last.  Its ``prot`` is the
    union of the permissions of every row that mapped the range at some time (an
    ``mprotect`` to read-only after the loader wrote the relocations keeps ``w``: the writes
    happened).
    Neighbouring pieces that map the same thing (same backing, prot, sharing, file and
    continuous offsets) are one VMA.  A range that a later mapping of another identity
    touches again after an earlier one was touched is first shifted apart
    (:func:`vmlab.model.generations.separate`): the VMAs are those of that trace.
    """
    from .scenario import Vma

    if trace.mappings is None:
        raise VmlabError("this trace carries no mappings: record it with `vmlab record`")
    trace = separate(trace)
    m = trace.mappings
    ps = int(trace.page_size)
    names = file_names(m)
    t = m.table
    out = []
    for asid in np.unique(t["asid"]):
        rows = t[t["asid"] == asid]
        uniq, first = _first_access(trace, int(asid))
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

            me = row_identity(row, lo)
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
    ps = np.uint64(page_size)
    lo = rows["start"] // ps
    # (unsigned: a generation shifted apart sits at 2**63 and above, negative as an int64)
    hi = rows["end"] // ps + (rows["end"] % ps != 0)
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


def files_for(trace, vmas=None, reads=(), residency=None):
    """``File`` objects of the files the VMAs map and ``reads`` read, from the recorded files
    table: their size in bytes, so fault-around and readahead stop at the end of each file,
    and the large folios their resident pages were in (``File.folios``; none where the
    recording did not measure them).  ``residency`` (``{file identity: bool array}``, a
    cold run's) keeps only the folios whose pages are all resident in it: a folio the run
    reads again is the run's own readahead's, not the one the recording found."""
    from .scenario import File

    m = trace.mappings
    vmas = vmas_for(trace) if vmas is None else vmas
    names = file_names(m)
    used = {v.file for v in vmas if v.file is not None} | {r.file for r in reads}
    out = []
    for name, f in zip(names, m.files):
        if name in used and f.size_bytes:
            folios = tuple(f.folios or ())
            res = (residency or {}).get(name)
            if res is not None:
                folios = tuple((a, n) for a, n in folios if a + n <= len(res) and res[a:a + n].all())
            out.append(File(name, size_bytes=int(f.size_bytes), folios=folios))
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


def _start_residency(trace, unknown, residency):
    """``{file identity: bool array or None}``: each recorded file's page cache when the run
    starts (``residency`` over the recorded state; ``unknown`` for files not measured)."""
    if unknown not in UNKNOWN_RESIDENCY:
        raise ScenarioError(f"unknown residency must be one of {UNKNOWN_RESIDENCY}, got "
                            f"{unknown!r}")
    m = trace.mappings
    ps = int(trace.page_size)
    start = {}
    for name, info in zip(file_names(m), m.files):
        res = (residency or {}).get(name, info.resident)
        if res is None and unknown == "resident":
            res = np.ones(-(-int(info.size_bytes) // ps), bool)
        start[name] = None if res is None else np.asarray(res, bool)
    return start


def preload_for(trace, vmas=None, unknown="resident", residency=None, ra_pages=None,
                reads=True):
    """Addresses (address space 0) of the pages of file VMAs whose file page was in the page
    cache before the program first touched it: resident when the recording started, or
    read in by a ``read()``-family call or ``exec`` (the trace's file reads table, with the
    kernel's readahead: :func:`read_pages`) before the first access to that virtual page.
    ``unknown`` says what to assume for files the recording did not measure
    (:data:`UNKNOWN_RESIDENCY`); ``residency`` (``{file identity: bool array}``, as
    :func:`file_names` names them) replaces the recorded state of those files (a cold
    run's); ``ra_pages``: the readahead window of the reads (default :func:`ra_pages_for`).
    ``reads=False``: the starting page cache only (:func:`scenario_for` gives the reads as
    operations at their records instead, :func:`reads_for`)."""
    if unknown not in UNKNOWN_RESIDENCY:
        raise ScenarioError(f"unknown residency must be one of {UNKNOWN_RESIDENCY}, got "
                            f"{unknown!r}")
    trace = separate(trace)
    m = trace.mappings
    if m is None:
        return np.zeros(0, np.uint64)
    vmas = vmas_for(trace) if vmas is None else vmas
    ps = int(trace.page_size)
    start = _start_residency(trace, unknown, residency)
    ra = ra_pages_for(trace)[0] if ra_pages is None else int(ra_pages)
    read_at = read_pages(trace, start, ra) if reads else {}
    first_pages, first_rec = _first_access(trace, 0) if len(read_at) else (None, None)
    out = []
    for v in vmas:
        if v.asid != 0 or v.file is None or v.file not in start:
            continue
        res = start[v.file]
        got = read_at.get(v.file)
        # only the VMA's pages over the file can be in its cache (a VMA may run far past
        # the file's end: the pages beyond are never listed, one by one or at all)
        known = max(0 if res is None else len(res), 0 if got is None else len(got))
        n = max(0, min((v.end - v.start) // ps, known - v.offset // ps))
        pages = np.uint64(v.start) + np.arange(n, dtype=np.uint64) * np.uint64(ps)
        fpage = v.offset // ps + np.arange(n)
        ok = np.zeros(len(pages), bool)
        if res is not None:
            inside = fpage < len(res)
            ok[inside] = res[fpage[inside]]
        if got is not None:
            inside = fpage < len(got)
            when = np.full(len(pages), NEVER, np.uint64)
            when[inside] = got[fpage[inside]]
            ok |= (when != NEVER) & (when <= _first_record(first_pages, first_rec,
                                                            pages // np.uint64(ps)))
        out.append(pages[ok])
    if not out:
        return np.zeros(0, np.uint64)
    return np.unique(np.concatenate(out))


#: "Never" for :func:`read_pages`' record numbers.
NEVER = np.iinfo(np.uint64).max


def _first_record(pages, first, vpn):
    """The first record touching each virtual page ``vpn`` (:data:`NEVER` if none), from
    :func:`_first_access`'s sorted ``pages`` and ``first``."""
    out = np.full(len(vpn), NEVER, np.uint64)
    if not len(pages):
        return out
    k = np.minimum(np.searchsorted(pages, vpn), len(pages) - 1)
    hit = pages[k] == vpn
    out[hit] = first[k[hit]]
    return out


def ra_pages_for(trace, default=None):
    """``(ra_pages, note)``: the readahead window (pages) of the recording's files' devices
    (``FileInfo.read_ahead_kb``, the kernel's ``ra_pages``; the window of most mapped files
    when they differ, with a note saying so), or ``default`` (:data:`KERNEL_DEFAULTS`'s 32)
    when the recording did not measure it."""
    from .scenario import KERNEL_DEFAULTS

    default = KERNEL_DEFAULTS["ra_pages"] if default is None else default
    m = trace.mappings
    if m is None:
        return default, ""
    kib = int(trace.page_size) // 1024
    used = set(np.unique(m.table["file"][m.table["file"] != NO_FILE]).tolist())
    seen = [f.read_ahead_kb // kib for i, f in enumerate(m.files)
            if i in used and f.read_ahead_kb is not None]
    if not seen:
        return default, ""
    values, counts = np.unique(seen, return_counts=True)
    best = int(values[np.argmax(counts)])
    note = "" if len(values) == 1 else (
        f"one readahead window for every file (ra_pages={best}; the recorded devices have "
        f"{', '.join(str(int(v)) for v in values)} pages)")
    return best, note


class _ReadStream:
    """The page cache of one file as its reads fill it (``struct file_ra_state`` and the
    ``read()`` path of mm/filemap.c and mm/readahead.c): :meth:`read` of a byte range
    brings in its missing pages with the synchronous readahead window, and a page carrying
    the readahead mark starts the asynchronous one.  ``cached``: bool per file page;
    ``mark``: the readahead mark per page; ``when``: the record each page was read at
    (:data:`NEVER` if not read): the file's, shared by its streams."""

    def __init__(self, cached, mark, when, ra_pages):
        self.cached, self.mark, self.when = cached, mark, when   # the file's: shared
        self.n = len(cached)
        self.max = int(ra_pages)
        self.start = self.size = self.async_size = 0
        self.prev_index = None        # prev_pos = -1: no read yet
        self.prev_end = -1            # the previous read's last page (ra->prev_pos - 1)
        self.windows = []             # the windows the last read opened, in order

    def _fill(self, lo, hi, mark, at):
        lo, hi = max(0, lo), min(self.n, hi)
        if lo < hi:
            self.windows.append((lo, hi))
        for p in range(lo, hi):
            if not self.cached[p]:
                self.cached[p] = True
                self.when[p] = at
                if p == mark:
                    self.mark[p] = True

    def _sync(self, index, req, at):
        from ..engine.kernel.filereads import init_ra_size   # (the run's own, 11.7.1)
        if self.max == 0:        # no readahead: the page alone (force_page_cache_ra of 1)
            self._fill(index, index + 1, -1, at)
            return
        max_pages = max(self.max, req)   # an oversized read is read whole (io_pages)
        seq = self.prev_index is not None and 0 <= index - self.prev_index <= 1
        if index == 0 or req > self.max or seq:
            self.start, self.size = index, init_ra_size(req, max_pages)
            self.async_size = self.size - req if self.size > req else self.size >> 1
        else:
            j, scanned = index - 1, 0
            while scanned < max_pages and j >= 0 and self.cached[j]:
                j -= 1
                scanned += 1
            contig = index - j - 1
            if contig <= req:            # a small random read: as is, no readahead state
                self._fill(index, index + req, -1, at)
                return
            if j < 0:                    # cached from the file's start: a long stream
                contig *= 2
            self.start, self.size, self.async_size = index, min(contig + req, max_pages), 1
        self._fill(self.start, self.start + self.size,
                   self.start + self.size - self.async_size, at)

    def _async(self, index, req, at):
        from ..engine.kernel.filereads import next_ra_size
        if self.max == 0:
            return
        max_pages = max(self.max, req)
        if index == self.start + self.size - self.async_size:
            self.start += self.size
            self.size = next_ra_size(self.size, max_pages)
            self.async_size = self.size
        else:                             # another stream's mark: size it from the cache
            s = index + 1
            while s < self.n and s - index <= max_pages and self.cached[s]:
                s += 1
            if s - index > max_pages or s >= self.n:
                return
            self.start = s
            self.size = next_ra_size(s - index + req, max_pages)
            self.async_size = self.size
        self._fill(self.start, self.start + self.size,
                   self.start + self.size - self.async_size, at)

    def read(self, offset, nbytes, at, page_size):
        """Read ``nbytes`` at ``offset`` at record ``at``; returns the pages it copies
        ``(first, end)`` and the previous read's last page (-1: none), and leaves the
        windows it opened in ``windows``."""
        self.windows = []
        index = offset // page_size
        last = min(self.n, -(-(offset + nbytes) // page_size))
        prev = self.prev_end
        if nbytes > 0:
            self.prev_end = (offset + nbytes - 1) // page_size
        for p in range(index, last):
            if not self.cached[p]:
                self._sync(p, last - p, at)
            if self.mark[p]:
                self.mark[p] = False
                self._async(p, last - p, at)
        self.prev_index = (offset + nbytes) // page_size
        return (index, max(index, last)), prev


def _replay_reads(trace, start, ra_pages):
    """The file reads table through :class:`_ReadStream` s: ``(calls, when)``, ``calls`` a
    list of ``(record, file identity, windows, (first, end) copied, previous last page,
    stream (1: exec's), the page of the byte past the call)`` in call order, ``when`` as :func:`read_pages` returns it."""
    m = trace.mappings
    if m is None or not len(m.reads):
        return [], {}
    from ..trace.mappings import READ_CALLS

    ps = int(trace.page_size)
    names = file_names(m)
    exec_code = READ_CALLS.index("exec")
    files = {}
    streams = {}
    calls = []
    for r in m.reads:
        f = int(r["file"])
        name = names[f]
        if name not in files:
            n = -(-int(m.files[f].size_bytes) // ps)
            base = start.get(name)
            c = np.zeros(n, bool)
            if base is not None:
                k = min(n, len(base))
                c[:k] = base[:k]
            files[name] = (c, np.zeros(n, bool), np.full(n, NEVER, np.uint64))
        key = (name, int(r["call"]) == exec_code)
        if key not in streams:
            streams[key] = _ReadStream(*files[name], ra_pages)
        at = int(r["at_record"])
        copied, prev = streams[key].read(int(r["offset"]), int(r["nbytes"]), at, ps)
        calls.append((at, name, list(streams[key].windows), copied, prev, int(key[1]),
                      (int(r["offset"]) + int(r["nbytes"])) // ps))
    return calls, {name: when for name, (_c, _m, when) in files.items()}


def read_pages(trace, start, ra_pages):
    """``{file identity: uint64 array}``: for each file the recording read (its file reads
    table), the record number at which each of its pages entered the page cache through
    those reads (:data:`NEVER`: not through them), from the state ``start`` (``{identity:
    bool array or None}``; ``None``: nothing resident), with the kernel's readahead of a
    window of ``ra_pages`` pages.  Each file's reads are one stream (one
    ``file_ra_state``, in call order); ``exec``'s reads are a stream of their own."""
    return _replay_reads(trace, start, ra_pages)[1]


def reads_for(trace, unknown="resident", residency=None, ra_pages=None, dynamic=False):
    """The recording's ``read()``-family calls and exec's reads as
    :class:`~vmlab.model.scenario.FileRead` s (docs/model.md 11.7), each at the record where
    the call returned: the readahead windows it opened (mm/readahead.c, from the page cache
    the run starts with: the recorded residency, ``residency`` or ``unknown`` as
    :func:`preload_for` takes them), then the pages it copies, marked accessed.  A call that
    returned after the last record is left out.  ``dynamic``: one FileRead a call, of its
    file's stream (exec's reads a stream of their own), its windows left to the run
    (11.7.1)."""
    from .scenario import FileRead

    trace = separate(trace)
    if trace.mappings is None:
        return []
    ra = ra_pages_for(trace)[0] if ra_pages is None else int(ra_pages)
    calls, _when = _replay_reads(trace, _start_residency(trace, unknown, residency), ra)
    out = []
    for at, name, windows, (a, b), prev, stream, pos_end in calls:
        if at >= len(trace):
            continue
        if dynamic:
            if a < b:   # (a call that copied nothing, at or past the end, reads nothing)
                out.append(FileRead(at, name, 0, 0, a, b, prev, stream=stream,
                                    pos_end=pos_end))
            continue
        for k, (lo, hi) in enumerate(windows):
            last = k == len(windows) - 1
            # (the call's copy goes with its last window: windows first, docs/model.md 11.7)
            out.append(FileRead(at, name, lo, hi, a, b if last else a, prev if last else -1))
        if not windows and a < b:
            out.append(FileRead(at, name, 0, 0, a, b, prev))
    return out


def scenario_for(trace, *, memory_bytes=None, memory_pages=None, unknown="resident",
                 residency=None, **overrides):
    """The engine scenario of a recorded trace, as close to the kernel as the recording
    allows: VMAs, files and preload as above (the preload includes the pages the run's
    reads brought in before it touched them), :data:`KERNEL_DEFAULTS` (``fault_model``
    ``"kernel"``, ``fault_around_pages`` 16, ``ra_pages`` 32, ``replacement``
    ``"twolist"``) with ``ra_pages`` the recorded devices' readahead window
    (:func:`ra_pages_for`) when the recording measured it, the memory limit ``memory_bytes`` (anonymous and page-cache pages, like a
    cgroup; ``None``: unlimited) or ``memory_pages`` (page-cache frames only), and
    the mappings that end or move (:func:`unmaps_for`; a move the static VMAs cannot take,
    :func:`~vmlab.model.scenario.unmap_problem`, becomes the unmap of its source, and
    :func:`runnable` says so; ``unmaps=()`` keeps every mapping to the end),
    ``overrides`` (any Scenario field: ``replacement="lru"``, ``fault_around_pages=1``...)
    on top.  ``unknown``: the page-cache state assumed for files the recording did not
    measure (:data:`UNKNOWN_RESIDENCY`; :func:`runnable` names them).  The result may ask for mechanisms the engine does not run yet:
    :func:`runnable` says which and leaves them out."""
    from .scenario import KERNEL_DEFAULTS, Scenario, unmap_problem

    trace = separate(trace)     # (a range mapped again as something else: shifted apart)
    vmas = overrides.pop("vmas", None) or vmas_for(trace)
    ra = overrides.get("ra_pages", ra_pages_for(trace)[0])
    reads = overrides.pop("reads", None)
    dynamic = overrides.pop("dynamic_reads", True)
    if reads is None:
        reads = reads_for(trace, unknown, residency, ra, dynamic=dynamic)
    files = overrides.pop("files", None)
    files = files_for(trace, vmas, reads, residency) if files is None else files
    pre = overrides.pop("preload", None)
    if pre is None:
        pre = preload_for(trace, vmas, unknown, residency=residency, ra_pages=ra, reads=False)
        if memory_pages is not None and len(pre) > memory_pages:
            pre = pre[:memory_pages]
    unmaps = overrides.pop("unmaps", None)
    if unmaps is None:
        unmaps = [u if u.to is None or not unmap_problem(u, vmas) else _as_unmap(u)
                  for u in unmaps_for(trace)]
    kw = {**KERNEL_DEFAULTS, "ra_pages": ra, **overrides}
    if memory_bytes is not None and memory_pages is not None:
        raise ScenarioError("give memory_bytes or memory_pages, not both")
    return Scenario(trace, vmas=vmas, files=files, preload=pre if len(pre) else None,
                    memory_pages=memory_pages, memory_bytes=memory_bytes, unmaps=unmaps,
                    reads=reads, **kw)


# -- what the engine runs ----------------------------------------------------------------
#: What each mechanism is, for the note :func:`runnable` writes.
KNOB_TEXT = {"fault_model": "the kernel fault model", "ra_pages": "readahead",
             "folio_pages": "large folios", "memory_bytes": "the memory limit on anonymous "
             "and page-cache pages (memory_bytes)",
             "file": "page-cache sharing between mappings of one file",
             "reads": "read() calls during the run", "reclaim_batch": "reclaim batches",
             "lru_add_batch": "the per-CPU LRU-add batches", "tlb_young": "the TLB",
             "reclaim_ages_active": "active-list aging at every reclaim",
             "reclaim_priorities": "the kernel's reclaim call (priorities, chunks, retries)"}


def unmaps_for(trace):
    """The mappings that end or move during the run (docs/model.md 11.9), as
    :class:`~vmlab.model.scenario.Unmap` s.  At each record ``r`` at which rows of the
    recording end (``until_record``) or mappings move (the moves table, ``mremap``), per
    address space:

    * each move at ``r``, in call order: ``Unmap(r, start, end, asid, to=to)``, its pages
      going with it (the kernel's ``move_page_tables``);
    * then one plain ``Unmap`` per range no row alive at ``r`` maps, of what ended at ``r``
      and did not move (``munmap``, a ``brk`` shrink, the tail an ``mremap`` shrank) and of
      the moves' destinations (a mapping moved and unmapped before the next record).

    A zap (``madvise(MADV_DONTNEED)``, the zaps table) at ``r`` is a plain ``Unmap`` of its
    range too, though rows still map it: its pages go (anonymous frames freed, PTEs
    removed) and the next access faults afresh (docs/model.md 11.9).

    An ``mprotect`` ends a row and starts another over the same range at the same record:
    nothing is unmapped; a ``brk`` that grows the heap neither.  Rows that outlive the trace
    unmap nothing, moves after its last record move nothing.  Sorted by record, then address
    space; at one record and address space the moves come first, then the unmaps by
    address (what is left of an old range is unmapped after its pages moved)."""
    from .scenario import Unmap

    if trace.mappings is None:
        raise VmlabError("this trace carries no mappings: record it with `vmlab record`")
    trace = separate(trace)
    m = trace.mappings
    t = m.table
    n = len(trace)
    mv = m.moves[m.moves["at_record"] < n]
    zp = m.zaps[m.zaps["at_record"] < n]
    out = []
    for r in np.unique(np.concatenate([t["until_record"][t["until_record"] < n],
                                       mv["at_record"], zp["at_record"]])):
        r = int(r)
        live = t[(t["from_record"] <= r) & (r < t["until_record"])]
        ended = t[t["until_record"] == r]
        here = mv[mv["at_record"] == r]
        zaps = zp[zp["at_record"] == r]
        for asid in np.unique(np.concatenate([ended["asid"], here["asid"], zaps["asid"]])):
            moves = here[here["asid"] == asid]
            for x in moves:
                out.append(Unmap(r, int(x["start"]), int(x["end"]), int(asid), to=int(x["to"])))
            sources = _union(moves["start"], moves["end"])
            dests = [(int(x["to"]), int(x["to"]) + int(x["end"]) - int(x["start"]))
                     for x in moves]
            mine = ended[ended["asid"] == asid]
            left = _subtract(_union(mine["start"], mine["end"]), sources) + dests
            mapped = live[live["asid"] == asid]
            gone = _subtract(_merge(left), _union(mapped["start"], mapped["end"]))
            zapped = zaps[zaps["asid"] == asid]
            for lo, hi in _merge(gone + _union(zapped["start"], zapped["end"])):
                out.append(Unmap(r, lo, hi, int(asid)))
    return out


def _as_unmap(u):
    """The plain unmap of a move's source (a move the VMAs cannot take)."""
    return dataclasses.replace(u, to=None)


def _union(starts, ends):
    """The address ranges ``[starts[i], ends[i])`` as sorted disjoint intervals."""
    return _merge(zip(np.asarray(starts).tolist(), np.asarray(ends).tolist()))


def _merge(ranges):
    """``(lo, hi)`` ranges as sorted disjoint ``[lo, hi)`` intervals."""
    out = []
    for lo, hi in sorted((int(lo), int(hi)) for lo, hi in ranges):   # (lists and tuples)
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _subtract(a, b):
    """Sorted disjoint intervals ``a`` minus sorted disjoint intervals ``b``."""
    out = []
    for lo, hi in a:
        for blo, bhi in b:
            if bhi <= lo or blo >= hi:
                continue
            if blo > lo:
                out.append((lo, blo))
            lo = max(lo, bhi)
            if lo >= hi:
                break
        if lo < hi:
            out.append((lo, hi))
    return out


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
        _ra, ra_note = ra_pages_for(scenario.trace)
        if ra_note:
            said.append(ra_note)
        said += _moves_not_followed(scenario, vmas)
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
        said.append("large folios (folio_pages=1, and the files' recorded folio layouts)")
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
    if "workingset" in drop:
        changes["workingset"] = False
        said.append("twolist's protection of the working set (workingset=False)")
    if scenario.reads and ("reads" in drop or "file" in drop):
        changes["reads"] = ()
        mapped = {v.file for v in vmas if v.file is not None}
        changes["files"] = tuple(f for f in changes.get("files", scenario.files)
                                 if f.name in mapped)   # (not those only the reads named)
        said.append("the run's read() calls (FileRead: the page cache they fill, charged at "
                    "their records)")
    if "reclaim_batch" in drop and "memory_bytes" not in drop:
        changes["reclaim_batch"] = 1
        said.append("the kernel's 32-page reclaim batches (reclaim_batch=1: one victim at a "
                    "time)")
    if "lru_add_batch" in drop and "memory_bytes" not in drop:
        changes["lru_add_batch"] = 0
        said.append("the per-CPU LRU-add batches (lru_add_batch=0: every folio on its list "
                    "at once)")
    if "tlb_young" in drop:
        changes["tlb_young"] = False
        said.append("the TLB (tlb_young=False: every access sets its PTE's young bit)")
    if "reclaim_ages_active" in drop:
        changes["reclaim_ages_active"] = False
        said.append("active-list aging at every reclaim (reclaim_ages_active=False: the "
                    "active list aged while the inactive one is low)")
    if "reclaim_priorities" in drop:
        changes["reclaim_priorities"] = False
        said.append("the kernel's reclaim call (reclaim_priorities=False: one victim at a "
                    "time)")
    return scenario.replace(**changes), said


#: How many moves the notes of :func:`runnable` name one by one (the rest are counted).
MOVES_NAMED = 5


def _moves_not_followed(scenario, vmas):
    """Phrases for the recording's moves that ``scenario`` replays as the unmap of their
    source (:func:`scenario_for`'s fallback when the static VMAs cannot take the move)."""
    from .scenario import Unmap, unmap_problem

    mv = scenario.trace.mappings.moves
    mv = mv[mv["at_record"] < len(scenario.trace)]
    if not len(mv):
        return []
    have = set(scenario.unmaps)
    said = []
    for x in mv:
        u = Unmap(int(x["at_record"]), int(x["start"]), int(x["end"]), int(x["asid"]),
                  to=int(x["to"]))
        if u in have or _as_unmap(u) not in have:
            continue
        why = unmap_problem(u, vmas)
        said.append(f"the move (mremap) of [{u.start:#x}, {u.end:#x}) to {u.to:#x} at record "
                    f"{u.record} (replayed as the unmap of its source"
                    + (f": the static VMAs cannot take it, it {why})" if why else ")"))
    if len(said) > MOVES_NAMED:
        said[MOVES_NAMED:] = [f"{len(said) - MOVES_NAMED} more move(s) replayed as the unmap "
                              "of their source the same way"]
    return said


def _vma_fields(v):
    from dataclasses import fields
    return {f.name: getattr(v, f.name) for f in fields(v)}
