#!/usr/bin/env bash
# The bridge next to its physical limits (issue 10), in one run: starts what it needs (a Tansu
# broker on loopback, the bridge in process, a no-op gRPC server, librdkafka peers), measures
# every row interleaved ROUNDS times, and prints one table: the bridge's figure, its anchor,
# and the ratio.
#
#   benches/bridge-vs-direct.sh            # Tansu on a free loopback port
#   BROKERS=mock benches/bridge-vs-direct.sh   # the in-process mock cluster instead
#
# Rows (see benches/benches/ratios.rs): ack→next with one message in flight vs a no-op
# PubSub server's stream ping-pong; 100 concurrent Publish vs a no-op Publish handler;
# BulkPublish ×1000 ×8 vs librdkafka producing directly; PullMessages drain vs a librdkafka
# consumer. For the load generator vs rdkafka_performance see benches/loadgen-vs-rdkafka.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
TANSU_PID=""
cleanup() { if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

if [ "${BROKERS:-}" = mock ]; then
    unset BROKERS
elif [ -z "${BROKERS:-}" ]; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${TANSU_BIN:-tansu}" broker --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ >/dev/null 2>&1 &
    TANSU_PID=$!
    for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
    export BROKERS="127.0.0.1:$PORT"
fi
cd "$ROOT"
cargo bench -p benches --bench ratios
