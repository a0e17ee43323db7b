"""The real traces shipped in the repository's ``data/`` folder.

``data/README.md`` describes each one (command, records, threads, licence);
``scripts/make_data.sh`` regenerates them.  The folder is found beside the package directory
(``<repo>/data``), so this works from a source checkout or an editable install.

>>> from vmlab import datasets
>>> datasets.list_shipped()                      # doctest: +SKIP
['lackey_gzip', 'lackey_ls', ..., 'perf_xz_threads']
>>> trace = datasets.load_shipped("perf_mmap_faults")   # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from .errors import VmlabError

#: Where the shipped traces live.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SUFFIX = ".vmt"


class UnknownTraceError(VmlabError, LookupError):
    """No shipped trace has that name; the message lists the available ones."""


def list_shipped(data_dir=None):
    """Names (file stems, sorted) of the ``.vmt`` traces in ``data/``; [] if there is none."""
    d = Path(data_dir) if data_dir is not None else DATA_DIR
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*" + SUFFIX) if p.is_file())


def shipped_path(name, data_dir=None):
    """Path of the shipped trace ``name`` (with or without ``.vmt``).

    Raises
    ------
    UnknownTraceError
        If there is no such trace; the message lists the available names.
    """
    d = Path(data_dir) if data_dir is not None else DATA_DIR
    stem = str(name)
    if stem.endswith(SUFFIX):
        stem = stem[: -len(SUFFIX)]
    path = d / (stem + SUFFIX)
    if "/" in stem or "\\" in stem or not stem or not path.is_file():
        names = list_shipped(d)
        available = ", ".join(names) if names else (
            f"none (no {SUFFIX} file in {d}; run scripts/make_data.sh)")
        raise UnknownTraceError(f"no shipped trace named {name!r}; available: {available}")
    return path


def load_shipped(name, verify=True, data_dir=None):
    """Open the shipped trace ``name`` (memory-mapped; see :func:`vmlab.trace.open_trace`)."""
    from .trace.native import open_trace

    return open_trace(shipped_path(name, data_dir), verify=verify)


__all__ = ["DATA_DIR", "UnknownTraceError", "list_shipped", "load_shipped", "shipped_path"]
