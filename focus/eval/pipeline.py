"""The evaluation stages of the DVC pipeline (``stages/misfit_prior.py``, ``eval_now.py``, ``eval_ar.py``, ``report.py``).

Models compared (:func:`methods`; the keys are the top-level keys of every metrics file):

=====================  ==================================================================  ==============
key                    what                                                                 tables
=====================  ==================================================================  ==============
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
=====================  ==================================================================  ==============

Stages:

* :func:`run_misfit_prior` -- the prior (``models/misfit_prior.npz``), its pictures and summary
  (``reports/misfit_prior/``).
* :func:`run_eval_now` -- predictions of every model on the NoW-layout set in the NoW submission
  layout, scored with ``focus now-eval``: ``reports/eval/now/metrics.json``
  (``<key>.<challenge>.{median,mean,std}``, mm, challenge in the four NoW challenges and ``all``),
  cumulative error curves, examples; predictions and scorer outputs under ``data/eval/now/``.
* :func:`run_eval_ar` -- segmentation metrics on the AR-layout set per subset:
  ``reports/eval/ar/metrics.json`` (``<key>.<subset>.{accuracy,precision,recall,f1,iou}`` soft,
  ``..._std``, and the same under ``hard``), examples; per-image values under ``data/eval/ar/``.
* :func:`run_report` -- target checks (``reports/eval/summary.json``), per-round plot,
  ``reports/README.md`` and the headline block of the project README (:mod:`focus.eval.report`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
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

    def round_checkpoint(self, r: int) -> Path:
        return self.em_run_dir / f"round_{r:02d}.pt"


@dataclass(frozen=True)
class Method:
    """One row of the tables: a checkpoint, a segmentation and whether the misfit prior is applied."""

    key: str
    label: str
    checkpoint: Path
    segmentation: str
    prior: bool = False
    round: int | None = None


def methods(rounds: int, paths: EvalPaths = EvalPaths(), with_prior: bool = True) -> list[Method]:
    """The compared models, in table order (see the module docstring)."""
    out = [Method("autoencoder", "autoencoder (initialised encoder, no segmentation)", paths.init, "none"),
           Method("pseudo_mask", "robust pseudo mask z(p) (initialised encoder)", paths.init, "pseudo")]
    for r in range(1, int(rounds) + 1):
        out.append(Method(f"focus_round_{r:02d}", f"FOCUS after EM round {r}", paths.round_checkpoint(r), "unet", round=r))
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
        if not m.checkpoint.is_file():
            raise InputFileError(m.checkpoint, f"checkpoint of '{m.key}' not found",
                                 "run the training stages first (dvc repro em)")
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
    data = MP.render_misfit_set(ctx.face_model, synth, model.crop_size, st.count, st.seed, rs.backend, mrs.ambient,
                                mrs.distance, mrs.focal_at_224, st.workers, ctx.settings.progress)
    t1 = time.perf_counter()
    crops = MP.align_crops(data["images"], data["landmarks"], model)
    pred = MP.predict_neutral(model, crops, st.batch_size)
    true = MP.true_neutral(ctx.face_model, data["id"])
    weights = MP.region_weights(ctx.face_model, st.region)
    prior = MP.estimate_misfit_prior(pred, true, weights, region=st.region, model_name=ctx.face_model.name,
                                     checkpoint=str(paths.final))
    MP.save_misfit_prior(paths.misfit_prior, prior)
    diag = MP.prior_diagnostics(pred, true, weights)
    MP.plot_misfit_prior(prior, ctx.face_model, paths.misfit_reports / "offset.png")
    mag = np.linalg.norm(prior.offset, axis=1)
    sel = weights > 0
    summary = {
        "count": prior.count,
        "offset_mm": {"mean": _round(mag[sel].mean()), "p95": _round(np.percentile(mag[sel], 95)), "max": _round(mag[sel].max())},
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
        raise InputFileError(lm, "landmark CSV of the NoW pictures not found",
                             "write the 68 landmarks of every picture (name = the image-list entry "
                             "<subject>/<challenge>/<IMG>.jpg, pixels of the picture) to this file, e.g. with "
                             "your detector or the one of `focus reconstruct`, or set eval.now_landmarks")
    return lm


def run_eval_now(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Predict, write and score the NoW-layout set with every model (module docstring)."""
    from focus.eval.misfit_prior import load_misfit_prior
    from focus.eval.now_predictions import per_image_errors, write_now_predictions
    from focus.eval.predict import load_crops, open_folder, predict_crops
    from focus.now.layout import IMAGES_DIR, NowDataset, NowImage

    t0 = time.perf_counter()
    ctx = make_context(params, paths)
    es = ctx.settings
    mp = from_dict(MisfitPriorSettings, params.get("misfit_prior"), "params.yaml:misfit_prior")
    dataset = NowDataset.open(es.now_root)
    listed = dataset.images()
    ms = [m for m in methods(ctx.rounds, paths, with_prior=mp.apply) if m.key != "pseudo_mask"]
    groups = _by_checkpoint(ctx, ms)
    first = _load(ctx, ms[-1].checkpoint)
    folder = open_folder(es.now_root, first, images=str(IMAGES_DIR), landmarks=str(now_landmarks_csv(es)))
    wanted = {im.relpath for im in listed}
    indices = [i for i, n in enumerate(folder.names) if NowImage.parse(n).relpath in wanted]
    crops = load_crops(folder, indices, es.progress)
    faces = ctx.face_model.triangles.numpy()
    now_ids = ctx.face_model.now_landmarks7.numpy()
    prior = load_misfit_prior(paths.misfit_prior, ctx.face_model.num_vertices) if mp.apply else None

    work = paths.work / "now"
    keep = set(es.keep_predictions)
    round_list = None
    if es.round_challenges:
        bad = sorted(set(es.round_challenges) - set(NOW_CHALLENGES))
        if bad:
            raise InputFileError("params.yaml", f"eval.round_challenges has unknown challenges {bad}",
                                 f"use some of {', '.join(NOW_CHALLENGES)}")
        round_list = work / "round_image_list.txt"
        entries = [im.relpath for im in listed if im.challenge in es.round_challenges]
        round_list.parent.mkdir(parents=True, exist_ok=True)
        round_list.write_text("".join(e + "\n" for e in entries), encoding="utf-8")
    # 1. predict with every checkpoint once and write each distinct set of meshes once
    jobs: list[tuple[str, Path, Path]] = []  # (key, predictions folder, image list) to score
    reuse: dict[str, str] = {}  # key -> key whose scores it shares (the same meshes on the same images)
    partial: set[str] = set()
    examples: dict[str, Any] = {}
    for digest, group in groups.items():
        model = first if any(m.checkpoint == first.checkpoint for m in group) else _load(ctx, group[0].checkpoint)
        segs = ("unet",) if model.unet is not None else ()
        shown = any(m.key in ("focus", "autoencoder") for m in group)  # renders kept for the example grid only
        pred = predict_crops(model, crops, segs, es.batch_size, keep_images=shown, progress=es.progress)
        scored: dict[bool, str] = {}  # prior flag -> key scored with these very meshes on every image
        for m in sorted(group, key=lambda m: m.round is not None):  # complete rows first, rounds reuse them
            if m.key in ("focus", "autoencoder"):
                examples[m.key] = pred
            if m.prior in scored:
                reuse[m.key] = scored[m.prior]
                continue
            names, neutral = pred.names, prior.apply(pred.neutral) if m.prior else pred.neutral
            if m.round is not None and round_list is not None:
                partial.add(m.key)
                sel = [i for i, n in enumerate(pred.names) if NowImage.parse(n).challenge in es.round_challenges]
                names, neutral = [pred.names[i] for i in sel], neutral[sel]
            else:
                scored[m.prior] = m.key
            out = work / "predictions" / m.key if m.key in keep else work / ".tmp_predictions" / m.key
            write_now_predictions(out, names, neutral, faces, now_ids, progress=es.progress)
            jobs.append((m.key, out, round_list if m.key in partial else dataset.image_list))
    # 2. score them with `focus now-eval` (in parallel processes when eval.workers > 1)
    _score_all(jobs, es, work / "scores")
    for key, src in reuse.items():
        _copy_scores(work / "scores", src, key)
    results: dict[str, dict] = {}
    per_image: dict[str, dict] = {}
    for m in ms:
        scores = work / "scores" / f"{m.key}.json"
        doc = json.loads(scores.read_text(encoding="utf-8"))
        results[m.key] = {ch: v for ch, v in doc["results"].items()
                          if v["num_images"] > 0 and not (m.key in partial and ch == "all")}
        per_image[m.key] = per_image_errors(scores)
    shutil.rmtree(work / ".tmp_predictions", ignore_errors=True)

    order = [m.key for m in ms]
    metrics = {k: {ch: {s: _round(results[k][ch][s]) for s in ("median", "mean", "std")} for ch in results[k]}
               for k in order}
    write_json_atomic(paths.reports / "now" / "metrics.json", metrics)
    details = {
        "dataset": str(es.now_root), "synthetic": es.synthetic_now, "image_list": str(dataset.image_list),
        "units": "mm; NoW protocol (focus now-eval): errors pooled over the cropped scan vertices of all scored images",
        "methods": {m.key: {"label": m.label, "checkpoint": str(m.checkpoint), "misfit_prior": m.prior} for m in ms},
        "counts": {k: {ch: {"images": results[k][ch]["num_images"], "missing": results[k][ch]["num_missing"],
                            "scan_vertices": results[k][ch]["num_vertices"]} for ch in results[k]} for k in order},
        "predictions": {k: str(work / "predictions" / k) for k in order if k in keep},
        "scores": {k: str(work / "scores" / f"{k}.json") for k in order},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json_reproducible(paths.reports / "now" / "details.json", details)
    _now_curves(work / "scores", order, paths.reports / "now", {k: set(v) for k, v in results.items()})
    if "focus" in examples and "autoencoder" in examples:
        _now_examples(examples, per_image, es.examples, paths.reports / "now" / "examples.png")
    return metrics


def _score_all(jobs: list[tuple[str, Path, Path]], es: EvalSettings, scores_dir: Path) -> None:
    """Score every ``(key, predictions, image list)`` with ``focus now-eval``; deletes the predictions
    of models not in ``eval.keep_predictions`` afterwards."""
    from tqdm import tqdm

    from focus.eval.now_predictions import score_job

    args = [(key, out, lst, es.now_root, scores_dir, es.allow_missing) for key, out, lst in jobs]
    bar = tqdm(total=len(args), desc="NoW scoring", unit="model", disable=not es.progress)
    if es.workers > 1 and len(args) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(es.workers, len(args)), mp_context=mp.get_context("spawn")) as pool:
            for _ in pool.map(score_job, args):
                bar.update(1)
    else:
        for a in args:
            score_job(a)
            bar.update(1)
    bar.close()
    for key, out, _ in jobs:
        if key not in es.keep_predictions:
            shutil.rmtree(out, ignore_errors=True)


