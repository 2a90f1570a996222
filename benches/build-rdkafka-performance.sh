#!/usr/bin/env bash
# Builds librdkafka's rdkafka_performance against the very librdkafka the project links, and
# prints the binary's path on stdout (everything else goes to stderr).
#
#   PERF=$(benches/build-rdkafka-performance.sh)                       # builds kafka-loadgen too
#   PERF=$(benches/build-rdkafka-performance.sh -p dapr-kafka-bridge)  # builds the bridge too
#
# The arguments pick the packages of a `cargo build --release` that this script runs first
# (default `-p kafka-loadgen`); its JSON messages say which rdkafka-sys, openssl-sys,
# curl-sys, libz-sys and zstd-sys build outputs those packages link (a target directory holds
# several of each, one per feature set, so "the newest" is not reliably the right one) and
# where the rdkafka-sys source is.
# rdkafka is built with `ssl-vendored`, `curl-static`, `libz-static` and `zstd`: OpenSSL,
# libcurl, zlib and zstd are static archives in those outputs, and the binary needs only
# glibc. A library whose archive is absent (another feature set) is linked from the system.
#
# The C source is the one shipped in that rdkafka-sys crate (examples/rdkafka_performance.c),
# so both sides of a comparison run the same librdkafka version with the same build options.
# The binary is cached in ~/.cache/kafka-loadgen-bench and rebuilt when its inputs change.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kafka-loadgen-bench
mkdir -p "$CACHE"
[ $# -gt 0 ] || set -- -p kafka-loadgen

# One line per build script: "<crate name> <out_dir>", and "<crate name>-src <source dir>"
# for the crates themselves (their manifests' folders).
outs=$(cd "$ROOT" && cargo build --release "$@" --message-format=json | python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    pid = m.get("package_id", "")
    if "#" in pid:  # registry+https://...#rdkafka-sys@4.10.0+2.12.1
        name = pid.split("#")[-1].partition("@")[0]
    else:  # rdkafka-sys 4.10.0+2.12.1 (registry+https://...)
        name = pid.split(" ")[0]
    if m.get("reason") == "build-script-executed":
        print(name, m["out_dir"])
    elif m.get("reason") == "compiler-artifact":
        print(name + "-src", os.path.dirname(m["manifest_path"]))
')
out_of() { awk -v n="$1" '$1 == n { print $2; exit }' <<<"$outs"; }

RDOUT=$(out_of rdkafka-sys)
SRC=$(out_of rdkafka-sys-src)/librdkafka
if [ -z "$RDOUT" ] || [ ! -f "$RDOUT/src/librdkafka.a" ] || [ ! -f "$SRC/examples/rdkafka_performance.c" ]; then
    echo "no librdkafka.a or rdkafka_performance.c among the outputs of cargo build --release $*" >&2
    exit 1
fi
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
