//! The pass rule: when a fixed-rate (open-loop) step counts as *sustained*, and when a probe
//! of the capacity search meets the SLO.
//!
//! A step is sustained only if all of these hold:
//!
//! 1. **achieved / offered ≥ 0.995**, where achieved is acknowledged measured messages over the
//!    wall time from the first measured send to the last measured acknowledgement (a step that
//!    fell behind takes longer, so its achieved rate drops below the offered one);
//! 2. **no errors**: no measured message failed, timed out or was never sent;
//! 3. **send delay p99 below a threshold** (10 ms): the generator itself kept its schedule;
//! 4. **consumer lag not growing**: over the measured phase the tool's consumer did not fall
//!    further behind than a tenth of a second of the offered rate, and it read every message.
//!
//! A closed-loop (`rate=max`) step has no offered rate: it measures saturation, and gets no
//! verdict. A capacity probe passes when it is sustained *and* its publish p99 (and, if asked,
//! its end-to-end p99) is within the SLO.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scenario::PassRule;

/// A latency objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Publish p99 at most this, µs.
    pub publish_p99_us: u64,
    /// End-to-end p99 at most this, µs (optional).
    pub e2e_p99_us: Option<u64>,
}

impl Slo {
    /// From durations.
    pub fn new(publish_p99: Duration, e2e_p99: Option<Duration>) -> Slo {
        Slo { publish_p99_us: publish_p99.as_micros() as u64, e2e_p99_us: e2e_p99.map(|d| d.as_micros() as u64) }
    }
}

/// What the rule looks at, taken from a measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed {
    /// Offered rate, msgs/s.
    pub offered: f64,
    /// Achieved rate, msgs/s.
    pub achieved: f64,
    /// Measured messages that failed (any reason).
    pub failed: u64,
    /// Send delay p99, µs.
    pub send_delay_p99_us: u64,
    /// Growth of consumer lag over the measured phase, messages (`None`: no consumer).
    pub lag_growth: Option<f64>,
    /// Measured messages acknowledged and read by the consumer (`None`: no consumer).
    pub read_of_acked: Option<(u64, u64)>,
}

/// A step's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// All conditions held.
    pub sustained: bool,
    /// Achieved / offered.
    pub achieved_ratio: f64,
    /// Every condition that failed, in words.
    pub reasons: Vec<String>,
}

/// Applies the pass rule.
pub fn judge(o: &Observed, rule: &PassRule) -> Verdict {
    let mut reasons = Vec::new();
    let ratio = if o.offered > 0.0 { o.achieved / o.offered } else { 0.0 };
    if ratio < rule.min_achieved_ratio {
        reasons.push(format!(
            "achieved {:.0} of {:.0} msgs/s offered ({:.1} %, needs {:.1} %)",
            o.achieved,
            o.offered,
            ratio * 100.0,
            rule.min_achieved_ratio * 100.0
        ));
    }
    if o.failed > 0 {
        reasons.push(format!("{} measured message(s) failed", o.failed));
    }
    let limit = rule.max_send_delay_p99.as_micros() as u64;
    if o.send_delay_p99_us > limit {
        reasons.push(format!(
            "send delay p99 {:.1} ms over {:.1} ms: the generator fell behind its schedule",
            o.send_delay_p99_us as f64 / 1e3,
            limit as f64 / 1e3
        ));
    }
    if let Some(growth) = o.lag_growth {
        let allowed = rule.max_lag_growth_seconds * o.offered;
        if growth > allowed.max(1.0) {
            reasons.push(format!("consumer lag grew by {growth:.0} messages (allowed {allowed:.0})"));
        }
    }
    if let Some((read, acked)) = o.read_of_acked
        && read < acked
    {
        reasons.push(format!("the consumer read {read} of {acked} acknowledged messages"));
    }
    Verdict { sustained: reasons.is_empty(), achieved_ratio: ratio, reasons }
}

/// Why a measurement misses the SLO (empty when it meets it).
pub fn slo_misses(slo: &Slo, publish_p99_us: u64, e2e_p99_us: Option<u64>) -> Vec<String> {
    let mut misses = Vec::new();
    if publish_p99_us > slo.publish_p99_us {
        misses.push(format!(
            "publish p99 {:.2} ms over the SLO {:.2} ms",
            publish_p99_us as f64 / 1e3,
            slo.publish_p99_us as f64 / 1e3
        ));
    }
    if let Some(limit) = slo.e2e_p99_us {
        match e2e_p99_us {
            Some(e2e) if e2e > limit => misses.push(format!(
                "end-to-end p99 {:.2} ms over the SLO {:.2} ms",
                e2e as f64 / 1e3,
                limit as f64 / 1e3
            )),
            Some(_) => {}
            None => misses.push("no end-to-end latency measured for the end-to-end SLO".into()),
        }
    }
    misses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(offered: f64, achieved: f64) -> Observed {
        Observed {
            offered,
            achieved,
            failed: 0,
            send_delay_p99_us: 500,
            lag_growth: Some(0.0),
            read_of_acked: Some((1, 1)),
        }
    }

    #[test]
    fn offered_10000_achieved_9960_is_sustained() {
        let v = judge(&steady(10_000.0, 9_960.0), &PassRule::default());
        assert!(v.sustained, "{v:?}");
        assert!((v.achieved_ratio - 0.996).abs() < 1e-9);
    }

    #[test]
    fn offered_10000_achieved_9940_is_not_sustained_and_says_why() {
        let v = judge(&steady(10_000.0, 9_940.0), &PassRule::default());
        assert!(!v.sustained);
        assert_eq!(v.reasons, vec!["achieved 9940 of 10000 msgs/s offered (99.4 %, needs 99.5 %)"]);
    }

    #[test]
    fn one_timed_out_message_in_20000_fails_the_step() {
        let v = judge(&Observed { failed: 1, ..steady(10_000.0, 10_000.0) }, &PassRule::default());
        assert!(!v.sustained);
        assert!(v.reasons[0].contains("1 measured message(s) failed"));
    }

    #[test]
    fn send_delay_p99_of_12ms_over_the_10ms_limit_fails() {
        let v = judge(&Observed { send_delay_p99_us: 12_000, ..steady(1000.0, 1000.0) }, &PassRule::default());
        assert!(!v.sustained);
        assert!(v.reasons[0].contains("send delay p99 12.0 ms over 10.0 ms"), "{v:?}");
    }

    #[test]
    fn lag_growing_by_2000_at_10000_per_second_fails_but_500_passes() {
        let rule = PassRule::default();
        assert!(!judge(&Observed { lag_growth: Some(2000.0), ..steady(10_000.0, 10_000.0) }, &rule).sustained);
        assert!(judge(&Observed { lag_growth: Some(500.0), ..steady(10_000.0, 10_000.0) }, &rule).sustained);
        let v = judge(&Observed { read_of_acked: Some((0, 20_000)), ..steady(10_000.0, 10_000.0) }, &rule);
        assert!(v.reasons[0].contains("read 0 of 20000"), "{v:?}");
    }

    #[test]
    fn publish_p99_of_25ms_misses_a_20ms_slo() {
        let slo = Slo::new(Duration::from_millis(20), Some(Duration::from_millis(50)));
        assert!(slo_misses(&slo, 19_000, Some(40_000)).is_empty());
        assert_eq!(slo_misses(&slo, 25_000, Some(40_000)), vec!["publish p99 25.00 ms over the SLO 20.00 ms"]);
        assert_eq!(slo_misses(&slo, 1_000, Some(60_000)).len(), 1);
    }
}
