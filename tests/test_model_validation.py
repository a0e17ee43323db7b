"""Every invalid scenario or policy is refused before the run with a ScenarioError whose
message names the field and says what to change (README: "Invalid combinations ... are
refused before the run with a message saying what to change").

The kernel is replaced by a stub for every test here: a refusal must come from validation
(``vmlab.model`` or ``vmlab.engine.prepare``), never from a run, and the file stays fast.
A scenario that validation lets through reaches the stub and raises ``KernelReached``.

Cases marked ``xfail(strict=True)`` are gaps: invalid input that is accepted, or that fails
with a raw Python/numpy error instead of a ScenarioError.  Each reason says where the check
belongs.  When a gap is closed its test passes, strict xfail turns that into a failure, and
the mark must go.
"""
import importlib

import numpy as np
import pytest

from vmlab import (Adversary, Costs, Empirical, Exponential, Fixed, LogNormal, Policy, Scenario,
                   ScenarioError, SignalSchedule, Trace, TraceMeta, Uniform, Vma, compare,
                   get_policy, periodic_signals, poisson_signals, simulate, sweep)
from vmlab.errors import TraceFormatError
from vmlab.model import BACKINGS, PRESETS, can_serve

_run = importlib.import_module("vmlab.engine.run")  # vmlab.engine.run is also a function

PS = 4096
BASE = 0x10000
NAN = float("nan")
INF = float("inf")


class KernelReached(Exception):
    """Raised by the stub kernel: the scenario passed validation."""


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch):
    def stub(*args):
        raise KernelReached("validation let this scenario through to the kernel")

    monkeypatch.setattr(_run, "_simulate", stub)


def case(name, make, message, marks=()):
    return pytest.param(make, message, id=name, marks=marks)


def gap(where, what):
    return pytest.mark.xfail(strict=True, reason=f"GAP: {what}; the check belongs in {where}")


def tiny(tids=None, asids=None, pages=(0, 1), meta=None):
    """One record on each page BASE + p*PS of ``pages`` (offset 8 on odd pages); thread 0
    unless ``tids`` is given."""
    tids = [0] * len(pages) if tids is None else tids
    addr = np.array([BASE + p * PS + (8 if p % 2 else 0) for p in pages], np.uint64)
    asid = None if asids is None else np.array(asids, np.uint16)
    return Trace(addr, tid=np.array(tids, np.uint32), asid=asid, meta=meta)


def file_vma(**kw):
    return Vma(BASE, BASE + 2 * PS, "file", **kw)


def scen(**kw):
    """A valid one-thread scenario over one file VMA, with some fields changed."""
    kw.setdefault("trace", tiny())
    kw.setdefault("vmas", [file_vma()])
    return Scenario(**kw)


def test_the_base_scenario_is_valid():
    with pytest.raises(KernelReached):
        simulate(scen())


# -- construction: policies, costs, distributions, VMAs, scenarios, schedules ------------------

