//! Is the process that registered a member still alive?
//!
//! A pid alone is not enough: pids are reused. A member records its pid and its
//! process start time (field 22 of /proc/PID/stat, in clock ticks since boot);
//! it is alive while a process with that pid exists, started at that time,
//! and has not exited. A process that has exited but that its parent has not
//! waited for yet (a zombie, state `Z`, or `X` while it is being reaped) keeps
//! its pid and its /proc entry, but will never touch the queue again: it is
//! dead. (A worker pool whose supervisor reaps its children only at shutdown
//! would otherwise pin their unacknowledged messages for ever.)

/// This process's (pid, start time).
pub fn current() -> (u64, u64) {
    let pid = std::process::id() as u64;
    (pid, start_time(pid).unwrap_or(0))
}

/// What /proc/PID/stat says of a process: its state letter and start time.
fn proc_stat(pid: u64) -> Option<(u8, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or
    // parentheses itself: parse from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: field 3 (the state) is at index 0, field 22 (the start
    // time) at index 19.
    let state = *fields.next()?.as_bytes().first()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Start time of process `pid`, if it exists (zombie or not).
pub fn start_time(pid: u64) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// Whether the process (pid, start time) is alive: it exists, is the same
/// process (start time; 0 when it could not be read at registration), and
/// has not exited (a zombie is dead).
pub fn is_alive(pid: u64, start: u64) -> bool {
    match proc_stat(pid) {
        Some((state, s)) => (start == 0 || s == start) && state != b'Z' && state != b'X',
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

    #[test]
    fn a_zombie_is_dead() {
        // A child that exits and is not waited for stays a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as u64;
        let start = start_time(pid).expect("the child's /proc entry exists until it is reaped");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while is_alive(pid, start) {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Still there, as a zombie, until reaped.
        assert_eq!(proc_stat(pid).map(|(s, _)| s), Some(b'Z'));
        child.wait().unwrap();
    }
}
