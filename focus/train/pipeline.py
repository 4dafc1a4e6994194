"""The three training stages of FOCUS, as the DVC pipeline runs them (``stages/train_*.py``).

* :func:`run_init` -- unsupervised initialisation of the encoder with ``L_init``; validation with
  the pseudo masks ``z(p)`` as segmentation. Writes ``models/focus_init.pt``.
* :func:`run_pretrain_seg` -- pseudo masks of every training image from the initialised encoder
  (PNG, ``data/pseudo_masks/``), then U-Net pre-training with plain BCE. Writes
  ``models/focus_pretrain_seg.pt`` (encoder + U-Net).
* :func:`run_em` -- ``em.rounds`` EM rounds (segmentation phase, then reconstruction phase);
  per-round snapshots ``checkpoints/em/round_XX.pt`` and the trained model ``models/focus.pt``;
  the validation of every phase in ``reports/train/em_metrics.json`` and ``reports/train/em_rounds.png``.

Each stage keeps its resumable state in ``checkpoints/<stage>/last.pt`` and resumes from it when
re-run with the same settings and inputs (see :mod:`focus.train.state`); under ``torchrun`` it
runs data-parallel (:mod:`focus.train.distributed`). Every networks-only file (``models/focus*.pt``,
``round_XX.pt``) is read back with :func:`focus.nets.trained.load_trained`.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from focus.config import check_params, from_dict
from focus.data import DataSettings, FaceImageFolder, template_from_model
from focus.devices import set_threads
from focus.errors import InputFileError
from focus.facemodel.model import FaceModel, load_face_model
from focus.io_utils import atomic_path, remove_stale_temporaries
from focus.nets.encoder import ReconstructionEncoder
from focus.nets.perceptual import PerceptualNet
from focus.nets.trained import CHECKPOINT_FORMAT, load_trained
from focus.nets.unet import SegmentationUNet
from focus.paths import TrainPaths
from focus.precision import to_channels_last
from focus.render.renderer import FaceRenderer, RenderSettings
from focus.run_info import write_json_reproducible
from focus.train import distributed as D
from focus.train import steps as S
from focus.train.data import split_indices
from focus.train.pseudo_masks import PseudoMaskDataset, write_pseudo_masks
from focus.train.settings import EMSettings, InitSettings, PretrainSegSettings, TrainSettings, settings_dict
from focus.train.state import LAST, file_digest, fingerprint
from focus.train.trainer import Phase, Trainer
from focus.train.validation import evaluate, load_validation_set, read_truth

log = logging.getLogger("focus.train")


#: ``train`` settings that do not change the numbers a run produces (left out of fingerprints).
OPERATIONAL_KEYS = (
    "workers",
    "progress",
    "log_every",
    "checkpoint_every",
    "num_threads",
    "val_batch_size",
    "max_nonfinite",
    "pin_memory",
    "prefetch_factor",
)
#: ``train`` settings that change the numbers only when set (left out of fingerprints at their
#: default, so runs resumed from checkpoints of earlier versions keep their fingerprint).
DEFAULT_OMITTED_KEYS = {"precision": "float32", "channels_last": False}


#: The training stages' files (moved to :mod:`focus.paths`; the name stays for callers).
Paths = TrainPaths


# ---------------------------------------------------------------------------- settings and setup
@dataclass
class Context:
    """Everything a training stage needs, built once by :func:`setup`."""

    params: dict
    train: TrainSettings
    render: RenderSettings
    data: DataSettings
    model: FaceModel
    renderer: FaceRenderer
    perceptual: PerceptualNet | None
    train_set: FaceImageFolder
    plain_set: FaceImageFolder
    train_indices: list[int]
    val_set: FaceImageFolder
    val_indices: list[int]
    info: D.DistInfo
    digests: dict[str, str]
    paths: TrainPaths

    @property
    def device(self) -> torch.device:
        return self.info.device

    def face_region(self) -> torch.Tensor | None:
        r = self.model.regions.get("face")
        return None if r is None else r.to(self.device)


def load_perceptual(ts: TrainSettings) -> PerceptualNet | None:
    """The frozen face-recognition network of ``train.identity`` (``None`` for ``"none"``)."""
    if ts.identity == "none":
        return None
    if not ts.identity_path:
        raise InputFileError(
            "params.yaml",
            f"train.identity is {ts.identity!r} but train.identity_path is empty",
            "name the checkpoint or set train.identity: none",
        )
    if ts.identity == "arcface":
        return PerceptualNet.from_arcface(ts.identity_path, ts.identity_arch)
    from focus.idnet.network import load_identity_net

    return load_identity_net(ts.identity_path)


def shared_settings(params: dict) -> tuple[TrainSettings, RenderSettings, DataSettings]:
    """The ``train``, ``render`` and ``data`` groups, with one image size: ``train.image_size``
    when set, else ``render.image_size`` (every value checked: :func:`focus.config.from_dict`)."""
    ts = from_dict(TrainSettings, params.get("train"), "params.yaml", key="train")
    rs = from_dict(RenderSettings, params.get("render"), "params.yaml", key="render")
    if ts.image_size is not None and ts.image_size != rs.image_size:
        rs = replace(rs, image_size=int(ts.image_size))
    ds = from_dict(DataSettings, params.get("data"), "params.yaml", key="data")
    return ts, rs, replace(ds, crop_size=rs.image_size)


def _image_sets(ts: TrainSettings, ds: DataSettings, template) -> tuple:
    """``(train_set, plain_set, train_indices, val_set, val_indices)``: the augmented training
    images, the same un-augmented, and the held-out part (``train.val_count`` or ``train.val_data``)."""
    train_set = FaceImageFolder(ts.data, template, ds, augment=ts.augment, seed=ts.seed)
    plain_set = FaceImageFolder(ts.data, template, ds, augment=False, seed=ts.seed)
    if ts.val_data:
        val_set = FaceImageFolder(ts.val_data, template, ds, augment=False, seed=ts.seed)
        return train_set, plain_set, list(range(len(train_set))), val_set, list(range(len(val_set)))
    train_idx, val_idx = split_indices(len(train_set), ts.val_count)
    return train_set, plain_set, train_idx, plain_set, val_idx


def _input_digests(ts: TrainSettings) -> dict[str, str]:
    """SHA-256 of every input file that determines a run (part of its fingerprint)."""
    return {
        "facemodel": file_digest(ts.facemodel),
        "landmarks": file_digest(Path(ts.data) / "landmarks.csv"),
        "truth": file_digest(Path(ts.data) / "truth.npz"),
        "identity": file_digest(ts.identity_path) if ts.identity != "none" else "none",
    }


def setup(params: dict, paths: TrainPaths | None = None, need_perceptual: bool = True) -> Context:
    """Read the settings, the face model and the data; set threads, device and DDP. ``paths``: the
    ``paths`` group of ``params`` unless given."""
    paths = paths if paths is not None else TrainPaths.from_params(params)
    ts, rs, ds = shared_settings(params)
    info = D.setup(ts.device)
    log.info("torch threads: %d (train.num_threads = %d)", set_threads(ts.num_threads, info.world_size), ts.num_threads)
    torch.manual_seed(ts.seed)
    model = load_face_model(ts.facemodel).to(info.device)
    renderer = FaceRenderer(model, rs).to(info.device)
    perceptual = load_perceptual(ts) if need_perceptual else None
    if perceptual is not None:
        perceptual = _layout(ts, perceptual.to(info.device))
    template = template_from_model(model, rs.image_size, rs.distance, rs.focal_at_224)
    train_set, plain_set, train_idx, val_set, val_idx = _image_sets(ts, ds, template)
    return Context(
        params,
        ts,
        rs,
        ds,
        model,
        renderer,
        perceptual,
        train_set,
        plain_set,
        train_idx,
        val_set,
        val_idx,
        info,
        _input_digests(ts),
        paths,
    )


def _fingerprint(
    ctx: Context, stage: str, stage_settings: Any, inputs: dict[str, str], drop: tuple[str, ...] = ()
) -> str:
    train = {
        k: v
        for k, v in settings_dict(ctx.train).items()
        if k not in OPERATIONAL_KEYS and DEFAULT_OMITTED_KEYS.get(k, object()) != v
    }
    own = {k: v for k, v in settings_dict(stage_settings).items() if k not in drop}
    return fingerprint(
        {
            "stage": stage,
            "train": train,
            "own": own,
            "render": settings_dict(ctx.render),
            "data": settings_dict(ctx.data),
            "digests": ctx.digests,
            "inputs": inputs,
            "world_size": ctx.info.world_size,
            "n_train": len(ctx.train_indices),
        }
    )


def _layout(ts: TrainSettings, net):
    """``net`` in channels-last layout when ``train.channels_last`` (else unchanged)."""
    return to_channels_last(net) if ts.channels_last else net


def _amp(ctx: Context) -> dict[str, Any]:
    """The precision keywords of the step objectives (:mod:`focus.train.steps`)."""
    return {"precision": ctx.train.precision, "channels_last": ctx.train.channels_last}


def build_encoder(ctx: Context) -> ReconstructionEncoder:
    torch.manual_seed(ctx.train.seed)
    return _layout(ctx.train, ReconstructionEncoder(ctx.renderer.layout, ctx.train.encoder).to(ctx.device))


def build_unet(ctx: Context) -> SegmentationUNet:
    torch.manual_seed(ctx.train.seed + 1)
    return _layout(ctx.train, SegmentationUNet(ctx.train.unet).to(ctx.device))


def _meta(ctx: Context) -> dict[str, Any]:
    """What a reader needs to rebuild the networks of a checkpoint (:func:`focus.nets.trained.load_trained`)."""
    lay = ctx.renderer.layout
    return {
        "format": CHECKPOINT_FORMAT,
        "layout": [lay.n_id, lay.n_exp, lay.n_albedo],
        "encoder_settings": settings_dict(ctx.train.encoder),
        "unet_settings": settings_dict(ctx.train.unet),
        "render_settings": settings_dict(ctx.render),
        "data_settings": settings_dict(ctx.data),
        "facemodel": ctx.train.facemodel,
    }


def _validation(ctx: Context):
    """A ``validate(phase, encoder, unet)`` function on the held-out images (loaded once, rank 0)."""
    if not ctx.info.is_main:
        return None
    truth = read_truth(ctx.val_set.root, [ctx.val_set.names[i] for i in ctx.val_indices])
    vs = load_validation_set(ctx.val_set, ctx.val_indices, truth).to(ctx.device)
    if vs.true_id is None:
        log.warning("%s has no truth.npz with identity coefficients: no shape error in validation", ctx.val_set.root)
    region = ctx.face_region()

    def run(encoder, unet=None) -> dict:
        t0 = time.perf_counter()
        res = evaluate(encoder, ctx.renderer, vs, unet=unet, batch_size=ctx.train.val_batch_size, face_region=region)
        # the time goes to the log only: records end up in checkpoints and models (hashed outputs)
        log.info("validation: %.1f s", time.perf_counter() - t0)
        return res

    return run


def _write_stage_report(ctx: Context, stage: str, trainer: Trainer, seconds: float, extra: dict | None = None) -> None:
    if not ctx.info.is_main:
        return
    write_json_reproducible(
        ctx.paths.reports / f"{stage}_metrics.json",
        {
            "stage": stage,
            "seconds": seconds,
            "nonfinite_skipped": trainer.nonfinite_total,
            "resumed_from": trainer.resumed_from,
            "world_size": ctx.info.world_size,
            **(extra or {}),
            "records": trainer.records,
        },
    )


def _clean_run_dir(run_dir: Path, keep_last: bool) -> None:
    """Remove stale checkpoints (from other settings) before a fresh start."""
    if not run_dir.is_dir():
        return
    for p in run_dir.glob("*.pt"):
        if keep_last and p.name == LAST:
            continue
        p.unlink()


def _prepare_trainer(ctx: Context, trainer: Trainer, n_phases: int) -> None:
    """Resume if possible (a state of the same fingerprint within ``n_phases``), else start clean."""
    resumed = trainer.try_resume(max_phase_index=n_phases)
    if not resumed and ctx.info.is_main:
        _clean_run_dir(trainer.run_dir, keep_last=False)
    D.barrier(ctx.info)


# ---------------------------------------------------------------------------- stage 1: init
def run_init(params: dict, paths: TrainPaths | None = None) -> list[dict]:
    """Unsupervised initialisation of the encoder (docs/method.md 3.1)."""
    t0 = time.perf_counter()
    check_params(params)  # every group, before anything is read or written
    st = from_dict(InitSettings, params.get("init"), "params.yaml", key="init")
    ctx = setup(params, paths)
    paths = ctx.paths
    encoder = build_encoder(ctx)
    run_dir = paths.run_dir("init")
    fp = _fingerprint(ctx, "init", st, {})
    trainer = Trainer(
        "init",
        {"encoder": encoder},
        {"encoder": st.optim},
        ctx.train,
        run_dir,
        paths.reports / "init",
        fp,
        ctx.info,
        extra_state=_meta(ctx),
    )
    _prepare_trainer(ctx, trainer, 1)

    def objective(b):
        thr = st.threshold_at(trainer.net_steps["encoder"])
        w = st.weights if thr == st.weights.threshold else replace(st.weights, threshold=thr)
        loss, terms = S.init_objective(trainer.module("encoder"), ctx.renderer, ctx.perceptual, b, w, **_amp(ctx))
        return loss, {**terms, "threshold": torch.tensor(thr)}

    phases = [Phase("init", "encoder", st.steps, objective, ctx.train_set, ctx.train_indices)]
    val = _validation(ctx)
    trainer.run(phases, (lambda ph: val(encoder)) if val else None)
    # always (also when a finished run was only resumed: DVC removes the non-persistent output)
    trainer.save_snapshot(str(paths.final("init").resolve()), phases[-1])
    _write_stage_report(ctx, "init", trainer, time.perf_counter() - t0)
    return trainer.records


# ---------------------------------------------------------------------------- stage 2: pseudo masks + U-Net
def run_pretrain_seg(params: dict, paths: TrainPaths | None = None) -> list[dict]:
    """Pseudo masks from the initialised encoder and U-Net pre-training with BCE (docs/method.md 3.2)."""
    t0 = time.perf_counter()
    check_params(params)  # every group, before anything is read or written
    st = from_dict(PretrainSegSettings, params.get("pretrain_seg"), "params.yaml", key="pretrain_seg")
    ctx = setup(params, paths, need_perceptual=False)
    paths = ctx.paths
    init_path = paths.final("init")
    encoder, _, _ = load_trained(init_path, ctx.device)
    encoder = _layout(ctx.train, encoder)
    unet = build_unet(ctx)
    fp = _fingerprint(ctx, "pretrain_seg", st, {"init": file_digest(init_path)})
    mask_dir = paths.pseudo_masks
    summary = {}
    if ctx.info.is_main:
        summary = write_pseudo_masks(
            encoder,
            ctx.renderer,
            ctx.plain_set,
            ctx.train_indices,
            mask_dir,
            ctx.train.val_batch_size,
            ctx.device,
            progress=ctx.train.progress,
        )
        log.info("pseudo masks: %s", summary)
    D.barrier(ctx.info)
    trainer = Trainer(
        "pretrain_seg",
        {"encoder": encoder, "unet": unet},
        {"unet": st.optim},
        ctx.train,
        paths.run_dir("pretrain_seg"),
        paths.reports / "pretrain_seg",
        fp,
        ctx.info,
        extra_state=_meta(ctx),
    )
    _prepare_trainer(ctx, trainer, 1)
    data = PseudoMaskDataset(ctx.plain_set, mask_dir)

    def objective(b):
        return S.pretrain_seg_objective(trainer.module("unet"), encoder, ctx.renderer, b, **_amp(ctx))

    phases = [Phase("pretrain_seg", "unet", st.steps, objective, data, ctx.train_indices)]
    val = _validation(ctx)
    trainer.run(phases, (lambda ph: val(encoder, unet)) if val else None)
    trainer.save_snapshot(str(paths.final("pretrain_seg").resolve()), phases[-1])
    _write_stage_report(ctx, "pretrain_seg", trainer, time.perf_counter() - t0, {"pseudo_masks": summary})
    return trainer.records


# ---------------------------------------------------------------------------- stage 3: EM
def frozen_copy(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` in eval mode without gradients (the pseudo-mask encoder of ``em.masks: pseudo``)."""
    return copy.deepcopy(net).eval().requires_grad_(False)


