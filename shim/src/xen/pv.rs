//! Classic PV operations shared by bring-up and the suspend steps: Xen's frames are mapped
//! by machine address over reserved pages, start_info names ports and ring mfns, and around
//! a suspend the ring frames in start_info are turned into pfns and back (the seed's
//! canonicalisation), with a type holding them while they are pfns.
use super::abi::callback::{CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE};
use super::abi::event_channel::VIRQ_TIMER;
use super::abi::xen::{TrapInfo, FLAT_KERNEL_CS64};
use super::errno::XenResultExt;
use super::frames::{EvtchnPort, Mfn, Pfn};
use super::guest::{mfn_of_va, GuestEnv, PlatformError, PvMemory, RingPage, XenPorts};
use super::hypercalls::{Hypercalls, ReservedPages};
use x86_64::structures::paging::PageTableFlags as Pte;

/// A mapping of one of our own RAM pages. Under PV the guest kernel runs in ring 3, so its
/// pages are user pages; accessed/dirty are preset so Xen need not set them.
pub const RAM_PTE: Pte = Pte::PRESENT.union(Pte::WRITABLE).union(Pte::USER_ACCESSIBLE).union(Pte::ACCESSED).union(Pte::DIRTY);
/// The same, read-only: page tables and the GDT (Xen refuses them with a writable mapping).
pub const RAM_PTE_RO: Pte = RAM_PTE.difference(Pte::WRITABLE);
/// An L2 entry pointing at one of our L1 tables.
pub const L2_PTE: Pte = Pte::PRESENT.union(Pte::WRITABLE).union(Pte::USER_ACCESSIBLE).union(Pte::ACCESSED);

/// The page-table entry that maps machine frame `mfn` with `flags`.
pub fn pte(mfn: Mfn, flags: Pte) -> u64 {
    mfn.maddr() | flags.bits()
}

/// Maps Xen's shared_info frame (machine address from start_info) over its reserved page.
pub fn map_shared_info(hc: &mut impl Hypercalls, env: &mut impl GuestEnv, pages: &ReservedPages, maddr: u64) -> Result<(), PlatformError> {
    // SAFETY: the reserved shared_info page is never referenced as Rust memory; the frame is
    // the one start_info names.
    unsafe { hc.update_va_mapping(pages.shared_info(), pte(Mfn::of_maddr(maddr), RAM_PTE)) }.op("update_va_mapping(shared_info)")?;
    env.set_shared_info_mapped(true);
    Ok(())
}

/// Puts our own RAM frame back under a reserved page that maps a frame that is not ours
/// (shared_info, the grant frame): the toolstack refuses to save page tables that map frames
/// outside the guest's p2m ("Bad mfn"), and such frames do not exist in a new domain.
pub fn unmap_foreign(hc: &mut impl Hypercalls, mem: &impl PvMemory, va: u64, op: &'static str) -> Result<(), PlatformError> {
    let own = mfn_of_va(mem, va)?;
    // SAFETY: `va` is a reserved page (never referenced as Rust memory); it gets back the
    // guest's own frame that the p2m names for it.
    unsafe { hc.update_va_mapping(va, pte(own, RAM_PTE)) }.op(op)?;
    Ok(())
}

/// Grant table v1, frames 0..n: Xen names their mfns (GNTTABOP_setup_table, which grows the
/// table to n frames); each goes over its reserved grant page.
pub fn map_grant_frames(hc: &mut impl Hypercalls, pages: &ReservedPages, n: u32) -> Result<(), PlatformError> {
    let mut frames = [0u64; crate::layout::GRANT_FRAMES as usize];
    let frames = &mut frames[..n as usize];
    hc.gnttab_setup_table(frames).op("GNTTABOP_setup_table")?;
    for (i, &mfn) in frames.iter().enumerate() {
        // SAFETY: the reserved grant pages are never referenced as Rust memory.
        unsafe { hc.update_va_mapping(pages.grant_frame(i as u32), pte(Mfn::new(mfn), RAM_PTE)) }.op("update_va_mapping(grant frame)")?;
    }
    Ok(())
}

/// The grant frames out of our page tables before a suspend (see `unmap_foreign`).
pub fn unmap_grant_frames(hc: &mut impl Hypercalls, mem: &impl PvMemory, pages: &ReservedPages, n: u32) -> Result<(), PlatformError> {
    for i in 0..n {
        unmap_foreign(hc, mem, pages.grant_frame(i), "update_va_mapping(unmap grant frame)")?;
    }
    Ok(())
}

/// start_info's store and console frames while they hold pfns (between `canonicalise` and
/// either a new domain, where the toolstack rewrote them, or `uncanonicalise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a cancelled suspend needs them to restore start_info"]
pub struct CanonicalRings {
    pub store: Pfn,
    pub console: Pfn,
}

/// Before suspending: the toolstack expects the store and console frames as pfns (it turns
/// them into the new domain's mfns when it restores), as in Linux's xen_pre_suspend.
pub fn canonicalise(mem: &mut impl PvMemory) -> CanonicalRings {
    let mut si = mem.start_info();
    let rings = CanonicalRings { store: mem.m2p(Mfn::new(si.store_mfn)), console: mem.m2p(Mfn::new(si.console.mfn)) };
    si.store_mfn = rings.store.raw();
    si.console.mfn = rings.console.raw();
    mem.set_start_info(&si);
    rings
}

