#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU (an H200 for the numbers in
# BENCHMARKS.md), over .devcarry/ from `scripts/gpu-device-pack.sh llm`
# (the release wasmpod binary and the llm component; torch, transformers,
# safetensors, numpy and tokenizers installed there, no network):
#
#   1. tests/fixtures/llm/check_transformers.py: the tiny CI models against
#      transformers on the GPU, greedy 64 steps in f32 (identical tokens)
#      and the bf16 logprob difference;
#   2. host/benches/llm_decode.py: the Llama-3.2-1B-shaped decode
#      benchmark (wasmpod run, the OpenAI route with streaming, 4 and 16
#      concurrent streams, FlashBoot restore, transformers and a CUDA-graph
#      plain-PyTorch loop, the bandwidth bound), its table printed last.
#
# Everything goes to $OUT; about 6-8 minutes.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu-device-env.sh"
WASM="$D/wasm/example_llm.wasm"
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sort | uniq -c | xargs)" | tee "$OUT/summary.txt"
echo "== transformers vs examples/llm on the GPU (tiny models, f32 and bf16)" | tee -a "$OUT/summary.txt"
timeout 240 python3 tests/fixtures/llm/check_transformers.py --wasmpod "$W" --wasm "$WASM" --out /tmp/llm-check \
  2>"$OUT/check_transformers.log" | tee -a "$OUT/summary.txt"
cp /tmp/llm-check/check_transformers.json "$OUT/" 2>/dev/null
tail -3 "$OUT/check_transformers.log"
echo "== decode benchmark (Llama-3.2-1B shape, random bf16)" | tee -a "$OUT/summary.txt"
timeout 500 python3 host/benches/llm_decode.py --wasmpod "$W" --wasm "$WASM" --out "$OUT/bench" \
  2>"$OUT/llm_decode.log" | tee "$OUT/llm_decode.txt"
tail -5 "$OUT/llm_decode.log"
cat "$OUT/llm_decode.txt" >>"$OUT/summary.txt"
