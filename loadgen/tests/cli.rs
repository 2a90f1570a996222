//! The binary as a user runs it: bad input rejected up front, a tiny embedded sweep, then
//! `report` and `compare` on its result.

use std::process::Command;

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kafka-loadgen")).args(args).output().expect("running kafka-loadgen")
}

#[test]
fn contradictory_settings_are_rejected_before_anything_runs() {
    let out = loadgen(&["sweep", "--idempotence", "true", "--acks", "1", "--no-progress"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("idempotence=true requires acks=all"), "{stderr}");
    assert!(!stderr.contains("mock cluster"), "rejected before starting a cluster: {stderr}");

    let out = loadgen(&["sweep", "--duration", "0s", "--no-progress"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("duration is zero"));
    let out = loadgen(&["sweep", "--message-size", "2MB", "--no-progress"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than the broker allows"));
}

#[test]
fn a_tiny_embedded_sweep_then_report_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_str = out.to_str().unwrap();
    let run = loadgen(&[
        "sweep",
        "--linger-ms",
        "0,5",
        "--compression",
        "none",
        "--batch-size",
        "16384",
        "--rate",
        "1000",
        "--warmup",
        "200ms",
        "--duration",
        "500ms",
        "--cooldown",
        "100ms",
        "--no-progress",
        "--out",
        out_str,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("client-side costs only"), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("## Best settings"), "{stdout}");
    for file in ["results.json", "results.csv", "summary.md", "report.html", "step-001.hlog", "step-002.hlog"] {
        assert!(out.join(file).exists(), "{file}");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["steps"][0]["measurement"]["produced"]["messages"], 500);
    std::fs::remove_file(out.join("summary.md")).unwrap();

    let report = loadgen(&["report", out.join("results.json").to_str().unwrap()]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    assert!(out.join("summary.md").exists());

    let results = out.join("results.json");
    let compare = loadgen(&["compare", results.to_str().unwrap(), results.to_str().unwrap()]);
    assert!(compare.status.success());
    let text = String::from_utf8_lossy(&compare.stdout);
    assert_eq!(text.matches("| 1.00× |").count(), 4, "{text}");

    let not_a_result = loadgen(&["report", out.join("results.csv").to_str().unwrap()]);
    assert!(!not_a_result.status.success());
    assert!(String::from_utf8_lossy(&not_a_result.stderr).contains("not a kafka-loadgen result"));
}
