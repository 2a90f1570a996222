//! Message payloads with a known compressibility.
//!
//! Kafka compresses whole batches, not single messages, so what matters is how well a
//! *batch* of consecutive messages compresses. Random bytes make every codec look useless;
//! real data (JSON, logs) compresses 2–10×. The generator builds each message from 64-byte
//! blocks that are either random (incompressible) or copies of a shared text block (nearly
//! free), and searches for the fraction of random blocks that hits the target zstd ratio on a
//! batch. It then measures the result with zstd and lz4 (the `zstd` and `lz4_flex` crates) and
//! the report states those measured ratios.
//!
//! The pool of distinct messages is larger than a batch can be (at least 4 MiB), so batch
//! compression cannot win by finding whole repeated messages that real traffic would not have.
//! The first [`STAMP_BYTES`](crate::scenario::STAMP_BYTES) of each message are overwritten at
//! send time with its timestamp.

use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const BLOCK: usize = 64;
const POOL_BYTES: usize = 4 << 20;
const MIN_POOL: usize = 64;
const MAX_POOL: usize = 65_536;
const TEXT: &[u8; BLOCK] = b"{\"order\":\"2024-05-01T12:00:00Z\",\"status\":\"shipped\",\"qty\":12}\n   ";

/// Measured compressibility of a payload pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compressibility {
    /// Where the payloads came from: `generated` or the sample file.
    pub source: String,
    /// Mean message size in bytes.
    pub mean_size: f64,
    /// The requested zstd ratio (generated payloads only).
    pub target_ratio: Option<f64>,
    /// Uncompressed / zstd (level 3) compressed, over a batch of consecutive messages.
    pub zstd_ratio: f64,
    /// Uncompressed / lz4 compressed, over the same batch.
    pub lz4_ratio: f64,
}

/// A pool of messages cycled by the producers.
pub struct Payloads {
    messages: Vec<Vec<u8>>,
    /// What was measured about them.
    pub compressibility: Compressibility,
}

impl Payloads {
    /// Generates messages of `size` bytes that compress about `ratio`× with zstd.
    pub fn generate(size: usize, ratio: f64, seed: u64) -> Payloads {
        let count = (POOL_BYTES / size.max(1)).clamp(MIN_POOL, MAX_POOL);
        let random_fraction = search_random_fraction(size, ratio, seed);
        let messages = build(size, count, random_fraction, seed);
        let (zstd_ratio, lz4_ratio) = measure(&messages);
        Payloads {
            compressibility: Compressibility {
                source: "generated".into(),
                mean_size: size as f64,
                target_ratio: Some(ratio),
                zstd_ratio,
                lz4_ratio,
            },
            messages,
        }
    }

    /// Samples messages from a file of real messages, one per line.
    pub fn from_file(path: &Path) -> Result<Payloads> {
        let text = std::fs::read(path).map_err(|e| Error::io(format!("reading payload file {}", path.display()), e))?;
        let messages: Vec<Vec<u8>> =
            text.split(|&b| b == b'\n').filter(|line| !line.is_empty()).map(<[u8]>::to_vec).collect();
        if messages.is_empty() {
            return Err(Error::invalid(format!("payload file {} has no messages (one per line)", path.display())));
        }
        let mean_size = messages.iter().map(Vec::len).sum::<usize>() as f64 / messages.len() as f64;
        let (zstd_ratio, lz4_ratio) = measure(&messages);
        Ok(Payloads {
            compressibility: Compressibility {
                source: path.display().to_string(),
                mean_size,
                target_ratio: None,
                zstd_ratio,
                lz4_ratio,
            },
            messages,
        })
    }

    /// Distinct messages in the pool.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the pool is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The `i`-th message, cycling.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.messages[i % self.messages.len()]
    }

    /// A private copy for one producer thread, each message at least
    /// [`STAMP_BYTES`](crate::scenario::STAMP_BYTES) long, so the thread can write the stamp in
    /// place and hand the message to librdkafka without copying it first (the copy showed up
    /// as the hot path's largest cost).
    pub fn worker_copy(&self) -> Vec<Vec<u8>> {
        self.messages
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if m.len() < crate::scenario::STAMP_BYTES {
                    m.resize(crate::scenario::STAMP_BYTES, b' ');
                }
                m
            })
            .collect()
    }

    /// The largest message.
    pub fn max_size(&self) -> usize {
        self.messages.iter().map(Vec::len).max().unwrap_or(0)
    }
}

