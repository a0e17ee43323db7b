"""vmlab.model.recorded: a recorded trace's mappings become the kernel-like scenario."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vmlab
from vmlab.engine.prepare import RUNS_KNOBS
from vmlab.model.recorded import (UNRECORDED, files_for, preload_for, runnable,
                                  scenario_for, vmas_for)
from vmlab.model.scenario import KERNEL_DEFAULTS, File
from vmlab.trace import Op, open_trace
from vmlab.trace.mappings import FOREVER, MAPPING_DTYPE, NO_FILE, Backing, FileInfo, Mappings
from vmlab.trace.native import TraceWriter

DATA = Path(__file__).resolve().parent.parent / "data"
PS = 4096
LIB = 0x7F0000000000


def _rows(*rows):
    t = np.zeros(len(rows), MAPPING_DTYPE)
    for i, (start, end, prot, shared, backing, f, off, frm, until) in enumerate(rows):
        t[i] = (0, start, end, prot, shared, backing, f, off, frm, until)
    return t


def _loader_trace(tmp_path):
    """A library mapped the way ld.so does it: the whole span from offset 0 (r--), its code
    and data segments mapped over it at their offsets, the data segment written and then
    made read-only (relro); the bss anonymous; a shared mapping of a second file; the stack.
    Records: read code, write data, mprotect, read data, touch bss, read the shared file
    twice through two mappings, write the stack."""
    F = Backing.FILE
    # (the loader maps the segments over the reservation before it touches any: the
    # reservation lives for no record)
    t = _rows(
        (LIB, LIB + 8 * PS, 1, 0, F, 0, 0, 0, 0),                  # reservation, replaced
        (LIB, LIB + 4 * PS, 5, 0, F, 0, 0, 0, FOREVER),            # text r-x at offset 0
        (LIB + 4 * PS, LIB + 6 * PS, 3, 0, F, 0, 5 * PS, 0, 3),    # data rw- at 5 pages
        (LIB + 4 * PS, LIB + 6 * PS, 1, 0, F, 0, 5 * PS, 3, FOREVER),  # relro: r--
        (LIB + 6 * PS, LIB + 8 * PS, 3, 0, Backing.ANON, NO_FILE, 0, 0, FOREVER),  # bss
        (0x10000, 0x12000, 1, 1, F, 1, 0, 0, FOREVER),             # a shared file, twice
        (0x20000, 0x22000, 1, 1, F, 1, 0, 0, FOREVER),
        (0x7FF000000000, 0x7FF000004000, 3, 0, Backing.STACK, NO_FILE, 0, 0, FOREVER))
    res = np.zeros(8, bool)
    res[[0, 1, 5]] = True
    files = [FileInfo("/lib/libx.so", 1, 10, 7 * PS - 100, res, "before_run"),
             FileInfo("/data/shared", 1, 11, 2 * PS, np.array([True, False]), "before_run")]
    addr = [LIB + 8, LIB + 4 * PS, 0, LIB + 4 * PS + 8, LIB + 6 * PS, 0x10000, 0x20000,
            0x7FF000003000]
    op = [Op.IFETCH, Op.STORE, Op.LOCK_W, Op.LOAD, Op.STORE, Op.LOAD, Op.LOAD, Op.STORE]
    with TraceWriter(tmp_path / "t.vmt", mappings=Mappings(t, files, "test")) as w:
        w.append(addr=np.array(addr, np.uint64), op=np.array(op, np.uint8),
                 size=np.array([0 if o == Op.LOCK_W else 8 for o in op], np.uint32))
    return open_trace(tmp_path / "t.vmt")


def test_vmas_take_the_mapping_of_the_first_touch(tmp_path):
    tr = _loader_trace(tmp_path)
    got = [(v.start - LIB if v.start >= LIB and v.start < LIB + 2**32 else v.start,
            (v.end - v.start) // PS, v.backing, v.prot, v.private, v.file, v.offset)
           for v in vmas_for(tr)]
    assert got == [
        (0x10000, 2, "file", "r", False, "/data/shared", 0),
        (0x20000, 2, "file", "r", False, "/data/shared", 0),
        (0, 4, "file", "rx", True, "/lib/libx.so", 0),
        # written before the mprotect: the union keeps w; the segment's own offset
        (4 * PS, 2, "file", "rw", True, "/lib/libx.so", 5 * PS),
        (6 * PS, 2, "anon", "rw", True, None, 0),
        (0x7FF000000000, 4, "anon", "rw", True, None, 0)]
    assert [v.name for v in vmas_for(tr)][:3] == ["shared@0x10000", "shared@0x20000",
                                                  f"libx.so@{LIB:#x}"]


def test_files_preload_and_kernel_defaults(tmp_path):
    tr = _loader_trace(tmp_path)
    assert files_for(tr) == [File("/lib/libx.so", 7 * PS - 100), File("/data/shared", 2 * PS)]
    pre = preload_for(tr).tolist()
    # libx pages 0 and 1 (text), file page 5 (the data segment's first page); the shared
    # file's page 0, through both of its mappings
    assert pre == [0x10000, 0x20000, LIB, LIB + PS, LIB + 4 * PS]
    sc = scenario_for(tr, memory_bytes=1 << 20)
    for k, v in KERNEL_DEFAULTS.items():
        assert getattr(sc, k) == v
    assert sc.memory_bytes == 1 << 20
    assert scenario_for(tr, replacement="lru", fault_around_pages=1).replacement == "lru"


def test_runnable_names_what_it_leaves_out(tmp_path):
    tr = _loader_trace(tmp_path)
    sc = scenario_for(tr, memory_bytes=64 * PS)
    everything = ("fault_model", "ra_pages", "folio_pages", "memory_bytes", "file",
                  "workingset", "reads", "tlb_young", "reclaim_ages_active",
                  "reclaim_priorities", "reclaim_batch", "lru_add_batch")
    same, said = runnable(sc, runs=everything)
    assert same is sc and said == []
    small, said = runnable(sc, runs=("fault_model",))
    assert small.ra_pages == 0 and small.memory_bytes is None and small.memory_pages == 64
    assert all(v.file is None for v in small.resolved_vmas()) and small.files == ()
    assert any("readahead" in s for s in said) and any("memory_pages=64" in s for s in said)
    # an implementation without reclaim batches runs one victim at a time, and says so
    batchless, said = runnable(sc, runs=everything[:-2] + ("lru_add_batch",))
    assert batchless.reclaim_batch == 1 and said == [
        "the kernel's 32-page reclaim batches (reclaim_batch=1: one victim at a time)"]
    # ... and one without LRU-add batches lists every folio at once
    unbatched, said = runnable(sc, runs=everything[:-1])
    assert sc.lru_add_batch == 31 and unbatched.lru_add_batch == 0 and said == [
        "the per-CPU LRU-add batches (lru_add_batch=0: every folio on its list at once)"]


def test_replay_faults_like_the_kernel(tmp_path):
    """The loader trace under the kernel model, whatever the engine runs today: the text
    read is a read fault; the data write a write fault on a private file page; the
    bss write and the stack write anonymous faults; the shared file read twice (two
    mappings)."""
    tr = _loader_trace(tmp_path)
    sc, _ = runnable(scenario_for(tr), RUNS_KNOBS)
    res = vmlab.simulate(sc)
    f = res.faults
    assert len(f) == 6
    assert f["vma_name"].tolist() == [f"libx.so@{LIB:#x}", f"libx.so@{LIB + 4 * PS:#x}",
                                      f"anon@{LIB + 6 * PS:#x}", "shared@0x10000",
                                      "shared@0x20000", "[stack]@0x7ff000000000"]
    # the record after the mprotect reads the page the write copied: a hit
    assert res.summary["n_accesses"] == 7


def test_pages_outside_every_mapping_get_an_unrecorded_vma(tmp_path):
    t = _rows((0x10000, 0x11000, 3, 0, Backing.ANON, NO_FILE, 0, 0, FOREVER))
    with TraceWriter(tmp_path / "u.vmt", mappings=Mappings(t, [], "test")) as w:
        w.append(addr=np.array([0x10000, 0x40000, 0x41000], np.uint64),
                 op=np.array([Op.LOAD, Op.STORE, Op.LOAD], np.uint8))
    tr = open_trace(tmp_path / "u.vmt")
    vm = vmas_for(tr)
    assert [(v.start, v.end, v.name) for v in vm][1:] == [(0x40000, 0x42000,
                                                          f"{UNRECORDED}@0x40000")]
    sc, said = runnable(scenario_for(tr), RUNS_KNOBS)
    assert any("2 touched page(s)" in s for s in said)
    assert vmlab.simulate(sc).summary["n_faults"] == 3


@pytest.mark.parametrize("name", ["perf_xz_T2.vmt", "perf_sort.vmt"])
def test_perf_recording_replays_its_own_faults(name):
    """A perf recording of a warm run (item 7 of issue 9): backings from the run's own mmap
    events, so an all-anonymous program's faults are not disk reads; a read then a write of
    one page stay two faults (the op kept from the x86 error code)."""
    tr = open_trace(DATA / "native" / name)
    sc, _ = runnable(scenario_for(tr, records=False), RUNS_KNOBS)
    s = vmlab.simulate(sc).summary
    n_faults = int((np.asarray(tr.op) != Op.LOCK_W).sum())
    assert s["n_faults"] == pytest.approx(n_faults, rel=0.05)
    assert s["n_major"] == 0   # warm run: every mapped file resident (or not measured)


def test_a_long_recording_is_prepared_in_memory_that_does_not_grow_with_it(monkeypatch):
    """The recorded scenario's passes over every record (the first touch of each page for
    the static VMAs, the kernel model's store flags and prot check) go chunk by chunk: with
    chunks of 2^16 records, and the per-record arrays the kernel reads in temporary files
    as a long trace's are, going from 0.5 to 2 million records of two threads adds under
    0.1 byte a record to the peak of traced memory (0.001 measured), where whole-trace passes
    (a sort of every record's page) added 43, and the writers' and readers' masks of every
    record 1.  A 375-million-record recording of ``jq`` reached 17 GB before."""
    import importlib
    import tracemalloc

    prep = importlib.import_module("vmlab.engine.prepare")   # (the package exports the function)
    monkeypatch.setattr(prep, "_CHUNK", 1 << 16)
    monkeypatch.setattr(prep, "MEMMAP_RECORDS", 1 << 16)   # per-record arrays in files
    heap = 0x600000
    t = _rows((LIB, LIB + 64 * PS, 5, 0, Backing.FILE, 0, 0, 0, FOREVER),
              (heap, heap + 256 * PS, 3, 0, Backing.HEAP, NO_FILE, 0, 0, FOREVER))
    files = [FileInfo("/lib/libx.so", 1, 10, 64 * PS, np.ones(64, bool), "before_run")]

    def recording(n, first_bad=None):
        rng = np.random.default_rng(5)
        on_heap = rng.random(n) < 0.5
        addr = np.where(on_heap, heap + rng.integers(0, 256 * PS, n),
                        LIB + rng.integers(0, 64 * PS, n)).astype(np.uint64)
        op = np.where(on_heap, np.where(rng.random(n) < 0.5, Op.STORE, Op.LOAD),
                      Op.IFETCH).astype(np.uint8)
        lib = np.flatnonzero(~on_heap)
        if first_bad is not None:   # stores into the read-only library
            op[lib[[first_bad, first_bad + 7]]] = Op.STORE
        return vmlab.Trace(addr, op=op, tid=rng.integers(0, 2, n),
                           mappings=Mappings(t, files, "test")), lib

    def peak_of(n):
        tr, _ = recording(n)
        tracemalloc.start()
        try:
            k = prep.prepare(scenario_for(tr), "fault_retry_v57")
            return tracemalloc.get_traced_memory()[1], tr, k
        finally:
            tracemalloc.stop()

    peak_of(10_000)     # the compiles and cost tables of a first run, apart
    small, _, _ = peak_of(500_000)
    big, tr, k = peak_of(2_000_000)
    assert (big - small) / 1_500_000 < 0.1, f"{(big - small) / 1_500_000:.2f} bytes a record"
    # the store flags in the kernel's order: each thread's records, in trace order
    tid, op = np.asarray(tr.tid), np.asarray(tr.op)
    order = np.concatenate([np.flatnonzero(tid == 0), np.flatnonzero(tid == 1)])
    assert np.array_equal(np.asarray(k.inputs.rec_write), (op[order] == Op.STORE).astype(np.uint8))
    # a store into the read-only library is refused, naming the first one in trace order
    bad, lib = recording(200_000, first_bad=3)
    with pytest.raises(vmlab.ScenarioError, match=rf"^record {lib[3]}: thread \d+ writes .*"
                                                  r"whose prot is 'rx'"):
        prep.prepare(scenario_for(bad), "fault_retry_v57")


def test_faults_by_object_names_one_file_once_whatever_each_recorder_called_it():
    """valgrind names a library by the path the program opened (``libx.so.6``), perf by the
    path the kernel resolved (``libx.so.6.0.1``): the same device and inode is one object,
    named as the lackey recording names it, not two rows each off by its faults."""
    from vmlab.studies.kernel_agreement import faults_by_object

    def recorded(path, n_pages, inode=10):
        t = _rows((LIB, LIB + 4 * PS, 5, 0, Backing.FILE, 0, 0, 0, FOREVER))
        files = [FileInfo(path, 1, inode, 4 * PS, np.zeros(4, bool), "before_run")]
        addr = LIB + np.arange(n_pages, dtype=np.uint64) * PS
        return vmlab.Trace(addr, op=np.full(n_pages, Op.IFETCH, np.uint8),
                           mappings=Mappings(t, files, "test"))

    lackey = recorded("/lib/libx.so.6", 4)
    df = faults_by_object(lackey, recorded("/lib/libx.so.6.0.1", 3))
    assert df["object"].tolist() == ["libx.so.6"] and df["kernel"].tolist() == [3]
    assert df["predicted"].tolist() == [int(vmlab.simulate(scenario_for(lackey)).summary["n_faults"])]
    # another file (another inode) under the other name stays another object
    other = faults_by_object(lackey, recorded("/lib/libx.so.6.0.1", 3, inode=11))
    assert sorted(other["object"]) == ["libx.so.6", "libx.so.6.0.1"]


def test_a_file_mapping_far_larger_than_its_file_is_preloaded_by_the_files_pages():
    """A (hostile or odd) recording that maps a 2-page file over 2^46 bytes: the page cache
    it starts from holds the file's two pages, found without listing the VMA's 2^34 pages
    one by one (that asked for 128 GiB and raised MemoryError)."""
    at = 1 << 44
    t = _rows((at, at + (1 << 46), 1, 0, Backing.FILE, 0, 0, 0, FOREVER))
    files = [FileInfo("/lib/tiny.so", 1, 10, 2 * PS, np.ones(2, bool), "before_run")]
    tr = vmlab.Trace(np.array([at, at + PS], np.uint64), op=np.zeros(2, np.uint8),
                     mappings=Mappings(t, files, "test"))
    assert preload_for(tr).tolist() == [at, at + PS]
    r = vmlab.simulate(scenario_for(tr))
    assert len(r.faults) == 1 and not r.faults["major"].any()     # fault-around maps both
