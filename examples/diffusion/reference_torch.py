#!/usr/bin/env python3
"""The `diffusion` example's UNet in PyTorch (its parameter names are the
safetensors file's), to check one guest denoising step and to time the same
DDIM sampler loop.

    reference_torch.py check MODEL_DIR GUEST_OUTPUT.json T
        GUEST_OUTPUT.json is the handler's answer to
        `{"denoise_step": {"t": T}, ...}`; recomputes eps from its latents
        (f32 on the GPU, TF32 off) and prints {"max_abs_diff",
        "max_abs_ref"} as JSON.
    reference_torch.py bench MODEL_DIR [--batches 1,8] [--size 64]
                                      [--steps 20] [--dtypes f32,bf16]
                                      [--budget SECONDS]
        steps/s of the sampler loop (the guest's schedule: eps, then
        x = c1*x + c2*eps per step), one JSON line per configuration:
        eager (NCHW, SDPA attention), channels_last, and torch.compile of
        the network while the time budget lasts.

Needs torch and safetensors.
"""
import argparse
import base64
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

EPS = 1e-5


class Res(nn.Module):
    def __init__(self, inp, out, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, inp, eps=EPS)
        self.conv1 = nn.Conv2d(inp, out, 3, padding=1)
        self.temb = nn.Linear(temb, out)
        self.norm2 = nn.GroupNorm(groups, out, eps=EPS)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1)
        self.skip = nn.Conv2d(inp, out, 1) if inp != out else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class Attn(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=EPS)
        self.q, self.k, self.v, self.proj = (nn.Linear(ch, ch) for _ in range(4))

    def forward(self, x):
        n, c, h, w = x.shape
        tok = self.norm(x).reshape(n, c, h * w).transpose(1, 2)
        q, k, v = (p(tok).unsqueeze(1) for p in (self.q, self.k, self.v))
        o = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(c)).squeeze(1)
        return x + self.proj(o).transpose(1, 2).reshape(n, c, h, w)


class Level(nn.Module):
    def __init__(self, inp, out, temb, groups, attn, resample, up):
        super().__init__()
        self.res = Res(inp, out, temb, groups)
        self.attn = Attn(out, groups) if attn else None
        name = "up" if up else "down"
        setattr(self, name, nn.Conv2d(out, out, 3, stride=1 if up else 2, padding=1) if resample else None)
        self.is_up = up

    def forward(self, h, temb):
        h = self.res(h, temb)
        if self.attn is not None:
            h = self.attn(h)
        return h


class Mid(nn.Module):
    def __init__(self, ch, temb, groups):
        super().__init__()
        self.res1 = Res(ch, ch, temb, groups)
        self.attn = Attn(ch, groups)
        self.res2 = Res(ch, ch, temb, groups)


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, mult, g = cfg["channels"], cfg["mult"], cfg["groups"]
        c = [C * m for m in mult]
        levels = len(mult)
        self.channels = C
        self.time_mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.SiLU(), nn.Linear(4 * C, 4 * C))
        self.conv_in = nn.Conv2d(cfg["in_channels"], C, 3, padding=1)
        prev = C
        down = []
        for i in range(levels):
            down.append(Level(prev, c[i], 4 * C, g, cfg["attention"][i], i + 1 < levels, False))
            prev = c[i]
        self.down = nn.ModuleList(down)
        self.mid = Mid(c[-1], 4 * C, g)
        up = [None] * levels
        h = c[-1]
        for i in reversed(range(levels)):
            up[i] = Level(h + c[i], c[i], 4 * C, g, cfg["attention"][i], i > 0, True)
            h = c[i]
        self.up = nn.ModuleList(up)
        self.out_norm = nn.GroupNorm(g, c[0], eps=EPS)
        self.out_conv = nn.Conv2d(c[0], cfg["in_channels"], 3, padding=1)
        self.decoder = nn.Linear(cfg["in_channels"], 3)

    def forward(self, x, t):
        # In f32 whatever the network's dtype, as the guest computes it.
        half = self.channels // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
        args = t.float() * freqs
        emb = torch.cat([torch.sin(args), torch.cos(args)])[None, :].to(x.dtype)
        temb = F.silu(self.time_mlp(emb))
        h = self.conv_in(x)
        skips = []
        for level in self.down:
            h = level(h, temb)
            skips.append(h)
            if level.down is not None:
                h = level.down(h)
        h = self.mid.res1(h, temb)
        h = self.mid.attn(h)
        h = self.mid.res2(h, temb)
        for level in reversed(self.up):
            h = level(torch.cat([h, skips.pop()], 1), temb)
            if level.up is not None:
                h = level.up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    net = UNet(cfg)
    net.load_state_dict(load_file(os.path.join(model_dir, "model.safetensors")))
    return net.eval(), cfg


