//! The ack tracker on its hot path: one `delivered` and one `ack` per message, with acks in
//! order, in reverse within windows of 100 (many in flight), and in a scattered order.
//!
//! Run: `cargo bench -p benches --bench offsets`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dapr_kafka_bridge::offsets::PartitionOffsets;

const MESSAGES: i64 = 10_000;

fn ack_orders() -> Vec<(&'static str, Vec<i64>)> {
    let in_order: Vec<i64> = (0..MESSAGES).collect();
    let reversed_windows: Vec<i64> = (0..MESSAGES / 100).flat_map(|w| (w * 100..(w + 1) * 100).rev()).collect();
    // A fixed scatter: a stride coprime with the window size visits every offset once.
    let scattered: Vec<i64> =
        (0..MESSAGES / 500).flat_map(|w| (0..500).map(move |i| w * 500 + (i * 137) % 500)).collect();
    vec![("in-order", in_order), ("reversed-100", reversed_windows), ("scattered-500", scattered)]
}

fn tracker(c: &mut Criterion) {
    let mut group = c.benchmark_group("offsets");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    for (name, order) in ack_orders() {
        group.bench_with_input(BenchmarkId::from_parameter(name), &order, |b, order| {
            b.iter(|| {
                let mut p = PartitionOffsets::default();
                let window = 500;
                // Deliver in windows, then ack each window in the given order.
                for start in (0..MESSAGES).step_by(window) {
                    for o in start..(start + window as i64).min(MESSAGES) {
                        p.delivered(o);
                    }
                    for o in &order[start as usize..(start as usize + window).min(order.len())] {
                        p.ack(*o);
                    }
                }
                assert_eq!(p.commit_position(), Some(MESSAGES));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, tracker);
criterion_main!(benches);
