"""The engine's preparation: one-sort and chunked indexing give the same page ids."""
import importlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import vmlab

# the module (vmlab.engine exports a function of the same name)
P = importlib.import_module("vmlab.engine.prepare")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(0, 40),
                          st.booleans()), min_size=1, max_size=200),
       st.integers(1, 17))
def test_one_sort_and_chunked_indexing_agree(recs, chunk):
    tid = np.array([r[0] for r in recs])
    asid = np.array([r[1] for r in recs])
    addr = np.array([0x10000 + r[2] * 4096 + 8 for r in recs], np.uint64)
    op = np.array([4 if r[3] and i % 3 == 0 else 0 for i, r in enumerate(recs)], np.uint8)
    tr = vmlab.Trace(addr, op=op, tid=tid, asid=asid)
    shift = 12
    one = P._pages_in_one_sort(tr, shift)
    old = P._CHUNK
    try:
        P._CHUNK = chunk
        many = P._pages_chunked(tr, shift, len(tr))
    finally:
        P._CHUNK = old
    for a, b in zip(one, many):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # every access record's id names its own page
    uniq, first, rank, by_key, rec_page = one
    acc = op != 4
    keys = (asid.astype(np.uint64) << np.uint64(52)) | (addr >> np.uint64(shift))
    assert np.array_equal(uniq[rank[rec_page[acc]]], keys[acc])
    assert np.all(rec_page[~acc] == -(asid[~acc] + 1))
