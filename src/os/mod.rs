//! What the protocols need from the operating system: the mapping of a queue
//! file (a [`crate::region::Region`]), futexes, process liveness, and the
//! clock that stamps messages.

pub mod clock;
pub mod futex;
pub mod liveness;
pub mod mapping;
