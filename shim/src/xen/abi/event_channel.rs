//! xen/include/public/event_channel.h (2-level ABI).
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const EVTCHNOP_CLOSE: u32 = 3;
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
pub const EVTCHNOP_SEND: u32 = 4;
pub const EVTCHNOP_UNMASK: u32 = 9;
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
pub const EVTCHNOP_BIND_IPI: u32 = 7;

pub const VIRQ_TIMER: u32 = 0;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    /// OUT
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnBindVirq>() == 12);

/// `struct evtchn_bind_ipi`: a port whose sends (from any vCPU) arrive on `vcpu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct EvtchnBindIpi {
    pub vcpu: u32,
    /// OUT
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnBindIpi>() == 8);

/// evtchn_send, evtchn_unmask and evtchn_close are all just a port.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct EvtchnPortArg {
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnPortArg>() == 4);

/// `struct evtchn_alloc_unbound`: a port of ours that `remote_dom` may bind to (a backend).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    /// OUT
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnAllocUnbound>() == 8);
