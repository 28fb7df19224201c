#!/usr/bin/env bash
# The benchmark runner: every benchmark in BENCHMARKS.md is started from here.
#
#   scripts/bench.sh list              what can be run
#   scripts/bench.sh cpu NAME [ARGS]   a benchmark program of host/benches/
#                                      (release build first), on this machine
#   scripts/bench.sh gpu-pack SUITE    here: build what SUITE needs (release)
#                                      and pack it, xz-compressed, under
#                                      .devcarry/ (git-ignored) for a machine
#                                      with an NVIDIA GPU
#   scripts/bench.sh gpu SUITE [ARGS]  there (no network needed): unpack
#                                      .devcarry/, run SUITE, write results
#                                      under $OUT, print a short table last
#
# GPU suites (scripts/gpu/SUITE.sh; scripts/gpu/pack.sh packs them):
#   kernels    the tensor backend's CUDA conformance, GEMM and upload
#              microbenchmarks, embeddings on the GPU
#   serve      `wasmpod serve` on the machine's real inventory
#   models     a model endpoint on a GPU slice
#   flashboot  FlashBoot cold starts through `wasmpod serve`
#   llm        decoder-op conformance, the 1B decode table, examples/llm
#              against transformers, embeddings batch 64
#   vision     image-op conformance, ResNet-50 and the UNet against PyTorch
#   ops        the CLI, logs and latency percentiles on a GPU slice
#   sandbox    the executor sandbox (Landlock) with a real GPU
#   lb         a load-balancing endpoint on a GPU slice: /lb/... with its
#              tensors on CUDA, checked, its p50 beside a CPU slice's
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GPU_SUITES="kernels serve models flashboot llm vision ops sandbox lb"
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# The pack mode of scripts/gpu/pack.sh that each suite's run reads.
pack_mode() {
  case "$1" in
    kernels | serve | models) echo "" ;;
    *) echo "$1" ;;
  esac
}
check_suite() {
  for s in $GPU_SUITES; do [ "$s" = "$1" ] && return 0; done
  echo "unknown GPU suite '$1'; one of: $GPU_SUITES" >&2
  exit 2
}
case "${1:-}" in
  list)
    echo "cpu:"
    sed -n 's/^name = "\(.*\)"$/\1/p' host/Cargo.toml | while read -r n; do
      [ -f "host/benches/$n.rs" ] && echo "  $n"
    done
    echo "gpu: $GPU_SUITES"
    ;;
  cpu)
    [ -n "${2:-}" ] || usage
    name="$2"
    shift 2
    [ -f "host/benches/$name.rs" ] || { echo "no benchmark host/benches/$name.rs (scripts/bench.sh list)" >&2; exit 2; }
    cargo build --release -p wasmpod
    cargo bench -p wasmpod --bench "$name" -- "$@"
    ;;
  gpu-pack)
    [ -n "${2:-}" ] || usage
    check_suite "$2"
    mode="$(pack_mode "$2")"
    if [ -z "$mode" ]; then
      # These suites pack prebuilt binaries: build them first.
      cargo build --release -p wasmpod
      cargo build --release -p wasmpod-tensor --examples
      cargo test --release -p wasmpod-tensor --no-run
      cargo build --release --target wasm32-wasip2 --workspace --exclude wasmpod --exclude wasmpod-tensor
    elif [ "$mode" = flashboot ] || [ "$mode" = ops ]; then
      cargo build --release -p wasmpod
      cargo bench -p wasmpod --bench serve_coldstart --no-run
      cargo test --release -p wasmpod-tensor --lib --no-run
      cargo build --release --target wasm32-wasip2 --workspace --exclude wasmpod --exclude wasmpod-tensor
    fi
    exec scripts/gpu/pack.sh $mode
    ;;
  gpu)
    [ -n "${2:-}" ] || usage
    check_suite "$2"
    suite="$2"
    shift 2
    exec bash "scripts/gpu/$suite.sh" "$@"
    ;;
  *) usage ;;
esac
