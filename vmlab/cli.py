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
import sys
import textwrap
from pathlib import Path

from .errors import VmlabError

EPILOG = """\
examples:
  vmlab trace convert ls.lackey ls.vmt          # valgrind lackey output -> native trace
  vmlab trace info ls.vmt                       # records, threads, distinct pages, VMAs
  vmlab trace synth zipf --n 1000000 --pages 100000 --alpha 1.0 -o zipf.vmt
  vmlab run zipf.vmt --policy fault_retry --memory-fraction 0.1 --json
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
        "run", help="replay a trace under one policy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Replay TRACE under a fault-handler policy and print the summary.",
        epilog="policies: " + ", ".join(_policy_names()))
    r.add_argument("trace", help="trace file (any readable format)")
    r.add_argument("--policy", default="nopage", help="policy preset (default nopage)")
    r.add_argument("--backing", default="file",
                   help="backing of the VMAs inferred from the trace (file, anon, device, iomem, context)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--memory-pages", type=int, default=None, help="page-cache frames (default unlimited)")
    g.add_argument("--memory-fraction", type=float, default=None,
                   help="page-cache frames as a fraction of the trace's distinct pages")
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
    r.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

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


def _run(a):
    from .simulation import simulate
    from .engine.prepare import index_trace
    from .model import HDD, NVME, Adversary, Scenario, poisson_signals
    from .model.scenario import DEFAULT_HORIZON_NS

    tr = _open_any(a.trace)
    if a.io == "nvme":
        io = NVME
    elif a.io == "hdd":
        io = HDD
    else:
        try:
            io = float(a.io)
        except ValueError:
            raise VmlabError(f"--io must be nvme, hdd or a number of ns, got {a.io!r}") from None
    mem = a.memory_pages
    if a.memory_fraction is not None:
        if not 0 < a.memory_fraction <= 1:
            raise VmlabError(f"--memory-fraction must be in (0, 1], got {a.memory_fraction}")
        distinct = len(index_trace(tr).keys)
        mem = max(1, int(round(a.memory_fraction * distinct)))
    sc = Scenario(
        tr, backing=a.backing, policy=a.policy, memory_pages=mem, replacement=a.replacement,
        fault_around_pages=a.fault_around_pages,
        signals=[poisson_signals(a.signal_rate_hz)] if a.signal_rate_hz > 0 else (),
        adversary=Adversary("poisson", rate_hz=a.adversary_rate_hz) if a.adversary_rate_hz > 0 else None,
        horizon_ns=a.horizon_ns or DEFAULT_HORIZON_NS, seed=a.seed, records=not a.no_records,
    )
    sc = sc.replace(costs=sc.costs.replace(io_ns=io))
    res = simulate(sc)
    if a.json:
        print(json.dumps(_jsonable(res.summary)))
    else:
        w = max(len(k) for k in res.summary)
        for k, v in res.summary.items():
            print(f"{k:<{w}}  {_fmt(v)}")
    return 0


def _fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:,.6g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


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
