//! The classic PV memory model: start_info (Xen's %rsi; rewritten by the toolstack on
//! restore), Xen's p2m array and the read-only m2p, the p2m frame-list pages the toolstack
//! saves us by, the shim's own GDT page, and the extra L1 tables that map RAM beyond Xen's
//! bootstrap tables. Every page-table change goes through mmu_update/update_va_mapping.
use super::hypercall::XenHypercalls;
use super::shared_info;
use core::sync::atomic::{AtomicU64, Ordering};
use xshim_shim::layout::{self, PAGE_SIZE, PTES_PER_TABLE};
use xshim_shim::address_space::{Access, AddressSpace};
use xshim_shim::demand::PopulateError;
use xshim_shim::xen::abi::xen::{MmuUpdate, MmuextOp, StartInfo, FIRST_RESERVED_GDT_ENTRY, MACH2PHYS_VIRT_START, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_LOCAL, MMU_NORMAL_PT_UPDATE};
use xshim_shim::xen::errno::XenResultExt;
use xshim_shim::xen::frames::{Mfn, Pfn};
use xshim_shim::xen::guest::{mfn_of_va, PlatformError, PvMemory};
use xshim_shim::xen::hypercalls::Hypercalls;
use xshim_shim::xen::pv::{pte, L2_PTE, RAM_PTE, RAM_PTE_RO};
use xshim_shim::xen::{p2m_tree, pv_layout};
use x86_64::structures::paging::PageTableFlags as Pte;

/// start_info's virtual address, the p2m array's address and its length in entries (set once
/// at boot; the toolstack rewrites the pages in place on restore).
static START_INFO_VA: AtomicU64 = AtomicU64::new(0);
/// Xen's bootstrap top-level page table (start_info.pt_base), for walks to an L1 entry.
static PT_BASE: AtomicU64 = AtomicU64::new(0);
static P2M_VA: AtomicU64 = AtomicU64::new(0);
static P2M_LEN: AtomicU64 = AtomicU64::new(0);
/// Where the kernel's 1:1 map of RAM ends (`map_ram`).
static MAPPED_END: AtomicU64 = AtomicU64::new(0);
/// The p2m's mark for a pseudo-physical frame with no machine frame behind it (libxc saves
/// such a frame as XTAB: an 8-byte entry, no data).
pub const INVALID_P2M_ENTRY: u64 = !0;

/// The PV memory as `xshim_shim`'s logic sees it.
pub struct PvMem;

/// Records where start_info and the p2m are (before anything else in a PV boot).
pub fn init(start_info_va: u64, p2m_va: u64, nr_pages: u64) {
    START_INFO_VA.store(start_info_va, Ordering::Relaxed);
    P2M_VA.store(p2m_va, Ordering::Relaxed);
    P2M_LEN.store(nr_pages, Ordering::Relaxed);
}

impl PvMemory for PvMem {
    fn start_info(&self) -> StartInfo {
        // SAFETY: START_INFO_VA is Xen's start_info page, mapped in the bootstrap area.
        unsafe { core::ptr::read_volatile(START_INFO_VA.load(Ordering::Relaxed) as *const StartInfo) }
    }
    fn set_start_info(&mut self, si: &StartInfo) {
        // SAFETY: as start_info(); the page is writable and only the shim uses it.
        unsafe { core::ptr::write_volatile(START_INFO_VA.load(Ordering::Relaxed) as *mut StartInfo, *si) }
    }
    fn start_info_va(&self) -> u64 {
        START_INFO_VA.load(Ordering::Relaxed)
    }
    fn p2m(&self, pfn: Pfn) -> Option<Mfn> {
        p2m(pfn)
    }
    fn m2p(&self, mfn: Mfn) -> Pfn {
        m2p(mfn)
    }
    fn publish_p2m(&mut self) -> Result<(), PlatformError> {
        publish_p2m_frame_list_list()
    }
}

/// The machine frame behind a pseudo-physical frame: Xen's p2m array (start_info.mfn_list).
pub fn p2m(pfn: Pfn) -> Option<Mfn> {
    if pfn.raw() >= P2M_LEN.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: P2M_VA is Xen's p2m array of P2M_LEN entries (mapped by the bootstrap tables,
    // rewritten in place by the toolstack on restore); pfn is in range.
    Some(Mfn::new(unsafe { core::ptr::read_volatile((P2M_VA.load(Ordering::Relaxed) as *const u64).add(pfn.raw() as usize)) }))
}

