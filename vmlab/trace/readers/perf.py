"""Reader for the text output of ``perf script`` on a page-fault recording.

Recording (every fault, with thread id, timestamp and data address; the syscall tracepoints
are optional and give the ``mmap_sem`` writers)::

    sysctl kernel.perf_event_paranoid=-1      # or run as root
    perf record -e page-faults -c 1 -d \\
        -e syscalls:sys_enter_mmap -e syscalls:sys_enter_munmap -- PROGRAM ARGS
        # optionally also -e syscalls:sys_enter_{mprotect,mremap,brk} (writers) and
        # -e syscalls:sys_enter_{madvise,mincore} (readers that are not faults); -g is accepted
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

Throughput is about 200,000 lines a second (pure Python, one line at a time).  A line is cut
into whitespace-separated tokens and matched token by token, so any line costs time linear in
its length; lines longer than 16 MiB are refused.  Every number is checked before use: ids
(at most 2**32-1), timestamps (below 2**62 ns), addresses (64 bits), at most 4,096 distinct
processes (address spaces: :data:`~vmlab.trace.model.MAX_ASIDS`, the engine's limit).

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
  instruction fetch; ``addr`` = the data address; ``size`` = 8 (``fault_size``); ``call``
  = ``KERNEL`` when the sample's ip is the kernel's (the fault was taken in kernel mode,
  without ``FAULT_FLAG_USER``: ``copy_to_user``, ``put_user``, the ELF loader at
  ``execve``), as the line shows it: an address from ``0xffff800000000000`` up or the dso
  ``([kernel.kallsyms])`` after the data address (``-F +addr``, or a ``-F`` list with
  ``ip``/``dso``), or on the first line of the sample's call chain (``perf record -g``);
  else 0 (the program's own, or not known: a ``-F`` list without the ip, such as the
  recommended one, cannot tell; with ``:u``, or ``perf_event_paranoid`` 2, perf drops the
  kernel-mode faults altogether);
* a ``syscalls:sys_enter_mmap``, ``sys_enter_munmap``, ``sys_enter_mprotect``,
  ``sys_enter_mremap`` or ``sys_enter_brk`` sample -> ``LOCK_W`` (the thread takes
  ``mmap_sem`` for write); ``addr``/``size`` = the range the call modifies, from its
  arguments when the ``trace`` field is printed (:mod:`vmlab.trace.readers._syscall_ranges`
  says how each call names it), else ``0``/``0`` (the whole address space); ``call`` =
  the system call (``mmap``, ``munmap``, ``mprotect``, ``mremap``, ``brk``; a ``brk`` that
  lowers the break is an ``munmap`` of the heap's tail, and an ``mremap`` that shrinks in
  place an ``munmap`` of the mapping's tail, as the kernel runs them; a ``brk``
  whose direction is unknown, its first or one without arguments, stays ``unknown``),
  docs/model.md 15.12.  Every chunk carries the ``call`` column (0 on other records);
* a ``syscalls:sys_enter_mincore`` or ``sys_enter_madvise`` sample -> ``LOCK_R`` (a reader
  of ``mmap_sem`` that is not a fault, docs/model.md 15.9), ``addr`` = its ``start`` (0
  without the ``trace`` field), ``size`` 0 (the hold is the cost ``mmap_read_cs_ns``: the
  enter sample says when the call began, not how long it held the lock).  ``madvise`` takes
  ``mmap_sem`` for read only for the behaviours that change no VMA flag (the kernel's
  ``madvise_need_mmap_write()``: ``MADV_WILLNEED``, ``DONTNEED``, ``DONTNEED_LOCKED``,
  ``FREE``, ``REMOVE``, ``COLD``, ``PAGEOUT``, ``POPULATE_READ``/``WRITE``, ``COLLAPSE``,
  ``GUARD_INSTALL``/``REMOVE``); any other behaviour (``MADV_HUGEPAGE``, ``DONTFORK``...)
  is a writer, ``LOCK_W`` of ``[start, start + len_in)``.  A ``madvise`` whose behaviour is
  not printed is a reader.  Readers of ``/proc/PID/maps`` are not seen: their ``openat``
  tracepoint prints the file name as a pointer, and their ``read`` only a descriptor;
* an ``exceptions:page_fault_user`` or ``exceptions:page_fault_kernel`` sample (x86
  tracepoints, recorded by ``vmlab record --with perf``) -> an access at its
  ``address=0x...``, with ``op`` from its ``error_code=0x...``: bit 4 (instruction fetch)
  ``IFETCH``, else bit 1 (write) ``STORE``, else ``LOAD`` (a fault on a kernel address is
  skipped: it is not the program's); ``call`` = ``KERNEL`` for ``page_fault_kernel`` (the
  kernel made the access inside a system call: its fault has no ``FAULT_FLAG_USER``), 0
  for ``page_fault_user``;
* any other event is an error (``other_events="skip"`` ignores them instead).

Two options serve ``vmlab record --with perf`` (:mod:`vmlab.trace.record`):
``thread_start="offset"`` gives each thread's first record the time since the recording's
first event as its ``gap_ns`` (default ``"zero"``: 0, as before), so threads started late
start late in the replay; ``mappings_sink=[]`` collects, in file order and with the number
of records before each, the ``PERF_RECORD_MMAP2`` lines (``--show-mmap-events``), the
``munmap``/``mprotect``/``mremap``/``brk``/``mmap`` syscall samples (with their arguments) and
``syscalls:sys_exit_brk``/``sys_exit_mremap`` results, from which the run's mappings are
rebuilt.

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

import os
import re
from pathlib import Path

import numpy as np

from ..._io import progress
from ...errors import TraceFormatError
from ..model import DEFAULT_DTYPES, MAX_ASIDS, Call, Op, TraceMeta, narrow_dtype
from ._syscall_ranges import syscall_args, writer_range
from ._text import SKIP_OTHER_EVENTS

NAME = "perf"
WITH_GAP = True

#: Software events whose samples are page faults.
FAULT_EVENTS = frozenset({"page-faults", "faults", "minor-faults", "major-faults"})
#: Tracepoints whose samples are page faults, with the x86 error code (``error_code=0x..``:
#: bit 1 write, bit 4 instruction fetch), so a record can be a LOAD, STORE or IFETCH.
TRACE_FAULT_EVENTS = frozenset({"exceptions:page_fault_user", "exceptions:page_fault_kernel"})
#: Kernel-mode faults on kernel addresses are not the program's: user space ends here (x86-64).
USER_TOP = 1 << 47
#: An instruction pointer from here up is the kernel's (x86-64's kernel half, which holds
#: its text and modules): a page-fault sample at such an ip was taken in kernel mode.
KERNEL_START = 0xFFFF800000000000
#: The dso perf prints for an ip in the kernel's text.
KERNEL_DSO = "([kernel.kallsyms])"
#: ``syscalls:`` tracepoints that take ``mmap_sem`` for write.
LOCK_EVENTS = frozenset({"sys_enter_mmap", "sys_enter_munmap", "sys_enter_mprotect",
                         "sys_enter_mremap", "sys_enter_brk"})
#: ``syscalls:`` tracepoints that take ``mmap_sem`` for read (``madvise``: for the behaviours
#: of READ_MADVISE only, else for write).
READ_LOCK_EVENTS = frozenset({"sys_enter_madvise", "sys_enter_mincore"})
#: ``madvise`` behaviours that take ``mmap_sem`` for read (``madvise_need_mmap_write()`` of
#: 5.x-6.x): WILLNEED 3, DONTNEED 4, FREE 8, REMOVE 9, COLD 20, PAGEOUT 21, POPULATE_READ 22,
#: POPULATE_WRITE 23, DONTNEED_LOCKED 24, COLLAPSE 25, GUARD_INSTALL 102, GUARD_REMOVE 103.
READ_MADVISE = frozenset({3, 4, 8, 9, 20, 21, 22, 23, 24, 25, 102, 103})

_OPTIONS = ("page_size", "other_events", "assume_addr", "fault_size", "thread_start",
            "mappings_sink")
# Options vmlab.trace.convert passes to every reader: tuning knobs of the block-parsing text
# readers (this one reads line by line, so they are accepted and ignored) and, to meta_for,
# the iter_chunks arguments.
_IGNORED = ("block_bytes", "threads", "chunk_records", "show_progress")

# A sample line: [comm] pid/tid|tid [cpu] time: [period] event: [rest].  Lines are cut into
# whitespace-separated tokens and matched token by token (no backtracking regular expression:
# a line of blanks or digits costs time linear in its length).  The comm may hold spaces or
# digits ("Web Content", "worker 12"): the header is the *first* token that starts a valid
# ``id [cpu] time:`` sequence followed by an event.  The time token is taken loosely
# (anything without ``:/[]``) and checked apart, to report "bad timestamp".
_TIME = re.compile(r"(\d+)\.(\d{1,9})", re.ASCII)
_STRICT_TIME = re.compile(r"\s\d+\.\d{1,9}:\s", re.ASCII)
_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]+)")
_FORK = re.compile(r"PERF_RECORD_(?:FORK|EXIT)\((\d+):(\d+)\)", re.ASCII)
_CALLCHAIN = re.compile(r"^\s+(?:0x)?[0-9a-fA-F]+(?:\s|$)")
_DIAG = re.compile(r"^(?:Warning:|'\w+' not valid for [\w-]+ events\. Ignoring\.)")
_LOOSE_TIME_BAD = frozenset(":/[]")

#: Longest line read (as the other text readers): a file without newlines is not read whole.
MAX_LINE = 16 << 20
#: Timestamps (ns) must stay below this (2**62 ns, 146 years), as every time vmlab keeps.
MAX_TIME_NS = 1 << 62
#: Digits of the largest thread or process id accepted (ids are 32-bit).
_ID_DIGITS = 10
_MAX_ID = 0xFFFFFFFF
#: Distinct processes a trace can hold (one address space each: the engine's limit).
MAX_PROCESSES = MAX_ASIDS


def _is_int(tok):
    """``-?[0-9]+`` (ASCII digits only)."""
    if tok[:1] == "-":
        tok = tok[1:]
    return tok.isascii() and tok.isdigit()


def _is_id(tok):
    """``-?\\d+`` or ``-?\\d+/-?\\d+``."""
    a, slash, b = tok.partition("/")
    return _is_int(a) and (not slash or _is_int(b))


def _is_cpu(tok):
    return len(tok) > 2 and tok[0] == "[" and tok[-1] == "]" and tok[1:-1].isascii() \
        and tok[1:-1].isdigit()


def _is_loose_time(tok):
    return len(tok) > 1 and tok[-1] == ":" and not _LOOSE_TIME_BAD.intersection(tok[:-1])


def _is_event(tok):
    return len(tok) > 1 and tok[-1] == ":" and "(" not in tok


def _header(toks, i):
    """Index after ``id [cpu] time:`` starting at token ``i``, and the cpu's presence, or -1."""
    n = len(toks)
    if not _is_id(toks[i]):
        return -1
    j = i + 1
    if j < n and _is_cpu(toks[j]):
        j += 1
    if j >= n or not _is_loose_time(toks[j]):
        return -1
    return j + 1


