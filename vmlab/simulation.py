"""The front door: run scenarios through the engine.

:func:`simulate` runs one scenario under one policy; :func:`simulate_many` runs a list of
``(scenario, policy)`` pairs in parallel threads (the kernel releases the GIL), refusing a bad
pair before any run starts; :func:`compare` runs one scenario under several policies and
:func:`sweep` a grid of variations, both through :func:`simulate_many`.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from ._io import progress
from .engine.prepare import index_trace
from .engine.run import run
from .errors import ScenarioError
from .model._checks import did_you_mean
from .model.costs import Costs
from .model.policies import PRESETS, Policy, get_policy, knob_names
from .results import Result


def simulate(scenario, policy=None):
    """Replay ``scenario`` under ``policy`` (a preset name or a :class:`Policy`).

    ``policy`` replaces the scenario's default policy; VMAs with their own policy keep it.
    Returns a :class:`vmlab.results.Result`.
    """
    return Result(run(scenario, policy), scenario)


def simulate_many(runs, *, keep=None, n_jobs=None, show_progress=None, desc="runs"):
    """Replay each ``(scenario, policy)`` pair of ``runs``; their Results, in order.

    Every pair is checked (:func:`check_runs`) before the first one runs, so a bad pair
    fails at once instead of after the others' work.  Pairs run in parallel threads, since
    the kernel releases the GIL.  ``keep``, a function of a Result, is applied in the
    worker and its value returned in place of the Result (``keep=lambda r: r.summary``
    keeps memory flat over many runs with per-fault records).
    """
    runs = [(sc, None if p is None else get_policy(p)) for sc, p in runs]
    check_runs(runs)
    keep = keep or (lambda r: r)
    return _map(lambda sp: keep(simulate(*sp)), runs, n_jobs=n_jobs, desc=desc,
                show_progress=show_progress)


def compare(scenario, policies=None, *, n_jobs=None, results=False):
    """Run several policies on one scenario; one tidy row per policy (the summary).

    ``policies`` defaults to every preset the scenario's VMAs can take.  With
    ``results=True`` also returns the Results by policy name.
    """
    if policies is None:
        policies = []
        for name in PRESETS:
            try:
                scenario.validate(name)
            except ScenarioError:
                continue
            policies.append(name)
    pols = [get_policy(p) for p in policies]
    names = [p.name for p in pols]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ScenarioError(f"compare(): policy names must differ, got {', '.join(twice)} more "
                            "than once (name a variant: policy.replace(name=...))")
    runs = simulate_many([(scenario, p) for p in pols], n_jobs=n_jobs, desc="policies")
    table = pd.DataFrame([r.summary for r in runs])
    if results:
        return table, {p.name: r for p, r in zip(pols, runs)}
    return table


_SCENARIO_FIELDS = {"memory_pages", "replacement", "fault_around_pages", "signals", "adversary",
                    "preload", "horizon_ns", "seed", "records", "bin_ns", "backing", "vmas",
                    "trace", "policy"}


def apply_point(scenario, point):
    """The (scenario, policy) of one grid point: keys are scenario fields, cost names or
    policy knobs (``policy`` names the base policy)."""
    point = dict(point)
    base = get_policy(point.pop("policy", scenario.policy))
    knobs = {k: point.pop(k) for k in list(point) if k in knob_names()}
    cost_names = set(Costs.__dataclass_fields__)
    unknown = [k for k in point if k not in _SCENARIO_FIELDS and k not in cost_names]
    if unknown:
        raise ScenarioError(
            f"unknown sweep key(s) {unknown}: use scenario fields ({sorted(_SCENARIO_FIELDS)}), "
            f"costs ({sorted(cost_names)}) or policy knobs ({knob_names()})"
            + did_you_mean(unknown, sorted(_SCENARIO_FIELDS) + sorted(cost_names) + knob_names()))
    sc = scenario.replace(**point) if point else scenario
    if knobs:
        label = base.name + "(" + ",".join(f"{k}={v}" for k, v in knobs.items()) + ")"
        base = base.replace(name=label, **knobs)
    return sc, base


def sweep(scenario, grid, *, n_jobs=None, show_progress=None):
    """Run the cartesian product of ``grid`` (dict of key -> list of values).

    Points run in parallel threads (the kernel releases the GIL), one tidy row per point in
    grid order whatever the number of workers: the grid's keys, then the summary.
    """
    keys = list(grid)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]
    prepared = [apply_point(scenario, p) for p in points]
    rows = simulate_many(prepared, keep=lambda r: r.summary, n_jobs=n_jobs, desc="sweep",
                         show_progress=show_progress)
    out = []
    for p, r in zip(points, rows):
        row = {k: _label(v) for k, v in p.items()}
        row.update({k: v for k, v in r.items() if k not in row})
        out.append(row)
    return pd.DataFrame(out)


def check_runs(runs):
    """Refuse, before any of them runs, the first ``(scenario, policy)`` of ``runs`` that
    cannot run: ``scenario.validate(policy)``, then what needs the trace's threads (the
    page-cache size, the signal schedules' threads)."""
    for sc, pol in runs:
        sc.validate(pol)
    for sc, pol in runs:
        if sc.memory_pages is None and not sc.signals:
            continue
        tids = index_trace(sc.trace).thr_tid  # cached per trace: the runs use it again
        sc.check_threads(tids)


def _label(v):
    if isinstance(v, Policy):
        return v.name
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return repr(v)


def _map(fn, items, *, n_jobs=None, desc="", show_progress=None):
    items = list(items)
    n_jobs = n_jobs or os.cpu_count() or 1
    if n_jobs <= 1 or len(items) <= 1:
        bar = progress(len(items), desc=desc, unit="runs", enabled=show_progress)
        out = []
        for it in items:
            out.append(fn(it))
            bar.update(1)
        bar.close()
        return out
    bar = progress(len(items), desc=desc, unit="runs", enabled=show_progress)
    with ThreadPoolExecutor(max_workers=n_jobs) as ex:
        futures = [ex.submit(fn, it) for it in items]
        out = []
        for f in futures:
            out.append(f.result())
            bar.update(1)
    bar.close()
    return out
