//! The mechanisms `shmq bench` compares, behind one small trait, so every test
//! runs the same loop over each of them.
//!
//! - `shmq`: two queues (one per direction) of this crate, spin-waiting.
//! - `floor`: the physical floor — a shared mapping where each direction is one
//!   sequence word plus the payload right behind it: one cache line (or a few,
//!   for larger payloads) changes hands, and the payload is copied in and out.
//!   Above 16 KiB the payload rotates through buffers instead, which is faster
//!   there (see `payload_off`): the floor is the fastest layout at each size.
//!   For throughput the floor is a plain single-producer single-consumer ring of
//!   fixed slots in shared memory.
//! - `ring`: shmq's record layout in a ring and nothing else (`BareRing`): the
//!   reference that splits shmq's distance from the floor into what any ring
//!   of records costs and what shmq's protocol adds.
//! - `pipe`: two anonymous pipes; `uds`: a Unix stream socket pair.
//! - `crossbeam`: a crossbeam bounded channel between two threads of one process.

use memmap2::MmapRaw;

use shmq::{Consumer, Producer, Queue, WaitStrategy};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// One side of a two-way (ping-pong) or one-way (throughput) link.
pub trait Endpoint: Send {
    /// Sends `msg`.
    fn send(&mut self, msg: &[u8]) -> Result<(), String>;
    /// Receives one message of exactly `buf.len()` bytes into `buf`.
    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String>;
}

/// Which mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mechanism {
    /// shmq itself.
    Shmq,
    /// The physical floor: one cache line written by one core, read by the other.
    Floor,
    /// A bare single-producer ring of shmq-sized records, without a protocol.
    Ring,
    /// A pipe.
    Pipe,
    /// A Unix socket pair.
    Uds,
    /// crossbeam-channel, between two threads of one process.
    Crossbeam,
}

impl Mechanism {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Shmq => "shmq",
            Mechanism::Floor => "floor",
            Mechanism::Ring => "ring",
            Mechanism::Pipe => "pipe",
            Mechanism::Uds => "uds",
            Mechanism::Crossbeam => "crossbeam",
        }
    }
}

// ---------- shmq ----------

/// Sends on one queue, receives on another.
pub struct ShmqEnd {
    tx: Option<Producer>,
    rx: Option<Consumer>,
}

impl ShmqEnd {
    /// `tx`: queue to send on; `rx`: (queue, group) to receive from.
    pub fn new(
        tx: Option<&Path>,
        rx: Option<(&Path, &str)>,
        wait: WaitStrategy,
    ) -> Result<Self, String> {
        let tx = match tx {
            Some(p) => {
                let prod = Queue::open(p)
                    .map_err(|e| e.to_string())?
                    .producer()
                    .wait_strategy(wait)
                    .attach()
                    .map_err(|e| e.to_string())?;
                Some(prod)
            }
            None => None,
        };
        let rx = match rx {
            Some((p, g)) => {
                let c = Queue::open(p)
                    .map_err(|e| e.to_string())?
                    .consumer(g)
                    .wait_strategy(wait)
                    .attach()
                    .map_err(|e| e.to_string())?;
                Some(c)
            }
            None => None,
        };
        Ok(ShmqEnd { tx, rx })
    }

    /// The consumer, for callers that need timeouts.
    pub fn consumer(&mut self) -> Option<&mut Consumer> {
        self.rx.as_mut()
    }
}

impl Endpoint for ShmqEnd {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.tx
            .as_mut()
            .ok_or("no sending side")?
            .send(msg)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let g = self
            .rx
            .as_mut()
            .ok_or("no receiving side")?
            .recv_ref()
            .map_err(|e| e.to_string())?;
        let b = g.as_bytes();
        if b.len() != buf.len() {
            return Err(format!("got {} bytes, expected {}", b.len(), buf.len()));
        }
        buf.copy_from_slice(b);
        Ok(())
    }
}

