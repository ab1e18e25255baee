//! What is published later, through a producer: messages scheduled for a
//! due time (`schedule`) and transactions (`txn`). Both are kept as files
//! (`file`) in the queue's staging directory (`dir`), next to the queue
//! file, until one of the queue's named producers publishes each exactly
//! once (`publish`).

pub(crate) mod dir;
pub(crate) mod file;
pub(crate) mod publish;
pub(crate) mod schedule;
pub(crate) mod txn;

/// What a queue holds staged ([`Stat::staged`](crate::Stat::staged)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StagedStat {
    /// Messages scheduled for later delivery, not released yet.
    pub scheduled: u64,
    /// When the earliest of them is due (ns since the Unix epoch).
    pub next_due_ns: Option<u64>,
    /// Transactions prepared and not resolved (or being committed).
    pub transactions: u64,
    /// Staged files refused as damaged and moved aside (`….bad`).
    pub damaged: u64,
}

/// What the staging directory `d` holds.
pub(crate) fn stat(d: &std::path::Path) -> StagedStat {
    let mut s = StagedStat {
        damaged: dir::damaged(d).len() as u64,
        ..StagedStat::default()
    };
    for (_, n) in dir::list(d).unwrap_or_default() {
        match n {
            dir::Name::Scheduled { due_ns, .. } => {
                s.scheduled += 1;
                s.next_due_ns = Some(s.next_due_ns.map_or(due_ns, |d| d.min(due_ns)));
            }
            dir::Name::Txn { .. } => s.transactions += 1,
        }
    }
    s
}
