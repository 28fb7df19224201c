#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU (an H200 for the numbers in
# BENCHMARKS.md), over .devcarry/ from `scripts/bench.sh gpu-pack vision`,
# in about 7 minutes:
#
#   1. CUDA conformance of the image ops and the elementwise long tail
#      (tests/conformance.rs, the cases of cases/image.rs and math.rs, GPU vs the f64
#      references), once with cuDNN and once on the im2col + cuBLAS path.
#   2. ResNet-50 (random weights, torchvision's names) in the guest against
#      torchvision's resnet50 with the same weights: logits max |diff| in
#      f32 and top-5; then images/s at batch 1 and 64, f32 and bf16, beside
#      torchvision eager, channels_last and torch.compile in the same run.
#   3. The diffusion UNet: one denoising step against the same network in
#      PyTorch; then steps/s of the 20-step DDIM loop at 64x64 latents,
#      batch 1 and 8, beside the PyTorch model in the same run.
#
# Needs python3 with torch, torchvision, numpy and safetensors there (no
# network); cuDNN comes from PyTorch's nvidia-cudnn wheel. Everything goes to
# $OUT; the summary table is printed last.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
step() { echo "-- $(date -u +%T) $*" >&2; }
T0=$(date +%s)

# cuDNN 9 from the PyTorch install (libcudnn.so.9 and its engine libraries).
CUDNN_LIB="$(python3 -c 'import os, nvidia.cudnn as c; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null)"
[ -d "$CUDNN_LIB" ] || CUDNN_LIB=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib
export LD_LIBRARY_PATH="$CUDNN_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

note "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sort | uniq -c | xargs)"
python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 | tee -a "$SUMMARY"
note "cuDNN for wasmpod from $CUDNN_LIB: $(ls "$CUDNN_LIB"/libcudnn.so* 2>/dev/null | head -1)"

step "1. conformance"
# The image and math cases (tests/cases/image.rs, math.rs) by name; the
# test names carry no module path.
CASES="conv pool pad_every group_norm resize math_functions clamp pow_minimum comparisons_and_where cumsum ranges random_matches"
note "== CUDA conformance of the image and math ops (GPU vs the f64 references)"
for mode in on off; do
  WASMPOD_CONFORMANCE_CUDNN=$mode timeout 150 "$D/bin/conformance" $CASES --test-threads=1 --nocapture \
    >"$OUT/conformance-cudnn-$mode.txt" 2>&1
  echo "exit $?" >>"$OUT/conformance-cudnn-$mode.txt"
  grep -E "^test .*FAILED|panicked|failed on backend|without cuDNN|skipped|test result|^exit [^0]" "$OUT/conformance-cudnn-$mode.txt" \
    | head -20 | sed "s/^/cudnn $mode: /" | tee -a "$SUMMARY"
done

run_guest() { # component, models dir, input, output file
  timeout 180 "$W" --home /tmp/wp run "$D/wasm/$1" --device cuda --models "$2" --memory 2GiB \
    --tensor-quota 60GiB --timeout 170s --input "$3" >"$4" 2>"${4%.json}.err"
  local rc=$?
  [ $rc = 0 ] || echo "exit $rc: $(tail -c 400 "${4%.json}.err")" | tee -a "$SUMMARY"
}

step "2. resnet"
M=/tmp/models
mkdir -p "$M"
python3 examples/resnet/make_model.py "$M/resnet" --depth 50 --seed 0
python3 examples/diffusion/make_model.py "$M/diffusion" --seed 0
note "== ResNet-50 (random weights) in the guest vs torchvision resnet50, same weights"
for layout in nhwc nchw; do
  run_guest example_resnet.wasm "$M" \
    "{\"synthetic\":{\"batch\":4,\"seed\":1},\"layout\":\"$layout\",\"return_logits\":true,\"return_input\":true}" \
    "$OUT/resnet-check-$layout.json"
  echo "check $layout: $(timeout 120 python3 examples/resnet/resnet_torch.py check "$M/resnet" "$OUT/resnet-check-$layout.json" 2>&1 | tail -1)" \
    | tee -a "$SUMMARY"
done
: >"$OUT/resnet-guest.jsonl"
for dtype in f32 bf16; do
  for batch in 1 64; do
    for graph in false true; do
      its=$([ $batch = 1 ] && echo 100 || echo 30)
      run_guest example_resnet.wasm "$M" \
        "{\"synthetic\":{\"batch\":$batch,\"seed\":0},\"dtype\":\"$dtype\",\"benchmark\":{\"iterations\":$its,\"warmup\":10,\"graph\":$graph}}" \
        "$OUT/resnet-$dtype-b$batch-g$graph.json"
      python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["benchmark"]))' \
        "$OUT/resnet-$dtype-b$batch-g$graph.json" >>"$OUT/resnet-guest.jsonl" 2>/dev/null
    done
  done
