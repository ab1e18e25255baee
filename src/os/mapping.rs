//! The production [`Region`]: a raw pointer and a length, backed by a shared file
//! mapping (a queue file) or a heap block (an in-process queue).
//!
//! No `&[u8]` or `&T` to plain data is ever formed over the block: control words
//! are reached as atomics, and bytes are copied with raw-pointer copies.

use crate::region::Region;
use crate::sync::{AtomicU128, AtomicU32, AtomicU64};
use memmap2::MmapRaw;
use std::time::Duration;

enum Owner {
    /// Keeps the mapping alive; unmapped on drop.
    Map(#[allow(dead_code)] MmapRaw),
    /// Keeps the heap block alive; u128 elements give 16-byte alignment.
    Heap(#[allow(dead_code)] Box<[u128]>),
}

/// A region over memory this process owns (mapped or allocated).
pub struct RawRegion {
    ptr: *mut u8,
    len: usize,
    /// Futexes on a private heap block can use the cheaper process-private keys.
    private: bool,
    /// A wake found nobody asleep although the sleeper word said otherwise:
    /// maybe a process killed asleep (wait.rs). Process-local.
    stale_wake: std::sync::atomic::AtomicBool,
    _owner: Owner,
}

// SAFETY: the region is only accessed through atomics and through copies whose
// exclusivity the protocol guarantees (see `Region`); the pointer itself is just
// an address valid for the lifetime of `_owner`, which moves with the struct.
unsafe impl Send for RawRegion {}
// SAFETY: as above; every shared access goes through atomics.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// Whether a wake since the last call found nobody asleep (see
    /// `stale_wake`); clears the note.
    #[inline]
    pub(crate) fn take_stale_wake(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed: a process-local hint; the load keeps the line shared
        // while nothing is noted.
        self.stale_wake.load(Relaxed) && self.stale_wake.swap(false, Relaxed)
    }

    /// Wraps a shared mapping of a queue file.
    pub fn from_map(map: MmapRaw) -> Self {
        let ptr = map.as_mut_ptr();
        let len = map.len();
        RawRegion {
            ptr,
            len,
            private: false,
            stale_wake: Default::default(),
            _owner: Owner::Map(map),
        }
    }

    /// Allocates a zeroed, 16-byte aligned block of `len` bytes for an
    /// in-process queue.
    pub fn heap(len: usize) -> Self {
        let words = len.div_ceil(16);
        let mut block = vec![0u128; words].into_boxed_slice();
        let ptr = block.as_mut_ptr().cast::<u8>();
        RawRegion {
            ptr,
            len,
            private: true,
            stale_wake: Default::default(),
            _owner: Owner::Heap(block),
        }
    }

    /// Address of the byte at `off`, for zero-copy access.
    ///
    /// # Safety
    /// `off + len` must be within the region; the caller must hold the protocol
    /// claim or hazard that makes the bytes exclusive or immutable while used.
    #[inline]
    pub(crate) unsafe fn ptr_at(&self, off: usize, len: usize) -> *mut u8 {
        debug_assert!(off.checked_add(len).is_some_and(|e| e <= self.len));
        // SAFETY: in bounds by the caller's contract.
        unsafe { self.ptr.add(off) }
    }

    #[inline]
    fn check(&self, off: usize, size: usize) {
        // Offsets come from validated geometry and masked ring positions, never
        // from shared memory, so they are in bounds by construction (values read
        // from shared memory are checked where they are read). Checked in debug
        // builds, which the test suite runs.
        debug_assert!(
            off.is_multiple_of(size) && off.checked_add(size).is_some_and(|e| e <= self.len),
            "region access out of bounds: {off}+{size} of {}",
            self.len
        );
    }
}

/// Bytes of a record [`Region::prefetch`] asks for at most.
const PREFETCH_MAX: usize = 256;

// SAFETY: every offset the protocol passes is in bounds and aligned (by
// construction from validated geometry; asserted in debug builds), and the block lives as long
// as `self` (it is owned by `_owner`). A shared mapping is the same memory in
// every process that maps the file, so all parties see the same atomics.
unsafe impl Region for RawRegion {
    #[inline]
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4);
        // SAFETY: in bounds and 4-aligned (checked; the base is page or 16
        // aligned); AtomicU32 has the size and alignment of u32 and permits
        // concurrent mutation by anyone, including other processes.
        unsafe { &*self.ptr.add(off).cast::<AtomicU32>() }
    }

    #[inline]
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8);
        // SAFETY: as for u32_at, with 8-byte alignment.
        unsafe { &*self.ptr.add(off).cast::<AtomicU64>() }
    }

    #[inline]
    fn u128_at(&self, off: usize) -> &AtomicU128 {
        self.check(off, 16);
        // SAFETY: as for u32_at, with 16-byte alignment, which AtomicU128 needs.
        unsafe { &*self.ptr.add(off).cast::<AtomicU128>() }
    }

    #[inline]
    unsafe fn write(&self, off: usize, src: &[u8]) {
        debug_assert!(off + src.len() <= self.len);
        // SAFETY: in bounds (the caller's offsets come from a claim inside the
        // ring) and exclusive by the caller's contract; `src` is process memory,
        // so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) }
    }

    #[inline]
    unsafe fn read(&self, off: usize, dst: &mut [u8]) {
        debug_assert!(off + dst.len() <= self.len);
        // SAFETY: in bounds, and no writer runs concurrently by the caller's
        // contract; `dst` is process memory, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), dst.as_mut_ptr(), dst.len()) }
    }

    #[inline]
    fn prefetch(&self, off: usize, len: usize) {
        // The first few lines only: for longer records the copy's own
        // hardware prefetching takes over.
        #[cfg(target_arch = "x86_64")]
        {
            let end = off + len.min(PREFETCH_MAX);
            debug_assert!(end <= self.len);
            let mut line = off & !63;
            while line < end {
                // SAFETY: in bounds (the caller's record fits the region); a
                // prefetch reads nothing and cannot fault, so no protection
                // of the bytes is needed.
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(self.ptr.add(line).cast::<i8>().cast_const());
                }
                line += 64;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (off, len);
    }

    fn wait(&self, off: usize, expected: u32, timeout: Option<Duration>) {
        let word = self.u32_at(off);
        crate::os::futex::wait(word, expected, timeout, self.private);
    }

    fn wake_all(&self, off: usize) {
        let word = self.u32_at(off);
        if crate::os::futex::wake_all(word, self.private) == 0 {
            // Relaxed: a hint for this process (`take_stale_wake`).
            self.stale_wake
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