def _parse_sample(toks):
    """``(id_token, time, period, event, event_index)`` of a sample line's tokens, or None."""
    n = len(toks)
    for i in range(n - 2):
        j = _header(toks, i)
        if j < 0 or j >= n:
            continue
        period = None
        if _is_int(toks[j]) and toks[j][0] != "-" and j + 1 < n:
            period = toks[j]
            j += 1
        if _is_event(toks[j]):
            time_tok = toks[j - 2] if period is not None else toks[j - 1]
            return toks[i], time_tok[:-1], period, toks[j][:-1], j
    return None


def _task_marker(toks):
    """Index of the ``PERF_RECORD_*`` token of a side-band line (``id [cpu] sec.frac:
    PERF_RECORD_...``), or -1."""
    n = len(toks)
    for i in range(n - 2):
        j = _header(toks, i)
        if 0 <= j < n and toks[j].startswith("PERF_RECORD_") and _TIME.fullmatch(toks[j - 1][:-1]):
            return j
    return -1


_EXPECTED = ("expected a perf script sample line '[comm] [pid/]tid [cpu] seconds.decimals: "
             "[period] event: address ...' (see vmlab.trace.readers.perf)")

_FAULT, _LOCK, _OTHER, _TFAULT, _LOCK_R = 0, 1, 2, 3, 4
#: Syscall exits whose return value the mappings need (``mappings_sink``): the new break,
#: and where ``mremap`` put the mapping (the kernel emits no mmap event for a moved one).
_EXIT_EVENTS = {"syscalls:sys_exit_brk": "brk_result",
                "syscalls:sys_exit_mremap": "mremap_result"}