CONSTRUCTION = [
    # policies
    case("policy-unknown-name-in-scenario", lambda: scen(policy="nopage2"),
         r"unknown policy 'nopage2'; presets are nopage, nopage_refault, "
         r".*vmlab\.Policy\(name, \*\*knobs\)"),
    case("policy-unknown-name-get_policy", lambda: get_policy("retry"),
         r"unknown policy 'retry'; presets are"),
    case("policy-not-a-name", lambda: get_policy(3), r"unknown policy 3; presets are"),
    case("policy-unknown-name-on-vma", lambda: Vma(BASE, BASE + PS, policy="nofpn"),
         r"unknown policy 'nofpn'; presets are"),
    case("policy-empty-name", lambda: Policy(""), r"a policy needs a non-empty name"),
    case("policy-name-not-str", lambda: Policy(7), r"a policy needs a non-empty name"),
    case("policy-max_retries-below-minus-1", lambda: Policy("p", max_retries=-2),
         r"policy 'p': max_retries must be an integer >= -1 \(-1 = unbounded\), got -2"),
    case("policy-drop_lock-float", lambda: Policy("p", drop_lock_attempts=1.5),
         r"policy 'p': drop_lock_attempts must be an integer >= -1 .*got 1\.5"),
    case("policy-max_retries-bool", lambda: Policy("p", max_retries=True),
         r"policy 'p': max_retries must be an integer >= -1 .*got True"),
    case("policy-interruptible-int", lambda: Policy("p", interruptible=1),
         r"policy 'p': interruptible must be True or False"),
    case("policy-eager-str", lambda: Policy("p", eager="yes"),
         r"policy 'p': eager must be True or False"),
    case("policy-check_signal-none", lambda: Policy("p", check_signal_before_retry=None),
         r"policy 'p': check_signal_before_retry must be True or False"),
    case("policy-eager-retries", lambda: Policy("e", eager=True, needs_struct_page=False, max_retries=1),
         r"policy 'e': an eager policy never waits in a fault, so it takes no retry, lock-drop or "
         r"interruptible knobs"),
    case("policy-eager-interruptible", lambda: Policy("e", eager=True, interruptible=True),
         r"policy 'e': an eager policy never waits"),
    case("policy-eager-drop-lock", lambda: Policy("e", eager=True, drop_lock_attempts=-1),
         r"policy 'e': an eager policy never waits"),
    case("policy-replace-unknown-knob", lambda: get_policy("fault_retry").replace(max_retry=3),
         r"unknown policy knob\(s\) \['max_retry'\]; knobs are \['eager', 'needs_struct_page', "
         r"'drop_lock_attempts', 'interruptible', 'max_retries', 'check_signal_before_retry', "
         r"'fault_lock', 'retry_lock', 'vma_lock_backings', 'spf_scope', 'spf_count', "
         r"'fault_completed', 'readahead_drops_lock', 'anon_vma_fallback'\]"),
    case("policy-replace-bad-value", lambda: get_policy("nopage").replace(name="r", max_retries=-3),
         r"policy 'r': max_retries must be an integer >= -1"),
    case("policy-constructor-unknown-knob", lambda: Policy("mine", max_retry=3),
         r"unknown policy knob\(s\) \['max_retry'\]"),
    case("policy-eager-check-signal",
         lambda: Policy("e", eager=True, needs_struct_page=False, check_signal_before_retry=True),
         r"policy 'e': an eager policy never waits"),
    case("policy-constructor-hint", lambda: Policy("mine", max_retry=3),
         r"knobs are \[.*\]; did you mean 'max_retries'\?"),
    case("policy-missing-name", lambda: Policy(), r"Policy: missing a required argument: 'name'"),
    case("policy-knob-beyond-int64", lambda: Policy("p", max_retries=2**63),
         r"policy 'p': max_retries must be below 2\*\*62"),

    # costs
    case("cost-negative", lambda: Costs(fault_ns=-1),
         r"cost fault_ns must be a non-negative integer number of ns, got -1"),
    case("cost-negative-float", lambda: Costs(pte_ns=-60.0),
         r"cost pte_ns must be a non-negative integer .*got -60"),
    case("cost-negative-numpy", lambda: Costs(wakeup_ns=np.int64(-3)),
         r"cost wakeup_ns must be a non-negative integer"),
    case("cost-fraction", lambda: Costs(signal_ns=1.5),
         r"cost signal_ns must be a non-negative integer .*got 1\.5"),
    case("cost-nan", lambda: Costs(access_ns=NAN),
         r"cost access_ns must be a non-negative integer .*got nan"),
    case("cost-inf", lambda: Costs(zero_fill_ns=INF),
         r"cost zero_fill_ns must be a non-negative integer"),
    case("cost-bool", lambda: Costs(driver_ns=True),
         r"cost driver_ns must be a non-negative integer .*got True"),
    case("cost-str", lambda: Costs(mmap_cs_ns="1300"),
         r"cost mmap_cs_ns must be a non-negative integer"),
    case("cost-replace-negative", lambda: Costs().replace(remap_fixed_ns=-5),
         r"cost remap_fixed_ns must be"),
    case("cost-replace-unknown", lambda: Costs().replace(fualt_ns=1),
         r"unknown cost\(s\) \['fualt_ns'\]; costs are \['access_ns', 'fault_ns', "),
    case("cost-via-scenario-replace", lambda: scen().replace(struct_page_ns=-100),
         r"cost struct_page_ns must be"),
    case("cost-io-not-a-dist", lambda: Costs(io_ns="fast"),
         r"io_ns must be a number of ns or a distribution \(Fixed, Exponential, LogNormal, Uniform, "
         r"Empirical\), got 'fast'"),
    case("cost-wait-none", lambda: Costs(wait_ns=None),
         r"wait_ns must be a number of ns or a distribution"),
    case("cost-io-nan-number", lambda: Costs(io_ns=NAN),
         r"must be a finite number of nanoseconds >= 0, got nan"),
    case("cost-io-negative-names-io_ns", lambda: Costs(io_ns=-5), r"io_ns"),

    # distributions
    case("fixed-negative", lambda: Fixed(-1),
         r"value_ns must be a finite number of nanoseconds >= 0, got -1"),
    case("fixed-nan", lambda: Fixed(NAN), r"value_ns must be a finite number .*got nan"),
    case("fixed-inf", lambda: Fixed(INF), r"value_ns must be a finite number .*got inf"),
    case("fixed-str", lambda: Fixed("8ms"), r"value_ns must be a finite number .*got '8ms'"),
    case("exponential-negative", lambda: Exponential(-1),
         r"mean_ns must be a finite number of nanoseconds >= 0, got -1"),
    case("exponential-nan", lambda: Exponential(NAN), r"mean_ns must be a finite number .*got nan"),
    case("lognormal-negative-median", lambda: LogNormal(-5, 10),
         r"median_ns must be a finite number .*got -5"),
    case("lognormal-zero-median", lambda: LogNormal(0, 10),
         r"LogNormal needs 0 < median_ns <= p99_ns, got median_ns=0, p99_ns=10"),
    case("lognormal-p99-below-median", lambda: LogNormal(100, 50),
         r"LogNormal needs 0 < median_ns <= p99_ns, got median_ns=100, p99_ns=50"),
    case("lognormal-p99-nan", lambda: LogNormal(100, NAN),
         r"LogNormal needs 0 < median_ns <= p99_ns.*p99_ns=nan"),
    case("uniform-negative-low", lambda: Uniform(-1, 5), r"low_ns must be a finite number .*got -1"),
    case("uniform-nan-low", lambda: Uniform(NAN, 5), r"low_ns must be a finite number .*got nan"),
    case("uniform-low-above-high", lambda: Uniform(10, 5), r"Uniform needs low_ns <= high_ns, got 10 > 5"),
    case("empirical-empty", lambda: Empirical([]), r"Empirical needs at least one sample"),
    case("empirical-empty-array", lambda: Empirical(np.zeros(0)),
         r"Empirical needs at least one sample"),
    case("empirical-negative", lambda: Empirical([100, -2]),
         r"Empirical samples must be finite and non-negative \(ns\)"),
    case("empirical-nan", lambda: Empirical([100, NAN]),
         r"Empirical samples must be finite and non-negative"),
    case("empirical-inf", lambda: Empirical(np.array([INF])),
         r"Empirical samples must be finite and non-negative"),
    case("uniform-nan-high", lambda: Uniform(0, NAN), r"high_ns"),
    case("uniform-inf-high", lambda: Uniform(0, INF), r"high_ns"),
    case("uniform-str-high", lambda: Uniform(0, "5"), r"high_ns"),
    case("lognormal-inf-p99", lambda: LogNormal(100, INF), r"p99_ns"),
    case("empirical-not-numbers", lambda: Empirical(["fast", "slow"]), r"Empirical samples"),
    case("fixed-beyond-int64", lambda: Fixed(1e30).table(), r"value_ns|nanoseconds"),
    case("empirical-beyond-int64", lambda: Empirical([1e30]).table(), r"Empirical|nanoseconds"),
    case("exponential-tail-beyond-int64", lambda: Exponential(1e18),
         r"Exponential\(mean_ns=1e\+18\) gives times up to .*below 2\*\*62 ns.*smaller mean_ns"),
    case("lognormal-tail-beyond-int64", lambda: LogNormal(1, 2**61), r"use a smaller p99_ns"),
    case("dist-unknown-keyword", lambda: Fixed(valu_ns=5),
         r"unknown Fixed argument\(s\) \['valu_ns'\]; its arguments are \['value_ns'\]"),

    # VMAs
    case("vma-unknown-backing", lambda: Vma(BASE, BASE + PS, backing="disk"),
         r"VMA \[0x10000, 0x11000\): unknown backing 'disk'; "
         r"backings are file, anon, device, iomem, context"),
    case("vma-unknown-backing-named", lambda: Vma(BASE, BASE + PS, backing="shm", name="heap"),
         r"VMA heap: unknown backing 'shm'"),
    case("vma-empty", lambda: Vma(BASE, BASE), r"VMA \[0x10000, 0x10000\): needs 0 <= start < end"),
    case("vma-reversed", lambda: Vma(BASE + PS, BASE, name="rev"),
         r"VMA rev: needs 0 <= start < end, got \[0x11000, 0x10000\)"),
    case("vma-negative-start", lambda: Vma(-PS, PS), r"needs 0 <= start < end, got \[-0x1000, 0x1000\)"),
    case("vma-beyond-2**64", lambda: Vma(0, 2**64 + PS), r"needs 0 <= start < end"),
    case("vma-negative-asid", lambda: Vma(BASE, BASE + PS, asid=-1), r"asid"),
    case("vma-asid-too-large", lambda: Vma(BASE, BASE + PS, asid=4096), r"asid"),
    case("vma-start-not-a-number", lambda: Vma("0x10000", BASE + PS), r"start"),
    case("vma-map-thread-not-an-id", lambda: Vma(BASE, BASE + PS, map_thread="3"), r"map_thread"),
    case("vma-unknown-keyword", lambda: Vma(BASE, BASE + PS, backign="file"),
         r"unknown Vma argument\(s\) \['backign'\].*did you mean 'backing'\?"),

    # scenario fields
    case("scenario-trace-not-a-trace", lambda: Scenario("ls.vmt"),
         r"trace must be a vmlab Trace, got str"),
    case("scenario-vma-not-a-vma", lambda: scen(vmas=[(BASE, BASE + PS)]),
         r"vmas must be Vma objects, got \(65536, 69632\)"),
    case("scenario-unknown-backing", lambda: scen(vmas=None, backing="disk"),
         r"unknown backing 'disk'; backings are file, anon, device, iomem, context"),
    case("scenario-unknown-replacement", lambda: scen(replacement="lfu"),
         r"unknown replacement 'lfu'; choose one of lru, fifo, clock"),
    case("memory_pages-zero", lambda: scen(memory_pages=0),
         r"memory_pages must be a positive integer or None, got 0"),
    case("memory_pages-negative", lambda: scen(memory_pages=-5),
         r"memory_pages must be a positive integer or None, got -5"),
    case("memory_pages-fraction", lambda: scen(memory_pages=2.5),
         r"memory_pages must be a positive integer .*got 2\.5"),
    case("memory_pages-str", lambda: scen(memory_pages="5"),
         r"memory_pages must be a positive integer .*got '5'"),
    case("fault_around-3", lambda: scen(fault_around_pages=3),
         r"fault_around_pages must be a power of two >= 1, got 3"),
    case("fault_around-12", lambda: scen(fault_around_pages=12),
         r"fault_around_pages must be a power of two >= 1, got 12"),
    case("fault_around-0", lambda: scen(fault_around_pages=0),
         r"fault_around_pages must be a power of two >= 1, got 0"),
    case("fault_around-negative", lambda: scen(fault_around_pages=-4),
         r"fault_around_pages must be a power of two"),
    case("fault_around-float", lambda: scen(fault_around_pages=16.0),
         r"fault_around_pages must be a power of two .*got 16\.0"),
    case("scenario-costs-dict", lambda: scen(costs={"io_ns": 5}),
         r"costs must be a vmlab Costs object \(Costs\(io_ns=\.\.\., \.\.\.\)\)"),
    case("scenario-signals-not-schedules", lambda: scen(signals=["poisson"]),
         r"signals must be SignalSchedule objects, got 'poisson'"),
    case("scenario-signals-a-number", lambda: scen(signals=1),
         r"signals must be SignalSchedule objects, got 1"),
    case("scenario-signals-a-word", lambda: scen(signals="poisson"),
         r"signals must be SignalSchedule objects, got 'poisson'"),
    case("scenario-unmaps-a-number", lambda: scen(unmaps=1),
         r"unmaps must be an Unmap\(record, start, end, asid\) or a list of them, got 1"),
    case("scenario-reads-a-word", lambda: scen(reads="gzip"),
         r"reads must be a FileRead\(.*\) or a list of them, got 'gzip'"),
    case("scenario-adversary-not-adversary", lambda: scen(adversary="fadvise"),
         r"adversary must be an Adversary, got 'fadvise'"),
    case("horizon-zero", lambda: scen(horizon_ns=0), r"horizon_ns must be > 0, got 0"),
    case("horizon-negative", lambda: scen(horizon_ns=-1), r"horizon_ns must be > 0, got -1"),
    case("horizon-2**62", lambda: scen(horizon_ns=2**62),
         r"horizon_ns must be below 2\*\*62 ns \(146 years\), got 4611686018427387904"),
    case("horizon-2**63", lambda: scen(horizon_ns=2**63), r"horizon_ns must be below 2\*\*62 ns"),
    case("bin-zero", lambda: scen(bin_ns=0), r"bin_ns must be > 0, got 0"),
    case("bin-negative", lambda: scen(bin_ns=-1_000_000), r"bin_ns must be > 0, got -1000000"),
    case("seed-negative", lambda: scen(seed=-1), r"seed must be in \[0, 2\*\*64\), got -1"),
    case("seed-2**64", lambda: scen(seed=2**64),
         r"seed must be in \[0, 2\*\*64\), got 18446744073709551616"),
    case("scenario-unknown-field", lambda: scen(memroy_pages=64), r"memroy_pages"),
    case("scenario-unknown-field-hint", lambda: scen(memroy_pages=64),
         r"unknown scenario field\(s\) \['memroy_pages'\]; fields are \[.*\]; "
         r"did you mean 'memory_pages'\?"),
    case("horizon-fraction", lambda: scen(horizon_ns=1.5), r"horizon_ns must be a whole number"),
    case("scenario-replace-unknown-field", lambda: scen().replace(memroy_pages=64), r"memroy_pages"),
    case("costs-unknown-field", lambda: Costs(fualt_ns=1), r"unknown cost"),
    case("memory_pages-nan", lambda: scen(memory_pages=NAN), r"memory_pages"),
    case("memory_pages-inf", lambda: scen(memory_pages=INF), r"memory_pages"),
    case("memory_pages-not-a-number", lambda: scen(memory_pages="all"), r"memory_pages"),
    case("horizon-nan", lambda: scen(horizon_ns=NAN), r"horizon_ns"),
    case("bin-nan", lambda: scen(bin_ns=NAN), r"bin_ns"),
    case("seed-nan", lambda: scen(seed=NAN), r"seed"),

    # signal schedules
    case("signals-unknown-kind", lambda: SignalSchedule("burst"),
         r"signal schedule: unknown kind 'burst'; kinds are poisson, periodic, times"),
    case("signals-poisson-zero", lambda: poisson_signals(0),
         r"signal schedule: a poisson schedule needs rate_hz > 0, got 0"),
    case("signals-poisson-negative", lambda: poisson_signals(-5),
         r"a poisson schedule needs rate_hz > 0, got -5"),
    case("signals-poisson-nan", lambda: poisson_signals(NAN),
         r"a poisson schedule needs rate_hz > 0, got nan"),
    case("signals-default-kind-needs-rate", lambda: SignalSchedule(),
         r"a poisson schedule needs rate_hz > 0"),
    case("signals-periodic-zero", lambda: periodic_signals(0),
         r"signal schedule: a periodic schedule needs period_ns > 0, got 0"),
    case("signals-periodic-negative", lambda: periodic_signals(-10),
         r"a periodic schedule needs period_ns > 0, got -10"),
    case("signals-times-unsorted", lambda: SignalSchedule("times", times_ns=[50, 30]),
         r"signal schedule: times_ns must be non-negative and sorted"),
    case("signals-times-negative", lambda: SignalSchedule("times", times_ns=[-1, 5]),
         r"times_ns must be non-negative and sorted"),
    case("signals-start-negative", lambda: poisson_signals(10, start_ns=-1),
         r"signal schedule: start_ns must be >= 0, got -1"),
    case("signals-poisson-inf", lambda: poisson_signals(INF), r"rate_hz"),
    case("signals-poisson-str", lambda: poisson_signals("10"), r"rate_hz"),
    case("signals-periodic-nan", lambda: periodic_signals(NAN), r"period_ns"),
    case("signals-start-nan", lambda: SignalSchedule("periodic", period_ns=10, start_ns=NAN),
         r"start_ns"),
    case("signals-times-nan", lambda: SignalSchedule("times", times_ns=[1, NAN]), r"times_ns"),
    case("signals-threads-not-ids", lambda: poisson_signals(10, threads=["main"]), r"threads"),
    case("signals-periodic-fraction", lambda: periodic_signals(1e9 / 3),
         r"period_ns must be a whole number of ns, got 333333333\.3"),
    case("signals-poisson-too-slow", lambda: poisson_signals(1e-12),
         r"rate_hz=1e-12 is too low.*use rate_hz >= "),
    case("signals-times-fraction", lambda: SignalSchedule("times", times_ns=[1, 2.5]),
         r"times_ns must be whole numbers of ns, got 2\.5 at position 1"),

    # adversary schedules
    case("adversary-default-needs-period", lambda: Adversary(),
         r"adversary: a periodic schedule needs period_ns > 0, got 0"),
    case("adversary-rate-without-poisson", lambda: Adversary(rate_hz=1000),
         r"adversary: a periodic schedule needs period_ns > 0, got 0 "
         r"\(rate_hz=1000 is the mean rate of kind='poisson'\)"),
    case("adversary-unknown-kind", lambda: Adversary(kind="burst"),
         r"adversary: unknown kind 'burst'; kinds are poisson, periodic, times"),
    case("adversary-poisson-zero", lambda: Adversary(kind="poisson", rate_hz=0),
         r"adversary: a poisson schedule needs rate_hz > 0, got 0"),
    case("adversary-times-unsorted", lambda: Adversary(kind="times", times_ns=(9, 1)),
         r"adversary: times_ns must be non-negative and sorted"),
    case("adversary-start-negative", lambda: Adversary(period_ns=1000, start_ns=-5),
         r"adversary: start_ns must be >= 0, got -5"),
    case("adversary-negative-first-page", lambda: Adversary(period_ns=1000, first_page=-1),
         r"first_page"),
    case("adversary-negative-n-pages", lambda: Adversary(period_ns=1000, n_pages=-1), r"n_pages"),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("make, message", CONSTRUCTION)
def test_invalid_value_is_refused_on_construction(make, message):
    with pytest.raises(ScenarioError, match=message):
        make()


# -- values that construct but would overflow the kernel's int64 -------------------------------

@pytest.mark.parametrize("make, message", [
    pytest.param(lambda: scen(costs=Costs(fault_ns=2**63)), r"fault_ns"),
    pytest.param(lambda: scen(signals=[periodic_signals(10, start_ns=2**63)]), r"start_ns"),
    pytest.param(lambda: scen(signals=[periodic_signals(2**63)]), r"period_ns"),
    pytest.param(lambda: scen(signals=[SignalSchedule("times", times_ns=[2**63])]), r"times_ns"),
    pytest.param(lambda: scen(bin_ns=2**63), r"bin_ns"),
    pytest.param(lambda: scen(fault_around_pages=2**63), r"fault_around_pages"),
    pytest.param(lambda: scen(memory_pages=2**63), r"memory_pages"),
], ids=["cost-2**63", "signal-start-2**63", "signal-period-2**63", "signal-times-2**63",
        "bin_ns-2**63", "fault_around-2**63", "memory_pages-2**63"])
def test_value_beyond_int64_is_refused_before_the_run(make, message):
    with pytest.raises(ScenarioError, match=message):
        simulate(make())


@pytest.mark.parametrize("changes", [
    {"horizon_ns": 2**62 - 1}, {"horizon_ns": 1}, {"seed": 0}, {"seed": 2**64 - 1},
    {"fault_around_pages": 16}, {"memory_pages": 3}, {"bin_ns": 1}, {"replacement": "clock"},
    {"costs": Costs(fault_ns=0, io_ns=Uniform(5, 5), wait_ns=Empirical([0, 7]))},
    {"signals": [SignalSchedule("times", times_ns=[])]},
], ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items())[:50])
def test_values_at_the_bounds_are_accepted(changes):
    with pytest.raises(KernelReached):
        simulate(scen(**changes))


