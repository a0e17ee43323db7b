"""The one place where vmlab sets numba options.

Every kernel in vmlab is compiled with ``njit`` from this module so that caching and
floating-point behaviour are decided once.  ``fastmath`` stays off: the engine must be
bit-for-bit deterministic and agree exactly with the plain-Python reference simulator.
"""
from __future__ import annotations

import contextlib
import os

import llvmlite.binding as ll
import numba

#: Compile options shared by every vmlab kernel.
NJIT_OPTIONS = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"


def njit(func=None, **overrides):
    """``numba.njit`` with vmlab's options (cache on disk, GIL released, no fastmath)."""
    options = dict(NJIT_OPTIONS)
    options.update(overrides)
    if func is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(func)


#: numba's cache kind of a link-only function: its linked IR as bitcode, zlib-compressed
#: (the phases' entries of a signature 11.5 -> 7.9 MB, and 4.8 MB without the type
#: annotation; the referenced environments numba keeps with each entry are most of the rest)
LINKED_IR = "vmlab-linked-ir-zlib"

#: how numba's mangling begins the name of a function's CPython wrapper (namespace "cpython")
_WRAPPER_PREFIX = "_ZN7cpython"

#: numba's cache kind of the event loop's pass: numba's object entry and the object of the
#: functions the loop calls (``PassLibrary``)
PASS_TWO_OBJECTS = "vmlab-pass-two-objects"


def split_called_functions(module, own):
    """Split the event loop's linked ``module`` (before LLVM's pipeline) in two.

    The functions it calls (defined, not ``alwaysinline``, not among ``own``, the pass's own
    functions) are returned as the bitcode of a module of their own (None when there are
    none), where they are external and everything else is a private copy or left out
    (``available_externally``, ``optnone``: not optimised, not generated).  In ``module``
    they become ``available_externally``, ``noinline`` and ``optnone``: calls the pipeline
    passes over, resolved to the other module's object in the JIT engine.  The pass's
    CPython wrapper is marked ``optnone`` (it unboxes some 150 arrays, once per pass: a tenth
    of the module).
    Nothing changes in the code a run executes: these functions were calls already
    (``njit_borrow``), only LLVM's inliner could copy a small one into its caller."""
    def inline(fn):
        return any("alwaysinline" in str(a) for a in fn.attributes)

    called = {fn.name for fn in module.functions
              if not fn.is_declaration and fn.name not in own and not inline(fn)}
    for fn in module.functions:
        if fn.name.startswith(_WRAPPER_PREFIX) and not fn.is_declaration:
            fn.add_function_attribute("noinline")
            fn.add_function_attribute("optnone")
    if not called:
        return None
    other = module.clone()
    for fn in other.functions:
        if fn.is_declaration:
            continue
        if fn.name in called:
            fn.linkage = ll.Linkage.external
            fn.add_function_attribute("noinline")
        elif fn.name in own:
            fn.linkage = ll.Linkage.available_externally
            fn.add_function_attribute("noinline")
            fn.add_function_attribute("optnone")
        else:
            fn.linkage = ll.Linkage.internal
    for gv in other.global_variables:
        if not gv.is_declaration:
            gv.linkage = ll.Linkage.internal
    for fn in module.functions:
        if fn.name in called:
            fn.linkage = ll.Linkage.available_externally
            fn.add_function_attribute("noinline")
            fn.add_function_attribute("optnone")
    return other.as_bitcode()


def optimize_and_emit(bitcode):
    """The object code of a module given as ``bitcode``, after LLVM's full pipeline, made
    with numba's own target machine and passes (what numba's JIT makes of a module)."""
    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    module = ll.parse_bitcode(bitcode)
    mpm, mpb = codegen._module_pass_manager()
    mpm.run(module, mpb)
    return bytes(codegen._tm.emit_object(module))


def _here(bitcode):
    return lambda: optimize_and_emit(bitcode)


