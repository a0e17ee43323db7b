"""scripts/text_stream.c, the program behind docs/model.md 8.3 and 11.7.1's measurements:
it builds and reads its file in 32 KiB calls through its four loops (the checksum it
prints is the loops' own, computed here again), over one or more passes."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "scripts" / "text_stream.c"
CC = shutil.which("cc") or shutil.which("gcc")


def _checksum(data, passes):
    acc, mask = 0, (1 << 64) - 1
    for _ in range(passes):
        for lo in range(0, len(data), 32768):
            buf = data[lo:lo + 32768]
            for n in (1, 2, 3, 4):
                for b in buf:
                    acc = (acc * 131 + b + n) & mask
    return acc


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_text_stream_reads_its_file_through_its_four_loops(tmp_path):
    exe = tmp_path / "text_stream"
    subprocess.run([CC, "-O1", "-o", str(exe), str(SRC)], check=True)
    data = bytes((i * 7 + i // 100) % 251 for i in range(40_000))   # two calls, one short
    (tmp_path / "in.bin").write_bytes(data)
    for passes in (1, 2):
        out = subprocess.run([str(exe), str(tmp_path / "in.bin"), "0", str(passes)],
                             capture_output=True, text=True, check=True).stdout
        assert int(out) == _checksum(data, passes)
    bad = subprocess.run([str(exe), str(tmp_path / "missing")], capture_output=True, text=True)
    assert bad.returncode == 1 and "missing" in bad.stderr