# -- policies and backings: can_serve --------------------------------------------------------

REFUSED_PAIRS = [(p, b) for p in PRESETS for b in BACKINGS if can_serve(PRESETS[p], b)]
ALLOWED_PAIRS = [(p, b) for p in PRESETS for b in BACKINGS if not can_serve(PRESETS[p], b)]


def test_can_serve_refuses_exactly_the_documented_pairs():
    # eager remap_pfn_range only on device/iomem; nopfn (no struct page) not on file/anon;
    # iomem under a struct-page policy is a simulated SIGBUS, not a configuration error
    assert sorted(REFUSED_PAIRS) == sorted(
        [("remap_pfn_range", b) for b in ("file", "anon", "context")]
        + [("nopfn", b) for b in ("file", "anon")])


@pytest.mark.parametrize("policy, backing", REFUSED_PAIRS)
def test_policy_that_cannot_serve_a_backing_is_refused(policy, backing):
    sc = scen(vmas=[Vma(BASE, BASE + 2 * PS, backing, name="buf")])
    if PRESETS[policy].eager:
        fix = r"use it on 'device' or 'iomem' VMAs"
        why = r"maps everything at mmap\(\) time"
    else:
        fix = r"use a nopage-family policy there"
        why = r"returns a PFN with no struct page"
    msg = rf"VMA buf: policy '{policy}' {why} and cannot serve a '{backing}' VMA .*{fix}"
    with pytest.raises(ScenarioError, match=msg):
        sc.validate(policy)
    with pytest.raises(ScenarioError, match=msg):
        simulate(sc, policy)
    with pytest.raises(ScenarioError, match=msg):
        simulate(sc.replace(policy=policy))
    with pytest.raises(ScenarioError, match=msg):
        compare(sc, [policy, "nopage"], n_jobs=1)
    # the same policy given to the VMA itself: the run's policy does not matter
    own = scen(vmas=[Vma(BASE, BASE + 2 * PS, backing, name="buf", policy=policy)])
    with pytest.raises(ScenarioError, match=msg):
        simulate(own, "nopage")
    # a variant built from knobs is refused the same way, under its own name
    variant = PRESETS[policy].replace(name="mine")
    with pytest.raises(ScenarioError, match=rf"VMA buf: policy 'mine' {why}"):
        sc.validate(variant)


