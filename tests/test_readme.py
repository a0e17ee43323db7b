"""The README runs as printed: the ten-line example prints its table digit for digit, and
every command block (```sh) runs, in order, in one scratch folder.

A few commands are replaced before they run; each replacement is listed in
:data:`SUBSTITUTIONS` with the reason, and nothing else is changed:

* ``make test`` is the command running this test: it runs as ``make -n test`` (the target and
  its set-up steps exist, nothing recursive); ``make report`` as ``make -n report``, since
  tests/test_notebooks.py runs every notebook through the same ``vmlab report`` code;
* ``vmlab report --out report`` runs one notebook with small parameters;
* ``vmlab kernel install --user`` writes under the scratch folder instead of the home folder;
* ``valgrind`` runs when installed; without it the lackey output of ``true`` from
  ``tests/fixtures`` stands in for the trace of ``ls``.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: command as printed -> command run (see the module docstring for why).
SUBSTITUTIONS = {
    "make test": "make -n test",
    "make report": "make -n report",
    "vmlab report --out report":
        "vmlab report --out report --only 05 -p N_PAGES 256 -p FRACTIONS '[0.05, 0.5]'",
    ".venv/bin/vmlab kernel install --user": "vmlab kernel install --prefix kernel-prefix",
}
VALGRIND = "valgrind --tool=lackey --trace-mem=yes --log-file=ls.lackey ls /usr"


def test_readme_example_runs_and_matches_its_printed_table(capsys):
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.split()
    printed = re.search(r"prints .*?```\n(.*?)```", text, re.S).group(1).split()
    assert out == printed


def command_lines():
    """Every command of every ```sh block, in order, without its trailing comment."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            cmd = re.sub(r"\s+#.*$", "", line).strip()  # "# ..." after two or more spaces
            if cmd:
                out.append(cmd)
    return out


def to_run(cmd):
    if cmd == VALGRIND and not shutil.which("valgrind"):
        return f"cp {shlex.quote(str(ROOT / 'tests/fixtures/lackey_true.txt'))} ls.lackey"
    return SUBSTITUTIONS.get(cmd, cmd)


def test_every_substitution_is_still_in_the_readme():
    cmds = command_lines()
    assert set(SUBSTITUTIONS) <= set(cmds)
    assert VALGRIND in cmds


def test_every_command_block_runs(tmp_path):
    for name in ("notebooks", "data", "Makefile", "pyproject.toml", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
               MPLBACKEND="Agg")
    for cmd in command_lines():
        run = to_run(cmd)
        p = subprocess.run(["bash", "-c", run], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, f"README command failed: {run}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    # and each did what the README says
    assert (tmp_path / "ls.vmt").exists() and (tmp_path / "zipf.vmt").exists()
    assert (tmp_path / "report" / "index.html").exists()
    import pandas as pd

    device = pd.read_csv(tmp_path / "device.csv")
    assert set(device["N_PAGES"]) == {256, 1024} and "policy" in device.columns
    assert (tmp_path / "kernel-prefix/share/jupyter/kernels/vmlab/kernel.json").exists()
    assert (tmp_path / "device.ipynb").exists()


def test_the_submodules_the_readme_names_work_after_import_vmlab():
    # the README writes vmlab.datasets.load_shipped(...), vmlab.plots and vmlab.widgets after
    # a bare `import vmlab` (once an AttributeError); they load when first named, so
    # `import vmlab` itself loads neither matplotlib nor ipywidgets
    text = README.read_text()
    named = set(re.findall(r"`vmlab\.([a-z_]+)[.`(]", text))
    assert {"datasets", "plots", "widgets"} <= named
    code = ("import sys, vmlab\n"
            "heavy = [m for m in ('matplotlib', 'ipywidgets', 'papermill') if m in sys.modules]\n"
            f"for name in {sorted(named)!r}:\n"
            "    assert getattr(vmlab, name) is not None, name\n"
            "assert len(vmlab.datasets.load_shipped('lackey_ls')) > 0\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
