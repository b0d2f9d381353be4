//! The hypercall page and the typed hypercalls the shim makes. Under PVH the page is filled by
//! Xen when we write its address to the MSR that CPUID leaf base+2 names.
use crate::arch;
use core::arch::asm;
use xshim_shim::xen::abi::{callback as cb, event_channel as ec, grant_table as gt, hvm_params as hp, memory as mem, sched, vcpu, xen::hypercall as nr, xen::TrapInfo};
use zerocopy::IntoBytes;

extern "C" {
    /// entry.S: one page at layout::HYPERCALL_PAGE, pre-filled with `ret` so that a page Xen
    /// did not fill is detectable (XTF does the same). PVH: filled when we write the MSR;
    /// PV: filled by the domain builder (XEN_ELFNOTE_HYPERCALL_PAGE).
    static hypercall_page: [u8; 4096];
}

fn page_addr() -> u64 {
    &raw const hypercall_page as u64
}

/// PV: true if the domain builder filled the page.
pub fn page_filled() -> bool {
    // SAFETY: reading the first byte of the page entry.S reserves.
    unsafe { core::ptr::read_volatile(page_addr() as *const u8) != 0xc3 }
}

/// The Xen CPUID leaf base (0x40000000 + 0x100 * n), if running under Xen.
pub fn xen_cpuid_base() -> Option<u32> {
    (0x4000_0000..0x4001_0000).step_by(0x100).find(|&base| {
        let (eax, ebx, ecx, edx) = arch::cpuid(base, 0);
        ebx == 0x566e_6558 && ecx == 0x65584d4d && edx == 0x4d4d_566e && eax >= base + 2
    })
}

#[derive(Debug)]
pub struct HypercallPageError;

/// Asks Xen to fill the hypercall page and checks that it did.
pub fn install_page(cpuid_base: u32) -> Result<(), HypercallPageError> {
    let (_pages, msr, _, _) = arch::cpuid(cpuid_base + 2, 0);
    arch::wrmsr(msr, page_addr());
    if !page_filled() {
        return Err(HypercallPageError);
    }
    Ok(())
}

/// A raw hypercall with up to five arguments (rdi, rsi, rdx, r10, r8).
fn hypercall(op: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    hypercall4(op, a1, a2, a3, 0)
}

fn hypercall4(op: usize, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let entry = page_addr() + (op as u64) * 32;
    let ret: i64;
    // SAFETY: `entry` is Xen's stub for `op` in the installed hypercall page; Xen reads only
    // the memory the arguments point to, which callers pass as live references; all argument
    // registers are marked clobbered (debug Xen scrubs them).
    unsafe {
        asm!("call {entry}",
            entry = in(reg) entry,
            lateout("rax") ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            lateout("r8") _, lateout("rcx") _, lateout("r11") _,
        );
    }
    ret
}

fn ptr<T: IntoBytes + zerocopy::Immutable + ?Sized>(arg: &T) -> u64 {
    arg.as_bytes().as_ptr() as u64
}

pub fn xen_version() -> i64 {
    hypercall(nr::XEN_VERSION, xshim_shim::xen::abi::xen::XENVER_VERSION, 0, 0)
}

pub fn hvm_get_param(index: u32) -> Result<u64, i64> {
    let mut p = hp::XenHvmParam { domid: mem::DOMID_SELF, pad: 0, index, value: 0 };
    let rc = hypercall(nr::HVM_OP, hp::HVMOP_GET_PARAM as u64, p.as_mut_bytes().as_mut_ptr() as u64, 0);
    if rc < 0 { Err(rc) } else { Ok(p.value) }
}

pub fn hvm_set_param(index: u32, value: u64) -> Result<(), i64> {
    let p = hp::XenHvmParam { domid: mem::DOMID_SELF, pad: 0, index, value };
    let rc = hypercall(nr::HVM_OP, hp::HVMOP_SET_PARAM as u64, ptr(&p), 0);
    if rc < 0 { Err(rc) } else { Ok(()) }
}

pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), i64> {
    let a = mem::XenAddToPhysmap { domid: mem::DOMID_SELF, size: 0, space, idx, gpfn };
    let rc = hypercall(nr::MEMORY_OP, mem::XENMEM_ADD_TO_PHYSMAP as u64, ptr(&a), 0);
    if rc < 0 { Err(rc) } else { Ok(()) }
}

pub fn evtchn_bind_virq(virq: u32, vcpu: u32) -> Result<u32, i64> {
    let mut b = ec::EvtchnBindVirq { virq, vcpu, port: 0 };
    let rc = hypercall(nr::EVENT_CHANNEL_OP, ec::EVTCHNOP_BIND_VIRQ as u64, b.as_mut_bytes().as_mut_ptr() as u64, 0);
    if rc < 0 { Err(rc) } else { Ok(b.port) }
}