@pytest.mark.parametrize("policy, backing", ALLOWED_PAIRS)
def test_policy_that_can_serve_a_backing_passes(policy, backing):
    pol, _, pols = scen(vmas=[Vma(BASE, BASE + 2 * PS, backing)]).validate(policy)
    assert pol is PRESETS[policy] and pols == (PRESETS[policy],)


def test_inferred_vmas_are_checked_against_the_policy():
    sc = Scenario(tiny(), backing="file")
    with pytest.raises(ScenarioError, match=r"policy 'remap_pfn_range' maps everything .*'file' VMA"):
        simulate(sc, "remap_pfn_range")
    with pytest.raises(ScenarioError, match=r"policy 'nopfn' returns a PFN with no struct page"):
        simulate(sc, "nopfn")


def test_a_vma_policy_override_that_can_serve_is_kept():
    sc = scen(vmas=[file_vma(), Vma(BASE + 4 * PS, BASE + 5 * PS, "device", policy="remap_pfn_range")],
              trace=tiny(pages=(0, 1, 4)))
    _, _, pols = sc.validate("nopage")
    assert [p.name for p in pols] == ["nopage", "remap_pfn_range"]


# -- validate(): VMA layout, adversary -------------------------------------------------------

VALIDATE = [
    case("overlap", lambda: scen(vmas=[Vma(BASE, BASE + 3 * PS, name="a"),
                                       Vma(BASE + 2 * PS, BASE + 4 * PS, name="b")]),
         r"VMAs a and b overlap in address space 0; make their ranges disjoint"),
    case("overlap-given-in-reverse", lambda: scen(vmas=[Vma(BASE + 2 * PS, BASE + 4 * PS, name="b"),
                                                       Vma(BASE, BASE + 3 * PS, name="a")]),
         r"VMAs a and b overlap in address space 0"),
    case("overlap-identical", lambda: scen(vmas=[file_vma(), file_vma()]),
         r"VMAs \[0x10000, 0x12000\) and \[0x10000, 0x12000\) overlap in address space 0"),
    case("overlap-contained", lambda: scen(vmas=[Vma(BASE, BASE + 8 * PS, name="big"),
                                                 Vma(BASE + PS, BASE + 2 * PS, name="small")]),
         r"VMAs big and small overlap"),
    case("overlap-in-asid-3", lambda: scen(trace=tiny(asids=(3, 3)),
                                           vmas=[Vma(BASE, BASE + 2 * PS, asid=3, name="x"),
                                                 Vma(BASE + PS, BASE + 3 * PS, asid=3, name="y")]),
         r"VMAs x and y overlap in address space 3"),
    case("unaligned-start", lambda: scen(vmas=[Vma(BASE + 8, BASE + 2 * PS, name="odd")]),
         r"VMA odd is not aligned to the page size 4096"),
    case("unaligned-end", lambda: scen(vmas=[Vma(BASE, BASE + 2 * PS - 1)]),
         r"VMA \[0x10000, 0x11fff\) is not aligned to the page size 4096"),
    case("unaligned-for-8k-pages",
         lambda: scen(trace=tiny(pages=(0,), meta=TraceMeta(page_size=8192)),
                      vmas=[Vma(BASE + PS, BASE + 4 * PS)]),
         r"VMA \[0x11000, 0x14000\) is not aligned to the page size 8192"),
    case("adversary-no-file-vma", lambda: scen(vmas=[Vma(BASE, BASE + 2 * PS, "anon")],
                                               adversary=Adversary(period_ns=1000)),
         r"the adversary needs a file VMA and the scenario has none"),
    case("adversary-no-file-vma-inferred", lambda: Scenario(tiny(), backing="device", policy="nopfn",
                                                            adversary=Adversary(period_ns=1000)),
         r"the adversary needs a file VMA and the scenario has none"),
    case("adversary-unknown-vma-name", lambda: scen(vmas=[file_vma(name="data")],
                                                    adversary=Adversary(period_ns=1000, vma="heap")),
         r"adversary: no VMA named 'heap'; names are \['data'\]"),
    case("adversary-vma-index-out-of-range", lambda: scen(adversary=Adversary(period_ns=1000, vma=1)),
         r"adversary: VMA index 1 out of range \(0\.\.0\)"),
    case("adversary-vma-index-negative", lambda: scen(adversary=Adversary(period_ns=1000, vma=-1)),
         r"adversary: VMA index -1 out of range"),
    case("adversary-on-anon-vma",
         lambda: scen(vmas=[file_vma(), Vma(BASE + 4 * PS, BASE + 5 * PS, "anon", name="heap")],
                      trace=tiny(pages=(0, 4)), adversary=Adversary(period_ns=1000, vma="heap")),
         r"adversary: VMA heap is 'anon'; fadvise\(FADV_DONTNEED\) acts on file VMAs"),
    case("adversary-range-outside-vma",
         lambda: scen(adversary=Adversary(period_ns=1000, first_page=99)), r"first_page"),
    case("adversary-range-past-vma-end",
         lambda: scen(adversary=Adversary(period_ns=1000, first_page=1, n_pages=2)),
         r"adversary: first_page \+ n_pages = 3 goes past the end of VMA .*use n_pages <= 1"),
]


