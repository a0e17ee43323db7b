"""Mutation fuzzing of every trace reader and of ``.vmt`` files (issue 13).

Shared by ``tests/test_fuzz.py`` (hypothesis drives the random choices, a few thousand cases)
and ``benchmarks/fuzz.py`` (long runs, a seeded ``random.Random`` per input).

An input is a valid seed file (lackey, din, csv, perf script output or a native trace)
changed by one to three mutations: bit flips, interesting bytes, long runs of blanks, digits
or hex, numbers of thousands of digits, deleted, duplicated or swapped lines and slices,
truncation, hostile lines from the issue; for ``.vmt`` also structured header changes (a
field of the wrong type or out of range, a missing, repeated or moved column) and corrupted
column bytes.

:func:`check` reads the input the way a user would (format detection, then the format's own
reader) and classifies the outcome:

``ok``
    a read whose trace is sound: equal column lengths, defined op codes, size 0 only for
    ``lock_w``; for a ``.vmt`` every column read equals the seed's (damage is never read);
    for text, every ``.vmt`` conversion reads back the same records;
``refused``
    a :class:`~vmlab.errors.VmlabError` whose message is one line;
``failure``
    anything else: another exception, a multi-line message, a wrong read, or more than
    ``time_limit_s`` seconds of CPU time (ten times that of wall time).
"""
from __future__ import annotations

import json
import os
import struct
import time
import traceback
from pathlib import Path

import numpy as np

from vmlab.errors import VmlabError
from vmlab.trace import Op, Trace, TraceMeta
from vmlab.trace.convert import convert, detect_format, read_trace
from vmlab.trace.native import ADDR_OFFSET, ALIGN, open_trace, save_trace

FIX = Path(__file__).parent / "fixtures"

#: Bytes that mean something to at least one reader.
INTERESTING_BYTES = b"\x00\t\n\r ,:/[]()-+.#=0179afxFX\x7f\x80\xff"
#: Tokens that break number parsing if not checked.
INTERESTING_TOKENS = [
    b"", b"-1", b"0", b"00000000000000000000000001", b"4294967296", b"65536",
    b"18446744073709551615", b"18446744073709551616", b"0x10000000000000000", b"1ffffffffffffffff",
    b"9" * 5000, b"f" * 5000, b"1." + b"9" * 12, b"4611686018.427387904", b"nan", b"inf",
    b"1e308", b"-0", b"0x", b"\xff\xfe", b"\xe2\x80\x8b", b"\xd9\xa3",  # U+200B, Arabic-Indic 3
]
#: Lines from the issue's reproductions (each once hung or crashed a reader).
HOSTILE_LINES = [
    b" " * 1500 + b"x",
    b"  1/2  1.000000000:  page-faults:  1000" + b" " * 20000,
    b"\r\r",
    b"  1/" + b"9" * 5000 + b"  1.0:  page-faults:  1000",
    b"  1/2  1" + b"9" * 5000 + b".0:  page-faults:  1000",
    b"  1/2  18446744074.0:  page-faults:  1000",
    b"  1/2 " + b"1 " * 3000,
    b"PERF_RECORD_COMM: " * 2000,
    b"I  " + b"f" * 5000 + b",8",
    b"0 " + b"0" * 5000 + b"1",
    b"1," + b"9" * 5000 + b",L",
]

_VMT_BAD_VALUES = [None, -1, 0, 1, 1.5, float("nan"), "x", "", [], {}, [[[]]], True,
                   2**32, 2**62, 2**64, 2**70, 4096, 65536, "<u8", "<i8", "<f8", "|u1", "<u1"]


def _lackey_seed():
    lines = (FIX / "lackey_true.txt").read_bytes().splitlines(keepends=True)
    return b"".join(lines[:50])


