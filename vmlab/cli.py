"""The ``vmlab`` command line: traces (convert, info, synth), single runs, the batch report.

Every error a user can cause ends in one line on stderr naming the problem and exit code 2;
never a traceback.
"""
from __future__ import annotations

import argparse
import ast
import inspect
import json
import math
import os
import re
import signal
import sys
import textwrap
import threading
from pathlib import Path

from ._io import check_writable, destination_of, memory_limit, refuse_onto_itself, same_file
from .errors import TraceFormatError, VmlabError

#: Name of the Jupyter kernel the notebooks declare.
KERNEL_NAME = "vmlab"

EPILOG = """\
examples:
  vmlab trace convert ls.lackey ls.vmt          # valgrind lackey output -> native trace
  vmlab trace info ls.vmt                       # records, threads, distinct pages, VMAs
  vmlab trace synth zipf --n 1000000 --pages 100000 --alpha 1.0 -o zipf.vmt
  vmlab run zipf.vmt --policy nopage,fault_retry --memory-fraction 0.1,0.5
  vmlab kernel install --user                   # the notebooks' kernel, for any Jupyter
  vmlab sweep zipf.vmt --grid memory_pages=1000,2000,4000 --policy nopage,fault_retry \
        --sample-rate 0.01 --scheduler local --out results.parquet
  vmlab report --out report                     # every notebook -> report/index.html
  vmlab record -o gzip.vmt -- gzip -9 -k big.txt # real run: accesses, mappings, page cache
  vmlab calibrate -o host.json                  # this machine's fault costs
  vmlab run gzip.vmt --costs host.json
  vmlab validate -- gzip -9 -c big.txt          # predicted vs the kernel's page faults
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the rule for every error) pointing at --help."""

    def error(self, message):
        if len(message) > 300:  # e.g. an invalid value of thousands of digits, quoted
            message = message[:297] + "..."
        self.exit(2, f"vmlab: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _parser():
    p = _Parser(
        prog="vmlab", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Replay memory-access traces through a model of the Linux page-fault path "
                    "and report what each fault-handler policy costs.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    for add in (_trace_parsers, _run_parser, _kernel_parser, _recording_parsers, _sweep_parser,
                _report_parsers):
        add(sub)
    return p


def _trace_parsers(sub):
    """``vmlab trace convert|info|generate ...``."""
    tp = sub.add_parser("trace", help="convert, inspect and generate traces",
                        description="Convert, inspect and generate memory-access traces.")
    tsub = tp.add_subparsers(dest="trace_cmd", metavar="SUBCOMMAND")
    c = tsub.add_parser(
        "convert", help="convert a trace between formats",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            Convert a trace. Input formats: lackey (valgrind --tool=lackey --trace-mem=yes),
            din (Dinero IV), perf (perf script of perf record -e page-faults -c 1 -d), csv,
            vmt (vmlab's native format). The output format follows DST's suffix: .vmt (native,
            streamed in bounded memory), .csv, .din, .lackey; any other suffix is refused.
            The output is written to a temporary name and renamed when complete; the input
            is never modified. What the output format cannot hold (a recording's mappings
            in any text format; threads, address spaces and gaps in din and lackey) gets one
            note line each on stderr."""))
    c.add_argument("src", help="input trace file")
    c.add_argument("dst", help="output file (.vmt, .csv, .din or .lackey)")
    c.add_argument("--from", dest="fmt", default=None,
                   help="input format (default: detected from the content)")
    c.add_argument("--page-size", type=int, default=None, help="page size in bytes (default 4096)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_other_events(c)

    i = tsub.add_parser("info", help="summary of a trace: records, threads, pages, VMAs",
                        description="Print a trace's records, threads, address spaces, distinct "
                                    "pages and inferred VMAs.")
    i.add_argument("path", help="trace file (any readable format)")
    i.add_argument("--from", dest="fmt", default=None, help="input format (default: detected)")
    i.add_argument("--verify", action="store_true",
                   help="read PATH as a native trace (every .vmt read verifies its checksums)")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_other_events(i)

    s = tsub.add_parser(
        "synth", help="generate a synthetic workload",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate a seeded synthetic workload. Give the generator's parameters as "
                    "--name value (see `vmlab trace synth NAME --help`).",
        epilog="generators:\n" + "\n".join(f"  {n:32s} {d}" for n, d in _generator_lines()))
    s.add_argument("generator", nargs="?", help="generator name")
    s.add_argument("-o", "--out", help="output file (.vmt, .csv, .din or .lackey)")


def _run_parser(sub):
    """``vmlab run``: the policy x memory matrix."""
    r = sub.add_parser(
        "run", help="replay a trace under policies and memory sizes (the matrix)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Replay TRACE under every pair of --policy and memory size and print one "
                    "row per pair: a table with units, or --csv / --json (one object per line).",
        epilog="policies: " + ", ".join(_policy_names()) + "\n\nexample:\n"
               "  vmlab run zipf.vmt --policy nopage,fault_retry --memory-fraction 0.1,0.5")
    r.add_argument("trace", help="trace file (any readable format)")
    r.add_argument("--policy", default="nopage",
                   help="policy preset(s), comma-separated (default nopage)")
    r.add_argument("--backing", default=None,
                   help="backing of the VMAs inferred from the trace (file, anon, device, iomem, "
                        "context; default file); a trace recorded with its mappings (vmlab "
                        "record) replays like the kernel unless --backing is given: its VMAs "
                        "(backing, prot, private/shared, file and offset), file sizes and "
                        "page-cache state from the recording, the kernel fault model, "
                        "fault-around 16 pages, readahead 32 pages and the two-list "
                        "replacement (docs/model.md section 11; --replacement and "
                        "--fault-around-pages override them); the mechanisms the engine does "
                        "not run yet are named in the output")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--memory-pages", default=None, metavar="N[,N...]",
                   help="page-cache frames, comma-separated (default unlimited)")
    g.add_argument("--memory-fraction", default=None, metavar="F[,F...]",
                   help="page-cache frames as fractions of the trace's distinct pages, "
                        "comma-separated, each in (0, 1]")
    g.add_argument("--memory-bytes", default=None, metavar="N[,N...]",
                   help="a cgroup-style memory limit in bytes, comma-separated: anonymous and "
                        "page-cache pages are charged to it; with no swap, a limit below the "
                        "anonymous working set ends the run with an OOM (summary oom, "
                        "oom_thread, oom_ns; docs/model.md section 12)")
    r.add_argument("--replacement", default=None,
                   help="page-cache replacement: lru, fifo, clock or twolist (the kernel's "
                        "active/inactive lists); default lru, twolist for a recorded trace")
    r.add_argument("--fault-around-pages", type=int, default=None,
                   help="pages mapped per read fault on resident file pages (default 1; 16, "
                        "fault_around_bytes 64 KiB, for a recorded trace)")
    r.add_argument("--io", default=None,
                   help="I/O latency: nvme (lognormal median 70 us; the default without "
                        "--costs), hdd (8 ms) or a number of ns; default with --costs: the "
                        "profile's io_ns")
    r.add_argument("--signal-rate-hz", type=float, default=0.0, help="Poisson signals per thread")
    r.add_argument("--adversary-rate-hz", type=float, default=0.0,
                   help="fadvise(DONTNEED) calls per second on the first file VMA (Poisson)")
    r.add_argument("--horizon-ns", type=int, default=None, help="stop the run there")
    r.add_argument("--seed", type=int, default=0)
    _add_other_events(r)
    r.add_argument("--no-records", action="store_true",
                   help="keep no per-fault records (summary only; for very long traces)")
    r.add_argument("--sample-rate", type=float, default=None,
                   help="spatially sampled replay: keep the pages whose hash is below R, scale "
                        "the page cache by R and the counts by 1/R (e.g. 0.01)")
    out = r.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print every summary column as JSON, one object per pair and line")
    out.add_argument("--csv", action="store_true",
                     help="print every summary column as CSV, one row per pair")
    r.add_argument("--costs", default=None,
                   help="a costs profile (JSON or TOML, e.g. from `vmlab calibrate`)")


def _kernel_parser(sub):
    """``vmlab kernel install``: the notebooks' Jupyter kernel."""
    kp = sub.add_parser("kernel", help="register the 'vmlab' Jupyter kernel",
                        description="Manage the 'vmlab' Jupyter kernel: the notebooks declare it, "
                                    "so that any Jupyter (JupyterLab, papermill) runs them with "
                                    "the Python that has vmlab installed.")
    ksub = kp.add_subparsers(dest="kernel_cmd", metavar="SUBCOMMAND")
    ki = ksub.add_parser(
        "install", help="register this Python as the 'vmlab' kernel",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            Register this Python (the one running vmlab) as the Jupyter kernel 'vmlab'.
            Default: inside this environment (sys.prefix), seen by the Jupyter installed here.
            --user: in your home folder, seen by every Jupyter you run (another JupyterLab,
            papermill in another environment). --prefix DIR: under DIR (a Jupyter
            installed in the environment DIR)."""))
    where = ki.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for every Jupyter of this user")
    where.add_argument("--prefix", default=None, help="under this environment prefix")
    ki.add_argument("--name", default=KERNEL_NAME, help=argparse.SUPPRESS)


def _recording_parsers(sub):
    """``vmlab record``, ``calibrate`` and ``validate``: real programs."""
    rc = sub.add_parser(
        "record", help="run a real program and record its accesses and mappings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            Run PROGRAM and store, in a native trace, its accesses (lackey: every access;
            perf: the faults the kernel took, with real threads and times), the mappings of
            that run (permissions, private/shared, backing, file identity and offset) and
            which pages of the mapped files were in the page cache when it started."""))
    rc.add_argument("-o", "--out", required=True, help="output trace (.vmt)")
    rc.add_argument("--with", dest="tool", choices=("lackey", "perf"), default="lackey",
                    help="lackey (valgrind, every access; default) or perf (faults)")
    rc.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- PROGRAM ARGS...")
    cb = sub.add_parser(
        "calibrate", help="measure this machine's fault and syscall costs",
        description="Compile a small C benchmark with the system's C compiler, run it and "
                    "write a costs profile (JSON, or TOML with a .toml suffix) for "
                    "`vmlab run --costs` and Costs.from_file.")
    cb.add_argument("-o", "--out", required=True, help="costs profile to write (.json/.toml)")
    cb.add_argument("--runs", type=int, default=9, help="repetitions (default 9)")
    cb.add_argument("--no-major", action="store_true",
                    help="skip the major-fault measurement (needs to drop a file's cache)")
    cb.add_argument("--lock-wakeups", default=None, metavar="LOAD",
                    help="also measure how long a thread woken from an mmap_lock wait, and "
                         "one woken from its read, take to run with the CPUs busy (busy or "
                         "faulting; needs perf and root): the costs lock_wakeup_ns and "
                         "io_wakeup_ns")
    va = sub.add_parser(
        "validate", help="predicted against measured page faults of a real program",
        description="Record PROGRAM with lackey, predict its faults with the engine, run it "
                    "natively under `perf stat -e page-faults,major-faults` (and, as root "
                    "with a cgroup memory controller, under a sweep of memory limits) and "
                    "print predicted and measured side by side.")
    va.add_argument("--runs", type=int, default=3, help="native runs per setting (default 3)")
    va.add_argument("--limits-mb", default=None,
                    help="comma-separated memory limits in MB for the cgroup sweep "
                         "(default: none; 'auto' for a sweep around the measured peak)")
    va.add_argument("--cold", action="store_true",
                    help="every native run starts from a cold page cache: the program's files "
                         "and those its recording mapped dropped first (posix_fadvise; pages "
                         "other processes map stay), the "
                         "prediction from the same state (default: warm, as the recording "
                         "leaves the cache)")
    va.add_argument("--keep", default=None, help="keep the recorded trace at this path")
    va.add_argument("--json", action="store_true", help="print JSON")
    va.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- PROGRAM ARGS...")


def _sweep_parser(sub):
    """``vmlab sweep``: a parameter grid, locally or on Dask."""
    w = sub.add_parser(
        "sweep", help="replay a trace over a parameter grid (on a dask cluster)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent("""\
            Replay TRACE at every point of a grid and write one row per point (the grid's
            keys, then the summary) to --out (.parquet or .csv). The points run on a dask
            cluster: --scheduler local starts one on this machine, an address
            (tcp://host:8786) uses a running one. Finished points are cached in OUT.cache/,
            so an interrupted sweep run again resumes where it stopped."""))
    w.add_argument("trace", help="trace file (any readable format; .vmt travels as its path)")
    w.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a grid axis: a scenario field, cost or policy knob and its values "
                        "(repeatable), e.g. memory_pages=1000,2000 or replacement=lru,fifo")
    w.add_argument("--policy", default="nopage",
                   help="policy preset, or several separated by commas (a grid axis)")
    w.add_argument("--backing", default=None,
                   help="backing of the VMAs inferred from the trace (default file); a trace "
                        "recorded with its mappings replays like the kernel unless --backing "
                        "is given (as `vmlab run`)")
    w.add_argument("--sample-rate", type=float, default=None,
                   help="spatially sampled replay at rate R (see `vmlab run --help`)")
    w.add_argument("--horizon-ns", type=int, default=None, help="stop each run there")
    w.add_argument("--scheduler", default="local",
                   help="local (a LocalCluster of --workers processes) or a scheduler address")
    w.add_argument("--workers", type=int, default=2, help="worker processes of a local cluster")
    w.add_argument("--out", required=True, help="output file (.parquet or .csv)")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_other_events(w)


def _report_parsers(sub):
    """``vmlab report`` and ``batch``: the notebooks, executed."""
    rp = sub.add_parser("report", help="execute every notebook into an HTML report",
                        description="Execute every notebook under notebooks/ with papermill and "
                                    "write executed notebooks, HTML and index.html to --out.")
    rp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    bp = sub.add_parser("batch", help="run one notebook over a parameter grid",
                        description="Run one notebook over a parameter grid and gather its "
                                    "recorded numbers into one CSV or Parquet file.")
    bp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)



def _generator_lines():
    try:
        from .trace.synth import GENERATORS
    except Exception:  # pragma: no cover - only while the module is missing
        return []
    out = []
    for name, fn in GENERATORS.items():
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        out.append((name, doc[0] if doc else ""))
    return out


def _policy_names():
    from .model.policies import PRESETS

    return list(PRESETS)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, batch schedulers) or SIGHUP (the terminal closed, an
    ssh connection dropped), raised in the main thread so that it unwinds like Ctrl-C: every
    ``except BaseException`` cleanup runs (temporary files are removed, nothing half-written
    is published)."""

    def __init__(self, signum=signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


#: Signals that end the command like Ctrl-C (cleanly, one line, exit 128 + the signal).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _on_stop_signal(signum, frame):
    raise Terminated(signum)


def _catch_stop_signals():
    """Route :data:`STOP_SIGNALS` to :class:`Terminated`; returns the handlers to restore.
    A signal ignored when vmlab started (``nohup`` ignores SIGHUP) stays ignored."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, _on_stop_signal)
    return previous


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = _catch_stop_signals()
    try:
        return _main(argv)
    except BrokenPipeError:
        # `vmlab run ... | head`: the reader has gone; end quietly, as cat does.  Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, what a shell reports for a writer the pipe ended
    except VmlabError as e:
        text = e.cli_text() if isinstance(e, TraceFormatError) else str(e)
        print(f"vmlab: error: {text}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        where = destination_of(e.filename) if e.filename else e
        print(f"vmlab: error: {where}: no such file", file=sys.stderr)
        return 2
    except Terminated as e:
        try:  # after SIGHUP the terminal may be gone: the exit code still tells
            print(f"vmlab: terminated ({signal.Signals(e.signum).name})", file=sys.stderr)
        except OSError:
            pass
        return 128 + e.signum
    except KeyboardInterrupt:
        print("vmlab: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("vmlab: error: out of memory", file=sys.stderr)
        return 2
    except OSError as e:  # permission, disk full, a folder where a file is expected...
        # (a temporary file's error names the file the user asked for)
        where = f"{destination_of(e.filename)}: " if e.filename else ""
        print(f"vmlab: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv):
    # report/batch own their argument parsing
    if argv and argv[0] in ("report", "batch"):
        from . import report

        fn = report.main_report if argv[0] == "report" else report.main_batch
        return fn(argv[1:]) or 0
    if len(argv) >= 2 and argv[0] == "trace" and argv[1] == "synth":
        return _synth(argv[2:])
    p = _parser()
    a = p.parse_args(argv)
    if a.cmd is None:
        p.print_help()
        return 0
    if a.cmd == "trace":
        if a.trace_cmd == "convert":
            return _convert(a)
        if a.trace_cmd == "info":
            return _info(a)
        p.parse_args(["trace", "--help"])
    if a.cmd == "run":
        return _run(a)
    if a.cmd == "sweep":
        return _sweep(a)
    if a.cmd == "record":
        return _record(a)
    if a.cmd == "calibrate":
        return _calibrate(a)
    if a.cmd == "validate":
        return _validate(a)
    if a.cmd == "kernel":
        if a.kernel_cmd == "install":
            return _kernel_install(a)
        p.parse_args(["kernel", "--help"])
    return 0


def _program_argv(a):
    argv = list(a.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise VmlabError(f"no program given: vmlab {a.cmd} ... -- PROGRAM ARGS...")
    return argv


def _record(a):
    from .trace.record import record

    if Path(a.out).suffix.lower() != ".vmt":
        raise VmlabError(f"-o {a.out}: a recording is written as a .vmt trace (only it carries "
                         "the mappings and page-cache state); name the file .vmt")
    check_writable(a.out)
    path, info = record(_program_argv(a), a.out, tool=a.tool)
    print(f"wrote {path}: {info['records']:,} records, {info['n_mappings']} mapping rows, "
          f"{info['n_files']} files; program exit code {info['exit_code']}, "
          f"{info['seconds']:.2f} s", file=sys.stderr)
    if info.get("vector_calls_unresolved"):
        print(f"note: {info['vector_calls_unresolved']} readv/recvmsg-style call(s) wrote user "
              "memory that the recording does not hold (the iovtrace helper could not be "
              "built or did not see them)", file=sys.stderr)
    return 0


def _calibrate(a):
    from .calibrate import calibrate

    if a.lock_wakeups is not None:
        from .studies.lock_wakeups import LOADS
        if a.lock_wakeups not in LOADS:
            raise VmlabError(f"--lock-wakeups must be one of {', '.join(LOADS)}, got "
                             f"{a.lock_wakeups!r}")
    if Path(a.out).suffix.lower() not in (".json", ".toml"):
        raise VmlabError(f"-o {a.out}: a costs profile is written as .json or .toml; name the "
                         "file .json or .toml")
    check_writable(a.out)
    prof = calibrate(a.out, runs=a.runs, major=not a.no_major, lock_wakeups=a.lock_wakeups)
    for k, v in prof["costs"].items():
        if isinstance(v, dict) and v.get("kind") == "empirical":
            if k in ("lock_wakeup_ns", "io_wakeup_ns"):
                q = prof["measurements"][k]
                v = (f"empirical, {q['n']} wake-ups under load {q['load']}: p50 "
                     f"{q['p50_ns']:,.0f} ns, p99 {q['p99_ns']:,.0f} ns")
            else:
                q = prof["measurements"]["major_fault_ns"]
                v = (f"empirical, {len(v['samples_ns'])} major faults: p50 {q['p50']:,.0f} ns, "
                     f"p99 {q['p99']:,.0f} ns")
        print(f"{k:<18} {v}", file=sys.stderr)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


def _validate(a):
    from .validate import format_table, validate

    limits = None
    if a.limits_mb:
        if a.limits_mb == "auto":
            limits = "auto"
        else:
            try:
                limits = [float(x) for x in a.limits_mb.split(",") if x.strip()]
            except ValueError:
                raise VmlabError(f"--limits-mb must be numbers separated by commas or 'auto', "
                                 f"got {a.limits_mb!r}") from None
    res = validate(_program_argv(a), runs=a.runs, limits_mb=limits, keep=a.keep, cold=a.cold)
    if a.json:
        print(json.dumps(_jsonable(res), indent=1))
    else:
        print(format_table(res))
    return 0


def _add_other_events(parser):
    """``--other-events``, for the commands that read a trace (its reader option for perf)."""
    parser.add_argument("--other-events", choices=("error", "skip"), default=None,
                        help="perf input: what to do with events other than page faults and "
                             "the mmap_lock writers' system calls (default error)")


def _read_options(a, path, fmt):
    """The reader options the command's flags give (``--other-events``: perf input only)."""
    if getattr(a, "other_events", None) is None:
        return {}
    from .trace.convert import detect_format

    fmt = fmt or detect_format(path)
    if fmt != "perf":
        raise VmlabError(f"--other-events applies to perf input only; {path} is {fmt}")
    return {"other_events": a.other_events}


def _open_any(path, fmt=None, **options):
    from .trace.convert import read_trace

    return read_trace(path, fmt, **options)


#: Output formats by file suffix.
OUTPUT_SUFFIXES = {".vmt": "vmt", ".csv": "csv", ".din": "din", ".lackey": "lackey"}


def _output_format(path, option):
    """The format an output file's suffix names; refuses any other suffix (a ``.txt`` must
    not silently receive a binary ``.vmt``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise VmlabError(
            f"{option} {path}: cannot tell the output format from "
            f"{repr(suffix) if suffix else 'a name without suffix'}; name the file "
            f"{', '.join(OUTPUT_SUFFIXES)}")
    return OUTPUT_SUFFIXES[suffix]


def _positive_int(name, value, lo=1, hi=None):
    """``value`` if it is an int in ``[lo, hi]``; else one line naming the option."""
    if value is None:
        return None
    if value < lo or (hi is not None and value > hi):
        want = f"at least {lo:,}" if hi is None else f"from {lo:,} to {hi:,}"
        raise VmlabError(f"{name} must be {want}, got {value:,}")
    return value


def _convert(a):
    from .trace.convert import convert, losses, write_trace
    from .trace.model import MAX_PAGE_SIZE, MIN_PAGE_SIZE

    dst = Path(a.dst)
    fmt = _output_format(dst, "DST")
    refuse_onto_itself(a.src, a.dst)
    check_writable(dst)
    opts = _read_options(a, a.src, a.fmt)
    if a.page_size is not None:
        ps = _positive_int("--page-size", a.page_size, MIN_PAGE_SIZE, MAX_PAGE_SIZE)
        if ps & (ps - 1):
            raise VmlabError(f"--page-size must be a power of two, got {ps:,}")
        opts["page_size"] = ps
    if fmt != "vmt":
        tr = _open_any(a.src, a.fmt, **opts)
        write_trace(tr, dst, fmt, show_progress=False if a.quiet else None)
        for what in losses(tr, fmt):
            print(f"note: {dst} ({fmt}) does not hold {what}; {a.src} keeps it",
                  file=sys.stderr)
    else:
        convert(a.src, dst, a.fmt, show_progress=False if a.quiet else None, **opts)
    print(f"wrote {dst}", file=sys.stderr)
    return 0


def _info(a):
    from .trace.native import open_trace
    from .trace.stats import summarize

    if a.verify:
        tr = open_trace(a.path, verify=True)
    else:
        tr = _open_any(a.path, a.fmt, **_read_options(a, a.path, a.fmt))
    s = summarize(tr)
    if a.json:
        print(json.dumps(_jsonable(s.to_dict()), indent=1))
    else:
        print(str(s))
    return 0


def _synth(argv):
    from .trace.synth import GENERATORS

    if not argv or argv[0] in ("-h", "--help"):
        _parser().parse_args(["trace", "synth", "--help"])
        return 0
    name = argv[0]
    if name not in GENERATORS:
        raise VmlabError(f"unknown generator {name!r}; generators are {', '.join(GENERATORS)}")
    fn = GENERATORS[name]
    sig = inspect.signature(fn)
    sp = _Parser(
        prog=f"vmlab trace synth {name}", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=inspect.getdoc(fn))
    sp.add_argument("-o", "--out", required=True, help="output file (.vmt, .csv, .din or .lackey)")
    for pname, par in sig.parameters.items():
        if par.kind in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
            continue
        default = None if par.default is par.empty else par.default
        req = par.default is par.empty
        sp.add_argument(f"--{pname.replace('_', '-')}", dest=pname, default=default, required=req,
                        help=f"(default: {default!r})" if not req else "(required)")
    a = sp.parse_args(argv[1:])
    kwargs = {}
    for pname in sig.parameters:
        if not hasattr(a, pname):
            continue
        v = getattr(a, pname)
        if isinstance(v, str):
            try:
                v = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                pass
        kwargs[pname] = v
    out = Path(a.out)
    fmt = _output_format(out, "--out")
    _check_synth_size(name, kwargs)
    check_writable(out)
    try:
        tr = fn(**kwargs)
    except (TypeError, ValueError, OverflowError) as e:
        if isinstance(e, VmlabError):
            raise
        raise VmlabError(f"{name}: {e}") from None
    except MemoryError:
        raise VmlabError(
            f"{name}: not enough memory for {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}"
            " (a generated trace is built in memory, about 22 bytes a record)") from None
    from .trace.convert import write_trace

    write_trace(tr, out, fmt)
    print(f"wrote {out}: {len(tr):,} records", file=sys.stderr)
    return 0


def _memory_bytes():
    """The memory a generated trace may take, in bytes, and what bounds it: this machine's
    physical memory or this process's cgroup limit, the smaller (:func:`vmlab._io.memory_limit`)."""
    return memory_limit()


def _check_synth_size(name, kwargs):
    """Refuse, before generating, a trace whose building would not fit in this machine's
    memory (every generator's record count, and a Zipf law's tables, from its options:
    :func:`vmlab.trace.synth.planned_size`), rather than swap or be killed for memory."""
    from .trace.synth import ZIPF_BYTES_PER_PAGE, planned_size
    from .units import fmt_bytes

    records, zipf_pages, need = planned_size(name, **kwargs)
    have, what = _memory_bytes()
    if need <= have:
        return
    if zipf_pages * ZIPF_BYTES_PER_PAGE > have:
        raise VmlabError(
            f"{name}: a Zipf law over {zipf_pages:,} pages needs about "
            f"{fmt_bytes(zipf_pages * ZIPF_BYTES_PER_PAGE)} of memory for its tables, more "
            f"than {what} {fmt_bytes(have)}; ask for fewer pages")
    raise VmlabError(
        f"{name}: {records:,} records need about {fmt_bytes(need)} of memory to generate "
        f"(a generated trace is built in memory), more than {what} "
        f"{fmt_bytes(have)}; ask for fewer records")


def _kernel_install(a):
    path = install_kernel(user=a.user, prefix=a.prefix, name=a.name)
    print(f"installed the Jupyter kernel {a.name!r} (this Python: {sys.executable}) in {path}",
          file=sys.stderr)
    return 0


def install_kernel(user=False, prefix=None, name=KERNEL_NAME):
    """Register the running Python as Jupyter kernel ``name`` (what the notebooks declare).

    Parameters
    ----------
    user : bool
        In the user's Jupyter folder (every Jupyter of this user finds it).
    prefix : path, optional
        Under this environment prefix.  Default (neither): ``sys.prefix``, this environment.

    Returns
    -------
    str
        The folder of the kernelspec written.
    """
    from ipykernel.kernelspec import install

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise VmlabError(f"--name {name!r}: a kernel name is one or more ASCII letters, "
                         "digits, '-', '.' or '_' (the notebooks declare 'vmlab')")
    if not user and prefix is None:
        prefix = sys.prefix
    return install(user=user, prefix=prefix, kernel_name=name,
                   display_name=f"vmlab (Python {sys.version_info.major}.{sys.version_info.minor})")


def _list(text, what, convert):
    """A comma-separated option as a list of values, or one line saying what was expected."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            out.append(convert(part))
        except ValueError:
            raise VmlabError(f"{what}: expected comma-separated values like 0.1,0.5, got "
                             f"{part!r} in {text!r}") from None
    return out


#: Columns of ``vmlab run``'s terminal table: (summary key or None, header).
RUN_COLUMNS = (("policy", "policy"), ("memory_pages", "memory"), ("n_faults", "faults"),
               ("n_major", "major"), ("n_retries", "retries"),
               ("fault_latency_ns_p50", "fault p50"), ("fault_latency_ns_p99", "fault p99"),
               ("signal_latency_ns_p99", "signal p99"), ("lock_wait_ns_total", "lock wait"),
               ("writer_ops_per_s", "writer ops"), ("elapsed_ns", "elapsed"),
               ("livelock", "livelock"), ("oom", "oom"))
#: Added when a policy is a lock design after 2010 (docs/model.md 15.6): the faults'
#: mmap_lock reads, those of faults the kernel made, the VMA locks taken, the fallbacks.
LOCK_RUN_COLUMNS = (("n_mmap_lock_read", "mmap_lock reads"),
                    ("n_mmap_lock_read_kernel", "kernel mode"),
                    ("n_vma_lock_read", "VMA locks"), ("n_vma_lock_fallbacks", "fallbacks"))


def _run(a):
    import vmlab
    from .engine.prepare import index_trace
    from .model import HDD, NVME, Adversary, get_policy, poisson_signals
    from .model.scenario import DEFAULT_HORIZON_NS
    from .units import fmt_value

    policies = _list(a.policy, "--policy", str)
    designs = [get_policy(name).lock_design for name in policies]  # (an unknown name
    # fails now, with the valid names)
    columns = RUN_COLUMNS[:-2] + LOCK_RUN_COLUMNS + RUN_COLUMNS[-2:] if any(designs) \
        else RUN_COLUMNS
    fractions = pages = limits = None
    if a.memory_bytes is not None:
        limits = _list(a.memory_bytes, "--memory-bytes", int)
        for n in limits:
            if n < 1:
                raise VmlabError(f"--memory-bytes must be at least 1 (bytes), got {n}")
    elif a.memory_fraction is not None:
        fractions = _list(a.memory_fraction, "--memory-fraction", float)
        for f in fractions:
            if not 0 < f <= 1:
                raise VmlabError(f"--memory-fraction must be in (0, 1], got {f:g}")
    elif a.memory_pages is not None:
        pages = _list(a.memory_pages, "--memory-pages", int)
        for n in pages:
            if n < 1:
                raise VmlabError(f"--memory-pages must be at least 1, got {n}")
    # values that cannot mean what was typed, before the trace loads
    for option, rate in (("--signal-rate-hz", a.signal_rate_hz),
                         ("--adversary-rate-hz", a.adversary_rate_hz)):
        if not (math.isfinite(rate) and rate >= 0):
            raise VmlabError(f"{option} must be a finite rate >= 0 (0: none), got {rate}")
    _positive_int("--horizon-ns", a.horizon_ns)
    _positive_int("--fault-around-pages", a.fault_around_pages)
    if a.io is None or a.io == "nvme":
        io = NVME
    elif a.io == "hdd":
        io = HDD
    else:
        try:
            io = float(a.io)
        except ValueError:
            raise VmlabError(f"--io must be nvme, hdd or a number of ns, got {a.io!r}") from None
    tr = _open_any(a.trace, **_read_options(a, a.trace, None))
    if fractions is not None:
        distinct = len(index_trace(tr).keys)
        sizes = [(f, max(1, int(round(f * distinct)))) for f in fractions]
    elif limits is not None:
        sizes = [("bytes", n) for n in limits]
    else:
        sizes = [(None, n) for n in (pages or [None])]
    knobs = {k: v for k, v in (("replacement", a.replacement),
                               ("fault_around_pages", a.fault_around_pages)) if v is not None}
    recorded, left_out, like_kernel = _base_scenario(tr, a.backing, knobs)
    _check_sampling(a.sample_rate, like_kernel, a.trace)
    base = recorded.replace(
        policy=policies[0],
        signals=[poisson_signals(a.signal_rate_hz)] if a.signal_rate_hz > 0 else (),
        adversary=Adversary("poisson", rate_hz=a.adversary_rate_hz) if a.adversary_rate_hz > 0 else None,
        horizon_ns=DEFAULT_HORIZON_NS if a.horizon_ns is None else a.horizon_ns, seed=a.seed, records=not a.no_records,
        sample_rate=a.sample_rate,
    )
    if left_out and (a.json or a.csv):
        print("vmlab run: not modelled in this run: " + "; ".join(left_out), file=sys.stderr)
    costs = base.costs
    if a.costs:
        from .model.costs import Costs

        costs = Costs.from_file(a.costs)
    base = base.replace(costs=costs if a.costs and a.io is None else costs.replace(io_ns=io))
    rows = []
    for fraction, mem in sizes:
        limit = fraction == "bytes"
        sc = base.replace(memory_bytes=mem) if limit else base.replace(memory_pages=mem)
        for policy in policies:
            summary = vmlab.simulate(sc, policy).summary
            row = {"policy": summary["policy"], "memory_pages": None if limit else mem}
            if limit:
                row["memory_bytes"] = mem
            elif fractions is not None:
                row["memory_fraction"] = fraction
            row.update((k, v) for k, v in summary.items() if k != "policy")
            rows.append(row)
            if a.json:  # streamed: a long matrix shows its rows as they come
                print(json.dumps(_jsonable(row)), flush=True)
    if a.csv:
        import csv

        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(_jsonable(r) for r in rows)
    elif not a.json:
        head = [h for _, h in columns]
        body = []
        for row in rows:
            cells = []
            for key, _ in columns:
                v = row.get(key)
                if key == "memory_pages" and "memory_bytes" in row:
                    cells.append(fmt_value("memory_bytes", row["memory_bytes"]) + " limit")
                elif key == "memory_pages":
                    cells.append("unlimited" if v is None else (
                        f"{v:,} pages" + (f" ({row['memory_fraction']:g})" if fractions else "")))
                elif key == "writer_ops_per_s":
                    cells.append(fmt_value(key, v) if row["n_lock_w"] else "-")
                elif key == "signal_latency_ns_p99":
                    cells.append(fmt_value(key, v) if row["n_signals"] else "-")
                else:
                    cells.append(fmt_value(key, v) if key != "policy" else str(v))
            body.append(cells)
        widths = [max(len(r[j]) for r in [head] + body) for j in range(len(head))]
        io_text = a.io or ("the profile's" if a.costs else "nvme")
        if like_kernel:
            vma_text = "replayed like the kernel from the recorded mappings"
        elif a.backing is None:
            vma_text = ("file backing (the trace records no mappings: every page a file page; "
                        "--backing sets another, vmlab record keeps a program's mappings)")
        else:
            vma_text = f"{a.backing} backing"
        print(f"vmlab run {a.trace}: {len(tr):,} records, io {io_text}, {vma_text}")
        if left_out:
            print("not modelled in this run: " + "; ".join(left_out))
        print()
        for cells in [head] + body:
            print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                            for j, (c, w) in enumerate(zip(cells, widths))).rstrip())
        for row, cells in zip(rows, body):
            line = _killed_line(row)
            if line:
                print(f"{cells[0]}, {cells[1]}: {line}" if len(rows) > 1 else line)
    return 0


def _plural(n, word):
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _killed_line(row):
    """What a row's threads lost to SIGBUS or a fatal signal (docs/model.md section 5: a
    SIGBUS ends its thread, whose remaining records are abandoned), or "" when none: the
    table's counts cover only the records that ran."""
    sigbus, abandoned = int(row.get("n_sigbus") or 0), int(row.get("n_abandoned_records") or 0)
    if sigbus:
        return (f"SIGBUS: {_plural(sigbus, 'thread')} killed, "
                f"{_plural(abandoned, 'record')} abandoned")
    if abandoned:
        return f"killed threads: {_plural(abandoned, 'record')} abandoned"
    return ""


def _grid_values(text):
    """``KEY=V1,V2,...`` -> (key, [values]); each value a Python literal or a bare word."""
    key, sep, vals = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key or not vals.strip():
        raise VmlabError(f"--grid {text!r}: expected KEY=V1,V2,... (e.g. memory_pages=1000,2000)")
    out = []
    for v in vals.split(","):
        v = v.strip()
        try:
            out.append(ast.literal_eval(v))
        except (ValueError, SyntaxError):
            out.append(v)
    return key, out


def _check_sampling(rate, like_kernel, path):
    """A recording replays like the kernel (readahead, fault-around, its unmaps and reads),
    which spatial sampling cannot scale: ``--sample-rate`` is refused there in CLI terms."""
    if like_kernel and rate is not None and rate < 1:
        raise VmlabError(f"--sample-rate {rate:g}: {path} is a recording, replayed like the "
                         "kernel (readahead, fault-around, its unmaps and reads), which spatial "
                         "sampling cannot scale; replay it whole, or give --backing to replay "
                         "its accesses on inferred VMAs")


def _base_scenario(tr, backing, knobs):
    """The scenario ``run`` and ``sweep`` start from: ``(scenario, left_out, like_kernel)``.
    A trace recorded with its mappings and no ``--backing`` replays like the kernel
    (:func:`vmlab.model.recorded.scenario_for`, whole: VMAs, files, preload, reads, unmaps,
    the kernel's knobs; ``left_out``: what the engine does not run); otherwise the VMAs are
    inferred with ``backing`` (default file)."""
    from .model import Scenario

    if tr.mappings is not None and backing is None:
        from .engine.prepare import RUNS_KNOBS
        from .model.recorded import runnable, scenario_for

        sc, left_out = runnable(scenario_for(tr, **knobs), RUNS_KNOBS)
        return sc, left_out, True
    sc = Scenario(tr, backing="file" if backing is None else backing,
                  **({"replacement": "lru", "fault_around_pages": 1} | knobs))
    return sc, [], False


def _sweep(a):
    from .simulation import sweep
    from .model.scenario import DEFAULT_HORIZON_NS

    out = Path(a.out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise VmlabError(f"--out {a.out}: the output must end in .parquet or .csv")
    if a.workers < 1:
        raise VmlabError(f"--workers must be at least 1, got {a.workers}")
    grid = {}
    for g in a.grid:
        k, vals = _grid_values(g)
        if k in grid:
            raise VmlabError(f"--grid {k} given twice; give each key once with all its values")
        grid[k] = vals
    pols = [p.strip() for p in a.policy.split(",") if p.strip()]
    if not pols:
        raise VmlabError("--policy needs at least one policy name")
    if len(pols) > 1:
        grid = {"policy": pols, **grid}
    if not grid:
        raise VmlabError("nothing to sweep: give at least one --grid KEY=V1,V2,... (or several "
                         "--policy names)")
    _positive_int("--horizon-ns", a.horizon_ns)
    if same_file(a.trace, out):
        raise VmlabError(f"--out {a.out}: that is the input trace {a.trace}; the table would "
                         "replace it: name another file")
    check_writable(out)
    tr = _open_any(a.trace, **_read_options(a, a.trace, None))
    base, left_out, like_kernel = _base_scenario(tr, a.backing, {})
    _check_sampling(a.sample_rate, like_kernel, a.trace)
    if left_out:
        print("vmlab sweep: not modelled in this run: " + "; ".join(left_out), file=sys.stderr)
    sc = base.replace(policy=pols[0], records=False,
                      horizon_ns=DEFAULT_HORIZON_NS if a.horizon_ns is None else a.horizon_ns,
                      sample_rate=a.sample_rate)
    from .distributed import connect

    client = connect(a.scheduler, a.workers)
    try:
        df = sweep(sc, grid, client=client, cache=str(out) + ".cache",
                   show_progress=False if a.quiet else None)
    finally:
        client.close()
        cluster = getattr(client, "cluster", None)
        if cluster is not None and a.scheduler == "local":
            cluster.close()
    from ._io import atomic_path

    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    print(f"wrote {out}: {len(df)} points", file=sys.stderr)
    return 0


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
