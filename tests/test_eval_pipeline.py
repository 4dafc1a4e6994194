"""The evaluation stages end to end on a tiny project: files, metric keys, consistency of the reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import make_project, md_row

from focus.errors import FocusError
from focus.eval import pipeline as P
from focus.eval.now_predictions import score_now, write_now_predictions
from focus.eval.report import END_MARKER, START_MARKER
from focus.geometry.mesh_io import read_mesh
from focus.now.landmark_io import read_landmarks

ROUNDS = 2
NOW_KEYS = ["mean_face", "autoencoder", "focus_round_01", "focus_round_02", "focus", "focus_prior"]
AR_KEYS = ["all_face", "autoencoder", "pseudo_mask", "focus_round_01", "focus_round_02", "focus"]


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
        expected = (
            {"multiview_neutral", "multiview_occlusions"} if k == "focus_round_01" else set(P.NOW_CHALLENGES) | {"all"}
        )
        assert set(now[k]) == expected, k
        for name, ch in now[k].items():
            errors = {s: ch[s] for s in ("median", "mean", "std")}
            assert all(isinstance(v, float) and v >= 0 for v in errors.values())
            # identity correlation wherever the set has true coefficients and 3+ images (2 per challenge here);
            # not for the prior, which moves vertices, not coefficients
            has_corr = name == "all" and k != "focus_prior"
            assert set(ch) == {"median", "mean", "std"} | ({"id_corr"} if has_corr else set()), (k, name)
            if has_corr:
                assert -1.0 <= ch["id_corr"] <= 1.0
    assert now["focus"] == now[f"focus_round_{ROUNDS:02d}"]  # the final model is the last round's
    assert now["mean_face"]["all"]["id_corr"] == 0.0  # a constant identity follows no face


def test_mean_face_row_is_the_mean_shape_scored_like_the_others(project: Path, tmp_path: Path) -> None:
    """The mean_face row equals the scorer run on the model's mean shape written for every image."""
    import torch
    from synth_helpers import tiny_model

    model = tiny_model()
    root = project / "data/synth/now"
    names = [line for line in (root / "imagepathsvalidation.txt").read_text().splitlines() if line]
    mean = model.shape(torch.zeros(len(names), model.n_id)).numpy()
    out = write_now_predictions(tmp_path / "pred", names, mean, model.triangles.numpy(), model.now_landmarks7.numpy())
    doc = score_now(root, out, tmp_path / "mean.json")
    now = load(project, "reports/eval/now/metrics.json")
    for ch, res in doc["results"].items():
        assert now["mean_face"][ch]["median"] == pytest.approx(res["median"], abs=1e-4), ch
        assert now["mean_face"][ch]["mean"] == pytest.approx(res["mean"], abs=1e-4), ch
    details = load(project, "reports/eval/now/details.json")
    assert details["methods"]["mean_face"]["checkpoint"] is None
    assert details["counts"]["mean_face"]["all"]["images"] == len(names)


