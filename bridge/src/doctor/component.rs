//! The first layer: the Component YAML, read as daprd reads it and parsed as Init parses it.
//!
//! daprd hands the bridge every `spec.metadata` entry (secrets resolved) plus `consumerID`
//! (the app id) when the Component does not set it. The doctor cannot read Kubernetes
//! secrets: a `secretKeyRef` it cannot resolve is reported, and `--set key=value` supplies it.

use std::collections::HashMap;

use serde::Deserialize;
use serde_yaml::Value;

use super::Layer;
use crate::cli::DoctorArgs;
use crate::config::ComponentConfig;

/// What the later layers need from the YAML.
pub(crate) struct Found {
    /// `metadata.name`: daprd's `x-component-instance`.
    pub(crate) name: String,
    /// The socket file daprd looks for: `<type without "pubsub.">.sock`.
    pub(crate) socket_name: String,
    /// The parsed metadata, when it parsed.
    pub(crate) config: Option<ComponentConfig>,
    /// Topics to check: the Subscriptions' for this Component, and --topic.
    pub(crate) topics: Vec<String>,
    /// The consumer group subscriptions join.
    pub(crate) group: Option<String>,
    /// Metadata keys whose secrets the doctor could not resolve.
    pub(crate) unresolved: Vec<String>,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn str_at(value: &Value, path: &[&str]) -> Option<String> {
    get(value, path).and_then(Value::as_str).map(str::to_owned)
}

/// Checks the YAML and its metadata.
pub(crate) fn check(args: &DoctorArgs, layer: &mut Layer<'_>) -> Option<Found> {
    let path = &args.component;
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) => {
            layer.fail(format!("cannot read {}: {e}", path.display()), "pass the Component YAML with --component");
            return None;
        }
    };
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&source) {
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(value),
            Err(e) => {
                layer.fail(format!("{} is not valid YAML: {e}", path.display()), "fix the YAML syntax at that line");
                return None;
            }
        }
    }
    let is_kind = |d: &&Value, kind: &str| str_at(d, &["kind"]).as_deref() == Some(kind);
    let components: Vec<&Value> = documents.iter().filter(|d| is_kind(d, "Component")).collect();
    let Some(component) = components.first().copied() else {
        layer.fail(
            format!("{} has no `kind: Component`", path.display()),
            "point --component at the Dapr Component YAML (apiVersion dapr.io/v1alpha1, kind Component)",
        );
        return None;
    };
    if components.len() > 1 {
        layer.warn(format!("{} Components in the file; checking the first", components.len()), "one per file");
    }
    let name = str_at(component, &["metadata", "name"]).unwrap_or_default();
    let api = str_at(component, &["apiVersion"]).unwrap_or_default();
    let kind_type = str_at(component, &["spec", "type"]).unwrap_or_default();
    let version = str_at(component, &["spec", "version"]).unwrap_or_default();
    if name.is_empty() {
        layer.fail("the Component has no metadata.name", "set metadata.name (daprd sends it as x-component-instance)");
    }
    if api != "dapr.io/v1alpha1" {
        layer.fail(format!("apiVersion is `{api}`"), "set apiVersion: dapr.io/v1alpha1");
    }
    let Some(socket_name) = kind_type.strip_prefix("pubsub.").filter(|n| !n.is_empty()).map(str::to_lowercase) else {
        layer.fail(
            format!("spec.type is `{kind_type}`, not pubsub.<component name>"),
            "set spec.type: pubsub.<the bridge's --component-name> (e.g. pubsub.kafka-bridge)",
        );
        return None;
    };
    if version != "v1" {
        layer.fail(format!("spec.version is `{version}`"), "set spec.version: v1 (pluggable components are v1)");
    }
    layer.pass(format!("Component {name}: type {kind_type} {version}, socket {socket_name}.sock"));
    match get(component, &["scopes"]).and_then(Value::as_sequence) {
        Some(scopes) if !scopes.is_empty() => {
            let apps: Vec<String> = scopes.iter().filter_map(text).collect();
            layer.pass(format!("scoped to {}", apps.join(", ")));
        }
        _ => layer.warn(
            "no `scopes`: every Dapr app in the namespace loads this Component (and, with injection, gets the bridge)",
            "list the app ids under `scopes:`",
        ),
    }

    // spec.metadata → the properties daprd would send to Init.
    let mut properties = HashMap::new();
    let mut unresolved = Vec::new();
    let items = get(component, &["spec", "metadata"]).and_then(Value::as_sequence).cloned().unwrap_or_default();
    for item in &items {
        let Some(key) = str_at(item, &["name"]) else {
            layer.fail("a spec.metadata entry has no `name`", "every metadata entry needs name and value");
            continue;
        };
        if let Some(value) = item.get("value") {
            match text(value) {
                Some(v) => {
                    properties.insert(key, v);
                }
                None => layer.fail(format!("metadata `{key}` is not a scalar"), "write the value as a string"),
            }
        } else if let Some(reference) = item.get("secretKeyRef") {
            let secret = str_at(reference, &["name"]).unwrap_or_default();
            let secret_key = str_at(reference, &["key"]).unwrap_or_default();
            if !args.set.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) {
                // A stand-in, so the rest of the metadata still parses; Kafka is not dialled
                // with it (see `unresolved`).
                properties.insert(key.clone(), format!("<secret {secret}/{secret_key}>"));
                unresolved.push(key.clone());
                layer.warn(
                    format!("metadata `{key}` comes from secret {secret}/{secret_key}, which the doctor cannot read"),
                    format!("pass --set {key}=<value> to check Kafka with it"),
                );
            }
        } else if let Some(variable) = item.get("envRef").and_then(Value::as_str) {
            properties.insert(key, std::env::var(variable).unwrap_or_default());
        } else {
            layer.fail(format!("metadata `{key}` has no value"), "add `value:` or `secretKeyRef:`");
        }
    }
    for (key, value) in &args.set {
        properties.retain(|k, _| !k.eq_ignore_ascii_case(key));
        properties.insert(key.clone(), value.clone());
    }
    let has = |key: &str| properties.keys().any(|k| k.eq_ignore_ascii_case(key));
    if !has("consumerID") {
        if let Some(app) = &args.app_id {
            properties.insert("consumerID".to_owned(), app.clone());
        }
    }

    let config = match ComponentConfig::parse(&properties) {
        Ok(config) => {
            layer.pass(format!("metadata: {} keys parsed as Init parses them", properties.len()));
            for warning in &config.warnings {
                let fix = warning
                    .split('`')
                    .collect::<Vec<_>>()
                    .get(1..4)
                    .map(|parts| format!("rename `{}` to `{}`", parts[0], parts[2]))
                    .unwrap_or_else(|| "correct the key's spelling".to_owned());
                layer.fail(warning.clone(), fix);
            }
            if config.brokers.is_none() {
                layer.fail(
                    "no `brokers`: Init works only against a bridge started with --embedded-kafka (nothing durable)",
                    "add metadata `brokers: host:port[,host:port]`",
                );
            }
            Some(config)
        }
        Err(e) => {
            layer.fail(format!("Init would fail: {e}"), "correct that key (see the README's configuration reference)");
            None
        }
    };

    // Topics: Subscriptions in the same file that use this Component, then --topic.
    let mut topics = Vec::new();
    for subscription in documents.iter().filter(|d| is_kind(d, "Subscription")) {
        if str_at(subscription, &["spec", "pubsubname"]).as_deref() == Some(name.as_str()) {
            if let Some(topic) = str_at(subscription, &["spec", "topic"]) {
                topics.push(topic);
            }
        }
    }
    topics.extend(args.topics.iter().cloned());
    topics.dedup();
    let group = config.as_ref().and_then(|c| c.consumer_group.clone());
    if config.is_some() && group.is_none() {
        layer.warn(
            "no consumerGroup: daprd uses the app id (consumerID)",
            "set consumerGroup, or pass --app-id to check the group",
        );
    }
    Some(Found { name, socket_name, config, topics, group, unresolved })
}
