#!/usr/bin/env bash
# kafka-loadgen vs librdkafka's rdkafka_performance: same broker, same librdkafka settings,
# A/B interleaved, producer throughput ratio (loadgen / rdkafka_performance).
#
#   benches/loadgen-vs-rdkafka.sh                  # starts Tansu on loopback (in-memory storage)
#   BROKERS=127.0.0.1:9092 benches/loadgen-vs-rdkafka.sh
#
# Knobs (environment): ROUNDS (3), SECONDS_PER_RUN (5), SIZE (1024), LINGER (5),
# BATCH (1000000), ACKS (1), INFLIGHT (100000), PARTITIONS (3), CODEC (none).
#
# rdkafka_performance is built from the source shipped in the rdkafka-sys crate and linked
# against the static librdkafka.a that rdkafka-sys's build script produced for the release
# build of kafka-loadgen, so both sides run the very same librdkafka.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
SIZE=${SIZE:-1024}
LINGER=${LINGER:-5}
BATCH=${BATCH:-1000000}
ACKS=${ACKS:-1}
INFLIGHT=${INFLIGHT:-100000}
PARTITIONS=${PARTITIONS:-3}
CODEC=${CODEC:-none}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kafka-loadgen-bench
mkdir -p "$CACHE"
WORK=$(mktemp -d)
TANSU_PID=""
cleanup() {
    if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; wait "$TANSU_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building kafka-loadgen (release)" >&2
(cd "$ROOT" && cargo build --release -p kafka-loadgen >&2)
LOADGEN=$TARGET/release/kafka-loadgen

echo "== building rdkafka_performance against the same librdkafka" >&2
RDOUT=$(dirname "$(dirname "$(ls -t "$TARGET"/release/build/rdkafka-sys-*/out/src/librdkafka.a | head -1)")")
ZSTD_LIB=$(dirname "$(ls -t "$TARGET"/release/build/zstd-sys-*/out/libzstd.a | head -1)")
SRC=$(ls -d "$HOME"/.cargo/registry/src/*/rdkafka-sys-*/librdkafka | sort -V | tail -1)
PERF=$CACHE/rdkafka_performance
if [ ! -x "$PERF" ] || [ "$RDOUT/src/librdkafka.a" -nt "$PERF" ]; then
    cc -O2 -I"$RDOUT/src" -I"$SRC/src" "$SRC/examples/rdkafka_performance.c" -o "$PERF" \
        "$RDOUT/src/librdkafka.a" "$ZSTD_LIB/libzstd.a" -lcurl -lssl -lcrypto -lz -lm -ldl -lpthread -lrt
fi

if [ -z "${BROKERS:-}" ]; then
    TANSU=${TANSU_BIN:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    BROKERS=127.0.0.1:$PORT
    echo "== starting Tansu on $BROKERS (in-memory storage)" >&2
    RUST_LOG=warn "$TANSU" broker --listener-url "tcp://$BROKERS" --advertised-listener-url "tcp://$BROKERS" \
        --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
    TANSU_PID=$!
    sleep 2
fi

PROPS=(-X "linger.ms=$LINGER" -X "batch.size=$BATCH" -X "queue.buffering.max.messages=$INFLIGHT" -X "acks=$ACKS")

run_loadgen() {
    "$LOADGEN" sweep --brokers "$BROKERS" --no-progress --no-end-to-end --name bench \
        --linger-ms "$LINGER" --batch-size "$BATCH" --acks "$ACKS" --max-in-flight "$INFLIGHT" \
        --compression "$CODEC" --partitions "$PARTITIONS" --message-size "$SIZE" --idempotence false --producers 1 --rate max \
        --warmup 1s --duration "${SECONDS_PER_RUN}s" --cooldown 500ms --compressibility 1 --out "$WORK/loadgen-$1" >/dev/null
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["measurement"]["produced"]["msgs_per_sec"])' \
        "$WORK/loadgen-$1/results.json"
}

run_perf() {
    local topic=perf-$1-$$
    # A fresh topic with the same partition count, created through the load generator's
    # admin path would need a subcommand; let a throw-away loadgen step make one instead.
    "$LOADGEN" sweep --brokers "$BROKERS" --no-progress --no-end-to-end --name mk --partitions "$PARTITIONS" \
        --linger-ms 0 --batch-size 16384 --compression none --rate 100 --warmup 0s --duration 100ms --cooldown 0s \
        --out "$WORK/mk-$1" >/dev/null 2>&1 || true
    # rdkafka_performance: produce for about the same time at the loadgen's last rate.
    local count=$(( ${2%.*} * (SECONDS_PER_RUN + 1) ))
    [ "$count" -lt 10000 ] && count=10000
    "$PERF" -P -t "$topic" -b "$BROKERS" -s "$SIZE" -c "$count" -z "$CODEC" "${PROPS[@]}" \
        -X allow.auto.create.topics=true 2>&1 | grep "messages produced" | tail -1 \
        | sed -E 's/.* ([0-9]+) msgs\/s.*/\1/'
}

echo "== $ROUNDS rounds, A/B interleaved: size=$SIZE linger=$LINGER batch=$BATCH acks=$ACKS in-flight=$INFLIGHT partitions=$PARTITIONS codec=$CODEC" >&2
ratios=()
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        a=$(run_loadgen "$round"); b=$(run_perf "$round" "$a")
    else
        b=$(run_perf "$round" 100000); a=$(run_loadgen "$round")
    fi
    r=$(python3 -c "print(f'{float(\"$a\")/float(\"$b\"):.3f}')")
    ratios+=("$r")
    printf 'round %d: kafka-loadgen %.0f msgs/s, rdkafka_performance %s msgs/s, ratio %s\n' "$round" "$a" "$b" "$r"
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(f"throughput ratio kafka-loadgen / rdkafka_performance: median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}, {len(r)} rounds)")
PY
