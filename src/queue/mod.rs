//! Creating and opening queue files, the admin lock, groups and `stat`.

pub mod check;
pub mod geometry;
pub mod replay;

use crate::error::{GroupError, OpenError, ProducerError};
use crate::os::liveness;
use crate::os::mapping::RawRegion;
use crate::protocol::group::{GroupInfo, StartAt};
use crate::protocol::identity::{NameStat, Refused};
use crate::protocol::layout::*;
use crate::protocol::ring::Ring;
use crate::protocol::wait::Sleeper;
use crate::queue::check::CheckReport;
use crate::region::Region;
use crate::spill::log::LogError;
use crate::spill::log::{list_segments, Fsync, SpillOptions};
use crate::spill::rounds::{RoundOutcome, Spill};
use crate::sync::{wide_atomics_lock_free, Ordering};

use memmap2::MmapOptions;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

/// How to create a queue: a builder, in the manner of
/// [`std::fs::OpenOptions`]. Every setting has a default; the geometry is
/// checked when the queue is created.
///
/// ```
/// use shmq::QueueOptions;
/// let dir = tempfile::tempdir()?;
/// let q = QueueOptions::new()
///     .capacity(64 << 10)
///     .max_groups(4)
///     .create(dir.path().join("orders"))?;
/// assert_eq!(q.geometry().capacity, 64 << 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "options do nothing until `create`, `open_or_create` or `in_memory`"]
pub struct QueueOptions {
    capacity: u64,
    max_msg: u32,
    max_groups: u32,
    max_members: u32,
    max_producers: u32,
    ack_entries: u32,
    replace: bool,
    mode: u32,
    spill: Option<SpillOptions>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            capacity: 1 << 20,
            max_msg: 0,
            max_groups: 16,
            max_members: 16,
            max_producers: 64,
            ack_entries: 64,
            replace: false,
            mode: 0o600,
            spill: None,
        }
    }
}

impl QueueOptions {
    /// The defaults: a 1 MiB ring, messages up to 64 KiB, 16 groups of up to
    /// 16 members, 64 producers, 64 ack entries per group, mode 0o600, no
    /// spill log.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// assert_eq!(q.geometry().capacity, 1 << 20);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn new() -> QueueOptions {
        QueueOptions::default()
    }

    /// Ring size in bytes: a power of two, at least 4 KiB. Default 1 MiB.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// assert_eq!(q.geometry().capacity, 4096);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// Largest payload in bytes. Default 0: the largest the ring allows
    /// ([`QueueOptions::fitting_max_msg`]), at most 64 KiB, so that a small
    /// ring just works. A value that does not fit the ring is refused
    /// ([`OpenError::BadGeometry`]).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().max_msg(100).in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// assert!(p.send(&[0; 101]).is_err());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_msg(mut self, bytes: u32) -> Self {
        self.max_msg = bytes;
        self
    }

    /// Group slots. Default 16.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().max_groups(1).in_memory()?;
    /// q.add_group("a", shmq::StartAt::Latest)?;
    /// assert!(q.add_group("b", shmq::StartAt::Latest).is_err());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_groups(mut self, n: u32) -> Self {
        self.max_groups = n;
        self
    }

    /// Member slots per group: members attached at once. Default 16.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().max_members(1).in_memory()?;
    /// q.add_group("a", shmq::StartAt::Latest)?;
    /// let _first = q.consumer("a").attach()?;
    /// assert!(q.consumer("a").attach().is_err());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_members(mut self, n: u32) -> Self {
        self.max_members = n;
        self
    }

    /// Producers attached at once, and producer names a queue keeps.
    /// Default 64.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().max_producers(1).in_memory()?;
    /// let _first = q.producer().attach()?;
    /// assert!(q.producer().attach().is_err());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_producers(mut self, n: u32) -> Self {
        self.max_producers = n;
        self
    }

    /// Entries in each group's ack table: messages the members of one group
    /// hold unacknowledged ([`crate::Ack::Explicit`], up to each member's
    /// window) or that wait for redelivery, at once. Default 64.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().ack_entries(8).in_memory()?;
    /// assert_eq!(q.geometry().ack_entries, 8);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ack_entries(mut self, n: u32) -> Self {
        self.ack_entries = n;
        self
    }

    /// Whether `create` replaces a file at the path (and deletes the log in
    /// the spill directory). Default false: `create` refuses
    /// ([`OpenError::AlreadyExists`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("q");
    /// shmq::Queue::create(&path)?;
    /// assert!(shmq::Queue::create(&path).is_err());
    /// shmq::QueueOptions::new().replace(true).create(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replace(mut self, yes: bool) -> Self {
        self.replace = yes;
        self
    }

    /// Permission bits of the file (before the umask). Default 0o600: only
    /// the creating user; 0o660 or 0o666 share it with a group or everyone.
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("q");
    /// shmq::QueueOptions::new().mode(0o600).create(&path)?;
    /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mode(mut self, bits: u32) -> Self {
        self.mode = bits;
        self
    }

    /// Spill to disk instead of holding producers back when a group falls a
    /// ring behind (`None`: do not). Default: none (a full ring makes
    /// producers wait).
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::QueueOptions::new()
    ///     .spill(shmq::SpillOptions::new(dir.path().join("spill")))
    ///     .create(dir.path().join("q"))?;
    /// assert!(q.spill_options().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spill(mut self, spill: impl Into<Option<SpillOptions>>) -> Self {
        self.spill = spill.into();
        self
    }

    /// Creates a queue file at `path` with these options (use a path in
    /// `/dev/shm` for memory only). The file appears fully initialised or not
    /// at all.
    ///
    /// # Errors
    /// [`OpenError::AlreadyExists`] unless [`QueueOptions::replace`];
    /// [`OpenError::BadGeometry`] for sizes the protocol cannot use;
    /// [`OpenError::SpillDirInUse`]; [`OpenError::Io`] for file system errors.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::QueueOptions::new().capacity(1 << 16).create(dir.path().join("q"))?;
    /// assert_eq!(q.path(), Some(dir.path().join("q").as_path()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Queue, OpenError> {
        Queue::create_with(path.as_ref(), self)
    }

    /// Opens the queue at `path`, or creates it with these options if there
    /// is none. Of several processes racing to create it, one does and the
    /// others open it. An existing queue is opened as it is: these options
    /// apply only to a queue this call creates (compare
    /// [`Queue::geometry`] if it matters).
    ///
    /// # Errors
    /// As for [`QueueOptions::create`] and [`Queue::open`].
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("q");
    /// let first = shmq::QueueOptions::new().capacity(1 << 16).open_or_create(&path)?;
    /// let second = shmq::QueueOptions::new().open_or_create(&path)?;
    /// assert_eq!(second.geometry(), first.geometry());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(&self, path: impl AsRef<Path>) -> Result<Queue, OpenError> {
        let path = path.as_ref();
        let mut create = self.clone();
        create.replace = false;
        loop {
            match Queue::open(path) {
                Err(OpenError::NotFound(_)) => {}
                r => return r,
            }
            match create.create(path) {
                // Created by another process meanwhile: open that one.
                Err(OpenError::AlreadyExists(_)) => continue,
                r => return r,
            }
        }
    }

    /// A queue in this process's memory with these options: threads only,
    /// same protocol.
    ///
    /// # Errors
    /// [`OpenError::BadGeometry`], [`OpenError::Unsupported`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// assert_eq!(q.path(), None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn in_memory(&self) -> Result<Queue, OpenError> {
        Queue::in_memory_with(self)
    }

    /// The largest payload a ring of `capacity` bytes allows, at most 64 KiB:
    /// what `max_msg(0)` means. A record (header and extensions included)
    /// may take at most a quarter of the ring, room for a pad and for a dead
    /// letter beside its original.
    ///
    /// ```
    /// use shmq::QueueOptions;
    /// assert_eq!(QueueOptions::fitting_max_msg(1 << 20), 64 << 10);
    /// assert_eq!(QueueOptions::fitting_max_msg(4096), 960);
    /// ```
    pub fn fitting_max_msg(capacity: u64) -> u32 {
        let headers = (RECORD_HEADER + PRODUCER_EXT + ORIGIN_EXT) as u64;
        let fits = ((capacity / 4) & !7).saturating_sub(headers);
        fits.min(64 << 10) as u32
    }

    fn geometry(&self) -> Geometry {
        Geometry {
            capacity: self.capacity,
            max_msg: match self.max_msg {
                0 => Self::fitting_max_msg(self.capacity),
                n => n,
            },
            max_groups: self.max_groups,
            max_members: self.max_members,
            max_producers: self.max_producers,
            ack_entries: self.ack_entries,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) ring: Ring<RawRegion>,
    file: Option<File>,
    path: Option<PathBuf>,
    admin: Mutex<()>,
    pub(crate) spill: Option<Spill>,
    /// When this process last reaped because a wake found nobody (ns).
    last_sleeper_reap: AtomicU64,
}

/// How often a process reaps at most because wakes find nobody asleep.
const STALE_SLEEPER_REAP_EVERY_NS: u64 = 100_000_000;

