"""Charts: what each one draws (lines, colours, units, scales, cells, spans), from small real
simulations."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import LogNorm, to_hex  # noqa: E402

import vmlab  # noqa: E402
from vmlab import plots  # noqa: E402
from vmlab.model import POLICY_ORDER  # noqa: E402
from vmlab.trace import Trace, synth  # noqa: E402

POLICIES = ("nopage", "nopage_refault", "fault_retry")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def scenario():
    tr = synth.shared_file(2, 1000, 300, pattern="zipf", gap_ns=1000, seed=1)
    return vmlab.Scenario(tr, memory_pages=100, signals=(vmlab.poisson_signals(5000.0),),
                          horizon_ns=10**9)


@pytest.fixture(scope="module")
def results(scenario):
    return {p: vmlab.simulate(scenario, p) for p in POLICIES}


@pytest.fixture(scope="module")
def lock_result():
    """Lespinasse's workload, tiny: thread 0 reads a file, thread 1 loops mmap/munmap."""
    tr = synth.random_reads_with_mmap_loop(n_reads=10, pages=4096, n_lock_ops=400, seed=1)
    return vmlab.simulate(vmlab.Scenario(tr), "nopage")


def hex_of(c):
    return to_hex(c, keep_alpha=False)


def policy_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_gid() in set(POLICY_ORDER) | {"custom"}]


def check_legend_colours(ax):
    """Every legend entry names a policy and its line has that policy's colour."""
    by_label = {plots.policy_label(p): p for p in POLICY_ORDER}
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    for t in texts:
        if t in by_label:
            assert hex_of(lines[t].get_color()) == plots.policy_color(by_label[t])
    return texts


# -- colours, labels, units ---------------------------------------------------------------

def test_policy_colours_come_from_the_preset_rows_and_are_distinct():
    from vmlab.model.policies import PRESET_ROWS

    colours = [row.color for row in PRESET_ROWS]
    assert all(c is not None and hex_of(c) == c for c in colours)
    assert len(set(colours)) == len(PRESET_ROWS)
    assert not set(colours) & set(plots.EXTRA_COLORS)
    for row in PRESET_ROWS:
        p = row.policy.name
        assert plots.policy_color(p) == row.color
        assert plots.policy_label(p) == f"{p} ({row.note})"
    assert plots.policy_color(vmlab.PRESETS["nopfn"]) == plots.policy_color("nopfn")


def test_custom_policy_colour_is_stable_and_off_the_preset_palette():
    from vmlab.model.policies import PRESET_ROWS

    name = "fault_retry(max_retries=3)"
    c = plots.policy_color(name)
    assert c == plots.policy_color(name) and c in plots.EXTRA_COLORS
    assert c not in {row.color for row in PRESET_ROWS}
    assert plots.policy_label(name) == name
    # the colour comes from the name only (crc32), not from Python's per-process hash seed
    import zlib
    assert c == plots.EXTRA_COLORS[zlib.crc32(name.encode()) % len(plots.EXTRA_COLORS)]
    variant = vmlab.get_policy("fault_retry").replace(name="retry3", max_retries=3)
    assert plots.policy_color(variant) == plots.policy_color("retry3") in plots.EXTRA_COLORS


def _run_python(code, hash_seed):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), MPLBACKEND="Agg",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_a_new_preset_without_a_colour_does_not_break_plots():
    """A preset row added without a colour (the import-time assert of old made this an import
    error): plots import, the new preset gets a generated colour of its own, the same in every
    process, and its note in the legend."""
    code = """
import vmlab.model.policies as P
row = P.Preset(P.Policy("retry2", drop_lock_attempts=1, max_retries=2), "two retries")
P.PRESET_ROWS = P.PRESET_ROWS + (row,)
P.PRESETS[row.policy.name] = row.policy
import vmlab.plots as plots
print(plots.policy_color("retry2"), plots.policy_color("nopage"), plots.policy_label("retry2").replace(" ", "_"))
"""
    first = _run_python(code, 1)
    assert first == _run_python(code, 2)
    colour, nopage, label = first
    assert colour in plots.EXTRA_COLORS and colour == plots.generated_color("retry2")
    assert nopage == plots.policy_color("nopage")
    assert label == "retry2_(two_retries)"