#: Where the functions the event loop calls are optimised and generated: a callable taking
#: their module's bitcode and returning a callable that gives its object code.  By default
#: here, when asked; ``vmlab.engine.run._CompileHelper`` hands it to its helper process.
CALLED_CODEGEN = _here


def _add_object(codegen, data):
    """Load object code into numba's JIT engine (its symbols resolve the next
    finalisation's references)."""
    from llvmlite.binding.object_file import ObjectFileRef

    codegen._engine._ee.add_object_file(ObjectFileRef.from_data(data))


def _one_signature(disp):
    """``disp`` (a numba dispatcher of a function called from compiled code only, built
    without a cache: only its options are taken) rebuilt
    so that it costs one compile in all:

    * **one signature**: the argument types of a call are taken without their literal
      values and with integers widened to 64 bits.  numba otherwise compiles a function once
      per combination of literal constants and integer widths at its call sites (the fault
      engine's reclaim was compiled five times, its time-mixing helper six); the values are
      the same, a literal is its value and every integer the engine passes fits in 64 bits;
    * **linked, not finished**: numba finishes every function it compiles (LLVM's module
      optimisation and machine code) although such a function only ever runs inside its
      caller, which links its LLVM and optimises everything once more in context.  Here a
      function's library is only linked (``LinkOnlyLibrary``): the event loop's pass
      optimises and generates the code of every phase once.  numba's on-disk cache keeps
      its linked IR (bitcode, ``LINKED_IR``), so that another process can compile it for
      the pass (``vmlab.engine.run._CompileHelper``).

    docs/performance.md, seventh session, has the measurements."""
    d = _OneSignature(py_func=disp.py_func, locals={}, targetoptions=disp.targetoptions,
                      pipeline_class=_LinkOnlyCompiler)
    d._cache = _LinkedCache(d.py_func)
    return d


def _linked_cache_class():
    from numba.core.caching import FunctionCache

    class LinkedCache(FunctionCache):
        """numba's on-disk cache of a link-only function; an entry it cannot read (written
        in an older format of ``LINKED_IR``, say) is a miss: the function compiles again
        and its entry is written anew."""

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception:
                return None

    return LinkedCache


