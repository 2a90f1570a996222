//! The binary's own behaviour: flags, the key listing, and refusing a socket in use.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kafka-pubsub-bridge");

#[test]
fn prints_every_config_key() {
    let out = Command::new(BIN).arg("--print-config-keys").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for key in dapr_kafka_bridge::config::keys::KEYS {
        assert!(text.lines().any(|l| l.starts_with(&format!("{}\t", key.name))), "{} missing", key.name);
    }
}

#[test]
fn second_bridge_on_a_live_socket_is_refused_and_socket_removed_on_sigterm() {
    let folder = tempfile::tempdir().unwrap();
    let socket = folder.path().join("dup.sock");
    let mut first = Command::new(BIN)
        .args(["--component-name", "dup"])
        .env("DAPR_COMPONENTS_SOCKETS_FOLDER", folder.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "first bridge never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The singular variable (set by the Kubernetes injector) is honoured when the plural is absent.
    let second = Command::new(BIN)
        .args(["--component-name", "dup"])
        .env_remove("DAPR_COMPONENTS_SOCKETS_FOLDER")
        .env("DAPR_COMPONENT_SOCKETS_FOLDER", folder.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(socket.exists(), "the refused bridge must not remove the live socket");

    Command::new("kill").args(["-TERM", &first.id().to_string()]).status().unwrap();
    assert!(first.wait().unwrap().success());
    assert!(!socket.exists(), "socket removed on exit");
}

/// A second SIGTERM during the shutdown's grace period ends the process at once: the operator
/// (or supervisor) will not wait for the drain.
#[test]
fn a_second_signal_exits_without_waiting_for_the_grace_period() {
    let folder = tempfile::tempdir().unwrap();
    let socket = folder.path().join("twice.sock");
    let mut bridge = Command::new(BIN)
        .args(["--component-name", "twice", "--shutdown-grace", "60s"])
        .env("DAPR_COMPONENTS_SOCKETS_FOLDER", folder.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let connection = loop {
        if let Ok(connection) = std::os::unix::net::UnixStream::connect(&socket) {
            break connection;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the bridge never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    // An open connection holds the grace period (60 s) after the first signal.
    let pid = bridge.id().to_string();
    let term = || Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    term();
    std::thread::sleep(Duration::from_millis(500));
    assert!(bridge.try_wait().unwrap().is_none(), "the first signal starts a graceful shutdown");
    term();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = bridge.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second signal did not end the bridge (grace is 60 s)");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "an interrupted shutdown is not a clean exit");
    assert!(!socket.exists(), "the socket is removed even so");
    drop(connection);
}
