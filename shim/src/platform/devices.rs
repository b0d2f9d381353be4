//! What the disks and network interfaces share as split devices: which of the toolstack's
//! devices of a kind the shim drives (all of them, in numeric order, up to a limit; anything
//! else logged and left alone).
use crate::hw::xen::xenstore::{Xenstore, XsStore};
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

/// The watch tokens of the backends' states while their devices connect in the background
/// (in a new domain) start with this; the token ends with the device's directory.
pub const CONNECT_WATCH_PREFIX: &str = "xshim-connect:";

/// A device's connection in the background (in a new domain): when it began, for the log,
/// and the watch on its backend's state, whose every change brings an event that wakes
/// vCPU 0 to move the connection on (the watch also fires once when set). Without the watch
/// the connection still moves on, only later (WAIT polls).
#[derive(Default)]
pub struct Reconnection {
    began_ns: u64,
    /// The backend directory watched.
    watching: Option<String>,
}

impl Reconnection {
    /// The connection was lost (a new domain): its xenstore connection has none of the old
    /// domain's watches.
    pub fn start(&mut self) {
        self.began_ns = crate::hw::xen::time::xen_system_time();
        self.watching = None;
    }

    /// Still connecting: watches the backend's state once the backend is known (`backend`).
    pub fn waiting(&mut self, xs: &mut Xenstore, dev: &str, backend: Option<&str>) {
        let Some(backend) = backend else { return };
        if self.watching.as_deref() == Some(backend) {
            return;
        }
        match xs.watch(&format!("{backend}/state"), &format!("{CONNECT_WATCH_PREFIX}{dev}")) {
            Ok(()) => self.watching = Some(backend.into()),
            Err(e) => log::warn!("{dev}: cannot watch {backend}/state ({e}): the connection moves on only when the shim polls it"),
        }
    }

    /// Connected, or failed: the watch goes. Returns the milliseconds since it began.
    pub fn end(&mut self, xs: &mut Xenstore, dev: &str) -> u64 {
        if let Some(backend) = self.watching.take() {
            if let Err(e) = xs.unwatch(&format!("{backend}/state"), &format!("{CONNECT_WATCH_PREFIX}{dev}")) {
                log::debug!("{dev}: unwatch {backend}/state: {e}");
            }
        }
        crate::hw::xen::time::xen_system_time().saturating_sub(self.began_ns) / 1_000_000
    }
}