_TP_ADDR = re.compile(r"\baddress=0x([0-9a-fA-F]+)")
_TP_CODE = re.compile(r"\berror_code=0x([0-9a-fA-F]+)")
_MMAP2 = re.compile(r"PERF_RECORD_MMAP2 (\d+)/\d+: \[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ "
                    r"(0x[0-9a-f]+|\d+) ([0-9a-f]+):([0-9a-f]+) (\d+) \d+\]: ([-rwxps]{4}) (.*)$")
_TP_ARGS = re.compile(r"\b(\w+): 0x([0-9a-fA-F]+)")
#: An event's modifiers as perf prints them after its name (``page-faults:u``).
_MODIFIERS = re.compile(r"[ukhHGIpPSDWe]*", re.ASCII)


def _event_kind(event):
    if event in TRACE_FAULT_EVENTS:
        return _TFAULT
    parts = event.split(":")
    if parts[0] in FAULT_EVENTS and (len(parts) == 1 or len(parts) == 2
                                     and _MODIFIERS.fullmatch(parts[1])):
        return _FAULT
    if len(parts) == 2 and parts[0] == "syscalls" and parts[1] in LOCK_EVENTS:
        return _LOCK
    if len(parts) == 2 and parts[0] == "syscalls" and parts[1] in READ_LOCK_EVENTS:
        return _LOCK_R
    return _OTHER