// ---------- floor: one line per direction ----------

/// Largest payload the floor keeps right behind its sequence word. Up to this
/// size that is the fastest layout measured (the receiver has just read those
/// lines, the sender rewrites them: nothing else moves); above it, rotating
/// buffers are faster (at 64 KiB ~0.88x the inline time on the reference
/// machine; equal at 16 KiB; inline 1.4x faster at 4-8 KiB).
const FLOOR_INLINE_MAX: usize = 16 << 10;
/// Where the rotating buffers start in a mailbox (page-aligned).
const FLOOR_BUFS_OFF: usize = (8 + FLOOR_INLINE_MAX).next_multiple_of(4096);
/// Rotating payload buffers per direction for larger messages.
const FLOOR_BUFS: usize = 16;
/// Largest floor payload.
const FLOOR_MAX: usize = 64 << 10;
/// Distance between rotating buffers: one line more than a buffer, so their
/// starts fall in different cache sets. Page-aligned buffers put every
/// message's first lines in one L1/L2 set, whose conflict misses made the
/// floor 1.4-1.6x slower at 64-512 B: the floor must not be slowed by its own
/// layout, or it flatters whatever is compared with it.
const FLOOR_BUF_STRIDE: usize = FLOOR_MAX + 64;
/// Bytes reserved per direction in the floor's mapping.
pub const FLOOR_SLOT: usize =
    (FLOOR_BUFS_OFF + FLOOR_BUFS * FLOOR_BUF_STRIDE).next_multiple_of(4096);

/// Where message number `n` of `len` bytes goes in a mailbox: right behind the
/// sequence word up to FLOOR_INLINE_MAX, else in one of the rotating buffers.
fn payload_off(len: usize, n: u64) -> usize {
    if len <= FLOOR_INLINE_MAX {
        8
    } else {
        FLOOR_BUFS_OFF + (n as usize % FLOOR_BUFS) * FLOOR_BUF_STRIDE
    }
}

/// Two cache-line mailboxes in a shared mapping.
pub struct FloorEnd {
    map: MmapRaw,
    tx: usize,
    rx: usize,
    sent: u64,
    got: u64,
}

/// Creates the floor's shared file (two slots).
pub fn floor_file(path: &Path, slots: usize) -> Result<(), String> {
    let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    f.set_len((slots * FLOOR_SLOT) as u64)
        .map_err(|e| e.to_string())
}

fn map(path: &Path) -> Result<MmapRaw, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    memmap2::MmapOptions::new()
        .populate()
        .map_raw(&f)
        .map_err(|e| e.to_string())
}

impl FloorEnd {
    /// `side` 0 sends on slot 0 and receives on slot 1; side 1 the reverse.
    pub fn new(path: &Path, side: usize) -> Result<Self, String> {
        Ok(FloorEnd {
            map: map(path)?,
            tx: side * FLOOR_SLOT,
            rx: (1 - side) * FLOOR_SLOT,
            sent: 0,
            got: 0,
        })
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is 0 or FLOOR_SLOT, inside the mapping and 8-aligned;
        // the word is only ever accessed atomically by both processes.
        unsafe { &*self.map.as_mut_ptr().add(off).cast::<AtomicU64>() }
    }
}

impl Endpoint for FloorEnd {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        assert!(msg.len() <= FLOOR_MAX);
        // SAFETY: the payload area of our sending slot is written only by us, and
        // read by the peer only after it sees the sequence word we store below.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.map
                    .as_mut_ptr()
                    .add(self.tx + payload_off(msg.len(), self.sent)),
                msg.len(),
            )
        };
        self.sent += 1;
        // Release pairs with the peer's Acquire spin: the payload is visible.
        self.word(self.tx).store(self.sent, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.got += 1;
        // Acquire pairs with the sender's Release store.
        while self.word(self.rx).load(Ordering::Acquire) < self.got {
            std::hint::spin_loop();
        }
        // SAFETY: the peer wrote these bytes before its Release store and will
        // not write them again until we answer (ping-pong).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map
                    .as_ptr()
                    .add(self.rx + payload_off(buf.len(), self.got - 1)),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        Ok(())
    }
}

