//! Transactional messages (RocketMQ's half messages): a named producer
//! sends messages that no group sees, prepares them durably, and commits
//! them (all visible at once, with consecutive sequence numbers, in the
//! order sent) or aborts them (none ever visible).
//!
//! # States
//! - *Open*: [`Transaction`], in the producer's memory only. A producer
//!   that dies with one open rolls it back, by dying.
//! - *Prepared*: [`Transaction::prepare`] wrote it to the staging directory
//!   as one file (`t-<producer id>-<txid>`, file.rs), flushed to the device,
//!   before it returns. It stays there whatever dies, until its producer
//!   (this one, or the next that attaches under the name:
//!   [`Producer::pending_transactions`]) or a person (`shmq txn commit|abort`,
//!   which attaches under the name) resolves it.
//! - *Committed*: published as one batch (all or nothing for every group,
//!   consecutive sequence numbers) through the producer's own identity, so
//!   exactly once (publish.rs): the file is marked with the pseq it is
//!   published from, and a producer that dies in between leaves the mark for
//!   its successor's attach to settle: published (the file goes) or not (it
//!   is prepared again, and the successor is told of it).
//! - *Aborted*: the file is removed.
//!
//! A transaction committed without being prepared ([`Transaction::commit`])
//! is a plain atomic batch: no file, nothing to survive.

use super::dir::{self, Name};
use super::file::{encode, Staged, StagedMsg, KIND_TXN};
use super::publish::{self, Outcome};
use crate::error::{SendError, StagedError};
use crate::os::clock::now_ns;
use crate::protocol::claim;
use crate::sync::Ordering;
use crate::{Producer, Queue, SendOptions};

/// A transaction being built ([`Producer::begin`]): messages sent into it
/// are kept in this process until it is prepared or committed. Dropped
/// (or [rolled back](Transaction::rollback)), it publishes nothing.
#[must_use = "a transaction that is dropped publishes nothing"]
#[derive(Debug)]
pub struct Transaction<'p> {
    p: &'p mut Producer,
    id: u64,
    msgs: Vec<StagedMsg>,
    bytes: u64,
}

/// A prepared transaction ([`Transaction::prepare`]), held by its producer.
/// Dropped, it stays prepared: [`Producer::pending_transactions`] lists it.
#[must_use = "a prepared transaction stays pending until it is committed or aborted"]
#[derive(Debug)]
pub struct Prepared<'p> {
    p: &'p mut Producer,
    id: u64,
}

/// Where a staged transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnState {
    /// Prepared: waiting for a commit or an abort.
    Prepared,
    /// Its producer is publishing it (commit decided).
    Committing,
}

/// A transaction in the staging directory ([`Producer::pending_transactions`],
/// [`Queue::transactions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingTransaction {
    /// Its id.
    pub id: u64,
    /// The id of the producer name it belongs to.
    pub producer_id: u64,
    /// That name, if it still exists.
    pub producer: Option<String>,
    /// Messages in it.
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: u64,
    /// When it was prepared (ns since the Unix epoch).
    pub prepared_ns: u64,
    /// Prepared, or being committed.
    pub state: TxnState,
}

fn io_err(dir: &std::path::Path, what: &str) -> impl FnOnce(std::io::Error) -> StagedError {
    let what = format!("{}: {what}", dir.display());
    move |source| StagedError::Io { what, source }
}

