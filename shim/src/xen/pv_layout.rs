//! PV page-table planning, pure: which 2 MiB slots of the low 4 GiB need an L1 table the
//! shim adds (Xen's bootstrap tables map only the start of RAM), which 1 GiB ranges need an
//! L2 table (Xen's bootstrap has one, for the first), and where each page comes from: the
//! shim's static pool first, then pages at the top of the RAM mapped so far (withheld from
//! the payload). Slots are numbered across the whole range: slot `s` maps
//! `[s * 2 MiB, (s + 1) * 2 MiB)` and lives in the L2 table of GiB `s / 512`. The bare-metal
//! side fills the tables and makes the hypercalls.
use crate::layout::{PAGE_SIZE, PAYLOAD_WINDOW_MIN_END, PTES_PER_TABLE, PV_MAX_MAPPED_PAGES, PV_MIN_FREE_RAM_FOR_PAYLOAD};
use alloc::vec::Vec;

/// What a slot of Xen's bootstrap tables holds (Empty also where its GiB has no L2 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Empty,
    /// An L1 table is already there (Xen's).
    Table,
    /// A 2 MiB superpage: the toolstack cannot migrate it ("Cannot migrate superpage").
    Superpage,
}

/// Where a new page-table page comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1Source {
    /// Page `n` of the shim's static pool.
    Pool(usize),
    /// The RAM page at this pseudo-physical address.
    Ram(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1Plan {
    /// (slot, where its new L1 comes from), pool entries first.
    pub tables: Vec<(u64, L1Source)>,
    /// (GiB, where its new L2 comes from): every GiB of the map but those Xen's bootstrap
    /// already has an L2 table for.
    pub l2_tables: Vec<(u64, L1Source)>,
    /// RAM is mapped 1:1 up to here at the end.
    pub mapped_end: u64,
    /// RAM pages taken for page tables: (address, bytes).
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

/// Plans the page tables for `nr_pages` of RAM (at most the low 4 GiB), given what each slot
/// holds, which GiBs already have an L2 table, and the size of the static pool.
pub fn plan(nr_pages: u64, slot: impl Fn(u64) -> Slot, has_l2: impl Fn(u64) -> bool, pool_pages: usize) -> Result<L1Plan, PlanError> {
    let mapped_pages = nr_pages.min(PV_MAX_MAPPED_PAGES);
    let slots = mapped_pages.div_ceil(PTES_PER_TABLE);
    let slot_end = |s: u64| ((s + 1) * PTES_PER_TABLE).min(nr_pages) * PAGE_SIZE;
    let mut tables = Vec::new();
    let mut l2_tables: Vec<(u64, L1Source)> = Vec::new();
    let mut pool_used = 0;
    let mut end = 0;
    let mut s = 0;
    // Phase 1: the static pool (an L2 table before the first L1 of its GiB).
    while s < slots {
        let gib = s / PTES_PER_TABLE;
        let needs_l2 = !has_l2(gib) && !l2_tables.iter().any(|&(g, _)| g == gib);
        match slot(s) {
            Slot::Superpage => return Err(PlanError::Superpage(s)),
            Slot::Table => {}
            Slot::Empty => {
                if pool_used + 1 + needs_l2 as usize > pool_pages {
                    break;
                }
                if needs_l2 {
                    l2_tables.push((gib, L1Source::Pool(pool_used)));
                    pool_used += 1;
                }
                tables.push((s, L1Source::Pool(pool_used)));
                pool_used += 1;
            }
        }
        end = slot_end(s);
        s += 1;
    }
    if s == slots {
        return Ok(L1Plan { tables, l2_tables, mapped_end: end, ram_taken: None, truncated: false });
    }
    // Phase 2: one page per remaining slot and missing L2, from the top of what phase 1
    // mapped. (A slot Xen already filled cannot follow an empty one: its bootstrap map is
    // contiguous.) Those pages must be mapped by a table already installed: the low GiB.
    let missing_l2: Vec<u64> = (s / PTES_PER_TABLE..slots.div_ceil(PTES_PER_TABLE)).filter(|&g| !has_l2(g) && !l2_tables.iter().any(|&(h, _)| h == g)).collect();
    let needed = slots - s + missing_l2.len() as u64;
    let block = end.saturating_sub(needed * PAGE_SIZE);
    if block < PAYLOAD_WINDOW_MIN_END + PV_MIN_FREE_RAM_FOR_PAYLOAD || end > PTES_PER_TABLE * PTES_PER_TABLE * PAGE_SIZE {
        return Ok(L1Plan { tables, l2_tables, mapped_end: end, ram_taken: None, truncated: true });
    }
    let mut next = block;
    let mut take = || {
        let page = next;
        next += PAGE_SIZE;
        L1Source::Ram(page)
    };
    for g in missing_l2 {
        l2_tables.push((g, take()));
    }
    for slot_nr in s..slots {
        if slot(slot_nr) == Slot::Superpage {
            return Err(PlanError::Superpage(slot_nr));
        }
        tables.push((slot_nr, take()));
        end = slot_end(slot_nr);
    }
    Ok(L1Plan { tables, l2_tables, mapped_end: end, ram_taken: Some((block, needed * PAGE_SIZE)), truncated: false })
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
        let p = plan(128 * MIB / PAGE_SIZE, |s| if s < 4 { Slot::Table } else { Slot::Empty }, |g| g == 0, 128).unwrap();
        assert_eq!(p.tables.len(), 60);
        assert_eq!(p.tables[0], (4, L1Source::Pool(0)));
        assert_eq!(p.mapped_end, 128 * MIB);
        assert_eq!(p.ram_taken, None);
        println!("checked: 128 MiB -> 60 pool tables, all RAM mapped");
    }

    #[test]
    fn large_guest_takes_tables_from_the_top_of_ram() {
        let xen = |s: u64| if s < 4 { Slot::Table } else { Slot::Empty };
        // 768 MiB, pool of 128 (256 MiB): the rest (256 slots) from RAM below 256+4*2 MiB.
        let p = plan(768 * MIB / PAGE_SIZE, xen, |g| g == 0, 128).unwrap();
        let pool = p.tables.iter().filter(|t| matches!(t.1, L1Source::Pool(_))).count();
        assert_eq!(pool, 128);
        assert_eq!(p.tables.len(), 384 - 4);
        assert!(p.l2_tables.is_empty());
        let (block, bytes) = p.ram_taken.unwrap();
        assert_eq!(bytes, 252 * PAGE_SIZE);
        assert_eq!(block, 264 * MIB - 252 * PAGE_SIZE);
        assert_eq!(p.mapped_end, 768 * MIB);
        // 2 GiB: a second L2 table, and all of RAM mapped.
        let p = plan(2048 * MIB / PAGE_SIZE, xen, |g| g == 0, 128).unwrap();
        assert_eq!(p.mapped_end, 2048 * MIB);
        assert_eq!(p.tables.len(), 1024 - 4);
        assert_eq!(p.l2_tables.len(), 1);
        assert_eq!(p.l2_tables[0].0, 1);
        let (block2, bytes2) = p.ram_taken.unwrap();
        assert_eq!(bytes2, (1024 - 4 - 128 + 1) * PAGE_SIZE, "892 L1 tables and one L2 from RAM");
        assert_eq!(block2 + bytes2, 264 * MIB);
        // Every slot has exactly one table; no page is handed out twice.
        let mut pages: Vec<L1Source> = p.tables.iter().chain(p.l2_tables.iter()).map(|t| t.1).collect();
        pages.sort_by_key(|s| match s { L1Source::Pool(n) => *n as u64, L1Source::Ram(a) => *a });
        pages.dedup();
        assert_eq!(pages.len(), p.tables.len() + p.l2_tables.len());
        // 6 GiB: the map stops at 4 GiB (the identity map's end), three L2 tables added.
        let p = plan(6144 * MIB / PAGE_SIZE, xen, |g| g == 0, 128).unwrap();
        assert_eq!(p.mapped_end, 4096 * MIB);
        assert_eq!(p.l2_tables.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        println!("checked: 768 MiB -> 128 pool + 252 RAM tables at {block:#x}; 2 GiB -> one more L2, {} KiB of tables in RAM; 6 GiB capped at 4 GiB", bytes2 >> 10);
    }

    #[test]
    fn a_pool_large_enough_supplies_the_second_l2_too() {
        // 1.5 GiB with a pool of 800: GiB 1's L2 comes from the pool before its first L1.
        let p = plan(1536 * MIB / PAGE_SIZE, |s| if s < 4 { Slot::Table } else { Slot::Empty }, |g| g == 0, 800).unwrap();
        assert_eq!(p.l2_tables, vec![(1, L1Source::Pool(508))]);
        assert_eq!(p.tables.iter().find(|t| t.0 == 512).map(|t| t.1), Some(L1Source::Pool(509)));
        println!("checked: L2 for GiB 1 from the pool, ahead of slot 512's L1");
    }

    #[test]
    fn superpages_and_tiny_guests() {
        assert_eq!(plan(64 * MIB / PAGE_SIZE, |s| if s == 5 { Slot::Superpage } else { Slot::Empty }, |g| g == 0, 128), Err(PlanError::Superpage(5)));
        // A pool of 2 and 64 MiB: no room above the payload base for 30 more tables.
        let p = plan(64 * MIB / PAGE_SIZE, |_| Slot::Empty, |g| g == 0, 2).unwrap();
        assert!(p.truncated);
        assert_eq!(p.mapped_end, 4 * MIB);
        // A RAM size that ends mid-slot maps exactly nr_pages.
        let p = plan(33 * MIB / PAGE_SIZE + 3, |_| Slot::Empty, |g| g == 0, 128).unwrap();
        assert_eq!(p.mapped_end, 33 * MIB + 3 * PAGE_SIZE);
        assert_eq!(slot_pfns(16, 33 * MIB / PAGE_SIZE + 3), (16 * 512, 3 + 256));
        println!("checked: superpage refused, truncated plan, partial last slot");
    }
}
