//! Error types: one per kind of operation, each convertible into the crate's
//! [`Error`], so that `?` works across them. Each variant says what went wrong
//! in terms a user can act on; none of them is ever turned into a panic. All
//! are `#[non_exhaustive]`: later versions may add variants.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Any error of this crate: every operation's error converts into it
/// (`From`), and [`std::error::Error::source`] gives the operation's error.
///
/// ```
/// fn run() -> Result<(), shmq::Error> {
///     let q = shmq::QueueOptions::new().in_memory()?; // OpenError
///     q.add_group("audit", shmq::StartAt::Latest)?; // GroupError
///     let mut audit = q.consumer("audit").attach()?; // GroupError
///     let mut producer = q.producer().attach()?; // ProducerError
///     producer.send(b"hello")?; // SendError
///     assert_eq!(audit.recv()?.payload, b"hello"); // RecvError
///     Ok(())
/// }
/// run().unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Creating or opening a queue.
    Open(OpenError),
    /// Managing groups, or attaching a consumer.
    Group(GroupError),
    /// Attaching a producer, or managing producer names.
    Producer(ProducerError),
    /// Publishing.
    Send(SendError),
    /// Receiving.
    Recv(RecvError),
    /// Acknowledging.
    Ack(AckError),
    /// Running a spill round, or removing a queue's files.
    Spill(SpillError),
    /// Scheduling a message for later, or a transaction.
    Staged(StagedError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(e) => e.fmt(f),
            Error::Group(e) => e.fmt(f),
            Error::Producer(e) => e.fmt(f),
            Error::Send(e) => e.fmt(f),
            Error::Recv(e) => e.fmt(f),
            Error::Ack(e) => e.fmt(f),
            Error::Spill(e) => e.fmt(f),
            Error::Staged(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match self {
            Error::Open(e) => e,
            Error::Group(e) => e,
            Error::Producer(e) => e,
            Error::Send(e) => e,
            Error::Recv(e) => e,
            Error::Ack(e) => e,
            Error::Spill(e) => e,
            Error::Staged(e) => e,
        })
    }
}

macro_rules! into_error {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$v(e)
            }
        }
    )*};
}
into_error!(OpenError => Open, GroupError => Group, ProducerError => Producer,
    SendError => Send, RecvError => Recv, AckError => Ack, SpillError => Spill,
    StagedError => Staged);

/// What was found wrong, described for people: carried by the variants that
/// report damaged data or unusable settings ([`OpenError::BadGeometry`],
/// [`RecvError::Corrupt`], [`SpillError::Corrupt`], …). Match on the variant;
/// the reason is for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub(crate) fn new(s: impl Into<String>) -> Reason {
        Reason(s.into())
    }

    /// The description.
    ///
    /// ```
    /// // A ring size that is not a power of two is refused, with the reason.
    /// match shmq::QueueOptions::new().capacity(5000).in_memory() {
    ///     Err(shmq::OpenError::BadGeometry(reason)) => {
    ///         assert!(!reason.as_str().is_empty());
    ///         assert_eq!(reason.as_str(), reason.to_string());
    ///     }
    ///     other => panic!("expected BadGeometry, got {other:?}"),
    /// }
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The spill log could not be written or read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SpillError {
    /// The file system said no (disk full, permissions, I/O error).
    Io(Arc<io::Error>),
    /// A record or segment is not what the writer wrote.
    Corrupt(Reason),
    /// No segment holds this log position any more (deleted by retention).
    Missing(u64),
}

impl PartialEq for SpillError {
    /// Errors of the file system compare by kind and OS error code.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SpillError::Io(a), SpillError::Io(b)) => {
                a.kind() == b.kind() && a.raw_os_error() == b.raw_os_error()
            }
            (SpillError::Corrupt(a), SpillError::Corrupt(b)) => a == b,
            (SpillError::Missing(a), SpillError::Missing(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SpillError {}

impl fmt::Display for SpillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpillError::Io(e) => write!(f, "spill log: {e}"),
            SpillError::Corrupt(s) => write!(f, "spill log corrupt: {s}"),
            SpillError::Missing(p) => {
                write!(f, "spill log: position {p} is no longer retained")
            }
        }
    }
}

