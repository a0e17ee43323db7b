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
    """

    def __init__(self, message, path=None, line=None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)


class ScenarioError(VmlabError, ValueError):
    """A scenario or policy is invalid; the message says what to change."""
