"""Target checks and report text from hand-made metrics (no models)."""

from __future__ import annotations

import pytest

from focus.eval.report import check_targets, headline, misfit_text, missed_target_notes, rounds_table


def now_metrics(focus_neu: float, focus_occ: float, ae_neu: float, ae_occ: float, prior_mean: float) -> dict:
    def row(neu, occ, mean):
        return {"multiview_neutral": {"median": neu, "mean": neu * 1.3, "std": 1.0},
                "multiview_occlusions": {"median": occ, "mean": occ * 1.3, "std": 1.0},
                "all": {"median": (neu + occ) / 2, "mean": mean, "std": 1.0}}

    return {"autoencoder": row(ae_neu, ae_occ, 1.5), "focus_round_01": {"multiview_neutral": {"median": 1.2, "mean": 1.5, "std": 1}},
            "focus": row(focus_neu, focus_occ, 1.3), "focus_prior": row(focus_neu, focus_occ, prior_mean)}


def ar_metrics(focus_f1: float, pseudo_f1: float, ae_f1: float = 0.8, focus_recall: float = 0.9) -> dict:
    def row(f1, rec=0.9):
        return {"accuracy": 0.9, "precision": 0.9, "recall": rec, "f1": f1, "iou": f1 - 0.1}

    subs = ("unoccluded", "sunglasses", "scarf")
    return {"autoencoder": {s: row(ae_f1, 1.0) for s in subs}, "pseudo_mask": {s: row(pseudo_f1) for s in subs},
            "focus_round_01": {s: row(0.5) for s in subs}, "focus": {s: row(focus_f1, focus_recall) for s in subs}}


def test_targets_met() -> None:
    s = check_targets(now_metrics(1.0, 1.05, 1.3, 1.4, 1.2), ar_metrics(0.9, 0.8))
    t = s["targets"]
    assert t["occlusion_within_10pct_of_neutral"] and t["occlusion_15pct_below_autoencoder"]
    assert t["f1_sunglasses_gain_over_pseudo_mask"] and t["f1_scarf_at_least_085"] and t["misfit_prior_lowers_mean"]
    assert t["all_met"]
    assert s["now"]["occlusion_over_neutral_median"] == pytest.approx(1.05)
    assert s["now"]["occlusion_median_reduction_vs_autoencoder"] == pytest.approx(0.25)
    assert s["now"]["misfit_prior_mean_change_mm"] == pytest.approx(-0.1)
    assert s["ar"]["scarf"]["f1_gain_vs_all_face"] == pytest.approx(0.1)
    assert missed_target_notes(now_metrics(1.0, 1.05, 1.3, 1.4, 1.2), ar_metrics(0.9, 0.8), s) == []


def test_targets_missed_with_margins_and_notes() -> None:
    now, ar = now_metrics(1.0, 1.2, 1.1, 1.12, 1.4), ar_metrics(0.84, 0.81)
    s = check_targets(now, ar)
    t = s["targets"]
    assert not t["occlusion_within_10pct_of_neutral"] and not t["occlusion_15pct_below_autoencoder"]
    assert not t["f1_sunglasses_gain_over_pseudo_mask"] and not t["f1_sunglasses_at_least_085"]
    assert not t["misfit_prior_lowers_mean"] and not t["all_met"]
    notes = missed_target_notes(now, ar, s)
    assert any("1.018" in n for n in notes)  # the autoencoder's own occlusion / neutral ratio 1.12 / 1.10
    assert any(n.startswith("F1 on scarf") and "round 1 0.500" in n for n in notes)
    text = misfit_text(s, {"count": 10, "offset_mm": {"mean": 0.1, "p95": 0.2}, "spread_mm": {"mean": 2.0},
                           "mean_vertex_error_cross_validated_mm": 2.0,
                           "mean_vertex_error_cross_validated_with_prior_mm": 2.0})
    assert "does **not** lower" in text and "0.100 mm" in text and "small against the per-face spread" in text


def test_trivial_all_face_mask_is_called_out() -> None:
    now, ar = now_metrics(1.0, 1.05, 1.3, 1.4, 1.2), ar_metrics(0.886, 0.6, ae_f1=0.886, focus_recall=1.0)
    notes = missed_target_notes(now, ar, check_targets(now, ar))
    assert any("trivial" in n for n in notes)


def test_headline_labels_published_numbers_and_synthetic_data() -> None:
    text = headline(now_metrics(1.0, 1.05, 1.3, 1.4, 1.2), ar_metrics(0.9, 0.8), True, True)
    assert "| 1.04 | 1.30 | 1.10 |" in text and "**real NoW test set**" in text
    assert "not on real NoW" in text
    real = headline(now_metrics(1.0, 1.05, 1.3, 1.4, 1.2), ar_metrics(0.9, 0.8), False, False)
    assert "not on real NoW" not in real and "real NoW validation" in real


def test_rounds_table_starts_with_the_initialisation() -> None:
    rows = rounds_table(now_metrics(1.0, 1.05, 1.3, 1.4, 1.2), ar_metrics(0.9, 0.8))
    assert [r["step"] for r in rows] == [0, 1]
    assert rows[0]["now_median_neutral"] == 1.3 and rows[0]["f1_scarf"] == 0.8  # autoencoder / pseudo mask
    assert rows[1]["now_median_all"] is None and rows[1]["f1_scarf"] == 0.5


def test_training_section_tables_and_identity_note() -> None:
    from focus.eval.report import training_section

    assert training_section(None) == [] and training_section({"records": []}) == []
    rec = {"phase": "init", "f1_occluded": 0.5, "f1_allface_occluded": 0.65, "f1_unoccluded": 0.6, "photo": 0.16,
           "landmark_px": 2.9, "shape_mm_occluded": 2.4, "shape_mm_mean_face": 2.0, "id_corr": 0.02}
    end = {**rec, "phase": "r2/rec", "f1_occluded": 0.7, "shape_mm_occluded": 2.3}
    summary = {"f1_occluded_start": 0.5, "f1_occluded_end": 0.7, "f1_occluded_gain": 0.2, "target_f1_gain": 0.05,
               "shape_mm_occluded_start": 2.4, "shape_mm_occluded_end": 2.3, "shape_occluded_reduction": 1 - 2.3 / 2.4,
               "target_shape_reduction": 0.1, "id_corr_start": 0.02, "id_corr_end": 0.03, "shape_mm_mean_face_end": 2.0,
               "shape_mm_start": 2.39}
    text = "\n".join(training_section({"records": [rec, end], "summary": summary}))
    assert "| `init` | 0.500 | 0.650 |" in text and "| `r2/rec` | 0.700 |" in text
    assert "0.500 -> 0.700 (gain 0.200) | yes |" in text
    assert "2.400 -> 2.300 mm (4.2 %) | **no** |" in text
    assert "has not learnt identity" in text
    # an encoder that follows the identity gets no such note
    learnt = {**summary, "id_corr_end": 0.8}
    assert "has not learnt identity" not in "\n".join(training_section({"records": [rec, end], "summary": learnt}))