def em_phases(
    ctx: Context, st: EMSettings, trainer: Trainer, encoder, unet, mask_encoder: torch.nn.Module | None = None
) -> list[Phase]:
    """Per round: ``r{k}/seg`` (U-Net, encoder frozen) then ``r{k}/rec`` (encoder, U-Net frozen).

    With ``em.masks: pseudo`` (ablation): only ``r{k}/rec``, on the fixed pseudo masks of
    ``mask_encoder`` (:func:`frozen_copy` of the initialised encoder, taken before any resume).
    """

    def seg(b):
        return S.segmentation_objective(
            trainer.module("unet"), encoder, ctx.renderer, ctx.perceptual, b, st.seg_weights, **_amp(ctx)
        )

    if st.masks == "pseudo":
        if mask_encoder is None:
            raise ValueError("em.masks is 'pseudo' but no pseudo-mask encoder was given")

        def rec(b):
            return S.pseudo_reconstruction_objective(
                trainer.module("encoder"), mask_encoder, ctx.renderer, ctx.perceptual, b, st.rec_weights
            )
    else:

        def rec(b):
            return S.reconstruction_objective(
                trainer.module("encoder"),
                unet,
                ctx.renderer,
                ctx.perceptual,
                b,
                st.rec_weights,
                st.grad_through_unet,
                **_amp(ctx),
            )

    phases = []
    for r in range(1, st.rounds + 1):
        if st.masks != "pseudo":
            phases.append(
                Phase(
                    f"r{r}/seg",
                    "unet",
                    st.seg_steps,
                    seg,
                    ctx.train_set,
                    ctx.train_indices,
                    round=r,
                    freeze_batchnorm=st.freeze_batchnorm,
                )
            )
        phases.append(
            Phase(
                f"r{r}/rec",
                "encoder",
                st.rec_steps,
                rec,
                ctx.train_set,
                ctx.train_indices,
                round=r,
                snapshot=f"round_{r:02d}.pt",
                freeze_batchnorm=st.freeze_batchnorm,
            )
        )
    return phases


