//! `shmq txn list|commit|abort`

use crate::cli::TxnCmd;
use shmq::{Queue, TxnState};

pub fn run(cmd: TxnCmd) -> Result<(), String> {
    match cmd {
        TxnCmd::List { path, json } => {
            let q = Queue::open(&path).map_err(super::explain)?;
            let txns = q.transactions().map_err(super::explain)?;
            let now = shmq::clock::now_ns();
            if !json && txns.is_empty() {
                println!("no prepared transactions");
            } else if !json {
                println!(
                    "{:>20}  {:<24} {:<10} {:>8} {:>10}  age",
                    "txid", "producer", "state", "messages", "bytes"
                );
            }
            for t in txns {
                let producer = t
                    .producer
                    .clone()
                    .unwrap_or_else(|| format!("#{}", t.producer_id));
                let state = match t.state {
                    TxnState::Prepared => "prepared",
                    _ => "committing",
                };
                if json {
                    let line = serde_json::json!({
                        "id": t.id,
                        "producer": t.producer,
                        "producer_id": t.producer_id,
                        "state": state,
                        "messages": t.messages,
                        "bytes": t.bytes,
                        "prepared_ns": t.prepared_ns,
                    });
                    println!("{line}");
                } else {
                    let age = std::time::Duration::from_millis(
                        now.saturating_sub(t.prepared_ns) / 1_000_000,
                    );
                    println!(
                        "{:>20}  {producer:<24} {state:<10} {:>8} {:>10}  {}",
                        t.id,
                        t.messages,
                        t.bytes,
                        humantime::format_duration(age)
                    );
                }
            }
            Ok(())
        }
        TxnCmd::Commit {
            path,
            producer,
            txid,
        } => {
            let mut p = attach(&path, &producer)?;
            let n = pending_messages(&mut p, txid)?;
            let first = p.commit_prepared(txid).map_err(super::explain)?;
            match n {
                0 => println!("transaction {txid} committed (empty)"),
                n => println!(
                    "transaction {txid} committed: {}, seq {first}..={}",
                    crate::cmd::count(n as u64, "message"),
                    first + n as u64 - 1
                ),
            }
            Ok(())
        }
        TxnCmd::Abort {
            path,
            producer,
            txid,
        } => {
            let mut p = attach(&path, &producer)?;
            p.abort_prepared(txid).map_err(super::explain)?;
            println!("transaction {txid} aborted");
            Ok(())
        }
    }
}

/// The queue at `path`'s producer `name`, attached (refused while another
/// process holds the name: its transactions are its own to resolve).
fn attach(path: &std::path::Path, name: &str) -> Result<shmq::Producer, String> {
    let q = Queue::open(path).map_err(super::explain)?;
    q.producer().name(name).attach().map_err(super::explain)
}

/// How many messages prepared transaction `txid` of `p` has.
fn pending_messages(p: &mut shmq::Producer, txid: u64) -> Result<usize, String> {
    let pending = p.pending_transactions().map_err(super::explain)?;
    pending
        .iter()
        .find(|t| t.id == txid)
        .map(|t| t.messages)
        .ok_or_else(|| format!("no prepared transaction {txid} of this producer (shmq txn list)"))
}
