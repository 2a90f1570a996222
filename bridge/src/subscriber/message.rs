//! Kafka records as daprd receives them, and the ids that come back in acks.
//!
//! Each delivered message carries metadata `__key`, `__partition`, `__offset`, `__topic`,
//! `__timestamp` (milliseconds) and the record's headers (URL-escaped with `escapeHeaders`,
//! as Dapr's built-in component does); `content_type` comes from a `content-type` header.
//!
//! The id is `<partition>-<offset>-<epoch>-<attempt>`: the epoch changes each time the
//! partition is assigned to this stream, so an ack for a delivery made before a rebalance
//! cannot touch the state of the new assignment; the attempt distinguishes redeliveries.

use std::borrow::Cow;

use bytes::Bytes;
use dapr_kafka_proto::EncodedPullResponse;
use dapr_kafka_proto::encoded::BodyWriter;
use rdkafka::Timestamp;
use rdkafka::message::{BorrowedMessage, Message};

use crate::producer::record::CONTENT_TYPE_HEADER;

/// The most an id (`<partition>-<offset>-<epoch>-<attempt>`, field tag and length) adds.
const MAX_ID_BYTES: usize = 2 + 11 + 1 + 20 + 1 + 20 + 1 + 10;

/// A record fetched from Kafka, kept until daprd acks it (for redelivery and dead-lettering).
///
/// The response daprd receives is encoded once, when the record is fetched, on the stream's
/// thread (see [`EncodedPullResponse`]): every delivery of the record, the first and any
/// redelivery, sends that body with its own id, so a redelivery carries the first
/// delivery's metadata. Its encoded size decides whether daprd can take it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The record's key and headers, exactly (a dead-letter record carries them over).
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// The response without its id, encoded; the record's value is `body[value]`.
    body: Bytes,
    value: std::ops::Range<usize>,
    /// Encoded size of the response once it carries its id: what daprd's receive limit sees.
    pub(crate) size: usize,
}

/// What a [`Fetched`] is built from: a record's parts, borrowed.
pub struct Record<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, if it has one.
    pub key: Option<&'a [u8]>,
    /// Its headers, in order (owned: the record keeps them for dead-lettering).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Create or log-append time, in milliseconds.
    pub timestamp: Option<i64>,
    /// Its value.
    pub value: &'a [u8],
}

impl Fetched {
    /// Copies a borrowed librdkafka message (its memory is freed once we return to poll).
    /// Boxed: the record moves from the prefetch to the in-flight map and back out, and
    /// moving a pointer costs less than moving the record.
    pub(crate) fn from_kafka(message: &BorrowedMessage<'_>, escape_headers: bool) -> Box<Self> {
        let headers = super::headers::read(message);
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
            Timestamp::NotAvailable => None,
        };
        let record = Record {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            headers,
            timestamp,
            value: message.payload().unwrap_or_default(),
        };
        Box::new(Self::new(record, escape_headers))
    }

    /// Encodes the response daprd gets for `record`: its value, topic, metadata (its headers,
    /// URL-escaped with `escape_headers`, then `__key`, `__partition`, `__offset`, `__topic`
    /// and `__timestamp`; a later entry of a name wins, as in a map filled in that order) and
    /// the content type of its `content-type` header.
    pub fn new(record: Record<'_>, escape_headers: bool) -> Self {
        let Record { topic, partition, offset, key, headers, timestamp, value } = record;
        let headers_len: usize = headers.iter().map(|(name, value)| name.len() + value.len() + 8).sum();
        let mut body =
            BodyWriter::with_capacity(value.len() + 2 * topic.len() + key.map_or(0, <[u8]>::len) + headers_len + 120);
        let at = body.value_offset(value.len());
        body.data(value).topic_name(topic);
        for (name, bytes) in &headers {
            let text = String::from_utf8_lossy(bytes);
            if escape_headers {
                body.metadata(name, &query_escape(&text));
            } else {
                body.metadata(name, &text);
            }
        }
        if let Some(key) = key {
            body.metadata("__key", &String::from_utf8_lossy(key));
        }
        let mut number = itoa::Buffer::new();
        body.metadata("__partition", number.format(partition));
        body.metadata("__offset", number.format(offset));
        body.metadata("__topic", topic);
        if let Some(ms) = timestamp {
            body.metadata("__timestamp", number.format(ms));
        }
        let content_type = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
            .map_or(Cow::Borrowed(""), |(_, value)| String::from_utf8_lossy(value));
        body.content_type(&content_type);
        let body = body.finish();
        Fetched {
            partition,
            offset,
            key: key.map(<[u8]>::to_vec),
            headers,
            size: body.len() + MAX_ID_BYTES,
            value: if value.is_empty() { 0..0 } else { at..at + value.len() },
            body,
        }
    }

    /// The record's value.
    pub(crate) fn value(&self) -> &[u8] {
        &self.body[self.value.clone()]
    }

    /// The response for a delivery with this id (the body is shared, not copied).
    pub fn response(&self, id: String) -> EncodedPullResponse {
        EncodedPullResponse::new(self.body.clone(), id)
    }
}

