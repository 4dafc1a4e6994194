"""``focus reconstruct``: photos in, per face a 3D mesh, the outlier mask and an overlay out.

Per image: read it (:mod:`focus.apps.photos`), find the faces (:mod:`focus.apps.detect`, or take
the landmarks from a CSV), align each face to the training crop with the 5-point transform the
training uses (:func:`focus.data.alignment.estimate_alignment`, template from the face model at
the checkpoint's render size), run the trained encoder, renderer and U-Net on batches of crops
(on the GPU when there is one), and write the results (:mod:`focus.apps.exports`). With
``--adapt`` the networks are first adapted to each batch of faces by the unsupervised EM
(test-time adaptation, :mod:`focus.apps.adapt`).

Output layout (``OUT``)::

    OUT/summary.html, OUT/contact_sheet.png, OUT/report.json
    OUT/<image name without extension>/face_<k>/   k = 0 is the largest face
        crop.png render.png outlier_crop.png outlier.png face_mask.png overlay.png coeffs.json
        posed.obj neutral.obj now/posed.{obj,npy} now/neutral.{obj,npy}

Inputs are keyed by their full path: two photos with the same name in different folders get
folders named after the part of their paths that differs (:func:`focus.apps.photos.output_stems`).
A second run into the same ``OUT`` keeps the earlier results listed in ``report.json`` and the
summary (:func:`read_earlier_results`); a photo processed again replaces its own result, and no
photo takes another photo's folder.

Each image's folder is built under a hidden temporary name and renamed into place when complete,
so an interrupted run leaves no half-written results (stale temporary folders of an earlier,
killed run are removed at the start). Bad inputs (unreadable, truncated, too large, no face, no
CSV row) are reported by name and skipped; the others are processed. The exit status of the CLI
is 0 when every image was processed and 1 otherwise (files that are not images, found while
scanning a folder, are listed but do not count as failures).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from focus.apps import exports as X
from focus.apps.adapt import AdaptSettings, adapt_networks
from focus.apps.detect import CsvLandmarks, Face, FaceDetector
from focus.apps.photos import DEFAULT_MAX_MEGAPIXELS, InputImage, find_images, output_stems, read_photo, source_labels
from focus.config import check_fields, param, positive
from focus.data.alignment import AlignmentTemplate, alignment_from_five_points, five_points, warp_to_crop
from focus.data.dataset import DataSettings
from focus.devices import resolve_device as _resolve_device
from focus.errors import FocusError, InputFileError
from focus.facemodel.model import load_face_model
from focus.io_utils import write_json_atomic
from focus.nets.encoder import ReconstructionEncoder
from focus.nets.trained import CHECKPOINT_FORMAT, read_focus_checkpoint
from focus.nets.unet import SegmentationUNet
from focus.predictor import FocusModel, load_model
from focus.render.renderer import RenderSettings

log = logging.getLogger("focus.apps")

#: The pipeline's trained model (the EM stage's final networks), relative to the project root.
DEFAULT_MODEL = Path("models/focus.pt")
#: The misfit prior the pipeline writes beside the model (used when present, see :func:`load_focus_model`).
MISFIT_PRIOR_NAME = "misfit_prior.npz"
#: Names of the per-image result files in ``OUT`` (they never collide with image folders).
SUMMARY_FILES = ("summary.html", "contact_sheet.png", "report.json")
_TMP_TAG = ".tmp-"


# ---------------------------------------------------------------------------- the model
# The trained networks with everything needed to run them on photos: :class:`focus.predictor.FocusModel`
# (``unet`` ``None`` for an encoder-only checkpoint: the robust pseudo mask ``z(p)`` is the segmentation then).


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (CUDA checked)."""
    return _resolve_device(device, "--device", "use --device cpu")


def _find_facemodel(recorded: str, checkpoint: Path) -> Path | None:
    p = Path(recorded)
    if not recorded:
        return None
    if p.is_absolute():
        return p if p.is_file() else None
    if p.is_file():
        return p
    for parent in checkpoint.resolve().parents:
        if (parent / p).is_file():
            return parent / p
    return None


