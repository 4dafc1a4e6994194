"""The training stages' files come from one place, the ``paths`` group of params.yaml, and dvc.yaml
declares exactly those files (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from focus.errors import FocusError
from focus.paths import TRAIN_STAGES, TrainPaths

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _names(entries: list) -> set[str]:
    return {e if isinstance(e, str) else next(iter(e)) for e in entries or []}


@pytest.mark.parametrize("stage", TRAIN_STAGES)
def test_dvc_yaml_declares_the_files_of_the_paths_group(stage):
    paths = TrainPaths.from_params(PARAMS)
    outs = _names(STAGES[stage].get("outs")) | _names(STAGES[stage].get("metrics")) | _names(STAGES[stage].get("plots"))
    assert paths.run_dir(stage).as_posix() in outs
    assert paths.final(stage).as_posix() in outs
    assert (paths.reports / stage).as_posix() in outs
    assert (paths.reports / f"{stage}_metrics.json").as_posix() in outs
    if stage == "pretrain_seg":
        assert paths.pseudo_masks.as_posix() in outs
    previous = TRAIN_STAGES[: TRAIN_STAGES.index(stage)]
    if previous:
        assert paths.final(previous[-1]).as_posix() in _names(STAGES[stage]["deps"])
    assert "paths" in STAGES[stage]["params"]


def test_training_paths_follow_the_params_group():
    moved = {**PARAMS, "paths": {"checkpoints": "ck", "models": "out/m", "pseudo_masks": "pm", "train_reports": "r"}}
    paths = TrainPaths.from_params(moved)
    assert paths.run_dir("em") == Path("ck/em") and paths.final("em") == Path("out/m/focus.pt")
    assert paths.final("init") == Path("out/m/focus_init.pt")
    assert paths.pseudo_masks == Path("pm") and paths.reports == Path("r")
    assert TrainPaths.from_params({}) == TrainPaths()  # defaults: the DVC layout
    with pytest.raises(FocusError):
        TrainPaths.from_params({"paths": {"checkpoint": "typo"}})
    with pytest.raises(FocusError, match="paths.models"):
        TrainPaths.from_params({"paths": {"models": 3}})


def test_moving_only_the_run_folders_keeps_the_finals_inside_them(tmp_path):
    paths = TrainPaths(run_dirs={s: tmp_path / s for s in TRAIN_STAGES})
    assert paths.final("em") == tmp_path / "em" / "final.pt"
    assert paths.reports == Path("reports/train")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_path_on_a_stage_command_line_is_a_declared_dependency_or_output(stage):
    words = STAGES[stage]["cmd"].split("#")[0].split()
    values = [w for prev, w in zip(words, words[1:], strict=False) if prev.startswith("--") and prev != "--params"]
    declared = (
        _names(STAGES[stage].get("deps"))
        | _names(STAGES[stage].get("outs"))
        | _names(STAGES[stage].get("metrics"))
        | _names(STAGES[stage].get("plots"))
    )
    for value in values:
        assert value in declared or any(d.startswith(value.rstrip("/") + "/") for d in declared), (
            f"stage {stage}: {value} is on its command line but not declared in dvc.yaml"
        )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_persistent_outputs_are_cached_so_experiments_reuse_them(stage):
    """A ``persist`` output with ``cache: false`` is missing from the temporary workspace of
    ``dvc exp run --queue`` / ``--temp``, so DVC would re-run its stage in every experiment (the
    identity network re-trained for an ablation that only changes the EM)."""
    for out in STAGES[stage].get("outs") or []:
        if isinstance(out, dict):
            ((name, opts),) = out.items()
            if (opts or {}).get("persist"):
                assert (opts or {}).get("cache", True), f"{stage}: {name} is persistent but not cached"
