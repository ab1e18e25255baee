//! Checks of the modelling itself, not of the protocol: the 128-bit atomic
//! honours the orderings it is given (no stronger, no weaker), and payload
//! copies through the region that race are reported as races.

use loom::sync::Arc;
use loom::thread;
use shmq_loom_tests::layout::{self, Geometry};
use shmq_loom_tests::region::Region;
use shmq_loom_tests::sync::AtomicU128;
use shmq_loom_tests::{model, tiny, LoomRegion};
use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};

/// Message passing through a 128-bit flag: a u64 written before the flag is
/// stored with `store_order` must be seen by a reader whose `load_order`
/// load found the flag. Returns normally only if it was in every execution.
fn message_passing(store_order: Ordering, load_order: Ordering) {
    model(move || {
        let data = Arc::new(loom::sync::atomic::AtomicU64::new(0));
        let flag = Arc::new(AtomicU128::new(0));
        let writer = {
            let (data, flag) = (data.clone(), flag.clone());
            thread::spawn(move || {
                data.store(1, Relaxed);
                flag.store(u128::MAX, store_order);
            })
        };
        if flag.load(load_order) == u128::MAX {
            assert_eq!(data.load(Relaxed), 1, "flag seen, data not");
        }
        writer.join().unwrap();
    });
}

#[test]
fn u128_release_acquire_synchronises() {
    message_passing(Release, Acquire);
}

/// A Relaxed 128-bit store publishes nothing: the model finds the reader
/// that sees the flag and not the data (the mutex model it replaced did not).
#[test]
#[should_panic(expected = "flag seen, data not")]
fn u128_relaxed_store_does_not_synchronise() {
    message_passing(Relaxed, Acquire);
}

/// Nor does a Relaxed 128-bit load.
#[test]
#[should_panic(expected = "flag seen, data not")]
fn u128_relaxed_load_does_not_synchronise() {
    message_passing(Release, Relaxed);
}

/// A Relaxed load may return an older value than the latest store, even
/// after the store has run (the mutex model always returned the latest).
#[test]
#[should_panic(expected = "stale")]
fn u128_relaxed_load_may_be_stale() {
    model(|| {
        let w = Arc::new(AtomicU128::new(0));
        let seen = Arc::new(loom::sync::atomic::AtomicU64::new(0));
        let writer = {
            let (w, seen) = (w.clone(), seen.clone());
            thread::spawn(move || {
                w.store(1 << 64, Relaxed);
                seen.store(1, Relaxed);
            })
        };
        if seen.load(Relaxed) == 1 {
            assert_eq!(w.load(Relaxed), 1 << 64, "stale");
        }
        writer.join().unwrap();
    });
}

/// CAS loops moving both halves at once never lose an update or tear, and a
/// value that comes back (ABA) compares equal.
#[test]
fn u128_cas_is_atomic_on_all_16_bytes() {
    model(|| {
        let w = Arc::new(AtomicU128::new(0));
        let step = (1u128 << 64) | 1;
        let bump = move |w: &AtomicU128| {
            let mut cur = w.load(Relaxed);
            loop {
                assert_eq!(cur >> 64, cur & 0xffff_ffff_ffff_ffff, "torn");
                match w.compare_exchange(cur, cur + step, Release, Relaxed) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        };
        let other = {
            let w = w.clone();
            thread::spawn(move || bump(&w))
        };
        bump(&w);
        other.join().unwrap();
        assert_eq!(w.load(Relaxed), 2 * step);
        // Back to a value it held before: equal values compare equal.
        w.store(step, Relaxed);
        assert_eq!(
            w.compare_exchange(step, 0, Relaxed, Relaxed),
            Ok(step),
            "ABA"
        );
    });
}

/// The offset of a payload word of the first record of a `tiny` ring.
fn payload_word(geo: &Geometry) -> usize {
    geo.ring_off() + layout::RECORD_HEADER
}

/// A payload write and a payload read of the same bytes with nothing
/// ordering them: loom reports the race itself.
#[test]
#[should_panic(expected = "Causality violation")]
fn payload_copies_that_race_are_reported() {
    model(|| {
        let geo = tiny(1);
        let r = Arc::new(LoomRegion::new(&geo));
        let off = payload_word(&geo);
        let writer = {
            let r = r.clone();
            // SAFETY: not safe: the race under test.
            thread::spawn(move || unsafe { r.write(off, &7u64.to_le_bytes()) })
        };
        let mut buf = [0u8; 8];
        // SAFETY: as above.
        unsafe { r.read(off, &mut buf) };
        writer.join().unwrap();
    });
}

/// Two payload writes of the same bytes with nothing ordering them.
#[test]
#[should_panic(expected = "Causality violation")]
fn payload_writes_that_race_are_reported() {
    model(|| {
        let geo = tiny(1);
        let r = Arc::new(LoomRegion::new(&geo));
        let off = payload_word(&geo);
        let writer = {
            let r = r.clone();
            // SAFETY: not safe: the race under test.
            thread::spawn(move || unsafe { r.write(off, &7u64.to_le_bytes()) })
        };
        // SAFETY: as above.
        unsafe { r.write(off, &8u64.to_le_bytes()) };
        writer.join().unwrap();
    });
}

/// A payload being read while another lap stores a header word over the
/// same bytes (an atomic store): reported too.
#[test]
#[should_panic(expected = "Causality violation")]
fn payload_read_racing_a_header_store_is_reported() {
    model(|| {
        let geo = tiny(1);
        let r = Arc::new(LoomRegion::new(&geo));
        let off = payload_word(&geo);
        let writer = {
            let r = r.clone();
            thread::spawn(move || r.u64_at(off).store(9, Relaxed))
        };
        let mut buf = [0u8; 8];
        // SAFETY: not safe: the race under test.
        unsafe { r.read(off, &mut buf) };
        writer.join().unwrap();
    });
}

/// The same copies ordered by a Release store and an Acquire load (a
/// commit word) are no race, and the reader gets the bytes.
#[test]
fn payload_copies_ordered_by_a_commit_are_fine() {
    model(|| {
        let geo = tiny(1);
        let r = Arc::new(LoomRegion::new(&geo));
        let off = payload_word(&geo);
        let commit = geo.ring_off();
        let writer = {
            let r = r.clone();
            thread::spawn(move || {
                // SAFETY: nobody reads these bytes before the commit below.
                unsafe { r.write(off, &7u64.to_le_bytes()) };
                r.u64_at(commit).store(1, Release);
            })
        };
        if r.u64_at(commit).load(Acquire) == 1 {
            let mut buf = [0u8; 8];
            // SAFETY: the commit was seen with Acquire; the writer is done.
            unsafe { r.read(off, &mut buf) };
            assert_eq!(u64::from_le_bytes(buf), 7);
        }
        writer.join().unwrap();
    });
}
