"""An interactive explorer for notebooks: pick a trace and policies, move sliders, see what
each policy costs.

Only widget wiring lives here: the trace comes from :mod:`vmlab.trace` (a generator of
:data:`vmlab.trace.synth.GENERATORS`, a shipped data set, or a file), the run from
:func:`vmlab.simulate`, the charts from :mod:`vmlab.plots`.  Charts are rendered to PNG
(``ipywidgets.Image``), so the explorer works with any matplotlib backend and headless.

>>> from vmlab.widgets import explore
>>> explore(generator="shared_file", n_records=200_000, threads=4)   # doctest: +SKIP
"""
from __future__ import annotations

import html
import inspect
import io
import os
import time

import ipywidgets as W
import pandas as pd

from . import plots
from .errors import VmlabError
from .model import (LOCK_PRESETS, POLICY_ORDER, Adversary, Costs, LogNormal, Scenario,
                    poisson_signals)
from .model.costs import NVME
from .model.scenario import min_memory_pages
from .trace import synth
from .units import fmt_count, fmt_ns, fmt_value, format_table, label_of

#: Columns of the summary table, in order.
TABLE_COLUMNS = ("policy", "n_faults", "n_major", "n_retries", "n_wasted_io",
                 "fault_latency_ns_p50", "fault_latency_ns_p99", "signal_latency_ns_p99",
                 "lock_wait_ns_total", "writer_ops_per_s", "elapsed_ns", "n_unfinished_records",
                 "livelock")
#: Rates offered by the signal and adversary sliders (Hz; 0 = off).
RATES_HZ = (0, 1, 10, 100, 1_000, 10_000, 100_000)
#: Choices of the synthetic-trace sliders and of the horizon.
N_RECORDS = (1_000, 10_000, 100_000, 1_000_000)
PAGES = (100, 1_000, 20_000, 100_000, 1_000_000)
HORIZONS_S = (0.1, 1.0, 10.0, 60.0, 600.0)
#: Median I/O times offered (ns): from a fast SSD's 10 µs to a disk's seek and beyond.
IO_NS = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 70_000, 100_000, 200_000, 500_000,
         1_000_000, 2_000_000, 5_000_000, 8_000_000, 10_000_000, 20_000_000, 30_000_000)
#: Sample rates offered (1: exact replay; below: pages sampled, see vmlab.sampling).
SAMPLE_RATES = (1.0, 0.1, 0.01, 0.001)
#: Policies offered: the seven of MODEL.md, then the lock designs after 2010 (docs/model.md
#: section 15), each listed with its chart colour.
EXPLORER_POLICIES = tuple(POLICY_ORDER) + tuple(LOCK_PRESETS)
#: p99/median of the default NVMe I/O time, kept when the slider moves the median.
_IO_SPREAD = NVME.p99_ns / NVME.median_ns
#: The machines offered: idle (a woken thread runs at once), or every CPU busy with this
#: host's measured wake-ups under a load of :data:`vmlab.studies.lock_wakeups.LOADS`
#: (``lock_wakeup_ns`` and ``io_wakeup_ns``, docs/model.md 15.14; offered where the
#: measurement is there, a checkout's ``data/native``).
MACHINES = {"idle": None,
            "CPUs busy: this host's wake-ups, load 'faulting'": "faulting",
            "CPUs busy: this host's wake-ups, load 'busy'": "busy"}


def _machines():
    """The :data:`MACHINES` whose measurement can be read here."""
    from .studies import lock_wakeups

    have = lock_wakeups.HOST_CSV.exists() and lock_wakeups.IO_CSV.exists()
    return [name for name, load in MACHINES.items() if load is None or have]


def _machine_costs(costs, machine):
    """``costs`` with the wake-ups of ``machine`` (a key of :data:`MACHINES`)."""
    load = MACHINES[machine]
    if load is None:
        return costs
    from .studies.lock_wakeups import host_delays

    return costs.replace(lock_wakeup_ns=host_delays(load),
                         io_wakeup_ns=host_delays(load, io=True))


