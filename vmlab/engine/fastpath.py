"""Which faults the kernel's fast path may run: one function of the knobs.

The fast path (``kernel/fastrun.py``) runs a thread's page hits and uncontended faults in a
tight loop while nothing else can happen before each one ends.  It handles a fault only
where the general path would take the same steps with nobody else involved; everything
else stops the run and goes to the general path, which is always correct.  Whether a
fault may run there is decided here, per VMA, from its backing, its policy's knob row and
the page-cache settings, and nowhere else: ``prepare`` builds the kernel's table with it and
tests/test_engine_fast_path.py checks the records are the same with the fast path off.

A new knob must be classified in ``KNOB_EFFECT`` (a test fails until it is): either it
changes what a lone, uninterrupted fault does (then :func:`fast_path_eligibility` must look
at it) or it does not.
"""
from __future__ import annotations

from . import codes as C

#: What each policy knob means for the fast path (every ``K_*`` column must be listed).
KNOB_EFFECT = {
    C.K_EAGER: "eager VMAs are mapped at thread start: their faults never wait (FP_NO_WAIT)",
    C.K_STRUCT_PAGE: "iomem under a struct-page policy is SIGBUS: general path; the handler "
                     "CPU it adds is in the kernel's per-VMA handler cost",
    C.K_DROP_LOCK: "a wait that drops mmap_sem is a retry: the fast path stops (vma_drop)",
    C.K_MAX_RETRIES: "no retry left means no drop: read with K_DROP_LOCK (vma_drop)",
    C.K_INTERRUPTIBLE: "none: the fast path runs a fault only if it ends before any signal "
                       "arrives, so no wait is interrupted",
    C.K_CHECK_SIGNAL: "none: checked only before a retry, and the fast path never retries",
    C.K_FAULT_LOCK: "a VMA lock or a speculative attempt is not mmap_sem: general path "
                    "(FP_GENERAL unless mmap)",
    C.K_RETRY_LOCK: "matters only with K_FAULT_LOCK vma, which is already FP_GENERAL",
    C.K_VMA_BACKINGS: "matters only with K_FAULT_LOCK not mmap, already FP_GENERAL",
    C.K_SPF_SCOPE: "matters only with K_FAULT_LOCK speculative, already FP_GENERAL",
    C.K_SPF_COUNT: "matters only with K_FAULT_LOCK speculative, already FP_GENERAL",
    C.K_COMPLETED: "a lock-dropping wait that completes the fault itself: general path "
                   "(FP_GENERAL)",
    C.K_ANON_VMA: "matters only with K_FAULT_LOCK not mmap, already FP_GENERAL",
    C.K_RA_DROP: "matters only with readahead (ra_pages), whose runs never take the fast "
                 "path (the page cache by file and folio)",
}


def knob_row(policy):
    """The kernel's knob row (``codes.K_*`` columns) of a :class:`vmlab.model.Policy`."""
    import numpy as np

    row = np.zeros(C.K_NCOL, np.int64)
    row[C.K_EAGER] = policy.eager
    row[C.K_STRUCT_PAGE] = policy.needs_struct_page
    row[C.K_DROP_LOCK] = policy.drop_lock_attempts
    row[C.K_INTERRUPTIBLE] = policy.interruptible
    row[C.K_MAX_RETRIES] = policy.max_retries
    row[C.K_CHECK_SIGNAL] = policy.check_signal_before_retry
    row[C.K_FAULT_LOCK] = C.FAULT_LOCK_CODES[policy.fault_lock]
    row[C.K_RETRY_LOCK] = C.FAULT_LOCK_CODES[policy.retry_lock]
    row[C.K_VMA_BACKINGS] = sum(1 << C.BACKING_CODES[b] for b in policy.vma_lock_backings)
    row[C.K_SPF_SCOPE] = 1 if policy.spf_scope == "mm" else 0
    row[C.K_COMPLETED] = policy.fault_completed
    row[C.K_SPF_COUNT] = 1 if policy.spf_count == "change" else 0
    row[C.K_RA_DROP] = policy.readahead_drops_lock
    row[C.K_ANON_VMA] = policy.anon_vma_fallback
    return row


def fast_path_eligibility(backing, knobs, fault_around_pages, lock_costs=False,
                          workingset=False, io_wakeups=False):
    """``(class, drop)`` for a VMA of ``backing`` (a ``codes.B_*``) under the policy knob row
    ``knobs`` (indexable by ``codes.K_*``) with ``fault_around_pages``; ``lock_costs``: the run
    has a lock-word line or VMA lookup cost (docs/model.md 15.1), which depends on the other
    holders of the lock: no fault on the fast path; ``workingset``: twolist protects the
    working set (docs/model.md 8.1: shadow entries, refault activation), which the fast
    path's page-cache verbs do not know: no file fault on the fast path (and ``fastrun``
    stops its run at a file hit, whose touch may activate); ``io_wakeups``: the run draws
    a wait for a CPU at each I/O or context wake-up (``io_wakeup_ns``, docs/model.md
    15.14), which the fast path's faults do not: no file or context fault on the fast path.

    class: ``FP_NO_WAIT`` (the handler maps it at once: anon, device, iomem without struct
    page, eager), ``FP_FILE`` (a page-cache hit or one read), ``FP_CONTEXT`` (ready, or one
    context wait), ``FP_GENERAL`` (never on the fast path: SIGBUS, fault-around, which maps
    neighbours, a file fault under workingset, the lock designs after 2010 and their costs).  drop: a fault that has to
    wait there drops ``mmap_sem`` and retries, so the fast path leaves such a fault to the
    general path.
    """
    eager = int(knobs[C.K_EAGER]) == 1
    struct_page = int(knobs[C.K_STRUCT_PAGE]) == 1
    drop = int(knobs[C.K_MAX_RETRIES]) != 0 and int(knobs[C.K_DROP_LOCK]) != 0
    if int(knobs[C.K_FAULT_LOCK]) != C.FLK_MMAP or int(knobs[C.K_COMPLETED]) != 0 or lock_costs:
        return C.FP_GENERAL, drop     # the lock designs after 2010 (docs/model.md 15)
    if backing == C.B_IOMEM and struct_page and not eager:
        return C.FP_GENERAL, drop
    if eager or backing in (C.B_ANON, C.B_DEVICE, C.B_IOMEM):
        return C.FP_NO_WAIT, drop
    if io_wakeups:
        return C.FP_GENERAL, drop     # (file and context faults may wait)
    if backing == C.B_FILE:
        return (C.FP_FILE if fault_around_pages <= 1 and not workingset else C.FP_GENERAL), drop
    return C.FP_CONTEXT, drop