def _library_classes():
    """numba code libraries of the fault engine: ``LinkOnlyLibrary`` (a function that is only
    linked into its callers) and ``PassLibrary`` (the event loop's pass, compiled in two
    halves); numba's loader of cached libraries learns their kinds (``LINKED_IR``,
    ``PASS_TWO_OBJECTS``)."""
    import zlib

    from numba.core.codegen import JITCodeLibrary
    from numba.core.compiler_lock import require_global_compiler_lock

    class LinkOnlyLibrary(JITCodeLibrary):
        """A code library that, finalised, only links what it calls (no optimisation of the
        module, no machine code): what its callers link in is its function-optimised IR."""

        def finalize(self):
            require_global_compiler_lock()
            self._raise_if_finalized()
            seen = set()
            for library in self._linking_libraries:
                if library not in seen:
                    self._reload_init.update(library._reload_init)
                    seen.add(library)
                    self._final_module.link_in(library._get_module_for_linking(),
                                               preserve=True)
            self._finalized = True

        @property
        def codegen(self):
            return _NoEnvCodegen(self._codegen)

        def serialize_using_object_code(self):
            """numba's cache of a link-only function holds its linked IR (bitcode): what a
            caller links in; there is no machine code."""
            self._ensure_finalized()
            return (self.name, LINKED_IR,
                    zlib.compress(self._get_module_for_linking().as_bitcode(), 1))

        @classmethod
        def _from_linked_ir(cls, codegen, name, bitcode):
            self = cls(codegen, name)
            self._final_module = ll.parse_bitcode(zlib.decompress(bitcode))
            self._finalized = True
            return self

    # numba rebuilds a cached library through its codegen's library class (JITCodeLibrary):
    # the linked-IR kind is recognised there, any other kind goes to numba's own loader
    unserialize = JITCodeLibrary._unserialize.__func__

    def _unserialize(cls, codegen, state, *args, **kwargs):
        if isinstance(state, tuple) and len(state) == 3 and state[1] == LINKED_IR:
            return LinkOnlyLibrary._from_linked_ir(codegen, state[0], state[2])
        if isinstance(state, tuple) and len(state) == 3 and state[1] == PASS_TWO_OBJECTS:
            # the called functions first: the loop's object refers to them
            data, called = state[2]
            _add_object(codegen, called)
            return unserialize(cls, codegen, (state[0], "object", data), *args, **kwargs)
        return unserialize(cls, codegen, state, *args, **kwargs)

    JITCodeLibrary._unserialize = classmethod(_unserialize)

    class _NoEnvCodegen:
        """The codegen as a linked-only library shows it to numba: nothing of such a
        library is in the JIT engine, so there is no environment pointer of its own to set
        (the engine's functions use no environment: no Python objects, no dynamic
        globals)."""

        def __init__(self, codegen):
            self._codegen = codegen

        def set_env(self, env_name, env):
            pass

        def __getattr__(self, name):
            return getattr(self._codegen, name)

    class PassLibrary(JITCodeLibrary):
        """The event loop's code library: its linked module gets LLVM's full pipeline only,
        in two halves that another process can share (:func:`split_called_functions`).

        numba first runs a cheap pipeline over every finished module, to inline as many
        reference-count operations into one function as it can before pruning them; the
        event loop has none (``_nrt=False`` throughout).  Run first over the linked engine,
        that pipeline left code the full one could not recover: the 8-thread benchmark ran
        at 7.2-7.9 M records/s with it and 9.5-10.2 without, alternated, at the same compile
        time (docs/performance.md, eleventh session).

        The functions the loop calls (``njit_borrow``, each a call in the machine code) are
        optimised and generated as a module of their own, by :data:`CALLED_CODEGEN` (the
        compile helper process when there is one), while this process does the loop and its
        inlined phases; the two objects go into the JIT engine together and into numba's
        cache as one entry (``PASS_TWO_OBJECTS``)."""

        _own = frozenset()     # the names of the functions the pass's own IR defines
        _called_object = None
        _loop_object = None

        def add_ir_module(self, ir_module):
            self._own = self._own | {fn.name for fn in ir_module.functions
                                     if not fn.is_declaration}
            super().add_ir_module(ir_module)

        def _optimize_final_module(self):
            bitcode = split_called_functions(self._final_module, self._own)
            done = CALLED_CODEGEN(bitcode) if bitcode is not None else None
            mpm, mpb = self._codegen._module_pass_manager()
            with self._recorded_timings.record("Module passes (full optimization)", mpb):
                mpm.run(self._final_module, mpb)
            if done is not None:
                # the loop's machine code, made here while the other half is made
                # elsewhere (numba's JIT takes it below through its object cache)
                self._loop_object = bytes(self._codegen._tm.emit_object(self._final_module))
                self._called_object = done()

        def _finalize_final_module(self):
            if self._called_object is None:
                return super()._finalize_final_module()
            _add_object(self._codegen, self._called_object)
            if self._object_caching_enabled and self._compiled_object is None:
                self._set_compiled_object(self._loop_object)
                super()._finalize_final_module()
                # (numba's cache hook hands the object over once; it is this library's
                # compiled object all the same, and its IR is here to inspect)
                self._compiled_object = self._loop_object
                self._disable_inspection = False
            else:
                super()._finalize_final_module()

        def serialize_using_object_code(self):
            name, kind, data = super().serialize_using_object_code()
            if self._called_object is None:
                return name, kind, data
            return name, PASS_TWO_OBJECTS, (data, self._called_object)

    return LinkOnlyLibrary, PassLibrary


