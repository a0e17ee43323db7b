"""Fault-handler policies as data: a policy is a row of knob values (MODEL.md section 4).

The kernel reads the knobs; it never tests a policy's name. A new variant is a
:class:`Policy` built from knobs (``Policy("mine", drop_lock_attempts=2, max_retries=4)``) or a
preset with some knobs changed (``get_policy("fault_retry").replace(max_retries=3)``); adding a
preset is one row of :data:`PRESET_ROWS` (its knobs, what sets it apart, its chart colour).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..errors import ScenarioError
from ._checks import LIMIT, LIMIT_TEXT, checked_keywords, is_bool, unknown_names


def _unknown_knobs(unknown):
    return unknown_names("policy knob", unknown, "knobs", knob_names())


@checked_keywords(_unknown_knobs)
@dataclass(frozen=True)
class Policy:
    """Knobs of a fault-handler policy.

    Attributes
    ----------
    name : str
        Label used in results and plots.
    eager : bool
        Map the whole VMA at ``mmap()`` time under ``mmap_sem`` held for write
        (``remap_pfn_range``); later accesses never fault.
    needs_struct_page : bool
        The handler returns a ``struct page`` (the ``nopage`` family): it pays
        ``struct_page_ns`` and cannot serve ``iomem`` (SIGBUS).
    drop_lock_attempts : int
        How many in-kernel attempts (from the first) wait for I/O *without* ``mmap_sem``;
        ``-1`` for every attempt.  Dropping the lock makes the attempt end in a retry.
    interruptible : bool
        A wait holding the lock is aborted by a signal; the fault returns to user space and
        the access executes again (``NOPAGE_REFAULT``).
    max_retries : int
        Attempts that may end without completing the fault; ``-1`` for unbounded.  Once the
        bound is reached the last attempt waits holding the lock, uninterruptibly.
    check_signal_before_retry : bool
        Before an in-kernel retry, a pending signal returns the fault to user space
        (Peter Xu's 5.7 behaviour).
    """

    name: str
    eager: bool = False
    needs_struct_page: bool = True
    drop_lock_attempts: int = 0
    interruptible: bool = False
    max_retries: int = 0
    check_signal_before_retry: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ScenarioError("a policy needs a non-empty name")
        for knob in ("drop_lock_attempts", "max_retries"):
            v = getattr(self, knob)
            w = int(v) if isinstance(v, (int, np.integer)) and not is_bool(v) else None
            if w is None or w < -1:
                raise ScenarioError(
                    f"policy {self.name!r}: {knob} must be an integer >= -1 (-1 = unbounded), got {v!r}")
            if w >= LIMIT:
                raise ScenarioError(f"policy {self.name!r}: {knob} must be below {LIMIT_TEXT} "
                                    f"(-1 = unbounded), got {v!r}")
            object.__setattr__(self, knob, w)
        for knob in ("eager", "needs_struct_page", "interruptible", "check_signal_before_retry"):
            v = getattr(self, knob)
            if not is_bool(v):
                raise ScenarioError(f"policy {self.name!r}: {knob} must be True or False, got {v!r}")
            object.__setattr__(self, knob, bool(v))
        if self.eager and (self.interruptible or self.drop_lock_attempts or self.max_retries
                           or self.check_signal_before_retry):
            raise ScenarioError(
                f"policy {self.name!r}: an eager policy never waits in a fault, so it takes no "
                "retry, lock-drop or interruptible knobs")

    def replace(self, **knobs):
        """A copy with some knobs changed (give ``name=`` to label the variant)."""
        unknown = set(knobs) - {f.name for f in fields(self)}
        if unknown:
            raise ScenarioError(_unknown_knobs(unknown))
        return replace(self, **knobs)

    def to_dict(self):
        return asdict(self)


def knob_names():
    return [f.name for f in fields(Policy) if f.name != "name"]


@dataclass(frozen=True)
class Preset:
    """One row of the preset table.

    Attributes
    ----------
    policy : Policy
        The knobs (and the name).
    note : str
        What sets it apart, a few words for legends (``"drops mmap_sem, 1 retry"``).
    color : str or None
        Its colour in every chart (``"#rrggbb"``); None lets :func:`vmlab.plots.policy_color`
        give it one from its name, as for any user-built policy.
    """

    policy: Policy
    note: str = ""
    color: str | None = None


#: The seven presets of MODEL.md section 4, one row each, in the order results and plots list
#: them.  Colours: Okabe-Ito (colour-blind safe; yellow left out, it vanishes on white).
PRESET_ROWS = (
    Preset(Policy("nopage"), "mmap_sem held over I/O", "#0072b2"),  # blue
    # sky blue: nopage's interruptible sibling
    Preset(Policy("nopage_refault", interruptible=True, max_retries=-1),
           "interruptible, re-executes", "#56b4e9"),
    Preset(Policy("fault_retry", drop_lock_attempts=1, max_retries=1),
           "drops mmap_sem, 1 retry", "#009e73"),  # bluish green
    # vermillion: the variant Morton feared
    Preset(Policy("fault_retry_unbounded", drop_lock_attempts=-1, max_retries=-1),
           "drops mmap_sem, no bound", "#d55e00"),
    Preset(Policy("fault_retry_v57", drop_lock_attempts=1, max_retries=-1,
                  check_signal_before_retry=True),
           "5.7: retries, signal-aware", "#cc79a7"),  # reddish purple
    Preset(Policy("nopfn", needs_struct_page=False), "PFN, no struct page", "#e69f00"),  # orange
    # black: eager, no faults at all
    Preset(Policy("remap_pfn_range", eager=True, needs_struct_page=False),
           "eager map at mmap()", "#000000"),
)

#: Preset name -> Policy.
PRESETS = {row.policy.name: row.policy for row in PRESET_ROWS}

#: Preset names in the order results and plots list them.
POLICY_ORDER = tuple(PRESETS)


def preset_row(policy):
    """The :class:`Preset` row of ``policy`` (a name or a Policy, matched by name), or None
    when it is not a preset."""
    name = getattr(policy, "name", policy)
    for row in PRESET_ROWS:
        if row.policy.name == name:
            return row
    return None


def get_policy(policy):
    """Return a :class:`Policy` from a preset name or a Policy (returned as is)."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str) and policy in PRESETS:
        return PRESETS[policy]
    raise ScenarioError(
        f"unknown policy {policy!r}; presets are {', '.join(PRESETS)} "
        "(or build one: vmlab.Policy(name, **knobs))")


BACKINGS = ("file", "anon", "device", "iomem", "context")


def can_serve(policy, backing):
    """Whether ``policy`` may be used on a VMA with ``backing`` (MODEL.md section 4).

    Returns ``None`` when allowed, else the reason it is refused.  ``iomem`` under a
    ``struct page`` policy is allowed: it is a simulated SIGBUS, not a configuration error.
    """
    if backing not in BACKINGS:
        return f"unknown backing {backing!r}; backings are {', '.join(BACKINGS)}"
    if policy.eager:
        if backing not in ("device", "iomem"):
            why = {"file": "page-cache pages are not a fixed PFN range",
                   "anon": "anonymous memory is allocated on demand",
                   "context": "the mapping must follow context switches"}[backing]
            return (f"policy {policy.name!r} maps everything at mmap() time and cannot serve a "
                    f"{backing!r} VMA ({why}); use it on 'device' or 'iomem' VMAs")
        return None
    if not policy.needs_struct_page and backing in ("file", "anon"):
        return (f"policy {policy.name!r} returns a PFN with no struct page and cannot serve a "
                f"{backing!r} VMA (page-cache and anonymous pages need struct page); use a "
                "nopage-family policy there")
    return None