def _reader_record(event, text):
    """``(op, addr, size)`` of a ``madvise`` or ``mincore`` sample: a ``LOCK_R`` at its
    start with the cost's hold (size 0), or, for a ``madvise`` behaviour that changes VMA
    flags, a ``LOCK_W`` of its range."""
    a = syscall_args(text)
    start = a.get("start", 0)
    if event.endswith("sys_enter_madvise") and a.get("behavior", 4) not in READ_MADVISE:
        length = a.get("len_in", a.get("len"))
        if "start" not in a or length is None:
            return Op.LOCK_W, 0, 0
        return Op.LOCK_W, start, max(1, min(length, (1 << 64) - 1 - start))
    return Op.LOCK_R, start, 0


def _check_options(options):
    unknown = set(options) - set(_OPTIONS) - set(_IGNORED)
    if unknown:
        raise TypeError(f"perf reader: unknown option(s) {sorted(unknown)}; "
                        f"accepted: {', '.join(_OPTIONS + _IGNORED)}")
    other = options.get("other_events", "error")
    if other not in ("error", "skip"):
        raise TypeError(f"perf reader: other_events must be 'error' or 'skip', got {other!r}")
    start = options.get("thread_start", "zero")
    if start not in ("zero", "offset"):
        raise TypeError(f"perf reader: thread_start must be 'zero' or 'offset', got {start!r}")


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
        toks = line.split()
        if "PERF_RECORD_" in line and _task_marker(toks) >= 0:
            seen_task = True
            continue
        m = _parse_sample(toks)
        return m is not None and _TIME.fullmatch(m[1]) is not None
    return seen_task


def meta_for(path, **options) -> TraceMeta:
    """The :class:`TraceMeta` of a converted perf recording (the file itself is not read)."""
    _check_options(options)
    return TraceMeta(
        page_size=options.get("page_size", 4096),
        source=f"perf script: {Path(path).name}",
        notes=("perf page-fault samples as LOAD records of size "
               f"{int(options.get('fault_size', 8))} (perf does not say read or write), "
               "call kernel where the sample's ip is the kernel's; "
               "sys_enter_mmap/munmap/mprotect/mremap/brk as LOCK_W; sys_enter_mincore and "
               "madvise as LOCK_R (madvise behaviours that change VMA flags as LOCK_W); "
               "asid = pid in order of "
               "first appearance; gap_ns from perf timestamps"))


