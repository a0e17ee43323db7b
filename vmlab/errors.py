"""Exceptions vmlab raises for bad input.

Every error names where the problem is (file, line, field) and what was expected, so a user
never has to read a traceback from inside a kernel.
"""
from __future__ import annotations


class VmlabError(Exception):
    """Base class of every error vmlab raises on purpose."""


class TraceFormatError(VmlabError, ValueError):
    """A trace file or array does not have the expected form.

    Parameters
    ----------
    message : str
        What was wrong and what was expected.
    path : str, optional
        The file, if the problem is in a file.
    line : int, optional
        1-based line number for text formats.
    option : tuple, optional
        ``(name, value, effect)``: the reader's keyword that would accept the input, as a
        hint after the message (``(pass other_events='skip' to ignore other events)``);
        :meth:`cli_text` spells it as the command line's option.
    """

    def __init__(self, message, path=None, line=None, option=None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        self.option = option
        hint = ""
        if option is not None:
            name, value, effect = option
            hint = f" (pass {name}={value!r} {effect})"
        super().__init__(self._where() + message + hint)

    def _where(self):
        if self.path is None:
            return ""
        return self.path + ("" if self.line is None else f":{self.line}") + ": "

    def cli_text(self):
        """The message with its hint as the command line's option (``--other-events skip``)."""
        if self.option is None:
            return str(self)
        name, value, effect = self.option
        return (f"{self._where()}{self.reason} "
                f"(give --{name.replace('_', '-')} {value} {effect})")


class ScenarioError(VmlabError, ValueError):
    """A scenario or policy is invalid; the message says what to change."""
