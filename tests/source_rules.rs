//! Rules about the source itself that the compiler cannot check.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir` (relative to the repository root).
fn rust_files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The protocol modules, compiled twice (here and by loom-tests): every file
/// in src/protocol/, and the region abstraction they run on.
fn protocol_files() -> Vec<PathBuf> {
    let mut files = rust_files("src/protocol");
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/region.rs"));
    files
}

/// Atomics come from `crate::sync` only, or loom would not see them.
#[test]
fn protocol_uses_atomics_only_through_sync() {
    let files = protocol_files();
    assert!(files.len() >= 9, "{files:?}");
    for path in files {
        let f = path.display();
        let src = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "std::sync::atomic",
            "core::sync::atomic",
            "portable_atomic",
            "std::hint::spin_loop",
            "std::thread::yield_now",
        ] {
            assert!(!src.contains(banned), "{f} names {banned}: use crate::sync");
        }
    }
}

/// Every `unsafe` block and impl (library, CLI, benchmarks, examples, loom
/// harness) says why it is sound.
#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let dirs = ["src", "bin", "benches", "examples", "loom-tests/src"];
    for path in dirs.iter().flat_map(|d| rust_files(d)) {
        let src = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = src.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_unsafe_use =
                (t.contains("unsafe {") || t.starts_with("unsafe impl")) && !t.starts_with("//");
            if !is_unsafe_use {
                continue;
            }
            // Look back over the comment block (and attributes) above it.
            let documented = lines[..i]
                .iter()
                .rev()
                .take_while(|p| {
                    let p = p.trim_start();
                    p.starts_with("//")
                        || p.starts_with("#[")
                        || p.ends_with(':')
                        || p.ends_with("= ")
                })
                .any(|p| p.contains("SAFETY:"))
                || t.contains("SAFETY:");
            assert!(
                documented,
                "{}:{}: unsafe without a // SAFETY: comment",
                path.display(),
                i + 1
            );
        }
    }
}