impl Producer {
    /// Begins a transaction: messages sent into it are published together
    /// when it commits, or never. Only a named producer has transactions
    /// (its name is what a successor resolves them under).
    ///
    /// # Errors
    /// [`StagedError::NotNamed`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("ledger", shmq::StartAt::Latest)?;
    /// let mut ledger = q.consumer("ledger").attach()?;
    /// let mut p = q.producer().name("payments").attach()?;
    /// let mut tx = p.begin()?;
    /// tx.send(b"debit alice 10")?;
    /// tx.send(b"credit bob 10")?;
    /// assert_eq!(ledger.try_recv(), Err(shmq::RecvError::Empty)); // nothing visible
    /// // Prepared: flushed to disk, survives this process dying.
    /// let prepared = tx.prepare()?;
    /// // ... the application commits its own local work here ...
    /// let first = prepared.commit()?;
    /// assert_eq!(ledger.recv()?.seq, first);
    /// assert_eq!(ledger.recv()?.seq, first + 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn begin(&mut self) -> Result<Transaction<'_>, StagedError> {
        if self.id().is_none() {
            return Err(StagedError::NotNamed);
        }
        // Relaxed: ids need only be unique.
        let id = self
            .queue()
            .ring()
            .header()
            .stage_seq()
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        Ok(Transaction {
            p: self,
            id,
            msgs: Vec::new(),
            bytes: 0,
        })
    }

    /// The transactions prepared under this producer's name and not
    /// resolved yet, oldest first: a producer that attaches after its
    /// predecessor died finds there what that one prepared and did not
    /// commit or abort, and resolves each ([`Producer::commit_prepared`],
    /// [`Producer::abort_prepared`]), as RocketMQ's check-back asks the
    /// producer group. Empty for an anonymous producer.
    ///
    /// # Errors
    /// [`StagedError::Io`]; [`StagedError::Damaged`] for a file moved aside.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().name("payments").attach()?;
    /// let mut tx = p.begin()?;
    /// tx.send(b"debit alice 10")?;
    /// let id = tx.prepare()?.id(); // and the process dies here
    /// let pending = p.pending_transactions()?;
    /// assert_eq!((pending[0].id, pending[0].messages), (id, 1));
    /// p.abort_prepared(id)?;
    /// assert!(p.pending_transactions()?.is_empty());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn pending_transactions(&mut self) -> Result<Vec<PendingTransaction>, StagedError> {
        if self.id().is_none() {
            return Ok(Vec::new());
        }
        let (id, _) = self.settled_marks()?;
        Ok(transactions(self.queue(), Some(id))?
            .into_iter()
            .filter(|t| t.producer_id == id)
            .collect())
    }

    /// Commits prepared transaction `txid` of this producer's name: its
    /// messages are published as one batch, all at once for every group,
    /// with consecutive sequence numbers, in the order they were sent,
    /// exactly once (also if this process dies in the middle). Waits while
    /// the ring is full, as `send` does. Returns the first message's
    /// sequence number (the next one to be given, for an empty transaction).
    ///
    /// # Errors
    /// [`StagedError::UnknownTransaction`] (never prepared, or resolved
    /// already); [`StagedError::Io`] (it stays prepared),
    /// [`StagedError::Damaged`], [`StagedError::NotNamed`].
    pub fn commit_prepared(&mut self, txid: u64) -> Result<u64, StagedError> {
        let (id, next) = self.settled_marks()?;
        let q = self.queue().clone();
        let (dir, _) = q.staged_dir();
        let max_msg = q.geo().max_msg as usize;
        let base = dir::txn_name(id, txid);
        let mut send = |msgs: &[StagedMsg], pseq| self.send_staged(msgs, Some(pseq), true);
        let r = publish::publish_once(
            dir,
            &base,
            'c',
            next,
            (max_msg, q.geo().capacity),
            &mut send,
        );
        if r.is_err() {
            // Its mark may be left at our next pseq: settled before we
            // publish anything (`number`). (Not set before the publish:
            // `number`, inside it, would take our own mark off.)
            self.mark_left = true;
        }
        match r? {
            Outcome::Published(seq) => Ok(seq),
            Outcome::Gone => Err(StagedError::UnknownTransaction(txid)),
            Outcome::Refused(e) => Err(StagedError::Send(e)),
        }
    }

    /// Aborts prepared transaction `txid` of this producer's name: none of
    /// its messages is ever published.
    ///
    /// # Errors
    /// [`StagedError::UnknownTransaction`], [`StagedError::Io`],
    /// [`StagedError::NotNamed`].
    pub fn abort_prepared(&mut self, txid: u64) -> Result<(), StagedError> {
        let (id, _) = self.settled_marks()?;
        let q = self.queue().clone();
        let (dir, _) = q.staged_dir();
        match std::fs::remove_file(dir.join(dir::txn_name(id, txid))) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StagedError::UnknownTransaction(txid))
            }
            Err(e) => Err(io_err(dir, "cannot abort a transaction")(e)),
        }
    }

    /// This named producer's id and next pseq, with any commit mark of its
    /// name settled (publish.rs): left only if a publish failed and its
    /// mark could not be taken off.
    fn settled_marks(&mut self) -> Result<(u64, u64), StagedError> {
        let (Some(id), Some(next)) = (self.id(), self.next_pseq()) else {
            return Err(StagedError::NotNamed);
        };
        self.settle_commit_marks().map_err(io_err(
            self.queue().staged_dir().0,
            "cannot settle transactions",
        ))?;
        Ok((id, next))
    }
}

