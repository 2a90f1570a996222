use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn parse(pairs: &[(&str, &str)]) -> Result<ComponentConfig> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ComponentConfig::parse(&map)
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    match parse(pairs) {
        Ok(_) => panic!("{pairs:?} should be rejected"),
        Err(e) => {
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
            e.to_string()
        }
    }
}

fn property(config: &ClientConfig, key: &str) -> Option<String> {
    config.get(key).map(str::to_owned)
}

#[test]
fn defaults() {
    let c = parse(&[("brokers", "k1:9092, k2:9092")]).unwrap();
    assert_eq!(c.brokers.as_deref(), Some("k1:9092,k2:9092"));
    assert_eq!(c.client_id, "kafka-pubsub-bridge");
    assert_eq!(c.producer.acks, Acks::All);
    assert!(c.producer.idempotence);
    assert_eq!(c.producer.linger, Duration::from_millis(5));
    assert_eq!(c.producer.message_timeout, Duration::from_secs(30));
    assert_eq!(c.init_timeout, Duration::from_secs(4));
    assert_eq!(c.auth, Auth::None { tls: None });
    assert_eq!(c.subscriber.initial_offset, InitialOffset::Newest);
    assert_eq!(c.subscriber.max_retries, Some(3));
    assert_eq!(c.subscriber.max_in_flight_per_stream, 1000);
    assert_eq!(c.subscriber.max_in_flight_per_partition, 500);
    let p = c.producer_config("b:1");
    assert_eq!(property(&p, "bootstrap.servers").as_deref(), Some("b:1"));
    assert_eq!(property(&p, "acks").as_deref(), Some("all"));
    assert_eq!(property(&p, "enable.idempotence").as_deref(), Some("true"));
    assert_eq!(property(&p, "security.protocol").as_deref(), Some("plaintext"));
    assert_eq!(property(&p, "batch.size"), None, "librdkafka's default stays unless set");
}

#[test]
fn no_brokers_is_allowed_at_parse_time() {
    assert!(parse(&[]).unwrap().brokers.is_none());
}

