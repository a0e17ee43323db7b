"""``run``: prepare, call the kernel, and return raw columns (no pandas at this layer)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from . import codes as C
from .kernel.loop import _simulate
from .prepare import prepare


def run(scenario, policy=None, prepared=None):
    """Replay ``scenario`` under ``policy``; return raw record columns.

    Returns a namespace with ``faults``, ``signals``, ``locks``, ``threads`` (dicts of
    numpy columns), ``counters`` (dict of ints), ``series`` (per-bin faults, retries, I/Os),
    ``hist_fault``/``hist_signal`` (log-bucket latency histograms), the resolved ``vmas``,
    ``policy``, ``vma_policies`` and ``timing`` (prepare and kernel seconds).
    """
    t0 = time.perf_counter()
    prep = prepared if prepared is not None else prepare(scenario, policy)
    t1 = time.perf_counter()
    faults, sigs, locks, TT, cnt, bins, hist_f, hist_s = _simulate(prep.inputs)
    t2 = time.perf_counter()

    page = faults[:, C.F_PAGE]
    thr = faults[:, C.F_THREAD]
    tids = prep.index.thr_tid
    fault_cols = {
        "thread": thr,
        "tid": tids[thr] if len(thr) else np.zeros(0, np.int64),
        "asid": prep.page_asid[page] if len(page) else np.zeros(0, np.int64),
        "vpn": prep.page_vpn[page] if len(page) else np.zeros(0, np.int64),
        "vma": prep.page_vma[page].astype(np.int64) if len(page) else np.zeros(0, np.int64),
        "start_ns": faults[:, C.F_START],
        "end_ns": faults[:, C.F_END],
        "attempts": faults[:, C.F_ATTEMPTS],
        "major": faults[:, C.F_MAJOR],
        "lock_wait_ns": faults[:, C.F_LOCKWAIT],
        "io_wait_ns": faults[:, C.F_IOWAIT],
        "outcome": faults[:, C.F_OUTCOME],
    }
    sig_cols = {
        "thread": sigs[:, C.S_THREAD],
        "arrival_ns": sigs[:, C.S_ARRIVAL],
        "delivery_ns": sigs[:, C.S_DELIVERY],
        "fatal": sigs[:, C.S_FATAL],
        "aborted_wait": sigs[:, C.S_ABORTED],
    }
    lock_cols = {
        "thread": locks[:, C.L_THREAD],
        "asid": locks[:, C.L_ASID],
        "mode": locks[:, C.L_MODE],
        "kind": locks[:, C.L_KIND],
        "request_ns": locks[:, C.L_REQUEST],
        "acquire_ns": locks[:, C.L_ACQUIRE],
        "release_ns": locks[:, C.L_RELEASE],
    }
    T = TT.shape[0]
    thread_cols = {
        "thread": np.arange(T, dtype=np.int64),
        "tid": TT[:, C.TT_TID],
        "end_ns": TT[:, C.TT_END],
        "state": TT[:, C.TT_STATE],
        "records_done": TT[:, C.TT_RECORDS],
    }
    for j, name in enumerate(C.CATEGORY_NAMES):
        thread_cols[name] = TT[:, j]
    counters = {name: int(cnt[j]) for j, name in enumerate(C.COUNTER_NAMES)}
    counters["n_signals"] = int(cnt[C.CNT_SIGNALS])
    series = {"faults": bins[C.TSB_FAULTS], "retries": bins[C.TSB_RETRIES],
              "ios": bins[C.TSB_IOS]}
    return SimpleNamespace(
        faults=fault_cols, signals=sig_cols, locks=lock_cols, threads=thread_cols,
        counters=counters, series=series, hist_fault=hist_f, hist_signal=hist_s,
        vmas=prep.vmas, vma_policies=prep.vma_policies, policy=prep.policy,
        timing={"prepare_s": t1 - t0, "kernel_s": t2 - t1},
        # the kernel widens the bins of very long runs (at most MAX_BINS of them)
        n_records=len(scenario.trace), bin_ns=int(cnt[C.CNT_BIN_NS]),
        horizon_ns=int(scenario.horizon_ns),
    )
