"""Readers of user files under fuzzing (hypothesis): any bytes give a result or the project's own
error naming the file -- never another exception, a hang or unbounded memory."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from focus.data.landmarks_csv import HEADER, read_landmarks_csv
from focus.errors import InputFileError

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(data: bytes, name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    p = d / name
    p.write_bytes(data)
    return p


def _csv_bytes() -> st.SearchStrategy[bytes]:
    """Raw bytes, and near-valid CSVs: the right header (maybe with a BOM) and rows of mixed cells."""
    cell = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=6),
        st.sampled_from(['"', '""', '"a,b"', "\x00", "\r", "1e999", "nan", " 1 ", "\ufeff1", '"' + "x" * 140_000]),
    )
    row = st.lists(cell, min_size=0, max_size=140).map(",".join)
    text = st.tuples(
        st.sampled_from(["", "\ufeff"]), st.lists(row, max_size=4), st.sampled_from(["\n", "\r\n", "\r"])
    ).map(lambda t: t[0] + t[2].join([",".join(HEADER), *t[1]]))
    return st.one_of(st.binary(max_size=600), text.map(lambda s: s.encode("utf-8", "surrogatepass")))


@FUZZ
@given(data=_csv_bytes(), strict=st.booleans())
def test_landmark_csv_any_bytes(data, strict):
    path = _write(data, "lm.csv")
    try:
        t = read_landmarks_csv(path, strict=strict)
    except InputFileError as exc:
        assert str(path) in str(exc)
        return
    assert t.landmarks.shape == (len(t.names), 68, 2) and np.isfinite(t.landmarks).all()
    for p in t.problems:
        assert p.path == path


def _image_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8))
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _image_seeds()


@st.composite
def _mutated_image(draw) -> bytes:
    """A valid small image file with some bytes changed, cut short or extended."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(8, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=16))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF it skips
@FUZZ
@given(data=st.one_of(st.binary(max_size=300), _mutated_image()))
def test_read_photo_any_bytes(data):
    from focus.apps.photos import read_photo

    path = _write(data, "photo.png")
    try:
        photo = read_photo(path, max_megapixels=4.0)
    except InputFileError as exc:
        assert str(path) in str(exc)
        return
    assert photo.pixels.ndim == 3 and photo.pixels.shape[2] == 3 and np.isfinite(photo.pixels).all()
    assert 0.0 <= photo.pixels.min() and photo.pixels.max() <= 1.0


_part = st.sampled_from(["a", "A", "b", ".h", "sub", "a.png", "x_2"])
_names = st.lists(st.lists(_part, min_size=1, max_size=3).map("/".join).map(lambda n: n + ".png"), max_size=8)


@settings(max_examples=300, deadline=2000)
@given(names=_names, reserved=st.lists(st.lists(_part, min_size=1, max_size=3).map("/".join), max_size=5))
def test_unique_stems_terminate_and_never_clash(names, reserved):
    """Output names: unique (ignoring case), never a reserved name, never inside another's folder."""
    from focus.apps.photos import unique_stems

    stems = [s.lower() for s in unique_stems(list(dict.fromkeys(names)), reserved).values()]
    res = {r.lower() for r in reserved}
    assert len(set(stems)) == len(stems) and not set(stems) & res
    for s in stems:
        assert not any(p.startswith(".") for p in s.split("/"))
        assert not any(o.startswith(s + "/") or s.startswith(o + "/") for o in [*stems, *res] if o != s), s


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(["images", "status", "folder", "faces", "face", "notes", "path", "source"]), c, max_size=4
        )
    ),
    max_leaves=12,
)


_entry = st.fixed_dictionaries(
    {"status": st.sampled_from(["ok", "failed", 1]), "folder": st.sampled_from(["ok", "../ok", "/ok", "gone", 3, ""])},
    optional={
        "faces": st.lists(st.one_of(_json, st.fixed_dictionaries({"face": st.integers(-2, 3)})), max_size=3),
        "notes": _json,
        "path": _json,
        "source": _json,
    },
)
_report = st.one_of(_json, st.fixed_dictionaries({"images": st.lists(_entry, max_size=4)}))


@FUZZ
@given(doc=st.one_of(_report.map(lambda d: json.dumps(d).encode()), st.binary(max_size=200)))
def test_earlier_report_any_content(doc):
    """An earlier report.json that was edited or cut short never stops a run: its usable entries or none."""
    from focus.apps.reconstruct import read_earlier_results

    path = _write(doc, "report.json")
    (path.parent / "ok").mkdir()
    for o in read_earlier_results(path.parent):
        assert o.earlier and o.status == "ok" and (path.parent / o.folder).is_dir()
        assert all(f["folder"].startswith(o.folder + "/face_") for f in o.faces)
