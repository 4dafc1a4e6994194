"""The evaluation stages of the DVC pipeline (``stages/misfit_prior.py``, ``eval_now.py``,
``eval_ar.py``, ``report.py``).

Models compared (:func:`methods`; the keys are the top-level keys of every metrics file):

=====================  ==================================================================  ==============
key                    what                                                                 tables
=====================  ==================================================================  ==============
``mean_face``          the face model's mean shape (identity 0, neutral expression) for     NoW
                       every image: the trivial shape baseline, scored like the others
``autoencoder``        the initialised encoder (``models/focus_init.pt``) without            NoW, AR
                       segmentation: a plain model-based autoencoder (every rendered
                       pixel counts as face)
``pseudo_mask``        the initialised encoder with the robust outlier process' label       AR (its shape
                       ``z(p)`` as segmentation (the pseudo masks of the U-Net               is the
                       pre-training)                                                         autoencoder's)
``focus_round_XX``     FOCUS after EM round ``XX`` (``checkpoints/em/round_XX.pt``)         NoW, AR
``focus``              the trained FOCUS model (``models/focus.pt``)                         NoW, AR
``focus_prior``        FOCUS with the misfit prior subtracted (``models/misfit_prior.npz``)  NoW (same masks
                                                                                             as ``focus``)
``all_face``           the trained FOCUS model's render with every rendered pixel called    AR (its shape
                       face: the trivial all-face mask inside FOCUS's own face region       is ``focus``'s)
=====================  ==================================================================  ==============

The AR tables thus carry both trivial masks beside every model: ``all_face`` (and the
``autoencoder``'s, the same inside the initialised encoder's face region) and ``pseudo_mask``.

Stages:

* :func:`run_misfit_prior` -- the prior (``models/misfit_prior.npz``), its pictures and summary
  (``reports/misfit_prior/``).
* :func:`run_eval_now` -- predictions of every model on the NoW-layout set in the NoW submission
  layout, scored with the NoW scorer (:func:`focus.eval.now_predictions.score_now`):
  ``reports/eval/now/metrics.json`` (``<key>.<challenge>.{median,mean,std}``, mm, challenge in the
  four NoW challenges and ``all``; ``id_corr``, the identity correlation of the first 10
  coefficients across images, where the set has true coefficients), cumulative error curves,
  examples; predictions and scorer outputs under ``data/eval/now/``.
* :func:`run_eval_ar` -- segmentation metrics on the AR-layout set per subset:
  ``reports/eval/ar/metrics.json`` (``<key>.<subset>.{accuracy,precision,recall,f1,iou,occluder_f1,
  occluder_iou}`` soft, ``..._std``, and the same under ``hard``; the ``occluder_*`` values are the
  occluder class's, :mod:`focus.eval.ar_metrics`), examples; per-image values under ``data/eval/ar/``.
* :func:`run_eval_celebahq` -- the same segmentation metrics on CelebAMask-HQ (``eval.celebahq_dir``)
  or on the AR-like set written in its layout (:mod:`focus.eval.celebahq`):
  ``reports/eval/celebahq/metrics.json`` (``<key>.celebahq.{...}``).
* :func:`run_report` -- target checks (``reports/eval/summary.json``), per-round plot,
  ``reports/README.md`` and the headline block of the project README (:mod:`focus.eval.report`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focus.config import from_dict
from focus.data import DataSettings
from focus.errors import InputFileError
from focus.eval.settings import EvalSettings, MisfitPriorSettings
from focus.io_utils import atomic_path, write_json_atomic
from focus.run_info import write_json_reproducible

log = logging.getLogger("focus.eval")

NOW_CHALLENGES: tuple[str, ...] = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
AR_SUBSETS: tuple[str, ...] = ("unoccluded", "sunglasses", "scarf")
OCCLUDED_SUBSETS: tuple[str, ...] = ("sunglasses", "scarf")


@dataclass(frozen=True)
class EvalPaths:
    """Where the evaluation reads and writes (defaults: the DVC layout, relative to the project root)."""

    init: Path = Path("models/focus_init.pt")
    final: Path = Path("models/focus.pt")
    em_run_dir: Path = Path("checkpoints/em")
    misfit_prior: Path = Path("models/misfit_prior.npz")
    misfit_reports: Path = Path("reports/misfit_prior")
    reports: Path = Path("reports/eval")
    work: Path = Path("data/eval")
    train_reports: Path = Path("reports/train")
    report_md: Path = Path("reports/README.md")
    project_readme: Path = Path("README.md")
    headline_fallback: Path = Path("reports/README_headline.md")
    identity_oracle: Path = Path("bench/results/identity_oracle_cpu.json")
    seeds: Path = Path("bench/results/seeds_cpu.json")
    constant_face: Path = Path("bench/results/now_constant_face.json")

    def round_checkpoint(self, r: int) -> Path:
        return self.em_run_dir / f"round_{r:02d}.pt"


MEAN_FACE = "mean_face"
ALL_FACE = "all_face"


@dataclass(frozen=True)
class Method:
    """One row of the tables: a checkpoint (``None``: no network, the mean face), a segmentation and
    whether the misfit prior is applied."""

    key: str
    label: str
    checkpoint: Path | None
    segmentation: str
    prior: bool = False
    round: int | None = None


def methods(
    rounds: int,
    paths: EvalPaths = EvalPaths(),
    with_prior: bool = True,
    with_mean_face: bool = False,
    with_all_face: bool = False,
) -> list[Method]:
    """The compared models, in table order (see the module docstring)."""
    out = []
    if with_mean_face:
        out.append(Method(MEAN_FACE, "mean face (identity 0, neutral expression) for every image", None, "none"))
    if with_all_face:
        out.append(Method(ALL_FACE, "all-face mask (every pixel FOCUS renders called face)", paths.final, "none"))
    out += [
        Method("autoencoder", "autoencoder (initialised encoder, no segmentation)", paths.init, "none"),
        Method("pseudo_mask", "robust pseudo mask z(p) (initialised encoder)", paths.init, "pseudo"),
    ]
    for r in range(1, int(rounds) + 1):
        out.append(
            Method(f"focus_round_{r:02d}", f"FOCUS after EM round {r}", paths.round_checkpoint(r), "unet", round=r)
        )
    out.append(Method("focus", "FOCUS", paths.final, "unet"))
    if with_prior:
        out.append(Method("focus_prior", "FOCUS + misfit prior", paths.final, "unet", prior=True))
    return out


# ---------------------------------------------------------------------------- shared setup
@dataclass
class EvalContext:
    """Settings and shared inputs of an evaluation stage."""

    params: dict
    settings: EvalSettings
    data: DataSettings
    facemodel_path: Path
    rounds: int
    paths: EvalPaths
    face_model: Any = None
    _digests: dict = field(default_factory=dict)

    def digest(self, path: Path) -> str:
        from focus.train.state import file_digest

        key = str(path)
        if key not in self._digests:
            self._digests[key] = file_digest(path)
        return self._digests[key]


def make_context(params: dict, paths: EvalPaths = EvalPaths()) -> EvalContext:
    es = from_dict(EvalSettings, params.get("eval"), "params.yaml:eval")
    ds = from_dict(DataSettings, params.get("data"), "params.yaml:data")
    train = params.get("train") or {}
    fm = Path(train.get("facemodel") or "models/facemodel.npz")
    rounds = int((params.get("em") or {}).get("rounds", 0))
    if es.num_threads > 0:
        torch.set_num_threads(es.num_threads)
    from focus.facemodel.model import load_face_model

    return EvalContext(params, es, ds, fm, rounds, paths, load_face_model(fm))


def _load(ctx: EvalContext, checkpoint: Path):
    from focus.eval.predict import load_eval_model

    if not checkpoint.is_file():
        raise InputFileError(checkpoint, "checkpoint not found", "run the training stages first (dvc repro em)")
    return load_eval_model(checkpoint, ctx.face_model, ctx.data, ctx.settings.device)


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _by_checkpoint(ctx: EvalContext, ms: list[Method]) -> dict[str, list[Method]]:
    """Methods grouped by the content of their checkpoint (a round snapshot and the final model
    that copies it are run once)."""
    groups: dict[str, list[Method]] = {}
    for m in ms:
        if m.checkpoint is None:  # the mean face: no network
            continue
        if not m.checkpoint.is_file():
            raise InputFileError(
                m.checkpoint, f"checkpoint of '{m.key}' not found", "run the training stages first (dvc repro em)"
            )
        groups.setdefault(ctx.digest(m.checkpoint), []).append(m)
    return groups


# ---------------------------------------------------------------------------- misfit prior
def run_misfit_prior(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Estimate the misfit prior of the trained model (``models/focus.pt``) and write its reports."""
    from focus.eval import misfit_prior as MP
    from focus.render.renderer import RenderSettings
    from focus.synth.settings import SynthSettings

    t0 = time.perf_counter()
    ctx = make_context(params, paths)
    st = from_dict(MisfitPriorSettings, params.get("misfit_prior"), "params.yaml:misfit_prior")
    synth = from_dict(SynthSettings, params.get("synth"), "params.yaml:synth")
    rs = from_dict(RenderSettings, params.get("render"), "params.yaml:render")
    model = _load(ctx, paths.final)
    mrs = model.renderer.settings
    data = MP.render_misfit_set(
        ctx.face_model,
        synth,
        model.crop_size,
        st.count,
        st.seed,
        rs.backend,
        mrs.ambient,
        mrs.distance,
        mrs.focal_at_224,
        st.workers,
        ctx.settings.progress,
    )
    t1 = time.perf_counter()
    crops = MP.align_crops(data["images"], data["landmarks"], model)
    pred = MP.predict_neutral(model, crops, st.batch_size)
    true = MP.true_neutral(ctx.face_model, data["id"])
    weights = MP.region_weights(ctx.face_model, st.region)
    prior = MP.estimate_misfit_prior(
        pred, true, weights, region=st.region, model_name=ctx.face_model.name, checkpoint=str(paths.final)
    )
    MP.save_misfit_prior(paths.misfit_prior, prior)
    diag = MP.prior_diagnostics(pred, true, weights)
    MP.plot_misfit_prior(prior, ctx.face_model, paths.misfit_reports / "offset.png")
    mag = np.linalg.norm(prior.offset, axis=1)
    sel = weights > 0
    summary = {
        "count": prior.count,
        "offset_mm": {
            "mean": _round(mag[sel].mean()),
            "p95": _round(np.percentile(mag[sel], 95)),
            "max": _round(mag[sel].max()),
        },
        "spread_mm": {"mean": _round(prior.spread[sel].mean())},
        "offset_by_region_mm": {k: _round(v) for k, v in MP.region_summary(prior, ctx.face_model).items()},
        **{k: _round(v) for k, v in diag.items()},
        "seconds": {"render": round(t1 - t0, 1), "total": round(time.perf_counter() - t0, 1)},
    }
    write_json_reproducible(paths.misfit_reports / "summary.json", summary)
    log.info("misfit prior: %s", summary)
    return summary


