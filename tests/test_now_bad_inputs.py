"""`focus now-eval` on bad inputs: one clear line naming the file, checked before any scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from now_fixtures import _dataset, _now_eval

import focus.now.scorer as scorer
from focus.errors import FocusError, InputFileError
from focus.geometry.mesh_io import read_mesh
from focus.now.landmark_io import read_landmarks
from focus.now.layout import NowDataset
from focus.now.scorer import score_predictions_folder

NEUTRAL = "FaMoS_180101_00001_TA/multiview_neutral/IMG_0001"


def _fails_with(capsys: pytest.CaptureFixture, rc: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("focus now-eval: error:")
    for needle in needles:
        assert needle in err
    return err


def test_zero_byte_landmark_npy_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, preds, _ = _dataset(tmp_path)
    empty = preds / f"{NEUTRAL}.npy"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_landmarks(empty)
    _fails_with(capsys, _now_eval(root, preds, tmp_path / "now.json"), str(empty), "empty (0 bytes)")


def test_point_cloud_ply_is_reported_as_a_point_cloud(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import trimesh

    root, preds, _ = _dataset(tmp_path)
    mesh = preds / f"{NEUTRAL}.obj"
    verts, _ = read_mesh(mesh)
    mesh.unlink()
    cloud = mesh.with_suffix(".ply")
    trimesh.PointCloud(verts).export(cloud)
    with pytest.raises(InputFileError, match=r"point cloud \(\d+ vertices, no faces\)"):
        read_mesh(cloud)
    assert len(read_mesh(cloud, need_faces=False)[0]) == len(verts)  # a scan needs no faces
    _fails_with(capsys, _now_eval(root, preds, tmp_path / "now.json"), str(cloud), "must be a triangle mesh")


@pytest.mark.parametrize("first, second", [(".obj", ".ply"), (".npy", ".txt")])
def test_two_files_for_one_image_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, first: str, second: str
) -> None:
    root, preds, _ = _dataset(tmp_path)
    a = preds / f"{NEUTRAL}{first}"
    b = a.with_suffix(second)
    if second == ".ply":
        import trimesh

        trimesh.Trimesh(*read_mesh(a), process=False).export(b)
    else:
        b.write_text("\n".join(" ".join(repr(float(x)) for x in row) for row in read_landmarks(a)) + "\n")
    _fails_with(capsys, _now_eval(root, preds, tmp_path / "now.json"), str(a), str(b), "ambiguous")


def test_unwritable_out_fails_before_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, preds, _ = _dataset(tmp_path)

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored before checking --out")

    monkeypatch.setattr(scorer, "score_prediction", no_scoring)
    folder = tmp_path / "results"
    folder.mkdir()
    _fails_with(capsys, _now_eval(root, preds, folder), str(folder), "is a folder")
    (tmp_path / "taken.json").mkdir()
    _fails_with(capsys, _now_eval(root, preds, tmp_path / "taken.json"), "taken.json", "is a folder")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    _fails_with(capsys, _now_eval(root, preds, a_file / "sub" / "now.json"), str(a_file), "is a file")


def test_metrical_unit_contradicting_the_size_warns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, preds, _ = _dataset(tmp_path)  # predictions in cm
    out = tmp_path / "now.json"
    assert _now_eval(root, preds, out, "--metrical", "cm", "--challenge", "selfie") == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads(out.read_text())["warnings"] == []
    assert _now_eval(root, preds, out, "--metrical", "mm", "--challenge", "selfie") == 0
    err = capsys.readouterr().err
    assert "focus now-eval: warning: FaMoS_180101_00001_TA/selfie/IMG_0003:" in err
    assert "10x too small for --metrical mm" in err and "looks like 'cm'" in err
    assert len(json.loads(out.read_text())["warnings"]) == 1
    assert scorer.metrical_scale_warning(1000.0 / 9.0, "m") is None  # within a factor 10
    assert "too large" in scorer.metrical_scale_warning(1.0, "m")


def test_allow_missing_with_nothing_present_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, _, images = _dataset(tmp_path)
    empty = tmp_path / "no_predictions"
    empty.mkdir()
    rc = _now_eval(root, empty, tmp_path / "now.json", "--allow-missing")
    _fails_with(capsys, rc, str(empty), f"none of the {len(images)} image(s)", "nothing to score")
    assert not (tmp_path / "now.json").exists()


def test_functional_api_returns_the_written_document(tmp_path: Path) -> None:
    root, preds, images = _dataset(tmp_path)
    out = tmp_path / "scores" / "now"
    doc = score_predictions_folder(root, preds, out, challenge="multiview_neutral")
    assert doc == json.loads((tmp_path / "scores" / "now.json").read_text())
    assert doc["results"]["all"]["num_images"] == 2 and doc["results"]["all"]["mean"] < 1e-5
    assert doc["files"]["json"] == "now.json" and (tmp_path / "scores" / doc["files"]["per_image"]).is_file()
    (preds / f"{NEUTRAL}.npy").unlink()
    with pytest.raises(FocusError, match="1 prediction"):
        score_predictions_folder(root, preds, out, challenge="multiview_neutral")
    assert NowDataset.open(root).images("multiview_neutral")[0].key == NEUTRAL
    assert np.isfinite(doc["results"]["multiview_neutral"]["median"])