impl<'p> Transaction<'p> {
    /// Its id, unique in the queue.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Messages in it.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Adds `msg` to the transaction.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] (in [`StagedError::Send`]) if it is longer
    /// than the queue's maximum, or if the transaction would no longer fit
    /// in one claim ([`Producer::max_batch_bytes`]): it is published as one.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), StagedError> {
        self.send_with(msg, &SendOptions::new())
    }

    /// Adds `msg` with `opts` (a key, a TTL counted from the commit).
    ///
    /// # Errors
    /// As for [`Transaction::send`], and [`SendError::KeyTooLong`].
    pub fn send_with(&mut self, msg: &[u8], opts: &SendOptions) -> Result<(), StagedError> {
        let m = StagedMsg::new(msg, opts);
        m.check(self.p.queue().geo().max_msg as usize)?;
        let bytes = self.bytes + self.p.staged_size(&m);
        let max = claim::max_batch(self.p.queue().ring());
        if bytes > max {
            return Err(StagedError::Send(SendError::TooLarge {
                len: bytes as usize,
                max: max as usize,
            }));
        }
        self.bytes = bytes;
        self.msgs.push(m);
        Ok(())
    }

    /// Prepares the transaction: writes it to the staging directory and
    /// flushes it to the device before returning. From here on it survives
    /// this process dying, and is resolved by [`Prepared::commit`] or
    /// [`Prepared::abort`], or later by a producer under the same name.
    ///
    /// # Errors
    /// [`StagedError::Io`]: nothing was prepared.
    pub fn prepare(self) -> Result<Prepared<'p>, StagedError> {
        let id = self.p.id().unwrap_or(0);
        let q = self.p.queue();
        let staged = Staged {
            kind: KIND_TXN,
            id: self.id,
            due_or_producer: id,
            made_ns: now_ns(),
            msgs: self.msgs,
        };
        let (dir, mode) = q.staged_dir();
        dir::write_new(
            dir,
            &dir::txn_name(id, self.id),
            &encode(&staged),
            mode,
            true,
        )
        .map_err(io_err(dir, "cannot prepare a transaction"))?;
        crate::spill::rounds::crash_point("txn-prepared");
        Ok(Prepared {
            p: self.p,
            id: self.id,
        })
    }

    /// Commits the transaction without preparing it: its messages are
    /// published as one batch (all at once for every group, consecutive
    /// sequence numbers, in order), waiting while the ring is full. Nothing
    /// of it survives this process dying before the publish; prepare it
    /// first for that. Returns the first sequence number (the next one to
    /// be given, for an empty transaction).
    ///
    /// # Errors
    /// [`StagedError::Send`].
    pub fn commit(self) -> Result<u64, StagedError> {
        Ok(self.p.send_staged(&self.msgs, None, true)?)
    }

    /// Drops the transaction: nothing of it is published.
    pub fn rollback(self) {}
}

impl Prepared<'_> {
    /// The transaction's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Commits it ([`Producer::commit_prepared`]).
    ///
    /// # Errors
    /// As for [`Producer::commit_prepared`].
    pub fn commit(self) -> Result<u64, StagedError> {
        self.p.commit_prepared(self.id)
    }

    /// Aborts it ([`Producer::abort_prepared`]).
    ///
    /// # Errors
    /// As for [`Producer::abort_prepared`].
    pub fn abort(self) -> Result<(), StagedError> {
        self.p.abort_prepared(self.id)
    }
}

/// The staged transactions of `q` (of producer id `only`, if given).
fn transactions(q: &Queue, only: Option<u64>) -> Result<Vec<PendingTransaction>, StagedError> {
    let (dir, _) = q.staged_dir();
    let max_msg = q.geo().max_msg as usize;
    let mut out = Vec::new();
    for (name, parsed) in dir::list(dir).map_err(io_err(dir, "cannot list"))? {
        let Name::Txn {
            producer,
            txid,
            committing,
        } = parsed
        else {
            continue;
        };
        if only.is_some_and(|o| o != producer) {
            continue;
        }
        let s = match dir::read(dir, &name, max_msg, q.geo().capacity) {
            Ok(s) => s,
            Err(dir::ReadError::Gone) => continue,
            Err(dir::ReadError::Io(e)) => return Err(io_err(dir, "cannot read")(e)),
            Err(dir::ReadError::Damaged(reason)) => {
                dir::quarantine(dir, &name);
                return Err(StagedError::Damaged {
                    file: dir.join(name),
                    reason,
                });
            }
        };
        out.push(PendingTransaction {
            id: txid,
            producer_id: producer,
            producer: q.producer_name(producer),
            messages: s.msgs.len(),
            bytes: s.msgs.iter().map(|m| m.payload.len() as u64).sum(),
            prepared_ns: s.made_ns,
            state: if committing.is_some() {
                TxnState::Committing
            } else {
                TxnState::Prepared
            },
        });
    }
    out.sort_by_key(|t| t.id);
    Ok(out)
}

impl Queue {
    /// Every transaction prepared in the queue and not resolved yet, of
    /// every producer name, oldest first (`shmq txn list`).
    ///
    /// # Errors
    /// [`StagedError::Io`]; [`StagedError::Damaged`] for a file moved aside.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().name("payments").attach()?;
    /// let mut tx = p.begin()?;
    /// tx.send(b"debit alice 10")?;
    /// let prepared = tx.prepare()?;
    /// let all = q.transactions()?;
    /// assert_eq!(all[0].producer.as_deref(), Some("payments"));
    /// prepared.abort()?;
    /// assert!(q.transactions()?.is_empty());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn transactions(&self) -> Result<Vec<PendingTransaction>, StagedError> {
        transactions(self, None)
    }
}
