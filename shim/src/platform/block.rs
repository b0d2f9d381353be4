//! The guest's disks: the Xen virtual block devices found at boot (`device/vbd/*`, in
//! numeric order: the payload's disk 0, 1, ...), each driven by the host-tested blkfront over
//! `hw::xen::block`. Drained before a suspend; in a new domain reconnected in the background
//! while the payload runs again (their requests without a response sent again once
//! connected; calls wait meanwhile); the payload's BLOCK_* calls step them. Policy
//! lives here: what is logged, and that a device which fails stays failed (its calls get an
//! error) while the shim and the payload carry on.
use crate::hw::xen::block::{BlockPages, MachineBlk};
use crate::hw::xen::shared_info::wait_on_port;
use crate::hw::xen::xenstore::{Xenstore, XsStore};
use crate::hw::xen::time;
use super::devices::Reconnection;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use xshim_payload::abi::{BlockFlags, BlockInfo, Error, MAX_IO_LEN};
use xshim_shim::xen::blkfront::{BlkError, BlkFront, Flush, Progress, Transfer, PAGE_BYTES};
use xshim_shim::xen::frames::EvtchnPort;
use xshim_shim::xen::xenbus::DeviceError;

/// Bounce pages per disk from the shim's heap, at connect time: two requests of 44 KiB in
/// flight at once.
const BOUNCE_PAGES: u16 = 32;
/// Bounce pages per disk added from RAM once the payload is placed: with them a ring's 32
/// requests of 11 pages can all be in flight, a whole 1 MiB call (24 requests) among them.
/// With the heap's pages alone, one 1 MiB call took 12 round trips to the backend, and
/// `bench disk` measured 0.40 (PV) and 0.59 (PVH) of Linux's 1 MiB write throughput.
const RAM_BOUNCE_PAGES: u16 = 32 * 11 - BOUNCE_PAGES;
/// Disks the shim drives (more are logged and left alone).
const MAX_DISKS: usize = 4;
/// How long a backend may take to reach a state while connecting.
const CONNECT_TIMEOUT_NS: u64 = 10_000_000_000;
/// How long a suspend waits for requests in flight to finish (libxl allows the guest 60 s
/// to suspend in all; what is left is sent again after the resume).
const DRAIN_TIMEOUT_NS: u64 = 1_000_000_000;

/// `xshim.blkdrain=0`: skip the drain, responses that already came included, so that
/// requests are in flight at the suspend and are sent again after it (for testing the replay:
/// the loop device behind blkback answers within milliseconds, before any drain would wait).
static DRAIN: AtomicBool = AtomicBool::new(true);

pub fn set_options(opts: &[&str]) {
    if opts.contains(&"xshim.blkdrain=0") {
        DRAIN.store(false, Ordering::Relaxed);
        log::warn!("xshim.blkdrain=0: block requests in flight at a suspend are not waited for (they are sent again after it)");
    }
}

pub struct Disk {
    dev: String,
    pages: BlockPages,
    front: Result<BlkFront, DeviceError>,
    /// Why it failed, once logged.
    failure_logged: bool,
    reconnection: Reconnection,
}

impl Disk {
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
            log::error!("block {}: {why}; the device is failed, its calls get an error", self.dev);
            self.failure_logged = true;
        }
    }
}

/// At boot: every disk the toolstack gave us, connected (or failed, and said why).
pub fn connect_all(xs: &mut Xenstore) -> Vec<Disk> {
    let mut store = XsStore(xs);
    let mut disks = Vec::new();
    for (i, dev) in super::devices::to_drive(&mut store, "vbd", MAX_DISKS, "disks").into_iter().enumerate() {
        let Some(pages) = BlockPages::allocate(BOUNCE_PAGES) else {
            log::error!("block {dev}: no memory for its ring and bounce pages; ignored");
            continue;
        };
        let front = BlkFront::connect(&mut store, &mut MachineBlk::new(&pages), &dev, pages.pool(), CONNECT_TIMEOUT_NS);
        let mut disk = Disk { dev, pages, front, failure_logged: false, reconnection: Reconnection::default() };
        match &disk.front {
            Ok(f) => log::info!("block disk {i}: {} ({} MiB, {}-byte sectors{}, flush: {:?}, {} grants), backend {} in domain {}", disk.dev, f.geometry.capacity_bytes() >> 20, f.geometry.sector_size, if f.geometry.read_only { ", read-only" } else { "" }, f.geometry.flush, if f.persistent() { "persistent" } else { "per-request" }, f.backend.path, f.backend.domid),
            Err(_) => disk.fail_once(),
        }
        disks.push(disk);
    }
    disks
}

