"""Reference simulator of vmlab's page-fault model, in plain Python.

This is the slow, obviously-right twin of the numba engine (``vmlab/engine/``): it implements
``docs/model.md`` literally and shares no code with the engine.  Each thread is a Python
generator that reads like the contract ("take mmap_sem, pay the handler, look the page up,
wait..."); it suspends by yielding one of three requests to the event loop:

* ``("sleep", dt, category)``: a CPU (or compute, or signal) segment of ``dt`` ns charged to
  ``category``; the thread resumes as a kind-3 event at ``now + dt``, even when ``dt == 0``.
* ``("lock", asid, mode, lock_record)``: request ``mmap_sem``; a request granted at once
  continues in the same step, otherwise the thread resumes when a release grants it.
* ``("wait",)``: a wait for I/O or a context whose wake-up the caller has arranged (an I/O
  completion, a pre-computed context completion, or an abort by a signal).

The events are a ``heapq`` of ``(time, kind, id, token)``: kinds 0 (file I/O completes, id =
dense page id), 1 (adversary), 2 (signal arrives, id = thread), 3 (thread resumes, id = thread).
``token`` only invalidates a thread's superseded resume (a wake-up cancelled by an abort).

Choices this file makes where ``docs/model.md`` is silent or ambiguous (closest to the kernel
where it had to choose; the lead decides whether docs/model.md adopts them):

* Every CPU segment end is its own kind-3 event, zero-length ones included; an immediate lock
  grant does not create an event.  An abort by a signal is a kind-3 resume at the arrival time
  (the signal is pending and marked at kind 2; the thread unpins and releases at kind 3).
* Signal delivery loops: after each handled signal the thread re-checks its pending set, so a
  signal arriving during handling is delivered in the same batch (the kernel's exit-to-user loop).
* Pending signals are also delivered after the last record; a fatal one then kills the thread.
* When signals are already pending as an interruptible wait would begin, the earliest pending
  one is marked ``aborted_wait``.  A context wait aborted that way never begins: no ``wait_ns``
  draw, and it does not make the fault major (section 5: "began a context wait"; the kernel's
  ``wait_event_interruptible`` returns before sleeping).  A file I/O was issued all the same.
* A fault's ``end_ns``: the lock release that completes it (after fault-around), the
  re-execution that found the PTE present, the SIGBUS instant ``h``, or the death of the thread.
* Fault-around happens on every page-cache-hit lookup, also on an attempt after a retry.
* Lock waits go to ``lock_wait`` (never ``wasted``); SIGBUS's handler CPU goes to ``fault_cpu``;
  an attempt still in progress at the horizon counts in ``fault_cpu``/``io_wait``, and its
  fault's ``lock_wait_ns``/``io_wait_ns`` include the partial wait up to the horizon.
* The record of a fault ended by SIGBUS or a fatal signal counts as abandoned.
* A context page is "ready" from its completion instant ``c`` (as if processed before the
  kind-3 events at ``c``).
* The run stops when every thread has ended (later adversary calls and I/O completions are
  not processed), or at the horizon.
* Signal schedules with ``threads=None`` apply to threads with access records only (the
  ``SignalSchedule`` docstring); explicit thread ids may name any thread.
* Preload addresses are in address space 0; those outside every file VMA are skipped.  A preload
  larger than ``memory_pages`` evicts as it inserts (counted in ``n_evictions``); a folio is
  inserted at its first listing only (one evicted by a later one is not inserted again).
* ``memory_pages < 2 * threads + 1`` is refused (docs/model.md section 8).
* Lock designs after 2010 (docs/model.md section 15): a VMA read lock or a speculative
  attempt takes no event of its own unless it pays ``vma_lookup_ns`` or a line cost (a CPU
  segment, taken only when nonzero so that a run without these costs is unchanged); a writer
  waiting for its VMAs' readers suspends with ``("drain",)``, charged to ``lock_wait``, and
  resumes at the instant the last of them releases plus its wake-up (``lock_wakeup_ns``,
  15.14, as a thread granted ``mmap_sem`` after a wait); a speculative attempt that falls back
  settles its CPU as ``wasted`` without counting against ``max_retries``.
"""
from __future__ import annotations

import bisect
import itertools
import math
import heapq
from collections import OrderedDict, deque
from types import SimpleNamespace

from vmlab.errors import ScenarioError
from vmlab.model.costs import Exponential
from vmlab.model.scenario import refuse_knobs
from vmlab.trace.model import Call, Op

MASK64 = 0xFFFFFFFFFFFFFFFF

FAULT_COLUMNS = ("thread", "tid", "asid", "vpn", "vma", "start_ns", "end_ns", "attempts", "retries",
                 "major", "lock_wait_ns", "io_wait_ns", "outcome")
SIGNAL_COLUMNS = ("thread", "arrival_ns", "delivery_ns", "fatal", "aborted_wait")
LOCK_COLUMNS = ("thread", "asid", "mode", "kind", "request_ns", "acquire_ns", "release_ns",
                "downgrade_ns")
THREAD_COLUMNS = ("thread", "tid", "end_ns", "state", "records_done", "compute_ns", "hit_ns",
                  "fault_cpu_ns", "io_wait_ns", "lock_wait_ns", "lock_hold_ns", "signal_ns",
                  "wasted_ns")
COUNTER_NAMES = ("n_accesses", "n_faults", "n_major", "n_minor", "n_retries", "n_sigbus", "n_io",
                 "n_wasted_io", "n_evictions", "n_adversary_evictions", "n_lock_w", "n_ptes_end",
                 "n_signals", "n_unfinished_records", "n_abandoned_records",
                 "n_livelocked_threads", "n_read_pages", "oom_ns", "oom_thread",
                 "n_readahead_pages")
#: Counters of the lock designs after 2010 (docs/model.md section 15.6).
LOCK_COUNTER_NAMES = ("n_mmap_lock_read", "n_vma_lock_read", "n_vma_lock_fallbacks",
                      "n_spf_aborts", "n_mmap_lock_read_other", "n_mmap_lock_read_kernel",
                      "n_anon_vma_fallbacks")
#: VMA read lock and speculative attempts (docs/model.md 15.6): lock 1 = a VMA lock, 2 = a
#: sequence count; acquire -1 for a failed attempt; outcome 0 held, 1 fallback, 2 abort.
VMA_LOCK_COLUMNS = ("thread", "vma", "lock", "request_ns", "acquire_ns", "release_ns",
                    "outcome")
VLK_VMA, VLK_SEQ = 1, 2
HELD, FALLBACK, ABORT = 0, 1, 2
#: Lock waits of docs/model.md 15.6 (ns): mmap_sem from request to grant by mode (total and
#: largest), and writers' waits for the readers of their VMAs.
LOCK_WAIT_NAMES = ("mmap_lock_read_wait_ns", "mmap_lock_read_wait_ns_max",
                   "mmap_lock_write_wait_ns", "mmap_lock_write_wait_ns_max",
                   "vma_lock_write_wait_ns")
#: Eviction records (docs/model.md 11.4): cause 0 a fault, 1 readahead, 2 the adversary, 3 the
#: preload; thread -1 for the last two; the file (index in Scenario.file_table) and the first
#: file page of the evicted folio.
EVICTION_COLUMNS = ("time_ns", "file", "file_page", "cause", "thread")
BY_FAULT, BY_READAHEAD, BY_ADVERSARY, BY_PRELOAD, BY_READ = 0, 1, 2, 3, 4
#: mm/vmscan.c's first reclaim priority and mm/internal.h's retries of a charge that
#: reclaims nothing (docs/model.md 8.4)
DEF_PRIORITY = 12
MAX_RECLAIM_RETRIES = 16
#: Thread time categories, in THREAD_COLUMNS order (column = category + "_ns").
CATEGORIES = ("compute", "hit", "fault_cpu", "io_wait", "lock_wait", "lock_hold", "signal",
              "wasted")

# Fault outcomes, thread states, lock modes and kinds (the integer codes of the output).
DONE, SIGBUS, KILLED, UNFINISHED = 0, 1, 2, 3
T_DONE, T_KILLED, T_SIGBUS, T_UNFINISHED, T_OOM = 0, 1, 2, 3, 4
READ, WRITE = 0, 1
LOCK_FAULT, LOCK_RECORD, LOCK_REMAP, LOCK_READER = 0, 1, 2, 3

# Event kinds.
EV_IO, EV_ADVERSARY, EV_SIGNAL, EV_THREAD = 0, 1, 2, 3

# Random streams (docs/model.md section 1).
STREAM_IO, STREAM_WAIT, STREAM_ADVERSARY, STREAM_WAKE, STREAM_SIGNAL0 = 1, 2, 3, 4, 16
# a thread's waits for a CPU after I/O: stream STREAM_IO_WAKE0 + thread, its own counter
STREAM_IO_WAKE0 = 1 << 32

# A writer first in mmap_sem's queue that has waited this long asks for the hand-off
# (rwsem_steal, docs/model.md section 4: the kernel's RWSEM_WAIT_TIMEOUT, 4 ms at HZ 250-1000).
RWSEM_WAIT_TIMEOUT_NS = 4_000_000

# How one attempt of a fault ends.
_COMPLETED, _RETRY_IN_KERNEL, _TO_USER, _DEAD = "completed", "retry", "to_user", "dead"
_RETRY_FIRST = "retry_first"        # a retry that is a first attempt again (k kept: 15.10)
# docs/model.md section 15: continue under mmap_sem with the same in-kernel index (a VMA lock
# that could not be taken) or afresh (a speculative attempt that aborted or needs to wait)
_FALLBACK, _SPF_FALLBACK = "fallback", "spf_fallback"


def mix(seed, stream, counter):
    """The counter-based random function of docs/model.md section 1 (uint64, wrapping)."""
    z = (seed ^ ((stream * 0xD1B54A32D192ED03) & MASK64)) + (((counter + 1) * 0x9E3779B97F4A7C15) & MASK64)
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class _Oom(Exception):
    """A charge found no free frame and no page-cache folio to evict (docs/model.md 12)."""


class _Page:
    """A folio in the page cache (resident or with its I/O in flight): one page unless the
    file has larger folios (docs/model.md 11.4)."""

    def __init__(self, in_flight, frames=1):
        self.in_flight = in_flight
        self.frames = frames        # the folio's pages inside the file: the frames it takes
        self.ra_mark = False        # PG_readahead (docs/model.md 11.5)
        self.pins = 0
        self.ref = False            # CLOCK reference bit; twolist: referenced while inactive
        self.batched = False        # in a thread's LRU-add batch (docs/model.md 12.1)
        self.act = False            # ... and joins the active list when it drains
        self.unmapped_io = in_flight  # read by an I/O and not mapped since: a wasted I/O if evicted
        self.waiters = []           # (thread, lock_dropped) waiting for the I/O


class _RwSem:
    """mmap_sem: a fair reader-writer semaphore (docs/model.md section 4)."""

    def __init__(self):
        self.readers = 0
        self.writer = False
        self.queue = deque()        # (thread, mode, lock record)
        self.woken = False          # rwsem_steal: the writer first in the queue is woken
        self.handoff = False        # ... and the lock is to be handed to it


class _Thread:
    def __init__(self, index, tid):
        self.index = index
        self.tid = tid
        self.records = []
        self.eager_vmas = []
        self.schedule = None
        self.sched_count = 0        # signal arrivals generated so far
        self.sched_last = 0         # time of the last one
        self.alive = True
        self.state = T_UNFINISHED
        self.end_ns = -1
        self.records_done = 0
        self.time = dict.fromkeys(CATEGORIES + ("att_cpu", "att_wait"), 0)
        self.cat = "compute"
        self.since = 0
        self.pending = deque()      # signal records not yet delivered
        self.fault = None           # the fault in progress
        self.interruptible = False  # in an interruptible wait
        self.waiting_on = None      # page key of an I/O wait
        self.token = 0
        self.resume_value = None
        self.gen = None
        self.drain = set()          # VMAs whose readers this writer waits for
        self.granted = None         # (when it runs, its lock record): granted, not yet run
        self.trying = None          # the _RwSem it was woken to try (rwsem_steal)
        self.vl_ops0 = 0            # its VMA word's operation count after its last VMA grant

    def charge_to(self, cat, now):
        """Close the running time segment and charge what follows to ``cat``."""
        self.time[self.cat] += now - self.since
        self.since = now
        self.cat = cat

    def settle_attempt(self, now, how):
        """Move the current attempt's CPU and wait to their final categories: ``"done"`` (the
        fault completed: handler CPU and I/O wait), ``"retry"`` (a lock-dropping wait ran to
        completion: its CPU is wasted, its wait was I/O wait, the page or context stays) or
        ``"abort"`` (a signal cut the wait short: CPU and wait are wasted)."""
        self.charge_to(self.cat, now)
        cpu, wait = self.time["att_cpu"], self.time["att_wait"]
        self.time["att_cpu"] = self.time["att_wait"] = 0
        self.time["fault_cpu" if how == "done" else "wasted"] += cpu
        self.time["wasted" if how == "abort" else "io_wait"] += wait


class _Record:
    __slots__ = ("index", "op", "asid", "addr", "vpn", "vma", "gap", "key", "write", "size",
                 "call", "kernel")


