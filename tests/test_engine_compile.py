"""Compiling is timed apart and never silent (issue 8 item 6).

``run`` reports ``compile_s`` (numba compiling, or loading the kernel from its cache) apart
from ``prepare_s`` and ``kernel_s``; while a compile lasts more than a second, one line on
stderr says so.  (The cold compile itself is measured by benchmarks/compile_time.py, not
here: it takes tens of seconds.)
"""
from __future__ import annotations

import importlib
import time

import numpy as np
from numba.core import event

import vmlab
from vmlab.engine import run, warm

run_module = importlib.import_module("vmlab.engine.run")  # (vmlab.engine.run is the function)


def _small():
    base = 0x7F0000000000
    return vmlab.Scenario(vmlab.Trace(np.arange(8, dtype=np.uint64) * np.uint64(4096) +
                                      np.uint64(base)),
                          vmas=[vmlab.Vma(base, base + 8 * 4096, "file")])


def _simulate_elsewhere(env, before, report):
    """In a new Python process with ``env``: run the statements ``before``, then
    ``_small()``'s scenario under ``nopage`` (as ``r``), and give back the value of the
    expression ``report`` (through JSON)."""
    import json
    import subprocess
    import sys

    code = ("import json, importlib, signal, numpy as np, vmlab; "
            "from vmlab.engine.kernel import loop; "
            "R = importlib.import_module('vmlab.engine.run'); " + before +
            "base = 0x7F0000000000; "
            "sc = vmlab.Scenario(vmlab.Trace(np.arange(8, dtype=np.uint64) * np.uint64(4096) "
            "+ np.uint64(base)), vmas=[vmlab.Vma(base, base + 8 * 4096, 'file')]); "
            f"r = vmlab.simulate(sc, 'nopage'); print(json.dumps({report}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_a_warm_run_reports_no_compile_time():
    warm()
    r = run(_small(), "nopage")
    assert set(r.timing) == {"prepare_s", "compile_s", "kernel_s"}
    assert r.timing["compile_s"] == 0.0
    res = vmlab.simulate(_small(), "nopage")
    assert res.timing["compile_s"] == 0.0 and "compile_s" not in res.summary


def test_a_long_compile_says_so_once(capsys, monkeypatch):
    monkeypatch.setattr(run_module, "COMPILE_NOTICE_S", 0.2)
    with run_module._CompileWatch() as watch:
        for _ in range(2):  # two compiles, nested events inside each: one line in all
            event.start_event("numba:compile")
            event.start_event("numba:compile")
            time.sleep(0.35)
            event.end_event("numba:compile")
            event.end_event("numba:compile")
    err = capsys.readouterr().err
    assert err.count("compiling the fault engine") == 1 and err.count("\n") == 1
    assert 0.7 <= watch.seconds < 5


def test_a_short_compile_is_silent(capsys):
    with run_module._CompileWatch() as watch:
        event.start_event("numba:compile")
        event.end_event("numba:compile")
    assert capsys.readouterr().err == ""
    assert watch.seconds < 0.5


# -- how the engine's functions compile (vmlab._numba, docs/performance.md seventh session) --

def test_a_callee_compiles_once_for_literal_and_narrow_arguments():
    """A phase or verb (``njit_borrow``) called with constants and int32 values from
    compiled code compiles one signature (literals dropped, integers widened), linked into
    its caller, and computes the same."""
    from vmlab._numba import JIT_DISABLED, njit, njit_borrow

    @njit_borrow
    def scaled(a, i, k):
        return a[i] * k + 1

    @njit
    def caller(a):
        return scaled(a, 0, 3) + scaled(a, np.int32(1), np.int32(2)) + scaled(a, 2, 1)

    a = np.array([5, 7, 11], np.int64)
    assert caller(a) == (5 * 3 + 1) + (7 * 2 + 1) + (11 * 1 + 1)
    if not JIT_DISABLED:
        assert len(scaled.overloads) == 1
        (sig,) = scaled.overloads
        assert [str(t) for t in sig[1:]] == ["int64", "int64"]


def test_quick_target_config_keeps_numba_values_and_hash():
    from numba.core.compiler import Flags
    from numba.core.targetconfig import TargetConfig

    from vmlab._numba import quick_target_config

    f, g = Flags(), Flags()
    f.nrt = True
    before = (hash(f), hash(g), f.values(), g.values(), f == g)
    saved = TargetConfig.__dict__["values"], TargetConfig.__dict__["__hash__"]
    with quick_target_config():
        assert (hash(f), hash(g), f.values(), g.values(), f == g) == before
    assert (TargetConfig.__dict__["values"], TargetConfig.__dict__["__hash__"]) == saved


def test_remembered_typing_gives_numba_types_and_is_restored():
    import operator

    import numba
    from numba.core import types
    from numba.core.registry import cpu_target
    from numba.core.types.functions import BaseFunction

    from vmlab._numba import remembered_typing

    import numba.cpython.unicode  # noqa: F401 (the str overloads, registered on import)

    ctx = cpu_target.typing_context
    ctx.refresh()
    get, put = ctx.resolve_value_type(operator.getitem), ctx.resolve_value_type(operator.setitem)
    eq, truth = ctx.resolve_value_type(operator.eq), ctx.resolve_value_type(bool)
    arr = types.Array(types.int64, 2, "C")
    cases = [(get, (arr, types.int64)), (get, (arr, types.UniTuple(types.int64, 2))),
             (put, (types.Array(types.uint8, 1, "C"), types.intp, types.uint8)),
             (get, (types.UniTuple(types.int64, 3), types.IntegerLiteral(1))),
             (eq, (types.int64, types.uint8)), (eq, (types.unicode_type, types.unicode_type)),
             (eq, (types.float64, types.IntegerLiteral(0))), (truth, (types.int32,))]
    before = [str(f.get_call_type(ctx, a, {})) for f, a in cases]
    saved = BaseFunction.__dict__["get_call_type"]
    with remembered_typing():
        twice = [[str(f.get_call_type(ctx, a, {})) for f, a in cases] for _ in range(2)]

        @numba.njit
        def f(a, i, s):
            a[i, 0] = a[i, 1] + 1
            if s == "x" and a[i, 0] == 4 and bool(i):
                return a[i]
            return a[0]

        x = np.arange(6).reshape(3, 2)
        assert list(f(x, 1, "x")) == [4, 3]
    assert twice == [before, before]
    assert BaseFunction.__dict__["get_call_type"] is saved


def test_the_event_loop_pass_gets_llvm_full_pipeline_alone(monkeypatch):
    """``njit_pass`` compiles with ``PassLibrary``: numba's cheap pre-pipeline (there for
    reference counts the engine does not have) is skipped; it made the 8-thread benchmark
    about a quarter slower (docs/performance.md, eleventh session)."""
    import numba

    from vmlab import _numba
    from vmlab.engine.kernel import loop

    assert loop._run_pass._compiler.pipeline_class is _numba._PassCompiler
    # numba compiles its runtime (NRT) at the first compile of a process, with the cheap
    # pipeline then the full one: done before the spy, so the test holds in any order
    assert numba.njit(lambda: 0)() == 0
    disp = numba.njit(_nrt=False, no_cfunc_wrapper=True, cache=False,
                      pipeline_class=_numba._PassCompiler)(lambda a: a + 1)
    codegen = type(disp.targetctx.codegen())
    costs = []
    original = codegen._module_pass_manager

    def spy(self, **kwargs):
        costs.append(kwargs.get("cost", "full"))
        return original(self, **kwargs)

    monkeypatch.setattr(codegen, "_module_pass_manager", spy)
    assert disp(41) == 42
    (cres,) = disp.overloads.values()
    assert type(cres.library).__name__ == "PassLibrary"
    assert costs == ["full"]


def test_the_event_heap_verbs_are_inlined_in_every_build():
    """The event heap's verbs run at every event: they are ``njit_verb`` (inlined always), not
    left to LLVM's cost model, which inlined them in the normal build but left them calls in
    the debug-info build that ``benchmarks/profile_engine.py`` profiles (28 calls of
    ``_key_lt`` there: the profile showed a cost the normal build does not have;
    docs/performance.md, twelfth session)."""
    from vmlab.engine.kernel import events

    for verb in (events._key_lt, events._heap_push, events._heap_pop):
        assert verb.targetoptions.get("forceinline") is True, verb.py_func.__name__


def test_a_borrowed_function_stays_a_call_inside_an_inlined_phase():
    """numba gives a callee its caller's ``forceinline`` unless the callee sets its own
    (``Flags.inherit_if_not_set``): every ``njit_borrow`` function first compiled from an
    ``njit_phase`` was inlined into the event loop, where it was meant to be a call. That
    made the pass's LLVM function 29,400 instructions instead of about 15,000 and the first
    compile 3 s longer (docs/performance.md, nineteenth session)."""
    from vmlab._numba import JIT_DISABLED, njit, njit_borrow, njit_phase

    @njit_borrow
    def rare(a, i):
        return a[i] * 3

    @njit_phase
    def phase(a, i):
        return rare(a, i) + 1

    @njit
    def caller(a):
        return phase(a, 1)

    a = np.array([5, 7], np.int64)
    assert caller(a) == 22
    if not JIT_DISABLED:
        (cres,) = rare.overloads.values()
        assert cres.fndesc.inline is False
        (cres,) = phase.overloads.values()
        assert cres.fndesc.inline is True


# -- the compile helper (docs/performance.md, nineteenth session) -----------------------------

def test_the_compile_order_lists_every_phase_the_thread_dispatches():
    """``loop.COMPILE_ORDER`` (what the helper process compiles, from its end) names every
    phase ``_run_thread`` dispatches, in the same order: a phase left out would only cost
    time, but the list should say what the loop does."""
    import inspect
    import re

    from vmlab.engine.kernel import loop

    def py(f):
        return getattr(f, "py_func", f)

    called = re.findall(r"= (_ph_\w+)\(", inspect.getsource(py(loop._run_thread)))
    listed = [py(d).__name__ for d in loop.COMPILE_ORDER]
    assert [n for n in listed if n.startswith("_ph_")] == list(dict.fromkeys(called))


def test_state_refs_pickle_by_reference():
    """numba's cache keys a phase by its argument types, pickled: ``StateRef`` must come
    back as the same type in another process (a class of a function's locals is pickled by
    value, a new class each time, and no cached phase would ever match)."""
    import pickle

    from numba.core import serialize, types

    from vmlab._numba import JIT_DISABLED

    if JIT_DISABLED:
        return
    from vmlab._numba import StateRef

    t = StateRef(types.int64)
    assert b"StateRef" in pickle.dumps(t) and type(pickle.loads(pickle.dumps(t))) is StateRef
    assert serialize._numba_unpickle is not None and pickle.loads(serialize.dumps(t)) == t


def test_no_helper_once_the_pass_is_cached():
    """With the pass in numba's cache (after ``warm``), compiling starts no helper process."""
    import numba

    from vmlab._numba import JIT_DISABLED
    from vmlab.engine.kernel.loop import _run_pass

    if JIT_DISABLED:
        return
    warm()
    sig = next(iter(_run_pass.overloads))
    assert run_module._cached(_run_pass, sig)
    with run_module._CompileHelper(sig) as h:
        assert h.pid is None
    assert isinstance(sig[0], numba.types.Type)


def test_the_pass_loads_the_phases_the_helper_compiled(tmp_path):
    """A helper's phases, compiled in another process into an empty cache, are what the pass
    then loads (none compiled again), and the run gives the records of the serial compile
    (this process's, cached by ``warm``).  Two fresh compiles: about 30 s."""
    import os
    import pickle
    import subprocess
    import sys

    import numba

    from vmlab._numba import JIT_DISABLED

    if JIT_DISABLED:
        return
    from vmlab.engine.kernel.loop import _setup
    from vmlab.engine.prepare import prepare

    prep = prepare(_small(), "nopage")
    W, G = _setup(prep.inputs)
    sig = (numba.typeof(prep.inputs), numba.typeof(W), numba.typeof(G))
    path = tmp_path / "sig.pkl"
    path.write_bytes(pickle.dumps(sig))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import sys, pickle, importlib; R = importlib.import_module('vmlab.engine.run'); "
            "R.compile_phases(pickle.load(open(sys.argv[1], 'rb')))")
    subprocess.run([sys.executable, "-c", code, str(path)], env=env, check=True, timeout=600)
    hits, ends = _simulate_elsewhere(
        env, "R._CompileHelper.__enter__ = lambda self: self; ",
        "[{d.py_func.__name__: sum(d.stats.cache_hits.values()) for d in loop.COMPILE_ORDER}, "
        "r.faults.end_ns.tolist()]")
    assert all(n == 1 for n in hits.values()), hits
    assert ends == vmlab.simulate(_small(), "nopage").faults.end_ns.tolist()