fn build(size: usize, count: usize, random_fraction: f64, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut message = vec![0u8; size];
            for block in message.chunks_mut(BLOCK) {
                if rng.random_bool(random_fraction) {
                    rng.fill_bytes(block);
                } else {
                    block.copy_from_slice(&TEXT[..block.len()]);
                }
            }
            message
        })
        .collect()
}

/// A batch as the producer would compress it: about 256 KiB of consecutive messages.
fn sample_batch(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut batch = Vec::with_capacity(256 << 10);
    for message in messages.iter().cycle().take(messages.len().max(1) * 2) {
        if batch.len() >= 256 << 10 {
            break;
        }
        batch.extend_from_slice(message);
    }
    batch
}

fn zstd_ratio(batch: &[u8]) -> f64 {
    let compressed = zstd::bulk::compress(batch, 3).map(|c| c.len()).unwrap_or(batch.len());
    batch.len() as f64 / compressed.max(1) as f64
}

fn measure(messages: &[Vec<u8>]) -> (f64, f64) {
    let batch = sample_batch(messages);
    let lz4 = lz4_flex::compress(&batch).len();
    (zstd_ratio(&batch), batch.len() as f64 / lz4.max(1) as f64)
}

/// Bisects the fraction of random blocks that gives `ratio` with zstd.
fn search_random_fraction(size: usize, ratio: f64, seed: u64) -> f64 {
    if ratio <= 1.0 {
        return 1.0;
    }
    let trial_count = ((256 << 10) / size.max(1)).clamp(8, 4096);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        let got = zstd_ratio(&sample_batch(&build(size, trial_count, mid, seed ^ 0x5eed)));
        // More random blocks, lower ratio.
        if got > ratio { lo = mid } else { hi = mid }
    }
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_payloads_hit_the_target_ratio_as_measured_by_zstd() {
        for target in [1.0, 2.0, 3.0, 5.0] {
            let payloads = Payloads::generate(1024, target, 7);
            let got = payloads.compressibility.zstd_ratio;
            assert!((got - target).abs() / target < 0.15, "target {target}, measured {got}");
            assert!(payloads.compressibility.lz4_ratio > 0.9);
            assert!(payloads.len() >= 4096, "pool larger than a batch: {}", payloads.len());
            assert_eq!(payloads.max_size(), 1024);
        }
    }

    #[test]
    fn random_payloads_do_not_compress() {
        let payloads = Payloads::generate(512, 1.0, 1);
        assert!(payloads.compressibility.zstd_ratio < 1.05, "{:?}", payloads.compressibility);
        assert!(payloads.compressibility.lz4_ratio < 1.05, "{:?}", payloads.compressibility);
    }

    #[test]
    fn messages_differ_from_each_other() {
        let payloads = Payloads::generate(256, 3.0, 2);
        assert_ne!(payloads.get(0), payloads.get(1));
        assert_eq!(payloads.get(0), payloads.get(payloads.len()));
    }

    #[test]
    fn sampled_payloads_report_their_own_compressibility() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("real.jsonl");
        let lines: String =
            (0..500).map(|i| format!("{{\"id\":{i},\"name\":\"customer-{i}\",\"ok\":true}}\n")).collect();
        std::fs::write(&path, lines).unwrap();
        let payloads = Payloads::from_file(&path).unwrap();
        assert_eq!(payloads.len(), 500);
        assert!(payloads.compressibility.zstd_ratio > 3.0, "{:?}", payloads.compressibility);
        assert!(payloads.compressibility.target_ratio.is_none());

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n\n").unwrap();
        let error = Payloads::from_file(&empty).err().expect("an empty file is rejected");
        assert!(error.to_string().contains("no messages"), "{error}");
    }
}
