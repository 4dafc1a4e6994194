"""Short unsupervised-initialisation runs, one per lever, and how well each encoder learned pose
and identity on the held-out validation images (issue: identity learned in the default pipeline).

Each lever is a params override of the committed ``params.yaml`` (steps shortened to ``--steps``);
the run writes into its own folder under ``--work`` (never the pipeline's outputs). Per lever it
reports the validation record of the ``init`` stage (landmark px, neutral-shape error against the
mean face's, identity correlation) and, from the encoder's predicted angles against the true
ones, the correlation and the std ratio (predicted / true) of pitch and yaw, the norm of the mean
predicted identity and the RMS of the predicted expression. Choose on these (validation split),
never on the NoW-like or AR-like sets.

    python bench/init_levers.py --steps 400 --out bench/results/init_levers_cpu.json

Time the runs alone: on 2 cores another busy process slows training 5-10x.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ORIGIN = {"train": {"encoder": {"pivot_mm": [0.0, 0.0, 0.0]}}, "init": {"optim": {"warmup": 0}}}
#: name -> override on top of ORIGIN (the paper's parameterisation, no warm-up)
LEVERS: dict[str, dict] = {
    "origin_pivot": {},
    "origin_pivot_warmup100": {"init": {"optim": {"warmup": 100}}},
    "origin_pivot_landmarks_only": {"init": {"weights": {"rob": 0.0, "id": 0.0}}},
    "origin_pivot_lr3e-3": {"init": {"optim": {"lr": 3.0e-3}}},
    "origin_pivot_lr3e-4_warmup100": {"init": {"optim": {"lr": 3.0e-4, "warmup": 100}}},
    "origin_pivot_no_augmentation_warmup100": {"train": {"augment": False}, "init": {"optim": {"warmup": 100}}},
    "origin_pivot_uniform_landmarks_warmup100": {
        "init": {"optim": {"warmup": 100}, "weights": {"lm_heavy": 1.0, "lm": 0.1}}
    },
    "pivot_72mm_warmup100": {
        "train": {"encoder": {"pivot_mm": [0.0, -14.0, 72.0]}},
        "init": {"optim": {"warmup": 100}},
    },
    "pivot_90mm_warmup100 (default)": {
        "train": {"encoder": {"pivot_mm": [0.0, -14.0, 90.0]}},
        "init": {"optim": {"warmup": 100}},
    },
}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def pose_report(checkpoint: Path, params_files: list[str]) -> dict:
    """Pose / identity statistics of ``checkpoint``'s encoder on the validation images."""
    import numpy as np
    import torch

    from focus.config import merged_params
    from focus.predictor import load_model
    from focus.train.pipeline import setup
    from focus.train.validation import load_validation_set

    ctx = setup(merged_params(params_files), need_perceptual=False)
    names = [ctx.val_set.names[i] for i in ctx.val_indices]
    vs = load_validation_set(ctx.val_set, ctx.val_indices, {})
    with np.load(Path(ctx.val_set.root) / "truth.npz") as d:
        row = {n: i for i, n in enumerate(d["names"])}
        true = torch.as_tensor(d["angles"][[row[n] for n in names]].astype(np.float32))
    with torch.no_grad():
        pred = load_model(checkpoint, ctx.train.facemodel).encoder.eval().predict(vs.images)
    res = {}
    for j, axis in ((0, "pitch"), (1, "yaw")):
        res[f"{axis}_corr"] = float(np.corrcoef(pred.angles[:, j].numpy(), true[:, j].numpy())[0, 1])
        res[f"{axis}_std_ratio"] = float(pred.angles[:, j].std() / true[:, j].std())
    res["mean_identity_norm"] = float(pred.id.mean(0).norm())
    res["expression_rms"] = float(pred.exp.pow(2).mean().sqrt())
    return res


def run_lever(name: str, override: dict, steps: int, work: Path) -> dict:
    folder = work / "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    folder.mkdir(parents=True, exist_ok=True)
    shortened = {"init": {"steps": steps, "threshold_anneal_steps": steps // 2, "optim": {"decay_every": steps // 2}}}
    paths = {
        "paths": {k: str(folder / k) for k in ("checkpoints", "models", "pseudo_masks", "train_reports")},
        "train": {"progress": False},
    }
    over = _merge(_merge(_merge(ORIGIN, shortened), override), paths)
    over_file = folder / "override.yaml"
    over_file.write_text(yaml.safe_dump(over, sort_keys=True))
    files = ["params.yaml", str(over_file)]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "stages/train_init.py", "--params", *files], check=True)
    seconds = time.perf_counter() - t0
    record = json.loads((folder / "train_reports" / "init_metrics.json").read_text())["records"][-1]
    keep = ("landmark_px", "shape_mm", "shape_mm_occluded", "shape_mm_mean_face", "id_corr")
    return {
        "override": override,
        "seconds": round(seconds, 1),
        **{k: record[k] for k in keep},
        **pose_report(folder / "models" / "focus_init.pt", files),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400, help="initialisation steps per lever (default 400)")
    p.add_argument("--work", default="/tmp/focus_init_levers", help="folder for the runs' outputs")
    p.add_argument("--only", nargs="*", default=None, help="lever names to run (default: all)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    results = {}
    for name, override in LEVERS.items():
        if a.only and name not in a.only:
            continue
        results[name] = run_lever(name, override, a.steps, Path(a.work))
        print(name, json.dumps(results[name]), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"steps": a.steps, "levers": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
