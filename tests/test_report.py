"""The batch report and batch runs, on tiny notebooks written to a temporary folder."""
import json

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vmlab import report
from vmlab.errors import VmlabError
from vmlab.notebook import parameters_of, read_records


def _notebook(path, params_src, body_src):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = new_code_cell(params_src)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell("# tiny"), p, new_code_cell(body_src)]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("notebooks")
    _notebook(d / "01_good.ipynb", "X = 2\nY = 10",
              "from vmlab.notebook import record\n"
              "record('x_squared', X * X)\nrecord('y_plus_x', {'sum': X + Y})")
    _notebook(d / "02_bad.ipynb", "Z = 1",
              "from vmlab.notebook import record\nrecord('before', 1)\nZ / 0")
    return d


@pytest.fixture(scope="module")
def reported(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return report.run_report(out, parameters={"X": 3}, notebooks_dir=tiny, jobs=2), out


def test_report_lists_both_and_flags_the_failure(reported):
    summary, out = reported
    assert not summary["ok"] and summary["failed"] == ["02_bad"]
    nbs = summary["notebooks"]
    assert list(nbs) == ["01_good", "02_bad"]
    assert nbs["01_good"]["status"] == "ok" and nbs["01_good"]["records"]["x_squared"] == 9
    assert nbs["01_good"]["parameters"] == {"X": 3}
    assert nbs["02_bad"]["status"] == "failed"
    assert "ZeroDivisionError" in nbs["02_bad"]["error"]
    assert nbs["02_bad"]["records"] == {"before": 1}  # numbers recorded before the error stay
    index = (out / "index.html").read_text()
    for text in ("01_good", "02_bad", "ZeroDivisionError", "x_squared", "failed", "01_good.html"):
        assert text in index
    assert "<td class=\"num\">9</td>" in index
    # two at once: the wall clock, and the notebooks' own time beside it (once "in all", which
    # read as their sum)
    own = sum(r["runtime_s"] for r in nbs.values())
    assert f"{summary['runtime_s']:.1f} s from start to\nend ({own:.1f} s of notebook time, " \
           "2 at once)" in index


def test_report_writes_notebooks_html_and_json(reported):
    summary, out = reported
    for stem in ("01_good", "02_bad"):
        assert (out / f"{stem}.ipynb").exists() and (out / f"{stem}.html").exists()
    assert read_records(out / "01_good.ipynb") == {"x_squared": 9, "y_plus_x": {"sum": 13}}
    data = json.loads((out / "report.json").read_text())
    assert data["failed"] == ["02_bad"] and data["notebooks"]["01_good"]["html"] == "01_good.html"
    assert "<html" in (out / "01_good.html").read_text()[:200].lower()


def test_parameters_are_filtered_per_notebook(tiny):
    paths = report.find_notebooks(tiny)
    plan = report.plan_parameters(paths, {"X": 5, "Z": 7, "02_bad": {"Z": 8}})
    assert plan == {"01_good": {"X": 5}, "02_bad": {"Z": 8}}
    with pytest.raises(VmlabError, match="NOPE"):
        report.plan_parameters(paths, {"NOPE": 1})
    with pytest.raises(VmlabError, match="preset"):
        report.plan_parameters(paths, {}, preset="huge")
    assert parameters_of(tiny / "01_good.ipynb") == {"X": 2, "Y": 10}


def test_find_notebooks_by_name(tiny):
    assert [p.stem for p in report.find_notebooks(tiny, ["02"])] == ["02_bad"]
    assert [p.stem for p in report.find_notebooks(tiny, ["good"])] == ["01_good"]
    with pytest.raises(VmlabError, match="no notebook"):
        report.find_notebooks(tiny, ["zzz"])


def test_main_report_exit_code_and_stderr(tiny, tmp_path, capfd):
    code = report.main_report(["--out", str(tmp_path / "r"), "--notebooks-dir", str(tiny),
                               "--only", "02", "--jobs", "1"])
    err = capfd.readouterr().err
    assert code == 1
    assert "02_bad started" in err and "02_bad FAILED" in err and "ZeroDivisionError" in err
    code = report.main_report(["--out", str(tmp_path / "r2"), "--notebooks-dir", str(tiny),
                               "--only", "good", "-p", "X", "4"])
    assert code == 0
    assert "01_good finished" in capfd.readouterr().err
    assert report.main_report(["--notebooks-dir", str(tiny), "--only", "nothing"]) == 2


def test_run_batch_grid(tiny, tmp_path):
    out = tmp_path / "batch.csv"
    df = report.run_batch(tiny / "01_good.ipynb", {"X": [1, 2], "Y": [0, 100]}, out, jobs=2)
    assert len(df) == 4
    assert df[["X", "Y"]].values.tolist() == [[1, 0], [1, 100], [2, 0], [2, 100]]
    assert df["x_squared"].tolist() == [1, 1, 4, 4]
    assert df["y_plus_x.sum"].tolist() == [1, 101, 2, 102]
    assert (df["status"] == "ok").all()
    assert pd.read_csv(out)["x_squared"].tolist() == [1, 1, 4, 4]


def test_run_batch_errors(tiny, tmp_path):
    with pytest.raises(VmlabError, match="does not declare"):
        report.run_batch(tiny / "01_good.ipynb", {"W": [1]}, tmp_path / "b.csv")
    with pytest.raises(VmlabError, match=r"\.csv or \.parquet"):
        report.run_batch(tiny / "01_good.ipynb", {"X": [1]}, tmp_path / "b.xlsx")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(VmlabError, match="pyarrow"):
            report.run_batch(tiny / "01_good.ipynb", {"X": [1]}, tmp_path / "b.parquet")


def test_main_batch_parses_grid(tiny, tmp_path):
    out = tmp_path / "b.csv"
    assert report.main_batch([str(tiny / "01_good.ipynb"), "--grid", "X=1,3", "--out", str(out),
                              "-p", "Y", "5", "--jobs", "2"]) == 0
    assert pd.read_csv(out)["y_plus_x.sum"].tolist() == [6, 8]


def test_value_parsing():
    assert report.parse_value("1e6") == 1e6 and report.parse_value("abc") == "abc"
    assert report.split_top_level("[1, 2],[3],'a,b'") == ["[1, 2]", "[3]", "'a,b'"]


# -- parameter types, offline pages, the index's figures and findings, long batch tables ----

def test_parameter_types_are_checked_before_running(tiny, tmp_path):
    paths = report.find_notebooks(tiny)
    # an integral float is an integer (8e6 on a command line), a number where one is expected
    assert report.plan_parameters(paths, {"X": 4.0})["01_good"] == {"X": 4}
    assert isinstance(report.plan_parameters(paths, {"X": 4.0})["01_good"]["X"], int)
    with pytest.raises(VmlabError, match=r"parameter X must be an integer like its default 2, "
                                         r"got str '1,2'"):
        report.plan_parameters(paths, {"X": "1,2"})
    with pytest.raises(VmlabError, match="must be an integer"):
        report.run_batch(tiny / "01_good.ipynb", {"X": [1, 2.5]}, tmp_path / "b.csv")
    assert not (tmp_path / "b.csv").exists()


def test_list_parameter_message_names_papermill_yaml(tmp_path):
    from vmlab.notebook import check_parameter

    with pytest.raises(VmlabError) as e:
        check_parameter("RATES_HZ", [1_000, 10_000], "1000,10000", "notebook 04")
    msg = str(e.value)
    assert "\n" not in msg and "a list of integers" in msg and "-y 'NAME: [1, 2]'" in msg
    assert check_parameter("RATES_HZ", [1_000, 10_000], [1e3, 2e4]) == [1000, 20000]


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    d = tmp_path_factory.mktemp("figures")
    _notebook(d / "01_fig.ipynb", "N = 3",
              "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
              "import matplotlib.pyplot as plt\nimport ipywidgets as W\n"
              "from vmlab.notebook import record\n"
              "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot(range(N))\nplt.show()\n"
              "display(W.IntSlider(N))\n"
              "record('finding', f'{N} points make a line')\n"
              "record('fault_latency_ns_p99', {'nopage': 25_910_000.0, 'fault_retry': 115_000.0})\n"
              "record('writer_ops_per_s_nopage', 55.5)\nrecord('n_pages', N)")
    out = tmp_path_factory.mktemp("figures_report")
    return report.run_report(out, notebooks_dir=d, jobs=1), out


def test_pages_load_nothing_from_the_network(figures):
    import re

    summary, out = figures
    assert summary["ok"]
    for page in ("01_fig.html", "index.html"):
        text = (out / page).read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I), page
        assert "require.js" not in text and "mathjax" not in text.lower()
    page = (out / "01_fig.html").read_text()
    assert "data:image/png;base64" in page  # the figure is in the page
    assert "widget-view" not in page and "widget-state" not in page