impl std::error::Error for SpillError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpillError::Io(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<io::Error> for SpillError {
    fn from(e: io::Error) -> Self {
        SpillError::Io(Arc::new(e))
    }
}

/// Creating or opening a queue failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// No file at the path.
    NotFound(PathBuf),
    /// `create` found a file at the path and was not asked to replace it.
    AlreadyExists(PathBuf),
    /// The file does not start with the shmq magic bytes.
    NotAQueue(PathBuf),
    /// The file is a shmq queue of another format version.
    WrongVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// The file is shorter (or longer) than its header says.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Size the header implies.
        expected: u64,
        /// Actual size.
        found: u64,
    },
    /// The geometry is invalid (at creation) or inconsistent (in a file).
    BadGeometry(Reason),
    /// The file uses features this build does not know.
    Incompatible(Reason),
    /// This CPU has no lock-free 128-bit atomics, which the protocol needs.
    Unsupported,
    /// The file belongs to another user and its mode does not share it (read
    /// and write for group or others): refused even where permissions would let
    /// this process in (as root), so a private queue is never joined by mistake.
    ForeignOwner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// The spill directory belongs to another queue (its `owner` file names
    /// that queue): two queues sharing one log would destroy each other's.
    SpillDirInUse {
        /// The spill directory.
        dir: PathBuf,
        /// The queue it belongs to, as its owner file names it.
        owner: String,
    },
    /// An I/O error, with the operation that failed.
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotFound(p) => write!(f, "{}: no such queue file", p.display()),
            OpenError::AlreadyExists(p) => write!(f, "{}: file exists (`QueueOptions::replace` replaces it)", p.display()),
            OpenError::NotAQueue(p) => write!(f, "{}: not a shmq queue (bad magic)", p.display()),
            OpenError::WrongVersion { path, found, expected } => write!(
                f,
                "{}: queue format version {found}, this build reads version {expected}",
                path.display()
            ),
            OpenError::Truncated { path, expected, found } => write!(
                f,
                "{}: file is {found} bytes but its header describes {expected} bytes (truncated or damaged)",
                path.display()
            ),
            OpenError::BadGeometry(s) => write!(f, "bad queue geometry: {s}"),
            OpenError::Incompatible(s) => write!(f, "incompatible queue: {s}"),
            OpenError::Unsupported => write!(f, "this CPU lacks lock-free 128-bit atomics (cmpxchg16b / casp)"),
            OpenError::ForeignOwner { path, uid, mode } => write!(
                f,
                "{}: owned by uid {uid} with mode {mode:o}, not shared with other users (needs group or other read+write)",
                path.display()
            ),
            OpenError::SpillDirInUse { dir, owner } => write!(
                f,
                "{}: spill directory of another queue ({owner}); give this queue its own directory, or create it with `QueueOptions::replace` to take this one over (its log is deleted)",
                dir.display()
            ),
            OpenError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Sending failed. The caller still owns the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The message is longer than the queue's maximum.
    TooLarge {
        /// Length given.
        len: usize,
        /// The queue's maximum.
        max: usize,
    },
    /// The ring is full (a group has not consumed what would be overwritten).
    Full,
    /// The ring stayed full until the timeout.
    Timeout,
    /// The ring is full and spilling to disk failed (disk full, I/O error):
    /// nothing was lost; sending works again once a spill round succeeds.
    Spill(SpillError),
    /// A named producer's message repeats a per-producer sequence number
    /// already committed under its name (or a lower one): it was published
    /// before, so it is not published again.
    Duplicate {
        /// The pseq given.
        pseq: u64,
        /// The last pseq committed under the name.
        last: u64,
    },
    /// A per-producer sequence number was given to an anonymous producer.
    NotNamed,
    /// A per-producer sequence number too large (numbers stay below
    /// `u64::MAX`).
    PseqOutOfRange(u64),
    /// A named producer's transaction commit failed and the mark it had put
    /// on the transaction's file could not be taken off (the staging
    /// directory fails): nothing is published under the name until it is
    /// ([`Producer::pending_transactions`](crate::Producer::pending_transactions)
    /// or any send tries again), or the mark's pseq could go to another
    /// message.
    MarkUnsettled,
    /// A message key longer than [`MAX_KEY`](crate::MAX_KEY).
    KeyTooLong {
        /// Length given.
        len: usize,
        /// The longest key.
        max: usize,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::TooLarge { len, max } => write!(
                f,
                "message of {len} bytes exceeds the queue maximum of {max}"
            ),
            SendError::Full => write!(
                f,
                "queue full: a consumer group has not read what would be overwritten"
            ),
            SendError::Timeout => write!(f, "queue stayed full until the timeout"),
            SendError::Spill(e) => write!(f, "queue full and spilling to disk failed: {e}"),
            SendError::Duplicate { pseq, last } => write!(
                f,
                "duplicate: per-producer sequence number {pseq} is not above the last one committed ({last})"
            ),
            SendError::NotNamed => write!(
                f,
                "only a named producer numbers its messages (ProducerBuilder::name)"
            ),
            SendError::PseqOutOfRange(p) => {
                write!(f, "per-producer sequence number {p} is out of range")
            }
            SendError::MarkUnsettled => write!(
                f,
                "a transaction's commit mark could not be settled (the staging directory fails): nothing is published under this producer until it is"
            ),
            SendError::KeyTooLong { len, max } => {
                write!(f, "key of {len} bytes is longer than the longest, {max}")
            }
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Spill(e) => Some(e),
            _ => None,
        }
    }
}

