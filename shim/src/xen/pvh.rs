//! PVH (auto-translated) operations shared by bring-up and the suspend steps: Xen's frames
//! are placed in our physmap by gfn, ports and ring pages come from HVM params.
use super::abi::event_channel::VIRQ_TIMER;
use super::abi::hvm_params as hp;
use super::abi::memory::{XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO};
use super::errno::{XenError, XenResultExt};
use super::frames::{EvtchnPort, Gfn};
use super::guest::{GuestEnv, RingPage, XenPorts};
use super::hypercalls::{Hypercalls, ReservedPages};
use crate::layout::{PAGE_SIZE, VECTOR_XEN_CALLBACK};

/// shared_info into our physmap at its reserved page, then vCPU0's vcpu_info into our area.
pub fn map_shared_info(hc: &mut impl Hypercalls, env: &mut impl GuestEnv, pages: &ReservedPages) -> Result<(), XenError> {
    // SAFETY: the reserved shared_info page is never referenced as Rust memory.
    unsafe { hc.add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, Gfn::containing(pages.shared_info())) }.op("XENMEM_add_to_physmap(shared_info)")?;
    env.set_shared_info_mapped(true);
    register_vcpu_info(hc, env, pages);
    Ok(())
}

/// Registers vCPU0's vcpu_info in the shim's own area (once per domain: Xen refuses a
/// second registration). Falls back to shared_info's slot, with a warning, if Xen refuses.
pub fn register_vcpu_info(hc: &mut impl Hypercalls, env: &mut impl GuestEnv, pages: &ReservedPages) {
    let va = pages.vcpu_info();
    // SAFETY: the reserved vcpu_info area is only read through volatile/atomic access.
    let r = unsafe { hc.register_vcpu_info(Gfn::containing(va).raw(), (va % PAGE_SIZE) as u32) };
    if let Err(e) = r {
        log::warn!("VCPUOP_register_vcpu_info failed ({e}): using shared_info's vcpu_info slot");
    }
    env.set_vcpu_info_registered(r.is_ok());
}

/// Grant table v1, frames `from..to` at their reserved grant pages (adding frame i grows
/// Xen's table to i + 1 frames).
pub fn map_grant_frames(hc: &mut impl Hypercalls, pages: &ReservedPages, from: u32, to: u32) -> Result<(), XenError> {
    for i in from..to {
        // SAFETY: the reserved grant pages are never referenced as Rust memory.
        unsafe { hc.add_to_physmap(XENMAPSPACE_GRANT_TABLE, i as u64, Gfn::containing(pages.grant_frame(i))) }.op("XENMEM_add_to_physmap(grant table)")?;
    }
    Ok(())
}

/// Events arrive on the shim's callback vector. Not carried across a migration, so set again
/// after every resume; non-zero also tells libxl the guest is enlightened.
pub fn set_callback_vector(hc: &mut impl Hypercalls) -> Result<(), XenError> {
    hc.hvm_set_param(hp::HVM_PARAM_CALLBACK_IRQ, hp::callback_via_vector(VECTOR_XEN_CALLBACK)).op("HVMOP_set_param(CALLBACK_IRQ)")
}

fn param(hc: &mut impl Hypercalls, index: u32, op: &'static str) -> Result<u64, XenError> {
    hc.hvm_get_param(index).op(op)
}

/// Binds VIRQ_TIMER, reads the console and xenstore ports, unmasks all three.
pub fn bind_ports(hc: &mut impl Hypercalls) -> Result<XenPorts, XenError> {
    let timer = hc.evtchn_bind_virq(VIRQ_TIMER, 0).op("EVTCHNOP_bind_virq(VIRQ_TIMER)")?;
    let console = EvtchnPort::new(param(hc, hp::HVM_PARAM_CONSOLE_EVTCHN, "HVMOP_get_param(CONSOLE_EVTCHN)")? as u32);
    let store = EvtchnPort::new(param(hc, hp::HVM_PARAM_STORE_EVTCHN, "HVMOP_get_param(STORE_EVTCHN)")? as u32);
    for port in [timer, console, store] {
        hc.evtchn_unmask(port).op("EVTCHNOP_unmask")?;
    }
    Ok(XenPorts { timer, console, store })
}

/// The console and xenstore ring pages (by gfn in HVM params; identity-mapped).
pub fn rings(hc: &mut impl Hypercalls, ports: &XenPorts) -> Result<(RingPage, RingPage), XenError> {
    let console = Gfn::new(param(hc, hp::HVM_PARAM_CONSOLE_PFN, "HVMOP_get_param(CONSOLE_PFN)")?);
    let store = Gfn::new(param(hc, hp::HVM_PARAM_STORE_PFN, "HVMOP_get_param(STORE_PFN)")?);
    Ok((RingPage { addr: console.addr(), port: ports.console }, RingPage { addr: store.addr(), port: ports.store }))
}
