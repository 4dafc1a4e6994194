"""Face-model file readers under fuzzing: any bytes, or well-formed files with wrong contents, give a
model or :class:`focus.errors.InputFileError` naming the file; never another exception or a hang."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from focus.errors import InputFileError
from focus.facemodel.loaders import load_any, load_bfm2017, load_bfm_front
from focus.facemodel.loaders.ict import read_ict_indices, read_obj_triangles, read_obj_vertices
from focus.facemodel.model import FORMAT_NAME, load_face_model

FUZZ = settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

NV = 12  # vertices of the tiny valid model


def _tiny_npz_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "format": np.array(FORMAT_NAME),
        "version": np.array(1),
        "name": np.array("tiny"),
        "mean_shape": rng.normal(size=(NV, 3)).astype(np.float32),
        "id_basis": rng.normal(size=(2, NV, 3)).astype(np.float32),
        "exp_basis": rng.normal(size=(2, NV, 3)).astype(np.float32),
        "mean_albedo": rng.uniform(size=(NV, 3)).astype(np.float32),
        "albedo_basis": rng.normal(size=(2, NV, 3)).astype(np.float32),
        "triangles": np.array([[0, 1, 2], [2, 3, 4]], dtype=np.int64),
        "landmarks68": np.arange(68, dtype=np.int64) % NV,
        "now_landmarks7": np.arange(7, dtype=np.int64),
        "id_std": np.ones(2, np.float32),
        "exp_std": np.ones(2, np.float32),
        "albedo_std": np.ones(2, np.float32),
        "region__face": np.ones(NV, bool),
    }


def _expect_model_or_file_error(path: Path, load) -> None:  # noqa: ANN001
    try:
        load(path)
    except InputFileError as exc:
        assert exc.path.name in {path.name, path.parent.name} or str(path.parent) in str(exc.path)


def _tmp(suffix: str, data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    path = folder / f"model{suffix}"
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------- the project's .npz
def test_tiny_npz_is_valid(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", **_tiny_npz_arrays())
    assert load_face_model(tmp_path / "m.npz").num_vertices == NV


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".npz", ".mat", ".h5", ".pt"]))
def test_any_bytes(data: bytes, suffix: str) -> None:
    path = _tmp(suffix, data)
    _expect_model_or_file_error(path, load_face_model)
    _expect_model_or_file_error(path, load_any)


_WRONG_VALUES = st.one_of(
    st.just(np.array([np.nan, 1.0], np.float32)),
    st.just(np.full((NV, 3), np.inf, np.float32)),
    st.just(np.zeros((0,), np.float32)),
    st.just(np.zeros((NV, 4), np.float32)),
    st.just(np.zeros((2, 3, NV), np.float32)),
    st.just(np.array(["a", "b"])),
    st.just(np.array(b"bytes")),
    st.just(np.ones((NV, 3), np.complex64)),
    st.just(np.ones((NV, 3), bool)),
    st.just(np.array([[0, 1, 2.5]])),
    st.just(np.array([[0, 1, 99]], np.int64)),
    st.just(np.array([[-1, 0, 1]], np.int64)),
    st.just(np.array([2**63 + 5], np.uint64)),
    st.just(np.zeros((2, 2), dtype=[("a", "<f4"), ("b", "<i4")])),
    st.just(np.array([{"x": 1}, None], dtype=object)),
    st.just(np.array("focus-facemodel" * 3)),
)


@FUZZ
@given(key=st.sampled_from(sorted(_tiny_npz_arrays())), value=st.one_of(st.none(), _WRONG_VALUES))
def test_npz_with_a_missing_or_wrong_entry(key: str, value: np.ndarray | None) -> None:
    arrays = _tiny_npz_arrays()
    if value is None:
        del arrays[key]
    else:
        arrays[key] = value
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # object arrays are pickled here; the reader must never unpickle them
    path = _tmp(".npz", buf.getvalue())
    _expect_model_or_file_error(path, load_face_model)


def _npz_with_header(shape: tuple[int, ...], descr: str, payload: bytes) -> bytes:
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    npy.write(payload)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in _tiny_npz_arrays().items():
            if k == "mean_shape":
                continue
            b = io.BytesIO()
            np.save(b, v)
            zf.writestr(f"{k}.npy", b.getvalue())
        zf.writestr("mean_shape.npy", npy.getvalue())
    return out.getvalue()


@pytest.mark.parametrize("shape", [(10**12, 3), (2**40,), (10**6, 10**6, 3)])
def test_npz_header_promising_huge_arrays_is_refused_before_reading(shape: tuple[int, ...]) -> None:
    path = _tmp(".npz", _npz_with_header(shape, "<f4", b"\0" * 64))
    with pytest.raises(InputFileError, match="truncated"):
        load_face_model(path)


def test_npz_zip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import focus.facemodel.model as M

    monkeypatch.setattr(M, "MAX_MODEL_BYTES", 1 << 20)  # the same check as for 4 GiB, on a small file
    path = _tmp(".npz", _npz_with_header((1 << 19,), "<f4", b"\0" * (1 << 21)))
    with pytest.raises(InputFileError, match="more than any face model"):
        load_face_model(path)


# ---------------------------------------------------------------------- MATLAB (.mat): BFM 2009 / front
def _front_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    tris = np.array([[1, 2, 3], [3, 4, 5]], dtype=np.float64)
    return {
        "meanshape": rng.normal(size=(1, 3 * NV)),
        "idBase": rng.normal(size=(3 * NV, 2)),
        "exBase": rng.normal(size=(3 * NV, 2)),
        "meantex": rng.uniform(0, 255, size=(1, 3 * NV)),
        "texBase": rng.normal(size=(3 * NV, 2)),
        "tri": tris,
        "keypoints": (np.arange(68) % NV + 1)[None, :].astype(np.float64),
    }


_MAT_WRONG = st.one_of(
    _WRONG_VALUES.filter(lambda a: a.dtype.kind not in "OVc" and a.dtype != np.uint64),
    st.just(np.array([[0.0, 1, 2]])),  # 0 in 1-based ids
    st.just(np.array([[1.0, 2, 1e12]])),
    st.just(np.array([1, "x"], dtype=object)),  # a cell array
)


@FUZZ
@given(key=st.sampled_from(sorted(_front_arrays())), value=st.one_of(st.none(), _MAT_WRONG))
def test_front_mat_with_a_missing_or_wrong_variable(key: str, value: np.ndarray | None) -> None:
    arrays = _front_arrays()
    if value is None:
        del arrays[key]
    else:
        arrays[key] = value
    path = _tmp(".mat", b"")
    scipy.io.savemat(path, arrays)
    _expect_model_or_file_error(path, lambda p: load_bfm_front(p, n_id=None, n_exp=None, n_albedo=None))
    _expect_model_or_file_error(path, lambda p: load_any(p, format="bfm2009"))


@FUZZ
@given(data=st.binary(max_size=1024), cut=st.integers(0, 4000))
def test_mat_bytes_and_truncations(data: bytes, cut: int) -> None:
    buf = io.BytesIO()
    scipy.io.savemat(buf, _front_arrays(), do_compression=bool(cut % 2))
    valid = buf.getvalue()
    for blob in (data, valid[:cut] + data, b"MATLAB 5.0 MAT-file" + data):
        path = _tmp(".mat", blob)
        _expect_model_or_file_error(path, load_any)
        _expect_model_or_file_error(path, lambda p: load_bfm_front(p))


def test_mat_decompression_bomb_is_refused_before_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    import focus.facemodel.model as M

    monkeypatch.setattr(M, "MAX_MODEL_BYTES", 1 << 20)  # the same check as for 4 GiB, on a small file
    arrays = _front_arrays()
    arrays["idBase"] = np.zeros((3 * NV, 20_000))  # ~5.8 MB of zeros, a few kB compressed
    path = _tmp(".mat", b"")
    scipy.io.savemat(path, arrays, do_compression=True)
    assert path.stat().st_size < (1 << 20)
    with pytest.raises(InputFileError, match="more than any face model"):
        load_bfm_front(path)
    monkeypatch.setattr(M, "MAX_MODEL_BYTES", 1 << 30)
    assert load_bfm_front(path, n_id=2).n_id == 2


# ---------------------------------------------------------------------- BFM 2017 (.h5)
_H5_KEYS = (
    "shape/model/mean",
    "shape/model/pcaBasis",
    "shape/model/pcaVariance",
    "expression/model/mean",
    "color/model/pcaBasis",
    "shape/representer/cells",
    "metadata/landmarks/json",
)


def _write_h5(path: Path, key: str, value: object) -> None:
    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        for group in ("shape", "expression", "color"):
            for name, arr in (
                ("mean", rng.normal(size=3 * NV)),
                ("pcaBasis", rng.normal(size=(3 * NV, 2))),
                ("pcaVariance", np.ones(2)),
            ):
                full = f"{group}/model/{name}"
                if full != key:
                    f.create_dataset(full, data=arr)
        if key != "shape/representer/cells":
            f.create_dataset("shape/representer/cells", data=np.array([[0, 2], [1, 3], [2, 4]]))
        if value is not None:
            if key in f:
                del f[key]
            f.create_dataset(key, data=value)


_H5_WRONG = st.one_of(
    _WRONG_VALUES.filter(lambda a: a.dtype.kind not in "OU"),
    st.just(np.full(3 * NV, np.nan)),
    st.just(-np.ones(2)),
    st.just(json.dumps({"center.nose.tip": [0, "x"], "a": None})),
    st.just(json.dumps([{"id": 5}, 3, "x"])),
    st.just("{not json"),
)


@FUZZ
@given(key=st.sampled_from(_H5_KEYS), value=st.one_of(st.none(), _H5_WRONG))
def test_bfm2017_h5_with_a_missing_or_wrong_dataset(key: str, value: object) -> None:
    path = _tmp(".h5", b"")
    _write_h5(path, key, value)
    _expect_model_or_file_error(path, lambda p: load_bfm2017(p, landmarks68=list(range(NV)) * 5 + list(range(8))))


def test_bfm2017_dataset_declaring_a_huge_shape_is_refused_before_reading() -> None:
    path = _tmp(".h5", b"")
    _write_h5(path, "shape/model/mean", None)
    with h5py.File(path, "a") as f:  # consistent shapes, 12 TB promised, nothing stored
        del f["shape/model/pcaBasis"]
        f.create_dataset("shape/model/mean", shape=(3 * 10**12,), dtype="f4", chunks=(10**5,))
        f.create_dataset("shape/model/pcaBasis", shape=(3 * 10**12, 2), dtype="f4", chunks=(10**5, 1))
    with pytest.raises(InputFileError, match="larger than any face model"):
        load_bfm2017(path, landmarks68=list(range(NV)) * 5 + list(range(8)))


# ---------------------------------------------------------------------- ICT-FaceKit pieces
@FUZZ
@example(data=b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999\n")
@given(data=st.binary(max_size=1024) | st.text(alphabet="vf /-0123456789.e\nnaix", max_size=300).map(str.encode))
def test_obj_readers_on_any_bytes(data: bytes) -> None:
    path = _tmp(".obj", data)
    try:
        v = read_obj_vertices(path)
    except InputFileError as exc:
        assert exc.path == path
        return
    try:
        read_obj_triangles(path, len(v))
    except InputFileError as exc:
        assert exc.path == path


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=80,
)


@FUZZ
@given(
    value=_JSON,
    landmarks=st.one_of(_JSON, st.lists(st.integers(-5, 2**70), min_size=68, max_size=68)),
    names=_JSON,
    raw=st.binary(max_size=200),
)
def test_ict_indices_file(value: object, landmarks: object, names: object, raw: bytes) -> None:
    structured = {"idx_to_landmark_verts": landmarks, "expressions": names}
    for blob in (json.dumps(value).encode(), json.dumps(structured).encode(), raw):
        path = _tmp(".json", blob)
        try:
            lm, expr = read_ict_indices(path, 100)
        except InputFileError as exc:
            assert exc.path == path
            continue
        assert lm.shape == (68,) and lm.dtype == np.int64 and 0 <= lm.min() and lm.max() < 100
        assert all(isinstance(n, str) and n and "/" not in n and "\\" not in n and "\0" not in n for n in expr)
