#!/bin/sh
# Installs mitmproxy 11.0.2 for the interop tests (tests/e2e/mitmproxy.rs) into
# $INTERPOSE_MITMPROXY_VENV (default: <repo>/target/mitmproxy-venv). Does nothing if it is
# already there. The tests then use $INTERPOSE_MITMPROXY_PYTHON or <venv>/bin/python.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${INTERPOSE_MITMPROXY_VENV:-$repo/target/mitmproxy-venv}
if [ -x "$venv/bin/mitmdump" ]; then
    echo "mitmproxy is installed in $venv"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q mitmproxy==11.0.2
echo "mitmproxy installed in $venv"
