//! The queue file format, byte by byte. Everything else computes offsets through
//! this module; nothing here touches memory.
//!
//! All integers are native-endian (the file never leaves the host). Offsets are
//! from the start of the file. "Line" means a 128-byte block: hot words that
//! different parties write live on lines of their own so they do not
//! false-share (128 bytes, not 64, because of adjacent-line prefetch).
//!
//! ```text
//! HEADER (2048 bytes)
//!   0   magic            [u8; 8]  b"SHMQUEUE"
//!   8   version          u32      FORMAT_VERSION (a reader refuses any other)
//!   12  header_size      u32      2048
//!   16  capacity         u64      ring bytes, a power of two
//!   24  max_msg          u32      largest payload in bytes
//!   28  max_groups       u32
//!   32  max_members      u32      per group
//!   36  compat_flags     u32      features a reader must understand; a reader
//!                                 refuses unknown bits. Bit 0 (COMPAT_SPILL): a spill
//!                                 log is configured (SPILL CONFIG below).
//!   40  group_table_off  u64      = 2048
//!   48  group_slot_size  u64
//!   56  ring_off         u64      page aligned
//!   64  file_size        u64      = ring_off + capacity
//!   72  created_ns       u64      CLOCK_REALTIME at creation
//!   80  nonce            u64      random, mixed into every commit stamp
//!   88  max_producers    u32      producer registry slots, and producer names
//!   92  ack_entries      u32      entries in each group's ack table (ack.rs)
//!   96  producer_table_off u64    after the group table
//!   104 identity_table_off u64    after the producer registry
//!   112 (reserved up to 256, zero)
//!   256 TAIL     line: u128 = seq << 64 | pos   next sequence number and byte
//!                      position to be claimed (advanced by producers' CAS)
//!   384 HEAD     line: u128 = (gen << 32 | seq_lo32) << 64 | pos   oldest record
//!                      the ring still holds; gen changes whenever a group is added
//!   512 DATA     line: u32 futex word, u32 sleeping consumers (at 516; each
//!                      also marks itself asleep in its member slot, +80)
//!   640 SPACE    line: u32 futex word, u32 sleeping producers (at 644; each
//!                      also marks itself asleep in its registry slot, +64)
//!   768 COUNTERS line: u64 full_waits (times a producer found the ring full
//!                      because a group had not read it), u64 aborted (claims
//!                      abandoned without a message), u64 stall_waits (at 784:
//!                      times the ring was full behind an operation in progress:
//!                      a claim not committed yet, or a message being read)
//!   896 DEAD LETTERS: u64 1 once any group sends what it gives up to a
//!                dead-letter group: producers then keep room for dead
//!                letters (ring.rs)
//!   904 PIN MOVES: u64 bumped whenever a pin moves from one ack entry to
//!                another (a dead letter handed over, ack.rs): producers'
//!                scans read it before and after the pins and scan again if
//!                it changed (group.rs)
//!   912 NEXT DUE: u64 CLOCK_REALTIME ns at which the earliest message
//!                scheduled for later delivery is due, 0 when none is known: a
//!                hint for polling processes, never above the true earliest
//!                (staged/schedule.rs)
//!   920 STAGE SEQ: u64 the last id given to a scheduled message or a
//!                transaction (staged/)
//!   928..1024    reserved (zero)
//!   1024 SPILL slot, laid out like a group slot's first 144 bytes (spill.rs):
//!        1024 state u64   SLOT_FREE / SLOT_CREATING / SLOT_ACTIVE + generation
//!        1152 FRONT u128  = seq << 64 | pos: while ACTIVE, every record below it
//!                         that a group on disk needs is in the spill log, and
//!                         producers treat it as one more group cursor
//!   1280 SPILL LOG line (written by the spiller under the spill lock):
//!        1280 log_end      u64  log position just past the last complete record
//!        1288 log_end_seq  u64  sequence number after the last logged record
//!        1296 first_pos    u64  oldest retained log position
//!        1304 first_seq    u64  sequence number of the oldest retained record
//!        1312 run_seq      u64  first seq of the log's current unbroken run
//!        1320 in_round     u64  pid of a spiller inside a round (0 otherwise)
//!        1328 spilled      u64  messages written to the log
//!        1336 spill_bytes  u64  bytes written to the log
//!        1344 rounds       u64  spill rounds that wrote something
//!        1352 errors       u64  spill rounds that failed
//!        1360 last_errno   u64  errno of the last failure (0: none since)
//!        1368 transfers    u64  times a group was moved from the ring to the log
//!        1376 recoveries   u64  rounds that found the previous one unfinished
//!   1408 SPILL CONFIG (written at creation, read once at open):
//!        1408 segment_size u64, 1416 fsync_mode u32, 1420 dir_len u32,
//!        1424 fsync_interval_ns u64, 1432 retain_bytes u64, 1440 retain_ns u64
//!   1536 spill directory, absolute path, dir_len bytes (at most 512)
//!
//! GROUP TABLE at group_table_off: max_groups slots of group_slot_size bytes
//!   +0   state      u64   low 8 bits SLOT_FREE / SLOT_CREATING / SLOT_ACTIVE,
//!                         upper bits a generation bumped on every change
//!   +8   name_len   u64
//!   +16  name       [u8; 64]
//!   +80  created_ns u64
//!   +88  ttl        u64   the group's default time to live in ns (0: none)
//!   +96  keyed      u64   1: the group is ordered by key (ack.rs)
//!   +128 CURSOR line: u128 = seq << 64 | pos   next message the group hands out;
//!                     with DISK_BIT set in seq, the group reads the spill log:
//!                     seq | DISK_BIT << 64 | log position of that message
//!        +144 pending      u64  entries waiting for redelivery (ack.rs; a hint)
//!        +152 max_attempts u64  deliveries before a message is dead-lettered
//!                               (0: no limit)
//!        +160 dead_lettered u64 messages given up after max_attempts
//!        +168 redelivered  u64  redeliveries handed out
//!        +176 dead_letter  u64  slot + 1 of the group dead letters go to (0: none)
//!        +184 dl_only      u64  1: a dead-letter group, which delivers only the
//!                               dead letters addressed to it (and skips the rest)
//!        +192 max_unacked  u64  messages a member may hold unacknowledged
//!                               (0: 1); a consumer may lower it for itself
//!        +200 ack_wait_ns  u64  ack deadline: a message held longer goes back
//!                               for redelivery (0: none)
//!        +208 expired      u64  holds ended by the ack deadline
//!        +216 entries_hwm  u64  ack table entries ever used (scans read the
//!                               entries below it)
//!        +224 ttl_expired  u64  messages whose time to live ran out before a
//!                               member took them
//!        +232 parked       u64  messages parked behind an earlier one of their key
//!   +256 members: max_members member slots of 128 bytes
//!        +0   state      u64  MEMBER_FREE / MEMBER_ATTACHED (+ generation)
//!        +8   pid        u64
//!        +16  start_time u64  process start time (clock ticks since boot), so a
//!                             reused pid is not mistaken for the member
//!        +24  inflight   u64  position of the record the member is reading, or
//!                             IDLE; producers never overwrite it (a hazard)
//!        +32  delivered  u64  messages handed to this member
//!        +40..72 reserved
//!        +72  acked      u64  messages this member acknowledged
//!        +80  asleep     u64  1 while the member is counted in the DATA
//!                             sleeper count (wait.rs): set after its
//!                             increment, cleared before its decrement, so the
//!                             reaper of a member killed asleep can take its
//!                             count back
//!        +88..128 reserved
//!   then the ACK TABLE: ack_entries entries of 64 bytes (ack.rs), each
//!        +0   state   u64  low 8 bits ENTRY_FREE / RESERVED / TAKING / HELD /
//!                          PENDING / FINISHING / FORWARDING / ARRIVING; bits
//!                          8..24 the owning member slot (ARRIVING: the group
//!                          handing the message over, whose entry index is in
//!                          the attempts bits);
//!                          bits 24..48 attempts (deliveries before the
//!                          current one; in a PENDING entry 2^24 - 1 means
//!                          never delivered: the next take counts none);
//!                          bits 48..64 a ticket bumped on every transition
//!        +8   seq     u64  the message's sequence number
//!        +16  at      u64  its ring position, or its log position | DISK_BIT
//!        +24  since   u64  CLOCK_MONOTONIC ns when its holder took it
//!        +32  pin     u64  ring position producers must not overwrite
//!                          (a hazard, as a member's `inflight`), or IDLE
//!        +40  dl_seq  u64  while FORWARDING: the dead letter's sequence
//!                          number once claimed (u64::MAX before), or, with
//!                          HANDOVER, the entry it is handed over to;
//!                          while ARRIVING: the index of the entry it
//!                          comes from
//!        +48  dl_pos  u64  while FORWARDING: the dead letter's ring position,
//!                          pinned like `pin` (IDLE otherwise)
//!        +56  origin  u64  a dead letter handed over (ack.rs): the id of the
//!                          group that gave it up | ORIGIN_SET; 0 otherwise
//!   then the KEY TABLE: one u64 an entry (padded to 64 bytes): the key hash
//!        of the message the entry holds (0: none); dense, so that a scan for
//!        a key reads few lines (order.rs)
//!
//! PRODUCER REGISTRY at producer_table_off: max_producers + 1 slots of 128
//!   bytes (registry.rs; the last one only for a member publishing a dead
//!   letter, so that a full registry never keeps a message from being given
//!   up), each
//!   +0   owner pid u64 (0: free)     +8  owner start time u64
//!   +16  CLAIM u64: position of the claim held or about to be made | state
//!        in the low 3 bits (1 intent, 2 claimed; 0: none)
//!   +24  claim end u64               +32 claim seq u64
//!   +40  claim record count u64
//!   +48  identity slot + 1 of a named producer (0: anonymous)
//!   +56  per-producer sequence number of the claim's first record (valid
//!        with an intent)
//!   +64  asleep u64: 1 while the producer is counted in the SPACE sleeper
//!        count (wait.rs), as a member's `asleep` is in the DATA count
//!   +72..128 reserved
//!
//! PRODUCER IDENTITIES at identity_table_off: max_producers slots of 128
//!   bytes (identity.rs), each
//!   +0   state u64 (0: free, 1: named)   +8 name_len u64   +16 name [u8; 64]
//!   +80  owner u64 (registry slot + 1 of the producer attached under the
//!        name; 0: none)
//!   +88  next u64 (last per-producer sequence number committed + 1; 0: none
//!        yet)
//!   +96  published u64   +104 duplicates u64 (publishes refused as repeats)
//!   +112 attaches u64
//!   +120 generation u64: bumped when the name is removed; a name's id is
//!        `slot | generation << 32`, so ids of removed names are never
//!        reused
//!
//! RING at ring_off: `capacity` bytes of records. A record at byte position `pos`
//! (a u64 that only grows; its offset in the ring is pos & (capacity - 1)) is
//! 8-byte aligned and never wraps around the end of the ring:
//!   +0   commit  u64  stamp(pos, kind): written last, with Release
//!   +8   len     u32  bytes after the header;   +12 flags u32: 0 for a message
//!                     to every group from an anonymous producer. A dead letter
//!                     (a message a group gave up on) has the dead-letter
//!                     group's slot + 1 in bits 0..11 and the slot of the group
//!                     that gave it up in bits 11..22. Bit 22 (FLAG_ORIGIN_SEQ,
//!                     on dead letters): the origin extension follows the
//!                     producer extension. Bit 23 (FLAG_PRODUCER): the record
//!                     starts with the producer extension. Bit 24
//!                     (FLAG_TTL): the TTL extension follows the others.
//!                     Bit 25 (FLAG_KEY): the body starts with the key block
//!   +16  seq     u64
//!   +24  ts_ns   u64  publish time, CLOCK_REALTIME
//!   +32  with FLAG_PRODUCER, the producer extension (PRODUCER_EXT bytes):
//!        +32 producer id u64 (its identity slot | the slot's generation << 32),
//!        +40 pseq u64 (its per-producer sequence number)
//!   then, with FLAG_ORIGIN_SEQ, the origin extension (ORIGIN_EXT bytes): the
//!        sequence number the message had in the queue before the group that
//!        gave it up did so, then that group's id (its slot | the slot's
//!        generation << 32, so that a dead letter never names a group that
//!        took the slot over later)
//!   then, with FLAG_TTL, the TTL extension (TTL_EXT bytes): the message's
//!        time to live in ns, counted from ts_ns
//!   then the body (len bytes less the extensions, at most max_msg): with
//!        FLAG_KEY, first the key block: the key's hash u64 (never 0), its
//!        length u32 (at most MAX_KEY, 64), 4 zero bytes, the key zero-padded
//!        to a multiple of 8
//!   then the payload (the rest of the body), then zero padding to
//!   a multiple of 8
//! A PAD record (kind KIND_PAD) is only its commit word: it fills the ring from
//! its position to the end, and the next record starts at offset 0.
//! ```
//!
//! The stamp is `(pos | kind) ^ nonce`. A word left from an earlier lap holds a
//! different position and so never looks committed; the nonce makes it
//! vanishingly unlikely that stale payload bytes look like a stamp.

