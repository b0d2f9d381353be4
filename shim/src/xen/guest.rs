//! What the Xen logic (bring-up, the suspend steps) needs of the running shim besides
//! hypercalls: its drivers and clock (`GuestEnv`) and, under PV, the memory Xen describes
//! (`PvMemory`). The bare-metal kernel implements them; host tests record and model them.
use super::abi::xen::StartInfo;
use super::errno::XenError;
use super::frames::{EvtchnPort, Mfn, Pfn};
use super::p2m_tree::P2mTreeError;
use super::pv_layout::PlanError;
use super::xenstore_wire::XsError;
use crate::start_info::PvStartInfoError;
use core::fmt;

/// A ring page shared with a backend (console, xenstore) and its event channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPage {
    /// Where the shim maps it (its pseudo-physical address: both modes map RAM 1:1).
    pub addr: u64,
    pub port: EvtchnPort,
}

/// The ports every domain binds: VIRQ_TIMER, and the console's and xenstore's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenPorts {
    pub timer: EvtchnPort,
    pub console: EvtchnPort,
    pub store: EvtchnPort,
}

/// Why bring-up or a suspend step failed: always fatal, decided (and logged) at the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformError {
    Xen(XenError),
    Xenstore(&'static str, XsError),
    P2mTree(P2mTreeError),
    PvStartInfo(PvStartInfoError),
    PvLayout(PlanError),
    /// A pfn beyond the p2m: the p2m and our page tables disagree.
    BeyondP2m(Pfn),
    /// The domain builder or the hypercall MSR did not fill the hypercall page.
    NoHypercallPage,
    /// PV: Xen's bootstrap page tables have no L3/L2 for the GiB being mapped.
    NoBootstrapTables,
    /// PV: the p2m can only be published in shared_info, which is not mapped.
    SharedInfoNotMapped,
    /// The payload's address space needs more 4 KiB page tables than the shim keeps.
    PageTablePool,
    /// Xen did fewer extents of a memory reservation call than asked.
    ShortReservation { op: &'static str, done: usize, asked: usize },
    /// A vCPU did not stop for the suspend within the time limit.
    VcpuDidNotStop(usize),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformError::Xen(e) => write!(f, "{e}"),
            PlatformError::Xenstore(what, e) => write!(f, "xenstore: {what}: {e}"),
            PlatformError::P2mTree(e) => write!(f, "p2m frame lists: {e}"),
            PlatformError::PvStartInfo(e) => write!(f, "{e}"),
            PlatformError::PvLayout(e) => write!(f, "PV memory map: {e}"),
            PlatformError::BeyondP2m(p) => write!(f, "{p} is beyond the p2m"),
            PlatformError::NoHypercallPage => write!(f, "Xen did not fill the hypercall page"),
            PlatformError::NoBootstrapTables => write!(f, "PV: no L3/L2 page table where the 1:1 map needs one"),
            PlatformError::SharedInfoNotMapped => write!(f, "PV: publishing the p2m needs shared_info, which is not mapped"),
            PlatformError::PageTablePool => write!(f, "the payload's address space needs more page tables than the shim keeps"),
            PlatformError::ShortReservation { op, done, asked } => write!(f, "{op}: Xen did {done} of {asked} extents"),
            PlatformError::VcpuDidNotStop(v) => write!(f, "vCPU {v} did not stop for the suspend"),
        }
    }
}

impl From<XenError> for PlatformError {
    fn from(e: XenError) -> Self {
        PlatformError::Xen(e)
    }
}
impl From<P2mTreeError> for PlatformError {
    fn from(e: P2mTreeError) -> Self {
        PlatformError::P2mTree(e)
    }
}
impl From<PvStartInfoError> for PlatformError {
    fn from(e: PvStartInfoError) -> Self {
        PlatformError::PvStartInfo(e)
    }
}
impl From<PlanError> for PlatformError {
    fn from(e: PlanError) -> Self {
        PlatformError::PvLayout(e)
    }
}

