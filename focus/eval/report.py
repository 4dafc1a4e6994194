"""``reports/README.md``, target checks, the per-round plot and the project README's headline block.

Everything here is computed from the metrics files of the evaluation stages (and the training's
``reports/train/em_metrics.json`` when present), never from models, so the tables always match
the numbers ``dvc metrics show`` prints:

* ``reports/eval/now/metrics.json`` -- ``<model>.<challenge>.{median,mean,std}`` (mm);
* ``reports/eval/ar/metrics.json`` -- ``<model>.<subset>.{accuracy,precision,recall,f1,iou}``
  (soft, means), ``<...>_std``, and ``<model>.<subset>.hard.<...>`` (thresholded at 0.5);
* ``reports/misfit_prior/summary.json`` -- the prior's size and its effect on synthetic faces;
* ``bench/results/identity_oracle_cpu.json`` -- the supervised identity oracle (``bench/identity_oracle.py``),
  shown as an upper bound beside the EM's identity numbers, labelled as a supervised bench measurement;
* ``bench/results/seeds_cpu.json`` -- the default over training seeds (:mod:`focus.eval.seeds`): mean and
  spread of every target number, in the section "Seeds" and one line of the README block;
* ``bench/results/now_constant_face.json`` -- each model's *average* NoW-like prediction scored as a constant
  face (``bench/now_constant_face.py``): how much of a gain over the mean face is per-face identity.

Every shape score stands beside its trivial baseline: the ``mean_face`` row (the face model's mean
shape for every image) in the NoW tables and the headline, the mean face's neutral-shape error in the
identity table.

Written: ``reports/eval/summary.json`` (target values, margins and verdicts; a DVC metric),
``reports/eval/rounds.{png,csv}`` (NoW error and F1 per EM round), ``reports/README.md``, and
``reports/results_block.md``: the headline block for the project README. The stage writes nothing
outside ``reports/``; ``make readme`` (``python -m focus.eval.report``) copies that block between
``<!-- results:start -->`` and ``<!-- results:end -->`` of ``README.md``, and ``--check`` says
whether README.md is up to date.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from focus.errors import FocusError, InputFileError
from focus.io_utils import atomic_path, write_json_atomic, write_text_atomic

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"
#: The report stage's block for the project README, written beside ``reports/README.md``.
RESULTS_BLOCK_NAME = "results_block.md"

#: Published NoW **test-set** numbers (median / mean / std, mm), docs/evaluation.md section 1.
PUBLISHED_NOW = {
    "FOCUS (Li et al. 2023)": (1.04, 1.30, 1.10),
    "DECA (Feng et al. 2021)": (1.09, 1.38, 1.18),
    "Deep3DFaceRecon (Deng et al. 2019)": (1.11, 1.41, 1.21),
}

#: The targets on the default synthetic benchmark (docs/evaluation.md 4).
TARGET_OCCLUSION_VS_NEUTRAL = 0.10  # occlusion median at most 10 % above the neutral median
TARGET_REDUCTION_VS_AUTOENCODER = 0.15  # occlusion median at least 15 % below the autoencoder's
TARGET_F1_GAIN = 0.05  # FOCUS F1 at least this much above the pseudo-mask baseline
TARGET_F1_MIN = 0.85  # and at least this absolute
#: Issue 12's shape targets against the trivial baselines (NoW-like set).
TARGET_PRIOR_BELOW_MEAN_FACE = 0.03  # focus_prior median over all images at least 3 % below the mean face's
TARGET_PRIOR_OCCLUSION_VS_AUTOENCODER = 0.05  # its occlusion median at least 5 % below the autoencoder's

#: Rows of our models in the headline, in order (the trivial baselines last).
HEADLINE_KEYS = ("focus", "focus_prior", "autoencoder", "pseudo_mask", "mean_face")

CHALLENGE_LABELS = {
    "multiview_neutral": "neutral",
    "multiview_expressions": "expressions",
    "multiview_occlusions": "occlusions",
    "selfie": "selfie",
    "all": "all",
}
METHOD_LABELS = {
    "autoencoder": "Autoencoder (no segmentation)",
    "pseudo_mask": "Pseudo mask z(p)",
    "focus": "FOCUS",
    "focus_prior": "FOCUS + misfit prior",
    "mean_face": "Mean face (identity 0, every image)",
    "all_face": "All-face mask (FOCUS's render)",
}


def method_label(key: str) -> str:
    if key.startswith("focus_round_"):
        return f"FOCUS, EM round {int(key.rsplit('_', 1)[1])}"
    return METHOD_LABELS.get(key, key)


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _get(d: dict | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    text = f"{x:.{nd}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _round_keys(d: dict) -> list[str]:
    return sorted(k for k in d if k.startswith("focus_round_"))


# ---------------------------------------------------------------------------- targets
def check_targets(now: dict | None, ar: dict | None) -> dict:
    """Target values, margins and verdicts (``None`` where an input is missing)."""
    out: dict[str, Any] = {"now": {}, "ar": {}, "targets": {}}
    occ = _get(now, "focus", "multiview_occlusions", "median")
    neu = _get(now, "focus", "multiview_neutral", "median")
    ae_occ = _get(now, "autoencoder", "multiview_occlusions", "median")
    if occ is not None and neu:
        ratio = occ / neu
        out["now"]["occlusion_over_neutral_median"] = round(ratio, 4)
        out["targets"]["occlusion_within_10pct_of_neutral"] = bool(ratio - 1.0 <= TARGET_OCCLUSION_VS_NEUTRAL)
    if occ is not None and ae_occ:
        red = 1.0 - occ / ae_occ
        out["now"]["occlusion_median_reduction_vs_autoencoder"] = round(red, 4)
        out["targets"]["occlusion_15pct_below_autoencoder"] = bool(red >= TARGET_REDUCTION_VS_AUTOENCODER)
    m0, m1 = _get(now, "focus", "all", "mean"), _get(now, "focus_prior", "all", "mean")
    if m0 is not None and m1 is not None:
        out["now"]["misfit_prior_mean_change_mm"] = round(m1 - m0, 4)
        out["now"]["misfit_prior_median_change_mm"] = round(
            _get(now, "focus_prior", "all", "median") - _get(now, "focus", "all", "median"), 4
        )
        out["targets"]["misfit_prior_lowers_mean"] = bool(m1 < m0)
    a_neu = _get(now, "autoencoder", "multiview_neutral", "median")
    if ae_occ is not None and a_neu:
        out["now"]["autoencoder_occlusion_over_neutral_median"] = round(ae_occ / a_neu, 4)
    out["now"].update(mean_face_comparison(now))
    prior_vs_mean = _get(out, "now", "vs_mean_face", "focus_prior", "all_median_change")
    if prior_vs_mean is not None:
        out["targets"]["focus_prior_median_3pct_below_mean_face"] = bool(-prior_vs_mean >= TARGET_PRIOR_BELOW_MEAN_FACE)
    p_occ = _get(now, "focus_prior", "multiview_occlusions", "median")
    if p_occ is not None and ae_occ:
        red = 1.0 - p_occ / ae_occ
        out["now"]["prior_occlusion_median_reduction_vs_autoencoder"] = round(red, 4)
        out["targets"]["focus_prior_occlusion_5pct_below_autoencoder"] = bool(
            red >= TARGET_PRIOR_OCCLUSION_VS_AUTOENCODER
        )
    for sub in ("sunglasses", "scarf"):
        f1, f1p = _get(ar, "focus", sub, "f1"), _get(ar, "pseudo_mask", sub, "f1")
        if f1 is None or f1p is None:
            continue
        out["ar"][sub] = {"f1": f1, "f1_pseudo_mask": f1p, "f1_gain_vs_pseudo_mask": round(f1 - f1p, 4)}
        f1a = _get(ar, "autoencoder", sub, "f1")
        if f1a is not None:  # not a target: how much better than calling every rendered pixel face
            out["ar"][sub]["f1_all_face"] = f1a
            out["ar"][sub]["f1_gain_vs_all_face"] = round(f1 - f1a, 4)
        out["targets"][f"f1_{sub}_gain_over_pseudo_mask"] = bool(f1 - f1p >= TARGET_F1_GAIN)
        out["targets"][f"f1_{sub}_at_least_085"] = bool(f1 >= TARGET_F1_MIN)
    out["targets"]["all_met"] = bool(out["targets"]) and all(out["targets"].values())
    return out


def mean_face_comparison(now: dict | None) -> dict:
    """Every model's NoW median against the mean face's: ``{"vs_mean_face": {key: {"all_median_change":
    r, "occlusion_median_change": r}}}`` with ``r = median / mean-face median - 1`` (negative: better than
    the mean face); empty without a ``mean_face`` row."""
    base = {ch: _get(now, "mean_face", ch, "median") for ch in ("all", "multiview_occlusions")}
    if not now or not any(base.values()):
        return {}
    rows = {}
    for k in now:
        if k == "mean_face":
            continue
        row = {}
        for ch, name in (("all", "all_median_change"), ("multiview_occlusions", "occlusion_median_change")):
            v = _get(now, k, ch, "median")
            if v is not None and base[ch]:
                row[name] = round(v / base[ch] - 1.0, 4)
        rows[k] = row
    return {"vs_mean_face": rows}


# ---------------------------------------------------------------------------- tables
def now_table(now: dict, keys: list[str] | None = None) -> str:
    """Markdown: median per challenge, median / mean / std over all images, the median relative to the
    mean face's and the identity correlation over all images."""
    keys = keys or list(now)
    chs = [
        c
        for c in ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
        if any(c in now[k] for k in keys)
    ]
    vs_mean = mean_face_comparison(now).get("vs_mean_face", {})
    head = (
        "| model | "
        + " | ".join(f"{CHALLENGE_LABELS[c]} median" for c in chs)
        + " | all median | all mean | all std | all median vs. mean face | identity corr. |"
    )
    lines = [head, "|" + "---|" * (len(chs) + 6)]
    for k in keys:
        cells = [_f(_get(now, k, c, "median")) for c in chs]
        cells += [_f(_get(now, k, "all", s)) for s in ("median", "mean", "std")]
        cells.append("(baseline)" if k == "mean_face" else _pct(_get(vs_mean, k, "all_median_change")))
        cells.append(_f(_get(now, k, "all", "id_corr")))
        lines.append(f"| {method_label(k)} (`{k}`) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def now_challenge_table(now: dict, keys: list[str]) -> str:
    """Markdown: median / mean / std of every challenge (one column per challenge)."""
    chs = [
        c
        for c in ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie", "all")
        if any(c in now[k] for k in keys)
    ]
    lines = ["| model | " + " | ".join(CHALLENGE_LABELS[c] for c in chs) + " |", "|" + "---|" * (len(chs) + 1)]
    for k in keys:
        cells = [" / ".join(_f(_get(now, k, c, s)) for s in ("median", "mean", "std")) for c in chs]
        lines.append(f"| `{k}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ar_table(ar: dict, keys: list[str], subset: str) -> str:
    """Markdown: soft means ± std and thresholded F1 / IoU of one subset, face class then occluder class."""
    lines = [
        "| model | accuracy | precision | recall | F1 | IoU | F1 (0.5) | IoU (0.5) | occluder F1 | occluder IoU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        row = _get(ar, k, subset)
        if row is None:
            continue
        cells = [
            f"{_f(row.get(m), 3)} ± {_f(row.get(m + '_std'), 3)}"
            for m in ("accuracy", "precision", "recall", "f1", "iou")
        ]
        cells += [_f(_get(row, "hard", "f1"), 3), _f(_get(row, "hard", "iou"), 3)]
        cells += [_f(row.get(m), 3) for m in ("occluder_f1", "occluder_iou")]
        lines.append(f"| {method_label(k)} (`{k}`) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f} %"


def headline(now: dict | None, ar: dict | None, synthetic_now: bool, synthetic_ar: bool, image_prefix: str = "") -> str:
    """The headline table: our models beside their trivial baselines (the mean face for shape, the
    all-face mask of the autoencoder for segmentation) and the published NoW test numbers, clearly labelled."""
    keys = [k for k in HEADLINE_KEYS if (now and k in now) or (ar and k in ar)]
    now_src = "synthetic NoW-like" if synthetic_now else "real NoW validation"
    ar_src = "synthetic AR-like" if synthetic_ar else "real AR"
    vs_mean = mean_face_comparison(now).get("vs_mean_face", {})
    lines = [
        "| model | data | NoW median | NoW mean | NoW std | median vs. mean face | occlusion median | "
        "identity corr. | F1 sunglasses | F1 scarf |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        cells = [_f(_get(now, k, "all", s)) for s in ("median", "mean", "std")]
        cells.append("(baseline)" if k == "mean_face" else _pct(_get(vs_mean, k, "all_median_change")))
        cells.append(_f(_get(now, k, "multiview_occlusions", "median")))
        cells.append(_f(_get(now, k, "all", "id_corr")))
        cells += [_f(_get(ar, k, sub, "f1"), 3) for sub in ("sunglasses", "scarf")]
        if k == "pseudo_mask":
            cells[:6] = ["(= autoencoder)"] + ["–"] * 5
        lines.append(f"| {METHOD_LABELS.get(k, k)} | ours, {now_src} / {ar_src} | " + " | ".join(cells) + " |")
    for name, (md, mn, sd) in PUBLISHED_NOW.items():
        cells = [f"{md:.2f}", f"{mn:.2f}", f"{sd:.2f}"] + ["–"] * 5
        lines.append(f"| {name} | published, **real NoW test set** | " + " | ".join(cells) + " |")
    note = (
        "NoW errors in mm (scan-to-mesh after landmark and rigid alignment, pooled over scan vertices; "
        "the `focus now-eval` protocol); *mean face*: the face model's mean shape for every image, scored the same "
        "way (the trivial shape baseline; *median vs. mean face*: relative change of the median over all images); "
        "*identity corr.*: correlation, across images, of the first 10 predicted and true identity coefficients "
        "(synthetic sets only; 0 for the mean face); F1 of the face class inside the rendered face, soft mask, "
        "mean over images (the autoencoder row is the trivial all-face mask). "
    )
    if synthetic_now:
        note += (
            "**Our rows are measured on the synthetic NoW-like set of this pipeline, not on real NoW**: the published "
            "rows are the real NoW test set and are shown for scale only; the numbers are not comparable until "
            "`eval.now_dir` names the real NoW validation folder (validation errors run 0.1-0.2 mm above test). "
        )
    return "\n".join(lines) + "\n\n" + note


def _target_rows(summary: dict) -> str:
    t, now, ar = summary["targets"], summary["now"], summary["ar"]
    rows = ["| target | value | verdict |", "|---|---|---|"]

    def verdict(key: str) -> str:
        return "–" if key not in t else ("met" if t[key] else "**missed**")

    r = now.get("occlusion_over_neutral_median")
    rows.append(
        f"| FOCUS occlusion median within 10 % of its neutral median | ratio {_f(r, 3)} "
        f"({'+' if r is not None and r >= 1 else ''}{_f(None if r is None else 100 * (r - 1), 1)} %) | "
        f"{verdict('occlusion_within_10pct_of_neutral')} |"
    )
    red = now.get("occlusion_median_reduction_vs_autoencoder")
    rows.append(
        f"| FOCUS occlusion median at least 15 % below the autoencoder's | "
        f"{_f(None if red is None else 100 * red, 1)} % lower | {verdict('occlusion_15pct_below_autoencoder')} |"
    )
    for sub in ("sunglasses", "scarf"):
        a = ar.get(sub, {})
        rows.append(
            f"| F1 {sub} at least 0.05 above the pseudo mask | {_f(a.get('f1'), 3)} vs {_f(a.get('f1_pseudo_mask'), 3)} "
            f"(gain {_f(a.get('f1_gain_vs_pseudo_mask'), 3)}) | {verdict(f'f1_{sub}_gain_over_pseudo_mask')} |"
        )
        rows.append(f"| F1 {sub} at least 0.85 | {_f(a.get('f1'), 3)} | {verdict(f'f1_{sub}_at_least_085')} |")
    for sub in ("sunglasses", "scarf"):
        a = ar.get(sub, {})
        if "f1_gain_vs_all_face" in a:
            rows.append(
                f"| (not a target) F1 {sub} above calling every rendered pixel face | {_f(a.get('f1'), 3)} vs "
                f"{_f(a.get('f1_all_face'), 3)} (gain {_f(a.get('f1_gain_vs_all_face'), 3)}) | – |"
            )
    c = _get(now, "vs_mean_face", "focus_prior", "all_median_change")
    rows.append(
        f"| FOCUS + misfit prior median at least {100 * TARGET_PRIOR_BELOW_MEAN_FACE:.0f} % below the mean "
        f"face's | {_pct(c)} | {verdict('focus_prior_median_3pct_below_mean_face')} |"
    )
    red = now.get("prior_occlusion_median_reduction_vs_autoencoder")
    rows.append(
        f"| FOCUS + misfit prior occlusion median at least {100 * TARGET_PRIOR_OCCLUSION_VS_AUTOENCODER:.0f} % "
        f"below the autoencoder's | {_f(None if red is None else 100 * red, 1)} % lower | "
        f"{verdict('focus_prior_occlusion_5pct_below_autoencoder')} |"
    )
    d = now.get("misfit_prior_mean_change_mm")
    rows.append(
        f"| misfit prior lowers the NoW mean error | change {_f(d, 3)} mm | {verdict('misfit_prior_lowers_mean')} |"
    )
    return "\n".join(rows)


MISFIT_REASONS = {
    "small_offset": "the systematic offset is small against the per-face spread, so subtracting it moves the typical "
    "face little",
    "no_heldout_gain": "even on held-out synthetic faces it barely lowers the per-vertex error",
    "protocol_refits": "the NoW protocol re-fits scale, rotation and translation and measures scan-to-surface "
    "distances, which absorbs global parts of the offset (e.g. scale) and is insensitive to offsets "
    "along the surface",
}


def misfit_prior_reasons(misfit: dict) -> list[str]:
    """Keys of :data:`MISFIT_REASONS` that the prior's summary supports, for when it does not lower the
    NoW error: its mean offset under half the per-vertex spread; its held-out per-vertex error lowered by
    less than 0.01 mm; always the protocol's re-fit."""
    off, spr = _get(misfit, "offset_mm", "mean"), _get(misfit, "spread_mm", "mean")
    cv0 = misfit.get("mean_vertex_error_cross_validated_mm")
    cv1 = misfit.get("mean_vertex_error_cross_validated_with_prior_mm")
    out = []
    if off is not None and spr is not None and off < 0.5 * spr:
        out.append("small_offset")
    if cv0 is not None and cv1 is not None and cv1 >= cv0 - 0.01:
        out.append("no_heldout_gain")
    return out + ["protocol_refits"]


def misfit_text(summary: dict, misfit: dict | None) -> str:
    """What the prior did, and why when it did not help."""
    d = summary["now"].get("misfit_prior_mean_change_mm")
    if misfit is None:
        return "The misfit prior was not estimated (no `reports/misfit_prior/summary.json`)."
    off, spr = _get(misfit, "offset_mm", "mean"), _get(misfit, "spread_mm", "mean")
    cv0 = misfit.get("mean_vertex_error_cross_validated_mm")
    cv1 = misfit.get("mean_vertex_error_cross_validated_with_prior_mm")
    by_region = misfit.get("offset_by_region_mm") or {}
    regions = ", ".join(f"{k} {_f(v)}" for k, v in by_region.items() if k != "all")
    text = (
        f"Estimated on {misfit.get('count')} fresh occluder-free synthetic faces: mean offset magnitude "
        f"{_f(off)} mm (95th percentile {_f(_get(misfit, 'offset_mm', 'p95'))} mm; by region, mm: {regions}), "
        f"per-vertex spread {_f(spr)} mm. On held-out synthetic faces (two-fold) the mean per-vertex error after "
        f"rigid alignment goes from {_f(cv0)} to {_f(cv1)} mm with the prior. "
    )
    if d is None:
        return text
    if d < 0:
        return text + f"On the NoW-layout set it lowers the mean error by {_f(-d, 3)} mm."
    why = [MISFIT_REASONS[r] for r in misfit_prior_reasons(misfit)]
    return (
        text + f"On the NoW-layout set it does **not** lower the mean error: it changes it by {_f(d, 3)} mm "
        f"(median {_f(summary['now'].get('misfit_prior_median_change_mm'), 3)} mm). Likely reasons: "
        + "; ".join(why)
        + "."
    )


def missed_target_notes(now: dict | None, ar: dict | None, summary: dict) -> dict[str, str]:
    """Diagnostics for each missed target, from the numbers (what limits it on this data): a note per topic,
    ``occlusion_vs_autoencoder``, ``f1_<subset>`` and ``trivial_mask`` (FOCUS's mask is the all-face one)."""
    t = summary["targets"]
    notes = {}
    if t.get("occlusion_15pct_below_autoencoder") is False:
        a_occ = _get(now, "autoencoder", "multiview_occlusions", "median")
        a_neu = _get(now, "autoencoder", "multiview_neutral", "median")
        f_neu = _get(now, "focus", "multiview_neutral", "median")
        if a_occ and a_neu:
            notes["occlusion_vs_autoencoder"] = (
                f"Occlusion gain over the autoencoder: the autoencoder's own occlusion / neutral median ratio is "
                f"{a_occ / a_neu:.3f} ({100 * (a_occ / a_neu - 1):+.1f} %), i.e. the occluders of this set "
                f"{'barely ' if a_occ / a_neu < 1.05 else ''}raise the baseline's error; FOCUS's neutral median is "
                f"{_f(f_neu)} mm against the autoencoder's {_f(a_neu)} mm, so a 15 % gain on the occlusion "
                f"challenge would need FOCUS to be better on unoccluded faces as well."
            )
    for sub in ("sunglasses", "scarf"):
        if t.get(f"f1_{sub}_gain_over_pseudo_mask") is False or t.get(f"f1_{sub}_at_least_085") is False:
            steps = [("pseudo mask", _get(ar, "pseudo_mask", sub, "f1"))]
            steps += [(f"round {int(k.rsplit('_', 1)[1])}", _get(ar, k, sub, "f1")) for k in _round_keys(ar or {})]
            trail = ", ".join(f"{name} {_f(v, 3)}" for name, v in steps)
            prec, rec = _get(ar, "focus", sub, "precision"), _get(ar, "focus", sub, "recall")
            ae = _get(ar, "autoencoder", sub, "f1")
            notes[f"f1_{sub}"] = (
                f"F1 on {sub}: per step {trail}; FOCUS precision {_f(prec, 3)}, recall {_f(rec, 3)} "
                f"({'visible face called outlier' if (rec or 0) < 0.5 or (rec or 0) <= (prec or 0) else 'occluders called face'}); "
                f"calling every rendered pixel face (the autoencoder) gives {_f(ae, 3)}."
            )
    trivial = [sub for sub in ("sunglasses", "scarf") if trivial_mask(ar, sub)]
    if trivial:
        notes["trivial_mask"] = (
            f"FOCUS's mask on {' and '.join(trivial)} is (almost) the trivial one that calls every rendered pixel "
            f"face (F1 within 0.01 of the autoencoder row, recall above 0.99): the segmentation targets that are "
            f"met there are met without segmenting anything."
        )
    return notes


def trivial_mask(ar: dict | None, sub: str) -> bool:
    """Whether FOCUS's mask on ``sub`` is about the all-face mask (F1 of the autoencoder row, recall ~1)."""
    f1, f1a, rec = _get(ar, "focus", sub, "f1"), _get(ar, "autoencoder", sub, "f1"), _get(ar, "focus", sub, "recall")
    return None not in (f1, f1a, rec) and abs(f1 - f1a) < 0.01 and rec > 0.99


# ---------------------------------------------------------------------------- plots
def rounds_table(now: dict | None, ar: dict | None) -> list[dict]:
    """One row per step: the autoencoder / pseudo mask (step 0), every EM round, with NoW median and F1."""
    keys = sorted(set(_round_keys(now or {})) | set(_round_keys(ar or {})))
    steps = [(0, "init", "autoencoder", "pseudo_mask")] + [
        (int(k.rsplit("_", 1)[1]), f"round {int(k.rsplit('_', 1)[1])}", k, k) for k in keys
    ]
    rows = []
    for step, label, nk, ak in steps:
        rows.append(
            {
                "step": step,
                "label": label,
                "now_median_all": _get(now, nk, "all", "median"),
                "now_median_occlusions": _get(now, nk, "multiview_occlusions", "median"),
                "now_median_neutral": _get(now, nk, "multiview_neutral", "median"),
                "f1_sunglasses": _get(ar, ak, "sunglasses", "f1"),
                "f1_scarf": _get(ar, ak, "scarf", "f1"),
                "f1_unoccluded": _get(ar, ak, "unoccluded", "f1"),
            }
        )
    return rows


def plot_rounds(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nan = float("nan")
    x = [r["step"] for r in rows]
    fig = Figure(figsize=(10.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    for key, style in (("now_median_all", "o-"), ("now_median_occlusions", "s-"), ("now_median_neutral", "^--")):
        ax.plot(
            x,
            [r[key] if r[key] is not None else nan for r in rows],
            style,
            label=key.replace("now_median_", "median: "),
        )
    ax.set_title("NoW-layout set: median error (mm)")
    ax.set_xlabel("EM round (0: initialised encoder, no segmentation)")
    ax = fig.add_subplot(1, 2, 2)
    for key, style in (("f1_sunglasses", "o-"), ("f1_scarf", "s-"), ("f1_unoccluded", "^--")):
        ax.plot(x, [r[key] if r[key] is not None else nan for r in rows], style, label=key.replace("f1_", "F1 "))
    ax.set_title("AR-layout set: F1 of the face class (soft)")
    ax.set_xlabel("EM round (0: pseudo mask z(p))")
    for a in fig.axes:
        a.set_xticks(x)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


def write_rounds_csv(rows: list[dict], path: Path) -> None:
    cols = [
        "step",
        "now_median_all",
        "now_median_occlusions",
        "now_median_neutral",
        "f1_sunglasses",
        "f1_scarf",
        "f1_unoccluded",
    ]
    lines = [",".join(cols)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else str(r[c]) for c in cols))
    write_text_atomic(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------- the documents
METRIC_KEYS_DOC = """\
| file | keys | meaning |
|---|---|---|
| `reports/eval/now/metrics.json` | `<model>.<challenge>.{median,mean,std}` | NoW protocol errors in mm; `<challenge>` is `multiview_neutral`, `multiview_expressions`, `multiview_occlusions`, `selfie` or `all` |
| | `<model>.<challenge>.id_corr` | identity correlation (first 10 coefficients, predicted vs. true, across \
images; synthetic sets with 3 or more images only) |
| `reports/eval/ar/metrics.json` | `<model>.<subset>.{accuracy,precision,recall,f1,iou}` and `..._std` | face-class segmentation inside the rendered face, soft mask, mean / std over images; `<subset>` is `unoccluded`, `sunglasses`, `scarf` |
| | `<model>.<subset>.hard.{accuracy,...,iou}` and `..._std` | the same with the mask thresholded at 0.5 |
| `reports/eval/summary.json` | `now.*`, `ar.*`, `targets.*` | target values (ratios, gains, `now.vs_mean_face.<model>.*`: median relative to the mean face's) and verdicts |
| | `identity_oracle.*` | the supervised identity oracle (bench result `bench/results/identity_oracle_cpu.json`, not this run) |
| `reports/misfit_prior/summary.json` | `offset_mm.*`, `spread_mm.*`, `mean_vertex_error_*` | size of the misfit prior and its effect on synthetic faces |

`<model>` is `mean_face` (NoW only: the face model's mean shape for every image), `autoencoder` (initialised
encoder, no segmentation), `pseudo_mask` (AR only: the robust
pseudo mask z(p) of the initialised encoder; its shape is the autoencoder's), `focus_round_XX` (after
EM round XX), `focus` (the trained model) and `focus_prior` (NoW only: FOCUS with the misfit prior)."""


#: Identity correlation (first 10 coefficients) below which the encoder counts as not following identity
#: (a validation target, docs/evaluation.md 4).
IDENTITY_CORR_LEARNT = 0.3


def identity_not_learnt(em_summary: dict) -> bool:
    """Whether the EM's final identity correlation is known and below :data:`IDENTITY_CORR_LEARNT` in magnitude."""
    corr = em_summary.get("id_corr_end")
    return corr is not None and abs(corr) < IDENTITY_CORR_LEARNT


def training_section(em: dict | None) -> list[str]:
    """Markdown lines: the EM stage's held-out validation per phase (``reports/train/em_metrics.json``)
    and its two targets (segmentation F1 on occluded images, neutral-shape error), with the
    references that say what the numbers mean (the all-face mask, the mean face, how far the
    predicted identity follows the truth)."""
    if not em or not em.get("records"):
        return []
    cols = (
        ("f1_occluded", "F1 occl.", 3),
        ("f1_allface_occluded", "F1 occl., all-face mask", 3),
        ("f1_unoccluded", "F1 unoccl.", 3),
        ("photo", "photometric", 3),
        ("landmark_px", "landmarks (px)", 2),
        ("shape_mm_occluded", "shape occl. (mm)", 3),
        ("shape_mm_mean_face", "mean face (mm)", 3),
        ("id_corr", "identity corr.", 2),
    )
    lines = [
        "## Training: EM rounds on held-out synthetic images",
        "",
        "Validation after every phase (`reports/train/em_metrics.json`; `init` is the initialised encoder with its "
        "robust-loss pseudo masks, `pretrain_seg` the U-Net trained on them). *F1 occl., all-face mask*: calling "
        "every rendered pixel face; *mean face*: the neutral-shape error of identity 0; *identity corr.*: "
        "correlation of the predicted with the true identity coefficients (first 10) across images.",
        "",
        "| phase | " + " | ".join(c[1] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for r in em["records"]:
        lines.append(f"| `{r.get('phase')}` | " + " | ".join(_f(r.get(k), nd) for k, _, nd in cols) + " |")
    sm = em.get("summary") or {}
    if sm:
        gain, red = sm.get("f1_occluded_gain"), sm.get("shape_occluded_reduction")
        ok_f1 = gain is not None and gain >= sm.get("target_f1_gain", 0.05)
        ok_sh = red is not None and red >= sm.get("target_shape_reduction", 0.10)
        lines += [
            "",
            "| EM target (occluded held-out images, end vs. `init`) | value | met |",
            "|---|---|---|",
            f"| segmentation F1 at least {_f(sm.get('target_f1_gain'), 2)} above the pseudo masks | "
            f"{_f(sm.get('f1_occluded_start'), 3)} -> {_f(sm.get('f1_occluded_end'), 3)} (gain {_f(gain, 3)}) | "
            f"{'yes' if ok_f1 else '**no**'} |",
            f"| neutral-shape error at least {_f(100 * sm.get('target_shape_reduction', 0.1), 0)} % lower | "
            f"{_f(sm.get('shape_mm_occluded_start'), 3)} -> {_f(sm.get('shape_mm_occluded_end'), 3)} mm "
            f"({_f(None if red is None else 100 * red, 1)} %) | {'yes' if ok_sh else '**no**'} |",
        ]
        corr, mean_face = sm.get("id_corr_end"), sm.get("shape_mm_mean_face_end")
        if not ok_sh and identity_not_learnt(sm):
            lines += [
                "",
                f"Why the shape target is missed: the encoder has not learnt identity at this scale (identity "
                f"correlation {_f(sm.get('id_corr_start'), 2)} after `init`, {_f(corr, 2)} at the end): its neutral "
                f"shape is nearly the same for every face, a constant offset from the mean face (which alone scores "
                f"{_f(mean_face, 3)} mm). That offset is the same on occluded and unoccluded images "
                f"({_f(sm.get('shape_mm_occluded_start'), 3)} vs. {_f(sm.get('shape_mm_start'), 3)} mm over all after "
                f"`init`), so excluding occluders cannot lower it. The supervised oracle of the identity table "
                f"below bounds what the weakly supervised losses can reach at this scale.",
            ]
    return lines + [""]


def seeds_section(doc: dict | None) -> list[str]:
    """Markdown lines: the default's target numbers over training seeds (``bench/results/seeds_cpu.json``)."""
    from focus.eval.seeds import seeds_table

    if not doc or len(doc.get("runs") or []) < 2:
        return []
    return [
        "## Seeds",
        "",
        f"The default pipeline trained with {len(doc['runs'])} seeds (`train.seed` "
        f"{', '.join(str(s) for s in doc.get('seeds') or [])}; face model, synthetic sets and identity network "
        "shared): per-seed values, mean ± sample standard deviation, and each target judged on the mean "
        "(`bench/results/seeds_cpu.json`, `python -m focus.eval.seeds collect`). The committed run above is "
        f"seed {doc['runs'][0].get('seed')}. Relative changes: negative is better (below the baseline).",
        "",
        seeds_table(doc),
        "",
    ]


def seeds_line(doc: dict | None) -> str:
    """One sentence for the README block: the spread of the headline numbers over seeds (empty without them)."""
    runs = (doc or {}).get("runs") or []
    sm = (doc or {}).get("summary") or {}
    if len(runs) < 2 or not sm:
        return ""
    mean, std, met = sm.get("mean") or {}, sm.get("std_sample") or {}, sm.get("met_on_mean") or {}

    def pm(key: str, pct: bool, nd: int = 3) -> str:
        m, s = mean.get(key), std.get(key)
        if m is None:
            return "–"
        if pct:
            return f"{100 * m:+.1f} ± {100 * (s or 0):.1f} %"
        return f"{m:.{nd}f} ± {(s or 0):.{nd}f}"

    n_met = sum(1 for v in met.values() if v)
    return (
        f"Over {len(runs)} training seeds (mean ± std): FOCUS + misfit prior NoW-like median vs. mean face "
        f"{pm('now_prior_median_vs_mean_face', True)} (FOCUS alone {pm('now_focus_median_vs_mean_face', True)}); "
        f"occlusion median vs. autoencoder {pm('now_prior_occlusion_vs_autoencoder', True)}; held-out shape vs. "
        f"mean face {pm('shape_unoccluded_vs_mean_face', True)} unoccluded, "
        f"{pm('shape_occluded_vs_mean_face', True)} occluded; identity corr. {pm('id_corr', False, 2)}; "
        f"F1 sunglasses {pm('ar_f1_sunglasses', False)}, scarf {pm('ar_f1_scarf', False)}. Seed-averaged targets "
        f"met on the mean: {n_met} of {len(met)} ([table](reports/README.md#seeds))."
    )


def identity_oracle(doc: dict | None, params: dict) -> dict | None:
    """The supervised identity oracle's last record (``bench/identity_oracle.py``'s committed result) and
    whether it was measured at the default's scale (image size, encoder, batch size of ``params``).

    Returns ``None`` without a bench result; else ``steps``, ``shape_mm``, ``shape_mm_occluded``,
    ``shape_mm_mean_face``, ``id_corr`` (held-out synthetic validation, like ``reports/train/em_metrics.json``),
    ``scale`` (what the bench ran at) and ``mismatch`` (``{setting: [bench, default]}``, empty when it matches).
    """
    records = (doc or {}).get("records") or []
    if not records:
        return None
    last = records[-1]
    train = params.get("train") or {}
    enc = train.get("encoder")
    default = {
        "image_size": _get(params, "render", "image_size"),
        "encoder": enc.get("arch") if isinstance(enc, dict) else enc,
        "batch_size": train.get("batch_size"),
    }
    scale = {k: doc.get(k) for k in default}
    mismatch = {k: [scale[k], v] for k, v in default.items() if v is not None and scale[k] != v}
    out = {k: last.get(k) for k in ("shape_mm", "shape_mm_occluded", "shape_mm_mean_face", "id_corr")}
    return {"steps": last.get("step", doc.get("steps")), **out, "scale": scale, "mismatch": mismatch}


def _oracle_label(oracle: dict) -> str:
    sc = oracle["scale"]
    text = (
        f"supervised identity oracle (bench, trained *with* the true coefficients; {sc.get('encoder')}, "
        f"{sc.get('image_size')} px, batch {sc.get('batch_size')}, {oracle['steps']} steps)"
    )
    if oracle["mismatch"]:
        diff = ", ".join(f"{k} {a} vs. {b}" for k, (a, b) in oracle["mismatch"].items())
        text += f" -- **not at the default's scale** ({diff}: re-run `bench/identity_oracle.py`)"
    return text


def identity_section(em: dict | None, oracle: dict | None) -> list[str]:
    """Markdown lines: neutral-shape error and identity correlation on the held-out synthetic validation
    images -- the mean face (the trivial baseline), FOCUS after ``init`` and at the end of the EM
    (``reports/train/em_metrics.json``), and the supervised oracle as an upper bound (a bench result)."""
    sm = (em or {}).get("summary") or {}
    if not sm and oracle is None:
        return []
    mean_face = sm.get("shape_mm_mean_face_end", None if oracle is None else oracle["shape_mm_mean_face"])
    rows = [("mean face (identity 0): trivial baseline", mean_face, None, 0.0)]
    if sm:
        rows += [
            (
                f"FOCUS after `{sm.get('start_phase', 'init')}`",
                sm.get("shape_mm_start"),
                sm.get("shape_mm_occluded_start"),
                sm.get("id_corr_start"),
            ),
            (
                f"FOCUS after `{sm.get('end_phase', 'end')}`",
                sm.get("shape_mm_end"),
                sm.get("shape_mm_occluded_end"),
                sm.get("id_corr_end"),
            ),
        ]
    if oracle is not None:
        rows.append(
            (
                _oracle_label(oracle) + ": upper bound",
                oracle["shape_mm"],
                oracle["shape_mm_occluded"],
                oracle["id_corr"],
            )
        )
    lines = [
        "## Identity: held-out synthetic validation",
        "",
        "Neutral-shape error (mm, face region, after similarity alignment) and identity correlation (first 10 "
        "coefficients, across images) on the training's held-out synthetic images; *vs. mean face*: relative "
        "change of the error over all images. The oracle row is a bench measurement "
        "(`bench/results/identity_oracle_cpu.json`), not part of this pipeline run; it is supervised, so it bounds "
        "what the weakly supervised losses can reach at that scale.",
        "",
        "| model | shape (mm) | vs. mean face | shape occl. (mm) | identity corr. |",
        "|---|---|---|---|---|",
    ]
    for label, shape, occ, corr in rows:
        change = None if shape is None or not mean_face else shape / mean_face - 1.0
        lines.append(f"| {label} | {_f(shape, 3)} | {_pct(change)} | {_f(occ, 3)} | {_f(corr, 2)} |")
    if (
        oracle is not None
        and mean_face is not None
        and oracle["shape_mm_mean_face"] is not None
        and abs(oracle["shape_mm_mean_face"] - mean_face) > 1e-6
    ):
        lines += [
            "",
            f"The oracle's validation set differs from this run's: its mean face scores "
            f"{_f(oracle['shape_mm_mean_face'], 3)} mm there.",
        ]
    return lines + [""]


def now_section(now: dict | None) -> list[str]:
    """Markdown lines: the NoW tables of every model (the ``mean_face`` row first: the trivial baseline),
    the cumulative error curves and the example grid."""
    if not now:
        return []
    keys = list(now)
    partial = [k for k in keys if k.startswith("focus_round_") and "all" not in now[k]]
    note = (
        f" The EM rounds before the last ({', '.join(f'`{k}`' for k in partial)}) are scored on the challenges "
        f"of `eval.round_challenges` only."
        if partial
        else ""
    )
    return [
        "## Shape: NoW protocol",
        "",
        "Median error per challenge and median / mean / std over all images (mm); `mean_face` is the face model's "
        "mean shape for every image, scored the same way." + note,
        "",
        now_table(now, keys),
        "",
        "Median / mean / std per challenge (mm):",
        "",
        now_challenge_table(now, keys),
        "",
        "![cumulative error](eval/now/cumulative_error.png)",
        "",
        "Occlusion challenge, best and worst FOCUS reconstructions (input, autoencoder, FOCUS, FOCUS mask, true mask):",
        "",
        "![NoW examples](eval/now/examples.png)",
        "",
    ]


def constant_face(doc: dict | None, now: dict | None) -> list[dict]:
    """Rows of ``bench/results/now_constant_face.json`` (``bench/now_constant_face.py``): per model, its NoW-like
    median over all images, that of its *average* prediction used for every image, and the mean face's, with
    ``share``: the part of the model's gain over the mean face that the constant average already gets, and
    ``stale``: the bench scored another run than ``now`` (its model median differs)."""
    rows = []
    for key, r in ((doc or {}).get("results") or {}).items():
        model, avg, base = (_get(r, k, "all") for k in ("model", "average_face", "mean_face"))
        if model is None or avg is None or base is None:
            continue
        current = _get(now, key, "all", "median")
        gain = base - model
        rows.append(
            {
                "key": key,
                "model": model,
                "average_face": avg,
                "mean_face": base,
                "share": (base - avg) / gain if gain > 0 else None,
                "spread_mm": r.get("mean_vertex_distance_to_average_mm"),
                "stale": current is None or abs(float(current) - float(model)) > 1e-3,
            }
        )
    return rows


def constant_face_section(rows: list[dict]) -> list[str]:
    """Markdown lines: how much of each model's NoW-like score a constant face (its average prediction) gets."""
    if not rows:
        return []
    lines = [
        "## Shape: per-face or constant?",
        "",
        "A model that has not learnt identity can still beat the mean face with a better *average* shape. "
        "`bench/now_constant_face.py` averages the model's kept NoW-like predictions and scores that one face for "
        "every image with the same protocol (`bench/results/now_constant_face.json`, a bench result, not this "
        "pipeline run). *Share*: the part of the model's gain over the mean face that the constant already gets.",
        "",
        "| model | its median | its average face, every image | mean face | share of the gain | mean distance to its average (mm) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = "–" if r["share"] is None else f"{100 * r['share']:.0f} %"
        stale = " (**measured on another run**: re-run the bench)" if r["stale"] else ""
        lines.append(
            f"| {method_label(r['key'])}{stale} | {_f(r['model'], 3)} | {_f(r['average_face'], 3)} | "
            f"{_f(r['mean_face'], 3)} | {share} | {_f(r['spread_mm'], 2)} |"
        )
    return lines + [""]


def constant_face_line(rows: list[dict]) -> str:
    """One sentence for the README block (empty without a current bench result)."""
    parts = [
        f"{method_label(r['key'])}'s own average face, used for every image, scores {_f(r['average_face'], 3)} mm "
        f"({100 * r['share']:.0f} % of its gain over the mean face)"
        for r in rows
        if not r["stale"] and r["share"] is not None
    ]
    if not parts:
        return ""
    return (
        "Per-face or constant? On the NoW-like set, "
        + "; ".join(parts)
        + ": the gain is mostly a better constant shape ([details](reports/README.md#shape-per-face-or-constant))."
    )


def ar_section(ar: dict | None, ar_details: dict | None) -> list[str]:
    """Markdown lines: the AR tables per subset (the autoencoder row is the all-face mask), the whole-face-region
    F1 where the set has true face regions, and the example grids."""
    if not ar:
        return []
    keys = list(ar)
    subsets = ("unoccluded", "sunglasses", "scarf")
    parts = [
        "## Segmentation: AR protocol",
        "",
        "Per image inside the rendered face region of the prediction; soft mask as predicted (mean ± std "
        "over images) and thresholded at 0.5. The face-class F1 flatters any mask that calls most pixels face "
        "(compare the all-face rows); the occluder F1 / IoU (soft) score the outliers themselves: the all-face "
        "mask gets 0. On the unoccluded subset there is (almost) no occluder to find, so the occluder values "
        "there only show false alarms.",
        "",
    ]
    for sub in subsets:
        n = _get(ar_details, "images", sub)
        parts += [f"### {sub}" + (f" ({n} images)" if n else ""), "", ar_table(ar, keys, sub), ""]
    wf = _get(ar_details, "whole_true_face_region")
    if wf and any(wf.get(k, {}).get(s) for k in wf for s in wf[k]):
        parts += [
            "Over the whole true face region (synthetic data; a true face pixel the reconstruction does not "
            "cover counts as predicted non-face), F1 soft / thresholded:",
            "",
            "| model | " + " | ".join(subsets) + " |",
            "|---|---|---|---|",
        ]
        for k in keys:
            cells = [
                f"{_f(_get(wf, k, s, 'face_region_soft', 'f1'), 3)} / {_f(_get(wf, k, s, 'face_region_hard', 'f1'), 3)}"
                for s in subsets
            ]
            parts.append(f"| `{k}` | " + " | ".join(cells) + " |")
        parts.append("")
    return parts + [
        "Best and worst FOCUS segmentations on the occluded subsets (input, reconstruction, FOCUS mask, "
        "pseudo mask, true mask; white = face):",
        "",
        "![best](eval/ar/examples_best.png)",
        "",
        "![worst](eval/ar/examples_worst.png)",
        "",
    ]


def celebahq_section(celeb: dict | None, details: dict | None) -> list[str]:
    """Markdown lines: the CelebAMask-HQ table (stage ``eval_celebahq``), every model beside the trivial masks."""
    if not celeb:
        return []
    synthetic = bool(_get(details, "synthetic")) if details else True
    src = (
        "the AR-like synthetic set written in the CelebAMask-HQ layout (`eval.celebahq_dir` unset)"
        if synthetic
        else f"CelebAMask-HQ `{_get(details, 'dataset')}`"
    )
    parts = (details or {}).get("face_parts") or []
    return [
        "## Segmentation: CelebAMask-HQ protocol",
        "",
        f"{_get(details, 'images') or '?'} images of {src}; visible face = final part label in "
        f"{', '.join(parts) or '?'} (docs/evaluation.md 2.1); metrics as the AR tables.",
        "",
        ar_table(celeb, list(celeb), "celebahq"),
        "",
    ]


def build_report(
    now: dict | None,
    ar: dict | None,
    summary: dict,
    misfit: dict | None,
    now_details: dict | None,
    ar_details: dict | None,
    params: dict,
    train_plot: bool,
    em: dict | None = None,
    oracle: dict | None = None,
    celeb: dict | None = None,
    celeb_details: dict | None = None,
    ablations: bool = False,
    seeds: dict | None = None,
    constant: list[dict] | None = None,
) -> str:
    synth_now = bool(_get(now_details, "synthetic")) if now_details else True
    synth_ar = bool(_get(ar_details, "synthetic")) if ar_details else True
    rounds = int((params.get("em") or {}).get("rounds", 0))
    parts = [
        "# Results",
        "",
        "Generated by the `report` stage (`focus/eval/report.py`) from the metrics files; do not edit by hand. "
        "Re-create with `dvc repro report`; compare with `dvc metrics diff` / `dvc plots diff`.",
        "",
        f"Data: NoW-layout set `{_get(now_details, 'dataset') or '?'}` ({'synthetic' if synth_now else 'real'}), "
        f"AR-layout set `{_get(ar_details, 'dataset') or '?'}` ({'synthetic' if synth_ar else 'real'}); "
        f"EM rounds: {rounds}.",
        "",
        "## Headline",
        "",
        headline(now, ar, synth_now, synth_ar),
        "",
        "## Targets",
        "",
        _target_rows(summary),
        "",
    ]
    notes = missed_target_notes(now, ar, summary)
    if notes:
        parts += ["Notes on the targets (from the numbers below):", ""] + [f"* {n}" for n in notes.values()] + [""]
    parts += (
        now_section(now)
        + constant_face_section(constant or [])
        + ar_section(ar, ar_details)
        + celebahq_section(celeb, celeb_details)
    )
    if ablations:
        parts += [
            "## Ablations",
            "",
            "The ablation table (DVC experiments, `make ablations`): [ablations.md](ablations.md).",
            "",
        ]
    parts += ["## EM rounds", "", "![rounds](eval/rounds.png)", ""]
    parts += training_section(em)
    if train_plot:
        parts += [
            "Validation during training (held-out synthetic training images):",
            "",
            "![training](train/em_rounds.png)",
            "",
        ]
    parts += identity_section(em, oracle)
    parts += seeds_section(seeds)
    parts += [
        "## Misfit prior",
        "",
        misfit_text(summary, misfit),
        "",
        "![misfit prior](misfit_prior/offset.png)",
        "",
        "## Metric keys",
        "",
        METRIC_KEYS_DOC,
        "",
        "## Reproduce and compare",
        "",
        "```\ndvc repro                      # the whole pipeline, ends with this report\n"
        "dvc metrics show               # every number above\n"
        "dvc metrics diff HEAD~1        # against the previous commit\n"
        "dvc plots diff HEAD~1          # curves and pictures side by side\n"
        "dvc exp run -S em.rounds=1     # e.g. fewer EM rounds\n"
        "dvc exp show                   # compare experiments\n```",
        "",
    ]
    return "\n".join(parts)


def identity_line(em: dict | None, oracle: dict | None) -> str:
    """One sentence for the README block: FOCUS's identity on the held-out validation beside the mean face
    and the supervised oracle (empty without either)."""
    sm = (em or {}).get("summary") or {}
    parts = []
    if sm.get("shape_mm_end") is not None:
        parts.append(f"FOCUS {_f(sm.get('shape_mm_end'), 3)} mm, identity corr. {_f(sm.get('id_corr_end'), 2)}")
    mean_face = sm.get("shape_mm_mean_face_end", None if oracle is None else oracle["shape_mm_mean_face"])
    if mean_face is not None:
        parts.append(f"mean face {_f(mean_face, 3)} mm (corr. 0)")
    if oracle is not None:
        parts.append(
            f"upper bound: {_oracle_label(oracle)} {_f(oracle['shape_mm'], 3)} mm, corr. {_f(oracle['id_corr'], 2)}"
        )
    if not parts:
        return ""
    return "Identity on held-out synthetic validation images (neutral-shape error): " + "; ".join(parts) + "."


def readme_block(
    now: dict | None,
    ar: dict | None,
    summary: dict,
    now_details: dict | None,
    ar_details: dict | None,
    em: dict | None = None,
    oracle: dict | None = None,
    links: Sequence[tuple[str, str]] = (),
    seeds: dict | None = None,
    constant: list[dict] | None = None,
) -> str:
    synth_now = bool(_get(now_details, "synthetic")) if now_details else True
    synth_ar = bool(_get(ar_details, "synthetic")) if ar_details else True
    met = summary["targets"]
    n_met = sum(1 for k, v in met.items() if k != "all_met" and v)
    n_all = sum(1 for k in met if k != "all_met")
    return "\n".join(
        [
            START_MARKER,
            "<!-- generated by the report stage (reports/results_block.md); copy it here with `make readme` -->",
            "",
            headline(now, ar, synth_now, synth_ar),
            "",
            *([identity_line(em, oracle), ""] if identity_line(em, oracle) else []),
            *([constant_face_line(constant or []), ""] if constant_face_line(constant or []) else []),
            *([seeds_line(seeds), ""] if seeds_line(seeds) else []),
            f"Targets met: {n_met} of {n_all} (details, all baselines, EM rounds and pictures: [reports/README.md](reports/README.md))."
            + (
                ""
                if not any(trivial_mask(ar, s) for s in ("sunglasses", "scarf"))
                else " Note: FOCUS's mask is currently the trivial all-face mask on the occluded AR subsets (see the report)."
            ),
            "",
            *([("Also: " + ", ".join(f"[{label}]({target})" for label, target in links) + "."), ""] if links else []),
            END_MARKER,
        ]
    )


def results_block_path(paths) -> Path:
    """``reports/results_block.md``: beside ``reports/README.md`` (a declared output of the report stage)."""
    return Path(paths.report_md).with_name(RESULTS_BLOCK_NAME)


def readme_with_block(readme: Path, block: str) -> str:
    """The text of ``readme`` with its marked block replaced by ``block`` (which carries the markers).

    Raises :class:`focus.errors.InputFileError` when ``readme`` is missing or has no marked block.
    """
    readme, block = Path(readme), block.strip("\n")
    if not readme.is_file():
        raise InputFileError(readme, "not found", "run from the project root or pass --readme")
    text = readme.read_text(encoding="utf-8")
    i, j = text.find(START_MARKER), text.find(END_MARKER)
    if i < 0 or j < i:
        raise InputFileError(
            readme,
            f"has no block between {START_MARKER} and {END_MARKER}",
            "add the two markers where the results belong",
        )
    if not (block.startswith(START_MARKER) and block.endswith(END_MARKER)):
        raise FocusError(
            f"the results block does not start with {START_MARKER} and end with {END_MARKER}; "
            "re-run the report stage (dvc repro report)"
        )
    return text[:i] + block + text[j + len(END_MARKER) :]


def update_readme(readme: Path, block: str) -> bool:
    """Put ``block`` into the marked block of ``readme`` (atomically); ``True`` if the file changed."""
    new = readme_with_block(readme, block)
    if new == Path(readme).read_text(encoding="utf-8"):
        return False
    write_text_atomic(readme, new)
    return True


def _link(target: Path, readme: Path) -> str:
    """``target`` as a link in ``readme`` (relative to the README's folder, POSIX separators)."""
    return Path(os.path.relpath(Path(target).resolve(), Path(readme).resolve().parent)).as_posix()


def write_reports(params: dict, paths) -> dict:
    """The ``report`` stage (see the module docstring); returns ``reports/eval/summary.json``'s content."""
    now = _read(paths.reports / "now" / "metrics.json")
    ar = _read(paths.reports / "ar" / "metrics.json")
    now_details = _read(paths.reports / "now" / "details.json")
    ar_details = _read(paths.reports / "ar" / "details.json")
    misfit = _read(paths.misfit_reports / "summary.json")
    summary = check_targets(now, ar)
    oracle = identity_oracle(_read(paths.identity_oracle), params)
    if oracle is not None:
        summary["identity_oracle"] = oracle
    summary["synthetic"] = {
        "now": bool(_get(now_details, "synthetic")) if now_details else None,
        "ar": bool(_get(ar_details, "synthetic")) if ar_details else None,
    }
    write_json_atomic(paths.reports / "summary.json", summary)
    rows = rounds_table(now, ar)
    plot_rounds(rows, paths.reports / "rounds.png")
    write_rounds_csv(rows, paths.reports / "rounds.csv")
    train_plot = (paths.train_reports / "em_rounds.png").is_file()
    em = _read(paths.train_reports / "em_metrics.json")
    celeb = _read(paths.reports / "celebahq" / "metrics.json")
    celeb_details = _read(paths.reports / "celebahq" / "details.json")
    seeds = _read(paths.seeds)
    constant = constant_face(_read(paths.constant_face), now)
    ablations_md = paths.report_md.parent / "ablations.md"  # written by `make ablations`, not by a stage
    text = build_report(
        now,
        ar,
        summary,
        misfit,
        now_details,
        ar_details,
        params,
        train_plot,
        em,
        oracle,
        celeb,
        celeb_details,
        ablations_md.is_file(),
        seeds,
        constant,
    )
    write_text_atomic(paths.report_md, text)
    links = []
    if ablations_md.is_file():
        links.append(("ablation table", _link(ablations_md, paths.project_readme)))
    if celeb:
        links.append(("CelebAMask-HQ-protocol segmentation", _link(paths.report_md, paths.project_readme)))
    block = readme_block(now, ar, summary, now_details, ar_details, em, oracle, links, seeds, constant)
    write_text_atomic(results_block_path(paths), block + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m focus.eval.report`` (``make readme``): copy the report stage's results block into README.md."""
    p = argparse.ArgumentParser(
        prog="python -m focus.eval.report",
        description="Copy the results block the report stage wrote (reports/results_block.md) between the "
        f"{START_MARKER} and {END_MARKER} markers of README.md. Run after `dvc repro`.",
    )
    p.add_argument(
        "--block", type=Path, default=Path("reports") / RESULTS_BLOCK_NAME, help="the block file (default: %(default)s)"
    )
    p.add_argument("--readme", type=Path, default=Path("README.md"), help="the README to update (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when the README's block differs")
    a = p.parse_args(argv)
    try:
        if not a.block.is_file():
            raise InputFileError(a.block, "not found", "run the report stage first (dvc repro report)")
        block = a.block.read_text(encoding="utf-8")
        if a.check:
            if readme_with_block(a.readme, block) != a.readme.read_text(encoding="utf-8"):
                print(f"{a.readme}: the results block differs from {a.block}; run `make readme`", file=sys.stderr)
                return 1
            print(f"{a.readme}: the results block matches {a.block}")
            return 0
        changed = update_readme(a.readme, block)
    except FocusError as exc:
        print(f"focus.eval.report: error: {exc}", file=sys.stderr)
        return 1
    print(f"{a.readme}: results block {'updated from' if changed else 'already matches'} {a.block}")
    return 0


__all__ = [
    "END_MARKER",
    "PUBLISHED_NOW",
    "START_MARKER",
    "build_report",
    "celebahq_section",
    "check_targets",
    "headline",
    "identity_line",
    "identity_not_learnt",
    "identity_oracle",
    "identity_section",
    "main",
    "mean_face_comparison",
    "misfit_prior_reasons",
    "misfit_text",
    "readme_block",
    "readme_with_block",
    "results_block_path",
    "rounds_table",
    "training_section",
    "update_readme",
    "write_reports",
]


if __name__ == "__main__":
    sys.exit(main())
