#!/usr/bin/env bash
# Every GPU measurement of the project in one run (at most ~8 minutes), for a lent GPU machine
# with its own Python (torch + CUDA, numpy, pandas, scikit-image, pyyaml; no dvc, dvclive,
# imgviz, no network). From the repository root, with the data made here first and carried:
#
#     .venv/bin/regionharmony make-mini --out data/gpu_check --train-per-subset 8 --test-per-subset 4
#     RESULTS=$OUT bash benchmarks/gpu_check.sh            # on the GPU machine
#     bash benchmarks/gpu_check.sh --cpu-rehearsal         # here: the same steps, shrunk, ~2 min
#
# Writes to $RESULTS (default benchmarks/results/gpu, or .../cpu-rehearsal): env.json (GPU, torch, CUDA), smoke.json (the
# paper_smoke training, compile + bf16 + workers, killed at its first checkpoint and resumed),
# train_throughput.jsonl/.txt (benchmarks/train_throughput.py at batch 8 and a large batch),
# harmonize.jsonl (harmonize of a random paper-profile model at 1024, 2048, 4096 px).
# Each part has its own time limit; a part that fails is reported and the others still run.
set -u
cd "$(dirname "$0")/.."
REHEARSAL=0
[ "${1:-}" = "--cpu-rehearsal" ] && REHEARSAL=1
PY=${PYTHON:-python3}
KIND=gpu
[ "$REHEARSAL" -eq 1 ] && KIND=cpu-rehearsal
RESULTS=${RESULTS:-benchmarks/results/$KIND}
DATA=${DATA:-data/gpu_check}
export PYTHONPATH=src PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
failed=0
part() {  # part NAME LIMIT_S COMMAND...: run with a time limit, note a failure
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s)"
  local start=$(date +%s)
  timeout "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc in $(( $(date +%s) - start )) s"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

if [ ! -f "$DATA/IHD_train.txt" ]; then
  if [ "$REHEARSAL" -eq 1 ] && [ -x .venv/bin/regionharmony ]; then
    .venv/bin/regionharmony make-mini --out "$DATA" --train-per-subset 8 --test-per-subset 4 \
      --no-progress
  else
    echo "no dataset at $DATA: make it where the package is installed and carry it (see above)"
    exit 2
  fi
fi

part env 60 "$PY" benchmarks/gpu_check.py env --out "$RESULTS/env.json"
if [ "$REHEARSAL" -eq 1 ]; then
  part smoke 300 "$PY" benchmarks/gpu_check.py smoke --cpu --data-root "$DATA" \
    --steps 8 --checkpoint-every 2 --out "$RESULTS/smoke.json"
  part train_throughput 120 "$PY" benchmarks/train_throughput.py --profile mini --device cpu \
    --batch-size 8 --steps 2 --warmup 1 --no-compile --json "$RESULTS/train_throughput.jsonl" \
    > "$RESULTS/train_throughput.txt"
  SIZES="256 512" PROFILE=mini DEVICE=cpu
else
  part smoke 200 "$PY" benchmarks/gpu_check.py smoke --data-root "$DATA" \
    --steps 40 --checkpoint-every 10 --out "$RESULTS/smoke.json"
  part train_throughput 200 "$PY" benchmarks/train_throughput.py --profile paper --device cuda \
    --batch-size 8 --large-batch "${LARGE_BATCH:-64}" --steps 8 --warmup 3 \
    --json "$RESULTS/train_throughput.jsonl" > "$RESULTS/train_throughput.txt"
  SIZES="1024 2048 4096" PROFILE=paper DEVICE=cuda
fi
cat "$RESULTS/train_throughput.txt" 2>/dev/null
rm -f "$RESULTS/harmonize.jsonl"
for size in $SIZES; do
  part "harmonize $size px" 60 "$PY" benchmarks/harmonize_large.py --random-profile "$PROFILE" \
    --width "$size" --height "$size" --device "$DEVICE" >> "$RESULTS/harmonize.jsonl"
done
cat "$RESULTS/harmonize.jsonl"
echo "== $failed part(s) failed; results in $RESULTS"
[ "$failed" -eq 0 ]
