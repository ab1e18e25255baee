//! The memory a queue lives in, as the protocol sees it.
//!
//! The protocol (`src/protocol/`) is written once against this trait.
//! Production runs it on [`crate::os::mapping::RawRegion`] (an mmap'd file, or a
//! heap block for in-process queues); `loom-tests/` runs the same source on a
//! region made of loom atomics, so the model checker sees every access.
//!
//! Memory behind a region may be written by other processes at any time, so the
//! trait hands out atomics only. Plain bytes move through [`Region::write`] and
//! [`Region::read`], whose callers promise the protocol gives them exclusive use
//! of those bytes for the duration of the copy.

use crate::sync::{AtomicU128, AtomicU32, AtomicU64};
use std::time::Duration;

/// A block of shared memory the queue protocol runs on.
///
/// # Safety
/// Implementors guarantee that, for every in-bounds and suitably aligned offset,
/// the accessors return atomics that stay valid for as long as `&self` does, and
/// that all processes and threads using the same queue see the same atomics.
pub unsafe trait Region: Send + Sync {
    /// The 32-bit atomic at `off` (4-byte aligned, `off + 4 <= size`).
    fn u32_at(&self, off: usize) -> &AtomicU32;

    /// The 64-bit atomic at `off` (8-byte aligned, `off + 8 <= size`).
    fn u64_at(&self, off: usize) -> &AtomicU64;

    /// The 128-bit atomic at `off` (16-byte aligned, `off + 16 <= size`).
    fn u128_at(&self, off: usize) -> &AtomicU128;

    /// Copies `src` into the region at `off` (8-byte aligned). Bytes past
    /// `src.len()` up to the next multiple of 8 may be zeroed.
    ///
    /// # Safety
    /// No other party may read or write `off..off + src.len()` during the call:
    /// the caller holds the claim on those bytes.
    unsafe fn write(&self, off: usize, src: &[u8]);

    /// Copies bytes at `off` (8-byte aligned) into `dst`.
    ///
    /// # Safety
    /// No other party may write `off..off + dst.len()` during the call: the
    /// caller's hazard or cursor protects those bytes.
    unsafe fn read(&self, off: usize, dst: &mut [u8]);

    /// Hints that `off..off + len` will be read soon (a record whose commit
    /// word has just been seen): its other cache lines are fetched while the
    /// reader takes the record, instead of one after another in the copy.
    /// Reads nothing, so it needs no protection; a no-op by default.
    #[inline]
    fn prefetch(&self, _off: usize, _len: usize) {}

    /// Sleeps while the 32-bit word at `off` equals `expected`, until woken, the
    /// timeout passes, or spuriously. Returns at once if the word differs.
    fn wait(&self, off: usize, expected: u32, timeout: Option<Duration>);

    /// Wakes every sleeper on the 32-bit word at `off`.
    fn wake_all(&self, off: usize);
}
