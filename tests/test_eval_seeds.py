"""The seeds summary: target values from metrics files, mean / spread / verdicts, DVC exp parsing."""

from __future__ import annotations

import json
import statistics

import pytest

from focus.errors import InputFileError
from focus.eval import ablations as A
from focus.eval import seeds as S


def _metrics(shift: float) -> dict:
    """One run's metrics files as plain data ``{path: data}``."""
    now = {
        "mean_face": {"all": {"median": 1.0}, "multiview_occlusions": {"median": 1.0}},
        "autoencoder": {"all": {"median": 0.95}, "multiview_occlusions": {"median": 1.0}},
        "focus": {"all": {"median": 0.9 + shift}, "multiview_occlusions": {"median": 0.92}},
        "focus_prior": {"all": {"median": 0.96 + shift}, "multiview_occlusions": {"median": 0.9}},
    }
    ar = {"focus": {"sunglasses": {"f1": 0.9 + shift}, "scarf": {"f1": 0.84}}}
    last = {
        "phase": "r4/rec",
        "shape_mm": 2.0,
        "shape_mm_unoccluded": 1.9 + shift,
        "shape_mm_occluded": 2.1,
        "shape_mm_mean_face": 2.0,
    }
    em = {"summary": {"id_corr_end": 0.1 + shift}, "records": [{"phase": "init"}, last]}
    return {S.NOW_METRICS: now, S.AR_METRICS: ar, S.EM_METRICS: em}


def test_target_values_are_the_relative_changes_of_the_right_rows():
    v = S.target_values(_metrics(0.0))
    assert v["shape_unoccluded_vs_mean_face"] == pytest.approx(1.9 / 2.0 - 1)
    assert v["shape_occluded_vs_mean_face"] == pytest.approx(2.1 / 2.0 - 1)
    assert v["now_prior_median_vs_mean_face"] == pytest.approx(0.96 - 1)
    assert v["now_focus_median_vs_mean_face"] == pytest.approx(0.9 - 1)
    assert v["now_prior_occlusion_vs_autoencoder"] == pytest.approx(0.9 - 1)
    assert v["now_focus_occlusion_vs_autoencoder"] == pytest.approx(0.92 - 1)
    assert v["id_corr"] == pytest.approx(0.1)
    assert (v["ar_f1_sunglasses"], v["ar_f1_scarf"]) == (pytest.approx(0.9), pytest.approx(0.84))


def test_missing_numbers_are_none_not_zero():
    v = S.target_values({S.NOW_METRICS: {"focus": {"all": {"median": 1.0}}}})
    assert v["now_focus_median_vs_mean_face"] is None
    assert v["id_corr"] is None


def test_summary_mean_sample_std_and_verdicts_on_the_mean():
    runs = [{"seed": s, "values": S.target_values(_metrics(d))} for s, d in ((0, 0.0), (1, 0.02), (2, -0.04))]
    doc = S.summarise(runs)
    vals = [0.9 + d for d in (0.0, 0.02, -0.04)]
    assert doc["mean"]["ar_f1_sunglasses"] == pytest.approx(statistics.fmean(vals))
    assert doc["std_sample"]["ar_f1_sunglasses"] == pytest.approx(statistics.stdev(vals))
    met = doc["met_on_mean"]
    assert met["ar_f1_sunglasses"] is True  # mean 0.893 >= 0.85
    assert met["ar_f1_scarf"] is False  # 0.84 < 0.85
    assert met["shape_unoccluded_vs_mean_face"] is True  # mean -5.3 % <= -5 %
    assert met["shape_occluded_vs_mean_face"] is False
    assert met["now_prior_occlusion_vs_autoencoder"] is True  # -10 %
    assert met["id_corr"] is False


def _exp_doc(runs: dict[str, dict], state: str = "success") -> list:
    def rec(rev, name, metrics):
        data = {"rev": rev, "metrics": {p: {"data": d} for p, d in metrics.items()}, "params": {}}
        return {"rev": rev, "name": name, "data": data, "error": None}

    exps = [
        {"name": name, "executor": {"state": state} if state else None, "revs": [rec(f"r{i}", name, m)]}
        for i, (name, m) in enumerate(runs.items())
    ]
    return [
        {"rev": "workspace", "name": None, "data": {}, "experiments": None},
        {**rec("abc", "main", {}), "experiments": exps},
    ]


