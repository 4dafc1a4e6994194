"""The ``idnet`` pipeline stage: train the offline identity network and report its quality.

Steps (all seeded by ``params.yaml``'s ``seed``):

1. draw the training identities and views and the held-out identities and views, compose and
   crop them (:mod:`focus.idnet.data`) with the pipeline's renderer settings (``render`` group);
2. train the network with the ArcFace loss (:mod:`focus.idnet.training`), resumably;
3. save it (``models/idnet.pt``, :func:`focus.idnet.network.save_identity_net`);
4. evaluate on the held-out identities (ROC AUC, TAR at FAR 1e-3, also for the untrained
   network as a baseline) and the per-factor sensitivity (:mod:`focus.idnet.evaluation`);
5. write ``metrics.json`` (quality and sizes), ``run.json`` (timings, CPU load, training
   history) and ``roc.png`` under the report folder.

Interrupted runs resume: the composed crops and the training state are kept in the resume folder
(``checkpoints/idnet/``) under a fingerprint of everything that determines them, and deleted
after a successful run (so a later run with changed code starts afresh).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from focus.config import from_dict, merged_params
from focus.facemodel.model import load_face_model
from focus.idnet.data import CropMaker, IdentityDataSettings, IdentitySet, make_identity_set
from focus.idnet.evaluation import IdNetEvalSettings, embed_crops, factor_sensitivity, plot_roc, verification_metrics
from focus.idnet.network import IdentityNetSettings, build_identity_net, save_identity_net
from focus.idnet.training import IdNetTrainSettings, TrainResult, fingerprint, train_identity_net
from focus.io_utils import atomic_path, write_json_atomic
from focus.nets.checkpoint import RefusedFileError, load_torch_file
from focus.render.renderer import RenderSettings
from focus.run_info import write_json_reproducible
from focus.synth.settings import SynthSettings


@dataclass(frozen=True)
class IdNetSettings:
    """Everything of the ``idnet`` group of ``params.yaml``."""

    data: IdentityDataSettings = field(default_factory=IdentityDataSettings)
    net: IdentityNetSettings = field(default_factory=IdentityNetSettings)
    train: IdNetTrainSettings = field(default_factory=IdNetTrainSettings)
    eval: IdNetEvalSettings = field(default_factory=IdNetEvalSettings)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _cached_sets(cache: Path | None, key: str, make) -> tuple[IdentitySet, IdentitySet, bool]:
    """The (train, test) sets from ``cache`` if its key matches, else made by ``make()`` and stored."""
    if cache is not None and cache.is_file():
        try:
            blob = load_torch_file(cache, "identity-set cache", "delete it to rebuild the cache")
            if blob.get("key") == key:
                return IdentitySet(*blob["train"]), IdentitySet(*blob["test"]), True
        except RefusedFileError:  # pickled Python objects: refused, not run, not overwritten
            raise
        except Exception:  # noqa: BLE001 - a corrupt cache is rebuilt
            pass
    train, test = make()
    if cache is not None:
        with atomic_path(cache, suffix=".pt") as tmp:
            torch.save(
                {
                    "key": key,
                    "train": [train.crops, train.labels, train.targets],
                    "test": [test.crops, test.labels, test.targets],
                },
                tmp,
            )
    return train, test, False


@dataclass(frozen=True)
class StageContext:
    """The inputs of one ``idnet`` run (what :func:`run_idnet` was given, paths resolved)."""

    model_path: Path
    out_path: Path
    report_dir: Path
    settings: IdNetSettings
    render: RenderSettings
    synth: SynthSettings
    seed: int
    resume_dir: Path | None
    progress: bool

    def resume_file(self, name: str) -> Path | None:
        return self.resume_dir / name if self.resume_dir is not None else None


@dataclass(frozen=True)
class Verification:
    """Held-out verification of the trained network beside the untrained one, and its factor sensitivity."""

    metrics: dict
    curve: tuple
    untrained: dict
    untrained_curve: tuple
    sensitivity: dict
    seconds: float


def run_idnet(
    model_path: str | Path,
    out_path: str | Path,
    report_dir: str | Path,
    settings: IdNetSettings,
    render: RenderSettings,
    synth: SynthSettings | None = None,
    seed: int = 0,
    resume_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Run the stage (see the module docstring); returns the metrics written to ``metrics.json``.

    ``synth``: the appearance settings of the composed faces (``None``: the defaults)."""
    t_all = time.perf_counter()
    synth = synth if synth is not None else SynthSettings()
    load_start = _load_avg()
    if settings.train.threads > 0:
        torch.set_num_threads(int(settings.train.threads))
    ctx = StageContext(
        Path(model_path),
        Path(out_path),
        Path(report_dir),
        settings,
        render,
        synth,
        seed,
        Path(resume_dir) if resume_dir is not None else None,
        progress,
    )
    model = load_face_model(ctx.model_path)
    with CropMaker(model, render, settings.data, synth, settings.net.crop_size) as maker:
        return _run(maker, ctx, t_all, load_start)


