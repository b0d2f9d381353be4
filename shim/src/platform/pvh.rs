//! Bring-up as a Xen PVH guest: the hypercall page (by MSR), shared_info and vcpu_info in our
//! physmap, Xen time, then the shared Xen connection (`xen::connect`).
use super::{xen, Platform};
use crate::hw::xen::hypercall::{self, XenHypercalls};
use crate::hw::xen::shared_info;
use crate::hw::EventsOff;
use xshim_shim::xen::guest::PlatformError;
use xshim_shim::xen::hypercalls::Hypercalls;

/// Everything Xen-facing, before the payload is loaded.
pub fn init(cpuid_base: u32, events: &EventsOff) -> Result<(), PlatformError> {
    if !hypercall::install_page(cpuid_base) {
        return Err(PlatformError::NoHypercallPage);
    }
    let mut env = xen::Env::boot(events);
    xshim_shim::xen::pvh::map_shared_info(&mut XenHypercalls, &mut env, &shared_info::pages())?;
    crate::clock::use_xen();
    let (ports, console, store) = xen::connect(Platform::Pvh, events)?;
    let ver = XenHypercalls.xen_version();
    log::info!(
        "Xen {}.{} PVH: shared_info at pfn {:#x}, console pfn {:#x} port {}, xenstore pfn {:#x} port {}, timer port {}",
        ver >> 16, ver & 0xffff, shared_info::pages().shared_info() >> 12, console.addr >> 12, console.port.raw(), store.addr >> 12, store.port.raw(), ports.timer.raw()
    );
    Ok(())
}
