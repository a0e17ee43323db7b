"""Reader for the text output of ``perf script`` on a page-fault recording.

Recording (every fault, with thread id, timestamp and data address; the syscall tracepoints
are optional and give the ``mmap_sem`` writers)::

    sysctl kernel.perf_event_paranoid=-1      # or run as root
    perf record -e page-faults -c 1 -d \\
        -e syscalls:sys_enter_mmap -e syscalls:sys_enter_munmap -- PROGRAM ARGS
        # optionally also -e syscalls:sys_enter_{mprotect,mremap,brk}; -g is accepted
    perf script -F comm,pid,tid,time,event,addr,trace --ns > faults.txt    # recommended

Fields the reader needs
-----------------------
``tid`` (alone or as ``pid/tid``), ``time``, ``event`` and, for page-fault samples, ``addr``.
``comm``, ``cpu``, ``period``, ``ip``, ``sym``, ``symoff``, ``dso`` and ``trace`` may be
present or not.  ``pid`` is optional but gives the address spaces (see ``asid`` below).
Layouts tested on perf 6.1:

* the recommended ``-F comm,pid,tid,time,event,addr,trace`` (with or without ``--ns``);
* perf's default layout plus the address, ``perf script -F +addr`` (optionally ``+pid``);
* any ``-F`` list that contains ``tid,time,event,addr``;
* call chains (``perf record -g``), ``--show-task-events``, ``--show-mmap-events``.

Throughput is about 200,000 lines a second (pure Python, one line at a time).

perf's *default* layout (``perf script`` with no ``-F``; perf 6.1) does **not** print the
data address of a page-fault sample: the one address it prints is the instruction pointer.
The reader recognises that layout (a first page-fault line with a ``period`` column, a
``(dso)`` and a single hexadecimal address, *not* followed by a call chain) and raises
:class:`~vmlab.errors.TraceFormatError` asking for ``-F +addr``; ``assume_addr=True`` turns
that check off.  With call chains (``perf record -g``) perf prints the ip in the chain, so
``-F +addr`` sample lines then carry one address, the data address, and are accepted.
perf prints ``addr`` before ``ip``, so the data address is always the first hexadecimal
field after the event name; a ``-F`` list with ``ip`` but without ``addr`` cannot be told
apart from one with ``addr`` only and would be misread: include ``addr``.  Do not use
``--deltatime`` (times must be absolute).

What becomes a record
---------------------
* a ``page-faults`` sample (also ``faults``, ``minor-faults``, ``major-faults``, with or
  without modifiers such as ``:u``) -> an access: ``op`` = ``LOAD``, because perf's
  page-fault software event does not say whether the access was a read, a write or an
  instruction fetch; ``addr`` = the data address; ``size`` = 8 (``fault_size``);
* a ``syscalls:sys_enter_mmap``, ``sys_enter_munmap``, ``sys_enter_mprotect``,
  ``sys_enter_mremap`` or ``sys_enter_brk`` sample -> ``LOCK_W`` (the thread takes
  ``mmap_sem`` for write); ``addr``/``size`` = the range the call modifies, from its
  arguments when the ``trace`` field is printed (:mod:`vmlab.trace.readers._syscall_ranges`
  says how each call names it), else ``0``/``0`` (the whole address space);
* any other event is an error (``other_events="skip"`` ignores them instead).

Columns: ``tid`` is the real thread id (the engine maps ids itself); ``asid`` numbers the
distinct pids 0, 1, 2... in order of first appearance (several processes in one recording
are several address spaces).  The pid comes from the ``pid/tid`` column when printed, else
from ``PERF_RECORD_FORK``/``PERF_RECORD_COMM`` lines (``--show-task-events``); a thread
whose pid is unknown belongs to one shared "unknown process", so a recording printed with
``tid`` only is a single address space.  ``gap_ns`` is the time since the same tid's
previous record (0 for its first), from the timestamps parsed as decimal strings (seconds
and 1 to 9 decimals, to integer nanoseconds, no float).  Records stay in file order, which
``perf script`` sorts by time; a thread whose time goes backwards is an error.

Lines skipped because they are clearly not samples: blank lines; lines starting with ``#``
(``perf script --header``); call-chain lines (indented ``address symbol (dso)`` lines right
after a sample, from ``perf record -g``); ``PERF_RECORD_*`` side-band lines (task, mmap,
lost events; FORK and COMM lines are read for pids); and perf's own diagnostics when stderr
was redirected into the file (lines starting with ``Warning:`` and
``'<field>' not valid for <type> events. Ignoring.``).  Anything else that is not a sample
is a :class:`~vmlab.errors.TraceFormatError` naming the file, the 1-based line and what was
expected.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..._io import progress
from ...errors import TraceFormatError
from ..model import DEFAULT_DTYPES, Op, TraceMeta, narrow_dtype
from ._syscall_ranges import writer_range

NAME = "perf"
WITH_GAP = True

#: Software events whose samples are page faults.
FAULT_EVENTS = frozenset({"page-faults", "faults", "minor-faults", "major-faults"})
#: ``syscalls:`` tracepoints that take ``mmap_sem`` for write.
LOCK_EVENTS = frozenset({"sys_enter_mmap", "sys_enter_munmap", "sys_enter_mprotect",
                         "sys_enter_mremap", "sys_enter_brk"})

_OPTIONS = ("page_size", "other_events", "assume_addr", "fault_size")
# Options vmlab.trace.convert passes to every reader: tuning knobs of the block-parsing text
# readers (this one reads line by line, so they are accepted and ignored) and, to meta_for,
# the iter_chunks arguments.
_IGNORED = ("block_bytes", "threads", "chunk_records", "show_progress")

# A sample line: [comm] pid/tid|tid [cpu] time: [period] event: [rest].  The comm is lazy
# so that a comm holding spaces or digits ("Web Content", "worker 12") is still all comm.
# The time token is taken loosely here and checked apart, to report "bad timestamp".
_SAMPLE = re.compile(
    r"^\s*(?:(?P<comm>.*?)\s+)?"
    r"(?P<id1>-?\d+)(?:/(?P<id2>-?\d+))?\s+"
    r"(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?P<time>[^\s:/\[\]]+):\s+"
    r"(?:(?P<period>\d+)\s+)?"
    r"(?P<event>[^\s(]+?):(?:\s+(?P<tail>.*?))?\s*$")
_TIME = re.compile(r"(\d+)\.(\d{1,9})")
_STRICT_TIME = re.compile(r"\s\d+\.\d{1,9}:\s")
_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]+)")
_TASK = re.compile(r"^\s*(?:.*?\s+)?-?\d+(?:/-?\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s+PERF_RECORD_")
_FORK = re.compile(r"PERF_RECORD_(?:FORK|EXIT)\((\d+):(\d+)\)")
_COMM = re.compile(r"PERF_RECORD_COMM(?: exec)?: .*:(\d+)/(\d+)\s*$")
_CALLCHAIN = re.compile(r"^\s+(?:0x)?[0-9a-fA-F]+(?:\s|$)")
_DIAG = re.compile(r"^(?:Warning:|'\w+' not valid for [\w-]+ events\. Ignoring\.)")

_EXPECTED = ("expected a perf script sample line '[comm] [pid/]tid [cpu] seconds.decimals: "
             "[period] event: address ...' (see vmlab.trace.readers.perf)")

_FAULT, _LOCK, _OTHER = 0, 1, 2


def _event_kind(event):
    parts = event.split(":")
    if parts[0] in FAULT_EVENTS:
        return _FAULT
    if len(parts) >= 2 and parts[0] == "syscalls" and parts[1] in LOCK_EVENTS:
        return _LOCK
    return _OTHER


def _check_options(options):
    unknown = set(options) - set(_OPTIONS) - set(_IGNORED)
    if unknown:
        raise TypeError(f"perf reader: unknown option(s) {sorted(unknown)}; "
                        f"accepted: {', '.join(_OPTIONS + _IGNORED)}")
    other = options.get("other_events", "error")
    if other not in ("error", "skip"):
        raise TypeError(f"perf reader: other_events must be 'error' or 'skip', got {other!r}")


def _decode(raw):
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def sniff(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) looks like ``perf script`` output.

    It must hold at least one sample line or ``PERF_RECORD_*`` line, and every other
    complete line before the first sample must be one the reader skips.
    """
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last piece may be cut in the middle
    seen_task = False
    for raw in lines:
        line = _decode(raw)
        if not line.strip() or line.lstrip().startswith("#") or _DIAG.match(line):
            continue
        if _TASK.match(line):
            seen_task = True
            continue
        m = _SAMPLE.match(line)
        if m and _TIME.fullmatch(m["time"]):
            return True
        return False
    return seen_task


