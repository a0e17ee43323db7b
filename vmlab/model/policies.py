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


BACKINGS = ("file", "anon", "device", "iomem", "context")


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
    fault_lock : {"mmap", "vma", "speculative"}
        What a fault's first attempt takes (docs/model.md section 15): ``mmap_sem`` for read,
        its VMA's read lock found under RCU (6.4's per-VMA locks), or nothing (a speculative
        attempt validated by a sequence count).
    retry_lock : {"mmap", "vma"}
        What an in-kernel retry takes after a lock-dropping wait: ``mmap_sem`` for read
        (6.4 to 6.18) or the VMA lock again (the 2025-26 proposal).  ``"vma"`` needs
        ``fault_lock="vma"``.
    vma_lock_backings : tuple of str
        Backings whose faults are handled under a VMA lock or speculatively; a fault on
        another backing falls back to ``mmap_sem`` (since 6.7, a driver ``->fault`` without
        ``->map_pages`` does).  Ignored when ``fault_lock="mmap"``.
    spf_scope : {"vma", "mm"}
        The sequence count a speculative attempt validates: its VMA's (Dufour 2018) or the
        address space's (Lespinasse 2021).  Only with ``fault_lock="speculative"``.
    spf_count : {"hold", "change"}
        When a writer makes a VMA's sequence count change (docs/model.md 15.4): odd while it
        holds ``mmap_sem`` for write, from its grant to its release or an ``munmap``'s
        downgrade (15.13) (``"hold"``: the 6.4 VMA write-lock rule,
        as Lespinasse's address-space count is), or changed once, at its grant, as Dufour's
        per-VMA count is by ``__vma_adjust()`` (``"change"``).  Only with
        ``fault_lock="speculative"`` and ``spf_scope="vma"``.
    fault_completed : bool
        ``VM_FAULT_COMPLETED`` (5.17): a wait that dropped the lock completes the fault
        itself, with no retry and no second lock acquisition.
    readahead_drops_lock : bool
        A lookup from user space that finds its folio carrying the readahead mark drops the
        fault's lock before it starts the next window, and the attempt ends in a retry
        (Linux 5.1 and later: ``do_async_mmap_readahead()`` goes through
        ``maybe_unlock_mmap_for_io()``, and ``filemap_fault()`` returns ``VM_FAULT_RETRY``),
        where a wait would drop the lock (``drop_lock_attempts``, ``max_retries``).  Only
        with readahead (``ra_pages``); a speculative attempt holds no lock and goes on.
    anon_vma_fallback : bool
        A VMA-locked or speculative fault that needs the VMA's ``anon_vma`` (a private
        anonymous page, a private file page's copy) while the VMA has none yet falls back to
        ``mmap_lock``, which makes it (docs/model.md 15.8: 6.4's ``lock_vma_under_rcu()``,
        since 6.5 ``vmf_anon_prepare()``'s ``mmap_read_trylock()``; Dufour's speculative
        faults).  Only with ``fault_lock`` ``"vma"`` or ``"speculative"``.
    """

    name: str
    eager: bool = False
    needs_struct_page: bool = True
    drop_lock_attempts: int = 0
    interruptible: bool = False
    max_retries: int = 0
    check_signal_before_retry: bool = False
    fault_lock: str = "mmap"
    retry_lock: str = "mmap"
    vma_lock_backings: tuple = ("file", "anon")
    spf_scope: str = "vma"
    spf_count: str = "hold"
    fault_completed: bool = False
    readahead_drops_lock: bool = False
    anon_vma_fallback: bool = False

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
        for knob in ("eager", "needs_struct_page", "interruptible", "check_signal_before_retry",
                     "fault_completed", "readahead_drops_lock", "anon_vma_fallback"):
            v = getattr(self, knob)
            if not is_bool(v):
                raise ScenarioError(f"policy {self.name!r}: {knob} must be True or False, got {v!r}")
            object.__setattr__(self, knob, bool(v))
        if self.eager and (self.interruptible or self.drop_lock_attempts or self.max_retries
                           or self.check_signal_before_retry or self.readahead_drops_lock):
            raise ScenarioError(
                f"policy {self.name!r}: an eager policy never waits in a fault, so it takes no "
                "retry, lock-drop or interruptible knobs")
        self._check_lock_knobs()

    def _check_lock_knobs(self):
        """The knobs of docs/model.md section 15: each a known value, and no combination the
        section leaves without a meaning."""
        for knob, allowed in LOCK_KNOB_VALUES.items():
            v = getattr(self, knob)
            if not isinstance(v, str) or v not in allowed:
                raise ScenarioError(f"policy {self.name!r}: {knob} must be one of "
                                    f"{', '.join(map(repr, allowed))}, got {v!r}")
        b = self.vma_lock_backings
        if isinstance(b, str) or not isinstance(b, (tuple, list, frozenset, set)):
            raise ScenarioError(f"policy {self.name!r}: vma_lock_backings must be a tuple of "
                                f"backings (some of {', '.join(BACKINGS)}), got {b!r}")
        bad = [x for x in b if x not in BACKINGS]
        if bad:
            raise ScenarioError(f"policy {self.name!r}: vma_lock_backings holds unknown backing "
                                f"{bad[0]!r}; backings are {', '.join(BACKINGS)}")
        # a canonical order, so that equal knob sets compare equal
        object.__setattr__(self, "vma_lock_backings", tuple(x for x in BACKINGS if x in b))
        if self.retry_lock == "vma" and self.fault_lock != "vma":
            raise ScenarioError(
                f"policy {self.name!r}: retry_lock='vma' retries under the VMA lock, which needs "
                f"fault_lock='vma' (got fault_lock={self.fault_lock!r})")
        if self.spf_scope != "vma" and self.fault_lock != "speculative":
            raise ScenarioError(
                f"policy {self.name!r}: spf_scope applies to speculative faults only; set "
                f"fault_lock='speculative' or leave spf_scope at 'vma'")
        if self.spf_count != "hold" and (self.fault_lock != "speculative"
                                         or self.spf_scope != "vma"):
            raise ScenarioError(
                f"policy {self.name!r}: spf_count applies to the VMA's sequence count of "
                f"speculative faults only; set fault_lock='speculative' and spf_scope='vma' "
                f"or leave spf_count at 'hold'")
        if self.eager and (self.fault_lock != "mmap" or self.retry_lock != "mmap"
                           or self.fault_completed):
            raise ScenarioError(
                f"policy {self.name!r}: an eager policy never faults, so it takes no "
                "fault_lock, retry_lock or fault_completed knobs")
        if self.anon_vma_fallback and self.fault_lock == "mmap":
            raise ScenarioError(
                f"policy {self.name!r}: anon_vma_fallback applies to VMA-locked and speculative "
                f"faults only (a fault under mmap_lock makes the anon_vma itself); set "
                f"fault_lock='vma' or 'speculative', or leave anon_vma_fallback off")
        if self.fault_completed and self.drop_lock_attempts == 0:
            raise ScenarioError(
                f"policy {self.name!r}: fault_completed (VM_FAULT_COMPLETED) finishes a wait "
                "that dropped the lock, and drop_lock_attempts=0 never drops it; set "
                "drop_lock_attempts or leave fault_completed off")

    @property
    def lock_design(self):
        """True when a knob of docs/model.md section 15 is away from its default (the
        policy is not one of the 2006-2010 single-lock designs)."""
        return any(getattr(self, k) != d for k, d in LOCK_KNOB_DEFAULTS.items())

    def replace(self, **knobs):
        """A copy with some knobs changed (give ``name=`` to label the variant)."""
        unknown = set(knobs) - {f.name for f in fields(self)}
        if unknown:
            raise ScenarioError(_unknown_knobs(unknown))
        return replace(self, **knobs)

    def to_dict(self):
        return asdict(self)


#: Allowed values of the string knobs of docs/model.md section 15 (the default first).
LOCK_KNOB_VALUES = {
    "fault_lock": ("mmap", "vma", "speculative"),
    "retry_lock": ("mmap", "vma"),
    "spf_scope": ("vma", "mm"),
    "spf_count": ("hold", "change"),
}

#: The section-11 knobs at their defaults: a policy with these is a single-lock design.
LOCK_KNOB_DEFAULTS = {"fault_lock": "mmap", "retry_lock": "mmap", "spf_scope": "vma",
                      "spf_count": "hold", "fault_completed": False}


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
                  check_signal_before_retry=True, readahead_drops_lock=True),
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

#: The lock designs after 2010 (docs/model.md section 15), names fixed, one row each.
#: ``VM_FAULT_COMPLETED`` is the knob ``fault_completed=True`` on any of them (or on a
#: ``fault_retry*`` preset).  They join :data:`PRESET_ROWS` once the engine simulates them.
#: Colours from Paul Tol's muted scheme (colour-blind safe), apart from the seven above.
LOCK_PRESET_ROWS = (
    Preset(Policy("per_vma_lock", fault_lock="vma", retry_lock="mmap", drop_lock_attempts=1,
                  max_retries=-1, check_signal_before_retry=True, readahead_drops_lock=True,
                  anon_vma_fallback=True),
           "6.4: VMA lock, retry under mmap_lock", "#882255"),  # wine
    Preset(Policy("per_vma_retry_vma", fault_lock="vma", retry_lock="vma", drop_lock_attempts=1,
                  max_retries=-1, check_signal_before_retry=True, readahead_drops_lock=True,
                  anon_vma_fallback=True),
           "2025-26: retry under the VMA lock", "#44aa99"),  # teal
    Preset(Policy("per_vma_no_retry", fault_lock="vma", drop_lock_attempts=0, max_retries=0,
                  anon_vma_fallback=True),
           "VMA lock held over I/O, no retry", "#332288"),  # indigo
    Preset(Policy("spf", fault_lock="speculative", drop_lock_attempts=1, max_retries=-1,
                  check_signal_before_retry=True, readahead_drops_lock=True,
                  anon_vma_fallback=True),
           "speculative, seqcount-validated", "#999933"),  # olive
)

#: Lock-design preset name -> Policy.
LOCK_PRESETS = {row.policy.name: row.policy for row in LOCK_PRESET_ROWS}

#: The whole ladder, in the order notebook 09 lists it.
LADDER_ORDER = ("nopage", "fault_retry", "fault_retry_v57") + tuple(LOCK_PRESETS)


def preset_row(policy):
    """The :class:`Preset` row of ``policy`` (a name or a Policy, matched by name), or None
    when it is not a preset."""
    name = getattr(policy, "name", policy)
    for row in PRESET_ROWS + LOCK_PRESET_ROWS:
        if row.policy.name == name:
            return row
    return None


def get_policy(policy):
    """Return a :class:`Policy` from a preset name or a Policy (returned as is)."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str) and policy in PRESETS:
        return PRESETS[policy]
    if isinstance(policy, str) and policy in LOCK_PRESETS:
        return LOCK_PRESETS[policy]
    raise ScenarioError(
        f"unknown policy {policy!r}; presets are {', '.join((*PRESETS, *LOCK_PRESETS))} "
        "(or build one: vmlab.Policy(name, **knobs))")


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
