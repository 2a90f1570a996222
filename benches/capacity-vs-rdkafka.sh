#!/usr/bin/env bash
# kafka-loadgen's maximum rate at a latency SLO next to rdkafka_performance's saturated rate,
# on the same broker, in one run (issue 7's benchmark).
#
#   benches/capacity-vs-rdkafka.sh                  # a fresh Tansu on loopback (in-memory storage)
#   BROKERS=127.0.0.1:9092 benches/capacity-vs-rdkafka.sh
#
# Order: rdkafka_performance (saturated, closed loop), then `kafka-loadgen capacity` (open-loop
# ramp + bisection + repeats at the SLO), then rdkafka_performance again, all against the one
# broker, so a broker that slows down as it fills shows up as a difference between the two
# saturated runs. Both sides use the same librdkafka and settings; the capacity search runs
# without its end-to-end consumer (producer side only, like rdkafka_performance -P).
#
# Knobs (environment): SLO (20ms), BUDGET (4m), MESSAGES (500000, per saturated run),
# SIZE (1024), LINGER (5), BATCH (1000000), ACKS (1), PARTITIONS (3), CODEC (none),
# PROBE (2s measured per probe).
set -euo pipefail

SLO=${SLO:-20ms}
BUDGET=${BUDGET:-4m}
MESSAGES=${MESSAGES:-500000}
SIZE=${SIZE:-1024}
LINGER=${LINGER:-5}
BATCH=${BATCH:-1000000}
ACKS=${ACKS:-1}
PARTITIONS=${PARTITIONS:-3}
CODEC=${CODEC:-none}
PROBE=${PROBE:-2s}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
TANSU_PID=""
cleanup() {
    if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; wait "$TANSU_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building kafka-loadgen (release) and rdkafka_performance against its librdkafka" >&2
PERF=$("$ROOT/benches/build-rdkafka-performance.sh" -p kafka-loadgen)
LOADGEN=$TARGET/release/kafka-loadgen

if [ -z "${BROKERS:-}" ]; then
    TANSU=${TANSU_BIN:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    BROKERS=127.0.0.1:$port
    RUST_LOG=warn "$TANSU" broker --listener-url "tcp://$BROKERS" --advertised-listener-url "tcp://$BROKERS" \
        --storage-engine memory://tansu/ >>"$WORK/tansu.log" 2>&1 &
    TANSU_PID=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
fi

saturated() {
    local topic=perf-$1-$$
    "$LOADGEN" create-topic --brokers "$BROKERS" --partitions "$PARTITIONS" "$topic"
    # -u: the summary as a table; its last row comes once the last delivery report is in.
    # dr_m/s = messages delivered without error / (last delivery report - first produce).
    "$PERF" -P -t "$topic" -b "$BROKERS" -s "$SIZE" -c "$MESSAGES" -z "$CODEC" -u \
        -X "linger.ms=$LINGER" -X "batch.size=$BATCH" -X "acks=$ACKS" -X queue.buffering.max.messages=100000 2>&1 \
        | awk -F'|' -v want="$MESSAGES" '/^\|/ && $2 ~ /[0-9]/ { dr = $6 + 0; rate = $7 + 0; err = $9 + 0 }
            END { if (dr != want || err != 0) { print "rdkafka_performance delivered " dr " of " want " (" err " failed)" > "/dev/stderr"; exit 1 }
                  print rate }'
}

echo "== rdkafka_performance, saturated (before)" >&2
before=$(saturated before)
echo "== kafka-loadgen capacity at publish p99 <= $SLO (budget $BUDGET)" >&2
"$LOADGEN" capacity --brokers "$BROKERS" --no-progress --no-end-to-end --name bench \
    --linger-ms "$LINGER" --batch-size "$BATCH" --acks "$ACKS" --compression "$CODEC" --partitions "$PARTITIONS" \
    --message-size "$SIZE" --producers 1 --replication-factor 1 --min-insync-replicas 1 \
    --warmup 1s --duration "$PROBE" --cooldown 500ms --slo-p99 "$SLO" --budget "$BUDGET" \
    --start-rate 5000 --out "$WORK/capacity" >&2
echo "== rdkafka_performance, saturated (after)" >&2
after=$(saturated after)
python3 - "$WORK/capacity/capacity.json" "$before" "$after" "$SLO" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
before, after, slo = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
cfg = c["configurations"][0]
rate = cfg["sustained_msgs_per_sec"] or 0.0
iv = cfg.get("interval_msgs_per_sec")
print(f"broker: {c['target']['description']}")
print(f"kafka-loadgen capacity: {rate:.0f} msgs/s sustained at publish p99 <= {slo}"
      + (f" (repeats 95% interval {iv[0]:.0f}-{iv[1]:.0f}), status {cfg['status']}" if iv else f", status {cfg['status']}"))
print(f"rdkafka_performance saturated: {before:.0f} msgs/s before, {after:.0f} msgs/s after")
if before > 0:
    print(f"max rate at SLO / saturated rate: {rate / ((before + after) / 2):.2f}")
PY
