#!/usr/bin/env python3
"""Validate rendered manifests (the output of `kubectl kustomize`) for scripts/check-deploy.

Usage: check-k8s-resources.py [--kubernetes-version 1.30.0] RENDERED.yaml...
       check-k8s-resources.py --self-test

- Kubernetes kinds: kubernetes-validate, strict (unknown fields are errors).
- Dapr Component / Subscription / Resiliency: deploy/schemas/dapr-*.json (strict), plus the
  traps of this project: every Dapr resource is scoped; the `dapr.io/component-container`
  annotation is a valid corev1.Container; the socket the bridge binds matches the
  Component's `spec.type`; the sockets folder is the default; a Subscription names a Component
  that exists; a Resiliency targets an existing Component with policies that exist.
- Other custom resources (Strimzi, Prometheus Operator): deploy/schemas/crd-minimal.json.

Prints one line per problem and exits 1 if there is any.
"""

import argparse
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "deploy" / "schemas"
DEFAULT_SOCKETS_FOLDER = "/tmp/dapr-components-sockets"
DEFAULT_COMPONENT_NAME = "kafka-bridge"
DAPR_SCHEMAS = {
    ("dapr.io/v1alpha1", "Component"): "dapr-component.json",
    ("dapr.io/v2alpha1", "Subscription"): "dapr-subscription.json",
    ("dapr.io/v1alpha1", "Resiliency"): "dapr-resiliency.json",
}


