//! PV page-table planning, pure: which 2 MiB slots of the low 1 GiB need an L1 table the
//! shim adds (Xen's bootstrap tables map only the start of RAM), and where each comes from:
//! the shim's static pool first, then pages at the top of the RAM mapped so far (withheld
//! from the payload). The bare-metal side fills the tables and makes the hypercalls.
use crate::layout::{PAGE_SIZE, PAYLOAD_WINDOW_MIN_END, PTES_PER_TABLE, PV_MAX_MAPPED_PAGES, PV_MIN_FREE_RAM_FOR_PAYLOAD};
use alloc::vec::Vec;

/// What an L2 slot of Xen's bootstrap tables holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Empty,
    /// An L1 table is already there (Xen's).
    Table,
    /// A 2 MiB superpage: the toolstack cannot migrate it ("Cannot migrate superpage").
    Superpage,
}

/// Where a new L1 table's page comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1Source {
    /// Page `n` of the shim's static pool.
    Pool(usize),
    /// The RAM page at this pseudo-physical address.
    Ram(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1Plan {
    /// (L2 slot, where its new L1 comes from), pool entries first.
    pub tables: Vec<(u64, L1Source)>,
    /// RAM is mapped 1:1 up to here at the end.
    pub mapped_end: u64,
    /// RAM pages taken for L1 tables: (address, bytes).
    pub ram_taken: Option<(u64, u64)>,
    /// The plan stops short of RAM's end (no room for more page tables).
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    Superpage(u64),
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlanError::Superpage(s) => write!(f, "Xen mapped a superpage at L2 slot {s}, which no PV guest can be migrated with"),
        }
    }
}

/// Plans the L1 tables for `nr_pages` of RAM, given what each L2 slot holds and the size of
/// the static pool.
pub fn plan(nr_pages: u64, slot: impl Fn(u64) -> Slot, pool_pages: usize) -> Result<L1Plan, PlanError> {
    let mapped_pages = nr_pages.min(PV_MAX_MAPPED_PAGES);
    let slots = mapped_pages.div_ceil(PTES_PER_TABLE);
    let slot_end = |s: u64| ((s + 1) * PTES_PER_TABLE).min(nr_pages) * PAGE_SIZE;
    let mut tables = Vec::new();
    let mut end = 0;
    let mut s = 0;
    // Phase 1: the static pool.
    while s < slots {
        match slot(s) {
            Slot::Superpage => return Err(PlanError::Superpage(s)),
            Slot::Table => {}
            Slot::Empty => {
                if tables.len() == pool_pages {
                    break;
                }
                tables.push((s, L1Source::Pool(tables.len())));
            }
        }
        end = slot_end(s);
        s += 1;
    }
    if s == slots {
        return Ok(L1Plan { tables, mapped_end: end, ram_taken: None, truncated: false });
    }
    // Phase 2: one page per remaining slot, from the top of what phase 1 mapped. (A slot
    // Xen already filled cannot follow an empty one: its bootstrap map is contiguous.)
    let needed = slots - s;
    let block = end.saturating_sub(needed * PAGE_SIZE);
    if block < PAYLOAD_WINDOW_MIN_END + PV_MIN_FREE_RAM_FOR_PAYLOAD {
        return Ok(L1Plan { tables, mapped_end: end, ram_taken: None, truncated: true });
    }
    for (i, slot_nr) in (s..slots).enumerate() {
        if slot(slot_nr) == Slot::Superpage {
            return Err(PlanError::Superpage(slot_nr));
        }
        tables.push((slot_nr, L1Source::Ram(block + i as u64 * PAGE_SIZE)));
        end = slot_end(slot_nr);
    }
    Ok(L1Plan { tables, mapped_end: end, ram_taken: Some((block, needed * PAGE_SIZE)), truncated: false })
}

/// The 512 pfns an L1 table for `slot` maps, and how many of them are RAM.
pub fn slot_pfns(slot: u64, nr_pages: u64) -> (u64, u64) {
    let first = slot * PTES_PER_TABLE;
    (first, nr_pages.saturating_sub(first).min(PTES_PER_TABLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn small_guest_uses_the_pool_only() {
        // 128 MiB: Xen mapped the first 8 MiB (4 slots), 60 slots need tables.
        let p = plan(128 * MIB / PAGE_SIZE, |s| if s < 4 { Slot::Table } else { Slot::Empty }, 128).unwrap();
        assert_eq!(p.tables.len(), 60);
        assert_eq!(p.tables[0], (4, L1Source::Pool(0)));
        assert_eq!(p.mapped_end, 128 * MIB);
        assert_eq!(p.ram_taken, None);
        println!("checked: 128 MiB -> 60 pool tables, all RAM mapped");
    }

    #[test]
    fn large_guest_takes_tables_from_the_top_of_ram() {
        // 768 MiB, pool of 128 (256 MiB): the rest (256 slots) from RAM below 256+4*2 MiB.
        let p = plan(768 * MIB / PAGE_SIZE, |s| if s < 4 { Slot::Table } else { Slot::Empty }, 128).unwrap();
        let pool = p.tables.iter().filter(|t| matches!(t.1, L1Source::Pool(_))).count();
        assert_eq!(pool, 128);
        assert_eq!(p.tables.len(), 384 - 4);
        let (block, bytes) = p.ram_taken.unwrap();
        assert_eq!(bytes, 252 * PAGE_SIZE);
        assert_eq!(block, 264 * MIB - 252 * PAGE_SIZE);
        assert_eq!(p.mapped_end, 768 * MIB);
        // Above 1 GiB nothing more is mapped.
        let p = plan(2048 * MIB / PAGE_SIZE, |s| if s < 4 { Slot::Table } else { Slot::Empty }, 128).unwrap();
        assert_eq!(p.mapped_end, 1024 * MIB);
        println!("checked: 768 MiB -> 128 pool + 252 RAM tables at {block:#x}; 2 GiB capped at 1 GiB");
    }

    #[test]
    fn superpages_and_tiny_guests() {
        assert_eq!(plan(64 * MIB / PAGE_SIZE, |s| if s == 5 { Slot::Superpage } else { Slot::Empty }, 128), Err(PlanError::Superpage(5)));
        // A pool of 2 and 64 MiB: no room above the payload base for 30 more tables.
        let p = plan(64 * MIB / PAGE_SIZE, |_| Slot::Empty, 2).unwrap();
        assert!(p.truncated);
        assert_eq!(p.mapped_end, 4 * MIB);
        // A RAM size that ends mid-slot maps exactly nr_pages.
        let p = plan(33 * MIB / PAGE_SIZE + 3, |_| Slot::Empty, 128).unwrap();
        assert_eq!(p.mapped_end, 33 * MIB + 3 * PAGE_SIZE);
        assert_eq!(slot_pfns(16, 33 * MIB / PAGE_SIZE + 3), (16 * 512, 3 + 256));
        println!("checked: superpage refused, truncated plan, partial last slot");
    }
}
