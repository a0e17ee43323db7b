"""Every notebook runs with small parameters, and its recorded numbers say what the history
says (MODEL.md, the 2006 LWN article): a notebook is checked for correct results, not only
for running.

The notebooks are executed once per session with :func:`vmlab.report.run_report` (two at a
time) into a temporary folder; each test then reads one notebook's recorded numbers.
"""
import ast
import json
import math

import pytest

from vmlab import Costs, report
from vmlab.notebook import parameters_of
from vmlab.studies import ladder

NOTEBOOKS = report.find_notebooks()
STEMS = [p.stem for p in NOTEBOOKS]

#: Small sizes: the whole file runs in well under three minutes on two cores.
SMALL = {
    "02_signals_spufs": {"N_THREADS": 4, "N_ACCESSES": 15, "RESTART_RATES_HZ": [10, 100]},
    "03_mmap_sem_google": {"N_READS": 40, "N_LOCK_OPS": 20_000, "GOOGLE_THREADS": 16,
                           "GOOGLE_PAGES": 256},
    "04_retry_storms_dos": {"RATES_HZ": [10_000, 1_000_000, 3_000_000],
                            "IO_NS_VALUES": [70_000, 1_000_000], "N_FAULTS": 5,
                            "STORM_SIGNAL_RATES_HZ": [0, 10_000], "SERIES_VICTIMS": 2,
                            "SERIES_FAULTS": 10},
    "05_nopfn_device": {"N_PAGES": 1024, "FRACTIONS": [0.02, 0.05, 0.08, 0.1, 0.2, 0.5]},
    "06_real_programs": {"MEMORY_FRACTIONS": [1.0, 0.25]},
    "07_explorer": {"N_RECORDS": 10_000, "THREADS": 2},
    "08_kernel_agreement": {"REMEASURE": "never"},
    "09_twenty_years_later": {"LADDER_READS": 10, "LADDER_WRITES": 1_000,
                              "LESPINASSE_READS": 10, "LESPINASSE_LOCK_OPS": 1_000,
                              "PFT_THREADS": [1, 4, 12, 30, 128], "PFT_PAGES": 16,
                              "EBIZZY_THREADS": [16], "EBIZZY_ITERS": 4, "APP_FAULTS": 100,
                              "APP_WRITES": 100, "WHATIF_INVALIDATE_HZ": [0, 50_000],
                              "WAKEUP_SCALES": [0, 0.2, 1.0], "WAKEUP_SEEDS": [0, 1]},
}


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    out = tmp_path_factory.mktemp("notebooks_report")
    params = {k: v for k, v in SMALL.items() if k in STEMS}
    return report.run_report(out, parameters=params, jobs=2)["notebooks"]


def records(executed, stem):
    r = executed[stem]
    assert r["status"] == "ok", f"{stem} failed: {r['error']}"
    return r["records"]


# -- form ---------------------------------------------------------------------------------

def test_the_notebooks():
    assert [s[:2] for s in STEMS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=STEMS)
def test_notebook_form(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = parameters_of(path)
    assert params and all(k.isupper() for k in params), "UPPER_CASE parameters"
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, "outputs stripped"
        src = "".join(c["source"])
        for node in ast.walk(ast.parse(src)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                         ast.Lambda)), "no def/class/lambda in a notebook"
            assert not isinstance(node, ast.While), "no loops over accesses"
    assert any(c["cell_type"] == "markdown" for c in nb["cells"][3:]), "prose beside the charts"
    assert "record(" in "".join("".join(c["source"]) for c in code)


def test_small_parameters_are_declared():
    for stem, params in SMALL.items():
        declared = parameters_of(NOTEBOOKS[STEMS.index(stem)])
        assert set(params) <= set(declared), stem


# -- results ------------------------------------------------------------------------------

def test_01_tour(executed):
    r = records(executed, "01_tour")
    assert r["policies"] == ["nopage", "nopage_refault", "fault_retry", "fault_retry_unbounded",
                             "fault_retry_v57"]
    lw = r["lock_wait_total_ns"]
    # dropping mmap_sem during reads removes (nearly) all lock waiting
    assert lw["fault_retry"] < lw["nopage"] / 10
    assert r["fault_latency_p99_ns"]["fault_retry"] <= r["fault_latency_p99_ns"]["nopage"]