/// Receiving failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing to receive now (`try_recv`).
    Empty,
    /// Nothing arrived before the timeout.
    Timeout,
    /// The queue memory holds something the protocol did not write.
    Corrupt(Reason),
    /// The group reads the spill log and reading it failed.
    Spill(SpillError),
    /// A message the group gave up could not be published to its
    /// dead-letter group (for a reason other than a full ring, which only
    /// delays it).
    DeadLetter {
        /// The message given up.
        seq: u64,
        /// Why publishing it failed.
        source: SendError,
    },
    /// An explicitly acknowledging member holds its whole window of
    /// unacknowledged messages: ack or nack one first.
    AckPending {
        /// The oldest message it holds.
        seq: u64,
    },
    /// Every entry of the group's ack table is in use (held by members or
    /// waiting for redelivery): an explicitly acknowledging member can take
    /// a new message only once one is acknowledged. The table's size is set
    /// at creation (`QueueOptions::ack_entries`).
    AckTableFull {
        /// Entries in the table.
        entries: u32,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Empty => write!(f, "no message available"),
            RecvError::Timeout => write!(f, "no message before the timeout"),
            RecvError::Corrupt(s) => write!(f, "queue corrupt: {s}"),
            RecvError::Spill(s) => write!(f, "reading the spill log failed: {s}"),
            RecvError::DeadLetter { seq, source } => {
                write!(
                    f,
                    "publishing message {seq} to the dead-letter group: {source}"
                )
            }
            RecvError::AckPending { seq } => {
                write!(
                    f,
                    "the window of unacknowledged messages is full (the oldest is {seq}): ack or nack one first"
                )
            }
            RecvError::AckTableFull { entries } => {
                write!(
                    f,
                    "all {entries} entries of the group's ack table are in use: ack a message first"
                )
            }
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::Spill(e) => Some(e),
            RecvError::DeadLetter { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An acknowledgement could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckError {
    /// The member holds no unacknowledged message with this sequence number
    /// (it was acknowledged already, or received with auto-ack).
    NotHeld {
        /// The sequence number given.
        seq: u64,
        /// The oldest one the member holds, if any.
        held: Option<u64>,
    },
    /// The member held `seq` past the group's ack deadline (or was taken
    /// for dead): it went back for redelivery, and this acknowledgement
    /// changed nothing.
    Expired {
        /// The sequence number given.
        seq: u64,
    },
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::NotHeld { seq, held: Some(h) } => {
                write!(f, "message {seq} is not held by this member (it holds {h})")
            }
            AckError::NotHeld { seq, held: None } => {
                write!(
                    f,
                    "message {seq} is not held by this member (it holds none)"
                )
            }
            AckError::Expired { seq } => {
                write!(
                    f,
                    "message {seq} was held past the group's ack deadline and went back for redelivery"
                )
            }
        }
    }
}

