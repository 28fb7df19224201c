#!/usr/bin/env python3
"""Write a ResNet with random weights for the `resnet` example.

    python3 make_model.py OUT_DIR [--depth 50|18|34|101|152|tiny] [--seed N]
                                  [--classes N] [--image-size N]

OUT_DIR gets model.safetensors with torchvision's parameter names and
shapes (`conv1.weight`, `bn1.*`, `layer{1-4}.{i}...`, `fc.*`, f32; batch
norms with random running statistics, so folding them is exercised),
config.json (image size and resize for preprocessing) and labels.txt.
torchvision's `resnet50()` loads the file with `load_state_dict`
(`num_batches_tracked` aside, which inference does not use).

`tiny` is a bottleneck ResNet with blocks [2, 1, 1, 1] and a quarter of the
width of layer 1 (16 channels), 10 classes and 32x32 images: small enough
for the CPU tests. Needs numpy.
"""
import argparse
import json
import os
import struct

import numpy as np

DEPTHS = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}


def write_safetensors(path, tensors):
    """tensors: name -> float32 array, in insertion order."""
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


def resnet(kind, blocks, width, classes, rng):
    t = {}

    def conv(name, out, inp, k):
        fan_in = inp * k * k
        t[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), (out, inp, k, k))

    def bn(name, c, gamma=(0.5, 1.0)):
        t[name + ".weight"] = rng.uniform(*gamma, c)
        t[name + ".bias"] = rng.normal(0.0, 0.1, c)
        t[name + ".running_mean"] = rng.normal(0.0, 0.1, c)
        t[name + ".running_var"] = rng.uniform(0.5, 1.5, c)

    conv("conv1.weight", width, 3, 7)
    bn("bn1", width)
    expansion = 4 if kind == "bottleneck" else 1
    inp = width
    for layer, count in enumerate(blocks, start=1):
        planes = width * 2 ** (layer - 1)
        for i in range(count):
            p = f"layer{layer}.{i}"
            out = planes * expansion
            if kind == "bottleneck":
                conv(f"{p}.conv1.weight", planes, inp, 1)
                bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2.weight", planes, planes, 3)
                bn(f"{p}.bn2", planes)
                conv(f"{p}.conv3.weight", out, planes, 1)
                # A small last gamma keeps the residual stream stable over
                # many random blocks (torchvision's zero_init_residual idea).
                bn(f"{p}.bn3", out, gamma=(0.1, 0.3))
            else:
                conv(f"{p}.conv1.weight", planes, inp, 3)
                bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2.weight", planes, planes, 3)
                bn(f"{p}.bn2", planes, gamma=(0.1, 0.3))
            if i == 0 and (layer > 1 or inp != out):
                conv(f"{p}.downsample.0.weight", out, inp, 1)
                bn(f"{p}.downsample.1", out)
            inp = out
    t["fc.weight"] = rng.normal(0.0, 1.0 / np.sqrt(inp), (classes, inp))
    t["fc.bias"] = rng.normal(0.0, 0.01, classes)
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--depth", default="50")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int)
    ap.add_argument("--image-size", type=int)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    if a.depth == "tiny":
        kind, blocks, width = "bottleneck", [2, 1, 1, 1], 16
        classes, size, resize = a.classes or 10, a.image_size or 32, a.image_size or 32
    else:
        kind, blocks = DEPTHS[int(a.depth)]
        width, classes = 64, a.classes or 1000
        size = a.image_size or 224
        resize = size * 256 // 224
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "model.safetensors"), resnet(kind, blocks, width, classes, rng))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump({"image_size": size, "resize": resize}, f)
    with open(os.path.join(a.out, "labels.txt"), "w") as f:
        f.write("".join(f"class {i}\n" for i in range(classes)))


if __name__ == "__main__":
    main()
