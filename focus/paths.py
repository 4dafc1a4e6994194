"""Where the training stages read and write: the ``paths`` group of ``params.yaml``.

:class:`PathSettings` is that group (the folders, relative to the project root); :class:`TrainPaths`
the files each training stage uses, built from it (:meth:`TrainPaths.from_params`) or given
directly (tests, ``bench/train_sweep.py``). ``dvc.yaml`` declares the same files as outputs;
``tests/test_dvc_paths.py`` checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from focus.config import from_dict
from focus.errors import FocusError

#: The training stages, in pipeline order.
TRAIN_STAGES: tuple[str, ...] = ("init", "pretrain_seg", "em")

#: The file of each stage's final networks, inside :attr:`PathSettings.models`.
FINAL_NAMES = {"init": "focus_init.pt", "pretrain_seg": "focus_pretrain_seg.pt", "em": "focus.pt"}


@dataclass(frozen=True)
class PathSettings:
    """The ``paths`` group of ``params.yaml`` (folders relative to the project root).

    Attributes:
        checkpoints: a training stage's resumable state goes to ``<checkpoints>/<stage>/last.pt``
            (and the EM's per-round snapshots ``<checkpoints>/em/round_XX.pt``).
        models: the final networks of each training stage (``focus_init.pt``,
            ``focus_pretrain_seg.pt``, ``focus.pt``): what the next stage and the evaluation read.
        pseudo_masks: the pseudo masks of the training images (PNG), written by ``pretrain_seg``.
        train_reports: ``<stage>_metrics.json``, the EM plot and each stage's dvclive folder.
    """

    checkpoints: str = "checkpoints"
    models: str = "models"
    pseudo_masks: str = "data/pseudo_masks"
    train_reports: str = "reports/train"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value.strip():
                raise FocusError(f"paths.{f.name} is {value!r}; use a folder relative to the project root")


@dataclass(frozen=True)
class TrainPaths:
    """The files of the training stages.

    ``run_dirs`` / ``finals`` map a stage name (:data:`TRAIN_STAGES`) to its run folder and final
    file; a stage missing from ``finals`` keeps its final file in its run folder (``final.pt``).
    """

    run_dirs: dict[str, Path]
    finals: dict[str, Path]
    pseudo_masks: Path
    reports: Path

    def __init__(
        self,
        run_dirs: dict | None = None,
        finals: dict | None = None,
        pseudo_masks: str | Path | None = None,
        reports: str | Path | None = None,
    ) -> None:
        default = PathSettings()
        if finals is None:  # the DVC layout, unless only the run folders were moved (then: inside them)
            finals = {s: Path(default.models) / FINAL_NAMES[s] for s in TRAIN_STAGES} if run_dirs is None else {}
        if run_dirs is None:
            run_dirs = {s: Path(default.checkpoints) / s for s in TRAIN_STAGES}
        object.__setattr__(self, "run_dirs", {k: Path(v) for k, v in run_dirs.items()})
        object.__setattr__(self, "finals", {k: Path(v) for k, v in finals.items()})
        object.__setattr__(
            self, "pseudo_masks", Path(pseudo_masks if pseudo_masks is not None else default.pseudo_masks)
        )
        object.__setattr__(self, "reports", Path(reports if reports is not None else default.train_reports))

    @classmethod
    def from_settings(cls, s: PathSettings) -> TrainPaths:
        return cls(
            run_dirs={k: Path(s.checkpoints) / k for k in TRAIN_STAGES},
            finals={k: Path(s.models) / FINAL_NAMES[k] for k in TRAIN_STAGES},
            pseudo_masks=s.pseudo_masks,
            reports=s.train_reports,
        )

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> TrainPaths:
        """From the ``paths`` group of ``params`` (defaults where it is missing)."""
        return cls.from_settings(from_dict(PathSettings, params.get("paths"), f"{source}:paths"))

    def run_dir(self, stage: str) -> Path:
        return self.run_dirs[stage]

    def final(self, stage: str) -> Path:
        return self.finals.get(stage, self.run_dirs[stage] / "final.pt")


__all__ = ["FINAL_NAMES", "TRAIN_STAGES", "PathSettings", "TrainPaths"]
