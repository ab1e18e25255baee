//! Ordering by key within a group: a group ordered by key hands a key's
//! messages to its members one at a time, in sequence order, while the
//! messages of other keys flow (Kafka's partition key and RocketMQ's
//! orderly messages, without fixed partitions).
//!
//! A message's key is in its record (the key block, layout.rs), and its
//! 63-bit hash in the ack entry that holds it (`key`). The rule is one
//! invariant over the group's ack table:
//!
//! > a message is handed out only when no entry in use (TAKING, HELD,
//! > PENDING, FINISHING, FORWARDING, ARRIVING) holds an earlier message of
//! > its key.
//!
//! Every member of an ordered group takes with an entry, auto-ack ones
//! too (finished once the message is copied, or the guard dropped). A
//! message taken from the cursor while an earlier one of its key is in the
//! table is *parked* (ack.rs `park`): its entry becomes PENDING without it
//! being handed out, and `blocked` keeps it from being taken over until the
//! earlier ones are finished. A nacked message, or one whose member died,
//! stays in the table (PENDING), so the key's later messages wait for its
//! redelivery.
//!
//! Why a member never misses an earlier message of its key: every take
//! announces its entry (with the key) before its cursor CAS, and every
//! cursor write is an RMW in one release sequence, so a member whose CAS
//! took message n+1 sees the entry of whoever took n (or n's later state:
//! an entry stays in use, in place, until the message is finished). An
//! entry only goes from in use to FREE when its message is finished, so a
//! scan that finds no earlier entry of the key finds a key whose earlier
//! messages are all finished (a scan may read an entry being reused and
//! see a stranger's key: that only delays a message, never releases one
//! early).
//!
//! The look-ahead is the ack table: a key whose earlier message is held
//! parks its later ones in entries, and a table full of one slow key's
//! parked messages stalls the group until that key moves
//! (`--ack-entries`).

use crate::protocol::ack::{entries_in_use, entry_state_word, word_state};
use crate::protocol::layout::*;
use crate::protocol::ring::Ring;
use crate::protocol::wait::Event;
use crate::region::Region;
use crate::sync::Ordering;

/// Whether group `g` is ordered by key.
#[inline]
pub fn keyed<R: Region>(ring: &Ring<R>, g: usize) -> bool {
    // Relaxed: a configuration word, set before members rely on it.
    ring.group(g).keyed().load(Ordering::Relaxed) != 0
}

/// Orders group `g` by key, or stops doing so.
pub fn set_keyed<R: Region>(ring: &Ring<R>, g: usize, on: bool) {
    ring.group(g).keyed().store(on as u64, Ordering::Relaxed);
}

/// Messages of group `g` parked behind an earlier one of their key.
pub fn parked<R: Region>(ring: &Ring<R>, g: usize) -> u64 {
    ring.group(g).parked().load(Ordering::Relaxed)
}

/// Whether an entry in state `state` holds its message in the table.
#[inline]
fn in_use(state: u64) -> bool {
    !matches!(state, ENTRY_FREE | ENTRY_RESERVED)
}

/// Entry `i` of group `g` as (state word, seq, key hash) if it is in use,
/// read consistently: the state word is the same before and after the
/// fields (an entry finished and reused meanwhile is read again).
fn read_entry<R: Region>(ring: &Ring<R>, g: usize, i: usize) -> Option<(u64, u64, u64)> {
    loop {
        let w = entry_state_word(ring, g, i);
        if !in_use(word_state(w)) {
            return None;
        }
        // Relaxed, after the Acquire state load: the fields its writer
        // stored before the state are visible.
        let seq = ring.entry(g, i).seq().load(Ordering::Relaxed);
        let key = ring.entry_key(g, i).load(Ordering::Relaxed);
        if entry_state_word(ring, g, i) == w {
            return Some((w, seq, key));
        }
    }
}

/// Whether an entry of group `g` other than `own` holds a message of key
/// `key` earlier than `seq`: then the message at `seq`, just taken from
/// the cursor, must wait (`park`).
pub fn key_busy<R: Region>(ring: &Ring<R>, g: usize, own: usize, key: u64, seq: u64) -> bool {
    if key == 0 {
        return false;
    }
    // The dense key words first (a line holds eight), the entry only where
    // the key matches: a stale key of a free entry is filtered there.
    // Relaxed: after our cursor CAS, which every earlier take's announce
    // happens before (its release sequence).
    (0..entries_in_use(ring, g))
        .filter(|&i| i != own)
        .filter(|&i| ring.entry_key(g, i).load(Ordering::Relaxed) == key)
        .filter_map(|i| read_entry(ring, g, i))
        .any(|(_, s, k)| k == key && s < seq)
}

/// Sequence numbers of group `g`'s PENDING entries that may not be taken
/// over now: an earlier message of their key is in the table. Empty for a
/// group not ordered by key.
pub fn blocked<R: Region>(ring: &Ring<R>, g: usize) -> Vec<u64> {
    if !keyed(ring, g) {
        return Vec::new();
    }
    let used: Vec<(u64, u64, u64)> = (0..entries_in_use(ring, g))
        .filter_map(|i| read_entry(ring, g, i))
        .filter(|&(_, _, k)| k != 0)
        .collect();
    // The earliest message of each key in the table.
    let mut first: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for &(_, s, k) in &used {
        let f = first.entry(k).or_insert(s);
        *f = (*f).min(s);
    }
    used.iter()
        .filter(|&&(w, s, k)| word_state(w) == ENTRY_PENDING && first[&k] < s)
        .map(|&(_, s, _)| s)
        .collect()
}

/// A message of group `g` was finished (acknowledged, or given up): if
/// parked messages may wait for it, members are woken to look again.
pub fn finished<R: Region>(ring: &Ring<R>, g: usize) {
    if keyed(ring, g) && crate::protocol::ack::has_pending(ring, g) {
        ring.notify(Event::Data);
    }
}