/// Records `mfn` (or INVALID_P2M_ENTRY) as the frame behind `pfn` in Xen's p2m array. The
/// array's pages stay where they are (libxc reads their frames once, at the start of a
/// save): only entries change.
fn set_p2m(pfn: Pfn, mfn: u64) -> Result<(), PlatformError> {
    if pfn.raw() >= P2M_LEN.load(Ordering::Relaxed) {
        return Err(PlatformError::BeyondP2m(pfn));
    }
    // SAFETY: as p2m(); the array is the guest's own, mapped writable, and only the shim
    // writes it (with events masked).
    unsafe { core::ptr::write_volatile((P2M_VA.load(Ordering::Relaxed) as *mut u64).add(pfn.raw() as usize), mfn) };
    Ok(())
}

pub fn m2p(mfn: Mfn) -> Pfn {
    // SAFETY: the read-only machine-to-physical table Xen maps into every 64-bit PV guest.
    Pfn::new(unsafe { core::ptr::read_volatile((MACH2PHYS_VIRT_START + mfn.raw() * 8) as *const u64) })
}

/// Entries in the p2m (the guest's pseudo-physical frames).
pub fn p2m_entries() -> u64 {
    P2M_LEN.load(Ordering::Relaxed)
}

/// The mfn of start_info (the suspend record), for the boot log.
pub fn start_info_mfn() -> Option<Mfn> {
    mfn_of_va(&PvMem, START_INFO_VA.load(Ordering::Relaxed)).ok()
}

/// p2m frame-list pages: 1 top + 4 middle pages = 4 x 512 x 512 pfns (4 GiB of guest memory).
const P2M_MID_PAGES: usize = 4;
#[repr(C, align(4096))]
struct FrameListPages([[u64; 512]; 1 + P2M_MID_PAGES]);
/// Read by the toolstack (by mfn) when it saves us; written only here, with events masked.
static mut P2M_FRAME_LISTS: FrameListPages = FrameListPages([[0; 512]; 1 + P2M_MID_PAGES]);

/// Builds the p2m frame-list-list from the p2m array's current mfns and publishes it, with
/// max_pfn, in shared_info's arch area (at boot and in every new domain).
fn publish_p2m_frame_list_list() -> Result<(), PlatformError> {
    let entries = P2M_LEN.load(Ordering::Relaxed);
    let p2m_va = P2M_VA.load(Ordering::Relaxed);
    let base = &raw mut P2M_FRAME_LISTS as *mut [u64; 512];
    // SAFETY: our static frame-list pages, written only here with events masked or before
    // the payload runs; the toolstack reads them only while we are suspended.
    let (top, mids) = unsafe { (&mut *base, core::slice::from_raw_parts_mut(base.add(1), P2M_MID_PAGES)) };
    let lookup = |va: u64| p2m(Pfn::containing(va)).unwrap_or(Mfn::new(0));
    p2m_tree::build(entries, |page| lookup(p2m_va + page * PAGE_SIZE), |m| lookup(base.wrapping_add(1 + m) as u64), top, mids)?;
    let fll = mfn_of_va(&PvMem, base as u64)?;
    if !shared_info::set_p2m_info(entries, fll.raw()) {
        return Err(PlatformError::SharedInfoNotMapped);
    }
    Ok(())
}

fn read_pte(table_va: u64, index: u64) -> u64 {
    // SAFETY: table_va is a page table page mapped (read-only) in the bootstrap area.
    unsafe { core::ptr::read_volatile((table_va + index * 8) as *const u64) }
}

/// The virtual address of the page table an entry points to (via the m2p).
fn next_table(entry: u64) -> Option<u64> {
    Pte::from_bits_retain(entry).contains(Pte::PRESENT).then(|| m2p(Mfn::of_maddr(entry)).addr())
}

#[repr(C, align(4096))]
struct PtPages([[u8; 4096]; layout::PV_EXTRA_L1_PAGES]);
/// Pages the shim turns into L1 tables (in its bss, inside Xen's bootstrap mapping).
static mut EXTRA_L1: PtPages = PtPages([[0; 4096]; layout::PV_EXTRA_L1_PAGES]);

/// What `map_ram` mapped: RAM 1:1 up to `end`, the RAM it took for L1 tables once the static
/// pool ran out (the payload must not get it), and whether it stopped short of RAM's end.
pub struct RamMap {
    pub end: u64,
    pub l1_pages_in_ram: Option<xshim_shim::start_info::Module>,
    pub truncated: bool,
}

