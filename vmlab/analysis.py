"""The front door: ``simulate``, ``compare`` and ``sweep``."""
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
from .sampling import miniature, run_sampled


def simulate(scenario, policy=None):
    """Replay ``scenario`` under ``policy`` (a preset name or a :class:`Policy`).

    ``policy`` replaces the scenario's default policy; VMAs with their own policy keep it.
    A scenario with ``sample_rate`` below 1 replays its miniature (:mod:`vmlab.sampling`).
    Returns a :class:`vmlab.results.Result`.
    """
    if scenario.sample_rate is not None and scenario.sample_rate < 1:
        return Result(run_sampled(scenario, policy), scenario)
    return Result(run(scenario, policy), scenario)


def compare(scenario, policies=None, *, n_jobs=None):
    """Run several policies on one scenario; one tidy row per policy (the summary).

    ``policies`` defaults to every preset the scenario's VMAs can take.
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
    check_runs([(scenario, p) for p in pols])  # refuse before any run
    results = _map(lambda p: simulate(scenario, p), pols, n_jobs=n_jobs, desc="policies")
    return pd.DataFrame([r.summary for r in results])


_SCENARIO_FIELDS = {"memory_pages", "replacement", "fault_around_pages", "signals", "adversary",
                    "preload", "horizon_ns", "seed", "records", "bin_ns", "backing", "vmas",
                    "trace", "policy", "sample_rate"}


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


def sweep(scenario, grid, *, n_jobs=None, show_progress=None, client=None, cache=None):
    """Run the cartesian product of ``grid`` (dict of key -> list of values).

    Points run in parallel threads (the kernel releases the GIL), one tidy row per point in
    grid order whatever the number of workers: the grid's keys, then the summary.  With a
    ``dask.distributed`` ``client`` they run on its cluster instead (:mod:`vmlab.distributed`;
    ``cache``: a folder of Parquet parts that lets an interrupted sweep resume).
    """
    keys = list(grid)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]
    prepared = [apply_point(scenario, p) for p in points]  # validate everything first
    check_runs(prepared)

    def one(sp):
        sc, pol = sp
        return simulate(sc, pol).summary

    if client is not None:
        from .distributed import run_points

        rows = run_points(client, scenario, points, cache=cache, show_progress=show_progress)
    else:
        rows = _map(one, prepared, n_jobs=n_jobs, desc="sweep", show_progress=show_progress)
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
        sc = miniature(sc)  # a sampled run's checks are its miniature's (sampled once, cached)
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
