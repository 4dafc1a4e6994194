"""The statistical misfit prior (``docs/method.md`` section 5).

Some face regions are fitted badly in a systematic way (eyebrows, eyes, lips, nostrils): the
encoder bends the shape to explain appearance the albedo model cannot produce. On synthetic faces
the truth is known, so the bias can be measured:

1. draw fresh faces like the training set's (shape, expression, albedo, pose, light and the
   painted details the model cannot represent) **without occluders**, render them at the
   training framing (:func:`render_misfit_set`, the ``synth`` generator);
2. crop them with the training's 5-point alignment from their detector-like landmarks and run
   the trained encoder (:func:`predict_crops`);
3. align each predicted neutral shape (identity only) **rigidly** to the true one
   (:func:`rigid_align`: rotation and translation, least squares over the vertices of one
   model region) and average the per-vertex difference: the **mean offset** ``(V, 3)`` mm (model
   frame) is the prior; the per-vertex spread (root mean square of the offsets around the mean)
   is kept for reports (:func:`estimate_misfit_prior`).

At inference the offset is subtracted from the predicted neutral shape before export and
evaluation (:meth:`MisfitPrior.apply`). The prior is stored with the model
(``models/misfit_prior.npz``, :func:`save_misfit_prior`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from focus.errors import InputFileError

FORMAT = "focus-misfit-prior-1"


@dataclass(frozen=True)
class MisfitPrior:
    """A misfit prior.

    Attributes:
        offset: ``(V, 3)`` mean offset of the prediction from the truth, model frame, mm.
        spread: ``(V,)`` root-mean-square deviation of the per-image offsets from ``offset``, mm.
        count: faces it was estimated on.
        region: model region used for the rigid alignment.
        model_name: the face model's name (the prior only fits that model's topology).
        checkpoint: the networks it was estimated for.
    """

    offset: np.ndarray
    spread: np.ndarray
    count: int
    region: str = "face"
    model_name: str = ""
    checkpoint: str = ""

    @property
    def num_vertices(self) -> int:
        return int(self.offset.shape[0])

    def apply(self, neutral: np.ndarray) -> np.ndarray:
        """``neutral`` ``(..., V, 3)`` (model frame, mm) minus the mean offset (a new array)."""
        v = np.asarray(neutral)
        if v.shape[-2:] != self.offset.shape:
            raise ValueError(f"neutral shapes {v.shape} do not match the prior's {self.offset.shape}")
        return (v - self.offset).astype(v.dtype, copy=False)


def save_misfit_prior(path: str | Path, prior: MisfitPrior) -> Path:
    """Write ``prior`` as ``.npz`` (atomically)."""
    from focus.io_utils import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(
            tmp,
            format=np.array(FORMAT),
            offset=prior.offset.astype(np.float32),
            spread=prior.spread.astype(np.float32),
            count=np.array(prior.count, np.int64),
            region=np.array(prior.region),
            model_name=np.array(prior.model_name),
            checkpoint=np.array(prior.checkpoint),
        )
    return path


def load_misfit_prior(path: str | Path, num_vertices: int | None = None) -> MisfitPrior:
    """Read a prior written by :func:`save_misfit_prior` (``num_vertices`` checks the topology)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "misfit prior not found", "run the misfit_prior stage (dvc repro misfit_prior)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise InputFileError(path, f"not a misfit prior (format {str(z['format'])!r})")
            prior = MisfitPrior(
                np.asarray(z["offset"], np.float64),
                np.asarray(z["spread"], np.float64),
                int(z["count"]),
                str(z["region"]),
                str(z["model_name"]),
                str(z["checkpoint"]),
            )
    except InputFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises many types on bad files
        raise InputFileError(path, f"unreadable misfit prior ({exc.__class__.__name__}: {exc})") from exc
    if prior.offset.ndim != 2 or prior.offset.shape[1] != 3 or prior.spread.shape != prior.offset.shape[:1]:
        raise InputFileError(path, f"offset {prior.offset.shape} / spread {prior.spread.shape} are not (V, 3) / (V,)")
    if num_vertices is not None and prior.num_vertices != num_vertices:
        raise InputFileError(
            path,
            f"prior has {prior.num_vertices} vertices but the face model has {num_vertices}",
            "re-run the misfit_prior stage for this face model",
        )
    return prior


# ---------------------------------------------------------------------------- estimation
def region_weights(face_model, region: str) -> np.ndarray:
    """``(V,)`` float weights: 1 on the vertices of ``region`` (``"all"``: every vertex)."""
    V = int(face_model.mean_shape.shape[0])
    if region == "all":
        return np.ones(V)
    if region not in face_model.regions:
        raise ValueError(
            f"face model {face_model.name!r} has no region {region!r}; known: {sorted(face_model.regions)} or 'all'"
        )
    return face_model.regions[region].cpu().numpy().astype(np.float64)