# ---------------------------------------------------------------------------- NoW
def now_landmarks_csv(settings: EvalSettings) -> Path:
    lm = Path(settings.now_landmarks) if settings.now_landmarks else settings.now_root / "landmarks.csv"
    if not lm.is_file():
        raise InputFileError(
            lm,
            "landmark CSV of the NoW pictures not found",
            "write the 68 landmarks of every picture (name = the image-list entry "
            "<subject>/<challenge>/<IMG>.jpg, pixels of the picture) to this file, e.g. with "
            "your detector or the one of `focus reconstruct`, or set eval.now_landmarks",
        )
    return lm


@dataclass
class NowInputs:
    """What every model of the NoW stage is run on (:func:`_now_inputs`).

    Attributes:
        dataset: the NoW-layout set (:class:`focus.now.NowDataset`).
        methods: the scored rows (no ``pseudo_mask``: its shape is the autoencoder's).
        first: the final model, loaded once (its crop template aligns the pictures).
        crops: the aligned crops of every listed picture.
        prior: the misfit prior (``None`` when ``misfit_prior.apply`` is false).
        round_list: the image list of ``eval.round_challenges`` for the earlier EM rounds, or ``None``.
        work: ``data/eval/now``.
    """

    dataset: Any
    methods: list[Method]
    first: Any
    crops: Any
    prior: Any
    round_list: Path | None
    work: Path


