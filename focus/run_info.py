"""How a run went (wall-clock seconds, machine load, what it resumed from) kept apart from what it
computed, so that the hashed outputs of a stage depend only on code, params and inputs.

:func:`write_json_reproducible` writes a stage's JSON without those values and puts them beside it
in ``<name>.timings.json`` (``reports/idnet/run.json`` -> ``reports/idnet/run.timings.json``).
``.dvcignore`` hides ``*.timings.json`` from DVC: they are logs, committed with the reports but not
outputs of the graph, and they differ from run to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from focus.io_utils import write_json_atomic

#: Keys whose values describe the run rather than its result (they differ between identical runs).
VOLATILE_KEYS = frozenset(
    {
        "seconds",
        "seconds_per_image",
        "cpu_count",
        "load_average_start",
        "load_average_end",
        "data_from_cache",
        "resumed_from",
        "resumed_from_epoch",
    }
)

TIMINGS_SUFFIX = ".timings.json"


def timings_path(path: str | Path) -> Path:
    """``reports/x/summary.json`` -> ``reports/x/summary.timings.json``."""
    path = Path(path)
    return path.with_name(path.stem + TIMINGS_SUFFIX)


def split_volatile(obj: Any) -> tuple[Any, Any]:
    """``(result, volatile)``: ``obj`` without the :data:`VOLATILE_KEYS` at any depth (dicts and
    lists are walked; the input is not changed), and those values in the same nesting (``None``
    where there are none)."""
    if isinstance(obj, dict):
        kept, moved = {}, {}
        for k, v in obj.items():
            if k in VOLATILE_KEYS:
                moved[k] = v
                continue
            kept[k], sub = split_volatile(v)
            if sub is not None:
                moved[k] = sub
        return kept, (moved or None)
    if isinstance(obj, list):
        pairs = [split_volatile(v) for v in obj]
        moved_list = [m for _, m in pairs]
        return [k for k, _ in pairs], (moved_list if any(m is not None for m in moved_list) else None)
    return obj, None


def write_json_reproducible(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` minus its volatile values to ``path`` (atomically) and those values, if any, to
    :func:`timings_path` of ``path``; returns ``path``."""
    kept, moved = split_volatile(obj)
    write_json_atomic(path, kept)
    if moved is not None:
        write_json_atomic(timings_path(path), moved)
    return Path(path)


__all__ = ["TIMINGS_SUFFIX", "VOLATILE_KEYS", "split_volatile", "timings_path", "write_json_reproducible"]
