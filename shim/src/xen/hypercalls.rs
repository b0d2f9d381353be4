//! The hypercalls the shim's Xen logic makes, as one small trait: the bare-metal kernel
//! implements it over the hypercall page, and host tests use `testing::RecordingHypercalls`,
//! which logs every call and answers from a script. Calls that can change what memory is
//! mapped, or make Xen write to guest memory, are `unsafe fn`: the caller must name pages
//! that no Rust reference covers (`ReservedPages` below is how the logic does that).
use super::abi::sched::ShutdownReason;
use super::abi::xen::{MmuUpdate, TrapInfo};
use super::errno::XenErrno;
use super::frames::{EvtchnPort, Gfn, Mfn};

pub type HcResult<T> = Result<T, XenErrno>;

pub trait Hypercalls {
    /// XENVER_version: major << 16 | minor.
    fn xen_version(&mut self) -> u32;
    fn hvm_get_param(&mut self, index: u32) -> HcResult<u64>;
    fn hvm_set_param(&mut self, index: u32, value: u64) -> HcResult<()>;
    fn evtchn_bind_virq(&mut self, virq: u32, vcpu: u32) -> HcResult<EvtchnPort>;
    fn evtchn_unmask(&mut self, port: EvtchnPort) -> HcResult<()>;
    fn evtchn_send(&mut self, port: EvtchnPort) -> HcResult<()>;
    /// `EVTCHNOP_alloc_unbound`: a port of ours that domain `remote` (a backend) may bind.
    fn evtchn_alloc_unbound(&mut self, remote: u16) -> HcResult<EvtchnPort>;
    /// `SCHEDOP_shutdown`. For `Suspend`, `suspend_record` is the PV start_info mfn (PVH: 0)
    /// and the raw return value comes back: 0 in a new domain, 1 if cancelled.
    fn sched_shutdown(&mut self, reason: ShutdownReason, suspend_record: u64) -> i64;
    fn stop_periodic_timer(&mut self) -> HcResult<()>;
    fn set_singleshot_timer(&mut self, timeout_abs_ns: u64) -> HcResult<()>;
    /// PV: the machine frames of the first `frames.len()` grant-table frames.
    fn gnttab_setup_table(&mut self, frames: &mut [u64]) -> HcResult<()>;

    /// Places a Xen-owned frame (shared_info, a grant frame) at `gfn` in our physmap.
    /// # Safety
    /// `gfn` must be a page no Rust reference covers and nothing else uses: its contents
    /// are replaced by Xen's frame.
    unsafe fn add_to_physmap(&mut self, space: u32, idx: u64, gfn: Gfn) -> HcResult<()>;
    /// Makes Xen write vCPU `0`'s vcpu_info at (`frame`, `offset`) from now on.
    /// # Safety
    /// The 64 bytes there must be reserved for Xen and only read through volatile access.
    unsafe fn register_vcpu_info(&mut self, frame: u64, offset: u32) -> HcResult<()>;
    /// PV: sets the L1 entry that maps `va` to `pte` (and flushes it).
    /// # Safety
    /// Whatever `va` mapped is replaced: no Rust reference may cover that page, and `pte`
    /// must name a frame the guest may map with those rights.
    unsafe fn update_va_mapping(&mut self, va: u64, pte: u64) -> HcResult<()>;
    /// PV: a batch of page-table writes (`ptr` = machine address of the entry).
    /// # Safety
    /// As `update_va_mapping`, for every entry written.
    unsafe fn mmu_update(&mut self, reqs: &[MmuUpdate]) -> HcResult<()>;
    /// PV: loads a GDT of `entries` descriptors from these (read-only mapped) frames.
    /// # Safety
    /// The frames must hold valid descriptors for the selectors in use and stay read-only.
    unsafe fn set_gdt(&mut self, frames: &[Mfn], entries: u32) -> HcResult<()>;
    /// PV: installs the trap table (ending with a zero-address entry).
    /// # Safety
    /// Every address must be an entry stub that handles Xen's PV exception frame.
    unsafe fn set_trap_table(&mut self, table: &[TrapInfo]) -> HcResult<()>;
    /// PV: registers the event or failsafe entry point.
    /// # Safety
    /// `address` must be a stub that handles Xen's callback frame.
    unsafe fn register_callback(&mut self, type_: u16, address: u64, flags: u16) -> HcResult<()>;
    /// PV `HYPERVISOR_stack_switch`: the stack Xen enters the guest kernel on from user mode.
    /// # Safety
    /// `sp` must be the top of a stack that nothing else uses while the guest is in user mode.
    unsafe fn stack_switch(&mut self, ss: u16, sp: u64) -> HcResult<()>;
    /// PV `HYPERVISOR_mmuext_op` (pin a page table, set the user base pointer ...).
    /// # Safety
    /// The frames named must be page tables the caller built for the purpose.
    unsafe fn mmuext_op(&mut self, ops: &[crate::xen::abi::xen::MmuextOp]) -> HcResult<()>;
}

