"""Can the encoder learn identity from the training images at all? A supervised upper bound.

    python bench/identity_oracle.py --steps 3000 --out bench/results/identity_oracle_cpu.json
                                    [--params params.yaml ...] [--augment] [--threads 2]

The EM's shape target (issue 5) needs the encoder to predict the identity coefficients. This
diagnostic trains the pipeline's encoder (``train.encoder``, from scratch, Adam ``lr 1e-3`` halved
halfway, batches of ``train.batch_size``) on the training images with the *true* coefficients as
targets -- mean squared error on identity and expression, plus the yaw angle as a control -- and
reports, every 500 steps, the same validation numbers as the training stages: the neutral-shape
error of the held-out images (mm, face region, after similarity alignment), the mean face's
error, and the correlation of predicted and true identity coefficients (first 10). If identity is
not learned even with supervision, the unsupervised losses cannot be expected to learn it at that
scale and budget.

Without ``--augment`` the crops are not augmented (the training's horizontal flips would make the
yaw target ambiguous). Synthetic data only (needs ``truth.npz``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from focus.config import merged_params  # noqa: E402
from focus.io_utils import write_json_atomic  # noqa: E402
from focus.train import metrics as M  # noqa: E402
from focus.train import pipeline as P  # noqa: E402
from focus.train.data import train_loader  # noqa: E402
from focus.train.validation import load_validation_set, read_truth  # noqa: E402


def run(params: dict, steps: int, augment: bool, every: int = 500) -> dict:
    ctx = P.setup(params, need_perceptual=False)
    truth = np.load(ctx.train_set.root / "truth.npz")
    row = {str(n): i for i, n in enumerate(truth["names"])}
    t_id = torch.as_tensor(truth["id"], dtype=torch.float32)
    t_exp = torch.as_tensor(truth["exp"], dtype=torch.float32)
    t_yaw = torch.as_tensor(truth["angles"][:, 1], dtype=torch.float32)
    torch.manual_seed(int(ctx.train.seed))
    enc = P.build_encoder(ctx)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, steps // 2), gamma=0.5)
    data = ctx.train_set if augment else ctx.plain_set
    batches = iter(train_loader(data, ctx.train_indices, ctx.train.batch_size, seed=ctx.train.seed))
    names = [ctx.val_set.names[i] for i in ctx.val_indices]
    vs = load_validation_set(ctx.val_set, ctx.val_indices, read_truth(ctx.val_set.root, names))
    region = ctx.face_region()
    r = ctx.renderer
    zeros = torch.zeros(len(vs), r.layout.n_exp)
    true_shape = r.shape(vs.true_id, zeros)
    with torch.no_grad():
        mean_face = float(M.shape_error(r.shape(torch.zeros_like(vs.true_id), zeros), true_shape, region).mean())

    def validate(step: int, train_terms: dict) -> dict:
        enc.eval()
        with torch.no_grad():
            ids = torch.cat([r.split(enc(vs.images[s : s + 32])).id for s in range(0, len(vs), 32)])
            err = M.shape_error(r.shape(ids, zeros), true_shape, region)
        enc.train()
        rec = {
            "step": step,
            "shape_mm": float(err.mean()),
            "shape_mm_occluded": float(err[vs.occluded].mean()),
            "shape_mm_mean_face": mean_face,
            "id_corr": M.coefficient_correlation(ids, vs.true_id),
            **train_terms,
        }
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}), flush=True)
        return rec

    records = [validate(0, {})]
    acc = {"mse_id": 0.0, "mse_exp": 0.0, "mse_yaw_rel": 0.0}
    yaw_var = float(t_yaw.var())
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        b = next(batches)
        rows = [row[str(n)] for n in b["name"]]
        c = r.split(enc(b["image"]))
        li = ((c.id - t_id[rows]) ** 2).mean()
        le = ((c.exp - t_exp[rows]) ** 2).mean()
        ly = ((c.angles[:, 1] - t_yaw[rows]) ** 2).mean() / yaw_var
        opt.zero_grad(set_to_none=True)
        (li + le + ly).backward()
        opt.step()
        sched.step()
        for k, v in (("mse_id", li), ("mse_exp", le), ("mse_yaw_rel", ly)):
            acc[k] += float(v.detach()) / every
        if step % every == 0 or step == steps:
            records.append(validate(step, {**acc, "seconds": round(time.perf_counter() - t0, 1)}))
            acc = dict.fromkeys(acc, 0.0)
    return {
        "steps": steps,
        "augment": augment,
        "batch_size": ctx.train.batch_size,
        "encoder": ctx.train.encoder.arch,
        "image_size": r.settings.image_size,
        "identity_variance": float(t_id.var()),
        "expression_variance": float(t_exp.var()),
        "records": records,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON output file")
    p.add_argument("--params", nargs="+", default=["params.yaml"], help="params files (later override earlier)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--augment", action="store_true", help="train on augmented crops (as the training stages do)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(merged_params(args.params), args.steps, args.augment)
    result["meta"] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "params": args.params}
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
