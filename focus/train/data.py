"""Step-indexed data loading: the batch of every global step is a pure function of
``(seed, step)``, so a resumed run sees exactly the batches an uninterrupted run would have seen.

Epoch ``e`` draws a permutation of the training images with :class:`torch.utils.data.DistributedSampler`
(``set_epoch(e)``; one replica and rank 0 without DDP), cuts it into batches of ``batch_size``
per process (the last incomplete batch is dropped), and every sample is loaded with the
dataset's augmentation for epoch ``e`` (:meth:`focus.data.FaceImageFolder.set_epoch` is applied
per sample through :class:`EpochKeyed`, so worker processes see the right epoch too).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from focus.errors import FocusError


class EpochKeyed(Dataset):
    """``dataset[(epoch, i)]`` = ``base[indices[i]]`` with ``base``'s augmentation for ``epoch``.

    ``base`` needs ``set_epoch(epoch)`` (as :class:`focus.data.FaceImageFolder` has) if it augments.
    """

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(int(i) for i in indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, i = key
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)
        return self.base[self.indices[i]]


class StepBatchSampler(Sampler):
    """Batches of ``(epoch, position)`` keys for global steps ``start_step, start_step + 1, ...`` (endless).

    Args:
        n: number of training images (positions ``0 .. n-1``).
        batch_size: images per step per process.
        rank, world_size: this process' share (``DistributedSampler``).
        seed: permutation seed.
        start_step: first global step to produce (resumption).
    """

    def __init__(
        self, n: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0, start_step: int = 0
    ) -> None:
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.sampler = DistributedSampler(
            range(self.n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.steps_per_epoch = len(self.sampler) // self.batch_size
        if self.steps_per_epoch < 1:
            raise FocusError(
                f"the training set has {self.n} images, fewer than one batch of {self.batch_size} per "
                f"process x {world_size} processes: lower train.batch_size or add images"
            )
        self.start_step = int(start_step)

    def batch_keys(self, step: int) -> list[tuple[int, int]]:
        """The keys of global step ``step`` (for this rank)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        positions = self._epoch_positions(epoch)
        return [(epoch, p) for p in positions[k * self.batch_size : (k + 1) * self.batch_size]]

    def _epoch_positions(self, epoch: int) -> list[int]:
        self.sampler.set_epoch(epoch)
        return list(iter(self.sampler))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        epoch, k = divmod(step, self.steps_per_epoch)
        while True:
            positions = self._epoch_positions(epoch)
            for j in range(k, self.steps_per_epoch):
                yield [(epoch, p) for p in positions[j * self.batch_size : (j + 1) * self.batch_size]]
            epoch, k = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only needs it for len(loader)
        return 1 << 62


def train_loader(
    dataset: Dataset,
    indices: Sequence[int],
    batch_size: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    start_step: int = 0,
    workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
) -> DataLoader:
    """An endless :class:`DataLoader` over ``dataset[indices]`` starting at global step ``start_step``.

    ``pin_memory``: batches in page-locked memory (asynchronous copies to a CUDA device);
    ``prefetch_factor``: batches loaded ahead per worker (with ``workers > 0``).
    """
    keyed = EpochKeyed(dataset, indices)
    sampler = StepBatchSampler(
        len(keyed), batch_size, rank=rank, world_size=world_size, seed=seed, start_step=start_step
    )
    # its own generator: creating the iterator must not draw from the global RNG (dropout), or a
    # resumed run (iterator created mid-phase) would diverge from an uninterrupted one
    gen = torch.Generator().manual_seed(int(seed) * 1000003 + int(start_step))
    return DataLoader(
        keyed,
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=False,
        worker_init_fn=_seed_worker if workers else None,
        generator=gen,
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=prefetch_factor if workers else None,
    )


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def split_indices(n: int, val_count: int) -> tuple[list[int], list[int]]:
    """``(train, val)``: the last ``val_count`` of ``n`` images are held out for validation."""
    if val_count < 0 or val_count >= n:
        raise FocusError(f"train.val_count={val_count} must be in [0, {n}) for a set of {n} images")
    return list(range(n - val_count)), list(range(n - val_count, n))


__all__ = ["EpochKeyed", "StepBatchSampler", "split_indices", "train_loader"]
