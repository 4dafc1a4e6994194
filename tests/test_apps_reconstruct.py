"""``focus reconstruct`` end to end on the two public-domain portraits (plumbing, with an untrained
model: the zero-initialised encoder head predicts the mean face, which makes the geometry exact)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from apps_fixtures import POINTS5, portraits, write_photo_folder
from PIL import Image
from train_fixtures import tiny_face_model

from focus.apps import reconstruct as R
from focus.apps.detect import CsvLandmarks
from focus.apps.exports import transform_points
from focus.apps.reconstruct import Reconstructor, ReconstructSettings, load_focus_model, save_untrained_checkpoint
from focus.cli import main as focus_main
from focus.data.alignment import five_points
from focus.data.landmarks_csv import write_landmarks_csv
from focus.facemodel.model import save_face_model

SIZE = 32
FACE_FILES = (
    "crop.png",
    "render.png",
    "outlier_crop.png",
    "outlier.png",
    "face_mask.png",
    "overlay.png",
    "coeffs.json",
    "posed.obj",
    "neutral.obj",
    "now/posed.obj",
    "now/posed.npy",
    "now/neutral.obj",
    "now/neutral.npy",
)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_checkpoint(root: Path) -> Path:
    """``root/model.pt``: an untrained checkpoint at :data:`SIZE` px with a small U-Net, on the tiny
    face model ``root/facemodel.npz`` (both written here)."""
    save_face_model(tiny_face_model(), root / "facemodel.npz")
    return save_untrained_checkpoint(
        root / "model.pt", root / "facemodel.npz", image_size=SIZE, unet_width=4, unet_depth=2
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("apps")
    ckpt = tiny_checkpoint(root)
    info = write_photo_folder(root / "photos")
    big = np.zeros((700, 700, 3), np.uint8)
    Image.fromarray(big).save(root / "photos" / "huge.png")
    info["huge.png"] = {"kind": "failed"}
    return {"root": root, "ckpt": ckpt, "info": info}


def _settings(**kw):
    base = dict(batch_size=3, view_size=64, progress=False, max_megapixels=0.45)
    base.update(kw)
    return ReconstructSettings(**base)


def _mean_face_landmarks(model, points5):
    """68 landmarks in the photo that the mean face matches exactly, near ``points5``."""
    M = R.alignment_matrix(points5, model.template, model.data.align_method)
    with torch.no_grad():
        out = model.renderer(model.renderer.layout.zeros(1))
    return transform_points(np.linalg.inv(M), out.landmarks[0].numpy().astype(np.float64))


def _portraits_with_landmarks(model, root, decimals: int = 3):
    """The portraits as ``root/in/<name>.png`` and ``root/lm.csv`` with the mean face's landmarks
    (:func:`_mean_face_landmarks`); returns the images, file names and landmarks."""
    photos = portraits()
    (root / "in").mkdir()
    names, lms = [], []
    for name, img in photos.items():
        Image.fromarray(img).save(root / "in" / f"{name}.png")
        names.append(f"{name}.png")
        lms.append(_mean_face_landmarks(model, POINTS5[name]))
    write_landmarks_csv(root / "lm.csv", names, np.stack(lms), decimals=decimals)
    return photos, names, lms


def test_reconstruct_folder_end_to_end(setup, tmp_path):
    pytest.importorskip("facenet_pytorch")
    from focus.apps.detect import MTCNNDetector

    model = load_focus_model(setup["ckpt"], device="cpu")
    out = tmp_path / "out"
    report = Reconstructor(model, MTCNNDetector(), _settings()).run([setup["root"] / "photos"], out)
    status = {Path(o.path).name: o for o in report.outcomes}
    for name, meta in setup["info"].items():
        assert status[name].status == meta["kind"], (name, status[name])
    assert "truncated" in status["truncated.jpg"].reason and "no face" in status["no_face.png"].reason
    assert "too large" in status["huge.png"].reason and "unreadable" in status["not_an_image.png"].reason
    assert report.exit_code == 1
    for o in report.ok:
        assert len(o.faces) == 1
        d = out / o.folder / "face_0"
        for f in FACE_FILES:
            assert (d / f).is_file(), (o.name, f)
        info = json.loads((d / "coeffs.json").read_text())
        c = info["coefficients"]
        assert len(c["identity"]) == 6 and len(c["expression"]) == 4 and set(c["rotation"]) >= {"yaw_deg", "pitch_rad"}
        w, h = info["image_size"]
        with Image.open(d / "outlier.png") as im:
            assert im.size == (w, h)
        # the overlay lines up: the mean face's five points land where the similarity fit puts
        # the template, so the landmark error equals the fit's residual, computed independently
        M = np.asarray(info["alignment"]["image_to_crop"])
        tmpl_in_photo = transform_points(np.linalg.inv(M), model.template.points2d)
        resid = np.linalg.norm(tmpl_in_photo - np.asarray(info["detector"]["points5"]), axis=1).mean()
        assert info["fit"]["px5"] == pytest.approx(resid, abs=1e-3)
        assert info["fit"]["nme5"] < 0.25
    assert not list(out.rglob(".*"))  # no temporary folders or files left
    html = (out / "summary.html").read_text()
    for name, meta in setup["info"].items():
        if meta["kind"] != "ok":
            assert name in html
    assert "astronaut/face_0/overlay.png" in html
    assert (out / "contact_sheet.png").is_file()
    rep = json.loads((out / "report.json").read_text())
    assert rep["counts"]["images_ok"] == 6 and rep["counts"]["images_failed"] == 4 and rep["counts"]["ignored"] == 1


def test_landmark_csv_path_is_exact_and_batch_independent(setup, tmp_path):
    """With landmarks the mean face matches exactly, both 5- and 68-point errors vanish; results do
    not depend on how faces are batched."""
    model = load_focus_model(setup["ckpt"], device="cpu")
    photos, names, lms = _portraits_with_landmarks(model, tmp_path, decimals=6)
    runs = {}
    for bs in (1, 4):
        out = tmp_path / f"out{bs}"
        report = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), _settings(batch_size=bs)).run(
            [tmp_path / "in"], out
        )
        assert report.exit_code == 0 and len(report.ok) == 2
        runs[bs] = {o.name: json.loads((out / o.folder / "face_0" / "coeffs.json").read_text()) for o in report.ok}
    for name in names:
        a, b = runs[1][name], runs[4][name]
        assert a["fit"]["px5"] < 1e-3 and a["fit"]["nme68"] < 1e-4
        assert np.allclose(a["coefficients"]["sh"]["red"], b["coefficients"]["sh"]["red"], atol=1e-6)
        assert np.allclose(a["landmarks68_image"], b["landmarks68_image"], atol=1e-4)
    assert np.allclose(five_points(np.asarray(runs[1][names[0]]["landmarks68_image"])), five_points(lms[0]), atol=1e-3)
    # an image without a CSV row fails by name, the others go on
    Image.fromarray(photos["astronaut"]).save(tmp_path / "in" / "extra.png")
    report = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), _settings()).run(
        [tmp_path / "in"], tmp_path / "o3"
    )
    bad = [o for o in report.failed]
    assert [o.name for o in bad] == ["extra.png"] and "no landmarks" in bad[0].reason and len(report.ok) == 2


def test_failed_write_leaves_nothing_half_written(setup, tmp_path, monkeypatch):
    model = load_focus_model(setup["ckpt"], device="cpu")
    _portraits_with_landmarks(model, tmp_path)
    out = tmp_path / "out"
    first = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), _settings()).run([tmp_path / "in"], out)
    assert first.exit_code == 0
    marker = out / "grace_hopper" / "face_0" / "old_marker.txt"
    marker.write_text("from the first run")
    real = R.X.save_png

    def flaky(path, image):
        if "grace_hopper" in str(path) and Path(path).name == "overlay.png":
            raise OSError("disk full (simulated)")
        return real(path, image)

    monkeypatch.setattr(R.X, "save_png", flaky)
    report = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), _settings()).run([tmp_path / "in"], out)
    status = {o.name: o for o in report.outcomes}
    assert status["grace_hopper.png"].status == "failed" and "disk full" in status["grace_hopper.png"].reason
    assert status["astronaut.png"].status == "ok"
    assert marker.is_file()  # the earlier complete result is kept, not half-replaced
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    monkeypatch.setattr(R.X, "save_png", real)
    report = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), _settings()).run([tmp_path / "in"], out)
    assert report.exit_code == 0 and not marker.exists()  # replaced as a whole


def test_misfit_prior_is_subtracted_from_the_neutral_mesh(setup, tmp_path):
    from focus.eval.misfit_prior import MisfitPrior, save_misfit_prior
    from focus.geometry.mesh_io import read_mesh
    from focus.now.landmark_io import read_landmarks

    model_dir = tmp_path / "models"
    model_dir.mkdir()
    ckpt = model_dir / "focus.pt"
    ckpt.write_bytes(Path(setup["ckpt"]).read_bytes())
    plain = load_focus_model(ckpt, setup["root"] / "facemodel.npz", device="cpu")
    assert plain.misfit_prior is None  # auto: no prior beside the model
    V = plain.face_model.num_vertices
    offset = np.zeros((V, 3))
    offset[:, 2] = 2.0
    save_misfit_prior(model_dir / R.MISFIT_PRIOR_NAME, MisfitPrior(offset, np.zeros(V), 10, model_name="tiny"))
    lm = _mean_face_landmarks(plain, POINTS5["astronaut"])
    write_landmarks_csv(tmp_path / "lm.csv", ["astronaut.png"], lm[None])
    Image.fromarray(portraits()["astronaut"]).save(tmp_path / "astronaut.png")
    meshes = {}
    for choice in ("auto", "none"):
        m = load_focus_model(ckpt, setup["root"] / "facemodel.npz", device="cpu", misfit_prior=choice)
        out = tmp_path / choice
        Reconstructor(m, CsvLandmarks(tmp_path / "lm.csv"), _settings()).run([tmp_path / "astronaut.png"], out)
        d = out / "astronaut" / "face_0"
        meshes[choice] = (
            read_mesh(d / "now" / "neutral.obj")[0],
            read_landmarks(d / "now" / "neutral.npy"),
            read_mesh(d / "now" / "posed.obj")[0],
            json.loads((d / "coeffs.json").read_text()),
        )
    assert np.allclose(meshes["none"][0] - meshes["auto"][0], offset, atol=1e-5)
    assert np.allclose(meshes["none"][1] - meshes["auto"][1], offset[:7], atol=1e-5)
    assert np.allclose(meshes["none"][2], meshes["auto"][2])  # the posed mesh is the fit as seen
    assert meshes["auto"][3]["model"]["misfit_prior"].endswith(R.MISFIT_PRIOR_NAME)
    assert meshes["none"][3]["model"]["misfit_prior"] is None
    save_misfit_prior(tmp_path / "bad.npz", MisfitPrior(np.zeros((5, 3)), np.zeros(5), 1))
    with pytest.raises(Exception, match="vertices"):
        load_focus_model(ckpt, setup["root"] / "facemodel.npz", device="cpu", misfit_prior=tmp_path / "bad.npz")


def test_cli(setup, tmp_path, capsys):
    for cmd in ("reconstruct", "prepare"):
        with pytest.raises(SystemExit) as e:
            focus_main([cmd, "--help"])
        assert e.value.code == 0
    rc = focus_main(
        [
            "reconstruct",
            str(setup["root"] / "photos" / "astronaut.png"),
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(tmp_path / "missing.pt"),
        ]
    )
    assert rc == 1 and "missing.pt" in capsys.readouterr().err
    lm = _mean_face_landmarks(load_focus_model(setup["ckpt"], device="cpu"), POINTS5["astronaut"])
    write_landmarks_csv(tmp_path / "lm.csv", ["my photo #1.png"], lm[None])
    Image.fromarray(portraits()["astronaut"]).save(tmp_path / "my photo #1.png")
    rc = focus_main(
        [
            "reconstruct",
            str(tmp_path / "my photo #1.png"),
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(setup["ckpt"]),
            "--landmarks",
            str(tmp_path / "lm.csv"),
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0 and (tmp_path / "o" / "my photo #1" / "face_0" / "overlay.png").is_file()
    assert "src='my%20photo%20%231/face_0/overlay.png'" in (tmp_path / "o" / "summary.html").read_text()


def _two_folders_one_name(model, root: Path) -> dict[str, np.ndarray]:
    """``root/DIR1/astronaut.png`` (the astronaut) and ``root/DIR2/astronaut.png`` (Grace Hopper) with
    ``root/lm.csv`` naming each by its folder; returns the photos by folder."""
    photos = portraits()
    lms = []
    for d, base in (("DIR1", "astronaut"), ("DIR2", "grace_hopper")):
        (root / d).mkdir()
        Image.fromarray(photos[base]).save(root / d / "astronaut.png")
        lms.append(_mean_face_landmarks(model, POINTS5[base]))
    write_landmarks_csv(root / "lm.csv", ["DIR1/astronaut.png", "DIR2/astronaut.png"], np.stack(lms))
    return {"DIR1": photos["astronaut"], "DIR2": photos["grace_hopper"]}


def _crop(out: Path, folder: str) -> np.ndarray:
    with Image.open(out / folder / "face_0" / "crop.png") as im:
        return np.asarray(im, np.float64)


def test_same_file_name_in_two_folders_keeps_both(setup, tmp_path, capsys):
    """Issue 15: DIR1/a.png and DIR2/a.png get a result folder each, named after their folder, each
    with its own photo's results; the summary shows each face once."""
    model = load_focus_model(setup["ckpt"], device="cpu")
    photos = _two_folders_one_name(model, tmp_path)
    out = tmp_path / "out"
    rc = focus_main(
        [
            "reconstruct",
            str(tmp_path / "DIR1"),
            str(tmp_path / "DIR2"),
            "--out",
            str(out),
            "--model",
            str(setup["ckpt"]),
            "--landmarks",
            str(tmp_path / "lm.csv"),
            "--quiet",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0 and "2 images (2 faces) reconstructed" in capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    assert sorted(i["folder"] for i in rep["images"]) == ["DIR1/astronaut", "DIR2/astronaut"]
    for img in rep["images"]:
        folder = img["folder"]
        info = json.loads((out / folder / "face_0" / "coeffs.json").read_text())
        assert Path(info["source"]) == tmp_path / folder.split("/")[0] / "astronaut.png"
        h, w = photos[folder.split("/")[0]].shape[:2]
        assert info["image_size"] == [w, h] and info["fit"]["px5"] < 1e-2  # its own photo, its own landmarks
    assert np.abs(_crop(out, "DIR1/astronaut") - _crop(out, "DIR2/astronaut")).mean() > 10
    html = (out / "summary.html").read_text()
    for folder in ("DIR1/astronaut", "DIR2/astronaut"):
        assert html.count(f"src='{folder}/face_0/overlay.png'") == 1
    # one CSV row that fits both photos is refused for both, by name, instead of used twice
    write_landmarks_csv(tmp_path / "one.csv", ["astronaut.png"], np.zeros((1, 68, 2)) + np.arange(68)[:, None])
    report = Reconstructor(model, CsvLandmarks(tmp_path / "one.csv"), _settings()).run(
        [tmp_path / "DIR1", tmp_path / "DIR2"], tmp_path / "o2"
    )
    assert len(report.failed) == 2 and all("fits 2 inputs" in o.reason and "DIR" in o.reason for o in report.failed)


def test_second_run_into_the_same_folder_keeps_earlier_results_listed(setup, tmp_path):
    """Issue 15: a second run lists the first run's results (report.json, summary) and never takes the
    folder of another photo; a photo processed again replaces its own earlier result."""
    model = load_focus_model(setup["ckpt"], device="cpu")
    _two_folders_one_name(model, tmp_path)
    out = tmp_path / "out"

    def run(folder):
        return Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), _settings()).run([tmp_path / folder], out)

    first = run("DIR1")
    assert [o.folder for o in first.ok] == ["astronaut"]
    crop1 = _crop(out, "astronaut")
    second = run("DIR2")
    assert [o.folder for o in second.ok] == ["astronaut_2"] and [o.folder for o in second.earlier] == ["astronaut"]
    assert np.array_equal(_crop(out, "astronaut"), crop1)  # DIR1's result is not overwritten by DIR2's photo
    rep = json.loads((out / "report.json").read_text())
    assert {(i["folder"], i["earlier"]) for i in rep["images"]} == {("astronaut", True), ("astronaut_2", False)}
    assert rep["counts"]["images_ok"] == 1 and rep["counts"]["earlier_images"] == 1
    html = (out / "summary.html").read_text()
    for folder in ("astronaut", "astronaut_2"):
        assert html.count(f"src='{folder}/face_0/overlay.png'") == 1
    third = run("DIR1")  # the same photo again: its own folder, replaced; DIR2's stays listed
    assert [o.folder for o in third.ok] == ["astronaut"] and [o.folder for o in third.earlier] == ["astronaut_2"]
    rep = json.loads((out / "report.json").read_text())
    assert sorted(i["folder"] for i in rep["images"]) == ["astronaut", "astronaut_2"]
    # an unreadable earlier report is passed over, not fatal
    (out / "report.json").write_text("{not json")
    assert R.read_earlier_results(out) == [] and run("DIR1").exit_code == 0


