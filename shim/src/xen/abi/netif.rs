//! xen/include/public/io/netif.h: the virtual network interface's ring entries (one TX and
//! one RX ring of one page each, rx-copy, no scatter-gather, no GSO, no checksum offload).
//! The shared ring header is io/ring.h's (`blkif::SringHeader`).
use super::blkif::ring_size;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `netif_tx_request.flags`.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `netif_rx_response.flags`.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

pub const NETIF_RSP_DROPPED: i16 = -2;
pub const NETIF_RSP_ERROR: i16 = -1;
pub const NETIF_RSP_OKAY: i16 = 0;
/// No response: the slot held an extra-info segment.
pub const NETIF_RSP_NULL: i16 = 1;

/// `struct netif_tx_request`: one frame (without `feature-sg`, one slot), `size` bytes at
/// `offset` of the granted page.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifTxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}
const _: () = assert!(core::mem::size_of::<NetifTxRequest>() == 12);

/// `struct netif_tx_response`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifTxResponse {
    pub id: u16,
    pub status: i16,
}
const _: () = assert!(core::mem::size_of::<NetifTxResponse>() == 4);

/// `struct netif_rx_request`: an empty page, granted read-write, for the backend to copy a
/// frame into.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifRxRequest {
    pub id: u16,
    pub _pad: u16,
    pub gref: u32,
}
const _: () = assert!(core::mem::size_of::<NetifRxRequest>() == 8);

/// `struct netif_rx_response`: `status` > 0 is the frame's length, at `offset` of the page.
/// It appears in the slot of its request (netif.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NetifRxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    pub status: i16,
}
const _: () = assert!(core::mem::size_of::<NetifRxResponse>() == 8);

/// Ring entries are the union of request and response.
pub const NETIF_TX_ENTRY_BYTES: usize = 12;
pub const NETIF_RX_ENTRY_BYTES: usize = 8;
/// 256 slots each in one 4 KiB page.
pub const NET_TX_RING_SIZE: u32 = ring_size(4096, NETIF_TX_ENTRY_BYTES);
pub const NET_RX_RING_SIZE: u32 = ring_size(4096, NETIF_RX_ENTRY_BYTES);
const _: () = assert!(NET_TX_RING_SIZE == 256 && NET_RX_RING_SIZE == 256);

/// The MTU when the backend writes none (netif.h), and the largest a frame may have in one
/// slot without `feature-sg`.
pub const ETH_DATA_LEN: u32 = 1500;
pub const ETH_HLEN: usize = 14;
