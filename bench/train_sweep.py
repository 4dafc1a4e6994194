"""Run several training chains (init -> pretrain_seg -> em) side by side and tabulate their validation.

    python bench/train_sweep.py bench/sweeps/em_synergy.yaml --out OUTDIR [--device cuda] [--parallel 8]

A sweep file lists runs; each run's ``params`` are merged over ``params.yaml`` (group by group,
as ``--params a.yaml b.yaml`` does) and the run trains its own chain into ``OUTDIR/<name>/``
(checkpoints, pseudo masks, stage reports), never touching the DVC outputs in ``models/`` or
``reports/``::

    runs:
      - name: base
        params: {}
      - name: init_3k
        params: {init: {steps: 3000}}
      - name: best_area05          # a second wave: EM only, from the init / U-Net pre-training
        from: "@best"              # of the first-wave run with the lowest validation photometric
        params: {em: {seg_weights: {area: 0.5}}}   # error after init ("@best") or a named run

Up to ``--parallel`` runs go at once (a run with ``from`` starts once its source has its U-Net
pre-training); each writes ``OUTDIR/<name>/result.json``
as soon as it ends, and ``OUTDIR/sweep.json`` / ``sweep.txt`` collect the validation records of
every phase (segmentation F1 occluded / unoccluded, photometric error, landmark error, neutral
shape error) of every run that finished. ``--time-limit`` stops waiting (and kills the runs left)
after that many seconds, so a sweep on a lent machine returns what it has.

This is a tuning tool (the numbers it prints depend on the device); the pipeline's own results come
from ``dvc repro``. Plain parameter sweeps of the pipeline belong to DVC's experiments
(``dvc exp run --queue -S 'em.seg_weights.area=0.5,1.5'``, ``dvc queue start -j N``, ``dvc exp show``;
README, "Sweeps with DVC experiments"). This script stays for what those cannot do: run only the
training chain (no evaluation stages) of many variants at once, start second-wave runs from the best
first-wave initialisation (``from: "@best"``, decided while the sweep runs), table the held-out
validation of every training phase rather than final metrics only, and stop at a time limit.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = (
    "f1_occluded",
    "f1_unoccluded",
    "f1_allface_occluded",
    "photo",
    "landmark_px",
    "shape_mm",
    "shape_mm_occluded",
    "id_corr",
)


def _merge(dst: dict, src: dict) -> dict:
    """A merged copy (:func:`focus.config.deep_merge` on copies; neither input is changed)."""
    from focus.config import deep_merge

    out = copy.deepcopy(dst)
    deep_merge(out, copy.deepcopy(src or {}))
    return out


def run_one(spec_path: Path) -> int:
    """Child process: train one chain as the spec JSON says."""
    import torch

    from focus.paths import TrainPaths
    from focus.train import pipeline

    try:
        import dvclive  # noqa: F401
    except ImportError:  # a lent GPU machine without dvclive: log nothing, keep the validation records
        import types

        class _NoLive:
            def __init__(self, *args, **kwargs) -> None:
                pass

            def __getattr__(self, name):
                return lambda *args, **kwargs: None

        sys.modules["dvclive"] = types.SimpleNamespace(Live=_NoLive)
    spec = json.loads(spec_path.read_text())
    out = Path(spec["out"])
    params = spec["params"]
    stages = spec["stages"]
    paths = TrainPaths(
        run_dirs={s: out / "runs" / s for s in ("init", "pretrain_seg", "em")},
        finals={s: out / f"{s}.pt" for s in ("init", "pretrain_seg", "em")},
        pseudo_masks=out / "pseudo_masks",
        reports=out / "reports",
    )
    if spec.get("from"):
        src = Path(spec["from"])
        for s in ("init", "pretrain_seg"):
            if not (out / f"{s}.pt").exists():
                shutil.copyfile(src / f"{s}.pt", out / f"{s}.pt")
    records: list[dict] = []
    t0 = time.perf_counter()
    fns = {"init": pipeline.run_init, "pretrain_seg": pipeline.run_pretrain_seg, "em": pipeline.run_em}
    try:
        for s in stages:
            ts = time.perf_counter()
            recs = fns[s](params, paths)
            for r in recs:
                if s == "em" and r["phase"] in ("init", "pretrain_seg"):
                    continue  # the EM report repeats the earlier stages' records
                records.append({"stage": s, "phase": r["phase"], **{k: r.get(k) for k in KEYS}})
            records.append({"stage": s, "phase": f"{s} done", "seconds": round(time.perf_counter() - ts, 1)})
            (out / "result.json").write_text(
                json.dumps({"name": spec["name"], "records": records, "done": False}, indent=1)
            )
        ok = True
    except Exception as exc:  # noqa: BLE001 -- a sweep reports a failed run and goes on
        import traceback

        traceback.print_exc()
        records.append({"error": repr(exc)})
        ok = False
    (out / "result.json").write_text(
        json.dumps(
            {
                "name": spec["name"],
                "records": records,
                "done": ok,
                "seconds": round(time.perf_counter() - t0, 1),
                "device": str(torch.device(params["train"]["device"])),
            },
            indent=1,
        )
    )
    return 0 if ok else 1


def _init_photo(out: Path) -> float:
    try:
        res = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        return float("inf")
    for r in res["records"]:
        if r.get("phase") == "init" and r.get("photo") is not None:
            return float(r["photo"])
    return float("inf")


def _table(results: list[dict]) -> str:
    lines = [f"{'run':<22} {'phase':<14} " + " ".join(f"{k[:12]:>12}" for k in KEYS)]
    for res in results:
        for r in res.get("records", []):
            if "error" in r:
                lines.append(f"{res['name']:<22} ERROR {r['error'][:100]}")
            elif "seconds" in r:
                lines.append(f"{res['name']:<22} {r['phase']:<14} {r['seconds']:>10.1f} s")
            else:
                lines.append(
                    f"{res['name']:<22} {r['phase']:<14} "
                    + " ".join(f"{r[k]:>12.4f}" if isinstance(r.get(k), (int, float)) else f"{'-':>12}" for k in KEYS)
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="sweep YAML (see above)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--params", nargs="+", default=[str(ROOT / "params.yaml")])
    p.add_argument("--device", default="cpu")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes per run")
    p.add_argument("--time-limit", type=float, default=None, help="seconds; runs still going are killed")
    p.add_argument("--only", nargs="*", default=None, help="names of runs to run")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return run_one(a.child)

    from focus.config import merged_params

    base = merged_params(a.params)
    sweep = yaml.safe_load(a.sweep.read_text())
    runs = [r for r in sweep["runs"] if a.only is None or r["name"] in a.only]
    a.out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    first = [r for r in runs if not r.get("from")]
    finished: set[str] = set()

    def ready(r: dict) -> bool:
        """A run starts once its source has its U-Net pre-training (``@best``: once the first wave ended)."""
        if not r.get("from"):
            return True
        if r["from"] == "@best":
            return all(x["name"] in finished for x in first)
        return (a.out / r["from"] / "pretrain_seg.pt").exists() or r["from"] in finished

    pending, live = list(runs), []
    while pending or live:
        while len(live) < a.parallel and any(ready(x) for x in pending):
            r = next(x for x in pending if ready(x))
            pending.remove(r)
            out = (a.out / r["name"]).resolve()
            out.mkdir(parents=True, exist_ok=True)
            params = _merge(base, r.get("params") or {})
            params["train"] = _merge(
                params["train"],
                {
                    "device": a.device,
                    "num_threads": a.threads,
                    "progress": False,
                    "checkpoint_every": 0,
                    "workers": a.workers,
                },
            )
            src = None
            if r.get("from"):
                name = r["from"]
                if name == "@best":
                    name = min((x["name"] for x in first), key=lambda n: _init_photo(a.out / n))
                src = str((a.out / name).resolve())
                if not (Path(src) / "pretrain_seg.pt").exists():
                    print(f"{r['name']}: {name} has no pretrain_seg.pt; skipped", flush=True)
                    continue
            stages = r.get("stages") or (["em"] if src else ["init", "pretrain_seg", "em"])
            spec = {"name": r["name"], "out": str(out), "params": params, "stages": stages, "from": src}
            (out / "spec.json").write_text(json.dumps(spec, indent=1))
            log = open(out / "log.txt", "w")
            env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(
                [sys.executable, __file__, str(a.sweep), "--out", str(a.out), "--child", str(out / "spec.json")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
            live.append((r["name"], proc, log))
            print(f"started {r['name']} ({', '.join(stages)}{' from ' + src if src else ''})", flush=True)
        if not live and not any(ready(x) for x in pending):  # nothing runs and nothing can start
            for r in pending:
                print(f"{r['name']}: its source {r['from']!r} never got a pretrain_seg.pt; skipped", flush=True)
            break
        time.sleep(2)
        for item in list(live):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                live.remove(item)
                finished.add(name)
                print(f"finished {name} rc={proc.returncode} at {time.monotonic() - t_start:.0f} s", flush=True)
        if a.time_limit and time.monotonic() - t_start > a.time_limit:
            for name, proc, log in live:
                proc.kill()
                log.close()
                print(f"killed {name} (time limit)", flush=True)
            pending.clear()
            live.clear()
    results = []
    for r in runs:
        f = a.out / r["name"] / "result.json"
        if f.exists():
            results.append(json.loads(f.read_text()))
    (a.out / "sweep.json").write_text(json.dumps(results, indent=1))
    text = _table(results)
    (a.out / "sweep.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
