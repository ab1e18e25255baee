//! What a message is sent with besides its payload ([`SendOptions`]).

use std::time::Duration;

/// How to publish one message, beyond its bytes: the options of
/// [`Producer::send_with`](crate::Producer::send_with) and its timed and
/// non-blocking forms. The default is a plain [`Producer::send`](crate::Producer::send).
///
/// ```
/// use std::time::Duration;
/// let q = shmq::QueueOptions::new().in_memory()?;
/// q.add_group("audit", shmq::StartAt::Latest)?;
/// let mut audit = q.consumer("audit").attach()?;
/// let mut p = q.producer().attach()?;
/// p.send_with(b"fresh", &shmq::SendOptions::new().ttl(Duration::from_secs(60)))?;
/// let m = audit.recv()?;
/// assert_eq!(m.ttl, Some(Duration::from_secs(60)));
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct SendOptions {
    pub(crate) ttl_ns: Option<u64>,
}

impl SendOptions {
    /// A plain send: no options.
    pub const fn new() -> Self {
        SendOptions { ttl_ns: None }
    }

    /// A time to live, counted from the publish time (`ts_ns`): a member of
    /// a group that has not taken the message by then never gets it; the
    /// group gives it up instead, to its dead-letter group if it has one,
    /// and counts it (`GroupStat::ttl_expired`). With a group default
    /// ([`Queue::set_ttl`](crate::Queue::set_ttl)) too, the shorter one
    /// applies. The message carries it in 8 more bytes of its record.
    /// Durations beyond `u64::MAX` ns (584 years) are kept as that.
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        let ns = ttl.as_nanos();
        self.ttl_ns = Some(if ns > u64::MAX as u128 {
            u64::MAX
        } else {
            ns as u64
        });
        self
    }

    /// The record flags these options add (layout.rs).
    pub(crate) fn flags(&self) -> u32 {
        if self.ttl_ns.is_some() {
            crate::protocol::layout::FLAG_TTL
        } else {
            0
        }
    }
}
