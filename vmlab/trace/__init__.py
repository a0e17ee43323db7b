"""Memory-access traces: the columnar model, the native format, readers, writers,
generators, reshaping and statistics."""
from .model import Op, Trace, TraceMeta, parse_op
from .native import TraceWriter, open_trace, read_header, save_trace

__all__ = ["Op", "Trace", "TraceMeta", "parse_op", "TraceWriter", "open_trace", "read_header",
           "save_trace"]
