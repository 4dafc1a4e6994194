"""Run the whole pipeline with a profile (default ``configs/gpu.yaml``) in a work folder of its own.

    python bench/gpu_profile.py --out reports/gpu [--profile configs/gpu.yaml] [--work /tmp/focus_gpu]
                                [--extra more.yaml] [--set train.batch_size=64 ...] [--time-limit 510]
                                [--dry-run]

1. merges ``params.yaml``, the profile and the ``--extra`` files (later files override earlier
   ones group by group, as ``--params`` does) and the ``--set`` values, checks every value
   (:func:`focus.config.merged_params`) and writes the result as ``<work>/params.yaml``: every
   stage reads ``params.yaml`` from its working directory, so each runs with exactly the profile;
2. runs the stages of ``dvc.yaml`` in their order (``facemodel`` ... ``report``), each as its own
   process with ``<work>`` as working directory and the project on ``PYTHONPATH``: ``data/``,
   ``models/``, ``checkpoints/`` and ``reports/`` are written under ``<work>``, never into the
   project's own; a stage that fails stops the run, and the whole run stops at ``--time-limit``
   seconds (the running stage is killed);
3. copies ``<work>/reports`` to ``--out`` with ``params.yaml`` (the merged profile), ``times.json``
   (per-stage seconds and exit status, total, the limit) and ``machine.json`` (GPU, CPU count,
   torch), and each stage's log to ``--out/logs``.

``--out`` must not hold an earlier run's ``times.json`` unless ``--overwrite`` is given (results are
never replaced by accident). ``--dry-run`` does step 1 and prints the commands. Exit status: 0 when
every stage finished within the limit, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from focus.config import deep_merge, load_params, merged_params  # noqa: E402
from focus.errors import FocusError  # noqa: E402
from focus.io_utils import write_json_atomic  # noqa: E402


def parse_set(items: list[str]) -> dict:
    """``["train.batch_size=64", "em.rounds=2"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FocusError(f"--set {item!r}: expected KEY=VALUE, e.g. train.batch_size=64")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def profile_params(
    profile: Path, overrides: dict | None = None, base: Path = ROOT / "params.yaml", extra: list[Path] = ()
) -> dict:
    """``base`` + ``profile`` + ``extra`` files + ``overrides``, every value checked (raises
    :class:`focus.config.ParamError` naming the file that set a bad value)."""
    params = merged_params([base, profile, *extra])
    if overrides:
        deep_merge(params, overrides)
        params = _checked(params)
    return params


def _checked(params: dict) -> dict:
    from focus.config import check_params

    check_params(params, "--set")
    return params


def stage_commands(dvc_yaml: Path = ROOT / "dvc.yaml") -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of every ``dvc.yaml`` stage in its order; ``python stages/x.py`` becomes
    this interpreter with the project's script path."""
    stages = load_params(dvc_yaml).get("stages") or {}
    out = []
    for name, spec in stages.items():
        cmd = str(spec["cmd"]).split("#", 1)[0].split()
        if cmd and cmd[0] in ("python", "python3"):
            cmd[0] = sys.executable
        cmd = [str(ROOT / c) if c.startswith("stages/") else c for c in cmd]
        out.append((name, cmd))
    return out


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        pass
    return info


def run(args: argparse.Namespace) -> int:
    out, work = Path(args.out), Path(args.work)
    if (out / "times.json").exists() and not args.overwrite and not args.dry_run:
        raise FocusError(f"{out / 'times.json'} exists (an earlier run): pass --overwrite or another --out")
    params = profile_params(Path(args.profile), parse_set(args.set), extra=[Path(f) for f in args.extra])
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    commands = stage_commands()
    if args.stages:
        wanted = args.stages.split(",")
        unknown = sorted(set(wanted) - {n for n, _ in commands})
        if unknown:
            raise FocusError(f"--stages: unknown stage {unknown[0]!r}; known: {', '.join(n for n, _ in commands)}")
        commands = [(n, c) for n, c in commands if n in wanted]
    if args.dry_run:
        print(f"params: {work / 'params.yaml'}")
        for name, cmd in commands:
            print(f"{name}: (cd {work} && {' '.join(cmd)})")
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    times: dict = {
        "profile": str(args.profile),
        "extra": list(args.extra),
        "set": list(args.set),
        "time_limit_s": args.time_limit,
        "stages": [],
    }
    t_start = time.perf_counter()
    ok = True
    for name, cmd in commands:
        left = args.time_limit - (time.perf_counter() - t_start)
        if left <= 0:
            times["stages"].append({"stage": name, "rc": None, "seconds": 0.0, "note": "not run: time limit"})
            ok = False
            continue
        t0 = time.perf_counter()
        with open(logs / f"{name}.log", "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                rc = proc.wait(timeout=left)
                note = ""
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                rc, note = None, "killed: time limit"
        seconds = round(time.perf_counter() - t0, 2)
        times["stages"].append({"stage": name, "rc": rc, "seconds": seconds, **({"note": note} if note else {})})
        print(f"{name}: rc={rc} {seconds:.1f} s {note}", flush=True)
        if rc != 0:
            ok = False
            break
    times["total_seconds"] = round(time.perf_counter() - t_start, 2)
    times["finished_within_limit"] = ok
    if (work / "reports").is_dir():
        shutil.copytree(work / "reports", out, dirs_exist_ok=True)
    shutil.copyfile(work / "params.yaml", out / "params.yaml")
    write_json_atomic(out / "machine.json", machine())
    write_json_atomic(out / "times.json", times)
    print(f"total {times['total_seconds']:.1f} s (limit {args.time_limit} s); reports in {out}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="where the reports, params, times and logs go (e.g. reports/gpu)")
    p.add_argument("--profile", default=str(ROOT / "configs" / "gpu.yaml"), help="override file on top of params.yaml")
    p.add_argument("--work", default="/tmp/focus_gpu_profile", help="work folder (data, models, checkpoints)")
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="YAML",
        help="further override file after the profile, repeatable (e.g. a scaled-down CPU smoke run)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override, repeatable")
    p.add_argument("--stages", default="", help="comma-separated subset of the dvc.yaml stages (default: all)")
    p.add_argument("--time-limit", type=float, default=510.0, help="seconds for the whole run (default 510)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run's results in --out")
    p.add_argument("--dry-run", action="store_true", help="write the merged params and print the commands only")
    a = p.parse_args(argv)
    try:
        return run(a)
    except FocusError as exc:
        print(f"gpu_profile: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
