//! The README's library example is `examples/quickstart.rs` as written, and
//! it runs: built by `cargo test` (examples are), run here, and it leaves
//! nothing behind.

use std::path::PathBuf;
use std::process::Command;

/// The first ```rust block after "## Library" in the README.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let lib = readme.find("## Library").expect("a Library section");
    let start = readme[lib..].find("```rust\n").expect("a rust block") + lib + 8;
    let end = readme[start..].find("```\n").expect("the end of the block") + start;
    readme[start..end].to_string()
}

/// `target/<profile>/examples/quickstart`, beside this test's `deps/`.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    dir.join("examples").join("quickstart")
}

#[test]
fn the_readme_library_example_is_the_quickstart_example() {
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/quickstart.rs"
    ))
    .unwrap();
    assert_eq!(
        readme_example(),
        file,
        "the README's library example and examples/quickstart.rs differ"
    );
}

#[test]
fn the_quickstart_example_runs_and_cleans_up() {
    let bin = example_binary();
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds the examples",
        bin.display()
    );
    for run in 0..2 {
        let out = Command::new(&bin).output().unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("order 2") && stdout.contains("ProducerTag"),
            "{stdout}"
        );
        assert!(!std::path::Path::new("/dev/shm/shmq-quickstart").exists());
    }
}
