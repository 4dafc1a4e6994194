"""The three synthetic sets and their on-disk layouts.

``train`` (a face-image folder, see :mod:`focus.data.dataset`)::

    images/NNNNNN.png  masks/NNNNNN.png  face_masks/NNNNNN.png
    landmarks.csv      name,x1,y1,...,x68,y68 (noisy, detector-like; given under occluders)
    truth.npz          true coefficients, noise-free landmarks, occluded share per image (below)
    meta.csv           name, occluders, occluded share, pose, appearance per image
    info.json          the face model and the image count

``now`` (the NoW validation layout of docs/evaluation.md, plus ground-truth extras)::

    imagepathsvalidation.txt
    NoW_Dataset/final_release_version/iphone_pictures/<subject>/<challenge>/IMG_NNNN.jpg
    NoW_Dataset/final_release_version/detected_face/<subject>/<challenge>/IMG_NNNN.npy
    scans/<subject>/<subject>.obj                 neutral scan, mm
    scans_lmks_onlypp/<subject>/<subject>.pp      its 7 landmarks
    landmarks.csv, masks/, face_masks/, truth.npz, meta.csv, info.json  (extras; names are the image
                                                   list entries, images under iphone_pictures/)

``ar``: three face-image folders ``unoccluded/``, ``sunglasses/``, ``scarf/`` (same subjects in
each), frontal and neutral, with true visible-face masks.

``truth.npz`` holds ``names`` and, per image, ``id``, ``exp``, ``albedo``, ``angles``,
``trans``, ``sh`` (the coefficient layout of :mod:`focus.coeffs`), ``light_dir``,
``landmarks_true`` (noise-free projected landmarks, pixels of the stored image),
``occluded_share`` (share of the face region covered by occluders) and the camera per image:
``image_size``, ``distance``, ``focal_at_224`` (every array has one row per image).
``info.json`` names the face model that made the folder.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from focus.data.landmarks_csv import write_landmarks_csv
from focus.io_utils import write_json_atomic
from focus.synth.generator import CameraSpec, ImageJob, ImageResult, SynthPool, rng_for, run_jobs
from focus.synth.settings import SynthSettings
from focus.synth.writers import save_npz, write_csv, write_face_box, write_jpeg, write_mask, write_png

AR_SUBSETS: tuple[str, ...] = ("unoccluded", "sunglasses", "scarf")
AR_OCCLUDER = {"unoccluded": "", "sunglasses": "sunglasses", "scarf": "scarf"}
NOW_CHALLENGES: tuple[str, ...] = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
NOW_IMAGES_DIR = Path("NoW_Dataset") / "final_release_version" / "iphone_pictures"
NOW_BOXES_DIR = Path("NoW_Dataset") / "final_release_version" / "detected_face"
TRUTH_FILE = "truth.npz"
META_HEADER = [
    "name",
    "occluders",
    "occluded_share",
    "pitch_deg",
    "yaw_deg",
    "roll_deg",
    "expressive",
    "beard",
    "makeup",
    "freckles",
]


@dataclass
class SetStats:
    """What was written (for the resolution note and the stage's summary)."""

    name: str
    images: int = 0
    occluded_images: int = 0
    occluder_counts: Counter = field(default_factory=Counter)
    occluded_share_sum: float = 0.0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def add(self, r: ImageResult) -> None:
        self.images += 1
        if r.result.occluders:
            self.occluded_images += 1
            self.occluder_counts.update(r.result.occluders)
        self.occluded_share_sum += r.result.occluded_share

    def as_dict(self) -> dict:
        return {
            "images": self.images,
            "occluded_images": self.occluded_images,
            "occluded_image_share": round(self.occluded_images / max(self.images, 1), 4),
            "mean_occluded_face_share": round(self.occluded_share_sum / max(self.images, 1), 4),
            "occluders": dict(sorted(self.occluder_counts.items())),
            "seconds": round(self.seconds, 2),
            **self.extra,
        }


def base_camera(settings: SynthSettings, render) -> CameraSpec:
    """The training camera: ``render`` settings (:class:`focus.render.renderer.RenderSettings`)
    at the output size ``synth.image_size`` (default ``render.image_size``)."""
    return CameraSpec(
        int(settings.image_size or render.image_size),
        settings.supersample,
        float(render.distance),
        float(render.focal_at_224),
    )


# ---------------------------------------------------------------------- job lists
def train_jobs(s: SynthSettings, cam: CameraSpec) -> list[ImageJob]:
    return [ImageJob("train", i, cam, occluder_prob=s.train.occluder_prob) for i in range(s.train.count)]


def ar_jobs(s: SynthSettings, cam: CameraSpec, subset: str) -> list[ImageJob]:
    a = s.ar.max_angle_deg
    k = AR_SUBSETS.index(subset)
    return [
        ImageJob(
            "ar",
            k * 100_000 + i,
            cam,
            subject=i,
            neutral=True,
            max_angles_deg=(a, a, a / 2),
            trans_xy_mm=5.0,
            trans_z_mm=20.0,
            occluder=AR_OCCLUDER[subset],
            plain_background=True,
        )
        for i in range(s.ar.per_subset)
    ]


def now_image_size(s: SynthSettings, base: CameraSpec) -> int:
    return int(s.now.image_size or round(s.now.zoom_out * base.image_size))


def now_subject_name(i: int) -> str:
    return f"synth_subject_{i:03d}"


def now_jobs(s: SynthSettings, base: CameraSpec = CameraSpec(64, 2)) -> list[tuple[str, ImageJob]]:
    """``(image-list entry, job)`` for every NoW-like picture (subject-major order).

    The pictures are ``now.image_size`` px (default ``zoom_out`` times the training size); the
    face has the size it has in a ``image_size / zoom_out`` px training crop (the focal length
    is scaled accordingly).
    Selfies: camera at ``selfie_distance_mm`` with the focal length shortened in proportion.
    """
    n = s.now
    size = now_image_size(s, base)
    f = base.focal_at_224 / n.zoom_out
    ratio = n.selfie_distance_mm / base.distance
    cams = {
        "default": CameraSpec(size, s.supersample, base.distance, f),
        "selfie": CameraSpec(size, s.supersample, n.selfie_distance_mm, f * ratio),
    }
    sp = s.sampling
    out = []
    img_no = 0
    for subj in range(n.subjects):
        for ci, ch in enumerate(NOW_CHALLENGES):
            for k in range(n.images_per_challenge):
                index = (subj * len(NOW_CHALLENGES) + ci) * 1000 + k
                img_no += 1
                entry = f"{now_subject_name(subj)}/{ch}/IMG_{img_no:04d}.jpg"
                common = dict(subject=subj, trans_xy_mm=60.0, trans_z_mm=sp.trans_z_mm)
                if ch == "multiview_neutral":
                    job = ImageJob("now", index, cams["default"], neutral=True, **common)
                elif ch == "multiview_expressions":
                    job = ImageJob("now", index, cams["default"], neutral=False, **common)
                elif ch == "multiview_occlusions":
                    job = ImageJob("now", index, cams["default"], occluder_prob=1.0, **common)
                else:
                    job = ImageJob(
                        "now",
                        index,
                        cams["selfie"],
                        max_angles_deg=(20.0, 25.0, 10.0),
                        subject=subj,
                        trans_xy_mm=60.0 * ratio,
                        trans_z_mm=sp.trans_z_mm * ratio,
                    )
                out.append((entry, job))
    return out


# ---------------------------------------------------------------------- writing
class FolderWriter:
    """Collects the results of one face-image folder and writes it (images as they come)."""

    def __init__(
        self,
        root: Path,
        images_dir: Path | str = "images",
        image_format: str = "png",
        jpeg_quality: int = 95,
        model_name: str = "",
    ) -> None:
        self.root = Path(root)
        self.images_dir = self.root / images_dir
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.model_name = model_name
        self.names: list[str] = []
        self.rows: list[list] = []
        self.lms: list[np.ndarray] = []
        self.cols: dict[str, list] = {
            k: []
            for k in (
                "id",
                "exp",
                "albedo",
                "angles",
                "trans",
                "sh",
                "light_dir",
                "landmarks_true",
                "image_size",
                "distance",
                "focal_at_224",
                "occluded_share",
            )
        }

    def add(self, name: str, r: ImageResult) -> None:
        c, d, cam = r.result, r.draw, r.job.camera
        ip = self.images_dir / name
        if self.image_format == "jpg":
            write_jpeg(ip, c.image, self.jpeg_quality)
        else:
            write_png(ip, c.image)
        stem = str(Path(name).with_suffix(".png"))
        write_mask(self.root / "masks" / stem, c.mask)
        write_mask(self.root / "face_masks" / stem, c.face_mask)
        self.names.append(name)
        self.lms.append(c.landmarks)
        for k in ("id", "exp", "albedo", "angles", "trans", "sh", "light_dir"):
            self.cols[k].append(np.asarray(getattr(d, k), np.float32))
        self.cols["landmarks_true"].append(c.landmarks_true.astype(np.float32))
        self.cols["image_size"].append(cam.image_size)
        self.cols["distance"].append(cam.distance)
        self.cols["focal_at_224"].append(cam.focal_at_224)
        self.cols["occluded_share"].append(float(c.occluded_share))
        ang = np.degrees(d.angles)
        a = c.appearance
        self.rows.append(
            [
                name,
                ";".join(c.occluders),
                float(c.occluded_share),
                float(ang[0]),
                float(ang[1]),
                float(ang[2]),
                int(bool(np.any(d.exp != 0))),
                a.get("beard", ""),
                int(a.get("makeup", False)),
                int(a.get("freckles", False)),
            ]
        )

    def finish(self) -> None:
        write_landmarks_csv(self.root / "landmarks.csv", self.names, np.stack(self.lms))
        arrays = {"names": np.array(self.names)}
        for k, v in self.cols.items():
            arrays[k] = (
                np.stack(v)
                if isinstance(v[0], np.ndarray)
                else np.array(v, np.float64 if k != "image_size" else np.int64)
            )
        save_npz(self.root / TRUTH_FILE, arrays)
        write_csv(self.root / "meta.csv", META_HEADER, self.rows)
        write_json_atomic(
            self.root / "info.json",
            {
                "generator": "focus.synth",
                "model": self.model_name,
                "images": len(self.names),
                "images_dir": str(Path(self.images_dir).relative_to(self.root)),
            },
        )


def _fresh_dir(path: Path) -> Path:
    """An empty temporary folder beside ``path`` (renamed onto it when the set is complete)."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _commit(tmp: Path, path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def write_train(
    model,
    s: SynthSettings,
    out: Path,
    camera: CameraSpec,
    workers: int | None = None,
    progress: bool = True,
    backend: str = "torch",
    ambient: float = 0.8,
    pool: SynthPool | None = None,
) -> SetStats:
    """Generate and write the training set to ``out``."""
    t0 = time.perf_counter()
    stats = SetStats("train")
    tmp = _fresh_dir(out)
    w = FolderWriter(tmp, model_name=model.name)
    for r in run_jobs(
        model,
        s,
        train_jobs(s, camera),
        workers,
        backend,
        ambient,
        progress="synth train" if progress else None,
        pool=pool,
    ):
        w.add(f"{r.job.index:06d}.png", r)
        stats.add(r)
    w.finish()
    _commit(tmp, out)
    stats.seconds = time.perf_counter() - t0
    stats.extra["image_size"] = camera.image_size
    return stats


def write_ar(
    model,
    s: SynthSettings,
    out: Path,
    camera: CameraSpec,
    workers: int | None = None,
    progress: bool = True,
    backend: str = "torch",
    ambient: float = 0.8,
    pool: SynthPool | None = None,
) -> SetStats:
    """Generate and write the AR-like set (three subsets) to ``out``."""
    t0 = time.perf_counter()
    stats = SetStats("ar")
    tmp = _fresh_dir(out)
    jobs = [j for sub in AR_SUBSETS for j in ar_jobs(s, camera, sub)]
    writers = {sub: FolderWriter(tmp / sub, model_name=model.name) for sub in AR_SUBSETS}
    for r in run_jobs(model, s, jobs, workers, backend, ambient, progress="synth ar" if progress else None, pool=pool):
        sub = AR_SUBSETS[r.job.index // 100_000]
        writers[sub].add(f"{r.job.subject:04d}.png", r)
        stats.add(r)
    for w in writers.values():
        w.finish()
    _commit(tmp, out)
    stats.seconds = time.perf_counter() - t0
    stats.extra["image_size"] = camera.image_size
    stats.extra["subsets"] = list(AR_SUBSETS)
    return stats


def face_box(lm: np.ndarray, rng: np.random.Generator, size: int) -> tuple[float, float, float, float]:
    """A detector-like face box ``(left, right, top, bottom)`` around ``(68, 2)`` landmarks."""
    lo, hi = lm.min(0), lm.max(0)
    w, h = hi - lo
    j = rng.normal(0, 0.03, 4) * np.array([w, w, h, h])
    left = lo[0] - 0.08 * w + j[0]
    right = hi[0] + 0.08 * w + j[1]
    top = lo[1] - 0.25 * h + j[2]
    bottom = hi[1] + 0.05 * h + j[3]
    return (
        float(np.clip(left, 0, size)),
        float(np.clip(right, 0, size)),
        float(np.clip(top, 0, size)),
        float(np.clip(bottom, 0, size)),
    )


def neutral_shape(model, id_coeffs: np.ndarray) -> np.ndarray:
    """The true neutral shape ``(V, 3)`` (mm, model frame) of identity coefficients ``(K_id,)``."""
    import torch

    with torch.no_grad():
        v = model.shape(torch.as_tensor(id_coeffs, dtype=model.mean_shape.dtype)[None])[0]
    return v.double().numpy()


def write_now(
    model,
    s: SynthSettings,
    out: Path,
    camera: CameraSpec,
    workers: int | None = None,
    progress: bool = True,
    backend: str = "torch",
    ambient: float = 0.8,
    pool: SynthPool | None = None,
) -> SetStats:
    """Generate and write the NoW-like set to ``out`` (layout in the module docstring)."""
    t0 = time.perf_counter()
    stats = SetStats("now")
    tmp = _fresh_dir(out)
    entries = now_jobs(s, camera)
    by_job = {(j.set_name, j.index): e for e, j in entries}
    w = FolderWriter(
        tmp, images_dir=NOW_IMAGES_DIR, image_format="jpg", jpeg_quality=s.now.jpeg_quality, model_name=model.name
    )
    subject_ids: dict[int, np.ndarray] = {}
    for r in run_jobs(
        model,
        s,
        [j for _, j in entries],
        workers,
        backend,
        ambient,
        progress="synth now" if progress else None,
        pool=pool,
    ):
        entry = by_job[(r.job.set_name, r.job.index)]
        w.add(entry, r)
        stats.add(r)
        box = face_box(r.result.landmarks_true, rng_for(s.seed, "now", r.job.index, "box"), r.job.camera.image_size)
        write_face_box(tmp / NOW_BOXES_DIR / Path(entry).with_suffix(".npy"), *box)
        subject_ids.setdefault(r.job.subject, r.draw.id)
    w.finish()
    (tmp / "imagepathsvalidation.txt").write_text("".join(e + "\n" for e, _ in entries), encoding="utf-8")
    write_scans(model, s, tmp, subject_ids)
    _commit(tmp, out)
    stats.seconds = time.perf_counter() - t0
    stats.extra.update(
        {
            "subjects": s.now.subjects,
            "images_per_challenge": s.now.images_per_challenge,
            "image_size": now_image_size(s, camera),
            "challenges": list(NOW_CHALLENGES),
        }
    )
    return stats


def write_scans(model, s: SynthSettings, root: Path, subject_ids: dict[int, np.ndarray]) -> None:
    """One scan (``.obj``, mm) and its 7 landmarks (``.pp``) per subject."""
    from focus.geometry.mesh_io import write_obj
    from focus.now.pp_io import write_pp
    from focus.synth.scans import make_scan

    tri = model.triangles.numpy()
    now_ids = model.now_landmarks7.numpy()
    for subj in sorted(subject_ids):
        name = now_subject_name(subj)
        v = neutral_shape(model, subject_ids[subj])
        sv, sf, sl = make_scan(rng_for(s.seed, "now", 2 * 1_000_000 + subj, "face"), v, tri, now_ids, s.now.scan)
        write_obj(root / "scans" / name / f"{name}.obj", sv.astype(np.float32), sf)
        write_pp(
            root / "scans_lmks_onlypp" / name / f"{name}.pp", sl.astype(np.float32).astype(np.float64), f"{name}.obj"
        )