def run_em(params: dict, paths: TrainPaths | None = None) -> list[dict]:
    """``em.rounds`` EM rounds from the pre-trained networks (docs/method.md 3.3, 3.4)."""
    t0 = time.perf_counter()
    # every group checked before anything is read or written: e.g. ``em.rounds: 0`` would otherwise
    # replace the trained model with the pre-trained one and delete the round snapshots
    check_params(params)
    st = from_dict(EMSettings, params.get("em"), "params.yaml", key="em")
    ctx = setup(params, paths)
    paths = ctx.paths
    start_path = paths.final("pretrain_seg")
    run_dir = paths.run_dir("em")
    # ``rounds`` is left out of the fingerprint: rounds 1..k are the same whatever the total, so
    # asking for more rounds continues a finished run.
    fp = _fingerprint(ctx, "em", st, {"start": file_digest(start_path)}, drop=("rounds",))
    encoder, unet, _ = load_trained(start_path, ctx.device)
    if unet is None:
        raise InputFileError(start_path, "has no U-Net", "run the pretrain_seg stage")
    encoder, unet = _layout(ctx.train, encoder), _layout(ctx.train, unet)
    # the initialised encoder, before a resume replaces its weights (em.masks: pseudo; float32)
    mask_encoder = frozen_copy(encoder) if st.masks == "pseudo" else None
    trainer = Trainer(
        "em",
        {"encoder": encoder, "unet": unet},
        {"encoder": st.encoder_optim, "unet": st.unet_optim},
        ctx.train,
        run_dir,
        paths.reports / "em",
        fp,
        ctx.info,
        extra_state=_meta(ctx),
    )
    _prepare_trainer(ctx, trainer, 2 * st.rounds)
    phases = em_phases(ctx, st, trainer, encoder, unet, mask_encoder)
    if ctx.info.is_main:
        _remove_rounds_beyond(run_dir, st.rounds)
    val = _validation(ctx)
    trainer.run(phases, (lambda ph: val(encoder, unet)) if val else None)
    if ctx.info.is_main:
        _publish(run_dir / f"round_{st.rounds:02d}.pt", paths.final("em"))
        _write_em_report(ctx, trainer, st, time.perf_counter() - t0)
    D.barrier(ctx.info)
    return trainer.records


