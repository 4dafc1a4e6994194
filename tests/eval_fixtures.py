"""A tiny project for the evaluation tests: face model, synthetic NoW / AR sets, checkpoints, params.

Everything lives under one temporary folder with the DVC layout's relative paths; the networks
are freshly initialised (their zero-initialised head predicts the mean face), so the tests check
plumbing and formats, not accuracy.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from synth_helpers import tiny_model, tiny_settings

from focus.eval.pipeline import EvalPaths

SIZE = 32


def _encoder_only(src: Path, dst: Path) -> Path:
    from focus.train.state import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(src)
    ckpt["nets"] = {"encoder": ckpt["nets"]["encoder"]}
    return save_checkpoint(dst, ckpt)


def make_project(root: Path, rounds: int = 1) -> dict:
    """Write the tiny project under ``root`` (the DVC layout's relative paths); returns its params.

    Run the stages with the working directory at ``root`` (``monkeypatch.chdir``) and the default
    :class:`focus.eval.pipeline.EvalPaths`.
    """
    from focus.apps.reconstruct import save_untrained_checkpoint
    from focus.facemodel.model import save_face_model
    from focus.synth.generator import CameraSpec
    from focus.synth.sets import write_ar, write_now

    root = Path(root)
    model = tiny_model()
    fm = root / "models" / "facemodel.npz"
    fm.parent.mkdir(parents=True, exist_ok=True)
    save_face_model(model, fm)
    s = tiny_settings()
    write_now(model, s, root / "data" / "synth" / "now", CameraSpec(SIZE, 2), progress=False)
    write_ar(model, s, root / "data" / "synth" / "ar", CameraSpec(SIZE, 2), progress=False)
    paths = EvalPaths()
    full = save_untrained_checkpoint(root / "tmp_full.pt", fm, image_size=SIZE, unet_width=4, unet_depth=2, seed=0)
    _encoder_only(full, root / paths.init)
    (root / paths.em_run_dir).mkdir(parents=True, exist_ok=True)
    for r in range(1, rounds + 1):
        save_untrained_checkpoint(
            root / paths.round_checkpoint(r), fm, image_size=SIZE, unet_width=4, unet_depth=2, seed=r
        )
    shutil.copyfile(root / paths.round_checkpoint(rounds), root / paths.final)
    full.unlink()
    torch.manual_seed(0)
    return {
        "render": {"image_size": SIZE, "backend": "torch"},
        "data": {},
        "train": {"facemodel": "models/facemodel.npz"},
        "synth": asdict(s),
        "em": {"rounds": rounds},
        "misfit_prior": {"count": 6, "batch_size": 4, "workers": 0},
        "eval": {"batch_size": 8, "examples": 1, "progress": False, "num_threads": 1},
    }


def md_tables(text: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of ``text``: per table, one dict per body row (header cell -> cell text)."""
    tables: list[list[dict[str, str]]] = []
    head: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            head = None
            continue
        cells = [c.strip() for c in line.strip()[1:-1].split("|")]
        if head is None:
            head = cells
            tables.append([])
        elif not all(set(c) <= set("-:") and c for c in cells):
            tables[-1].append(dict(zip(head, cells, strict=True)))
    return tables


def md_row(text: str, first_cell: str) -> dict[str, str]:
    """The one table row of ``text`` whose first cell is ``first_cell``."""
    rows = [r for t in md_tables(text) for r in t if next(iter(r.values())) == first_cell]
    assert len(rows) == 1, f"{len(rows)} rows start with {first_cell!r}"
    return rows[0]
