"""The ablation switches (issue 16): each changes what it should and nothing else, and the defaults
(params.yaml and the settings dataclasses) keep the full model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from train_fixtures import make_tiny_folder, tiny_face_model, tiny_params

from focus import losses as L
from focus.config import from_dict
from focus.data import DataSettings, FaceImageFolder, template_from_model
from focus.nets.encoder import EncoderSettings, ReconstructionEncoder
from focus.nets.iresnet import IResNet, IResNetSettings
from focus.nets.perceptual import PerceptualNet
from focus.nets.trained import networks_from_checkpoint
from focus.nets.unet import SegmentationUNet, UNetSettings
from focus.predictor import encode_render
from focus.render.renderer import FaceRenderer, RenderSettings
from focus.train import steps as S
from focus.train.settings import EMSettings, TrainSettings, settings_dict

SIZE = 32
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    model = tiny_face_model()
    make_tiny_folder(root / "data", model, n=8, size=SIZE)
    renderer = FaceRenderer(model, RenderSettings(image_size=SIZE, backend="torch"))
    ds = FaceImageFolder(root / "data", template_from_model(model, SIZE), DataSettings(crop_size=SIZE), augment=False)
    items = [ds[i] for i in range(4)]
    batch = {
        "image": torch.stack([it["image"] for it in items]),
        "landmarks": torch.stack([it["landmarks"] for it in items]),
    }
    torch.manual_seed(0)
    enc = ReconstructionEncoder(renderer.layout, EncoderSettings("resnet18")).eval()
    return {"renderer": renderer, "batch": batch, "encoder": enc}


def _perceptual() -> PerceptualNet:
    torch.manual_seed(3)
    return PerceptualNet(
        IResNet(IResNetSettings(arch="custom", layers=(1, 1, 1, 1), base_width=4, input_size=24, num_features=8))
    )


def _unet(**kw) -> SegmentationUNet:
    torch.manual_seed(1)
    return SegmentationUNet(UNetSettings(base_width=4, depth=2, dropout=0.0, **kw)).eval()


def _forbid(monkeypatch, obj, name):
    def boom(*a, **k):
        raise AssertionError(f"{name} computed although its weight is 0")

    monkeypatch.setattr(obj, name, boom)


def _seg_terms(tiny, weights, perceptual):
    out = S.frozen_render(tiny["encoder"], tiny["renderer"], tiny["batch"]["image"])
    seg = torch.rand(4, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    b = tiny["batch"]
    return L.segmentation_loss(b["image"], out.image, out.mask, seg, b["landmarks"], out.landmarks, perceptual, weights)


# ---------------------------------------------------------------------------- defaults
def test_params_yaml_defaults_are_the_full_model():
    params = yaml.safe_load(PARAMS.read_text())
    em = from_dict(EMSettings, params["em"], "params.yaml", key="em")
    train = from_dict(TrainSettings, params["train"], "params.yaml", key="train")
    assert em.masks == "unet" and EMSettings().masks == "unet"
    assert train.unet.image_input is True and UNetSettings().image_input is True
    assert em.seg_weights.nbr > 0 and em.seg_weights.presv > 0 and em.seg_weights.dist > 0
    assert em.rec_weights.id > 0 and params["init"]["weights"]["id"] > 0
    with pytest.raises(Exception, match="em.masks"):
        from_dict(EMSettings, {**params["em"], "masks": "frozen"}, "params.yaml", key="em")


# ---------------------------------------------------------------------------- without L_nbr
def test_without_nbr_the_term_is_neither_computed_nor_in_the_loss(tiny, monkeypatch):
    w = L.SegmentationLossWeights(bin=1.0, area=1.5)
    full, full_terms = _seg_terms(tiny, w, None)
    assert "nbr" in full_terms
    _forbid(monkeypatch, L, "neighbour_loss")
    off, off_terms = _seg_terms(tiny, replace(w, nbr=0.0), None)
    assert set(off_terms) == set(full_terms) - {"nbr"}
    for k in ("bin", "area"):
        assert torch.equal(off_terms[k], full_terms[k])
    assert float(off) == pytest.approx(float(full) - w.nbr * float(full_terms["nbr"]), rel=1e-5)


# ---------------------------------------------------------------------------- without L_presv, L_dist
def test_without_perceptual_terms_no_features_are_computed(tiny, monkeypatch):
    per = _perceptual()
    w = L.SegmentationLossWeights(bin=1.0, area=1.5)
    full, full_terms = _seg_terms(tiny, w, per)
    assert {"presv", "dist"} <= set(full_terms)
    _forbid(monkeypatch, per, "early_features")
    off, off_terms = _seg_terms(tiny, replace(w, presv=0.0, dist=0.0), per)
    assert set(off_terms) == set(full_terms) - {"presv", "dist"}
    for k in ("bin", "area", "nbr"):
        assert torch.equal(off_terms[k], full_terms[k])
    expect = float(full) - w.presv * float(full_terms["presv"]) - w.dist * float(full_terms["dist"])
    assert float(off) == pytest.approx(expect, rel=1e-5)


# ---------------------------------------------------------------------------- without L_id
def test_without_identity_loss_in_init_and_reconstruction(tiny, monkeypatch):
    per, b, enc, r = _perceptual(), tiny["batch"], tiny["encoder"], tiny["renderer"]
    wi = L.InitLossWeights(lm=5e-3, reg=0.03)
    wr = L.ReconstructionLossWeights(lm=5e-3, reg=0.03)
    unet = _unet()
    full_i, ti = S.init_objective(enc, r, per, b, wi)
    full_r, tr = S.reconstruction_objective(enc, unet, r, per, b, wr)
    assert "id" in ti and "id" in tr
    _forbid(monkeypatch, per, "embed")
    off_i, ti0 = S.init_objective(enc, r, per, b, replace(wi, id=0.0))
    off_r, tr0 = S.reconstruction_objective(enc, unet, r, per, b, replace(wr, id=0.0))
    assert set(ti0) == set(ti) - {"id"} and set(tr0) == set(tr) - {"id"}
    assert float(off_i.detach()) == pytest.approx(float(full_i.detach()) - wi.id * float(ti["id"]), rel=1e-5)
    assert float(off_r.detach()) == pytest.approx(float(full_r.detach()) - wr.id * float(tr["id"]), rel=1e-5)


# ---------------------------------------------------------------------------- U-Net without the image
def test_render_only_unet_ignores_the_image():
    g = torch.Generator().manual_seed(2)
    render, image = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g, requires_grad=True)
    full, only = _unet(), _unet(image_input=False)
    assert full.down[0][0].in_channels == 6 and only.down[0][0].in_channels == 3
    m = only(render, image)
    assert torch.equal(m, only(render, torch.rand(2, 3, 16, 16, generator=g)))
    assert torch.autograd.grad(m.sum(), image, allow_unused=True)[0] is None  # no path from the image to the mask
    assert not torch.equal(full(render, image), full(render, torch.zeros_like(image)))
    with pytest.raises(ValueError):
        only(render, image[:, :, :8])


def test_render_only_unet_rebuilds_from_its_checkpoint_settings(tiny):
    only = _unet(image_input=False)
    lay = tiny["renderer"].layout
    ckpt = {
        "layout": [lay.n_id, lay.n_exp, lay.n_albedo],
        "encoder_settings": settings_dict(EncoderSettings("resnet18")),
        "unet_settings": settings_dict(only.settings),
        "nets": {"encoder": tiny["encoder"].state_dict(), "unet": only.state_dict()},
    }
    _, unet = networks_from_checkpoint(ckpt, "x.pt")
    assert unet.in_channels == 3 and not unet.settings.image_input
    old = dict(
        ckpt,
        unet_settings={k: v for k, v in settings_dict(_unet().settings).items() if k != "image_input"},
        nets={"encoder": tiny["encoder"].state_dict(), "unet": _unet().state_dict()},
    )
    assert networks_from_checkpoint(old, "old.pt")[1].in_channels == 6  # checkpoints before the switch


# ---------------------------------------------------------------------------- pseudo masks instead of EM
def test_pseudo_reconstruction_uses_the_frozen_pseudo_masks(tiny):
    b, r = tiny["batch"], tiny["renderer"]
    torch.manual_seed(7)
    enc = ReconstructionEncoder(r.layout, EncoderSettings("resnet18")).eval()
    mask_enc = tiny["encoder"]
    w = L.ReconstructionLossWeights(lm=5e-3, reg=0.03)
    loss, terms = S.pseudo_reconstruction_objective(enc, mask_enc, r, None, b, w)
    first = S.frozen_render(mask_enc, r, b["image"])
    z = L.robust_inlier_mask(b["image"], first.image, first.mask)
    coeffs, out = encode_render(enc, r, b["image"])
    ref, ref_terms = L.reconstruction_loss(
        b["image"], out.image, out.mask, z, b["landmarks"], out.landmarks, coeffs, None, w
    )
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    assert set(terms) == set(ref_terms)
    loss.backward()
    assert all(p.grad is None for p in mask_enc.parameters())  # the mask encoder stays fixed
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_em_with_pseudo_masks_has_no_segmentation_phases_and_keeps_the_unet(tmp_path):
    from focus.train import pipeline as P

    params = tiny_params(tmp_path, steps=1, rounds=2)
    paths = P.Paths(
        run_dirs={k: tmp_path / "ck" / k for k in ("init", "pretrain_seg", "em")},
        pseudo_masks=tmp_path / "pm",
        reports=tmp_path / "rep",
    )
    P.run_init(params, paths)
    P.run_pretrain_seg(params, paths)
    params["em"]["masks"] = "pseudo"
    recs = P.run_em(params, paths)
    assert [rec["phase"] for rec in recs] == ["r1/rec", "r2/rec"]
    from focus.nets.trained import load_trained

    enc0, unet0, _ = load_trained(tmp_path / "ck" / "pretrain_seg" / "final.pt")
    enc, unet, _ = load_trained(tmp_path / "ck" / "em" / "final.pt")
    for a, c in zip(unet0.state_dict().values(), unet.state_dict().values(), strict=True):
        assert torch.equal(a, c)  # no segmentation phase: the pre-trained U-Net
    assert any(
        not torch.equal(a, c) for a, c in zip(enc0.state_dict().values(), enc.state_dict().values(), strict=True)
    )
