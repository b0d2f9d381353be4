//! xen/include/public/memory.h: XENMEM_add_to_physmap (how a PVH guest places shared_info
//! and grant frames into its own physical address space).
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
pub const DOMID_SELF: u16 = 0x7ff0;

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenAddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}
const _: () = assert!(core::mem::size_of::<XenAddToPhysmap>() == 24);