def test_ar_metrics_keys_and_trivial_baseline(project: Path) -> None:
    ar = load(project, "reports/eval/ar/metrics.json")
    assert list(ar) == AR_KEYS
    for k in AR_KEYS:
        assert set(ar[k]) == set(P.AR_SUBSETS)
        for row in ar[k].values():
            for m in ("accuracy", "precision", "recall", "f1", "iou", "occluder_f1", "occluder_iou"):
                assert 0.0 <= row[m] <= 1.0 and row[f"{m}_std"] >= 0.0 and 0.0 <= row["hard"][m] <= 1.0
    # no segmentation: every rendered pixel is called face, so nothing visible is missed
    assert all(ar["autoencoder"][s]["recall"] == pytest.approx(1.0) for s in P.AR_SUBSETS)
    # ... and no occluder is found: the occluder class scores 0 for both all-face rows
    for k in ("autoencoder", "all_face"):
        for s in P.AR_SUBSETS:
            assert ar[k][s]["recall"] == pytest.approx(1.0)
            assert ar[k][s]["occluder_f1"] == 0.0 and ar[k][s]["occluder_iou"] == 0.0
    for s in P.AR_SUBSETS:
        assert 0.0 <= ar["focus"][s]["occluder_iou"] <= ar["focus"][s]["occluder_f1"] <= 1.0
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
    assert {
        "occlusion_within_10pct_of_neutral",
        "occlusion_15pct_below_autoencoder",
        "misfit_prior_lowers_mean",
        "f1_sunglasses_gain_over_pseudo_mask",
        "f1_scarf_at_least_085",
        "all_met",
    } <= set(summary["targets"])
    assert summary["ar"]["scarf"]["f1_gain_vs_pseudo_mask"] == pytest.approx(
        ar["focus"]["scarf"]["f1"] - ar["pseudo_mask"]["scarf"]["f1"], abs=1e-4
    )
    readme = (project / "README.md").read_text()
    assert "stale" in readme  # the stage writes nothing outside reports/; `make readme` copies the block
    hashed = [p for p in (project / "data/eval").rglob("*.json") if not p.name.endswith(".timings.json")]
    hashed += [project / "reports/eval/now/details.json", project / "reports/eval/ar/details.json"]
    assert hashed and not [p for p in hashed if '"seconds' in p.read_text()]  # timings stay out of DVC's hashes
    block = (project / "reports/results_block.md").read_text()
    assert block.startswith(START_MARKER) and block.endswith(END_MARKER + "\n")
    row = md_row(block, "FOCUS")
    assert (row["NoW median"], row["NoW mean"]) == (
        f"{now['focus']['all']['median']:.2f}",
        f"{now['focus']['all']['mean']:.2f}",
    )
    assert row["F1 scarf"] == f"{ar['focus']['scarf']['f1']:.3f}"
    change = now["focus"]["all"]["median"] / now["mean_face"]["all"]["median"] - 1
    assert row["median vs. mean face"] == f"{100 * change:+.1f} %"
    mean = md_row(block, "Mean face (identity 0, every image)")
    assert mean["NoW median"] == f"{now['mean_face']['all']['median']:.2f}" and mean["identity corr."] == "0.00"
    assert md_row(block, "FOCUS (Li et al. 2023)")["data"] == "published, **real NoW test set**"
    assert summary["now"]["vs_mean_face"]["focus"]["all_median_change"] == pytest.approx(change, abs=1e-4)
    md = (project / "reports/README.md").read_text()
    for img in (
        "eval/now/cumulative_error.png",
        "eval/ar/examples_best.png",
        "misfit_prior/offset.png",
        "eval/rounds.png",
    ):
        assert img in md and (project / "reports" / img).is_file()
    assert (project / "reports/eval/rounds.csv").read_text().count("\n") == 1 + 1 + ROUNDS
    header = (project / "reports/eval/now/cumulative_error_all.csv").read_text().splitlines()[0]
    assert header == "error_mm," + ",".join(k for k in NOW_KEYS if k != "focus_round_01")
    header = (project / "reports/eval/now/cumulative_error_occlusions.csv").read_text().splitlines()[0]
    assert header == "error_mm," + ",".join(NOW_KEYS)


