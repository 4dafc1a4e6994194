"""``focus train {init,pretrain_seg,em}``: run one training stage (what ``stages/train_*.py`` call).

``--params`` takes one or more YAML files; later files override earlier ones group by group
(e.g. ``--params params.yaml configs/paper.yaml`` for the paper-scale schedule). Under
``torchrun --nproc_per_node N`` the stage runs data-parallel.
"""

from __future__ import annotations

import argparse
import logging
import sys

STAGES = ("init", "pretrain_seg", "em")


def run_stage(stage: str, params_files: list[str]) -> int:
    from focus.train import distributed as D
    from focus.train import pipeline

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = pipeline.merged_params(params_files)
    fn = {"init": pipeline.run_init, "pretrain_seg": pipeline.run_pretrain_seg, "em": pipeline.run_em}[stage]
    try:
        fn(params)
    finally:
        D.cleanup()
    return 0


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", nargs="+", default=["params.yaml"], metavar="YAML",
                   help="parameter files; later ones override earlier ones (default: params.yaml)")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="run a training stage (init, pretrain_seg, em)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=STAGES)
    _add_arguments(p)
    p.set_defaults(func=lambda a: run_stage(a.stage, a.params))


def stage_main(stage: str, argv: list[str] | None = None) -> int:
    """Entry point of ``stages/train_<stage>.py``."""
    from focus.errors import FocusError

    p = argparse.ArgumentParser(prog=f"stages/train_{stage}.py", description=f"FOCUS training stage {stage!r}")
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_stage(stage, args.params)
    except FocusError as exc:
        print(f"train {stage}: error: {exc}", file=sys.stderr)
        return 1
