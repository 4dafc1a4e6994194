"""One forward pass: the training objectives, validation, evaluation, the misfit prior, ``focus
reconstruct`` and test-time adaptation give the same mask and neutral shape for the same crops.

The networks are tiny and seeded; the encoder's head is set so that the render leaves [0, 1]
(bright light), where feeding the U-Net the clamped or the unclamped render makes a difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import tiny_face_model

from focus import losses as L
from focus.apps.adapt import AdaptSettings, adapt_networks
from focus.apps.reconstruct import load_focus_model, run_model, save_untrained_checkpoint
from focus.eval.misfit_prior import predict_neutral
from focus.eval.predict import Crops, load_eval_model, predict_crops
from focus.facemodel.model import save_face_model
from focus.nets.face_align import detector_five_points
from focus.predictor import FocusModel, Predictor, encode_render, segment, unet_input
from focus.train import metrics as M
from focus.train import steps as S
from focus.train.state import load_checkpoint, save_checkpoint
from focus.train.validation import ValidationSet, evaluate

SIZE = 32
B = 3

pytestmark = pytest.mark.usefixtures("one_thread")


def _bright_checkpoint(root: Path) -> Path:
    """An untrained checkpoint whose encoder predicts strong ambient light (renders well above 1)
    with a little seeded variation per image."""
    save_face_model(tiny_face_model(), root / "facemodel.npz")
    path = save_untrained_checkpoint(
        root / "model.pt", root / "facemodel.npz", image_size=SIZE, unet_width=4, unet_depth=2, seed=3
    )
    ckpt = load_checkpoint(path)
    enc = ckpt["nets"]["encoder"]
    (w_key,) = [k for k in enc if k.endswith("fc.weight")]
    (b_key,) = [k for k in enc if k.endswith("fc.bias")]
    g = torch.Generator().manual_seed(1)
    dim = enc[b_key].shape[0]
    enc[w_key] = torch.randn(enc[w_key].shape, generator=g) * 1e-3
    bias = torch.zeros(dim)
    bias[[dim - 27, dim - 18, dim - 9]] = 2.5  # the ambient SH term of red, green, blue
    enc[b_key] = bias
    return save_checkpoint(path, ckpt)


@pytest.fixture(scope="module")
def bright(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictor")
    ckpt = _bright_checkpoint(root)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(B, 3, SIZE, SIZE, generator=g)
    return ckpt, root / "facemodel.npz", images


def _capture(monkeypatch, module, name: str, index: int = 3) -> list:
    """Record argument ``index`` of every call of ``module.name`` (the function still runs)."""
    seen = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(args[index].detach().clone())
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


def _training_masks(model: FocusModel, images: torch.Tensor, monkeypatch) -> dict[str, torch.Tensor]:
    """The U-Net's mask in each training objective (networks in eval mode, as frozen networks are)."""
    enc, unet, ren = model.encoder, model.unet, model.renderer
    lms = encode_render(enc, ren, images)[1].landmarks.detach()
    batch = {"image": images, "landmarks": lms, "pseudo_mask": torch.ones(B, 1, SIZE, SIZE)}
    seg_seen = _capture(monkeypatch, L, "segmentation_loss")
    rec_seen = _capture(monkeypatch, L, "reconstruction_loss")
    bce_seen = _capture(monkeypatch, L, "bce_loss", index=0)
    S.segmentation_objective(unet, enc, ren, None, batch, L.SegmentationLossWeights())
    S.reconstruction_objective(enc, unet, ren, None, batch, L.ReconstructionLossWeights(), grad_through_unet=True)
    S.reconstruction_objective(enc, unet, ren, None, batch, L.ReconstructionLossWeights(), grad_through_unet=False)
    S.pretrain_seg_objective(unet, enc, ren, batch)
    monkeypatch.undo()
    return {"seg": seg_seen[0], "rec": rec_seen[0], "rec_detached": rec_seen[1], "pretrain": bce_seen[0]}


def _validation_mask(model: FocusModel, images: torch.Tensor, monkeypatch) -> torch.Tensor:
    seen = _capture(monkeypatch, M, "segmentation_scores", index=0)
    ones = torch.ones(B, 1, SIZE, SIZE)
    vs = ValidationSet(tuple("abc"), images, torch.zeros(B, 68, 2), ones, ones, torch.zeros(B, dtype=torch.bool), None)
    evaluate(model.encoder, model.renderer, vs, unet=model.unet, batch_size=B)
    monkeypatch.undo()
    return seen[0]  # the soft mask (then the thresholded one and the all-face reference)


