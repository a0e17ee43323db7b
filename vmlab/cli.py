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
import sys
import textwrap
from pathlib import Path

from .errors import VmlabError

#: Name of the Jupyter kernel the notebooks declare.
KERNEL_NAME = "vmlab"

EPILOG = """\
examples:
  vmlab trace convert ls.lackey ls.vmt          # valgrind lackey output -> native trace
  vmlab trace info ls.vmt                       # records, threads, distinct pages, VMAs
  vmlab trace synth zipf --n 1000000 --pages 100000 --alpha 1.0 -o zipf.vmt
  vmlab run zipf.vmt --policy nopage,fault_retry --memory-fraction 0.1,0.5
  vmlab kernel install --user                   # the notebooks' kernel, for any Jupyter
  vmlab report --out report                     # every notebook -> report/index.html
"""


def _parser():
    p = argparse.ArgumentParser(
        prog="vmlab", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Replay memory-access traces through a model of the Linux page-fault path "
                    "and report what each fault-handler policy costs.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    # -- trace ---------------------------------------------------------------------------
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
            streamed in bounded memory), .csv, .din. The output is written to a temporary name
            and renamed when complete; the input is never modified."""))
    c.add_argument("src", help="input trace file")
    c.add_argument("dst", help="output file (.vmt, .csv or .din)")
    c.add_argument("--from", dest="fmt", default=None,
                   help="input format (default: detected from the content)")
    c.add_argument("--page-size", type=int, default=None, help="page size in bytes (default 4096)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    i = tsub.add_parser("info", help="summary of a trace: records, threads, pages, VMAs",
                        description="Print a trace's records, threads, address spaces, distinct "
                                    "pages and inferred VMAs.")
    i.add_argument("path", help="trace file (any readable format)")
    i.add_argument("--from", dest="fmt", default=None, help="input format (default: detected)")
    i.add_argument("--verify", action="store_true", help="verify a native trace's checksums")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")

    s = tsub.add_parser(
        "synth", help="generate a synthetic workload",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate a seeded synthetic workload. Give the generator's parameters as "
                    "--name value (see `vmlab trace synth NAME --help`).",
        epilog="generators:\n" + "\n".join(f"  {n:32s} {d}" for n, d in _generator_lines()))
    s.add_argument("generator", nargs="?", help="generator name")
    s.add_argument("-o", "--out", help="output file (.vmt, .csv or .din)")

    # -- run -----------------------------------------------------------------------------
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
    r.add_argument("--backing", default="file",
                   help="backing of the VMAs inferred from the trace (file, anon, device, iomem, context)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--memory-pages", default=None, metavar="N[,N...]",
                   help="page-cache frames, comma-separated (default unlimited)")
    g.add_argument("--memory-fraction", default=None, metavar="F[,F...]",
                   help="page-cache frames as fractions of the trace's distinct pages, "
                        "comma-separated, each in (0, 1]")
    r.add_argument("--replacement", default="lru", help="lru, fifo or clock")
    r.add_argument("--fault-around-pages", type=int, default=1)
    r.add_argument("--io", default="nvme",
                   help="I/O latency: nvme (lognormal median 70 us), hdd (8 ms) or a number of ns")
    r.add_argument("--signal-rate-hz", type=float, default=0.0, help="Poisson signals per thread")
    r.add_argument("--adversary-rate-hz", type=float, default=0.0,
                   help="fadvise(DONTNEED) calls per second on the first file VMA (Poisson)")
    r.add_argument("--horizon-ns", type=int, default=None, help="stop the run there")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-records", action="store_true",
                   help="keep no per-fault records (summary only; for very long traces)")
    out = r.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print every summary column as JSON, one object per pair and line")
    out.add_argument("--csv", action="store_true",
                     help="print every summary column as CSV, one row per pair")

    # -- kernel --------------------------------------------------------------------------
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

    # -- report / batch ------------------------------------------------------------------
    rp = sub.add_parser("report", help="execute every notebook into an HTML report",
                        description="Execute every notebook under notebooks/ with papermill and "
                                    "write executed notebooks, HTML and index.html to --out.")
    rp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    bp = sub.add_parser("batch", help="run one notebook over a parameter grid",
                        description="Run one notebook over a parameter grid and gather its "
                                    "recorded numbers into one CSV or Parquet file.")
    bp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


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


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
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
        print(f"vmlab: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"vmlab: error: {e.filename or e}: no such file", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vmlab: interrupted", file=sys.stderr)
        return 130


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
    if a.cmd == "kernel":
        if a.kernel_cmd == "install":
            return _kernel_install(a)
        p.parse_args(["kernel", "--help"])
    return 0


def _open_any(path, fmt=None, **options):
    from .trace.convert import read_trace

    return read_trace(path, fmt, **options)


def _convert(a):
    from .trace.convert import convert, write_trace

    dst = Path(a.dst)
    opts = {}
    if a.page_size:
        opts["page_size"] = a.page_size
    suffix = dst.suffix.lower()
    if suffix in (".csv", ".din"):
        tr = _open_any(a.src, a.fmt, **opts)
        write_trace(tr, dst, suffix[1:], show_progress=False if a.quiet else None)
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
        tr = _open_any(a.path, a.fmt)
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
    sp = argparse.ArgumentParser(
        prog=f"vmlab trace synth {name}", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=inspect.getdoc(fn))
    sp.add_argument("-o", "--out", required=True, help="output file (.vmt, .csv or .din)")
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
    try:
        tr = fn(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, VmlabError):
            raise
        raise VmlabError(f"{name}: {e}") from None
    from .trace.convert import write_trace

    out = Path(a.out)
    fmt = out.suffix.lower().lstrip(".") or "vmt"
    write_trace(tr, out, fmt if fmt in ("csv", "din") else "vmt")
    print(f"wrote {out}: {len(tr):,} records", file=sys.stderr)
    return 0


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
               ("livelock", "livelock"))


def _run(a):
    import vmlab
    from .engine.prepare import index_trace
    from .model import HDD, NVME, Adversary, Scenario, get_policy, poisson_signals
    from .model.scenario import DEFAULT_HORIZON_NS
    from .units import fmt_value

    policies = _list(a.policy, "--policy", str)
    for name in policies:
        get_policy(name)  # an unknown name fails now, with the valid names
    fractions = pages = None
    if a.memory_fraction is not None:
        fractions = _list(a.memory_fraction, "--memory-fraction", float)
        for f in fractions:
            if not 0 < f <= 1:
                raise VmlabError(f"--memory-fraction must be in (0, 1], got {f:g}")
    elif a.memory_pages is not None:
        pages = _list(a.memory_pages, "--memory-pages", int)
        for n in pages:
            if n < 1:
                raise VmlabError(f"--memory-pages must be at least 1, got {n}")
    if a.io == "nvme":
        io = NVME
    elif a.io == "hdd":
        io = HDD
    else:
        try:
            io = float(a.io)
        except ValueError:
            raise VmlabError(f"--io must be nvme, hdd or a number of ns, got {a.io!r}") from None
    tr = _open_any(a.trace)
    if fractions is not None:
        distinct = len(index_trace(tr).keys)
        sizes = [(f, max(1, int(round(f * distinct)))) for f in fractions]
    else:
        sizes = [(None, n) for n in (pages or [None])]
    base = Scenario(
        tr, backing=a.backing, policy=policies[0], replacement=a.replacement,
        fault_around_pages=a.fault_around_pages,
        signals=[poisson_signals(a.signal_rate_hz)] if a.signal_rate_hz > 0 else (),
        adversary=Adversary("poisson", rate_hz=a.adversary_rate_hz) if a.adversary_rate_hz > 0 else None,
        horizon_ns=a.horizon_ns or DEFAULT_HORIZON_NS, seed=a.seed, records=not a.no_records,
    )
    base = base.replace(costs=base.costs.replace(io_ns=io))
    rows = []
    for fraction, mem in sizes:
        sc = base.replace(memory_pages=mem)
        for policy in policies:
            summary = vmlab.simulate(sc, policy).summary
            row = {"policy": summary["policy"], "memory_pages": mem}
            if fractions is not None:
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
        head = [h for _, h in RUN_COLUMNS]
        body = []
        for row in rows:
            cells = []
            for key, _ in RUN_COLUMNS:
                v = row.get(key)
                if key == "memory_pages":
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
        print(f"vmlab run {a.trace}: {len(tr):,} records, io {a.io}, {a.backing} backing")
        print()
        for cells in [head] + body:
            print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                            for j, (c, w) in enumerate(zip(cells, widths))).rstrip())
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
