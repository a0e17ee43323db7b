"""The model-side knobs of the kernel fault model and the memory limit (docs/model.md sections
11-12): each is checked when the object is built, with one line naming the field, and the knobs
the engine does not run yet are refused before any run instead of being ignored."""
import numpy as np
import pytest

from vmlab import Costs, File, Scenario, ScenarioError, Trace, Vma, simulate
from vmlab.model import KERNEL_DEFAULTS
from vmlab.model.scenario import FAULT_MODELS, MADVISE, MAX_FOLIO_PAGES, scenario_fields

PS = 4096
BASE = 0x10000


def trace():
    return Trace(np.array([BASE, BASE + PS, BASE + 2 * PS], np.uint64))


def test_defaults_are_the_page_model_with_no_new_mechanism():
    sc = Scenario(trace())
    assert (sc.fault_model, sc.ra_pages, sc.folio_pages, sc.memory_bytes, sc.files) == \
        ("page", 0, 1, None, ())
    v = Vma(BASE, BASE + 4 * PS)
    assert (v.prot, v.private, v.file, v.offset, v.madvise) == ("rw", True, None, 0, "normal")
    assert Costs().copy_page_ns == Costs().zero_fill_ns
    # the defaults run as before: one fault per distinct page
    assert simulate(sc, "nopage").summary["n_faults"] == 3


@pytest.mark.parametrize("given, stored", [("r-x", "rx"), ("xr", "rx"), ("rw-", "rw"), ("", ""),
                                           ("---", ""), ("rwx", "rwx")])
def test_prot_is_normalised_to_rwx_order(given, stored):
    assert Vma(BASE, BASE + PS, prot=given).prot == stored


@pytest.mark.parametrize("changes, message", [
    (dict(prot="rwz"), "prot must be letters of 'rwx'"),
    (dict(prot="rr"), "prot must be letters of 'rwx'"),
    (dict(prot=7), "prot must be letters of 'rwx'"),
    (dict(private=1), "private must be True (MAP_PRIVATE) or False (MAP_SHARED), got 1"),
    (dict(file=""), "file must be a file's identity"),
    (dict(file=3), "file must be a file's identity"),
    (dict(backing="anon", file="libc"), "file='libc' needs backing 'file', not 'anon'"),
    (dict(backing="anon", offset=PS), "offset=4096 needs backing 'file', not 'anon'"),
    (dict(offset=-1), "offset must be a byte offset in the file"),
    (dict(offset=0.5), "offset must be a byte offset in the file"),
    (dict(offset=2**62), "offset must be a byte offset in the file"),
    (dict(madvise="seq"), "unknown madvise 'seq'; choose one of normal, random, sequential"),
])
def test_invalid_vma_mapping_fields_are_refused(changes, message):
    with pytest.raises(ScenarioError, match="^VMA .*" + _re(message)):
        Vma(BASE, BASE + PS, **changes)


@pytest.mark.parametrize("make, message", [
    (lambda: File(""), "File: name must be a non-empty string"),
    (lambda: File("a", size_bytes=-1), "File 'a': size_bytes must be an integer"),
    (lambda: File("a", size_bytes=1.5), "File 'a': size_bytes must be an integer"),
    (lambda: File("a", folio_pages=3), "File 'a': folio_pages must be a power of two in [1, 512]"),
    (lambda: File("a", folio_pages=1024), "File 'a': folio_pages must be a power of two"),
    (lambda: Scenario(trace(), fault_model="linux"), "unknown fault_model 'linux'; choose one of page, kernel"),
    (lambda: Scenario(trace(), ra_pages=-1), "ra_pages must be an integer from 0 (off) to 1,048,576"),
    (lambda: Scenario(trace(), ra_pages=True), "ra_pages must be an integer from 0 (off) to 1,048,576"),
    # (a window the engine would need gigabytes of room for: refused here, not a MemoryError)
    (lambda: Scenario(trace(), ra_pages=2**30), "ra_pages must be an integer from 0 (off) to "
                                                "1,048,576 (readahead window in pages: at most 4 GiB), "
                                                "got 1073741824"),
    (lambda: Scenario(trace(), folio_pages=0), "scenario: folio_pages must be a power of two"),
    (lambda: Scenario(trace(), folio_pages=6), "scenario: folio_pages must be a power of two"),
    (lambda: Scenario(trace(), memory_bytes=0), "memory_bytes must be a positive integer"),
    (lambda: Scenario(trace(), memory_bytes=float("nan")), "memory_bytes must be a positive integer"),
    (lambda: Scenario(trace(), memory_bytes=2**62), "memory_bytes must be a positive integer below 2**62"),
    (lambda: Scenario(trace(), memory_bytes=PS * 100, memory_pages=50),
     "give memory_bytes (anonymous and page-cache pages charged to one limit) or memory_pages"),
    (lambda: Scenario(trace(), files=[File("a"), File("a")]), "files: 'a' is given twice"),
    (lambda: Scenario(trace(), files=["a"]), "files must be File objects, got 'a'"),
    (lambda: Scenario(trace(), files="a"), "files must be a list of File objects"),
])
def test_invalid_granularity_knobs_are_refused_on_construction(make, message):
    with pytest.raises(ScenarioError, match=_re(message)):
        make()


