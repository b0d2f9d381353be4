//! PVH and native: the shim's own page tables, replacing entry.S's boot tables (one writable
//! supervisor 2 MiB mapping of all of the low 4 GiB) with one that says, page by page, who
//! may do what (`AddressSpace`): still an identity map of the low 4 GiB, 2 MiB pages where a
//! whole 2 MiB has one access, 4 KiB tables where it does not (the shim's image, the payload's
//! stack and its guard page, the edges of the payload's regions). Under PV the same static
//! pages hold the payload's user-mode page table instead (hw/xen/pv_mm.rs): one boot uses
//! them one way only.
use super::cpu;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use xshim_shim::address_space::{Access, AddressSpace};
use xshim_shim::demand::{DemandMap, Unit};
use xshim_shim::layout::{IDENTITY_MAP_LIMIT, MAX_PAYLOAD_REGIONS, PAGE_SIZE, PTE_ADDR_MASK, PTES_PER_TABLE};

const LARGE_PAGE: u64 = PAGE_SIZE * PTES_PER_TABLE;
const DIRECTORIES: usize = (IDENTITY_MAP_LIMIT / (LARGE_PAGE * PTES_PER_TABLE)) as usize;
/// 4 KiB tables: two for the shim's first 4 MiB, two for each payload region's edges (the
/// window's and the stack's edges fall in the shim's own 4 MiB or on 2 MiB boundaries), and
/// four for where the payload's loaded segments end and its demand-populated memory starts.
const SMALL_TABLES: usize = 2 + 2 * MAX_PAYLOAD_REGIONS + 2 + 4;
/// Whether `install` turned no-execute on (the leaves `map_populated` writes follow suit).
static NO_EXECUTE: AtomicBool = AtomicBool::new(false);

#[repr(C, align(4096))]
pub struct Table([u64; PTES_PER_TABLE as usize]);
const EMPTY: Table = Table([0; PTES_PER_TABLE as usize]);

/// Written only by `install`, before the new CR3 is loaded; the CPU reads them after. Under
/// PVH and native the shim runs identity-mapped, so a table's address is its physical address.
static mut PML4: Table = EMPTY;
static mut PDPT: Table = EMPTY;
static mut DIRECTORY: [Table; DIRECTORIES] = [EMPTY; DIRECTORIES];
static mut SMALL: [Table; SMALL_TABLES] = [EMPTY; SMALL_TABLES];

/// The page-table pages for PV's user-mode table: a top level, one L3, an L2 per GiB of the
/// low 4 GiB (the DIRECTORY pages, consecutive), and the pool of L1 tables. Raw pointers: the caller fills them, then hands them to
/// Xen (read-only from then on).
pub fn pv_user_table_pages() -> (*mut Table, *mut Table, *mut Table, *mut Table, usize) {
    (&raw mut PML4, &raw mut PDPT, &raw mut DIRECTORY as *mut Table, &raw mut SMALL as *mut Table, SMALL_TABLES)
}

/// What `install` turned on.
pub struct Protection {
    pub no_execute: bool,
    pub smep: bool,
}

fn leaf_flags(a: Access, nx: bool) -> u64 {
    if !a.present() {
        return 0;
    }
    let mut f = F::PRESENT;
    if a.writable() {
        f |= F::WRITABLE;
    }
    if a.user() {
        f |= F::USER_ACCESSIBLE;
    }
    if nx && !a.executable() {
        f |= F::NO_EXECUTE;
    }
    f.bits()
}

