//! Staged files: what a scheduled message or a prepared transaction is
//! kept as until it is published, byte by byte, and their names.
//!
//! ```text
//! HEADER (48 bytes, native-endian like the queue file)
//!   0  magic    [u8; 8]  b"SHMQSTG\0"
//!   8  version  u32      STAGED_VERSION
//!   12 kind     u32      1: a scheduled message, 2: a prepared transaction
//!   16 id       u64      the schedule id or the transaction id (header STAGE SEQ)
//!   24 due_ns   u64      scheduled: CLOCK_REALTIME ns it is due;
//!                        transaction: the producer id it belongs to
//!   32 made_ns  u64      CLOCK_REALTIME ns it was staged
//!   40 count    u32      messages that follow
//!   44 crc      u32      CRC32C of bytes 0..44 and everything after 48
//! MESSAGES, one after another, unpadded:
//!   0  flags    u32      bit 0: a TTL follows; bit 1: a key
//!   4  key_len  u32      0 without a key, else at most MAX_KEY
//!   8  ttl_ns   u64      0 without a TTL
//!   16 len      u32      payload bytes, at most the queue's max_msg
//!   20 (zero)   u32
//!   24 key bytes, then payload bytes
//! ```
//!
//! A file is written whole under a temporary name and renamed into place,
//! so a name that is there always has a whole file behind it. Still, what
//! is read is checked as untrusted input (lengths against the file and the
//! queue's limits, the CRC): a damaged file is refused with a reason, never
//! published in part.
//!
//! # Names (in the queue's staging directory, `Queue::staged_dir`)
//! - `d-<due_ns:020>-<id:020>`: a scheduled message, waiting to be due;
//!   sorted by name, the earliest due comes first (ties in schedule order).
//! - `d-<due_ns:020>-<id:020>.r<pseq>`: the same, claimed for release as
//!   pseq `pseq` of the releasing identity (schedule.rs).
//! - `t-<producer id:016x>-<txid:020>`: a prepared transaction.
//! - `t-<producer id:016x>-<txid:020>.c<pseq>`: a transaction whose commit
//!   was decided, publishing from its producer's pseq `pseq` (txn.rs).
//! - `.tmp-…`: being written; `….bad`: refused as damaged (kept for a
//!   person to look at, `shmq check` reports them).

use crate::error::{Reason, SendError};
use crate::protocol::layout::{key_block, FLAG_TTL, MAX_KEY};

/// The eight bytes every staged file starts with.
const MAGIC: [u8; 8] = *b"SHMQSTG\0";
/// The staged file format version this build reads and writes.
const STAGED_VERSION: u32 = 1;
/// Header bytes.
const HEADER: usize = 48;
/// Bytes before each message's key.
const MSG_HEADER: usize = 24;
/// Kind word of a scheduled message.
pub(crate) const KIND_SCHEDULED: u32 = 1;
/// Kind word of a prepared transaction.
pub(crate) const KIND_TXN: u32 = 2;

/// One message as staged: its payload and the options it was sent with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StagedMsg {
    pub(crate) payload: Vec<u8>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) ttl_ns: Option<u64>,
}

impl StagedMsg {
    /// `msg` with what `opts` adds (key, TTL).
    pub(crate) fn new(msg: &[u8], opts: &crate::SendOptions) -> StagedMsg {
        StagedMsg {
            payload: msg.to_vec(),
            key: opts.key.map(<[u8]>::to_vec),
            ttl_ns: opts.ttl_ns,
        }
    }

    /// The record flags it is published with, the key's aside (the key
    /// block is part of the body: `body_len`).
    pub(crate) fn flags(&self) -> u32 {
        if self.ttl_ns.is_some() {
            FLAG_TTL
        } else {
            0
        }
    }

    /// The record body: key block and payload.
    pub(crate) fn body_len(&self) -> usize {
        self.payload.len() + self.key.as_ref().map_or(0, |k| key_block(k.len()))
    }

    /// Refused as a send would refuse it, for a queue of `max_msg`.
    pub(crate) fn check(&self, max_msg: usize) -> Result<(), SendError> {
        if let Some(k) = self.key.as_ref().filter(|k| k.len() > MAX_KEY) {
            return Err(SendError::KeyTooLong {
                len: k.len(),
                max: MAX_KEY,
            });
        }
        if self.body_len() > max_msg {
            return Err(SendError::TooLarge {
                len: self.body_len(),
                max: max_msg,
            });
        }
        Ok(())
    }
}

/// A staged file's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Staged {
    pub(crate) kind: u32,
    pub(crate) id: u64,
    /// Due time (scheduled) or producer id (transaction).
    pub(crate) due_or_producer: u64,
    pub(crate) made_ns: u64,
    pub(crate) msgs: Vec<StagedMsg>,
}

