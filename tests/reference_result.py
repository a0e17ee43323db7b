"""The reference simulator's output seen through the parts of :class:`vmlab.results.Result`
that the lock studies read (``summary``, ``locks``, ``faults``, ``threads``).

While the numba engine refuses the lock designs of docs/model.md section 15, the studies of
:mod:`vmlab.studies.ladder` are checked on the reference simulator (``tests/naive_engine.py``)
through this view; once the engine simulates them the same tests run both.  Every figure is
computed from the reference's own records by the definitions of ``vmlab/results.py``
(``writer_ops_per_s``: :meth:`~vmlab.results.Result.writer_window_ns`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from naive_engine import LOCK_RECORD, simulate as reference_simulate
from vmlab.model import get_policy
from vmlab.trace.model import Op


class ReferenceResult:
    """One reference run, with the frames and summary figures the studies use."""

    def __init__(self, raw, scenario, policy):
        self.raw = raw
        self.scenario = scenario
        self.policy = get_policy(policy) if policy is not None else get_policy(scenario.policy)
        self.policy_name = self.policy.name
        self.faults = pd.DataFrame(raw.faults)
        self.threads = pd.DataFrame(raw.threads)
        lk = pd.DataFrame(raw.locks)
        lk["mode"] = np.where(lk["mode"] == 1, "write", "read") if len(lk) else []
        lk["wait_ns"] = np.where(lk["acquire_ns"] >= 0, lk["acquire_ns"] - lk["request_ns"], -1) \
            if len(lk) else []
        self.locks = lk.sort_values(["request_ns", "thread"], kind="stable").reset_index(drop=True)
        self.summary = self._summary()

    def _summary(self):
        c, f = self.raw.counters, self.faults
        end = int(self.threads["end_ns"].max()) if len(self.threads) else 0
        s = {"policy": self.policy_name, "elapsed_ns": end}
        for k in ("n_faults", "n_major", "n_retries", "n_lock_w"):
            s[k] = int(c[k])
        s.update(self.raw.lock_counters)
        done = f[f["outcome"] == 0] if len(f) else f
        lat = (done["end_ns"] - done["start_ns"]).to_numpy() if len(f) else np.zeros(0)
        for q, name in ((50, "p50"), (99, "p99")):
            s[f"fault_latency_ns_{name}"] = float(np.percentile(lat, q)) if len(lat) else math.nan
        s["writer_ops_per_s"] = self._writer_ops_per_s()
        return s

    def _writer_ops_per_s(self):
        tr = self.scenario.trace
        access_tids = set(np.unique(tr.tid[tr.op != Op.LOCK_W]).tolist())
        th = self.threads
        acc = th[th["tid"].isin(access_tids)]
        acc_end = int(acc["end_ns"].max()) if len(acc) else -1
        lk = self.locks
        w = lk[(lk["kind"] == LOCK_RECORD) & (lk["release_ns"] >= 0)]
        if not len(w):
            return math.nan
        t0, t_last = int(w["request_ns"].min()), int(w["release_ns"].max())
        if acc_end > t0:
            t1, n = min(t_last, acc_end), int((w["release_ns"] <= acc_end).sum())
        else:
            t1, n = t_last, len(w)
        return n * 1e9 / (t1 - t0) if t1 > t0 else math.nan


def simulate(scenario, policy=None):
    """Run ``scenario`` under ``policy`` on the reference simulator; a :class:`ReferenceResult`."""
    return ReferenceResult(reference_simulate(scenario, policy), scenario, policy)


def simulate_many(runs, **_):
    """:func:`vmlab.simulate_many`'s contract on the reference, in order, one at a time."""
    return [simulate(sc, p) for sc, p in runs]
