//! Volatile access to a ring living in a page shared with a backend (console, xenstore).
use core::sync::atomic::{fence, Ordering};
use xshim_shim::xen::ring::RingBuf;

/// A ring's data area inside a shared page.
pub struct SharedBytes {
    pub base: *mut u8,
    pub size: u32,
}

impl RingBuf for SharedBytes {
    fn size(&self) -> u32 {
        self.size
    }
    fn read_byte(&self, offset: u32) -> u8 {
        // SAFETY: offset < size (ring.rs masks it) and base..base+size is inside the shared
        // page, which stays mapped; volatile because the backend writes it.
        unsafe { core::ptr::read_volatile(self.base.add(offset as usize)) }
    }
    fn write_byte(&mut self, offset: u32, byte: u8) {
        // SAFETY: as read_byte.
        unsafe { core::ptr::write_volatile(self.base.add(offset as usize), byte) }
    }
}

/// A ring index in the shared page.
pub struct SharedIdx(pub *mut u32);

impl SharedIdx {
    pub fn get(&self) -> u32 {
        // SAFETY: the index is a u32 field of the mapped shared page.
        let v = unsafe { core::ptr::read_volatile(self.0) };
        fence(Ordering::Acquire);
        v
    }
    pub fn set(&self, v: u32) {
        // Data before index: the backend must see the bytes before it sees them counted.
        fence(Ordering::Release);
        // SAFETY: as get.
        unsafe { core::ptr::write_volatile(self.0, v) }
    }
}
