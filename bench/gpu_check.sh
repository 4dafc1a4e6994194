#!/usr/bin/env bash
# GPU check in one call on a machine with an NVIDIA GPU: the build, the GPU tests, the training-step
# benchmark at paper scale in float32 and bf16, and the `gpu` profile of the whole pipeline under a
# hard time limit; about 13 minutes of GPU time including set-up (budget 15):
#
#   bash bench/gpu_check.sh OUTDIR
#
#                                                                          (typical seconds)
# 1. records the environment (nvidia-smi, python, torch, nvcc, ninja)      -> OUTDIR/env.txt      5
# 2. installs the `gpu` extra (diffrp-nvdiffrast, ninja) if nvdiffrast is missing: from local
#    wheels in $GPU_WHEELS (default .whl/, e.g. made with
#    `pip download diffrp-nvdiffrast==0.3.3.1 ninja --no-deps -d .whl`), else from the index
#                                                                          -> OUTDIR/pip.log     20
# 3. builds nvdiffrast's CUDA plugin and rasterizes one triangle         -> OUTDIR/build.log   90
# 4. runs the GPU tests (pytest -m gpu: backends, bf16 / channels-last steps on CUDA)
#                                                                          -> OUTDIR/pytest_gpu.log 60
# 5. training steps at paper scale (224 px, ResNet-50, 35,709-vertex mesh) in float32 and bf16
#    (channels-last), batch 12 (the paper's) and $TRAIN_BATCHES (bench/train_step.py)
#                                                                          -> OUTDIR/train_step_cuda.json 90
# 6. the `gpu` profile (configs/gpu.yaml) end to end: facemodel -> synth -> idnet -> init ->
#    pretrain_seg -> EM -> misfit prior -> evaluation -> report, killed at $PROFILE_LIMIT s
#    (default 480 = the 8-minute target); work files in $PROFILE_WORK (default a fresh folder
#    under /tmp: tens of thousands of images, kept out of OUTDIR)
#                                                                          -> OUTDIR/gpu_profile/ 480
#    (reports, params.yaml, times.json, machine.json, logs/): copy it to reports/gpu/ to commit
# 7. a verdict from 5 and 6: reconstruction-step images/s against the 1,000 img/s target, bf16
#    losses against float32 (relative 2e-2), the profile's total against 480 s
#                                                                          -> OUTDIR/verdict.json
# Optional (STEPS=...): render (bench/render.py on both backends -> bench_cuda.json),
# reconstruct (focus reconstruct end to end -> reconstruct_cuda.json).
# Each step's exit status and seconds go to OUTDIR/summary.txt. Every step runs whatever happened
# before it; the script's own exit status is 0 unless OUTDIR is missing.
# Environment: PYTHON (default: python3, else .venv/bin/python), GPU_WHEELS, STEP_TIMEOUT (s),
# NO_INSTALL=1 to skip step 2 (dry runs on a machine whose environment must not change),
# STEPS (default "env,pip,build,pytest,train_step,profile,verdict": the steps to run),
# TRAIN_BATCHES (default 128), PROFILE_LIMIT (s, default 480), PROFILE_WORK, PROFILE_ARGS (extra
# bench/gpu_profile.py arguments, e.g. "--set synth.train.count=10000").
set -u

OUT="${1:?usage: bash bench/gpu_check.sh OUTDIR}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
STEP_TIMEOUT="${STEP_TIMEOUT:-240}"
STEPS=",${STEPS:-env,pip,build,pytest,train_step,profile,verdict},"
TRAIN_BATCHES="${TRAIN_BATCHES:-128}"
PROFILE_LIMIT="${PROFILE_LIMIT:-480}"
PROFILE_WORK="${PROFILE_WORK:-$(mktemp -d /tmp/focus_gpu_profile.XXXXXX)}"
want() { case "$STEPS" in *",$1,"*) return 0;; *) return 1;; esac; }
WHEELS="${GPU_WHEELS:-$ROOT/.whl}"
if [ -z "${PYTHON:-}" ]; then
  if command -v python3 >/dev/null && python3 -c "import torch" 2>/dev/null; then PYTHON=python3
  elif [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"
  else PYTHON=python3; fi
fi
SUMMARY="$OUT/summary.txt"
touch "$SUMMARY"
step() {  # step NAME LOGFILE COMMAND...   (STEP_LIMIT=s overrides STEP_TIMEOUT for one step)
  local name="$1" log="$2"; shift 2
  local t0=$SECONDS
  echo "== $name: $*" >>"$log"
  timeout -k 20 "${STEP_LIMIT:-$STEP_TIMEOUT}" "$@" >>"$log" 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - t0))" | tee -a "$SUMMARY"
  return 0
}

# 1. environment
want env && {
  date -u
  nvidia-smi || echo "nvidia-smi failed"
  echo "python: $PYTHON"
  "$PYTHON" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" || echo "torch import failed"
  command -v nvcc && nvcc --version | tail -2 || echo "no nvcc"
  command -v ninja && ninja --version || echo "no ninja"
  nproc; free -g || true
  git -C "$ROOT" log -1 --oneline 2>/dev/null || true
} >"$OUT/env.txt" 2>&1

# 2. the gpu extra
if ! want pip; then
  :
elif [ "${NO_INSTALL:-0}" = 1 ]; then
  echo "install skipped (NO_INSTALL=1)" >"$OUT/pip.log"
  echo "pip rc=0 seconds=0 (skipped)" | tee -a "$SUMMARY"
