#!/usr/bin/env bash
# Runs on the GPU machine, over .devcarry/ from
# `scripts/bench.sh gpu-pack flashboot`: the FlashBoot cold-start benchmark
# through `wasmpod serve` on the GPU (host/benches/serve_coldstart.rs: POST
# /runsync on an endpoint at zero workers, four modes, echo and generated
# 1 GiB / 8 GiB models, the pinned-H2D bound beside them), then the mlp
# model endpoint with FlashBoot on and off (scripts/bench.sh gpu models).
# Outputs go to $OUT.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sort | uniq -c | xargs)" | tee "$OUT/summary.txt"
echo "== paging unit tests on the GPU (pinned page-out, batched page-in)" | tee -a "$OUT/summary.txt"
"$D/bin/tensor_unit" paging 2>&1 | grep -E "^test |test result" | tee -a "$OUT/summary.txt"
GPU_TYPE="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oE 'H200|H100|A100|L40S' || echo any)"
WASMPOD_BIN="$W" WASMPOD_COLDSTART_WASM="$D/wasm" \
  "$D/bin/serve_coldstart" --device cuda --gpus "$GPU_TYPE" --sizes "${SIZES:-1GiB,8GiB}" \
  --repeats "${REPEATS:-5}" --dir /tmp/coldstart 2>"$OUT/serve_coldstart.log" | tee "$OUT/serve_coldstart.txt"
tail -5 "$OUT/serve_coldstart.log"
echo "== mlp endpoint on the GPU, FlashBoot on and off" | tee -a "$OUT/summary.txt"
OUT="$OUT/models" scripts/bench.sh gpu models 2>&1 | tee "$OUT/models.txt"