def _din_seed():
    rng = np.random.default_rng(7)
    out = []
    for k in range(40):
        a = int(rng.integers(0, 1 << 47))
        if k % 3:
            out.append(f"{k % 3} {a:x}\n")
        else:
            out.append(f"{'rwi'[k % 3]} 0x{a:x} {int(rng.integers(1, 64)):x}\n")
    return "".join(out).encode()


def _csv_seed():
    rng = np.random.default_rng(8)
    rows = ["tid,asid,addr,op,size,gap_ns"]
    for k in range(40):
        op = ["load", "store", "S", "ifetch", "modify", "lock_w"][k % 6]
        size = 0 if op == "lock_w" else int(rng.integers(1, 64))
        rows.append(f"{k % 3},{k % 2},0x{int(rng.integers(0, 1 << 47)):x},{op},{size},"
                    f"{int(rng.integers(0, 10**6))}")
    return ("\n".join(rows) + "\n").encode()


def _perf_seed(name, n):
    return b"".join((FIX / name).read_bytes().splitlines(keepends=True)[:n])


def _vmt_seed(with_gap, with_ranges=False):
    """A native trace of random records.  ``with_ranges``: also readers of mmap_lock that
    are not faults (``LOCK_R``, whose size is a hold in ns, 0 for the default) and writers
    that name their range (docs/model.md 15.2, 15.9): the native format's version 4."""
    rng = np.random.default_rng(11 if with_ranges else 9 if with_gap else 10)
    n = 120
    op = rng.integers(0, 6 if with_ranges else 5, n).astype(np.uint8)
    size = rng.integers(1, 300, n)
    if with_ranges:
        size = np.where(op == Op.LOCK_W, rng.integers(0, 3, n) * 4096, size)
        size = np.where(op == Op.LOCK_R, rng.integers(0, 3, n) * 1000, size)
    else:
        size = np.where(op == Op.LOCK_W, 0, size)
    size = size.astype(np.uint32)
    tr = Trace(rng.integers(0, 1 << 48, n).astype(np.uint64), op=op,
               tid=rng.integers(0, 4, n).astype(np.uint32) * 1000,
               asid=rng.integers(0, 2, n).astype(np.uint16), size=size,
               gap_ns=rng.integers(0, 10**6, n).astype(np.uint64) if with_gap else None,
               meta=TraceMeta(source="fuzz seed", notes="n"))
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "seed.vmt"
        save_trace(tr, p)
        return p.read_bytes()


def seeds():
    """``{name: (format, bytes)}`` of the valid inputs every mutation starts from."""
    return {
        "lackey": ("lackey", _lackey_seed()),
        "din": ("din", _din_seed()),
        "csv": ("csv", _csv_seed()),
        "perf_fields": ("perf", _perf_seed("perf_mmap_faults_fields.txt", 40)),
        "perf_addr": ("perf", _perf_seed("perf_mmap_faults_addr.txt", 40)),
        "perf_callchain": ("perf", _perf_seed("perf_mmap_faults_callchain_head.txt", 60)),
        "vmt_gap": ("vmt", _vmt_seed(True)),
        "vmt": ("vmt", _vmt_seed(False)),
        "vmt_v4": ("vmt", _vmt_seed(True, with_ranges=True)),
    }


# ------------------------------------------------------------------------------------
# mutations: each takes (bytes, rnd) where rnd is a random.Random, and returns bytes


def _pos(data, rnd):
    return rnd.randrange(len(data) + 1)


def flip_bit(data, rnd):
    if not data:
        return data
    i = rnd.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rnd.randrange(8))]) + data[i + 1:]


def set_byte(data, rnd):
    if not data:
        return data
    i = rnd.randrange(len(data))
    return data[:i] + bytes([rnd.choice(INTERESTING_BYTES)]) + data[i + 1:]


def insert_run(data, rnd):
    c = rnd.choice(b" \t0123456789abcdefABCDEF\n\r,:")
    k = rnd.choice([2, 16, 300, 1500, 5000, 20000])
    i = _pos(data, rnd)
    return data[:i] + bytes([c]) * k + data[i:]