// ---------- floor: SPSC ring of fixed slots ----------

/// A plain single-producer single-consumer ring: head and tail counters on
/// their own lines, `slots` fixed-size slots, each side caching the other's
/// counter. The throughput floor.
pub struct FloorRing {
    map: MmapRaw,
    slot: usize,
    slots: u64,
    pos: u64,
    cached: u64,
}

const RING_HEAD: usize = 0;
const RING_TAIL: usize = 128;
const RING_DATA: usize = 256;

impl FloorRing {
    /// The file must hold `RING_DATA + slots * slot` bytes.
    pub fn file(path: &Path, slot: usize, slots: u64) -> Result<(), String> {
        let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
        f.set_len((RING_DATA + slot * slots as usize) as u64)
            .map_err(|e| e.to_string())
    }

    pub fn new(path: &Path, slot: usize, slots: u64) -> Result<Self, String> {
        Ok(FloorRing {
            map: map(path)?,
            slot,
            slots,
            pos: 0,
            cached: 0,
        })
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: RING_HEAD and RING_TAIL are 8-aligned words inside the
        // mapping, accessed only atomically.
        unsafe { &*self.map.as_mut_ptr().add(off).cast::<AtomicU64>() }
    }

    fn slot_ptr(&self, i: u64) -> *mut u8 {
        // SAFETY: (i % slots) * slot + RING_DATA is inside the mapping.
        unsafe {
            self.map
                .as_mut_ptr()
                .add(RING_DATA + (i % self.slots) as usize * self.slot)
        }
    }
}

impl Endpoint for FloorRing {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        while self.pos - self.cached >= self.slots {
            // Acquire pairs with the consumer's Release of head.
            self.cached = self.word(RING_HEAD).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        // SAFETY: slot `pos` is free (the consumer has passed it) and ours until
        // we publish the tail.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.slot_ptr(self.pos),
                msg.len().min(self.slot),
            )
        };
        self.pos += 1;
        // Release: the slot's bytes before the new tail.
        self.word(RING_TAIL).store(self.pos, Ordering::Release);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String> {
        while self.cached <= self.pos {
            // Acquire pairs with the producer's Release of tail.
            self.cached = self.word(RING_TAIL).load(Ordering::Acquire);
            if self.cached <= self.pos {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the producer published this slot and will not reuse it before
        // we release it below.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.slot_ptr(self.pos),
                buf.as_mut_ptr(),
                buf.len().min(self.slot),
            )
        };
        self.pos += 1;
        // Release: our reads of the slot before the producer may reuse it.
        self.word(RING_HEAD).store(self.pos, Ordering::Release);
        Ok(())
    }
}

// ---------- ring: shmq's record layout and nothing else ----------

/// Header bytes of a bare-ring record: shmq's (commit word, length, sequence
/// number, timestamp); records are sized as shmq's ([`shmq::Geometry::record_bytes`]).
const BARE_HEADER: usize = shmq::Geometry::record_bytes(0, false) as usize;
/// Where the records start in a bare ring's file. The first word is the
/// consumer's position, on a page of its own.
const BARE_DATA: usize = 4096;

/// One direction of a [`BareRing`].
struct BareSide {
    map: MmapRaw,
    /// Ring bytes (a power of two).
    cap: u64,
    /// Producer: where the next record goes; consumer: the next to read.
    pos: u64,
    /// Producer: the consumer's position as last read.
    freed: u64,
    /// Producer: records written (the header's sequence number).
    n: u64,
}

