//! Publishing a staged file exactly once.
//!
//! A staged file is published by a named identity (the queue's releaser
//! for scheduled messages, schedule.rs; the transaction's own producer,
//! txn.rs), one publisher at a time per identity, which the producer name
//! guarantees (identity.rs). Its messages go out in one claim, all or
//! nothing (a batch), numbered from the identity's next pseq `P`:
//!
//! 1. rename `base` to `base.<mark>P`: the file now says which pseq it
//!    is published as;
//! 2. publish its messages as pseqs `P..P+n`;
//! 3. remove the file.
//!
//! If the publisher dies anywhere in there, whoever attaches under the
//! name next finds the identity's `next` settled (identity.rs: a batch
//! counts whole or not at all) and the file still marked `P`. Since only
//! this file was ever published as `P`, `P < next` means step 2 happened:
//! the file is removed; otherwise nothing was published and the mark is
//! taken off again (`settle`). Both happen before the new publisher
//! publishes anything under the name, so a pseq of a mark never goes to
//! another message. A publish that fails (the ring full, a `try` form) takes
//! the mark off as well.

use super::dir::{self, Name};
use super::file::StagedMsg;
use crate::error::{SendError, StagedError};
use std::io;
use std::path::Path;

/// The marked pseq of a staged file, and its name without the mark.
fn mark_of(n: &Name) -> Option<u64> {
    match *n {
        Name::Scheduled { releasing, .. } => releasing,
        Name::Txn { committing, .. } => committing,
    }
}

/// Settles the marks of the files in `dir` whose names start with
/// `prefix`, left by a publisher under the same identity that is gone
/// (its successor's `next` is settled): a mark below `next` was published
/// (the file goes), any other was not (the mark goes).
pub(crate) fn settle(dir: &Path, prefix: &str, mark: char, next: u64) -> io::Result<()> {
    for (name, parsed) in dir::list(dir)? {
        let Some(p) = mark_of(&parsed).filter(|_| name.starts_with(prefix)) else {
            continue;
        };
        let base = name.split_once('.').map_or(name.as_str(), |(b, _)| b);
        if name != dir::marked(base, mark, p) {
            continue; // not a mark this code makes (`.r05`): left alone
        }
        if p < next {
            dir::remove(dir, &name)?;
        } else {
            dir::rename(dir, &name, base)?;
        }
    }
    Ok(())
}

/// Publishes messages as pseqs from the one given, in one claim.
pub(crate) type Publish<'a> = dyn FnMut(&[StagedMsg], u64) -> Result<u64, SendError> + 'a;

/// What became of a staged file.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Published; the first message's sequence number.
    Published(u64),
    /// Not there any more.
    Gone,
    /// Not published: the publish failed (the file is as it was).
    Refused(SendError),
}

/// Publishes staged file `base` in `dir` (not marked), exactly once, as
/// pseqs from `next` of the calling identity, through `publish(msgs,
/// pseq)`; checked for a queue of `max_msg` whose claims take at most
/// `max_bytes`. A damaged file is moved aside (`….bad`) and reported. An
/// error after the mark leaves the mark only if taking it off failed too.
pub(crate) fn publish_once(
    dir: &Path,
    base: &str,
    mark: char,
    next: u64,
    (max_msg, max_bytes): (usize, u64),
    publish: &mut Publish<'_>,
) -> Result<Outcome, StagedError> {
    let io = |what: String| move |source| StagedError::Io { what, source };
    let marked = dir::marked(base, mark, next);
    if !dir::rename(dir, base, &marked)
        .map_err(io(format!("{}: cannot mark {base}", dir.display())))?
    {
        return Ok(Outcome::Gone);
    }
    crate::spill::rounds::crash_point("staged-marked");
    let unmark = || dir::rename(dir, &marked, base);
    let staged = match dir::read(dir, &marked, max_msg, max_bytes) {
        Ok(s) => s,
        Err(dir::ReadError::Gone) => return Ok(Outcome::Gone),
        Err(dir::ReadError::Io(e)) => {
            unmark().map_err(io(format!("{}: cannot unmark {base}", dir.display())))?;
            return Err(StagedError::Io {
                what: format!("{}: cannot read {base}", dir.display()),
                source: e,
            });
        }
        Err(dir::ReadError::Damaged(reason)) => {
            // Left where it is if this fails: read again, refused again.
            let _ = dir::quarantine(dir, &marked);
            return Err(StagedError::Damaged {
                file: dir.join(marked),
                reason,
            });
        }
    };
    match publish(&staged.msgs, next) {
        Ok(seq) => {
            crate::spill::rounds::crash_point("staged-published");
            // Left behind, the marked file is removed by the next `settle`
            // (its mark is below `next` now).
            let _ = dir::remove(dir, &marked);
            Ok(Outcome::Published(seq))
        }
        Err(e) => {
            unmark().map_err(io(format!("{}: cannot unmark {base}", dir.display())))?;
            Ok(Outcome::Refused(e))
        }
    }
}
