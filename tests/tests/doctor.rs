//! `kafka-pubsub-bridge doctor` against Tansu: one healthy setup and the broken ones an SRE
//! meets (wrong broker, bad credentials, missing topic, stale socket, misspelt key). Each
//! runs the real binary with `--json` and checks the exit status and which layer failed.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testkit::bridge::{COMPONENT, bridge_binary};
use testkit::broker::free_port;
use testkit::{BridgeUnderTest, Broker, BrokerKind, unique};

/// A Component (type `pubsub.<COMPONENT>`, the test bridge's socket name) and, with `topic`,
/// a Subscription of it.
fn yaml(metadata: &[(&str, &str)], topic: Option<&str>) -> String {
    let mut text = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders-pubsub\nspec:\n  type: pubsub.{COMPONENT}\n  version: v1\n  metadata:\n"
    );
    for (key, value) in metadata {
        text.push_str(&format!("    - name: {key}\n      value: \"{value}\"\n"));
    }
    text.push_str("scopes:\n  - orders\n");
    if let Some(topic) = topic {
        text.push_str(&format!(
            "---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders\nspec:\n  pubsubname: orders-pubsub\n  topic: {topic}\n  routes:\n    default: /orders\nscopes:\n  - orders\n"
        ));
    }
    text
}

/// Runs the doctor; returns (exit status success, the JSON report).
async fn doctor(yaml: &str, sockets_folder: Option<&Path>) -> (bool, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("component.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut command = tokio::process::Command::new(bridge_binary());
    command.args(["doctor", "--json", "--timeout", "3s", "--component"]).arg(&file);
    if let Some(folder) = sockets_folder {
        command.arg("--sockets-folder").arg(folder);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("doctor finishes").unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    (out.status.success(), report)
}

fn checks<'a>(report: &'a Value, layer: &str, status: &str) -> Vec<&'a Value> {
    report["checks"].as_array().unwrap().iter().filter(|c| c["layer"] == layer && c["status"] == status).collect()
}

/// The one failure of the report: its layer, message and fix.
fn only_failure(report: &Value) -> (String, String, String) {
    let failures: Vec<&Value> = report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "fail").collect();
    assert_eq!(failures.len(), 1, "exactly one failure expected: {failures:#?}");
    let f = failures[0];
    assert!(f["fix"].as_str().is_some_and(|fix| !fix.is_empty()), "every failure has a fix: {f}");
    (f["layer"].as_str().unwrap().into(), f["message"].as_str().unwrap().into(), f["fix"].as_str().unwrap().into())
}

fn socket_folder(bridge: &BridgeUnderTest) -> &Path {
    bridge.socket().parent().unwrap()
}

