"""Benchmark of synthetic image generation: images per second at several output sizes.

    python bench/synth.py --out bench/results/synth_cpu.json [--sizes 64,128,224] [--count 64]
                          [--workers 0] [--model models/facemodel.npz]

One image = draw coefficients, render at ``supersample`` x the size (torch rasterizer), paint the
details, background, head context, occluders (50 % of images, as the train set), camera effects,
ground truth (everything the ``synth`` stage does per training image except writing the PNGs).
With ``--workers 0`` it runs in this process with one torch thread (per-core throughput);
``--workers N`` uses N spawned processes (the stage's setting). ``img_per_s`` is
``count / wall time`` after one warm-up chunk.

Also estimates the default ``synth`` stage: ``train.count`` images at the training size plus the
NoW-like and AR-like sets, from the measured per-image times (2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from focus.synth.generator import CameraSpec, ImageJob, run_jobs  # noqa: E402
from focus.synth.settings import SynthSettings  # noqa: E402

DEFAULT_MODEL = ROOT / "models" / "facemodel.npz"


def load_model(path: Path):
    from focus.facemodel.model import load_face_model

    if path.is_file():
        m = load_face_model(path)
        return m, f"{m.name} ({path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name})"
    from focus.facemodel.embedded import EmbeddedModelSettings, generate_face_model

    return generate_face_model(EmbeddedModelSettings()), "embedded default (generated, models/facemodel.npz absent)"


def bench_size(model, settings: SynthSettings, size: int, count: int, workers: int) -> dict:
    cam = CameraSpec(size, settings.supersample)
    warm = [ImageJob("test", 10_000 + i, cam, occluder_prob=0.5) for i in range(settings.batch_size)]
    jobs = [ImageJob("test", i, cam, occluder_prob=0.5) for i in range(count)]
    list(run_jobs(model, replace(settings, workers=0), warm, workers=0))
    t0 = time.perf_counter()
    n = sum(1 for _ in run_jobs(model, settings, jobs, workers=workers))
    dt = time.perf_counter() - t0
    return {
        "size": size,
        "supersample": settings.supersample,
        "count": n,
        "workers": workers,
        "seconds": round(dt, 3),
        "img_per_s": round(n / dt, 2),
        "ms_per_img": round(1000 * dt / n, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "synth_cpu.json")
    p.add_argument("--sizes", default="64,128,224")
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    model, model_name = load_model(a.model)
    settings = SynthSettings()
    rows = [bench_size(model, settings, int(s), a.count, a.workers) for s in a.sizes.split(",")]
    for r in rows:
        print(f"{r['size']:4d} px: {r['img_per_s']:7.2f} img/s ({r['ms_per_img']} ms/img, {r['workers']} workers)")
    doc = {
        "what": "synthetic image generation (focus.synth), train-set mix (50% occluded), no file writing",
        "model": model_name,
        "vertices": model.num_vertices,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch_threads_per_process": 1},
        "results": rows,
    }
    by = {r["size"]: r for r in rows}
    base = settings.image_size or 64
    if base in by and a.workers == 0:
        per = by[base]["ms_per_img"] / 1000
        now_px = 2 * base
        per_now = by.get(now_px, by[base])["ms_per_img"] / 1000 * (1 if now_px in by else 4)
        n_now = settings.now.subjects * 4 * settings.now.images_per_challenge
        est = (settings.train.count * per + 3 * settings.ar.per_subset * per + n_now * per_now) / 2
        doc["default_stage_estimate_2_cores_s"] = round(est, 1)
        doc["default_stage_sizes"] = {
            "train": settings.train.count,
            "now": n_now,
            "ar": 3 * settings.ar.per_subset,
            "image_size": base,
            "now_image_size": now_px,
        }
        print(f"default synth stage on 2 cores (estimate, without start-up and file writing): {est:.0f} s")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
