"""The CelebAMask-HQ loader on a small folder in the real layout (written here): part files, paint
order, face classes, mapping file, mask sizes and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from focus.config import ParamValueError, from_dict
from focus.errors import InputFileError
from focus.eval import celebahq as C
from focus.eval.settings import EvalSettings

IMG, ANNO = 32, 16  # the release: 1024 px images, 512 px annotations


def _part(root: Path, idx: int, part: str, on: np.ndarray) -> None:
    path = root / "CelebAMask-HQ-mask-anno" / str(idx // 2000) / f"{idx:05d}_{part}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.repeat((on * 255).astype(np.uint8)[..., None], 3, axis=2)  # the release's PNGs are RGB
    Image.fromarray(rgb).save(path)


def _box(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((ANNO, ANNO), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def celeba(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "CelebAMask-HQ"
    (root / "CelebA-HQ-img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    parts = {
        0: {
            "skin": _box(2, 14, 2, 14),
            "nose": _box(7, 10, 7, 9),
            "eye_g": _box(4, 7, 3, 13),
            "l_eye": _box(5, 6, 4, 6),
            "hair": _box(0, 5, 0, 16),
            "cloth": _box(13, 16, 0, 16),
        },
        2001: {"skin": _box(3, 13, 3, 13), "hat": _box(0, 6, 0, 16), "mouth": _box(10, 12, 6, 10)},
    }
    for idx, ps in parts.items():
        Image.fromarray(rng.integers(0, 255, (IMG, IMG, 3), dtype=np.uint8)).save(root / "CelebA-HQ-img" / f"{idx}.jpg")
        for name, on in ps.items():
            _part(root, idx, name, on)
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx orig_idx orig_file\n0 119613 119614.jpg\n2001 5 000006.jpg\n"
    )
    return root, parts


def _expected(ps: dict, face: tuple[str, ...]) -> np.ndarray:
    """Paint order by hand: the last listed part (in the tool's order) that covers a pixel decides."""
    out = np.zeros((ANNO, ANNO), bool)
    for name in C.PARTS:
        if name in ps:
            out = np.where(ps[name], name in face, out)
    return out


def test_layout_paths_and_mapping(celeba) -> None:
    root, _ = celeba
    assert C.part_path(root, 2001, "hat") == root / "CelebAMask-HQ-mask-anno/1/02001_hat.png"
    assert C.image_path(root, 0) == root / "CelebA-HQ-img/0.jpg"
    assert C.read_mapping(root / C.MAPPING) == [(0, 119613, "119614.jpg"), (2001, 5, "000006.jpg")]
    assert C.PARTS[:3] == ("skin", "nose", "eye_g") and C.PARTS[-1] == "cloth" and len(C.PARTS) == 18


def test_label_map_paints_in_annotation_order(celeba) -> None:
    root, parts = celeba
    labels = C.label_map(root, 0)
    assert labels[8, 8] == C.PARTS.index("nose") + 1  # nose over skin
    assert labels[4, 4] == C.PARTS.index("hair") + 1  # hair (13) over the glasses (3) and the skin
    assert labels[5, 4] == C.PARTS.index("l_eye") + 1  # an eye (4) drawn inside the glasses (3) wins
    assert labels[6, 10] == C.PARTS.index("eye_g") + 1  # glasses over skin
    assert labels[14, 5] == C.PARTS.index("cloth") + 1 and labels[15, 15] == C.PARTS.index("cloth") + 1
    assert labels[11, 3] == 1  # skin only
    for idx in parts:
        np.testing.assert_array_equal(
            C.visible_face_mask(C.label_map(root, idx)), _expected(parts[idx], C.DEFAULT_FACE_PARTS)
        )


def test_face_parts_are_a_parameter(celeba) -> None:
    root, parts = celeba
    with_hair = C.DEFAULT_FACE_PARTS + ("hair",)
    m = C.visible_face_mask(C.label_map(root, 0), with_hair)
    np.testing.assert_array_equal(m, _expected(parts[0], with_hair))
    assert m.sum() > C.visible_face_mask(C.label_map(root, 0)).sum()
    es = from_dict(EvalSettings, {"celebahq_face_parts": ["skin", "nose"]}, "params.yaml", key="eval")
    assert es.celebahq_face_parts == ("skin", "nose")
    with pytest.raises(Exception, match="celebahq_face_parts"):
        from_dict(EvalSettings, {"celebahq_face_parts": ["skin", "beard"]}, "params.yaml", key="eval")
    with pytest.raises(ParamValueError):
        C.check_face_parts([])


def test_mask_folder_at_image_size(celeba, tmp_path) -> None:
    root, parts = celeba
    written = C.write_mask_folder(root, tmp_path / "out")
    assert written == ["0.jpg", "2001.jpg"]
    for idx in parts:
        m = np.asarray(Image.open(tmp_path / "out/masks" / f"{idx}.png"))
        assert m.shape == (IMG, IMG)
        expect = np.kron(_expected(parts[idx], C.DEFAULT_FACE_PARTS), np.ones((2, 2), bool))  # nearest, x2
        np.testing.assert_array_equal(m == 255, expect)


def test_errors_name_the_file(celeba, tmp_path) -> None:
    root, _ = celeba
    with pytest.raises(InputFileError, match="CelebA-HQ-to-CelebA-mapping.txt"):
        C.check_layout(tmp_path / "empty")
    with pytest.raises(InputFileError, match="no part annotation of image 5"):
        C.label_map(root, 5)
    _part(root, 2001, "neck", np.zeros((8, 8), bool))
    with pytest.raises(InputFileError, match="02001_neck.png"):
        C.label_map(root, 2001)
    (root / C.MAPPING).write_text("idx orig_idx orig_file\nzero 1 x.jpg\n")
    with pytest.raises(InputFileError, match="line 2"):
        C.read_mapping(root / C.MAPPING)


def test_synthetic_set_round_trips_through_the_layout(tmp_path) -> None:
    from train_fixtures import make_tiny_folder, tiny_face_model

    from focus.data.dataset import read_mask

    ar = tmp_path / "ar"
    model = tiny_face_model()
    for sub, seed in (("unoccluded", 0), ("sunglasses", 1)):
        make_tiny_folder(ar / sub, model, n=3, size=IMG, seed=seed)
    out = tmp_path / "layout"
    info = C.write_synthetic_layout(ar, out, ("unoccluded", "sunglasses"))
    assert info["images"] == 6
    C.write_mask_folder(out, tmp_path / "derived")
    for idx, _, src in C.read_mapping(out / C.MAPPING):
        sub, name = src.split("/")
        truth = read_mask(ar / sub / "masks" / name) >= 0.5
        derived = np.asarray(Image.open(tmp_path / "derived/masks" / f"{idx}.png")) == 255
        np.testing.assert_array_equal(derived, truth)
    # make_tiny_folder occludes every other image: as a hat in "unoccluded", as eyeglasses in "sunglasses"
    assert C.part_path(out, 1, "hat").is_file() and C.part_path(out, 4, "eye_g").is_file()
    assert not any(C.part_path(out, 0, p).is_file() for p in C.PARTS if p != "skin")
