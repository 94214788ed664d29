#!/usr/bin/env python3
"""Idle keep-alive clients: opens N client connections through the proxy, each sending one
request and then staying open, and reports the proxy's RSS and how fast another client is
served meanwhile (wrk, 10 connections) compared with before.

    core/benches/load/idle_conns.py --conns 10000 \
        --cmd 'target/release/interpose -q --mode reverse:http://127.0.0.1:18080 -p {port}'

Needs an upstream serving /small (`../shared/bench/upstream.sh start`) and wrk. The proxy
runs on cpu0, the clients on cpu1.
"""
import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, raise_fd_limit, rss_kib, start_proxy, stop  # noqa: E402

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def open_idle(port, n, batch=500):
    conns = []

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"unexpected answer: {head[:40]!r}")
        return reader, writer

    for start in range(0, n, batch):
        conns += await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
    return conns


def wrk(port, seconds=5):
    out = subprocess.run(["wrk", "-t1", "-c10", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}/small"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", out)
    return {"req_per_s": round(rps), "p99_ms": round(float(p99.group(1)) * scale, 2),
            "errors": bool(errors)}


async def measure(args):
    port = free_port()
    proc = start_proxy(args.cmd, port, cpus={0})
    os.sched_setaffinity(0, {1})
    try:
        time.sleep(0.3)
        base_rss = rss_kib(proc.pid)
        before = wrk(port)
        t0 = time.time()
        conns = await open_idle(port, args.conns)
        opened = time.time() - t0
        time.sleep(1)
        idle_rss = rss_kib(proc.pid)
        during = wrk(port)
        still_open = sum(1 for _, w in conns if not w.is_closing())
        result = {
            "idle_conns": args.conns,
            "seconds_to_open": round(opened, 1),
            "rss_start_mib": round(base_rss / 1024, 1),
            "rss_with_idle_mib": round(idle_rss / 1024, 1),
            "kib_per_idle_conn": round((idle_rss - base_rss) / args.conns, 1),
            "wrk_before": before,
            "wrk_with_idle": during,
            "idle_still_open": still_open,
        }
        print(json.dumps(result))
        for _, writer in conns:
            writer.close()
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmd", required=True, help="proxy command with {port}")
    ap.add_argument("--conns", type=int, default=10_000)
    args = ap.parse_args()
    raise_fd_limit()
    asyncio.run(measure(args))


if __name__ == "__main__":
    main()