impl std::error::Error for AckError {}

/// A group operation (adding, removing, configuring, seeking a group;
/// attaching a consumer; reaping) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum GroupError {
    /// No group of that name.
    Unknown(String),
    /// A group of that name exists already.
    Exists(String),
    /// Every group slot is taken.
    TableFull {
        /// The queue's group limit ([`crate::QueueOptions::max_groups`]).
        max: u32,
    },
    /// Every member slot of the group is taken by a live member.
    MembersFull {
        /// The group.
        group: String,
        /// The queue's member limit ([`crate::QueueOptions::max_members`]).
        max: u32,
    },
    /// Names are 1 to 64 bytes of ASCII letters, digits, '.', '_' and '-'.
    InvalidName(String),
    /// The group has live members; stop them first.
    HasMembers {
        /// The group.
        group: String,
        /// How many.
        count: usize,
    },
    /// A seek to a sequence number that is neither in the ring nor in the
    /// spill log's replayable run.
    NotRetained {
        /// The sequence number asked for.
        seq: u64,
        /// Oldest retained.
        first: u64,
        /// The tail (next to be published).
        last: u64,
    },
    /// The group named as a dead-letter target is not a dead-letter group.
    NotDeadLetter(String),
    /// The group exists with another kind than asked for
    /// ([`crate::Queue::ensure_group`]): a dead-letter group where an ordinary
    /// one was asked for, or the other way round.
    KindMismatch(String),
    /// Taking the queue's admin lock failed.
    Io(io::Error),
    /// The spill log could not be locked or read (a seek).
    Spill(SpillError),
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Unknown(g) => write!(f, "unknown group '{g}'"),
            GroupError::Exists(g) => write!(f, "group '{g}' exists already"),
            GroupError::TableFull { max } => {
                write!(f, "group table full ({max} groups, the queue's max_groups)")
            }
            GroupError::MembersFull { group, max } => write!(
                f,
                "group '{group}' has {max} live members already (the queue's max_members)"
            ),
            GroupError::InvalidName(g) => {
                write!(f, "invalid name '{g}': use 1 to 64 of A-Z a-z 0-9 . _ -")
            }
            GroupError::HasMembers { group, count } => write!(
                f,
                "group '{group}' has {count} live member(s); stop them first"
            ),
            GroupError::NotRetained { seq, first, last } => write!(
                f,
                "sequence number {seq} is not retained (retained: {first}..={last})"
            ),
            GroupError::NotDeadLetter(g) => write!(f, "group '{g}' is not a dead-letter group"),
            GroupError::KindMismatch(g) => write!(
                f,
                "group '{g}' exists with the other kind (dead-letter or ordinary)"
            ),
            GroupError::Io(e) => write!(f, "queue admin lock: {e}"),
            GroupError::Spill(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for GroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GroupError::Io(e) => Some(e),
            GroupError::Spill(e) => Some(e),
            _ => None,
        }
    }
}

