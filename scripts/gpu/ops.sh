#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU (H200/H100), over .devcarry/ from
# `scripts/bench.sh gpu-pack ops`: the operator tools against a real GPU
# host. The CLI deploys examples/stream and examples/mlp (its weights
# uploaded into the model store by `deploy --models`) onto GPU slices, runs
# jobs with `invoke`, reads `logs` (the init line of the mlp worker, the
# job lines, the worker's boot), and the server's views: /v1/inventory's
# per-device memory in use from NVML while the mlp worker holds its GPU,
# and P70/P90/P98 of delay, execution and cold-start time. Writes
# everything under $OUT and prints a check table last.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export WASMPOD_API_KEY=wpk_device_admin_key_0123456789abcdef
export WASMPOD_ADMIN_KEY=$WASMPOD_API_KEY
export WASMPOD_URL=http://127.0.0.1:8779
python3 examples/mlp/make_model.py /tmp/ops-models/mlp >/dev/null
"$W" --home /tmp/wpo serve --listen 127.0.0.1:8779 >"$OUT/ops-serve.out" 2>"$OUT/ops-serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fsS "$WASMPOD_URL/ping" >/dev/null 2>&1 && break; sleep 0.1; done
declare -a CHECKS
check() { CHECKS+=("$(printf '%-58s %s' "$1" "$2")"); }
JOB='{"inputs": [[1, 1], [-2, 0.5], [-0.5, -3], [4, -1]]}'

"$W" deploy "$D/wasm/example_stream.wasm" --endpoint stream --gpus H200,H100 \
  --test-input '{"n": 3}' >"$OUT/ops-deploy-stream.txt" 2>&1
check "deploy stream onto a GPU slice" "$([ $? = 0 ] && echo ok || echo FAIL)"
# Before mlp's min_workers=1 takes the machine's one GPU slice for good
# (a slice runs one worker), so stream's job does not wait for it.
"$W" invoke stream --input '{"n": 2}' --json >"$OUT/ops-stream.json" 2>&1
"$W" logs stream --job "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$OUT/ops-stream.json")" >"$OUT/ops-logs-stream.txt" 2>&1
grep -q "chunk 1" "$OUT/ops-logs-stream.txt"
check "logs --job: the stream job's stdout" "$([ $? = 0 ] && echo ok || echo FAIL)"
"$W" deploy "$D/wasm/example_mlp.wasm" --endpoint mlp --gpus H200,H100 --min-workers 1 \
  --models /tmp/ops-models --test-input "$JOB" >"$OUT/ops-deploy-mlp.txt" 2>&1
check "deploy mlp with --models (model store upload)" "$([ $? = 0 ] && echo ok || echo FAIL)"
for i in 1 2 3; do "$W" invoke mlp --input "$JOB" --json >"$OUT/ops-invoke-$i.json" 2>&1; done
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["output"]["classes"] == [0, 1, 2, 3] else 1)' "$OUT/ops-invoke-3.json"
check "invoke mlp: classes [0, 1, 2, 3]" "$([ $? = 0 ] && echo ok || echo FAIL)"
"$W" logs mlp >"$OUT/ops-logs-mlp.txt" 2>&1
grep -q "mlp loaded" "$OUT/ops-logs-mlp.txt"
check "logs: the worker's init line (mlp loaded)" "$([ $? = 0 ] && echo ok || echo FAIL)"
grep -q "worker ready in" "$OUT/ops-logs-mlp.txt"
check "logs: the worker's boot line" "$([ $? = 0 ] && echo ok || echo FAIL)"
"$W" endpoints >"$OUT/ops-endpoints.txt" 2>&1
curl -sS -H "Authorization: Bearer $WASMPOD_API_KEY" "$WASMPOD_URL/v1/inventory" >"$OUT/ops-inventory.json"
python3 - "$OUT/ops-inventory.json" >"$OUT/ops-memory.txt" <<'PY'
import json, sys
inv = json.load(open(sys.argv[1]))
held = {d for u in inv["in_use"] for d in u["devices"]}
for m in inv["memory"]:
    print(f'{m["device"]:<12} used {m["used_bytes"] / 2**20:10.0f} MiB of {m["total_bytes"] / 2**20:8.0f} MiB{"  (held)" if m["device"] in held else ""}')
ok = any(m["device"] in held and m["used_bytes"] > 0 for m in inv["memory"])
sys.exit(0 if ok else 1)
PY
check "inventory: NVML memory in use on the held GPU" "$([ $? = 0 ] && echo ok || echo FAIL)"
curl -sS -H "Authorization: Bearer $WASMPOD_API_KEY" "$WASMPOD_URL/v1/endpoints/mlp/metrics?window=5m" >"$OUT/ops-metrics.json"
python3 - "$OUT/ops-metrics.json" >"$OUT/ops-percentiles.txt" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for k in ("delay_ms", "execution_ms", "cold_start_ms"):
    p = m[k]
    print(f'{k:<14} n={p["count"]:<3} p70={p["p70"]} p90={p["p90"]} p98={p["p98"]}')
print("cold starts", m["cold_starts"])
sys.exit(0 if m["execution_ms"]["count"] >= 4 and m["cold_starts"] >= 1 else 1)
PY
check "metrics: P70/P90/P98 and cold starts of mlp" "$([ $? = 0 ] && echo ok || echo FAIL)"
curl -sS -H "Authorization: Bearer $WASMPOD_API_KEY" "$WASMPOD_URL/metrics" | grep -E '^wasmpod_cold_start' >"$OUT/ops-prometheus.txt"
grep -q 'wasmpod_cold_starts_total{endpoint="mlp"' "$OUT/ops-prometheus.txt"
check "/metrics: cold-start histogram and counter" "$([ $? = 0 ] && echo ok || echo FAIL)"

echo "== per-device memory (NVML)"; cat "$OUT/ops-memory.txt"
echo "== mlp percentiles (ms)"; cat "$OUT/ops-percentiles.txt"
echo "== checks"; printf '%s\n' "${CHECKS[@]}" | tee "$OUT/ops-checks.txt"
