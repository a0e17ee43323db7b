"""The model: policies as data, costs and their distributions, scenarios."""
from .costs import HDD, NVME, SPUFS, Costs, Dist, Empirical, Exponential, Fixed, LogNormal, Uniform
from .merge import merge_vmas, mergeable
from .policies import (BACKINGS, LADDER_ORDER, LOCK_PRESET_ROWS, LOCK_PRESETS, POLICY_ORDER,
                       PRESET_ROWS, PRESETS, Policy, Preset, can_serve, get_policy, preset_row)
from .scenario import (KERNEL_DEFAULTS, Adversary, File, Scenario, SignalSchedule, Unmap, FileRead,
                       Vma, periodic_signals, poisson_signals)

__all__ = [
    'HDD', 'NVME', 'SPUFS', 'Costs', 'Dist', 'Empirical', 'Exponential', 'Fixed', 'LogNormal',
    'Uniform', 'BACKINGS', 'LADDER_ORDER', 'LOCK_PRESET_ROWS', 'LOCK_PRESETS', 'POLICY_ORDER',
    'PRESET_ROWS', 'PRESETS', 'Policy', 'Preset', 'can_serve', 'get_policy', 'preset_row',
    'KERNEL_DEFAULTS', 'Adversary', 'File', 'Scenario', 'SignalSchedule', 'Unmap', 'FileRead', 'Vma',
    'periodic_signals', 'poisson_signals', 'mergeable', 'merge_vmas'
]
