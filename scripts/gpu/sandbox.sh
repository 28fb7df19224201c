#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU, over .devcarry/ from
# `scripts/bench.sh gpu-pack sandbox`: the executor sandbox (Landlock,
# no_new_privs; host/src/executor/sandbox.rs) on a real GPU slice.
#   1. `wasmpod serve` with the sandbox on (the default): a gpu-bench GEMM
#      (CUDA context, cuBLAS, NVRTC kernels inside the sandbox) and the mlp
#      model endpoint with FlashBoot (weights from a models_dir outside the
#      home; parked to pinned host RAM at zero, paged back: vram-restored);
#   2. the GPU executor's own command line re-run with probes: it must not
#      read the database, the key secret or the host's /proc/<pid>/environ,
#      nor write into the handlers, nor open TCP; it must read its handler
#      and write its cache;
#   3. the same GEMM with --no-executor-sandbox, for comparison.
# Logs and JSON go to $OUT; a table is printed last.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export WASMPOD_ADMIN_KEY=wpk_device_admin_key_0123456789abcdef
RESULTS="$OUT/results.txt"
: >"$RESULTS"
row() { printf '%-52s %s\n' "$1" "$2" | tee -a "$RESULTS"; }
GPU_TYPE="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oE 'H200|H100|A100|L40S' || echo any)"
python3 examples/mlp/make_model.py /tmp/sbx-models/mlp >/dev/null
GEMM='{"input": {"mode": "gemm", "n": 8192, "dtype": "bf16", "iters": 20}}'
MLP='{"input": {"inputs": [[1, 1], [-2, 0.5], [-0.5, -3], [4, -1]]}}'

start() { # home port [flags...]
  local home="$1" port="$2"
  shift 2
  rm -rf "$home"
  "$W" --home "$home" serve --listen "127.0.0.1:$port" "$@" >"$OUT/serve-$port.out" 2>"$OUT/serve-$port.log" &
  SERVER=$!
  BASE="http://127.0.0.1:$port"
  for _ in $(seq 200); do curl -fsS "$BASE/ping" >/dev/null 2>&1 && break; sleep 0.1; done
}
api() { curl -sS --max-time 300 -H "Authorization: Bearer $WASMPOD_ADMIN_KEY" "$@"; }
upload() { api -H 'Content-Type: application/wasm' --data-binary @"$D/wasm/$1" "$BASE/v1/handlers" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])'; }
endpoint() { # id digest extra-json
  api -H 'Content-Type: application/json' \
    -d "{\"id\": \"$1\", \"handler\": \"$2\", \"gpus\": [\"$GPU_TYPE\"], \"max_workers\": 1, \"memory_limit_mib\": 4096, \"execution_timeout_ms\": 300000 $3}" \
    "$BASE/v1/endpoints" >"$OUT/endpoint-$1.json"
}
tflops() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); g=(r.get("output") or {}).get("gemm") or [{}]; print(r.get("status"), "%.0f TFLOP/s" % g[0].get("tflops", 0) if g[0] else r.get("error"))' "$1"; }

echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sort | uniq -c | xargs), kernel $(uname -r)"
"$W" --home /tmp/sbx-gpus gpus | tee "$OUT/gpus.txt"

# 1. Sandbox on.
start /tmp/sbx-home 8791
SANDBOX_SERVER=$SERVER
landlock="$(grep -oE 'sandboxed with Landlock \(kernel ABI [0-9]+\)|does not offer Landlock' "$OUT/serve-8791.log" | head -1)"
row "host: executor sandbox" "${landlock:-no log line (see serve-8791.log)}"
GEMM_DIGEST=$(upload example_gpu_bench.wasm)
endpoint gemm "$GEMM_DIGEST" ""
api -d "$GEMM" "$BASE/v2/gemm/runsync" >"$OUT/gemm-sandboxed.json"
row "gpu-bench GEMM 8192^3 bf16, sandboxed" "$(tflops "$OUT/gemm-sandboxed.json")"