def _adaptation_masks(model: FocusModel, images: torch.Tensor, monkeypatch) -> dict[str, torch.Tensor]:
    """The mask of the first segmentation step and of the first reconstruction step (before any update)."""
    with torch.no_grad():
        p5 = detector_five_points(encode_render(model.encoder, model.renderer, images)[1].landmarks)
    out = {}
    for phase, steps in (("seg", (1, 0)), ("rec", (0, 1))):
        loss = "segmentation_loss" if phase == "seg" else "reconstruction_loss"
        seen = _capture(monkeypatch, L, loss)
        adapt_networks(
            model.encoder,
            model.unet,
            model.renderer,
            None,
            images,
            p5,
            None,
            AdaptSettings(rounds=1, seg_steps=steps[0], rec_steps=steps[1]),
        )
        monkeypatch.undo()
        out[phase] = seen[0]
    return out


def test_every_path_gives_the_training_mask(bright, monkeypatch):
    ckpt, fm_path, images = bright
    app = load_focus_model(ckpt, device="cpu", misfit_prior="none")
    ev = load_eval_model(ckpt, fm_path)
    with torch.no_grad():
        coeffs, out = encode_render(app.encoder, app.renderer, images)
        reference = segment(app.unet, out.image, images)
        unclamped = app.unet(out.image, images)
        neutral = app.renderer.shape(coeffs.id, torch.zeros_like(coeffs.exp))
    # the test can tell the two inputs apart: the render leaves [0, 1] and the masks differ
    assert float(out.image.max()) > 1.2
    assert not torch.allclose(unet_input(out.image), out.image)
    assert float((reference - unclamped).abs().max()) > 1e-3
    assert reference.shape == (B, 1, SIZE, SIZE)

    masks = {f"train/{k}": v for k, v in _training_masks(app, images, monkeypatch).items()}
    masks["validation"] = _validation_mask(app, images, monkeypatch)
    crops = Crops(tuple("abc"), images.numpy(), np.tile(np.eye(3), (B, 1, 1)))
    for name, model in (("eval", ev), ("eval/app-loaded", app)):
        masks[name] = torch.from_numpy(predict_crops(model, crops, ("unet",), batch_size=2).seg["unet"])
    results = run_model(app, images.numpy().transpose(0, 2, 3, 1), view_size=SIZE)
    masks["reconstruct"] = torch.from_numpy(np.stack([r.face_prob[None] for r in results]))
    masks.update({f"adapt/{k}": v for k, v in _adaptation_masks(app, images, monkeypatch).items()})
    masks["predictor"] = Predictor(app.encoder, app.unet, app.renderer)(images).seg["unet"].detach()
    for name, m in masks.items():
        assert m.shape == reference.shape, name
        torch.testing.assert_close(m.float(), reference, atol=1e-5, rtol=1e-5, msg=name)

    shapes = {
        "eval": predict_crops(ev, crops, ()).neutral,
        "misfit_prior": predict_neutral(ev, images.numpy()),
        "reconstruct": np.stack([r.neutral for r in results]),
        "predictor": app.predict(images, ()).neutral,
    }
    for name, v in shapes.items():
        v = torch.as_tensor(np.asarray(v.detach() if torch.is_tensor(v) else v), dtype=torch.float32)
        assert v.shape == neutral.shape, name
        torch.testing.assert_close(v, neutral, atol=1e-4, rtol=1e-5, msg=name)


def test_predictor_segmentations_and_encoder_only(bright):
    ckpt, fm_path, images = bright
    model = load_eval_model(ckpt, fm_path)
    p = model.predict(images, ("unet", "pseudo", "none"))
    assert set(p.seg) == {"unet", "pseudo", "none"}
    assert all(v.shape == (B, 1, SIZE, SIZE) for v in p.seg.values())
    assert torch.equal(p.seg["none"], torch.ones_like(p.render.mask))
    torch.testing.assert_close(p.seg["pseudo"], L.robust_inlier_mask(images, p.render.image, p.render.mask))
    encoder_only = Predictor(model.encoder, None, model.renderer)
    assert encoder_only.default_segmentation == "pseudo"
    with pytest.raises(ValueError, match="no U-Net"):
        encoder_only(images, ("unet",))
    with pytest.raises(ValueError, match="unknown segmentation"):
        encoder_only(images, ("magic",))
