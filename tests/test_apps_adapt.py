"""Test-time adaptation (``focus reconstruct --adapt``): the five-point landmark term, the landmark
targets of the perceptual crops, and the EM on copies of the networks (inputs untouched, repeatable,
the adapted networks differ and fit the batch better)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_apps_reconstruct import SIZE, _portraits_with_landmarks, tiny_checkpoint

from focus import losses as L
from focus.apps.adapt import AdaptSettings, _targets, adapt_networks, five_point_loss
from focus.apps.detect import CsvLandmarks
from focus.apps.reconstruct import Reconstructor, ReconstructSettings, load_adapt_perceptual, load_focus_model
from focus.cli import main as focus_main
from focus.errors import InputFileError
from focus.idnet.network import IdentityNetSettings, build_identity_net, save_identity_net
from focus.nets.face_align import detector_five_points
from focus.predictor import encode_render
from focus.train.settings import EMSettings, OptimSettings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny untrained checkpoint with an identity network beside it (``idnet.pt``)."""
    root = tmp_path_factory.mktemp("adapt")
    ckpt = tiny_checkpoint(root)
    torch.manual_seed(0)
    save_identity_net(
        build_identity_net(
            IdentityNetSettings(crop_size=28, layers=(1, 1, 1, 1), base_width=8, embedding_dim=32)
        ).eval(),
        root / "idnet.pt",
    )
    return root, ckpt


def _batch(model, n: int = 3, seed: int = 0):
    """Renders of random faces over noise ``(n, 3, S, S)`` with their 5 and 68 landmarks."""
    g = torch.Generator().manual_seed(seed)
    r = model.renderer
    c = r.layout.zeros(n)
    c = replace(c, id=torch.randn(c.id.shape, generator=g), albedo=torch.randn(c.albedo.shape, generator=g) * 0.5)
    with torch.no_grad():
        out = r(c)
    noise = torch.rand(out.image.shape, generator=g)
    image = (out.mask * out.image.clamp(0, 1) + (1 - out.mask) * noise).float()
    image[:, :, SIZE // 2 : SIZE // 2 + 5, SIZE // 3 : SIZE // 3 + 8] = torch.tensor([0.1, 0.8, 0.2])[
        :, None, None
    ]  # occluder
    return image, detector_five_points(out.landmarks), out.landmarks


def test_five_point_loss_hand_computed():
    pred = torch.rand(2, 68, 2) * 30
    target = detector_five_points(pred)
    assert float(five_point_loss(pred, target)) == 0.0
    t = target.clone()
    t[0, 2, 0] += 1.0  # nose tip, weight 20: (20 * 1)^2 over 2 * 5 * 2 values
    assert float(five_point_loss(pred, t)) == pytest.approx(400 / 20)
    t = target.clone()
    t[1, 0, 1] += 2.0  # an eye centre, weight 1
    assert float(five_point_loss(pred, t)) == pytest.approx(4 / 20)


def test_targets_put_the_five_points_on_the_detection():
    pred = torch.rand(2, 68, 2) * 30
    p5 = torch.rand(2, 5, 2) * 30
    t = _targets(None, p5, pred)
    assert torch.allclose(detector_five_points(t), p5, atol=1e-5)
    assert torch.equal(t[:, :17], pred[:, :17])  # the jaw is the model's own
    given = torch.rand(2, 68, 2)
    assert _targets(given, p5, pred) is given


