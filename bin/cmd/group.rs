//! `shmq group add|rm`

use crate::cli::{From, GroupCmd};
use shmq::{Queue, StartAt};

pub fn run(cmd: GroupCmd) -> Result<(), String> {
    match cmd {
        GroupCmd::Add { path, group, from } => {
            let q = Queue::open(&path).map_err(|e| e.to_string())?;
            let start = match from {
                From::Earliest => StartAt::Earliest,
                From::Latest => StartAt::Latest,
            };
            q.add_group(&group, start).map_err(|e| e.to_string())
        }
        GroupCmd::Rm { path, group } => {
            let q = Queue::open(&path).map_err(|e| e.to_string())?;
            q.remove_group(&group).map_err(|e| e.to_string())
        }
    }
}
