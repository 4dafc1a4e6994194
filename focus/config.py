"""Settings: frozen dataclasses built from ``params.yaml`` (one group per concern).

Each module that owns a group of settings defines its own frozen dataclass; this module reads the
YAML files, merges them (:func:`merged_params`: later files override earlier ones group by group)
and builds a dataclass from one group (:func:`from_dict`). Building a dataclass is where every
parameter is checked: its value against the field's type annotation (``int``, ``float``, ``bool``,
``str``, ``Literal``, ``tuple[...]``, ``X | None``, nested dataclasses; ``bool`` is not an ``int``,
an ``int`` is accepted for a ``float``) and against the range or choices the dataclass declares
for the field with :func:`param`. A bad value is one line that names the file, the dotted key,
the value and what is allowed, e.g. ``params.yaml: em.rounds = -1: expected an integer >= 1``.

:func:`merged_params` checks every group of :data:`PARAM_GROUPS` as soon as the files are read,
so a stage rejects a bad value before it reads data or touches an output.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from focus.errors import InputFileError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")

#: The groups of ``params.yaml`` and the dataclass each is read into (``module:Class``, imported
#: when the parameters are checked). ``None``: a scalar or a group checked by its owner.
PARAM_GROUPS: dict[str, str | None] = {
    "seed": None,
    "facemodel": "focus.facemodel.embedded:EmbeddedModelSettings",
    "render": "focus.render.renderer:RenderSettings",
    "synth": "focus.synth.settings:SynthSettings",
    "idnet": "focus.idnet.stage:IdNetSettings",
    "data": "focus.data.dataset:DataSettings",
    "train": "focus.train.settings:TrainSettings",
    "init": "focus.train.settings:InitSettings",
    "pretrain_seg": "focus.train.settings:PretrainSegSettings",
    "em": "focus.train.settings:EMSettings",
    "misfit_prior": "focus.eval.settings:MisfitPriorSettings",
    "eval": "focus.eval.settings:EvalSettings",
    "paths": "focus.paths:PathSettings",
}

#: Checks that involve several groups: ``module:function`` taking ``{group: settings}`` and
#: raising :class:`ParamValueError` (see :func:`focus.train.settings.check_groups`).
CROSS_CHECKS: tuple[str, ...] = ("focus.train.settings:check_groups",)


# ---------------------------------------------------------------------------- errors
class ParamError(InputFileError):
    """A parameter file holds a value its settings dataclass does not allow (one line: file, key, value)."""


class ParamValueError(ValueError):
    """A value outside what a field allows, before the file is known (:func:`from_dict` adds it)."""

    def __init__(self, key: str, value: Any, allowed: str, related: tuple[str, ...] = ()) -> None:
        self.key, self.value, self.allowed, self.related = key, value, allowed, related
        super().__init__(f"{key} = {_show(value)}: expected {allowed}")


def _show(value: Any) -> str:
    """``value`` as YAML would spell it (``true``, ``null``, ``"abc"``), at most 60 characters."""
    try:
        text = json.dumps(value, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- declaring ranges
@dataclasses.dataclass(frozen=True)
class Range:
    """What a field allows beyond its type: bounds (numbers, elementwise for tuples) or choices."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None

    def ok(self, v: Any) -> bool:
        if self.choices is not None:
            return v in self.choices
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if isinstance(v, float) and math.isnan(v):
                return False
            return (
                (self.ge is None or v >= self.ge)
                and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le)
                and (self.lt is None or v < self.lt)
            )
        return True

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = f"[{_num(self.ge)}" if self.ge is not None else f"({_num(self.gt)}" if self.gt is not None else None
        hi = f"{_num(self.le)}]" if self.le is not None else f"{_num(self.lt)})" if self.lt is not None else None
        if lo and hi:
            return f"in {lo}, {hi}"
        if lo:
            return (">= " if lo[0] == "[" else "> ") + lo[1:]
        if hi:
            return ("<= " if hi[-1] == "]" else "< ") + hi[:-1]
        return ""


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def param(
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A dataclass field with a default (or ``factory``) and the range or choices it allows.

    ``count: int = param(10, ge=1)``; ``prob: float = param(0.5, ge=0, le=1)``;
    ``name: str = param("adam", choices=("adam", "sgd"))``. For a ``tuple`` field the range applies
    to each element. :func:`from_dict` checks it (with the type) on every value read from a file.
    """
    meta = {"range": Range(ge, gt, le, lt, tuple(choices) if choices is not None else None)}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_fields(obj: Any) -> None:
    """Check the declared ranges (:func:`param`) of a settings dataclass instance; for its
    ``__post_init__``, so settings built in code are checked too (types are checked by :func:`from_dict`).

    Raises:
        ParamValueError: naming the first field outside its range.
    """
    for f in dataclasses.fields(obj):
        rng = f.metadata.get("range")
        if rng is None:
            continue
        value = getattr(obj, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if any(v is not None and not rng.ok(v) for v in items):
            raise ParamValueError(f.name, value, rng.describe())


#: Shorthands for the commonest ranges (a field may not share a helper's name: ``count: int = ...``
#: would hide it from the fields after it).
def positive(default: Any) -> Any:
    """A number > 0 (or an integer >= 1 for an ``int`` field: the check is the same)."""
    return param(default, gt=0)


def probability(default: float) -> Any:
    """A number in [0, 1]."""
    return param(default, ge=0, le=1)


def nonnegative(default: float) -> Any:
    """A number >= 0."""
    return param(default, ge=0)


# ---------------------------------------------------------------------------- reading files
def load_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The whole ``params.yaml`` as a dict (not checked: see :func:`merged_params`)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "parameter file not found", "run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise InputFileError(path, "top level must be a mapping of groups")
    return data


def deep_merge(dst: dict, src: dict) -> None:
    """Merge ``src`` into ``dst`` in place, group by group (nested dicts merge, other values replace)."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v


def _leaf_keys(data: Any, prefix: str) -> list[str]:
    if isinstance(data, dict) and data:
        return [k for key, v in data.items() for k in _leaf_keys(v, f"{prefix}.{key}" if prefix else str(key))]
    return [prefix]


def merged_params(paths: list[str | Path] | None = None, check: bool = True) -> dict[str, Any]:
    """``params.yaml`` (or the given files, later ones overriding earlier ones group by group,
    deep-merged), every group checked (:func:`check_params`) unless ``check`` is false.

    A bad value is reported with the file that set it.
    """
    files = [Path(p) for p in (paths or [DEFAULT_PARAMS])]
    out: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in files:
        data = load_params(f)
        for key in _leaf_keys(data, ""):
            sources.pop(key, None)  # re-insert: the latest file's keys come last
            sources[key] = str(f)
        deep_merge(out, data)
    if check:
        check_params(out, str(files[-1]), sources)
    return out


def group(cls: type[T], name: str, path: str | Path = DEFAULT_PARAMS) -> T:
    """``cls`` built from group ``name`` of the parameter file at ``path`` (every group checked)."""
    params = merged_params([path])
    return from_dict(cls, params.get(name), str(path), key=name)


# ---------------------------------------------------------------------------- checking
def _import(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def check_params(
    params: Mapping[str, Any], source: str = "params.yaml", sources: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Build every group of :data:`PARAM_GROUPS` present in ``params`` (raising :class:`ParamError`
    on the first bad value) and run :data:`CROSS_CHECKS`; returns ``{group: settings}``."""
    unknown = sorted(set(params) - set(PARAM_GROUPS))
    if unknown:
        raise ParamError(
            _file_of(unknown[0], source, sources), f"unknown group {unknown[0]!r}", f"known: {', '.join(PARAM_GROUPS)}"
        )
    if "seed" in params:
        try:
            _check_value(int, params["seed"], "seed", Range(ge=0))
        except ParamValueError as exc:
            raise ParamError(_file_of("seed", source, sources), str(exc)) from exc
    built: dict[str, Any] = {}
    for name, spec in PARAM_GROUPS.items():
        if spec is None or name not in params:
            continue
        built[name] = from_dict(_import(spec), params[name], source, key=name, sources=sources)
    for spec in CROSS_CHECKS:
        try:
            _import(spec)(built)
        except ParamValueError as exc:  # named after the latest file that set one of the keys involved
            files = [_file_of(k, source, sources) for k in (exc.key, *exc.related)]
            order = {f: i for i, f in enumerate((sources or {}).values())}
            raise ParamError(max(files, key=lambda f: order.get(f, -1)), str(exc)) from exc
    return built


def _file_of(key: str, default: str, sources: Mapping[str, str] | None) -> str:
    """The file that set ``key`` (or the last one that set anything below it)."""
    if not sources:
        return default
    if key in sources:
        return sources[key]
    below = [f for k, f in sources.items() if k.startswith(key + ".")]
    if below:
        return below[-1]
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:n]) in sources:
            return sources[".".join(parts[:n])]
    return default


def _split_source(source: str) -> tuple[str, str]:
    """``"params.yaml:train"`` -> ``("params.yaml", "train")`` (the older ``from_dict`` convention)."""
    head, sep, tail = str(source).rpartition(":")
    if sep and tail and "/" not in tail and "\\" not in tail and head:
        return head, tail.replace(":", ".")
    return str(source), ""


def from_dict(
    cls: type[T],
    data: Mapping[str, Any] | None,
    source: str = "params.yaml",
    *,
    key: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> T:
    """Build the frozen dataclass ``cls`` from ``data``, checking every value.

    Args:
        cls: a (frozen) settings dataclass.
        data: the group's mapping (``None``: all defaults).
        source: the file the values came from; the older form ``"file:group"`` also works.
        key: the dotted key of the group (for messages, e.g. ``"em"``).
        sources: dotted key -> file, where several files were merged (:func:`merged_params`).

    Raises:
        ParamError: an unknown key, a value of the wrong type or outside the declared range, or a
            combination the dataclass rejects; the message names the file, the key and the value.
    """
    if key is None:
        source, key = _split_source(source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ParamError(
            _file_of(key, source, sources),
            f"{key or cls.__name__} = {_show(data)}: expected a mapping "
            f"of keys ({', '.join(f.name for f in dataclasses.fields(cls))})",
        )
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(names))
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise ParamError(
            _file_of(where, source, sources),
            f"unknown key {where!r} for {cls.__name__}",
            f"known: {', '.join(sorted(names))}",
        )
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        dotted = f"{key}.{name}" if key else str(name)
        ftype = hints.get(name, Any)
        if dataclasses.is_dataclass(ftype) and isinstance(ftype, type):
            kwargs[name] = from_dict(ftype, value, source, key=dotted, sources=sources)
            continue
        try:
            kwargs[name] = _check_value(ftype, value, dotted, names[name].metadata.get("range"))
        except ParamValueError as exc:
            raise ParamError(_file_of(dotted, source, sources), str(exc)) from exc
    try:
        return cls(**kwargs)
    except ParamValueError as exc:  # a field checked by the dataclass itself
        dotted = f"{key}.{exc.key}" if key else exc.key
        raise ParamError(
            _file_of(dotted, source, sources), f"{dotted} = {_show(exc.value)}: expected {exc.allowed}"
        ) from exc
    except (ValueError, TypeError) as exc:  # a combination of fields the dataclass rejects
        raise ParamError(
            _file_of(key, source, sources), f"{key or cls.__name__}: {' '.join(str(exc).split())}"
        ) from exc


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of ``cls``; a settings class must use names its module can resolve."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError) as exc:
        raise TypeError(
            f"{cls.__qualname__}: field types cannot be resolved ({exc}): define settings classes at "
            "module level with their field types importable there"
        ) from exc


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join((["null"] if len(rest) < len(args) else []) + [_describe(a) for a in rest])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} {_plural(args[0]) if len(set(args)) == 1 else 'values'}"
    if tp is Path:
        return "a path"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} settings"
    return getattr(tp, "__name__", str(tp))


def _plural(tp: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(tp, _describe(tp))


def _check_value(tp: Any, value: Any, key: str, rng: Range | None) -> Any:
    """``value`` converted to ``tp`` (lists to tuples, ints to floats) or :class:`ParamValueError`."""

    def fail() -> ParamValueError:
        allowed = _describe(tp)
        extra = rng.describe() if rng is not None else ""
        if extra:
            allowed = f"{allowed} {extra}" if not extra.startswith("one of") else extra
        if isinstance(value, str) and "number" in allowed and _is_number(value):
            allowed += f" (YAML reads {value} as text: write it with a decimal point, e.g. 1.0e-3)"
        return ParamValueError(key, value, allowed)

    out = _convert(tp, value, rng)
    if out is _BAD:
        raise fail()
    return out


_BAD = object()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _convert(tp: Any, value: Any, rng: Range | None) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return tuple(value) if isinstance(value, list) else value
    if origin in (Union, types.UnionType):
        if value is None:
            return None if type(None) in args else _BAD
        for a in args:
            if a is type(None):
                continue
            out = _convert(a, value, rng)
            if out is not _BAD:
                return out
        return _BAD
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return _BAD
        if len(args) == 2 and args[1] is Ellipsis:
            items = [_convert(args[0], v, rng) for v in value]
        elif args:
            if len(value) != len(args):
                return _BAD
            items = [_convert(a, v, rng) for a, v in zip(args, value, strict=True)]
        else:
            items = list(value)
        return _BAD if any(i is _BAD for i in items) else tuple(items)
    if origin is Literal:
        return value if value in args and type(value) in {type(a) for a in args} else _BAD
    if tp is bool:
        out = value if isinstance(value, bool) else _BAD
    elif tp is int:
        out = value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    elif tp is float:
        out = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _BAD
    elif tp is str:
        out = value if isinstance(value, str) else _BAD
    elif tp is Path:
        out = Path(value) if isinstance(value, (str, Path)) else _BAD
    elif origin is dict or tp is dict:
        out = value if isinstance(value, dict) else _BAD
    elif isinstance(tp, type):
        out = value if isinstance(value, tp) else _BAD
    else:
        out = value
    if out is not _BAD and rng is not None and not rng.ok(out):
        return _BAD
    return out


__all__ = [
    "CROSS_CHECKS",
    "DEFAULT_PARAMS",
    "PARAM_GROUPS",
    "ParamError",
    "ParamValueError",
    "Range",
    "check_fields",
    "check_params",
    "deep_merge",
    "from_dict",
    "group",
    "load_params",
    "merged_params",
    "nonnegative",
    "param",
    "positive",
    "probability",
]
