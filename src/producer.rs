//! Producers: copying send, zero-copy claim, batch send; named producers
//! with per-producer sequence numbers (identity.rs).

use crate::error::{ProducerError, SendError, SpillError};
use crate::os::clock::now_ns;
use crate::os::liveness;
use crate::protocol::claim::{Claim, ProducerCursor};
use crate::protocol::layout::*;
use crate::protocol::wait::{Sleeper, WaitStrategy};
use crate::protocol::{claim, identity, registry, spill};
use crate::queue::{validate_name, Queue};
use crate::send_options::SendOptions;
use crate::spill::rounds::crash_point;
use crate::sync::Ordering;
use std::time::{Duration, Instant};

/// How long a producer waits on a full ring before checking for dead members
/// whose hazards may be what holds it back.
const REAP_EVERY: Duration = Duration::from_millis(100);

/// How to attach a producer ([`Queue::producer`]).
#[derive(Debug)]
#[must_use = "a producer builder does nothing until `attach`"]
pub struct ProducerBuilder<'q> {
    q: &'q Queue,
    name: Option<&'q str>,
    wait: WaitStrategy,
}

impl<'q> ProducerBuilder<'q> {
    pub(crate) fn new(q: &'q Queue) -> Self {
        ProducerBuilder {
            q,
            name: None,
            wait: WaitStrategy::default(),
        }
    }

    /// Publishes under `name` (1 to 64 of `A-Z a-z 0-9 . _ -`), created in the
    /// queue's table of names the first time. Its messages carry its id and a
    /// per-producer sequence number (pseq; [`Message::producer`](crate::Message)),
    /// and it refuses to publish a pseq already committed under the name
    /// ([`Producer::send_as`]), so a producer that restarts after a crash and
    /// retries its last messages publishes each exactly once.
    /// [`Producer::last_pseq`] says where the name's last producer stopped,
    /// even if it died in the middle of a publish: a message it committed
    /// counts, one it did not does not (identity.rs). One producer at a time
    /// per name.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// p.send_as(7, b"line 7")?;
    /// drop(p);
    /// // After a restart: what was committed under the name is not published again.
    /// let mut p = q.producer().name("ingest").attach()?;
    /// assert_eq!(p.last_pseq(), Some(7));
    /// assert!(matches!(p.send_as(7, b"line 7"), Err(shmq::SendError::Duplicate { .. })));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn name(mut self, name: &'q str) -> Self {
        self.name = Some(name);
        self
    }

    /// How the producer waits while the ring is full. Default
    /// [`WaitStrategy::Block`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let p = q.producer().wait_strategy(shmq::WaitStrategy::Spin).attach()?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn wait_strategy(mut self, w: WaitStrategy) -> Self {
        self.wait = w;
        self
    }

    /// Registers the producer in the queue's producer registry (so that a
    /// claim it leaves uncommitted if its process dies is aborted, not left
    /// to block the queue), and, if named, attaches it to its name.
    ///
    /// # Errors
    /// [`ProducerError::RegistryFull`] if every registry slot belongs to a
    /// live producer; for a named producer [`ProducerError::NameInUse`] if a
    /// live producer holds the name, [`ProducerError::Unsettled`] if its dead
    /// predecessor's last publish cannot be settled yet (try again),
    /// [`ProducerError::InvalidName`], [`ProducerError::NamesFull`];
    /// [`ProducerError::Io`] if the admin lock cannot be taken.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let _p = q.producer().name("ingest").attach()?;
    /// assert!(matches!(
    ///     q.producer().name("ingest").attach(),
    ///     Err(shmq::ProducerError::NameInUse { .. })
    /// ));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn attach(self) -> Result<Producer, ProducerError> {
        let mut p = self.q.attach_producer(self.name)?;
        p.wait = self.wait;
        Ok(p)
    }
}

/// Publishes messages. Any number of producers, in any processes and threads,
/// publish concurrently without locks. A producer is `Send` (move it to a
/// thread); give each thread its own.
pub struct Producer {
    q: Queue,
    pc: ProducerCursor,
    /// Its registry slot (also in `pc`): where it announces claims and sleeps.
    slot: usize,
    wait: WaitStrategy,
    /// The queue has a spill log.
    spill: bool,
    /// Tail position before which the spill pressure is not looked at again.
    next_spill_check: u64,
    /// Tail position before which an active spill front is not looked at again.
    next_front_check: u64,
    /// A named producer's name, id and next pseq.
    named: Option<Named>,
    /// A transaction's commit mark was left on its file at this producer's
    /// next pseq (publish.rs): settled before anything is published.
    pub(crate) mark_left: bool,
}

/// What a named producer keeps in its own memory.
struct Named {
    name: String,
    /// The id its messages carry (identity.rs).
    id: u64,
    /// The lowest pseq it may publish (the last one committed + 1), which
    /// only it advances.
    next: u64,
}

/// With a spill log, how long a producer facing a full ring waits before it
/// tries a spill round again.
const SPILL_RETRY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy)]
enum Mode {
    Try,
    Until(Option<Instant>),
}

