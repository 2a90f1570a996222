//! The per-record micro paths of the bridge, with no broker and no gRPC:
//!
//! - `publish_record`: a publish entry's metadata to a Kafka record's key and headers
//!   (`record_parts`), as every Publish and BulkPublish entry is mapped, with and without an
//!   `excludeHeaderMetaRegex`;
//! - `delivery`: a fetched Kafka record to the response daprd receives, encoded once in
//!   protobuf's wire form (`Fetched::new`), then a delivery of it (`response` with its id)
//!   and the id read back from daprd's ack (`MessageId::parse`), with and without
//!   `escapeHeaders`.
//!
//! Run: `cargo bench -p benches --bench records`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dapr_kafka_bridge::producer::record::record_parts;
use dapr_kafka_bridge::subscriber::message::{Fetched, MessageId, Record};
use prost::Message as _;
use regex::Regex;

/// The bridge binary's allocator, so the paths allocate as they do in the bridge.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn publish_record(c: &mut Criterion) {
    let entry: HashMap<String, String> = [
        ("partitionKey", "order-42"),
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tenant", "blue"),
        ("cloudevent.id", "5d0f1b4c-7d3e-4c1b-9f55-0c2c3f6b9e10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let request = HashMap::new();
    let exclude = Regex::new("^cloudevent\\.").unwrap();
    let mut group = c.benchmark_group("publish_record");
    group.throughput(Throughput::Elements(1));
    for (name, exclude) in [("metadata", None), ("metadata+exclude-regex", Some(&exclude))] {
        group.bench_with_input(BenchmarkId::from_parameter(name), &exclude, |b, exclude| {
            b.iter(|| {
                let parts = record_parts([black_box(&entry), &request], "application/json", *exclude).unwrap();
                black_box(parts)
            });
        });
    }
    group.finish();
}

fn delivery(c: &mut Criterion) {
    let value = vec![b'x'; 100];
    let headers = vec![
        ("content-type".to_owned(), b"application/cloudevents+json".to_vec()),
        ("traceparent".to_owned(), b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec()),
    ];
    let record = |headers: Vec<(String, Vec<u8>)>| Record {
        topic: "orders",
        partition: 3,
        offset: 1_234_567,
        key: Some(b"order-42"),
        headers,
        timestamp: Some(1_700_000_000_000),
        value: &value,
    };
    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(1));
    for (name, escape) in [("100B+2-headers", false), ("100B+2-headers+escapeHeaders", true)] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let fetched = Fetched::new(record(black_box(headers.clone())), escape);
                let id = MessageId { partition: 3, offset: 1_234_567, epoch: 7, attempt: 1 };
                let response = fetched.response(id.to_id());
                let acked = MessageId::parse(black_box(response.id())).unwrap();
                black_box((response.encoded_len(), acked))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, publish_record, delivery);
criterion_main!(benches);
