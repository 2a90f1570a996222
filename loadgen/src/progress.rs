//! The progress bar: the whole sweep's planned time as the bar (so the ETA covers every
//! remaining step), the current step and its settings, and the live send rate; one line per
//! finished step.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{count, micros};
use crate::scenario::{Scenario, StepConfig};
use crate::sweep::{Observer, StepResult};

/// Draws progress on stderr (hidden when stderr is not a terminal, or when `quiet`).
pub struct Progress {
    bar: ProgressBar,
    scenario: Scenario,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    planned: Vec<Duration>,
    done: Duration,
    label: String,
}

impl Progress {
    /// A progress display for `scenario`.
    pub fn new(scenario: &Scenario, quiet: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
        );
        bar.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta}\n{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress { bar, scenario: scenario.clone(), state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Observer for Progress {
    fn sweep_started(&self, steps: &[StepConfig], planned: Duration) {
        let mut state = self.state();
        state.planned = steps.iter().map(|s| self.scenario.planned_step_length(s)).collect();
        self.bar.set_length(planned.as_millis() as u64);
    }

    fn step_started(&self, index: usize, step: &StepConfig) {
        let mut state = self.state();
        state.label = format!("step {}/{}: {}", index + 1, state.planned.len(), step.label());
        self.bar.set_message(state.label.clone());
    }

    fn tick(&self, index: usize, elapsed: Duration, rate: f64) {
        let state = self.state();
        let planned = state.planned.get(index).copied().unwrap_or_default();
        self.bar.set_position((state.done + elapsed.min(planned)).as_millis() as u64);
        self.bar.set_message(format!("{}\n  {} msgs/s", state.label, count(rate)));
    }

    fn step_finished(&self, index: usize, result: &StepResult) {
        let mut state = self.state();
        let planned = state.planned.get(index).copied().unwrap_or_default();
        state.done += planned;
        self.bar.set_position(state.done.as_millis() as u64);
        let line = match (&result.measurement, result.ok()) {
            (Some(m), true) => format!(
                "step {:>3}/{} {:<13} {:>12} msgs/s {:>8.1} MB/s  publish p99 {:>10}  {}",
                index + 1,
                state.planned.len(),
                crate::report::markdown::status(result),
                count(m.produced.msgs_per_sec),
                m.produced.mb_per_sec,
                micros(m.publish_latency.p99),
                result.label
            ),
            _ => format!(
                "step {:>3}/{} FAILED  {}: {}",
                index + 1,
                state.planned.len(),
                result.label,
                result.failure.as_deref().unwrap_or("unknown")
            ),
        };
        self.bar.suspend(|| eprintln!("{line}"));
        if index + 1 == state.planned.len() {
            self.bar.finish_and_clear();
        }
    }
}
