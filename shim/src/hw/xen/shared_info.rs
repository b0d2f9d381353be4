//! The pages Xen shares with us — shared_info, vcpu_info, the grant frame — gathered in one
//! static (`XenPages`, see layout::XEN_SHARED_PAGES), and event channels (2-level ABI) over
//! them. Xen writes these behind our back, and PV unmaps shared_info around a suspend, so
//! nothing here hands out references: every access is a volatile or atomic raw-pointer one.
use super::hypercall;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use xshim_shim::layout::{GRANT_FRAMES, PAGE_SIZE};
use xshim_shim::xen::abi::xen::{SharedInfo, VcpuInfo, VcpuTimeInfo, EVTCHN_WORDS};
use xshim_shim::xen::frames::EvtchnPort;
use xshim_shim::xen::hypercalls::{Hypercalls, ReservedPages};

#[repr(C, align(4096))]
struct XenPages {
    shared_info: [u8; PAGE_SIZE as usize],
    grant_frames: [[u8; PAGE_SIZE as usize]; GRANT_FRAMES as usize],
    vcpu_info: [u8; PAGE_SIZE as usize],
}

/// Never referenced as Rust memory: only its addresses are taken (see `pages()`).
static mut XEN_PAGES: XenPages = XenPages { shared_info: [0; 4096], grant_frames: [[0; 4096]; GRANT_FRAMES as usize], vcpu_info: [0; 4096] };
const _: () = assert!(core::mem::size_of::<XenPages>() == xshim_shim::layout::XEN_SHARED_PAGES * PAGE_SIZE as usize);

static SHARED_INFO_MAPPED: AtomicBool = AtomicBool::new(false);
static VCPU_INFO_REGISTERED: AtomicBool = AtomicBool::new(false);

/// The reserved pages, by address, for the hypercalls that place Xen's frames in them.
pub fn pages() -> ReservedPages {
    let base = &raw const XEN_PAGES;
    // SAFETY: XEN_PAGES is page-aligned, belongs to the shim, and only its addresses are taken
    // (this function and the raw accessors below); vcpu_info starts its own page (aligned 64).
    unsafe { ReservedPages::new(&raw const (*base).shared_info as u64, &raw const (*base).grant_frames as u64, &raw const (*base).vcpu_info as u64) }
}

/// Readers may use shared_info (set after it is mapped at boot and in every new domain;
/// cleared before PV unmaps it).
pub fn set_shared_info_mapped(mapped: bool) {
    SHARED_INFO_MAPPED.store(mapped, Ordering::SeqCst);
}

/// vcpu_info lives in our registered area (else in shared_info's slot 0).
pub fn set_vcpu_info_registered(registered: bool) {
    VCPU_INFO_REGISTERED.store(registered, Ordering::SeqCst);
}

fn shared_info() -> Option<*mut SharedInfo> {
    SHARED_INFO_MAPPED.load(Ordering::Acquire).then(|| pages().shared_info() as *mut SharedInfo)
}

/// The running vCPU's vcpu_info: vCPU 0's in our registered area (else shared_info's slot
/// 0), a secondary's in its shared_info slot (Xen's default for vCPUs below 32: nothing to
/// register, nothing to register again in a new domain).
fn vcpu_info() -> Option<*mut VcpuInfo> {
    let v = crate::hw::smp::current();
    if v == 0 && VCPU_INFO_REGISTERED.load(Ordering::Acquire) {
        return Some(pages().vcpu_info() as *mut VcpuInfo);
    }
    // SAFETY: a raw projection into the mapped shared_info page; no reference is formed;
    // v < MAX_VCPUS (8) < the 32 slots.
    shared_info().map(|si| unsafe { &raw mut (*si).vcpu_info[v] })
}

fn atomic_u64<'a>(word: *mut u64) -> &'a AtomicU64 {
    // SAFETY: `word` points into a shared page that stays mapped while the flags above say
    // so; AtomicU64 has u64's layout and Xen updates these words atomically too.
    unsafe { AtomicU64::from_ptr(word) }
}

fn atomic_u8<'a>(byte: *mut u8) -> &'a AtomicU8 {
    // SAFETY: as atomic_u64, for a byte of vcpu_info.
    unsafe { AtomicU8::from_ptr(byte) }
}

/// A consistent-enough copy of the running vCPU's time record (the caller checks its version).
pub fn vcpu_time() -> Option<VcpuTimeInfo> {
    // SAFETY: a volatile read of the mapped vcpu_info's time record (plain data).
    vcpu_info().map(|vi| unsafe { core::ptr::read_volatile(&raw const (*vi).time) })
}

/// shared_info's wall-clock fields: (version, seconds, nanoseconds).
pub fn wallclock_fields() -> Option<(u32, u64, u32)> {
    let si = shared_info()?;
    // SAFETY: volatile reads of fields of the mapped shared_info page.
    unsafe {
        let sec = core::ptr::read_volatile(&raw const (*si).wc_sec) as u64 | (core::ptr::read_volatile(&raw const (*si).wc_sec_hi) as u64) << 32;
        Some((core::ptr::read_volatile(&raw const (*si).wc_version), sec, core::ptr::read_volatile(&raw const (*si).wc_nsec)))
    }
}