@pytest.mark.parametrize("use_68", [False, True])
def test_adaptation_copies_fits_and_repeats(tiny, use_68):
    root, ckpt = tiny
    model = load_focus_model(ckpt, device="cpu")
    perc, _ = load_adapt_perceptual("auto", ckpt)
    image, p5, lm68 = _batch(model)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    unet_before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    em = EMSettings(encoder_optim=OptimSettings(lr=1e-3), unet_optim=OptimSettings(lr=1e-3))
    s = AdaptSettings(rounds=2, seg_steps=3, rec_steps=6, em=em)
    runs = [
        adapt_networks(model.encoder, model.unet, model.renderer, perc, image, p5, lm68 if use_68 else None, s)
        for _ in range(2)
    ]
    for k, v in model.encoder.state_dict().items():  # the loaded model is untouched
        assert torch.equal(v, before[k]), k
    for k, v in model.unet.state_dict().items():
        assert torch.equal(v, unet_before[k]), k
    (enc, unet, log), (enc2, unet2, _) = runs
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    assert [(r["round"], r["phase"]) for r in log] == [(1, "seg"), (1, "rec"), (2, "seg"), (2, "rec")]
    assert all(np.isfinite(v) for r in log for k, v in r.items() if k != "phase")
    assert ("lm5" in log[1]) != use_68 and ("lm" in log[1]) == use_68
    with torch.no_grad():
        x1, x2, x0 = enc(image), enc2(image), model.encoder(image)
    assert torch.equal(x1, x2)  # repeatable
    assert not torch.allclose(x1, x0)  # and adapted
    # with the landmark term alone, the adapted encoder moves the face onto the batch's landmarks
    # (the 68 given ones, or the 5 points): the targets reach the reconstruction steps
    lm_only = replace(em, rec_weights=L.ReconstructionLossWeights(pix=0.0, id=0.0, reg=0.0, lm=1.0, area=0.0))
    enc3, _, _ = adapt_networks(
        model.encoder, model.unet, model.renderer, perc, image, p5, lm68 if use_68 else None, replace(s, em=lm_only)
    )
    err = L.landmark_loss if use_68 else five_point_loss
    target = lm68 if use_68 else p5
    with torch.no_grad():
        lm_new = encode_render(enc3, model.renderer, image)[1].landmarks
        lm_old = encode_render(model.encoder, model.renderer, image)[1].landmarks
    assert float(err(lm_new, target)) < 0.9 * float(err(lm_old, target))


def test_reconstruct_with_adaptation(tiny, tmp_path):
    root, ckpt = tiny
    model = load_focus_model(ckpt, device="cpu")
    _, names, _ = _portraits_with_landmarks(model, tmp_path)
    s = ReconstructSettings(
        batch_size=4, view_size=64, progress=False, adapt=AdaptSettings(rounds=1, seg_steps=2, rec_steps=2)
    )
    r = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), s, load_adapt_perceptual("auto", ckpt))
    report = r.run([tmp_path / "in"], tmp_path / "out")
    assert report.exit_code == 0 and len(report.ok) == 2
    info = json.loads((tmp_path / "out" / "report.json").read_text())["model"]["adaptation"]
    assert info["rounds"] == 1 and info["perceptual"].endswith("idnet.pt")
    assert [b["faces"] for b in info["batches"]] == [2] and info["batches"][0]["landmarks"] == "68"
    assert report.timings["adapt"] > 0
    plain = Reconstructor(model, CsvLandmarks(tmp_path / "lm.csv"), replace(s, adapt=AdaptSettings())).run(
        [tmp_path / "in"], tmp_path / "plain"
    )
    assert json.loads((tmp_path / "plain" / "report.json").read_text())["model"]["adaptation"] is None
    a = json.loads((tmp_path / "out" / report.ok[0].folder / "face_0" / "coeffs.json").read_text())
    b = json.loads((tmp_path / "plain" / plain.ok[0].folder / "face_0" / "coeffs.json").read_text())
    assert a["coefficients"]["identity"] != b["coefficients"]["identity"]
    assert a["model"]["adapted"] is True and b["model"]["adapted"] is False
    assert "test-time adaptation: 1 round of 2 + 2 steps" in (tmp_path / "out" / "summary.html").read_text()
    assert "no test-time adaptation" in (tmp_path / "plain" / "summary.html").read_text()
    with pytest.raises(InputFileError, match="segmentation network"):
        Reconstructor(replace(model, unet=None), CsvLandmarks(tmp_path / "lm.csv"), s)


def test_adapt_identity_choices(tiny, tmp_path):
    root, ckpt = tiny
    assert load_adapt_perceptual("none", ckpt) is None
    assert load_adapt_perceptual("auto", tmp_path / "elsewhere.pt") is None  # no idnet.pt there
    net, src = load_adapt_perceptual(str(root / "idnet.pt"), ckpt)
    assert src == str(root / "idnet.pt") and net.input_size == 28
    with pytest.raises(InputFileError, match="missing.pth"):
        load_adapt_perceptual(f"arcface:{tmp_path / 'missing.pth'}", ckpt)
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(InputFileError, match="junk.pth"):
        load_adapt_perceptual(f"arcface:{tmp_path / 'junk.pth'}", ckpt)