#[test]
fn every_producer_key_reaches_librdkafka() {
    let c = parse(&[
        ("brokers", "k:9092"),
        ("clientID", "orders"),
        ("compression", "zstd"),
        ("compressionLevel", "7"),
        ("linger", "20ms"),
        ("batchBytes", "262144"),
        ("batchMessages", "5000"),
        ("maxInFlight", "5"),
        ("queueMaxMessages", "200000"),
        ("queueMaxKBytes", "65536"),
        ("messageTimeout", "1m"),
        ("maxMessageBytes", "2097152"),
        ("initTimeout", "2s"),
    ])
    .unwrap();
    let p = c.producer_config("k:9092");
    for (key, value) in [
        ("client.id", "orders"),
        ("compression.type", "zstd"),
        ("compression.level", "7"),
        ("linger.ms", "20"),
        ("batch.size", "262144"),
        ("batch.num.messages", "5000"),
        ("max.in.flight.requests.per.connection", "5"),
        ("queue.buffering.max.messages", "200000"),
        ("queue.buffering.max.kbytes", "65536"),
        ("message.timeout.ms", "60000"),
        ("message.max.bytes", "2097152"),
    ] {
        assert_eq!(property(&p, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(c.init_timeout, Duration::from_secs(2));
}

#[test]
fn acks_and_idempotence() {
    let local = parse(&[("producerRequiredAcks", "local")]).unwrap();
    assert_eq!(local.producer.acks, Acks::Leader);
    assert!(!local.producer.idempotence, "idempotence defaults off when acks are not all");
    assert_eq!(property(&local.producer_config("b:1"), "acks").as_deref(), Some("1"));
    let none = parse(&[("producerRequiredAcks", "none")]).unwrap();
    assert_eq!(property(&none.producer_config("b:1"), "acks").as_deref(), Some("0"));
    let off = parse(&[("enableIdempotence", "false")]).unwrap();
    assert!(!off.producer.idempotence);

    let e = error_of(&[("producerRequiredAcks", "local"), ("enableIdempotence", "true")]);
    assert!(e.contains("`enableIdempotence`") && e.contains("producerRequiredAcks: all"), "{e}");
    let e = error_of(&[("producerRequiredAcks", "some")]);
    assert!(e.contains("`producerRequiredAcks`") && e.contains("all, local, none"), "{e}");
    let e = error_of(&[("maxInFlight", "6")]);
    assert!(e.contains("`maxInFlight`") && e.contains("at most 5"), "{e}");
    assert!(parse(&[("maxInFlight", "50"), ("enableIdempotence", "false")]).is_ok());
}

#[test]
fn bad_values_name_the_key_and_what_is_accepted() {
    /// Metadata, the key the error must name, and a word from "what is accepted".
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (&[("brokers", "nohost")], "`brokers`", "host:port"),
        (&[("brokers", " , ")], "`brokers`", "names no broker"),
        (&[("compression", "brotli")], "`compression`", "gzip, snappy, lz4, zstd"),
        (&[("compression", "snappy"), ("compressionLevel", "3")], "`compressionLevel`", "no levels"),
        (&[("compression", "gzip"), ("compressionLevel", "10")], "`compressionLevel`", "0 to 9"),
        (&[("compression", "zstd"), ("compressionLevel", "0")], "`compressionLevel`", "1 to 12"),
        (&[("compression", "zstd"), ("compressionLevel", "13")], "`compressionLevel`", "1 to 12"),
        (&[("linger", "soon")], "`linger`", "not a duration"),
        (&[("linger", "20m")], "`linger`", "out of range"),
        (&[("batchBytes", "0")], "`batchBytes`", "out of range"),
        (&[("batchMessages", "many")], "`batchMessages`", "whole number"),
        (&[("messageTimeout", "0")], "`messageTimeout`", "out of range"),
        (&[("maxMessageBytes", "10")], "`maxMessageBytes`", "1000 to"),
        (&[("initTimeout", "10ms")], "`initTimeout`", "out of range"),
        (&[("initialOffset", "middle")], "`initialOffset`", "newest, oldest"),
        (
            &[("heartbeatInterval", "10s"), ("sessionTimeout", "6s")],
            "`heartbeatInterval`",
            "shorter than sessionTimeout",
        ),
        (&[("consumerGroupRebalanceStrategy", "random")], "`consumerGroupRebalanceStrategy`", "cooperative-sticky"),
        (&[("escapeHeaders", "perhaps")], "`escapeHeaders`", "true or false"),
        (&[("excludeHeaderMetaRegex", "(unclosed")], "`excludeHeaderMetaRegex`", "regex"),
        (&[("maxRetries", "-2")], "`maxRetries`", "whole number"),
        (&[("retryBackoff", "0")], "`retryBackoff`", "out of range"),
        (&[("commitInterval", "1ms")], "`commitInterval`", "out of range"),
        (&[("maxInFlightPerStream", "0")], "`maxInFlightPerStream`", "out of range"),
        (&[("authType", "kerberos")], "`authType`", "none, password, mtls, certificate, oidc"),
        (&[("authType", "password"), ("saslPassword", "x")], "`saslUsername`", "required"),
        (&[("authType", "password"), ("saslUsername", "u")], "`saslPassword`", "required"),
        (
            &[("authType", "password"), ("saslUsername", "u"), ("saslPassword", "p"), ("saslMechanism", "MD5")],
            "`saslMechanism`",
            "SHA-256",
        ),
        (&[("authType", "mtls"), ("clientKey", "k")], "`clientCert`", "required"),
        (
            &[("authType", "mtls"), ("clientCert", "not pem"), ("clientKey", "-----BEGIN PRIVATE KEY-----")],
            "`clientCert`",
            "PEM",
        ),
        (&[("authType", "oidc"), ("oidcClientID", "c"), ("oidcClientSecret", "s")], "`oidcTokenEndpoint`", "required"),
        (&[("skipVerify", "nah"), ("authType", "certificate")], "`skipVerify`", "true or false"),
    ];
    for (pairs, key, accepted) in cases {
        let e = error_of(pairs);
        assert!(e.contains(key) && e.contains(accepted), "{pairs:?}: {e}");
    }
}

#[test]
fn keys_are_case_insensitive_like_dapr() {
    let c = parse(&[("Brokers", "k:1"), ("COMPRESSION", "lz4"), ("clientid", "x")]).unwrap();
    assert_eq!(c.brokers.as_deref(), Some("k:1"));
    assert_eq!(c.producer.compression, Compression::Lz4);
    assert_eq!(c.client_id, "x");
}

#[test]
fn consumer_group_falls_back_to_consumer_id() {
    assert_eq!(parse(&[("consumerID", "app")]).unwrap().consumer_group.as_deref(), Some("app"));
    let both = parse(&[("consumerID", "app"), ("consumerGroup", "g")]).unwrap();
    assert_eq!(both.consumer_group.as_deref(), Some("g"));
}

#[test]
fn consumer_settings_reach_librdkafka() {
    let c = parse(&[
        ("initialOffset", "oldest"),
        ("heartbeatInterval", "1s"),
        ("sessionTimeout", "6s"),
        ("consumerGroupRebalanceStrategy", "cooperative-sticky"),
        ("maxInFlightPerStream", "100"),
        ("maxInFlightPerPartition", "500"),
        ("maxRetries", "-1"),
        ("deadLetterTopic", "dlq"),
    ])
    .unwrap();
    assert_eq!(c.subscriber.max_retries, None);
    assert_eq!(c.subscriber.max_in_flight_per_partition, 100, "per-partition bound never exceeds the stream's");
    assert_eq!(c.subscriber.dead_letter_topic.as_deref(), Some("dlq"));
    let k = c.consumer_config("b:1", "g1");
    for (key, value) in [
        ("group.id", "g1"),
        ("auto.offset.reset", "earliest"),
        ("heartbeat.interval.ms", "1000"),
        ("session.timeout.ms", "6000"),
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        // The prefetch librdkafka holds per partition: bytes and messages.
        ("queued.max.messages.kbytes", "16384"),
        ("queued.min.messages", "10000"),
        ("fetch.queue.backoff.ms", "10"),
    ] {
        assert_eq!(property(&k, key).as_deref(), Some(value), "{key}");
    }
    // A passthrough still wins.
    let k = parse(&[("kafka.queued.min.messages", "500")]).unwrap().consumer_config("b:1", "g1");
    assert_eq!(property(&k, "queued.min.messages").as_deref(), Some("500"));
}

#[test]
fn auth_password_scram_over_tls() {
    let c = parse(&[
        ("authType", "password"),
        ("saslUsername", "alice"),
        ("saslPassword", "s3cret"),
        ("saslMechanism", "SHA-512"),
        ("caCert", "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----"),
    ])
    .unwrap();
    let p = c.producer_config("b:1");
    assert_eq!(property(&p, "security.protocol").as_deref(), Some("sasl_ssl"));
    assert_eq!(property(&p, "sasl.mechanism").as_deref(), Some("SCRAM-SHA-512"));
    assert_eq!(property(&p, "sasl.username").as_deref(), Some("alice"));
    assert_eq!(property(&p, "sasl.password").as_deref(), Some("s3cret"));
    assert!(property(&p, "ssl.ca.pem").unwrap().contains("BEGIN CERTIFICATE"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "secrets never appear in Debug output: {debug}");

    let plain =
        parse(&[("authType", "password"), ("saslUsername", "a"), ("saslPassword", "b"), ("disableTls", "true")])
            .unwrap();
    let p = plain.producer_config("b:1");
    assert_eq!(property(&p, "security.protocol").as_deref(), Some("sasl_plaintext"));
    assert_eq!(property(&p, "sasl.mechanism").as_deref(), Some("PLAIN"));
}

#[test]
fn auth_mtls_certificate_and_oidc() {
    let cert = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----";
    let key = "-----BEGIN PRIVATE KEY-----\nB\n-----END PRIVATE KEY-----";
    let c = parse(&[("authType", "mtls"), ("clientCert", cert), ("clientKey", key), ("skipVerify", "true")]).unwrap();
    let p = c.producer_config("b:1");
    assert_eq!(property(&p, "security.protocol").as_deref(), Some("ssl"));
    assert_eq!(property(&p, "ssl.certificate.pem").as_deref(), Some(cert));
    assert_eq!(property(&p, "ssl.key.pem").as_deref(), Some(key));
    assert_eq!(property(&p, "enable.ssl.certificate.verification").as_deref(), Some("false"));
    assert!(!format!("{c:?}").contains("PRIVATE KEY-----\nB"), "keys never appear in Debug output");

    let tls_only = parse(&[("authType", "certificate")]).unwrap();
    assert_eq!(property(&tls_only.producer_config("b:1"), "security.protocol").as_deref(), Some("ssl"));

    let oidc = parse(&[
        ("authType", "oidc"),
        ("oidcTokenEndpoint", "https://idp.example/token"),
        ("oidcClientID", "bridge"),
        ("oidcClientSecret", "shh"),
        ("oidcScopes", "kafka,openid"),
    ])
    .unwrap();
    let p = oidc.producer_config("b:1");
    assert_eq!(property(&p, "security.protocol").as_deref(), Some("sasl_ssl"));
    assert_eq!(property(&p, "sasl.mechanism").as_deref(), Some("OAUTHBEARER"));
    assert_eq!(property(&p, "sasl.oauthbearer.method").as_deref(), Some("oidc"));
    assert_eq!(property(&p, "sasl.oauthbearer.scope").as_deref(), Some("kafka openid"));
    assert!(!format!("{oidc:?}").contains("shh"));
}

#[test]
fn passthrough_is_applied_last_and_clashes_are_errors() {
    let c = parse(&[("kafka.socket.keepalive.enable", "true"), ("kafka.linger.ms", "50")]).unwrap();
    let p = c.producer_config("b:1");
    assert_eq!(property(&p, "socket.keepalive.enable").as_deref(), Some("true"));
    assert_eq!(property(&p, "linger.ms").as_deref(), Some("50"), "passthrough wins over a default");
    assert_eq!(property(&c.consumer_config("b:1", "g"), "socket.keepalive.enable").as_deref(), Some("true"));

    let e = error_of(&[("linger", "5ms"), ("kafka.linger.ms", "50")]);
    assert!(e.contains("`kafka.linger.ms`") && e.contains("`linger`"), "{e}");
    let e = error_of(&[
        ("authType", "password"),
        ("saslUsername", "u"),
        ("saslPassword", "p"),
        ("kafka.sasl.password", "q"),
    ]);
    assert!(e.contains("`kafka.sasl.password`") && e.contains("`saslPassword`"), "{e}");
    let e = error_of(&[("kafka.enable.auto.commit", "true")]);
    assert!(e.contains("managed by the bridge"), "{e}");
    // Delivered records would get no report, and their Publish would never be answered.
    let e = error_of(&[("kafka.delivery.report.only.error", "true")]);
    assert!(e.contains("`kafka.delivery.report.only.error`") && e.contains("delivery report"), "{e}");
}

#[test]
fn misspelt_keys_warn_unknown_keys_pass() {
    let c = parse(&[("brokres", "k:1"), ("rawPayload", "true"), ("consumerID", "app")]).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("`brokres`") && c.warnings[0].contains("`brokers`"));
}

mod never_panics {
    use proptest::prelude::*;

    use super::super::ComponentConfig;

    proptest! {
        /// Any metadata map parses to a config or a typed error naming a key: never a panic.
        #[test]
        fn arbitrary_metadata(pairs in prop::collection::vec((
            prop_oneof![
                prop::sample::select(crate::config::keys::KEYS.iter().map(|k| k.name).collect::<Vec<_>>()).prop_map(str::to_owned),
                "kafka\\.[a-z.]{1,20}",
                ".{0,10}",
            ],
            prop_oneof![".{0,12}", "[0-9]{1,25}(ns|ms|s|m|h)?", Just("99999999999999999999h".to_owned())],
        ), 0..12)) {
            let map = pairs.into_iter().collect();
            match ComponentConfig::parse(&map) {
                Err(error) => prop_assert!(error.to_string().contains('`'), "{error}"),
                // What parses must reach librdkafka, which takes C strings.
                Ok(config) => {
                    for client in [config.producer_config("127.0.0.1:9092"), config.consumer_config("127.0.0.1:9092", "g")] {
                        for (key, value) in client.config_map() {
                            prop_assert!(!key.contains('\0') && !value.contains('\0'), "{key}={value:?}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_nul_byte_is_an_error_naming_the_key_not_an_ffi_failure() {
    // Minimal case found by `tests/bad_input.rs`: Init failed with INTERNAL "FFI nul error".
    let error = error_of(&[("kafka.linger.ms", "\0")]);
    assert!(error.contains("`kafka.linger.ms`") && error.contains("NUL"), "{error}");
    let error = error_of(&[("clientID", "a\0b")]);
    assert!(error.contains("`clientID`"), "{error}");
    let error = error_of(&[("odd\0key", "1")]);
    assert!(error.contains("odd\\0key"), "{error}");
}

#[test]
fn missing_topic_keys_reach_librdkafka_with_short_defaults() {
    let c = parse(&[("brokers", "k:9092")]).unwrap();
    assert_eq!(c.producer.unknown_topic_timeout, Duration::from_secs(5));
    assert_eq!(c.auto_create_topics, None, "topic creation is opt-in");
    let p = c.producer_config("k:9092");
    assert_eq!(property(&p, "topic.metadata.propagation.max.ms").as_deref(), Some("5000"));
    let consumer = c.consumer_config("k:9092", "g");
    assert_eq!(property(&consumer, "topic.metadata.refresh.interval.ms").as_deref(), Some("5000"));

    let c = parse(&[
        ("brokers", "k:9092"),
        ("unknownTopicTimeout", "2s"),
        ("metadataRefreshInterval", "1s"),
        ("autoCreateTopics", "true"),
        ("topicPartitions", "6"),
    ])
    .unwrap();
    assert_eq!(property(&c.producer_config("k:9092"), "topic.metadata.propagation.max.ms").as_deref(), Some("2000"));
    assert_eq!(
        property(&c.consumer_config("k:9092", "g"), "topic.metadata.refresh.interval.ms").as_deref(),
        Some("1000")
    );
    assert_eq!(c.auto_create_topics, Some(TopicSpec { partitions: Some(6), replication_factor: None }));

    // The passthrough may set them when the typed key is absent, and clashes when it is not.
    let c = parse(&[("brokers", "k:9092"), ("kafka.topic.metadata.refresh.interval.ms", "250")]).unwrap();
    assert_eq!(
        property(&c.consumer_config("k:9092", "g"), "topic.metadata.refresh.interval.ms").as_deref(),
        Some("250")
    );
    let error = error_of(&[("unknownTopicTimeout", "1s"), ("kafka.topic.metadata.propagation.max.ms", "100")]);
    assert!(error.contains("unknownTopicTimeout"), "{error}");
}

#[test]
fn topic_creation_values_are_checked_and_overridable() {
    assert!(error_of(&[("topicPartitions", "0")]).contains("`topicPartitions`"));
    assert!(error_of(&[("topicReplicationFactor", "-3")]).contains("`topicReplicationFactor`"));
    assert!(error_of(&[("autoCreateTopics", "perhaps")]).contains("`autoCreateTopics`"));
    let defaults = TopicSpec { partitions: Some(3), replication_factor: Some(2) };
    let overrides: HashMap<String, String> = [("topicpartitions".to_owned(), "12".to_owned())].into();
    assert_eq!(
        defaults.with_overrides(&overrides).unwrap(),
        TopicSpec { partitions: Some(12), replication_factor: Some(2) }
    );
    assert_eq!(defaults.with_overrides(&HashMap::new()).unwrap(), defaults);
    let bad: HashMap<String, String> = [("topicReplicationFactor".to_owned(), "x".to_owned())].into();
    assert!(defaults.with_overrides(&bad).unwrap_err().to_string().contains("`topicReplicationFactor`"));
}
