"""Fuzz suite (issue 13): mutated valid inputs of every reader and corrupted ``.vmt`` files.

Each case either reads soundly (for a ``.vmt``: exactly the seed's columns; for text, a
``.vmt`` conversion that reads back the same records) or is refused with one
:class:`~vmlab.errors.VmlabError` line; never another exception, never more than a second.
The mutations live in ``tests/fuzzing.py``; ``benchmarks/fuzz.py`` runs them for 10^5+ inputs.
"""
from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzing

SEEDS = fuzzing.seeds()
ORIGINALS = fuzzing.seed_traces(SEEDS)
TEXT = sorted(n for n, (fmt, _) in SEEDS.items() if fmt != "vmt")
VMT = sorted(n for n, (fmt, _) in SEEDS.items() if fmt == "vmt")
SEEN = collections.Counter()


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name, (fmt, data) in SEEDS.items():  # warm up: numba caches, thread pools
            outcome, detail, _ = fuzzing.check(d / "warm", fmt, data, ORIGINALS.get(name),
                                               convert_to=d / "w.vmt", time_limit_s=60)
            assert outcome == "ok", (name, detail)
        yield d


def _run(workdir, name, rnd, convert):
    fmt, data = SEEDS[name]
    mutated, how = fuzzing.mutate(fmt, data, rnd)
    outcome, detail, _ = fuzzing.check(
        workdir / ("in.vmt" if fmt == "vmt" else "in.txt"), fmt, mutated, ORIGINALS.get(name),
        convert_to=workdir / "out.vmt" if convert else None)
    SEEN[(name, outcome)] += 1
    assert outcome != "failure", f"{name} after {how}: {detail}"


@settings(max_examples=1500, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(TEXT), rnd=st.randoms(use_true_random=False),
       convert=st.integers(0, 4))
def test_text_readers_never_crash_hang_or_misread(workdir, name, rnd, convert):
    _run(workdir, name, rnd, convert == 0)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(VMT), rnd=st.randoms(use_true_random=False))
def test_damaged_vmt_is_refused_or_read_intact(workdir, name, rnd):
    _run(workdir, name, rnd, False)


def test_the_fuzz_reached_both_outcomes():
    """The mutations are neither all harmless nor all fatal, for every seed."""
    ran = {n for n, _ in SEEN}  # under xdist, the seeds of the tests this worker ran
    if not ran:
        pytest.skip("run with the fuzz tests")
    for name in ran:
        assert SEEN[(name, "refused")] > 0, name
    assert sum(v for (n, o), v in SEEN.items() if o == "ok") > 0


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_mutation_applies(name):
    import random

    fmt, data = SEEDS[name]
    pool = fuzzing.VMT_MUTATIONS if fmt == "vmt" else fuzzing.TEXT_MUTATIONS
    for m in pool:
        changed = sum(m(data, random.Random(k)) != data for k in range(20))
        assert changed > 0, m.__name__


def test_recordings_with_odd_mappings_run_or_are_refused_in_one_line():
    """Forty recordings whose mappings tables have odd contents under valid checksums
    (``fuzzing.mutate_mappings``; ``benchmarks/fuzz_mappings.py`` runs thousands): each
    runs or is refused with one line (the benchmark found a 2-page file mapped over 2^46
    bytes asking for 128 GiB: ``tests/test_recorded.py`` keeps that case)."""
    import random

    from vmlab.trace.native import open_trace

    traces = [open_trace(p) for p in fuzzing.RECORDING_SEEDS]
    seen = collections.Counter()
    with tempfile.TemporaryDirectory() as d:
        for i in range(40):
            rnd = random.Random(7000 + i)
            tr = rnd.choice(traces)
            outcome, detail = fuzzing.check_recording(tr, fuzzing.mutate_mappings(tr, rnd), d)
            assert outcome != "failure", (i, detail)
            seen[outcome] += 1
    assert seen["ok"] and seen["refused"]
