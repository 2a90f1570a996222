//! The runtime image is gcr.io/distroless/cc-debian12: glibc, libgcc_s, and nothing else a
//! binary could link against (no OpenSSL, libcurl, zlib, SASL). Base images cannot be pulled
//! here, so this test checks the binary instead: every shared library it needs (`ldd`,
//! transitively) must be one distroless/cc ships. OpenSSL, libcurl and zlib are linked
//! statically through the rdkafka features in the workspace Cargo.toml.
//!
//! Cargo builds the binary for this test in the test's profile; linkage does not depend on
//! the profile (the same features, the same build scripts), and the Dockerfile runs
//! deploy/container/check-linkage.sh on the release binary as well.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kafka-pubsub-bridge");

/// What distroless/cc-debian12 provides (libc6 and libgcc-s1), by soname.
const DISTROLESS_CC: &[&str] = &[
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

#[test]
fn release_binary_needs_only_what_distroless_cc_ships() {
    let out = Command::new("ldd").arg(BIN).output().expect("ldd (glibc's libc-bin) is installed");
    assert!(out.status.success(), "ldd failed: {}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let needed: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(|library| library.rsplit('/').next().unwrap_or(library))
        .collect();
    assert!(needed.contains(&"libc.so.6"), "a dynamically linked glibc binary was expected:\n{listing}");
    let foreign: Vec<&&str> = needed.iter().filter(|l| !DISTROLESS_CC.contains(l)).collect();
    assert!(
        foreign.is_empty(),
        "{BIN} needs {foreign:?}, which distroless/cc does not ship; link them statically (rdkafka features \
         ssl-vendored, curl-static, libz-static; no gssapi). ldd:\n{listing}"
    );
}
