#!/usr/bin/env bash
# Runs on a multi-GPU machine, over .devcarry/ from
# scripts/bench.sh gpu-pack kernels: `wasmpod serve` on the host's real inventory,
# then
#   1. an endpoint with gpus_per_worker = every GPU: its one worker holds them
#      all; a `gpu-bench` group job runs a GEMM on each GPU and moves a
#      tensor from GPU 0 to each other GPU;
#   2. two endpoints with gpus_per_worker = half the GPUs, run at once: they
#      share the host without overlap (their slices' devices are disjoint).
# Prints the jobs' outputs, /v1/inventory and /health; logs go to $OUT.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export WASMPOD_ADMIN_KEY=wpk_device_admin_key_0123456789abcdef
BASE=http://127.0.0.1:8777
N=$(nvidia-smi -L | wc -l)
HALF=$((N / 2))

"$W" --home /tmp/wps gpus | tee "$OUT/gpus.txt"
"$W" --home /tmp/wps serve --listen 127.0.0.1:8777 >"$OUT/serve.out" 2>"$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fsS "$BASE/ping" >/dev/null 2>&1 && break; sleep 0.1; done

api() { curl -sS -H "Authorization: Bearer $WASMPOD_ADMIN_KEY" "$@"; }
DIGEST=$(api -H 'Content-Type: application/wasm' --data-binary @"$D/wasm/example_gpu_bench.wasm" \
  "$BASE/v1/handlers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
endpoint() { # id gpus_per_worker
  api -H 'Content-Type: application/json' -d "{\"id\": \"$1\", \"handler\": \"$DIGEST\", \"gpus\": [\"H200\", \"H100\"], \"gpus_per_worker\": $2, \"max_workers\": 1, \"memory_limit_mib\": 4096, \"execution_timeout_ms\": 300000}" \
    "$BASE/v1/endpoints" | python3 -c 'import json,sys; e=json.load(sys.stdin); print("endpoint", e.get("id"), "gpus_per_worker", e.get("gpus_per_worker"), e.get("error", ""))'
}
summarise() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
o = r.get("output") or {}
print(sys.argv[1], r.get("status"), "worker", r.get("workerId"), "devices", o.get("devices"), r.get("error", ""))
for g in o.get("gemm", []):
    print("  gpu %s gemm %s^3 %s: %.1f TFLOP/s" % (g["device"], g["n"], g["dtype"], g["tflops"]))
for c in o.get("copies", []):
    print("  move gpu %s -> gpu %s: %.0f MiB at %.1f GB/s, intact: %s" % (c["from"], c["to"], c["bytes"] / 2**20, c["gb_per_s"], c["checksum_matches"]))
' "$1"
}
JOB='{"input": {"mode": "group", "n": 8192, "dtype": "bf16", "iters": 20, "copy_mib": 1024}}'

echo "== one endpoint, gpus_per_worker = $N"
endpoint all "$N"
api -d "$JOB" "$BASE/v2/all/runsync" | tee "$OUT/all.json" | summarise all
api "$BASE/v1/inventory" >"$OUT/inventory-all.json"
python3 -c 'import json; print("in use:", json.dumps(json.load(open("'"$OUT"'/inventory-all.json")).get("in_use")))'
api -X DELETE "$BASE/v1/endpoints/all?force=true" >/dev/null

if [ "$HALF" -ge 1 ]; then
  echo "== two endpoints, gpus_per_worker = $HALF each, at once"
  endpoint left "$HALF"
  endpoint right "$HALF"
  api -d "$JOB" "$BASE/v2/left/runsync" >"$OUT/left.json" &
  LEFT=$!
  api -d "$JOB" "$BASE/v2/right/runsync" >"$OUT/right.json" &
  RIGHT=$!
  sleep 1
  api "$BASE/v1/inventory" >"$OUT/inventory-halves.json"
  wait "$LEFT" "$RIGHT" # not a bare `wait`: the server is a background job too
  summarise left <"$OUT/left.json"
  summarise right <"$OUT/right.json"
  python3 -c '
import json
inv = json.load(open("'"$OUT"'/inventory-halves.json"))
used = inv.get("in_use") or []
for u in used:
    print("slice", u.get("slice"), "endpoint", u.get("endpoint"), "devices", u.get("devices"))
devs = [d for u in used for d in (u.get("devices") or [])]
print("overlap:", len(devs) != len(set(devs)))
'
  api "$BASE/v2/left/health" | tee "$OUT/health-left.json"; echo
fi
