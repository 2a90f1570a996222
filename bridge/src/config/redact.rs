//! Keeping secrets out of errors and logs.
//!
//! A value is shown only when its key is known *not* to hold a secret. Redaction goes by what
//! the key is, not by what its name contains: a misspelt `kafka.sasl.pasword` is not a
//! property librdkafka knows, so nobody can vouch for its value, and it is hidden like a
//! password. librdkafka marks its own sensitive properties (`_RK_SENSITIVE` in
//! `rdkafka_conf.c`); those are listed here. Error texts that librdkafka or a broker wrote
//! may quote a value back, so every secret value is also scrubbed from any text shown.

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;

/// librdkafka properties flagged sensitive in `rdkafka_conf.c`, plus the JAAS-style config.
pub const SENSITIVE_PROPERTIES: &[&str] = &[
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl_key",
    "ssl.ca.pem",
    "ssl.keystore.password",
    "sasl.username",
    "sasl.password",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
];

/// What is shown instead of a secret.
pub const REDACTED: &str = "***";

/// Whether librdkafka knows `property` (a misspelt one it does not).
pub fn is_known_property(property: &str) -> bool {
    let mut probe = ClientConfig::new();
    probe.set(property, "");
    !matches!(probe.create_native_config(), Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..)))
}

/// Whether the value of librdkafka property `property` may be shown.
pub fn is_showable_property(property: &str) -> bool {
    !SENSITIVE_PROPERTIES.contains(&property) && is_known_property(property)
}

/// The secret values of one configuration, to scrub from texts.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values (empty ones are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// `value` of librdkafka `property` as it may be shown.
    pub fn value_of<'a>(&self, property: &str, value: &'a str) -> &'a str {
        if is_showable_property(property) && !self.secrets.iter().any(|s| value.contains(s.as_str())) {
            value
        } else {
            REDACTED
        }
    }

    /// `text` with every secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_only_for_known_non_secret_properties() {
        let redact = Redactor::default();
        assert_eq!(redact.value_of("linger.ms", "abc"), "abc");
        assert_eq!(redact.value_of("sasl.password", "hunter2"), REDACTED);
        assert_eq!(redact.value_of("sasl.pasword", "hunter2"), REDACTED, "a misspelt key hides its value");
        assert_eq!(redact.value_of("ssl.keystore.password", "x"), REDACTED);
    }

    #[test]
    fn secrets_are_scrubbed_from_any_text() {
        let redact = Redactor::new(["hunter2".to_owned(), "hunter2-long".to_owned(), String::new()]);
        assert_eq!(redact.text("auth failed for hunter2-long and hunter2"), "auth failed for *** and ***");
        assert_eq!(redact.value_of("client.id", "app-hunter2"), REDACTED, "a known property quoting a secret");
    }
}
