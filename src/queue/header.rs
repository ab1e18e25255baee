//! The queue file's header: written at creation, parsed and checked at open.

use crate::error::OpenError;
use crate::protocol::layout::*;
use crate::spill::log::{Fsync, SpillOptions};
use std::io;

use std::path::{Path, PathBuf};

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> OpenError {
    let what = what.into();
    move |source| OpenError::Io { what, source }
}

pub(super) fn random_u64() -> u64 {
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
pub(super) fn header_bytes(geo: &Geometry, nonce: u64, spill: Option<&SpillOptions>) -> Vec<u8> {
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
pub(super) struct Parsed {
    pub(super) geo: Geometry,
    pub(super) nonce: u64,
    pub(super) spill: Option<SpillOptions>,
}

/// Parses and checks a header read from `path`.
pub(super) fn parse_header(path: &Path, h: &[u8], file_len: u64) -> Result<Parsed, OpenError> {
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

pub(super) fn bad_geometry(s: impl Into<String>) -> OpenError {
    OpenError::BadGeometry(crate::error::Reason::new(s))
}

pub(super) fn incompatible(s: impl Into<String>) -> OpenError {
    OpenError::Incompatible(crate::error::Reason::new(s))
}

/// A queue owned by another user is opened only if its mode shares it: read
/// and write for group or for others.
pub(super) fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), OpenError> {
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

/// Smallest spill segment.
pub(super) const MIN_SEGMENT: u64 = 4096;
