#!/usr/bin/env bash
# The workbook's GPU checks, one script of at most 8 minutes on one GPU: run it whenever a GPU
# is at hand and quote its output (benchmarks/README.md keeps the dated figures).
#
#   benchmarks/gpu_check.sh [DATA_ROOT]
#
# DATA_ROOT holds the real datasets as coursekit expects them (default: $COURSEKIT_DATA, else
# data/): cifar-10-batches-py/ or cifar10-jpg/, and FashionMNIST/raw/. A missing dataset skips
# its check with a line saying so; nothing falls back to fixtures. It runs with .venv's Python
# when there is one, else python3 (a GPU machine's own torch; coursekit from this checkout).
# DEVICE=cpu runs the same steps on the CPU (to try the script; budgets are not shortened).
#   1. `fit` against a bare loop on the GPU (ratio, LeNet-5 and a small CIFAR-10 net)
#   2. one full FashionMNIST epoch of notebook 05's LeNet-5 (seconds per epoch)
#   3. notebook 04's final net on CIFAR-10 with a 5-minute budget (validation accuracy)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 COURSEKIT_PROGRESS=text
DEVICE=${DEVICE:-cuda}
DATA=${1:-${COURSEKIT_DATA:-data}}
status=0

step() { # step TITLE SECONDS COMMAND...: run COMMAND with a time limit, report a failure
  local title=$1 limit=$2
  shift 2
  echo "== $title"
  timeout "$limit" "$@" || { echo "!! $title: failed or past ${limit} s (exit $?)"; status=1; }
}

echo "== machine: $(date -u +%Y-%m-%dT%H:%MZ), $(hostname), data: $DATA"
"$PY" - "$DEVICE" <<'PYEOF' || exit 4
import sys, torch
device = sys.argv[1]
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {device}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch: nothing to check here (DEVICE=cpu to try the script)")
    print(f"GPU: {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}")
    torch.ones(1, device=device).add_(1)  # a kernel really runs
PYEOF

step "1a. fit overhead, LeNet-5" 60 "$PY" benchmarks/fit_overhead.py --device "$DEVICE" \
  --model lenet --samples 60000 --epochs 1 --repeats 3
step "1b. fit overhead, CIFAR-10 net" 60 "$PY" benchmarks/fit_overhead.py --device "$DEVICE" \
  --model cifar --epochs 1 --repeats 3
if [ -d "$DATA/FashionMNIST/raw" ]; then
  step "2. one full FashionMNIST epoch (notebook 05)" 60 "$PY" benchmarks/fashion_epoch.py \
    --device "$DEVICE" --epochs 3 --data "$DATA"
else
  echo "== 2. skipped: no $DATA/FashionMNIST/raw"
fi
if [ -d "$DATA/cifar-10-batches-py" ] || [ -d "$DATA/cifar10-jpg" ]; then
  step "3. notebook 04 final net, 5-minute budget" 390 "$PY" benchmarks/cifar10_final.py \
    --model final --budget-minutes 5 --device "$DEVICE" --data "$DATA"
else
  echo "== 3. skipped: no CIFAR-10 under $DATA (cifar-10-batches-py/ or cifar10-jpg/)"
fi
exit $status
