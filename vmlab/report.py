"""The batch report: execute the notebooks with papermill, render them, gather their numbers.

:func:`run_report` executes every notebook under ``notebooks/`` (in parallel processes, one
notebook each), writes the executed notebooks, an HTML rendering of each, ``index.html``
(status, runtime, parameters and the numbers each notebook recorded with
:func:`vmlab.notebook.record`) and ``report.json`` to the output folder.  A failing notebook
does not stop the others; it is reported by name with its error, on stderr and in the
index, and the result says something failed.

:func:`run_batch` runs one notebook over the cartesian product of a parameter grid and
gathers the recorded numbers into one table (one row per grid point).

``vmlab report`` and ``vmlab batch`` (:func:`main_report`, :func:`main_batch`) are the
command-line front ends.

Parameters reach a notebook only if its cell tagged ``parameters`` declares them
(papermill would inject any name, and a misspelt one would silently do nothing): an
unknown name given for *every* notebook is an error, one that some notebooks lack is
passed to the others only.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import datetime
import html
import itertools
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .errors import VmlabError
from .notebook import RECORD_MIME, check_parameters_against, parameters_of, read_records
from .units import fmt_value

#: The notebooks folder of a source checkout (``<repo>/notebooks``).
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
#: Kernel the notebooks run in (``vmlab kernel install`` registers it; ``make`` does too).
KERNEL = "vmlab"
#: nbconvert template of the notebooks' HTML pages: JupyterLab's, loading nothing from the
#: network (``vmlab/templates/vmlab_offline``).
HTML_TEMPLATES = Path(__file__).resolve().parent / "templates"
#: Output MIME types a page without the widget manager cannot show; removed from the HTML
#: (an output that has them also carries a picture or text, which is shown instead).
WIDGET_MIMES = ("application/vnd.jupyter.widget-view+json",
                "application/vnd.jupyter.widget-state+json")
#: Name under which a notebook records its one-line finding for the index.
FINDING = "finding"

#: Bigger sizes for ``preset="large"``: each applies to the notebooks that declare it.
LARGE_PRESET = {
    # 02 signals
    "N_THREADS": 32, "N_ACCESSES": 200, "RESTART_RATES_HZ": [1, 3, 10, 30, 100, 300],
    # 03 mmap_sem
    "N_READS": 1000, "N_LOCK_OPS": 1_000_000, "GOOGLE_PAGES": 16384,
    # 04 DoS
    "N_FAULTS": 40, "RATES_HZ": [1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 2_000_000,
                                 3_000_000],
    "IO_NS_VALUES": [20_000, 70_000, 300_000, 1_000_000, 8_000_000],
    "STORM_SIGNAL_RATES_HZ": [0, 100, 1_000, 3_000, 10_000, 100_000],
    "SERIES_VICTIMS": 32, "SERIES_FAULTS": 200,
    # 05 device
    "N_PAGES": 65536,
    "FRACTIONS": [0.005, 0.01, 0.02, 0.03, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.15, 0.2, 0.3,
                  0.5, 0.75, 1.0],
    # 06 real programs
    "MEMORY_FRACTIONS": [1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05],
    # 07 explorer
    "N_RECORDS": 1_000_000,
    # 09 twenty years later
    "PFT_PAGES": 256, "EBIZZY_ITERS": 30, "LADDER_READS": 200,
}
PRESETS = {"default": {}, "large": LARGE_PRESET}


def _log(msg, command="report"):
    print(f"vmlab {command}: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Finding notebooks and their parameters


def find_notebooks(notebooks_dir=None, names=None):
    """The notebooks to run, sorted by file name.

    Parameters
    ----------
    notebooks_dir : path, optional
        Default: :data:`NOTEBOOKS_DIR`.
    names : sequence of str, optional
        Select notebooks by stem (``02_signals_spufs``), by its number (``02``), by a prefix
        or a unique part of the stem (``signals``).  Default: all ``*.ipynb``.

    Returns
    -------
    list of Path
    """
    d = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    if not d.is_dir():
        raise VmlabError(f"no notebooks folder at {d}")
    all_nb = sorted(p for p in d.glob("*.ipynb") if not p.name.startswith("."))
    if not names:
        if not all_nb:
            raise VmlabError(f"no notebook (*.ipynb) in {d}")
        return all_nb
    out = []
    for name in names:
        stem = Path(name).name
        stem = stem[:-6] if stem.endswith(".ipynb") else stem
        exact = [p for p in all_nb if p.stem == stem]
        hits = exact or [p for p in all_nb if p.stem.startswith(stem)] or \
            [p for p in all_nb if stem in p.stem]
        if len(hits) != 1:
            what = "no notebook" if not hits else f"{len(hits)} notebooks ({', '.join(p.stem for p in hits)})"
            raise VmlabError(f"{what} match {name!r}; notebooks are: "
                             f"{', '.join(p.stem for p in all_nb) or 'none'}")
        if hits[0] not in out:
            out.append(hits[0])
    return out


def _split_parameters(parameters, stems):
    """Global parameters and per-notebook ones (a key naming a notebook, with a dict)."""
    glob, per = {}, {}
    for k, v in (parameters or {}).items():
        if k in stems and isinstance(v, dict):
            per[k] = dict(v)
        else:
            glob[k] = v
    return glob, per


def plan_parameters(paths, parameters=None, preset="default"):
    """What each notebook will be given: the preset and ``parameters``, filtered to the
    names its ``parameters`` cell declares.

    ``parameters`` may hold per-notebook dicts under a notebook's stem.  A global name no
    notebook declares is an error (so that a typo does not pass unnoticed).

    Returns
    -------
    dict
        notebook stem -> dict of parameters.
    """
    if preset not in PRESETS:
        raise VmlabError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    stems = [p.stem for p in paths]
    glob, per = _split_parameters(parameters, stems)
    declared = {p.stem: parameters_of(p) for p in paths}
    unknown = [k for k in glob if not any(k in d for d in declared.values())]
    if unknown:
        names = sorted({n for d in declared.values() for n in d})
        raise VmlabError(f"parameter(s) {', '.join(unknown)} not declared by any selected "
                         f"notebook; declared parameters are: {', '.join(names) or 'none'}")
    plan = {}
    for stem in stems:
        d = declared[stem]
        given = {k: v for k, v in PRESETS[preset].items() if k in d}
        given.update({k: v for k, v in glob.items() if k in d})
        for k, v in per.get(stem, {}).items():
            if k not in d:
                raise VmlabError(f"notebook {stem} does not declare parameter {k!r}; it "
                                 f"declares: {', '.join(d) or 'none'}")
            given[k] = v
        plan[stem] = check_parameters_against(d, given, f"notebook {stem}")
    return plan


# ---------------------------------------------------------------------------------------
# Executing one notebook (runs in a worker process)


#: Kernels started side by side can die before their first reply (jupyter_client picks
#: free ports before the kernel binds them, and two starts may pick the same): such a start
#: is tried again this many times, no cell having run.
KERNEL_START_RETRIES = 2


def _kernel_start_failed(exc):
    """The kernel died or kept silent before it replied to ``kernel_info``: nothing ran."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "Kernel died before replying to kernel_info" in text or "Kernel didn't respond" in text)