def test_a_cache_entry_a_link_only_function_cannot_read_is_a_miss(monkeypatch):
    """An entry of an older linked-IR format (or any entry numba fails to rebuild) makes the
    function compile again instead of failing the compile."""
    from numba.core.caching import FunctionCache

    from vmlab._numba import JIT_DISABLED

    if JIT_DISABLED:
        return
    from vmlab._numba import _LinkedCache
    from vmlab.engine.kernel import events

    def unreadable(self, sig, target_context):
        raise ValueError("unsupported serialization kind 'vmlab-linked-ir'")

    monkeypatch.setattr(FunctionCache, "load_overload", unreadable)
    cache = events._mix._cache
    assert isinstance(cache, _LinkedCache)
    assert cache.load_overload(None, None) is None


def test_the_helper_makes_the_functions_the_loop_calls(tmp_path):
    """With an empty cache and two CPUs, the forked helper optimises and generates the
    module of the functions the event loop calls (``_numba.split_called_functions``), and
    the run gives the records of this process's build.  One fresh compile: about 10 s."""
    import os
    import sys

    from vmlab._numba import JIT_DISABLED

    if JIT_DISABLED or len(os.sched_getaffinity(0)) < 2 or not sys.platform.startswith("linux"):
        return
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("VMLAB_COMPILE_HELPER", None)
    # (a process that ignores SIGCHLD has its children reaped at once: stopping the helper
    # must not fail, nor signal a number another process may have by then)
    # (the loop's object, made apart, is the library's compiled object, as numba's own: what
    # benchmarks/profile_engine.py reads)
    made, pid, ends, has_object = _simulate_elsewhere(
        env, "signal.signal(signal.SIGCHLD, signal.SIG_IGN); ",
        "[R.last_helper.made_called, R.last_helper.pid, r.faults.end_ns.tolist(), "
        "len(next(iter(loop._run_pass.overloads.values())).library._get_compiled_object())"
        " > 0]")
    assert made is True and pid is None and has_object  # (made by the helper, now gone)
    assert ends == vmlab.simulate(_small(), "nopage").faults.end_ns.tolist()


