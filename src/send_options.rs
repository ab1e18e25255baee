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
pub struct SendOptions<'k> {
    pub(crate) ttl_ns: Option<u64>,
    pub(crate) key: Option<&'k [u8]>,
}

impl<'k> SendOptions<'k> {
    /// A plain send: no options.
    pub const fn new() -> Self {
        SendOptions {
            ttl_ns: None,
            key: None,
        }
    }

    /// A key (at most [`MAX_KEY`](crate::MAX_KEY) bytes): a group ordered
    /// by key ([`Queue::set_ordered_by_key`](crate::Queue::set_ordered_by_key))
    /// hands the messages of one key to its members one at a time, in
    /// sequence order, while other keys' messages flow. Members see it as
    /// [`Message::key`](crate::Message::key). The key and 16 bytes count
    /// against the queue's `max_msg` with the payload.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("orders", shmq::StartAt::Latest)?;
    /// q.set_ordered_by_key("orders", true)?;
    /// let mut a = q.consumer("orders").ack(shmq::Ack::Explicit).attach()?;
    /// let mut b = q.consumer("orders").ack(shmq::Ack::Explicit).attach()?;
    /// let mut p = q.producer().attach()?;
    /// for (key, msg) in [("alice", "open"), ("alice", "pay"), ("bob", "open")] {
    ///     p.send_with(msg.as_bytes(), &shmq::SendOptions::new().key(key.as_bytes()))?;
    /// }
    /// let first = a.recv()?;
    /// assert_eq!(first.key.as_deref(), Some(&b"alice"[..]));
    /// // alice's "pay" waits for "open" to be acknowledged; bob's goes ahead.
    /// assert_eq!(b.recv()?.payload, b"open");
    /// assert_eq!(b.try_recv(), Err(shmq::RecvError::AckPending { seq: 2 }));
    /// a.ack(first.seq)?;
    /// assert_eq!(a.recv()?.payload, b"pay");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub const fn key(mut self, key: &'k [u8]) -> Self {
        self.key = Some(key);
        self
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
        use crate::protocol::layout::{FLAG_KEY, FLAG_TTL};
        (if self.ttl_ns.is_some() { FLAG_TTL } else { 0 })
            | (if self.key.is_some() { FLAG_KEY } else { 0 })
    }

    /// Bytes the key block adds to the body (0 without a key).
    pub(crate) fn key_bytes(&self) -> usize {
        self.key
            .map_or(0, |k| crate::protocol::layout::key_block(k.len()))
    }
}
