"""``focus evaluate {misfit_prior,now,ar,report}``: run one evaluation stage (what ``stages/*.py`` call).

``--params`` takes one or more YAML files; later files override earlier ones group by group.
Paths are the DVC layout (run from the project root): the models in ``models/`` and
``checkpoints/em/``, the sets in ``data/synth/`` (or ``eval.now_dir`` / ``eval.ar_dir``), reports in
``reports/``.
"""

from __future__ import annotations

import argparse
import logging
import sys

STAGES = {"misfit_prior": "run_misfit_prior", "now": "run_eval_now", "ar": "run_eval_ar", "report": "run_report"}
SCRIPT_NAMES = {"misfit_prior": "misfit_prior", "now": "eval_now", "ar": "eval_ar", "report": "report"}


def run_stage(stage: str, params_files: list[str]) -> int:
    from focus.eval import pipeline
    from focus.train.pipeline import merged_params

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = merged_params(params_files)
    getattr(pipeline, STAGES[stage])(params)
    return 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", nargs="+", default=["params.yaml"], metavar="YAML",
                   help="parameter files; later ones override earlier ones (default: params.yaml)")


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="run an evaluation stage (misfit_prior, now, ar, report)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=tuple(STAGES))
    _add_arguments(p)
    p.set_defaults(func=lambda a: run_stage(a.stage, a.params))


def stage_main(stage: str, argv: list[str] | None = None) -> int:
    """Entry point of ``stages/{misfit_prior,eval_now,eval_ar,report}.py``."""
    from focus.errors import FocusError

    p = argparse.ArgumentParser(prog=f"stages/{SCRIPT_NAMES[stage]}.py", description=f"FOCUS evaluation stage {stage!r}")
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_stage(stage, args.params)
    except FocusError as exc:
        print(f"{SCRIPT_NAMES[stage]}: error: {exc}", file=sys.stderr)
        return 1
