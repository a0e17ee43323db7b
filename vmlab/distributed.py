"""Sweeps on a ``dask.distributed`` cluster: ``vmlab.sweep(..., client=CLIENT)``.

* **The trace travels once.**  A trace opened from a native ``.vmt`` file goes as its path
  and checksum: each worker opens it (memory-mapped) and refuses a file whose checksum
  differs (a different file at that path on the worker's storage).  Any other trace is
  scattered to every worker once.  Each worker keeps the opened trace, so its index and
  sampled traces are built once per worker.
* **Tasks of at least about 100 ms.**  A task costs 200 us - 1 ms of scheduling.  A first
  wave gives every worker a task of two points at once (nobody waits for a warm-up run
  alone); the second point's time in the first task to finish (its first point warmed the
  worker up) sets how many points the other tasks carry, as long as every worker still gets
  a task.
* **Results cached in Parquet**, one file per finished task, each row keyed by the trace's
  checksum, the base scenario, the point's parameters and vmlab's version: an interrupted
  sweep run again with the same ``cache`` resumes where it stopped.
* A progress bar, and the dashboard's address printed on stderr.

Needs the ``dask`` extra (``pip install 'vmlab[dask]'``: ``dask[distributed]`` and
``pyarrow``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_path, progress
from .errors import VmlabError
from .trace.model import Trace

#: A task carries points worth at least this much replay (the scheduler's overhead per task
#: is 200 us - 1 ms).
TASK_S = 0.1
KEY = "_vmlab_key"

_checksums = {}
_worker_traces = {}
_worker_lock = threading.Lock()


def _dask():
    try:
        import distributed
    except ImportError:
        raise VmlabError("sweeps on a cluster need dask.distributed: pip install "
                         "'vmlab[dask]' (dask[distributed] and pyarrow)") from None
    return distributed


# -- the trace ---------------------------------------------------------------------------


def trace_file(trace):
    """The native file all of ``trace``'s columns are mapped from, or None."""
    names = set()
    for col in trace.columns.values():
        name = None
        while col is not None and name is None:   # a view of the np.memmap open_trace made
            name = getattr(col, "filename", None)
            col = getattr(col, "base", None)
        names.add(name)
    if len(names) != 1 or None in names:
        return None
    return Path(names.pop())


def trace_checksum(trace):
    """A checksum of ``trace``'s records and page size (hex).

    A native file's comes from its header (the CRC-32 of each column, which the writer
    computed from the data), so it costs no pass over the records; other traces hash their
    columns (blake2b)."""
    key = id(trace)
    hit = _checksums.get(key)
    if hit is not None and hit[0]() is trace:
        return hit[1]
    path = trace_file(trace)
    digest = _header_checksum(path) if path is not None else None
    if digest is None:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{len(trace)}:{trace.page_size}".encode())
        for name, col in trace.columns.items():
            h.update(f"|{name}:{np.dtype(col.dtype).str}|".encode())
            for lo in range(0, len(col), 1 << 24):
                h.update(np.ascontiguousarray(col[lo:lo + (1 << 24)]).view(np.uint8))
        digest = h.hexdigest()
    import weakref

    _checksums[key] = (weakref.ref(trace), digest)
    return digest


def _header_checksum(path):
    from .trace.native import read_header

    hdr = read_header(path)
    cols = [(c["name"], c["dtype"], c.get("crc32")) for c in hdr["columns"]]
    if any(c[2] is None for c in cols):
        return None
    blob = json.dumps([hdr["n_records"], hdr["page_size"], sorted(cols)]).encode()
    return "vmt-" + hashlib.blake2b(blob, digest_size=16).hexdigest()


def _worker_trace(ref, checksum):
    """The trace on a worker: ``ref`` is the scattered trace or a native file's path."""
    if isinstance(ref, Trace):
        return ref
    with _worker_lock:
        tr = _worker_traces.get((ref, checksum))
        if tr is None:
            from .trace.native import open_trace

            tr = open_trace(ref)
            got = trace_checksum(tr)
            if got != checksum:
                raise VmlabError(f"{ref}: this worker's file has checksum {got}, the client's "
                                 f"has {checksum}: the path does not name the same trace on "
                                 "every machine")
            _worker_traces[(ref, checksum)] = tr
        return tr


# -- points, keys and the Parquet cache ----------------------------------------------------


def _placeholder():
    return Trace(addr=np.zeros(1, np.uint64))


#: Scenario fields that name records of the trace: a task ships them beside the scenario
#: (a one-record placeholder trace has none of their records)
BY_RECORD = ("unmaps", "reads")


def scenario_without_trace(scenario):
    """What a task ships: ``(scenario with a one-record placeholder trace and no field
    that names records, those fields)``; :func:`with_trace` puts them back together."""
    return (scenario.replace(trace=_placeholder(), **{f: () for f in BY_RECORD}),
            {f: getattr(scenario, f) for f in BY_RECORD})


def with_trace(shipped, trace):
    """The scenario :func:`scenario_without_trace` shipped, on ``trace``."""
    base, by_record = shipped
    return base.replace(trace=trace, **by_record)


def point_keys(scenario, points, checksum):
    """One cache key per point: the trace's checksum, the base scenario (all but its trace),
    the point's parameters and vmlab's version."""
    from . import __version__

    with np.printoptions(threshold=sys.maxsize):
        base = repr(scenario_without_trace(scenario))
        out = []
        for p in points:
            blob = json.dumps([checksum, base, repr(sorted(p.items(), key=lambda kv: kv[0])),
                               __version__])
            out.append(hashlib.sha256(blob.encode()).hexdigest())
    return out