class NaiveSimulator:
    """One run of a scenario under a policy.  Use :func:`simulate`."""

    def __init__(self, scenario, policy=None, event_budget=None):
        self.sc = scenario
        # at most this many events (None: no bound); past it the run stops at that event's
        # time and closes its books as at the horizon (docs/model.md section 10)
        self.event_budget = event_budget
        self.n_events = 0
        self.stopped_by_budget = False
        self.policy, self.vmas, self.vma_policies = scenario.validate(policy)
        # the kernel fault model (docs/model.md 11.1-11.3); readahead, folios, shared files and
        # the memory limit are not modelled here yet
        refuse_knobs(scenario, self.vmas, runs=("fault_model", "file", "folio_pages", "reads",
                                                "reclaim_batch", "lru_add_batch",
                                                "tlb_young", "reclaim_ages_active",
                                                "reclaim_priorities", "memory_bytes", "ra_pages", "workingset"),
                     who="the reference simulator")
        self.kernel = scenario.fault_model == "kernel"
        self.costs = scenario.costs
        self.horizon = int(scenario.horizon_ns)
        self.seed = int(scenario.seed)
        self.now = 0
        self.events = []
        self.draws = {}
        self.io_table = self.costs.io_ns.table()
        self.wait_table = self.costs.wait_ns.table()
        self.wake_table = self.costs.lock_wakeup_ns.table()
        self.wake_on = int(self.wake_table.max()) > 0
        self.io_wake_table = self.costs.io_wakeup_ns.table()
        self.io_wake_on = int(self.io_wake_table.max()) > 0
        self.exp_tables = {}               # rate_hz -> table of Poisson intervals
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self.faults, self.signals, self.locks = [], [], []

        trace = scenario.trace
        self.page_size = int(trace.meta.page_size)
        self.shift = self.page_size.bit_length() - 1
        # the files the VMAs map: (name, pages, folio pages, listed folios); page-cache
        # entries are keyed (file index, the folio's first file page) (docs/model.md 11.4)
        self.files, self.vma_file = scenario.file_table(self.vmas)
        ps = self.page_size
        self.limit = (None if scenario.memory_bytes is None and scenario.memory_pages is None
                      else int(scenario.memory_pages) if scenario.memory_bytes is None
                      else int(scenario.memory_bytes) // ps)
        self.frames_used = 0               # frames of page-cache folios
        self.anon_frames = 0               # frames of anonymous pages and private copies
        self.charged = set()               # (asid, vpn) holding an anonymous frame
        self.tables = set()                # (asid, level, range): page tables holding a frame
        self.oom = None                    # (thread index, time) once a charge failed
        self.io_ids = {}                   # folio key -> event id
        self.io_key_of = []                # event id -> folio key
        self.evictions = []                # eviction records (EVICTION_COLUMNS)
        self.cur_thread = -1               # the thread whose step is running (-1: none)
        # readahead state per (asid, file): [start, size, async_size, mmap_miss] (11.5)
        self.ra = {}
        # twolist's workingset detection (docs/model.md 8.1): the lruvec's nonresident_age
        # (pages) and one shadow entry per folio reclaim evicted: the age at its eviction
        self.workingset = scenario.workingset and scenario.replacement == "twolist"
        self.nonresident_age = 0
        self.shadows = {}
        # twolist in the kernel fault model reads the PTEs' young bits at reclaim
        # (docs/model.md 8.2): the PTEs (keys) whose young bit is set
        self.young_mode = self.kernel and scenario.replacement == "twolist"
        self.young = set()
        # the TLB (docs/model.md 8.3): the PTEs whose translation is loaded; a hit through
        # one of them sets no young bit
        self.tlb_on = self.young_mode and scenario.tlb_young
        self.tlb = set()
        self.age_all = self.young_mode and scenario.reclaim_ages_active
        # the kernel's reclaim call (docs/model.md 8.4): a charge over memory_bytes runs
        # try_charge_memcg's retries of do_try_to_free_pages' priority loop
        self.prio_mode = (self.young_mode and scenario.reclaim_priorities
                          and scenario.memory_bytes is not None)
        self.n_refault_act = 0             # WORKINGSET_ACTIVATE_FILE
        self.refault_snap = 0              # its value at the last reclaim call's end
        # the per-CPU LRU-add batches (docs/model.md 12.1): thread index -> [folios added
        # (anonymous ones too), the page-cache folios among them, in order]; a batched folio
        # is on neither list, ``page.act`` says which list it joins
        self.lru_batch = scenario.lru_add_batch if scenario.lru_add_batch_applies else 0
        self.batches = {}
        self.n_foreign = 0                 # another cgroup's folios on the lists (preload)
        self._build_threads(trace)
        # mappings that end (docs/model.md 11.9): record index -> [(asid, vpn lo, vpn hi)]
        self.unmaps_at = {}
        for r, asid, vs, ve, to in scenario.unmap_ranges(self.vmas, self.vma_policies):
            self.unmaps_at.setdefault(r, []).append((asid, vs, ve, to))
        # read()-family calls (docs/model.md 11.7): record index -> [(file, lo, hi, a, b, prev)]
        self.reads_at = {}
        self.rstreams = {}                 # (file, stream) -> read() readahead state (11.7.1)
        for r, *op in scenario.read_ops(self.files):
            self.reads_at.setdefault(r, []).append(op)
        self._check_memory()
        self._build_eager()

        # Page tables, page cache, context readiness, semaphores.
        self.ptes = set()                  # (asid, vpn) with a PTE installed lazily
        self.readonly = set()              # kernel model: PTEs mapping the zero page or a file
        #                                    page read-only (the others are writable)
        self.copied = set()                # kernel model: PTEs mapping a private copy of a file
        #                                    page (evicting the file page leaves them)
        self.eager_done = [False] * len(self.vmas)
        self.cache = {}                    # (file, folio) -> _Page
        self.lru_order = OrderedDict()     # lru / fifo, twolist's inactive list: oldest first
        self.active = OrderedDict()        # twolist's active list: oldest activation first
        self.ring = deque()                # clock: ring[0] is under the hand
        self.context_ready_at = {}         # (asid, vpn) -> time it became ready
        self.sems = {}
        # docs/model.md section 15: VMA read locks, write-locked VMAs, sequence counts
        self.vma_readers = [0] * len(self.vmas)
        self.vma_wlocked = [False] * len(self.vmas)
        # acquisitions and releases of each VMA's lock word (a re-read's miss, 15.1)
        self.vma_ops = [0] * len(self.vmas)
        self.n_in_fault = 0             # threads inside a fault (fault_shared_ns, 15.1)
        # VMAs with an anon_vma: from the start, or made by a fault (docs/model.md 15.8)
        self.anon_vma = {i for i, v in enumerate(self.vmas) if v.anon_vma}
        self.vma_seq = [0] * len(self.vmas)
        self.mm_seq = {}
        self.drain_waiters = {}            # VMA index -> writers waiting for its readers
        self.lock_counters = dict.fromkeys(LOCK_COUNTER_NAMES, 0)
        self.vma_write_wait_ns = 0
        self.vma_locks = []                # one row per VMA read lock taken
        self._preload()

    # -- set-up -------------------------------------------------------------------------
    def _build_threads(self, trace):
        n = len(trace)
        tids = [int(t) for t in trace.tid]
        asids = [int(a) for a in trace.asid]
        addrs = [int(a) for a in trace.addr]
        ops = [int(o) for o in trace.op]
        gaps = [int(g) for g in trace.gap_ns] if trace.has_gap else [0] * n
        sizes = [int(z) for z in trace.size]
        calls = [int(c) for c in trace.calls()]
        ordered_tids = sorted(set(tids))
        self.threads = [_Thread(i, t) for i, t in enumerate(ordered_tids)]
        by_tid = {t: th for t, th in zip(ordered_tids, self.threads)}

        vmas_of_asid = {}
        for vi, v in enumerate(self.vmas):
            vmas_of_asid.setdefault(v.asid, []).append(vi)
        starts = {a: [self.vmas[vi].start for vi in lst] for a, lst in vmas_of_asid.items()}

        keys = set()
        self.first_toucher = {}
        for i in range(n):
            r = _Record()
            r.index, r.op, r.asid, r.addr, r.gap = i, ops[i], asids[i], addrs[i], gaps[i]
            r.size = sizes[i]
            r.call = calls[i]
            r.kernel = r.call == Call.KERNEL    # made by the kernel: no FAULT_FLAG_USER (15.3)
            r.vpn = r.addr >> self.shift
            r.key = (r.asid, r.vpn)
            r.vma = None
            r.write = r.op in (Op.STORE, Op.MODIFY)
            if r.op < Op.LOCK_W:       # lock records (LOCK_W, LOCK_R) are no access
                lst = vmas_of_asid.get(r.asid, [])
                j = bisect.bisect_right(starts.get(r.asid, []), r.addr) - 1
                if j < 0 or r.addr >= self.vmas[lst[j]].end:
                    raise ScenarioError(
                        f"record {i}: address {r.addr:#x} (address space {r.asid}) is outside "
                        "every VMA; every access must fall in a VMA")
                r.vma = lst[j]
                if self.kernel:
                    self._check_access(i, r, tids[i])
                keys.add(r.key)
                self.first_toucher.setdefault(r.vma, by_tid[tids[i]].index)
            by_tid[tids[i]].records.append(r)
        self.page_id = {k: i for i, k in enumerate(sorted(keys))}
        self.page_of_id = sorted(keys)

        access_tids = sorted({tids[i] for i in range(n) if ops[i] < Op.LOCK_W})
        schedules = self.sc.signal_schedule_of(ordered_tids)
        for tid, s in schedules.items():
            if s.threads is None and tid not in access_tids:
                continue
            by_tid[tid].schedule = s

    def _check_access(self, i, rec, tid):
        """Kernel model: the program would have died of SIGSEGV (docs/model.md 11.1)."""
        vma = self.vmas[rec.vma]
        if not vma.prot or (rec.write and "w" not in vma.prot):
            what = "writes" if rec.write else "accesses"
            raise ScenarioError(f"record {i}: thread {tid} {what} {rec.addr:#x} in VMA {vma.label}, "
                                f"whose prot is {vma.prot or 'none'!r}")

    def _check_memory(self):
        mp = self.sc.memory_pages
        if mp is not None and mp < 2 * len(self.threads) + 1:
            raise ScenarioError(f"memory_pages must be at least 2 * threads + 1 = "
                                f"{2 * len(self.threads) + 1}, got {mp}")
        big = max([f[2] for f in self.files] + [n for f in self.files for _, n in f[3]] or [1])
        if mp is not None and mp < (2 * len(self.threads) + 1) * big:
            raise ScenarioError(f"memory_pages must be at least (2 * threads + 1) * folio pages "
                                f"= {(2 * len(self.threads) + 1) * big}, got {mp}")

    def _build_eager(self):
        index_of_tid = {th.tid: th.index for th in self.threads}
        for vi, (v, p) in enumerate(zip(self.vmas, self.vma_policies)):
            if not p.eager:
                continue
            if v.map_thread is not None:
                if int(v.map_thread) not in index_of_tid:
                    raise ScenarioError(f"VMA {v.label}: map_thread {v.map_thread} is not a "
                                        "thread of the trace")
                owner = index_of_tid[int(v.map_thread)]
            else:
                owner = self.first_toucher.get(vi, 0)
            self.threads[owner].eager_vmas.append(vi)

    def _preload(self):
        if self.sc.preload is None:
            return
        listed = set()
        for addr in self.sc.preload:
            key = (0, int(addr) >> self.shift)
            vi = self._vma_of(key)
            if vi is None or self.vmas[vi].backing != "file":
                continue
            fkey = self._folio(key, vi)
            if fkey in listed:     # a folio is preloaded at its first listing only
                continue
            listed.add(fkey)
            if self.sc.memory_bytes is not None:
                # another cgroup's page cache: resident, not charged to the limit, and never
                # reclaimed by it (docs/model.md section 12)
                page = _Page(in_flight=False, frames=self._folio_frames(fkey))
                page.pins = 1 << 30
                self.cache[fkey] = page
                if self.sc.replacement == "clock":
                    self.ring.append(fkey)
                else:
                    self.lru_order[fkey] = None
                self.n_foreign += 1
                page.unmapped_io = False
                continue
            page = self._allocate(fkey, evict_counter="n_evictions", cause=BY_PRELOAD)
            page.in_flight = False
            page.unmapped_io = False

    # -- files and folios (docs/model.md 11.3-11.4) --------------------------------------
    def _file_page(self, key, vi):
        """The file page that virtual page ``key`` of file VMA ``vi`` maps."""
        v = self.vmas[vi]
        return v.offset // self.page_size + key[1] - (v.start >> self.shift)

    def _span(self, f, o):
        """The folio of file ``f`` holding file page ``o``: ``(first page, pages)``.  A listed
        folio (``File.folios``) holds its pages; any other page is in its ``folio_pages``-
        aligned block, one folio unless a listed folio lies in that block, then its own."""
        _, _, fp, listed = self.files[f]
        for a, n in listed:
            if a <= o < a + n:
                return a, n
        b = o - o % fp
        if any(a < b + fp and b < a + n for a, n in listed):
            return o, 1
        return b, fp

    def _folio(self, key, vi):
        """The page-cache key ``(file, first page of the folio)`` of virtual page ``key`` of
        file VMA ``vi``."""
        f = self.vma_file[vi]
        o = self._file_page(key, vi)
        if o >= self.files[f][1]:
            raise ScenarioError(f"page {key[1] << self.shift:#x} is beyond the end of file "
                                f"{self.files[f][0]!r}")
        return (f, self._span(f, o)[0])

    def _folio_frames(self, fkey):
        n = self.files[fkey[0]][1]
        return min(self._span(*fkey)[1], n - fkey[1])

    def _in_folio(self, fkey, o):
        """File page ``o`` is one of folio ``fkey``'s pages (past the file's end included)."""
        return fkey[1] <= o < fkey[1] + self._span(*fkey)[1]

    def _folio_keys(self, fkey):
        """Every virtual page (any address space) that maps a page of folio ``fkey``."""
        f, first = fkey
        n = self.files[f][1]
        lo, hi = first, min(first + self._span(*fkey)[1], n)
        out = []
        for vi, v in enumerate(self.vmas):
            if self.vma_file[vi] != f:
                continue
            vs = v.start >> self.shift
            o0 = v.offset // self.page_size
            for o in range(max(lo, o0), min(hi, o0 + ((v.end - v.start) >> self.shift))):
                out.append((v.asid, vs + o - o0))
        return out

    def _cache_page(self, key, vi):
        """The page-cache folio holding virtual page ``key`` of VMA ``vi``, or None."""
        if self.vmas[vi].backing != "file":
            return None
        return self.cache.get(self._folio(key, vi))

    def _window(self, rec):
        """The fault-around window of ``rec``'s page (docs/model.md 11.3): F pages from the
        F-aligned page below or the VMA's start, whichever is higher, clipped to the VMA, the
        page table and the file's end; the first and the last folio it overlaps join whole
        when they lie inside the VMA and the page table and end before the file's last page;
        virtual pages in ascending order."""
        lo, hi = self._aligned_window(rec)
        f = self.vma_file[rec.vma]
        n = self.files[f][1]
        base = (self.vmas[rec.vma].start >> self.shift) - self.vmas[rec.vma].offset // self.page_size
        for u in (lo, hi - 1):
            a, size = self._span(f, u - base)
            if self._folio_fits(rec, base + a, size) and a + size <= n - 1:
                lo, hi = min(lo, base + a), max(hi, base + a + size)
        return range(lo, hi)

    def _aligned_window(self, rec):
        """``do_fault_around()``'s own window, clipped to the file's end: ``(lo, hi)``."""
        F = int(self.sc.fault_around_pages)
        vma = self.vmas[rec.vma]
        vs, ve = vma.start >> self.shift, vma.end >> self.shift
        pt = rec.vpn - rec.vpn % 512
        lo = max(rec.vpn - rec.vpn % F, vs)
        hi = min(lo + F, pt + 512, ve)
        n = self.files[self.vma_file[rec.vma]][1]
        return lo, min(hi, vs + n - vma.offset // self.page_size)

    def _folio_fits(self, rec, va, size):
        """A folio of ``size`` pages at virtual page ``va`` can be mapped whole: more than a
        page, inside ``rec``'s VMA and inside its page table."""
        vma = self.vmas[rec.vma]
        pt = rec.vpn - rec.vpn % 512
        return (size > 1 and vma.start >> self.shift <= va and va + size <= vma.end >> self.shift
                and pt <= va and va + size <= pt + 512)

    def _finish_range(self, rec):
        """The pages finish_fault() maps for ``rec``'s read fault: its folio when it fits and
        lies inside the file, else the page (docs/model.md 11.3)."""
        f = self.vma_file[rec.vma]
        o = self._file_page(rec.key, rec.vma)
        a, size = self._span(f, o)
        va = rec.vpn - (o - a)
        if self._folio_fits(rec, va, size) and a + size <= self.files[f][1]:
            return range(va, va + size)
        return range(rec.vpn, rec.vpn + 1)

    def _map_finish(self, rec):
        """Map the other pages of ``_finish_range`` read-only when none of them has a PTE (a
        private copy's included: pte_range_none); returns how many."""
        keys = [(rec.asid, u) for u in self._finish_range(rec) if u != rec.vpn]
        if any(k in self.ptes for k in keys):
            return 0
        for k in keys:
            self._map(k, readonly=True)
        return len(keys)

    def _finish_after_read(self, rec, case):
        """After a read the fault waited for, finish_fault() maps the folio's other pages
        (kernel model, a read fault on a file page); returns how many."""
        if not self.kernel or case != "read":
            return 0
        return self._map_finish(rec)

    def _around_skipped(self, rec):
        """Fault-around maps nothing: the file's last folio overlaps the aligned window, the
        first folio of the window that could be mapped (resident, not in flight, not marked)
        is that one, and no page of this address space's page table has a PTE now."""
        if not self.kernel or int(self.sc.fault_around_pages) == 1:
            return False
        lo, hi = self._aligned_window(rec)
        f = self.vma_file[rec.vma]
        n = self.files[f][1]
        base = (self.vmas[rec.vma].start >> self.shift) - self.vmas[rec.vma].offset // self.page_size
        last = base + self._span(f, n - 1)[0]
        if last >= hi:
            return False
        first = None
        for u in range(lo, hi):
            page = self.cache.get(self._folio((rec.asid, u), rec.vma))
            if page is not None and not page.in_flight and not page.ra_mark:
                first = u
                break
        if first is None or first < last:
            return False
        pt = rec.vpn - rec.vpn % 512
        if any(p.eager and v.asid == rec.asid and v.start >> self.shift < pt + 512
               and v.end >> self.shift > pt for v, p in zip(self.vmas, self.vma_policies)):
            return False       # (an eager mapping's table is populated from its mmap on)
        return not any(a == rec.asid and pt <= u < pt + 512 for a, u in self.ptes)

    def _vma_of(self, key):
        asid, vpn = key
        addr = vpn << self.shift
        for vi, v in enumerate(self.vmas):
            if v.asid == asid and v.start <= addr < v.end:
                return vi
        return None

    # -- random numbers -----------------------------------------------------------------
    def _draw(self, stream, table):
        c = self.draws.get(stream, 0)
        self.draws[stream] = c + 1
        return int(table[mix(self.seed, stream, c) >> 48])

    # -- event queue --------------------------------------------------------------------
    def _push(self, time, kind, ident, token=0):
        heapq.heappush(self.events, (time, kind, ident, token))

    def _resume_at(self, th, time, value):
        """Schedule the thread's next step; any earlier scheduled resume becomes stale."""
        th.token += 1
        th.resume_value = value
        self._push(time, EV_THREAD, th.index, th.token)

    def run(self):
        for th in self.threads:
            th.gen = self._thread_main(th)
            self._resume_at(th, 0, None)
            self._schedule_next_signal(th, first=True)
        self._schedule_next_adversary(first=True)
        self.n_alive = len(self.threads)
        if self.sc.memory_bytes is not None:
            # the kernel's own memory at time 0 (docs/model.md 12): a PGD per address space,
            # each thread's kernel stack (4 frames); above the limit the run is an OOM there
            self.anon_frames = len({v.asid for v in self.vmas}) + 4 * len(self.threads)
            if self.anon_frames > self.limit:
                self.oom = (0, 0)
                self.horizon = 0
                self.events = []

        while self.events and self.n_alive > 0:
            time, kind, ident, token = self.events[0]
            if time > self.horizon:
                break
            self.n_events += 1
            if self.event_budget is not None and self.n_events > self.event_budget:
                self.stopped_by_budget = True
                self.horizon = time   # the books close here
                break
            heapq.heappop(self.events)
            self.now = time
            if kind == EV_IO:
                self._io_completes(self.io_key_of[ident])
            elif kind == EV_ADVERSARY:
                self._adversary_call()
            elif kind == EV_SIGNAL:
                self._signal_arrives(self.threads[ident])
            else:
                th = self.threads[ident]
                if token == th.token and th.alive:
                    self._step(th, th.resume_value)
                    if self.oom is not None:
                        self.horizon = self.now   # the books close here
                        self._granted_at_oom()
                        break
        if self.n_alive > 0 and not self.stopped_by_budget and self.oom is None and not (
                self.events and self.events[0][0] > self.horizon):
            raise RuntimeError("reference simulator stalled with live threads and no events")
        return self._results()

    def _step(self, th, value):
        """Run one thread until it suspends (docs/model.md section 2: one kind-3 event)."""
        if th.granted is not None:
            # a granted lock waiter runs: its acquisition is now (docs/model.md 15.14)
            th.granted[1]["acquire_ns"] = self.now
            th.granted = None
        if th.trying is not None and not self._try_write(th):
            return      # (the woken writer found the lock taken: it waits again)
        while True:
            try:
                self.cur_thread = th.index
                req = th.gen.send(value)
            except StopIteration:
                return
            except _Oom:
                # docs/model.md section 12: the run ends here, this thread charged
                self.oom = (th.index, self.now)
                return
            if req[0] == "sleep":
                _, dt, cat = req
                th.charge_to(cat, self.now)
                self._resume_at(th, self.now + dt, None)
                return
            if req[0] == "lock":
                _, asid, mode, lock = req
                th.charge_to("lock_wait", self.now)
                if self._request(th, asid, mode, lock):
                    value = None
                    continue
                return
            if req[0] == "drain":       # a writer waits for its VMAs' readers: lock wait
                th.charge_to("lock_wait", self.now)
                return
            assert req[0] == "wait"
            th.charge_to("att_wait", self.now)
            return

    # -- mmap_sem -----------------------------------------------------------------------
    def _lock_record(self, th, asid, mode, kind):
        lock = {"thread": th.index, "asid": asid, "mode": mode, "kind": kind,
                "request_ns": self.now, "acquire_ns": -1, "release_ns": -1,
                "downgrade_ns": -1}
        self.locks.append(lock)
        return lock

    def _sem(self, asid):
        return self.sems.setdefault(asid, _RwSem())

    def _request(self, th, asid, mode, lock):
        sem = self._sem(asid)
        if mode == READ:
            free = not sem.writer and not sem.queue
        else:
            free = not sem.writer and sem.readers == 0 and not sem.queue
        if not free and self.sc.rwsem_steal and not sem.writer and sem.readers == 0 \
                and not sem.handoff:
            free = True   # docs/model.md section 4: the lock is free, taken past the queue
        if free:
            self._grant(sem, mode, lock)
            return True
        sem.queue.append((th, mode, lock))
        return False

    def _grant(self, sem, mode, lock):
        if mode == READ:
            sem.readers += 1
        else:
            sem.writer = True
        lock["acquire_ns"] = self.now
        # the lock word's cache line (docs/model.md 15.1): the other holders at the grant;
        # a writer holds it alone, readers granted together count each other
        lock["line_n"] = sem.readers - 1 if mode == READ else 0

    def _release(self, asid, mode, lock):
        sem = self._sem(asid)
        if mode == READ:
            sem.readers -= 1
        else:
            sem.writer = False
        lock["release_ns"] = self.now
        self._grant_queue(sem)

    def _downgrade(self, asid, lock):
        """A writer's call downgrades mmap_sem to read (docs/model.md 15.13): it holds it for
        read from now, and the readers at the head of the queue are granted with it."""
        sem = self._sem(asid)
        sem.writer = False
        sem.readers += 1
        lock["downgrade_ns"] = self.now
        self._grant_queue(sem)

    def _woken_at(self):
        """When a thread granted a lock it waited for now runs (docs/model.md 15.14): now
        plus the next draw of ``lock_wakeup_ns`` (none drawn when it is always 0)."""
        if not self.wake_on:
            return self.now
        return self.now + self._draw(STREAM_WAKE, self.wake_table)

    def _io_woken_at(self, th, done):
        """When ``th``, whose wait for I/O or a context completes at ``done``, runs
        (docs/model.md 15.14): ``done`` plus ``wakeup_ns`` plus its next draw of
        ``io_wakeup_ns``, from its own stream (none drawn when it is always 0)."""
        done += self.costs.wakeup_ns
        if not self.io_wake_on:
            return done
        return done + self._draw(STREAM_IO_WAKE0 + th.index, self.io_wake_table)

    def _wake_granted(self, th, qlock):
        """``th`` holds the lock from now and runs after its wake-up; its lock record's
        acquisition is when it runs (the tracepoint's ``acquire_returned``)."""
        at = self._woken_at()
        if at > self.now:
            qlock["acquire_ns"] = -1
            th.granted = (at, qlock)
        self._resume_at(th, at, None)

    def _granted_at_oom(self):
        """An OOM stops the run: threads granted a lock that were to run at this very instant
        hold it all the same (docs/model.md 2 and 12), as at a grant without a wake-up."""
        for th in self.threads:
            if th.granted is not None and th.granted[0] == self.now:
                th.granted[1]["acquire_ns"] = self.now
                th.granted = None

    def _wake_to_try(self, sem):
        """rwsem_steal (section 4): the writer first in the queue is woken to take the lock
        itself when it runs (unless it already is)."""
        if not sem.woken:
            sem.woken = True
            th = sem.queue[0][0]
            th.trying = sem
            self._resume_at(th, self._woken_at(), None)

    def _try_write(self, th):
        """A woken writer runs (section 4, rwsem_steal): it takes the lock if it is free, else
        it waits again at the head of the queue, asking for the hand-off once it has waited
        RWSEM_WAIT_TIMEOUT.  True if it took the lock."""
        sem = th.trying
        th.trying = None
        sem.woken = False
        _th, _mode, lock = sem.queue[0]
        if not sem.writer and sem.readers == 0:
            sem.queue.popleft()
            sem.handoff = False
            self._grant(sem, WRITE, lock)
            return True
        if self.now - lock["request_ns"] >= RWSEM_WAIT_TIMEOUT_NS:
            sem.handoff = True
        return False

    def _grant_queue(self, sem):
        """The lock has no writer now: grant the queue's head in order (section 4)."""
        batch = []
        if self.sc.rwsem_steal and sem.queue and sem.queue[0][1] == WRITE:
            if sem.readers == 0 and not sem.writer:
                if sem.handoff:
                    th, _mode, qlock = sem.queue.popleft()
                    sem.handoff = False
                    self._grant(sem, WRITE, qlock)
                    self._wake_granted(th, qlock)
                else:
                    self._wake_to_try(sem)
            return
        if self.sc.rwsem_wake_all_readers and sem.queue and sem.queue[0][1] == READ:
            # Linux 5.3+: every queued reader (up to 256), past the writers, in queue order
            kept = deque()
            for item in sem.queue:
                th, qmode, qlock = item
                if qmode == READ and len(batch) < 256:
                    self._grant(sem, READ, qlock)
                    batch.append((th, qlock))
                else:
                    kept.append(item)
            sem.queue = kept
            for th, qlock in batch:
                qlock["line_n"] = sem.readers - 1
                self._wake_granted(th, qlock)
            return
        while sem.queue:
            th, qmode, qlock = sem.queue[0]
            if qmode == WRITE:
                if sem.readers == 0 and not sem.writer:
                    sem.queue.popleft()
                    self._grant(sem, WRITE, qlock)
                    self._wake_granted(th, qlock)
                break
            if sem.writer:
                break
            sem.queue.popleft()
            self._grant(sem, READ, qlock)
            batch.append(qlock)
            self._wake_granted(th, qlock)
        for qlock in batch:             # readers granted together hold the word together
            qlock["line_n"] = sem.readers - 1

    # -- page tables and page cache -------------------------------------------------------
    def _mapped(self, rec):
        """The access needs no fault: a PTE allows it (kernel model: a write needs a writable
        one)."""
        if self.eager_done[rec.vma]:
            return True
        if rec.key not in self.ptes:
            return False
        return not (self.kernel and rec.write and rec.key in self.readonly)

    def _map(self, key, readonly=False, copy=False):
        self.ptes.add(key)
        self.tlb.discard(key)              # (a PTE installed or changed: not in the TLB)
        if readonly:
            self.readonly.add(key)
        else:
            self.readonly.discard(key)
        if copy:
            self.copied.add(key)
        else:
            self.young.add(key)        # x86: an installed PTE starts young (8.2)
        vi = self._vma_of(key)
        page = self._cache_page(key, vi) if vi is not None else None
        if page is not None:
            page.unmapped_io = False

    def _maps_cache_page(self, fkey):
        """A PTE maps a page of folio ``fkey`` itself (not a private copy of it)."""
        return any(k in self.ptes and k not in self.copied for k in self._folio_keys(fkey))

    def _touch(self, rec, copied=False):
        """The access is a reference for the replacement policy (file pages only): through a
        PTE that maps the page-cache page, or (``copied``) the page a COW fault just copied."""
        if self.vmas[rec.vma].backing != "file":
            return
        if self.young_mode:
            # an access through a PTE that maps the page-cache page sets its young bit (the
            # hardware); nothing else is a reference here: mark_page_accessed is not called
            # on a page-table access, nor by do_cow_fault's copy (docs/model.md 8.2)
            if rec.key in self.ptes and rec.key not in self.copied:
                if not self.tlb_on or rec.key not in self.tlb:
                    self.young.add(rec.key)
                if self.tlb_on:
                    self.tlb.add(rec.key)
            return
        fkey = self._folio(rec.key, rec.vma)
        if fkey not in self.cache:
            return
        if rec.key in self.copied and not copied:
            return
        self._mark_accessed(fkey)

    def _mark_accessed(self, fkey):
        """A reference to resident folio ``fkey`` (mark_page_accessed, or the replacement
        policy's own reference)."""
        if self.sc.replacement == "lru":
            self.lru_order.move_to_end(fkey)
        elif self.sc.replacement == "clock":
            self.cache[fkey].ref = True
        elif self.sc.replacement == "twolist" and self.cache[fkey].batched:
            # in an LRU-add batch: the second reference flags it active, for its drain
            # (__lru_cache_activate_folio)
            page = self.cache[fkey]
            if page.act:
                if self.workingset:
                    page.ref = True
            elif page.ref:
                page.act, page.ref = True, False
                if self.workingset:
                    self.nonresident_age += page.frames
            else:
                page.ref = True
        elif self.sc.replacement == "twolist" and fkey in self.lru_order:
            # inactive: the first reference marks the folio, the second activates it
            page = self.cache[fkey]
            if page.ref:
                self._activate(fkey)
            else:
                page.ref = True
        elif self.workingset and fkey in self.active:
            # active: the mark is the young bit reclaim looks at when it ages the list (8.1)
            self.cache[fkey].ref = True

    def _activate(self, fkey):
        """Move an inactive folio to the active list, unmarked; under workingset the
        nonresident age grows by its pages (workingset_activation, move_folios_to_lru)."""
        del self.lru_order[fkey]
        self.active[fkey] = None
        page = self.cache[fkey]
        page.ref = False
        if self.workingset:
            self.nonresident_age += page.frames

    def _exec_mapped(self, fkey):
        """A PTE of an executable VMA maps a page of folio ``fkey`` itself (VM_EXEC)."""
        for key in self._folio_keys(fkey):
            if key in self.ptes and key not in self.copied \
                    and "x" in self.vmas[self._vma_of(key)].prot:
                return True
        return False

    def _insert(self, key, page):
        """A folio enters the page cache (its I/O issued): inactive, unmarked, unless its
        shadow entry says it was evicted recently (workingset_refault, docs/model.md 8.1)."""
        self.cache[key] = page
        if self.sc.replacement == "clock":
            self.ring.append(key)       # just behind the hand
            return
        eviction = self.shadows.pop(key, None)
        if eviction is not None:
            active_pages = sum(self.cache[k].frames for k in self.active)
            if self.nonresident_age - eviction <= active_pages:
                self.nonresident_age += page.frames
                self.n_refault_act += 1
                page.act = True
                if not self._batch_add(key, page):
                    self.active[key] = None
                return
        if not self._batch_add(key, page):
            self.lru_order[key] = None

    # -- the per-CPU LRU-add batches (docs/model.md 12.1) ---------------------------------
    def _batch_add(self, key, page):
        """Folio ``key`` joins the running thread's batch (True), unless there are no
        batches or no thread (False: the caller lists it).  A full batch, or a large folio,
        drains it."""
        if not self.lru_batch or self.cur_thread < 0:
            return False
        b = self.batches.setdefault(self.cur_thread, [0, []])
        b[0] += 1
        b[1].append(key)
        page.batched = True
        if b[0] >= self.lru_batch or page.frames > 1:
            self._drain(self.cur_thread)
        return True

    def _batch_count(self):
        """An anonymous folio joins the running thread's batch: a place taken."""
        if self.lru_batch and self.cur_thread >= 0:
            b = self.batches.setdefault(self.cur_thread, [0, []])
            b[0] += 1
            if b[0] >= self.lru_batch:
                self._drain(self.cur_thread)

    def _drain(self, th):
        """Thread ``th``'s batch goes onto the lists in the order it was added."""
        b = self.batches.pop(th, None)
        for key in (b[1] if b else ()):
            page = self.cache[key]
            page.batched = False
            if page.act:
                self.active[key] = None
            else:
                self.lru_order[key] = None
            page.act = False

    def _twolist_ratio(self):
        """mm/vmscan.c inactive_is_low: keep inactive * int_sqrt(10 * GiB) >= active (ratio 1
        below 1 GiB of page cache)."""
        gib = (int(self.limit) * self.page_size) >> 30
        return math.isqrt(10 * gib) if gib else 1

    @staticmethod
    def _eligible(page):
        return not page.in_flight and page.pins == 0

    def _folio_mapped(self, fkey):
        """A PTE maps a page of folio ``fkey`` itself (not a private copy of it)."""
        return any(key in self.ptes and key not in self.copied
                   for key in self._folio_keys(fkey))

    def _choose_victim(self, unmapped_only=False):
        """Section 8's victim, or None; a readahead allocation (``unmapped_only``, 11.5)
        takes none that a PTE maps: such a folio is passed over like an ineligible one."""
        if self.young_mode:
            return self._victim_young(one_pass=unmapped_only)

        def ok(key):
            return self._eligible(self.cache[key]) and not (unmapped_only and self._folio_mapped(key))

        if self.sc.replacement == "twolist":
            ratio = self._twolist_ratio()
            while len(self.lru_order) * ratio < len(self.active):
                key, _ = self.active.popitem(last=False)   # the oldest activation
                page = self.cache[key]
                if self.workingset and page.ref and self._exec_mapped(key):
                    # shrink_active_list: a referenced executable folio goes round again
                    self.active[key] = None
                    page.ref = False
                    self.nonresident_age += page.frames
                    continue
                self.lru_order[key] = None         # deactivated
                page.ref = False
            if self.workingset:
                # folio_check_references: a referenced executable folio is activated on its
                # first reference; the scan goes on past it
                for key in list(self.lru_order):
                    page = self.cache[key]
                    if not ok(key):
                        continue
                    if page.ref and self._exec_mapped(key):
                        self._activate(key)
                        continue
                    return key
                for key in self.active:
                    if ok(key):
                        return key
                return None
            for order in (self.lru_order, self.active):
                for key in order:
                    if ok(key):
                        return key
        elif self.sc.replacement in ("lru", "fifo"):
            for key in self.lru_order:
                if ok(key):
                    return key
        elif self.ring:
            for _ in range(2 * len(self.ring) + 1):
                key = self.ring[0]
                page = self.cache[key]
                if ok(key) and not page.ref:
                    return key
                if ok(key):
                    page.ref = False
                self.ring.rotate(-1)
            # no victim (nothing eligible, so no bit was cleared): the hand stays where it
            # was (2n + 1 steps went once round and one further)
            self.ring.rotate(1)
        return None

    def _referenced(self, fkey):
        """folio_referenced (docs/model.md 8.2): read and clear the young bits of the PTEs
        that map folio ``fkey`` itself; returns (the VMAs with a young PTE, whether one of
        them is executable)."""
        vmas = set()
        for key in self._folio_keys(fkey):
            if key in self.young and key in self.ptes and key not in self.copied:
                self.young.discard(key)
                vmas.add(self._vma_of(key))
        return len(vmas), any("x" in self.vmas[vi].prot for vi in vmas)

    def _victim_young(self, one_pass, budget=None):
        """twolist's victim in the kernel fault model (docs/model.md 8.2), or None.  The
        active list is aged (a folio with a young PTE of an executable VMA goes round
        again); the inactive list is scanned oldest first with folio_check_references: a
        folio with young PTEs is kept (to the newest end) or activated, the first eligible
        folio without is the victim.  A faulting allocation (``one_pass`` False) meets kept
        folios again, old now; a readahead allocation scans each folio once and then gives
        up; the former alone falls back to the oldest eligible active folio.  ``budget`` (a
        one-item list, a batch's top-up): the folios the pass may still examine, counted
        off."""
        ratio = self._twolist_ratio()
        while len(self.lru_order) * ratio < len(self.active):
            self._age(self.active.popitem(last=False)[0])   # the oldest activation
        scan = deque(self.lru_order)
        while scan:
            if budget is not None:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            key = scan.popleft()
            page = self.cache[key]
            if not self._eligible(page):
                continue
            n_vmas, exe = self._referenced(key)
            if not n_vmas:
                return key
            if not self._mark_young(key, page, n_vmas, exe) and not one_pass:
                scan.append(key)
        if one_pass:
            return None
        for key in self.active:
            if self._eligible(self.cache[key]):
                return key
        return None

    def _mark_young(self, key, page, n_vmas, exe):
        """folio_check_references on an inactive folio with young PTEs: marked, and
        activated (FOLIOREF_ACTIVATE: marked before, two VMAs, an executable one) or kept
        (FOLIOREF_KEEP: the newest end of the inactive list).  Returns whether activated."""
        referenced, page.ref = page.ref, True
        if referenced or n_vmas > 1 or exe:
            del self.lru_order[key]
            self.active[key] = None
            if self.workingset:
                self.nonresident_age += page.frames
            return True
        self.lru_order.move_to_end(key)
        return False

    def _age_all(self):
        """reclaim_ages_active (docs/model.md 8.3): the whole active list aged once, oldest
        first: referenced text goes round, any other folio is deactivated."""
        for _ in range(len(self.active)):
            self._age(self.active.popitem(last=False)[0])

    def _age(self, key):
        """shrink_active_list on a folio taken off the active list: referenced text goes
        round to its newest end, any other folio is deactivated (newest end of the inactive
        list, PG_referenced kept)."""
        n_vmas, exe = self._referenced(key)
        if n_vmas and exe:
            self.active[key] = None
            if self.workingset:
                self.nonresident_age += self.cache[key].frames
        else:
            self.lru_order[key] = None

    def _evict(self, key, cause, thread):
        self.evictions.append({"time_ns": self.now, "file": key[0],
                               "file_page": key[1], "cause": cause,
                               "thread": thread})
        page = self.cache.pop(key)
        if self.workingset and cause != BY_ADVERSARY:
            # reclaim leaves a shadow entry (workingset_eviction); fadvise's invalidation
            # does not
            self.shadows[key] = self.nonresident_age
            self.nonresident_age += page.frames
        if self.sc.replacement == "clock":
            self.ring.remove(key)       # the hand moves on if it was on this page
        elif key in self.active:
            del self.active[key]
        else:
            del self.lru_order[key]
        for k in self._folio_keys(key):   # every PTE that maps the folio (not private copies)
            if k not in self.copied:
                self.ptes.discard(k)
                self.readonly.discard(k)
                self.young.discard(k)
        self.frames_used -= page.frames
        if page.unmapped_io:
            self.counters["n_wasted_io"] += 1

    def _make_room(self, frames, evict_counter, strict, cause=BY_FAULT):
        """Evict victims until ``frames`` more fit under the limit (anonymous frames count
        under memory_bytes), and, under memory_bytes, until the reclaim freed at least
        ``reclaim_batch`` frames while victims last (docs/model.md 12).  Returns False when
        no victim is left before the frames fit (``strict``: the memory limit, where that
        is the caller's failure; else the frames go in anyway)."""
        if self.limit is None:
            return True

        def fits():
            return self.frames_used + self.anon_frames + frames <= self.limit

        if self.prio_mode and not fits():
            return self._charge_reclaim(frames, fits, evict_counter, cause)
        batch = self.sc.reclaim_batch if self.sc.memory_bytes is not None and not fits() else 0
        if batch and self.cur_thread in self.batches and \
                len(self.lru_order) + len(self.active) > self.n_foreign:
            # a reclaim that scans a list drains the thread's batch first (12.1)
            self._drain(self.cur_thread)
        if self.age_all and not fits():
            self._age_all()
        freed = 0
        top_up = None           # the batch's top-up pass over the inactive list (young bits)
        while not fits() or freed < batch:
            if self.young_mode and fits():
                # one pass over the inactive list as it is when the top-up starts: no folio
                # met twice, no active fallback
                if top_up is None:
                    top_up = [len(self.lru_order)]
                victim = self._victim_young(one_pass=True, budget=top_up)
            else:
                victim = self._choose_victim(unmapped_only=cause == BY_READAHEAD)
            if victim is None:
                if fits():
                    break
                if strict:
                    return False
                break
            freed += self._reclaim_evict(victim, evict_counter, cause)
        return True

    def _reclaim_evict(self, key, evict_counter, cause):
        """Reclaim evicts ``key`` for the running thread (the preload's for none), counted in
        ``evict_counter``.  Returns the frames freed."""
        frames = self.cache[key].frames
        self._evict(key, cause, -1 if cause == BY_PRELOAD else self.cur_thread)
        self.counters[evict_counter] += 1
        return frames

    # -- the kernel's reclaim call (docs/model.md 8.4) -------------------------------------
    def _charge_reclaim(self, frames, fits, evict_counter, cause):
        """try_charge_memcg: reclaim calls until ``frames`` fit.  Returns False when the
        charge fails: a readahead's (__GFP_NORETRY) after its second call, any other's once
        MAX_RECLAIM_RETRIES calls in a row freed nothing (or one did, for a folio of more
        than 8 pages)."""
        drained = False
        retries = MAX_RECLAIM_RETRIES
        while True:
            freed = self._reclaim_call(max(frames, self.sc.reclaim_batch), evict_counter,
                                       cause)
            if fits():
                return True
            if not drained:
                drained = True           # drain_all_stock, then one more call
                continue
            if cause == BY_READAHEAD:
                return False
            if freed and frames <= 8:
                continue
            if retries:
                retries -= 1
                continue
            return False

    def _list_sizes(self):
        """The cgroup's own entries on the inactive and the active list (the preload is
        another cgroup's, on the inactive list here, on no list of this cgroup's there)."""
        return max(0, len(self.lru_order) - self.n_foreign), len(self.active)

    def _reclaim_call(self, target, evict_counter, cause):
        """do_try_to_free_pages for the cgroup: priorities 12 down to 0; at each, the
        inactive and the active list scanned ``size >> priority`` entries (sizes as the
        priority starts) in alternate chunks of ``reclaim_batch``, the active one only when
        it may be deactivated (inactive low, refaults activated since the last call, or
        forced), until ``target`` frames are freed; a call that freed nothing runs again
        (memcg_full_walk), and then, if it skipped a deactivation, once more, forced.
        Returns the frames freed."""
        chunk = self.sc.reclaim_batch
        freed = 0
        force = full_walk = skipped = False
        while True:
            for prio in range(DEF_PRIORITY, -1, -1):
                n_in, n_act = self._list_sizes()
                may_deactivate = (force or self.n_refault_act != self.refault_snap
                                  or n_in * self._twolist_ratio() < n_act)
                n_in >>= prio
                n_act >>= prio
                while n_in or n_act:
                    if n_in:
                        k = min(n_in, chunk)
                        n_in -= k
                        freed += self._shrink_inactive(k, evict_counter, cause)
                    if n_act:
                        k = min(n_act, chunk)
                        n_act -= k
                        if may_deactivate:
                            self._shrink_active(k)
                        else:
                            skipped = True
                    if freed >= target:
                        break
                if freed >= target:
                    break
            self.refault_snap = self.n_refault_act
            if freed:
                return freed
            if not full_walk:            # memcg_full_walk: once more, as it was
                full_walk = True
                continue
            if not skipped or force:
                return freed
            force, skipped = True, False

    def _lru_drain_local(self):
        """lru_add_drain: the running thread's batch onto the lists."""
        if self.cur_thread in self.batches:
            self._drain(self.cur_thread)

    def _isolate(self, lst, k):
        """Up to ``k`` of the cgroup's entries from the oldest end of ``lst`` (the preload
        passed over)."""
        out = []
        for key in lst:
            if len(out) >= k:
                break
            if self.cache[key].pins >= 1 << 30:
                continue                 # another cgroup's (the preload)
            out.append(key)
        return out

    def _shrink_inactive(self, k, evict_counter, cause):
        """shrink_inactive_list: the local batch drained, ``k`` entries isolated from the
        inactive list's oldest end and checked in turn (folio_check_references): one not
        eligible (in flight, pinned) or with a young PTE kept (newest end; with a young PTE
        marked, and activated instead when marked before, in two VMAs or executable); one
        without the victim.  Returns the frames freed."""
        self._lru_drain_local()
        freed = 0
        for key in self._isolate(self.lru_order, min(k, self._list_sizes()[0])):
            page = self.cache[key]
            if not self._eligible(page):
                self.lru_order.move_to_end(key)
                continue
            n_vmas, exe = self._referenced(key)
            if not n_vmas:
                freed += self._reclaim_evict(key, evict_counter, cause)
                continue
            self._mark_young(key, page, n_vmas, exe)
        return freed

    def _shrink_active(self, k):
        """shrink_active_list: the local batch drained, ``k`` entries isolated from the
        active list's oldest end: one with a young PTE of an executable VMA goes round to
        the newest end, any other is deactivated (newest end of the inactive list, its mark
        kept)."""
        self._lru_drain_local()
        for key in list(itertools.islice(self.active, k)):
            del self.active[key]
            self._age(key)

    def _allocate(self, key, evict_counter, cause=BY_FAULT):
        """Take the frames of folio ``key`` (evicting victims while the limit is passed) and
        insert it; raises _Oom when the memory limit leaves no victim."""
        frames = self._folio_frames(key)
        if not self._make_room(frames, evict_counter, strict=self.sc.memory_bytes is not None,
                               cause=cause):
            raise _Oom()
        page = _Page(in_flight=True, frames=frames)
        self.frames_used += frames
        self._insert(key, page)
        return page

    def _issue_io(self, key):
        page = self._allocate(key, evict_counter="n_evictions")
        self.counters["n_io"] += 1
        self.counters["n_read_pages"] += page.frames
        done = self.now + self._draw(STREAM_IO, self.io_table)
        self._push(done, EV_IO, self._io_id(key))
        self.io_done = done
        return page

    # -- readahead (docs/model.md 11.5) ---------------------------------------------------
    def _ra_state(self, rec):
        return self.ra.setdefault((rec.asid, self.vma_file[rec.vma]), [0, 0, 0, 0])

    def _readahead_on(self, rec):
        return self.sc.ra_pages > 0 and self.vmas[rec.vma].madvise != "random"

    def _read_window(self, f, lo, hi, mark):
        """Allocate the folios of file ``f`` holding pages [lo, hi) (clipped to the file) that
        are not in the page cache, ascending, until one finds no frame; the one holding page
        ``mark`` is marked.  Returns the new folios' keys (not yet issued)."""
        n = self.files[f][1]
        lo, hi = max(lo, 0), min(hi, n)
        got = []
        o = lo
        while o < hi:
            key = (f, self._span(f, o)[0])
            o = key[1] + self._span(*key)[1]
            if key in self.cache:
                continue
            frames = self._folio_frames(key)
            if not self._make_room(frames, "n_evictions", strict=True, cause=BY_READAHEAD):
                break                      # readahead never reclaims hard nor OOMs
            page = _Page(in_flight=True, frames=frames)
            page.ra_mark = mark < n and self._in_folio(key, mark)
            self.frames_used += frames
            self._insert(key, page)
            got.append(key)
        return got

    def _read_call(self, f, lo, hi, a, b, prev, stream=-1, pos_end=-1):
        """A read() call returned before this record (docs/model.md 11.7): the missing folios
        of its window [lo, hi) come in as a readahead's, resident at once; then those of the
        pages it copies, [a, b), charged as a fault's folio is (_Oom when nothing can be
        evicted), each marked accessed, the first not when it holds page ``prev``.  A call
        of a stream (``stream`` >= 0) has its windows decided now (11.7.1)."""
        if stream >= 0:
            return self._read_call_stream(f, a, b, prev, stream, pos_end)
        pages = self._ra_read(f, lo, hi, -1) if lo < hi else 0
        o, first = a, True
        while o < b:
            key = (f, self._span(f, o)[0])
            o = key[1] + self._span(*key)[1]
            if key not in self.cache:
                # its synchronous readahead first (one folio, __GFP_NORETRY), then alone
                pages += self._ra_read(f, key[1], key[1] + 1, -1)
            if key not in self.cache:
                pages += self._read_alone(key)
            if not (first and prev >= 0 and self._in_folio(key, prev)):
                self._mark_accessed(key)
            first = False
        self._count_read(pages)

    def _read_alone(self, key):
        """A read() call reads folio ``key`` alone, charged as a fault's (_Oom when nothing
        can be evicted); its pages."""
        page = self._allocate(key, evict_counter="n_evictions", cause=BY_READ)
        page.in_flight = page.unmapped_io = False
        page.ra_mark = False
        return page.frames

    def _count_read(self, pages):
        if pages:
            self.counters["n_io"] += 1
            self.counters["n_read_pages"] += pages

    # -- read() streams (docs/model.md 11.7.1) --------------------------------------------
    def _ra_read(self, f, lo, hi, mark):
        """A window a read() call reads: resident when the call returns; its pages."""
        pages = 0
        for key in self._read_window(f, lo, hi, mark):
            page = self.cache[key]
            page.in_flight = page.unmapped_io = False
            pages += page.frames
        return pages

    def _cached(self, f, o):
        return (f, self._span(f, o)[0]) in self.cache

    @staticmethod
    def _init_ra_size(req, most):
        new = 1 << max(0, req - 1).bit_length()
        return 4 * new if new <= most // 32 else 2 * new if new <= most // 4 else most

    @staticmethod
    def _next_ra_size(cur, most):
        return 4 * cur if cur < most // 16 else 2 * cur if cur <= most // 2 else most

    def _stream_sync(self, f, st, index, req):
        """page_cache_sync_ra for a read of ``req`` pages from missing page ``index``;
        ``st`` = [start, size, async size, prev_pos page (-1 none)]."""
        ra = self.sc.ra_pages
        if not ra:
            return self._ra_read(f, index, index + 1, -1)
        most = max(ra, req)
        if index == 0 or req > ra or (st[3] >= 0 and 0 <= index - st[3] <= 1):
            size = self._init_ra_size(req, most)
            st[0], st[1], st[2] = index, size, size - req if size > req else size >> 1
        else:
            j = index - 1
            while index - 1 - j < most and j >= 0 and self._cached(f, j):
                j -= 1
            contig = index - j - 1
            if contig <= req:               # a small random read, as is
                return self._ra_read(f, index, index + req, -1)
            if j < 0:
                contig *= 2
            st[0], st[1], st[2] = index, min(contig + req, most), 1
        return self._ra_read(f, st[0], st[0] + st[1], st[0] + st[1] - st[2])

    def _stream_async(self, f, st, index, req):
        """page_cache_async_ra: the read met the mark on page ``index``."""
        ra = self.sc.ra_pages
        if not ra:
            return 0
        most = max(ra, req)
        if index == st[0] + st[1] - st[2]:
            st[0], st[1] = st[0] + st[1], self._next_ra_size(st[1], most)
        else:
            n = self.files[f][1]
            s = index + 1
            while s < n and s - index <= most and self._cached(f, s):
                s += 1
            if s - index > most or s >= n:
                return 0
            st[0], st[1] = s, self._next_ra_size(s - index + req, most)
        st[2] = st[1]
        return self._ra_read(f, st[0], st[0] + st[1], st[0])

    def _read_call_stream(self, f, a, b, prev, stream, pos_end):
        st = self.rstreams.setdefault((f, stream), [0, 0, 0, -1])
        pages = 0
        last = None
        for o in range(a, b):
            key = (f, self._span(f, o)[0])
            if key not in self.cache:
                pages += self._stream_sync(f, st, o, b - o)
            if key not in self.cache:
                pages += self._read_alone(key)
            page = self.cache[key]
            if page.ra_mark:
                page.ra_mark = False
                page.pins += 1               # (held by the call meanwhile)
                pages += self._stream_async(f, st, o, b - o)
                page.pins -= 1
            if key != last:
                if not (last is None and prev >= 0 and self._in_folio(key, prev)):
                    self._mark_accessed(key)
                last = key
        st[3] = pos_end
        self._count_read(pages)

    def _issue_window(self, keys, done):
        for key in keys:
            self._push(done, EV_IO, self._io_id(key))
            pages = self.cache[key].frames
            self.counters["n_read_pages"] += pages
            self.counters["n_readahead_pages"] += pages

    def _sync_readahead(self, rec, fkey, page):
        """A miss: the read-around (or sequential) window joins the faulting folio's I/O."""
        if not self._readahead_on(rec):
            return
        R = self.sc.ra_pages
        st = self._ra_state(rec)
        o = self._file_page(rec.key, rec.vma)
        f = fkey[0]
        n = self.files[f][1]
        if self.vmas[rec.vma].madvise == "sequential":
            st[0:3] = [o, 2 * R, R]
        else:
            st[3] = min(st[3] + 1, 1000)
            if st[3] > 100:                # MMAP_LOTSAMISS: the faulting folio alone
                return
            vma = self.vmas[rec.vma]
            if "x" in vma.prot:
                # VM_EXEC: forward from the fault to the VMA's end, no async part
                vma_end = vma.offset // self.page_size + ((vma.end - vma.start) >> self.shift)
                end = min(o + R, vma_end)
                st[0:3] = [o, end - o, 0]
            else:
                st[0:3] = [max(0, o - R // 2), R, R // 4]
        mark = st[0] + st[1] - st[2]
        if mark < n and self._in_folio(fkey, mark):
            page.ra_mark = True
        self._issue_window(self._read_window(f, st[0], st[0] + st[1], mark), self.io_done)

    def _async_readahead(self, rec, fkey, page, k):
        """A lookup from user space found the page resident: one miss less; a marked folio
        starts the next window (one I/O request, nobody waits for it).  Returns whether it
        did."""
        if not self._readahead_on(rec) or k != 0:
            return False
        st = self._ra_state(rec)
        st[3] = max(0, st[3] - 1)
        if not page.ra_mark:
            return False
        page.ra_mark = False
        R = self.sc.ra_pages
        M = 2 * R if self.vmas[rec.vma].madvise == "sequential" else R
        o = self._file_page(rec.key, rec.vma)
        if self._in_folio(fkey, st[0] + st[1] - st[2]):
            size = st[1]
            nxt = 4 * size if 16 * size < M else 2 * size if 2 * size <= M else M
            st[0:3] = [st[0] + size, nxt, nxt]
        else:
            st[0:3] = [o + 1, M, M]
        keys = self._read_window(fkey[0], st[0], st[0] + st[1], st[0])
        if keys:
            self.counters["n_io"] += 1
            self._issue_window(keys, self.now + self._draw(STREAM_IO, self.io_table))
        return True

    def _io_id(self, key):
        if key not in self.io_ids:
            self.io_ids[key] = len(self.io_ids)
            self.io_key_of.append(key)
        return self.io_ids[key]

    def _charge_tables(self, keys):
        """Under memory_bytes, the page tables that the PTEs of ``keys`` need and no PTE
        needed before take a frame each (docs/model.md 12): a table of 512 entries at each
        level (PTE: 512 pages, PMD: 512 PTE tables, PUD: 512 PMD tables); raises _Oom when
        no folio can be evicted for them."""
        if self.sc.memory_bytes is None:
            return
        new = {(asid, level, vpn >> (9 * (level + 1)))
               for asid, vpn in keys for level in range(3)} - self.tables
        if not new:
            return
        self.tables |= new
        if not self._make_room(len(new), "n_evictions", strict=True):
            raise _Oom()
        self.anon_frames += len(new)

    def _charge(self, rec, case):
        """Under memory_bytes, the page's tables first, then an anonymous page or a private
        copy takes a frame at its install (once a page); raises _Oom when no folio can be
        evicted for it."""
        self._charge_tables([rec.key])
        if self.sc.memory_bytes is None or rec.key in self.charged:
            return
        backing = self.vmas[rec.vma].backing
        if case in ("anon", "copy", "cow") or (case is None and backing == "anon"):
            if not self._make_room(1, "n_evictions", strict=True):
                raise _Oom()
            self.charged.add(rec.key)
            self.anon_frames += 1
            self._batch_count()

    def _io_completes(self, key):
        page = self.cache[key]
        page.in_flight = False
        for th, lock_dropped in page.waiters:
            if lock_dropped:
                page.pins -= 1
            th.waiting_on = None
            self._resume_at(th, self._io_woken_at(th, self.now), "wake")
        page.waiters = []

    def _fault_around(self, rec):
        """Map the window's other pages whose PTE is none and whose folio is resident, not in
        flight and not marked for readahead (docs/model.md 8, 11.3); returns how many (none
        when ``_around_skipped``)."""
        if self._around_skipped(rec):
            return 0

        def mappable():
            for vpn in self._window(rec):
                key = (rec.asid, vpn)
                if vpn == rec.vpn or key in self.ptes:
                    continue
                page = self.cache.get(self._folio(key, rec.vma))
                if page is not None and not page.in_flight and not page.ra_mark:
                    yield key

        self._charge_tables(list(mappable()))   # their page tables first (section 12)
        n = 0
        for key in list(mappable()):
            self._map(key, readonly=self.kernel)
            n += 1
        st = self._ra_state(rec)
        st[3] = max(0, st[3] - n)          # filemap_map_pages: mmap_miss down a page mapped
        return n

    # -- adversary and signals ------------------------------------------------------------
    def _next_time(self, schedule, last, count, stream, first):
        """Next event time of a schedule, or None; ``count`` = events generated so far."""
        if schedule.kind == "times":
            return schedule.times_ns[count] if count < len(schedule.times_ns) else None
        base = int(schedule.start_ns) if first else last
        if schedule.kind == "periodic":
            return base + int(schedule.period_ns)
        if schedule.rate_hz not in self.exp_tables:
            self.exp_tables[schedule.rate_hz] = Exponential(1e9 / schedule.rate_hz).table()
        return base + self._draw(stream, self.exp_tables[schedule.rate_hz])

    def _schedule_next_adversary(self, first=False):
        adv = self.sc.adversary
        if adv is None:
            return
        if first:
            self.adv_count, self.adv_last = 0, 0
            self.adv_vma = self.sc.adversary_vma(self.vmas)
        t = self._next_time(adv, self.adv_last, self.adv_count, STREAM_ADVERSARY, first)
        self.adv_count += 1
        if t is not None and t <= self.horizon:
            self.adv_last = t
            self._push(t, EV_ADVERSARY, 0)

    def _adversary_call(self):
        adv = self.sc.adversary
        vma = self.vmas[self.adv_vma]
        first = (vma.start >> self.shift) + int(adv.first_page)
        last = (vma.end >> self.shift) if adv.n_pages is None else first + int(adv.n_pages)
        last = min(last, vma.end >> self.shift)
        # the folios of the range's file that lie wholly in it (docs/model.md 11.4)
        f = self.vma_file[self.adv_vma]
        n = self.files[f][1]
        o0 = self._file_page((vma.asid, first), self.adv_vma)
        o1 = min(n, o0 + last - first)
        for th in sorted(self.batches):    # lru_add_drain_all, in thread order (12.1)
            self._drain(th)
        for key in [k for k in self.shadows if k[0] == f and o0 <= k[1]
                    and min(k[1] + self._span(*k)[1], n) <= o1]:
            del self.shadows[key]          # invalidation clears shadow entries too (8.1)
        for key in [k for k in self.cache if k[0] == f and o0 <= k[1]
                    and min(k[1] + self._span(*k)[1], n) <= o1]:
            page = self.cache[key]
            if self._eligible(page) and not self._maps_cache_page(key):
                self._evict(key, BY_ADVERSARY, -1)
                self.counters["n_adversary_evictions"] += 1
        self._schedule_next_adversary()

    def _schedule_next_signal(self, th, first=False):
        s = th.schedule
        if s is None:
            return
        if first:
            th.sched_count, th.sched_last = 0, 0
        t = self._next_time(s, th.sched_last, th.sched_count, STREAM_SIGNAL0 + th.index, first)
        th.sched_count += 1
        if t is not None and t <= self.horizon:
            th.sched_last = t
            self._push(t, EV_SIGNAL, th.index)

    def _signal_arrives(self, th):
        if not th.alive:
            return                      # arrivals stop once the thread has ended
        sig = {"thread": th.index, "arrival_ns": self.now, "delivery_ns": -1,
               "fatal": int(bool(th.schedule.fatal)), "aborted_wait": 0}
        self.signals.append(sig)
        th.pending.append(sig)
        self._schedule_next_signal(th)
        if th.interruptible:
            th.interruptible = False
            sig["aborted_wait"] = 1
            if th.waiting_on is not None:
                page = self.cache[th.waiting_on]
                page.waiters = [w for w in page.waiters if w[0] is not th]
                th.waiting_on = None
            self._resume_at(th, self.now, "abort")

    def _deliver(self, th):
        """Deliver pending signals one by one; returns False if a fatal one killed the thread."""
        while th.pending:
            sig = th.pending.popleft()
            sig["delivery_ns"] = self.now
            if sig["fatal"]:
                self._end_thread(th, T_KILLED)
                return False
            yield ("sleep", self.costs.signal_ns, "signal")
        return True

    def _end_thread(self, th, state):
        th.charge_to(th.cat, self.now)
        th.settle_attempt(self.now, "done")
        th.alive = False
        th.state = state
        th.end_ns = self.now
        th.pending.clear()              # dropped: never delivered
        self.n_alive -= 1

    # -- a thread -------------------------------------------------------------------------
    def _thread_main(self, th):
        for vi in th.eager_vmas:
            yield from self._eager_map(th, vi)
            # the mapping's end is a step of its own (the engine's PH_REC_END after the
            # release, docs/model.md section 2): the steps of lower threads at this instant
            # come first, such as a writer its release woke to take the lock (rwsem_steal)
            yield ("sleep", 0, "compute")
            if not (yield from self._deliver(th)):
                return
        for rec in th.records:
            if rec.index in self.unmaps_at or rec.index in self.reads_at:
                # the step that begins the record applies them (docs/model.md 11.9): a step
                # of its own, after the steps of lower threads at this instant (section 2),
                # such as readers a release of this thread's granted just now
                yield ("sleep", 0, "compute")
            for asid, vs, ve, to in self.unmaps_at.get(rec.index, ()):
                self._drain(th.index)      # (unmap_region's lru_add_drain: 12.1)
                self._unmap(asid, vs, ve, to)
            for op in self.reads_at.get(rec.index, ()):
                self._read_call(*op)
            yield ("sleep", rec.gap, "compute")
            if rec.op == Op.LOCK_W:
                yield from self._lock_w(th, rec)
                self.counters["n_lock_w"] += 1
            elif rec.op == Op.LOCK_R:
                yield from self._lock_r(th, rec)
            else:
                if not (yield from self._access(th, rec)):
                    return
                self.counters["n_accesses"] += 1
            th.records_done += 1
            if not (yield from self._deliver(th)):
                return
        self._end_thread(th, T_DONE)

    def _unmap(self, asid, vs, ve, to=-1):
        """A mapping ends (docs/model.md 11.9): the PTEs of pages ``[vs, ve)`` of ``asid`` go
        (file pages stay in the page cache, unmapped); anonymous pages and private copies give
        their frame back; page tables stay charged.  A move (``to``: the destination's first
        page) first unmaps the destination, then hands each page's PTE state and frame to the
        page at the same offset from ``to``."""
        if to >= 0:
            self._unmap(asid, to, to + ve - vs)

        def inside(key):
            return key[0] == asid and vs <= key[1] < ve

        state = (self.ptes, self.readonly, self.copied, self.young)
        for key in [k for k in self.ptes | self.copied if inside(k)]:
            self.tlb.discard(key)          # (mremap flushes the old range)
            self.tlb.discard((asid, key[1] - vs + to))
            for s in state:
                if key in s:
                    s.discard(key)
                    if to >= 0:
                        s.add((asid, key[1] - vs + to))
        for key in [k for k in self.charged if inside(k)]:
            self.charged.discard(key)
            if to >= 0:
                self.charged.add((asid, key[1] - vs + to))
            else:
                self.anon_frames -= 1

    def _eager_map(self, th, vi):
        vma = self.vmas[vi]
        lock = self._lock_record(th, vma.asid, WRITE, LOCK_REMAP)
        yield ("lock", vma.asid, WRITE, lock)
        yield from self._write_lock_vmas(th, vma.asid, [vi])
        pages = (vma.end - vma.start) // self.page_size
        yield ("sleep", self.costs.remap_fixed_ns + pages * self.costs.pte_ns, "lock_hold")
        vs, ve = vma.start >> self.shift, vma.end >> self.shift
        # (a page of the span in each of its PTE tables: their PMD and PUD tables are all
        # the span's)
        self._charge_tables([(vma.asid, max(vs, r << 9))
                             for r in range(vs >> 9, ((ve - 1) >> 9) + 1)])
        self.eager_done[vi] = True
        self._write_unlock_vmas(vma.asid, [vi])
        self._release(vma.asid, WRITE, lock)

    def _lock_w(self, th, rec):
        """A writer (docs/model.md 15.2).  Its call (15.12) gives its hold (``mmap_cs_ns``
        when the trace does not name it) and, for a ``spf_count="change"`` VMA, where its
        change is: at the release for an mmap (its merge comes after the gap search) and a
        growing brk, at the grant for the others."""
        c = self.costs
        hold = {Call.MMAP: c.hold_mmap_ns, Call.MUNMAP: c.hold_munmap_ns,
                Call.MPROTECT: c.hold_mprotect_ns, Call.MREMAP: c.hold_mremap_ns,
                Call.BRK: c.hold_brk_ns}.get(rec.call, c.mmap_cs_ns)
        late = rec.call in (Call.MMAP, Call.BRK)
        # an munmap holds for write up to its downgrade, then for read (15.13)
        write = min(c.munmap_write_ns, hold) if rec.call == Call.MUNMAP else hold
        lock = self._lock_record(th, rec.asid, WRITE, LOCK_RECORD)
        yield ("lock", rec.asid, WRITE, lock)
        vis = self._vmas_in_range(rec.asid, rec.addr, rec.size)
        yield from self._write_lock_vmas(th, rec.asid, vis, late)
        yield ("sleep", write, "lock_hold")
        self._write_unlock_vmas(rec.asid, vis, late)
        if write < hold:
            self._downgrade(rec.asid, lock)
            yield ("sleep", hold - write, "lock_hold")
            self._release(rec.asid, READ, lock)
        else:
            self._release(rec.asid, WRITE, lock)

    def _lock_r(self, th, rec):
        """A reader of mmap_sem that is not a fault (docs/model.md 15.9): mmap_sem itself under
        every design, FIFO with faults and writers; its hold is the record's size (ns), or
        ``mmap_read_cs_ns`` for size 0; the word's line is paid at the grant (with the hold)
        and at the release (a segment of its own when nonzero), as a fault's are."""
        c = self.costs
        lock = self._lock_record(th, rec.asid, READ, LOCK_READER)
        self.lock_counters["n_mmap_lock_read_other"] += 1
        yield ("lock", rec.asid, READ, lock)
        hold = rec.size or c.mmap_read_cs_ns
        yield ("sleep", hold + c.mmap_lock_line_ns * c.mmap_lock_acquire_lines * lock["line_n"],
               "lock_hold")
        yield from self._pay(c.mmap_lock_line_ns * c.mmap_lock_release_lines
                             * (self._sem(rec.asid).readers - 1), "lock_hold")
        self._release(rec.asid, READ, lock)

    # -- VMA locks and sequence counts (docs/model.md section 15) --------------------------
    def _vmas_in_range(self, asid, addr, size):
        """The VMAs of ``asid`` that ``[addr, addr + size)`` overlaps (size 0: all of them)."""
        return [i for i, v in enumerate(self.vmas)
                if v.asid == asid and (size == 0 or (v.start < addr + size and addr < v.end))]

    def _write_lock_vmas(self, th, asid, vis, late=False):
        """At the writer's grant: mark its VMAs write-locked, bump the sequence counts, then
        wait until the VMA readers already inside have left (``vma_start_write``).  A VMA whose
        policy has ``spf_count="change"`` has its count changed once, never odd
        (docs/model.md 15.4): here, or at the release for a ``late`` writer (15.12); else
        it is odd until the release."""
        self.mm_seq[asid] = self.mm_seq.get(asid, 0) + 1
        busy = set()
        for vi in vis:
            self.vma_wlocked[vi] = True
            self.vma_ops[vi] += 1
            if self.vma_policies[vi].spf_count == "hold":
                self.vma_seq[vi] += 1
            elif not late:
                self.vma_seq[vi] += 2
            if self.vma_readers[vi] > 0:
                busy.add(vi)
        if busy:
            th.drain = busy
            for vi in busy:
                self.drain_waiters.setdefault(vi, []).append(th)
            g = self.now
            yield ("drain",)
            self.vma_write_wait_ns += self.now - g

    def _write_unlock_vmas(self, asid, vis, late=False):
        self.mm_seq[asid] += 1
        for vi in vis:
            self.vma_wlocked[vi] = False
            self.vma_ops[vi] += 1
            if self.vma_policies[vi].spf_count == "hold" or late:
                self.vma_seq[vi] += 1 if self.vma_policies[vi].spf_count == "hold" else 2

    def _attempt_row(self, th, vi, kind, t_req, t_acq, outcome):
        """Record a VMA lock or speculative attempt (docs/model.md 15.6); returns the row."""
        row = {"thread": th.index, "vma": vi, "lock": kind, "request_ns": t_req,
               "acquire_ns": t_acq, "release_ns": -1, "outcome": outcome}
        self.vma_locks.append(row)
        return row

    def _vma_read_release(self, th, vi, row):
        self.vma_readers[vi] -= 1
        self.vma_ops[vi] += 1
        row["release_ns"] = self.now
        if self.vma_readers[vi] == 0:
            for w in self.drain_waiters.pop(vi, []):
                w.drain.discard(vi)
                if not w.drain:
                    self._resume_at(w, self._woken_at(), None)

    def _seq(self, pol, asid, vi):
        return self.mm_seq.get(asid, 0) if pol.spf_scope == "mm" else self.vma_seq[vi]

    def _pay(self, dt, category="att_cpu"):
        """A cost of docs/model.md 15.1 (lookup, lock-word line): a CPU segment of its own,
        taken only when nonzero so that runs without these costs keep their events."""
        if dt > 0:
            yield ("sleep", dt, category)

    def _release_fault_lock(self, th, rec, lock):
        """Release what the attempt holds: ``mmap_sem`` (a lock record), a VMA read lock (a
        VMA lock row) or nothing (a speculative attempt).  The release takes effect after its
        line cost: ``line_ns`` times the lines a release writes times the other holders of the
        word when it begins."""
        if lock is None:
            return
        c = self.costs
        if lock.get("lock") == VLK_SEQ:     # a validated speculative attempt ends
            lock["release_ns"] = self.now
            return
        if "vma" in lock:
            vi = lock["vma"]
            others = self.vma_readers[vi] - 1 + int(self.vma_wlocked[vi])
            # the handler's re-read of fields beside the word: a transfer a line if another
            # thread acquired or released the word since this attempt's grant
            reread = (c.vma_lock_reread_lines * c.line_miss_ns
                      if self.vma_ops[vi] != th.vl_ops0 else 0)
            yield from self._pay(c.vma_lock_line_ns * c.vma_lock_release_lines * others
                                 + reread)
            self._vma_read_release(th, vi, lock)
        else:
            yield from self._pay(c.mmap_lock_line_ns * c.mmap_lock_release_lines
                                 * (self._sem(rec.asid).readers - 1))
            self._release(rec.asid, READ, lock)

    def _access(self, th, rec):
        """An access record; returns False if the thread died during it."""
        if self._mapped(rec):
            self._touch(rec)
            yield ("sleep", self.costs.access_ns, "hit")
            return True
        fault = {"thread": th.index, "tid": th.tid, "asid": rec.asid, "vpn": rec.vpn,
                 "vma": rec.vma, "start_ns": self.now, "end_ns": -1, "attempts": 0, "major": 0,
                 "lock_wait_ns": 0, "io_wait_ns": 0, "outcome": UNFINISHED,
                 "retries": 0, "lock_since": None, "wait_since": None, "cow_lookup": False}
        self.faults.append(fault)
        th.fault = fault
        self.n_in_fault += 1
        pol = self.vma_policies[rec.vma]
        k = 0                           # the attempt's index in the kernel
        how_lock = self._first_lock(pol, rec)   # what the attempt takes (docs/model.md 15)
        while True:
            how = yield from self._attempt(th, fault, rec, k, how_lock)
            if how == _COMPLETED:
                break
            if how == _DEAD:
                return False
            if how == _FALLBACK:
                how_lock = "mmap"
                continue
            if how == _SPF_FALLBACK:
                how_lock, k = "mmap", 0
                continue
            if how == _RETRY_IN_KERNEL:
                k += 1
                how_lock = pol.retry_lock if self._first_lock(pol, rec) == "vma" else "mmap"
                continue
            if how == _RETRY_FIRST:
                how_lock = "mmap"
                continue
            # Back to user space: signals are delivered, then the access executes again.
            if not (yield from self._deliver(th)):
                fault["outcome"], fault["end_ns"] = KILLED, self.now
                self.n_in_fault -= 1
                return False
            if self._mapped(rec):
                break
            k, how_lock = 0, self._first_lock(pol, rec)
        fault["outcome"], fault["end_ns"] = DONE, self.now
        self.n_in_fault -= 1
        th.fault = None
        self._touch(rec, copied=fault["cow_lookup"])
        yield ("sleep", self.costs.access_ns, "hit")
        return True

    def _handler_extra(self, backing, pol):
        c = self.costs
        if backing == "file":
            return c.struct_page_ns
        if backing == "anon":
            return c.struct_page_ns + c.zero_fill_ns
        if backing == "iomem":
            return c.driver_ns
        return c.driver_ns + (c.struct_page_ns if pol.needs_struct_page else 0)

    def _kernel_case(self, rec, vma):
        """Kernel model, anon and file VMAs: (handler ``extra``, what the lookup does) for the
        access and the PTE's state at the grant (docs/model.md 11.2).  Lookups: "zero" (map
        the zero page), "anon" (a writable page), "copy" (a private copy of the mapped file
        page), "mkwrite" (make the shared file page writable), "read" (fault-around and
        page-cache lookup), "cow" / "shared" (page-cache lookup, then a private copy / the
        page writable).  A PTE another thread installed meanwhile changes nothing but the
        case: its work is done in full, as in the page model."""
        c = self.costs
        sp = c.struct_page_ns
        present = rec.key in self.ptes
        if vma.backing == "anon":
            if vma.private and not rec.write:
                return 0, "zero"
            return sp + c.zero_fill_ns, "anon"
        if not rec.write:
            return sp, "read"
        if vma.private:
            return (sp + c.copy_page_ns, "copy") if present else (2 * sp + c.copy_page_ns, "cow")
        return (0, "mkwrite") if present else (sp, "shared")

    def _install(self, rec, case):
        """Install the PTE a kernel-model fault of ``case`` leaves (page model: the PTE)."""
        if case is None:
            self._map(rec.key)
        elif case in ("read", "zero"):
            # (never makes a writable PTE, installed meanwhile, read-only again)
            self._map(rec.key, readonly=rec.key not in self.ptes or rec.key in self.readonly)
        elif case in ("copy", "cow"):
            self._map(rec.key, copy=True)
        else:
            self._map(rec.key)

    def _attempt(self, th, fault, rec, k, how_lock="mmap"):
        """Attempt ``k`` (index in the kernel) of a fault: docs/model.md sections 5 and 11
        (``how_lock``: ``mmap``, ``vma`` or ``speculative``)."""
        c = self.costs
        vma, pol = self.vmas[rec.vma], self.vma_policies[rec.vma]
        backing = vma.backing
        lc = self.lock_counters

        # 1. The lock: mmap_sem for read, the VMA's read lock, or none (speculative).
        seq0 = None
        acquire_cost = 0                # the lock word's line at the grant (docs/model.md 15.1)
        if how_lock != "mmap":
            # the RCU walk of the VMA tree (its CPU joins the attempt that follows, also a
            # fallback's mmap_sem attempt)
            t_req = self.now
            yield from self._pay(c.vma_lookup_ns)
            kind = VLK_VMA if how_lock == "vma" else VLK_SEQ
            no_anon_vma = pol.anon_vma_fallback and self._needs_anon_vma(rec, vma)
            if backing not in pol.vma_lock_backings or (how_lock == "vma"
                                                        and self.vma_wlocked[rec.vma]) or (
                    no_anon_vma):
                lc["n_vma_lock_fallbacks"] += 1
                if backing in pol.vma_lock_backings and no_anon_vma and not rec.kernel:
                    lc["n_anon_vma_fallbacks"] += 1
                self._attempt_row(th, rec.vma, kind, t_req, -1, FALLBACK)
                return _FALLBACK
            if how_lock == "vma":
                others = self.vma_readers[rec.vma]
                self.vma_readers[rec.vma] += 1
                self.vma_ops[rec.vma] += 1
                th.vl_ops0 = self.vma_ops[rec.vma]
                lc["n_vma_lock_read"] += 1
                lock = self._attempt_row(th, rec.vma, kind, t_req, self.now, HELD)
                acquire_cost = c.vma_lock_line_ns * c.vma_lock_acquire_lines * others
            else:
                seq0 = self._seq(pol, rec.asid, rec.vma)
                if seq0 % 2 == 1:       # a writer is inside: abort before the handler
                    # counted with its row, as it aborts (docs/model.md 15.6: every count is
                    # a row), also when the horizon comes before the line cost is paid
                    self._attempt_row(th, rec.vma, kind, t_req, -1, ABORT)
                    lc["n_spf_aborts"] += 1
                    lc["n_vma_lock_fallbacks"] += 1
                    # (reading the count a writer holds costs its line)
                    yield from self._pay(c.vma_lock_line_ns)
                    return _SPF_FALLBACK
                lock = self._attempt_row(th, rec.vma, kind, t_req, self.now, HELD)
            fault["attempts"] += 1
        else:
            fault["attempts"] += 1
            lock = self._lock_record(th, rec.asid, READ, LOCK_FAULT)
            lc["n_mmap_lock_read"] += 1
            if rec.kernel:
                lc["n_mmap_lock_read_kernel"] += 1
            fault["lock_since"] = self.now
            yield ("lock", rec.asid, READ, lock)
            fault["lock_wait_ns"] += self.now - fault["lock_since"]
            fault["lock_since"] = None
            acquire_cost = c.mmap_lock_line_ns * c.mmap_lock_acquire_lines * lock["line_n"]

        # 2. Handler CPU (kernel model: by the access and the PTE's state at the grant), after
        # the acquisition's line cost (one CPU segment with it).
        case = None
        if self.kernel and not pol.eager and backing in ("anon", "file"):
            extra, case = self._kernel_case(rec, vma)
        else:
            extra = self._handler_extra(backing, pol)
        yield ("sleep", acquire_cost + c.fault_shared_ns * (self.n_in_fault - 1) + c.fault_ns
               + extra, "att_cpu")
        h = self.now
        if self._needs_anon_vma(rec, vma):
            self.anon_vma.add(rec.vma)      # (made by this attempt, under whichever lock)
        if case in ("copy", "mkwrite") and rec.key not in self.ptes:
            case = "cow" if case == "copy" else "shared"   # evicted since the grant: look it up

        # 2b. A speculative attempt never waits and validates its sequence count at h.
        if how_lock == "speculative":
            page = self._cache_page(rec.key, rec.vma)
            needs_wait = ((backing == "file" and case not in ("copy", "mkwrite")
                           and (page is None or page.in_flight))
                          or (backing == "context"
                              and not self.context_ready_at.get(rec.key, h + 1) <= h))
            seq1 = None if needs_wait else self._seq(pol, rec.asid, rec.vma)
            if needs_wait or seq1 != seq0:
                # counted with its outcome (docs/model.md 15.6); the attempt ends (release_ns)
                # once the re-read's line is paid: never, when the horizon comes first
                lock["outcome"] = FALLBACK if needs_wait else ABORT
                lc["n_vma_lock_fallbacks"] += 1
                if not needs_wait:
                    lc["n_spf_aborts"] += 1
                    if seq1 % 2 == 1:   # the re-read of a count a writer holds
                        yield from self._pay(c.vma_lock_line_ns)
                lock["release_ns"] = self.now
                th.settle_attempt(self.now, "retry")   # its CPU is wasted
                return _SPF_FALLBACK

        # 3. Lookup.
        att_major = False               # this attempt issued a read or began a context wait
        if backing == "iomem" and pol.needs_struct_page:
            yield from self._release_fault_lock(th, rec, lock)
            fault["outcome"], fault["end_ns"] = SIGBUS, self.now
            self.n_in_fault -= 1
            th.fault = None
            self._end_thread(th, T_SIGBUS)
            return _DEAD
        if case in ("zero", "anon", "copy", "mkwrite"):
            self._charge(rec, case)
            self._install(rec, case)
            return (yield from self._complete_attempt(th, rec, lock))
        if pol.eager or backing in ("anon", "device", "iomem"):
            self._charge(rec, case)
            self._map(rec.key)
            return (yield from self._complete_attempt(th, rec, lock))
        if backing == "context" and self.context_ready_at.get(rec.key, h + 1) <= h:
            self._charge(rec, case)
            self._map(rec.key)
            return (yield from self._complete_attempt(th, rec, lock))

        page = None
        if backing == "file":
            fkey = self._folio(rec.key, rec.vma)
            page = self.cache.get(fkey)
            # write faults get no fault-around; a window of the page alone maps nothing; the
            # kernel model has none with fault_around_pages 1 (finish_fault() only)
            F = int(self.sc.fault_around_pages)
            around = (case is None or (case == "read" and F > 1)) and len(self._window(rec)) > 1
            finish = case == "read" and F == 1
            if case == "read" and around and (page is None or page.in_flight or page.ra_mark):
                # kernel model: the resident neighbours are mapped before the faulting page's
                # own lookup (do_fault_around runs before ->fault)
                yield ("sleep", self._fault_around(rec) * c.pte_ns, "att_cpu")
                h = self.now                      # the page's own lookup
                page = self.cache.get(fkey)
                around = False
                finish = True
            if case == "cow":
                fault["cow_lookup"] = True
            if page is not None and not page.in_flight:
                page.pins += 1
                if self._async_readahead(rec, fkey, page, k) and pol.readahead_drops_lock \
                        and how_lock != "speculative" and self._drops(pol, fault, k):
                    # the readahead dropped the lock (docs/model.md 11.5): a retry, no wait
                    fault["wait_since"] = h
                    yield from self._drop_for_wait(th, fault, rec, lock)
                    page.pins -= 1
                    self._end_wait(fault)
                    self._retry(th, fault, "retry")
                    if pol.check_signal_before_retry and th.pending and self._signals_reach(th, rec):
                        return _TO_USER
                    return self._retry_kind(pol, how_lock, False)
                yield ("sleep", c.pagecache_hit_ns, "att_cpu")
                if case == "read" and F > 1 and not finish and self._around_skipped(rec):
                    around, finish = False, True  # (empty page table, the last folio first)
                self._charge(rec, case)
                self._install(rec, case)
                extra_ptes = (self._fault_around(rec) if around
                              else self._map_finish(rec) if finish else 0)
                page.pins -= 1  # docs/model.md: unpin at the install instant
                yield ("sleep", extra_ptes * c.pte_ns, "att_cpu")
                return (yield from self._complete_attempt(th, rec, lock))
            if page is None:
                page = self._issue_io(fkey)
                fault["major"] = 1
                att_major = True
                page.pins += 1
                self._sync_readahead(rec, fkey, page)
            else:
                page.pins += 1
                self._async_readahead(rec, fkey, page, k)   # (in flight: found, 11.5)

        # 4. The wait.
        left = pol.max_retries < 0 or fault["retries"] < pol.max_retries
        drop = self._drops(pol, fault, k)
        interruptible = left and pol.interruptible and not drop and self._signals_reach(th, rec)
        fault["wait_since"] = h
        aborted_at_once = interruptible and bool(th.pending)
        context_done = None
        if page is None and not aborted_at_once:
            # context, not ready: this thread's own wait begins (a wait that a pending signal
            # aborts before it begins draws nothing and does not make the fault major).
            fault["major"] = 1
            att_major = True
            context_done = h + self._draw(STREAM_WAIT, self.wait_table)

        if drop and pol.fault_completed:
            # VM_FAULT_COMPLETED: the lock goes, the pin stays; the fault ends at the wake-up
            yield from self._drop_for_wait(th, fault, rec, lock)
            if page is not None and page.in_flight:
                page.waiters.append((th, False))
                th.waiting_on = fkey
            else:
                self._resume_at(th, self._wake_time(th, page, context_done), "wake")
            yield ("wait",)
            self._end_wait(fault)
            self._charge(rec, case)
            self._install(rec, case)
            extra = self._finish_after_read(rec, case)
            if page is not None:
                page.pins -= 1
            else:
                self._context_ready(rec.key, self.now)
            if extra:
                yield ("sleep", extra * c.pte_ns, "att_cpu")
            th.settle_attempt(self.now, "done")
            return _COMPLETED

        if drop:
            if page is None:
                self._context_ready(rec.key, context_done)
            yield from self._drop_for_wait(th, fault, rec, lock)
            if page is not None and page.in_flight:
                page.waiters.append((th, True))
                th.waiting_on = fkey
            else:
                if page is not None:
                    page.pins -= 1      # its I/O completed while the lock was released
                self._resume_at(th, self._wake_time(th, page, context_done), "wake")
            yield ("wait",)
            self._end_wait(fault)
            self._retry(th, fault, "retry")
            if pol.check_signal_before_retry and th.pending and self._signals_reach(th, rec):
                return _TO_USER
            return self._retry_kind(pol, how_lock, att_major)

        if aborted_at_once:
            th.pending[0]["aborted_wait"] = 1
            outcome = "abort"
        else:
            if page is not None:
                page.waiters.append((th, False))
                th.waiting_on = fkey
            else:
                self._resume_at(th, self._io_woken_at(th, context_done), "wake")
            th.interruptible = interruptible
            outcome = yield ("wait",)
            th.interruptible = False
        self._end_wait(fault)

        if outcome == "abort":
            if page is not None:
                page.pins -= 1
            yield from self._release_fault_lock(th, rec, lock)
            self._retry(th, fault, "abort")
            return _TO_USER

        # Woken with the lock held: install, unpin, release.
        self._charge(rec, case)
        self._install(rec, case)
        extra = self._finish_after_read(rec, case)
        if page is not None:
            page.pins -= 1
        else:
            self._context_ready(rec.key, self.now)
        if extra:   # (their PTEs' cost: the engine runs PH_INSTALL again after it)
            yield ("sleep", extra * c.pte_ns, "att_cpu")
        return (yield from self._complete_attempt(th, rec, lock))

    def _needs_anon_vma(self, rec, vma):
        """docs/model.md 15.8: the fault needs its VMA's anon_vma, which the VMA lacks."""
        if rec.vma in self.anon_vma or not vma.private:
            return False
        if not self.kernel:
            return vma.backing == "anon"
        return rec.write and vma.backing in ("anon", "file")

    @staticmethod
    def _first_lock(pol, rec):
        """docs/model.md 15.3: a fault the kernel made in a system call (no FAULT_FLAG_USER)
        goes to mmap_lock where the design would take a VMA lock; a speculative attempt is
        tried for it as for any."""
        return "mmap" if rec.kernel and pol.fault_lock == "vma" else pol.fault_lock

    @staticmethod
    def _signals_reach(th, rec):
        """docs/model.md 7, 15.3: a pending signal stops a retry or an interruptible wait of
        the user's fault; of a fault the kernel made, only a fatal one does
        (fault_signal_pending())."""
        return not rec.kernel or bool(th.schedule is not None and th.schedule.fatal)

    @staticmethod
    def _retry_kind(pol, how_lock, att_major):
        """docs/model.md 15.10: the retry of a VMA-locked attempt that was not major, under
        mmap_lock, is a first attempt again (no FAULT_FLAG_TRIED: ``k`` kept)."""
        if how_lock == "vma" and pol.retry_lock == "mmap" and not att_major:
            return _RETRY_FIRST
        return _RETRY_IN_KERNEL

    @staticmethod
    def _drops(pol, fault, k):
        """Whether attempt ``k`` drops its lock to wait (docs/model.md section 5, step 4)."""
        left = pol.max_retries < 0 or fault["retries"] < pol.max_retries
        return left and (pol.drop_lock_attempts < 0 or k < pol.drop_lock_attempts)

    def _drop_for_wait(self, th, fault, rec, lock):
        """Release the lock before a lock-dropping wait; the wait begins when the release
        takes effect (after its line cost, docs/model.md 15.1)."""
        fault["wait_since"] = None
        yield from self._release_fault_lock(th, rec, lock)
        fault["wait_since"] = self.now

    def _wake_time(self, th, page, context_done):
        """When a thread that starts a lock-dropping wait now, its file I/O already complete
        (``page``) or its context completing at ``context_done``, wakes: it still pays the
        wake-up (docs/model.md 15.1)."""
        done = self.now if page is not None else max(context_done, self.now)
        return self._io_woken_at(th, done)

    def _context_ready(self, key, time):
        if time < self.context_ready_at.get(key, time + 1):
            self.context_ready_at[key] = time

    def _end_wait(self, fault):
        fault["io_wait_ns"] += self.now - fault["wait_since"]
        fault["wait_since"] = None

    def _retry(self, th, fault, how):
        fault["retries"] += 1
        th.settle_attempt(self.now, how)

    def _complete_attempt(self, th, rec, lock):
        yield from self._release_fault_lock(th, rec, lock)
        th.settle_attempt(self.now, "done")
        return _COMPLETED

    # -- results --------------------------------------------------------------------------
    def _lock_waits(self):
        return _wait_figures(self.locks, self.vma_write_wait_ns)

    def _results(self):
        H = self.horizon
        cnt = self.counters
        for th in self.threads:
            if th.alive:
                th.charge_to(th.cat, H)
                th.settle_attempt(H, "done")
                th.end_ns = H
                th.state = T_UNFINISHED if self.oom is None else T_OOM
                f = th.fault
                if f is not None:
                    if f["lock_since"] is not None:
                        f["lock_wait_ns"] += H - f["lock_since"]
                    if f["wait_since"] is not None:
                        f["io_wait_ns"] += H - f["wait_since"]
                    # livelocked only if it could still retry (docs/model.md section 13)
                    mr = self.vma_policies[f["vma"]].max_retries
                    if f["retries"] >= 1 and (mr < 0 or f["retries"] < mr) and self.oom is None:
                        cnt["n_livelocked_threads"] += 1
                cnt["n_unfinished_records"] += len(th.records) - th.records_done
            elif th.state != T_DONE:
                cnt["n_abandoned_records"] += len(th.records) - th.records_done

        cnt["oom_thread"], cnt["oom_ns"] = self.oom if self.oom is not None else (-1, -1)
        cnt["n_faults"] = len(self.faults)
        cnt["n_major"] = sum(f["major"] for f in self.faults)
        cnt["n_minor"] = cnt["n_faults"] - cnt["n_major"]
        cnt["n_retries"] = sum(f["retries"] for f in self.faults)
        cnt["n_sigbus"] = sum(f["outcome"] == SIGBUS for f in self.faults)
        cnt["n_signals"] = len(self.signals)
        eager_pages = 0
        for vi, v in enumerate(self.vmas):
            if self.eager_done[vi]:
                eager_pages += (v.end - v.start) // self.page_size
        lazy = sum(1 for key in self.ptes
                   if not self.eager_done[self._vma_of(key)])
        cnt["n_ptes_end"] = eager_pages + lazy

        def columns(rows, names):
            return {name: [int(r[name]) for r in rows] for name in names}

        thread_rows = []
        for th in self.threads:
            row = {"thread": th.index, "tid": th.tid, "end_ns": th.end_ns, "state": th.state,
                   "records_done": th.records_done}
            for cat in CATEGORIES:
                row[cat + "_ns"] = th.time[cat]
            thread_rows.append(row)
        return SimpleNamespace(
            faults=columns(self.faults, FAULT_COLUMNS),
            signals=columns(self.signals, SIGNAL_COLUMNS),
            locks=columns(self.locks, LOCK_COLUMNS),
            threads=columns(thread_rows, THREAD_COLUMNS),
            counters={k: int(v) for k, v in cnt.items()},
            lock_counters=dict(self.lock_counters),
            lock_waits=self._lock_waits(),
            vma_locks=columns(self.vma_locks, VMA_LOCK_COLUMNS),
            evictions=columns(self.evictions, EVICTION_COLUMNS),
        )


def lock_r_done(result):
    """The LOCK_R records a run completed (docs/model.md 15.9): a reader's record ends at its
    release, so its lock row has a release time.  (No counter: ``n_mmap_lock_read_other``
    counts requests, as ``n_mmap_lock_read`` does.)"""
    return sum(1 for k, rel in zip(result.locks["kind"], result.locks["release_ns"])
               if k == LOCK_READER and rel >= 0)


def _wait_figures(locks, vma_write_wait_ns):
    """LOCK_WAIT_NAMES from lock records (dicts with mode, request_ns and acquire_ns)."""
    out = {}
    for mode, side in ((READ, "read"), (WRITE, "write")):
        waits = [x["acquire_ns"] - x["request_ns"] for x in locks
                 if x["mode"] == mode and x["acquire_ns"] >= 0]
        out[f"mmap_lock_{side}_wait_ns"] = sum(waits)
        out[f"mmap_lock_{side}_wait_ns_max"] = max(waits, default=0)
    out["vma_lock_write_wait_ns"] = vma_write_wait_ns
    return out


def simulate(scenario, policy=None, event_budget=None):
    """Run ``scenario`` under ``policy`` (default: the scenario's) with the reference simulator
    (at most ``event_budget`` events, if given).

    Returns a namespace with ``faults``, ``signals``, ``locks``, ``threads`` (dicts of column
    name -> list of ints) and ``counters`` (dict name -> int); see the column tuples above.
    """
    return NaiveSimulator(scenario, policy, event_budget).run()


def _rows(table, names, sort_key):
    cols = [[int(x) for x in table[name]] for name in names]
    rows = list(zip(*cols)) if cols else []
    return sorted(rows, key=sort_key)


def canonical(result):
    """A run's records as sorted lists of tuples (columns in the documented order).

    Works for the reference's lists and the engine's numpy arrays alike; faults sorted by
    (thread, start_ns), signals by (thread, arrival_ns), locks by (thread, request_ns, kind,
    mode), threads by thread, VMA read locks (docs/model.md 15.6) by (thread, vma, acquire_ns).
    Counters become a tuple of (name, value) in COUNTER_NAMES order, the lock designs' counts
    one in LOCK_COUNTER_NAMES order.
    """
    fi = {n: i for i, n in enumerate(FAULT_COLUMNS)}
    si = {n: i for i, n in enumerate(SIGNAL_COLUMNS)}
    li = {n: i for i, n in enumerate(LOCK_COLUMNS)}
    vma_locks = getattr(result, "vma_locks", None) or {n: [] for n in VMA_LOCK_COLUMNS}
    lock_counters = dict(getattr(result, "lock_counters", None) or {})
    # (the engine keeps the lock waits among its counters, the reference apart)
    lock_counters.update(getattr(result, "lock_waits", None) or
                         {k: v for k, v in result.counters.items() if k in LOCK_WAIT_NAMES})
    return {
        "vma_locks": _rows(vma_locks, VMA_LOCK_COLUMNS, lambda r: r),
        "lock_counters": tuple((name, int(lock_counters.get(name, 0)))
                               for name in LOCK_COUNTER_NAMES + LOCK_WAIT_NAMES),
        "faults": _rows(result.faults, FAULT_COLUMNS,
                        lambda r: (r[fi["thread"]], r[fi["start_ns"]], r)),
        "signals": _rows(result.signals, SIGNAL_COLUMNS,
                         lambda r: (r[si["thread"]], r[si["arrival_ns"]], r)),
        "locks": _rows(result.locks, LOCK_COLUMNS,
                       lambda r: (r[li["thread"]], r[li["request_ns"]], r[li["kind"]],
                                  r[li["mode"]], r)),
        "threads": _rows(result.threads, THREAD_COLUMNS, lambda r: r[0]),
        "evictions": _rows(result.evictions, EVICTION_COLUMNS, lambda r: r),
        "counters": tuple((name, int(result.counters[name])) for name in COUNTER_NAMES),
    }


COLUMNS = {"faults": FAULT_COLUMNS, "signals": SIGNAL_COLUMNS, "locks": LOCK_COLUMNS,
           "threads": THREAD_COLUMNS, "vma_locks": VMA_LOCK_COLUMNS,
           "evictions": EVICTION_COLUMNS}


def first_difference(a, b):
    """A readable description of the first difference between two canonical results, or None."""
    for table in ("faults", "signals", "locks", "threads", "vma_locks", "evictions"):
        ra, rb = a[table], b[table]
        names = COLUMNS[table]
        for i in range(max(len(ra), len(rb))):
            x = ra[i] if i < len(ra) else None
            y = rb[i] if i < len(rb) else None
            if x != y:
                def show(row):
                    return "missing" if row is None else ", ".join(
                        f"{n}={v}" for n, v in zip(names, row))
                cols = [n for n, u, v in zip(names, x or (), y or ()) if u != v]
                return (f"{table}[{i}] differs (of {len(ra)} vs {len(rb)} rows)"
                        + (f" in {cols}" if cols else "") + f"\n  engine:    {show(x)}"
                        f"\n  reference: {show(y)}")
    diffs = [f"{n}: engine {u} reference {v}"
             for (n, u), (_, v) in zip(a["counters"] + a["lock_counters"],
                                       b["counters"] + b["lock_counters"]) if u != v]
    if diffs:
        return "counters differ:\n  " + "\n  ".join(diffs)
    return None
