//! Command-line definitions.

use crate::parse::{parse_duration, parse_fsync, parse_mode, parse_size, parse_wall_time};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Brokerless shared-memory message queue.
#[derive(Parser, Debug)]
#[command(name = "shmq", version, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a queue file (in /dev/shm for memory only).
    Create(CreateArgs),
    /// Add or remove consumer groups.
    Group {
        #[command(subcommand)]
        cmd: GroupCmd,
    },
    /// Manage producer names.
    Producer {
        #[command(subcommand)]
        cmd: ProducerCmd,
    },
    /// Send one message per line of stdin, or generated messages.
    Send(SendArgs),
    /// List, commit or abort prepared transactions (send --transaction).
    Txn {
        #[command(subcommand)]
        cmd: TxnCmd,
    },
    /// Receive as a member of a group; several receivers of one group share its messages.
    Recv(RecvArgs),
    /// Show geometry, tail, groups, lag and members.
    ///
    /// With --json, one JSON object whose keys are the names of the fields of
    /// the library's shmq::Stat and of the structs in it (Geometry, GroupStat,
    /// MemberStat, ProducerStat, NameStat, SpillStat); absent values are null,
    /// durations are in seconds:
    ///
    ///   path                 the queue file, as given
    ///   geometry             {capacity, max_msg, max_groups, max_members,
    ///                        max_producers, ack_entries, file_size}
    ///   tail_seq, tail_pos, head_seq, full_waits, stall_waits, aborted,
    ///   sleeping_consumers, sleeping_producers
    ///   groups               [{name, next_seq, lag, members, on_disk, pending,
    ///                        ack_entries_used, max_unacked, ack_wait, expired,
    ///                        ttl, ttl_expired, ordered_by_key, parked,
    ///                        ack_entries, redelivered, dead_lettered,
    ///                        max_attempts, dead_letter, dead_letters_only}]
    ///     members            [{pid, alive, delivered, acked, unacked, asleep}]
    ///     ack_entries        [{state, member_slot, seq}]
    ///   producers            [{pid, name, alive, claim_seq, asleep}]
    ///   names                [{id, name, pid, last_pseq, published,
    ///                        duplicates, attaches}]
    ///   spill                {dir, segments, bytes, first_seq, last_seq,
    ///                        spilled, spill_bytes, rounds, transfers, errors,
    ///                        recoveries, last_errno, front_seq, round}, or null
    ///                        without a spill log; round: {pid, secs} or null
    ///   staged               {scheduled, next_due_ns, transactions, damaged}:
    ///                        messages scheduled for later (send --delay),
    ///                        when the next is due, prepared transactions,
    ///                        staged files moved aside as damaged
    #[command(
        verbatim_doc_comment,
        about = "Show geometry, tail, groups, lag and members"
    )]
    Stat {
        /// The queue file.
        path: PathBuf,
        /// One JSON object (`shmq stat --help` lists its keys).
        #[arg(long)]
        json: bool,
    },
    /// Cross-process latency and throughput, next to the physical floor, a bare
    /// ring of shmq's record layout, a pipe, a Unix socket pair and
    /// crossbeam-channel.
    Bench {
        #[arg(value_enum, default_value_t = shmq_bench::Test::All)]
        test: shmq_bench::Test,
        /// Message sizes, comma separated [default: 8,64,512,4KiB,64KiB for
        /// ping-pong, 64 for throughput].
        #[arg(long, value_delimiter = ',', value_parser = parse_size)]
        size: Vec<u64>,
        /// Round trips per size (throughput sends ten times as many).
        #[arg(long, default_value_t = 100_000)]
        msgs: u64,
        /// Producers for the N -> 1 throughput test.
        #[arg(long, default_value_t = 2)]
        producers: u32,
        /// Groups for the 1 -> K groups test.
        #[arg(long, default_value_t = 8)]
        groups: u32,
        /// Members for the 1 -> group of K test.
        #[arg(long, default_value_t = 4)]
        members: u32,
        /// Ring size of the shmq queues, the bare rings and the floor's SPSC
        /// ring (a power of two; the unblocked tests size theirs to the run).
        #[arg(long, value_parser = parse_size, default_value = "1MiB")]
        capacity: u64,
        /// Run only these mechanisms (comma separated).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<shmq_bench::Mechanism>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also draw latency percentile curves into this SVG file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Take every measurement this many times, the mechanisms interleaved
        /// in each round: percentiles are over all rounds' samples, rates the
        /// median round's, and ratios to the floor the median (and range) of
        /// the per-round ratios. For machines whose speed drifts. (The spill
        /// test runs once.)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
        /// spill: the file system to spill to (a private directory is made in
        /// it) [default: the system temporary directory].
        #[arg(long)]
        spill_dir: Option<PathBuf>,
        /// spill: when the log is synced: never, segment, always or
        /// interval=DURATION.
        #[arg(long, default_value = "never", value_parser = parse_fsync)]
        fsync: shmq::Fsync,
        /// spill: messages per second in the latency cases [default: 100000,
        /// or half the rate the producer reached while spilling if less].
        #[arg(long)]
        rate: Option<u64>,
    },
    /// The far side of a benchmark (used by `shmq bench`).
    #[command(hide = true)]
    BenchWorker(shmq_bench::WorkerArgs),
    /// Print retained messages (spill log, then ring) without moving any group.
    ///
    /// One line per message: its sequence number, a tab, and the payload as
    /// sent (bytes as they are, as `shmq recv` prints them).
    Dump {
        /// The queue file.
        path: PathBuf,
        /// First sequence number to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// One JSON object per line: seq, ts_ns, source, payload (or payload_b64);
        /// producer (its name, null once removed), producer_id and pseq for a
        /// named producer's message.
        #[arg(long)]
        json: bool,
    },
    /// Validate a queue: header, group table, and every retained record.
    Check {
        /// The queue file.
        path: PathBuf,
        /// One JSON object (per line, where there are several).
        #[arg(long)]
        json: bool,
    },
    /// Remove members whose processes have died, and say which.
    Gc {
        /// The queue file.
        path: PathBuf,
    },
    /// Run spill rounds now: move lagging groups onto the log and caught-up
    /// groups back, apply retention. Producers and consumers do this on their
    /// own; this is for operators and for a dedicated spilling process.
    Spill {
        /// The queue file.
        path: PathBuf,
        /// Keep running a round every DURATION until killed.
        #[arg(long, value_parser = parse_duration)]
        every: Option<Duration>,
    },
    /// Run a small end-to-end demonstration with real processes.
    Demo {
        /// Messages per producer.
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
    },
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The queue file.
    pub path: PathBuf,
    /// Ring size: a power of two; plain bytes or KiB/MiB/GiB.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub capacity: u64,
    /// Largest message [default: 64KiB, or the most a ring this size allows].
    #[arg(long, value_parser = parse_size)]
    pub max_msg: Option<u64>,
    /// Group slots.
    #[arg(long, default_value_t = 16)]
    pub max_groups: u32,
    /// Member slots per group.
    #[arg(long, default_value_t = 16)]
    pub max_members: u32,
    /// Producer slots: producers attached at once, and producer names kept.
    #[arg(long, default_value_t = 64)]
    pub max_producers: u32,
    /// Entries of each group's ack table: messages the members of one group
    /// hold unacknowledged or that wait for redelivery, at once.
    #[arg(long, default_value_t = 64)]
    pub ack_entries: u32,
    /// Replace an existing file (and an existing spill log in --spill-dir).
    #[arg(long)]
    pub force: bool,
    /// Permission bits, octal (e.g. 660 to share with the group).
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    pub mode: u32,
    /// Spill a group that falls a ring behind to a log in this directory,
    /// instead of making producers wait.
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Size at which a spill segment is closed and a new one started.
    #[arg(long, default_value = "64MiB", value_parser = parse_size, requires = "spill_dir")]
    pub segment_size: u64,
    /// When spilled data is forced to disk: never, segment, always, or
    /// interval=DURATION (e.g. interval=100ms).
    #[arg(long, default_value = "never", value_parser = parse_fsync, requires = "spill_dir")]
    pub fsync: shmq::Fsync,
    /// Keep at least this much log after every group has read it (replay);
    /// any retention makes the log a journal of every message.
    #[arg(long, value_parser = parse_size, requires = "spill_dir")]
    pub retain_bytes: Option<u64>,
    /// Keep log segments at least this long after every group has read them.
    #[arg(long, value_parser = parse_duration, requires = "spill_dir")]
    pub retain_time: Option<Duration>,
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Register a group.
    Add {
        /// The queue file.
        path: PathBuf,
        /// The group's name.
        group: String,
        /// Start from the oldest message the ring holds, or the next one.
        #[arg(long, value_enum, default_value_t = From::Latest)]
        from: From,
        /// Give a message up (counted as dead-lettered in stat) after this many
        /// deliveries to members that nacked it or died holding it; 0: never.
        #[arg(long, default_value_t = 0)]
        max_attempts: u64,
        /// Send the messages given up (after --max-attempts, or expired by
        /// --ttl) to this dead-letter group (otherwise they are only counted).
        #[arg(long, conflicts_with = "dead_letters")]
        dead_letter: Option<String>,
        /// Make this a dead-letter group: it receives only the messages other
        /// groups give up and send to it (with --dead-letter NAME).
        #[arg(long, conflicts_with_all = ["from", "max_attempts"])]
        dead_letters: bool,
        /// Messages each member may hold unacknowledged at once (--ack
        /// explicit); a member may set its own with recv --max-unacked.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        max_unacked: u64,
        /// Ack deadline: a message held unacknowledged longer than this is
        /// given back for redelivery to another member (e.g. 30s).
        #[arg(long, value_parser = parse_duration)]
        ack_wait: Option<Duration>,
        /// Default time to live of the group's messages (e.g. 30s): one not
        /// handed to a member that long after it was published is given up
        /// (to --dead-letter, if given) and counted. A message sent with
        /// its own --ttl gets the shorter of the two.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        /// Hand the messages of one key (send --keyed) to the group's
        /// members one at a time, in sequence order: a key's next message
        /// waits until the one before is acknowledged (--ack explicit) or
        /// taken (auto); other keys' messages flow meanwhile.
        #[arg(long, conflicts_with = "dead_letters")]
        ordered_by_key: bool,
    },
    /// Unregister a group (refused while it has live members).
    Rm {
        /// The queue file.
        path: PathBuf,
        /// The group's name.
        group: String,
    },
    /// Move a group (with no live members) to earliest, latest or SEQ: any
    /// sequence number the ring or the spill log retains.
    Seek {
        /// The queue file.
        path: PathBuf,
        /// The group's name.
        group: String,
        /// earliest, latest, or a sequence number.
        to: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProducerCmd {
    /// Forget a producer name (refused while a live producer uses it): its
    /// slot is freed, its id names nothing from now on, and a producer using
    /// the name again starts over from pseq 0 with a new id.
    Rm {
        /// The queue file.
        path: PathBuf,
        /// The producer name.
        name: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum From {
    Earliest,
    Latest,
}

/// `shmq send`: publish lines of stdin, or generated messages.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The queue file.
    pub path: PathBuf,
    /// Send this many generated messages instead of reading stdin.
    #[arg(long, requires = "size")]
    pub count: Option<u64>,
    /// Size of each generated message (with --count).
    #[arg(long, value_parser = parse_size, requires = "count")]
    pub size: Option<u64>,
    /// Pace generated messages: one every DURATION (e.g. 50us).
    #[arg(long, value_parser = parse_duration, requires = "count")]
    pub interval: Option<Duration>,
    /// Give up (exit 1) if a message cannot be sent within DURATION
    /// [default: wait as long as it takes].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Publish as the named producer NAME: each message carries NAME's id and
    /// a per-producer sequence number (pseq), numbered on from the last one
    /// committed under NAME.
    #[arg(long, value_name = "NAME")]
    pub producer: Option<String>,
    /// Number the messages N, N+1, ... instead; those already committed under
    /// the name are skipped as duplicates, so a send repeated after a crash
    /// publishes each message exactly once.
    #[arg(long, value_name = "N", requires = "producer")]
    pub pseq: Option<u64>,
    /// Publish N messages at a time with one claim: all or nothing, no group
    /// sees part of a batch, also if this process is killed in the middle
    /// of one. The last batch may be shorter.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
          conflicts_with_all = ["pseq", "interval"])]
    pub batch: Option<u64>,
    /// Each message's time to live (e.g. 500ms, 30s): a group that has not
    /// handed it to a member by then gives it up (to its dead-letter group,
    /// if it has one) and counts it.
    #[arg(long, value_parser = parse_duration, conflicts_with_all = ["pseq", "batch"])]
    pub ttl: Option<Duration>,
    /// Each line of stdin is KEY<TAB>PAYLOAD: the message carries KEY (at
    /// most 64 bytes), by which a group added with --ordered-by-key hands a
    /// key's messages to its members one at a time, in order.
    #[arg(long, conflicts_with_all = ["pseq", "batch", "count"])]
    pub keyed: bool,
    /// Deliver each message this long from now (e.g. 10s, 5m): no group
    /// sees it before; then it is published (and gets its sequence
    /// number). Kept in the queue's staging directory meanwhile; released by
    /// any process attached to the queue (waiting receivers do it).
    #[arg(long, value_parser = parse_duration,
          conflicts_with_all = ["pseq", "batch", "deliver_at", "transaction"])]
    pub delay: Option<Duration>,
    /// Deliver each message at this wall-clock time: RFC 3339 in UTC
    /// (2026-12-05T18:00:00Z) or seconds since the Unix epoch.
    #[arg(long, value_parser = parse_wall_time,
          conflicts_with_all = ["pseq", "batch", "transaction"])]
    pub deliver_at: Option<SystemTime>,
    /// Send all of stdin (or --count messages) as one transaction of the
    /// producer: prepared at end of input (written and flushed to the
    /// staging directory), then committed: every group sees all of it at
    /// once, with consecutive sequence numbers, or none of it. Killed
    /// before the prepare, nothing is published; after it, the transaction
    /// stays prepared for `shmq txn` or the producer's next run to resolve.
    #[arg(long, requires = "producer", conflicts_with_all = ["pseq", "batch"])]
    pub transaction: bool,
}

