//! Queue files are private by default, cannot be redirected by a planted
//! symlink, and another user's private queue is refused.

use shmq::{OpenError, Queue, QueueOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

#[test]
fn files_are_private_unless_a_mode_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q");
    QueueOptions::new().create(&p).unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().mode() & 0o777,
        0o600 & !umask()
    );
    let shared = dir.path().join("shared");
    let st = Command::new(SHMQ)
        .args(["create", shared.to_str().unwrap(), "--mode", "664"])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::metadata(&shared).unwrap().mode() & 0o777,
        0o664 & !umask()
    );
}

#[test]
fn a_planted_symlink_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let p = dir.path().join("q");
    std::os::unix::fs::symlink(&victim, &p).unwrap();
    // Without --force: refused, and the target is untouched.
    assert!(matches!(
        QueueOptions::new().create(&p),
        Err(OpenError::AlreadyExists(_))
    ));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    // A dangling link is refused too (nothing is created through it).
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    assert!(matches!(
        QueueOptions::new().create(&dangling),
        Err(OpenError::AlreadyExists(_))
    ));
    assert!(!dir.path().join("nowhere").exists());
    // With --force the link itself is replaced; the target still is untouched.
    QueueOptions::new().replace(true).create(&p).unwrap();
    assert!(!std::fs::symlink_metadata(&p)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    Queue::open(&p).unwrap();
}

#[test]
fn another_users_private_queue_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Giving a file to another user needs root; CI runs as root.
        eprintln!("skipped: not root, cannot chown a queue to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q");
    QueueOptions::new().create(&p).unwrap();
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    match Queue::open(&p) {
        Err(OpenError::ForeignOwner {
            uid: 65534, mode, ..
        }) => assert_eq!(mode & 0o077, 0),
        other => panic!("expected ForeignOwner, got {:?}", other.err()),
    }
    let out = Command::new(SHMQ)
        .args(["stat", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("owned by uid 65534") && err.lines().count() == 1,
        "{err}"
    );
    // Shared by its mode, it opens.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    Queue::open(&p).unwrap();
}
