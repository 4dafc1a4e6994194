"""The training loop shared by every FOCUS phase: modes, optimisers, resumption, logging, DDP.

A training **stage** (``init``, ``pretrain_seg``, ``em``) is a list of :class:`Phase` objects run
in order by a :class:`Trainer`. A phase trains one network (``"encoder"`` or ``"unet"``) for a
number of steps with an objective from :mod:`focus.train.steps`; every other network is frozen
for the phase: eval mode and ``requires_grad=False`` (it stays unchanged; gradients may still
flow *through* it to the trained network, as through the U-Net in the reconstruction phase).

Per step: the batch of global data step ``t`` (:mod:`focus.train.data`), the learning rate of
the trained network's own step count, the objective, and

* a **non-finite** loss or gradient skips the step (no update) and is counted; after
  ``train.max_nonfinite`` in a row the run stops with :class:`TrainingDiverged`, naming the
  phase, the step, the last checkpoint and the logs to look at;
* every ``train.log_every`` steps the loss terms go to dvclive (rank 0);
* every ``train.checkpoint_every`` steps and at the end of the phase a resumable ``last.pt`` is
  written atomically (rank 0), holding networks, optimisers, step counters, the validation
  records so far and the RNG state (:mod:`focus.train.state`).

After a phase the ``validate`` callback (rank 0) measures the networks on held-out images; its
result is appended to :attr:`Trainer.records` and the phase's snapshot (weights only) is written.
Re-running a stage with the same fingerprint resumes from ``last.pt`` at the exact step.

Ctrl-C during :meth:`Trainer.run` raises :class:`TrainingInterrupted`, whose one-line message
names the last checkpoint (``focus train`` prints it and exits with status 130). A checkpoint
write killed outright (``SIGKILL``) can leave a temporary ``.<name>.XXXXXXXX.pt`` in the run
folder; the next run removes it (:func:`focus.io_utils.remove_stale_temporaries`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from focus.errors import FocusError
from focus.io_utils import remove_stale_temporaries
from focus.train import distributed as D
from focus.train.data import train_loader
from focus.train.settings import OptimSettings, TrainSettings
from focus.train.state import LAST, find_resumable, rng_state, save_checkpoint, set_rng_state

log = logging.getLogger("focus.train")


class TrainingDiverged(FocusError):
    """Too many non-finite losses in a row: the run stopped (see the message for where to look)."""


class TrainingInterrupted(FocusError):
    """The run was interrupted (Ctrl-C); the message says where the last checkpoint is.

    Attributes:
        checkpoint: the resumable state a re-run starts from (``None``: none written yet).
        exit_code: the shell's status for an interrupt (128 + SIGINT).
    """

    exit_code = 130

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass
class Phase:
    """One phase of a stage.

    Attributes:
        name: unique within the stage, used in logs and metric names (e.g. ``"r2/seg"``).
        net: the trained network, a key of :attr:`Trainer.nets`.
        steps: optimiser steps of the phase.
        objective: ``batch -> (loss, terms)``; gets the batch already on the device. Use
            :meth:`Trainer.module` inside it to get the (DDP-wrapped) trained network.
        dataset, indices: the training images (``dataset[indices]``).
        round: EM round (0 outside EM).
        snapshot: file name (in the run folder) of the weights-only snapshot written after the phase.
        freeze_batchnorm: keep the trained network's BatchNorm layers in eval mode (running
            statistics used and left unchanged) while its weights train.
    """

    name: str
    net: str
    steps: int
    objective: Callable[[dict], tuple[Tensor, dict[str, Tensor]]]
    dataset: Dataset
    indices: list[int]
    round: int = 0
    snapshot: str | None = None
    freeze_batchnorm: bool = False


def build_optimizer(params, s: OptimSettings) -> torch.optim.Optimizer:
    """The optimiser of :class:`OptimSettings` (learning rate set per step by the trainer)."""
    params = list(params)
    if s.name == "adam":
        return torch.optim.Adam(params, lr=s.lr, betas=tuple(s.betas), weight_decay=s.weight_decay)
    if s.name == "adadelta":
        return torch.optim.Adadelta(params, lr=s.lr, rho=s.rho, weight_decay=s.weight_decay)
    if s.name == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    raise ValueError(f"unknown optimizer {s.name!r}")


def to_device(batch: dict, device: torch.device) -> dict:
    """Tensors of a batch dict moved to ``device`` (other values unchanged)."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in batch.items()}


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