def _error_of(exc):
    """One line describing a notebook failure."""
    ename = getattr(exc, "ename", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        where = f" (cell [{cell}])" if cell else ""
        return f"{ename}: {getattr(exc, 'evalue', '')}{where}"
    return f"{type(exc).__name__}: {exc}"


def _html_of(nb_path, html_path):
    """Render an executed notebook to a page that loads nothing from the network."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(nb_path), as_version=4)
    nb.metadata.pop("widgets", None)  # no widget manager offline: no state to load
    for cell in nb.cells:
        if "outputs" not in cell:
            continue
        kept = []
        # the recorded numbers are in the index; their invisible outputs need no rendering
        for o in cell.outputs:
            data = o.get("data", {})
            if RECORD_MIME in data:
                continue
            for m in WIDGET_MIMES:
                data.pop(m, None)
            if "data" in o and not data:
                continue
            kept.append(o)
        cell.outputs = kept
    exporter = HTMLExporter(template_name="vmlab_offline",
                            extra_template_basedirs=[str(HTML_TEMPLATES)])
    body, _ = exporter.from_notebook_node(nb)
    Path(html_path).write_text(body, encoding="utf-8")


def thumbnail_of(nb_path, width_px=360):
    """A small PNG (bytes) of an executed notebook's figure, for the index; None if none.

    The figure is the first image of a cell tagged ``thumbnail``, else the notebook's first
    image.
    """
    import base64
    import io

    from PIL import Image

    nb = json.loads(Path(nb_path).read_text(encoding="utf-8"))
    tagged, first = None, None
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) or []:
            png = (o.get("data") or {}).get("image/png")
            if not png:
                continue
            png = "".join(png) if isinstance(png, list) else png
            first = first or png
            if "thumbnail" in (cell.get("metadata") or {}).get("tags", []):
                tagged = tagged or png
    png = tagged or first
    if png is None:
        return None
    img = Image.open(io.BytesIO(base64.b64decode(png)))
    img.thumbnail((width_px, width_px * 2))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def execute_notebook(path, out_path, parameters=None, kernel=KERNEL, html_path=None,
                     timeout=None, announce=False):
    """Execute one notebook with papermill; never raises for a notebook error.

    Returns
    -------
    dict
        ``name``, ``status`` ("ok" or "failed"), ``error`` (one line, or ""),
        ``runtime_s``, ``records`` (:func:`vmlab.notebook.read_records`), ``parameters``,
        ``ipynb`` and ``html`` (output paths; ``html`` empty if rendering failed).
    """
    import papermill as pm

    path, out_path = Path(path), Path(out_path)
    if announce:
        _log(f"{path.stem} started (pid {os.getpid()})")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    status, error = "ok", ""
    # The kernel process inherits file descriptor 2: send its start-up chatter to
    # logs/NAME.log beside the output, so that the report's stderr stays one line per event.
    log_path = out_path.parent / "logs" / (out_path.stem + ".log")
    log_path.parent.mkdir(exist_ok=True)
    saved = os.dup(2)
    try:
        with open(log_path, "w") as log:
            os.dup2(log.fileno(), 2)
            try:
                for attempt in range(1 + KERNEL_START_RETRIES):
                    try:
                        pm.execute_notebook(str(path), str(out_path),
                                            parameters=dict(parameters or {}),
                                            kernel_name=kernel, cwd=str(path.parent),
                                            progress_bar=False, log_output=False,
                                            execution_timeout=timeout,
                                            # papermill's 60 s default is too short beside a
                                            # test suite on 2 loaded cores
                                            start_timeout=300)
                    except Exception as e:  # a failing notebook is a result, not a crash
                        if _kernel_start_failed(e) and attempt < KERNEL_START_RETRIES:
                            continue    # (no cell ran: the notebook starts again)
                        status, error = "failed", _error_of(e)
                    break
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
    runtime = time.perf_counter() - t0
    records = {}
    if out_path.exists():
        try:
            records = read_records(out_path)
        except Exception as e:  # pragma: no cover - a corrupt output notebook
            status, error = "failed", error or f"cannot read the executed notebook: {e}"
    html_out, thumb = "", ""
    if html_path is not None and out_path.exists():
        try:
            _html_of(out_path, html_path)
            html_out = str(html_path)
            png = thumbnail_of(out_path)
            if png:
                thumb_path = Path(html_path).with_suffix(".png")
                thumb_path.write_bytes(png)
                thumb = str(thumb_path)
        except Exception as e:  # pragma: no cover - nbconvert trouble
            error = error or f"HTML rendering failed: {_error_of(e)}"
    return {"name": path.stem, "status": status, "error": error, "runtime_s": runtime,
            "records": records, "parameters": dict(parameters or {}),
            "ipynb": str(out_path) if out_path.exists() else "", "html": html_out,
            "thumbnail": thumb}


def _check_kernel(kernel):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise VmlabError(
            f"no Jupyter kernel named {kernel!r}; register this Python as it with "
            f"'vmlab kernel install' (or '{sys.executable} -m vmlab.cli kernel install')") from None


def _check_run_options(jobs, timeout):
    """``jobs`` (None: the CPUs) and ``timeout`` (None: none) refused unless they can mean
    what was typed: at least one process, a positive finite number of seconds."""
    from .model._checks import as_whole, is_finite_number

    if jobs is not None and (as_whole(jobs) is None or jobs < 1):
        raise VmlabError(f"--jobs must be at least 1 (default: the CPUs), got {jobs!r}")
    if timeout is not None and not (is_finite_number(timeout) and timeout > 0):
        raise VmlabError(f"--timeout must be a positive number of seconds (default: none), "
                         f"got {timeout!r}")


def _pool(jobs, n):
    jobs = max(1, min(int(jobs or os.cpu_count() or 1), n))
    return cf.ProcessPoolExecutor(max_workers=jobs,
                                  mp_context=multiprocessing.get_context("spawn")), jobs


# ---------------------------------------------------------------------------------------
# The report


def run_report(out_dir="report", parameters=None, preset="default", jobs=None, notebooks=None,
               notebooks_dir=None, kernel=KERNEL, timeout=None):
    """Execute every notebook and write the report.

    Parameters
    ----------
    out_dir : path
        Output folder (created): executed ``NAME.ipynb``, ``NAME.html``, ``index.html``,
        ``report.json``, and ``logs/NAME.log`` (what the notebook's kernel wrote on stderr).
    parameters : dict, optional
        name -> value for every notebook that declares the name; a notebook's stem -> dict
        for that notebook only.  Applied after the preset.
    preset : {"default", "large"}
        ``large`` sets bigger sizes (:data:`LARGE_PRESET`).
    jobs : int, optional
        Notebooks executed at once (processes); default the number of CPUs.
    notebooks : sequence of str, optional
        Only these (see :func:`find_notebooks`).
    notebooks_dir : path, optional
    kernel : str
    timeout : float, optional
        Per-cell timeout in seconds (default none).

    Returns
    -------
    dict
        ``ok`` (bool), ``failed`` (names), ``out_dir``, ``index`` (path), ``runtime_s`` and
        ``notebooks``: name -> the dict of :func:`execute_notebook`.
    """
    t0 = time.perf_counter()
    _check_run_options(jobs, timeout)
    paths = find_notebooks(notebooks_dir, notebooks)
    plan = plan_parameters(paths, parameters, preset)
    _check_kernel(kernel)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VmlabError(f"--out {out} is a file; the report is a folder (name a new or "
                         "existing folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VmlabError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    results = {}
    pool, n_jobs = _pool(jobs, len(paths))
    _log(f"running {len(paths)} notebook(s) with {n_jobs} process(es) into {out}/")
    with pool:
        futures = {}
        for p in paths:
            f = pool.submit(execute_notebook, p, out / p.name, plan[p.stem], kernel,
                            out / (p.stem + ".html"), timeout, True)
            futures[f] = p
        for f in cf.as_completed(futures):
            p = futures[f]
            try:
                r = f.result()
            except Exception as e:  # the worker process itself died
                r = {"name": p.stem, "status": "failed", "error": _error_of(e), "runtime_s": math.nan,
                     "records": {}, "parameters": plan[p.stem], "ipynb": "", "html": "",
                     "thumbnail": ""}
            results[p.stem] = r
            if r["status"] == "ok":
                _log(f"{p.stem} finished in {r['runtime_s']:.1f} s: ok, "
                     f"{len(r['records'])} number(s) recorded")
            else:
                _log(f"{p.stem} FAILED after {r['runtime_s']:.1f} s: {r['error']}")
    ordered = {p.stem: results[p.stem] for p in paths}
    failed = [n for n, r in ordered.items() if r["status"] != "ok"]
    summary = {"ok": not failed, "failed": failed, "out_dir": str(out),
               "index": str(out / "index.html"), "runtime_s": time.perf_counter() - t0,
               "preset": preset, "jobs": n_jobs, "notebooks": ordered}
    (out / "report.json").write_text(json.dumps(_portable(summary), indent=1), encoding="utf-8")
    (out / "index.html").write_text(render_index(summary), encoding="utf-8")
    if failed:
        _log(f"{len(failed)} of {len(paths)} notebook(s) failed: {', '.join(failed)}")
    _log(f"done in {summary['runtime_s']:.1f} s; open {out / 'index.html'}")
    return summary


def _portable(summary):
    """``summary`` with paths relative to the output folder (for report.json)."""
    s = json.loads(json.dumps(summary, default=str))
    for r in s["notebooks"].values():
        for k in ("ipynb", "html", "thumbnail"):
            if r.get(k):
                r[k] = Path(r[k]).name
    return s


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 70em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; }
td.thumb img { width: 240px; height: auto; border: 1px solid #ddd; }
td.finding { max-width: 28em; }
td.params { max-width: 16em; }
td.params code { white-space: normal; overflow-wrap: anywhere; }
.ok { color: #117733; font-weight: 600; }
.failed { color: #c00; font-weight: 600; }
.err { color: #c00; font-family: monospace; white-space: pre-wrap; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def render_index(summary):
    """The HTML of ``index.html`` for a :func:`run_report` result."""
    e = html.escape
    nbs = summary["notebooks"]
    n_ok = sum(r["status"] == "ok" for r in nbs.values())
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    rows = []
    for name, r in nbs.items():
        link = (f'<a href="{e(Path(r["html"]).name)}">{e(name)}</a>' if r["html"] else e(name))
        nb_link = f' (<a href="{e(Path(r["ipynb"]).name)}">ipynb</a>)' if r["ipynb"] else ""
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items()) or "defaults"
        thumb = ""
        if r.get("thumbnail"):
            img = f'<img src="{e(Path(r["thumbnail"]).name)}" alt="a figure of {e(name)}">'
            thumb = f'<a href="{e(Path(r["html"]).name)}">{img}</a>' if r["html"] else img
        finding = r["records"].get(FINDING, "")
        rows.append(
            f'<tr><td>{link}{nb_link}</td><td class="thumb">{thumb}</td>'
            f'<td class="finding">{e(str(finding))}</td>'
            f'<td class="{e(r["status"])}">{e(r["status"])}</td>'
            f'<td class="num">{r["runtime_s"]:.1f} s</td><td class="num">{len(r["records"])}</td>'
            f'<td class="params"><code>{e(params)}</code></td><td class="err">{e(r["error"])}</td></tr>')
    sections = []
    for name, r in nbs.items():
        numbers = {k: v for k, v in r["records"].items() if k != FINDING}
        if numbers:
            body = "".join(f'<tr><td><code>{e(k)}</code></td>'
                           f'<td class="num">{e(fmt_value(k, v))}</td></tr>'
                           for k, v in numbers.items())
            table = (f'<div class="scroll"><table><tr><th>recorded number</th><th>value</th></tr>'
                     f'{body}</table></div>')
        else:
            table = "<p>No numbers recorded.</p>"
        status = (f'<span class="{e(r["status"])}">{e(r["status"])}</span>, '
                  f'{r["runtime_s"]:.1f} s')
        err = f'<p class="err">{e(r["error"])}</p>' if r["error"] else ""
        sections.append(f'<h3 id="{e(name)}">{e(name)} ({status})</h3>{err}{table}')
    # the notebooks run side by side: their own runtimes add up to more than the wall clock
    own = sum(r["runtime_s"] for r in nbs.values() if math.isfinite(r.get("runtime_s", math.nan)))
    jobs = summary.get("jobs")
    busy = (f" ({own:.1f} s of notebook time, {jobs} at once)" if jobs and jobs > 1 and nbs
            else "")
    verdict = ("" if not summary["failed"] else
               f'; <span class="failed">{len(summary["failed"])} failed: '
               f'{e(", ".join(summary["failed"]))}</span>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vmlab report</title>
<style>{_CSS}</style></head><body>
<h1>vmlab report</h1>
<p>{n_ok} of {len(nbs)} notebooks ran{verdict}; {summary['runtime_s']:.1f} s from start to
end{busy}, preset <code>{e(summary.get('preset', 'default'))}</code>, {e(when)}.
Each notebook's HTML rendering is linked; the numbers below are those it recorded with
<code>vmlab.notebook.record()</code>.</p>
<h2>Notebooks</h2>
<div class="scroll"><table><tr><th>notebook</th><th>figure</th><th>finding</th><th>status</th>
<th>runtime</th><th>numbers</th><th>parameters</th><th>error</th></tr>
{''.join(rows)}
</table></div>
<h2>Recorded numbers</h2>
{''.join(sections)}
</body></html>
"""


# ---------------------------------------------------------------------------------------
# Batch runs of one notebook


def _flatten(records):
    out = {}
    for k, v in records.items():
        if isinstance(v, dict):
            for k2, v2 in _flatten(v).items():
                out[f"{k}.{k2}"] = v2
        elif isinstance(v, list):
            out[k] = json.dumps(v)
        else:
            out[k] = v
    return out


def _policy_of(name, policies):
    """``(base, policy)`` when record ``name`` ends in ``_<policy>``, else None."""
    for p in sorted(policies, key=len, reverse=True):  # fault_retry_v57 before fault_retry
        if name.endswith("_" + p) and len(name) > len(p) + 1:
            return name[: -len(p) - 1], p
    return None


def _long_rows(point, status, records):
    """One batch point's rows: one per policy the recorded numbers name.

    A record whose value is a dict keyed by policy names (``{"nopage": 202.4, ...}``) or
    whose name ends in a policy's name (``writer_ops_per_s_nopage``) goes to that policy's
    row under its base name (``writer_ops_per_s``); every other record (flattened: dicts as
    ``name.key``, lists as JSON) is repeated on each row of the point.
    """
    from .model.policies import PRESETS as POLICY_PRESETS

    policies = list(POLICY_PRESETS)
    shared, per = {}, {}
    for k, v in records.items():
        if isinstance(v, dict) and v and all(p in policies for p in v):
            for p, x in v.items():
                per.setdefault(p, {})[k] = json.dumps(x) if isinstance(x, (list, dict)) else x
            continue
        hit = _policy_of(k, policies)
        if hit and not isinstance(v, (list, dict)):
            per.setdefault(hit[1], {})[hit[0]] = v
            continue
        shared.update(_flatten({k: v}))
    base = {**point, **status}
    if not per:
        return [{**base, **shared}]
    order = [p for p in policies if p in per]
    return [{**point, "policy": p, **status, **shared, **per[p]} for p in order]


def _resolve_notebook(notebook, notebooks_dir=None):
    p = Path(notebook)
    if p.suffix == ".ipynb" and p.is_file():
        return p
    return find_notebooks(notebooks_dir, [str(notebook)])[0]


def run_batch(notebook, grid, out, jobs=None, parameters=None, notebooks_dir=None,
              kernel=KERNEL, timeout=None, keep_dir=None):
    """Run one notebook over the cartesian product of ``grid``; gather its numbers.

    Parameters
    ----------
    notebook : path or str
        A notebook file, or a name under ``notebooks/`` (see :func:`find_notebooks`).
    grid : dict
        name -> list of values; every name must be declared by the notebook.
    out : path
        ``.csv``, or ``.parquet``/``.pq`` (needs pyarrow).
    jobs : int, optional
        Grid points executed at once (processes).
    parameters : dict, optional
        Fixed parameters for every point.
    notebooks_dir : path, optional
    kernel : str
    timeout : float, optional
    keep_dir : path, optional
        Keep the executed notebooks there (default: a temporary folder, removed).

    Returns
    -------
    DataFrame
        Long format, the shape pandas and seaborn group by: one row per grid point and
        policy, in grid order: the grid's parameters, ``policy``, then ``status``,
        ``runtime_s``, ``error`` and the recorded numbers (see :func:`_long_rows`).  A
        notebook that records nothing per policy gives one row per point and no ``policy``
        column.
    """
    import pandas as pd

    _check_run_options(jobs, timeout)
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise VmlabError(f"--out must end in .csv or .parquet, got {out.name!r}")
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise VmlabError("writing Parquet needs pyarrow, which is not installed; "
                             "install it (pip install pyarrow) or write a .csv") from None
    from ._io import check_writable

    check_writable(out)   # (a folder, or no place to write: said before the notebooks run)
    path = _resolve_notebook(notebook, notebooks_dir)
    declared = parameters_of(path)
    grid = {k: list(v) for k, v in dict(grid).items()}
    fixed = dict(parameters or {})
    unknown = [k for k in list(grid) + list(fixed) if k not in declared]
    if unknown:
        raise VmlabError(f"notebook {path.stem} does not declare {', '.join(unknown)}; it "
                         f"declares: {', '.join(declared) or 'none'}")
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise VmlabError("the grid needs at least one parameter with at least one value")
    where = f"notebook {path.stem}"
    fixed = check_parameters_against(declared, fixed, where)
    grid = {k: [check_parameters_against(declared, {k: v}, where)[k] for v in vals]
            for k, vals in grid.items()}
    _check_kernel(kernel)
    keys = list(grid)
    points = [dict(zip(keys, vals)) for vals in itertools.product(*grid.values())]
    work = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="vmlab-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    pool, n_jobs = _pool(jobs, len(points))
    _log(f"{path.stem} over {len(points)} grid point(s) with {n_jobs} process(es)", "batch")
    rows = [None] * len(points)
    try:
        with pool:
            futures = {}
            for i, pt in enumerate(points):
                params = {**fixed, **pt}
                futures[pool.submit(execute_notebook, path, work / f"{path.stem}_{i:04d}.ipynb",
                                    params, kernel, None, timeout, False)] = i
            for f in cf.as_completed(futures):
                i = futures[f]
                try:
                    r = f.result()
                except Exception as e:
                    r = {"status": "failed", "error": _error_of(e), "runtime_s": math.nan,
                         "records": {}}
                rows[i] = _long_rows(points[i], {"status": r["status"],
                                                 "runtime_s": r["runtime_s"],
                                                 "error": r["error"]}, r["records"])
                label = ", ".join(f"{k}={v!r}" for k, v in points[i].items())
                if r["status"] == "ok":
                    _log(f"point {i + 1}/{len(points)} ({label}) done in {r['runtime_s']:.1f} s", "batch")
                else:
                    _log(f"point {i + 1}/{len(points)} ({label}) FAILED: {r['error']}", "batch")
    finally:
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)
    df = pd.DataFrame([row for point_rows in rows for row in point_rows])
    for k in keys:  # list-valued parameters do not fit a table cell
        if df[k].map(lambda v: isinstance(v, (list, dict))).any():
            df[k] = df[k].map(json.dumps)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)
    n_failed = int((df["status"] != "ok").sum())
    _log(f"wrote {len(df)} row(s) to {out}" + (f"; {n_failed} point(s) failed" if n_failed else ""),
         "batch")
    return df


