"""Helpers for vmlab's notebooks: record key numbers, read them back, pull out figures.

A notebook calls :func:`record` for the few numbers it is about (a p50 latency, a
throughput, a crossover fraction).  Each call adds one output to the cell: a display of the
MIME type :data:`RECORD_MIME` holding ``{name: value}``; front ends that do not know the type
show nothing, so the notebook stays quiet.  :func:`read_records` collects them from an
executed notebook file, which is what ``tests/test_notebooks.py`` asserts on and what the
batch report (:mod:`vmlab.report`) tabulates.  This is the ``scrapbook.glue`` habit of
pyhf/recommenders, in a dozen lines and with no extra dependency.
"""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np

#: MIME type of a recorded value in a notebook's outputs.
RECORD_MIME = "application/vnd.vmlab.record+json"


def _jsonable(value):
    """A JSON-friendly copy of ``value`` (numpy scalars and arrays, tuples, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if value is None or isinstance(value, (int, str)):
        return value
    raise TypeError(f"record(): cannot store a {type(value).__name__}; record numbers, "
                    "strings, booleans or lists/dicts of them")


def record(name, value):
    """Store ``value`` under ``name`` in the notebook's output.

    Parameters
    ----------
    name : str
        Key, with units in it (``writer_ops_per_s_nopage``, ``crossover_fraction_nopfn``).
    value : number, str, bool, or a list/dict of them
        NaN and infinities are stored as ``null``.

    Returns
    -------
    None
        (So a ``record()`` on a cell's last line does not echo the value.)
    """
    from IPython.display import display

    if not isinstance(name, str) or not name:
        raise ValueError("record() needs a non-empty string name")
    # an empty text/plain fallback: front ends that do not know the type show nothing
    display({RECORD_MIME: {name: _jsonable(value)}, "text/plain": ""}, raw=True)


def _load(nb):
    if isinstance(nb, (str, Path)):
        with open(nb, encoding="utf-8") as f:
            return json.load(f)
    if hasattr(nb, "cells"):
        return json.loads(json.dumps(nb))  # an nbformat NotebookNode
    return nb


def read_records(executed_notebook_path):
    """Every value :func:`record` stored in an executed notebook, in order.

    Parameters
    ----------
    executed_notebook_path : path, or a notebook (dict / nbformat node)

    Returns
    -------
    dict
        name -> value; a name recorded twice keeps the last value.
    """
    nb = _load(executed_notebook_path)
    out = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) or []:
            data = o.get("data") or {}
            if RECORD_MIME in data:
                val = data[RECORD_MIME]
                if isinstance(val, str):
                    val = json.loads(val)
                out.update(val)
    return out


def extract_figures(executed_notebook_path, out_dir, prefix=None):
    """Write every PNG image of an executed notebook's outputs to ``out_dir``.

    Files are named ``{prefix}_{cell}_{k}.png`` (prefix: the notebook's stem).

    Returns
    -------
    list of Path
    """
    nb = _load(executed_notebook_path)
    if prefix is None:
        prefix = Path(executed_notebook_path).stem if isinstance(
            executed_notebook_path, (str, Path)) else "figure"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, cell in enumerate(nb.get("cells", [])):
        k = 0
        for o in cell.get("outputs", []) or []:
            png = (o.get("data") or {}).get("image/png")
            if png:
                if isinstance(png, list):
                    png = "".join(png)
                p = out_dir / f"{prefix}_{i:02d}_{k}.png"
                p.write_bytes(base64.b64decode(png))
                paths.append(p)
                k += 1
    return paths


def parameters_of(notebook_path):
    """Names and default values of a notebook's ``parameters`` cell.

    The cell's simple assignments ``NAME = literal`` are evaluated with
    :func:`ast.literal_eval`; other statements are ignored.

    Returns
    -------
    dict
        name -> default (empty when the notebook has no cell tagged ``parameters``).
    """
    import ast

    nb = _load(notebook_path)
    for cell in nb.get("cells", []):
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") == "code" and "parameters" in tags:
            src = cell.get("source", "")
            if isinstance(src, list):
                src = "".join(src)
            out = {}
            for node in ast.parse(src).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                        node.targets[0], ast.Name):
                    try:
                        out[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        out[node.targets[0].id] = None
            return out
    return {}


# -- parameter types ------------------------------------------------------------------------

_HINT = ("give lists and dicts as Python literals: vmlab report/batch -p NAME '[1, 2]', "
         "papermill -y 'NAME: [1, 2]' (papermill's -p passes strings and numbers only)")


def _kind(default):
    """What a parameter whose default is ``default`` accepts, in words."""
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        inner = {_kind(v) for v in default}
        if len(inner) == 1:
            return f"a list of {inner.pop().replace('an ', '').replace('a ', '')}s"
        return "a list"
    if isinstance(default, dict):
        return "a dict"
    return type(default).__name__


def _coerce(default, value):
    """``value`` as the type of ``default``, or raise TypeError."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise TypeError
    if isinstance(default, (int, float)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise TypeError
        if isinstance(default, int):
            if float(value).is_integer():  # 8e6 from a command line means 8,000,000
                return int(value)
            raise TypeError
        return float(value)
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise TypeError
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise TypeError
        kinds = {type(v) for v in default}
        if len(default) and len(kinds) == 1:  # a homogeneous default: its elements' type
            return [_coerce(default[0], v) for v in value]
        return list(value)
    if isinstance(default, dict):
        if isinstance(value, dict):
            return value
        raise TypeError
    return value


def check_parameter(name, default, value, where="notebook"):
    """``value`` for parameter ``name``, checked against the type of its ``default``.

    Integers accept integral floats (``8e6``) and become ``int``; floats accept integers;
    a list whose default holds one type needs elements of that type.  Anything else raises
    one :class:`~vmlab.errors.VmlabError` line saying what was expected.
    """
    from .errors import VmlabError

    try:
        return _coerce(default, value)
    except TypeError:
        hint = f"; {_HINT}" if isinstance(default, (list, tuple, dict)) else ""
        raise VmlabError(f"{where}: parameter {name} must be {_kind(default)} like its "
                         f"default {default!r}, got {type(value).__name__} {value!r}"
                         f"{hint}") from None


def check_parameters_against(defaults, given, where="notebook"):
    """Every value of ``given`` checked by :func:`check_parameter` against ``defaults``.

    Returns
    -------
    dict
        name -> the value to pass (integral floats made ``int`` where the default is).
    """
    return {k: check_parameter(k, defaults.get(k), v, where) if k in defaults else v
            for k, v in given.items()}


def _literal_assignments(src):
    import ast

    out = {}
    try:
        body = ast.parse(src).body
    except SyntaxError:
        return out
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = None
    return out


#: First line of the cell papermill injects after the ``parameters`` cell.
PAPERMILL_INJECTED = "# Parameters"


def check_parameters():
    """In a notebook run by papermill: check the injected parameters against the defaults.

    Call it in the cell right after the ``parameters`` cell.  When the cell before it is the
    one papermill injected (its first line is ``# Parameters``), each injected value is
    checked against the default of the same name in the ``parameters`` cell before that
    (:func:`check_parameter`): a list passed with papermill's ``-p`` (a string) fails here
    with one line, not deep inside a computation.  Values are converted in place (``8e6``
    becomes ``8000000`` for an integer default).  Run interactively, it does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - outside IPython there is nothing to check
        return
    ip = get_ipython()
    if ip is None:
        return
    history = ip.user_ns.get("In") or []
    if len(history) < 3 or not str(history[-2]).lstrip().startswith(PAPERMILL_INJECTED):
        return
    given = _literal_assignments(str(history[-2]))
    defaults = _literal_assignments(str(history[-3]))
    checked = check_parameters_against(defaults, {k: ip.user_ns[k] for k in given
                                                  if k in ip.user_ns}, "papermill")
    ip.user_ns.update(checked)
