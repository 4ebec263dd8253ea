#!/usr/bin/env python3
"""Writes the request-log fixtures of crates/baseline/testdata (see
README.md). Deterministic: re-running it rewrites the same bytes.

    python3 crates/baseline/testdata/make_fixtures.py
"""
import math
import os
import random
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
START = datetime(2026, 3, 2, 14, 0, 0, tzinfo=timezone.utc)
ENDPOINTS = [
    ("/api/v1/cart", 18.0, 0.35),
    ("/api/v1/cart/items", 24.0, 0.40),
    ("/api/v1/checkout", 60.0, 0.30),
    ("/api/v1/products", 12.0, 0.50),
]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "okhttp/4.12.0",
    "curl/8.5.0",
]


def requests(seed, n=600, error_rate=0.005, slow_share=0.0, slow_ms=0.0):
    """n requests over n/10 seconds, a few arriving out of order."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        path, median, sigma = rng.choice(ENDPOINTS)
        latency = median * math.exp(rng.gauss(0.0, sigma))
        if rng.random() < slow_share:
            latency += slow_ms * (0.5 + rng.random())
        status = 503 if rng.random() < error_rate else rng.choice([200] * 30 + [201, 404])
        at = START + timedelta(milliseconds=i * 100 - (rng.randrange(3000) if i % 17 == 0 else 0))
        out.append((at, path, status, latency))
    return out


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def write_jsonl(name, reqs, bad_lines=()):
    with open(os.path.join(HERE, name), "w") as f:
        for i, (at, path, status, latency) in enumerate(reqs):
            if i in dict(bad_lines):
                f.write(dict(bad_lines)[i] + "\n")
            q = "?sort=price" if i % 5 == 0 else ""
            f.write(
                '{"ts":"%s","service":"checkout","endpoint":"%s%s","method":"GET","status":%d,"latency_ms":%.3f}\n'
                % (rfc3339(at), path, q, status, latency)
            )


def write_combined(name, reqs, bad_lines=()):
    rng = random.Random(name)
    with open(os.path.join(HERE, name), "w") as f:
        for i, (at, path, status, latency) in enumerate(reqs):
            if i in dict(bad_lines):
                f.write(dict(bad_lines)[i] + "\n")
            ip = "198.51.100.%d" % rng.randrange(1, 255)
            t = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
            method = "POST" if path.endswith("checkout") else "GET"
            f.write(
                '%s - - [%s] "%s %s HTTP/1.1" %d %d "https://shop.example.com/" "%s" %.3f\n'
                % (ip, t, method, path, status, rng.randrange(200, 9000), rng.choice(AGENTS), latency / 1000.0)
            )


def main():
    os.makedirs(os.path.join(HERE, "gate"), exist_ok=True)
    os.makedirs(os.path.join(HERE, "logs"), exist_ok=True)
    bad = [
        (41, '{"ts":"2026-03-02T14:00:04.100Z","service":"checkout","endpoint":"/api/v1/cart","status":200,"latency_ms":'),
        (300, '{"ts":"2026-03-02T14:00:30.000Z","service":"checkout","endpoint":"/api/v1/cart","status":200,"latency_ms":"slow"}'),
    ]
    write_jsonl("gate/baseline.jsonl", requests(1), bad)
    # The same service again: no change.
    write_jsonl("gate/candidate_same.jsonl", requests(2))
    # A slow dependency on 2% of requests: the median barely moves, p99 does.
    write_jsonl("gate/candidate_slow_tail.jsonl", requests(3, slow_share=0.02, slow_ms=400.0))
    # A bad deploy answering 503 to one request in twenty.
    write_jsonl("gate/candidate_errors.jsonl", requests(4, error_rate=0.05))
    write_combined(
        "logs/access.log",
        requests(5, n=300),
        [(10, '198.51.100.7 - - [02/Mar/2026:14:00:01 +0000] "GET /api/v1/cart HTTP/1.1" 200 512 "-" "curl/8.5.0"'),
         (200, '198.51.100.9 - - [02/Mar/2026:14:00:20 +0000] "\\x16\\x03\\x01\\x02\\x00\\x01\\x00" 400 157 "-" "-" 0.001'),
         (250, 'garbage that is not a log line')],
    )
    write_combined("logs/access_candidate.log", requests(6, n=600, slow_share=0.02, slow_ms=400.0))


if __name__ == "__main__":
    main()
