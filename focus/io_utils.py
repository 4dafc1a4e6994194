"""Atomic file writes: a reader never sees a half-written file, an interrupted run leaves none."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("focus.io")

#: A temporary file of :func:`atomic_path`: ``.<name>.<8 random characters><suffix>``.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}(?P<suffix>\.[^.]+)?$")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file keeps the final suffix (so writers that dispatch on the extension,
    like ``numpy.savez`` or ``PIL``, behave). On an exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Temporary files that :func:`atomic_path` left in ``folder`` when its process was killed
    mid-write (``SIGKILL``, power loss: no ``except`` ran); only those of ``name`` if given."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in sorted(folder.iterdir()):
        m = _TEMPORARY.match(p.name)
        if not m or not p.is_file():
            continue
        stem, suffix = m.group("name"), m.group("suffix") or ""
        if not stem.endswith(suffix) and Path(stem).suffix != "":
            continue
        if name is None or stem == name:
            found.append(p)
    return found


def remove_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete :func:`stale_temporaries` (call it where no other process writes into ``folder``
    the same names, e.g. at the start of the stage that owns it); returns what was removed."""
    removed = []
    for p in stale_temporaries(folder, name):
        p.unlink(missing_ok=True)
        removed.append(p)
        log.info("removed %s, left by an interrupted write", p)
    return removed


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")