MLP_DIGEST=$(upload example_mlp.wasm)
endpoint mlp "$MLP_DIGEST" ", \"models_dir\": \"/tmp/sbx-models\", \"idle_timeout_s\": 0"
for round in 1 2 3; do
  api -d "$MLP" "$BASE/v2/mlp/runsync" >"$OUT/mlp-$round.json"
  for _ in $(seq 300); do # back to zero workers (parked)
    api "$BASE/v2/mlp/health" >"$OUT/mlp-health-$round.json"
    python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["workers"]; sys.exit(0 if w["warm"] + w["initializing"] == 0 else 1)' "$OUT/mlp-health-$round.json" && break
    sleep 0.05
  done
  row "mlp FlashBoot round $round, sandboxed" "$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); h = json.load(open(sys.argv[2]))
o = r.get("output") or {}
print(r.get("status"), "classes", o.get("classes"), "boot", (h.get("lastBoot") or {}).get("boot"), r.get("error", ""))' "$OUT/mlp-$round.json" "$OUT/mlp-health-$round.json")"
done

# 2. What the GPU executor can reach: its command line, with probes.
api "$BASE/v1/inventory" >"$OUT/inventory.json"
EPID=$(python3 -c 'import json,sys; e=[x for x in json.load(open(sys.argv[1]))["executors"] if x["alive"] and not x["slice"].startswith("cpu")]; print(e[0]["pid"] if e else "")' "$OUT/inventory.json")
if [ -n "$EPID" ]; then
  row "GPU executor no_new_privs" "$(grep NoNewPrivs /proc/$EPID/status | xargs)"
  mapfile -d '' ARGS </proc/$EPID/cmdline
  VISIBLE="$(tr '\0' '\n' </proc/$EPID/environ | sed -n 's/^CUDA_VISIBLE_DEVICES=//p')"
  CUDA_VISIBLE_DEVICES="$VISIBLE" "${ARGS[@]}" \
    --probe-read /tmp/sbx-home/wasmpod.db --probe-read /tmp/sbx-home/key.secret \
    --probe-read "/proc/$SANDBOX_SERVER/environ" --probe-read "/tmp/sbx-home/handlers/$GEMM_DIGEST.wasm" \
    --probe-read /tmp/sbx-models/mlp/model.safetensors \
    --probe-write /tmp/sbx-home/handlers/planted.wasm --probe-write /tmp/sbx-home/cache/probe \
    --probe-connect 127.0.0.1:8791 >"$OUT/probes.jsonl" 2>"$OUT/probes.log"
  python3 - "$OUT/probes.jsonl" <<'EOF' | tee -a "$RESULTS"
import json, sys
want = {"wasmpod.db": False, "key.secret": False, "environ": False, ".wasm": True,
        "model.safetensors": True, "planted": False, "cache/probe": True, "127.0.0.1": False}
for line in open(sys.argv[1]):
    p = json.loads(line)
    expect = next(v for k, v in want.items() if k in p["target"] and not (k == ".wasm" and "planted" in p["target"]))
    verdict = "ok" if p["ok"] == expect else "WRONG"
    got = "allowed" if p["ok"] else "denied (%s)" % (p["error"] or "")[:40]
    print("%-52s %s" % ("probe %s %s" % (p["probe"], p["target"][-36:]), "%s: %s" % (verdict, got)))
EOF
else
  row "GPU executor probes" "no live GPU executor found (see inventory.json)"
fi
kill $SANDBOX_SERVER 2>/dev/null; wait $SANDBOX_SERVER 2>/dev/null

# 3. Sandbox off, same GEMM.
start /tmp/sbx-home-off 8792 --no-executor-sandbox
GEMM_DIGEST=$(upload example_gpu_bench.wasm)
endpoint gemm "$GEMM_DIGEST" ""
api -d "$GEMM" "$BASE/v2/gemm/runsync" >"$OUT/gemm-unsandboxed.json"
row "gpu-bench GEMM 8192^3 bf16, --no-executor-sandbox" "$(tflops "$OUT/gemm-unsandboxed.json")"
kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null

echo
echo "== results"
cat "$RESULTS"
