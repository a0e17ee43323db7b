"""The one place where vmlab sets numba options.

Every kernel in vmlab is compiled with ``njit`` from this module so that caching and
floating-point behaviour are decided once.  ``fastmath`` stays off: the engine must be
bit-for-bit deterministic and agree exactly with the plain-Python reference simulator.
"""
from __future__ import annotations

import os

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