def _one_signature_classes():
    from numba.core import types
    from numba.core.compiler import CompilerBase, DefaultPassBuilder
    from numba.core.compiler_machinery import LoweringPass, register_pass
    from numba.core.registry import CPUDispatcher
    from numba.core.typed_passes import AnnotateTypes, IRLegalization

    def widen(t):
        t = types.unliteral(t)
        if isinstance(t, types.Integer) and t.bitwidth < 64:
            return types.int64
        return t

    LinkOnlyLibrary, PassLibrary = _library_classes()

    class OneSignature(CPUDispatcher):
        def get_call_template(self, args, kws):
            return super().get_call_template(tuple(widen(a) for a in args),
                                             {k: widen(v) for k, v in kws.items()})

    def library_pass(name, library_class, cached):
        """A compiler pass that gives the function a code library of ``library_class``
        (numba's lowering makes its own where none is set), kept on disk if ``cached``."""

        @register_pass(mutates_CFG=False, analysis_only=False)
        class LibraryPass(LoweringPass):
            _name = name

            def __init__(self):
                LoweringPass.__init__(self)

            def run_pass(self, state):
                if state.library is None:
                    state.library = library_class(state.targetctx.codegen(),
                                                  state.func_id.func_qualname)
                    if cached:
                        state.library.enable_object_caching()
                return True

        return LibraryPass

    LinkOnlyLibraryPass = library_pass("vmlab_link_only_library", LinkOnlyLibrary, False)

    from numba.core.typed_passes import NopythonRewrites
    from numba.core.untyped_passes import (DeadBranchPrune, FindLiterallyCalls,
                                           InlineClosureLikes, LiteralPropagationSubPipelinePass,
                                           LiteralUnroll, MakeFunctionToJitFunction, WithLifting)

    # passes that find nothing to do in the engine's functions: no with-blocks, closures,
    # inner functions, literally() or literal_unroll, no literal arguments (OneSignature
    # widens them), no whole-array expressions; dead branches are pruned once (the first
    # prune, before inlining, stays).  Nor is the type annotation made (a copy of the IR,
    # whose text numba writes into every cache entry: a fourth of the cache; it serves
    # ``inspect_types()`` only, which these functions do not offer)
    unused = (WithLifting, InlineClosureLikes, MakeFunctionToJitFunction,
              FindLiterallyCalls, LiteralUnroll, LiteralPropagationSubPipelinePass,
              NopythonRewrites, AnnotateTypes)

    class LinkOnlyCompiler(CompilerBase):
        def define_pipelines(self):
            pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
            kept, prunes = [], 0
            for entry in pm.passes:
                cls = entry[0]
                if cls in unused:
                    continue
                if cls is DeadBranchPrune:
                    prunes += 1
                    if prunes > 1:
                        continue
                kept.append(entry)
            pm.passes = kept
            pm.add_pass_after(LinkOnlyLibraryPass, IRLegalization)
            pm.finalize()
            return [pm]

    PassLibraryPass = library_pass("vmlab_pass_library", PassLibrary, True)

    class PassCompiler(CompilerBase):
        def define_pipelines(self):
            pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
            pm.add_pass_after(PassLibraryPass, AnnotateTypes)
            pm.finalize()
            return [pm]

    return OneSignature, LinkOnlyCompiler, PassCompiler


def njit_borrow(func):
    """``njit`` with numba's reference counting off (``_nrt=False``), for functions called
    at every step of a loop that take many arrays: the fault engine's phase functions and
    their verbs.  Such a function may not allocate an array; every array it gets is owned
    by its caller for the whole call, so no count is needed, and none is paid (with it on,
    each array argument of a call costs an ``NRT_incref``/``NRT_decref`` pair wherever
    numba's refcount pruning gives up; docs/performance.md).  Nor does it get a CPython
    wrapper (it is called from compiled code only): unboxing a tuple of a hundred arrays
    costs about a second of compile time a function; nor a C-callable wrapper (numba lowers
    one for every function by default, about 20 ms each).  It stays a call even when an
    inlined phase (``njit_phase``) calls it: numba gives a function the ``forceinline`` of
    the function that first compiles it unless the function sets its own, and copied into
    every call site these made the event loop's LLVM twice as large and the first compile
    3 s longer (docs/performance.md, nineteenth session)."""
    return _one_signature(njit(func, _nrt=False, no_cpython_wrapper=True,
                               no_cfunc_wrapper=True, forceinline=False, cache=False))