def policy_swatches(policies):
    """HTML: a colour square and the legend text of each policy (its chart colour,
    :func:`vmlab.plots.policy_color`), one a line."""
    import html

    lines = [f"<span style='display:inline-block;width:0.8em;height:0.8em;"
             f"background:{plots.policy_color(p)};margin-right:0.4em'></span>"
             f"{html.escape(plots.policy_label(p))}" for p in policies]
    return "<div style='font-size:small;line-height:1.5'>" + "<br>".join(lines) + "</div>"


def _run_each(scenario, policies, skipped):
    """Results of ``policies`` on ``scenario`` (name -> Result), in parallel; a policy that
    the run refuses (a design the engine does not simulate yet) is left out and its reason
    appended to ``skipped``, so that the others still show."""
    from .simulation import simulate_many

    try:
        return dict(zip(policies, simulate_many([(scenario, p) for p in policies],
                                                show_progress=False)))
    except VmlabError:
        pass
    results = {}
    for p in policies:
        try:
            results[p] = simulate_many([(scenario, p)], show_progress=False)[0]
        except VmlabError as e:
            skipped.append(f"{p}: {e}")
    return results


def _shipped():
    """``vmlab.datasets`` when the project ships data sets, else None."""
    try:
        from . import datasets
    except ImportError:
        return None
    return datasets if hasattr(datasets, "list_shipped") else None


def _with(options, value):
    """Slider options including ``value`` (so any initial value is accepted)."""
    return sorted(set(options) | {value})


def _labelled(options, value, fmt):
    """``(label, value)`` slider options including ``value``, labels in natural units."""
    return [(fmt(v), v) for v in _with(options, value)]


def _hz(v):
    return "off" if not v else fmt_value("rate_hz", v)


