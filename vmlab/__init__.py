"""vmlab: replay memory-access traces through a model of the Linux page-fault path.

Layers, imports pointing one way: ``vmlab.trace`` (traces, formats, generators) ->
``vmlab.model`` (policies, costs, scenarios) -> ``vmlab.engine`` (numba kernel) ->
``vmlab.results`` / ``vmlab.simulation`` (pandas) -> ``vmlab.studies`` / ``vmlab.plots`` ->
``vmlab.widgets``.
"""
from .errors import ScenarioError, TraceFormatError, VmlabError
from .trace import Op, Trace, TraceMeta, TraceWriter, open_trace, save_trace
from .model import (HDD, NVME, SPUFS, Adversary, Costs, Empirical, Exponential, File, Fixed,
                    LogNormal, Policy, PRESETS, Scenario, SignalSchedule, Uniform, Unmap, FileRead, Vma,
                    get_policy,
                    periodic_signals, poisson_signals)
from .simulation import compare, simulate, simulate_many, sweep
from .results import Result
from .sampling import fault_curve, sample_trace

__version__ = "0.1.0"

#: Submodules loaded when first named (``vmlab.plots.latency_cdf(...)`` after ``import
#: vmlab``, as the README writes them), not at ``import vmlab``: matplotlib, ipywidgets and
#: papermill load only for the code that uses them.
_LAZY = ("calibrate", "datasets", "distributed", "measure", "notebook", "plots", "report",
         "studies", "units", "validate", "widgets")


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    'ScenarioError', 'TraceFormatError', 'VmlabError', 'Op', 'Trace', 'TraceMeta',
    'TraceWriter', 'open_trace', 'save_trace', 'HDD', 'NVME', 'SPUFS', 'Adversary', 'Costs',
    'Empirical', 'Exponential', 'File', 'Fixed', 'LogNormal', 'Policy', 'PRESETS', 'Scenario',
    'SignalSchedule', 'Uniform', 'Unmap', 'FileRead', 'Vma', 'get_policy', 'periodic_signals', 'poisson_signals',
    'compare', 'simulate', 'simulate_many', 'sweep', 'Result', 'fault_curve', 'sample_trace'
]
