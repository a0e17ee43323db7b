"""Small file helpers: every file vmlab writes appears complete or not at all."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    An exception (or Ctrl-C) inside the block removes the temporary file, so an
    interrupted conversion never leaves a half-written file and never touches ``path``'s
    previous content.
    """
    tmp = temp_beside(path)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def temp_beside(path):
    """A new empty temporary file in ``path``'s folder (created if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp, path):
    """Give ``tmp`` the mode a plain ``open()`` would (mkstemp makes it 0600) and rename it
    to ``path`` in one step."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def progress(total=None, desc="", unit="records", enabled=None):
    """A tqdm progress bar that stays quiet when stderr is not a terminal."""
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled,
                leave=False, dynamic_ncols=True)


def same_file(a, b):
    """True when ``a`` and ``b`` name the same existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
