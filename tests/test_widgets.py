"""The explorer, headless: build it, move a control, check the summary moved the right way."""
import matplotlib

matplotlib.use("Agg")

import ipywidgets as W  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vmlab.trace import synth  # noqa: E402
from vmlab.widgets import TABLE_COLUMNS, Explorer, explore  # noqa: E402

PNG = b"\x89PNG"
SMALL = dict(generator="shared_file", n_records=2_000, threads=2, pages=1_000,
             policies=("nopage", "fault_retry"), horizon_s=1.0)


@pytest.fixture
def explorer():
    e = Explorer(run=False, **SMALL)
    e.update()
    return e


def test_explorer_builds_and_runs_headless(explorer):
    e = explorer
    assert isinstance(e.widget, W.Box)
    for k in ("source", "generator", "threads", "policies", "io_ns", "signal_hz",
              "memory_fraction", "adversary_hz"):
        assert k in e.controls
    s = e.last_summary
    assert list(s.columns) == list(TABLE_COLUMNS)
    assert list(s.policy) == ["nopage", "fault_retry"]
    assert (s.n_faults > 0).all()
    for image in (e.cdf_image, e.breakdown_image):
        assert bytes(image.value).startswith(PNG)
    html = e.table.outputs[0]["data"]["text/html"]
    assert "<table" in html and "fault_retry" in html
    assert "2,000 records, 2 threads, 2 policies" in e.status.value


def test_more_memory_fewer_faults(explorer):
    e = explorer
    e.controls["memory_fraction"].value = 0.1  # the observer re-runs at once
    small = e.last_summary.set_index("policy").n_faults
    e.controls["memory_fraction"].value = 1.0
    full = e.last_summary.set_index("policy").n_faults
    assert (full < small).all()


def test_slower_disk_slower_faults(explorer):
    e = explorer
    before = e.last_summary.fault_latency_ns_p50.to_numpy()
    e.controls["io_ns"].value = 1e6
    after = e.last_summary.fault_latency_ns_p50.to_numpy()
    assert (after > 5 * before).all()


def test_signals_and_adversary_sliders_reach_the_run(explorer):
    e = explorer
    assert e.last_summary.signal_latency_ns_p99.isna().all()
    e.controls["signal_hz"].value = 1_000
    assert e.last_summary.signal_latency_ns_p99.notna().all()
    assert e.scenario().signals[0].rate_hz == 1_000
    e.controls["adversary_hz"].value = 10_000
    assert e.scenario().adversary.rate_hz == 10_000


def test_threads_slider_makes_a_new_trace(explorer):
    e = explorer
    e.controls["threads"].value = 4
    assert e.scenario().trace.n_threads == 4
    assert "4 threads" in e.status.value
    e.controls["generator"].value = "zipf"  # a single-thread generator
    assert e.controls["threads"].disabled
    assert e.scenario().trace.n_threads == 1


def test_trace_is_cached_between_updates(explorer):
    e = explorer
    t1 = e.scenario().trace
    e.controls["io_ns"].value = 2e5
    assert e.scenario().trace is t1


def test_policies_that_cannot_serve_are_skipped(explorer):
    e = explorer
    e.controls["policies"].value = ("nopage", "nopfn")
    assert list(e.last_summary.policy) == ["nopage"]
    assert "skipped nopfn" in e.status.value
    e.controls["policies"].value = ("nopfn",)
    assert "Cannot run" in e.status.value
    assert list(e.last_summary.policy) == ["nopage"]  # the last good table stays
    e.controls["backing"].value = "device"
    assert list(e.last_summary.policy) == ["nopfn"]


def test_file_and_given_traces(tmp_path):
    tr = synth.uniform(1_500, 300, seed=3)
    path = tmp_path / "t.vmt"
    tr.save(path)
    e = Explorer(source="file", path=str(path), policies=("nopage",), run=False)
    assert e.update() is not None
    assert e.last_results["nopage"].summary["n_records"] == 1_500
    e.controls["path"].value = str(tmp_path / "missing.vmt")
    assert "Cannot run" in e.status.value
    g = Explorer(trace=tr, policies=("nopage",))
    assert g.controls["source"].value == "given"
    assert g.last_summary.n_faults.iloc[0] == len(np.unique(tr.pages()))


