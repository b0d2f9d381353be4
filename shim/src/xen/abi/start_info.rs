//! xen/include/public/arch-x86/hvm/start_info.h: what the PVH entry receives in %ebx.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct HvmStartInfo {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    /// Version 1 and later.
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<HvmStartInfo>() == 56);

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct HvmModlistEntry {
    pub paddr: u64,
    pub size: u64,
    pub cmdline_paddr: u64,
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<HvmModlistEntry>() == 32);

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct HvmMemmapTableEntry {
    pub addr: u64,
    pub size: u64,
    pub type_: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<HvmMemmapTableEntry>() == 24);

/// XEN_HVM_MEMMAP_TYPE_RAM (same numbering as e820).
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
