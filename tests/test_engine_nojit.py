"""The engine stays runnable as plain Python: the tests marked ``nojit`` (hand scenarios
against the reference, the replacement algorithms against plain implementations, the fast
path, a closed form) run again in a subprocess with ``NUMBA_DISABLE_JIT=1``.

That is how a kernel bug is stepped through with a Python debugger, and how a typing slip
that numba would accept but Python would not (or the reverse) is caught.  Run the subset
alone with ``NUMBA_DISABLE_JIT=1 python -m pytest -m nojit tests``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FILES = ["test_engine_vs_reference.py", "test_engine_closed_form.py", "test_engine_fast_path.py"]


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                    reason="already pure Python: the nojit tests run directly")
def test_engine_tests_pass_with_numba_disabled():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", VMLAB_AGREEMENT_EXAMPLES="20")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent)] + [p for p in
                                        env.get("PYTHONPATH", "").split(os.pathsep) if p])
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "nojit", "-p", "no:cacheprovider",
         "-W", "ignore:overflow encountered:RuntimeWarning",  # (wrapping hashes, as in numba)
         "-p", "no:xdist", *[str(HERE / f) for f in FILES]],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=600)
    tail = "\n".join((out.stdout + out.stderr).splitlines()[-25:])
    assert out.returncode == 0, f"the nojit subset failed in pure Python:\n{tail}"
    assert " passed" in out.stdout and " deselected" in out.stdout, tail