def test_generated_colours_avoid_presets_that_took_the_whole_palette(monkeypatch):
    from vmlab.model import policies

    taken = tuple(policies.Preset(policies.Policy(f"p{i}"), "", c)
                  for i, c in enumerate(plots.EXTRA_COLORS))
    monkeypatch.setattr(policies, "PRESET_ROWS", policies.PRESET_ROWS + taken)
    c = plots.policy_color("retry3")
    assert c == plots.policy_color("retry3") and hex_of(c) == c
    assert c not in {row.color for row in policies.PRESET_ROWS}


@pytest.mark.parametrize("ns, unit", [(0, "ns"), (999, "ns"), (1_000, "µs"), (72_000, "µs"),
                                      (3e6, "ms"), (2.5e9, "s"), ([1, 50_000, 60_000], "µs")])
def test_time_unit_picks_a_readable_unit(ns, unit):
    assert plots.time_unit(ns)[0] == unit


# -- latency ------------------------------------------------------------------------------

def test_latency_cdf_one_line_per_policy_in_its_colour(results):
    ax = plots.latency_cdf(results)
    lines = policy_lines(ax)
    assert [ln.get_gid() for ln in lines] == list(POLICIES)
    texts = check_legend_colours(ax)
    assert texts == [plots.policy_label(p) for p in POLICIES]
    assert ax.get_xscale() == "log"
    assert "(µs" in ax.get_xlabel() and ax.get_title()
    for ln in lines:  # a CDF: non-decreasing, ends at 1
        y = ln.get_ydata()
        assert np.all(np.diff(y) >= 0) and y[-1] == pytest.approx(1.0)
    # the x values are the completed faults' latencies, sorted, in µs
    f = results["nopage"].faults
    lat = np.sort(f.latency_ns[f.outcome == "done"].to_numpy()) / 1e3
    np.testing.assert_allclose(lines[0].get_xdata()[1:], lat)  # after the 0 at the first value


def test_latency_cdf_signals_from_a_list(results):
    ax = plots.latency_cdf(list(results.values()), metric="signal", title="signals")
    assert ax.get_title() == "signals"
    assert len(policy_lines(ax)) == len(POLICIES)
    # nopage_refault aborts its waits: most signals are delivered at once
    med = {ln.get_gid(): np.interp(0.5, ln.get_ydata(), ln.get_xdata()) for ln in policy_lines(ax)}
    assert med["nopage_refault"] < med["nopage"] / 10
    with pytest.raises(ValueError, match="metric"):
        plots.latency_cdf(results, metric="lock")


def test_latency_cdf_downsamples_long_curves(results):
    ax = plots.latency_cdf(results, max_points=50)
    for ln in policy_lines(ax):
        assert len(ln.get_xdata()) < 120 and ln.get_ydata()[-1] == 1.0


def test_percentile_bars_groups_colours_and_log_axis(results):
    summary = pd.DataFrame([r.summary for r in results.values()])
    metrics = ("fault_latency_ns_p50", "fault_latency_ns_p99")
    ax = plots.percentile_bars(summary, metrics)
    assert ax.get_yscale() == "log" and "(µs" in ax.get_ylabel() and ax.get_title()
    assert len(ax.containers) == len(metrics)
    for cont, m in zip(ax.containers, metrics):
        assert len(cont.patches) == len(POLICIES)
        for bar, p, v in zip(cont.patches, summary.policy, summary[m]):
            assert hex_of(bar.get_facecolor()) == plots.policy_color(p)
            assert bar.get_height() == pytest.approx(v / 1e3)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["p50", "p99"]


# -- time ---------------------------------------------------------------------------------

def test_time_breakdown_per_thread_segments_sum_to_end(results):
    r = results["fault_retry"]
    ax = plots.time_breakdown(r, per="thread")
    th = r.threads
    unit, scale = plots.time_unit(th.end_ns.max())
    assert f"({unit})" in ax.get_xlabel() and ax.get_title()
    present = {c: v for c, v in plots.TIME_CATEGORIES.items() if (th[c] > 0).any()}
    assert len(ax.containers) == len(present)  # categories nobody spent time in are left out
    widths = np.array([[p.get_width() for p in c.patches] for c in ax.containers])
    np.testing.assert_allclose(widths.sum(axis=0) * scale, th.end_ns.to_numpy())
    for c, (col, (label, color)) in zip(ax.containers, present.items()):
        assert hex_of(c.patches[0].get_facecolor()) == color.lower()
        np.testing.assert_allclose([p.get_width() * scale for p in c.patches], th[col])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == \
        [lab for lab, _ in present.values()]


