"""Settings of the evaluation stages (``params.yaml`` groups ``misfit_prior`` and ``eval``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from focus.config import check_fields, param
from focus.eval.celebahq import DEFAULT_FACE_PARTS, check_face_parts

#: The synthetic sets evaluated by default (written by the ``synth`` stage).
SYNTH_NOW = Path("data/synth/now")
SYNTH_AR = Path("data/synth/ar")


@dataclass(frozen=True)
class MisfitPriorSettings:
    """How the misfit prior is estimated (``docs/method.md`` section 5; stage ``misfit_prior``).

    Attributes:
        count: fresh synthetic faces without occluders (drawn like the training set: shape,
            expression, albedo, pose, light and the appearance details the model cannot produce).
        seed: seed of that set (its images never coincide with the training images: they are
            drawn from another generator stream).
        region: face-model region (``FaceModel.regions``) whose vertices define the rigid
            alignment of prediction and truth; ``"all"`` for every vertex.
        batch_size: faces per network call.
        workers: worker processes that render the faces (0: in this process).
        apply: subtract the prior from the exported neutral shapes of the ``focus_prior`` rows
            (``False`` reports the prior but leaves those rows out).
    """

    count: int = param(256, ge=2)
    seed: int = param(1, ge=0)
    region: str = "face"
    batch_size: int = param(32, ge=1)
    workers: int = param(0, ge=0)
    apply: bool = True

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class EvalSettings:
    """What the evaluation stages read and how (``params.yaml`` group ``eval``).

    Attributes:
        now_dir: a real NoW folder (validation layout, ``docs/evaluation.md`` section 1); ``None``:
            the synthetic NoW-like set ``data/synth/now``.
        now_landmarks: ``name,x1,y1,...,x68,y68`` CSV of the NoW pictures (names as in the image
            list); ``None``: ``<now_dir>/landmarks.csv``.
        ar_dir: a real AR-like folder with ``unoccluded/``, ``sunglasses/`` and ``scarf/``, each a
            face-image folder (``images/``, ``landmarks.csv``, ``masks/``); ``None``: ``data/synth/ar``.
        batch_size: images per network call.
        workers: processes that score the models' NoW predictions in parallel (the scorer uses
            about one core per process).
        device: ``cpu``, ``cuda`` or ``auto``.
        num_threads: torch threads (0: torch's default).
        examples: best and worst cases shown in the image grids.
        keep_predictions: models whose NoW predictions are kept under ``data/eval/now/predictions/``
            (the others are scored and deleted).
        round_challenges: NoW challenges on which the per-round models (``focus_round_XX``) are
            scored (the NoW protocol is the slow part of the evaluation); ``None``:
            all. The final model, the autoencoder and the prior are always scored on every image.
        allow_missing: score the NoW images that have a prediction when some have none (no usable
            landmarks) and report the count; ``False``: fail, naming them.
        progress: progress bars.
        celebahq_dir: a CelebAMask-HQ folder (``CelebA-HQ-img/``, ``CelebAMask-HQ-mask-anno/``,
            ``CelebA-HQ-to-CelebA-mapping.txt``; :mod:`focus.eval.celebahq`); ``None``: the AR-like
            synthetic set written in that layout (stage ``eval_celebahq``).
        celebahq_landmarks: 68-landmark CSV of its images (names ``<idx>.jpg``, image pixels; the
            release has none); ``None``: ``<celebahq_dir>/landmarks.csv``.
        celebahq_face_parts: the part labels that count as visible face (every other label, painted
            over them in the annotation tool's order, does not); default skin, nose, eyes, brows,
            mouth, lips.
        celebahq_max_images: score the first this many images of the landmark CSV (0: all).
    """

    now_dir: str | None = None
    now_landmarks: str | None = None
    ar_dir: str | None = None
    batch_size: int = param(32, ge=1)
    workers: int = param(2, ge=0)
    device: str = "cpu"
    num_threads: int = param(0, ge=-1)
    examples: int = param(4, ge=0)
    keep_predictions: tuple[str, ...] = ("focus", "focus_prior")
    round_challenges: tuple[str, ...] | None = ("multiview_neutral", "multiview_occlusions")
    allow_missing: bool = False
    progress: bool = True
    celebahq_dir: str | None = None
    celebahq_landmarks: str | None = None
    celebahq_face_parts: tuple[str, ...] = DEFAULT_FACE_PARTS
    celebahq_max_images: int = param(0, ge=0)

    def __post_init__(self) -> None:
        check_fields(self)
        check_face_parts(self.celebahq_face_parts)

    @property
    def now_root(self) -> Path:
        return Path(self.now_dir) if self.now_dir else SYNTH_NOW

    @property
    def ar_root(self) -> Path:
        return Path(self.ar_dir) if self.ar_dir else SYNTH_AR

    @property
    def synthetic_now(self) -> bool:
        return not self.now_dir

    @property
    def synthetic_ar(self) -> bool:
        return not self.ar_dir


__all__ = ["EvalSettings", "MisfitPriorSettings", "SYNTH_AR", "SYNTH_NOW"]
