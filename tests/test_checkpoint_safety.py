"""Every ``.pt`` the CLI and the stages accept is read without running code: a crafted pickle is
refused with one line naming the file (``--model``, the identity networks, the resumable training
state); a file of another kind is named as such, with the option that takes it."""

from __future__ import annotations

import pathlib
import random

import numpy as np
import pytest
import torch
from test_apps_reconstruct import tiny_checkpoint

from focus.cli import main as focus_main
from focus.errors import InputFileError
from focus.idnet.network import IdentityNetSettings, build_identity_net, load_identity_net, save_identity_net
from focus.nets.checkpoint import RefusedFileError, load_torch_file
from focus.nets.perceptual import PerceptualNet
from focus.train.pipeline import load_perceptual
from focus.train.settings import TrainSettings
from focus.train.state import LAST, find_resumable, load_checkpoint, rng_state, save_checkpoint, set_rng_state

pytestmark = pytest.mark.usefixtures("one_thread")


class _Payload:
    """Unpickling this creates ``marker`` (what a malicious file would do with worse code)."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _crafted(path: pathlib.Path, marker: pathlib.Path, **entries) -> pathlib.Path:
    """A ``.pt`` that looks like a checkpoint but runs ``marker.touch()`` when unpickled."""
    torch.save({**entries, "payload": _Payload(marker)}, path)
    return path


def test_the_payload_is_real(tmp_path):
    """Loaded the unsafe way, the crafted file does run its code (so the tests below can fail)."""
    marker = tmp_path / "ran"
    torch.load(_crafted(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()


def _one_line_naming(text: str, path: pathlib.Path) -> None:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert str(path) in lines[0] and "refused" in lines[0], text


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("safety"))


def test_crafted_model_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "focus.pt", marker, format="focus-train")
    rc = focus_main(
        [
            "reconstruct",
            str(tmp_path / "photo.png"),
            "--out",
            str(tmp_path / "out"),
            "--model",
            str(evil),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert rc == 1
    _one_line_naming(capsys.readouterr().err, evil)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_crafted_identity_networks_are_refused(model, tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "idnet.pt", marker, format="focus-idnet")
    for choice in (str(evil), f"arcface:{evil}"):
        rc = focus_main(
            [
                "reconstruct",
                str(tmp_path / "photo.png"),
                "--out",
                str(tmp_path / "out"),
                "--model",
                str(model),
                "--adapt",
                "1",
                "--adapt-identity",
                choice,
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        assert rc == 1
        _one_line_naming(capsys.readouterr().err, evil)
    for kind in ("focus", "arcface"):  # the training's train.identity_path
        with pytest.raises(RefusedFileError) as exc:
            load_perceptual(TrainSettings(identity=kind, identity_path=str(evil)))
        _one_line_naming(str(exc.value), evil)
    for load in (load_identity_net, PerceptualNet.from_arcface):
        with pytest.raises(RefusedFileError, match="refused"):
            load(evil)
    assert not marker.exists()


def test_crafted_resume_state_is_refused(tmp_path):
    marker = tmp_path / "ran"
    run_dir = tmp_path / "checkpoints" / "em"
    run_dir.mkdir(parents=True)
    evil = _crafted(run_dir / LAST, marker, fingerprint="abc", format="focus-train")
    with pytest.raises(InputFileError) as exc:
        find_resumable(run_dir, "abc")
    _one_line_naming(str(exc.value), evil)
    assert not marker.exists()
    assert evil.is_file()  # refused, not deleted


def test_a_corrupt_resume_state_still_starts_afresh(tmp_path):
    (tmp_path / LAST).write_bytes(b"truncated")
    assert find_resumable(tmp_path, "abc") is None


def test_resume_state_is_tensors_and_plain_data(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    np.random.normal()  # a cached Gaussian in numpy's state
    path = save_checkpoint(tmp_path / LAST, {"fingerprint": "f", "rng": rng_state()})
    state = torch.load(path, map_location="cpu", weights_only=True)  # raised UnpicklingError before
    expected = (torch.rand(3), np.random.normal(size=3), np.random.rand(2), random.random())
    set_rng_state(load_checkpoint(path)["rng"])
    again = (torch.rand(3), np.random.normal(size=3), np.random.rand(2), random.random())
    assert torch.equal(expected[0], again[0])
    np.testing.assert_array_equal(expected[1], again[1])
    np.testing.assert_array_equal(expected[2], again[2])
    assert expected[3] == again[3]
    assert state["fingerprint"] == "f"


def test_model_option_names_other_kinds_of_file(model, tmp_path, capsys):
    torch.manual_seed(0)
    net = build_identity_net(IdentityNetSettings(crop_size=28, base_width=8, embedding_dim=16))
    save_identity_net(net, tmp_path / "idnet.pt")
    torch.save(net.state_dict(), tmp_path / "backbone.pth")
    base = ["reconstruct", str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]
    assert focus_main(base + ["--model", str(tmp_path / "idnet.pt")]) == 1
    err = capsys.readouterr().err
    assert "idnet.pt: not a FOCUS checkpoint" in err and "identity network" in err and "--adapt-identity" in err
    assert focus_main(base + ["--model", str(tmp_path / "backbone.pth")]) == 1
    err = capsys.readouterr().err
    assert "not a FOCUS checkpoint" in err and "backbone.pth" in err and "arcface:FILE" in err
    # and the other way round: a FOCUS checkpoint as the identity network
    assert focus_main(base + ["--model", str(model), "--adapt", "1", "--adapt-identity", str(model)]) == 1
    err = capsys.readouterr().err
    assert f"{model}: not a focus-idnet checkpoint: it is a FOCUS checkpoint" in err and "--model" in err
    assert focus_main(base + ["--model", str(model), "--adapt", "1", "--adapt-identity", f"arcface:{model}"]) == 1
    assert "it is a FOCUS checkpoint" in capsys.readouterr().err


def test_unreadable_files_give_one_line(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"hello")
    with pytest.raises(InputFileError) as exc:
        load_torch_file(tmp_path / "junk.pt", "FOCUS checkpoint")
    assert "\n" not in str(exc.value) and str(tmp_path / "junk.pt") in str(exc.value)
    assert not isinstance(exc.value, RefusedFileError)


def test_crafted_identity_training_files_are_refused(tmp_path):
    from focus.idnet.stage import _cached_sets
    from focus.idnet.training import _load_resume

    marker = tmp_path / "ran"
    evil = _crafted(tmp_path / "resume.pt", marker, fingerprint="k", key="k")
    with pytest.raises(RefusedFileError, match="resume.pt"):
        _load_resume(evil, "k")
    with pytest.raises(RefusedFileError, match="resume.pt"):
        _cached_sets(evil, "k", lambda: pytest.fail("must not rebuild over a refused file"))
    assert not marker.exists() and evil.is_file()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert _load_resume(tmp_path / "junk.pt", "k") is None  # a corrupt one is still ignored