def test_time_breakdown_per_policy_sums_threads(results):
    ax = plots.time_breakdown(results)
    totals = [results[p].threads.end_ns.sum() for p in POLICIES]
    unit, scale = plots.time_unit(max(totals))
    widths = np.array([[p.get_width() for p in c.patches] for c in ax.containers]).sum(axis=0)
    np.testing.assert_allclose(widths * scale, totals)
    top_down = sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda yt: -yt[0])
    assert [t.get_text() for _, t in top_down] == list(POLICIES)
    with pytest.raises(ValueError, match="one Result"):
        plots.time_breakdown(results, per="thread")


def test_series_over_time_lines_and_values(results):
    ax = plots.series_over_time(results, "faults")
    lines = policy_lines(ax)
    assert len(lines) == len(POLICIES)
    check_legend_colours(ax)
    s = results["nopage"].series
    np.testing.assert_array_equal(lines[0].get_ydata()[:-1], s["faults"].to_numpy())
    assert "per 1 ms bin" in ax.get_ylabel() and "(ms)" in ax.get_xlabel()
    with pytest.raises(ValueError, match="column"):
        plots.series_over_time(results, "nope")


# -- sweeps -------------------------------------------------------------------------------

def test_sweep_heatmap_cells_labels_and_colour_bar(scenario):
    grid = {"memory_pages": [40, 100, 300], "io_ns": [10_000, 1_000_000]}
    df = vmlab.sweep(scenario.replace(signals=()), grid, n_jobs=1)
    ax = plots.sweep_heatmap(df, "memory_pages", "io_ns", "fault_latency_ns_p99", log=True)
    mesh = ax.collections[0]
    assert mesh.get_array().size == 3 * 2
    assert isinstance(mesh.norm, LogNorm)
    assert len(ax.texts) == 6
    cbar_label = mesh.colorbar.ax.get_ylabel()
    assert "fault latency p99" in cbar_label and "(µs)" in cbar_label
    assert [t.get_text() for t in ax.get_yticklabels()] == ["10 µs", "1 ms"]
    assert ax.get_xlabel() == "memory_pages" and ax.get_title()
    # y upward in sweep order: slower disks on the upper row
    z = np.asarray(mesh.get_array()).reshape(2, 3)
    assert (z[1] > z[0]).all()
    with pytest.raises(ValueError, match="several rows"):
        plots.sweep_heatmap(pd.concat([df, df]), "memory_pages", "io_ns", "n_faults")


# -- crossover ----------------------------------------------------------------------------

def lines_df(xs, ya, yb, xb=None):
    xb = xs if xb is None else xb
    return pd.DataFrame({"policy": ["a"] * len(xs) + ["b"] * len(xb),
                         "x": list(xs) + list(xb), "y": list(ya) + list(yb)})


@pytest.mark.parametrize("xs, ya, yb, xb, expected", [
    ([0, 1, 2, 3], [0, 2, 4, 6], [1, 2, 3, 4], None, [1.0]),        # 2x = 1 + x
    ([0, 1, 2], [0, 1, 2], [0.5, 0.5, 0.5], None, [0.5]),
    ([0, 1, 2], [0, 2, 0], [1, 1, 1], None, [0.5, 1.5]),             # two crossings
    ([0, 2], [0, 4], [3, 3, 3], [0, 1, 2], [1.5]),                    # different x grids
    ([0, 1, 2], [0, 1, 2], [5, 6, 7], None, []),                      # parallel
    ([0, 1, 2], [0, 1, 2], [1, 1, 1], None, [1.0]),                   # touch at a point: once
])
def test_crossover_points_exact(xs, ya, yb, xb, expected):
    assert plots.crossover_points(lines_df(xs, ya, yb, xb), "x", "y", "a", "b") == \
        pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def eager_lazy():
    """Total thread time of nopfn and remap_pfn_range on a 256-page device mapping against
    the fraction of its pages touched (each once)."""
    base, n_pages = synth.DEFAULT_BASE, 256
    vmas = (vmlab.Vma(base, base + n_pages * 4096, backing="device"),)
    rows = []
    for k in (8, 16, 32, 64, 128, 256):
        sc = vmlab.Scenario(synth.sequential(k, k), vmas=vmas)
        for p in ("nopfn", "remap_pfn_range"):
            r = vmlab.simulate(sc, p)
            rows.append({"policy": p, "touched_fraction": k / n_pages,
                         "total_ns": int(r.threads.end_ns.sum())})
    return pd.DataFrame(rows)


