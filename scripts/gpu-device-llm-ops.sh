#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU (an H200 for the numbers in
# BENCHMARKS.md), over .devcarry/ from `scripts/gpu-device-pack.sh llm-ops`:
#
#   1. CUDA conformance of the decoder ops and recorded graphs
#      (tests/cuda_decoder.rs), of every base op (tests/cuda_conformance.rs)
#      and the backend-generic suite (tests/conformance.rs), GPU against the
#      CPU reference; each failing case is listed with its reason.
#   2. The decode-step microbenchmark of a Llama-3.2-1B shape
#      (host/tensor/examples/decode_bench.rs): eager and recorded-graph
#      steps, per-op GPU times, GEMV vs cuBLAS, the D2D bound, beside the
#      same step in PyTorch with a static cache and a CUDA graph
#      (decode_bench_torch.py).
#      Then the same step from a guest through the WIT (the gpu-bench
#      component's decode mode), eager and replayed.
#   3. all-MiniLM-L6-v2 in the guest: the reference match on the GPU, then
#      batch 64 through `wasmpod run --repeat` (tokenizing included) against
#      PyTorch's forward pass on pre-tokenized input
#      (host/benches/embeddings_torch.py), same run.
#
# Needs python3 with torch and sentence-transformers there (no network).
# Everything goes to $OUT; the summary table is printed last.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu-device-env.sh"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
step() { echo "-- $*" >&2; }

note "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sort | uniq -c | xargs)"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tee -a "$SUMMARY"

step "1. conformance"
note "== CUDA conformance (GPU vs the CPU reference)"
for t in cuda_decoder cuda_conformance conformance; do
  timeout 240 "$D/bin/$t" --test-threads=1 --nocapture >"$OUT/$t.txt" 2>&1
  echo "exit $?" >>"$OUT/$t.txt"
  grep -E "^FAIL |conformance: |test result|panicked|^seed|^exit [^0]" "$OUT/$t.txt" | sed "s/^/$t: /" | tee -a "$SUMMARY"
done
# A kernel that faults the CUDA context fails every case after it: then
# run each family of decoder cases in a process of its own.
if grep -q "device fault" "$OUT/cuda_decoder.txt"; then
  note "== device fault in cuda_decoder: each family alone"
  for family in linear silu rope "attention " attention-cached write sample graph; do
    WASMPOD_CASES="$family" timeout 90 "$D/bin/cuda_decoder" every_decoder_op --nocapture \
      >"$OUT/cuda_decoder-${family// /}.txt" 2>&1
    grep -E "^FAIL |conformance: " "$OUT/cuda_decoder-${family// /}.txt" | head -8 | sed "s/^/[$family] /" | tee -a "$SUMMARY"
  done
fi

step "2. decode step"
note "== decode step, Llama-3.2-1B shape, bf16 (host/tensor/examples/decode_bench.rs)"
timeout 240 python3 host/tensor/examples/decode_bench_torch.py >"$OUT/torch_decode.json" 2>"$OUT/torch_decode.err"
echo "torch peer exit $?: $(tail -c 600 "$OUT/torch_decode.json")" >>"$OUT/torch_decode.err"
tail -3 "$OUT/torch_decode.err" | tee -a "$SUMMARY"
timeout 300 "$D/bin/decode_bench" --torch "$OUT/torch_decode.json" --json "$OUT/decode_bench.json" \
  >"$OUT/decode_bench.txt" 2>&1
echo "exit $?" >>"$OUT/decode_bench.txt"
tee -a "$SUMMARY" <"$OUT/decode_bench.txt"

step "2b. decode step through the WIT"
note "== the same step from a guest through the WIT (gpu-bench decode mode, 64 greedy steps)"
timeout 300 "$W" --home /tmp/wp run "$D/wasm/example_gpu_bench.wasm" --device cuda --memory 3GiB \
  --input '{"mode":"decode","dtype":"bf16","iters":64}' >"$OUT/guest_decode.json" 2>"$OUT/guest_decode.err"
echo "exit $?" >>"$OUT/guest_decode.err"
python3 - "$OUT/guest_decode.json" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, sys
try:
    d = json.load(open(sys.argv[1]))["decode"]
