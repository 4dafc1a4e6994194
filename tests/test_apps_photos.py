"""Finding and reading the user's images: every mode becomes RGB in [0, 1]; bad files are named."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from focus.apps.photos import find_images, output_stems, read_photo, unique_stems
from focus.errors import InputFileError


def _rgb(h=48, w=64, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_find_images_in_folders_and_files(tmp_path):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    (d / ".hidden").mkdir()
    for name in ("b.jpg", "a.PNG", "sub/c.png", ".hidden/x.png", ".dot.png"):
        Image.fromarray(_rgb()).save(d / name, format="PNG")
    (d / "readme.txt").write_text("x")
    single = tmp_path / "single.weird"
    Image.fromarray(_rgb()).save(single, format="PNG")

    items, skipped = find_images([d, single, tmp_path / "missing.jpg", d / "b.jpg"])
    assert [i.name for i in items] == ["a.PNG", "b.jpg", "single.weird"]  # sorted, no duplicates, no hidden
    reasons = {s.path.name: s for s in skipped}
    assert not reasons["readme.txt"].failed and "not an image" in reasons["readme.txt"].reason
    assert reasons["missing.jpg"].failed

    items, _ = find_images([d], recursive=True)
    assert [i.name for i in items] == ["a.PNG", "b.jpg", "sub/c.png"]
    items, _ = find_images([d], recursive=True, exclude=d / "sub")
    assert [i.name for i in items] == ["a.PNG", "b.jpg"]


def test_unique_stems():
    names = ["a.jpg", "a.png", "A.gif", "x/b.png", "c.png", ".d.png"]
    stems = unique_stems(names, reserved=["c"])
    assert stems["x/b.png"] == "x/b"
    assert len({s.lower() for s in stems.values()}) == len(names)
    assert stems["a.jpg"] == "a_jpg" and stems["a.png"] == "a_png"
    assert stems["c.png"] != "c" and not stems[".d.png"].startswith(".")


@pytest.mark.parametrize("mode", ["RGB", "L", "LA", "RGBA", "P", "I;16", "I", "CMYK"])
def test_read_photo_modes(tmp_path, mode):
    rgb = _rgb()
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    if mode == "RGB":
        im, expect = Image.fromarray(rgb), rgb / 255.0
    elif mode == "L":
        im, expect = Image.fromarray(grey), np.repeat(grey[..., None], 3, -1) / 255.0
    elif mode == "LA":
        im, expect = Image.fromarray(grey).convert("LA"), np.repeat(grey[..., None], 3, -1) / 255.0
    elif mode == "RGBA":
        a = np.full(rgb.shape[:2] + (1,), 128, np.uint8)
        im = Image.fromarray(np.concatenate([rgb, a], -1), "RGBA")
        al = 128 / 255.0
        expect = rgb / 255.0 * al + (1 - al)  # composited over white
    elif mode == "P":
        im = Image.fromarray(rgb).convert("P")
        expect = np.asarray(im.convert("RGB")) / 255.0
    elif mode == "I;16":
        g16 = grey.astype(np.uint16) * 257
        im, expect = Image.fromarray(g16), np.repeat(grey[..., None], 3, -1) / 255.0
    elif mode == "I":
        g32 = grey.astype(np.int32) * 257
        im, expect = Image.fromarray(g32, "I"), np.repeat(grey[..., None], 3, -1) / 255.0
    else:
        im = Image.fromarray(rgb).convert("CMYK")
        expect = np.asarray(im.convert("RGB")) / 255.0
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I") else "x.png")
    im.save(path)
    photo = read_photo(path)
    assert photo.pixels.shape == rgb.shape and photo.pixels.dtype == np.float32
    assert np.abs(photo.pixels - expect).max() < 1.5 / 255
    if mode != "RGB":
        assert photo.notes or mode == "P"


def test_read_photo_applies_exif_orientation(tmp_path):
    rgb = _rgb(40, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "o.jpg", exif=exif, quality=98)
    photo = read_photo(tmp_path / "o.jpg")
    assert photo.pixels.shape[:2] == (80, 40)
    assert read_photo(tmp_path / "o.jpg", exif_orientation=False).pixels.shape[:2] == (40, 80)  # as stored


def test_read_photo_bad_files(tmp_path):
    good = io.BytesIO()
    Image.fromarray(_rgb(200, 200)).save(good, format="JPEG", quality=95)
    (tmp_path / "trunc.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(InputFileError, match="trunc.jpg.*truncated"):
        read_photo(tmp_path / "trunc.jpg")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputFileError, match="text.png.*unreadable"):
        read_photo(tmp_path / "text.png")
    with pytest.raises(InputFileError, match="not found"):
        read_photo(tmp_path / "none.png")
    Image.fromarray(_rgb(200, 300)).save(tmp_path / "big.png")
    with pytest.raises(InputFileError, match="big.png.*too large.*300 x 200"):
        read_photo(tmp_path / "big.png", max_megapixels=0.05)
    assert read_photo(tmp_path / "big.png", max_megapixels=0.1).width == 300
    Image.fromarray(_rgb(8, 8)).save(tmp_path / "tiny.png")
    with pytest.raises(InputFileError, match="too small"):
        read_photo(tmp_path / "tiny.png")


def test_output_stems_tell_same_named_inputs_apart(tmp_path):
    """Issue 15: inputs are keyed by their full path; same-named photos get stems from the part of the
    path that differs; no stem is a folder of another; earlier stems stay with their photo."""
    rels = ("x/DIR1/a.png", "y/DIR1/a.png", "z/DIR2/a.png", "z/DIR2/b.png", "r/sub/c.png", "r/sub.png")
    rels += ("h/.cache/a.png",)
    for rel in rels:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb()).save(tmp_path / rel)
    inputs = [tmp_path / p for p in ("x/DIR1", "y/DIR1", "z/DIR2", "h/.cache/a.png")]
    items, _ = find_images(inputs)
    stems = output_stems(items)
    by = {it.path.relative_to(tmp_path).as_posix(): stems[it.key] for it in items}
    assert by == {
        "x/DIR1/a.png": "x/DIR1/a",
        "y/DIR1/a.png": "y/DIR1/a",
        "z/DIR2/a.png": "z/DIR2/a",
        "z/DIR2/b.png": "b",
        "h/.cache/a.png": "h/_cache/a",
    }
    assert output_stems(list(reversed(items))) == stems  # deterministic, whatever the order
    items, _ = find_images([tmp_path / "r"], recursive=True)
    stems = output_stems(items)
    assert sorted(stems.values()) == ["sub/c", "sub_2"]  # 'sub' would be the folder holding sub/c's results
    a = next(it for it in items if it.name == "sub.png")
    assert output_stems(items, earlier={a.key: "sub", "/elsewhere/sub/c.png": "sub/c"})[a.key] == "sub"
    # a stem inside another's result folder is flattened, not counted up forever
    assert unique_stems(["sub/c.png"], reserved=["sub", "sub/c"]) == {"sub/c.png": "sub_c"}