use crate::region::Region;
use crate::sync::{AtomicU128, AtomicU64};

/// The eight bytes every queue file starts with.
pub const MAGIC: [u8; 8] = *b"SHMQUEUE";
/// Format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 9;
/// Size of the header block.
pub const HEADER_SIZE: usize = 2048;
/// Size of a record header.
pub const RECORD_HEADER: usize = 32;
/// Record alignment.
pub const ALIGN: usize = 8;
/// Longest group name in bytes.
pub const MAX_NAME: usize = 64;

/// Whether `name` is a valid group or producer name: 1 to `MAX_NAME` bytes of
/// `[A-Za-z0-9._-]`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}
/// The producer name under which a queue publishes the scheduled messages
/// that come due (staged/schedule.rs): not a valid name for users (`#`),
/// so none can take it.
pub const RELEASER_NAME: &str = "#scheduled";

/// Smallest ring (loom models use tiny rings; real queues are far larger).
pub const MIN_CAPACITY: u64 = 64;
/// Largest ring: keeps (tail.seq - head.seq) below 2^31, which the 32-bit
/// sequence field of HEAD relies on (records are at least 32 bytes).
pub const MAX_CAPACITY: u64 = 1 << 36;
/// Most groups a queue may be created with.
pub const MAX_GROUPS_LIMIT: u32 = 1024;
/// Most members per group a queue may be created with.
pub const MAX_MEMBERS_LIMIT: u32 = 1024;
/// Most producer slots (and producer names) a queue may be created with.
pub const MAX_PRODUCERS_LIMIT: u32 = 4096;
/// Most entries a group's ack table may have.
pub const MAX_ACK_ENTRIES_LIMIT: u32 = 65536;

