"""Synthetic NoW-like data for tests and benchmarks (no real scans needed).

A smooth face-like height field ``z = h(x, y)`` (mm; ``+x`` subject's left, ``+y`` up, ``+z``
towards the viewer, like the face model frame) with a forehead/cheek dome, a nose, eye sockets
and lips, its 7 NoW landmarks at fixed ``(x, y)`` positions, and a regular-grid triangulation
of any resolution. :func:`write_synthetic_now` writes a whole dataset in the real NoW layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focus.now.alignment import Similarity
from focus.now.layout import CHALLENGES, IMAGE_LISTS, IMAGES_DIR, SCAN_LANDMARKS_DIR, SCANS_DIR
from focus.now.pp_io import write_pp

#: ``(x, y)`` of the 7 NoW landmarks on the synthetic face (mm), in the NoW order.
LANDMARK_XY = np.array(
    [
        [-46.0, 32.0],  # right eye outer (subject's right: -x)
        [-16.0, 32.0],  # right eye inner
        [16.0, 32.0],  # left eye inner
        [46.0, 32.0],  # left eye outer
        [0.0, -18.0],  # nose bottom
        [-26.0, -46.0],  # right mouth corner
        [26.0, -46.0],  # left mouth corner
    ]
)


@dataclass(frozen=True)
class FaceShape:
    """Parameters of the synthetic face height field (mm)."""

    dome_x: float = 85.0
    dome_y: float = 115.0
    dome_z: float = 75.0
    nose: float = 22.0
    eyes: float = 7.0
    lips: float = 4.0
    chin: float = 6.0

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``z`` of the surface at ``(x, y)`` (broadcasting)."""
        r2 = (x / self.dome_x) ** 2 + (y / self.dome_y) ** 2
        # Smooth dome that continues below the rim instead of ending in a vertical wall.
        dome = self.dome_z * np.sqrt(1.0 + 1e-9 - np.minimum(r2, 1.0)) - 25.0 * np.maximum(r2 - 1.0, 0.0)
        nose = self.nose * np.exp(-((x / 9.0) ** 2 + ((y - 2.0) / 22.0) ** 2))
        eyes = -self.eyes * (
            np.exp(-(((x - 31.0) / 13.0) ** 2 + ((y - 32.0) / 8.0) ** 2))
            + np.exp(-(((x + 31.0) / 13.0) ** 2 + ((y - 32.0) / 8.0) ** 2))
        )
        lips = self.lips * np.exp(-((x / 22.0) ** 2 + ((y + 46.0) / 6.0) ** 2))
        chin = self.chin * np.exp(-((x / 20.0) ** 2 + ((y + 80.0) / 10.0) ** 2))
        return dome + nose + eyes + lips + chin

    def landmarks(self) -> np.ndarray:
        """``(7, 3)`` NoW landmarks on the surface."""
        x, y = LANDMARK_XY[:, 0], LANDMARK_XY[:, 1]
        return np.stack([x, y, self.height(x, y)], axis=1)


def grid_mesh(
    shape: FaceShape, nx: int, ny: int, x_range: tuple[float, float], y_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The surface sampled on an ``nx`` by ``ny`` grid: vertices ``(nx*ny, 3)``, faces ``(2(nx-1)(ny-1), 3)``.

    Faces are counter-clockwise seen from ``+z`` (outward normals point to the viewer).
    """
    xs = np.linspace(*x_range, nx)
    ys = np.linspace(*y_range, ny)
    gx, gy = np.meshgrid(xs, ys)  # (ny, nx)
    v = np.stack([gx, gy, shape.height(gx, gy)], axis=-1).reshape(-1, 3)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], axis=1), np.stack([a, d, c], axis=1)])
    return v, faces


def scan_mesh(shape: FaceShape, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """A 'head scan': the surface over a region larger than the NoW crop (about half is cropped)."""
    x_range, y_range = (-125.0, 125.0), (-165.0, 145.0)
    ratio = (y_range[1] - y_range[0]) / (x_range[1] - x_range[0])
    nx = max(3, int(round(np.sqrt(num_vertices / ratio))))
    ny = max(3, int(round(num_vertices / nx)))
    return grid_mesh(shape, nx, ny, x_range, y_range)


def prediction_mesh(shape: FaceShape, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """A 'face model' mesh: the surface over the face region only."""
    x_range, y_range = (-95.0, 95.0), (-125.0, 115.0)
    ratio = (y_range[1] - y_range[0]) / (x_range[1] - x_range[0])
    nx = max(3, int(round(np.sqrt(num_vertices / ratio))))
    ny = max(3, int(round(num_vertices / nx)))
    return grid_mesh(shape, nx, ny, x_range, y_range)


def random_similarity(rng: np.random.Generator, scale: float | None = None, reflect: bool = False) -> Similarity:
    """A random rotation, translation (up to 200 units) and scale (0.5 to 2 unless given)."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(random_state=rng).as_matrix()
    if reflect:
        rot = rot @ np.diag([-1.0, 1.0, 1.0])
    s = float(scale) if scale is not None else float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    return Similarity(s, rot, rng.uniform(-200.0, 200.0, 3))


def write_synthetic_now(
    root: str | Path,
    scans: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    images: list[str],
    scan_extra_obj_records: bool = True,
) -> Path:
    """Write a NoW-layout dataset folder.

    Args:
        root: dataset folder to create.
        scans: per subject ``(vertices, faces, landmarks7)`` of the scan (mm).
        images: image-list entries ``<subject>/<challenge>/<IMG>.jpg``; an empty placeholder
            image and face box are written for each.
        scan_extra_obj_records: write ``vt``/``vn`` records and ``f v/vt/vn`` faces like real
            scans (exercises the OBJ reader).

    Returns:
        ``root``.
    """
    root = Path(root)
    for subject, (v, f, lmk) in scans.items():
        obj = root / SCANS_DIR / subject / f"{subject}.obj"
        obj.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# synthetic NoW scan", "mtllib none.mtl"]
        lines += [f"v {x!r} {y!r} {z!r}" for x, y, z in v.tolist()]
        if scan_extra_obj_records:
            lines += [f"vt {(x + 150) / 300:.6f} {(y + 150) / 300:.6f}" for x, y, _ in v.tolist()]
            lines += ["vn 0 0 1"]
            lines += [f"f {a}/{a}/1 {b}/{b}/1 {c}/{c}/1" for a, b, c in (f + 1).tolist()]
        else:
            lines += [f"f {a} {b} {c}" for a, b, c in (f + 1).tolist()]
        obj.write_text("\n".join(lines) + "\n")
        write_pp(root / SCAN_LANDMARKS_DIR / subject / f"{subject}_picked_points.pp", lmk, obj.name)
    for entry in images:
        subject, challenge, name = entry.split("/")
        assert challenge in CHALLENGES
        img = root / IMAGES_DIR / subject / challenge / name
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(b"")
        box = root / "NoW_Dataset" / "final_release_version" / "detected_face" / subject / challenge
        box.mkdir(parents=True, exist_ok=True)
        np.save(box / (Path(name).stem + ".npy"), {"left": 0, "right": 10, "top": 0, "bottom": 10}, allow_pickle=True)
    (root / IMAGE_LISTS["val"]).write_text("".join(e + "\n" for e in images))
    return root
