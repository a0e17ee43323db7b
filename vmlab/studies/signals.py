"""Signals during long fault waits: Benjamin Herrenschmidt's spufs problem (notebook 02).

A fault on an SPU's local store waits until the SPU is scheduled, up to a 100 ms time slice.
Under blocking ``nopage`` a signal waits for the end of that wait; ``nopage_refault`` aborts
the wait and re-executes the access, at the price of starting the wait again.

========================  ==============================================================
:func:`spufs`             the scenario: faults that wait for a free SPU, Poisson signals
:func:`signal_table`      signal latency and time to kill, per policy
:func:`time_to_kill_ns`   per killed thread, fatal signal's arrival to death
:func:`wait_residual`     closed form of a held signal's latency under blocking ``nopage``
:func:`refault_expected`  closed form of ``nopage_refault``'s restarts
:func:`unmodelled_retries` the retries the closed form leaves out (signals outside waits)
:func:`restart_table`     simulated (pooled over seeds, with standard errors) against
                          closed-form restarts, per signal rate
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
from ._stats import z_score

#: Compute time before each access of :func:`spufs`, in ns (its ``gap_ns`` default).
GAP_NS = 10_000


def spufs(n_threads=1, wait=SPUFS, signal_rate_hz=10.0, fatal=False, n_accesses=50,
          gap_ns=GAP_NS, horizon_ns=600 * 10**9, seed=0):
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


def _completed_wakeup_ns(costs):
    """The wake-up after a wait that completes: ``wakeup_ns`` plus the mean ``io_wakeup_ns``
    draw (docs/model.md 15.14; ``Fixed(0)`` by default), during which a signal still aborts
    the wait."""
    return costs.wakeup_ns + costs.io_wakeup_ns.table_mean_ns()


def refault_expected(wait=SPUFS, signal_rate_hz=10.0, costs=None):
    """Closed form of a ``nopage_refault`` context fault under Poisson signals.

    Every attempt draws a fresh wait ``W`` and is aborted by the first signal ``S ~
    Exp(rate)`` that comes before it; it succeeds with probability ``q = E[exp(-rate W)]``.
    Attempts are independent trials, so (renewal argument, e.g. Ross, *Introduction to
    Probability Models*, on tasks restarted at Poisson interruptions):

    * expected attempts ``1 / q``, expected retries ``1 / q - 1``;
    * expected time waiting ``E[min(W, S)] / q = (1 - q) / (rate q)``;
    * expected latency ``(1 - q) / (rate q) + c / q + (1 / q - 1) signal_ns + wakeup``
      with ``c = fault_ns + driver_ns + struct_page_ns`` the handler CPU of an attempt and
      ``wakeup`` the completed wait's wake-up, ``wakeup_ns`` plus the mean ``io_wakeup_ns``.

    ``q`` is computed on the engine's own quantile table of ``wait``, so the formula
    describes exactly the distribution the simulation draws from.  It neglects signals
    that arrive outside the waits (the compute gap before the access, the handler CPU,
    signal handling, the wake-up): each adds an attempt; :func:`unmodelled_retries`
    bounds them (0.016 retries per fault at 100 Hz and waits uniform up to 100 ms, 0.2% of
    the 9.0 retries, far below sampling error).

    Checked against the engine on notebook 02's scenario (8 threads of 40 faults, waits
    uniform up to 100 ms) pooled over seeds 1000 to 1999 (320,000 faults per rate, 1, 10,
    30 and 100 Hz): the simulated mean retries and latency agree with it within 1.5
    standard errors; over seeds 10000 to 19999 (3.2 million faults) at 10 and 30 Hz,
    within 0.15% and 1.5 standard errors.  ``tests/test_studies_signals.py`` checks 3
    standard errors on a smaller pool.  One run of 320 faults can miss it by 20% in retries
    (seed 0 at 10 Hz: 2.5 standard errors of that run): see :func:`restart_table`.

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
    wake = _completed_wakeup_ns(costs)
    if lam == 0:
        return {"q": 1.0, "retries_per_fault": 0.0,
                "fault_latency_ns_mean": float(w.mean()) + c + wake}
    q = float(np.mean(np.exp(-lam * w)))
    lat = (1 - q) / (lam * q) + c / q + (1 / q - 1) * costs.signal_ns + wake
    return {"q": q, "retries_per_fault": 1 / q - 1, "fault_latency_ns_mean": lat}


