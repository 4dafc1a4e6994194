"""The default pipeline over several training seeds: is a number a result or a draw?

A re-run of one pipeline can move the AR-like F1 by 0.03 and the pseudo masks by 0.07 (thread
counts, machines). So every target number of the default is reported as the mean and spread over
training seeds (``train.seed``), with the data stages (face model, synthetic sets, identity
network) shared: the committed run is one seed, DVC experiments ``seed-<N>`` (``dvc exp run --queue
-S train.seed=N``) are the others. A target counts as met on the mean.

Commands (``python -m focus.eval.seeds ...``):

* ``queue --seeds 1 2``: queue the experiments (refuses names that exist: nothing is replaced);
* ``run``: ``dvc queue start`` and wait until the queue is empty (hours of CPU at the default);
* ``collect --out bench/results/seeds_cpu.json``: the committed run's metrics files (the workspace)
  plus every ``seed-<N>`` experiment of ``dvc exp show --json -A`` -> per-seed target values, their
  mean and sample standard deviation, and the verdict of each target on the mean; ``--other-run SEED
  COMMIT LABEL`` adds a run of the same code committed earlier (e.g. the same seed on another
  machine: the spread between machines is part of what a reader must allow for).

The ``report`` stage reads that file (``reports/README.md`` section "Seeds", and the spread in the
README results block); :func:`focus.eval.ablations.seed_spread` reads its ``runs``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focus.errors import InputFileError
from focus.eval.ablations import AR_METRICS, EM_METRICS, NOW_METRICS, _dvc, exp_show, pending
from focus.io_utils import write_text_atomic

DEFAULT_OUT = Path("bench/results/seeds_cpu.json")
PREFIX = "seed-"


@dataclass(frozen=True)
class Target:
    """One number of the default's targets: its key, what it says, the bound and its direction."""

    key: str
    label: str
    bound: float
    at_most: bool  # True: met when the value is <= bound; False: when >= bound
    digits: int = 3
    percent: bool = False


TARGETS: tuple[Target, ...] = (
    Target(
        "shape_unoccluded_vs_mean_face",
        "held-out shape error, unoccluded images, vs. the mean face",
        -0.05,
        True,
        percent=True,
    ),
    Target(
        "shape_occluded_vs_mean_face",
        "held-out shape error, occluded images, vs. the mean face",
        -0.05,
        True,
        percent=True,
    ),
    Target("id_corr", "held-out identity correlation (first 10)", 0.3, False, 2),
    Target(
        "now_prior_median_vs_mean_face",
        "NoW-like median, FOCUS + misfit prior, vs. the mean face",
        -0.03,
        True,
        percent=True,
    ),
    Target(
        "now_prior_occlusion_vs_autoencoder",
        "NoW-like occlusion median, FOCUS + misfit prior, vs. the autoencoder",
        -0.05,
        True,
        percent=True,
    ),
    Target("ar_f1_sunglasses", "AR-like F1 sunglasses", 0.85, False),
    Target("ar_f1_scarf", "AR-like F1 scarf", 0.85, False),
)