/// Builds the tables for `space` and switches to them; turns on no-execute (EFER.NXE) and
/// SMEP (the shim never executes a user page) where the CPU has them. Interrupts off.
/// Demand-populated memory (`demand`, in 2 MiB units) not yet backed is left unmapped:
/// under PVH an access to a gfn Xen has no page for does not fault, it reads all-ones and
/// drops writes, so only the guest's own tables can catch the payload's first touch.
pub fn install(space: &AddressSpace, demand: Option<&DemandMap>) -> Result<Protection, &'static str> {
    let (nx, smep) = (cpu::has_no_execute(), cpu::has_smep());
    NO_EXECUTE.store(nx, Ordering::Relaxed);
    if demand.is_some_and(|m| m.unit_bytes() != LARGE_PAGE) {
        return Err("PVH demand population works in 2 MiB units");
    }
    // Per 2 MiB: None if it holds no demand memory; Some(true) if it is all demand memory.
    let demand_in = |base: u64| {
        let m = demand?;
        let u = Unit { start: base, end: base + LARGE_PAGE };
        m.pieces(u).next()?;
        Some(m.whole(u))
    };
    let mapped = |addr: u64| demand.is_none_or(|m| m.is_backed(addr));
    // Every upper level allows everything; the leaves decide.
    let upper = (F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE).bits();
    let pml4 = &raw mut PML4 as *mut u64;
    let pdpt = &raw mut PDPT as *mut u64;
    let dirs = &raw mut DIRECTORY as *mut Table;
    let small = &raw mut SMALL as *mut Table;
    let mut used = 0;
    // SAFETY: the tables are our statics, not yet in use by the CPU (CR3 still holds the boot
    // tables) and referenced by nothing else; every index is within its table.
    unsafe {
        pml4.write(pdpt as u64 | upper);
        for d in 0..DIRECTORIES {
            pdpt.add(d).write(dirs.add(d) as u64 | upper);
            for slot in 0..PTES_PER_TABLE {
                let base = (d as u64 * PTES_PER_TABLE + slot) * LARGE_PAGE;
                let pde = match (space.uniform(base, LARGE_PAGE), demand_in(base)) {
                    (Some(a), Some(true)) if a.present() && !mapped(base) => 0,
                    (Some(a), None | Some(true)) if a.present() => base | leaf_flags(a, nx) | F::HUGE_PAGE.bits(),
                    (Some(_), None) => 0,
                    _ => {
                        if used == SMALL_TABLES {
                            return Err("more 4 KiB page tables needed than the shim has");
                        }
                        let table = small.add(used) as *mut u64;
                        used += 1;
                        for i in 0..PTES_PER_TABLE {
                            let addr = base + i * PAGE_SIZE;
                            let leaf = if mapped(addr) { addr | leaf_flags(space.access_at(addr), nx) } else { 0 };
                            table.add(i as usize).write(leaf);
                        }
                        table as u64 | upper
                    }
                };
                (dirs.add(d) as *mut u64).add(slot as usize).write(pde);
            }
        }
    }
    // SAFETY: NXE only gives meaning to bit 63 of the entries just written; the new tables
    // map everything the shim uses at the same addresses (an identity map of the low 4 GiB),
    // with the shim's own pages supervisor and its text executable, so execution continues.
    unsafe {
        if nx {
            Efer::update(|f| *f |= EferFlags::NO_EXECUTE_ENABLE);
        }
        let frame = PhysFrame::from_start_address(PhysAddr::new(pml4 as u64)).map_err(|_| "PML4 not page-aligned")?;
        Cr3::write(frame, Cr3Flags::empty());
        if smep {
            Cr4::update(|f| *f |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
        }
    }
    Ok(Protection { no_execute: nx, smep })
}

/// The directory entry that maps `addr` (identity map: a table's address is its own).
fn directory_entry(addr: u64) -> *mut u64 {
    let large = addr / LARGE_PAGE;
    let dirs = &raw mut DIRECTORY as *mut Table;
    // SAFETY: pointer arithmetic inside the DIRECTORY array (addr is below the identity-map
    // limit, checked by the callers' demand ranges, which lie in RAM below 4 GiB).
    unsafe { (dirs.add((large / PTES_PER_TABLE) as usize) as *mut u64).add((large % PTES_PER_TABLE) as usize) }
}

/// PVH: maps demand memory just populated for the payload (user, writable, executable as
/// all its memory): the 2 MiB at `piece_start` as one large page if `whole_unit`, else each
/// page of `[piece_start, piece_end)` in the 4 KiB table `install` gave that 2 MiB.
pub fn map_populated(piece_start: u64, piece_end: u64, whole_unit: bool) -> Result<(), &'static str> {
    let flags = leaf_flags(Access::UserAll, NO_EXECUTE.load(Ordering::Relaxed));
    set_leaves(piece_start, piece_end, whole_unit, |addr, large| addr | flags | if large { F::HUGE_PAGE.bits() } else { 0 })
}

/// PVH: unmaps demand memory about to go back to Xen (the inverse of `map_populated`).
pub fn unmap_populated(piece_start: u64, piece_end: u64, whole_unit: bool) -> Result<(), &'static str> {
    set_leaves(piece_start, piece_end, whole_unit, |_, _| 0)
}

/// Writes `leaf(addr, large)` into the entries that map `[piece_start, piece_end)` (the
/// large-page entry of a whole unit, or the 4 KiB entries in the unit's table) and drops
/// them from the TLB.
fn set_leaves(piece_start: u64, piece_end: u64, whole_unit: bool, leaf: impl Fn(u64, bool) -> u64) -> Result<(), &'static str> {
    if piece_end > IDENTITY_MAP_LIMIT {
        return Err("demand memory beyond the identity map");
    }
    let pde = directory_entry(piece_start);
    if whole_unit {
        // SAFETY: the entry for an all-demand 2 MiB (`install` left it empty, or it is the
        // large page written here before); no Rust reference covers payload memory.
        unsafe { pde.write_volatile(leaf(piece_start, true)) };
        cpu::invlpg(piece_start);
        return Ok(());
    }
    // SAFETY: reading our own directory entry.
    let entry = unsafe { pde.read_volatile() };
    if entry & F::PRESENT.bits() == 0 || entry & F::HUGE_PAGE.bits() != 0 {
        return Err("a partly demand-populated 2 MiB has no 4 KiB table");
    }
    let table = (entry & PTE_ADDR_MASK) as *mut u64;
    let mut addr = piece_start;
    while addr < piece_end {
        // SAFETY: entry `addr`'s index of the 4 KiB table `install` built for this 2 MiB (one
        // of our SMALL statics, identity-mapped).
        unsafe { table.add(((addr / PAGE_SIZE) % PTES_PER_TABLE) as usize).write_volatile(leaf(addr, false)) };
        cpu::invlpg(addr);
        addr += PAGE_SIZE;
    }
    Ok(())
}
