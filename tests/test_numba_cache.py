"""numba checks a cached function against its own source file only; vmlab's engine
compiles functions of several files into each other, so ``_numba.refresh_stale_caches``
empties the cache when any file of the package changed.  Checked on a two-file package in
fresh processes: the caller's cache must not keep running an edited callee."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                                reason="no compiled code, no cache")


def _package(tmp_path, value, refresh):
    pkg = tmp_path / "twofiles"
    pkg.mkdir(exist_ok=True)
    (pkg / "callee.py").write_text(textwrap.dedent(f"""
        from vmlab._numba import njit

        @njit
        def g(x):
            return x + {value}
    """))
    (pkg / "caller.py").write_text(textwrap.dedent("""
        from vmlab._numba import njit
        from .callee import g

        @njit
        def f(x):
            return g(x) * 2
    """))
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        from vmlab._numba import refresh_stale_caches
        from . import callee, caller
        if {refresh}:
            refresh_stale_caches(__path__[0], (callee, caller))
    """))


def _run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    out = subprocess.run([sys.executable, "-c", "import twofiles; print(twofiles.caller.f(1))"],
                         env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@pytest.mark.parametrize("refresh", [True, False])
def test_an_edited_callee_is_not_run_from_the_callers_cache(tmp_path, refresh):
    _package(tmp_path, 1, refresh)
    assert _run(tmp_path) == 4          # compiled and cached: (1 + 1) * 2
    _package(tmp_path, 10, refresh)     # only the callee's file changes
    # numba alone keeps the caller's stale code (22 is right); the refresh recompiles
    assert _run(tmp_path) == (22 if refresh else 4)
