#!/usr/bin/env python3
"""Send /run a 300 MB body the way ordinary Python clients do, and check
that each reads wasmpod's 413 (and its JSON error) instead of a broken pipe
or a reset.

    python3 serve_big_body.py BASE_URL ADMIN_KEY

- http.client (stdlib) sends the whole body before it reads the answer;
- requests (when installed: the test venv has it, through runpod) too;
- a client sending `Expect: 100-continue` gets the 413 before it sends any
  of the body.
"""
import http.client
import json
import socket
import sys
import urllib.parse

SIZE = 300 * 1000 * 1000
CHUNK = b"x" * (1 << 20)


def body():
    sent = 0
    while sent < SIZE:
        n = min(len(CHUNK), SIZE - sent)
        yield CHUNK[:n]
        sent += n


def check_413(who, status, text):
    assert status == 413, f"{who}: got {status}: {text[:200]}"
    error = json.loads(text)["error"]
    assert "10 MB" in error, f"{who}: {error}"
    print(f"{who}: 413 read: {error[:60]}...")


def with_http_client(host, port, key):
    conn = http.client.HTTPConnection(host, port, timeout=120)
    conn.putrequest("POST", "/v2/echo/run")
    conn.putheader("Authorization", f"Bearer {key}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(SIZE))
    conn.endheaders()
    for chunk in body():
        conn.send(chunk)
    resp = conn.getresponse()
    check_413("http.client", resp.status, resp.read().decode())
    conn.close()


def with_requests(base, key):
    try:
        import requests
    except ImportError:
        print("requests: not installed here, skipped")
        return
    data = b"".join(body())
    resp = requests.post(
        f"{base}/v2/echo/run",
        data=data,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=120,
    )
    check_413("requests", resp.status_code, resp.text)


def with_expect_continue(host, port, key):
    """Headers only, then wait: the answer comes before any body byte."""
    sock = socket.create_connection((host, port), timeout=30)
    head = (
        "POST /v2/echo/run HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {SIZE}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    sock.sendall(head.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, "the connection closed before an answer"
        data += more
    status_line = data.split(b"\r\n", 1)[0].decode()
    assert " 413 " in status_line, f"expect-continue: {status_line}"
    print(f"Expect: 100-continue: {status_line} before sending the body")
    sock.close()


def main():
    base, key = sys.argv[1], sys.argv[2]
    url = urllib.parse.urlparse(base)
    with_http_client(url.hostname, url.port, key)
    with_requests(base, key)
    with_expect_continue(url.hostname, url.port, key)
    print("all checks passed")


if __name__ == "__main__":
    main()
