"""Numbers with their units, for tables, readouts and prose: ``25.9 ms``, ``15.0 k/s``.

One place decides how a value reads, from the unit its name carries (STYLE.md: names carry
units): ``*_ns*`` is a time in nanoseconds, ``*_per_s`` a rate, ``*_hz`` a frequency,
``*_bytes`` a size, ``*_s`` seconds of wall clock; other numbers are counts or ratios.  The
CLI's table, the report's index, the explorer's readouts and the notebooks' tables and prose
all format through here, so ``2.591e+07`` never reaches a reader.

>>> fmt_ns(25_910_000)
'25.9 ms'
>>> fmt_value("writer_ops_per_s", 15_023.7)
'15.0 k/s'
>>> fmt_value("n_faults", 1234)
'1,234'
"""
from __future__ import annotations

import math

import numpy as np

#: Time units from the largest down: (name, nanoseconds per unit).
TIME_UNITS = (("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1.0))
_SI = (("G", 1e9), ("M", 1e6), ("k", 1e3))
_BYTES = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def _missing(v):
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _sig(v, digits=3):
    """``v`` with ``digits`` significant digits, no exponent for |v| < 1e15 (70, 2.59, 0.0012)."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    text = f"{v:,.{decimals}f}"
    # 3 significant digits of 99.96 round up to "100.0": drop the digit that is not significant
    if decimals and len(text.replace(",", "").replace("-", "").replace(".", "").lstrip("0")) > digits:
        text = f"{v:,.{decimals - 1}f}"
    return text


def fmt_ns(ns, digits=3):
    """A time in nanoseconds in the unit that reads best: ``850 ns``, ``70.3 µs``, ``25.9 ms``,
    ``1.50 s`` (``n/a`` for None or NaN)."""
    if _missing(ns):
        return "n/a"
    ns = float(ns)
    if ns == 0 or (abs(ns) < 1000 and ns == int(ns)):
        return f"{int(ns):,} ns"
    for k, (unit, scale) in enumerate(TIME_UNITS):
        if abs(ns) >= scale:
            text = _sig(ns / scale, digits)
            if k and abs(float(text.replace(",", ""))) >= 1000:  # 999.6 ns reads 1.00 µs
                return f"{_sig(ns / TIME_UNITS[k - 1][1], digits)} {TIME_UNITS[k - 1][0]}"
            return f"{text} {unit}"
    return f"{_sig(ns, digits)} ns"


def fmt_count(v, digits=3, suffix="", prefix_from=1e4):
    """A count or rate: exact with thousands separators below ``prefix_from`` (``1,234``),
    then with k, M or G (``15.0 k``, ``2.59 M``); fractions keep ``digits`` significant
    digits."""
    if _missing(v):
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    x = float(v)
    if not math.isfinite(x):
        return str(x)
    shown = abs(float(_sig(x, digits).replace(",", "")))   # x as it reads (999.96 -> 1,000)
    if shown >= prefix_from:
        for prefix, scale in _SI:
            if shown >= scale:
                return f"{_sig(x / scale, digits)} {prefix}{suffix}"
    sep = " " if suffix[:1].isalpha() else ""
    if float(x).is_integer():
        return f"{int(x):,}{sep}{suffix}"
    return f"{_sig(x, digits)}{sep}{suffix}"


def fmt_bytes(n):
    """A size: ``4.00 KiB``, ``256 KiB``, ``12.0 GiB``, ``512 B``."""
    if _missing(n):
        return "n/a"
    for unit, size in _BYTES:
        if abs(n) >= size:
            return f"{_sig(n / size)} {unit}"
    return f"{int(n)} B"


def unit_of(name):
    """The unit a column or record name carries: ``ns``, ``per_s``, ``hz``, ``bytes``, ``s``
    or ``""`` (a count or ratio)."""
    n = str(name).lower()
    if n.endswith("_ns") or "_ns_" in n or n == "ns":
        return "ns"
    if n.endswith("_per_s") or "_per_s_" in n:
        return "per_s"
    if n.endswith("_hz") or "_hz_" in n:
        return "hz"
    if n.endswith("_bytes") or "_bytes_" in n:
        return "bytes"
    if n.endswith("_s"):
        return "s"
    return ""


#: Summary fields whose -1 says "there is none" (docs/model.md section 12: no OOM kill).
NONE_BELOW_ZERO = frozenset({"oom_ns", "oom_thread"})


def fmt_change(x, digits=1):
    """A relative change ``x`` (0.135 for 13.5% more) as a signed percentage: ``+13.5%``,
    ``-9.5%``; one that rounds to zero reads ``0.0%`` (never ``-0.0%``)."""
    if _missing(x):
        return "n/a"
    v = round(100 * float(x), digits)
    return f"{0.0:.{digits}f}%" if v == 0 else f"{v:+,.{digits}f}%"


def fmt_value(name, v):
    """``v`` formatted for the unit ``name`` carries (see :func:`unit_of`); lists and dicts
    element by element."""
    if isinstance(v, dict):
        return "; ".join(f"{k}: {fmt_value(name, x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(name, x) for x in v)
    if _missing(v):
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if not isinstance(v, (int, float, np.integer, np.floating)):
        return str(v)
    if str(name) in NONE_BELOW_ZERO and v < 0:
        return "none"
    unit = unit_of(name)
    if unit == "ns":
        return fmt_ns(v)
    if unit == "per_s":
        return fmt_count(v, suffix="/s")
    if unit == "hz":   # (a prefix from 1 kHz: a list of rates reads in one style)
        return fmt_count(v, suffix="Hz", prefix_from=1e3) if v else "0 Hz"
    if unit == "bytes":
        return fmt_bytes(v)
    if unit == "s":
        return f"{_sig(float(v))} s"
    return fmt_count(v)


def label_of(name):
    """A column name as a header with its unit dropped: ``fault_latency_ns_p99`` ->
    ``fault latency p99`` (the formatted values say the unit)."""
    n = str(name)
    for token in ("_ns_", "_per_s", "_bytes", "_hz"):
        n = n.replace(token, "_" if token == "_ns_" else ("/s" if token == "_per_s" else ""))
    if n.endswith("_ns"):
        n = n[:-3]
    return n.replace("_", " ").strip()


def format_table(df, by="columns"):
    """A copy of DataFrame ``df`` with every number as text in its unit.

    ``by="columns"``: each value is formatted by its column's name (a ``compare()`` table);
    ``by="index"``: by its row's name (the same table transposed, one column per policy).
    Text, booleans and the index are kept; the headers keep their names.
    """
    import pandas as pd

    if by not in ("columns", "index"):
        raise ValueError(f"by must be 'columns' or 'index', got {by!r}")
    out = pd.DataFrame(index=df.index, columns=df.columns, dtype=object)
    for i, row in enumerate(df.index):
        for j, col in enumerate(df.columns):
            out.iat[i, j] = fmt_value(col if by == "columns" else row, df.iat[i, j])
    return out


__all__ = ["fmt_ns", "fmt_count", "fmt_bytes", "fmt_change", "fmt_value", "unit_of", "label_of",
           "format_table", "TIME_UNITS"]