/// The shim's pages that Xen places its own frames in, or writes behind our back, named
/// by address (bare metal: statics in the shim's bss, listed in `layout`). Holding one is
/// the proof the unsafe hypercalls above ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedPages {
    shared_info: u64,
    /// The first of `layout::GRANT_FRAMES` consecutive pages.
    grant_frames: u64,
    vcpu_info: u64,
}

impl ReservedPages {
    /// # Safety
    /// `shared_info` must be a page-aligned page, `grant_frames` the first of
    /// `layout::GRANT_FRAMES` consecutive ones, and `vcpu_info` a 64-byte-aligned area inside
    /// one page, that belong to the shim, are never referenced as Rust memory, and are accessed
    /// only through raw volatile or atomic pointers.
    pub const unsafe fn new(shared_info: u64, grant_frames: u64, vcpu_info: u64) -> ReservedPages {
        ReservedPages { shared_info, grant_frames, vcpu_info }
    }
    pub const fn shared_info(&self) -> u64 {
        self.shared_info
    }
    /// The page of grant table frame `i` (`i < layout::GRANT_FRAMES`).
    pub const fn grant_frame(&self, i: u32) -> u64 {
        assert!(i < crate::layout::GRANT_FRAMES);
        self.grant_frames + i as u64 * crate::layout::PAGE_SIZE
    }
    pub const fn vcpu_info(&self) -> u64 {
        self.vcpu_info
    }
}

