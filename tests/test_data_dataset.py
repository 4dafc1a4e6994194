"""FaceImageFolder: real-format folders, alignment to the template, augmentation, bad input,
and DataLoader worker processes."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synth_helpers import clean_camera, no_landmark_noise, tiny_model, tiny_settings
from torch.utils.data import DataLoader

from focus.data import DataSettings, FaceImageFolder, template_from_model, write_landmarks_csv
from focus.data.alignment import five_points, transform_points
from focus.data.augment import AugmentSettings
from focus.data.landmarks_csv import HEADER
from focus.errors import InputFileError
from focus.synth.generator import CameraSpec, ImageJob, SynthWorker

CROP = 32


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty], [0, 0, 1.0]])


@pytest.fixture(scope="module")
def faces():
    """Three synthetic faces at the crop framing (no noise, exact landmarks) and their masks."""
    w = SynthWorker(tiny_model(), tiny_settings(camera=clean_camera(), landmark_noise=no_landmark_noise()))
    cam = CameraSpec(CROP, 2)
    jobs = [ImageJob("test", 500 + i, cam, occluder=k) for i, k in enumerate(("", "sunglasses", "hand"))]
    return [r.result for r in w.run(jobs)]


def write_real_format(root: Path, faces, rng: np.random.Generator) -> list[np.ndarray]:
    """A "real photo" folder: each face pasted into a larger JPEG by a random similarity
    (as a photo would show it: bigger, rotated, off-centre), landmarks in photo pixels."""
    from focus.data.alignment import warp_to_crop

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mats, names, lms = [], [], []
    for i, c in enumerate(faces):
        S = similarity(rng.uniform(3.0, 4.0), rng.uniform(-0.4, 0.4), rng.uniform(10, 40), rng.uniform(5, 30))
        W, H = 200, 170
        # photo = crop warped by S: photo pixel p shows crop pixel S^-1 p
        photo = warp_to_crop(c.image.astype(np.float32) / 255, S, max(W, H), order=3, mode="edge")[:H, :W]
        mask = warp_to_crop(c.mask.astype(np.float32), S, max(W, H), order=0, mode="constant")[:H, :W]
        name = f"person_{i}.jpg"
        Image.fromarray((np.clip(photo, 0, 1) * 255).round().astype(np.uint8)).save(root / "images" / name, quality=97)
        Image.fromarray((mask > 0.5).astype(np.uint8) * 255).save(root / "masks" / f"person_{i}.png")
        names.append(name)
        lms.append(transform_points(S, c.landmarks))
        mats.append(S)
    write_landmarks_csv(root / "landmarks.csv", names, np.stack(lms))
    return mats


def test_real_format_folder_is_aligned_onto_the_template(faces, tmp_path: Path) -> None:
    mats = write_real_format(tmp_path / "celeba_like", faces, np.random.default_rng(0))
    template = template_from_model(tiny_model(), CROP)
    ds = FaceImageFolder(tmp_path / "celeba_like", template, DataSettings(), augment=False)
    assert len(ds) == 3 and "face_mask" not in ds[0] and "mask" in ds[0]
    from focus.data.alignment import estimate_alignment, warp_to_crop

    for i, c in enumerate(faces):
        item = ds[i]
        # aligning the photo = aligning the original crop (the pasting similarity drops out)
        M_crop = estimate_alignment(c.landmarks, template, "similarity")
        np.testing.assert_allclose(item["transform"].numpy() @ mats[i], M_crop, atol=2e-3)  # CSV keeps 3 decimals
        lm = item["landmarks"].numpy()
        np.testing.assert_allclose(lm, transform_points(M_crop, c.landmarks), atol=5e-3)
        # its five points sit on the template up to the least-squares residual of the face's pose
        resid = np.abs(five_points(lm) - template.points2d).max()
        assert resid < 2.0
        # the crop shows the face as the crop re-framed directly would (resampling + JPEG only)
        ref = warp_to_crop(c.image.astype(np.float32) / 255, M_crop, CROP, mode="reflect")
        img = item["image"].numpy().transpose(1, 2, 0)
        inner = np.s_[3:-3, 3:-3]
        assert np.abs(img[inner] - ref[inner]).mean() < 0.04
        m = item["mask"][0].numpy() > 0.5
        ref_m = warp_to_crop(c.mask.astype(np.float32), M_crop, CROP, mode="constant") > 0.5
        assert (m == ref_m).mean() > 0.93


def test_moved_mean_face_aligns_onto_the_template() -> None:
    """The loader's alignment maps landmarks onto the template within a pixel: the mean face
    rendered shifted, nearer and turned in the image plane comes back onto the template."""
    from focus.coeffs import CoeffLayout
    from focus.data.alignment import estimate_alignment
    from focus.render.renderer import FaceRenderer, RenderSettings

    m = tiny_model()
    t = template_from_model(m, CROP)
    layout = CoeffLayout.for_model(m)
    for method, roll in (("similarity", 0.25), ("pos", 0.0)):
        c = layout.zeros(1)
        c = layout.split(
            torch.cat(
                [c.id, c.exp, c.albedo, torch.tensor([[0.0, 0.0, roll]]), torch.tensor([[9.0, -6.0, 120.0]]), c.sh], 1
            )
        )
        with torch.no_grad():
            lm = FaceRenderer(m, RenderSettings(image_size=CROP, backend="torch"))(c).landmarks[0].double().numpy()
        assert np.abs(five_points(lm) - t.points2d).max() > 2.0  # it did move
        M = estimate_alignment(lm, t, method)
        assert np.abs(five_points(transform_points(M, lm)) - t.points2d).max() < 1.0


def _folder(root: Path, faces) -> None:
    (root / "images").mkdir(parents=True)
    names = []
    for i, c in enumerate(faces):
        Image.fromarray(c.image).save(root / "images" / f"{i}.png")
        names.append(f"{i}.png")
    write_landmarks_csv(root / "landmarks.csv", names, np.stack([c.landmarks for c in faces]))


def test_bad_input_is_skipped_and_counted(faces, tmp_path: Path, caplog) -> None:
    root = tmp_path / "bad"
    _folder(root, faces)
    (root / "images" / "broken.png").write_bytes(b"not a png at all")
    lines = (root / "landmarks.csv").read_text().splitlines()
    good_vals = lines[1].split(",", 1)[1]
    lines += [
        f"broken.png,{good_vals}",
        f"missing.png,{good_vals}",
        "short.png,1,2,3",
        "nan.png," + ",".join(["nan"] * 136),
    ]
    (root / "landmarks.csv").write_text("\n".join(lines) + "\n")
    t = template_from_model(tiny_model(), CROP)
    with caplog.at_level(logging.WARNING, logger="focus.data"):
        ds = FaceImageFolder(root, t, DataSettings(on_bad_input="skip"))
    assert len(ds) == 3
    text = caplog.text
    assert "landmarks.csv:5 (broken.png): unreadable image" in text
    assert "landmarks.csv:6 (missing.png): no image file" in text
    assert "landmarks.csv:7 (short.png): 4 columns" in text
    assert "landmarks.csv:8 (nan.png): NaN" in text
    assert "skipped 4 of 7 rows" in text
    assert len(ds.problems) == 4
    with pytest.raises(InputFileError, match=r"line 5 \(broken\.png\): unreadable image"):
        FaceImageFolder(root, t, DataSettings(on_bad_input="error"))


def test_images_that_fail_to_decode_later(faces, tmp_path: Path, caplog) -> None:
    root = tmp_path / "late"
    _folder(root, faces)
    t = template_from_model(tiny_model(), CROP)
    ds = FaceImageFolder(root, t, DataSettings(verify_images=False))
    (root / "images" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with caplog.at_level(logging.WARNING, logger="focus.data"):
        item = ds[1]
    assert item["name"] == "2.png" and ds.runtime_skips == 1
    assert "landmarks.csv:3 (1.png)" in caplog.text and "serving the next sample" in caplog.text
    strict = FaceImageFolder(root, t, DataSettings(verify_images=False, on_bad_input="error"))
    with pytest.raises(InputFileError, match=r"1\.png: unreadable image.*line 3"):
        strict[1]


def test_missing_folder_parts_are_clear_errors(tmp_path: Path) -> None:
    t = template_from_model(tiny_model(), CROP)
    with pytest.raises(InputFileError, match="folder not found"):
        FaceImageFolder(tmp_path / "nope", t)
    (tmp_path / "x").mkdir()
    with pytest.raises(InputFileError, match="image directory not found"):
        FaceImageFolder(tmp_path / "x", t)
    (tmp_path / "x" / "images").mkdir()
    with pytest.raises(InputFileError, match="landmark CSV not found"):
        FaceImageFolder(tmp_path / "x", t)
    (tmp_path / "x" / "landmarks.csv").write_text(",".join(HEADER) + "\n")
    with pytest.raises(InputFileError, match="no usable images"):
        FaceImageFolder(tmp_path / "x", t)
    with pytest.raises(ValueError, match="on_bad_input"):
        DataSettings(on_bad_input="ignore")


def test_flip_mirrors_image_and_landmark_indices(faces, tmp_path: Path) -> None:
    root = tmp_path / "f"
    _folder(root, faces)
    t = template_from_model(tiny_model(), CROP)
    only_flip = DataSettings(augment=AugmentSettings(shift_px_at_224=0, scale=0, rotation_deg=0, flip_prob=1.0))
    plain = FaceImageFolder(root, t, only_flip, augment=False)[0]
    flipped = FaceImageFolder(root, t, only_flip, augment=True)[0]
    assert flipped["flipped"] and not plain["flipped"]
    np.testing.assert_allclose(flipped["image"].numpy(), plain["image"].numpy()[:, :, ::-1], atol=1e-5)
    from focus.data.augment import IBUG68_MIRROR

    lp, lf = plain["landmarks"].numpy(), flipped["landmarks"].numpy()
    np.testing.assert_allclose(lf[:, 0], CROP - lp[list(IBUG68_MIRROR), 0], atol=1e-4)
    np.testing.assert_allclose(lf[:, 1], lp[list(IBUG68_MIRROR), 1], atol=1e-4)
    # the subject's right eye is on the image left after the flip too
    assert lf[36, 0] < lf[45, 0]


def test_dataloader_workers_give_the_same_batches(faces, tmp_path: Path) -> None:
    root = tmp_path / "dl"
    _folder(root, faces + faces)
    t = template_from_model(tiny_model(), CROP)
    ds = FaceImageFolder(root, t, DataSettings(), augment=True, seed=3)

    def batches(workers: int) -> list[dict]:
        return list(DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False))

    a, b = batches(0), batches(2)
    assert len(a) == 3
    for x, y in zip(a, b):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["landmarks"], y["landmarks"])
        assert x["name"] == y["name"]
    ds.set_epoch(1)
    c = batches(0)
    assert not torch.equal(a[0]["image"], c[0]["image"])
    assert a[0]["image"].shape == (2, 3, CROP, CROP) and a[0]["transform"].shape == (2, 3, 3)


def test_crop_size_from_settings_overrides_the_template(faces, tmp_path: Path) -> None:
    root = tmp_path / "c"
    _folder(root, faces)
    t = template_from_model(tiny_model(), CROP)
    item = FaceImageFolder(root, t, replace(DataSettings(), crop_size=64))[0]
    small = FaceImageFolder(root, t, DataSettings())[0]
    assert item["image"].shape == (3, 64, 64) and small["image"].shape == (3, CROP, CROP)
    np.testing.assert_allclose(item["landmarks"].numpy(), 2 * small["landmarks"].numpy(), atol=1e-3)