def test_summary_escapes_file_names(setup, tmp_path):
    """Issue 14: file names are escaped in summary.html (autoescaping template)."""
    model = load_focus_model(setup["ckpt"], device="cpu")
    name = "<script>alert(1).png"  # no '/' in a file name
    lm = _mean_face_landmarks(model, POINTS5["astronaut"])
    write_landmarks_csv(tmp_path / "lm.csv", [name], lm[None])
    (tmp_path / "in").mkdir()
    Image.fromarray(portraits()["astronaut"]).save(tmp_path / "in" / name, format="PNG")
    (tmp_path / "in" / "<b>bad<b>.png").write_bytes(b"not a png")
    report = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), _settings()).run([tmp_path / "in"], tmp_path / "o")
    assert len(report.ok) == 1 and len(report.failed) == 1
    html = (tmp_path / "o" / "summary.html").read_text()
    assert "<script>" not in html and "<b>bad<b>" not in html
    assert "&lt;script&gt;alert(1).png" in html and "&lt;b&gt;bad&lt;b&gt;.png" in html
    assert "src='%3Cscript%3Ealert%281%29/face_0/overlay.png'" in html


class _PortraitDetector:
    """A stand-in detector: the mean face's landmarks on whichever portrait it is shown (by its size)."""

    name, licence = "stub", "test"

    def __init__(self, model) -> None:
        self.lms = {portraits()[b].shape[:2]: _mean_face_landmarks(model, POINTS5[b]) for b in POINTS5}

    def detect(self, image):
        from focus.apps.detect import face_from_landmarks

        return [face_from_landmarks(self.lms[image.shape[:2]], 1.0, self.name)]

    def close(self):
        pass


def test_same_file_name_with_a_detector_is_not_overwritten(setup, tmp_path):
    model = load_focus_model(setup["ckpt"], device="cpu")
    _two_folders_one_name(model, tmp_path)
    out = tmp_path / "out"
    recon = Reconstructor(model, _PortraitDetector(model), _settings())
    report = recon.run([tmp_path / "DIR1", tmp_path / "DIR2"], out)
    assert report.exit_code == 0 and sorted(o.folder for o in report.ok) == ["DIR1/astronaut", "DIR2/astronaut"]
    sizes = {json.loads((out / o.folder / "face_0" / "coeffs.json").read_text())["image_size"][1] for o in report.ok}
    assert sizes == {512, 600}  # each folder holds its own photo's results
