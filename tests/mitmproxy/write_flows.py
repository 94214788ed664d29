"""Writes a flow file with mitmproxy's own FlowWriter from mitmproxy.test.tflow flows, for
Interpose's reader tests: a flow with a response, one with an error, a WebSocket flow and an
HTTPS flow with TLS details on both connections. Prints the flows as flows_to_json.py does.

Usage: python write_flows.py FILE
"""

import json
import sys

from mitmproxy import io
from mitmproxy.test import tflow, tutils

import flows_to_json


def flows():
    with_response = tflow.tflow(resp=True)
    with_response.comment = "with response"
    with_response.marked = ":star:"

    with_error = tflow.tflow(err=True)

    websocket = tflow.twebsocketflow()

    https = tflow.tflow(resp=True)
    https.request.scheme = "https"
    https.request.port = 443
    https.request.host = "example.com"
    https.request.headers["host"] = "example.com"
    https.request.http_version = "HTTP/2.0"
    https.response.http_version = "HTTP/2.0"
    https.response.reason = ""
    https.request.trailers = tutils.treq().headers.copy()
    https.client_conn.tls = True
    https.client_conn.sni = "example.com"
    https.client_conn.alpn = b"h2"
    https.client_conn.alpn_offers = [b"h2", b"http/1.1"]
    https.client_conn.tls_version = "TLSv1.3"
    https.client_conn.cipher = "TLS_AES_256_GCM_SHA384"
    https.client_conn.peername = ("::1", 50000)
    https.server_conn.tls = True
    https.server_conn.peername = ("93.184.216.34", 443)
    https.server_conn.address = ("example.com", 443)
    https.server_conn.sni = "example.com"
    https.server_conn.tls_version = "TLSv1.3"
    https.server_conn.via = ("http", ("proxy.internal", 3128))
    https.metadata["note"] = "https"
    return [with_response, with_error, websocket, https]


def main():
    all_flows = flows()
    with open(sys.argv[1], "wb") as fo:
        writer = io.FlowWriter(fo)
        for f in all_flows:
            writer.add(f)
    json.dump([flows_to_json.flow_json(f) for f in all_flows], sys.stdout)


if __name__ == "__main__":
    main()
