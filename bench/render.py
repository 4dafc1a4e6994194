"""Benchmark of the whole differentiable image formation: forward + backward images per second.

    python bench/render.py --out bench_render.json [--devices cpu,cuda] [--backends torch,nvdiffrast]
                           [--sizes 128,224] [--batch 8] [--threads N] [--quick]

Each configuration (mesh x device x backend x resolution) runs in a fresh subprocess, so that its
peak resident memory (``peak_rss_mb``) is its own (``rss_after_import_mb`` is the part that
importing torch alone takes). One iteration = face-model coefficients ->
shaded image (``FaceRenderer``), loss = image mean, backward to the coefficients; the reported
``fwd_bwd_img_per_s`` is ``batch / median iteration time`` after warm-up (wall clock), and
``cpu_s_per_batch`` the process CPU time per iteration (useful when other work shares the cores:
wall time then depends on the load, reported as ``loadavg_1m_at_start``). Child processes run
with ``OMP_WAIT_POLICY=PASSIVE`` unless set: spinning OpenMP workers collapse throughput on a
shared machine.

Meshes: ``facemodel`` = the embedded default model ``models/facemodel.npz`` (skipped if absent);
``basel_sized`` = a synthetic face-like mesh with exactly 35,709 vertices and 70,789 triangles
(the size of Deep3DFaceRecon's BFM front model) and random smooth std-scaled bases of 80 / 64 / 80
components, filling a realistic face area at the paper camera.

Coefficients are drawn once per configuration with a fixed seed (small random shape, expression,
albedo, pose and light), so the face is not exactly frontal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from focus.facemodel.model import FaceModel, load_face_model, save_face_model  # noqa: E402

BASEL_VERTICES = 35709
BASEL_TRIANGLES = 70789
DEFAULT_MODEL = ROOT / "models" / "facemodel.npz"


# ---------------------------------------------------------------------------------------------
# A Basel-sized synthetic face-like mesh
# ---------------------------------------------------------------------------------------------
def _ring_counts(n_vertices: int, n_boundary: int) -> list[int]:
    """Vertices per concentric ring (ring 0 = centre, 1 vertex) summing to ``n_vertices``, with
    ``n_boundary`` on the outer ring and counts growing linearly with the radius."""
    rest = n_vertices - 1
    R = max(2, int(round(2.0 * rest / n_boundary - 1.0)))
    counts = [max(6, int(round(n_boundary * k / R))) for k in range(1, R + 1)]
    counts[-1] = n_boundary
    diff = rest - sum(counts)
    k = 0
    while diff != 0:  # spread the rounding error over the middle rings
        i = R // 4 + (k % (R // 2))
        step = 1 if diff > 0 else -1
        counts[i] += step
        diff -= step
        k += 1
    return [1] + counts


def disk_mesh(n_vertices: int, n_triangles: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit disk triangulated in concentric rings: ``(V, 2)`` points and ``(F, 3)`` triangles,
    counter-clockwise seen from ``+z``, with exactly the requested counts.

    A disk has ``F = 2 V - E_b - 2`` (Euler) with ``E_b`` boundary edges, so the outer ring gets
    ``2 V - F - 2`` vertices.
    """
    n_boundary = 2 * n_vertices - n_triangles - 2
    if n_boundary < 3:
        raise ValueError(f"no disk with {n_vertices} vertices and {n_triangles} triangles")
    counts = _ring_counts(n_vertices, n_boundary)
    R = len(counts) - 1
    pts = [np.zeros((1, 2))]
    starts = [0]
    phases = [0.0]
    for k in range(1, R + 1):
        n = counts[k]
        phase = 0.5 * (k % 2) * 2 * math.pi / n
        ang = phase + 2 * math.pi * np.arange(n) / n
        pts.append((k / R) * np.stack([np.cos(ang), np.sin(ang)], 1))
        starts.append(starts[-1] + counts[k - 1])
        phases.append(phase)
    tris = []
    # centre fan
    n1 = counts[1]
    i = np.arange(n1)
    tris.append(np.stack([np.zeros(n1, np.int64), starts[1] + i, starts[1] + (i + 1) % n1], 1))
    # strips between ring k and k+1: merge by angle
    for k in range(1, R):
        na, nb = counts[k], counts[k + 1]
        ta = phases[k] + 2 * math.pi * (np.arange(na) + 0.5) / na  # angle of edge midpoints
        tb = phases[k + 1] + 2 * math.pi * (np.arange(nb) + 0.5) / nb
        ev = np.concatenate([ta, tb])
        lab = np.concatenate([np.zeros(na, np.int64), np.ones(nb, np.int64)])
        order = np.argsort(ev, kind="stable")
        lab = lab[order]
        # walk around the ring: each event advances the inner (0) or outer (1) pointer
        ia = np.concatenate([[0], np.cumsum(lab == 0)])[:-1]
        ib = np.concatenate([[0], np.cumsum(lab == 1)])[:-1]
        a0 = starts[k] + ia % na
        a1 = starts[k] + (ia + 1) % na
        b0 = starts[k + 1] + ib % nb
        b1 = starts[k + 1] + (ib + 1) % nb
        t_in = np.stack([a0, b0, a1], 1)  # advance inner
        t_out = np.stack([a0, b0, b1], 1)  # advance outer
        tris.append(np.where((lab == 0)[:, None], t_in, t_out))
    P = np.concatenate(pts)
    T = np.concatenate(tris).astype(np.int64)
    # orient counter-clockwise (seen from +z)
    e1 = P[T[:, 1]] - P[T[:, 0]]
    e2 = P[T[:, 2]] - P[T[:, 0]]
    cw = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
    T[cw] = T[cw][:, [0, 2, 1]]
    assert P.shape[0] == n_vertices and T.shape[0] == n_triangles, (P.shape, T.shape)
    return P, T


