"""One synthetic image: masks agree with the render, landmarks with the rendered landmark vertices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from synth_helpers import clean_camera, no_landmark_noise, tiny_model, tiny_settings

from focus.render.renderer import FaceRenderer, RenderSettings
from focus.synth.compose import LandmarkNoise, block_mean, composite, noisy_landmarks, render_faces
from focus.synth.generator import CameraSpec, ImageJob, SynthWorker, rng_for
from focus.synth.occluders import OCCLUDER_KINDS

S = 48


@pytest.fixture(scope="module")
def worker() -> SynthWorker:
    s = tiny_settings(camera=clean_camera(), landmark_noise=no_landmark_noise())
    return SynthWorker(tiny_model(), s)


@pytest.fixture(scope="module")
def occluded(worker: SynthWorker):
    """One image per occluder kind, and the same faces without occluders."""
    cam = CameraSpec(S, 2)
    with_occ = worker.run([ImageJob("test", i, cam, occluder=k) for i, k in enumerate(OCCLUDER_KINDS)])
    without = worker.run([ImageJob("test", i, cam, occluder="") for i in range(len(OCCLUDER_KINDS))])
    return with_occ, without


def test_every_kind_occludes_something(occluded) -> None:
    with_occ, _ = occluded
    for r in with_occ:
        c = r.result
        assert c.occluders == [r.job.occluder]
        assert c.occluded_share > 0.0, f"{r.job.occluder} covers none of the face"
        assert c.occluded_share < 0.95


def test_occluder_pixels_are_never_visible_face(occluded, worker: SynthWorker) -> None:
    thr = worker.settings.occluders.alpha_threshold
    for r in occluded[0]:
        c = r.result
        assert c.occluder_alpha is not None and c.occluder_alpha.shape == (S, S)
        assert not np.any(c.mask & (c.occluder_alpha >= thr)), r.job.occluder
        # and every face pixel not marked visible is covered by an occluder
        hidden = c.face_mask & ~c.mask
        assert np.all(c.occluder_alpha[hidden] >= thr), r.job.occluder


def test_visible_pixels_show_the_face(occluded) -> None:
    """Where no occluder touches a pixel the image equals the unoccluded image of the same face;
    face pixels marked visible never differ much from it."""
    for r, r0 in zip(*occluded):
        c, c0 = r.result, r0.result
        np.testing.assert_array_equal(c.face_mask, c0.face_mask)
        untouched = c.occluder_alpha == 0
        assert np.array_equal(c.image[untouched], c0.image[untouched]), r.job.occluder
        diff = np.abs(c.image.astype(int) - c0.image.astype(int)).max(-1)
        assert np.all(diff[c.mask] <= 0.5 * 255 + 1)
        assert c0.mask.sum() == c0.face_mask.sum(), "without occluders all of the face is visible"


def test_face_mask_agrees_with_a_direct_render(worker: SynthWorker) -> None:
    """The stored face region (2x supersampled coverage >= 1/2) matches the renderer's coverage
    at the output size up to boundary pixels."""
    cam = CameraSpec(S, 2)
    jobs = [ImageJob("test", 100 + i, cam, occluder="") for i in range(4)]
    res = worker.run(jobs)
    rs = RenderSettings(image_size=S, backend="torch", distance=cam.distance, focal_at_224=cam.focal_at_224)
    from focus.synth.compose import draws_to_coeffs

    with torch.no_grad():
        out = FaceRenderer(tiny_model(), rs)(draws_to_coeffs([r.draw for r in res]))
    for b, r in enumerate(res):
        direct = out.mask[b, 0].numpy() > 0.5
        stored = r.result.face_mask
        inter = (direct & stored).sum()
        union = (direct | stored).sum()
        assert inter / union > 0.93
        # disagreements only on the silhouette
        from scipy.ndimage import binary_erosion

        core = binary_erosion(direct, iterations=1)
        assert np.all(stored[core])


def test_true_landmarks_are_the_rendered_landmark_vertices(worker: SynthWorker) -> None:
    cam = CameraSpec(S, 2)
    res = worker.run([ImageJob("test", 200 + i, cam, occluder="") for i in range(3)])
    from focus.synth.compose import draws_to_coeffs

    rs = RenderSettings(image_size=S, backend="torch", distance=cam.distance, focal_at_224=cam.focal_at_224)
    with torch.no_grad():
        out = FaceRenderer(tiny_model(), rs)(draws_to_coeffs([r.draw for r in res]))
    for b, r in enumerate(res):
        np.testing.assert_allclose(r.result.landmarks_true, out.landmarks[b].numpy(), atol=1e-3)
        np.testing.assert_allclose(r.result.landmarks, r.result.landmarks_true, atol=1e-9)  # no noise configured


def test_landmarks_project_where_the_landmark_vertices_render(worker: SynthWorker) -> None:
    """At the pixel under a (front-facing) landmark the rasterised surface is the landmark's own
    neighbourhood: its model-frame position is within ~a pixel of the landmark vertex."""
    cam = CameraSpec(96, 1)
    job = ImageJob(
        "test", 300, cam, occluder="", neutral=True, max_angles_deg=(0.0, 0.0, 0.0), trans_xy_mm=0.0, trans_z_mm=0.0
    )
    draw = worker.draw(job)
    face = render_faces(worker.renderer(cam), [draw])[0]
    mm_per_px = cam.distance / (cam.focal_at_224 * cam.image_size / 224)
    H, W = face.size
    flat = np.full(H * W, -1)
    flat[face.pixels] = np.arange(len(face.pixels))
    inner = [30, 33, 36, 39, 42, 45, 48, 54, 51, 57, 27, 8]
    for k in inner:
        u, v = face.lm2d[k]
        idx = flat[int(v) * W + int(u)]
        assert idx >= 0, f"landmark {k} falls outside the rendered face"
        d = np.linalg.norm(face.q[idx] - face.lm3d[k, :2])
        assert d < 1.5 * mm_per_px, f"landmark {k}: rendered surface {d:.2f} mm from its vertex"


def test_noisy_landmarks_statistics() -> None:
    rng = np.random.default_rng(0)
    lm = tiny_model().mean_shape.numpy()[tiny_model().landmarks68.numpy(), :2] * np.array([1, -1]) + 100
    s = LandmarkNoise()
    errs = np.stack([noisy_landmarks(rng, lm, s) - lm for _ in range(200)])
    iod = np.linalg.norm((lm[36] + lm[39]) / 2 - (lm[42] + lm[45]) / 2)
    inner_std = errs[:, 17:].std() / iod
    contour_std = errs[:, :17].std() / iod
    assert 0.015 < inner_std < 0.04
    assert contour_std > 1.5 * inner_std
    occl = np.ones((300, 300), np.float32)
    errs_occ = np.stack([noisy_landmarks(rng, lm, replace(s, shift_std=0, scale_std=0), occl) - lm for _ in range(200)])
    assert errs_occ[:, 17:].std() / iod > 1.3 * s.point_std


def test_block_mean() -> None:
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(block_mean(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(block_mean(a, 1), a)


def test_composite_is_deterministic(worker: SynthWorker) -> None:
    cam = CameraSpec(S, 2)
    job = ImageJob("test", 400, cam, occluder="hand")
    a = worker.run([job])[0].result
    b = worker.run([job])[0].result
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert rng_for(0, "test", 400, "face").random() == rng_for(0, "test", 400, "face").random()
    assert composite is not None