/// Fills `page` (mapped writable) as the L1 table for slot `slot` and turns its own mapping
/// read-only (Xen will not take a page with a writable mapping as a page table); returns its
/// frame.
fn prepare_l1(nr_pages: u64, slot: u64, page: u64) -> Result<Mfn, PlatformError> {
    let (first, count) = pv_layout::slot_pfns(slot, nr_pages);
    let mut entries = [0u64; PTES_PER_TABLE as usize];
    for (i, e) in entries.iter_mut().enumerate().take(count as usize) {
        let pfn = Pfn::new(first + i as u64);
        *e = pte(p2m(pfn).ok_or(PlatformError::BeyondP2m(pfn))?, RAM_PTE);
    }
    make_table(page, &entries)
}

/// Writes `entries` into `page` (ours, mapped writable), then maps it read-only: ready to be
/// a page table. Returns its frame.
fn make_table(page: u64, entries: &[u64; PTES_PER_TABLE as usize]) -> Result<Mfn, PlatformError> {
    for (i, &e) in entries.iter().enumerate() {
        // SAFETY: `page` is a page the caller owns and has mapped writable; entry i of 512.
        unsafe { core::ptr::write_volatile((page + i as u64 * 8) as *mut u64, e) };
    }
    let page_mfn = mfn_of_va(&PvMem, page)?;
    // SAFETY: `page` is ours (pool or withheld RAM) and no Rust reference covers it; it is
    // remapped to its own frame, read-only.
    unsafe { XenHypercalls.update_va_mapping(page, pte(page_mfn, RAM_PTE_RO)) }.op("update_va_mapping(read-only page table)")?;
    Ok(page_mfn)
}

/// Xen's bootstrap L3 table (the one under the top-level table's first entry).
fn kernel_l3() -> Result<u64, PlatformError> {
    next_table(read_pte(PT_BASE.load(Ordering::Relaxed), 0)).ok_or(PlatformError::NoBootstrapTables)
}

/// Maps RAM 1:1 (vaddr = pfn * 4096) up to `nr_pages` (at most the low 4 GiB), as
/// `pv_layout::plan` lays out. L1 tables under an L2 Xen built go in with one batched
/// mmu_update per source, once each is read-only; a GiB without an L2 gets a new one, filled
/// with its L1 tables and installed in the L3 last.
pub fn map_ram(nr_pages: u64, pt_base: u64) -> Result<RamMap, PlatformError> {
    PT_BASE.store(pt_base, Ordering::Relaxed);
    let l3 = kernel_l3()?;
    let l3_mfn = Mfn::of_maddr(read_pte(pt_base, 0));
    let existing_l2 = |g: u64| next_table(read_pte(l3, g));
    let slot_of = |s: u64| {
        let Some(l2) = existing_l2(s / PTES_PER_TABLE) else { return pv_layout::Slot::Empty };
        let e = Pte::from_bits_retain(read_pte(l2, s % PTES_PER_TABLE));
        match (e.contains(Pte::PRESENT), e.contains(Pte::HUGE_PAGE)) {
            (false, _) => pv_layout::Slot::Empty,
            (true, true) => pv_layout::Slot::Superpage,
            (true, false) => pv_layout::Slot::Table,
        }
    };
    let plan = pv_layout::plan(nr_pages, slot_of, |g| existing_l2(g).is_some(), layout::PV_EXTRA_L1_PAGES)?;
    let page_of = |source: pv_layout::L1Source| match source {
        // SAFETY: EXTRA_L1 is our static pool; the plan hands out each page once.
        pv_layout::L1Source::Pool(n) => (unsafe { (&raw mut EXTRA_L1 as *mut [u8; 4096]).add(n) }) as u64,
        pv_layout::L1Source::Ram(addr) => addr,
    };
    // L1 tables for GiBs whose new L2 is installed at the end: (slot, frame).
    let mut pending: alloc::vec::Vec<(u64, Mfn)> = alloc::vec::Vec::new();
    // Pool tables first: RAM pages taken for tables lie in the range they map, so they can
    // be filled only once those are installed.
    for from_pool in [true, false] {
        let mut updates = alloc::vec::Vec::new();
        for &(slot, source) in &plan.tables {
            if matches!(source, pv_layout::L1Source::Pool(_)) != from_pool {
                continue;
            }
            let mfn = prepare_l1(nr_pages, slot, page_of(source))?;
            match read_pte(l3, slot / PTES_PER_TABLE) {
                l3e if Pte::from_bits_retain(l3e).contains(Pte::PRESENT) => {
                    let l2_mfn = Mfn::of_maddr(l3e);
                    updates.push(MmuUpdate { ptr: (l2_mfn.maddr() + (slot % PTES_PER_TABLE) * 8) | MMU_NORMAL_PT_UPDATE, val: pte(mfn, L2_PTE) });
                }
                _ => pending.push((slot, mfn)),
            }
        }
        if !updates.is_empty() {
            // SAFETY: each entry installs an L1 table just made read-only, under Xen's L2.
            unsafe { XenHypercalls.mmu_update(&updates) }.op("mmu_update(L2 entries)")?;
        }
    }
    for &(gib, source) in &plan.l2_tables {
        let mut entries = [0u64; PTES_PER_TABLE as usize];
        for &(slot, mfn) in pending.iter().filter(|(s, _)| s / PTES_PER_TABLE == gib) {
            entries[(slot % PTES_PER_TABLE) as usize] = pte(mfn, L2_PTE);
        }
        let l2_mfn = make_table(page_of(source), &entries)?;
        let update = [MmuUpdate { ptr: (l3_mfn.maddr() + gib * 8) | MMU_NORMAL_PT_UPDATE, val: pte(l2_mfn, L2_PTE) }];
        // SAFETY: installs a new L2 table, read-only, whose entries name L1 tables made
        // read-only above, each mapping RAM 1:1; Xen validates the whole tree.
        unsafe { XenHypercalls.mmu_update(&update) }.op("mmu_update(L3 entry: a new L2 table)")?;
    }
    MAPPED_END.store(plan.mapped_end, Ordering::Relaxed);
    Ok(RamMap { end: plan.mapped_end, l1_pages_in_ram: plan.ram_taken.map(|(paddr, size)| xshim_shim::start_info::Module { paddr, size }), truncated: plan.truncated })
}

