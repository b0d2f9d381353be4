//! Frame numbers and handles as types, so that an mfn/pfn mix-up (the very bug the seed's
//! canonicalisation is about) does not compile. Fields are private; every conversion is a
//! named function. Under the shim's own maps a pseudo-physical address equals its virtual
//! address (PV: vaddr = pfn * 4096; PVH: identity-mapped), which `Pfn::addr` states once.
use crate::layout::{PAGE_SHIFT, PAGE_SIZE};

/// A machine frame number (PV: what page-table entries, grant frames and start_info name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mfn(u64);

/// A pseudo-physical frame number of a PV guest (an index into its p2m).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(u64);

/// A guest frame number of an auto-translated (PVH) guest: its physical address >> 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gfn(u64);

/// An event channel port of this domain (they all change in a new domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvtchnPort(u32);

/// A grant reference in this domain's grant table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantRef(u32);

impl Mfn {
    pub const fn new(raw: u64) -> Mfn {
        Mfn(raw)
    }
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// The frame of a machine address (start_info's `shared_info` is one).
    pub const fn of_maddr(maddr: u64) -> Mfn {
        Mfn((maddr & crate::layout::PTE_ADDR_MASK) >> PAGE_SHIFT)
    }
    pub const fn maddr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

impl Pfn {
    pub const fn new(raw: u64) -> Pfn {
        Pfn(raw)
    }
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// The frame holding the shim's (1:1 mapped) virtual address `va`.
    pub const fn containing(va: u64) -> Pfn {
        Pfn(va >> PAGE_SHIFT)
    }
    /// Where the shim maps this frame: its pseudo-physical address.
    pub const fn addr(self) -> u64 {
        self.0 * PAGE_SIZE
    }
}

impl Gfn {
    pub const fn new(raw: u64) -> Gfn {
        Gfn(raw)
    }
    pub const fn raw(self) -> u64 {
        self.0
    }
    pub const fn containing(paddr: u64) -> Gfn {
        Gfn(paddr >> PAGE_SHIFT)
    }
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

impl EvtchnPort {
    pub const fn new(raw: u32) -> EvtchnPort {
        EvtchnPort(raw)
    }
    pub const fn raw(self) -> u32 {
        self.0
    }
}

impl GrantRef {
    pub const fn new(raw: u32) -> GrantRef {
        GrantRef(raw)
    }
    pub const fn raw(self) -> u32 {
        self.0
    }
}

impl core::fmt::Display for Mfn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "mfn {:#x}", self.0)
    }
}
impl core::fmt::Display for Pfn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}
impl core::fmt::Display for Gfn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "gfn {:#x}", self.0)
    }
}
impl core::fmt::Display for EvtchnPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "port {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_named_and_exact() {
        assert_eq!(Mfn::of_maddr(0x8000_0000_1234_5678).raw(), 0x12345, "flag bits and offset dropped");
        assert_eq!(Mfn::new(0x12345).maddr(), 0x1234_5000);
        assert_eq!(Pfn::containing(0x80_0fff), Pfn::new(0x800));
        assert_eq!(Pfn::new(0x800).addr(), 0x80_0000);
        assert_eq!(Gfn::containing(0xfeff_f000).addr(), 0xfeff_f000);
        println!("checked: maddr/mfn, va/pfn and paddr/gfn conversions");
    }
}
