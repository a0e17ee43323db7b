"""Small file helpers: every file vmlab writes appears complete or not at all."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import shutil
import sys
import threading
from pathlib import Path

from .errors import TraceFormatError, VmlabError


#: Temporary names are ``.<destination name>.vmlab-tmp-<pid>-<random>`` (a file) or the same
#: with ``.d`` (a folder of column files): the destination and the writing process can be read
#: back from the name, so the next write to the same destination removes what a killed writer
#: (SIGKILL, power loss) left, and never what a live one is writing.
TMP_MARK = ".vmlab-tmp-"
_TMP_NAME = re.compile(r"\.(?P<dest>.+)\.vmlab-tmp-(?P<pid>\d+)-[0-9a-f]+(?:\.d)?\Z", re.S)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    An exception (or Ctrl-C, or SIGTERM under the CLI) inside the block removes the
    temporary file, so an interrupted conversion never leaves a half-written file and never
    touches ``path``'s previous content.
    """
    tmp = None
    try:
        # (a stop signal that lands between the file's creation and this name holding it
        # would leave it behind: held until the name is set, then raised in here)
        with stop_signals_held():
            tmp = temp_beside(path)
        yield tmp
        publish(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


#: The signals that end a command (Ctrl-C, and SIGTERM/SIGHUP under the CLI).
_STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_held():
    """Hold the stop signals for the block; one sent meanwhile is delivered after it.

    Two holds: the signals are blocked in this thread (``pthread_sigmask``), and in the
    main thread their Python handlers are swapped, for the block, for one that only notes
    the signal.  The first alone is not enough: a signal sent to the process is taken by any
    thread that does not block it (numpy's BLAS threads, a pool's), and its C handler then
    makes the main thread run the Python handler wherever it is, inside the block too (a
    SIGHUP once landed between a temporary folder's creation and the name that holds it,
    and the folder was left behind)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
    noted, saved = [], {}
    if threading.current_thread() is threading.main_thread():
        for sig in _STOP:
            handler = signal.getsignal(sig)
            if callable(handler):   # (a Python handler: SIG_DFL and SIG_IGN stay)
                saved[sig] = handler
                signal.signal(sig, lambda signum, frame: noted.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        for signum, frame in noted[:1]:
            saved[signum](signum, frame)   # (raises: Terminated, KeyboardInterrupt)


def _check_destination(path):
    """Refuse a destination that is a folder; create its parent folder."""
    path = Path(path)
    if path.is_dir():
        raise VmlabError(f"{path}: is a directory; expected the name of the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VmlabError(f"{path}: cannot create its folder {path.parent}: "
                         f"{e.strerror or e}") from None
    if not path.parent.is_dir():
        raise VmlabError(f"{path}: {path.parent} is not a folder")
    return path


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def remove_stale(path):
    """Remove the temporary files and folders of ``path`` left by writers that are dead.

    Only names of the form ``.<path's name>.vmlab-tmp-<pid>-<hex>[.d]`` whose ``pid`` no
    longer runs are removed (a reused pid keeps them: safe, never wrong).
    """
    path = Path(path)
    prefix = f".{path.name}{TMP_MARK}"
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    for e in entries:
        m = _TMP_NAME.match(e.name)
        if m is None or m["dest"] != path.name or _pid_alive(int(m["pid"])):
            continue
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(e.path)


def _temp_name(path, suffix=""):
    return path.parent / f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def temp_beside(path):
    """A new empty temporary file in ``path``'s folder (created if needed), after removing
    stale ones (:func:`remove_stale`).

    It is created with mode 0666 less the umask, as ``open()`` would, so :func:`publish`
    needs no chmod (and nobody sets the process-wide umask to read it).
    """
    path = _check_destination(path)
    remove_stale(path)
    return _new_temp(path, path.parent)


def _new_temp(path, folder):
    """A new empty file in ``folder`` with a temporary name of ``path`` (created exclusively,
    mode 0666 less the umask); an error names ``path``."""
    while True:
        tmp = folder / _temp_name(path).name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise _cannot_write(path, e) from None
        os.close(fd)
        return tmp


def temp_dir_beside(path):
    """A new private temporary folder beside ``path`` (same naming as :func:`temp_beside`)."""
    path = _check_destination(path)
    while True:
        tmp = _temp_name(path, ".d")
        try:
            os.mkdir(tmp, 0o700)
        except FileExistsError:
            continue
        except OSError as e:
            raise _cannot_write(path, e) from None
        return tmp


def publish(tmp, path):
    """Rename ``tmp`` to ``path`` in one step."""
    try:
        os.replace(tmp, path)
    except IsADirectoryError:
        raise VmlabError(f"{path}: is a directory; expected the name of the file to write") \
            from None
    except OSError as e:
        raise _cannot_write(path, e) from None


def _cannot_write(path, err):
    """The error for a file that cannot be written at ``path``: it names ``path`` (what the
    user typed), never the temporary name beside it."""
    return VmlabError(f"{path}: cannot write the output file there: {err.strerror or err}")


def destination_of(name):
    """The destination a temporary name of this module stands for (``.x.vmlab-tmp-1-ab`` in
    folder ``d`` -> ``d/x``), or ``name`` itself when it is no such name: an error raised
    while writing a temporary file names the file the user asked for."""
    name = os.fspath(name)
    head, tail = os.path.split(name)
    m = _TMP_NAME.match(tail)
    return os.path.join(head, m["dest"]) if m else name


def check_writable(path):
    """Fail now, in one line naming ``path``, when no file can be written there: a
    temporary file is created beside it (in the nearest folder that exists, so none is
    created) and removed.  For commands that work long before they write."""
    path = Path(path)
    if path.is_dir():
        raise VmlabError(f"{path}: is a directory; expected the name of the file to write")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise VmlabError(f"{path}: {folder} is not a folder")
    with stop_signals_held():   # (a stop signal between the creation and the removal
        os.unlink(_new_temp(path, folder))  # would leave the file: held until it is gone)
    return path


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


def refuse_onto_itself(src, dst):
    """Refuse to write ``dst`` when it is the input ``src``: the same file however named
    (``./x``, a symlink, a hard link), whatever the formats; an output replaces its file,
    so the input would be lost."""
    if same_file(src, dst):
        raise TraceFormatError(
            f"refusing to convert a file onto itself (the output is the input {src})", dst)


def printable(text):
    """``text`` with every non-printable character escaped as Python writes it (``\\x1b``,
    ``\\n``, ``\\r``, ``\\u202e``): a string read from a file cannot move the cursor,
    clear the terminal or fake a line when printed."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _cgroup_limit(folder, name, root):
    """The smallest memory limit named ``name`` in ``folder`` and its parents up to ``root``
    (a cgroup's limit is bounded by its ancestors'), or None when none is set."""
    limits = []
    folder, root = Path(folder), Path(root)
    while True:
        try:
            text = (folder / name).read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            limits.append(int(text))
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    # cgroup v1 writes "no limit" as a page-rounded 2^63 - 1; v2 writes "max"
    limits = [v for v in limits if v < 1 << 62]
    return min(limits) if limits else None


def memory_limit(proc_cgroup="/proc/self/cgroup", mount="/sys/fs/cgroup"):
    """How much memory this process may use, in bytes, and what bounds it.

    Returns ``(bytes, what)``: this machine's physical memory (``what`` is ``"this
    machine's"``), or its cgroup's memory limit when that is smaller (``"this process's
    cgroup limit of"``; cgroup v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, the
    smallest along the cgroup's ancestors), as a container or ``systemd-run -p MemoryMax=``
    sets it.  A cgroup path not visible from here (a container that sees its own cgroup as
    the mount's root) is looked up at the mount's root."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = []
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            root, name = Path(mount), "memory.max"
            if not (root / "cgroup.controllers").exists():
                root = Path(mount) / "unified"
        elif "memory" in controllers.split(","):
            root, name = Path(mount) / "memory", "memory.limit_in_bytes"
        else:
            continue
        leaf = root / path.lstrip("/")
        limit = _cgroup_limit(leaf if leaf.is_dir() else root, name, root)
        if limit is not None:
            limits.append(limit)
    if limits and min(limits) < physical:
        return min(limits), "this process's cgroup limit of"
    return physical, "this machine's"
