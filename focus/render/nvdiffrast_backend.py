"""Visibility pass on the GPU with nvdiffrast's CUDA rasterizer (optional extra).

nvdiffrast (NVIDIA's non-commercial source licence) is installed with the project's ``gpu`` extra
(PyPI ``diffrp-nvdiffrast``, an unchanged repackaging of v0.3.3 that installs the module
``nvdiffrast`` and compiles its CUDA plugin with ninja + nvcc on first use). It is never
imported unless this backend is asked for.

Only the *visibility* comes from nvdiffrast (which triangle covers each pixel centre); the
barycentrics are recomputed by the shared :func:`focus.render.rasterizer.fragments_from_triangle_ids`,
so both backends interpolate identically and differ only in ties on shared edges (nvdiffrast
snaps vertices to its own sub-pixel grid and has its own fill rule).

Mapping to clip space
---------------------
``x_ndc = 2 u / W' - 1`` and ``y_ndc = 2 v / H' - 1`` where ``(W', H')`` is the image size rounded
up to a multiple of 8 (nvdiffrast's CUDA rasterizer needs that; the extra rows/columns lie beyond
the image's right and bottom edge and are cropped). nvdiffrast's pixel row ``i`` has its centre at
``y_ndc = 2 (i + 0.5) / H' - 1`` (row 0 at ``y_ndc = -1``, the bottom in OpenGL terms), so with this
mapping nvdiffrast's row ``i`` **is** image row ``i`` (row 0 at the top, as everywhere in the
project) and **no flip is needed**. The mapping mirrors the picture vertically relative to
OpenGL's convention, which swaps the apparent winding; that is harmless because culling is done
here, not by nvdiffrast.

Depth: ``w_clip = z_cam`` (mm), ``z_clip = a z_cam + b`` with ``z_ndc = z_clip / w_clip`` mapping
``[near, far]`` to ``[-1, 1]`` (``far`` from the data), so the depth test compares ``1 / z_cam``
interpolated linearly in screen space, the same perspective-correct depth as the torch backend.

Limits of nvdiffrast's CUDA rasterizer: images up to 2048 x 2048 (padded size), float32 only
(the shared interpolation may still run in float64).

Culling: nvdiffrast draws both sides of every triangle, so vertices are unshared (three per
triangle, ``(B, 3 F, 4)``) and every triangle that :func:`focus.render.rasterizer.front_facing`
discards (back-facing, degenerate, too near, outside the guard band) is collapsed to a single
point outside the clip volume. Triangle ids stay those of ``triangles``, exactly as in the torch
backend.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys

import torch
from torch import Tensor

TILE = 8  # nvdiffrast's CUDA rasterizer needs width and height divisible by this
_OUTSIDE = (-2.0, -2.0, -2.0, 1.0)  # clip-space point outside the view volume on every axis


def is_available() -> bool:
    """True when the ``nvdiffrast`` module can be imported (the CUDA plugin may still fail to build)."""
    return importlib.util.find_spec("nvdiffrast") is not None


def _dr():
    try:
        import nvdiffrast.torch as dr
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the nvdiffrast backend needs the optional `gpu` extra: pip install -e '.[gpu]' "
            "(PyPI diffrp-nvdiffrast; needs ninja and nvcc)"
        ) from exc
    return dr


def _make_plugin_importable(exc: ModuleNotFoundError) -> bool:
    """Work around nvdiffrast 0.3.3 with PyTorch >= 2.x: its plugin builds into PyTorch's extension
    folder, but newer PyTorch no longer puts that folder on ``sys.path``, so nvdiffrast's final
    ``importlib.import_module(plugin_name)`` fails right after a successful build. Put the folder
    on the path (once) so the retry imports the built plugin; False if ``exc`` is something else."""
    name = getattr(exc, "name", None) or ""
    if not name.startswith("nvdiffrast_plugin"):
        return False
    from torch.utils import cpp_extension

    build_dir = cpp_extension._get_build_directory(name, False)
    if build_dir in sys.path:
        return False
    sys.path.append(build_dir)
    return True


@functools.cache
def _context_or_error(device_index: int):
    """One ``RasterizeCudaContext`` per CUDA device (creating one compiles / loads the plugin), or
    the exception that creating it raised (cached, so a failed plugin build is not retried on
    every call)."""
    device = torch.device("cuda", device_index)
    try:
        return _dr().RasterizeCudaContext(device=device)
    except ModuleNotFoundError as exc:
        if not _make_plugin_importable(exc):
            return exc
    except Exception as exc:  # noqa: BLE001 - build / driver problems of an optional extra
        return exc
    try:  # the plugin was built; now it can be imported
        return _dr().RasterizeCudaContext(device=device)
    except Exception as exc:  # noqa: BLE001
        return exc


def _context(device_index: int):
    ctx = _context_or_error(device_index)
    if isinstance(ctx, Exception):
        raise RuntimeError(
            f"nvdiffrast's CUDA rasterizer is unavailable ({ctx.__class__.__name__}: {ctx}); "
            "it needs ninja and nvcc to build its plugin"
        ) from ctx
    return ctx


def padded_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """``(H', W')``: the image size rounded up to multiples of :data:`TILE`."""
    H, W = image_size
    return int(math.ceil(H / TILE) * TILE), int(math.ceil(W / TILE) * TILE)


def clip_positions(screen: Tensor, padded_hw: tuple[int, int], near: float, far: float) -> Tensor:
    """``(B, V, 3)`` ``(u, v, z_cam)`` -> ``(B, V, 4)`` float32 clip-space positions (see module doc).

    Differentiable w.r.t. ``screen`` (used by :func:`antialias` for silhouette gradients).
    """
    Hp, Wp = padded_hw
    s = screen.float()
    u, v, z = s.unbind(-1)
    a = (far + near) / (far - near)
    b = -2.0 * far * near / (far - near)
    x_ndc = 2.0 * u / Wp - 1.0
    y_ndc = 2.0 * v / Hp - 1.0
    return torch.stack([x_ndc * z, y_ndc * z, a * z + b, z], dim=-1).contiguous()


def visible_triangles(screen: Tensor, triangles: Tensor, image_size: tuple[int, int], near: float):
    """``(B, H, W)`` int64 visible triangle id per pixel (``-1`` background) and the state
    :func:`antialias` needs, using nvdiffrast's ``RasterizeCudaContext``.

    Args:
        screen: ``(B, V, 3)`` CUDA tensor ``(u, v, z_cam)`` (pixels, mm).
        triangles: ``(F, 3)`` int64 vertex ids.
        image_size: ``(H, W)``.
        near: near plane, mm (triangles with a vertex nearer are discarded).
    """
    from focus.render.rasterizer import front_facing

    dr = _dr()
    dev = screen.device
    index = dev.index if dev.index is not None else (torch.cuda.current_device() if dev.type == "cuda" else -1)
    ctx = _context(index)
    B, V, _ = screen.shape
    F = triangles.shape[0]
    H, W = int(image_size[0]), int(image_size[1])
    Hp, Wp = padded_size((H, W))
    with torch.no_grad():
        z = screen[..., 2].detach()
        zmax = float(torch.nan_to_num(z, nan=near, posinf=near, neginf=near).max())
        far = max(2.0 * near, 1.5 * zmax + 1.0)
        keep = front_facing(screen, triangles, near)  # (B, F)
        pos = clip_positions(screen.detach(), (Hp, Wp), near, far)  # (B, V, 4)
        tri = triangles.long()
        pos_u = pos.index_select(1, tri.reshape(-1)).view(B, F, 3, 4)  # unshared corners
        outside = torch.tensor(_OUTSIDE, dtype=pos.dtype, device=dev)
        pos_u = torch.where(keep[:, :, None, None], pos_u, outside).reshape(B, 3 * F, 4).contiguous()
        tri_u = torch.arange(3 * F, dtype=torch.int32, device=dev).view(F, 3)
        rast, _ = dr.rasterize(ctx, pos_u, tri_u, resolution=(Hp, Wp), grad_db=False)
        tri_id = rast[:, :H, :W, 3].round().long() - 1  # nvdiffrast stores id + 1, 0 = background
    state = {
        "rast": rast.contiguous(),
        "tri": triangles.to(torch.int32).contiguous(),
        "padded_hw": (Hp, Wp),
        "image_hw": (H, W),
        "near": near,
        "far": far,
        "screen": screen,
    }
    return tri_id, state


def antialias(color: Tensor, state: dict) -> Tensor:
    """nvdiffrast's analytic antialiasing of ``(B, H, W, C)`` with gradients to the silhouette.

    Uses the shared-vertex clip positions (so nvdiffrast finds silhouette edges from the
    topology) with the ``rast`` of the unshared, culled geometry (same triangle ids). The image is
    padded to the rasterized size and cropped back.
    """
    dr = _dr()
    H, W = state["image_hw"]
    Hp, Wp = state["padded_hw"]
    pos = clip_positions(state["screen"], (Hp, Wp), state["near"], state["far"])
    c = color.float()
    if (Hp, Wp) != (H, W):
        c = torch.nn.functional.pad(c, (0, 0, 0, Wp - W, 0, Hp - H))
    out = dr.antialias(c.contiguous(), state["rast"], pos, state["tri"])
    return out[:, :H, :W].to(color.dtype)
