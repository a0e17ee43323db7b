"""Every option of the cheap commands (``trace convert``, ``trace info``, ``run``, and each
generator's parameters under ``trace synth``), given each of a set of hostile values, ends
in exit 0, or exit 2 with one line on stderr: never a traceback (README, "What is checked on
input").  The options are read from the parser itself, so a new option is covered the day
it is added."""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest

from vmlab.cli import _parser, main
from vmlab.trace import synth

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "data" / "lackey_ls.vmt"
HOSTILE = ("-1", "0", "nan", "inf", "1e400", "abc", "99999999999999999999999", "0.5", "",
           "../x", "[1, 2]", "None")
COMMANDS = {("trace", "convert"): ["{trace}", "{out}/o.vmt", "--quiet"],
            ("trace", "info"): ["{trace}"],
            ("run",): ["{trace}", "--no-records", "--horizon-ns", "1000000"]}
# options that name files, and what they may be given here
FILES = {"--costs", "--out"}


def _options(path):
    p = _parser()
    for name in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return [a.option_strings[-1] for a in p._actions
            if a.option_strings and a.nargs != 0 and not isinstance(a, argparse._HelpAction)]


def _one_line_or_success(capsys, argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:   # argparse's own exits are fine if they say one line
        code = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, (argv, err[-2000:])
    if code == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)
    else:
        assert code == 0, (argv, code, err)
    return code


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_option_of_a_command_refuses_in_one_line_or_runs(tmp_path, capsys, path):
    fixed = [a.format(trace=TRACE, out=tmp_path) for a in COMMANDS[path]]
    options = [o for o in _options(path) if o not in FILES]
    assert options, path
    for option in options:
        for value in HOSTILE:
            _one_line_or_success(capsys, [*path, *fixed, f"{option}={value}"])
    # nothing but the command's own output may appear
    assert {p.name for p in tmp_path.iterdir()} <= {"o.vmt"}


@pytest.mark.parametrize("name", sorted(synth.GENERATORS))
def test_every_generator_parameter_refuses_in_one_line_or_runs(tmp_path, capsys, name):
    small = {"n": "40", "pages": "8", "stride_bytes": "64", "n_threads": "2",
             "n_per_thread": "10", "n_reads": "10", "n_lock_ops": "10",
             "pages_per_thread": "4", "n_iters": "2", "faults_per_thread": "5",
             "writes_per_writer": "5", "n_phases": "2", "ws_pages": "4", "file_pages": "32"}
    params = list(inspect.signature(synth.GENERATORS[name]).parameters)
    base = [x for p in params if p in small for x in (f"--{p.replace('_', '-')}", small[p])]
    out = tmp_path / "o.vmt"
    for p in params:
        for value in HOSTILE:
            rest = [x for x in base]
            flag = f"--{p.replace('_', '-')}"
            if flag in rest:
                i = rest.index(flag)
                del rest[i:i + 2]
            _one_line_or_success(capsys, ["trace", "synth", name, *rest, f"{flag}={value}",
                                          "-o", out])
    assert {p.name for p in tmp_path.iterdir()} <= {"o.vmt"}