fn evtchn_port_op(op: u32, port: u32) -> i64 {
    let a = ec::EvtchnPortArg { port };
    hypercall(nr::EVENT_CHANNEL_OP, op as u64, ptr(&a), 0)
}

pub fn evtchn_send(port: u32) -> i64 {
    evtchn_port_op(ec::EVTCHNOP_SEND, port)
}

pub fn evtchn_unmask(port: u32) -> i64 {
    evtchn_port_op(ec::EVTCHNOP_UNMASK, port)
}

/// Blocks until `port` is pending or Xen system time reaches `timeout_ns` (0: no timeout).
pub fn sched_poll(port: u32, timeout_ns: u64) -> i64 {
    let ports = [port];
    let p = sched::SchedPoll { ports: ports.as_ptr() as u64, nr_ports: 1, pad: 0, timeout: timeout_ns };
    hypercall(nr::SCHED_OP, sched::SCHEDOP_POLL as u64, ptr(&p), 0)
}

/// `SCHEDOP_shutdown`. For `Suspend`, `suspend_record` is the PV start_info mfn (PVH: 0);
/// the return value is 0 in a new domain and 1 if cancelled.
pub fn sched_shutdown(reason: sched::ShutdownReason, suspend_record: u64) -> i64 {
    let s = sched::SchedShutdown { reason: reason as u32 };
    hypercall(nr::SCHED_OP, sched::SCHEDOP_SHUTDOWN as u64, ptr(&s), suspend_record)
}

pub fn set_singleshot_timer(timeout_abs_ns: u64) -> i64 {
    let t = vcpu::VcpuSetSingleshotTimer { timeout_abs_ns, flags: 0, pad: 0 };
    hypercall(nr::VCPU_OP, vcpu::VCPUOP_SET_SINGLESHOT_TIMER as u64, 0, ptr(&t))
}

pub fn register_vcpu_info(gfn: u64, offset: u32) -> i64 {
    let r = vcpu::VcpuRegisterVcpuInfo { mfn: gfn, offset, rsvd: 0 };
    hypercall(nr::VCPU_OP, vcpu::VCPUOP_REGISTER_VCPU_INFO as u64, 0, ptr(&r))
}

/// PV: batch page-table updates (`ptr` = machine address of the entry).
pub fn mmu_update(reqs: &[xshim_shim::xen::abi::xen::MmuUpdate]) -> i64 {
    let mut done = 0u32;
    hypercall4(nr::MMU_UPDATE, reqs.as_ptr() as u64, reqs.len() as u64, &mut done as *mut u32 as u64, mem::DOMID_SELF as u64)
}

/// PV: set the L1 entry that maps `va`.
pub fn update_va_mapping(va: u64, pte: u64) -> i64 {
    hypercall(nr::UPDATE_VA_MAPPING, va, pte, xshim_shim::xen::abi::xen::UVMF_INVLPG)
}

pub fn stop_periodic_timer() -> i64 {
    hypercall(nr::VCPU_OP, vcpu::VCPUOP_STOP_PERIODIC_TIMER as u64, 0, 0)
}

/// PV: install the trap table (`table` ends with a zero-address entry).
pub fn set_trap_table(table: &[TrapInfo]) -> i64 {
    debug_assert!(table.last().is_some_and(|t| t.address == 0));
    hypercall(nr::SET_TRAP_TABLE, table.as_ptr() as u64, 0, 0)
}

/// PV: register an event or failsafe entry point.
pub fn register_callback(type_: u16, address: u64, flags: u16) -> i64 {
    let r = cb::CallbackRegister { type_, flags, pad: 0, address };
    hypercall(nr::CALLBACK_OP, cb::CALLBACKOP_REGISTER as u64, ptr(&r), 0)
}

/// PV: the machine frames of the first `frames.len()` grant-table frames.
pub fn gnttab_setup_table(frames: &mut [u64]) -> Result<(), i64> {
    let mut t = gt::GnttabSetupTable { dom: mem::DOMID_SELF, pad0: 0, nr_frames: frames.len() as u32, status: 0, pad1: [0; 6], frame_list: frames.as_mut_ptr() as u64 };
    let rc = hypercall(nr::GRANT_TABLE_OP, gt::GNTTABOP_SETUP_TABLE as u64, t.as_mut_bytes().as_mut_ptr() as u64, 1);
    match (rc, t.status) {
        (0, 0) => Ok(()),
        (0, st) => Err(st as i64),
        (rc, _) => Err(rc),
    }
}

/// `SCHEDOP_block`: re-enables event delivery atomically and sleeps until an event.
pub fn sched_block() -> i64 {
    hypercall(nr::SCHED_OP, sched::SCHEDOP_BLOCK as u64, 0, 0)
}

/// PV: load a GDT of `entries` descriptors from these (read-only mapped) machine frames.
pub fn set_gdt(frames: &[u64], entries: u32) -> i64 {
    hypercall(nr::SET_GDT, frames.as_ptr() as u64, entries as u64, 0)
}
