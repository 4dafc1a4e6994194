"""CelebAMask-HQ: its folder layout, visible-face masks from its part labels, and the scoring.

The layout of the public release (``CelebAMask-HQ/``, what ``eval.celebahq_dir`` points at)::

    CelebA-HQ-img/<idx>.jpg                                1024 x 1024 images, idx 0..29999
    CelebAMask-HQ-mask-anno/<idx // 2000>/<idx:05d>_<part>.png   512 x 512 binary part masks
    CelebA-HQ-to-CelebA-mapping.txt                        "idx orig_idx orig_file", one header line

A part file is missing where that part is absent or, per the dataset's README, totally occluded
(partly occluded parts are annotated on their visible residue). Part names, in the order of the
annotation tool (:data:`PARTS`): skin, nose, eye_g, l_eye, r_eye, l_brow, r_brow, l_ear, r_ear,
mouth, u_lip, l_lip, hair, hat, ear_r, neck_l, neck, cloth.

Label map (:func:`label_map`): the parts are painted in :data:`PARTS` order, a later part
overwriting an earlier one where both are set, as the authors' own ``g_mask.py`` does (so e.g. hair,
a hat or cloth over the skin win over skin, and an eye drawn inside eyeglasses wins over the
glasses). Visible-face mask (:func:`visible_face_mask`): the pixels whose final label is one of the
``face parts`` (``eval.celebahq_face_parts``; default :data:`DEFAULT_FACE_PARTS`: skin, nose, eyes,
brows, mouth and lips); every other label (eyeglasses, hair, hat, ear rings, necklace, neck, cloth,
ears, background) is not face. Neither the paper nor the authors' code says which classes count as
face: the set is a parameter.

Scoring (:func:`run_eval_celebahq`): the aligned crops need 68 iBUG landmarks of every image in the
image's own pixels (``eval.celebahq_landmarks``, default ``<celebahq_dir>/landmarks.csv``, names
``<idx>.jpg``). CelebAMask-HQ has none; run any 68-point detector on ``CelebA-HQ-img`` and write
that CSV (:mod:`focus.data.landmarks_csv`). The derived masks (at the image size, nearest-neighbour
from 512 px) go to ``data/eval/celebahq/masks/``, and the models are scored exactly as on the
AR-like set (:mod:`focus.eval.ar_metrics`, all rows of :func:`focus.eval.pipeline.methods` with
the all-face and pseudo-mask baselines). With ``eval.celebahq_dir: null`` (the embedded default)
the AR-like synthetic set is first written in this layout (:func:`write_synthetic_layout`) and
scored by the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from focus.config import ParamValueError
from focus.errors import InputFileError
from focus.io_utils import atomic_path, write_json_atomic
from focus.run_info import write_json_reproducible

log = logging.getLogger("focus.eval")

IMAGE_DIR = "CelebA-HQ-img"
ANNO_DIR = "CelebAMask-HQ-mask-anno"
MAPPING = "CelebA-HQ-to-CelebA-mapping.txt"
IMAGES_PER_FOLDER = 2000
#: The part names in the annotation tool's order (later parts overwrite earlier ones).
PARTS: tuple[str, ...] = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
#: Parts counted as visible face by default (``eval.celebahq_face_parts``).
DEFAULT_FACE_PARTS: tuple[str, ...] = ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip")
#: Synthetic occluders written as these non-face parts (:func:`write_synthetic_layout`).
SYNTH_OCCLUDER_PART = {"sunglasses": "eye_g", "scarf": "cloth"}


def check_face_parts(parts: Sequence[str], key: str = "eval.celebahq_face_parts") -> tuple[str, ...]:
    """``parts`` as a tuple, every name one of :data:`PARTS` (else :class:`ParamValueError`)."""
    parts = tuple(parts)
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ParamValueError(key, list(parts), f"a non-empty list of CelebAMask-HQ parts from {list(PARTS)}")
    return parts


def part_path(root: str | Path, idx: int, part: str) -> Path:
    """``<root>/CelebAMask-HQ-mask-anno/<idx // 2000>/<idx:05d>_<part>.png``."""
    return Path(root) / ANNO_DIR / str(idx // IMAGES_PER_FOLDER) / f"{idx:05d}_{part}.png"


def image_path(root: str | Path, idx: int) -> Path:
    """``<root>/CelebA-HQ-img/<idx>.jpg``."""
    return Path(root) / IMAGE_DIR / f"{idx}.jpg"


def check_layout(root: str | Path) -> Path:
    """``root`` if it has the three parts of the layout, else :class:`InputFileError` naming the missing one."""
    root = Path(root)
    for name in (IMAGE_DIR, ANNO_DIR, MAPPING):
        if not (root / name).exists():
            raise InputFileError(
                root / name,
                "not found: eval.celebahq_dir must be the CelebAMask-HQ folder",
                f"point eval.celebahq_dir at the folder holding {IMAGE_DIR}/, {ANNO_DIR}/ and {MAPPING}",
            )
    return root


def read_mapping(path: str | Path) -> list[tuple[int, int, str]]:
    """``[(idx, orig_idx, orig_file), ...]`` of ``CelebA-HQ-to-CelebA-mapping.txt`` (header line skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"unreadable ({exc.__class__.__name__})") from exc
    out = []
    for n, line in enumerate(lines, 1):
        cells = line.split()
        if not cells or (n == 1 and not cells[0].isdigit()):
            continue
        if len(cells) < 3 or not cells[0].isdigit() or not cells[1].isdigit():
            raise InputFileError(path, f"line {n}: expected 'idx orig_idx orig_file', got {line[:80]!r}")
        out.append((int(cells[0]), int(cells[1]), cells[2]))
    if not out:
        raise InputFileError(path, "no rows", "the file lists 'idx orig_idx orig_file' per image")
    return out


def _read_part(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("L", "1") else im)
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(path, f"unreadable part mask ({exc.__class__.__name__}: {exc})") from exc
    return arr != 0


def label_map(root: str | Path, idx: int) -> np.ndarray:
    """``(H, W)`` uint8: 0 background, ``k + 1`` for part ``PARTS[k]``, painted in order (module docstring).

    Raises :class:`InputFileError` when the image has no part file at all or part files disagree in size.
    """
    labels = None
    for k, part in enumerate(PARTS):
        path = part_path(root, idx, part)
        if not path.is_file():
            continue
        on = _read_part(path)
        if labels is None:
            labels = np.zeros(on.shape, np.uint8)
        elif on.shape != labels.shape:
            raise InputFileError(
                path,
                f"is {on.shape[1]}x{on.shape[0]} but the other parts of image {idx} are "
                f"{labels.shape[1]}x{labels.shape[0]}",
            )
        labels[on] = k + 1
    if labels is None:
        raise InputFileError(
            part_path(root, idx, "skin").parent,
            f"no part annotation of image {idx}",
            f"expected files named {idx:05d}_<part>.png",
        )
    return labels


def visible_face_mask(labels: np.ndarray, face_parts: Sequence[str] = DEFAULT_FACE_PARTS) -> np.ndarray:
    """``(H, W)`` bool: pixels whose label (:func:`label_map`) is one of ``face_parts``."""
    codes = [PARTS.index(p) + 1 for p in check_face_parts(face_parts)]
    return np.isin(labels, codes)


def write_mask_folder(
    root: str | Path,
    out: str | Path,
    face_parts: Sequence[str] = DEFAULT_FACE_PARTS,
    names: Sequence[str] | None = None,
) -> list[str]:
    """Derived visible-face masks ``out/masks/<idx>.png`` (white = face) at each image's size.

    ``names`` are image names ``<idx>.jpg`` (default: every image of the mapping file that exists).
    Masks are resized from the annotation size (512) to the image size with nearest neighbour.
    Returns the names written.
    """
    root = check_layout(root)
    out = Path(out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    if names is None:
        names = [f"{idx}.jpg" for idx, _, _ in read_mapping(root / MAPPING) if image_path(root, idx).is_file()]
    written = []
    for name in names:
        stem = Path(name).stem
        if not stem.isdigit():
            raise InputFileError(name, "is not a CelebA-HQ image name", "names are <idx>.jpg")
        idx = int(stem)
        img = image_path(root, idx)
        try:
            with Image.open(img) as im:
                size = im.size
        except Exception as exc:  # noqa: BLE001
            raise InputFileError(img, f"unreadable image ({exc.__class__.__name__})") from exc
        mask = visible_face_mask(label_map(root, idx), face_parts)
        pil = Image.fromarray((mask * 255).astype(np.uint8), mode="L")
        if pil.size != size:
            pil = pil.resize(size, Image.NEAREST)
        with atomic_path(out / "masks" / f"{idx}.png", suffix=".png") as tmp:
            pil.save(tmp, format="PNG")
        written.append(name)
    return written


# ---------------------------------------------------------------------------- synthetic set in the layout
def write_synthetic_layout(
    ar_root: str | Path, out: str | Path, subsets: Sequence[str] = ("unoccluded", "sunglasses", "scarf")
) -> dict[str, Any]:
    """Write the AR-like synthetic set (``images/``, ``masks/``, ``face_masks/``, ``landmarks.csv``
    per subset) in the CelebAMask-HQ layout under ``out``.

    Images become ``CelebA-HQ-img/<idx>.jpg`` (JPEG quality 95; idx in subset order), the true
    visible face the ``skin`` part, the occluded part of the true face region the non-face part
    :data:`SYNTH_OCCLUDER_PART` of the subset (``eye_g`` for sunglasses, ``cloth`` for scarves,
    ``hat`` otherwise), annotations at the image size. The mapping file names the source
    ``<subset>/<name>``; ``landmarks.csv`` (not part of the real release) holds the set's landmarks
    under the new names. With the default face parts the derived mask is the true mask.
    """
    from focus.data.dataset import mask_name, read_mask
    from focus.data.landmarks_csv import read_landmarks_csv, write_landmarks_csv

    ar_root, out = Path(ar_root), Path(out)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    rows, names, lms, idx = [], [], [], 0
    for sub in subsets:
        table = read_landmarks_csv(ar_root / sub / "landmarks.csv", strict=True)
        occluder = SYNTH_OCCLUDER_PART.get(sub, "hat")
        for name, lm in zip(table.names, table.landmarks, strict=True):
            with Image.open(ar_root / sub / "images" / name) as im:
                rgb = im.convert("RGB")
            with atomic_path(image_path(out, idx), suffix=".jpg") as tmp:
                rgb.save(tmp, format="JPEG", quality=95)
            visible = read_mask(ar_root / sub / "masks" / mask_name(name)) >= 0.5
            face_file = ar_root / sub / "face_masks" / mask_name(name)
            region = read_mask(face_file) >= 0.5 if face_file.is_file() else visible
            for part, on in (("skin", visible), (occluder, region & ~visible)):
                if on.any():
                    path = part_path(out, idx, part)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(path, suffix=".png") as tmp:
                        Image.fromarray((on * 255).astype(np.uint8), mode="L").save(tmp, format="PNG")
            rows.append(f"{idx} {idx} {sub}/{name}")
            names.append(f"{idx}.jpg")
            lms.append(np.asarray(lm, np.float64))
            idx += 1
    (out / ANNO_DIR).mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MAPPING, suffix=".txt") as tmp:
        Path(tmp).write_text("idx orig_idx orig_file\n" + "\n".join(rows) + "\n", encoding="utf-8")
    write_landmarks_csv(out / "landmarks.csv", names, np.stack(lms))
    return {"images": idx, "subsets": list(subsets)}


# ---------------------------------------------------------------------------- the evaluation
def run_eval_celebahq(params: dict, paths: Any = None) -> dict:
    """Segmentation metrics of every model on CelebAMask-HQ (``eval.celebahq_dir``) or, by default,
    on the AR-like synthetic set written in its layout: ``reports/eval/celebahq/metrics.json``
    (``<key>.celebahq.{accuracy,...,occluder_f1,occluder_iou}``, as the AR file) and ``details.json``."""
    from focus.eval import ar_metrics as A
    from focus.eval import pipeline as P
    from focus.eval.predict import load_crops, open_folder, predict_crops

    paths = paths or P.EvalPaths()
    t0 = time.perf_counter()
    ctx = P.make_context(params, paths)
    es = ctx.settings
    parts = check_face_parts(es.celebahq_face_parts)
    work = paths.work / "celebahq"
    if es.celebahq_dir:
        root = check_layout(es.celebahq_dir)
        landmarks = Path(es.celebahq_landmarks) if es.celebahq_landmarks else root / "landmarks.csv"
        if not landmarks.is_file():
            raise InputFileError(
                landmarks,
                "no 68-point landmarks of the CelebA-HQ images",
                "run a 68-landmark detector on CelebA-HQ-img and write name,x1,y1,...,x68,y68 "
                "(names <idx>.jpg, image pixels), then set eval.celebahq_landmarks",
            )
    else:
        root = work / "synthetic_layout"
        write_synthetic_layout(es.ar_root, root)
        landmarks = root / "landmarks.csv"
    from focus.data.landmarks_csv import read_landmarks_csv

    names = list(read_landmarks_csv(landmarks, strict=False).names)
    if es.celebahq_max_images:
        names = names[: es.celebahq_max_images]
    write_mask_folder(root, work, parts, names)
    ms = P.methods(ctx.rounds, paths, with_prior=False, with_all_face=True)
    first = P._load(ctx, paths.final)
    folder = open_folder(work, first, images=str((root / IMAGE_DIR).resolve()), landmarks=str(landmarks.resolve()))
    keep = {n for n in names}
    crops = load_crops(folder, [i for i, n in enumerate(folder.names) if n in keep], progress=es.progress)
    per_image: dict[str, dict] = {}
    for group in P._by_checkpoint(ctx, ms).values():
        model = first if any(m.checkpoint == first.checkpoint for m in group) else P._load(ctx, group[0].checkpoint)
        segs = tuple(dict.fromkeys(m.segmentation for m in group))
        pred = predict_crops(model, crops, segs, es.batch_size, progress=es.progress)
        for m in group:
            per_image[m.key] = A.image_metrics(pred.seg[m.segmentation], pred.coverage, crops.masks)
    metrics = {}
    for m in ms:
        summ = A.summarize(per_image[m.key])
        row = {k: P._round(v) for k, v in summ["soft"].items()}
        row["hard"] = {k: P._round(v) for k, v in summ["hard"].items()}
        metrics[m.key] = {"celebahq": row}
    write_json_atomic(paths.reports / "celebahq" / "metrics.json", metrics)
    write_json_reproducible(  # the seconds go beside it (details.timings.json): a hashed output
        paths.reports / "celebahq" / "details.json",
        {
            "dataset": str(root),
            "synthetic": not es.celebahq_dir,
            "images": len(crops),
            "face_parts": list(parts),
            "non_face_parts": [p for p in PARTS if p not in parts],
            "definition": "visible face = final label (parts painted in annotation order, later over earlier) in "
            "face_parts; metrics as the AR protocol (inside the prediction's rendered face, soft / hard)",
            "methods": {
                m.key: {"label": m.label, "checkpoint": str(m.checkpoint), "segmentation": m.segmentation} for m in ms
            },
            "seconds": round(time.perf_counter() - t0, 1),
        },
    )
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m focus.eval.celebahq ROOT OUT``: derive the visible-face masks ``OUT/masks/<idx>.png``
    of a CelebAMask-HQ folder (the scoring itself is ``focus evaluate celebahq`` / stage ``eval_celebahq``)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m focus.eval.celebahq", description=main.__doc__)
    ap.add_argument("root", type=Path, help="the CelebAMask-HQ folder")
    ap.add_argument("out", type=Path, help="where masks/<idx>.png go")
    ap.add_argument("--face-parts", nargs="+", default=list(DEFAULT_FACE_PARTS), help="parts counted as face")
    a = ap.parse_args(argv)
    n = len(write_mask_folder(a.root, a.out, a.face_parts))
    print(f"wrote {n} masks to {a.out / 'masks'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
