//! The admin lock, and what runs under it: registering and configuring
//! groups, removing producer names, reaping dead members and producers.

use crate::error::{GroupError, ProducerError};
use crate::os::liveness;
use crate::os::mapping::RawRegion;
use crate::protocol::group::StartAt;
use crate::protocol::identity::Refused;
use crate::protocol::layout::*;
use crate::protocol::ring::Ring;
use crate::protocol::wait::Sleeper;
use crate::protocol::{ack, group, identity, registry};
use crate::queue::stat::RemovedMember;
use crate::queue::Queue;

use std::io;

use std::os::unix::io::AsRawFd;
use std::sync::MutexGuard;

/// How often a process reaps at most because wakes find nobody asleep.
const STALE_SLEEPER_REAP_EVERY_NS: u64 = 100_000_000;

impl Queue {
    /// The registry slot kept for publishing dead letters, registered to
    /// this process (`None` while another member uses it, or if the admin
    /// lock fails). The caller frees it after its one letter.
    pub(crate) fn dead_letter_slot(&self) -> Option<usize> {
        let _g = self.admin(true).ok()?;
        let ring = self.ring();
        registry::recover_claims(ring, liveness::is_alive);
        let (pid, start) = liveness::current();
        registry::register_dead_letters(ring, pid, start)
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
        if let Some(g) = group::find_group(ring, name.as_bytes()) {
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
        group::add_group(
            ring,
            name.as_bytes(),
            start,
            crate::os::clock::now_ns(),
            dl_only,
        )
        .map(|_| true)
        .ok_or(GroupError::TableFull {
            max: ring.geo.max_groups,
        })
    }

    /// Sets how many deliveries of one message group `name` makes before it
    /// gives the message up (counted in [`GroupStat::dead_lettered`](crate::GroupStat::dead_lettered)) instead
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
        let g = group::find_group(ring, name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        ack::set_redelivery(ring, g, max_attempts, ack::dead_letter_target(ring, g));
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
        let g = group::find_group(ring, name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        let ns = ack_wait.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        ack::set_ack_policy(ring, g, max_unacked, ns);
        Ok(())
    }

    /// Orders group `name` by key (`true`), or stops (`false`): its members
    /// are handed the messages of one key ([`crate::SendOptions::key`]) one
    /// at a time and in sequence order. The next message of a key waits
    /// while an earlier one is held unacknowledged by any member (with
    /// auto-ack, until it is copied, or its guard dropped), nacked or left
    /// by a dead member for redelivery (which comes first); messages of
    /// other keys, and messages without a key, flow meanwhile. Members take
    /// one message at a time then (`recv_batch` hands over one). Set it
    /// before members attach: members attached before apply it from their
    /// next upkeep (within a second), and holds taken before do not wait
    /// for each other. A key's waiting messages take entries of the group's ack table
    /// (`QueueOptions::ack_entries`), which bounds how far the group looks
    /// past a busy key.
    ///
    /// # Errors
    /// [`GroupError::Unknown`], [`GroupError::Io`]; [`GroupError::KindMismatch`]
    /// for a dead-letter group.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("orders", shmq::StartAt::Latest)?;
    /// q.set_ordered_by_key("orders", true)?;
    /// assert!(q.stat().groups[0].ordered_by_key);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn set_ordered_by_key(&self, name: &str, on: bool) -> Result<(), GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        let g = group::find_group(ring, name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        if ring.dl_only(g) {
            return Err(GroupError::KindMismatch(name.to_owned()));
        }
        crate::protocol::order::set_keyed(ring, g, on);
        Ok(())
    }

