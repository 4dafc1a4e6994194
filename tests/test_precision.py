"""Throughput options of the training steps (focus/precision.py): bf16 autocast around the networks
only, channels-last layout; the float32 default is the plain forward pass."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import tiny_face_model

from focus import losses as L
from focus.config import ParamError, from_dict
from focus.nets.encoder import EncoderSettings, ReconstructionEncoder
from focus.nets.iresnet import IResNet, IResNetSettings
from focus.nets.perceptual import PerceptualNet
from focus.nets.unet import SegmentationUNet, UNetSettings
from focus.precision import network_call, perceptual_call, to_channels_last
from focus.predictor import encode_render, segment
from focus.render.renderer import FaceRenderer, RenderSettings
from focus.train import steps as S
from focus.train.settings import TrainSettings

SIZE = 32
#: bf16 keeps 8 mantissa bits (relative resolution 2^-8 ~ 0.4 %) in the networks; the losses of
#: a step in bf16 agree with float32 within 2 % or 1e-4 absolute (measured on this fixture: ~0.1 %
#: for every term and the total; 2.7 % = 6e-5 absolute for the near-zero L_dist).
BF16_RTOL = 2e-2

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def parts():
    model = tiny_face_model()
    renderer = FaceRenderer(model, RenderSettings(image_size=SIZE, backend="torch"))
    g = torch.Generator().manual_seed(0)
    c = torch.randn(4, renderer.layout.dim, generator=g) * 0.3
    with torch.no_grad():
        out = renderer(c)
    image = (out.image.clamp(0, 1) + 0.3 * (1 - out.mask) * torch.rand(out.image.shape, generator=g)).clamp(0, 1)
    batch = {"image": image, "landmarks": out.landmarks + torch.randn(out.landmarks.shape, generator=g)}
    torch.manual_seed(0)
    enc = ReconstructionEncoder(renderer.layout, EncoderSettings("resnet18")).eval()
    with torch.no_grad():  # a trained-like head (it starts at zero: the mean face, whatever the precision)
        for prm in (q for n, q in enc.named_parameters() if n.endswith(("weight", "bias")) and q.dim() <= 2):
            if not prm.abs().sum():
                prm.normal_(0, 0.02, generator=g)
    torch.manual_seed(1)
    unet = SegmentationUNet(UNetSettings(base_width=4, depth=2)).eval()
    torch.manual_seed(2)
    per = PerceptualNet(
        IResNet(IResNetSettings(arch="custom", layers=(1, 1, 1, 1), base_width=4, input_size=24, num_features=8))
    ).eval()
    return {"renderer": renderer, "batch": batch, "enc": enc, "unet": unet, "per": per}


def _rec(p, **kw):
    return S.reconstruction_objective(
        p["enc"], p["unet"], p["renderer"], p["per"], p["batch"], L.ReconstructionLossWeights(), True, **kw
    )


def _seg(p, **kw):
    return S.segmentation_objective(
        p["unet"], p["enc"], p["renderer"], p["per"], p["batch"], L.SegmentationLossWeights(), **kw
    )


def test_float32_step_is_the_plain_forward_pass(parts):
    """Default settings: the objective equals the predictor + losses called directly, bit for bit."""
    p = parts
    assert network_call(p["enc"]) is p["enc"] and perceptual_call(p["per"]) is p["per"]
    with torch.no_grad():
        loss, terms = _rec(p)
        coeffs, out = encode_render(p["enc"], p["renderer"], p["batch"]["image"])
        seg = segment(p["unet"], out.image, p["batch"]["image"])
        ref, ref_terms = L.reconstruction_loss(
            p["batch"]["image"],
            out.image,
            out.mask,
            seg,
            p["batch"]["landmarks"],
            out.landmarks,
            coeffs,
            p["per"],
            L.ReconstructionLossWeights(),
        )
    assert torch.equal(loss, ref)
    assert all(torch.equal(terms[k], ref_terms[k]) for k in ref_terms)


@pytest.mark.parametrize("objective", [_rec, _seg], ids=["reconstruction", "segmentation"])
def test_bf16_step_matches_float32_and_keeps_renderer_and_losses_float32(parts, objective):
    p = parts
    seen: dict[str, list[torch.dtype]] = {"render": [], "conv": []}
    h1 = p["renderer"].register_forward_hook(lambda m, i, o: seen["render"].append(o.image.dtype))
    conv = next(m for m in p["enc"].modules() if isinstance(m, torch.nn.Conv2d))
    h3 = conv.register_forward_hook(lambda m, i, o: seen["conv"].append(o.dtype))
    try:
        loss32, terms32 = objective(p)
        seen["conv"].clear()
        loss16, terms16 = objective(p, precision="bf16")
    finally:
        h1.remove(), h3.remove()
    assert torch.bfloat16 in seen["conv"], "the encoder did not run in bf16"
    assert seen["render"] and all(d == torch.float32 for d in seen["render"])
    assert loss16.dtype == torch.float32 and all(v.dtype == torch.float32 for v in terms16.values())
    for k in terms32:
        torch.testing.assert_close(terms16[k], terms32[k], rtol=BF16_RTOL, atol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    # gradients reach the trained network in bf16 too
    loss16.backward()


def test_bf16_losses_stay_float32_under_an_outer_autocast(parts):
    """Renderer and losses turn autocast off even when a caller wraps the step in it."""
    p = parts
    dtypes = []
    h = p["renderer"].register_forward_hook(lambda m, i, o: dtypes.append(o.image.dtype))
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = _rec(p, precision="bf16")
    finally:
        h.remove()
    assert dtypes == [torch.float32] and loss.dtype == torch.float32


def test_channels_last_step_matches(parts):
    p = parts
    with torch.no_grad():
        ref, ref_terms = _rec(p)
        seg_ref, _ = _seg(p)
    cl = {
        **p,
        "enc": to_channels_last(_copy(p["enc"])),
        "unet": to_channels_last(_copy(p["unet"])),
        "per": to_channels_last(_copy(p["per"])),
    }
    w = next(m for m in cl["enc"].modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert w.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        loss, terms = _rec(cl, channels_last=True)
        seg_loss, _ = _seg(cl, channels_last=True)
    for k in ref_terms:
        torch.testing.assert_close(terms[k], ref_terms[k], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(seg_loss, seg_ref, rtol=1e-5, atol=1e-6)


def _copy(net):
    import copy

    return copy.deepcopy(net)


def test_precision_settings_are_checked():
    ts = from_dict(TrainSettings, {"precision": "bf16", "channels_last": True, "pin_memory": None}, key="train")
    assert ts.precision == "bf16" and ts.channels_last
    assert TrainSettings().precision == "float32" and not TrainSettings().channels_last
    with pytest.raises(ParamError, match=r"train.precision = \"fp16\": expected one of 'float32', 'bf16'"):
        from_dict(TrainSettings, {"precision": "fp16"}, "params.yaml", key="train")
    with pytest.raises(ParamError, match="train.channels_last"):
        from_dict(TrainSettings, {"channels_last": "yes"}, "params.yaml", key="train")
    with pytest.raises(ValueError, match="unknown precision"):
        network_call(torch.nn.Identity(), "float16")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("objective", [_rec, _seg], ids=["reconstruction", "segmentation"])
def test_bf16_channels_last_step_on_cuda_matches_float32(parts, objective):
    """On the GPU (nvdiffrast when installed): bf16 + channels-last losses within the stated tolerance
    of the float32 step, render in float32."""
    dev = torch.device("cuda")
    renderer = FaceRenderer(tiny_face_model(), RenderSettings(image_size=SIZE, backend="auto")).to(dev)
    base = {
        "renderer": renderer,
        "batch": {k: v.to(dev) for k, v in parts["batch"].items()},
        **{k: _copy(parts[k]).to(dev) for k in ("enc", "unet", "per")},
    }
    fast = {**base, **{k: to_channels_last(_copy(base[k])) for k in ("enc", "unet", "per")}}
    dtypes = []
    h = renderer.register_forward_hook(lambda m, i, o: dtypes.append(o.image.dtype))
    try:
        with torch.no_grad():
            _, t32 = objective(base)
            _, t16 = objective(fast, precision="bf16", channels_last=True)
    finally:
        h.remove()
    assert set(dtypes) == {torch.float32}
    for k in t32:
        torch.testing.assert_close(t16[k], t32[k], rtol=BF16_RTOL, atol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
