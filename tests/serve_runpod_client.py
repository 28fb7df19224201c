"""RunPod's own Python client (`runpod` from PyPI) against `wasmpod serve`.

Usage: python serve_runpod_client.py BASE_URL API_KEY

Expects endpoints `echo` (example echo), `stream` (example stream), `sleep`
(example sleep, one worker) and `paused` (max_workers 0) to exist. Exits
non-zero on the first mismatch; prints one line per check.
"""

import asyncio
import sys
import time

import runpod


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def sync_client():
    echo = runpod.Endpoint("echo")
    out = echo.run_sync({"input": {"hello": "runpod"}}, timeout=60)
    check("run_sync returns the output", out == {"hello": "runpod"}, out)

    job = echo.run({"input": {"n": 1}})
    out = job.output(timeout=60)
    check("run + output", out == {"n": 1}, out)
    check("status after completion", job.status() == "COMPLETED", job.status())

    fresh = runpod.Endpoint("echo").run({"input": {"n": 2}})
    deadline = time.time() + 60
    status = fresh.status()
    while status not in ("COMPLETED", "FAILED") and time.time() < deadline:
        time.sleep(0.1)
        status = fresh.status()
    check("status polls to COMPLETED", status == "COMPLETED", status)

    stream = runpod.Endpoint("stream")
    job = stream.run({"input": {"n": 5, "delay_ms": 200}})
    chunks = list(job.stream())
    check("stream yields every chunk in order", chunks == [{"i": i} for i in range(5)], chunks)
    check("stream job output", job.output(timeout=60) == {"count": 5}, job.output())

    sleeper = runpod.Endpoint("sleep")
    job = sleeper.run({"input": {"ms": 30000}})
    deadline = time.time() + 60
    while job.status() != "IN_PROGRESS" and time.time() < deadline:
        time.sleep(0.1)
    res = job.cancel()
    check("cancel a running job", res.get("status") == "CANCELLED", res)
    check("cancelled job's status", runpod.Endpoint("sleep").run({"input": {"ms": 1}}).output(timeout=60) == {"slept_ms": 1})

    health = echo.health()
    check(
        "health has jobs and workers",
        "jobs" in health and "workers" in health and health["jobs"]["completed"] >= 3,
        health,
    )

    paused = runpod.Endpoint("paused")
    for _ in range(3):
        paused.run({"input": {"ms": 1}})
    res = paused.purge_queue()
    check("purge_queue", res == {"removed": 3, "status": "completed"}, res)


async def async_client():
    from runpod import AsyncioEndpoint
    from runpod.http_client import ClientSession

    async with ClientSession() as session:
        echo = AsyncioEndpoint("echo", session)
        job = await echo.run({"async": True})
        out = await job.output(timeout=60)
        check("asyncio run + output", out == {"async": True}, out)
        check("asyncio status", await job.status() == "COMPLETED")
        stream = AsyncioEndpoint("stream", session)
        job = await stream.run({"n": 3})
        chunks = [c async for c in job.stream()]
        check("asyncio stream", chunks == [{"i": i} for i in range(3)], chunks)
        sleeper = AsyncioEndpoint("sleep", session)
        job = await sleeper.run({"ms": 30000})
        res = await job.cancel()
        check("asyncio cancel", res.get("status") == "CANCELLED", res)
        health = await echo.health()
        check("asyncio health", "workers" in health, health)
        res = await AsyncioEndpoint("paused", session).purge_queue()
        check("asyncio purge_queue", res.get("status") == "completed", res)


def main():
    base, key = sys.argv[1], sys.argv[2]
    runpod.api_key = key
    runpod.endpoint_url_base = base.rstrip("/") + "/v2"
    sync_client()
    asyncio.run(async_client())
    print("runpod client: all checks passed", flush=True)


if __name__ == "__main__":
    main()