/// Which delivery an ack refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// Which assignment of the partition to the stream delivered it.
    pub epoch: u64,
    /// 1 for the first delivery, then one more per redelivery.
    pub attempt: u32,
}

impl MessageId {
    /// Parses `<partition>-<offset>-<epoch>-<attempt>` (decimal, no signs); `None` for
    /// anything else. Runs for every ack, on the runtime thread: no allocation.
    pub fn parse(id: &str) -> Option<Self> {
        let mut parts = id.split('-');
        let id = MessageId {
            partition: parts.next().and_then(decimal)?.try_into().ok()?,
            offset: parts.next().and_then(decimal)?.try_into().ok()?,
            epoch: parts.next().and_then(decimal)?,
            attempt: parts.next().and_then(decimal)?.try_into().ok()?,
        };
        parts.next().is_none().then_some(id)
    }

    /// The id as daprd receives it (what [`MessageId::parse`] reads back).
    pub fn to_id(self) -> String {
        let mut number = itoa::Buffer::new();
        let mut id = String::with_capacity(48);
        id.push_str(number.format(self.partition));
        id.push('-');
        id.push_str(number.format(self.offset));
        id.push('-');
        id.push_str(number.format(self.epoch));
        id.push('-');
        id.push_str(number.format(self.attempt));
        id
    }
}

/// A run of ASCII digits as a number (at most 19 digits, so it cannot overflow).
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0, |n, b| n * 10 + u64::from(b - b'0')))
}

/// Go's `url.QueryEscape`, which Dapr's Kafka component applies with `escapeHeaders`.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b' ' => out.push('+'),
            other => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(other >> 4)] as char);
                out.push(HEX[usize::from(other & 0xf)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_is_rejected() {
        let id = MessageId { partition: 3, offset: 42, epoch: 7, attempt: 2 };
        assert_eq!(id.to_id(), "3-42-7-2");
        assert_eq!(MessageId::parse(&id.to_id()), Some(id));
        let widest = MessageId { partition: i32::MAX, offset: i64::MAX, epoch: 99, attempt: u32::MAX };
        assert_eq!(MessageId::parse(&widest.to_id()), Some(widest));
        for bad in [
            "",
            "1-2-3",
            "1-2-3-4-5",
            "a-2-3-4",
            "1--3-4",
            "-1-2-3",
            "+1-2-3-4",
            "2147483648-2-3-4",
            "1-2-3-4294967296",
            "1-99999999999999999999-3-4",
            "1-2-3-4 ",
            "١-2-3-4",
        ] {
            assert_eq!(MessageId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_response_carries_the_record_and_its_metadata() {
        let headers = vec![
            ("Content-Type".to_owned(), b"application/json".to_vec()),
            ("trace".to_owned(), b"a b".to_vec()),
            ("content-type".to_owned(), b"text/plain".to_vec()),
            ("__offset".to_owned(), b"from a header".to_vec()),
        ];
        let record = Record {
            topic: "orders",
            partition: 2,
            offset: 41,
            key: Some(b"k\xff"),
            headers: headers.clone(),
            timestamp: Some(1_700_000_000_000),
            value: b"{}",
        };
        let fetched = Fetched::new(record, true);
        assert_eq!(fetched.value(), b"{}");
        assert_eq!((fetched.key.as_deref(), &fetched.headers), (Some(&b"k\xff"[..]), &headers), "kept exactly");
        let response = fetched.response("2-41-1-1".into());
        assert!(fetched.size >= response.encoded_len(), "the size allows for the id");
        let message = response.to_message().unwrap();
        assert_eq!(
            (message.data.as_ref(), message.topic_name.as_str(), message.id.as_str()),
            (&b"{}"[..], "orders", "2-41-1-1")
        );
        assert_eq!(message.content_type, "application/json", "the first content-type header, any case");
        let metadata: Vec<(&str, &str)> = {
            let mut m: Vec<_> = message.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            m.sort();
            m
        };
        assert_eq!(
            metadata,
            [
                ("Content-Type", "application%2Fjson"),
                ("__key", "k\u{fffd}"),
                ("__offset", "41"),
                ("__partition", "2"),
                ("__timestamp", "1700000000000"),
                ("__topic", "orders"),
                ("content-type", "text%2Fplain"),
                ("trace", "a+b"),
            ],
            "headers escaped, then the record's own entries, which win"
        );
        let empty =
            Fetched::new(Record { value: b"", key: None, headers: vec![], timestamp: None, ..record_of("t") }, false);
        assert_eq!(empty.value(), b"");
        assert!(empty.response(String::new()).to_message().unwrap().data.is_empty());
    }

    fn record_of(topic: &str) -> Record<'_> {
        Record { topic, partition: 0, offset: 0, key: None, headers: vec![], timestamp: None, value: b"x" }
    }

    #[test]
    fn escaping_matches_go_query_escape() {
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_escape("plain-_.~"), "plain-_.~");
    }
}
