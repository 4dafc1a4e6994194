"""The synthetic sets: byte determinism, layouts, ground truth files, and the loader reading them."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_helpers import tiny_model, tiny_settings

from focus.data import DataSettings, FaceImageFolder, read_landmarks_csv, template_from_model
from focus.synth.generator import CameraSpec, chunk_jobs
from focus.synth.sets import AR_SUBSETS, TRUTH_FILE, train_jobs, write_ar, write_train
from focus.synth.settings import TrainSetSettings

CAM = CameraSpec(32, 2)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def train_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "train"
    write_train(tiny_model(), tiny_settings(), out, CAM, progress=False)
    return out


def test_same_seed_same_bytes(train_set: Path, tmp_path: Path) -> None:
    again = tmp_path / "train"
    write_train(tiny_model(), tiny_settings(), again, CAM, progress=False)
    a, b = tree_digest(train_set), tree_digest(again)
    assert len(a) == 6 * 3 + 4  # images, masks, face masks + landmarks.csv, truth.npz, meta.csv, info.json
    assert a == b


def test_other_seed_other_images(train_set: Path, tmp_path: Path) -> None:
    other = tmp_path / "train"
    write_train(tiny_model(), tiny_settings(seed=1), other, CAM, progress=False)
    a, b = tree_digest(train_set), tree_digest(other)
    assert all(a[k] != b[k] for k in a if k.startswith("images/"))


def test_an_image_depends_only_on_its_own_seed(tmp_path: Path) -> None:
    """Image 3 is the same whether the set has 4 or 6 images and whatever the chunk it falls in
    (chunk composition only changes float rounding in the batched render, so compare closely)."""
    s4 = tiny_settings(train=TrainSetSettings(count=4, occluder_prob=0.5), batch_size=4)
    write_train(tiny_model(), s4, tmp_path / "a", CAM, progress=False)
    s6 = tiny_settings(batch_size=3)
    write_train(tiny_model(), s6, tmp_path / "b", CAM, progress=False)
    for name in ("000000.png", "000003.png"):
        a = np.asarray(Image.open(tmp_path / "a" / "images" / name), np.int16)
        b = np.asarray(Image.open(tmp_path / "b" / "images" / name), np.int16)
        assert np.mean(np.abs(a - b) <= 1) > 0.99


def test_chunks_are_fixed_by_batch_size() -> None:
    jobs = train_jobs(tiny_settings(train=TrainSetSettings(count=10)), CAM)
    chunks = chunk_jobs(jobs, 4)
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [j.index for c in chunks for j in c] == list(range(10))


def test_train_layout_and_truth(train_set: Path) -> None:
    table = read_landmarks_csv(train_set / "landmarks.csv", strict=True)
    assert table.names == tuple(f"{i:06d}.png" for i in range(6))
    truth = np.load(train_set / TRUTH_FILE)
    m = tiny_model()
    assert [str(n) for n in truth["names"]] == list(table.names)
    assert truth["id"].shape == (6, m.n_id) and truth["exp"].shape == (6, m.n_exp) and truth["sh"].shape == (6, 27)
    assert truth["landmarks_true"].shape == (6, 68, 2)
    assert truth["occluded_share"].shape == (6,)
    assert all(truth[k].ndim >= 1 and len(truth[k]) == 6 for k in truth.files), "one row per image in every array"
    # noisy CSV landmarks stay close to the true ones (detector-like, a few % of the eye distance)
    err = np.linalg.norm(table.landmarks - truth["landmarks_true"], axis=-1)
    iod = np.linalg.norm(truth["landmarks_true"][:, 36] - truth["landmarks_true"][:, 45], axis=-1)
    assert 0.0 < float(np.median(err / iod[:, None])) < 0.1
    for name in table.names:
        img = np.asarray(Image.open(train_set / "images" / name))
        mask = np.asarray(Image.open(train_set / "masks" / name))
        face = np.asarray(Image.open(train_set / "face_masks" / name))
        assert img.shape == (32, 32, 3) and mask.shape == face.shape == (32, 32)
        assert set(np.unique(mask)) <= {0, 255} and set(np.unique(face)) <= {0, 255}
        assert not np.any((mask > 0) & (face == 0)), "visible face outside the face region"
        assert (face > 0).mean() > 0.2, "the face should fill a good part of the crop"
    meta = (train_set / "meta.csv").read_text().splitlines()
    assert meta[0].startswith("name,occluders,occluded_share") and len(meta) == 7


def test_loader_serves_the_synthetic_set(train_set: Path) -> None:
    m = tiny_model()
    template = template_from_model(m, 32)
    ds = FaceImageFolder(train_set, template, DataSettings(), augment=True, seed=0)
    assert len(ds) == 6
    item = ds[2]
    assert item["image"].shape == (3, 32, 32) and item["landmarks"].shape == (68, 2)
    assert item["mask"].shape == (1, 32, 32) and item["face_mask"].shape == (1, 32, 32)
    assert float((item["mask"] * (1 - item["face_mask"])).sum()) == 0.0


def test_ar_set_has_three_subsets_of_the_same_subjects(tmp_path: Path) -> None:
    s = tiny_settings()
    stats = write_ar(tiny_model(), s, tmp_path / "ar", CAM, progress=False)
    assert stats.images == 3 * s.ar.per_subset
    ids = {}
    for sub in AR_SUBSETS:
        root = tmp_path / "ar" / sub
        table = read_landmarks_csv(root / "landmarks.csv", strict=True)
        assert len(table) == s.ar.per_subset
        truth = np.load(root / TRUTH_FILE)
        ids[sub] = truth["id"]
        assert np.all(truth["exp"] == 0), "AR faces are neutral"
        assert np.all(np.abs(np.degrees(truth["angles"])) <= s.ar.max_angle_deg + 1e-6), "AR faces are frontal"
        shares = truth["occluded_share"]
        if sub == "unoccluded":
            assert np.all(shares == 0)
        else:
            assert np.all(shares > 0.03), f"{sub} images must be occluded"
    np.testing.assert_array_equal(ids["unoccluded"], ids["sunglasses"])
    np.testing.assert_array_equal(ids["unoccluded"], ids["scarf"])


def test_occluder_share_follows_the_setting(tmp_path: Path) -> None:
    s = tiny_settings(train=TrainSetSettings(count=24, occluder_prob=0.5), image_size=16)
    stats = write_train(tiny_model(), s, tmp_path / "t", CameraSpec(16, 1), progress=False)
    assert 0.2 <= stats.occluded_images / stats.images <= 0.8
    none = write_train(
        tiny_model(),
        replace(s, train=TrainSetSettings(count=8, occluder_prob=0.0)),
        tmp_path / "n",
        CameraSpec(16, 1),
        progress=False,
    )
    assert none.occluded_images == 0


@pytest.mark.slow
def test_worker_processes_do_not_change_the_bytes(train_set: Path, tmp_path: Path) -> None:
    """Two spawned worker processes write exactly what one process writes."""
    out = tmp_path / "train"
    write_train(tiny_model(), tiny_settings(workers=2), out, CAM, progress=False)
    assert tree_digest(out) == tree_digest(train_set)
