"""``focus prepare``: photos -> a training folder the loader reads, with a report of rejected photos."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from apps_fixtures import portraits, write_photo_folder
from PIL import Image
from train_fixtures import tiny_face_model

from focus.apps.prepare import PrepareSettings, framing_matrix, prepare
from focus.data import DataSettings, FaceImageFolder, template_from_model
from focus.data.alignment import transform_points
from focus.data.landmarks_csv import write_landmarks_csv


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread_module):
    """Module-wide, before the module-scoped fixtures below build detectors."""


def _frontal_landmarks():
    rng = np.random.default_rng(0)
    lm = rng.normal(0, 3, (68, 2)) + [200, 200]
    lm[36:42] += [-30, -20]
    lm[42:48] += [30, -20]
    lm[48] += [-22, 40]
    lm[54] += [22, 40]
    return lm


def _rotate(pts, deg, centre):
    a = math.radians(deg)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (pts - centre) @ R.T + centre


def test_framing_is_upright_and_rotation_invariant():
    lm = _frontal_landmarks()
    M = framing_matrix(lm, 256, 1.25)
    crop_lm = transform_points(M, lm)
    eyes = crop_lm[36:42].mean(0), crop_lm[42:48].mean(0)
    # level (up to the eye line's small tilt against the mouth direction), subject's right on the left
    assert abs(eyes[0][1] - eyes[1][1]) < 0.5 and eyes[0][0] < eyes[1][0]
    assert (
        0 < crop_lm[:, 0].min() and crop_lm[:, 0].max() < 256 and 0 < crop_lm[:, 1].min() and crop_lm[:, 1].max() < 256
    )
    for deg in (-30.0, 17.0):
        for shift in ([0, 0], [55.5, -12.0]):
            lm2 = _rotate(lm, deg, np.array([150.0, 260.0])) * 1.7 + shift
            assert np.allclose(transform_points(framing_matrix(lm2, 256, 1.25), lm2), crop_lm, atol=1e-9)
    wide = transform_points(framing_matrix(lm, 256, 2.5), lm)
    assert np.ptp(wide[:, 0]) == pytest.approx(np.ptp(crop_lm[:, 0]) / 2)
    with pytest.raises(ValueError):
        framing_matrix(np.zeros((68, 2)), 256)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    pytest.importorskip("mediapipe")
    from focus.apps.detect import make_detector

    root = tmp_path_factory.mktemp("prep")
    info = write_photo_folder(root / "photos", with_bad=True, occluded=False)
    photos = portraits()
    rot = Image.fromarray(photos["astronaut"]).rotate(15, resample=Image.BILINEAR)
    rot.save(root / "photos" / "astronaut_rotated.png")
    Image.fromarray(photos["grace_hopper"]).resize((128, 150), Image.BILINEAR).save(root / "photos" / "small_face.png")
    det = make_detector("mediapipe")
    try:
        report = prepare(
            root / "photos", root / "train", det, PrepareSettings(size=128, min_eye_distance=25, progress=False)
        )
        full = det.detect(photos["astronaut"].astype(np.float32) / 255.0)[0].landmarks68
    finally:
        det.close()
    return {"root": root, "report": report, "info": info, "astronaut_lm": full}


def test_prepare_writes_a_training_folder(prepared):
    root, report = prepared["root"], prepared["report"]
    out = root / "train"
    ok = sorted(
        ["astronaut.png", "grace_hopper.png", "astronaut_grey16.png", "astronaut_rgba.png", "astronaut_rotated.png"]
    )
    assert sorted(report.prepared) == ok
    rejected = dict(csv.reader((out / "rejected.csv").read_text().splitlines()[1:]))
    assert set(rejected) == {"truncated.jpg", "not_an_image.png", "no_face.png", "small_face.png"}
    assert "no face" in rejected["no_face.png"] and "too small" in rejected["small_face.png"]
    assert "truncated" in rejected["truncated.jpg"]
    rep = json.loads((out / "prepare_report.json").read_text())
    assert (
        rep["prepared"] == 5 and rep["rejected"] == 4 and rep["ignored"] == 1 and "Apache" in rep["detector"]["licence"]
    )
    assert (out / "preview.png").is_file()
    assert report.exit_code == 0
    for name in ok:
        with Image.open(out / "images" / name) as im:
            assert im.size == (128, 128) and im.mode == "RGB"


def test_loader_reads_it_and_crops_match_the_originals(prepared, tmp_path):
    """The landmarks were moved with the crops: the loader's aligned crop of a prepared image is the
    aligned crop of the original photo with the detector's landmarks (up to resampling)."""
    out = prepared["root"] / "train"
    template = template_from_model(tiny_face_model(), 32)
    ds = FaceImageFolder(out, template, DataSettings(crop_size=32), augment=True)
    assert len(ds) == 5 and not ds.problems
    sample = ds[0]
    assert sample["image"].shape == (3, 32, 32)
    plain = FaceImageFolder(out, template, DataSettings(crop_size=32), augment=False)
    (tmp_path / "orig" / "images").mkdir(parents=True)
    Image.fromarray(portraits()["astronaut"]).save(tmp_path / "orig" / "images" / "astronaut.png")
    write_landmarks_csv(tmp_path / "orig" / "landmarks.csv", ["astronaut.png"], prepared["astronaut_lm"][None])
    orig = FaceImageFolder(tmp_path / "orig", template, DataSettings(crop_size=32), augment=False)
    a = plain[plain.names.index("astronaut.png")]
    b = orig[0]
    assert np.abs(a["landmarks"].numpy() - b["landmarks"].numpy()).max() < 0.05
    assert np.abs(a["image"].numpy() - b["image"].numpy()).mean() < 0.03
    # the upright crop of the rotated photo looks like the upright crop of the original
    r = plain[plain.names.index("astronaut_rotated.png")]
    assert np.abs(r["image"].numpy() - b["image"].numpy()).mean() < 0.06


