//! The spill log on disk: where a group that fell a ring behind reads the
//! messages the ring no longer holds for it.
//!
//! A directory of segment files named `<base>.seg`, where `base` is the *log
//! position* of the segment's first record: a byte count over all segments
//! that only grows, written as 20 decimal digits so that names sort in log
//! order. Segment `i` holds exactly the positions `base_i..base_(i+1)`; a
//! record never spans two segments.
//!
//! ```text
//! SEGMENT HEADER (64 bytes, native-endian like the queue file)
//!   0  magic      [u8; 8] b"SHMQSEG1"
//!   8  version    u32     SEG_VERSION (2; a reader refuses any other)
//!   12 hdr_size   u32     64
//!   16 nonce      u64     the queue's nonce: a log of another queue is refused
//!   24 base       u64     log position of the first record
//!   32 first_seq  u64     sequence number of the first record
//!   40 created_ns u64
//! RECORD at file offset 64 + (position - base), 8-byte aligned
//!   0  len   u32   payload bytes
//!   4  kind  u32   low 8 bits: 1 message, 3 aborted claim (no payload; keeps
//!                  seqs dense); upper 24 bits: the ring record's flags' low
//!                  24 bits (a dead letter's addressing, FLAG_PRODUCER,
//!                  `layout.rs`; messages only)
//!   8  seq   u64
//!   16 ts_ns u64   publish time
//!   24 crc   u32   CRC32C of bytes 0..24, 28..32 and the payload
//!   28 flags u32   the ring record's flags above bit 24 (FLAG_TTL), shifted
//!                  down by 24
//!   32 payload, zero padding to a multiple of 8
//! INDEX `<base>.idx`: 16-byte entries (seq u64, position u64): the segment's
//!   first record, then one at least every INDEX_EVERY bytes. Derived data: a
//!   torn last entry is ignored; a missing index only means a longer scan.
//! LOCK `spill.lock`: flock(2) held by the process running a spill round; the
//!   kernel drops it when that process dies, and the next spiller recovers.
//! ```
//!
//! Records below the queue header's `log_end` were complete when it was
//! published; anything past it belongs to a round that did not finish, and the
//! next spiller truncates it. Recovery after a spiller's death also checks the
//! CRC of every record after the last index entry and truncates at the first
//! torn one.

use crate::protocol::layout::{valid_record, KIND_ABORT, KIND_MSG};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Segment file magic.
pub const SEG_MAGIC: [u8; 8] = *b"SHMQSEG1";
/// Segment format version (header bytes 8..12).
pub const SEG_VERSION: u32 = 2;
/// Segment header size.
pub const SEG_HEADER: u64 = 64;
/// Record header size.
pub const LOG_RECORD_HEADER: usize = 32;
/// An index entry is written at least this often (bytes of log).
pub const INDEX_EVERY: u64 = 4096;

/// When spilled data is forced to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Never: the kernel writes back when it likes. Survives process crashes,
    /// not power loss.
    Never,
    /// When a segment is full and closed.
    Segment,
    /// At the end of a spill round, if the last sync is older than this.
    Interval(Duration),
    /// After every spill round, before the ring space is reused.
    Always,
}

impl Fsync {
    pub(crate) fn encode(self) -> (u32, u64) {
        match self {
            Fsync::Never => (0, 0),
            Fsync::Segment => (1, 0),
            Fsync::Interval(d) => (2, d.as_nanos().min(u64::MAX as u128) as u64),
            Fsync::Always => (3, 0),
        }
    }

    pub(crate) fn decode(mode: u32, ns: u64) -> Option<Fsync> {
        Some(match mode {
            0 => Fsync::Never,
            1 => Fsync::Segment,
            2 => Fsync::Interval(Duration::from_nanos(ns)),
            3 => Fsync::Always,
            _ => return None,
        })
    }
}

/// The spill settings a queue is created with (stored in its header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpillOptions {
    /// Directory of the log (created if missing). Stored as an absolute path.
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size. Default 64 MiB.
    pub segment_size: u64,
    /// Durability. Default [`Fsync::Never`].
    pub fsync: Fsync,
    /// Keep at least this many bytes of log even once every group has read
    /// them (for replay). Default 0.
    pub retain_bytes: u64,
    /// Keep segments younger than this even once read. Default none.
    pub retain_time: Option<Duration>,
}