impl BareSide {
    fn open(path: &Path) -> Result<Self, String> {
        let map = map(path)?;
        let cap = map.len().saturating_sub(BARE_DATA) as u64;
        if cap < 64 || !cap.is_power_of_two() {
            return Err(format!("{}: not a bare ring", path.display()));
        }
        Ok(BareSide {
            map,
            cap,
            pos: 0,
            freed: 0,
            n: 0,
        })
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.map.len());
        // SAFETY: every caller passes 0 or BARE_DATA plus a record offset below
        // `cap` plus less than BARE_HEADER, 8-aligned (records are): inside the
        // mapping. Both processes access these words only atomically.
        unsafe { &*self.map.as_mut_ptr().add(off).cast::<AtomicU64>() }
    }

    /// File offset of ring position `pos`.
    fn at(&self, pos: u64) -> usize {
        BARE_DATA + (pos % self.cap) as usize
    }
}

/// The reference for what a ring itself costs, next to the floor's single
/// mailbox: shmq's record layout (a 32-byte header whose first word is the
/// commit word, the payload behind it, records 8-aligned and never wrapping
/// past the ring's end, the consumer polling the commit word at its position)
/// in a ring of `--capacity` bytes, for one producer and one consumer, with
/// nothing else: no claim or cursor CAS, no timestamp, no bookkeeping, no
/// wake-ups. The consumer publishes its position after every record; the
/// producer reads it only when its cached copy says the ring is full. Its
/// ratio to the floor is what the layout costs; shmq's ratio to it is what
/// shmq's protocol costs on top.
pub struct BareRing {
    tx: Option<BareSide>,
    rx: Option<BareSide>,
}

impl BareRing {
    /// Creates a bare ring's file for `capacity` ring bytes (a power of two).
    pub fn file(path: &Path, capacity: u64) -> Result<(), String> {
        let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
        f.set_len(BARE_DATA as u64 + capacity)
            .map_err(|e| e.to_string())
    }

    /// Sends on the ring file `tx`, receives from `rx`.
    pub fn new(tx: Option<&Path>, rx: Option<&Path>) -> Result<Self, String> {
        Ok(BareRing {
            tx: tx.map(BareSide::open).transpose()?,
            rx: rx.map(BareSide::open).transpose()?,
        })
    }
}

/// Commit words: a record at `pos`, or a pad filling the lap from `pos`. A
/// word left from an older lap names an older position and matches neither.
fn bare_msg(pos: u64) -> u64 {
    2 * pos + 2
}
fn bare_pad(pos: u64) -> u64 {
    2 * pos + 1
}