def meta_for(path, **options) -> TraceMeta:
    """The :class:`TraceMeta` of a converted perf recording (the file itself is not read)."""
    _check_options(options)
    return TraceMeta(
        page_size=int(options.get("page_size", 4096)),
        source=f"perf script: {Path(path).name}",
        notes=("perf page-fault samples as LOAD records of size "
               f"{int(options.get('fault_size', 8))} (perf does not say read or write); "
               "sys_enter_mmap/munmap/mprotect/mremap/brk as LOCK_W; asid = pid in order of "
               "first appearance; gap_ns from perf timestamps"))


def iter_chunks(path, *, chunk_records=1 << 22, show_progress=None, **options):
    """Yield dicts of numpy columns (``tid``, ``asid``, ``addr``, ``op``, ``size``,
    ``gap_ns``) of at most ``chunk_records`` records each, reading ``path`` line by line.

    Parameters
    ----------
    path : str or Path
        ``perf script`` output (see the module docstring for the layouts).
    chunk_records : int
        Records per yielded chunk; memory use is bounded by it.
    show_progress : bool, optional
        Progress bar over the file's bytes (default: when stderr is a terminal).
    other_events : {"error", "skip"}
        What to do with a sample of an event that is neither a page fault nor an
        ``mmap_sem``-writer syscall.
    assume_addr : bool
        Take the first hexadecimal field after a page-fault event's name as the data
        address without checking for perf's default layout (which has no data address).
    fault_size : int
        ``size`` of page-fault records (default 8).
    page_size : int
        Only for :func:`meta_for`.
    block_bytes, threads
        Accepted for :mod:`vmlab.trace.convert` and ignored (line-by-line reader).

    Raises
    ------
    TraceFormatError
        On the first line that is neither a sample nor clearly skippable, a bad timestamp, a
        page-fault sample without a data address, a thread whose time goes backwards, or a
        file with no sample at all.
    """
    _check_options(options)
    skip_other = options.get("other_events", "error") == "skip"
    assume_addr = bool(options.get("assume_addr", False))
    fault_size = int(options.get("fault_size", 8))
    chunk_records = max(1, int(chunk_records))
    path = Path(path)
    try:
        total = path.stat().st_size
    except FileNotFoundError:
        raise TraceFormatError("no such file", path) from None

    pid_of = {}            # tid -> pid, from PERF_RECORD_FORK/COMM lines
    asid_of = {}           # pid (None: unknown) -> asid
    last = {}              # tid -> (time_ns, line number) of its previous record
    last_brk = {}          # pid -> its previous brk() argument (the heap's old end)
    cols = {k: [] for k in ("tid", "asid", "addr", "op", "size", "gap_ns")}
    n_total = 0
    in_sample = False      # the previous line was a sample or a call-chain line
    # The first page-fault sample decides whether the layout has the data address.  One that
    # looks like perf's default layout (period, one address, a dso) is "suspect" until the
    # next line: a call-chain line means perf moved the ip there (perf record -g), so the
    # one address is the data address; anything else means it was the ip.
    layout_known = assume_addr
    suspect = None         # line number of a suspect sample
    lineno = 0
    done_bytes = 0

    def flush():
        out = {k: np.array(v, dtype=DEFAULT_DTYPES[k]) for k, v in cols.items() if k != "size"}
        # a LOCK_W range of 4 GiB or more widens the size column (never wraps)
        out["size"] = np.array(cols["size"], dtype=narrow_dtype(max(cols["size"], default=0),
                                                                 DEFAULT_DTYPES["size"]))
        for v in cols.values():
            v.clear()
        return out

    with open(path, "rb") as f, progress(total, desc=path.name, unit="B",
                                         enabled=show_progress) as bar:
        for raw in f:
            lineno += 1
            done_bytes += len(raw)
            line = _decode(raw)
            stripped = line.strip()
            if suspect is not None:
                if in_sample and _CALLCHAIN.match(line) and not _STRICT_TIME.search(line):
                    suspect = None
                    layout_known = True
                else:
                    raise _default_layout_error(path, suspect)
            if not stripped:
                in_sample = False
                continue
            if stripped.startswith("#") or _DIAG.match(line):
                continue
            if "PERF_RECORD_" in line and _TASK.match(line):
                _note_task(line, pid_of)
                in_sample = False
                continue
            if in_sample and _CALLCHAIN.match(line) and not _STRICT_TIME.search(line):
                continue
            m = _SAMPLE.match(line)
            if m is None:
                raise TraceFormatError(f"{_EXPECTED}; got {_clip(line)}", path, lineno)
            tm = _TIME.fullmatch(m["time"])
            if tm is None:
                raise TraceFormatError(
                    f"bad timestamp {m['time']!r}: expected seconds with 1 to 9 decimals "
                    "such as 400.845503 or 400.845503102", path, lineno)
            t_ns = int(tm[1]) * 1_000_000_000 + int(tm[2].ljust(9, "0"))
            kind = _event_kind(m["event"])
            in_sample = True
            tail = m["tail"] or ""
            if kind == _FAULT:
                addr, looks_default = _fault_addr(tail, m["period"] is not None, path, lineno)
                if not layout_known:
                    if looks_default:
                        suspect = lineno
                    else:
                        layout_known = True
                op, size = Op.LOAD, fault_size
            elif kind == _LOCK:
                proc = int(m["id1"]) if m["id2"] is not None else pid_of.get(int(m["id1"]))
                addr, size = writer_range(m["event"].rsplit("sys_enter_", 1)[1], tail, last_brk,
                                          proc)
                op = Op.LOCK_W
            elif skip_other:
                continue
            else:
                raise TraceFormatError(
                    f"unexpected event {m['event']!r}: expected page-faults or "
                    "syscalls:sys_enter_{mmap,munmap,mprotect,mremap,brk} "
                    "(pass other_events='skip' to ignore other events)", path, lineno)
            if m["id2"] is not None:
                pid, tid = int(m["id1"]), int(m["id2"])
            else:
                tid = int(m["id1"])
                pid = pid_of.get(tid)
            if not 0 <= tid <= 0xFFFFFFFF:
                raise TraceFormatError(f"thread id {tid} is out of range; expected a real tid",
                                       path, lineno)
            if addr >> 64:
                raise TraceFormatError(f"address {addr:#x} has more than 64 bits", path, lineno)
            asid = asid_of.setdefault(pid, len(asid_of))
            prev = last.get(tid)
            if prev is None:
                gap = 0
            else:
                gap = t_ns - prev[0]
                if gap < 0:
                    raise TraceFormatError(
                        f"time goes backwards for thread {tid}: {m['time']} is before its "
                        f"previous record on line {prev[1]}; expected perf script's "
                        "time-sorted output (not --deltatime)", path, lineno)
            last[tid] = (t_ns, lineno)
            cols["tid"].append(tid)
            cols["asid"].append(asid)
            cols["addr"].append(addr)
            cols["op"].append(int(op))
            cols["size"].append(size)
            cols["gap_ns"].append(gap)
            n_total += 1
            if len(cols["addr"]) >= chunk_records:
                bar.update(done_bytes)
                done_bytes = 0
                yield flush()
        bar.update(done_bytes)
    if suspect is not None:
        raise _default_layout_error(path, suspect)
    if n_total == 0:
        raise TraceFormatError(
            f"no perf sample in the file ({lineno} line(s) read): an empty file or no "
            "page-faults/syscalls samples; " + _EXPECTED, path, max(lineno, 1))
    if cols["addr"]:
        yield flush()


