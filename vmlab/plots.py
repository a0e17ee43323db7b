"""Charts of vmlab results: pure functions from Results and DataFrames to matplotlib Axes.

Every function takes an optional ``ax=`` and returns the Axes it drew on; without one it
makes a new figure with pyplot (so a notebook cell shows it), and nothing here ever calls
``plt.show()``.  Conventions shared by every chart:

* **One colour and one label per policy**: :func:`policy_color` gives a preset the colour of
  its row in :data:`vmlab.model.policies.PRESET_ROWS` (Okabe-Ito, colour-blind safe) and any
  other name one from a second palette, Paul Tol's "muted", by a stable hash (so a name keeps
  its colour from chart to chart and run to run); :func:`policy_label` gives the text.
* **Times carry a unit** chosen by :func:`time_unit` (ns, µs, ms or s, whichever gives a
  typical value of at least 1), and the axis label names it.
* ``results`` arguments are a dict ``{policy name: Result}`` or a list of Results (named by
  their policy).
"""
from __future__ import annotations

import colorsys
import itertools
import zlib

import numpy as np
import pandas as pd

from .model import policies as _policies
from .trace.model import Op

#: Palette for policies without a colour of their own (user-built variants, or a preset row
#: given none): Paul Tol's "muted", disjoint from the presets' Okabe-Ito colours.
EXTRA_COLORS = ("#332288", "#88ccee", "#44aa99", "#117733", "#999933", "#ddcc77",
                "#cc6677", "#882255", "#aa4499")

#: Time categories of ``Result.threads`` in stacking order, with their label and colour.
#: Colours from Paul Tol's "light" scheme, so they are not mistaken for policy colours.
TIME_CATEGORIES = {
    "compute_ns": ("compute", "#dddddd"),
    "hit_ns": ("hit (mapped access)", "#aaaa00"),
    "fault_cpu_ns": ("fault CPU", "#77aadd"),
    "io_wait_ns": ("I/O wait", "#99ddff"),
    "lock_wait_ns": ("mmap_sem wait", "#ee8866"),
    "lock_hold_ns": ("mmap_sem held for write", "#eedd88"),
    "signal_ns": ("signal handling", "#44bb99"),
    "wasted_ns": ("wasted (retried CPU, aborted waits)", "#ffaabb"),
}

#: Colours of the lock timeline: held for read, held for write, waiting (hatched).
LOCK_COLORS = {"read": "#0072b2", "write": "#d55e00", "wait": "#dddddd"}

