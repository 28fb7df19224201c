"""PyTorch side of the GPU benchmark (see gpu_bench.rs): GEMM 4096^3 and
8192^3 in bf16 and f32 (no TF32, PyTorch's default for matmul) and
host-to-device bandwidth, timed like the Rust side (CUDA events around N
back-to-back products after warm-up, median of repetitions, random data).
Prints one JSON object per line: {"name": ..., "value": ..., "unit": ...}.

    python3 host/tensor/examples/gpu_bench_torch.py > torch.json
"""

import json
import statistics

import torch


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


def time_events(fn, reps, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) / iters)
    return statistics.median(per_call)


def gemm(size, dtype, name):
    a = torch.rand(size, size, device="cuda", dtype=torch.float32).mul_(2).sub_(1).to(dtype)
    b = torch.rand(size, size, device="cuda", dtype=torch.float32).mul_(2).sub_(1).to(dtype)
    if dtype == torch.float32:
        reps, iters = (3, 3) if size >= 8192 else (5, 10)
    else:
        reps, iters = (7, 20) if size >= 8192 else (7, 50)
    ms = time_events(lambda: torch.matmul(a, b), reps, iters)
    emit(f"gemm {size}^3 {name} torch", 2 * size**3 / (ms * 1e-3) / 1e12, "TFLOP/s")


def bandwidth():
    n = 1 << 30
    dst = torch.empty(n, dtype=torch.uint8, device="cuda")
    for pinned in (True, False):
        src = torch.randint(0, 255, (n,), dtype=torch.uint8).pin_memory() if pinned else torch.randint(0, 255, (n,), dtype=torch.uint8)
        ms = time_events(lambda: dst.copy_(src, non_blocking=pinned), 5, 1)
        kind = "pinned" if pinned else "pageable"
        emit(f"host-to-device 1 GiB {kind}", n / (ms * 1e-3) / 1e9, "GB/s")


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    import sys

    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}", file=sys.stderr)
    for size in (4096, 8192):
        for dtype, name in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
            gemm(size, dtype, name)
    bandwidth()


if __name__ == "__main__":
    main()