def insert_token(data, rnd):
    i = _pos(data, rnd)
    return data[:i] + rnd.choice(INTERESTING_TOKENS) + data[i:]


def replace_field(data, rnd):
    """Replace one whitespace- or comma-separated field of a random line."""
    lines = data.split(b"\n")
    k = rnd.randrange(len(lines))
    fields = lines[k].replace(b",", b" ").split(b" ")
    sep = b"," if b"," in lines[k] else b" "
    j = rnd.randrange(len(fields))
    fields[j] = rnd.choice(INTERESTING_TOKENS)
    lines[k] = sep.join(fields)
    return b"\n".join(lines)


def delete_slice(data, rnd):
    i = _pos(data, rnd)
    return data[:i] + data[i + rnd.choice([1, 2, 8, 64, 4096]):]


def duplicate_slice(data, rnd):
    i = _pos(data, rnd)
    j = min(len(data), i + rnd.choice([1, 8, 64, 1000]))
    return data[:j] + data[i:j] * rnd.choice([1, 2, 50]) + data[j:]


def swap_lines(data, rnd):
    lines = data.split(b"\n")
    a, b = rnd.randrange(len(lines)), rnd.randrange(len(lines))
    lines[a], lines[b] = lines[b], lines[a]
    return b"\n".join(lines)


def truncate(data, rnd):
    return data[:_pos(data, rnd)]


def hostile_line(data, rnd):
    lines = data.split(b"\n")
    lines.insert(rnd.randrange(len(lines) + 1), rnd.choice(HOSTILE_LINES))
    return b"\n".join(lines)


def crlf(data, rnd):
    return data.replace(b"\n", b"\r\n")


TEXT_MUTATIONS = [flip_bit, set_byte, insert_run, insert_token, replace_field, delete_slice,
                  duplicate_slice, swap_lines, truncate, hostile_line, crlf]


def _split_vmt(data):
    hlen = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[16:16 + hlen]), hlen


def _join_vmt(data, hdr, hlen):
    raw = json.dumps(hdr).encode()
    if 16 + len(raw) > ADDR_OFFSET or len(data) < ADDR_OFFSET:
        return data  # no room before the columns (the writer puts them at ADDR_OFFSET)
    out = bytearray(data)
    out[12:16] = struct.pack("<I", len(raw))
    out[16:16 + max(hlen, len(raw))] = raw + b" " * max(0, hlen - len(raw))
    return bytes(out)


def header_field(data, rnd):
    """Set, delete or retype one header field (top level or of one column)."""
    try:
        hdr, hlen = _split_vmt(data)
    except (ValueError, struct.error):
        return flip_bit(data, rnd)
    if not isinstance(hdr, dict):
        return data
    target = hdr
    cols = hdr.get("columns")
    if isinstance(cols, list) and cols and rnd.random() < 0.6:
        target = rnd.choice(cols)
        if not isinstance(target, dict):
            return data
    keys = list(target) or ["x"]
    key = rnd.choice(keys + ["columns", "n_records"])
    action = rnd.random()
    if action < 0.15:
        target.pop(key, None)
    elif action < 0.3 and isinstance(target.get(key), int) and not isinstance(target[key], bool):
        target[key] += rnd.choice([-ALIGN, -8, -1, 1, 8, ALIGN, 1 << 32])
    else:
        target[key] = rnd.choice(_VMT_BAD_VALUES)
    return _join_vmt(data, hdr, hlen)


