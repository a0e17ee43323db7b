"""The kernel's ``mmap_lock`` tracepoints as text: read a capture, write a run's lock operations.

Since about 5.11 the kernel has three tracepoints per ``mmap_lock`` operation.  Captured with
``perf record -e 'mmap_lock:*' -- PROGRAM`` and printed with ``perf script`` (any layout that
has the tid and the time; ``-F comm,pid,tid,cpu,time,event,trace --ns`` is the recommended
one), they read::

    python3.11  1589/1592 [001]  4684.498567123:    mmap_lock:mmap_lock_start_locking: mm=0xffff88810006c4c0 memcg_id=3863 write=true
    python3.11  1589/1592 [001]  4684.498570456: mmap_lock:mmap_lock_acquire_returned: mm=0xffff88810006c4c0 memcg_id=3863 write=true success=true
    python3.11  1589/1592 [001]  4684.498585789:         mmap_lock:mmap_lock_released: mm=0xffff88810006c4c0 memcg_id=3863 write=true

(kernels before 6.9 print ``memcg_path="..."`` instead of ``memcg_id=N``; both are accepted
and ignored).  :func:`read_capture` pairs them into **lock operations**, per thread and
``mm``, in file order:

* ``start_locking`` opens a request (``request_ns``);
* the thread's next ``acquire_returned`` of that ``mm`` grants it (``success=true``:
  ``acquire_ns``) or ends it without the lock (``success=false``: a killable wait that a
  fatal signal cut short; ``acquire_ns = -1``);
* an ``acquire_returned`` with no open request is a **trylock** (``mmap_read_trylock``,
  ``mmap_write_trylock``: no wait, ``request_ns = acquire_ns``), or, when the thread holds
  the write lock and the event says ``write=false``, a **downgrade**
  (``mmap_write_downgrade``: the write hold ends and a read hold begins at that instant);
* ``released`` ends the thread's hold of that ``mm`` in that mode (``release_ns``); a release
  with no hold (the capture began while the lock was held) is counted in
  ``n_unmatched_releases`` and otherwise ignored; a hold never released (the capture ended)
  keeps ``release_ns = -1``.

Address spaces are the distinct ``mm`` pointers, numbered 0, 1, ... in order of first
appearance (``asid``).  :meth:`LockCapture.to_trace` gives the writer side as a trace
(``LOCK_W`` records of size 0: the capture does not name the ranges); the read side is the
faults' (and other readers'), which a trace does not carry as records.

:func:`format_events` and :func:`write_events` write lock operations back in the same text
(``--ns`` layout, one CPU per thread, a made-up ``mm`` pointer per address space, no memcg), so
a simulated run's waits and a real capture go through the same code
(``Result.write_mmap_lock_events``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np

from ..._io import atomic_path
from ...errors import TraceFormatError
from ..model import MAX_ASIDS, Op, Trace, TraceMeta
from ._text import SKIP_OTHER_EVENTS

#: The three tracepoints, as ``perf script`` names them.
START, ACQUIRE, RELEASE = ("mmap_lock:mmap_lock_start_locking",
                           "mmap_lock:mmap_lock_acquire_returned",
                           "mmap_lock:mmap_lock_released")
_KIND = {START: 0, ACQUIRE: 1, RELEASE: 2}
#: How an operation began (``kind`` column).
KINDS = ("lock", "trylock", "downgrade")
#: ``mm`` pointer written for address space ``asid``: ``MM_BASE + asid * 0x1000``.
MM_BASE = 0xFFFF888100000000
_TIME = re.compile(r"(\d+)\.(\d{1,9}):", re.ASCII)
_MAX_TIME_NS = 1 << 62
_EXPECTED = ("expected a perf script line '[comm] [pid/]tid [cpu] seconds.decimals: "
             "mmap_lock:mmap_lock_<event>: mm=0x... write=true|false [success=true|false]'")


@dataclass
class LockCapture:
    """Lock operations read from a capture, one entry per operation, in request order.

    Attributes
    ----------
    tid, pid, asid : ndarray of int64
        Thread, process (-1 when the layout has no pid) and address space (dense, by ``mm``).
    mode : ndarray of int8
        0 read, 1 write.
    kind : ndarray of int8
        Index into :data:`KINDS`.
    request_ns, acquire_ns, release_ns : ndarray of int64
        Times from the capture (ns); ``acquire_ns = -1`` for a request that failed or was
        still waiting at the end, ``release_ns = -1`` for a hold not released in the capture.
    success : ndarray of bool
        The ``acquire_returned`` said ``success=true``.
    n_unmatched_releases : int
        Releases of holds that began before the capture.
    """

    tid: np.ndarray
    pid: np.ndarray
    asid: np.ndarray
    mode: np.ndarray
    kind: np.ndarray
    request_ns: np.ndarray
    acquire_ns: np.ndarray
    release_ns: np.ndarray
    success: np.ndarray
    n_unmatched_releases: int = 0
    source: str = field(default="")

    def __len__(self):
        return len(self.tid)

    def select(self, mask):
        """The operations where ``mask`` (a bool array, one per operation) is True, in the
        same order (e.g. one process's of a capture recorded system-wide:
        ``cap.select(cap.pid == pid)``)."""
        mask = np.asarray(mask, dtype=bool)
        return replace(self, **{f.name: getattr(self, f.name)[mask] for f in dataclass_fields(self)
                                if isinstance(getattr(self, f.name), np.ndarray)})

    @property
    def wait_ns(self):
        """Request to grant, per operation (-1 where not granted)."""
        return np.where(self.acquire_ns >= 0, self.acquire_ns - self.request_ns, -1)

    @property
    def hold_ns(self):
        """Grant to release, per operation (-1 where either is missing)."""
        return np.where((self.acquire_ns >= 0) & (self.release_ns >= 0),
                        self.release_ns - self.acquire_ns, -1)

    def downgrade_parts(self):
        """Each downgraded writer's hold in its two parts (docs/model.md 15.13): ``(write_ns,
        read_ns)``, int64 arrays in request order, from its grant to its downgrade and from
        the downgrade to its release (a downgrade whose read hold was not released in the
        capture is left out).  An ``munmap`` downgrades: this is how ``munmap_write_ns`` was
        measured (``scripts/munmap_downgrade.c``)."""
        d = np.flatnonzero((self.kind == KINDS.index("downgrade")) & (self.release_ns >= 0))
        write = {(int(self.tid[i]), int(self.asid[i]), int(self.release_ns[i])): i
                 for i in np.flatnonzero((self.mode == 1) & (self.acquire_ns >= 0))}
        pairs = [(write[k], i) for i in d
                 if (k := (int(self.tid[i]), int(self.asid[i]), int(self.acquire_ns[i]))) in write]
        w = np.array([p[0] for p in pairs], np.int64)
        r = np.array([p[1] for p in pairs], np.int64)
        return (self.release_ns[w] - self.acquire_ns[w] if len(w) else np.zeros(0, np.int64),
                self.release_ns[r] - self.acquire_ns[r] if len(r) else np.zeros(0, np.int64))

    def wait_summary(self):
        """:func:`wait_summary` of this capture's operations."""
        return wait_summary(self.mode, self.wait_ns)

    def to_trace(self, page_size=4096):
        """The writers as a trace: one ``LOCK_W`` per granted write operation that began as a
        request or a trylock, with its tid and address space, ``gap_ns`` from the same
        thread's previous write request (its first: from the capture's first event), size 0
        (the whole address space: the tracepoints do not say which range was changed).
        Replaying it gives every writer ``mmap_cs_ns``; :attr:`hold_ns` has the real holds."""
        w = np.flatnonzero((self.mode == 1) & (self.acquire_ns >= 0))
        if len(w) == 0:
            raise TraceFormatError("the capture has no granted write operation: no LOCK_W to "
                                   "make a trace of", self.source or None)
        t0 = int(self.request_ns.min())
        tid, req = self.tid[w], self.request_ns[w]
        gap = np.empty(len(w), np.int64)
        last = {}
        for i, (t, r) in enumerate(zip(tid.tolist(), req.tolist())):
            gap[i] = r - last.get(t, t0)
            last[t] = r
        n = len(w)
        if int(self.asid[w].max()) >= MAX_ASIDS:
            i = int(w[np.argmax(self.asid[w] >= MAX_ASIDS)])
            raise TraceFormatError(
                f"operation {i} is in the {int(self.asid[i]) + 1:,}th distinct mm; a trace "
                f"holds at most {MAX_ASIDS:,} address spaces (asid below {MAX_ASIDS})",
                self.source or None)
        return Trace(np.zeros(n, np.uint64), op=np.full(n, Op.LOCK_W, np.uint8),
                     tid=tid.astype(np.uint32), asid=self.asid[w].astype(np.uint16),
                     size=np.zeros(n, np.uint32), gap_ns=gap.astype(np.uint64),
                     meta=TraceMeta(page_size=page_size,
                                    source=f"mmap_lock capture: {self.source}",
                                    notes="write acquisitions of mmap_lock as LOCK_W (whole "
                                          "address space); gap_ns between a thread's requests"))


