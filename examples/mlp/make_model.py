#!/usr/bin/env python3
"""Write the `mlp` example's model, or print the answers it must give.

    python3 make_model.py OUT_DIR
        writes OUT_DIR/model.safetensors (fc1.weight [4, 2], fc1.bias [4],
        fc2.weight [4, 4], fc2.bias [4]; f32, PyTorch layout) and
        OUT_DIR/config.json.
    python3 make_model.py --expect '{"inputs": [[1, 1], [-2, 0.5]]}'
        prints the handler's expected output for that input, computed here
        in plain Python.

Stdlib only. The weights are designed by hand so the answer is known in
closed form: a 2-D point is classified by its quadrant (see README.md).
"""
import json
import math
import os
import struct
import sys

# Hidden units: relu(x), relu(-x), relu(y), relu(-y).
FC1_W = [[1, 0], [-1, 0], [0, 1], [0, -1]]
FC1_B = [0, 0, 0, 0]
# Class k's logit is S times the sum of the two hidden units of its quadrant:
# 0 = I (x>0, y>0), 1 = II (x<0, y>0), 2 = III (x<0, y<0), 3 = IV (x>0, y<0).
S = 4.0
FC2_W = [
    [S, 0, S, 0],
    [0, S, S, 0],
    [0, S, 0, S],
    [S, 0, 0, S],
]
FC2_B = [0, 0, 0, 0]
CLASS_NAMES = ["I", "II", "III", "IV"]


def tensors():
    return {
        "fc1.weight": ([4, 2], [v for row in FC1_W for v in row]),
        "fc1.bias": ([4], FC1_B),
        "fc2.weight": ([4, 4], [v for row in FC2_W for v in row]),
        "fc2.bias": ([4], FC2_B),
    }


def write_safetensors(path, named):
    """Safetensors: u64 LE header length, JSON header, then the raw data."""
    header, blobs, offset = {}, [], 0
    for name, (shape, values) in sorted(named.items()):
        blob = struct.pack("<%df" % len(values), *[float(v) for v in values])
        header[name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    # The format allows trailing spaces; padding to 8 bytes aligns the data.
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def forward(point):
    """The handler's forward pass for one point, in f64."""
    hidden = [max(0.0, sum(w * x for w, x in zip(row, point)) + b) for row, b in zip(FC1_W, FC1_B)]
    logits = [sum(w * h for w, h in zip(row, hidden)) + b for row, b in zip(FC2_W, FC2_B)]
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    probs = [e / total for e in exps]
    return probs.index(max(probs)), probs


def expect(input_json):
    points = json.loads(input_json)["inputs"]
    results = [forward(p) for p in points]
    return {"classes": [c for c, _ in results], "probs": [p for _, p in results]}


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--expect":
        print(json.dumps(expect(args[1])))
        return
    if len(args) != 1 or args[0].startswith("-"):
        sys.exit("usage: make_model.py OUT_DIR | make_model.py --expect INPUT_JSON")
    out = args[0]
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors())
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"inputs": 2, "hidden": 4, "classes": CLASS_NAMES}, f)


if __name__ == "__main__":
    main()