def njit_pass(func):
    """``njit_borrow`` with a CPython wrapper, for the event loop's pass (called from Python
    between the passes, with the arrays of the state as arguments), cached on disk, its
    linked module optimised by LLVM's full pipeline alone (``PassLibrary``)."""
    if JIT_DISABLED:
        return njit(func)
    return njit(func, _nrt=False, no_cfunc_wrapper=True, pipeline_class=_PassCompiler)


def njit_phase(func):
    """``njit_borrow`` for the fault engine's phase functions that a step runs, which LLVM
    inlines into the event loop (``forceinline``: numba's front end still compiles each on
    its own, fast).  A call through ``byref`` costs little, but a call per phase per step
    re-reads the state's fields the loop already holds: the 8-thread benchmark ran at
    two thirds of its rate with every phase a call (docs/performance.md, sixth session).
    Phases that run once per I/O or more rarely are plain ``njit_borrow`` calls: inlined,
    each would be compiled again into every caller."""
    return _one_signature(njit(func, _nrt=False, no_cpython_wrapper=True,
                               no_cfunc_wrapper=True, forceinline=True, cache=False))


def njit_verb(func):
    """``njit_phase`` for the fault engine's small verbs (a list insert, a bin count, a
    record write): typed and lowered once, linked into each caller and inlined there by
    LLVM.  numba's own inlining (``inline="always"``) copied the verb's IR into each of its
    call sites (196 of them) and typed every copy again: 9-13 s of the first compile; a
    verb now costs its one compile (docs/performance.md, eighth session).  Only for
    functions called from compiled code (there is no CPython wrapper)."""
    return njit_phase(func)


@contextlib.contextmanager
def quick_target_config():
    """While a kernel compiles: numba's compile options (``TargetConfig``) hashed and listed
    without going through a property per option, with the same values.

    numba keys its cache of every ``@overload`` resolution by the compiling function's
    options, and lists all of them (one property call each, about sixty) for every hash and
    every comparison: typing the fault engine resolves an array ``getitem``/``setitem``
    against the overload templates about 92,000 times, and the listing took a fifth of
    the first compile (docs/performance.md, seventh session).  The hash is numba's own
    value (it hashes the sorted option names), the listing the same dict; only the way to
    it is shorter.  Restored on exit."""
    from numba.core.targetconfig import TargetConfig

    saved = TargetConfig.__dict__["values"], TargetConfig.__dict__["__hash__"]

    def values(self):
        own = self._values
        return {k: own.get(k, option.default) for k, option in self.options.items()}

    def __hash__(self):
        return hash(tuple(sorted(self.options)))

    TargetConfig.values, TargetConfig.__hash__ = values, __hash__
    try:
        yield
    finally:
        TargetConfig.values, TargetConfig.__hash__ = saved


@contextlib.contextmanager
def unwatched_llvm_lock():
    """While a kernel compiles: no numba event for each call into LLVM.

    llvmlite takes a lock around every call into LLVM, and numba has it broadcast a
    ``numba:llvm_lock`` start and end event each time, to every timer of the compiles in
    progress (one per nesting level), for the ``llvm_lock`` entry of a function's compile
    metadata: the fault engine's compile makes some 27,000 such calls, about 0.1 s of
    events.  The lock itself is taken as before; only the callbacks are removed, and put
    back on exit."""
    callbacks = list(ll.ffi.lib._lock._cblist)
    for acquire, release in callbacks:
        ll.ffi.unregister_lock_callback(acquire, release)
    try:
        yield
    finally:
        for acquire, release in callbacks:
            ll.ffi.register_lock_callback(acquire, release)


