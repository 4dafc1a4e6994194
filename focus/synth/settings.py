"""All settings of the synthetic data (``params.yaml``: group ``synth``), one frozen dataclass tree.

Defaults are the CPU pipeline's: 64 px images (supersampled 2x), 3000 training images with half
of them occluded, a NoW-like set of 10 subjects x 4 challenges x 3 images, and an AR-like set of
40 faces per subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from focus.config import nonnegative, param, positive, probability
from focus.synth.appearance import AppearanceSettings
from focus.synth.backgrounds import BackgroundSettings
from focus.synth.compose import CameraEffects, LandmarkNoise
from focus.synth.context import ContextSettings
from focus.synth.occluders import OccluderSettings, OccluderWeights  # noqa: F401 - nested settings types
from focus.synth.sampling import SamplingSettings
from focus.synth.scans import ScanSettings


@dataclass(frozen=True)
class TrainSetSettings:
    """The training set.

    Attributes:
        count: number of images.
        occluder_prob: share of images with occluders.
    """

    count: int = param(3000, ge=1)
    occluder_prob: float = probability(0.5)


@dataclass(frozen=True)
class NowSetSettings:
    """The NoW-like set (validation layout of docs/evaluation.md).

    Attributes:
        subjects: number of subjects (one neutral scan each).
        images_per_challenge: images per subject and challenge.
        image_size: side of the "iPhone pictures", pixels (``None``: ``zoom_out`` times the
            training image size).
        zoom_out: the face appears as in a ``image_size / zoom_out`` px crop (so the pictures
            show context around the face, like real photos).
        selfie_distance_mm: camera distance of the selfie challenge (wide angle: the focal
            length shrinks in proportion, so the face keeps its size).
        jpeg_quality: quality of the JPEG pictures.
        scan: how the scans are made.
    """

    subjects: int = param(10, ge=1)
    images_per_challenge: int = param(3, ge=1)
    image_size: int | None = param(None, ge=16, le=4096)
    zoom_out: float = param(2.0, ge=1)
    selfie_distance_mm: float = positive(400.0)
    jpeg_quality: int = param(95, ge=1, le=100)
    scan: ScanSettings = field(default_factory=ScanSettings)


@dataclass(frozen=True)
class ArSetSettings:
    """The AR-like segmentation set: frontal neutral faces in three subsets.

    Attributes:
        per_subset: images per subset (the same subjects in every subset, as in AR).
        max_angle_deg: largest pitch/yaw (roll is half of it).
    """

    per_subset: int = param(40, ge=1)
    max_angle_deg: float = nonnegative(5.0)


@dataclass(frozen=True)
class SynthSettings:
    """Everything the ``synth`` stage needs (see :mod:`focus.synth`).

    Attributes:
        seed: base seed; image ``i`` of set ``s`` draws from ``(seed, s, i)`` only.
        image_size: output side in pixels (``None``: ``render.image_size``); the training crop
            framing of the renderer's default camera.
        supersample: drawing resolution factor (anti-aliasing).
        batch_size: faces rendered per call (part of the output's definition: fixed chunks).
        workers: worker processes (0: in this process); does not change the output.
    """

    seed: int = param(0, ge=0)
    image_size: int | None = param(None, ge=16, le=4096)
    supersample: int = param(2, ge=1)
    batch_size: int = param(32, ge=1)
    workers: int = param(2, ge=0)
    train: TrainSetSettings = field(default_factory=TrainSetSettings)
    now: NowSetSettings = field(default_factory=NowSetSettings)
    ar: ArSetSettings = field(default_factory=ArSetSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    appearance: AppearanceSettings = field(default_factory=AppearanceSettings)
    occluders: OccluderSettings = field(default_factory=OccluderSettings)
    backgrounds: BackgroundSettings = field(default_factory=BackgroundSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    camera: CameraEffects = field(default_factory=CameraEffects)
    landmark_noise: LandmarkNoise = field(default_factory=LandmarkNoise)