/// A handle to a queue; cheap to clone, shareable between threads. Producers and
/// consumers are made from it.
///
/// ```
/// use shmq::{Queue, StartAt};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("q");
/// let q = Queue::create(&path)?;
/// q.add_group("audit", StartAt::Latest)?;
/// let mut consumer = q.consumer("audit").attach()?;
/// // Another process would open the file by its path.
/// let mut producer = Queue::open(&path)?.producer().attach()?;
/// let seq = producer.send(b"hello")?;
/// let msg = consumer.recv()?;
/// assert_eq!((msg.seq, &msg.payload[..]), (seq, &b"hello"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.geometry();
        f.debug_struct("Queue")
            .field("path", &self.path())
            .field("capacity", &g.capacity)
            .field("max_msg", &g.max_msg)
            .field("spill", &self.inner.spill.as_ref().map(|s| &s.opts.dir))
            .finish_non_exhaustive()
    }
}

/// Live state of a queue, as `shmq stat` shows it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stat {
    /// The geometry.
    pub geometry: Geometry,
    /// Next sequence number to be assigned.
    pub tail_seq: u64,
    /// Byte position of the tail.
    pub tail_pos: u64,
    /// Oldest sequence number the ring still holds.
    pub head_seq: u64,
    /// Times a producer found the ring full and had to wait or fail.
    pub full_waits: u64,
    /// Times a producer found the ring full behind a claim another producer
    /// had not committed yet, or behind a message a member was still reading
    /// (a process descheduled or stopped mid-operation), not a group's backlog.
    pub stall_waits: u64,
    /// Claims abandoned without a message (their sequence numbers are skipped).
    pub aborted: u64,
    /// Consumers counted asleep: every commit pays a futex wake while this is
    /// not zero (members killed asleep stay counted until reaped).
    pub sleeping_consumers: u32,
    /// Producers counted asleep on a full ring: every release pays a futex
    /// wake while this is not zero.
    pub sleeping_producers: u32,
    /// Registered groups.
    pub groups: Vec<GroupStat>,
    /// Registered producers.
    pub producers: Vec<ProducerStat>,
    /// Producer names ([`ProducerBuilder::name`](crate::ProducerBuilder::name)).
    pub names: Vec<NameStat>,
    /// The spill log, if the queue has one.
    pub spill: Option<SpillStat>,
}

/// A dead member [`Queue::gc`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedMember {
    /// Its group.
    pub group: String,
    /// Its process.
    pub pid: u64,
    /// It was killed while asleep waiting for messages: wakers no longer
    /// count it (until then every commit paid a futex wake for it).
    pub asleep: bool,
}

/// A registered producer in [`Stat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProducerStat {
    /// Its process.
    pub pid: u64,
    /// The name it publishes under, if it is a named producer.
    pub name: Option<String>,
    /// Whether that process is alive (a dead one's slot is freed, and any
    /// claim it left uncommitted aborted, by the next recovery).
    pub alive: bool,
    /// First sequence number of the claim it holds or is about to make.
    pub claim_seq: Option<u64>,
    /// Asleep waiting for space in a full ring.
    pub asleep: bool,
}

/// The spill log in [`Stat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SpillStat {
    /// Its directory.
    pub dir: PathBuf,
    /// Segment files.
    pub segments: u64,
    /// Bytes of log retained.
    pub bytes: u64,
    /// Oldest and newest retained sequence numbers (`None` while empty).
    pub first_seq: Option<u64>,
    /// See `first_seq`.
    pub last_seq: Option<u64>,
    /// Messages written to the log since creation.
    pub spilled: u64,
    /// Bytes written to the log since creation.
    pub spill_bytes: u64,
    /// Rounds that wrote to the log.
    pub rounds: u64,
    /// Times a group moved from the ring to the log.
    pub transfers: u64,
    /// Rounds that failed (disk full, I/O error).
    pub errors: u64,
    /// Rounds that found the previous round unfinished (its process died)
    /// and recovered the log.
    pub recoveries: u64,
    /// errno of the last failure, if the last round failed.
    pub last_errno: Option<i32>,
    /// Where the spill front is (the next sequence number to be logged), when
    /// it is active.
    pub front_seq: Option<u64>,
    /// A round in progress: the pid of the process running it (holding the
    /// spill lock, unless it died) and how long it has run. Producers that
    /// need a round wait for it (a timed send no longer than its timeout).
    pub round: Option<(u64, std::time::Duration)>,
}

/// One group in [`Stat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GroupStat {
    /// Name.
    pub name: String,
    /// Next sequence number the group will deliver.
    pub next_seq: u64,
    /// `tail_seq - next_seq`: messages published and not yet taken by the group.
    pub lag: u64,
    /// Attached members, with their liveness.
    pub members: Vec<MemberStat>,
    /// Whether the group reads the spill log (it fell a ring behind) rather
    /// than the ring.
    pub on_disk: bool,
    /// Messages waiting for redelivery (nacked, left unacknowledged by a
    /// member that left or died, or held past the ack deadline).
    pub pending: u64,
    /// Entries of the group's ack table in use (held or pending), of
    /// `Geometry::ack_entries`.
    pub ack_entries_used: u64,
    /// Messages a member may hold unacknowledged at once (its window).
    pub max_unacked: u64,
    /// The ack deadline, if the group has one.
    pub ack_wait: Option<std::time::Duration>,
    /// Holds ended by the ack deadline (redelivered to another member).
    pub expired: u64,
    /// Entries of the ack table by state, for diagnosis: (state, owning
    /// member slot or None, sequence number), every entry in use.
    pub ack_entries: Vec<(&'static str, Option<usize>, u64)>,
    /// Redeliveries handed out so far.
    pub redelivered: u64,
    /// Messages given up after `max_attempts` deliveries.
    pub dead_lettered: u64,
    /// Deliveries after which a message is given up (0: no limit).
    pub max_attempts: u64,
    /// The dead-letter group given-up messages go to (otherwise they are
    /// only counted).
    pub dead_letter: Option<String>,
    /// Whether this is a dead-letter group: it receives only the messages
    /// other groups gave up and sent to it.
    pub dead_letters_only: bool,
}

/// One member in [`GroupStat`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemberStat {
    /// Process id.
    pub pid: u64,
    /// Whether that process still runs.
    pub alive: bool,
    /// Messages handed to it.
    pub delivered: u64,
    /// Messages it acknowledged explicitly or by auto-ack of a redelivery.
    pub acked: u64,
    /// The messages it holds unacknowledged, in sequence order.
    pub unacked: Vec<u64>,
    /// Asleep waiting for messages (a dead member still marked asleep was
    /// killed in its sleep; the next reaping takes it out of the count).
    pub asleep: bool,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> OpenError {
    let what = what.into();
    move |source| OpenError::Io { what, source }
}

fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most buf.len() bytes into the buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(buf)
    } else {
        // Not security relevant (the nonce guards against stale bytes looking
        // like a commit stamp): fall back to time and pid.
        crate::os::clock::now_ns() ^ ((std::process::id() as u64) << 32)
    }
}

/// Header bytes for a new queue.
fn header_bytes(geo: &Geometry, nonce: u64, spill: Option<&SpillOptions>) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_SIZE];
    let put = |h: &mut Vec<u8>, off: usize, b: &[u8]| h[off..off + b.len()].copy_from_slice(b);
    put(&mut h, OFF_MAGIC, &MAGIC);
    put(&mut h, OFF_VERSION, &FORMAT_VERSION.to_ne_bytes());
    put(&mut h, OFF_HEADER_SIZE, &(HEADER_SIZE as u32).to_ne_bytes());
    put(&mut h, OFF_CAPACITY, &geo.capacity.to_ne_bytes());
    put(&mut h, OFF_MAX_MSG, &geo.max_msg.to_ne_bytes());
    put(&mut h, OFF_MAX_GROUPS, &geo.max_groups.to_ne_bytes());
    put(&mut h, OFF_MAX_MEMBERS, &geo.max_members.to_ne_bytes());
    put(&mut h, OFF_MAX_PRODUCERS, &geo.max_producers.to_ne_bytes());
    put(&mut h, OFF_ACK_ENTRIES, &geo.ack_entries.to_ne_bytes());
    let compat = if spill.is_some() { COMPAT_SPILL } else { 0 };
    put(&mut h, OFF_COMPAT, &compat.to_ne_bytes());
    if let Some(sp) = spill {
        let (mode, ns) = sp.fsync.encode();
        let dir = sp.dir.as_os_str().as_encoded_bytes();
        put(&mut h, OFF_SPILL_SEGMENT, &sp.segment_size.to_ne_bytes());
        put(&mut h, OFF_SPILL_FSYNC, &mode.to_ne_bytes());
        put(&mut h, OFF_SPILL_DIR_LEN, &(dir.len() as u32).to_ne_bytes());
        put(&mut h, OFF_SPILL_FSYNC_NS, &ns.to_ne_bytes());
        put(
            &mut h,
            OFF_SPILL_RETAIN_BYTES,
            &sp.retain_bytes.to_ne_bytes(),
        );
        let retain_ns = sp
            .retain_time
            .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64);
        put(&mut h, OFF_SPILL_RETAIN_NS, &retain_ns.to_ne_bytes());
        put(&mut h, OFF_SPILL_DIR, dir);
    }
    for (off, v) in [
        (OFF_GROUP_TABLE, geo.group_table_off()),
        (OFF_SLOT_SIZE, geo.slot_size()),
        (OFF_PRODUCER_TABLE, geo.producer_table_off()),
        (OFF_IDENTITY_TABLE, geo.identity_table_off()),
        (OFF_RING, geo.ring_off()),
        (OFF_FILE_SIZE, geo.file_size()),
    ] {
        put(&mut h, off, &(v as u64).to_ne_bytes());
    }
    put(
        &mut h,
        OFF_CREATED,
        &crate::os::clock::now_ns().to_ne_bytes(),
    );
    put(&mut h, OFF_NONCE, &nonce.to_ne_bytes());
    h
}