#: Further numbers worth a spread (no target of their own).
EXTRA: tuple[tuple[str, str, int, bool], ...] = (
    ("now_focus_median_vs_mean_face", "NoW-like median, FOCUS (no prior), vs. the mean face", 3, True),
    ("now_focus_occlusion_vs_autoencoder", "NoW-like occlusion median, FOCUS (no prior), vs. the autoencoder", 3, True),
    ("shape_mm", "held-out shape error, all images (mm)", 3, False),
    ("shape_mm_mean_face", "held-out shape error of the mean face (mm)", 3, False),
    ("now_focus_prior_median_mm", "NoW-like median, FOCUS + misfit prior (mm)", 3, False),
    ("now_focus_median_mm", "NoW-like median, FOCUS (mm)", 3, False),
    ("now_mean_face_median_mm", "NoW-like median, mean face (mm)", 3, False),
)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _rel(a: Any, b: Any) -> float | None:
    a, b = _num(a), _num(b)
    return None if a is None or b is None or b == 0 else a / b - 1.0


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def target_values(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The target numbers of one run from its metrics files ``{repo path: data}`` (NoW, AR, EM).

    Relative changes are fractions (-0.05: 5 % below). The held-out shape errors of the unoccluded
    and occluded images are compared with the mean face's error over all held-out images (the mean
    face is the same shape for every image, so it has no occlusion of its own to suffer).
    """

    def file(path: str) -> Any:
        for k, v in metrics.items():
            if k == path or k.replace("\\", "/").endswith("/" + path):
                return v
        return None

    now, ar, em = file(NOW_METRICS), file(AR_METRICS), file(EM_METRICS)
    records = _get(em, "records") or []
    last = records[-1] if records else (_get(em, "last") or {})
    mean_face = _get(last, "shape_mm_mean_face")

    def median(model: str, ch: str) -> Any:
        return _get(now, model, ch, "median")

    occl = "multiview_occlusions"
    return {
        "shape_unoccluded_vs_mean_face": _rel(_get(last, "shape_mm_unoccluded"), mean_face),
        "shape_occluded_vs_mean_face": _rel(_get(last, "shape_mm_occluded"), mean_face),
        "id_corr": _num(_get(em, "summary", "id_corr_end")),
        "now_prior_median_vs_mean_face": _rel(median("focus_prior", "all"), median("mean_face", "all")),
        "now_prior_occlusion_vs_autoencoder": _rel(median("focus_prior", occl), median("autoencoder", occl)),
        "ar_f1_sunglasses": _num(_get(ar, "focus", "sunglasses", "f1")),
        "ar_f1_scarf": _num(_get(ar, "focus", "scarf", "f1")),
        "now_focus_median_vs_mean_face": _rel(median("focus", "all"), median("mean_face", "all")),
        "now_focus_occlusion_vs_autoencoder": _rel(median("focus", occl), median("autoencoder", occl)),
        "shape_mm": _num(_get(last, "shape_mm")),
        "shape_mm_mean_face": _num(mean_face),
        "now_focus_prior_median_mm": _num(median("focus_prior", "all")),
        "now_focus_median_mm": _num(median("focus", "all")),
        "now_mean_face_median_mm": _num(median("mean_face", "all")),
    }


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict:
    """Mean, sample standard deviation (n - 1) and the verdict on the mean of every target number.

    ``runs``: ``{"seed", "name", "values": target_values(...), "metrics": ...}`` per seed.
    """
    keys = [t.key for t in TARGETS] + [k for k, *_ in EXTRA]
    mean, std, n = {}, {}, {}
    for k in keys:
        vals = [v for v in (_num(r["values"].get(k)) for r in runs) if v is not None]
        n[k] = len(vals)
        mean[k] = statistics.fmean(vals) if vals else None
        std[k] = statistics.stdev(vals) if len(vals) >= 2 else None
    verdicts = {}
    for t in TARGETS:
        m = mean[t.key]
        verdicts[t.key] = None if m is None else bool(m <= t.bound if t.at_most else m >= t.bound)
    return {"n": n, "mean": mean, "std_sample": std, "met_on_mean": verdicts}


def _fmt(x: float | None, digits: int, percent: bool) -> str:
    if x is None:
        return "–"
    return f"{100 * x:+.1f} %" if percent else f"{x:.{digits}f}"


def _run_label(run: Mapping[str, Any]) -> str:
    name = str(run.get("name") or "")
    extra = "" if name in ("committed run", f"{PREFIX}{run.get('seed')}") else f" ({name})"
    return f"seed {run.get('seed')}{extra}"


def seeds_table(doc: Mapping[str, Any]) -> str:
    """A markdown table of the targets over seeds: per-seed values, mean ± std, bound, verdict."""
    runs = doc.get("runs") or []
    summary = doc.get("summary") or {}
    head = ["number"] + [_run_label(r) for r in runs] + ["mean ± std", "target", "met (mean)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(key: str, label: str, digits: int, percent: bool, target: Target | None) -> str:
        vals = [_fmt(_num((r.get("values") or {}).get(key)), digits, percent) for r in runs]
        m = _num((summary.get("mean") or {}).get(key))
        s = _num((summary.get("std_sample") or {}).get(key))
        ms = _fmt(m, digits, percent) + ("" if s is None else " ± " + _fmt(s, digits, percent).lstrip("+"))
        if target is None:
            bound, met = "–", "–"
        else:
            bound = ("≤ " if target.at_most else "≥ ") + _fmt(target.bound, digits, percent)
            v = (summary.get("met_on_mean") or {}).get(key)
            met = "–" if v is None else ("yes" if v else "**no**")
        return "| " + " | ".join([label, *vals, ms, bound, met]) + " |"

    for t in TARGETS:
        lines.append(row(t.key, t.label, t.digits, t.percent, t))
    for key, label, digits, percent in EXTRA:
        lines.append(row(key, label, digits, percent, None))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- collecting
def _workspace_metrics(root: Path) -> dict[str, Any]:
    out = {}
    for p in (NOW_METRICS, AR_METRICS, EM_METRICS):
        f = root / p
        if not f.is_file():
            raise InputFileError(f, "not found", "run the default pipeline first (dvc repro)")
        out[p] = json.loads(f.read_text(encoding="utf-8"))
    return out


def _slim(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics kept per run in the JSON (the EM file without its per-phase records)."""
    out = {}
    for path, data in metrics.items():
        if path.replace("\\", "/").endswith(EM_METRICS) and isinstance(data, Mapping):
            records = data.get("records") or []
            data = {"summary": data.get("summary"), "last": records[-1] if records else None}
        out[path] = data
    return out


