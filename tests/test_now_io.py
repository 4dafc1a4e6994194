"""NoW file formats: .pp landmarks, meshes, landmark files, image lists; bad input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from focus.errors import InputFileError
from focus.geometry.mesh_io import read_mesh, write_obj
from focus.now.landmark_io import read_landmarks, write_landmarks
from focus.now.layout import NowDataset, NowImage, find_prediction, read_image_list, write_prediction
from focus.now.pp_io import read_pp, write_pp


def official_line_based_pp(path: Path) -> np.ndarray:
    """The official reading: lines 9-15, ``x=``/``y=``/``z=`` tokens split on single spaces."""
    out = np.zeros((7, 3), dtype=np.float32)
    lines = path.read_text().splitlines(keepends=True)
    for j in range(8, 15):
        values = {}
        for token in lines[j].split(" "):
            key, _, rest = token.partition("=")
            if key in ("x", "y", "z"):
                values[key] = float(rest.split('"')[1])
        out[j - 8] = [values["x"], values["y"], values["z"]]
    return out


MESHLAB_PP = """<!DOCTYPE PickedPoints>
<PickedPoints>
 <DocumentData>
  <DateTime time="16:48:52" date="2018-11-20"/>
  <User name="someone"/>
  <DataFileName name="FaMoS_180424_03335_TA_neutral.obj"/>
  <templateName name=""/>
 </DocumentData>
 <point y="41.112" x="-45.251" active="1" z="-32.09" name="0"/>
 <point y="40.3" x="-15.6" active="1" z="-22.5" name="1"/>
 <point y="40.1" x="15.9" active="1" z="-22.7" name="2"/>
 <point y="41.0" x="45.2" active="1" z="-32.0" name="3"/>
 <point y="-10.5" x="0.3" active="1" z="2.25" name="4"/>
 <point y="-38.0" x="-25.0" active="1" z="-15.5" name="5"/>
 <point y="-38.2" x="25.1" active="1" z="-15.25" name="6"/>
