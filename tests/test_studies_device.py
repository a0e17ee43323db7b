"""vmlab.studies.device: exact totals where the model fixes them, and the crossover's
closed form (Sorensen's nopfn against remap_pfn_range)."""
import math

import pytest

from vmlab import Costs, ScenarioError
from vmlab.studies import device

COSTS = Costs()


def test_crossover_fraction_formula():
    # f* = (remap_fixed_ns + N pte_ns) / (N (fault_ns + driver_ns [+ struct_page_ns]))
    n = 4096
    assert device.crossover_fraction(COSTS, n, "nopfn") == (20_000 + n * 60) / (n * 800)
    assert device.crossover_fraction(COSTS, n, "nopage") == (20_000 + n * 60) / (n * 900)
    c = Costs(remap_fixed_ns=10_000, pte_ns=100, fault_ns=1_000, driver_ns=0)
    assert device.crossover_fraction(c, 1000, "nopfn") == pytest.approx(110_000 / 1_000_000)
    assert device.crossover_fraction(None, n) == device.crossover_fraction(COSTS, n, "nopfn")
    with pytest.raises(ScenarioError):
        device.crossover_fraction(COSTS, n, "remap_pfn_range")


def test_crossover_tends_to_pte_over_fault_cost():
    assert device.crossover_fraction(COSTS, 1 << 30) == pytest.approx(60 / 800, rel=1e-4)


def test_eager_vs_lazy_totals_are_exact():
    df = device.eager_vs_lazy([0.01, 0.1, 0.5], n_pages=2048, n_jobs=1)
    for _, row in df.iterrows():
        k = row["touched_pages"]
        if row["policy"] == "remap_pfn_range":
            assert row["total_ns"] == device.eager_total_ns(COSTS, 2048, k)
            assert row["mmap_latency_ns"] == 20_000 + 2048 * 60
            assert row["n_faults"] == 0
            assert row["page_table_bytes"] == 4096 * 4
            # the other thread's first fault (at 1 µs) waits for the rest of the remap
            assert row["stalled_ns"] == 20_000 + 2048 * 60 - 1_000
            assert row["struct_page_bytes"] == 0
        else:
            assert row["total_ns"] == device.lazy_total_ns(COSTS, k, row["policy"])
            assert row["mmap_latency_ns"] == 0 and row["stalled_ns"] == 0
            assert row["n_faults"] == k
            assert row["page_table_bytes"] == 4096 * math.ceil(k / 512)
            sp = 64 * k if row["policy"] == "nopage" else 0
            assert row["struct_page_bytes"] == sp


@pytest.mark.parametrize("lazy", ["nopfn", "nopage"])
def test_simulated_crossover_matches_closed_form(lazy):
    fr = [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.2]
    df = device.eager_vs_lazy(fr, n_pages=4096, policies=(lazy, "remap_pfn_range"), n_jobs=1)
    sim = device.simulated_crossover(df, lazy=lazy)
    assert sim == pytest.approx(device.crossover_fraction(COSTS, 4096, lazy), rel=0.01)


def test_simulated_crossover_nan_without_crossing():
    df = device.eager_vs_lazy([0.5, 1.0], n_pages=512, n_jobs=1)
    assert math.isnan(device.simulated_crossover(df))


def test_touched_pages_and_validation():
    assert device.touched_pages(1000, 0.0) == 1
    assert device.touched_pages(1000, 0.1234) == 123
    with pytest.raises(ScenarioError):
        device.device_mapping(100, 1.5)
    with pytest.raises(ScenarioError):
        device.device_mapping(100, 0.5, backing="file")


def test_iomem_sigbus_under_nopage_only():
    df = device.eager_vs_lazy([0.1], n_pages=512, backing="iomem", n_jobs=1).set_index("policy")
    assert df.loc["nopage", "n_sigbus"] == 1 and df.loc["nopage", "n_faults"] == 1
    assert df.loc["nopfn", "n_sigbus"] == 0 and df.loc["nopfn", "n_faults"] == 51
    assert df.loc["remap_pfn_range", "n_faults"] == 0
