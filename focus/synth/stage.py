"""The ``synth`` DVC stage: the synthetic train, NoW-like and AR-like sets and their contact sheets.

Reads ``params.yaml`` (groups ``synth`` and ``render``) and the face model, writes
``data/synth/{train,now,ar}``, ``reports/synth/{train,now,ar}.png`` and
``reports/synth/summary.json`` (sizes, occluder shares, timings).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from focus.config import from_dict, merged_params
from focus.run_info import write_json_reproducible
from focus.synth.contact_sheet import contact_sheet
from focus.synth.generator import SynthPool
from focus.synth.sets import AR_SUBSETS, NOW_IMAGES_DIR, base_camera, write_ar, write_now, write_train
from focus.synth.settings import SynthSettings


def run_synth(
    params_path: str | Path = "params.yaml",
    model_path: str | Path = "models/facemodel.npz",
    out: str | Path = "data/synth",
    reports: str | Path = "reports/synth",
    workers: int | None = None,
    sets: tuple[str, ...] = ("train", "now", "ar"),
    progress: bool = True,
) -> dict:
    """Generate the sets named in ``sets`` and their contact sheets; returns the summary."""
    from focus.facemodel.model import load_face_model
    from focus.render.renderer import RenderSettings

    params = merged_params([params_path])  # every group checked
    s = from_dict(SynthSettings, params.get("synth"), f"{params_path}:synth")
    rs = from_dict(RenderSettings, params.get("render"), f"{params_path}:render")
    model = load_face_model(model_path)
    cam = base_camera(s, rs)
    out, reports = Path(out), Path(reports)
    t0 = time.perf_counter()
    summary: dict = {
        "model": model.name,
        "image_size": cam.image_size,
        "supersample": s.supersample,
        "workers": s.workers if workers is None else workers,
        "sets": {},
    }
    with SynthPool(model, s, workers, rs.backend, rs.ambient) as pool:
        kw = dict(workers=workers, progress=progress, backend=rs.backend, ambient=rs.ambient, pool=pool)
        _run_sets(model, s, cam, out, reports, sets, summary, kw)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    write_json_reproducible(reports / "summary.json", summary)
    return summary


def _run_sets(
    model, s: SynthSettings, cam, out: Path, reports: Path, sets: tuple[str, ...], summary: dict, kw: dict
) -> None:
    if "train" in sets:
        summary["sets"]["train"] = write_train(model, s, out / "train", cam, **kw).as_dict()
        contact_sheet(
            out / "train",
            reports / "train.png",
            f"synthetic train set ({cam.image_size} px): image | "
            "visible face (green), occluded face (red), landmarks (yellow)",
            count=36,
            columns=6,
            tile_px=128,
        )
    if "now" in sets:
        summary["sets"]["now"] = write_now(model, s, out / "now", cam, **kw).as_dict()
        contact_sheet(
            out / "now",
            reports / "now.png",
            "NoW-like set: 4 challenges per subject (neutral, expressions, occlusions, selfie)",
            count=min(24, s.now.subjects * 4 * s.now.images_per_challenge),
            columns=4,
            tile_px=128,
            images_dir=str(NOW_IMAGES_DIR),
        )
    if "ar" in sets:
        summary["sets"]["ar"] = write_ar(model, s, out / "ar", cam, **kw).as_dict()
        _ar_sheet(out / "ar", reports / "ar.png", per_subset=min(8, s.ar.per_subset))


def _ar_sheet(root: Path, out: Path, per_subset: int) -> None:
    from focus.data.landmarks_csv import read_landmarks_csv
    from focus.synth.contact_sheet import save_grid, tile

    tiles, labels = [], []
    for sub in AR_SUBSETS:
        table = read_landmarks_csv(root / sub / "landmarks.csv")
        for name, lm in list(zip(table.names, table.landmarks))[:per_subset]:
            tiles.append(tile(root / sub, name, lm, "images", 2, 128))
            labels.append(f"{sub}/{name}")
    save_grid(tiles, labels, out, "AR-like set: unoccluded, sunglasses, scarf (one row per subset pair)", columns=4)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="models/facemodel.npz")
    p.add_argument("--out", default="data/synth")
    p.add_argument("--reports", default="reports/synth")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: synth.workers)")
    p.add_argument("--sets", default="train,now,ar", help="comma-separated subset of train,now,ar")
    a = p.parse_args(argv)
    from focus.stage_cli import report_errors

    return report_errors("synth", lambda: _main(a))


def _main(a: argparse.Namespace) -> int:
    summary = run_synth(a.params, a.model, a.out, a.reports, a.workers, tuple(x for x in a.sets.split(",") if x))
    done = ", ".join(f"{k}: {v['images']} images" for k, v in summary["sets"].items())
    print(f"synth: {done} in {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