@dataclass
class NowPlan:
    """The predictions written so far and how they are scored (:func:`_now_predict`).

    Attributes:
        jobs: the folders to score.
        reuse: key -> key whose scores it shares (the same meshes on the same images).
        partial: keys scored on ``eval.round_challenges`` only.
        examples: predictions kept for the example grid (``focus``, ``autoencoder``).
        identity: key -> (image names, ``(N, K_id)`` predicted identity coefficients).
    """

    jobs: list = field(default_factory=list)
    reuse: dict[str, str] = field(default_factory=dict)
    partial: set[str] = field(default_factory=set)
    examples: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def run_eval_now(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Predict, write and score the NoW-layout set with every model (module docstring)."""
    t0 = time.perf_counter()
    ctx = make_context(params, paths)
    inputs = _now_inputs(ctx, params)
    plan = _now_predict(ctx, inputs)
    scores_dir = inputs.work / "scores"
    _score_all(plan.jobs, ctx.settings, scores_dir)
    for key, src in plan.reuse.items():
        _copy_scores(scores_dir, src, key)
    results, per_image = _read_scores(scores_dir, inputs.methods, plan.partial)
    shutil.rmtree(inputs.work / ".tmp_predictions", ignore_errors=True)

    order = [m.key for m in inputs.methods]
    identity = _identity_scores(ctx.settings.now_root, plan.identity, {k: set(v) for k, v in results.items()})
    metrics = now_metrics(results, identity, order)
    write_json_atomic(paths.reports / "now" / "metrics.json", metrics)
    write_json_reproducible(
        paths.reports / "now" / "details.json",
        _now_details(ctx, inputs, results, identity, round(time.perf_counter() - t0, 1)),
    )
    _now_curves(scores_dir, order, paths.reports / "now", {k: set(v) for k, v in results.items()})
    if "focus" in plan.examples and "autoencoder" in plan.examples:
        _now_examples(plan.examples, per_image, ctx.settings.examples, paths.reports / "now" / "examples.png")
    return metrics


def _now_inputs(ctx: EvalContext, params: dict) -> NowInputs:
    """Open the NoW-layout set, load the final model and align every listed picture once."""
    from focus.eval.misfit_prior import load_misfit_prior
    from focus.eval.predict import load_crops, open_folder
    from focus.now.layout import IMAGES_DIR, NowDataset, NowImage

    es, paths = ctx.settings, ctx.paths
    mp = from_dict(MisfitPriorSettings, params.get("misfit_prior"), "params.yaml:misfit_prior")
    dataset = NowDataset.open(es.now_root)
    listed = dataset.images()
    ms = [m for m in methods(ctx.rounds, paths, with_prior=mp.apply, with_mean_face=True) if m.key != "pseudo_mask"]
    _by_checkpoint(ctx, ms)  # every checkpoint exists before anything is computed
    first = _load(ctx, ms[-1].checkpoint)
    folder = open_folder(es.now_root, first, images=str(IMAGES_DIR), landmarks=str(now_landmarks_csv(es)))
    wanted = {im.relpath for im in listed}
    indices = [i for i, n in enumerate(folder.names) if NowImage.parse(n).relpath in wanted]
    crops = load_crops(folder, indices, es.progress)
    prior = load_misfit_prior(paths.misfit_prior, ctx.face_model.num_vertices) if mp.apply else None
    work = paths.work / "now"
    return NowInputs(dataset, ms, first, crops, prior, _round_image_list(es, listed, work), work)


def _round_image_list(es: EvalSettings, listed: list, work: Path) -> Path | None:
    """Write the image list of ``eval.round_challenges`` (``None``: the rounds are scored on every image)."""
    if not es.round_challenges:
        return None
    bad = sorted(set(es.round_challenges) - set(NOW_CHALLENGES))
    if bad:
        raise InputFileError(
            "params.yaml",
            f"eval.round_challenges has unknown challenges {bad}",
            f"use some of {', '.join(NOW_CHALLENGES)}",
        )
    path = work / "round_image_list.txt"
    entries = [im.relpath for im in listed if im.challenge in es.round_challenges]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(e + "\n" for e in entries), encoding="utf-8")
    return path


def _now_predict(ctx: EvalContext, inputs: NowInputs) -> NowPlan:
    """Predict with every checkpoint once and write each distinct set of meshes once; the mean face
    is written as it is (identity 0, expression 0) for every image."""
    from focus.eval.predict import predict_crops

    es = ctx.settings
    plan = NowPlan()
    first, crops = inputs.first, inputs.crops
    for group in _by_checkpoint(ctx, inputs.methods).values():
        model = first if any(m.checkpoint == first.checkpoint for m in group) else _load(ctx, group[0].checkpoint)
        segs = ("unet",) if model.unet is not None else ()
        shown = any(m.key in ("focus", "autoencoder") for m in group)  # renders kept for the example grid only
        pred = predict_crops(model, crops, segs, es.batch_size, keep_images=shown, progress=es.progress)
        _plan_group(ctx, inputs, group, pred.names, pred.neutral, pred.coeffs["id"], plan)
        plan.examples.update({m.key: pred for m in group if m.key in ("focus", "autoencoder")})
    mean = [m for m in inputs.methods if m.key == MEAN_FACE]
    if mean:
        n_id = int(ctx.face_model.n_id)
        shape = ctx.face_model.shape(torch.zeros(1, n_id)).cpu().numpy()
        neutral = np.broadcast_to(shape, (len(crops.names), *shape.shape[1:]))
        _plan_group(ctx, inputs, mean, crops.names, neutral, np.zeros((len(crops.names), n_id)), plan)
    return plan


def _plan_group(
    ctx: EvalContext,
    inputs: NowInputs,
    group: list[Method],
    names: Sequence[str],
    neutral: np.ndarray,
    pred_id: np.ndarray,
    plan: NowPlan,
) -> None:
    """Write the predictions of the methods that share one set of meshes ``(N, V, 3)`` (one checkpoint)
    and add their scoring jobs to ``plan``; a round that gives the same meshes as a complete row
    reuses that row's scores."""
    from focus.eval.now_predictions import ScoreJob, write_now_predictions
    from focus.now.layout import NowImage

    es = ctx.settings
    faces = ctx.face_model.triangles.numpy()
    now_ids = ctx.face_model.now_landmarks7.numpy()
    scored: dict[bool, str] = {}  # prior flag -> key scored with these very meshes on every image
    for m in sorted(group, key=lambda m: m.round is not None):  # complete rows first, rounds reuse them
        if m.prior in scored:
            plan.reuse[m.key] = scored[m.prior]
            continue
        sel = list(range(len(names)))
        if m.round is not None and inputs.round_list is not None:
            plan.partial.add(m.key)
            sel = [i for i, n in enumerate(names) if NowImage.parse(n).challenge in es.round_challenges]
        else:
            scored[m.prior] = m.key
        meshes = inputs.prior.apply(neutral[sel]) if m.prior else neutral[sel]
        chosen = [names[i] for i in sel]
        if not m.prior:  # the prior moves vertices, not coefficients
            plan.identity[m.key] = (chosen, np.asarray(pred_id)[sel])
        out = inputs.work / ("predictions" if m.key in es.keep_predictions else ".tmp_predictions") / m.key
        write_now_predictions(out, chosen, meshes, faces, now_ids, progress=es.progress)
        image_list = inputs.round_list if m.key in plan.partial else inputs.dataset.image_list
        plan.jobs.append(ScoreJob(m.key, out, image_list, es.now_root, inputs.work / "scores", es.allow_missing))
    for key, src in list(plan.reuse.items()):
        if src in plan.identity and key not in plan.identity:
            plan.identity[key] = plan.identity[src]


def _read_scores(scores_dir: Path, ms: list[Method], partial: set[str]) -> tuple[dict, dict]:
    """The scorer's summaries per method (challenges with images; no ``all`` for partly scored rounds)
    and its per-image errors."""
    from focus.eval.now_predictions import per_image_errors

    results: dict[str, dict] = {}
    per_image: dict[str, dict] = {}
    for m in ms:
        scores = scores_dir / f"{m.key}.json"
        doc = json.loads(scores.read_text(encoding="utf-8"))
        results[m.key] = {
            ch: v for ch, v in doc["results"].items() if v["num_images"] > 0 and not (m.key in partial and ch == "all")
        }
        per_image[m.key] = per_image_errors(scores)
    return results, per_image


def _identity_scores(
    root: Path, identity: dict[str, tuple[list[str], np.ndarray]], scored: dict[str, set]
) -> dict[str, dict[str, float | None]]:
    """Identity correlation (first 10 coefficients, across images) per method and challenge (and
    ``all``), over the images it was scored on; empty when the set has no true coefficients."""
    from focus.eval.now_predictions import identity_correlation, read_truth_id
    from focus.now.layout import NowImage

    out: dict[str, dict[str, float | None]] = {}
    for key, (names, pred_id) in identity.items():
        true_id = read_truth_id(root, names)
        if true_id is None:
            return {}
        challenge = np.array([NowImage.parse(n).challenge for n in names])
        out[key] = {}
        for ch in scored.get(key, ()):
            sel = np.ones(len(names), bool) if ch == "all" else challenge == ch
            out[key][ch] = identity_correlation(pred_id[sel], true_id[sel])
    return out


def now_metrics(results: dict[str, dict], identity: dict[str, dict], order: list[str]) -> dict:
    """``<key>.<challenge>.{median,mean,std}`` (mm) and, where the set has true coefficients,
    ``id_corr`` (identity correlation, first 10 coefficients)."""
    metrics: dict[str, dict] = {}
    for k in order:
        metrics[k] = {}
        for ch, res in results[k].items():
            row = {s: _round(res[s]) for s in ("median", "mean", "std")}
            if identity.get(k, {}).get(ch) is not None:
                row["id_corr"] = _round(identity[k][ch])
            metrics[k][ch] = row
    return metrics


def _now_details(ctx: EvalContext, inputs: NowInputs, results: dict, identity: dict, seconds: float) -> dict:
    es, work = ctx.settings, inputs.work
    order = [m.key for m in inputs.methods]
    return {
        "dataset": str(es.now_root),
        "synthetic": es.synthetic_now,
        "image_list": str(inputs.dataset.image_list),
        "units": "mm; NoW protocol (focus.now scorer): errors pooled over the cropped scan vertices of all scored "
        "images",
        "identity": (
            "id_corr: mean Pearson correlation, across images, of the first 10 predicted and true identity "
            "coefficients (the set's truth.npz)"
            if identity
            else "no true coefficients: no id_corr"
        ),
        "methods": {
            m.key: {
                "label": m.label,
                "checkpoint": None if m.checkpoint is None else str(m.checkpoint),
                "misfit_prior": m.prior,
            }
            for m in inputs.methods
        },
        "counts": {
            k: {
                ch: {
                    "images": results[k][ch]["num_images"],
                    "missing": results[k][ch]["num_missing"],
                    "scan_vertices": results[k][ch]["num_vertices"],
                }
                for ch in results[k]
            }
            for k in order
        },
        "predictions": {k: str(work / "predictions" / k) for k in order if k in es.keep_predictions},
        "scores": {k: str(work / "scores" / f"{k}.json") for k in order},
        "seconds": seconds,
    }


def _score_all(jobs: list, es: EvalSettings, scores_dir: Path) -> None:
    """Score every :class:`focus.eval.now_predictions.ScoreJob` (in parallel processes when
    ``eval.workers > 1``); deletes the predictions of models not in ``eval.keep_predictions`` afterwards."""
    from tqdm import tqdm

    from focus.eval.now_predictions import score_job

    scores_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(jobs), desc="NoW scoring", unit="model", disable=not es.progress)
    if es.workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(es.workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            for _ in pool.map(score_job, jobs):
                bar.update(1)
    else:
        for job in jobs:
            score_job(job)
            bar.update(1)
    bar.close()
    for job in jobs:
        if job.key not in es.keep_predictions:
            shutil.rmtree(job.predictions, ignore_errors=True)


def _copy_scores(folder: Path, src: str, dst: str) -> None:
    """Reuse the scorer's outputs of ``src`` for ``dst`` (the same meshes: e.g. the last EM round
    and the final model)."""
    for suffix in (".json", "_per_image.npz", "_cumulative_error.png"):
        if (folder / f"{src}{suffix}").is_file():
            shutil.copyfile(folder / f"{src}{suffix}", folder / f"{dst}{suffix}")


def _now_curves(scores_dir: Path, order: list[str], out_dir: Path, available: dict[str, set]) -> None:
    """Cumulative error curves of every model (all images; occlusion challenge) as PNG and CSV
    (``available``: the challenges, and ``all``, each model was scored on)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from focus.eval.now_predictions import cumulative_curves

    curves = {
        k: {ch: c for ch, c in cumulative_curves(scores_dir / f"{k}.json").items() if ch in available[k]} for k in order
    }
    fig = Figure(figsize=(11.0, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    for j, (ch, title) in enumerate((("all", "all challenges"), ("multiview_occlusions", "occlusion challenge"))):
        ax = fig.add_subplot(1, 2, j + 1)
        for k in order:
            if ch in curves[k]:
                x, y = curves[k][ch]
                style = ":" if k.startswith("focus_round") else "--" if k == MEAN_FACE else "-"
                color = "0.45" if k == MEAN_FACE else f"C{order.index(k) % 10}"  # the baseline in grey
                ax.plot(x, y, style, label=k, color=color, linewidth=2.0 if k in ("focus", "focus_prior") else 1.2)
        ax.set_xlim(0, 8)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.set_xlabel("error [mm]")
        ax.set_ylabel("scan vertices below the error [%]")
        ax.set_title(f"NoW cumulative error: {title}")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(out_dir / "cumulative_error.png", suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    for ch, name in (("all", "cumulative_error_all.csv"), ("multiview_occlusions", "cumulative_error_occlusions.csv")):
        keys = [k for k in order if ch in curves[k]]
        if not keys:
            continue
        x = curves[keys[0]][ch][0]
        idx = np.arange(0, len(x), max(1, (len(x) - 1) // 80))  # 0.1 mm steps for the DVC plot
        lines = ["error_mm," + ",".join(keys)]
        for i in idx:
            lines.append(f"{x[i]:.2f}," + ",".join(f"{curves[k][ch][1][i]:.3f}" for k in keys))
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _now_examples(preds: dict, per_image: dict, n: int, path: Path) -> None:
    """Best and worst FOCUS reconstructions of the occlusion challenge (by per-image mean error)."""
    from focus.eval.grids import _hwc, mask_panel, overlay_render, save_grid
    from focus.now.layout import NowImage

    focus, ae = preds["focus"], preds["autoencoder"]
    err_f, err_a = (
        {str(k): v for k, v in zip(per_image[key]["image"], per_image[key]["mean"], strict=True)}
        for key in ("focus", "autoencoder")
    )
    occ = [
        i
        for i, name in enumerate(focus.names)
        if NowImage.parse(name).challenge == "multiview_occlusions" and NowImage.parse(name).key in err_f
    ]
    if not occ:
        return
    occ.sort(key=lambda i: err_f[NowImage.parse(focus.names[i]).key])
    n = max(1, min(n, len(occ) // 2 or 1))
    chosen = [("best", i) for i in occ[:n]] + [("worst", i) for i in occ[::-1][:n]]
    rows, caps = [], []
    for tag, i in chosen:
        key = NowImage.parse(focus.names[i]).key
        row = [
            _hwc(focus.images[i]),
            overlay_render(ae.images[i], ae.renders[i], ae.coverage[i]),
            overlay_render(focus.images[i], focus.renders[i], focus.coverage[i]),
            mask_panel(focus.seg["unet"][i], focus.coverage[i]),
        ]
        if focus.masks is not None:
            row.append(_hwc(focus.masks[i]))
        rows.append(row)
        caps.append(
            f"{tag}: {key.split('/')[0][-3:]}/{key.split('/')[-1]}\nFOCUS {err_f[key]:.2f} mm\n"
            f"AE {err_a.get(key, float('nan')):.2f} mm"
        )
    cols = ["input (aligned crop)", "autoencoder", "FOCUS", "FOCUS mask M", "true mask"]
    save_grid(
        rows,
        caps,
        cols,
        path,
        "NoW occlusion challenge: best and worst FOCUS reconstructions (per-image mean scan-to-mesh error)",
    )


# ---------------------------------------------------------------------------- AR
def run_eval_ar(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Segmentation metrics of every model on the AR-layout set (module docstring)."""
    from focus.eval import ar_metrics as A
    from focus.eval.predict import predict_crops

    t0 = time.perf_counter()
    ctx = make_context(params, paths)
    es = ctx.settings
    ms = methods(ctx.rounds, paths, with_prior=False, with_all_face=True)
    groups = _by_checkpoint(ctx, ms)
    first = _load(ctx, paths.final)
    crops = _ar_crops(es, first)
    per_image: dict[str, dict[str, dict]] = {}
    keep_preds: dict[tuple[str, str], Any] = {}
    for group in groups.values():
        model = first if any(m.checkpoint == first.checkpoint for m in group) else _load(ctx, group[0].checkpoint)
        segs = tuple(dict.fromkeys(m.segmentation for m in group))
        for sub in AR_SUBSETS:
            pred = predict_crops(model, crops[sub], segs, es.batch_size, progress=es.progress)
            for m in group:
                per_image.setdefault(m.key, {})[sub] = A.image_metrics(
                    pred.seg[m.segmentation], pred.coverage, crops[sub].masks, crops[sub].face_masks
                )
                if m.key in ("focus", "pseudo_mask") and sub in OCCLUDED_SUBSETS:
                    keep_preds[(m.key, sub)] = pred
    metrics, face_region = _ar_summaries(per_image, [m.key for m in ms])
    write_json_atomic(paths.reports / "ar" / "metrics.json", metrics)
    details = {
        "dataset": str(es.ar_root),
        "synthetic": es.synthetic_ar,
        "definition": "per image inside the rendered face region m_r of the prediction (docs/evaluation.md 2); soft: "
        "the face probability M as predicted; hard: M > 0.5; mean and population std over images",
        "methods": {
            m.key: {"label": m.label, "checkpoint": str(m.checkpoint), "segmentation": m.segmentation} for m in ms
        },
        "images": {sub: len(crops[sub]) for sub in AR_SUBSETS},
        "whole_true_face_region": face_region,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json_reproducible(paths.reports / "ar" / "details.json", details)
    _save_ar_per_image(paths.work / "ar" / "per_image.npz", per_image, crops)
    if keep_preds:
        _ar_examples(keep_preds, per_image, es.examples, paths.reports / "ar")
    return metrics


def _ar_crops(es: EvalSettings, model: Any) -> dict[str, Any]:
    """The aligned crops of every AR subset, with their true visible-face masks (required)."""
    from focus.eval.predict import load_crops, open_folder

    crops = {}
    for sub in AR_SUBSETS:
        folder = open_folder(es.ar_root / sub, model)
        if "mask" not in folder.mask_dirs:
            raise InputFileError(
                es.ar_root / sub / "masks",
                "true visible-face masks not found",
                "the AR evaluation needs masks/<stem>.png beside images/ (white = visible face)",
            )
        crops[sub] = load_crops(folder, progress=es.progress)
    return crops


def _ar_summaries(per_image: dict[str, dict[str, dict]], order: list[str]) -> tuple[dict, dict]:
    """Per model and subset: the soft means / stds with the thresholded ones under ``hard`` (the metrics
    file), and the same over the whole true face region where the set has it (the details)."""
    from focus.eval import ar_metrics as A

    metrics: dict[str, dict] = {}
    face_region: dict[str, dict] = {}
    for k in order:
        metrics[k] = {}
        face_region[k] = {}
        for sub in AR_SUBSETS:
            summ = A.summarize(per_image[k][sub])
            row = {name: _round(v) for name, v in summ["soft"].items()}
            row["hard"] = {name: _round(v) for name, v in summ["hard"].items()}
            metrics[k][sub] = row
            face_region[k][sub] = {
                var: {name: _round(v) for name, v in summ[var].items()}
                for var in ("face_region_soft", "face_region_hard")
                if var in summ
            }
    return metrics, face_region


def _save_ar_per_image(path: Path, per_image: dict, crops: dict) -> None:
    arrays = {}
    for k, subs in per_image.items():
        for sub, variants in subs.items():
            arrays[f"{sub}/names"] = np.array(crops[sub].names)
            for var, mets in variants.items():
                for name, v in mets.items():
                    arrays[f"{k}/{sub}/{var}/{name}"] = np.asarray(v, np.float32)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def _ar_examples(preds: dict, per_image: dict, n: int, out_dir: Path) -> None:
    """Best and worst FOCUS segmentations on the occluded subsets (by soft F1): two grids."""
    from focus.eval.grids import _hwc, mask_panel, overlay_render, save_grid

    cand = []
    for sub in OCCLUDED_SUBSETS:
        if ("focus", sub) not in preds:
            continue
        f1 = per_image["focus"][sub]["soft"]["f1"]
        f1p = per_image["pseudo_mask"][sub]["soft"]["f1"]
        cand += [(float(f1[i]), float(f1p[i]), sub, i) for i in range(len(f1))]
    if not cand:
        return
    cand.sort()
    n = max(1, min(n, len(cand) // 2 or 1))
    cols = ["input (aligned crop)", "FOCUS reconstruction", "FOCUS mask M", "pseudo mask z(p)", "true mask"]
    for tag, chosen in (("best", cand[::-1][:n]), ("worst", cand[:n])):
        rows, caps = [], []
        for f1, f1p, sub, i in chosen:
            p, q = preds[("focus", sub)], preds[("pseudo_mask", sub)]
            rows.append(
                [
                    _hwc(p.images[i]),
                    overlay_render(p.images[i], p.renders[i], p.coverage[i]),
                    mask_panel(p.seg["unet"][i], p.coverage[i]),
                    mask_panel(q.seg["pseudo"][i], q.coverage[i]),
                    _hwc(p.masks[i]),
                ]
            )
            caps.append(f"{sub}/{p.names[i]}\nF1 FOCUS {f1:.3f}\nF1 pseudo {f1p:.3f}")
        save_grid(
            rows,
            caps,
            cols,
            out_dir / f"examples_{tag}.png",
            f"AR-like occluded subsets: {tag} FOCUS segmentations (soft F1 inside the rendered face; "
            "masks: white = face, blue = not rendered)",
        )


# ---------------------------------------------------------------------------- CelebAMask-HQ
def run_eval_celebahq(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Segmentation metrics on CelebAMask-HQ or its synthetic stand-in (:mod:`focus.eval.celebahq`)."""
    from focus.eval.celebahq import run_eval_celebahq as run

    return run(params, paths)


# ---------------------------------------------------------------------------- report
def run_report(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Targets, per-round plot, ``reports/README.md`` and the project README's headline block."""
    from focus.eval import report as R

    return R.write_reports(params, paths)


__all__ = [
    "ALL_FACE",
    "AR_SUBSETS",
    "EvalPaths",
    "MEAN_FACE",
    "Method",
    "NOW_CHALLENGES",
    "methods",
    "now_metrics",
    "run_eval_ar",
    "run_eval_celebahq",
    "run_eval_now",
    "run_misfit_prior",
    "run_report",
]
