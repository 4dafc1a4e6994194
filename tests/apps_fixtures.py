"""Photos for the ``focus.apps`` tests: the two public-domain portraits that ship inside installed
packages (scikit-image's ``astronaut``, Eileen Collins; matplotlib's ``grace_hopper``), occluded
copies, and bad inputs of every kind the commands must survive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: MTCNN's five points on the two portraits (image frame, px), fixed fixture data: they place the occluders
#: without running a detector in the fixture.
POINTS5 = {
    "astronaut": np.array([[205.5, 102.2], [247.3, 104.2], [225.2, 129.5], [202.2, 139.7], [245.8, 142.4]]),
    "grace_hopper": np.array([[222.2, 192.7], [310.3, 186.6], [269.9, 239.7], [233.2, 280.1], [307.1, 276.4]]),
}


def portraits() -> dict[str, np.ndarray]:
    """``{"astronaut": (512, 512, 3) uint8, "grace_hopper": (600, 512, 3) uint8}``."""
    import matplotlib.cbook as cbook
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        grace = np.asarray(Image.open(f).convert("RGB"))
    return {"astronaut": np.asarray(data.astronaut()), "grace_hopper": grace}


def occluder_box(points5: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` covering the mouth and chin: from below the nose to under the lower lip."""
    p = np.asarray(points5, np.float64)
    iod = np.linalg.norm(p[1] - p[0])
    x0, x1 = p[3, 0] - 0.35 * iod, p[4, 0] + 0.35 * iod
    y0 = p[2, 1] + 0.2 * iod
    y1 = (p[3, 1] + p[4, 1]) / 2 + 0.6 * iod
    return int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))


def occlude(image: np.ndarray, box: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """A copy of ``image`` with a textured patch (a piece of scikit-image's coffee photo) in ``box``."""
    from skimage import data

    x0, y0, x1, y1 = box
    patch = np.asarray(data.coffee())[40 : 40 + (y1 - y0), 100 : 100 + (x1 - x0)]
    out = np.array(image, copy=True)
    out[y0:y1, x0:x1] = patch
    return out


def write_photo_folder(root: Path, with_bad: bool = True, occluded: bool = True) -> dict[str, dict]:
    """Write portraits (and optionally occluded copies and bad inputs) into ``root``.

    Returns ``{file name: {"kind": ..., "box": occluder box or None, "base": portrait name}}``.
    Bad inputs: a truncated JPEG, a PNG that is not an image, a photo without a face, a text file
    (ignored), and 16-bit grey / RGBA / grey-scale versions of the astronaut (must work).
    """
    root.mkdir(parents=True, exist_ok=True)
    photos = portraits()
    info: dict[str, dict] = {}
    Image.fromarray(photos["astronaut"]).save(root / "astronaut.png")
    Image.fromarray(photos["grace_hopper"]).save(root / "grace_hopper.jpg", quality=95)
    info["astronaut.png"] = {"kind": "ok", "box": None, "base": "astronaut"}
    info["grace_hopper.jpg"] = {"kind": "ok", "box": None, "base": "grace_hopper"}
    if occluded:
        for base, ext in (("astronaut", "png"), ("grace_hopper", "png")):
            box = occluder_box(POINTS5[base])
            Image.fromarray(occlude(photos[base], box)).save(root / f"{base}_occluded.{ext}")
            info[f"{base}_occluded.{ext}"] = {"kind": "ok", "box": box, "base": base}
    if with_bad:
        grey16 = (photos["astronaut"].astype(np.float64).mean(-1) * 257).round().astype(np.uint16)
        Image.fromarray(grey16).save(root / "astronaut_grey16.png")
        info["astronaut_grey16.png"] = {"kind": "ok", "box": None, "base": "astronaut"}
        rgba = np.concatenate([photos["astronaut"], np.full((512, 512, 1), 255, np.uint8)], axis=-1)
        rgba[:40, :40, 3] = 0
        Image.fromarray(rgba, "RGBA").save(root / "astronaut_rgba.png")
        info["astronaut_rgba.png"] = {"kind": "ok", "box": None, "base": "astronaut"}
        good = (root / "grace_hopper.jpg").read_bytes()
        (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
        info["truncated.jpg"] = {"kind": "failed", "box": None, "base": None}
        (root / "not_an_image.png").write_bytes(b"this is text, not a PNG\n" * 10)
        info["not_an_image.png"] = {"kind": "failed", "box": None, "base": None}
        rng = np.random.default_rng(0)
        Image.fromarray((rng.random((160, 200, 3)) * 60 + 100).astype(np.uint8)).save(root / "no_face.png")
        info["no_face.png"] = {"kind": "failed", "box": None, "base": None}
        (root / "notes.txt").write_text("not a photo\n")
        info["notes.txt"] = {"kind": "ignored", "box": None, "base": None}
    return info
