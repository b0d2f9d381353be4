//! Event channels, 2-level ABI, over the shared_info page: scanning and clearing pending
//! ports, and waiting for one port (SCHEDOP_poll) where interrupts are off.
use super::hypercall;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use xshim_shim::xen::abi::xen::{SharedInfo, VcpuInfo, EVTCHN_WORDS};

#[repr(C, align(4096))]
pub struct SharedInfoPage(pub [u8; 4096]);

/// The frame Xen's shared_info is placed at (XENMEM_add_to_physmap), in the shim's bss.
pub static mut SHARED_INFO_PAGE: SharedInfoPage = SharedInfoPage([0; 4096]);
static SHARED_INFO: AtomicPtr<SharedInfo> = AtomicPtr::new(core::ptr::null_mut());

pub fn shared_info_gpfn() -> u64 {
    (&raw const SHARED_INFO_PAGE as u64) >> 12
}

/// Called once shared_info is mapped at SHARED_INFO_PAGE (boot and every resume).
pub fn set_shared_info_mapped() {
    SHARED_INFO.store(&raw mut SHARED_INFO_PAGE as *mut SharedInfo, Ordering::Release);
}

/// PV, before suspending: the page under SHARED_INFO_PAGE is about to be our own RAM again.
pub fn set_shared_info_unmapped() {
    SHARED_INFO.store(core::ptr::null_mut(), Ordering::Release);
}

/// PV: where the toolstack finds our p2m (shared_info's arch area): its length, the frame
/// list list's mfn, and no virtually-mapped linear p2m (p2m_cr3 = 0).
pub fn set_p2m_info(max_pfn: u64, frame_list_list_mfn: u64) {
    let p = SHARED_INFO.load(Ordering::Acquire);
    assert!(!p.is_null(), "set_p2m_info before shared_info is mapped");
    // SAFETY: p is the mapped shared_info page; these arch fields are the guest's to write
    // (Xen only reads them, for the toolstack).
    unsafe {
        core::ptr::write_volatile(&raw mut (*p).arch.max_pfn, max_pfn);
        core::ptr::write_volatile(&raw mut (*p).arch.pfn_to_mfn_frame_list_list, frame_list_list_mfn);
        core::ptr::write_volatile(&raw mut (*p).arch.p2m_cr3, 0);
        core::ptr::write_volatile(&raw mut (*p).arch.p2m_vaddr, 0);
    }
}

#[repr(C, align(64))]
struct VcpuInfoArea(VcpuInfo);

/// vCPU0's vcpu_info once registered with VCPUOP_register_vcpu_info (in the shim's bss).
static mut VCPU_INFO_AREA: VcpuInfoArea = VcpuInfoArea(VcpuInfo {
    evtchn_upcall_pending: 0,
    evtchn_upcall_mask: 0,
    pad: [0; 6],
    evtchn_pending_sel: 0,
    arch: xshim_shim::xen::abi::xen::ArchVcpuInfo { cr2: 0, pad: 0 },
    time: xshim_shim::xen::abi::xen::VcpuTimeInfo { version: 0, pad0: 0, tsc_timestamp: 0, system_time: 0, tsc_to_system_mul: 0, tsc_shift: 0, flags: 0, pad1: [0; 2] },
});
static VCPU_INFO: AtomicPtr<VcpuInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Moves vCPU0's vcpu_info out of shared_info into our own area (boot, and once per new
/// domain after a resume: the registration does not survive a save). Falls back to
/// shared_info's slot, with a warning, if Xen refuses.
pub fn register_vcpu_info() {
    VCPU_INFO.store(core::ptr::null_mut(), Ordering::SeqCst);
    let addr = &raw mut VCPU_INFO_AREA as u64;
    // PVH names the frame by gfn (= our physical address), PV by mfn.
    let frame = if crate::platform::is_pv() { super::pv::mfn_of_va(addr).0 } else { addr >> 12 };
    let rc = hypercall::register_vcpu_info(frame, (addr & 0xfff) as u32);
    if rc == 0 {
        VCPU_INFO.store(addr as *mut VcpuInfo, Ordering::SeqCst);
    } else {
        log::warn!("VCPUOP_register_vcpu_info failed ({rc}): using shared_info's vcpu_info slot");
    }
}