// Header field offsets.
pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_HEADER_SIZE: usize = 12;
pub(crate) const OFF_CAPACITY: usize = 16;
pub(crate) const OFF_MAX_MSG: usize = 24;
pub(crate) const OFF_MAX_GROUPS: usize = 28;
pub(crate) const OFF_MAX_MEMBERS: usize = 32;
pub(crate) const OFF_COMPAT: usize = 36;
pub(crate) const OFF_GROUP_TABLE: usize = 40;
pub(crate) const OFF_SLOT_SIZE: usize = 48;
pub(crate) const OFF_RING: usize = 56;
pub(crate) const OFF_FILE_SIZE: usize = 64;
pub(crate) const OFF_CREATED: usize = 72;
pub(crate) const OFF_NONCE: usize = 80;
pub(crate) const OFF_MAX_PRODUCERS: usize = 88;
pub(crate) const OFF_PRODUCER_TABLE: usize = 96;
pub(crate) const OFF_IDENTITY_TABLE: usize = 104;
pub(crate) const OFF_ACK_ENTRIES: usize = 92;

/// Hot control words.
pub const OFF_TAIL: usize = 256;
/// See the module docs.
pub const OFF_HEAD: usize = 384;
/// Futex word consumers sleep on.
pub const OFF_DATA_FUTEX: usize = 512;
/// Number of consumers asleep (or about to be).
pub const OFF_DATA_WAITERS: usize = 516;
/// Futex word producers sleep on when the ring is full.
pub const OFF_SPACE_FUTEX: usize = 640;
/// Producers asleep (or about to be): bit s for registry slot s.
pub const OFF_SPACE_WAITERS: usize = 644;
/// Counter: times a producer found the ring full.
pub const OFF_FULL_WAITS: usize = 768;
/// Counter: claims abandoned without a message.
pub const OFF_ABORTED: usize = 776;
/// Counter: times the ring was full behind an operation in progress.
pub const OFF_STALL_WAITS: usize = 784;
/// 1 once a group has a dead-letter target (ring.rs: room kept for dead
/// letters).
pub const OFF_DEAD_LETTERS: usize = 896;
/// Counter of pins moved between ack entries (ack.rs, `hand_over`).
pub const OFF_PIN_MOVES: usize = 904;
/// When the earliest scheduled message is due (a hint: staged/schedule.rs).
pub const OFF_NEXT_DUE: usize = 912;
/// The last id given to a scheduled message or a transaction.
pub const OFF_STAGE_SEQ: usize = 920;

/// Bytes per producer registry slot (registry.rs).
pub const PRODUCER_SLOT_SIZE: usize = 128;
// Producer registry slot field offsets (registry.rs).
/// Owner: pid, or 0 for a free slot.
const S_OWNER: usize = 0;
/// The owner's start time (with the pid, its identity across pid reuse).
const S_START: usize = 8;
/// The claim being made: position, with INTENT or CLAIMED in the low bits.
const S_CLAIM: usize = 16;
/// End position of that claim.
const S_END: usize = 24;
/// Its first sequence number.
const S_SEQ: usize = 32;
/// Its record count.
const S_COUNT: usize = 40;
/// The identity slot of a named producer, plus one (0: anonymous).
const S_IDENT: usize = 48;
/// A named producer's pseq of the claim's first record.
const S_PSEQ: usize = 56;
/// In a producer registry slot: 1 while the producer is counted asleep
/// (wait.rs).
const P_ASLEEP: usize = 64;

/// Bytes per identity slot.
pub const IDENTITY_SIZE: usize = 128;
// Identity slot field offsets.
const I_STATE: usize = 0;
const I_NAME_LEN: usize = 8;
const I_OWNER: usize = 80;
const I_NEXT: usize = 88;
const I_PUBLISHED: usize = 96;
const I_DUPLICATES: usize = 104;
const I_ATTACHES: usize = 112;
const I_GEN: usize = 120;
/// Identity slot states.
pub(crate) const IDENTITY_FREE: u64 = 0;
pub(crate) const IDENTITY_NAMED: u64 = 1;