def iter_chunks(path, *, chunk_records=1 << 22, show_progress=None, **options):
    """Yield dicts of numpy columns (``tid``, ``asid``, ``addr``, ``op``, ``size``,
    ``gap_ns``, ``call``) of at most ``chunk_records`` records each, reading ``path`` line by line.

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
        Bytes per page: :func:`meta_for`, and the page rounding of ``brk`` ranges.
    block_bytes, threads
        Accepted for :mod:`vmlab.trace.convert` and ignored (line-by-line reader).

    Raises
    ------
    TraceFormatError
        On the first line that is neither a sample nor clearly skippable, a bad timestamp, a
        page-fault sample without a data address, a thread whose time goes backwards, or a
        file with no sample at all.
    """
    reader = _PerfScript(Path(path), options)
    chunk_records = max(1, int(chunk_records))
    try:
        total = reader.path.stat().st_size
    except FileNotFoundError:
        raise TraceFormatError("no such file", reader.path) from None
    lineno = 0
    done_bytes = 0
    with open(reader.path, "rb") as f, progress(total, desc=reader.path.name, unit="B",
                                                enabled=show_progress) as bar:
        while True:
            raw = f.readline(MAX_LINE + 1)
            if not raw:
                break
            lineno += 1
            done_bytes += len(raw)
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                raise TraceFormatError(
                    f"line longer than {MAX_LINE >> 20} MiB (no newline): not a perf script "
                    "output?", reader.path, lineno)
            reader.line(_decode(raw), lineno)
            # (a record whose ip may be on the next line stays for the next chunk)
            if len(reader.cols["addr"]) - reader.ip_pending >= chunk_records:
                bar.update(done_bytes)
                done_bytes = 0
                yield reader.flush(chunk_records)
        bar.update(done_bytes)
    if reader.suspect is not None:
        raise _default_layout_error(reader.path, reader.suspect)
    if reader.n_total == 0:
        raise TraceFormatError(
            f"no perf sample in the file ({lineno} line(s) read): an empty file or no "
            "page-faults/syscalls samples; " + _EXPECTED, reader.path, max(lineno, 1))
    if reader.cols["addr"]:
        yield reader.flush()


