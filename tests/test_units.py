"""Values read with their units: the one formatter behind tables, readouts and prose."""
import math

import pandas as pd
import pytest

from vmlab.units import (fmt_bytes, fmt_change, fmt_count, fmt_ns, fmt_value, format_table,
                         label_of, unit_of)


@pytest.mark.parametrize("ns, text", [
    (0, "0 ns"), (1, "1 ns"), (850, "850 ns"), (999.6, "1.00 µs"), (70_312, "70.3 µs"),
    (25_910_000, "25.9 ms"), (2.591e7, "25.9 ms"), (1.5e9, "1.50 s"), (None, "n/a"),
    (math.nan, "n/a")])
def test_times(ns, text):
    assert fmt_ns(ns) == text


@pytest.mark.parametrize("v, text", [
    (0, "0"), (1234, "1,234"), (9_999, "9,999"), (10_000, "10.0 k"), (15_023.7, "15.0 k"),
    (2_591_000, "2.59 M"), (0.5512, "0.551"), (True, "True")])
def test_counts(v, text):
    assert fmt_count(v) == text


def test_by_name():
    assert unit_of("fault_latency_ns_p99") == "ns" and unit_of("writer_ops_per_s_nopage") == "per_s"
    assert fmt_value("writer_ops_per_s", 555_487.0) == "555 k/s"
    assert fmt_value("adversary_rate_hz", 3e6) == "3.00 MHz"
    # rates take a prefix from 1 kHz, so a list of them reads in one style
    assert [fmt_value("signal_rate_hz", v) for v in (500, 1000, 10_000)] == \
        ["500 Hz", "1.00 kHz", "10.0 kHz"]
    # the prefix follows the value as it reads: 999.96 Hz reads 1.00 kHz, not 1,000 Hz
    assert [fmt_value("rate_hz", v) for v in (999.96, 999_999.9, 999_499.0)] == \
        ["1.00 kHz", "1.00 MHz", "999 kHz"]
    assert fmt_count(9_999.6) == "10.0 k" and fmt_count(9_999) == "9,999"
    assert fmt_value("page_table_bytes", 32_768) == "32.0 KiB" == fmt_bytes(32 * 1024)
    assert fmt_value("kernel_s", 0.01234) == "0.0123 s"
    assert fmt_value("elapsed_ns", {"nopage": 2e6, "fault_retry": None}) == \
        "nopage: 2.00 ms; fault_retry: n/a"
    assert fmt_value("policy", "nopage") == "nopage"
    assert label_of("fault_latency_ns_p99") == "fault latency p99"
    assert label_of("writer_ops_per_s") == "writer ops/s"


def test_format_table_by_columns_and_by_index():
    df = pd.DataFrame({"policy": ["nopage", "fault_retry"], "n_faults": [12_000, 200],
                       "fault_latency_ns_p99": [2.591e7, 115_000.0]})
    t = format_table(df)
    assert t["fault_latency_ns_p99"].tolist() == ["25.9 ms", "115 µs"]
    assert t["n_faults"].tolist() == ["12.0 k", "200"] and t["policy"].tolist() == ["nopage", "fault_retry"]
    tt = format_table(df.set_index("policy").T, by="index")
    assert tt.loc["fault_latency_ns_p99", "nopage"] == "25.9 ms"


def test_changes_read_signed_without_a_negative_zero_and_no_oom_reads_none():
    assert [fmt_change(x) for x in (0.135, -0.095, -0.00027, 0.00027, 0.0, float("nan"))] == \
        ["+13.5%", "-9.5%", "0.0%", "0.0%", "0.0%", "n/a"]
    assert fmt_change(12.3456, digits=0) == "+1,235%"
    # the summary's -1 of "no OOM kill" (docs/model.md section 12) is not a time or a thread
    assert fmt_value("oom_ns", -1) == "none" and fmt_value("oom_thread", -1) == "none"
    assert fmt_value("oom_ns", 2_500_000) == "2.50 ms" and fmt_value("oom_thread", 3) == "3"