def test_crossover_of_eager_and_lazy_matches_the_costs(eager_lazy):
    c = vmlab.Costs()
    # lazy: (fault + driver + access) per touched page; eager: fixed + pte per page + access
    per_fault = c.fault_ns + c.driver_ns
    expected = (c.remap_fixed_ns + 256 * c.pte_ns) / (per_fault * 256)
    xs = plots.crossover_points(eager_lazy, "touched_fraction", "total_ns", "nopfn",
                                "remap_pfn_range")
    assert xs == pytest.approx([expected], rel=1e-9)


def test_crossover_chart_marks_and_annotates(eager_lazy):
    ax = plots.crossover(eager_lazy)
    lines = policy_lines(ax)
    assert [ln.get_gid() for ln in lines] == ["nopfn", "remap_pfn_range"]
    check_legend_colours(ax)
    marks = [ln for ln in ax.get_lines() if ln.get_gid() == "crossover"]
    xc = plots.crossover_points(eager_lazy, "touched_fraction", "total_ns", "nopfn",
                                "remap_pfn_range")[0]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == pytest.approx(xc)
    assert [t.get_text() for t in ax.texts] == [f"{xc:.3g}"]
    assert "(µs)" in ax.get_ylabel() and "fraction" in ax.get_xlabel() and ax.get_title()


# -- mmap_sem -----------------------------------------------------------------------------

def test_lock_timeline_rows_and_span_colours(lock_result):
    r = lock_result
    ax = plots.lock_timeline(r)
    lk = r.locks
    assert [t.get_text() for t in ax.get_yticklabels()] == ["tid 0", "tid 1"]
    by_gid = {c.get_gid(): c for c in ax.collections}
    read, write = by_gid["read:0"], by_gid["write:1"]
    assert hex_of(read.get_facecolor()[0]) == plots.LOCK_COLORS["read"].lower()
    assert hex_of(write.get_facecolor()[0]) == plots.LOCK_COLORS["write"].lower()
    assert len(read.get_paths()) == ((lk.thread == 0) & (lk["mode"] == "read")).sum()
    assert len(write.get_paths()) == ((lk.thread == 1) & (lk["mode"] == "write")).sum()
    assert "read:1" not in by_gid and "write:0" not in by_gid
    # the mmap loop waits behind the reader holding mmap_sem over the disk read
    assert "wait:1" in by_gid and by_gid["wait:1"].get_hatch() == "////"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("read" in t for t in texts) and any("write" in t for t in texts)
    assert "simulated time (" in ax.get_xlabel() and "nopage" in ax.get_title()


def test_lock_timeline_window_and_thread_cap(results):
    r = results["nopage"]
    ax = plots.lock_timeline(r, t0_ns=0, t1_ns=200_000, max_threads=1)
    assert len(ax.get_yticklabels()) == 1 and "1 of 2 threads" in ax.get_title()
    lo, hi = ax.get_xlim()
    unit, scale = plots.time_unit(20_000)
    assert (lo, hi) == (0, 200_000 / scale) and f"({unit})" in ax.get_xlabel()


# -- traces -------------------------------------------------------------------------------

def two_cluster_trace():
    a = synth.uniform(3000, 200, seed=1)
    b = synth.uniform(1000, 4, base_addr=0x7FFFF0000000, seed=2)
    lock = synth.lock_loop(500, tid=2)
    return Trace(np.concatenate([a.addr, b.addr, lock.addr]),
                 op=np.concatenate([a.op, b.op, lock.op]),
                 tid=np.repeat(np.array([0, 1, 2], np.uint8), [3000, 1000, 500]))