class _PerfScript:
    """What reading one ``perf script`` file keeps from line to line: the options, the
    processes and threads seen so far, each thread's last time, the layout decision, and
    the columns of the chunk being filled."""

    def __init__(self, path, options):
        _check_options(options)
        self.path = path
        self.skip_other = options.get("other_events", "error") == "skip"
        fault_size = options.get("fault_size", 8)
        if isinstance(fault_size, bool) or not isinstance(fault_size, (int, np.integer)) \
                or not 0 <= fault_size <= 0xFFFFFFFF:
            raise TraceFormatError(f"fault_size must be an integer from 0 to 2**32-1, got "
                                   f"{fault_size!r}")
        self.fault_size = int(fault_size)
        self.page_size = int(options.get("page_size", 4096))   # brk ranges are whole pages
        self.offset_start = options.get("thread_start", "zero") == "offset"
        self.sink = options.get("mappings_sink")
        self.t_first = None     # the recording's first timestamp (thread_start="offset")
        self.pid_of = {}        # tid -> pid, from PERF_RECORD_FORK/COMM lines
        self.asid_of = {}       # pid (None: unknown) -> asid
        self.last = {}          # tid -> (time_ns, line number) of its previous record
        self.last_brk = {}      # pid -> its previous brk() argument (the heap's old end)
        self.cols = {k: [] for k in ("tid", "asid", "addr", "op", "size", "gap_ns", "call")}
        self.n_total = 0
        self.in_sample = False  # the previous line was a sample or a call-chain line
        # the last record is a page-faults sample whose line showed no kernel ip: the first
        # line of its call chain (perf record -g), if one follows, is its ip
        self.ip_pending = False
        # The first page-fault sample decides whether the layout has the data address.  One
        # that looks like perf's default layout (period, one address, a dso) is "suspect"
        # until the next line: a call-chain line means perf moved the ip there (perf record
        # -g), so the one address is the data address; anything else means it was the ip.
        self.layout_known = bool(options.get("assume_addr", False))
        self.suspect = None     # line number of a suspect sample

    def flush(self, n=None):
        """The first ``n`` records (default: all) as arrays of a chunk, taken from the
        lists."""
        cols = self.cols
        out = {k: np.array(v[:n], dtype=DEFAULT_DTYPES[k]) for k, v in cols.items()
               if k != "size"}
        # a LOCK_W range of 4 GiB or more widens the size column (never wraps)
        size = cols["size"][:n]
        out["size"] = np.array(size, dtype=narrow_dtype(max(size, default=0),
                                                        DEFAULT_DTYPES["size"]))
        for v in cols.values():
            del v[:n]
        return out

    def line(self, line, lineno):
        """Read one line: a sample becomes a record, a task or mapping marker is noted."""
        ip_pending, self.ip_pending = self.ip_pending, False
        if self.suspect is not None:
            if self.in_sample and _CALLCHAIN.match(line) and not _STRICT_TIME.search(line):
                self.suspect = None
                self.layout_known = True
            else:
                raise _default_layout_error(self.path, self.suspect)
        stripped = line.strip()
        if not stripped:
            self.in_sample = False
            return
        if stripped.startswith("#") or _DIAG.match(line):
            return
        toks = line.split()
        if "PERF_RECORD_" in line and self._marker(line, toks, lineno):
            return
        if self.in_sample and _CALLCHAIN.match(line) and not _STRICT_TIME.search(line):
            if ip_pending and _kernel_ip(toks):
                self.cols["call"][-1] = int(Call.KERNEL)
            return
        self._sample(line, toks, lineno)

    def _marker(self, line, toks, lineno):
        """A ``PERF_RECORD_FORK``/``COMM``/``MMAP2`` line: its task (and mapping, for the
        sink) noted; False if it is not one."""
        k = _task_marker(toks)
        if k < 0:
            return False
        _note_task(toks, k, self.pid_of, self.path, lineno)
        self.in_sample = False
        if self.offset_start and self.t_first is None:
            t_rec = _time_ns(toks[k - 1][:-1], self.path, lineno)
            if t_rec:  # perf's synthesized kernel mmap is at time 0
                self.t_first = t_rec
        if self.sink is not None and toks[k] == "PERF_RECORD_MMAP2":
            mm = _MMAP2.search(line)
            if mm:
                self.sink.append(("mmap2", int(mm[1]), int(mm[2], 16), int(mm[3], 16),
                                  int(mm[4], 0), os.makedev(int(mm[5], 16), int(mm[6], 16)),
                                  int(mm[7]), mm[8], mm[9].strip(), self.n_total))
        return True

    def _sample(self, line, toks, lineno):
        """A sample line: its record appended (or skipped: a kernel address, an exit
        event noted for the sink, another event with ``other_events="skip"``)."""
        path = self.path
        m = _parse_sample(toks)
        if m is None:
            raise TraceFormatError(f"{_EXPECTED}; got {_clip(line)}", path, lineno)
        id_tok, time_tok, period, event, k = m
        t_ns = _time_ns(time_tok, path, lineno)
        if self.t_first is None:
            self.t_first = t_ns
        kind = _event_kind(event)
        call = Call.UNKNOWN     # (a madvise that changes VMA flags is none of the five)
        self.in_sample = True
        rest = toks[k + 1:]
        if kind == _TFAULT:
            tail = " ".join(rest)
            am = _TP_ADDR.search(tail)
            cm = _TP_CODE.search(tail)
            if am is None or cm is None:
                raise TraceFormatError(
                    f"{_clip(event, 60)} sample without address=0x... and "
                    "error_code=0x...; print the trace field (perf script -F ...,trace)",
                    path, lineno)
            addr = int(am[1], 16)
            if addr >= USER_TOP:
                return  # a kernel-mode fault on a kernel address: not the program's
            code = int(cm[1], 16)
            op = Op.IFETCH if code & 0x10 else Op.STORE if code & 0x2 else Op.LOAD
            size = self.fault_size
            if event == "exceptions:page_fault_kernel":
                call = Call.KERNEL     # a kernel-mode fault on a user address
        elif kind == _FAULT:
            addr, looks_default = _fault_addr(rest, period is not None, path, lineno)
            if not self.layout_known:
                if looks_default:
                    self.suspect = lineno
                else:
                    self.layout_known = True
            op, size = Op.LOAD, self.fault_size
            if _kernel_ip(rest[1:]):
                call = Call.KERNEL     # its fault was taken in kernel mode
            else:
                self.ip_pending = True
        elif kind == _LOCK:
            # the range needs the pid (brk follows the process's break): set below
            op, size, lock_text = Op.LOCK_W, None, " ".join(rest)
        elif kind == _LOCK_R:
            op, addr, size = _reader_record(event, " ".join(rest))
        elif self.sink is not None and event in _EXIT_EVENTS:
            am = _HEX.fullmatch(rest[0]) if rest else None
            if am:
                first, slash, _ = id_tok.partition("/")
                pid = (_id(first, "process id", path, lineno) if slash
                       else self.pid_of.get(_id(first, "thread id", path, lineno)))
                self.sink.append((_EXIT_EVENTS[event], pid, int(am[1], 16), self.n_total))
            return
        elif self.skip_other:
            return
        else:
            raise TraceFormatError(
                f"unexpected event {_clip(event, 60)}: expected page-faults or "
                "syscalls:sys_enter_{mmap,munmap,mprotect,mremap,brk,madvise,mincore}",
                path, lineno, option=SKIP_OTHER_EVENTS)
        pid, tid = self._ids(id_tok, lineno)
        if size is None:
            addr, size, call = writer_range(event[len("syscalls:sys_enter_"):], lock_text,
                                            self.last_brk, pid, self.page_size, with_call=True)
        if addr >> 64:
            raise TraceFormatError(f"address {addr:#x} has more than 64 bits", path, lineno)
        cols = self.cols
        cols["tid"].append(tid)
        cols["asid"].append(self._asid(pid, lineno))
        cols["addr"].append(addr)
        cols["op"].append(int(op))
        cols["size"].append(size)
        cols["gap_ns"].append(self._gap(tid, t_ns, time_tok, lineno))
        cols["call"].append(int(call))
        self.n_total += 1
        if self.sink is not None and kind == _LOCK:
            args = {a: int(v, 16) for a, v in _TP_ARGS.findall(" ".join(rest))}
            self.sink.append((event.split(":")[1][len("sys_enter_"):], pid, args, self.n_total))

    def _ids(self, id_tok, lineno):
        """``(pid, tid)`` of a sample's ``pid/tid`` or ``tid`` field (pid from the task
        markers, None when unknown)."""
        first, slash, second = id_tok.partition("/")
        if slash:
            pid = _id(first, "process id", self.path, lineno)
            tid = _id(second, "thread id", self.path, lineno)
            if pid == -1:
                pid = self.pid_of.get(tid)  # (perf prints -1 for a pid it does not know)
            elif not 0 <= pid <= _MAX_ID:
                raise TraceFormatError(f"process id {pid} is out of range; expected a real "
                                       f"pid (or -1, unknown)", self.path, lineno)
        else:
            tid = _id(first, "thread id", self.path, lineno)
            pid = self.pid_of.get(tid)
        if not 0 <= tid <= _MAX_ID:
            raise TraceFormatError(f"thread id {tid} is out of range; expected a real tid",
                                   self.path, lineno)
        return pid, tid

    def _asid(self, pid, lineno):
        """The address space of process ``pid``: numbered in order of appearance."""
        asid = self.asid_of.get(pid)
        if asid is None:
            if len(self.asid_of) >= MAX_PROCESSES:
                raise TraceFormatError(
                    f"process {pid} is the {MAX_PROCESSES + 1:,}th distinct process; a "
                    f"trace holds at most {MAX_PROCESSES:,} address spaces (asid below "
                    f"{MAX_PROCESSES})",
                    self.path, lineno)
            asid = self.asid_of[pid] = len(self.asid_of)
        return asid

    def _gap(self, tid, t_ns, time_tok, lineno):
        """The record's ``gap_ns``: the time since the thread's previous record (its first:
        0, or the time since the recording's start with ``thread_start="offset"``)."""
        prev = self.last.get(tid)
        if prev is None:
            gap = t_ns - self.t_first if self.offset_start else 0
        else:
            gap = t_ns - prev[0]
            if gap < 0:
                raise TraceFormatError(
                    f"time goes backwards for thread {tid}: {time_tok} is before its "
                    f"previous record on line {prev[1]}; expected perf script's "
                    "time-sorted output (not --deltatime)", self.path, lineno)
        self.last[tid] = (t_ns, lineno)
        return gap


