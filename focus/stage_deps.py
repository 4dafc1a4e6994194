"""The code a DVC stage script runs: the ``focus`` modules its script imports, transitively
(imports inside functions included), as the dependency paths ``dvc.yaml`` declares.

A module ``focus.<pkg>.<mod>`` maps to its subpackage folder ``focus/<pkg>``; a top-level module
``focus.<mod>`` to ``focus/<mod>.py``; every stage also runs ``focus/__init__.py``. Run
``python -m focus.stage_deps stages/*.py`` to print what each script needs, and
``python -m focus.stage_deps --update`` to rewrite those lines of ``dvc.yaml`` (the check lives in
``tests/test_dvc_deps.py``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "focus"


def _module_file(root: Path, name: str) -> Path | None:
    """The source file of module ``name`` under ``root`` (``None`` if it is not in the project)."""
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_names(path: Path, module: str | None) -> set[str]:
    """Names of the modules ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = (module or "").split(".")
                parts = parts if is_pkg else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(p for p in [*parts, base] if p)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def focus_modules(script: str | Path, root: str | Path = ".") -> set[str]:
    """Every ``focus`` module that running ``script`` may import (with the packages above each)."""
    root = Path(root)
    seen: set[str] = set()
    todo: list[tuple[Path, str | None]] = [(Path(script), None)]
    while todo:
        path, module = todo.pop()
        for name in _imported_names(path, module):
            if name != PACKAGE and not name.startswith(PACKAGE + "."):
                continue
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                sub = ".".join(parts[:k])
                f = _module_file(root, sub)
                if f is not None and sub not in seen:
                    seen.add(sub)
                    todo.append((f, sub))
    return seen


def dependency_path(module: str, root: str | Path = ".") -> str:
    """``focus.train.steps`` -> ``focus/train``; ``focus.config`` -> ``focus/config.py``;
    ``focus`` -> ``focus/__init__.py``."""
    parts = module.split(".")
    if len(parts) == 1:
        return f"{PACKAGE}/__init__.py"
    if len(parts) == 2 and not (Path(root).joinpath(*parts) / "__init__.py").is_file():
        return "/".join(parts) + ".py"
    return "/".join(parts[:2])


def code_deps(script: str | Path, root: str | Path = ".") -> list[str]:
    """The ``dvc.yaml`` code dependencies of ``script``: itself, then the paths of its modules."""
    deps = {dependency_path(m, root) for m in focus_modules(script, root)}
    return [Path(script).as_posix(), *sorted(deps)]


def update_dvc_yaml(path: str | Path = "dvc.yaml", root: str | Path = ".") -> list[str]:
    """Rewrite the code dependencies (the ``- focus...`` lines) of every stage in ``path`` from its
    script's imports, keeping the rest of the file (comments included); returns the changed stages."""
    import re

    import yaml

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    stages = yaml.safe_load(text)["stages"]
    out: list[str] = []
    stage, done, changed = None, False, []
    for line in text.split("\n"):
        m = re.match(r"^  (\w+):\s*(#.*)?$", line)
        if m and m.group(1) in stages:
            stage, done = m.group(1), False
        if stage and re.match(rf"^      - {PACKAGE}(/|$)", line):
            if not done:
                script = next(w for w in stages[stage]["cmd"].split() if w.endswith(".py"))
                new = [f"      - {d}" for d in code_deps(Path(root) / script, root)[1:]]
                old = [f"      - {d}" for d in stages[stage]["deps"] if str(d).startswith(PACKAGE)]
                if new != old:
                    changed.append(stage)
                out += new
                done = True
            continue
        out.append(line)
    if changed:
        path.write_text("\n".join(out), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m focus.stage_deps [--update] [SCRIPT...]``: print each script's code dependencies,
    or (``--update``) rewrite them in ``dvc.yaml``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--update"]:
        changed = update_dvc_yaml()
        print(f"dvc.yaml: code dependencies updated for {', '.join(changed)}" if changed else "dvc.yaml: up to date")
        return 0
    for script in args:
        print(f"{script}:")
        for d in code_deps(script):
            print(f"  - {d}")
    return 0


__all__ = ["code_deps", "dependency_path", "focus_modules", "update_dvc_yaml"]


if __name__ == "__main__":
    sys.exit(main())