def _run(maker: CropMaker, ctx: StageContext, t_all: float, load_start: list[float] | None) -> dict:
    """Steps 1-5 of the module docstring."""
    t0 = time.perf_counter()
    train, test, from_cache, data_key = _identity_sets(maker, ctx)
    t_data = time.perf_counter() - t0
    net, result = train_identity_net(
        train,
        ctx.settings.net,
        ctx.settings.train,
        seed=ctx.seed,
        resume_path=ctx.resume_file("resume.pt"),
        data_key=data_key,
        progress=ctx.progress,
    )
    ver = _verify(net, test, maker, ctx)
    report = _quality_report(ver, result, ctx, sum(p.numel() for p in net.parameters()))
    save_identity_net(
        net,
        ctx.out_path,
        meta={
            "roc_auc": report["roc_auc"],
            "tar_at_far": report["tar_at_far"],
            "far": report["far"],
            "seed": int(ctx.seed),
            "face_model": str(ctx.model_path),
        },
    )
    report["sizes"]["checkpoint_bytes"] = ctx.out_path.stat().st_size
    _write_reports(
        ctx,
        report,
        ver,
        result,
        {"data": t_data, "train": result.seconds, "eval": ver.seconds},
        from_cache,
        t_all,
        load_start,
    )
    for p in (ctx.resume_file("data.pt"), ctx.resume_file("resume.pt")):  # a finished run leaves nothing to resume
        if p is not None:
            p.unlink(missing_ok=True)
    return report


def _identity_sets(maker: CropMaker, ctx: StageContext) -> tuple[IdentitySet, IdentitySet, bool, str]:
    """Step 1: the training and held-out identity sets (from the resume folder when their fingerprint
    matches); returns them, whether they came from the cache, and the fingerprint."""
    ds, ns, seed = ctx.settings.data, ctx.settings.net, ctx.seed
    data_key = fingerprint(
        asdict(ds), ns.crop_size, asdict(ctx.render), asdict(ctx.synth), seed, _file_hash(ctx.model_path)
    )

    def make() -> tuple[IdentitySet, IdentitySet]:
        bar = (lambda d: d) if ctx.progress else (lambda d: None)
        train = make_identity_set(
            maker,
            np.random.default_rng([seed, 1]),
            ds.train_identities,
            ds.train_views,
            desc=bar("idnet: training views"),
        )
        test = make_identity_set(
            maker,
            np.random.default_rng([seed, 2]),
            ds.test_identities,
            ds.test_views,
            desc=bar("idnet: held-out views"),
        )
        return train, test

    train, test, from_cache = _cached_sets(ctx.resume_file("data.pt"), data_key, make)
    return train, test, from_cache, data_key


def _verify(net: torch.nn.Module, test: IdentitySet, maker: CropMaker, ctx: StageContext) -> Verification:
    """Step 4: verification on the held-out identities, for the trained and an untrained network, and the
    per-factor sensitivity of the trained one."""
    t0 = time.perf_counter()
    es = ctx.settings.eval
    labels = test.labels.numpy()
    metrics, curve = verification_metrics(embed_crops(net, test.crops), labels, es)
    torch.manual_seed(ctx.seed)
    untrained = build_identity_net(ctx.settings.net)
    base_metrics, base_curve = verification_metrics(embed_crops(untrained, test.crops), labels, es)
    sens = factor_sensitivity(net, maker, np.random.default_rng([ctx.seed, 3]), es.sensitivity_identities)
    return Verification(metrics, curve, base_metrics, base_curve, sens, time.perf_counter() - t0)


