//! The shim as a classic 64-bit PV guest: start_info, the p2m and m2p, shared_info mapped by
//! machine address, rings found through the m2p, and the shim's own extra page tables for the
//! payload window and free memory (every update through mmu_update/update_va_mapping).
//! Also the PV-only pieces of event delivery (trap table, event and failsafe callbacks), the
//! grant-table frame, the p2m frame-list-list the toolstack saves us by, and the start_info
//! and shared_info handling around a suspend.
use super::{events, hypercall};
use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering};
use xshim_shim::layout;
use xshim_shim::xen::abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE};
use xshim_shim::xen::abi::xen::{MmuUpdate, StartInfo, TrapInfo, FLAT_KERNEL_CS64, MACH2PHYS_VIRT_START, MMU_NORMAL_PT_UPDATE, SIF_MOD_START_PFN};

use x86_64::structures::paging::PageTableFlags as Pte;

/// A mapping of one of our own RAM pages. Under PV the guest kernel runs in ring 3, so its
/// pages are user pages; accessed/dirty are preset so Xen need not set them.
const RAM_PTE: Pte = Pte::PRESENT.union(Pte::WRITABLE).union(Pte::USER_ACCESSIBLE).union(Pte::ACCESSED).union(Pte::DIRTY);
/// The same, read-only: page tables and the GDT (Xen refuses them with a writable mapping).
const RAM_PTE_RO: Pte = RAM_PTE.difference(Pte::WRITABLE);
/// An L2 entry pointing at one of our L1 tables.
const L2_PTE: Pte = Pte::PRESENT.union(Pte::WRITABLE).union(Pte::USER_ACCESSIBLE).union(Pte::ACCESSED);
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
const PAGE: u64 = 4096;

/// A machine frame number (never mixed with a pfn: conversions are `p2m` and `m2p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mfn(pub u64);
/// A pseudo-physical frame number; under the shim's PV map, vaddr = pfn * 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pfn(pub u64);

/// What the PV bring-up learned from start_info (which `start_info()` reads afresh).
pub struct PvInfo {
    pub cmdline: alloc::string::String,
    pub module: Option<xshim_shim::start_info::Module>,
    /// Pseudo-physical RAM mapped 1:1 at the end of bring-up.
    pub ram: RamMap,
}

/// start_info's virtual address (Xen's %rsi; a page of our RAM, rewritten by the toolstack
/// on restore), the p2m array's address and its length in entries.
static START_INFO_VA: AtomicU64 = AtomicU64::new(0);
static P2M_VA: AtomicU64 = AtomicU64::new(0);
static P2M_LEN: AtomicU64 = AtomicU64::new(0);

/// The machine frame behind a pseudo-physical frame: Xen's p2m array (start_info.mfn_list).
pub fn p2m(pfn: Pfn) -> Mfn {
    assert!(pfn.0 < P2M_LEN.load(Ordering::Relaxed), "p2m({:#x}): beyond the p2m", pfn.0);
    // SAFETY: P2M_VA is Xen's p2m array of P2M_LEN entries (set at bring-up, mapped by the
    // bootstrap tables, rewritten in place by the toolstack on restore); pfn is in range.
    Mfn(unsafe { core::ptr::read_volatile((P2M_VA.load(Ordering::Relaxed) as *const u64).add(pfn.0 as usize)) })
}

/// The machine frame behind one of our own (1:1 mapped) virtual addresses.
pub fn mfn_of_va(va: u64) -> Mfn {
    p2m(Pfn(va / PAGE))
}

/// A fresh copy of start_info (after a restore the toolstack has rewritten its frames/ports).
pub fn start_info() -> StartInfo {
    // SAFETY: START_INFO_VA is Xen's start_info page, mapped in the bootstrap area.
    unsafe { core::ptr::read_volatile(START_INFO_VA.load(Ordering::Relaxed) as *const StartInfo) }
}

fn write_start_info(si: &StartInfo) {
    // SAFETY: as start_info(); the page is writable and only the shim uses it.
    unsafe { core::ptr::write_volatile(START_INFO_VA.load(Ordering::Relaxed) as *mut StartInfo, *si) }
}

/// The suspend record `SCHEDOP_shutdown(SHUTDOWN_suspend)` passes: start_info's mfn.
pub fn start_info_mfn() -> Mfn {
    mfn_of_va(START_INFO_VA.load(Ordering::Relaxed))
}

