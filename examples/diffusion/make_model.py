#!/usr/bin/env python3
"""Write the `diffusion` example's UNet with random weights.

    python3 make_model.py OUT_DIR [--channels 64] [--mult 1,2,2]
                                  [--attention 0,0,1] [--groups 32] [--seed 0]

OUT_DIR gets model.safetensors (f32; the parameter names of
reference_torch.py's UNet, which loads it with load_state_dict) and
config.json (the shape and the noise schedule the handler reads). The
defaults are the network the benchmarks use: 4 latent channels, 64 base
channels, three levels (64, 128, 128), self-attention at the lowest, group
norm with 32 groups. Needs numpy.
"""
import argparse
import json
import os
import struct

import numpy as np


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def unet(cfg, rng):
    t = {}
    C, mult, inc = cfg["channels"], cfg["mult"], cfg["in_channels"]
    c = [C * m for m in mult]

    def conv(name, out, inp, k, gain=1.0):
        t[name + ".weight"] = rng.normal(0.0, gain / np.sqrt(inp * k * k), (out, inp, k, k))
        t[name + ".bias"] = rng.normal(0.0, 0.02, out)

    def linear(name, out, inp, gain=1.0):
        t[name + ".weight"] = rng.normal(0.0, gain / np.sqrt(inp), (out, inp))
        t[name + ".bias"] = rng.normal(0.0, 0.02, out)

    def norm(name, ch):
        t[name + ".weight"] = 1.0 + rng.normal(0.0, 0.1, ch)
        t[name + ".bias"] = rng.normal(0.0, 0.05, ch)

    def res(name, inp, out):
        norm(name + ".norm1", inp)
        conv(name + ".conv1", out, inp, 3)
        linear(name + ".temb", out, 4 * C, gain=0.5)
        norm(name + ".norm2", out)
        conv(name + ".conv2", out, out, 3, gain=0.5)
        if inp != out:
            conv(name + ".skip", out, inp, 1)

    def attn(name, ch):
        norm(name + ".norm", ch)
        for p in ("q", "k", "v"):
            linear(f"{name}.{p}", ch, ch)
        linear(name + ".proj", ch, ch, gain=0.5)

    linear("time_mlp.0", 4 * C, C)
    linear("time_mlp.2", 4 * C, 4 * C)
    conv("conv_in", C, inc, 3)
    levels = len(mult)
    prev = C
    for i in range(levels):
        res(f"down.{i}.res", prev, c[i])
        if cfg["attention"][i]:
            attn(f"down.{i}.attn", c[i])
        if i + 1 < levels:
            conv(f"down.{i}.down", c[i], c[i], 3)
        prev = c[i]
    res("mid.res1", c[-1], c[-1])
    attn("mid.attn", c[-1])
    res("mid.res2", c[-1], c[-1])
    h = c[-1]
    for i in reversed(range(levels)):
        res(f"up.{i}.res", h + c[i], c[i])
        if cfg["attention"][i]:
            attn(f"up.{i}.attn", c[i])
        if i > 0:
            conv(f"up.{i}.up", c[i], c[i], 3)
        h = c[i]
    norm("out_norm", c[0])
    conv("out_conv", inc, c[0], 3, gain=0.5)
    linear("decoder", 3, inc)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--mult", default="1,2,2")
    ap.add_argument("--attention", default="0,0,1")
    ap.add_argument("--groups", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg = {
        "in_channels": 4,
        "channels": a.channels,
        "mult": [int(m) for m in a.mult.split(",")],
        "attention": [m.strip() == "1" for m in a.attention.split(",")],
        "groups": a.groups,
        "train_steps": 1000,
        "beta_start": 1e-4,
        "beta_end": 0.02,
    }
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "model.safetensors"), unet(cfg, np.random.default_rng(a.seed)))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f)


if __name__ == "__main__":
    main()