def _generator_kwargs(name, n_records, threads, pages, seed):
    """Arguments for generator ``name`` from the explorer's knobs (by parameter name);
    None when the generator needs something the explorer does not offer."""
    known = {"n": n_records, "n_reads": n_records, "n_threads": threads,
             "n_per_thread": max(1, n_records // threads), "pages": pages, "seed": seed,
             "gap_ns": 1_000}
    out = {}
    for p in inspect.signature(synth.GENERATORS[name]).parameters.values():
        if p.name in known:
            out[p.name] = known[p.name]
        elif p.default is inspect.Parameter.empty:
            return None
    return out


class Explorer:
    """Widgets to replay one trace under several policies and compare them.

    Parameters (all optional) set the controls' initial values: ``source`` ("synthetic",
    "shipped", "file" or "given" with ``trace=``), ``generator``, ``n_records``, ``threads``,
    ``pages``, ``shipped``, ``path``, ``policies``, ``backing``, ``io_ns`` (median I/O time),
    ``signal_hz``, ``memory_fraction``, ``adversary_hz``, ``horizon_s``, ``sample_rate``,
    ``machine`` (a key of :data:`MACHINES`, or its load: ``"busy"``).  ``run=True`` runs
    once at construction.

    Attributes
    ----------
    widget : ipywidgets.Box
        The whole explorer, to display.
    controls : dict
        Control name -> widget; changing a value re-runs (sliders only on release).
    last_summary : pandas.DataFrame or None
        The summary table shown (one row per policy, :data:`TABLE_COLUMNS`).
    last_results : dict
        Policy name -> :class:`vmlab.Result` of the last run.
    """

    def __init__(self, *, trace=None, source=None, generator="shared_file", n_records=100_000,
                 threads=4, pages=20_000, seed=0, shipped=None, path="",
                 policies=("nopage", "nopage_refault", "fault_retry"), backing="file",
                 io_ns=NVME.median_ns, signal_hz=0, memory_fraction=1.0, adversary_hz=0,
                 horizon_s=60.0, sample_rate=1.0, machine="idle", run=True):
        self._given = trace
        self._traces = {}
        machine = next((k for k, v in MACHINES.items() if v == machine), machine)
        self.last_summary = None
        self.last_results = {}
        ds = _shipped()
        sources = (["given"] if trace is not None else []) + ["synthetic"] + \
            (["shipped"] if ds else []) + ["file"]
        gens = [g for g in synth.GENERATORS if _generator_kwargs(g, 1, 1, 1, 0) is not None]
        names = [getattr(d, "name", d) for d in ds.list_shipped()] if ds else []
        # sliders shrink with the page (a narrow JupyterLab panel, the file browser open)
        # instead of pushing their readouts out of view
        slider = dict(continuous_update=False, style={"description_width": "initial"},
                      layout=W.Layout(width="340px", max_width="100%"))
        c = self.controls = {
            "source": W.ToggleButtons(options=sources, value=source or sources[0],
                                      description="trace"),
            "generator": W.Dropdown(options=gens, value=generator, description="generator"),
            "n_records": W.SelectionSlider(options=_labelled(N_RECORDS, n_records, fmt_count),
                                           value=n_records, description="records", **slider),
            "threads": W.IntSlider(value=threads, min=1, max=16, description="threads", **slider),
            "pages": W.SelectionSlider(options=_labelled(PAGES, pages, fmt_count),
                                       value=pages, description="file pages", **slider),
            "seed": W.IntText(value=seed, description="seed", layout=W.Layout(width="160px")),
            "shipped": W.Dropdown(options=names, value=shipped or (names[0] if names else None),
                                  description="data set"),
            "path": W.Text(value=str(path), description="path",
                           placeholder="trace file (any format vmlab reads)"),
            "policies": W.SelectMultiple(options=list(EXPLORER_POLICIES), value=tuple(policies),
                                         rows=len(EXPLORER_POLICIES), description="policies"),
            "backing": W.Dropdown(options=["file", "anon", "device", "iomem", "context"],
                                  value=backing, description="backing"),
            "io_ns": W.SelectionSlider(options=_labelled(IO_NS, io_ns, fmt_ns), value=io_ns,
                                       description="I/O median", **slider),
            "signal_hz": W.SelectionSlider(options=_labelled(RATES_HZ, signal_hz, _hz),
                                           value=signal_hz,
                                           description="signals per thread", **slider),
            "memory_fraction": W.FloatSlider(value=memory_fraction, min=0.05, max=1.0,
                                             step=0.05, description="memory (× distinct pages)",
                                             **slider),
            "adversary_hz": W.SelectionSlider(options=_labelled(RATES_HZ, adversary_hz, _hz),
                                              value=adversary_hz,
                                              description="fadvise adversary", **slider),
            "horizon_s": W.SelectionSlider(options=_labelled(HORIZONS_S, horizon_s,
                                                             lambda v: fmt_ns(v * 1e9)),
                                           value=horizon_s, description="horizon", **slider),
            # spatial sampling keeps a 10^8-record trace interactive (vmlab.sampling)
            "sample_rate": W.Dropdown(options=_with(SAMPLE_RATES, sample_rate),
                                      value=sample_rate, description="sample rate"),
            "machine": W.Dropdown(options=_machines(), value=machine, description="machine"),
        }
        run_button = W.Button(description="Run", button_style="primary", icon="play")
        run_button.on_click(lambda _: self.update())
        self.status = W.HTML()
        self.table = W.Output(layout=W.Layout(overflow="auto", max_width="100%"))
        self.cdf_image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.breakdown_image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        # a select box cannot colour its options: the colours every chart uses, beside it
        self.policy_colors = W.HTML(policy_swatches(EXPLORER_POLICIES))
        trace_box = W.VBox([c["source"], c["generator"], c["n_records"], c["threads"],
                            c["pages"], c["seed"], c["shipped"], c["path"]])
        knobs = W.VBox([c["backing"], c["io_ns"], c["signal_hz"], c["memory_fraction"],
                        c["adversary_hz"], c["horizon_s"], c["sample_rate"], c["machine"],
                        run_button])
        # the three columns wrap onto new lines when the panel is too narrow for them
        self.widget = W.VBox([
            W.HBox([trace_box, W.VBox([c["policies"], self.policy_colors]), knobs],
                   layout=W.Layout(flex_flow="row wrap", width="100%")),
            self.status, self.table,
            self.cdf_image, self.breakdown_image,
        ])
        self._show_source()
        for k in ("source", "generator"):
            c[k].observe(lambda _: self._show_source(), "value")
        for w in c.values():
            w.observe(self._changed, "value")
        if run:
            self.update()

    # -- wiring ---------------------------------------------------------------------------
    def _changed(self, change):
        if change["owner"] is self.controls["path"] and not change["new"]:
            return
        self.update()

    def _show_source(self):
        src = self.controls["source"].value
        synth_only = ("generator", "n_records", "threads", "pages", "seed")
        for k in synth_only:
            self.controls[k].layout.display = None if src == "synthetic" else "none"
        self.controls["shipped"].layout.display = None if src == "shipped" else "none"
        self.controls["path"].layout.display = None if src == "file" else "none"
        params = inspect.signature(synth.GENERATORS[self.controls["generator"].value]).parameters
        self.controls["threads"].disabled = "n_threads" not in params

    def _trace(self):
        """The selected trace, loaded once per choice (and its distinct-page count)."""
        c = {k: w.value for k, w in self.controls.items()}
        src = c["source"]
        if src == "synthetic":
            key = (src, c["generator"], c["n_records"], c["threads"], c["pages"], c["seed"])
        elif src == "shipped":
            key = (src, c["shipped"])
        elif src == "file":
            p = os.path.expanduser(c["path"])
            key = (src, p, os.path.getmtime(p) if os.path.exists(p) else None)
        else:
            key = (src, id(self._given))
        if key not in self._traces:
            if src == "synthetic":
                kw = _generator_kwargs(c["generator"], c["n_records"], c["threads"],
                                       c["pages"], c["seed"])
                tr = synth.GENERATORS[c["generator"]](**kw)
            elif src == "shipped":
                tr = _shipped().load_shipped(c["shipped"])
            elif src == "file":
                from .trace.convert import read_trace

                if key[2] is None:
                    raise FileNotFoundError(f"no trace file at {c['path']!r}")
                tr = read_trace(key[1])
            else:
                tr = self._given
            from .trace.stats import summarize

            self._traces = {key: (tr, summarize(tr).distinct_pages)}  # keep one: traces are big
        return self._traces[key]

    def scenario(self):
        """The Scenario the controls describe (VMAs inferred from the trace)."""
        c = {k: w.value for k, w in self.controls.items()}
        trace, distinct = self._trace()
        io = LogNormal(median_ns=c["io_ns"], p99_ns=c["io_ns"] * _IO_SPREAD)
        mem = None
        if c["memory_fraction"] < 1.0:
            mem = max(min_memory_pages(trace.n_threads), round(c["memory_fraction"] * distinct))
        adversary = None
        if c["adversary_hz"] and c["backing"] == "file":
            adversary = Adversary("poisson", rate_hz=float(c["adversary_hz"]))
        signals = (poisson_signals(float(c["signal_hz"])),) if c["signal_hz"] else ()
        # no per-fault rows: the charts read the kernel's histograms, which keeps a
        # million-record update quick
        return Scenario(trace, backing=c["backing"], memory_pages=mem, signals=signals,
                        adversary=adversary, horizon_ns=int(c["horizon_s"] * 1e9),
                        costs=_machine_costs(Costs(io_ns=io), c["machine"]), records=False,
                        sample_rate=None if c["sample_rate"] >= 1 else c["sample_rate"])

    def update(self):
        """Re-run the selected policies now and refresh the table and charts."""
        t0 = time.perf_counter()
        try:
            if not self.controls["policies"].value:
                raise VmlabError("no policy selected: select one or more")
            sc = self.scenario()
            runnable, skipped = [], []
            for p in self.controls["policies"].value:
                try:
                    sc.validate(p)
                    runnable.append(p)
                except VmlabError as e:
                    skipped.append(f"{p}: {e}")
            if not runnable:
                raise VmlabError("no selected policy can serve this trace's VMAs:\n"
                                 + "\n".join(skipped))
            results = _run_each(sc, runnable, skipped)
            if not results:
                raise VmlabError("no selected policy can run on this trace:\n"
                                 + "\n".join(skipped))
        except (VmlabError, OSError, ValueError) as e:
            # (a message quotes file names and inputs: shown as text, never as markup)
            text = html.escape(str(e)).replace("\n", "<br>")
            self.status.value = f"<b style='color:#D55E00'>Cannot run:</b> {text}"
            return None
        self.last_results = results
        summary = pd.DataFrame([r.summary for r in results.values()])
        self.last_summary = summary[list(TABLE_COLUMNS)].reset_index(drop=True)
        self._show_table()
        self.cdf_image.value = self._png(lambda ax: plots.latency_cdf(results, ax=ax))
        self.breakdown_image.value = self._png(lambda ax: plots.time_breakdown(results, ax=ax))
        note = html.escape(f"; skipped {'; '.join(skipped)}") if skipped else ""
        n_th, n_pol = sc.trace.n_threads, len(results)
        self.status.value = (f"{len(sc.trace):,} records, {n_th} thread{'s' * (n_th != 1)}, "
                             f"{n_pol} polic{'ies' if n_pol != 1 else 'y'} in "
                             f"{time.perf_counter() - t0:.2f} s{note}")
        return self.last_summary

    def _show_table(self):
        numbers = self.last_summary.set_index("policy").T
        shown = format_table(numbers, by="index")  # each row in its unit: 25.9 ms, 15.0 k/s
        shown.index = [label_of(i) for i in shown.index]
        html = shown.to_html()
        # set the Output's content directly: works headless too (no display() to a kernel)
        self.table.outputs = ({"output_type": "display_data", "metadata": {},
                               "data": {"text/html": html, "text/plain": shown.to_string()}},)

    def snapshot_png(self, figsize=(13, 4.2), dpi=80):
        """The explorer's two charts for its last run side by side, as PNG bytes (what the
        HTML report shows in place of the live widget); None before a run."""
        if not self.last_results:
            return None
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        left, right = fig.subplots(1, 2)
        plots.latency_cdf(self.last_results, ax=left)
        plots.time_breakdown(self.last_results, ax=right)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The live widget for Jupyter, with a picture of the charts beside it for pages
        that cannot run widgets (the offline HTML report, GitHub's notebook view)."""
        import base64

        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        data, meta = (bundle if isinstance(bundle, tuple) else (bundle, {}))
        data = dict(data)
        png = self.snapshot_png()
        html = []
        if png is not None:
            data["image/png"] = base64.b64encode(png).decode("ascii")
            html.append(f'<img alt="the explorer\'s charts" style="max-width:100%" '
                        f'src="data:image/png;base64,{data["image/png"]}">')
        if self.last_summary is not None:
            html.append(format_table(self.last_summary.set_index("policy").T, by="index").to_html())
        if html:  # what a static page shows: the charts, then the table
            data["text/html"] = "\n".join(html)
        return data, meta

    @staticmethod
    def _png(draw, figsize=(8.5, 3.8)):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        draw(fig.add_subplot())
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()


def explore(**kwargs):
    """An :class:`Explorer`, ready to display (``explore(generator="zipf")``): Jupyter shows
    the live widget, a page without widgets a picture of its charts."""
    return Explorer(**kwargs)
