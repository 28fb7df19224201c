#!/usr/bin/env bash
# Runs on the GPU machine, over binaries built here and
# carried in .devcarry/ by scripts/bench.sh gpu-pack kernels:
#
#   scripts/bench.sh gpu kernels kernels  # inventory, CUDA conformance, GEMM and
#                                      # bandwidth vs cuBLAS and PyTorch, guest GEMM
#   scripts/bench.sh gpu kernels embeddings  # all-MiniLM-L6-v2 on the GPU: reference
#                                      # match, throughput vs sentence-transformers
#   scripts/bench.sh gpu kernels group    # every GPU of the host as one worker:
#                                      # per-GPU guest GEMM, GPU-to-GPU moves
#
# Logs go to $OUT (what comes back from the machine); the summary is printed
# last.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
MODE="${1:-kernels}"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

note "== $(date -u +%FT%TZ) mode $MODE on $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs)"
"$W" --home /tmp/wp gpus 2>&1 | tee "$OUT/gpus.txt"

guest_gemm() { # n dtype iters [mode]
  "$W" --home /tmp/wp run "$D/wasm/example_gpu_bench.wasm" --device cuda --memory 3GiB \
    --input "{\"mode\":\"${4:-gemm}\",\"n\":$1,\"dtype\":\"$2\",\"iters\":$3,\"copy_mib\":1024}" 2>>"$OUT/guest-gemm.log"
}

if [ "$MODE" = kernels ]; then
  note "== CUDA conformance (every op, every dtype, GPU vs CPU reference)"
  "$D/bin/cuda_conformance" --test-threads=4 >"$OUT/cuda_conformance.txt" 2>&1
  grep -E "test result|FAILED|panicked" "$OUT/cuda_conformance.txt" | tee -a "$SUMMARY"
  "$D/bin/conformance" --test-threads=4 >"$OUT/conformance.txt" 2>&1
  grep -E "test result|FAILED|panicked" "$OUT/conformance.txt" | tee -a "$SUMMARY"

  note "== GEMM and bandwidth: Device API vs cuBLAS vs PyTorch"
  python3 host/tensor/examples/gpu_bench_torch.py >"$OUT/torch.json" 2>"$OUT/torch.err"
  "$D/bin/gpu_bench" --torch "$OUT/torch.json" 2>&1 | tee "$OUT/gpu_bench.txt" | tee -a "$SUMMARY"

fi
if [ "$MODE" = kernels ] || [ "$MODE" = embeddings ]; then
  note "== GEMM from a guest through the WIT API (TFLOP/s, guest monotonic clock)"
  for spec in "4096 bf16 100" "4096 f32 20" "8192 bf16 50" "8192 f32 10"; do
    set -- $spec
    guest_gemm "$1" "$2" "$3" | python3 -c 'import json,sys; g=json.load(sys.stdin)["gemm"][0]; print("guest gemm %s^3 %s: %.1f TFLOP/s on %s" % (g["n"], g["dtype"], g["tflops"], g["device_name"]))' | tee -a "$SUMMARY"
  done
  "$W" --home /tmp/wp run "$D/wasm/example_gpu_bench.wasm" --device cuda --memory 3GiB \
    --input '{"mode":"upload","n":8192}' 2>>"$OUT/guest-gemm.log" | python3 -c 'import json,sys; u=json.load(sys.stdin)["upload"]; print("guest upload (from-bytes) %.0f MiB: %.1f GB/s" % (u["bytes"] / 2**20, u["gb_per_s"]))' | tee -a "$SUMMARY"
fi
if [ "$MODE" = embeddings ]; then
  # all-MiniLM-L6-v2 travels in two halves (the carry limit is 64 MiB).
  M=/tmp/models/all-MiniLM-L6-v2
  mkdir -p "$M"
  cp -r "$D"/model-a/files/. "$M"/
  cat "$D"/model-a/model.safetensors.part* "$D"/model-b/model.safetensors.part* >"$M/model.safetensors"
  sha256sum "$M/model.safetensors" | tee -a "$SUMMARY"
  note "== embeddings on the GPU: reference match, then throughput vs PyTorch"
  INPUT="$(python3 tests/fixtures/minilm/compare.py --print-input)"
  "$W" --home /tmp/wp run "$D/wasm/example_embeddings.wasm" --device cuda --models /tmp/models \
    --input "$INPUT" --timings >"$OUT/embeddings.json" 2>"$OUT/embeddings.err"
  python3 tests/fixtures/minilm/compare.py "$OUT/embeddings.json" --tolerance 1e-4 2>&1 | tee -a "$SUMMARY"
  python3 host/benches/embeddings_torch.py "$M" --check "$OUT/embeddings.json" 2>"$OUT/embeddings_torch.err" | tee -a "$SUMMARY"
  for batch in 1 64; do
    reps=$([ $batch = 1 ] && echo 50 || echo 20)
    IN="$(python3 -c "import json; s=[x['text'] for x in json.load(open('tests/fixtures/minilm/reference.json'))['sentences']]; print(json.dumps({'sentences': (s*10)[:$batch]}))")"
    "$W" --home /tmp/wp run "$D/wasm/example_embeddings.wasm" --device cuda --models /tmp/models \
      --input "$IN" --repeat $reps --timings >/dev/null 2>"$OUT/emb-b$batch.err"
    med=$(grep -o 'median [0-9.]*[mµn]*s' "$OUT/emb-b$batch.err" | head -1)
    python3 - "$batch" "$med" <<'EOF' | tee -a "$SUMMARY"
import sys
batch, med = int(sys.argv[1]), sys.argv[2].split()[1]
unit = {"ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9, "s": 1.0}
for u in ("ms", "µs", "us", "ns", "s"):
    if med.endswith(u):
        secs = float(med[: -len(u)]) * unit[u]
        break
print(f"wasmpod guest batch {batch}: {batch / secs:.1f} sentences/s (median {secs * 1e3:.2f} ms per batch)")
EOF
  done
  note "== a CPU job on the same host for comparison"
  "$W" --home /tmp/wp run "$D/wasm/example_echo.wasm" --device cuda --input '{"hello":"gpu"}' --timings 2>&1 | tail -3 | tee -a "$SUMMARY"
elif [ "$MODE" = group ]; then
  note "== one worker holding every GPU: per-GPU GEMM and GPU-to-GPU moves from a guest"
  for dt in bf16 f32; do
    guest_gemm 8192 "$dt" $([ $dt = bf16 ] && echo 30 || echo 6) group | tee "$OUT/group-$dt.json" | python3 -c '
import json, sys
o = json.load(sys.stdin)
print("devices:", o["devices"])
for g in o["gemm"]:
    print("gpu %s gemm %s^3 %s: %.1f TFLOP/s" % (g["device"], g["n"], g["dtype"], g["tflops"]))
for c in o["copies"]:
    print("move gpu %s -> gpu %s: %.0f MiB at %.1f GB/s, data intact: %s" % (c["from"], c["to"], c["bytes"] / 2**20, c["gb_per_s"], c["checksum_matches"]))
' | tee -a "$SUMMARY"
  done
fi
note "== done"
cat "$SUMMARY" >/dev/null
