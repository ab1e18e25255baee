//! Rules about the source itself that the compiler cannot check.

use std::path::Path;

/// The protocol modules, compiled twice (here and by loom-tests).
const PROTOCOL: [&str; 5] = [
    "src/layout.rs",
    "src/region.rs",
    "src/ring.rs",
    "src/group.rs",
    "src/wait.rs",
];

fn read(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap()
}

/// Atomics come from `crate::sync` only, or loom would not see them.
#[test]
fn protocol_uses_atomics_only_through_sync() {
    for f in PROTOCOL {
        let src = read(f);
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = [
        "src",
        "bin",
        "bin/cmd",
        "benches/src",
        "benches/benches",
        "examples",
        "loom-tests/src",
    ];
    let files = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path());
    for path in files.filter(|p| p.extension().is_some_and(|e| e == "rs")) {
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