impl Producer {
    pub(crate) fn new(q: Queue, slot: usize) -> Self {
        let mut pc = claim::producer_cursor(q.ring());
        pc.set_slot(slot);
        let spill = q.spill().is_some();
        Producer {
            q,
            pc,
            slot,
            wait: WaitStrategy::default(),
            spill,
            next_spill_check: 0,
            next_front_check: 0,
            named: None,
            mark_left: false,
        }
    }

    /// A producer attached under `name` (identity slot `ident`, whose
    /// messages carry `id`), whose next pseq is at least `next`.
    pub(crate) fn new_named(
        q: Queue,
        slot: usize,
        name: &str,
        ident: usize,
        id: u64,
        next: u64,
    ) -> Self {
        let mut p = Producer::new(q, slot);
        p.pc.set_identity(ident, next);
        p.named = Some(Named {
            name: name.to_owned(),
            id,
            next,
        });
        p
    }

    /// The queue it publishes to.
    pub(crate) fn queue(&self) -> &Queue {
        &self.q
    }

    /// The name this producer publishes under, if it is a named one.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// assert_eq!(q.producer().name("ingest").attach()?.name(), Some("ingest"));
    /// assert_eq!(q.producer().attach()?.name(), None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.named.as_ref().map(|n| n.name.as_str())
    }

    /// A named producer's id, which its messages carry
    /// ([`ProducerTag::id`](crate::ProducerTag::id), [`Queue::producer_name`]).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// let id = p.id().unwrap();
    /// p.send(b"x")?;
    /// // Its messages carry the id, and the queue names it.
    /// assert_eq!(audit.recv()?.producer.map(|t| t.id), Some(id));
    /// assert_eq!(q.producer_name(id).as_deref(), Some("ingest"));
    /// assert_eq!(q.producer().attach()?.id(), None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn id(&self) -> Option<u64> {
        self.named.as_ref().map(|n| n.id)
    }

    /// The last per-producer sequence number committed under this name (by
    /// this producer or an earlier one under the same name, including one
    /// that died), or `None` if nothing was. A producer resuming after a
    /// crash continues after it.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// assert_eq!(p.last_pseq(), None);
    /// p.send_batch(&[b"a", b"b"])?;
    /// assert_eq!(p.last_pseq(), Some(1));
    /// drop(p);
    /// // The name remembers it: a producer attaching under it continues there.
    /// assert_eq!(q.producer().name("ingest").attach()?.last_pseq(), Some(1));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn last_pseq(&self) -> Option<u64> {
        self.named.as_ref().and_then(|n| n.next.checked_sub(1))
    }

    /// The pseq the next message gets from `send`, `try_send`, `send_batch`
    /// and `claim_send` (which number messages one after another).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// assert_eq!(p.next_pseq(), Some(0));
    /// p.send_as(10, b"line 10")?;
    /// assert_eq!(p.next_pseq(), Some(11));
    /// assert_eq!(q.producer().attach()?.next_pseq(), None);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn next_pseq(&self) -> Option<u64> {
        self.named.as_ref().map(|n| n.next)
    }

    /// The pseqs for `n` messages starting at `explicit` (or the next one):
    /// refused if any was committed already, set up for the claim otherwise.
    /// Returns the first message's producer extension, `(id, pseq)`; `None`
    /// for an anonymous producer.
    fn number(&mut self, explicit: Option<u64>, n: u64) -> Result<Option<(u64, u64)>, SendError> {
        // `new_named` sets both.
        let (Some(named), Some(i)) = (&self.named, self.pc.ident) else {
            return match explicit {
                Some(_) => Err(SendError::NotNamed),
                None => Ok(None),
            };
        };
        let (id, next) = (named.id, named.next);
        if self.mark_left {
            self.settle_commit_marks()
                .map_err(|_| SendError::MarkUnsettled)?;
        }
        let first = explicit.unwrap_or(next);
        if first < next {
            identity::note_duplicate(self.q.ring(), i);
            return Err(SendError::Duplicate {
                pseq: first,
                last: next - 1,
            });
        }
        // `next` is stored as last + 1 and must not wrap.
        if first.checked_add(n).is_none() {
            return Err(SendError::PseqOutOfRange(first));
        }
        self.pc.pseq = first;
        Ok(Some((id, first)))
    }

    /// Settles the commit marks on this named producer's transactions
    /// (staged/publish.rs) at its next pseq: what its predecessor (or a
    /// failed commit of its own, `mark_left`) left. Before anything is
    /// published under the name: a mark left at pseq `next` would
    /// otherwise read as published later. Nothing for an anonymous one.
    #[cold]
    pub(crate) fn settle_commit_marks(&mut self) -> std::io::Result<()> {
        if let (Some(id), Some(next)) = (self.id(), self.next_pseq()) {
            let prefix = crate::staged::dir::txn_prefix(id);
            crate::staged::publish::settle(self.q.staged_dir().0, &prefix, 'c', next)?;
        }
        self.mark_left = false;
        Ok(())
    }

    /// Commits a claim's records (see `claim::commit_claim`); a named
    /// producer's `next` moves past them.
    // Inlined into the send path: see `group::try_take` (group.rs).
    #[inline(always)]
    fn commit(&mut self, claim: &Claim, records: impl Iterator<Item = (u64, u64, u64)>) {
        let ring = self.q.ring();
        if claim.ident.is_some() {
            crash_point("producer-written");
        }
        let (first, published) = claim::commit_rest(ring, claim, records);
        if published > 1 {
            crash_point("producer-batch-rest-committed");
        }
        claim::commit_first(ring, first);
        if let Some((_, next)) = claim.ident {
            crash_point("producer-committed");
            claim::publish_identity(ring, claim, published);
            if published > 0 {
                if let Some(n) = &mut self.named {
                    n.next = next;
                }
            }
            crash_point("producer-published");
        }
        claim::finish_claim(ring, claim);
        self.q.after_stale_wake();
    }

    fn check_len(&self, len: usize) -> Result<(), SendError> {
        let max = self.q.geo().max_msg as usize;
        if len > max {
            return Err(SendError::TooLarge { len, max });
        }
        Ok(())
    }

    /// With a spill log: once less than half the ring is free, run a spill
    /// round (if no one else is), so that a lagging group moves to disk before
    /// the ring fills. Looked at again only every eighth of a ring.
    ///
    /// While a group is on the log (FRONT active) a round also runs every
    /// eighth of a ring regardless: the producer that runs a round carries its
    /// write, so keeping the log close behind the tail keeps each round, and
    /// the stall it means for this producer's messages, short.
    fn spill_pressure(&mut self) {
        let eighth = self.q.geo().capacity / 8;
        let pos = self.pc.tail_guess();
        let ring = self.q.ring();
        if self.pc.headroom() >= 4 * eighth {
            if pos < self.next_front_check {
                return;
            }
            self.next_front_check = pos.wrapping_add(eighth);
            if !spill::spilling(ring) {
                return;
            }
        } else if pos < self.next_spill_check {
            return;
        } else {
            claim::rescan(ring, &mut self.pc);
            if self.pc.headroom() >= 4 * eighth && !spill::spilling(ring) {
                return;
            }
        }
        self.next_spill_check = pos.wrapping_add(eighth);
        self.next_front_check = pos.wrapping_add(eighth);
        // An error is recorded in the header (stat shows it); the claim below
        // meets a full ring only if the disk keeps failing.
        let _ = self.q.spill_round(false);
        claim::rescan(ring, &mut self.pc);
    }

    fn claim(
        &mut self,
        count: u64,
        mode: Mode,
        end_of: impl Fn(u64) -> u64,
    ) -> Result<Claim, SendError> {
        if self.spill {
            self.spill_pressure();
        }
        let ring = self.q.ring();
        if let Ok(c) = claim::try_claim(ring, &mut self.pc, count, &end_of) {
            return Ok(c);
        }
        // Full: rounds may make room at once. They wait for a round in
        // progress only without a deadline: a spiller stopped (SIGSTOP) or
        // stuck in I/O holds the lock as long as it likes, and a timed send
        // must keep its timeout; the wait below retries the lock every
        // SPILL_RETRY.
        let pc = &mut self.pc;
        let rounds = self.q.rounds_until(matches!(mode, Mode::Until(None)), || {
            claim::try_claim(ring, pc, count, &end_of).ok()
        });
        if let Some(c) = rounds.got {
            return Ok(c);
        }
        let (round_blocked, mut spill_err) = (rounds.blocked, rounds.error);
        // Why is it full? Counted apart, since only one is a consumer's doing.
        let need_end = end_of(ring.tail_now().1);
        let counter = if round_blocked || spill::full_behind_operation(ring, need_end) {
            ring.header().stall_waits()
        } else {
            ring.header().full_waits()
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let deadline = match mode {
            Mode::Try => return Err(spill_err.map_or(SendError::Full, SendError::Spill)),
            Mode::Until(d) => d,
        };
        loop {
            let every = if self.spill { SPILL_RETRY } else { REAP_EVERY };
            // The slice starts when the wait first looks at the clock.
            let slice = || {
                let s = Instant::now() + every;
                Some(deadline.map_or(s, |d| d.min(s)))
            };
            let pc = &mut self.pc;
            let got = ring.wait_for(
                Sleeper::Producer { slot: self.slot },
                self.wait,
                slice,
                || claim::try_claim(ring, pc, count, &end_of).ok(),
            );
            if let Some(c) = got {
                return Ok(c);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(spill_err.map_or(SendError::Timeout, SendError::Spill));
            }
            // A member that died holding a hazard pins the ring, and so does
            // a producer that died holding a claim: free them.
            self.q.reap_dead_members();
            self.q.recover_dead_producers();
            if self.spill {
                match self.q.spill_round(false) {
                    Ok(_) => spill_err = None,
                    Err(e) => spill_err = Some(SpillError::from(e)),
                }
            }
        }
    }

    fn send_mode(
        &mut self,
        msg: &[u8],
        pseq: Option<u64>,
        opts: &SendOptions,
        mode: Mode,
    ) -> Result<u64, SendError> {
        if let Some(k) = opts.key.filter(|k| k.len() > MAX_KEY) {
            return Err(SendError::KeyTooLong {
                len: k.len(),
                max: MAX_KEY,
            });
        }
        // The key block counts against `max_msg` with the payload.
        self.check_len(msg.len() + opts.key_bytes())?;
        let ext = self.number(pseq, 1)?;
        self.send_record(msg, ext, opts, mode)
    }

    /// Publishes one record: `msg` with the producer extension `ext`, if
    /// given, and what `opts` adds.
    fn send_record(
        &mut self,
        msg: &[u8],
        ext: Option<(u64, u64)>,
        opts: &SendOptions,
        mode: Mode,
    ) -> Result<u64, SendError> {
        let flags = opts.flags() & !FLAG_KEY;
        let all_flags = flags | if ext.is_some() { FLAG_PRODUCER } else { 0 };
        let len = stored_len(msg.len() + opts.key_bytes(), all_flags);
        let geo = self.q.geo();
        let claim = self.claim(1, mode, |p| {
            geo.place(p, len).wrapping_add(record_size(len))
        })?;
        let ring = self.q.ring();
        let rec = claim::place(ring, claim.start, len);
        if let Some(ttl) = opts.ttl_ns {
            ring.write_ttl(rec, all_flags, ttl);
        }
        // SAFETY: `rec` is the single record of our claim, placed for exactly
        // the stored length of `msg` with its extensions and key block.
        unsafe { ring.write_keyed_record(rec, claim.seq, now_ns(), ext, flags, opts.key, msg) };
        self.commit(&claim, std::iter::once((rec, len, KIND_MSG)));
        Ok(claim.seq)
    }

    /// Publishes `msg`, waiting while the ring is full. Returns its sequence
    /// number. A named producer gives it the next pseq.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if `msg` is longer than the queue's maximum.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().max_msg(100).in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let mut p = q.producer().attach()?;
    /// assert_eq!(p.send(b"first")?, 0);
    /// assert_eq!(p.send(b"second")?, 1);
    /// assert!(matches!(p.send(&[0; 101]), Err(shmq::SendError::TooLarge { len: 101, max: 100 })));
    /// assert_eq!(audit.recv()?.payload, b"first");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.send_mode(msg, None, &SendOptions::new(), Mode::Until(None))
    }

    /// A named producer publishes `msg` as per-producer sequence number
    /// `pseq`, waiting while the ring is full, unless a message with that
    /// pseq or a later one was committed under its name already: then it is
    /// refused as a duplicate. Pseqs must increase from one message to the
    /// next (gaps are allowed), so a producer that numbers its work (an input
    /// offset, a request id) and retries after a crash publishes each item
    /// exactly once. Returns the queue sequence number.
    ///
    /// # Errors
    /// [`SendError::Duplicate`] if `pseq` is not above [`Producer::last_pseq`];
    /// [`SendError::NotNamed`] for an anonymous producer;
    /// [`SendError::PseqOutOfRange`] for `u64::MAX`; [`SendError::TooLarge`].
    ///
    /// ```
    /// use shmq::SendError;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// p.send_as(5, b"offset 5")?;
    /// p.send_as(9, b"offset 9")?; // gaps are allowed
    /// // A retry of what was committed already is refused, and so is going back.
    /// let retry = p.send_as(9, b"offset 9");
    /// assert!(matches!(retry, Err(SendError::Duplicate { pseq: 9, last: 9 })));
    /// assert!(matches!(p.send_as(7, b"offset 7"), Err(SendError::Duplicate { .. })));
    /// assert_eq!(q.producer().attach()?.send_as(0, b"x"), Err(SendError::NotNamed));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn send_as(&mut self, pseq: u64, msg: &[u8]) -> Result<u64, SendError> {
        self.send_mode(msg, Some(pseq), &SendOptions::new(), Mode::Until(None))
    }

    /// [`Producer::send_as`], waiting at most `timeout` for space.
    ///
    /// # Errors
    /// As for [`Producer::send_as`], and [`SendError::Timeout`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// q.add_group("slow", shmq::StartAt::Latest)?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// let mut pseq = 0;
    /// while p.try_send_as(pseq, b"x").is_ok() {
    ///     pseq += 1;
    /// }
    /// // Nobody reads group "slow": no room comes.
    /// let r = p.send_as_timeout(pseq, b"x", Duration::from_millis(1));
    /// assert_eq!(r, Err(shmq::SendError::Timeout));
    /// assert_eq!(p.next_pseq(), Some(pseq)); // nothing published, nothing used up
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn send_as_timeout(
        &mut self,
        pseq: u64,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<u64, SendError> {
        self.send_mode(
            msg,
            Some(pseq),
            &SendOptions::new(),
            Mode::Until(Some(Instant::now() + timeout)),
        )
    }

    /// [`Producer::send_as`] only if there is room now.
    ///
    /// # Errors
    /// As for [`Producer::send_as`], and [`SendError::Full`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// q.add_group("slow", shmq::StartAt::Latest)?;
    /// let mut p = q.producer().name("ingest").attach()?;
    /// let mut pseq = 0;
    /// while p.try_send_as(pseq, b"x").is_ok() {
    ///     pseq += 1;
    /// }
    /// assert_eq!(p.try_send_as(pseq, b"x"), Err(shmq::SendError::Full));
    /// // The pseq refused for want of room is still free: retried once there is room.
    /// assert_eq!(p.last_pseq(), Some(pseq - 1));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_send_as(&mut self, pseq: u64, msg: &[u8]) -> Result<u64, SendError> {
        self.send_mode(msg, Some(pseq), &SendOptions::new(), Mode::Try)
    }

    /// Publishes `msg`, waiting at most `timeout` for space.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], or [`SendError::Timeout`] if the ring stayed full.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// q.add_group("slow", shmq::StartAt::Latest)?;
    /// let mut p = q.producer().attach()?;
    /// assert_eq!(p.send_timeout(b"x", Duration::from_millis(10))?, 0);
    /// while p.try_send(b"x").is_ok() {}
    /// // Nobody reads group "slow": the ring stays full.
    /// let r = p.send_timeout(b"x", Duration::from_millis(1));
    /// assert_eq!(r, Err(shmq::SendError::Timeout));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, SendError> {
        self.send_mode(
            msg,
            None,
            &SendOptions::new(),
            Mode::Until(Some(Instant::now() + timeout)),
        )
    }

    /// Publishes `msg` only if there is room now.
    ///
    /// # Errors
    /// [`SendError::TooLarge`], or [`SendError::Full`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// q.add_group("slow", shmq::StartAt::Latest)?;
    /// let mut slow = q.consumer("slow").attach()?;
    /// let mut p = q.producer().attach()?;
    /// let mut sent = 0;
    /// while p.try_send(b"x").is_ok() {
    ///     sent += 1;
    /// }
    /// assert_eq!(p.try_send(b"x"), Err(shmq::SendError::Full));
    /// // Reading makes room again.
    /// assert_eq!(slow.try_iter().count(), sent);
    /// assert_eq!(p.try_send(b"x")?, sent as u64);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_send(&mut self, msg: &[u8]) -> Result<u64, SendError> {
        self.send_mode(msg, None, &SendOptions::new(), Mode::Try)
    }

    /// [`Producer::send`] with options: a time to live, a key
    /// ([`SendOptions`]).
    /// A named producer gives the message the next pseq.
    ///
    /// # Errors
    /// As for [`Producer::send`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let mut p = q.producer().attach()?;
    /// // Gone unless taken within a millisecond.
    /// p.send_with(b"quote", &shmq::SendOptions::new().ttl(Duration::from_millis(1)))?;
    /// std::thread::sleep(Duration::from_millis(5));
    /// assert_eq!(audit.try_recv(), Err(shmq::RecvError::Empty));
    /// assert_eq!(q.stat().groups[0].ttl_expired, 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn send_with(&mut self, msg: &[u8], opts: &SendOptions) -> Result<u64, SendError> {
        self.send_mode(msg, None, opts, Mode::Until(None))
    }

    /// [`Producer::send_with`], waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As for [`Producer::send_timeout`].
    pub fn send_with_timeout(
        &mut self,
        msg: &[u8],
        opts: &SendOptions,
        timeout: Duration,
    ) -> Result<u64, SendError> {
        let until = Mode::Until(Some(Instant::now() + timeout));
        self.send_mode(msg, None, opts, until)
    }

    /// [`Producer::send_with`] only if there is room now.
    ///
    /// # Errors
    /// As for [`Producer::try_send`].
    pub fn try_send_with(&mut self, msg: &[u8], opts: &SendOptions) -> Result<u64, SendError> {
        self.send_mode(msg, None, opts, Mode::Try)
    }

    /// The most bytes of records ([`Geometry::record_bytes`](crate::Geometry)
    /// of each message) one [`Producer::send_batch`] may take: half the ring,
    /// and at most the ring less the room producers keep for dead letters
    /// once the queue has a dead-letter group (which only a small ring
    /// notices).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// assert_eq!(p.max_batch_bytes(), 2048);
    /// assert!(p.send_batch(&[&[0; 512], &[0; 512], &[0; 512], &[0; 512]]).is_err());
    /// // With a dead-letter group, room is kept for dead letters: in a ring
    /// // this small, that leaves less for a batch.
    /// q.add_dead_letter_group("failed")?;
    /// assert!(p.max_batch_bytes() < 2048);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_batch_bytes(&self) -> u64 {
        claim::max_batch(self.q.ring())
    }

    /// Publishes `msgs` with one claim: consecutive sequence numbers, one
    /// atomic operation on the tail, one wake-up. All or nothing: no group
    /// sees any of them before all are committed, and if this process is
    /// killed in the middle, none is ever delivered. Returns the first
    /// sequence number. Waits as long as the ring is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if a message exceeds the maximum or the batch
    /// exceeds what one claim may take ([`Producer::max_batch_bytes`]).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// assert_eq!(p.send_batch(&[b"a", b"b"])?, 0);
    /// assert_eq!(p.send(b"c")?, 2);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<u64, SendError> {
        self.send_batch_mode(msgs, Mode::Until(None))
    }

    /// [`Producer::send_batch`] only if there is room now.
    ///
    /// # Errors
    /// As for [`Producer::send_batch`], and [`SendError::Full`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(4096).in_memory()?;
    /// q.add_group("slow", shmq::StartAt::Latest)?;
    /// let mut p = q.producer().attach()?;
    /// // Nobody reads group "slow": the ring fills up.
    /// while p.try_send(b"x").is_ok() {}
    /// assert_eq!(p.try_send_batch(&[b"y"]), Err(shmq::SendError::Full));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<u64, SendError> {
        self.send_batch_mode(msgs, Mode::Try)
    }

    /// [`Producer::send_batch`], waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As for [`Producer::send_batch`], and [`SendError::Timeout`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// p.send_batch_timeout(&[b"a", b"b"], Duration::from_millis(10))?;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn send_batch_timeout(
        &mut self,
        msgs: &[&[u8]],
        timeout: Duration,
    ) -> Result<u64, SendError> {
        self.send_batch_mode(msgs, Mode::Until(Some(Instant::now() + timeout)))
    }

    fn send_batch_mode(&mut self, msgs: &[&[u8]], mode: Mode) -> Result<u64, SendError> {
        for m in msgs {
            self.check_len(m.len())?;
        }
        let named = self.named.is_some();
        let total: u64 = msgs
            .iter()
            .map(|m| record_size(stored_len(m.len(), producer_flags(named))))
            .sum();
        let max = claim::max_batch(self.q.ring());
        if total > max {
            return Err(SendError::TooLarge {
                len: total as usize,
                max: max as usize,
            });
        }
        if msgs.is_empty() {
            return Ok(self.q.ring().tail_now().0);
        }
        let first = self.number(None, msgs.len() as u64)?;
        let geo = self.q.geo();
        let layout = |mut p: u64| {
            for m in msgs {
                let len = stored_len(m.len(), producer_flags(named));
                p = geo.place(p, len).wrapping_add(record_size(len));
            }
            p
        };
        let claim = self.claim(msgs.len() as u64, mode, layout)?;
        let ring = self.q.ring();
        let ts = now_ns();
        let mut p = claim.start;
        let mut placed = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let len = stored_len(m.len(), producer_flags(named));
            let rec = claim::place(ring, p, len);
            let ext = first.map(|(id, pseq)| (id, pseq.wrapping_add(i as u64)));
            // SAFETY: `rec` is record i of our claim, placed for its stored
            // length.
            unsafe { ring.write_record_as(rec, claim.seq.wrapping_add(i as u64), ts, ext, 0, m) };
            placed.push((rec, len, KIND_MSG));
            p = rec.wrapping_add(record_size(len));
        }
        self.commit(&claim, placed.into_iter());
        Ok(claim.seq)
    }

    /// Ring bytes staged message `m` takes when this producer publishes it
    /// (record header, extensions, key block, payload, padding).
    pub(crate) fn staged_size(&self, m: &crate::staged::file::StagedMsg) -> u64 {
        let named = self.named.is_some();
        record_size(stored_len(m.body_len(), m.flags() | producer_flags(named)))
    }

    /// Publishes staged messages (a scheduled message, a transaction) in one
    /// claim: all or nothing for every group, with consecutive sequence
    /// numbers, in order. (`send_batch_mode` does the same for plain
    /// messages, kept apart so that `send_batch` pays nothing for keys and
    /// TTLs: one generic path for both was measurably slower.) A named producer numbers them from `pseq` (refused
    /// as a duplicate if it was committed already). `block`: wait while the
    /// ring is full, else fail with [`SendError::Full`]. Returns the first
    /// sequence number.
    pub(crate) fn send_staged(
        &mut self,
        msgs: &[crate::staged::file::StagedMsg],
        pseq: Option<u64>,
        block: bool,
    ) -> Result<u64, SendError> {
        let named = self.named.is_some();
        let mut total = 0u64;
        for m in msgs {
            m.check(self.q.geo().max_msg as usize)?;
            total += self.staged_size(m);
        }
        let max = claim::max_batch(self.q.ring());
        if total > max {
            return Err(SendError::TooLarge {
                len: total as usize,
                max: max as usize,
            });
        }
        if msgs.is_empty() {
            return Ok(self.q.ring().tail_now().0);
        }
        let first = self.number(pseq, msgs.len() as u64)?;
        let geo = self.q.geo();
        let layout = |mut p: u64| {
            for m in msgs {
                let len = stored_len(m.body_len(), m.flags() | producer_flags(named));
                p = geo.place(p, len).wrapping_add(record_size(len));
            }
            p
        };
        let mode = if block { Mode::Until(None) } else { Mode::Try };
        let claim = self.claim(msgs.len() as u64, mode, layout)?;
        let ring = self.q.ring();
        let ts = now_ns();
        let mut p = claim.start;
        let mut placed = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let all_flags = m.flags() | producer_flags(named);
            let len = stored_len(m.body_len(), all_flags);
            let rec = claim::place(ring, p, len);
            let ext = first.map(|(id, pseq)| (id, pseq.wrapping_add(i as u64)));
            if let Some(ttl) = m.ttl_ns {
                ring.write_ttl(rec, all_flags, ttl);
            }
            let flags = m.flags() & !FLAG_KEY;
            let seq = claim.seq.wrapping_add(i as u64);
            // SAFETY: `rec` is record i of our claim, placed for its stored
            // length (payload, extensions and key block).
            unsafe {
                ring.write_keyed_record(rec, seq, ts, ext, flags, m.key.as_deref(), &m.payload)
            };
            placed.push((rec, len, KIND_MSG));
            p = rec.wrapping_add(record_size(len));
        }
        self.commit(&claim, placed.into_iter());
        Ok(claim.seq)
    }

    /// Claims room for a `len`-byte message to be written in place (zero copy),
    /// waiting as long as the ring is full. Write through
    /// [`SendGuard::as_mut_slice`] and [`SendGuard::commit`]; dropping the
    /// guard uncommitted abandons the claim (consumers skip it; its sequence
    /// number goes unused).
    ///
    /// # Errors
    /// [`SendError::TooLarge`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// let mut slot = p.claim_send(5)?;
    /// slot.as_mut_slice().copy_from_slice(b"hello");
    /// assert_eq!(slot.commit(), 0);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    #[inline(always)]
    pub fn claim_send(&mut self, len: usize) -> Result<SendGuard<'_>, SendError> {
        self.claim_send_mode(len, Mode::Until(None))
    }

    /// [`Producer::claim_send`] only if there is room now.
    ///
    /// # Errors
    /// As for [`Producer::claim_send`], and [`SendError::Full`].
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// let slot = p.try_claim_send(5)?;
    /// drop(slot); // abandoned: consumers skip it
    /// # Ok::<(), shmq::Error>(())
    /// ```
    #[inline(always)]
    pub fn try_claim_send(&mut self, len: usize) -> Result<SendGuard<'_>, SendError> {
        self.claim_send_mode(len, Mode::Try)
    }

    /// [`Producer::claim_send`], waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As for [`Producer::claim_send`], and [`SendError::Timeout`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// let mut slot = p.claim_send_timeout(1, Duration::from_millis(10))?;
    /// slot.as_mut_slice()[0] = 7;
    /// slot.commit();
    /// # Ok::<(), shmq::Error>(())
    /// ```
    #[inline(always)]
    pub fn claim_send_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<SendGuard<'_>, SendError> {
        self.claim_send_mode(len, Mode::Until(Some(Instant::now() + timeout)))
    }

    // Inlined into the caller, which then builds the guard in place (returned
    // through memory, the guard made the zero-copy send slower than `send`).
    #[inline(always)]
    fn claim_send_mode(&mut self, len: usize, mode: Mode) -> Result<SendGuard<'_>, SendError> {
        self.check_len(len)?;
        let ext = self.number(None, 1)?;
        let l = stored_len(len, producer_flags(ext.is_some()));
        let geo = self.q.geo();
        let claim = self.claim(1, mode, |p| geo.place(p, l).wrapping_add(record_size(l)))?;
        let rec = claim::place(self.q.ring(), claim.start, l);
        if let Some((id, pseq)) = ext {
            // The header, with FLAG_PRODUCER, is written by `finish`.
            self.q.ring().write_ext(rec, id, pseq);
        }
        Ok(SendGuard {
            p: self,
            claim,
            rec,
            len,
            done: false,
        })
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("queue", &self.q.path())
            .field("slot", &self.slot)
            .field("name", &self.name())
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Room for one message in the ring, claimed and not yet published: write
/// the payload, then `commit` (dropped uncommitted, the claim is aborted and
/// nothing is published).
#[must_use = "a claim that is dropped without commit() publishes nothing"]
pub struct SendGuard<'a> {
    p: &'a mut Producer,
    claim: Claim,
    rec: u64,
    len: usize,
    done: bool,
}