/// Attaching a producer, or removing a producer name, failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProducerError {
    /// Every producer registry slot belongs to a live producer.
    RegistryFull {
        /// The registry's size ([`crate::QueueOptions::max_producers`]).
        max: u32,
    },
    /// A live producer is attached under this name already.
    NameInUse {
        /// The name.
        name: String,
        /// Its pid.
        pid: u64,
    },
    /// The previous producer under this name died with a claim that could not
    /// be settled yet (the ring kept moving under the recovery, or another
    /// producer died at the same moment); try again.
    Unsettled {
        /// The name.
        name: String,
        /// The dead producer's pid.
        pid: u64,
    },
    /// The table of producer names is full.
    NamesFull {
        /// Its size ([`crate::QueueOptions::max_producers`]).
        max: u32,
    },
    /// No producer of that name ([`crate::Queue::remove_producer_name`]).
    UnknownName(String),
    /// Names are 1 to 64 bytes of ASCII letters, digits, '.', '_' and '-'.
    InvalidName(String),
    /// The name has prepared transactions ([`crate::Producer::pending_transactions`]):
    /// removing it would leave them to nobody. Commit or abort them first.
    PendingTransactions {
        /// The name.
        name: String,
        /// How many.
        count: usize,
    },
    /// Taking the queue's admin lock failed.
    Io(io::Error),
}

impl fmt::Display for ProducerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProducerError::RegistryFull { max } => write!(f, "all {max} producer slots are taken by live producers (the queue's max_producers)"),
            ProducerError::NameInUse { name, pid } => write!(f, "producer name '{name}' is in use by live process {pid}"),
            ProducerError::Unsettled { name, pid } => write!(f, "the last producer named '{name}' (pid {pid}) died in the middle of a publish that is not settled yet; try again"),
            ProducerError::NamesFull { max } => write!(f, "all {max} producer names are taken (the queue's max_producers; Queue::remove_producer_name frees one)"),
            ProducerError::UnknownName(n) => write!(f, "no producer name '{n}'"),
            ProducerError::InvalidName(g) => write!(f, "invalid name '{g}': use 1 to 64 of A-Z a-z 0-9 . _ -"),
            ProducerError::PendingTransactions { name, count } => write!(f, "producer name '{name}' has {count} prepared transaction(s): commit or abort them first (shmq txn list)"),
            ProducerError::Io(e) => write!(f, "queue admin lock: {e}"),
        }
    }
}

impl std::error::Error for ProducerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProducerError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Scheduling a message ([`crate::Producer::schedule`]), releasing due ones
/// ([`crate::Queue::release_due`]), or a transaction
/// ([`crate::Transaction`]) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StagedError {
    /// The message (or the transaction's publish) was refused: too large,
    /// a key too long, the ring full (`try_` forms), a spill failure.
    Send(SendError),
    /// Transactions belong to named producers ([`crate::ProducerBuilder::name`]).
    NotNamed,
    /// No prepared transaction of this producer with that id.
    UnknownTransaction(u64),
    /// A staged file is damaged (moved aside as `….bad`; `shmq check`
    /// lists it).
    Damaged {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: Reason,
    },
    /// The staging directory could not be written or read.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// Attaching the producer that releases due messages (or a
    /// transaction's producer) failed.
    Producer(ProducerError),
}

impl fmt::Display for StagedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StagedError::Send(e) => e.fmt(f),
            StagedError::NotNamed => write!(
                f,
                "transactions belong to named producers (ProducerBuilder::name)"
            ),
            StagedError::UnknownTransaction(t) => {
                write!(f, "no prepared transaction {t} of this producer")
            }
            StagedError::Damaged { file, reason } => {
                write!(f, "{}: damaged staged file: {reason}", file.display())
            }
            StagedError::Io { what, source } => write!(f, "{what}: {source}"),
            StagedError::Producer(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StagedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StagedError::Send(e) => Some(e),
            StagedError::Io { source, .. } => Some(source),
            StagedError::Producer(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SendError> for StagedError {
    fn from(e: SendError) -> Self {
        StagedError::Send(e)
    }
}

impl From<ProducerError> for StagedError {
    fn from(e: ProducerError) -> Self {
        StagedError::Producer(e)
    }
}
