"""Small, fast fixtures shared by the synthetic-data and data-loader tests."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from focus.synth.compose import CameraEffects, LandmarkNoise
from focus.synth.settings import ArSetSettings, NowSetSettings, SynthSettings, TrainSetSettings


@lru_cache(maxsize=1)
def tiny_model():
    """The embedded face model at a coarse resolution (about 1,200 vertices, built in < 1 s)."""
    from focus.facemodel.embedded import EmbeddedModelSettings, generate_face_model

    return generate_face_model(
        EmbeddedModelSettings(resolution=35, population_size=30, albedo_population_size=30, n_id=10, n_albedo=10)
    )


def tiny_settings(**kw) -> SynthSettings:
    """Synth settings for tests: 32 px images, few images, in-process, small chunks."""
    base = SynthSettings(
        image_size=32,
        supersample=2,
        batch_size=4,
        workers=0,
        train=TrainSetSettings(count=6, occluder_prob=0.5),
        now=NowSetSettings(subjects=2, images_per_challenge=1),
        ar=ArSetSettings(per_subset=2),
    )
    return replace(base, **kw)


def clean_camera() -> CameraEffects:
    """No blur, noise or colour changes (images equal the composite exactly)."""
    return CameraEffects(blur_max_px_at_224=0.0, noise_max=0.0, colour_jitter=0.0, gamma_jitter=0.0)


def no_landmark_noise() -> LandmarkNoise:
    return LandmarkNoise(point_std=0.0, shift_std=0.0, scale_std=0.0)