def _kernel_ip(tokens):
    """Whether the tokens after a page-fault sample's data address (or a call-chain line's)
    show an ip in the kernel: an address from :data:`KERNEL_START` up, or the kernel's
    dso."""
    for t in tokens:
        if t == KERNEL_DSO:
            return True
        m = _HEX.fullmatch(t)
        if m is not None and len(m[1]) == 16 and int(m[1], 16) >= KERNEL_START:
            return True
    return False


def _fault_addr(tokens, has_period, path, lineno):
    """The data address of a page-fault sample (from the tokens after the event name) and
    whether the line looks like perf's default layout (period column, a ``(dso)`` and a
    single hexadecimal address)."""
    hm = _HEX.fullmatch(tokens[0]) if tokens else None
    if hm is None:
        raise TraceFormatError(
            "page-fault sample has no data address: expected a hexadecimal address after "
            "the event name (record with `perf record -d` and print the addr field, e.g. "
            "`perf script -F comm,pid,tid,time,event,addr,trace`)", path, lineno)
    looks_default = (has_period and any("(" in t for t in tokens)
                     and sum(1 for t in tokens if _HEX.fullmatch(t)) < 2)
    return int(hm[1], 16), looks_default


def _time_ns(text, path, lineno):
    """Integer ns of a ``seconds.decimals`` timestamp, checked (no float, bounded)."""
    tm = _TIME.fullmatch(text)
    if tm is None:
        raise TraceFormatError(
            f"bad timestamp {_clip(text, 40)}: expected seconds with 1 to 9 decimals "
            "such as 400.845503 or 400.845503102", path, lineno)
    sec = tm[1].lstrip("0") or "0"
    t_ns = (int(sec) if len(sec) <= 20 else MAX_TIME_NS) * 1_000_000_000 \
        + int(tm[2].ljust(9, "0"))
    if t_ns >= MAX_TIME_NS:
        raise TraceFormatError(
            f"timestamp {_clip(text, 40)} is out of range: expected less than "
            f"{MAX_TIME_NS // 1_000_000_000:,} s (2**62 ns)", path, lineno)
    return t_ns


