"""The training loop: each phase's objective descends, resume == uninterrupted, non-finite
skip / stop, frozen networks stay unchanged in eval mode, the stages run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_fixtures import make_tiny_folder, tiny_face_model, tiny_params

from focus.data import DataSettings, FaceImageFolder, template_from_model
from focus.losses import InitLossWeights, ReconstructionLossWeights, SegmentationLossWeights
from focus.nets.encoder import EncoderSettings, ReconstructionEncoder
from focus.nets.iresnet import IResNet, IResNetSettings
from focus.nets.perceptual import PerceptualNet
from focus.nets.trained import load_trained
from focus.nets.unet import SegmentationUNet, UNetSettings
from focus.predictor import segment
from focus.render.renderer import FaceRenderer, RenderSettings
from focus.train import steps as S
from focus.train.settings import OptimSettings, TrainSettings
from focus.train.state import LAST, load_checkpoint
from focus.train.trainer import Phase, Trainer, TrainingDiverged

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    model = tiny_face_model()
    make_tiny_folder(root / "data", model, n=16, size=SIZE)
    renderer = FaceRenderer(model, RenderSettings(image_size=SIZE, backend="torch"))
    template = template_from_model(model, SIZE)
    ds = FaceImageFolder(root / "data", template, DataSettings(crop_size=SIZE), augment=True)
    return {"root": root, "model": model, "renderer": renderer, "dataset": ds}


def _batch(tiny, n=4):
    items = [tiny["dataset"][i] for i in range(n)]
    return {
        "image": torch.stack([it["image"] for it in items]),
        "landmarks": torch.stack([it["landmarks"] for it in items]),
    }


def _perceptual():
    torch.manual_seed(3)
    return PerceptualNet(
        IResNet(IResNetSettings(arch="custom", layers=(1, 1, 1, 1), base_width=4, input_size=24, num_features=8))
    )


def _encoder(tiny):
    torch.manual_seed(0)
    return ReconstructionEncoder(tiny["renderer"].layout, EncoderSettings("resnet18"))


def _unet():
    torch.manual_seed(1)
    return SegmentationUNet(UNetSettings(base_width=4, depth=2))


def _descend(params, closure, steps=6, lr=1e-3):
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = closure()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        final = float(closure()[0])
    return losses[0], final


# ---------------------------------------------------------------------------- objectives descend
def test_init_objective_descends(tiny):
    enc, batch, per = _encoder(tiny), _batch(tiny), _perceptual()
    enc.eval()  # BatchNorm statistics of a 4-image batch are noisy; eval makes the objective fixed
    w = InitLossWeights(lm=5e-3, reg=0.03)
    first, last = _descend(enc.parameters(), lambda: S.init_objective(enc, tiny["renderer"], per, batch, w))
    assert last < first
    _, terms = S.init_objective(enc, tiny["renderer"], per, batch, w)
    assert set(terms) == {"rob", "lm", "reg", "id", "total"}


def test_pretrain_seg_objective_descends(tiny):
    enc, unet, batch = _encoder(tiny).eval(), _unet().eval(), _batch(tiny)
    batch["pseudo_mask"] = (torch.rand(4, 1, SIZE, SIZE) > 0.5).float()
    first, last = _descend(
        unet.parameters(), lambda: S.pretrain_seg_objective(unet, enc, tiny["renderer"], batch), lr=1e-2
    )
    assert last < first


def test_segmentation_objective_descends(tiny):
    enc, unet, batch, per = _encoder(tiny).eval(), _unet().eval(), _batch(tiny), _perceptual()
    w = SegmentationLossWeights()
    first, last = _descend(
        unet.parameters(), lambda: S.segmentation_objective(unet, enc, tiny["renderer"], per, batch, w), lr=1e-2
    )
    assert last < first
    _, terms = S.segmentation_objective(unet, enc, tiny["renderer"], per, batch, w)
    assert {"bin", "area", "nbr", "presv", "dist"} <= set(terms)


@pytest.mark.parametrize("through", [True, False])
def test_reconstruction_objective_descends(tiny, through):
    enc, unet, batch = _encoder(tiny).eval(), _unet().eval(), _batch(tiny)
    unet.requires_grad_(False)
    w = ReconstructionLossWeights(lm=5e-3, reg=0.03)
    first, last = _descend(
        enc.parameters(), lambda: S.reconstruction_objective(enc, unet, tiny["renderer"], None, batch, w, through)
    )
    assert last < first


def test_gradient_reaches_encoder_through_unet_only_when_switched_on(tiny):
    enc, unet, batch = _encoder(tiny).eval(), _unet().eval(), _batch(tiny)
    unet.requires_grad_(False)
    # only L_area depends on the mask alone: its gradient to the encoder exists iff it flows through the U-Net
    w = ReconstructionLossWeights(pix=0, id=0, reg=0, lm=0, area=1.0)
    for through, expect in ((True, True), (False, False)):
        enc.zero_grad()
        loss, _ = S.reconstruction_objective(enc, unet, tiny["renderer"], None, batch, w, through)
        if loss.requires_grad:
            loss.backward()
        g = enc.backbone.fc.weight.grad
        has = g is not None and float(g.abs().sum()) > 0
        assert has is expect


# ---------------------------------------------------------------------------- trainer
def _mask_objective(trainer, target_fn=None, nan_steps=()):
    """BCE of the U-Net on (image, image) against 'bright pixel' masks; NaN at the given call numbers."""
    calls = {"n": 0}

    def obj(batch):
        calls["n"] += 1
        img = batch["image"]
        seg = trainer.module("unet")(img, img)
        target = (img.mean(1, keepdim=True) > 0.4).float()
        loss = torch.nn.functional.binary_cross_entropy(seg.clamp(1e-6, 1 - 1e-6), target)
        if calls["n"] in nan_steps:
            loss = loss * float("nan")
        return loss, {"total": loss.detach()}

    return obj


def _trainer(tiny, run_dir, ts=None, unet=None):
    ts = ts or TrainSettings(batch_size=4, checkpoint_every=2, progress=False, val_count=0)
    unet = unet or _unet()
    return Trainer(
        "test",
        {"unet": unet},
        {"unet": OptimSettings(name="adam", lr=1e-2, decay=0.5, decay_every=3)},
        ts,
        Path(run_dir),
        None,
        "fp-test",
    )


def _phases(tiny, trainer, steps, nan_steps=()):
    return [
        Phase(
            "a",
            "unet",
            steps,
            _mask_objective(trainer, nan_steps=nan_steps),
            tiny["dataset"],
            list(range(12)),
            snapshot="a.pt",
        ),
        Phase("b", "unet", steps, _mask_objective(trainer), tiny["dataset"], list(range(12))),
    ]


class _Interrupt(Exception):
    pass


def test_resume_gives_the_same_state_as_an_uninterrupted_run(tiny, tmp_path):
    # uninterrupted: 2 phases x 5 steps (U-Net with dropout: the RNG state matters; augmented data)
    t_full = _trainer(tiny, tmp_path / "full")
    t_full.run(_phases(tiny, t_full, 5))
    full = {k: v.clone() for k, v in t_full.nets["unet"].state_dict().items()}

    # interrupted in phase b after its step 3 (last checkpoint at step 2 of phase b), then resumed
    t1 = _trainer(tiny, tmp_path / "resumed")
    phases = _phases(tiny, t1, 5)
    inner = phases[1].objective
    count = {"n": 0}

    def failing(batch):
        count["n"] += 1
        if count["n"] == 4:
            raise _Interrupt()
        return inner(batch)

    phases[1].objective = failing
    with pytest.raises(_Interrupt):
        t1.run(phases)
    saved = load_checkpoint(tmp_path / "resumed" / LAST)
    assert (saved["phase_index"], saved["phase_step"]) == (1, 2)

    t2 = _trainer(tiny, tmp_path / "resumed")
    assert t2.try_resume()
    assert (t2.phase_index, t2.phase_step, t2.data_step) == (1, 2, 7)
    t2.run(_phases(tiny, t2, 5))
    resumed = t2.nets["unet"].state_dict()
    for k, v in full.items():
        assert torch.equal(v, resumed[k]), k
    assert t2.net_steps == t_full.net_steps == {"unet": 10}
    # another fingerprint does not resume
    t3 = Trainer("test", {"unet": _unet()}, {"unet": OptimSettings()}, t2.settings, tmp_path / "resumed", None, "other")
    assert not t3.try_resume()


def test_nonfinite_steps_are_skipped_and_counted(tiny, tmp_path):
    t = _trainer(tiny, tmp_path / "nan")
    before = {k: v.clone() for k, v in t.nets["unet"].state_dict().items()}
    phases = _phases(tiny, t, 3, nan_steps=(1, 2, 3))[:1]  # every step of the phase is NaN
    t.run(phases)
    assert t.nonfinite_total == 3 and t.net_steps["unet"] == 0
    after = t.nets["unet"].state_dict()
    for k, v in before.items():
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(v, after[k]), k
    # one bad step among good ones: skipped, the rest train
    t2 = _trainer(tiny, tmp_path / "nan2")
    t2.run(_phases(tiny, t2, 4, nan_steps=(2,))[:1])
    assert t2.nonfinite_total == 1 and t2.net_steps["unet"] == 3


def test_repeated_nonfinite_losses_stop_the_run(tiny, tmp_path):
    ts = TrainSettings(batch_size=4, checkpoint_every=0, progress=False, val_count=0, max_nonfinite=3)
    t = _trainer(tiny, tmp_path / "stop", ts)
    phases = _phases(tiny, t, 10, nan_steps=(2, 3, 4, 5))[:1]
    with pytest.raises(TrainingDiverged) as exc:
        t.run(phases)
    msg = str(exc.value)
    assert "3 non-finite" in msg and "phase a" in msg and str(tmp_path / "stop") in msg
    assert t.net_steps["unet"] == 1


def test_frozen_network_unchanged_and_in_eval_mode(tiny, tmp_path):
    enc, unet, ren = _encoder(tiny), _unet(), tiny["renderer"]
    ts = TrainSettings(batch_size=4, checkpoint_every=0, progress=False, val_count=0)
    t = Trainer(
        "em",
        {"encoder": enc, "unet": unet},
        {"encoder": OptimSettings(lr=1e-3), "unet": OptimSettings(lr=1e-2)},
        ts,
        tmp_path / "em",
        None,
        "fp",
    )
    seen = []

    def seg(b):
        seen.append(("seg", enc.training, any(p.requires_grad for p in enc.parameters()), unet.training))
        return S.segmentation_objective(t.module("unet"), enc, ren, None, b, SegmentationLossWeights())

    def rec(b):
        seen.append(("rec", unet.training, any(p.requires_grad for p in unet.parameters()), enc.training))
        return S.reconstruction_objective(
            t.module("encoder"), unet, ren, None, b, ReconstructionLossWeights(lm=5e-3, reg=0.03), True
        )

    snap = lambda m: {k: v.clone() for k, v in m.state_dict().items()}  # noqa: E731
    e0, u0 = snap(enc), snap(unet)
    t.run([Phase("seg", "unet", 2, seg, tiny["dataset"], list(range(12)))])
    e1, u1 = snap(enc), snap(unet)
    assert all(torch.equal(e0[k], e1[k]) for k in e0)  # weights and BatchNorm statistics
    assert any(not torch.equal(u0[k], u1[k]) for k in u0)
    t.phase_index = 0
    t.run([Phase("rec", "encoder", 2, rec, tiny["dataset"], list(range(12)))])
    e2, u2 = snap(enc), snap(unet)
    assert all(torch.equal(u1[k], u2[k]) for k in u1)
    assert any(not torch.equal(e1[k], e2[k]) for k in e1)
    assert seen and all(
        frozen_training is False and frozen_grad is False and trained is True
        for _, frozen_training, frozen_grad, trained in seen
    )
    assert {s[0] for s in seen} == {"seg", "rec"}


# ---------------------------------------------------------------------------- stages end to end
def test_stages_run_resume_and_extend_rounds(tmp_path):
    from focus.train import pipeline as P

    params = tiny_params(tmp_path, steps=2, rounds=1)
    paths = P.Paths(
        run_dirs={k: tmp_path / "ck" / k for k in ("init", "pretrain_seg", "em")},
        pseudo_masks=tmp_path / "pm",
        reports=tmp_path / "rep",
    )
    first = P.run_init(params, paths)
    # a finished stage re-run (as DVC does, after removing its non-persistent outputs) only resumes
    (tmp_path / "ck" / "init" / "final.pt").unlink()
    again = P.run_init(params, paths)
    assert again == first and (tmp_path / "ck" / "init" / "final.pt").is_file()
    # how the run went (resumed, seconds) is kept out of the hashed metrics file (README "Reproducibility")
    assert "resumed_from" not in json.loads((tmp_path / "rep" / "init_metrics.json").read_text())
    assert json.loads((tmp_path / "rep" / "init_metrics.timings.json").read_text())["resumed_from"] is not None
    P.run_pretrain_seg(params, paths)
    recs = P.run_em(params, paths)
    assert [r["phase"] for r in recs] == ["r1/seg", "r1/rec"]
    assert len(list((tmp_path / "pm").glob("*.png"))) == 16  # 24 images, 8 held out
    for f in ("init/final.pt", "pretrain_seg/final.pt", "em/round_01.pt", "em/final.pt"):  # test layout
        assert (tmp_path / "ck" / f).is_file(), f
    enc, unet, _ = load_trained(tmp_path / "ck" / "em" / "final.pt")
    assert unet is not None and not enc.training
    report = json.loads((tmp_path / "rep" / "em_metrics.json").read_text())
    assert [r["phase"] for r in report["records"]] == ["init", "pretrain_seg", "r1/seg", "r1/rec"]
    assert report["records"][0]["seg_source"] == "pseudo"
    assert not any("seconds" in r for r in report["records"])  # records go into checkpoints: no timings there
    assert all(math.isfinite(r["shape_mm"]) for r in report["records"])
    assert (tmp_path / "rep" / "em_rounds.png").is_file()
    # more rounds continue the finished run (same fingerprint; rounds is not part of it)
    params["em"]["rounds"] = 2
    recs = P.run_em(params, paths)
    assert [r["phase"] for r in recs] == ["r1/seg", "r1/rec", "r2/seg", "r2/rec"]
    assert json.loads((tmp_path / "rep" / "em_metrics.timings.json").read_text())["resumed_from"] is not None
    # fewer rounds start afresh and leave no stale round snapshots
    params["em"]["rounds"] = 1
    P.run_em(params, paths)
    assert not (tmp_path / "ck" / "em" / "round_02.pt").exists()


# ---------------------------------------------------------------------------- DDP
DDP_DRIVER = r"""
import json, os, sys
sys.path.insert(0, {tests!r})
import torch
from pathlib import Path
from train_fixtures import tiny_params
from focus.train import distributed as D
from focus.train import pipeline as P

