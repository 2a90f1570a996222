#!/usr/bin/env bash
# The bridge next to its physical limits (issue 10), in one run: starts what it needs (a Tansu
# broker on loopback, the bridge in process and as a child process, a no-op gRPC server,
# librdkafka peers), measures every row interleaved ROUNDS times, and prints one table (the
# bridge's figure, its anchor, the ratio or the latency added) and then the memory table.
#
#   benches/bridge-vs-direct.sh                    # Tansu on a free loopback port
#   BROKERS=mock benches/bridge-vs-direct.sh       # the in-process mock cluster instead
#   ROUNDS=5 ROWS=2,4 benches/bridge-vs-direct.sh  # only the BulkPublish and latency rows
#
# Rows (see benches/benches/ratios.rs for each one's set-up):
#   0  ack→next with one message in flight vs a no-op PubSub server's stream ping-pong
#   1  100 concurrent Publish vs a no-op Publish handler
#   2  BulkPublish ×1000 ×8 vs librdkafka's rdkafka_performance (same broker, 100 B, linger
#      5 ms, acks all, idempotence), built here against the project's own librdkafka
#   3  PullMessages drain (a daprd acking one at a time) vs a librdkafka consumer, and the
#      same drain vs a no-op PubSub stream (what one gRPC stream carries: no target)
#      Rows 1 and 3 also print the bridge against 1 / (1/gRPC anchor + 1/Kafka anchor), per
#      round: what a component that paid both and did nothing else would reach (no target)
#   4  p50 and p99 publish latency added by the bridge at 10 k msg/s open loop, equal linger:
#      kafka-loadgen runs the same step straight to Kafka and through the bridge binary, then
#      the same calls to a no-op Publish handler (the gRPC floor: no component beside daprd
#      adds less); the table gives the floor and what the bridge adds beyond it
#   5  memory: the bridge binary's RSS under a sustained BulkPublish load (100 k msg/s)
#   6  memory: its RSS with a 1 M × 100 B backlog and a slow daprd (one ack per ms)
#
# Knobs (environment):
#   ROUNDS (3)            interleaved rounds of rows 0-4; medians are compared
#   ROWS (all)            comma-separated row numbers to run, e.g. ROWS=0,3
#   BROKERS               bootstrap servers of a broker to use, or `mock`; default: a fresh Tansu
#   SKIP_MEMORY=1         leave out rows 5 and 6 (about 100 s)
#   MEMORY_SECONDS (30)   length of row 5's load
#   BACKLOG_SECONDS (60)  how long row 6's slow daprd runs, from its first message
#   MEMORY_RATE (100000)  msg/s offered in row 5
#   BACKLOG (1000000)     messages in row 6's backlog
#   DRAIN_COUNT (20000)   messages in the backlog of rows 0 and 3
#   LATENCY_RATE (10000)  open-loop msg/s of row 4
#   LATENCY_SECONDS (10)  measured seconds of each target in each round of row 4
#   RDKAFKA_PERFORMANCE   an rdkafka_performance binary to use (default: built here; if that
#                         fails, row 2's anchor is librdkafka in the bench process)
#   TANSU_BIN             the tansu binary (default: tansu on PATH, ~/.cargo/bin)
#   RATIOS_NOOP_LOG       a tracing filter for the no-op server's own log on stderr, e.g.
#                         `h2::proto::connection=debug` (why it ended a connection)
#   PIN=1                 Tansu on the last CPU, everything else (the bench, the bridge, the
#                         peers) on the others: a busy client then cannot starve the broker,
#                         and both sides of a row get the same CPUs (needs 2 or more CPUs)
#
# For the load generator vs rdkafka_performance see benches/loadgen-vs-rdkafka.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
export PATH="$HOME/.cargo/bin:$PATH"
WORK=$(mktemp -d)
TANSU_PID=""
cleanup() {
    if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; wait "$TANSU_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$ROOT"

# The bridge binary (rows 4 to 6), kafka-loadgen (row 4) and rdkafka_performance (row 2),
# all on the same librdkafka; the build script runs the release build first.
echo "== building the bridge, kafka-loadgen and rdkafka_performance (release)" >&2
if [ -z "${RDKAFKA_PERFORMANCE:-}" ]; then
    if RDKAFKA_PERFORMANCE=$("$ROOT/benches/build-rdkafka-performance.sh" -p kafka-loadgen -p dapr-kafka-bridge); then
        export RDKAFKA_PERFORMANCE
    else
        echo "rdkafka_performance did not build: row 2's anchor is librdkafka in process" >&2
        unset RDKAFKA_PERFORMANCE
        cargo build --release -p kafka-loadgen -p dapr-kafka-bridge >&2
    fi
else
    export RDKAFKA_PERFORMANCE
    cargo build --release -p kafka-loadgen -p dapr-kafka-bridge >&2
fi
export BRIDGE_BIN=${BRIDGE_BIN:-$TARGET/release/kafka-pubsub-bridge} LOADGEN=$TARGET/release/kafka-loadgen

BROKER_CPU=() BENCH_CPU=()
if [ "${PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    last=$(($(nproc) - 1))
    BROKER_CPU=(taskset -c "$last") BENCH_CPU=(taskset -c "0-$((last - 1))")
fi

if [ "${BROKERS:-}" = mock ]; then
    unset BROKERS
elif [ -z "${BROKERS:-}" ]; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    RUST_LOG=warn "${BROKER_CPU[@]}" "${TANSU_BIN:-tansu}" broker --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
    TANSU_PID=$!
    for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
    export BROKERS="127.0.0.1:$PORT"
fi
echo "== started $(date -u +%FT%TZ), brokers ${BROKERS:-mock}, ${ROUNDS:-3} rounds${BENCH_CPU:+, pinned}" >&2
"${BENCH_CPU[@]}" cargo bench -p benches --bench ratios