def rigid_align(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``src`` ``(N, V, 3)`` moved by the weighted least-squares rigid motion onto ``dst`` ``(N, V, 3)``.

    Per mesh: ``min_{R, t} sum_v w_v ||R src_v + t - dst_v||^2`` over proper rotations (Kabsch;
    :meth:`scipy.spatial.transform.Rotation.align_vectors`), applied to every vertex.
    """
    from scipy.spatial.transform import Rotation

    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 3 or src.shape[-1] != 3:
        raise ValueError(f"need two (N, V, 3) arrays of one shape, got {src.shape} and {dst.shape}")
    w = np.ones(src.shape[1]) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (src.shape[1],) or w.sum() <= 0:
        raise ValueError("weights must be (V,) with a positive sum")
    wn = w / w.sum()
    out = np.empty_like(src)
    for i in range(len(src)):
        cs, cd = wn @ src[i], wn @ dst[i]
        rot, _ = Rotation.align_vectors(dst[i] - cd, src[i] - cs, weights=w)
        out[i] = (src[i] - cs) @ rot.as_matrix().T + cd
    return out


def estimate_misfit_prior(
    pred_neutral: np.ndarray, true_neutral: np.ndarray, weights: np.ndarray, **meta
) -> MisfitPrior:
    """The prior from predicted and true neutral shapes ``(N, V, 3)`` (model frame, mm).

    ``weights`` ``(V,)`` selects the vertices of the rigid alignment; ``meta`` fills
    :class:`MisfitPrior`'s descriptive fields (``region``, ``model_name``, ``checkpoint``).
    """
    aligned = rigid_align(pred_neutral, true_neutral, weights)
    d = aligned - np.asarray(true_neutral, np.float64)  # (N, V, 3)
    offset = d.mean(0)
    spread = np.sqrt(((d - offset) ** 2).sum(-1).mean(0))
    return MisfitPrior(offset, spread, int(len(d)), **meta)


def vertex_errors(pred_neutral: np.ndarray, true_neutral: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(N, V)`` per-vertex distances (mm) after :func:`rigid_align` (the prior's own measure)."""
    aligned = rigid_align(pred_neutral, true_neutral, weights)
    return np.linalg.norm(aligned - np.asarray(true_neutral, np.float64), axis=-1)


def prior_diagnostics(pred_neutral: np.ndarray, true_neutral: np.ndarray, weights: np.ndarray) -> dict:
    """How much the prior helps on its own data and on held-out faces (two-fold, mm, region vertices).

    ``in_sample``: the prior of all faces applied to all faces. ``cross_validated``: a prior from
    one half applied to the other half and vice versa (an honest estimate for new faces).
    """
    sel = np.asarray(weights) > 0
    n = len(pred_neutral)
    full = estimate_misfit_prior(pred_neutral, true_neutral, weights)

    def mean_err(pred, true) -> float:
        return float(vertex_errors(pred, true, weights)[:, sel].mean())

    before = mean_err(pred_neutral, true_neutral)
    after_in = mean_err(full.apply(pred_neutral), true_neutral)
    half = n // 2
    folds = [(np.arange(half), np.arange(half, n)), (np.arange(half, n), np.arange(half))]
    cv_err, cv_before = [], []
    for fit, test in folds:
        p = estimate_misfit_prior(pred_neutral[fit], true_neutral[fit], weights)
        cv_err.append(
            vertex_errors(p.apply(pred_neutral[test]), true_neutral[test], weights)[:, sel].mean() * len(test)
        )
        cv_before.append(vertex_errors(pred_neutral[test], true_neutral[test], weights)[:, sel].mean() * len(test))
    return {
        "mean_vertex_error_mm": before,
        "mean_vertex_error_in_sample_with_prior_mm": after_in,
        "mean_vertex_error_cross_validated_mm": float(sum(cv_before) / n),
        "mean_vertex_error_cross_validated_with_prior_mm": float(sum(cv_err) / n),
    }


# ---------------------------------------------------------------------------- data
def render_misfit_set(
    face_model,
    synth_settings,
    image_size: int,
    count: int,
    seed: int,
    render_backend: str = "torch",
    ambient: float = 0.8,
    distance: float = 1000.0,
    focal_at_224: float = 1015.0,
    workers: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Fresh occluder-free synthetic faces at the training framing (the ``synth`` generator).

    Faces are drawn as the training set's (``synth_settings``: sampling, appearance, backgrounds,
    camera effects, landmark noise) from the generator's ``test`` set with base seed ``seed``, so
    they are never training images.

    Returns:
        ``images`` ``(N, S, S, 3)`` uint8, ``landmarks`` ``(N, 68, 2)`` detector-like landmarks
        (pixels), ``id`` ``(N, K_id)`` and ``exp`` ``(N, K_exp)`` true coefficients.
    """
    from focus.synth.generator import CameraSpec, ImageJob, run_jobs

    s = replace(synth_settings, seed=int(seed), workers=int(workers))
    cam = CameraSpec(int(image_size), s.supersample, float(distance), float(focal_at_224))
    jobs = [ImageJob("test", i, cam, occluder="") for i in range(int(count))]
    images, lms, ids, exps = [], [], [], []
    for r in run_jobs(
        face_model, s, jobs, workers, render_backend, ambient, progress="misfit set" if progress else None
    ):
        images.append(r.result.image)
        lms.append(r.result.landmarks)
        ids.append(np.asarray(r.draw.id, np.float64))
        exps.append(np.asarray(r.draw.exp, np.float64))
    return {"images": np.stack(images), "landmarks": np.stack(lms), "id": np.stack(ids), "exp": np.stack(exps)}


def align_crops(images: np.ndarray, landmarks: np.ndarray, model) -> np.ndarray:
    """``(N, 3, S, S)`` float32 crops of uint8 images ``(N, H, W, 3)`` with the training's 5-point
    alignment (``model``: :class:`focus.predictor.FocusModel`), as :class:`focus.data.FaceImageFolder` crops."""
    from focus.data.alignment import estimate_alignment, warp_to_crop

    out = []
    for img, lm in zip(images, landmarks):
        M = estimate_alignment(np.asarray(lm, np.float64), model.template, model.data.align_method)
        crop = warp_to_crop(np.asarray(img, np.float32) / 255.0, M, model.crop_size, order=1, mode=model.data.border)
        out.append(np.clip(crop, 0.0, 1.0).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def predict_neutral(model, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """``(N, V, 3)`` predicted neutral shapes of crops ``(N, 3, S, S)`` (``model``: a
    :class:`focus.predictor.FocusModel`; the one forward pass, :func:`focus.eval.predict.predict_batch`)."""
    import torch

    from focus.eval.predict import predict_batch

    out = []
    for s in range(0, len(crops), batch_size):
        res = predict_batch(model, torch.from_numpy(crops[s : s + batch_size]), ())
        out.append(res["neutral"].double().cpu().numpy())
    return np.concatenate(out)


def true_neutral(face_model, ids: np.ndarray) -> np.ndarray:
    """``(N, V, 3)`` true neutral shapes (identity only) of identity coefficients ``(N, K_id)``."""
    import torch

    with torch.no_grad():
        fm = face_model.to("cpu")
        v = fm.shape(torch.as_tensor(np.asarray(ids), dtype=fm.mean_shape.dtype))
    return v.double().numpy()


# ---------------------------------------------------------------------------- pictures
def plot_misfit_prior(prior: MisfitPrior, face_model, path: str | Path, title: str = "") -> None:
    """Frontal views of the mean face coloured by the offset magnitude, its component along the
    surface normal (positive: the prediction lies in front of the truth) and the spread (mm)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.tri import Triangulation

    from focus.geometry.normals import vertex_normals
    from focus.io_utils import atomic_path

    v = face_model.mean_shape.detach().cpu().double().numpy()
    f = face_model.triangles.cpu().numpy()
    normals = vertex_normals(v, f)
    face = face_model.regions.get("face")
    keep = np.ones(len(v), bool) if face is None else face.cpu().numpy()
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    tri = f[keep[f].all(1) & (fn[:, 2] > 0)]  # face-region triangles seen from the front
    mag = np.linalg.norm(prior.offset, axis=1)
    normal = (prior.offset * normals).sum(1)
    panels = [
        ("offset magnitude |mean offset| (mm)", mag, "viridis", (0.0, float(np.percentile(mag[keep], 99.5)))),
        ("offset along the normal (mm, + = in front)", normal, "RdBu_r", None),
        (
            "spread: RMS around the mean (mm)",
            prior.spread,
            "magma",
            (0.0, float(np.percentile(prior.spread[keep], 99.5))),
        ),
    ]
    fig = Figure(figsize=(13.5, 5.2), dpi=100)
    FigureCanvasAgg(fig)
    tr = Triangulation(v[:, 0], v[:, 1], tri)
    for k, (name, val, cmap, lim) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        if lim is None:
            m = float(np.percentile(np.abs(val[keep]), 99.5)) or 1.0
            lim = (-m, m)
        pc = ax.tripcolor(tr, val, cmap=cmap, shading="gouraud", vmin=lim[0], vmax=max(lim[1], lim[0] + 1e-6))
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(name, fontsize=10)
        fig.colorbar(pc, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(
        title or f"misfit prior ({prior.count} occluder-free synthetic faces, rigid alignment on '{prior.region}')",
        fontsize=11,
    )
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


def region_summary(prior: MisfitPrior, face_model) -> dict[str, float]:
    """Mean offset magnitude (mm) per model region (the regions the method names first)."""
    mag = np.linalg.norm(prior.offset, axis=1)
    out = {"all": float(mag.mean())}
    for name in ("face", "brows", "eyes", "lips", "nose", "nostrils", "cheeks", "forehead"):
        r = face_model.regions.get(name)
        if r is not None and bool(r.any()):
            out[name] = float(mag[r.cpu().numpy()].mean())
    return out


__all__ = [
    "MisfitPrior",
    "align_crops",
    "estimate_misfit_prior",
    "load_misfit_prior",
    "plot_misfit_prior",
    "predict_neutral",
    "prior_diagnostics",
    "region_summary",
    "region_weights",
    "render_misfit_set",
    "rigid_align",
    "save_misfit_prior",
    "true_neutral",
    "vertex_errors",
]
