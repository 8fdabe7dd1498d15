#!/usr/bin/env bash
# The GPU checks (make gpu_check; about 5 minutes on one H100): trainer=gpu trainings of the
# default and the tuned GRU, the benchmark on the GPU (written to reports/bench_gpu.md, not over
# the CPU report), and trainer=ddp on the devices present. Needs GESTURES_DATA and a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-outputs/gpu_check}"
: "${GESTURES_DATA:?set GESTURES_DATA to gestures-dataset.zip}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device visible to torch')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), 'x', torch.cuda.device_count())"
mkdir -p "$OUT"
timed() { local name=$1; shift; local start=$SECONDS; "$@" > "$OUT/$name.log" 2>&1; echo "$name: $((SECONDS - start)) s"; }
timed default_gru "$PY" train.py trainer=gpu logger=none console=quiet hydra.run.dir="$OUT/default"
timed tuned_gru "$PY" train.py trainer=gpu experiment=study_tuned logger=none console=quiet hydra.run.dir="$OUT/tuned"
timed ddp "$PY" train.py trainer=ddp trainer.max_epochs=3 logger=none console=quiet hydra.run.dir="$OUT/ddp"
timed bench "$PY" -m bench.benchmark --accelerator gpu --reps 2 --out reports/bench_gpu.md
grep -h "test accuracy" "$OUT"/*.log || true
