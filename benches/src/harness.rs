//! What the benchmarks and `shmq demo` share: a private directory in
//! `/dev/shm`, and waiting for consumer processes to join.

/// A private temporary directory in /dev/shm (memory only), or in the system
/// temporary directory where there is no /dev/shm.
pub fn shm_tempdir(prefix: &str) -> Result<tempfile::TempDir, String> {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .map_err(|e| format!("temporary directory: {e}"))
}

/// Waits until `n` live members have joined the queue's groups.
pub fn wait_members(q: &shmq::Queue, n: usize, limit: std::time::Duration) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let live = || {
        q.stat()
            .groups
            .iter()
            .map(|g| g.members.iter().filter(|m| m.alive).count())
            .sum::<usize>()
    };
    while live() < n {
        if t0.elapsed() > limit {
            return Err(format!(
                "{n} consumers did not start within {} s",
                limit.as_secs()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(())
}