def seed_experiments(doc: Any) -> dict[int, dict[str, Any]]:
    """``{seed: metrics}`` of the finished ``seed-<N>`` experiments in ``dvc exp show --json`` output."""
    found: dict[int, dict[str, Any]] = {}
    for state in doc if isinstance(doc, list) else []:
        for rng in state.get("experiments") or []:
            name = rng.get("name") or ""
            revs = rng.get("revs") or []
            if not name.startswith(PREFIX) or not name[len(PREFIX) :].isdigit() or not revs:
                continue
            if (rng.get("executor") or {}).get("state") in ("queued", "running", "failed"):
                continue
            seed = int(name[len(PREFIX) :])
            if seed in found:
                continue  # the newest is listed first
            data = revs[0].get("data") or {}
            metrics = {
                p: r["data"]
                for p, r in (data.get("metrics") or {}).items()
                if isinstance(r, dict) and isinstance(r.get("data"), dict)
            }
            if metrics:
                found[seed] = metrics
    return found


def seed_experiment_revs(doc: Any) -> dict[int, str]:
    """``{seed: git revision}`` of the finished ``seed-<N>`` experiments in ``dvc exp show --json`` output."""
    revs: dict[int, str] = {}
    for state in doc if isinstance(doc, list) else []:
        for rng in state.get("experiments") or []:
            name = rng.get("name") or ""
            rev = ((rng.get("revs") or [{}])[0] or {}).get("rev")
            if not name.startswith(PREFIX) or not name[len(PREFIX) :].isdigit() or not rev:
                continue
            if (rng.get("executor") or {}).get("state") in ("queued", "running", "failed"):
                continue
            revs.setdefault(int(name[len(PREFIX) :]), rev)
    return revs


def experiment_metrics(doc: Any, root: Path = Path(".")) -> dict[int, dict[str, Any]]:
    """``{seed: metrics}`` of the finished seed experiments, the whole metrics files read from each
    experiment's git commit where they are there (``dvc exp show`` drops list-valued metrics such as
    the EM's per-phase records, which hold the occluded / unoccluded shape errors), else ``exp show``'s."""
    found = seed_experiments(doc)
    for seed, rev in seed_experiment_revs(doc).items():
        try:
            found[seed] = metrics_at_commit(rev, root)
        except InputFileError:
            pass
    return found


