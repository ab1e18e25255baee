//! Producer identities: named producers, per-producer sequence numbers and
//! duplicate rejection, which together make publishing exactly-once.
//!
//! # The table
//! `max_producers` slots of [`IDENTITY_SIZE`] bytes after the producer
//! registry (layout.rs). A slot holds a name, the registry slot of the producer
//! attached under it (at most one at a time), and `next`: the last
//! per-producer sequence number ("pseq") committed under the name, plus one.
//! Names, owners and attach counts change only under the admin lock.
//!
//! # Publishing
//! A named producer stamps each record with the producer extension (its slot
//! and the record's pseq, layout.rs) and publishes only pseqs at or above
//! `next`; anything below is refused as a duplicate before it is claimed.
//! Since only the owner publishes under a name, it keeps `next` in its own
//! memory and checks it there.
//!
//! # After a crash
//! `next` must cover every record that was committed, or a producer retrying
//! after a restart would publish one twice; and nothing that was not, or the
//! retry would be refused and the message lost. So the owner stores `next`
//! after committing a claim's records and before clearing its intent
//! (ring.rs, `commit_claim`), and the intent carries the pseq of the claim's
//! first record (registry.rs). If the owner dies in between, its intent is
//! still there and the recovery that frees its registry slot settles `next`:
//! a claim it finds completed (CLAIMED and nothing uncommitted) counts whole,
//! one it aborts from record `k` counts its first `k` records, and an intent
//! whose claim never succeeded (INTENT) counts nothing, since a producer
//! commits only after marking its claim CLAIMED. Only then is the name
//! released, so a restarted producer always reads a settled `next`.

use crate::protocol::layout::*;
use crate::protocol::ring::Ring;
use crate::region::Region;
use crate::sync::{fence, AtomicU64, Ordering};

/// Why a producer cannot attach under a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A producer (this pid) is attached under the name: alive (true), or
    /// dead with its last publish not settled yet (false).
    InUse(u64, bool),
    /// The table has no free slot for a new name.
    Full,
    /// No such name (removing one).
    Unknown,
}

/// A producer name, as [`crate::Stat`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameStat {
    /// The id its messages carry ([`crate::ProducerTag::id`]: its slot in
    /// the table of names, and above bit 32 how many names that slot held
    /// before it).
    pub id: u64,
    /// The name.
    pub name: String,
    /// The pid of the producer attached under it, if any.
    pub pid: Option<u64>,
    /// Registry slot of the producer attached under it.
    pub(crate) owner: Option<usize>,
    /// The last per-producer sequence number committed under it, if any.
    pub last_pseq: Option<u64>,
    /// Messages published under it. (A producer killed between its two
    /// adjacent stores of `next` and this count leaves it one claim short.)
    pub published: u64,
    /// Publishes refused as duplicates.
    pub duplicates: u64,
    /// Times a producer attached under it.
    pub attaches: u64,
}

impl NameStat {
    /// Whether a registered producer holds the name (a dead one holds it
    /// until the recovery that settles its last publish).
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().in_memory()?;
    /// let p = q.producer().name("ingest").attach()?;
    /// assert!(q.stat().names[0].held());
    /// drop(p);
    /// // The name stays, with its last pseq; no producer holds it now.
    /// let name = &q.stat().names[0];
    /// assert_eq!(name.name, "ingest");
    /// assert!(!name.held());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn held(&self) -> bool {
        self.owner.is_some()
    }

    /// Its slot in the table of names.
    pub(crate) fn slot(&self) -> usize {
        split_id(self.id).0
    }
}

/// A producer id's identity slot and generation (`identity::identity_id`
/// builds it).
fn split_id(id: u64) -> (usize, u32) {
    (id as u32 as usize, (id >> 32) as u32)
}

fn identity_named<R: Region>(ring: &Ring<R>, i: usize) -> bool {
    // Acquire pairs with the Release state store in `attach_identity`:
    // the name written before it is visible.
    ring.name_slot(i).state().load(Ordering::Acquire) == IDENTITY_NAMED
}

/// The name of identity slot `i`, if it has one.
pub fn identity_name<R: Region>(ring: &Ring<R>, i: usize) -> Option<Vec<u8>> {
    (i < ring.geo.max_producers as usize && identity_named(ring, i))
        .then(|| ring.read_name_at(ring.name_slot(i).name_off()))
}

