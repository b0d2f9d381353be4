//! The Xen PV console ring (io/console.h): the payload's console under Xen.
use super::hypercall::XenHypercalls;
use super::shared_info::wait_on_port;
use super::shared_ring::{SharedBytes, SharedIdx};
use crate::hw::debugcon;
use xshim_shim::layout::timeouts::{CONSOLE_FULL_POLL_NS, CONSOLE_STALL_NS, RING_POLL_NS};
use xshim_shim::xen::frames::EvtchnPort;
use xshim_shim::xen::hypercalls::Hypercalls;
use xshim_shim::xen::abi::console::{XenconsInterface, IN_SIZE, OUT_SIZE};
use xshim_shim::xen::ring;

pub struct ConsoleRing {
    page: *mut XenconsInterface,
    pub port: EvtchnPort,
    /// Bytes given up on because the backend stopped consuming.
    dropped: u64,
}

// SAFETY: the ring page is only touched under the console lock, on one vCPU.
unsafe impl Send for ConsoleRing {}

/// A write waits at most CONSOLE_STALL_NS for a backend that consumes nothing. After that the
/// rest of the write is dropped (and counted on the debug console): a dead console daemon must
/// not leave the guest deaf to the toolstack, which is what blocking here with events off
/// would do.
fn notify(port: EvtchnPort) {
    // A failed notify only delays the backend; the next write or flush notifies again.
    let _ = XenHypercalls.evtchn_send(port);
}

impl ConsoleRing {
    /// # Safety
    /// `page` must be the identity-mapped console ring page the toolstack set up.
    pub unsafe fn new(page: u64, port: EvtchnPort) -> ConsoleRing {
        ConsoleRing { page: page as *mut XenconsInterface, port, dropped: 0 }
    }

    fn out(&self) -> (SharedBytes, SharedIdx, SharedIdx) {
        let p = self.page;
        // SAFETY: field projections of the mapped ring page (raw, no references taken).
        unsafe {
            (
                SharedBytes { base: (&raw mut (*p).out) as *mut u8, size: OUT_SIZE as u32 },
                SharedIdx(&raw mut (*p).out_prod),
                SharedIdx(&raw mut (*p).out_cons),
            )
        }
    }

    fn inp(&self) -> (SharedBytes, SharedIdx, SharedIdx) {
        let p = self.page;
        // SAFETY: as out().
        unsafe {
            (
                SharedBytes { base: (&raw mut (*p).in_) as *mut u8, size: IN_SIZE as u32 },
                SharedIdx(&raw mut (*p).in_prod),
                SharedIdx(&raw mut (*p).in_cons),
            )
        }
    }

    /// Writes all of `bytes`, waiting (blocked, not spinning) while the ring is full, for at
    /// most CONSOLE_STALL_NS without progress.
    pub fn write_all(&mut self, mut bytes: &[u8]) {
        let mut waited = 0u64;
        while !bytes.is_empty() {
            let (mut data, prod, cons) = self.out();
            match ring::produce(&mut data, prod.get(), cons.get(), bytes) {
                Ok((n, new_prod)) => {
                    if n > 0 {
                        prod.set(new_prod);
                        notify(self.port);
                        bytes = &bytes[n..];
                        waited = 0;
                        continue;
                    }
                }
                Err(e) => {
                    // A backend that wrote nonsense indices: resynchronise rather than overrun.
                    debugcon::write_line(format_args!("xshim: console ring: {e}; resetting out_cons"));
                    cons.set(prod.get());
                    continue;
                }
            }
            if waited >= CONSOLE_STALL_NS {
                self.dropped += bytes.len() as u64;
                debugcon::write_line(format_args!("xshim: console ring full for {} s: backend not consuming; {} bytes dropped so far", waited / 1_000_000_000, self.dropped));
                return;
            }
            wait_on_port(self.port, CONSOLE_FULL_POLL_NS);
            waited += CONSOLE_FULL_POLL_NS;
        }
    }

    /// Non-blocking read of console input.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let (data, prod, cons) = self.inp();
        match ring::consume(&data, prod.get(), cons.get(), out) {
            Ok((n, new_cons)) => {
                if n > 0 {
                    cons.set(new_cons);
                    notify(self.port);
                }
                n
            }
            Err(e) => {
                debugcon::write_line(format_args!("xshim: console input ring: {e}; discarding input"));
                cons.set(prod.get());
                0
            }
        }
    }

    pub fn input_pending(&self) -> bool {
        let (_, prod, cons) = self.inp();
        prod.get() != cons.get()
    }

    /// Takes the bytes the backend has not read back out of the ring (see
    /// `ring::take_back_unread`).
    pub fn take_back_unread(&mut self) -> alloc::vec::Vec<u8> {
        let (data, prod, cons) = self.out();
        let (taken, new_prod) = ring::take_back_unread(&data, prod.get(), cons.get());
        prod.set(new_prod);
        taken
    }

    /// Waits until the backend has consumed every byte written, up to `timeout_ns`.
    /// Returns the bytes still unconsumed.
    pub fn flush(&mut self, timeout_ns: u64) -> u32 {
        let start = super::time::xen_system_time();
        loop {
            let (_, prod, cons) = self.out();
            let left = prod.get().wrapping_sub(cons.get());
            if left == 0 || super::time::xen_system_time().saturating_sub(start) >= timeout_ns {
                return left;
            }
            notify(self.port);
            wait_on_port(self.port, RING_POLL_NS);
        }
    }
}

