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
pub const GNTTABOP_COPY: u32 = 5;
pub const GNTTABOP_QUERY_SIZE: u32 = 6;

/// Entry flags (`GTF_*`): access permitted; the grantee may only read; set by Xen while the
/// grantee has the frame mapped for reading / writing.
pub const GTF_PERMIT_ACCESS: u16 = 1;
pub const GTF_READONLY: u16 = 4;
pub const GTF_READING: u16 = 8;
pub const GTF_WRITING: u16 = 16;

/// Entries 0..7 are reserved (0: the console ring, 1: the xenstore ring, for the toolstack).
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;

/// `struct gnttab_query_size`: the table's current and largest size, in frames.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GnttabQuerySize {
    pub dom: u16,
    pub pad0: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
    pub pad1: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabQuerySize>() == 16);

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

/// `struct gnttab_copy_ptr`: a grant reference or (for DOMID_SELF only) a frame, and where in
/// it the copy starts.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GnttabCopyPtr {
    /// `u.gmfn` (this is how the shim uses it: GNTCOPY_*_gref clear) or `u.ref`.
    pub gmfn: u64,
    pub domid: u16,
    pub offset: u16,
    pub pad: u32,
}
const _: () = assert!(core::mem::size_of::<GnttabCopyPtr>() == 16);

/// `struct gnttab_copy` (GNTTABOP_copy): Xen copies `len` bytes from `source` to `dest`, and
/// marks the destination frame dirty for log-dirty tracking (a live migration).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    /// OUT: GNTST_* (0: okay).
    pub status: i16,
    pub pad: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabCopy>() == 40);
