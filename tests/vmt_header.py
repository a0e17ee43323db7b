"""Editing a native trace's JSON header in place, for the tests of damaged or old files."""
from __future__ import annotations

import json


def edit_header(path, change):
    """Rewrite ``path``'s JSON header through ``change(hdr)`` (it edits the dict in place),
    keeping the header area's length, so the columns and tables stay where they are; the
    version field after the magic follows ``hdr["version"]``."""
    raw = bytearray(path.read_bytes())
    hlen = int.from_bytes(raw[12:16], "little")
    hdr = json.loads(raw[16:16 + hlen])
    change(hdr)
    text = json.dumps(hdr).encode()
    assert len(text) <= hlen, "the edited header no longer fits its area"
    raw[16:16 + hlen] = text.ljust(hlen)
    raw[8:12] = int(hdr.get("version", 1)).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


def check_damaged_table(path, key, label, names, version):
    """A native trace at ``path`` with an optional table under header field ``key`` (its
    ``label`` in messages, its fields ``names``, the format ``version`` it needs): every
    damage to it (a flipped byte, a wrong row count, size, dtype, field type, missing
    offset, an older version) is refused on open with one line; ``path`` is left intact."""
    import re

    import pytest

    from vmlab.errors import TraceFormatError
    from vmlab.trace import open_trace
    from vmlab.trace.native import read_header

    good = path.read_bytes()
    entry = read_header(path)[key]
    raw = bytearray(good)
    raw[entry["offset"] + 3] ^= 0xFF
    path.write_bytes(bytes(raw))

    def refused(match):
        with pytest.raises(TraceFormatError, match=match) as e:
            open_trace(path)
        assert "\n" not in str(e.value)

    refused(f"checksum mismatch in {key}")
    quoted = ", ".join(f"'{n}'" for n in names)
    for change, match in (
            (lambda h: h[key].update(n_rows=2), f"{label}: {entry['nbytes']} bytes do not hold 2 rows"),
            (lambda h: h[key].update(nbytes=10**9), f"file is truncated: {key} needs bytes"),
            (lambda h: h[key].update(dtype=[[names[0], "<u2"], [names[1], "<u8"]]),
             re.escape(f"{label} has fields ('{names[0]}', '{names[1]}'), expected ({quoted})")),
            (lambda h: h.update({key: [1]}), f"header field '{key}' must be an object"),
            (lambda h: h[key].pop("offset"), f"header field '{key}' needs offset"),
            (lambda h: h.update(version=version - 1),
             f"header field '{key}' needs format version {version}, the file says version "
             f"{version - 1}")):
        path.write_bytes(good)
        edit_header(path, change)
        refused(match)
    path.write_bytes(good)
