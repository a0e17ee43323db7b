#!/usr/bin/env bash
# Regenerate the real traces in data/ (see data/README.md, which this script rewrites).
#
#   scripts/make_data.sh                # small traces into data/ (the committed ones)
#   LARGE=1 scripts/make_data.sh        # uncapped / bigger runs into data/large/ (not committed)
#
# Environment:
#   PYTHON   Python with vmlab installed (default: .venv/bin/python if present, else python3)
#   OUT      output folder (default: data/, or data/large/ with LARGE=1)
#   KEEP     lackey records kept per trace (default 100000; ignored with LARGE=1)
#   ONLY     "lackey" or "perf" to make only that kind (the README is rewritten either way)
#
# Needs root (or an already permissive kernel.perf_event_paranoid and valgrind/perf/cc
# installed): it installs valgrind, linux-perf and gcc with apt-get when missing and sets
# kernel.perf_event_paranoid=-1.  Runs are real, so addresses, thread ids and times differ
# from one regeneration to the next (ASLR, scheduling, I/O); the record counts stay close.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
LARGE=${LARGE:-0}
if [[ "$LARGE" == 1 ]]; then
    OUT=${OUT:-$ROOT/data/large}
    KEEP=0          # 0: the whole lackey trace
else
    OUT=${OUT:-$ROOT/data}
    KEEP=${KEEP:-100000}
fi
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmlab-data.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'make_data.sh: %s\n' "$*" >&2; exit 1; }

"$PYTHON" -c "import vmlab.trace.convert" 2>/dev/null \
    || die "$PYTHON cannot import vmlab.trace.convert (set PYTHON to a Python with vmlab installed)"