/// After a cancelled suspend: the same domain, so the pfns go back to its own mfns.
pub fn uncanonicalise(mem: &mut impl PvMemory, rings: CanonicalRings) -> Result<(), PlatformError> {
    let mut si = mem.start_info();
    si.store_mfn = mem.p2m(rings.store).ok_or(PlatformError::BeyondP2m(rings.store))?.raw();
    si.console.mfn = mem.p2m(rings.console).ok_or(PlatformError::BeyondP2m(rings.console))?.raw();
    mem.set_start_info(&si);
    Ok(())
}

/// What a PV guest sets up in its domain at boot and again in every new domain (the trap
/// table, callbacks and GDT travel with the vCPU's saved state; these do not): shared_info
/// from start_info, events masked, vcpu_info, no periodic timer, and the p2m frame lists.
pub fn attach_to_domain(hc: &mut impl Hypercalls, env: &mut impl GuestEnv, mem: &mut impl PvMemory, pages: &ReservedPages) -> Result<(), PlatformError> {
    map_shared_info(hc, env, pages, mem.start_info().shared_info)?;
    env.set_events_masked(true);
    register_vcpu_info(hc, env, mem, pages)?;
    hc.stop_periodic_timer().op("VCPUOP_stop_periodic_timer")?;
    mem.publish_p2m()
}

/// Registers vCPU0's vcpu_info in the shim's own area, by mfn.
pub fn register_vcpu_info(hc: &mut impl Hypercalls, env: &mut impl GuestEnv, mem: &impl PvMemory, pages: &ReservedPages) -> Result<(), PlatformError> {
    let va = pages.vcpu_info();
    let mfn = mfn_of_va(mem, va)?;
    // SAFETY: the reserved vcpu_info area is only read through volatile/atomic access.
    let r = unsafe { hc.register_vcpu_info(mfn.raw(), (va % crate::layout::PAGE_SIZE) as u32) };
    if let Err(e) = r {
        log::warn!("VCPUOP_register_vcpu_info failed ({e}): using shared_info's vcpu_info slot");
    }
    env.set_vcpu_info_registered(r.is_ok());
    Ok(())
}

/// Binds VIRQ_TIMER and reads the console and xenstore ports from start_info (rewritten by
/// the toolstack in a new domain); unmasks all three.
pub fn bind_ports(hc: &mut impl Hypercalls, mem: &impl PvMemory) -> Result<XenPorts, PlatformError> {
    let timer = hc.evtchn_bind_virq(VIRQ_TIMER, 0).op("EVTCHNOP_bind_virq(VIRQ_TIMER)")?;
    let si = mem.start_info();
    let ports = XenPorts { timer, console: EvtchnPort::new(si.console.evtchn), store: EvtchnPort::new(si.store_evtchn) };
    for port in [ports.timer, ports.console, ports.store] {
        hc.evtchn_unmask(port).op("EVTCHNOP_unmask")?;
    }
    Ok(ports)
}

/// The console and xenstore ring pages: start_info names their mfns; they are guest RAM,
/// found again through the m2p.
pub fn rings(mem: &impl PvMemory, ports: &XenPorts) -> (RingPage, RingPage) {
    let si = mem.start_info();
    (
        RingPage { addr: mem.m2p(Mfn::new(si.console.mfn)).addr(), port: ports.console },
        RingPage { addr: mem.m2p(Mfn::new(si.store_mfn)).addr(), port: ports.store },
    )
}

/// The trap table entries for the stubs in `handlers` ((vector, address); at most 32),
/// ending with the zero entry Xen looks for. #BP may be raised from any level (int3); the
/// rest only by faults. Every entry masks events, like an interrupt gate.
pub fn trap_table(handlers: &[(u8, u64)]) -> alloc::vec::Vec<TrapInfo> {
    const TI_CLEAR_EVENT_MASK: u8 = 4;
    const DPL_USER: u8 = 3;
    let mut table: alloc::vec::Vec<TrapInfo> = handlers
        .iter()
        .map(|&(vector, address)| TrapInfo { vector, flags: if vector == 3 { DPL_USER } else { 0 } | TI_CLEAR_EVENT_MASK, cs: FLAT_KERNEL_CS64, pad: 0, address })
        .collect();
    table.push(TrapInfo { vector: 0, flags: 0, cs: 0, pad: 0, address: 0 });
    table
}

/// Installs the trap table and the event and failsafe callbacks.
/// # Safety
/// Every address must be an entry stub for Xen's PV exception or callback frame.
pub unsafe fn install_traps_and_callbacks(hc: &mut impl Hypercalls, handlers: &[(u8, u64)], event: u64, failsafe: u64) -> Result<(), PlatformError> {
    let table = trap_table(handlers);
    // SAFETY: the caller vouches for the stubs.
    unsafe {
        hc.set_trap_table(&table).op("HYPERVISOR_set_trap_table")?;
        hc.register_callback(CALLBACKTYPE_EVENT, event, CALLBACKF_MASK_EVENTS).op("CALLBACKOP_register(event)")?;
        hc.register_callback(CALLBACKTYPE_FAILSAFE, failsafe, CALLBACKF_MASK_EVENTS).op("CALLBACKOP_register(failsafe)")?;
    }
    Ok(())
}
