"""OpenAI's own Python client (`openai` from PyPI) against the OpenAI routes
of a `wasmpod serve` endpoint running the `llm` example.

Usage: python serve_openai_client.py BASE_URL API_KEY ENDPOINT

Expects ENDPOINT to serve the tiny `llama` model of
tests/fixtures/llm/make_model.py. Exits non-zero on the first mismatch;
prints one line per check.
"""

import json
import sys
import time
import urllib.request

import httpx
import openai
from openai import OpenAI

BASE, KEY, EP = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=f"{BASE}/v2/{EP}/openai/v1", api_key=KEY, max_retries=0, timeout=120)
CHAT = [{"role": "user", "content": "Tell me about the fox."}]
GREEDY = {"temperature": 0, "extra_body": {"ignore_eos": True}}


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def status(job):
    req = urllib.request.Request(f"{BASE}/v2/{EP}/status/{job}", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def wait_status(job, want, limit=60):
    deadline = time.time() + limit
    s = status(job)
    while s["status"] != want and time.time() < deadline:
        time.sleep(0.05)
        s = status(job)
    return s


def raises(kind, fn):
    try:
        fn()
    except kind as e:
        return e
    except Exception as e:  # noqa: BLE001 - reported as the mismatch
        return f"raised {type(e).__name__} instead: {e}"
    return "did not raise"


models = client.models.list()
check("models lists the endpoint", [m.id for m in models.data] == [EP], models)

full = client.chat.completions.create(model=EP, messages=CHAT, max_tokens=8, **GREEDY)
choice = full.choices[0]
check("chat: one assistant message", choice.message.role == "assistant" and isinstance(choice.message.content, str), full)
check("chat: finish_reason length", choice.finish_reason == "length", choice.finish_reason)
check("chat: usage", full.usage.completion_tokens == 8 and full.usage.total_tokens == full.usage.prompt_tokens + 8, full.usage)
check("chat: the id is the job's", status(full.id)["status"] == "COMPLETED", full.id)

deltas, finish, usage, roles = [], None, None, []
for chunk in client.chat.completions.create(
    model=EP, messages=CHAT, max_tokens=8, stream=True, stream_options={"include_usage": True}, **GREEDY
):
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.role:
            roles.append(c.delta.role)
        if c.delta.content:
            deltas.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
check("chat stream: role first", roles == ["assistant"], roles)
check("chat stream: text equals the one-body answer", "".join(deltas) == choice.message.content, (deltas, choice.message.content))
check("chat stream: finish_reason", finish == "length", finish)
check("chat stream: usage chunk", usage is not None and usage.completion_tokens == 8, usage)

lp = client.chat.completions.create(model=EP, messages=CHAT, max_tokens=4, logprobs=True, top_logprobs=3, **GREEDY)
content = lp.choices[0].logprobs.content
check(
    "chat logprobs: per token, the chosen one most likely",
    len(content) == 4 and all(len(t.top_logprobs) == 3 and t.logprob == t.top_logprobs[0].logprob for t in content),
    content,
)

text = client.completions.create(model=EP, prompt="The quick brown fox", max_tokens=6, logprobs=2, **GREEDY)
c = text.choices[0]
check("completions: text and usage", isinstance(c.text, str) and text.usage.completion_tokens == 6, text)
check("completions: logprobs", len(c.logprobs.tokens) == 6 and len(c.logprobs.top_logprobs[0]) == 2, c.logprobs)
streamed = "".join(
    ch.choices[0].text
    for ch in client.completions.create(model=EP, prompt="The quick brown fox", max_tokens=6, stream=True, **GREEDY)
    if ch.choices
)
check("completions stream: text equals the one-body answer", streamed == c.text, (streamed, c.text))
default = client.completions.create(model=EP, prompt="a", temperature=0, extra_body={"ignore_eos": True})
check("completions: max_tokens defaults to 16", default.usage.completion_tokens == 16, default.usage)

seeded = [
    client.chat.completions.create(model=EP, messages=CHAT, max_tokens=8, temperature=1.2, top_p=0.9, seed=11,
                                   extra_body={"ignore_eos": True, "top_k": 40}).choices[0].message.content
    for _ in range(2)
]
check("seeded sampling repeats", seeded[0] == seeded[1], seeded)

e = raises(openai.NotFoundError, lambda: client.chat.completions.create(model="nope", messages=CHAT))
check("an unknown model is 404 model_not_found", isinstance(e, openai.NotFoundError) and e.code == "model_not_found", e)
e = raises(openai.BadRequestError, lambda: client.chat.completions.create(model=EP, messages=CHAT, n=2))
check("n=2 is 400 naming the parameter", isinstance(e, openai.BadRequestError) and e.param == "n", e)
e = raises(openai.BadRequestError, lambda: client.chat.completions.create(model=EP, messages=CHAT, max_tokens=100000))
check("too many tokens for the context: 400 from the handler", isinstance(e, openai.BadRequestError) and "context" in e.message, e)
e = raises(openai.BadRequestError, lambda: client.chat.completions.create(model=EP, messages=CHAT, max_tokens=100000, stream=True))
check("... also when streaming", isinstance(e, openai.BadRequestError) and "context" in e.message, e)
bad = OpenAI(base_url=f"{BASE}/v2/{EP}/openai/v1", api_key="wrong", max_retries=0)
e = raises(openai.AuthenticationError, lambda: bad.models.list())
check("a wrong key is 401 in OpenAI's error shape", isinstance(e, openai.AuthenticationError) and "API key" in e.message, e)

# A client that goes away cancels its job: stream, read a little, close.
stream = client.chat.completions.create(model=EP, messages=CHAT, max_tokens=2000, stream=True, **GREEDY)
it = iter(stream)
first = next(it)
job = first.id
for _ in range(3):
    next(it)
check("the streaming job runs", status(job)["status"] == "IN_PROGRESS", status(job))
stream.close()
s = wait_status(job, "CANCELLED")
check("closing the stream cancels the job", s["status"] == "CANCELLED", s)

# The same without streaming: the client gives up waiting. Its job is
# not listed anywhere the client can see, so look at the endpoint's counts:
# it must end without completing.
def counts():
    req = urllib.request.Request(f"{BASE}/v2/{EP}/health", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["jobs"]


before = counts()
impatient = OpenAI(base_url=f"{BASE}/v2/{EP}/openai/v1", api_key=KEY, max_retries=0, timeout=httpx.Timeout(0.6))
e = raises(openai.APITimeoutError, lambda: impatient.chat.completions.create(model=EP, messages=CHAT, max_tokens=2000, **GREEDY))
check("the impatient client timed out", isinstance(e, openai.APITimeoutError), e)
deadline = time.time() + 60
jobs = counts()
while (jobs["inProgress"] or jobs["inQueue"]) and time.time() < deadline:
    time.sleep(0.05)
    jobs = counts()
check(
    "a client that stops waiting cancels its job too",
    jobs["inProgress"] == 0 and jobs["completed"] == before["completed"] and jobs["failed"] == before["failed"],
    (before, jobs),
)

print("all checks passed", flush=True)
