"""The explorer in a real browser: JupyterLab on 127.0.0.1, driven by Playwright in Debian's
Chromium (Playwright cannot download its own browser here).

The test starts JupyterLab on a copy of notebook 07 (its parameters cell made small), opens
it, runs every cell, checks the explorer's charts and readouts, changes a control, and
requires that the chart changed.  Any browser console error or uncaught page error fails
it.  ``make test`` installs what it needs (``apt-get install chromium`` where
``/usr/bin/chromium`` is missing, the ``browser`` extra); without them it is skipped
outside CI and fails in CI (``CI`` set), so CI cannot pass without running it.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "07_explorer.ipynb"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Small sizes for the copy of notebook 07 the browser runs.
SMALL = {"N_RECORDS": 10_000, "THREADS": 2}


def _missing():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _small_copy(dst):
    """Notebook 07 with its parameters cell set to :data:`SMALL`."""
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            lines = "".join(cell["source"]).splitlines(keepends=True)
            for i, line in enumerate(lines):
                name = line.split("=")[0].strip()
                if name in SMALL:
                    lines[i] = f"{name} = {SMALL[name]!r}\n"
            cell["source"] = lines
    dst.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {why}")
        pytest.skip(why)
    root = tmp_path_factory.mktemp("lab")
    _small_copy(root / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("lab_home")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as for a user
    log = open(home / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--allow-root"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start: " + (home / "lab.log").read_text()[-2000:])
            time.sleep(0.3)
    yield base, token, root
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(root / ".ipynb_checkpoints", ignore_errors=True)


def test_explorer_runs_and_redraws_in_chromium(lab):
    from playwright.sync_api import expect, sync_playwright

    base, token, root = lab
    errors = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        # nothing leaves the machine: any request not to the local JupyterLab is refused
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                   or route.request.url.startswith("data:") or route.request.url.startswith("blob:")
                   else (errors.append(f"network: {route.request.url}"), route.abort()))
        page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
        # the notebook's kernel is the 'vmlab' kernel it declares, and it starts
        expect(page.locator(".jp-Notebook")).to_be_visible(timeout=60_000)
        expect(page.locator(".jp-Toolbar-kernelName").first).to_contain_text("vmlab", timeout=60_000)
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
               ).to_be_attached(timeout=60_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        # the explorer appears, having run once: its status line and its charts
        status = page.locator(".widget-html-content", has_text="policies in")
        # (20 s alone; beside the rest of the suite on 2 cores, several times that)
        expect(status).to_be_visible(timeout=180_000)
        expect(status).to_contain_text(f"{SMALL['N_RECORDS']:,} records")
        charts = page.locator(".jupyter-widgets img.widget-image")
        expect(charts).to_have_count(2, timeout=30_000)
        # readouts in natural units (not 7.00e+4)
        io = page.locator(".widget-slider", has_text="I/O median")
        expect(io.locator(".widget-readout")).to_have_text("70.0 µs")
        # at 1400 px with the file browser open, every slider's readout is inside the panel
        panel = page.locator(".jp-NotebookPanel:visible").bounding_box()
        for readout in page.locator(".widget-readout:visible").all():
            b = readout.bounding_box()
            assert b["x"] + b["width"] <= panel["x"] + panel["width"], readout.inner_text()
        cdf = charts.first
        cdf.scroll_into_view_if_needed()
        before_src = cdf.get_attribute("src")
        before = cdf.screenshot()
        # change a control: the backing becomes anonymous memory (no disk reads at all)
        page.locator(".widget-dropdown", has_text="backing").locator("select").select_option("anon")
        expect(cdf).not_to_have_attribute("src", before_src, timeout=30_000)
        page.wait_for_timeout(300)
        after = cdf.screenshot()
        assert after != before, "the latency CDF did not change"
        expect(page.locator(".jupyter-widgets table").first).to_contain_text("ns")
        browser.close()
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def offline_report(tmp_path_factory):
    """A report of one small notebook with a figure, the explorer and a wide table."""
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {why}")
        pytest.skip(why)
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from vmlab import report

    d = tmp_path_factory.mktemp("offline_nb")
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "vmlab", "display_name": "vmlab", "language": "python"}
    params = new_code_cell("N = 2000")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(
        "import pandas as pd\nfrom vmlab import widgets\nfrom vmlab.notebook import record\n"
        "e = widgets.Explorer(n_records=N, threads=2, pages=500, policies=('nopage', 'fault_retry'))\n"
        "record('finding', 'a small run')\ne"),
        new_code_cell("pd.DataFrame({f'a_rather_long_column_name_{i}': [i * 1e6] for i in range(40)})")]
    nbformat.write(nb, str(d / "01_offline.ipynb"))
    out = tmp_path_factory.mktemp("offline_report")
    summary = report.run_report(out, notebooks_dir=d, jobs=1)
    assert summary["ok"], summary["notebooks"]["01_offline"]["error"]
    return out


def test_report_shows_completely_with_the_network_off(offline_report):
    from playwright.sync_api import sync_playwright

    requests, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(offline=True, viewport={"width": 1000, "height": 800})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url)
                if not r.url.startswith(("file:", "data:")) else None)
        for name in ("index.html", "01_offline.html"):
            page.goto((offline_report / name).as_uri())
            page.wait_for_load_state("load")
            # every picture is there (the explorer's charts stand in for the live widget)
            sizes = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert sizes and all(w > 0 for w in sizes), (name, sizes)
        # the wide table scrolls inside the page instead of being cut off at its edge
        wide = page.locator("table", has_text="a_rather_long_column_name_39").last
        box = wide.evaluate("t => { const p = t.parentElement; const s = getComputedStyle(t); "
                            "return [t.scrollWidth, t.clientWidth, s.overflowX, s.display]; }")
        assert box[0] > box[1] and box[2] == "auto", box
        wide.evaluate("t => t.scrollLeft = t.scrollWidth")
        assert wide.evaluate("t => t.scrollLeft") > 0
        browser.close()
    assert not requests, requests
    assert not errors, errors
