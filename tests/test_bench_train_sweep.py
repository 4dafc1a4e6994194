"""bench/train_sweep.py: parameter merging and the result table (the runs themselves are training)."""

from __future__ import annotations

import importlib.util

from conftest import PROJECT_ROOT


def _module():
    spec = importlib.util.spec_from_file_location("train_sweep", PROJECT_ROOT / "bench" / "train_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_merge_overrides_group_by_group_without_touching_the_base() -> None:
    sw = _module()
    base = {"em": {"rounds": 4, "seg_weights": {"bin": 10.0, "area": 0.5}}, "init": {"steps": 1500}}
    out = sw._merge(base, {"em": {"seg_weights": {"area": 1.5}}, "train": {"device": "cuda"}})
    assert out == {
        "em": {"rounds": 4, "seg_weights": {"bin": 10.0, "area": 1.5}},
        "init": {"steps": 1500},
        "train": {"device": "cuda"},
    }
    assert base["em"]["seg_weights"]["area"] == 0.5  # the base is not edited


def test_table_lists_phases_errors_and_times() -> None:
    sw = _module()
    results = [
        {
            "name": "a",
            "records": [
                {"stage": "init", "phase": "init", "f1_occluded": 0.5, "photo": 0.16},
                {"stage": "init", "phase": "init done", "seconds": 12.0},
            ],
        },
        {"name": "b", "records": [{"error": "RuntimeError('boom')"}]},
    ]
    text = sw._table(results)
    assert "f1_occluded" in text.splitlines()[0]
    assert any(line.startswith("a") and "0.5000" in line and "0.1600" in line for line in text.splitlines())
    assert "12.0 s" in text and "ERROR RuntimeError('boom')" in text


def test_a_run_whose_source_never_exists_is_skipped_not_waited_for(tmp_path, capsys) -> None:
    sw = _module()
    (tmp_path / "sweep.yaml").write_text("runs:\n  - name: orphan\n    from: missing\n    params: {}\n")
    assert (
        sw.main(
            [
                str(tmp_path / "sweep.yaml"),
                "--out",
                str(tmp_path / "out"),
                "--params",
                str(PROJECT_ROOT / "params.yaml"),
            ]
        )
        == 0
    )
    assert "orphan: its source 'missing' never got a pretrain_seg.pt; skipped" in capsys.readouterr().out
    assert not (tmp_path / "out" / "orphan").exists()
