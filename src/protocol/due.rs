//! The NEXT DUE hint (header word 912): when the earliest message scheduled
//! for later delivery is due, so that polling processes know when to
//! release (staged/schedule.rs holds the files and the release; this is
//! the word's protocol, model-checked by loom).
//!
//! Invariant, once every operation in progress has finished: the hint is
//! non-zero and at or below the earliest due time of the scheduled messages
//! there are (0 when there are none, or at worst earlier than needed).
//!
//! - A scheduler writes its message (a rename, atomic), then `lower`s the
//!   hint to its due time: a CAS loop that only ever lowers (or sets it
//!   from 0).
//! - The releaser (one at a time) reads the hint (`read`), lists the
//!   messages, releases the due ones, and `raise`s the hint from what it
//!   read to the earliest due time it left (0 for none): one CAS, which
//!   fails if a scheduler lowered it meanwhile. After a raise it lists
//!   again and lowers the hint to the earliest it finds. A message written
//!   before that second listing is in it; one written after it lowers the
//!   hint itself, after the raise. Without the second listing, a message
//!   written between the first listing and the raise, due later than the
//!   hint read, would lower nothing and be hidden by the raise
//!   (`loom-tests`: `a_message_scheduled_during_a_release_stays_in_the_hint`).

use crate::protocol::ring::Ring;
use crate::region::Region;
use crate::sync::Ordering;

/// The hint, for a poller: 0 for none. Relaxed: a hint; what it leads to
/// is read from the staging directory.
#[inline]
pub fn next_due<R: Region>(ring: &Ring<R>) -> u64 {
    ring.header().next_due().load(Ordering::Relaxed)
}

/// The hint as the releaser reads it, before it lists the messages.
/// SeqCst: ordered before the listing (a syscall in the real code) and
/// against the schedulers' lowering.
pub fn read<R: Region>(ring: &Ring<R>) -> u64 {
    ring.header().next_due().load(Ordering::SeqCst)
}

/// Lowers the hint to `due` if it is later (or unset); whether it did.
/// 0 means "none": a due time of 0 lowers it to 1.
pub fn lower<R: Region>(ring: &Ring<R>, due: u64) -> bool {
    let due = due.max(1);
    let h = ring.header().next_due();
    // SeqCst: after the scheduler's write of its message, and against the
    // releaser's read and raise (module docs).
    let mut cur = h.load(Ordering::SeqCst);
    while cur == 0 || due < cur {
        match h.compare_exchange_weak(cur, due, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
    false
}

/// The releaser's raise from `read` (what `read` returned before its
/// listing) to `left` (the earliest due time it left, 0 for none). Whether
/// it raised: then the caller lists again and `lower`s to what it finds.
pub fn raise<R: Region>(ring: &Ring<R>, read: u64, left: u64) -> bool {
    // SeqCst: see `lower`. Failure: a scheduler lowered it meanwhile; its
    // value stays.
    ring.header()
        .next_due()
        .compare_exchange(read, left, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}
