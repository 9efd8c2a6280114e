#!/usr/bin/env bash
# Every GPU measurement of the project in one run, for a device machine with its own torch
# (CUDA build, no dvclive, no install): from the repository root,
#     OUT=/tmp/gpu bash benchmarks/gpu_measurements.sh
# Each part has its own time limit and writes its figures to $OUT as it goes.
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_measurements}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
# issue 10: the training step, paper profile, side by side (batch 8 and a large batch)
timeout "${TRAIN_LIMIT:-230}" python3 benchmarks/train_throughput.py --profile paper --device cuda \
    --batch-size 8 --large-batch "${LARGE_BATCH:-128}" --steps 8 --warmup 3 \
    --json "$OUT/train.jsonl" 2>&1 | tee "$OUT/train.txt"
# issue 10 / 12: inference of the paper profile at 2048 px, compiled
timeout "${INFER_LIMIT:-60}" python3 benchmarks/inference.py --device cuda --sizes 2048 \
    --batch 1 --compile --min-time 1 --max-reps 10 --json "$OUT/inference.json" 2>&1 \
    | tee "$OUT/inference.txt"
