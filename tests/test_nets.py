"""Networks: zero-initialised encoder, U-Net shapes/range, iResNet key layout and loading, PerceptualNet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from focus.coeffs import CoeffLayout
from focus.errors import InputFileError
from focus.nets.encoder import EncoderSettings, ReconstructionEncoder
from focus.nets.iresnet import IResNet, IResNetSettings, load_arcface
from focus.nets.perceptual import FaceFeatureBackbone, PerceptualNet
from focus.nets.unet import SegmentationUNet, UNetSettings

LAYOUT = CoeffLayout(80, 64, 80)


# ---------------------------------------------------------------------------- encoder
def test_encoder_starts_at_zero_and_learns():
    enc = ReconstructionEncoder(LAYOUT)
    x = torch.rand(2, 3, 64, 64)
    out = enc(x)
    assert out.shape == (2, 257)
    assert torch.count_nonzero(out) == 0
    c = enc.predict(x)
    assert c.id.shape == (2, 80) and c.sh.shape == (2, 27)
    enc(x)[:, 0].sum().backward()  # the zero head still receives gradient
    assert enc.backbone.fc.weight.grad.abs().sum() > 0


def test_encoder_loads_torchvision_state_dict(tmp_path: Path):
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    enc = ReconstructionEncoder(LAYOUT, EncoderSettings("resnet18", str(path)))
    assert torch.equal(enc.backbone.conv1.weight, ref.conv1.weight)
    assert torch.equal(enc.backbone.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)
    assert torch.count_nonzero(enc.backbone.fc.weight) == 0


def test_encoder_bad_weights_name_the_file(tmp_path: Path):
    path = tmp_path / "wrong.pth"
    sd = torchvision.models.resnet18(weights=None).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(InputFileError, match="wrong.pth.*unexpected keys: extra.weight"):
        ReconstructionEncoder(LAYOUT, EncoderSettings("resnet18", str(path)))
    with pytest.raises(InputFileError, match="missing.pth.*not found"):
        ReconstructionEncoder(LAYOUT, EncoderSettings("resnet18", str(tmp_path / "missing.pth")))
    with pytest.raises(InputFileError, match="resnet50"):  # resnet18 weights named as resnet50
        ReconstructionEncoder(LAYOUT, EncoderSettings("resnet50", str(tmp_path / "wrong.pth")))


def test_encoder_rejects_bad_arch_and_input():
    with pytest.raises(ValueError, match="resnet7"):
        EncoderSettings("resnet7")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ReconstructionEncoder(LAYOUT)(torch.rand(1, 4, 32, 32))


# ---------------------------------------------------------------------------- U-Net
@pytest.mark.parametrize("size", [64, 224, 70])
def test_unet_shape_and_range(size: int):
    net = SegmentationUNet(UNetSettings()).eval()
    r, i = torch.rand(2, 3, size, size), torch.rand(2, 3, size, size)
    with torch.no_grad():
        m = net(r, i)
    assert m.shape == (2, 1, size, size)
    assert bool(((m > 0) & (m < 1)).all())
    assert torch.allclose(m, torch.sigmoid(5 * net.logits(r, i)))


def test_unet_structure():
    net = SegmentationUNet(UNetSettings.paper())
    widths = [blk[0].out_channels for blk in net.down]
    assert widths == [64, 128, 256, 512, 1024]
    assert net.down[0][0].in_channels == 6
    drops = [any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in blk) for blk in net.down]
    assert drops == [False, False, False, True, True]
    assert net.head.out_channels == 1


# ---------------------------------------------------------------------------- iResNet
def _expected_arcface_keys(layers: tuple[int, ...]) -> set[str]:
    """insightface arcface_torch's backbone.pth key names, written out independently."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", "prelu.weight", "fc.weight", "fc.bias"}
    keys |= {f"bn1.{s}" for s in bn} | {f"bn2.{s}" for s in bn} | {f"features.{s}" for s in bn}
    for stage, n in enumerate(layers, start=1):
        for blk in range(n):
            p = f"layer{stage}.{blk}"
            keys |= {f"{p}.conv1.weight", f"{p}.conv2.weight", f"{p}.prelu.weight"}
            keys |= {f"{p}.{b}.{s}" for b in ("bn1", "bn2", "bn3") for s in bn}
        keys |= {f"layer{stage}.0.downsample.0.weight"} | {f"layer{stage}.0.downsample.1.{s}" for s in bn}
    return keys