def header_columns(data, rnd):
    """Repeat, drop, reorder a column, or give two columns the same offset."""
    try:
        hdr, hlen = _split_vmt(data)
    except (ValueError, struct.error):
        return data
    cols = hdr.get("columns") if isinstance(hdr, dict) else None
    if not isinstance(cols, list) or len(cols) < 2:
        return data
    a, b = rnd.randrange(len(cols)), rnd.randrange(len(cols))
    action = rnd.randrange(4)
    if action == 0:
        cols.append(dict(cols[a]))
    elif action == 1:
        del cols[a]
    elif action == 2:
        cols[a], cols[b] = cols[b], cols[a]
    elif isinstance(cols[a], dict) and isinstance(cols[b], dict):
        cols[a]["offset"] = cols[b].get("offset")
    return _join_vmt(data, hdr, hlen)


def fixed_header(data, rnd):
    """Damage the magic, version or header length."""
    i = rnd.randrange(16)
    return data[:i] + bytes([rnd.randrange(256)]) + data[i + 1:]


def column_bytes(data, rnd):
    """Flip or overwrite bytes inside the column area."""
    start = ADDR_OFFSET
    if len(data) <= start:
        return flip_bit(data, rnd)
    i = rnd.randrange(start, len(data))
    k = rnd.choice([1, 1, 4, 64])
    return data[:i] + bytes(rnd.randrange(256) for _ in range(k)) + data[i + k:]


VMT_MUTATIONS = [header_field, header_field, header_columns, fixed_header, column_bytes,
                 column_bytes, flip_bit, truncate, delete_slice, duplicate_slice]


def mutate(fmt, data, rnd, max_mutations=3):
    """``data`` changed by 1 to ``max_mutations`` mutations suited to ``fmt``; returns
    ``(bytes, [mutation names])``."""
    pool = VMT_MUTATIONS if fmt == "vmt" else TEXT_MUTATIONS
    names = []
    for _ in range(rnd.randint(1, max_mutations)):
        m = rnd.choice(pool)
        data = m(data, rnd)
        names.append(m.__name__)
    return data, names


# ------------------------------------------------------------------------------------
# checking one input


def _sound(trace):
    """Why ``trace`` is not a sound read, or None."""
    n = len(trace)
    for k, v in trace.columns.items():
        if len(v) != n:
            return f"column {k} has {len(v)} records, addr {n}"
    op, size = np.asarray(trace.op), np.asarray(trace.size)
    if n and int(op.max()) > max(Op):
        return f"op code {int(op.max())} read"
    # size 0 is a writer of the whole address space (LOCK_W) or a reader's default hold
    # (LOCK_R); an access has a size
    if n and np.any((size == 0) & (op != Op.LOCK_W) & (op != Op.LOCK_R)):
        return "a size-0 access read"
    return None


def check(path, fmt, data, original=None, *, convert_to=None, time_limit_s=1.0, options=None):
    """Write ``data`` to ``path`` and read it as a user would; return ``(outcome, detail,
    cpu_seconds)``.

    ``outcome`` is ``"ok"``, ``"refused"`` (detail: the message) or ``"failure"`` (detail:
    what went wrong).  ``original`` is the seed's :class:`Trace` for ``.vmt`` inputs: a read
    must return the same columns.  ``convert_to``: a ``.vmt`` path to also convert a text
    input to and read back.
    """
    path = Path(path)
    path.write_bytes(data)
    t0 = time.perf_counter()
    c0 = time.process_time()
    outcome, detail = "ok", ""
    try:
        if fmt == "vmt":
            tr = read_trace(path)  # detection, then open_trace with verification
        else:
            try:  # detection must answer (a name or one line) even when the reader refuses
                detect_format(path)
            except VmlabError as e:
                if "\n" in str(e):
                    raise AssertionError(f"multi-line detection message: {e}") from None
            tr = read_trace(path, fmt, **(options or {}))
        why = _sound(tr)
        if why:
            outcome, detail = "failure", f"unsound read: {why}"
        elif fmt == "vmt" and original is not None:
            for k, v in tr.columns.items():
                if k not in original.columns or not np.array_equal(v, original.columns[k]):
                    outcome, detail = "failure", f"damaged column {k!r} was read"
                    break
        elif convert_to is not None:
            convert(path, convert_to, show_progress=False)
            back = open_trace(convert_to)
            same = all(np.array_equal(back.columns[k], tr.columns[k]) for k in tr.columns)
            if not same or len(back) != len(tr):
                outcome, detail = "failure", "the converted .vmt differs from the read"
        del tr
    except VmlabError as e:
        outcome, detail = "refused", str(e)
        if "\n" in detail:
            outcome, detail = "failure", "multi-line message: " + detail
    except Exception as e:  # noqa: BLE001 - the point: anything else is a finding
        outcome = "failure"
        detail = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}"
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    # The limit is on CPU time (all threads): what the input costs, whatever else the machine
    # runs.  Wall time gets ten times the limit, to still catch a wait that never ends.
    if outcome != "failure" and (cpu > time_limit_s or elapsed > 10 * time_limit_s):
        outcome, detail = "failure", (f"took {cpu:.2f} s of CPU, {elapsed:.2f} s of wall time "
                                      f"(limit {time_limit_s} s of CPU)")
    return outcome, detail, cpu