def test_index_shows_thumbnail_finding_and_units(figures):
    from PIL import Image

    summary, out = figures
    r = summary["notebooks"]["01_fig"]
    assert r["thumbnail"] and Image.open(r["thumbnail"]).size[0] == 360
    index = (out / "index.html").read_text()
    assert '<img src="01_fig.png"' in index
    assert "3 points make a line" in index
    assert "nopage: 25.9 ms" in index and "fault_retry: 115 µs" in index  # not 2.591e+07
    assert "55.5/s" in index
    assert json.loads((out / "report.json").read_text())["notebooks"]["01_fig"]["thumbnail"] == "01_fig.png"


def test_batch_table_is_long_one_row_per_point_and_policy(tmp_path):
    d = tmp_path / "nb"
    d.mkdir()
    _notebook(d / "01_pol.ipynb", "K = 1",
              "from vmlab.notebook import record\n"
              "record('p99_ns', {'nopage': 10 * K, 'fault_retry': 20 * K})\n"
              "record('writer_ops_per_s_fault_retry_v57', 3.0 * K)\n"
              "record('writer_ops_per_s_fault_retry', 2.0 * K)\nrecord('scale', K)")
    df = report.run_batch(d / "01_pol.ipynb", {"K": [1, 2]}, tmp_path / "b.csv", jobs=1)
    assert df[["K", "policy"]].values.tolist() == [
        [1, "nopage"], [1, "fault_retry"], [1, "fault_retry_v57"],
        [2, "nopage"], [2, "fault_retry"], [2, "fault_retry_v57"]]
    assert df["p99_ns"].tolist()[:2] == [10, 20] and df["p99_ns"].tolist()[3:5] == [20, 40]
    assert df["writer_ops_per_s"].tolist()[1:3] == [2.0, 3.0]
    assert df["scale"].tolist() == [1, 1, 1, 2, 2, 2]
    assert "writer_ops_per_s_fault_retry" not in df.columns


