"""The encoder's rotation pivot (``train.encoder.pivot_mm``): a reparameterisation of the head's
translation that leaves the renderer's convention unchanged (focus/nets/encoder.py)."""

import pytest
import torch

from focus.coeffs import CoeffLayout
from focus.nets.encoder import EncoderSettings, ReconstructionEncoder
from focus.render.camera import pose_vertices

LAYOUT = CoeffLayout(5, 4, 3)
PIVOT = (1.0, -14.0, 90.0)


def _random_head(enc: ReconstructionEncoder, seed: int = 0) -> ReconstructionEncoder:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        enc.backbone.fc.weight.copy_(0.05 * torch.randn(enc.backbone.fc.weight.shape, generator=g))
        enc.backbone.fc.bias.copy_(torch.randn(enc.backbone.fc.bias.shape, generator=g))
    return enc.eval()


def _pair():
    torch.manual_seed(0)
    plain = _random_head(ReconstructionEncoder(LAYOUT))
    pivoted = ReconstructionEncoder(LAYOUT, EncoderSettings(pivot_mm=PIVOT))
    pivoted.load_state_dict(plain.state_dict())
    return plain, pivoted.eval()


def test_the_pivot_moves_by_the_head_translation():
    """With the pivot, the raw head translation is where the pivot point goes: R c + t = c + t_head."""
    plain, pivoted = _pair()
    image = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw, conv = plain.predict(image), pivoted.predict(image)
    assert raw.angles.abs().max() > 0.1  # a real rotation, or the test would pass trivially
    c = torch.tensor(PIVOT).expand(3, 1, 3)
    moved = pose_vertices(c, conv.angles, conv.trans)[:, 0]
    torch.testing.assert_close(moved, c[:, 0] + raw.trans, atol=1e-4, rtol=0)
    # everything but the translation is the head's output unchanged
    for name in ("id", "exp", "albedo", "angles", "sh"):
        torch.testing.assert_close(getattr(conv, name), getattr(raw, name))
    assert not torch.allclose(conv.trans, raw.trans)


def test_no_pivot_is_the_plain_head():
    enc = _random_head(ReconstructionEncoder(LAYOUT, EncoderSettings(pivot_mm=(0.0, 0.0, 0.0))))
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc(image), enc.backbone(image))


def test_the_translation_carries_gradient_to_the_angles():
    """With the pivot, a landmark-like loss on the translation reaches the head's angles."""
    enc = ReconstructionEncoder(LAYOUT, EncoderSettings(pivot_mm=PIVOT))
    out = torch.zeros(2, LAYOUT.dim, requires_grad=True)
    trans = enc._about_pivot(out)[:, LAYOUT.n_id + LAYOUT.n_exp + LAYOUT.n_albedo + 3 :][:, :3]
    (grad,) = torch.autograd.grad(trans[:, 0].sum(), out)
    yaw = LAYOUT.n_id + LAYOUT.n_exp + LAYOUT.n_albedo + 1
    assert grad[:, yaw].abs().min() > 50.0  # d t_x / d yaw = -c_z at zero angles: -90 mm per rad


@pytest.mark.parametrize("bad", [(0.0, 0.0), "x"])
def test_a_bad_pivot_is_refused(bad):
    from focus.config import from_dict

    with pytest.raises(Exception, match="pivot_mm"):
        from_dict(EncoderSettings, {"pivot_mm": bad}, "params.yaml", key="train.encoder")
