#!/usr/bin/env bash
# Fails unless BINARY needs only shared libraries that gcr.io/distroless/cc-debian12 ships:
# glibc (libc, libm, libpthread, libdl, librt), libgcc_s and the dynamic loader. Used by the
# Dockerfile's build stage; bridge/tests/linkage.rs checks the same on every test run.
set -euo pipefail
binary=${1:?usage: check-linkage.sh BINARY}
allowed='^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|/lib64/ld-linux-x86-64\.so\.2|/lib/ld-linux-aarch64\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'
status=0
while read -r library _; do
  [ -n "$library" ] || continue
  if ! [[ $library =~ $allowed ]]; then
    echo "check-linkage: $binary needs $library, which distroless/cc does not ship" >&2
    status=1
  fi
done < <(ldd "$binary" | sed 's/^[[:space:]]*//')
[ "$status" = 0 ] && echo "check-linkage: $binary needs only glibc, libgcc_s and the loader"
exit "$status"
