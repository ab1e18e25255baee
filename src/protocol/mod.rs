//! The lock-free protocols, over the region abstraction ([`crate::region`]):
//! exactly the files `loom-tests` compiles a second time against loom's
//! atomics, so that what loom checks is the code that runs on a queue file.
//! Nothing here knows of files, processes or handles.
//!
//! - `layout`: where everything is in the region (docs/format.md).
//! - `ring`: the region's words by name (header, group and member slots,
//!   producer and name slots, ack entries), records written, committed, read.
//! - `claim`: how producers claim space and sequence numbers, and commit.
//! - `due`: the NEXT DUE hint of messages scheduled for later.
//! - `group`: consumer groups, their cursors and members' hazards.
//! - `ack`: the ack tables: holds, redelivery, dead letters.
//! - `order`: ordering by key within a group, over the ack table.
//! - `wait`: waiting and waking through futex words in the region.
//! - `registry`: the producer registry, and recovery of dead producers' claims.
//! - `identity`: the table of producer names (exactly-once publishing).
//! - `spill`: the spill front and the groups that read the log.
//! - `ttl`: time to live, a message's own and its group's default.

pub mod ack;
pub mod claim;
pub mod due;
pub mod group;
pub mod identity;
pub mod layout;
pub mod order;
pub mod registry;
pub mod ring;
pub mod spill;
pub mod ttl;
pub mod wait;
