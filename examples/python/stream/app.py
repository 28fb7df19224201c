"""`stream`: streams `n` partial outputs `{"i": k}`, each followed by a
progress update, then returns `{"count": n}`. Shows `stream` and `progress`,
RunPod's generator handlers in wasmpod terms.

Input: `{"n": 3}`, optionally `"delay_ms": 100` between chunks.
"""

import time

import wasmpod_sdk as wasmpod


def _count(job_input, key, default=None):
    value = job_input.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


@wasmpod.handler
def handle(job_input):
    if not isinstance(job_input, dict) or "n" not in job_input:
        raise ValueError('expected {"n": <count>}')
    n = _count(job_input, "n")
    delay_ms = _count(job_input, "delay_ms", 0)
    for i in range(n):
        if wasmpod.cancelled():
            break
        wasmpod.stream({"i": i})
        wasmpod.progress({"done": i + 1, "total": n})
        if delay_ms:
            time.sleep(delay_ms / 1000)
    return {"count": n}
