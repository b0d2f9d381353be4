//! What the disks and network interfaces share as split devices: which of the toolstack's
//! devices of a kind the shim drives (all of them, in numeric order, up to a limit; anything
//! else logged and left alone).
use crate::hw::xen::xenstore::XsStore;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xshim_shim::xen::xenbus;

/// The xenstore directories (`device/<kind>/<id>`) of the devices of `kind` the shim drives,
/// at most `max`; `what` names them in the log ("disks").
pub fn to_drive(store: &mut XsStore, kind: &str, max: usize, what: &str) -> Vec<String> {
    let (ids, odd) = xenbus::enumerate(store, &format!("device/{kind}"));
    for n in odd {
        log::warn!("{kind}: ignoring device/{kind}/{n} (not a device number)");
    }
    if ids.len() > max {
        log::warn!("{kind}: {} devices, the shim drives the first {max} {what}; ignored: {:?}", ids.len(), &ids[max..]);
    }
    ids.into_iter().take(max).map(|id| format!("device/{kind}/{id}")).collect()
}
