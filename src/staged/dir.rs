//! A queue's staging directory: listing, writing and reading staged files
//! (file.rs gives their names and format).

use super::file::{decode, Staged, KIND_SCHEDULED, KIND_TXN};
use crate::error::Reason;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// What a staged file's name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    /// A scheduled message; `releasing`: claimed as the releaser's pseq.
    Scheduled {
        due_ns: u64,
        id: u64,
        releasing: Option<u64>,
    },
    /// A prepared transaction; `committing`: its commit was decided, to be
    /// published from that pseq of its producer.
    Txn {
        producer: u64,
        txid: u64,
        committing: Option<u64>,
    },
}

/// The name of scheduled message `id`, due at `due_ns`.
pub(crate) fn scheduled_name(due_ns: u64, id: u64) -> String {
    format!("d-{due_ns:020}-{id:020}")
}

/// The name of transaction `txid` of producer `producer`, prepared.
pub(crate) fn txn_name(producer: u64, txid: u64) -> String {
    format!("t-{producer:016x}-{txid:020}")
}

/// The prefix of every staged file of producer `producer`'s transactions.
pub(crate) fn txn_prefix(producer: u64) -> String {
    format!("t-{producer:016x}-")
}

/// The prefix of every scheduled message's file.
pub(crate) const SCHEDULED_PREFIX: &str = "d-";

/// `base` (a name above) marked with `pseq`: `.r` (release) or `.c` (commit).
pub(crate) fn marked(base: &str, mark: char, pseq: u64) -> String {
    format!("{base}.{mark}{pseq}")
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a staged file's name; `None` for anything else (temporary,
/// damaged, foreign files).
pub(crate) fn parse_name(n: &str) -> Option<Name> {
    let (base, mark) = match n.split_once('.') {
        Some((b, m)) => (b, Some(m)),
        None => (n, None),
    };
    // Canonical numbers only (no sign, no leading zero), so that a name
    // reads back as the one `marked` makes.
    let mark_of = |c: char| -> Option<Option<u64>> {
        match mark {
            None => Some(None),
            Some(m) => {
                let digits = m.strip_prefix(c)?;
                let p: u64 = digits.parse().ok()?;
                (p.to_string() == digits).then_some(Some(p))
            }
        }
    };
    if let Some(rest) = base.strip_prefix("d-") {
        let (due, id) = rest.split_once('-')?;
        if due.len() != 20 || id.len() != 20 || !all_digits(due) || !all_digits(id) {
            return None;
        }
        return Some(Name::Scheduled {
            // 0 is "none" in the header's hint: never a due time.
            due_ns: due.parse().ok().filter(|&d| d > 0)?,
            id: id.parse().ok()?,
            releasing: mark_of('r')?,
        });
    }
    let rest = base.strip_prefix("t-")?;
    let (producer, txid) = rest.split_once('-')?;
    if producer.len() != 16 || txid.len() != 20 || !all_digits(txid) {
        return None;
    }
    if !producer.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Name::Txn {
        producer: u64::from_str_radix(producer, 16).ok()?,
        txid: txid.parse().ok()?,
        committing: mark_of('c')?,
    })
}

/// The staged files in `dir` with their parsed names, sorted by name
/// (scheduled messages by due time, then schedule order). A missing
/// directory holds none.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(String, Name)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let Ok(n) = e?.file_name().into_string() else {
            continue;
        };
        if let Some(p) = parse_name(&n) {
            out.push((n, p));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Files refused as damaged (`….bad`) in `dir`.
pub(crate) fn damaged(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".bad"))
        .collect();
    out.sort();
    out
}

