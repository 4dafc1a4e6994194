"""bench/train_step.py --quick: both step kinds in float32 and bf16 on the CPU, to JSON, with the
bf16 losses compared against float32's."""

from __future__ import annotations

import importlib.util
import json

from conftest import PROJECT_ROOT


def _module():
    spec = importlib.util.spec_from_file_location("train_step", PROJECT_ROOT / "bench" / "train_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_reports_images_per_second_per_step_kind_and_precision(tmp_path, one_thread):
    out = tmp_path / "ts.json"
    assert _module().main(["--quick", "--iters", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert {(r["step"], r["precision"]) for r in res} == {
        (s, p) for s in ("reconstruction", "segmentation") for p in ("float32", "bf16")
    }
    assert all(r["images_per_s"] > 0 and r["batch"] == 4 and r["device"] == "cpu" for r in res)
    bf16 = [r for r in res if r["precision"] == "bf16"]
    assert all(0 <= r["loss_rel_diff_vs_float32"] < 0.2 for r in bf16)  # same weights and batch: close
    assert all("loss_rel_diff_vs_float32" not in r for r in res if r["precision"] == "float32")


def test_agreement_is_measured_against_the_float32_twin():
    mod = _module()
    base = {"device": "cpu", "scale": "tiny", "step": "reconstruction", "batch": 4, "channels_last": False}
    recs = [
        {**base, "precision": "float32", "first_step_losses": {"total": 2.0, "lm": 10.0, "tiny": 1e-5}},
        {**base, "precision": "bf16", "first_step_losses": {"total": 2.02, "lm": 10.5, "tiny": 2e-5}},
        {**base, "batch": 8, "precision": "bf16", "first_step_losses": {"total": 9.0}},
    ]
    mod.add_agreement(recs)
    assert recs[1]["loss_rel_diff_vs_float32"] == 0.01 and recs[1]["max_term_rel_diff_vs_float32"] == 0.05
    assert "loss_rel_diff_vs_float32" not in recs[2]  # no float32 run at batch 8
