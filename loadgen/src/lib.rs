//! A Kafka load generator: parameter sweeps and capacity searches with honest numbers, sizing,
//! and answer-first reports.
//!
//! ```text
//!  cli ─► scenario (dimensions declared once → validated steps)
//!           ├─► sweep     (per step: fresh topic, run, verdict)
//!           └─► capacity  (per configuration: ramp → bisect → repeat probes at an SLO) ─► sizing, USL
//!                                                      │
//!            target (Target trait: direct Kafka, or the in-process mock cluster)
//!                                                      │
//!            driver: producer threads (open/closed loop, keys) + own consumer + phase clock
//!              └─ recorder (delivery reports, failures → HdrHistograms per second, librdkafka stats)
//!                                                      │
//!            verdict (pass rule) ─► report: JSON, CSV, Markdown, HTML (inline SVG), .hlog, compare
//! ```
//!
//! | module | what it knows |
//! |---|---|
//! | [`cli`] | flags, lists, human-readable sizes and durations |
//! | [`scenario`] | dimensions (declared once), the cartesian product, validation, librdkafka properties |
//! | [`payload`] | payloads of a target compressibility (checked with zstd and lz4) |
//! | [`target`] | the [`target::Target`] trait; direct Kafka and the in-process mock cluster |
//! | [`drain`] | the subscribe side: backlog drain and live delivery through PullMessages vs the direct consumer |
//! | [`driver`] | one step: open- and closed-loop load, intended-time stamps, keys, e2e consumer |
//! | [`histogram`] | HdrHistogram recording, merging, percentiles, per-second interval logs |
//! | [`stats`] | librdkafka's statistics over the measured phase |
//! | [`verdict`] | the pass rule: when a step is sustained, when a probe meets the SLO |
//! | [`sweep`] | the whole sweep and its result type |
//! | [`capacity`] | the maximum sustainable rate at an SLO per configuration |
//! | [`sizing`] | partitions, producers, broker network and disk from a target rate; the USL fit |
//! | [`analysis`] | a sweep's answer, best settings, trade-off, per-dimension effects, advice |
//! | [`report`] | JSON, CSV, Markdown, HTML, compare (with a significance test) |
//! | [`worker`] | worker mode: one of N processes sharing a run (rate, keys, a shared start) |
//! | [`merge`] | adds the workers' results and histograms into one report |
//! | [`progress`] | the progress bar |
//! | [`error`] | the one error type |

pub mod analysis;
pub mod capacity;
pub mod cli;
pub mod drain;
pub mod driver;
pub mod error;
pub mod histogram;
pub mod merge;
pub mod payload;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod sizing;
pub mod stats;
pub mod sweep;
pub mod target;
pub mod verdict;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use error::{Error, Result};

use std::sync::Arc;

use cli::{CapacityArgs, Command, SweepArgs};
use scenario::{Scenario, TargetKind};
use target::component::{ComponentOptions, ComponentTarget};
use target::process::SpawnedBridge;
use target::{DirectKafka, Paths, Target};

/// Runs a parsed command line.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Sweep(args) => sweep_command(&args).map(|_| ()),
        Command::Capacity(args) => capacity_command(&args).map(|_| ()),
        Command::Drain(args) => drain::drain_command(&args).map(|_| ()),
        Command::Report { result, out } => {
            let loaded = report::load(&result)?;
            let dir = out.unwrap_or_else(|| result.parent().map(PathBuf::from).unwrap_or_default());
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            let outputs = sweep::Outputs {
                json: result.clone(),
                csv: dir.join("results.csv"),
                markdown: dir.join("summary.md"),
                html: dir.join("report.html"),
            };
            report::write_rendered(&loaded, &outputs)?;
            println!("{}\n{}", outputs.markdown.display(), outputs.html.display());
            Ok(())
        }
        Command::Merge(args) => merge::command(&args).map(drop),
        Command::CreateTopic { brokers, partitions, topic } => {
            let spec = target::TopicSpec { partitions, replication_factor: 1, min_insync_replicas: 1 };
            DirectKafka::connect(&brokers, std::time::Duration::from_secs(10))?.create_topic(&topic, &spec).map(drop)
        }
        Command::Compare { a, b, out } => {
            let text = report::compare::render(
                &report::load(&a)?,
                &a.display().to_string(),
                &report::load(&b)?,
                &b.display().to_string(),
            );
            if let Some(out) = out {
                report::write(&out, &text)?;
            }
            print!("{text}");
            Ok(())
        }
    }
}

/// Runs `sweep`: validates everything first, then the steps, then prints the summary.
pub fn sweep_command(args: &SweepArgs) -> Result<sweep::SweepResult> {
    let scenario = args.scenario()?;
    scenario.validate()?;
    let target = target_of(args, &scenario)?;
    if let Some(plan) = args.worker.plan()? {
        let out = args.out.clone().unwrap_or_else(|| {
            PathBuf::from("loadgen-results").join(format!("worker-{}-{}", plan.run_id, plan.shard.index))
        });
        let progress = progress::Progress::new(&scenario, args.no_progress);
        let result = worker::run(target.as_ref(), &scenario, &plan, &out, &progress)?;
        println!("worker {} of {}: {}", plan.shard.index, plan.shard.count, out.display());
        return Ok(result);
    }
    let out = args.out.clone().unwrap_or_else(|| default_out("sweep"));
    let progress = progress::Progress::new(&scenario, args.no_progress);
    let (result, outputs) = sweep::run(target.as_ref(), &scenario, &out, &progress)?;
    println!("{}", report::markdown::render(&result));
    println!(
        "results: {}\n         {}\n         {}\n         {}",
        outputs.json.display(),
        outputs.csv.display(),
        outputs.markdown.display(),
        outputs.html.display()
    );
    Ok(result)
}