@dataclass
class Trainer:
    """Runs the phases of one stage; see the module docstring.

    Attributes:
        stage: the stage's name (``"init"``, ``"pretrain_seg"``, ``"em"``), for messages.
        nets: the trainable networks by name (plain modules, on ``info.device``).
        optim: the optimiser settings of each network trained in this stage.
        settings: the shared :class:`TrainSettings`.
        run_dir: where ``last.pt`` and snapshots go.
        log_dir: dvclive folder (``None``: no dvclive logging).
        fingerprint: resumption key (:func:`focus.train.state.fingerprint`).
        info: the process' :class:`focus.train.distributed.DistInfo`.
        extra_state: stage-specific data stored in every checkpoint (e.g. settings for readers).
    """

    stage: str
    nets: dict[str, nn.Module]
    optim: dict[str, OptimSettings]
    settings: TrainSettings
    run_dir: Path
    log_dir: Path | None
    fingerprint: str
    info: D.DistInfo = field(default_factory=D.DistInfo)
    extra_state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.wrapped: dict[str, nn.Module] = {}
        for name, net in self.nets.items():
            net.requires_grad_(True)
            if self.info.distributed and name in self.optim:
                ids = [self.info.device.index] if self.info.device.type == "cuda" else None
                self.wrapped[name] = DistributedDataParallel(net, device_ids=ids)
            else:
                self.wrapped[name] = net
        self.optimizers = {name: build_optimizer(self.nets[name].parameters(), s) for name, s in self.optim.items()}
        self.net_steps = {name: 0 for name in self.optim}
        self.phase_index = 0
        self.phase_step = 0
        self.data_step = 0
        self.records: list[dict[str, Any]] = []
        self.nonfinite_total = 0
        self.nonfinite_run = 0
        self.resumed_from: str | None = None
        self._live = None
        self._current: str | None = None

    # ------------------------------------------------------------------ network access
    def module(self, name: str) -> nn.Module:
        """The network to call in an objective: DDP-wrapped if it is trained in the current phase."""
        return self.wrapped[name] if name == self._current else self.nets[name]

    def set_phase_modes(self, trained: str, freeze_batchnorm: bool = False) -> None:
        """``trained`` in train mode with gradients; every other network in eval mode, frozen.

        With ``freeze_batchnorm`` the trained network's BatchNorm layers stay in eval mode.
        """
        for name, net in self.nets.items():
            on = name == trained
            net.train(on)
            net.requires_grad_(on)
            if on and freeze_batchnorm:
                for m in net.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        self._current = trained

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "stage": self.stage,
            "phase_index": self.phase_index,
            "phase_step": self.phase_step,
            "data_step": self.data_step,
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "net_steps": dict(self.net_steps),
            "records": list(self.records),
            "nonfinite_total": self.nonfinite_total,
            "rng": rng_state(),
            **self.extra_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state["nets"].items():
            self.nets[k].load_state_dict(v)
        for k, v in state["optimizers"].items():
            self.optimizers[k].load_state_dict(v)
        self.net_steps = dict(state["net_steps"])
        self.phase_index = int(state["phase_index"])
        self.phase_step = int(state["phase_step"])
        self.data_step = int(state["data_step"])
        self.records = list(state["records"])
        self.nonfinite_total = int(state["nonfinite_total"])
        set_rng_state(state["rng"])

    def save(self, name: str = LAST) -> Path | None:
        """Write the resumable state (rank 0) and wait for every process."""
        path = None
        if self.info.is_main:
            path = save_checkpoint(self.run_dir / name, self.state_dict())
        D.barrier(self.info)
        return path

    def save_snapshot(self, name: str, phase: Phase) -> None:
        """Weights-only snapshot (rank 0): networks, the phase, its validation record."""
        if self.info.is_main:
            path = self.run_dir / name
            remove_stale_temporaries(path.parent, path.name)
            save_checkpoint(
                path,
                {
                    "stage": self.stage,
                    "phase": phase.name,
                    "round": phase.round,
                    "fingerprint": self.fingerprint,
                    "nets": {k: v.state_dict() for k, v in self.nets.items()},
                    "record": self.records[-1] if self.records else None,
                    **self.extra_state,
                },
            )
        D.barrier(self.info)

    def try_resume(self, max_phase_index: int | None = None) -> bool:
        """Load ``run_dir/last.pt`` if it has this trainer's fingerprint (every rank reads it) and
        is not past phase ``max_phase_index`` (e.g. fewer EM rounds asked for than it ran)."""
        self.remove_stale_temporaries()
        state = find_resumable(self.run_dir, self.fingerprint)
        if state is None:
            return False
        if max_phase_index is not None and int(state["phase_index"]) > max_phase_index:
            log.info(
                "%s: %s is past the %d phases now asked for: starting afresh",
                self.stage,
                self.run_dir / LAST,
                max_phase_index,
            )
            return False
        self.load_state_dict(state)
        self.resumed_from = str(self.run_dir / LAST)
        log.info(
            "%s: resuming from %s at phase %d, step %d",
            self.stage,
            self.resumed_from,
            self.phase_index,
            self.phase_step,
        )
        return True

    def remove_stale_temporaries(self) -> None:
        """Delete what a killed checkpoint write left in the run folder (rank 0)."""
        if self.info.is_main:
            remove_stale_temporaries(self.run_dir)

    def interrupted(self, phases: list[Phase]) -> TrainingInterrupted:
        """The error for a Ctrl-C now: where the run was and which checkpoint a re-run resumes from."""
        where = (
            f"in phase {phases[self.phase_index].name}, step {self.phase_step}"
            if self.phase_index < len(phases)
            else "after the last phase"
        )
        last = self.run_dir / LAST
        if last.is_file():
            return TrainingInterrupted(
                f"interrupted {where}; the last checkpoint is {last}: run the same command again to resume from it",
                last,
            )
        return TrainingInterrupted(
            f"interrupted {where}, before the first checkpoint ({last}): run the same command again to start the stage",
            None,
        )

    # ------------------------------------------------------------------ logging
    def _open_live(self):
        if self._live is None and self.log_dir is not None and self.info.is_main:
            from dvclive import Live

            self._live = Live(
                str(self.log_dir), resume=self.resumed_from is not None, report=None, save_dvc_exp=False, dvcyaml=False
            )
        return self._live

    def _log(self, phase: Phase, terms: dict[str, Tensor], lr: float, skipped: bool) -> None:
        live = self._open_live()
        if live is None:
            return
        live.step = self.data_step
        for k, v in terms.items():
            val = float(v)
            if math.isfinite(val):
                live.log_metric(f"{phase.name}/{k}", val)
        live.log_metric(f"{phase.name}/lr", lr)
        live.log_metric("nonfinite_total", float(self.nonfinite_total))
        live.next_step()

    def close(self) -> None:
        if self._live is not None:
            self._live.end()
            self._live = None

    # ------------------------------------------------------------------ running
    def run(
        self, phases: list[Phase], validate: Callable[[Phase], dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Run ``phases`` from the current position (after :meth:`try_resume`); returns the records."""
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        if self.phase_index > len(phases):
            raise FocusError(
                f"{self.run_dir / LAST} is at phase {self.phase_index} but the stage has only {len(phases)} phases"
            )
        self.remove_stale_temporaries()
        try:
            while self.phase_index < len(phases):
                phase = phases[self.phase_index]
                self._run_phase(phase)
                if validate is not None and self.info.is_main:
                    self.set_phase_modes("")
                    record = {
                        "phase": phase.name,
                        "round": phase.round,
                        "data_step": self.data_step,
                        "net_steps": dict(self.net_steps),
                        **validate(phase),
                    }
                    self.records.append(record)
                    log.info(
                        "%s %s: %s",
                        self.stage,
                        phase.name,
                        {k: v for k, v in record.items() if not isinstance(v, dict)},
                    )
                if phase.snapshot:
                    self.save_snapshot(phase.snapshot, phase)
                self.phase_index += 1
                self.phase_step = 0
                self.save()
        except KeyboardInterrupt:
            raise self.interrupted(phases) from None
        finally:
            self.close()
        return self.records

    def _run_phase(self, phase: Phase) -> None:
        if phase.net not in self.optimizers:
            raise ValueError(
                f"phase {phase.name!r} trains {phase.net!r}, which has no optimiser in stage {self.stage!r}"
            )
        if self.phase_step >= phase.steps:
            return
        s = self.settings
        opt = self.optimizers[phase.net]
        osets = self.optim[phase.net]
        params = [p for p in self.nets[phase.net].parameters()]
        self.set_phase_modes(phase.net, phase.freeze_batchnorm)
        pin = s.pin_memory if s.pin_memory is not None else self.info.device.type == "cuda"
        loader = train_loader(
            phase.dataset,
            phase.indices,
            s.batch_size,
            rank=self.info.rank,
            world_size=self.info.world_size,
            seed=s.seed,
            start_step=self.data_step,
            workers=s.workers,
            pin_memory=pin,
            prefetch_factor=s.prefetch_factor,
        )
        batches = iter(loader)
        bar = tqdm(
            total=phase.steps,
            initial=self.phase_step,
            desc=f"{self.stage} {phase.name}",
            unit="step",
            disable=not (s.progress and self.info.is_main),
            dynamic_ncols=True,
            leave=True,
        )
        try:
            while self.phase_step < phase.steps:
                batch = to_device(next(batches), self.info.device)
                lr = osets.lr_at(self.net_steps[phase.net])
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.zero_grad(set_to_none=True)
                loss, terms = phase.objective(batch)
                # one device -> host read per step (the finite flag of loss and gradient together):
                # a non-finite loss gives a non-finite or skipped update either way, and every rank
                # runs the backward pass (DDP's gradient all-reduce needs them all)
                if loss.requires_grad:
                    loss.backward()
                max_norm = osets.grad_clip if osets.grad_clip > 0 else math.inf
                gnorm = torch.nn.utils.clip_grad_norm_(params, max_norm)
                ok = torch.isfinite(loss.detach()).all() & torch.isfinite(gnorm)
                finite = not D.any_flag(not bool(ok), self.info)
                if finite:
                    terms = {**terms, "grad_norm": gnorm.detach()}
                if finite:
                    opt.step()
                    self.net_steps[phase.net] += 1
                    self.nonfinite_run = 0
                else:
                    opt.zero_grad(set_to_none=True)
                    self.nonfinite_total += 1
                    self.nonfinite_run += 1
                    log.warning(
                        "%s %s step %d: non-finite loss or gradient, step skipped (%d in a row, %d in all)",
                        self.stage,
                        phase.name,
                        self.phase_step,
                        self.nonfinite_run,
                        self.nonfinite_total,
                    )
                self.phase_step += 1
                self.data_step += 1
                logged = bool(s.log_every) and self.phase_step % s.log_every == 0
                if self.info.is_main and logged:
                    self._log(phase, terms, lr, not finite)
                bar.update(1)
                if finite and (logged or not s.log_every) and not bar.disable:  # loss values read lazily
                    bar.set_postfix(loss=f"{float(terms['total']):.4g}", refresh=False)
                if self.nonfinite_run >= s.max_nonfinite:
                    raise TrainingDiverged(
                        f"stage {self.stage}, phase {phase.name}: {self.nonfinite_run} non-finite losses or "
                        f"gradients in a row (step {self.phase_step} of {phase.steps}, {self.nonfinite_total} in all); "
                        "stopped. Look "
                        f"at the loss terms in {self.log_dir or 'the log'} (which term blew up first), the last good "
                        f"checkpoint {self.run_dir / LAST}, and lower the learning rate ({phase.net}: {lr:g}) or the "
                        f"weight of the diverging term; delete {self.run_dir / LAST} to start the stage afresh"
                    )
                if s.checkpoint_every and self.phase_step % s.checkpoint_every == 0 and self.phase_step < phase.steps:
                    self.save()
        finally:
            bar.close()
            del batches


__all__ = ["Phase", "Trainer", "TrainingDiverged", "TrainingInterrupted", "build_optimizer", "to_device", "unwrap"]
