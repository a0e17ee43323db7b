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

from naive_engine import simulate as reference_simulate
from vmlab.engine import codes as C
from vmlab.model import get_policy
from vmlab.trace.model import Op


class ReferenceResult:
    """One reference run, with the frames and summary figures the studies use."""

    def __init__(self, raw, scenario, policy):
        self.raw = raw
        self.scenario = scenario
        self.policy = get_policy(policy) if policy is not None else get_policy(scenario.policy)
        self.policy_name = self.policy.name
        f = pd.DataFrame(raw.faults)
        f["latency_ns"] = np.where(f["end_ns"] >= 0, f["end_ns"] - f["start_ns"], -1)
        self.faults = f
        self.threads = pd.DataFrame(raw.threads)
        lk = pd.DataFrame(raw.locks)
        lk["mode"] = np.where(lk["mode"] == 1, "write", "read")
        lk["kind"] = pd.Categorical.from_codes(lk["kind"].astype(int),
                                               categories=list(C.LOCK_KIND_NAMES))
        lk["wait_ns"] = np.where(lk["acquire_ns"] >= 0, lk["acquire_ns"] - lk["request_ns"], -1)
        self.locks = lk.sort_values(["request_ns", "thread"], kind="stable").reset_index(drop=True)
        vl = pd.DataFrame(raw.vma_locks)
        vl["lock"] = pd.Categorical.from_codes(vl["lock"].astype(int),
                                               categories=list(C.LOCK_NAMES))
        vl["outcome"] = pd.Categorical.from_codes(vl["outcome"].astype(int),
                                                  categories=list(C.LOCK_OUTCOME_NAMES))
        # VMA lock and speculative attempts, as Result.vma_locks (docs/model.md 15.6)
        self.vma_locks = vl.sort_values(["request_ns", "thread"],
                                        kind="stable").reset_index(drop=True)
        self.counters = self._counters()
        self.summary = self._summary()

    def _counters(self):
        """The reference's counters plus the writer-window ones the engine keeps
        (``vmlab/engine/kernel/loop.py``): the end of the last thread with access records,
        the first ``LOCK_W`` request, the last ``LOCK_W`` release, and the ``LOCK_W`` records
        released by the end of the access threads."""
        c = dict(self.raw.counters)
        tr = self.scenario.trace
        access_tids = set(np.unique(tr.tid[tr.op != Op.LOCK_W]).tolist())
        th = self.threads
        acc = th[th["tid"].isin(access_tids)]
        c["access_threads_end_ns"] = int(acc["end_ns"].max()) if len(acc) else -1
        lk = self.locks
        w = lk[(lk["kind"] == "lock_w") & (lk["release_ns"] >= 0)]
        c["lock_w_first_request_ns"] = int(w["request_ns"].min()) if len(w) else -1
        c["lock_w_last_release_ns"] = int(w["release_ns"].max()) if len(w) else -1
        acc_end = c["access_threads_end_ns"]
        c["n_lock_w_while_access"] = int((w["release_ns"] <= acc_end).sum()) if acc_end >= 0 \
            else len(w)
        return c

    def writer_window_ns(self):
        """As :meth:`vmlab.results.Result.writer_window_ns`."""
        c = self.counters
        if not c["n_lock_w"]:
            return None
        t0, t_last, t_acc = (c["lock_w_first_request_ns"], c["lock_w_last_release_ns"],
                             c["access_threads_end_ns"])
        if t_acc > t0:
            return t0, min(t_last, t_acc), c["n_lock_w_while_access"]
        return t0, t_last, c["n_lock_w"]

    def write_mmap_lock_events(self, path, **kw):
        """As :meth:`vmlab.results.Result.write_mmap_lock_events`."""
        from vmlab.trace.readers.mmap_lock import split_downgrades, write_events

        lk = self.locks
        tids = self.threads["tid"].to_numpy()
        ops = split_downgrades(tids[lk["thread"].to_numpy()], lk["asid"].to_numpy(),
                               (lk["mode"] == "write").to_numpy().astype(np.int64),
                               *(lk[c].to_numpy() for c in ("request_ns", "acquire_ns",
                                                            "release_ns", "downgrade_ns")))
        return write_events(path, **ops, **kw)

    def _summary(self):
        c, f = self.counters, self.faults
        s = {"policy": self.policy_name,
             "elapsed_ns": int(self.threads["end_ns"].max()) if len(self.threads) else 0}
        for k in ("n_faults", "n_major", "n_retries", "n_lock_w"):
            s[k] = int(c[k])
        s.update(self.raw.lock_counters)
        lat = f.loc[f["outcome"] == 0, "latency_ns"].to_numpy()
        for q, name in ((50, "p50"), (99, "p99"), (100, "max")):
            s[f"fault_latency_ns_{name}"] = float(np.percentile(lat, q)) if len(lat) else math.nan
        window = self.writer_window_ns()
        s["writer_ops_per_s"] = (window[2] * 1e9 / (window[1] - window[0])
                                 if window is not None and window[1] > window[0] else math.nan)
        return s


def simulate(scenario, policy=None):
    """Run ``scenario`` under ``policy`` on the reference simulator; a :class:`ReferenceResult`."""
    return ReferenceResult(reference_simulate(scenario, policy), scenario, policy)


def simulate_many(runs, **_):
    """:func:`vmlab.simulate_many`'s contract on the reference, in order, one at a time."""
    return [simulate(sc, p) for sc, p in runs]


def engine_simulates_lock_designs():
    """Whether the numba engine runs the designs of docs/model.md section 15 (it refused them
    before they were built: a run is refused, never replayed as the single-lock design)."""
    import vmlab
    from vmlab.errors import VmlabError
    from vmlab.trace import synth

    try:
        vmlab.simulate(vmlab.Scenario(synth.pft_threads(1, 1), backing="anon"), "per_vma_lock")
    except VmlabError:
        return False
    return True


def engine_simulates_line_costs():
    """Whether the engine runs the lock-word costs of docs/model.md 15.1."""
    import vmlab
    from vmlab.errors import VmlabError
    from vmlab.trace import synth

    try:
        vmlab.simulate(vmlab.Scenario(synth.pft_threads(1, 1), backing="anon",
                                      costs=vmlab.Costs(mmap_lock_line_ns=1)), "nopage")
    except VmlabError:
        return False
    return True
