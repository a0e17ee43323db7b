"""The front door: run scenarios through the engine.

:func:`simulate` runs one scenario under one policy; :func:`simulate_many` runs a list of
``(scenario, policy)`` pairs in parallel threads (the kernel releases the GIL), refusing a bad
pair before any run starts; :func:`compare` runs one scenario under several policies and
:func:`sweep` a grid of variations, both through :func:`simulate_many`.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from ._io import progress
from .engine.prepare import index_trace
from .engine.run import run
from .errors import ScenarioError
from .model._checks import did_you_mean
from .model.costs import Costs
from .model.policies import PRESETS, Policy, get_policy, knob_names
from .model.scenario import Scenario, scenario_fields
from .results import Result
from .sampling import miniature, run_sampled


def simulate(scenario, policy=None, *, event_budget=None, fast_path=True):
    """Replay ``scenario`` under ``policy``.

    Parameters
    ----------
    scenario : Scenario
    policy : str or Policy, optional
        A preset name or a :class:`~vmlab.model.policies.Policy`; it replaces the scenario's
        default policy (VMAs with their own policy keep it).  None: the scenario's.
    event_budget : int, optional
        The most events the run may take (default: 64 per record and thread plus 2*10^7,
        docs/model.md section 10; -1: no bound).  A run that exceeds it stops there and
        reports ``livelock_reason = "event_budget"``.
    fast_path : bool
        False makes the engine take every step through its event loop (same records,
        slower; a check of the fast path).

    Returns
    -------
    Result
        Faults, signals, lock operations and threads as DataFrames, and a ``summary``.

    Examples
    --------
    >>> import vmlab
    >>> from vmlab.trace import synth
    >>> trace = synth.random_reads_with_mmap_loop(n_reads=20, pages=1 << 16, n_lock_ops=2_000,
    ...                                           seed=1)  # a reader beside an mmap/munmap loop
    >>> scenario = vmlab.Scenario(trace, backing="file",
    ...                           costs=vmlab.Costs(io_ns=vmlab.Fixed(1_000_000)))  # 1 ms reads
    >>> r = vmlab.simulate(scenario, "nopage")
    >>> r.summary["n_faults"], r.summary["n_major"], r.summary["n_retries"]
    (20, 20, 0)
    >>> round(r.summary["elapsed_ns"] / 1e6)  # ms: twenty 1 ms reads, the loop's 2,000 calls
    29
    >>> r.faults[["thread", "major", "retries", "outcome"]].head(2)
       thread  major  retries outcome
    0       0   True        0    done
    1       0   True        0    done

    A scenario with ``sample_rate`` below 1 replays its miniature (:mod:`vmlab.sampling`).
    """
    if getattr(scenario, "sample_rate", None) is not None and scenario.sample_rate < 1:
        return Result(run_sampled(scenario, policy, event_budget=event_budget,
                                  fast_path=fast_path), scenario)
    return Result(run(scenario, policy, fast_path=fast_path, event_budget=event_budget),
                  scenario)


def simulate_many(runs, *, keep=None, n_jobs=None, show_progress=None, desc="runs"):
    """Replay each ``(scenario, policy)`` pair of ``runs``; their Results, in order.

    Every pair is checked (:func:`check_runs`) before the first one runs, so a bad pair
    fails at once instead of after the others' work.  Pairs run in parallel threads, since
    the kernel releases the GIL.

    Parameters
    ----------
    runs : iterable of (Scenario, str or Policy or None)
        The pairs; a policy of None runs the scenario's own.
    keep : callable, optional
        A function of a Result, applied in the worker; its value is returned in place of the
        Result (``keep=lambda r: r.summary`` keeps memory flat over many runs with per-fault
        records).
    n_jobs : int, optional
        Worker threads (default: the number of CPUs).
    show_progress : bool, optional
        A progress bar (default: when stderr is a terminal).
    desc : str
        The progress bar's label.

    Returns
    -------
    list
        One Result (or ``keep``'s value) per pair, in the order of ``runs``.

    Examples
    --------
    >>> import vmlab
    >>> from vmlab.trace import synth
    >>> trace = synth.random_reads_with_mmap_loop(n_reads=20, pages=1 << 16, n_lock_ops=2_000,
    ...                                           seed=1)  # a reader beside an mmap/munmap loop
    >>> scenario = vmlab.Scenario(trace, backing="file",
    ...                           costs=vmlab.Costs(io_ns=vmlab.Fixed(1_000_000)))  # 1 ms reads
    >>> fast = scenario.replace(costs=scenario.costs.replace(io_ns=vmlab.Fixed(100_000)))
    >>> runs = vmlab.simulate_many([(scenario, "nopage"), (fast, "nopage"), (fast, "fault_retry")])
    >>> [round(r.summary["elapsed_ns"] / 1e6) for r in runs]  # ms
    [29, 11, 9]
    >>> vmlab.simulate_many([(fast, p) for p in ("nopage", "fault_retry")],
    ...                     keep=lambda r: r.summary["n_retries"])
    [0, 20]
    """
    runs = [(sc, None if p is None else get_policy(p)) for sc, p in _pairs(runs)]
    check_runs(runs)
    keep = keep or (lambda r: r)
    return _map(lambda sp: keep(simulate(*sp)), runs, n_jobs=n_jobs, desc=desc,
                show_progress=show_progress)


def compare(scenario, policies=None, *, n_jobs=None, results=False):
    """Run several policies on one scenario; one tidy row per policy (the summary).

    Parameters
    ----------
    scenario : Scenario
    policies : sequence of str or Policy, optional
        Default: every preset the scenario's VMAs can take.  Names must differ.
    n_jobs : int, optional
        Worker threads (default: the number of CPUs).
    results : bool
        Also return the Results.

    Returns
    -------
    DataFrame or (DataFrame, dict)
        The summaries, one row per policy in the order given; with ``results=True`` also
        a dict from policy name to :class:`~vmlab.results.Result`, in the same order.

    Examples
    --------
    >>> import vmlab
    >>> from vmlab.trace import synth
    >>> trace = synth.random_reads_with_mmap_loop(n_reads=20, pages=1 << 16, n_lock_ops=2_000,
    ...                                           seed=1)  # a reader beside an mmap/munmap loop
    >>> scenario = vmlab.Scenario(trace, backing="file",
    ...                           costs=vmlab.Costs(io_ns=vmlab.Fixed(1_000_000)))  # 1 ms reads
    >>> table = vmlab.compare(scenario, ["nopage", "fault_retry"])
    >>> table[["policy", "n_faults", "n_retries"]]
            policy  n_faults  n_retries
    0       nopage        20          0
    1  fault_retry        20         20
    >>> # the loop's mmap/munmap calls per second: about one per read while nopage holds
    >>> # mmap_sem across it, hundreds of times more once fault_retry drops the lock
    >>> bool(table["writer_ops_per_s"][1] > 100 * table["writer_ops_per_s"][0])
    True
    >>> table, results = vmlab.compare(scenario, ["nopage", "fault_retry"], results=True)
    >>> results["fault_retry"]  # doctest: +ELLIPSIS
    <Result fault_retry: 20 accesses, 20 faults (20 major), 20 retries, ...>
    """
    if policies is None:
        policies = []
        for name in PRESETS:
            try:
                scenario.validate(name)
            except ScenarioError:
                continue
            policies.append(name)
    if isinstance(policies, (str, Policy)):
        policies = [policies]
    pols = [get_policy(p) for p in policies]
    if not pols:
        raise ScenarioError("compare(): no policy to run; give at least one name or Policy "
                            "(or leave policies out: every preset the scenario can take)")
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


#: What a sweep point may set on the scenario: every field of it (costs go by their own
#: names, a policy by its knobs).
_SCENARIO_FIELDS = set(scenario_fields()) - {"costs"}


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


def _grid_axes(grid):
    """``grid`` as key -> list of values, each list non-empty (a clear error otherwise)."""
    if not isinstance(grid, Mapping):
        raise ScenarioError(f"sweep(): grid must be a dict of key -> list of values, got "
                            f"{type(grid).__name__}")
    axes = {}
    for k, v in grid.items():
        if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
            raise ScenarioError(f"sweep(): grid[{k!r}] must be a list of values, got {v!r} "
                                f"({type(v).__name__}); for one fixed value write [{v!r}]")
        axes[k] = list(v)
        if not axes[k]:
            raise ScenarioError(f"sweep(): grid[{k!r}] has no values; give at least one")
    return axes


def sweep(scenario, grid, *, n_jobs=None, show_progress=None, client=None, cache=None):
    """Run the cartesian product of ``grid``; one tidy row per point.

    Points run in parallel threads (the kernel releases the GIL); rows come in grid order
    whatever the number of workers.

    Parameters
    ----------
    scenario : Scenario
    grid : dict
        Key -> list of values.  Keys are scenario fields (``memory_pages``, ``signals``...),
        cost names (``io_ns``...), policy knobs (``max_retries``...; the policy is then
        labelled with them) or ``policy`` (a preset name or Policy: the base policy).
    n_jobs : int, optional
        Worker threads (default: the number of CPUs).
    show_progress : bool, optional
        A progress bar (default: when stderr is a terminal).
    client : dask.distributed.Client, optional
        Run the points on its cluster instead (:mod:`vmlab.distributed`): same rows.
    cache : str or Path, optional
        With ``client``: a folder of Parquet parts holding finished points, so that an
        interrupted sweep run again resumes where it stopped.

    Returns
    -------
    DataFrame
        The grid's keys, then the summary columns.

    Examples
    --------
    >>> import vmlab
    >>> from vmlab.trace import synth
    >>> trace = synth.random_reads_with_mmap_loop(n_reads=20, pages=1 << 16, n_lock_ops=2_000,
    ...                                           seed=1)  # a reader beside an mmap/munmap loop
    >>> scenario = vmlab.Scenario(trace, backing="file",
    ...                           costs=vmlab.Costs(io_ns=vmlab.Fixed(1_000_000)))  # 1 ms reads
    >>> df = vmlab.sweep(scenario, {"policy": ["nopage", "fault_retry"],
    ...                             "io_ns": [100_000, 1_000_000]})
    >>> df["elapsed_ms"] = (df["elapsed_ns"] / 1e6).round()
    >>> df[["policy", "io_ns", "n_faults", "elapsed_ms"]]
            policy    io_ns  n_faults  elapsed_ms
    0       nopage   100000        20        11.0
    1       nopage  1000000        20        29.0
    2  fault_retry   100000        20         9.0
    3  fault_retry  1000000        20        20.0
    """
    axes = _grid_axes(grid)
    keys = list(axes)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*axes.values())]
    prepared = [apply_point(scenario, p) for p in points]
    if client is not None:
        from .distributed import run_points

        check_runs(prepared)
        rows = run_points(client, scenario, points, cache=cache, show_progress=show_progress)
    else:
        rows = simulate_many(prepared, keep=lambda r: r.summary, n_jobs=n_jobs, desc="sweep",
                             show_progress=show_progress)
    out = []
    for p, r in zip(points, rows):
        row = {k: _label(v) for k, v in p.items()}
        row.update({k: v for k, v in r.items() if k not in row})
        out.append(row)
    return pd.DataFrame(out)


def _pairs(runs):
    """``runs`` as a list of ``(scenario, policy)`` pairs, or a ScenarioError naming the
    first item that is not one."""
    runs = list(runs)
    for i, item in enumerate(runs):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            what = type(item).__name__ + (f" of length {len(item)}"
                                          if isinstance(item, (tuple, list)) else "")
        elif not isinstance(item[0], Scenario):
            what = f"a pair whose first element is {type(item[0]).__name__}, not a Scenario"
        else:
            continue
        raise ScenarioError(f"runs must be (scenario, policy) pairs; item {i} is {what}")
    return runs


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
