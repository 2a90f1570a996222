//! A Kafka load generator: parameter sweeps with honest latency percentiles and reports.
//!
//! ```text
//!  cli ─► scenario (dimensions → validated steps) ─► sweep (per step: fresh topic)
//!                                                      │
//!            target (Target trait: direct Kafka, or the embedded mock cluster)
//!                                                      │
//!            driver: producer threads (open/closed loop) + own consumer + phase clock
//!              └─ recorder (delivery reports → HdrHistograms, librdkafka stats)
//!                                                      │
//!            report: JSON, CSV, Markdown, HTML (inline SVG), .hlog; capacity advice
//! ```
//!
//! | module | what it knows |
//! |---|---|
//! | [`cli`] | flags, lists, human-readable sizes and durations |
//! | [`scenario`] | dimensions, the cartesian product, validation, librdkafka properties |
//! | [`payload`] | payloads of a target compressibility (checked with zstd and lz4) |
//! | [`target`] | the [`target::Target`] trait; direct Kafka and the embedded mock cluster |
//! | [`driver`] | one step: open- and closed-loop load, intended-time stamps, e2e consumer |
//! | [`histogram`] | HdrHistogram recording, merging, percentiles, interval logs |
//! | [`stats`] | librdkafka's statistics over the measured phase |
//! | [`sweep`] | the whole sweep and its result type |
//! | [`capacity`] | best settings, trade-off, per-dimension effects, advice |
//! | [`report`] | JSON, CSV, Markdown, HTML, compare |
//! | [`progress`] | the progress bar |
//! | [`error`] | the one error type |

pub mod capacity;
pub mod cli;
pub mod driver;
pub mod error;
pub mod histogram;
pub mod payload;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod sweep;
pub mod target;
pub mod verdict;

use std::path::PathBuf;

pub use error::{Error, Result};

use cli::{Command, SweepArgs};
use target::{DirectKafka, Target};

/// Runs a parsed command line.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Sweep(args) => sweep_command(&args).map(|_| ()),
        Command::Capacity(args) => capacity_command(&args).map(|_| ()),
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
    let stall = args.stall()?;
    let target: Box<dyn Target> = match &args.brokers {
        Some(bootstrap) => Box::new(DirectKafka::connect(bootstrap, args.admin_timeout)?),
        None => Box::new(DirectKafka::embedded(args.embedded_brokers, stall)?),
    };
    let info = target.info();
    if info.in_process {
        eprintln!("No --brokers: running on librdkafka's in-process mock cluster. It measures client-side costs only.");
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "-");
        PathBuf::from("loadgen-results").join(stamp)
    });
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

/// Runs `capacity` (to be filled in).
pub fn capacity_command(_args: &cli::CapacityArgs) -> Result<()> {
    Err(Error::invalid("not yet"))
}
