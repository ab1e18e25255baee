//! The spill log: its segment files and records (`log`), and the spill
//! rounds that move a lagging group's backlog into it and back (`rounds`).

pub mod log;
pub mod rounds;