def test_a_helper_that_does_not_take_the_module_is_not_waited_for(monkeypatch):
    """The called functions' module is made here when the helper does not take it within
    ``TAKE_S`` (a helper stuck or gone): the same object code as the helper's."""
    import os

    from vmlab import _numba
    from vmlab._numba import JIT_DISABLED

    if JIT_DISABLED:
        return
    import llvmlite.binding as ll

    m = ll.parse_assembly('define i64 @"twice"(i64 %x) {\n  %y = add i64 %x, %x\n'
                          '  ret i64 %y\n}\n')
    bitcode = m.as_bitcode()
    h = run_module._CompileHelper(None)
    ask_r, ask_w = os.pipe()
    tell_r, tell_w = os.pipe()
    h._fds = [ask_w, tell_r]
    monkeypatch.setattr(run_module._CompileHelper, "TAKE_S", 0.05)
    try:
        obj = h._called_codegen(bitcode)()
    finally:
        for fd in (ask_r, tell_w):
            os.close(fd)
    assert obj == _numba.optimize_and_emit(bitcode) and b"twice" in obj
    assert not h.made_called and h._fds == []


def test_the_pass_module_splits_off_the_functions_it_calls():
    """``split_called_functions``: a called function (no ``alwaysinline``) moves to the
    other module, external there and only ``available_externally`` (not optimised, not
    generated) here; an ``alwaysinline`` verb stays, a private copy there; the pass's own
    function is left out there.  Both halves together run as the whole did."""
    import ctypes

    import llvmlite.binding as ll

    from vmlab import _numba
    from vmlab._numba import JIT_DISABLED

    if JIT_DISABLED:
        return
    text = ('define linkonce_odr i64 @"verb"(i64 %x) #0 {\n  %y = add i64 %x, 1\n'
            '  ret i64 %y\n}\n'
            'define linkonce_odr i64 @"called"(i64 %x) {\n  %y = call i64 @"verb"(i64 %x)\n'
            '  %z = mul i64 %y, 3\n  ret i64 %z\n}\n'
            'define i64 @"own"(i64 %x) {\n  %y = call i64 @"called"(i64 %x)\n'
            '  %z = call i64 @"verb"(i64 %y)\n  ret i64 %z\n}\n'
            'attributes #0 = { alwaysinline }\n')
    whole = ll.parse_assembly(text)
    other = ll.parse_bitcode(_numba.split_called_functions(whole, {"own"}))

    def kind(m, name):
        fn = m.get_function(name)
        return fn.linkage.name, "optnone" in " ".join(str(a) for a in fn.attributes)

    assert kind(whole, "called") == ("available_externally", True)
    assert kind(whole, "verb") == ("linkonce_odr", False)
    assert kind(whole, "own") == ("external", False)
    assert kind(other, "called") == ("external", False)
    assert kind(other, "verb") == ("internal", False)
    assert kind(other, "own") == ("available_externally", True)

    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    _numba._add_object(codegen, _numba.optimize_and_emit(other.as_bitcode()))
    whole.name = "vmlab_split_test"
    mpm, mpb = codegen._module_pass_manager()
    mpm.run(whole, mpb)
    codegen._engine.add_module(whole)
    codegen._engine.finalize_object()
    own = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(
        codegen._engine.get_function_address("own"))
    assert own(4) == (4 + 1) * 3 + 1