def load_focus_model(
    checkpoint: str | Path | None = None,
    facemodel: str | Path | None = None,
    device: str = "auto",
    misfit_prior: str | Path | None = "auto",
) -> FocusModel:
    """Load a trained model (``models/focus.pt`` or any networks file of :mod:`focus.train`).

    Args:
        checkpoint: the file; ``None`` takes :data:`DEFAULT_MODEL`.
        facemodel: the face model file; ``None`` takes the one the checkpoint records (resolved
            against the working directory, then against the folders above the checkpoint).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        misfit_prior: ``"auto"`` uses :data:`MISFIT_PRIOR_NAME` beside the checkpoint when it
            exists and fits the face model; ``None`` / ``"none"`` uses none; else a file.

    Raises:
        InputFileError: missing or foreign checkpoint, missing face model, a face model that
            does not fit the networks, or a named misfit prior that cannot be used.
    """
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_MODEL
    if not path.is_file():
        fix = (
            "train it with `make run` (runs `dvc repro`) or pass --model CHECKPOINT"
            if checkpoint is None
            else "name models/focus.pt or another networks file written by the training stages"
        )
        raise InputFileError(path, "trained model not found", fix)
    ckpt = read_focus_checkpoint(path)
    recorded = str(ckpt.get("facemodel", ""))
    fm_path = Path(facemodel) if facemodel is not None else _find_facemodel(recorded, path)
    if fm_path is None or not fm_path.is_file():
        raise InputFileError(
            fm_path or path,
            f"the face model the checkpoint was trained with ({recorded!r}) was not found",
            "pass --facemodel FILE",
        )
    ckpt_data = ckpt.get("data_settings") or {}
    data = replace(DataSettings(), **{k: v for k, v in ckpt_data.items() if k in ("align_method", "border")})
    model = load_model(path, fm_path, data, resolve_device(device), render_backend="auto", ckpt=ckpt)
    prior, prior_path = _misfit_prior(misfit_prior, path, model.face_model.num_vertices)
    return replace(model, misfit_prior=prior, misfit_prior_path=prior_path)


def _misfit_prior(choice: str | Path | None, checkpoint: Path, num_vertices: int):
    from focus.eval.misfit_prior import load_misfit_prior

    if choice is None or str(choice) == "none":
        return None, None
    if str(choice) == "auto":
        cand = checkpoint.parent / MISFIT_PRIOR_NAME
        if not cand.is_file():
            return None, None
        try:
            return load_misfit_prior(cand, num_vertices), cand
        except InputFileError as exc:
            log.warning("not using the misfit prior: %s", exc)
            return None, None
    return load_misfit_prior(choice, num_vertices), Path(choice)


# ---------------------------------------------------------------------------- alignment and inference
def alignment_matrix(points5: np.ndarray, template: AlignmentTemplate, method: str = "similarity") -> np.ndarray:
    """``(3, 3)`` image -> crop transform from the five points ``(5, 2)``.

    Exactly :func:`focus.data.alignment.estimate_alignment` on landmarks with these five points.
    """
    return alignment_from_five_points(points5, template, method)


@dataclass
class FaceResult:
    """The model's answer for one aligned crop (numpy, CPU).

    Attributes:
        coeffs: named coefficient arrays (``id``, ``exp``, ``albedo``, ``angles``, ``trans``, ``sh``).
        render, coverage, face_prob, outlier: ``(S, S, 3)``, ``(S, S)`` x 3 in the crop: the render
            on black, the rendered-face coverage ``m_r``, the U-Net's face probability ``M`` and the
            outlier mask ``m_r (1 - M)``.
        landmarks: ``(68, 2)`` projected model landmarks, crop pixels.
        view_render, view_coverage, view_outlier: the same at the view size (for overlays).
        posed, posed_colors, neutral, neutral_colors: ``(V, 3)`` meshes (mm) and colours.
    """

    coeffs: dict[str, np.ndarray]
    render: np.ndarray
    coverage: np.ndarray
    face_prob: np.ndarray
    outlier: np.ndarray
    landmarks: np.ndarray
    view_render: np.ndarray
    view_coverage: np.ndarray
    view_outlier: np.ndarray
    posed: np.ndarray
    posed_colors: np.ndarray
    neutral: np.ndarray
    neutral_colors: np.ndarray


@torch.no_grad()
def run_model(model: FocusModel, crops: np.ndarray, view_size: int) -> list[FaceResult]:
    """The one forward pass (:meth:`focus.predictor.FocusModel.predict`: encoder, renderer, U-Net on
    the render clamped to [0, 1], or the robust pseudo mask without a U-Net) on ``crops``
    ``(B, S, S, 3)`` float in [0, 1] (one batch), plus the view-size render for overlays."""
    x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2)))
    seg_name = model.predictor.default_segmentation
    pred = model.predict(x, (seg_name,))
    coeffs, out, seg, neutral = pred.coeffs, pred.render, pred.seg[seg_name], pred.neutral
    outlier = out.mask * (1.0 - seg)
    view = model.view_renderer(view_size)(coeffs) if view_size != model.crop_size else out
    seg_v = (
        F.interpolate(seg, size=(view_size, view_size), mode="bilinear", align_corners=False)
        if view_size != model.crop_size
        else seg
    )
    outlier_v = view.mask * (1.0 - seg_v)
    albedo = model.renderer.albedo(coeffs.albedo)
    np_ = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
    neutral_np = np_(neutral).astype(np.float64)
    if model.misfit_prior is not None:
        neutral_np = model.misfit_prior.apply(neutral_np)
    cd = {k: np_(v) for k, v in coeffs.as_dict().items()}
    results = []
    for b in range(x.shape[0]):
        results.append(
            FaceResult(
                coeffs={k: v[b] for k, v in cd.items()},
                render=np.clip(np_(out.image[b]).transpose(1, 2, 0), 0, 1),
                coverage=np_(out.mask[b, 0]),
                face_prob=np_(seg[b, 0]),
                outlier=np_(outlier[b, 0]),
                landmarks=np_(out.landmarks[b]).astype(np.float64),
                view_render=np.clip(np_(view.image[b]).transpose(1, 2, 0), 0, 1),
                view_coverage=np_(view.mask[b, 0]),
                view_outlier=np_(outlier_v[b, 0]),
                posed=np_(out.vertices_world[b]).astype(np.float64),
                posed_colors=np.clip(np_(out.vertex_colors[b]), 0, 1),
                neutral=neutral_np[b],
                neutral_colors=np.clip(np_(albedo[b]), 0, 1),
            )
        )
    return results