def test_02_signals_spufs(executed):
    r = records(executed, "02_signals_spufs")
    # blocking nopage: a signal waits for the (10-100 ms) wait to end
    assert r["signal_latency_p50_nopage_ns"] > 1_000_000
    assert r["time_to_kill_nopage_ns"] > 1_000_000
    # NOPAGE_REFAULT: delivered at once, of the order of the signal cost
    assert r["signal_latency_p50_refault_ns"] < 100_000
    assert r["time_to_kill_refault_ns"] < 100_000
    assert r["retries_per_fault_refault"] > 0
    # a held signal waits the residual of its wait: median a (1 - 1/sqrt 2) for waits
    # uniform on [0, a], well below the mean wait a/2; the simulated median within 4
    # standard errors of it
    assert r["signal_residual_p50_closed_ns"] == pytest.approx(0.2929 * 2 * r["wait_mean_ns"],
                                                                rel=0.001)
    assert abs(r["signal_residual_p50_z"]) < 4
    # nopage_refault's restarts match the closed form within sampling error, in both
    # columns: 4 standard errors of the pooled means (6,000 faults a rate here), and the
    # relative differences that follow from them
    assert r["restart_max_abs_z"] < 4
    assert r["restart_latency_ratio_max_dev"] < 0.05
    assert r["restart_retries_max_dev"] < 0.1


def test_03_mmap_sem(executed):
    r = records(executed, "03_mmap_sem_google")
    # Lespinasse: 55/s before the patch, set by the 18 ms reads
    assert r["writer_ops_per_s_nopage"] == pytest.approx(55.5, rel=0.05)
    # orders of magnitude more after it
    assert r["writer_ops_per_s_fault_retry"] > 1_000 * r["writer_ops_per_s_nopage"]
    assert r["writer_ops_per_s_fault_retry_calibrated"] == pytest.approx(15_000, rel=0.05)
    assert r["writer_ops_per_s_nopage_calibrated"] == pytest.approx(55.5, rel=0.05)
    # what carries over unchanged is nopage's rate (set by the disk); the ratio between
    # the policies matches his 15,000 / 55 only with the calibrated loop cost
    assert r["writer_speedup_calibrated"] == pytest.approx(15_000 / 55, rel=0.05)
    assert r["writer_speedup"] > 5 * r["writer_speedup_calibrated"]
    assert r["google_writer_ops_per_s_fault_retry"] > 10 * r["google_writer_ops_per_s_nopage"]
    assert r["google_fault_latency_p99_nopage_ns"] > r["google_fault_latency_p99_fault_retry_ns"]


def test_04_retry_storms(executed):
    r = records(executed, "04_retry_storms_dos")
    # Morton's DoS: only the unbounded retry livelocks under the adversary
    assert r["livelock_policies"] == ["fault_retry_unbounded"]
    assert r["livelock_fault_retry_unbounded"]
    assert not r["livelock_fault_retry"] and not r["livelock_fault_retry_v57"]
    # one retry at most: one extra read and wake-up per fault in place of a page-cache hit,
    # so the slowdown stays under the exact bound, itself below 2
    assert r["max_slowdown_fault_retry"] <= r["fault_retry_bound_at_worst"] * (1 + 1e-9)
    assert r["fault_retry_bound_at_worst"] < 2
    assert r["max_slowdown_over_bound_bounded"] <= 1e-9
    assert r["max_retries_per_fault_fault_retry"] == 1.0
    # unbounded retries per fault are 1 + p / (1 - p) (the retry every fault makes, then a
    # geometric count), within 3 standard errors at every rate whose runs finished
    from vmlab.studies import dos
    assert r["retries_z_unbounded"]  # at least one rate to compare
    for rate, predicted in r["retries_predicted_unbounded"].items():
        p = dos.eviction_probability(float(rate))
        assert predicted == pytest.approx(1 + p / (1 - p), rel=1e-9)
        if rate in r["retries_z_unbounded"]:
            assert abs(r["retries_z_unbounded"][rate]) <= 3
        else:  # cut by the horizon: a lower bound
            assert r["retries_measured_unbounded"][rate] < predicted
    # a signal storm re-opens the window for 5.7's signal check, not for fault_retry
    assert "fault_retry_v57" in r["storm_livelock_policies"]
    assert "fault_retry" not in r["storm_livelock_policies"]
    # net of signal handling fault_retry keeps its bound (with it, Poisson luck may pass it)
    assert r["storm_max_slowdown_net_fault_retry"] <= r["storm_fault_retry_bound"] * (1 + 1e-9)
    assert r["storm_fault_retry_bound"] < 2
    el = r["series_elapsed_ns"]
    assert el["fault_retry_unbounded"] > 2 * el["fault_retry"]
    # the retry storm slows the victims down; they still complete every fault
    small = SMALL["04_retry_storms_dos"]
    n_all = small["SERIES_VICTIMS"] * small["SERIES_FAULTS"]
    assert r["series_faults_done"] == {p: n_all for p in el}