def test_access_heatmap_counts_every_access_once_in_chunks():
    t = two_cluster_trace()
    ax = plots.access_heatmap(t, time_bins=50, addr_bins=40)
    img = ax.images[0].get_array()
    assert img.shape == (40, 50)
    assert img.sum() == 4000  # LOCK_W records are not accesses
    chunked = plots.access_heatmap(t, time_bins=50, addr_bins=40, chunk_records=333,
                                   ax=plt.figure().add_subplot())
    np.testing.assert_array_equal(np.ma.filled(chunked.images[0].get_array(), 0),
                                  np.ma.filled(img, 0))
    # two address ranges (the lock loop's has no access), gaps cut out, ticks at their starts
    labels = [x.get_text() for x in ax.get_yticklabels()]
    assert len(labels) == 2 and labels[0].startswith("0x7f0000000000")
    assert labels[1].startswith("0x7ffff0000000")
    assert isinstance(ax.images[0].norm, LogNorm)
    # (the lock records, rebuilt here without their size, name the whole address space:
    # no range of their own, trace.model.names_pages)
    assert ax.get_xlabel() == "record index" and "2 of 2" in ax.get_ylabel()


def test_access_heatmap_time_is_each_threads_cumulative_gap():
    # thread 0 at 10, 20, 30 ns; thread 1 at 100, 200 ns (interleaved records)
    t = Trace(np.full(5, synth.DEFAULT_BASE, np.uint64), tid=[0, 1, 0, 1, 0],
              gap_ns=[10, 100, 10, 100, 10])
    ax = plots.access_heatmap(t, time_bins=2, addr_bins=1, chunk_records=2)
    per_time_bin = np.ma.filled(ax.images[0].get_array(), 0).sum(axis=0)
    assert per_time_bin.tolist() == [3, 2]
    assert "cumulative gap_ns (ns)" in ax.get_xlabel()


def test_access_heatmap_keeps_the_busiest_ranges():
    t = two_cluster_trace()
    ax = plots.access_heatmap(t, coverage=0.5, time_bins=10, addr_bins=10)
    assert len(ax.get_yticklabels()) == 1
    assert ax.images[0].get_array().sum() == 3000 and "75.0%" in ax.get_title()


# -- every chart renders ------------------------------------------------------------------

def test_every_chart_renders_to_png(tmp_path, results, lock_result, eager_lazy, scenario):
    summary = pd.DataFrame([r.summary for r in results.values()])
    sw = pd.DataFrame({"a": [1, 1, 2, 2], "b": ["x", "y", "x", "y"], "n_faults": [1, 2, 3, 0]})
    custom = {**results, "custom": results["nopage"]}
    charts = {
        "cdf": lambda: plots.latency_cdf(custom),
        "bars": lambda: plots.percentile_bars(summary),
        "breakdown": lambda: plots.time_breakdown(results),
        "series": lambda: plots.series_over_time(results),
        "heatmap": lambda: plots.sweep_heatmap(sw, "a", "b", "n_faults"),
        "crossover": lambda: plots.crossover(eager_lazy),
        "locks": lambda: plots.lock_timeline(lock_result),
        "access": lambda: plots.access_heatmap(scenario.trace),
    }
    for name, draw in charts.items():
        ax = draw()
        assert ax.get_title(), name
        path = tmp_path / f"{name}.png"
        ax.figure.savefig(path)
        assert path.stat().st_size > 5_000, name
    # a user-built policy gets its own stable colour and the label it was given
    ax = plots.latency_cdf(custom)
    line = [ln for ln in ax.get_lines() if ln.get_gid() == "custom"][0]
    assert hex_of(line.get_color()) == plots.policy_color("custom")
    # (its curve equals nopage's here, so the label also says so and the line is dashed)
    assert line.get_label() == "custom (same as nopage)" and line.get_linestyle() == "--"


def test_policy_legend_helper():
    ax = plt.figure().add_subplot()
    leg = plots.policy_legend(ax, ["nopage", "mine"])
    assert [t.get_text() for t in leg.get_texts()] == [plots.policy_label("nopage"), "mine"]
    assert [hex_of(h.get_color()) for h in leg.legend_handles] == \
        [plots.policy_color("nopage"), plots.policy_color("mine")]


def test_sweep_heatmap_uniform_grid_draws_every_cell():
    import pandas as pd

    from vmlab import plots

    df = pd.DataFrame({"a": [1, 1, 2, 2], "b": [3, 4, 3, 4], "v": [1.0] * 4})
    for log in (False, True):
        ax = plots.sweep_heatmap(df, "a", "b", "v", log=log)
        assert [t.get_text() for t in ax.texts] == ["1"] * 4


def test_small_tick_values_keep_their_digits():
    from vmlab.plots import _num

    assert _num(0.0005) == "0.0005" and _num(0.25) == "0.25" and _num(25000) == "25,000"


