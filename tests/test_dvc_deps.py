"""The DVC graph says what each stage really uses (issue 14): every stage depends on its script and
on the ``focus`` code that script imports (transitively), and not on all of ``focus/``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from focus.stage_deps import code_deps, focus_modules, update_dvc_yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _dep_paths(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


def _script(stage: dict) -> str:
    words = stage["cmd"].split("#")[0].split()
    return next(w for w in words if w.startswith("stages/") and w.endswith(".py"))


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_deps_cover_what_its_script_imports(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    stage = STAGES[name]
    declared = _dep_paths(stage)
    assert "focus" not in declared and "focus/" not in declared, f"stage {name} depends on all of focus/"
    needed = code_deps(_script(stage))
    covered = [d for d in needed if any(d == x or d.startswith(x.rstrip("/") + "/") for x in declared)]
    missing = sorted(set(needed) - set(covered))
    assert not missing, (
        f"stage {name}: dvc.yaml misses the code dependencies {missing} "
        f"(`python -m focus.stage_deps --update` rewrites them)"
    )


def test_the_facemodel_stage_does_not_depend_on_training_or_evaluation():
    declared = _dep_paths(STAGES["facemodel"])
    assert not any(d.startswith(("focus/train", "focus/eval", "focus/synth", "focus/apps")) for d in declared)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_import_walk_follows_lazy_relative_and_transitive_imports(tmp_path):
    _write(tmp_path / "focus" / "__init__.py", "")
    _write(tmp_path / "focus" / "config.py", "import json\n")
    _write(tmp_path / "focus" / "unused.py", "")
    _write(tmp_path / "focus" / "a" / "__init__.py", "from focus.a.x import f\n")
    _write(tmp_path / "focus" / "a" / "x.py", "def f():\n    from focus import config\n    from .y import g\n")
    _write(tmp_path / "focus" / "a" / "y.py", "import focus.b.z as z\n")
    _write(tmp_path / "focus" / "b" / "__init__.py", "")
    _write(tmp_path / "focus" / "b" / "z.py", "")
    _write(tmp_path / "focus" / "c" / "__init__.py", "")
    _write(tmp_path / "stages" / "s.py", "import sys\nfrom focus.a import f\n")
    assert focus_modules(tmp_path / "stages" / "s.py", tmp_path) == {
        "focus",
        "focus.a",
        "focus.a.x",
        "focus.a.y",
        "focus.b",
        "focus.b.z",
        "focus.config",
    }
    deps = code_deps(tmp_path / "stages" / "s.py", tmp_path)
    assert deps[1:] == ["focus/__init__.py", "focus/a", "focus/b", "focus/config.py"]


def test_update_rewrites_only_the_code_dependencies(tmp_path):
    _write(tmp_path / "focus" / "__init__.py", "")
    _write(tmp_path / "focus" / "config.py", "")
    _write(tmp_path / "focus" / "a" / "__init__.py", "from focus import config\n")
    _write(tmp_path / "stages" / "s.py", "import focus.a\n")
    dvc = tmp_path / "dvc.yaml"
    text = (
        "stages:\n  s:\n    cmd: python stages/s.py   # note\n    deps:\n      - stages/s.py\n      - focus\n"
        "      - data/in\n    outs:\n      - data/out\n"
    )
    dvc.write_text(text, encoding="utf-8")
    assert update_dvc_yaml(dvc, tmp_path) == ["s"]
    assert dvc.read_text(encoding="utf-8") == text.replace(
        "      - focus\n", "      - focus/__init__.py\n      - focus/a\n      - focus/config.py\n"
    )
    assert update_dvc_yaml(dvc, tmp_path) == []