/// Before suspending: the toolstack expects the store and console frames as pfns (it turns
/// them back into the new domain's mfns when it restores), as in Linux's xen_pre_suspend.
pub fn canonicalise_start_info() {
    let mut si = start_info();
    si.store_mfn = m2p(Mfn(si.store_mfn)).0;
    si.console.mfn = m2p(Mfn(si.console.mfn)).0;
    write_start_info(&si);
}

/// After a cancelled suspend: the same domain, so the pfns go back to its own mfns.
pub fn uncanonicalise_start_info() {
    let mut si = start_info();
    si.store_mfn = p2m(Pfn(si.store_mfn)).0;
    si.console.mfn = p2m(Pfn(si.console.mfn)).0;
    write_start_info(&si);
}

/// Points the L1 entry for `va` at machine frame `mfn` with `flags`.
fn map_frame(va: u64, mfn: Mfn, flags: Pte) -> i64 {
    hypercall::update_va_mapping(va, (mfn.0 << 12) | flags.bits())
}

/// Maps Xen's shared_info frame (machine address from start_info) over our reserved page.
pub fn map_shared_info(maddr: u64) {
    let rc = map_frame(events::shared_info_gpfn() << 12, Mfn((maddr & PTE_ADDR) >> 12), RAM_PTE);
    if rc != 0 {
        crate::platform::crash(&format!("mapping shared_info (maddr {maddr:#x}) failed: {rc}"));
    }
    events::set_shared_info_mapped();
}

/// Puts our own RAM frame back under `va`, dropping a mapping of a frame that is not ours
/// (shared_info, grant frames): the toolstack refuses to save page tables that map frames
/// outside the guest's p2m ("Bad mfn"), and such frames do not exist in the new domain.
fn unmap_foreign(va: u64, what: &str) {
    let rc = map_frame(va, mfn_of_va(va), RAM_PTE);
    if rc != 0 {
        crate::platform::crash(&format!("unmapping {what} at {va:#x} failed: {rc}"));
    }
}

pub fn unmap_shared_info() {
    events::set_shared_info_unmapped();
    unmap_foreign(events::shared_info_gpfn() << 12, "shared_info");
}

/// Grant table v1: Xen tells a PV guest its grant frames' mfns; we map frame 0 at `va`.
pub fn map_grant_frame(va: u64) -> Result<(), alloc::string::String> {
    let mut frames = [0u64; 1];
    hypercall::gnttab_setup_table(&mut frames).map_err(|rc| format!("GNTTABOP_setup_table failed: {rc}"))?;
    let rc = map_frame(va, Mfn(frames[0]), RAM_PTE);
    if rc != 0 {
        return Err(format!("mapping grant frame mfn {:#x} failed: {rc}", frames[0]));
    }
    Ok(())
}

pub fn unmap_grant_frame(va: u64) {
    unmap_foreign(va, "the grant frame");
}

/// Frames of the p2m tree the toolstack walks to find our p2m: the top page (frame list
/// list) holds the mfns of the middle pages, each of which holds the mfns of 512 p2m pages.
const P2M_MID_PAGES: usize = 4; // 4 x 512 x 512 pfns: 4 GiB of guest memory
#[repr(C, align(4096))]
struct FrameListPages([[u64; 512]; 1 + P2M_MID_PAGES]);
static mut P2M_FRAME_LISTS: FrameListPages = FrameListPages([[0; 512]; 1 + P2M_MID_PAGES]);

/// Builds the p2m frame-list-list from the p2m array's current mfns and publishes it, with
/// max_pfn, in shared_info's arch area (xc_sr_save_x86_pv.c: map_p2m_tree). Done at boot and
/// again in every new domain: the mfns all change across a save.
fn publish_p2m_frame_list_list() {
    let entries = P2M_LEN.load(Ordering::Relaxed);
    let p2m_va = P2M_VA.load(Ordering::Relaxed);
    let p2m_pages = entries.div_ceil(512);
    let mids = p2m_pages.div_ceil(512) as usize;
    if mids > P2M_MID_PAGES {
        crate::platform::crash(&format!("p2m of {entries} entries needs {mids} frame-list pages (max {P2M_MID_PAGES})"));
    }
    let base = &raw mut P2M_FRAME_LISTS as *mut [u64; 512];
    for page in 0..p2m_pages {
        let mfn = mfn_of_va(p2m_va + page * PAGE).0;
        let (mid, slot) = (1 + page as usize / 512, page as usize % 512);
        // SAFETY: our static frame-list pages; mid < 1 + P2M_MID_PAGES by the check above;
        // only this function writes them, with events masked or before the payload runs.
        unsafe { (*base.add(mid))[slot] = mfn };
    }
    for mid in 0..mids {
        let mfn = mfn_of_va(base.wrapping_add(1 + mid) as u64).0;
        // SAFETY: as above, page 0 is the frame list list.
        unsafe { (*base)[mid] = mfn };
    }
    let fll = mfn_of_va(base as u64).0;
    events::set_p2m_info(entries, fll);
}

