"""The NoW-like set: layout readable by the NoW code, scans, and a perfect prediction scoring ~0."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh
from synth_helpers import tiny_model, tiny_settings

from focus.data import FaceImageFolder, template_from_model
from focus.synth.generator import CameraSpec
from focus.synth.scans import ScanSettings, boundary_loops, extend_border, make_scan
from focus.synth.sets import NOW_BOXES_DIR, NOW_CHALLENGES, NOW_IMAGES_DIR, TRUTH_FILE, neutral_shape, write_now


@pytest.fixture(scope="module")
def now_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("now") / "now"
    write_now(tiny_model(), tiny_settings(), out, CameraSpec(32, 2), progress=False)
    return out


def test_layout(now_set: Path) -> None:
    from focus.now.layout import NowDataset

    lines = (now_set / "imagepathsvalidation.txt").read_text().splitlines()
    assert len(lines) == 2 * 4 * 1
    ds = NowDataset.open(now_set)
    images = ds.images()
    ds.check(images)  # every scan, landmark file and picture exists
    assert {im.challenge for im in images} == set(NOW_CHALLENGES)
    for im in images:
        assert ds.image_path(im).suffix == ".jpg"
        box = np.load(now_set / NOW_BOXES_DIR / im.subject / im.challenge / f"{im.stem}.npy", allow_pickle=True).item()
        assert set(box) == {"left", "right", "top", "bottom"}
        assert 0 <= box["left"] < box["right"] <= 64 and 0 <= box["top"] < box["bottom"] <= 64
    pp = (now_set / "scans_lmks_onlypp" / images[0].subject).glob("*.pp")
    text = next(pp).read_text().splitlines()
    assert all("<point " in text[i] for i in range(8, 15)), "the official scorer reads the points on lines 9-15"


def test_pictures_show_the_face_at_training_scale(now_set: Path) -> None:
    truth = np.load(now_set / TRUTH_FILE)
    names = [str(n) for n in truth["names"]]
    assert (now_set / NOW_IMAGES_DIR / names[0]).is_file()
    lm = truth["landmarks_true"]
    iod = np.linalg.norm(lm[:, 36] - lm[:, 45], axis=-1)
    frontal = np.abs(np.degrees(truth["angles"][:, 1])) < 20
    # eye corners about as far apart as in a 32 px crop (zoom_out 2, 64 px pictures)
    assert np.all((iod[frontal] > 7) & (iod[frontal] < 20))
    selfie = np.array(["/selfie/" in n for n in names])
    assert np.allclose(truth["distance"][selfie], 400.0) and np.allclose(truth["distance"][~selfie], 1000.0)
    neutral = np.array(["multiview_neutral" in n for n in names])
    assert np.all(truth["exp"][neutral] == 0)
    subjects = [n.split("/")[0] for n in names]
    for s in set(subjects):
        ids = truth["id"][[i for i, x in enumerate(subjects) if x == s]]
        assert np.allclose(ids, ids[0]), "every picture of a subject shows the same identity"


def test_loader_reads_the_now_pictures(now_set: Path) -> None:
    ds = FaceImageFolder(now_set, template_from_model(tiny_model(), 32), images=str(NOW_IMAGES_DIR))
    assert len(ds) == 8
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and "mask" in item


def test_perfect_prediction_scores_near_zero(now_set: Path, tmp_path: Path) -> None:
    """The true neutral meshes as predictions: errors are only the scan's fine detail (and its
    extension beyond the model's mesh); `focus now-eval` reads the whole set."""
    from focus.cli import main
    from focus.now.layout import NowDataset, write_prediction
    from focus.now.scorer import evaluate_now

    m = tiny_model()
    truth = np.load(now_set / TRUTH_FILE)
    tri = m.triangles.numpy()
    now_ids = m.now_landmarks7.numpy()
    pred = tmp_path / "pred"
    for name, fid in zip(truth["names"], truth["id"]):
        v = neutral_shape(m, fid)
        write_prediction(pred, str(name), v, tri, v[now_ids])
    ev = evaluate_now(NowDataset.open(now_set), pred, progress=False)
    summary = ev.summary()
    assert summary["all"]["num_images"] == 8
    assert summary["all"]["median"] < 0.3, summary["all"]
    assert summary["all"]["mean"] < 0.6, summary["all"]
    # a wrong identity scores clearly worse
    wrong = tmp_path / "wrong"
    for name, fid in zip(truth["names"], truth["id"]):
        v = neutral_shape(m, -fid)
        write_prediction(wrong, str(name), v, tri, v[now_ids])
    bad = evaluate_now(NowDataset.open(now_set), wrong, progress=False).summary()
    assert bad["all"]["median"] > 2 * summary["all"]["median"] + 0.2
    rc = main(
        [
            "now-eval",
            "--dataset",
            str(now_set),
            "--predictions",
            str(pred),
            "--out",
            str(tmp_path / "now.json"),
            "--no-progress",
        ]
    )
    assert rc == 0 and (tmp_path / "now.json").is_file()


def test_scan_is_finer_larger_and_detailed() -> None:
    m = tiny_model()
    v = m.mean_shape.numpy().astype(np.float64)
    f = m.triangles.numpy()
    s = ScanSettings(random_pose=False)
    sv, sf, sl = make_scan(np.random.default_rng(0), v, f, m.now_landmarks7.numpy(), s)
    assert len(sv) > 3 * len(v) and len(sf) > 3.5 * len(f)
    mesh = trimesh.Trimesh(sv, sf, process=False)
    assert mesh.is_winding_consistent
    # the scan reaches beyond the model's border
    border = v[boundary_loops(f)[0]]
    scan_border = sv[boundary_loops(sf)[0]]
    from scipy.spatial import cKDTree

    d = cKDTree(v).query(scan_border)[0]
    assert np.median(d) > 0.7 * s.extend_mm
    assert len(border) > 10
    # fine detail: original vertices moved along their normals by about detail_mm
    moved = np.linalg.norm(sv[: len(v)] - v, axis=1)
    assert 0.5 * s.detail_mm < moved.std() + moved.mean() < 3 * s.detail_mm
    # the 7 landmarks are the displaced landmark vertices
    np.testing.assert_allclose(sl, sv[m.now_landmarks7.numpy()])


def test_extension_without_rings_is_identity() -> None:
    m = tiny_model()
    v, f = m.mean_shape.numpy(), m.triangles.numpy()
    v2, f2 = extend_border(v, f, 0.0, 4, 30.0)
    assert v2 is v and f2 is f


def test_scan_random_pose_is_rigid() -> None:
    m = tiny_model()
    v, f = m.mean_shape.numpy().astype(np.float64), m.triangles.numpy()
    s = ScanSettings(detail_mm=0.0)
    a = make_scan(np.random.default_rng(3), v, f, m.now_landmarks7.numpy(), replace(s, random_pose=False))
    b = make_scan(np.random.default_rng(3), v, f, m.now_landmarks7.numpy(), s)
    da = np.linalg.norm(a[0][:50, None] - a[0][None, :50], axis=-1)
    db = np.linalg.norm(b[0][:50, None] - b[0][None, :50], axis=-1)
    np.testing.assert_allclose(da, db, atol=1e-9)
    assert not np.allclose(a[0], b[0])