def _copy_scores(folder: Path, src: str, dst: str) -> None:
    """Reuse the scorer's outputs of ``src`` for ``dst`` (the same meshes: e.g. the last EM round and the final model)."""
    for suffix in (".json", "_per_image.npz", "_cumulative_error.png"):
        if (folder / f"{src}{suffix}").is_file():
            shutil.copyfile(folder / f"{src}{suffix}", folder / f"{dst}{suffix}")


def _now_curves(scores_dir: Path, order: list[str], out_dir: Path, available: dict[str, set]) -> None:
    """Cumulative error curves of every model (all images; occlusion challenge) as PNG and CSV
    (``available``: the challenges, and ``all``, each model was scored on)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from focus.eval.now_predictions import cumulative_curves

    curves = {k: {ch: c for ch, c in cumulative_curves(scores_dir / f"{k}.json").items() if ch in available[k]}
              for k in order}
    fig = Figure(figsize=(11.0, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    for j, (ch, title) in enumerate((("all", "all challenges"), ("multiview_occlusions", "occlusion challenge"))):
        ax = fig.add_subplot(1, 2, j + 1)
        for k in order:
            if ch in curves[k]:
                x, y = curves[k][ch]
                style = "-" if not k.startswith("focus_round") else ":"
                ax.plot(x, y, style, label=k, color=f"C{order.index(k) % 10}",
                        linewidth=2.0 if k in ("focus", "focus_prior") else 1.2)
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
    err_f = dict(zip((str(k) for k in per_image["focus"]["image"]), per_image["focus"]["mean"]))
    err_a = dict(zip((str(k) for k in per_image["autoencoder"]["image"]), per_image["autoencoder"]["mean"]))
    occ = [i for i, name in enumerate(focus.names) if NowImage.parse(name).challenge == "multiview_occlusions"
           and NowImage.parse(name).key in err_f]
    if not occ:
        return
    occ.sort(key=lambda i: err_f[NowImage.parse(focus.names[i]).key])
    n = max(1, min(n, len(occ) // 2 or 1))
    chosen = [("best", i) for i in occ[:n]] + [("worst", i) for i in occ[::-1][:n]]
    rows, caps = [], []
    for tag, i in chosen:
        key = NowImage.parse(focus.names[i]).key
        row = [_hwc(focus.images[i]), overlay_render(ae.images[i], ae.renders[i], ae.coverage[i]),
               overlay_render(focus.images[i], focus.renders[i], focus.coverage[i]),
               mask_panel(focus.seg["unet"][i], focus.coverage[i])]
        if focus.masks is not None:
            row.append(_hwc(focus.masks[i]))
        rows.append(row)
        caps.append(f"{tag}: {key.split('/')[0][-3:]}/{key.split('/')[-1]}\nFOCUS {err_f[key]:.2f} mm\n"
                    f"AE {err_a.get(key, float('nan')):.2f} mm")
    cols = ["input (aligned crop)", "autoencoder", "FOCUS", "FOCUS mask M", "true mask"]
    save_grid(rows, caps, cols, path, "NoW occlusion challenge: best and worst FOCUS reconstructions "
              "(per-image mean scan-to-mesh error)")


# ---------------------------------------------------------------------------- AR
def run_eval_ar(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Segmentation metrics of every model on the AR-layout set (module docstring)."""
    from focus.eval import ar_metrics as A
    from focus.eval.predict import load_crops, open_folder, predict_crops

    t0 = time.perf_counter()
    ctx = make_context(params, paths)
    es = ctx.settings
    ms = methods(ctx.rounds, paths, with_prior=False)
    groups = _by_checkpoint(ctx, ms)
    first = _load(ctx, paths.final)
    root = es.ar_root
    crops = {}
    for sub in AR_SUBSETS:
        folder = open_folder(root / sub, first)
        if "mask" not in folder.mask_dirs:
            raise InputFileError(root / sub / "masks", "true visible-face masks not found",
                                 "the AR evaluation needs masks/<stem>.png beside images/ (white = visible face)")
        crops[sub] = load_crops(folder, progress=es.progress)
    per_image: dict[str, dict[str, dict]] = {}
    keep_preds: dict[tuple[str, str], Any] = {}
    for digest, group in groups.items():
        model = first if any(m.checkpoint == first.checkpoint for m in group) else _load(ctx, group[0].checkpoint)
        segs = tuple(dict.fromkeys(m.segmentation for m in group))
        for sub in AR_SUBSETS:
            pred = predict_crops(model, crops[sub], segs, es.batch_size, progress=es.progress)
            for m in group:
                per_image.setdefault(m.key, {})[sub] = A.image_metrics(pred.seg[m.segmentation], pred.coverage,
                                                                       crops[sub].masks, crops[sub].face_masks)
                if m.key in ("focus", "pseudo_mask") and sub in OCCLUDED_SUBSETS:
                    keep_preds[(m.key, sub)] = pred
    order = [m.key for m in ms]
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
            face_region[k][sub] = {var: {name: _round(v) for name, v in summ[var].items()}
                                   for var in ("face_region_soft", "face_region_hard") if var in summ}
    write_json_atomic(paths.reports / "ar" / "metrics.json", metrics)
    details = {
        "dataset": str(root), "synthetic": es.synthetic_ar,
        "definition": "per image inside the rendered face region m_r of the prediction (evaluation.md 2); soft: "
                      "the face probability M as predicted; hard: M > 0.5; mean and population std over images",
        "methods": {m.key: {"label": m.label, "checkpoint": str(m.checkpoint), "segmentation": m.segmentation} for m in ms},
        "images": {sub: len(crops[sub]) for sub in AR_SUBSETS},
        "whole_true_face_region": face_region,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json_reproducible(paths.reports / "ar" / "details.json", details)
    _save_ar_per_image(paths.work / "ar" / "per_image.npz", per_image, crops)
    if keep_preds:
        _ar_examples(keep_preds, per_image, es.examples, paths.reports / "ar")
    return metrics


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
            rows.append([_hwc(p.images[i]), overlay_render(p.images[i], p.renders[i], p.coverage[i]),
                         mask_panel(p.seg["unet"][i], p.coverage[i]), mask_panel(q.seg["pseudo"][i], q.coverage[i]),
                         _hwc(p.masks[i])])
            caps.append(f"{sub}/{p.names[i]}\nF1 FOCUS {f1:.3f}\nF1 pseudo {f1p:.3f}")
        save_grid(rows, caps, cols, out_dir / f"examples_{tag}.png",
                  f"AR-like occluded subsets: {tag} FOCUS segmentations (soft F1 inside the rendered face; "
                  "masks: white = face, blue = not rendered)")


# ---------------------------------------------------------------------------- report
def run_report(params: dict, paths: EvalPaths = EvalPaths()) -> dict:
    """Targets, per-round plot, ``reports/README.md`` and the project README's headline block."""
    from focus.eval import report as R

    return R.write_reports(params, paths)


__all__ = ["AR_SUBSETS", "EvalPaths", "Method", "NOW_CHALLENGES", "methods", "run_eval_ar", "run_eval_now",
           "run_misfit_prior", "run_report"]
