"""Results as pandas DataFrames: the layer between the engine and plots/notebooks.

:class:`Result` wraps one run: ``faults``, ``signals``, ``locks``, ``threads`` DataFrames, a
one-row ``summary``, and ``series`` (faults, retries and I/Os per time bin).  Column names
carry units and mean the same in code, DataFrames, plots and docs.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from .engine import codes as C
from .sampling import scale_summary

#: Summary columns every run reports (``vmlab run --json`` prints them).
SUMMARY_KEYS = (
    "policy", "n_records", "n_accesses", "n_faults", "n_major", "n_minor", "n_retries",
    "retries_per_fault", "n_sigbus", "n_io", "n_read_pages", "n_readahead_pages",
    "n_wasted_io", "n_evictions",
    "n_adversary_evictions", "n_lock_w", "writer_ops_per_s",
    "fault_latency_ns_mean", "fault_latency_ns_p50", "fault_latency_ns_p90",
    "fault_latency_ns_p99", "fault_latency_ns_max",
    "signal_latency_ns_p50", "signal_latency_ns_p99", "signal_latency_ns_max",
    "lock_wait_ns_total", "elapsed_ns", "n_signals", "n_unfinished_records",
    "n_abandoned_records", "n_livelocked_threads", "livelock", "livelock_reason",
    "oom", "oom_thread", "oom_ns", "n_events",
    "n_ptes_end", "page_table_bytes", "struct_page_bytes", "prepare_s", "kernel_s",
    "sample_rate", "n_faults_ci_low", "n_faults_ci_high",
    # the lock designs after 2010 (docs/model.md 15.6)
    "n_mmap_lock_read", "n_vma_lock_read", "n_vma_lock_fallbacks", "n_spf_aborts",
    # readers of mmap_lock that are not faults (LOCK_R records, docs/model.md 15.9)
    "n_mmap_lock_read_other",
    # of the faults' reads, those of faults the kernel made (15.3); of the fallbacks, those
    # for a missing anon_vma (15.8)
    "n_mmap_lock_read_kernel", "n_anon_vma_fallbacks",
    "mmap_lock_read_wait_ns", "mmap_lock_read_wait_ns_p50", "mmap_lock_read_wait_ns_p99",
    "mmap_lock_read_wait_ns_max", "mmap_lock_write_wait_ns", "mmap_lock_write_wait_ns_p50",
    "mmap_lock_write_wait_ns_p99", "mmap_lock_write_wait_ns_max", "vma_lock_write_wait_ns",
)

#: sizeof(struct page) on 64-bit Linux.
STRUCT_PAGE_BYTES = 64


def _hist_value(b):
    """Representative value (bucket midpoint) of log-histogram bucket ``b``."""
    if b < 64:
        return float(b)
    e = (b - 64) // 64 + 6
    sub = (b - 64) % 64
    lo = (64 + sub) << (e - 6)
    return lo + ((1 << (e - 6)) - 1) / 2.0


@functools.lru_cache(maxsize=4)
def _hist_values(n):
    """``_hist_value`` of buckets ``0..n-1`` (read-only; computed once: summaries of
    records-off runs use it at every run)."""
    vals = np.array([_hist_value(b) for b in range(n)])
    vals.setflags(write=False)
    return vals


def hist_percentile(hist, q):
    """Percentile ``q`` (0-100) of a log-bucket histogram from the kernel (within ~1.6%)."""
    hist = np.asarray(hist)
    total = hist.sum()
    if total == 0:
        return math.nan
    target = q / 100.0 * total
    c = np.cumsum(hist)
    b = int(np.searchsorted(c, max(target, 1), side="left"))
    return _hist_value(b)


class Result:
    """One run of one policy on one scenario.

    Attributes
    ----------
    faults : DataFrame
        One row per faulting access: thread, tid, asid, vpn, vma, start_ns, end_ns,
        latency_ns, attempts, retries, major, lock_wait_ns, io_wait_ns, outcome.
    signals : DataFrame
        thread, arrival_ns, delivery_ns, latency_ns, fatal, aborted_wait.
    locks : DataFrame
        Every ``mmap_sem`` request: thread, asid, mode, kind, request_ns, acquire_ns,
        release_ns, wait_ns, hold_ns.
    vma_locks : DataFrame
        VMA read lock and speculative attempts (docs/model.md 15.6).
    threads : DataFrame
        Per thread: tid, end_ns, state, records_done and the time breakdown
        (compute_ns, hit_ns, fault_cpu_ns, io_wait_ns, lock_wait_ns, lock_hold_ns,
        signal_ns, wasted_ns).
    summary : dict
        The figures of :data:`SUMMARY_KEYS` (``summary_frame()`` for a one-row DataFrame).
    series : DataFrame
        faults, retries and ios per ``bin_ns`` bin, indexed by the bin's start time.
    timing : dict
        Wall seconds: ``prepare_s``, ``compile_s`` (compiling the kernel or loading it from
        numba's cache; 0 once it is in memory: never part of the other two), ``kernel_s``.
    """

    def __init__(self, raw, scenario):
        self.raw = raw
        self.scenario = scenario
        self.policy = raw.policy
        self.policy_name = raw.policy.name
        self.vmas = raw.vmas
        self.counters = dict(raw.counters)
        self.timing = dict(raw.timing)
        self._frames = {}
        self.summary = self._summarize()

    # -- frames --------------------------------------------------------------------------
    @property
    def faults(self):
        if "faults" not in self._frames:
            df = pd.DataFrame(self.raw.faults)
            df["latency_ns"] = np.where(df["end_ns"] >= 0, df["end_ns"] - df["start_ns"], -1)
            df["major"] = df["major"].astype(bool)
            df["outcome"] = pd.Categorical.from_codes(df["outcome"].astype(int),
                                                      categories=list(C.OUTCOME_NAMES))
            labels = [self._vma_label(i) for i in range(len(self.vmas))]
            df["vma_name"] = pd.Categorical.from_codes(df["vma"].astype(int), categories=labels) \
                if len(set(labels)) == len(labels) else [labels[v] for v in df["vma"]]
            df = df.sort_values(["start_ns", "thread"], kind="stable").reset_index(drop=True)
            self._frames["faults"] = df
        return self._frames["faults"]

    @property
    def evictions(self):
        """Every page-cache eviction of the run (docs/model.md 11.4), in time order: ``time_ns``,
        ``cause`` (``fault``: a fault's I/O or an anonymous charge needed the frames;
        ``readahead``; ``adversary``: its ``fadvise``; ``preload``), ``thread`` (dense index,
        -1 for the adversary and the preload), ``file`` and ``file_page`` (the first page of
        the evicted page or folio), and ``asid``/``vpn``/``vma``/``vma_name`` of a virtual
        page mapping it (the first VMA that maps it; -1 and ``""`` when none does).  Needs
        per-fault records (``records=True``); empty otherwise."""
        if "evictions" not in self._frames:
            cols = getattr(self.raw, "evictions", None)
            if cols is None:
                cols = {k: np.zeros(0, np.int64) for k in
                        ("time_ns", "cause", "thread", "file", "file_page", "asid", "vpn", "vma")}
            df = pd.DataFrame(cols)
            df["cause"] = pd.Categorical.from_codes(df["cause"].astype(int),
                                                    categories=list(C.EVICTION_CAUSE_NAMES))
            labels = [self._vma_label(i) for i in range(len(self.vmas))]
            df["vma_name"] = [labels[v] if v >= 0 else "" for v in df["vma"]]
            self._frames["evictions"] = df.sort_values(["time_ns", "file", "file_page"],
                                                       kind="stable").reset_index(drop=True)
        return self._frames["evictions"]

    def _vma_label(self, i):
        v = self.vmas[int(i)]
        return v.name or f"{v.backing}@{v.start:#x}"

    @property
    def signals(self):
        if "signals" not in self._frames:
            df = pd.DataFrame(self.raw.signals)
            df["latency_ns"] = np.where(df["delivery_ns"] >= 0,
                                        df["delivery_ns"] - df["arrival_ns"], -1)
            df["fatal"] = df["fatal"].astype(bool)
            df["aborted_wait"] = df["aborted_wait"].astype(bool)
            self._frames["signals"] = df.sort_values(["arrival_ns", "thread"],
                                                     kind="stable").reset_index(drop=True)
        return self._frames["signals"]

    @property
    def locks(self):
        if "locks" not in self._frames:
            df = pd.DataFrame(self.raw.locks)
            df["mode"] = np.where(df["mode"] == 1, "write", "read")
            df["kind"] = pd.Categorical.from_codes(df["kind"].astype(int),
                                                   categories=list(C.LOCK_KIND_NAMES))
            df["wait_ns"] = np.where(df["acquire_ns"] >= 0, df["acquire_ns"] - df["request_ns"], -1)
            df["hold_ns"] = np.where((df["release_ns"] >= 0) & (df["acquire_ns"] >= 0),
                                     df["release_ns"] - df["acquire_ns"], -1)
            self._frames["locks"] = df.sort_values(["request_ns", "thread"],
                                                   kind="stable").reset_index(drop=True)
        return self._frames["locks"]

    @property
    def vma_locks(self):
        """The VMA read lock attempts and speculative attempts of the lock designs after
        2010 (docs/model.md 15.6), beside ``locks`` (``mmap_sem``): thread, vma, vma_name,
        lock (``vma``, ``seq``), request_ns (the attempt's start, before its VMA lookup),
        acquire_ns (-1 for a failed attempt), release_ns, outcome (``held``, ``fallback``,
        ``abort``), hold_ns."""
        if "vma_locks" not in self._frames:
            df = pd.DataFrame(self.raw.vma_locks)
            df["lock"] = pd.Categorical.from_codes(df["lock"].astype(int),
                                                   categories=list(C.LOCK_NAMES))
            df["outcome"] = pd.Categorical.from_codes(df["outcome"].astype(int),
                                                      categories=list(C.LOCK_OUTCOME_NAMES))
            df["vma_name"] = [self._vma_label(v) for v in df["vma"]]
            df["hold_ns"] = np.where((df["release_ns"] >= 0) & (df["acquire_ns"] >= 0),
                                     df["release_ns"] - df["acquire_ns"], -1)
            self._frames["vma_locks"] = df.sort_values(["request_ns", "thread"],
                                                       kind="stable").reset_index(drop=True)
        return self._frames["vma_locks"]

    @property
    def threads(self):
        if "threads" not in self._frames:
            df = pd.DataFrame(self.raw.threads)
            df["state"] = pd.Categorical.from_codes(df["state"].astype(int),
                                                    categories=list(C.STATE_NAMES))
            self._frames["threads"] = df
        return self._frames["threads"]

    def write_mmap_lock_events(self, path, *, t0_ns=0, comm="vmlab", pids=None):
        """Write this run's ``mmap_sem`` operations as the kernel's ``mmap_lock`` tracepoints
        in ``perf script`` text (:mod:`vmlab.trace.readers.mmap_lock`), so that the simulated
        waits and a real ``perf record -e 'mmap_lock:*'`` capture go through the same reader
        and histograms.  Threads keep the trace's tids; address space ``a`` is process
        ``pids[a]`` (default ``1000 + a``).  Needs a run with records (``records=True``).
        A writer that downgraded (docs/model.md 15.13) is two operations, as the kernel
        prints it: its write hold up to the downgrade, then a read hold from an
        ``acquire_returned`` with ``write=false`` to its ``released``.  Returns ``path``."""
        from .trace.readers.mmap_lock import split_downgrades, write_events

        lk = self.locks
        tids = self.threads["tid"].to_numpy()
        ops = split_downgrades(tids[lk["thread"].to_numpy()], lk["asid"].to_numpy(),
                               (lk["mode"] == "write").to_numpy().astype(np.int64),
                               *(lk[c].to_numpy() for c in ("request_ns", "acquire_ns",
                                                            "release_ns", "downgrade_ns")))
        return write_events(path, **ops, pids=pids, comm=comm, t0_ns=t0_ns)

    @property
    def series(self):
        if "series" not in self._frames:
            s = self.raw.series
            n = len(s["faults"])
            df = pd.DataFrame({k: np.asarray(v) for k, v in s.items()})
            df.index = pd.Index(np.arange(n, dtype=np.int64) * self.raw.bin_ns, name="time_ns")
            self._frames["series"] = df
        return self._frames["series"]

    def latency_histogram(self, metric="fault"):
        """Latencies as ``(values_ns, counts)`` from the kernel's log-bucket histogram (kept
        even when ``records=False``; each value within 1.6% of the latencies it stands for)."""
        h = np.asarray(self.raw.hist_fault if metric == "fault" else self.raw.hist_signal)
        nz = np.flatnonzero(h)
        return np.array([_hist_value(b) for b in nz]), h[nz]

    def writer_window_ns(self):
        """The window over which ``summary["writer_ops_per_s"]`` counts the writer's calls.

        Writer throughput is measured while the access threads run: a loop thread that
        outlives the threads faulting beside it would otherwise measure its own free run.
        The window runs from the first ``LOCK_W`` request to the earlier of the last
        ``LOCK_W`` release and the end of the last thread with access records (to the last
        release when no access thread ran after the first request).  The kernel counts it,
        so it is the same with or without records.

        Returns
        -------
        (int, int, int) or None
            ``(start_ns, end_ns, n_calls)``, ``n_calls`` the ``LOCK_W`` records completed in
            the window; None when the run has no completed ``LOCK_W`` record.
        """
        c = self.counters
        if not c["n_lock_w"]:
            return None
        t0, t_last, t_acc = (int(c["lock_w_first_request_ns"]), int(c["lock_w_last_release_ns"]),
                             int(c["access_threads_end_ns"]))
        if t_acc > t0:
            return t0, min(t_last, t_acc), int(c["n_lock_w_while_access"])
        return t0, t_last, int(c["n_lock_w"])

    def summary_frame(self):
        """The summary as a one-row DataFrame."""
        return pd.DataFrame([self.summary])

    # -- summary -------------------------------------------------------------------------
    def _summarize(self):
        c = self.counters
        raw = self.raw
        s = {"policy": self.policy_name, "n_records": int(raw.n_records)}
        for k in ("n_accesses", "n_faults", "n_major", "n_minor", "n_retries", "n_sigbus",
                  "n_io", "n_wasted_io", "n_evictions", "n_adversary_evictions", "n_lock_w",
                  "elapsed_ns", "n_signals", "n_unfinished_records", "n_abandoned_records",
                  "n_livelocked_threads", "n_ptes_end", "n_events", "n_read_pages",
                  "n_readahead_pages"):
            s[k] = int(c[k])
        # docs/model.md section 12: a charge under memory_bytes found no frame to reclaim
        s["oom"] = int(c["oom_ns"]) >= 0
        s["oom_ns"] = int(c["oom_ns"])
        s["oom_thread"] = (int(np.asarray(raw.threads["tid"])[int(c["oom_thread"])])
                           if s["oom"] else -1)
        s["retries_per_fault"] = s["n_retries"] / s["n_faults"] if s["n_faults"] else 0.0
        keep = bool(self.scenario.records)
        if keep:
            f = raw.faults
            done = f["outcome"] == C.OUT_DONE
            lat = (f["end_ns"] - f["start_ns"])[done]
            sg = raw.signals
            dl = sg["delivery_ns"] >= 0
            slat = (sg["delivery_ns"] - sg["arrival_ns"])[dl]
        if keep and len(lat):
            s["fault_latency_ns_mean"] = float(lat.mean())
            for q, name in ((50, "p50"), (90, "p90"), (99, "p99")):
                s[f"fault_latency_ns_{name}"] = float(np.percentile(lat, q))
            s["fault_latency_ns_max"] = float(lat.max())
        elif not keep and raw.hist_fault.sum():
            h = raw.hist_fault
            vals = _hist_values(len(h))
            s["fault_latency_ns_mean"] = float((vals * h).sum() / h.sum())
            for q, name in ((50, "p50"), (90, "p90"), (99, "p99"), (100, "max")):
                s[f"fault_latency_ns_{name}"] = hist_percentile(h, q)
        else:
            for name in ("mean", "p50", "p90", "p99", "max"):
                s[f"fault_latency_ns_{name}"] = math.nan
        if keep and len(slat):
            s["signal_latency_ns_p50"] = float(np.percentile(slat, 50))
            s["signal_latency_ns_p99"] = float(np.percentile(slat, 99))
            s["signal_latency_ns_max"] = float(slat.max())
        elif not keep and raw.hist_signal.sum():
            for q, name in ((50, "p50"), (99, "p99"), (100, "max")):
                s[f"signal_latency_ns_{name}"] = hist_percentile(raw.hist_signal, q)
        else:
            for name in ("p50", "p99", "max"):
                s[f"signal_latency_ns_{name}"] = math.nan
        s["lock_wait_ns_total"] = int(np.sum(raw.threads["lock_wait_ns"]))
        self._lock_waits(s, keep)
        # NaN, not 0, without a writer: 0 would read as a writer starved by the faults
        window = self.writer_window_ns()
        if window is not None and window[1] > window[0]:
            s["writer_ops_per_s"] = window[2] * 1e9 / (window[1] - window[0])
        else:
            s["writer_ops_per_s"] = math.nan
        # livelocked: a thread caught at the horizon in a fault it has retried, or a run that
        # the event budget stopped (it kept working without finishing: docs/model.md 9-10)
        budget = bool(c.get("stopped_by_event_budget", 0))
        s["livelock"] = s["n_livelocked_threads"] > 0 or budget
        s["livelock_reason"] = ("event_budget" if budget else
                                "horizon" if s["n_livelocked_threads"] > 0 else "")
        s["page_table_bytes"] = 4096 * math.ceil(s["n_ptes_end"] / 512)
        if keep:
            f = raw.faults
            ok = f["outcome"] == C.OUT_DONE
            sp = np.array([p.needs_struct_page and not p.eager for p in raw.vma_policies], bool)
            if len(f["vma"]):
                mask = ok & sp[f["vma"]]
                n_sp = len(np.unique(np.stack([f["asid"][mask], f["vpn"][mask]]), axis=1).T) if mask.any() else 0
            else:
                n_sp = 0
            s["struct_page_bytes"] = STRUCT_PAGE_BYTES * n_sp
        else:
            s["struct_page_bytes"] = math.nan
        s["prepare_s"] = self.timing["prepare_s"]
        s["kernel_s"] = self.timing["kernel_s"]
        sample = getattr(raw, "sample", None)
        if sample is not None:
            s = scale_summary(s, sample)
        else:  # an exact run: the interval is the count itself
            s["sample_rate"] = 1.0
            s["n_faults_ci_low"] = s["n_faults_ci_high"] = float(s["n_faults"])
        return {k: s[k] for k in SUMMARY_KEYS}

    def _lock_waits(self, s, keep):
        """The counts and ``mmap_lock`` waits of docs/model.md 15.6 into summary ``s``: totals
        and maxima from the kernel's counters, percentiles over the individual waits (request
        to grant) from the lock records, or from the kernel's histograms without records."""
        c = self.counters
        for k in ("n_mmap_lock_read", "n_vma_lock_read", "n_vma_lock_fallbacks", "n_spf_aborts",
                  "n_mmap_lock_read_other", "n_mmap_lock_read_kernel", "n_anon_vma_fallbacks",
                  "vma_lock_write_wait_ns"):
            s[k] = int(c[k])
        lk = self.raw.locks
        for mode, side in ((0, "read"), (1, "write")):
            key = f"mmap_lock_{side}_wait_ns"
            s[key] = int(c[key])
            if keep:
                sel = (lk["mode"] == mode) & (lk["acquire_ns"] >= 0)
                waits = (lk["acquire_ns"] - lk["request_ns"])[sel]
                n = len(waits)
                s[key + "_p50"] = float(np.percentile(waits, 50)) if n else math.nan
                s[key + "_p99"] = float(np.percentile(waits, 99)) if n else math.nan
            else:
                h = getattr(self.raw, f"hist_lock_{side}_wait")
                n = int(h.sum())
                s[key + "_p50"] = hist_percentile(h, 50)
                s[key + "_p99"] = hist_percentile(h, 99)
            s[key + "_max"] = int(c[key + "_max"]) if n else math.nan

    def __repr__(self):
        s = self.summary
        return (f"<Result {self.policy_name}: {s['n_accesses']:,} accesses, {s['n_faults']:,} "
                f"faults ({s['n_major']:,} major), {s['n_retries']:,} retries, "
                f"p99 fault {s['fault_latency_ns_p99']:.0f} ns, elapsed {s['elapsed_ns'] / 1e9:.3f} s>")
