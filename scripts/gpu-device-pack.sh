#!/usr/bin/env bash
# Packs what scripts/gpu-device-run.sh needs into .devcarry/ (ignored by git;
# named in the device tool's `carry`): release binaries (stripped), the
# example components, and all-MiniLM-L6-v2 split in two halves, model-a and
# model-b, each under the tool's 64 MiB carry limit, to carry in two calls.
#
#   scripts/gpu-device-pack.sh            everything gpu-device-run.sh uses
#   scripts/gpu-device-pack.sh flashboot  wasmpod, the serve_coldstart bench,
#                                         the tensor crate's unit tests (cargo
#                                         test -p wasmpod-tensor --lib
#                                         --release --no-run) and the
#                                         components that
#                                         gpu-device-flashboot.sh and
#                                         gpu-device-models.sh use
#   scripts/gpu-device-pack.sh ops        wasmpod and the components that
#                                         gpu-device-ops.sh deploys
#   scripts/gpu-device-pack.sh lb         wasmpod and the http-hello
#                                         component gpu-device-lb.sh serves
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
D=.devcarry
rm -rf "$D" && mkdir -p "$D/bin" "$D/wasm"
cp target/release/wasmpod "$D/bin/"
if [ "${1:-}" = ops ]; then
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  for e in stream mlp; do
    cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
  done
  du -sh "$D"/* "$D"/bin/*
  exit 0
fi
if [ "${1:-}" = lb ]; then
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  cp target/wasm32-wasip2/release/example_http_hello.wasm "$D/wasm/"
  du -sh "$D"/* "$D"/bin/*
  exit 0
fi
if [ "${1:-}" = flashboot ]; then
  f=$(ls -t target/release/deps/serve_coldstart-* | grep -v '\.d$' | head -1)
  cp "$f" "$D/bin/serve_coldstart"
  f=$(ls -t target/release/deps/wasmpod_tensor-* | grep -v '\.d$' | head -1)
  cp "$f" "$D/bin/tensor_unit"
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  for e in echo bigmodel mlp; do
    cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
  done
  du -sh "$D"/* "$D"/bin/*
  exit 0
fi
mkdir -p "$D/model-a/files" "$D/model-b"
cp target/release/examples/gpu_bench "$D/bin/"
for t in cuda_conformance conformance; do
  f=$(ls -t target/release/deps/$t-* | grep -v '\.d$' | head -1)
  cp "$f" "$D/bin/$t"
done
strip "$D"/bin/*
# xz (unpacked there with Python's lzma) keeps binaries + half a model under 64 MiB.
xz -6 -T2 "$D"/bin/*
for e in embeddings gpu_bench echo mlp; do
  cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
done
M="$(.venv/bin/python3 tests/fixtures/minilm/compare.py --print-model-dir)"
(cd "$M" && find . -type f ! -name model.safetensors -exec cp --parents {} "$ROOT/$D/model-a/files/" \;)
half=$(( ($(stat -c %s "$M/model.safetensors") + 1) / 2 ))
split -b "$half" -d "$M/model.safetensors" "$D/model.safetensors.part"
mv "$D/model.safetensors.part00" "$D/model-a/"
mv "$D/model.safetensors.part01" "$D/model-b/"
du -sh "$D"/* "$D"/bin/*
