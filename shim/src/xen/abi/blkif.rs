//! xen/include/public/io/blkif.h: the virtual block device's ring entries (one-page ring, no
//! indirect descriptors, no persistent grants), and io/ring.h's shared ring header.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const BLKIF_OP_READ: u8 = 0;
pub const BLKIF_OP_WRITE: u8 = 1;
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;

pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
pub const BLKIF_RSP_ERROR: i16 = -1;
pub const BLKIF_RSP_OKAY: i16 = 0;

/// Segments (granted frames) in one request: 11 × 4 KiB = 44 KiB.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;

/// Bits of the backend's `info` key.
pub const VDISK_CDROM: u32 = 0x1;
pub const VDISK_REMOVABLE: u32 = 0x2;
pub const VDISK_READONLY: u32 = 0x4;

/// `struct blkif_request_segment`: one granted frame; sectors are 512-byte units inside it,
/// both ends inclusive.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlkifRequestSegment {
    pub gref: u32,
    pub first_sect: u8,
    pub last_sect: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<BlkifRequestSegment>() == 8);

/// `struct blkif_request`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlkifRequest {
    pub operation: u8,
    pub nr_segments: u8,
    /// The device id (the last element of the device's xenstore path).
    pub handle: u16,
    pub _pad: [u8; 4],
    /// Echoed in the response.
    pub id: u64,
    /// In 512-byte units, whatever the sector size.
    pub sector_number: u64,
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}
const _: () = assert!(core::mem::size_of::<BlkifRequest>() == 112);

/// `struct blkif_response`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlkifResponse {
    pub id: u64,
    pub operation: u8,
    pub _pad0: u8,
    pub status: i16,
    pub _pad1: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<BlkifResponse>() == 16);

/// io/ring.h's shared ring header (`struct blkif_sring` up to `ring`): free-running u32
/// indices; the entries follow at byte 64.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SringHeader {
    pub req_prod: u32,
    pub req_event: u32,
    pub rsp_prod: u32,
    pub rsp_event: u32,
    pub pvt: [u8; 4],
    pub _pad: [u8; 44],
}
const _: () = assert!(core::mem::size_of::<SringHeader>() == 64);

/// A ring entry is the union of request and response.
pub const BLKIF_ENTRY_BYTES: usize = 112;

/// `__CONST_RING_SIZE`: the entries that fit in the page after the header, rounded down to a
/// power of two.
pub const fn ring_size(page_bytes: usize, entry_bytes: usize) -> u32 {
    let n = (page_bytes - core::mem::size_of::<SringHeader>()) / entry_bytes;
    if n == 0 { 0 } else { 1 << (usize::BITS - 1 - n.leading_zeros()) }
}

/// 32 slots in one 4 KiB page.
pub const BLKIF_RING_SIZE: u32 = ring_size(4096, BLKIF_ENTRY_BYTES);
const _: () = assert!(BLKIF_RING_SIZE == 32);