@pytest.mark.parametrize("make, message", VALIDATE)
def test_invalid_layout_is_refused_by_validate_and_simulate(make, message):
    sc = make()
    with pytest.raises(ScenarioError, match=message):
        sc.validate()
    with pytest.raises(ScenarioError, match=message):
        simulate(sc)


def test_equal_ranges_in_different_address_spaces_do_not_overlap():
    sc = scen(trace=tiny(asids=(0, 1)),
              vmas=[Vma(BASE, BASE + 2 * PS, asid=0), Vma(BASE, BASE + 2 * PS, asid=1)])
    sc.validate()
    with pytest.raises(KernelReached):
        simulate(sc)


def test_adjacent_vmas_do_not_overlap():
    sc = scen(vmas=[Vma(BASE, BASE + PS), Vma(BASE + PS, BASE + 2 * PS)])
    with pytest.raises(KernelReached):
        simulate(sc)


# -- simulate(): what needs the trace (records, threads, schedules) --------------------------

SIMULATE = [
    case("record-outside-every-vma", lambda: scen(vmas=[Vma(BASE, BASE + PS)]),
         r"record 1 \(thread 0, address 0x11008, address space 0\) is in no VMA; add a VMA that "
         r"covers it \(or leave vmas=None to infer them from the trace\)"),
    case("record-in-another-address-space", lambda: scen(trace=tiny(asids=(0, 2))),
         r"record 1 \(thread 0, address 0x11008, address space 2\) is in no VMA"),
    case("no-vmas-at-all", lambda: scen(vmas=[]),
         r"record 0 \(thread 0, address 0x10000, address space 0\) is in no VMA"),
    case("record-of-thread-7-outside", lambda: scen(trace=tiny(tids=(3, 7), pages=(0, 5))),
         r"record 1 \(thread 7, address 0x15008, address space 0\) is in no VMA"),
    case("empty-trace", lambda: scen(trace=Trace(np.zeros(0, np.uint64))),
         r"the trace has no records; nothing to simulate"),
    case("memory-too-small-1-thread", lambda: scen(memory_pages=2),
         r"memory_pages=2 is too small for 1 threads: every in-flight or pinned page needs a frame; "
         r"use at least 3"),
    case("memory-too-small-2-threads", lambda: scen(trace=tiny(tids=(1, 2)), memory_pages=4),
         r"memory_pages=4 is too small for 2 threads.*use at least 5"),
    case("signal-thread-not-in-trace", lambda: scen(signals=[poisson_signals(100, threads=[7])]),
         r"signal schedule names thread 7, which is not in the trace \(threads: \[0\]\.\.\.\)"),
    case("signal-thread-not-in-trace-2", lambda: scen(trace=tiny(tids=(1, 2)),
                                                      signals=[periodic_signals(10**6, threads=[2, 3])]),
         r"signal schedule names thread 3, which is not in the trace \(threads: \[1, 2\]"),
    case("two-schedules-every-thread",
         lambda: scen(signals=[poisson_signals(100), periodic_signals(10**6)]),
         r"thread 0 has two signal schedules; give each thread one"),
    case("two-schedules-explicit", lambda: scen(trace=tiny(tids=(1, 2)),
                                                signals=[poisson_signals(100, threads=[2]),
                                                         periodic_signals(10**6, threads=[1, 2])]),
         r"thread 2 has two signal schedules; give each thread one"),
    case("two-schedules-same-list", lambda: scen(signals=[poisson_signals(100, threads=[0, 0])]),
         r"thread 0 has two signal schedules"),
    case("map-thread-not-in-trace",
         lambda: scen(vmas=[Vma(BASE, BASE + 2 * PS, "device", name="bar", map_thread=9)],
                      policy="remap_pfn_range"),
         r"VMA bar: map_thread 9 is not a thread of the trace"),
    case("preload-outside-every-vma", lambda: scen(preload=[BASE + 100 * PS]),
         r"preload address 0x74000 is in no VMA; preload only pages of file VMAs"),
    case("io-dist-nan-at-run", lambda: scen(costs=Costs(io_ns=Uniform(0, NAN))),
         r"Uniform\(low_ns=0, high_ns=nan\) gives negative or infinite times"),
    case("wait-dist-inf-at-run", lambda: scen(costs=Costs(wait_ns=LogNormal(10, INF))),
         r"LogNormal\(median_ns=10, p99_ns=inf\) gives negative or infinite times"),
    case("preload-negative", lambda: scen(preload=[-PS]), r"preload"),
    case("preload-not-addresses", lambda: scen(preload=["0x10000"]), r"preload"),
]


