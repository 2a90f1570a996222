//! A fetched record's headers, read with librdkafka's own calls.
//!
//! Kafka header names are bytes on the wire; Java clients write UTF-8, but librdkafka, kcat or
//! franz-go producers can write any bytes. rdkafka's header iterator turns each name into a
//! `&str` with `unwrap()`, so one record with a name that is not UTF-8 would panic the stream
//! thread. Here names are read as bytes and converted lossily (invalid sequences become
//! U+FFFD), as values already are when they become metadata: the record is delivered, and its
//! dead-letter copy carries the converted name.
//!
//! Besides `producer::events`, this is the crate's only `unsafe` code: two read-only calls on a
//! message librdkafka keeps alive while it is borrowed.
#![allow(unsafe_code)]

use std::ffi::CStr;

use rdkafka::bindings as rdsys;
use rdkafka::message::BorrowedMessage;

/// The record's headers in order, names converted lossily to UTF-8, a null value as empty.
pub(crate) fn read(message: &BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `message.ptr()` is valid while `message` is borrowed; librdkafka stores in
    // `headers` a pointer to the message's own header list (not to be freed by us).
    let err = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut headers) };
    if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        return Vec::new(); // RD_KAFKA_RESP_ERR__NOENT: the record has none
    }
    // SAFETY: `headers` is the message's live header list (above).
    let count = unsafe { rdsys::rd_kafka_header_cnt(headers) };
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `index` < the count; on success librdkafka points `name` at a NUL-terminated
        // string and `value` at `size` bytes (or null), both owned by the header list.
        let err = unsafe { rdsys::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size) };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: see above; both are copied before the next call.
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
        let value = if value.is_null() {
            Vec::new()
        } else {
            // SAFETY: `value` points at `size` bytes (above).
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec()
        };
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{BorrowedHeaders, Header, OwnedHeaders};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;
    use crate::subscriber::message::Fetched;

    /// Headers with a name that is not UTF-8, written as a librdkafka producer can.
    fn headers_with_a_raw_name(name: &[u8], value: &[u8]) -> OwnedHeaders {
        let headers = OwnedHeaders::new().insert(Header { key: "first", value: Some("1") });
        // `BorrowedHeaders` is rdkafka's zero-sized view whose address is the native list.
        let native = std::ptr::from_ref::<BorrowedHeaders>(headers.as_borrowed()).cast_mut().cast();
        // SAFETY: `native` is the live header list `headers` owns; librdkafka copies both
        // buffers, whose lengths are given.
        let err = unsafe {
            rdsys::rd_kafka_header_add(
                native,
                name.as_ptr().cast(),
                name.len() as isize,
                value.as_ptr().cast(),
                value.len() as isize,
            )
        };
        assert_eq!(err, rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
        headers
    }

    #[test]
    fn a_header_name_that_is_not_utf8_is_read_lossily_and_the_record_delivered() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("raw-headers", 1, 1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
        let record = BaseRecord::<(), [u8]>::to("raw-headers")
            .payload(b"v")
            .headers(headers_with_a_raw_name(b"bad\xffname", b"x"));
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();

        let consumer: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &bootstrap).set("group.id", "raw-headers").create().unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset("raw-headers", 0, Offset::Beginning).unwrap();
        consumer.assign(&assignment).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let message = loop {
            assert!(Instant::now() < deadline, "the record was not fetched");
            if let Some(result) = consumer.poll(Duration::from_millis(100)) {
                break result.unwrap();
            }
        };

        assert_eq!(
            read(&message),
            vec![("first".to_owned(), b"1".to_vec()), ("bad\u{fffd}name".to_owned(), b"x".to_vec())]
        );
        let delivered = Fetched::from_kafka(&message, false).response("0-0-1-1".into()).to_message().unwrap();
        assert_eq!(delivered.metadata.get("bad\u{fffd}name").map(String::as_str), Some("x"));
        assert_eq!(delivered.data.as_ref(), b"v");
    }
}