#[repr(C, align(4096))]
struct GdtPage([u64; 512]);
/// The shim's own GDT page: a null descriptor and nothing else. The shim runs on the flat
/// selectors Xen keeps in its reserved entries (FLAT_KERNEL_CS64 ...), so this table only
/// replaces Xen's empty default with one the guest owns, as a PV kernel does; the toolstack
/// saves and restores it with the vCPU (its frames canonicalised like page tables).
static mut PV_GDT: GdtPage = GdtPage([0; 512]);

/// Registers PV_GDT with HYPERVISOR_set_gdt. Xen refuses a GDT frame that is mapped
/// writable anywhere, so its only mapping (the bootstrap area's) becomes read-only first.
pub fn load_gdt() -> Result<(), PlatformError> {
    let va = &raw const PV_GDT as u64;
    let mfn = mfn_of_va(&PvMem, va)?;
    // SAFETY: PV_GDT is never referenced as Rust memory; it keeps its own frame, read-only.
    unsafe { XenHypercalls.update_va_mapping(va, pte(mfn, RAM_PTE_RO)) }.op("update_va_mapping(read-only GDT)")?;
    let entries = (PTES_PER_TABLE as u32).min(FIRST_RESERVED_GDT_ENTRY);
    // SAFETY: the page holds only a null descriptor (valid), mapped read-only just above.
    unsafe { XenHypercalls.set_gdt(&[mfn], entries) }.op("HYPERVISOR_set_gdt")?;
    Ok(())
}

/// The kernel's L2 table for GiB `gib` of the 1:1 map: (its virtual address, its mfn).
fn kernel_l2(gib: u64) -> Result<(u64, Mfn), PlatformError> {
    let l3 = kernel_l3()?;
    let l2 = next_table(read_pte(l3, gib)).ok_or(PlatformError::NoBootstrapTables)?;
    Ok((l2, Mfn::of_maddr(read_pte(l3, gib))))
}

/// A user-mode leaf entry for `access` (0 if the payload may not touch the page).
fn user_leaf(pfn: Pfn, access: Access, nx: bool) -> Result<u64, PlatformError> {
    if !access.user() {
        return Ok(0);
    }
    let mut f = Pte::PRESENT | Pte::USER_ACCESSIBLE | Pte::ACCESSED;
    if access.writable() {
        f |= Pte::WRITABLE | Pte::DIRTY;
    }
    if nx && !access.executable() {
        f |= Pte::NO_EXECUTE;
    }
    let mfn = p2m(pfn).ok_or(PlatformError::BeyondP2m(pfn))?;
    // A frame given back to Xen (demand-populated memory not touched yet) stays unmapped.
    if mfn.raw() == INVALID_P2M_ENTRY {
        return Ok(0);
    }
    Ok(pte(mfn, f))
}

/// What `protect` set up.
pub struct PvProtection {
    pub no_execute: bool,
}

