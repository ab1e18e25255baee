//! Is the process that registered a member still alive?
//!
//! A pid alone is not enough: pids are reused. A member records its pid and its
//! process start time (field 22 of /proc/PID/stat, in clock ticks since boot);
//! it is alive while a process with that pid exists and started at that time.

/// This process's (pid, start time).
pub fn current() -> (u64, u64) {
    let pid = std::process::id() as u64;
    (pid, start_time(pid).unwrap_or(0))
}

/// Start time of process `pid`, if it exists.
pub fn start_time(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or
    // parentheses itself: parse from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 is at index 0, so field 22 is at index 19.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process (pid, start time) is alive.
pub fn is_alive(pid: u64, start: u64) -> bool {
    match start_time(pid) {
        Some(s) => start == 0 || s == start,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_reuse_is_detected() {
        let (pid, start) = current();
        assert!(start > 0);
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1));
        assert!(!is_alive(u32::MAX as u64 + 7, 1));
    }
}
