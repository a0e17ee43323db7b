"""Locks: ``mmap_sem`` per address space (a reader count, a writer flag and a FIFO queue of
waiters, docs/model.md section 4)."""
from __future__ import annotations

from ..._numba import njit


@njit
def _wake_writer(a, t, lk_writer, lk_q, lk_qh, lk_qn, tn):
    """The last reader of address space ``a``'s mmap_sem left at ``t``: a writer at the head
    of its queue takes the lock and resumes at ``t``.  Returns that writer's thread, or -1.
    (Called only when someone is queued: a call with array arguments costs reference
    counting, too much for every release.)"""
    w = lk_q[a, lk_qh[a]]
    if (w & 1) == 1 and lk_writer[a] == 0:
        lk_writer[a] = 1
        lk_qh[a] = (lk_qh[a] + 1) % lk_q.shape[1]
        lk_qn[a] -= 1
        tn[w >> 1] = t
        return w >> 1
    return -1