/// PV: keeps the payload out of the shim. Two parts:
/// - the kernel's own mappings of the shim's image: text read-only, everything else
///   no-execute (one batched mmu_update on Xen's bootstrap L1 tables);
/// - a separate page table for Xen's guest user mode, in which the payload runs: it maps
///   only what `space` gives the user (its window and free RAM share the kernel's L1 tables;
///   its stack and the call gate's page get their own, with the guard page left out), pinned
///   and installed with MMUEXT_NEW_USER_BASEPTR. The shim's pages are simply not in it.
///   The toolstack saves and restores it with the vCPU (ctrlreg[1]), canonicalised like
///   every pinned table.
pub fn protect(space: &AddressSpace, shim: (u64, u64), nx: bool) -> Result<PvProtection, PlatformError> {
    NX.store(nx, Ordering::Relaxed);
    protect_shim_image(space, shim, nx)?;
    build_user_table(space, nx)?;
    Ok(PvProtection { no_execute: nx })
}

fn protect_shim_image(space: &AddressSpace, (start, end): (u64, u64), nx: bool) -> Result<(), PlatformError> {
    let (l2, _) = kernel_l2(0)?;
    let mut updates = alloc::vec::Vec::new();
    let mut va = start;
    while va < end {
        let slot = va / (PAGE_SIZE * PTES_PER_TABLE);
        let l2e = read_pte(l2, slot);
        let Some(l1) = next_table(l2e) else { return Err(PlatformError::NoBootstrapTables) };
        let index = (va / PAGE_SIZE) % PTES_PER_TABLE;
        let old = Pte::from_bits_retain(read_pte(l1, index));
        let mut new = old;
        match space.access_at(va) {
            Access::KernelCode | Access::UserCode => new.remove(Pte::WRITABLE),
            Access::KernelRead => {
                new.remove(Pte::WRITABLE);
                new.set(Pte::NO_EXECUTE, nx);
            }
            // Data keeps its writability (page tables and the GDT are already read-only).
            _ => new.set(Pte::NO_EXECUTE, nx),
        }
        if new != old && old.contains(Pte::PRESENT) {
            updates.push(MmuUpdate { ptr: (Mfn::of_maddr(l2e).maddr() + index * 8) | MMU_NORMAL_PT_UPDATE, val: new.bits() });
        }
        va += PAGE_SIZE;
    }
    // SAFETY: each update only drops write or execute permission from the shim's own
    // mapping of its own image; no frame changes.
    unsafe { XenHypercalls.mmu_update(&updates) }.op("mmu_update(shim text read-only, data no-execute)")?;
    Ok(())
}

/// The kernel's and the payload's top-level page tables (both pinned), for another vCPU's
/// `ctrlreg[3]` and `ctrlreg[1]`.
pub fn top_level_tables() -> Result<(Mfn, Mfn), PlatformError> {
    let kernel = mfn_of_va(&PvMem, PT_BASE.load(Ordering::Relaxed))?;
    let (user_top, ..) = crate::hw::paging::pv_user_table_pages();
    Ok((kernel, mfn_of_va(&PvMem, user_top as u64)?))
}

