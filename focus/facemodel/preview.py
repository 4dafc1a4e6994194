"""Preview picture sheets of a face model (PNG), rendered with :class:`FaceRenderer`.

:func:`write_previews` writes, into one folder:

* ``mean_face.png``: the mean face under several poses (frontal, yaw +-30 and +-45 degrees,
  pitch +-20 degrees) and lights (ambient only, from the left, right, above and below);
* ``identity_modes.png``: identity modes 1..N at -3 and +3 std (mean albedo, side light);
* ``expressions.png``: every expression mode at weight +1 (and the neutral face);
* ``albedo_modes.png``: albedo modes 1..N at -3 and +3 std (frontal, mostly ambient light);
* ``landmarks.png``: the 68 landmarks, numbered, on a frontal and a turned render (NoW landmarks
  ringed);
* ``regions.png``: the model's named vertex regions painted on the mean face;
* ``samples.png``: random faces (identity, albedo, mild expression, pose and light).

All renders share the camera of the given :class:`RenderSettings` (its ``image_size`` is
replaced by the panel size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from focus.coeffs import CoeffLayout, Coeffs  # noqa: E402
from focus.facemodel.model import FaceModel  # noqa: E402
from focus.io_utils import atomic_path  # noqa: E402
from focus.render.renderer import FaceRenderer, RenderSettings  # noqa: E402

PREVIEW_FILES: tuple[str, ...] = (
    "mean_face.png",
    "identity_modes.png",
    "expressions.png",
    "albedo_modes.png",
    "landmarks.png",
    "regions.png",
    "samples.png",
)


@dataclass(frozen=True)
class PreviewSettings:
    """Sizes of the preview sheets.

    Attributes:
        panel_size: pixels of one rendered face.
        n_modes: identity / albedo modes shown.
        sigma: the +- std shown for each mode.
        n_samples: random faces on ``samples.png``.
        seed: seed of the random faces.
        dpi: resolution of the written PNGs (controls the file size).
    """

    panel_size: int = 128
    n_modes: int = 6
    sigma: float = 3.0
    n_samples: int = 8
    seed: int = 0
    dpi: int = 72


# --------------------------------------------------------------------------- lighting / pose
def directional_sh(
    direction: tuple[float, float, float],
    strength: float = 0.35,
    ambient_offset: float = -0.15,
    color: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> torch.Tensor:
    """``(27,)`` SH coefficients of a directional light (world frame: ``+x`` image right, ``+y``
    up, ``+z`` towards the camera), added to the renderer's default ambient light.

    Only the first-order band is used: irradiance grows linearly with ``n . direction``.
    ``ambient_offset`` lowers (negative) or raises the constant term.
    """
    d = torch.tensor(direction, dtype=torch.float32)
    d = d / d.norm().clamp_min(1e-8)
    per_channel = torch.zeros(9)
    per_channel[0] = ambient_offset
    per_channel[1] = -strength * d[1]
    per_channel[2] = strength * d[2]
    per_channel[3] = -strength * d[0]
    return torch.cat([per_channel * c for c in color])


def _coeffs(layout: CoeffLayout, n: int, **parts: torch.Tensor) -> Coeffs:
    c = layout.zeros(n)
    x = layout.join(c).clone()
    view = layout.split(x)
    for name, value in parts.items():
        getattr(view, name).copy_(value.expand_as(getattr(view, name)))
    return view


def _render(renderer: FaceRenderer, coeffs: Coeffs) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(B, H, W, 3)`` in [0, 1] and landmarks ``(B, 68, 2)`` (pixels)."""
    with torch.no_grad():
        out = renderer(coeffs)
    img = out.image.clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu().numpy()
    return img, out.landmarks.cpu().numpy()


def _sheet(images: list[np.ndarray], titles: list[str], cols: int, path: Path, dpi: int, suptitle: str) -> None:
    rows = math.ceil(len(images) / cols)
    h, w = images[0].shape[:2]
    scale = 1.0 / dpi
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * w * scale, rows * (h * scale + 0.22) + 0.4), facecolor="black", squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im, title in zip(axes.ravel(), images, titles):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(title, fontsize=6.5, color="white", pad=2)
    fh = fig.get_figheight()
    fig.suptitle(suptitle, fontsize=8, color="white", y=1.0 - 0.06 / fh, va="top")
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=1.0 - 0.42 / fh, wspace=0.02, hspace=0.22)
    _save(fig, path, dpi)


