//! Kafka topic names, checked before anything reaches librdkafka.
//!
//! Kafka accepts topic names of 1 to 249 characters from `[a-zA-Z0-9._-]`, other than `.` and
//! `..`. Checking here turns what would be a broker error, a librdkafka regex subscription
//! (a name starting with `^`) or a panic (a NUL byte cannot cross into C) into a clear
//! `INVALID_ARGUMENT` that names the topic.
//!
//! Wildcard subscriptions are not supported: partitions of several topics would share one
//! stream's ack trackers, and the bridge does not advertise `SUBSCRIBE_WILDCARDS`.

pub(crate) mod admin;

/// Kafka's longest topic name.
pub const MAX_TOPIC_LENGTH: usize = 249;

/// Checks that `topic` is a legal Kafka topic name; the error says why, in words a user can act on.
pub fn validate(topic: &str) -> Result<(), String> {
    let shown = shown(topic);
    if topic.is_empty() {
        return Err("topic is empty".into());
    }
    if topic.starts_with('^') || topic.contains('*') {
        return Err(format!(
            "topic `{shown}` looks like a wildcard; wildcard subscriptions are not supported (name one topic)"
        ));
    }
    if topic.len() > MAX_TOPIC_LENGTH {
        return Err(format!("topic `{shown}` is longer than Kafka's {MAX_TOPIC_LENGTH} characters"));
    }
    if topic == "." || topic == ".." {
        return Err(format!("topic `{topic}` is not a legal Kafka topic name"));
    }
    if let Some(bad) = topic.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!(
            "topic `{shown}` has the character {bad:?}; Kafka topic names use only letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

/// The topic as shown in errors: control characters escaped, at most 100 characters.
fn shown(topic: &str) -> String {
    let mut out: String = topic.chars().take(100).flat_map(char::escape_debug).collect();
    if topic.chars().count() > 100 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn legal_names_pass_and_each_illegal_kind_says_why() {
        for ok in ["orders", "a.b_c-D9", &"x".repeat(249)] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("", "empty"),
            ("^orders.*", "wildcard"),
            ("orders*", "wildcard"),
            ("or\0ders", "'\\0'"),
            ("or ders", "' '"),
            ("ordérs", "'é'"),
            ("..", "not a legal"),
            (&"x".repeat(250), "249"),
        ];
        for (bad, says) in cases {
            let error = validate(bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
            assert!(!error.contains('\0'), "a NUL byte is escaped in the message");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_accepts_exactly_kafkas_alphabet(topic in ".{0,300}") {
            let legal = (1..=249).contains(&topic.len())
                && topic != "." && topic != ".."
                && topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            prop_assert_eq!(validate(&topic).is_ok(), legal);
        }
    }
}
