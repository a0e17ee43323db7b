"""Recordings that map many files, and ranges mapped again many times: version 10's files
table, and the generations shifted to 2**63 and above (``git log`` found both)."""
from __future__ import annotations

import numpy as np
import pytest

import vmlab
from vmlab.errors import TraceFormatError
from vmlab.model.generations import SHIFT, separate
from vmlab.model.recorded import UNRECORDED, vmas_for
from vmlab.trace import Op, open_trace
from vmlab.trace.mappings import FOREVER, MAPPING_DTYPE, NO_FILE, Backing, FileInfo, Mappings
from vmlab.trace.native import (FILES_TABLE_VERSION, SUPPORTED_VERSIONS, TraceWriter,
                                read_header)
from vmt_header import edit_header  # noqa: E402

PS = 4096
A = 0x7F0000000000


def _many_files(n):
    """``n`` one-page files (``git log`` maps each loose object it reads), each mapped at A
    in turn and read once."""
    files = [FileInfo(f"/repo/.git/objects/{i:02x}/{i:038x}", 1, 1000 + i, PS,
                      np.ones(1, bool), "at_open") for i in range(n)]
    t = np.zeros(n, MAPPING_DTYPE)
    for i in range(n):
        t[i] = (0, A, A + PS, 1, 0, Backing.FILE, i, 0, i, i + 1)
    return Mappings(t, files, "test")


def _write(path, mappings, n):
    with TraceWriter(path, mappings=mappings) as w:
        w.append(addr=np.full(n, A, np.uint64), op=np.full(n, Op.LOAD, np.uint8))
    return open_trace(path)


def test_files_that_do_not_fit_the_header_go_to_a_table_of_their_own(tmp_path):
    # 470 files filled the 64 KiB header ("trace metadata too long for the header")
    m = _many_files(600)
    tr = _write(tmp_path / "g.vmt", m, 600)
    hdr = read_header(tmp_path / "g.vmt")
    assert hdr["version"] == FILES_TABLE_VERSION == 10 and 10 in SUPPORTED_VERSIONS
    assert "files" not in hdr and hdr["files_table"]["nbytes"] > 65536
    assert tr.mappings == m
    # a few files stay in the header: the file keeps the version it had (2)
    few = _write(tmp_path / "f.vmt", _many_files(5), 5)
    assert read_header(tmp_path / "f.vmt")["version"] == 2 and few.mappings == _many_files(5)


def test_a_damaged_files_table_is_one_clear_error(tmp_path):
    p = tmp_path / "g.vmt"
    _write(p, _many_files(600), 600)
    good = p.read_bytes()
    entry = read_header(p)["files_table"]
    raw = bytearray(good)
    raw[entry["offset"] + 5] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(TraceFormatError, match="checksum mismatch in files_table"):
        open_trace(p)
    p.write_bytes(good)
    edit_header(p, lambda h: h.update(version=9))
    with pytest.raises(TraceFormatError, match="'files_table' needs format version 10"):
        open_trace(p)


def test_a_range_mapped_again_past_128_generations_keeps_its_vmas():
    """A range mapped again by 130 files in turn, each read: generation k sits at
    ``k << 56``, 2**63 and above from the 128th, where an int64 page bound turned negative
    and the pages read there became an 'unrecorded' VMA over the file's."""
    n = 130
    m = _many_files(n)
    tr = vmlab.Trace(np.full(n, A, np.uint64), op=np.full(n, Op.LOAD, np.uint8),
                     mappings=m)
    sep = separate(tr)
    assert int(np.asarray(sep.addr).max()) == A + ((n - 1) << SHIFT) >= 1 << 63
    v = vmas_for(tr)
    assert not [x for x in v if x.name.startswith(UNRECORDED + "@")]
    assert sorted(x.start for x in v) == [A + (k << SHIFT) for k in range(n)]
    assert len(vmlab.simulate(vmlab.model.recorded.scenario_for(tr)).faults) == n


def test_an_anonymous_range_over_2_63_is_no_unrecorded_vma():
    t = np.zeros(1, MAPPING_DTYPE)
    hi = (1 << 63) + A
    t[0] = (0, hi, hi + 3 * PS, 3, 0, Backing.ANON, NO_FILE, 0, 0, FOREVER)
    tr = vmlab.Trace(np.array([hi + PS, hi + 2 * PS + 8], np.uint64),
                     op=np.full(2, Op.STORE, np.uint8), mappings=Mappings(t, [], "test"))
    assert [(x.start, x.end, x.backing) for x in vmas_for(tr)] == [(hi, hi + 3 * PS, "anon")]
