"""Prints the flows of a mitmproxy flow file as a JSON list, read with mitmproxy's own
FlowReader: for Interpose's tests of the files it writes.

Usage: python flows_to_json.py FILE
"""

import base64
import json
import sys

from mitmproxy import http, io


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def headers(h):
    return [[k.decode("utf-8", "surrogateescape"), b64(v)] for k, v in h.fields]


def conn(c):
    if c is None:
        return None
    return {
        "id": c.id,
        "peername": list(c.peername[:2]) if c.peername else None,
        "sockname": list(c.sockname[:2]) if c.sockname else None,
        "transport_protocol": c.transport_protocol,
        "error": c.error,
        "tls": c.tls,
        "certificates": [b64(cert.to_pem()) for cert in c.certificate_list],
        "alpn": b64(c.alpn),
        "alpn_offers": [b64(a) for a in c.alpn_offers],
        "cipher": c.cipher,
        "cipher_list": list(c.cipher_list),
        "tls_version": c.tls_version,
        "sni": c.sni,
        "timestamp_start": c.timestamp_start,
        "timestamp_end": c.timestamp_end,
        "timestamp_tls_setup": c.timestamp_tls_setup,
    }


def message(m):
    return {
        "http_version": m.http_version,
        "headers": headers(m.headers),
        "content": b64(m.raw_content),
        "trailers": None if m.trailers is None else headers(m.trailers),
        "timestamp_start": m.timestamp_start,
        "timestamp_end": m.timestamp_end,
    }


def flow_json(f):
    assert isinstance(f, http.HTTPFlow), type(f)
    req = message(f.request)
    req.update(
        method=f.request.method,
        url=f.request.url,
        scheme=f.request.scheme,
        host=f.request.host,
        port=f.request.port,
        path=f.request.path,
        authority=f.request.authority,
    )
    resp = None
    if f.response is not None:
        resp = message(f.response)
        resp.update(status_code=f.response.status_code, reason=f.response.reason)
    client = conn(f.client_conn)
    client["proxy_mode"] = f.client_conn.proxy_mode.full_spec
    client["mitmcert"] = b64(f.client_conn.mitmcert.to_pem()) if f.client_conn.mitmcert else None
    server = conn(f.server_conn)
    server["address"] = list(f.server_conn.address) if f.server_conn.address else None
    server["timestamp_tcp_setup"] = f.server_conn.timestamp_tcp_setup
    server["via"] = (
        [f.server_conn.via[0], list(f.server_conn.via[1])] if f.server_conn.via else None
    )
    ws = None
    if f.websocket is not None:
        ws = {
            "messages": [
                [int(m.type), m.from_client, b64(m.content), m.timestamp, m.dropped, m.injected]
                for m in f.websocket.messages
            ],
            "closed_by_client": f.websocket.closed_by_client,
            "close_code": f.websocket.close_code,
            "close_reason": f.websocket.close_reason,
            "timestamp_end": f.websocket.timestamp_end,
        }
    return {
        "id": f.id,
        "request": req,
        "response": resp,
        "error": None if f.error is None else {"msg": f.error.msg, "timestamp": f.error.timestamp},
        "client_conn": client,
        "server_conn": server,
        "websocket": ws,
        "intercepted": f.intercepted,
        "is_replay": f.is_replay,
        "marked": f.marked,
        "comment": f.comment,
        "metadata": {str(k): str(v) for k, v in f.metadata.items()},
        "timestamp_created": f.timestamp_created,
    }


def main():
    with open(sys.argv[1], "rb") as fo:
        flows = [flow_json(f) for f in io.FlowReader(fo).stream()]
    json.dump(flows, sys.stdout)


if __name__ == "__main__":
    main()
