//! The guest's grant references (grant table v1: 512 entries per 4 KiB frame, the first 8
//! reserved for the toolstack): which are free, and when the table must grow by a frame.
//! A new domain starts with an empty table, so `reset` forgets every reference handed out.
use super::abi::grant_table::GNTTAB_NR_RESERVED_ENTRIES;
use alloc::vec::Vec;

pub const ENTRIES_PER_FRAME: u32 = 4096 / 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRefs {
    /// Frames the table has (mapped by the guest).
    frames: u32,
    /// Free references, handed out from the end (lowest first).
    free: Vec<u32>,
}

impl GrantRefs {
    pub fn new(frames: u32) -> GrantRefs {
        let mut g = GrantRefs { frames: 0, free: Vec::new() };
        g.reset(frames);
        g
    }

    /// Every reference of `frames` frames free again (a new domain, or at boot).
    pub fn reset(&mut self, frames: u32) {
        self.frames = frames;
        self.free = (GNTTAB_NR_RESERVED_ENTRIES..frames * ENTRIES_PER_FRAME).rev().collect();
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// A free reference, or None: the table is full (`grow` it, then ask again).
    pub fn alloc(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// The table now has one more frame: its entries are free.
    pub fn grow(&mut self) {
        let first = self.frames * ENTRIES_PER_FRAME;
        self.frames += 1;
        // Keep the lowest references at the end, so they go first.
        let mut more: Vec<u32> = (first..first + ENTRIES_PER_FRAME).rev().collect();
        more.append(&mut self.free);
        self.free = more;
    }

    /// Gives a reference back. A reference this table never handed out is refused.
    pub fn release(&mut self, gref: u32) -> bool {
        if gref < GNTTAB_NR_RESERVED_ENTRIES || gref >= self.frames * ENTRIES_PER_FRAME || self.free.contains(&gref) {
            return false;
        }
        self.free.push(gref);
        true
    }

    /// The table frame holding `gref`, and the entry's index in it.
    pub fn locate(gref: u32) -> (u32, u32) {
        (gref / ENTRIES_PER_FRAME, gref % ENTRIES_PER_FRAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_skip_the_reserved_entries_and_grow_by_frames() {
        let mut g = GrantRefs::new(1);
        assert_eq!(g.free_count(), 504);
        assert_eq!(g.alloc(), Some(8));
        assert_eq!(g.alloc(), Some(9));
        while g.alloc().is_some() {}
        g.grow();
        assert_eq!((g.frames(), g.free_count()), (2, 512));
        assert_eq!(g.alloc(), Some(512));
        assert_eq!(GrantRefs::locate(513), (1, 1));
    }

    #[test]
    fn releases_are_checked_and_a_reset_forgets_everything() {
        let mut g = GrantRefs::new(1);
        let a = g.alloc().unwrap();
        assert!(g.release(a));
        assert!(!g.release(a), "twice");
        assert!(!g.release(3), "reserved");
        assert!(!g.release(600), "beyond the table");
        for _ in 0..10 {
            g.alloc();
        }
        g.reset(1);
        assert_eq!(g.free_count(), 504);
        assert_eq!(g.alloc(), Some(8));
    }
}