def _smooth_fields(rng: np.random.Generator, xy: np.ndarray, k: int, scale: np.ndarray, waves: int = 6) -> np.ndarray:
    """``(k, V, 3)`` smooth random displacement fields (sums of random plane waves), std ~ ``scale``."""
    V = xy.shape[0]
    out = np.zeros((k, V, 3), np.float32)
    for c in range(3):
        freq = rng.normal(size=(k, waves, 2)) * (2 * math.pi / 120.0)
        phase = rng.uniform(0, 2 * math.pi, size=(k, waves, 1))
        amp = rng.normal(size=(k, waves, 1)) / math.sqrt(waves / 2.0)
        out[:, :, c] = (amp * np.cos(freq @ xy.T + phase)).sum(1)
    return out * scale[:, None, None].astype(np.float32)


def basel_sized_model(seed: int = 0, n_id: int = 80, n_exp: int = 64, n_albedo: int = 80) -> FaceModel:
    """Synthetic face-like model with exactly 35,709 vertices and 70,789 triangles (model frame, mm).

    An oval (140 x 184 mm) height field: an ellipsoidal cap with a nose, brow ridge and eye
    sockets, at ``z ~ 50..120`` mm in front of the model origin; at the paper camera it covers
    about half of the image, like a face in the standard crop. Bases are random smooth fields,
    std-scaled (identity ~2 mm, expression ~1 mm, albedo ~0.03, decaying with the index).
    """
    rng = np.random.default_rng(seed)
    P, T = disk_mesh(BASEL_VERTICES, BASEL_TRIANGLES)
    x = 70.0 * P[:, 0]
    y = 92.0 * P[:, 1] + 5.0
    r2 = np.clip((x / 80.0) ** 2 + ((y - 5.0) / 104.0) ** 2, 0.0, 0.99)
    z = 100.0 * np.sqrt(1.0 - r2)
    z += 22.0 * np.exp(-((x / 9.0) ** 2) - ((y + 5.0) / 22.0) ** 2)  # nose
    z += 6.0 * np.exp(-((x / 45.0) ** 2) - ((y - 38.0) / 6.0) ** 2)  # brow
    z -= 7.0 * np.exp(-(((np.abs(x) - 32.0) / 12.0) ** 2) - ((y - 25.0) / 8.0) ** 2)  # eye sockets
    mean_shape = np.stack([x, y, z], 1).astype(np.float32)
    xy = mean_shape[:, :2]
    decay = lambda k, s: s / np.sqrt(1.0 + np.arange(k) / 10.0)  # noqa: E731
    id_basis = _smooth_fields(rng, xy, n_id, decay(n_id, 2.0))
    exp_basis = _smooth_fields(rng, xy, n_exp, decay(n_exp, 1.0))
    albedo_basis = _smooth_fields(rng, xy, n_albedo, decay(n_albedo, 0.03))
    mean_albedo = np.tile(np.array([[0.72, 0.52, 0.42]], np.float32), (BASEL_VERTICES, 1))
    lm = rng.choice(BASEL_VERTICES, size=68, replace=False)
    return FaceModel(
        mean_shape=torch.from_numpy(mean_shape),
        id_basis=torch.from_numpy(id_basis),
        exp_basis=torch.from_numpy(exp_basis),
        mean_albedo=torch.from_numpy(mean_albedo),
        albedo_basis=torch.from_numpy(albedo_basis),
        triangles=torch.from_numpy(T),
        landmarks68=torch.from_numpy(lm).long(),
        now_landmarks7=torch.from_numpy(lm[[36, 39, 42, 45, 33, 48, 54]]).long(),
        name="basel-sized synthetic benchmark mesh",
    ).validate("<basel-sized synthetic mesh>")


