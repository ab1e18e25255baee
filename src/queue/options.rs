//! How a queue is created: [`QueueOptions`], and the constructors that use it.

use super::header::*;
use super::spill_dir::*;
use super::Inner;
use crate::error::OpenError;
use crate::os::mapping::RawRegion;
use crate::protocol::layout::*;
use crate::protocol::ring::Ring;
use crate::queue::Queue;
use crate::region::Region;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use crate::spill::log::SpillOptions;
use crate::sync::wide_atomics_lock_free;
use std::fs::OpenOptions;
use std::io;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

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
            let q = Self::map(file, path, geo, nonce, spill.clone(), true)?;
            // What earlier queues at this path staged stays in their
            // nonces' directories, never this queue's (`Queue::gc` removes
            // them): clearing here could race with another creator whose
            // queue won the path and already staged.
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
                staged: super::Staging::temporary(nonce),
                release_retry: std::sync::Mutex::new((0, 0)),
                staged_mtime: std::sync::Mutex::new((None, 0)),
            }),
        })
    }
}