def _quality_report(ver: Verification, result: TrainResult, ctx: StageContext, n_params: int) -> dict:
    """The content of ``metrics.json`` (without the checkpoint's size)."""
    m, ds, ns = ver.metrics, ctx.settings.data, ctx.settings.net
    last = result.history[-1] if result.history else {}
    return {
        "roc_auc": m["roc_auc"],
        "tar_at_far": m["tar_at_far"],
        "far": m["far"],
        "threshold": m["threshold"],
        "genuine_pairs": m["genuine_pairs"],
        "impostor_pairs": m["impostor_pairs"],
        "genuine_mean_similarity": m["genuine_mean"],
        "impostor_mean_similarity": m["impostor_mean"],
        "untrained_roc_auc": ver.untrained["roc_auc"],
        "untrained_tar_at_far": ver.untrained["tar_at_far"],
        "sensitivity": ver.sensitivity,
        "identity_more_sensitive_than_nuisances": bool(ver.sensitivity["margin"] > 0),
        "train": {
            "final_loss": last.get("loss"),
            "final_accuracy": last.get("accuracy"),
            "epochs": result.epochs_done,
            "steps": result.steps,
            "skipped_steps": result.skipped_steps,
        },
        "sizes": {
            "train_identities": ds.train_identities,
            "train_views": ds.train_views,
            "test_identities": ds.test_identities,
            "test_views": ds.test_views,
            "image_size": ctx.render.image_size,
            "crop_size": ns.crop_size,
            "embedding_dim": ns.embedding_dim,
            "parameters": int(n_params),
        },
    }


def _write_reports(
    ctx: StageContext,
    report: dict,
    ver: Verification,
    result: TrainResult,
    seconds: dict,
    from_cache: bool,
    t_all: float,
    load_start: list[float] | None,
) -> None:
    """Step 5: ``metrics.json``, ``roc.png`` and ``run.json`` under the report folder."""
    ctx.report_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(ctx.report_dir / "metrics.json", report)
    plot_roc(
        {
            f"trained (AUC {ver.metrics['roc_auc']:.3f})": ver.curve,
            f"untrained (AUC {ver.untrained['roc_auc']:.3f})": ver.untrained_curve,
        },
        ctx.report_dir / "roc.png",
        ver.metrics["far"],
    )
    write_json_reproducible(
        ctx.report_dir / "run.json",
        {
            "seconds": {**{k: round(v, 1) for k, v in seconds.items()}, "total": round(time.perf_counter() - t_all, 1)},
            "data_from_cache": from_cache,
            "resumed_from_epoch": result.resumed_from_epoch,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": _load_avg(),
            "history": result.history,
        },
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Train the offline identity (perceptual) network on synthetic identities.")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default="models/facemodel.npz", help="face model (.npz, project format)")
    ap.add_argument("--out", default="models/idnet.pt")
    ap.add_argument("--reports", default="reports/idnet")
    ap.add_argument("--resume-dir", default="checkpoints/idnet")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    from focus.stage_cli import report_errors

    return report_errors("idnet", lambda: _main(args))


def _main(args) -> int:  # noqa: ANN001
    params = merged_params([args.params])  # every group checked
    settings = from_dict(IdNetSettings, params.get("idnet"), f"{args.params}:idnet")
    render = from_dict(RenderSettings, params.get("render"), f"{args.params}:render")
    synth = from_dict(SynthSettings, params.get("synth"), f"{args.params}:synth")
    report = run_idnet(
        args.model,
        args.out,
        args.reports,
        settings,
        render,
        synth,
        seed=int(params.get("seed", 0)),
        resume_dir=args.resume_dir,
        progress=not args.no_progress,
    )
    print(
        f"idnet: ROC AUC {report['roc_auc']:.4f}, TAR@FAR={report['far']:g} {report['tar_at_far']:.4f} "
        f"(untrained {report['untrained_roc_auc']:.4f}); identity/nuisance margin {report['sensitivity']['margin']:.3f}"
    )
    return 0