# --------------------------------------------------------------------------- tools
need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v perf >/dev/null && perf --version >/dev/null 2>&1 || need+=(linux-perf)
command -v cc >/dev/null || need+=(gcc)
if ((${#need[@]})); then
    [[ $(id -u) == 0 ]] || die "missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root"
    say "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)
if ((paranoid > -1)); then
    [[ $(id -u) == 0 ]] || die "kernel.perf_event_paranoid is $paranoid; run as root or set it to -1"
    sysctl -q -w kernel.perf_event_paranoid=-1
fi
# mmap_sem writers seen by perf (the reader turns each into a LOCK_W record)
SYSCALLS=(mmap munmap mprotect mremap brk)
PERF_EVENTS=(-e page-faults -c 1 -d)
# (no grep -q: its early exit would kill perf with SIGPIPE and fail the pipeline)
if perf list 2>/dev/null | grep 'syscalls:sys_enter_mmap' >/dev/null; then
    for s in "${SYSCALLS[@]}"; do PERF_EVENTS+=(-e "syscalls:sys_enter_$s"); done
else
    say "WARNING: syscalls:* tracepoints unavailable; perf traces will have no LOCK_W records"
fi

# shquote ARGS...: the command line as one would type it (single quotes where needed)
shquote() {
    local out=() a q="'"
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then out+=("$a"); else out+=("$q${a//$q/$q\\$q$q}$q"); fi
    done
    printf '%s' "${out[*]}"
}
version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
NO_DATA="The trace holds no program data"

# --------------------------------------------------------------------------- helpers
# finish TEXT FORMAT NAME SOURCE NOTES: convert TEXT to OUT/NAME.vmt with vmlab's converter,
# then record the command and notes in the trace's metadata.
finish() {
    "$PYTHON" - "$@" "$WORK" "$OUT" <<'PYEOF'
import sys
from pathlib import Path
from vmlab.trace.convert import convert
from vmlab.trace.native import open_trace, save_trace

text, fmt, name, source, notes, work, out = sys.argv[1:8]
tmp = convert(text, Path(work) / f"{name}.tmp.vmt", fmt, show_progress=False)
trace = open_trace(tmp)
trace = trace.with_meta(source=source, notes=f"{notes} Reader: {trace.meta.notes}")
dst = save_trace(trace, Path(out) / f"{name}.vmt")
dst.chmod(0o644)  # the atomic writer's temporary file is created 0600
tmp.unlink()
print(f"   {dst.name}: {len(trace):,} records, {trace.n_threads} thread(s), "
      f"{dst.stat().st_size:,} bytes", file=sys.stderr)
PYEOF
}

# lackey NAME SKIP DESCRIPTION -- COMMAND...: valgrind lackey trace of COMMAND, records
# SKIP+1 .. SKIP+KEEP (all of them when KEEP=0), valgrind's header lines kept.
lackey() {
    local name=$1 skip=$2 desc=$3; shift 4
    [[ "$KEEP" == 0 ]] && skip=0
    say "lackey: $*"
    local txt="$WORK/$name.lackey"
    # valgrind dies of SIGPIPE once awk has its window: that is expected, hence no pipefail
    set +o pipefail
    (cd "$WORK" && valgrind --tool=lackey --trace-mem=yes --log-fd=3 "$@" 3>&1 1>/dev/null 2>/dev/null) \
        | awk -v skip="$skip" -v keep="$KEEP" '
            /^==/ { if (!started) print; next }
            { n++; if (n <= skip) next; started = 1; print
              if (keep > 0 && n >= skip + keep) exit }' > "$txt"
    set -o pipefail
    local got
    got=$(grep -vc '^==' "$txt" || true)
    ((got > 0)) || die "lackey produced no record for: $*"
    if ((KEEP > 0 && got < KEEP)); then say "WARNING: only $got records (wanted $KEEP)"; fi
    local window="records $((skip + 1)) to $((skip + got)) of the lackey output"
    ((KEEP == 0)) && window="the whole lackey output ($got records)"
    finish "$txt" lackey "$name" \
        "valgrind --tool=lackey --trace-mem=yes $(shquote "$@")" \
        "$desc Window: $window. $NO_DATA, only addresses, operations and sizes."
}

# perf_trace NAME DESCRIPTION -- COMMAND...: every page fault (and mmap_sem-writer syscall)
# of COMMAND and its threads/children, through perf script and vmlab's perf reader.
perf_trace() {
    local name=$1 desc=$2; shift 3
    say "perf: $*"
    (cd "$WORK" && perf record -q -m 1024 -o "$WORK/$name.data" "${PERF_EVENTS[@]}" -- "$@" \
        >/dev/null 2>"$WORK/$name.record.err") || { cat "$WORK/$name.record.err" >&2; die "perf record failed"; }
    perf script -i "$WORK/$name.data" -F comm,pid,tid,time,event,addr,trace --ns \
        >"$WORK/$name.perf" 2>"$WORK/$name.script.err"
    if grep -qi 'lost' "$WORK/$name.record.err" "$WORK/$name.script.err"; then
        say "WARNING: perf lost events for $name:"; grep -hi lost "$WORK/$name".*.err >&2
    fi
    finish "$WORK/$name.perf" perf "$name" \
        "perf record ${PERF_EVENTS[*]} -- $(shquote "$@"); perf script -F comm,pid,tid,time,event,addr,trace --ns" \
        "$desc $NO_DATA, only fault and syscall addresses, thread ids and times."
}

# --------------------------------------------------------------------------- inputs
# Deterministic inputs, generated (no data is downloaded or shipped).
if [[ "$LARGE" == 1 ]]; then
    GZ_LINES=5000; PY_N=50000; SORT_LINES=10000000; XZ_N=20000000; MF_MB=512; MF_READERS=4
    SORT_MEM=512M; XZ_LEVEL=6; XZ_BLOCK=8MiB
    PY_SKIP=0; GZ_SKIP=0
else
    GZ_LINES=2000; PY_N=20000; SORT_LINES=1000000; XZ_N=2000000; MF_MB=64; MF_READERS=3
    SORT_MEM=32M; XZ_LEVEL=3; XZ_BLOCK=1MiB
    PY_SKIP=45000000; GZ_SKIP=10000000
fi
awk -v n="$GZ_LINES" 'BEGIN { for (i = 1; i <= n; i++) print "line " i " of a generated text, value " (i * 7919) % 10007 }' > "$WORK/text.txt"
awk -v n="$SORT_LINES" 'BEGIN { s = 12345; for (i = 0; i < n; i++) { s = (s * 1103515245 + 12345) % 2147483648; print s } }' > "$WORK/numbers.txt"
seq 1 "$XZ_N" > "$WORK/seq.txt"
head -c "${MF_MB}M" /dev/zero > "$WORK/file.bin"
cc -O2 -pthread -o "$WORK/mmap_faults" "$ROOT/scripts/mmap_faults.c"

CU="GNU coreutils $(version coreutils), GPL-3.0-or-later"
# --------------------------------------------------------------------------- lackey traces
ONLY=${ONLY:-all}
[[ "$ONLY" =~ ^(all|lackey|perf)$ ]] || die "ONLY must be lackey or perf, not '$ONLY'"
if [[ "$ONLY" != perf ]]; then
lackey lackey_ls 0 \
    "Start-up of GNU ls -la /usr/bin: with the default window, the dynamic loader mapping and relocating ls and its libraries; program: $CU." \
    -- ls -la /usr/bin
lackey lackey_gzip "$GZ_SKIP" \
    "GNU gzip -9 compressing a generated ${GZ_LINES}-line text, in the middle of deflate (a small, hot working set: window, hash chains); program: GNU gzip $(version gzip), GPL-3.0-or-later." \
    -- gzip -9 -c text.txt
lackey lackey_python_dict "$PY_SKIP" \
    "CPython building a ${PY_N}-entry dict of strings (the interpreter loop and a growing heap); program: CPython $(version python3.11), PSF-2.0 licence." \
    -- /usr/bin/python3 -S -c "d = {i: str(i) for i in range($PY_N)}"
fi

# --------------------------------------------------------------------------- perf traces
if [[ "$ONLY" != lackey ]]; then
perf_trace perf_mmap_faults \
    "scripts/mmap_faults.c: ${MF_READERS} threads read random pages of a ${MF_MB} MiB file mapping (cold page cache, MADV_RANDOM: major faults, then minor ones after MADV_DONTNEED) while one thread loops mmap/touch/munmap (LOCK_W) until they finish; program: part of vmlab, MIT." \
    -- ./mmap_faults file.bin "$MF_READERS" 2 50
perf_trace perf_sort_parallel \
    "GNU sort --parallel=4 of ${SORT_LINES} generated numbers (anonymous buffers, several sorting threads); program: $CU." \
    -- sort --parallel=4 -S "$SORT_MEM" -o /dev/null numbers.txt
perf_trace perf_xz_threads \
    "xz -T4 -${XZ_LEVEL} compressing seq 1 ${XZ_N} in ${XZ_BLOCK} blocks (four compressor threads, each faulting in its own dictionary and buffers); program: XZ Utils $(version xz-utils), public domain (liblzma and xz) with some GPL/LGPL helper scripts not used here." \
    -- xz -T4 "-$XZ_LEVEL" --block-size="$XZ_BLOCK" -c seq.txt
fi

# --------------------------------------------------------------------------- README
if [[ "$LARGE" != 1 ]]; then
    "$PYTHON" "$ROOT/scripts/make_data_readme.py" "$OUT"
fi
say "done: $(du -sh "$OUT" | cut -f1) in $OUT"