impl SpillOptions {
    /// Spill to `dir` with the defaults.
    ///
    /// ```
    /// use shmq::{Fsync, SpillOptions};
    /// let dir = "/var/lib/orders/spill";
    /// let opts = SpillOptions::new(dir);
    /// assert_eq!(opts.segment_size, 64 << 20);
    /// assert_eq!(opts.fsync, Fsync::Never);
    /// assert_eq!((opts.retain_bytes, opts.retain_time), (0, None));
    /// // Other settings through the fields.
    /// let durable = SpillOptions { fsync: Fsync::Always, ..SpillOptions::new(dir) };
    /// assert_eq!(durable.segment_size, opts.segment_size);
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpillOptions {
            dir: dir.into(),
            segment_size: 64 << 20,
            fsync: Fsync::Never,
            retain_bytes: 0,
            retain_time: None,
        }
    }

    /// Whether a retention policy asks for history beyond what groups need:
    /// then every message is logged (journal mode), not only a lagging
    /// group's backlog, so that any retained sequence number can be replayed.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use shmq::SpillOptions;
    /// assert!(!SpillOptions::new("spill").journal());
    /// let by_size = SpillOptions { retain_bytes: 1 << 30, ..SpillOptions::new("spill") };
    /// assert!(by_size.journal());
    /// let by_age = SpillOptions {
    ///     retain_time: Some(Duration::from_secs(3600)),
    ///     ..SpillOptions::new("spill")
    /// };
    /// assert!(by_age.journal());
    ///
    /// // A journal logs every message, so the log can replay them.
    /// let dir = tempfile::tempdir()?;
    /// let journal = SpillOptions {
    ///     retain_bytes: 1 << 20,
    ///     ..SpillOptions::new(dir.path().join("spill"))
    /// };
    /// let q = shmq::QueueOptions::new().spill(journal).create(dir.path().join("q"))?;
    /// q.producer().attach()?.send(b"kept")?;
    /// q.spill_now()?;
    /// let mut from_log = Vec::new();
    /// q.dump(0, 10, |m| from_log.push((m.payload, m.from_log)))?;
    /// assert_eq!(from_log, [(b"kept".to_vec(), true)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal(&self) -> bool {
        self.retain_bytes > 0 || self.retain_time.is_some_and(|d| !d.is_zero())
    }
}

/// Reading the log failed.
#[derive(Debug)]
pub(crate) enum LogError {
    /// The file system said no.
    Io(io::Error),
    /// A record or segment is not what the writer wrote.
    Corrupt(String),
    /// No segment holds this position any more (deleted by retention).
    Missing(u64),
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "spill log: {e}"),
            LogError::Corrupt(s) => write!(f, "spill log corrupt: {s}"),
            LogError::Missing(p) => write!(f, "spill log: position {p} is no longer retained"),
        }
    }
}

impl From<LogError> for crate::error::SpillError {
    fn from(e: LogError) -> Self {
        use crate::error::{Reason, SpillError};
        match e {
            LogError::Io(e) => SpillError::from(e),
            LogError::Corrupt(s) => SpillError::Corrupt(Reason::new(s)),
            LogError::Missing(p) => SpillError::Missing(p),
        }
    }
}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> Self {
        LogError::Io(e)
    }
}

/// A record's header, read and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Sequence number.
    pub seq: u64,
    /// Publish time.
    pub ts_ns: u64,
    /// KIND_MSG or KIND_ABORT.
    pub kind: u64,
    /// The ring record's flags (0, or a dead letter's addressing).
    pub flags: u32,
    /// Payload bytes.
    pub len: u32,
    /// Bytes the record takes in the log (header, payload, padding).
    pub size: u64,
}

/// Bytes a record of `len` payload bytes takes in the log.
pub const fn log_record_size(len: u64) -> u64 {
    (LOG_RECORD_HEADER as u64 + len + 7) & !7
}

fn record_crc(head: &[u8], payload: &[u8]) -> u32 {
    let c = crc32c::crc32c_append(crc32c::crc32c(&head[..24]), &head[28..32]);
    crc32c::crc32c_append(c, payload)
}

/// Appends the encoding of one record to `out`.
#[cfg(test)]
fn encode_record(out: &mut Vec<u8>, seq: u64, ts_ns: u64, kind: u64, payload: &[u8]) {
    encode_record_with(out, seq, ts_ns, kind, 0, payload.len(), |dst| {
        dst.copy_from_slice(payload)
    });
}

/// Appends one record of a `len`-byte payload that `fill` writes in place
/// (the spiller copies straight from the ring, with no buffer in between).
pub(crate) fn encode_record_with(
    out: &mut Vec<u8>,
    seq: u64,
    ts_ns: u64,
    kind: u64,
    flags: u32,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) {
    let start = out.len();
    out.resize(start + log_record_size(len as u64) as usize, 0);
    let (head, body) = out[start..].split_at_mut(LOG_RECORD_HEADER);
    head[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    head[4..8].copy_from_slice(&(kind as u32 | (flags & 0xff_ffff) << 8).to_ne_bytes());
    head[28..32].copy_from_slice(&(flags >> 24).to_ne_bytes());
    head[8..16].copy_from_slice(&seq.to_ne_bytes());
    head[16..24].copy_from_slice(&ts_ns.to_ne_bytes());
    let payload = &mut body[..len];
    fill(payload);
    let crc = record_crc(head, payload);
    head[24..28].copy_from_slice(&crc.to_ne_bytes());
}

/// Parses a record header; `None` if it cannot be one (bad kind or length).
fn parse_head(head: &[u8; LOG_RECORD_HEADER], max_msg: u32) -> Option<(LogRecord, u32)> {
    let u32_at = |o: usize| u32::from_ne_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[o..o + 8]);
        u64::from_ne_bytes(b)
    };
    let len = u32_at(0);
    let (kind, high) = ((u32_at(4) & 0xff) as u64, u32_at(28));
    if high > 0xff {
        return None;
    }
    let flags = u32_at(4) >> 8 | high << 24;
    let ok_kind = kind == KIND_MSG || (kind == KIND_ABORT && len == 0 && flags == 0);
    if !ok_kind || !valid_record(len as u64, flags, max_msg) {
        return None;
    }
    Some((
        LogRecord {
            seq: u64_at(8),
            ts_ns: u64_at(16),
            kind,
            flags,
            len,
            size: log_record_size(len as u64),
        },
        u32_at(24),
    ))
}