/// What a header holds beyond the geometry.
struct Parsed {
    geo: Geometry,
    nonce: u64,
    spill: Option<SpillOptions>,
}

/// Parses and checks a header read from `path`.
fn parse_header(path: &Path, h: &[u8], file_len: u64) -> Result<Parsed, OpenError> {
    let u32_at = |off: usize| u32::from_ne_bytes(h[off..off + 4].try_into().unwrap_or_default());
    let u64_at = |off: usize| u64::from_ne_bytes(h[off..off + 8].try_into().unwrap_or_default());
    if h.len() < 8 || h[..8] != MAGIC {
        return Err(OpenError::NotAQueue(path.to_owned()));
    }
    if h.len() < HEADER_SIZE {
        return Err(OpenError::Truncated {
            path: path.to_owned(),
            expected: HEADER_SIZE as u64,
            found: file_len,
        });
    }
    let version = u32_at(OFF_VERSION);
    if version != FORMAT_VERSION {
        return Err(OpenError::WrongVersion {
            path: path.to_owned(),
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    if u32_at(OFF_HEADER_SIZE) as usize != HEADER_SIZE {
        return Err(bad_geometry(format!(
            "header size {} (expected {HEADER_SIZE})",
            u32_at(OFF_HEADER_SIZE)
        )));
    }
    let compat = u32_at(OFF_COMPAT);
    if compat & !COMPAT_KNOWN != 0 {
        return Err(incompatible(format!(
            "unknown feature flags {:#x}",
            compat & !COMPAT_KNOWN
        )));
    }
    let geo = Geometry {
        capacity: u64_at(OFF_CAPACITY),
        max_msg: u32_at(OFF_MAX_MSG),
        max_groups: u32_at(OFF_MAX_GROUPS),
        max_members: u32_at(OFF_MAX_MEMBERS),
        max_producers: u32_at(OFF_MAX_PRODUCERS),
        ack_entries: u32_at(OFF_ACK_ENTRIES),
    };
    geo.validate().map_err(|e| bad_geometry(e.0))?;
    // The stored offsets must be the ones this geometry implies: they are
    // checked, never used.
    let stored = [
        u64_at(OFF_GROUP_TABLE),
        u64_at(OFF_SLOT_SIZE),
        u64_at(OFF_PRODUCER_TABLE),
        u64_at(OFF_IDENTITY_TABLE),
        u64_at(OFF_RING),
    ];
    let implied = [
        geo.group_table_off(),
        geo.slot_size(),
        geo.producer_table_off(),
        geo.identity_table_off(),
        geo.ring_off(),
    ]
    .map(|o| o as u64);
    if stored != implied {
        return Err(bad_geometry(format!(
            "layout offsets {stored:?} do not match the geometry ({implied:?})"
        )));
    }
    let expected = geo.file_size() as u64;
    if u64_at(OFF_FILE_SIZE) != expected {
        return Err(bad_geometry(format!(
            "recorded file size {} (geometry implies {expected})",
            u64_at(OFF_FILE_SIZE)
        )));
    }
    if file_len != expected {
        return Err(OpenError::Truncated {
            path: path.to_owned(),
            expected,
            found: file_len,
        });
    }
    let spill = if compat & COMPAT_SPILL != 0 {
        let bad = |s: String| incompatible(format!("spill configuration: {s}"));
        let dir_len = u32_at(OFF_SPILL_DIR_LEN) as usize;
        if dir_len == 0 || dir_len > MAX_SPILL_DIR {
            return Err(bad(format!("directory name of {dir_len} bytes")));
        }
        use std::os::unix::ffi::OsStrExt;
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(
            &h[OFF_SPILL_DIR..OFF_SPILL_DIR + dir_len],
        ));
        let fsync = Fsync::decode(u32_at(OFF_SPILL_FSYNC), u64_at(OFF_SPILL_FSYNC_NS))
            .ok_or_else(|| bad(format!("fsync mode {}", u32_at(OFF_SPILL_FSYNC))))?;
        let segment_size = u64_at(OFF_SPILL_SEGMENT);
        if segment_size < MIN_SEGMENT {
            return Err(bad(format!("segment size {segment_size}")));
        }
        let retain_ns = u64_at(OFF_SPILL_RETAIN_NS);
        Some(SpillOptions {
            dir,
            segment_size,
            fsync,
            retain_bytes: u64_at(OFF_SPILL_RETAIN_BYTES),
            retain_time: (retain_ns > 0).then(|| std::time::Duration::from_nanos(retain_ns)),
        })
    } else {
        None
    };
    Ok(Parsed {
        geo,
        nonce: u64_at(OFF_NONCE),
        spill,
    })
}

/// Smallest spill segment.
const MIN_SEGMENT: u64 = 4096;

/// This process's spill machinery for a queue with a spill log.
fn open_spill(
    spill: Option<SpillOptions>,
    nonce: u64,
    geo: &Geometry,
) -> Result<Option<Spill>, OpenError> {
    spill
        .map(|sp| {
            let dir = sp.dir.clone();
            Spill::open(sp, nonce, geo.max_msg).map_err(io_err(format!(
                "{}: cannot open the spill lock",
                dir.display()
            )))
        })
        .transpose()
}

fn bad_geometry(s: impl Into<String>) -> OpenError {
    OpenError::BadGeometry(crate::error::Reason::new(s))
}

fn incompatible(s: impl Into<String>) -> OpenError {
    OpenError::Incompatible(crate::error::Reason::new(s))
}

/// Checks spill options and prepares the directory: created (mode 0700) if
/// missing, made absolute, and holding no other queue's log (with `replace`,
/// an old log is deleted).
fn prepare_spill(sp: &SpillOptions, replace: bool) -> Result<SpillOptions, OpenError> {
    let bad = |s: String| bad_geometry(format!("spill: {s}"));
    if sp.segment_size < MIN_SEGMENT {
        return Err(bad(format!(
            "segment size {} is below {MIN_SEGMENT} bytes",
            sp.segment_size
        )));
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&sp.dir)
        .map_err(io_err(format!(
            "{}: cannot create the spill directory",
            sp.dir.display()
        )))?;
    let dir = sp
        .dir
        .canonicalize()
        .map_err(io_err(format!("{}: cannot resolve", sp.dir.display())))?;
    if dir.as_os_str().len() > MAX_SPILL_DIR {
        return Err(bad(format!(
            "directory path longer than {MAX_SPILL_DIR} bytes"
        )));
    }
    if let Some(owner) = live_spill_owner(&dir) {
        if !replace {
            return Err(OpenError::SpillDirInUse { dir, owner });
        }
    }
    let segs = list_segments(&dir).map_err(io_err(format!("{}: cannot list", dir.display())))?;
    if !segs.is_empty() {
        if !replace {
            return Err(OpenError::AlreadyExists(
                dir.join(format!("{:020}.seg", segs[0])),
            ));
        }
        for b in segs {
            for ext in ["seg", "idx"] {
                let _ = std::fs::remove_file(dir.join(format!("{b:020}.{ext}")));
            }
        }
    }
    Ok(SpillOptions { dir, ..sp.clone() })
}

/// Passes `Queue::check` makes before it reports a problem.
const CHECK_PASSES: usize = 5;

/// The file in a spill directory naming the queue it belongs to: its nonce
/// and its path, one line.
const SPILL_OWNER: &str = "owner";

/// The queue named by the owner file of spill directory `dir`, as `(nonce,
/// path)`.
fn read_spill_owner(dir: &Path) -> Option<(u64, PathBuf)> {
    let text = std::fs::read_to_string(dir.join(SPILL_OWNER)).ok()?;
    let (nonce, path) = text.trim_end_matches('\n').split_once(' ')?;
    Some((u64::from_str_radix(nonce, 16).ok()?, PathBuf::from(path)))
}

/// Whether the owner of spill directory `dir` is a queue that still exists
/// (its file is there with the nonce the owner file names); its path if so.
/// A directory whose queue is gone, or that has no owner file, is free.
fn live_spill_owner(dir: &Path) -> Option<String> {
    let (nonce, path) = read_spill_owner(dir)?;
    let mut h = vec![0u8; HEADER_SIZE];
    let file = File::open(&path).ok()?;
    file.read_exact_at(&mut h, 0).ok()?;
    let len = file.metadata().ok()?.len();
    let parsed = parse_header(&path, &h, len).ok()?;
    (parsed.nonce == nonce).then(|| path.display().to_string())
}

/// Records queue `nonce` at `path` as the owner of spill directory `dir`
/// (written whole, then renamed over any old one).
fn write_spill_owner(dir: &Path, nonce: u64, path: &Path) -> Result<(), OpenError> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let tmp = dir.join(format!(".{SPILL_OWNER}.{}.tmp", std::process::id()));
    let what = || format!("{}: cannot record the queue owning it", dir.display());
    std::fs::write(&tmp, format!("{nonce:016x} {}\n", path.display()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(SPILL_OWNER)))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            OpenError::Io {
                what: what(),
                source: e,
            }
        })
}

