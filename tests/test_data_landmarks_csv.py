"""The landmark CSV: round trip, and every kind of bad row reported with file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from focus.data.landmarks_csv import HEADER, format_landmarks_csv, read_landmarks_csv, write_landmarks_csv
from focus.errors import InputFileError


def _row(name: str, rng: np.random.Generator) -> str:
    return name + "," + ",".join(f"{v:.3f}" for v in rng.uniform(0, 64, 136))


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lms = rng.uniform(0, 200, (5, 68, 2))
    names = [f"sub/{i}.jpg" for i in range(5)]
    write_landmarks_csv(tmp_path / "l.csv", names, lms)
    t = read_landmarks_csv(tmp_path / "l.csv", strict=True)
    assert t.names == tuple(names) and t.lines == (2, 3, 4, 5, 6)
    np.testing.assert_allclose(t.landmarks, lms, atol=5e-4)
    assert (tmp_path / "l.csv").read_text().splitlines()[0] == ",".join(HEADER)
    assert HEADER[1:5] == ("x1", "y1", "x2", "y2") and HEADER[-1] == "y68" and len(HEADER) == 137


def test_bad_rows_are_reported_with_their_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    good = [_row(f"{i}.png", rng) for i in range(3)]
    short = "short.png," + ",".join(["1.0"] * 100)
    nan = _row("nan.png", rng).rsplit(",", 1)[0] + ",nan"
    text = _row("a.png", rng).split(",")
    text[5] = "abc"
    word = ",".join(text).replace("a.png", "word.png", 1)
    dup = good[0]
    empty = "," + ",".join(["1"] * 136)
    lines = [",".join(HEADER), good[0], short, good[1], nan, "", word, dup, empty, good[2]]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    t = read_landmarks_csv(tmp_path / "l.csv")
    assert t.names == ("0.png", "1.png", "2.png")
    probs = {p.line: p for p in t.problems}
    assert set(probs) == {3, 5, 7, 8, 9}
    assert "101 columns" in probs[3].problem and probs[3].name == "short.png"
    assert "NaN" in probs[5].problem and "y68" in probs[5].problem
    assert "not a number" in probs[7].problem and "'abc'" in probs[7].problem
    assert "duplicate" in probs[8].problem and "line 2" in probs[8].problem
    assert "empty image name" in probs[9].problem
    assert str(tmp_path / "l.csv") + ":3" in str(probs[3])
    with pytest.raises(InputFileError, match=r"l\.csv: line 3 \(short\.png\): 101 columns"):
        read_landmarks_csv(tmp_path / "l.csv", strict=True)


def test_bad_header_and_missing_file_are_fatal(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("name,x0,y0\nfoo,1,2\n")
    with pytest.raises(InputFileError, match="bad header"):
        read_landmarks_csv(tmp_path / "h.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(InputFileError, match="empty"):
        read_landmarks_csv(tmp_path / "e.csv")
    with pytest.raises(InputFileError, match="not found"):
        read_landmarks_csv(tmp_path / "missing.csv")


def test_writer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="68, 2"):
        format_landmarks_csv(["a"], np.zeros((1, 5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        format_landmarks_csv(["a"], np.full((1, 68, 2), np.nan))
    with pytest.raises(ValueError, match="commas"):
        format_landmarks_csv(["a,b"], np.zeros((1, 68, 2)))


def test_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts the file with a byte-order mark: the header must still match."""
    rng = np.random.default_rng(2)
    text = ",".join(HEADER) + "\n" + _row("a.png", rng) + "\n" + _row("b.png", rng) + "\r\n"
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    t = read_landmarks_csv(tmp_path / "bom.csv", strict=True)
    assert t.names == ("a.png", "b.png") and t.landmarks.shape == (2, 68, 2)
