//! xen/include/public/sched.h.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const SCHEDOP_BLOCK: u32 = 1;
pub const SCHEDOP_SHUTDOWN: u32 = 2;
pub const SCHEDOP_POLL: u32 = 3;

#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    Poweroff = 0,
    Reboot = 1,
    /// Returns 0 in a new domain (restored/migrated), 1 if cancelled or checkpointed.
    Suspend = 2,
    Crash = 3,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SchedShutdown {
    pub reason: u32,
}
const _: () = assert!(core::mem::size_of::<SchedShutdown>() == 4);

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SchedPoll {
    /// Guest handle: address of an array of evtchn_port_t.
    pub ports: u64,
    pub nr_ports: u32,
    pub pad: u32,
    /// Absolute Xen system time in ns; 0 = no timeout.
    pub timeout: u64,
}
const _: () = assert!(core::mem::size_of::<SchedPoll>() == 24);
