//! The `healthcheck` subcommand (the exec probe of the distroless image), and how soon the
//! socket exists after start.
//!
//! daprd scans its sockets folder once, at its own start (dapr#6180), so the bridge must bind
//! before doing anything slow: before any Kafka work, which happens only when daprd calls Init.
//! The start-up test measures the time from spawn to a connectable socket and prints it, and
//! asserts only the order of events: the socket accepts connections while no Kafka connection
//! has been attempted, and the first one comes after Init. No timing is asserted.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kafka-pubsub-bridge");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_bridge(folder: &std::path::Path, name: &str) -> Killed {
    Killed(
        Command::new(BIN)
            .args(["--component-name", name])
            .env("DAPR_COMPONENTS_SOCKETS_FOLDER", folder)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_for_socket(socket: &std::path::Path) -> Duration {
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the bridge never listened on {}", socket.display());
        std::thread::sleep(Duration::from_millis(1));
    }
    started.elapsed()
}

fn healthcheck(env: &[(&str, &std::path::Path)], args: &[&str]) -> (bool, String) {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("DAPR_COMPONENTS_SOCKETS_FOLDER").env_remove("DAPR_COMPONENT_SOCKETS_FOLDER");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn healthcheck_passes_on_a_serving_bridge_and_fails_without_one() {
    let folder = tempfile::tempdir().unwrap();
    let bridge = spawn_bridge(folder.path(), "probe");
    wait_for_socket(&folder.path().join("probe.sock"));

    // As in the container: the probe finds the socket through the same variables as the bridge
    // (here the singular one, which the Kubernetes injector sets).
    let (ok, out) =
        healthcheck(&[("DAPR_COMPONENT_SOCKETS_FOLDER", folder.path())], &["--component-name", "probe", "healthcheck"]);
    assert!(ok, "{out}");
    assert!(out.contains("SERVING"), "{out}");

    let (ok, out) = healthcheck(&[], &["healthcheck", "--socket", folder.path().join("other.sock").to_str().unwrap()]);
    assert!(!ok, "no socket must fail: {out}");

    // A stale socket file: bound once, nobody listening.
    let stale = folder.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (ok, out) = healthcheck(&[], &["healthcheck", "--socket", stale.to_str().unwrap(), "--timeout", "1s"]);
    assert!(!ok, "a stale socket must fail: {out}");
    drop(bridge);
}

#[test]
fn socket_is_bound_before_any_kafka_work() {
    // A "broker" that records connection attempts: any Kafka work would dial it.
    let broker = TcpListener::bind("127.0.0.1:0").unwrap();
    let broker_address = broker.local_addr().unwrap().to_string();
    let dialled = Arc::new(AtomicBool::new(false));
    let (first_dial, dial_seen) = mpsc::channel();
    {
        let dialled = dialled.clone();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = broker.accept() {
                dialled.store(true, Ordering::SeqCst);
                let _ = first_dial.send(());
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf);
            }
        });
    }

    let folder = tempfile::tempdir().unwrap();
    let spawned = Instant::now();
    let _bridge = spawn_bridge(folder.path(), "startup");
    let socket = folder.path().join("startup.sock");
    let bound = wait_for_socket(&socket);
    eprintln!("socket accepted connections {bound:?} after spawn (process start included)");
    assert!(!dialled.load(Ordering::SeqCst), "the bridge dialled Kafka before its socket existed");

    // The first Kafka-dependent event: Init with `brokers`. Only now does the bridge dial.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let channel = dapr_kafka_bridge::healthcheck::channel(&socket, Duration::from_secs(5)).await.unwrap();
        let mut client = dapr_kafka_proto::PubSubClient::new(channel);
        let mut properties = std::collections::HashMap::new();
        properties.insert("brokers".to_owned(), broker_address.clone());
        properties.insert("initTimeout".to_owned(), "500ms".to_owned());
        let request = dapr_kafka_proto::components::PubSubInitRequest {
            metadata: Some(dapr_kafka_proto::components::MetadataRequest { properties }),
        };
        // The fake broker never answers, so Init fails; what matters is that it dialled.
        let _ = client.init(request).await;
    });
    dial_seen.recv_timeout(Duration::from_secs(30)).expect("Init dialled the broker");
    eprintln!("first Kafka connection {:?} after spawn, after the socket", spawned.elapsed());
}