impl Endpoint for BareRing {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        let t = self.tx.as_mut().ok_or("bare ring: no ring to send on")?;
        let size = record_size(msg.len());
        if size > t.cap {
            return Err(format!("bare ring: {} B do not fit", msg.len()));
        }
        let mut pos = t.pos;
        let room = t.cap - pos % t.cap;
        let pad = if size > room { room } else { 0 };
        while pos + pad + size > t.freed + t.cap {
            // Acquire pairs with the consumer's Release of its position: its
            // reads of the records it passed are done.
            t.freed = t.word(0).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        if pad > 0 {
            // Release: nothing to publish but the pad itself; as a record's.
            t.word(t.at(pos)).store(bare_pad(pos), Ordering::Release);
            pos += pad;
        }
        let off = t.at(pos);
        // Relaxed: published by the Release store of the commit word below.
        t.word(off + 8).store(msg.len() as u64, Ordering::Relaxed);
        t.word(off + 16).store(t.n, Ordering::Relaxed);
        t.word(off + 24).store(0, Ordering::Relaxed);
        // SAFETY: the record's bytes are inside the mapping (it never passes
        // the ring's end) and the consumer does not read them before the
        // commit word below, nor does the producer reuse them before the
        // consumer has passed them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                t.map.as_mut_ptr().add(off + BARE_HEADER),
                msg.len(),
            )
        };
        // Release pairs with the consumer's Acquire load of the commit word.
        t.word(off).store(bare_msg(pos), Ordering::Release);
        t.pos = pos + size;
        t.n += 1;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let r = self
            .rx
            .as_mut()
            .ok_or("bare ring: no ring to receive from")?;
        loop {
            let off = r.at(r.pos);
            // Acquire pairs with the producer's Release of the commit word.
            let w = r.word(off).load(Ordering::Acquire);
            if w == bare_pad(r.pos) {
                r.pos += r.cap - r.pos % r.cap;
                continue;
            }
            if w != bare_msg(r.pos) {
                std::hint::spin_loop();
                continue;
            }
            // A record's header always fits before the ring's end (the
            // producer pads otherwise): a commit word there is not ours.
            let room = r.cap - r.pos % r.cap;
            if room < BARE_HEADER as u64 {
                return Err(format!("bare ring: a record {room} B before the end"));
            }
            // Relaxed: made visible by the Acquire above. Read once, checked.
            let len = r.word(off + 8).load(Ordering::Relaxed);
            // `len` first: `record_size` of a garbage length could overflow.
            let size = (len == buf.len() as u64).then(|| record_size(buf.len()));
            let Some(size) = size.filter(|&s| s <= room) else {
                return Err(format!(
                    "bare ring: a record of {len} B, expected {}",
                    buf.len()
                ));
            };
            // SAFETY: checked above to lie inside the ring; the producer wrote
            // it before its Release and will not reuse it before we publish
            // our position past it.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    r.map.as_ptr().add(off + BARE_HEADER),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            r.pos += size;
            // Release: our reads of the record before the producer reuses it.
            r.word(0).store(r.pos, Ordering::Release);
            return Ok(());
        }
    }
}

// SAFETY: the mappings are plain shared memory accessed through atomics and
// protocol-exclusive copies; moving an endpoint to another thread is fine.
unsafe impl Send for FloorEnd {}
// SAFETY: as above.
unsafe impl Send for FloorRing {}
// SAFETY: as above.
unsafe impl Send for BareRing {}

// ---------- pipes and sockets ----------

/// Any pair of byte streams: two pipes, or one socket used both ways.
pub struct StreamEnd<R, W> {
    pub r: R,
    pub w: W,
}

impl<R: Read + Send, W: Write + Send> Endpoint for StreamEnd<R, W> {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        // Flush: the worker's stdout is line-buffered.
        self.w
            .write_all(msg)
            .and_then(|_| self.w.flush())
            .map_err(|e| e.to_string())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.r.read_exact(buf).map_err(|e| e.to_string())
    }
}

// ---------- crossbeam (in-process) ----------

/// The sink's return path and the source's supply of used buffers.
pub type Recycle = (
    crossbeam_channel::Sender<Vec<u8>>,
    crossbeam_channel::Receiver<Vec<u8>>,
);

/// A bounded crossbeam channel each way; the payload is copied into a buffer
/// that travels with the message, so the copy cost matches the others'. Used
/// one way (throughput), received buffers go back to the sender through
/// `recycle`, so neither side allocates per message.
pub struct ChannelEnd {
    pub tx: crossbeam_channel::Sender<Vec<u8>>,
    pub rx: crossbeam_channel::Receiver<Vec<u8>>,
    pub spare: Vec<Vec<u8>>,
    /// Throughput only: (sink's return path, source's supply of used buffers).
    pub recycle: Option<Recycle>,
}

impl Endpoint for ChannelEnd {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        let mut v = match self.spare.pop() {
            Some(v) => v,
            None => self
                .recycle
                .as_ref()
                .and_then(|(_, back)| back.try_recv().ok())
                .unwrap_or_default(),
        };
        v.clear();
        v.extend_from_slice(msg);
        self.tx.send(v).map_err(|e| e.to_string())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let v = self.rx.recv().map_err(|e| e.to_string())?;
        buf.copy_from_slice(&v);
        match &self.recycle {
            Some((ret, _)) => drop(ret.try_send(v)),
            None => self.spare.push(v),
        }
        Ok(())
    }
}

