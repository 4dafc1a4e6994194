"""Shared fixtures: paths, seeds, small models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
ICT_DIR = SHARED / "ict-facekit" / "FaceXModel"


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)


def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny workloads only lose from thread synchronisation on a
    shared machine); the previous count is restored afterwards."""
    yield from _single_thread()


@pytest.fixture(scope="module")
def one_thread_module():
    """:func:`one_thread` for a whole module (also covering its module-scoped fixtures)."""
    yield from _single_thread()


@pytest.fixture
def ict_dir() -> Path:
    if not ICT_DIR.exists():
        pytest.skip(f"ICT-FaceKit subset not found at {ICT_DIR}")
    return ICT_DIR
