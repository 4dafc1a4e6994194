"""Face detectors on the two public-domain portraits; the MediaPipe -> iBUG-68 mapping; CSV landmarks."""

from __future__ import annotations

import numpy as np
import pytest
from apps_fixtures import POINTS5, portraits

from focus.apps.detect import MEDIAPIPE_TO_IBUG68, CsvLandmarks, face_from_landmarks
from focus.data.alignment import five_points
from focus.data.augment import IBUG68_MIRROR
from focus.data.landmarks_csv import write_landmarks_csv


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread_module):
    """Module-wide, before the module-scoped fixtures below build detectors."""


@pytest.fixture(scope="module")
def photos():
    return portraits()


def test_mapping_table_shape():
    assert len(MEDIAPIPE_TO_IBUG68) == 68
    assert len(set(MEDIAPIPE_TO_IBUG68)) == 68
    assert all(0 <= i < 468 for i in MEDIAPIPE_TO_IBUG68)


def test_face_from_landmarks():
    lm = np.random.default_rng(0).random((68, 2)) * 100
    f = face_from_landmarks(lm, 0.5, "x")
    assert np.allclose(f.points5, five_points(lm)) and np.allclose(f.box, [*lm.min(0), *lm.max(0)])
    g = f.scaled(2.0, 0.5)
    assert np.allclose(g.landmarks68, lm * [2.0, 0.5]) and np.allclose(g.points5, f.points5 * [2.0, 0.5])
    with pytest.raises(ValueError):
        face_from_landmarks(np.full((68, 2), np.nan))


def test_csv_landmarks_lookup(tmp_path):
    rng = np.random.default_rng(0)
    lms = rng.random((3, 68, 2)) * 50
    write_landmarks_csv(tmp_path / "lm.csv", ["a/x.png", "b/x.png", "y.jpg"], lms)
    src = CsvLandmarks(tmp_path / "lm.csv")
    assert np.allclose(src.faces_for("a/x.png")[0].landmarks68, lms[0], atol=1e-3)
    assert np.allclose(src.faces_for("sub/y.jpg")[0].landmarks68, lms[2], atol=1e-3)  # by file name
    assert src.faces_for("x.png") == []  # ambiguous file name: no guess
    assert src.faces_for("z.png") == []


def test_mtcnn_on_portraits(photos):
    pytest.importorskip("facenet_pytorch")
    from focus.apps.detect import MTCNNDetector

    det = MTCNNDetector()
    for name, img in photos.items():
        faces = det.detect(img)
        assert len(faces) == 1, name
        iod = faces[0].eye_distance
        assert np.abs(faces[0].points5 - POINTS5[name]).max() < 0.05 * iod, name
        assert faces[0].score > 0.99
    # searched at a reduced size, the points are scaled back to the photo
    small = MTCNNDetector(max_side=300).detect(photos["grace_hopper"])[0]
    assert np.linalg.norm(small.points5 - POINTS5["grace_hopper"], axis=1).max() < 0.06 * small.eye_distance


def test_mediapipe_68_points_on_portraits(photos):
    pytest.importorskip("mediapipe")
    from focus.apps.detect import MediaPipe68Detector

    det = MediaPipe68Detector(boxes_from=None)
    try:
        for name, img in photos.items():
            faces = det.detect(img)
            assert len(faces) == 1, name
            f = faces[0]
            iod = f.eye_distance
            # the 68-point detector's five points agree with MTCNN's (a second, independent detector)
            err = np.linalg.norm(f.points5 - POINTS5[name], axis=1) / iod
            assert err.max() < 0.1, (name, err)
            lm = f.landmarks68
            # anatomy: jaw runs image-left to right, brows above eyes, nose between eyes and mouth
            assert lm[0, 0] < lm[8, 0] < lm[16, 0]
            assert lm[17:27, 1].mean() < lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean() < lm[8, 1]
            assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]
    finally:
        det.close()


def test_mediapipe_mapping_respects_mirror_pairs(photos):
    """Flip the photo: the mapped landmarks must be the mirror image with iBUG's index mirroring.

    A wrong pair in the table (e.g. a left-eye vertex for a right-eye point) breaks this."""
    pytest.importorskip("mediapipe")
    from focus.apps.detect import MediaPipe68Detector

    det = MediaPipe68Detector(boxes_from=None)
    try:
        for name, img in photos.items():
            a = det.detect(img)[0].landmarks68
            b = det.detect(np.ascontiguousarray(img[:, ::-1]))[0].landmarks68
            W = img.shape[1]
            b_back = np.stack([W - b[:, 0], b[:, 1]], -1)[list(IBUG68_MIRROR)]
            iod = np.linalg.norm(five_points(a)[1] - five_points(a)[0])
            err = np.linalg.norm(a - b_back, axis=1) / iod
            assert err.mean() < 0.035 and err.max() < 0.07, (name, err.mean(), err.max())
    finally:
        det.close()


def test_mediapipe_in_mtcnn_boxes(photos):
    pytest.importorskip("mediapipe")
    pytest.importorskip("facenet_pytorch")
    from focus.apps.detect import make_detector

    det = make_detector("mediapipe")
    full = make_detector("mediapipe", boxes_from=None)
    try:
        for img in photos.values():
            a, b = det.detect(img)[0], full.detect(img)[0]
            assert a.source == "mediapipe"
            assert np.linalg.norm(a.landmarks68 - b.landmarks68, axis=1).mean() < 0.05 * b.eye_distance
    finally:
        det.close()
        full.close()


def test_csv_landmarks_match_the_longest_part_of_the_path(tmp_path):
    """Issue 15: rows may name an image by a longer part of its path; the most specific row wins."""
    lms = np.random.default_rng(1).random((3, 68, 2)) * 50
    write_landmarks_csv(tmp_path / "lm.csv", ["DIR1/a.png", "a.png", str(tmp_path / "DIR3" / "a.png")], lms)
    src = CsvLandmarks(tmp_path / "lm.csv")
    assert src.row_for("a.png", tmp_path / "DIR1" / "a.png") == "DIR1/a.png"
    assert src.row_for("a.png", tmp_path / "DIR2" / "a.png") == "a.png"
    assert src.row_for("a.png", tmp_path / "DIR3" / "a.png") == str(tmp_path / "DIR3" / "a.png")
    assert np.allclose(src.faces_for("a.png", tmp_path / "DIR1" / "a.png")[0].landmarks68, lms[0], atol=1e-3)
    assert src.row_for("b.png", tmp_path / "b.png") is None