# ---------------------------------------------------------------------------------------------
# One configuration (runs in a subprocess)
# ---------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): ``VmHWM``, which, unlike ``ru_maxrss``, does not
    carry over the parent's peak across ``fork`` + ``exec``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(
    mesh: str, model_path: Path, device: str, backend: str, size: int, batch: int, iters: int, warmup: int
) -> dict:
    from focus.render.renderer import FaceRenderer, RenderSettings

    rss_import = _peak_rss_mb()  # torch alone is several hundred MB
    load_start = os.getloadavg()[0]
    model = load_face_model(model_path)
    dev = torch.device(device)
    renderer = FaceRenderer(model, RenderSettings(image_size=size, backend=backend)).to(dev)
    layout = renderer.layout
    g = torch.Generator().manual_seed(0)
    base = torch.randn(batch, layout.dim, generator=g) * 0.3
    c = layout.split(base)
    c.angles.mul_(0.2)  # about +-10 degrees
    c.trans.mul_(10.0)  # a few mm
    c.sh.mul_(0.3)
    coeffs = base.to(dev).requires_grad_(True)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def step() -> None:
        coeffs.grad = None
        out = renderer(coeffs)
        out.image.mean().backward()

    for _ in range(warmup):
        step()
    times, cpu_times = [], []
    for _ in range(iters):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    out = renderer(coeffs.detach())
    coverage = float(out.mask.mean())
    med = float(np.median(times))
    rec = {
        "mesh": mesh,
        "backend": backend,
        "device": device,
        "resolution": size,
        "batch": batch,
        "vertices": model.num_vertices,
        "triangles": model.num_triangles,
        "fwd_bwd_img_per_s": batch / med,
        "median_s_per_batch": med,
        "min_s_per_batch": float(np.min(times)),
        "cpu_s_per_batch": float(np.median(cpu_times)),  # process CPU time (all threads)
        "iters": iters,
        "coverage": coverage,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": _peak_rss_mb(),
        "rss_after_import_mb": rss_import,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "loadavg_1m_at_start": load_start,
    }
    if dev.type == "cuda":
        rec["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        rec["gpu"] = torch.cuda.get_device_name(dev)
    return rec


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def _table(records: list[dict]) -> str:
    head = (
        f"{'mesh':<12} {'device':<6} {'backend':<10} {'res':>4} {'B':>3} {'verts':>6} {'tris':>6} {'img/s':>8} "
        f"{'s/batch':>8} {'cpu s':>7} {'thr':>3} {'rss MB':>7} {'cuda MB':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in records:
        if "error" in r:
            lines.append(
                f"{r['mesh']:<12} {r['device']:<6} {r['backend']:<10} {r['resolution']:>4}  FAILED: {r['error'][:80]}"
            )
            continue
        cuda = f"{r['peak_cuda_mb']:7.0f}" if "peak_cuda_mb" in r else f"{'-':>7}"
        lines.append(
            f"{r['mesh']:<12} {r['device']:<6} {r['backend']:<10} {r['resolution']:>4} {r['batch']:>3} "
            f"{r['vertices']:>6} {r['triangles']:>6} {r['fwd_bwd_img_per_s']:8.1f} {r['median_s_per_batch']:8.3f} "
            f"{r['cpu_s_per_batch']:7.3f} {r['threads']:>3} {r['peak_rss_mb']:7.0f} {cuda}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, help="JSON file for the list of records")
    ap.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu,cuda (cuda skipped without a GPU)")
    ap.add_argument(
        "--backends",
        default="torch,nvdiffrast",
        help="comma-separated: torch,nvdiffrast (nvdiffrast only on cuda, skipped if not installed)",
    )
    ap.add_argument("--sizes", default="128,224", help="comma-separated image sizes")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--meshes", default="facemodel,basel_sized")
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one config, print JSON
    ap.add_argument("--model-path", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    iters = args.iters or (4 if args.quick else 12)
    warmup = 1 if args.quick else 3
    if args.one:
        if args.threads:
            torch.set_num_threads(args.threads)
        mesh, device, backend, size = args.one.split(":")
        rec = run_one(mesh, Path(args.model_path), device, backend, int(size), args.batch, iters, warmup)
        print("RESULT " + json.dumps(rec))
        return 0

    records: list[dict] = []
    meshes = [m for m in args.meshes.split(",") if m]
    if "facemodel" in meshes and not DEFAULT_MODEL.exists():
        print(f"note: {DEFAULT_MODEL} not found, skipping the embedded default model (run `dvc repro facemodel`)")
        meshes.remove("facemodel")
    tmp = tempfile.TemporaryDirectory(prefix="focus-bench-")
    paths = {"facemodel": DEFAULT_MODEL}
    if "basel_sized" in meshes:
        paths["basel_sized"] = Path(tmp.name) / "basel_sized.npz"
        save_face_model(basel_sized_model(), paths["basel_sized"])
    for device in [d for d in args.devices.split(",") if d]:
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"note: no CUDA device, skipping {device}")
            continue
        for backend in [b for b in args.backends.split(",") if b]:
            if backend == "nvdiffrast" and not device.startswith("cuda"):
                continue
            if backend == "nvdiffrast":
                from focus.render import nvdiffrast_backend

                if not nvdiffrast_backend.is_available():
                    print("note: nvdiffrast is not installed (pip install -e '.[gpu]'), skipping its runs")
                    continue
            for mesh in meshes:
                for size in [int(s) for s in args.sizes.split(",") if s]:
                    cfg = f"{mesh}:{device}:{backend}:{size}"
                    cmd = [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--out",
                        os.devnull,
                        "--one",
                        cfg,
                        "--model-path",
                        str(paths[mesh]),
                        "--batch",
                        str(args.batch),
                        "--iters",
                        str(iters),
                    ]
                    cmd += ["--quick"] if args.quick else []
                    cmd += ["--threads", str(args.threads)] if args.threads else []
                    env = dict(os.environ)
                    # Spinning OpenMP workers collapse throughput when other processes share the
                    # cores (seen: 10x slower); passive waiting costs little on an idle machine.
                    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
                    res = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                    if proc.returncode != 0 or not res:
                        err = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
                        rec = {"mesh": mesh, "device": device, "backend": backend, "resolution": size, "error": err}
                    else:
                        rec = json.loads(res[-1][len("RESULT ") :])
                    records.append(rec)
                    print(_table([rec]).splitlines()[-1], flush=True)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    for r in records:
        r["loadavg_1m_at_end"] = load[0] if load else None
    print()
    print(_table(records))
    if load:
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    from focus.io_utils import write_json_atomic

    write_json_atomic(args.out, records)
    tmp.cleanup()
    return 0 if all("error" not in r for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
