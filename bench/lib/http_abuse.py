#!/usr/bin/env python3
"""bench/lib/http_abuse.py — abuse a health port, then check that a probe still answers fast.

    http_abuse.py PORT [--host 127.0.0.1] [--requests 2000] [--stalled 300] [--hold 6] [--path /internal/alive]

Standard library only (and bench/lib/common.py beside it); loopback only (the host must be a 127.x address or localhost).

1. REQUESTS connections, 64 at a time, each sending random bytes and then half-closing (so a
   server waiting for the end of a request sees EOF instead of waiting out its read timeout):
   a third pure random bytes, a third random bytes ended by a blank line, a third a request line
   with a random path and random header bytes. Each answer (status line) or silent close is counted.
2. STALLED connections opened at once and held for HOLD seconds: half send nothing, half send an
   unfinished request (request line and one header, never the blank line: slowloris). Meanwhile
   PATH is probed every 0.5 s (informational: a server with a connection limit may turn probes
   away while the limit is taken). Then every stalled connection is closed.
3. The verdict: PATH probed on a fresh connection must answer 200 within 100 ms (also 10 more
   probes, reported).

Prints a JSON summary on stdout, a readable one on stderr; exits 0 if the verdict holds, 1 if not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from common import http_get  # bench/lib/common.py, beside this file (standard library only)

monotonic = time.monotonic


def probe(host: str, port: int, path: str, timeout: float = 1.0) -> tuple[int, float]:
    return http_get(port, path, timeout=timeout, host=host)


def random_request(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    size = rng.choice([1, 16, 200, 1500, 4096, 12000, 40000])
    junk = os.urandom(size)
    if kind == 0:
        return junk
    if kind == 1:
        return junk + b"\r\n\r\n"
    return b"GET /" + junk[:200].hex().encode() + b" HTTP/1.1\r\n" + junk + b"\r\n\r\n"


def one_garbage(host: str, port: int, payload: bytes) -> str:
    try:
        with socket.create_connection((host, port), timeout=6) as s:
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may close while we still write: that is an answer too
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                if len(data) > 65536:
                    break
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return m.group(1).decode() if m else "closed"
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return f"error:{e.errno}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--stalled", type=int, default=300)
    ap.add_argument("--hold", type=float, default=6.0)
    ap.add_argument("--path", default="/internal/alive")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not (a.host == "localhost" or a.host.startswith("127.")):
        sys.exit("http_abuse.py: loopback addresses only")
    rng = random.Random(a.seed)
    summary: dict = {}

    # 1. random bytes
    t0 = monotonic()
    payloads = [random_request(rng) for _ in range(a.requests)]
    with ThreadPoolExecutor(64) as pool:
        outcomes = list(pool.map(lambda p: one_garbage(a.host, a.port, p), payloads))
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    summary["garbage"] = {"requests": a.requests, "seconds": round(monotonic() - t0, 2), "outcomes": counts}
    summary["after_garbage_probe"] = probe(a.host, a.port, a.path)

    # 2. stalled connections
    socks: list[socket.socket] = []
    refused = 0
    for i in range(a.stalled):
        try:
            s = socket.create_connection((a.host, a.port), timeout=2)
            if i % 2:
                s.sendall(f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\n".encode())
            socks.append(s)
        except OSError:
            refused += 1
    during = []
    t_hold = monotonic()
    while monotonic() - t_hold < a.hold:
        during.append(probe(a.host, a.port, a.path, timeout=1.0))
        time.sleep(0.5)
    closed_by_server = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(65536) == b"":
                closed_by_server += 1
        except BlockingIOError:
            pass
        except OSError:
            closed_by_server += 1
        s.close()
    summary["stalled"] = {
        "opened": len(socks), "refused": refused, "held_s": a.hold, "closed_by_server_during_hold": closed_by_server,
        "probes_during": [{"status": st, "ms": round(sec * 1000, 1)} for st, sec in during],
    }

    # 3. verdict
    time.sleep(0.2)
    first = probe(a.host, a.port, a.path)
    more = [probe(a.host, a.port, a.path) for _ in range(10)]
    summary["probe_after"] = {"status": first[0], "ms": round(first[1] * 1000, 2),
                              "next10_max_ms": round(max(m[1] for m in more) * 1000, 2),
                              "next10_statuses": sorted({m[0] for m in more})}
    ok = first[0] == 200 and first[1] < 0.1 and all(m[0] == 200 and m[1] < 0.1 for m in more)
    summary["ok"] = ok
    print(json.dumps(summary))
    g = summary["garbage"]
    print(f"http_abuse: {g['requests']} random-byte requests in {g['seconds']} s: {g['outcomes']}", file=sys.stderr)
    st = summary["stalled"]
    answered = sum(1 for p in during if p[0] == 200)
    print(f"http_abuse: {st['opened']} stalled connections held {a.hold} s ({st['refused']} refused at connect, "
          f"{st['closed_by_server_during_hold']} closed by the server meanwhile); probes meanwhile: "
          f"{answered}/{len(during)} answered 200", file=sys.stderr)
    pa = summary["probe_after"]
    print(f"http_abuse: probe after: {pa['status']} in {pa['ms']} ms (next 10: max {pa['next10_max_ms']} ms, "
          f"statuses {pa['next10_statuses']}): {'OK' if ok else 'FAILED'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
