"""The ``focus`` command line: one subcommand per task, each with ``--help``.

Each subcommand lives in its own module that defines ``register(subparsers)``; that function adds
its parser and sets ``func`` (called with the parsed ``argparse.Namespace``, returns an exit code).
Modules are listed in :data:`SUBCOMMAND_MODULES` and imported only when the CLI starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from focus.errors import FocusError

#: Modules that contribute subcommands (each exposes ``register(subparsers)``).
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "focus.facemodel.cli",
    "focus.now.cli",
    "focus.train.cli",
    "focus.apps.cli",
    "focus.eval.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="focus",
        description="FOCUS: robust 3D face reconstruction with outlier segmentation. "
        "Run `focus COMMAND --help` for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet in this checkout
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FocusError as exc:
        print(f"focus {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
