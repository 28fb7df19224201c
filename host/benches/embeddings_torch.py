#!/usr/bin/env python3
"""PyTorch peer of the embeddings benchmark: all-MiniLM-L6-v2 through
sentence-transformers on the same device, batch 1 and batch 64, over the
sentences of tests/fixtures/minilm/reference.json (repeated to fill a batch).

    python3 host/benches/embeddings_torch.py MODEL_DIR [--device cuda] [--check OUTPUT.json]

Prints `torch batch B: S sentences/s (median of R runs, T ms per batch)` per
batch size, then `torch forward batch 64: ...`: the model's forward pass
alone (transformer, mean pooling, normalisation) on input tokenized
beforehand, the peer of the guest's batch-64 time (which includes its own
tokenizing). With --check, also compares the wasmpod guest's output (JSON
of the embeddings example for the reference sentences) with the embeddings
sentence-transformers computes on this device, and prints the largest
difference.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

REFERENCE = Path(__file__).resolve().parents[2] / "tests/fixtures/minilm/reference.json"


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--device", default="cuda")
    p.add_argument("--check")
    args = p.parse_args()
    sentences = [s["text"] for s in json.loads(REFERENCE.read_text())["sentences"]]
    model = SentenceTransformer(args.model_dir, device=args.device)
    model.eval()
    if args.check:
        out = json.loads(Path(args.check).read_text())
        out = out.get("output", out)
        got = torch.tensor(out["embeddings"], dtype=torch.float32)
        want = model.encode(sentences, convert_to_tensor=True, normalize_embeddings=True).float().cpu()
        print(f"guest vs sentence-transformers on {args.device}: max |diff| "
              f"{(got - want).abs().max().item():.3g} over {len(sentences)} sentences")
    for batch, reps in [(1, 50), (64, 20)]:
        items = (sentences * (batch // len(sentences) + 1))[:batch]
        with torch.inference_mode():
            for _ in range(3):
                model.encode(items, batch_size=batch, normalize_embeddings=True)
            sync(args.device)
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                model.encode(items, batch_size=batch, normalize_embeddings=True)
                sync(args.device)
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"torch batch {batch}: {batch / med:.1f} sentences/s "
              f"(median of {reps} runs, {med * 1e3:.2f} ms per batch)", flush=True)
    # The forward pass alone, on a batch tokenized beforehand (padded to its
    # longest sentence, as encode pads it).
    batch, reps = 64, 50
    items = (sentences * (batch // len(sentences) + 1))[:batch]
    features = {k: v.to(args.device) for k, v in model.tokenize(items).items()}
    with torch.inference_mode():
        for _ in range(5):
            model(features)
        sync(args.device)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            model(features)["sentence_embedding"]
            sync(args.device)
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    tokens = features["input_ids"].shape
    print(f"torch forward batch {batch}: {batch / med:.1f} sentences/s "
          f"(median of {reps} runs, {med * 1e3:.2f} ms per batch, input {tokens[0]}x{tokens[1]} pre-tokenized)",
          flush=True)


if __name__ == "__main__":
    main()
