//! # shmq — a brokerless message queue in shared memory
//!
//! Processes on one host map one queue file (in `/dev/shm` for memory only, or
//! on a real file system) and exchange messages through it at shared-memory
//! speed, with the model of a real message queue:
//!
//! - **Dense sequence numbers.** Every message gets a queue-wide `u64`, strictly
//!   increasing in the order every consumer sees it, so lag is exact and a gap
//!   is detectable.
//! - **Lock-free producers.** Producers in any processes (as many at once as
//!   the queue's `max_producers`, set at creation) publish concurrently with
//!   one 128-bit CAS and no syscall on the hot path.
//! - **Consumer groups.** Broadcast between groups, unicast within a group:
//!   every group receives every message in order; the members of one group
//!   compete and each message goes to exactly one of them. Positions live in the
//!   file, so a group continues where it left off.
//! - **Nothing overwritten unread.** A full ring makes producers wait (or fail
//!   with [`SendError::Full`] from `try_send`) rather than drop a message.
//! - **Exactly-once publishing.** A named producer
//!   ([`Queue::named_producer`]) numbers its messages, and a number already
//!   committed under its name is refused ([`SendError::Duplicate`]), also
//!   after a crash in the middle of a publish.
//! - **Blocking without cost.** Waiters sleep on a futex in the mapping; a
//!   producer makes a syscall only when someone sleeps.
//!
//! ```
//! use shmq::{Queue, QueueOptions, StartAt};
//!
//! let dir = tempfile::tempdir()?;
//! let q = Queue::create(dir.path().join("orders"), &QueueOptions::default())?;
//! q.add_group("billing", StartAt::Latest)?;
//! q.add_group("audit", StartAt::Latest)?;
//! let mut billing = q.consumer("billing")?;
//! let mut audit = q.consumer("audit")?;
//!
//! let mut producer = q.producer()?;
//! producer.send(b"order 1")?;
//! producer.send_batch(&[b"order 2", b"order 3"])?;
//!
//! let seqs: Vec<u64> = (0..3).map(|_| billing.recv().map(|m| m.seq)).collect::<Result<_, _>>()?;
//! assert_eq!(seqs, [0, 1, 2]);
//! // What waits, taken with one cursor update and read in place:
//! let mut seen = Vec::new();
//! audit.recv_batch(64, None, |meta, payload| seen.push((meta.seq, payload.to_vec())))?;
//! assert_eq!(seen, [(0, b"order 1".to_vec()), (1, b"order 2".to_vec()), (2, b"order 3".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The file format is described byte by byte in [`layout`]; the protocols in
//! `ring.rs` (claim/commit), `group.rs` (cursors and hazards) and `wait.rs`
//! (wait/wake), each of which is model-checked by `loom-tests/`.

#![deny(unsafe_op_in_unsafe_fn)]
#![cfg(target_os = "linux")]

mod ack;
#[cfg(target_arch = "x86_64")]
mod atomic128;
mod check;
mod clock;
mod consumer;
mod error;
mod futex;
mod group;
mod identity;
pub mod layout;
mod liveness;
mod producer;
mod queue;
mod raw_region;
mod region;
mod registry;
mod replay;
mod ring;
mod spill;
mod spill_log;
mod spiller;
mod sync;
mod wait;

pub use check::CheckReport;
pub use clock::{now_ns, timestamps_from_tsc};
pub use consumer::{Ack, Consumer, Message, Meta, ProducerTag, RecvGuard};
pub use error::{AckError, GroupError, OpenError, RecvError, SendError};
pub use group::StartAt;
pub use identity::NameStat;
pub use layout::Geometry;
pub use producer::{Producer, SendGuard};
pub use queue::{
    GroupStat, MemberStat, ProducerStat, Queue, QueueOptions, RemovedMember, SpillStat, Stat,
};
pub use registry::Recovery;
pub use replay::{Retained, SeekTo};
pub use spill_log::{Fsync, LogError, SpillOptions};
pub use spiller::RoundOutcome;
#[cfg(feature = "crash-points")]
#[doc(hidden)]
pub use spiller::CRASH_POINTS;
pub use wait::WaitStrategy;