def test_05_nopfn_device(executed):
    r = records(executed, "05_nopfn_device")
    for p in ("nopfn", "nopage"):
        assert r[f"crossover_rel_error_{p}"] < 0.05
        assert r[f"crossover_fraction_{p}_sim"] == pytest.approx(r[f"crossover_fraction_{p}_closed"],
                                                                 rel=0.05)
    assert r["crossover_fraction_nopage_closed"] < r["crossover_fraction_nopfn_closed"]
    c = Costs()
    assert r["mmap_latency_remap_ns"] == c.remap_fixed_ns + 1024 * c.pte_ns
    assert r["stalled_remap_ns"] > 0 and r["stalled_lazy_ns"] == 0
    assert r["struct_page_bytes_nopage_full"] == 64 * 512  # the largest fraction, 0.5
    assert r["iomem_sigbus_nopage"] == 1


def test_06_real_programs(executed):
    r = records(executed, "06_real_programs")
    # the labels the prose describes: code, data and valgrind's client stack (near
    # 0x1fff000000, told by its push/pop records, not by its address)
    assert r["lackey_vma_labels"]["stack"] == 1 and r["lackey_vma_labels"]["text"] >= 1
    assert sum(r["lackey_vma_labels"].values()) == r["lackey_n_vmas"]
    major = r["lackey_major_faults"]
    assert major["1"] == r["lackey_file_pages"]  # everything fits: cold misses only
    assert major["0.25"] > major["1"]
    assert 1.0 < r["lackey_elapsed_ratio_fault_retry"] < 1.1
    assert r["perf_writer_wait_max_nopage_ns"] > 10 * r["perf_writer_wait_max_fault_retry_ns"]
    assert r["perf_fault_latency_p99_nopage_ns"] >= r["perf_fault_latency_p99_fault_retry_ns"]


def test_07_explorer(executed):
    r = records(executed, "07_explorer")
    assert r["explorer_policies"] == ["nopage", "nopage_refault", "fault_retry"]
    assert all(math.isfinite(v) and v > 0 for v in r["explorer_fault_latency_p99_ns"].values())
    # nopage_refault retries at the notebook's own signal rate (10 Hz), not only from 100 Hz
    # as the guide once said; without signals it never retries
    assert (r["explorer_refault_retries"] > 0) == (r["explorer_signal_hz"] > 0)
    assert r["explorer_signal_hz"] > 0