fn build_user_table(space: &AddressSpace, nx: bool) -> Result<(), PlatformError> {
    let (top, l3, l2s, pool, pool_len) = crate::hw::paging::pv_user_table_pages();
    let (top, l3) = (top as *mut u64, l3 as *mut u64);
    let large = PAGE_SIZE * PTES_PER_TABLE;
    let gibs = MAPPED_END.load(Ordering::Relaxed).div_ceil(large * PTES_PER_TABLE).max(1).min(layout::PV_MAX_GIBS as u64);
    let mut used = 0;
    let mut tables = alloc::vec![top as u64, l3 as u64];
    for gib in 0..gibs {
        let (kernel_l2_va, _) = kernel_l2(gib)?;
        // SAFETY: one of the DIRECTORIES (>= PV_MAX_GIBS) pages paging.rs reserves for this.
        let l2 = unsafe { l2s.add(gib as usize) } as *mut u64;
        tables.push(l2 as u64);
        for index in 0..PTES_PER_TABLE {
            let slot = gib * PTES_PER_TABLE + index;
            let base = slot * large;
            let entry = match space.uniform(base, large) {
                // The payload's own RAM, 2 MiB at a time: the kernel's L1 table, shared.
                Some(Access::UserAll) => read_pte(kernel_l2_va, index),
                Some(a) if !a.user() => 0,
                _ => {
                    if used == pool_len {
                        return Err(PlatformError::PageTablePool);
                    }
                    // SAFETY: pool page `used` (of pool_len), handed out once; the identity
                    // map covers it and nothing else references it.
                    let l1 = unsafe { pool.add(used) } as *mut u64;
                    used += 1;
                    // The kernel's own L1 for the slot: a page it does not map (demand memory
                    // not backed yet, held or given back) stays unmapped here too, so that the
                    // payload's first touch faults and the shim backs it (a slot shared by the
                    // shim's pages and the payload's free RAM: a wrapped image's, above the
                    // window, after Xen's start-of-day pages).
                    let kernel_l1 = next_table(read_pte(kernel_l2_va, index));
                    for i in 0..PTES_PER_TABLE {
                        let addr = base + i * PAGE_SIZE;
                        let kernel_maps = kernel_l1.is_some_and(|k| Pte::from_bits_retain(read_pte(k, i)).contains(Pte::PRESENT));
                        let e = if kernel_maps { user_leaf(Pfn::containing(addr), space.access_at(addr), nx)? } else { 0 };
                        // SAFETY: entry i of the pool page just taken, still writable.
                        unsafe { l1.add(i as usize).write_volatile(e) };
                    }
                    tables.push(l1 as u64);
                    USER_L1[slot as usize].store(l1 as u64, Ordering::Relaxed);
                    pte(mfn_of_va(&PvMem, l1 as u64)?, L2_PTE)
                }
            };
            // SAFETY: entry `index` of this GiB's L2 page, still writable.
            unsafe { l2.add(index as usize).write_volatile(entry) };
        }
        // SAFETY: entry `gib` of our L3 page, still writable.
        unsafe { l3.add(gib as usize).write_volatile(pte(mfn_of_va(&PvMem, l2 as u64)?, L2_PTE)) };
    }
    // SAFETY: the first entry of our top-level page (the rest stay zero: the low 4 GiB is
    // all a payload has, and Xen fills its own top-level slots when it pins).
    unsafe { top.write_volatile(pte(mfn_of_va(&PvMem, l3 as u64)?, L2_PTE)) };
    // Xen takes a page as a page table only if no writable mapping of it exists.
    for &va in &tables {
        let mfn = mfn_of_va(&PvMem, va)?;
        // SAFETY: our own page-table page, remapped to its own frame, read-only.
        unsafe { XenHypercalls.update_va_mapping(va, pte(mfn, RAM_PTE_RO)) }.op("update_va_mapping(read-only user page table)")?;
    }
    let top_mfn = mfn_of_va(&PvMem, top as u64)?;
    let ops = [
        MmuextOp { cmd: MMUEXT_PIN_L4_TABLE, pad: 0, arg1: top_mfn.raw(), arg2: 0 },
        MmuextOp { cmd: MMUEXT_NEW_USER_BASEPTR, pad: 0, arg1: top_mfn.raw(), arg2: 0 },
    ];
    // SAFETY: the table just built maps only the payload's pages, each to its own frame.
    unsafe { XenHypercalls.mmuext_op(&ops) }.op("mmuext_op(pin the user page table, NEW_USER_BASEPTR)")?;
    Ok(())
}

/// The user page table's own L1 tables (by virtual address), per 2 MiB slot of the low
/// 4 GiB; 0 where the slot shares the kernel's L1 or maps nothing. Entries for payload pages
/// there are copies, which populate and release keep in step.
static USER_L1: [AtomicU64; PTES_PER_TABLE as usize * layout::PV_MAX_GIBS] = [const { AtomicU64::new(0) }; PTES_PER_TABLE as usize * layout::PV_MAX_GIBS];

/// The machine addresses of the L1 entries that map `va`: the kernel's and, if the slot has
/// its own user table, the user table's. None beyond the kernel's 1:1 map.
fn l1_entries(va: u64) -> Result<Option<(u64, Option<u64>)>, PlatformError> {
    if va >= MAPPED_END.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let slot = va / (PAGE_SIZE * PTES_PER_TABLE);
    let (l2, _) = kernel_l2(slot / PTES_PER_TABLE)?;
    let l2e = read_pte(l2, slot % PTES_PER_TABLE);
    let e = Pte::from_bits_retain(l2e);
    if !e.contains(Pte::PRESENT) || e.contains(Pte::HUGE_PAGE) {
        return Err(PlatformError::NoBootstrapTables);
    }
    let index = (va / PAGE_SIZE) % PTES_PER_TABLE;
    let kernel = Mfn::of_maddr(l2e).maddr() + index * 8;
    let user = match USER_L1[slot as usize].load(Ordering::Relaxed) {
        0 => None,
        l1_va => Some(mfn_of_va(&PvMem, l1_va)?.maddr() + index * 8),
    };
    Ok(Some((kernel, user)))
}

/// Pages handled per batch of hypercalls (the lists live on the stack).
const BATCH: usize = 64;