def test_a_single_file_is_taken_as_a_list():
    assert Scenario(trace(), files=File("a")).files == (File("a"),)


@pytest.mark.parametrize("make, message", [
    (lambda: Scenario(trace(), vmas=[Vma(BASE, BASE + 4 * PS, file="lib", offset=100)]),
     "offset 100 is not a multiple of the page size 4096"),
    (lambda: Scenario(trace(), vmas=[Vma(BASE, BASE + 4 * PS, file="libc")],
                      files=[File("libcc")]),
     "files: no VMA maps 'libcc' (VMAs name files ['libc']); did you mean 'libc'?"),
])
def test_inconsistent_files_are_refused_by_validate(make, message):
    sc = make()
    with pytest.raises(ScenarioError, match=_re(message)):
        sc.validate()


@pytest.mark.parametrize("changes, named", [
    (dict(ra_pages=32), "ra_pages=32"),
    (dict(folio_pages=16), "folio_pages > 1"),
    (dict(files=[File("lib", folio_pages=4)], vmas=[Vma(BASE, BASE + 4 * PS, file="lib")]),
     "folio_pages > 1, a VMA's file"),
    (dict(memory_bytes=1 << 20), "memory_bytes"),
    (dict(vmas=[Vma(BASE, BASE + 4 * PS, file="lib")]), "a VMA's file (page-cache sharing)"),
    (dict(replacement="twolist", workingset=True), "workingset=True"),
    (KERNEL_DEFAULTS, "ra_pages=32, tlb_young=True, reclaim_ages_active=True"),
    (dict(KERNEL_DEFAULTS, memory_bytes=1 << 20), "memory_bytes, reclaim_batch=32, lru_add_batch=31, tlb_young=True, "
     "reclaim_ages_active=True, reclaim_priorities=True"),
])
def test_every_knob_runs_and_refuse_knobs_names_those_an_implementation_lacks(changes, named):
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.scenario import refuse_knobs

    sc = Scenario(trace(), **changes)
    assert simulate(sc, "nopage").summary["n_accesses"] == len(sc.trace)
    refuse_knobs(sc, sc.resolved_vmas(), runs=RUNS_KNOBS)   # the engine runs them all
    with pytest.raises(ScenarioError, match=_re(named) + ".*docs/model.md sections 11-12"):
        refuse_knobs(sc, sc.resolved_vmas(), runs=("fault_model",))


def test_knobs_at_their_defaults_and_mapping_fields_alone_run():
    """prot, private and madvise only matter under the kernel model or readahead, so a page
    model run with them is the plain run."""
    vmas = [Vma(BASE, BASE + 4 * PS, prot="r", private=False, madvise="random")]
    base = simulate(Scenario(trace(), vmas=[Vma(BASE, BASE + 4 * PS)]), "nopage").summary
    got = simulate(Scenario(trace(), vmas=vmas, fault_model="page", ra_pages=0, folio_pages=1),
                   "nopage").summary
    assert got["n_faults"] == base["n_faults"] == 3
    assert got["elapsed_ns"] == base["elapsed_ns"]


def test_kernel_defaults_are_valid_scenario_values():
    assert set(KERNEL_DEFAULTS) <= set(scenario_fields())
    sc = Scenario(trace(), **KERNEL_DEFAULTS)
    assert sc.fault_model in FAULT_MODELS and sc.fault_around_pages == 16 and sc.ra_pages == 32
    assert sc.replacement == "twolist" and sc.reclaim_batch == 32
    assert set(MADVISE) == {"normal", "random", "sequential"} and MAX_FOLIO_PAGES == 512


def _re(text):
    import re
    return re.escape(text)