async fn tansu_with_topics(topics: &[&str]) -> Broker {
    let broker = Broker::start(BrokerKind::Tansu).await;
    for topic in topics {
        broker.create_topic(topic, 2).await;
    }
    broker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_setup_passes_every_layer() {
    let (topic, dead) = (unique("orders"), unique("orders-dlt"));
    let broker = tansu_with_topics(&[&topic, &dead]).await;
    let bridge = BridgeUnderTest::in_process(None);
    let group = unique("g");
    let metadata = [("brokers", broker.bootstrap()), ("consumerGroup", &group), ("deadLetterTopic", &dead)];
    let (ok, report) = doctor(&yaml(&metadata, Some(&topic)), Some(socket_folder(&bridge))).await;
    assert!(ok, "a healthy setup exits 0");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["component"], "orders-pubsub");
    let socket = checks(&report, "socket", "pass");
    assert!(socket.iter().any(|c| c["message"].as_str().unwrap().contains("reflection v1alpha lists")), "{socket:?}");
    assert!(socket.iter().any(|c| c["message"] == "health: SERVING"), "{socket:?}");
    assert_eq!(checks(&report, "kafka", "pass").len(), 1);
    let topics = checks(&report, "topics", "pass").len() + checks(&report, "topics", "warn").len();
    assert_eq!(topics, 2, "the topic and the dead-letter topic were found");
    assert!(bridge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_broker_fails_the_kafka_layer() {
    let topic = unique("orders");
    let nobody = format!("127.0.0.1:{}", free_port());
    let (ok, report) = doctor(&yaml(&[("brokers", &nobody), ("consumerGroup", "g")], Some(&topic)), None).await;
    assert!(!ok);
    let (layer, message, fix) = only_failure(&report);
    assert_eq!(layer, "kafka");
    assert!(message.contains(&nobody), "{message}");
    assert!(fix.contains("brokers"), "{fix}");
    assert_eq!(checks(&report, "topics", "skip").len(), 1, "nothing below an unreachable cluster is checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_fail_the_kafka_layer_with_a_sasl_fix() {
    let broker = Broker::tansu_requiring_authentication().await;
    let metadata = [
        ("brokers", broker.bootstrap()),
        ("authType", "password"),
        ("saslUsername", "intruder"),
        ("saslPassword", "not-the-password"),
        ("disableTls", "true"),
    ];
    let (ok, report) = doctor(&yaml(&metadata, None), None).await;
    assert!(!ok);
    let (layer, message, fix) = only_failure(&report);
    assert_eq!(layer, "kafka");
    assert!(message.contains("SASL") || message.to_lowercase().contains("authentic"), "{message}");
    assert!(fix.contains("saslPassword"), "{fix}");
    assert!(!report.to_string().contains("not-the-password"), "secrets never appear in the report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topic_fails_the_topics_layer() {
    let broker = tansu_with_topics(&[]).await;
    let topic = unique("never-created");
    let (ok, report) =
        doctor(&yaml(&[("brokers", broker.bootstrap()), ("consumerGroup", "g")], Some(&topic)), None).await;
    assert!(!ok);
    let (layer, message, fix) = only_failure(&report);
    assert_eq!(layer, "topics");
    assert!(message.contains(&topic) && message.contains("does not exist"), "{message}");
    assert!(fix.contains("create it"), "{fix}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_fails_the_socket_layer() {
    let topic = unique("orders");
    let broker = tansu_with_topics(&[&topic]).await;
    let folder = tempfile::tempdir().unwrap();
    // A bridge that crashed: its socket file is left, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(folder.path().join(format!("{COMPONENT}.sock"))).unwrap());
    let metadata = [("brokers", broker.bootstrap()), ("consumerGroup", "g")];
    let (ok, report) = doctor(&yaml(&metadata, Some(&topic)), Some(folder.path())).await;
    assert!(!ok);
    let (layer, message, fix) = only_failure(&report);
    assert_eq!(layer, "socket");
    assert!(message.contains("stale"), "{message}");
    assert!(fix.contains("daprd"), "{fix}");
    assert_eq!(checks(&report, "kafka", "pass").len(), 1, "the layers below are still checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelt_key_fails_the_component_layer_with_the_hint_init_logs() {
    let topic = unique("orders");
    let broker = tansu_with_topics(&[&topic]).await;
    let metadata = [("brokers", broker.bootstrap()), ("consumerGroupp", "orders")];
    let (ok, report) = doctor(&yaml(&metadata, Some(&topic)), None).await;
    assert!(!ok);
    let (layer, message, fix) = only_failure(&report);
    assert_eq!(layer, "component");
    assert!(message.contains("did you mean `consumerGroup`"), "{message}");
    assert_eq!(fix, "rename `consumerGroupp` to `consumerGroup`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_value_is_reported_as_init_would() {
    let (ok, report) = doctor(&yaml(&[("brokers", "127.0.0.1:9092"), ("initialOffset", "earliest")], None), None).await;
    assert!(!ok);
    let (layer, message, _) = only_failure(&report);
    assert_eq!(layer, "component");
    assert!(message.contains("initialOffset") && message.contains("newest"), "{message}");
    assert_eq!(checks(&report, "kafka", "skip").len(), 1);
}