// ---------- floor for wake-ups: a bare futex ----------

/// The wake-up floor: each direction is a 32-bit futex word (a counter) and the
/// payload behind it. The sender bumps the word and calls FUTEX_WAKE; a
/// blocking receiver sleeps in FUTEX_WAIT until the word moves, a spinning one
/// polls it. Nothing else: no queue, no sleeper count.
pub struct FutexEnd {
    map: MmapRaw,
    tx: usize,
    rx: usize,
    got: u32,
    block: bool,
}

impl FutexEnd {
    /// Same file and sides as [`FloorEnd`].
    pub fn new(path: &Path, side: usize, block: bool) -> Result<Self, String> {
        Ok(FutexEnd {
            map: map(path)?,
            tx: side * FLOOR_SLOT,
            rx: (1 - side) * FLOOR_SLOT,
            got: 0,
            block,
        })
    }

    fn word(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: `off` is 0 or FLOOR_SLOT, inside the mapping and 4-aligned;
        // both processes access the word only atomically.
        unsafe {
            &*self
                .map
                .as_mut_ptr()
                .add(off)
                .cast::<std::sync::atomic::AtomicU32>()
        }
    }

    fn futex(&self, off: usize, op: libc::c_int, val: u32) {
        // SAFETY: the word is a live, aligned u32 in a shared mapping; no timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word(off).as_ptr(),
                op,
                val,
                std::ptr::null::<u8>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

impl Endpoint for FutexEnd {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        // SAFETY: as in FloorEnd::send.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.map.as_mut_ptr().add(self.tx + 64),
                msg.len(),
            )
        };
        // Release pairs with the receiver's Acquire load.
        self.word(self.tx).fetch_add(1, Ordering::Release);
        self.futex(self.tx, libc::FUTEX_WAKE, i32::MAX as u32);
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.got = self.got.wrapping_add(1);
        loop {
            // Acquire pairs with the sender's Release increment.
            let v = self.word(self.rx).load(Ordering::Acquire);
            if v == self.got {
                break;
            }
            if self.block {
                self.futex(self.rx, libc::FUTEX_WAIT, v);
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: as in FloorEnd::recv.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(self.rx + 64),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        Ok(())
    }
}

// SAFETY: see FloorEnd.
unsafe impl Send for FutexEnd {}

/// Ring bytes of a record of `len` payload bytes, as shmq sizes them.
fn record_size(len: usize) -> u64 {
    shmq::Geometry::record_bytes(len, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bare ring delivers every record intact and in order across many
    /// laps of a small ring, with pads where a record does not fit a lap's end
    /// and the producer waiting for the consumer when the ring is full.
    #[test]
    fn bare_ring_delivers_across_laps() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r");
        BareRing::file(&f, 4096).unwrap();
        let size = |i: u64| (i * 37 % 300) as usize;
        let fill = |i: u64, n: usize| (0..n).map(|k| (i as usize + k) as u8).collect::<Vec<u8>>();
        let n = 20_000;
        let src = f.clone();
        let t = std::thread::spawn(move || {
            let mut tx = BareRing::new(Some(&src), None).unwrap();
            for i in 0..n {
                tx.send(&fill(i, size(i))).unwrap();
            }
        });
        let mut rx = BareRing::new(None, Some(&f)).unwrap();
        for i in 0..n {
            let mut buf = vec![0u8; size(i)];
            rx.recv(&mut buf).unwrap();
            assert_eq!(buf, fill(i, size(i)), "message {i}");
        }
        t.join().unwrap();
        // A record of another length than expected is an error, not a garbled
        // copy.
        let mut tx = BareRing::new(Some(&f), None).unwrap();
        let mut rx = BareRing::new(None, Some(&f)).unwrap();
        tx.send(&[1, 2, 3]).unwrap();
        assert!(rx.recv(&mut [0u8; 4]).unwrap_err().contains("3 B"));
    }
}