# ---------------------------------------------------------------------------- settings and report
@dataclass(frozen=True)
class ReconstructSettings:
    """Options of ``focus reconstruct``.

    Attributes:
        batch_size: faces per network call.
        max_faces: most faces reconstructed per image (largest first).
        max_megapixels: larger images are rejected (decoded size).
        view_size: side of the render used for overlays, px (at least the crop size).
        overlay_max_side: the overlay is the photo reduced to at most this long side.
        recursive: look into sub-folders of input folders.
        progress: show a progress bar over the images.
        adapt: test-time adaptation of the networks to each batch of faces (off by default).
    """

    batch_size: int = param(16, ge=1)
    max_faces: int = param(8, ge=1)
    max_megapixels: float = positive(DEFAULT_MAX_MEGAPIXELS)
    view_size: int = param(256, ge=16)
    overlay_max_side: int = param(1024, ge=64)
    recursive: bool = False
    progress: bool = True
    adapt: AdaptSettings = field(default_factory=AdaptSettings)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class ImageOutcome:
    """What happened to one input: ``status`` is ``"ok"``, ``"failed"`` or ``"ignored"``.

    ``path`` is the input as named, ``name`` its name for landmark look-ups, ``source`` its full
    path (what identifies it), ``folder`` its result folder in ``OUT``; ``earlier`` marks a result
    of an earlier run into the same ``OUT`` that this run left in place.
    """

    path: str
    name: str
    status: str
    reason: str = ""
    folder: str = ""
    faces: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    earlier: bool = False


@dataclass
class RunReport:
    """The outcome of a run (also written as ``report.json``)."""

    out_dir: Path
    outcomes: list[ImageOutcome]
    model: dict
    detector: dict
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    earlier: list[ImageOutcome] = field(default_factory=list)

    @property
    def listed(self) -> list[ImageOutcome]:
        """The results in ``OUT``: this run's, then those of earlier runs it left in place."""
        return self.ok + self.earlier

    @property
    def failed(self) -> list[ImageOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> list[ImageOutcome]:
        return [o for o in self.outcomes if o.status == "ok"]

    @property
    def n_faces(self) -> int:
        return sum(len(o.faces) for o in self.ok)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or not self.ok else 0

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "model": self.model,
            "detector": self.detector,
            "counts": {
                "images_ok": len(self.ok),
                "images_failed": len(self.failed),
                "ignored": sum(o.status == "ignored" for o in self.outcomes),
                "faces": self.n_faces,
                "earlier_images": len(self.earlier),
            },
            "seconds": self.seconds,
            "timings": self.timings,
            "images": [o.__dict__ for o in self.outcomes + self.earlier],
        }


# ---------------------------------------------------------------------------- the loop
@dataclass
class _Pending:
    item: InputImage
    shape: tuple[int, int]
    overlay_photo: np.ndarray
    overlay_scale: tuple[float, float]
    faces: list[Face]
    matrices: list[np.ndarray]
    crops: list[np.ndarray]
    notes: list[str]
    results: list[FaceResult] = field(default_factory=list)


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete temporary result folders left by a killed run (hidden, with the temporary tag)."""
    n = 0
    if not out_dir.is_dir():
        return 0
    for p in sorted(out_dir.rglob(f".*{_TMP_TAG}*"), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


def _commit_folder(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` folder onto ``final`` (replacing an older result)."""
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}{_TMP_TAG}old-", dir=final.parent))
        os.replace(final, old / "x")
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


