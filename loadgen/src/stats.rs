//! librdkafka's own statistics, averaged over a step's measured phase.
//!
//! With `statistics.interval.ms` set, librdkafka emits a JSON document at that interval. Its
//! latency and batch fields are *windows*: an average, percentiles and a count of samples
//! since the previous emission. Averaging emissions weighted by their count gives the phase's
//! average. The fields that explain a setting's effect:
//!
//! - `topics.<t>.batchsize` / `batchcnt`: bytes and messages per produced batch (what linger
//!   and batch.size actually achieved);
//! - `brokers.<b>.int_latency`: time a message waits in the producer's queue before it is
//!   put in a batch (linger, back-pressure);
//! - `brokers.<b>.outbuf_latency`: time a request waits before it is written to the socket;
//! - `brokers.<b>.rtt`: broker round trip per produce request.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Weighted running average.
#[derive(Debug, Clone, Copy, Default)]
struct Mean {
    sum: f64,
    weight: f64,
}

impl Mean {
    fn add(&mut self, window: Option<&Value>) {
        let Some(window) = window else { return };
        let avg = window.get("avg").and_then(Value::as_f64).unwrap_or(0.0);
        let cnt = window.get("cnt").and_then(Value::as_f64).unwrap_or(0.0);
        if cnt > 0.0 {
            self.sum += avg * cnt;
            self.weight += cnt;
        }
    }

    fn value(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.sum / self.weight)
    }
}

/// Accumulates emissions during the measured phase.
#[derive(Debug, Default)]
pub struct StatsAccumulator {
    samples: u32,
    batch_bytes: Mean,
    batch_messages: Mean,
    int_latency: Mean,
    outbuf_latency: Mean,
    rtt: Mean,
}

impl StatsAccumulator {
    /// Adds one JSON emission for `topic`.
    pub fn add(&mut self, json: &[u8], topic: &str) {
        let Ok(doc) = serde_json::from_slice::<Value>(json) else { return };
        self.samples += 1;
        if let Some(t) = doc.get("topics").and_then(|t| t.get(topic)) {
            self.batch_bytes.add(t.get("batchsize"));
            self.batch_messages.add(t.get("batchcnt"));
        }
        if let Some(brokers) = doc.get("brokers").and_then(Value::as_object) {
            for broker in brokers.values() {
                // Bootstrap entries (nodeid -1) carry no produce traffic.
                if broker.get("nodeid").and_then(Value::as_i64).unwrap_or(-1) < 0 {
                    continue;
                }
                self.int_latency.add(broker.get("int_latency"));
                self.outbuf_latency.add(broker.get("outbuf_latency"));
                self.rtt.add(broker.get("rtt"));
            }
        }
    }

    /// Adds another worker's accumulation.
    pub fn merge(&mut self, other: &StatsAccumulator) {
        self.samples += other.samples;
        for (a, b) in [
            (&mut self.batch_bytes, other.batch_bytes),
            (&mut self.batch_messages, other.batch_messages),
            (&mut self.int_latency, other.int_latency),
            (&mut self.outbuf_latency, other.outbuf_latency),
            (&mut self.rtt, other.rtt),
        ] {
            a.sum += b.sum;
            a.weight += b.weight;
        }
    }

    /// The averages.
    pub fn finish(&self) -> ClientStats {
        ClientStats {
            samples: self.samples,
            avg_batch_bytes: self.batch_bytes.value(),
            avg_batch_messages: self.batch_messages.value(),
            queue_latency_us: self.int_latency.value(),
            outbuf_latency_us: self.outbuf_latency.value(),
            broker_rtt_us: self.rtt.value(),
        }
    }
}

/// librdkafka's view of a step's measured phase; `None` where it had no samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Statistics emissions averaged.
    pub samples: u32,
    /// Bytes per produced batch.
    pub avg_batch_bytes: Option<f64>,
    /// Messages per produced batch.
    pub avg_batch_messages: Option<f64>,
    /// Producer queue latency (µs), `int_latency`.
    pub queue_latency_us: Option<f64>,
    /// Wait before a request hits the socket (µs), `outbuf_latency`.
    pub outbuf_latency_us: Option<f64>,
    /// Broker round trip per request (µs), `rtt`.
    pub broker_rtt_us: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_windows_weighted_by_their_sample_counts() {
        let emission = |batch: f64, cnt: u64, rtt: f64| {
            format!(
                r#"{{"topics":{{"t":{{"batchsize":{{"avg":{batch},"cnt":{cnt}}},"batchcnt":{{"avg":10,"cnt":{cnt}}}}}}},
                   "brokers":{{"b1":{{"nodeid":1,"rtt":{{"avg":{rtt},"cnt":{cnt}}},"int_latency":{{"avg":5,"cnt":{cnt}}}}},
                               "boot":{{"nodeid":-1,"rtt":{{"avg":999999,"cnt":100}}}}}}}}"#
            )
        };
        let mut a = StatsAccumulator::default();
        a.add(emission(1000.0, 1, 100.0).as_bytes(), "t");
        let mut b = StatsAccumulator::default();
        b.add(emission(4000.0, 3, 300.0).as_bytes(), "t");
        b.add(b"not json", "t");
        a.merge(&b);
        let s = a.finish();
        assert_eq!(s.samples, 2);
        assert_eq!(s.avg_batch_bytes, Some(3250.0));
        assert_eq!(s.avg_batch_messages, Some(10.0));
        assert_eq!(s.broker_rtt_us, Some(250.0));
        assert_eq!(s.queue_latency_us, Some(5.0));
        assert_eq!(s.outbuf_latency_us, None);
    }
}