def test_make_readme_puts_the_block_into_the_readme(project: Path) -> None:
    from focus.eval.report import main

    readme = project / "README.md"
    assert main(["--block", str(project / "reports/results_block.md"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Project\n\nintro\n\n" + START_MARKER) and text.endswith(END_MARKER + "\n\nmore text\n")
    assert "stale" not in text and "| FOCUS |" in text


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


def test_scoring_calls_the_scorer_functions_not_the_cli(project: Path, tmp_path: Path, monkeypatch) -> None:
    """The evaluation scores with focus.now's functions: no command line, and the scorer's own errors
    (with the missing images as data) reach the caller."""
    from synth_helpers import tiny_model

    import focus.cli
    from focus.now.scorer import MissingPredictionsError

    def no_cli(*args, **kwargs):
        raise AssertionError("the evaluation must not go through the command line")

    monkeypatch.setattr(focus.cli, "main", no_cli)
    model = tiny_model()
    root = project / "data/synth/now"
    names = [line for line in (root / "imagepathsvalidation.txt").read_text().splitlines() if line]
    mean = model.mean_shape.numpy()[None].repeat(len(names), 0)
    out = write_now_predictions(tmp_path / "pred", names, mean, model.triangles.numpy(), model.now_landmarks7.numpy())
    doc = score_now(root, out, tmp_path / "s.json")
    assert doc["results"]["all"]["num_images"] == len(names) and (tmp_path / "s_per_image.npz").is_file()
    (out / names[1]).with_suffix(".npy").unlink()
    with pytest.raises(MissingPredictionsError) as err:
        score_now(root, out, tmp_path / "s2.json")
    assert err.value.missing == [names[1]]
    assert (tmp_path / "s2_missing.txt").read_text().split() == [names[1]]


def test_identity_scores_against_a_direct_correlation(tmp_path: Path) -> None:
    """Per challenge and over all: the mean over the first 10 coefficients of numpy's Pearson correlation;
    1 for the truth, -1 for its negative, 0 for a constant; none without true coefficients."""
    rng = np.random.default_rng(0)
    names = [
        f"FaMoS_{s}/{ch}/IMG_{i}.jpg" for s in range(4) for ch in ("selfie", "multiview_neutral") for i in range(3)
    ]
    true_id = rng.normal(size=(len(names), 12))
    np.savez(tmp_path / "truth.npz", names=np.array(names), id=true_id)
    noisy = true_id + rng.normal(size=true_id.shape)
    ident = {
        "exact": (names, true_id),
        "negated": (names, -true_id),
        "noisy": (names, noisy),
        "mean_face": (names, np.zeros_like(true_id)),
        "half": (names[::2], noisy[::2]),
    }
    scored = {k: {"all", "selfie"} for k in ident}
    res = P._identity_scores(tmp_path, ident, scored)
    assert res["exact"]["all"] == pytest.approx(1.0) and res["negated"]["selfie"] == pytest.approx(-1.0)
    assert res["mean_face"] == {"all": 0.0, "selfie": 0.0}
    for key, sel in (("noisy", slice(None)), ("half", slice(None, None, 2))):
        idx = np.arange(len(names))[sel]
        selfie = [i for i in idx if "/selfie/" in names[i]]
        for ch, rows in (("all", idx), ("selfie", selfie)):
            direct = np.mean([np.corrcoef(noisy[rows, j], true_id[rows, j])[0, 1] for j in range(10)])
            assert res[key][ch] == pytest.approx(direct, abs=1e-12), (key, ch)
    assert P._identity_scores(tmp_path / "nowhere", ident, scored) == {}
    metrics = P.now_metrics({"exact": {"all": {"median": 1.0, "mean": 1.0, "std": 0.5}}}, res, ["exact"])
    assert metrics == {"exact": {"all": {"median": 1.0, "mean": 1.0, "std": 0.5, "id_corr": 1.0}}}


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


def test_celebahq_stage_scores_the_synthetic_set_in_the_celebahq_layout(project: Path) -> None:
    """Default (eval.celebahq_dir null): the AR-like set written in the CelebAMask-HQ layout, scored with
    every AR row; the masks derived from its part files are the AR set's true masks."""
    from PIL import Image

    from focus.data.dataset import read_mask

    params = json.loads((project / "params.json").read_text())
    mp = pytest.MonkeyPatch()
    mp.chdir(project)
    try:
        metrics = P.run_eval_celebahq(params)
    finally:
        mp.undo()
    assert list(metrics) == AR_KEYS
    assert load(project, "reports/eval/celebahq/metrics.json") == metrics
    details = load(project, "reports/eval/celebahq/details.json")
    assert details["synthetic"] and details["images"] == 6 and "eye_g" in details["non_face_parts"]
    for k in ("all_face", "autoencoder"):
        row = metrics[k]["celebahq"]
        assert row["recall"] == pytest.approx(1.0) and row["occluder_f1"] == 0.0
    layout = project / "data/eval/celebahq/synthetic_layout"
    mapping = (layout / "CelebA-HQ-to-CelebA-mapping.txt").read_text().splitlines()
    for line in mapping[1:]:
        idx, _, src = line.split()
        sub, name = src.split("/")
        truth = read_mask(project / "data/synth/ar" / sub / "masks" / name)
        derived = np.asarray(Image.open(project / "data/eval/celebahq/masks" / f"{idx}.png")) / 255.0
        np.testing.assert_array_equal(derived, truth >= 0.5)