def _save(fig, path: Path, dpi: int, colors: int = 128) -> None:
    """Write ``fig`` as a palette PNG (``colors`` colours: a few times smaller than RGB)."""
    from PIL import Image

    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    img = Image.fromarray(np.ascontiguousarray(rgb)).quantize(
        colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG", optimize=True)


# --------------------------------------------------------------------------- sheets
def _mean_face(r: FaceRenderer, L: CoeffLayout, s: PreviewSettings, out: Path) -> None:
    deg = math.pi / 180.0
    key = directional_sh((0.3, 0.4, 1.0))
    poses = [
        ("frontal", 0, 0),
        ("yaw -45", 0, -45),
        ("yaw -30", 0, -30),
        ("yaw +30", 0, 30),
        ("yaw +45", 0, 45),
        ("pitch -20 (up)", -20, 0),
        ("pitch +20 (down)", 20, 0),
    ]
    lights = [
        ("ambient only", torch.zeros(27)),
        ("light from left", directional_sh((-1.0, 0.2, 0.6), 0.5)),
        ("light from right", directional_sh((1.0, 0.2, 0.6), 0.5)),
        ("light from above", directional_sh((0.0, 1.0, 0.5), 0.5)),
        ("light from below", directional_sh((0.0, -1.0, 0.5), 0.5)),
    ]
    angles = torch.tensor([[p * deg, y * deg, 0.0] for _, p, y in poses])
    sh = torch.stack([key] * len(poses) + [l for _, l in lights])
    angles = torch.cat([angles, torch.zeros(len(lights), 3)])
    img, _ = _render(r, _coeffs(L, len(sh), angles=angles, sh=sh))
    titles = [t for t, _, _ in poses] + [t for t, _ in lights]
    _sheet(list(img), titles, 6, out / "mean_face.png", s.dpi, "mean face: poses and lights")


def _modes(
    r: FaceRenderer, L: CoeffLayout, s: PreviewSettings, out: Path, part: str, n_avail: int, fname: str, title: str
) -> None:
    n = min(s.n_modes, n_avail)
    batch = 2 * n
    vals = torch.zeros(batch, getattr(L, f"n_{part}"))
    titles = []
    for k in range(n):
        vals[k, k] = -s.sigma
        vals[n + k, k] = s.sigma
    titles = [f"{part} {k + 1}: -{s.sigma:g} sd" for k in range(n)] + [
        f"{part} {k + 1}: +{s.sigma:g} sd" for k in range(n)
    ]
    light = directional_sh((0.5, 0.35, 1.0), 0.35) if part == "id" else directional_sh((0.2, 0.3, 1.0), 0.15, 0.0)
    img, _ = _render(r, _coeffs(L, batch, **{part: vals, "sh": light}))
    _sheet(list(img), titles, n, out / fname, s.dpi, title)


def _expressions(r: FaceRenderer, L: CoeffLayout, s: PreviewSettings, out: Path, names: list[str] | None) -> None:
    K = L.n_exp
    vals = torch.cat([torch.zeros(1, K), torch.eye(K)])
    light = directional_sh((0.4, 0.4, 1.0), 0.35)
    images = []
    for chunk in torch.split(vals, 16):
        img, _ = _render(r, _coeffs(L, len(chunk), exp=chunk, sh=light))
        images.extend(img)
    labels = names if names is not None and len(names) >= K else [f"exp {k + 1}" for k in range(K)]
    titles = ["neutral"] + [f"{k + 1}: {labels[k]} +1" for k in range(K)]
    _sheet(images, titles, 8, out / "expressions.png", s.dpi, "expression modes at weight +1")


def _landmarks(model: FaceModel, render: RenderSettings, s: PreviewSettings, out: Path) -> None:
    size = max(3 * s.panel_size, 320)
    r = FaceRenderer(model, replace(render, image_size=size))
    L = CoeffLayout.for_model(model)
    deg = math.pi / 180.0
    angles = torch.tensor([[0.0, 0.0, 0.0], [0.0, 30 * deg, 0.0]])
    img, lms = _render(r, _coeffs(L, 2, angles=angles, sh=directional_sh((0.3, 0.4, 1.0), 0.3)))
    now = set(int(i) for i in (36, 39, 42, 45, 33, 48, 54))
    fig, axes = plt.subplots(1, 2, figsize=(2 * size / 100, size / 100 + 0.3), facecolor="black")
    for ax, im, lm, title in zip(axes, img, lms, ("frontal", "yaw +30")):
        ax.imshow(im)
        ax.axis("off")
        ax.scatter(lm[:, 0] - 0.5, lm[:, 1] - 0.5, s=7, c="lime", linewidths=0)
        ring = np.array(sorted(now))
        ax.scatter(lm[ring, 0] - 0.5, lm[ring, 1] - 0.5, s=28, facecolors="none", edgecolors="red", linewidths=0.6)
        for i, (u, v) in enumerate(lm):
            ax.text(u - 0.5, v - 0.5, str(i), fontsize=3.6, color="yellow", ha="left", va="bottom")
        ax.set_title(f"68 landmarks ({title}); red rings: NoW 7", fontsize=6, color="white", pad=2)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.93, wspace=0.01)
    _save(fig, out / "landmarks.png", 100, colors=200)


