"""Benchmark of FOCUS training steps: images per second of a reconstruction and a segmentation step.

    python bench/train_step.py --out bench/results/train_step_cpu.json [--devices cpu,cuda]
                               [--scales default,paper] [--precisions float32,bf16]
                               [--batches 12,128] [--channels-last auto] [--iters 5] [--threads 2]
    python bench/train_step.py --quick --out /tmp/train_step_quick.json    # seconds, on the CPU

One **reconstruction step** = encoder forward, render, U-Net on the current render (gradients
through it), ``L_E`` with ``L_id`` through the identity network, backward, optimiser step. One
**segmentation step** = frozen encoder + render (no gradient), U-Net forward, ``L_S`` with
``L_presv`` / ``L_dist`` through the identity network's early features, backward, optimiser step.
Both are the training's own objectives (:mod:`focus.train.steps`), with the precision options of
``train.precision`` / ``train.channels_last`` (:mod:`focus.precision`: bf16 autocast around the
networks only; the renderer and the losses stay float32). ``images_per_s`` is ``batch / median
step time`` after one warm-up step.

Every configuration starts from the same seeded weights and batch, so the loss of its first step
is comparable across precisions: ``loss_rel_diff_vs_float32`` is ``|L_bf16 - L_fp32| / |L_fp32|``
of the step's total loss (and ``max_term_rel_diff_vs_float32`` the largest over the loss terms
above 1e-3), measured against the float32 configuration of the same device, scale and batch.

Scales:

* ``tiny`` (``--quick``): 32 px, ResNet-18, U-Net base width 4, batch 4, a tiny identity network,
  the embedded face model at resolution 31 (941 vertices): checks that the benchmark runs.
* ``default``: the CPU default of ``params.yaml`` -- 64 px, ResNet-18, U-Net base width 16,
  batch 16, the offline identity network (iResNet, 56 px crops, random weights: speed does not
  depend on them), the embedded face model ``models/facemodel.npz``.
* ``paper``: 224 px, ResNet-50, U-Net base width 64, batch 12, ArcFace-sized iResNet-50 at
  112 px (random weights), and a mesh of Basel size (35,709 vertices, 70,789 triangles; the
  ``basel_sized`` mesh of ``bench/render.py``), Adadelta.

``--batches`` replaces each scale's batch (e.g. ``12,128``: the paper's and a GPU-sized one).
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
from focus.precision import PRECISIONS, to_channels_last  # noqa: E402
from focus.render.rasterizer import resolve_backend  # noqa: E402
from focus.render.renderer import FaceRenderer, RenderSettings  # noqa: E402
from focus.train import steps as S  # noqa: E402
from focus.train.settings import scaled_lm_weight, scaled_reg_weight  # noqa: E402

SCALES = {
    "tiny": {
        "image_size": 32,
        "encoder": "resnet18",
        "unet_width": 4,
        "unet_depth": 2,
        "batch": 4,
        "id_size": 24,
        "id_layers": (1, 1, 1, 1),
        "id_width": 4,
        "id_features": 8,
        "optimizer": "adam",
    },
    "default": {
        "image_size": 64,
        "encoder": "resnet18",
        "unet_width": 16,
        "unet_depth": 4,
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
        "unet_depth": 4,
        "batch": 12,
        "id_size": 112,
        "id_layers": (3, 4, 14, 3),
        "id_width": 64,
        "id_features": 512,
        "optimizer": "adadelta",
    },
}
STEPS = ("reconstruction", "segmentation")


def _model(scale: str):
    if scale == "paper":
        sys.path.insert(0, str(ROOT / "bench"))
        from render import basel_sized_model  # noqa: E402 - bench/render.py

        return basel_sized_model()
    from focus.facemodel.embedded import EmbeddedModelSettings, generate_face_model

    if scale == "tiny":
        return generate_face_model(
            EmbeddedModelSettings(resolution=31, population_size=40, albedo_population_size=40, n_id=20, n_albedo=20)
        )
    path = ROOT / "models" / "facemodel.npz"
    if path.is_file():
        return load_face_model(path)
    return generate_face_model()


def _batch(renderer: FaceRenderer, b: int, device) -> dict:
    """A batch of renders of random faces (the images' content does not change the cost)."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(b, renderer.layout.dim, generator=g) * 0.3
    lay = renderer.layout
    c[:, lay.n_id + lay.n_exp + lay.n_albedo :] *= 0.1
    with torch.no_grad():
        out = renderer(c.to(device))
    noise = torch.rand(out.image.shape, generator=g).to(device)
    image = (out.image.clamp(0, 1) + 0.3 * (1 - out.mask) * noise).clamp(0, 1)
    lm_noise = torch.randn(out.landmarks.shape, generator=g).to(device)
    return {"image": image, "landmarks": out.landmarks + lm_noise}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _networks(cfg: dict, renderer: FaceRenderer, device, channels_last: bool):
    """Encoder (a non-zero head, as after training: at zero every precision renders the mean face),
    U-Net and identity network, seeded: the same weights for every configuration."""
    torch.manual_seed(0)
    enc = ReconstructionEncoder(renderer.layout, EncoderSettings(cfg["encoder"]))
    with torch.no_grad():
        enc.backbone.fc.weight.normal_(0, 1e-3)
    torch.manual_seed(1)
    unet = SegmentationUNet(UNetSettings(base_width=cfg["unet_width"], depth=cfg["unet_depth"]))
    torch.manual_seed(2)
    idnet = IResNet(
        IResNetSettings(
            arch="custom",
            layers=cfg["id_layers"],
            base_width=cfg["id_width"],
            input_size=cfg["id_size"],
            num_features=cfg["id_features"],
        )
    )
    nets = [enc.to(device), unet.to(device), PerceptualNet(idnet).to(device).eval()]
    if channels_last:
        nets = [to_channels_last(n) for n in nets]
    return nets


def bench_config(
    scale: str, model, device: torch.device, iters: int, precision: str, batch_size: int, channels_last: bool
) -> list[dict]:
    """Both step kinds at one (scale, device, precision, batch, layout)."""
    cfg = SCALES[scale]
    size = cfg["image_size"]
    renderer = FaceRenderer(model, RenderSettings(image_size=size, backend="auto")).to(device)
    enc, unet, per = _networks(cfg, renderer, device, channels_last)
    batch = _batch(renderer, batch_size, device)
    opt_cls = torch.optim.Adadelta if cfg["optimizer"] == "adadelta" else torch.optim.Adam
    rec_w = ReconstructionLossWeights(lm=scaled_lm_weight(5e-4, size), reg=scaled_reg_weight(0.1, size))
    seg_w = SegmentationLossWeights()
    amp = {"precision": precision, "channels_last": channels_last}
    results = []
    for step in STEPS:
        if step == "reconstruction":
            trained, frozen = enc, unet
            fn = lambda: S.reconstruction_objective(enc, unet, renderer, per, batch, rec_w, True, **amp)  # noqa: E731
        else:
            trained, frozen = unet, enc
            fn = lambda: S.segmentation_objective(unet, enc, renderer, per, batch, seg_w, **amp)  # noqa: E731
        trained.train().requires_grad_(True)
        frozen.eval().requires_grad_(False)
        per.requires_grad_(False)
        opt = opt_cls(trained.parameters(), lr=1e-4)
        times, first = [], None
        for i in range(iters + 1):
            _sync(device)
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss, terms = fn()
            loss.backward()
            opt.step()
            _sync(device)
            if i == 0:  # the same weights and batch in every configuration: comparable losses
                first = {k: float(v) for k, v in terms.items()}
            else:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        results.append(
            {
                "device": str(device),
                "scale": scale,
                "step": step,
                "batch": batch_size,
                "image_size": size,
                "precision": precision,
                "channels_last": channels_last,
                "encoder": cfg["encoder"],
                "unet_width": cfg["unet_width"],
                "vertices": model.num_vertices,
                "backend": resolve_backend("auto", device),
                "iters": iters,
                "seconds_per_step": round(med, 5),
                "images_per_s": round(batch_size / med, 2),
                "first_step_losses": first,
                "peak_cuda_mb": (
                    round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None
                ),
            }
        )
        print(
            f"{device} {scale:7s} {step:15s} b={batch_size:<4d} {precision:7s} cl={int(channels_last)} "
            f"{med:8.4f} s/step {batch_size / med:9.2f} img/s  loss {first['total']:.6g}",
            flush=True,
        )
        del opt
    return results


def add_agreement(records: list[dict]) -> None:
    """``loss_rel_diff_vs_float32`` (total loss) and ``max_term_rel_diff_vs_float32`` (terms whose
    float32 value is above 1e-3) of every record against its float32 twin (same device, scale,
    step, batch, layout)."""
    key = lambda r: (r["device"], r["scale"], r["step"], r["batch"], r["channels_last"])  # noqa: E731
    ref = {key(r): r for r in records if r["precision"] == "float32"}
    for r in records:
        base = ref.get(key(r))
        if base is None or r is base:
            continue
        a, b = r["first_step_losses"], base["first_step_losses"]
        rel = {k: abs(a[k] - b[k]) / abs(b[k]) for k in b if k in a and abs(b[k]) > 1e-3}
        r["loss_rel_diff_vs_float32"] = round(rel.get("total", float("nan")), 6)
        r["max_term_rel_diff_vs_float32"] = round(max(rel.values()), 6) if rel else None


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON output file")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes on the CPU (scale tiny, 2 timed steps, float32 and bf16): checks that it runs",
    )
    p.add_argument("--devices", default="cpu", help="comma-separated: cpu,cuda")
    p.add_argument("--scales", default="default,paper", help="comma-separated: tiny,default,paper")
    p.add_argument("--precisions", default="float32", help="comma-separated: float32,bf16")
    p.add_argument("--batches", default="", help="comma-separated batch sizes replacing each scale's own")
    p.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="channels-last layout of the CNNs (auto: on for CUDA)",
    )
    p.add_argument("--iters", type=int, default=5, help="timed steps per configuration (after one warm-up)")
    p.add_argument("--paper-iters", type=int, default=2, help="timed steps at paper scale on the CPU")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.quick:
        a.scales, a.iters, a.devices = "tiny", min(a.iters, 2), "cpu"
        if a.precisions == "float32":
            a.precisions = "float32,bf16"
    for prec in a.precisions.split(","):
        if prec not in PRECISIONS:
            p.error(f"unknown precision {prec!r}; known: {', '.join(PRECISIONS)}")
    for scale in a.scales.split(","):
        if scale not in SCALES:
            p.error(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
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
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        cl = a.channels_last == "on" or (a.channels_last == "auto" and device.type == "cuda")
        for scale in [s for s in a.scales.split(",") if s]:
            iters = a.paper_iters if (scale == "paper" and device.type == "cpu") else a.iters
            model = _model(scale).to(device)
            for batch in _ints(a.batches) or [SCALES[scale]["batch"]]:
                for prec in [x for x in a.precisions.split(",") if x]:
                    records.extend(bench_config(scale, model, device, iters, prec, batch, cl))
    add_agreement(records)
    out = {
        "benchmark": "train_step",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "argv": sys.argv[1:] if argv is None else argv,
        "results": records,
        "skipped": skipped,
    }
    from focus.io_utils import write_json_atomic

    write_json_atomic(a.out, out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
