//! What a consumer receives: a message and its metadata, and who published
//! it.

use crate::protocol::layout::*;

/// A received message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// Queue-wide sequence number.
    pub seq: u64,
    /// Publish time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The bytes.
    pub payload: Vec<u8>,
    /// Deliveries of this message before this one (0 on first delivery): it
    /// was handed to a member that nacked it, left or died without acking.
    pub redelivered: u64,
    /// For a dead letter (received in a dead-letter group): the id of the
    /// group that gave it up after its `max_attempts` ([`Queue::group_name`](crate::Queue::group_name)
    /// names it, while that group exists: a group added later in the same
    /// slot has another id). `None` for every other message.
    pub dead_letter_from: Option<u64>,
    /// For a dead letter: the sequence number the message had when the
    /// group that gave it up received it (the dead letter itself has a new
    /// one, `seq`). `None` for every other message.
    pub dead_letter_seq: Option<u64>,
    /// The named producer that published it and its per-producer sequence
    /// number; `None` for a message from an anonymous producer.
    pub producer: Option<ProducerTag>,
    /// The time to live it was sent with ([`SendOptions::ttl`](crate::SendOptions::ttl)),
    /// counted from `ts_ns`; `None` if it had none (its group's default may
    /// still apply: it was taken before either ran out).
    pub ttl: Option<std::time::Duration>,
}

/// Who published a message: a named producer ([`ProducerBuilder::name`](crate::ProducerBuilder::name)) and
/// the per-producer sequence number it gave the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProducerTag {
    /// The producer's id ([`Queue::producer_name`](crate::Queue::producer_name) names it).
    pub id: u64,
    /// Its per-producer sequence number.
    pub pseq: u64,
}

/// Metadata of a message received into a caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Meta {
    /// Queue-wide sequence number.
    pub seq: u64,
    /// Publish time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Deliveries before this one (see [`Message::redelivered`]).
    pub redelivered: u64,
    /// See [`Message::dead_letter_from`].
    pub dead_letter_from: Option<u64>,
    /// See [`Message::dead_letter_seq`].
    pub dead_letter_seq: Option<u64>,
    /// See [`Message::producer`].
    pub producer: Option<ProducerTag>,
    /// See [`Message::ttl`].
    pub ttl: Option<std::time::Duration>,
}

/// The extensions of a record read from the spill log ([`strip_ext`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ext {
    /// The producer extension.
    pub(crate) producer: Option<ProducerTag>,
    /// The origin extension: the dead letter's old seq and its group's id.
    pub(crate) origin: Option<(u64, u64)>,
    /// The TTL extension (ns).
    pub(crate) ttl: Option<u64>,
}

/// Splits the extensions (producer, origin, TTL) off a record read from the
/// spill log into `buf` (the log keeps the ring's bytes as they were,
/// native-endian); `valid_record` checked that they fit.
pub(crate) fn strip_ext(flags: u32, buf: &mut Vec<u8>) -> Ext {
    let ext = ext_len(flags);
    if ext == 0 || buf.len() < ext {
        return Ext::default();
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        u64::from_ne_bytes(b)
    };
    let producer = (flags & FLAG_PRODUCER != 0).then(|| ProducerTag {
        id: word(0),
        pseq: word(8),
    });
    let origin = (flags & FLAG_ORIGIN_SEQ != 0).then(|| {
        let o = origin_off(flags);
        (word(o), word(o + 8))
    });
    let ttl = (flags & FLAG_TTL != 0).then(|| word(ttl_off(flags)));
    buf.drain(..ext);
    Ext {
        producer,
        origin,
        ttl,
    }
}
