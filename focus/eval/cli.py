"""``focus evaluate {misfit_prior,now,ar,report,celebahq}``: run one evaluation stage (what ``stages/*.py`` call).

``--params`` takes one or more YAML files; later files override earlier ones group by group.
Paths are the DVC layout (run from the project root): the models in ``models/`` and
``checkpoints/em/``, the sets in ``data/synth/`` (or ``eval.now_dir`` / ``eval.ar_dir``), reports in
``reports/``.
"""

from __future__ import annotations

import argparse

from focus.stage_cli import add_params_argument, setup_logging, stage_entry

STAGES = {
    "misfit_prior": "run_misfit_prior",
    "now": "run_eval_now",
    "ar": "run_eval_ar",
    "report": "run_report",
    "celebahq": "run_eval_celebahq",
}
SCRIPT_NAMES = {
    "misfit_prior": "misfit_prior",
    "now": "eval_now",
    "ar": "eval_ar",
    "report": "report",
    "celebahq": "eval_celebahq",
}


def run_stage(stage: str, params_files: list[str]) -> int:
    from focus.config import merged_params
    from focus.eval import pipeline

    setup_logging()
    params = merged_params(params_files)
    getattr(pipeline, STAGES[stage])(params)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="run an evaluation stage (misfit_prior, now, ar, report, celebahq)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("stage", choices=tuple(STAGES))
    add_params_argument(p)
    p.set_defaults(func=lambda a: run_stage(a.stage, a.params))


def stage_main(stage: str, argv: list[str] | None = None) -> int:
    """Entry point of ``stages/{misfit_prior,eval_now,eval_ar,report}.py``."""
    return stage_entry(
        lambda files: run_stage(stage, files),
        f"stages/{SCRIPT_NAMES[stage]}.py",
        f"FOCUS evaluation stage {stage!r}",
        SCRIPT_NAMES[stage],
        argv,
    )