def known_metadata_keys():
    """The bridge's metadata keys, from the README's configuration table (kept in sync with
    the code by a unit test in bridge/src/config/keys.rs)."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            keys.add(line.split("`")[1].lower())
    return keys


def schema(name):
    return json.loads((SCHEMAS / name).read_text())


def schema_errors(doc, name):
    validator = jsonschema.Draft202012Validator(schema(name))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(doc)]


def env_of(container):
    return {e.get("name"): e.get("value") for e in container.get("env") or []}


def bridge_component_name(container):
    """The --component-name the bridge container runs with (flag, env, default)."""
    args = (container.get("command") or []) + (container.get("args") or [])
    for i, arg in enumerate(args):
        if arg == "--component-name" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--component-name="):
            return arg.split("=", 1)[1]
    return env_of(container).get("KAFKA_BRIDGE_COMPONENT_NAME", DEFAULT_COMPONENT_NAME)


def check_bridge_container(container, where, k8s_version, expected_types):
    problems = []
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": {"containers": [container]}}
    try:
        kubernetes_validate.validate(pod, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as e:
        problems.append(f"{where}: not a valid container: {e.message}")
    env = env_of(container)
    for var in ("DAPR_COMPONENTS_SOCKETS_FOLDER", "DAPR_COMPONENT_SOCKETS_FOLDER"):
        if var in env and env[var] != DEFAULT_SOCKETS_FOLDER:
            problems.append(
                f"{where}: {var}={env[var]}: keep the default sockets folder {DEFAULT_SOCKETS_FOLDER} "
                "(the injector sets the singular variable, daprd reads the plural)"
            )
    name = bridge_component_name(container)
    if expected_types and f"pubsub.{name}" not in expected_types:
        problems.append(
            f"{where}: the bridge binds {name}.sock (type pubsub.{name}) but the Components say "
            f"{sorted(expected_types)}"
        )
    for probe in ("livenessProbe", "startupProbe"):
        command = ((container.get(probe) or {}).get("exec") or {}).get("command") or []
        if command and command[-1] != "healthcheck":
            problems.append(f"{where}: {probe} should exec `kafka-pubsub-bridge healthcheck` (no shell in distroless)")
    return problems


def check(docs, k8s_version):
    problems = []
    docs = [d for d in docs if d]  # kustomize v2 leaves `{}` for `$patch: delete`
    components = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Component"}
    bridge_types = {c.get("spec", {}).get("type") for c in components.values()}
    for doc in docs:
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        name = (doc.get("metadata") or {}).get("name", "?")
        where = f"{kind}/{name}"
        if (api, kind) in DAPR_SCHEMAS:
            problems += [f"{where}: {p}" for p in schema_errors(doc, DAPR_SCHEMAS[(api, kind)])]
            if not doc.get("scopes"):
                problems.append(f"{where}: no `scopes`: every Dapr app in the namespace would load it; list the app ids")
        elif api.startswith("dapr.io/"):
            problems.append(f"{where}: unknown Dapr kind/version {api} {kind}")
        elif "/" in api and "." in api.split("/")[0] and not api.split("/")[0].endswith(".k8s.io"):
            # A custom resource outside Dapr (Strimzi, Prometheus Operator): shape only.
            problems += [f"{where}: {p}" for p in schema_errors(doc, "crd-minimal.json")]
        else:
            try:
                kubernetes_validate.validate(doc, k8s_version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(map(str, e.path))
                problems.append(f"{where}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(f"{where}: no schema: {e}")

        if kind == "Component" and doc.get("spec", {}).get("type", "").startswith("pubsub.kafka-bridge"):
            known = known_metadata_keys()
            for item in doc["spec"].get("metadata") or []:
                key = str(item.get("name", ""))
                if key.lower() not in known and not key.lower().startswith("kafka."):
                    problems.append(f"{where}: metadata {key!r} is not a key of the bridge (README, Configuration)")
        if kind == "Component":
            annotation = (doc["metadata"].get("annotations") or {}).get("dapr.io/component-container")
            if annotation is not None:
                try:
                    container = json.loads(annotation)
                except json.JSONDecodeError as e:
                    problems.append(f"{where}: dapr.io/component-container is not JSON: {e}")
                else:
                    problems += check_bridge_container(
                        container, f"{where} dapr.io/component-container", k8s_version, {doc["spec"].get("type")}
                    )
        elif kind == "Subscription":
            pubsub = doc.get("spec", {}).get("pubsubname")
            if pubsub not in components:
                problems.append(f"{where}: pubsubname {pubsub!r} names no Component here ({sorted(components)})")
        elif kind == "Resiliency":
            spec = doc.get("spec", {})
            policies = spec.get("policies", {})
            kinds = {"timeout": "timeouts", "retry": "retries", "circuitBreaker": "circuitBreakers"}
            for target, directions in (spec.get("targets", {}).get("components") or {}).items():
                if target not in components:
                    problems.append(f"{where}: targets component {target!r}, which is not defined here")
                for direction, refs in (directions or {}).items():
                    for ref_kind, ref in (refs or {}).items():
                        section = kinds.get(ref_kind)
                        if section and ref not in (policies.get(section) or {}):
                            problems.append(f"{where}: {target}.{direction}.{ref_kind} names no policy {ref!r}")
        elif kind in ("Deployment", "StatefulSet", "Job", "Pod"):
            template = doc if kind == "Pod" else doc.get("spec", {}).get("template", {})
            annotations = (template.get("metadata") or {}).get("annotations") or {}
            folder = annotations.get("dapr.io/pluggable-components-sockets-folder")
            if folder and folder != DEFAULT_SOCKETS_FOLDER:
                problems.append(f"{where}: keep the default sockets folder (not {folder}); see deploy/k8s/README.md")
            named = annotations.get("dapr.io/pluggable-components")
            containers = {c["name"]: c for c in (template.get("spec") or {}).get("containers") or []}
            if named:
                if annotations.get("dapr.io/inject-pluggable-components") == "true":
                    problems.append(f"{where}: both dapr.io/pluggable-components and inject-pluggable-components")
                for cname in (n.strip() for n in named.split(",")):
                    if cname not in containers:
                        problems.append(f"{where}: dapr.io/pluggable-components names {cname!r}, not a container")
                    else:
                        problems += check_bridge_container(
                            containers[cname], f"{where} container {cname}", k8s_version, bridge_types
                        )
            if (named or annotations.get("dapr.io/inject-pluggable-components") == "true") and (
                annotations.get("dapr.io/enabled") != "true"
            ):
                problems.append(f"{where}: pluggable components without dapr.io/enabled: \"true\"")
    return problems


BROKEN = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: c
  annotations:
    dapr.io/component-container: '{"name": "b", "imag": "x", "env": [{"name": "DAPR_COMPONENT_SOCKETS_FOLDER", "value": "/sockets"}]}'
spec:
  type: pubsub.other
  version: v1
  initTimout: 5s
  metadata:
  - name: brokers
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: d}
spec:
  type: pubsub.kafka-bridge
  version: v1
  metadata: [{name: brokers, value: "a:1"}, {name: consumerGroupp, value: x}, {name: kafka.acks, value: all}]
scopes: [app]
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s}
spec: {pubsubname: nope, topic: t, routes: {default: /x}}
scopes: [app]
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies: {retries: {a: {policy: constant}}}
  targets: {components: {nope: {outbound: {retry: b}}}}
scopes: [app]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata:
      labels: {a: b}
      annotations: {dapr.io/pluggable-components: missing}
    spec:
      containers: [{name: app, image: x, replicas: 2}]
"""

EXPECTED = [
    "Component/c: spec: Additional properties are not allowed ('initTimout'",
    "Component/c: spec/metadata/0:",
    "Component/c: no `scopes`",
    "dapr.io/component-container: not a valid container",
    "DAPR_COMPONENT_SOCKETS_FOLDER=/sockets",
    "binds kafka-bridge.sock",
    "pubsubname 'nope'",
    "metadata 'consumerGroupp' is not a key",
    "targets component 'nope'",
    "names no policy 'b'",
    "Deployment/d: spec/template/spec/containers/0: Additional properties",
    "names 'missing', not a container",
    "without dapr.io/enabled",
]


def self_test(k8s_version):
    problems = check(list(yaml.safe_load_all(BROKEN)), k8s_version)
    missed = [e for e in EXPECTED if not any(e in p for p in problems)]
    for m in missed:
        print(f"self-test: expected a problem containing {m!r}; got:\n  " + "\n  ".join(problems))
    return 1 if missed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.30.0")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.kubernetes_version)
    failed = 0
    for file in args.files:
        docs = list(yaml.safe_load_all(pathlib.Path(file).read_text()))
        problems = check(docs, args.kubernetes_version)
        for p in problems:
            print(f"{file}: {p}")
        failed |= bool(problems)
        if not problems:
            print(f"{file}: {len([d for d in docs if d])} objects valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
