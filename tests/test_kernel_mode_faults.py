"""Faults the kernel takes in kernel mode (an access with call ``KERNEL``: ``copy_to_user`` in
a system call, the ELF loader), docs/model.md 15.3 and 7: no ``FAULT_FLAG_USER``, so every
lock design after 6.4 sends them to ``mmap_lock``; a speculative attempt is tried for them as
for any; of the pending signals only a fatal one stops their retry or wait.  Exact, in the
engine and the reference."""
import os

import numpy as np
import pytest

from naive_engine import canonical, first_difference
from naive_engine import simulate as reference
from vmlab import Costs, Fixed, Scenario, Trace, Vma, simulate
from vmlab.model import SignalSchedule
from vmlab.trace import Call

PAGE = 4096
BASE = 0x7F00_0000_0000
ANON = Vma(BASE, BASE + 16 * PAGE, "anon", name="buf", anon_vma=True)
FILE = Vma(BASE + 64 * PAGE, BASE + 80 * PAGE, "file", name="f", prot="r", private=False)
K = int(Call.KERNEL)


def both(sc, policy):
    r = simulate(sc, policy)
    assert first_difference(canonical(r.raw), canonical(reference(sc, policy))) is None
    return r


def scenario(addrs, calls, ops=None, signals=(), vmas=(ANON, FILE), **kw):
    n = len(addrs)
    tr = Trace(np.array(addrs, np.uint64), op=np.array(ops or [1] * n, np.uint8),
               tid=[0] * n, call=np.array(calls, np.uint8))
    return Scenario(tr, vmas=vmas, signals=signals,
                    costs=Costs(io_ns=Fixed(1_000_000)), **kw)


def lock_counts(r):
    s = r.summary
    return (int(s["n_vma_lock_read"]), int(s["n_mmap_lock_read"]),
            int(s["n_vma_lock_fallbacks"]), int(r.faults["retries"].sum()))


@pytest.mark.parametrize("policy, user, kernel", [
    # (VMA reads, mmap_lock reads, fallbacks, retries) of two minor anonymous faults
    ("per_vma_lock", (2, 0, 0, 0), (1, 1, 0, 0)),
    ("per_vma_retry_vma", (2, 0, 0, 0), (1, 1, 0, 0)),
    ("per_vma_no_retry", (2, 0, 0, 0), (1, 1, 0, 0)),
    ("spf", (0, 0, 0, 0), (0, 0, 0, 0)),             # tried speculatively all the same
    ("fault_retry_v57", (0, 2, 0, 0), (0, 2, 0, 0)),
])
def test_a_kernel_mode_fault_goes_to_mmap_lock_and_is_no_fallback(policy, user, kernel):
    # a store by the program, then one by the kernel (read() filling a buffer)
    addrs = [BASE, BASE + PAGE]
    assert lock_counts(both(scenario(addrs, [0, 0]), policy)) == user
    assert lock_counts(both(scenario(addrs, [0, K]), policy)) == kernel


@pytest.mark.parametrize("policy, user, kernel", [
    # a major fault on a file page: its attempt drops its lock for the read and retries
    ("per_vma_lock", (1, 1, 0, 1), (0, 2, 0, 1)),
    ("per_vma_retry_vma", (2, 0, 0, 1), (0, 2, 0, 1)),   # the retry under mmap_lock too
    ("per_vma_no_retry", (1, 0, 0, 0), (0, 1, 0, 0)),    # mmap_lock held over the read
])
def test_a_kernel_mode_major_fault_retries_under_mmap_lock(policy, user, kernel):
    addrs = [BASE + 64 * PAGE]
    assert lock_counts(both(scenario(addrs, [0], ops=[0]), policy)) == user
    assert lock_counts(both(scenario(addrs, [K], ops=[0]), policy)) == kernel


@pytest.mark.parametrize("fatal", [False, True])
def test_a_signal_stops_the_retry_of_the_users_fault_only(fatal):
    # a signal at 500 us, while the read (1 ms) is in flight; the retry's check comes when
    # the thread wakes
    sig = (SignalSchedule("times", times_ns=(500_000,), fatal=fatal),)
    addrs = [BASE + 64 * PAGE, BASE]
    user = both(scenario(addrs, [0, 0], ops=[0, 1], signals=sig), "per_vma_lock")
    kern = both(scenario(addrs, [K, 0], ops=[0, 1], signals=sig), "per_vma_lock")
    end_user = int(user.faults["end_ns"].iloc[0]) if not fatal else None
    d_user = int(user.signals["delivery_ns"].iloc[0])
    d_kern = int(kern.signals["delivery_ns"].iloc[0])
    if fatal:
        # both stop at the check before the retry (the thread wakes at 1,002,600)
        assert d_user == d_kern == 1_002_600
        assert list(kern.faults["outcome"]) == list(user.faults["outcome"]) == ["killed"]
    else:
        # the user's fault goes back to user space to deliver it, then faults again; the
        # kernel's retries at once and the signal waits for the record's end (the read()'s
        # return to user space)
        first_kern = kern.faults.iloc[0]
        assert d_user == 1_002_600 < end_user
        assert d_kern == int(first_kern["end_ns"]) + 1
        assert int(user.faults["retries"].iloc[0]) == 1
        assert int(first_kern["retries"]) == 1


