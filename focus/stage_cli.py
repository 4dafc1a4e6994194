"""What the stage commands share: the process set-up of a ``stages/*.py`` script (:func:`pin_process`,
called before numpy or torch load), the ``--params`` option, logging set-up and the entry point
(errors of bad input as one line, exit status 1).

This module imports neither numpy nor torch at import time, so a stage script can call
:func:`pin_process` first.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, MutableMapping

#: Thread-count variables of the BLAS / OpenMP libraries behind numpy and torch. A stage process
#: runs them with one thread (set before the libraries load): their results may depend on the
#: thread count, and nothing else may decide it. torch's own threads come from params
#: (``train.num_threads``, ``eval.num_threads``, ``idnet.train.threads``; :mod:`focus.devices`).
BLAS_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def pin_environment(environ: MutableMapping[str, str]) -> None:
    """Set the variables of a reproducible stage process in ``environ``: one BLAS / OpenMP thread
    (whatever the caller's shell says) and cuBLAS's deterministic workspace."""
    for var in BLAS_THREAD_VARS:
        environ[var] = "1"
    environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def pin_process() -> None:
    """Make this stage process reproducible: :func:`pin_environment` on ``os.environ`` (effective
    only before numpy and torch load: call it first in a stage script), then deterministic torch
    kernels (:func:`focus.devices.use_deterministic`)."""
    pin_environment(os.environ)
    from focus.devices import use_deterministic

    use_deterministic()


def add_params_argument(p: argparse.ArgumentParser) -> None:
    """``--params YAML...``: parameter files; later ones override earlier ones group by group."""
    p.add_argument(
        "--params",
        nargs="+",
        default=["params.yaml"],
        metavar="YAML",
        help="parameter files; later ones override earlier ones (default: params.yaml)",
    )


def setup_logging() -> None:
    """INFO-level logging with timestamps, unless the caller configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def stage_entry(
    run: Callable[[list[str]], int], prog: str, description: str, label: str, argv: list[str] | None = None
) -> int:
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


__all__ = [
    "BLAS_THREAD_VARS",
    "add_params_argument",
    "pin_environment",
    "pin_process",
    "report_errors",
    "setup_logging",
    "stage_entry",
]
