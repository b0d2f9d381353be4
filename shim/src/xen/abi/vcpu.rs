//! xen/include/public/vcpu.h: bringing vCPUs up, vcpu_info, the one-shot timer.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Sets a vCPU's initial state (PVH: a `vcpu_hvm_context`; PV: a `vcpu_guest_context`);
/// once per vCPU while it is down.
pub const VCPUOP_INITIALISE: u32 = 0;
/// Makes an initialised vCPU runnable.
pub const VCPUOP_UP: u32 = 1;
/// Stops a vCPU (itself, for the shim).
pub const VCPUOP_DOWN: u32 = 2;
/// 1 if the vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;

pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// May be called once per vCPU (again only in a new domain after restore/migration).
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuRegisterVcpuInfo {
    /// Frame holding the vcpu_info (a gfn for PVH).
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}
const _: () = assert!(core::mem::size_of::<VcpuRegisterVcpuInfo>() == 16);

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute Xen system time in ns.
    pub timeout_abs_ns: u64,
    pub flags: u32,
    pub pad: u32,
}
const _: () = assert!(core::mem::size_of::<VcpuSetSingleshotTimer>() == 16);
