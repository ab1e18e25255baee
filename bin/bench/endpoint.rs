//! The mechanisms `shmq bench` compares, behind one small trait, so every test
//! runs the same loop over each of them.
//!
//! - `shmq`: two queues (one per direction) of this crate, spin-waiting.
//! - `floor`: the physical floor — a shared mapping where each direction is one
//!   sequence word plus the payload right behind it: one cache line (or a few,
//!   for larger payloads) changes hands, and the payload is copied in and out.
//!   For throughput the floor is a plain single-producer single-consumer ring of
//!   fixed slots in shared memory.
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
    Shmq,
    Floor,
    Pipe,
    Uds,
    Crossbeam,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Shmq => "shmq",
            Mechanism::Floor => "floor",
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
                let mut prod = Queue::open(p)
                    .map_err(|e| e.to_string())?
                    .producer()
                    .map_err(|e| e.to_string())?;
                prod.set_wait_strategy(wait);
                Some(prod)
            }
            None => None,
        };
        let rx = match rx {
            Some((p, g)) => {
                let mut c = Queue::open(p)
                    .map_err(|e| e.to_string())?
                    .consumer(g)
                    .map_err(|e| e.to_string())?;
                c.set_wait_strategy(wait);
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
            .recv_ref(None)
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

/// Payload buffers per direction for messages that do not share the sequence
/// word's line: rotating through them, as a ring does, keeps the sender from
/// rewriting the very lines the receiver has just read.
const FLOOR_BUFS: usize = 16;
/// Largest floor payload.
const FLOOR_MAX: usize = 64 << 10;
/// Bytes reserved per direction in the floor's mapping.
pub const FLOOR_SLOT: usize = 4096 + FLOOR_BUFS * FLOOR_MAX;

/// Where message number `n` of `len` bytes goes in a mailbox: right behind the
/// sequence word when both fit one cache line (one line changes hands), else in
/// one of the rotating, page-aligned buffers.
fn payload_off(len: usize, n: u64) -> usize {
    if len <= 56 {
        8
    } else {
        4096 + (n as usize % FLOOR_BUFS) * FLOOR_MAX
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

// SAFETY: the mappings are plain shared memory accessed through atomics and
// protocol-exclusive copies; moving an endpoint to another thread is fine.
unsafe impl Send for FloorEnd {}
// SAFETY: as above.
unsafe impl Send for FloorRing {}

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
