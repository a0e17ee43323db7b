"""Large folios at record time: the ``folios`` of a recording's files through the native
format.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from vmlab.errors import TraceFormatError
from vmlab.trace import Op, open_trace
from vmlab.trace.mappings import FOREVER, MAPPING_DTYPE, Backing, FileInfo, Mappings
from vmlab.trace.native import TraceWriter, read_header

PS = 4096
BASE = 0x400000


# -- recordings: the native format and the scenario ------------------------------------------
def _trace(tmp_path, folios, name="t.vmt", size=64):
    t = np.zeros(2, MAPPING_DTYPE)
    t[0] = (0, BASE, BASE + size * PS, 1, 0, Backing.FILE, 0, 0, 0, FOREVER)
    t[1] = (0, 0x10000000, 0x10000000 + size * PS, 1, 0, Backing.FILE, 1, 0, 0, FOREVER)
    files = [FileInfo("/data/f", 1, 2, size * PS, np.ones(size, bool), "before_run",
                      folios=folios),
             FileInfo("/data/g", 1, 3, size * PS, np.ones(size, bool), "before_run",
                      folios=())]
    with TraceWriter(tmp_path / name, mappings=Mappings(t, files, "test")) as w:
        w.append(addr=np.array([BASE, 0x10000000], np.uint64),
                 op=np.array([Op.LOAD, Op.LOAD], np.uint8))
    return open_trace(tmp_path / name)


def _rewrite_header(p, edit):
    raw = p.read_bytes()
    hlen = int.from_bytes(raw[12:16], "little")
    hdr = json.loads(raw[16:16 + hlen])
    edit(hdr)
    new = json.dumps(hdr).encode()
    assert len(new) <= 65536 - 16
    p.write_bytes(raw[:12] + len(new).to_bytes(4, "little") + new + raw[16 + len(new):])


def test_folios_round_trip_and_old_traces_load_with_none(tmp_path):
    lay = ((0, 16), (16, 4), (32, 32))
    tr = _trace(tmp_path, lay)
    f, g = tr.mappings.files
    assert f.folios == lay and g.folios == ()
    assert read_header(tmp_path / "t.vmt")["version"] == 2    # no version of its own
    assert tr.mappings == _trace(tmp_path, lay, name="u.vmt").mappings
    assert tr.mappings != _trace(tmp_path, ((0, 16),), name="v.vmt").mappings
    # an older recording: no folios in its files entries
    old = tmp_path / "old.vmt"
    old.write_bytes((tmp_path / "t.vmt").read_bytes())

    def strip(hdr):
        for item in hdr["files"]:
            item.pop("folios", None)
    _rewrite_header(old, strip)
    assert [x.folios for x in open_trace(old).mappings.files] == [None, None]
    assert _trace(tmp_path, None, name="n.vmt").mappings.files[0].folios is None


def test_damaged_folios_are_one_clear_error(tmp_path):
    _trace(tmp_path, ((0, 16),))
    p = tmp_path / "t.vmt"
    good = p.read_bytes()
    off = read_header(p)["files"][0]["folios"]["offset"]
    raw = bytearray(good)
    raw[off + 8] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(TraceFormatError, match=r"checksum mismatch in files\[0\].folios"):
        open_trace(p)
    # a pair that is no folio (the checksum made to agree): named, with the file
    raw = bytearray(good)
    raw[off + 8:off + 16] = (3).to_bytes(8, "little")
    p.write_bytes(bytes(raw))
    _rewrite_header(p, lambda h: h["files"][0]["folios"].update(crc32=None))
    with pytest.raises(TraceFormatError, match=r"files\[0\]: file '/data/f': folios: "
                                               r"\(0, 3\) is not a folio") as e:
        open_trace(p)
    assert e.value.path == str(p)
    p.write_bytes(good)
    _rewrite_header(p, lambda h: h["files"][0]["folios"].update(n_rows=5))
    with pytest.raises(TraceFormatError, match=r"files\[0\].folios: 16 bytes do not hold 5"):
        open_trace(p)
    with pytest.raises(TraceFormatError, match="overlaps"):
        FileInfo("/x", 1, 2, PS, folios=((0, 8), (4, 4)))
