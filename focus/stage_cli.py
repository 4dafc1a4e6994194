"""What the training and evaluation stage commands share: the ``--params`` option, logging set-up
and the entry point of a ``stages/*.py`` script (errors of bad input as one line, exit status 1)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable


def add_params_argument(p: argparse.ArgumentParser) -> None:
    """``--params YAML...``: parameter files; later ones override earlier ones group by group."""
    p.add_argument("--params", nargs="+", default=["params.yaml"], metavar="YAML",
                   help="parameter files; later ones override earlier ones (default: params.yaml)")


def setup_logging() -> None:
    """INFO-level logging with timestamps, unless the caller configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def stage_entry(run: Callable[[list[str]], int], prog: str, description: str, label: str,
                argv: list[str] | None = None) -> int:
    """Parse ``--params`` and call ``run(params_files)``; a :class:`focus.errors.FocusError` is
    printed as ``<label>: error: ...`` and gives exit status 1."""
    from focus.errors import FocusError

    p = argparse.ArgumentParser(prog=prog, description=description)
    add_params_argument(p)
    args = p.parse_args(argv)
    try:
        return run(args.params)
    except FocusError as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return 1


def report_errors(label: str, run: Callable[[], int]) -> int:
    """``run()``, with a :class:`focus.errors.FocusError` printed as ``<label>: error: ...`` (one
    line, exit status 1) and Ctrl-C as ``<label>: interrupted`` (exit status 130)."""
    from focus.errors import FocusError

    try:
        return run()
    except FocusError as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return 130


__all__ = ["add_params_argument", "report_errors", "setup_logging", "stage_entry"]