/// A fake for host tests: records every call in order, answers from a script.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    #[derive(Debug, Default)]
    pub struct RecordingHypercalls {
        pub calls: Vec<String>,
        /// The return of SCHEDOP_shutdown(suspend): 0 new domain, 1 cancelled.
        pub suspend_rc: i64,
        /// HVM params `hvm_get_param` answers (missing: -EINVAL).
        pub params: BTreeMap<u32, u64>,
        /// The next port `evtchn_bind_virq` returns.
        pub next_port: u32,
        /// The mfn `gnttab_setup_table` returns for frame 0.
        pub grant_mfn: u64,
        /// Calls (by name) that fail with this errno.
        pub fail: BTreeMap<&'static str, XenErrno>,
    }

    impl RecordingHypercalls {
        fn rec(&mut self, name: &'static str, args: String) -> HcResult<()> {
            self.calls.push(format!("{name}({args})"));
            match self.fail.get(name) {
                Some(e) => Err(*e),
                None => Ok(()),
            }
        }
        /// The calls whose text starts with `prefix`.
        pub fn named(&self, prefix: &str) -> Vec<&str> {
            self.calls.iter().filter(|c| c.starts_with(prefix)).map(|c| c.as_str()).collect()
        }
    }

    impl Hypercalls for RecordingHypercalls {
        fn xen_version(&mut self) -> u32 {
            self.calls.push("xen_version()".into());
            0x0004_0011
        }
        fn hvm_get_param(&mut self, index: u32) -> HcResult<u64> {
            self.rec("hvm_get_param", format!("{index}"))?;
            self.params.get(&index).copied().ok_or(XenErrno::EINVAL)
        }
        fn hvm_set_param(&mut self, index: u32, value: u64) -> HcResult<()> {
            self.rec("hvm_set_param", format!("{index}, {value:#x}"))
        }
        fn evtchn_bind_virq(&mut self, virq: u32, vcpu: u32) -> HcResult<EvtchnPort> {
            self.rec("evtchn_bind_virq", format!("virq {virq}, vcpu {vcpu}"))?;
            let p = self.next_port;
            self.next_port += 1;
            Ok(EvtchnPort::new(p))
        }
        fn evtchn_unmask(&mut self, port: EvtchnPort) -> HcResult<()> {
            self.rec("evtchn_unmask", format!("{}", port.raw()))
        }
        fn evtchn_alloc_unbound(&mut self, remote: u16) -> HcResult<EvtchnPort> {
            self.rec("evtchn_alloc_unbound", format!("remote {remote}"))?;
            let p = self.next_port;
            self.next_port += 1;
            Ok(EvtchnPort::new(p))
        }
        fn evtchn_send(&mut self, port: EvtchnPort) -> HcResult<()> {
            self.rec("evtchn_send", format!("{}", port.raw()))
        }
        fn sched_shutdown(&mut self, reason: ShutdownReason, suspend_record: u64) -> i64 {
            self.calls.push(format!("sched_shutdown({reason:?}, {suspend_record:#x})"));
            self.suspend_rc
        }
        fn stop_periodic_timer(&mut self) -> HcResult<()> {
            self.rec("stop_periodic_timer", String::new())
        }
        fn set_singleshot_timer(&mut self, t: u64) -> HcResult<()> {
            self.rec("set_singleshot_timer", format!("{t}"))
        }
        fn gnttab_setup_table(&mut self, frames: &mut [u64]) -> HcResult<()> {
            self.rec("gnttab_setup_table", format!("{}", frames.len()))?;
            for (i, f) in frames.iter_mut().enumerate() {
                *f = self.grant_mfn + i as u64;
            }
            Ok(())
        }
        unsafe fn add_to_physmap(&mut self, space: u32, idx: u64, gfn: Gfn) -> HcResult<()> {
            self.rec("add_to_physmap", format!("space {space}, idx {idx}, gfn {:#x}", gfn.raw()))
        }
        unsafe fn register_vcpu_info(&mut self, frame: u64, offset: u32) -> HcResult<()> {
            self.rec("register_vcpu_info", format!("frame {frame:#x}, offset {offset:#x}"))
        }
        unsafe fn update_va_mapping(&mut self, va: u64, pte: u64) -> HcResult<()> {
            self.rec("update_va_mapping", format!("va {va:#x}, mfn {:#x}, flags {:#x}", Mfn::of_maddr(pte).raw(), pte & 0xfff))
        }
        unsafe fn mmu_update(&mut self, reqs: &[MmuUpdate]) -> HcResult<()> {
            self.rec("mmu_update", format!("{} entries", reqs.len()))
        }
        unsafe fn set_gdt(&mut self, frames: &[Mfn], entries: u32) -> HcResult<()> {
            self.rec("set_gdt", format!("{} frames, {entries} entries", frames.len()))
        }
        unsafe fn set_trap_table(&mut self, table: &[TrapInfo]) -> HcResult<()> {
            self.rec("set_trap_table", format!("{} entries", table.len()))
        }
        unsafe fn register_callback(&mut self, type_: u16, address: u64, flags: u16) -> HcResult<()> {
            self.rec("register_callback", format!("type {type_}, {address:#x}, flags {flags}"))
        }
        unsafe fn stack_switch(&mut self, ss: u16, sp: u64) -> HcResult<()> {
            self.rec("stack_switch", format!("ss {ss:#x}, sp {sp:#x}"))
        }
        unsafe fn mmuext_op(&mut self, ops: &[crate::xen::abi::xen::MmuextOp]) -> HcResult<()> {
            self.rec("mmuext_op", ops.iter().map(|o| format!("cmd {} mfn {:#x}", o.cmd, o.arg1)).collect::<alloc::vec::Vec<_>>().join(", "))
        }
    }
}
