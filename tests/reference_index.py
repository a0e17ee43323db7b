"""A plain-numpy reference for ``vmlab.engine.prepare``'s page ids: one stable sort of the
whole trace (memory grows with the trace; fine for tests and benchmarks).

Returns the same five arrays as ``prepare._pages_chunked``: the sorted distinct page keys
(``asid << 52 | vpn``), each key's first record, ``rank`` (page id -> key rank), ``by_key``
(key rank -> page id, ids in first-touch order) and the per-record page id (``-(asid + 1)``
for ``LOCK_W`` records).
"""
import numpy as np

from vmlab.trace.model import Op

_VPN_BITS = 52


def keys_of(trace, lo, hi, shift):
    addr = np.asarray(trace.addr[lo:hi])
    asid = np.asarray(trace.asid[lo:hi]).astype(np.uint64)
    return (asid << np.uint64(_VPN_BITS)) | (addr >> np.uint64(shift))


def first_touch_order(first):
    """Page ids in first-touch order: the pages a trace uses most tend to come first, so
    their state sits together in the kernel's arrays (fewer cache misses than key order).
    Returns ``rank`` (page id -> key rank) and ``by_key`` (key rank -> page id)."""
    rank = np.argsort(first, kind="stable").astype(np.int64)
    by_key = np.empty(len(first), np.int64)
    by_key[rank] = np.arange(len(first), dtype=np.int64)
    return rank, by_key


def pages_in_one_sort(trace, shift):
    """Distinct pages, first touches and per-record ids from one stable sort."""
    n = len(trace)
    op = np.asarray(trace.op)
    acc = op != Op.LOCK_W
    keys = keys_of(trace, 0, n, shift)
    all_acc = bool(acc.all())
    ka = keys if all_acc else keys[acc]
    o = np.argsort(ka, kind="stable")
    sk = ka[o]
    keep = np.ones(len(sk), bool)
    keep[1:] = sk[1:] != sk[:-1]
    uniq = sk[keep]
    first = o[keep] if all_acc else np.flatnonzero(acc)[o[keep]]
    ptype = np.int32 if len(uniq) < 2**31 - 1 else np.int64
    rank, by_key = first_touch_order(first)
    inv = np.empty(len(ka), np.int64)
    inv[o] = np.cumsum(keep) - 1
    rec_page = np.empty(n, ptype)
    if all_acc:
        rec_page[:] = by_key[inv]
    else:
        rec_page[acc] = by_key[inv]
        rec_page[~acc] = -(np.asarray(trace.asid)[~acc].astype(ptype) + 1)
    return uniq, first.astype(np.int64), rank, by_key, rec_page
