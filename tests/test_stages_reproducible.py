"""Same machine, code and params -> the same bytes, whatever the thread settings of the caller's shell
or the load of the machine (issue 15, "Same result every run").

The cheap stages run as DVC runs them (``python stages/<stage>.py`` in a project folder) on tiny
params, twice: once with one OpenMP / BLAS thread in the caller's environment, once with two and
a busy process beside it. Every output (everything but the ``*.timings.json`` logs) must hash the
same, and no output may contain the folder it was written in.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from focus.devices import resolve_threads
from focus.run_info import split_volatile, timings_path, write_json_reproducible
from focus.stage_cli import BLAS_THREAD_VARS, pin_environment

ROOT = Path(__file__).resolve().parents[1]
DVC_STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _tiny_params(dst: Path) -> None:
    p = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    p["facemodel"].update(resolution=31, population_size=16, albedo_population_size=16, n_id=6, n_albedo=6, n_exp=4)
    p["render"]["image_size"] = 32
    s = p["synth"]
    s["workers"] = 0
    s["train"]["count"] = 4
    s["now"].update(subjects=1, images_per_challenge=1)
    s["now"]["scan"]["subdivisions"] = 0
    s["ar"]["per_subset"] = 1
    (dst / "params.yaml").write_text(yaml.safe_dump(p), encoding="utf-8")


def _run_stages(project: Path, stages: list[str], threads: int, busy: bool) -> dict[str, str]:
    """Run ``stages`` in ``project`` (a fresh folder with params.yaml); md5 of every output file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in BLAS_THREAD_VARS:
        env[var] = str(threads)
    hog = None
    if busy:  # a CPU-bound neighbour for the whole run
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for stage in stages:  # the command line of dvc.yaml
            cmd = DVC_STAGES[stage]["cmd"].split()
            assert cmd[:2] == ["python", f"stages/{stage}.py"]
            r = subprocess.run(
                [sys.executable, str(ROOT / cmd[1]), *cmd[2:]],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert r.returncode == 0, r.stderr[-2000:]
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    out = {}
    for f in sorted(project.rglob("*")):
        if f.is_file() and f.name != "params.yaml" and not f.name.endswith(".timings.json"):
            data = f.read_bytes()
            assert str(project).encode() not in data, f"{f} contains the path of its project folder"
            out[str(f.relative_to(project))] = hashlib.md5(data).hexdigest()
    return out


def _check_twice(tmp_path: Path, stages: list[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        _tiny_params(d)
    first = _run_stages(a, stages, threads=1, busy=False)
    second = _run_stages(b, stages, threads=2, busy=True)
    assert first.keys() == second.keys()
    assert first, "the stages wrote nothing"
    differ = sorted(k for k in first if first[k] != second[k])
    assert not differ, f"outputs differ between the runs: {differ}"


@pytest.mark.slow  # ~15-35 s on a shared 2-core machine
def test_facemodel_stage_same_bytes_under_other_threads_and_load(tmp_path):
    _check_twice(tmp_path, ["facemodel"])


@pytest.mark.slow
def test_facemodel_and_synth_stages_same_bytes_under_other_threads_and_load(tmp_path):
    _check_twice(tmp_path, ["facemodel", "synth"])


def test_thread_count_is_a_setting_not_the_load(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.9, 1.9), raising=False)
    assert resolve_threads(3) == 3 and resolve_threads(0) == 0
    assert resolve_threads(-1, cpu_count=8) == 8 and resolve_threads(-1, world_size=3, cpu_count=8) == 2
    assert resolve_threads(-1, world_size=4, cpu_count=2) == 1
    assert resolve_threads(-1) == max(1, os.cpu_count() or 1)


def test_pin_environment_overrides_the_callers_thread_settings():
    env = {"OMP_NUM_THREADS": "8", "CUBLAS_WORKSPACE_CONFIG": ":16:8"}
    pin_environment(env)
    assert all(env[v] == "1" for v in BLAS_THREAD_VARS)
    assert env["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a deterministic setting the user chose stays


def test_timings_leave_the_hashed_json(tmp_path):
    obj = {"stage": "x", "seconds": 3.2, "sets": {"a": {"images": 4, "seconds": 1.0}}, "records": [{"f1": 0.5}]}
    kept, moved = split_volatile(obj)
    assert kept == {"stage": "x", "sets": {"a": {"images": 4}}, "records": [{"f1": 0.5}]}
    assert moved == {"seconds": 3.2, "sets": {"a": {"seconds": 1.0}}}
    assert obj["seconds"] == 3.2  # the input is unchanged
    path = write_json_reproducible(tmp_path / "summary.json", obj)
    again = dict(obj, seconds=99.0)
    before = path.read_bytes()
    write_json_reproducible(path, again)
    assert path.read_bytes() == before
    assert b"99.0" in timings_path(path).read_bytes()
    assert (ROOT / ".dvcignore").read_text(encoding="utf-8").count("*.timings.json") == 1


def test_training_twice_gives_the_same_checkpoint_and_metrics_bytes(tmp_path):
    """Two fresh runs of the init stage with the same params (other thread counts of the caller are
    pinned by the stage script; here the same process) write byte-identical networks and metrics:
    no time or path of the run in them."""
    import torch
    from train_fixtures import tiny_params

    from focus.paths import TRAIN_STAGES, TrainPaths
    from focus.train import pipeline as P

    params = tiny_params(tmp_path, steps=2)
    digests = []
    for run in ("a", "b"):
        paths = TrainPaths(
            run_dirs={s: tmp_path / run / "ck" / s for s in TRAIN_STAGES},
            reports=tmp_path / run / "rep",
            pseudo_masks=tmp_path / run / "pm",
        )
        threads = torch.get_num_threads()
        try:
            P.run_init(params, paths)
        finally:
            torch.set_num_threads(threads)
        files = [paths.final("init"), paths.reports / "init_metrics.json"]
        digests.append([hashlib.md5(f.read_bytes()).hexdigest() for f in files])
        assert str(tmp_path / run).encode() not in files[1].read_bytes()
    assert digests[0] == digests[1]


def test_saved_networks_do_not_depend_on_the_file_name(tmp_path):
    """torch.save to a path puts the path's stem inside the zip; the atomic writes' temporary names
    are random, so the writers save through a file object."""
    import torch

    from focus.idnet.network import IdentityNetSettings, build_identity_net, save_identity_net
    from focus.train.state import save_checkpoint

    state = {"nets": {"w": torch.arange(6.0).reshape(2, 3)}, "records": [{"f1": 0.5}]}
    a, b = save_checkpoint(tmp_path / "a.pt", state), save_checkpoint(tmp_path / "other" / "b.pt", state)
    assert a.read_bytes() == b.read_bytes()
    torch.manual_seed(0)
    net = build_identity_net(IdentityNetSettings(layers=(1, 1, 1, 1), base_width=4, embedding_dim=8))
    save_identity_net(net, tmp_path / "n1.pt", meta={"seed": 0})
    save_identity_net(net, tmp_path / "n2.pt", meta={"seed": 0})
    assert (tmp_path / "n1.pt").read_bytes() == (tmp_path / "n2.pt").read_bytes()