def test_latency_cdf_without_records_uses_the_histogram():
    import numpy as np

    import vmlab
    from vmlab import plots
    from vmlab.trace import synth

    tr = synth.uniform(5000, 500, seed=2)
    sc = vmlab.Scenario(tr, backing="file", memory_pages=100, records=False)
    r = vmlab.simulate(sc, "nopage")
    ax = plots.latency_cdf({"nopage": r})
    (line,) = ax.get_lines()
    y = line.get_ydata()
    assert y[-1] == 1.0 and np.all(np.diff(y) >= 0)
    # the histogram's median sits within its 1.6% resolution of the summary's p50
    x = line.get_xdata()
    p50 = x[np.searchsorted(y, 0.5)]
    unit, scale = plots.time_unit(np.array([r.summary["fault_latency_ns_p50"]]))
    assert abs(p50 * scale / r.summary["fault_latency_ns_p50"] - 1) < 0.05


def test_series_over_time_shows_identical_curves():
    import vmlab
    from vmlab import plots
    from vmlab.trace import synth

    tr = synth.uniform(3000, 400, seed=5)
    sc = vmlab.Scenario(tr, backing="file", memory_pages=50)
    res = {p: vmlab.simulate(sc, p) for p in ("fault_retry", "fault_retry_unbounded")}
    ax = plots.series_over_time(res, column="retries")
    a, b = ax.get_lines()
    # without an adversary the two policies retry identically: the second is dashed and named
    assert a.get_linestyle() == "-" and b.get_linestyle() == "--"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1].endswith("(same as fault_retry)")


def test_latency_cdf_over_many_decades_labels_each_tick_with_its_unit(results):
    # signal latencies from 0 (drawn at 1 ns: nopage_refault delivers at once) to
    # milliseconds (nopage holds them over its I/O waits): each tick says its unit
    ax = plots.latency_cdf(results, metric="signal")
    ax.figure.canvas.draw()
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    lo, hi = ax.get_xlim()
    assert hi / lo > 1e4
    assert any(t.endswith(" ns") for t in ticks) and any(t.endswith(" ms") or t.endswith(" µs")
                                                          for t in ticks), ticks
    assert "log scale" in ax.get_xlabel() and "(ns" not in ax.get_xlabel()


# -- data area, single-valued CDFs, absent categories, the DAMON/perf-style charts ---------

@pytest.fixture(scope="module")
def attacked():
    """Four victims and a 1 MHz fadvise adversary: the unbounded retry storms."""
    tr = synth.shared_file(4, 120, 200, pattern="uniform", gap_ns=1000, seed=1)
    sc = vmlab.Scenario(tr, adversary=vmlab.Adversary("poisson", rate_hz=1e6), horizon_ns=10**8)
    return {p: vmlab.simulate(sc, p) for p in ("fault_retry", "fault_retry_unbounded")}


def test_charts_keep_their_data_area_in_a_plain_figure(results, lock_result, eager_lazy):
    summary = pd.DataFrame([r.summary for r in results.values()])
    charts = {
        "cdf": lambda ax: plots.latency_cdf(results, ax=ax),
        "bars": lambda ax: plots.percentile_bars(summary, ax=ax),
        "breakdown": lambda ax: plots.time_breakdown(results, ax=ax),
        "series": lambda ax: plots.series_over_time(results, ax=ax),
        "crossover": lambda ax: plots.crossover(eager_lazy, ax=ax),
        "locks": lambda ax: plots.lock_timeline(lock_result, ax=ax),
    }
    for name, draw in charts.items():
        fig, ax = plt.subplots()  # no layout engine, default size: what a user passes in
        draw(ax)
        fig.canvas.draw()
        assert fig.get_layout_engine() is not None, name
        assert ax.get_position().width > 0.6, name  # the legend no longer takes the width
        renderer = fig.canvas.get_renderer()
        fig_box = fig.bbox
        leg = ax.get_legend().get_window_extent(renderer)
        # the legend is inside the saved figure and below the x label, not over the data
        assert leg.x0 >= fig_box.x0 - 1 and leg.x1 <= fig_box.x1 + 1 and leg.y0 >= -1, name
        assert leg.y1 <= ax.xaxis.label.get_window_extent(renderer).y0 + 1, name
        plt.close(fig)