/// Bytes of RAM the connected disks would take as more bounce pages (`add_ram_pages`).
pub fn ram_wanted(disks: &[Disk]) -> u64 {
    disks.iter().filter(|d| d.front.is_ok()).count() as u64 * RAM_BOUNCE_PAGES as u64 * PAGE_BYTES as u64
}

/// Hands the connected disks their share of `base..` (`ram_wanted` bytes, page-aligned,
/// mapped, the shim's for the guest's life).
pub fn add_ram_pages(disks: &mut [Disk], base: u64) {
    let mut at = base;
    for d in disks.iter_mut() {
        let Disk { pages, front: Ok(f), dev, .. } = d else { continue };
        let numbers = pages.add(at, RAM_BOUNCE_PAGES);
        match f.add_pool_pages(&mut MachineBlk::new(pages), numbers) {
            Ok(()) => log::debug!("block {dev}: {} more bounce pages at {at:#x}", RAM_BOUNCE_PAGES),
            Err(e) => log::warn!("block {dev}: {} more bounce pages not granted ({e}): it goes on with {}", RAM_BOUNCE_PAGES, BOUNCE_PAGES),
        }
        at += RAM_BOUNCE_PAGES as u64 * PAGE_BYTES as u64;
    }
}

/// Before a suspend: wait (bounded) for the requests in flight.
pub fn suspend(disks: &mut [Disk]) {
    for d in disks.iter_mut() {
        let Disk { pages, front: Ok(f), dev, .. } = d else { continue };
        if !f.is_up() {
            // Still connecting (a suspend soon after the last): nothing is on a ring; its
            // connection starts again in the next domain, or goes on after a checkpoint.
            log::info!("block {dev}: suspended while connecting; {} request(s) wait to be sent", f.in_flight());
            continue;
        }
        let mut env = MachineBlk::new(pages);
        let t0 = time::xen_system_time();
        let drain = DRAIN.load(Ordering::Relaxed);
        let mut left = if drain { f.drain(&mut env) } else { f.in_flight() };
        while left > 0 && drain && time::xen_system_time().saturating_sub(t0) < DRAIN_TIMEOUT_NS {
            wait_on_port(EvtchnPort::new(f.port), 10_000_000);
            left = f.drain(&mut env);
        }
        if left > 0 {
            log::info!("block {dev}: {left} request(s) in flight at the suspend: sent again after it if the domain is new");
        }
    }
}

/// After a suspend. New domain: the old grants are void (the caller reset the grant table,
/// once for every device) and every disk's connection is lost; `advance` makes it again in
/// the background while the payload runs (the resume waits neither for blkback nor for
/// xenstore: under a busy dom0 their round trips were most of a resume). Cancelled: nothing
/// to do (a connection in progress goes on). Returns whether a disk is to connect.
pub fn resume(disks: &mut [Disk], new_domain: bool) -> bool {
    if !new_domain {
        return disks.iter().any(Disk::connecting);
    }
    for d in disks.iter_mut() {
        let Disk { front: Ok(f), .. } = d else { continue };
        if f.failed().is_none() {
            f.disconnect();
            d.reconnection.start();
        }
    }
    disks.iter().any(Disk::connecting)
}

