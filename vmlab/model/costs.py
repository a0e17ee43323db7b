"""Costs of the model (MODEL.md section 5) and the distributions of random costs.

Every random quantity is drawn from a *quantile table*: ``K = 65536`` integer-nanosecond
quantiles at ``(i + 0.5) / K``.  The engine and the reference simulator index the same table
with the same counter-based random bits (``docs/model.md`` section 1), so runs are bit-for-bit
reproducible in any process.

Every cost and every value a distribution can give must be below ``2**62`` ns (146 years,
:data:`MAX_NS`): the engine keeps times in int64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from ..errors import ScenarioError
from ..trace.model import DOWNGRADES, MAX_CALL, Call
from ._checks import (LIMIT, LIMIT_TEXT, as_whole, checked_keywords, is_finite_number, is_number,
                      unknown_names)

#: Costs and distribution values must be below this (2**62 ns, 146 years): times are int64.
MAX_NS = LIMIT
#: At most this many cache lines per lock operation (``*_lock_*_lines``): a lock operation
#: writes a word or two; the bound keeps ``line_ns * lines * threads`` far from overflow.
MAX_LOCK_LINES = 64

TABLE_BITS = 16
TABLE_SIZE = 1 << TABLE_BITS


def _midpoints():
    return (np.arange(TABLE_SIZE, dtype=np.float64) + 0.5) / TABLE_SIZE


def _ndtri(p):
    """Inverse of the standard normal CDF (Acklam's rational approximation, |err| < 1.2e-9,
    refined by one Newton step with math.erfc)."""
    p = np.asarray(p, dtype=np.float64)
    a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
         1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
    b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
         6.680131188771972e+01, -1.328068155288572e+01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
         -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
         3.754408661907416e+00]
    plow = 0.02425
    x = np.empty_like(p)
    lo = p < plow
    hi = p > 1 - plow
    mid = ~(lo | hi)
    q = np.sqrt(-2 * np.log(p[lo]))
    x[lo] = (((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q+c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q+1)
    q = np.sqrt(-2 * np.log(1 - p[hi]))
    x[hi] = -(((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q+c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q+1)
    q = p[mid] - 0.5
    r = q * q
    x[mid] = (((((a[0]*r+a[1])*r+a[2])*r+a[3])*r+a[4])*r+a[5])*q / (((((b[0]*r+b[1])*r+b[2])*r+b[3])*r+b[4])*r+1)
    erfc = np.vectorize(math.erfc)
    e = 0.5 * erfc(-x / math.sqrt(2)) - p
    u = e * math.sqrt(2 * math.pi) * np.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


class Dist:
    """A distribution of a non-negative time in nanoseconds."""

    kind = "dist"

    def table(self):
        """The int64 quantile table the engine draws from (``TABLE_SIZE`` entries; read-only,
        computed once per distribution object: sweeps and compares reuse it)."""
        cached = self.__dict__.get("_table")
        if cached is not None:
            return cached
        table = self._table_uncached()
        table.setflags(write=False)
        object.__setattr__(self, "_table", table)  # (frozen dataclass: a cache, not a field)
        return table

    def _table_uncached(self):
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.rint(self._quantiles(_midpoints()))
        if not np.all(np.isfinite(q)) or q.min() < 0:
            raise ScenarioError(f"{self!r} gives negative or infinite times")
        if q.max() >= MAX_NS:
            raise ScenarioError(f"{self!r} gives times up to {q.max():.3g} ns; a distribution's "
                                f"times must be below {LIMIT_TEXT} ns (146 years)")
        return q.astype(np.int64)

    def table_mean_ns(self):
        """Mean of what the engine actually draws (the table's mean)."""
        return float(self.table().mean())

    def describe(self):
        return repr(self)

    def _check_largest(self, names):
        """Refuse a distribution whose largest table entry (the last midpoint's quantile: every
        quantile function is increasing) would not fit the engine's times."""
        with np.errstate(over="ignore", invalid="ignore"):
            top = float(np.rint(self._quantiles(np.array([(TABLE_SIZE - 0.5) / TABLE_SIZE]))[0]))
        if not top < MAX_NS:
            raise ScenarioError(f"{self!r} gives times up to {top:.3g} ns; they must stay below "
                                f"{LIMIT_TEXT} ns (146 years): use a smaller {names}")


@checked_keywords()
@dataclass(frozen=True)
class Fixed(Dist):
    """Always ``value_ns``."""

    value_ns: float
    kind = "fixed"

    def __post_init__(self):
        _check_nonneg("value_ns", self.value_ns, self)

    def _quantiles(self, u):
        return np.full_like(u, float(self.value_ns))


@checked_keywords()
@dataclass(frozen=True)
class Exponential(Dist):
    """Exponential with mean ``mean_ns`` (the gaps of a Poisson process)."""

    mean_ns: float
    kind = "exponential"

    def __post_init__(self):
        _check_nonneg("mean_ns", self.mean_ns, self)
        self._check_largest("mean_ns")

    def _quantiles(self, u):
        return -float(self.mean_ns) * np.log1p(-u)


@checked_keywords()
@dataclass(frozen=True)
class LogNormal(Dist):
    """Log-normal given by its median and 99th percentile (both in ns)."""

    median_ns: float
    p99_ns: float
    kind = "lognormal"

    def __post_init__(self):
        _check_nonneg("median_ns", self.median_ns, self)
        if not is_number(self.p99_ns):
            _check_nonneg("p99_ns", self.p99_ns, self)
        if not self.p99_ns >= self.median_ns > 0:
            raise ScenarioError(
                f"LogNormal needs 0 < median_ns <= p99_ns, got median_ns={self.median_ns}, "
                f"p99_ns={self.p99_ns}")
        _check_nonneg("p99_ns", self.p99_ns, self)
        self._check_largest("p99_ns (relative to median_ns)")

    @property
    def sigma(self):
        return math.log(self.p99_ns / self.median_ns) / 2.3263478740408408

    def _quantiles(self, u):
        return float(self.median_ns) * np.exp(self.sigma * _ndtri(u))


@checked_keywords()
@dataclass(frozen=True)
class Uniform(Dist):
    """Uniform on ``[low_ns, high_ns]``."""

    low_ns: float
    high_ns: float
    kind = "uniform"

    def __post_init__(self):
        _check_nonneg("low_ns", self.low_ns, self)
        _check_nonneg("high_ns", self.high_ns, self)
        if self.high_ns < self.low_ns:
            raise ScenarioError(f"Uniform needs low_ns <= high_ns, got {self.low_ns} > {self.high_ns}")

    def _quantiles(self, u):
        return self.low_ns + (self.high_ns - self.low_ns) * u


@checked_keywords()
@dataclass(frozen=True, eq=False)
class Empirical(Dist):
    """The empirical distribution of measured samples (ns)."""

    samples_ns: tuple
    kind = "empirical"

    def __init__(self, samples_ns):
        arr = _samples(samples_ns)
        if len(arr) == 0:
            raise ScenarioError("Empirical needs at least one sample")
        if not np.all(np.isfinite(arr)) or arr.min() < 0:
            raise ScenarioError("Empirical samples must be finite and non-negative (ns)")
        if arr.max() >= MAX_NS:
            raise ScenarioError(f"Empirical samples must be below {LIMIT_TEXT} ns (146 years), "
                                f"got a sample of {arr.max():.3g} ns")
        object.__setattr__(self, "samples_ns", tuple(np.sort(arr).tolist()))

    def _quantiles(self, u):
        return np.quantile(np.asarray(self.samples_ns), u, method="inverted_cdf")

    def __repr__(self):
        return f"Empirical({len(self.samples_ns)} samples)"

    def __eq__(self, other):
        return isinstance(other, Empirical) and self.samples_ns == other.samples_ns

    def __hash__(self):
        return hash(self.samples_ns)


def _samples(samples_ns):
    """Empirical samples as a 1-D float64 array; refuses anything but numbers."""
    bad = ScenarioError(f"Empirical samples must be finite and non-negative numbers of ns, got "
                        f"{samples_ns!r}"[:200])
    try:
        raw = np.asarray(samples_ns)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    raw = raw.reshape(-1)
    if raw.dtype.kind == "O":
        if not all(is_number(x) for x in raw.tolist()):
            raise bad
    elif raw.dtype.kind not in "iuf":
        raise bad
    return raw.astype(np.float64)


def _check_nonneg(name, v, dist=None):
    """A distribution parameter: a finite number of ns in [0, 2**62); ``dist`` (the
    distribution being built) is named in the message."""
    where = f"{dist!r}: " if dist is not None else ""
    if not is_number(v):
        raise ScenarioError(f"{where}{name} must be a finite number of nanoseconds >= 0, got {v!r}")
    if not is_finite_number(v) or v < 0:
        where = f"{dist!r} gives negative or infinite times; " if dist is not None else ""
        raise ScenarioError(f"{where}{name} must be a finite number of nanoseconds >= 0, got {v!r}")
    if v >= MAX_NS:
        raise ScenarioError(f"{where}{name} must be below {LIMIT_TEXT} ns (146 years), got {v!r}")


def as_dist(value, name="value"):
    """A number means :class:`Fixed`; a Dist is returned as is."""
    if isinstance(value, Dist):
        return value
    if is_number(value):
        _check_nonneg(name, value)
        return Fixed(float(value))
    raise ScenarioError(f"{name} must be a number of ns or a distribution (Fixed, Exponential, "
                        f"LogNormal, Uniform, Empirical), got {value!r}")


#: Measured random 4 KiB major faults on NVMe: median 70 us, p99 about 110 us.
NVME = LogNormal(median_ns=70_000, p99_ns=110_000)
#: A disk seek and rotation, from the literature: 8 ms.
HDD = Fixed(8_000_000)
#: spufs: a wait of up to one 100 ms time slice.
SPUFS = Uniform(0, 100_000_000)
#: The costs that are distributions (the rest are whole numbers).
DIST_COSTS = ("io_ns", "wait_ns", "lock_wakeup_ns", "io_wakeup_ns")


@checked_keywords(lambda unknown: unknown_names("cost", unknown, "costs", cost_names()))
@dataclass(frozen=True)
class Costs:
    """Costs in nanoseconds (defaults: MODEL.md section 5).

    ``wakeup_ns`` is vmlab's addition: the delay between the completion of a blocking wait
    (I/O, context) and the woken thread running again (scheduler wake-up on an idle CPU,
    a few microseconds).  It is the window in which an ``fadvise`` adversary can evict a page
    that a lock-dropping fault read but has not mapped yet.
    """

    access_ns: int = 1
    fault_ns: int = 500
    zero_fill_ns: int = 700
    pagecache_hit_ns: int = 800
    struct_page_ns: int = 100
    driver_ns: int = 300
    pte_ns: int = 200
    remap_fixed_ns: int = 20_000
    signal_ns: int = 2_600
    mmap_cs_ns: int = 3_900
    wakeup_ns: int = 2_000
    #: Copying a 4 KiB page (a COW fault on a private file page, docs/model.md section 11.2);
    #: no host measurement yet, so the cost of clearing one (``zero_fill_ns``): both stream
    #: one page through the cache.
    copy_page_ns: int = 700
    vma_lookup_ns: int = 0
    mmap_lock_line_ns: int = 0
    vma_lock_line_ns: int = 0
    #: Cache lines a lock operation writes, each of which waits for the word's other users
    #: (docs/model.md 15.1, 15.11): an acquisition or a release costs ``line_ns * n`` per
    #: line.  Default 1: one line per operation, the model before lines were counted.  The
    #: kernel's counts (``mmap_lock``: 2 per acquisition, the count and the owner on two
    #: lines, 1 per release; a VMA lock: 1 and 1) are
    #: :data:`vmlab.studies.ladder.LOCK_LINES`.
    mmap_lock_acquire_lines: int = 1
    mmap_lock_release_lines: int = 1
    vma_lock_acquire_lines: int = 1
    vma_lock_release_lines: int = 1
    #: Work every fault's handler does on machine-wide state (docs/model.md 15.1): the page
    #: allocator's free lists, the LRU lists, the memcg counters.  Each attempt's handler
    #: costs this times the number of *other* threads inside a fault (any address space, from
    #: the access that misses to the fault's end) at its grant.  Default 0.
    fault_shared_ns: int = 0
    #: Lines of fields that share a VMA lock word's line which a VMA-locked handler reads
    #: after its acquisition (docs/model.md 15.1, 15.11: ``vm_page_prot`` and ``vm_flags``
    #: after the zero-fill, when the lock sat in ``vm_area_struct``'s first line).  Each is one
    #: transfer, ``line_miss_ns``, when another thread acquired or released that VMA's lock
    #: since the attempt's grant, else free.  Default 0 (from 0 to 64).
    vma_lock_reread_lines: int = 0
    #: One cache-line transfer that no other CPU queues for (a re-read's miss), ns.
    line_miss_ns: int = 0
    #: A ``LOCK_R`` record of size 0 (a reader of ``mmap_lock`` that is not a fault, whose
    #: hold the trace does not give; docs/model.md 15.9) holds the lock this long: one
    #: ``mincore`` of 64 pages on this host (1.6 µs, best of 2,000; scripts/mmap_readers.c).
    mmap_read_cs_ns: int = 1_600
    #: A ``LOCK_W`` record that names its call (the trace's ``call`` column, docs/model.md
    #: 15.12) holds ``mmap_lock`` for write this long instead of ``mmap_cs_ns``: the call's
    #: time on this host for ebizzy's 512 KiB chunk, medians of 2,001 calls, single-threaded
    #: (``scripts/writer_calls.c``, three runs: mmap 2.8-3.5 µs, munmap of the filled chunk
    #: 29.6-37.4 µs, mprotect to read-only 10.8-14.8 µs, mremap moving it 9.3-13.4 µs, a brk
    #: raising the break by it 1.7-2.1 µs; earlier runs gave mmap 2.1-2.8 µs and munmap
    #: 30-37 µs).  A brk that lowers the break is an munmap.
    hold_mmap_ns: int = 2_800
    hold_munmap_ns: int = 33_000
    hold_mprotect_ns: int = 11_000
    hold_mremap_ns: int = 12_000
    hold_brk_ns: int = 1_800
    #: The first part of an ``munmap``'s hold (``hold_munmap_ns``), for write: its split and
    #: detach, up to ``mmap_write_downgrade()``; the rest (the zap and the frees) it holds
    #: ``mmap_lock`` for read (docs/model.md 15.13).  The downgrade's tracepoint
    #: (``mmap_lock_acquire_returned`` with ``write=false``) on this host, 512 KiB filled chunk,
    #: medians of 2,001 calls, three runs (``scripts/munmap_downgrade.c`` under ``perf record
    #: -e 'mmap_lock:*'``): write part 3.0-4.4 µs, read part 26.7-32.4 µs, hold 29.7-37.2 µs.
    #: ``munmap_write_ns >= hold_munmap_ns``: no downgrade (write to the release).
    munmap_write_ns: int = 3_700
    io_ns: Dist = NVME
    wait_ns: Dist = SPUFS
    #: A thread granted a lock it waited for (``mmap_lock``, or a writer's wait for its VMAs'
    #: readers) runs this long after the grant: its wake-up and its wait for a CPU, drawn
    #: once per wake-up.  It holds the lock meanwhile, as the kernel's ``rwsem_mark_wake()``
    #: grants woken readers before they run (docs/model.md 15.14).  Default 0: the woken
    #: thread runs at once (an idle machine's few microseconds are left out, as before); on a
    #: machine whose CPUs are all busy it is the scheduler's run-queue latency, milliseconds.
    lock_wakeup_ns: Dist = Fixed(0)
    #: A thread whose wait for I/O or for a context has completed runs ``wakeup_ns`` plus
    #: this long after the completion: its wait for a CPU, drawn once per such wake-up
    #: (docs/model.md 15.14).  A fault that holds its lock across the wait (``nopage``,
    #: ``per_vma_no_retry``, ``VM_FAULT_COMPLETED``) holds it meanwhile.  Default 0: an idle
    #: machine, the model before it; when every CPU is busy it is the scheduler's run-queue
    #: latency, as for ``lock_wakeup_ns`` (``vmlab calibrate --lock-wakeups`` measures both).
    io_wakeup_ns: Dist = Fixed(0)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in DIST_COSTS:
                object.__setattr__(self, f.name, as_dist(v, f.name))
            elif f.name.endswith("_lines"):
                w = as_whole(v)
                lo = 0 if f.name == "vma_lock_reread_lines" else 1
                if w is None or w < lo or w > MAX_LOCK_LINES:
                    raise ScenarioError(
                        f"cost {f.name} must be a whole number of cache lines from {lo} to "
                        f"{MAX_LOCK_LINES}, got {v!r}")
                object.__setattr__(self, f.name, w)
            else:
                w = as_whole(v)
                if w is None or w < 0:
                    raise ScenarioError(
                        f"cost {f.name} must be a non-negative integer number of ns, got {v!r}")
                if w >= MAX_NS:
                    raise ScenarioError(
                        f"cost {f.name} must be below {LIMIT_TEXT} ns (146 years), got {v!r}")
                object.__setattr__(self, f.name, w)

    def replace(self, **changes):
        unknown = set(changes) - set(cost_names())
        if unknown:
            raise ScenarioError(unknown_names("cost", unknown, "costs", cost_names()))
        return replace(self, **changes)

    def scalar_items(self):
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in DIST_COSTS}

    def to_dict(self):
        """The costs as plain JSON/TOML values; distributions as ``{"kind": ..., params}``."""
        out = dict(self.scalar_items())
        for name in DIST_COSTS:
            out[name] = dist_to_dict(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data, where="costs"):
        """Costs from :meth:`to_dict`'s form; missing fields keep their defaults, unknown
        ones are an error naming them."""
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: expected a table of costs, got {type(data).__name__}")
        unknown = set(data) - set(cost_names())
        if unknown:
            raise ScenarioError(f"{where}: " + unknown_names("cost", unknown, "costs", cost_names()))
        kw = {}
        for k, v in data.items():
            kw[k] = dist_from_dict(v, f"{where}.{k}") if isinstance(v, dict) else v
        try:
            return cls(**kw)
        except ScenarioError as e:
            raise ScenarioError(f"{where}: {e}") from None

    @classmethod
    def from_file(cls, path):
        """Costs from a profile file (JSON, or TOML when the name ends in ``.toml``), as
        written by ``vmlab calibrate``: the table ``costs`` of the file (or the whole file
        when it has no such table)."""
        import json
        import tomllib
        from pathlib import Path

        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ScenarioError(f"{path}: no such costs profile") from None
        except OSError as e:
            raise ScenarioError(f"{path}: cannot read the costs profile ({e.strerror})") from None
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
            raise ScenarioError(f"{path}: not a valid {kind} costs profile ({e})") from None
        if isinstance(data, dict) and isinstance(data.get("costs"), dict):
            data = data["costs"]
        return cls.from_dict(data, str(path))


