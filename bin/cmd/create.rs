//! `shmq create`

use super::human_size;
use crate::cli::CreateArgs;
use shmq::{QueueOptions, SpillOptions};

/// The default largest message of a ring of `capacity` bytes: 64 KiB, or
/// less when a record (32-byte header, extensions, payload) would take more
/// than a quarter of the ring (producers keep room for two, for dead
/// letters).
pub fn default_max_msg(capacity: u64) -> u64 {
    shmq::QueueOptions::fitting_max_msg(capacity).into()
}

pub fn run(a: CreateArgs) -> Result<(), String> {
    let max_msg = a.max_msg.unwrap_or_else(|| default_max_msg(a.capacity));
    let max_msg = u32::try_from(max_msg)
        .map_err(|_| format!("--max-msg {max_msg} is too large (at most 4 GiB)"))?;
    let spill = a.spill_dir.as_ref().map(|dir| SpillOptions {
        segment_size: a.segment_size,
        fsync: a.fsync,
        retain_bytes: a.retain_bytes.unwrap_or(0),
        retain_time: a.retain_time,
        ..SpillOptions::new(dir)
    });
    let opts = QueueOptions::new()
        .capacity(a.capacity)
        .max_msg(max_msg)
        .max_groups(a.max_groups)
        .max_members(a.max_members)
        .max_producers(a.max_producers)
        .ack_entries(a.ack_entries)
        .replace(a.force)
        .mode(a.mode)
        .spill(spill);
    let q = opts.create(&a.path).map_err(super::explain)?;
    let g = q.geometry();
    let spill = match q.spill_options() {
        Some(sp) => format!(", spill to {}", sp.dir.display()),
        None => String::new(),
    };
    println!(
        "created {}: ring {}, max message {}, {} groups x {} members, {} producers, file {}{spill}",
        a.path.display(),
        human_size(g.capacity),
        human_size(g.max_msg as u64),
        g.max_groups,
        g.max_members,
        g.max_producers,
        human_size(g.file_size())
    );
    Ok(())
}
