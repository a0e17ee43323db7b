"""The fault engine: preparation, the numba kernel and ``run`` (raw columns)."""
from .fastpath import fast_path_eligibility
from .prepare import default_event_budget, index_trace, prepare
from .run import compile_kernel, run
from .warm import warm

__all__ = [
    'compile_kernel', 'default_event_budget', 'fast_path_eligibility', 'index_trace', 'prepare',
    'run', 'warm',
]
