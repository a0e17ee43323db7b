"""``run``: prepare, call the kernel, and return raw columns (no pandas at this layer)."""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .._numba import quick_target_config, remembered_typing
from . import codes as C
from .kernel.loop import _run_pass, _setup, _simulate
from .prepare import prepare

#: Seconds of compiling after which one line on stderr says what is going on.
COMPILE_NOTICE_S = 1.0


class _CompileWatch:
    """Listens to numba's compile events while a run prepares and compiles: sums their time
    (nested compiles counted once) and, when one lasts longer than ``COMPILE_NOTICE_S``,
    prints one line on stderr (at most once a run)."""

    def __init__(self, notice=True):
        from numba.core.event import Listener

        watch = self

        class _L(Listener):
            def on_start(self, event):
                watch._start()

            def on_end(self, event):
                watch._end()

        self.listener = _L()
        self.notice = notice
        self.seconds = 0.0
        self._depth = 0
        self._t0 = 0.0
        self._timer = None
        self._said = False

    def _start(self):
        if self._depth == 0:
            self._t0 = time.perf_counter()
            if self.notice and not self._said:
                self._timer = threading.Timer(COMPILE_NOTICE_S, self._say)
                self._timer.daemon = True
                self._timer.start()
        self._depth += 1

    def _end(self):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._t0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _say(self):
        self._said = True
        print("vmlab: compiling the fault engine, once per machine (10-30 s; later runs "
              "load it from numba's cache)", file=sys.stderr, flush=True)

    def __enter__(self):
        from numba.core import event

        event.register("numba:compile", self.listener)
        return self

    def __exit__(self, *exc):
        from numba.core import event

        event.unregister("numba:compile", self.listener)
        if self._timer is not None:
            self._timer.cancel()
        return False


# the kernel's signature by a cheap key of the inputs' types (numba.typeof of the whole
# structure takes milliseconds, too much for every run of a sweep)
_SIGNATURES = {}


def _type_key(inputs):
    return tuple((a.dtype.str, a.ndim, a.flags.c_contiguous, a.flags.f_contiguous,
                  a.flags.writeable)
                 if isinstance(a, np.ndarray) else type(a) for a in inputs)


def compile_kernel(inputs):
    """Make sure the kernel is compiled for the types of ``inputs`` (a ``KernelInputs``):
    loaded from numba's on-disk cache when it is there, compiled otherwise (nothing to do
    once it is in memory, or under ``NUMBA_DISABLE_JIT=1``).  Returns True if it had to
    load or compile.  The compiled kernel is the event loop's pass (``loop._run_pass``),
    for the types of the inputs and of the state ``loop._setup`` makes for them."""
    if not hasattr(_run_pass, "compile"):
        return False
    key = _type_key(inputs)
    sig = _SIGNATURES.get(key)
    if sig is not None and sig in _run_pass.overloads:
        return False
    import numba

    W, G = _setup(inputs)
    sig = _SIGNATURES[key] = (numba.typeof(inputs), numba.typeof(W), numba.typeof(G))
    if sig in _run_pass.overloads:
        return False
    with quick_target_config(), remembered_typing(), _CompileHelper(sig):
        _run_pass.compile(sig)
    return True


class _CompileHelper:
    """While the pass compiles for ``sig`` (not in numba's cache yet), a second process
    compiles the phases of ``loop.COMPILE_ORDER`` from the last one back, each into numba's
    cache, with the argument types the pass gives them; the pass, compiling from the first,
    loads each one the helper has finished when it gets there.  On a machine with one CPU,
    with the pass already cached, with ``VMLAB_COMPILE_HELPER=0`` in the environment, or
    where anything of this fails, nothing happens: the pass compiles everything itself, as
    it always can.  The helper is stopped when the pass is done."""

    def __init__(self, sig):
        self.sig = sig
        self.proc = None
        self.path = None

    def __enter__(self):
        import pickle
        import subprocess
        import tempfile

        try:
            if os.environ.get("VMLAB_COMPILE_HELPER", "1") == "0" or \
                    len(os.sched_getaffinity(0)) < 2 or _cached(_run_pass, self.sig):
                return self
            fd, self.path = tempfile.mkstemp(prefix="vmlab-compile-", suffix=".pkl")
            with os.fdopen(fd, "wb") as f:
                pickle.dump(self.sig, f)
            # (the helper imports this very vmlab, wherever it was imported from)
            env = dict(os.environ)
            root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get(
                "PYTHONPATH", "").split(os.pathsep) if p])
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; from vmlab.engine.run import "
                 "compile_from_the_end; compile_from_the_end(sys.argv[1])", self.path],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=env)
        except Exception:   # (no helper: the pass compiles alone)
            self._stop()
        return self

    def __exit__(self, *exc):
        self._stop()
        return False

    def _stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None