def test_iresnet50_state_dict_round_trip(tmp_path: Path):
    net = IResNet(IResNetSettings("iresnet50"))
    sd = net.state_dict()
    assert set(sd) == _expected_arcface_keys((3, 4, 14, 3))
    assert len(sd) == 475
    assert sd["fc.weight"].shape == (512, 512 * 7 * 7)
    assert sd["layer1.0.conv2.weight"].shape == (64, 64, 3, 3)
    assert sd["layer3.13.prelu.weight"].shape == (256,)
    with torch.no_grad():  # non-trivial BN statistics so the round trip is tested on them too
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "backbone.pth"
    torch.save(net.state_dict(), path)
    loaded = load_arcface(path, "iresnet50")
    assert PerceptualNet.from_arcface(path, "iresnet50").input_size == 112
    assert not loaded.training
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    net.eval()
    with torch.no_grad():
        early = loaded.early_features(x)
        assert early.shape == (1, 64, 56, 56)
        e_ref, e_new = net(x), loaded(x)
    assert e_new.shape == (1, 512)
    assert torch.allclose(e_ref, e_new)


def test_arcface_bad_files_name_the_file(tmp_path: Path):
    sd = IResNet(IResNetSettings("iresnet18")).state_dict()
    # a missing key
    bad = dict(sd)
    del bad["layer2.0.downsample.0.weight"]
    torch.save(bad, tmp_path / "missing_key.pth")
    with pytest.raises(InputFileError, match=r"missing_key\.pth.*missing keys: layer2\.0\.downsample\.0\.weight"):
        load_arcface(tmp_path / "missing_key.pth", "iresnet18")
    # a renamed key (e.g. another implementation's naming)
    bad = dict(sd)
    bad["output_layer.weight"] = bad.pop("fc.weight")
    torch.save(bad, tmp_path / "renamed.pth")
    with pytest.raises(
        InputFileError, match=r"renamed\.pth.*missing keys: fc\.weight.*unexpected keys: output_layer\.weight"
    ):
        load_arcface(tmp_path / "renamed.pth", "iresnet18")
    # the right file for another arch: say which one it looks like
    torch.save(sd, tmp_path / "r18.pth")
    with pytest.raises(InputFileError, match=r"r18\.pth.*looks like iresnet18"):
        load_arcface(tmp_path / "r18.pth", "iresnet34")
    # not a state dict at all
    (tmp_path / "junk.pth").write_text("hello")
    with pytest.raises(InputFileError, match=r"junk\.pth"):
        load_arcface(tmp_path / "junk.pth", "iresnet18")
    # DDP-style prefix and missing BN counters are accepted
    ok = {f"module.{k}": v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(ok, tmp_path / "ddp.pth")
    assert isinstance(load_arcface(tmp_path / "ddp.pth", "iresnet18"), IResNet)


def test_small_iresnet_for_cpu_crops():
    for size in (56, 64):
        net = IResNet(
            IResNetSettings(arch="custom", layers=(1, 1, 1, 1), base_width=16, input_size=size, num_features=128)
        ).eval()
        x = torch.rand(2, 3, size, size) * 2 - 1
        assert net(x).shape == (2, 128)
        assert net.early_features(x).shape == (2, 16, size // 2, size // 2)
        with pytest.raises(ValueError, match=f"{size}, {size}"):
            net(torch.rand(2, 3, 112, 112))


# ---------------------------------------------------------------------------- PerceptualNet
def test_perceptual_net_frozen_but_differentiable():
    backbone = IResNet(
        IResNetSettings(arch="custom", layers=(1, 1, 1, 1), base_width=8, input_size=56, num_features=32)
    )
    assert isinstance(backbone, FaceFeatureBackbone)
    pn = PerceptualNet(backbone)
    pn.train()  # a parent's .train() must not unfreeze BatchNorm statistics
    assert not pn.training and not backbone.training
    assert all(not p.requires_grad for p in pn.parameters())
    x = (torch.rand(3, 3, 56, 56) * 2 - 1).requires_grad_(True)
    e = pn.embed(x)
    assert e.shape == (3, 32)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3))
    (e[:, 0].sum() + pn.early_features(x).mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in pn.parameters())
    # crop: (B, 3, H, W) in [0, 1] + landmarks -> the backbone's input size in [-1, 1]
    lm = torch.rand(3, 68, 2) * 40 + 10
    crop = pn.crop(torch.rand(3, 3, 64, 64), lm)
    assert crop.shape == (3, 3, 56, 56) and crop.min() >= -1 and crop.max() <= 1


def test_perceptual_net_rejects_non_backbone():
    with pytest.raises(TypeError, match="FaceFeatureBackbone"):
        PerceptualNet(torch.nn.Linear(2, 2))