impl std::fmt::Debug for SendGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGuard")
            .field("seq", &self.seq())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl SendGuard<'_> {
    /// The message's sequence number.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut p = q.producer().attach()?;
    /// p.send(b"before")?;
    /// let slot = p.claim_send(5)?;
    /// assert_eq!(slot.seq(), 1); // known before the message is published
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn seq(&self) -> u64 {
        self.claim.seq
    }

    /// The payload bytes, to fill in. Their initial content is unspecified.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let mut p = q.producer().attach()?;
    /// let mut slot = p.claim_send(8)?;
    /// // Written in the ring, in place.
    /// slot.as_mut_slice().copy_from_slice(&42u64.to_le_bytes());
    /// slot.commit();
    /// assert_eq!(audit.recv()?.payload, 42u64.to_le_bytes());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let ring = self.p.q.ring();
        let off = ring.ring_at(self.rec) + RECORD_HEADER + ext_len(self.flags());
        // SAFETY: these bytes lie inside our claim (placed for `len` bytes, never
        // across the ring's end), which no consumer reads before our commit and
        // no other producer overlaps: they are ours alone until `commit`. Any byte
        // value is a valid u8.
        unsafe { std::slice::from_raw_parts_mut(ring.region.ptr_at(off, self.len), self.len) }
    }

    /// The record's flags: a named producer's claim (one with an identity)
    /// starts with the producer extension.
    fn flags(&self) -> u32 {
        if self.claim.ident.is_some() {
            FLAG_PRODUCER
        } else {
            0
        }
    }

    /// Publishes the message; returns its sequence number.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("audit", shmq::StartAt::Latest)?;
    /// let mut audit = q.consumer("audit").attach()?;
    /// let mut p = q.producer().attach()?;
    /// drop(p.claim_send(3)?); // abandoned: seq 0 is skipped
    /// let mut slot = p.claim_send(3)?;
    /// slot.as_mut_slice().copy_from_slice(b"abc");
    /// assert_eq!(slot.commit(), 1);
    /// let m = audit.recv()?;
    /// assert_eq!((m.seq, &m.payload[..]), (1, &b"abc"[..]));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn commit(mut self) -> u64 {
        self.finish(KIND_MSG);
        self.claim.seq
    }

    fn finish(&mut self, kind: u64) {
        let flags = self.flags();
        let stored = (ext_len(flags) + self.len) as u64;
        let ring = self.p.q.ring();
        ring.write_header(self.rec, self.claim.seq, now_ns(), stored as u32, flags);
        let claim = self.claim;
        self.p
            .commit(&claim, std::iter::once((self.rec, stored, kind)));
        self.done = true;
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        registry::unregister_producer(self.q.ring(), self.slot);
    }
}