def metrics_at_commit(rev: str, root: Path = Path(".")) -> dict[str, Any]:
    """The metrics files of the pipeline run committed at git revision ``rev`` (``git show``)."""
    import subprocess

    out = {}
    for p in (NOW_METRICS, AR_METRICS, EM_METRICS):
        res = subprocess.run(["git", "show", f"{rev}:{p}"], cwd=root, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise InputFileError(f"{rev}:{p}", f"not in git ({res.stderr.strip()[:200]})", "pass a commit with a run")
        out[p] = json.loads(res.stdout)
    return out


def collect(
    root: Path,
    baseline_seed: int,
    experiments: Mapping[int, Mapping[str, Any]],
    others: Sequence[tuple[int, str, Mapping[str, Any]]] = (),
) -> dict:
    """The seeds document: the workspace's run (``baseline_seed``), the experiments and ``others``
    (``(seed, label, metrics)``: e.g. the same code and seed run on another machine), summarised."""
    runs = [{"seed": baseline_seed, "name": "committed run", "metrics": _slim(_workspace_metrics(root))}]
    for seed, label, metrics in others:
        runs.append({"seed": seed, "name": label, "metrics": _slim(metrics)})
    for seed in sorted(experiments):
        if seed == baseline_seed:
            continue
        runs.append({"seed": seed, "name": f"{PREFIX}{seed}", "metrics": _slim(experiments[seed])})
    for r in runs:
        r["values"] = target_values(r["metrics"])
    return {
        "what": "the default pipeline over training seeds (train.seed; data stages shared); "
        "std_sample: sample standard deviation (n - 1); targets judged on the mean",
        "seeds": [r["seed"] for r in runs],
        "targets": {t.key: {"label": t.label, "bound": t.bound, "at_most": t.at_most} for t in TARGETS},
        "summary": summarise(runs),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m focus.eval.seeds",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("command", choices=("queue", "run", "collect", "table"))
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2], help="queue: training seeds (default 1 2)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"collect: the JSON (default {DEFAULT_OUT})")
    ap.add_argument("--baseline-seed", type=int, default=None, help="collect: the committed run's seed (params)")
    ap.add_argument(
        "--other-run",
        nargs=3,
        action="append",
        default=[],
        metavar=("SEED", "COMMIT", "LABEL"),
        help="collect: also a run of the same code committed at COMMIT (e.g. on another machine), as seed SEED",
    )
    ap.add_argument("--poll", type=float, default=30.0, help="run: seconds between queue checks")
    ap.add_argument("--dvc", default="dvc", help="the dvc executable")
    a = ap.parse_args(argv)
    if a.command == "queue":
        existing = seed_experiments(exp_show_all(a.dvc))
        taken = [s for s in a.seeds if s in existing]
        if taken:
            print(f"experiments exist for seeds {taken}; remove them first (dvc exp remove ...)", file=sys.stderr)
            return 2
        for s in a.seeds:
            cmd = ["exp", "run", "--queue", "-n", f"{PREFIX}{s}", "-S", f"train.seed={s}"]
            res = _dvc(cmd, a.dvc)
            if res.returncode != 0:
                print(f"dvc {' '.join(cmd)} failed: {res.stderr.strip()}", file=sys.stderr)
                return res.returncode
            print("queued: dvc " + " ".join(cmd))
        return 0
    if a.command == "run":
        import time

        res = _dvc(["queue", "start"], a.dvc)
        if res.returncode != 0:
            print(f"dvc queue start failed: {res.stderr.strip()}", file=sys.stderr)
            return res.returncode
        while left := pending(exp_show(a.dvc)):
            print(f"waiting for {len(left)} experiment(s): {', '.join(left)}", flush=True)
            time.sleep(a.poll)
        return 0
    if a.command == "table":
        print(seeds_table(json.loads(a.out.read_text(encoding="utf-8"))))
        return 0
    from focus.config import merged_params

    seed = a.baseline_seed
    if seed is None:
        seed = int((merged_params(["params.yaml"]).get("train") or {}).get("seed", 0))
    others = [(int(s), label, metrics_at_commit(rev)) for s, rev, label in a.other_run]
    doc = collect(Path("."), seed, experiment_metrics(exp_show_all(a.dvc)), others)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(a.out, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(seeds_table(doc))
    print(f"wrote {a.out}")
    return 0


def exp_show_all(dvc: str = "dvc") -> Any:
    """``dvc exp show --json -A``: experiments of every commit (seeds may predate the last commit)."""
    res = _dvc(["exp", "show", "--json", "-A"], dvc)
    if res.returncode != 0:
        return exp_show(dvc)
    return json.loads(res.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