@contextlib.contextmanager
def fast_compiling():
    """:func:`quick_target_config`, :func:`remembered_typing` and
    :func:`unwatched_llvm_lock` together: what the fault engine's compile runs under."""
    with quick_target_config(), remembered_typing(), unwatched_llvm_lock():
        yield


@contextlib.contextmanager
def remembered_typing():
    """While a kernel compiles: the type of an operation on numbers and arrays (``a == b``,
    ``a + 1``, ``bool(x)``, ``a[i]``, ...) resolved once per argument types, not at every
    use.

    numba types each use of an operator or built-in by trying the templates registered for
    it in order until one matches (``==`` has dozens, most ``@overload``s for strings,
    lists, sets and other types), and lowers an index by resolving it again; typing the
    fault engine did that about 10,000 times over a few hundred distinct argument types
    (``==`` alone 968 times at 5.7 ms each).  A resolution that a built-in template made
    (its implementation key is the operator itself) is a pure function of the argument
    types: it is remembered for the same function type, typing context and argument types
    and returned as it was.  One an ``@overload`` made is resolved again each time (its
    implementation depends on the compile's options).  Forgotten on exit."""
    from numba.core.types.functions import BaseFunction

    original = BaseFunction.__dict__["get_call_type"]
    known = {}

    def get_call_type(self, context, args, kws):
        key = (self, context, args, tuple(sorted(kws.items())))
        sig = known.get(key)
        if sig is not None:
            self._impl_keys[sig.args] = self.typing_key
            return sig
        sig = original(self, context, args, kws)
        if sig is not None and self._impl_keys.get(sig.args) is self.typing_key:
            known[key] = sig
        return sig

    BaseFunction.get_call_type = get_call_type
    try:
        yield
    finally:
        BaseFunction.get_call_type = original


