"""Worker processes for the data generators (synthetic sets, identity-network crops)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.pool import Pool


def spawn_pool(workers: int, initializer: Callable, initargs: tuple) -> Pool | None:
    """``workers`` spawned processes, each set up by ``initializer(*initargs)``; ``None`` for
    ``workers <= 0`` (the caller then works in its own process). Spawned, not forked: torch's
    thread pools do not survive a fork."""
    if workers <= 0:
        return None
    return mp.get_context("spawn").Pool(int(workers), initializer=initializer, initargs=initargs)


def close_pool(pool: Pool | None, failed: bool) -> None:
    """Wait for ``pool``'s workers to finish (or stop them at once when the caller ``failed``)."""
    if pool is None:
        return
    if failed:
        pool.terminate()
    else:
        pool.close()
    pool.join()


__all__ = ["close_pool", "spawn_pool"]