/// The file's bytes.
pub(crate) fn encode(s: &Staged) -> Vec<u8> {
    let body: usize = s
        .msgs
        .iter()
        .map(|m| MSG_HEADER + m.key.as_ref().map_or(0, Vec::len) + m.payload.len())
        .sum();
    let mut b = Vec::with_capacity(HEADER + body);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&STAGED_VERSION.to_ne_bytes());
    b.extend_from_slice(&s.kind.to_ne_bytes());
    b.extend_from_slice(&s.id.to_ne_bytes());
    b.extend_from_slice(&s.due_or_producer.to_ne_bytes());
    b.extend_from_slice(&s.made_ns.to_ne_bytes());
    b.extend_from_slice(&(s.msgs.len() as u32).to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    for m in &s.msgs {
        let key = m.key.as_deref().unwrap_or_default();
        let flags = u32::from(m.ttl_ns.is_some()) | (u32::from(m.key.is_some()) << 1);
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&(key.len() as u32).to_ne_bytes());
        b.extend_from_slice(&m.ttl_ns.unwrap_or(0).to_ne_bytes());
        b.extend_from_slice(&(m.payload.len() as u32).to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&m.payload);
    }
    let crc = crc(&b);
    b[44..48].copy_from_slice(&crc.to_ne_bytes());
    b
}

fn crc(b: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&b[..44]), &b[HEADER..])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// Reads a staged file's bytes, checked against a queue of `max_msg`.
pub(crate) fn decode(b: &[u8], max_msg: usize) -> Result<Staged, Reason> {
    if b.len() < HEADER || b[..8] != MAGIC {
        return Err(Reason::new("not a staged file"));
    }
    let version = u32_at(b, 8);
    if version != STAGED_VERSION {
        return Err(Reason::new(format!(
            "staged file version {version}, this build reads {STAGED_VERSION}"
        )));
    }
    if u32_at(b, 44) != crc(b) {
        return Err(Reason::new("CRC mismatch: the file is damaged"));
    }
    let kind = u32_at(b, 12);
    if kind != KIND_SCHEDULED && kind != KIND_TXN {
        return Err(Reason::new(format!("unknown kind {kind}")));
    }
    let count = u32_at(b, 40) as usize;
    let mut msgs = Vec::new();
    let mut at = HEADER;
    for i in 0..count {
        let bad = |what: &str| Reason::new(format!("message {i}: {what}"));
        if b.len() - at < MSG_HEADER {
            return Err(bad("truncated"));
        }
        let flags = u32_at(b, at);
        let key_len = u32_at(b, at + 4) as usize;
        let ttl = u64_at(b, at + 8);
        let len = u32_at(b, at + 16) as usize;
        if flags & !3 != 0 || (flags & 2 == 0 && key_len != 0) {
            return Err(bad("unknown flags"));
        }
        if key_len > MAX_KEY {
            return Err(bad("key longer than MAX_KEY"));
        }
        // The key block counts against max_msg with the payload.
        let key_block = if flags & 2 != 0 {
            key_block(key_len)
        } else {
            0
        };
        if len.saturating_add(key_block) > max_msg {
            return Err(bad("payload (and key) longer than the queue's max_msg"));
        }
        at += MSG_HEADER;
        if b.len() - at < key_len + len {
            return Err(bad("truncated"));
        }
        msgs.push(StagedMsg {
            key: (flags & 2 != 0).then(|| b[at..at + key_len].to_vec()),
            payload: b[at + key_len..at + key_len + len].to_vec(),
            ttl_ns: (flags & 1 != 0).then_some(ttl),
        });
        at += key_len + len;
    }
    if at != b.len() {
        return Err(Reason::new("bytes after the last message"));
    }
    Ok(Staged {
        kind,
        id: u64_at(b, 16),
        due_or_producer: u64_at(b, 24),
        made_ns: u64_at(b, 32),
        msgs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Staged {
        Staged {
            kind: KIND_TXN,
            id: 7,
            due_or_producer: 3,
            made_ns: 11,
            msgs: vec![
                StagedMsg {
                    payload: b"a".to_vec(),
                    key: Some(b"k".to_vec()),
                    ttl_ns: Some(5),
                },
                StagedMsg::default(),
            ],
        }
    }

    #[test]
    fn a_staged_file_reads_back_as_written() {
        let s = sample();
        assert_eq!(decode(&encode(&s), 100), Ok(s));
    }

    #[test]
    fn any_damage_or_truncation_is_refused_never_read() {
        let b = encode(&sample());
        for cut in 0..b.len() {
            assert!(decode(&b[..cut], 100).is_err(), "cut at {cut}");
        }
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x40;
            assert!(decode(&d, 100).is_err(), "byte {i}");
        }
        // A queue with a smaller max_msg refuses the payload; the key block
        // (8-byte hash, 4-byte length, key padded) counts with it.
        assert!(decode(&b, 0).is_err());
        assert_eq!(key_block(1), 24);
        assert!(decode(&b, 24).is_err());
        assert!(decode(&b, 25).is_ok());
    }
}
