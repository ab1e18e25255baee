//! `shmq stat`

use super::human_size;
use shmq::Queue;
use std::path::Path;

pub fn run(path: &Path, json: bool) -> Result<(), String> {
    let q = Queue::open(path).map_err(super::explain)?;
    let s = q.stat();
    let g = s.geometry;
    if json {
        // Every key is the name of the library field it shows (`Stat`,
        // `Geometry`, `GroupStat`, `MemberStat`, `ProducerStat`, `NameStat`,
        // `SpillStat`); the shape is in `shmq stat --help`.
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let groups: Vec<_> = s
            .groups
            .iter()
            .map(|gr| {
                serde_json::json!({
                    "name": gr.name,
                    "next_seq": gr.next_seq,
                    "lag": gr.lag,
                    "members": gr.members.iter().map(|m| serde_json::json!({
                        "pid": m.pid,
                        "alive": m.alive,
                        "delivered": m.delivered,
                        "acked": m.acked,
                        "unacked": m.unacked,
                        "asleep": m.asleep,
                    })).collect::<Vec<_>>(),
                    "on_disk": gr.on_disk,
                    "pending": gr.pending,
                    "ack_entries_used": gr.ack_entries_used,
                    "max_unacked": gr.max_unacked,
                    "ack_wait": gr.ack_wait.map(secs),
                    "expired": gr.expired,
                    "ttl": gr.ttl.map(secs),
                    "ttl_expired": gr.ttl_expired,
                    "ordered_by_key": gr.ordered_by_key,
                    "parked": gr.parked,
                    "ack_entries": gr.ack_entries.iter().map(|(s, m, seq)| serde_json::json!({
                        "state": s, "member_slot": m, "seq": seq,
                    })).collect::<Vec<_>>(),
                    "redelivered": gr.redelivered,
                    "dead_lettered": gr.dead_lettered,
                    "max_attempts": gr.max_attempts,
                    "dead_letter": gr.dead_letter,
                    "dead_letters_only": gr.dead_letters_only,
                })
            })
            .collect();
        let obj = serde_json::json!({
            "path": path.display().to_string(),
            "geometry": {
                "capacity": g.capacity,
                "max_msg": g.max_msg,
                "max_groups": g.max_groups,
                "max_members": g.max_members,
                "max_producers": g.max_producers,
                "ack_entries": g.ack_entries,
                "file_size": g.file_size(),
            },
            "tail_seq": s.tail_seq,
            "tail_pos": s.tail_pos,
            "head_seq": s.head_seq,
            "full_waits": s.full_waits,
            "stall_waits": s.stall_waits,
            "aborted": s.aborted,
            "sleeping_consumers": s.sleeping_consumers,
            "sleeping_producers": s.sleeping_producers,
            "groups": groups,
            "producers": s.producers.iter().map(|p| serde_json::json!({
                "pid": p.pid,
                "name": p.name,
                "alive": p.alive,
                "claim_seq": p.claim_seq,
                "asleep": p.asleep,
            })).collect::<Vec<_>>(),
            "names": s.names.iter().map(|n| serde_json::json!({
                "id": n.id,
                "name": n.name,
                "pid": n.pid,
                "last_pseq": n.last_pseq,
                "published": n.published,
                "duplicates": n.duplicates,
                "attaches": n.attaches,
            })).collect::<Vec<_>>(),
            "spill": s.spill.as_ref().map(|sp| serde_json::json!({
                "dir": sp.dir.display().to_string(),
                "segments": sp.segments,
                "bytes": sp.bytes,
                "first_seq": sp.first_seq,
                "last_seq": sp.last_seq,
                "spilled": sp.spilled,
                "spill_bytes": sp.spill_bytes,
                "rounds": sp.rounds,
                "transfers": sp.transfers,
                "errors": sp.errors,
                "recoveries": sp.recoveries,
                "last_errno": sp.last_errno,
                "front_seq": sp.front_seq,
                "round": sp.round.map(|(pid, t)| serde_json::json!({
                    "pid": pid,
                    "secs": secs(t),
                })),
            })),
            "staged": {
                "scheduled": s.staged.scheduled,
                "next_due_ns": s.staged.next_due_ns,
                "transactions": s.staged.transactions,
                "damaged": s.staged.damaged,
            },
        });
        println!("{obj}");
        return Ok(());
    }
    println!("queue     {}", path.display());
    println!(
        "geometry  ring {}, max message {}, {} group slots x {} members, {} producer slots, file {}",
        human_size(g.capacity),
        human_size(g.max_msg as u64),
        g.max_groups,
        g.max_members,
        g.max_producers,
        human_size(g.file_size() as u64)
    );
    println!("tail_seq  {}   (oldest held: {})", s.tail_seq, s.head_seq);
    println!(
        "full      {} waits on a full ring, {} behind a send or read in progress, {} aborted claims",
        s.full_waits, s.stall_waits, s.aborted
    );
    println!(
        "sleeping  {} consumer(s), {} producer(s) counted asleep (each commit, each release wakes them)",
        s.sleeping_consumers, s.sleeping_producers
    );
    let live = s.producers.iter().filter(|p| p.alive).count();
    println!(
        "producers {} registered ({live} alive){}",
        s.producers.len(),
        s.producers
            .iter()
            .map(|p| format!(
                "  pid {}{}{}",
                p.pid,
                p.name
                    .as_ref()
                    .map_or(String::new(), |n| format!(" as '{n}'")),
                match (p.alive, p.asleep) {
                    (true, false) => "",
                    (true, true) => " (asleep: ring full)",
                    (false, false) => " (dead)",
                    (false, true) => " (dead, killed asleep)",
                }
            ))
            .collect::<String>()
    );
    for n in &s.names {
        println!(
            "name      '{}' (id {}): last pseq {}, {} published, {} duplicates refused, {} attaches{}",
            n.name,
            n.id,
            n.last_pseq.map_or("none".into(), |l| l.to_string()),
            n.published,
            n.duplicates,
            n.attaches,
            n.pid.map_or(String::new(), |p| format!(", attached: pid {p}"))
        );
    }
    if let Some(sp) = &s.spill {
        let range = match (sp.first_seq, sp.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..={b}"),
            _ => "empty".into(),
        };
        println!(
            "spill     {}: {} segment(s), {} retained ({range}); {} messages spilled in {} rounds, {} group moves",
            sp.dir.display(),
            sp.segments,
            human_size(sp.bytes),
            sp.spilled,
            sp.rounds,
            sp.transfers
        );
        if let Some((pid, t)) = sp.round {
            println!(
                "spill     round in progress in pid {pid} for {:.3} s (it holds the spill lock)",
                t.as_secs_f64()
            );
        }
        if let Some(e) = sp.last_errno {
            println!(
                "spill     FAILING: {} ({} failed rounds): producers wait until the log can be written",
                std::io::Error::from_raw_os_error(e),
                sp.errors
            );
        }
    }
    let st = &s.staged;
    if st.scheduled > 0 {
        let due = st.next_due_ns.unwrap_or(0) as i128 - shmq::clock::now_ns() as i128;
        let when = if due >= 0 {
            format!("in {:.3} s", due as f64 / 1e9)
        } else {
            format!("{:.3} s ago, not released yet", -due as f64 / 1e9)
        };
        println!("scheduled {} message(s), the next due {when}", st.scheduled);
    }
    if st.transactions > 0 {
        println!(
            "txns      {} prepared transaction(s) (shmq txn list)",
            st.transactions
        );
    }
    if st.damaged > 0 {
        println!(
            "staged    {} DAMAGED file(s) moved aside (shmq check)",
            st.damaged
        );
    }
    if s.groups.is_empty() {
        println!("groups    none");
        return Ok(());
    }
    println!();
    println!(
        "{:<24} {:>12} {:>12} {:>6} {:>8}  pids",
        "GROUP", "NEXT_SEQ", "LAG", "SOURCE", "MEMBERS"
    );
    for gr in &s.groups {
        let live: Vec<String> = gr
            .members
            .iter()
            .map(|m| match (m.alive, m.asleep) {
                (true, false) => m.pid.to_string(),
                (true, true) => format!("{}(asleep)", m.pid),
                (false, false) => format!("{}(dead)", m.pid),
                (false, true) => format!("{}(dead, killed asleep)", m.pid),
            })
            .collect();
        let alive = gr.members.iter().filter(|m| m.alive).count();
        println!(
            "{:<24} {:>12} {:>12} {:>6} {:>8}  {}",
            gr.name,
            gr.next_seq,
            gr.lag,
            if gr.on_disk { "spill" } else { "ring" },
            alive,
            live.join(",")
        );
        let unacked: Vec<String> = gr
            .members
            .iter()
            .flat_map(|m| m.unacked.iter().map(move |u| format!("{}:{u}", m.pid)))
            .collect();
        if gr.pending + gr.redelivered + gr.dead_lettered + gr.expired > 0 || !unacked.is_empty() {
            println!(
                "{:<24} acks: {} unacked [{}], {} pending redelivery, {} redelivered, {} expired, {} dead-lettered (max attempts {})",
                "",
                unacked.len(),
                unacked.join(","),
                gr.pending,
                gr.redelivered,
                gr.expired,
                gr.dead_lettered,
                if gr.max_attempts == 0 { "none".to_string() } else { gr.max_attempts.to_string() }
            );
        }
        if gr.ordered_by_key || gr.parked > 0 {
            println!(
                "{:<24} ordered by key: {} parked behind an earlier message of their key",
                "", gr.parked
            );
        }
        if gr.ttl.is_some() || gr.ttl_expired > 0 {
            println!(
                "{:<24} time to live {}, {} expired before a member took them",
                "",
                gr.ttl
                    .map_or("none (per message)".to_string(), |d| format!("{d:?}")),
                gr.ttl_expired
            );
        }
        if gr.max_unacked > 1 || gr.ack_wait.is_some() {
            println!(
                "{:<24} window {} per member, ack deadline {}, ack table {} of {} in use",
                "",
                gr.max_unacked,
                gr.ack_wait.map_or("none".to_string(), |d| format!("{d:?}")),
                gr.ack_entries_used,
                g.ack_entries
            );
        }
        let others: Vec<String> = gr
            .ack_entries
            .iter()
            .filter(|(s, _, _)| !matches!(*s, "held" | "pending"))
            .map(|(s, m, seq)| match m {
                Some(m) => format!("{seq} {s} by member slot {m}"),
                None => format!("{seq} {s}"),
            })
            .collect();
        if !others.is_empty() {
            println!("{:<24} ack table also: {}", "", others.join(", "));
        }
        if let Some(d) = &gr.dead_letter {
            println!("{:<24} gives up to dead-letter group {d}", "");
        }
        if gr.dead_letters_only {
            println!(
                "{:<24} dead-letter group: receives only what other groups give up",
                ""
            );
        }
    }
    Ok(())
}
