#!/usr/bin/env python3
"""Memory on one long keep-alive connection: sends N requests one after the other on a single
connection through the proxy and reports its RSS after the first 10,000 and at the end.

    core/benches/load/keepalive_rss.py --requests 1000000 \
        --cmd 'target/release/interpose -q --mode reverse:http://127.0.0.1:18080 -p {port}'

Needs an upstream serving /small (`../shared/bench/upstream.sh start`). The proxy runs on
cpu0, this client on cpu1.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import KeepAliveClient, free_port, rss_kib, start_proxy, stop  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmd", required=True, help="proxy command with {port}")
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--checkpoint", type=int, default=10_000)
    args = ap.parse_args()

    port = free_port()
    proc = start_proxy(args.cmd, port, cpus={0})
    os.sched_setaffinity(0, {1})
    try:
        client = KeepAliveClient(port)
        samples = []
        start = time.time()
        for i in range(1, args.requests + 1):
            status = client.get()
            if status != 200:
                raise SystemExit(f"request {i}: status {status}")
            if i == args.checkpoint or i % 100_000 == 0 or i == args.requests:
                samples.append({"requests": i, "rss_kib": rss_kib(proc.pid),
                                "seconds": round(time.time() - start, 1)})
                print(json.dumps(samples[-1]), flush=True)
        first = next(s for s in samples if s["requests"] == args.checkpoint)
        last = samples[-1]
        result = {
            "requests": args.requests,
            "req_per_s": round(args.requests / (time.time() - start)),
            "rss_after_checkpoint_mib": round(first["rss_kib"] / 1024, 1),
            "rss_end_mib": round(last["rss_kib"] / 1024, 1),
            "growth_mib": round((last["rss_kib"] - first["rss_kib"]) / 1024, 2),
            "peak_mib": round(rss_kib(proc.pid, "VmHWM") / 1024, 1),
        }
        print(json.dumps(result))
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
