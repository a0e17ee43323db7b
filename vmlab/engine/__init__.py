"""The fault engine: preparation, the numba kernel and ``run`` (raw columns)."""
from .prepare import index_trace, prepare
from .run import run

__all__ = [
    'index_trace', 'prepare', 'run'
]
