#!/usr/bin/env python3
"""The `resnet` example's PyTorch peer: torchvision's ResNet loaded with the
same safetensors file, to check the guest's logits and to time the same
forward pass.

    resnet_torch.py check MODEL_DIR GUEST_OUTPUT.json
        GUEST_OUTPUT.json is the handler's answer to a job with
        `return_logits` and `return_input`; runs torchvision's network on
        that input (f32 on the GPU, TF32 off, and float64 on the CPU) and
        prints {"max_abs_diff", "max_abs_diff_f64", "max_abs_logit",
        "top5_identical"} as JSON.
    resnet_torch.py bench MODEL_DIR [--batches 1,64] [--dtypes f32,bf16]
                                   [--budget SECONDS]
        images/s of forward + softmax + top-5 (read back each iteration,
        as the guest's benchmark does), one JSON line per configuration:
        eager (NCHW), channels_last, and channels_last with torch.compile
        (mode reduce-overhead, CUDA graphs, at batch 1; default mode at
        larger batches) while the time budget lasts. f32 runs with TF32 off
        (the guest's f32 is true FP32); a `tf32` line shows PyTorch's
        default convolution math beside it.

Needs torch, torchvision and safetensors.
"""
import argparse
import base64
import json
import os
import sys
import time

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file


def build(model_dir):
    state = load_file(os.path.join(model_dir, "model.safetensors"))
    bottleneck = "layer1.0.conv3.weight" in state
    counts = []
    for layer in range(1, 5):
        i = 0
        while f"layer{layer}.{i}.conv1.weight" in state:
            i += 1
        counts.append(i)
    block = torchvision.models.resnet.Bottleneck if bottleneck else torchvision.models.resnet.BasicBlock
    width = state["conv1.weight"].shape[0]
    classes = state["fc.weight"].shape[0]
    # torchvision's ResNet has 64 stem channels; the tiny test nets use
    # width_per_group to scale Bottleneck's inner width only, so only the
    # standard width is supported here.
    if width != 64:
        sys.exit(f"resnet_torch.py: conv1 has {width} channels; torchvision's ResNet needs 64")
    net = torchvision.models.resnet.ResNet(block, counts, num_classes=classes)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"resnet_torch.py: state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return net.eval()


def check(a):
    out = json.load(open(a.output))
    out = out.get("output", out)
    shape = out["input"]["shape"]
    x = np.frombuffer(base64.b64decode(out["input"]["data"]), "<f4").reshape(shape)
    got = np.array(out["logits"], dtype=np.float64)
    net = build(a.model_dir)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        ref = net.cuda()(torch.from_numpy(x.copy()).cuda()).double().cpu().numpy()
        ref64 = net.double().cpu()(torch.from_numpy(x.astype(np.float64))).numpy()
    top = lambda v: np.argsort(-v, axis=1)[:, :5]
    print(json.dumps({
        "batch": shape[0],
        "max_abs_diff": float(np.abs(got - ref).max()),
        "max_abs_diff_f64": float(np.abs(got - ref64).max()),
        "torch_f32_vs_f64": float(np.abs(ref - ref64).max()),
        "max_abs_logit": float(np.abs(ref64).max()),
        "top5_identical": bool((top(got) == top(ref)).all()),
    }))


def time_forward(fn, x, iterations, warmup):
    times = []
    for i in range(warmup + iterations):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            probs, classes = torch.softmax(fn(x).float(), -1).topk(5)
        classes.cpu()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench(a):
    start = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    base = build(a.model_dir).cuda()
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    batches = [int(b) for b in a.batches.split(",")]

    def emit(batch, dtype, config, secs, **extra):
        print(json.dumps({"batch": batch, "dtype": dtype, "config": config, "median_ms": secs * 1e3,
                          "images_per_s": batch / secs, **extra}), flush=True)

    plans = []
    for name in a.dtypes.split(","):
        for batch in batches:
            plans.append((name, batch))
    # Eager and channels_last first (seconds), then compile while the budget lasts.
    for name, batch in plans:
        torch.backends.cudnn.allow_tf32 = False
        x = torch.randn(batch, 3, a.image_size, a.image_size, device="cuda", dtype=dtypes[name])
        net = build(a.model_dir).cuda().to(dtypes[name])
        its = 100 if batch == 1 else 30
        emit(batch, name, "eager", time_forward(net, x, its, 10))
        if name == "f32":
            torch.backends.cudnn.allow_tf32 = True
            emit(batch, name, "eager tf32", time_forward(net, x, its, 10))
            torch.backends.cudnn.allow_tf32 = False
        net = net.to(memory_format=torch.channels_last)
        xl = x.contiguous(memory_format=torch.channels_last)
        emit(batch, name, "channels_last", time_forward(net, xl, its, 10))
    del base
    for name, batch in plans:
        left = a.budget - (time.perf_counter() - start)
        if left < 60:
            print(json.dumps({"batch": batch, "dtype": name, "config": "compile", "skipped": f"budget ({left:.0f} s left)"}), flush=True)
            continue
        try:
            torch._dynamo.reset()
            net = build(a.model_dir).cuda().to(dtypes[name]).to(memory_format=torch.channels_last)
            x = torch.randn(batch, 3, a.image_size, a.image_size, device="cuda",
                            dtype=dtypes[name]).contiguous(memory_format=torch.channels_last)
            mode = "reduce-overhead" if batch == 1 else None
            fn = torch.compile(net, mode=mode)
            t0 = time.perf_counter()
            with torch.no_grad():
                fn(x)
                fn(x)
            compile_s = time.perf_counter() - t0
            its = 100 if batch == 1 else 30
            emit(batch, name, f"compile{'+cudagraphs' if mode else ''} channels_last",
                 time_forward(fn, x, its, 10), compile_s=compile_s)
        except Exception as e:  # a compile failure is a result, not a crash
            print(json.dumps({"batch": batch, "dtype": name, "config": "compile", "error": repr(e)[:300]}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("model_dir")
    c.add_argument("output")
    b = sub.add_parser("bench")
    b.add_argument("model_dir")
    b.add_argument("--batches", default="1,64")
    b.add_argument("--dtypes", default="f32,bf16")
    b.add_argument("--image-size", type=int, default=224)
    b.add_argument("--budget", type=float, default=150.0)
    a = ap.parse_args()
    check(a) if a.cmd == "check" else bench(a)


if __name__ == "__main__":
    main()