def test_shipped_option_only_with_datasets():
    try:
        from vmlab import datasets  # noqa: F401
        has = hasattr(datasets, "list_shipped")
    except ImportError:
        has = False
    e = Explorer(run=False, **SMALL)
    assert ("shipped" in e.controls["source"].options) == has


def test_explore_displays_the_widget_with_a_picture_for_static_pages():
    import base64

    e = explore(**SMALL)
    assert isinstance(e, Explorer) and isinstance(e.widget, W.VBox)
    data, _ = e._repr_mimebundle_()
    # Jupyter renders the live widget; the offline report and other static views the PNG
    assert "application/vnd.jupyter.widget-view+json" in data
    png = base64.b64decode(data["image/png"])
    assert png.startswith(PNG) and len(png) > 10_000
    assert "<table" in data["text/html"]
    assert f'src="data:image/png;base64,{data["image/png"]}"' in data["text/html"]


def test_controls_read_in_natural_units(explorer):
    io = explorer.controls["io_ns"]
    labels = dict((v, k) for k, v in io.options)
    assert labels[70_000] == "70.0 µs" and labels[8_000_000] == "8.00 ms"
    assert io.label == "70.0 µs"  # the NVMe default, not 7.00e+4
    assert dict((v, k) for k, v in explorer.controls["adversary_hz"].options)[100_000] == "100 kHz"
    assert dict((v, k) for k, v in explorer.controls["n_records"].options)[1_000_000] == "1.00 M"
    html = explorer.table.outputs[0]["data"]["text/html"]
    assert "µs" in html and "e+0" not in html


def test_explorer_offers_the_lock_designs_with_their_colours():
    from vmlab.model import LOCK_PRESETS, POLICY_ORDER
    from vmlab.plots import policy_color

    e = Explorer(run=False, **SMALL)
    assert list(e.controls["policies"].options) == [*POLICY_ORDER, *LOCK_PRESETS]
    for name in LOCK_PRESETS:  # each with the colour of its preset row
        assert f"background:{policy_color(name)}" in e.policy_colors.value
        assert name in e.policy_colors.value


def test_a_policy_the_run_refuses_is_skipped_and_the_others_still_show():
    e = Explorer(run=False, **{**SMALL, "policies": ("nopage", "per_vma_lock")})
    e.update()
    ran = list(e.last_summary.policy)
    assert "nopage" in ran and (e.last_summary.n_faults > 0).all()
    if "per_vma_lock" not in ran:  # the engine does not simulate the lock designs yet
        assert "skipped per_vma_lock" in e.status.value
    assert f"{len(ran)} polic{'ies' if len(ran) > 1 else 'y'} in" in e.status.value


def test_status_counts_in_words_and_quotes_inputs_as_text(tmp_path):
    # one thread, one policy: singular; no policy: said so; a file name is text, not markup
    e = Explorer(run=False, **{**SMALL, "threads": 1, "policies": ("nopage",)})
    e.update()
    assert "2,000 records, 1 thread, 1 policy in" in e.status.value
    e.controls["policies"].value = ()
    assert "no policy selected" in e.status.value
    e.controls["policies"].value = ("nopage",)
    e.controls["source"].value = "file"
    e.controls["path"].value = str(tmp_path / "<b>x</b>.vmt")
    assert "&lt;b&gt;x&lt;/b&gt;.vmt" in e.status.value and "<b>x</b>" not in e.status.value


def test_a_busy_machine_delays_every_wake_up():
    """docs/model.md 15.14: the machine control sets this host's measured wake-ups; a
    nopage fault then holds mmap_lock through its wait for a CPU after the read, so the
    faults take longer and so do the waits behind them."""
    from vmlab.widgets import MACHINES

    e = Explorer(run=False, **{**SMALL, "policies": ("nopage",), "machine": "busy"})
    assert e.controls["machine"].value == "CPUs busy: this host's wake-ups, load 'busy'"
    assert list(e.controls["machine"].options) == list(MACHINES)
    costs = e.scenario().costs
    assert costs.lock_wakeup_ns.table_mean_ns() > 100_000
    assert costs.io_wakeup_ns.table_mean_ns() > 100_000
    e.update()
    busy = e.last_summary.set_index("policy").loc["nopage"]
    e.controls["machine"].value = "idle"
    idle = e.last_summary.set_index("policy").loc["nopage"]
    assert e.scenario().costs.io_wakeup_ns.table_mean_ns() == 0
    assert busy["fault_latency_ns_p50"] > idle["fault_latency_ns_p50"] + 50_000
