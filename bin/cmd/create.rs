//! `shmq create`

use super::human_size;
use shmq::{Queue, QueueOptions};
use std::path::Path;

pub fn run(
    path: &Path,
    capacity: u64,
    max_msg: Option<u64>,
    max_groups: u32,
    max_members: u32,
    force: bool,
    mode: u32,
) -> Result<(), String> {
    // A record (32-byte header + payload) may take at most half the ring.
    let fits = (capacity / 2).saturating_sub(shmq::layout::RECORD_HEADER as u64) & !7;
    let max_msg = max_msg.unwrap_or_else(|| fits.min(64 << 10));
    let max_msg = u32::try_from(max_msg)
        .map_err(|_| format!("--max-msg {max_msg} is too large (at most 4 GiB)"))?;
    let opts = QueueOptions {
        capacity,
        max_msg,
        max_groups,
        max_members,
        replace: force,
        mode,
    };
    let q = Queue::create(path, &opts).map_err(|e| e.to_string())?;
    let g = q.geometry();
    eprintln!(
        "created {}: ring {}, max message {}, {} groups x {} members, file {}",
        path.display(),
        human_size(g.capacity),
        human_size(g.max_msg as u64),
        g.max_groups,
        g.max_members,
        human_size(g.file_size() as u64)
    );
    Ok(())
}
