"""Retry storms and the fadvise(DONTNEED) adversary: Andrew Morton's objection (notebook 04).

A fault that drops ``mmap_sem`` during its read retries once the page is in; an adversary
calling ``fadvise(FADV_DONTNEED)`` in between evicts the page and the retry reads it again.
Bounded retries (``fault_retry``) make progress; unbounded ones can livelock.

======================  ====================================================================
:func:`fadvise_attack`  the scenario: a victim reading a file beside the adversary
:func:`victim_outcome`  whether the victim finished, and whether it is livelocked
:func:`grid`            slowdown and livelock over adversary rates, I/O latencies, policies
======================  ====================================================================

*Livelock* (:func:`grid`): the victim has not finished at the horizon *and* the fault it is
stuck in has been retried at least ``livelock_retries`` times (default 2, more than the
single retry a bounded ``fault_retry`` can take).  The engine's own ``livelock`` flag marks
any thread caught at the horizon after one retry, which a bounded policy also is when the
horizon falls inside its second attempt.
"""
from __future__ import annotations

import math

import pandas as pd

from ..errors import ScenarioError
from ..model.costs import Costs, Fixed, as_dist
from ..model.policies import get_policy
from ..model.scenario import Adversary, Scenario, Vma, poisson_signals
from ..simulation import simulate_many
from ..trace import synth

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


def _io_label(io):
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
        ``n_wasted_io``, ``finished``, ``livelock``, ``horizon_ns``.
    """
    pols = [get_policy(p) for p in policies]
    ios = list(io_ns_values)
    base_runs = [(fadvise_attack(0, io, signal_rate_hz=signal_rate_hz, kind=kind,
                                 n_faults=n_faults, seed=seed, horizon_factor=horizon_factor), p)
                 for io in ios for p in pols]
    baselines = dict(zip([(i, p.name) for i in range(len(ios)) for p in pols],
                         simulate_many(base_runs, keep=lambda r: r.summary["elapsed_ns"],
                                       n_jobs=n_jobs)))
    jobs, runs = [], []
    for rate in rates_hz:
        for i in range(len(ios)):
            for p in pols:
                b = baselines[(i, p.name)]
                h = horizon_ns if horizon_ns is not None else int(horizon_factor * b)
                jobs.append((rate, i, p, b, h))
                runs.append((fadvise_attack(rate, ios[i], signal_rate_hz=signal_rate_hz,
                                            kind=kind, n_faults=n_faults, horizon_ns=h,
                                            seed=seed), p))

    def row(result):
        s = result.summary
        out = victim_outcome(result, livelock_retries)
        return s, out, int((result.faults["outcome"] == "done").sum())

    rows = []
    for (rate, i, p, b, h), (s, out, n_done) in zip(jobs, simulate_many(runs, keep=row,
                                                                         n_jobs=n_jobs)):
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
        })
    return pd.DataFrame(rows)
