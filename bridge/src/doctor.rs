//! `kafka-pubsub-bridge doctor`: why is my subscription quiet?
//!
//! Walks a Component the way daprd and the bridge do, one layer after the other, and stops
//! descending where a layer fails (nothing below it could be checked honestly):
//!
//! ```text
//!  component   the YAML: kind, type pubsub.<name>, scopes, metadata parsed by the same
//!              ComponentConfig::parse as Init (so the same errors and misspelling hints)
//!      │
//!  socket      (with --sockets-folder) folder, <name>.sock, permissions, stale socket files,
//!      │       reflection v1alpha lists the PubSub service, health is SERVING
//!  kafka       brokers reachable with the Component's own credentials and TLS settings
//!      │
//!  topics      each Subscription topic (same file, or --topic) and the deadLetterTopic:
//!      │       exists, partitions, replication, leaders
//!  group       the consumer group: state, members, committed offset and lag per partition
//! ```
//!
//! Every ✗ carries a fix. The exit status is 1 when anything failed (warnings do not count).

mod component;
mod kafka;
mod socket;

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::DoctorArgs;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// ✓
    Pass,
    /// ! worth knowing, not an error
    Warn,
    /// ✗ with a fix
    Fail,
    /// not checked (a layer above failed, or an input was not given)
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `component`, `socket`, `kafka`, `topics` or `group`.
    pub layer: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (every failure has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The whole diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The Component YAML file.
    pub file: String,
    /// The Component's name, when the YAML had one.
    pub component: Option<String>,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// How many checks failed.
    pub failed: usize,
}

/// Collects checks for one layer.
pub(crate) struct Layer<'a> {
    name: &'static str,
    checks: &'a mut Vec<Check>,
}

impl Layer<'_> {
    fn push(&mut self, status: Status, message: impl Into<String>, fix: Option<String>) {
        self.checks.push(Check { layer: self.name, status, message: message.into(), fix });
    }

    pub(crate) fn pass(&mut self, message: impl Into<String>) {
        self.push(Status::Pass, message, None);
    }

    pub(crate) fn warn(&mut self, message: impl Into<String>, advice: impl Into<String>) {
        self.push(Status::Warn, message, Some(advice.into()));
    }

    pub(crate) fn fail(&mut self, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Fail, message, Some(fix.into()));
    }

    pub(crate) fn skip(&mut self, message: impl Into<String>) {
        self.push(Status::Skip, message, None);
    }
}

/// Runs every layer and prints the report (text or JSON). Exit status 1 if anything failed.
pub async fn run(args: &DoctorArgs) -> ExitCode {
    let report = diagnose(args).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serialises"));
    } else {
        print!("{}", render(&report));
    }
    if report.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Runs every layer.
pub async fn diagnose(args: &DoctorArgs) -> Report {
    let mut checks = Vec::new();
    let parsed = component::check(args, &mut Layer { name: "component", checks: &mut checks });
    let component = parsed.as_ref().map(|found| found.name.clone()).filter(|name| !name.is_empty());

    let mut socket = Layer { name: "socket", checks: &mut checks };
    match (&args.sockets_folder, &parsed) {
        (None, _) => socket.skip("no --sockets-folder given: the socket was not checked"),
        (Some(_), None) => socket.skip("the Component could not be read"),
        (Some(folder), Some(found)) => socket::check(folder, &found.socket_name, &mut socket).await,
    }

    match parsed {
        Some(found) if !found.unresolved.is_empty() => {
            let keys: Vec<String> = found.unresolved.iter().map(|k| format!("--set {k}=...")).collect();
            for layer in ["kafka", "topics", "group"] {
                Layer { name: layer, checks: &mut checks }
                    .skip(format!("secrets not resolved: pass {} to check Kafka", keys.join(" ")));
            }
        }
        // A misspelt key fails the component layer, but the rest can still be checked.
        Some(found) if found.config.is_some() => {
            let timeout = args.timeout;
            let moved = checks;
            checks = tokio::task::spawn_blocking(move || {
                let mut checks = moved;
                kafka::check(&found, timeout, &mut checks);
                checks
            })
            .await
            .expect("the Kafka checks do not panic");
        }
        _ => {
            for layer in ["kafka", "topics", "group"] {
                Layer { name: layer, checks: &mut checks }.skip("the Component's metadata is not usable");
            }
        }
    }

    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    Report { file: args.component.display().to_string(), component, checks, failed }
}

/// The text form: one line per check, a fix under every ✗ and !, and a summary.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "kafka-pubsub-bridge doctor: {}", report.file);
    let mut layer = "";
    for check in &report.checks {
        if check.layer != layer {
            layer = check.layer;
            let _ = writeln!(out, "\n{layer}");
        }
        let mark = match check.status {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Skip => "-",
        };
        let _ = writeln!(out, "  {mark} {}", check.message);
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    let count = |s| report.checks.iter().filter(|c| c.status == s).count();
    let _ = writeln!(
        out,
        "\n{} passed, {} warnings, {} failed, {} skipped",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Skip)
    );
    out
}
