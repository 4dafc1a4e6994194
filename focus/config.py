"""Settings: frozen dataclasses built from ``params.yaml`` (one group per concern).

Each module that owns a group of settings defines its own frozen dataclass; this module only
reads the YAML and builds a dataclass from one group, rejecting unknown keys with a message that
names the file and the key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from focus.errors import InputFileError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The whole ``params.yaml`` as a dict."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "parameter file not found", "run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputFileError(path, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputFileError(path, "top level must be a mapping of groups")
    return data


def from_dict(cls: type[T], data: dict[str, Any] | None, source: str = "params.yaml") -> T:
    """Build the frozen dataclass ``cls`` from ``data``; unknown keys are an error.

    Nested dataclass fields are built recursively; lists become tuples for hashability.
    """
    data = dict(data or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InputFileError(source, f"unknown keys {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in data.items():
        ftype = hints[key]
        target = ftype if isinstance(ftype, type) else None
        if target is None and isinstance(ftype, str):
            target = _resolve(cls, ftype)
        if target is not None and dataclasses.is_dataclass(target) and isinstance(value, dict):
            value = from_dict(target, value, f"{source}:{key}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _resolve(cls: type, name: str) -> type | None:
    import sys

    module = sys.modules.get(cls.__module__)
    obj = getattr(module, name, None) if module else None
    return obj if isinstance(obj, type) else None


def group(cls: type[T], name: str, path: str | Path = DEFAULT_PARAMS) -> T:
    """``cls`` built from group ``name`` of the parameter file at ``path``."""
    params = load_params(path)
    return from_dict(cls, params.get(name), f"{path}:{name}")
