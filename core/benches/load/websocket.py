"""WebSocket messages through the proxy: C connections each send a 100-byte text message to an
echo server and wait for it to come back, for D seconds. Run directly (the harness's own
ceiling), through the proxy relaying messages (`websocket=true`, the default) and through the
proxy splicing bytes (`websocket=false`). Reports round trips per second and the proxy's CPU
time per message (each round trip is two messages through it). The proxy runs on cpu0, this
script (client and echo server, one asyncio loop) on cpu1.

    cargo build --release -p interpose
    /opt/mitm-venv/bin/python core/benches/load/websocket.py [--conns 20] [--secs 5]

Needs `wsproto` (mitmproxy's environment has it).
"""
import argparse
import asyncio
import os
import sys
import time

import wsproto
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Request,
                            TextMessage)

sys.path.insert(0, os.path.dirname(__file__))
from common import free_port, start_proxy  # noqa: E402

BINARY = os.path.join(os.path.dirname(__file__), "../../../target/release/interpose")


async def serve_echo(reader, writer):
    try:
        await echo(reader, writer)
    except (asyncio.CancelledError, ConnectionError):
        pass  # the run ended with the connection open


async def echo(reader, writer):
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    while True:
        data = await reader.read(65536)
        if not data:
            break
        ws.receive_data(data)
        out = b""
        for event in ws.events():
            if isinstance(event, Request):
                out += ws.send(AcceptConnection())
            elif isinstance(event, (TextMessage, BytesMessage)):
                out += ws.send(event)
            elif isinstance(event, CloseConnection):
                out += ws.send(event.response())
        if out:
            writer.write(out)
            await writer.drain()
    writer.close()


async def client(port, deadline, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    writer.write(ws.send(Request(host="127.0.0.1", target="/echo")))
    payload = "x" * 100
    accepted = False
    while not accepted:
        ws.receive_data(await reader.read(65536))
        accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
    n = 0
    while time.monotonic() < deadline:
        writer.write(ws.send(TextMessage(payload)))
        got = False
        while not got:
            data = await reader.read(65536)
            if not data:
                raise SystemExit("connection closed")
            ws.receive_data(data)
            got = any(isinstance(e, TextMessage) for e in ws.events())
        n += 1
    counts.append(n)
    writer.close()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args, mode):
    server = await asyncio.start_server(serve_echo, "127.0.0.1", 0)
    echo_port = server.sockets[0].getsockname()[1]
    proxy = None
    port = echo_port
    if mode != "direct":
        port = free_port()
        cmd = (f"{BINARY} -q -p {{port}} --mode reverse:http://127.0.0.1:{echo_port} "
               f"--set websocket={'true' if mode == 'relay' else 'false'}")
        proxy = start_proxy(cmd, port, cpus={0})
    counts = []
    cpu0 = cpu_seconds(proxy.pid) if proxy else 0.0
    start = time.monotonic()
    deadline = start + args.secs
    await asyncio.gather(*(client(port, deadline, counts) for _ in range(args.conns)))
    took = time.monotonic() - start
    trips = sum(counts)
    line = f"{mode:7} {trips / took:9.0f} round trips/s"
    if proxy:
        cpu = cpu_seconds(proxy.pid) - cpu0
        line += f"  proxy CPU {cpu / took * 100:5.1f} %  {cpu / (2 * trips) * 1e6:5.1f} µs/message"
        proxy.terminate()
        proxy.wait()
    print(line, flush=True)
    server.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--secs", type=float, default=5)
    args = ap.parse_args()
    os.sched_setaffinity(0, {1})
    for mode in ("direct", "relay", "splice", "relay", "splice"):
        asyncio.run(run(args, mode))


if __name__ == "__main__":
    main()