def test_papermill_run_checks_injected_parameters(tmp_path):
    """Run by papermill itself (not vmlab report), the notebook's check_parameters() cell
    stops a list given as a string with one line, before anything computes with it."""
    import papermill as pm

    nb = _notebook(tmp_path / "01_pm.ipynb", "RATES_HZ = [1_000, 10_000]\nIO_NS = 70_000",
                   "from vmlab.notebook import check_parameters, record\ncheck_parameters()\n"
                   "record('io_type', type(IO_NS).__name__)\nrecord('n_rates', len(RATES_HZ))")
    ok = tmp_path / "ok.ipynb"
    pm.execute_notebook(str(nb), str(ok), parameters={"IO_NS": 8e6, "RATES_HZ": [1, 2, 3]},
                        kernel_name="vmlab", progress_bar=False)
    assert read_records(ok) == {"io_type": "int", "n_rates": 3}  # 8e6 became 8000000
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(nb), str(tmp_path / "bad.ipynb"),
                            parameters={"RATES_HZ": "1000,10000"}, kernel_name="vmlab",
                            progress_bar=False)
    assert e.value.ename == "VmlabError"
    assert e.value.evalue.startswith("papermill: parameter RATES_HZ must be a list of integers")
    assert "-y 'NAME: [1, 2]'" in e.value.evalue
    assert "n_rates" not in read_records(tmp_path / "bad.ipynb")


def test_a_kernel_that_dies_at_its_start_is_started_again(tiny, tmp_path, monkeypatch):
    """Kernels started side by side can die before their first reply (a port two of them
    picked): execute_notebook starts such a notebook again, a failing one it reports."""
    import papermill

    real = papermill.execute_notebook
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*a, **k)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    r = report.execute_notebook(tiny / "01_good.ipynb", tmp_path / "o.ipynb", kernel="python3")
    assert r["status"] == "ok" and len(calls) == 2 and r["records"]["x_squared"] == 4

    def dead(*a, **k):
        calls.append(1)
        raise RuntimeError("Kernel died before replying to kernel_info")

    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", dead)
    r = report.execute_notebook(tiny / "01_good.ipynb", tmp_path / "p.ipynb", kernel="python3")
    assert r["status"] == "failed" and len(calls) == 1 + report.KERNEL_START_RETRIES
    assert r["error"] == "RuntimeError: Kernel died before replying to kernel_info"