def schedule(cfg, steps):
    """[t, c1, c2] per DDIM step (eta 0), as the guest computes them."""
    n = cfg["train_steps"]
    betas = [cfg["beta_start"] + (cfg["beta_end"] - cfg["beta_start"]) * i / max(n - 1, 1) for i in range(n)]
    a, acc = [], 1.0
    for b in betas:
        acc *= 1.0 - b
        a.append(acc)
    stride = max(n // steps, 1)
    rows = []
    for t in reversed([i * stride for i in range(steps)]):
        at, prev = a[t], a[t - stride] if t >= stride else 1.0
        rows.append((t, math.sqrt(prev / at), math.sqrt(1 - prev) - math.sqrt(prev * (1 - at) / at)))
    return rows


def check(a):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    net, _ = load(a.model_dir)
    out = json.load(open(a.output))
    out = out.get("output", out)
    x = np.frombuffer(base64.b64decode(out["x"]), "<f4").reshape(out["shape"])
    got = np.frombuffer(base64.b64decode(out["eps"]), "<f4").astype(np.float64)
    with torch.no_grad():
        want = net.cuda()(torch.from_numpy(x.copy()).cuda(), torch.tensor([a.t], device="cuda")).double().cpu().numpy()
    want = want.reshape(-1)
    print(json.dumps({"max_abs_diff": float(np.abs(want - got).max()), "max_abs_ref": float(np.abs(want).max())}))


def bench(a):
    start = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    net0, cfg = load(a.model_dir)
    rows = schedule(cfg, a.steps)

    def run(fn, x0, runs=3):
        ts = [torch.tensor([float(t)], device="cuda") for t, _, _ in rows]
        times = []
        for i in range(runs + 1):
            x = x0.clone()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.no_grad():
                for (t, c1, c2), tt in zip(rows, ts):
                    x = c1 * x + c2 * fn(x, tt)
            x[:1].float().cpu()
            if i > 0:  # the first run warms up (cuDNN plans, compile)
                times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def emit(batch, dtype, config, secs, **extra):
        print(json.dumps({"batch": batch, "size": a.size, "steps": a.steps, "dtype": dtype, "config": config,
                          "median_s": secs, "steps_per_s": a.steps / secs, **extra}), flush=True)

    plans = [(d, int(b)) for d in a.dtypes.split(",") for b in a.batches.split(",")]
    for name, batch in plans:
        net = load(a.model_dir)[0].cuda().to(dtypes[name])
        x = torch.randn(batch, cfg["in_channels"], a.size, a.size, device="cuda", dtype=dtypes[name])
        emit(batch, name, "eager", run(net, x))
        net = net.to(memory_format=torch.channels_last)
        emit(batch, name, "channels_last", run(net, x.contiguous(memory_format=torch.channels_last)))
    for name, batch in plans:
        left = a.budget - (time.perf_counter() - start)
        if left < 45:
            print(json.dumps({"batch": batch, "dtype": name, "config": "compile", "skipped": f"budget ({left:.0f} s left)"}), flush=True)
            continue
        try:
            torch._dynamo.reset()
            net = load(a.model_dir)[0].cuda().to(dtypes[name]).to(memory_format=torch.channels_last)
            x = torch.randn(batch, cfg["in_channels"], a.size, a.size, device="cuda",
                            dtype=dtypes[name]).contiguous(memory_format=torch.channels_last)
            mode = "reduce-overhead" if batch == 1 else None
            fn = torch.compile(net, mode=mode)
            t0 = time.perf_counter()
            with torch.no_grad():
                fn(x, torch.tensor([1.0], device="cuda"))
                fn(x, torch.tensor([2.0], device="cuda"))
            compile_s = time.perf_counter() - t0
            emit(batch, name, f"compile{'+cudagraphs' if mode else ''} channels_last", run(fn, x), compile_s=compile_s)
        except Exception as e:
            print(json.dumps({"batch": batch, "dtype": name, "config": "compile", "error": repr(e)[:300]}), flush=True)
    del net0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("model_dir")
    c.add_argument("output")
    c.add_argument("t", type=float)
    b = sub.add_parser("bench")
    b.add_argument("model_dir")
    b.add_argument("--batches", default="1,8")
    b.add_argument("--size", type=int, default=64)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--dtypes", default="f32,bf16")
    b.add_argument("--budget", type=float, default=120.0)
    a = ap.parse_args()
    check(a) if a.cmd == "check" else bench(a)


if __name__ == "__main__":
    main()
