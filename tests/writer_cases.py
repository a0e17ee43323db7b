"""Hand-checked writer cases (tests/test_writer_calls.py, tests/test_munmap_downgrade.py): two
16-page anonymous VMAs, records built row by row, and the engine against the reference
simulator on the same scenario."""
from __future__ import annotations

import numpy as np

from naive_engine import canonical, first_difference
from naive_engine import simulate as reference
from vmlab.engine import run
from vmlab.model import Scenario, Vma, get_policy
from vmlab.trace import Op, Trace

PAGE = 4096
ANON = 0x7F0000100000                  # a 16-page anon VMA
OTHER = 0x7F0000200000                 # another one
DUFOUR = get_policy("spf").replace(name="spf_change", spf_count="change")


def scenario(rows, costs):
    """rows: (tid, op, addr, size, gap_ns, call)."""
    tr = Trace(np.array([r[2] for r in rows], np.uint64), op=[r[1] for r in rows],
               tid=[r[0] for r in rows], size=[r[3] for r in rows],
               gap_ns=[r[4] for r in rows], call=[r[5] for r in rows])
    # (each with its anon_vma, as a program's heap has: docs/model.md 15.8)
    vmas = [Vma(ANON, ANON + 16 * PAGE, "anon", anon_vma=True),
            Vma(OTHER, OTHER + 16 * PAGE, "anon", anon_vma=True)]
    return Scenario(tr, vmas=vmas, costs=costs)


def read(tid, addr, gap=0):
    return (tid, Op.LOAD, addr, 8, gap, 0)


def writer(tid, addr, call, gap=0):
    return (tid, Op.LOCK_W, addr, PAGE, gap, int(call))


def rows(result, table):
    cols = getattr(result, table)
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def same(sc, policy):
    diff = first_difference(canonical(run(sc, policy)), canonical(reference(sc, policy)))
    assert diff is None, diff