def _fault_addr(tail, has_period, path, lineno):
    """The data address of a page-fault sample and whether the line looks like perf's
    default layout (period column, a ``(dso)`` and a single hexadecimal address)."""
    tokens = tail.split()
    hm = _HEX.fullmatch(tokens[0]) if tokens else None
    if hm is None:
        raise TraceFormatError(
            "page-fault sample has no data address: expected a hexadecimal address after "
            "the event name (record with `perf record -d` and print the addr field, e.g. "
            "`perf script -F comm,pid,tid,time,event,addr,trace`)", path, lineno)
    looks_default = (has_period and "(" in tail
                     and sum(1 for t in tokens if _HEX.fullmatch(t)) < 2)
    return int(hm[1], 16), looks_default


def _default_layout_error(path, lineno):
    return TraceFormatError(
        "this page-fault sample is in perf script's default layout, which prints the "
        "instruction pointer but not the data address; rerun `perf script -F +addr` "
        "(or -F comm,pid,tid,time,event,addr,trace), or pass assume_addr=True if the "
        "first address is the data address", path, lineno)


def _note_task(line, pid_of):
    m = _FORK.search(line)
    if m is None:
        m = _COMM.search(line)
    if m is not None:
        pid_of[int(m[2])] = int(m[1])


def _clip(line, n=100):
    line = line.strip()
    return repr(line if len(line) <= n else line[:n] + "...")
