"""Retry storms and the fadvise(DONTNEED) adversary: Andrew Morton's objection (notebook 04).

A fault that drops ``mmap_sem`` during its read retries once the page is in; an adversary
calling ``fadvise(FADV_DONTNEED)`` in between evicts the page and the retry reads it again.
Bounded retries (``fault_retry``) make progress; unbounded ones can livelock.

===================================  =======================================================
:func:`fadvise_attack`               the scenario: a victim reading a file beside the adversary
:func:`victim_outcome`               whether the victim finished, and whether it is livelocked
:func:`grid`                         slowdown and livelock over adversary rates, I/O
                                     latencies, policies
:func:`retry_window_ns`              the window in which the adversary can evict a page
:func:`eviction_probability`         a Poisson adversary's chance to hit that window
:func:`unbounded_retries_per_fault`  mean retries per fault of ``fault_retry_unbounded``:
                                     ``1 + p / (1 - p)``
:func:`retries_agreement`            that formula against a grid's measured retries
:func:`bounded_retry_max_slowdown`   the exact worst slowdown of ``fault_retry`` (below 2)
===================================  =======================================================

*Livelock* (:func:`grid`): the victim has not finished at the horizon *and* the fault it is
stuck in has been retried at least ``livelock_retries`` times (default 2, more than the
single retry a bounded ``fault_retry`` can take).  The engine's own ``livelock`` flag marks
any thread caught at the horizon after one retry, which a bounded policy also is when the
horizon falls inside its second attempt.

*Slowdown with signals* (:func:`grid`): ``slowdown`` is the ratio of whole run times, signal
handling included.  The signals are Poisson arrivals in both runs; the attacked run, about
twice as long, draws its own number of them, so its handling need not be exactly in
proportion and ``slowdown`` can pass :func:`bounded_retry_max_slowdown` by that luck alone.
``slowdown_net_of_signals`` compares the run times without the victim's signal handling.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import ScenarioError
from ..model.costs import Costs, Fixed, as_dist
from ..model.policies import get_policy
from ..model.scenario import Adversary, Scenario, Vma, poisson_signals
from ..simulation import simulate_many
from ..trace import synth
from ._stats import z_score

#: The three retry variants of MODEL.md section 4.
RETRY_POLICIES = ("fault_retry", "fault_retry_unbounded", "fault_retry_v57")


def fadvise_attack(adversary_rate_hz, io_ns, signal_rate_hz=0.0, kind="poisson", n_faults=20,
        gap_ns=1_000, horizon_ns=None, horizon_factor=20, n_victims=1, costs=None, seed=0):
    """Andrew Morton's objection: a victim faulting a file beside an fadvise adversary.

    The victim (thread 0; with ``n_victims`` > 1, threads ``0..n_victims-1``, each with its
    own pages) reads ``n_faults`` pages of a file in order (each a major fault); an
    adversary calls ``fadvise(FADV_DONTNEED)`` on the whole file at ``adversary_rate_hz``.
    It evicts only resident, unlocked, *unmapped* pages: exactly a lock-dropping fault's
    page between its I/O completion and its retry's lookup (about ``wakeup_ns + fault_ns +
    struct_page_ns`` = 2.6 µs at the defaults).

    Parameters
    ----------
    adversary_rate_hz : float
        fadvise calls per second (0: no adversary).
    io_ns : Dist or int
        Read time per page.
    signal_rate_hz : float
        Poisson signals to the victim (a signal storm; 0: none).
    kind : {"poisson", "periodic"}
        The adversary's schedule.  A periodic schedule faster than the window evicts at
        every retry; a Poisson one with probability ``1 - exp(-rate * window)``.
    n_faults : int
        Pages the victim reads.
    gap_ns : int
        Victim compute time before each access, in ns.
    horizon_ns : int, optional
        End of the run; default ``horizon_factor`` times the victim's run time without an
        adversary (estimated as ``n_faults * (mean io + gap + 10 µs)``).
    horizon_factor : float
    n_victims : int
        Victim threads (default 1).
    costs : Costs, optional
    seed : int

    Returns
    -------
    Scenario
    """
    if kind not in ("poisson", "periodic"):
        raise ScenarioError(f"fadvise_attack(): kind must be 'poisson' or 'periodic', got {kind!r}")
    io = as_dist(io_ns, "io_ns")
    costs = (costs or Costs()).replace(io_ns=io)
    pages = n_victims * n_faults
    tr = synth.shared_file(n_victims, n_faults, pages=pages, pattern="sequential",
                           gap_ns=int(gap_ns), seed=seed)
    vma = Vma(synth.DEFAULT_BASE, synth.DEFAULT_BASE + pages * tr.page_size, backing="file",
              name="file")
    adv = None
    if adversary_rate_hz and adversary_rate_hz > 0:
        if kind == "poisson":
            adv = Adversary(kind="poisson", rate_hz=float(adversary_rate_hz))
        else:
            adv = Adversary(kind="periodic", period_ns=max(1, int(round(1e9 / adversary_rate_hz))))
    if horizon_ns is None:
        horizon_ns = int(horizon_factor * n_faults * (io.table_mean_ns() + gap_ns + 10_000))
    signals = (poisson_signals(signal_rate_hz),) if signal_rate_hz and signal_rate_hz > 0 else ()
    return Scenario(tr, vmas=(vma,), policy="fault_retry", costs=costs, adversary=adv,
                    signals=signals, horizon_ns=int(horizon_ns), seed=seed)


def _io_wakeups(costs):
    """The engine's table of ``io_wakeup_ns`` draws (docs/model.md 15.14: a thread woken
    from its read runs ``wakeup_ns`` plus one draw later; ``Fixed(0)`` by default)."""
    return costs.io_wakeup_ns.table().astype(np.float64)


def retry_window_ns(costs=None):
    """The adversary's mean window, in ns: from a lock-dropping fault's I/O completion to its
    retry's lookup, ``wakeup_ns`` plus the mean ``io_wakeup_ns`` draw plus ``fault_ns +
    struct_page_ns`` (docs/model.md sections 5 and 15.14: the page is resident, unmapped and
    unpinned from the completion until the retry, which starts when the woken thread runs,
    takes the uncontended lock at once and looks the page up after its handler CPU).
    2.6 µs at the default costs."""
    c = costs or Costs()
    return float(c.wakeup_ns + c.fault_ns + c.struct_page_ns + c.io_wakeup_ns.table_mean_ns())


def eviction_probability(rate_hz, costs=None):
    """The chance ``p`` that a Poisson adversary at ``rate_hz`` calls ``fadvise`` in one
    retry's window (and evicts the page): ``1 - exp(-rate_hz * window)`` for a fixed window;
    with a drawn ``io_wakeup_ns`` (``X``), ``1 - exp(-rate_hz * w0) E[exp(-rate_hz X)]``
    over the engine's table of ``X`` (``w0`` the window's fixed part)."""
    c = costs or Costs()
    lam = float(rate_hz) / 1e9
    w0 = c.wakeup_ns + c.fault_ns + c.struct_page_ns
    return -math.expm1(-lam * w0 + math.log(float(np.mean(np.exp(-lam * _io_wakeups(c))))))


def unbounded_retries_per_fault(rate_hz, costs=None):
    """Mean retries per fault of ``fault_retry_unbounded`` (one victim, a Poisson adversary).

    Every major fault retries once by design (its first attempt drops the lock for the
    read); each retry then finds the page evicted with probability ``p``
    (:func:`eviction_probability`), independently, and retries again.  So the retries are
    1 plus a geometric number of failures: ``1 + p / (1 - p)`` (= ``1 / (1 - p)`` =
    ``exp(rate_hz * window)``).  The standard deviation of one fault's retries is
    ``sqrt(p) / (1 - p)`` (:func:`unbounded_retries_sd`).
    """
    p = eviction_probability(rate_hz, costs)
    return 1.0 + p / (1.0 - p) if p < 1 else math.inf


def unbounded_retries_sd(rate_hz, costs=None):
    """Standard deviation of one fault's retries under ``fault_retry_unbounded``:
    ``sqrt(p) / (1 - p)`` (the geometric count of failures; the first retry is certain)."""
    p = eviction_probability(rate_hz, costs)
    return math.sqrt(p) / (1.0 - p) if p < 1 else math.inf


def retries_agreement(grid_df, policy="fault_retry_unbounded", costs=None, max_z=3.0):
    """:func:`unbounded_retries_per_fault` against the retries a :func:`grid` measured.

    Per adversary rate, the runs of ``policy`` (over the I/O latencies) are pooled:
    ``measured`` = their retries / their faults.  ``se`` is the standard error of that mean
    (``sqrt(p) / (1 - p) / sqrt(faults)``) and ``z = (measured - predicted) / se``.  Where a
    run did not finish, the fault stuck at the horizon is cut short, so ``measured`` is only a
    lower bound (``finished`` False) and the comparison does not apply.

    Returns
    -------
    DataFrame
        Indexed by ``adversary_rate_hz``: ``p``, ``predicted``, ``measured``, ``n_faults``,
        ``se``, ``z``, ``finished`` (every run of that rate), ``agrees`` (finished and
        ``|z| <= max_z``).
    """
    d = grid_df[grid_df["policy"] == policy]
    if "kind" in d and (d["kind"] != "poisson").any():
        raise ScenarioError(f"retries_agreement: the closed form is a Poisson adversary's; "
                            f"this grid's adversary is {sorted(set(d['kind']) - {'poisson'})}")
    rows = []
    for rate, g in d.groupby("adversary_rate_hz", sort=True):
        n = int(g["n_faults"].sum())
        measured = float(g["n_retries"].sum()) / n if n else math.nan
        predicted = unbounded_retries_per_fault(rate, costs)
        se = unbounded_retries_sd(rate, costs) / math.sqrt(n) if n else math.nan
        z = z_score(measured, predicted, se)   # (no adversary: every fault retries once)
        finished = bool(g["finished"].all())
        rows.append({"adversary_rate_hz": float(rate), "p": eviction_probability(rate, costs),
                     "predicted": predicted, "measured": measured, "n_faults": n, "se": se,
                     "z": z, "finished": finished,
                     "agrees": finished and abs(z) <= max_z})
    columns = ["adversary_rate_hz", "p", "predicted", "measured", "n_faults", "se", "z",
               "finished", "agrees"]
    return pd.DataFrame(rows, columns=columns).set_index("adversary_rate_hz")


def bounded_retry_max_slowdown(io_ns, gap_ns=1_000, costs=None):
    """The worst slowdown of a ``fault_retry`` victim of :func:`fadvise_attack` (one victim,
    a fixed read time; net of signal handling), exact in the model's semantics.

    Per fault without the adversary: the gap, a first attempt (handler CPU
    ``F = fault_ns + struct_page_ns``, the read, ``wakeup_ns``), a retry that finds the page
    (``F + pagecache_hit_ns``) and the access (``access_ns``).  When the adversary evicts the
    page in the window, the retry reads it again holding the lock: ``io + wakeup_ns`` in
    place of ``pagecache_hit_ns``, once, since a pinned page under the lock is not evictable.
    Every fault losing its page gives, with ``wakeup`` the wake-up after a read
    (``wakeup_ns`` plus the mean ``io_wakeup_ns`` draw, docs/model.md 15.14),

        (gap + access + 2 F + 2 (io + wakeup)) / (gap + access + 2 F + io + wakeup + hit)
        = 2 - (gap + access + 2 F + 2 hit) / (gap + access + 2 F + io + wakeup + hit),

    below 2 by the fixed per-fault costs over the per-fault run time (1.9962 for 1 ms reads
    at the defaults).  For a distribution of read times (or of wake-ups) the mean is used
    (then the bound holds on average, not run by run).
    """
    c = costs or Costs()
    io_mean = _io_label(io_ns)
    wake = c.wakeup_ns + c.io_wakeup_ns.table_mean_ns()
    f = c.fault_ns + c.struct_page_ns
    fixed = gap_ns + c.access_ns + 2 * f
    return (fixed + 2 * (io_mean + wake)) / (fixed + io_mean + wake + c.pagecache_hit_ns)


def _signal_handling_ns(result):
    """The victims' time handling signals (the threads' ``signal_ns``), in ns."""
    return int(result.threads["signal_ns"].sum())


def _io_label(io):
    """The mean of a read time ``io`` (ns or a distribution), in ns: a grid row's
    ``io_ns``."""
    io = as_dist(io, "io_ns")
    return float(io.value_ns) if isinstance(io, Fixed) else io.table_mean_ns()


def victim_outcome(result, livelock_retries=2):
    """Whether the DoS victim finished, and whether it is livelocked (see the module's notes).

    Returns
    -------
    dict
        ``finished``, ``max_retries`` (most retries of one fault, finished or not),
        ``stuck_retries`` (retries of the fault in progress at the horizon, 0 if none),
        ``livelock``.
    """
    f = result.faults
    th = result.threads
    finished = bool((th["state"] == "done").all())
    unf = f[f["outcome"] == "unfinished"]
    stuck = int(unf["retries"].max()) if len(unf) else 0
    return {"finished": finished,
            "max_retries": int(f["retries"].max()) if len(f) else 0,
            "stuck_retries": stuck,
            "livelock": (not finished) and stuck >= livelock_retries}


def grid(rates_hz, io_ns_values, policies=RETRY_POLICIES, horizon_ns=None,
             signal_rate_hz=0.0, kind="poisson", n_faults=20, horizon_factor=20,
             livelock_retries=2, seed=0, n_jobs=None):
    """The DoS experiment over a grid of adversary rates, I/O latencies and policies.

    Every point is compared with the same victim, I/O latency and policy without an
    adversary (the baseline).

    Parameters
    ----------
    rates_hz : sequence of float
        Adversary rates (fadvise calls per second).
    io_ns_values : sequence of Dist or int
        I/O latencies.
    policies : sequence of str or Policy
        Default: the three retry variants.
    horizon_ns : int, optional
        Fixed horizon for every point; default ``horizon_factor`` times the point's
        baseline run time.
    signal_rate_hz : float
        Signal storm against the victim (also in the baseline).
    kind : {"poisson", "periodic"}
    n_faults : int
    horizon_factor : float
    livelock_retries : int
        Retries of the fault stuck at the horizon from which a victim that did not finish
        counts as livelocked.
    seed : int
    n_jobs : int, optional

    Returns
    -------
    DataFrame
        One row per (rate, io, policy): ``adversary_rate_hz``, ``io_ns`` (mean),
        ``policy``, ``signal_rate_hz``, ``elapsed_ns``, ``baseline_elapsed_ns``,
        ``slowdown`` (elapsed / baseline; a lower bound when unfinished),
        ``retries_per_fault``, ``max_retries``, ``n_faults_done``, ``n_adversary_evictions``,
        ``n_wasted_io``, ``finished``, ``livelock``, ``horizon_ns``, then ``n_faults``,
        ``n_retries``, ``n_signals`` and ``baseline_n_signals`` (signals delivered),
        ``signal_handling_ns`` and ``baseline_signal_handling_ns`` (the victim's time
        handling them), ``slowdown_net_of_signals`` (the run times without that handling;
        equal to ``slowdown`` without signals) and ``fault_retry_bound``
        (:func:`bounded_retry_max_slowdown` for the point's I/O latency: the most
        ``fault_retry``'s ``slowdown_net_of_signals`` can be), and ``kind`` (the adversary's:
        :func:`retries_agreement` applies to a Poisson one only).
    """
    pols = [get_policy(p) for p in policies]
    ios = list(io_ns_values)
    base_runs = [(fadvise_attack(0, io, signal_rate_hz=signal_rate_hz, kind=kind,
                                 n_faults=n_faults, seed=seed, horizon_factor=horizon_factor), p)
                 for io in ios for p in pols]
    baselines = dict(zip([(i, p.name) for i in range(len(ios)) for p in pols],
                         simulate_many(base_runs, keep=lambda r: (
                                           r.summary["elapsed_ns"], _signal_handling_ns(r),
                                           r.summary["n_signals"]), n_jobs=n_jobs)))
    jobs, runs = [], []
    for rate in rates_hz:
        for i in range(len(ios)):
            for p in pols:
                base = baselines[(i, p.name)]
                h = horizon_ns if horizon_ns is not None else int(horizon_factor * base[0])
                jobs.append((rate, i, p, base, h))
                runs.append((fadvise_attack(rate, ios[i], signal_rate_hz=signal_rate_hz,
                                            kind=kind, n_faults=n_faults, horizon_ns=h,
                                            seed=seed), p))

    def row(result):
        s = result.summary
        out = victim_outcome(result, livelock_retries)
        return s, out, int((result.faults["outcome"] == "done").sum()), _signal_handling_ns(result)

    rows = []
    for (rate, i, p, (b, b_sig, b_nsig), h), (s, out, n_done, sig) in zip(
            jobs, simulate_many(runs, keep=row, n_jobs=n_jobs)):
        work, b_work = s["elapsed_ns"] - sig, b - b_sig
        rows.append({
            "adversary_rate_hz": float(rate),
            "io_ns": _io_label(ios[i]),
            "policy": p.name,
            "signal_rate_hz": float(signal_rate_hz),
            "elapsed_ns": s["elapsed_ns"],
            "baseline_elapsed_ns": b,
            "slowdown": s["elapsed_ns"] / b if b else math.nan,
            "retries_per_fault": s["retries_per_fault"],
            "max_retries": out["max_retries"],
            "n_faults_done": n_done,
            "n_adversary_evictions": s["n_adversary_evictions"],
            "n_wasted_io": s["n_wasted_io"],
            "finished": out["finished"],
            "livelock": out["livelock"],
            "horizon_ns": h,
            "n_faults": s["n_faults"],
            "n_retries": s["n_retries"],
            "n_signals": s["n_signals"],
            "baseline_n_signals": b_nsig,
            "signal_handling_ns": sig,
            "baseline_signal_handling_ns": b_sig,
            "slowdown_net_of_signals": work / b_work if b_work else math.nan,
            "fault_retry_bound": bounded_retry_max_slowdown(ios[i]),
            "kind": kind,
        })
    return pd.DataFrame(rows)
