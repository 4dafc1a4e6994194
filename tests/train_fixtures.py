"""Tiny hand-made face model and face-image folder for the training tests (fast, seeded).

* :func:`tiny_face_model` -- a spherical-cap grid mesh (a few hundred vertices) facing ``+z``
  with random smooth identity / expression / albedo bases and 68 landmark vertices laid out
  like iBUG's (jaw, brows, nose, eyes, mouth), so the 5-point alignment works.
* :func:`make_tiny_folder` -- renders faces of that model into a folder with the layout of
  :mod:`focus.data.dataset` (images, ``landmarks.csv``, ``masks/``, ``face_masks/``) plus
  ``truth.npz``; every other image gets a rectangular occluder.
* :func:`tiny_params` -- a ``params`` dict for :mod:`focus.train.pipeline` on that folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from focus.facemodel.model import FaceModel, save_face_model

RADIUS = 95.0


def _landmark_xy() -> np.ndarray:
    """(68, 2) iBUG-like landmark positions on a frontal face, mm (x right, y up)."""
    pts = []
    for t in np.linspace(-1, 1, 17):  # jaw 0-16
        pts.append((62 * t, -20 - 45 * (1 - t * t) ** 0.5 * 0.9))
    for t in np.linspace(-1, -0.2, 5):  # right brow 17-21
        pts.append((55 * t, 38))
    for t in np.linspace(0.2, 1, 5):  # left brow 22-26
        pts.append((55 * t, 38))
    for y in (25, 15, 5, -5):  # nose bridge 27-30
        pts.append((0, y))
    for x in (-12, -6, 0, 6, 12):  # nose bottom 31-35
        pts.append((x, -12))
    for cx in (-32, 32):  # eyes 36-41, 42-47
        for dx, dy in ((-12, 0), (-5, 4), (5, 4), (12, 0), (5, -4), (-5, -4)):
            pts.append((cx + dx, 25 + dy))
    for t in np.linspace(-1, 1, 7):  # outer upper lip 48-54
        pts.append((25 * t, -35 + 4 * (1 - abs(t))))
    for t in np.linspace(1, -1, 7)[1:-1]:  # outer lower lip 55-59
        pts.append((25 * t, -35 - 7 * (1 - abs(t))))
    for t in np.linspace(-1, 1, 5):  # inner upper 60-64
        pts.append((18 * t, -35 + 1.5 * (1 - abs(t))))
    for t in np.linspace(1, -1, 5)[1:-1]:  # inner lower 65-67
        pts.append((18 * t, -35 - 2 * (1 - abs(t))))
    return np.asarray(pts, np.float64)


def tiny_face_model(n: int = 21, k_id: int = 6, k_exp: int = 4, k_alb: int = 6, seed: int = 0) -> FaceModel:
    """A spherical-cap face model with ``n x n`` vertices (see the module docstring)."""
    rng = np.random.default_rng(seed)
    g = np.linspace(-85.0, 85.0, n)
    X, Y = np.meshgrid(g, g)
    Z = np.sqrt(np.clip(RADIUS**2 * 1.3 - X**2 - Y**2, 1.0, None)) - 20.0
    verts = np.stack([X, Y, Z], -1).reshape(-1, 3)
    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            tris += [(a, b, d), (a, d, c)]  # counter-clockwise seen from +z (x right, y up)
    lm_xy = _landmark_xy()
    d2 = ((verts[None, :, :2] - lm_xy[:, None]) ** 2).sum(-1)
    lm = d2.argmin(1)

    def basis(k: int, scale: float, dims: int = 3) -> np.ndarray:
        out = []
        for _ in range(k):
            c = rng.normal(0, 1, (3, dims))
            f = rng.uniform(0.5, 2.0, 2)
            field = np.sin(f[0] * verts[:, :1] / 60 + c[0]) * np.cos(f[1] * verts[:, 1:2] / 60 + c[1])
            out.append(field * c[2] * scale)
        return np.stack(out).astype(np.float32)

    id_basis = basis(k_id, 6.0)
    exp_basis = basis(k_exp, 3.0)
    alb_basis = basis(k_alb, 0.05)
    albedo = np.clip(np.array([0.75, 0.55, 0.45]) + 0.1 * np.sin(verts[:, :1] / 30), 0, 1)
    nose = np.exp(-((verts[:, 0] / 12) ** 2 + (verts[:, 1] / 18) ** 2))
    verts[:, 2] += 25 * nose  # a nose, so the shape has something to fit
    albedo = albedo * (1 - 0.3 * np.exp(-((np.abs(verts[:, 0]) - 32) ** 2 + (verts[:, 1] - 25) ** 2) / 60))[:, None]
    face = (np.abs(verts[:, 0]) < 70) & (verts[:, 1] < 55) & (verts[:, 1] > -75)
    t = lambda a, dt=torch.float32: torch.as_tensor(np.asarray(a), dtype=dt)  # noqa: E731
    return FaceModel(
        mean_shape=t(verts),
        id_basis=t(id_basis),
        exp_basis=t(exp_basis),
        mean_albedo=t(albedo),
        albedo_basis=t(alb_basis),
        triangles=t(tris, torch.int64),
        landmarks68=t(lm, torch.int64),
        now_landmarks7=t(lm[[36, 39, 42, 45, 33, 48, 54]], torch.int64),
        regions={"face": t(face, torch.bool)},
        id_std=torch.ones(k_id),
        exp_std=torch.ones(k_exp),
        albedo_std=torch.ones(k_alb),
        name="tiny-test-model",
    ).validate()


@torch.no_grad()
def make_tiny_folder(root: Path, model: FaceModel, n: int = 24, size: int = 32, seed: int = 0) -> Path:
    """Render ``n`` faces at ``size`` px into ``root`` (layout of :mod:`focus.data.dataset`) plus ``truth.npz``."""
    from focus.coeffs import CoeffLayout
    from focus.data.landmarks_csv import write_landmarks_csv
    from focus.render.renderer import FaceRenderer, RenderSettings

    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("images", "masks", "face_masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    layout = CoeffLayout.for_model(model)
    r = FaceRenderer(model, RenderSettings(image_size=size, backend="torch"))
    c = torch.zeros(n, layout.dim)
    parts = layout.split(c)
    ids = torch.as_tensor(rng.normal(0, 1, (n, layout.n_id)), dtype=torch.float32)
    parts.id.copy_(ids)
    parts.exp.copy_(torch.as_tensor(rng.normal(0, 0.5, (n, layout.n_exp)), dtype=torch.float32))
    parts.albedo.copy_(torch.as_tensor(rng.normal(0, 1, (n, layout.n_albedo)), dtype=torch.float32))
    parts.angles.copy_(torch.as_tensor(rng.uniform(-0.2, 0.2, (n, 3)), dtype=torch.float32))
    parts.trans.copy_(torch.as_tensor(rng.normal(0, 5, (n, 3)), dtype=torch.float32))
    parts.sh[:, 0].copy_(torch.as_tensor(rng.uniform(-0.2, 0.2, n), dtype=torch.float32))
    out = r(c)
    names, lms, shares = [], [], []
    for i in range(n):
        img = out.image[i].permute(1, 2, 0).clamp(0, 1).numpy()
        cover = out.mask[i, 0].numpy() > 0.5
        bg = rng.uniform(0, 1, 3) * 0.6 + rng.normal(0, 0.05, (size, size, 3))
        img = np.where(cover[..., None], img, bg)
        occ = np.zeros((size, size), bool)
        if i % 2 == 1:
            y0, x0 = rng.integers(size // 4, size // 2, 2)
            h, w = rng.integers(size // 6, size // 3, 2)
            occ[y0 : y0 + h, x0 : x0 + w] = True
            img = np.where(occ[..., None], rng.uniform(0, 1, 3), img)
        name = f"img_{i:03d}.png"
        Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(root / "images" / name)
        Image.fromarray(((cover & ~occ) * 255).astype(np.uint8)).save(root / "masks" / name)
        Image.fromarray((cover * 255).astype(np.uint8)).save(root / "face_masks" / name)
        names.append(name)
        lms.append(out.landmarks[i].numpy())
        shares.append(float((cover & occ).sum() / max(cover.sum(), 1)))
    write_landmarks_csv(root / "landmarks.csv", names, np.stack(lms))
    np.savez(
        root / "truth.npz",
        names=np.array(names),
        id=ids.numpy(),
        landmarks_true=np.stack(lms),
        occluded_share=np.array(shares),
    )
    return root


def tiny_params(
    tmp: Path, steps: int = 3, rounds: int = 1, size: int = 32, identity: str = "none", identity_path: str = ""
) -> dict:
    """A complete ``params`` dict for :mod:`focus.train.pipeline` on a tiny folder under ``tmp``."""
    model_path = tmp / "facemodel.npz"
    if not model_path.exists():
        save_face_model(tiny_face_model(), model_path)
    data = tmp / "data"
    if not (data / "landmarks.csv").exists():
        make_tiny_folder(data, tiny_face_model(), n=24, size=size)
    return {
        "render": {"image_size": size, "backend": "torch"},
        "data": {"augment": {"enabled": True}},
        "train": {
            "data": str(data),
            "val_count": 8,
            "batch_size": 4,
            "num_threads": 1,
            "facemodel": str(model_path),
            "encoder": {"arch": "resnet18"},
            "unet": {"base_width": 4, "depth": 2},
            "identity": identity,
            "identity_path": identity_path,
            "checkpoint_every": 2,
            "progress": False,
            "val_batch_size": 8,
        },
        "init": {"steps": steps, "optim": {"name": "adam", "lr": 1e-3}},
        "pretrain_seg": {"steps": steps, "optim": {"name": "adam", "lr": 1e-3}},
        "em": {"rounds": rounds, "seg_steps": steps, "rec_steps": steps},
    }
