//! `--spawn-bridge`: the bridge binary started by the tool on a private socket, and what it
//! costs, read from `/proc/<pid>`.
//!
//! The bridge binds `<folder>/<component>.sock` in a fresh `0700` temporary folder (private to
//! this user, so the bridge's check of the sockets folder passes without
//! `--trust-socket-folder`), with `--shutdown-grace 0s`; its Kafka brokers come from the `Init`
//! metadata, as with daprd. On drop it gets SIGTERM (then SIGKILL after 10 s) and the folder is
//! removed.
//!
//! **Cost** ([`ProcessMeter`]): `utime + stime` from `/proc/<pid>/stat` at the start and the
//! end of each measured phase gives CPU seconds over that phase; divided by the megabytes
//! acknowledged in it this is *millicores per MB/s* (CPU-milliseconds per MB). `VmHWM` from
//! `/proc/<pid>/status` is the peak resident set since the process started (so it never
//! shrinks from one step to the next).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::PhaseHooks;
use crate::error::{Error, Result};

/// The component name the spawned bridge serves (`loadgen.sock`).
pub const COMPONENT_NAME: &str = "loadgen";

/// A bridge process this tool started.
pub struct SpawnedBridge {
    child: Mutex<Child>,
    pid: u32,
    socket: PathBuf,
    binary: PathBuf,
    version: String,
    _dir: tempfile::TempDir,
}

