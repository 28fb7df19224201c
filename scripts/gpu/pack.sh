#!/usr/bin/env bash
# Packs what scripts/bench.sh gpu kernels needs into .devcarry/ (ignored by git;
# carried to the GPU machine): release binaries (stripped), the
# example components, and all-MiniLM-L6-v2 split in two halves, model-a and
# model-b, each under the tool's 64 MiB carry limit, to carry in two calls.
#
#   scripts/bench.sh gpu-pack kernels            everything scripts/gpu/kernels.sh uses
#   scripts/bench.sh gpu-pack sandbox    builds (release) and packs wasmpod and
#                                         the components that
#                                         scripts/gpu/sandbox.sh uses
#   scripts/bench.sh gpu-pack flashboot  wasmpod, the serve_coldstart bench,
#                                         the tensor crate's unit tests (cargo
#                                         test -p wasmpod-tensor --lib
#                                         --release --no-run) and the
#                                         components that
#                                         scripts/gpu/flashboot.sh and
#                                         scripts/gpu/models.sh use
#   scripts/bench.sh gpu-pack ops        wasmpod and the components that
#                                         scripts/gpu/ops.sh deploys
#   scripts/bench.sh gpu-pack vision     what scripts/gpu/vision.sh uses,
#                                         built here first: wasmpod, the
#                                         tensor crate's conformance tests
#                                         and the resnet and diffusion
#                                         components (~25 MiB; the models
#                                         are made there by their scripts)
#   scripts/bench.sh gpu-pack llm        what scripts/gpu/llm.sh (issue 18)
#                                         uses, built here first (release):
#                                         wasmpod, the decode_bench example,
#                                         the tensor crate's conformance
#                                         tests, the llm, embeddings and
#                                         gpu-bench components, and
#                                         all-MiniLM-L6-v2 without its
#                                         weights (their safetensors header
#                                         only: the GPU run fills random
#                                         weights of the same shapes), all
#                                         in one carry of at most ~60 MiB
#   scripts/bench.sh gpu-pack lb         wasmpod and the http-hello
#                                         component scripts/gpu/lb.sh serves,
#                                         built here first (release)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
D=.devcarry
if [ "${1:-}" = llm ]; then
  nice -n 10 cargo build --release -p wasmpod
  nice -n 10 cargo build --release -p wasmpod-tensor --example decode_bench
  # The test executables cargo names, not whichever is newest in deps/.
  nice -n 10 cargo test --release -p wasmpod-tensor --test cuda_decoder --test cuda_conformance --test conformance \
    --no-run --message-format=json |
    python3 -c 'import json, sys
for m in map(json.loads, sys.stdin):
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])' >target/release/llm-tests.txt
  nice -n 10 cargo build --release --target wasm32-wasip2 -p example-llm -p example-embeddings -p example-gpu-bench
fi
rm -rf "$D" && mkdir -p "$D/bin" "$D/wasm"
cp target/release/wasmpod "$D/bin/"
# The newest build of test binary $1 as $D/bin/$1.
test_binary() {
  f=$(ls -t target/release/deps/$1-* | grep -v '\.d$' | head -1)
  cp "$f" "$D/bin/$1"
}
if [ "${1:-}" = vision ]; then
  rm -rf "$D" && mkdir -p "$D/bin" "$D/wasm"
  cargo build --quiet --release -p wasmpod --bin wasmpod
  cargo test --quiet --release -p wasmpod-tensor --test conformance --no-run
  cargo build --quiet --release --target wasm32-wasip2 -p example-resnet -p example-diffusion
  cp target/release/wasmpod "$D/bin/"
  test_binary conformance
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  for e in resnet diffusion; do
    cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
  done
  du -sh "$D"/* "$D"/bin/*
  exit 0
fi
if [ "${1:-}" = sandbox ]; then
  cargo build --release -p wasmpod
  cargo build --release --target wasm32-wasip2 -p example-gpu-bench -p example-mlp
fi
if [ "${1:-}" = lb ]; then
  nice -n 10 cargo build --release -p wasmpod
  nice -n 10 cargo build --release --target wasm32-wasip2 -p example-http-hello
fi
rm -rf "$D" && mkdir -p "$D/bin" "$D/wasm"
cp target/release/wasmpod "$D/bin/"
if [ "${1:-}" = sandbox ]; then
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  for e in gpu_bench mlp; do
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
if [ "${1:-}" = ops ]; then
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  for e in stream mlp; do
    cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
  done
  du -sh "$D"/* "$D"/bin/*
  exit 0
fi
if [ "${1:-}" = llm ]; then
  cp target/release/examples/decode_bench "$D/bin/"
  while read -r name exe; do cp "$exe" "$D/bin/$name"; done <target/release/llm-tests.txt
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  for e in llm embeddings gpu_bench; do
    cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
  done
  # all-MiniLM-L6-v2's files but its weights; the weights' safetensors
  # header (names, dtypes, shapes) so the run makes a same-shaped model.
  mkdir -p "$D/minilm/files"
  M="$(.venv/bin/python3 tests/fixtures/minilm/compare.py --print-model-dir)"
  (cd "$M" && find . -type f ! -name model.safetensors ! -name README.md -exec cp --parents {} "$ROOT/$D/minilm/files/" \;)
  python3 - "$M/model.safetensors" "$D/minilm/header.json" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb")
n = struct.unpack("<Q", f.read(8))[0]
open(sys.argv[2], "wb").write(f.read(n))
PY
  du -sh "$D"/* "$D"/bin/*
  total=$(du -sb "$D" | cut -f1)
  echo "packed $((total / 1048576)) MiB in $D"
  if [ "$total" -gt $((60 * 1048576)) ]; then
    echo "over 60 MiB: the carry will be refused" >&2
    exit 1
  fi
  exit 0
fi
# all-MiniLM-L6-v2 in two halves, model-a and model-b.
pack_minilm() {
  mkdir -p "$D/model-a/files" "$D/model-b"
  M="$(.venv/bin/python3 tests/fixtures/minilm/compare.py --print-model-dir)"
  (cd "$M" && find . -type f ! -name model.safetensors -exec cp --parents {} "$ROOT/$D/model-a/files/" \;)
  half=$(( ($(stat -c %s "$M/model.safetensors") + 1) / 2 ))
  split -b "$half" -d "$M/model.safetensors" "$D/model.safetensors.part"
  mv "$D/model.safetensors.part00" "$D/model-a/"
  mv "$D/model.safetensors.part01" "$D/model-b/"
}
if [ "${1:-}" = flashboot ]; then
  test_binary serve_coldstart
  test_binary wasmpod_tensor && mv "$D/bin/wasmpod_tensor" "$D/bin/tensor_unit"
  strip "$D"/bin/*
  xz -6 -T2 "$D"/bin/*
  for e in echo bigmodel mlp; do
    cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
  done
  du -sh "$D"/* "$D"/bin/*
  exit 0
fi
cp target/release/examples/gpu_bench "$D/bin/"
for t in cuda_conformance conformance; do test_binary $t; done
strip "$D"/bin/*
# xz (unpacked there with Python's lzma) keeps binaries + half a model under 64 MiB.
xz -6 -T2 "$D"/bin/*
for e in embeddings gpu_bench echo mlp; do
  cp "target/wasm32-wasip2/release/example_$e.wasm" "$D/wasm/"
done
pack_minilm
du -sh "$D"/* "$D"/bin/*
