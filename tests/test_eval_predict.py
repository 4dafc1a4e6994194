"""Checkpoints run on face-image folders: alignment as in training, outputs consistent with the renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from eval_fixtures import SIZE, make_project

from focus.data import FaceImageFolder, template_from_model
from focus.errors import InputFileError
from focus.eval.predict import load_crops, load_eval_model, open_folder, predict_batch, predict_crops


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalproj")
    make_project(root, rounds=1)
    return root


def test_model_uses_the_training_template(project: Path) -> None:
    m = load_eval_model(project / "models/focus.pt", project / "models/facemodel.npz")
    rs = m.renderer.settings
    assert m.crop_size == SIZE and m.unet is not None
    t = template_from_model(m.face_model, SIZE, rs.distance, rs.focal_at_224)
    np.testing.assert_allclose(m.template.points2d, t.points2d)
    assert m.data.crop_size == SIZE


def test_predictions_are_the_renderer_s(project: Path) -> None:
    m = load_eval_model(project / "models/focus.pt", project / "models/facemodel.npz")
    folder = open_folder(project / "data/synth/ar/scarf", m)
    crops = load_crops(folder)
    assert (
        crops.masks is not None and crops.face_masks is not None and crops.images.shape == (len(folder), 3, SIZE, SIZE)
    )
    np.testing.assert_array_equal(crops.images[1], folder[1]["image"].numpy())  # the training loader's crop
    pred = predict_crops(m, crops, ("unet", "pseudo", "none"), batch_size=1)
    with torch.no_grad():
        c = m.renderer.split(m.encoder(torch.from_numpy(crops.images)))
        neutral = m.renderer.shape(c.id, torch.zeros_like(c.exp)).numpy()
        out = m.renderer(c)
        unet = m.unet(out.image, torch.from_numpy(crops.images)).numpy()
    np.testing.assert_allclose(pred.neutral, neutral, atol=1e-4)
    np.testing.assert_allclose(pred.seg["unet"], unet, atol=1e-5)
    assert np.all(pred.seg["none"] == 1.0)
    dist = np.linalg.norm(crops.images - pred.renders, axis=1, keepdims=True)
    np.testing.assert_array_equal(pred.seg["pseudo"], pred.coverage * (dist < 3.0 * 0.043))
    assert set(pred.coeffs) == {"id", "exp", "albedo", "angles", "trans", "sh"}
    lean = predict_crops(m, crops, ("unet",), keep_images=False)
    assert lean.images is None and lean.seg is None
    np.testing.assert_allclose(lean.neutral, pred.neutral, atol=1e-6)


def test_encoder_only_checkpoint_has_no_unet(project: Path) -> None:
    m = load_eval_model(project / "models/focus_init.pt", project / "models/facemodel.npz")
    assert m.unet is None
    x = torch.rand(1, 3, SIZE, SIZE)
    assert predict_batch(m, x, ("pseudo", "none"))["seg"]["none"].shape == (1, 1, SIZE, SIZE)
    with pytest.raises(InputFileError, match="no U-Net"):
        predict_batch(m, x, ("unet",))


def test_misfit_crops_match_the_training_loader(project: Path, tmp_path: Path) -> None:
    """The misfit prior's in-memory crops are the ones FaceImageFolder makes of the same pictures."""
    from synth_helpers import tiny_settings

    from focus.data.landmarks_csv import write_landmarks_csv
    from focus.eval.misfit_prior import align_crops, render_misfit_set
    from focus.synth.writers import write_png

    m = load_eval_model(project / "models/focus.pt", project / "models/facemodel.npz")
    data = render_misfit_set(m.face_model, tiny_settings(), SIZE, 3, seed=5, render_backend="torch")
    assert data["images"].shape == (3, SIZE, SIZE, 3) and data["id"].shape == (3, m.face_model.n_id)
    names = [f"{i}.png" for i in range(3)]
    for n, img in zip(names, data["images"]):
        write_png(tmp_path / "images" / n, img)
    write_landmarks_csv(tmp_path / "landmarks.csv", names, data["landmarks"])
    folder = FaceImageFolder(tmp_path, m.template, m.data)
    crops = align_crops(data["images"], data["landmarks"], m)
    for i in range(3):
        np.testing.assert_allclose(crops[i], folder[i]["image"].numpy(), atol=1e-3)  # CSV rounding of the landmarks


def test_missing_and_mismatched_inputs(project: Path) -> None:
    with pytest.raises(InputFileError, match="checkpoint not found"):
        load_eval_model(project / "models/nope.pt", project / "models/facemodel.npz")
    m = load_eval_model(project / "models/focus.pt", project / "models/facemodel.npz")
    crops = load_crops(open_folder(project / "data/synth/ar/unoccluded", m))
    crops.images = crops.images[..., :-2, :-2]
    with pytest.raises(ValueError, match="px"):
        predict_crops(m, crops)