elif "$PYTHON" -c "import nvdiffrast" 2>/dev/null && command -v ninja >/dev/null; then
  echo "nvdiffrast and ninja already present" >"$OUT/pip.log"
  echo "pip rc=0 seconds=0 (already installed)" | tee -a "$SUMMARY"
elif [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  step pip "$OUT/pip.log" "$PYTHON" -m pip install --no-index --no-deps --find-links "$WHEELS" diffrp-nvdiffrast ninja
else
  step pip "$OUT/pip.log" "$PYTHON" -m pip install --no-deps "diffrp-nvdiffrast==0.3.3.1" ninja
fi

# 3. build nvdiffrast's CUDA plugin (first use compiles it with ninja + nvcc) and draw a triangle
want build && step build "$OUT/build.log" "$PYTHON" - <<'PY'
import time, torch
import nvdiffrast.torch as dr
t0 = time.time()
from focus.render.nvdiffrast_backend import _context
ctx = _context(0)  # nvdiffrast's context, with the plugin-import workaround of focus
print(f"context (plugin build/load) {time.time() - t0:.1f} s")
pos = torch.tensor([[[-0.8, -0.8, 0, 1], [0.8, -0.8, 0, 1], [-0.8, 0.8, 0, 1]]], device="cuda")
tri = torch.tensor([[0, 1, 2]], dtype=torch.int32, device="cuda")
rast, _ = dr.rasterize(ctx, pos, tri, resolution=[64, 64])
cov = (rast[..., 3] > 0).float().mean().item()
print(f"coverage of the test triangle {cov:.3f} (expected about 0.32)")
assert 0.25 < cov < 0.4
# row 0 of nvdiffrast's output is at y_ndc = -1: near the triangle's right angle (-0.8, -0.8),
# pixel (row 8, col 8) at (-0.73, -0.73) is inside; (row 56, col 8) at (-0.73, 0.77) is outside
assert rast[0, 8, 8, 3] > 0 and rast[0, 56, 8, 3] == 0
print("ok")
PY

# 4. GPU tests
want pytest && step pytest "$OUT/pytest_gpu.log" "$PYTHON" -m pytest -m gpu -v -p no:cacheprovider tests/test_gpu_backends.py tests/test_precision.py

# 5. training steps at paper scale, float32 and bf16, channels-last (the renderer picks nvdiffrast on cuda)
want train_step && step train_step "$OUT/train_step.log" "$PYTHON" bench/train_step.py --out "$OUT/train_step_cuda.json" \
  --devices cuda --scales paper --precisions float32,bf16 --batches "12,$TRAIN_BATCHES" --channels-last on --iters 10

# 6. the gpu profile, whole pipeline, under a hard limit (the runner kills the running stage at the limit)
# shellcheck disable=SC2086
want profile && STEP_LIMIT=$((PROFILE_LIMIT + 60)) step profile "$OUT/profile.log" "$PYTHON" bench/gpu_profile.py \
  --out "$OUT/gpu_profile" --work "$PROFILE_WORK" --time-limit "$PROFILE_LIMIT" --overwrite ${PROFILE_ARGS:-}

# 7. verdict
want verdict && step verdict "$OUT/verdict.log" "$PYTHON" - "$OUT" "$PROFILE_LIMIT" <<'PY'
import json, sys
from pathlib import Path
out, limit = Path(sys.argv[1]), float(sys.argv[2])
verdict = {}
ts = out / "train_step_cuda.json"
if ts.is_file():
    rows = [r for r in json.loads(ts.read_text())["results"] if r["scale"] == "paper"]
    verdict["train_step"] = [{k: r.get(k) for k in ("step", "batch", "precision", "channels_last", "images_per_s",
                                                    "loss_rel_diff_vs_float32", "max_term_rel_diff_vs_float32")}
                             for r in rows]
    rec = [r for r in rows if r["step"] == "reconstruction"]
    best = max(rec, key=lambda r: r["images_per_s"], default=None)
    verdict["best_reconstruction_images_per_s"] = best and best["images_per_s"]
    verdict["reconstruction_at_least_1000_images_per_s"] = bool(best and best["images_per_s"] >= 1000)
    diffs = [r["loss_rel_diff_vs_float32"] for r in rows if r.get("loss_rel_diff_vs_float32") is not None]
    verdict["bf16_total_loss_within_2e-2_of_float32"] = bool(diffs) and max(diffs) <= 2e-2
times = out / "gpu_profile" / "times.json"
if times.is_file():
    t = json.loads(times.read_text())
    verdict["profile_stages"] = {s["stage"]: [s["rc"], s["seconds"]] for s in t["stages"]}
    verdict["profile_total_seconds"] = t["total_seconds"]
    verdict["profile_finished_within_limit"] = t["finished_within_limit"] and t["total_seconds"] <= limit
(out / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")
print(json.dumps(verdict, indent=2))
PY

# optional: both rasterizer backends on cuda (bench/render.py)
want render && step bench "$OUT/bench.log" "$PYTHON" bench/render.py --out "$OUT/bench_cuda.json" --devices cuda --backends torch,nvdiffrast

# optional: focus reconstruct end to end (MTCNN on the GPU)
want reconstruct && step reconstruct "$OUT/bench.log" "$PYTHON" bench/reconstruct.py --out "$OUT/reconstruct_cuda.json" --devices cuda --images 32 --batch 16

echo "done; results in $OUT" | tee -a "$SUMMARY"
exit 0
