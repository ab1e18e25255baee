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
    /// The key it was sent with ([`SendOptions::key`](crate::SendOptions::key)),
    /// by which a group ordered by key hands it out; `None` if it had none.
    pub key: Option<Key>,
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
    /// See [`Message::key`].
    pub key: Option<Key>,
}

/// A message's key ([`SendOptions::key`](crate::SendOptions::key)): at most
/// [`MAX_KEY`](crate::MAX_KEY) bytes, kept inline so that [`Meta`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    len: u8,
    bytes: [u8; MAX_KEY],
}

impl Key {
    /// The key's first `len` bytes of `bytes` (`len` at most [`MAX_KEY`]).
    pub(crate) fn new(bytes: [u8; MAX_KEY], len: usize) -> Key {
        let len = len.min(MAX_KEY);
        let mut b = [0u8; MAX_KEY];
        b[..len].copy_from_slice(&bytes[..len]);
        Key {
            len: len as u8,
            bytes: b,
        }
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
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
    /// The key block: the key and its hash.
    pub(crate) key: Option<(Key, u64)>,
}

/// The key block of a record read from the spill log into `buf` (its
/// stored bytes, extensions first): `Ok(None)` without FLAG_KEY, `Err(())`
/// if it cannot be one.
pub(crate) fn key_of(flags: u32, buf: &[u8]) -> Result<Option<(Key, u64)>, ()> {
    if flags & FLAG_KEY == 0 {
        return Ok(None);
    }
    let at = ext_len(flags);
    let word = |i: usize| -> Option<u64> {
        let b = buf.get(i..i + 8)?;
        Some(u64::from_ne_bytes(b.try_into().ok()?))
    };
    let (Some(hash), Some(len)) = (word(at), word(at + 8)) else {
        return Err(());
    };
    let len = len as usize;
    if hash == 0 || hash >> 63 != 0 || len > MAX_KEY || at + key_block(len) > buf.len() {
        return Err(());
    }
    let mut bytes = [0u8; MAX_KEY];
    bytes[..len].copy_from_slice(&buf[at + KEY_HEAD..at + KEY_HEAD + len]);
    Ok(Some((Key::new(bytes, len), hash)))
}

/// Splits the extensions (producer, origin, TTL) and the key block off a
/// record read from the spill log into `buf` (the log keeps the ring's
/// bytes as they were, native-endian); `valid_record` checked that they
/// fit. A key block that cannot be one is left in place (and no key
/// returned): only a damaged log has one, which its CRC would have refused.
pub(crate) fn strip_ext(flags: u32, buf: &mut Vec<u8>) -> Ext {
    let ext = ext_len(flags);
    if buf.len() < ext {
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
    let key = key_of(flags, buf).ok().flatten();
    let skip = ext + key.map_or(0, |(k, _)| key_block(k.len()));
    buf.drain(..skip);
    Ext {
        producer,
        origin,
        ttl,
        key,
    }
}
