//! Consumers: members of a group, receiving by copy or in place.

use crate::error::RecvError;
use crate::group::Taken;
use crate::queue::Queue;
use crate::wait::{Event, WaitStrategy};
use std::time::{Duration, Instant};

/// A received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Queue-wide sequence number.
    pub seq: u64,
    /// Publish time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Metadata of a message received into a caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Queue-wide sequence number.
    pub seq: u64,
    /// Publish time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
}

/// A member of a consumer group. Each message of the group goes to exactly one
/// member; a member sees increasing sequence numbers. Leaves the group when
/// dropped (the group keeps its position).
pub struct Consumer {
    q: Queue,
    g: usize,
    m: usize,
    wait: WaitStrategy,
}

#[derive(Clone, Copy)]
enum Mode {
    Try,
    Until(Option<Instant>),
}

impl Consumer {
    pub(crate) fn new(q: Queue, g: usize, m: usize) -> Self {
        Consumer {
            q,
            g,
            m,
            wait: WaitStrategy::default(),
        }
    }

    /// How this consumer waits for messages.
    pub fn set_wait_strategy(&mut self, w: WaitStrategy) {
        self.wait = w;
    }

    fn take(&mut self, mode: Mode) -> Result<Taken, RecvError> {
        let ring = self.q.ring();
        let (g, m) = (self.g, self.m);
        let poll = || match ring.try_take(g, m) {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => None,
            Err(e) => Some(Err(RecvError::Corrupt(e.0))),
        };
        // Fast path: usually a message is there, and `wait_for`'s set-up costs
        // about 70 instructions per receive (callgrind), so poll once first.
        if let Some(r) = poll() {
            return r;
        }
        match mode {
            Mode::Try => Err(RecvError::Empty),
            Mode::Until(deadline) => ring
                .wait_for(Event::Data, self.wait, deadline, poll)
                .unwrap_or(Err(RecvError::Timeout)),
        }
    }

    fn copy_out(&mut self, t: Taken, buf: &mut Vec<u8>) -> Meta {
        let ring = self.q.ring();
        // Every byte is overwritten below: only resize (and zero-fill) when the
        // length changes, not on every message.
        buf.resize(t.len as usize, 0);
        ring.read_payload(&t, buf);
        ring.release(self.g, self.m);
        Meta {
            seq: t.seq,
            ts_ns: t.ts_ns,
        }
    }

    fn recv_mode(&mut self, mode: Mode) -> Result<Message, RecvError> {
        let t = self.take(mode)?;
        let mut payload = Vec::new();
        let meta = self.copy_out(t, &mut payload);
        Ok(Message {
            seq: meta.seq,
            ts_ns: meta.ts_ns,
            payload,
        })
    }

    /// Receives the next message of the group, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Corrupt`] if the queue memory is damaged.
    pub fn recv(&mut self) -> Result<Message, RecvError> {
        self.recv_mode(Mode::Until(None))
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Corrupt`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message, RecvError> {
        self.recv_mode(Mode::Until(Some(Instant::now() + timeout)))
    }

    /// Receives the next message if one is there.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Corrupt`].
    pub fn try_recv(&mut self) -> Result<Message, RecvError> {
        self.recv_mode(Mode::Try)
    }

    /// Receives into `buf` (reusing its allocation), waiting up to `timeout`
    /// (`None`: forever).
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Corrupt`].
    pub fn recv_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Meta, RecvError> {
        let t = self.take(Mode::Until(timeout.map(|d| Instant::now() + d)))?;
        Ok(self.copy_out(t, buf))
    }

    /// Receives the next message in place (zero copy), waiting up to `timeout`
    /// (`None`: forever). The ring space stays reserved until the guard drops.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Corrupt`].
    pub fn recv_ref(&mut self, timeout: Option<Duration>) -> Result<RecvGuard<'_>, RecvError> {
        let t = self.take(Mode::Until(timeout.map(|d| Instant::now() + d)))?;
        Ok(RecvGuard { c: self, t })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.q.ring().detach(self.g, self.m);
    }
}

/// A message read in place. Producers do not overwrite it while the guard lives.
pub struct RecvGuard<'a> {
    c: &'a mut Consumer,
    t: Taken,
}

impl RecvGuard<'_> {
    /// Sequence number.
    pub fn seq(&self) -> u64 {
        self.t.seq
    }

    /// Publish time, nanoseconds since the Unix epoch.
    pub fn ts_ns(&self) -> u64 {
        self.t.ts_ns
    }

    /// The payload, in the ring.
    pub fn as_bytes(&self) -> &[u8] {
        let ring = self.c.q.ring();
        let off = ring.ring_at(self.t.pos) + crate::layout::RECORD_HEADER;
        let len = self.t.len as usize;
        // SAFETY: the length was bounds-checked when the record was taken (it
        // fits before the ring's end); our hazard keeps every producer from
        // writing these bytes until the guard drops, and the commit stamp we
        // loaded with Acquire made the producer's writes visible. Cooperating
        // processes therefore never write them while this borrow lives.
        unsafe { std::slice::from_raw_parts(ring.region.ptr_at(off, len), len) }
    }
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        self.c.q.ring().release(self.c.g, self.c.m);
    }
}
