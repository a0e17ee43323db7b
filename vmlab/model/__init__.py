"""The model: policies as data, costs and their distributions, scenarios."""
from .costs import HDD, NVME, SPUFS, Costs, Dist, Empirical, Exponential, Fixed, LogNormal, Uniform
from .policies import (BACKINGS, LADDER_ORDER, LOCK_PRESETS, POLICY_ORDER, PRESETS, Policy,
                       can_serve, get_policy)
from .scenario import (Adversary, Scenario, SignalSchedule, Vma, periodic_signals,
                       poisson_signals)

__all__ = [
    'HDD', 'NVME', 'SPUFS', 'Costs', 'Dist', 'Empirical', 'Exponential', 'Fixed', 'LogNormal',
    'Uniform', 'BACKINGS', 'LADDER_ORDER', 'LOCK_PRESETS', 'POLICY_ORDER', 'PRESETS', 'Policy',
    'can_serve', 'get_policy',
    'Adversary', 'Scenario', 'SignalSchedule', 'Vma', 'periodic_signals', 'poisson_signals'
]