/// On open: the spill directory must be this queue's. One without an owner
/// file (made before there were owner files) becomes this queue's.
fn claim_spill_dir(dir: &Path, nonce: u64, path: &Path) -> Result<(), OpenError> {
    match read_spill_owner(dir) {
        Some((n, _)) if n == nonce => Ok(()),
        Some((_, other)) => Err(OpenError::SpillDirInUse {
            dir: dir.to_owned(),
            owner: other.display().to_string(),
        }),
        None => write_spill_owner(dir, nonce, path),
    }
}

impl Queue {
    /// Creates a queue file at `path` with the default options
    /// ([`QueueOptions::new`]); [`QueueOptions::create`] sets them.
    ///
    /// # Errors
    /// As for [`QueueOptions::create`].
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::Queue::create(dir.path().join("q"))?;
    /// assert_eq!(q.geometry().capacity, 1 << 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Queue, OpenError> {
        QueueOptions::new().create(path)
    }

    /// Opens the queue at `path`, or creates it with the default options;
    /// [`QueueOptions::open_or_create`] sets them.
    ///
    /// # Errors
    /// As for [`QueueOptions::open_or_create`].
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("q");
    /// shmq::Queue::open_or_create(&path)?.add_group("audit", shmq::StartAt::Latest)?;
    /// // The second time, the queue and its group are there.
    /// assert!(shmq::Queue::open_or_create(&path)?.group_id("audit").is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Queue, OpenError> {
        QueueOptions::new().open_or_create(path)
    }

    fn create_with(path: &Path, opts: &QueueOptions) -> Result<Queue, OpenError> {
        let geo = opts.geometry();
        geo.validate().map_err(|e| bad_geometry(e.0))?;
        if !wide_atomics_lock_free() {
            return Err(OpenError::Unsupported);
        }
        if !opts.replace && path.symlink_metadata().is_ok() {
            return Err(OpenError::AlreadyExists(path.to_owned()));
        }
        let spill = opts
            .spill
            .as_ref()
            .map(|sp| prepare_spill(sp, opts.replace))
            .transpose()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| bad_geometry(format!("{}: not a file path", path.display())))?;
        let nonce = random_u64();
        let tmp = dir.join(format!(
            ".{}.{}.{:x}.tmp",
            file_name.to_string_lossy(),
            std::process::id(),
            nonce
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err(format!("{}: cannot create", tmp.display())))?;
        let result = (|| {
            file.set_len(geo.file_size() as u64)
                .map_err(io_err(format!("{}: cannot size the file", path.display())))?;
            file.write_all_at(&header_bytes(&geo, nonce, spill.as_ref()), 0)
                .map_err(io_err(format!(
                    "{}: cannot write the header",
                    path.display()
                )))?;
            let q = Self::map(file, path, geo, nonce, spill.clone())?;
            // Zero-initialised memory is a valid empty queue except for HEAD and
            // TAIL, which are (0, 0) too: nothing else to set.
            if opts.replace {
                std::fs::rename(&tmp, path)
                    .map_err(io_err(format!("{}: cannot replace", path.display())))?;
            } else {
                // link(2) fails if the name exists: no clobbering, and the file
                // appears complete.
                std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => OpenError::AlreadyExists(path.to_owned()),
                    _ => OpenError::Io {
                        what: format!("{}: cannot create", path.display()),
                        source: e,
                    },
                })?;
                let _ = std::fs::remove_file(&tmp);
            }
            if let Some(sp) = &spill {
                write_spill_owner(&sp.dir, nonce, path)?;
                if sp.journal() {
                    // A journal logs every message from the first: its
                    // front starts now, at sequence number 0.
                    q.spill_now().map_err(|e| OpenError::Io {
                        what: format!("{}: cannot start the journal", sp.dir.display()),
                        source: io::Error::other(e.to_string()),
                    })?;
                }
            }
            Ok(q)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Removes the queue at `path`: its file, and its spill directory's
    /// log (segments, indexes, owner and lock files; the directory itself if
    /// nothing else is left in it). Processes that have the queue open keep
    /// using their mapping, which no new process can reach; a queue created
    /// at the path afterwards is a new one.
    ///
    /// # Errors
    /// As for [`Queue::open`] (a file that is not a queue is not removed),
    /// and [`OpenError::Io`] if a file cannot be removed.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("q");
    /// let spill = dir.path().join("q.spill");
    /// shmq::QueueOptions::new().spill(shmq::SpillOptions::new(&spill)).create(&path)?;
    /// shmq::Queue::remove(&path)?;
    /// assert!(!path.exists() && !spill.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(path: impl AsRef<Path>) -> Result<(), OpenError> {
        let path = path.as_ref();
        let spill = Queue::open(path)?.spill_options().map(|s| s.dir.clone());
        std::fs::remove_file(path).map_err(io_err(format!("{}: cannot remove", path.display())))?;
        if let Some(dir) = spill {
            let what = |f: &str| format!("{}: cannot remove {f}", dir.display());
            let segs = list_segments(&dir).map_err(io_err(what("the log")))?;
            let mut names: Vec<String> = segs
                .iter()
                .flat_map(|b| [format!("{b:020}.seg"), format!("{b:020}.idx")])
                .collect();
            names.push(SPILL_OWNER.to_owned());
            names.push(crate::spill::rounds::LOCK_FILE.to_owned());
            // A roll that died leaves a temporary segment.
            if let Ok(rd) = std::fs::read_dir(&dir) {
                names.extend(rd.filter_map(|e| {
                    let n = e.ok()?.file_name().into_string().ok()?;
                    n.ends_with(".seg.tmp").then_some(n)
                }));
            }
            for n in names {
                match std::fs::remove_file(dir.join(&n)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(OpenError::Io {
                            what: what(&n),
                            source: e,
                        })
                    }
                    _ => {}
                }
            }
            // Left in place if something else is in it.
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(())
    }

    /// Opens an existing queue file, checking magic, version, geometry and size.
    ///
    /// # Errors
    /// [`OpenError::NotFound`], [`OpenError::NotAQueue`], [`OpenError::WrongVersion`],
    /// [`OpenError::Truncated`], [`OpenError::BadGeometry`], [`OpenError::Incompatible`],
    /// [`OpenError::ForeignOwner`], [`OpenError::SpillDirInUse`], [`OpenError::Io`].
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("q");
    /// assert!(matches!(shmq::Queue::open(&path), Err(shmq::OpenError::NotFound(_))));
    /// shmq::Queue::create(&path)?;
    /// let q = shmq::Queue::open(&path)?;
    /// assert_eq!(q.path(), Some(path.as_path()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Queue, OpenError> {
        let path = path.as_ref();
        if !wide_atomics_lock_free() {
            return Err(OpenError::Unsupported);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => OpenError::NotFound(path.to_owned()),
                _ => OpenError::Io {
                    what: format!("{}: cannot open", path.display()),
                    source: e,
                },
            })?;
        let meta = file
            .metadata()
            .map_err(io_err(format!("{}: cannot stat", path.display())))?;
        if !meta.is_file() {
            return Err(OpenError::NotAQueue(path.to_owned()));
        }
        check_owner(path, &meta)?;
        let len = meta.len();
        let mut h = vec![0u8; (len.min(HEADER_SIZE as u64)) as usize];
        file.read_exact_at(&mut h, 0).map_err(io_err(format!(
            "{}: cannot read the header",
            path.display()
        )))?;
        let p = parse_header(path, &h, len)?;
        if let Some(sp) = &p.spill {
            claim_spill_dir(&sp.dir, p.nonce, path)?;
        }
        Self::map(file, path, p.geo, p.nonce, p.spill)
    }

    fn map(
        file: File,
        path: &Path,
        geo: Geometry,
        nonce: u64,
        spill: Option<SpillOptions>,
    ) -> Result<Queue, OpenError> {
        let spill = open_spill(spill, nonce, &geo)?;
        let map = MmapOptions::new()
            .len(geo.file_size())
            .populate()
            .map_raw(&file)
            .map_err(io_err(format!("{}: cannot map", path.display())))?;
        let region = RawRegion::from_map(map);
        Ok(Queue {
            inner: Arc::new(Inner {
                ring: Ring::new(region, geo, nonce),
                file: Some(file),
                path: Some(path.to_owned()),
                admin: Mutex::new(()),
                last_sleeper_reap: AtomicU64::new(0),
                spill,
            }),
        })
    }

    fn in_memory_with(opts: &QueueOptions) -> Result<Queue, OpenError> {
        let geo = opts.geometry();
        geo.validate().map_err(|e| bad_geometry(e.0))?;
        if !wide_atomics_lock_free() {
            return Err(OpenError::Unsupported);
        }
        let region = RawRegion::heap(geo.file_size());
        let nonce = random_u64();
        let spill = opts
            .spill
            .as_ref()
            .map(|sp| prepare_spill(sp, opts.replace))
            .transpose()?;
        let h = header_bytes(&geo, nonce, spill.as_ref());
        // SAFETY: the block was just allocated and is not shared yet.
        unsafe { region.write(0, &h) };
        Ok(Queue {
            inner: Arc::new(Inner {
                ring: Ring::new(region, geo, nonce),
                file: None,
                path: None,
                admin: Mutex::new(()),
                last_sleeper_reap: AtomicU64::new(0),
                spill: open_spill(spill, nonce, &geo)?,
            }),
        })
    }

    /// The queue's geometry.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// assert_eq!(q.geometry().max_msg, shmq::QueueOptions::fitting_max_msg(4096));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn geometry(&self) -> crate::Geometry {
        self.inner.ring.geometry().into()
    }

    /// The geometry the protocol uses.
    pub(crate) fn geo(&self) -> Geometry {
        self.inner.ring.geometry()
    }

    /// Runs one spill round now (see the module docs), waiting for the spill
    /// lock. Returns what it did, or `None` if the queue has no spill log.
    ///
    /// # Errors
    /// The log could not be written or read; nothing was lost, and producers
    /// wait (back-pressure) until a round succeeds.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::QueueOptions::new()
    ///     .spill(shmq::SpillOptions::new(dir.path().join("spill")))
    ///     .create(dir.path().join("q"))?;
    /// assert!(q.spill_now()?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spill_now(&self) -> Result<Option<RoundOutcome>, crate::SpillError> {
        Ok(self.spill_round(true)?)
    }

    /// A spill round if the lock is free (`block = false`) or once it is.
    /// `Ok(None)` when there is no spill log or another thread or process
    /// holds the lock.
    pub(crate) fn spill_round(&self, block: bool) -> Result<Option<RoundOutcome>, LogError> {
        match &self.inner.spill {
            Some(spill) => spill.round(self.ring(), block),
            None => Ok(None),
        }
    }

    /// The spill settings, if the queue has a spill log.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::QueueOptions::new()
    ///     .spill(shmq::SpillOptions::new(dir.path().join("spill")))
    ///     .create(dir.path().join("q"))?;
    /// let spill = q.spill_options().unwrap();
    /// assert!(spill.dir.is_absolute() && spill.dir.ends_with("spill"));
    /// assert_eq!(spill.segment_size, 64 << 20);
    /// // Stored in the queue's header: whoever opens the queue gets them.
    /// assert_eq!(shmq::Queue::open(dir.path().join("q"))?.spill_options(), Some(spill));
    /// assert!(shmq::QueueOptions::new().in_memory()?.spill_options().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spill_options(&self) -> Option<&SpillOptions> {
        self.inner.spill.as_ref().map(|s| &s.opts)
    }

    /// The file path, for file-backed queues.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::Queue::create(dir.path().join("q"))?;
    /// assert_eq!(q.path(), Some(dir.path().join("q").as_path()));
    /// assert_eq!(shmq::QueueOptions::new().in_memory()?.path(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    pub(crate) fn ring(&self) -> &Ring<RawRegion> {
        &self.inner.ring
    }

    /// Takes the admin lock: process-local mutex, then flock on the file (the
    /// kernel releases it if the holder dies). `block = false` gives up at once.
    pub(crate) fn admin(&self, block: bool) -> io::Result<Option<AdminGuard<'_>>> {
        let local = if block {
            self.inner.admin.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match self.inner.admin.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            }
        };
        if let Some(f) = &self.inner.file {
            let op = if block {
                libc::LOCK_EX
            } else {
                libc::LOCK_EX | libc::LOCK_NB
            };
            loop {
                // SAFETY: flock on a descriptor we own; no memory is passed.
                let r = unsafe { libc::flock(f.as_raw_fd(), op) };
                if r == 0 {
                    break;
                }
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EWOULDBLOCK) if !block => return Ok(None),
                    _ => return Err(e),
                }
            }
        }
        Ok(Some(AdminGuard {
            q: self,
            _local: local,
        }))
    }

    /// Registers a consumer group. It receives every message published from
    /// `start` on: [`StartAt::Latest`] (the next one) or [`StartAt::Earliest`]
    /// (the oldest the ring still holds).
    ///
    /// # Errors
    /// [`GroupError::InvalidName`], [`GroupError::Exists`], [`GroupError::TableFull`],
    /// [`GroupError::Io`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// assert!(matches!(
    ///     q.add_group("audit", shmq::StartAt::Latest),
    ///     Err(shmq::GroupError::Exists(_))
    /// ));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn add_group(&self, name: &str, start: StartAt) -> Result<(), GroupError> {
        match self.add_group_kind(name, start, false, false)? {
            true => Ok(()),
            false => Err(GroupError::Exists(name.to_owned())),
        }
    }

    /// Registers group `name` unless it exists: what a service that declares
    /// its queue's groups at start-up calls every time. Returns whether it
    /// added the group; an existing group keeps its position (`start` applies
    /// only to a group this call adds).
    ///
    /// # Errors
    /// [`GroupError::KindMismatch`] if `name` is a dead-letter group;
    /// otherwise as for [`Queue::add_group`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// assert!(q.ensure_group("audit", shmq::StartAt::Latest)?);
    /// assert!(!q.ensure_group("audit", shmq::StartAt::Latest)?);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ensure_group(&self, name: &str, start: StartAt) -> Result<bool, GroupError> {
        self.add_group_kind(name, start, false, true)
    }

    /// Registers a dead-letter group: it receives none of the messages
    /// producers publish, only those another group gives up after its
    /// `max_attempts` and sends to it ([`Queue::set_dead_letter`]), as
    /// messages with [`Message::dead_letter_from`](crate::Message) set. It
    /// is an ordinary group otherwise: members compete, may ack explicitly,
    /// and it spills to disk when it lags.
    ///
    /// # Errors
    /// As for [`Queue::add_group`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// q.add_dead_letter_group("failed")?;
    /// q.set_max_attempts("work", 3)?;
    /// q.set_dead_letter("work", Some("failed"))?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn add_dead_letter_group(&self, name: &str) -> Result<(), GroupError> {
        match self.add_group_kind(name, StartAt::Latest, true, false)? {
            true => Ok(()),
            false => Err(GroupError::Exists(name.to_owned())),
        }
    }

    /// [`Queue::ensure_group`] for a dead-letter group: registers it unless it
    /// exists, and returns whether it did.
    ///
    /// # Errors
    /// [`GroupError::KindMismatch`] if `name` is an ordinary group; otherwise
    /// as for [`Queue::add_group`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// assert!(q.ensure_dead_letter_group("failed")?);
    /// assert!(!q.ensure_dead_letter_group("failed")?);
    /// assert!(q.ensure_group("failed", shmq::StartAt::Latest).is_err());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ensure_dead_letter_group(&self, name: &str) -> Result<bool, GroupError> {
        self.add_group_kind(name, StartAt::Latest, true, true)
    }

    /// Adds a group; `Ok(false)` if it exists (of the kind asked for, when
    /// `ensure`).
    fn add_group_kind(
        &self,
        name: &str,
        start: StartAt,
        dl_only: bool,
        ensure: bool,
    ) -> Result<bool, GroupError> {
        validate_name(name).map_err(GroupError::InvalidName)?;
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        if let Some(g) = ring.find_group(name.as_bytes()) {
            if ensure && ring.dl_only(g) != dl_only {
                return Err(GroupError::KindMismatch(name.to_owned()));
            }
            return Ok(false);
        }
        if dl_only {
            // Producers keep room for dead letters from the moment a
            // dead-letter group exists (ring.rs), before any group names it.
            ring.keep_dead_letter_room();
        }
        ring.add_group(name.as_bytes(), start, crate::os::clock::now_ns(), dl_only)
            .map(|_| true)
            .ok_or(GroupError::TableFull {
                max: ring.geo.max_groups,
            })
    }

    /// Sets how many deliveries of one message group `name` makes before it
    /// gives the message up (counted in [`GroupStat::dead_lettered`]) instead
    /// of delivering it again; 0 (the default) means no limit. A message
    /// whose last allowed delivery was nacked (or expired, or whose member
    /// died) is given up by the group's next receive, which publishes its
    /// dead letter ([`Queue::set_dead_letter`]) and goes on to the next
    /// message.
    ///
    /// # Errors
    /// [`GroupError::Unknown`], [`GroupError::Io`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// q.set_max_attempts("work", 2)?;
    /// let mut w = q.consumer("work").ack(shmq::Ack::Explicit).attach()?;
    /// q.producer().attach()?.send(b"poison")?;
    /// for attempt in 0..2 {
    ///     let m = w.recv()?;
    ///     assert_eq!(m.redelivered, attempt);
    ///     w.nack(m.seq)?;
    /// }
    /// // Two deliveries failed: given up (only counted, without a dead-letter group).
    /// assert_eq!(w.try_recv(), Err(shmq::RecvError::Empty));
    /// let stat = &q.stat().groups[0];
    /// assert_eq!((stat.max_attempts, stat.dead_lettered), (2, 1));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn set_max_attempts(&self, name: &str, max_attempts: u64) -> Result<(), GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        let g = ring
            .find_group(name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        ring.set_redelivery(g, max_attempts, ring.dead_letter_target(g));
        Ok(())
    }

    /// Sets group `name`'s acknowledgement policy: `max_unacked`, the window
    /// of messages each member may hold unacknowledged at once (0 or 1: one;
    /// a consumer may set its own, [`ConsumerBuilder::max_unacked`](crate::ConsumerBuilder::max_unacked)), and
    /// `ack_wait`, the ack deadline: a message held unacknowledged longer is
    /// given back for redelivery to another member (its attempts counted,
    /// `max_attempts` and dead-lettering applying), and the late
    /// acknowledgement of its first holder is refused
    /// ([`crate::AckError::Expired`]). `None`: no deadline (the default).
    /// Holds are checked by the group's members, at least every second
    /// while they wait (and a quarter of the deadline, if shorter).
    ///
    /// # Errors
    /// [`GroupError::Unknown`], [`GroupError::Io`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// q.set_ack_policy("work", 2, Some(Duration::from_secs(30)))?;
    /// let mut w = q.consumer("work").ack(shmq::Ack::Explicit).attach()?;
    /// assert_eq!(w.max_unacked(), 2);
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// w.recv()?;
    /// w.recv()?;
    /// // The window is full until one of the two is acknowledged.
    /// assert_eq!(w.try_recv(), Err(shmq::RecvError::AckPending { seq: 0 }));
    /// w.ack(0)?;
    /// assert_eq!(w.try_recv()?.seq, 2);
    /// assert_eq!(q.stat().groups[0].ack_wait, Some(Duration::from_secs(30)));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn set_ack_policy(
        &self,
        name: &str,
        max_unacked: u64,
        ack_wait: Option<std::time::Duration>,
    ) -> Result<(), GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        let g = ring
            .find_group(name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        let ns = ack_wait.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        ring.set_ack_policy(g, max_unacked, ns);
        Ok(())
    }

    /// Sends the messages group `name` gives up after its `max_attempts` to
    /// dead-letter group `target` (None: only count them, the default).
    /// Delivery there is at least once: a member killed between publishing a
    /// dead letter and settling the message leaves it to be given up again.
    ///
    /// # Errors
    /// [`GroupError::Unknown`] for either name; [`GroupError::NotDeadLetter`]
    /// if `target` is not a dead-letter group ([`Queue::add_dead_letter_group`]).
    ///
    /// ```
    /// use shmq::{Ack, RecvError, StartAt};
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", StartAt::Latest)?;
    /// q.add_dead_letter_group("failed")?;
    /// q.set_max_attempts("work", 2)?;
    /// q.set_dead_letter("work", Some("failed"))?;
    /// let mut w = q.consumer("work").ack(Ack::Explicit).attach()?;
    /// let mut failed = q.consumer("failed").attach()?;
    /// let seq = q.producer().attach()?.send(b"poison")?;
    /// for _ in 0..2 {
    ///     let m = w.recv()?;
    ///     w.nack(m.seq)?;
    /// }
    /// // The next take gives it up: it goes to "failed", not to the worker.
    /// assert_eq!(w.try_recv(), Err(RecvError::Empty));
    /// let letter = failed.recv()?;
    /// assert_eq!(letter.payload, b"poison");
    /// assert_eq!(letter.dead_letter_seq, Some(seq));
    /// assert_eq!(letter.dead_letter_from, q.group_id("work"));
    /// // Only dead-letter groups can be targets.
    /// q.add_group("audit", StartAt::Latest)?;
    /// let r = q.set_dead_letter("work", Some("audit"));
    /// assert!(matches!(r, Err(shmq::GroupError::NotDeadLetter(_))));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn set_dead_letter(&self, name: &str, target: Option<&str>) -> Result<(), GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        let find = |n: &str| {
            ring.find_group(n.as_bytes())
                .ok_or_else(|| GroupError::Unknown(n.to_owned()))
        };
        let g = find(name)?;
        let d = match target {
            Some(t) => {
                let d = find(t)?;
                if !ring.dl_only(d) {
                    return Err(GroupError::NotDeadLetter(t.to_owned()));
                }
                Some(d)
            }
            None => None,
        };
        ring.set_redelivery(g, ring.max_attempts(g), d);
        Ok(())
    }

    /// The name of the group with id `id` (as in
    /// [`Message::dead_letter_from`](crate::Message)), if it is still
    /// registered: a group removed, and one added later in its slot, have
    /// other ids.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// let id = q.group_id("work").unwrap();
    /// assert_eq!(q.group_name(id).as_deref(), Some("work"));
    /// q.remove_group("work")?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// // Same name, same slot, but a new group: the old id names nothing.
    /// assert_eq!(q.group_name(id), None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn group_name(&self, id: u64) -> Option<String> {
        let ring = self.ring();
        let slot = usize::try_from(id & 0xffff_ffff).ok()?;
        ring.groups()
            .into_iter()
            .find(|g| g.slot == slot && ring.group_id(slot) == id)
            .map(|g| g.name)
    }

    /// The id of group `name` (its slot and the slot's generation, as in
    /// [`Message::dead_letter_from`](crate::Message)), if it is registered.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("a", shmq::StartAt::Latest)?;
    /// q.add_group("b", shmq::StartAt::Latest)?;
    /// let (a, b) = (q.group_id("a").unwrap(), q.group_id("b").unwrap());
    /// assert_ne!(a, b);
    /// assert_eq!(q.group_name(b).as_deref(), Some("b"));
    /// assert_eq!(q.group_id("nobody"), None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn group_id(&self, name: &str) -> Option<u64> {
        let ring = self.ring();
        ring.find_group(name.as_bytes()).map(|g| ring.group_id(g))
    }

    /// Unregisters a group. Refused while it has live members.
    ///
    /// # Errors
    /// [`GroupError::Unknown`], [`GroupError::HasMembers`].
    ///
    /// ```
    /// use shmq::GroupError;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let member = q.consumer("audit").attach()?;
    /// let r = q.remove_group("audit");
    /// assert!(matches!(r, Err(GroupError::HasMembers { count: 1, .. })));
    /// drop(member);
    /// q.remove_group("audit")?;
    /// assert_eq!(q.group_id("audit"), None);
    /// assert!(matches!(q.remove_group("audit"), Err(GroupError::Unknown(_))));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn remove_group(&self, name: &str) -> Result<(), GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        let g = self.idle_group(name)?;
        // Groups that sent what they give up here go back to counting it.
        for other in ring.groups() {
            if ring.dead_letter_target(other.slot) == Some(g) {
                ring.set_redelivery(other.slot, ring.max_attempts(other.slot), None);
            }
        }
        ring.remove_group(g);
        Ok(())
    }

    /// Slot of group `name`, which must have no live member (the caller
    /// holds the admin lock).
    pub(crate) fn idle_group(&self, name: &str) -> Result<usize, GroupError> {
        let ring = self.ring();
        let g = ring
            .find_group(name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        let live = ring
            .members(g)
            .iter()
            .filter(|m| liveness::is_alive(m.pid, m.start_time))
            .count();
        if live > 0 {
            return Err(GroupError::HasMembers {
                group: name.to_owned(),
                count: live,
            });
        }
        Ok(g)
    }

    /// `(pid, alive, identity slot + 1)` of the producer in registry slot
    /// `slot`, as the table of names asks (identity.rs).
    pub(crate) fn name_owner(&self, slot: usize) -> Option<(u64, bool, u64)> {
        self.ring()
            .registry_owner(slot)
            .map(|(pid, start, ident)| (pid, liveness::is_alive(pid, start), ident))
    }

    /// The error for producer name `name` refused by the table of names.
    pub(crate) fn name_refused(&self, name: &str, refused: Refused) -> ProducerError {
        match refused {
            Refused::InUse(pid, true) => ProducerError::NameInUse {
                name: name.to_owned(),
                pid,
            },
            Refused::InUse(pid, false) => ProducerError::Unsettled {
                name: name.to_owned(),
                pid,
            },
            Refused::Full => ProducerError::NamesFull {
                max: self.ring().geo.max_producers,
            },
            Refused::Unknown => ProducerError::UnknownName(name.to_owned()),
        }
    }

    /// Removes the producer name `name`: its slot in the table of names is
    /// freed for another name, and its id, which the messages published
    /// under it carry, names nothing from now on ([`Queue::producer_name`]
    /// returns `None` for it). So does its record of the last pseq: a
    /// producer attaching under the same name later starts a new name, with
    /// a new id, numbering from pseq 0, and nothing it publishes is checked
    /// against what the old one published.
    ///
    /// # Errors
    /// [`ProducerError::NameInUse`] while a live producer is attached
    /// under it; [`ProducerError::Unsettled`] if its dead producer's
    /// last publish cannot be settled yet (try again);
    /// [`ProducerError::UnknownName`], [`ProducerError::InvalidName`],
    /// [`ProducerError::Io`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// p.send(b"x")?;
    /// let id = p.id();
    /// drop(p);
    /// q.remove_producer_name("ingest")?;
    /// assert_eq!(q.producer_name(id.unwrap()), None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn remove_producer_name(&self, name: &str) -> Result<(), ProducerError> {
        validate_name(name).map_err(ProducerError::InvalidName)?;
        let _g = self.admin(true).map_err(ProducerError::Io)?;
        let ring = self.ring();
        // A dead producer still attached under the name is settled and
        // detached first.
        ring.recover_claims(liveness::is_alive);
        ring.remove_identity(name.as_bytes(), |s| self.name_owner(s))
            .map_err(|refused| self.name_refused(name, refused))
    }

    /// The name of the named producer with id `id` ([`ProducerTag::id`](crate::ProducerTag)).
    /// `None` for an id no name has, or whose name was removed.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// q.producer().name("ingest").attach()?.send(b"x")?;
    /// // Who published this message?
    /// let tag = audit.recv()?.producer.unwrap();
    /// assert_eq!(q.producer_name(tag.id).as_deref(), Some("ingest"));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn producer_name(&self, id: u64) -> Option<String> {
        let name = self.ring().name_of_id(id)?;
        Some(String::from_utf8_lossy(&name).into_owned())
    }

    /// Aborts what producers that died mid-claim left uncommitted and frees
    /// their registry slots, if the admin lock is free now (producers waiting
    /// for space and consumers waiting behind an uncommitted record do this on
    /// their own).
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::Queue::create(dir.path().join("q"))?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// // A process dies in the middle of a publish (here a child that exits with
    /// // its claim uncommitted).
    /// // SAFETY: fork, _exit and waitpid in a single-threaded program.
    /// let pid = unsafe { libc::fork() };
    /// if pid == 0 {
    ///     let mut p = q.producer().attach().unwrap();
    ///     std::mem::forget(p.claim_send(5).unwrap());
    ///     unsafe { libc::_exit(0) };
    /// }
    /// unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    /// assert!(!q.stat().producers[0].alive);
    /// let r = q.recover_dead_producers();
    /// assert_eq!((r.claims, r.records, r.freed), (1, 1, 1));
    /// // Its sequence number is skipped; the queue goes on.
    /// q.producer().attach()?.send(b"next")?;
    /// assert_eq!(audit.recv()?.seq, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recover_dead_producers(&self) -> crate::Recovery {
        match self.admin(false) {
            Ok(Some(_g)) => self.ring().recover_claims(liveness::is_alive),
            _ => crate::Recovery::default(),
        }
    }

    /// Called by producers and consumers at the start or end of each
    /// operation: if a wake of this process found nobody asleep although the
    /// sleeper word said otherwise, a process may have been killed asleep
    /// (wait.rs), and every later wake would be a wasted syscall; reap dead
    /// members and producers, at most every 100 ms.
    #[inline]
    pub(crate) fn after_stale_wake(&self) {
        if self.ring().region.take_stale_wake() {
            self.reap_stale_sleepers();
        }
    }

    #[cold]
    fn reap_stale_sleepers(&self) {
        let now = crate::os::clock::now_ns();
        let last = &self.inner.last_sleeper_reap;
        // Relaxed: process-local rate limiting; the CAS picks one thread.
        let prev = last.load(std::sync::atomic::Ordering::Relaxed);
        // abs_diff: a clock stepped back does not hold reaping off.
        if now.abs_diff(prev) < STALE_SLEEPER_REAP_EVERY_NS
            || last
                .compare_exchange(
                    prev,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        self.reap_dead_members();
        self.recover_dead_producers();
    }

    /// Reaps the dead members of group `g`, if it has any and the admin lock
    /// is free now (its members do this on their own, now and then).
    pub(crate) fn reap_dead_members_of(&self, g: usize) {
        let ring = self.ring();
        let dead = ring
            .members(g)
            .iter()
            .any(|m| !liveness::is_alive(m.pid, m.start_time));
        if dead {
            if let Ok(Some(_g)) = self.admin(false) {
                reap_group(ring, g);
            }
        }
    }

    /// Frees member slots whose processes have died, so their hazards no longer
    /// hold producers back. Returns how many were freed.
    ///
    /// ```
    /// use shmq::{Ack, StartAt};
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::Queue::create(dir.path().join("q"))?;
    /// q.add_group("work", StartAt::Latest)?;
    /// let mut survivor = q.consumer("work").ack(Ack::Explicit).attach()?;
    /// q.producer().attach()?.send(b"job")?;
    /// // Another process takes the message and dies before acknowledging it
    /// // (here a child that exits at once).
    /// // SAFETY: fork, _exit and waitpid in a single-threaded program.
    /// let pid = unsafe { libc::fork() };
    /// if pid == 0 {
    ///     let mut w = q.consumer("work").ack(Ack::Explicit).attach().unwrap();
    ///     w.try_recv().unwrap();
    ///     unsafe { libc::_exit(0) };
    /// }
    /// unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    /// assert_eq!(q.reap_dead_members(), 1);
    /// // What it held is delivered again.
    /// let m = survivor.recv()?;
    /// assert_eq!((m.seq, m.redelivered), (0, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reap_dead_members(&self) -> usize {
        match self.admin(false) {
            Ok(Some(_g)) => self.reap_all().len(),
            _ => 0,
        }
    }

    /// Frees the dead members of every group; the caller holds the admin lock.
    /// Returns (group slot, pid) of each.
    fn reap_all(&self) -> Vec<(usize, Reaped)> {
        let ring = self.ring();
        (0..ring.geo.max_groups as usize)
            .filter(|&g| ring.is_active(g))
            .flat_map(|g| reap_group(ring, g).into_iter().map(move |r| (g, r)))
            .collect()
    }

    /// Frees the member slots of dead processes now, waiting for the admin lock
    /// (producers and `consumer` do this on their own, opportunistically).
    /// Returns every member removed.
    ///
    /// # Errors
    /// [`GroupError::Io`] if the admin lock cannot be taken.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::Queue::create(dir.path().join("q"))?;
    /// q.add_group("work", shmq::StartAt::Latest)?;
    /// // A member dropped leaves the group itself: nothing to collect.
    /// drop(q.consumer("work").attach()?);
    /// assert!(q.gc()?.is_empty());
    /// // A process that dies attached leaves its member slot behind (here a
    /// // child that joins and exits at once).
    /// // SAFETY: fork, _exit and waitpid in a single-threaded program.
    /// let pid = unsafe { libc::fork() };
    /// if pid == 0 {
    ///     std::mem::forget(q.consumer("work").attach().unwrap());
    ///     unsafe { libc::_exit(0) };
    /// }
    /// unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    /// assert_eq!(q.stat().groups[0].members.len(), 1);
    /// let removed = q.gc()?;
    /// assert_eq!(removed.len(), 1);
    /// assert_eq!((removed[0].group.as_str(), removed[0].pid), ("work", pid as u64));
    /// assert!(q.stat().groups[0].members.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gc(&self) -> Result<Vec<RemovedMember>, GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        Ok(self
            .reap_all()
            .into_iter()
            .map(|(g, r)| RemovedMember {
                group: String::from_utf8_lossy(&ring.slot_name(g)).into_owned(),
                pid: r.pid,
                asleep: r.asleep,
            })
            .collect())
    }

    /// Recovers dead producers now, waiting for the admin lock: aborts what
    /// they left uncommitted, settles their names' last pseqs and frees their
    /// registry slots (producers and consumers do this on their own too).
    ///
    /// # Errors
    /// [`ProducerError::Io`] if the admin lock cannot be taken.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let q = shmq::Queue::create(dir.path().join("q"))?;
    /// // A named producer dies after committing pseq 0 and in the middle of
    /// // publishing pseq 1 (here a child that exits with its claim uncommitted).
    /// // SAFETY: fork, _exit and waitpid in a single-threaded program.
    /// let pid = unsafe { libc::fork() };
    /// if pid == 0 {
    ///     let mut p = q.producer().name("ingest").attach().unwrap();
    ///     p.send(b"line 0").unwrap();
    ///     std::mem::forget(p.claim_send(6).unwrap());
    ///     unsafe { libc::_exit(0) };
    /// }
    /// unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    /// assert!(q.stat().names[0].held());
    /// let r = q.gc_producers()?;
    /// assert_eq!((r.claims, r.freed), (1, 1));
    /// // The name is settled: what was committed counts, what was not does not.
    /// assert!(!q.stat().names[0].held());
    /// assert_eq!(q.producer().name("ingest").attach()?.last_pseq(), Some(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gc_producers(&self) -> Result<crate::Recovery, ProducerError> {
        let _g = self.admin(true).map_err(ProducerError::Io)?;
        Ok(self.ring().recover_claims(liveness::is_alive))
    }

    /// Validates the queue's live state against the protocol's invariants (see
    /// [`CheckReport`]); opening it has already validated the header.
    ///
    /// On a queue in use, what one pass reads is not a snapshot: a cursor,
    /// an entry or a record may change between two reads. So a pass that
    /// finds problems is repeated, and only problems every pass finds (up
    /// to five, a millisecond apart) are reported: damage stays,
    /// a race does not.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// let report = q.check();
    /// assert!(report.ok(), "{:?}", report.problems);
    /// assert_eq!((report.records, report.groups), (3, 1));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn check(&self) -> CheckReport {
        let ring = self.ring();
        let mut reader = self.inner.spill.as_ref().map(|s| s.reader());
        let mut pass = || {
            let mut r = crate::queue::check::check(ring);
            if let Some(reader) = reader.as_mut() {
                crate::queue::check::check_log(ring, reader, &mut r);
            }
            crate::queue::check::check_acks(ring, reader.as_mut(), &mut r);
            r
        };
        let mut r = pass();
        for _ in 1..CHECK_PASSES {
            if r.problems.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            let again = pass();
            if again.problems.is_empty() {
                return again;
            }
            r = again;
        }
        r
    }

    /// The queue's live state.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let _p = q.producer().name("ingest").attach()?;
    /// q.producer().attach()?.send_batch(&[b"a", b"b", b"c"])?;
    /// audit.recv()?;
    /// let stat = q.stat();
    /// assert_eq!(stat.tail_seq, 3);
    /// let g = &stat.groups[0];
    /// assert_eq!((g.name.as_str(), g.next_seq, g.lag), ("audit", 1, 2));
    /// assert_eq!(g.members.len(), 1);
    /// assert!(g.members[0].alive);
    /// assert_eq!(stat.producers.len(), 1); // the anonymous one was dropped
    /// assert_eq!(stat.names[0].name, "ingest");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn stat(&self) -> Stat {
        let ring = self.ring();
        let (tail_seq, tail_pos) = ring.tail_now();
        let (head_seq, _) = ring.head_now();
        let slots = ring.producer_slots();
        let name_stats = ring.identities();
        let infos = ring.groups();
        let names: std::collections::HashMap<usize, String> =
            infos.iter().map(|g| (g.slot, g.name.clone())).collect();
        let groups = infos
            .into_iter()
            .map(|g: GroupInfo| {
                let (_, redelivered, dead_lettered, max_attempts, dl) = ring.ack_stats(g.slot);
                let entries = ring.entries(g.slot);
                let pending = entries
                    .iter()
                    .filter(|(_, w, _)| crate::protocol::ack::word_state(*w) == ENTRY_PENDING)
                    .count() as u64;
                let wait = ring.ack_wait_ns(g.slot);
                GroupStat {
                    ack_entries_used: entries
                        .iter()
                        .filter(|(_, w, _)| crate::protocol::ack::word_state(*w) != ENTRY_RESERVED)
                        .count() as u64,
                    max_unacked: ring.max_unacked(g.slot),
                    ack_wait: (wait != 0).then(|| std::time::Duration::from_nanos(wait)),
                    expired: ring.expired(g.slot),
                    ack_entries: entries
                        .iter()
                        .filter(|(_, w, _)| crate::protocol::ack::word_state(*w) != ENTRY_RESERVED)
                        .map(|(_, w, e)| {
                            let owner = crate::protocol::ack::word_owner(*w);
                            (
                                crate::protocol::ack::state_name(*w),
                                (owner < ring.geo.max_members as usize
                                    && crate::protocol::ack::word_state(*w) != ENTRY_PENDING)
                                    .then_some(owner),
                                e.seq,
                            )
                        })
                        .collect(),
                    dead_letter: dl.and_then(|d| names.get(&d).cloned()),
                    dead_letters_only: ring.dl_only(g.slot),
                    pending,
                    redelivered,
                    dead_lettered,
                    max_attempts,
                    on_disk: g.on_disk,
                    lag: tail_seq.saturating_sub(g.next_seq),
                    name: g.name,
                    next_seq: g.next_seq,
                    members: g
                        .members
                        .iter()
                        .map(|m| MemberStat {
                            pid: m.pid,
                            alive: liveness::is_alive(m.pid, m.start_time),
                            delivered: m.delivered,
                            acked: m.acked,
                            unacked: m.unacked.clone(),
                            asleep: m.asleep,
                        })
                        .collect(),
                }
            })
            .collect();
        Stat {
            geometry: ring.geo,
            tail_seq,
            tail_pos,
            head_seq,
            full_waits: ring.region.u64_at(OFF_FULL_WAITS).load(Ordering::Relaxed),
            stall_waits: ring.region.u64_at(OFF_STALL_WAITS).load(Ordering::Relaxed),
            aborted: ring.region.u64_at(OFF_ABORTED).load(Ordering::Relaxed),
            sleeping_consumers: ring.region.u32_at(OFF_DATA_WAITERS).load(Ordering::Relaxed),
            sleeping_producers: ring
                .region
                .u32_at(OFF_SPACE_WAITERS)
                .load(Ordering::Relaxed),
            groups,
            producers: slots
                .into_iter()
                .map(|p| ProducerStat {
                    name: p
                        .ident
                        .and_then(|i| name_stats.iter().find(|n| n.slot() == i))
                        .map(|n| n.name.clone()),
                    pid: p.pid,
                    alive: liveness::is_alive(p.pid, p.start_time),
                    claim_seq: p.claim.map(|c| c.0),
                    asleep: p.asleep,
                })
                .collect(),
            names: name_stats,
            spill: self.spill_stat(),
        }
    }

    fn spill_stat(&self) -> Option<SpillStat> {
        let sp = self.inner.spill.as_ref()?;
        let ring = self.ring();
        // Relaxed: a snapshot for display.
        let w = |off: usize| ring.region.u64_at(off).load(Ordering::Relaxed);
        let (log_end, first_pos) = (w(OFF_LOG_END), w(OFF_LOG_FIRST_POS));
        let retained = log_end > first_pos;
        let errno = w(OFF_SPILL_ERRNO);
        Some(SpillStat {
            dir: sp.opts.dir.clone(),
            segments: list_segments(&sp.opts.dir).map_or(0, |s| s.len() as u64),
            bytes: log_end.saturating_sub(first_pos),
            first_seq: retained.then(|| w(OFF_LOG_FIRST_SEQ)),
            last_seq: retained.then(|| w(OFF_LOG_END_SEQ).wrapping_sub(1)),
            spilled: w(OFF_SPILLED),
            spill_bytes: w(OFF_SPILL_BYTES),
            rounds: w(OFF_SPILL_ROUNDS),
            transfers: w(OFF_SPILL_TRANSFERS),
            errors: w(OFF_SPILL_ERRORS),
            recoveries: w(OFF_SPILL_RECOVERIES),
            last_errno: (errno != 0).then_some(errno as i32),
            front_seq: ring.front_now().map(|f| f.0),
            round: match (w(OFF_SPILL_IN_ROUND), w(OFF_SPILL_ROUND_SINCE)) {
                (0, _) => None,
                (pid, since) => Some((
                    pid,
                    std::time::Duration::from_nanos(
                        crate::os::clock::monotonic_ns().saturating_sub(since),
                    ),
                )),
            },
        })
    }
}