/// Bytes of the producer extension that starts a record with FLAG_PRODUCER.
pub const PRODUCER_EXT: usize = 16;
/// Record flag: the record starts with the producer extension.
pub const FLAG_PRODUCER: u32 = 1 << 23;
/// Bytes of the origin extension of a record with FLAG_ORIGIN_SEQ: the
/// sequence number, then the id of the group that gave it up.
pub const ORIGIN_EXT: usize = 16;
/// Record flag: a dead letter carries, after the producer extension if any,
/// the queue sequence number of the message it copies.
pub const FLAG_ORIGIN_SEQ: u32 = 1 << 22;
/// Bytes of the TTL extension of a record with FLAG_TTL: its time to live
/// in ns, counted from its `ts_ns`.
pub const TTL_EXT: usize = 8;
/// Record flag: the TTL extension follows the other extensions.
pub const FLAG_TTL: u32 = 1 << 24;
/// Record flag: the body (after the extensions) starts with the message's
/// key block: its hash (u64, never 0), its length (u32), 4 zero bytes, then
/// the key, zero-padded to a multiple of 8. The key block counts against
/// `max_msg` with the payload.
pub const FLAG_KEY: u32 = 1 << 25;
/// The key block's fixed part: hash, length, zero.
pub const KEY_HEAD: usize = 16;
/// The longest key, in bytes.
pub const MAX_KEY: usize = 64;

/// Bytes of the key block of a record whose key is `key_len` bytes long.
#[inline]
pub const fn key_block(key_len: usize) -> usize {
    KEY_HEAD + key_len.div_ceil(8) * 8
}

/// The hash a record and an ack entry carry for `key`: FNV-1a, in 63 bits
/// (an entry keeps a flag in the top bit), never 0 (no key).
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    match h & !(1 << 63) {
        0 => 1,
        h => h,
    }
}
/// Record flags: the bits of a dead letter's addressing.
const FLAGS_DEAD_LETTER: u32 = (1 << 22) - 1;

/// Bit in `compat_flags`: a spill log is configured.
pub const COMPAT_SPILL: u32 = 1;
/// Every compat bit this build understands.
pub const COMPAT_KNOWN: u32 = COMPAT_SPILL;

/// The spill slot: state word (like a group slot's).
pub const OFF_SPILL_STATE: usize = 1024;
/// The spill front, a u128 (seq, pos) at the slot's cursor offset.
pub const OFF_SPILL_FRONT: usize = OFF_SPILL_STATE + G_CURSOR;
/// Log position past the last complete record.
pub const OFF_LOG_END: usize = 1280;
/// Sequence number after the last logged record.
pub const OFF_LOG_END_SEQ: usize = 1288;
/// Oldest retained log position.
pub const OFF_LOG_FIRST_POS: usize = 1296;
/// Oldest retained sequence number.
pub const OFF_LOG_FIRST_SEQ: usize = 1304;
/// First sequence number of the log's current unbroken run.
pub const OFF_LOG_RUN_SEQ: usize = 1312;
/// Pid of a spiller inside a round.
pub const OFF_SPILL_IN_ROUND: usize = 1320;
/// Counter: messages spilled.
pub const OFF_SPILLED: usize = 1328;
/// Counter: bytes spilled.
pub const OFF_SPILL_BYTES: usize = 1336;
/// Counter: spill rounds that wrote.
pub const OFF_SPILL_ROUNDS: usize = 1344;
/// Counter: failed spill rounds.
pub const OFF_SPILL_ERRORS: usize = 1352;
/// errno of the last failed round (0 after a success).
pub const OFF_SPILL_ERRNO: usize = 1360;
/// Counter: groups moved from the ring to the log.
pub const OFF_SPILL_TRANSFERS: usize = 1368;
/// Counter: rounds that found the previous one unfinished (its spiller died).
pub const OFF_SPILL_RECOVERIES: usize = 1376;
/// CLOCK_MONOTONIC ns at which the round in progress started (0: none).
pub const OFF_SPILL_ROUND_SINCE: usize = 1384;
/// Counter: groups that lagged onto the log's unbroken run but whose next
/// message it no longer held (retention deleted a backlog: a defect).
pub const OFF_SPILL_BACKLOG_MISSING: usize = 1392;
/// Spill configuration fields.
pub(crate) const OFF_SPILL_SEGMENT: usize = 1408;
pub(crate) const OFF_SPILL_FSYNC: usize = 1416;
pub(crate) const OFF_SPILL_DIR_LEN: usize = 1420;
pub(crate) const OFF_SPILL_FSYNC_NS: usize = 1424;
pub(crate) const OFF_SPILL_RETAIN_BYTES: usize = 1432;
pub(crate) const OFF_SPILL_RETAIN_NS: usize = 1440;
pub(crate) const OFF_SPILL_DIR: usize = 1536;
/// Longest spill directory path.
pub const MAX_SPILL_DIR: usize = 512;

/// In a group cursor's seq: the group reads the spill log (see `spill.rs`).
pub const DISK_BIT: u64 = 1 << 63;

// Group slot field offsets (relative to the slot).
const G_STATE: usize = 0;
const G_NAME_LEN: usize = 8;
const G_CREATED: usize = 80;
const G_CURSOR: usize = 128;
const G_MEMBERS: usize = 256;
/// Size of one member slot.
pub(crate) const MEMBER_SIZE: usize = 128;

// Member slot field offsets (relative to the member slot).
const M_STATE: usize = 0;
const M_PID: usize = 8;
const M_START: usize = 16;
const M_INFLIGHT: usize = 24;
const M_DELIVERED: usize = 32;
const M_ACKED: usize = 72;
const M_ASLEEP: usize = 80;

// Group slot fields for acknowledgements (ack.rs), after the cursor.
const G_PENDING: usize = 144;
const G_MAX_ATTEMPTS: usize = 152;
const G_DEAD_LETTERED: usize = 160;
const G_REDELIVERED: usize = 168;
const G_DEAD_LETTER: usize = 176;
const G_DL_ONLY: usize = 184;
const G_MAX_UNACKED: usize = 192;
const G_ACK_WAIT: usize = 200;
const G_EXPIRED: usize = 208;
const G_ENTRIES_HWM: usize = 216;
const G_TTL_EXPIRED: usize = 224;
const G_PARKED: usize = 232;
// Group configuration in the name's line (read-mostly, apart from the cursor).
const G_TTL: usize = 88;
const G_KEYED: usize = 96;