/// Adds to `zaps` the clearing of the L1 entries that map `va` (kernel, and user if the slot
/// has its own table); nothing beyond the kernel's 1:1 map.
fn push_unmap(va: u64, zaps: &mut [MmuUpdate], z: &mut usize) -> Result<(), PlatformError> {
    if let Some((kernel, user)) = l1_entries(va)? {
        for ptr in core::iter::once(kernel).chain(user) {
            zaps[*z] = MmuUpdate { ptr: ptr | MMU_NORMAL_PT_UPDATE, val: 0 };
            *z += 1;
        }
    }
    Ok(())
}

/// Sends the clearing `zaps`, then flushes this vCPU's TLB.
fn unmap_and_flush(zaps: &[MmuUpdate]) -> Result<(), PlatformError> {
    if !zaps.is_empty() {
        // SAFETY: clears mappings of memory the caller is taking away from everyone (held
        // memory not yet the payload's, or memory about to go back to Xen).
        unsafe { XenHypercalls.mmu_update(zaps) }.op("mmu_update(unmap)")?;
    }
    let flush = [MmuextOp { cmd: MMUEXT_TLB_FLUSH_LOCAL, pad: 0, arg1: 0, arg2: 0 }];
    // SAFETY: a TLB flush names no frame.
    unsafe { XenHypercalls.mmuext_op(&flush) }.op("mmuext_op(TLB flush)")?;
    Ok(())
}

/// Pages one `mmu_update` of `unmap` clears (two entries each: the kernel's, the user table's).
const UNMAP_BATCH: usize = 256;

/// Clears the kernel's and the user table's mappings of `[start, end)` (memory held since
/// boot that the payload must fault on before it uses it), in batches of UNMAP_BATCH pages
/// and one TLB flush at the end: nothing uses that memory meanwhile. (Batches of 32 pages
/// with a flush each took 638 ms for a 2 GiB PV guest.)
pub fn unmap(start: u64, end: u64) -> Result<(), PlatformError> {
    let mut va = start;
    let mut zaps = [MmuUpdate { ptr: 0, val: 0 }; 2 * UNMAP_BATCH];
    while va < end {
        let mut z = 0;
        while va < end && z + 2 <= zaps.len() {
            push_unmap(va, &mut zaps, &mut z)?;
            va += PAGE_SIZE;
        }
        if z > 0 {
            // SAFETY: clears mappings of held memory, not yet the payload's: nothing uses it.
            unsafe { XenHypercalls.mmu_update(&zaps[..z]) }.op("mmu_update(unmap)")?;
        }
    }
    unmap_and_flush(&[])
}

/// Gives the frames behind `[start, end)` back to Xen, in the order libxc needs for a save
/// to succeed afterwards: every mapping cleared and flushed first (a PTE that still names a
/// frame outside the p2m aborts the save: "Bad mfn"), then the p2m entry marked invalid,
/// then the machine frame freed. Frames already invalid are skipped. Returns pages freed.
pub fn release(start: u64, end: u64) -> Result<u64, PlatformError> {
    let mut freed = 0;
    let mut va = start;
    while va < end {
        let mut mfns = [0u64; BATCH];
        let mut pfns = [0u64; BATCH];
        let mut zaps = [MmuUpdate { ptr: 0, val: 0 }; 2 * BATCH];
        let (mut n, mut z) = (0, 0);
        while va < end && n < BATCH {
            let pfn = Pfn::containing(va);
            let mfn = p2m(pfn).ok_or(PlatformError::BeyondP2m(pfn))?;
            if mfn.raw() != INVALID_P2M_ENTRY {
                push_unmap(va, &mut zaps, &mut z)?;
                (mfns[n], pfns[n]) = (mfn.raw(), pfn.raw());
                n += 1;
            }
            va += PAGE_SIZE;
        }
        if n == 0 {
            continue;
        }
        if z > 0 {
            unmap_and_flush(&zaps[..z])?;
        }
        for &pfn in &pfns[..n] {
            set_p2m(Pfn::new(pfn), INVALID_P2M_ENTRY)?;
        }
        // SAFETY: the frames are unmapped (above) and out of the p2m; nothing uses them.
        let done = unsafe { XenHypercalls.decrease_reservation(&mfns[..n], 0) }.op("XENMEM_decrease_reservation")?;
        if done != n {
            return Err(PlatformError::ShortReservation { op: "XENMEM_decrease_reservation", done, asked: n });
        }
        freed += n as u64;
    }
    Ok(freed)
}

