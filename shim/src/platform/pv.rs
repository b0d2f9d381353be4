//! Bring-up as a classic 64-bit PV guest: start_info checked, shared_info mapped and the p2m
//! published (`attach_to_domain`, again in every new domain), the trap table and callbacks,
//! the shim's own GDT, Xen time, RAM mapped 1:1, then the shared Xen connection.
use super::{xen, Platform};
use crate::hw::xen::hypercall::{self, XenHypercalls};
use crate::hw::xen::pv_mm::{self, PvMem, RamMap};
use crate::hw::xen::shared_info;
use crate::hw::EventsOff;
use xshim_shim::start_info::{parse_pv_start_info, Module};
use xshim_shim::xen::abi::xen::StartInfo;
use xshim_shim::xen::guest::{PlatformError, PvMemory};
use xshim_shim::xen::hypercalls::Hypercalls;

/// What the PV bring-up learned.
pub struct PvInfo {
    pub cmdline: alloc::string::String,
    pub module: Option<Module>,
    /// Pseudo-physical RAM mapped 1:1 at the end of bring-up.
    pub ram: RamMap,
    pub nr_pages: u64,
}

/// The shim's PV entry points (entry.S).
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

fn addr(f: unsafe extern "C" fn()) -> u64 {
    f as *const () as u64
}

/// The trap table's stubs: (vector, entry.S's stub).
fn trap_handlers() -> [(u8, u64); 19] {
    use stubs::*;
    [
        (0, addr(pv_trap_stub_0)), (1, addr(pv_trap_stub_1)), (2, addr(pv_trap_stub_2)), (3, addr(pv_trap_stub_3)), (4, addr(pv_trap_stub_4)),
        (5, addr(pv_trap_stub_5)), (6, addr(pv_trap_stub_6)), (7, addr(pv_trap_stub_7)), (8, addr(pv_trap_stub_8)), (9, addr(pv_trap_stub_9)),
        (10, addr(pv_trap_stub_10)), (11, addr(pv_trap_stub_11)), (12, addr(pv_trap_stub_12)), (13, addr(pv_trap_stub_13)), (14, addr(pv_trap_stub_14)),
        (16, addr(pv_trap_stub_16)), (17, addr(pv_trap_stub_17)), (18, addr(pv_trap_stub_18)), (19, addr(pv_trap_stub_19)),
    ]
}

/// Trap table (exceptions print a register dump and crash the domain, as under PVH), the
/// event callback (the same dispatcher as PVH's callback vector) and the failsafe callback.
fn install_traps_and_callbacks() -> Result<(), PlatformError> {
    use stubs::*;
    let handlers = trap_handlers();
    // SAFETY: each address is entry.S's stub for that vector (Xen's PV exception frame), the
    // event stub handles Xen's callback frame, and the failsafe stub its failsafe frame.
    unsafe { xshim_shim::xen::pv::install_traps_and_callbacks(&mut XenHypercalls, &handlers, addr(pv_trap_stub_243), addr(pv_failsafe_callback)) }
}

/// The first half of bring-up, before the logger exists (it needs start_info's command line).
pub fn init(start_info_va: u64, events: &EventsOff) -> Result<PvInfo, PlatformError> {
    // SAFETY: Xen passes start_info's virtual address in %rsi; it is mapped and ours.
    let si: StartInfo = unsafe { core::ptr::read_volatile(start_info_va as *const StartInfo) };
    let boot = parse_pv_start_info(&si)?;
    if !hypercall::page_filled() {
        return Err(PlatformError::NoHypercallPage);
    }
    pv_mm::init(start_info_va, boot.p2m_va, boot.nr_pages);
    // Events stay masked until the payload runs; then they arrive by the event callback.
    xshim_shim::xen::pv::attach_to_domain(&mut XenHypercalls, &mut xen::Env::boot(events), &mut PvMem, &shared_info::pages())?;
    install_traps_and_callbacks()?;
    pv_mm::load_gdt()?;
    crate::clock::use_xen();
    let ram = pv_mm::map_ram(boot.nr_pages, boot.pt_base)?;
    Ok(PvInfo { cmdline: boot.cmdline, module: boot.module, ram, nr_pages: boot.nr_pages })
}