impl Drop for SendGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let ring = self.p.q.ring();
            ring.header().aborted().fetch_add(1, Ordering::Relaxed);
            if let (Some(_), Some(slot)) = (self.claim.ident, self.claim.slot) {
                // Its pseq stays unpublished even if we die before the intent
                // is cleared.
                registry::note_abandoned(ring, slot);
            }
            self.finish(KIND_ABORT);
        }
    }
}

/// Bytes a record stores after its header for a `len`-byte payload, with
/// the extensions `flags` announce.
#[inline]
fn stored_len(len: usize, flags: u32) -> u64 {
    (len + ext_len(flags)) as u64
}

/// The flags of a named (or anonymous) producer's plain message.
#[inline]
fn producer_flags(named: bool) -> u32 {
    if named {
        FLAG_PRODUCER
    } else {
        0
    }
}

/// Making producers.
impl Queue {
    /// A builder for a producer of this queue: anonymous unless
    /// [named](ProducerBuilder::name), waiting with
    /// [`WaitStrategy::Block`](crate::WaitStrategy) unless told otherwise.
    /// [`ProducerBuilder::attach`] registers it.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let mut anonymous = q.producer().attach()?;
    /// let mut named = q.producer().name("ingest").attach()?;
    /// assert_eq!(anonymous.send(b"a")?, 0);
    /// assert_eq!(named.send(b"b")?, 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn producer(&self) -> ProducerBuilder<'_> {
        ProducerBuilder::new(self)
    }

    /// Registers a producer in the queue's producer registry, so that a claim
    /// it leaves uncommitted if its process dies is aborted instead of
    /// blocking the queue (registry.rs). Registering frees the slots of dead
    /// producers first.
    pub(crate) fn attach_producer(&self, name: Option<&str>) -> Result<Producer, ProducerError> {
        match name {
            None => {
                let _g = self.admin(true).map_err(ProducerError::Io)?;
                Ok(Producer::new(self.clone(), self.register_producer()?))
            }
            Some(name) => self.named_producer(name),
        }
    }

    /// Recovers dead producers, then takes a registry slot for this process
    /// (admin lock held).
    fn register_producer(&self) -> Result<usize, ProducerError> {
        let ring = self.ring();
        registry::recover_claims(ring, liveness::is_alive);
        let (pid, start) = liveness::current();
        registry::register_producer(ring, pid, start).ok_or(ProducerError::RegistryFull {
            max: ring.geo.max_producers,
        })
    }

    /// Attaches a producer under `name` (see [`ProducerBuilder::name`]).
    fn named_producer(&self, name: &str) -> Result<Producer, ProducerError> {
        validate_name(name).map_err(ProducerError::InvalidName)?;
        let mut p = self.named_producer_unchecked(name, true)?;
        // A commit its dead predecessor decided but did not publish is
        // prepared again; one it published is finished.
        p.settle_commit_marks().map_err(ProducerError::Io)?;
        Ok(p)
    }

    /// Attaches a producer under `name`, which may be one of the queue's
    /// own (`RELEASER_NAME`) that users cannot name.
    /// `block`: wait for the admin lock; without, a lock held elsewhere
    /// fails with [`ProducerError::Io`] of kind `WouldBlock`.
    pub(crate) fn named_producer_unchecked(
        &self,
        name: &str,
        block: bool,
    ) -> Result<Producer, ProducerError> {
        let _g = self
            .admin(block)
            .map_err(ProducerError::Io)?
            .ok_or_else(|| ProducerError::Io(std::io::ErrorKind::WouldBlock.into()))?;
        let ring = self.ring();
        let slot = self.register_producer()?;
        match identity::attach_identity(ring, name.as_bytes(), slot, |s| self.name_owner(s)) {
            Ok((i, next)) => {
                registry::set_identity(ring, slot, i);
                let id = identity::identity_id(ring, i);
                Ok(Producer::new_named(self.clone(), slot, name, i, id, next))
            }
            Err(refused) => {
                registry::unregister_producer(ring, slot);
                Err(self.name_refused(name, refused))
            }
        }
    }
}