/// The vcpu_info Xen updates for vCPU0: the registered one, else shared_info's slot.
pub fn vcpu_info() -> Option<&'static VcpuInfo> {
    let p = VCPU_INFO.load(Ordering::Acquire);
    // SAFETY: p is null or our static VCPU_INFO_AREA, registered with Xen, which writes it
    // concurrently; it is only read through atomics and volatile reads.
    match unsafe { p.as_ref() } {
        Some(v) => Some(v),
        None => shared_info().map(|si| &si.vcpu_info[0]),
    }
}

/// shared_info, once mapped.
pub fn shared_info() -> Option<&'static SharedInfo> {
    let p = SHARED_INFO.load(Ordering::Acquire);
    // SAFETY: p is null or the page Xen maps shared_info into, which stays mapped; we only
    // read it through atomics or volatile reads below, as Xen writes it concurrently.
    unsafe { p.as_ref() }
}

fn atomic_u64(word: &u64) -> &AtomicU64 {
    // SAFETY: AtomicU64 has the same layout as u64; the word lives in shared_info, which Xen
    // updates with atomic operations too.
    unsafe { AtomicU64::from_ptr(word as *const u64 as *mut u64) }
}

fn atomic_u8(byte: &u8) -> &AtomicU8 {
    // SAFETY: as atomic_u64, for a byte of vcpu_info.
    unsafe { AtomicU8::from_ptr(byte as *const u8 as *mut u8) }
}

pub fn clear_pending(port: u32) {
    if let Some(si) = shared_info() {
        let (w, b) = ((port / 64) as usize, port % 64);
        if w < EVTCHN_WORDS {
            atomic_u64(&si.evtchn_pending[w]).fetch_and(!(1u64 << b), Ordering::SeqCst);
        }
    }
}

/// Takes every pending, unmasked port (vCPU0), clearing its pending bit; calls `f` for each.
pub fn drain_pending(mut f: impl FnMut(u32)) {
    let (Some(si), Some(vi)) = (shared_info(), vcpu_info()) else { return };
    loop {
        atomic_u8(&vi.evtchn_upcall_pending).store(0, Ordering::SeqCst);
        let sel = atomic_u64(&vi.evtchn_pending_sel).swap(0, Ordering::SeqCst);
        if sel == 0 {
            break;
        }
        for w in (0..EVTCHN_WORDS).filter(|w| sel & (1u64 << w) != 0) {
            let pending = atomic_u64(&si.evtchn_pending[w]).load(Ordering::SeqCst);
            let mask = atomic_u64(&si.evtchn_mask[w]).load(Ordering::SeqCst);
            let mut ready = pending & !mask;
            while ready != 0 {
                let b = ready.trailing_zeros();
                ready &= ready - 1;
                atomic_u64(&si.evtchn_pending[w]).fetch_and(!(1u64 << b), Ordering::SeqCst);
                f(w as u32 * 64 + b);
            }
        }
    }
}

/// Masks or unmasks upcalls for vCPU0 (the suspend path runs with them masked); returns
/// whether they were masked before.
pub fn set_upcall_mask(masked: bool) -> bool {
    match vcpu_info() {
        Some(vi) => atomic_u8(&vi.evtchn_upcall_mask).swap(masked as u8, Ordering::SeqCst) != 0,
        None => true,
    }
}

/// PV "interrupt enable": unmask, and if an event arrived while masked, make Xen deliver it
/// now (it only checks on the way back from a hypercall), as Linux's xen_irq_enable does.
pub fn pv_unmask_and_deliver() {
    set_upcall_mask(false);
    if vcpu_info().is_some_and(|vi| atomic_u8(&vi.evtchn_upcall_pending).load(Ordering::SeqCst) != 0) {
        hypercall::xen_version();
    }
}

/// Waits (blocked in Xen, no spinning) until `port` fires or `timeout_ns` of Xen system time
/// pass. The caller re-checks its condition afterwards; spurious returns are fine.
pub fn wait_on_port(port: u32, timeout_ns: u64) {
    let deadline = super::time::xen_system_time().saturating_add(timeout_ns);
    // Clear first: SCHEDOP_poll returns at once while the port is still pending.
    clear_pending(port);
    hypercall::sched_poll(port, deadline);
}
