//! A split device's machine pieces that the disks and network interfaces share: its shared
//! ring page (io/ring.h: the 64-byte header, then the entries; the machine side of
//! `xshim_shim::xen::front_ring::SharedRing` for blkif and netif rings; the backend writes its
//! indices and responses behind our back, so every access is volatile, through raw pointers),
//! and its event channel.
use core::marker::PhantomData;
use core::sync::atomic::{fence, Ordering};
use xshim_shim::xen::abi::blkif::SringHeader;
use super::hypercall::XenHypercalls;
use xshim_shim::xen::frames::EvtchnPort;
use xshim_shim::xen::front_ring::SharedRing;
use xshim_shim::xen::hypercalls::Hypercalls;
use xshim_shim::xen::xenbus::DeviceError;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes};

const PAGE_BYTES: usize = 4096;

/// A ring of `Q` requests and `S` responses whose entries (their union) are `ENTRY` bytes.
pub struct RingPage<Q, S, const ENTRY: usize> {
    base: *mut u8,
    _entries: PhantomData<(Q, S)>,
}

impl<Q, S, const ENTRY: usize> RingPage<Q, S, ENTRY> {
    /// # Safety
    /// `base` is a page-aligned page of the shim's, mapped for as long as the value lives,
    /// shared with the backend only.
    pub unsafe fn new(base: *mut u8) -> Self {
        const { assert!(core::mem::size_of::<Q>() <= ENTRY && core::mem::size_of::<S>() <= ENTRY) };
        RingPage { base, _entries: PhantomData }
    }
    fn idx(&self, offset: usize) -> *mut u32 {
        // SAFETY: offsets 0..16 are the header's four u32 indices in the ring page.
        unsafe { self.base.add(offset) as *mut u32 }
    }
    fn slot(&self, slot: u32) -> *mut u8 {
        let at = core::mem::size_of::<SringHeader>() + slot as usize * ENTRY;
        assert!(at + ENTRY <= PAGE_BYTES, "ring slot {slot} past the page");
        // SAFETY: inside the page (checked above).
        unsafe { self.base.add(at) }
    }
}

impl<Q: IntoBytes + Immutable, S: FromBytes + IntoBytes, const ENTRY: usize> SharedRing for RingPage<Q, S, ENTRY> {
    type Request = Q;
    type Response = S;
    fn init(&mut self) {
        let header = SringHeader { req_prod: 0, req_event: 1, rsp_prod: 0, rsp_event: 1, ..SringHeader::new_zeroed() };
        // SAFETY: the whole ring page is ours until it is granted (init runs before).
        unsafe {
            core::ptr::write_bytes(self.base, 0, PAGE_BYTES);
            core::ptr::copy_nonoverlapping(header.as_bytes().as_ptr(), self.base, header.as_bytes().len());
        }
    }
    fn req_prod(&self) -> u32 {
        // SAFETY: see `idx`.
        unsafe { core::ptr::read_volatile(self.idx(0)) }
    }
    fn set_req_prod(&mut self, v: u32) {
        // SAFETY: see `idx`.
        unsafe { core::ptr::write_volatile(self.idx(0), v) }
    }
    fn req_event(&self) -> u32 {
        // SAFETY: see `idx`.
        unsafe { core::ptr::read_volatile(self.idx(4)) }
    }
    fn rsp_prod(&self) -> u32 {
        // SAFETY: see `idx`.
        unsafe { core::ptr::read_volatile(self.idx(8)) }
    }
    fn set_rsp_event(&mut self, v: u32) {
        // SAFETY: see `idx`.
        unsafe { core::ptr::write_volatile(self.idx(12), v) }
    }
    fn write_request(&mut self, slot: u32, req: &Q) {
        let at = self.slot(slot);
        for (i, b) in req.as_bytes().iter().enumerate() {
            // SAFETY: inside the slot (`new` checked the entry size); volatile, the backend
            // may be reading other slots.
            unsafe { core::ptr::write_volatile(at.add(i), *b) }
        }
    }
    fn read_response(&self, slot: u32) -> S {
        let at = self.slot(slot);
        let mut rsp = S::new_zeroed();
        for (i, b) in rsp.as_mut_bytes().iter_mut().enumerate() {
            // SAFETY: as write_request; a copy, read once.
            *b = unsafe { core::ptr::read_volatile(at.add(i)) };
        }
        rsp
    }
    fn full_barrier(&self) {
        fence(Ordering::SeqCst);
    }
}

/// An unbound event channel port of ours for the backend in `domid` to bind, unmasked.
pub fn alloc_port(domid: u16) -> Result<u32, DeviceError> {
    let port = XenHypercalls.evtchn_alloc_unbound(domid).map_err(|e| DeviceError::Resources(alloc::format!("an event channel (EVTCHNOP_alloc_unbound: {e})")))?;
    let _ = XenHypercalls.evtchn_unmask(port);
    Ok(port.raw())
}

/// Tells the backend on `port` that the ring moved. A lost notification shows up as work that
/// does not move (a disk call's timeout says so; the network notifies again at its next send
/// or buffer post).
pub fn notify(port: u32) {
    let _ = XenHypercalls.evtchn_send(EvtchnPort::new(port));
}
