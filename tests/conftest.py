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


@pytest.fixture
def ict_dir() -> Path:
    if not ICT_DIR.exists():
        pytest.skip(f"ICT-FaceKit subset not found at {ICT_DIR}")
    return ICT_DIR