@pytest.mark.parametrize("make, message", SIMULATE)
def test_invalid_run_is_refused_by_simulate(make, message):
    with pytest.raises(ScenarioError, match=message):
        simulate(make())


def test_an_asid_the_engine_cannot_key_is_refused_where_the_trace_is_made():
    with pytest.raises(TraceFormatError) as e:
        tiny(asids=(0, 4096))
    assert str(e.value) == ("column 'asid': record 1 has asid 4096; expected an address-space "
                            "id below 4096 (the engine keys pages by 12 asid bits)")


def test_vma_ending_at_the_top_of_an_address_space_is_accepted():
    tr = Trace(np.array([2**64 - PS], np.uint64), asid=np.array([1], np.uint16))
    sc = Scenario(tr, vmas=[Vma(2**64 - 2 * PS, 2**64, asid=1)])
    with pytest.raises(KernelReached):
        simulate(sc)


def test_vma_ending_at_the_top_of_address_space_0_is_accepted():
    sc = Scenario(Trace(np.array([2**64 - PS], np.uint64)), vmas=[Vma(2**64 - 2 * PS, 2**64)])
    with pytest.raises(KernelReached):
        simulate(sc)


# -- the front doors: simulate, compare, sweep -----------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda sc: simulate(sc, "nopage2"), r"unknown policy 'nopage2'; presets are"),
    (lambda sc: sc.validate("fault-retry"), r"unknown policy 'fault-retry'"),
    (lambda sc: compare(sc, ["nopage", "nopfnn"], n_jobs=1), r"unknown policy 'nopfnn'"),
    (lambda sc: sweep(sc, {"policy": ["nopage", "bogus"]}, n_jobs=1), r"unknown policy 'bogus'"),
    (lambda sc: sweep(sc, {"memroy_pages": [8]}, n_jobs=1),
     r"unknown sweep key\(s\) \['memroy_pages'\]: use scenario fields .*costs .*or policy knobs"),
    (lambda sc: sweep(sc, {"max_retries": [1, -5]}, n_jobs=1),
     r"policy 'nopage\(max_retries=-5\)': max_retries must be an integer >= -1"),
    (lambda sc: sweep(sc, {"fault_ns": [500, -1]}, n_jobs=1),
     r"cost fault_ns must be a non-negative integer"),
    (lambda sc: sweep(sc, {"horizon_ns": [10**9, 0]}, n_jobs=1), r"horizon_ns must be > 0, got 0"),
    (lambda sc: sweep(sc, {"policy": ["nopfn", "nopage"]}, n_jobs=1), r"policy 'nopfn' returns a PFN"),
    pytest.param(lambda sc: sweep(sc, {"policy": ["nopage", "nopfn"]}, n_jobs=1),
                 r"policy 'nopfn' returns a PFN"),
    pytest.param(lambda sc: compare(sc, ["nopage", "nopfn"], n_jobs=1),
                 r"policy 'nopfn' returns a PFN"),
    pytest.param(lambda sc: sweep(sc, {"memory_pages": [64, 2]}, n_jobs=1),
                 r"memory_pages=2 is too small"),
    pytest.param(lambda sc: sweep(sc, {"signals": [(), [poisson_signals(10, threads=[7])]]},
                                  n_jobs=1),
                 r"signal schedule names thread 7"),
    pytest.param(lambda sc: sweep(sc, {"memroy_pages": [8]}, n_jobs=1),
                 r"did you mean 'memory_pages'\?"),
], ids=["simulate-unknown-policy", "validate-unknown-policy", "compare-unknown-policy",
        "sweep-unknown-policy", "sweep-unknown-key", "sweep-bad-knob", "sweep-negative-cost",
        "sweep-bad-horizon", "sweep-policy-cannot-serve-first", "sweep-policy-cannot-serve-later",
        "compare-policy-cannot-serve-later", "sweep-memory-too-small-later",
        "sweep-signal-thread-later", "sweep-unknown-key-hint"])
