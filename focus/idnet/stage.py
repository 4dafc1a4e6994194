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

from focus.config import from_dict, load_params
from focus.facemodel.model import load_face_model
from focus.idnet.data import CropMaker, IdentityDataSettings, IdentitySet, make_identity_set
from focus.idnet.evaluation import EvalSettings, embed_crops, factor_sensitivity, plot_roc, verification_metrics
from focus.idnet.network import IdentityNetSettings, build_identity_net, save_identity_net
from focus.idnet.training import TrainSettings, fingerprint, train_identity_net
from focus.io_utils import atomic_path, write_json_atomic
from focus.run_info import write_json_reproducible
from focus.render.renderer import RenderSettings
from focus.synth.settings import SynthSettings


@dataclass(frozen=True)
class IdNetSettings:
    """Everything of the ``idnet`` group of ``params.yaml``."""

    data: IdentityDataSettings = field(default_factory=IdentityDataSettings)
    net: IdentityNetSettings = field(default_factory=IdentityNetSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)


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
            blob = torch.load(cache, map_location="cpu", weights_only=True)
            if blob.get("key") == key:
                return IdentitySet(*blob["train"]), IdentitySet(*blob["test"]), True
        except Exception:  # noqa: BLE001 - a corrupt cache is rebuilt
            pass
    train, test = make()
    if cache is not None:
        with atomic_path(cache, suffix=".pt") as tmp:
            torch.save({"key": key, "train": [train.crops, train.labels, train.targets],
                        "test": [test.crops, test.labels, test.targets]}, tmp)
    return train, test, False


def run_idnet(model_path: str | Path, out_path: str | Path, report_dir: str | Path, settings: IdNetSettings,
              render: RenderSettings, synth: SynthSettings = SynthSettings(), seed: int = 0,
              resume_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Run the stage (see the module docstring); returns the metrics written to ``metrics.json``."""
    t_all = time.perf_counter()
    load_start = _load_avg()
    if settings.train.threads > 0:
        torch.set_num_threads(int(settings.train.threads))
    model_path, out_path, report_dir = Path(model_path), Path(out_path), Path(report_dir)
    resume_dir = Path(resume_dir) if resume_dir is not None else None
    model = load_face_model(model_path)
    ds, ns = settings.data, settings.net
    with CropMaker(model, render, ds, synth, ns.crop_size) as maker:
        return _run(maker, model_path, out_path, report_dir, settings, render, synth, seed, resume_dir, progress,
                    t_all, load_start)


def _run(maker: CropMaker, model_path: Path, out_path: Path, report_dir: Path, settings: IdNetSettings,
         render: RenderSettings, synth: SynthSettings, seed: int, resume_dir: Path | None, progress: bool,
         t_all: float, load_start) -> dict:
    ds, ns = settings.data, settings.net

    # 1. data
    t0 = time.perf_counter()
    data_key = fingerprint(asdict(ds), ns.crop_size, asdict(render), asdict(synth), seed, _file_hash(model_path))

    def make() -> tuple[IdentitySet, IdentitySet]:
        bar = (lambda d: d) if progress else (lambda d: None)
        train = make_identity_set(maker, np.random.default_rng([seed, 1]), ds.train_identities, ds.train_views,
                                  desc=bar("idnet: training views"))
        test = make_identity_set(maker, np.random.default_rng([seed, 2]), ds.test_identities, ds.test_views,
                                 desc=bar("idnet: held-out views"))
        return train, test

    cache = resume_dir / "data.pt" if resume_dir is not None else None
    train, test, from_cache = _cached_sets(cache, data_key, make)
    t_data = time.perf_counter() - t0

    # 2. training
    resume = resume_dir / "resume.pt" if resume_dir is not None else None
    net, result = train_identity_net(train, ns, settings.train, seed=seed, resume_path=resume, data_key=data_key,
                                     progress=progress)

    # 3. evaluation
    t0 = time.perf_counter()
    labels = test.labels.numpy()
    metrics, curve = verification_metrics(embed_crops(net, test.crops), labels, settings.eval)
    torch.manual_seed(seed)
    untrained = build_identity_net(ns)
    base_metrics, base_curve = verification_metrics(embed_crops(untrained, test.crops), labels, settings.eval)
    sens = factor_sensitivity(net, maker, np.random.default_rng([seed, 3]), settings.eval.sensitivity_identities)
    t_eval = time.perf_counter() - t0

    n_params = sum(p.numel() for p in net.parameters())
    report = {
        "roc_auc": metrics["roc_auc"],
        "tar_at_far": metrics["tar_at_far"],
        "far": metrics["far"],
        "threshold": metrics["threshold"],
        "genuine_pairs": metrics["genuine_pairs"],
        "impostor_pairs": metrics["impostor_pairs"],
        "genuine_mean_similarity": metrics["genuine_mean"],
        "impostor_mean_similarity": metrics["impostor_mean"],
        "untrained_roc_auc": base_metrics["roc_auc"],
        "untrained_tar_at_far": base_metrics["tar_at_far"],
        "sensitivity": sens,
        "identity_more_sensitive_than_nuisances": bool(sens["margin"] > 0),
        "train": {
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "final_accuracy": result.history[-1]["accuracy"] if result.history else None,
            "epochs": result.epochs_done,
            "steps": result.steps,
            "skipped_steps": result.skipped_steps,
        },
        "sizes": {
            "train_identities": ds.train_identities,
            "train_views": ds.train_views,
            "test_identities": ds.test_identities,
            "test_views": ds.test_views,
            "image_size": render.image_size,
            "crop_size": ns.crop_size,
            "embedding_dim": ns.embedding_dim,
            "parameters": int(n_params),
        },
    }
    save_identity_net(net, out_path, meta={"roc_auc": report["roc_auc"], "tar_at_far": report["tar_at_far"],
                                           "far": report["far"], "seed": int(seed), "face_model": str(model_path)})
    report["sizes"]["checkpoint_bytes"] = out_path.stat().st_size
    report_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report_dir / "metrics.json", report)
    plot_roc({f"trained (AUC {metrics['roc_auc']:.3f})": curve,
              f"untrained (AUC {base_metrics['roc_auc']:.3f})": base_curve}, report_dir / "roc.png", metrics["far"])
    write_json_reproducible(report_dir / "run.json", {
        "seconds": {"data": round(t_data, 1), "train": round(result.seconds, 1), "eval": round(t_eval, 1),
                    "total": round(time.perf_counter() - t_all, 1)},
        "data_from_cache": from_cache,
        "resumed_from_epoch": result.resumed_from_epoch,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": _load_avg(),
        "history": result.history,
    })
    for p in (cache, resume):  # a finished run leaves nothing to resume
        if p is not None:
            p.unlink(missing_ok=True)
    return report


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
    params = load_params(args.params)
    settings = from_dict(IdNetSettings, params.get("idnet"), f"{args.params}:idnet")
    render = from_dict(RenderSettings, params.get("render"), f"{args.params}:render")
    synth = from_dict(SynthSettings, params.get("synth"), f"{args.params}:synth")
    report = run_idnet(args.model, args.out, args.reports, settings, render, synth, seed=int(params.get("seed", 0)),
                       resume_dir=args.resume_dir, progress=not args.no_progress)
    print(f"idnet: ROC AUC {report['roc_auc']:.4f}, TAR@FAR={report['far']:g} {report['tar_at_far']:.4f} "
          f"(untrained {report['untrained_roc_auc']:.4f}); identity/nuisance margin {report['sensitivity']['margin']:.3f}")
    return 0
