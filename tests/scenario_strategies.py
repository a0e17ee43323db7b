"""Hypothesis strategies for small scenarios and policies (the reference/engine agreement test).

Scenarios are small on purpose: 2-4 threads of 5-60 records, 1-3 VMAs of 1-12 pages, a page
cache of a few frames, small integer costs.  Everything the model has appears: every backing,
every replacement (twolist with and without workingset, page-model VMAs sometimes
executable), fault-around, random costs, signal schedules (some fatal), an adversary,
``LOCK_W`` and ``LOCK_R`` records and lock-only threads, gaps, preloads, per-VMA policy overrides,
eager VMAs with a given map thread, a second address space, and short horizons that cut runs.

``fault_ns``, ``mmap_cs_ns``, ``mmap_read_cs_ns``, ``remap_fixed_ns`` and ``LOCK_R`` holds are
at least 1 ns: with all of them zero a
lock grant and the grantee's next step would share an instant, where only the order of kind-3
events (not the model) decides.  The horizon is always bounded (at most 2 ms of simulated
time): unbounded retry policies livelock until the horizon by design.

Use :func:`cases` for ``(scenario, policy)`` pairs that ``scenario.validate(policy)`` accepts,
and :func:`kernel_cases` for the kernel fault model (docs/model.md section 11): VMAs with
random ``prot`` and ``private`` (never a store the program could not make), loads and stores
of every kind.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

from vmlab.model import (LOCK_PRESETS, PRESETS, Adversary, Costs, Empirical, Exponential, File, FileRead, Fixed, Policy,
                         Scenario, SignalSchedule, Uniform, Unmap, Vma, can_serve)
from vmlab.model.scenario import unmap_problem
from vmlab.model.costs import DIST_COSTS, HOLD_FIELDS
from vmlab.trace import Call, Op, Trace
from vmlab.trace.model import MAX_WRITER_CALL

PAGE = 4096
ACCESS_OPS = (Op.LOAD, Op.STORE, Op.IFETCH, Op.MODIFY)
#: Backings by weight: file most often; iomem rarely (under struct-page policies it is SIGBUS,
#: which ends the thread at once).
BACKINGS = ("file", "file", "file", "anon", "device", "device", "iomem", "context", "context")
LAZY_PRESETS = [p for p in PRESETS.values() if not p.eager]


@st.composite
def random_policies(draw):
    """A lazy policy built from random knobs."""
    return Policy(
        "random",
        needs_struct_page=draw(st.booleans()),
        drop_lock_attempts=draw(st.sampled_from([-1, 0, 0, 1, 2])),
        interruptible=draw(st.booleans()),
        max_retries=draw(st.sampled_from([-1, 0, 1, 2, 3])),
        check_signal_before_retry=draw(st.booleans()),
        readahead_drops_lock=draw(st.booleans()),
    )


def policies():
    """Every preset, plus random knob combinations."""
    return st.one_of(st.sampled_from(list(PRESETS.values())), random_policies())


@st.composite
def random_lock_policies(draw, speculative=True):
    """A lazy policy with the lock-design knobs of docs/model.md section 15 (``speculative``:
    speculative faults among them)."""
    fault_lock = draw(st.sampled_from(["vma", "speculative"] if speculative else ["vma"]))
    drop = draw(st.sampled_from([-1, 0, 1, 1, 2]))
    scope = draw(st.sampled_from(["vma", "mm"])) if fault_lock == "speculative" else "vma"
    return Policy(
        "random_lock",
        needs_struct_page=draw(st.booleans()),
        drop_lock_attempts=drop,
        interruptible=draw(st.booleans()),
        max_retries=draw(st.sampled_from([-1, 0, 1, 2])),
        check_signal_before_retry=draw(st.booleans()),
        fault_lock=fault_lock,
        retry_lock=draw(st.sampled_from(["mmap", "vma"])) if fault_lock == "vma" else "mmap",
        vma_lock_backings=tuple(draw(st.lists(st.sampled_from(BACKINGS), unique=True))),
        spf_scope=scope,
        spf_count=draw(st.sampled_from(["hold", "change"])) if scope == "vma" and
        fault_lock == "speculative" else "hold",
        fault_completed=drop != 0 and draw(st.booleans()),
        readahead_drops_lock=draw(st.booleans()),
        anon_vma_fallback=draw(st.booleans()),
    )


def lock_policies(speculative=True):
    """The lock-design presets, random lock-design knob combinations (``speculative``: with
    speculative faults) and the single-lock presets."""
    presets = [p for p in LOCK_PRESETS.values() if speculative or p.fault_lock != "speculative"]
    # (single-lock presets too: the lock-word costs of 15.1 apply to mmap_sem alone)
    return st.one_of(st.sampled_from(presets), random_lock_policies(speculative),
                     st.sampled_from(LAZY_PRESETS))


@st.composite
def lock_cases(draw, speculative=True, lock_costs=True, fault_model=None):
    """``(scenario, policy)`` pairs with a lock-design policy and (``lock_costs``) the costs
    of docs/model.md 15.1, under ``fault_model`` (None: either)."""
    policy = draw(lock_policies(speculative))
    model = fault_model or draw(st.sampled_from(["page", "page", "kernel"]))
    # (files, folios and readahead in some: a marked folio's readahead drops the lock, 11.5)
    scenario = draw(scenarios(policy, fault_model=model, lock_costs=lock_costs,
                              granular=draw(st.booleans())))
    scenario.validate(policy)
    return scenario, policy


@st.composite
def dists(draw, scale):
    """A small random-time distribution: Fixed, Exponential, Uniform or Empirical."""
    kind = draw(st.sampled_from(["fixed", "exponential", "uniform", "empirical"]))
    if kind == "fixed":
        return Fixed(draw(st.integers(0, scale)))
    if kind == "exponential":
        return Exponential(draw(st.integers(1, scale)))
    if kind == "uniform":
        lo = draw(st.integers(0, scale))
        return Uniform(lo, lo + draw(st.integers(0, scale)))
    return Empirical(draw(st.lists(st.integers(0, 2 * scale), min_size=1, max_size=6)))


@st.composite
def costs(draw, lock_costs=False):
    """Small random costs; ``lock_costs``: also those of docs/model.md 15.1 (often 0)."""
    small = st.integers(0, 300)
    lock = {}
    if lock_costs:
        lock = {name: draw(st.sampled_from([0, 0, draw(st.integers(1, 200))]))
                for name in ("vma_lookup_ns", "mmap_lock_line_ns", "vma_lock_line_ns")}
        # the lines a lock operation writes (docs/model.md 15.1): usually 1, the default
        lock.update({name: draw(st.sampled_from([1, 1, draw(st.integers(2, 3))]))
                     for name in ("mmap_lock_acquire_lines", "mmap_lock_release_lines",
                                  "vma_lock_acquire_lines", "vma_lock_release_lines")})
        # the work faults share and a VMA-locked handler's re-reads (often 0)
        lock.update({name: draw(st.sampled_from([0, 0, draw(st.integers(1, 200))]))
                     for name in ("fault_shared_ns", "line_miss_ns")})
        lock["vma_lock_reread_lines"] = draw(st.sampled_from([0, 0, 1, 2]))
    return Costs(
        **lock,
        access_ns=draw(st.integers(0, 3)),
        fault_ns=draw(st.integers(1, 500)),
        zero_fill_ns=draw(small),
        pagecache_hit_ns=draw(small),
        struct_page_ns=draw(st.integers(0, 50)),
        driver_ns=draw(st.integers(0, 100)),
        pte_ns=draw(st.integers(0, 20)),
        remap_fixed_ns=draw(st.integers(1, 500)),
        signal_ns=draw(small),
        mmap_cs_ns=draw(st.integers(1, 500)),
        mmap_read_cs_ns=draw(st.integers(1, 500)),
        **{name: draw(st.integers(1, 500)) for name in HOLD_FIELDS.values()},
        # an munmap's write part (docs/model.md 15.13): often shorter than its hold (it
        # downgrades), sometimes not (it holds for write to its release), 0 at times
        munmap_write_ns=draw(st.one_of(st.integers(0, 100), st.integers(0, 500))),
        wakeup_ns=draw(small),
        copy_page_ns=draw(small),
        io_ns=draw(dists(5000)),
        wait_ns=draw(dists(5000)),
        # a woken lock waiter's delay (docs/model.md 15.14): usually none, the default
        lock_wakeup_ns=draw(st.sampled_from([Fixed(0), Fixed(0), draw(dists(2000))])),
        # and a woken I/O or context waiter's wait for a CPU (15.14): likewise
        io_wakeup_ns=draw(st.sampled_from([Fixed(0), Fixed(0), draw(dists(2000))])),
    )


def _schedule_fields(draw, min_period):
    kind = draw(st.sampled_from(["poisson", "periodic", "times"]))
    start = draw(st.sampled_from([0, 0, draw(st.integers(0, 5000))]))
    if kind == "poisson":
        mean_ns = draw(st.integers(min_period, 50_000))
        return dict(kind=kind, rate_hz=1e9 / mean_ns, start_ns=start)
    if kind == "periodic":
        return dict(kind=kind, period_ns=draw(st.integers(min_period, 50_000)), start_ns=start)
    times = sorted(draw(st.lists(st.integers(0, 100_000), min_size=1, max_size=5)))
    return dict(kind=kind, times_ns=tuple(times), start_ns=start)


def _backing_policy(draw, policy):
    """A backing and a per-VMA policy override (None) that can serve it."""
    backing = draw(st.sampled_from(BACKINGS))
    ok_run = can_serve(policy, backing) is None
    if ok_run and draw(st.integers(0, 4)) > 0:
        return backing, None
    servers = [p for p in PRESETS.values() if can_serve(p, backing) is None]
    return backing, draw(st.sampled_from(servers))


def _writer(draw, tid, asid, vmas):
    """A LOCK_W record naming its range (docs/model.md section 15.2): the whole address space
    (size 0, as old traces), part of one of the thread's VMAs (reaching into the next one at
    times), or a new mapping that touches no VMA."""
    kind = draw(st.sampled_from(["whole", "vma", "vma", "elsewhere"]))
    if kind == "whole":
        return (tid, asid, 0, Op.LOCK_W, 0)
    if kind == "elsewhere":
        return (tid, asid, 0x600000000000, Op.LOCK_W, PAGE)
    v = draw(st.sampled_from(vmas))
    first = draw(st.integers(0, (v.end - v.start) // PAGE - 1))
    return (tid, asid, v.start + first * PAGE, Op.LOCK_W, draw(st.integers(1, 16)) * PAGE)


def _reader(draw, tid, asid, vmas):
    """A LOCK_R record (docs/model.md 15.9): a reader of mmap_sem that is not a fault, its
    hold the cost ``mmap_read_cs_ns`` (size 0) or its own (size in ns); its address, which
    means nothing to the model, 0 or in a VMA."""
    hold = draw(st.sampled_from([0, 0, draw(st.integers(1, 3000))]))
    addr = draw(st.sampled_from([0, draw(st.sampled_from(vmas)).start]))
    return (tid, asid, addr, Op.LOCK_R, hold)


def _lock_record(draw, tid, asid, vmas):
    """A writer (LOCK_W) or, one time in three, a reader (LOCK_R)."""
    if draw(st.integers(0, 2)) == 0:
        return _reader(draw, tid, asid, vmas)
    return _writer(draw, tid, asid, vmas)


@st.composite
def scenarios(draw, policy, fault_model="page", granular=False, lock_costs=False):
    """A small scenario that ``validate(policy)`` accepts (under ``fault_model``; the kernel
    model's VMAs get random ``prot`` and ``private``, and a store only goes to a writable
    VMA).  ``granular``: file VMAs may name shared files at offsets, with folios, and the
    page cache may be a ``memory_bytes`` limit (docs/model.md 11.3-12)."""
    kernel = fault_model == "kernel"
    n_threads = draw(st.integers(2, 4))
    tids = sorted(draw(st.lists(st.integers(0, 500), min_size=n_threads, max_size=n_threads,
                                unique=True)))
    two_spaces = draw(st.integers(0, 5)) == 0

    # VMAs: 1-3 in address space 0, maybe 1 in address space 1; odd starts so that
    # fault-around windows straddle VMA boundaries.
    n_vmas = draw(st.integers(1, 3))
    vmas = []
    # (or just below a PTE table's or a PMD table's 512-entry boundary, so that the kernel's
    # own memory under memory_bytes takes a second table: docs/model.md 12)
    vpn = draw(st.sampled_from([0x400, 0x400, 0x3fa, 0x3fffa])) + draw(st.integers(0, 3))
    for j in range(n_vmas + int(two_spaces)):
        asid = 1 if j == n_vmas else 0
        n_pages = draw(st.integers(1, 12))
        backing, pol = _backing_policy(draw, policy)
        mapping = {}
        if kernel:
            mapping = dict(prot=draw(st.sampled_from(["rw", "rw", "r", "rx", "rwx"])),
                           private=draw(st.integers(0, 3)) > 0)
        elif draw(st.integers(0, 3)) == 0:
            mapping = dict(prot="rwx")   # text for twolist's workingset (docs/model.md 8.1)
        if granular and backing == "file" and draw(st.integers(0, 2)) > 0:
            # a shared file (two VMAs, maybe in two address spaces, map its pages)
            mapping.update(file=draw(st.sampled_from(["A", "A", "B"])),
                           offset=draw(st.integers(0, 6)) * PAGE)
        if granular and backing == "file":
            mapping.update(madvise=draw(st.sampled_from(["normal", "normal", "random",
                                                         "sequential"])))
        if backing in ("anon", "file") and draw(st.booleans()):
            mapping.update(anon_vma=True)    # (made before the run: docs/model.md 15.8)
        vmas.append(Vma(vpn * PAGE, (vpn + n_pages) * PAGE, backing, policy=pol, asid=asid,
                        name=f"v{j}", **mapping))
        vpn += n_pages + draw(st.integers(0, 3))

    # Threads: the last one may be an mmap/munmap loop (LOCK_W and LOCK_R only).
    lock_w_thread = draw(st.integers(0, 3)) == 0
    use_lock_w = draw(st.booleans())
    per_thread = []
    for i, tid in enumerate(tids):
        asid = 1 if two_spaces and i == 1 else 0
        mine = [v for v in vmas if v.asid == asid]
        if lock_w_thread and i == n_threads - 1:
            n = draw(st.integers(1, 15))
            per_thread.append([_lock_record(draw, tid, asid, mine) for _ in range(n)])
            continue
        n = draw(st.integers(5, 60))
        recs = []
        for _ in range(n):
            if use_lock_w and draw(st.integers(0, 9)) == 0:
                recs.append(_lock_record(draw, tid, asid, mine))
                continue
            v = draw(st.sampled_from(mine))
            page = draw(st.integers(0, (v.end - v.start) // PAGE - 1))
            addr = v.start + page * PAGE + draw(st.integers(0, PAGE - 1))
            op = draw(st.sampled_from(ACCESS_OPS))
            if "w" not in v.prot and op in (Op.STORE, Op.MODIFY):
                op = Op.LOAD          # (the program would have died of SIGSEGV)
            recs.append((tid, asid, addr, op, 8))
        per_thread.append(recs)

    # Interleave the threads' records (their order within a thread is kept).
    order = draw(st.permutations([i for i, recs in enumerate(per_thread) for _ in recs]))
    cursor = [0] * n_threads
    rows = []
    for i in order:
        rows.append(per_thread[i][cursor[i]])
        cursor[i] += 1
    tid_col, asid_col, addr_col, op_col, size_col = (np.array(c) for c in zip(*rows))
    gap = None
    if draw(st.booleans()):
        gap = np.array(draw(st.lists(st.integers(0, 2000), min_size=len(rows),
                                     max_size=len(rows))), np.uint64)
    # writers name their calls at times (docs/model.md 15.12: each call's hold and, under
    # spf_count="change", the place of its change); 0 is a writer of unknown call; munmap
    # drawn as often as the others together (its downgrade lets readers in, 15.13)
    # accesses the kernel made in a system call (call KERNEL, docs/model.md 15.3: no
    # FAULT_FLAG_USER) at times, about one in four of them then
    call = None
    if draw(st.booleans()):
        some_call = st.one_of(st.just(int(Call.MUNMAP)), st.integers(0, int(MAX_WRITER_CALL)))
        kernel = st.sampled_from((0, 0, 0, int(Call.KERNEL)))
        call = np.array([draw(some_call) if o == Op.LOCK_W else draw(kernel) if o < Op.LOCK_W
                         else 0 for o in op_col], np.uint8)
    trace = Trace(addr=addr_col.astype(np.uint64), op=op_col.astype(np.uint8),
                  tid=tid_col.astype(np.uint32), asid=asid_col.astype(np.uint16),
                  size=size_col.astype(np.uint64), gap_ns=gap, call=call)

    # Eager VMAs may name their map thread.
    vmas = [v if not (v.policy or policy).eager or draw(st.booleans())
            else Vma(v.start, v.end, v.backing, policy=v.policy, asid=v.asid, name=v.name,
                     map_thread=draw(st.sampled_from(tids)), prot=v.prot, private=v.private)
            for v in vmas]

    files = ()
    folio_pages = 1
    memory_bytes = None
    ra_pages = 0
    big = 1
    if granular:
        ra_pages = draw(st.sampled_from([0, 1, 2, 3, 4, 8, 32]))
        folio_pages = draw(st.sampled_from([1, 1, 2, 4]))
        named = sorted({v.file for v in vmas if v.file is not None})
        fl = []
        for name in named:
            if draw(st.booleans()):
                reach = max(v.offset // PAGE + (v.end - v.start) // PAGE
                            for v in vmas if v.file == name)
                size = None if draw(st.booleans()) else (reach + draw(st.integers(0, 9))) * PAGE \
                    - draw(st.integers(0, PAGE - 1)) * int(draw(st.booleans()))
                if size is not None and size <= (reach - 1) * PAGE:
                    size = reach * PAGE
                # folios of their own sizes (a recorded layout), some of them past the end
                listed = []
                npg = reach if size is None else -(-size // PAGE)
                for _ in range(draw(st.sampled_from([0, 0, 1, 3]))):
                    n = draw(st.sampled_from([1, 2, 4, 8, 16]))
                    a = draw(st.integers(0, (npg - 1) // n)) * n
                    if all(a + n <= c or c + m <= a for c, m in listed):
                        listed.append((a, n))
                fl.append(File(name, size_bytes=size,
                               folio_pages=draw(st.sampled_from([None, 1, 2, 8])),
                               folios=tuple(listed)))
        files = tuple(fl)
        big = max([folio_pages] + [f.folio_pages or folio_pages for f in files]
                  + [n for f in files for _, n in f.folios])
    memory_pages = None
    if draw(st.booleans()):
        memory_pages = (2 * n_threads + 1) * big + draw(st.integers(0, 6))
    if granular and draw(st.integers(0, 2)) == 0:
        # a limit on anonymous and page-cache frames: from OOM at once to roomy
        memory_pages = None
        # (around the kernel's own frames: a PGD per address space and a kernel stack of 4
        # frames per thread at time 0, an OOM there below them; 3 page tables an address
        # space at least at the first PTE)
        fixed = 1 + int(two_spaces) + 4 * n_threads
        memory_bytes = max(1, fixed + draw(st.integers(-2, 46))) * PAGE + \
            draw(st.sampled_from([0, 0, 100]))

    signals = ()
    if draw(st.booleans()):
        access_tids = [t for i, t in enumerate(tids) if not (lock_w_thread and i == n_threads - 1)]
        fields = _schedule_fields(draw, min_period=500)
        fatal = draw(st.integers(0, 4)) == 0
        if draw(st.booleans()):
            signals = (SignalSchedule(fatal=fatal, **fields),)
        else:
            chosen = draw(st.lists(st.sampled_from(access_tids), min_size=1, unique=True))
            signals = (SignalSchedule(fatal=fatal, threads=tuple(chosen), **fields),)

    adversary = None
    ordered = sorted(vmas, key=lambda v: (v.asid, v.start))
    file_vmas = [j for j, v in enumerate(ordered) if v.backing == "file"]
    if file_vmas and draw(st.integers(0, 2)) == 0:
        fields = _schedule_fields(draw, min_period=200)
        target = draw(st.sampled_from([None] + file_vmas))
        first, n_pages = 0, None
        if draw(st.booleans()):
            # a range within the VMA (one that reaches past it is refused)
            v = ordered[file_vmas[0] if target is None else target]
            size = (v.end - v.start) // PAGE
            first = draw(st.integers(0, min(3, size - 1)))
            n_pages = draw(st.integers(1, min(6, size - first)))
        adversary = Adversary(vma=target, first_page=first, n_pages=n_pages, **fields)

    preload = None
    file_pages = [a for v in vmas if v.backing == "file" and v.asid == 0
                  for a in range(v.start, v.end, PAGE)]
    if file_pages and draw(st.booleans()):
        cap = len(file_pages) if memory_pages is None else min(len(file_pages), memory_pages)
        chosen = draw(st.lists(st.sampled_from(file_pages), max_size=cap, unique=True))
        preload = np.array(chosen, dtype=np.uint64)

    horizon = draw(st.sampled_from([2_000_000, 2_000_000, draw(st.integers(100, 50_000))]))
    replacement = draw(st.sampled_from(["lru", "fifo", "clock", "twolist"]))
    # twolist's protection of the working set (docs/model.md 8.1) in half of its draws
    workingset = replacement == "twolist" and draw(st.booleans())

    return Scenario(
        trace, vmas=tuple(vmas), policy=policy,
        memory_pages=memory_pages,
        replacement=replacement, workingset=workingset,
        fault_around_pages=draw(st.sampled_from([1, 2, 4])),
        costs=draw(costs(lock_costs)),
        signals=signals, adversary=adversary, preload=preload,
        horizon_ns=horizon, seed=draw(st.integers(0, 2**64 - 1)),
        fault_model=fault_model, files=files, folio_pages=folio_pages,
        memory_bytes=memory_bytes, ra_pages=ra_pages,
        reclaim_batch=draw(st.sampled_from([1, 1, 2, 5, 32])),
        lru_add_batch=draw(st.sampled_from([0, 0, 1, 2, 3, 31])),
        tlb_young=draw(st.booleans()), reclaim_ages_active=draw(st.booleans()),
        reclaim_priorities=draw(st.booleans()),
        rwsem_wake_all_readers=draw(st.booleans()), rwsem_steal=draw(st.booleans()),
    )


@st.composite
def cases(draw):
    """``(scenario, policy)`` pairs that ``scenario.validate(policy)`` accepts."""
    policy = draw(policies())
    scenario = draw(scenarios(policy))
    scenario.validate(policy)
    return scenario, policy


@st.composite
def kernel_cases(draw):
    """``(scenario, policy)`` pairs under the kernel fault model (docs/model.md section 11),
    with shared files, folios and memory limits in some of them (sections 11.3-12)."""
    policy = draw(policies())
    scenario = draw(scenarios(policy, fault_model="kernel", granular=draw(st.booleans())))
    scenario.validate(policy)
    return scenario, policy


@st.composite
def young_cases(draw):
    """``(scenario, policy)`` pairs of ``twolist`` in the kernel fault model under reclaim
    (docs/model.md 8.2: the PTEs' young bits): one or two threads (maybe in two address
    spaces) reading and writing 2-4 file VMAs (text, data, two mapping one file) and an
    anonymous one, more pages than the page cache's few frames (``memory_pages`` near its
    minimum, or a ``memory_bytes`` limit), with readahead, folios, fault-around and
    workingset drawn."""
    policy = PRESETS[draw(st.sampled_from(["nopage", "nopage_refault", "fault_retry"]))]
    n_threads = draw(st.integers(1, 2))
    two_spaces = n_threads == 2 and draw(st.booleans())
    vpn = 0x400 + draw(st.integers(0, 3))
    vmas = []
    for j, (prot, private, file) in enumerate(draw(st.lists(st.sampled_from(
            [("rx", True, "T"), ("r", True, "D"), ("rw", True, "D"), ("rw", False, "D"),
             ("r", True, None)]), min_size=2, max_size=4))):
        n_pages = draw(st.integers(2, 12))
        mapping = dict(prot=prot, private=private,
                       madvise=draw(st.sampled_from(["normal", "normal", "random",
                                                     "sequential"])))
        if file is not None:
            mapping.update(file=file, offset=draw(st.integers(0, 4)) * PAGE)
        vmas.append(Vma(vpn * PAGE, (vpn + n_pages) * PAGE, "file", name=f"f{j}",
                        asid=int(two_spaces and j % 2 == 1), **mapping))
        vpn += n_pages + draw(st.integers(0, 2))
    vmas.append(Vma(vpn * PAGE, (vpn + 8) * PAGE, "anon", name="heap", prot="rw"))
    if two_spaces:
        vmas.append(Vma(vpn * PAGE, (vpn + 8) * PAGE, "anon", name="heap1", prot="rw", asid=1))
    rows = []
    tids = (1, 2)[:n_threads]
    for _ in range(draw(st.integers(10, 80))):
        i = draw(st.integers(0, n_threads - 1))
        asid = int(two_spaces and i == 1)
        mine = [v for v in vmas if v.asid == asid]
        v = draw(st.sampled_from(mine))
        page = draw(st.integers(0, (v.end - v.start) // PAGE - 1))
        op = draw(st.sampled_from(ACCESS_OPS))
        if "w" not in v.prot and op in (Op.STORE, Op.MODIFY):
            op = Op.LOAD          # (the program would have died of SIGSEGV)
        rows.append((tids[i], asid, v.start + page * PAGE, op, 8))
    tid_col, asid_col, addr_col, op_col, size_col = (np.array(c) for c in zip(*rows))
    trace = Trace(addr=addr_col.astype(np.uint64), op=op_col.astype(np.uint8),
                  tid=tid_col.astype(np.uint32), asid=asid_col.astype(np.uint16),
                  size=size_col.astype(np.uint64),
                  gap_ns=np.full(len(rows), draw(st.integers(0, 200_000)), np.uint64))
    folio_pages = draw(st.sampled_from([1, 1, 2]))
    present = {r[1] for r in rows}
    memory_pages = memory_bytes = None
    if draw(st.booleans()):
        memory_pages = (2 * n_threads + 1) * folio_pages + draw(st.integers(0, 4))
    else:
        # the kernel's own frames (a PGD per address space, 4 per thread, 3 tables per
        # address space) and a few more
        fixed = len(present) * 4 + 4 * n_threads
        memory_bytes = (fixed + draw(st.integers(0, 14))) * PAGE
    scenario = Scenario(
        trace, vmas=tuple(vmas), policy=policy, memory_pages=memory_pages,
        memory_bytes=memory_bytes, replacement="twolist", workingset=draw(st.booleans()),
        fault_around_pages=draw(st.sampled_from([1, 2, 4])), costs=draw(costs()),
        seed=draw(st.integers(0, 2**64 - 1)), fault_model="kernel",
        folio_pages=folio_pages, ra_pages=draw(st.sampled_from([0, 2, 4, 8])),
        reclaim_batch=draw(st.sampled_from([1, 1, 3, 32])),
        lru_add_batch=draw(st.sampled_from([0, 0, 1, 2, 3, 31])),
        tlb_young=draw(st.booleans()), reclaim_ages_active=draw(st.booleans()),
        reclaim_priorities=draw(st.booleans()),
        horizon_ns=50_000_000)
    scenario.validate(policy)
    return scenario, policy


@st.composite
def unmap_cases(draw):
    """``(scenario, policy)`` pairs with mappings that end (docs/model.md 11.9): a case of
    :func:`young_cases` (threads, file and anonymous VMAs, reclaim under ``memory_pages``
    or ``memory_bytes``) or of :func:`granular_cases` (either fault model, shared files,
    folios, readahead), without an adversary, and 1-6 ``Unmap`` s at records drawn from the
    trace, each over a part of a lazily faulted file or anonymous VMA (or none: a range
    nothing maps), some of them moves (``to``) into another VMA that keeps the pages the
    same pages."""
    scenario, policy = draw(st.one_of(young_cases(), granular_cases()))
    _pol, vmas, pols = scenario.validate(policy)
    ok = [v for v, p in zip(vmas, pols) if not p.eager and v.backing in ("file", "anon")]
    n = len(scenario.trace)
    unmaps = []
    for _ in range(draw(st.integers(1, 6))):
        rec = draw(st.integers(0, n - 1))
        if ok and draw(st.integers(0, 5)):
            v = draw(st.sampled_from(ok))
            pages = (v.end - v.start) // PAGE
            a, b = 0, pages                 # (often the whole VMA: munmap of a buffer)
            if draw(st.booleans()):
                a = draw(st.integers(0, pages - 1))
                b = draw(st.integers(a + 1, pages))
            u = Unmap(rec, v.start + a * PAGE, v.start + b * PAGE, v.asid)
            # sometimes a move (mremap) into another VMA that keeps every page the same page
            room = [w for w in ok if w is not v and w.asid == v.asid
                    and (w.end - w.start) // PAGE >= b - a]
            if room and draw(st.booleans()):
                w = draw(st.sampled_from(room))
                c = draw(st.integers(0, (w.end - w.start) // PAGE - (b - a)))
                m = Unmap(rec, u.start, u.end, v.asid, to=w.start + c * PAGE)
                if not unmap_problem(m, vmas, pols):
                    u = m
            unmaps.append(u)
        else:
            unmaps.append(Unmap(rec, 0x7f00_0000_0000, 0x7f00_0000_0000 + PAGE))
    anon = [v for v in ok if v.backing == "anon"]
    if anon and draw(st.booleans()):
        scenario, move = _with_moved_range(draw, scenario, vmas, draw(st.sampled_from(anon)))
        unmaps.append(move)
    scenario = scenario.replace(adversary=None, unmaps=tuple(unmaps))
    scenario.validate(policy)
    return scenario, policy


def _with_moved_range(draw, scenario, vmas, v):
    """``scenario`` with part of anonymous VMA ``v`` moved (mremap) to a new VMA past every
    other at a record drawn from the trace, and 1-8 accesses to the new VMA appended to the
    trace (by a thread of ``v``'s address space, as its prot allows); returns
    ``(scenario, the move)``."""
    tr = scenario.trace
    pages = (v.end - v.start) // PAGE
    a = draw(st.integers(0, pages - 1))
    b = draw(st.integers(a + 1, pages))
    top = max(w.end for w in vmas)
    dest = dataclasses.replace(v, start=top + PAGE, end=top + PAGE + (b - a + 2) * PAGE,
                               name="moved")
    asids = np.asarray(tr.asid)
    tids = np.asarray(tr.tid)[asids == v.asid]
    # (no access to a PROT_NONE mapping, no write to a read-only one: SIGSEGV; none in an
    # address space without threads)
    n_new = draw(st.integers(1, 8)) if v.prot and len(tids) else 0
    addr = [dest.start + draw(st.integers(0, b - a + 1)) * PAGE for _ in range(n_new)]
    op = [draw(st.sampled_from([Op.LOAD, Op.STORE] if "w" in v.prot else [Op.LOAD]))
          for _ in range(n_new)]
    tid = [int(draw(st.sampled_from(sorted(set(tids.tolist()))))) for _ in range(n_new)]
    cols = dict(addr=np.concatenate([np.asarray(tr.addr), np.array(addr, np.uint64)]),
                op=np.concatenate([np.asarray(tr.op), np.array(op, np.uint8)]),
                tid=np.concatenate([np.asarray(tr.tid), np.array(tid, np.uint32)]),
                asid=np.concatenate([asids, np.full(n_new, v.asid, np.uint16)]),
                size=np.concatenate([np.asarray(tr.size), np.full(n_new, 8, np.uint64)]))
    if tr.has_gap:
        cols["gap_ns"] = np.concatenate([np.asarray(tr.gap_ns),
                                         np.full(n_new, draw(st.integers(0, 50_000)),
                                                 np.uint64)])
    move = Unmap(draw(st.integers(0, len(tr) - 1)), v.start + a * PAGE, v.start + b * PAGE,
                 v.asid, to=dest.start + draw(st.integers(0, 2)) * PAGE)
    return scenario.replace(trace=Trace(**cols), vmas=tuple(vmas) + (dest,)), move


@st.composite
def read_cases(draw):
    """``(scenario, policy)`` pairs with ``read()`` calls (docs/model.md 11.7): a case of
    :func:`granular_cases` or :func:`unmap_cases` without an adversary, its files given
    sizes (and a file no VMA maps), and 1-8 ``FileRead`` s at records drawn from the trace:
    windows (sometimes empty) and copied ranges anywhere in a file, a ``prev`` inside the
    first copied page's folio or not, or calls of a stream whose windows the run decides
    (11.7.1), sometimes a sequential run of them through one file, under the memory limits
    the case has."""
    scenario, policy = draw(st.one_of(granular_cases(), unmap_cases()))
    _pol, vmas, _pols = scenario.validate(policy)
    files, _vf = scenario.file_table(vmas)
    named = [(f[0], f[1]) for f in files if f[0] is not None and f[1] > 0]
    given = {f.name: f for f in scenario.files}
    # (the scenario's folio size: a larger one would raise the memory minimum)
    extra = File("read-only", size_bytes=draw(st.integers(1, 40)) * PAGE)
    new_files = [dataclasses.replace(given[n], size_bytes=given[n].size_bytes or k * PAGE)
                 if n in given else File(n, size_bytes=k * PAGE) for n, k in named]
    new_files.append(extra)
    # (pages: a last partial page is a page, and a file smaller than a page has one)
    sizes = {f.name: -(-f.size_bytes // PAGE) for f in new_files}
    n = len(scenario.trace)
    reads = []
    for _ in range(draw(st.integers(1, 8))):
        name = draw(st.sampled_from(sorted(sizes)))
        k = sizes[name]
        a = draw(st.integers(0, k - 1))
        b = draw(st.integers(a, min(k, a + 8)))     # (empty: a window-only FileRead)
        lo = draw(st.integers(0, k))
        hi = draw(st.integers(lo, min(k, lo + 16)))
        prev = draw(st.sampled_from([-1, a, max(0, a - 1)]))
        if draw(st.booleans()):
            # a call of a stream: its windows decided by the run (11.7.1)
            reads.append(FileRead(draw(st.integers(0, n - 1)), name, 0, 0, a, b, prev,
                                  stream=draw(st.integers(0, 1)),
                                  pos_end=draw(st.sampled_from([b, max(a, b - 1)]))))
        else:
            reads.append(FileRead(draw(st.integers(0, n - 1)), name, lo, hi, a, b, prev))
    if draw(st.booleans()):
        # a sequential stream through one file, as a program's read() loop makes it
        name = draw(st.sampled_from(sorted(sizes)))
        k, o, prev = sizes[name], 0, -1
        for r in sorted(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=12))):
            if o >= k:
                break
            b = min(k, o + draw(st.integers(1, 4)))
            reads.append(FileRead(r, name, 0, 0, o, b, prev, stream=0, pos_end=b))
            o, prev = b, b - 1
    if not any(r.file == extra.name for r in reads):
        new_files.remove(extra)
    scenario = scenario.replace(adversary=None, files=tuple(new_files), reads=tuple(reads))
    scenario.validate(policy)
    return scenario, policy


@st.composite
def granular_cases(draw):
    """``(scenario, policy)`` pairs with shared files, folios and memory limits under either
    fault model (docs/model.md 11.3-12 apply to both)."""
    policy = draw(policies())
    scenario = draw(scenarios(policy, fault_model=draw(st.sampled_from(["page", "kernel"])),
                              granular=True))
    scenario.validate(policy)
    return scenario, policy


#: Costs the strategies keep at 1 ns or more (the module docstring): on a grid, one unit.
_AT_LEAST_ONE = ("fault_ns", "mmap_cs_ns", "mmap_read_cs_ns", "remap_fixed_ns",
                 *HOLD_FIELDS.values())


def _snap(v, unit, at_least=0):
    return max(at_least, int(round(v / unit)) * unit)


@st.composite
def on_a_grid(draw, cases_strategy):
    """``(scenario, policy)`` pairs of ``cases_strategy`` with every cost, gap, signal and
    adversary period and start on a grid of one unit (100 ns to 1 us), each distribution a
    fixed value of its own: times coincide everywhere, and docs/model.md section 2's order of
    equal keys decides who goes first."""
    scenario, policy = draw(cases_strategy)
    unit = draw(st.sampled_from([100, 250, 500, 1000]))
    c = scenario.costs
    changes = {}
    for f in dataclasses.fields(c):
        v = getattr(c, f.name)
        if f.name.endswith("_lines"):
            continue
        if f.name in DIST_COSTS:
            table = v.table()
            changes[f.name] = Fixed(_snap(int(table[draw(st.integers(0, len(table) - 1))]),
                                          unit))
        else:
            changes[f.name] = _snap(v, unit, unit if f.name in _AT_LEAST_ONE else 0)
    kw = {"costs": c.replace(**changes)}
    t = scenario.trace
    if t.has_gap:
        cols = {n: np.asarray(getattr(t, n)) for n in ("tid", "asid", "addr", "op", "size")}
        cols["gap_ns"] = (np.round(np.asarray(t.gap_ns, dtype=np.float64) / unit) *
                          unit).astype(np.uint64)
        kw["trace"] = Trace(**cols, call=t.calls() if t.has_call else None)
    sigs = []
    for s in scenario.signals:
        if s.kind == "periodic":
            s = dataclasses.replace(s, period_ns=_snap(s.period_ns, unit, unit))
        elif s.kind == "times":
            s = dataclasses.replace(s, times_ns=tuple(sorted({_snap(x, unit)
                                                              for x in s.times_ns})))
        sigs.append(dataclasses.replace(s, start_ns=_snap(s.start_ns, unit)))
    kw["signals"] = tuple(sigs)
    adv = scenario.adversary
    if adv is not None and adv.kind == "periodic":
        kw["adversary"] = dataclasses.replace(adv, period_ns=_snap(adv.period_ns, unit, unit),
                                              start_ns=_snap(adv.start_ns, unit))
    scenario = scenario.replace(**kw)
    scenario.validate(policy)
    return scenario, policy
