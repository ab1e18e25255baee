//! The queue: a handle on one mapped queue file ([`Queue`]), and what is done
//! to a queue as a whole.
//!
//! - `options`: [`QueueOptions`] and creating a queue;
//! - `header`: the file's header, written at creation and checked at open;
//! - `spill_dir`: the spill directory a queue owns;
//! - `admin`: the admin lock, groups, producer names, reaping the dead;
//! - `stat`, `check`, `replay` (seek and dump), `geometry`: looking at a queue.
//!
//! Opening, mapping and removing a queue file are here.

mod admin;
pub mod check;
pub mod geometry;
mod header;
mod options;
pub mod replay;
mod spill_dir;
pub mod stat;

pub(crate) use admin::{reap_group, validate_name};
use header::*;
pub use options::QueueOptions;
use spill_dir::*;

use crate::error::OpenError;
use crate::os::mapping::RawRegion;
use crate::protocol::layout::*;
use crate::protocol::ring::Ring;

use crate::spill::log::LogError;
use crate::spill::log::{list_segments, SpillOptions};
use crate::spill::rounds::{RoundOutcome, Spill};
use crate::sync::wide_atomics_lock_free;

use memmap2::MmapOptions;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub(in crate::queue) struct Inner {
    pub(in crate::queue) ring: Ring<RawRegion>,
    pub(in crate::queue) file: Option<File>,
    pub(in crate::queue) path: Option<PathBuf>,
    pub(in crate::queue) admin: Mutex<()>,
    pub(in crate::queue) spill: Option<Spill>,
    /// When this process last reaped because a wake found nobody (ns).
    pub(in crate::queue) last_sleeper_reap: AtomicU64,
    /// The staging directory (scheduled messages, prepared transactions).
    pub(in crate::queue) staged: Staging,
    /// This process's releases of scheduled messages: (wall-clock ns before
    /// which polls do not try again, the current back-off in ns).
    pub(in crate::queue) release_retry: Mutex<(u64, u64)>,
    /// The staging directory's modification time at this process's last
    /// look at it (`Queue::staged_changed`), and when that was (monotonic
    /// ns).
    pub(in crate::queue) staged_mtime: Mutex<(Option<std::time::SystemTime>, u64)>,
}

/// Where a queue keeps what is staged (`crate::staged`): next to its file,
/// in `<path>.staged/<nonce>` (the queue's own: a queue made later at the
/// path, or one that replaced it, has another nonce), or for a queue in
/// memory, a temporary directory that goes with it.
pub(in crate::queue) struct Staging {
    pub(in crate::queue) dir: PathBuf,
    /// Mode the directory is created with.
    pub(in crate::queue) mode: u32,
    /// Removed when the queue is dropped (a queue in memory).
    pub(in crate::queue) temporary: bool,
}

impl Staging {
    /// For queue `nonce` in the file at `path` of mode `file_mode`: the
    /// directory `<real path>.staged/<nonce>`, open to whom the file is
    /// writable. `creating`: the file is not at `path` yet (it will be,
    /// as a file, not a link): its real path is its directory's and its
    /// name; an open follows links to the file.
    fn beside(path: &Path, file_mode: u32, nonce: u64, creating: bool) -> Staging {
        let by_parent = || {
            // `q` has the parent "": the current directory.
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            match (parent.canonicalize(), path.file_name()) {
                (Ok(d), Some(n)) => d.join(n),
                _ => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            }
        };
        let real = if creating {
            by_parent()
        } else {
            path.canonicalize().unwrap_or_else(|_| by_parent())
        };
        let group = if file_mode & 0o020 != 0 { 0o070 } else { 0 };
        let other = if file_mode & 0o002 != 0 { 0o007 } else { 0 };
        Staging {
            dir: staged_root(&real).join(format!("{nonce:016x}")),
            mode: 0o700 | group | other,
            temporary: false,
        }
    }

    /// For a queue in memory.
    fn temporary(nonce: u64) -> Staging {
        Staging {
            dir: std::env::temp_dir()
                .join(format!("shmq-{}-{nonce:016x}.staged", std::process::id())),
            mode: 0o700,
            temporary: true,
        }
    }
}

/// The directory that holds the staging directories of the queues made at
/// the real path `path` (each in a subdirectory named by its nonce).
pub(in crate::queue) fn staged_root(path: &Path) -> PathBuf {
    let mut dir = path.as_os_str().to_owned();
    dir.push(".staged");
    PathBuf::from(dir)
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.staged.temporary {
            let _ = std::fs::remove_dir_all(&self.staged.dir);
        }
    }
}

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
    pub(in crate::queue) inner: Arc<Inner>,
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