def test_latency_cdf_of_equal_latencies_is_a_step():
    tr = synth.uniform(400, 100, seed=2)
    r = vmlab.simulate(vmlab.Scenario(tr, backing="anon"), "nopage")
    lat = r.faults.latency_ns
    assert lat.nunique() == 1  # anon faults cost the same
    for res in (r, vmlab.simulate(vmlab.Scenario(tr, backing="anon", records=False), "nopage")):
        (line,) = plots.latency_cdf({"nopage": res}).get_lines()
        x, y = line.get_xdata(), line.get_ydata()
        assert y[0] == 0 and y[-1] == 1 and len(x) >= 2  # drawn from 0 to 1 at one latency
        unit, scale = plots.time_unit(lat.iloc[0])
        assert x[0] * scale == pytest.approx(lat.iloc[0], rel=0.02)


def test_time_breakdown_leaves_out_absent_categories(results):
    ax = plots.time_breakdown(results)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    totals = sum(r.threads[list(plots.TIME_CATEGORIES)].sum() for r in results.values())
    want = [lab for c, (lab, _) in plots.TIME_CATEGORIES.items() if totals[c] > 0]
    assert legend == want and len(want) < len(plots.TIME_CATEGORIES)


def test_heatmap_ticks_are_short_and_in_units():
    df = pd.DataFrame({"adversary_rate_hz": [1e3, 1e5, 1e6, 3e6] * 2,
                       "io_ns": [70_000] * 4 + [8_000_000] * 4, "slowdown": np.arange(1.0, 9.0)})
    ax = plots.sweep_heatmap(df, "adversary_rate_hz", "io_ns", "slowdown")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1 kHz", "100 kHz", "1 MHz", "3 MHz"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["70 µs", "8 ms"]


def test_thread_series_counts_each_threads_faults_and_retries(attacked):
    r = attacked["fault_retry_unbounded"]
    for column, total in (("faults", len(r.faults)), ("retries", r.faults.retries.sum())):
        ax = plots.thread_series(r, column)
        img = ax.get_images()[0]
        arr = np.ma.filled(img.get_array(), 0)
        assert arr.shape[0] == r.threads.shape[0] and arr.sum() == total
        per_thread = r.faults.groupby("thread").size() if column == "faults" else \
            r.faults.groupby("thread").retries.sum()
        np.testing.assert_array_equal(arr.sum(axis=1), per_thread.to_numpy())
        assert "(ms)" in ax.get_xlabel() and column in img.colorbar.ax.get_ylabel()


def test_fault_heatmap_places_every_retry(attacked):
    r = attacked["fault_retry_unbounded"]
    ax = plots.fault_heatmap(r)
    arr = np.ma.filled(ax.get_images()[0].get_array(), 0)
    assert arr.sum() == r.faults.retries.sum() > len(r.faults)  # a storm: many per fault
    assert "adversary" in ax.get_title()
    assert plots.fault_heatmap(r, "faults").get_images()[0].get_array().sum() == len(r.faults)


def test_fault_heatmap_marks_the_adversarys_own_evictions(attacked):
    r = attacked["fault_retry_unbounded"]
    ev = r.evictions[r.evictions["cause"] == "adversary"]
    faulted = set(zip(r.faults["asid"], r.faults["vpn"]))
    on_axis = sum((a, v) in faulted for a, v in zip(ev["asid"], ev["vpn"]))
    assert on_axis > 0 and len(ev) == r.summary["n_adversary_evictions"]
    ax = plots.fault_heatmap(r)
    marks = ax.collections[0].get_offsets()
    assert len(marks) == on_axis and f"adversary evictions ({on_axis:,})" in \
        [t.get_text() for t in ax.get_legend().get_texts()]
    assert not plots.fault_heatmap(r, evictions=False).collections


def test_faults_per_vma_bars(attacked):
    ax = plots.faults_per_vma(attacked)
    for p, r in attacked.items():
        major = [b for c in ax.containers for b in c.patches if b.get_gid() == f"{p}:major"]
        minor = [b for c in ax.containers for b in c.patches if b.get_gid() == f"{p}:minor"]
        assert sum(b.get_width() for b in major) == r.faults.major.sum()
        assert sum(b.get_width() for b in major + minor) == len(r.faults)
        assert hex_of(major[0].get_facecolor()) == plots.policy_color(p)
