"""Readers of user files under fuzzing: any bytes give a result or an InputFileError naming the file.

Covers the mesh reader (OBJ, PLY), MeshLab ``.pp`` scan landmarks and prediction landmark files
(``.npy``, ``.txt``). Inputs are random bytes and mutations of valid files (so that the parsers'
deeper paths are reached), 150 examples per reader, each under a deadline (no hang). Bugs these
found: ``.npy`` headers that numpy's parser rejects with SyntaxError/TokenError, OBJ face ids
beyond 64 bits (OverflowError).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focus.errors import InputFileError
from focus.geometry.mesh_io import read_mesh
from focus.now.landmark_io import read_landmarks
from focus.now.pp_io import read_pp

#: ``FUZZ_N=5000 pytest tests/test_now_fuzz_readers.py`` runs a longer, randomised search.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_N", 150)),
    deadline=2000,
    database=None,
    derandomize="FUZZ_N" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID_OBJ = b"# scan\nv 0 0 0 1 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0.5\nvt 0 0\nvn 0 0 1\nf 1/1/1 2/1/1 3/1/1\nf -3 -2 -1 1\n"
VALID_PP = (
    b'<!DOCTYPE PickedPoints>\n<PickedPoints>\n <DocumentData>\n  <DataFileName name="s.obj"/>\n </DocumentData>\n'
    + b"".join(b' <point x="%d.5" y="-2e1" z="3" active="1" name="%d"/>\n' % (i, i) for i in range(7))
    + b"</PickedPoints>\n"
)
VALID_TXT = b"".join(b"%d.25 -1e-3 7\n" % i for i in range(7))


def _ply(ascii_format: bool) -> bytes:
    import trimesh

    mesh = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]], [[0, 1, 2], [1, 3, 2]], process=False)
    return trimesh.exchange.ply.export_ply(mesh, encoding="ascii" if ascii_format else "binary")


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(21, dtype=np.float64).reshape(7, 3))
    return buf.getvalue()


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """A valid file with a few bytes replaced, inserted or cut, or truncated."""

    @st.composite
    def strategy(draw: st.DrawFn) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(data)))
            op = draw(st.sampled_from(["replace", "insert", "cut", "truncate"]))
            chunk = draw(
                st.binary(min_size=1, max_size=8) | st.sampled_from([b"-", b"9" * 30, b"nan", b"\x00", b" ", b"\n"])
            )
            if op == "replace":
                data[pos : pos + len(chunk)] = chunk
            elif op == "insert":
                data[pos:pos] = chunk
            elif op == "cut":
                del data[pos : pos + len(chunk)]
            else:
                del data[pos:]
        return bytes(data)

    return strategy()


def any_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=600) | mutated(valid)


def _check(reader, path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = reader(path)
    except InputFileError as exc:
        assert str(path) in str(exc)
        return
    arrays = out if isinstance(out, tuple) else (out,)
    assert all(isinstance(a, np.ndarray) for a in arrays)
    assert arrays[0].ndim == 2 and arrays[0].shape[1] == 3 and np.isfinite(arrays[0]).all()


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@FUZZ
@given(data=any_bytes(VALID_OBJ), need_faces=st.booleans())
def test_obj_reader(folder: Path, data: bytes, need_faces: bool) -> None:
    _check(lambda p: read_mesh(p, need_faces=need_faces), folder / "pred.obj", data)


@FUZZ
@given(data=any_bytes(_ply(True)) | mutated(_ply(False)), need_faces=st.booleans())
def test_ply_reader(folder: Path, data: bytes, need_faces: bool) -> None:
    _check(lambda p: read_mesh(p, need_faces=need_faces), folder / "pred.ply", data)


@FUZZ
@given(data=any_bytes(VALID_PP))
def test_pp_reader(folder: Path, data: bytes) -> None:
    _check(read_pp, folder / "scan.pp", data)


@FUZZ
@given(data=any_bytes(_npy()))
def test_npy_landmark_reader(folder: Path, data: bytes) -> None:
    _check(read_landmarks, folder / "lmk.npy", data)


@FUZZ
@given(data=any_bytes(VALID_TXT))
def test_txt_landmark_reader(folder: Path, data: bytes) -> None:
    _check(read_landmarks, folder / "lmk.txt", data)
