"""Parameters: every group of params.yaml is read into its frozen settings dataclass and every
value is checked there (type and declared range), with one line naming file, key and value."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

import pytest
from conftest import PROJECT_ROOT

from focus.config import (
    PARAM_GROUPS,
    ParamError,
    ParamValueError,
    check_params,
    deep_merge,
    from_dict,
    merged_params,
    param,
)

PARAMS = PROJECT_ROOT / "params.yaml"


def test_committed_params_pass_every_group():
    built = check_params(merged_params([PARAMS], check=False), str(PARAMS))
    groups = {k for k, v in PARAM_GROUPS.items() if v is not None}
    assert set(built) == groups  # params.yaml has every group the project reads
    todo = list(built.values())
    while todo:  # every annotation resolves (else from_dict could not check the field's type)
        obj = todo.pop()
        cls = type(obj)
        hints = typing.get_type_hints(cls)
        todo += [getattr(obj, f.name) for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])]
    assert built["em"].rounds == 4 and built["render"].image_size == 64
    assert isinstance(built["init"].optim.lr, float) and built["idnet"].net.layers == (1, 1, 1, 1)


def test_paper_override_passes():
    params = merged_params([PARAMS, PROJECT_ROOT / "configs" / "paper.yaml"])
    assert params["em"]["rounds"] == 7 and params["render"]["image_size"] == 224


BAD = [  # (override, dotted key, value as printed)
    ("em: {rounds: -1}", "em.rounds", "-1"),
    ("em: {rounds: 0}", "em.rounds", "0"),
    ("em: {rounds: abc}", "em.rounds", '"abc"'),
    ("em: {rounds: 2.5}", "em.rounds", "2.5"),
    ("em: {rounds: true}", "em.rounds", "true"),
    ("em: {seg_steps: -5}", "em.seg_steps", "-5"),
    ("em: {freeze_batchnorm: 1}", "em.freeze_batchnorm", "1"),
    ("em: {roundz: 3}", "em.roundz", "roundz"),
    ("em: 3", "em", "3"),
    ("em: {encoder_optim: {name: rmsprop}}", "em.encoder_optim.name", '"rmsprop"'),
    ("em: {unet_optim: {lr: 0}}", "em.unet_optim.lr", "0"),
    ("em: {unet_optim: {lr: 1e-3}}", "em.unet_optim.lr", "decimal point"),  # YAML 1.1 reads 1e-3 as a string
    ("em: {seg_weights: {window: 4}}", "em.seg_weights.window", "4"),
    ("render: {image_size: big}", "render.image_size", '"big"'),
    ("render: {image_size: 8}", "render.image_size", "8"),
    ("render: {backend: opengl}", "render.backend", '"opengl"'),
    ("train: {unet: {depth: 7}}", "render.image_size", "64"),  # 64 px cannot be halved 7 times
    ("train: {batch_size: 0}", "train.batch_size", "0"),
    ("train: {identity: imagenet}", "train.identity", '"imagenet"'),
    ("train: {unet: {dropout: 1.5}}", "train.unet.dropout", "1.5"),
    ("train: {encoder: {arch: resnet7}}", "train.encoder.arch", '"resnet7"'),
    ("init: {steps: -100}", "init.steps", "-100"),
    ("init: {weights: {sigma: 0}}", "init.weights.sigma", "0"),
    ("pretrain_seg: {steps: ten}", "pretrain_seg.steps", '"ten"'),
    ("synth: {train: {count: -3}}", "synth.train.count", "-3"),
    ("synth: {occluders: {weights: {hand: -1}}}", "synth.occluders.weights.hand", "-1"),
    ("synth: {sampling: {exp_prob: 1.5}}", "synth.sampling.exp_prob", "1.5"),
    ("synth: {now: {jpeg_quality: 101}}", "synth.now.jpeg_quality", "101"),
    ("idnet: {net: {layers: [1, 1, 0, 1]}}", "idnet.net.layers", "[1, 1, 0, 1]"),
    ("idnet: {net: {layers: [1, 1, 1]}}", "idnet.net.layers", "[1, 1, 1]"),
    ("idnet: {train: {epochs: 0}}", "idnet.train.epochs", "0"),
    ("idnet: {eval: {far: 2}}", "idnet.eval.far", "2"),
    ("facemodel: {resolution: 20}", "facemodel.resolution", "20"),
    ("facemodel: {n_id: 400}", "facemodel", "400"),  # more modes than sampled faces
    ("data: {on_bad_input: ignore}", "data.on_bad_input", '"ignore"'),
    ("data: {augment: {flip_prob: -0.1}}", "data.augment.flip_prob", "-0.1"),
    ("misfit_prior: {count: 1}", "misfit_prior.count", "1"),
    ("eval: {keep_predictions: focus}", "eval.keep_predictions", '"focus"'),
    ("eval: {workers: -2}", "eval.workers", "-2"),
    ("seed: x", "seed", '"x"'),
    ("emm: {rounds: 3}", "emm", "emm"),
]


@pytest.mark.parametrize("text,key,shown", BAD, ids=[b[0] for b in BAD])
def test_bad_override_is_one_line_naming_file_key_and_value(tmp_path, text, key, shown):
    override = tmp_path / "override.yaml"
    override.write_text(text + "\n")
    with pytest.raises(ParamError) as exc:
        merged_params([PARAMS, override])
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{override}: "), msg  # the file that set the value, not params.yaml
    assert key in msg and shown in msg, msg


def test_bad_value_in_the_main_file_names_it(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text().replace("  rounds: 4\n", "  rounds: -1\n"))
    with pytest.raises(ParamError, match=r"params.yaml: em.rounds = -1: expected an integer >= 1"):
        merged_params([params])


@dataclass(frozen=True)
class Inner:
    n: int = param(1, ge=1)


@dataclass(frozen=True)
class Outer:
    x: float = 0.5
    flag: bool = False
    size: int | None = param(None, ge=16)
    kind: Literal["a", "b"] = "a"
    pair: tuple[float, float] = (0.0, 1.0)
    names: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)


def test_types_follow_the_annotations():
    s = from_dict(
        Outer, {"x": 2, "flag": True, "size": None, "kind": "b", "pair": [1, 2.5], "names": ["p"], "inner": {"n": 3}}
    )
    assert s == Outer(2.0, True, None, "b", (1.0, 2.5), ("p",), Inner(3))
    assert isinstance(s.x, float) and isinstance(s.pair[0], float)  # an int is accepted for a float
    for bad in (
        {"x": True},
        {"x": "1"},
        {"flag": 1},
        {"size": 8},
        {"size": 16.0},
        {"kind": "c"},
        {"pair": [1]},
        {"pair": 1.0},
        {"names": [1]},
        {"inner": {"n": 0}},
        {"inner": 3},
    ):
        with pytest.raises(ParamError):
            from_dict(Outer, bad, "x.yaml", key="g")
    with pytest.raises(ParamError, match=r"^x.yaml: g.inner.n = 0: expected an integer >= 1$"):
        from_dict(Outer, {"inner": {"n": 0}}, "x.yaml", key="g")
    with pytest.raises(ParamError, match=r"^x.yaml: g.x = true: expected a number$"):  # bool is not a number
        from_dict(Outer, {"x": True}, "x.yaml", key="g")


def test_settings_built_in_code_are_checked_too():
    from focus.train.settings import EMSettings, OptimSettings

    with pytest.raises(ParamValueError, match="rounds"):
        EMSettings(rounds=0)
    with pytest.raises(ParamValueError, match="name"):
        OptimSettings(name="rmsprop")


def test_older_source_form_still_names_file_and_key():
    from focus.train.settings import EMSettings

    with pytest.raises(ParamError, match=r"^params.yaml: em.rounds = -1: "):
        from_dict(EMSettings, {"rounds": -1}, "params.yaml:em")


def test_merging_lives_in_config():
    import focus.train.pipeline as P

    assert not hasattr(P, "merged_params") and not hasattr(P, "deep_merge")
    dst = {"a": {"b": 1, "c": 2}, "d": 1}
    deep_merge(dst, {"a": {"b": 3}, "d": {"e": 1}})
    assert dst == {"a": {"b": 3, "c": 2}, "d": {"e": 1}}


def test_settings_class_names_are_distinct():
    import importlib
    import pkgutil

    import focus

    seen: dict[str, str] = {}
    for info in pkgutil.walk_packages(focus.__path__, "focus."):
        if info.name.endswith(("__main__", "nvdiffrast_backend")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and dataclasses.is_dataclass(obj)
                and obj.__module__ == info.name
                and name.endswith("Settings")
            ):
                assert name not in seen, f"{name} in {seen.get(name)} and {info.name}"
                seen[name] = info.name
    assert {"IdNetTrainSettings", "IdNetAugmentSettings", "IdNetEvalSettings", "TrainSettings"} <= set(seen)