/// What [`Queue::rounds_until`] came to.
pub(crate) struct Rounds<T> {
    /// What the attempt got, if it succeeded.
    pub(crate) got: Option<T>,
    /// The last round found a record claimed but not committed in its way.
    pub(crate) blocked: bool,
    /// A round failed (the log could not be written).
    pub(crate) error: Option<crate::SpillError>,
}

impl Queue {
    /// Removes the queue at `path`: its file, its staging directory
    /// (scheduled messages, prepared transactions), and its spill directory's
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
        let q = Queue::open(path)?;
        let spill = q.spill_options().map(|s| s.dir.clone());
        // Every queue's made at this path (each in its nonce's directory),
        // removed while the file is still there (no new queue can stage
        // into it meanwhile). Not through a symbolic link: that removes the
        // link, and the queue it points to stays, with its staged files.
        let staged = q.staged_dir().0.parent().map(Path::to_owned);
        drop(q);
        let link = path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        if let Some(staged) = staged.filter(|_| !link) {
            match std::fs::remove_dir_all(&staged) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(OpenError::Io {
                        what: format!("{}: cannot remove", staged.display()),
                        source: e,
                    })
                }
                _ => {}
            }
        }
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
        Self::map(file, path, p.geo, p.nonce, p.spill, false)
    }

    fn map(
        file: File,
        path: &Path,
        geo: Geometry,
        nonce: u64,
        spill: Option<SpillOptions>,
        creating: bool,
    ) -> Result<Queue, OpenError> {
        let spill = open_spill(spill, nonce, &geo)?;
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_or(0o600, |m| m.permissions().mode());
        let staged = Staging::beside(path, mode, nonce, creating);
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
                staged,
                release_retry: Mutex::new((0, 0)),
                staged_mtime: Mutex::new((None, 0)),
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

    /// With a spill log and a full ring: spill rounds, `attempt` after each
    /// (a claim), until it succeeds or the rounds stop making room. Other
    /// producers may fill the ring again before the caller claims (it may
    /// be descheduled right after its round, or the round may find nothing
    /// left to log just before they do), so it goes on while rounds make
    /// progress or others publish: the next round logs what they published
    /// meanwhile. Bounded, so that a producer outrun every time still ends
    /// up waiting its turn. `wait_lock`: wait for a round in progress.
    pub(crate) fn rounds_until<T>(
        &self,
        wait_lock: bool,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Rounds<T> {
        let mut out = Rounds {
            got: None,
            blocked: false,
            error: None,
        };
        if self.inner.spill.is_none() {
            return out;
        }
        let ring = self.ring();
        for _ in 0..64 {
            let tail_before = ring.tail_now().0;
            match self.spill_round(wait_lock) {
                Ok(r) => {
                    out.blocked = r.is_some_and(|o| o.blocked);
                    out.got = attempt();
                    let progress = r.is_some_and(|o| {
                        o.spilled > 0 || o.transferred > 0 || ring.tail_now().0 != tail_before
                    });
                    if out.got.is_some() || !progress {
                        break;
                    }
                }
                Err(e) => {
                    out.error = Some(e.into());
                    break;
                }
            }
        }
        out
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

    /// The staging directory: scheduled messages and prepared transactions
    /// (`crate::staged`), and the mode it is created with.
    pub(crate) fn staged_dir(&self) -> (&Path, u32) {
        (&self.inner.staged.dir, self.inner.staged.mode)
    }

    /// This process's back-off of scheduled-message releases:
    /// `(retry at, back-off)` (staged/schedule.rs).
    pub(crate) fn release_retry(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.inner
            .release_retry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the staging directory changed since this process last
    /// looked (its modification time), looking at most once a second (a
    /// member's upkeep may run every millisecond); a directory not there
    /// has not.
    pub(crate) fn staged_changed(&self) -> bool {
        let mut last = self
            .inner
            .staged_mtime
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = crate::os::clock::monotonic_ns();
        if now.saturating_sub(last.1) < 1_000_000_000 {
            return false;
        }
        let mtime = std::fs::metadata(&self.inner.staged.dir)
            .and_then(|m| m.modified())
            .ok();
        let changed = mtime.is_some() && mtime != last.0;
        *last = (mtime, now);
        changed
    }

    /// The spill log's process-local side, if the queue has one.
    pub(crate) fn spill(&self) -> Option<&Spill> {
        self.inner.spill.as_ref()
    }
}
