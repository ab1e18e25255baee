//! A queue's spill directory: prepared at creation, claimed at open (the
//! owner file names the queue it belongs to), opened for this process.

use super::header::*;
use crate::error::OpenError;
use crate::protocol::layout::*;
use crate::spill::log::{list_segments, SpillOptions};
use crate::spill::rounds::Spill;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// This process's spill machinery for a queue with a spill log.
pub(super) fn open_spill(
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

/// Checks spill options and prepares the directory: created (mode 0700) if
/// missing, made absolute, and holding no other queue's log (with `replace`,
/// an old log is deleted).
pub(super) fn prepare_spill(sp: &SpillOptions, replace: bool) -> Result<SpillOptions, OpenError> {
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

/// The file in a spill directory naming the queue it belongs to: its nonce
/// and its path, one line.
pub(super) const SPILL_OWNER: &str = "owner";

/// The queue named by the owner file of spill directory `dir`, as `(nonce,
/// path)`.
pub(super) fn read_spill_owner(dir: &Path) -> Option<(u64, PathBuf)> {
    let text = std::fs::read_to_string(dir.join(SPILL_OWNER)).ok()?;
    let (nonce, path) = text.trim_end_matches('\n').split_once(' ')?;
    Some((u64::from_str_radix(nonce, 16).ok()?, PathBuf::from(path)))
}

/// Whether the owner of spill directory `dir` is a queue that still exists
/// (its file is there with the nonce the owner file names); its path if so.
/// A directory whose queue is gone, or that has no owner file, is free.
pub(super) fn live_spill_owner(dir: &Path) -> Option<String> {
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
pub(super) fn write_spill_owner(dir: &Path, nonce: u64, path: &Path) -> Result<(), OpenError> {
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
pub(super) fn claim_spill_dir(dir: &Path, nonce: u64, path: &Path) -> Result<(), OpenError> {
    match read_spill_owner(dir) {
        Some((n, _)) if n == nonce => Ok(()),
        Some((_, other)) => Err(OpenError::SpillDirInUse {
            dir: dir.to_owned(),
            owner: other.display().to_string(),
        }),
        None => write_spill_owner(dir, nonce, path),
    }
}