def unmodelled_retries(wait=SPUFS, signal_rate_hz=10.0, gap_ns=GAP_NS, costs=None):
    """The retries per fault that :func:`refault_expected` leaves out, to first order.

    The closed form lets signals abort only the waits.  In the engine a signal that lands
    in the exposure ``x`` outside a wait (the compute gap ``gap_ns`` before the access, the
    handler CPU ``c``, the handling of the signal that aborted the previous attempt,
    ``signal_ns``, and the wake-up after a completed wait, ``wakeup_ns`` plus the mean
    ``io_wakeup_ns``, during which a signal still aborts it) is pending when the wait would
    begin, or cuts it, and adds an attempt.  Each attempt then succeeds with probability
    ``q exp(-rate x)`` instead of ``q``, so the expected retries grow by ``exp(rate x) / q - 1 / q``, about ``rate x / q``.  Counting
    the gap and the signal handling for every attempt (only the first has the gap, only the
    later ones the handling) makes this an upper bound.

    Returns
    -------
    float
        Extra retries per fault (0 without signals).
    """
    costs = costs or Costs()
    lam = float(signal_rate_hz) / 1e9
    if lam == 0:
        return 0.0
    x = (int(gap_ns) + costs.fault_ns + costs.driver_ns + costs.struct_page_ns
         + costs.signal_ns + _completed_wakeup_ns(costs))
    q = refault_expected(wait, signal_rate_hz, costs)["q"]
    return float(math.expm1(lam * x) / q)


def wait_residual(wait=SPUFS, n_signals=None):
    """Closed form of a signal's delivery latency under blocking ``nopage``: the residual
    of the wait it lands in.

    Poisson arrivals land in a wait with probability proportional to its length (a long
    wait is hit more often) and uniformly within it, so the residual ``R`` has the
    equilibrium distribution ``P(R <= r) = E[min(r, W)] / E[W]`` with density
    ``P(W > r) / E[W]`` and mean ``E[W^2] / (2 E[W])``.  For ``W`` uniform on ``[0, a]``:
    density ``2 (a - r) / a^2``, median ``a (1 - 1/sqrt 2)`` = 0.293 a, p99 ``0.9 a``, mean
    ``a / 3``: below the mean wait ``a / 2``, although arrivals favour long waits.  Computed
    here exactly on the engine's quantile table of ``wait`` (it neglects the wake-up and the
    microseconds between the wait's end and the record's end, where the signal is
    delivered, and signals that land outside waits).

    Parameters
    ----------
    wait : Dist or int
    n_signals : int, optional
        Signals in a sample: also return the standard error of its median (asymptotic:
        ``sqrt(0.25 / n) / density(median)``; signals that share a wait are not quite
        independent, so read it as approximate).

    Returns
    -------
    dict
        ``mean_ns``, ``p50_ns``, ``p99_ns``, ``wait_mean_ns`` and, with ``n_signals``,
        ``p50_se_ns``.
    """
    w = np.sort(as_dist(wait, "wait").table().astype(float))
    total = w.sum()
    if total <= 0:
        raise ScenarioError("wait_residual() needs a wait that is not always 0")
    k = len(w)
    # G(r) = sum(min(r, w_i)) / sum(w): piecewise linear, breakpoints at the sorted w_i
    below = np.concatenate(([0.0], np.cumsum(w)[:-1]))      # sum of the i smallest
    g_at = (below + (k - np.arange(k)) * w) / total         # G(w_(i))

    def quantile(p):
        i = int(np.searchsorted(g_at, p))                   # r lies in [w_(i-1), w_(i)]
        # on that piece G(r) = (below[i] + (k - i) r) / total
        return (p * total - below[i]) / (k - i)

    out = {"mean_ns": float((w ** 2).sum() / (2 * total)), "p50_ns": float(quantile(0.5)),
           "p99_ns": float(quantile(0.99)), "wait_mean_ns": float(w.mean())}
    if n_signals:
        m = out["p50_ns"]
        density = float((w > m).sum()) / total               # G'(m) = P(W > m) / E[W]
        out["p50_se_ns"] = float(math.sqrt(0.25 / int(n_signals)) / density)
    return out


