"""The ablation table: DVC experiments of the default pipeline, one parameter change each,
tabulated from their metrics by :func:`ablation_table` into ``reports/ablations.md``.

Every ablation is a ``-S`` override of ``params.yaml`` (:data:`ABLATIONS`), each switch documented
where its setting lives:

=================  ===============================================  =======================================
name               what is left out                                 overrides
=================  ===============================================  =======================================
``no_nbr``         ``L_nbr`` (not computed at weight 0)             ``em.seg_weights.nbr=0``
``no_perceptual``  ``L_dist`` and ``L_presv``                       ``em.seg_weights.dist=0``, ``...presv=0``
``no_identity``    ``L_id`` (initialisation and reconstruction)     ``init.weights.id=0``, ``em.rec_weights.id=0``
``render_only``    the U-Net's image input: ``S(R)``                 ``train.unet.image_input=false``
``pseudo_frozen``  the EM: fixed pseudo masks, no segmentation      ``em.masks=pseudo``
=================  ===============================================  =======================================

"Without the misfit prior" needs no run: the evaluation scores every model with and without it
(the ``focus`` and ``focus_prior`` rows of ``reports/eval/now/metrics.json``), so that row is the full
model's ``focus`` row and the full model's NoW numbers are its ``focus_prior`` row (the
segmentation is the same for both).

Commands (``make ablations`` runs all three):

* ``python -m focus.eval.ablations queue``: ``dvc exp run --queue -S ... -n NAME`` per ablation
  (refuses names that already exist: nothing earlier is replaced);
* ``python -m focus.eval.ablations run``: ``dvc queue start`` and wait until the queue is empty;
* ``python -m focus.eval.ablations table``: ``dvc exp show --json`` (or ``--exp-json FILE``) ->
  ``reports/ablations.md``.

The ``dvc exp show --json`` shape (DVC 3, ``dvc/repo/experiments/serialize.py``): a list of
``ExpState`` records ``{"rev", "name", "data": {"metrics": {path: {"data": {...}}}, "params": ...},
"error", "experiments": [{"name", "executor": {"state", ...} | null, "revs": [ExpState, ...]}]}``;
the first record is the workspace, then the baseline commits.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focus.errors import InputFileError
from focus.io_utils import write_text_atomic

NOW_METRICS = "reports/eval/now/metrics.json"
AR_METRICS = "reports/eval/ar/metrics.json"
EM_METRICS = "reports/train/em_metrics.json"
DEFAULT_OUT = Path("reports/ablations.md")
SEEDS_GLOB = "bench/results/seeds*.json"


@dataclass(frozen=True)
class Ablation:
    """One DVC experiment: its name, table label and ``-S`` overrides."""

    name: str
    label: str
    overrides: tuple[str, ...]


ABLATIONS: tuple[Ablation, ...] = (
    Ablation("no_nbr", "without L_nbr", ("em.seg_weights.nbr=0",)),
    Ablation("no_perceptual", "without L_dist, L_presv", ("em.seg_weights.dist=0", "em.seg_weights.presv=0")),
    Ablation("no_identity", "without L_id", ("init.weights.id=0", "em.rec_weights.id=0")),
    Ablation("render_only", "U-Net without the image (render only)", ("train.unet.image_input=false",)),
    Ablation("pseudo_frozen", "pseudo masks frozen instead of EM", ("em.masks=pseudo",)),
)

NOW_CHALLENGES = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
AR_SUBSETS = ("unoccluded", "sunglasses", "scarf")
OCCLUDED = ("sunglasses", "scarf")


# ---------------------------------------------------------------------------- reading dvc exp show --json
@dataclass(frozen=True)
class Run:
    """One experiment (or baseline) of ``dvc exp show --json``: its metrics files and state."""

    name: str
    rev: str
    metrics: dict[str, Any]
    state: str = "success"

    def file(self, path: str) -> Any:
        """The data of a metrics file by its repo path (matched by suffix: DVC may prefix paths)."""
        for key, value in self.metrics.items():
            if key == path or key.replace("\\", "/").endswith("/" + path):
                return value
        return None


def _metrics_of(state: dict) -> dict[str, Any]:
    data = state.get("data") or {}
    out = {}
    for path, res in (data.get("metrics") or {}).items():
        if isinstance(res, dict) and isinstance(res.get("data"), dict):
            out[path] = res["data"]
    return out


def parse_exp_show(doc: Any, source: str = "dvc exp show --json") -> tuple[Run | None, dict[str, Run]]:
    """``(baseline, {experiment name: run})`` from ``dvc exp show --json`` output.

    The baseline is the first committed baseline record with metrics (else the workspace); of
    experiments with one name the newest (first listed) is taken. Raises :class:`InputFileError` on
    anything that is not that shape.
    """
    if not isinstance(doc, list) or not all(isinstance(s, dict) and "rev" in s for s in doc):
        raise InputFileError(
            source,
            "is not the output of `dvc exp show --json` (a list of records with 'rev')",
            "run `dvc exp show --json > FILE` with DVC 3 and pass that file",
        )
    baseline, workspace, runs = None, None, {}
    for state in doc:
        run = Run(state.get("name") or state["rev"], state["rev"], _metrics_of(state))
        if state["rev"] == "workspace":
            workspace = run if run.metrics else None
        elif baseline is None and run.metrics:
            baseline = run
        for rng in state.get("experiments") or []:
            executor = rng.get("executor") or {}
            revs = rng.get("revs") or []
            if not revs:
                continue
            head = revs[0]
            name = rng.get("name") or head.get("name") or head.get("rev")
            if name in runs:
                continue
            status = executor.get("state") or ("failed" if head.get("error") else "success")
            runs[name] = Run(name, head.get("rev", ""), _metrics_of(head), status)
    return baseline or workspace, runs


# ---------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Row:
    """A table row: which run and which model keys of its metrics files (``None``: not applicable)."""

    label: str
    run: str | None  # None: the baseline (the full model's run)
    now_key: str | None
    ar_key: str | None
    shape_key: str | None
    prior: bool = False  # NoW: the ``focus_prior`` row where the run applied the misfit prior


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    get: Callable[[Run, Row], float | None]
    digits: int = 3


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def _now_key(run: Run, row: Row) -> str:
    """The model key of the NoW metrics: ``focus_prior`` for rows with the prior where the run has it."""
    if row.now_key is None:
        return ""
    if row.prior and row.now_key == "focus" and "focus_prior" in (run.file(NOW_METRICS) or {}):
        return "focus_prior"
    return row.now_key


def columns() -> list[Column]:
    """NoW medians per challenge, AR F1 / IoU per subset, occluder IoU (occluded subsets), held-out
    shape error and identity correlation."""
    cols = []
    for ch in NOW_CHALLENGES:
        cols.append(
            Column(
                f"now.{ch}",
                f"NoW {ch.replace('multiview_', '')} median (mm)",
                lambda r, row, ch=ch: _dig(r.file(NOW_METRICS), _now_key(r, row), ch, "median"),
                2,
            )
        )
    for sub in AR_SUBSETS:
        for m in ("f1", "iou"):
            cols.append(
                Column(
                    f"ar.{sub}.{m}",
                    f"AR {sub} {m.upper() if m == 'iou' else 'F1'}",
                    lambda r, row, sub=sub, m=m: _dig(r.file(AR_METRICS), row.ar_key or "", sub, m),
                )
            )
    for sub in OCCLUDED:
        cols.append(
            Column(
                f"ar.{sub}.occluder_iou",
                f"AR {sub} occluder IoU",
                lambda r, row, sub=sub: _dig(r.file(AR_METRICS), row.ar_key or "", sub, "occluder_iou"),
            )
        )
    cols.append(
        Column(
            "shape_mm",
            "held-out shape error (mm)",
            lambda r, row: _dig(r.file(EM_METRICS), "summary", row.shape_key or ""),
            2,
        )
    )
    cols.append(
        Column(
            "id_corr", "identity corr.", lambda r, row: _dig(r.file(NOW_METRICS), _now_key(r, row), "all", "id_corr")
        )
    )
    return cols


def rows(ablations: Sequence[Ablation] = ABLATIONS) -> list[Row]:
    """Full model, each ablation, the full run without the prior, then the trivial baselines."""
    out = [Row("**full model** (FOCUS + misfit prior)", None, "focus", "focus", "shape_mm_end", prior=True)]
    out += [Row(a.label, a.name, "focus", "focus", "shape_mm_end", prior=True) for a in ablations]
    out.append(Row("without the misfit prior (the full run's `focus` rows)", None, "focus", "focus", "shape_mm_end"))
    out += [
        Row("baseline: mean face", None, "mean_face", None, "shape_mm_mean_face_end"),
        Row(
            "baseline: autoencoder (initialised encoder, all-face mask)",
            None,
            "autoencoder",
            "autoencoder",
            "shape_mm_start",
        ),
        Row("baseline: all-face mask (FOCUS's render)", None, None, "all_face", None),
        Row("baseline: pseudo mask z(p)", None, None, "pseudo_mask", None),
    ]
    return out


def _value(col: Column, run: Run, row: Row) -> float | None:
    return col.get(run, row)


def _fmt(x: float | None, digits: int) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


# ---------------------------------------------------------------------------- seed spread
def seed_spread(paths: Sequence[Path], cols: Sequence[Column]) -> dict[str, float] | None:
    """The full model's spread over seeds, per column key, from ``bench/results/seeds*.json``.

    Accepted shapes: ``{"std": {column key: value}}`` (or ``"spread"``), or ``{"runs": [run, ...]}``
    where each run is a ``{metrics file path: data}`` mapping (or ``{"metrics": ...}``, DVC's
    ``{path: {"data": ...}}`` also accepted); then the sample std (n - 1, as :mod:`focus.eval.seeds` reports)
    over the runs of every column.
    ``None`` when no file holds either (the table then says "not measured").
    """
    full = rows(())[0]
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        direct = doc.get("std") or doc.get("spread")
        if isinstance(direct, dict):
            return {k: float(v) for k, v in direct.items() if isinstance(v, (int, float))}
        runs = doc.get("runs")
        if not isinstance(runs, list) or len(runs) < 2:
            continue
        parsed = []
        for i, r in enumerate(runs):
            m = r.get("metrics", r) if isinstance(r, dict) else {}
            m = {k: (v["data"] if isinstance(v, dict) and isinstance(v.get("data"), dict) else v) for k, v in m.items()}
            parsed.append(Run(f"seed{i}", "", m))
        out = {}
        for col in cols:
            vals = [v for v in (_value(col, r, full) for r in parsed) if v is not None and math.isfinite(v)]
            if len(vals) >= 2:
                mean = sum(vals) / len(vals)
                out[col.key] = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        if out:
            return out
    return None


# ---------------------------------------------------------------------------- markdown
def ablation_table(
    doc: Any,
    seeds: dict[str, float] | None,
    ablations: Sequence[Ablation] = ABLATIONS,
    source: str = "dvc exp show --json",
) -> str:
    """``reports/ablations.md`` from ``dvc exp show --json`` output and the seed spread (or ``None``)."""
    baseline, runs = parse_exp_show(doc, source)
    cols = columns()
    head = "| model | " + " | ".join(c.header for c in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    missing = []
    for row in rows(ablations):
        run = baseline if row.run is None else runs.get(row.run)
        if run is None or run.state != "success" or not run.metrics:
            why = "not run" if run is None else (run.state if run.state != "success" else "no metrics")
            missing.append(f"`{row.run or 'baseline'}` ({why})")
            lines.append(f"| {row.label} | " + " | ".join(why if i == 0 else "–" for i in range(len(cols))) + " |")
            continue
        lines.append(f"| {row.label} | " + " | ".join(_fmt(_value(c, run, row), c.digits) for c in cols) + " |")
    if seeds:
        lines.append(
            "| full model, seed spread (std) | "
            + " | ".join(_fmt(seeds.get(c.key), c.digits) if c.key in seeds else "not measured" for c in cols)
            + " |"
        )
    else:
        lines.append("| full model, seed spread (std) | " + " | ".join("not measured" for _ in cols) + " |")
    overrides = "\n".join(
        f"| {a.label} | `{a.name}` | " + ", ".join(f"`{o}`" for o in a.overrides) + " |" for a in ablations
    )
    text = [
        "# Ablations",
        "",
        "Generated by `python -m focus.eval.ablations table` from the DVC experiments' metrics "
        f"(`{NOW_METRICS}`, `{AR_METRICS}`, `{EM_METRICS}`); re-run all with `make ablations`. Do not edit by hand.",
        "",
        f"Full model: {'`' + baseline.name + '`' if baseline else 'no baseline with metrics'}.",
        "",
        *lines,
        "",
        "NoW: median scan-to-mesh error per challenge (mm; the full model and each ablation with the misfit prior, "
        "the `focus_prior` rows). AR: face-class F1 / IoU of the soft mask inside the rendered face, per subset; "
        "occluder IoU: the occluder class (the outliers themselves; 0 for any all-face mask). Held-out shape error: "
        "mean neutral-shape error on the training stages' held-out images (`em_metrics.json` summary). Identity "
        "corr.: correlation of the first 10 predicted and true identity coefficients on the NoW-like set. "
        "Differences smaller than about two seed spreads are not evidence.",
        "",
        "| ablation | experiment | overrides |",
        "|---|---|---|",
        overrides,
        "",
    ]
    if missing:
        text += ["Missing: " + ", ".join(missing) + ".", ""]
    text += reading(baseline, runs, seeds, ablations)
    return "\n".join(text)


#: The columns the reading compares (the paper's claims: each part helps shape under occlusion and
#: the segmentation of the occluders), with the direction in which the full model should be better.
CLAIM_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("now.multiview_occlusions", "NoW occlusion median", -1),
    ("ar.scarf.occluder_iou", "scarf occluder IoU", +1),
    ("ar.sunglasses.occluder_iou", "sunglasses occluder IoU", +1),
)


def reading(
    baseline: Run | None,
    runs: dict[str, Run],
    seeds: dict[str, float] | None,
    ablations: Sequence[Ablation] = ABLATIONS,
) -> list[str]:
    """Markdown lines: per ablation, whether the full model is better on :data:`CLAIM_COLUMNS` by more
    than two seed spreads (the paper's claim supported), worse by more (contradicted), or neither
    (not resolved at this scale); without a seed spread nothing is called supported."""
    if baseline is None:
        return []
    cols = {c.key: c for c in columns()}
    full_row = rows(())[0]
    out = [
        "## Reading (generated)",
        "",
        "Full model against each ablation; a difference counts only beyond two seed spreads of the full model.",
        "",
    ]
    for a in ablations:
        run = runs.get(a.name)
        if run is None or run.state != "success" or not run.metrics:
            out.append(f"- {a.label}: not measured.")
            continue
        parts = []
        for key, label, better in CLAIM_COLUMNS:
            col = cols[key]
            f, x = col.get(baseline, full_row), col.get(run, Row(a.label, a.name, "focus", "focus", None, prior=True))
            if f is None or x is None:
                continue
            gain = better * (f - x)  # > 0: the full model is better
            spread = (seeds or {}).get(key)
            if spread is None:
                verdict = "no seed spread"
            elif gain > 2 * spread:
                verdict = "supports the paper"
            elif gain < -2 * spread:
                verdict = "contradicts the paper"
            else:
                verdict = "within the seed spread"
            parts.append(f"{label} {_fmt(f, col.digits)} vs {_fmt(x, col.digits)} ({verdict})")
        out.append(f"- {a.label}: " + ("; ".join(parts) if parts else "no comparable metrics") + ".")
    return out + [""]


# ---------------------------------------------------------------------------- commands
def _dvc(args: Sequence[str], dvc: str) -> subprocess.CompletedProcess:
    return subprocess.run([dvc, *args], check=False, capture_output=True, text=True)


def exp_show(dvc: str = "dvc") -> Any:
    res = _dvc(["exp", "show", "--json"], dvc)
    if res.returncode != 0:
        raise InputFileError(
            "dvc exp show --json",
            f"failed: {res.stderr.strip()[:400]}",
            "run it in the project root with DVC 3 installed",
        )
    return json.loads(res.stdout)


def queue_commands(ablations: Sequence[Ablation] = ABLATIONS) -> list[list[str]]:
    """The ``dvc exp run --queue -S ... -n NAME`` argument lists, one per ablation."""
    out = []
    for a in ablations:
        args = ["exp", "run", "--queue", "-n", a.name]
        for o in a.overrides:
            args += ["-S", o]
        out.append(args)
    return out


def pending(doc: Any) -> list[str]:
    """Names of experiments still queued or running in ``dvc exp show --json`` output."""
    out = []
    for state in doc if isinstance(doc, list) else []:
        for rng in state.get("experiments") or []:
            if (rng.get("executor") or {}).get("state") in ("queued", "running"):
                out.append(rng.get("name") or "?")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m focus.eval.ablations",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "command",
        choices=("queue", "run", "table", "list"),
        help="queue: queue the ablations as DVC experiments; run: `dvc queue start` and wait; "
        "table: write the table; list: print the ablations and their overrides",
    )
    ap.add_argument("--exp-json", type=Path, help="table: read this `dvc exp show --json` output instead of running it")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"table: the markdown file (default {DEFAULT_OUT})")
    ap.add_argument(
        "--seeds", nargs="*", type=Path, help=f"table: seed-spread files (default: {SEEDS_GLOB}; none: 'not measured')"
    )
    ap.add_argument("--jobs", type=int, default=1, help="run: parallel queue workers (default 1)")
    ap.add_argument("--poll", type=float, default=30.0, help="run: seconds between queue checks")
    ap.add_argument("--dvc", default="dvc", help="the dvc executable")
    a = ap.parse_args(argv)
    if a.command == "list":
        for cmd in queue_commands():
            print("dvc " + " ".join(cmd))
        return 0
    if a.command == "queue":
        _, runs = parse_exp_show(exp_show(a.dvc))
        taken = [ab.name for ab in ABLATIONS if ab.name in runs]
        if taken:
            print(
                f"experiments already exist: {', '.join(taken)}; remove them first (dvc exp remove "
                f"{' '.join(taken)}) or keep them and run `python -m focus.eval.ablations table`",
                file=sys.stderr,
            )
            return 2
        for cmd in queue_commands():
            res = _dvc(cmd, a.dvc)
            if res.returncode != 0:
                print(f"dvc {' '.join(cmd)} failed: {res.stderr.strip()}", file=sys.stderr)
                return res.returncode
            print("queued: dvc " + " ".join(cmd))
        return 0
    if a.command == "run":
        res = _dvc(["queue", "start", "-j", str(a.jobs)], a.dvc)
        if res.returncode != 0:
            print(f"dvc queue start failed: {res.stderr.strip()}", file=sys.stderr)
            return res.returncode
        while left := pending(exp_show(a.dvc)):
            print(f"waiting for {len(left)} experiment(s): {', '.join(left)}", flush=True)
            time.sleep(a.poll)
        return 0
    if a.exp_json:
        try:
            doc = json.loads(a.exp_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputFileError(
                a.exp_json, f"cannot be read as JSON ({exc})", "pass `dvc exp show --json` output"
            ) from exc
    else:
        doc = exp_show(a.dvc)
    seed_files = a.seeds if a.seeds is not None else sorted(Path().glob(SEEDS_GLOB))
    text = ablation_table(doc, seed_spread(seed_files, columns()), source=str(a.exp_json or "dvc exp show --json"))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(a.out, text)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