/// PV: the fault address Xen reports in vcpu_info (a PV kernel cannot read CR2).
pub fn pv_cr2() -> u64 {
    // SAFETY: a volatile read of the mapped vcpu_info.
    vcpu_info().map_or(0, |vi| unsafe { core::ptr::read_volatile(&raw const (*vi).arch.cr2) })
}

/// PV: where the toolstack finds our p2m (shared_info's arch area): its length, the frame
/// list list's mfn, and no virtually-mapped linear p2m (p2m_cr3 = 0). False if shared_info
/// is not mapped.
pub fn set_p2m_info(max_pfn: u64, frame_list_list_mfn: u64) -> bool {
    let Some(p) = shared_info() else { return false };
    // SAFETY: p is the mapped shared_info page; these arch fields are the guest's to write
    // (Xen only reads them, for the toolstack).
    unsafe {
        core::ptr::write_volatile(&raw mut (*p).arch.max_pfn, max_pfn);
        core::ptr::write_volatile(&raw mut (*p).arch.pfn_to_mfn_frame_list_list, frame_list_list_mfn);
        core::ptr::write_volatile(&raw mut (*p).arch.p2m_cr3, 0);
        core::ptr::write_volatile(&raw mut (*p).arch.p2m_vaddr, 0);
    }
    true
}

pub fn clear_pending(port: EvtchnPort) {
    let Some(si) = shared_info() else { return };
    let (w, b) = ((port.raw() / 64) as usize, port.raw() % 64);
    if w < EVTCHN_WORDS {
        // SAFETY: raw projection to a pending word of the mapped page.
        atomic_u64(unsafe { &raw mut (*si).evtchn_pending[w] }).fetch_and(!(1u64 << b), Ordering::SeqCst);
    }
}

/// Takes every pending, unmasked port of the running vCPU (`mine`: the ports bound to it; a
/// word its selector names may hold another vCPU's, which is left pending for that one),
/// clearing its pending bit; calls `f` for each.
pub fn drain_pending(mine: impl Fn(EvtchnPort) -> bool, mut f: impl FnMut(EvtchnPort)) {
    let (Some(si), Some(vi)) = (shared_info(), vcpu_info()) else { return };
    // SAFETY: raw field pointers into the mapped vcpu_info; no reference is formed.
    let (upcall_pending, pending_sel) = unsafe { (&raw mut (*vi).evtchn_upcall_pending, &raw mut (*vi).evtchn_pending_sel) };
    loop {
        atomic_u8(upcall_pending).store(0, Ordering::SeqCst);
        let sel = atomic_u64(pending_sel).swap(0, Ordering::SeqCst);
        if sel == 0 {
            break;
        }
        for w in (0..EVTCHN_WORDS).filter(|w| sel & (1u64 << w) != 0) {
            // SAFETY: as above; w < EVTCHN_WORDS.
            let (pending_w, mask_w) = unsafe { (&raw mut (*si).evtchn_pending[w], &raw mut (*si).evtchn_mask[w]) };
            let mut ready = atomic_u64(pending_w).load(Ordering::SeqCst) & !atomic_u64(mask_w).load(Ordering::SeqCst);
            while ready != 0 {
                let b = ready.trailing_zeros();
                ready &= ready - 1;
                let port = EvtchnPort::new(w as u32 * 64 + b);
                if mine(port) {
                    atomic_u64(pending_w).fetch_and(!(1u64 << b), Ordering::SeqCst);
                    f(port);
                }
            }
        }
    }
}

/// Masks or unmasks upcalls for the running vCPU; returns whether they were masked before.
pub fn set_upcall_mask(masked: bool) -> bool {
    match vcpu_info() {
        // SAFETY: raw projection into the mapped vcpu_info.
        Some(vi) => atomic_u8(unsafe { &raw mut (*vi).evtchn_upcall_mask }).swap(masked as u8, Ordering::SeqCst) != 0,
        None => true,
    }
}

/// True if an event is waiting for the running vCPU (set by Xen also while delivery is off).
pub fn upcall_pending() -> bool {
    // SAFETY: raw projection into the mapped vcpu_info.
    vcpu_info().is_some_and(|vi| atomic_u8(unsafe { &raw mut (*vi).evtchn_upcall_pending }).load(Ordering::SeqCst) != 0)
}

/// PV "interrupt enable": unmask, and if an event arrived while masked, make Xen deliver it
/// now (it only checks on the way back from a hypercall), as Linux's xen_irq_enable does.
pub fn pv_unmask_and_deliver() {
    set_upcall_mask(false);
    if upcall_pending() {
        hypercall::XenHypercalls.xen_version();
    }
}

/// Waits (blocked in Xen, no spinning) until `port` fires or `timeout_ns` of Xen system time
/// pass. The caller re-checks its condition afterwards; spurious returns are fine.
pub fn wait_on_port(port: EvtchnPort, timeout_ns: u64) {
    let deadline = super::time::xen_system_time().saturating_add(timeout_ns);
    // Clear first: SCHEDOP_poll returns at once while the port is still pending.
    clear_pending(port);
    hypercall::sched_poll(port, deadline);
}
