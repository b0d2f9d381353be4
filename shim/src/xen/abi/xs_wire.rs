//! xen/include/public/io/xs_wire.h: the xenstore ring page and message header.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const XENSTORE_RING_SIZE: usize = 1024;
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;

#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsType {
    Directory = 1,
    Read = 2,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Write = 11,
    Rm = 13,
    WatchEvent = 15,
    Error = 16,
}

impl XsType {
    pub fn from_u32(v: u32) -> Option<XsType> {
        Some(match v {
            1 => XsType::Directory,
            2 => XsType::Read,
            4 => XsType::Watch,
            5 => XsType::Unwatch,
            6 => XsType::TransactionStart,
            7 => XsType::TransactionEnd,
            11 => XsType::Write,
            13 => XsType::Rm,
            15 => XsType::WatchEvent,
            16 => XsType::Error,
            _ => return None,
        })
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XsdSockmsg {
    pub type_: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}
const _: () = assert!(core::mem::size_of::<XsdSockmsg>() == 16);

#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenstoreDomainInterface {
    pub req: [u8; XENSTORE_RING_SIZE],
    pub rsp: [u8; XENSTORE_RING_SIZE],
    pub req_cons: u32,
    pub req_prod: u32,
    pub rsp_cons: u32,
    pub rsp_prod: u32,
    pub server_features: u32,
    pub connection: u32,
    pub error: u32,
}
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, req_cons) == 2048);