_UNITS = (("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1.0))


def policy_color(name):
    """The colour of policy ``name`` (or a Policy): its preset row's colour, else one from
    :func:`generated_color`."""
    row = _policies.preset_row(name)
    if row is not None and row.color:
        return row.color
    return generated_color(str(getattr(name, "name", name)))


def generated_color(name):
    """A colour for a policy that has none of its own, from its name alone.

    The same name gets the same colour in every process and run (crc32 of the name, not
    Python's seeded ``hash``), taken from :data:`EXTRA_COLORS` less any colour a preset row
    uses; should the presets take them all, a hue from the name, away from theirs.
    """
    taken = {row.color.lower() for row in _policies.PRESET_ROWS if row.color}
    palette = [c for c in EXTRA_COLORS if c not in taken]
    h = zlib.crc32(name.encode())
    if palette:
        return palette[h % len(palette)]
    for step in range(360):
        r, g, b = colorsys.hls_to_rgb(((h + 37 * step) % 360) / 360.0, 0.45, 0.6)
        c = "#{:02x}{:02x}{:02x}".format(*(round(255 * v) for v in (r, g, b)))
        if c not in taken:
            return c
    return "#777777"  # unreachable: 360 hues against a handful of presets


def policy_label(name):
    """The legend text of policy ``name``: a preset's name with what sets it apart."""
    name = getattr(name, "name", name)
    row = _policies.preset_row(name)
    return f"{name} ({row.note})" if row is not None and row.note else str(name)


def policy_legend(ax, policies, **kwargs):
    """Add a legend of coloured lines for ``policies`` (names) to ``ax``; returns it."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=policy_color(p), lw=2, label=policy_label(p)) for p in policies]
    kwargs.setdefault("title", "policy")
    return ax.legend(handles=handles, **kwargs)


def time_unit(ns):
    """``(unit, ns_per_unit)`` giving a readable number for ``ns`` (a scalar, or an array
    whose median positive finite value is used)."""
    v = np.asarray(ns, dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    typical = float(np.median(v)) if len(v) else 0.0
    for unit, scale in _UNITS:
        if typical >= scale:
            return unit, scale
    return "ns", 1.0


# -- shared helpers -----------------------------------------------------------------------

def _axes(ax, figsize=(9, 4.2)):
    """``ax``, or a new Axes; either way its figure gets a layout engine."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    _ensure_layout(ax.figure)
    return ax


def _ensure_layout(fig):
    """Give a user's figure (``plt.subplots()``) the constrained layout engine, so that a
    legend or colour bar beside the axes takes room from the figure's margins and is never
    cut off when saved; a figure that already has an engine keeps it."""
    root = fig
    while getattr(root, "figure", root) is not root:  # a SubFigure's figure is its parent
        root = root.figure
    try:
        if root.get_layout_engine() is None:
            root.set_layout_engine("constrained")
    except (RuntimeError, AttributeError):  # an engine that cannot be changed: leave it
        pass


def _below_offset_pt(ax):
    """How far below the axes (points) the x tick labels and the x label end."""
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties

    def size(key):
        return FontProperties(size=mpl.rcParams[key]).get_size_in_points()

    fs = size("xtick.labelsize")
    height = fs
    for t in ax.get_xticklabels():  # slanted labels reach further down
        rot = np.deg2rad(t.get_rotation() % 180)
        chars = max((len(line) for line in t.get_text().split("\n")), default=0)
        lines = t.get_text().count("\n") + 1
        fsize = t.get_fontsize()
        height = max(height, chars * 0.6 * fsize * abs(np.sin(rot)) + lines * 1.2 * fsize * abs(np.cos(rot)))
    ticks = height + mpl.rcParams["xtick.major.size"] + mpl.rcParams["xtick.major.pad"]
    label = size("axes.labelsize") * 1.2 + mpl.rcParams["axes.labelpad"]
    return ticks + (label if ax.get_xlabel() else 0) + 4


def _legend_below(ax, n_entries, max_chars):
    """Keyword arguments placing a legend under the x label, centred, in as many columns
    as fit: the data area keeps the axes' full width."""
    from matplotlib.transforms import offset_copy

    # columns that fit the figure's width ("small" text: about 5 pt a character, plus the
    # handle and the gap between columns)
    width_pt = ax.figure.get_figwidth() * 72 * min(0.95, ax.get_position().width * 1.15)
    ncols = int(max(1, min(n_entries, 4, width_pt // (max_chars * 5.2 + 45))))
    return dict(loc="upper center", ncols=ncols, frameon=False,
                bbox_to_anchor=(0.5, 0),
                bbox_transform=offset_copy(ax.transAxes, fig=ax.figure, y=-_below_offset_pt(ax),
                                           units="points"))


def _dress(ax, title, xlabel, ylabel, legend=None, legend_title=None, **legend_kw):
    """Title, axis labels and legend, the same way on every chart.

    ``legend``: None (no legend), True (from the artists' labels) or a list of handles.
    """
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend is not None:
        legend_kw.setdefault("fontsize", "small")
        legend_kw.setdefault("framealpha", 0.9)
        legend_kw["title"] = legend_title
        if legend is True:
            handles, labels = ax.get_legend_handles_labels()
        else:
            handles, labels = legend, [h.get_label() for h in legend]
        if "loc" not in legend_kw:  # below the axes: a legend never hides data or narrows it
            legend_kw.update(_legend_below(ax, len(labels), max(map(len, labels), default=0)))
        ax.legend(handles=handles, labels=labels, **legend_kw)
    return ax


def _plain_log(axis):
    """Label a log axis with plain numbers (10, 20, 50, 100), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.axes.autoscale_view()
    lo, hi = axis.get_view_interval()
    decades = np.log10(hi / lo) if lo > 0 else np.inf
    subs = (1,) if decades > 3 else (1, 2, 5) if decades > 1 else (1, 2, 3, 5, 7)
    axis.set_major_locator(LogLocator(10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _num(v)))
    axis.set_minor_formatter(NullFormatter())


def _overlap_style(drawn, name, x, y):
    """Line style and label of policy ``name``'s curve: a curve identical to one already drawn
    would hide it, so it is dashed and says which one it repeats.  Records it in ``drawn``."""
    x, y = np.asarray(x), np.asarray(y)
    same = [k for k, (xk, yk) in drawn.items()
            if xk.shape == x.shape and np.array_equal(xk, x) and np.array_equal(yk, y)]
    drawn[name] = (x, y)
    if same:
        return (0, (4, 3)), f"{policy_label(name)} (same as {same[0]})"
    return "-", policy_label(name)


def _num(v):
    """A number to read at a glance: 0.02, 3.5, 72.6, 1,000, 25,000, 1.2e+08."""
    a = abs(v)
    if a < 1000:  # small values keep their digits (0.0005, not 0)
        return f"{v:.3g}"
    if a < 1e7:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _fmt_ns(v):
    unit, scale = time_unit(v)
    return f"{_num(v / scale)} {unit}"


def _named(results):
    """``results`` as an ordered dict name -> Result."""
    if isinstance(results, dict):
        return dict(results)
    if hasattr(results, "policy_name"):
        return {results.policy_name: results}
    return {r.policy_name: r for r in results}


def _is_time(column):
    return column.endswith("_ns") or "_ns_" in column


def _pretty(column):
    """``fault_latency_ns_p99`` -> ``fault latency p99``."""
    return column.replace("_ns", "").replace("_", " ").strip()


# -- latency ------------------------------------------------------------------------------

def latency_cdf(results, metric="fault", ax=None, title=None, max_points=2000):
    """CDF of fault latency (completed faults) or signal latency (delivered signals), one
    line per policy, on a log time axis.

    A latency of 0 (a signal delivered at once) is drawn at 1 ns, the axis' floor.  Curves
    of more than ``max_points`` samples are drawn through that many quantiles (tails kept).
    """
    if metric not in ("fault", "signal"):
        raise ValueError(f"metric must be 'fault' or 'signal', got {metric!r}")
    ax = _axes(ax)
    data = {}
    hist = {}
    for name, r in _named(results).items():
        if not r.scenario.records:
            # no per-fault rows: the kernel's log-bucket histogram (within 1.6%)
            vals, counts = r.latency_histogram(metric)
            hist[name] = (np.maximum(vals, 1.0), counts)
            data[name] = np.maximum(vals, 1.0)
            continue
        if metric == "fault":
            f = r.faults
            v = f["latency_ns"][f["outcome"] == "done"].to_numpy()
        else:
            s = r.signals
            v = s["latency_ns"][s["delivery_ns"] >= 0].to_numpy()
        data[name] = np.sort(np.maximum(v, 1)).astype(float)
    unit, scale = time_unit(np.concatenate([v for v in data.values()] + [np.zeros(0)]))
    drawn = {}
    for name, v in data.items():
        n = len(v)
        if name in hist:
            vals, counts = hist[name]
            x, y = vals, np.cumsum(counts) / max(counts.sum(), 1)
            n = int(counts.sum())
        elif n > max_points:
            tail = 1 - np.logspace(-6, -1, 50)  # keep the p99.9... tail sharp
            p = np.unique(np.concatenate([np.linspace(0, 1, max_points), tail]))
            x, y = np.quantile(v, p, method="inverted_cdf"), p
        else:
            x, y = v, np.arange(1, n + 1) / max(n, 1)
        if len(x):
            # the CDF is 0 left of the smallest value: a curve whose values are all equal
            # (anon faults, a fixed cost) is then a visible step, not a single point
            x, y = np.concatenate([[x[0]], x]), np.concatenate([[0.0], y])
        ls, label = _overlap_style(drawn, name, x / scale, y)
        label += "" if n else f" (no {metric}s)"
        ax.plot(x / scale, y, drawstyle="steps-post", color=policy_color(name), lw=1.8, ls=ls,
                label=label, gid=name)
    ax.set_xscale("log")
    _plain_log(ax.xaxis)
    lo, hi = ax.xaxis.get_view_interval()
    if lo > 0 and hi / lo > 1e4:
        # many decades (1 ns to 100 ms): each tick says its own unit (1 ns, 10 µs, 100 ms)
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_ns(v * scale)))
        unit_text = "log scale"
    else:
        unit_text = f"{unit}, log scale"
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="major", alpha=0.3)
    what = {"fault": "completed faults", "signal": "delivered signals"}[metric]
    floor = ", 0 drawn at 1 ns" if any(len(v) and v[0] <= 1 for v in data.values()) else ""
    return _dress(ax, title or f"{metric.capitalize()} latency CDF ({what})",
                  f"{metric} latency ({unit_text}{floor})", f"fraction of {what} ≤ x",
                  legend=True, legend_title="policy")


def percentile_bars(summary, metrics=("fault_latency_ns_p50", "fault_latency_ns_p99"), ax=None,
                    title=None):
    """Grouped bars from a ``compare()`` DataFrame: a group per policy (in the policy's
    colour), a bar per metric (told apart by hatching), on a log y axis.

    NaN (no faults) and 0 cannot sit on a log axis: they are written at the group's foot.
    """
    from matplotlib.patches import Patch

    ax = _axes(ax)
    metrics = list(metrics)
    df = summary.reset_index(drop=True)
    names = list(df["policy"])
    vals = df[metrics].to_numpy(dtype=float)
    timed = all(_is_time(m) for m in metrics)
    unit, scale = time_unit(vals) if timed else ("", 1.0)
    hatches = ["", "///", "..", "xx", "\\\\", "oo"]
    width = 0.8 / len(metrics)
    pos = vals[np.isfinite(vals) & (vals > 0)] / scale
    floor = pos.min() / 3 if len(pos) else 1.0
    for j, m in enumerate(metrics):
        xs = np.arange(len(names)) - 0.4 + width * (j + 0.5)
        h = vals[:, j] / scale
        ok = np.isfinite(h) & (h > 0)
        ax.bar(xs, np.where(ok, h, np.nan), width * 0.92, color=[policy_color(p) for p in names],
               edgecolor="white", hatch=hatches[j % len(hatches)], gid=m)
        for x, v, good in zip(xs, h, ok):
            text = f"{v:.3g}" if good else ("n/a" if not np.isfinite(v) else "0")
            ax.annotate(text, (x, v if good else floor), ha="center", va="bottom",
                        fontsize="x-small", rotation=90, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_yscale("log")
    ax.margins(y=0.15)
    lo, hi = ax.get_ylim()
    top = np.nanmax(np.where(vals > 0, vals, np.nan)) / scale if np.isfinite(vals).any() and (vals > 0).any() else hi
    # keep the "0" and "n/a" labels at the foot in view, and room above the highest bar for
    # its value, written upward (a factor of 3 on the log axis)
    ax.set_ylim(min(lo, floor / 2), max(hi, top * 3))
    _plain_log(ax.yaxis)
    ax.set_xticks(np.arange(len(names)), names, rotation=20 if len(names) > 3 else 0,
                  ha="right" if len(names) > 3 else "center", fontsize="small")
    for tick, p in zip(ax.get_xticklabels(), names):
        tick.set_color(policy_color(p))
    handles = [Patch(facecolor="#999999", edgecolor="white", hatch=hatches[j % len(hatches)],
                     label=_pretty(m).split()[-1] if timed else _pretty(m))
               for j, m in enumerate(metrics)]
    stem = " ".join(_pretty(metrics[0]).split()[:-1]) if timed else "value"
    ylabel = f"{stem} ({unit}, log scale)" if timed else "value (log scale)"
    return _dress(ax, title or f"{stem.capitalize()} percentiles by policy", "policy", ylabel,
                  legend=handles, legend_title="bar (colour = policy)")


# -- time ---------------------------------------------------------------------------------

def time_breakdown(results, ax=None, title=None, per="policy"):
    """Stacked horizontal bars of where threads' time went (MODEL.md section 6); categories
    no thread spent time in are left out (bars and legend).

    ``per="policy"``: one bar per policy, each category summed over its threads.
    ``per="thread"``: one bar per thread of a single Result; a bar's length is the thread's
    ``end_ns`` (the categories split it with nothing lost or counted twice).
    """
    if per not in ("policy", "thread"):
        raise ValueError(f"per must be 'policy' or 'thread', got {per!r}")
    ax = _axes(ax)
    named = _named(results)
    cols = list(TIME_CATEGORIES)
    if per == "policy":
        rows = pd.DataFrame([named[n].threads[cols].sum() for n in named])
        labels = list(named)  # the names alone: the notes would take the bars' room
        ylabel, what = "policy", "thread time, summed over threads"
    else:
        if len(named) != 1:
            raise ValueError("per='thread' draws one Result; pass a Result (or a dict of one)")
        (name, r), = named.items()
        rows = r.threads[cols]
        labels = [f"tid {t}" for t in r.threads["tid"]]
        ylabel, what = "thread", f"thread time under {name}"
    unit, scale = time_unit(rows.sum(axis=1).max())
    y = np.arange(len(rows))[::-1]  # first row at the top
    left = np.zeros(len(rows))
    for c in cols:
        if not (rows[c].to_numpy(dtype=float) > 0).any():
            continue  # a category no thread spent time in has no bar and no legend entry
        w = rows[c].to_numpy(dtype=float) / scale
        lab, color = TIME_CATEGORIES[c]
        ax.barh(y, w, left=left, height=0.7, color=color, label=lab, gid=c)
        left += w
    ax.set_yticks(y, labels, fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for tick, name in zip(ax.get_yticklabels(), list(named) if per == "policy" else []):
        tick.set_color(policy_color(name))
    return _dress(ax, title or "Where the time goes", f"{what} ({unit})", ylabel,
                  legend=True, legend_title="time category")


def series_over_time(results, column="retries", ax=None, title=None):
    """Faults, retries or I/Os per time bin (``Result.series``), one line per policy."""
    ax = _axes(ax)
    named = _named(results)
    ends = [r.series.index[-1] + r.raw.bin_ns for r in named.values() if len(r.series)]
    unit, scale = time_unit(max(ends) if ends else 0)
    bin_ns = None
    drawn = {}
    for name, r in named.items():
        s = r.series
        if column not in s:
            raise ValueError(f"column must be one of {list(s.columns)}, got {column!r}")
        bin_ns = r.raw.bin_ns
        x = np.append(s.index.to_numpy(), s.index[-1] + bin_ns if len(s) else 0) / scale
        y = np.append(s[column].to_numpy(), s[column].iloc[-1] if len(s) else 0)
        ls, label = _overlap_style(drawn, name, x, y)
        ax.plot(x, y, drawstyle="steps-post", color=policy_color(name), lw=1.6, ls=ls,
                label=label, gid=name)
    bu, bs = time_unit(bin_ns or 0)
    per = f"{column} per {bin_ns / bs:g} {bu} bin" if bin_ns else column
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    return _dress(ax, title or f"{column.capitalize()} over time", f"simulated time ({unit})",
                  per, legend=True, legend_title="policy")


def thread_series(result, column="faults", bins=120, ax=None, title=None, max_threads=64):
    """Faults or retries of each thread over time: a row per thread, a column per time bin,
    coloured by the count (perf's per-thread view: the rows show who stalls and when).

    From ``result.faults`` (needs per-fault records): a fault counts in the bin of its first
    attempt; ``column="retries"`` weighs it by its retries.  The first ``max_threads``
    threads (by index) get rows.
    """
    from matplotlib.colors import LogNorm

    if column not in ("faults", "retries"):
        raise ValueError(f"column must be 'faults' or 'retries', got {column!r}")
    if not result.scenario.records:
        raise ValueError("thread_series needs per-fault records (a Scenario with records=True)")
    ax = _axes(ax, figsize=(9, 4.2))
    f = result.faults
    end = max(int(result.summary["elapsed_ns"]), 1)
    threads = np.sort(result.threads["thread"].to_numpy())[:max_threads]
    tid_of = dict(zip(result.threads["thread"], result.threads["tid"]))
    unit, scale = time_unit(end)
    weights = None if column == "faults" else f["retries"].to_numpy(dtype=float)
    sel = np.isin(f["thread"].to_numpy(), threads)
    row = np.searchsorted(threads, f["thread"].to_numpy()[sel])
    H, _, _ = np.histogram2d(f["start_ns"].to_numpy(dtype=float)[sel], row,
                             bins=(bins, len(threads)),
                             range=((0, end), (-0.5, len(threads) - 0.5)),
                             weights=None if weights is None else weights[sel])
    img = ax.imshow(np.ma.masked_equal(H.T, 0), origin="lower", aspect="auto", cmap="viridis",
                    norm=LogNorm(vmin=1, vmax=max(H.max(), 2)), interpolation="nearest",
                    extent=(0, end / scale, -0.5, len(threads) - 0.5))
    step = max(1, len(threads) // 16)
    ax.set_yticks(np.arange(0, len(threads), step),
                  [f"tid {tid_of.get(t, t)}" for t in threads[::step]], fontsize="small")
    bin_w = end / bins
    bu, bs = time_unit(bin_w)
    cb = ax.figure.colorbar(img, ax=ax)
    cb.set_label(f"{column} per {_num(bin_w / bs)} {bu} bin (log colour)")
    more = f", first {len(threads)} threads" if len(result.threads) > len(threads) else ""
    return _dress(ax, title or f"{column.capitalize()} of each thread over time under "
                               f"{result.policy_name}{more}",
                  f"simulated time ({unit})", "thread")


def fault_heatmap(result, column="retries", time_bins=120, addr_bins=100, ax=None, title=None,
                  evictions=True):
    """Where and when faults retry: an address x time heatmap of one run (DAMON's picture,
    for the fault path), from ``result.faults`` (needs per-fault records).

    Each fault counts at its first attempt's time and its page; ``column="retries"`` weighs
    it by its retries (under an ``fadvise`` adversary, the victims' refaults of pages
    evicted under them), ``"faults"`` counts faults.  The page axis is the run's distinct
    faulting pages in address order (gaps between mappings cut out), ticked at each VMA's
    first faulting page.  ``evictions``: the adversary's own evictions of those pages
    (``result.evictions``) are drawn over the cells as small marks, beside the refaults
    they cause.
    """
    from matplotlib.colors import LogNorm

    if column not in ("faults", "retries"):
        raise ValueError(f"column must be 'faults' or 'retries', got {column!r}")
    if not result.scenario.records:
        raise ValueError("fault_heatmap needs per-fault records (a Scenario with records=True)")
    ax = _axes(ax, figsize=(9, 4.5))
    f = result.faults
    end = max(int(result.summary["elapsed_ns"]), 1)
    key = (f["asid"].to_numpy().astype(np.uint64) << np.uint64(52)) | \
        f["vpn"].to_numpy().astype(np.uint64)
    pages, rank = np.unique(key, return_inverse=True)
    n_pages = max(len(pages), 1)
    w = None if column == "faults" else f["retries"].to_numpy(dtype=float)
    H, _, _ = np.histogram2d(f["start_ns"].to_numpy(dtype=float), rank,
                             bins=(time_bins, min(addr_bins, n_pages)),
                             range=((0, end), (-0.5, n_pages - 0.5)), weights=w)
    unit, scale = time_unit(end)
    img = ax.imshow(np.ma.masked_equal(H.T, 0), origin="lower", aspect="auto", cmap="magma_r",
                    norm=LogNorm(vmin=1, vmax=max(H.max(), 2)), interpolation="nearest",
                    extent=(0, end / scale, -0.5, n_pages - 0.5))
    n_marks = 0
    ev = result.evictions if evictions else None
    if ev is not None and len(ev):
        ev = ev[(ev["cause"] == "adversary") & (ev["vpn"] >= 0)]
        ekey = (ev["asid"].to_numpy().astype(np.uint64) << np.uint64(52)) | \
            ev["vpn"].to_numpy().astype(np.uint64)
        pos = np.minimum(np.searchsorted(pages, ekey), max(len(pages) - 1, 0))
        on_axis = (len(pages) > 0) & (pages[pos] == ekey) if len(pages) else \
            np.zeros(len(ekey), bool)
        if on_axis.any():
            n_marks = int(on_axis.sum())
            ax.scatter(ev["time_ns"].to_numpy()[on_axis] / scale, pos[on_axis], s=14,
                       marker="|", color="#1f77b4", linewidths=0.8, alpha=0.7,
                       label=f"adversary evictions ({n_marks:,})")
            ax.legend(loc="upper right", fontsize="x-small", framealpha=0.8)
            ax.set_xlim(0, end / scale)
            ax.set_ylim(-0.5, n_pages - 0.5)
    vma = f["vma_name"].astype(str).to_numpy()
    first = {}
    for r_, v in zip(rank.tolist(), vma):
        first[v] = min(first.get(v, r_), r_)
    ticks = sorted((r_, v) for v, r_ in first.items())[:12]
    ax.set_yticks([t for t, _ in ticks], [v for _, v in ticks], fontsize="x-small")
    cb = ax.figure.colorbar(img, ax=ax)
    cb.set_label(f"{column} per cell (log colour)")
    what = {"retries": "Retries (refaults)", "faults": "Faults"}[column]
    n_adv = int(result.summary.get("n_adversary_evictions") or 0)
    extra = f"\n({n_adv:,} pages evicted by the adversary in all)" if n_adv else ""
    return _dress(ax, title or f"{what} by page and time under {result.policy_name}{extra}",
                  f"simulated time of the first attempt ({unit})",
                  f"faulting page ({len(pages):,}, by address)")


def faults_per_vma(results, ax=None, title=None):
    """Faults per VMA: a group of horizontal bars per VMA, one bar per policy in its colour,
    the major faults solid and the minor ones hatched."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    ax = _axes(ax, figsize=(9, 4.2))
    named = _named(results)
    tables = {}
    for name, r in named.items():
        if not r.scenario.records:
            raise ValueError("faults_per_vma needs per-fault records (a Scenario with records=True)")
        f = r.faults
        g = f.groupby(f["vma_name"].astype(str), sort=False)["major"]
        tables[name] = pd.DataFrame({"major": g.sum(), "all": g.size()})
    vmas = list(dict.fromkeys(v for t in tables.values() for v in t.index))
    height = 0.8 / max(len(named), 1)
    for j, (name, t) in enumerate(tables.items()):
        t = t.reindex(vmas, fill_value=0)
        y = np.arange(len(vmas))[::-1] + 0.4 - height * (j + 0.5)
        color = policy_color(name)
        ax.barh(y, t["major"], height * 0.9, color=color, gid=f"{name}:major")
        ax.barh(y, t["all"] - t["major"], height * 0.9, left=t["major"], color="white",
                edgecolor=color, hatch="///", gid=f"{name}:minor")
    ax.set_yticks(np.arange(len(vmas))[::-1], vmas, fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _num(v)))
    handles = [Patch(color=policy_color(p), label=policy_label(p)) for p in named]
    handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="///",
                         label="minor faults (hatched; solid: major)"))
    return _dress(ax, title or "Faults per VMA", "faults", "VMA", legend=handles,
                  legend_title="policy")


# -- sweeps -------------------------------------------------------------------------------

def sweep_heatmap(df, x, y, value, ax=None, title=None, log=False, fmt=None):
    """Heatmap of ``value`` over two swept knobs ``x`` and ``y`` of a ``sweep()`` DataFrame.

    Axis values keep the sweep's order (y upward).  Each cell is annotated; empty cells are
    blank.  A time metric (``*_ns*``) is shown in a readable unit.  More than one row per
    (x, y) cell is an error: filter the other swept keys first.
    """
    from matplotlib.colors import LogNorm, Normalize

    ax = _axes(ax, figsize=(7, 5))
    if df.duplicated([x, y]).any():
        others = [c for c in df.columns if c not in (x, y)][:3]
        raise ValueError(f"several rows per ({x}, {y}) cell: select one value of the other "
                         f"swept keys first (e.g. df[df[{others[0]!r}] == ...])")
    xs, ys = pd.unique(df[x]), pd.unique(df[y])
    grid = (df.pivot(index=y, columns=x, values=value).reindex(index=ys, columns=xs)
            .to_numpy(dtype=float))
    timed = _is_time(value)
    unit, scale = time_unit(grid) if timed else ("", 1.0)
    z = grid / scale
    ok = np.isfinite(z) & ((z > 0) if log else True)
    lo, hi = (float(z[ok].min()), float(z[ok].max())) if ok.any() else (1.0, 10.0)
    if lo == hi:  # a uniform grid still needs a colour range
        lo, hi = (lo / 2, hi * 2) if log else (lo - 0.5, hi + 0.5)
    norm = (LogNorm if log else Normalize)(lo, hi)
    zm = np.ma.masked_invalid(np.where(ok, z, np.nan))
    mesh = ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5, zm,
                         cmap="viridis", norm=norm, edgecolors="white", linewidth=0.5)
    cmap = mesh.get_cmap()
    for (i, j), v in np.ndenumerate(z):
        if np.isfinite(v):
            r, g, b, _ = cmap(float(np.ma.filled(norm(v), 0.5))) if ok[i, j] else (1, 1, 1, 1)
            ax.text(j, i, fmt.format(v) if fmt else _num(v), ha="center", va="center",
                    fontsize="small",
                    color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
    xlabels = [_tick(v, x) for v in xs]
    ax.set_xticks(np.arange(len(xs)), xlabels)
    if sum(len(t) + 2 for t in xlabels) > 60:  # crowded: slant them rather than overlap
        ax.tick_params(axis="x", labelrotation=30)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    ax.set_yticks(np.arange(len(ys)), [_tick(v, y) for v in ys])
    name = _pretty(value) + (f" ({unit})" if timed else "") + (", log colour" if log else "")
    cb = ax.figure.colorbar(mesh, ax=ax)
    cb.set_label(name)
    if log:
        _plain_log(cb.ax.yaxis)
    return _dress(ax, title or f"{_pretty(value).capitalize()} over {x} × {y}", x, y)


def _tick(v, key):
    """A tick label for value ``v`` of column ``key``: in its unit and short (``1 MHz``,
    ``70 µs``, ``100 k``), so neighbouring labels do not run into each other."""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        if _is_time(key):
            return _fmt_ns(v) if v > 0 else "0"
        return short_value(key, v)
    return str(v)


def short_value(key, v):
    """:func:`vmlab.units.fmt_value` without the zeros that carry nothing (``1 MHz``)."""
    import re

    from .units import fmt_value

    return re.sub(r"\.0+(?=\D|$)|(\.\d*?[1-9])0+(?=\D|$)", r"\1", fmt_value(key, v))


def crossover_points(df, x, y, a, b):
    """The x values where policy ``a``'s curve of ``y`` against ``x`` crosses policy ``b``'s.

    Both curves are piecewise linear through their points (sorted by x); they are compared on
    the union of their x values within the common range, so the crossings are exact for
    piecewise-linear curves.  A point where the curves touch counts once.
    """
    def curve(p):
        d = df[df["policy"] == p].groupby(x, sort=True)[y].mean()
        return d.index.to_numpy(dtype=float), d.to_numpy(dtype=float)

    (xa, ya), (xb, yb) = curve(a), curve(b)
    if len(xa) == 0 or len(xb) == 0:
        return []
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    xs = np.union1d(xa, xb)
    xs = xs[(xs >= lo) & (xs <= hi)]
    d = np.interp(xs, xa, ya) - np.interp(xs, xb, yb)
    out = []
    for i in range(len(xs)):
        if d[i] == 0:
            out.append(float(xs[i]))
        elif i + 1 < len(xs) and d[i] * d[i + 1] < 0:
            out.append(float(xs[i] + (xs[i + 1] - xs[i]) * d[i] / (d[i] - d[i + 1])))
    return out


def crossover(df, x="touched_fraction", y="total_ns", ax=None, title=None):
    """Eager-versus-lazy cost: ``y`` against ``x`` per policy, with every crossing of two
    policies' curves marked and annotated with its x value."""
    ax = _axes(ax)
    names = list(pd.unique(df["policy"]))
    timed = _is_time(y)
    unit, scale = time_unit(df[y].max()) if timed else ("", 1.0)
    for p in names:
        d = df[df["policy"] == p].groupby(x, sort=True)[y].mean()
        ax.plot(d.index, d.to_numpy(dtype=float) / scale, marker="o", ms=3.5, lw=1.8,
                color=policy_color(p), label=policy_label(p), gid=p)
    points = []
    for a, b in itertools.combinations(names, 2):
        da = df[df["policy"] == a].groupby(x, sort=True)[y].mean()
        for xc in crossover_points(df, x, y, a, b):
            yc = np.interp(xc, da.index.to_numpy(dtype=float), da.to_numpy(dtype=float)) / scale
            points.append((xc, yc))
    for k, (xc, yc) in enumerate(sorted(points)):
        # hollow: visible on any line, the black remap_pfn_range one included
        ax.plot([xc], [yc], marker="D", ms=8, mfc="white", mec="black", mew=1.5, ls="none",
                zorder=5, gid="crossover", label=None if k else "crossover")
        # above and left of the point, where neither curve is (the lazy curve is below the
        # eager one before the crossing, above it after); staggered upward so close
        # crossings do not write over each other
        ax.annotate(f"{_num(xc)}", (xc, yc), xytext=(-8, 12 + 13 * (k % 4)), ha="right",
                    textcoords="offset points", fontsize="small", gid="crossover-label",
                    arrowprops=dict(arrowstyle="-", color="#888888", lw=0.6),
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ylabel = f"{_pretty(y)} ({unit})" if timed else _pretty(y)
    xlabel = ("fraction of the mapping's pages touched" if x == "touched_fraction"
              else _pretty(x))
    return _dress(ax, title or f"Eager versus lazy: {_pretty(y)} against {_pretty(x)}",
                  xlabel, ylabel, legend=True, legend_title="policy (◇ = crossover, at x)")


# -- mmap_sem -----------------------------------------------------------------------------

def lock_timeline(result, t0_ns=None, t1_ns=None, ax=None, title=None, max_threads=16,
                  max_spans=20_000):
    """``mmap_sem`` over time from ``result.locks``: a row per thread; each request is a
    thin hatched grey span while it waits, then a full-height span while held, coloured by
    mode (:data:`LOCK_COLORS`).

    Without ``t1_ns`` the window ends where the first ``max_spans`` requests after ``t0_ns``
    are all drawn (the whole run when it has fewer).  A request still waiting or holding at
    the end of the run is drawn up to the run's end.  The first ``max_threads`` threads
    (by index) with requests in the window get rows.
    """
    from matplotlib.patches import Patch

    ax = _axes(ax, figsize=(8, 4.5))
    lk = result.locks
    times = lk[["request_ns", "acquire_ns", "release_ns"]].to_numpy()
    end = max(int(result.summary["elapsed_ns"]), int(times.max()) if len(lk) else 0)
    acq = np.where(lk["acquire_ns"] >= 0, lk["acquire_ns"], end)
    rel = np.where(lk["release_ns"] >= 0, lk["release_ns"], end)
    req = lk["request_ns"].to_numpy()
    t0 = int(t0_ns) if t0_ns is not None else 0
    if t1_ns is None:
        after = np.flatnonzero(req >= t0)
        t1 = int(req[after[max_spans]]) if len(after) > max_spans else end
    else:
        t1 = int(t1_ns)
    sel = (rel >= t0) & (req <= t1)
    threads = np.unique(lk["thread"].to_numpy()[sel])
    shown = threads[:max_threads]
    unit, scale = time_unit(max(t1 - t0, 1) / 10)
    tid_of = dict(zip(result.threads["thread"], result.threads["tid"]))
    mode = lk["mode"].to_numpy()
    thr = lk["thread"].to_numpy()
    for row, t in enumerate(shown):
        y = len(shown) - 1 - row
        m = sel & (thr == t)
        a, b, c = np.clip(req[m], t0, t1), np.clip(acq[m], t0, t1), np.clip(rel[m], t0, t1)
        w = b > a
        if w.any():
            ax.broken_barh(list(zip(a[w] / scale, (b - a)[w] / scale)), (y - 0.2, 0.4),
                           facecolors=LOCK_COLORS["wait"], edgecolors="#888888", hatch="////",
                           linewidth=0.3, gid=f"wait:{t}")
        for md in ("read", "write"):
            h = mode[m] == md
            if h.any():
                ax.broken_barh(list(zip(b[h] / scale, np.maximum(c - b, 0)[h] / scale)),
                               (y - 0.4, 0.8), facecolors=LOCK_COLORS[md], linewidth=0,
                               gid=f"{md}:{t}")
    ax.set_yticks(np.arange(len(shown))[::-1], [f"tid {tid_of.get(t, t)}" for t in shown],
                  fontsize="small")
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.set_xlim(t0 / scale, t1 / scale)
    handles = [Patch(facecolor=LOCK_COLORS["read"], label="held for read (fault)"),
               Patch(facecolor=LOCK_COLORS["write"], label="held for write (mmap/munmap, remap)"),
               Patch(facecolor=LOCK_COLORS["wait"], edgecolor="#888888", hatch="////",
                     label="waiting for mmap_sem")]
    more = f", {len(shown)} of {len(threads)} threads" if len(threads) > len(shown) else ""
    return _dress(ax, title or f"mmap_sem timeline under {result.policy_name}{more}",
                  f"simulated time ({unit})", "thread", legend=handles)


def lock_waits(results, t0_ns=None, t1_ns=None, ax=None, title=None, max_threads=16,
               min_width=0.002):
    """Who waits for ``mmap_lock``, and when, under each policy: a band per thread, inside it
    a line per policy in the policy's colour, with a span from each request to its grant.

    From ``result.locks`` (every request that waited: faults, their fallbacks and retries,
    writers; a request never granted waits up to the end of the run).  The window is
    ``[t0_ns, t1_ns]`` (default: the whole of the longest run).  A wait shorter than
    ``min_width`` of the window is drawn that wide, so that a microsecond wait beside
    millisecond ones still shows as a tick.  The first ``max_threads`` threads (by index)
    that wait under any policy get bands.
    """
    from matplotlib.lines import Line2D

    res = _named(results)
    ax = _axes(ax, figsize=(9, 4.8))
    ends = [max(int(r.summary["elapsed_ns"]), 1) for r in res.values()]
    t0 = int(t0_ns) if t0_ns is not None else 0
    t1 = int(t1_ns) if t1_ns is not None else max(ends, default=1)
    spans, waiting = {}, set()
    for (name, r), end in zip(res.items(), ends):
        lk = r.locks
        acq = np.where(lk["acquire_ns"].to_numpy() >= 0, lk["acquire_ns"].to_numpy(), end)
        req = lk["request_ns"].to_numpy()
        if "lock" in lk.columns:  # VMA locks and speculative attempts never wait (15.3)
            keep = (lk["lock"] == "mmap").to_numpy()
        else:
            keep = np.ones(len(lk), bool)
        keep &= (acq > req) & (acq >= t0) & (req <= t1)
        tid_of = dict(zip(r.threads["thread"], r.threads["tid"]))
        tids = np.array([tid_of.get(t, t) for t in lk["thread"].to_numpy()[keep]], dtype=np.int64)
        spans[name] = (tids, np.clip(req[keep], t0, t1), np.clip(acq[keep], t0, t1))
        waiting.update(tids.tolist())
    shown = sorted(waiting)[:max_threads]
    unit, scale = time_unit(max(t1 - t0, 1) / 10)
    k = max(len(res), 1)
    floor = (t1 - t0) * min_width
    for row, tid in enumerate(shown):
        base = len(shown) - 1 - row
        for j, name in enumerate(res):
            tids, a, b = spans[name]
            m = tids == tid
            if not m.any():
                continue
            y = base + 0.4 - 0.8 * (j + 0.5) / k  # the first policy on top, as in the legend
            w = np.maximum(b[m] - a[m], floor)
            ax.broken_barh(list(zip(a[m] / scale, w / scale)), (y - 0.35 / k, 0.7 / k),
                           facecolors=policy_color(name), linewidth=0, gid=f"{name}:{tid}")
    for row in range(1, len(shown)):
        ax.axhline(row - 0.5, color="#cccccc", lw=0.5)
    ax.set_yticks(np.arange(len(shown))[::-1], [f"tid {t}" for t in shown], fontsize="small")
    ax.set_ylim(-0.6, max(len(shown), 1) - 0.4)
    ax.set_xlim(t0 / scale, t1 / scale)
    handles = [Line2D([], [], color=policy_color(n), lw=6, label=policy_label(n)) for n in res]
    more = f" (first {len(shown)} of {len(waiting)} waiting threads)" \
        if len(waiting) > len(shown) else ""
    return _dress(ax, title or f"Waits for mmap_lock, per thread and policy{more}",
                  f"simulated time ({unit})", "thread (one line per policy)", legend=handles,
                  legend_title="policy")


# -- traces -------------------------------------------------------------------------------

def access_heatmap(trace, time_bins=200, addr_bins=200, ax=None, title=None, coverage=0.99,
                   max_ranges=8, gap_pages=256, chunk_records=1 << 20):
    """Where a trace's accesses fall over time: counts of records per (time, address) cell,
    log-coloured, the picture DAMON's tools draw.

    Time is the record index, or, when the trace has a ``gap_ns`` column, each record's
    thread clock (the cumulative ``gap_ns`` of that thread's records so far: the time the
    thread would have spent if memory were free).

    The address axis is *compressed*: a sparse 64-bit address space is cut into the ranges
    the trace touches (:func:`vmlab.trace.vmas.infer_vmas` with ``gap_pages``), the empty
    space between them is dropped, and the ranges are stacked (white lines between them,
    ticks at their start addresses).  Only the busiest ranges holding ``coverage`` of the
    accesses are kept (at most ``max_ranges``); each gets axis space in proportion to its
    pages, but at least a few bins so a small stack stays visible.  ``LOCK_W`` records are
    not accesses and are left out.  Records are read ``chunk_records`` at a time
    (``np.histogram2d`` per chunk), so 10^7-record and memory-mapped traces work.
    """
    from matplotlib.colors import LogNorm

    from .trace.vmas import infer_vmas

    ax = _axes(ax, figsize=(8, 5))
    n = len(trace)
    shift = np.uint64(int(trace.page_size).bit_length() - 1)
    ranges = [v for v in infer_vmas(trace, gap_pages=gap_pages, label=False)]
    starts = np.array([v.start >> int(shift) for v in ranges], np.uint64)
    has_gap = trace.has_gap

    def chunks():
        for lo in range(0, n, chunk_records):
            hi = min(n, lo + chunk_records)
            acc = np.asarray(trace.op[lo:hi]) < Op.LOCK_W   # lock records: no access
            page = np.asarray(trace.addr[lo:hi]) >> shift
            # ranges of different address spaces never share a page key: asid first
            asid = np.asarray(trace.asid[lo:hi])
            yield lo, hi, acc, page, asid

    def range_of(page, asid):
        out = np.full(len(page), -1, np.int64)
        for a in np.unique(asid):
            idx = [i for i, v in enumerate(ranges) if v.asid == a]
            if not idx:
                continue
            m = asid == a
            st = starts[idx]
            k = np.searchsorted(st, page[m], side="right") - 1
            out[m] = np.asarray(idx)[np.clip(k, 0, None)]
        return out

    # pass 1: records per range, and each thread's total gap (the time axis' extent)
    counts = np.zeros(len(ranges), np.int64)
    totals = {}
    for lo, hi, acc, page, asid in chunks():
        counts += np.bincount(range_of(page[acc], asid[acc]), minlength=len(ranges))
        if has_gap:
            u, inv = np.unique(np.asarray(trace.tid[lo:hi]), return_inverse=True)
            s = np.bincount(inv, weights=np.asarray(trace.gap_ns[lo:hi], dtype=float))
            for t, v in zip(u.tolist(), s):
                totals[t] = totals.get(t, 0.0) + v
    total = counts.sum()
    order = np.argsort(-counts, kind="stable")
    keep = order[: max(1, min(max_ranges, int(np.searchsorted(np.cumsum(counts[order]),
                                                              coverage * total)) + 1))]
    keep = np.sort(keep[counts[keep] > 0]) if total else np.zeros(0, np.int64)
    # axis layout: range i spans [y0[i], y0[i] + h[i]) bins
    npages = np.array([(ranges[i].end - ranges[i].start) >> int(shift) for i in keep], float)
    minbins = max(1.0, addr_bins / 40)
    h = np.maximum(npages / max(npages.sum(), 1) * addr_bins, minbins) if len(keep) else np.zeros(0)
    h *= addr_bins / max(h.sum(), 1e-9)
    y0 = np.concatenate([[0.0], np.cumsum(h)[:-1]])
    slot = np.full(len(ranges), -1)
    slot[keep] = np.arange(len(keep))
    tmax = max(totals.values()) if has_gap and totals else float(n)
    tmax = max(tmax, 1.0)
    H = np.zeros((time_bins, addr_bins))
    carry = {}
    for lo, hi, acc, page, asid in chunks():
        if has_gap:
            tid = np.asarray(trace.tid[lo:hi])
            u, inv = np.unique(tid, return_inverse=True)
            g = np.asarray(trace.gap_ns[lo:hi], dtype=float)
            o = np.argsort(inv, kind="stable")
            cs = np.cumsum(g[o])
            first = np.searchsorted(inv[o], np.arange(len(u)))
            before = np.concatenate([[0.0], cs])[first]  # cumsum before each thread's first
            base = np.array([carry.get(t, 0.0) for t in u.tolist()]) - before
            t = np.empty(len(g))
            t[o] = cs + base[inv[o]]
            for tv, sv in zip(u.tolist(), np.bincount(inv, weights=g)):
                carry[tv] = carry.get(tv, 0.0) + sv
        else:
            t = np.arange(lo, hi, dtype=float)
        s = slot[np.where(acc, range_of(page, asid), -1)] if len(ranges) else np.full(hi - lo, -1)
        m = s >= 0
        if not m.any():
            continue
        sm = s[m]
        frac = ((page[m] - starts[keep][sm]).astype(float) + 0.5) / npages[sm]
        yv = y0[sm] + frac * h[sm]
        H += np.histogram2d(t[m], yv, bins=(time_bins, addr_bins),
                            range=((0, tmax), (0, addr_bins)))[0]
    unit, scale = time_unit(tmax) if has_gap else ("", 1.0)
    img = ax.imshow(np.ma.masked_equal(H.T, 0), origin="lower", aspect="auto",
                    extent=(0, tmax / scale, 0, addr_bins), cmap="magma_r",
                    norm=LogNorm(vmin=1, vmax=max(H.max(), 2)), interpolation="nearest")
    for b in y0[1:]:
        ax.axhline(b, color="#4477aa", lw=0.8)
    ax.set_yticks(y0, [f"{ranges[i].start:#x} ({_bytes(ranges[i].end - ranges[i].start)}"
                       + (f", as {ranges[i].asid})" if ranges[i].asid else ")") for i in keep],
                  fontsize="x-small")
    cb = ax.figure.colorbar(img, ax=ax)
    cb.set_label("records per cell (log colour)")
    shown = int(counts[keep].sum())
    xlabel = (f"thread time, cumulative gap_ns ({unit})" if has_gap else "record index")
    ylabel = f"address ({len(keep)} of {len(ranges)} touched ranges, gaps cut out)"
    return _dress(ax, title or f"Access heatmap ({shown / max(total, 1):.1%} of "
                               f"{total:,} accesses shown)", xlabel, ylabel)


def _bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


#: Colours of the replacement algorithms in memory curves (Okabe-Ito; a new algorithm gets
#: a generated colour).
REPLACEMENT_COLORS = {"lru": "#0072b2", "fifo": "#e69f00", "clock": "#009e73"}


def memory_curve(df, by="replacement", exact=None, ax=None, title=None):
    """Fault ratio against page-cache size from a memory sweep or :func:`vmlab.fault_curve`.

    ``df`` has ``memory_pages``, ``n_faults`` and ``n_accesses`` (and ``by``, one line each,
    when present).  A sampled sweep's 95% interval of the fault count
    (``n_faults_ci_low``/``_high``) is drawn as a band around its line.  ``exact``: the
    same sweep replayed exactly, drawn dashed with markers for comparison.
    """
    ax = _axes(ax)
    groups = list(df.groupby(by, sort=False)) if by in df.columns else [(None, df)]
    handles = []
    from matplotlib.lines import Line2D

    for name, g in groups:
        g = g.sort_values("memory_pages")
        color = REPLACEMENT_COLORS.get(name) or generated_color(str(name))
        ratio = g["n_faults"] / g["n_accesses"]
        ax.plot(g["memory_pages"], ratio, color=color, lw=2)
        if "n_faults_ci_low" in g.columns and (g.get("sample_rate", 1.0) < 1).any():
            ax.fill_between(g["memory_pages"], g["n_faults_ci_low"] / g["n_accesses"],
                            g["n_faults_ci_high"] / g["n_accesses"], color=color, alpha=0.2,
                            lw=0)
        label = ("sampled replay" if (g.get("sample_rate", 1.0) < 1).any() else "replay") \
            if name is None else str(name)
        if exact is not None:
            e = exact[exact[by] == name] if name is not None else exact
            e = e.sort_values("memory_pages")
            ax.plot(e["memory_pages"], e["n_faults"] / e["n_accesses"], color=color, lw=1,
                    ls="--", marker="o", ms=3)
        handles.append(Line2D([], [], color=color, lw=2, label=label))
    rate = df["sample_rate"].iloc[0] if "sample_rate" in df.columns else 1.0
    if exact is not None:
        handles.append(Line2D([], [], color="#555555", lw=1, ls="--", marker="o", ms=3,
                              label="exact replay"))
    if rate < 1:
        handles.append(Line2D([], [], color="#555555", lw=6, alpha=0.2,
                              label="95% interval (page sampling)"))
    ax.set_ylim(0, None)
    ax.set_xlim(0, None)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # no "1e6" offset
    sampled = f", pages sampled at R = {rate:g}" if rate < 1 else ""
    return _dress(ax, title or f"Fault ratio against page-cache size{sampled}",
                  "page cache (pages)", "faults per access", legend=handles,
                  legend_title=by if by in df.columns else None)


#: Colours of notebook 08's two sides: vmlab's prediction and the running kernel's measure.
AGREEMENT_COLORS = {"predicted": "#0072b2", "measured": "#d55e00"}


def kernel_agreement(table, ax=None, title=None):
    """Predicted against measured page faults per program (a
    :func:`vmlab.studies.kernel_agreement.agreement_table`): paired bars, the measured runs'
    min-max as a whisker, the ratio above each pair, a log scale (programs differ 10x)."""
    ax = _axes(ax)
    x = np.arange(len(table))
    w = 0.38
    c = AGREEMENT_COLORS
    ax.bar(x - w / 2, table["predicted"], w, color=c["predicted"],
           label="predicted (vmlab, from the lackey recording)")
    ax.bar(x + w / 2, table["measured"], w, color=c["measured"],
           label="measured (perf stat, median of the runs)")
    ax.errorbar(x + w / 2, table["measured"],
                yerr=[table["measured"] - table["measured_min"],
                      table["measured_max"] - table["measured"]],
                fmt="none", ecolor="black", capsize=3, lw=1)
    for xi, (p, m, r) in enumerate(zip(table["predicted"], table["measured"], table["ratio"])):
        ax.annotate(f"{r:.2f}", (xi, max(p, m)), textcoords="offset points", xytext=(0, 4),
                    ha="center", fontsize="small")
    ax.set_xticks(x, table["program"])
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 1.6)   # room for the ratios
    return _dress(ax, title or "Page faults with unlimited memory: vmlab against the kernel "
                  "(predicted / measured above)", "program", "page faults per run (log)",
                  legend=True, loc="upper left")


def limit_sweep(table, ax=None, title=None):
    """Major faults against the memory limit (a
    :func:`vmlab.studies.kernel_agreement.limit_table`): the kernel's median with its runs'
    range, vmlab's prediction, the limits where the kernel OOM-killed the run (x: some runs,
    X: all) and where the prediction ended in an OOM (open circle)."""
    ax = _axes(ax, figsize=(6.5, 4.2))
    t = table.sort_values("limit_mb")
    c = AGREEMENT_COLORS
    ax.fill_between(t["limit_mb"], t["measured_min"], t["measured_max"], color=c["measured"],
                    alpha=0.2, lw=0, label="measured: range of the runs")
    ax.plot(t["limit_mb"], t["measured_major"], color=c["measured"], marker="o",
            label="measured: median")
    ax.plot(t["limit_mb"], t["predicted_major"], color=c["predicted"], marker="s",
            label="predicted")
    some = t[(t["oom_kills"] > 0) & (t["oom_kills"] < t["runs"])]
    every = t[t["oom_kills"] >= t["runs"]]
    ax.scatter(some["limit_mb"], some["measured_major"], marker="x", s=70, color="black",
               zorder=3, label="kernel OOM-killed some runs")
    ax.scatter(every["limit_mb"], every["measured_major"], marker="X", s=90, color="black",
               zorder=3, label="kernel OOM-killed every run")
    po = t[t["predicted_oom"]]
    ax.scatter(po["limit_mb"], po["predicted_major"], marker="o", s=110, facecolors="none",
               edgecolors=c["predicted"], lw=1.5, zorder=3, label="predicted OOM")
    top = max(t["measured_max"].max(), t["predicted_major"].max()) if len(t) else 0
    low = max(min(t["measured_major"].min(), t["predicted_major"].min()), 1) if len(t) else 1
    if top > 30 * low:
        # one thrashing run (thousands) would flatten the few faults of every other limit
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(0, top * 2)
        ylabel = "major faults per run (log above 1)"
    else:
        ax.set_ylim(0, None)
        ylabel = "major faults per run"
    prog = t["program"].iloc[0] if len(t) else ""
    return _dress(ax, title or f"{prog}: major faults against the cgroup memory limit",
                  "memory limit (MB)", ylabel, legend=True)