def test_an_interruptible_wait_is_not_interrupted_in_kernel_mode():
    # nopage_refault sleeps interruptibly: a signal aborts the user's wait, not the kernel's
    sig = (SignalSchedule("times", times_ns=(500_000,)),)
    addrs = [BASE + 64 * PAGE]
    user = both(scenario(addrs, [0], ops=[0], signals=sig), "nopage_refault")
    kern = both(scenario(addrs, [K], ops=[0], signals=sig), "nopage_refault")
    assert int(user.signals["aborted_wait"].iloc[0]) == 1
    assert int(kern.signals["aborted_wait"].iloc[0]) == 0
    assert int(kern.signals["delivery_ns"].iloc[0]) >= int(kern.faults["end_ns"].iloc[0])


@pytest.mark.parametrize("policy, kern_first, user_first", [
    # (n_mmap_lock_read_kernel, n_anon_vma_fallbacks, n_vma_lock_fallbacks, n_mmap_lock_read)
    ("per_vma_lock", (1, 0, 0, 1), (1, 1, 1, 2)),
    ("spf", (1, 0, 1, 1), (0, 1, 1, 1)),      # the kernel's store is tried speculatively
    ("fault_retry_v57", (1, 0, 0, 2), (1, 0, 0, 2)),
])
def test_the_counts_split_by_cause(policy, kern_first, user_first):
    # a fresh anonymous VMA (no anon_vma yet) and two stores on it, the kernel's (read()
    # filling a new buffer) and the program's: the first makes the anon_vma, under
    # mmap_lock where the design falls back for it
    fresh = Vma(BASE, BASE + 16 * PAGE, "anon", name="buf")
    addrs = [BASE, BASE + PAGE]
    for calls, want in (([K, 0], kern_first), ([0, K], user_first)):
        s = both(scenario(addrs, calls, vmas=(fresh, FILE)), policy).summary
        assert tuple(int(s[k]) for k in ("n_mmap_lock_read_kernel", "n_anon_vma_fallbacks",
                                         "n_vma_lock_fallbacks", "n_mmap_lock_read")) == want


# -- this host's kernel: who takes mmap_lock for read (vmlab.studies.lock_callers) ----------
FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def test_the_hosts_gzip_capture_by_caller():
    # docs/model.md 15.8: perf record -g -e mmap_lock:mmap_lock_start_locking
    # --filter 'write == 0' -- gzip -9 -c text.txt on this host (6.18), warm
    from vmlab.studies import lock_callers

    c = lock_callers.read_callers(FIXTURES / "perf_gzip_mmap_lock_reads.txt")
    assert lock_callers.class_counts(c).to_dict() == {
        "kernel-mode fault": 19, "user-mode fault": 1, "anon_vma trylock": 5, "not a fault": 1}
    kernel = c[c["cls"] == "kernel-mode fault"]["where"].value_counts().to_dict()
    assert kernel == {"_copy_to_iter": 16, "elf_load": 2, "_copy_to_user": 1}
    assert set(c[c["cls"] == "not a fault"]["where"]) == {"acct_collect"}
    assert c["tid"].nunique() == 1 and c["time_s"].is_monotonic_increasing


