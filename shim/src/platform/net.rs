//! The guest's network interfaces: the Xen vifs found at boot (`device/vif/*`, in numeric
//! order: the payload's interface 0, 1, ...), each driven by the host-tested netfront over
//! `hw::xen::net`. Nothing to do before a suspend (frames are at most once); in a new domain
//! reconnected in the background while the payload runs again (sends are held meanwhile),
//! with an announce frame once connected. The payload's NET_* calls and WAIT poll them.
//! Policy lives here: what is logged, and that an interface which fails stays failed (its
//! calls get an error) while the shim and the payload carry on.
use crate::hw::xen::net::{MachineNet, NetPages};
use super::devices::Reconnection;
use crate::hw::xen::xenstore::{Xenstore, XsStore};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xshim_payload::abi::{Error, NetInfo};
use xshim_shim::xen::netfront::{NetError, NetFront, NetStats};
use xshim_shim::xen::xenbus::DeviceError;

/// Interfaces the shim drives (more are logged and left alone).
const MAX_NICS: usize = 4;
/// How long a backend may take to reach a state while connecting (netback waits for the
/// hotplug script to put the vif on its bridge first).
const CONNECT_TIMEOUT_NS: u64 = 20_000_000_000;

pub struct Nic {
    dev: String,
    pages: NetPages,
    front: Result<NetFront, DeviceError>,
    failure_logged: bool,
    /// The counters last logged (a change in the bad ones is logged once per poll).
    logged: NetStats,
    reconnection: Reconnection,
}

impl Nic {
    /// Connecting in the background (a new domain's backend not there yet).
    pub fn connecting(&self) -> bool {
        self.front.as_ref().is_ok_and(|f| !f.is_up() && f.failed().is_none())
    }

    fn fail_once(&mut self) {
        if self.failure_logged {
            return;
        }
        let why = match &self.front {
            Ok(f) => f.failed().map(|e| format!("{e}")),
            Err(e) => Some(format!("{e}")),
        };
        if let Some(why) = why {
            log::error!("net {}: {why}; the interface is failed, its calls get an error", self.dev);
            self.failure_logged = true;
        }
    }

    /// Logs what the backend did wrong since the last look (dropped, counted: one line).
    fn note_trouble(&mut self) {
        let Ok(f) = &self.front else { return };
        let (s, l) = (f.stats, self.logged);
        if (s.rx_bad, s.tx_bad, s.tx_errors, s.bad_index) != (l.rx_bad, l.tx_bad, l.tx_errors, l.bad_index) {
            log::warn!(
                "net {}: from the backend so far: {} bad receive response(s) dropped, {} unknown transmit id(s), {} transmit error(s), {} absurd ring index(es) ignored",
                self.dev, s.rx_bad, s.tx_bad, s.tx_errors, s.bad_index
            );
        }
        self.logged = s;
    }
}

/// At boot: every vif the toolstack gave us, connected (or failed, and said why).
pub fn connect_all(xs: &mut Xenstore) -> Vec<Nic> {
    let mut store = XsStore(xs);
    let mut nics = Vec::new();
    for (i, dev) in super::devices::to_drive(&mut store, "vif", MAX_NICS, "interfaces").into_iter().enumerate() {
        let Some(pages) = NetPages::allocate() else {
            log::error!("net {dev}: no memory for its rings and buffers; ignored");
            continue;
        };
        let front = NetFront::connect(&mut store, &mut MachineNet::new(&pages), &dev, CONNECT_TIMEOUT_NS);
        let mut nic = Nic { dev, pages, front, failure_logged: false, logged: NetStats::default(), reconnection: Reconnection::default() };
        match &nic.front {
            Ok(f) => {
                let m = f.mac;
                log::info!("net interface {i}: {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} mtu {}, backend {} in domain {}", nic.dev, m[0], m[1], m[2], m[3], m[4], m[5], f.mtu, f.backend.path, f.backend.domid)
            }
            Err(_) => nic.fail_once(),
        }
        nics.push(nic);
    }
    nics
}

/// After a suspend. New domain: every interface's connection is lost (TX in flight dropped,
/// RX queued kept); `advance` makes it again in the background while the payload runs, and
/// announces the interface once connected. Cancelled: nothing to do (a connection in
/// progress goes on). The grant table was reset by the caller, once for every device.
/// Returns whether an interface is to connect.
pub fn resume(nics: &mut [Nic], new_domain: bool) -> bool {
    if !new_domain {
        return nics.iter().any(Nic::connecting);
    }
    for n in nics.iter_mut() {
        let Nic { front: Ok(f), dev, .. } = n else { continue };
        if f.failed().is_some() {
            continue;
        }
        let dropped = f.stats.tx_dropped_at_resume;
        f.disconnect();
        let dropped = f.stats.tx_dropped_at_resume - dropped;
        if dropped > 0 {
            log::info!("net {dev}: {dropped} frame(s) in flight at the suspend dropped");
        }
        n.reconnection.start();
    }
    nics.iter().any(Nic::connecting)
}

