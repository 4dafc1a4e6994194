"""The training loop reads loss values on the host only every ``train.log_every`` steps (no
device -> host copy of the loss terms per step), and hands ``pin_memory`` to its DataLoader."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from focus.train import trainer as T
from focus.train.settings import OptimSettings, TrainSettings
from focus.train.trainer import Phase, Trainer


class _Points(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.full((2,), float(i))}


class _CountingTensor(torch.Tensor):
    reads = 0

    def __float__(self) -> float:
        type(self).reads += 1
        return float(self.as_subclass(torch.Tensor))


def _run(tmp_path, log_every: int, steps: int = 10) -> int:
    _CountingTensor.reads = 0
    net = torch.nn.Linear(2, 1)
    ts = TrainSettings(batch_size=4, checkpoint_every=0, progress=True, val_count=0, log_every=log_every)
    trainer = Trainer("t", {"net": net}, {"net": OptimSettings()}, ts, tmp_path / f"run{log_every}", None, "fp")

    def objective(batch):
        loss = net(batch["x"]).square().mean()
        return loss, {"total": loss.detach().as_subclass(_CountingTensor)}

    trainer.run([Phase("p", "net", steps, objective, _Points(), list(range(16)))])
    assert trainer.net_steps["net"] == steps
    return _CountingTensor.reads


def test_loss_values_are_read_only_on_logging_steps(tmp_path):
    assert _run(tmp_path, log_every=5) == 2  # steps 5 and 10 (every step before)
    assert _run(tmp_path, log_every=1) == 10


def test_loader_gets_pin_memory_and_prefetch(tmp_path, monkeypatch):
    seen = {}
    real = T.train_loader

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "train_loader", spy)
    _run(tmp_path, log_every=1, steps=2)
    assert seen["pin_memory"] is False and seen["prefetch_factor"] == 2  # CPU device: nothing to pin