def test_a_capture_without_call_chains_is_refused_in_one_line(tmp_path):
    from vmlab.errors import TraceFormatError
    from vmlab.studies import lock_callers

    p = tmp_path / "reads.txt"
    p.write_text("gzip 1/1 5.000001: mmap_lock:mmap_lock_start_locking: mm=0xffff1 "
                 "memcg_id=3 write=false\n")
    with pytest.raises(TraceFormatError, match="no call chain: record with") as e:
        lock_callers.read_callers(p)
    assert "\n" not in str(e.value) and "reads.txt" in str(e.value)
    p.write_text("gzip 1/1 5.000001: mmap_lock:mmap_lock_start_locking: mm=0xffff1 "
                 "memcg_id=3 write=false\n\tnot-an-address foo\n")
    with pytest.raises(TraceFormatError, match=r"reads.txt:2: expected a call-chain") as e:
        lock_callers.read_callers(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("source, slack", [("perf", 0), ("lackey", 1)])
def test_the_seven_programs_take_mmap_lock_where_the_host_does(source, slack):
    # docs/model.md 15.8: per_vma_lock on each shipped recording (perf: the faults the
    # kernel took; lackey: the program's own accesses and the kernel's stores, a
    # prediction) against the host's read acquisitions of mmap_lock by caller
    # (data/native/mmap_lock_reads.csv, three warm runs each).  Tolerance: 2 per class
    # beyond the host's own range over its runs (ASLR moves read() buffers across page
    # boundaries: a kernel-mode fault more or less, up to 2 from run to run), and 2 + slack
    # in all (the lackey recording is a different run: sort's comes out 3 above).  Before
    # faults from kernel mode and special mappings were modelled, gzip gave 10 against 25.
    from vmlab.studies import lock_callers

    t = lock_callers.compare(source=source)
    assert len(t) == 7
    for cls in ("kernel-mode fault", "user-mode fault", "anon_vma trylock", "faults"):
        d = 2 + (slack if cls == "faults" else 0)
        lo, hi = t[(cls, "host_min")] - d, t[(cls, "host_max")] + d
        v = t[(cls, "vmlab")]
        assert ((lo <= v) & (v <= hi)).all(), (cls, v.to_dict(), t[(cls, "host")].to_dict())
    # the user faults that take mmap_lock are the vDSO's (no ->map_pages): exact
    assert (t[("user-mode fault", "vmlab")] == t[("user-mode fault", "host")]).all()


def test_a_live_capture_on_this_host():
    import shutil
    import subprocess

    from vmlab.studies import lock_callers

    if shutil.which("perf") is None:
        pytest.skip("perf is not installed")
    probe = subprocess.run(["perf", "list", "mmap_lock:*"], capture_output=True, text=True)
    if "mmap_lock_start_locking" not in probe.stdout:
        pytest.skip("this kernel has no mmap_lock tracepoints (or perf cannot see them)")
    try:
        (counts,) = lock_callers.capture(["/bin/true"], runs=1)
    except Exception as e:      # not root and a strict perf_event_paranoid
        pytest.skip(f"perf cannot record here: {e}")
    assert list(counts.index) == list(lock_callers.CLASSES)
    assert counts.sum() > 0
    if counts["not a fault"] == counts.sum():
        pytest.skip("this kernel's call chains name no asm_exc_page_fault (before 5.8)")
    assert counts["kernel-mode fault"] >= 1     # exec's elf_load at least


def test_bad_captures_are_one_line(tmp_path):
    from vmlab.errors import VmlabError
    from vmlab.studies import lock_callers

    with pytest.raises(VmlabError, match="no such file") as e:
        lock_callers.read_callers(tmp_path / "missing.txt")
    assert "\n" not in str(e.value)
    bad = tmp_path / "caps.csv"
    bad.write_text("program,run,kernel\ngzip,0,3\n")
    with pytest.raises(VmlabError, match="missing kernel-mode fault, user-mode fault, anon_vma") as e:
        lock_callers.compare(captures=bad)
    assert "\n" not in str(e.value)
    with pytest.raises(VmlabError, match="source must be 'perf' or 'lackey'"):
        lock_callers.compare(source="din")


# -- properties over generated scenarios ---------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402

from scenario_strategies import cases, lock_cases  # noqa: E402

_SETTINGS = settings(max_examples=int(os.environ.get("VMLAB_PROPERTY_EXAMPLES", "60")),
                     deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.filter_too_much])
_SPLIT = ("n_mmap_lock_read_kernel", "n_anon_vma_fallbacks", "prepare_s", "kernel_s")


def _unmarked(scenario):
    """The scenario with every access the program's own (no call KERNEL)."""
    tr = scenario.trace
    if not tr.has_call:
        return scenario
    cols = dict(tr.columns)
    cols["call"] = np.where(np.asarray(cols["call"]) == K, 0, cols["call"]).astype(np.uint8)
    return scenario.replace(trace=Trace.from_columns(cols, tr.meta, mappings=tr.mappings))


@_SETTINGS
@given(cases())
def test_the_mark_changes_nothing_where_no_vma_lock_is_taken_and_no_signal_comes(case):
    # docs/model.md 15.3 and 7: the mode decides the lock only where a design would take a
    # VMA lock, and the signals only when one comes; elsewhere a fault the kernel made is
    # every other fault (only the split counts differ)
    scenario, policy = case
    if scenario.signals:
        scenario = scenario.replace(signals=())
    a = simulate(scenario, policy)
    b = simulate(_unmarked(scenario), policy)
    sa = {k: v for k, v in a.summary.items() if k not in _SPLIT}
    sb = {k: v for k, v in b.summary.items() if k not in _SPLIT}
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k] == sb[k] or (sa[k] != sa[k] and sb[k] != sb[k]), k
    assert a.faults.equals(b.faults)
    assert int(b.summary["n_mmap_lock_read_kernel"]) == 0


@_SETTINGS
@given(lock_cases())
def test_the_split_counts_are_parts_of_their_totals(case):
    scenario, policy = case
    s = simulate(scenario, policy).summary
    assert 0 <= s["n_mmap_lock_read_kernel"] <= s["n_mmap_lock_read"]
    assert 0 <= s["n_anon_vma_fallbacks"] <= s["n_vma_lock_fallbacks"]
    if not scenario.trace.has_call or not scenario.trace.kernel_made().any():
        assert s["n_mmap_lock_read_kernel"] == 0
