"""Exceptions with messages a user can act on: they name the file and what is wrong."""

from __future__ import annotations

from pathlib import Path


class FocusError(Exception):
    """Base class of every error the package raises on purpose."""


class InputFileError(FocusError, ValueError):
    """A user-supplied file is missing, unreadable or malformed.

    The message always names the file and, where possible, the fix.
    """

    def __init__(self, path: str | Path, problem: str, fix: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)