#: Edges of the wait bins of :func:`wait_summary`, in ns: below 1 µs, 1-10 µs, ...,
#: 100 ms-1 s, 1 s and more (the 2025-26 measurements count read waits of 1-10 ms and
#: 10-100 ms).
WAIT_BIN_EDGES_NS = (0, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000,
                     1_000_000_000)
WAIT_BIN_LABELS = ("<1us", "1-10us", "10-100us", "100us-1ms", "1-10ms", "10-100ms",
                   "100ms-1s", ">=1s")


def wait_summary(mode, wait_ns):
    """Totals, percentiles and decade bins of ``mmap_lock`` waits per mode, the figures the
    kernel developers compute from these tracepoints with bpftrace.

    ``mode`` (0 read, 1 write) and ``wait_ns`` (request to grant; negative = not granted,
    left out) are one entry per operation: a :class:`LockCapture`'s ``mode``/``wait_ns`` or
    a run's lock records.  Returns ``{"read": {...}, "write": {...}}`` with ``n``,
    ``total_ns``, ``mean_ns``, ``p50_ns``, ``p99_ns``, ``max_ns`` (NaN for no operation) and
    ``bins`` (a dict label -> count over :data:`WAIT_BIN_LABELS`).
    """
    mode = np.asarray(mode)
    wait = np.asarray(wait_ns, np.int64)
    if mode.shape != wait.shape:
        raise ValueError("mode and wait_ns need one entry per operation")
    out = {}
    for m, name in ((0, "read"), (1, "write")):
        w = wait[(mode == m) & (wait >= 0)]
        counts = np.bincount(np.searchsorted(WAIT_BIN_EDGES_NS, w, side="right") - 1,
                             minlength=len(WAIT_BIN_LABELS))
        nan = float("nan")
        out[name] = {
            "n": int(len(w)), "total_ns": int(w.sum()),
            "mean_ns": float(w.mean()) if len(w) else nan,
            "p50_ns": float(np.percentile(w, 50)) if len(w) else nan,
            "p99_ns": float(np.percentile(w, 99)) if len(w) else nan,
            "max_ns": float(w.max()) if len(w) else nan,
            "bins": dict(zip(WAIT_BIN_LABELS, counts.tolist())),
        }
    return out