/// Bytes of one ack table entry.
pub const ENTRY_SIZE: usize = 64;
// Ack table entry field offsets (relative to the entry).
const E_STATE: usize = 0;
const E_SEQ: usize = 8;
const E_AT: usize = 16;
const E_SINCE: usize = 24;
const E_PIN: usize = 32;
const E_DL_SEQ: usize = 40;
const E_DL_POS: usize = 48;
const E_ORIGIN: usize = 56;
/// In an entry's `origin`: set for a dead letter handed over, with the
/// origin group's id in the low bits.
pub(crate) const ORIGIN_SET: u64 = 1 << 63;
/// In a FORWARDING entry's `dl_seq`: the message is being handed over to
/// the dead-letter group in bits 32..48, into its entry in the low 32 bits
/// minus one (0: no entry claimed yet).
pub(crate) const HANDOVER: u64 = 1 << 63;

/// Ack table entry states (low 8 bits of an entry's state word).
pub(crate) const ENTRY_FREE: u64 = 0;
pub(crate) const ENTRY_RESERVED: u64 = 1;
pub(crate) const ENTRY_TAKING: u64 = 2;
pub(crate) const ENTRY_HELD: u64 = 3;
pub(crate) const ENTRY_PENDING: u64 = 4;
pub(crate) const ENTRY_FINISHING: u64 = 5;
pub(crate) const ENTRY_FORWARDING: u64 = 6;
pub(crate) const ENTRY_ARRIVING: u64 = 7;
/// Owner of a FORWARDING entry whose member died before its dead letter's
/// fate was known (ack.rs).
pub(crate) const ORPHAN: usize = 0xffff;
/// Largest attempts count an entry keeps (24 bits of its state word).
pub const MAX_ATTEMPTS_LIMIT: u64 = (1 << 24) - 1;
/// A PENDING entry's attempts when its message was never handed to a
/// member (parked behind its key, order.rs; or put back from a take that
/// did not count): "minus one", so that its next take counts none. Taken
/// counts stop one below it.
pub(crate) const NEVER_DELIVERED: u64 = MAX_ATTEMPTS_LIMIT;

/// Group slot states (low 8 bits of the state word).
pub(crate) const SLOT_FREE: u64 = 0;
pub(crate) const SLOT_CREATING: u64 = 1;
pub(crate) const SLOT_ACTIVE: u64 = 2;
/// Member slot states.
pub(crate) const MEMBER_FREE: u64 = 0;
pub(crate) const MEMBER_ATTACHED: u64 = 1;
/// `inflight` value of a member that is reading nothing.
pub const IDLE: u64 = u64::MAX;

/// Record kinds, in the low 3 bits of a stamp.
pub(crate) const KIND_MSG: u64 = 1;
pub(crate) const KIND_PAD: u64 = 2;
/// Reserved for claims abandoned by a producer (written by `SendGuard` drop).
pub(crate) const KIND_ABORT: u64 = 3;

/// Record flags of a dead letter: addressed to group slot `target`, given
/// up by group slot `origin` (both below `MAX_GROUPS_LIMIT`, so `target + 1`
/// and `origin` each fit 11 bits, and the flags, with FLAG_PRODUCER, the 24
/// bits the spill log keeps for them).
#[inline]
pub const fn dead_letter_flags(target: usize, origin: usize) -> u32 {
    ((target as u32 + 1) & 0x7ff) | ((origin as u32 & 0x7ff) << 11)
}

/// The group slot a record with `flags` is addressed to (None: every group
/// that is not a dead-letter group).
#[inline]
pub const fn flags_target(flags: u32) -> Option<usize> {
    match flags & 0x7ff {
        0 => None,
        t => Some(t as usize - 1),
    }
}

/// Bytes of extensions (producer, origin, TTL) a record with `flags` starts
/// with.
#[inline]
pub const fn ext_len(flags: u32) -> usize {
    ttl_off(flags) + if flags & FLAG_TTL != 0 { TTL_EXT } else { 0 }
}

/// Where the TTL extension of a record with `flags` starts, after the
/// record header (past the producer and origin extensions).
#[inline]
pub const fn ttl_off(flags: u32) -> usize {
    origin_off(flags)
        + if flags & FLAG_ORIGIN_SEQ != 0 {
            ORIGIN_EXT
        } else {
            0
        }
}

/// Where the origin extension of a record with `flags` starts, after the
/// record header.
#[inline]
pub const fn origin_off(flags: u32) -> usize {
    if flags & FLAG_PRODUCER != 0 {
        PRODUCER_EXT
    } else {
        0
    }
}

/// Whether a record header's `len` and `flags` are possible in a queue of
/// a queue whose largest payload is `max_msg`: no unknown flag, and a length
/// that holds the extensions the flags say are there and at most `max_msg`
/// bytes of payload besides. Every reader checks this before it trusts
/// either.
#[inline]
pub const fn valid_record(len: u64, flags: u32, max_msg: u32) -> bool {
    let ext = ext_len(flags) as u64;
    flags & !(FLAG_PRODUCER | FLAG_ORIGIN_SEQ | FLAG_TTL | FLAG_KEY | FLAGS_DEAD_LETTER) == 0
        && len >= ext
        && len - ext <= max_msg as u64
        && (flags & FLAG_KEY == 0 || len - ext >= KEY_HEAD as u64)
}

/// Whether a record with `flags` is delivered to a group that is (`dl_only`)
/// or is not a dead-letter group in slot `g`.
#[inline]
pub const fn addressed(flags: u32, g: usize, dl_only: bool) -> bool {
    match flags_target(flags) {
        None => !dl_only,
        Some(t) => t == g && dl_only,
    }
}

/// Rounds `n` up to a multiple of `a` (a power of two).
#[inline]
pub const fn align_up(n: u64, a: u64) -> u64 {
    (n + a - 1) & !(a - 1)
}

/// Bytes a record with `len` payload bytes occupies in the ring.
#[inline]
pub const fn record_size(len: u64) -> u64 {
    align_up(RECORD_HEADER as u64 + len, ALIGN as u64)
}

/// The commit stamp of a record of `kind` at `pos`.
#[inline]
pub const fn stamp(pos: u64, kind: u64, nonce: u64) -> u64 {
    (pos | kind) ^ nonce
}

/// Packs a (seq, pos) pair into one 128-bit word.
#[inline]
pub const fn pack(seq: u64, pos: u64) -> u128 {
    ((seq as u128) << 64) | pos as u128
}

/// Unpacks a (seq, pos) pair.
#[inline]
pub const fn unpack(w: u128) -> (u64, u64) {
    ((w >> 64) as u64, w as u64)
}

