#!/usr/bin/env bash
# Latency of ordinary flows while other flows of the same proxy are paused: wrk on /small
# through the release proxy with the `pauser` test fixture, first alone, then with N flows
# paused for 8 s (`x-pause-ms: 8000`) in flight.
#
#   cargo build --release -p interpose -p pauser
#   core/benches/load/paused_flows.sh [N=200]
set -u
cd "$(dirname "$0")/../../.."
N="${1:-200}"
B=../shared/bench
$B/upstream.sh start >/dev/null
target/release/interpose -q -p 18081 --mode reverse:http://127.0.0.1:18080 \
  --plugin target/release/libpauser.so >/dev/null 2>&1 &
proxy=$!
sleep 1
echo "== no paused flows"
wrk -t 1 -c 50 -d 6 --latency http://127.0.0.1:18081/small | grep -E "Requests/sec|50%|99%"
echo "== $N flows paused for 8 s"
clients=()
for _ in $(seq 1 "$N"); do
  curl -s -o /dev/null -H "x-pause-ms: 8000" http://127.0.0.1:18081/small &
  clients+=($!)
done
sleep 1
wrk -t 1 -c 50 -d 6 --latency http://127.0.0.1:18081/small | grep -E "Requests/sec|50%|99%"
wait "${clients[@]}"
echo "every paused flow was answered"
kill "$proxy"
wait "$proxy" 2>/dev/null
