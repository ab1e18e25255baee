//! `shmq stat`

use super::human_size;
use shmq::Queue;
use std::path::Path;

pub fn run(path: &Path, json: bool) -> Result<(), String> {
    let q = Queue::open(path).map_err(|e| e.to_string())?;
    let s = q.stat();
    let g = s.geometry;
    if json {
        let groups: Vec<_> = s
            .groups
            .iter()
            .map(|gr| {
                serde_json::json!({
                    "name": gr.name,
                    "next_seq": gr.next_seq,
                    "lag": gr.lag,
                    "members": gr.members.iter().filter(|m| m.alive).count(),
                    "member_list": gr.members.iter().map(|m| serde_json::json!({
                        "pid": m.pid, "alive": m.alive, "delivered": m.delivered
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let obj = serde_json::json!({
            "path": path.display().to_string(),
            "capacity": g.capacity,
            "max_msg": g.max_msg,
            "max_groups": g.max_groups,
            "max_members": g.max_members,
            "file_size": g.file_size(),
            "tail_seq": s.tail_seq,
            "head_seq": s.head_seq,
            "full_waits": s.full_waits,
            "aborted": s.aborted,
            "groups": groups,
        });
        println!("{obj}");
        return Ok(());
    }
    println!("queue     {}", path.display());
    println!(
        "geometry  ring {}, max message {}, {} group slots x {} members, file {}",
        human_size(g.capacity),
        human_size(g.max_msg as u64),
        g.max_groups,
        g.max_members,
        human_size(g.file_size() as u64)
    );
    println!("tail_seq  {}   (oldest held: {})", s.tail_seq, s.head_seq);
    println!(
        "full      {} waits on a full ring, {} aborted claims",
        s.full_waits, s.aborted
    );
    if s.groups.is_empty() {
        println!("groups    none");
        return Ok(());
    }
    println!();
    println!(
        "{:<24} {:>12} {:>12} {:>8}  pids",
        "GROUP", "NEXT_SEQ", "LAG", "MEMBERS"
    );
    for gr in &s.groups {
        let live: Vec<String> = gr
            .members
            .iter()
            .map(|m| {
                if m.alive {
                    m.pid.to_string()
                } else {
                    format!("{}(dead)", m.pid)
                }
            })
            .collect();
        let alive = gr.members.iter().filter(|m| m.alive).count();
        println!(
            "{:<24} {:>12} {:>12} {:>8}  {}",
            gr.name,
            gr.next_seq,
            gr.lag,
            alive,
            live.join(",")
        );
    }
    Ok(())
}