/// Maps `[start, end)` (inside the kernel's 1:1 map) for the payload and zeroes it. With
/// `populate`, new frames first (p2m entries set); otherwise the frames the p2m already
/// names (memory held since boot). A short populate (the domain is at max_pages) gives back
/// what it did get and reports out of memory.
pub fn back(start: u64, end: u64, populate: bool) -> Result<(), PopulateError> {
    let refused = |op: &'static str| move |e: xshim_shim::xen::errno::XenErrno| PopulateError::Refused(op, Some(e));
    let mut va = start;
    while va < end {
        let n = (((end - va) / PAGE_SIZE) as usize).min(BATCH);
        let mut frames = [0u64; BATCH];
        for (i, f) in frames[..n].iter_mut().enumerate() {
            *f = Pfn::containing(va).raw() + i as u64;
        }
        if populate {
            // SAFETY: the pfns are demand memory not yet backed: invalid in the p2m, unmapped.
            let done = unsafe { XenHypercalls.populate_physmap(&mut frames[..n], 0) }.map_err(refused("XENMEM_populate_physmap"))?;
            if done < n {
                // SAFETY: the frames just got were never mapped or entered in the p2m.
                let _ = unsafe { XenHypercalls.decrease_reservation(&frames[..done], 0) };
                return Err(PopulateError::OutOfMemory);
            }
        } else {
            for f in frames[..n].iter_mut() {
                *f = p2m(Pfn::new(*f)).map(|m| m.raw()).filter(|&m| m != INVALID_P2M_ENTRY).ok_or(PopulateError::Refused("held page not in the p2m", None))?;
            }
        }
        let mut maps = [MmuUpdate { ptr: 0, val: 0 }; 2 * BATCH];
        let mut z = 0;
        for (i, &mfn) in frames[..n].iter().enumerate() {
            let page_va = va + i as u64 * PAGE_SIZE;
            let pfn = Pfn::containing(page_va);
            if populate {
                set_p2m(pfn, mfn).map_err(|_| PopulateError::Refused("p2m update", None))?;
            }
            let Ok(Some((kernel, user))) = l1_entries(page_va) else { return Err(PopulateError::Refused("no L1 entry maps the page", None)) };
            maps[z] = MmuUpdate { ptr: kernel | MMU_NORMAL_PT_UPDATE, val: pte(Mfn::new(mfn), RAM_PTE) };
            z += 1;
            if let Some(u) = user {
                let leaf = user_leaf(pfn, Access::UserAll, NX.load(Ordering::Relaxed)).map_err(|_| PopulateError::Refused("user entry", None))?;
                maps[z] = MmuUpdate { ptr: u | MMU_NORMAL_PT_UPDATE, val: leaf };
                z += 1;
            }
        }
        // SAFETY: maps each new frame at its own pseudo-physical address, where nothing was
        // mapped; no Rust reference covers payload memory.
        unsafe { XenHypercalls.mmu_update(&maps[..z]) }.map_err(refused("mmu_update(map populated pages)"))?;
        // SAFETY: the pages were just mapped writable at va..; Xen does not scrub pages a
        // live domain frees, so they may hold another domain's data until zeroed here.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, n * PAGE_SIZE as usize) };
        va += n as u64 * PAGE_SIZE;
    }
    Ok(())
}

/// Whether `protect` turned no-execute on (user entries written later follow suit).
static NX: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The pages Xen's domain builder laid out after the shim's image, which stay in use:
/// the p2m array, start_info, the xenstore and console rings and the bootstrap page tables
/// (the builder's boot stack and its padding come after them and are not used: the shim
/// runs on its own stack from its first instruction).
pub fn start_of_day_pages() -> xshim_shim::demand::Range {
    let si = PvMem.start_info();
    let page_end = |va: u64, len: u64| (va + len).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let va_of = |mfn: u64| m2p(Mfn::new(mfn)).addr();
    let p2m_va = P2M_VA.load(Ordering::Relaxed);
    let si_va = START_INFO_VA.load(Ordering::Relaxed);
    let pt = PT_BASE.load(Ordering::Relaxed);
    let (store, console) = (va_of(si.store_mfn), va_of(si.console.mfn));
    let start = [p2m_va, si_va, pt, store, console].into_iter().min().unwrap_or(0) & !(PAGE_SIZE - 1);
    let end = [
        page_end(p2m_va, P2M_LEN.load(Ordering::Relaxed) * 8),
        page_end(si_va, PAGE_SIZE),
        page_end(pt, si.nr_pt_frames * PAGE_SIZE),
        page_end(store, PAGE_SIZE),
        page_end(console, PAGE_SIZE),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    xshim_shim::demand::Range::new(start, end)
}
