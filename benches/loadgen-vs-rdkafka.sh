#!/usr/bin/env bash
# kafka-loadgen vs librdkafka's rdkafka_performance: same broker, same librdkafka settings,
# A/B interleaved, producer throughput ratio (loadgen / rdkafka_performance).
#
#   benches/loadgen-vs-rdkafka.sh                  # a fresh Tansu on loopback per run (in-memory storage)
#   BROKERS=127.0.0.1:9092 benches/loadgen-vs-rdkafka.sh
#
# Both sides produce MESSAGES messages into a fresh topic on a fresh broker and report
# delivered messages / time until the last delivery (in-memory Tansu slows down as it fills,
# so equal volumes matter more than equal durations).
#
# Two anchors, each round, in rotating order:
#   rdkafka_performance      its default: one buffer handed to librdkafka for every message
#                            without a copy (no per-message content, nothing measured per
#                            message); a ceiling no load generator that stamps messages reaches
#   rdkafka_performance -l   its latency mode: every message carries its own send time and is
#                            copied into librdkafka, and each delivery report's latency is
#                            taken; what kafka-loadgen does for every message (a stamp in the
#                            payload, rdkafka's copying produce, a latency per delivery)
#
# Knobs (environment): ROUNDS (5), MESSAGES (1000000), SIZE (1024), LINGER (5),
# BATCH (1000000), ACKS (1), INFLIGHT (100000), PARTITIONS (3), CODEC (none).
#
# rdkafka_performance is built by benches/build-rdkafka-performance.sh from the source shipped
# in the rdkafka-sys crate, linked against the static librdkafka.a (and the vendored OpenSSL,
# libcurl, zlib and zstd archives) that the release build of kafka-loadgen links, so both
# sides run the very same librdkafka. Its figure is messages delivered without error per
# second up to the last delivery report; a round where it delivered fewer than MESSAGES fails.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
MESSAGES=${MESSAGES:-1000000}
SIZE=${SIZE:-1024}
LINGER=${LINGER:-5}
BATCH=${BATCH:-1000000}
ACKS=${ACKS:-1}
INFLIGHT=${INFLIGHT:-100000}
PARTITIONS=${PARTITIONS:-3}
CODEC=${CODEC:-none}

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

# Without BROKERS, every run gets a fresh Tansu (in-memory storage keeps every message, so a
# long benchmark on one broker would grow without bound, and each run sees the same broker).
OWN_TANSU=${BROKERS:+no}
TANSU=${TANSU_BIN:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
fresh_broker() {
    [ "$OWN_TANSU" = no ] && return 0
    if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; wait "$TANSU_PID" 2>/dev/null || true; fi
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    BROKERS=127.0.0.1:$port
    RUST_LOG=warn "$TANSU" broker --listener-url "tcp://$BROKERS" --advertised-listener-url "tcp://$BROKERS" \
        --storage-engine memory://tansu/ >>"$WORK/tansu.log" 2>&1 &
    TANSU_PID=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "Tansu did not start; see $WORK/tansu.log" >&2
    exit 1
}

PROPS=(-X "linger.ms=$LINGER" -X "batch.size=$BATCH" -X "queue.buffering.max.messages=$INFLIGHT" -X "acks=$ACKS")

run_loadgen() {
    "$LOADGEN" sweep --brokers "$BROKERS" --no-progress --no-end-to-end --name bench \
        --linger-ms "$LINGER" --batch-size "$BATCH" --acks "$ACKS" --max-in-flight "$INFLIGHT" \
        --compression "$CODEC" --partitions "$PARTITIONS" --message-size "$SIZE" --idempotence false --producers 1 --rate max \
        --warmup 0s --messages "$MESSAGES" --cooldown 0s --compressibility 1 --out "$WORK/loadgen-$1" >/dev/null
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps"][0]["measurement"]["produced"]["msgs_per_sec"])' \
        "$WORK/loadgen-$1/results.json"
}

run_perf() { # $1: round; $2...: extra rdkafka_performance flags
    local topic=perf-$1-$$-${2:-plain}
    # A fresh topic with the same partition count, as kafka-loadgen makes for each step.
    "$LOADGEN" create-topic --brokers "$BROKERS" --partitions "$PARTITIONS" "$topic"
    # -u: the summary as a table; its last row is printed once the last delivery report is in.
    # dr_m/s = messages delivered without error / (last delivery report - first produce).
    "$PERF" -P "${@:2}" -t "$topic" -b "$BROKERS" -s "$SIZE" -c "$MESSAGES" -z "$CODEC" -u "${PROPS[@]}" 2>&1 \
        | awk -F'|' -v want="$MESSAGES" '/^\|/ && $2 ~ /[0-9]/ { dr = $6 + 0; rate = $7 + 0; err = $9 + 0 }
            END { if (dr != want || err != 0) { print "rdkafka_performance delivered " dr " of " want " (" err " failed)" > "/dev/stderr"; exit 1 }
                  print rate }'
}

echo "== $ROUNDS rounds, A/B interleaved: size=$SIZE linger=$LINGER batch=$BATCH acks=$ACKS in-flight=$INFLIGHT partitions=$PARTITIONS codec=$CODEC" >&2
ratios=()
stamped=()
for round in $(seq 1 "$ROUNDS"); do
    # Rotate who goes first: a fresh broker per run, but the machine drifts.
    case $((round % 3)) in
        1) fresh_broker; a=$(run_loadgen "$round"); fresh_broker; b=$(run_perf "$round"); fresh_broker; c=$(run_perf "$round" -l) ;;
        2) fresh_broker; b=$(run_perf "$round"); fresh_broker; c=$(run_perf "$round" -l); fresh_broker; a=$(run_loadgen "$round") ;;
        0) fresh_broker; c=$(run_perf "$round" -l); fresh_broker; a=$(run_loadgen "$round"); fresh_broker; b=$(run_perf "$round") ;;
    esac
    r=$(python3 -c "print(f'{float(\"$a\")/float(\"$b\"):.3f}')")
    s=$(python3 -c "print(f'{float(\"$a\")/float(\"$c\"):.3f}')")
    ratios+=("$r")
    stamped+=("$s")
    printf 'round %d: kafka-loadgen %.0f msgs/s, rdkafka_performance %s (ratio %s), rdkafka_performance -l %s (ratio %s)\n' \
        "$round" "$a" "$b" "$r" "$c" "$s"
done
python3 - "${#ratios[@]}" "${ratios[@]}" "${stamped[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
plain = [float(x) for x in sys.argv[2:2 + n]]
stamped = [float(x) for x in sys.argv[2 + n:]]
for name, r in (("rdkafka_performance (one unstamped buffer, zero-copy)", plain),
                ("rdkafka_performance -l (stamped, copied, latency per message)", stamped)):
    print(f"throughput ratio kafka-loadgen / {name}: median {statistics.median(r):.3f} "
          f"(min {min(r):.3f}, max {max(r):.3f}, {len(r)} rounds)")
PY