/// The target of a `sweep` or `capacity` command line: every path the scenario's `target`
/// dimension names, over one Kafka cluster.
fn target_of(args: &SweepArgs, scenario: &Scenario) -> Result<Box<dyn Target>> {
    let stall = args.stall()?;
    let kafka = Arc::new(match &args.brokers {
        Some(bootstrap) => DirectKafka::connect(bootstrap, args.admin_timeout)?,
        None => DirectKafka::embedded(args.embedded_brokers, stall)?,
    });
    if kafka.info().in_process {
        eprintln!("No --brokers: running on librdkafka's in-process mock cluster. It measures client-side costs only.");
    }
    let mut kinds: Vec<TargetKind> = scenario.steps().iter().map(|s| s.target).collect();
    kinds.sort();
    kinds.dedup();
    let mut targets: Vec<(TargetKind, Box<dyn Target>)> = vec![(TargetKind::Direct, Box::new(Arc::clone(&kafka)))];
    for kind in kinds {
        match kind {
            TargetKind::Direct => {}
            TargetKind::Component => {
                let bridge = if args.spawn_bridge {
                    let binary = SpawnedBridge::locate(args.bridge_bin.as_deref());
                    Some(SpawnedBridge::start(&binary, Duration::from_secs(30))?)
                } else {
                    None
                };
                let socket = match (&bridge, &args.socket) {
                    (Some(b), _) => b.socket().to_owned(),
                    (None, Some(s)) => s.clone(),
                    (None, None) => {
                        return Err(Error::invalid(
                            "--target component needs --socket PATH (a running component) or --spawn-bridge",
                        ));
                    }
                };
                let mut metadata = Vec::new();
                for kv in &args.component_metadata {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| Error::invalid(format!("--component-metadata `{kv}` is not key=value")))?;
                    metadata.push((k.trim().to_owned(), v.trim().to_owned()));
                }
                let options = ComponentOptions {
                    socket,
                    instance: args.component_instance.clone(),
                    metadata,
                    foreign: args.foreign_component,
                    init_timeout: args.init_timeout,
                    pid: args.component_pid,
                };
                targets.push((kind, Box::new(ComponentTarget::connect(Arc::clone(&kafka), options, bridge)?)));
            }
            TargetKind::Dapr => {
                let address = args.dapr_http.ok_or_else(|| {
                    Error::invalid("--target dapr needs --dapr-http ADDRESS (daprd's HTTP port, e.g. 127.0.0.1:3500)")
                })?;
                targets.push((
                    kind,
                    Box::new(target::dapr::DaprTarget::connect(Arc::clone(&kafka), address, &args.dapr_pubsub)?),
                ));
            }
        }
    }
    Ok(Box::new(Paths::new(targets)))
}

fn default_out(kind: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "-");
    PathBuf::from("loadgen-results").join(format!("{kind}-{stamp}"))
}

/// Runs `capacity`: validates, prints the plan, searches, writes `capacity.json` and the
/// reports, and prints the one-sentence answer.
pub fn capacity_command(args: &CapacityArgs) -> Result<capacity::CapacityResult> {
    if args.sweep.worker.plan()?.is_some() {
        return Err(Error::invalid(
            "worker mode runs `sweep` only: a capacity search cannot be split across processes",
        ));
    }
    let scenario = args.sweep.scenario()?;
    scenario.validate()?;
    let spec = capacity::SearchSpec {
        slo: verdict::Slo::new(args.slo_p99, args.slo_e2e_p99),
        budget: args.budget,
        repeats: args.repeats,
        start_rate: args.start_rate.max(1),
        max_rate: args.max_rate.max(args.start_rate.max(1)),
        precision: args.precision.clamp(0.001, 1.0),
    };
    let sizing = match &args.target_rate {
        Some(rate) => Some(capacity::SizingRequest {
            target: rate.parse()?,
            growth: sizing::parse_share(&args.growth).map_err(|e| match e {
                Error::InvalidScenario(why) => Error::invalid(format!("--growth: {why}")),
                other => other,
            })?,
            retention: args.retention,
            consumer_groups: args.consumer_groups.max(1),
            consumer_rate: args.consumer_rate.as_deref().map(str::parse).transpose()?,
        }),
        None => None,
    };
    let target = target_of(&args.sweep, &scenario)?;
    let out = args.sweep.out.clone().unwrap_or_else(|| default_out("capacity"));
    let result = capacity::run(target.as_ref(), &scenario, &spec, sizing.as_ref(), &out, &|line| eprintln!("{line}"))?;
    let files = report::capacity::write_all(&result, &out)?;
    println!("{}", report::capacity::answer(&result));
    for f in files {
        println!("  {}", f.display());
    }
    Ok(result)
}