tmp = Path({tmp!r})
params = tiny_params(tmp, steps=2, rounds=1)
params["train"]["batch_size"] = 2
paths = P.Paths(run_dirs={{k: tmp / "ck" / k for k in ("init", "pretrain_seg", "em")}}, pseudo_masks=tmp / "pm",
                reports=tmp / "rep")
P.run_init(params, paths)
P.run_pretrain_seg(params, paths)
P.run_em(params, paths)
info = D.setup("cpu")
# a direct Trainer run: in-memory weights of every rank after DDP steps on different batches
from focus.data import DataSettings, FaceImageFolder, template_from_model
from focus.facemodel.model import load_face_model
from focus.nets.unet import SegmentationUNet, UNetSettings
from focus.predictor import segment
from focus.train.data import StepBatchSampler
from focus.train.settings import OptimSettings, TrainSettings
from focus.train.trainer import Phase, Trainer
model = load_face_model(params["train"]["facemodel"])
ds = FaceImageFolder(params["train"]["data"], template_from_model(model, 32), DataSettings(crop_size=32), augment=True)
torch.manual_seed(info.rank)  # different initial weights: DDP must broadcast rank 0's
unet = SegmentationUNet(UNetSettings(base_width=4, depth=2, dropout=0.0))
ts = TrainSettings(batch_size=2, checkpoint_every=0, progress=False, val_count=0)
t = Trainer("ddp", {{"unet": unet}}, {{"unet": OptimSettings(lr=1e-2)}}, ts, tmp / "ddp", None, "fp", info)
def obj(b):
    seg = t.module("unet")(b["image"], b["image"])
    return ((seg - (b["image"].mean(1, keepdim=True) > 0.4).float()) ** 2).mean(), {{"total": torch.zeros(())}}