def seed_traces(seed_map):
    """The :class:`Trace` of each ``.vmt`` seed (what a read of a mutated copy must equal)."""
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, (fmt, data) in seed_map.items():
            if fmt == "vmt":
                p = Path(d) / f"{name}.vmt"
                p.write_bytes(data)
                t = open_trace(p)
                out[name] = Trace.from_columns({k: np.array(v) for k, v in t.columns.items()},
                                               t.meta)
    return out


def cleanup(*paths):
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


# ------------------------------------------------------------------------------------
# recordings: the mappings table's contents (valid checksums)

#: The shipped recordings the mappings mutations start from.
RECORDING_SEEDS = tuple(Path(__file__).resolve().parent.parent / "data" / "native" / name
                        for name in ("lackey_awk.vmt", "lackey_sqlite.vmt",
                                     "lackey_md5sum.vmt", "lackey_sort.vmt"))
#: Boundary values a mappings field may be set to (each kept only where its dtype holds it).
INTERESTING_FIELD_VALUES = (0, 1, 4095, 4096, 2**32 - 1, 2**47, 2**56, 2**63, 2**64 - 4096,
                            2**64 - 1)


def _odd_value(t, field, r, rnd):
    """A new value for ``t[field][r]``: a boundary value, another row's, or the row's own
    moved by a page or a MiB (kept inside the field's dtype)."""
    info = np.iinfo(t.dtype[field])
    how = rnd.random()
    if how < 0.4:
        return rnd.choice([x for x in INTERESTING_FIELD_VALUES if x <= info.max])
    if how < 0.7:
        return int(t[field][rnd.randrange(len(t))])
    v = int(t[field][r]) + rnd.choice([-4096, -1, 1, 4096, 1 << 20])
    return max(int(info.min), min(int(info.max), v))


