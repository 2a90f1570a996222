//! `PullMessagesResponse`, encoded by the component itself.
//!
//! A subscriber sends daprd one `PullMessagesResponse` per Kafka record. Built as the
//! generated struct, each one is a metadata map of about ten owned strings plus the topic,
//! content type and id, which tonic encodes on the runtime thread that also reads daprd's
//! acks, and then frees there: memory the subscriber's own thread allocated. On a drain that
//! thread is the busiest in the process. [`EncodedPullResponse`] is the same message already
//! in its wire form: the component writes it once, where it reads the record
//! ([`BodyWriter`]), and tonic's codec only copies it into the HTTP/2 frame. daprd receives
//! exactly what it would receive from the generated struct; decoders take the fields in any
//! order and, for a map, the last entry of a key, as the struct's map kept the last insert.
//!
//! The id (field 5) changes with every delivery of a record (it carries the attempt), so it
//! is kept apart from the body and written after it: a redelivery reuses the body.

use prost::bytes::{BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::components::PullMessagesResponse;

const DATA: u32 = 1;
const TOPIC_NAME: u32 = 2;
const METADATA: u32 = 3;
const CONTENT_TYPE: u32 = 4;
const ID: u32 = 5;

/// A `PullMessagesResponse` whose fields other than `id` are already encoded, and its `id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedPullResponse {
    body: Bytes,
    id: String,
}

impl EncodedPullResponse {
    /// A response from a body written by [`BodyWriter`] (or any encoding of the fields other
    /// than `id`) and the delivery's id.
    pub fn new(body: Bytes, id: String) -> Self {
        Self { body, id }
    }

    /// The delivery's id, which daprd sends back in its ack.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The generated struct, decoded from the wire form (tests, tools).
    pub fn to_message(&self) -> Result<PullMessagesResponse, DecodeError> {
        PullMessagesResponse::decode(self.encode_to_vec().as_slice())
    }
}

impl Message for EncodedPullResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.body);
        if !self.id.is_empty() {
            encoding::string::encode(ID, &self.id, buf);
        }
    }

    /// Keeps `id` apart and every other field, as it came, in the body.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag == ID {
            return encoding::string::merge(wire_type, &mut self.id, buf, ctx);
        }
        let mut body = self.body.to_vec();
        match wire_type {
            WireType::Varint => {
                let value = encoding::decode_varint(buf)?;
                encoding::encode_key(tag, wire_type, &mut body);
                encoding::encode_varint(value, &mut body);
            }
            WireType::LengthDelimited => {
                let mut value = Vec::new();
                encoding::bytes::merge(wire_type, &mut value, buf, ctx)?;
                encoding::bytes::encode(tag, &value, &mut body);
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let width = if wire_type == WireType::SixtyFourBit { 8 } else { 4 };
                if buf.remaining() < width {
                    return encoding::skip_field(wire_type, tag, buf, ctx);
                }
                encoding::encode_key(tag, wire_type, &mut body);
                let at = body.len();
                body.resize(at + width, 0);
                buf.copy_to_slice(&mut body[at..]);
            }
            WireType::StartGroup | WireType::EndGroup => return encoding::skip_field(wire_type, tag, buf, ctx),
        }
        self.body = body.into();
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.body.len() + if self.id.is_empty() { 0 } else { encoding::string::encoded_len(ID, &self.id) }
    }

    fn clear(&mut self) {
        self.body = Bytes::new();
        self.id.clear();
    }
}

/// Writes the body of a [`EncodedPullResponse`] field by field, in one buffer sized up
/// front. Empty fields are left out, as protobuf's own encoders leave out default values.
#[derive(Debug)]
pub struct BodyWriter {
    buf: Vec<u8>,
}

impl BodyWriter {
    /// A writer with room for `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }

    /// Field 1, the record's value.
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.length_delimited(DATA, data)
    }

    /// Field 2.
    pub fn topic_name(&mut self, topic: &str) -> &mut Self {
        self.length_delimited(TOPIC_NAME, topic.as_bytes())
    }

    /// One entry of field 3, the metadata map (written even when empty: an entry whose
    /// value is empty still names its key).
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        let (key, value) = (key.as_bytes(), value.as_bytes());
        let entry = field_len(key.len()) + field_len(value.len());
        encoding::encode_key(METADATA, WireType::LengthDelimited, &mut self.buf);
        encoding::encode_varint(entry as u64, &mut self.buf);
        for (tag, bytes) in [(1, key), (2, value)] {
            encoding::encode_key(tag, WireType::LengthDelimited, &mut self.buf);
            encoding::encode_varint(bytes.len() as u64, &mut self.buf);
            self.buf.put_slice(bytes);
        }
        self
    }

    /// Field 4.
    pub fn content_type(&mut self, content_type: &str) -> &mut Self {
        self.length_delimited(CONTENT_TYPE, content_type.as_bytes())
    }

    /// The body, ready for [`EncodedPullResponse::new`].
    pub fn finish(self) -> Bytes {
        self.buf.into()
    }

    /// Where the next field's value would start if it had `len` bytes: the offset of
    /// `data`'s bytes in the body, when `data` is written next.
    pub fn value_offset(&self, len: usize) -> usize {
        self.buf.len() + 1 + encoding::encoded_len_varint(len as u64)
    }

    fn length_delimited(&mut self, tag: u32, bytes: &[u8]) -> &mut Self {
        if !bytes.is_empty() {
            encoding::encode_key(tag, WireType::LengthDelimited, &mut self.buf);
            encoding::encode_varint(bytes.len() as u64, &mut self.buf);
            self.buf.put_slice(bytes);
        }
        self
    }
}

/// The encoded length of a length-delimited field with a one-byte key.
fn field_len(len: usize) -> usize {
    1 + encoding::encoded_len_varint(len as u64) + len
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn written() -> EncodedPullResponse {
        let mut body = BodyWriter::with_capacity(64);
        body.data(b"payload")
            .topic_name("orders")
            .metadata("h", "first")
            .metadata("__partition", "3")
            .metadata("h", "last")
            .metadata("empty", "")
            .content_type("application/json");
        EncodedPullResponse::new(body.finish(), "3-7-1-1".into())
    }

    #[test]
    fn the_wire_form_decodes_as_the_generated_message() {
        let decoded = written().to_message().unwrap();
        let metadata: HashMap<String, String> = [("h", "last"), ("__partition", "3"), ("empty", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let expected = PullMessagesResponse {
            data: Bytes::from_static(b"payload"),
            topic_name: "orders".into(),
            metadata,
            content_type: "application/json".into(),
            id: "3-7-1-1".into(),
        };
        assert_eq!(decoded, expected);
        assert_eq!(written().encoded_len(), written().encode_to_vec().len());
    }

    #[test]
    fn a_generated_message_round_trips_and_the_id_is_kept_apart() {
        let message = written().to_message().unwrap();
        let decoded = EncodedPullResponse::decode(message.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.id(), "3-7-1-1");
        assert_eq!(decoded.to_message().unwrap(), message);
        let again = EncodedPullResponse::decode(decoded.encode_to_vec().as_slice()).unwrap();
        assert_eq!((again.id(), again.to_message().unwrap()), ("3-7-1-1", message));
    }

    #[test]
    fn value_offset_points_at_the_data() {
        let mut body = BodyWriter::with_capacity(0);
        body.topic_name("t");
        let payload = vec![7u8; 300];
        let at = body.value_offset(payload.len());
        body.data(&payload);
        assert_eq!(&body.finish()[at..at + 300], &payload[..]);
    }
}