def _cached(disp, sig):
    """numba's on-disk cache of ``disp`` holds ``sig`` (False if that cannot be told)."""
    try:
        cache = disp._cache
        key = cache._index_key(sig, disp.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:
        return False


#: the phases' integer parameters (a thread, a time, a phase code): a phase with any other
#: parameter is left to the pass, whose types the helper could not know for it (a signature
#: of its own would be a second cache entry beside the pass's)
_INT_PARAMS = ("th", "t", "ph", "nxt")


def compile_from_the_end(path):
    """The helper of ``_CompileHelper``: compile ``loop.COMPILE_ORDER`` from its end into
    numba's cache, for the pass signature pickled at ``path``."""
    import inspect
    import pickle

    from numba.core import types

    from .._numba import StateRef
    from .kernel.loop import COMPILE_ORDER

    with open(path, "rb") as f:
        kt, wt, gt = pickle.load(f)
    args = {"K": StateRef(kt), "W": StateRef(wt), "G": gt}
    args.update((name, types.int64) for name in _INT_PARAMS)
    with quick_target_config(), remembered_typing():
        for disp in reversed(COMPILE_ORDER):
            params = inspect.signature(disp.py_func).parameters
            if all(p in args for p in params):
                disp.compile(tuple(args[p] for p in params))



def _eviction_columns(evs, prep):
    """The eviction records as columns (docs/model.md 11.4): when, why (codes.BY_*), the
    thread (-1: the adversary or the preload), the file (index in the scenario's file table)
    and the first file page of the evicted page or folio, and a virtual page that maps it
    (the first VMA that maps that file page; -1 when none does)."""
    K = prep.inputs
    P = len(K.page_vma)
    e = evs[:, C.E_ENTRY]
    n = len(e)
    file_ = np.full(n, -1, np.int64)
    fpage = np.full(n, -1, np.int64)
    own = e < P
    if own.any():
        v = K.page_vma[e[own]].astype(np.int64)
        file_[own] = K.vma_file[v]
        fpage[own] = K.vma_off[v] + K.page_vpn[e[own]] - K.vma_vpn0[v]
    if (~own).any():
        k = e[~own] - P
        f = np.searchsorted(K.f_base, k, side="right") - 1
        file_[~own] = f
        fpage[~own] = K.f_fstart[k]
    asid = np.full(n, -1, np.int64)
    vpn = np.full(n, -1, np.int64)
    vma = np.full(n, -1, np.int64)
    npages = K.vma_npages
    for i in range(len(prep.vmas) - 1, -1, -1):   # the first VMA that maps it wins
        if not n or K.vma_file[i] < 0:
            continue
        hit = (file_ == K.vma_file[i]) & (fpage >= K.vma_off[i]) & \
            (fpage < K.vma_off[i] + npages[i])
        vma[hit] = i
        asid[hit] = K.vma_asid[i]
        vpn[hit] = K.vma_vpn0[i] + fpage[hit] - K.vma_off[i]
    return {"time_ns": evs[:, C.E_TIME], "cause": evs[:, C.E_CAUSE],
            "thread": evs[:, C.E_THREAD], "file": file_, "file_page": fpage, "asid": asid,
            "vpn": vpn, "vma": vma}


def run(scenario, policy=None, prepared=None, fast_path=True, event_budget=None):
    """Replay ``scenario`` under ``policy``; return raw record columns.

    Returns a namespace with ``faults``, ``signals``, ``locks``, ``threads`` (dicts of
    numpy columns), ``counters`` (dict of ints, with the counts and waits of docs/model.md
    15.6; the four counts also alone as ``lock_counters``), ``vma_locks`` (VMA read lock and
    speculative attempts, 15.6: thread, vma, lock, request_ns, acquire_ns, release_ns,
    outcome), ``series`` (per-bin faults, retries, I/Os), ``hist_fault``/``hist_signal``
    and ``hist_lock_read_wait``/``hist_lock_write_wait`` (log-bucket histograms of fault and
    signal latencies and of mmap_sem waits), the resolved ``vmas``, ``policy``,
    ``vma_policies`` and ``timing`` (prepare, compile and kernel seconds: ``compile_s`` is
    the kernel's compile or cache load, 0 once it is in memory).
    """
    # compiling (numba's, or loading from its cache) is timed apart from preparing and
    # replaying: the first run of a process would otherwise look slow where it is not
    with _CompileWatch() as watch:
        t0 = time.perf_counter()
        prep = prepared if prepared is not None else prepare(
            scenario, policy, fast_path=fast_path, event_budget=event_budget)
        t1 = time.perf_counter()
        compile_in_prepare = watch.seconds
        loaded = compile_kernel(prep.inputs)
        t1c = time.perf_counter()
    compile_s = compile_in_prepare + (t1c - t1 if loaded else 0.0)
    (faults, sigs, locks, TT, cnt, bins, hist_f, hist_s, vlocks, hist_rw,
     hist_ww, evs) = _simulate(prep.inputs)
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
        "retries": faults[:, C.F_RETRIES],
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
        "downgrade_ns": locks[:, C.L_DOWNGRADE],
    }
    eviction_cols = _eviction_columns(evs, prep)
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
    # the lock designs after 2010 (docs/model.md 15.6)
    lock_counters = {name: int(cnt[j]) for name, j in zip(C.LOCK_COUNTER_NAMES,
                                                          C.LOCK_COUNTER_SLOTS)}
    counters.update(lock_counters)
    counters["mmap_lock_read_wait_ns"] = int(cnt[C.CNT_RWAIT])
    counters["mmap_lock_read_wait_ns_max"] = int(cnt[C.CNT_RWAIT_MAX])
    counters["mmap_lock_write_wait_ns"] = int(cnt[C.CNT_WWAIT])
    counters["mmap_lock_write_wait_ns_max"] = int(cnt[C.CNT_WWAIT_MAX])
    counters["vma_lock_write_wait_ns"] = int(cnt[C.CNT_VWWAIT])
    vma_lock_cols = {
        "thread": vlocks[:, C.VL_THREAD],
        "vma": vlocks[:, C.VL_VMA],
        "lock": vlocks[:, C.VL_LOCK],
        "request_ns": vlocks[:, C.VL_REQUEST],
        "acquire_ns": vlocks[:, C.VL_ACQUIRE],
        "release_ns": vlocks[:, C.VL_RELEASE],
        "outcome": vlocks[:, C.VL_OUTCOME],
    }
    series = {"faults": bins[C.TSB_FAULTS], "retries": bins[C.TSB_RETRIES],
              "ios": bins[C.TSB_IOS]}
    return SimpleNamespace(
        faults=fault_cols, signals=sig_cols, locks=lock_cols, threads=thread_cols,
        evictions=eviction_cols,
        counters=counters, lock_counters=lock_counters, vma_locks=vma_lock_cols, series=series,
        hist_fault=hist_f, hist_signal=hist_s, hist_lock_read_wait=hist_rw,
        hist_lock_write_wait=hist_ww,
        vmas=prep.vmas, vma_policies=prep.vma_policies, policy=prep.policy,
        timing={"prepare_s": t1 - t0 - compile_in_prepare, "compile_s": compile_s,
                "kernel_s": t2 - t1c},
        # the kernel widens the bins of very long runs (at most MAX_BINS of them)
        n_records=len(scenario.trace), bin_ns=int(cnt[C.CNT_BIN_NS]),
        horizon_ns=int(scenario.horizon_ns),
    )