def test_front_doors_refuse_before_any_run(call, message):
    with pytest.raises(ScenarioError, match=message):
        call(scen())


# -- a refusal leaves the user's inputs as they were -----------------------------------------

def _frozen_trace():
    tid = np.array([2, 1, 2, 1], np.uint32)
    addr = np.array([BASE, BASE + PS + 8, BASE + 8 * PS, BASE + PS], np.uint64)
    gap_ns = np.array([5, 0, 7, 3], np.uint64)
    arrays = {"tid": tid, "addr": addr, "gap_ns": gap_ns}
    for a in arrays.values():
        a.setflags(write=False)  # an in-place write anywhere in validation raises at once
    return Trace(addr, tid=tid, gap_ns=gap_ns), arrays


REFUSALS = [
    ("record-outside", {"vmas": [Vma(BASE, BASE + 2 * PS)]}, "nopage"),
    ("cannot-serve", {"vmas": [Vma(BASE, BASE + 9 * PS)]}, "nopfn"),
    ("overlap", {"vmas": [Vma(BASE, BASE + 9 * PS), Vma(BASE + 8 * PS, BASE + 10 * PS)]}, "nopage"),
    ("two-schedules", {"vmas": [Vma(BASE, BASE + 9 * PS)],
                       "signals": [poisson_signals(10), poisson_signals(20, threads=[1])]}, "nopage"),
    ("unknown-thread",
     {"vmas": [Vma(BASE, BASE + 9 * PS)], "signals": [poisson_signals(10, threads=[4])]}, "nopage"),
    ("memory-too-small", {"vmas": [Vma(BASE, BASE + 9 * PS)], "memory_pages": 4}, "nopage"),
    ("adversary-no-file",
     {"vmas": [Vma(BASE, BASE + 9 * PS, "anon")], "adversary": Adversary(period_ns=10)}, "nopage"),
    ("preload-outside",
     {"vmas": [Vma(BASE, BASE + 9 * PS)], "preload": np.array([BASE + 50 * PS], np.uint64)}, "nopage"),
]