def _id(text, what, path, lineno):
    """A thread or process id token (``-?digits``) as an int, refusing absurd lengths."""
    # leading zeros stripped first: int() refuses 4,300+ digits even when they are zeros
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) > _ID_DIGITS:
        raise TraceFormatError(
            f"{what} {_clip(text, 40)} is out of range; expected at most {_MAX_ID}",
            path, lineno)
    return -int(digits) if text.startswith("-") else int(digits)


def _default_layout_error(path, lineno):
    return TraceFormatError(
        "this page-fault sample is in perf script's default layout, which prints the "
        "instruction pointer but not the data address; rerun `perf script -F +addr` "
        "(or -F comm,pid,tid,time,event,addr,trace), or pass assume_addr=True if the "
        "first address is the data address", path, lineno)


def _note_task(toks, k, pid_of, path, lineno):
    """Record the pid of the thread a FORK/EXIT/COMM side-band line names (``toks[k]`` is its
    ``PERF_RECORD_*`` token)."""
    m = _FORK.match(toks[k])
    if m is not None:
        pid, tid = m[1], m[2]
    elif toks[k] == "PERF_RECORD_COMM:" or (toks[k] == "PERF_RECORD_COMM"
                                            and toks[k + 1:k + 2] == ["exec:"]):
        # ``PERF_RECORD_COMM[ exec]: comm:pid/tid``; the comm may hold spaces or colons
        if len(toks) < k + 2 + (toks[k] != "PERF_RECORD_COMM:"):
            return
        pid, slash, tid = toks[-1].rpartition(":")[2].partition("/")
        if not (slash and pid.isascii() and pid.isdigit() and tid.isascii() and tid.isdigit()):
            return
    else:
        return
    pid_of[_id(tid, "thread id", path, lineno)] = _id(pid, "process id", path, lineno)


def _clip(line, n=100):
    """``repr`` of ``line`` stripped, cut to ``n`` characters (a message stays one short line)."""
    line = line.strip()
    return repr(line if len(line) <= n else line[:n] + "...")
