#!/usr/bin/env bash
# Runs on the GPU machine, over .devcarry/ from
# scripts/bench.sh gpu-pack kernels: a model endpoint (examples/mlp, weights from
# make_model.py) served on a real GPU slice, FlashBoot on ("mlp") and off
# ("plain"). With it on, the first start snapshots after init, the worker is
# parked at scale to zero (its tensors and the weights paged to pinned host
# RAM) and the next starts page it back (lastBoot vram-restored). With it
# off, the executor's model cache still uploads the weights once per slice.
# Prints each job (classes must be [0, 1, 2, 3] and the probabilities equal
# across rounds), its delayTime and how its worker started, then
# /v1/inventory's executors.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export WASMPOD_ADMIN_KEY=wpk_device_admin_key_0123456789abcdef
BASE=http://127.0.0.1:8778
python3 examples/mlp/make_model.py /tmp/models/mlp >/dev/null
"$W" --home /tmp/wpm serve --listen 127.0.0.1:8778 >"$OUT/serve.out" 2>"$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fsS "$BASE/ping" >/dev/null 2>&1 && break; sleep 0.1; done
api() { curl -sS --max-time 120 -H "Authorization: Bearer $WASMPOD_ADMIN_KEY" "$@"; }
DIGEST=$(api -H 'Content-Type: application/wasm' --data-binary @"$D/wasm/example_mlp.wasm" \
  "$BASE/v1/handlers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
for ep in mlp:true plain:false; do
  api -H 'Content-Type: application/json' -d "{\"id\": \"${ep%%:*}\", \"handler\": \"$DIGEST\", \"gpus\": [\"H200\", \"H100\"], \"models_dir\": \"/tmp/models\", \"max_workers\": 1, \"idle_timeout_s\": 0, \"flashboot\": ${ep##*:}}" \
    "$BASE/v1/endpoints" >/dev/null
done
JOB='{"input": {"inputs": [[1, 1], [-2, 0.5], [-0.5, -3], [4, -1]]}}'
for ep in mlp mlp mlp plain plain; do
  api -d "$JOB" "$BASE/v2/$ep/runsync" >/tmp/job.json
  # Wait for the pool to scale back to zero (idle_timeout 0 s).
  for _ in $(seq 200); do
    api "$BASE/v2/$ep/health" >/tmp/health.json
    n=$(python3 -c 'import json,sys; w=json.load(open("/tmp/health.json"))["workers"]; print(w["warm"] + w["initializing"])')
    [ "$n" = 0 ] && break
    sleep 0.05
  done
  python3 -c 'import json,sys; r=json.load(open("/tmp/job.json")); h=json.load(open("/tmp/health.json")); o=r.get("output") or {}; print(sys.argv[1], r["status"], "classes", o.get("classes"), "probs[0]", (o.get("probs") or [None])[0], "delayTime", r.get("delayTime"), "ms; boot", h.get("lastBoot"), "workers", h["workers"], r.get("error", ""))' "$ep"
done
api "$BASE/v1/inventory" | python3 -c 'import json,sys; i=json.load(sys.stdin); print("devices:", [g["name"] for g in i["inventory"]["gpus"]]); print("executors:", json.dumps(i["executors"]))'
