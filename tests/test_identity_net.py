"""The offline identity network: margin head, verification metrics, data, training, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from focus.errors import InputFileError
from focus.facemodel.model import FaceModel
from focus.idnet.data import (
    FACTORS,
    CropMaker,
    IdentityDataSettings,
    IdentitySet,
    from_uint8,
    make_identity_set,
    swap_factor,
)
from focus.idnet.evaluation import embed_crops, verification_metrics
from focus.idnet.margin import ArcMarginHead, arc_margin_logits
from focus.idnet.network import (
    IdentityNetSettings,
    build_identity_net,
    load_identity_backbone,
    load_identity_net,
    save_identity_net,
)
from focus.idnet.training import IdNetAugmentSettings, IdNetTrainSettings, train_identity_net
from focus.idnet.verification import pair_scores, roc_auc, roc_curve, tar_at_far
from focus.nets.perceptual import PerceptualNet
from focus.render.renderer import FaceRenderer, RenderSettings
from focus.synth.settings import SynthSettings


# ----------------------------------------------------------------------------- fixtures
def _layout68() -> np.ndarray:
    """Rough iBUG-68 positions ``(68, 2)`` (mm, model frame x right-of-image, y up) on a frontal face."""
    pts = np.zeros((68, 2))
    a = np.linspace(-1.2, 1.2, 17)
    pts[0:17] = np.stack([60 * np.sin(a), -10 - 70 * np.cos(a)], 1)
    pts[17:22] = np.stack([np.linspace(-50, -12, 5), np.full(5, 40.0)], 1)
    pts[22:27] = np.stack([np.linspace(12, 50, 5), np.full(5, 40.0)], 1)
    pts[27:31] = np.stack([np.zeros(4), np.linspace(28, -10, 4)], 1)
    pts[31:36] = np.stack([np.linspace(-12, 12, 5), np.full(5, -20.0)], 1)
    e = np.linspace(0, 2 * np.pi, 7)[:-1]
    for base, cx in ((36, -30.0), (42, 30.0)):
        pts[base : base + 6] = np.stack([cx - 12 * np.cos(e), 26 + 5 * np.sin(e)], 1)
    m = np.linspace(0, 2 * np.pi, 13)[:-1]
    pts[48:60] = np.stack([-25 * np.cos(m), -45 + 9 * np.sin(m)], 1)
    m = np.linspace(0, 2 * np.pi, 9)[:-1]
    pts[60:68] = np.stack([-18 * np.cos(m), -45 + 3 * np.sin(m)], 1)
    return pts


def toy_face_model(n: int = 25, n_id: int = 8, n_exp: int = 3, n_alb: int = 8, seed: int = 0) -> FaceModel:
    """A small face-like grid model (a bulged sheet with a nose) with smooth random bases."""
    g = np.random.default_rng(seed)
    X, Y = np.meshgrid(np.linspace(-80, 80, n), np.linspace(-100, 70, n))
    Z = 90 * np.sqrt(np.clip(1 - (X / 95) ** 2 - (Y / 120) ** 2, 0.05, None)) + 25 * np.exp(
        -((X / 10) ** 2) - ((Y + 5) / 20) ** 2
    )
    mean = np.stack([X, Y, Z], -1).reshape(-1, 3)
    V = len(mean)

    def fields(k: int, amp: float) -> np.ndarray:
        out = np.zeros((k, V, 3))
        for i in range(k):
            for _ in range(3):
                c, s = g.uniform(-60, 50, 2), g.uniform(20, 45)
                w = np.exp(-(((X - c[0]) / s) ** 2) - ((Y - c[1]) / s) ** 2).reshape(-1)
                out[i] += w[:, None] * g.normal(0, amp, 3)
        return out

    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j
            tris += [(a, b, c), (a, c, d)]
    lm = ((mean[None, :, :2] - _layout68()[:, None]) ** 2).sum(-1).argmin(1)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return FaceModel(
        mean_shape=f(mean),
        id_basis=f(fields(n_id, 6.0)),
        exp_basis=f(fields(n_exp, 3.0)),
        mean_albedo=f(np.tile([0.7, 0.5, 0.4], (V, 1))),
        albedo_basis=f(fields(n_alb, 0.08)),
        triangles=torch.tensor(tris),
        landmarks68=torch.tensor(lm),
        now_landmarks7=torch.tensor(lm[[36, 39, 42, 45, 33, 48, 54]]),
        regions={"face": torch.ones(V, dtype=torch.bool)},
        name="toy",
    ).validate()


TOY_RENDER = RenderSettings(image_size=32, backend="torch")
TINY_DATA = IdentityDataSettings(batch_size=32, occlusion_prob=0.2, target_components=4, workers=0)
TINY_NET = IdentityNetSettings(crop_size=28, layers=(1, 1, 1, 1), base_width=8, embedding_dim=32)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy_maker() -> CropMaker:
    with CropMaker(toy_face_model(), TOY_RENDER, TINY_DATA, SynthSettings(), TINY_NET.crop_size) as maker:
        yield maker


# ----------------------------------------------------------------------------- margin head
def test_margin_logits_match_direct_formula():
    g = torch.Generator().manual_seed(1)
    cos = torch.rand(64, 7, generator=g, dtype=torch.float64) * 1.98 - 0.99
    labels = torch.randint(0, 7, (64,), generator=g)
    m, s = 0.5, 30.0
    out = arc_margin_logits(cos, labels, m, s)
    for b in range(64):
        for j in range(7):
            c = float(cos[b, j])
            if j == int(labels[b]):
                theta = math.acos(c)
                want = math.cos(theta + m) if theta + m <= math.pi else c - m * math.sin(m)
            else:
                want = c
            assert float(out[b, j]) == pytest.approx(s * want, abs=1e-9)
    # the margin only ever lowers the true-class logit
    own = out.gather(1, labels[:, None])[:, 0]
    assert bool((own < s * cos.gather(1, labels[:, None])[:, 0]).all())


def test_margin_head_cosines_and_gradients_are_finite():
    head = ArcMarginHead(16, 5, margin=0.5, scale=32.0)
    emb = torch.randn(8, 16, requires_grad=True)
    cos = head.cosine(emb)
    assert cos.shape == (8, 5) and float(cos.detach().abs().max()) <= 1.0 + 1e-6
    # an embedding exactly on a class centre (cos = 1) must not give a NaN gradient
    with torch.no_grad():
        emb[0] = head.weight[2] * 3.0
    labels = torch.tensor([2, 0, 1, 2, 3, 4, 0, 1])
    loss = torch.nn.functional.cross_entropy(head(emb, labels), labels)
    loss.backward()
    assert bool(torch.isfinite(emb.grad).all()) and bool(torch.isfinite(head.weight.grad).all())


# ----------------------------------------------------------------------------- metrics
def _brute_auc(g: np.ndarray, i: np.ndarray) -> float:
    d = g[:, None] - i[None, :]
    return float(((d > 0) + 0.5 * (d == 0)).mean())


def _brute_tar(g: np.ndarray, i: np.ndarray, far: float) -> float:
    best = 0.0
    for t in np.concatenate([np.unique(np.concatenate([g, i])), [-np.inf]]):
        if (i > t).mean() <= far + 1e-12:
            best = max(best, float((g > t).mean()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_and_tar_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    g = np.round(rng.normal(1.0, 1.0, 37), 1)  # rounded: plenty of ties
    i = np.round(rng.normal(0.0, 1.0, 211), 1)
    assert roc_auc(g, i) == pytest.approx(_brute_auc(g, i), abs=1e-12)
    for far in (0.0, 1e-3, 0.01, 0.05, 0.2, 0.5, 1.0):
        tar, thr = tar_at_far(g, i, far)
        assert tar == pytest.approx(_brute_tar(g, i, far), abs=1e-12), far
        assert (i > thr).mean() <= far + 1e-12
    far_c, tar_c, _ = roc_curve(g, i)
    assert far_c[0] == 0 and tar_c[0] == 0 and far_c[-1] == 1 and tar_c[-1] == 1
    assert bool(np.all(np.diff(far_c) >= 0)) and bool(np.all(np.diff(tar_c) >= 0))
    assert np.trapezoid(tar_c, far_c) == pytest.approx(roc_auc(g, i), abs=1e-12)


def test_metrics_on_separable_and_identical_scores():
    assert roc_auc([2.0, 3.0], [0.0, 1.0, 1.5]) == 1.0
    assert roc_auc([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert tar_at_far([2.0, 3.0], np.linspace(0, 1, 1000), 1e-3)[0] == 1.0
    with pytest.raises(ValueError):
        roc_auc([np.nan], [0.0])


def test_pair_scores_split_all_pairs():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(10, 4))
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    gen, imp = pair_scores(emb, labels)
    assert len(gen) == 3 + 1 + 6 and len(gen) + len(imp) == 45
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert gen[0] == pytest.approx(float(e[0] @ e[1]))


# ----------------------------------------------------------------------------- data
def test_identity_set_is_deterministic_and_aligned(toy_maker):
    a = make_identity_set(toy_maker, np.random.default_rng(3), 3, 2)
    b = make_identity_set(toy_maker, np.random.default_rng(3), 3, 2)
    assert a.crops.shape == (6, 3, 28, 28) and a.crops.dtype == torch.uint8
    assert a.labels.tolist() == [0, 0, 1, 1, 2, 2] and a.num_identities == 3
    assert torch.equal(a.crops, b.crops)
    assert a.targets.shape == (6, 8) and torch.equal(a.targets[0], a.targets[1])
    assert not torch.equal(a.targets[1], a.targets[2])
    # the face is in the middle of the aligned crop: its centre is not background-black everywhere
    assert float(from_uint8(a.crops)[:, :, 10:18, 10:18].std()) > 0.01


def test_swap_factor_changes_only_that_factor(toy_maker):
    rng = np.random.default_rng(0)
    base, other = toy_maker.nuisances(rng, 4), toy_maker.nuisances(rng, 4)
    for factor, names in FACTORS.items():
        mixed = swap_factor(base, other, factor)
        for name in ("exp", "angles", "trans", "sh", "light_dir", "background_seed", "seed"):
            want = other if name in names else base
            assert np.array_equal(getattr(mixed, name), getattr(want, name)), (factor, name)
    with pytest.raises(ValueError):
        swap_factor(base, other, "haircut")
    # rendering the same identity under a swapped factor changes the crop
    ids = toy_maker.identities(rng, 4)
    c0 = toy_maker.crops(ids, base)
    c1 = toy_maker.crops(ids, swap_factor(base, other, "pose"))
    assert not torch.equal(c0, c1)


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def tiny_set(toy_maker) -> IdentitySet:
    return make_identity_set(toy_maker, np.random.default_rng(5), 6, 6)


TINY_TRAIN = IdNetTrainSettings(
    epochs=8, batch_size=12, lr=5e-3, warmup_steps=5, margin=0.3, scale=16.0, margin_warmup_epochs=2.0
)


def test_tiny_training_improves_separation(tiny_set):
    torch.manual_seed(0)
    before = embed_crops(build_identity_net(TINY_NET), tiny_set.crops)
    net, res = train_identity_net(tiny_set, TINY_NET, TINY_TRAIN, seed=0, progress=False)
    after = embed_crops(net, tiny_set.crops)
    labels = tiny_set.labels.numpy()
    auc_before = roc_auc(*pair_scores(before, labels))
    auc_after = roc_auc(*pair_scores(after, labels))
    assert auc_after > auc_before + 0.05 and auc_after > 0.85, (auc_before, auc_after)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert res.skipped_steps == 0 and res.epochs_done == TINY_TRAIN.epochs


def test_training_resumes_to_the_same_weights(tiny_set, tmp_path):
    s = IdNetTrainSettings(epochs=2, batch_size=12, warmup_steps=2)
    full, _ = train_identity_net(tiny_set, TINY_NET, s, seed=1, progress=False)
    resume = tmp_path / "resume.pt"
    part, r1 = train_identity_net(tiny_set, TINY_NET, s, seed=1, progress=False, resume_path=resume, max_epochs=1)
    assert r1.epochs_done == 1 and resume.is_file()
    done, r2 = train_identity_net(tiny_set, TINY_NET, s, seed=1, progress=False, resume_path=resume)
    assert r2.resumed_from_epoch == 1 and r2.epochs_done == 2 and len(r2.history) == 2
    for (k, a), b in zip(full.state_dict().items(), done.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k


def test_non_finite_loss_is_skipped(tiny_set, monkeypatch):
    import focus.idnet.training as training

    calls = {"n": 0}
    real = training.arc_margin_logits

    def flaky(cos, labels, m, s):
        calls["n"] += 1
        out = real(cos, labels, m, s)
        return out * float("nan") if calls["n"] == 2 else out

    monkeypatch.setattr(training, "arc_margin_logits", flaky)
    net, res = train_identity_net(tiny_set, TINY_NET, IdNetTrainSettings(epochs=1, batch_size=12), progress=False)
    assert res.skipped_steps == 1 and res.history[0]["skipped"] == 1
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())


# ----------------------------------------------------------------------------- checkpoint
def test_checkpoint_round_trip_and_perceptual_wrapper(tmp_path):
    torch.manual_seed(0)
    net = build_identity_net(TINY_NET)
    net.train()
    net(torch.rand(4, 3, 28, 28) * 2 - 1)  # move the BatchNorm statistics away from their init
    net.eval()
    path = tmp_path / "models" / "idnet.pt"
    save_identity_net(net, path, meta={"note": "test", "auc": 0.5})
    crops = torch.rand(5, 3, 28, 28) * 2 - 1
    loaded = load_identity_backbone(path)
    assert torch.allclose(loaded.embedding(crops), net.embedding(crops), atol=1e-6)
    perc = load_identity_net(path)
    assert isinstance(perc, PerceptualNet) and perc.input_size == 28
    perc.train()  # stays frozen and in eval mode
    assert not perc.training and not any(p.requires_grad for p in perc.parameters())
    emb = perc.embed(crops)
    assert emb.shape == (5, 32) and torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    assert perc.early_features(crops).shape == (5, 8, 14, 14)
    # the whole path from a render: crop with the projected landmarks, gradients reach the image
    renderer = FaceRenderer(toy_face_model(), TOY_RENDER)
    out = renderer(renderer.layout.zeros(2))
    image = out.image.clone().requires_grad_(True)
    perc.embed(perc.crop(image, out.landmarks)).sum().backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match="idnet.pt"):
        load_identity_net(tmp_path / "idnet.pt")
    plain = tmp_path / "plain.pt"
    torch.save(build_identity_net(TINY_NET).state_dict(), plain)
    with pytest.raises(InputFileError, match="plain.pt.*not a focus-idnet"):
        load_identity_net(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputFileError, match="junk.pt"):
        load_identity_net(junk)


def test_verification_metrics_refuse_too_few_impostors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="impostor pairs"):
        verification_metrics(rng.normal(size=(12, 4)), np.repeat(np.arange(4), 3))


def test_auxiliary_coefficient_loss_trains(tiny_set):
    s = IdNetTrainSettings(
        epochs=2, batch_size=12, warmup_steps=2, aux_weight=1.0, augment=IdNetAugmentSettings(flip_prob=0.5)
    )
    net, res = train_identity_net(tiny_set, TINY_NET, s, progress=False)
    assert res.skipped_steps == 0 and np.isfinite(res.history[-1]["loss"])
    with pytest.raises(ValueError, match="targets"):
        train_identity_net(IdentitySet(tiny_set.crops, tiny_set.labels), TINY_NET, s, progress=False)


# ----------------------------------------------------------------------------- stage
def test_stage_writes_model_metrics_and_plot(tmp_path):
    import json

    from focus.facemodel.model import save_face_model
    from focus.idnet.evaluation import IdNetEvalSettings
    from focus.idnet.stage import IdNetSettings, run_idnet

    model_path = tmp_path / "facemodel.npz"
    save_face_model(toy_face_model(), model_path)
    settings = IdNetSettings(
        data=IdentityDataSettings(
            train_identities=6, train_views=3, test_identities=10, test_views=3, target_components=4, batch_size=16
        ),
        net=TINY_NET,
        train=IdNetTrainSettings(epochs=1, batch_size=6, warmup_steps=1, aux_weight=1.0),
        eval=IdNetEvalSettings(min_impostor_pairs=100, sensitivity_identities=3),
    )
    out, reports, resume = tmp_path / "models" / "idnet.pt", tmp_path / "reports", tmp_path / "ckpt"
    report = run_idnet(
        model_path, out, reports, settings, TOY_RENDER, SynthSettings(), seed=0, resume_dir=resume, progress=False
    )
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["roc_auc"] == report["roc_auc"] and 0.0 <= metrics["roc_auc"] <= 1.0
    assert metrics["impostor_pairs"] == 30 * 29 // 2 - 10 * 3
    assert set(metrics["sensitivity"]["similarity"]) == {"identity", "all_nuisances", *FACTORS}
    assert (reports / "roc.png").stat().st_size > 0 and (reports / "run.json").is_file()
    assert load_identity_net(out).input_size == TINY_NET.crop_size
    assert not (resume / "resume.pt").exists() and not (resume / "data.pt").exists()


@pytest.mark.slow
def test_worker_processes_make_the_same_crops():
    model = toy_face_model()
    s = IdentityDataSettings(batch_size=4, workers=2, occlusion_prob=0.3)
    with CropMaker(model, TOY_RENDER, s, SynthSettings(), 28) as pooled:
        rng = np.random.default_rng(0)
        ids, nuis = pooled.identities(rng, 10), pooled.nuisances(rng, 10)
        a = pooled.crops(ids, nuis)
    with CropMaker(model, TOY_RENDER, IdentityDataSettings(batch_size=4, workers=0), SynthSettings(), 28) as local:
        b = local.crops(ids, nuis)
    assert torch.equal(a, b)
