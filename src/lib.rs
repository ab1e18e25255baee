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
//!   ([`ProducerBuilder::name`]) numbers its messages, and a number already
//!   committed under its name is refused ([`SendError::Duplicate`]), also
//!   after a crash in the middle of a publish.
//! - **Blocking without cost.** Waiters sleep on a futex in the mapping; a
//!   producer makes a syscall only when someone sleeps.
//!
//! ```
//! use shmq::{Ack, Queue, StartAt};
//!
//! let dir = tempfile::tempdir()?;
//! let q = Queue::create(dir.path().join("orders"))?;
//! q.ensure_group("billing", StartAt::Latest)?;
//! q.ensure_group("audit", StartAt::Latest)?;
//! let mut billing = q.consumer("billing").ack(Ack::Explicit).attach()?;
//! let mut audit = q.consumer("audit").attach()?;
//!
//! let mut producer = q.producer().attach()?;
//! producer.send(b"order 1")?;
//! producer.send_batch(&[b"order 2", b"order 3"])?;
//!
//! // Every group gets every message; billing acknowledges each one.
//! for _ in 0..3 {
//!     let m = billing.recv()?;
//!     billing.ack(m.seq)?;
//! }
//! let seqs: Vec<u64> = audit.try_iter().map(|m| m.map(|m| m.seq)).collect::<Result<_, _>>()?;
//! assert_eq!(seqs, [0, 1, 2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What holds when processes crash
//!
//! - A message whose `send` returned its sequence number reaches every group
//!   that existed when it was published, in sequence order, unless that group
//!   gives it up to its dead-letter group after `max_attempts`
//!   ([`Queue::set_max_attempts`]).
//! - [`Ack::Explicit`]: a message handed to a member that dies (SIGKILL),
//!   leaves, nacks it or holds it past the group's ack deadline is delivered
//!   again, flagged ([`Message::redelivered`]): at least once.
//!   With [`Ack::Auto`] a message counts as consumed when it is handed out,
//!   so a member killed while processing it loses it: at most once.
//! - A producer killed in the middle of a publish leaves no record a
//!   consumer sees half-written: what it did not commit is skipped, and its
//!   sequence numbers are marked aborted, never reused.
//! - A named producer ([`ProducerBuilder::name`]) publishes each
//!   per-producer sequence number at most once, also across its own crash
//!   and restart ([`SendError::Duplicate`]).
//! - With a spill log ([`QueueOptions::spill`]), a group that falls a ring
//!   behind reads from disk and catches up; a full disk holds producers back
//!   ([`SendError::Spill`]) rather than dropping anything.
//!
//! The full statement, with what is not promised, is in `docs/guarantees.md`;
//! the file format in `docs/format.md` (not public API: it has a version,
//! [`FORMAT_VERSION`], and a file of another version is refused). The
//! protocols live in `ring.rs` (claim/commit), `group.rs` (cursors and
//! hazards), `ack.rs` (acknowledgements) and `wait.rs` (wait/wake), each
//! model-checked by `loom-tests/`.
//!
//! ## Conventions
//!
//! - Every operation that may wait comes in three forms: `op` waits as long as
//!   it takes, `try_op` does not wait, `op_timeout` waits at most a
//!   [`Duration`](std::time::Duration) (as in `std::sync::mpsc` and crossbeam).
//! - Every error converts into [`Error`], so `?` works across operations.
//! - Producers and consumers are configured by builders and fixed when they
//!   attach ([`Queue::producer`], [`Queue::consumer`]).

#![deny(unsafe_op_in_unsafe_fn)]
#![cfg(target_os = "linux")]

// The layers, from the bottom; each uses only those below it (tests/
// source_rules.rs fails on any import cycle between files):
// - `sync` (the atomics), `region` (the memory the protocols run on),
//   `error`;
// - `protocol`: the lock-free protocols over a region, exactly the files
//   loom-tests compiles; beside it `os`: the mapping of a queue file,
//   futexes, liveness, the clock;
// - `message`: what a consumer receives;
// - `spill`: the spill log and the rounds that fill it;
// - `queue`: a queue file opened (the handle, its header, options, admin,
//   stat, check, replay);
// - `producer`, `consumer`: the handles, made from a queue;
// - `staged`: what is published later through a producer (scheduled
//   messages, transactions); a waiting consumer polls it.
mod consumer;
mod error;
mod message;
mod os;
mod producer;
mod protocol;
mod queue;
mod region;
mod send_options;
mod spill;
mod staged;
mod sync;

// The file format is not public API (docs/format.md describes it); the
// fuzzers, which write garbage at its offsets, see it through a feature
// only the tests turn on.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use protocol::layout;

pub use consumer::{Ack, Consumer, ConsumerBuilder, Iter, RecvGuard, TryIter};
pub use error::{
    AckError, Error, GroupError, OpenError, ProducerError, Reason, RecvError, SendError,
    SpillError, StagedError,
};
pub use message::{Key, Message, Meta, ProducerTag};
pub use os::clock;
pub use protocol::group::StartAt;
pub use protocol::identity::NameStat;
pub use queue::check::CheckReport;
pub use queue::geometry::Geometry;

/// The version of the queue file format this build reads and writes
/// (docs/format.md); a file of another version is refused
/// ([`OpenError::WrongVersion`]).
pub const FORMAT_VERSION: u32 = protocol::layout::FORMAT_VERSION;
/// The producer name under which a queue publishes its scheduled messages
/// when they come due ([`Producer::schedule`]); users cannot take it.
pub const RELEASER_NAME: &str = protocol::layout::RELEASER_NAME;
/// The longest message key, in bytes ([`SendOptions::key`]).
pub const MAX_KEY: usize = protocol::layout::MAX_KEY;
pub use producer::{Producer, ProducerBuilder, SendGuard};
pub use protocol::registry::Recovery;
pub use protocol::wait::WaitStrategy;
pub use queue::replay::{Retained, SeekTo};
pub use queue::stat::{GroupStat, MemberStat, ProducerStat, RemovedMember, SpillStat, Stat};
pub use queue::{Queue, QueueOptions};
pub use send_options::SendOptions;
pub use spill::log::{Fsync, SpillOptions};
pub use spill::rounds::RoundOutcome;
#[cfg(feature = "crash-points")]
#[doc(hidden)]
pub use spill::rounds::CRASH_POINTS;
pub use staged::schedule::{Due, Scheduled};
pub use staged::txn::{PendingTransaction, Prepared, Transaction, TxnState};
pub use staged::StagedStat;
