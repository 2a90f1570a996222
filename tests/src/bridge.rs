//! The bridge under test, on a fresh socket in a temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dapr_kafka_bridge::server::{Bridge, ServerOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

enum Running {
    InProcess { shutdown: CancellationToken, task: JoinHandle<dapr_kafka_bridge::Result<()>> },
    Child(Child),
}

/// A bridge listening on `socket()`; stopped on drop.
pub struct BridgeUnderTest {
    _folder: tempfile::TempDir,
    socket: PathBuf,
    running: Option<Running>,
}

/// The component name tests use.
pub const COMPONENT: &str = "kafka-bridge-test";

impl BridgeUnderTest {
    /// Starts the bridge in this process. `embedded` serves Inits without `brokers`.
    pub fn in_process(embedded: Option<&str>) -> Self {
        // Logs of in-process bridges go to the test's output when TEST_LOG is set.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = dapr_kafka_bridge::telemetry::init(&filter, dapr_kafka_bridge::cli::LogFormat::Text);
        }
        let folder = tempfile::tempdir().unwrap();
        let socket = folder.path().join(format!("{COMPONENT}.sock"));
        let mut options = ServerOptions::new(socket.clone());
        options.embedded_bootstrap = embedded.map(str::to_owned);
        Self::with_options(folder, options)
    }

    /// Starts the bridge in this process with `options` (its socket inside `folder`).
    pub fn with_options(folder: tempfile::TempDir, options: ServerOptions) -> Self {
        let socket = options.socket_path.clone();
        let bridge = Bridge::bind(options).expect("bind bridge");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bridge.serve(shutdown.clone()));
        Self { _folder: folder, socket, running: Some(Running::InProcess { shutdown, task }) }
    }

    /// Starts the bridge binary as a child process with extra `args`, and waits for its socket.
    pub fn child(args: &[&str]) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let socket = folder.path().join(format!("{COMPONENT}.sock"));
        // daprd is not there to close its connections on SIGTERM: no grace period by default.
        let grace: &[&str] =
            if args.iter().any(|a| a.starts_with("--shutdown-grace")) { &[] } else { &["--shutdown-grace", "0s"] };
        let child = Command::new(bridge_binary())
            .args(["--component-name", COMPONENT, "--log", "info"])
            .args(grace)
            .env("DAPR_COMPONENTS_SOCKETS_FOLDER", folder.path())
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting the bridge binary");
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "bridge never listened on {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { _folder: folder, socket, running: Some(Running::Child(child)) }
    }

    /// The socket daprd would connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Graceful stop: cancel (in-process) or SIGTERM (child), then wait for the exit.
    /// Returns whether it stopped cleanly.
    pub async fn stop(mut self) -> bool {
        match self.running.take() {
            Some(Running::InProcess { shutdown, task }) => {
                shutdown.cancel();
                matches!(task.await, Ok(Ok(())))
            }
            Some(Running::Child(mut child)) => {
                let pid = child.id().to_string();
                Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
                tokio::task::spawn_blocking(move || child.wait().map(|s| s.success()).unwrap_or(false)).await.unwrap()
            }
            None => true,
        }
    }

    /// The child's process id (None in process).
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Some(Running::Child(child)) => Some(child.id()),
            _ => None,
        }
    }

    /// Crash: SIGKILL the child process (nothing is flushed or committed).
    pub fn kill(mut self) {
        if let Some(Running::Child(mut child)) = self.running.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for BridgeUnderTest {
    fn drop(&mut self) {
        match self.running.take() {
            Some(Running::InProcess { shutdown, .. }) => shutdown.cancel(),
            Some(Running::Child(mut child)) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {}
        }
    }
}

/// The bridge binary: `$BRIDGE_BIN`, else `kafka-pubsub-bridge` in the target directory this
/// test binary was built into (cargo builds it for `bridge/tests/cli.rs`).
pub fn bridge_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BRIDGE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("kafka-pubsub-bridge");
    assert!(
        binary.exists(),
        "{} missing: run `cargo test --workspace` (it builds the bridge binary)",
        binary.display()
    );
    binary
}
