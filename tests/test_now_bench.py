"""The NoW scorer at benchmark scale (120k-vertex scan, 35k-vertex prediction): slow."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "now_eval.py"


@pytest.mark.slow
def test_benchmark_scale_scores_are_correct(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("now_eval_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "now_eval.json"
    assert bench.main(["--out", str(out), "--repeats", "1"]) == 0
    doc = json.loads(out.read_text())
    assert doc["correct"] and doc["scan_vertices"] >= 120_000 and doc["prediction_faces"] >= 69_000
    assert doc["same_surface_errors_mm"]["median"] < 0.02  # same surface, other grid, mirrored
    assert 0.3 < doc["different_face_errors_mm"]["median"] < 1.5