@pytest.mark.parametrize("fields, policy", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_refused_scenario_leaves_its_inputs_untouched(fields, policy):
    trace, arrays = _frozen_trace()
    copies = {k: v.copy() for k, v in arrays.items()}
    columns = dict(trace.columns)
    vmas = list(fields["vmas"])
    signals = list(fields.get("signals", ()))
    preload = fields.get("preload")
    preload_copy = None if preload is None else preload.copy()
    sc = Scenario(trace, **fields)
    before = (sc.vmas, sc.signals, sc.costs, sc.policy, sc.memory_pages, sc.adversary)

    with pytest.raises(ScenarioError):
        simulate(sc, policy)

    # the trace: same column objects, same dtypes, same values, still read-only
    assert trace.columns.keys() == columns.keys()
    for k, col in trace.columns.items():
        assert col is columns[k]
    for k, a in arrays.items():
        assert trace.columns[k] is a and a.dtype == copies[k].dtype
        assert np.array_equal(a, copies[k]) and not a.flags.writeable
    assert len(trace) == 4 and trace.n_threads == 2
    # the user's lists and arrays, and the scenario itself
    assert list(fields["vmas"]) == vmas and all(a is b for a, b in zip(fields["vmas"], vmas, strict=True))
    assert list(fields.get("signals", ())) == signals
    if preload is not None:
        assert np.array_equal(preload, preload_copy)
    assert (sc.vmas, sc.signals, sc.costs, sc.policy, sc.memory_pages, sc.adversary) == before
    assert PRESETS[policy] == get_policy(policy)


def test_a_refusal_does_not_poison_the_next_run():
    """After a refused run the same trace (cached index and all) and the same scenario with a
    policy that can serve it go through."""
    trace, _ = _frozen_trace()
    sc = Scenario(trace, vmas=[Vma(BASE, BASE + 9 * PS)])
    with pytest.raises(ScenarioError, match=r"policy 'nopfn'"):
        simulate(sc, "nopfn")
    with pytest.raises(KernelReached):
        simulate(sc, "nopage")
    with pytest.raises(ScenarioError, match=r"is in no VMA"):
        simulate(Scenario(trace, vmas=[Vma(BASE, BASE + PS)]))
    with pytest.raises(KernelReached):
        simulate(sc)


def test_refused_variants_leave_the_presets_untouched():
    presets = dict(PRESETS)
    with pytest.raises(ScenarioError):
        get_policy("fault_retry").replace(max_retries=-7)
    with pytest.raises(ScenarioError):
        get_policy("fault_retry").replace(max_retry=1)
    with pytest.raises(ScenarioError):
        sweep(scen(), {"max_retries": [-5]}, n_jobs=1)
    assert PRESETS == presets and all(PRESETS[k] is presets[k] for k in presets)
    costs = Costs()
    with pytest.raises(ScenarioError):
        costs.replace(io_ns=-1)
    assert costs == Costs()


def test_the_vma_asid_bound_is_the_engines():
    prepare = importlib.import_module("vmlab.engine.prepare")
    from vmlab.model.scenario import MAX_ASIDS
    assert MAX_ASIDS == 1 << prepare._ASID_BITS


def test_scenario_keeps_its_own_copy_of_the_preload():
    preload = np.array([BASE], np.uint64)
    sc = scen(preload=preload)
    preload[0] = BASE + 100 * PS  # would be outside every VMA if the scenario shared the array
    assert sc.preload.tolist() == [BASE] and not sc.preload.flags.writeable
    with pytest.raises(KernelReached):
        simulate(sc)


def test_scenario_keeps_its_own_copy_of_the_vma_list():
    vmas = [file_vma()]
    sc = scen(vmas=vmas)
    vmas.append(Vma(BASE, BASE + PS))  # would overlap if the scenario shared the list
    sc.validate()
    assert len(sc.vmas) == 1