def _odd_file(files, rnd):
    """Change one field of one of ``files`` (:class:`~vmlab.trace.mappings.FileInfo`): its
    size, its residency array (cut, grown, emptied, dropped), its readahead window or its
    folios (a pair that is no folio, one past the file's end)."""
    import dataclasses

    if not files:
        return
    i = rnd.randrange(len(files))
    f = files[i]
    field = rnd.choice(["size_bytes", "resident", "read_ahead_kb", "folios"])
    if field == "size_bytes":
        v = rnd.choice([0, 1, 4095, 4096, 2**40, 2**63 - 1, f.size_bytes * 2, f.size_bytes // 2])
    elif field == "resident":
        r = f.resident if f.resident is not None else np.ones(1, bool)
        v = rnd.choice([None, r[:len(r) // 2], np.ones(len(r) * 3 + 1, bool), r[:0], ~r])
    elif field == "read_ahead_kb":
        v = rnd.choice([None, 0, 1, 4, 2**20, 2**40])
    else:
        pages = max(1, f.size_bytes // 4096)
        v = rnd.choice([None, (), ((0, 2),), ((pages, 4),), ((0, 512), (512, 512)),
                        ((pages - pages % 8, 8),)])
    try:
        files[i] = dataclasses.replace(f, **{field: v})
    except VmlabError:
        pass        # (refused where it is made: the reader's check, tested elsewhere)


def mutate_mappings(trace, rnd):
    """``trace``'s mappings tables (``trace`` a recording) as a dict ``{"table", "reads",
    "moves", "placements", "zaps"}`` of copies with one to three fields changed
    (:func:`_odd_value`): mostly in the rows of the mappings table, else in the file reads
    table, or a move, placement or zap row added from the values of mapping rows (the
    shipped recordings have none) and then perhaps changed too.  The tables stay well
    formed as bytes; their meaning is what is fuzzed."""
    from vmlab.trace.mappings import MOVE_DTYPE, PLACEMENT_DTYPE, ZAP_DTYPE

    m = trace.mappings
    out = {"table": m.table.copy(), "reads": m.reads.copy(), "moves": m.moves.copy(),
           "placements": m.placements.copy(), "zaps": m.zaps.copy(), "files": list(m.files)}
    rows = out["table"]
    added = {"moves": MOVE_DTYPE, "placements": PLACEMENT_DTYPE, "zaps": ZAP_DTYPE}
    for _ in range(rnd.randint(1, 3)):
        which = rnd.choices(["table", "reads", "moves", "placements", "zaps", "files"],
                            [6, 2, 1, 1, 1, 2])[0]
        if which == "files":
            _odd_file(out["files"], rnd)
            continue
        if which in added and not len(out[which]):
            a, b = rows[rnd.randrange(len(rows))], rows[rnd.randrange(len(rows))]
            new = np.zeros(1, added[which])
            for f in new.dtype.names:      # each field from a mapping row's like-named one
                if f == "advice":
                    new[f] = 4                 # MADV_DONTNEED
                    continue
                src = {"to": "start", "at_record": "from_record"}.get(f, f)
                new[f] = (b if f == "to" else a)[src]
            out[which] = new
        t = out[which]
        if not len(t):
            continue
        r = rnd.randrange(len(t))
        field = rnd.choice(list(t.dtype.names))
        t[field][r] = _odd_value(t, field, r, rnd)
    return out


def check_recording(trace, tables, folder):
    """``trace`` with the mappings tables ``tables`` (:func:`mutate_mappings`), saved in
    ``folder`` (valid checksums), read back, made a scenario and simulated, as ``vmlab run``
    and ``vmlab validate`` do: ``(outcome, detail)`` with the outcomes of :func:`check`."""
    import vmlab
    from vmlab.engine.prepare import RUNS_KNOBS
    from vmlab.model.recorded import runnable, scenario_for
    from vmlab.trace.mappings import Mappings

    m = trace.mappings
    try:
        odd = Trace(**trace.columns, meta=trace.meta,
                    mappings=Mappings(tables["table"], tables.get("files", m.files), m.source,
                                      reads=tables["reads"], moves=tables["moves"],
                                      placements=tables["placements"], zaps=tables["zaps"]))
        path = Path(folder) / "recording.vmt"
        save_trace(odd, path)
        sc, _ = runnable(scenario_for(open_trace(path)), RUNS_KNOBS)
        vmlab.simulate(sc)
    except VmlabError as e:
        if "\n" in str(e):
            return "failure", "multi-line message: " + str(e)[:80]
        return "refused", str(e)[:70]
    except Exception as e:                                     # noqa: BLE001
        where = traceback.extract_tb(e.__traceback__)[-1]
        return "failure", (f"{type(e).__name__}: {str(e)[:80]} "
                           f"@ {Path(where.filename).name}:{where.lineno}")
    return "ok", ""