/// `shmq txn`: prepared transactions.
#[derive(Subcommand, Debug)]
pub enum TxnCmd {
    /// List the prepared transactions of every producer name.
    List {
        /// The queue file.
        path: PathBuf,
        /// One JSON object per line: id, producer, producer_id, state
        /// (prepared or committing), messages, bytes, prepared_ns.
        #[arg(long)]
        json: bool,
    },
    /// Commit a prepared transaction: publish all its messages at once,
    /// exactly once (attaches as the producer: refused while it runs).
    Commit {
        /// The queue file.
        path: PathBuf,
        /// The producer name it was prepared under.
        producer: String,
        /// Its id (txn list).
        txid: u64,
    },
    /// Abort a prepared transaction: none of its messages is ever published.
    Abort {
        /// The queue file.
        path: PathBuf,
        /// The producer name it was prepared under.
        producer: String,
        /// Its id (txn list).
        txid: u64,
    },
}

/// `shmq recv`: receive a group's messages, one per line on stdout.
#[derive(clap::Args, Debug)]
pub struct RecvArgs {
    /// The queue file.
    pub path: PathBuf,
    /// The group's name.
    pub group: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when nothing arrives for this long (e.g. 500ms, 2s).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// One JSON object per line: seq, len, ts_ns, redelivered, payload (or
    /// payload_b64); producer (its name, null once removed), producer_id and
    /// pseq for a named producer's message, dead_letter_from and
    /// dead_letter_seq for a dead letter, ttl (seconds) and key for a
    /// message sent with them; recv_ns, the wall-clock time (ns) at which
    /// this receiver got it (as its receive returned), to compare the
    /// order in which several receivers took messages.
    #[arg(long)]
    pub json: bool,
    /// Print nothing per message.
    #[arg(long)]
    pub quiet: bool,
    /// At the end, print a JSON summary (count, order, latency) on stderr.
    #[arg(long)]
    pub stats: bool,
    /// auto: a message counts as consumed when handed out (at-most-once).
    /// explicit: each message is acknowledged only after its line has been
    /// written and stdout flushed (at-least-once: if this process dies first,
    /// the message is delivered again, with redelivered > 0).
    #[arg(long, value_enum, default_value_t = AckArg::Auto)]
    pub ack: AckArg,
    /// Take up to this many waiting messages at once (one cursor update for
    /// all of them; with --ack explicit, one at a time regardless).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// With --ack explicit: how many messages this member may hold
    /// unacknowledged at once [default: the group's]. Each is acknowledged
    /// once its line is written and flushed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_unacked: Option<u64>,
}

/// `--ack`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckArg {
    Auto,
    Explicit,
}