impl SpawnedBridge {
    /// Finds the bridge binary: `explicit`, `$BRIDGE_BIN`, next to this executable, then `PATH`.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_owned();
        }
        if let Some(p) = std::env::var_os("BRIDGE_BIN") {
            return PathBuf::from(p);
        }
        let name = "kafka-pubsub-bridge";
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1).take(3) {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
        PathBuf::from(name)
    }

    /// Starts `binary` and waits (up to `timeout`) until its socket exists.
    pub fn start(binary: &Path, timeout: Duration) -> Result<SpawnedBridge> {
        let dir = tempfile::Builder::new()
            .prefix("loadgen-bridge-")
            .tempdir()
            .map_err(|e| Error::io("creating the bridge's sockets folder", e))?;
        let socket = dir.path().join(format!("{COMPONENT_NAME}.sock"));
        let log = dir.path().join("bridge.log");
        let log_file = std::fs::File::create(&log).map_err(|e| Error::io("creating the bridge log", e))?;
        let version = Command::new(binary)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let child = Command::new(binary)
            .arg("--sockets-folder")
            .arg(dir.path())
            .args(["--component-name", COMPONENT_NAME, "--shutdown-grace", "0s", "--log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                Error::io(
                    format!(
                        "starting the bridge `{}` (build it with `cargo build --release -p dapr-kafka-bridge`, \
                         or give --bridge-bin / $BRIDGE_BIN)",
                        binary.display()
                    ),
                    e,
                )
            })?;
        let pid = child.id();
        let bridge = SpawnedBridge {
            child: Mutex::new(child),
            pid,
            socket: socket.clone(),
            binary: binary.to_owned(),
            version,
            _dir: dir,
        };
        let started = Instant::now();
        while !socket.exists() {
            if let Ok(Some(status)) = bridge.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(Error::Step(format!(
                    "the bridge exited ({status}) before binding its socket: {}",
                    log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                )));
            }
            if started.elapsed() > timeout {
                return Err(Error::Step(format!("the bridge did not bind {} within {timeout:?}", socket.display())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bridge)
    }

    /// The socket it serves.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The last `lines` lines of its log, and its exit status if it has exited: what a
    /// failed run shows.
    pub fn post_mortem(&self, lines: usize) -> String {
        let status = match self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
            Ok(Some(status)) => format!("the bridge exited ({status})"),
            _ => "the bridge is running".to_owned(),
        };
        let log = std::fs::read_to_string(self.socket.with_file_name("bridge.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        format!("{status}; log tail: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// For the report.
    pub fn describe(&self) -> String {
        format!(
            "bridge spawned by the tool: {} ({}), pid {}, socket {}",
            self.binary.display(),
            if self.version.is_empty() { "version unknown" } else { &self.version },
            self.pid,
            self.socket.display()
        )
    }
}

impl Drop for SpawnedBridge {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        // SIGTERM lets it remove its socket; no `unsafe` here, so ask kill(1).
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A process's CPU and memory over one measured phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCost {
    /// The process.
    pub pid: u32,
    /// CPU (user + system) used during the measured phase, seconds.
    pub cpu_seconds: f64,
    /// Length of the measured phase as observed, seconds.
    pub wall_seconds: f64,
    /// Average CPU over the phase, millicores (1000 = one core busy).
    pub millicores: f64,
    /// Millicores per MB/s acknowledged (CPU-milliseconds per MB), when anything was.
    pub millicores_per_mb_s: Option<f64>,
    /// Peak resident set size since the process started (`VmHWM`), bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// Samples a process at the measured phase's edges.
pub struct ProcessMeter {
    pid: u32,
    ticks_per_second: f64,
    start: Mutex<Option<(Instant, u64)>>,
    end: Mutex<Option<(Instant, u64)>>,
}

impl ProcessMeter {
    /// A meter for `pid`.
    pub fn new(pid: u32) -> ProcessMeter {
        ProcessMeter { pid, ticks_per_second: clock_ticks(), start: Mutex::new(None), end: Mutex::new(None) }
    }

    fn sample(&self) -> Option<(Instant, u64)> {
        cpu_ticks(self.pid).map(|t| (Instant::now(), t))
    }

    /// The cost, given the bytes acknowledged in the measured phase.
    pub fn finish(&self, acked_bytes: u64) -> Option<ProcessCost> {
        let start = (*self.start.lock().unwrap_or_else(|e| e.into_inner()))?;
        let end = self.end.lock().unwrap_or_else(|e| e.into_inner()).or_else(|| self.sample())?;
        let cpu_seconds = end.1.saturating_sub(start.1) as f64 / self.ticks_per_second;
        let wall_seconds = end.0.duration_since(start.0).as_secs_f64().max(1e-9);
        let mb = acked_bytes as f64 / 1e6;
        Some(ProcessCost {
            pid: self.pid,
            cpu_seconds,
            wall_seconds,
            millicores: cpu_seconds / wall_seconds * 1000.0,
            millicores_per_mb_s: (mb > 0.0).then(|| cpu_seconds * 1000.0 / mb),
            peak_rss_bytes: peak_rss(self.pid),
        })
    }
}

impl PhaseHooks for ProcessMeter {
    fn measured_phase_started(&self) {
        *self.start.lock().unwrap_or_else(|e| e.into_inner()) = self.sample();
    }

    fn measured_phase_ended(&self) {
        let mut end = self.end.lock().unwrap_or_else(|e| e.into_inner());
        if end.is_none() {
            *end = self.sample();
        }
    }
}

/// Two sets of hooks, in order.
pub struct Both<'a>(pub &'a dyn PhaseHooks, pub &'a dyn PhaseHooks);

impl PhaseHooks for Both<'_> {
    fn measured_phase_started(&self) {
        self.0.measured_phase_started();
        self.1.measured_phase_started();
    }

    fn measured_phase_ended(&self) {
        self.0.measured_phase_ended();
        self.1.measured_phase_ended();
    }
}

/// `utime + stime` of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after its `)` are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmHWM` of `pid`, bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `sysconf(_SC_CLK_TCK)` without `unsafe`: `getconf CLK_TCK`, else Linux's usual 100.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_ticks_and_a_peak_rss() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_ticks(pid).is_some());
        assert!(peak_rss(pid).unwrap() > 0);
        let meter = ProcessMeter::new(pid);
        meter.measured_phase_started();
        meter.measured_phase_ended();
        let cost = meter.finish(2_000_000).unwrap();
        assert_eq!(cost.pid, pid);
        assert!(cost.millicores_per_mb_s.is_some());
    }
}
