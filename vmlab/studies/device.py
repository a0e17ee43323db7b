"""Device memory: lazy ``nopfn``/``nopage`` against eager ``remap_pfn_range`` (notebook 05).

Jes Sorensen's 2006 question: a driver maps a large region of device memory of which a
program touches a part.  Mapping it all at ``mmap()`` time holds ``mmap_sem`` for write
while every PTE is written; faulting it lazily pays a fault per touched page.

===========================  =============================================================
:func:`device_mapping`       the scenario: a partly touched device mapping, another thread
:func:`eager_vs_lazy`        totals, lock hold and memory per touched fraction and policy
:func:`crossover_fraction`   closed form of where eager starts to pay off
:func:`simulated_crossover`  where the simulated curves cross
:func:`eager_total_ns`       closed form of the eager total
:func:`lazy_total_ns`        closed form of a lazy policy's total
===========================  =============================================================

The costs are those of the device VMA only: the mapping thread's time, PTEs and
``struct page`` memory; the second thread's lock wait is reported apart as ``stalled_ns``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import ScenarioError
from ..model.costs import Costs
from ..model.policies import get_policy
from ..model.scenario import Scenario, Vma
from ..results import STRUCT_PAGE_BYTES
from ..simulation import simulate_many
from ..trace.model import Trace, TraceMeta

#: Start of the device mapping of :func:`device_mapping` (away from files and the lock loop).
DEVICE_BASE = 0x7E0000000000
#: Start of the second thread's anonymous mapping in :func:`device_mapping`.
OTHER_BASE = 0x7D0000000000


def device_mapping(n_pages=4096, touched_fraction=0.1, backing="device", other_thread=True,
                   other_pages=64, other_gap_ns=1_000, costs=None, seed=0):
    """A driver's mapping of device memory, touched in part, beside another thread.

    Thread 0 ``mmap()``s ``n_pages`` pages of device memory and touches
    ``max(1, round(touched_fraction * n_pages))`` distinct pages of it, chosen at random,
    once each.  Under ``remap_pfn_range`` it maps every page at ``mmap()`` time, holding
    ``mmap_sem`` for write for ``remap_fixed_ns + n_pages * pte_ns``; under ``nopage`` and
    ``nopfn`` each touched page faults once.  With ``other_thread``, thread 1 faults its own
    anonymous mapping (``other_pages`` pages, ``nopage``, one access every
    ``other_gap_ns``) from time ``other_gap_ns`` on: it stalls while the eager mapping
    holds the lock.

    Parameters
    ----------
    n_pages : int
        Size of the device mapping in pages.
    touched_fraction : float
        Fraction of the pages thread 0 touches, in [0, 1].
    backing : {"device", "iomem"}
        Device memory with ``struct page`` or without (PCI BAR, mspec: ``nopage`` SIGBUSes).
    other_thread : bool
        Add thread 1.
    other_pages : int
    other_gap_ns : int
    costs : Costs, optional
    seed : int
        Which pages are touched.

    Returns
    -------
    Scenario
    """
    if backing not in ("device", "iomem"):
        raise ScenarioError(f"device_mapping(): backing must be 'device' or 'iomem', got {backing!r}")
    if not 0.0 <= touched_fraction <= 1.0:
        raise ScenarioError(f"touched_fraction must be in [0, 1], got {touched_fraction}")
    ps = 4096
    n_touch = touched_pages(n_pages, touched_fraction)
    rng = np.random.default_rng(seed)
    pages = np.sort(rng.permutation(n_pages)[:n_touch]).astype(np.uint64)
    addr = np.uint64(DEVICE_BASE) + pages * np.uint64(ps)
    tid = np.zeros(n_touch, np.uint8)
    gap = np.zeros(n_touch, np.uint64)
    vmas = [Vma(DEVICE_BASE, DEVICE_BASE + n_pages * ps, backing=backing, name="device",
                map_thread=0)]
    if other_thread:
        oaddr = np.uint64(OTHER_BASE) + np.arange(other_pages, dtype=np.uint64) * np.uint64(ps)
        addr = np.concatenate((addr, oaddr))
        tid = np.concatenate((tid, np.ones(other_pages, np.uint8)))
        gap = np.concatenate((gap, np.full(other_pages, other_gap_ns, np.uint64)))
        vmas.append(Vma(OTHER_BASE, OTHER_BASE + other_pages * ps, backing="anon",
                        policy="nopage", name="other thread's heap"))
    tr = Trace(addr, tid=tid, gap_ns=gap, meta=TraceMeta(
        page_size=ps, source=f"vmlab.studies.device.device_mapping(n_pages={n_pages}, "
                             f"touched_fraction={touched_fraction}, seed={seed})"))
    return Scenario(tr, vmas=tuple(vmas), policy="nopfn", costs=costs or Costs(), seed=seed)


def touched_pages(n_pages, touched_fraction):
    """Pages :func:`device_mapping` touches: ``max(1, round(touched_fraction * n_pages))``."""
    return max(1, int(round(touched_fraction * n_pages)))


def _device_row(result, n_pages, fraction):
    pol = result.policy
    th = result.threads.set_index("thread")
    t0 = th.loc[0]
    f = result.faults
    dev = f[(f["vma_name"] == "device")]
    done = dev[dev["outcome"] == "done"]
    lk = result.locks
    remap = lk[lk["kind"] == "remap"]
    n_pte = n_pages if pol.eager else int(done["vpn"].nunique())
    n_sp = int(done["vpn"].nunique()) if (pol.needs_struct_page and not pol.eager) else 0
    others = th.drop(index=0)
    return {
        "touched_fraction": float(fraction),
        "touched_pages": touched_pages(n_pages, fraction),
        "n_pages": int(n_pages),
        "policy": pol.name,
        # the mapping thread's time but its compute gaps: mmap() (remap) + faults + accesses
        "total_ns": int(t0["end_ns"] - t0["compute_ns"]),
        "mmap_latency_ns": int(remap["hold_ns"].sum()) if len(remap) else 0,
        "n_faults": int(len(dev)),
        "n_sigbus": int((dev["outcome"] == "sigbus").sum()),
        "page_table_bytes": 4096 * math.ceil(n_pte / 512),
        "pte_bytes": 8 * n_pte,
        "struct_page_bytes": STRUCT_PAGE_BYTES * n_sp,
        "stalled_ns": int(others["lock_wait_ns"].sum()) if len(others) else 0,
    }


def eager_vs_lazy(fractions, n_pages=4096, policies=("nopage", "nopfn", "remap_pfn_range"),
                  backing="device", other_thread=True, costs=None, seed=0, n_jobs=None):
    """Eager ``remap_pfn_range`` against lazy ``nopfn``/``nopage`` over touched fractions.

    Parameters
    ----------
    fractions : sequence of float
        Touched fractions of the mapping.
    n_pages : int
    policies : sequence of str or Policy
    backing : {"device", "iomem"}
    other_thread : bool
        Measure the stall of a second thread (see :func:`device_mapping`).
    costs : Costs, optional
    seed : int
    n_jobs : int, optional

    Returns
    -------
    DataFrame
        One row per (fraction, policy): ``touched_fraction``, ``touched_pages``,
        ``n_pages``, ``policy``, ``total_ns`` (the mapping thread's mmap() plus faults plus
        accesses), ``mmap_latency_ns`` (the remap's write hold of ``mmap_sem``),
        ``n_faults``, ``n_sigbus``, ``page_table_bytes`` (4 KiB per 512 PTEs of the device
        VMA), ``pte_bytes`` (8 per PTE), ``struct_page_bytes`` (64 per touched page under a
        ``struct page`` policy), ``stalled_ns`` (lock wait of the other thread).
    """
    pols = [get_policy(p) for p in policies]
    fractions = list(fractions)
    scenarios = [device_mapping(n_pages, f, backing=backing, other_thread=other_thread,
                                costs=costs, seed=seed) for f in fractions]
    results = simulate_many([(sc, p) for sc in scenarios for p in pols], n_jobs=n_jobs)
    points = [f for f in fractions for _ in pols]
    return pd.DataFrame([_device_row(r, n_pages, f) for f, r in zip(points, results)])


def _lazy_fault_ns(costs, policy):
    pol = get_policy(policy)
    if pol.eager:
        raise ScenarioError(f"{pol.name} is eager: it takes no faults")
    return costs.fault_ns + costs.driver_ns + (costs.struct_page_ns if pol.needs_struct_page else 0)


def eager_total_ns(costs, n_pages, n_touched):
    """Closed form of ``remap_pfn_range``'s total: ``remap_fixed_ns + n_pages * pte_ns``
    plus ``access_ns`` per touched page (MODEL.md section 3)."""
    return costs.remap_fixed_ns + n_pages * costs.pte_ns + n_touched * costs.access_ns


def lazy_total_ns(costs, n_touched, policy="nopfn"):
    """Closed form of a lazy policy's total on device memory: per touched page one fault
    (``fault_ns + driver_ns``, plus ``struct_page_ns`` for the ``nopage`` family) and one
    access."""
    return n_touched * (_lazy_fault_ns(costs, policy) + costs.access_ns)


def crossover_fraction(costs=None, n_pages=4096, policy="nopfn"):
    """Touched fraction at which eager ``remap_pfn_range`` and a lazy policy cost the same.

    Setting :func:`eager_total_ns` equal to :func:`lazy_total_ns` with ``f * n_pages``
    touched pages (the access costs cancel)::

        f* = (remap_fixed_ns + n_pages * pte_ns) / (n_pages * (fault_ns + driver_ns [+ struct_page_ns]))

    Below ``f*`` lazy faulting is cheaper; above it mapping everything up front is.
    With the default costs and 4096 pages: 0.0811 for ``nopfn``, 0.0721 for ``nopage``.

    Parameters
    ----------
    costs : Costs, optional
    n_pages : int
    policy : str or Policy
        The lazy policy.

    Returns
    -------
    float
        May exceed 1 (then eager never pays off).
    """
    costs = costs or Costs()
    return (costs.remap_fixed_ns + n_pages * costs.pte_ns) / (n_pages * _lazy_fault_ns(costs, policy))


def simulated_crossover(df, lazy="nopfn", eager="remap_pfn_range", x="touched_fraction",
                        y="total_ns"):
    """Where the simulated ``y`` of ``lazy`` and ``eager`` cross, interpolated linearly in ``x``.

    Parameters
    ----------
    df : DataFrame
        From :func:`eager_vs_lazy`.

    Returns
    -------
    float
        The first crossing, or NaN if the curves do not cross within the range of ``x``.
    """
    a = df[df["policy"] == lazy].groupby(x)[y].mean()
    b = df[df["policy"] == eager].groupby(x)[y].mean()
    d = (a - b).dropna().sort_index()
    xs, ds = d.index.to_numpy(float), d.to_numpy(float)
    for i in range(len(xs)):
        if ds[i] == 0:
            return float(xs[i])
        if i and np.sign(ds[i]) != np.sign(ds[i - 1]):
            return float(xs[i - 1] + (xs[i] - xs[i - 1]) * ds[i - 1] / (ds[i - 1] - ds[i]))
    return math.nan