/// The shape of a queue, fixed at creation. Always validated before use, and
/// kept in process memory: the protocol never re-reads it from the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Ring size in bytes, a power of two.
    pub capacity: u64,
    /// Largest payload in bytes.
    pub max_msg: u32,
    /// Number of group slots.
    pub max_groups: u32,
    /// Member slots per group.
    pub max_members: u32,
    /// Producer registry slots (producers attached at once), and producer
    /// names.
    pub max_producers: u32,
    /// Entries in each group's ack table: messages that members of one
    /// group hold unacknowledged or that wait for redelivery, at once.
    pub ack_entries: u32,
}

/// Why a geometry is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeometryError(pub String);

impl Geometry {
    /// Checks every bound the protocol relies on.
    pub fn validate(&self) -> Result<(), GeometryError> {
        let e = |s: String| Err(GeometryError(s));
        if !self.capacity.is_power_of_two() {
            return e(format!("capacity {} is not a power of two", self.capacity));
        }
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&self.capacity) {
            return e(format!(
                "capacity {} is outside {MIN_CAPACITY}..={MAX_CAPACITY} bytes",
                self.capacity
            ));
        }
        // A claim may need padding up to the end of the ring plus the record
        // (2R), and producers keep two more records' room (2R) for dead
        // letters (ring.rs: a message given up always finds room for its
        // dead letter while its original is still pinned).
        if record_size(self.max_stored()) > self.capacity / 4 {
            return e(format!(
                "max message {} does not fit: a record ({} bytes with its headers) must be at most a quarter of the capacity ({})",
                self.max_msg,
                record_size(self.max_stored()),
                self.capacity
            ));
        }
        if !(1..=MAX_GROUPS_LIMIT).contains(&self.max_groups) {
            return e(format!(
                "max groups {} is outside 1..={MAX_GROUPS_LIMIT}",
                self.max_groups
            ));
        }
        if !(1..=MAX_MEMBERS_LIMIT).contains(&self.max_members) {
            return e(format!(
                "max members {} is outside 1..={MAX_MEMBERS_LIMIT}",
                self.max_members
            ));
        }
        if !(1..=MAX_PRODUCERS_LIMIT).contains(&self.max_producers) {
            return e(format!(
                "max producers {} is outside 1..={MAX_PRODUCERS_LIMIT}",
                self.max_producers
            ));
        }
        if !(1..=MAX_ACK_ENTRIES_LIMIT).contains(&self.ack_entries) {
            return e(format!(
                "ack entries {} is outside 1..={MAX_ACK_ENTRIES_LIMIT}",
                self.ack_entries
            ));
        }
        Ok(())
    }

    /// Most bytes a record holds after its header: the largest payload with
    /// both extensions (a dead letter of a named producer's message).
    pub const fn max_stored(&self) -> u64 {
        self.max_msg as u64 + (PRODUCER_EXT + ORIGIN_EXT) as u64
    }

    /// Bytes of one group slot: its header, member slots, ack table and key
    /// table.
    pub const fn slot_size(&self) -> usize {
        self.keys_off() + (self.ack_entries as usize * 8).div_ceil(64) * 64
    }

    /// Offset of the key table in a group slot: one word an ack entry, the
    /// key hash of the message it holds (order.rs), dense so that a scan for
    /// a key reads few lines.
    pub const fn keys_off(&self) -> usize {
        self.entries_off() + self.ack_entries as usize * ENTRY_SIZE
    }

    /// Offset of the ack table in a group slot.
    pub const fn entries_off(&self) -> usize {
        G_MEMBERS + self.max_members as usize * MEMBER_SIZE
    }

    /// Offset of ack table entry `i` of group `g`.
    #[inline]
    pub fn entry_off(&self, g: usize, i: usize) -> usize {
        debug_assert!(i < self.ack_entries as usize);
        self.slot_off(g) + self.entries_off() + i * ENTRY_SIZE
    }

    /// Offset of the group table.
    pub const fn group_table_off(&self) -> usize {
        HEADER_SIZE
    }

    /// Offset of the producer registry, after the group table.
    pub const fn producer_table_off(&self) -> usize {
        self.group_table_off() + self.max_groups as usize * self.slot_size()
    }

    /// Producer registry slots: `max_producers`, and one for dead letters.
    pub const fn registry_slots(&self) -> usize {
        self.max_producers as usize + 1
    }

    /// Offset of the producer identities, after the registry.
    pub const fn identity_table_off(&self) -> usize {
        self.producer_table_off() + self.registry_slots() * PRODUCER_SLOT_SIZE
    }

    /// Offset of the ring.
    pub const fn ring_off(&self) -> usize {
        let end = self.identity_table_off() + self.max_producers as usize * IDENTITY_SIZE;
        align_up(end as u64, 4096) as usize
    }

    /// Total file size.
    pub const fn file_size(&self) -> usize {
        self.ring_off() + self.capacity as usize
    }

    /// Offset of group slot `g`.
    #[inline]
    pub fn slot_off(&self, g: usize) -> usize {
        debug_assert!(g < self.max_groups as usize);
        self.group_table_off() + g * self.slot_size()
    }

    /// Byte offset of group `g`'s cursor, a 16-byte word (every other word
    /// of a group slot is 8 bytes).
    pub fn cursor_off(&self, g: usize) -> usize {
        self.slot_off(g) + G_CURSOR
    }

    /// Offset of member slot `m` of group `g`.
    #[inline]
    pub fn member_off(&self, g: usize, m: usize) -> usize {
        debug_assert!(m < self.max_members as usize);
        self.slot_off(g) + G_MEMBERS + m * MEMBER_SIZE
    }

    /// Offset of producer registry slot `slot`.
    #[inline]
    pub fn producer_off(&self, slot: usize) -> usize {
        debug_assert!(slot < self.registry_slots());
        self.producer_table_off() + slot * PRODUCER_SLOT_SIZE
    }

    /// Offset of producer identity slot `i`.
    #[inline]
    pub fn identity_off(&self, i: usize) -> usize {
        debug_assert!(i < self.max_producers as usize);
        self.identity_table_off() + i * IDENTITY_SIZE
    }

    /// Offset in the file of the record at ring position `pos`. Positions come
    /// from shared memory, so the offset is aligned down to 8 whatever `pos`
    /// holds: a corrupt position can give wrong data, never a misaligned or
    /// out-of-bounds access.
    #[inline]
    pub fn ring_at(&self, pos: u64) -> usize {
        self.ring_off() + (pos & (self.capacity - 1) & !(ALIGN as u64 - 1)) as usize
    }

    /// Where a record of `len` payload bytes starts if the tail is at `pos`:
    /// `pos` itself, or the start of the next lap when it does not fit.
    #[inline]
    pub fn place(&self, pos: u64, len: u64) -> u64 {
        let room = self.room_to_end(pos);
        if room < record_size(len) {
            // Wrapping: positions read from a corrupt file may be near u64::MAX.
            pos.wrapping_add(room)
        } else {
            pos
        }
    }

    /// Bytes from `pos` to the end of the ring.
    #[inline]
    pub fn room_to_end(&self, pos: u64) -> u64 {
        self.capacity - (pos & (self.capacity - 1))
    }
}