_REGION_COLORS = {
    "eyes": (0.2, 0.4, 1.0),
    "brows": (0.35, 0.2, 0.05),
    "lips": (0.9, 0.1, 0.2),
    "nose": (0.95, 0.8, 0.2),
    "nostrils": (0.0, 0.0, 0.0),
    "beard": (0.3, 0.6, 0.3),
    "forehead": (0.6, 0.5, 0.9),
    "cheeks": (1.0, 0.55, 0.55),
}


def _regions(model: FaceModel, render: RenderSettings, s: PreviewSettings, out: Path) -> None:
    L = CoeffLayout.for_model(model)
    panels, titles = [], []
    V = model.num_vertices
    for name in ("face", "skin", "semantic"):
        if name != "semantic" and name not in model.regions:
            continue
        alb = torch.full((V, 3), 0.25)
        if name == "semantic":
            for key, col in _REGION_COLORS.items():
                if key in model.regions:
                    alb[model.regions[key]] = torch.tensor(col)
            titles.append(" ".join(k for k in _REGION_COLORS if k in model.regions))
        else:
            alb[model.regions[name]] = torch.tensor((0.9, 0.75, 0.6))
            titles.append(f"region '{name}'")
        m = replace(model, mean_albedo=alb, albedo_basis=torch.zeros_like(model.albedo_basis))
        r = FaceRenderer(m, replace(render, image_size=s.panel_size))
        img, _ = _render(r, _coeffs(L, 1, sh=directional_sh((0.3, 0.4, 1.0), 0.25, 0.1)))
        panels.append(img[0])
    _sheet(panels, titles, len(panels), out / "regions.png", s.dpi, "vertex regions")


def _samples(r: FaceRenderer, L: CoeffLayout, s: PreviewSettings, out: Path) -> None:
    g = torch.Generator().manual_seed(s.seed)
    n = s.n_samples
    deg = math.pi / 180.0
    ids = torch.randn(n, L.n_id, generator=g)
    alb = torch.randn(n, L.n_albedo, generator=g)
    exp = 0.2 * torch.randn(n, L.n_exp, generator=g)
    angles = torch.stack([torch.zeros(n), (torch.rand(n, generator=g) * 2 - 1) * 35 * deg, torch.zeros(n)], 1)
    sh = torch.stack(
        [
            directional_sh(tuple((torch.rand(3, generator=g) * 2 - 1 + torch.tensor([0, 0.3, 1.2])).tolist()), 0.35)
            for _ in range(n)
        ]
    )
    img, _ = _render(r, _coeffs(L, n, id=ids, albedo=alb, exp=exp, angles=angles, sh=sh))
    _sheet(
        list(img),
        [f"sample {i + 1}" for i in range(n)],
        min(n, 8),
        out / "samples.png",
        s.dpi,
        "random faces (id, albedo ~ N(0,1); expression ~ N(0, 0.2^2))",
    )


def write_previews(
    model: FaceModel,
    out_dir: str | Path,
    render: RenderSettings = RenderSettings(),
    settings: PreviewSettings = PreviewSettings(),
    expression_names: list[str] | None = None,
) -> list[Path]:
    """Render the preview sheets of ``model`` into ``out_dir``; returns the written paths.

    ``expression_names`` labels the expression modes (the embedded model's names by default
    when the model has as many modes as :func:`focus.facemodel.expressions.expression_names`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(dtype=torch.float32)
    L = CoeffLayout.for_model(model)
    r = FaceRenderer(model, replace(render, image_size=settings.panel_size))
    if expression_names is None and model.name.startswith("focus-embedded"):
        from focus.facemodel.expressions import expression_names as _names

        expression_names = _names()
    _mean_face(r, L, settings, out)
    _modes(r, L, settings, out, "id", L.n_id, "identity_modes.png", f"identity modes at +-{settings.sigma:g} std")
    _expressions(r, L, settings, out, expression_names)
    _modes(r, L, settings, out, "albedo", L.n_albedo, "albedo_modes.png", f"albedo modes at +-{settings.sigma:g} std")
    _landmarks(model, render, settings, out)
    _regions(model, render, settings, out)
    _samples(r, L, settings, out)
    return [out / f for f in PREVIEW_FILES]
