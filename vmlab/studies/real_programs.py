"""Real programs: shipped lackey and perf traces replayed under each policy (notebooks 01, 06).

========================  ==================================================================
:func:`program_scenario`  a shipped trace with its VMAs inferred and given backings
:func:`vma_table`         the VMAs of a scenario, with the pages each touches
:func:`distinct_pages`    distinct pages a trace touches (in VMAs of one backing)
:func:`real_program`      a lackey trace across page-cache sizes
:func:`perf_replay`       a perf fault trace with its own threads and timing
========================  ==================================================================
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import ScenarioError
from ..model.costs import NVME, Costs, as_dist
from ..model.policies import get_policy
from ..model.scenario import Scenario, Vma, min_memory_pages
from ..simulation import compare, simulate_many
from ..trace import synth
from ..trace.build import concat
from ..trace.model import Op


#: Backings by inferred VMA label (``backing="by_label"``): code is file-backed (the binary
#: and its libraries), the rest anonymous.
BACKING_BY_LABEL = {"text": "file", "data": "anon", "stack": "anon"}


def _add_mmap_loop(trace, n_ops, gap_ns):
    tid = int(trace.tid.max()) + 1 if len(trace) else 0
    asid = int(trace.asid.min()) if len(trace) else 0
    return concat([trace, synth.lock_loop(n_ops, tid=tid, cs_gap_ns=gap_ns, asid=asid)])


def program_scenario(name, backing="file", io_ns=NVME, costs=None, mmap_loop_ops=0,
                     mmap_loop_gap_ns=500, **fields):
    """A Scenario for a shipped trace, VMAs inferred and given backings.

    Parameters
    ----------
    name : str
        A shipped trace (:func:`vmlab.datasets.list_shipped`).
    backing : str or dict
        Backing of every inferred VMA; ``"by_label"`` for :data:`BACKING_BY_LABEL`, or a
        dict from label (``text``, ``data``, ``stack``) to backing.
    io_ns : Dist or int
        Read time of a file page.
    costs : Costs, optional
    mmap_loop_ops : int
        Add a thread (the next free tid) looping ``mmap_loop_ops`` mmap/munmap calls
        (``LOCK_W``), as in Lespinasse's test, to see what the program's faults do to it.
    mmap_loop_gap_ns : int
        That loop's overhead before each call, in ns.
    **fields
        Other Scenario fields (``memory_pages``, ``signals``...).

    Returns
    -------
    Scenario
    """
    from ..datasets import load_shipped
    from ..trace.vmas import infer_vmas

    tr = load_shipped(name)
    if mmap_loop_ops:
        tr = _add_mmap_loop(tr, mmap_loop_ops, mmap_loop_gap_ns)
    costs = (costs or Costs()).replace(io_ns=as_dist(io_ns, "io_ns"))
    if isinstance(backing, str) and backing != "by_label":
        return Scenario(tr, backing=backing, costs=costs, **fields)
    table = BACKING_BY_LABEL if backing == "by_label" else dict(backing)
    vmas = []
    for r in infer_vmas(tr):
        if r.label not in table:
            raise ScenarioError(f"backing table has no entry for VMA label {r.label!r} "
                                f"(labels: text, data, stack)")
        vmas.append(Vma(r.start, r.end, backing=table[r.label], asid=r.asid,
                        name=f"{r.label}@{r.start:#x}"))
    return Scenario(tr, vmas=tuple(vmas), costs=costs, **fields)


def vma_table(scenario):
    """The VMAs of a scenario (given or inferred) as a DataFrame.

    Returns
    -------
    DataFrame
        ``name``, ``asid``, ``start`` (hex), ``pages``, ``pages_touched``, ``records``,
        ``backing``, ``policy`` (the VMA's own, or empty: the run's).
    """
    tr = scenario.trace
    ps = tr.page_size
    acc = np.asarray(tr.op) < Op.LOCK_W      # lock records (LOCK_W, LOCK_R): no access
    addr = np.asarray(tr.addr)[acc]
    asid = np.asarray(tr.asid)[acc]
    rows = []
    for v in scenario.resolved_vmas():
        m = (asid == v.asid) & (addr >= v.start) & (addr < v.end)
        rows.append({"name": v.name, "asid": int(v.asid), "start": f"{int(v.start):#x}",
                     "pages": int((v.end - v.start) // ps),
                     "pages_touched": int(len(np.unique(addr[m] // ps))),
                     "records": int(m.sum()), "backing": v.backing,
                     "policy": v.policy.name if v.policy is not None else ""})
    return pd.DataFrame(rows)


def distinct_pages(trace, vmas=None, backing=None):
    """Distinct (address space, page) pairs touched by access records of ``trace``.

    With ``vmas`` and ``backing``, only pages inside VMAs of that backing count.
    """
    acc = np.asarray(trace.op) < Op.LOCK_W   # lock records (LOCK_W, LOCK_R): no access
    asid = np.asarray(trace.asid)[acc].astype(np.uint64)
    addr = np.asarray(trace.addr)[acc]
    keep = np.ones(len(addr), bool)
    if vmas is not None and backing is not None:
        keep[:] = False
        for v in vmas:
            if v.backing == backing:
                keep |= (asid == v.asid) & (addr >= v.start) & (addr < v.end)
    shift = np.uint64(int(trace.page_size).bit_length() - 1)
    keys = (asid[keep] << np.uint64(52)) | (addr[keep] >> shift)
    return int(len(np.unique(keys)))


def real_program(name, memory_fractions=(1.0, 0.5, 0.25, 0.1),
                 policies=("nopage", "fault_retry"), backing="file", io_ns=NVME,
                 replacement="lru", costs=None, n_jobs=None):
    """Replay a shipped lackey trace under each policy across page-cache sizes.

    The trace's VMAs are inferred (:func:`vmlab.trace.vmas.infer_vmas`) and given
    ``backing`` (see :func:`program_scenario`).  A memory fraction ``m`` gives the page
    cache ``ceil(m * distinct file pages)`` frames, at least the engine's minimum
    (:func:`vmlab.model.scenario.min_memory_pages`; 1.0: every file page fits, only cold
    misses; anonymous pages use no frames).

    Parameters
    ----------
    name : str
        A shipped trace (:func:`vmlab.datasets.list_shipped`).
    memory_fractions : sequence of float
    policies : sequence of str or Policy
    backing : str or dict
        See :func:`program_scenario` (``"by_label"``: code file-backed, data anonymous).
    io_ns : Dist or int
    replacement : {"lru", "fifo", "clock"}
    costs : Costs, optional
    n_jobs : int, optional

    Returns
    -------
    DataFrame
        One row per (memory fraction, policy): ``program``, ``memory_fraction``,
        ``memory_pages``, ``file_pages`` (distinct file pages touched) and the summary
        columns.
    """
    base = program_scenario(name, backing=backing, io_ns=io_ns, costs=costs,
                            replacement=replacement)
    tr = base.trace
    n_distinct = max(1, distinct_pages(tr, base.resolved_vmas(), "file"))
    floor = min_memory_pages(tr.n_threads)
    pols = [get_policy(p) for p in policies]
    jobs = [(m, max(floor, int(math.ceil(m * n_distinct))), p)
            for m in memory_fractions for p in pols]
    summaries = simulate_many([(base.replace(memory_pages=mp), p) for _, mp, p in jobs],
                              keep=lambda r: r.summary, n_jobs=n_jobs)
    rows = []
    for (m, mp, _), s in zip(jobs, summaries):
        row = {"program": name, "memory_fraction": float(m), "memory_pages": mp,
               "file_pages": n_distinct}
        row.update(s)
        rows.append(row)
    return pd.DataFrame(rows)


def perf_replay(name, policies=("nopage", "nopage_refault", "fault_retry", "fault_retry_v57"),
                backing="file", io_ns=NVME, mmap_loop_ops=0, mmap_loop_gap_ns=500, costs=None,
                n_jobs=None, results=False):
    """Replay a shipped perf page-fault trace with its own threads and timing.

    The trace's ``gap_ns`` (from perf's timestamps) is each thread's time between faults;
    its VMAs are inferred and given ``backing``.  Since a perf fault trace records faults
    only, every record is a first touch: the replay shows what those faults would cost
    under each policy, on top of the program's own measured time.

    Parameters
    ----------
    name : str
        A shipped trace (:func:`vmlab.datasets.list_shipped`).
    policies : sequence of str or Policy
    backing : str or dict
        See :func:`program_scenario`.
    io_ns : Dist or int
    mmap_loop_ops : int
        Add an mmap/munmap loop thread (see :func:`program_scenario`).
    mmap_loop_gap_ns : int
    costs : Costs, optional
    n_jobs : int, optional
    results : bool
        Also return the Results by policy.

    Returns
    -------
    DataFrame or (DataFrame, dict)
        One summary row per policy, with ``program`` and ``n_threads``.
    """
    sc = program_scenario(name, backing=backing, io_ns=io_ns, costs=costs,
                          mmap_loop_ops=mmap_loop_ops, mmap_loop_gap_ns=mmap_loop_gap_ns)
    df, res = compare(sc, policies, n_jobs=n_jobs, results=True)
    df.insert(0, "n_threads", sc.trace.n_threads)
    df.insert(0, "program", name)
    return (df, res) if results else df
