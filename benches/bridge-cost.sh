#!/usr/bin/env bash
# What the bridge costs over direct Kafka (issue 8's measurement), in one interleaved sweep:
# direct librdkafka vs unary Publish vs BulkPublish through a bridge the tool spawns itself,
# at 100 B and 1 KiB, closed loop (saturation throughput) and open loop (p99 at a fixed rate),
# with the bridge's CPU (millicores per MB/s) and peak RSS from /proc.
#
#   benches/bridge-cost.sh                       # a fresh Tansu on loopback (in-memory storage)
#   BROKERS=127.0.0.1:9092 benches/bridge-cost.sh
#
# Knobs (environment): SIZES (100,1KiB), RATES (max,5000), PUBLISH (unary:100,bulk:100x4),
# LINGER (5), ACKS (all), PARTITIONS (3), DURATION (5s), OUT (bridge-cost-<time>).
set -euo pipefail

SIZES=${SIZES:-100,1KiB}
RATES=${RATES:-max,5000}
PUBLISH=${PUBLISH:-unary:100,bulk:100x4}
LINGER=${LINGER:-5}
ACKS=${ACKS:-all}
PARTITIONS=${PARTITIONS:-3}
DURATION=${DURATION:-5s}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/loadgen-results/bridge-cost-$(date +%Y%m%dT%H%M%S)}
TANSU_PID=""
cleanup() {
    if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; wait "$TANSU_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -p kafka-loadgen -p dapr-kafka-bridge)

if [ -z "${BROKERS:-}" ]; then
    TANSU=${TANSU_BIN:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    URL="tcp://127.0.0.1:$PORT"
    RUST_LOG=warn "$TANSU" broker --listener-url "$URL" --advertised-listener-url "$URL" \
        --storage-engine memory://tansu/ >/dev/null 2>&1 &
    TANSU_PID=$!
    BROKERS=127.0.0.1:$PORT
    sleep 2
fi

BRIDGE_BIN="$TARGET/release/kafka-pubsub-bridge" "$TARGET/release/kafka-loadgen" sweep \
    --brokers "$BROKERS" --spawn-bridge --target direct,component --publish "$PUBLISH" \
    --message-size "$SIZES" --rate "$RATES" --linger-ms "$LINGER" --compression none \
    --acks "$ACKS" --partitions "$PARTITIONS" --replication-factor 1 --min-insync-replicas 1 \
    --warmup 1s --duration "$DURATION" --cooldown 500ms --no-progress --out "$OUT"