    /// Gives group `name` a default time to live (`None`: none, the
    /// default): a message older than that (by its publish time) when a
    /// member would take it is given up instead, to the group's dead-letter
    /// group if it has one, and counted (`GroupStat::ttl_expired`). A message
    /// sent with its own TTL ([`crate::SendOptions::ttl`]) gets the shorter
    /// of the two. Applies to every message the group has not handed out
    /// yet, redeliveries included, from each member's next upkeep on
    /// (members read the group's configuration at least every second, and
    /// every 256 receives).
    ///
    /// # Errors
    /// [`GroupError::Unknown`], [`GroupError::Io`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// q.add_group("quotes", shmq::StartAt::Latest)?;
    /// q.set_ttl("quotes", Some(Duration::from_millis(1)))?;
    /// let mut quotes = q.consumer("quotes").attach()?;
    /// q.producer().attach()?.send(b"stale soon")?;
    /// std::thread::sleep(Duration::from_millis(5));
    /// assert_eq!(quotes.try_recv(), Err(shmq::RecvError::Empty));
    /// let g = &q.stat().groups[0];
    /// assert_eq!((g.ttl, g.ttl_expired), (Some(Duration::from_millis(1)), 1));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn set_ttl(&self, name: &str, ttl: Option<std::time::Duration>) -> Result<(), GroupError> {
        let _g = self.admin(true).map_err(GroupError::Io)?;
        let ring = self.ring();
        let g = group::find_group(ring, name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        let ns = ttl.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        crate::protocol::ttl::set_group_ttl(ring, g, ns);
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
            group::find_group(ring, n.as_bytes()).ok_or_else(|| GroupError::Unknown(n.to_owned()))
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
        ack::set_redelivery(ring, g, ack::max_attempts(ring, g), d);
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
        group::groups(ring)
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
        group::find_group(ring, name.as_bytes()).map(|g| ring.group_id(g))
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
        for other in group::groups(ring) {
            if ack::dead_letter_target(ring, other.slot) == Some(g) {
                ack::set_redelivery(ring, other.slot, ack::max_attempts(ring, other.slot), None);
            }
        }
        group::remove_group(ring, g);
        Ok(())
    }

    /// Slot of group `name`, which must have no live member (the caller
    /// holds the admin lock).
    pub(crate) fn idle_group(&self, name: &str) -> Result<usize, GroupError> {
        let ring = self.ring();
        let g = group::find_group(ring, name.as_bytes())
            .ok_or_else(|| GroupError::Unknown(name.to_owned()))?;
        let live = group::members(ring, g)
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
    /// [`ProducerError::PendingTransactions`] while transactions prepared
    /// under it are not resolved; [`ProducerError::UnknownName`],
    /// [`ProducerError::InvalidName`], [`ProducerError::Io`].
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
        registry::recover_claims(ring, liveness::is_alive);
        // Its prepared transactions would belong to nobody.
        if let Some(i) = identity::find_identity(ring, name.as_bytes()) {
            let prefix = crate::staged::dir::txn_prefix(identity::identity_id(ring, i));
            let count = crate::staged::dir::list(self.staged_dir().0)
                .map_err(ProducerError::Io)?
                .iter()
                .filter(|(n, _)| n.starts_with(&prefix))
                .count();
            if count > 0 {
                return Err(ProducerError::PendingTransactions {
                    name: name.to_owned(),
                    count,
                });
            }
        }
        identity::remove_identity(ring, name.as_bytes(), |s| self.name_owner(s))
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
        let name = identity::name_of_id(self.ring(), id)?;
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
            Ok(Some(_g)) => registry::recover_claims(self.ring(), liveness::is_alive),
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
        let dead = group::members(ring, g)
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
        Ok(registry::recover_claims(self.ring(), liveness::is_alive))
    }
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
    for m in group::members(ring, g) {
        if !liveness::is_alive(m.pid, m.start_time) {
            if !recovered {
                // A dead member's dead-letter producer may have left a claim:
                // aborted first, so that its forward can be settled.
                registry::recover_claims(ring, liveness::is_alive);
                recovered = true;
            }
            // Wakers stop counting it, before the slot can be reused.
            let asleep = ring.clear_sleeper(Sleeper::Member { g, m: m.slot });
            // Its unacknowledged messages go back to the group first.
            ack::reap_entries(ring, g, m.slot);
            group::detach(ring, g, m.slot);
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