def _is_id(tok):
    return tok.isdigit() or tok == "-1"


def _parse(toks, path, lineno):
    """(pid or -1, tid, time_ns, event, fields, comm) of a tokenised line, or None if it is
    not a sample line."""
    for k in range(1, len(toks) - 1):
        m = _TIME.fullmatch(toks[k])
        if m is None or not toks[k + 1].endswith(":"):
            continue
        j = k - 1
        if toks[j].startswith("[") and toks[j].endswith("]") and j >= 1:
            j -= 1
        first, slash, second = toks[j].partition("/")
        # (-1: a task perf lost track of, in a capture recorded system-wide)
        if not (_is_id(first) and (not slash or _is_id(second))):
            continue
        pid, tid = (int(first), int(second)) if slash else (-1, int(first))
        t_ns = int(m[1]) * 1_000_000_000 + int(m[2].ljust(9, "0"))
        if t_ns >= _MAX_TIME_NS or tid > 0xFFFFFFFF or pid > 0xFFFFFFFF:
            raise TraceFormatError("timestamp or id out of range (time below 2**62 ns, ids "
                                   "below 2**32 expected)", path, lineno)
        fields = {}
        for tok in toks[k + 2:]:
            name, eq, value = tok.partition("=")
            if eq:
                fields[name] = value
        return pid, tid, t_ns, toks[k + 1][:-1], fields, " ".join(toks[:j])
    return None