/// The shim's drivers and clock, as bring-up and the suspend steps use them.
pub trait GuestEnv {
    /// Masks or unmasks event upcalls for vCPU0 (vcpu_info's evtchn_upcall_mask).
    fn set_events_masked(&mut self, masked: bool);
    /// The payload's monotonic clock.
    fn now_ns(&mut self) -> u64;
    /// Continue the monotonic clock from `mono` on the (possibly new) Xen system time.
    fn clock_rebase(&mut self, mono: u64);
    /// Waits up to `timeout_ns` for the console backend to read every byte; returns the
    /// bytes it left unread.
    fn console_flush(&mut self, timeout_ns: u64) -> u32;
    /// Writes to the console from now on go to this ring.
    fn console_attach(&mut self, ring: RingPage);
    /// Just before the suspend hypercall, when the backend left bytes unread: takes them back
    /// out of the ring (nothing may be written to the console from then until
    /// `console_give_back`). Returns how many.
    fn console_take_back(&mut self) -> usize;
    /// After the suspend, the (new or same) ring attached: writes the bytes taken back into
    /// it. Returns how many.
    fn console_give_back(&mut self) -> usize;
    /// Picks up what xenstore already sent (requests are synchronous: none is in flight).
    fn xenstore_quiesce(&mut self);
    /// New domain: talk to xenstore over this ring, and register the feature nodes and the
    /// `control/shutdown` watch again.
    fn xenstore_attach(&mut self, ring: RingPage) -> Result<(), XsError>;
    /// Whether the shared_info page is mapped: readers must not touch it while it is not.
    fn set_shared_info_mapped(&mut self, mapped: bool);
    /// Whether vcpu_info lives in the registered area (else in shared_info's slot).
    fn set_vcpu_info_registered(&mut self, registered: bool);
    /// Grant table frames the guest has mapped (mapped again after a suspend).
    fn grant_frames(&self) -> u32;
    /// Split devices before a suspend: let requests in flight finish (bounded).
    fn devices_suspend(&mut self);
    /// Split devices after it: in a new domain (every grant and port gone) connect to the new
    /// backends and send again what had no response; after a cancelled suspend carry on.
    fn devices_resume(&mut self, new_domain: bool);
    /// In a new domain: give back again what was given back since the last one.
    fn memory_resume(&mut self);
    /// Stops every other vCPU (parked with events off, wherever it was); how many.
    fn vcpus_stop(&mut self) -> Result<usize, PlatformError>;
    /// Lets them go on; in a new domain first binds every vCPU's timer and IPI again.
    fn vcpus_resume(&mut self, new_domain: bool) -> Result<(), PlatformError>;
}

/// PV: the memory Xen describes to the guest.
pub trait PvMemory {
    fn start_info(&self) -> StartInfo;
    fn set_start_info(&mut self, si: &StartInfo);
    /// Where start_info is mapped (its page is the suspend record's frame).
    fn start_info_va(&self) -> u64;
    /// The machine frame behind a pseudo-physical one (Xen's p2m array).
    fn p2m(&self, pfn: Pfn) -> Option<Mfn>;
    /// The pseudo-physical frame of a machine frame (Xen's read-only m2p table).
    fn m2p(&self, mfn: Mfn) -> Pfn;
    /// Rebuilds the p2m frame-list tree from the p2m's current mfns and publishes it with
    /// max_pfn in shared_info's arch area (shared_info must be mapped).
    fn publish_p2m(&mut self) -> Result<(), PlatformError>;
}

/// The machine frame behind one of the shim's own (1:1 mapped) virtual addresses.
pub fn mfn_of_va(mem: &impl PvMemory, va: u64) -> Result<Mfn, PlatformError> {
    let pfn = Pfn::containing(va);
    mem.p2m(pfn).ok_or(PlatformError::BeyondP2m(pfn))
}
