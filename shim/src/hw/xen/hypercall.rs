//! The hypercall page and the hypercalls the shim makes, as `xshim_shim`'s `Hypercalls` trait
//! (`XenHypercalls`). Under PVH the page is filled by Xen when we write its address to the
//! MSR that CPUID leaf base+2 names; under PV the domain builder fills it.
use crate::hw::cpu;
use core::arch::asm;
use xshim_shim::xen::abi::xen::{hypercall as nr, MmuUpdate, MmuextOp, TrapInfo, UVMF_INVLPG, XENVER_VERSION};
use xshim_shim::xen::abi::{callback as cb, event_channel as ec, grant_table as gt, hvm_params as hp, memory as mem, sched, vcpu};
use xshim_shim::xen::errno::XenErrno;
use xshim_shim::xen::frames::{EvtchnPort, Gfn, Mfn};
use xshim_shim::xen::hypercalls::{HcResult, Hypercalls};
use zerocopy::IntoBytes;

extern "C" {
    /// entry.S: one page at layout::HYPERCALL_PAGE, pre-filled with `ret` so that a page Xen
    /// did not fill is detectable (XTF does the same).
    static hypercall_page: [u8; 4096];
}

/// The opcode the page is pre-filled with.
const RET_OPCODE: u8 = 0xc3;
/// Each hypercall's stub in the page is this many bytes (xen/arch/x86/hypercall.c).
const HYPERCALL_STUB_SIZE: u64 = 32;
/// "XenVMMXenVMM" in CPUID's ebx, ecx, edx.
const XEN_CPUID_SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";
/// Xen's leaves start at 0x40000000 and may be moved up in steps of 0x100 (viridian).
const XEN_CPUID_FIRST: u32 = 0x4000_0000;
const XEN_CPUID_LAST: u32 = 0x4001_0000;
const XEN_CPUID_STEP: usize = 0x100;

fn page_addr() -> u64 {
    &raw const hypercall_page as u64
}

/// True if Xen (or the domain builder) filled the page.
pub fn page_filled() -> bool {
    // SAFETY: reading the first byte of the page entry.S reserves.
    unsafe { core::ptr::read_volatile(page_addr() as *const u8) != RET_OPCODE }
}

/// The Xen CPUID leaf base, if running under Xen.
pub fn xen_cpuid_base() -> Option<u32> {
    let sig = |i: usize| u32::from_le_bytes([XEN_CPUID_SIGNATURE[i], XEN_CPUID_SIGNATURE[i + 1], XEN_CPUID_SIGNATURE[i + 2], XEN_CPUID_SIGNATURE[i + 3]]);
    (XEN_CPUID_FIRST..XEN_CPUID_LAST).step_by(XEN_CPUID_STEP).find(|&base| {
        let (eax, ebx, ecx, edx) = cpu::cpuid(base, 0);
        (ebx, ecx, edx) == (sig(0), sig(4), sig(8)) && eax >= base + 2
    })
}

/// PVH: asks Xen to fill the hypercall page and checks that it did.
pub fn install_page(cpuid_base: u32) -> bool {
    let (_pages, msr, _, _) = cpu::cpuid(cpuid_base + 2, 0);
    cpu::wrmsr(msr, page_addr());
    page_filled()
}

