"""The evaluation stages end to end on a tiny project: files, metric keys, consistency of the reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eval_fixtures import make_project
from focus.errors import FocusError
from focus.eval import pipeline as P
from focus.eval.now_predictions import score_now, write_now_predictions
from focus.eval.report import END_MARKER, START_MARKER
from focus.geometry.mesh_io import read_mesh
from focus.now.landmark_io import read_landmarks

ROUNDS = 2
NOW_KEYS = ["autoencoder", "focus_round_01", "focus_round_02", "focus", "focus_prior"]
AR_KEYS = ["autoencoder", "pseudo_mask", "focus_round_01", "focus_round_02", "focus"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalpipe")
    params = make_project(root, rounds=ROUNDS)
    (root / "README.md").write_text(f"# Project\n\nintro\n\n{START_MARKER}\nstale\n{END_MARKER}\n\nmore text\n")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    try:
        for stage in (P.run_misfit_prior, P.run_eval_now, P.run_eval_ar, P.run_report):
            stage(params)
    finally:
        mp.undo()
    (root / "params.json").write_text(json.dumps(params))
    return root


def load(root: Path, rel: str) -> dict:
    return json.loads((root / rel).read_text())


def test_now_metrics_keys(project: Path) -> None:
    now = load(project, "reports/eval/now/metrics.json")
    assert list(now) == NOW_KEYS
    for k in NOW_KEYS:
        # earlier rounds are scored on the challenges of eval.round_challenges only (no 'all' then)
        expected = {"multiview_neutral", "multiview_occlusions"} if k == "focus_round_01" else set(P.NOW_CHALLENGES) | {"all"}
        assert set(now[k]) == expected, k
        for ch in now[k].values():
            assert set(ch) == {"median", "mean", "std"} and all(isinstance(v, float) and v >= 0 for v in ch.values())
    assert now["focus"] == now[f"focus_round_{ROUNDS:02d}"]  # the final model is the last round's


def test_ar_metrics_keys_and_trivial_baseline(project: Path) -> None:
    ar = load(project, "reports/eval/ar/metrics.json")
    assert list(ar) == AR_KEYS
    for k in AR_KEYS:
        assert set(ar[k]) == set(P.AR_SUBSETS)
        for row in ar[k].values():
            for m in ("accuracy", "precision", "recall", "f1", "iou"):
                assert 0.0 <= row[m] <= 1.0 and row[f"{m}_std"] >= 0.0 and 0.0 <= row["hard"][m] <= 1.0
    # no segmentation: every rendered pixel is called face, so nothing visible is missed
    assert all(ar["autoencoder"][s]["recall"] == pytest.approx(1.0) for s in P.AR_SUBSETS)
    details = load(project, "reports/eval/ar/details.json")
    assert details["images"] == {"unoccluded": 2, "sunglasses": 2, "scarf": 2}
    assert "face_region_soft" in details["whole_true_face_region"]["focus"]["scarf"]


def test_prior_is_subtracted_from_the_exported_shapes(project: Path) -> None:
    from focus.eval.misfit_prior import load_misfit_prior

    prior = load_misfit_prior(project / "models/misfit_prior.npz")
    a = sorted((project / "data/eval/now/predictions/focus").rglob("*.obj"))
    b = sorted((project / "data/eval/now/predictions/focus_prior").rglob("*.obj"))
    assert len(a) == len(b) == 8
    va, fa = read_mesh(a[0])
    vb, fb = read_mesh(b[0])
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_allclose(va - vb, prior.offset, atol=1e-4)
    lm = read_landmarks(b[0].with_suffix(".npy"))
    from synth_helpers import tiny_model

    np.testing.assert_allclose(lm, vb[tiny_model().now_landmarks7.numpy()], atol=1e-5)
    assert not (project / "data/eval/now/.tmp_predictions").exists()  # baselines are scored, not kept


def test_reports_and_readme_block(project: Path) -> None:
    now = load(project, "reports/eval/now/metrics.json")
    ar = load(project, "reports/eval/ar/metrics.json")
    summary = load(project, "reports/eval/summary.json")
    assert {"occlusion_within_10pct_of_neutral", "occlusion_15pct_below_autoencoder", "misfit_prior_lowers_mean",
            "f1_sunglasses_gain_over_pseudo_mask", "f1_scarf_at_least_085", "all_met"} <= set(summary["targets"])
    assert summary["ar"]["scarf"]["f1_gain_vs_pseudo_mask"] == pytest.approx(
        ar["focus"]["scarf"]["f1"] - ar["pseudo_mask"]["scarf"]["f1"], abs=1e-4)
    readme = (project / "README.md").read_text()
    assert readme.startswith("# Project\n\nintro\n\n" + START_MARKER) and readme.endswith(END_MARKER + "\n\nmore text\n")
    assert "stale" not in readme
    block = readme[readme.index(START_MARKER):]
    row = next(line for line in block.splitlines() if line.startswith("| FOCUS |"))
    assert f"| {now['focus']['all']['median']:.2f} | {now['focus']['all']['mean']:.2f} |" in row
    assert f"{ar['focus']['scarf']['f1']:.3f}" in row
    assert "real NoW test set" in block and "1.04" in block
    md = (project / "reports/README.md").read_text()
    for img in ("eval/now/cumulative_error.png", "eval/ar/examples_best.png", "misfit_prior/offset.png", "eval/rounds.png"):
        assert img in md and (project / "reports" / img).is_file()
    assert (project / "reports/eval/rounds.csv").read_text().count("\n") == 1 + 1 + ROUNDS
    header = (project / "reports/eval/now/cumulative_error_all.csv").read_text().splitlines()[0]
    assert header == "error_mm," + ",".join(k for k in NOW_KEYS if k != "focus_round_01")
    header = (project / "reports/eval/now/cumulative_error_occlusions.csv").read_text().splitlines()[0]
    assert header == "error_mm," + ",".join(NOW_KEYS)


def test_headline_goes_to_a_side_file_without_markers(project: Path, monkeypatch) -> None:
    from focus.eval.report import update_readme

    readme = project / "other_README.md"
    readme.write_text("# no markers\n")
    out = update_readme(readme, "BLOCK", project / "reports/README_headline.md")
    assert out == project / "reports/README_headline.md" and out.read_text() == "BLOCK\n"
    assert readme.read_text() == "# no markers\n"


def test_written_predictions_score_like_the_truth(project: Path, tmp_path: Path) -> None:
    """True neutral shapes written with the NoW writer score close to zero; missing ones fail by name."""
    from synth_helpers import tiny_model

    model = tiny_model()
    root = project / "data/synth/now"
    truth = np.load(root / "truth.npz")
    names = [str(n) for n in truth["names"]]
    import torch

    verts = model.shape(torch.as_tensor(truth["id"], dtype=torch.float32)).numpy()
    out = write_now_predictions(tmp_path / "pred", names, verts, model.triangles.numpy(), model.now_landmarks7.numpy())
    doc = score_now(root, out, tmp_path / "scores.json")
    assert doc["results"]["all"]["median"] < 0.5 and doc["results"]["all"]["num_images"] == len(names)
    (out / names[0]).with_suffix(".obj").unlink()
    with pytest.raises(FocusError, match="missing"):
        score_now(root, out, tmp_path / "scores2.json")
    doc = score_now(root, out, tmp_path / "scores3.json", allow_missing=True)
    assert doc["results"]["all"]["num_missing"] == 1


def test_real_data_options(project: Path, tmp_path: Path, monkeypatch) -> None:
    """A NoW folder whose landmark CSV lives elsewhere (eval.now_landmarks), an AR folder without
    face regions (real AR), and clear errors for what is missing."""
    import shutil

    from focus.errors import InputFileError
    from focus.eval.settings import EvalSettings

    now = tmp_path / "now"
    shutil.copytree(project / "data/synth/now", now)
    csv = tmp_path / "my_landmarks.csv"
    shutil.move(now / "landmarks.csv", csv)
    with pytest.raises(InputFileError, match="landmark CSV of the NoW pictures"):
        P.now_landmarks_csv(EvalSettings(now_dir=str(now)))
    assert P.now_landmarks_csv(EvalSettings(now_dir=str(now), now_landmarks=str(csv))) == csv

    ar = tmp_path / "ar"
    shutil.copytree(project / "data/synth/ar", ar)
    for sub in P.AR_SUBSETS:
        shutil.rmtree(ar / sub / "face_masks")
    params = json.loads((project / "params.json").read_text())
    params["eval"].update({"ar_dir": str(ar), "now_dir": str(now), "now_landmarks": str(csv)})
    monkeypatch.chdir(project)
    out = tmp_path / "reports"
    paths = P.EvalPaths(reports=out, work=tmp_path / "work")
    metrics = P.run_eval_ar(params, paths)
    assert metrics == load(project, "reports/eval/ar/metrics.json")  # same images, same numbers
    details = json.loads((out / "ar/details.json").read_text())
    assert details["synthetic"] is False and details["whole_true_face_region"]["focus"]["scarf"] == {}
    shutil.rmtree(ar / "scarf" / "masks")
    with pytest.raises(InputFileError, match="true visible-face masks"):
        P.run_eval_ar(params, paths)