def test_08_kernel_agreement(executed):
    """The shipped recordings against the shipped native measurements (data/native, Linux
    6.18): numbers exact where the computation is (a replay of shipped files), the targets of
    issue 9 where they are reached (the misses, gzip's OOM limit and its counts where the
    kernel's spread is wide, are explained in the notebook and docs/model.md 11.8 and not
    pinned here)."""
    r = records(executed, "08_kernel_agreement")
    assert r["native_source_remeasured"] is False
    programs = ["gzip", "sort", "xz_T2", "awk", "python_dict", "sqlite", "md5sum"]
    for p in programs:   # target: 0.9 <= predicted / measured <= 1.1 with unlimited memory
        assert 0.9 <= r[f"fault_ratio_{p}"] <= 1.1, p
        assert r[f"fault_ratio_{p}"] == pytest.approx(
            r[f"predicted_faults_{p}"] / r[f"measured_faults_{p}"])
    assert r["programs_in_target"] == 7
    assert r["valgrind_only_faults_per_run"] == 5
    assert 1 <= r["vdso_faults_kernel_max"] <= 2
    # the recordings hold the vDSO's mappings and reads: the prediction takes its faults too
    assert r["vdso_fault_difference_abs_max"] <= 1
    assert r["file_fault_difference_abs_max"] <= 5
    # per object (libc's pages touched differently under valgrind): 3 faults at most, and
    # the locale files exactly the kernel's
    assert 1 <= r["file_object_difference_abs_max"] <= 3
    assert r["locale_fault_difference_abs_max"] == 0
    # the OOM limit of python_dict, where anonymous memory decides it, within 25%
    assert r["predicted_oom_limit_mb_python_dict"] == pytest.approx(
        r["kernel_oom_limit_mb_python_dict"], rel=0.25)
    # (the largest limit where the kernel killed a run, as the sweep names it: 1 of 5 at
    # 0.55 MB, none at 0.5 MB)
    assert r["kernel_oom_limit_mb_gzip"] == 0.55
    assert r["predicted_oom_limit_mb_md5sum"] is None      # shown "none", never NaN
    # target: the limit where major faults start rising within 25% of the kernel's; the
    # rule, the same for both sides and stated in the notebook: more than 2x the count at
    # the largest limit (the kernel's 5 at 0.5 MB for gzip is a rise, as vmlab's 8 is)
    assert r["knee_factor"] == 2
    for p in ("gzip", "python_dict", "md5sum"):
        assert r[f"predicted_knee_mb_{p}"] == pytest.approx(r[f"kernel_knee_mb_{p}"], rel=0.25)
    assert r["kernel_knee_mb_gzip"] == r["predicted_knee_mb_gzip"] == 0.5
    assert r["kernel_knee_mb_python_dict"] == r["predicted_knee_mb_python_dict"] == 5
    # md5sum's first rise is at 2.25 MB in both (4 major faults); the steep one is not:
    # at 1.5 MB the kernel takes 26, the prediction 2 (the kernel's reclaim call reaches
    # md5sum's text by a path the model does not have: docs/model.md 8.4), the one limit
    # without a kill where only one side has risen
    assert r["kernel_knee_mb_md5sum"] == r["predicted_knee_mb_md5sum"] == 2.25
    assert r["limits_rise_differs_mb_md5sum"] == [1.5]
    assert r["limits_rise_differs_mb_gzip"] == r["limits_rise_differs_mb_python_dict"] == []
    # target: counts within 2x wherever the kernel's own spread is narrower (and no run was
    # killed): gzip at 1 and 0.6 MB, python_dict at 8-5.5 MB (docs/model.md 11.8)
    assert r["limits_count_target_applies_gzip"] == 2
    assert r["limits_count_target_applies_python_dict"] == 4
    assert r["limits_count_target_applies_md5sum"] == 2
    for p in ("gzip", "python_dict", "md5sum"):
        assert r[f"limits_within_2x_where_applies_{p}"] == r[f"limits_count_target_applies_{p}"]
    # where memory is ample every cold run starts from the held snapshot, and the kernel's
    # major faults are the prediction's, page for page (docs/model.md 11.8): exec's own
    # write for gzip; for python_dict that and python3.11's text pages 400 and 96
    assert r["kernel_major_per_traced_run_gzip"] == 1
    assert r["kernel_major_per_traced_run_python_dict"] == 3
    assert r["kernel_major_per_traced_run_md5sum"] == 1
    for p in ("gzip", "python_dict", "md5sum"):
        assert r[f"predicted_major_at_largest_limit_{p}"] == r[f"kernel_major_per_traced_run_{p}"]
        assert r[f"measured_major_at_largest_limit_{p}"] == r[f"kernel_major_per_traced_run_{p}"]