# ---------------------------------------------------------------------------------------
# Command line


def parse_value(text):
    """A command-line value: a Python literal (``10``, ``1e6``, ``[1, 2]``, ``'x'``) or,
    failing that, the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_top_level(text, sep=","):
    """Split ``text`` at ``sep`` outside brackets and quotes (``[1,2],[3]`` -> 2 parts)."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _report_parser():
    p = argparse.ArgumentParser(
        prog="vmlab report",
        description="Execute every notebook under notebooks/ with papermill (in parallel) and "
                    "write the executed notebooks, their HTML and an index.html with every "
                    "notebook's recorded numbers, runtime and status.")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"),
                   help="set a parameter in every notebook that declares it (VALUE is a "
                        "Python literal; repeatable)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="'large' runs bigger sizes")
    p.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: CPUs)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=None,
                   help="run only these notebooks (stem, number or part of the name)")
    p.add_argument("--notebooks-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    return p


def main_report(argv=None):
    """``vmlab report``; returns the exit code (0: every notebook ran, 1: some failed,
    2: a usage error)."""
    a = _report_parser().parse_args(argv)
    params = {name: parse_value(value) for name, value in a.parameter}
    try:
        summary = run_report(a.out, parameters=params, preset=a.preset, jobs=a.jobs,
                             notebooks=a.only, notebooks_dir=a.notebooks_dir, timeout=a.timeout)
    except VmlabError as e:
        print(f"vmlab report: error: {e}", file=sys.stderr)
        return 2
    return 0 if summary["ok"] else 1


def _batch_parser():
    p = argparse.ArgumentParser(
        prog="vmlab batch",
        description="Run one notebook over the cartesian product of a parameter grid and "
                    "gather the numbers it records into one table (one row per grid point).",
        epilog="example: vmlab batch 03 --grid N_READS=50,100 --grid IO_NS=8e6,18e6 "
               "--out mmap_sem.csv")
    p.add_argument("notebook", help="notebook file, or name under notebooks/ (e.g. 03)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a parameter and its values (Python literals, comma-separated; "
                        "commas inside brackets do not split); repeatable")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="a fixed parameter for every point")
    p.add_argument("--out", required=True, help="output table: .csv or .parquet")
    p.add_argument("--jobs", type=int, default=None, help="grid points at once (default: CPUs)")
    p.add_argument("--notebooks-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    return p


def main_batch(argv=None):
    """``vmlab batch``; returns the exit code (0: every point ran, 1: some failed, 2: a
    usage error)."""
    p = _batch_parser()
    a = p.parse_args(argv)
    grid = {}
    for g in a.grid:
        name, eq, values = g.partition("=")
        if not eq or not name.strip() or not values.strip():
            p.error(f"--grid needs NAME=V1,V2,... got {g!r}")
        grid[name.strip()] = [parse_value(v) for v in split_top_level(values)]
    fixed = {name: parse_value(value) for name, value in a.parameter}
    try:
        df = run_batch(a.notebook, grid, a.out, jobs=a.jobs, parameters=fixed,
                       notebooks_dir=a.notebooks_dir, timeout=a.timeout)
    except VmlabError as e:
        print(f"vmlab batch: error: {e}", file=sys.stderr)
        return 2
    return 0 if (df["status"] == "ok").all() else 1


__all__ = ["run_report", "run_batch", "main_report", "main_batch", "find_notebooks",
           "plan_parameters", "execute_notebook", "render_index", "LARGE_PRESET", "PRESETS"]
