//! Time to live: a message's own (the TTL extension of its record,
//! layout.rs) and its group's default (the group slot's `ttl`). A message
//! whose time to live ran out before a member takes it is not handed to the
//! member: the member gives it up instead (to the group's dead-letter group
//! if it has one, as `max_attempts` does) and counts it (`ttl_expired`).
//!
//! Expiry is judged on the wall clock (CLOCK_REALTIME, as `ts_ns`), when a
//! member takes the message, first delivery or redelivery alike: a member
//! never gets a message whose time to live has passed. With both a
//! message's TTL and its group's, the shorter one applies (as RabbitMQ's
//! per-message and per-queue TTLs do).

use crate::protocol::ring::Ring;
use crate::region::Region;
use crate::sync::Ordering;

/// Group `g`'s default time to live in ns (0: none).
#[inline]
pub fn group_ttl<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    // Relaxed: a configuration word; a take that reads the old value just
    // before a change is ordered before it.
    ring.group(g).ttl().load(Ordering::Relaxed)
}

/// Sets group `g`'s default time to live (ns; 0: none).
pub fn set_group_ttl<R: Region>(ring: &Ring<R>, g: usize, ttl_ns: u64) {
    ring.group(g).ttl().store(ttl_ns, Ordering::Relaxed);
}

/// The wall-clock time (ns since the epoch) at which a message published at
/// `ts_ns` with its own time to live `own` (ns) expires in a group whose
/// default is `group` (ns, 0: none); `None` if it never does.
#[inline]
pub fn expires_at(ts_ns: u64, own: Option<u64>, group: u64) -> Option<u64> {
    let ttl = match (own, group) {
        (Some(t), 0) => t,
        (Some(t), g) => t.min(g),
        (None, 0) => return None,
        (None, g) => g,
    };
    Some(ts_ns.saturating_add(ttl))
}

/// Counts a message of group `g` whose time to live ran out before a member
/// took it.
pub fn note_expired<R: Region>(ring: &Ring<R>, g: usize) {
    ring.group(g).ttl_expired().fetch_add(1, Ordering::Relaxed);
}

/// Messages of group `g` whose time to live ran out before a member took
/// them.
pub fn expired<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    ring.group(g).ttl_expired().load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::expires_at;

    #[test]
    fn the_shorter_ttl_applies() {
        assert_eq!(expires_at(100, None, 0), None);
        assert_eq!(expires_at(100, Some(5), 0), Some(105));
        assert_eq!(expires_at(100, None, 7), Some(107));
        assert_eq!(expires_at(100, Some(5), 7), Some(105));
        assert_eq!(expires_at(100, Some(9), 7), Some(107));
        assert_eq!(expires_at(u64::MAX - 1, Some(5), 0), Some(u64::MAX));
    }
}