/// A queue owned by another user is opened only if its mode shares it: read
/// and write for group or for others.
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), OpenError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    let shared = mode & 0o060 == 0o060 || mode & 0o006 == 0o006;
    if meta.uid() != me && !shared {
        return Err(OpenError::ForeignOwner {
            path: path.to_owned(),
            uid: meta.uid(),
            mode,
        });
    }
    Ok(())
}

/// A dead member freed by `reap_group`.
pub(crate) struct Reaped {
    pid: u64,
    /// It was killed asleep: its sleep announcement was withdrawn.
    asleep: bool,
}

/// Frees group `g`'s member slots whose processes are dead.
pub(crate) fn reap_group(ring: &Ring<RawRegion>, g: usize) -> Vec<Reaped> {
    let mut out = Vec::new();
    let mut recovered = false;
    for m in ring.members(g) {
        if !liveness::is_alive(m.pid, m.start_time) {
            if !recovered {
                // A dead member's dead-letter producer may have left a claim:
                // aborted first, so that its forward can be settled.
                ring.recover_claims(liveness::is_alive);
                recovered = true;
            }
            // Wakers stop counting it, before the slot can be reused.
            let asleep = ring.clear_sleeper(Sleeper::Member { g, m: m.slot });
            // Its unacknowledged messages go back to the group first.
            ring.reap_entries(g, m.slot);
            ring.detach(g, m.slot);
            out.push(Reaped { pid: m.pid, asleep });
        }
    }
    out
}

/// Held while changing the group table.
pub(crate) struct AdminGuard<'a> {
    q: &'a Queue,
    _local: MutexGuard<'a, ()>,
}

impl Drop for AdminGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = &self.q.inner.file {
            // SAFETY: flock on a descriptor we own.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// Checks a group or producer name ([`valid_name`]); the error carries it.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    if valid_name(name.as_bytes()) {
        Ok(())
    } else {
        Err(name.to_owned())
    }
}
