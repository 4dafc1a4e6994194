"""Nothing a parameter value or an interruption does loses earlier results: impossible values are
rejected before any file is touched, Ctrl-C says where the checkpoint is, a killed checkpoint
write leaves no temporary file behind the next run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT
from train_fixtures import tiny_params

from focus.config import ParamError
from focus.io_utils import remove_stale_temporaries, stale_temporaries
from focus.nets.unet import SegmentationUNet, UNetSettings
from focus.train.settings import OptimSettings, TrainSettings
from focus.train.state import LAST
from focus.train.trainer import Phase, Trainer, TrainingInterrupted

pytestmark = pytest.mark.usefixtures("one_thread")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("rounds", [-1, 0])
def test_impossible_em_rounds_touch_nothing(tmp_path, rounds):
    from focus.apps.reconstruct import save_untrained_checkpoint
    from focus.train import pipeline as P

    params = tiny_params(tmp_path, steps=1, rounds=1)
    ck = tmp_path / "ck"
    paths = P.Paths(
        run_dirs={k: ck / k for k in ("init", "pretrain_seg", "em")},
        pseudo_masks=tmp_path / "pm",
        reports=tmp_path / "rep",
    )
    save_untrained_checkpoint(
        paths.final("pretrain_seg"), tmp_path / "facemodel.npz", image_size=32, unet_width=4, unet_depth=2
    )
    for name in ("round_01.pt", "round_02.pt", LAST, "final.pt"):  # an earlier EM run's results
        (ck / "em").mkdir(parents=True, exist_ok=True)
        (ck / "em" / name).write_bytes(f"earlier {name}".encode())
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "em_metrics.json").write_text("{}")
    before = _snapshot(tmp_path)
    params["em"]["rounds"] = rounds
    with pytest.raises(ParamError, match=rf"em.rounds = {rounds}: expected an integer >= 1"):
        P.run_em(params, paths)
    assert _snapshot(tmp_path) == before


def test_stage_command_reports_a_bad_value_in_one_line(tmp_path, capsys):
    from focus.train.cli import stage_main

    override = tmp_path / "bad.yaml"
    override.write_text("em: {rounds: abc}\n")
    assert stage_main("em", ["--params", str(PROJECT_ROOT / "params.yaml"), str(override)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f'train em: error: {override}: em.rounds = "abc": expected an integer >= 1'


# ---------------------------------------------------------------------------- Ctrl-C
def _tiny_dataset(n: int = 8, size: int = 16):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, size, size, generator=g)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"image": images[i]}

    return Images()


def _trainer(run_dir: Path) -> Trainer:
    torch.manual_seed(1)
    unet = SegmentationUNet(UNetSettings(base_width=2, depth=1, dropout=0.0))
    ts = TrainSettings(batch_size=2, checkpoint_every=2, progress=False, val_count=0)
    return Trainer("test", {"unet": unet}, {"unet": OptimSettings(lr=1e-2)}, ts, run_dir, None, "fp")


def _phases(trainer: Trainer, interrupt_at: int | None = None) -> list[Phase]:
    calls = {"n": 0}

    def objective(batch):
        calls["n"] += 1
        if calls["n"] == interrupt_at:
            raise KeyboardInterrupt
        img = batch["image"]
        loss = ((trainer.module("unet")(img, img) - 0.5) ** 2).mean()
        return loss, {"total": loss.detach()}

    return [Phase("p", "unet", 5, objective, _tiny_dataset(), list(range(8)))]


def test_ctrl_c_in_the_loop_names_the_checkpoint_and_resumes(tmp_path):
    t = _trainer(tmp_path / "run")
    with pytest.raises(TrainingInterrupted) as exc:
        t.run(_phases(t, interrupt_at=4))  # checkpoint after step 2, interrupted in step 4
    msg = str(exc.value)
    assert "\n" not in msg and str(tmp_path / "run" / LAST) in msg and "again" in msg and "phase p, step 3" in msg
    assert exc.value.__suppress_context__ and exc.value.exit_code == 130
    t2 = _trainer(tmp_path / "run")
    assert t2.try_resume() and t2.phase_step == 2
    t2.run(_phases(t2))
    assert t2.net_steps == {"unet": 5}


def test_ctrl_c_stage_command_prints_one_line_and_exits_130(tmp_path, capsys, monkeypatch):
    from focus.train import pipeline
    from focus.train.cli import stage_main

    def fake_em(params, paths=None):
        t = _trainer(tmp_path / "run")
        t.run(_phases(t, interrupt_at=4))

    monkeypatch.setattr(pipeline, "run_em", fake_em)
    assert stage_main("em", ["--params", str(PROJECT_ROOT / "params.yaml")]) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("train em: interrupted in phase p") and str(tmp_path / "run" / LAST) in err


# ---------------------------------------------------------------------------- killed writes
def test_a_killed_checkpoint_write_leaves_a_temporary_the_next_run_removes(tmp_path):
    run_dir = tmp_path / "run"
    code = (
        "import os, signal, sys, torch; from focus.io_utils import atomic_path\n"
        "with atomic_path(sys.argv[1], suffix='.pt') as tmp:\n"
        "    torch.save({'x': torch.zeros(10)}, tmp)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, str(run_dir / LAST)], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9
    orphans = stale_temporaries(run_dir)
    assert len(orphans) == 1 and orphans[0].name.startswith(f".{LAST}.") and not (run_dir / LAST).exists()
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / ".hidden").write_text("mine")
    t = _trainer(run_dir)
    assert not t.try_resume()
    assert stale_temporaries(run_dir) == [] and not orphans[0].exists()
    assert (run_dir / "notes.txt").exists() and (run_dir / ".hidden").exists()


def test_stale_temporaries_of_one_name_only(tmp_path):
    for name in (".focus.pt.abcd1234.pt", ".idnet.pt.zz9_8y7x.pt", ".focus.pt.short.pt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in remove_stale_temporaries(tmp_path, "focus.pt")] == [".focus.pt.abcd1234.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".focus.pt.short.pt", ".idnet.pt.zz9_8y7x.pt"]


# ---------------------------------------------------------------------------- other stage commands
def _stage_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"stage_{name}", PROJECT_ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stage", ["synth", "idnet", "facemodel", "train_init", "eval_now"])
def test_every_stage_reports_a_bad_value_in_one_line(tmp_path, capsys, monkeypatch, stage):
    params = tmp_path / "params.yaml"
    params.write_text((PROJECT_ROOT / "params.yaml").read_text().replace("  image_size: 64\n", "  image_size: big\n"))
    monkeypatch.chdir(tmp_path)  # nothing may be written: the default outputs would land here
    module = _stage_module(stage)
    if stage == "facemodel":
        code = module.main(["--params", str(params), "--out", "models/facemodel.npz", "--reports", "reports/facemodel"])
    elif stage in ("synth", "idnet"):
        code = module.main(["--params", str(params)])
    else:
        code = module.stage_main(stage.split("_", 1)[1], ["--params", str(params)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "Traceback" not in err
    assert err.endswith(f'{params.name}: render.image_size = "big": expected an integer in [16, 4096]'), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
