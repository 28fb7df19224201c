#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU (H200/H100), over .devcarry/ from
# `scripts/bench.sh gpu-pack lb`: a load-balancing endpoint (the Rust
# http-hello handler, world http-handler) placed on a GPU slice serves
# /lb/... requests with its host tensors on CUDA: /devices names the GPU,
# /matmul multiplies on it (checked against a float64 reference), bodies
# stream both ways, a panic is contained; then p50/p99 of /lb/gpu/matmul and of the
# same handler on a CPU slice, sequential, in the same run. Writes
# everything under $OUT and prints a check table last. (LB_GPUS=cpu runs
# the same steps on a machine without a GPU, the CUDA checks failing.)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export WASMPOD_ADMIN_KEY=wpk_device_admin_key_0123456789abcdef
URL=http://127.0.0.1:8781
"$W" --home /tmp/wplb serve --listen 127.0.0.1:8781 >"$OUT/lb-serve.out" 2>"$OUT/lb-serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fsS "$URL/ping" >/dev/null 2>&1 && break; sleep 0.1; done

python3 - "$URL" "$WASMPOD_ADMIN_KEY" "$D/wasm/example_http_hello.wasm" "$OUT" "${LB_GPUS:-H200,H100}" <<'EOF'
import json, random, sys, time, urllib.request, urllib.error

url, key, wasm, out, gpu_list = sys.argv[1:6]
checks = []

def check(name, ok, detail=""):
    checks.append((name, "ok" if ok else f"FAIL {detail}"[:160]))

def call(method, path, body=None, ctype="application/json", timeout=300):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("content-type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

status, body = call("POST", "/v1/handlers", open(wasm, "rb").read(), "application/wasm")
digest = json.loads(body)["digest"]
for ep, gpus in [("gpu", gpu_list.split(",")), ("cpu", ["cpu"])]:
    status, body = call("POST", "/v1/endpoints", {
        "id": ep, "handler": digest, "type": "load_balancer", "gpus": gpus,
        "min_workers": 1, "max_workers": 1, "concurrency": 4})
    check(f"create load_balancer endpoint {ep} ({gpus[0]})", status == 201, body)

started = time.time()
status, body = call("GET", "/lb/gpu/devices")
first_s = time.time() - started
devices = json.loads(body)["devices"] if status == 200 else []
check("/lb/gpu/devices names a CUDA device", any(d["kind"] == "cuda" for d in devices), body)
print("gpu slice:", devices, f"(first request {first_s:.2f} s)")

rng = random.Random(0)
a = [[rng.uniform(-1, 1) for _ in range(48)] for _ in range(64)]
b = [[rng.uniform(-1, 1) for _ in range(32)] for _ in range(48)]
want = [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]
status, body = call("POST", "/lb/gpu/matmul", {"a": a, "b": b})
got = json.loads(body)["product"] if status == 200 else []
ok = status == 200 and all(
    abs(g - w) < 1e-3 for gr, wr in zip(got, want) for g, w in zip(gr, wr)) and len(got) == 64
check("/lb/gpu/matmul (64x48 @ 48x32 on CUDA) == float64 reference", ok, body[:200])

big = bytes(range(256)) * (4 << 12)  # 4 MiB
status, body = call("POST", "/lb/gpu/echo", big, "application/octet-stream")
check("/lb/gpu/echo streams 4 MiB back byte for byte", status == 200 and body == big, status)
status, body = call("GET", "/lb/gpu/crash")
check("/lb/gpu/crash: 500, contained", status == 500, status)
status, body = call("GET", "/lb/gpu/hello/after")
check("after the crash the GPU worker serves on", status == 200 and body == b"hello, after", body)

small = {"a": [[1, 2], [3, 4]], "b": [[1], [1]]}
rows = []
for ep in ["gpu", "cpu"]:
    call("GET", f"/lb/{ep}/hello/warm")
    times = []
    for _ in range(300):
        t = time.perf_counter()
        status, _ = call("POST", f"/lb/{ep}/matmul", small)
        times.append(time.perf_counter() - t)
        assert status == 200, status
    times.sort()
    rows.append((ep, times[len(times) // 2] * 1e3, times[int(len(times) * 0.99)] * 1e3))
status, body = call("GET", "/v2/gpu/health")
json.dump({"health": json.loads(body), "latency_ms": rows, "devices": devices}, open(f"{out}/lb-results.json", "w"), indent=1)

print("\n| /lb/{endpoint}/matmul (2x2 @ 2x1), 300 sequential | p50 | p99 |")
print("|---|---:|---:|")
for ep, p50, p99 in rows:
    print(f"| {ep} slice | {p50:.2f} ms | {p99:.2f} ms |")
print("\n| check | result |")
print("|---|---|")
for name, result in checks:
    print(f"| {name} | {result} |")
EOF
