#!/usr/bin/env bash
# Every GPU measurement in one run: the `cuda`-marked tests and the step and memory benchmarks
# (reference, fast, bf16, fp16, CUDA graphs, both orders, the paper's setting and the classroom
# shape). Each command's output goes to RESULTS/NAME.txt; RESULTS/summary.txt gathers the GPU's
# name and the last lines of each. A command that fails or runs past its time limit is recorded
# and the next one runs.
#
#     bash bench/gpu_check.sh RESULTS          # default RESULTS: $OUT if set, else gpu-results
#     LIMIT=120 bash bench/gpu_check.sh        # seconds per command (default 300)
#
# Needs torch with CUDA already installed (no download); installs dartsviz itself from this
# checkout without dependencies when it is not importable.
set -u
cd "$(dirname "$0")/.."
RESULTS=${1:-${OUT:-gpu-results}}
LIMIT=${LIMIT:-300}
mkdir -p "$RESULTS"
SUMMARY="$RESULTS/summary.txt"
: > "$SUMMARY"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "nvidia-smi: not found"
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1
} >> "$SUMMARY"

if ! python -c "import dartsviz" 2>/dev/null; then
  pip install --no-deps --no-build-isolation -q -e . > "$RESULTS/install.txt" 2>&1 || echo "install failed (install.txt)" >> "$SUMMARY"
fi

run() {                                   # run NAME COMMAND...: output to NAME.txt, tail to the summary
  local name=$1; shift
  echo "== $name: $*" >> "$SUMMARY"
  timeout "$LIMIT" "$@" > "$RESULTS/$name.txt" 2>&1
  local rc=$?
  echo "rc=$rc" >> "$RESULTS/$name.txt"
  tail -n 6 "$RESULTS/$name.txt" >> "$SUMMARY"
}

STEP="python bench/step.py --device cuda --preset paper"
run cuda_tests        python -m pytest tests -m cuda -q -p no:cacheprovider
run step_fp32         $STEP --orders 1 2 --steps 20
run step_bf16         $STEP --orders 1 2 --steps 20 --impls fast --precision bf16 --sync-every 10
run step_fp16         $STEP --orders 1 2 --steps 20 --impls fast --precision fp16 --sync-every 10
run step_graphs       $STEP --orders 1 --steps 50 --warmup 10 --impls fast --extra '{"cuda_graphs": true}'
run step_graphs_sync  $STEP --orders 1 --steps 50 --warmup 10 --impls fast --sync-every 10 --extra '{"cuda_graphs": true}'
run step_classroom    $STEP --orders 1 2 --steps 30 --warmup 5 --impls fast --layers 5 --batch-size 128
run variants_memory   python bench/variants_memory.py --device cuda --preset paper --steps 20 --pdarts-layers 5
echo "done $(date -u)" >> "$SUMMARY"
