//! The shim as a classic 64-bit PV guest: start_info, the p2m and m2p, shared_info mapped by
//! machine address, rings found through the m2p, and the shim's own extra page tables for the
//! payload window and free memory (every update through mmu_update/update_va_mapping).
//! Events are not delivered by upcall in this mode: the shim polls its ports (SCHEDOP_poll)
//! whenever the payload waits, and handles xenstore traffic there.
use super::{events, hypercall};
use alloc::format;
use xshim_shim::layout;
use xshim_shim::xen::abi::xen::{MmuUpdate, StartInfo, MACH2PHYS_VIRT_START, MMU_NORMAL_PT_UPDATE, SIF_MOD_START_PFN};

const PTE_PRESENT: u64 = 1;
const PTE_RW: u64 = 2;
const PTE_USER: u64 = 4;
const PTE_ACCESSED: u64 = 0x20;
const PTE_DIRTY: u64 = 0x40;
const PTE_PSE: u64 = 0x80;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
const PAGE: u64 = 4096;

/// A machine frame number (never mixed with a pfn: conversions are `p2m` and `m2p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mfn(pub u64);
/// A pseudo-physical frame number; under the shim's PV map, vaddr = pfn * 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pfn(pub u64);

/// What the PV bring-up learned from start_info.
pub struct PvInfo {
    pub start_info: StartInfo,
    pub cmdline: alloc::string::String,
    pub module: Option<xshim_shim::start_info::Module>,
    /// Pseudo-physical bytes mapped 1:1 at the end of bring-up.
    pub mapped_end: u64,
}

fn p2m_table(si: &StartInfo) -> *const u64 {
    si.mfn_list as *const u64
}

pub fn p2m(si: &StartInfo, pfn: Pfn) -> Mfn {
    // SAFETY: mfn_list is Xen's p2m array of nr_pages entries, mapped by the bootstrap
    // tables; callers pass pfn < nr_pages.
    Mfn(unsafe { core::ptr::read_volatile(p2m_table(si).add(pfn.0 as usize)) })
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
    (entry & PTE_PRESENT != 0).then(|| m2p(Mfn((entry & PTE_ADDR) >> 12)).0 * PAGE)
}

#[repr(C, align(4096))]
struct PtPages([[u8; 4096]; layout::PV_EXTRA_L1_PAGES]);
/// Pages the shim turns into L1 tables (in its bss, inside Xen's bootstrap mapping).
static mut EXTRA_L1: PtPages = PtPages([[0; 4096]; layout::PV_EXTRA_L1_PAGES]);

/// Maps RAM 1:1 (vaddr = pfn * 4096) up to `nr_pages`, adding L1 tables under the existing
/// L2 for every 2 MiB slot Xen's bootstrap tables left empty. Returns the mapped end.
fn map_ram(si: &StartInfo) -> Result<u64, alloc::string::String> {
    let l4 = si.pt_base;
    let l3 = next_table(read_pte(l4, 0)).ok_or("no L3 for the low 512 GiB")?;
    let l2 = next_table(read_pte(l3, 0)).ok_or("no L2 for the low 1 GiB")?;
    let l2_mfn = (read_pte(l3, 0) & PTE_ADDR) >> 12;
    let want = si.nr_pages.min(1 << 18); // the low 1 GiB: one L2 table
    let mut used = 0usize;
    let mut end = 0u64;
    for slot in 0..want.div_ceil(512) {
        let entry = read_pte(l2, slot);
        if entry & PTE_PRESENT != 0 {
            if entry & PTE_PSE != 0 {
                return Err(format!("Xen mapped a superpage at L2 slot {slot}"));
            }
            end = (slot + 1) * 512 * PAGE;
            continue;
        }
        if used == layout::PV_EXTRA_L1_PAGES {
            log::warn!("PV: mapped {} MiB of {} MiB (out of extra page-table pages)", end >> 20, (si.nr_pages * PAGE) >> 20);
            break;
        }
        // SAFETY: EXTRA_L1 is our static pool; each page is handed out once, filled while it is
        // still an ordinary writable page, then turned read-only before Xen sees it as an L1.
        let page = unsafe { (&raw mut EXTRA_L1 as *mut [u8; 4096]).add(used) } as u64;
        used += 1;
        let first = slot * 512;
        let last = (first + 512).min(si.nr_pages);
        for i in 0..512u64 {
            let pte = if first + i < last { (p2m(si, Pfn(first + i)).0 << 12) | PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY } else { 0 };
            // SAFETY: writing the i-th entry of the page we own.
            unsafe { core::ptr::write_volatile((page + i * 8) as *mut u64, pte) };
        }
        let page_mfn = p2m(si, Pfn(page / PAGE));
        let rc = hypercall::update_va_mapping(page, (page_mfn.0 << 12) | PTE_PRESENT | PTE_USER | PTE_ACCESSED | PTE_DIRTY);
        if rc != 0 {
            return Err(format!("update_va_mapping(read-only L1 {page:#x}) failed: {rc}"));
        }
        let req = MmuUpdate { ptr: (l2_mfn << 12) + slot * 8 | MMU_NORMAL_PT_UPDATE, val: (page_mfn.0 << 12) | PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED };
        let rc = hypercall::mmu_update(core::slice::from_ref(&req));
        if rc != 0 {
            return Err(format!("mmu_update(L2 slot {slot}) failed: {rc}"));
        }
        end = last * PAGE;
    }
    Ok(end)
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
    // shared_info: map its machine frame over our reserved page.
    let rc = hypercall::update_va_mapping(events::shared_info_gpfn() << 12, (si.shared_info & PTE_ADDR) | PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY);
    if rc != 0 {
        crate::platform::crash(&format!("mapping shared_info failed: {rc}"));
    }
    events::set_shared_info_mapped();
    crate::platform::clock::use_xen();
    hypercall::stop_periodic_timer();
    let end = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
    let cmdline = alloc::string::String::from_utf8_lossy(&si.cmd_line[..end]).into_owned();
    let module = (si.mod_len > 0).then(|| {
        let va = if si.flags & SIF_MOD_START_PFN != 0 { si.mod_start * PAGE } else { si.mod_start };
        xshim_shim::start_info::Module { paddr: va, size: si.mod_len }
    });
    let mapped_end = map_ram(&si).unwrap_or_else(|e| crate::platform::crash(&format!("PV memory map: {e}")));
    PvInfo { start_info: si, cmdline, module, mapped_end }
}

/// The virtual address of a ring page Xen gave by mfn (it is guest RAM, mapped 1:1).
pub fn ring_va(mfn: u64) -> u64 {
    m2p(Mfn(mfn)).0 * PAGE
}
