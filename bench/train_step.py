"""Benchmark of FOCUS training steps: images per second of a reconstruction and a segmentation step.

    python bench/train_step.py --out bench/results/train_step_cpu.json [--devices cpu,cuda]
                               [--scales default,paper] [--iters 5] [--threads 2]

One **reconstruction step** = encoder forward, render, U-Net on the current render (gradients
through it), ``L_E`` with ``L_id`` through the identity network, backward, optimiser step. One
**segmentation step** = frozen encoder + render (no gradient), U-Net forward, ``L_S`` with
``L_presv`` / ``L_dist`` through the identity network's early features, backward, optimiser step.
``images_per_s`` is ``batch / median step time`` after one warm-up step.

Scales:

* ``default``: the CPU default of ``params.yaml`` -- 64 px, ResNet-18, U-Net base width 16,
  batch 16, the offline identity network (iResNet, 56 px crops, random weights: speed does not
  depend on them), the embedded face model ``models/facemodel.npz``.
* ``paper``: 224 px, ResNet-50, U-Net base width 64, batch 12, ArcFace-sized iResNet-50 at
  112 px (random weights), and a mesh of Basel size (35,709 vertices, 70,789 triangles; the
  ``basel_sized`` mesh of ``bench/render.py``), Adadelta.

Devices that are not available (``cuda`` without a GPU) are reported as skipped. The JSON records
torch version, thread count and the load average at the start (timings on a shared machine
depend on it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from focus.facemodel.model import load_face_model  # noqa: E402
from focus.losses import ReconstructionLossWeights, SegmentationLossWeights  # noqa: E402
from focus.nets.encoder import EncoderSettings, ReconstructionEncoder  # noqa: E402
from focus.nets.iresnet import IResNet, IResNetSettings  # noqa: E402
from focus.nets.perceptual import PerceptualNet  # noqa: E402
from focus.nets.unet import SegmentationUNet, UNetSettings  # noqa: E402
from focus.render.renderer import FaceRenderer, RenderSettings  # noqa: E402
from focus.train import steps as S  # noqa: E402
from focus.train.settings import scaled_lm_weight, scaled_reg_weight  # noqa: E402

SCALES = {
    "default": {
        "image_size": 64,
        "encoder": "resnet18",
        "unet_width": 16,
        "batch": 16,
        "id_size": 56,
        "id_layers": (1, 1, 1, 1),
        "id_width": 16,
        "id_features": 128,
        "optimizer": "adam",
    },
    "paper": {
        "image_size": 224,
        "encoder": "resnet50",
        "unet_width": 64,
        "batch": 12,
        "id_size": 112,
        "id_layers": (3, 4, 14, 3),
        "id_width": 64,
        "id_features": 512,
        "optimizer": "adadelta",
    },
}


def _model(scale: str):
    if scale == "paper":
        sys.path.insert(0, str(ROOT / "bench"))
        from render import basel_sized_model  # noqa: E402 - bench/render.py

        return basel_sized_model()
    path = ROOT / "models" / "facemodel.npz"
    if path.is_file():
        return load_face_model(path)
    from focus.facemodel.embedded import generate_face_model

    return generate_face_model()


def _batch(renderer: FaceRenderer, b: int, device) -> dict:
    """A batch of renders of random faces (the images' content does not change the cost)."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(b, renderer.layout.dim, generator=g) * 0.3
    lay = renderer.layout
    c[:, lay.n_id + lay.n_exp + lay.n_albedo :] *= 0.1
    with torch.no_grad():
        out = renderer(c.to(device))
    image = (out.image.clamp(0, 1) + 0.3 * (1 - out.mask) * torch.rand_like(out.image)).clamp(0, 1)
    return {"image": image, "landmarks": out.landmarks + torch.randn_like(out.landmarks)}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_scale(scale: str, device: torch.device, iters: int) -> list[dict]:
    cfg = SCALES[scale]
    size = cfg["image_size"]
    model = _model(scale).to(device)
    renderer = FaceRenderer(model, RenderSettings(image_size=size, backend="auto")).to(device)
    torch.manual_seed(0)
    enc = ReconstructionEncoder(renderer.layout, EncoderSettings(cfg["encoder"])).to(device)
    unet = SegmentationUNet(UNetSettings(base_width=cfg["unet_width"], depth=4)).to(device)
    idnet = IResNet(
        IResNetSettings(
            arch="custom",
            layers=cfg["id_layers"],
            base_width=cfg["id_width"],
            input_size=cfg["id_size"],
            num_features=cfg["id_features"],
        )
    )
    per = PerceptualNet(idnet).to(device)
    batch = _batch(renderer, cfg["batch"], device)
    opt_cls = torch.optim.Adadelta if cfg["optimizer"] == "adadelta" else torch.optim.Adam
    rec_w = ReconstructionLossWeights(lm=scaled_lm_weight(5e-4, size), reg=scaled_reg_weight(0.1, size))
    seg_w = SegmentationLossWeights()
    results = []
    for step in ("reconstruction", "segmentation"):
        if step == "reconstruction":
            trained, frozen = enc, unet
            fn = lambda: S.reconstruction_objective(enc, unet, renderer, per, batch, rec_w, True)  # noqa: E731
        else:
            trained, frozen = unet, enc
            fn = lambda: S.segmentation_objective(unet, enc, renderer, per, batch, seg_w)  # noqa: E731
        trained.train().requires_grad_(True)
        frozen.eval().requires_grad_(False)
        opt = opt_cls(trained.parameters(), lr=1e-4)
        times = []
        for i in range(iters + 1):
            _sync(device)
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss, _ = fn()
            loss.backward()
            opt.step()
            _sync(device)
            if i > 0:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        results.append(
            {
                "device": str(device),
                "scale": scale,
                "step": step,
                "batch": cfg["batch"],
                "image_size": size,
                "encoder": cfg["encoder"],
                "unet_width": cfg["unet_width"],
                "vertices": model.num_vertices,
                "iters": iters,
                "seconds_per_step": round(med, 4),
                "images_per_s": round(cfg["batch"] / med, 2),
            }
        )
        print(f"{device} {scale:7s} {step:15s} {med:8.3f} s/step  {cfg['batch'] / med:8.2f} img/s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON output file")
    p.add_argument("--devices", default="cpu", help="comma-separated: cpu,cuda")
    p.add_argument("--scales", default="default,paper", help="comma-separated: default,paper")
    p.add_argument("--iters", type=int, default=5, help="timed steps per configuration (after one warm-up)")
    p.add_argument("--paper-iters", type=int, default=2, help="timed steps at paper scale on the CPU")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    records, skipped = [], []
    for dev_name in [d for d in a.devices.split(",") if d]:
        if dev_name.startswith("cuda") and not torch.cuda.is_available():
            skipped.append({"device": dev_name, "reason": "CUDA not available"})
            print(f"{dev_name}: skipped (CUDA not available)")
            continue
        device = torch.device(dev_name)
        for scale in [s for s in a.scales.split(",") if s]:
            iters = a.paper_iters if (scale == "paper" and device.type == "cpu") else a.iters
            records.extend(bench_scale(scale, device, iters))
    out = {
        "benchmark": "train_step",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "results": records,
        "skipped": skipped,
    }
    from focus.io_utils import write_json_atomic

    write_json_atomic(a.out, out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