_DIST_KINDS = {"fixed": ("value_ns",), "exponential": ("mean_ns",),
               "lognormal": ("median_ns", "p99_ns"), "uniform": ("low_ns", "high_ns"),
               "empirical": ("samples_ns",)}


def dist_to_dict(dist):
    """A distribution as ``{"kind": ..., <its parameters>}``."""
    params = _DIST_KINDS[dist.kind]
    out = {"kind": dist.kind}
    for p in params:
        v = getattr(dist, p)
        out[p] = list(v) if isinstance(v, tuple) else v
    return out


def dist_from_dict(data, where="distribution"):
    """The inverse of :func:`dist_to_dict`; errors name ``where``."""
    kind = data.get("kind")
    if kind not in _DIST_KINDS:
        raise ScenarioError(f"{where}: kind must be one of {', '.join(_DIST_KINDS)}, got {kind!r}")
    params = _DIST_KINDS[kind]
    extra = set(data) - set(params) - {"kind"}
    missing = [p for p in params if p not in data]
    if extra or missing:
        raise ScenarioError(f"{where}: a {kind} distribution takes {', '.join(params)}"
                            + (f"; missing {missing}" if missing else "")
                            + (f"; unknown {sorted(extra)}" if extra else ""))
    cls = {"fixed": Fixed, "exponential": Exponential, "lognormal": LogNormal,
           "uniform": Uniform, "empirical": Empirical}[kind]
    try:
        return cls(**{p: data[p] for p in params})
    except ScenarioError as e:
        raise ScenarioError(f"{where}: {e}") from None


