#!/usr/bin/env python3
"""PyTorch peer of decode_bench.rs: one decode step of a Llama-3.2-1B-shaped
model (16 layers, hidden 2048, 32 query / 8 KV heads of 64, intermediate
8192, vocab 128256, tied embeddings, bf16, random weights) written the way
gpt-fast does it: a static KV cache, rotary tables indexed by position,
SDPA over the whole cache with a mask, and the step captured in a CUDA
graph. The cache holds `--context` positions before the timed steps.

    python3 host/tensor/examples/decode_bench_torch.py [--steps 256] [--context 512] > torch_decode.json

Prints JSON: milliseconds per step eager and replayed as a CUDA graph
(median of repetitions), device-to-device copy bandwidth, weight bytes.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

LAYERS, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTER, VOCAB = 16, 2048, 32, 8, 64, 8192, 128256
THETA, EPS = 500000.0, 1e-5


def rope_tables(capacity, device):
    # Llama 3's scaled frequencies, as transformers computes them.
    inv = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.int64).float() / HEAD_DIM))
    factor, low, high, old = 32.0, 1.0, 4.0, 8192
    wavelen = 2 * torch.pi / inv
    scaled = torch.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old / high) * ~(wavelen > old / low)
    inv = torch.where(medium, smoothed, scaled)
    freqs = torch.outer(torch.arange(capacity).float(), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(device, torch.bfloat16), emb.sin().to(device, torch.bfloat16)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class Model:
    def __init__(self, capacity, device):
        g = torch.Generator(device=device).manual_seed(0)

        def w(*shape):
            return (torch.rand(*shape, generator=g, device=device, dtype=torch.float32) * 0.04 - 0.02).to(torch.bfloat16)

        self.embed = w(VOCAB, HIDDEN)
        self.layers = []
        for _ in range(LAYERS):
            self.layers.append(dict(
                norm1=torch.ones(HIDDEN, device=device, dtype=torch.bfloat16),
                wqkv=w((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN),
                wo=w(HIDDEN, HEADS * HEAD_DIM),
                norm2=torch.ones(HIDDEN, device=device, dtype=torch.bfloat16),
                w13=w(2 * INTER, HIDDEN),
                w2=w(HIDDEN, INTER),
                kc=torch.zeros(1, KV_HEADS, capacity, HEAD_DIM, device=device, dtype=torch.bfloat16),
                vc=torch.zeros(1, KV_HEADS, capacity, HEAD_DIM, device=device, dtype=torch.bfloat16),
            ))
        self.norm = torch.ones(HIDDEN, device=device, dtype=torch.bfloat16)
        self.cos, self.sin = rope_tables(capacity, device)
        self.capacity = capacity
        self.weight_bytes = sum(t.numel() * t.element_size() for t in
                                [self.embed, self.norm] + [v for l in self.layers for k, v in l.items() if k not in ("kc", "vc")])

    def step(self, token, pos):
        """token [1, 1] int64, pos [1] int64 -> next token [1, 1] (greedy)."""
        x = F.embedding(token, self.embed)
        cos, sin = self.cos[pos].view(1, 1, 1, HEAD_DIM), self.sin[pos].view(1, 1, 1, HEAD_DIM)
        mask = (torch.arange(self.capacity, device=pos.device) <= pos).view(1, 1, 1, -1)
        for l in self.layers:
            h = F.rms_norm(x, (HIDDEN,), l["norm1"], EPS)
            q, k, v = F.linear(h, l["wqkv"]).split([HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], dim=-1)
            q = q.view(1, 1, HEADS, HEAD_DIM).transpose(1, 2)
            k = k.view(1, 1, KV_HEADS, HEAD_DIM).transpose(1, 2)
            v = v.view(1, 1, KV_HEADS, HEAD_DIM).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            l["kc"].index_copy_(2, pos, k)
            l["vc"].index_copy_(2, pos, v)
            a = F.scaled_dot_product_attention(q, l["kc"], l["vc"], attn_mask=mask, enable_gqa=True)
            x = x + F.linear(a.transpose(1, 2).reshape(1, 1, HIDDEN), l["wo"])
            h = F.rms_norm(x, (HIDDEN,), l["norm2"], EPS)
            g, u = F.linear(h, l["w13"]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(g) * u, l["w2"])
        x = F.rms_norm(x, (HIDDEN,), self.norm, EPS)
        logits = F.linear(x, self.embed)
        return logits.argmax(-1)


def time_steps(run, steps, reps):
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        run(steps)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / steps * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    dev = torch.device("cuda")
    capacity = args.context + args.steps
    model = Model(capacity, dev)
    for l in model.layers:
        l["kc"][:, :, : args.context].normal_(0, 1)
        l["vc"][:, :, : args.context].normal_(0, 1)
    token = torch.zeros(1, 1, dtype=torch.int64, device=dev)
    pos = torch.tensor([args.context], dtype=torch.int64, device=dev)

    def eager(steps):
        pos.fill_(args.context)
        for _ in range(steps):
            token.copy_(model.step(token, pos))
            pos.add_(1)

    with torch.inference_mode():
        eager(4)
        eager_ms = time_steps(eager, args.steps, args.reps)
        pos.fill_(args.context)  # the timed steps left pos at the end of the cache
        # Capture one step (gpt-fast's "reduce-overhead" idea by hand).
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                out = model.step(token, pos)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = model.step(token, pos)
            token.copy_(out)
            pos.add_(1)

        def replay(steps):
            pos.fill_(args.context)
            for _ in range(steps):
                graph.replay()

        replay(4)
        graph_ms = time_steps(replay, args.steps, args.reps)
        # Device-to-device bandwidth: copy 1 GiB (read + write = 2 GiB moved).
        a = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
        b = torch.empty_like(a)
        b.copy_(a)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(10):
            b.copy_(a)
        torch.cuda.synchronize()
        d2d = 2 * (1 << 30) * 10 / (time.perf_counter() - t) / 1e9
    print(json.dumps({
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "steps": args.steps,
        "context": args.context,
        "eager_ms": eager_ms,
        "graph_ms": graph_ms,
        "d2d_gb_per_s": d2d,
        "weight_bytes": model.weight_bytes,
    }))


if __name__ == "__main__":
    main()
