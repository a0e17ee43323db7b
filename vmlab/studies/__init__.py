"""Ready-made experiments, one module per question a notebook asks.

Each module builds the :class:`~vmlab.model.scenario.Scenario` of one episode of the story
MODEL.md tells, runs a small family of them through :func:`vmlab.simulate_many` and returns
tidy DataFrames.  The notebooks call these functions and stay thin; each module is tested in
``tests/test_studies_<module>.py``.

=================================  =========  ==============================================
module                             notebook   episode
=================================  =========  ==============================================
:mod:`vmlab.studies.signals`       02         Herrenschmidt's spufs waits (NOPAGE_RETRY, 2006)
:mod:`vmlab.studies.mmap_sem`      03, 06     Lespinasse's 2010 mmap_sem test, Ying Han's
                                              2008 reverse-order workload
:mod:`vmlab.studies.dos`           04         Morton's fadvise(DONTNEED) objection to
                                              unbounded retries
:mod:`vmlab.studies.device`        05         Sorensen's nopfn() against remap_pfn_range()
:mod:`vmlab.studies.real_programs` 01, 06     shipped lackey and perf traces
:mod:`vmlab.studies.ladder`        09         the mmap_lock ladder to 2026: per-VMA locks,
                                              retry under the VMA lock, speculative faults
:mod:`vmlab.studies.lock_callers`  09         who takes mmap_lock for read on this kernel
:mod:`vmlab.studies.lock_wakeups`  09         how long a woken lock waiter takes to run on
                                              a busy machine (this host, measured)
=================================  =========  ==============================================

Shared definitions live below this package, once: writer throughput is the summary's
``writer_ops_per_s`` (:meth:`vmlab.results.Result.writer_window_ns`), ``struct page`` bytes
:data:`vmlab.results.STRUCT_PAGE_BYTES`, the smallest page cache
:func:`vmlab.model.scenario.min_memory_pages`.
"""
from . import device, dos, ladder, mmap_sem, real_programs, signals

__all__ = ["device", "dos", "ladder", "mmap_sem", "real_programs", "signals"]
