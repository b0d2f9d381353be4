//! xen/include/public/hvm/hvm_op.h and hvm/params.h: the HVM parameters a PVH guest reads
//! (console, xenstore) and sets (callback vector).
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const HVMOP_SET_PARAM: u32 = 0;
pub const HVMOP_GET_PARAM: u32 = 1;

pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
pub const HVM_PARAM_STORE_PFN: u32 = 1;
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// HVM_PARAM_CALLBACK_IRQ value for "deliver upcalls on this vector" (type 2 in bits 63:56).
pub const fn callback_via_vector(vector: u8) -> u64 {
    (2u64 << 56) | vector as u64
}

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenHvmParam {
    pub domid: u16,
    pub pad: u16,
    pub index: u32,
    pub value: u64,
}
const _: () = assert!(core::mem::size_of::<XenHvmParam>() == 16);
