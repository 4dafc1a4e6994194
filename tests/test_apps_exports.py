"""Exports of ``focus reconstruct``: coloured OBJ, NoW variants, paste-back into the photo, overlay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from focus.apps.exports import compose_overlay, format_colored_obj, paste_back, transform_points, write_face_meshes
from focus.data.alignment import warp_to_crop
from focus.geometry.mesh_io import read_mesh
from focus.now.landmark_io import read_landmarks


def _mesh(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 50, (30, 3))
    f = np.array([[i, (i + 1) % 30, (i + 7) % 30] for i in range(30)])
    c = rng.random((30, 3))
    return v, f, c


def test_colored_obj_round_trip(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    v, f, c = _mesh()
    (tmp_path / "m.obj").write_text(format_colored_obj(v, f, c, header="a\nb"))
    mesh = trimesh.load(tmp_path / "m.obj", process=False, force="mesh")
    assert np.abs(np.asarray(mesh.vertices) - v).max() < 1e-6
    assert np.array_equal(np.asarray(mesh.faces), f)
    rgba = np.asarray(mesh.visual.vertex_colors, np.float64)[:, :3] / 255.0
    assert np.abs(rgba - c).max() <= 1.0 / 255 + 1e-9
    v2, f2 = read_mesh(tmp_path / "m.obj")  # the project's own reader ignores the colours
    assert np.abs(v2 - v).max() < 1e-6 and np.array_equal(f2, f)
    with pytest.raises(ValueError):
        format_colored_obj(v, f + 30, c)


def test_write_face_meshes(tmp_path):
    v, f, c = _mesh()
    ids = np.array([0, 3, 5, 7, 11, 13, 17])
    files = write_face_meshes(tmp_path, f, ids, v, c, v * 0.5, c, header="test")
    for rel in files.values():
        assert (tmp_path / rel).is_file()
    now_lines = [ln for ln in (tmp_path / "now" / "neutral.obj").read_text().splitlines() if ln.startswith("v ")]
    assert all(len(ln.split()) == 4 for ln in now_lines)  # colourless: the NoW scorer's reader
    coloured = [ln for ln in (tmp_path / "neutral.obj").read_text().splitlines() if ln.startswith("v ")]
    assert all(len(ln.split()) == 7 for ln in coloured)
    assert np.allclose(read_landmarks(tmp_path / "now" / "neutral.npy"), (v * 0.5)[ids])
    assert np.allclose(read_mesh(tmp_path / "now" / "posed.obj")[0], v)


def _similarity(angle_deg, scale, tx, ty):
    a = math.radians(angle_deg)
    return np.array(
        [[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty], [0, 0, 1.0]]
    )


def _bilinear_reference(crop, x, y):
    """Value of ``crop`` at image-frame point (x, y) (pixel centres at +0.5), 0 outside -- slow and plain."""
    h, w = crop.shape[:2]
    u, v = x - 0.5, y - 0.5
    j0, i0 = math.floor(u), math.floor(v)
    fu, fv = u - j0, v - i0
    total = np.zeros(crop.shape[2:])
    for di, wi in ((0, 1 - fv), (1, fv)):
        for dj, wj in ((0, 1 - fu), (1, fu)):
            i, j = i0 + di, j0 + dj
            if 0 <= i < h and 0 <= j < w:
                total = total + wi * wj * crop[i, j]
    return total


def test_paste_back_matches_plain_reference():
    rng = np.random.default_rng(1)
    crop = rng.random((12, 12, 2)).astype(np.float32)
    M = _similarity(25.0, 0.45, 3.0, -2.0)  # image (20 x 28) -> crop
    out = paste_back(crop, M, (20, 28))
    inv_ok = 0
    for i in range(20):
        for j in range(28):
            q = transform_points(M, np.array([j + 0.5, i + 0.5]))
            ref = _bilinear_reference(crop, q[0], q[1])
            # skimage's constant mode blends with cval at the border like the plain reference
            assert np.allclose(out[i, j], ref, atol=1e-5), (i, j, out[i, j], ref)
            inv_ok += bool(np.any(ref))
    assert inv_ok > 50  # the crop does land in the image


def test_crop_then_paste_back_round_trip():
    yy, xx = np.mgrid[0:90, 0:120] / 30.0
    image = np.stack([np.sin(xx) * 0.4 + 0.5, np.cos(yy) * 0.4 + 0.5, 0.5 + 0.2 * np.sin(xx + yy)], -1).astype(
        np.float32
    )
    M = _similarity(-12.0, 1.3, -20.0, 5.0)
    S = 64
    crop = warp_to_crop(image, M, S, order=1, mode="constant")
    back = paste_back(crop, M, image.shape[:2])
    q = transform_points(M, np.stack(np.meshgrid(np.arange(120) + 0.5, np.arange(90) + 0.5), -1))
    inside = (q[..., 0] > 2) & (q[..., 0] < S - 2) & (q[..., 1] > 2) & (q[..., 1] < S - 2)
    assert inside.sum() > 1000
    assert np.abs(back[inside] - image[inside]).max() < 0.01
    assert np.abs(back[~inside & ((q < -2) | (q > S + 2)).any(-1)]).max() == 0


def test_compose_overlay_blends_only_inside_the_face():
    rng = np.random.default_rng(2)
    photo = rng.random((40, 50, 3)).astype(np.float32)
    M = _similarity(0.0, 1.0, -10.0, -5.0)
    cov = np.zeros((16, 16), np.float32)
    cov[4:12, 4:12] = 1
    render = np.ones((16, 16, 3), np.float32)
    out = compose_overlay(photo, M, render, cov, np.zeros_like(cov))
    expect = np.clip(photo * 255 + 0.5, 0, 255).astype(np.uint8)
    untouched = np.ones((40, 50), bool)
    untouched[5 + 3 : 5 + 13, 10 + 3 : 10 + 13] = False  # the covered square and its bilinear rim
    assert np.array_equal(out[untouched], expect[untouched])
    assert (out[5 + 6 : 5 + 10, 10 + 6 : 10 + 10] >= expect[5 + 6 : 5 + 10, 10 + 6 : 10 + 10]).all()
