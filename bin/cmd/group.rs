//! `shmq group add|rm|seek`

use crate::cli::{From, GroupCmd};
use shmq::{Queue, SeekTo, StartAt};

pub fn run(cmd: GroupCmd) -> Result<(), String> {
    match cmd {
        GroupCmd::Add {
            path,
            group,
            from,
            max_attempts,
            dead_letter,
            dead_letters,
            max_unacked,
            ack_wait,
            ttl,
            ordered_by_key,
        } => {
            let q = Queue::open(&path).map_err(super::explain)?;
            if dead_letters {
                q.add_dead_letter_group(&group).map_err(super::explain)?;
                println!("dead-letter group '{group}' added");
                return Ok(());
            }
            if dead_letter.is_some() && max_attempts == 0 && ttl.is_none() {
                return Err(
                    "--dead-letter needs --max-attempts or --ttl: nothing would be given up"
                        .to_owned(),
                );
            }
            // Checked before the group exists, so a bad target adds nothing.
            if let Some(d) = &dead_letter {
                match q.stat().groups.iter().find(|g| &g.name == d) {
                    None => return Err(shmq::GroupError::Unknown(d.clone()).to_string()),
                    Some(g) if !g.dead_letters_only => {
                        return Err(super::explain(shmq::GroupError::NotDeadLetter(d.clone())))
                    }
                    Some(_) => {}
                }
            }
            let start = match from {
                From::Earliest => StartAt::Earliest,
                From::Latest => StartAt::Latest,
            };
            q.add_group(&group, start).map_err(super::explain)?;
            if max_attempts > 0 {
                q.set_max_attempts(&group, max_attempts)
                    .map_err(super::explain)?;
            }
            if dead_letter.is_some() {
                q.set_dead_letter(&group, dead_letter.as_deref())
                    .map_err(super::explain)?;
            }
            if max_unacked > 1 || ack_wait.is_some() {
                q.set_ack_policy(&group, max_unacked, ack_wait)
                    .map_err(super::explain)?;
            }
            if ttl.is_some() {
                q.set_ttl(&group, ttl).map_err(super::explain)?;
            }
            if ordered_by_key {
                q.set_ordered_by_key(&group, true).map_err(super::explain)?;
            }
            let next = q
                .stat()
                .groups
                .iter()
                .find(|g| g.name == group)
                .map_or(0, |g| g.next_seq);
            println!("group '{group}' added, starting at seq {next}");
            Ok(())
        }
        GroupCmd::Rm { path, group } => {
            let q = Queue::open(&path).map_err(super::explain)?;
            q.remove_group(&group).map_err(super::explain)?;
            println!("group '{group}' removed");
            Ok(())
        }
        GroupCmd::Seek { path, group, to } => {
            let q = Queue::open(&path).map_err(super::explain)?;
            let target =
                match to.as_str() {
                    "earliest" => SeekTo::Earliest,
                    "latest" => SeekTo::Latest,
                    s => SeekTo::Seq(s.parse().map_err(|_| {
                        format!("'{s}' is not earliest, latest or a sequence number")
                    })?),
                };
            let seq = q.seek_group(&group, target).map_err(super::explain)?;
            println!("group '{group}' now starts at seq {seq}");
            Ok(())
        }
    }
}