def test_seed_experiments_are_found_by_name_and_others_ignored():
    doc = _exp_doc({"seed-1": _metrics(0.01), "seed-2": _metrics(0.02), "no_nbr": _metrics(0.5)})
    found = S.seed_experiments(doc)
    assert sorted(found) == [1, 2]
    assert S.target_values(found[2])["ar_f1_sunglasses"] == pytest.approx(0.92)
    assert S.seed_experiments(_exp_doc({"seed-3": _metrics(0.0)}, state="running")) == {}


def test_collect_puts_the_workspace_run_first_and_feeds_the_ablation_spread(tmp_path):
    for path, data in _metrics(0.0).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(data))
    doc = S.collect(tmp_path, 0, {1: _metrics(0.02), 2: _metrics(-0.04)})
    assert doc["seeds"] == [0, 1, 2]
    assert doc["runs"][0]["name"] == "committed run"
    em = doc["runs"][0]["metrics"][S.EM_METRICS]
    assert set(em) == {"summary", "last"} and em["last"]["phase"] == "r4/rec"
    out = tmp_path / "seeds.json"
    out.write_text(json.dumps(doc))
    spread = A.seed_spread([out], A.columns())
    assert spread is not None and spread["ar.sunglasses.f1"] == pytest.approx(statistics.stdev([0.9, 0.92, 0.86]))
    table = S.seeds_table(doc)
    assert "seed 2" in table and "**no**" in table and "AR-like F1 scarf" in table


def test_collect_without_a_pipeline_run_names_the_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="metrics.json"):
        S.collect(tmp_path, 0, {})


def test_report_seeds_section_and_readme_line(tmp_path):
    from focus.eval.report import seeds_line, seeds_section

    assert seeds_section(None) == [] and seeds_line(None) == ""
    for path, data in _metrics(0.0).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(data))
    doc = S.collect(tmp_path, 0, {1: _metrics(0.02), 2: _metrics(-0.04)})
    section = "\n".join(seeds_section(doc))
    assert section.startswith("## Seeds") and "| seed 0 | seed 1 | seed 2 |" in section
    line = seeds_line(doc)
    m = statistics.fmean([0.9, 0.92, 0.86])
    assert f"F1 sunglasses {m:.3f} ± {statistics.stdev([0.9, 0.92, 0.86]):.3f}" in line
    assert "met on the mean: 4 of 7" in line  # sunglasses F1, unoccluded shape, prior median and occlusion


def test_other_runs_come_from_a_commit_and_are_labelled(tmp_path):
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for path, data in _metrics(0.02).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(data))
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "run"], cwd=tmp_path, check=True)
    other = S.metrics_at_commit("HEAD", tmp_path)
    for path, data in _metrics(0.0).items():  # the workspace: another run
        (tmp_path / path).write_text(json.dumps(data))
    doc = S.collect(tmp_path, 0, {1: _metrics(-0.04)}, [(0, "other machine", other)])
    assert [r["name"] for r in doc["runs"]] == ["committed run", "other machine", "seed-1"]
    assert doc["runs"][1]["values"]["ar_f1_sunglasses"] == pytest.approx(0.92)
    assert "seed 0 (other machine)" in S.seeds_table(doc)
    with pytest.raises(InputFileError, match="not in git"):
        S.metrics_at_commit("no-such-rev", tmp_path)


def test_experiment_metrics_read_the_whole_files_from_the_experiment_commit(tmp_path):
    """`dvc exp show` drops list-valued metrics (the EM records with the occluded / unoccluded shape errors):
    the experiment's own commit has them; without one, exp show's numbers stay."""
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for path, data in _metrics(0.02).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(data))
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "seed-1"], cwd=tmp_path, check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    shown = _metrics(0.02)
    shown[S.EM_METRICS] = {"summary": shown[S.EM_METRICS]["summary"]}  # what exp show keeps
    doc = _exp_doc({"seed-1": shown, "seed-2": _metrics(0.0)})
    doc[1]["experiments"][0]["revs"][0]["rev"] = rev
    assert S.seed_experiment_revs(doc) == {1: rev, 2: "r1"}
    assert S.target_values(S.seed_experiments(doc)[1])["shape_unoccluded_vs_mean_face"] is None
    found = S.experiment_metrics(doc, tmp_path)
    assert S.target_values(found[1])["shape_unoccluded_vs_mean_face"] == pytest.approx(1.92 / 2.0 - 1)
    assert S.target_values(found[2])["ar_f1_sunglasses"] == pytest.approx(0.9)  # "r1" is no commit: exp show's
