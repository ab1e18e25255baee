//! Every program in examples/ runs to completion and succeeds (each checks
//! what it shows with assertions). `cargo test` builds the examples; this
//! runs them, and fails on one it cannot find (a new example needs a line
//! here, and one listed here must exist).

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/`, beside this test's `deps/`.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
}

fn run(name: &str) {
    let bin = examples_dir().join(name);
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds the examples (`cargo build --examples`)",
        bin.display()
    );
    let out = Command::new(&bin).output().unwrap();
    assert!(
        out.status.success(),
        "example {name} failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_is_listed() {
    let mut names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|n| n.strip_suffix(".rs").map(str::to_owned))
            .collect();
    names.sort();
    // quickstart runs in tests/readme.rs.
    assert_eq!(
        names,
        [
            "exactly_once",
            "fan_out",
            "ordered",
            "outbox",
            "quickstart",
            "spill",
            "work_queue"
        ]
    );
}

#[test]
fn outbox() {
    run("outbox");
}

#[test]
fn fan_out() {
    run("fan_out");
}

#[test]
fn work_queue() {
    run("work_queue");
}

#[test]
fn spill() {
    run("spill");
}

#[test]
fn exactly_once() {
    run("exactly_once");
}

#[test]
fn ordered() {
    run("ordered");
}
