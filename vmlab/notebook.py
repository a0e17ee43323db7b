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
