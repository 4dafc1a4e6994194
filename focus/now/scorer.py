"""The NoW score: per image, per challenge and over all images.

Per image (:func:`score_prediction`), as the official scorer computes it:

1. crop the scan around the face with its 7 landmarks (:func:`focus.now.alignment.crop_scan`);
2. similarity Procrustes from the 7 predicted landmarks to the 7 scan landmarks, reflections
   allowed like the official port of MATLAB's ``procrustes``, applied to all predicted vertices.
   Metrical protocol: the fitted rotation and translation are applied with the fixed scale of
   the declared unit instead of the fitted scale, exactly as the official metrical scorer does
   (its translation was fitted together with the fitted scale, so the start is off by
   ``(unit_scale - fitted_scale) R mean(pred_landmarks)``; the refinement removes that offset);
3. rigid refinement of scale (non-metrical only), rotation and translation minimising the sum of
   squared distances of the cropped scan vertices to the predicted surface;
4. the error of each cropped scan vertex is its exact unsigned distance to that surface (mm).

Statistics pool the errors of all scan vertices of all images (:func:`summarize`): median, mean
and standard deviation (``np.std``, ``ddof=0``), per challenge and over all.

Like the official reader, the scan landmarks are rounded to float32 before use.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from focus.errors import FocusError, InputFileError
from focus.geometry.mesh_io import read_mesh
from focus.io_utils import atomic_path, write_json_atomic, write_text_atomic
from focus.now.alignment import (
    UNIT_TO_MM,
    RefinementSettings,
    Similarity,
    crop_sphere,
    procrustes,
    refine_alignment,
)
from focus.now.landmark_io import read_landmarks
from focus.now.layout import CHALLENGES, NowDataset, NowImage, find_prediction
from focus.now.plots import cumulative_error_curve, plot_cumulative_errors
from focus.now.pp_io import read_pp

#: The refinement settings of the official protocol.
DEFAULT_REFINEMENT = RefinementSettings()


class MissingPredictionsError(FocusError):
    """Some listed images have no (complete) prediction."""

    def __init__(self, missing: list[str], predictions: Path, listing: Path | None = None) -> None:
        self.missing = list(missing)
        shown = "\n  ".join(self.missing[:20])
        more = f"\n  ... and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
        where = f" (full list in {listing})" if listing is not None else ""
        super().__init__(
            f"{predictions}: {len(self.missing)} prediction(s) missing{where} (each needs "
            f"<IMG>.obj or .ply and <IMG>.npy or .txt):\n  {shown}{more}\n"
            "Pass --allow-missing to score the others and report the count."
        )


@dataclass(frozen=True)
class ImageScore:
    """The score of one prediction.

    Attributes:
        errors: ``(K,)`` distance of each cropped scan vertex to the aligned prediction, mm.
        procrustes: landmark similarity applied to the prediction (``rotation`` may be a
            reflection, like the official scorer's).
        refinement: the similarity applied after it (scale fixed to 1 in the metrical protocol).
        iterations: refinement iterations.
        converged: whether the refinement met its tolerance.
        landmark_scale: the scale of the landmark Procrustes fit (scan mm per prediction unit),
            also in the metrical protocol, where the unit's scale is applied instead.
    """

    errors: np.ndarray
    procrustes: Similarity
    refinement: Similarity
    iterations: int
    converged: bool
    landmark_scale: float = float("nan")

    @property
    def reflection(self) -> bool:
        return bool(np.linalg.det(self.procrustes.rotation) < 0)


def score_prediction(
    scan_vertices: np.ndarray,
    scan_landmarks: np.ndarray,
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    pred_landmarks: np.ndarray,
    metrical_unit: str | None = None,
    settings: RefinementSettings = DEFAULT_REFINEMENT,
    cropped: bool = False,
) -> ImageScore:
    """Score one prediction against one scan (steps 1-4 of the module docstring).

    Args:
        scan_vertices: ``(N, 3)`` scan vertices, mm (already cropped if ``cropped``).
        scan_landmarks: ``(7, 3)`` scan landmarks, mm.
        pred_vertices, pred_faces: the predicted mesh ``(V, 3)``, ``(F, 3)``.
        pred_landmarks: ``(7, 3)`` predicted landmarks in the mesh's frame.
        metrical_unit: ``None`` for the standard protocol, or the prediction's unit
            (``"mm"``, ``"cm"``, ``"m"``) for the metrical one.
        settings: refinement settings (``fit_scale`` is set from the protocol).
    """
    scan = np.asarray(scan_vertices, dtype=np.float64)
    if not cropped:
        centre, radius = crop_sphere(scan_landmarks)
        scan = scan[np.linalg.norm(scan - centre, axis=1) <= radius]
    if len(scan) == 0:
        raise ValueError("no scan vertex lies inside the face crop (check the scan landmarks)")
    tf, _ = procrustes(scan_landmarks, pred_landmarks, scaling=True, allow_reflection=True)
    landmark_scale = float(tf.scale)
    if metrical_unit is not None:
        if metrical_unit not in UNIT_TO_MM:
            raise ValueError(f"unknown unit '{metrical_unit}', use one of {sorted(UNIT_TO_MM)}")
        # As the official metrical scorer: fitted rotation and translation, the unit's scale.
        tf = Similarity(UNIT_TO_MM[metrical_unit], tf.rotation, tf.translation)
    aligned = tf.apply(pred_vertices)
    settings = dataclasses.replace(settings, fit_scale=metrical_unit is None)
    result = refine_alignment(scan, aligned, pred_faces, settings)
    return ImageScore(
        errors=result.closest.distance,
        procrustes=tf,
        refinement=result.transform,
        iterations=result.iterations,
        converged=result.converged,
        landmark_scale=landmark_scale,
    )


#: A declared metrical unit is doubted when the landmarks fit at a scale this far from it.
SCALE_WARNING_FACTOR = 10.0


def metrical_scale_warning(landmark_scale: float, metrical_unit: str) -> str | None:
    """A warning when the landmark fit's scale contradicts the declared unit by 10x or more.

    Args:
        landmark_scale: the Procrustes scale, scan mm per prediction unit.
        metrical_unit: the declared unit (``"mm"``, ``"cm"`` or ``"m"``).
    """
    unit_scale = UNIT_TO_MM[metrical_unit]
    ratio = landmark_scale / unit_scale
    if not (np.isfinite(ratio) and ratio > 0):
        return None
    if 1.0 / SCALE_WARNING_FACTOR < ratio < SCALE_WARNING_FACTOR:
        return None
    likely = min(UNIT_TO_MM, key=lambda u: abs(np.log(landmark_scale / UNIT_TO_MM[u])))
    size = "small" if ratio > 1 else "large"
    return (
        f"the prediction is {max(ratio, 1 / ratio):.3g}x too {size} for --metrical {metrical_unit} "
        f"(its landmarks fit the scan at {landmark_scale:.4g} mm per unit); its unit looks like "
        f"'{likely}', and the metrical errors are not meaningful with a wrong unit"
    )


# ----------------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class NowEvaluation:
    """Scores of a predictions folder on a NoW image list.

    Attributes:
        images: the scored images, in list order.
        scores: their :class:`ImageScore`, same order.
        missing: the listed images without a complete prediction.
        challenge: the challenge evaluated, or ``None`` for all.
        metrical_unit: ``None`` (standard protocol) or the declared unit.
        seconds: wall time of the scoring.
        warnings: per-image problems that do not stop the scoring (``<image key>: <problem>``),
            e.g. a metrical unit the prediction's size contradicts.
    """

    images: list[NowImage]
    scores: list[ImageScore]
    missing: list[NowImage]
    challenge: str | None
    metrical_unit: str | None
    settings: RefinementSettings = field(default_factory=RefinementSettings)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def errors(self, challenge: str | None = None) -> np.ndarray:
        """Pooled errors (mm) of one challenge (``None``: all scored images)."""
        arrs = [
            s.errors
            for im, s in zip(self.images, self.scores, strict=True)
            if challenge is None or im.challenge == challenge
        ]
        return np.concatenate(arrs) if arrs else np.zeros(0)

    def challenges(self) -> list[str]:
        return [self.challenge] if self.challenge is not None else list(CHALLENGES)

    def summary(self) -> dict[str, dict]:
        """Per challenge and ``all``: median, mean, std (mm), num_images, num_missing, num_vertices."""
        out: dict[str, dict] = {}
        for name in self.challenges() + ["all"]:
            ch = None if name == "all" else name
            stats = summarize(self.errors(ch))
            stats["num_images"] = sum(1 for im in self.images if ch is None or im.challenge == ch)
            stats["num_missing"] = sum(1 for im in self.missing if ch is None or im.challenge == ch)
            out[name] = stats
        return out


def summarize(errors: np.ndarray) -> dict:
    """Median, mean and std (``ddof=0``) of pooled errors; ``None`` when there are none."""
    e = np.asarray(errors, dtype=np.float64)
    if len(e) == 0:
        return {"median": None, "mean": None, "std": None, "num_vertices": 0}
    return {
        "median": float(np.median(e)),
        "mean": float(np.mean(e)),
        "std": float(np.std(e)),
        "num_vertices": int(len(e)),
    }


def find_missing(dataset_images: list[NowImage], predictions: Path) -> list[NowImage]:
    return [im for im in dataset_images if not find_prediction(predictions, im).complete]


def evaluate_now(
    dataset: NowDataset,
    predictions: str | Path,
    challenge: str | None = None,
    metrical_unit: str | None = None,
    allow_missing: bool = False,
    settings: RefinementSettings = DEFAULT_REFINEMENT,
    progress: bool = True,
    missing_listing: Path | None = None,
    on_image: Callable[[NowImage, ImageScore], None] | None = None,
) -> NowEvaluation:
    """Score every listed image (optionally of one challenge) that has a prediction.

    Raises:
        InputFileError: a listed scan, scan landmark file or image is missing, or a prediction
            file is malformed (the message names the file).
        MissingPredictionsError: predictions are missing and ``allow_missing`` is false. When
            ``missing_listing`` is given, the missing images are listed there (one per line).
    """
    predictions = Path(predictions)
    if not predictions.is_dir():
        raise InputFileError(predictions, "predictions folder not found")
    if metrical_unit is not None and metrical_unit not in UNIT_TO_MM:
        raise FocusError(f"unknown unit '{metrical_unit}' for --metrical; use one of {', '.join(UNIT_TO_MM)}")
    images = dataset.images(challenge)
    dataset.check(images)
    missing = find_missing(images, predictions)
    if missing_listing is not None:
        if missing:
            write_text_atomic(missing_listing, "".join(im.relpath + "\n" for im in missing))
        else:
            Path(missing_listing).unlink(missing_ok=True)  # a stale list from an earlier run
    if missing and not allow_missing:
        raise MissingPredictionsError([im.relpath for im in missing], predictions, missing_listing)
    missing_set = set(missing)
    todo = [im for im in images if im not in missing_set]
    if not todo:
        which = f" of challenge {challenge}" if challenge is not None else ""
        raise FocusError(
            f"{predictions}: none of the {len(images)} image(s){which} listed in {dataset.image_list} has a "
            "prediction, so there is nothing to score (each needs <subject>/<challenge>/<IMG>.obj or .ply and "
            "<IMG>.npy or .txt; is this the right predictions folder?)"
        )
    start = time.perf_counter()
    scans: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    scored: list[NowImage] = []
    scores: list[ImageScore] = []
    notes: list[str] = []
    from tqdm import tqdm

    for im in tqdm(todo, desc="NoW", unit="image", disable=not progress):
        if im.subject not in scans:
            scans.clear()  # lists are grouped by subject; keep one scan in memory
            scans[im.subject] = load_cropped_scan(dataset, im.subject)
        scan, scan_lmk = scans[im.subject]
        files = find_prediction(predictions, im)
        assert files.mesh is not None and files.landmarks is not None
        verts, faces = read_mesh(files.mesh, need_faces=True)
        lmk = read_landmarks(files.landmarks)
        try:
            score = score_prediction(scan, scan_lmk, verts, faces, lmk, metrical_unit, settings, cropped=True)
        except ValueError as exc:
            raise InputFileError(files.landmarks, f"cannot align this prediction ({exc})") from exc
        if metrical_unit is not None:
            note = metrical_scale_warning(score.landmark_scale, metrical_unit)
            if note is not None:
                notes.append(f"{im.key}: {note}")
        scored.append(im)
        scores.append(score)
        if on_image is not None:
            on_image(im, score)
    return NowEvaluation(
        images=scored,
        scores=scores,
        missing=missing,
        challenge=challenge,
        metrical_unit=metrical_unit,
        settings=settings,
        seconds=time.perf_counter() - start,
        warnings=notes,
    )


def load_cropped_scan(dataset: NowDataset, subject: str) -> tuple[np.ndarray, np.ndarray]:
    """The cropped scan vertices ``(K, 3)`` and the 7 scan landmarks ``(7, 3)`` of a subject."""
    scan_path = dataset.scan_path(subject)
    pp_path = dataset.scan_landmarks_path(subject)
    lmk = read_pp(pp_path).astype(np.float32).astype(np.float64)  # as the official reader
    verts, _ = read_mesh(scan_path, need_faces=False)
    centre, radius = crop_sphere(lmk)
    cropped = verts[np.linalg.norm(verts - centre, axis=1) <= radius]
    if len(cropped) == 0:
        raise InputFileError(pp_path, f"no vertex of {scan_path.name} lies inside the face crop these landmarks define")
    return cropped, lmk


# ------------------------------------------------------------------------------------ output
def save_evaluation(
    evaluation: NowEvaluation,
    out_json: str | Path,
    dataset: NowDataset | None = None,
    predictions: str | Path | None = None,
) -> dict:
    """Write the JSON summary, the per-image ``.npz`` and the cumulative-error PNG beside it.

    Returns:
        The JSON document.
    """
    out_json = Path(out_json)
    paths = output_paths(out_json)
    npz_path, png_path = paths["per_image"], paths["cumulative_error_plot"]
    summary = evaluation.summary()
    curves = {name: cumulative_error_curve(evaluation.errors(None if name == "all" else name)) for name in summary}
    protocol = (
        "NoW" if evaluation.metrical_unit is None else f"NoW metrical (prediction unit: {evaluation.metrical_unit})"
    )
    plot_cumulative_errors(curves, png_path, title=f"{protocol} cumulative error")

    scores = evaluation.scores
    offsets = np.concatenate([[0], np.cumsum([len(s.errors) for s in scores])]).astype(np.int64)
    arrays = {
        "image": np.array([im.key for im in evaluation.images], dtype=str),
        "challenge": np.array([im.challenge for im in evaluation.images], dtype=str),
        "errors": (np.concatenate([s.errors for s in scores]) if scores else np.zeros(0)).astype(np.float32),
        "offsets": offsets,
        "median": np.array([np.median(s.errors) for s in scores]),
        "mean": np.array([np.mean(s.errors) for s in scores]),
        "procrustes_scale": np.array([s.procrustes.scale for s in scores]),
        "procrustes_rotation": np.array([s.procrustes.rotation for s in scores]).reshape(-1, 3, 3),
        "procrustes_translation": np.array([s.procrustes.translation for s in scores]).reshape(-1, 3),
        "refine_scale": np.array([s.refinement.scale for s in scores]),
        "refine_rotation": np.array([s.refinement.rotation for s in scores]).reshape(-1, 3, 3),
        "refine_translation": np.array([s.refinement.translation for s in scores]).reshape(-1, 3),
        "iterations": np.array([s.iterations for s in scores], dtype=np.int64),
        "converged": np.array([s.converged for s in scores], dtype=bool),
        "reflection": np.array([s.reflection for s in scores], dtype=bool),
        "missing": np.array([im.key for im in evaluation.missing], dtype=str),
        "curve_x_mm": next(iter(curves.values()))[0],
    }
    for name, (_, y) in curves.items():
        arrays[f"curve_percent_{name}"] = y
    with atomic_path(npz_path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)

    doc = {
        "protocol": protocol,
        "challenge": evaluation.challenge or "all",
        "metrical_unit": evaluation.metrical_unit,
        "dataset": str(dataset.root) if dataset is not None else None,
        "image_list": str(dataset.image_list) if dataset is not None else None,
        "predictions": str(predictions) if predictions is not None else None,
        "units": "mm; errors pooled over the cropped scan vertices of all scored images",
        "results": summary,
        "missing": [im.relpath for im in evaluation.missing],
        "not_converged": [im.key for im, s in zip(evaluation.images, scores, strict=True) if not s.converged],
        "warnings": list(evaluation.warnings),
        "files": {"json": out_json.name, "per_image": npz_path.name, "cumulative_error_plot": png_path.name},
        "refinement": dataclasses.asdict(evaluation.settings),
        "seconds": round(evaluation.seconds, 3),
        "seconds_per_image": round(evaluation.seconds / max(1, len(scores)), 4),
    }
    write_json_atomic(out_json, doc)
    return doc


def output_paths(out_json: str | Path) -> dict[str, Path]:
    """The files a scoring run writes for ``out_json``: the JSON itself, ``<stem>_per_image.npz``,
    ``<stem>_cumulative_error.png`` and ``<stem>_missing.txt`` (only when images are missing)."""
    out_json = Path(out_json)
    stem = out_json.with_suffix("")
    return {
        "json": out_json,
        "per_image": stem.parent / f"{stem.name}_per_image.npz",
        "cumulative_error_plot": stem.parent / f"{stem.name}_cumulative_error.png",
        "missing": stem.parent / f"{stem.name}_missing.txt",
    }


def check_output_paths(out_json: str | Path) -> None:
    """Fail before any scoring when the outputs of ``out_json`` cannot be written.

    Raises:
        InputFileError: an output path is an existing folder, or a parent of it is a file.
    """
    for path in output_paths(out_json).values():
        if path.is_dir():
            raise InputFileError(path, "is a folder, not a file the scorer can write", "pass --out FILE.json")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InputFileError(
                        parent, f"is a file, so {path.name} cannot be written inside it", "pass --out FILE.json"
                    )
                break


def score_predictions_folder(
    dataset: str | Path,
    predictions: str | Path,
    out_json: str | Path,
    *,
    image_list: str | Path | None = None,
    challenge: str | None = None,
    metrical_unit: str | None = None,
    allow_missing: bool = False,
    settings: RefinementSettings = DEFAULT_REFINEMENT,
    progress: bool = False,
) -> dict:
    """Score a predictions folder on a NoW dataset folder and write the results (``focus now-eval``).

    Args:
        dataset: NoW dataset folder (see :mod:`focus.now.layout`).
        predictions: folder of ``<subject>/<challenge>/<IMG>.obj|.ply`` and ``<IMG>.npy|.txt``.
        out_json: the JSON summary to write (``.json`` is appended when missing); the per-image
            arrays, the cumulative error plot and, when images are missing, their list are
            written beside it (:func:`output_paths`).
        image_list: image list (default: the dataset's ``imagepathsvalidation.txt``).
        challenge: score one challenge only (``None``: all).
        metrical_unit: ``None`` (standard protocol) or the predictions' unit ``"mm"``, ``"cm"``
            or ``"m"`` (metrical protocol).
        allow_missing: score the images that have predictions and count the others (otherwise
            missing predictions are an error).
        settings: refinement settings.
        progress: show a progress bar.

    Returns:
        The JSON document written: ``results`` (per challenge and ``all``: median, mean, std in mm,
        num_images, num_missing, num_vertices), ``missing``, ``warnings``, ``files`` and run details.

    Raises:
        FocusError: bad input (an :class:`~focus.errors.InputFileError` names the file), missing
            predictions (:class:`MissingPredictionsError`), no prediction at all, or outputs that
            cannot be written (checked before scoring).
    """
    out_json = Path(out_json)
    if out_json.is_dir():
        raise InputFileError(out_json, "is a folder; --out names the JSON file to write", "e.g. --out now.json")
    if out_json.suffix.lower() != ".json":
        out_json = out_json.with_name(out_json.name + ".json")
    check_output_paths(out_json)
    ds = NowDataset.open(dataset, image_list)
    evaluation = evaluate_now(
        ds,
        predictions,
        challenge=challenge,
        metrical_unit=metrical_unit,
        allow_missing=allow_missing,
        settings=settings,
        progress=progress,
        missing_listing=output_paths(out_json)["missing"],
    )
    return save_evaluation(evaluation, out_json, ds, predictions)


def format_summary(summary: dict[str, dict]) -> str:
    """A small table, numbers rounded to 2 decimals like NoW reports."""
    rows = [f"{'challenge':<24}{'median':>8}{'mean':>8}{'std':>8}{'images':>8}{'missing':>9}"]
    for name, s in summary.items():

        def fmt(x: float | None) -> str:
            return f"{x:8.2f}" if x is not None else f"{'-':>8}"

        stats = f"{fmt(s['median'])}{fmt(s['mean'])}{fmt(s['std'])}"
        rows.append(f"{name:<24}{stats}{s['num_images']:>8}{s['num_missing']:>9}")
    return "\n".join(rows)
