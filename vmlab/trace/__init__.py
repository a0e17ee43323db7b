"""Memory-access traces: the columnar model, the native format, readers, writers,
generators, reshaping and statistics.

=====================  ========================================================
``model``              :class:`Trace`, :class:`TraceMeta`, :class:`Op`, :class:`Call`
``native``             the ``.vmt`` format: :func:`open_trace`, :class:`TraceWriter`
``convert``            :func:`read_trace`, :func:`convert_trace`, :func:`write_trace`
``readers``            lackey, din, perf script, csv
``synth``              seeded synthetic workloads (``GENERATORS``)
``build``              interleave, concat, slice, relocate, filter
``vmas``               :func:`infer_vmas`
``stats``              :func:`summarize`, reuse distances, miss-ratio and working-set curves
=====================  ========================================================
"""
from .model import Call, Op, Trace, TraceMeta, parse_call, parse_op
from .native import TraceWriter, open_trace, read_header, save_trace
from .convert import FORMATS, detect_format, read_trace, write_trace
from .convert import convert as convert_trace  # the module keeps the name ``convert``
from .build import concat, filter_ops, filter_threads, interleave, relocate, slice_records
from .vmas import VmaRange, infer_vmas
from .stats import miss_ratio_curve, reuse_distance, summarize, working_set_curve

__all__ = ["Call", "Op", "Trace", "TraceMeta", "parse_call", "parse_op", "TraceWriter", "open_trace", "read_header",
           "save_trace", "FORMATS", "convert_trace", "detect_format", "read_trace", "write_trace",
           "concat", "filter_ops", "filter_threads", "interleave", "relocate", "slice_records",
           "VmaRange", "infer_vmas", "miss_ratio_curve", "reuse_distance", "summarize",
           "working_set_curve"]
