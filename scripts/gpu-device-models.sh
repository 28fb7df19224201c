#!/usr/bin/env bash
# Runs on the GPU machine (the device tool), over .devcarry/ from
# scripts/gpu-device-pack.sh: a model endpoint (examples/mlp, weights from
# make_model.py) served on a real GPU slice. The executor's model cache
# uploads the weights once per slice; a second worker after a scale to zero
# reuses them. Prints both jobs (classes must be [0, 1, 2, 3]) and their
# delayTime (the cold start), then /v1/inventory's executors.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu-device-env.sh"
export WASMPOD_ADMIN_KEY=wpk_device_admin_key_0123456789
BASE=http://127.0.0.1:8778
python3 examples/mlp/make_model.py /tmp/models/mlp >/dev/null
"$W" --home /tmp/wpm serve --listen 127.0.0.1:8778 >"$OUT/serve.out" 2>"$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fsS "$BASE/ping" >/dev/null 2>&1 && break; sleep 0.1; done
api() { curl -sS --max-time 120 -H "Authorization: Bearer $WASMPOD_ADMIN_KEY" "$@"; }
DIGEST=$(api -H 'Content-Type: application/wasm' --data-binary @"$D/wasm/example_mlp.wasm" \
  "$BASE/v1/handlers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
api -H 'Content-Type: application/json' -d "{\"id\": \"mlp\", \"handler\": \"$DIGEST\", \"gpus\": [\"H200\", \"H100\"], \"models_dir\": \"/tmp/models\", \"max_workers\": 1, \"idle_timeout_s\": 1}" \
  "$BASE/v1/endpoints" >/dev/null
JOB='{"input": {"inputs": [[1, 1], [-2, 0.5], [-0.5, -3], [4, -1]]}}'
for round in 1 2; do
  api -d "$JOB" "$BASE/v2/mlp/runsync" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("round", sys.argv[1], r["status"], "classes", (r.get("output") or {}).get("classes"), "delayTime", r.get("delayTime"), "ms, worker", r.get("workerId"), r.get("error", ""))' "$round"
  # Wait for the pool to scale back to zero (idle_timeout 1 s).
  for _ in $(seq 100); do
    n=$(api "$BASE/v2/mlp/health" | python3 -c 'import json,sys; w=json.load(sys.stdin)["workers"]; print(w["idle"] + w["running"] + w["initializing"])')
    [ "$n" = 0 ] && break
    sleep 0.1
  done
done
api "$BASE/v1/inventory" | python3 -c 'import json,sys; i=json.load(sys.stdin); print("devices:", [g["name"] for g in i["inventory"]["gpus"]]); print("executors:", json.dumps(i["executors"]))'
