"""A scenario: a trace, its VMAs (backing and policy), the page cache, costs, signals, the
adversary, the horizon and the seed.  Validation happens here, before any kernel runs, with
messages that say what to change.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ScenarioError
from ..trace.model import Trace
from .costs import Costs, Exponential
from .policies import BACKINGS, can_serve, get_policy

REPLACEMENTS = ("lru", "fifo", "clock")
SCHEDULE_KINDS = ("poisson", "periodic", "times")
#: Longest horizon: simulated times stay below 2**62 ns (the engine's 'no step' mark).
MAX_HORIZON_NS = 1 << 62
#: Default horizon: one simulated hour.  Every run has one (livelocks must end).
DEFAULT_HORIZON_NS = 3_600 * 10**9


@dataclass(frozen=True)
class Vma:
    """An address range ``[start, end)`` of one address space with a backing.

    ``policy`` overrides the scenario's policy for this VMA (``None``: use the run's policy).
    ``map_thread`` is the thread id that maps an eager VMA (default: the first thread that
    touches it).
    """

    start: int
    end: int
    backing: str = "file"
    policy: object = None
    asid: int = 0
    name: str = ""
    map_thread: object = None

    def __post_init__(self):
        if self.backing not in BACKINGS:
            raise ScenarioError(
                f"VMA {self.label}: unknown backing {self.backing!r}; backings are {', '.join(BACKINGS)}")
        if not (0 <= int(self.start) < int(self.end) <= 2**64):
            raise ScenarioError(f"VMA {self.label}: needs 0 <= start < end, got "
                                f"[{self.start:#x}, {self.end:#x})")
        if self.policy is not None:
            object.__setattr__(self, "policy", get_policy(self.policy))

    @property
    def label(self):
        return self.name or f"[{int(self.start):#x}, {int(self.end):#x})"


@dataclass(frozen=True)
class SignalSchedule:
    """Signals sent to threads: Poisson (``rate_hz``), periodic (``period_ns``) or at explicit
    ``times_ns``, from ``start_ns``; ``fatal`` signals end the thread.

    ``threads``: thread ids it applies to (``None``: every thread that has access records).
    """

    kind: str = "poisson"
    rate_hz: float = 0.0
    period_ns: int = 0
    times_ns: tuple = ()
    start_ns: int = 0
    fatal: bool = False
    threads: tuple | None = None

    def __post_init__(self):
        _check_schedule("signal schedule", self.kind, self.rate_hz, self.period_ns, self.times_ns,
                        self.start_ns)
        object.__setattr__(self, "times_ns", tuple(int(t) for t in self.times_ns))
        if self.threads is not None:
            object.__setattr__(self, "threads", tuple(int(t) for t in np.atleast_1d(self.threads)))


@dataclass(frozen=True)
class Adversary:
    """A process calling ``fadvise(FADV_DONTNEED)`` on a page range of a file VMA.

    ``vma``: index in the scenario's VMA list or VMA name (default: the first file VMA).
    ``first_page``/``n_pages``: the range within the VMA, in pages (default: all of it).
    """

    kind: str = "periodic"
    rate_hz: float = 0.0
    period_ns: int = 0
    times_ns: tuple = ()
    start_ns: int = 0
    vma: object = None
    first_page: int = 0
    n_pages: int | None = None

    def __post_init__(self):
        _check_schedule("adversary", self.kind, self.rate_hz, self.period_ns, self.times_ns,
                        self.start_ns)
        object.__setattr__(self, "times_ns", tuple(int(t) for t in self.times_ns))


def _check_schedule(what, kind, rate_hz, period_ns, times_ns, start_ns):
    if kind not in SCHEDULE_KINDS:
        raise ScenarioError(f"{what}: unknown kind {kind!r}; kinds are {', '.join(SCHEDULE_KINDS)}")
    if kind == "poisson" and not (rate_hz > 0):
        raise ScenarioError(f"{what}: a poisson schedule needs rate_hz > 0, got {rate_hz!r}")
    if kind == "periodic" and not (int(period_ns) > 0):
        raise ScenarioError(f"{what}: a periodic schedule needs period_ns > 0, got {period_ns!r}")
    if kind == "times":
        t = np.asarray(times_ns)
        if len(t) and (t.min() < 0 or np.any(np.diff(t) < 0)):
            raise ScenarioError(f"{what}: times_ns must be non-negative and sorted")
    if start_ns < 0:
        raise ScenarioError(f"{what}: start_ns must be >= 0, got {start_ns}")


def poisson_signals(rate_hz, fatal=False, threads=None, start_ns=0):
    """Signals at ``rate_hz`` per thread as a Poisson process."""
    return SignalSchedule("poisson", rate_hz=rate_hz, fatal=fatal, threads=threads, start_ns=start_ns)


def periodic_signals(period_ns, fatal=False, threads=None, start_ns=0):
    """One signal every ``period_ns`` per thread."""
    return SignalSchedule("periodic", period_ns=int(period_ns), fatal=fatal, threads=threads,
                          start_ns=start_ns)


@dataclass(frozen=True)
class Scenario:
    """Everything a run needs but the policy.

    Parameters
    ----------
    trace : Trace
    vmas : list of Vma, optional
        Default: one VMA per address cluster the trace touches (:func:`vmlab.trace.vmas.infer_vmas`),
        each with ``backing``.
    backing : str
        Backing of inferred VMAs.
    policy : str or Policy
        Default policy of the run (``simulate(scenario, policy)`` replaces it); VMAs may
        override it.
    memory_pages : int, optional
        Page-cache frames for file pages (``None``: unlimited).
    replacement : {"lru", "fifo", "clock"}
    fault_around_pages : int
        1 = off (2006 kernels); 16 since Linux 3.15.
    costs : Costs
    signals : list of SignalSchedule
    adversary : Adversary, optional
    preload : array of addresses, optional
        File pages resident (unmapped) at time 0, in this order.
    horizon_ns : int
        The run stops there; unfinished work is reported, never dropped.
    seed : int
    records : bool
        Keep per-fault, per-signal and per-lock records (switch off for 10^9-record traces:
        summaries and histograms are still exact counts; percentiles then come from a
        log-bucket histogram, within 1.6%).
    bin_ns : int
        Width of the time-series bins.
    """

    trace: Trace
    vmas: tuple | None = None
    backing: str = "file"
    policy: object = "nopage"
    memory_pages: int | None = None
    replacement: str = "lru"
    fault_around_pages: int = 1
    costs: Costs = field(default_factory=Costs)
    signals: tuple = ()
    adversary: Adversary | None = None
    preload: object = None
    horizon_ns: int = DEFAULT_HORIZON_NS
    seed: int = 0
    records: bool = True
    bin_ns: int = 1_000_000

    def __post_init__(self):
        if not isinstance(self.trace, Trace):
            raise ScenarioError(f"trace must be a vmlab Trace, got {type(self.trace).__name__}")
        if self.vmas is not None:
            vmas = tuple(self.vmas)
            for v in vmas:
                if not isinstance(v, Vma):
                    raise ScenarioError(f"vmas must be Vma objects, got {v!r}")
            object.__setattr__(self, "vmas", vmas)
        if self.backing not in BACKINGS:
            raise ScenarioError(f"unknown backing {self.backing!r}; backings are {', '.join(BACKINGS)}")
        object.__setattr__(self, "policy", get_policy(self.policy))
        if self.replacement not in REPLACEMENTS:
            raise ScenarioError(
                f"unknown replacement {self.replacement!r}; choose one of {', '.join(REPLACEMENTS)}")
        if self.memory_pages is not None and (int(self.memory_pages) != self.memory_pages
                                              or self.memory_pages < 1):
            raise ScenarioError(f"memory_pages must be a positive integer or None, got {self.memory_pages!r}")
        fa = self.fault_around_pages
        if not isinstance(fa, (int, np.integer)) or fa < 1 or fa & (fa - 1):
            raise ScenarioError(f"fault_around_pages must be a power of two >= 1, got {fa!r}")
        if not isinstance(self.costs, Costs):
            raise ScenarioError("costs must be a vmlab Costs object (Costs(io_ns=..., ...))")
        sig = self.signals
        if isinstance(sig, SignalSchedule):
            sig = (sig,)
        object.__setattr__(self, "signals", tuple(sig or ()))
        for s in self.signals:
            if not isinstance(s, SignalSchedule):
                raise ScenarioError(f"signals must be SignalSchedule objects, got {s!r}")
        if self.adversary is not None and not isinstance(self.adversary, Adversary):
            raise ScenarioError(f"adversary must be an Adversary, got {self.adversary!r}")
        if int(self.horizon_ns) <= 0:
            raise ScenarioError(f"horizon_ns must be > 0, got {self.horizon_ns}")
        if int(self.horizon_ns) >= MAX_HORIZON_NS:
            raise ScenarioError(f"horizon_ns must be below 2**62 ns (146 years), got "
                                f"{self.horizon_ns}")
        if int(self.bin_ns) <= 0:
            raise ScenarioError(f"bin_ns must be > 0, got {self.bin_ns}")
        if not (0 <= int(self.seed) < 2**64):
            raise ScenarioError(f"seed must be in [0, 2**64), got {self.seed}")

    def replace(self, **changes):
        """A copy with some fields changed (``costs`` fields may be given directly too)."""
        cost_names = set(Costs.__dataclass_fields__)
        cost_changes = {k: changes.pop(k) for k in list(changes) if k in cost_names}
        sc = replace(self, **changes)
        if cost_changes:
            sc = replace(sc, costs=sc.costs.replace(**cost_changes))
        return sc

    # -- resolution --------------------------------------------------------------------
    def resolved_vmas(self):
        """The VMAs of the run, sorted by (asid, start), inferred if none were given."""
        vmas = self.vmas
        if vmas is None:
            from ..trace.vmas import infer_vmas

            vmas = tuple(Vma(r.start, r.end, backing=self.backing, asid=r.asid,
                             name=getattr(r, "label", "") and f"{r.label}@{r.start:#x}")
                         for r in infer_vmas(self.trace))
        return tuple(sorted(vmas, key=lambda v: (v.asid, v.start)))

    def validate(self, policy=None):
        """Check the scenario for ``policy``; raise :class:`ScenarioError` saying what to change.

        Returns ``(policy, vmas, vma_policies)``.
        """
        pol = get_policy(policy) if policy is not None else self.policy
        vmas = self.resolved_vmas()
        ps = self.trace.meta.page_size
        for v in vmas:
            if v.start % ps or v.end % ps:
                raise ScenarioError(f"VMA {v.label} is not aligned to the page size {ps}")
        for a, b in zip(vmas, vmas[1:]):
            if a.asid == b.asid and b.start < a.end:
                raise ScenarioError(
                    f"VMAs {a.label} and {b.label} overlap in address space {a.asid}; "
                    "make their ranges disjoint")
        vma_pols = []
        for v in vmas:
            p = v.policy or pol
            why = can_serve(p, v.backing)
            if why:
                raise ScenarioError(f"VMA {v.label}: {why}")
            vma_pols.append(p)
        if self.adversary is not None:
            self.adversary_vma(vmas)
        return pol, vmas, tuple(vma_pols)

    def adversary_vma(self, vmas):
        """Index of the adversary's VMA in ``vmas``; checks it is a file VMA."""
        adv = self.adversary
        if adv.vma is None:
            idx = next((i for i, v in enumerate(vmas) if v.backing == "file"), None)
            if idx is None:
                raise ScenarioError("the adversary needs a file VMA and the scenario has none")
        elif isinstance(adv.vma, str):
            idx = next((i for i, v in enumerate(vmas) if v.name == adv.vma), None)
            if idx is None:
                raise ScenarioError(f"adversary: no VMA named {adv.vma!r}; names are "
                                    f"{[v.name for v in vmas if v.name]}")
        else:
            idx = int(adv.vma)
            if not 0 <= idx < len(vmas):
                raise ScenarioError(f"adversary: VMA index {idx} out of range (0..{len(vmas) - 1})")
        if vmas[idx].backing != "file":
            raise ScenarioError(f"adversary: VMA {vmas[idx].label} is {vmas[idx].backing!r}; "
                                "fadvise(FADV_DONTNEED) acts on file VMAs")
        return idx

    def signal_schedule_of(self, tids):
        """Map thread id -> SignalSchedule; refuses two schedules for one thread."""
        out = {}
        present = set(int(t) for t in tids)
        for s in self.signals:
            targets = s.threads if s.threads is not None else sorted(present)
            for t in targets:
                if t not in present:
                    raise ScenarioError(f"signal schedule names thread {t}, which is not in the trace "
                                        f"(threads: {sorted(present)[:10]}...)")
                if t in out:
                    raise ScenarioError(f"thread {t} has two signal schedules; give each thread one")
                out[t] = s
        return out


def signal_interval_dist(schedule):
    """The distribution of a Poisson schedule's gaps."""
    return Exponential(1e9 / schedule.rate_hz)
