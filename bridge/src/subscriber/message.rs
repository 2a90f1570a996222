//! Kafka records as daprd receives them, and the ids that come back in acks.
//!
//! Each delivered message carries metadata `__key`, `__partition`, `__offset`, `__topic`,
//! `__timestamp` (milliseconds) and the record's headers (URL-escaped with `escapeHeaders`,
//! as Dapr's built-in component does); `content_type` comes from a `content-type` header.
//!
//! The id is `<partition>-<offset>-<epoch>-<attempt>`: the epoch changes each time the
//! partition is assigned to this stream, so an ack for a delivery made before a rebalance
//! cannot touch the state of the new assignment; the attempt distinguishes redeliveries.

use std::collections::HashMap;

use bytes::Bytes;
use dapr_kafka_proto::components::PullMessagesResponse;
use prost::Message as _;
use rdkafka::Timestamp;
use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::producer::record::CONTENT_TYPE_HEADER;

/// The most an id (`<partition>-<offset>-<epoch>-<attempt>`, field tag and length) adds.
const MAX_ID_BYTES: usize = 2 + 11 + 1 + 20 + 1 + 20 + 1 + 10;

/// A record fetched from Kafka, kept until daprd acks it (for redelivery and dead-lettering).
///
/// The response daprd receives is built once, when the record is fetched (its encoded size
/// decides whether daprd can take it). The first delivery moves its metadata map out
/// instead of copying it; a redelivery, which is rare, builds the map again from the record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fetched {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// Record timestamp (ms), create or log-append time.
    pub(crate) timestamp: Option<i64>,
    /// Header values are URL-escaped in metadata (`escapeHeaders`).
    pub(crate) escape_headers: bool,
    /// The response without its id (its metadata is empty once delivered).
    pub(crate) response: PullMessagesResponse,
    /// Encoded size of the response once it carries its id: what daprd's receive limit sees.
    pub(crate) size: usize,
}

impl Fetched {
    /// Copies a borrowed librdkafka message (its memory is freed once we return to poll).
    /// Boxed: the record moves from the prefetch to the in-flight map and back out, and
    /// moving a pointer costs less than moving the record.
    pub(crate) fn from_kafka(message: &BorrowedMessage<'_>, escape_headers: bool) -> Box<Self> {
        let headers: Vec<(String, Vec<u8>)> = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
            .unwrap_or_default();
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
            Timestamp::NotAvailable => None,
        };
        let content_type = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        let mut fetched = Box::new(Fetched {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            headers,
            timestamp,
            escape_headers,
            response: PullMessagesResponse {
                data: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
                topic_name: message.topic().to_owned(),
                metadata: HashMap::new(),
                content_type,
                id: String::new(),
            },
            size: 0,
        });
        fetched.response.metadata = fetched.metadata();
        fetched.size = fetched.response.encoded_len() + MAX_ID_BYTES;
        fetched
    }

    /// The metadata daprd gets with the record: its headers, then `__key`, `__partition`,
    /// `__offset`, `__topic` and `__timestamp`.
    fn metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::with_capacity(self.headers.len() + 5);
        for (name, value) in &self.headers {
            let text = String::from_utf8_lossy(value);
            metadata.insert(name.clone(), if self.escape_headers { query_escape(&text) } else { text.into_owned() });
        }
        if let Some(key) = &self.key {
            metadata.insert("__key".into(), String::from_utf8_lossy(key).into_owned());
        }
        metadata.insert("__partition".into(), self.partition.to_string());
        metadata.insert("__offset".into(), self.offset.to_string());
        metadata.insert("__topic".into(), self.response.topic_name.clone());
        if let Some(ms) = self.timestamp {
            metadata.insert("__timestamp".into(), ms.to_string());
        }
        metadata
    }

    /// The response for the first delivery: takes the metadata built at fetch time.
    pub(crate) fn first_response(&mut self, id: String) -> PullMessagesResponse {
        let metadata = match std::mem::take(&mut self.response.metadata) {
            built if built.is_empty() => self.metadata(),
            built => built,
        };
        PullMessagesResponse { id, metadata, ..self.response.clone() }
    }

    /// The response for a redelivery (the metadata is built again).
    pub(crate) fn response(&self, id: String) -> PullMessagesResponse {
        PullMessagesResponse { id, metadata: self.metadata(), ..self.response.clone() }
    }
}

/// Which delivery an ack refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MessageId {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
    pub(crate) attempt: u32,
}

impl MessageId {
    pub(crate) fn parse(id: &str) -> Option<Self> {
        let mut parts = id.split('-');
        let id = MessageId {
            partition: parts.next()?.parse().ok()?,
            offset: parts.next()?.parse().ok()?,
            epoch: parts.next()?.parse().ok()?,
            attempt: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(id)
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}-{}", self.partition, self.offset, self.epoch, self.attempt)
    }
}

/// Go's `url.QueryEscape`, which Dapr's Kafka component applies with `escapeHeaders`.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_is_rejected() {
        let id = MessageId { partition: 3, offset: 42, epoch: 7, attempt: 2 };
        assert_eq!(MessageId::parse(&id.to_string()), Some(id));
        for bad in ["", "1-2-3", "1-2-3-4-5", "a-2-3-4", "1--3-4", "-1-2-3"] {
            assert_eq!(MessageId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn escaping_matches_go_query_escape() {
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_escape("plain-_.~"), "plain-_.~");
    }
}
