"""Hand-checked memory cases (tests/test_kernel_memory.py, tests/test_unmap.py): the costs
they are worked out with, traces built row by row, and the engine checked against the
reference simulator on each."""
from __future__ import annotations

import numpy as np

import vmlab.engine
from naive_engine import canonical, first_difference, simulate
from vmlab import Costs, Fixed, Trace
from vmlab.trace import Op

PAGE = 4096
IO = 70_000
COSTS = Costs(io_ns=Fixed(IO), pte_ns=60)
R, W = Op.LOAD, Op.STORE
ANON_WRITE = 500 + 100 + 700     # fault_ns + struct_page_ns + zero_fill_ns
OWN0 = 1 + 4                     # a PGD and one thread's kernel stack


def trace(rows):
    """rows: (tid, asid, address, op)."""
    tid, asid, addr, op = (np.array(c) for c in zip(*rows))
    return Trace(addr=addr.astype(np.uint64), op=op.astype(np.uint8), tid=tid.astype(np.uint32),
                 asid=asid.astype(np.uint16))


def both(sc, policy="nopage", fast_paths=(True,)):
    """The reference's result, after checking the engine's records are the same (with the
    fast path on, and off where ``fast_paths`` says)."""
    ref = simulate(sc, policy)
    for fast in fast_paths:
        diff = first_difference(canonical(vmlab.engine.run(sc, policy, fast_path=fast)),
                                canonical(ref))
        assert diff is None, diff
    return ref
