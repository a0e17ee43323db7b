"""Signals during long fault waits: Benjamin Herrenschmidt's spufs problem (notebook 02).

A fault on an SPU's local store waits until the SPU is scheduled, up to a 100 ms time slice.
Under blocking ``nopage`` a signal waits for the end of that wait; ``nopage_refault`` aborts
the wait and re-executes the access, at the price of starting the wait again.

========================  ==============================================================
:func:`spufs`             the scenario: faults that wait for a free SPU, Poisson signals
:func:`signal_table`      signal latency and time to kill, per policy
:func:`time_to_kill_ns`   per killed thread, fatal signal's arrival to death
:func:`refault_expected`  closed form of ``nopage_refault``'s restarts
:func:`restart_table`     simulated against closed-form restarts, per signal rate
========================  ==============================================================
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import ScenarioError
from ..model.costs import SPUFS, Costs, as_dist
from ..model.policies import get_policy
from ..model.scenario import Scenario, Vma, poisson_signals
from ..simulation import simulate_many
from ..trace import synth


def spufs(n_threads=1, wait=SPUFS, signal_rate_hz=10.0, fatal=False, n_accesses=50,
          gap_ns=10_000, horizon_ns=600 * 10**9, seed=0):
    """Benjamin Herrenschmidt's spufs problem: faults that wait for a free SPU.

    Each thread touches ``n_accesses`` distinct pages of one ``context`` VMA (an SPU's
    local store mapped by spufs), so every access is a major fault whose handler waits
    ``wait`` for the SPU to be scheduled, while signals arrive at ``signal_rate_hz``.
    Under blocking ``nopage`` a signal waits for the end of the wait; under
    ``nopage_refault`` it aborts the wait at once, and the wait starts again from scratch.

    Parameters
    ----------
    n_threads : int
        Threads, each with its own pages (default 1).
    wait : Dist or int
        The context wait ``wait_ns`` (default :data:`~vmlab.model.costs.SPUFS`, uniform on
        0 to a 100 ms time slice).
    signal_rate_hz : float
        Poisson signal rate per thread, in Hz (0: no signals).
    fatal : bool
        Signals are fatal (SIGKILL): the run then measures the time to kill.
    n_accesses : int
        Pages each thread touches.
    gap_ns : int
        Compute time before each access, in ns.
    horizon_ns : int
        End of the run (default 600 simulated seconds).
    seed : int

    Returns
    -------
    Scenario
    """
    if n_threads < 1 or n_accesses < 1:
        raise ScenarioError("spufs() needs n_threads >= 1 and n_accesses >= 1")
    pages = n_threads * n_accesses
    # staggered sequential scans of n_accesses pages each: thread t owns its own pages
    tr = synth.shared_file(n_threads, n_accesses, pages=pages, pattern="sequential",
                           gap_ns=int(gap_ns), seed=seed)
    vma = Vma(synth.DEFAULT_BASE, synth.DEFAULT_BASE + pages * tr.page_size,
              backing="context", name="spu context")
    signals = (poisson_signals(signal_rate_hz, fatal=fatal),) if signal_rate_hz > 0 else ()
    return Scenario(tr, vmas=(vma,), policy="nopage_refault",
                    costs=Costs(wait_ns=as_dist(wait, "wait")), signals=signals,
                    horizon_ns=int(horizon_ns), seed=seed)


def time_to_kill_ns(result):
    """Per killed thread, the time from its fatal signal's arrival to its death (ns).

    Returns
    -------
    Series
        Indexed by thread; threads never killed are left out.
    """
    s = result.signals
    th = result.threads
    killed = th[th["state"] == "killed"]
    first = s[s["fatal"]].groupby("thread")["arrival_ns"].min()
    out = killed.set_index("thread")["end_ns"] - first.reindex(killed["thread"]).values
    return out.rename("time_to_kill_ns")


def signal_table(n_threads=8, wait=SPUFS, signal_rate_hz=10.0, n_accesses=50,
                 policies=("nopage", "nopage_refault"), seed=0, n_jobs=None):
    """The spufs experiment for several policies, with and without fatal signals.

    Runs :func:`spufs` twice per policy: non-fatal signals (latency of delivery, retries)
    and fatal ones (time to kill).

    Returns
    -------
    (DataFrame, dict, dict)
        One row per policy: ``signal_latency_ns_p50``/``_p99``/``_max``, ``n_signals``,
        ``retries_per_fault``, ``elapsed_ns``, ``time_to_kill_ns_p50``/``_max``,
        ``n_killed``; the non-fatal Results by policy; the fatal ones (a fatal signal's
        delivery latency is the time to kill: the thread dies at delivery).
    """
    sc = spufs(n_threads, wait, signal_rate_hz, False, n_accesses, seed=seed)
    sk = spufs(n_threads, wait, signal_rate_hz, True, n_accesses, seed=seed)
    pols = [get_policy(p) for p in policies]
    runs = simulate_many([(sc, p) for p in pols] + [(sk, p) for p in pols], n_jobs=n_jobs)
    live, dead = runs[:len(pols)], runs[len(pols):]
    rows = []
    for p, r, k in zip(pols, live, dead):
        s = r.summary
        ttk = time_to_kill_ns(k)
        rows.append({
            "policy": p.name,
            "signal_latency_ns_p50": s["signal_latency_ns_p50"],
            "signal_latency_ns_p99": s["signal_latency_ns_p99"],
            "signal_latency_ns_max": s["signal_latency_ns_max"],
            "n_signals": s["n_signals"],
            "retries_per_fault": s["retries_per_fault"],
            "fault_latency_ns_p50": s["fault_latency_ns_p50"],
            "fault_latency_ns_p99": s["fault_latency_ns_p99"],
            "elapsed_ns": s["elapsed_ns"],
            "time_to_kill_ns_p50": float(ttk.median()) if len(ttk) else math.nan,
            "time_to_kill_ns_max": float(ttk.max()) if len(ttk) else math.nan,
            "n_killed": int(len(ttk)),
        })
    return (pd.DataFrame(rows), {p.name: r for p, r in zip(pols, live)},
            {p.name: k for p, k in zip(pols, dead)})


def refault_expected(wait=SPUFS, signal_rate_hz=10.0, costs=None):
    """Closed form of a ``nopage_refault`` context fault under Poisson signals.

    Every attempt draws a fresh wait ``W`` and is aborted by the first signal ``S ~
    Exp(rate)`` that comes before it; it succeeds with probability ``q = E[exp(-rate W)]``.
    Attempts are independent trials, so (renewal argument, e.g. Ross, *Introduction to
    Probability Models*, on tasks restarted at Poisson interruptions):

    * expected attempts ``1 / q``, expected retries ``1 / q - 1``;
    * expected time waiting ``E[min(W, S)] / q = (1 - q) / (rate q)``;
    * expected latency ``(1 - q) / (rate q) + c / q + (1 / q - 1) signal_ns + wakeup_ns``
      with ``c = fault_ns + driver_ns + struct_page_ns`` the handler CPU of an attempt.

    ``q`` is computed on the engine's own quantile table of ``wait``, so the formula
    describes exactly the distribution the simulation draws from.  It neglects signals
    that arrive during the microseconds of handler CPU (each adds an attempt).

    Parameters
    ----------
    wait : Dist or int
    signal_rate_hz : float
    costs : Costs, optional

    Returns
    -------
    dict
        ``q``, ``retries_per_fault``, ``fault_latency_ns_mean``.
    """
    costs = costs or Costs()
    w = as_dist(wait, "wait").table().astype(float)
    lam = float(signal_rate_hz) / 1e9
    c = costs.fault_ns + costs.driver_ns + costs.struct_page_ns
    if lam == 0:
        return {"q": 1.0, "retries_per_fault": 0.0,
                "fault_latency_ns_mean": float(w.mean()) + c + costs.wakeup_ns}
    q = float(np.mean(np.exp(-lam * w)))
    lat = (1 - q) / (lam * q) + c / q + (1 / q - 1) * costs.signal_ns + costs.wakeup_ns
    return {"q": q, "retries_per_fault": 1 / q - 1, "fault_latency_ns_mean": lat}


def restart_table(rates_hz, wait=SPUFS, n_threads=8, n_accesses=50, seed=0, n_jobs=None):
    """Simulated against closed-form cost of ``nopage_refault``'s restarts, per signal rate.

    Returns
    -------
    DataFrame
        ``signal_rate_hz``, ``retries_per_fault`` and ``retries_per_fault_closed``,
        ``fault_latency_ns_mean`` and ``fault_latency_ns_mean_closed``, ``ratio``
        (simulated / closed-form latency).
    """
    rates_hz = list(rates_hz)
    summaries = simulate_many(
        [(spufs(n_threads, wait, rate, False, n_accesses, seed=seed), "nopage_refault")
         for rate in rates_hz], keep=lambda r: r.summary, n_jobs=n_jobs)
    rows = []
    for rate, s in zip(rates_hz, summaries):
        cf = refault_expected(wait, rate)
        rows.append({"signal_rate_hz": float(rate),
                     "retries_per_fault": s["retries_per_fault"],
                     "retries_per_fault_closed": cf["retries_per_fault"],
                     "fault_latency_ns_mean": s["fault_latency_ns_mean"],
                     "fault_latency_ns_mean_closed": cf["fault_latency_ns_mean"],
                     "ratio": s["fault_latency_ns_mean"] / cf["fault_latency_ns_mean"]})
    return pd.DataFrame(rows)