/// The id the messages of identity slot `i` carry: the slot and its
/// generation (admin lock held, or a snapshot).
pub fn identity_id<R: Region>(ring: &Ring<R>, i: usize) -> u64 {
    // Relaxed: changed only under the admin lock, which the callers
    // that act on it hold.
    let gen = ring.name_slot(i).gen().load(Ordering::Relaxed) as u32;
    i as u64 | u64::from(gen) << 32
}

/// The name of the producer whose messages carry `id`, if the name
/// still exists: a removed name's id names nothing, even once its slot
/// holds another name.
pub fn name_of_id<R: Region>(ring: &Ring<R>, id: u64) -> Option<Vec<u8>> {
    let (i, gen) = split_id(id);
    if i >= ring.geo.max_producers as usize {
        return None;
    }
    // SYNC POINT identity generation: a seqlock read. The name is read
    // between two loads of the generation; a removal bumps it before
    // the slot is freed, and a new name's words are written after a
    // Release fence (`attach_identity`), so a name read from a slot
    // being reused shows up as a changed generation below.
    let before = ring.name_slot(i).gen().load(Ordering::Acquire) as u32;
    if before != gen {
        return None;
    }
    let name = identity_name(ring, i)?;
    fence(Ordering::Acquire);
    let after = ring.name_slot(i).gen().load(Ordering::Relaxed) as u32;
    (after == gen).then_some(name)
}

pub(crate) fn find_identity<R: Region>(ring: &Ring<R>, name: &[u8]) -> Option<usize> {
    (0..ring.geo.max_producers as usize).find(|&i| identity_name(ring, i).as_deref() == Some(name))
}