/// Typed views of the region's slots: each view knows where its words are
/// (the field offsets above are private to this file), and [`Ring`] hands
/// them out (`ring.member(g, m).inflight()`). A view is a region reference
/// and an offset; each accessor is one `u64_at`.
///
/// [`Ring`]: crate::protocol::ring::Ring
macro_rules! slot_view {
    ($(#[$doc:meta])* $view:ident { $($(#[$fdoc:meta])* $field:ident = $off:ident,)* }) => {
        $(#[$doc])*
        pub(crate) struct $view<'a, R> {
            region: &'a R,
            off: usize,
        }

        impl<'a, R: Region> $view<'a, R> {
            /// The view of the slot at byte offset `off` of `region`.
            #[inline]
            pub(crate) fn new(region: &'a R, off: usize) -> Self {
                $view { region, off }
            }

            $(
                $(#[$fdoc])*
                #[inline]
                pub(crate) fn $field(&self) -> &'a AtomicU64 {
                    self.region.u64_at(self.off + $off)
                }
            )*
        }
    };
}

/// The header's running words (counters, the spill log's published state):
/// what the protocol and the queue read and write while the queue runs.
/// TAIL, HEAD and FRONT are [`Ring`]'s (`tail()`, `head()`, `front()`);
/// the geometry, written once at creation, is `queue/header.rs`'s.
///
/// [`Ring`]: crate::protocol::ring::Ring
pub(crate) struct Header<'a, R> {
    region: &'a R,
}

impl<'a, R: Region> Header<'a, R> {
    /// The header of `region`.
    #[inline]
    pub(crate) fn new(region: &'a R) -> Self {
        Header { region }
    }

    /// Waits of producers on a full ring that a consumer holds back.
    #[inline]
    pub(crate) fn full_waits(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_FULL_WAITS)
    }

    /// Claims aborted (dropped guards, recovered dead producers).
    #[inline]
    pub(crate) fn aborted(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_ABORTED)
    }

    /// Waits of producers behind a send or read in progress.
    #[inline]
    pub(crate) fn stall_waits(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_STALL_WAITS)
    }

    /// 1 once a group has a dead-letter target (room kept for dead letters).
    #[inline]
    pub(crate) fn dead_letters(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_DEAD_LETTERS)
    }

    /// Pins moved between ack entries (ack.rs, hand-over).
    #[inline]
    pub(crate) fn pin_moves(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_PIN_MOVES)
    }

    /// When the earliest scheduled message is due, 0 if none is known
    /// (staged/schedule.rs).
    #[inline]
    pub(crate) fn next_due(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_NEXT_DUE)
    }

    /// The last id given to a scheduled message or a transaction.
    #[inline]
    pub(crate) fn stage_seq(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_STAGE_SEQ)
    }

    /// The spill FRONT's state word (spill.rs).
    #[inline]
    pub(crate) fn spill_state(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_STATE)
    }

    /// The spill log's published end (a log position).
    #[inline]
    pub(crate) fn log_end(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_LOG_END)
    }

    /// The sequence number after the log's last record.
    #[inline]
    pub(crate) fn log_end_seq(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_LOG_END_SEQ)
    }

    /// The log's first retained position.
    #[inline]
    pub(crate) fn log_first_pos(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_LOG_FIRST_POS)
    }

    /// The sequence number of its first retained record.
    #[inline]
    pub(crate) fn log_first_seq(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_LOG_FIRST_SEQ)
    }

    /// Where the log's current unbroken run starts.
    #[inline]
    pub(crate) fn log_run_seq(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_LOG_RUN_SEQ)
    }

    /// The pid of the process in a spill round (0: none).
    #[inline]
    pub(crate) fn spill_in_round(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_IN_ROUND)
    }

    /// Records spilled.
    #[inline]
    pub(crate) fn spilled(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILLED)
    }

    /// Bytes spilled.
    #[inline]
    pub(crate) fn spill_bytes(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_BYTES)
    }

    /// Spill rounds that wrote.
    #[inline]
    pub(crate) fn spill_rounds(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_ROUNDS)
    }

    /// Spill rounds that failed.
    #[inline]
    pub(crate) fn spill_errors(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_ERRORS)
    }

    /// The last failed round's errno (0: the last round succeeded).
    #[inline]
    pub(crate) fn spill_errno(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_ERRNO)
    }

    /// Groups moved onto the log.
    #[inline]
    pub(crate) fn spill_transfers(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_TRANSFERS)
    }

    /// Rounds that found a dead round's leftovers.
    #[inline]
    pub(crate) fn spill_recoveries(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_RECOVERIES)
    }

    /// When the round in progress began (monotonic ns).
    #[inline]
    pub(crate) fn spill_round_since(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_ROUND_SINCE)
    }

    /// Transfers that found a backlog missing from the log.
    #[inline]
    pub(crate) fn spill_backlog_missing(&self) -> &'a AtomicU64 {
        self.region.u64_at(OFF_SPILL_BACKLOG_MISSING)
    }
}

slot_view! {
    /// A group's slot (its cursor: [`Ring::cursor`]).
    ///
    /// [`Ring::cursor`]: crate::protocol::ring::Ring::cursor
    GroupSlot {
        /// The slot's state (low byte: FREE, CREATING, ACTIVE, …) and id.
        state = G_STATE,
        /// Creation time (wall clock, ns).
        created = G_CREATED,
        /// Ack entries PENDING redelivery.
        pending = G_PENDING,
        /// Deliveries before a message is given up (0: no limit).
        max_attempts = G_MAX_ATTEMPTS,
        /// Messages given up (dead-lettered or dropped).
        dead_lettered = G_DEAD_LETTERED,
        /// Redeliveries.
        redelivered = G_REDELIVERED,
        /// The dead-letter group's slot plus one (0: none).
        dead_letter = G_DEAD_LETTER,
        /// 1 for a dead-letter group (it delivers only dead letters).
        dl_only = G_DL_ONLY,
        /// The window: most messages a member holds unacknowledged.
        max_unacked = G_MAX_UNACKED,
        /// The ack deadline (ns; 0: none).
        ack_wait = G_ACK_WAIT,
        /// Holds ended by their deadline.
        expired = G_EXPIRED,
        /// One past the highest ack entry ever used.
        entries_hwm = G_ENTRIES_HWM,
        /// The group's default time to live (ns; 0: none).
        ttl = G_TTL,
        /// Messages whose time to live ran out before a member took them.
        ttl_expired = G_TTL_EXPIRED,
        /// 1: the group hands out a key's messages one at a time, in order.
        keyed = G_KEYED,
        /// Messages parked behind an earlier one of their key.
        parked = G_PARKED,
    }
}