#: The :class:`Costs` field that is the hold of each known call (docs/model.md 15.12).
HOLD_FIELDS = {Call.MMAP: "hold_mmap_ns", Call.MUNMAP: "hold_munmap_ns",
               Call.MPROTECT: "hold_mprotect_ns", Call.MREMAP: "hold_mremap_ns",
               Call.BRK: "hold_brk_ns"}


def writer_holds_ns(costs):
    """The hold of a ``LOCK_W`` record per :class:`~vmlab.trace.model.Call` code, as an
    int64 array indexed by the code: ``mmap_cs_ns`` for ``UNKNOWN``, the call's
    ``hold_*_ns`` for the others (docs/model.md 15.12)."""
    out = np.full(int(MAX_CALL) + 1, int(costs.mmap_cs_ns), np.int64)
    for call, name in HOLD_FIELDS.items():
        out[int(call)] = int(getattr(costs, name))
    return out


def writer_parts_ns(costs):
    """The two parts of a ``LOCK_W`` record's hold per :class:`~vmlab.trace.model.Call` code
    (docs/model.md 15.13), as two int64 arrays indexed by the code: the part held for write
    (the whole hold of :func:`writer_holds_ns`, or up to the downgrade of a call that
    downgrades, ``munmap_write_ns``) and the part held for read after the downgrade (0: the
    call does not downgrade, or ``munmap_write_ns`` is not shorter than its hold)."""
    hold = writer_holds_ns(costs)
    write = hold.copy()
    for call in DOWNGRADES:
        write[int(call)] = min(int(costs.munmap_write_ns), int(hold[int(call)]))
    return write, hold - write


def cost_names():
    """The fields of :class:`Costs`, in order."""
    return [f.name for f in fields(Costs)]
