"""The ablation table from a hand-made ``dvc exp show --json`` document (DVC 3's shape)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from eval_fixtures import md_tables

from focus.errors import InputFileError
from focus.eval import ablations as A

NOW, AR, EM = A.NOW_METRICS, A.AR_METRICS, A.EM_METRICS


def _now(base: float) -> dict:
    chs = {ch: {"median": base + i, "mean": base + i + 0.5, "std": 0.1} for i, ch in enumerate(A.NOW_CHALLENGES)}
    return {**chs, "all": {"median": base, "mean": base + 0.5, "std": 0.1, "id_corr": base / 10}}


def _ar(f1: float) -> dict:
    return {
        sub: {"f1": f1 + 0.01 * i, "iou": f1 - 0.2, "occluder_iou": 0.3 + 0.01 * i, "occluder_f1": 0.4}
        for i, sub in enumerate(A.AR_SUBSETS)
    }


def _metrics(scale: float) -> dict:
    """Metrics files of one run as DVC records them: ``{path: {"data": ...}}``."""
    return {
        NOW: {
            "data": {
                "mean_face": _now(3.0),
                "autoencoder": _now(2.0),
                "focus": _now(scale),
                "focus_prior": _now(scale - 0.25),
            }
        },
        AR: {"data": {"all_face": _ar(0.88), "autoencoder": _ar(0.87), "pseudo_mask": _ar(0.7), "focus": _ar(0.9)}},
        EM: {
            "data": {
                "summary": {"shape_mm_end": scale / 2, "shape_mm_start": 1.9, "shape_mm_mean_face_end": 2.9},
                "records": [{"phase": "init"}],
            }
        },
    }


def _state(rev: str, name: str | None, metrics: dict, experiments=None) -> dict:
    data = {
        "rev": rev,
        "timestamp": None,
        "params": {"params.yaml": {"data": {"seed": 0}}},
        "metrics": metrics,
        "deps": {},
        "outs": {},
        "meta": {},
    }
    return {"rev": rev, "name": name, "data": data, "error": None, "experiments": experiments}


def _range(name: str, metrics: dict, state: str | None = None) -> dict:
    executor = None if state is None else {"state": state, "name": "dvc-task", "local": None}
    return {"revs": [_state(f"rev_{name}", name, metrics)], "executor": executor, "name": name}


@pytest.fixture
def exp_doc() -> list:
    exps = [
        _range("no_nbr", _metrics(1.6)),
        _range("no_identity", _metrics(1.8)),
        _range("render_only", {}, "failed"),
        _range("pseudo_frozen", {}, "queued"),
    ]
    # the workspace holds the last experiment's results (dvc exp run applies them): not the full model
    return [_state("workspace", None, _metrics(9.0)), _state("abc123", "main", _metrics(1.5), exps)]


def test_fixture_has_the_shape_of_dvc3_exp_show() -> None:
    ser = pytest.importorskip("dvc.repo.experiments.serialize")
    names = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    doc = [_state("abc", "main", _metrics(1.0), [_range("x", {}, "queued")])]
    assert set(doc[0]) == names(ser.ExpState) and set(doc[0]["data"]) == names(ser.SerializableExp)
    rng = doc[0]["experiments"][0]
    assert set(rng) == names(ser.ExpRange) and set(rng["executor"]) == names(ser.ExpExecutor)


def _rows(md: str) -> dict[str, dict[str, str]]:
    return {row["model"]: row for row in md_tables(md)[0]}


def test_table_rows_and_cells(exp_doc) -> None:
    md = A.ablation_table(exp_doc, None)
    rows = _rows(md)
    full = rows["**full model** (FOCUS + misfit prior)"]
    occ, shape, scarf = "NoW occlusions median (mm)", "held-out shape error (mm)", "AR scarf F1"
    assert full[occ] == f"{1.5 - 0.25 + 2:.2f}"  # focus_prior of the baseline commit, not the workspace
    assert rows["without the misfit prior (the full run's `focus` rows)"][occ] == f"{1.5 + 2:.2f}"
    assert rows["without L_nbr"][occ] == f"{1.6 - 0.25 + 2:.2f}"
    assert rows["without L_nbr"][shape] == "0.80"
    assert full["identity corr."] == f"{1.25 / 10:.3f}"
    assert full["AR scarf occluder IoU"] == "0.320" and full["AR sunglasses F1"] == "0.910"
    assert rows["baseline: all-face mask (FOCUS's render)"][scarf] == "0.900"
    assert rows["baseline: all-face mask (FOCUS's render)"][occ] == "–"
    assert rows["baseline: mean face"][occ] == "5.00" and rows["baseline: mean face"][scarf] == "–"
    assert rows["baseline: autoencoder (initialised encoder, all-face mask)"][shape] == "1.90"
    assert rows["U-Net without the image (render only)"]["NoW neutral median (mm)"] == "failed"
    assert rows["pseudo masks frozen instead of EM"]["NoW neutral median (mm)"] == "queued"
    assert rows["without L_dist, L_presv"]["NoW neutral median (mm)"] == "not run"
    seed = rows["full model, seed spread (std)"]
    assert {v for k, v in seed.items() if k != "model"} == {"not measured"}
    assert "`em.masks=pseudo`" in md and "Missing:" in md


def test_seed_spread_from_runs_and_direct(tmp_path, exp_doc) -> None:
    runs = [_metrics(s) for s in (1.0, 2.0, 3.0)]
    path = tmp_path / "seeds_cpu.json"
    path.write_text(json.dumps({"runs": runs}))
    spread = A.seed_spread([path], A.columns())
    assert spread["now.multiview_occlusions"] == pytest.approx(1.0)  # sample std (n - 1) of 1, 2, 3
    assert spread["shape_mm"] == pytest.approx(0.5)
    seed = _rows(A.ablation_table(exp_doc, spread))["full model, seed spread (std)"]
    assert seed["NoW occlusions median (mm)"] == "1.00"
    assert seed["AR scarf F1"] == "0.000"  # the same over the seeds
    (tmp_path / "other.json").write_text(json.dumps({"std": {"ar.scarf.f1": 0.02}}))
    assert A.seed_spread([tmp_path / "missing.json", tmp_path / "other.json"], A.columns()) == {"ar.scarf.f1": 0.02}
    assert A.seed_spread([], A.columns()) is None


def test_bad_documents_and_queue_commands(exp_doc) -> None:
    with pytest.raises(InputFileError, match="dvc exp show --json"):
        A.parse_exp_show({"rev": "x"})
    assert A.pending(exp_doc) == ["pseudo_frozen"]
    cmds = A.queue_commands()
    assert cmds[0] == ["exp", "run", "--queue", "-n", "no_nbr", "-S", "em.seg_weights.nbr=0"]
    assert len(cmds) == len(A.ABLATIONS) and len({c[4] for c in cmds}) == len(cmds)


def test_cli_writes_the_table(tmp_path, exp_doc) -> None:
    src = tmp_path / "exp.json"
    src.write_text(json.dumps(exp_doc))
    out = tmp_path / "reports" / "ablations.md"
    assert A.main(["table", "--exp-json", str(src), "--out", str(out), "--seeds"]) == 0
    assert out.read_text().startswith("# Ablations")


def test_reading_needs_the_seed_spread_to_call_a_claim(exp_doc) -> None:
    md = A.ablation_table(exp_doc, None)
    line = next(ln for ln in md.splitlines() if ln.startswith("- without L_nbr:"))
    assert "NoW occlusion median 3.25 vs 3.35 (no seed spread)" in line
    assert "- pseudo masks frozen instead of EM: not measured." in md
    spread = {"now.multiview_occlusions": 0.04, "ar.scarf.occluder_iou": 0.01}
    md = A.ablation_table(exp_doc, spread)
    nbr = next(ln for ln in md.splitlines() if ln.startswith("- without L_nbr:"))
    assert "(supports the paper)" in nbr  # 0.10 mm better, beyond 2 x 0.04
    assert "scarf occluder IoU 0.320 vs 0.320 (within the seed spread)" in nbr
    ident = next(
        ln
        for ln in A.ablation_table(exp_doc, {"now.multiview_occlusions": 0.1}).splitlines()
        if ln.startswith("- without L_id:")
    )
    assert "3.25 vs 3.55 (supports the paper)" in ident