/// Attaches registry slot `slot` under `name` (admin lock held, dead
/// producers already recovered), creating the name if it is new. `owner`
/// describes a registry slot: `(pid, alive, identity slot + 1)` of its
/// producer, `None` if it is free. Returns the identity slot and its
/// `next`.
pub fn attach_identity<R: Region>(
    ring: &Ring<R>,
    name: &[u8],
    slot: usize,
    owner: impl Fn(usize) -> Option<(u64, bool, u64)>,
) -> Result<(usize, u64), Refused> {
    let i = match find_identity(ring, name) {
        Some(i) => i,
        None => {
            let i = (0..ring.geo.max_producers as usize)
                .find(|&i| ring.name_slot(i).state().load(Ordering::Relaxed) == IDENTITY_FREE)
                .ok_or(Refused::Full)?;
            // SYNC POINT identity generation: the name's words come after
            // the generation bump of the slot's removal (`name_of_id`).
            fence(Ordering::Release);
            let slot = ring.name_slot(i);
            ring.write_name_at(slot.name_off(), name);
            for word in [
                slot.owner(),
                slot.next(),
                slot.published(),
                slot.duplicates(),
                slot.attaches(),
            ] {
                word.store(0, Ordering::Relaxed);
            }
            // Release: pairs with the Acquire in `identity_named`.
            ring.name_slot(i)
                .state()
                .store(IDENTITY_NAMED, Ordering::Release);
            i
        }
    };
    let held = ring.name_slot(i).owner().load(Ordering::Relaxed);
    if let Some(s) = held.checked_sub(1) {
        // A dead owner's registry slot is freed, and the name released,
        // by the recovery that ran before us; one still here is live, or
        // its claim could not be settled yet. (A slot that does not
        // publish under this name is a stale reference: taken over.)
        if let Some((pid, alive, ident)) = owner(s as usize) {
            if ident == i as u64 + 1 {
                return Err(Refused::InUse(pid, alive));
            }
        }
    }
    ring.name_slot(i)
        .owner()
        .store(slot as u64 + 1, Ordering::Relaxed);
    let attaches = ring.name_slot(i).attaches();
    attaches.store(
        attaches.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    // Acquire pairs with the owner's Release store in `note_published`
    // (and a recovery's in `settle_identity`).
    Ok((i, ring.name_slot(i).next().load(Ordering::Acquire)))
}

/// Removes `name` from the table (admin lock held, dead producers
/// already recovered): its slot is freed for another name, and its id,
/// which the messages published under it carry, names nothing from now
/// on. Refused while a producer is attached under it; `owner` as for
/// `attach_identity`.
pub fn remove_identity<R: Region>(
    ring: &Ring<R>,
    name: &[u8],
    owner: impl Fn(usize) -> Option<(u64, bool, u64)>,
) -> Result<(), Refused> {
    let i = find_identity(ring, name).ok_or(Refused::Unknown)?;
    let held = ring.name_slot(i).owner().load(Ordering::Relaxed);
    if let Some(s) = held.checked_sub(1) {
        if let Some((pid, alive, ident)) = owner(s as usize) {
            if ident == i as u64 + 1 {
                return Err(Refused::InUse(pid, alive));
            }
        }
    }
    let gen = ring.name_slot(i).gen();
    // Relaxed: the fence below orders it before the state store, and
    // before any later name written into the slot.
    gen.store(
        gen.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    // SYNC POINT identity generation (see `name_of_id`).
    fence(Ordering::Release);
    ring.name_slot(i).owner().store(0, Ordering::Relaxed);
    // Release: pairs with the Acquire in `identity_named`, like a new
    // name's state store.
    ring.name_slot(i)
        .state()
        .store(IDENTITY_FREE, Ordering::Release);
    Ok(())
}

/// Releases identity `i` if registry slot `slot` holds it (`i` comes
/// from the registry slot: out of range means corrupt, and nothing to do).
pub(crate) fn release_identity<R: Region>(ring: &Ring<R>, i: usize, slot: usize) {
    if i >= ring.geo.max_producers as usize {
        return;
    }
    let owner = ring.name_slot(i).owner();
    if owner.load(Ordering::Relaxed) == slot as u64 + 1 {
        // Release: the owner's `next` is visible to whoever attaches next
        // (who also takes the admin lock, or sees a dead owner).
        owner.store(0, Ordering::Release);
    }
}

/// The owner of identity `i` committed `n` records, up to pseq `next - 1`.
#[inline]
pub(crate) fn note_published<R: Region>(ring: &Ring<R>, i: usize, next: u64, n: u64) {
    // SYNC POINT identity: Release pairs with the Acquire load of `next`
    // in `attach_identity` and `settle_identity`.
    ring.name_slot(i).next().store(next, Ordering::Release);
    let published = ring.name_slot(i).published();
    // Only the owner writes: load + store.
    published.store(
        published.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Counts a publish refused as a duplicate.
pub(crate) fn note_duplicate<R: Region>(ring: &Ring<R>, i: usize) {
    ring.name_slot(i)
        .duplicates()
        .fetch_add(1, Ordering::Relaxed);
}

/// A recovery found that identity `i`'s dead owner (registry slot `slot`)
/// committed its last claim's `n` records, up to pseq `next - 1`: raise
/// `next` to it (counting them, if the owner had not) and release the
/// name.
pub(crate) fn settle_identity<R: Region>(
    ring: &Ring<R>,
    i: usize,
    slot: usize,
    committed: Option<(u64, u64)>,
) {
    if i >= ring.geo.max_producers as usize {
        return; // a corrupt registry slot
    }
    if let Some((next, n)) = committed {
        // SYNC POINT identity (see `note_published`).
        let cur = ring.name_slot(i).next().load(Ordering::Acquire);
        if next > cur {
            ring.name_slot(i).next().store(next, Ordering::Release);
            ring.name_slot(i)
                .published()
                .fetch_add(n, Ordering::Relaxed);
        }
    }
    release_identity(ring, i, slot);
}

/// Every named producer.
pub fn identities<R: Region>(ring: &Ring<R>) -> Vec<NameStat> {
    (0..ring.geo.max_producers as usize)
        .filter_map(|i| {
            let name = identity_name(ring, i)?;
            let slot = ring.name_slot(i);
            let w = |word: &AtomicU64| word.load(Ordering::Relaxed);
            let owner = w(slot.owner()).checked_sub(1).map(|s| s as usize);
            Some(NameStat {
                id: identity_id(ring, i),
                name: String::from_utf8_lossy(&name).into_owned(),
                pid: owner.and_then(|s| ring.registry_owner(s)).map(|o| o.0),
                owner,
                last_pseq: w(slot.next()).checked_sub(1),
                published: w(slot.published()),
                duplicates: w(slot.duplicates()),
                attaches: w(slot.attaches()),
            })
        })
        .collect()
}