t.run([Phase("p", "unet", 3, obj, ds, list(range(16)))])
keys = StepBatchSampler(16, 2, info.rank, info.world_size).batch_keys(0)
summary = {{"rank": info.rank, "world": info.world_size,
           "unet_sum": float(sum(p.double().sum() for p in unet.parameters())), "keys": keys,
           "saved": (tmp / "ddp" / "last.pt").is_file()}}
(tmp / f"rank{{info.rank}}.json").write_text(json.dumps(summary))
D.cleanup()
"""


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    """torchrun with 2 CPU processes (gloo): every stage runs, rank 0 writes, both ranks agree."""
    import subprocess
    import sys

    tests_dir = str(Path(__file__).resolve().parent)
    tiny_params(tmp_path, steps=2, rounds=1)  # create model and data before the processes start
    script = tmp_path / "driver.py"
    script.write_text(DDP_DRIVER.format(tests=tests_dir, tmp=str(tmp_path)))
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    assert ranks[0]["unet_sum"] == ranks[1]["unet_sum"]  # synchronised weights
    assert ranks[0]["keys"] != ranks[1]["keys"]  # different batches per rank
    assert ranks[0]["saved"] and ranks[1]["saved"]
    report = json.loads((tmp_path / "rep" / "em_metrics.json").read_text())
    assert report["world_size"] == 2
    assert [r["phase"] for r in report["records"]] == ["init", "pretrain_seg", "r1/seg", "r1/rec"]
    assert not list(tmp_path.glob("rep/**/*.tmp"))


# ---------------------------------------------------------------------------- small pieces
def test_segment_feeds_the_unet_a_clamped_render():
    seen = {}

    def unet(r, i):
        seen["range"] = (float(r.detach().min()), float(r.detach().max()))
        return torch.sigmoid(r.sum(1, keepdim=True))

    render = torch.tensor([-14.0, 0.5, 3.0]).reshape(1, 3, 1, 1).expand(1, 3, 2, 2).clone().requires_grad_(True)
    segment(unet, render, torch.zeros(1, 3, 2, 2)).sum().backward()
    assert seen["range"] == (0.0, 1.0)
    assert render.grad[0, 1].abs().sum() > 0 and render.grad[0, 0].abs().sum() == 0  # no gradient where clamped


def test_schedules_and_threads():
    from focus.devices import resolve_threads
    from focus.train.settings import InitSettings

    st = InitSettings(threshold_start=8.0, threshold_anneal_steps=100)
    ts = [st.threshold_at(k) for k in (0, 50, 99, 100, 1000)]
    assert ts[0] == pytest.approx(8.0) and ts[3] == ts[4] == st.weights.threshold
    assert ts[0] > ts[1] > ts[2] > ts[3]
    assert InitSettings(threshold_anneal_steps=0).threshold_at(0) == st.weights.threshold
    o = OptimSettings(lr=1.0, decay=0.5, decay_every=10)
    assert [o.lr_at(k) for k in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    w = OptimSettings(lr=1.0, decay=0.5, decay_every=10, warmup=4)
    assert [w.lr_at(k) for k in (0, 1, 3, 4, 10)] == pytest.approx([0.25, 0.5, 1.0, 1.0, 0.5])
    assert resolve_threads(3) == 3 and resolve_threads(0) == 0
    import os

    assert 1 <= resolve_threads(-1) <= (os.cpu_count() or 1)


def test_freeze_batchnorm_trains_weights_but_keeps_statistics(tiny, tmp_path):
    t = _trainer(tiny, tmp_path / "fbn")
    unet = t.nets["unet"]
    bn_before = {k: v.clone() for k, v in unet.state_dict().items() if "running" in k}
    w_before = unet.head.weight.clone()
    phase = _phases(tiny, t, 2)[0]
    phase.freeze_batchnorm = True
    seen = []
    inner = phase.objective

    def obj(b):
        seen.append(
            all(not m.training for m in unet.modules() if isinstance(m, torch.nn.BatchNorm2d)) and unet.training
        )
        return inner(b)

    phase.objective = obj
    t.run([phase])
    assert all(seen)
    after = unet.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in bn_before.items())
    assert not torch.equal(w_before, unet.head.weight)
