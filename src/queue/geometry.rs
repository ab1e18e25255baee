//! A queue's shape, as users see it.

use crate::protocol::layout;

/// The shape of a queue, fixed when it was created ([`crate::Queue::geometry`]).
///
/// ```
/// let q = shmq::QueueOptions::new().capacity(64 << 10).max_groups(4).in_memory()?;
/// let g = q.geometry();
/// assert_eq!((g.capacity, g.max_groups), (64 << 10, 4));
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Geometry {
    /// Ring size in bytes, a power of two.
    pub capacity: u64,
    /// Largest payload in bytes.
    pub max_msg: u32,
    /// Group slots.
    pub max_groups: u32,
    /// Member slots per group.
    pub max_members: u32,
    /// Producers attached at once, and producer names.
    pub max_producers: u32,
    /// Entries in each group's ack table.
    pub ack_entries: u32,
}

impl Geometry {
    /// Ring bytes one message of `payload_len` bytes takes: its header, the
    /// producer extension if a named producer publishes it, padding to 8
    /// bytes. What [`crate::Producer::max_batch_bytes`] counts.
    ///
    /// ```
    /// use shmq::Geometry;
    /// assert_eq!(Geometry::record_bytes(0, false) % 8, 0);
    /// assert!(Geometry::record_bytes(64, true) > Geometry::record_bytes(64, false));
    /// ```
    pub const fn record_bytes(payload_len: usize, named: bool) -> u64 {
        let ext = if named { layout::PRODUCER_EXT } else { 0 };
        layout::record_size((payload_len + ext) as u64)
    }
}

impl Geometry {
    /// Bytes of the queue file: header, group and producer tables, ring.
    ///
    /// ```
    /// let q = shmq::QueueOptions::new().capacity(64 << 10).in_memory()?;
    /// assert!(q.geometry().file_size() > 64 << 10);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn file_size(&self) -> u64 {
        self.layout().file_size() as u64
    }

    /// The layout's view of this geometry (offsets, sizes), for the tests
    /// that write into a queue file.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn layout(&self) -> layout::Geometry {
        self.to_layout()
    }

    #[cfg(not(feature = "internals"))]
    fn layout(&self) -> layout::Geometry {
        self.to_layout()
    }

    fn to_layout(self) -> layout::Geometry {
        layout::Geometry {
            capacity: self.capacity,
            max_msg: self.max_msg,
            max_groups: self.max_groups,
            max_members: self.max_members,
            max_producers: self.max_producers,
            ack_entries: self.ack_entries,
        }
    }
}

impl From<layout::Geometry> for Geometry {
    fn from(g: layout::Geometry) -> Self {
        Geometry {
            capacity: g.capacity,
            max_msg: g.max_msg,
            max_groups: g.max_groups,
            max_members: g.max_members,
            max_producers: g.max_producers,
            ack_entries: g.ack_entries,
        }
    }
}
