"""Checks shared by the model's classes: keyword names, and the numbers the engine keeps in int64.

Every time (ns) and count vmlab hands the engine is an int64 that stays below :data:`LIMIT`
= 2**62 (146 years in ns): the engine's "no step" mark, and the sum of two such values still
fits in an int64.  Values beyond it are refused when the model object is built, before they
could wrap around in the engine's arrays.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import math

import numpy as np

from ..errors import ScenarioError

#: Every time in ns and every count the engine holds stays below this (2**62).
LIMIT = 1 << 62
#: How LIMIT reads in messages.
LIMIT_TEXT = "2**62"


def is_bool(v):
    return isinstance(v, (bool, np.bool_))


def is_number(v):
    """A real number (Python or numpy), not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not is_bool(v)


def is_finite_number(v):
    return is_number(v) and not (isinstance(v, (float, np.floating)) and not math.isfinite(v))


def as_whole(v):
    """``v`` as a Python int if it is an integer or a finite float with no fraction (not a
    bool); else ``None``."""
    if is_bool(v):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return int(v)
    return None


def whole_values(values):
    """The entries of ``values`` (a scalar, a sequence or an array) as integers.

    Returns ``(ints, None)``, ``ints`` a 1-D integer array or a list of Python ints, or
    ``(None, (position, value))`` for the first entry that is not a whole number
    (``position`` is None when ``values`` is not a sequence of numbers at all).
    """
    try:
        a = np.asarray(values)
    except (TypeError, ValueError, OverflowError):
        try:
            a = np.array(list(values), dtype=object)
        except TypeError:
            return None, (None, values)
    a = a.reshape(-1)
    if a.dtype.kind in "iu":
        return a, None
    out = []
    for i, v in enumerate(a.tolist()):
        w = as_whole(v)
        if w is None:
            return None, (i, v)
        out.append(w)
    return out, None


def first_outside(ints, lo, hi):
    """``(position, value)`` of the first of ``ints`` (from :func:`whole_values`) outside
    ``[lo, hi)``, or ``None``."""
    if len(ints) == 0:
        return None
    if isinstance(ints, np.ndarray) and lo <= int(ints.min()) and int(ints.max()) < hi:
        return None
    for i, v in enumerate(ints.tolist() if isinstance(ints, np.ndarray) else ints):
        if not lo <= v < hi:
            return i, v
    return None


def did_you_mean(unknown, valid):
    """``"; did you mean 'x'?"`` for the unknown names that are close to a valid one."""
    hints = []
    for u in unknown:
        close = difflib.get_close_matches(str(u), list(valid), n=1)
        if close:
            hints.append((u, close[0]))
    if not hints:
        return ""
    if len(unknown) == 1:
        return f"; did you mean {hints[0][1]!r}?"
    return "; did you mean " + ", ".join(f"{m!r} for {u!r}" for u, m in hints) + "?"


def unknown_names(noun, unknown, listing, valid):
    """The message for unknown names: ``unknown cost(s) ['x']; costs are [...]; did you mean ...``."""
    unknown = sorted(unknown)
    return f"unknown {noun}(s) {unknown}; {listing} are {list(valid)}{did_you_mean(unknown, valid)}"


def checked_keywords(message=None):
    """Class decorator (put it above ``@dataclass``): building the class with an unknown
    keyword raises :class:`ScenarioError` with ``message(unknown)`` (default: the class's
    arguments and a "did you mean") rather than a ``TypeError``; so do missing, surplus or
    repeated arguments."""

    def decorate(cls):
        init = cls.__init__
        sig = inspect.signature(init)
        names = [p.name for p in list(sig.parameters.values())[1:]]

        def default(unknown):
            return unknown_names(f"{cls.__name__} argument", unknown, "its arguments", names)

        explain = message or default

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            unknown = [k for k in kwargs if k not in names]
            if unknown:
                raise ScenarioError(explain(unknown))
            try:
                sig.bind(self, *args, **kwargs)
            except TypeError as e:
                raise ScenarioError(f"{cls.__name__}: {e} (its arguments are {names})") from None
            init(self, *args, **kwargs)

        cls.__init__ = __init__
        return cls

    return decorate
