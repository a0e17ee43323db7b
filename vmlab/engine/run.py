"""``run``: prepare, call the kernel, and return raw columns (no pandas at this layer)."""
from __future__ import annotations

import os
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np

from .. import _numba
from .._numba import fast_compiling
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
# one compile of the pass at a time in a process: threads that run simulations side by side
# (simulate_many) would each fork a helper and overwrite the one hook, _numba.CALLED_CODEGEN,
# through which a compile hands its module to its helper; a compile then waited for the
# other's helper, and that one for it (a notebook's first simulate_many on a cold cache hung)
_COMPILE_LOCK = threading.Lock()


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
    global last_helper
    with _COMPILE_LOCK:
        if sig in _run_pass.overloads:   # (another thread compiled it meanwhile)
            return False
        with fast_compiling(), _CompileHelper(sig) as last_helper:
            _run_pass.compile(sig)
    return True


#: the ``_CompileHelper`` of this process's last compile of the pass (None before any):
#: what its helper did (``pid`` None when there was none, ``made_called``)
last_helper = None


class _CompileHelper:
    """While the pass compiles for ``sig`` (not in numba's cache yet), a forked copy of this
    process shares the work, in two parts:

    1. it compiles the phases of ``loop.COMPILE_ORDER`` from the last one back, each into
       numba's cache, with the argument types the pass gives them (:func:`compile_phases`);
       the pass, compiling from the first, loads each one the copy has finished when it
       gets there;
    2. when the pass's front end is done, it optimises and generates the functions the
       event loop calls, the module ``_numba.PassLibrary`` splits off, while this process
       does the loop (``_numba.CALLED_CODEGEN``).  The copy stops compiling phases as soon
       as that module is sent.

    A fork starts at once, with numba and the engine already imported and the compiler set
    up (a new interpreter took 0.6-0.9 s to get there), and it compiles this very code.  The
    copy only compiles, writes numba's cache (each entry written whole, then renamed) and
    its pipe, and leaves with ``os._exit``, running nothing else of this process's; it is
    killed when the pass is done.  Off Linux (forking a process with other threads is less
    safe elsewhere), on a machine with one CPU, with the pass already cached, with
    ``VMLAB_COMPILE_HELPER=0`` in the environment, or where anything of this fails, this
    process does it all, as it always can: a copy that has not taken the module within
    ``TAKE_S`` seconds, or not sent its object within
    ``OBJECT_S``, is not waited for."""

    TAKE_S = 5.0
    OBJECT_S = 120.0

    def __init__(self, sig):
        self.sig = sig
        self.pid = None
        self.made_called = False   # the helper made the called functions' object
        self._fds = []
        self._sender = None
        self._saved = None

    def __enter__(self):
        import warnings

        try:
            if os.environ.get("VMLAB_COMPILE_HELPER", "1") == "0" or \
                    not sys.platform.startswith("linux") or \
                    len(os.sched_getaffinity(0)) < 2 or _cached(_run_pass, self.sig):
                return self
            ask_r, ask_w = os.pipe()
            tell_r, tell_w = os.pipe()
            self._fds = [ask_r, ask_w, tell_r, tell_w]
            sys.stdout.flush()
            sys.stderr.flush()
            with warnings.catch_warnings():
                # (Python 3.12 warns of any fork beside other threads, numpy's BLAS threads
                # among them: the copy touches nothing another thread may hold but numba's
                # compiler lock, and a copy stuck on it is not waited for)
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    os.close(ask_w)
                    os.close(tell_r)
                    compile_phases(self.sig, stop=lambda: _readable(ask_r, 0))
                    bitcode = _read_message(ask_r)
                    if bitcode:
                        os.write(tell_w, b"+")
                        _write_message(tell_w, _numba.optimize_and_emit(bitcode))
                    code = 0
                finally:
                    os._exit(code)
            self.pid = pid
            os.close(ask_r)
            os.close(tell_w)
            self._fds = [ask_w, tell_r]
            self._saved = _numba.CALLED_CODEGEN
            _numba.CALLED_CODEGEN = self._called_codegen
        except Exception:   # (no helper: the pass compiles alone)
            self._stop()
        return self

    def _called_codegen(self, bitcode):
        """``_numba.CALLED_CODEGEN`` while the helper runs: send it the module, and give a
        callable that waits for its object (or makes it here if the helper fails)."""
        ask_w, tell_r = self._fds
        self._sender = threading.Thread(target=_send, args=(ask_w, bitcode),
                                        daemon=True)
        self._sender.start()

        def done():
            try:
                if _readable(tell_r, self.TAKE_S) and os.read(tell_r, 1) == b"+" and \
                        _readable(tell_r, self.OBJECT_S):
                    data = _read_message(tell_r)
                    if data:
                        self.made_called = True
                        return data
            except Exception:   # (whatever went wrong with the helper, the pass goes on)
                pass
            self._stop()
            return _numba.optimize_and_emit(bitcode)

        return done

    def __exit__(self, *exc):
        self._stop()
        return False

    def _stop(self):
        if self._saved is not None:
            _numba.CALLED_CODEGEN = self._saved
            self._saved = None
        if self.pid is not None:
            _kill_child(self.pid)
            self.pid = None
        if self._sender is not None:
            # (its write fails once the helper is gone: then its pipe may be closed, and
            # its number given to another file)
            self._sender.join()
            self._sender = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


def _kill_child(pid):
    """Kill and reap the helper ``pid``, unless it is no longer this process's child: a
    process that ignores ``SIGCHLD``, or reaps every child itself (some event loops' child
    watchers), has it reaped already, and its number may be another process's by now."""
    import signal

    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return   # (it has exited, and is reaped now)
    except ChildProcessError:
        return       # (reaped by someone else)
    # (a child not yet reaped keeps its number: it can only be this one)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _readable(fd, timeout):
    """``fd`` has something to read (or its other end closed) within ``timeout`` seconds.
    (``poll``, not ``select``: a process with a thousand files open gets pipe numbers that
    ``select`` refuses.)"""
    import select

    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(timeout * 1000))


def _send(fd, data):
    try:
        _write_message(fd, data)
    except OSError:
        pass


def _write_message(fd, data):
    view = memoryview(len(data).to_bytes(8, "little") + data)
    while view:
        view = view[os.write(fd, view):]


def _read_message(fd):
    """One message of ``_write_message`` (b"" if the other end closed first)."""
    def exactly(n):
        parts = []
        while n:
            part = os.read(fd, min(n, 1 << 20))
            if not part:
                return None
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    head = exactly(8)
    if head is None:
        return b""
    return exactly(int.from_bytes(head, "little")) or b""


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


def compile_phases(sig, stop=lambda: False):
    """The helper's first work (``_CompileHelper``): compile ``loop.COMPILE_ORDER`` from its
    end into numba's cache for the pass signature ``sig``, with the argument types the pass
    gives each phase, until ``stop()`` says the pass is past its front end."""
    import inspect

    from numba.core import types

    from .._numba import StateRef
    from .kernel.loop import COMPILE_ORDER

    kt, wt, gt = sig
    args = {"K": StateRef(kt), "W": StateRef(wt), "G": gt}
    args.update((name, types.int64) for name in _INT_PARAMS)
    with fast_compiling():
        for disp in reversed(COMPILE_ORDER):
            if stop():
                return
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
