"""The `gpu` profile (configs/gpu.yaml) and its runner (bench/gpu_profile.py): the profile passes
the params checker, and the training stages run with it on the CPU with its sizes scaled down."""

from __future__ import annotations

import copy
import importlib.util
import json
import math

import pytest
import torch
import yaml
from conftest import PROJECT_ROOT
from train_fixtures import tiny_params

from focus.config import ParamError, check_params, deep_merge

PROFILE = PROJECT_ROOT / "configs" / "gpu.yaml"


def _runner():
    spec = importlib.util.spec_from_file_location("gpu_profile", PROJECT_ROOT / "bench" / "gpu_profile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scaled_down(profile: dict, tmp) -> dict:
    """``profile`` with its *sizes* replaced by tiny ones on the CPU (image size, data, networks'
    widths, steps, batch, workers, device); everything else (precision, layout, optimisers, loss
    weights, schedule shape, BatchNorm handling) stays the profile's."""
    tiny = tiny_params(tmp, steps=2, rounds=1)
    params = copy.deepcopy(profile)
    deep_merge(
        params,
        {
            "render": tiny["render"],
            "train": {
                **tiny["train"],
                "device": "cpu",
                "workers": 0,
                "num_threads": 1,
                "log_every": 1,
                "encoder": {"arch": "resnet18"},
                "unet": {"base_width": 4, "depth": 2},
            },
            "init": {"steps": 2, "threshold_anneal_steps": 1},
            "pretrain_seg": {"steps": 2},
            "em": {"rounds": 1, "seg_steps": 2, "rec_steps": 2},
        },
    )
    check_params(params)
    return params


def test_gpu_profile_passes_the_params_checker():
    runner = _runner()
    params = runner.profile_params(PROFILE)
    groups = check_params(params)
    train, render = groups["train"], groups["render"]
    assert train.device == "cuda" and train.precision == "bf16" and train.channels_last
    assert train.encoder.arch == "resnet50" and train.unet.base_width == 64 and train.unet.depth == 4
    assert 128 <= render.image_size <= 224 and groups["synth"].train.count >= 10_000
    # the 64 px loss-weight scaling redone for the profile's size (focus/train/settings.py)
    from focus.train.settings import scaled_lm_weight, scaled_reg_weight

    for w in (groups["init"].weights, groups["em"].rec_weights):
        assert math.isclose(w.lm, scaled_lm_weight(5e-4, render.image_size), rel_tol=1e-3)
        assert math.isclose(w.reg, scaled_reg_weight(0.1, render.image_size), rel_tol=1e-3)
    # only groups the checker knows, and nothing the profile sets is ignored
    assert set(yaml.safe_load(PROFILE.read_text())) <= set(params)


def test_runner_overrides_are_checked_and_commands_follow_dvc_yaml(tmp_path):
    runner = _runner()
    assert runner.parse_set(["em.rounds=2", "train.precision=float32"]) == {
        "em": {"rounds": 2},
        "train": {"precision": "float32"},
    }
    with pytest.raises(ParamError, match="train.precision"):
        runner.profile_params(PROFILE, runner.parse_set(["train.precision=fp16"]))
    names = [n for n, _ in runner.stage_commands()]
    dvc = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    assert names == list(dvc) and names[0] == "facemodel" and names[-1] == "report"
    assert all(cmd[1].startswith(str(PROJECT_ROOT / "stages")) for _, cmd in runner.stage_commands())
    rc = runner.main(
        ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--dry-run", "--set", "em.rounds=2"]
    )
    written = yaml.safe_load((tmp_path / "work" / "params.yaml").read_text())
    assert rc == 0 and written["em"]["rounds"] == 2 and written["train"]["precision"] == "bf16"
    assert not (tmp_path / "out").exists()  # a dry run writes no results


def test_runner_refuses_to_replace_an_earlier_run(tmp_path, capsys):
    runner = _runner()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "times.json").write_text("{}")
    rc = runner.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--stages", "facemodel"])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "times.json").read_text() == "{}"


@pytest.mark.usefixtures("one_thread")
def test_gpu_profile_scaled_down_runs_init_to_em_on_the_cpu(tmp_path):
    from focus.train import pipeline as P
    from focus.train.state import load_checkpoint

    params = scaled_down(_runner().profile_params(PROFILE), tmp_path)
    assert params["train"]["precision"] == "bf16" and params["train"]["channels_last"] is True
    paths = P.Paths(
        run_dirs={k: tmp_path / "ck" / k for k in ("init", "pretrain_seg", "em")},
        pseudo_masks=tmp_path / "pm",
        reports=tmp_path / "rep",
    )
    P.run_init(params, paths)
    P.run_pretrain_seg(params, paths)
    recs = P.run_em(params, paths)
    assert [r["phase"] for r in recs] == ["r1/seg", "r1/rec"]
    report = json.loads((tmp_path / "rep" / "em_metrics.json").read_text())
    assert report["nonfinite_skipped"] == 0
    assert all(math.isfinite(r["shape_mm"]) for r in report["records"])
    state = load_checkpoint(tmp_path / "ck" / "em" / "final.pt")
    assert all(v.dtype != torch.bfloat16 for v in state["nets"]["encoder"].values())  # weights stay float32


@pytest.mark.slow
def test_gpu_profile_smoke_runs_every_stage_on_the_cpu(tmp_path):
    """The whole pipeline (all dvc.yaml stages) with configs/gpu.yaml scaled down by
    configs/gpu_smoke_cpu.yaml, through the runner (about a minute on 2 cores)."""
    runner = _runner()
    out = tmp_path / "out"
    rc = runner.main(
        [
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--extra",
            str(PROJECT_ROOT / "configs" / "gpu_smoke_cpu.yaml"),
            "--time-limit",
            "600",
        ]
    )
    times = json.loads((out / "times.json").read_text())
    assert rc == 0, times
    assert [s["stage"] for s in times["stages"]] == [n for n, _ in runner.stage_commands()]
    assert all(s["rc"] == 0 for s in times["stages"]) and times["finished_within_limit"]
    assert yaml.safe_load((out / "params.yaml").read_text())["train"]["precision"] == "bf16"
    for f in ("train/em_metrics.json", "eval/summary.json", "machine.json"):
        assert (out / f).is_file(), f