def test_cli_adapt_options(tiny, tmp_path, capsys):
    root, ckpt = tiny
    model = load_focus_model(ckpt, device="cpu")
    _portraits_with_landmarks(model, tmp_path)
    base = [
        "reconstruct",
        str(tmp_path / "in"),
        "--model",
        str(ckpt),
        "--landmarks",
        str(tmp_path / "lm.csv"),
        "--quiet",
        "--device",
        "cpu",
    ]
    assert focus_main(base + ["--out", str(tmp_path / "bad"), "--adapt", "-1"]) == 1
    assert "--adapt" in capsys.readouterr().err
    rc = focus_main(
        base
        + [
            "--out",
            str(tmp_path / "o"),
            "--adapt",
            "1",
            "--adapt-steps",
            "1",
            "2",
            "--adapt-lr",
            "1e-3",
            "5e-4",
            "--adapt-identity",
            "none",
        ]
    )
    assert rc == 0
    info = json.loads((tmp_path / "o" / "report.json").read_text())["model"]["adaptation"]
    assert (info["seg_steps"], info["rec_steps"], info["encoder_lr"], info["unet_lr"]) == (1, 2, 1e-3, 5e-4)
    assert info["perceptual"] is None


def test_a_segmentation_phase_that_collapses_to_no_face_is_undone(tiny, monkeypatch):
    """A loss that pushes every pixel to "outlier" drives the U-Net to the trivial "no face" mask: the
    phase is undone (the U-Net as before it), the U-Net is not adapted further, and the log says so."""
    import focus.apps.adapt as A

    root, ckpt = tiny
    model = load_focus_model(ckpt, device="cpu")
    image, p5, lm68 = _batch(model)

    def to_no_face(image, render, render_mask, seg, *args, **kwargs):
        loss = (seg * render_mask).sum() / render_mask.sum()
        return loss, {"total": loss.detach()}

    monkeypatch.setattr(A.L, "segmentation_loss", to_no_face)
    em = EMSettings(encoder_optim=OptimSettings(lr=1e-3), unet_optim=OptimSettings(name="adam", lr=0.3))
    s = AdaptSettings(rounds=2, seg_steps=20, rec_steps=2, em=em)
    enc, unet, log = adapt_networks(model.encoder, model.unet, model.renderer, None, image, p5, lm68, s)
    assert [(r["phase"], r.get("collapsed")) for r in log] == [("seg", 1.0), ("rec", None), ("seg", 0.0), ("rec", None)]
    for k, v in model.unet.state_dict().items():  # restored to the trained U-Net, not adapted further
        assert torch.equal(unet.state_dict()[k], v), k
    with torch.no_grad():
        out = model.renderer(model.renderer.split(enc(image)))
        assert A.face_share(A.segment(unet, out.image, image), out.mask) > A.MIN_FACE_SHARE


def test_face_share_of_trivial_masks():
    from focus.apps.adapt import face_share

    m = torch.zeros(2, 1, 4, 4)
    m[:, :, 1:3, 1:3] = 1.0
    assert face_share(torch.ones_like(m), m) == 1.0 and face_share(torch.zeros_like(m), m) == 0.0
    assert face_share(torch.full_like(m, 0.25), m) == pytest.approx(0.25)


def test_rounds_after_a_collapse_leave_the_unet_alone(tiny, monkeypatch):
    """Once undone, the U-Net is neither trained nor checked again in later rounds (with or without a
    progress callback), even when its mask on the moved render would count as collapsed."""
    import focus.apps.adapt as A

    root, ckpt = tiny
    model = load_focus_model(ckpt, device="cpu")
    image, p5, lm68 = _batch(model)
    monkeypatch.setattr(A, "face_share", lambda seg, mask: 0.0)  # every check says "collapsed"
    s = AdaptSettings(rounds=3, seg_steps=2, rec_steps=2)
    for progress in (None, lambda n: None):
        _, unet, log = adapt_networks(model.encoder, model.unet, model.renderer, None, image, p5, lm68, s, progress)
        assert [r["collapsed"] for r in log if r["phase"] == "seg"] == [1.0, 0.0, 0.0]
        for k, v in model.unet.state_dict().items():
            assert torch.equal(unet.state_dict()[k], v), k