</PickedPoints>
"""


def test_pp_reader_agrees_with_official_line_reading(tmp_path: Path) -> None:
    real_like = tmp_path / "meshlab.pp"
    real_like.write_text(MESHLAB_PP)
    ours = tmp_path / "ours.pp"
    pts = np.random.default_rng(0).normal(scale=50.0, size=(7, 3))
    write_pp(ours, pts, "scan.obj")
    for path in (real_like, ours):
        np.testing.assert_allclose(read_pp(path), official_line_based_pp(path), rtol=1e-6)
    np.testing.assert_array_equal(read_pp(ours), pts)  # exact round trip


def test_pp_reader_tolerates_layout_and_attribute_order(tmp_path: Path) -> None:
    pts = np.arange(21, dtype=float).reshape(7, 3) * 1.5
    body = "".join(
        f'<point\n   name = "{i}" z="{z}"  active="1"\ty = "{y}" x="{x}" />' for i, (x, y, z) in enumerate(pts)
    )
    path = tmp_path / "odd.pp"
    path.write_text(f"<?xml version='1.0'?><PickedPoints><DocumentData/>{body}</PickedPoints>")
    np.testing.assert_array_equal(read_pp(path), pts)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("<PickedPoints>" + '<point x="1" y="2" z="3"/>' * 6 + "</PickedPoints>", "has 6 <point> entries, need 7"),
        ("<PickedPoints>" + '<point x="1" y="2"/>' * 7 + "</PickedPoints>", "point 1 has no 'z'"),
        ("<PickedPoints>" + '<point x="1" y="a" z="3"/>' * 7 + "</PickedPoints>", "y='a' is not a number"),
        ("x=1 y=2 z=3\n" * 7, "not a valid MeshLab PickedPoints XML"),
    ],
)
def test_bad_pp_files_name_file_and_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.pp"
    path.write_text(content)
    with pytest.raises(InputFileError) as err:
        read_pp(path)
    assert str(path) in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_obj_round_trip_is_exact_and_colourless(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(1)
    v = (rng.normal(size=(50, 3)) * 123.456).astype(dtype)
    f = rng.integers(0, 50, size=(80, 3))
    path = tmp_path / "m.obj"
    write_obj(path, v, f)
    lines = path.read_text().splitlines()
    assert all(len(ln.split()) == 4 for ln in lines)  # "v x y z" / "f a b c", no colours
    assert lines[0].startswith("v ") and lines[-1].startswith("f ")
    v2, f2 = read_mesh(path)
    np.testing.assert_array_equal(v2, v.astype(np.float64))
    np.testing.assert_array_equal(f2, f)


def test_obj_reader_keeps_vertex_order_with_uvs_quads_colours_and_relative_ids(tmp_path: Path) -> None:
    path = tmp_path / "scan.obj"
    path.write_text(
        "# comment\nmtllib a.mtl\n"
        "v 0 0 0 1 0 0\nv 1 0 0 1 0 0\nv 1 1 0 0 1 0\nv 0 1 0 0 0 1\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvn 0 0 1\n"
        "usemtl x\nf 1/1/1 2/2/1 3/3/1 4/1/1\nf -4//1 -2//1 -1//1\n"
    )
    v, f = read_mesh(path)
    np.testing.assert_array_equal(v, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3], [0, 2, 3]])
    v_only, f_none = read_mesh(path, need_faces=False)
    np.testing.assert_array_equal(v_only, v)
    assert f_none.shape == (0, 3)


def test_ply_meshes_are_read(tmp_path: Path) -> None:
    import trimesh

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    f = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    path = tmp_path / "m.ply"
    trimesh.Trimesh(v, f, process=False).export(path)
    v2, f2 = read_mesh(path)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(f2, f)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n", "NaN"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "out of range"),
        ("f 1 2 3\n", "no vertices"),
    ],
)
def test_bad_meshes_name_file_and_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "pred.obj"
    path.write_text(content)
    with pytest.raises(InputFileError) as err:
        read_mesh(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_landmark_files(tmp_path: Path) -> None:
    lmk = np.random.default_rng(2).normal(size=(7, 3))
    for name in ("a.npy", "a.txt"):
        write_landmarks(tmp_path / name, lmk)
        np.testing.assert_array_equal(read_landmarks(tmp_path / name), lmk)
    # The .txt is what the official loader parses (split on single spaces).
    rows = (tmp_path / "a.txt").read_text().splitlines()
    np.testing.assert_array_equal(np.array([r.split(" ") for r in rows], dtype=float), lmk)
    np.save(tmp_path / "bad.npy", np.zeros((68, 3)))
    (tmp_path / "bad.txt").write_text("1 2 3\n4 5\n")
    for name, problem in (("bad.npy", "shape (68, 3), expected (7, 3)"), ("bad.txt", "7 lines of 3 numbers")):
        with pytest.raises(InputFileError) as err:
            read_landmarks(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and problem in str(err.value)


def test_prediction_layout_and_writer(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    img = NowImage.parse("FaMoS_180424_03335_TA/multiview_neutral/IMG_0101.jpg")
    assert img.key == "FaMoS_180424_03335_TA/multiview_neutral/IMG_0101"
    mesh, lmk = write_prediction(tmp_path, img, v, np.array([[0, 1, 2]]), np.zeros((7, 3)), landmark_format="txt")
    assert mesh == tmp_path / "FaMoS_180424_03335_TA/multiview_neutral/IMG_0101.obj"
    found = find_prediction(tmp_path, img)
    assert found.complete and found.mesh == mesh and found.landmarks == lmk
    missing = find_prediction(tmp_path, NowImage.parse("x/selfie/IMG_1.jpg"))
    assert not missing.complete


def test_image_list_errors(tmp_path: Path) -> None:
    lst = tmp_path / "imagepathsvalidation.txt"
    lst.write_text("s1/multiview_neutral/IMG_1.jpg\ns1/sideways/IMG_2.jpg\n")
    with pytest.raises(InputFileError, match="line 2: unknown challenge 'sideways'"):
        read_image_list(lst)
    lst.write_text("s1/multiview_neutral/IMG_1.jpg\ns2/selfie/IMG_2.jpg\n")
    for sub in (
        "scans/s1",
        "scans_lmks_onlypp/s1",
        "NoW_Dataset/final_release_version/iphone_pictures/s1/multiview_neutral",
    ):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "scans/s1/s1.obj").write_text("v 0 0 0\n")
    (tmp_path / "scans_lmks_onlypp/s1/s1.pp").write_text("<PickedPoints/>")
    ds = NowDataset.open(tmp_path)
    with pytest.raises(InputFileError) as err:
        ds.check(ds.images())
    msg = str(err.value)
    assert "IMG_1.jpg: image listed on line 1" in msg  # named image file does not exist
    assert str(tmp_path / "scans" / "s2") in msg and str(tmp_path / "scans_lmks_onlypp" / "s2") in msg