def read_cache(cache):
    """Rows already computed in the cache folder ``cache``: key -> row dict."""
    done = {}
    folder = Path(cache)
    if not folder.is_dir():
        return done
    for part in sorted(folder.glob("part-*.parquet")):
        try:
            df = pd.read_parquet(part)
        except Exception as e:  # a foreign or damaged file: say which
            raise VmlabError(f"{part}: not a readable Parquet part of a vmlab sweep cache "
                             f"({type(e).__name__}: {e}); remove it to recompute its points") from None
        if KEY not in df.columns:
            raise VmlabError(f"{part}: has no {KEY} column; not a vmlab sweep cache part")
        for row in df.to_dict("records"):
            done[row.pop(KEY)] = row
    return done


def write_part(cache, rows, keys):
    """Append one finished task's rows to the cache (a new file, written atomically)."""
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.insert(0, KEY, keys)
    path = folder / f"part-{time.time_ns():x}-{os.getpid()}-{keys[0][:12]}.parquet"
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


# -- tasks -------------------------------------------------------------------------------


def _run_batch(ref, checksum, base, points):
    """On a worker: the summaries of ``points`` (dicts) on the base scenario, and the
    seconds each took."""
    from .simulation import apply_point, simulate

    trace = _worker_trace(ref, checksum)
    sc0 = with_trace(base, trace)
    out, seconds = [], []
    for p in points:
        t0 = time.perf_counter()
        sc, pol = apply_point(sc0, p)
        out.append(simulate(sc, pol).summary)
        seconds.append(time.perf_counter() - t0)
    return out, seconds


def run_points(client, scenario, points, *, cache=None, show_progress=None):
    """Run the grid ``points`` (dicts) of ``scenario`` on the cluster of ``client``.

    Returns the summaries in ``points`` order.  Points already in ``cache`` (a folder of
    Parquet parts) are not run again; each finished task adds a part."""
    distributed = _dask()
    checksum = trace_checksum(scenario.trace)
    keys = point_keys(scenario, points, checksum)
    done = read_cache(cache) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in done]
    link = getattr(client, "dashboard_link", None)
    if link:
        print(f"vmlab sweep: dask dashboard at {link}", file=sys.stderr, flush=True)
    results = {i: done[keys[i]] for i in range(len(points)) if keys[i] in done}
    if not todo:
        return [results[i] for i in range(len(points))]
    path = trace_file(scenario.trace)
    if path is not None:
        ref = str(path.resolve())
    else:
        ref = client.scatter(scenario.trace, broadcast=True, hash=False)
    base = scenario_without_trace(scenario)
    bar = progress(len(points), desc="sweep", unit="runs", enabled=show_progress)
    bar.update(len(points) - len(todo))

    def finish(idx, rows):
        for i, r in zip(idx, rows):
            results[i] = r
        if cache is not None:
            write_part(cache, rows, [keys[i] for i in idx])
        bar.update(len(idx))

    try:
        # a first wave of two points per worker, all at once: each warms its worker up (trace,
        # index, sampled trace, the kernel's code) with its first point and times one warm
        # replay with its second; the first to finish sizes the batches of the rest
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        n_first = min(len(todo), 2 * n_workers)
        pending = distributed.as_completed()
        futures = {}

        def submit(idx):
            fut = client.submit(_run_batch, ref, checksum, base, [points[i] for i in idx],
                                pure=False)
            futures[fut] = idx
            pending.add(fut)

        for lo in range(0, n_first, 2):
            submit(todo[lo:min(lo + 2, n_first)])
        rest = todo[n_first:]
        for fut in pending:
            rows, seconds = fut.result()
            finish(futures.pop(fut), rows)
            if rest:
                per_point = max(1e-4, seconds[-1])
                batch = max(1, math.ceil(TASK_S / per_point))
                batch = min(batch, max(1, math.ceil(len(rest) / n_workers)))
                for lo in range(0, len(rest), batch):
                    submit(rest[lo:lo + batch])
                rest = []
    finally:
        bar.close()
    return [results[i] for i in range(len(points))]


def local_cluster(n_workers=2):
    """A ``LocalCluster`` of ``n_workers`` one-thread worker processes for replays.

    Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536``: glibc then hands
    every freed block above 64 KiB back to the OS, and each run's page-state arrays are
    faulted in again (replays measured 1.5x slower); these workers keep glibc's default."""
    distributed = _dask()
    import dask

    env = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
           if k != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                        processes=True, dashboard_address=":0")


def connect(scheduler, n_workers=2):
    """A client: ``"local"`` starts a :func:`local_cluster` of ``n_workers`` processes;
    anything else is a scheduler address (``tcp://host:8786``)."""
    distributed = _dask()
    if scheduler == "local":
        return distributed.Client(local_cluster(n_workers))
    try:
        return distributed.Client(scheduler, timeout="10s")
    except OSError as e:
        raise VmlabError(f"cannot reach the dask scheduler at {scheduler!r}: {e}") from None
    except (ValueError, TypeError) as e:   # not an address dask can parse
        raise VmlabError(f"--scheduler {scheduler!r} is not 'local' or a scheduler address "
                         f"like tcp://host:8786 ({e})") from None


__all__ = ["run_points", "connect", "local_cluster", "trace_checksum", "trace_file", "point_keys", "read_cache"]
