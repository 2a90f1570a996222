//! From a Dapr publish request's metadata to a Kafka record's key, partition and headers,
//! the way Dapr's built-in Kafka component maps them.
//!
//! - `partitionKey` (or `__key`) → record key (same key, same partition, so ordered);
//! - `partitionNumber` → explicit partition;
//! - every other entry → a record header, unless `excludeHeaderMetaRegex` matches its key;
//! - a non-empty `content_type` → a `content-type` header (what subscribers read back).

use std::collections::HashMap;

use rdkafka::message::{Header, OwnedHeaders};
use regex::Regex;

use crate::error::{Error, Result};

/// Metadata key that sets the record key.
pub const PARTITION_KEY: &str = "partitionKey";
/// Alternative metadata key that sets the record key.
pub const KEY: &str = "__key";
/// Metadata key that selects the partition.
pub const PARTITION_NUMBER: &str = "partitionNumber";
/// Header that carries the content type.
pub const CONTENT_TYPE_HEADER: &str = "content-type";

/// Key, partition and headers of one outgoing record.
pub struct RecordParts {
    pub(crate) key: Option<String>,
    pub(crate) partition: Option<i32>,
    pub(crate) headers: Option<OwnedHeaders>,
}

/// Maps request metadata (entry metadata over request-level metadata) to record parts.
pub fn record_parts(
    layers: [&HashMap<String, String>; 2],
    content_type: &str,
    exclude: Option<&Regex>,
) -> Result<RecordParts> {
    let lookup = |name: &str| layers.iter().find_map(|m| m.get(name)).map(String::as_str);
    // The entry's key, by either name, wins over the request's.
    let key = layers.iter().find_map(|m| m.get(PARTITION_KEY).or_else(|| m.get(KEY))).cloned();
    let partition = lookup(PARTITION_NUMBER)
        .map(|p| {
            p.trim().parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "metadata `{PARTITION_NUMBER}`: `{p}` is not a partition number (0 or more)"
                ))
            })
        })
        .transpose()?;

    let mut headers: Option<OwnedHeaders> = None;
    let mut add = |name: &str, value: &str| {
        let h = headers.take().unwrap_or_default();
        headers = Some(h.insert(Header { key: name, value: Some(value) }));
    };
    let mut seen_content_type = false;
    for (i, layer) in layers.iter().enumerate() {
        for (name, value) in layer.iter() {
            let shadowed = i == 1 && layers[0].contains_key(name);
            let control = name == PARTITION_KEY || name == KEY || name == PARTITION_NUMBER;
            if shadowed || control || exclude.is_some_and(|r| r.is_match(name)) {
                continue;
            }
            seen_content_type |= name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER);
            add(name, value);
        }
    }
    if !content_type.is_empty() && !seen_content_type {
        add(CONTENT_TYPE_HEADER, content_type);
    }
    Ok(RecordParts { key, partition, headers })
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn header_map(parts: &RecordParts) -> HashMap<String, String> {
        parts.headers.as_ref().map_or_else(HashMap::new, |h| {
            h.iter().map(|h| (h.key.to_owned(), String::from_utf8(h.value.unwrap().to_vec()).unwrap())).collect()
        })
    }

    #[test]
    fn key_partition_and_headers() {
        let entry =
            map(&[("partitionKey", "order-7"), ("partitionNumber", "2"), ("traceparent", "00-abc"), ("tenant", "t1")]);
        let parts = record_parts([&entry, &HashMap::new()], "application/json", None).unwrap();
        assert_eq!(parts.key.as_deref(), Some("order-7"));
        assert_eq!(parts.partition, Some(2));
        assert_eq!(
            header_map(&parts),
            map(&[("traceparent", "00-abc"), ("tenant", "t1"), ("content-type", "application/json")])
        );
    }

    #[test]
    fn an_entrys_key_wins_over_the_requests_by_either_name() {
        let entry = map(&[("__key", "entry")]);
        let request = map(&[("partitionKey", "request")]);
        let parts = record_parts([&entry, &request], "", None).unwrap();
        assert_eq!(parts.key.as_deref(), Some("entry"));
        let both = map(&[("__key", "dunder"), ("partitionKey", "named")]);
        let parts = record_parts([&both, &HashMap::new()], "", None).unwrap();
        assert_eq!(parts.key.as_deref(), Some("named"), "within one layer partitionKey wins");
    }

    #[test]
    fn dunder_key_and_layering() {
        let entry = map(&[("__key", "k1"), ("tenant", "entry")]);
        let request = map(&[("tenant", "request"), ("region", "eu")]);
        let parts = record_parts([&entry, &request], "", None).unwrap();
        assert_eq!(parts.key.as_deref(), Some("k1"));
        assert_eq!(header_map(&parts), map(&[("tenant", "entry"), ("region", "eu")]));
    }

    #[test]
    fn exclusion_regex() {
        let entry = map(&[("secret-token", "x"), ("kept", "y")]);
        let regex = Regex::new("^secret-").unwrap();
        let parts = record_parts([&entry, &HashMap::new()], "", Some(&regex)).unwrap();
        assert_eq!(header_map(&parts), map(&[("kept", "y")]));
    }

    #[test]
    fn bad_partition_number_names_the_key() {
        for bad in ["-1", "two", ""] {
            let entry = map(&[("partitionNumber", bad)]);
            let error = record_parts([&entry, &HashMap::new()], "", None).err().unwrap();
            assert!(error.to_string().contains("partitionNumber"), "{error}");
        }
    }

    #[test]
    fn no_metadata_means_no_headers() {
        let parts = record_parts([&HashMap::new(), &HashMap::new()], "", None).unwrap();
        assert!(parts.headers.is_none() && parts.key.is_none() && parts.partition.is_none());
    }
}
