#!/usr/bin/env bash
# Builds librdkafka's rdkafka_performance against the very librdkafka the project links, and
# prints the binary's path on stdout (everything else goes to stderr).
#
#   PERF=$(benches/build-rdkafka-performance.sh)                         # after building kafka-loadgen
#   PERF=$(benches/build-rdkafka-performance.sh -p dapr-kafka-bridge)    # after building the bridge
#
# The arguments pick the packages of a `cargo build --release` that this script runs first
# (default `-p kafka-loadgen`); its build-script messages say which rdkafka-sys, openssl-sys,
# curl-sys, libz-sys and zstd-sys outputs those packages link (a target directory holds
# several of each, one per feature set, so "the newest" is not reliably the right one).
# rdkafka is built with `ssl-vendored`, `curl-static`, `libz-static` and `zstd`: OpenSSL,
# libcurl, zlib and zstd are static archives in those outputs, and the binary needs only
# glibc. A library whose archive is absent (another feature set) is linked from the system.
#
# The C source is the one shipped in the rdkafka-sys crate (examples/rdkafka_performance.c),
# so both sides of a comparison run the same librdkafka version with the same build options.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kafka-loadgen-bench
mkdir -p "$CACHE"
[ $# -gt 0 ] || set -- -p kafka-loadgen

# One line per build script: "<crate name> <version> <out_dir>".
outs=$(cd "$ROOT" && cargo build --release "$@" --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "build-script-executed":
        pid = m["package_id"]
        if "#" in pid:  # registry+https://...#rdkafka-sys@4.10.0+2.12.1
            name, _, version = pid.split("#")[-1].partition("@")
        else:  # rdkafka-sys 4.10.0+2.12.1 (registry+https://...)
            name, version = pid.split(" ")[:2]
        print(name, version or "-", m["out_dir"])
')
out_of() { awk -v n="$1" '$1 == n { print $3; exit }' <<<"$outs"; }

RDOUT=$(out_of rdkafka-sys)
if [ -z "$RDOUT" ] || [ ! -f "$RDOUT/src/librdkafka.a" ]; then
    echo "no librdkafka.a among the build outputs of cargo build --release $*" >&2
    exit 1
fi
VERSION=$(awk '$1 == "rdkafka-sys" { print $2; exit }' <<<"$outs")
SRC=$(ls -d "$HOME"/.cargo/registry/src/*/"rdkafka-sys-$VERSION"/librdkafka | head -1)
libs=("$RDOUT/src/librdkafka.a")
archive() { # crate, path inside its out_dir, system fallback
    local dir
    dir=$(out_of "$1")
    if [ -n "$dir" ] && [ -f "$dir/$2" ]; then libs+=("$dir/$2"); else libs+=("$3"); fi
}
archive zstd-sys libzstd.a -lzstd
archive curl-sys build/libcurl.a -lcurl
archive openssl-sys openssl-build/install/lib/libssl.a -lssl
archive openssl-sys openssl-build/install/lib/libcrypto.a -lcrypto
archive libz-sys lib/libz.a -lz

PERF=$CACHE/rdkafka_performance
STAMP=$CACHE/rdkafka_performance.inputs
inputs="$SRC ${libs[*]}"
if [ ! -x "$PERF" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$inputs" ] || [ "$RDOUT/src/librdkafka.a" -nt "$PERF" ]; then
    echo "== building rdkafka_performance against $RDOUT/src/librdkafka.a" >&2
    cc -O2 -I"$RDOUT/src" -I"$SRC/src" "$SRC/examples/rdkafka_performance.c" -o "$PERF" \
        "${libs[@]}" -lm -ldl -lpthread -lrt >&2
    echo "$inputs" >"$STAMP"
fi
echo "$PERF"
