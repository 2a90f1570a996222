//! The publish path end to end, as daprd drives it: gRPC over the Unix socket → bridge →
//! librdkafka → the in-process mock cluster. Bulk sizes 1 (a plain Publish, one at a time:
//! latency-bound by `linger`), 100 and 1000, and 100 concurrent Publish calls (what daprd
//! does for components without BULK_PUBSUB); 100-byte and 1 KiB payloads. Criterion reports
//! elements (messages) per second.
//!
//! Run: `cargo bench -p benches --bench publish`.

use std::collections::HashMap;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dapr_kafka_bridge::embedded::EmbeddedKafka;
use testkit::{BridgeUnderTest, Daprd};

fn publish(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cluster = EmbeddedKafka::start(1).unwrap();
    cluster.create_topic("bench", 6).unwrap();
    let (bridge, daprd) = runtime.block_on(async {
        let bridge = BridgeUnderTest::in_process(None);
        let mut daprd = Daprd::connect(bridge.socket(), Some("bench")).await;
        daprd.init(&[("brokers", cluster.bootstrap()), ("linger", "2ms")]).await.unwrap();
        (bridge, daprd)
    });

    let mut group = c.benchmark_group("publish");
    for payload_size in [100usize, 1024] {
        let payload = vec![b'x'; payload_size];
        for bulk in [1usize, 100, 1000] {
            group.throughput(Throughput::Elements(bulk as u64));
            let id = BenchmarkId::new(format!("{payload_size}B"), format!("bulk{bulk}"));
            group.bench_with_input(id, &bulk, |b, &bulk| {
                b.to_async(&runtime).iter(|| {
                    let mut daprd = daprd.clone();
                    let payload = payload.clone();
                    async move {
                        if bulk == 1 {
                            daprd.publish("bench", &payload, &[]).await.unwrap();
                        } else {
                            let entries = (0..bulk).map(|i| (i.to_string(), payload.clone(), HashMap::new())).collect();
                            let failed = daprd.bulk_publish("bench", entries).await.unwrap();
                            assert!(failed.is_empty());
                        }
                    }
                });
            });
        }
    }
    // Without BULK_PUBSUB daprd fans out up to 100 concurrent Publish calls; measure that too.
    for payload_size in [100usize, 1024] {
        let payload = vec![b'x'; payload_size];
        group.throughput(Throughput::Elements(100));
        let id = BenchmarkId::new(format!("{payload_size}B"), "concurrent100");
        group.bench_function(id, |b| {
            b.to_async(&runtime).iter(|| {
                let calls: Vec<_> = (0..100)
                    .map(|_| {
                        let mut daprd = daprd.clone();
                        let payload = payload.clone();
                        async move { daprd.publish("bench", &payload, &[]).await.unwrap() }
                    })
                    .collect();
                futures::future::join_all(calls)
            });
        });
    }
    group.finish();
    assert!(runtime.block_on(bridge.stop()), "bridge stops cleanly");
}

criterion_group!(benches, publish);
criterion_main!(benches);