/// Where the shim's PV entry points are (entry.S).
mod stubs {
    extern "C" {
        pub fn pv_trap_stub_0();
        pub fn pv_trap_stub_1();
        pub fn pv_trap_stub_2();
        pub fn pv_trap_stub_3();
        pub fn pv_trap_stub_4();
        pub fn pv_trap_stub_5();
        pub fn pv_trap_stub_6();
        pub fn pv_trap_stub_7();
        pub fn pv_trap_stub_8();
        pub fn pv_trap_stub_9();
        pub fn pv_trap_stub_10();
        pub fn pv_trap_stub_11();
        pub fn pv_trap_stub_12();
        pub fn pv_trap_stub_13();
        pub fn pv_trap_stub_14();
        pub fn pv_trap_stub_16();
        pub fn pv_trap_stub_17();
        pub fn pv_trap_stub_18();
        pub fn pv_trap_stub_19();
        pub fn pv_trap_stub_243();
        pub fn pv_failsafe_callback();
    }
}

/// Trap table (exceptions print a register dump and crash the domain, as under PVH), the event
/// callback (the same dispatcher as PVH's callback vector) and the failsafe callback.
fn install_traps_and_callbacks() {
    use stubs::*;
    const TI_CLEAR_EVENT_MASK: u8 = 4;
    let handlers: [(u8, unsafe extern "C" fn()); 19] = [
        (0, pv_trap_stub_0), (1, pv_trap_stub_1), (2, pv_trap_stub_2), (3, pv_trap_stub_3), (4, pv_trap_stub_4),
        (5, pv_trap_stub_5), (6, pv_trap_stub_6), (7, pv_trap_stub_7), (8, pv_trap_stub_8), (9, pv_trap_stub_9),
        (10, pv_trap_stub_10), (11, pv_trap_stub_11), (12, pv_trap_stub_12), (13, pv_trap_stub_13), (14, pv_trap_stub_14),
        (16, pv_trap_stub_16), (17, pv_trap_stub_17), (18, pv_trap_stub_18), (19, pv_trap_stub_19),
    ];
    let mut table = [TrapInfo { vector: 0, flags: 0, cs: 0, pad: 0, address: 0 }; 20];
    for (slot, (vector, f)) in table.iter_mut().zip(handlers) {
        // #BP may be raised from any level (int3); the rest only by faults.
        let dpl = if vector == 3 { 3 } else { 0 };
        *slot = TrapInfo { vector, flags: dpl | TI_CLEAR_EVENT_MASK, cs: FLAT_KERNEL_CS64, pad: 0, address: f as *const () as u64 };
    }
    let rc = hypercall::set_trap_table(&table);
    if rc != 0 {
        crate::platform::crash(&format!("HYPERVISOR_set_trap_table failed: {rc}"));
    }
    let rc = hypercall::register_callback(CALLBACKTYPE_EVENT, pv_trap_stub_243 as *const () as u64, CALLBACKF_MASK_EVENTS);
    if rc != 0 {
        crate::platform::crash(&format!("registering the event callback failed: {rc}"));
    }
    let rc = hypercall::register_callback(CALLBACKTYPE_FAILSAFE, pv_failsafe_callback as *const () as u64, CALLBACKF_MASK_EVENTS);
    if rc != 0 {
        crate::platform::crash(&format!("registering the failsafe callback failed: {rc}"));
    }
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
fn load_gdt() -> Result<(), alloc::string::String> {
    let va = &raw const PV_GDT as u64;
    let mfn = mfn_of_va(va);
    let rc = map_frame(va, mfn, RAM_PTE_RO);
    if rc != 0 {
        return Err(format!("making the GDT page read-only failed: {rc}"));
    }
    let entries = 512u32.min(xshim_shim::xen::abi::xen::FIRST_RESERVED_GDT_ENTRY);
    let rc = hypercall::set_gdt(&[mfn.0], entries);
    if rc != 0 {
        return Err(format!("HYPERVISOR_set_gdt(mfn {:#x}, {entries} entries) failed: {rc}", mfn.0));
    }
    Ok(())
}

/// entry.S's failsafe callback: Xen could not restore our segment registers.
#[no_mangle]
extern "C" fn pv_failsafe(frame: *const u64) -> ! {
    // SAFETY: Xen's failsafe frame: [rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss].
    let f = unsafe { core::slice::from_raw_parts(frame, 11) };
    crate::console::emergency(format_args!(
        "\nxshim: Xen failsafe callback: cannot load segments ds={:#x} es={:#x} fs={:#x} gs={:#x} at rip={:#x} cs={:#x} rsp={:#x}\n",
        f[2], f[3], f[4], f[5], f[6], f[7], f[9]
    ));
    crate::platform::crash("failsafe callback")
}

pub fn m2p(mfn: Mfn) -> Pfn {
    // SAFETY: the read-only machine-to-physical table Xen maps into every 64-bit PV guest.
    Pfn(unsafe { core::ptr::read_volatile((MACH2PHYS_VIRT_START + mfn.0 * 8) as *const u64) })
}

fn read_pte(table_va: u64, index: u64) -> u64 {
    // SAFETY: table_va is a page table page mapped (read-only) in the bootstrap area.
    unsafe { core::ptr::read_volatile((table_va + index * 8) as *const u64) }
}

/// The virtual address of the page table an entry points to (via the m2p).
fn next_table(entry: u64) -> Option<u64> {
    Pte::from_bits_retain(entry).contains(Pte::PRESENT).then(|| m2p(Mfn((entry & PTE_ADDR) >> 12)).0 * PAGE)
}

#[repr(C, align(4096))]
struct PtPages([[u8; 4096]; layout::PV_EXTRA_L1_PAGES]);
/// Pages the shim turns into L1 tables (in its bss, inside Xen's bootstrap mapping).
static mut EXTRA_L1: PtPages = PtPages([[0; 4096]; layout::PV_EXTRA_L1_PAGES]);

/// Fills `page` (mapped writable) as the L1 table for L2 slot `slot`, turns its own mapping
/// read-only (Xen will not take a page with a writable mapping as a page table), and returns
/// the L2 entry that installs it.
fn prepare_l1(nr_pages: u64, l2_mfn: u64, slot: u64, page: u64) -> Result<MmuUpdate, alloc::string::String> {
    let first = slot * 512;
    let last = (first + 512).min(nr_pages);
    for i in 0..512u64 {
        let pte = if first + i < last { (p2m(Pfn(first + i)).0 << 12) | RAM_PTE.bits() } else { 0 };
        // SAFETY: `page` is a page the caller owns and has mapped writable; entry i of 512.
        unsafe { core::ptr::write_volatile((page + i * 8) as *mut u64, pte) };
    }
    let page_mfn = mfn_of_va(page);
    let rc = map_frame(page, page_mfn, RAM_PTE_RO);
    if rc != 0 {
        return Err(format!("update_va_mapping(read-only L1 {page:#x}) failed: {rc}"));
    }
    Ok(MmuUpdate { ptr: ((l2_mfn << 12) + slot * 8) | MMU_NORMAL_PT_UPDATE, val: (page_mfn.0 << 12) | L2_PTE.bits() })
}

/// What `map_ram` mapped: RAM 1:1 up to `end`, and the RAM pages it took for L1 tables once
/// the static pool ran out (the payload must not get them).
pub struct RamMap {
    pub end: u64,
    pub l1_pages_in_ram: Option<xshim_shim::start_info::Module>,
}

/// Maps RAM 1:1 (vaddr = pfn * 4096) up to `nr_pages` (at most the low 1 GiB: one L2 table),
/// adding an L1 table under the existing L2 for every 2 MiB slot Xen's bootstrap tables left
/// empty. L1 pages come from the shim's static pool first; when it runs out, from the top of
/// the RAM mapped so far (already writable, so they can be filled in place). The L2 entries
/// go to Xen in one batched mmu_update per phase, once every new L1 is read-only.
fn map_ram(si: &StartInfo) -> Result<RamMap, alloc::string::String> {
    let l4 = si.pt_base;
    let l3 = next_table(read_pte(l4, 0)).ok_or("no L3 for the low 512 GiB")?;
    let l2 = next_table(read_pte(l3, 0)).ok_or("no L2 for the low 1 GiB")?;
    let l2_mfn = (read_pte(l3, 0) & PTE_ADDR) >> 12;
    let slots = si.nr_pages.min(1 << 18).div_ceil(512);
    let install = |updates: &[MmuUpdate]| -> Result<(), alloc::string::String> {
        let rc = hypercall::mmu_update(updates);
        if rc != 0 {
            return Err(format!("mmu_update of {} L2 entries failed: {rc}", updates.len()));
        }
        Ok(())
    };
    let slot_end = |slot: u64| ((slot + 1) * 512).min(si.nr_pages) * PAGE;

    // Phase 1: the static pool.
    let mut updates = alloc::vec::Vec::new();
    let mut end = 0u64;
    let mut slot = 0;
    while slot < slots {
        let entry = Pte::from_bits_retain(read_pte(l2, slot));
        if entry.contains(Pte::PRESENT) {
            if entry.contains(Pte::HUGE_PAGE) {
                return Err(format!("Xen mapped a superpage at L2 slot {slot}"));
            }
        } else {
            if updates.len() == layout::PV_EXTRA_L1_PAGES {
                break;
            }
            // SAFETY: EXTRA_L1 is our static pool; each page is handed out once.
            let page = unsafe { (&raw mut EXTRA_L1 as *mut [u8; 4096]).add(updates.len()) } as u64;
            updates.push(prepare_l1(si.nr_pages, l2_mfn, slot, page)?);
        }
        end = slot_end(slot);
        slot += 1;
    }
    install(&updates)?;
    if slot == slots {
        return Ok(RamMap { end, l1_pages_in_ram: None });
    }

    // Phase 2: one page per remaining slot, from the top of what phase 1 mapped.
    let needed = slots - slot;
    let block = end - needed * PAGE;
    if block < layout::PAYLOAD_FREE_BASE + (16 << 20) {
        log::warn!("PV: mapped {} MiB of {} MiB (no room for more page tables)", end >> 20, (si.nr_pages * PAGE) >> 20);
        return Ok(RamMap { end, l1_pages_in_ram: None });
    }
    let mut updates = alloc::vec::Vec::new();
    for (i, s) in (slot..slots).enumerate() {
        updates.push(prepare_l1(si.nr_pages, l2_mfn, s, block + i as u64 * PAGE)?);
        end = slot_end(s);
    }
    install(&updates)?;
    Ok(RamMap { end, l1_pages_in_ram: Some(xshim_shim::start_info::Module { paddr: block, size: needed * PAGE }) })
}

/// What a PV guest sets up in its domain at boot and again in every new domain after a
/// restore (the trap table, callbacks and GDT travel with the vCPU's saved state; these do
/// not): shared_info from start_info, events masked, vcpu_info, no periodic timer, and the
/// p2m frame-list-list for the next save.
pub fn attach_to_domain() {
    map_shared_info(start_info().shared_info);
    events::set_upcall_mask(true);
    events::register_vcpu_info();
    hypercall::stop_periodic_timer();
    publish_p2m_frame_list_list();
}

/// PV bring-up: everything Xen-facing, before the payload is loaded.
pub fn init(si_ptr: *const StartInfo) -> PvInfo {
    // SAFETY: Xen passes start_info's virtual address in %rsi; it is mapped and ours.
    let si = unsafe { core::ptr::read_volatile(si_ptr) };
    if !si.magic.starts_with(b"xen-3.0-x86_64") {
        crate::platform::crash("start_info: bad magic (not a 64-bit PV start_info)");
    }
    if !hypercall::page_filled() {
        crate::platform::crash("the domain builder did not fill the hypercall page");
    }
    START_INFO_VA.store(si_ptr as u64, Ordering::Relaxed);
    P2M_VA.store(si.mfn_list, Ordering::Relaxed);
    P2M_LEN.store(si.nr_pages, Ordering::Relaxed);
    // Events stay masked until the payload runs; then they arrive by the event callback.
    attach_to_domain();
    install_traps_and_callbacks();
    load_gdt().unwrap_or_else(|e| crate::platform::crash(&format!("PV GDT: {e}")));
    crate::platform::clock::use_xen();
    let end = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
    let cmdline = alloc::string::String::from_utf8_lossy(&si.cmd_line[..end]).into_owned();
    let module = (si.mod_len > 0).then(|| {
        let va = if si.flags & SIF_MOD_START_PFN != 0 { si.mod_start * PAGE } else { si.mod_start };
        xshim_shim::start_info::Module { paddr: va, size: si.mod_len }
    });
    let ram = map_ram(&si).unwrap_or_else(|e| crate::platform::crash(&format!("PV memory map: {e}")));
    PvInfo { cmdline, module, ram }
}

/// The virtual address of a ring page Xen gave by mfn (it is guest RAM, mapped 1:1).
pub fn ring_va(mfn: u64) -> u64 {
    m2p(Mfn(mfn)).0 * PAGE
}