def test_prepare_with_no_usable_photo_fails(tmp_path):
    pytest.importorskip("mediapipe")
    from focus.apps.detect import make_detector
    from focus.errors import FocusError

    (tmp_path / "p").mkdir()
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(tmp_path / "p" / "grey.png")
    det = make_detector("mediapipe", boxes_from=None)
    try:
        with pytest.raises(FocusError, match="no usable photo"):
            prepare(tmp_path / "p", tmp_path / "out", det, PrepareSettings(progress=False))
    finally:
        det.close()
    assert "grey.png" in (tmp_path / "out" / "rejected.csv").read_text()


class _CentredFace:
    """A stand-in detector: the frontal landmarks of :func:`_frontal_landmarks` on every photo."""

    name, licence = "stub", "test"

    def detect(self, image):
        from focus.apps.detect import face_from_landmarks

        return [face_from_landmarks(_frontal_landmarks(), 1.0, self.name)]

    def close(self):
        pass


def test_same_file_name_in_two_folders_gives_two_crops(tmp_path):
    """Issue 15: DIR1/a.png and DIR2/a.png give a crop each, named after their folder, each listed once
    in landmarks.csv; the loader pairs each crop with its own landmarks."""
    rng = np.random.default_rng(0)
    photos = {}
    for d in ("DIR1", "DIR2"):
        (tmp_path / d).mkdir()
        photos[d] = (rng.random((400, 400, 3)) * 255).astype(np.uint8)
        Image.fromarray(photos[d]).save(tmp_path / d / "a.png")
    out = tmp_path / "train"
    settings = PrepareSettings(size=64, progress=False)
    report = prepare([tmp_path / "DIR1", tmp_path / "DIR2"], out, _CentredFace(), settings)
    assert sorted(report.prepared) == ["DIR1/a.png", "DIR2/a.png"]
    rows = [line.split(",")[0] for line in (out / "landmarks.csv").read_text().splitlines()[1:]]
    assert sorted(rows) == ["DIR1/a.png", "DIR2/a.png"]
    M = framing_matrix(_frontal_landmarks(), 64, 1.25)
    from focus.data.alignment import warp_to_crop

    for d in ("DIR1", "DIR2"):
        expected = np.clip(warp_to_crop(photos[d] / 255.0, M, 64, order=1, mode="reflect"), 0, 1)
        with Image.open(out / "images" / d / "a.png") as im:
            assert np.abs(np.asarray(im) / 255.0 - expected).max() < 1.5 / 255  # its own photo