/// A raw hypercall with up to four arguments (rdi, rsi, rdx, r10).
/// # Safety
/// The arguments must be valid for `op`: pointers name live memory of the right type, and
/// anything the call changes (mappings, memory Xen writes) is the caller's to vouch for.
unsafe fn hypercall4(op: usize, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let entry = page_addr() + (op as u64) * HYPERCALL_STUB_SIZE;
    let ret: i64;
    // SAFETY: `entry` is Xen's stub for `op` in the installed hypercall page; the caller
    // vouches for the arguments; all argument registers are clobbered (debug Xen scrubs them).
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

/// A hypercall whose pointer arguments Xen only reads or fills (no mapping changes).
fn benign(op: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: used only for calls that read their argument structs (passed as live
    // references by the callers below) or write into them, and change no mapping.
    unsafe { hypercall4(op, a1, a2, a3, 0) }
}

fn ptr<T: IntoBytes + zerocopy::Immutable + ?Sized>(arg: &T) -> u64 {
    arg.as_bytes().as_ptr() as u64
}

fn unit(rc: i64) -> HcResult<()> {
    XenErrno::check(rc).map(|_| ())
}

/// Blocks until `port` is pending or Xen system time reaches `timeout_ns` (0: no timeout).
pub fn sched_poll(port: EvtchnPort, timeout_ns: u64) {
    let ports = [port.raw()];
    let p = sched::SchedPoll { ports: ports.as_ptr() as u64, nr_ports: 1, pad: 0, timeout: timeout_ns };
    // A failed poll returns at once: the callers loop and re-check.
    let _ = benign(nr::SCHED_OP, sched::SCHEDOP_POLL as u64, ptr(&p), 0);
}

/// `SCHEDOP_block`: re-enables event delivery atomically and sleeps until an event.
pub fn sched_block() {
    let _ = benign(nr::SCHED_OP, sched::SCHEDOP_BLOCK as u64, 0, 0);
}

/// `VCPUOP_is_up`: Some(up) for a vCPU the domain has, None past its last one.
pub fn vcpu_is_up(v: usize) -> Option<bool> {
    let rc = benign(nr::VCPU_OP, vcpu::VCPUOP_IS_UP as u64, v as u64, 0);
    (rc >= 0).then_some(rc > 0)
}

/// `VCPUOP_initialise` then `VCPUOP_up`: vCPU `v`, down, starts in `ctx` (PVH: a
/// `vcpu_hvm_context`; PV: a `vcpu_guest_context`).
/// # Safety
/// `ctx` must start the vCPU on code and a stack that are the shim's and stay valid (PV: on
/// pinned page tables that are the shim's): from the `VCPUOP_up` on it runs alongside the
/// caller.
pub unsafe fn vcpu_start<T: IntoBytes + zerocopy::Immutable>(v: usize, ctx: &T) -> HcResult<()> {
    // SAFETY: the caller vouches for the state; Xen only reads `ctx`.
    unit(unsafe { hypercall4(nr::VCPU_OP, vcpu::VCPUOP_INITIALISE as u64, v as u64, ptr(ctx), 0) })?;
    // SAFETY: as above: the vCPU starts running the state just given.
    unit(unsafe { hypercall4(nr::VCPU_OP, vcpu::VCPUOP_UP as u64, v as u64, 0, 0) })
}

/// `VCPUOP_stop_periodic_timer` for vCPU `v` (Xen takes it for any vCPU of the domain).
pub fn vcpu_stop_periodic_timer(v: usize) -> HcResult<()> {
    unit(benign(nr::VCPU_OP, vcpu::VCPUOP_STOP_PERIODIC_TIMER as u64, v as u64, 0))
}

/// `EVTCHNOP_bind_ipi`: a port that any vCPU may send to, delivered to vCPU `v`.
pub fn evtchn_bind_ipi(v: usize) -> HcResult<EvtchnPort> {
    let mut b = ec::EvtchnBindIpi { vcpu: v as u32, port: 0 };
    XenErrno::check(benign(nr::EVENT_CHANNEL_OP, ec::EVTCHNOP_BIND_IPI as u64, b.as_mut_bytes().as_mut_ptr() as u64, 0))?;
    Ok(EvtchnPort::new(b.port))
}

/// The hypercalls, through the installed page.
pub struct XenHypercalls;

impl Hypercalls for XenHypercalls {
    fn xen_version(&mut self) -> u32 {
        benign(nr::XEN_VERSION, XENVER_VERSION, 0, 0) as u32
    }
    fn hvm_get_param(&mut self, index: u32) -> HcResult<u64> {
        let mut p = hp::XenHvmParam { domid: mem::DOMID_SELF, pad: 0, index, value: 0 };
        XenErrno::check(benign(nr::HVM_OP, hp::HVMOP_GET_PARAM as u64, p.as_mut_bytes().as_mut_ptr() as u64, 0))?;
        Ok(p.value)
    }
    fn hvm_set_param(&mut self, index: u32, value: u64) -> HcResult<()> {
        let p = hp::XenHvmParam { domid: mem::DOMID_SELF, pad: 0, index, value };
        unit(benign(nr::HVM_OP, hp::HVMOP_SET_PARAM as u64, ptr(&p), 0))
    }
    fn evtchn_bind_virq(&mut self, virq: u32, vcpu: u32) -> HcResult<EvtchnPort> {
        let mut b = ec::EvtchnBindVirq { virq, vcpu, port: 0 };
        XenErrno::check(benign(nr::EVENT_CHANNEL_OP, ec::EVTCHNOP_BIND_VIRQ as u64, b.as_mut_bytes().as_mut_ptr() as u64, 0))?;
        Ok(EvtchnPort::new(b.port))
    }
    fn evtchn_unmask(&mut self, port: EvtchnPort) -> HcResult<()> {
        let a = ec::EvtchnPortArg { port: port.raw() };
        unit(benign(nr::EVENT_CHANNEL_OP, ec::EVTCHNOP_UNMASK as u64, ptr(&a), 0))
    }
    fn evtchn_send(&mut self, port: EvtchnPort) -> HcResult<()> {
        let a = ec::EvtchnPortArg { port: port.raw() };
        unit(benign(nr::EVENT_CHANNEL_OP, ec::EVTCHNOP_SEND as u64, ptr(&a), 0))
    }
    fn evtchn_alloc_unbound(&mut self, remote: u16) -> HcResult<EvtchnPort> {
        let mut a = ec::EvtchnAllocUnbound { dom: mem::DOMID_SELF, remote_dom: remote, port: 0 };
        XenErrno::check(benign(nr::EVENT_CHANNEL_OP, ec::EVTCHNOP_ALLOC_UNBOUND as u64, a.as_mut_bytes().as_mut_ptr() as u64, 0))?;
        Ok(EvtchnPort::new(a.port))
    }
    fn sched_shutdown(&mut self, reason: sched::ShutdownReason, suspend_record: u64) -> i64 {
        let s = sched::SchedShutdown { reason: reason as u32 };
        benign(nr::SCHED_OP, sched::SCHEDOP_SHUTDOWN as u64, ptr(&s), suspend_record)
    }
    fn stop_periodic_timer(&mut self) -> HcResult<()> {
        unit(benign(nr::VCPU_OP, vcpu::VCPUOP_STOP_PERIODIC_TIMER as u64, 0, 0))
    }
    fn set_singleshot_timer(&mut self, timeout_abs_ns: u64) -> HcResult<()> {
        let t = vcpu::VcpuSetSingleshotTimer { timeout_abs_ns, flags: 0, pad: 0 };
        // Xen takes it only from the vCPU it is for.
        unit(benign(nr::VCPU_OP, vcpu::VCPUOP_SET_SINGLESHOT_TIMER as u64, crate::hw::smp::current() as u64, ptr(&t)))
    }
    fn gnttab_setup_table(&mut self, frames: &mut [u64]) -> HcResult<()> {
        let mut t = gt::GnttabSetupTable { dom: mem::DOMID_SELF, pad0: 0, nr_frames: frames.len() as u32, status: 0, pad1: [0; 6], frame_list: frames.as_mut_ptr() as u64 };
        XenErrno::check(benign(nr::GRANT_TABLE_OP, gt::GNTTABOP_SETUP_TABLE as u64, t.as_mut_bytes().as_mut_ptr() as u64, 1))?;
        match t.status {
            0 => Ok(()),
            st => Err(XenErrno::from_negative(st as i64)),
        }
    }
    unsafe fn add_to_physmap(&mut self, space: u32, idx: u64, gfn: Gfn) -> HcResult<()> {
        let a = mem::XenAddToPhysmap { domid: mem::DOMID_SELF, size: 0, space, idx, gpfn: gfn.raw() };
        // SAFETY: the caller vouches that `gfn` may be replaced by Xen's frame.
        unit(unsafe { hypercall4(nr::MEMORY_OP, mem::XENMEM_ADD_TO_PHYSMAP as u64, ptr(&a), 0, 0) })
    }
    unsafe fn register_vcpu_info(&mut self, frame: u64, offset: u32) -> HcResult<()> {
        let r = vcpu::VcpuRegisterVcpuInfo { mfn: frame, offset, rsvd: 0 };
        // SAFETY: the caller vouches that Xen may write vcpu_info there.
        unit(unsafe { hypercall4(nr::VCPU_OP, vcpu::VCPUOP_REGISTER_VCPU_INFO as u64, 0, ptr(&r), 0) })
    }
    unsafe fn update_va_mapping(&mut self, va: u64, pte: u64) -> HcResult<()> {
        // SAFETY: the caller vouches for the page at `va` and the frame in `pte`.
        unit(unsafe { hypercall4(nr::UPDATE_VA_MAPPING, va, pte, UVMF_INVLPG, 0) })
    }
    unsafe fn mmu_update(&mut self, reqs: &[MmuUpdate]) -> HcResult<()> {
        let mut done = 0u32;
        // SAFETY: the caller vouches for every entry written.
        unit(unsafe { hypercall4(nr::MMU_UPDATE, reqs.as_ptr() as u64, reqs.len() as u64, &mut done as *mut u32 as u64, mem::DOMID_SELF as u64) })
    }
    unsafe fn set_gdt(&mut self, frames: &[Mfn], entries: u32) -> HcResult<()> {
        let raw: [u64; 16] = core::array::from_fn(|i| frames.get(i).map_or(0, |m| m.raw()));
        // SAFETY: the caller vouches for the frames' contents and mappings.
        unit(unsafe { hypercall4(nr::SET_GDT, raw.as_ptr() as u64, entries as u64, 0, 0) })
    }
    unsafe fn set_trap_table(&mut self, table: &[TrapInfo]) -> HcResult<()> {
        debug_assert!(table.last().is_some_and(|t| t.address == 0));
        // SAFETY: the caller vouches for the stubs.
        unit(unsafe { hypercall4(nr::SET_TRAP_TABLE, table.as_ptr() as u64, 0, 0, 0) })
    }
    unsafe fn register_callback(&mut self, type_: u16, address: u64, flags: u16) -> HcResult<()> {
        let r = cb::CallbackRegister { type_, flags, pad: 0, address };
        // SAFETY: the caller vouches for the stub.
        unit(unsafe { hypercall4(nr::CALLBACK_OP, cb::CALLBACKOP_REGISTER as u64, ptr(&r), 0, 0) })
    }
    unsafe fn stack_switch(&mut self, ss: u16, sp: u64) -> HcResult<()> {
        // SAFETY: the caller vouches for the stack.
        unit(unsafe { hypercall4(nr::STACK_SWITCH, ss as u64, sp, 0, 0) })
    }
    unsafe fn mmuext_op(&mut self, ops: &[MmuextOp]) -> HcResult<()> {
        let mut done = 0u32;
        // SAFETY: the caller vouches for the frames the operations name.
        unit(unsafe { hypercall4(nr::MMUEXT_OP, ops.as_ptr() as u64, ops.len() as u64, &mut done as *mut u32 as u64, mem::DOMID_SELF as u64) })
    }
}

/// Memory reservation: giving frames back to Xen and taking new ones (demand-populated
/// payload memory, hw/demand.rs). Not in the `Hypercalls` trait: only the bare-metal memory
/// code uses them; its logic is tested through `xshim_shim::demand::Backing`.
impl XenHypercalls {
    fn reservation(op: u32, frames: u64, count: usize, order: u32) -> HcResult<usize> {
        let r = mem::XenMemoryReservation { extent_start: frames, nr_extents: count as u64, extent_order: order, mem_flags: 0, domid: mem::DOMID_SELF, _pad: [0; 6] };
        // SAFETY: callers (below) vouch for the frames; Xen reads the struct and the list,
        // and for populate writes the list back.
        let rc = unsafe { hypercall4(nr::MEMORY_OP, op as u64, ptr(&r), 0, 0) };
        XenErrno::check(rc).map(|n| n as usize)
    }

    /// XENMEM_populate_physmap: `frames` holds the first page frame of each extent of
    /// 2^`order` pages; PV gets each extent's first machine frame written back. Returns the
    /// extents done (fewer than asked: the domain is at its limit).
    /// # Safety
    /// The frames must be unpopulated guest frames that nothing maps.
    pub unsafe fn populate_physmap(&mut self, frames: &mut [u64], order: u32) -> HcResult<usize> {
        Self::reservation(mem::XENMEM_POPULATE_PHYSMAP, frames.as_mut_ptr() as u64, frames.len(), order)
    }

    /// XENMEM_decrease_reservation: gives back the extents whose first frames (PV: machine
    /// frames; PVH: guest frames) are listed. Returns the extents done.
    /// # Safety
    /// No mapping of these frames may remain, and nothing may use them again until they are
    /// populated anew.
    pub unsafe fn decrease_reservation(&mut self, frames: &[u64], order: u32) -> HcResult<usize> {
        Self::reservation(mem::XENMEM_DECREASE_RESERVATION, frames.as_ptr() as u64, frames.len(), order)
    }

    /// GNTTABOP_copy: Xen copies each op's bytes and marks each destination frame dirty.
    /// Returns the first op's failure status, if any.
    /// # Safety
    /// Every destination must be memory nothing else uses while Xen writes it.
    pub unsafe fn gnttab_copy(&mut self, ops: &mut [gt::GnttabCopy]) -> HcResult<Result<(), i16>> {
        // SAFETY: the caller vouches for the destinations; Xen reads and updates `ops`.
        let rc = unsafe { hypercall4(nr::GRANT_TABLE_OP, gt::GNTTABOP_COPY as u64, ops.as_mut_ptr() as u64, ops.len() as u64, 0) };
        XenErrno::check(rc)?;
        Ok(ops.iter().find(|o| o.status != 0).map_or(Ok(()), |o| Err(o.status)))
    }

    /// XENMEM_current_reservation / XENMEM_maximum_reservation: pages the domain holds now,
    /// and may hold at most (max_pages).
    pub fn reservation_pages(&mut self, maximum: bool) -> HcResult<u64> {
        let d = mem::XenMemoryDomain { domid: mem::DOMID_SELF };
        let op = if maximum { mem::XENMEM_MAXIMUM_RESERVATION } else { mem::XENMEM_CURRENT_RESERVATION };
        XenErrno::check(benign(nr::MEMORY_OP, op as u64, ptr(&d), 0))
    }
}
