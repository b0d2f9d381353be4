//! xen/include/public/grant_table.h, version 1 entries.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GrantEntryV1 {
    pub flags: u16,
    pub domid: u16,
    pub frame: u32,
}
const _: () = assert!(core::mem::size_of::<GrantEntryV1>() == 8);

pub const GNTTABOP_SETUP_TABLE: u32 = 2;

/// `struct gnttab_setup_table`: PV guests learn their grant frames' mfns from it.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GnttabSetupTable {
    pub dom: u16,
    pub pad0: u16,
    pub nr_frames: u32,
    /// GNTST_* result (0: okay).
    pub status: i16,
    pub pad1: [u8; 6],
    /// Guest handle: where Xen writes `nr_frames` frame numbers.
    pub frame_list: u64,
}
const _: () = assert!(core::mem::size_of::<GnttabSetupTable>() == 24);
