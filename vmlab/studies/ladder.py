"""The ``mmap_lock`` ladder to 2026 and the published results it must reproduce (notebook 09).

Every design from ``nopage`` (2006) to speculative faults runs on the same workloads
(docs/model.md section 15 fixes their semantics); the published figures they are compared
with, and the setups those figures were measured on, are written down here once
(:data:`PUBLISHED`, from ``../shared/KERNEL-2026.md`` section 2).

=============================  ===========================================================
:func:`ladder_scenario`        file readers beside writers on other VMAs and on theirs
:func:`pft_scenario`           mmtests ``pft-threads``: threads first-touching one region
:func:`ebizzy_scenario`        ebizzy ``-mTt``: threads that mmap, fill and munmap chunks
:func:`app_start_scenario`     an app start: file faults beside mmap/mprotect callers and
                               readers of mmap_lock that are not faults
:func:`lock_table`             per policy: the lock measures of docs/model.md 15.6
:func:`pft_table`              per thread count and policy: faults per second
:func:`spf_table`              per policy: ebizzy iterations per second and the abort rate
:func:`ebizzy_window`          the part of a run ebizzy measures: every thread still running
:func:`writer_run_length`      whether an ebizzy run's writers interleave or go in lockstep
:func:`band_change_aborts`     the merged band's aborts under Dufour's count, on a run's
                               timeline (docs/model.md 15.8)
:func:`retry_table`            per policy: mmap_lock read acquisitions, waits and wait bins
:func:`retry_whatif`           the same app start with retries that must read their page
                               again, holding their lock (docs/model.md 15.10)
:func:`wakeup_sweep`           the app start when every CPU is busy: woken lock waiters
                               hold ``mmap_lock`` until they run (docs/model.md 15.14)
:func:`busy_designs`           the three designs of the 2025-26 debate there, with and
                               without the wake-ups after reads
:func:`tracepoint_wait_bins`   the waits as the kernel's tracepoints give them, beside a
                               real ``perf`` capture
:func:`reproduction_table`     each published figure beside vmlab's, judged by its tolerance
=============================  ===========================================================

Closed forms: :func:`pft_rate_mean_field` (the fault rate of ``T`` threads sharing one lock
word, a mean-field fixed point), :func:`pft_line_ns` (the line cost at which that rate
plateaus at a given multiple of the one-thread rate) and :func:`closed_form_reads` (the
``mmap_lock`` read acquisitions docs/model.md 15.3 implies, exact).  Lespinasse's 2010 figures are
:mod:`vmlab.studies.mmap_sem`'s (:func:`lespinasse_ladder` runs the ladder on them).
The cited ``pft-threads`` runs themselves are :data:`PFT_CITED_RATES`;
:func:`pft_cited_decomposition` splits their time per fault into what the threads share
besides lock words (the VMA-per-thread run) and the lock word's part, and
:func:`pft_cited_word_fit` fits the latter against the number of other threads.

Parameters come from the cited setups (thread counts, which calls are writers and what they
cover) or from this host's measured costs (``Costs()``, docs/model.md section 14).  Four
constants no setup states directly are taken from the cited ``pft-threads`` runs, each from a
different part of them and none from the figures :data:`PUBLISHED` judges, and said so
(docs/model.md 15.11): the work faults share (:func:`pft_shared_ns`, the VMA-per-thread run),
the lock word's cache-line cost (:func:`pft_line_ns`, the baseline's plateau over its
one-thread rate), a re-read's transfer (:func:`pft_miss_ns`, the series-v2 run at 7 to 30
threads) and the VMA path's extra work :data:`VMA_LOOKUP_NS` (the 1-thread point).  How many
cache lines each lock operation writes or re-reads is counted from the kernel's source, not
chosen (:data:`LOCK_LINES`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..model.costs import HDD, Costs, as_dist
from ..model.merge import merge_vmas
from ..model.policies import LADDER_ORDER, get_policy
from ..model.scenario import Adversary, Scenario, Vma
from ..simulation import simulate_many
from ..trace import Trace, synth
from . import mmap_sem

PAGE = 4096


# -- the published figures ----------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    """One published figure: what was measured, its value, where, and the range vmlab's
    reproduction must fall in to count as reproduced (a ratio or a shape, never the
    absolute speed of the machine it was measured on).

    ``accept`` is ``(low, high)``, inclusive; None for a figure given for context only.
    """

    key: str
    what: str
    value: float
    unit: str
    source: str
    tolerance: str
    accept: tuple | None


LESPINASSE_SRC = "Michel Lespinasse, mmap_sem retry patch (2010), via MODEL.md"
PFT_SRC = ("mmtests pft-threads, 2-socket Ice Lake (Xeon 8336C): per-VMA locks series v2 "
           "(Suren Baghdasaryan) against 6.2-rc4 mm-unstable, run by Punit Agrawal (linux-mm, "
           "Feb 2023)")
SPF_SRC = ("Laurent Dufour, [PATCH v11 00/26] Speculative page faults (2018); "
           "Michel Lespinasse (2021)")
RETRY_SRC = "Barry Song, Oven Liyang, retry under the VMA lock RFC (Nov 2025), v2 (Apr 2026)"

#: The figures notebook 09 reproduces (KERNEL-2026.md section 2).
PUBLISHED = (
    Published("lespinasse_before", "mmap/munmap loop beside 18 ms random reads, nopage", 55,
              "ops/s", LESPINASSE_SRC, "within 5%", (52.25, 57.75)),
    Published("lespinasse_after", "the same loop once faults drop mmap_sem (a 66.7 us "
              "loop iteration, 2010 hardware)", 15_000, "ops/s", LESPINASSE_SRC, "within 5%",
              (14_250, 15_750)),
    Published("pft_12_over_1", "baseline faults/s, 12 threads over 1 thread (4.97 M / 0.90 M)",
              4.97 / 0.90, "ratio", PFT_SRC, "within 25%", (4.97 / 0.90 * 0.75,
                                                            4.97 / 0.90 * 1.25)),
    Published("pft_128_over_30", "baseline faults/s, 128 threads over 30 (flat at 6.2-6.5 M)",
              6.35 / 6.35, "ratio", PFT_SRC, "flat: 0.95 to 1.25", (0.95, 1.25)),
    Published("pft_vma_4", "per-VMA locks against baseline at 4 threads", -0.095, "change",
              PFT_SRC, "slower: -20% to 0", (-0.20, 0.0)),
    Published("pft_vma_128", "per-VMA locks against baseline at 110-128 threads "
              "(KERNEL-2026.md: +22-27%, given here by its middle; the thread's own points: "
              "+24.7% at 110, +21.9% at 128)", 0.245,
              "change", PFT_SRC, "+22% to +27%", (0.22, 0.27)),
    Published("spf_16", "ebizzy -mTt, spf over baseline, 16-CPU x86 (742 -> 1,490)", 1490 / 742,
              "ratio", SPF_SRC, "1.7x to 2.1x", (1.7, 2.1)),
    Published("spf_24", "ebizzy -mTt, spf over baseline, 24-CPU x86 (5,493 -> 9,383)",
              9383 / 5493, "ratio", SPF_SRC, "1.7x to 2.1x", (1.7, 2.1)),
    Published("spf_abort", "speculative faults aborted on 'vma changed', 48 CPUs "
              "(957,702 of 11.85 M)", 957_702 / 11.85e6, "fraction", SPF_SRC,
              "within a factor of 2", (957_702 / 11.85e6 / 2, 957_702 / 11.85e6 * 2)),
    Published("retry_reads", "mmap_lock read acquisitions, per_vma_lock over "
              "per_vma_retry_vma (20,010 -> 5,719)", 20_010 / 5_719, "ratio", RETRY_SRC,
              "3x to 4x", (3.0, 4.0)),
    Published("retry_wait", "total mmap_lock read wait, per_vma_lock over per_vma_retry_vma "
              "(10.70 s -> 0.41 s)", 10.70 / 0.41, "ratio", RETRY_SRC, "within a factor of 2",
              (10.70 / 0.41 / 2, 10.70 / 0.41 * 2)),
    Published("retry_bins", "read waits of 1-100 ms left by per_vma_retry_vma, as a fraction "
              "of per_vma_lock's (656 -> 15)", 15 / 656, "fraction", RETRY_SRC,
              "nearly emptied: below 5%", (0.0, 0.05)),
)


#: The cited pft-threads runs, whole: faults per second of all threads (harmonic means of 10
#: runs), per thread count, on the 2-socket, 32-core (64 hardware threads) Xeon 8336C of
#: :data:`PFT_SRC`.  Columns ``"<region>_<kernel>"``: region ``one`` is pft's one region (one
#: VMA; "Re: [PATCH v2 00/33] Per-VMA locks", 15 February 2023), ``split`` pft modified to map
#: a VMA per thread (the follow-up of 28 February 2023: "the case where per-VMA locks should
#: show the most benefit"); kernel ``baseline`` is 6.2-rc4 mm-unstable-20230210, ``v2`` the
#: same with the per-VMA lock series v2, ``v2_opt`` v2 with "optimizations to reclaim some of
#: the observed regression" (not named in the thread).
PFT_CITED_RATES = pd.DataFrame({
    "one_baseline": [898781.7694, 2965588.9697, 4144512.3996, 4969513.6934, 5814379.4789,
                     6153685.3709, 6197953.1327, 6167135.3738, 6264768.2247, 6460727.8216],
    "one_v2": [894247.3174, 2683651.5664, 3891644.2128, 4829731.4355, 5941405.3116,
               6489311.6634, 7216320.7727, 7425927.1022, 7813329.3863, 7875664.8999],
    "one_v2_opt": [894440.3118, 2726450.9710, 4099918.8601, 5264682.7371, 6263716.3903,
                   6910843.5858, 7412782.2927, 7637042.2198, 7984344.4005, 8049910.3601],
    "split_baseline": [905492.1265, 2994284.4204, 4177411.3461, 4892848.3633, 5823534.1820,
                       6247210.8414, 6274617.1419, 6187291.4971, 6454542.3239, 6472970.8548],
    "split_v2": [887244.6592, 3154236.9408, 4933286.4045, 6054577.0988, 7637637.4162,
                 8598150.6717, 9467132.3699, 11919062.5284, 15050228.1869, 16647275.6575],
    "split_v2_opt": [887775.6079, 3221994.8465, 5202347.2077, 6511987.1142, 8553362.3513,
                     9799696.0945, 11049401.9072, 13420825.3820, 16667873.7618,
                     18680029.3714],
}, index=pd.Index([1, 4, 7, 12, 21, 30, 48, 79, 110, 128], name="n_threads"))

#: The cited per-VMA curve on pft's one region: threads -> faults/s with per-VMA locks (series
#: v2) over the baseline, minus 1 (:data:`PFT_CITED_RATES`).  ``pft_vma_4`` and
#: ``pft_vma_128`` of :data:`PUBLISHED` are its 4-thread and 110-128 points.
PFT_CITED_VMA_CHANGE = (PFT_CITED_RATES["one_v2"] / PFT_CITED_RATES["one_baseline"]
                        - 1.0).to_dict()
#: The same with a VMA per thread (every VMA lock word has one user).
PFT_CITED_SPLIT_CHANGE = (PFT_CITED_RATES["split_v2"] / PFT_CITED_RATES["split_baseline"]
                          - 1.0).to_dict()


def pft_cited_decomposition(rates=None):
    """Where a cited pft-threads fault's time goes as the threads grow (docs/model.md 15.11).

    A thread's time per fault is ``T / rate``.  What a fault costs beyond its own 1-thread
    time is split in two with the VMA-per-thread run under per-VMA locks, where no lock word
    has a second user: its extra time is what the threads share *besides* lock words
    (``shared_ns``: the page allocator, the LRU and memcg counters, the clock of a busier
    package); the rest of the one-region runs' extra time is the lock word's
    (``mmap_lock_word_ns`` for the baseline, ``vma_lock_word_ns`` for series v2).

    Parameters
    ----------
    rates : DataFrame, optional
        Faults per second in :data:`PFT_CITED_RATES`' layout (default: that table).

    Returns
    -------
    DataFrame
        Per thread count: ``fault_ns_baseline``, ``fault_ns_v2`` (one region),
        ``fault_ns_split`` (per-VMA locks, a VMA per thread), ``fault_ns_split_baseline``,
        ``shared_ns``, ``mmap_lock_word_ns``, ``vma_lock_word_ns``, ``word_ratio``
        (``mmap_lock_word_ns / vma_lock_word_ns``, NaN at 1 thread), ``shared_over_1``
        (``fault_ns_split`` over its 1-thread value).
    """
    r = PFT_CITED_RATES if rates is None else rates
    T = r.index.to_numpy(dtype=float)
    ns = {k: T * 1e9 / r[k].to_numpy(dtype=float) for k in r.columns}
    first = r.index.get_loc(r.index.min())

    def extra(k):
        return ns[k] - ns[k][first]

    shared = extra("split_v2")
    mm, vm = extra("one_baseline") - shared, extra("one_v2") - shared
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(T > 1, mm / vm, np.nan)
    return pd.DataFrame({
        "fault_ns_baseline": ns["one_baseline"], "fault_ns_v2": ns["one_v2"],
        "fault_ns_split": ns["split_v2"], "fault_ns_split_baseline": ns["split_baseline"],
        "shared_ns": shared, "mmap_lock_word_ns": mm, "vma_lock_word_ns": vm,
        "word_ratio": ratio, "shared_over_1": ns["split_v2"] / ns["split_v2"][first],
    }, index=r.index)


def pft_cited_word_fit(threads=(4, 7, 12, 21, 30)):
    """Straight lines through the lock-word costs of :func:`pft_cited_decomposition` against
    the number of other threads, ``T - 1``, at ``threads`` (default: 4 to 30, every thread
    on a core of its own; past 32 threads two share a core, past 64 a CPU).

    Returns
    -------
    dict
        ``{"mmap_lock": (intercept_ns, ns_per_other_thread), "vma_lock": (...)}`` (least
        squares).
    """
    d = pft_cited_decomposition().loc[list(threads)]
    x = d.index.to_numpy(dtype=float) - 1.0
    out = {}
    for kind in ("mmap_lock", "vma_lock"):
        slope, icept = np.polyfit(x, d[f"{kind}_word_ns"].to_numpy(), 1)
        out[kind] = (float(icept), float(slope))
    return out


def published_table():
    """:data:`PUBLISHED` as a DataFrame (one row per figure)."""
    return pd.DataFrame([p.__dict__ for p in PUBLISHED])


def reproduction_table(measured):
    """Each published figure beside vmlab's.

    Parameters
    ----------
    measured : dict
        Figure key (of :data:`PUBLISHED`) -> vmlab's value (NaN when vmlab has no such
        figure, e.g. a fraction of zero waits).  Keys not given are left out.

    Returns
    -------
    DataFrame
        ``key``, ``what``, ``published``, ``vmlab``, ``unit``, ``tolerance``,
        ``reproduced`` (True inside ``accept``, False outside, None when the figure is not
        judged or vmlab's value is NaN), ``source``.
    """
    rows = []
    for p in PUBLISHED:
        if p.key not in measured:
            continue
        v = float(measured[p.key])
        ok = None if p.accept is None or math.isnan(v) else bool(p.accept[0] <= v <= p.accept[1])
        rows.append({"key": p.key, "what": p.what, "published": p.value, "vmlab": v,
                     "unit": p.unit, "tolerance": p.tolerance, "reproduced": ok,
                     "source": p.source})
    return pd.DataFrame(rows)


def published(key):
    """The :class:`Published` row named ``key``."""
    for p in PUBLISHED:
        if p.key == key:
            return p
    raise KeyError(f"no published figure {key!r}; figures are "
                   f"{', '.join(p.key for p in PUBLISHED)}")


# -- constants of the setups ----------------------------------------------------------------

#: Thread counts of the cited pft-threads runs (1 to 128 on a 2-socket Ice Lake).
PFT_THREADS = (1, 4, 12, 30, 64, 110, 128)


def pft_fault_ns(costs, touch_gap_ns=50):
    """One pft thread's time per fault with no sharing: user work, the zero-fill fault's
    handler (``fault_ns + struct_page_ns + zero_fill_ns``) and the store itself once mapped
    (``access_ns``), ns."""
    return (touch_gap_ns + costs.fault_ns + costs.struct_page_ns + costs.zero_fill_ns
            + costs.access_ns)


#: What a VMA-locked attempt does beyond the ``mmap_lock`` path (``vma_lookup_ns``, ns).  Both
#: paths walk the VMA tree: ``find_vma()`` under ``mmap_lock``, ``mas_walk()`` under RCU in
#: ``lock_vma_under_rcu()``, and the handler's ``fault_ns`` already holds one walk.  The VMA
#: path adds ``vma_start_read()``'s sequence checks (``vm_lock_seq`` against ``mm_lock_seq``,
#: before and after the trylock), the checks of ``anon_vma`` and ``vm_start`` and an event
#: counter: a handful of cache-hot loads, which user space cannot time.  The one published
#: figure that isolates it is the cited pft-threads run's 1-thread point (one thread: no line
#: is shared), per-VMA locks 0.5% slower: that share of a pft fault here (1,351 ns), 7 ns.
#: It is therefore an input of notebook 09, not a reproduction.  (A lookup that falls back
#: walks the tree twice in the kernel; the model charges it this extra once, docs/model.md
#: 15.1.)
VMA_LOOKUP_NS = int(round(-PFT_CITED_VMA_CHANGE[1] * pft_fault_ns(Costs())))


#: pft-threads' baseline plateau over its 1-thread rate (6.2-6.5 M over 0.90 M faults/s).
PFT_PLATEAU_RATIO = 6.35e6 / 0.90e6


#: The cache lines each lock operation of a fault transfers on one address space whose faults
#: all take the same word, and the lines of fields beside a VMA's word its handler reads again
#: (docs/model.md 15.11, counted from kernel/locking/rwsem.c, include/linux/mm_types.h,
#: mm/memory.c).  An operation's lines are those it *writes*: each waits for the other users'
#: operations on them (``line_ns * n``).  A read of a line right after the thread's own write
#: of it finds it in its cache; a read after other threads may have written it meanwhile is
#: one transfer if they did (``vma_lock_reread_lines``, each ``line_miss_ns``).  Per layout:
#:
#: * ``"one_each"``: one line per acquisition and per release, the model before lines were
#:   counted (``Costs()``'s default).
#: * ``"per_vma_v2"``: the kernels of the cited pft-threads run (6.2-rc4 with the per-VMA lock
#:   series v2, February 2023).  ``mmap_lock``, acquisition 2: ``down_read_trylock`` adds to
#:   the count (an atomic read-modify-write) and stores the owner
#:   (``rwsem_set_reader_owned``), which ``struct mm_struct`` keeps on two lines (mmap_lock 56
#:   bytes past a line boundary); the page-table walk's read of ``mm->pgd``, beside the count,
#:   follows the thread's own add at once; release 1 (``up_read`` subtracts from the count).
#:   The VMA's rwsem sat in ``vm_area_struct``'s first line, beside ``vm_start``, ``vm_flags``
#:   and ``vm_page_prot``: acquisition 1 (count and owner on that line), release 1, and one
#:   line re-read: ``do_anonymous_page`` reads ``vm_page_prot`` and ``vm_flags`` after
#:   clearing the page, when the other faults' operations on the word may have taken it.
#: * ``"per_vma_6.4"``: 6.4-6.14 as merged: ``struct vma_lock`` is a 40-byte rwsem of its own
#:   ("mm: separate vma->lock from vm_area_struct": the fields the fault reads no longer share
#:   its line), so a VMA lock's acquisition and release are 1 and 1 and nothing is re-read;
#:   ``mmap_lock`` as above.
#:
#: The sequence counts a VMA-locked fault checks (``vm_lock_seq``, ``mm_lock_seq``) are
#: written by writers only and transfer nothing on pft.
LOCK_LINES = {
    "one_each": {"mmap_lock_acquire_lines": 1, "mmap_lock_release_lines": 1,
                 "vma_lock_acquire_lines": 1, "vma_lock_release_lines": 1,
                 "vma_lock_reread_lines": 0},
    "per_vma_v2": {"mmap_lock_acquire_lines": 2, "mmap_lock_release_lines": 1,
                   "vma_lock_acquire_lines": 1, "vma_lock_release_lines": 1,
                   "vma_lock_reread_lines": 1},
    "per_vma_6.4": {"mmap_lock_acquire_lines": 2, "mmap_lock_release_lines": 1,
                    "vma_lock_acquire_lines": 1, "vma_lock_release_lines": 1,
                    "vma_lock_reread_lines": 0},
}

#: The layout of the kernels the cited pft-threads figures were measured on.
PFT_LAYOUT = "per_vma_v2"


def fault_lines(layout, kind="mmap_lock"):
    """The lines a fault's acquisition and release of a ``kind`` word (``"mmap_lock"`` or
    ``"vma_lock"``) write together under ``layout`` (a name of :data:`LOCK_LINES`)."""
    lines = LOCK_LINES[layout]
    return lines[f"{kind}_acquire_lines"] + lines[f"{kind}_release_lines"]


def pft_shared_ns(fault_ns):
    """``fault_shared_ns`` from the cited VMA-per-thread run (docs/model.md 15.11).

    Under per-VMA locks with a VMA per thread no lock word has a second user, so what a fault
    there costs beyond its 1-thread time is the work the threads share:
    :func:`pft_cited_decomposition`'s ``shared_over_1`` at the run's top thread count ``T``
    (6.82 at 128).  With every other thread inside a fault, a fault of ``fault_ns`` alone
    then takes ``fault_ns + fault_shared_ns * (T - 1)``, so ``fault_shared_ns = (shared_over_1
    - 1) * fault_ns / (T - 1)``.

    Parameters
    ----------
    fault_ns : float
        vmlab's per-VMA fault on one thread, ns (:func:`pft_fault_ns` plus the lookup).

    Returns
    -------
    int
        ns (rounded).
    """
    d = pft_cited_decomposition()
    top = int(d.index.max())
    return int(round((d.loc[top, "shared_over_1"] - 1.0) * fault_ns / (top - 1)))


#: The thread counts :func:`pft_miss_ns` fits over: 7 to 30, a core per thread, and not the
#: 4-thread point that :data:`PUBLISHED`'s ``pft_vma_4`` judges.
PFT_MISS_FIT_THREADS = (7, 12, 21, 30)


def pft_miss_ns(fault_ns, threads=PFT_MISS_FIT_THREADS):
    """``line_miss_ns`` from the cited series-v2 run (docs/model.md 15.11): the fixed part of
    its VMA word's cost per fault (:func:`pft_cited_word_fit` over ``threads``: a cost paid in
    full once another thread shares the word, the one line re-read), scaled from the cited
    machine's 1-thread fault to vmlab's ``fault_ns`` (ns, rounded)."""
    icept = pft_cited_word_fit(threads)["vma_lock"][0]
    cited_1 = 1e9 / float(PFT_CITED_RATES["one_v2"].loc[1])
    return int(round(icept * fault_ns / cited_1))


def pft_line_ns(fault_ns, ratio=PFT_PLATEAU_RATIO, lines=2, shared_ns=0):
    """The cost of one cache-line transfer at which ``T`` threads sharing a lock word plateau
    at ``ratio`` times the 1-thread fault rate (closed form).

    With ``T`` threads always inside a fault, an acquisition and a release that write
    ``lines`` lines between them cost ``lines * line_ns * (T - 1)`` (docs/model.md 15.1) and
    the work they share ``shared_ns * (T - 1)``, so a fault takes ``fault_ns + (lines *
    line_ns + shared_ns) * (T - 1)`` and the total rate tends to ``1 / (lines * line_ns +
    shared_ns)``; equating it with ``ratio / fault_ns`` gives ``line_ns = (fault_ns / ratio -
    shared_ns) / lines``.

    Parameters
    ----------
    fault_ns : float
        One thread's time per fault (handler CPU plus its user work), ns.
    ratio : float
        Plateau over the 1-thread rate (default: the cited baseline's, about 7.06).
    lines : int
        Lines an acquisition and a release of the word write together (default 2: one
        each; the kernel's ``mmap_lock``: ``fault_lines("per_vma_v2")``, 3).
    shared_ns : float
        ``fault_shared_ns`` (default 0).

    Returns
    -------
    int
        The line cost in ns (rounded).
    """
    return int(round((fault_ns / ratio - shared_ns) / lines))


def pft_rate_mean_field(n_threads, fault_cpu_ns, line_ns, outside_ns=0, lines=2, shared_ns=0,
                        miss_ns=0):
    """Total faults per second of ``n_threads`` threads sharing one lock word (closed form).

    Mean field of docs/model.md 15.1: a thread spends ``outside_ns`` per fault outside the
    word (user work, an RCU lookup) and ``h`` holding it, where ``h = c + k n`` with ``c =
    fault_cpu_ns`` (plus ``miss_ns`` when another thread shares the word: its re-reads),
    ``k = lines * line_ns + shared_ns`` (``lines``: the lines its acquisition and release
    write together; ``shared_ns``: the work faults share, per other thread inside one) and
    ``n = (T - 1) * h / (outside_ns + h)`` other threads holding it on average.  ``h`` is the
    positive root of ``h^2 + (a - c - k (T - 1)) h - c a = 0``.  Exact for one thread, and
    for ``outside_ns = 0`` while every thread faults; otherwise the simulation's rate
    differs by how the holds line up (a few per cent).

    Parameters
    ----------
    n_threads : int or array
    fault_cpu_ns, line_ns, outside_ns : float
    lines : int
        Lines per fault: :func:`fault_lines` of the word's kind (default 2, one each).
    shared_ns, miss_ns : float
        ``fault_shared_ns``; ``vma_lock_reread_lines * line_miss_ns`` (default 0).

    Returns
    -------
    float or array
        Faults per second.
    """
    T = np.asarray(n_threads, dtype=float)
    a, ell = float(outside_ns), float(line_ns)
    c = float(fault_cpu_ns) + np.where(T > 1, float(miss_ns), 0.0)
    k = float(lines) * ell + float(shared_ns)
    b = a - c - k * (T - 1.0)
    h = (-b + np.sqrt(b * b + 4.0 * c * a)) / 2.0
    out = T * 1e9 / (a + h)
    return float(out) if out.ndim == 0 else out


# -- workloads --------------------------------------------------------------------------------

def _file_vmas(n_files, file_pages, base_addr=synth.DEFAULT_BASE):
    """The file VMAs of :func:`vmlab.trace.synth.app_start`: file ``f`` at ``base_addr +
    f * (file_pages + 64)`` pages."""
    return tuple(Vma(base_addr + f * (file_pages + 64) * PAGE,
                     base_addr + (f * (file_pages + 64) + file_pages) * PAGE,
                     backing="file", name=f"file{f}") for f in range(n_files))


def ladder_scenario(n_threads=4, reads_per_thread=40, n_files=2, file_pages=4096,
                    n_writers=2, writes_per_writer=4000, on_vma_fraction=0.25,
                    write_gap_ns=50_000, io_ns=HDD, costs=None, seed=0):
    """One workload for the whole ladder: threads reading file pages on a slow disk beside
    writers, some on other VMAs (new mappings) and some on the faulting VMAs (mprotect).

    Built on :func:`vmlab.trace.synth.app_start`: ``n_threads`` readers, each
    ``reads_per_thread`` random pages of ``n_files`` files (one VMA each); ``n_writers``
    threads make ``writes_per_writer`` writer calls ``write_gap_ns`` apart, a fraction
    ``on_vma_fraction`` of them on a file VMA, the rest new mappings that touch none.  The
    default disk is :data:`~vmlab.model.costs.HDD` (8 ms, MODEL.md's), so that holding a lock
    across a read shows; writers hold ``mmap_lock`` for ``mmap_cs_ns`` (this host's 3.9 µs).

    Returns
    -------
    Scenario
    """
    tr = synth.app_start(n_threads=n_threads, n_files=n_files, file_pages=file_pages,
                         faults_per_thread=reads_per_thread, n_writers=n_writers,
                         writes_per_writer=writes_per_writer, on_file_fraction=on_vma_fraction,
                         write_pages=16, fault_gap_ns=1_000, write_gap_ns=write_gap_ns,
                         seed=seed)
    costs = (costs or Costs()).replace(io_ns=as_dist(io_ns, "io_ns"))
    return Scenario(tr, vmas=_file_vmas(n_files, file_pages), costs=costs, seed=seed)


def lock_costs(line_ns, vma_line_ns=None, lookup_ns=VMA_LOOKUP_NS, costs=None, layout=None):
    """``costs`` (default ``Costs()``) with the lock-word costs of docs/model.md 15.1:
    ``mmap_lock_line_ns = line_ns``, ``vma_lock_line_ns = vma_line_ns`` (default the same:
    one line transfer costs the same whichever word it holds), ``vma_lookup_ns = lookup_ns``,
    and the lines each operation writes and re-reads from ``layout`` (a name of
    :data:`LOCK_LINES`; default: ``costs``' own, one each and none re-read unless set)."""
    vma_line_ns = line_ns if vma_line_ns is None else vma_line_ns
    return (costs or Costs()).replace(mmap_lock_line_ns=int(line_ns),
                                      vma_lock_line_ns=int(vma_line_ns),
                                      vma_lookup_ns=int(lookup_ns),
                                      **(LOCK_LINES[layout] if layout else {}))


def pft_scenario(n_threads, pages_per_thread=64, touch_gap_ns=50, costs=None,
                 vma_per_thread=False, phase_ns=None):
    """mmtests ``pft-threads``: ``n_threads`` threads first-touch their slices of one
    anonymous region (:func:`vmlab.trace.synth.pft_threads`), every touch a zero-fill fault.

    ``costs`` should carry the line costs (:func:`lock_costs`): without them nothing is
    shared and the rate grows linearly.  ``vma_per_thread`` gives each slice its own VMA
    (threads faulting separate mappings: the case per-VMA locks were built for) instead of
    pft's one region.  Each VMA has its ``anon_vma`` from the start (docs/model.md 15.8): the
    cited runs' rates are a steady state over a region of about 100 GB, whose first faults
    (which make it, under ``mmap_lock``) are a transient that a slice of ``pages_per_thread``
    pages would inflate.  For the same reason the threads start out of step, spread over
    ``phase_ns`` (default: one uncontended fault, :func:`pft_fault_ns`): identical threads
    started together would stay in step through the whole replay, each taking the word
    right after the one before, which no long run does (it matters for the re-reads of
    docs/model.md 15.1: the last of a lockstep group finds its word untouched).

    Returns
    -------
    Scenario
    """
    costs = costs or Costs()
    if phase_ns is None:
        phase_ns = pft_fault_ns(costs, touch_gap_ns)
    tr = synth.pft_threads(n_threads=n_threads, pages_per_thread=pages_per_thread,
                           touch_gap_ns=touch_gap_ns, phase_ns=phase_ns)
    if not vma_per_thread:
        vmas = Scenario(tr, backing="anon").resolved_vmas()
        return Scenario(tr, vmas=tuple(replace(v, anon_vma=True) for v in vmas), costs=costs)
    base, span = synth.DEFAULT_BASE, pages_per_thread * PAGE
    vmas = tuple(Vma(base + t * span, base + (t + 1) * span, backing="anon", name=f"slice{t}",
                     anon_vma=True) for t in range(n_threads))
    return Scenario(tr, vmas=vmas, costs=costs)



#: ebizzy's default chunk: ``record_size * 64 * 1024`` bytes = 512 KiB (ebizzy 0.3's
#: ``read_options``), 128 pages.
EBIZZY_CHUNK_PAGES = 128

#: ``spf`` with Dufour's per-VMA count (docs/model.md 15.4, ``spf_count="change"``): a writer
#: changes its VMAs' count once, where its call changes the VMA (15.12: an ``mmap`` at its
#: release, an ``munmap`` at its grant), instead of holding it odd to its release.  The count
#: of the cited 48-CPU run (Dufour's v11 series).
SPF_DUFOUR = get_policy("spf").replace(name="spf_dufour", spf_count="change")
#: Its colour in charts: the colour generated from its name is ``per_vma_lock``'s
#: (:func:`vmlab.plots.generated_color`), so it takes one no lock preset has.
SPF_DUFOUR_COLOR = "#117733"


def ebizzy_scenario(n_threads, n_iters=10, chunk_pages=EBIZZY_CHUNK_PAGES, neighbour_pages=1,
                    touch_gap_ns=10, iter_gap_ns=20, costs=None, merge=False):
    """ebizzy ``-mTt``: each thread mmaps a chunk, stores to each of its pages, munmaps it,
    ``n_iters`` times (:func:`vmlab.trace.synth.ebizzy`).

    ``-m`` allocates every chunk with ``mmap`` and frees it with ``munmap`` (two writers per
    iteration); ``-T`` only touches the pages (one store each: ``touch_gap_ns`` is the loop
    step, no copy or search); ``-t`` one thread per CPU.  The writers name their calls
    (:func:`vmlab.trace.synth.ebizzy`), so each holds ``mmap_lock`` for its call's cost
    (docs/model.md 15.12: ``hold_mmap_ns`` for the ``mmap`` of a chunk, ``hold_munmap_ns`` for
    the ``munmap`` of it filled, this host's; an ``munmap`` holds it for write for
    ``munmap_write_ns`` only, then for read while it zaps, 15.13); the default ``costs`` are
    ``Costs()``.

    The VMAs, two static forms of the kernel's (docs/model.md 15.8):

    * ``merge=False``: one ``anon`` VMA per chunk, as if chunks never merged; a writer's range
      covers ``neighbour_pages`` of each adjacent chunk, so it changes the neighbours' VMAs.
    * ``merge=True``: the VMAs the kernel keeps (:func:`vmlab.model.merge_vmas`).  Top-down
      ``mmap`` places each chunk right below the lowest one, or in the highest hole a
      ``munmap`` left, so the live chunks of all threads are adjacent anonymous mappings with
      equal flags: one VMA, the band.  Every ``mmap`` merges into the band (``vma_expand`` of
      its neighbour) and every ``munmap`` splits it: each writer changes the VMA every other
      thread is faulting in.  Writers' ranges are their chunk alone (``neighbour_pages`` is
      ignored): within the band it names the band.

    Every chunk has its ``anon_vma`` from the start (docs/model.md 15.8): in the kernel a new
    chunk merges into its neighbour and takes the neighbour's, and on this host an
    ``mmap``-touch-``munmap`` loop of 512 KiB chunks takes ``mmap_lock`` in no fault.

    Returns
    -------
    Scenario
    """
    tr = synth.ebizzy(n_threads=n_threads, n_iters=n_iters, chunk_pages=chunk_pages,
                      neighbour_pages=0 if merge else neighbour_pages,
                      touch_gap_ns=touch_gap_ns, iter_gap_ns=iter_gap_ns)
    span = chunk_pages * PAGE
    vmas = tuple(Vma(synth.DEFAULT_BASE + j * span, synth.DEFAULT_BASE + (j + 1) * span,
                     backing="anon", name=f"chunk{j}", anon_vma=True)
                 for j in range(n_threads * n_iters))
    if merge:
        vmas = merge_vmas(vmas)
    return Scenario(tr, vmas=vmas, costs=costs or Costs())


#: ``mmap_lock`` read acquisitions over the measured app start (all readers: the
#: tracepoints count every acquisition), under ``per_vma_lock`` and ``per_vma_retry_vma``.
RETRY_READS_BEFORE, RETRY_READS_AFTER = 20_010, 5_719

#: Readers of ``mmap_lock`` that are not faults, per retry, derived from the measurement.
#: Under ``per_vma_retry_vma`` no retry takes ``mmap_lock`` (docs/model.md 15.3), so the
#: 20,010 - 5,719 = 14,291 acquisitions the proposal removed are the retries, and the 5,719
#: left are the readers no lock design takes off ``mmap_lock`` (``/proc/PID/maps`` readers,
#: ``madvise``, ``mincore``, ``get_user_pages``...), the faults taken in kernel mode (which
#: take ``mmap_lock`` under every design, docs/model.md 15.3: on this host a third to a
#: half of a program's acquisitions, 15.8) and the fallbacks of VMA lookups: 5,719 / 14,291 =
#: 0.400 per retry, all of them played by ``LOCK_R`` readers (the split is not published).  vmlab's app start falls back a few times per thousand
#: faults, so the fallbacks are counted in this rate, not subtracted from it.
OTHER_READERS_PER_RETRY = RETRY_READS_AFTER / (RETRY_READS_BEFORE - RETRY_READS_AFTER)


def expected_major_faults(n_threads, faults_per_thread, n_files, file_pages):
    """The distinct pages :func:`vmlab.trace.synth.app_start`'s threads read (closed form):
    ``N = n_threads * faults_per_thread`` uniform draws from ``M = n_files * file_pages``
    pages touch ``M * (1 - (1 - 1/M)^N)`` distinct ones in expectation; on a cold page cache
    each is one major fault, whose first attempt waits for the read: one retry under
    ``per_vma_lock``."""
    M, N = n_files * file_pages, n_threads * faults_per_thread
    return M * -math.expm1(N * math.log1p(-1.0 / M))


def app_start_readers(n_threads, faults_per_thread, n_files, file_pages, writes_per_writer,
                      write_gap_ns, other_readers_per_retry=OTHER_READERS_PER_RETRY,
                      n_reader_threads=4):
    """The non-fault readers an app start of this size gains (docs/model.md 15.9):
    ``(reads per reader thread, mean gap in ns)``.

    ``other_readers_per_retry`` times the expected retries (:func:`expected_major_faults`)
    readers in all, shared by ``n_reader_threads`` threads and spread over the writers' span
    (``writes_per_writer * write_gap_ns``: the app's own calls, which the measurement's
    readers are among), so that they arrive at a steady rate while the app starts.
    """
    total = other_readers_per_retry * expected_major_faults(n_threads, faults_per_thread,
                                                            n_files, file_pages)
    per = int(round(total / n_reader_threads)) if n_reader_threads else 0
    if per == 0:
        return 0, 0
    return per, int(round(writes_per_writer * write_gap_ns / per))


def app_start_scenario(n_threads=16, n_files=8, file_pages=4096, faults_per_thread=400,
                       n_writers=2, writes_per_writer=400, on_file_fraction=0.25,
                       fault_gap_ns=20_000, write_gap_ns=100_000, costs=None, seed=0,
                       other_readers_per_retry=OTHER_READERS_PER_RETRY, n_reader_threads=4,
                       read_hold_ns=0, long_read_fraction=0.0, long_read_hold_ns=1_000_000,
                       invalidate_hz=0.0, rwsem_wake_all_readers=False, rwsem_steal=False):
    """An app start (:func:`vmlab.trace.synth.app_start`, with its defaults): ``n_threads``
    threads fault random pages of ``n_files`` cold files while ``n_writers`` threads map and
    mprotect, a fraction ``on_file_fraction`` of their calls on a file VMA, and
    ``n_reader_threads`` threads take ``mmap_lock`` for read without faulting (``LOCK_R``,
    docs/model.md 15.9) at the rate the measurement implies
    (:data:`OTHER_READERS_PER_RETRY` readers per retry, :func:`app_start_readers`; 0 for
    none), each holding it ``read_hold_ns`` (0: ``costs.mmap_read_cs_ns``, a short call) or,
    a fraction ``long_read_fraction`` of them, ``long_read_hold_ns``.  Reads take
    ``costs.io_ns`` (default this host's NVMe-like major fault, docs/model.md section 14).

    ``invalidate_hz > 0`` adds the what-if of docs/model.md 15.10: Poisson calls, at that mean
    rate, that drop every folio of the first file that no PTE maps, is not in flight and not
    pinned (the scenario's adversary, ``fadvise(DONTNEED)``): among them the folios a fault
    has read and not yet mapped, between its wake-up and its retry, so that the retry must
    read its page again, holding its lock.  A what-if, not a workload: neither kernel LRU
    makes the just-read folio a likely victim in that window (the classic lists put it at
    the head of the inactive list, MGLRU puts a folio added during a fault in the youngest
    generation) and how often the phone of the published figures lost it is not published,
    so the rate is swept (:func:`retry_whatif`), never taken as a reproduction.
    ``rwsem_wake_all_readers``, ``rwsem_steal``: the lock's rules of Linux 5.x-6.x (a release
    grants every queued reader; a woken writer takes the lock itself, the free lock is taken
    past the queue until its hand-off; :class:`~vmlab.model.Scenario`).

    Returns
    -------
    Scenario
    """
    per, gap = app_start_readers(n_threads, faults_per_thread, n_files, file_pages,
                                 writes_per_writer, write_gap_ns, other_readers_per_retry,
                                 n_reader_threads)
    tr = synth.app_start(n_threads=n_threads, n_files=n_files, file_pages=file_pages,
                         faults_per_thread=faults_per_thread, n_writers=n_writers,
                         writes_per_writer=writes_per_writer, on_file_fraction=on_file_fraction,
                         fault_gap_ns=fault_gap_ns, write_gap_ns=write_gap_ns, seed=seed,
                         n_readers=n_reader_threads if per else 0, reads_per_reader=per,
                         read_gap_ns=gap, read_hold_ns=read_hold_ns,
                         long_read_fraction=long_read_fraction,
                         long_read_hold_ns=long_read_hold_ns)
    adversary = Adversary(kind="poisson", rate_hz=invalidate_hz, vma=0) if invalidate_hz else None
    return Scenario(tr, vmas=_file_vmas(n_files, file_pages), costs=costs or Costs(), seed=seed,
                    adversary=adversary, rwsem_wake_all_readers=rwsem_wake_all_readers,
                    rwsem_steal=rwsem_steal)


#: The scan of ``scripts/readahead_retries.c`` as captured on this host (kernel 6.18,
#: ``read_ahead_kb`` 8192, so ``ra_pages`` 2048): a cold 64 MiB file, one byte of each page
#: read in order, a pause after every 64 pages (``usleep(2000)``, 2.1 ms measured).
READAHEAD_SCAN = {"n_pages": 16_384, "ra_pages": 2_048, "pause_ns": 2_100_000, "every": 64}


def readahead_scan_scenario(n_pages=READAHEAD_SCAN["n_pages"],
                            ra_pages=READAHEAD_SCAN["ra_pages"],
                            pause_ns=READAHEAD_SCAN["pause_ns"], every=READAHEAD_SCAN["every"],
                            base_addr=synth.DEFAULT_BASE):
    """One thread reading one byte of each page of a cold, shared, read-only file mapping
    of ``n_pages`` pages in order, pausing ``pause_ns`` after every ``every`` pages, under the
    kernel fault model with readahead (``ra_pages``) and fault-around (16 pages): the scan of
    ``scripts/readahead_retries.c`` (:data:`READAHEAD_SCAN`).  Under a per-VMA design a fault
    takes ``mmap_lock`` only to retry: after its read, and after a lookup that met the
    readahead mark (``readahead_drops_lock``, docs/model.md 11.5).

    Returns
    -------
    Scenario
    """
    addr = base_addr + np.arange(n_pages, dtype=np.uint64) * PAGE
    gap = np.zeros(n_pages, np.uint64)
    gap[every::every] = pause_ns
    vma = Vma(base_addr, base_addr + n_pages * PAGE, "file", name="file", prot="r",
              private=False)
    return Scenario(Trace(addr, gap_ns=gap), vmas=(vma,), fault_model="kernel",
                    ra_pages=ra_pages, fault_around_pages=16)


def readahead_anchor(capture, policies=("per_vma_lock", "per_vma_retry_vma"), scan=None):
    """The ``mmap_lock`` read acquisitions of a capture of ``scripts/readahead_retries.c``
    (``perf script`` text of ``mmap_lock:*``, the scan's lines only) beside those of vmlab's
    runs of the same scan (``scan``: :func:`readahead_scan_scenario`'s keywords, default
    :data:`READAHEAD_SCAN`) under ``policies``, and under ``per_vma_lock`` without
    ``readahead_drops_lock`` (the model before the knob, ``"per_vma_lock, no readahead
    drop"``).

    Returns
    -------
    DataFrame
        One row per source (``"this kernel"`` first): ``n_mmap_lock_read``, ``n_retries``
        (NaN for the capture), ``instants_ms``, the acquisitions' instants from the first, ms
        (a tuple), and ``largest_gap``, the largest distance between a run's instants and the
        capture's as a fraction of the capture's span (NaN when the counts differ or the
        capture has fewer than two).
    """
    from ..trace.readers import mmap_lock as mmap_lock_reader

    c = mmap_lock_reader.read_capture(capture)
    host = np.sort(c.acquire_ns[c.mode == 0])
    rows = [{"source": "this kernel", "n_mmap_lock_read": len(host), "n_retries": math.nan,
             "instants_ms": _from_first_ms(host)}]
    sc = readahead_scan_scenario(**(scan or {}))
    pols = [get_policy(p) for p in policies]
    pols.append(get_policy("per_vma_lock").replace(name="per_vma_lock, no readahead drop",
                                                   readahead_drops_lock=False))
    for r in simulate_many([(sc, p) for p in pols], desc="readahead scan"):
        lk = r.locks
        t = np.sort(lk.loc[(lk["mode"] == "read") & (lk["acquire_ns"] >= 0),
                           "acquire_ns"].to_numpy(np.int64))
        rows.append({"source": r.policy_name,
                     "n_mmap_lock_read": lock_count(r, "n_mmap_lock_read"),
                     "n_retries": int(r.faults["retries"].sum()),
                     "instants_ms": _from_first_ms(t)})
    span = rows[0]["instants_ms"][-1] if len(host) > 1 else 0.0
    for r in rows:
        a, b = np.array(r["instants_ms"]), np.array(rows[0]["instants_ms"])
        r["largest_gap"] = (float(np.max(np.abs(a - b)) / span) if span > 0 and len(a) == len(b)
                            else math.nan)
    return pd.DataFrame(rows)


def _from_first_ms(ns):
    """Sorted instants (ns) as ms from the first, a tuple."""
    return tuple(((ns - ns[0]) / 1e6).tolist()) if len(ns) else ()


# -- measures ---------------------------------------------------------------------------------

#: The counts of docs/model.md 15.6 and 15.9, from a run's summary.
LOCK_COUNTS = ("n_mmap_lock_read", "n_vma_lock_read", "n_vma_lock_fallbacks", "n_spf_aborts",
               "n_mmap_lock_read_other")

#: Read-wait bins of the 2025-26 measurements, ns: [1, 10) ms and [10, 100) ms.
WAIT_BINS_NS = ((1_000_000, 10_000_000), (10_000_000, 100_000_000))


def _bin_column(lo, hi):
    """The column of :func:`lock_measures` that counts the read waits in ``[lo, hi)`` ns."""
    return f"n_read_waits_{lo // 1_000_000}_{hi // 1_000_000}ms"


def _long_waits(table):
    """Per row of a :func:`lock_table`, the read waits of every bin of :data:`WAIT_BINS_NS`
    (1-100 ms)."""
    return sum(table[_bin_column(lo, hi)] for lo, hi in WAIT_BINS_NS)


def lock_count(result, name):
    """One of the :data:`LOCK_COUNTS` of a run: from its summary, or its counters (where
    the engine reports them)."""
    s = result.summary
    return int(s[name] if name in s else result.counters[name])


def mmap_lock_waits(result, mode):
    """The individual waits (ns) for ``mmap_lock`` in ``mode`` (``"read"``: faults, their
    fallbacks and retries, and ``LOCK_R`` readers; ``"write"``: writers and eager
    mappings), request to grant, of the requests that were granted."""
    lk = result.locks
    m = (lk["mode"] == mode) & (lk["acquire_ns"] >= 0)
    if "lock" in lk.columns:  # VMA locks and speculative attempts are rows too (15.6)
        m &= lk["lock"] == "mmap"
    return (lk["acquire_ns"] - lk["request_ns"])[m].to_numpy(dtype=np.int64)


def lock_measures(result):
    """The lock measures of one run: the counts of docs/model.md 15.6 and 15.9,
    ``n_mmap_lock_read_total`` (every read acquisition of ``mmap_lock``, faults' and other
    readers', as the kernel's tracepoints count them) and the ``mmap_lock`` waits (totals,
    means, the read-wait bins of :data:`WAIT_BINS_NS`; the read side is every reader's),
    as a dict."""
    out = {k: lock_count(result, k) for k in LOCK_COUNTS}
    out["n_mmap_lock_read_total"] = out["n_mmap_lock_read"] + out["n_mmap_lock_read_other"]
    s = result.summary
    waits = {side: mmap_lock_waits(result, side) for side in ("read", "write")}
    for side, w in waits.items():
        key = f"mmap_lock_{side}_wait_ns"
        # the summary's total where the run reports it (the engine's counter), else the sum
        # of the records' waits: the same figure (docs/model.md 15.6)
        total = int(s[key]) if key in s else int(w.sum())
        out[key] = total
        out[key + "_mean"] = total / len(w) if len(w) else math.nan
    rw = waits["read"]
    for lo, hi in WAIT_BINS_NS:
        name = _bin_column(lo, hi)
        out[name] = int(((rw >= lo) & (rw < hi)).sum())
    return out


def lock_table(results):
    """Per policy: faults, retries, the lock measures (:func:`lock_measures`), writer
    throughput, fault latency and run time.

    Parameters
    ----------
    results : dict
        Policy name -> Result.

    Returns
    -------
    DataFrame
        ``policy``, ``n_faults``, ``n_major``, ``n_retries``, the :data:`LOCK_COUNTS`,
        ``n_mmap_lock_read_total``,
        ``mmap_lock_read_wait_ns`` (and ``_mean``), ``mmap_lock_write_wait_ns`` (and
        ``_mean``), the read-wait bins, ``writer_ops_per_s``, ``fault_latency_ns_p50``/``_p99``,
        ``elapsed_ns``.
    """
    rows = []
    for name, r in results.items():
        s = r.summary
        row = {"policy": name}
        row.update({k: s[k] for k in ("n_faults", "n_major", "n_retries")})
        row.update(lock_measures(r))
        row.update({k: s[k] for k in ("writer_ops_per_s", "fault_latency_ns_p50",
                                      "fault_latency_ns_p99", "elapsed_ns")})
        rows.append(row)
    return pd.DataFrame(rows)


def run_policies(scenario, policies=LADDER_ORDER, n_jobs=None):
    """Run ``scenario`` under each of ``policies``; a dict name -> Result, in order."""
    runs = simulate_many([(scenario, p) for p in policies], n_jobs=n_jobs, desc="ladder")
    return {r.policy_name: r for r in runs}


def lespinasse_ladder(n_reads=20, n_lock_ops=4_000, lock_gap_ns=500, policies=LADDER_ORDER,
                      n_jobs=None):
    """Lespinasse's 2010 test (:func:`vmlab.studies.mmap_sem.lespinasse`: 18 ms random reads
    beside an mmap/munmap loop whose calls touch no file VMA) under every rung of the ladder.
    ``lock_gap_ns`` is the loop's own work per call (notebook 03 calibrates it to a 2010
    iteration: ``66_667 - mmap_cs_ns``).

    Returns
    -------
    DataFrame
        :func:`vmlab.studies.mmap_sem.mmap_sem_table` joined with :func:`lock_table`'s
        counts, one row per policy.
    """
    sc = mmap_sem.lespinasse(n_reads=n_reads, n_lock_ops=n_lock_ops, lock_gap_ns=lock_gap_ns)
    res = run_policies(sc, policies, n_jobs=n_jobs)
    counts = lock_table(res)[["policy", *LOCK_COUNTS, "n_retries"]]
    return mmap_sem.mmap_sem_table(res).merge(counts, on="policy")


def pft_table(results):
    """Per run of :func:`pft_scenario`: faults per second in all and per thread.

    Parameters
    ----------
    results : dict
        ``(n_threads, policy name) -> Result``.

    Returns
    -------
    DataFrame
        ``n_threads``, ``policy``, ``n_faults``, ``faults_per_s`` (faults over the run's
        elapsed time: every thread starts at 0), ``faults_per_s_per_thread``,
        ``vs_baseline`` (this policy's rate over the first policy's at the same thread count,
        minus 1).
    """
    rows = []
    for (T, name), r in results.items():
        s = r.summary
        rate = s["n_faults"] * 1e9 / s["elapsed_ns"]
        rows.append({"n_threads": int(T), "policy": name, "n_faults": s["n_faults"],
                     "faults_per_s": rate, "faults_per_s_per_thread": rate / T})
    df = pd.DataFrame(rows)
    first = df.groupby("n_threads")["faults_per_s"].transform("first")
    df["vs_baseline"] = df["faults_per_s"] / first - 1.0
    return df


def pft_costs(layout=PFT_LAYOUT, costs=None, shared=True):
    """The costs of :func:`pft_sweep`: ``costs`` (default ``Costs()``) with the lines of
    ``layout`` (a name of :data:`LOCK_LINES`; default the cited run's, ``"one_each"`` for the
    model before lines were counted), :data:`VMA_LOOKUP_NS` and, with ``shared`` (docs/model.md
    15.11), the work faults share (:func:`pft_shared_ns`, from the cited VMA-per-thread run)
    and a re-read's transfer (:func:`pft_miss_ns`, from the cited series-v2 run's 7-30 thread
    points); the line cost is :func:`pft_line_ns` for ``mmap_lock``'s lines and that shared
    work (the cited baseline's plateau over its 1-thread rate, 7.06x).  ``shared=False``:
    neither, the model before they existed."""
    c = costs or Costs()
    fault = pft_fault_ns(c)
    shared_ns = pft_shared_ns(fault + VMA_LOOKUP_NS) if shared else 0
    miss_ns = pft_miss_ns(fault + VMA_LOOKUP_NS) if shared else 0
    line = pft_line_ns(fault, lines=fault_lines(layout), shared_ns=shared_ns)
    return lock_costs(line, costs=c, layout=layout).replace(fault_shared_ns=shared_ns,
                                                            line_miss_ns=miss_ns)


def pft_sweep(threads=PFT_THREADS, policies=("fault_retry_v57", "per_vma_lock"),
              pages_per_thread=64, costs=None, vma_per_thread=False, n_jobs=None):
    """Run :func:`pft_scenario` at each thread count under each policy; :func:`pft_table`.

    ``costs`` default: :func:`pft_costs` (the lines of the cited run's kernels,
    :data:`PFT_LAYOUT`).
    """
    if costs is None:
        costs = pft_costs()
    keys, runs = [], []
    for T in threads:
        sc = pft_scenario(T, pages_per_thread=pages_per_thread, costs=costs,
                          vma_per_thread=vma_per_thread)
        for p in policies:
            keys.append((T, p))
            runs.append((sc, p))
    res = simulate_many(runs, n_jobs=n_jobs, desc="pft-threads")
    return pft_table({(T, r.policy_name): r for (T, _), r in zip(keys, res)})


def band_change_aborts(result):
    """The faults of an ebizzy run (:func:`ebizzy_scenario`, under ``spf``) whose speculative
    attempt a change of the merged band would abort under Dufour's per-VMA sequence count.

    In the kernel every writer changes the band (``merge=True`` of :func:`ebizzy_scenario`),
    but Dufour's count is odd only while ``__vma_adjust()`` rewrites the VMA, a few hundred
    ns, not for the writer's whole hold (``spf_count="hold"`` of docs/model.md 15.4, and
    Lespinasse's address-space count, are odd from grant to release, or to an ``munmap``'s
    downgrade, 15.13).  The engine simulates
    Dufour's count as ``spf_count="change"`` (:data:`SPF_DUFOUR`) with each change where the
    writer's call makes it (docs/model.md 15.12); this estimate places the changes the same
    way on any run's timeline (a VMA per chunk, or a run without Dufour's count), without
    their aborts feeding back into the run.  So on the run's own timeline a speculative attempt, from its count read to its end, aborts iff it
    contains a change instant: a ``munmap``'s split at its grant (the split comes before the
    unmap), an ``mmap``'s merge at its release (the merge comes after the search for a
    gap).  Each thread's writers alternate ``mmap``, ``munmap`` (:func:`vmlab.trace.synth.ebizzy`).
    An attempt that aborted or fell back in the run counts as aborted.  First order: the
    aborts found here do not feed back into the timeline (an abort would retry under
    ``mmap_lock``).  For evenly spread instants the fraction is the attempt's window over
    the mean time between changes.

    Returns
    -------
    int
        Faults whose speculative attempt would abort (0 for a run without speculative
        attempts).
    """
    vl = result.vma_locks
    seq = vl[vl["lock"] == "seq"]
    if not len(seq):
        return 0
    w, is_mmap = _ebizzy_writers(result)
    change = np.where(is_mmap, w["release_ns"], w["acquire_ns"]).astype(np.int64)
    change = np.sort(change[change >= 0])
    held = (seq["outcome"] == "held").to_numpy()
    t0 = seq["acquire_ns"].to_numpy(np.int64)
    t1 = seq["release_ns"].to_numpy(np.int64)
    # a change at the count read itself is seen as odd (an abort), one at the end is not
    inside = np.searchsorted(change, t1, side="left") > np.searchsorted(change, t0, side="left")
    return int((~held | inside).sum())


def _ebizzy_writers(result):
    """The granted ``LOCK_W`` records of an ebizzy run in each thread's order, and which are
    ``mmap`` (each thread's writers alternate ``mmap``, ``munmap``:
    :func:`vmlab.trace.synth.ebizzy`)."""
    lk = result.locks
    w = lk[(lk["kind"] == "lock_w") & (lk["acquire_ns"] >= 0)].sort_values(
        ["thread", "request_ns"], kind="stable")
    return w, (w.groupby("thread").cumcount() % 2 == 0).to_numpy()


def ebizzy_window(result):
    """The part of an ebizzy run that ebizzy measures: ``(stop_ns, iterations)``.

    ebizzy runs every thread for a fixed time and counts the iterations they complete in it;
    a simulated run gives each thread a fixed number of iterations instead, so its threads
    finish one after another and the last ones run with the lock to themselves.  The window
    is the run up to the first thread's last ``munmap`` release (every thread busy
    throughout, as in ebizzy's run); ``iterations`` is the ``munmap`` releases in it, every
    thread's.  A run in which some thread completed no iteration (too short) gives the whole
    run: its elapsed time and all its iterations.
    """
    w, is_mmap = _ebizzy_writers(result)
    un = w[~is_mmap & (w["release_ns"] >= 0).to_numpy()]
    last = un.groupby("thread")["release_ns"].max()
    if not len(last) or len(last) < w["thread"].nunique():
        return int(result.summary["elapsed_ns"]), int(result.summary["n_lock_w"]) // 2
    stop = int(last.min())
    return stop, int((un["release_ns"] <= stop).sum())


def writer_run_length(result):
    """How the writers of an ebizzy run line up: the mean length of the runs of consecutive
    writers (in the order ``mmap_lock`` granted them) that made the same call.  About 1-3
    when the threads' iterations are spread out (an ``mmap`` of one beside an ``munmap`` of
    another); the number of threads when they go in lockstep: every thread maps, every
    thread fills its chunk, every thread unmaps.  NaN without writers."""
    w, is_mmap = _ebizzy_writers(result)
    if not len(w):
        return math.nan
    k = is_mmap[np.argsort(w["acquire_ns"].to_numpy(), kind="stable")]
    return float(len(k) / (1 + np.count_nonzero(k[1:] != k[:-1])))


def spf_table(results):
    """Per run of :func:`ebizzy_scenario`: throughput and speculative aborts.

    Parameters
    ----------
    results : dict
        ``(n_threads, policy name) -> Result``.

    Returns
    -------
    DataFrame
        ``n_threads``, ``policy``, ``iterations_per_s`` (allocate-fill-free iterations, all
        threads, per second of the window in which every thread runs, as ebizzy counts
        them: :func:`ebizzy_window`), ``n_faults``, ``n_spf_aborts``, ``abort_fraction`` (aborts
        per fault), ``n_vma_lock_fallbacks``, ``n_mmap_lock_read``,
        ``band_abort_fraction`` (:func:`band_change_aborts` per fault: the abort rate of
        the merged band under Dufour's count, estimated on this run's timeline; NaN for a
        policy without speculative attempts), ``aborts_per_writer`` (aborts per writer
        call: the speculative attempts each change met), ``writer_run``
        (:func:`writer_run_length`), ``vs_baseline`` (this policy's throughput
        over the first policy's at the same thread count).
    """
    rows = []
    for (T, name), r in results.items():
        s = r.summary
        stop_ns, iters = ebizzy_window(r)
        aborts = lock_count(r, "n_spf_aborts")
        rows.append({"n_threads": int(T), "policy": name,
                     "iterations_per_s": iters * 1e9 / stop_ns,
                     "n_faults": s["n_faults"], "n_spf_aborts": aborts,
                     "abort_fraction": aborts / s["n_faults"],
                     "n_vma_lock_fallbacks": lock_count(r, "n_vma_lock_fallbacks"),
                     "n_mmap_lock_read": lock_count(r, "n_mmap_lock_read"),
                     "aborts_per_writer": aborts / max(int(s["n_lock_w"]), 1),
                     "writer_run": writer_run_length(r),
                     "band_abort_fraction": (band_change_aborts(r) / s["n_faults"]
                                             if r.policy.fault_lock == "speculative"
                                             else math.nan)})
    df = pd.DataFrame(rows)
    first = df.groupby("n_threads")["iterations_per_s"].transform("first")
    df["vs_baseline"] = df["iterations_per_s"] / first
    return df


def without_downgrade(costs):
    """``costs`` on a kernel before 4.20, whose ``munmap`` holds ``mmap_lock`` for write for
    its whole hold (no downgrade to read before the zap, docs/model.md 15.13): Dufour's
    speculative-fault series, and so its published ebizzy figures, ran on 4.17-rc."""
    return costs.replace(munmap_write_ns=costs.hold_munmap_ns)


def spf_sweep(threads=(16, 24, 48), policies=("fault_retry_v57", "per_vma_lock", "spf"),
              costs=None, n_jobs=None, downgrade=True, **ebizzy):
    """Run :func:`ebizzy_scenario` at each thread count (the cited 16- and 24-CPU runs: one
    thread per CPU; the abort count's 48) under each policy; :func:`spf_table`.  ``ebizzy``:
    :func:`ebizzy_scenario`'s keywords (``merge=True``: the kernel's merged VMAs).

    ``costs`` default: ``Costs()`` (each writer holds its call's cost, docs/model.md 15.12)
    with the lock-word costs of :func:`pft_sweep` (:func:`lock_costs`).  ``downgrade=False``:
    the kernel of the cited runs, whose ``munmap`` does not downgrade (:func:`without_downgrade`).
    """
    if costs is None:
        c = Costs()
        costs = lock_costs(pft_line_ns(pft_fault_ns(c)), costs=c)
    if not downgrade:
        costs = without_downgrade(costs)
    keys, runs = [], []
    for T in threads:
        sc = ebizzy_scenario(T, costs=costs, **ebizzy)
        for p in policies:
            keys.append((T, p))
            runs.append((sc, p))
    res = simulate_many(runs, n_jobs=n_jobs, desc="ebizzy")
    return spf_table({(T, r.policy_name): r for (T, _), r in zip(keys, res)})


def fault_read_holds(result, min_ns):
    """How many times a fault held ``mmap_lock`` for read at least ``min_ns`` (request granted,
    grant to release; holds still open at the horizon are not counted): a page-cache hit holds
    it for microseconds, an attempt that keeps it across a read of the disk (docs/model.md 5
    step 4, 15.10) for the read."""
    lk = result.locks
    m = (lk["kind"] == "fault") & (lk["mode"] == "read") & (lk["acquire_ns"] >= 0) & (
        lk["release_ns"] >= 0)
    if "lock" in lk.columns:
        m &= lk["lock"] == "mmap"
    return int(((lk["release_ns"] - lk["acquire_ns"])[m] >= min_ns).sum())


#: A fault's ``mmap_lock`` read hold this long or longer held the lock across a disk read:
#: an attempt's own CPU at the default costs (handler, page-cache hit, fault-around's PTEs)
#: is under 10 us, the reads of the retry what-if take milliseconds.
LONG_HOLD_NS = 100_000


def retry_table(results):
    """:func:`lock_table` of the app-start runs, with each policy's figures over the first
    policy's: ``reads_ratio`` (first's ``n_mmap_lock_read_total`` over this one's: every read
    acquisition, the faults' and the other readers', as the published measurement counted
    them from the tracepoints) and ``read_wait_ratio`` (first's total read wait over this
    one's, every reader's), and ``n_long_fault_holds``: the faults' ``mmap_lock`` read holds
    of at least :data:`LONG_HOLD_NS` (:func:`fault_read_holds`)."""
    df = lock_table(results)
    df["n_long_fault_holds"] = [fault_read_holds(r, LONG_HOLD_NS) for r in results.values()]
    first = df.iloc[0]
    df["reads_ratio"] = first["n_mmap_lock_read_total"] / df["n_mmap_lock_read_total"].where(
        df["n_mmap_lock_read_total"] > 0)
    df["read_wait_ratio"] = first["mmap_lock_read_wait_ns"] / df["mmap_lock_read_wait_ns"].where(
        df["mmap_lock_read_wait_ns"] > 0)
    return df


def whatif_write_gap_ns(io_ns, faults_per_thread=400, writes_per_writer=400,
                        fault_gap_ns=20_000, **_):
    """The writers' gap that spreads their calls (and the non-fault readers, which
    :func:`app_start_readers` spreads over the writers' span) over the faults' phase when reads
    take ``io_ns`` (its table's mean): ``faults_per_thread * (fault_gap_ns + mean) /
    writes_per_writer``, as in the plain app start, where 400 calls 100 us apart span about
    400 faults of 20 + 70 us.  Other :func:`app_start_scenario` arguments are ignored."""
    mean = as_dist(io_ns, "io_ns").table_mean_ns()
    return int(round(faults_per_thread * (fault_gap_ns + mean) / writes_per_writer))


def retry_whatif(invalidate_hz, io_ns, policies=("per_vma_lock", "per_vma_retry_vma"),
                 n_jobs=None, **app):
    """The retry what-if of docs/model.md 15.10: :func:`app_start_scenario` (``app`` its
    arguments) with reads of ``io_ns`` (a distribution, :func:`vmlab.model.costs.as_dist`)
    and, for each rate of ``invalidate_hz``, Poisson invalidations of the first file's
    unmapped folios (``invalidate_hz`` there), under each of ``policies``; the
    writers' gap is :func:`whatif_write_gap_ns` unless ``app`` gives one.

    Returns
    -------
    DataFrame
        :func:`retry_table`'s columns (ratios against the first policy at the same rate),
        ``invalidate_hz``, ``long_waits`` (the read waits of 1-100 ms, :data:`WAIT_BINS_NS`)
        and ``reread_fraction``: the faults' ``mmap_lock`` holds across a read
        (``n_long_fault_holds``) per retry, the share of retries that read their page again
        under the lock.
    """
    costs = (app.pop("costs", None) or Costs()).replace(io_ns=io_ns)
    if "write_gap_ns" not in app:
        app["write_gap_ns"] = whatif_write_gap_ns(costs.io_ns, **app)
    runs, keys = [], []
    for hz in invalidate_hz:
        sc = app_start_scenario(costs=costs, invalidate_hz=hz, **app)
        for p in policies:
            runs.append((sc, p))
            keys.append(hz)
    res = simulate_many(runs, n_jobs=n_jobs, desc="retry what-if")
    frames = []
    for hz in dict.fromkeys(keys):
        df = retry_table({r.policy_name: r for k, r in zip(keys, res) if k == hz})
        df.insert(0, "invalidate_hz", hz)
        df["long_waits"] = _long_waits(df)
        df["reread_fraction"] = df["n_long_fault_holds"] / df["n_retries"].where(
            df["n_retries"] > 0)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def wakeup_sweep(scales, load="busy", seeds=(0,), policies=("per_vma_lock", "per_vma_retry_vma"),
                 n_jobs=None, io=True, **app):
    """The app start (:func:`app_start_scenario`, ``app`` its arguments) on a machine whose
    CPUs are busy (docs/model.md 15.14): a thread granted ``mmap_lock`` after a wait runs
    after a wake-up drawn from this host's measured delays under ``load``
    (:func:`vmlab.studies.lock_wakeups.host_delays`), and (``io``) a thread whose read
    completed after one drawn from the host's wake-ups after reads, each times a scale of
    ``scales`` (0: an idle machine), under each of ``policies`` and ``seeds``; the lock is
    6.x's (``rwsem_wake_all_readers``, ``rwsem_steal``: docs/model.md section 4).

    Returns
    -------
    DataFrame
        :func:`retry_table`'s columns (ratios against the first policy at the same scale and
        seed), ``scale``, ``seed``, ``mean_wakeup_ns`` (the scaled lock wake-ups' mean) and
        ``long_waits`` (the read waits of 1-100 ms, :data:`WAIT_BINS_NS`).
    """
    from .lock_wakeups import host_delays

    costs = app.pop("costs", None) or Costs()
    runs, keys = [], []
    for scale in scales:
        wake = host_delays(load, scale)
        reads = host_delays(load, scale, io=True) if io else costs.io_wakeup_ns
        for seed in seeds:
            sc = app_start_scenario(costs=costs.replace(lock_wakeup_ns=wake,
                                                        io_wakeup_ns=reads), seed=seed,
                                    **{"rwsem_wake_all_readers": True, "rwsem_steal": True,
                                       **app})
            for p in policies:
                runs.append((sc, p))
                keys.append((scale, seed, wake.table_mean_ns()))
    res = simulate_many(runs, n_jobs=n_jobs, desc="wake-up sweep")
    frames = []
    for key in dict.fromkeys(keys):
        df = retry_table({r.policy_name: r for k, r in zip(keys, res) if k == key})
        df.insert(0, "mean_wakeup_ns", key[2])
        df.insert(0, "seed", key[1])
        df.insert(0, "scale", key[0])
        df["long_waits"] = _long_waits(df)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


#: The columns :func:`wakeup_table` averages.
WAKEUP_COLUMNS = ("mean_wakeup_ns", "n_mmap_lock_read_total", "mmap_lock_read_wait_ns",
                  "mmap_lock_read_wait_ns_mean", "mmap_lock_write_wait_ns_mean",
                  "n_read_waits_1_10ms", "n_read_waits_10_100ms", "long_waits", "reads_ratio",
                  "read_wait_ratio")


def wakeup_table(runs, by="scale"):
    """:func:`wakeup_sweep`'s rows (or several sweeps', told apart by column ``by``) in brief:
    the means of :data:`WAKEUP_COLUMNS` over the seeds per ``by`` and policy, the range of
    ``read_wait_ratio`` over the seeds (``read_wait_ratio_min``, ``_max``) and ``long_left``:
    the policy's mean read waits of 1-100 ms over the first policy's (NaN where it had none).

    Returns
    -------
    DataFrame
        Indexed by (``by``, ``policy``), in the rows' order.
    """
    keys = [by, "policy"]
    out = runs.groupby(keys, sort=False)[list(WAKEUP_COLUMNS)].mean()
    ratio = runs.groupby(keys, sort=False)["read_wait_ratio"]
    out["read_wait_ratio_min"] = ratio.min()
    out["read_wait_ratio_max"] = ratio.max()
    first = out.xs(runs["policy"].iloc[0], level="policy")["long_waits"]
    base = first.reindex(out.index.get_level_values(by)).to_numpy(dtype=float)
    out["long_left"] = out["long_waits"].to_numpy() / np.where(base > 0, base, np.nan)
    return out


#: The designs of the 2025-26 debate (KERNEL-2026.md section 2): 6.4's retry under
#: ``mmap_lock``, the proposed retry under the VMA lock, and the counter-proposal that holds
#: the VMA lock across the read and never retries.
DEBATE = ("per_vma_lock", "per_vma_retry_vma", "per_vma_no_retry")

#: The columns :func:`busy_designs_table` averages.
BUSY_DESIGN_COLUMNS = ("n_mmap_lock_read_total", "mmap_lock_read_wait_ns",
                       "mmap_lock_read_wait_ns_mean", "mmap_lock_write_wait_ns",
                       "vma_lock_write_wait_ns", "writer_ops_per_s", "fault_latency_ns_p50",
                       "fault_latency_ns_p99", "elapsed_ns", "long_waits")


def busy_designs(load="busy", seeds=(0,), policies=DEBATE, n_jobs=None, **app):
    """The app start (:func:`app_start_scenario`, ``app`` its arguments) on a machine whose
    CPUs are busy, under each of ``policies`` and ``seeds``: this host's measured lock
    wake-ups under ``load`` (``lock_wakeup_ns``, as :func:`wakeup_sweep` at scale 1) and the
    6.x lock, with the wake-ups after reads either ``wakeup_ns`` alone (``io_wakeups``
    False) or this host's measured ones too (``io_wakeup_ns``, True:
    :func:`vmlab.studies.lock_wakeups.host_delays` with ``io``).  A design that holds its
    lock across the read holds it through that wake-up as well (docs/model.md 15.14).

    Returns
    -------
    DataFrame
        :func:`retry_table`'s columns (ratios against the first policy with the same
        wake-ups and seed), ``vma_lock_write_wait_ns`` (the writers' waits for the readers
        of the VMAs they change, 15.6), ``long_waits`` (read waits of 1-100 ms),
        ``io_wakeups`` and ``seed``.
    """
    from .lock_wakeups import host_delays

    costs = (app.pop("costs", None) or Costs()).replace(lock_wakeup_ns=host_delays(load))
    io = host_delays(load, io=True)
    runs, keys = [], []
    for io_on in (False, True):
        for seed in seeds:
            sc = app_start_scenario(costs=costs.replace(io_wakeup_ns=io if io_on else 0),
                                    seed=seed, **{"rwsem_wake_all_readers": True,
                                                  "rwsem_steal": True, **app})
            for p in policies:
                runs.append((sc, p))
                keys.append((io_on, seed))
    res = simulate_many(runs, n_jobs=n_jobs, desc="busy designs")
    frames = []
    for key in dict.fromkeys(keys):
        got = [r for k, r in zip(keys, res) if k == key]
        df = retry_table({r.policy_name: r for r in got})
        df["vma_lock_write_wait_ns"] = [int(r.summary["vma_lock_write_wait_ns"]) for r in got]
        df["long_waits"] = _long_waits(df)
        df.insert(0, "seed", key[1])
        df.insert(0, "io_wakeups", key[0])
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def busy_designs_table(runs):
    """:func:`busy_designs`' rows in brief: the means of :data:`BUSY_DESIGN_COLUMNS` over the
    seeds, indexed by (``io_wakeups``, ``policy``) in the rows' order."""
    return runs.groupby(["io_wakeups", "policy"], sort=False)[list(BUSY_DESIGN_COLUMNS)].mean()


def tracepoint_wait_bins(results, capture=None):
    """``mmap_lock`` wait bins the way the 2025-26 measurements were made: from the kernel's
    tracepoints.

    Each run's ``mmap_lock`` operations are written as ``perf script`` text
    (:meth:`vmlab.results.Result.write_mmap_lock_events`, into a temporary folder removed
    afterwards) and read back with :func:`vmlab.trace.readers.mmap_lock.read_capture`, the
    reader of a real capture; ``capture``, a real ``perf record -e 'mmap_lock:*'`` capture
    printed by ``perf script``, goes through the same reader.

    Parameters
    ----------
    results : dict
        Policy name -> Result (with records).
    capture : str or Path, optional

    Returns
    -------
    DataFrame
        ``source`` (the policy, or ``"capture: <file name>"``), ``mode`` (read, write),
        ``bin`` (:data:`vmlab.trace.readers.mmap_lock.WAIT_BIN_LABELS`), ``n_waits``, and
        ``fraction`` (of that source's waits in that mode).
    """
    import tempfile
    from pathlib import Path

    from ..trace.readers.mmap_lock import read_capture

    summaries = {}
    with tempfile.TemporaryDirectory(prefix="vmlab-tracepoints-") as tmp:
        for name, r in results.items():
            path = r.write_mmap_lock_events(Path(tmp) / f"{name}.txt")
            summaries[name] = read_capture(path).wait_summary()
    if capture is not None:
        summaries[f"capture: {Path(capture).name}"] = read_capture(capture).wait_summary()
    rows = []
    for source, ws in summaries.items():
        for mode in ("read", "write"):
            n = max(ws[mode]["n"], 1)
            for label, count in ws[mode]["bins"].items():
                rows.append({"source": source, "mode": mode, "bin": label, "n_waits": count,
                             "fraction": count / n})
    return pd.DataFrame(rows)


def closed_form_reads(result, policy):
    """What docs/model.md 15.3 says ``n_mmap_lock_read`` (the faults' read acquisitions;
    ``LOCK_R`` readers add ``n_mmap_lock_read_other`` under every design) must be, from the
    run's faults and fallbacks (no signals): every VMA lookup that falls back takes
    ``mmap_lock`` once; under ``per_vma_lock`` every retry takes it once more (a fault whose
    first attempt waited for I/O takes it exactly once, for its retry, which keeps it if it
    must read again, 15.10); under ``per_vma_retry_vma`` a retry looks its VMA up again
    instead, and ``per_vma_no_retry`` never retries."""
    fallbacks = lock_count(result, "n_vma_lock_fallbacks")
    if policy == "per_vma_lock":
        return int(result.faults["retries"].sum()) + fallbacks
    return fallbacks