/// The second half: the console ring, xenstore and the ports.
pub fn connect(info: &PvInfo, events: &EventsOff) -> Result<(), PlatformError> {
    let (ports, _, _) = xen::connect(Platform::Pv, events)?;
    let si = PvMem.start_info();
    let ver = XenHypercalls.xen_version();
    log::info!(
        "Xen {}.{} PV: {} pages, shared_info at maddr {:#x}, console mfn {:#x} port {}, xenstore mfn {:#x} port {}, timer port {}, start_info mfn {:#x}",
        ver >> 16, ver & 0xffff, si.nr_pages, si.shared_info, si.console.mfn, ports.console.raw(), si.store_mfn, ports.store.raw(), ports.timer.raw(),
        pv_mm::start_info_mfn().map_or(0, |m| m.raw())
    );
    if info.ram.truncated {
        log::warn!("PV: mapped {} MiB of {} MiB (no room for more page tables)", info.ram.end >> 20, (info.nr_pages * xshim_shim::layout::PAGE_SIZE) >> 20);
    }
    Ok(())
}

/// The payload in Xen's guest user mode: the shim's image protected and the user page table
/// installed (pv_mm), the stack Xen enters the shim on from user mode, and the handler of the
/// payload's `syscall` (the call gate).
pub fn protect(space: &xshim_shim::address_space::AddressSpace, image: (u64, u64)) -> Result<pv_mm::PvProtection, PlatformError> {
    use crate::hw::tables;
    use xshim_shim::xen::abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_SYSCALL};
    use xshim_shim::xen::abi::xen::FLAT_KERNEL_SS64;
    use xshim_shim::xen::errno::XenResultExt;
    let p = pv_mm::protect(space, image, crate::hw::cpu::has_no_execute())?;
    // SAFETY: the entry stack is used only when the payload enters the shim (entry.S).
    unsafe { XenHypercalls.stack_switch(FLAT_KERNEL_SS64, tables::entry_stack_top()) }.op("HYPERVISOR_stack_switch")?;
    // SAFETY: entry.S's pv_syscall_entry handles Xen's syscall frame and returns by iret.
    unsafe { XenHypercalls.register_callback(CALLBACKTYPE_SYSCALL, tables::pv_syscall_callback(), CALLBACKF_MASK_EVENTS) }.op("CALLBACKOP_register(syscall)")?;
    Ok(p)
}

/// The state a secondary vCPU starts in (VCPUOP_initialise): guest kernel mode at entry.S's
/// `secondary_start64` on its entry stack (%rdi its number), vCPU 0's trap table, callbacks
/// (events masked on entry, as vCPU 0 registered them) and page tables (kernel and user),
/// Xen's default GDT (the shim runs on the flat selectors), and the entry stack as the one
/// Xen switches to when the payload enters the shim.
pub fn secondary_context(v: usize, entry: u64, stack_top: u64) -> Result<alloc::boxed::Box<xshim_shim::xen::abi::xen::VcpuGuestContext>, PlatformError> {
    use xshim_shim::xen::abi::xen::{VcpuGuestContext, FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, VGCF_IN_KERNEL};
    use zerocopy::FromZeros;
    const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
    const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
    let (kernel, user) = pv_mm::top_level_tables()?;
    let mut c = alloc::boxed::Box::new(VcpuGuestContext::new_zeroed());
    c.flags = VGCF_IN_KERNEL | VGCF_FAILSAFE_DISABLES_EVENTS | VGCF_SYSCALL_DISABLES_EVENTS;
    c.user_regs.rip = entry;
    c.user_regs.rsp = stack_top;
    c.user_regs.rdi = v as u64;
    c.user_regs.cs = FLAT_KERNEL_CS64;
    c.user_regs.ss = FLAT_KERNEL_SS64;
    // Xen indexes the trap table by vector.
    for t in xshim_shim::xen::pv::trap_table(&trap_handlers()).into_iter().filter(|t| t.address != 0) {
        c.trap_ctxt[t.vector as usize] = t;
    }
    c.kernel_ss = FLAT_KERNEL_SS64 as u64;
    c.kernel_sp = stack_top;
    c.ctrlreg[3] = kernel.raw() << 12;
    c.ctrlreg[1] = user.raw() << 12;
    c.event_callback_eip = addr(stubs::pv_trap_stub_243);
    c.failsafe_callback_eip = addr(stubs::pv_failsafe_callback);
    c.syscall_callback_eip = crate::hw::tables::pv_syscall_callback();
    Ok(c)
}