class Reconstructor:
    """Runs ``focus reconstruct`` (see the module docstring).

    Args:
        model: the loaded :class:`FocusModel`.
        detector: a :class:`focus.apps.detect.FaceDetector` or :class:`CsvLandmarks`.
        settings: :class:`ReconstructSettings`.
        perceptual: the frozen face-recognition network for test-time adaptation (``settings.adapt``)
            and where it came from, as :func:`load_adapt_perceptual` returns them; ``None``:
            adaptation without ``L_id``, ``L_presv`` and ``L_dist``.

    Raises:
        InputFileError: adaptation asked for with an encoder-only checkpoint (no U-Net to adapt).
    """

    def __init__(
        self,
        model: FocusModel,
        detector: FaceDetector | CsvLandmarks,
        settings: ReconstructSettings = ReconstructSettings(),
        perceptual: tuple | None = None,
    ) -> None:
        if settings.adapt.enabled and model.unet is None:
            raise InputFileError(
                model.checkpoint,
                "holds no segmentation network, which test-time adaptation trains",
                "use the EM stage's model (models/focus.pt) or leave out --adapt",
            )
        self.model = model
        self.detector = detector
        self.settings = settings
        net, self.perceptual_source = perceptual if perceptual is not None else (None, None)
        self.perceptual = None if net is None else net.to(model.device).eval()
        self.view_size = max(int(settings.view_size), model.crop_size)
        self.timings = {"read_detect_align": 0.0, "adapt": 0.0, "model": 0.0, "write": 0.0}
        self.adapt_log: list[dict] = []

    # -------------------------------------------------------------- per image
    def _faces(self, item: InputImage, pixels: np.ndarray) -> list[Face]:
        if isinstance(self.detector, CsvLandmarks):
            faces = self.detector.faces_for(item.name, item.path)
            if not faces:
                raise InputFileError(
                    item.path,
                    f"no landmarks for {item.name!r} in {self.detector.path}",
                    "add a row for it (its file name or a longer part of its path), or leave out "
                    "--landmarks to detect faces",
                )
            return faces
        faces = self.detector.detect(pixels)
        if not faces:
            raise InputFileError(
                item.path, "no face found", "use a photo with a visible face, or give landmarks with --landmarks"
            )
        return faces

    def _prepare(self, item: InputImage) -> _Pending:
        s = self.settings
        # CSV landmarks refer to the pixels as stored; a detector sees the photo upright (EXIF)
        photo = read_photo(item.path, s.max_megapixels, exif_orientation=not isinstance(self.detector, CsvLandmarks))
        faces = self._faces(item, photo.pixels)[: s.max_faces]
        S = self.model.crop_size
        mats, crops, kept = [], [], []
        notes = list(photo.notes)
        for k, face in enumerate(faces):
            try:
                M = alignment_matrix(face.points5, self.model.template, self.model.data.align_method)
            except ValueError as exc:
                notes.append(f"face {k} skipped: {exc}")
                continue
            crop = warp_to_crop(photo.pixels, M, S, order=1, mode=self.model.data.border)
            mats.append(M)
            crops.append(np.clip(crop, 0.0, 1.0))
            kept.append(face)
        if not kept:
            raise InputFileError(item.path, "no face could be aligned (degenerate landmarks)")
        small, sx, sy = X.downscaled(photo.pixels, s.overlay_max_side)
        return _Pending(item, (photo.height, photo.width), small, (sx, sy), kept, mats, crops, notes)

    # -------------------------------------------------------------- writing
    def _write_image(self, p: _Pending, out_dir: Path, folder: str) -> list[dict]:
        final = out_dir / folder
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{_TMP_TAG}", dir=final.parent))
        try:
            summaries = [self._write_face(p, k, tmp / f"face_{k}", folder) for k in range(len(p.results))]
            _commit_folder(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return summaries

    def _write_face(self, p: _Pending, k: int, d: Path, folder: str) -> dict:
        """Write face ``k`` of ``p`` into the new folder ``d``; returns its line of the run report."""
        m, r, face = self.model, p.results[k], p.faces[k]
        d.mkdir(parents=True)
        lm_img = self._write_face_images(p, k, d)
        fm = m.face_model
        header = f"focus reconstruct: {p.item.name}, face {k}; model {m.checkpoint}; face model {fm.name}"
        files = X.write_face_meshes(
            d,
            fm.triangles.cpu().numpy(),
            fm.now_landmarks7.cpu().numpy(),
            r.posed,
            r.posed_colors,
            r.neutral,
            r.neutral_colors,
            header,
        )
        info = self._face_info(p, k, lm_img, files)
        write_json_atomic(d / "coeffs.json", info)
        ang = np.degrees(r.coeffs["angles"])
        return {
            "face": k,
            "folder": f"{folder}/face_{k}",
            "score": face.score,
            "fit": info["fit"],
            "outlier_share": info["outlier_share"],
            "pitch_yaw_roll_deg": [round(float(a), 2) for a in ang],
            "eye_distance_px": face.eye_distance,
        }

    def _write_face_images(self, p: _Pending, k: int, d: Path) -> np.ndarray:
        """The crop, render, masks (in the crop and pasted back into the photo) and the overlay of
        face ``k``; returns the projected model landmarks ``(68, 2)`` in photo pixels."""
        r, face, M = p.results[k], p.faces[k], p.matrices[k]
        S, V = self.model.crop_size, self.view_size
        X.save_png(d / "crop.png", p.crops[k])
        X.save_png(d / "render.png", r.render)
        X.save_png(d / "outlier_crop.png", r.outlier)
        X.save_png(d / "outlier.png", X.paste_back(r.outlier, M, p.shape))
        X.save_png(d / "face_mask.png", X.paste_back(r.coverage * r.face_prob, M, p.shape))
        M_view = np.diag([V / S, V / S, 1.0]) @ M
        lm_img = X.transform_points(np.linalg.inv(M), r.landmarks)
        sx, sy = p.overlay_scale
        to_overlay = np.diag([sx, sy, 1.0])
        overlay = X.compose_overlay(
            p.overlay_photo,
            M_view @ np.linalg.inv(to_overlay),
            r.view_render,
            r.view_coverage,
            r.view_outlier,
            X.transform_points(to_overlay, lm_img),
            X.transform_points(to_overlay, face.points5),
        )
        X.save_png(d / "overlay.png", overlay)
        return lm_img

    def _face_info(self, p: _Pending, k: int, lm_img: np.ndarray, files: dict[str, str]) -> dict:
        """The content of face ``k``'s ``coeffs.json``."""
        m, r, face, M = self.model, p.results[k], p.faces[k], p.matrices[k]
        inside = r.coverage > 0.5
        return {
            "image": p.item.name,
            "source": str(p.item.path),
            "face": k,
            "image_size": [p.shape[1], p.shape[0]],
            "detector": {
                "name": face.source,
                "score": face.score,
                "box": face.box.tolist(),
                "points5": face.points5.tolist(),
                "landmarks68": None if face.landmarks68 is None else face.landmarks68.tolist(),
            },
            "alignment": {
                "method": m.data.align_method,
                "crop_size": m.crop_size,
                "image_to_crop": M.tolist(),
                "frame": "image frame of focus.render.camera: pixels, x right, y down, pixel centres at +0.5",
            },
            "model": {
                "checkpoint": str(m.checkpoint),
                "facemodel": str(m.facemodel_path),
                "facemodel_name": m.face_model.name,
                "misfit_prior": None if m.misfit_prior_path is None else str(m.misfit_prior_path),
                "adapted": self.settings.adapt.enabled,
            },
            "coefficients": named_coefficients(r.coeffs),
            "landmarks68_image": lm_img.tolist(),
            "fit": landmark_fit(lm_img, face),
            "outlier_share": float((r.face_prob[inside] < 0.5).mean()) if inside.any() else None,
            "files": {
                **files,
                "crop": "crop.png",
                "render": "render.png",
                "outlier_crop": "outlier_crop.png",
                "outlier": "outlier.png",
                "face_mask": "face_mask.png",
                "overlay": "overlay.png",
            },
        }

    # -------------------------------------------------------------- the run
    def _flush(
        self, pending: list[_Pending], out_dir: Path, folders: dict[str, str], outcomes: list[ImageOutcome]
    ) -> None:
        if not pending:
            return
        t0 = time.perf_counter()
        crops = np.stack([c for p in pending for c in p.crops])
        faces = [(f, M) for p in pending for f, M in zip(p.faces, p.matrices)]
        results: list[FaceResult] = []
        bs = self.settings.batch_size
        for s in range(0, len(crops), bs):
            model = self.model
            if self.settings.adapt.enabled:
                ta = time.perf_counter()
                model = self._adapted(crops[s : s + bs], faces[s : s + bs])
                t0 += time.perf_counter() - ta
                self.timings["adapt"] += time.perf_counter() - ta
            results += run_model(model, crops[s : s + bs], self.view_size)
        k = 0
        for p in pending:
            p.results = results[k : k + len(p.crops)]
            k += len(p.crops)
        t1 = time.perf_counter()
        self.timings["model"] += t1 - t0
        for p in pending:
            folder = folders[p.item.key]
            try:
                faces = self._write_image(p, out_dir, folder)
                outcomes.append(_outcome(p.item, "ok", folder=folder, faces=faces, notes=p.notes))
            except (OSError, ValueError, FocusError) as exc:
                log.warning("%s: writing the results failed: %s", p.item.path, exc)
                outcomes.append(_outcome(p.item, "failed", f"writing the results failed: {exc}"))
        self.timings["write"] += time.perf_counter() - t1
        pending.clear()

    def _adapted(self, crops: np.ndarray, faces: list[tuple[Face, np.ndarray]]) -> FocusModel:
        """The model with its networks adapted to ``crops`` ``(B, S, S, 3)`` (:func:`adapt_networks`);
        ``faces`` holds each crop's detection and image-to-crop matrix (the landmark targets)."""
        m, a = self.model, self.settings.adapt
        dev = m.device
        to_crop = lambda M, pts: X.transform_points(M, np.asarray(pts, np.float64))  # noqa: E731
        p5 = torch.tensor(np.stack([to_crop(M, f.points5) for f, M in faces]), dtype=torch.float32, device=dev)
        lm68 = None
        if all(f.landmarks68 is not None for f, _ in faces):
            lm68 = torch.tensor(
                np.stack([to_crop(M, f.landmarks68) for f, M in faces]), dtype=torch.float32, device=dev
            )
        x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float().to(dev)
        n_steps = a.rounds * (a.seg_steps + a.rec_steps)
        with tqdm(
            total=n_steps,
            desc=f"adapting to {len(faces)} face(s)",
            unit="step",
            leave=False,
            disable=not self.settings.progress,
        ) as bar:
            enc, unet, steps_log = adapt_networks(
                m.encoder, m.unet, m.renderer, self.perceptual, x, p5, lm68, a, progress=bar.update
            )
        self.adapt_log.append(
            {"faces": len(faces), "landmarks": "68" if lm68 is not None else "5", "last": steps_log[-2:]}
        )
        return replace(m, encoder=enc, unet=unet)

    def run(self, inputs: Sequence[str | Path], out_dir: str | Path) -> RunReport:
        """Process ``inputs`` (files and folders) into ``out_dir``; returns the :class:`RunReport`.

        Results of earlier runs into ``out_dir`` stay listed (see :func:`read_earlier_results`): a
        photo processed again replaces its own earlier result; no other photo takes its folder.
        """
        from focus.apps.summary import write_summary

        t_start = time.perf_counter()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temporaries(out_dir)
        if removed:
            log.info("removed %d temporary folders of an interrupted run", removed)
        items, outcomes = self._collect(inputs, out_dir)
        earlier = read_earlier_results(out_dir)
        folders = output_stems(items, SUMMARY_FILES, {o.source: o.folder for o in earlier})
        self._process(items, out_dir, folders, outcomes)
        order = {it.key: i for i, it in enumerate(items)}
        outcomes.sort(key=lambda o: (o.status == "ignored", order.get(o.source, -1) if o.status != "ignored" else 0))
        rewritten = {o.folder.lower() for o in outcomes if o.status == "ok"}
        report = self._report(out_dir, outcomes, [o for o in earlier if o.folder.lower() not in rewritten])
        report.seconds = round(time.perf_counter() - t_start, 3)
        write_summary(report)
        write_json_atomic(out_dir / "report.json", report.to_dict())
        return report

    def _collect(self, inputs: Sequence[str | Path], out_dir: Path) -> tuple[list[InputImage], list[ImageOutcome]]:
        """The images to process and the outcomes of the inputs skipped while finding them."""
        items, skipped = find_images(inputs, self.settings.recursive, exclude=out_dir)
        outcomes = [
            ImageOutcome(
                str(s.path), s.path.name, "failed" if s.failed else "ignored", s.reason, source=os.path.abspath(s.path)
            )
            for s in skipped
        ]
        for s in skipped:
            log.warning("%s", s)
        return items, outcomes

    def _process(
        self, items: list[InputImage], out_dir: Path, folders: dict[str, str], outcomes: list[ImageOutcome]
    ) -> None:
        """Read, detect and align each image, run the model on batches of faces, write the results."""
        shared = self._shared_csv_rows(items)
        pending: list[_Pending] = []
        n_faces = 0
        bar = tqdm(items, desc="reconstruct", unit="image", disable=not self.settings.progress)
        for item in bar:
            t0 = time.perf_counter()
            try:
                if item.key in shared:
                    raise InputFileError(item.path, *shared[item.key])
                p = self._prepare(item)
            except InputFileError as exc:
                log.warning("skipping %s", exc)
                outcomes.append(_outcome(item, "failed", exc.problem + (f" ({exc.fix})" if exc.fix else "")))
                continue
            finally:
                self.timings["read_detect_align"] += time.perf_counter() - t0
            pending.append(p)
            n_faces += len(p.crops)
            if n_faces >= self.settings.batch_size:
                self._flush(pending, out_dir, folders, outcomes)
                n_faces = 0
        self._flush(pending, out_dir, folders, outcomes)
        bar.close()

    def _shared_csv_rows(self, items: list[InputImage]) -> dict[str, tuple[str, str]]:
        """``{input key: (problem, fix)}`` for the inputs whose landmark-CSV row fits another input
        too (``a.png`` for ``DIR1/a.png`` and ``DIR2/a.png``): no input gets another's landmarks."""
        if not isinstance(self.detector, CsvLandmarks):
            return {}
        users: dict[str, list[InputImage]] = {}
        for it in items:
            row = self.detector.row_for(it.name, it.path)
            if row is not None:
                users.setdefault(row, []).append(it)
        labels = source_labels(items)
        out = {}
        for row, group in users.items():
            if len(group) < 2:
                continue
            for it in group:
                out[it.key] = (
                    f"the row {row!r} of {self.detector.path} fits {len(group)} inputs "
                    f"({', '.join(str(g.path) for g in group[:3])}{', ...' if len(group) > 3 else ''})",
                    f"name each image in the CSV by a longer part of its path, e.g. {labels[it.key]!r}",
                )
        return out

    def _report(self, out_dir: Path, outcomes: list[ImageOutcome], earlier: list[ImageOutcome]) -> RunReport:
        m = self.model
        return RunReport(
            out_dir,
            outcomes,
            model={
                "checkpoint": str(m.checkpoint),
                "facemodel": str(m.facemodel_path),
                "crop_size": m.crop_size,
                "device": str(m.device),
                "misfit_prior": None if m.misfit_prior_path is None else str(m.misfit_prior_path),
                "segmentation": "unet" if m.unet is not None else "robust pseudo mask",
                "adaptation": _adapt_info(self.settings.adapt, self.perceptual_source, self.adapt_log),
            },
            detector={"name": self.detector.name, "licence": self.detector.licence},
            timings={k: round(v, 3) for k, v in self.timings.items()},
            earlier=earlier,
        )


def _outcome(item: InputImage, status: str, reason: str = "", **kw) -> ImageOutcome:
    return ImageOutcome(str(item.path), item.name, status, reason, source=item.key, **kw)


def read_earlier_results(out_dir: Path) -> list[ImageOutcome]:
    """The results listed in ``out_dir/report.json`` by an earlier run whose folders are still there
    (``earlier=True``); none when there is no report. A report that cannot be read is passed over
    with a warning (its result folders stay on disk, unlisted)."""
    path = Path(out_dir) / "report.json"
    if not path.is_file():
        return []
    try:
        images = json.loads(path.read_text(encoding="utf-8"))["images"]
        found = [_earlier_outcome(out_dir, d) for d in images if isinstance(d, dict) and d.get("status") == "ok"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        log.warning("%s: cannot read the earlier report (%s); its results are not listed", path, exc)
        return []
    return [o for o in found if o is not None]


def _earlier_outcome(out_dir: Path, d: dict) -> ImageOutcome | None:
    """One ``ok`` entry of an earlier report, or ``None`` when its folder is gone or not a plain sub-folder."""
    folder = d.get("folder")
    if (
        not isinstance(folder, str)
        or not folder
        or Path(folder).is_absolute()
        or ".." in Path(folder).parts
        or not (Path(out_dir) / folder).is_dir()
    ):
        return None
    faces = [
        {**f, "folder": f"{folder}/face_{int(f['face'])}"}
        for f in d.get("faces") or []
        if isinstance(f, dict) and isinstance(f.get("face"), int)
    ]
    path = str(d.get("path", ""))
    return ImageOutcome(
        path,
        str(d.get("name", "")),
        "ok",
        folder=folder,
        faces=faces,
        notes=[str(n) for n in d.get("notes") or []],
        source=str(d.get("source") or os.path.abspath(path)),
        earlier=True,
    )


def _adapt_info(a: AdaptSettings, perceptual: str | None, batches: list[dict]) -> dict | None:
    if not a.enabled:
        return None
    from focus.train.settings import settings_dict

    return {
        "rounds": a.rounds,
        "seg_steps": a.seg_steps,
        "rec_steps": a.rec_steps,
        "encoder_lr": a.em.encoder_optim.lr,
        "unet_lr": a.em.unet_optim.lr,
        "rec_weights": settings_dict(a.em.rec_weights),
        "seg_weights": settings_dict(a.em.seg_weights),
        "perceptual": perceptual,
        "batches": batches,
    }


def load_adapt_perceptual(choice: str | Path | None, checkpoint: Path) -> tuple | None:
    """``(network, source)``: the frozen face-recognition network used by test-time adaptation
    and the file it came from, or ``None`` for none.

    ``choice``: ``"auto"`` -- the identity network the pipeline trains (``idnet.pt`` beside the
    checkpoint) when it exists, else none; ``None`` / ``"none"`` -- none; ``"arcface:FILE"`` -- an
    insightface iResNet-50 ``backbone.pth``; any other value -- an identity-network file of
    :mod:`focus.idnet`.

    Raises:
        InputFileError: a named file that does not exist, cannot be read, holds pickled Python
            objects (refused, never run) or is another kind of file (e.g. a FOCUS checkpoint).
    """
    from focus.idnet.network import load_identity_net
    from focus.nets.perceptual import PerceptualNet

    if choice is None or str(choice) == "none":
        return None
    if str(choice) == "auto":
        p = Path(checkpoint).parent / "idnet.pt"
        return (load_identity_net(p), str(p)) if p.is_file() else None
    text = str(choice)
    arcface = text.startswith("arcface:")
    path = Path(text[len("arcface:") :] if arcface else text)
    if not path.is_file():
        raise InputFileError(
            path,
            "identity network for --adapt-identity not found",
            "name models/idnet.pt, arcface:backbone.pth, or use auto / none",
        )
    try:
        return (PerceptualNet.from_arcface(path) if arcface else load_identity_net(path)), text
    except InputFileError:  # names the file and what it is (or that it was refused)
        raise
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise InputFileError(
            path,
            f"not a usable identity network ({exc})",
            "name an idnet.pt written by the idnet stage or arcface:<insightface backbone.pth>",
        ) from exc


def save_untrained_checkpoint(
    path: str | Path,
    facemodel_path: str | Path,
    image_size: int = 64,
    encoder_arch: str = "resnet18",
    unet_width: int = 16,
    unet_depth: int = 4,
    seed: int = 0,
) -> Path:
    """A checkpoint in the training's format with freshly initialised networks (for tests and benchmarks).

    The encoder's zero-initialised head makes every prediction the mean face, frontal, at the
    default distance: the plumbing (alignment, rendering, paste-back) can be checked exactly, and
    speed does not depend on the weights.
    """
    from focus.coeffs import CoeffLayout
    from focus.nets.encoder import EncoderSettings
    from focus.nets.unet import UNetSettings
    from focus.train.settings import settings_dict
    from focus.train.state import save_checkpoint

    fm = load_face_model(facemodel_path)
    layout = CoeffLayout.for_model(fm)
    es, us = EncoderSettings(arch=encoder_arch), UNetSettings(base_width=unet_width, depth=unet_depth)
    torch.manual_seed(seed)
    enc, unet = ReconstructionEncoder(layout, es), SegmentationUNet(us)
    return save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "layout": [layout.n_id, layout.n_exp, layout.n_albedo],
            "encoder_settings": settings_dict(es),
            "unet_settings": settings_dict(us),
            "render_settings": settings_dict(RenderSettings(image_size=int(image_size))),
            "facemodel": str(facemodel_path),
            "nets": {"encoder": enc.state_dict(), "unet": unet.state_dict()},
        },
    )


