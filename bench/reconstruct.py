"""Benchmark of ``focus reconstruct``: images per second, end to end, at the default and paper scales.

    python bench/reconstruct.py --out bench/results/reconstruct_cpu.json [--devices cpu,cuda]
                                [--scales default,paper] [--images 8] [--batch 8] [--threads 2]
    python bench/reconstruct.py --quality --out bench/results/reconstruct_quality.json [--model models/focus.pt]
                                [--adapt 3]

**Speed** (default): a folder of ``--images`` photos (copies of scikit-image's ``astronaut`` and
matplotlib's ``grace_hopper``, one face each) is reconstructed with :class:`focus.apps.reconstruct.Reconstructor`
and the MTCNN detector on the device, twice (the first run warms up); the second run's wall time
gives ``images_per_s`` (everything: reading, detection, alignment, networks, rendering, writing
meshes, masks, overlays and the summary), with the breakdown ``read_detect_align`` /
``model`` / ``write``. ``model_faces_per_s`` is the networks + rendering alone on batches of
crops; with ``--adapt R`` the test-time adaptation of one batch (``R`` rounds of the default
steps, :mod:`focus.apps.adapt`) is timed on its own as well (``adapt_s_per_batch``,
``adapt_faces_per_s``). Networks are freshly initialised (speed does not depend on the weights):

* ``default``: the CPU default -- 64 px crops, ResNet-18, U-Net width 16, the embedded face model
  (``models/facemodel.npz``, generated if missing);
* ``paper``: 224 px, ResNet-50, U-Net width 64, a Basel-sized mesh (35,709 vertices;
  ``bench/render.py``'s ``basel_sized``).

**Quality** (``--quality``): the trained model (default ``models/focus.pt``) on the two portraits
with and without a pasted occluder: landmark error against MTCNN (5 points) and MediaPipe (68
points, when installed), normalised by the eye distance, and the IoU of the outlier mask with the
pasted region (:mod:`focus.apps.checks`); MTCNN's run is repeated with test-time adaptation
(``--adapt`` rounds, default 3) as ``mtcnn_adapt``.

The JSON records torch version, threads, device and the load average at the start (timings on a
shared machine depend on it). Devices that are not available are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from focus.apps.reconstruct import (  # noqa: E402
    DEFAULT_MODEL,
    Reconstructor,
    ReconstructSettings,
    load_focus_model,
    run_model,
    save_untrained_checkpoint,
)
from focus.facemodel.model import save_face_model  # noqa: E402

SCALES = {
    "default": {"image_size": 64, "encoder": "resnet18", "unet_width": 16, "mesh": "facemodel"},
    "paper": {"image_size": 224, "encoder": "resnet50", "unet_width": 64, "mesh": "basel_sized"},
}


def _portraits() -> dict[str, np.ndarray]:
    from apps_fixtures import portraits  # tests/apps_fixtures.py

    return portraits()


def _facemodel(kind: str, tmp: Path) -> Path:
    if kind == "basel_sized":
        from render import basel_sized_model  # bench/render.py

        path = tmp / "basel_sized.npz"
        save_face_model(basel_sized_model(), path)
        return path
    path = ROOT / "models" / "facemodel.npz"
    if path.is_file():
        return path
    from focus.facemodel.embedded import generate_face_model

    path = tmp / "facemodel.npz"
    save_face_model(generate_face_model(), path)
    return path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_speed(scale: str, device: torch.device, n_images: int, batch: int, tmp: Path, adapt_rounds: int = 0) -> dict:
    from focus.apps.detect import MTCNNDetector

    cfg = SCALES[scale]
    fm = _facemodel(cfg["mesh"], tmp)
    ckpt = save_untrained_checkpoint(
        tmp / f"{scale}.pt", fm, image_size=cfg["image_size"], encoder_arch=cfg["encoder"], unet_width=cfg["unet_width"]
    )
    model = load_focus_model(ckpt, fm, device=str(device), misfit_prior="none")
    photos = _portraits()
    folder = tmp / f"photos_{scale}"
    folder.mkdir(exist_ok=True)
    names = list(photos)
    for i in range(n_images):
        Image.fromarray(photos[names[i % 2]]).save(folder / f"{i:03d}_{names[i % 2]}.png")
    det = MTCNNDetector(device=str(device))
    settings = ReconstructSettings(batch_size=batch, progress=False)
    runs = []
    for k in range(2):
        rec = Reconstructor(model, det, settings)
        _sync(device)
        t0 = time.perf_counter()
        report = rec.run([folder], tmp / f"out_{scale}_{k}")
        _sync(device)
        runs.append((time.perf_counter() - t0, report))
    seconds, report = runs[-1]
    assert len(report.ok) == n_images, [o.reason for o in report.failed]
    # networks + rendering alone
    crops = np.random.default_rng(0).random((batch, model.crop_size, model.crop_size, 3)).astype(np.float32)
    run_model(model, crops, max(256, model.crop_size))
    _sync(device)
    t0 = time.perf_counter()
    reps = 3
    for _ in range(reps):
        run_model(model, crops, max(256, model.crop_size))
    _sync(device)
    model_s = (time.perf_counter() - t0) / reps
    rec = {
        "device": str(device),
        "scale": scale,
        "images": n_images,
        "faces": report.n_faces,
        "batch": batch,
        "image_size": cfg["image_size"],
        "encoder": cfg["encoder"],
        "unet_width": cfg["unet_width"],
        "vertices": model.face_model.num_vertices,
        "seconds": round(seconds, 3),
        "images_per_s": round(n_images / seconds, 3),
        "breakdown_s": report.timings,
        "model_faces_per_s": round(batch / model_s, 2),
    }
    if adapt_rounds > 0:
        from focus.apps.adapt import AdaptSettings, adapt_networks

        a = AdaptSettings(rounds=adapt_rounds)
        x = torch.from_numpy(crops.transpose(0, 3, 1, 2).copy()).to(device)
        p5 = torch.from_numpy(np.tile(model.template.points2d[None], (batch, 1, 1))).float().to(device)
        adapt_networks(
            model.encoder,
            model.unet,
            model.renderer,
            None,
            x,
            p5,
            None,
            AdaptSettings(rounds=1, seg_steps=2, rec_steps=2),
        )
        _sync(device)
        t0 = time.perf_counter()
        adapt_networks(model.encoder, model.unet, model.renderer, None, x, p5, None, a)
        _sync(device)
        sec = time.perf_counter() - t0
        rec.update(
            {
                "adapt_rounds": adapt_rounds,
                "adapt_steps": [a.seg_steps, a.rec_steps],
                "adapt_s_per_batch": round(sec, 3),
                "adapt_faces_per_s": round(batch / sec, 3),
                "adapt_perceptual": None,
            }
        )
    print(
        f"{device} {scale:7s} {rec['images_per_s']:7.2f} images/s end to end, {rec['model_faces_per_s']:8.2f} faces/s "
        f"networks+render; {report.timings}",
        flush=True,
    )
    return rec


def bench_quality(model_path: Path, tmp: Path, adapt_rounds: int = 3) -> dict:
    from apps_fixtures import POINTS5, occlude, occluder_box

    from focus.apps.adapt import AdaptSettings
    from focus.apps.checks import collect_run_numbers
    from focus.apps.detect import MTCNNDetector, available_backends, make_detector
    from focus.apps.reconstruct import load_adapt_perceptual

    model = load_focus_model(model_path, device="auto")
    photos = _portraits()
    boxes = {}
    folder = tmp / "quality"
    folder.mkdir()
    for name, img in photos.items():
        Image.fromarray(img).save(folder / f"{name}.png")
        boxes[f"{name}.png"] = None
        box = occluder_box(POINTS5[name])
        Image.fromarray(occlude(img, box)).save(folder / f"{name}_occluded.png")
        boxes[f"{name}_occluded.png"] = box
    out = {"model": str(model_path)}
    settings = ReconstructSettings(progress=False)
    Reconstructor(model, MTCNNDetector(), settings).run([folder], tmp / "q_mtcnn")
    out["mtcnn"] = collect_run_numbers(tmp / "q_mtcnn", boxes)
    if adapt_rounds > 0:
        adapted = ReconstructSettings(progress=False, adapt=AdaptSettings(rounds=adapt_rounds))
        t0 = time.perf_counter()
        Reconstructor(model, MTCNNDetector(), adapted, load_adapt_perceptual("auto", model_path)).run(
            [folder], tmp / "q_adapt"
        )
        out["mtcnn_adapt"] = collect_run_numbers(tmp / "q_adapt", boxes)
        out["mtcnn_adapt"]["seconds"] = round(time.perf_counter() - t0, 2)
        out["mtcnn_adapt"]["adaptation"] = json.loads((tmp / "q_adapt" / "report.json").read_text())["model"][
            "adaptation"
        ]
    if "mediapipe" in available_backends():
        det = make_detector("mediapipe")
        try:
            Reconstructor(model, det, settings).run([folder], tmp / "q_mediapipe")
        finally:
            det.close()
        out["mediapipe"] = collect_run_numbers(tmp / "q_mediapipe", boxes)
    print(json.dumps({k: v["summary"] for k, v in out.items() if isinstance(v, dict)}, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON output file")
    p.add_argument("--devices", default="cpu", help="comma-separated: cpu,cuda")
    p.add_argument("--scales", default="default,paper", help="comma-separated: default,paper")
    p.add_argument("--images", type=int, default=8, help="photos per run")
    p.add_argument("--batch", type=int, default=8, help="faces per network call")
    p.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    p.add_argument("--quality", action="store_true", help="measure the trained model's quality instead of speed")
    p.add_argument("--model", type=Path, default=ROOT / DEFAULT_MODEL, help="trained model for --quality")
    p.add_argument(
        "--adapt",
        type=int,
        default=None,
        help="test-time adaptation rounds (speed: also time the adaptation of a batch, default off; "
        "--quality: default 3, 0 leaves it out)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.quality:
            result = {"meta": meta, "quality": bench_quality(args.model, tmp, 3 if args.adapt is None else args.adapt)}
        else:
            records = []
            for dev in args.devices.split(","):
                if dev.startswith("cuda") and not torch.cuda.is_available():
                    records.append({"device": dev, "skipped": "CUDA not available"})
                    continue
                for scale in args.scales.split(","):
                    records.append(bench_speed(scale, torch.device(dev), args.images, args.batch, tmp, args.adapt or 0))
            result = {"meta": meta, "results": records}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