def _samples(path):
    """``(lineno, comm, pid, tid, time_ns, event, fields)`` of every sample line of a
    ``perf script`` text (:func:`perf_samples`); the last item is ``(lineno, None, ...)``,
    the count of lines read.  Errors name the file and line."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise TraceFormatError("no such file", path) from None
    lineno = 0
    with f:
        for raw in f:
            lineno += 1
            s = raw.decode("utf-8", "replace").strip()
            if not s or s.startswith("#") or "PERF_RECORD_" in s or s.startswith("Warning:"):
                continue
            p = _parse(s.split(), path, lineno)
            if p is None:
                raise TraceFormatError(f"{_EXPECTED}; got {s[:100]!r}", path, lineno)
            pid, tid, t, event, fields, comm = p
            yield lineno, comm, pid, tid, t, event, fields
    yield lineno, None, -1, -1, 0, None, None


def perf_samples(path):
    """Every sample line of a ``perf script`` text whose fields are laid out as
    :func:`read_capture` reads them, of any event: ``(comm, pid or -1, tid, time_ns, event,
    fields)``, ``fields`` the line's ``name=value`` tokens as a dict, in file order.  For
    other tracepoints recorded beside ``mmap_lock:*`` (``sched:sched_wakeup``, ...).  A line
    that is not a sample is refused in one line naming the file and line."""
    for _lineno, comm, pid, tid, t, event, fields in _samples(path):
        if comm is not None:
            yield comm, pid, tid, t, event, fields


def _bool(fields, name, path, lineno, required=True):
    v = fields.get(name)
    if v is None and not required:
        return None
    if v not in ("true", "false", "1", "0"):
        raise TraceFormatError(f"{name}={v if v is not None else '(missing)'}: expected "
                               f"{name}=true or {name}=false", path, lineno)
    return v in ("true", "1")


def read_capture(path, *, other_events="error"):
    """Read ``perf script`` output of ``perf record -e 'mmap_lock:*'`` (module docstring).

    Parameters
    ----------
    path : str or Path
    other_events : {"error", "skip"}
        What to do with a sample line of another event.

    Returns
    -------
    LockCapture

    Raises
    ------
    TraceFormatError
        One line naming the file and line: a line that is not a sample, a field missing or
        malformed, time going backwards for a thread, or no ``mmap_lock`` event at all.
    """
    if other_events not in ("error", "skip"):
        raise TypeError(f"other_events must be 'error' or 'skip', got {other_events!r}")
    path = Path(path)
    ops = []               # [tid, pid, asid, mode, kind, request, acquire, release, success]
    pending = {}           # (tid, asid) -> index of the open request
    held = {}              # (tid, asid, mode) -> index of the hold
    asid_of = {}           # mm -> asid
    last_t = {}            # tid -> time of its previous event
    unmatched = 0
    for lineno, comm, pid, tid, t, event, fields in _samples(path):
        if comm is None:
            break        # (the count of lines read)
        ev = _KIND.get(event)
        if ev is None or tid < 0:
            if other_events == "skip":
                continue
            if ev is not None:
                raise TraceFormatError("thread -1: an event of a task perf lost track "
                                       "of; expected a thread id", path, lineno)
            raise TraceFormatError(
                f"unexpected event {event[:60]!r}: expected {START}, {ACQUIRE} or {RELEASE}",
                path, lineno, option=SKIP_OTHER_EVENTS)
        if t < last_t.get(tid, 0):
            raise TraceFormatError(f"time goes backwards for thread {tid}; expected perf "
                                   "script's time-sorted output", path, lineno)
        last_t[tid] = t
        mm = fields.get("mm")
        if mm is None or not mm.startswith("0x"):
            raise TraceFormatError(f"mm={mm if mm is not None else '(missing)'}: expected "
                                   "mm=0x<pointer>", path, lineno)
        asid = asid_of.setdefault(mm, len(asid_of))
        write = _bool(fields, "write", path, lineno)
        mode = int(write)
        if ev == 0:
            if (tid, asid) in pending:   # the previous request never returned: cut short
                ops[pending[(tid, asid)]][8] = False
            pending[(tid, asid)] = len(ops)
            ops.append([tid, pid, asid, mode, 0, t, -1, -1, False])
        elif ev == 1:
            ok = _bool(fields, "success", path, lineno)
            i = pending.pop((tid, asid), None)
            if i is not None and ops[i][3] == mode:
                ops[i][8] = ok
                if ok:
                    ops[i][6] = t
                    held[(tid, asid, mode)] = i
                continue
            if i is not None:
                raise TraceFormatError(
                    f"acquire_returned write={'true' if write else 'false'} answers a request "
                    f"for {'read' if write else 'write'} of the same thread and mm", path,
                    lineno)
            wh = held.get((tid, asid, 1))
            if not write and ok and wh is not None:      # mmap_write_downgrade
                ops[held.pop((tid, asid, 1))][7] = t
                kind = 2
            else:
                kind = 1
            held_i = len(ops)
            ops.append([tid, pid, asid, mode, kind, t, t if ok else -1, -1, ok])
            if ok:
                held[(tid, asid, mode)] = held_i
        else:
            i = held.pop((tid, asid, mode), None)
            if i is None:
                unmatched += 1
            else:
                ops[i][7] = t
    if not ops:
        raise TraceFormatError(f"no mmap_lock event in the file ({lineno} line(s)); record with "
                               "perf record -e 'mmap_lock:*'", path, max(lineno, 1))
    a = np.array(ops, dtype=np.int64)
    order = np.argsort(a[:, 5], kind="stable")
    a = a[order]
    return LockCapture(tid=a[:, 0], pid=a[:, 1], asid=a[:, 2], mode=a[:, 3].astype(np.int8),
                       kind=a[:, 4].astype(np.int8), request_ns=a[:, 5], acquire_ns=a[:, 6],
                       release_ns=a[:, 7], success=a[:, 8].astype(bool),
                       n_unmatched_releases=unmatched, source=path.name)


def format_events(tid, asid, mode, request_ns, acquire_ns, release_ns, *, kind=None, pids=None,
                  comm="vmlab", t0_ns=0, cpu=None):
    """Lock operations as ``perf script`` lines (a list of str, time-ordered).

    Parameters
    ----------
    tid, asid, mode, request_ns, acquire_ns, release_ns : array_like of int
        One entry per operation (``mode`` 1 = write); ``acquire_ns``/``release_ns`` -1 for a
        step that did not happen (no event is written for it).
    pids : mapping asid -> pid, optional
        Default: ``1000 + asid``.
    comm : str
        The command name column (no blanks).
    t0_ns : int
        Added to every time (a capture's times start at boot).
    cpu : array_like of int, optional
        The CPU column per operation; default the thread's rank among the distinct tids.
    kind : array_like of int, optional
        Index into :data:`KINDS` per operation (default: every one a ``lock``).  A trylock
        or downgrade has no ``start_locking``; a downgrade also replaces the ``released`` of
        the write hold it ends, as the kernel prints them.
    """
    tid = np.asarray(tid, np.int64)
    asid = np.asarray(asid, np.int64)
    mode = np.asarray(mode, np.int64)
    times = [np.asarray(x, np.int64) for x in (request_ns, acquire_ns, release_ns)]
    n = len(tid)
    if any(len(x) != n for x in (asid, mode, *times)):
        raise ValueError("every column needs one entry per operation")
    if not comm or any(c.isspace() for c in comm):
        raise ValueError(f"comm must be a non-empty word, got {comm!r}")
    if cpu is None:
        cpu = np.searchsorted(np.unique(tid), tid)
    cpu = np.asarray(cpu, np.int64)
    # (time, operation, step): a thread's operations are sequential and its steps ordered,
    # so sorting by operation index within equal times keeps every thread's order.
    kind = np.zeros(n, np.int64) if kind is None else np.asarray(kind, np.int64)
    if len(kind) != n:
        raise ValueError("every column needs one entry per operation")
    downgrades = {(int(tid[i]), int(asid[i]), int(times[1][i])) for i in np.flatnonzero(kind == 2)}
    order = np.argsort(times[0], kind="stable")
    events = []
    for rank, i in enumerate(order.tolist()):
        for step in range(3):
            t = int(times[step][i])
            if t < 0:
                break
            if step == 0 and kind[i] != 0:
                continue
            if step == 2 and mode[i] == 1 and (int(tid[i]), int(asid[i]), t) in downgrades:
                continue
            events.append((t + int(t0_ns), rank, step, i))
    events.sort()
    names = (START, ACQUIRE, RELEASE)
    out = []
    for t, _rank, step, i in events:
        a = int(asid[i])
        pid = pids[a] if pids is not None else 1000 + a
        w = "true" if mode[i] else "false"
        tail = f"mm={MM_BASE + a * 0x1000:#x} memcg_id=0 write={w}"
        if step == 1:
            tail += " success=true"
        sec, ns = divmod(t, 1_000_000_000)
        out.append(f"{comm:>16} {pid:5d}/{int(tid[i]):<5d} [{int(cpu[i]) % 1000:03d}] "
                   f"{sec:5d}.{ns:09d}: {names[step]:>36}: {tail}")
    return out


def split_downgrades(tid, asid, mode, request_ns, acquire_ns, release_ns, downgrade_ns):
    """A run's lock rows as :func:`format_events`'s operations (a dict of its column
    arguments, ``kind`` included): a writer that downgraded at ``downgrade_ns`` (>= 0;
    docs/model.md 15.13) is two operations, as the kernel prints it: its write hold ends at
    the downgrade, where a read hold begins (``acquire_returned`` with ``write=false``) that
    ends at its release."""
    cols = [np.asarray(x, np.int64) for x in (tid, asid, mode, request_ns, acquire_ns,
                                               release_ns, downgrade_ns)]
    tid, asid, mode, req, acq, rel, dg = cols
    d = np.flatnonzero(dg >= 0)
    kind = np.zeros(len(tid) + len(d), np.int64)
    kind[len(tid):] = KINDS.index("downgrade")
    return dict(tid=np.concatenate([tid, tid[d]]), asid=np.concatenate([asid, asid[d]]),
                mode=np.concatenate([mode, np.zeros(len(d), np.int64)]),
                request_ns=np.concatenate([req, dg[d]]), acquire_ns=np.concatenate([acq, dg[d]]),
                release_ns=np.concatenate([np.where(dg >= 0, dg, rel), rel[d]]), kind=kind)


def write_events(path, *args, **kwargs):
    """Write :func:`format_events` lines to ``path`` (atomically: nothing is left behind on
    an error).  Returns ``path``."""
    path = Path(path)
    lines = format_events(*args, **kwargs)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    return path