# ---------------------------------------------------------------------------- small helpers
def named_coefficients(c: dict[str, np.ndarray]) -> dict:
    """The coefficient vector with named, documented fields (JSON-able)."""
    pitch, yaw, roll = (float(a) for a in c["angles"])
    sh = np.asarray(c["sh"], np.float64).reshape(3, 9)
    return {
        "identity": np.asarray(c["id"], np.float64).tolist(),
        "expression": np.asarray(c["exp"], np.float64).tolist(),
        "albedo": np.asarray(c["albedo"], np.float64).tolist(),
        "rotation": {
            "pitch_rad": pitch,
            "yaw_rad": yaw,
            "roll_rad": roll,
            "pitch_deg": math.degrees(pitch),
            "yaw_deg": math.degrees(yaw),
            "roll_deg": math.degrees(roll),
            "convention": "R = Rz(roll) Ry(yaw) Rx(pitch), see focus.render.camera",
        },
        "translation_mm": np.asarray(c["trans"], np.float64).tolist(),
        "sh": {
            "red": sh[0].tolist(),
            "green": sh[1].tolist(),
            "blue": sh[2].tolist(),
            "convention": "9 SH coefficients per colour added to the ambient light, see focus.render.shading",
        },
        "units": "identity, expression and albedo in standard deviations of the face model",
    }


def landmark_fit(model_landmarks: np.ndarray, face: Face) -> dict:
    """How well the projected model lines up with the detector (image pixels and normalised by the
    detector's eye distance): the five alignment points always, the 68 points when detected."""
    iod = max(face.eye_distance, 1e-6)
    d5 = np.linalg.norm(five_points(model_landmarks) - face.points5, axis=-1)
    out = {"px5": float(d5.mean()), "nme5": float(d5.mean() / iod), "eye_distance_px": face.eye_distance}
    if face.landmarks68 is not None:
        d68 = np.linalg.norm(model_landmarks - face.landmarks68, axis=-1)
        out.update({"px68": float(d68.mean()), "nme68": float(d68.mean() / iod)})
    return out


__all__ = [
    "DEFAULT_MODEL",
    "FaceResult",
    "FocusModel",
    "ImageOutcome",
    "ReconstructSettings",
    "Reconstructor",
    "RunReport",
    "alignment_matrix",
    "landmark_fit",
    "load_focus_model",
    "named_coefficients",
    "read_earlier_results",
    "remove_stale_temporaries",
    "resolve_device",
    "run_model",
    "save_untrained_checkpoint",
]
