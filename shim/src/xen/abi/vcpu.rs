//! xen/include/public/vcpu.h: the one-shot timer.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute Xen system time in ns.
    pub timeout_abs_ns: u64,
    pub flags: u32,
    pub pad: u32,
}
const _: () = assert!(core::mem::size_of::<VcpuSetSingleshotTimer>() == 16);
