"""``focus train {init,pretrain_seg,em}``: run one training stage (what ``stages/train_*.py`` call).

``--params`` takes one or more YAML files; later files override earlier ones group by group
(e.g. ``--params params.yaml configs/paper.yaml`` for the paper-scale schedule). Under
``torchrun --nproc_per_node N`` the stage runs data-parallel.
"""

from __future__ import annotations

import argparse
import sys

from focus.stage_cli import add_params_argument, setup_logging, stage_entry

STAGES = ("init", "pretrain_seg", "em")


def run_stage(stage: str, params_files: list[str]) -> int:
    """Run ``stage`` with the merged ``params_files`` (every value checked first).

    Ctrl-C prints one line saying where the checkpoint is and exits with status 130; re-running
    the same command resumes from that checkpoint.
    """
    from focus.config import merged_params
    from focus.train import distributed as D
    from focus.train import pipeline
    from focus.train.trainer import TrainingInterrupted

    setup_logging()
    params = merged_params(params_files)
    fn = {"init": pipeline.run_init, "pretrain_seg": pipeline.run_pretrain_seg, "em": pipeline.run_em}[stage]
    try:
        fn(params)
    except TrainingInterrupted as exc:
        print(f"train {stage}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # outside the training loop (loading, pseudo masks, reports)
        print(
            f"train {stage}: interrupted outside the training loop; the checkpoints written so far are kept: run "
            "the same command again to resume",
            file=sys.stderr,
        )
        return TrainingInterrupted.exit_code
    finally:
        D.cleanup()
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="run a training stage (init, pretrain_seg, em)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("stage", choices=STAGES)
    add_params_argument(p)
    p.set_defaults(func=lambda a: run_stage(a.stage, a.params))


def stage_main(stage: str, argv: list[str] | None = None) -> int:
    """Entry point of ``stages/train_<stage>.py``."""
    return stage_entry(
        lambda files: run_stage(stage, files),
        f"stages/train_{stage}.py",
        f"FOCUS training stage {stage!r}",
        f"train {stage}",
        argv,
    )