fn seg_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn idx_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.idx"))
}

/// Bases of the segments in `dir`, in order.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            let digits = name.strip_suffix(".seg")?;
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Reads and checks a segment header; returns its first_seq.
fn read_seg_header(f: &File, base: u64, nonce: u64) -> Result<u64, LogError> {
    let mut h = [0u8; SEG_HEADER as usize];
    f.read_exact_at(&mut h, 0).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            LogError::Corrupt(format!("segment {base:020}: header truncated"))
        }
        _ => LogError::Io(e),
    })?;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[o..o + 8]);
        u64::from_ne_bytes(b)
    };
    if h[..8] != SEG_MAGIC {
        return Err(LogError::Corrupt(format!("segment {base:020}: bad magic")));
    }
    let version = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
    if version != SEG_VERSION {
        return Err(LogError::Corrupt(format!(
            "segment {base:020}: format version {version}, this build reads {SEG_VERSION}"
        )));
    }
    if u64_at(16) != nonce {
        return Err(LogError::Corrupt(format!(
            "segment {base:020} belongs to another queue (nonce mismatch)"
        )));
    }
    if u64_at(24) != base {
        return Err(LogError::Corrupt(format!(
            "segment {base:020}: header says base {}",
            u64_at(24)
        )));
    }
    Ok(u64_at(32))
}

fn seg_header(nonce: u64, base: u64, first_seq: u64) -> [u8; SEG_HEADER as usize] {
    let mut h = [0u8; SEG_HEADER as usize];
    h[..8].copy_from_slice(&SEG_MAGIC);
    h[8..12].copy_from_slice(&SEG_VERSION.to_ne_bytes());
    h[12..16].copy_from_slice(&(SEG_HEADER as u32).to_ne_bytes());
    h[16..24].copy_from_slice(&nonce.to_ne_bytes());
    h[24..32].copy_from_slice(&base.to_ne_bytes());
    h[32..40].copy_from_slice(&first_seq.to_ne_bytes());
    h[40..48].copy_from_slice(&crate::os::clock::now_ns().to_ne_bytes());
    h
}

fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads records: consumers of a group on disk, `dump`, and the spiller's
/// lookups. Holds one segment open at a time.
pub(crate) struct LogReader {
    dir: PathBuf,
    nonce: u64,
    max_msg: u32,
    /// (base, first_seq) of every segment, as last listed.
    segs: Vec<(u64, u64)>,
    open: Option<(u64, File)>,
    /// Read-ahead for [`LogReader::read_ahead`]: log bytes from `win_at`, all
    /// below a published log end when they were read, so final.
    win: Vec<u8>,
    win_at: u64,
}

/// Bytes a reader fetches ahead: one `pread` serves many small records.
const READ_AHEAD: u64 = 64 << 10;

impl LogReader {
    pub(crate) fn new(dir: &Path, nonce: u64, max_msg: u32) -> Self {
        LogReader {
            dir: dir.to_owned(),
            nonce,
            max_msg,
            segs: Vec::new(),
            open: None,
            win: Vec::new(),
            win_at: 0,
        }
    }

    /// Re-lists the directory.
    pub(crate) fn refresh(&mut self) -> Result<(), LogError> {
        let bases = list_segments(&self.dir)?;
        let mut segs = Vec::with_capacity(bases.len());
        for base in bases {
            // Keep what we know; read headers only of new segments.
            if let Some(&(_, fs)) = self.segs.iter().find(|(b, _)| *b == base) {
                segs.push((base, fs));
                continue;
            }
            let f = match File::open(seg_path(&self.dir, base)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // deleted meanwhile
                Err(e) => return Err(e.into()),
            };
            segs.push((base, read_seg_header(&f, base, self.nonce)?));
        }
        self.segs = segs;
        Ok(())
    }

    /// The segment the cached listing says holds `pos`.
    fn locate(&self, pos: u64) -> Option<u64> {
        self.segs.iter().rev().find(|(b, _)| *b <= pos).map(|s| s.0)
    }

