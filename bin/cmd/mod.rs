//! One file per command.

mod check;
pub mod create;
mod demo;
mod dump;
mod gc;
mod group;
mod producer;
mod recv;
mod send;
mod spill;
mod stat;
mod txn;

use crate::cli::{Cli, Cmd};

/// Runs a parsed command line; the error is one line for stderr.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Create(args) => create::run(args),
        Cmd::Group { cmd } => group::run(cmd),
        Cmd::Producer { cmd } => producer::run(cmd),
        Cmd::Send(args) => send::run(&args),
        Cmd::Txn { cmd } => txn::run(cmd),
        Cmd::Recv(args) => recv::run(&args),
        Cmd::Stat { path, json } => stat::run(&path, json),
        Cmd::Check { path, json } => check::run(&path, json),
        Cmd::Gc { path } => gc::run(&path),
        Cmd::Dump {
            path,
            from,
            count,
            json,
        } => dump::run(&path, from, count, json),
        Cmd::Spill { path, every } => spill::run(&path, every),
        Cmd::Demo { messages } => demo::run(messages),
        Cmd::Bench {
            test,
            size,
            msgs,
            producers,
            groups,
            members,
            capacity,
            only,
            json,
            plot,
            rounds,
            spill_dir,
            fsync,
            rate,
        } => {
            let sizes: Vec<usize> = if !size.is_empty() {
                size.iter().map(|&s| s as usize).collect()
            } else if matches!(
                test,
                shmq_bench::Test::Throughput
                    | shmq_bench::Test::Keyed
                    | shmq_bench::Test::Delay
                    | shmq_bench::Test::Txn
            ) {
                vec![64]
            } else if test == shmq_bench::Test::Spill {
                vec![64, 4096]
            } else {
                vec![8, 64, 512, 4096, 65536]
            };
            if sizes.iter().any(|&s| s > 64 << 10) {
                return Err("bench sizes go up to 64 KiB".into());
            }
            if !capacity.is_power_of_two() {
                return Err(format!("--capacity {capacity} is not a power of two"));
            }
            let fits = create::default_max_msg(capacity) as usize;
            if let Some(&s) = sizes.iter().find(|&&s| s > fits) {
                return Err(format!(
                    "a {s}-byte message does not fit a ring of {capacity} bytes (at most {fits}); give a larger --capacity"
                ));
            }
            let opts = shmq_bench::Opts {
                sizes,
                msgs: msgs.max(1),
                producers: producers.max(1),
                groups: groups.max(1),
                members: members.max(1),
                capacity,
                only,
                json,
                plot,
                rounds,
                spill: shmq_bench::SpillBench {
                    dir: spill_dir.unwrap_or_else(std::env::temp_dir),
                    fsync,
                    rate,
                },
            };
            shmq_bench::run(test, opts)
        }
        Cmd::BenchWorker(args) => shmq_bench::run_worker(args),
    }
}

pub use shmq_bench::harness::{shm_tempdir, wait_members};

/// A library error as the command line says it: the library's message, and
/// what to do about it here (which option, which command).
pub fn explain(e: impl Into<shmq::Error>) -> String {
    use shmq::{Error, GroupError, OpenError, ProducerError};
    let e = e.into();
    let hint = match &e {
        Error::Open(OpenError::AlreadyExists(_)) => "use --force to replace it",
        Error::Open(OpenError::SpillDirInUse { .. }) => {
            "give the queue its own --spill-dir, or create it with --force to take this one over (its log is deleted)"
        }
        Error::Group(GroupError::TableFull { .. }) => {
            "remove a group, or create the queue with a larger --max-groups"
        }
        Error::Group(GroupError::MembersFull { .. }) => {
            "create the queue with a larger --max-members"
        }
        Error::Group(GroupError::NotDeadLetter(_)) => {
            "create it with `shmq group add PATH NAME --dead-letters`"
        }
        Error::Producer(ProducerError::RegistryFull { .. }) => {
            "create the queue with a larger --max-producers"
        }
        Error::Producer(ProducerError::NamesFull { .. }) => {
            "`shmq producer rm PATH NAME` removes one"
        }
        _ => return e.to_string(),
    };
    format!("{e}; {hint}")
}

/// Human-readable byte size.
pub fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// Adds a message's payload (`payload`, or `payload_b64` when it is not
/// UTF-8), for a named producer's message `producer` (its name, null once
/// the name was removed), `producer_id` and `pseq`, and for one sent with a
/// time to live `ttl` (seconds), and for one sent with a key `key` (or
/// `key_b64` when it is not UTF-8), to a JSON line of `recv` or `dump`.
pub fn json_message(
    obj: &mut serde_json::Value,
    q: &shmq::Queue,
    payload: &[u8],
    producer: Option<shmq::ProducerTag>,
    ttl: Option<std::time::Duration>,
    key: Option<shmq::Key>,
) {
    use base64::Engine;
    if let Some(t) = ttl {
        obj["ttl"] = t.as_secs_f64().into();
    }
    if let Some(k) = key {
        match std::str::from_utf8(&k) {
            Ok(s) => obj["key"] = s.into(),
            Err(_) => obj["key_b64"] = base64::engine::general_purpose::STANDARD.encode(&*k).into(),
        }
    }
    if let Some(t) = producer {
        obj["producer"] = q.producer_name(t.id).into();
        obj["producer_id"] = t.id.into();
        obj["pseq"] = t.pseq.into();
    }
    match std::str::from_utf8(payload) {
        Ok(s) => obj["payload"] = s.into(),
        Err(_) => {
            obj["payload_b64"] = base64::engine::general_purpose::STANDARD
                .encode(payload)
                .into()
        }
    }
}

/// `n thing` or `n things`.
pub fn count(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}
