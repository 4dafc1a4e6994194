#!/usr/bin/env bash
# GPU check of the image formation, in one call of a few minutes on a machine with an NVIDIA GPU:
#
#   bash bench/gpu_check.sh OUTDIR
#
# 1. records the environment (nvidia-smi, python, torch, nvcc, ninja)      -> OUTDIR/env.txt
# 2. installs the `gpu` extra (diffrp-nvdiffrast, ninja) if nvdiffrast is missing: from local
#    wheels in $GPU_WHEELS (default .whl/, e.g. made with
#    `pip download diffrp-nvdiffrast==0.3.3.1 ninja --no-deps -d .whl`), else from the index
#                                                                          -> OUTDIR/pip.log
# 3. builds nvdiffrast's CUDA plugin and rasterizes one triangle         -> OUTDIR/build.log
# 4. runs the GPU tests (pytest -m gpu)                                   -> OUTDIR/pytest_gpu.log
# 5. benchmarks both backends on cuda (bench/render.py)                   -> OUTDIR/bench_cuda.json,
#                                                                             OUTDIR/bench.log
# 6. training steps at the default and paper scales on cuda (bench/train_step.py)
#                                                                          -> OUTDIR/train_step_cuda.json
# 7. `focus reconstruct` end to end on cuda (bench/reconstruct.py; needs facenet-pytorch)
#                                                                          -> OUTDIR/reconstruct_cuda.json
# and writes each step's exit status to OUTDIR/summary.txt. Every step runs whatever happened
# before it; the script's own exit status is 0 unless OUTDIR is missing.
# Environment: PYTHON (default: python3, else .venv/bin/python), GPU_WHEELS, STEP_TIMEOUT (s),
# NO_INSTALL=1 to skip step 2 (dry runs on a machine whose environment must not change),
# STEPS (default "env,pip,build,pytest,render,train_step,reconstruct": the steps to run).
set -u

OUT="${1:?usage: bash bench/gpu_check.sh OUTDIR}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
STEP_TIMEOUT="${STEP_TIMEOUT:-240}"
STEPS=",${STEPS:-env,pip,build,pytest,render,train_step,reconstruct},"
want() { case "$STEPS" in *",$1,"*) return 0;; *) return 1;; esac; }
WHEELS="${GPU_WHEELS:-$ROOT/.whl}"
if [ -z "${PYTHON:-}" ]; then
  if command -v python3 >/dev/null && python3 -c "import torch" 2>/dev/null; then PYTHON=python3
  elif [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"
  else PYTHON=python3; fi
fi
SUMMARY="$OUT/summary.txt"
touch "$SUMMARY"
step() {  # step NAME LOGFILE COMMAND...
  local name="$1" log="$2"; shift 2
  local t0=$SECONDS
  echo "== $name: $*" >>"$log"
  timeout "$STEP_TIMEOUT" "$@" >>"$log" 2>&1
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
want pytest && step pytest "$OUT/pytest_gpu.log" "$PYTHON" -m pytest -m gpu -v -p no:cacheprovider tests/test_gpu_backends.py

# 5. benchmark on cuda, both backends
want render && step bench "$OUT/bench.log" "$PYTHON" bench/render.py --out "$OUT/bench_cuda.json" --devices cuda --backends torch,nvdiffrast

# 6. training steps (default and paper scale; the renderer picks nvdiffrast on cuda)
want train_step && step train_step "$OUT/bench.log" "$PYTHON" bench/train_step.py --out "$OUT/train_step_cuda.json" --devices cuda --iters 10

# 7. focus reconstruct end to end (MTCNN on the GPU)
want reconstruct && step reconstruct "$OUT/bench.log" "$PYTHON" bench/reconstruct.py --out "$OUT/reconstruct_cuda.json" --devices cuda --images 32 --batch 16

echo "done; results in $OUT" | tee -a "$SUMMARY"
exit 0