def restart_table(rates_hz, wait=SPUFS, n_threads=8, n_accesses=50, seed=0, n_seeds=1,
                  n_jobs=None):
    """Simulated against closed-form cost of ``nopage_refault``'s restarts, per signal rate.

    For each rate, :func:`spufs` runs with seeds ``seed`` to ``seed + n_seeds - 1`` and the
    faults of all runs are pooled.  Faults are independent (Poisson signals are memoryless
    and every attempt draws a fresh wait), so the standard error of a simulated mean is the
    per-fault standard deviation over the square root of the faults, and ``*_z`` is the
    difference from the closed form in standard errors: within 3, the simulation agrees
    with :func:`refault_expected` as well as its sample size can tell.

    Every rate runs the same seeds, so the rows share their random draws (the same waits,
    and the same signal intervals scaled by the rate): their deviations from the closed
    form tend to have the same sign, and are not independent of each other.

    Returns
    -------
    DataFrame
        ``signal_rate_hz``, ``n_faults``; ``retries_per_fault``, its standard error
        ``retries_per_fault_se``, ``retries_per_fault_closed``, ``retries_z``;
        ``fault_latency_ns_mean``, ``fault_latency_ns_mean_se``,
        ``fault_latency_ns_mean_closed``, ``latency_z``; ``ratio`` (simulated /
        closed-form latency).
    """
    rates_hz = list(rates_hz)
    n_seeds = int(n_seeds)
    if n_seeds < 1:
        raise ScenarioError("restart_table() needs n_seeds >= 1")
    seeds = range(int(seed), int(seed) + n_seeds)

    def per_fault(r):
        f = r.faults
        f = f[f["outcome"] == "done"]
        return f["retries"].to_numpy(float), f["latency_ns"].to_numpy(float)

    runs = simulate_many(
        [(spufs(n_threads, wait, rate, False, n_accesses, seed=s), "nopage_refault")
         for rate in rates_hz for s in seeds], keep=per_fault, n_jobs=n_jobs)
    rows = []
    for i, rate in enumerate(rates_hz):
        mine = runs[i * n_seeds:(i + 1) * n_seeds]
        retries = np.concatenate([x[0] for x in mine])
        latency = np.concatenate([x[1] for x in mine])
        n = len(retries)
        cf = refault_expected(wait, rate)
        r_se = float(retries.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        l_se = float(latency.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        r_mean, l_mean = float(retries.mean()), float(latency.mean())
        rows.append({"signal_rate_hz": float(rate),
                     "n_faults": int(n),
                     "retries_per_fault": r_mean,
                     "retries_per_fault_se": r_se,
                     "retries_per_fault_closed": cf["retries_per_fault"],
                     "retries_z": z_score(r_mean, cf["retries_per_fault"], r_se),
                     "fault_latency_ns_mean": l_mean,
                     "fault_latency_ns_mean_se": l_se,
                     "fault_latency_ns_mean_closed": cf["fault_latency_ns_mean"],
                     "latency_z": z_score(l_mean, cf["fault_latency_ns_mean"], l_se),
                     "ratio": l_mean / cf["fault_latency_ns_mean"]})
    return pd.DataFrame(rows)