def test_09_twenty_years_later(executed):
    from reference_result import engine_simulates_lock_designs

    if not engine_simulates_lock_designs():
        pytest.skip("the engine does not simulate the lock designs yet (docs/model.md 15)")
    r = records(executed, "09_twenty_years_later")
    per_vma = ("per_vma_lock", "per_vma_retry_vma", "per_vma_no_retry")
    # docs/model.md 15.3, exactly: per_vma_lock one acquisition per retry and per fallback,
    # the other two per fallback only; per_vma_no_retry never retries
    for p in per_vma:
        assert r[f"ladder_n_mmap_lock_read_{p}"] == r[f"ladder_closed_form_reads_{p}"]
        assert r[f"retry_n_mmap_lock_read_{p}"] == r[f"retry_closed_form_reads_{p}"]
    assert r["ladder_n_retries_per_vma_no_retry"] == 0
    # the 'done when' on Lespinasse's workload
    for p in per_vma:
        assert (r[f"lespinasse_writer_ops_per_s_{p}"]
                >= 100 * r["lespinasse_writer_ops_per_s_nopage"])
    assert r["lespinasse_n_mmap_lock_read_per_vma_lock"] == r["lespinasse_n_faults"]
    assert r["lespinasse_n_mmap_lock_read_per_vma_retry_vma"] == 0
    assert r["lespinasse_n_mmap_lock_read_per_vma_no_retry"] == 0
    assert r["lespinasse_n_retries_per_vma_no_retry"] == 0
    assert r["lespinasse_writer_ops_per_s_fault_retry"] == pytest.approx(15_000, rel=0.05)
    # pft-threads: the mean field within 6% (16 pages a thread: the threads' staggered start
    # weighs more than at full size, 1.5%), the per-VMA change within 1 point of its closed
    # form, the cited baseline shape within 25%
    assert r["pft_mean_field_max_error"] < 0.06
    assert r["pft_vma_mean_field_max_error"] < 0.06
    assert r["pft_vma_mean_field_change_max_error"] < 0.01
    assert r["pft_12_over_1"] == pytest.approx(4.97 / 0.90, rel=0.25)
    assert 1.0 < r["pft_128_over_30"] < 1.25
    # the constants come from the cited runs (docs/model.md 15.11)
    assert (r["pft_shared_ns"], r["pft_miss_ns"], r["pft_line_ns"]) == (62, 202, 43)
    # per-VMA locks on pft's one region (docs/model.md 15.11): one line per operation and
    # nothing shared, no gain; the cited run's layout slower at 4 threads (the re-read) and
    # 22-27% faster at 128; 6.4's layout (nothing re-read) faster at 4 threads too
    assert abs(r["pft_vma_max_threads_one_line"]) < 0.01
    assert -0.20 <= r["pft_vma_4"] <= 0 and 0.22 <= r["pft_vma_max_threads"] <= 0.27
    assert r["pft_vma_4_6_4"] > 0 and r["pft_vma_max_threads_6_4"] > r["pft_vma_max_threads"]
    assert r["pft_vma_1"] == pytest.approx(1351 / 1358 - 1)
    # the cited runs' time per fault, split (docs/model.md 15.11): the numbers the prose uses
    dec, wfit = ladder.pft_cited_decomposition(), ladder.pft_cited_word_fit()
    assert r["pft_cited_shared_over_1_30"] == pytest.approx(dec.loc[30, "shared_over_1"])
    assert r["pft_cited_vma_word_4_ns"] == pytest.approx(dec.loc[4, "vma_lock_word_ns"])
    assert r["pft_cited_mmap_word_4_ns"] == pytest.approx(dec.loc[4, "mmap_lock_word_ns"])
    assert r["pft_cited_word_ratio_128"] == pytest.approx(dec.loc[128, "word_ratio"])
    assert r["pft_cited_word_fit"]["vma_lock"] == pytest.approx(list(wfit["vma_lock"]))
    # a VMA per thread: the shared work bounds per-VMA locks near the cited +157%
    assert r["pft_vma_split_max_threads"] == pytest.approx(r["pft_cited_split_128"], abs=0.4)
    # ebizzy: speculative and per-VMA faults leave the lock word and the munmap queue
    assert r["spf_ratio_16"] > 1.4 and r["per_vma_ratio_16"] > 1.4
    assert r["spf_n_mmap_lock_read_16"] == r["spf_n_vma_lock_fallbacks_16"]
    # the merged band: its changes fall in several times as many speculative windows as a
    # chunk's neighbours' do; simulated with the whole-hold count, per-VMA faults
    # fall back (no gain) and spf keeps part of its gain
    assert r["spf_band_abort_estimate_16"] > 2 * r["spf_abort_fraction_16"]   # 7x at full size
    assert r["merged_per_vma_ratio_16"] == pytest.approx(1.0, abs=0.05)
    assert 1.1 < r["merged_spf_ratio_16"] < r["spf_ratio_16"]
    # simulated with Dufour's count (docs/model.md 15.4 spf_count="change", each change
    # where its writer's call makes it, 15.12) on the cited runs' kernel (no munmap
    # downgrade): the band aborts more than a chunk's neighbours do, and spf keeps at least
    # its gain under the hold rule; the estimate, which places the changes the same way,
    # finds exactly the simulated aborts on the run's own timeline
    assert r["dufour_abort_fraction_16"] > r["spf_abort_fraction_16"]
    assert r["merged_spf_ratio_16"] <= r["dufour_spf_ratio_16"] < r["spf_ratio_16"]
    assert r["dufour_abort_fraction_16"] == r["dufour_band_abort_estimate_16"]
    # today's kernels (each munmap downgrading before its zap, 15.13): Dufour's count still
    # aborts on the band and keeps a gain; per-VMA locks on the band still fall back
    assert 0 < r["today_dufour_abort_fraction_16"] < 0.1
    assert r["today_dufour_spf_ratio_16"] > 1.1
    assert r["today_merged_per_vma_ratio_16"] == pytest.approx(1.0, abs=0.05)
    # this host's kernel (6.18) on a cold file scan: per_vma_lock takes mmap_lock where the
    # capture did, for the first read's retry and for each readahead mark's (11.5)
    assert r["ra_host_reads"] == r["ra_per_vma_lock_reads"] == 9
    assert r["ra_max_instant_error"] < 0.01
    assert r["ra_retry_vma_reads"] == 0 and r["ra_retry_vma_retries"] == 9
    assert r["ra_no_drop_reads"] == 1
    # the seven programs (docs/model.md 15.8): per_vma_lock within 2 of the host's median
    # read acquisitions per class, the host's own spread; gzip's faults 25 on the host
    assert r["callers_max_gap"] <= 2 and r["callers_lackey_max_gap"] <= 3
    assert r["callers_host_faults_gzip"] == 25
    assert abs(r["callers_vmlab_faults_gzip"] - 25) <= 2
    assert r["callers_vmlab_kernel_gzip"] >= 17
    # retry under the VMA lock: fewer acquisitions, less total read wait.  With the
    # non-fault readers at the measured rate (0.400 per retry, docs/model.md 15.9) the
    # acquisitions fall 3.5x, as published (20,010 -> 5,719), within the stated 3x-4x; the
    # readers take mmap_lock under every design, the same number of times
    assert r["retry_other_readers_per_retry"] == pytest.approx(5_719 / 14_291)
    assert 3.0 <= r["retry_reads"] <= 4.0
    assert r["retry_wait"] > 1
    n_other = {r[f"retry_n_mmap_lock_read_other_{p}"] for p in per_vma}
    assert len(n_other) == 1 and n_other.pop() == pytest.approx(
        0.400 * r["retry_n_retries_per_vma_lock"], rel=0.05)
    for p in per_vma:
        assert r[f"retry_n_mmap_lock_read_total_{p}"] == (
            r[f"retry_n_mmap_lock_read_{p}"] + r[f"retry_n_mmap_lock_read_other_{p}"])
    # the what-if: long readers that are not retries fill the 1-100 ms bins under both
    # designs, so retrying under the VMA lock empties them far less than published
    assert r["whatif_long_waits_before"] > 0
    assert r["whatif_long_waits_after"] > 0.05 * r["whatif_long_waits_before"]
    # the plain app start's retries all find their page: none holds mmap_lock across a read
    assert r["retry_long_fault_holds"] == 0
    # the second what-if (docs/model.md 15.10): once unmapped folios are dropped, some
    # retries under per_vma_lock read their page again holding mmap_lock; under
    # per_vma_retry_vma they hold the VMA lock (mmap_lock only after a lookup fell back).
    # The acquisitions of 15.3 stay exact either way
    for tag in ("onfile25", "onfile0"):
        for p in ("per_vma_lock", "per_vma_retry_vma"):
            assert r[f"reread_{tag}_0_long_fault_holds_{p}"] == 0
            for hz in (0, 50_000):
                assert r[f"reread_{tag}_{hz}_closed_form_gap_{p}"] == 0
        assert r[f"reread_{tag}_50000_long_fault_holds_per_vma_retry_vma"] <= (
            r[f"reread_{tag}_50000_fallbacks_per_vma_retry_vma"])
        assert r[f"reread_{tag}_50000_read_wait_ns_per_vma_lock"] > (
            r[f"reread_{tag}_0_read_wait_ns_per_vma_lock"])
    assert r["reread_onfile25_50000_long_fault_holds_per_vma_lock"] > 0
    assert 0 < r["reread_onfile25_50000_fraction"] < 0.05
    # with writers on no file VMA nothing write-locks a VMA: no lookup falls back, and under
    # per_vma_retry_vma no reader of mmap_lock can wait behind a re-read
    assert r["reread_onfile0_50000_fallbacks_per_vma_retry_vma"] == 0
    assert r["reread_onfile0_50000_long_waits_per_vma_retry_vma"] == 0
    # the third what-if (docs/model.md 15.14): woken readers hold mmap_lock until they run.
    # The acquisitions do not move with the wake-up; the waits grow far faster than them
    assert r["wakeup_host_n"] > 1000 and r["wakeup_host_p99_ns"] > 1_000_000
    reads = [r[f"wakeup_{s}_retry_reads"] for s in ("0", "0.2", "1")]
    assert max(reads) == pytest.approx(min(reads), rel=0.05)
    assert r["wakeup_0_retry_wait"] < 2 * r["wakeup_0_retry_reads"]
    assert r["wakeup_0.2_retry_wait_min"] > 3 * r["wakeup_0_retry_wait"]
    assert r["wakeup_0_long_waits_per_vma_lock"] == 0
    for p in ("per_vma_lock", "per_vma_retry_vma"):
        means = [r[f"wakeup_{s}_read_wait_mean_ns_{p}"] for s in ("0", "0.2", "1")]
        assert means == sorted(means)
    assert r["wakeup_1_long_waits_per_vma_lock"] > r["wakeup_1_long_waits_per_vma_retry_vma"]
    # the judged app start (this host's wake-ups under load busy, the 6.x lock): the waits
    # fall far more than the acquisitions, and more than with the lighter load's wake-ups
    # (the full-size figures are checked in tests/test_studies_ladder.py)
    assert r["busy_busy_retry_wait_min"] > 3 * r["busy_busy_retry_reads"]
    assert r["busy_busy_retry_bins"] < 0.1
    assert r["busy_busy_retry_wait"] > r["busy_faulting_retry_wait"]
    assert r["reproduction_vmlab"]["retry_wait"] == pytest.approx(r["busy_busy_retry_wait"])
    assert r["retry_wait_idle"] == pytest.approx(r["retry_wait"])
    # the 2025-26 designs on the busy app start: with this host's wake-ups after reads, the
    # fault that holds its VMA lock across the read holds it through its wait for a CPU
    assert r["io_wakeup_host_n"] > 1000 and r["io_wakeup_host_p99_ns"] > 1_000_000
    nr, rv = "per_vma_no_retry", "per_vma_retry_vma"
    assert (r[f"debate_io_vma_lock_write_wait_ns_{nr}"]
            > 3 * r[f"debate_noio_vma_lock_write_wait_ns_{nr}"])
    assert (r[f"debate_io_vma_lock_write_wait_ns_{nr}"]
            > 10 * r[f"debate_io_vma_lock_write_wait_ns_{rv}"])
    assert r[f"debate_io_mmap_lock_read_wait_ns_{nr}"] > r[f"debate_io_mmap_lock_read_wait_ns_{rv}"]
    assert set(r["reproduction"]) >= {"lespinasse_after", "pft_12_over_1", "spf_16",
                                      "retry_wait", "retry_reads"}
    assert r["finding"].startswith("Reproduced ")