def test_the_helper_waits_on_pipes_whatever_their_numbers():
    """A process with a thousand files open gets pipe numbers above ``select``'s limit
    (1024): waiting on the helper's pipe must work there too."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            return   # (this machine allows fewer files than the case needs)
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    fds = []
    try:
        while not fds or fds[-1] < 1100:
            fds.append(os.open(os.devnull, os.O_RDONLY))
        r, w = os.pipe()
        fds += [r, w]
        assert r > 1024
        assert not run_module._readable(r, 0.01)
        os.write(w, b"+")
        assert run_module._readable(r, 0.01)
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_threads_that_compile_side_by_side_on_a_cold_cache_finish(tmp_path):
    """simulate_many runs its simulations in threads: on an empty cache each would compile
    the pass, fork a helper and take over the hook a compile hands its module through, and
    the compiles waited for each other's helpers for ever (a notebook's first ladder run
    hung).  One compile at a time: both runs end, with the serial records.  One fresh
    compile: about 10-20 s."""
    import os
    import subprocess
    import sys

    from vmlab._numba import JIT_DISABLED

    if JIT_DISABLED or len(os.sched_getaffinity(0)) < 2 or not sys.platform.startswith("linux"):
        return
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("VMLAB_COMPILE_HELPER", None)
    # (the hang needed one thread's helper to be forked after another's pipes were made, a
    # matter of timing; how many helpers are forked is not: one, for the one compile)
    code = ("import json, os, numpy as np, vmlab; "
            "forks = []; fork = os.fork; "
            "os.fork = lambda: forks.append(1) or fork(); "
            "base = 0x7F0000000000; "
            "sc = vmlab.Scenario(vmlab.Trace(np.arange(8, dtype=np.uint64) * np.uint64(4096) "
            "+ np.uint64(base)), vmas=[vmlab.Vma(base, base + 8 * 4096, 'file')]); "
            "rs = vmlab.simulate_many([(sc, 'nopage'), (sc, 'fault_retry'), (sc, 'nopage')], "
            "n_jobs=3, show_progress=False); "
            "print(json.dumps([len(forks), [r.faults.end_ns.tolist() for r in rs]]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, timeout=300,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    n_forks, ends = json.loads(out.stdout.strip().splitlines()[-1])
    assert n_forks == 1
    assert ends[0] == ends[2] == vmlab.simulate(_small(), "nopage").faults.end_ns.tolist()