    /// Reads `buf.len()` bytes at `skip` bytes into the record at `pos`. The
    /// listing may be stale (a newer segment, or this one deleted): on a miss
    /// it is refreshed once.
    fn pread(&mut self, pos: u64, skip: u64, buf: &mut [u8]) -> Result<(), LogError> {
        let mut fresh = false;
        loop {
            let result = self.pread_once(pos, skip, buf);
            let retry = match &result {
                Err(LogError::Missing(_)) => true,
                Err(LogError::Io(e)) => e.kind() == io::ErrorKind::UnexpectedEof,
                _ => false,
            };
            if !retry || fresh {
                return result.map_err(|e| match e {
                    LogError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        LogError::Corrupt(format!(
                            "record at log position {pos} is past the end of its segment"
                        ))
                    }
                    e => e,
                });
            }
            self.refresh()?;
            self.open = None;
            fresh = true;
        }
    }

    fn pread_once(&mut self, pos: u64, skip: u64, buf: &mut [u8]) -> Result<(), LogError> {
        let base = self.locate(pos).ok_or(LogError::Missing(pos))?;
        if self.open.as_ref().is_none_or(|(b, _)| *b != base) {
            let f = File::open(seg_path(&self.dir, base)).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => LogError::Missing(pos),
                _ => LogError::Io(e),
            })?;
            self.open = Some((base, f));
        }
        let Some((_, f)) = &self.open else {
            return Err(LogError::Missing(pos));
        };
        f.read_exact_at(buf, SEG_HEADER + (pos - base) + skip)?;
        Ok(())
    }

    /// Reads the header of the record at `pos` (not its payload or CRC).
    pub(crate) fn read_head(&mut self, pos: u64) -> Result<(LogRecord, u32), LogError> {
        let mut head = [0u8; LOG_RECORD_HEADER];
        self.pread(pos, 0, &mut head)?;
        parse_head(&head, self.max_msg).ok_or_else(|| {
            LogError::Corrupt(format!("record at log position {pos} has a bad header"))
        })
    }

    /// [`LogReader::read`] for a reader going forward through the log: the
    /// bytes come from a window read ahead of `pos`, up to `end`, a published
    /// log end (records below it are final; a window may outlive its segment's
    /// deletion, but only a reader whose cursor moved past it can meet that,
    /// and its cursor CAS then fails).
    pub(crate) fn read_ahead(
        &mut self,
        pos: u64,
        end: u64,
        payload: &mut Vec<u8>,
    ) -> Result<LogRecord, LogError> {
        if let Some(rec) = self.in_window(pos, payload)? {
            return Ok(rec);
        }
        self.fill_window(pos, end)?;
        match self.in_window(pos, payload)? {
            Some(rec) => Ok(rec),
            // Larger than a window: read it directly.
            None => self.read(pos, payload),
        }
    }

    /// The record at `pos` if the window holds all of it.
    fn in_window(&self, pos: u64, payload: &mut Vec<u8>) -> Result<Option<LogRecord>, LogError> {
        let win_end = self.win_at + self.win.len() as u64;
        if pos < self.win_at || pos.saturating_add(LOG_RECORD_HEADER as u64) > win_end {
            return Ok(None);
        }
        let at = (pos - self.win_at) as usize;
        let mut head = [0u8; LOG_RECORD_HEADER];
        head.copy_from_slice(&self.win[at..at + LOG_RECORD_HEADER]);
        let (rec, crc) = parse_head(&head, self.max_msg).ok_or_else(|| {
            LogError::Corrupt(format!("record at log position {pos} has a bad header"))
        })?;
        let body = at + LOG_RECORD_HEADER;
        let Some(bytes) = self.win.get(body..body + rec.len as usize) else {
            return Ok(None);
        };
        if record_crc(&head, bytes) != crc {
            return Err(LogError::Corrupt(format!(
                "record at log position {pos} (seq {}) fails its checksum",
                rec.seq
            )));
        }
        payload.clear();
        payload.extend_from_slice(bytes);
        Ok(Some(rec))
    }

    /// Reads up to [`READ_AHEAD`] bytes from `pos`, not past `end` nor the end
    /// of `pos`'s segment.
    fn fill_window(&mut self, pos: u64, end: u64) -> Result<(), LogError> {
        self.win.clear();
        self.win_at = pos;
        // The first read also opens the segment (refreshing a stale listing).
        let mut head = [0u8; LOG_RECORD_HEADER];
        self.pread(pos, 0, &mut head)?;
        let Some(base) = self.open.as_ref().map(|(b, _)| *b) else {
            return Ok(());
        };
        let seg_end = self
            .segs
            .iter()
            .find(|(b, _)| *b > base)
            .map_or(u64::MAX, |s| s.0);
        let want = READ_AHEAD.min(end.saturating_sub(pos)).min(seg_end - pos) as usize;
        self.win.resize(want.max(LOG_RECORD_HEADER), 0);
        let Some((_, f)) = &self.open else {
            return Ok(());
        };
        let off = SEG_HEADER + (pos - base);
        let mut got = 0;
        while got < self.win.len() {
            match f.read_at(&mut self.win[got..], off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.win.truncate(got);
        Ok(())
    }

    /// Reads and checks the record at `pos`, its payload into `payload`.
    pub(crate) fn read(&mut self, pos: u64, payload: &mut Vec<u8>) -> Result<LogRecord, LogError> {
        // The CRC covers the header's bytes as they are on disk (flags
        // included), so it is checked over those bytes, never over a header
        // rebuilt from the parsed fields.
        let mut head = [0u8; LOG_RECORD_HEADER];
        self.pread(pos, 0, &mut head)?;
        let (rec, crc) = parse_head(&head, self.max_msg).ok_or_else(|| {
            LogError::Corrupt(format!("record at log position {pos} has a bad header"))
        })?;
        payload.resize(rec.len as usize, 0);
        self.pread(pos, LOG_RECORD_HEADER as u64, payload)?;
        if record_crc(&head, payload) != crc {
            return Err(LogError::Corrupt(format!(
                "record at log position {pos} (seq {}) fails its checksum",
                rec.seq
            )));
        }
        Ok(rec)
    }

    /// Position of the first record with a sequence number at or above `seq`,
    /// below `end`; `None` if there is none.
    pub(crate) fn find(&mut self, seq: u64, end: u64) -> Result<Option<u64>, LogError> {
        self.refresh()?;
        let Some(i) = self
            .segs
            .iter()
            .rposition(|&(_, fs)| fs <= seq)
            .or_else(|| {
                // Everything retained is newer than `seq`: the first record.
                (!self.segs.is_empty()).then_some(0)
            })
        else {
            return Ok(None);
        };
        let (base, _) = self.segs[i];
        let seg_end = self.segs.get(i + 1).map_or(end, |s| s.0).min(end);
        let mut pos = base;
        if let Ok(bytes) = std::fs::read(idx_path(&self.dir, base)) {
            for e in bytes.chunks_exact(16) {
                let es = u64::from_ne_bytes(e[..8].try_into().unwrap_or_default());
                let ep = u64::from_ne_bytes(e[8..].try_into().unwrap_or_default());
                if es > seq || ep >= seg_end || ep < pos {
                    break;
                }
                pos = ep;
            }
        }
        let mut cur = pos;
        loop {
            if cur >= end {
                return Ok(None);
            }
            let (rec, _) = self.read_head(cur)?;
            if rec.seq >= seq {
                return Ok(Some(cur));
            }
            cur += rec.size;
        }
    }
}

struct Active {
    base: u64,
    file: File,
    idx: File,
    /// Log position past the last record written to this segment.
    end: u64,
    /// Position of the last index entry.
    last_index: u64,
}

/// Appends to the log. One process at a time holds the spill lock and uses
/// its own writer; a writer re-synchronises with the published `log_end` at
/// the start of every round, since another process may have written since.
pub(crate) struct LogWriter {
    dir: PathBuf,
    nonce: u64,
    max_msg: u32,
    opts: SpillOptions,
    active: Option<Active>,
    last_sync: Instant,
    /// Data written since the last fsync.
    unsynced: bool,
    /// End of the log at the last resync (where a first segment starts).
    log_end: u64,
}

impl LogWriter {
    pub(crate) fn new(opts: &SpillOptions, nonce: u64, max_msg: u32) -> Self {
        LogWriter {
            dir: opts.dir.clone(),
            nonce,
            max_msg,
            opts: opts.clone(),
            active: None,
            last_sync: Instant::now(),
            unsynced: false,
            log_end: 0,
        }
    }

    /// Brings this writer in line with the published end of the log: drops
    /// segments and bytes past `log_end` (a round that never published them).
    /// With `verify`, also checks the CRC of every record after the last index
    /// entry of the last segment and cuts the log at the first that fails.
    /// Returns the end of the log (`log_end` unless verification cut it
    /// shorter) and the sequence number after its last record (`None` for an
    /// empty log), read from the log itself.
    pub(crate) fn resync(
        &mut self,
        log_end: u64,
        verify: bool,
    ) -> Result<(u64, Option<u64>), LogError> {
        self.active = None;
        self.log_end = log_end;
        let bases = list_segments(&self.dir)?;
        // Segments started by a round that died before publishing anything in them.
        for &b in bases.iter().filter(|&&b| b >= log_end) {
            remove_segment(&self.dir, b)?;
        }
        let Some(&base) = bases.iter().rev().find(|&&b| b < log_end) else {
            return Ok((log_end, None));
        };
        let file = open_rw(&seg_path(&self.dir, base), false)?;
        let first_seq = read_seg_header(&file, base, self.nonce)?;
        let idx = open_rw(&idx_path(&self.dir, base), true)?;
        // Index entries below log_end stay; later (or torn) ones go.
        let mut entries = vec![0u8; (idx.metadata()?.len() / 16 * 16) as usize];
        idx.read_exact_at(&mut entries, 0)?;
        let mut keep = 0;
        let (mut from, mut from_seq) = (base, first_seq);
        for e in entries.chunks_exact(16) {
            let es = u64::from_ne_bytes(e[..8].try_into().unwrap_or_default());
            let ep = u64::from_ne_bytes(e[8..].try_into().unwrap_or_default());
            if ep >= log_end || ep < from {
                break;
            }
            keep += 16;
            (from, from_seq) = (ep, es);
        }
        // Walk (and with `verify`, check) the records from there to log_end.
        let mut reader = LogReader::new(&self.dir, self.nonce, self.max_msg);
        reader.segs = vec![(base, first_seq)];
        reader.open = Some((base, file.try_clone()?));
        let (mut pos, mut next_seq) = (from, from_seq);
        let mut payload = Vec::new();
        while pos < log_end {
            let rec = if verify {
                reader.read(pos, &mut payload)
            } else {
                reader.read_head(pos).map(|(r, _)| r)
            };
            match rec {
                Ok(r) if pos.saturating_add(r.size) <= log_end => {
                    pos += r.size;
                    next_seq = r.seq.saturating_add(1);
                }
                Ok(_) | Err(LogError::Corrupt(_)) if verify => break,
                Ok(_) => {
                    return Err(LogError::Corrupt(format!(
                        "record at log position {pos} crosses the published end {log_end}"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        let end = pos;
        file.set_len(SEG_HEADER + (end - base))?;
        idx.set_len(keep)?;
        self.active = Some(Active {
            base,
            file,
            idx,
            end,
            last_index: from,
        });
        Ok((end, (end > base).then_some(next_seq)))
    }

    /// Appends encoded records (`buf`, holding records whose sequence numbers
    /// and sizes are `recs`) at the end of the log. Returns the log position
    /// of each record. Nothing is published here: the caller does that once
    /// this returns, after [`LogWriter::sync_policy`].
    pub(crate) fn append(&mut self, buf: &[u8], recs: &[(u64, u64)]) -> Result<Vec<u64>, LogError> {
        let mut positions = Vec::with_capacity(recs.len());
        let mut off = 0usize; // into buf
        let mut chunk_start = 0usize;
        let mut i = 0;
        while i < recs.len() {
            let (seq, size) = recs[i];
            let need_new = match &self.active {
                None => true,
                Some(a) => {
                    let used = a.end - a.base + (off - chunk_start) as u64;
                    used > 0 && used + size > self.opts.segment_size
                }
            };
            if need_new {
                self.write_chunk(&buf[chunk_start..off])?;
                chunk_start = off;
                self.roll(seq)?;
            }
            let a = self
                .active
                .as_mut()
                .ok_or_else(|| LogError::Corrupt("no segment".into()))?;
            let pos = a.end + (off - chunk_start) as u64;
            if pos == a.base || pos >= a.last_index + INDEX_EVERY {
                let mut e = [0u8; 16];
                e[..8].copy_from_slice(&seq.to_ne_bytes());
                e[8..].copy_from_slice(&pos.to_ne_bytes());
                a.idx.write_all(&e)?;
                a.last_index = pos;
            }
            positions.push(pos);
            off += size as usize;
            i += 1;
        }
        self.write_chunk(&buf[chunk_start..off])?;
        Ok(positions)
    }

    fn write_chunk(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let a = self
            .active
            .as_mut()
            .ok_or_else(|| LogError::Corrupt("no segment".into()))?;
        a.file.write_all_at(bytes, SEG_HEADER + (a.end - a.base))?;
        a.end += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Closes the active segment (syncing it under `Segment` and `Always`) and
    /// starts a new one whose first record will be `first_seq`.
    fn roll(&mut self, first_seq: u64) -> Result<(), LogError> {
        let base = match self.active.take() {
            Some(a) => {
                if matches!(self.opts.fsync, Fsync::Segment | Fsync::Always) {
                    a.file.sync_data()?;
                    a.idx.sync_data()?;
                }
                a.end
            }
            None => self.log_end,
        };
        let path = seg_path(&self.dir, base);
        // A leftover of the same name is from a round that died unpublished.
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(idx_path(&self.dir, base));
        // Written under a temporary name and renamed, so that a reader never
        // lists a segment whose header is incomplete.
        let tmp = self.dir.join(format!("{base:020}.seg.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        // On a full disk the header may not fit: no empty temporary file is
        // left behind (each failed round would add one).
        if let Err(e) = file
            .write_all_at(&seg_header(self.nonce, base, first_seq), 0)
            .and_then(|()| std::fs::rename(&tmp, &path))
        {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        let idx = open_rw(&idx_path(&self.dir, base), true)?;
        if self.opts.fsync != Fsync::Never {
            sync_dir(&self.dir)?;
        }
        self.active = Some(Active {
            base,
            file,
            idx,
            end: base,
            last_index: base,
        });
        Ok(())
    }

    /// Log position of the segment this writer is appending to.
    pub(crate) fn active_base(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.base)
    }

    /// End of the log as this writer has written it.
    pub(crate) fn end(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.end)
    }

    /// Forces data to disk as the policy asks, at the end of a round.
    pub(crate) fn sync_policy(&mut self) -> Result<(), LogError> {
        let due = match self.opts.fsync {
            Fsync::Always => true,
            Fsync::Interval(d) => self.last_sync.elapsed() >= d,
            Fsync::Never | Fsync::Segment => false,
        };
        if due && self.unsynced {
            if let Some(a) = &self.active {
                a.file.sync_data()?;
            }
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Deletes whole segments that nobody needs and that the retention
    /// policy does not keep, oldest first. Needed: every record at or past
    /// log position `keep_from` (groups and ack entries on the log) and every
    /// record of sequence number `keep_seq` or later (groups on the ring that
    /// have not read them: they may yet have to move onto the log). Kept:
    /// the newest `retain_bytes` of log, at least, and every segment written
    /// to less than `retain_time` ago. The segment being written goes too
    /// once all of it may (a full disk gets its space back; the next round
    /// starts a new one at `log_end`). Without `retain`, the retention
    /// policy keeps nothing (the disk is full). Returns (position, first
    /// seq) of the oldest segment left, or (`log_end`, `end_seq`) when none
    /// is, after handing the same to `publish` before the first segment
    /// goes.
    pub(crate) fn retire(
        &mut self,
        keep_from: u64,
        keep_seq: u64,
        log_end: u64,
        end_seq: u64,
        retain: bool,
        publish: impl FnOnce(u64, u64),
    ) -> Result<Option<(u64, u64)>, LogError> {
        let bases = list_segments(&self.dir)?;
        let now = SystemTime::now();
        let mut first = 0;
        for (i, &base) in bases.iter().enumerate() {
            // Where the segment ends, and the sequence number after its last
            // record (the next segment's first, or the log's end).
            let (end, next_seq) = match bases.get(i + 1) {
                Some(&next) => {
                    let f = File::open(seg_path(&self.dir, next))?;
                    (next, read_seg_header(&f, next, self.nonce)?)
                }
                None => (log_end, end_seq),
            };
            let written = self
                .active
                .as_ref()
                .is_none_or(|a| a.base != base || a.end == log_end);
            if end > keep_from || next_seq > keep_seq || !written {
                break;
            }
            if retain && self.opts.retain_bytes > 0 && log_end - end < self.opts.retain_bytes {
                break;
            }
            if let Some(t) = self.opts.retain_time.filter(|_| retain) {
                let young = std::fs::metadata(seg_path(&self.dir, base))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_none_or(|age| age < t);
                if young {
                    break;
                }
            }
            first += 1;
        }
        let new_first = match bases.get(first) {
            Some(&base) => {
                let f = File::open(seg_path(&self.dir, base))?;
                Some((base, read_seg_header(&f, base, self.nonce)?))
            }
            None => (!bases.is_empty()).then_some((log_end, end_seq)),
        };
        // The start is published before any segment goes: a reader that
        // finds a segment missing then finds the start past it.
        if let Some((pos, seq)) = new_first {
            publish(pos, seq);
        }
        for &base in &bases[..first] {
            if self.active.as_ref().is_some_and(|a| a.base == base) {
                self.active = None;
                self.log_end = log_end;
            }
            remove_segment(&self.dir, base)?;
        }
        Ok(new_first)
    }
}

fn remove_segment(dir: &Path, base: u64) -> io::Result<()> {
    for p in [idx_path(dir, base), seg_path(dir, base)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, seg: u64) -> SpillOptions {
        SpillOptions {
            segment_size: seg,
            ..SpillOptions::new(dir)
        }
    }

    fn batch(seqs: std::ops::Range<u64>) -> (Vec<u8>, Vec<(u64, u64)>) {
        let mut buf = Vec::new();
        let mut recs = Vec::new();
        for s in seqs {
            let payload = vec![s as u8; (s % 50) as usize];
            encode_record(&mut buf, s, 1000 + s, KIND_MSG, &payload);
            recs.push((s, log_record_size(payload.len() as u64)));
        }
        (buf, recs)
    }

    #[test]
    fn write_read_find_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::new(&opts(dir.path(), 1000), 7, 100);
        assert_eq!(w.resync(0, false).unwrap(), (0, None));
        let (buf, recs) = batch(10..200);
        let pos = w.append(&buf, &recs).unwrap();
        let end = w.end().unwrap();
        assert!(list_segments(dir.path()).unwrap().len() > 5);
        let mut r = LogReader::new(dir.path(), 7, 100);
        let mut p = Vec::new();
        for (i, s) in (10..200u64).enumerate() {
            let rec = r.read(pos[i], &mut p).unwrap();
            assert_eq!(
                (rec.seq, rec.ts_ns, p.len()),
                (s, 1000 + s, (s % 50) as usize)
            );
            assert_eq!(r.find(s, end).unwrap(), Some(pos[i]));
        }
        assert_eq!(r.find(5, end).unwrap(), Some(pos[0]));
        assert_eq!(r.find(500, end).unwrap(), None);
        // Another queue's reader refuses the log.
        let mut other = LogReader::new(dir.path(), 8, 100);
        assert!(matches!(other.refresh(), Err(LogError::Corrupt(_))));
    }

    #[test]
    fn read_ahead_matches_read_across_segments_windows_and_large_records() {
        let dir = tempfile::tempdir().unwrap();
        let max = 3 * READ_AHEAD as u32;
        let mut w = LogWriter::new(&opts(dir.path(), 256 << 10), 7, max);
        w.resync(0, false).unwrap();
        // Small records with a few larger than a window among them, over
        // several segments.
        let (mut buf, mut recs) = (Vec::new(), Vec::new());
        for s in 0..3000u64 {
            let len = if s % 700 == 3 {
                2 * READ_AHEAD as usize + 5
            } else {
                (s % 90) as usize
            };
            // Every other record carries flags (a named producer's
            // extension), which the CRC covers as they are on disk: both
            // read paths must check it over them.
            let flags = if s % 2 == 1 {
                crate::protocol::layout::FLAG_PRODUCER
            } else {
                0
            };
            let len = len
                + if flags != 0 {
                    crate::protocol::layout::PRODUCER_EXT
                } else {
                    0
                };
            encode_record_with(&mut buf, s, s, KIND_MSG, flags, len, |d| d.fill(s as u8));
            recs.push((s, log_record_size(len as u64)));
        }
        let pos = w.append(&buf, &recs).unwrap();
        let end = w.end().unwrap();
        assert!(list_segments(dir.path()).unwrap().len() > 3);
        let mut r = LogReader::new(dir.path(), 7, max);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut at = 0;
        for (i, &p) in pos.iter().enumerate() {
            assert_eq!(at, p);
            let ra = r.read_ahead(at, end, &mut a).unwrap();
            let rb = LogReader::new(dir.path(), 7, max).read(at, &mut b).unwrap();
            assert_eq!((ra.seq, ra.size, &a), (i as u64, rb.size, &b));
            at += ra.size;
        }
        assert_eq!(at, end);
        // A damaged payload is caught through the window too.
        let f = open_rw(&seg_path(dir.path(), 0), false).unwrap();
        f.write_all_at(&[0xee], SEG_HEADER + pos[1] + LOG_RECORD_HEADER as u64)
            .unwrap();
        let mut r = LogReader::new(dir.path(), 7, max);
        r.read_ahead(pos[0], end, &mut a).unwrap();
        assert!(matches!(
            r.read_ahead(pos[1], end, &mut a),
            Err(LogError::Corrupt(_))
        ));
    }

    #[test]
    fn resync_truncates_unpublished_and_torn_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::new(&opts(dir.path(), 1 << 20), 7, 100);
        w.resync(0, false).unwrap();
        let (buf, recs) = batch(0..20);
        let pos = w.append(&buf, &recs).unwrap();
        let published = pos[10];
        // Unpublished bytes past log_end are dropped.
        let mut w2 = LogWriter::new(&opts(dir.path(), 1 << 20), 7, 100);
        assert_eq!(w2.resync(published, false).unwrap(), (published, Some(10)));
        let len = std::fs::metadata(seg_path(dir.path(), 0)).unwrap().len();
        assert_eq!(len, SEG_HEADER + published);
        // A damaged record before log_end is cut by verification.
        let f = open_rw(&seg_path(dir.path(), 0), false).unwrap();
        f.write_all_at(&[0xff], SEG_HEADER + pos[7] + 32).unwrap();
        let mut w3 = LogWriter::new(&opts(dir.path(), 1 << 20), 7, 100);
        assert_eq!(w3.resync(published, true).unwrap(), (pos[7], Some(7)));
        // Appending continues from there.
        let (buf, recs) = batch(7..9);
        assert_eq!(w3.append(&buf, &recs).unwrap()[0], pos[7]);
    }

    #[test]
    fn retire_keeps_what_is_needed_and_retained() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::new(&opts(dir.path(), 500), 7, 100);
        w.resync(0, false).unwrap();
        let (buf, recs) = batch(0..100);
        let pos = w.append(&buf, &recs).unwrap();
        let end = w.end().unwrap();
        let before = list_segments(dir.path()).unwrap();
        let (first, first_seq) = w
            .retire(pos[50], u64::MAX, end, 100, true, |_, _| {})
            .unwrap()
            .unwrap();
        assert!(first <= pos[50] && first_seq <= 50);
        let after = list_segments(dir.path()).unwrap();
        assert!(after.len() < before.len());
        let mut r = LogReader::new(dir.path(), 7, 100);
        assert!(r.read(pos[50], &mut Vec::new()).is_ok());
        assert!(matches!(
            r.read(pos[0], &mut Vec::new()),
            Err(LogError::Missing(_))
        ));
        // With retain_bytes the rest stays.
        let mut w2 = LogWriter::new(
            &SpillOptions {
                retain_bytes: 1 << 20,
                ..opts(dir.path(), 500)
            },
            7,
            100,
        );
        w2.resync(end, false).unwrap();
        w2.retire(end, u64::MAX, end, 100, true, |_, _| {}).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), after);
    }

    /// A group on the ring keeps the records it has not read (issue 19,
    /// defect 5: a journal's retention deleted a lagging group's backlog).
    #[test]
    fn retire_keeps_what_a_ring_group_has_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::new(&opts(dir.path(), 500), 7, 100);
        w.resync(0, false).unwrap();
        let (buf, recs) = batch(0..100);
        let pos = w.append(&buf, &recs).unwrap();
        let end = w.end().unwrap();
        let (first, first_seq) = w
            .retire(end, 30, end, 100, true, |_, _| {})
            .unwrap()
            .unwrap();
        assert!(first <= pos[30] && first_seq <= 30, "{first} {first_seq}");
        assert!(first_seq > 0, "nothing was retired");
        assert!(LogReader::new(dir.path(), 7, 100)
            .read(pos[30], &mut Vec::new())
            .is_ok());
    }

    /// `retain_bytes` keeps at least that many bytes of the newest log
    /// (defect 7: it kept less).
    #[test]
    fn retire_keeps_at_least_the_bytes_retained() {
        for retain in [300, 500, 1000, 1500] {
            let dir = tempfile::tempdir().unwrap();
            let o = SpillOptions {
                retain_bytes: retain,
                ..opts(dir.path(), 500)
            };
            let mut w = LogWriter::new(&o, 7, 100);
            w.resync(0, false).unwrap();
            let (buf, recs) = batch(0..100);
            w.append(&buf, &recs).unwrap();
            let end = w.end().unwrap();
            let (first, _) = w
                .retire(end, u64::MAX, end, 100, true, |_, _| {})
                .unwrap()
                .unwrap();
            assert!(
                end - first >= retain,
                "retain {retain}: kept {}",
                end - first
            );
            // And no whole segment more than that.
            let segs = list_segments(dir.path()).unwrap();
            if let Some(&second) = segs.get(1) {
                assert!(
                    end - second < retain,
                    "retain {retain}: one segment too many"
                );
            }
        }
    }

    /// With nothing needed or retained, the segment being written goes too
    /// (defect 2: it stayed, and a full disk stayed full); the next append
    /// starts a new one where the log ended.
    #[test]
    fn retire_deletes_the_last_segment_once_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::new(&opts(dir.path(), 1 << 20), 7, 100);
        w.resync(0, false).unwrap();
        let (buf, recs) = batch(0..10);
        w.append(&buf, &recs).unwrap();
        let end = w.end().unwrap();
        assert_eq!(
            w.retire(end, 10, end, 10, true, |_, _| {}).unwrap(),
            Some((end, 10))
        );
        assert!(list_segments(dir.path()).unwrap().is_empty());
        let (buf, recs) = batch(10..12);
        assert_eq!(w.append(&buf, &recs).unwrap()[0], end);
        assert_eq!(list_segments(dir.path()).unwrap(), [end]);
        let mut r = LogReader::new(dir.path(), 7, 100);
        assert_eq!(r.read(end, &mut Vec::new()).unwrap().seq, 10);
    }
}
