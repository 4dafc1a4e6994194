"""Pieces of the synthetic images: geometry helpers against slow references, occluder placement,
appearance painting, backgrounds, textures, sampling and writers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as MplPath
from synth_helpers import tiny_model

from focus.synth.appearance import (
    AppearanceSettings,
    FacePixels,
    paint_face,
    polygon_sdf,
    polyline_coords,
    sample_appearance,
    smooth_closed_curve,
    smooth_open_curve,
)
from focus.synth.backgrounds import SKIMAGE_PHOTOS, BackgroundSettings, photo_pool, sample_background
from focus.synth.occluders import (
    OCCLUDER_KINDS,
    OccluderContext,
    OccluderSettings,
    OccluderWeights,
    draw_occluder,
    grid,
    sample_kinds,
    sd_polygon,
)
from focus.synth.sampling import SamplingSettings, sample_face, sh_directional, signed_expressions
from focus.synth.textures import PointNoise, fbm, pattern
from focus.synth.writers import save_npz, write_face_box


# ---------------------------------------------------------------------- geometry
def test_polygon_sdf_against_references() -> None:
    rng = np.random.default_rng(0)
    th = np.sort(rng.uniform(0, 2 * np.pi, 9))
    poly = np.stack([np.cos(th), np.sin(th)], -1) * rng.uniform(5, 10, (9, 1))
    q = rng.uniform(-12, 12, (2000, 2)).astype(np.float32)
    sdf = polygon_sdf(q, poly.astype(np.float32))
    inside = MplPath(poly).contains_points(q)
    np.testing.assert_array_equal(sdf < 0, inside)
    # |sdf| is the distance to the nearest edge (brute force over dense edge samples)
    t = np.linspace(0, 1, 400)[:, None, None]
    dense = (poly[None] * (1 - t) + np.roll(poly, -1, 0)[None] * t).reshape(-1, 2)
    ref = np.sqrt(((q[:, None] - dense[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(np.abs(sdf), ref, atol=0.05)


def test_sd_polygon_on_the_grid_matches_the_point_version() -> None:
    X, Y = grid((40, 50))
    poly = np.array([[5.0, 5.0], [45.0, 8.0], [30.0, 35.0], [8.0, 30.0]])
    a = sd_polygon(X, Y, poly)
    b = polygon_sdf(np.stack([X.ravel(), Y.ravel()], -1), poly.astype(np.float32)).reshape(X.shape)
    assert np.mean((a < 0) == (b < 0)) > 0.99
    assert np.abs(a - b)[np.abs(b) < 6].max() < 1.0


def test_curves_pass_through_their_points() -> None:
    pts = np.array([[0.0, 0.0], [10.0, 3.0], [20.0, 1.0], [25.0, -4.0], [12.0, -6.0]])
    closed = smooth_closed_curve(pts, 25)
    open_ = smooth_open_curve(pts, 21)
    for p in pts:
        assert np.min(np.linalg.norm(closed - p, axis=1)) < 1e-4
        assert np.min(np.linalg.norm(open_ - p, axis=1)) < 1e-4
    d, s, side = polyline_coords(np.array([[10.0, 10.0], [0.0, -1.0]], np.float32), open_)
    assert d[1] == pytest.approx(1.0, abs=0.2) and 0 <= s.min() and s.max() <= 1


# ---------------------------------------------------------------------- textures, backgrounds
def test_point_noise_is_anisotropic_along_its_angle() -> None:
    n = PointNoise(np.random.default_rng(0), period=8.0, anisotropy=8.0, angle=0.0)
    t = np.linspace(0, 40, 400)
    along = n(np.stack([t, np.zeros_like(t)], -1))
    across = n(np.stack([np.zeros_like(t), t], -1))
    assert np.abs(np.diff(across)).mean() > 4 * np.abs(np.diff(along)).mean()


def test_fbm_and_patterns() -> None:
    rng = np.random.default_rng(1)
    f = fbm(rng, (32, 40))
    assert f.shape == (32, 40) and f.min() == 0.0 and f.max() == 1.0
    for kind in ("solid", "stripes", "checks", "tartan", "dots", "noise", "gradient"):
        p = pattern(rng, (16, 16), 4.0, kind)
        assert p.shape == (16, 16, 3) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1


def test_backgrounds_are_deterministic_and_face_free() -> None:
    assert not {"astronaut.png", "camera.png"} & set(SKIMAGE_PHOTOS)
    assert len(photo_pool()) >= 10
    a = sample_background(np.random.default_rng(5), (48, 48))
    b = sample_background(np.random.default_rng(5), (48, 48))
    assert a.shape == (48, 48, 3) and np.array_equal(a, b) and 0 <= a.min() and a.max() <= 1
    plain = sample_background(
        np.random.default_rng(6), (48, 48), BackgroundSettings(photo_prob=0, plain_prob=1, blur_max_px=0)
    )
    assert plain.std(axis=(0, 1)).max() < 0.15


# ---------------------------------------------------------------------- occluders
def _frontal_context(size: int = 96) -> OccluderContext:
    m = tiny_model()
    lm3 = m.mean_shape.numpy()[m.landmarks68.numpy()]
    s = size * 0.0045  # px per mm, face fills the image like the training crop
    lm = np.stack([lm3[:, 0] * s + size / 2, -lm3[:, 1] * s + size / 2], -1).astype(np.float32)
    return OccluderContext(
        (size, size), lm, np.array([0.7, 0.5, 0.4], np.float32), np.array([0.1, 0.08, 0.05], np.float32)
    )


def _alpha_at(layer, p) -> float:
    return float(layer.alpha[int(p[1]), int(p[0])])


def test_occluders_are_placed_on_their_face_parts() -> None:
    ctx = _frontal_context()
    lm = ctx.lm
    for seed in range(4):
        rng = np.random.default_rng(seed)
        sun = draw_occluder("sunglasses", rng, ctx)
        assert _alpha_at(sun, ctx.eye_r) > 0.8 and _alpha_at(sun, ctx.eye_l) > 0.8
        assert _alpha_at(sun, lm[57]) == 0.0
        clear = draw_occluder("glasses", rng, ctx)
        assert _alpha_at(clear, ctx.eye_r) < 0.5 and clear.alpha.max() > 0.6  # see-through lenses, opaque frame
        for kind in ("scarf", "mask"):
            low = draw_occluder(kind, rng, ctx)
            assert _alpha_at(low, lm[57]) > 0.9 and _alpha_at(low, lm[62]) > 0.9, kind
            assert _alpha_at(low, ctx.eye_r) == 0.0 and _alpha_at(low, ctx.eye_l) == 0.0, kind
        hair = draw_occluder("hair", rng, ctx)
        assert _alpha_at(hair, lm[57]) == 0.0 and hair.alpha[:3].max() > 0.5
    for kind in OCCLUDER_KINDS:
        layer = draw_occluder(kind, np.random.default_rng(9), ctx)
        assert layer.rgb.shape == (96, 96, 3) and layer.alpha.shape == (96, 96)
        assert 0 <= layer.alpha.min() and layer.alpha.max() <= 1 and 0 <= layer.rgb.min() and layer.rgb.max() <= 1
        assert layer.alpha.max() > 0.5, kind
    with pytest.raises(ValueError, match="unknown occluder"):
        draw_occluder("umbrella", np.random.default_rng(0), ctx)


def test_kind_sampling_follows_weights() -> None:
    rng = np.random.default_rng(0)
    zero = {k: 0.0 for k in OCCLUDER_KINDS}
    only = OccluderSettings(second_prob=0.0, weights=OccluderWeights(**{**zero, "sunglasses": 1.0, "scarf": 3.0}))
    kinds = [sample_kinds(rng, only)[0] for _ in range(400)]
    assert set(kinds) == {"sunglasses", "scarf"}
    assert 0.65 < kinds.count("scarf") / 400 < 0.85
    two = OccluderSettings(second_prob=1.0)
    for _ in range(50):
        ks = sample_kinds(rng, two)
        assert len(ks) in (1, 2) and len(set(ks)) == len(ks)
        assert set(ks) != {"glasses", "sunglasses"}
    assert sample_kinds(rng, only, forced="hand")[0] == "hand"


# ---------------------------------------------------------------------- appearance
def test_painting_adds_eyes_brows_and_lips() -> None:
    m = tiny_model()
    v = m.mean_shape.numpy()
    lm3 = v[m.landmarks68.numpy()]
    ys, xs = np.mgrid[60:-110:-0.5, -80:80:0.5]
    q = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
    skin = np.tile(np.array([[0.7, 0.5, 0.4]], np.float32), (len(q), 1))
    n = np.tile(np.array([[0, 0, 1.0]], np.float32), (len(q), 1))
    app = sample_appearance(np.random.default_rng(0), AppearanceSettings(beard_prob=0, makeup_prob=0, freckles_prob=0))
    alb, spec = paint_face(FacePixels(q, skin, n, lm3), app, np.array([0, 0, 1.0]))
    assert alb.shape == skin.shape and spec.shape == skin.shape

    def at(p):
        return alb[np.argmin(np.linalg.norm(q - p[:2], axis=1))]

    eye_white = lm3[36] * 0.75 + lm3[39] * 0.25
    assert at(eye_white).mean() > 0.6, "sclera is light"
    assert at(lm3[[37, 38, 40, 41]].mean(0)).mean() < 0.45, "iris/pupil is dark"
    brow = lm3[19] - np.array([0, 2.0, 0])
    assert at(brow).mean() < 0.6 * skin[0].mean(), "brows are hair-coloured"
    lips = (lm3[51] + lm3[62]) / 2
    assert at(lips)[0] > at(lips)[1] * 1.4, "lips are red"
    far = np.array([0.0, 55.0, 0.0])  # forehead: only skin texture
    assert np.abs(at(far) - skin[0]).max() < 0.15


def test_signed_expressions_of_the_embedded_model() -> None:
    m = tiny_model()
    signed = signed_expressions(m)
    assert signed.shape == (m.n_exp,) and 0 < signed.sum() < m.n_exp
    rng = np.random.default_rng(0)
    s = SamplingSettings(exp_prob=1.0, exp_active=1.0)
    exps = np.stack([sample_face(rng, 3, m.n_exp, 3, s, signed_exp=signed).exp for _ in range(100)])
    assert np.all(exps[:, ~signed] >= 0) and np.any(exps[:, signed] < 0)
    neutral = sample_face(rng, 3, m.n_exp, 3, s, neutral=True)
    assert np.all(neutral.exp == 0)


def test_light_comes_from_the_front() -> None:
    from focus.synth.sampling import sample_light

    rng = np.random.default_rng(0)
    dirs = np.stack([sample_light(rng, SamplingSettings(), 0.8)[1] for _ in range(300)])
    assert np.all(dirs[:, 2] >= np.cos(np.radians(70)) - 1e-9)
    assert (dirs[:, 1] > 0).mean() > 0.6
    lobe = sh_directional(np.array([0.0, 0.0, 1.0]))
    assert lobe[2] > 0 and lobe[1] == 0 and lobe[3] == 0


# ---------------------------------------------------------------------- writers
def test_npz_writer_is_byte_deterministic(tmp_path: Path) -> None:
    arrays = {"names": np.array(["a", "b"]), "x": np.arange(6.0).reshape(2, 3)}
    save_npz(tmp_path / "a.npz", arrays)
    save_npz(tmp_path / "b.npz", arrays)
    assert (
        hashlib.sha256((tmp_path / "a.npz").read_bytes()).digest()
        == hashlib.sha256((tmp_path / "b.npz").read_bytes()).digest()
    )
    with np.load(tmp_path / "a.npz") as z:
        assert list(z["names"]) == ["a", "b"] and np.array_equal(z["x"], arrays["x"])


def test_face_box_file(tmp_path: Path) -> None:
    write_face_box(tmp_path / "b.npy", 1.5, 20.0, 2.0, 30.0)
    box = np.load(tmp_path / "b.npy", allow_pickle=True).item()
    assert box == {"left": 1.5, "right": 20.0, "top": 2.0, "bottom": 30.0}