slot_view! {
    /// A member's slot in its group.
    MemberSlot {
        /// FREE or ACTIVE.
        state = M_STATE,
        /// The member's process.
        pid = M_PID,
        /// That process's start time (with the pid, its identity).
        start = M_START,
        /// The read hazard: the ring position being read, or IDLE.
        inflight = M_INFLIGHT,
        /// Messages handed to this member.
        delivered = M_DELIVERED,
        /// Messages it acknowledged.
        acked = M_ACKED,
        /// 1 while the member is counted asleep (wait.rs).
        asleep = M_ASLEEP,
    }
}

slot_view! {
    /// A producer's registry slot (registry.rs).
    ProducerSlot {
        /// Owner: pid, or 0 for a free slot.
        owner = S_OWNER,
        /// The owner's start time (with the pid, its identity across pid reuse).
        start = S_START,
        /// The claim being made: position, with INTENT or CLAIMED in the low bits.
        claim = S_CLAIM,
        /// End position of that claim.
        end = S_END,
        /// Its first sequence number.
        seq = S_SEQ,
        /// Its record count.
        count = S_COUNT,
        /// The identity slot of a named producer, plus one (0: anonymous).
        ident = S_IDENT,
        /// A named producer's pseq of the claim's first record.
        pseq = S_PSEQ,
        /// 1 while the producer is counted asleep (wait.rs).
        asleep = P_ASLEEP,
    }
}

slot_view! {
    /// A producer name's slot (identity.rs); the name itself is at
    /// [`NameSlot::name_off`].
    NameSlot {
        /// FREE or NAMED, and a generation.
        state = I_STATE,
        /// The registry slot holding the name, plus one (0: nobody).
        owner = I_OWNER,
        /// The next pseq the name expects.
        next = I_NEXT,
        /// Messages published under the name.
        published = I_PUBLISHED,
        /// Sends refused as duplicates.
        duplicates = I_DUPLICATES,
        /// Attaches under the name.
        attaches = I_ATTACHES,
        /// Generation, bumped when the name is released.
        gen = I_GEN,
    }
}

slot_view! {
    /// One entry of a group's ack table (ack.rs).
    AckEntry {
        /// State, owner and attempts, packed (ack.rs: `word_state`, …).
        state = E_STATE,
        /// The message's sequence number.
        seq = E_SEQ,
        /// Where it is: a ring position, or a log position for one on disk.
        at = E_AT,
        /// When the hold began (monotonic ns), for the ack deadline.
        since = E_SINCE,
        /// The ring position the entry keeps from being overwritten (IDLE: none).
        pin = E_PIN,
        /// The dead letter's sequence number, once forwarded.
        dl_seq = E_DL_SEQ,
        /// The dead letter's ring position, once forwarded.
        dl_pos = E_DL_POS,
        /// The origin of a dead letter handed over (ORIGIN_SET | group id).
        origin = E_ORIGIN,
    }
}

impl<R> NameSlot<'_, R> {
    /// Byte offset of the name in the region.
    pub(crate) fn name_off(&self) -> usize {
        self.off + I_NAME_LEN
    }
}

impl<'a, R: Region> GroupSlot<'a, R> {
    /// Byte offset of the group's name in the region.
    pub(crate) fn name_off(&self) -> usize {
        self.off + G_NAME_LEN
    }

    /// The group's cursor: `(seq, pos)` packed (ring.rs `pack`).
    #[inline]
    pub(crate) fn cursor(&self) -> &'a AtomicU128 {
        self.region.u128_at(self.off + G_CURSOR)
    }

    /// Byte offset of member slot `m` in the region.
    #[inline]
    pub(crate) fn member_off(&self, m: usize) -> usize {
        self.off + G_MEMBERS + m * MEMBER_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes_are_aligned() {
        assert_eq!(record_size(0), 32);
        assert_eq!(record_size(1), 40);
        assert_eq!(record_size(8), 40);
        assert_eq!(record_size(9), 48);
    }

    #[test]
    fn geometry_bounds() {
        let g = Geometry {
            capacity: 1 << 16,
            max_msg: 1024,
            max_groups: 4,
            max_members: 4,
            max_producers: 4,
            ack_entries: 8,
        };
        assert!(g.validate().is_ok());
        assert_eq!(g.ring_off() % 4096, 0);
        assert_eq!(g.file_size(), g.ring_off() + (1 << 16));
        assert!(Geometry {
            capacity: 1000,
            ..g
        }
        .validate()
        .is_err());
        assert!(Geometry {
            max_msg: (1 << 16) / 4 - 32 - 32 + 1,
            ..g
        }
        .validate()
        .is_err());
        assert!(Geometry {
            max_msg: (1 << 16) / 4 - 32 - 32,
            ..g
        }
        .validate()
        .is_ok());
        assert!(Geometry {
            ack_entries: 0,
            ..g
        }
        .validate()
        .is_err());
        assert!(Geometry { max_groups: 0, ..g }.validate().is_err());
        assert!(Geometry {
            max_members: 5000,
            ..g
        }
        .validate()
        .is_err());
        assert!(Geometry {
            max_producers: 0,
            ..g
        }
        .validate()
        .is_err());
        assert!(Geometry {
            max_producers: MAX_PRODUCERS_LIMIT + 1,
            ..g
        }
        .validate()
        .is_err());
        // The tables follow each other, each slot on lines of its own.
        assert_eq!(g.producer_table_off() % 128, 0);
        assert_eq!(
            g.identity_table_off(),
            g.producer_off(4) + PRODUCER_SLOT_SIZE
        );
        assert!(g.identity_off(3) + IDENTITY_SIZE <= g.ring_off());
    }

    #[test]
    fn pack_roundtrip() {
        assert_eq!(unpack(pack(7, 1 << 40)), (7, 1 << 40));
    }
}
