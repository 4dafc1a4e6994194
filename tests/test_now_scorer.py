"""Known answers of the NoW score, and `focus now-eval` on a dataset in the exact NoW layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from now_fixtures import OFFSET, RADIUS, _dataset, _facet_sag, _now_eval, _sphere, _sphere_landmarks

from focus.geometry.mesh_io import write_obj
from focus.now.alignment import Similarity, procrustes
from focus.now.layout import NowDataset
from focus.now.scorer import MissingPredictionsError, evaluate_now, score_prediction
from focus.now.synthetic import FaceShape, grid_mesh, random_similarity


def test_offset_prediction_scores_its_offset() -> None:
    """A sphere scan against the same sphere pushed out along its normals by OFFSET."""
    v, f = _sphere(RADIUS)
    lmk = _sphere_landmarks(RADIUS)
    grow = (RADIUS + OFFSET) / RADIUS
    tf = random_similarity(np.random.default_rng(0), scale=0.1)  # prediction in cm, any frame
    pred_v, pred_lmk = tf.apply(v * grow), tf.apply(lmk * grow)
    # Metrical protocol (scale fixed by the unit): every scan vertex is OFFSET away from the
    # offset sphere, up to its facets, which lie between radius R + OFFSET - sag and R + OFFSET.
    sag = _facet_sag(v * grow, f, RADIUS + OFFSET)
    s = score_prediction(v, lmk, pred_v, f, pred_lmk, metrical_unit="cm")
    assert len(s.errors) == len(v)  # the crop keeps the whole sphere
    assert 0.0 < sag < 0.1 * OFFSET
    assert s.errors.min() >= OFFSET - sag - 1e-4 and s.errors.max() <= OFFSET + 1e-4
    # The start is the official one: fitted rotation and translation, the unit's scale.
    fit, _ = procrustes(lmk, pred_lmk)
    assert s.procrustes.scale == 10.0
    np.testing.assert_allclose(s.procrustes.translation, fit.translation)
    # Standard protocol: the scale absorbs a uniform offset of a sphere, and the error vanishes.
    s = score_prediction(v, lmk, pred_v, f, pred_lmk)
    assert s.errors.max() < 1e-5


def test_face_with_a_bump_scores_the_bump() -> None:
    """A patch displaced by h along the surface normal gives errors ~h there, ~0 elsewhere.

    (The fit shifts the surface by about h times the patch's share of the scan.)
    """
    shape = FaceShape()
    v, f = grid_mesh(shape, 90, 110, (-95.0, 95.0), (-125.0, 115.0))
    eps = 1e-4
    hx = (shape.height(v[:, 0] + eps, v[:, 1]) - shape.height(v[:, 0] - eps, v[:, 1])) / (2 * eps)
    hy = (shape.height(v[:, 0], v[:, 1] + eps) - shape.height(v[:, 0], v[:, 1] - eps)) / (2 * eps)
    normal = np.column_stack([-hx, -hy, np.ones_like(hx)])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    bump = np.linalg.norm(v[:, :2] - [40.0, 50.0], axis=1) < 10.0
    pred = v + 2.0 * bump[:, None] * normal
    s = score_prediction(v, shape.landmarks(), pred, f, shape.landmarks())
    assert np.median(s.errors) < 0.03
    assert 1.8 < s.errors.max() <= 2.0


def test_now_eval_on_synthetic_now_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, preds, images = _dataset(tmp_path)
    out = tmp_path / "res" / "now.json"
    assert _now_eval(root, preds, out) == 0
    doc = json.loads(out.read_text())
    res = doc["results"]
    assert set(res) == {"multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie", "all"}
    assert res["all"]["num_images"] == 5 and res["all"]["num_missing"] == 0
    assert res["multiview_neutral"]["num_images"] == 2 and res["selfie"]["num_images"] == 1
    assert res["all"]["mean"] < 1e-5  # every prediction is the scan up to a similarity (or an offset sphere)
    per = np.load(out.parent / doc["files"]["per_image"])
    assert list(per["image"]) == [e[:-4] for e in images]
    assert per["reflection"].tolist() == [False, True, False, False, False]
    assert per["offsets"][-1] == len(per["errors"]) == res["all"]["num_vertices"]
    assert (out.parent / doc["files"]["cumulative_error_plot"]).stat().st_size > 1000
    assert "multiview_neutral" in capsys.readouterr().out

    # Metrical protocol: the cm predictions keep their scale; the offset spheres score OFFSET.
    out_m = tmp_path / "res" / "now_metrical.json"
    assert _now_eval(root, preds, out_m, "--metrical", "cm") == 0
    doc = json.loads(out_m.read_text())
    per = np.load(out_m.parent / doc["files"]["per_image"])
    errs = np.split(per["errors"].astype(np.float64), per["offsets"][1:-1])
    sag = _facet_sag(_sphere(RADIUS + OFFSET)[0], _sphere(RADIUS)[1], RADIUS + OFFSET)
    for key, e in zip(per["image"], errs, strict=True):
        if key.startswith("FaMoS_180101"):
            assert e.max() < 1e-4
        else:
            assert e.min() >= OFFSET - sag - 1e-4 and e.max() <= OFFSET + 1e-4
    assert OFFSET - sag <= doc["results"]["multiview_occlusions"]["median"] <= OFFSET
    assert doc["results"]["multiview_expressions"]["median"] == pytest.approx(0.0, abs=1e-5)
    all_errors = per["errors"].astype(np.float64)
    assert doc["results"]["all"]["mean"] == pytest.approx(all_errors.mean(), rel=1e-5)
    assert doc["results"]["all"]["std"] == pytest.approx(all_errors.std(), rel=1e-4)


def test_missing_predictions_fail_loudly_unless_allowed(tmp_path: Path) -> None:
    root, preds, images = _dataset(tmp_path)
    (preds / "FaMoS_180101_00001_TA/selfie/IMG_0003.ply").unlink()
    (preds / "FaMoS_180202_00002_TA/multiview_neutral/IMG_0011.txt").unlink()
    dataset = NowDataset.open(root)
    with pytest.raises(MissingPredictionsError) as err:
        evaluate_now(dataset, preds, progress=False)
    assert "2 prediction(s) missing" in str(err.value)
    assert "FaMoS_180101_00001_TA/selfie/IMG_0003.jpg" in str(err.value)
    assert "FaMoS_180202_00002_TA/multiview_neutral/IMG_0011.jpg" in str(err.value)
    out = tmp_path / "now.json"
    assert _now_eval(root, preds, out) == 1
    assert (tmp_path / "now_missing.txt").read_text().count("\n") == 2
    assert _now_eval(root, preds, out, "--allow-missing", "--challenge", "multiview_neutral") == 0
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"multiview_neutral", "all"}
    assert res["all"]["num_images"] == 1 and res["all"]["num_missing"] == 1


def test_bad_prediction_files_name_the_file(tmp_path: Path) -> None:
    root, preds, _ = _dataset(tmp_path)
    bad = preds / "FaMoS_180101_00001_TA/multiview_neutral/IMG_0001.obj"
    write_obj(bad, np.zeros((3, 3)), np.array([[0, 1, 2]]))
    bad.write_text(bad.read_text().replace("v 0.0 0.0 0.0", "v nan 0.0 0.0", 1))
    with pytest.raises(Exception) as err:
        evaluate_now(NowDataset.open(root), preds, progress=False)
    assert str(bad) in str(err.value) and "NaN" in str(err.value)
    np.save(preds / "FaMoS_180101_00001_TA/multiview_neutral/IMG_0001.npy", np.zeros((5, 3)))
    write_obj(bad, np.eye(3), np.array([[0, 1, 2]]))
    with pytest.raises(Exception, match=r"IMG_0001\.npy: landmarks have shape \(5, 3\)"):
        evaluate_now(NowDataset.open(root), preds, progress=False)


def test_similarity_composition() -> None:
    rng = np.random.default_rng(5)
    a, b = random_similarity(rng), random_similarity(rng, reflect=True)
    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(a.then(b).apply(x), b.apply(a.apply(x)), atol=1e-9)
    assert Similarity.identity().apply(x) == pytest.approx(x)