/// Moves every interface's background connection on as far as its backend allows. Returns
/// whether one is still connecting.
pub fn advance(xs: &mut Xenstore, nics: &mut [Nic]) -> bool {
    let mut connecting = false;
    for n in nics.iter_mut() {
        if !n.connecting() {
            continue;
        }
        let Nic { pages, front: Ok(f), dev, reconnection, .. } = n else { continue };
        match f.advance(&mut XsStore(xs), &mut MachineNet::new(pages), CONNECT_TIMEOUT_NS) {
            Ok(false) => {
                connecting = true;
                reconnection.waiting(xs, dev, f.backend_found().then_some(f.backend.path.as_str()));
            }
            Ok(true) => {
                let after_ms = reconnection.end(xs, dev);
                let ms = |ns: u64| ns / 1_000_000;
                let h = f.handshake_ns;
                log::info!("net {dev}: reconnected to {} after {} ms, announced (RARP)", f.backend.path, after_ms);
                log::debug!("net {dev}: handshake: backend InitWait after {} ms, our keys and Connected after {} ms, backend Connected after {} ms", ms(h[0]), ms(h[1]), ms(h[2]));
            }
            Err(_) => {
                reconnection.end(xs, dev);
                n.fail_once();
            }
        }
    }
    connecting
}

fn by_index(nics: &mut [Nic], dev: u64) -> Result<&mut Nic, Error> {
    usize::try_from(dev).ok().and_then(|i| nics.get_mut(i)).ok_or(Error::NoDevice)
}

/// Interface `dev` if it connected and has not failed, with its pages.
fn usable(nics: &mut [Nic], dev: u64) -> Result<(&mut NetFront, &NetPages), Error> {
    let n = by_index(nics, dev)?;
    if !matches!(&n.front, Ok(f) if f.failed().is_none()) {
        n.fail_once();
        return Err(Error::NoDevice);
    }
    match &mut n.front {
        Ok(f) => Ok((f, &n.pages)),
        Err(_) => Err(Error::NoDevice),
    }
}

pub fn info(nics: &mut [Nic], dev: u64) -> Result<NetInfo, Error> {
    let (f, _) = usable(nics, dev)?;
    Ok(NetInfo { mac: f.mac, reserved0: 0, mtu: f.mtu, reserved: 0 })
}

fn call_error(e: NetError) -> Error {
    match e {
        NetError::Again => Error::Again,
        NetError::BadLength => Error::BadLength,
        NetError::Failed(_) => Error::NoDevice,
    }
}

pub fn send(nics: &mut [Nic], dev: u64, frame: &[u8]) -> Result<u64, Error> {
    let (f, pages) = usable(nics, dev)?;
    let r = f.send(&mut MachineNet::new(pages), frame).map(|()| frame.len() as u64).map_err(call_error);
    by_index(nics, dev)?.note_trouble();
    r
}

pub fn recv(nics: &mut [Nic], dev: u64, buf: &mut [u8]) -> Result<u64, Error> {
    let (f, pages) = usable(nics, dev)?;
    let r = f.recv(&mut MachineNet::new(pages), buf).map(|n| n as u64).map_err(call_error);
    by_index(nics, dev)?.note_trouble();
    r
}

/// For WAIT: (a frame is queued on some interface, some interface has a free send slot).
pub fn ready(nics: &mut [Nic]) -> (bool, bool) {
    let (mut rx, mut tx) = (false, false);
    for n in nics.iter_mut() {
        let Nic { pages, front: Ok(f), .. } = n else { continue };
        if f.failed().is_some() {
            continue;
        }
        let mut env = MachineNet::new(pages);
        rx |= f.rx_pending(&mut env) > 0;
        tx |= f.tx_free(&mut env);
        n.note_trouble();
    }
    (rx, tx)
}

/// At poweroff: tell each backend we are going (best effort, briefly), and the counters.
pub fn close_all(xs: &mut Xenstore, nics: &mut [Nic]) {
    for n in nics.iter_mut() {
        if let Ok(f) = &mut n.front {
            let s = f.stats;
            log::info!("net {}: {} frame(s) received, {} sent, {} dropped for a full queue, {} dropped at resumes, {} announce(s)", n.dev, s.rx_frames, s.tx_frames, s.rx_queue_full, s.tx_dropped_at_resume, s.announces);
            let _ = f.close(&mut XsStore(xs), 1_000_000_000);
        }
    }
}
