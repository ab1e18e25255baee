//! A [`Region`] made of loom objects.
//!
//! Every 8-byte word a protocol may touch is a loom `AtomicU64`; 128-bit words
//! (`crate::sync::AtomicU128`) and futex words are separate objects at their
//! offsets. Futex waits are a loom mutex + condvar, which keeps futex_wait's
//! "compare and sleep" atomic with respect to wakers, as the kernel does; a
//! lost wake-up is a deadlock that loom reports.
//!
//! # Payload bytes
//!
//! [`Region::write`] and [`Region::read`] are plain copies in production
//! (`copy_nonoverlapping`), which the protocol must keep from racing with any
//! other access to those bytes. Here they are *non-atomic* accesses that loom
//! checks for races, on the same loom object as the atomic accesses to the
//! word:
//!
//! - `read` is `unsync_load`: loom reports a causality violation unless every
//!   store to the word (a payload copy or an atomic store) happens before it,
//!   and unless every later store happens after it;
//! - `write` is `unsync_load` then a `Relaxed` store of the new bytes: the
//!   unsynchronised load makes loom check that every earlier store to the word
//!   happens before the write and every later one after it (and the store
//!   checks the earlier `read`s). A loom `with_mut`, the exact non-atomic
//!   write, needs `&mut` to the word, which a shared region cannot hand out;
//!   what it would check besides is a race with an atomic *load* of the word.
//!
//! So a copy that races with anything but an atomic load of the same word is
//! reported as a race, not left to an assertion that may or may not see
//! wrong bytes. The payload is not a separate `loom::cell::UnsafeCell`: the
//! ring's bytes are a record header in one lap and payload in another, and
//! a cell apart from the header words would not see a later lap's header
//! stores over a payload still being read, nor hold what a header load of
//! those bytes really finds.

use crate::layout::*;
use crate::region::Region;
use crate::sync::{AtomicU128, AtomicU32, AtomicU64, Ordering};
use loom::sync::{Condvar, Mutex};
use std::collections::HashMap;
use std::time::Duration;

pub struct LoomRegion {
    size: usize,
    u32s: HashMap<usize, AtomicU32>,
    u64s: HashMap<usize, AtomicU64>,
    u128s: HashMap<usize, AtomicU128>,
    sleep: Mutex<()>,
    wake: Condvar,
}

impl LoomRegion {
    /// A zeroed region laid out for `geo`.
    pub fn new(geo: &Geometry) -> Self {
        let mut u128s = HashMap::new();
        for off in [OFF_TAIL, OFF_HEAD, OFF_SPILL_FRONT] {
            u128s.insert(off, AtomicU128::new(0));
        }
        for g in 0..geo.max_groups as usize {
            u128s.insert(geo.cursor_off(g), AtomicU128::new(0));
        }
        let mut u32s = HashMap::new();
        for off in [
            OFF_DATA_FUTEX,
            OFF_DATA_WAITERS,
            OFF_SPACE_FUTEX,
            OFF_SPACE_WAITERS,
        ] {
            u32s.insert(off, AtomicU32::new(0));
        }
        let mut u64s = HashMap::new();
        for off in [
            OFF_FULL_WAITS,
            OFF_ABORTED,
            OFF_SPILL_STATE,
            OFF_DEAD_LETTERS,
            OFF_PIN_MOVES,
            OFF_NEXT_DUE,
        ] {
            u64s.insert(off, AtomicU64::new(0));
        }
        // The producer registry and identities, which follow the group table.
        for off in (geo.producer_table_off()..geo.ring_off()).step_by(8) {
            u64s.insert(off, AtomicU64::new(0));
        }
        let table = geo.group_table_off()
            ..geo.group_table_off() + geo.max_groups as usize * geo.slot_size();
        for off in table.step_by(8) {
            let g = (off - geo.group_table_off()) / geo.slot_size();
            if !(geo.cursor_off(g)..geo.cursor_off(g) + 16).contains(&off) {
                u64s.insert(off, AtomicU64::new(0));
            }
        }
        for off in (geo.ring_off()..geo.file_size()).step_by(8) {
            u64s.insert(off, AtomicU64::new(0));
        }
        LoomRegion {
            size: geo.file_size(),
            u32s,
            u64s,
            u128s,
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        }
    }
}

// SAFETY: every word lives as long as the region; all threads share the maps.
unsafe impl Region for LoomRegion {
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.u32s
            .get(&off)
            .unwrap_or_else(|| panic!("no u32 at {off}"))
    }

    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.u64s
            .get(&off)
            .unwrap_or_else(|| panic!("no u64 at {off}"))
    }

    fn u128_at(&self, off: usize) -> &AtomicU128 {
        self.u128s
            .get(&off)
            .unwrap_or_else(|| panic!("no u128 at {off}"))
    }

    unsafe fn write(&self, off: usize, src: &[u8]) {
        for (i, chunk) in src.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            let word = self.u64_at(off + 8 * i);
            // SAFETY: a loom atomic; the unsynchronised load only makes loom
            // check this write against every other store to the word (module
            // docs), and its value is not used.
            unsafe { word.unsync_load() };
            word.store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }

    unsafe fn read(&self, off: usize, dst: &mut [u8]) {
        for (i, chunk) in dst.chunks_mut(8).enumerate() {
            // SAFETY: a loom atomic; loom checks that every store to the word
            // happens before this load and every later one after it (module
            // docs), as the caller's hazard or cursor promises.
            let w = unsafe { self.u64_at(off + 8 * i).unsync_load() }.to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }

    fn wait(&self, off: usize, expected: u32, _timeout: Option<Duration>) {
        let g = self.sleep.lock().unwrap();
        if self.u32_at(off).load(Ordering::Relaxed) == expected {
            drop(self.wake.wait(g).unwrap());
        }
    }

    fn wake_all(&self, _off: usize) {
        let _g = self.sleep.lock().unwrap();
        self.wake.notify_all();
    }
}
