//! Record keys. librdkafka's default partitioner (`consistent_random`) hashes a key to a
//! partition, so the key distribution decides how evenly partitions are loaded: round-robin
//! and uniform keys spread load evenly, a Zipf choice piles it onto the partitions of the
//! hottest keys, and keyless records go to one sticky partition per batch.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::scenario::Keys;

/// Picks each message's key; one per producer thread, seeded, so runs repeat.
pub(crate) struct KeyChooser {
    keys: Vec<Vec<u8>>,
    kind: Keys,
    rng: SmallRng,
    /// Zipf: cumulative probabilities of keys 1..=K.
    cdf: Vec<f64>,
}

impl KeyChooser {
    pub(crate) fn new(kind: Keys, seed: u64) -> KeyChooser {
        // In worker mode a round-robin or uniform key space is split into disjoint slices
        // (the union is all K); a Zipf draw keeps the whole space (crate::worker).
        let shard = crate::worker::current().filter(|_| matches!(kind, Keys::RoundRobin(_) | Keys::Uniform(_)));
        let keys: Vec<Vec<u8>> = (0..kind.count())
            .filter(|&i| shard.is_none_or(|s| s.owns_key(i)))
            .map(|i| format!("key-{i:08}").into_bytes())
            .collect();
        let cdf = match kind {
            Keys::Zipf { keys, s_milli } => zipf_cdf(keys, s_milli as f64 / 1000.0),
            _ => Vec::new(),
        };
        KeyChooser { keys, kind, rng: SmallRng::seed_from_u64(seed), cdf }
    }

    /// The key of the `message`-th message of this producer.
    pub(crate) fn key(&mut self, message: u64) -> Option<&[u8]> {
        let i = match self.kind {
            Keys::None => return None,
            Keys::RoundRobin(_) => (message % self.keys.len() as u64) as usize,
            Keys::Uniform(_) => self.rng.random_range(0..self.keys.len()),
            Keys::Zipf { .. } => {
                let u: f64 = self.rng.random();
                self.cdf.partition_point(|&c| c < u).min(self.keys.len() - 1)
            }
        };
        Some(&self.keys[i])
    }
}

/// P(rank ≤ i) for Zipf's law over `n` ranks with exponent `s`: weight of rank r is 1/r^s.
fn zipf_cdf(n: u32, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|r| 1.0 / (r as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_zipf_favours_the_first_keys() {
        let mut rr = KeyChooser::new(Keys::RoundRobin(3), 1);
        let seen: Vec<Vec<u8>> = (0..4).map(|i| rr.key(i).unwrap().to_vec()).collect();
        assert_eq!(seen[0], seen[3]);
        assert_ne!(seen[0], seen[1]);
        assert!(KeyChooser::new(Keys::None, 1).key(0).is_none());

        // Zipf with s = 1 over 100 keys: key 1 has probability 1/H(100) ≈ 19 %.
        let mut zipf = KeyChooser::new(Keys::Zipf { keys: 100, s_milli: 1000 }, 7);
        let first = zipf.keys[0].clone();
        let hits = (0..10_000).filter(|&i| zipf.key(i).unwrap() == first.as_slice()).count();
        assert!((1_600..2_300).contains(&hits), "{hits}");
        let mut uniform = KeyChooser::new(Keys::Uniform(100), 7);
        let first = uniform.keys[0].clone();
        let hits = (0..10_000).filter(|&i| uniform.key(i).unwrap() == first.as_slice()).count();
        assert!(hits < 250, "{hits}");
    }
}