def _prefetch_intrinsic():
    """``prefetch(array, i)``: ask the CPU to bring the cache line of ``array[i]`` (first
    element of row ``i`` for a 2-D array) into cache ahead of use.  A hint only: it never
    faults and changes no value, so results are the same with or without it."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, arr, idx):
        if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            zero = context.get_constant(types.intp, 0)
            index = context.cast(builder, args[1], signature.args[1], types.intp)
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary,
                                           [index] + [zero] * (aryty.ndim - 1),
                                           wraparound=False, boundscheck=False)
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            # read, high temporal locality, data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0),
                              ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.void(arr, idx), codegen

    return prefetch


def _byref_intrinsic():
    """``byref(state)``: the named tuple ``state`` stored once on the caller's stack, passed
    on as one pointer whose fields read like the tuple's (``ref.faults``, ``ref.horizon``).

    numba passes a named tuple of arrays by value, flattened: each array is seven or nine
    LLVM arguments, and the fault engine's two state tuples are about 850.  Every phase
    function taking them paid about a second of compile time for that alone (numba's
    lowering of the arguments, LLVM's SROA of their copy and the instruction selection of
    the call's prologue; docs/performance.md, sixth session) although it reads a handful.
    Through a pointer a function reads only the fields it uses.  The pointer lives as long
    as the frame of the function that took it; nothing here counts references, so it is
    for the ``njit_borrow`` functions the event loop calls, which keep no array."""
    from numba import types
    from numba.core import cgutils
    from numba.core.typing.templates import AttributeTemplate
    from numba.extending import (infer_getattr, intrinsic, lower_getattr_generic, models,
                                 register_model)

    global StateRef

    class StateRef(types.Type):
        """A pointer to a named tuple (its fields read through it)."""

        def __init__(self, inner):
            self.inner = inner
            super().__init__(name=f"StateRef({inner})")

    # (a module attribute, so that numba's cache pickles the type by reference: a class of
    # a function's locals is pickled by value, a new class in every process, and a cached
    # phase's signature then never matches)
    StateRef.__qualname__ = "StateRef"

    @register_model(StateRef)
    class _StateRefModel(models.PrimitiveModel):
        def __init__(self, dmm, fe_type):
            super().__init__(dmm, fe_type,
                             dmm.lookup(fe_type.inner).get_value_type().as_pointer())

    @infer_getattr
    class _StateRefAttributes(AttributeTemplate):
        key = StateRef

        def generic_resolve(self, typ, attr):
            if attr in typ.inner.fields:
                return typ.inner.types[typ.inner.fields.index(attr)]
            return None

    @lower_getattr_generic(StateRef)
    def _field(context, builder, typ, val, attr):
        value = builder.load(cgutils.gep_inbounds(builder, val, 0,
                                                  typ.inner.fields.index(attr)))
        # the tuple never changes once stored: LLVM may hoist and merge the reads of a
        # field across stores to arrays and calls (else it must assume any store could
        # write the escaped copy, and reads it again inside loops)
        value.set_metadata("invariant.load", builder.module.add_metadata([]))
        return value

    @intrinsic
    def byref(typingctx, state):
        if not isinstance(state, types.BaseNamedTuple):
            return None

        def codegen(context, builder, signature, args):
            return cgutils.alloca_once_value(builder, args[0])

        return StateRef(state)(state), codegen

    return byref


if JIT_DISABLED:
    def _one_signature(func):
        """Pure Python (``NUMBA_DISABLE_JIT=1``): the function itself."""
        return func
else:
    _OneSignature, _LinkOnlyCompiler, _PassCompiler = _one_signature_classes()
    _LinkedCache = _linked_cache_class()


if JIT_DISABLED:
    def byref(state):
        """Pure-Python stand-in (``NUMBA_DISABLE_JIT=1``): the tuple itself."""
        return state
else:
    byref = _byref_intrinsic()


if JIT_DISABLED:
    def prefetch(arr, i):
        """Pure-Python stand-in (``NUMBA_DISABLE_JIT=1``): a cache hint has nothing to do."""
        return None
else:
    prefetch = _prefetch_intrinsic()


def refresh_stale_caches(package_dir, modules):
    """Empty numba's on-disk cache of every compiled function in ``modules`` when any source
    file under ``package_dir`` (or this file) changed since the cache was written.

    numba checks a cached function against its own file only, but the fault engine's
    functions are compiled into each other across files (a phase inlined into the event
    loop): after an edit of ``fault.py`` alone, the cached event loop would still run the
    old phase.  A digest of every source file, kept beside the cache, catches that; the
    functions then compile once more.  Nothing happens without a cache (``NUMBA_DISABLE_JIT``)
    or where the cache directory cannot be written (numba then compiles in memory anyway)."""
    import hashlib
    from pathlib import Path

    if JIT_DISABLED:
        return False
    sources = sorted(Path(package_dir).rglob("*.py")) + [Path(__file__)]
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest = digest.hexdigest()
    caches = [obj._cache for mod in modules for obj in vars(mod).values()
              if isinstance(obj, numba.core.dispatcher.Dispatcher)
              and getattr(obj, "_cache", None) is not None
              and hasattr(obj._cache, "_cache_path")]
    stamp_dirs = {c._cache_path for c in caches}
    stale = False
    for d in stamp_dirs:
        stamp = Path(d) / "vmlab-sources.sha256"
        try:
            stale |= stamp.read_text() != digest
        except OSError:
            stale = True
    if not stale:
        return False
    try:
        for c in caches:
            c.flush()
        for d in stamp_dirs:
            Path(d).mkdir(parents=True, exist_ok=True)
            tmp = Path(d) / f"vmlab-sources.sha256.{os.getpid()}"
            tmp.write_text(digest)
            os.replace(tmp, Path(d) / "vmlab-sources.sha256")
    except OSError:
        pass
    return True
