"""read() calls as operations of the run (docs/model.md 11.7: ``FileRead``, ``Scenario.reads``):
the folios a call brings in are charged at its record, evict as the kernel's would, can end
the run in an OOM, and are marked accessed once per run of reads inside a folio.  The engine
and the reference agree on generated cases (tests/test_engine_vs_reference.py); these pin
the mechanism on cases small enough to count by hand, and on the shipped gzip recording
against what the kernel charged."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vmlab
from vmlab import File, FileRead, Scenario, Trace, Vma
from vmlab.errors import ScenarioError

PS = 4096
BASE = 0x7f00_0000_0000
ANON = 0x7f10_0000_0000
DATA = Path(__file__).resolve().parent.parent / "data" / "native"


def _lib_run(reads, replacement="lru", memory_pages=10, pages=None):
    """A file VMA of 8 pages (``lib``) touched in order twice (or ``pages``), with
    ``reads`` of a 6-page file no VMA maps (``input``)."""
    seq = list(range(8)) * 2 if pages is None else pages
    tr = Trace(np.array([BASE + p * PS for p in seq], np.uint64))
    files = [File("lib", size_bytes=8 * PS)] + ([File("input", size_bytes=6 * PS)] if reads else [])
    sc = Scenario(tr, vmas=[Vma(BASE, BASE + 8 * PS, "file", file="lib")], files=files,
                  reads=reads, memory_pages=memory_pages, replacement=replacement)
    return vmlab.simulate(sc)


def test_a_read_of_a_file_no_vma_maps_takes_frames_at_its_record():
    # 10 frames, lib's 8 pages resident and mapped after the first pass; at record 8 a read
    # of input's 6 pages: its window (readahead: unmapped victims only) gets the 2 free
    # frames; each page it copies that is missing opens its own synchronous readahead, which
    # evicts the call's own earlier pages (unmapped: input 0-3), never lib's; the second
    # pass hits everywhere: 8 major faults, as without the read
    alone = _lib_run(())
    r = _lib_run((FileRead(8, "input", 0, 6, 0, 6),))
    assert alone.summary["n_major"] == 8 and len(alone.evictions) == 0
    assert r.summary["n_major"] == 8
    assert r.raw.counters["n_read_pages"] == 8 + 6
    ev = r.evictions
    assert (ev["cause"] == "readahead").all() and (ev["file"] == 1).all()
    assert ev["file_page"].tolist() == [0, 1, 2, 3] and (ev["vma"] == -1).all()
    # a cache of 8 frames full of lib's mapped pages: the copied page's readahead finds no
    # unmapped victim, so the call reads it as a fault does and takes lib 0 (the oldest);
    # the second pass then cycles (LRU: each miss evicts the page touched next, the last
    # one the input's): 8 more major faults
    r = _lib_run((FileRead(8, "input", 0, 0, 0, 1),), memory_pages=8)
    ev = r.evictions
    assert ev.iloc[0][["cause", "file", "file_page"]].tolist() == ["read", 0, 0]
    assert r.summary["n_major"] == 16 and ev.iloc[-1][["file", "file_page"]].tolist() == [1, 0]


@pytest.mark.parametrize("prev, evicted", [(-1, False), (0, True)])
def test_a_second_read_in_the_same_folio_marks_it_only_when_the_kernel_does(prev, evicted):
    # twolist: read input page 0 twice, then cycle lib's pages through 5 frames.  A second
    # read that starts where the previous one ended (prev = 0, pos_same_folio) does not
    # mark the folio again: it stays inactive and is evicted; otherwise it is activated
    reads = (FileRead(0, "input", 0, 0, 0, 1), FileRead(1, "input", 0, 0, 0, 1, prev=prev))
    r = _lib_run(reads, replacement="twolist", memory_pages=5)
    ev = r.evictions
    assert bool(((ev["file"] == 1) & (ev["file_page"] == 0)).any()) is evicted


def _anon_run(memory_pages, reads):
    tr = Trace(np.array([ANON + p * PS for p in range(20)] + [ANON], np.uint64),
               op=np.ones(21, np.uint8))
    files = [File("input", size_bytes=6 * PS)] if reads else []
    sc = Scenario(tr, vmas=[Vma(ANON, ANON + 20 * PS, "anon")], files=files, reads=reads,
                  memory_bytes=memory_pages * PS, fault_model="kernel")
    return vmlab.simulate(sc)


def test_a_read_that_finds_no_frame_under_memory_bytes_is_an_oom():
    # 20 anonymous pages and their page tables fill 28 frames: the run alone fits, a read
    # of 6 pages at the last record finds nothing to evict (no swap) and ends it there; with
    # one frame more its pages go through that frame one after another (each evicts the one
    # before: copied, unmapped)
    read = (FileRead(20, "input", 0, 0, 0, 6),)
    assert not (_anon_run(28, ()).threads["state"] == "oom").any()
    r = _anon_run(28, read)
    assert (r.threads["state"] == "oom").any() and r.raw.counters["n_read_pages"] == 0
    r = _anon_run(29, read)
    assert not (r.threads["state"] == "oom").any()
    # (each missing page's own readahead takes the frame of the page before: unmapped)
    assert r.raw.counters["n_read_pages"] == 6 and (r.evictions["cause"] == "readahead").sum() == 5


def test_reads_agree_with_the_reference_on_these_cases():
    from naive_engine import canonical, first_difference
    import budgeted

    tr = Trace(np.array([BASE + p * PS for p in list(range(8)) * 2], np.uint64))
    for repl in ("lru", "clock", "twolist"):
        sc = Scenario(tr, vmas=[Vma(BASE, BASE + 8 * PS, "file", file="lib")],
                      files=[File("lib", size_bytes=8 * PS), File("input", size_bytes=6 * PS)],
                      reads=(FileRead(3, "input", 0, 4, 1, 6, prev=1),
                             FileRead(8, "lib", 2, 6, 5, 7)),
                      memory_pages=7, replacement=repl, fault_model="kernel", ra_pages=4)
        got = canonical(budgeted.engine(sc, "nopage"))
        ref = canonical(budgeted.reference(sc, "nopage"))
        assert first_difference(got, ref) is None


@pytest.mark.parametrize("reads, files, message", [
    ((FileRead(0, "nope", 0, 1, 0, 1),), [], "reads\\[0\\]: file 'nope' is not among files"),
    ((FileRead(0, "input", 0, 9, 0, 1),), [File("input", size_bytes=6 * PS)],
     "reads\\[0\\]: pages \\[0, 9\\) go beyond the end of 'input' \\(6 pages\\)"),
    ((FileRead(5, "input", 0, 1, 0, 1),), [File("input", size_bytes=6 * PS)],
     "reads\\[0\\]: record 5 is not a record of the trace \\(0 to 1\\)"),
    ((FileRead(0, "input", 0, 1, 0, 1),), [File("input")],
     "file 'input' is not among files with a size"),
    (("x",), [], "reads\\[0\\] must be a FileRead"),
])
def test_bad_reads_are_one_clear_error(reads, files, message):
    tr = Trace(np.array([BASE, BASE], np.uint64))
    with pytest.raises(ScenarioError, match=message):
        Scenario(tr, vmas=[Vma(BASE, BASE + PS, "file")], files=files, reads=reads)


def test_a_read_is_checked_field_by_field():
    with pytest.raises(ScenarioError, match="FileRead: start must be an integer, got 'a'"):
        FileRead(0, "f", "a", 1, 0, 1)
    with pytest.raises(ScenarioError, match="needs 0 <= start <= end"):
        FileRead(0, "f", 3, 1, 0, 1)
    with pytest.raises(ScenarioError, match="file must be a File's name"):
        FileRead(0, 3, 0, 1, 0, 1)
    with pytest.raises(ScenarioError, match="prev must be a file page or -1"):
        FileRead(0, "f", 0, 1, 0, 1, prev=-2)
    tr = Trace(np.array([BASE], np.uint64))
    with pytest.raises(ScenarioError, match="reads with an adversary are not run yet"):
        Scenario(tr, vmas=[Vma(BASE, BASE + PS, "file")], files=[File("i", size_bytes=PS)],
                 reads=[FileRead(0, "i", 0, 1, 0, 1)], adversary=vmlab.Adversary(period_ns=1000))


def test_the_shipped_gzip_recording_reads_the_page_cache_the_kernel_charged():
    # docs/model.md 11.8: at gzip's exit under 1 MB the kernel charged 45 pages of page
    # cache (gzip's 24, text.txt's 21; vmlab.measure.charge_at_exit, every run).  Replayed
    # from the cold page cache the runs start from, with its reads at their records, the
    # prediction reads exactly those 45 pages (the faults' and the reads')
    from vmlab.studies import kernel_agreement as ka
    from vmlab.validate import predict

    trace = ka.load_recordings(names=["gzip"])["gzip"]
    meta = json.loads((DATA / "native_faults.json").read_text())
    cold = meta["programs"]["gzip"]["cold_page_cache"]
    p = predict(trace, memory_bytes=1 << 20, cold_cache=cold)
    assert p["pages_read"] == 45 and not p["oom"]


@pytest.mark.parametrize("batch, groups", [(1, [4] * 37), (32, [32] * 5)])
def test_a_reclaim_under_memory_bytes_frees_its_batch(batch, groups):
    # docs/model.md 12: a memcg charge that must reclaim asks for SWAP_CLUSTER_MAX (32)
    # pages.  56 frames of page cache under the limit (64 less the kernel's 8), lib's 4
    # pages touched at every record (LRU keeps them), then 50 reads of 4 new pages each: the
    # cache is full after 13; one victim at a time the other 37 reads evict their 4 pages
    # each; with batches of 32 five reclaims free 160 frames (the first at the 14th read,
    # then every eighth), the oldest pages first
    tr = Trace(np.array([BASE + (i % 4) * PS for i in range(60)], np.uint64))
    sc = Scenario(tr, vmas=[Vma(BASE, BASE + 4 * PS, "file", file="lib")],
                  files=[File("lib", size_bytes=4 * PS), File("input", size_bytes=200 * PS)],
                  reads=[FileRead(4 + i, "input", 0, 0, 4 * i, 4 * i + 4) for i in range(50)],
                  memory_bytes=64 * PS, reclaim_batch=batch)
    r = vmlab.simulate(sc)
    ev = r.evictions
    assert ev.groupby("time_ns", sort=True).size().tolist() == groups
    assert (ev["file"] == 1).all() and ev["file_page"].tolist() == list(range(sum(groups)))
    assert r.summary["n_major"] == 4 and r.raw.counters["n_read_pages"] == 204
    # under memory_pages (a plain cache of page-cache frames) the batch does not apply
    r1 = vmlab.simulate(sc.replace(memory_bytes=None, memory_pages=56))
    assert r1.evictions.groupby("time_ns").size().max() == 4


def test_reclaim_batch_is_checked():
    tr = Trace(np.array([BASE], np.uint64))
    for bad in (0, -1, 2.5, "32", 1 << 21):
        with pytest.raises(ScenarioError, match="reclaim_batch must be an integer from 1 to"):
            Scenario(tr, reclaim_batch=bad)


def test_an_implementation_without_reads_or_files_leaves_the_reads_out_and_says_so():
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.recorded import runnable, scenario_for
    from vmlab.studies import kernel_agreement as ka

    sc = scenario_for(ka.load_recordings(names=["gzip"])["gzip"])
    assert sc.reads
    for lacking in ("reads", "file"):
        small, said = runnable(sc, tuple(k for k in RUNS_KNOBS if k != lacking))
        assert small.reads == () and any("read() calls" in s for s in said)
        vmlab.simulate(small.replace(records=False))
