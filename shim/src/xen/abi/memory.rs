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

/// XENMEM_* sub-ops for returning memory to Xen and taking it back.
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// The largest extent order an unprivileged domain may ask for (Xen's default
/// CONFIG_DOMU_MAX_ORDER, PAGETABLE_ORDER on x86: 2 MiB).
pub const DOMU_MAX_EXTENT_ORDER: u32 = 9;

/// `struct xen_memory_reservation`: a list of extents (frame numbers of 2^extent_order
/// pages each) to free or populate. The return value is the number of extents done: a short
/// count is the failure signal.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenMemoryReservation {
    /// Guest handle of the frame list (IN; populate_physmap writes frames back for PV).
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: u16,
    pub _pad: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<XenMemoryReservation>() == 32);

/// `struct xen_memory_domain` (XENMEM_current_reservation, XENMEM_maximum_reservation).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenMemoryDomain {
    pub domid: u16,
}
const _: () = assert!(core::mem::size_of::<XenMemoryDomain>() == 2);
