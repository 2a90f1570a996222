//! Independent Kafka clients: create topics, produce, and read back what the bridge wrote.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub payload: Vec<u8>,
    /// Headers, as UTF-8.
    pub headers: HashMap<String, String>,
    /// Headers as bytes, in order.
    pub raw_headers: Vec<(String, Vec<u8>)>,
}

/// Creates `topic` through the admin API (replication 1).
pub(crate) async fn create_topic_with_admin(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// Waits until `topic` has `partitions` partitions in the cluster's metadata.
pub(crate) async fn wait_for_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let started = Instant::now();
    loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(2));
        if md.as_ref().is_ok_and(|m| m.topics().first().is_some_and(|t| t.partitions().len() == partitions as usize)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "topic {topic} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A record to produce: key, payload, headers.
pub type Outgoing<'a> = (Option<&'a str>, &'a [u8], &'a [(&'a str, &'a str)]);

/// Produces records with an independent producer.
pub async fn produce(bootstrap: &str, topic: &str, records: &[Outgoing<'_>]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    for (key, payload, headers) in records {
        let mut owned = OwnedHeaders::new();
        for (k, v) in headers.iter() {
            owned = owned.insert(Header { key: k, value: Some(*v) });
        }
        let mut record = FutureRecord::to(topic).payload(*payload).headers(owned);
        if let Some(key) = key {
            record = record.key(*key);
        }
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
    }
}

/// Produces one record with a binary key and binary headers.
pub async fn produce_raw(bootstrap: &str, topic: &str, key: Option<&[u8]>, payload: &[u8], headers: &[(&str, &[u8])]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let mut owned = OwnedHeaders::new();
    for (k, v) in headers {
        owned = owned.insert(Header { key: k, value: Some(*v) });
    }
    let mut record = FutureRecord::to(topic).payload(payload).headers(owned);
    if let Some(key) = key {
        record = record.key(key);
    }
    producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
}

/// Reads every partition of `topic` from the beginning until `expected` records arrived or
/// `timeout` passed; returns what it read (so a test can also check that nothing more came).
pub async fn read_back(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", crate::unique("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)).expect("metadata");
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            assignment.add_partition_offset(&topic, partition.id(), Offset::Beginning).unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        while records.len() < expected && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    raw_headers: m
                        .headers()
                        .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                        .unwrap_or_default(),
                }),
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        records
    })
    .await
    .unwrap()
}