except Exception as e:
    print(f"guest decode: no result ({e}); see guest_decode.err")
    sys.exit()
print(f"guest eager step {d['eager_ms_per_step']:.3f} ms ({d['ops_per_step']} host calls), "
      f"guest graph step {d['graph_ms_per_step']:.3f} ms ({1e3 / d['graph_ms_per_step']:.0f} tokens/s), "
      f"replay == eager: {d['replay_matches_eager']}")
EOF
tail -2 "$OUT/guest_decode.err" | tee -a "$SUMMARY"

step "3. embeddings"
note "== embeddings (all-MiniLM-L6-v2 in the guest) vs PyTorch"
M=/tmp/models/all-MiniLM-L6-v2
mkdir -p "$M"
cp -r "$D"/model-a/files/. "$M"/
cat "$D"/model-a/model.safetensors.part* "$D"/model-b/model.safetensors.part* >"$M/model.safetensors"
INPUT="$(python3 tests/fixtures/minilm/compare.py --print-input)"
timeout 120 "$W" --home /tmp/wp run "$D/wasm/example_embeddings.wasm" --device cuda --models /tmp/models \
  --input "$INPUT" --timings >"$OUT/embeddings.json" 2>"$OUT/embeddings.err"
python3 tests/fixtures/minilm/compare.py "$OUT/embeddings.json" --tolerance 1e-4 2>&1 | tee -a "$SUMMARY"
timeout 180 python3 host/benches/embeddings_torch.py "$M" --check "$OUT/embeddings.json" \
  2>"$OUT/embeddings_torch.err" | tee "$OUT/embeddings_torch.txt" | tee -a "$SUMMARY"
for batch in 1 64; do
  reps=$([ $batch = 1 ] && echo 50 || echo 30)
  IN="$(python3 -c "import json; s=[x['text'] for x in json.load(open('tests/fixtures/minilm/reference.json'))['sentences']]; print(json.dumps({'sentences': (s*10)[:$batch]}))")"
  timeout 120 "$W" --home /tmp/wp run "$D/wasm/example_embeddings.wasm" --device cuda --models /tmp/models \
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
print(f"wasmpod guest batch {batch}: {batch / secs:.1f} sentences/s (median {secs * 1e3:.2f} ms per batch, tokenizing included)")
EOF
done
python3 - "$SUMMARY" <<'EOF' | tee -a "$SUMMARY"
import re, sys
text = open(sys.argv[1]).read()
def ms(pattern):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else float("nan")
guest, torch = ms(r"wasmpod guest batch 64: .*?median ([0-9.]+) ms"), ms(r"torch forward batch 64: .*?, ([0-9.]+) ms per batch")
print(f"embeddings batch 64: guest {guest:.2f} ms vs PyTorch forward {torch:.2f} ms -> {torch / guest:.2f}x")
EOF

note "== summary"
python3 - "$OUT/decode_bench.json" <<'EOF' | tee -a "$SUMMARY"
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"decode bench: no results ({e})")
    sys.exit()
def g(k):
    return r.get(k, float("nan"))
print(f"{'measure':<44}{'value':>12}")
for label, key, unit in [
    ("D2D copy", "d2d_gb_per_s", "GB/s"),
    ("HBM bound per token", "bound_ms", "ms"),
    ("wasmpod eager step", "eager_ms", "ms"),
    ("wasmpod graph step", "graph_ms", "ms"),
    ("PyTorch CUDA-graph step", "torch_graph_ms", "ms"),
    ("graph tokens/s vs PyTorch", "graph_vs_torch", "x"),
    ("host cost of an eager op", "eager_op_host_us", "us"),
    ("first step (kernel compile included)", "first_step_ms", "ms"),
]:
    print(f"{label:<44}{g(key):>10.3f} {unit}")
print(f"{'graph step / bound':<44}{g('bound_ms') / g('graph_ms') * 100:>10.1f} %")
print(f"graph equals eager bit for bit: {r.get('graph_equals_eager')}")
EOF
grep -E "^(cuda_decoder|cuda_conformance|conformance): (test result|exit)|embeddings batch 64:" "$SUMMARY"
