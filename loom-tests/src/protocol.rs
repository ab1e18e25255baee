//! The library's `src/protocol/`, file for file: the same source, compiled
//! here against loom's atomics (`crate::sync`) and region
//! (`crate::LoomRegion`).

#[path = "../../src/protocol/ack.rs"]
pub mod ack;
#[path = "../../src/protocol/claim.rs"]
pub mod claim;
#[path = "../../src/protocol/due.rs"]
pub mod due;
#[path = "../../src/protocol/group.rs"]
pub mod group;
#[path = "../../src/protocol/identity.rs"]
pub mod identity;
#[path = "../../src/protocol/layout.rs"]
pub mod layout;
#[path = "../../src/protocol/order.rs"]
pub mod order;
#[path = "../../src/protocol/registry.rs"]
pub mod registry;
#[path = "../../src/protocol/ring.rs"]
pub mod ring;
#[path = "../../src/protocol/spill.rs"]
pub mod spill;
#[path = "../../src/protocol/ttl.rs"]
pub mod ttl;
#[path = "../../src/protocol/wait.rs"]
pub mod wait;