def _remove_rounds_beyond(run_dir: Path, rounds: int) -> None:
    """Delete the snapshots of rounds after ``rounds`` (stale: a finished longer run now shortened)."""
    for p in run_dir.glob("round_*.pt"):
        if int(p.stem.split("_")[1]) > rounds:
            p.unlink()


def _publish(src: Path, final: Path) -> None:
    """Copy the last round's snapshot to the stage's final file, atomically."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final.parent, final.name)
    with atomic_path(final, suffix=".pt") as tmp:
        shutil.copyfile(src, tmp)


def _write_em_report(ctx: Context, trainer: Trainer, st: EMSettings, seconds: float) -> None:
    from focus.train.report import em_summary, plot_em_rounds
    from focus.train.validation import read_records

    reports = ctx.paths.reports
    before = []
    for stage in ("init", "pretrain_seg"):
        path = reports / f"{stage}_metrics.json"
        try:
            before += read_records(path)
        except InputFileError:
            log.warning("%s missing: the EM report lacks the %s record", path, stage)
    records = before + trainer.records
    summary = em_summary(records)
    write_json_reproducible(
        reports / "em_metrics.json",
        {
            "stage": "em",
            "rounds": st.rounds,
            "seconds": seconds,
            "nonfinite_skipped": trainer.nonfinite_total,
            "resumed_from": trainer.resumed_from,
            "world_size": ctx.info.world_size,
            "summary": summary,
            "records": records,
        },
    )
    plot_em_rounds(records, reports / "em_rounds.png")


__all__ = [
    "Context",
    "Paths",
    "TrainPaths",
    "load_perceptual",
    "run_em",
    "run_init",
    "run_pretrain_seg",
    "setup",
    "shared_settings",
]