done
timeout 200 python3 examples/resnet/resnet_torch.py bench "$M/resnet" --budget 150 \
  >"$OUT/resnet-torch.jsonl" 2>"$OUT/resnet-torch.err"
echo "torch resnet exit $?" >>"$OUT/resnet-torch.err"

step "3. diffusion"
note "== diffusion UNet in the guest vs the same network in PyTorch"
for t in 999 500; do
  run_guest example_diffusion.wasm "$M" "{\"denoise_step\":{\"t\":$t},\"seed\":1,\"batch\":2,\"size\":64}" \
    "$OUT/diffusion-step-$t.json"
  echo "step t=$t: $(timeout 120 python3 examples/diffusion/reference_torch.py check "$M/diffusion" "$OUT/diffusion-step-$t.json" $t 2>&1 | tail -1)" \
    | tee -a "$SUMMARY"
done
: >"$OUT/diffusion-guest.jsonl"
for dtype in f32 bf16; do
  for batch in 1 8; do
    for graph in false true; do
      run_guest example_diffusion.wasm "$M" \
        "{\"seed\":0,\"steps\":20,\"batch\":$batch,\"size\":64,\"dtype\":\"$dtype\",\"graph\":$graph,\"benchmark\":{\"runs\":3}}" \
        "$OUT/diffusion-$dtype-b$batch-g$graph.json"
      python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["benchmark"]))' \
        "$OUT/diffusion-$dtype-b$batch-g$graph.json" >>"$OUT/diffusion-guest.jsonl" 2>/dev/null
    done
  done
done
# The sampler end to end (progress, PNG), once.
run_guest example_diffusion.wasm "$M" '{"seed":7,"steps":20,"batch":1,"size":64}' "$OUT/diffusion-sample.json"
left=$(( 450 - ($(date +%s) - T0) ))
[ $left -gt 150 ] && left=150
timeout $(( left + 40 )) python3 examples/diffusion/reference_torch.py bench "$M/diffusion" --budget $left \
  >"$OUT/diffusion-torch.jsonl" 2>"$OUT/diffusion-torch.err"
echo "torch diffusion exit $?" >>"$OUT/diffusion-torch.err"
tail -2 "$OUT/resnet-torch.err" "$OUT/diffusion-torch.err" | tee -a "$SUMMARY"

note "== summary ($(( $(date +%s) - T0 )) s)"
python3 - "$OUT" <<'EOF' | tee -a "$SUMMARY"
import json, os, sys
out = sys.argv[1]

def lines(name):
    try:
        return [json.loads(l) for l in open(os.path.join(out, name)) if l.strip().startswith("{")]
    except OSError:
        return []

def table(title, guest, torch, batches, unit, key):
    print(f"{title} ({unit}; ratio = wasmpod best / PyTorch best)")
    print(f"{'dtype':<6}{'batch':>6}{'wasmpod':>10}{'+graph':>10}{'eager':>10}{'ch_last':>10}{'compile':>10}{'ratio':>8}")
    for dtype in ("f32", "bf16"):
        for b in batches:
            # The guest names the WIT enum case ("dtype::bf16").
            g = {r.get("graph"): r[key] for r in guest
                 if str(r.get("dtype")).split("::")[-1] == dtype and r.get("batch") == b}
            t = {r["config"].split()[0]: r[key] for r in torch if r.get("dtype") == dtype and r.get("batch") == b and key in r}
            t.pop("eager", None)
            eager = next((r[key] for r in torch if r.get("dtype") == dtype and r.get("batch") == b and r.get("config") == "eager"), float("nan"))
            comp = max([v for k, v in t.items() if k.startswith("compile")] or [float("nan")])
            ours = max([v for v in g.values()] or [float("nan")])
            best = max([v for v in (eager, t.get("channels_last", float("nan")), comp) if v == v] or [float("nan")])
            f = lambda v: f"{v:10.1f}" if v == v else f"{'-':>10}"
            print(f"{dtype:<6}{b:>6}{f(g.get(False, float('nan')))}{f(g.get(True, float('nan')))}{f(eager)}"
                  f"{f(t.get('channels_last', float('nan')))}{f(comp)}{ours / best:>8.2f}")

table("ResNet-50 images/s", lines("resnet-guest.jsonl"), lines("resnet-torch.jsonl"), (1, 64), "images/s", "images_per_s")
table("UNet 64x64 DDIM steps/s", lines("diffusion-guest.jsonl"), lines("diffusion-torch.jsonl"), (1, 8), "steps/s", "steps_per_s")
EOF
grep -E "^(cudnn (on|off): test result|check |step t=)" "$SUMMARY"