/// Moves every disk's background connection on as far as its backend allows. Returns
/// whether one is still connecting.
pub fn advance(xs: &mut Xenstore, disks: &mut [Disk]) -> bool {
    let mut connecting = false;
    for d in disks.iter_mut() {
        if !d.connecting() {
            continue;
        }
        let Disk { pages, front: Ok(f), dev, reconnection, .. } = d else { continue };
        match f.advance(&mut XsStore(xs), &mut MachineBlk::new(pages), CONNECT_TIMEOUT_NS) {
            Ok(None) => {
                connecting = true;
                reconnection.waiting(xs, dev, f.backend_found().then_some(f.backend.path.as_str()));
            }
            Ok(Some(n)) => {
                let ms = reconnection.end(xs, dev);
                log::info!("block {dev}: reconnected to {} ({} MiB) after {ms} ms, {n} request(s) sent again", f.backend.path, f.geometry.capacity_bytes() >> 20);
            }
            Err(_) => {
                reconnection.end(xs, dev);
                d.fail_once();
            }
        }
    }
    connecting
}

fn by_index(disks: &mut [Disk], dev: u64) -> Result<&mut Disk, Error> {
    usize::try_from(dev).ok().and_then(|i| disks.get_mut(i)).ok_or(Error::NoDevice)
}

/// Disk `dev` if it is connected and has not failed (a failed one is logged once), and its name.
fn usable(disks: &mut [Disk], dev: u64) -> Result<(&BlkFront, &str), Error> {
    let d = by_index(disks, dev)?;
    if !matches!(&d.front, Ok(f) if f.failed().is_none()) {
        d.fail_once();
        return Err(Error::NoDevice);
    }
    d.front.as_ref().map(|f| (f, d.dev.as_str())).map_err(|_| Error::NoDevice)
}

pub fn info(disks: &mut [Disk], dev: u64) -> Result<BlockInfo, Error> {
    let g = usable(disks, dev)?.0.geometry;
    let mut flags = BlockFlags::empty();
    flags.set(BlockFlags::READ_ONLY, g.read_only);
    flags.set(BlockFlags::FLUSH, g.flush != Flush::WriteThrough);
    Ok(BlockInfo { capacity_bytes: g.capacity_bytes(), block_size: g.sector_size, flags: flags.bits(), max_io: MAX_IO_LEN as u32, reserved: 0 })
}

fn call_error(dev: &str, e: BlkError) -> Error {
    match e {
        BlkError::BadArgument(_) | BlkError::ReadOnly => Error::BadArgument,
        BlkError::Io(why) => {
            log::warn!("block {dev}: {why}");
            Error::Io
        }
    }
}

/// Starts a payload's call: `op` is a blkif operation (read, write, flush).
pub fn start(disks: &mut [Disk], dev: u64, op: u8, offset: u64, len: usize) -> Result<Transfer, Error> {
    let (f, name) = usable(disks, dev)?;
    f.start(op, offset, len).map_err(|e| call_error(name, e))
}

/// Moves a call on (see `BlkFront::step`); `Ok(None)`: wait for the disk's port (or, while it
/// connects in the background, for `advance`).
pub fn step(disks: &mut [Disk], dev: u64, t: &mut Transfer, buf: &mut [u8]) -> Result<Option<u64>, Error> {
    let d = by_index(disks, dev)?;
    let Disk { pages, front: Ok(f), dev: name, .. } = d else { return Err(Error::NoDevice) };
    match f.step(&mut MachineBlk::new(pages), t, buf) {
        Progress::Waiting => Ok(None),
        Progress::Done(Ok(n)) => Ok(Some(n as u64)),
        Progress::Done(Err(e)) => {
            let err = call_error(name, e);
            d.fail_once();
            Err(err)
        }
    }
}

/// A call that got no response in time: the device is failed.
pub fn give_up(disks: &mut [Disk], dev: u64, waited_ns: u64) {
    if let Ok(d) = by_index(disks, dev) {
        if let Ok(f) = &mut d.front {
            f.mark_failed(DeviceError::Protocol(format!("no response from the backend within {} s", waited_ns / 1_000_000_000)));
        }
        d.fail_once();
    }
}

/// At poweroff: tell each backend we are going (best effort, briefly).
pub fn close_all(xs: &mut Xenstore, disks: &mut [Disk]) {
    for d in disks.iter_mut() {
        if let Ok(f) = &mut d.front {
            let _ = f.close(&mut XsStore(xs), 1_000_000_000);
        }
    }
}
