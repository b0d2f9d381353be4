//! xen/include/public/io/console.h: the PV console ring page.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const IN_SIZE: usize = 1024;
pub const OUT_SIZE: usize = 2048;

#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct XenconsInterface {
    pub in_: [u8; IN_SIZE],
    pub out: [u8; OUT_SIZE],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}
const _: () = assert!(core::mem::offset_of!(XenconsInterface, in_cons) == 3072);
const _: () = assert!(core::mem::size_of::<XenconsInterface>() == 3088);