/// Writes `bytes` as `dir/name`, whole or not at all: under a temporary
/// name, then renamed. Creates `dir` (mode `dir_mode`) if missing. `sync`:
/// flushed to the device (file and directory) before this returns.
pub(crate) fn write_new(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    dir_mode: u32,
    sync: bool,
) -> io::Result<()> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(dir)?;
        // Exactly that mode, whatever the umask (the queue file's users
        // all need it); a directory another user made is left as it is.
        use std::os::unix::fs::PermissionsExt;
        for d in [Some(dir), dir.parent()].into_iter().flatten() {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(dir_mode));
        }
    }
    let tmp = dir.join(format!(".tmp-{}-{name}", std::process::id()));
    // A temporary file a killed writer left is ours to replace; a link
    // planted there is not followed.
    let _ = std::fs::remove_file(&tmp);
    let r = (|| {
        let mode = 0o600 | (dir_mode & 0o066);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        // Exactly that mode, whatever the umask: the queue's other users
        // release and resolve what this process staged.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(name))?;
        if sync {
            // Not flushed: not there either (the caller is told it failed).
            if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                let _ = std::fs::remove_file(dir.join(name));
                return Err(e);
            }
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Why a staged file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Not there (someone else published or removed it).
    Gone,
    Io(io::Error),
    Damaged(Reason),
}

/// Reads and checks `dir/name` for a queue of `max_msg` whose claims take
/// at most `max_bytes`: its content must be what its name says (kind, id,
/// due time or producer).
pub(crate) fn read(
    dir: &Path,
    name: &str,
    max_msg: usize,
    max_bytes: u64,
) -> Result<Staged, ReadError> {
    let path = dir.join(name);
    let io = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => ReadError::Gone,
        _ => ReadError::Io(e),
    };
    // A regular file only (no link followed, no FIFO waited on), bounded
    // before it is read: every message of it in one claim.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ReadError::Damaged(Reason::new("a symbolic link")),
            _ => io(e),
        })?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::Damaged(Reason::new("not a regular file")));
    }
    let limit = max_bytes.saturating_add(4096);
    if meta.len() > limit {
        return Err(ReadError::Damaged(Reason::new(format!(
            "{} bytes: more than a claim takes",
            meta.len()
        ))));
    }
    let mut b = Vec::new();
    use std::io::Read;
    f.take(limit + 1).read_to_end(&mut b).map_err(io)?;
    let s = decode(&b, max_msg).map_err(ReadError::Damaged)?;
    let base = name.split_once('.').map_or(name, |(b, _)| b);
    let fits = match parse_name(base) {
        Some(Name::Scheduled { due_ns, id, .. }) => {
            s.kind == KIND_SCHEDULED
                && s.id == id
                && s.due_or_producer == due_ns
                && s.msgs.len() == 1
        }
        Some(Name::Txn { producer, txid, .. }) => {
            s.kind == KIND_TXN && s.id == txid && s.due_or_producer == producer
        }
        None => false,
    };
    if !fits {
        return Err(ReadError::Damaged(Reason::new(
            "its content is not what its name says",
        )));
    }
    Ok(s)
}

/// Moves a damaged file aside (`….bad`), out of every listing but
/// `damaged`.
/// Whether it was.
pub(crate) fn quarantine(dir: &Path, name: &str) -> bool {
    std::fs::rename(dir.join(name), dir.join(format!("{name}.bad"))).is_ok()
}

/// Removes `dir/name`; a file already gone is fine.
pub(crate) fn remove(dir: &Path, name: &str) -> io::Result<()> {
    match std::fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Renames `dir/from` to `dir/to`; `Ok(false)` if `from` is gone.
pub(crate) fn rename(dir: &Path, from: &str, to: &str) -> io::Result<bool> {
    match std::fs::rename(dir.join(from), dir.join(to)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_whose_content_is_not_what_its_name_says_is_refused() {
        use crate::staged::file::{encode, StagedMsg};
        let d = std::env::temp_dir().join(format!("shmq-dir-test-{}", std::process::id()));
        let s = Staged {
            kind: KIND_SCHEDULED,
            id: 4,
            due_or_producer: 10,
            made_ns: 0,
            msgs: vec![StagedMsg::default()],
        };
        write_new(&d, &scheduled_name(10, 4), &encode(&s), 0o700, false).unwrap();
        assert!(read(&d, &scheduled_name(10, 4), 100, 1 << 20).is_ok());
        // The same bytes under another due time, id, or kind of name.
        for name in [
            scheduled_name(11, 4),
            scheduled_name(10, 5),
            txn_name(10, 4),
        ] {
            write_new(&d, &name, &encode(&s), 0o700, false).unwrap();
            assert!(
                matches!(read(&d, &name, 100, 1 << 20), Err(ReadError::Damaged(_))),
                "{name}"
            );
        }
        // Larger than a claim takes: refused before it is read.
        assert!(read(&d, &scheduled_name(10, 4), 100, 0).is_ok());
        let big = vec![0u8; 8192];
        write_new(&d, &scheduled_name(12, 6), &big, 0o700, false).unwrap();
        assert!(matches!(
            read(&d, &scheduled_name(12, 6), 100, 1024),
            Err(ReadError::Damaged(_))
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn names_read_back_and_sort_by_due_time() {
        let a = scheduled_name(5, 9);
        let b = scheduled_name(40, 1);
        assert!(a < b);
        assert_eq!(
            parse_name(&marked(&a, 'r', 12)),
            Some(Name::Scheduled {
                due_ns: 5,
                id: 9,
                releasing: Some(12)
            })
        );
        let t = txn_name(0xab, 3);
        assert_eq!(
            parse_name(&t),
            Some(Name::Txn {
                producer: 0xab,
                txid: 3,
                committing: None
            })
        );
        assert_eq!(parse_name(&marked(&t, 'r', 1)), None);
        assert_eq!(parse_name(&format!("{t}.bad")), None);
        assert_eq!(parse_name(".tmp-1-d-x"), None);
        assert_eq!(parse_name("d-1-2"), None);
        // Only the canonical forms: no sign, no leading zero, no due 0.
        assert_eq!(parse_name(&format!("{a}.r05")), None);
        assert_eq!(parse_name(&format!("{a}.r+5")), None);
        assert_eq!(parse_name(&scheduled_name(0, 1)), None);
        assert_eq!(parse_name(&format!("d-+{:019}-{:020}", 1, 1)), None);
    }
}
