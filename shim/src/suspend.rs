//! The Xen suspend/resume sequence, top to bottom, as in Linux's do_suspend/xen_suspend (the
//! 2008 "xen: implement save/restore" patch) and Mini-OS's shutdown.c. Each subsystem offers
//! a suspend step and a resume step; this file fixes their order. The steps run with event
//! delivery off, on vCPU0, from the shim's event handler, so the payload is frozen wherever
//! it was — it does not need to cooperate.
//!
//! `SCHEDOP_shutdown(SHUTDOWN_suspend)` returns 0 when the guest wakes in a new domain
//! (restore, migrate: every event channel is gone, shared_info must be re-mapped) and 1 when
//! the suspend was cancelled or was a checkpoint (`xl save -c`): then only what was done
//! before the hypercall is undone.

use crate::layout::timeouts::SUSPEND_CONSOLE_FLUSH_NS;
use crate::xen::abi::sched::ShutdownReason;
use crate::xen::guest::{mfn_of_va, GuestEnv, PlatformError, PvMemory, XenPorts};
use crate::xen::hypercalls::{Hypercalls, ReservedPages};
use crate::xen::{pv, pvh};

/// How the suspend hypercall came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Returned 0: running in a new domain after restore or migration.
    NewDomain,
    /// Returned non-zero: same domain (checkpoint, cancelled or failed save).
    Cancelled,
}

pub type StepResult = Result<(), PlatformError>;

/// A step failed: the guest cannot carry on (the top logs it and crashes the domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendError {
    pub step: &'static str,
    pub error: PlatformError,
}

impl core::fmt::Display for SuspendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "suspend step {}: {}", self.step, self.error)
    }
}

/// The subsystem steps the sequence calls, in the order `suspend_and_resume` calls them.
pub trait SuspendSteps {
    /// Mask event delivery; the payload is frozen where it was (its registers are on our stack).
    fn quiesce(&mut self) -> StepResult;
    /// Stop every other vCPU where it is (the seed's stop_machine): the sequence runs on
    /// vCPU 0 with nothing else running.
    fn vcpus_stop(&mut self) -> StepResult;
    /// Wait until the backend has consumed every console byte the payload wrote.
    fn console_flush(&mut self) -> StepResult;
    /// Take what the console backend left unread back out of the ring (`ring::take_back_unread`).
    fn console_take_back(&mut self) -> StepResult;
    /// Write it into the ring again: the new domain's, or the same one.
    fn console_give_back(&mut self) -> StepResult;
    /// Let the split devices' requests in flight finish (bounded): the seed's "suspend
    /// xenbus and other devices".
    fn devices_suspend(&mut self) -> StepResult;
    /// Make sure no xenstore request is in flight and stop reading the ring.
    fn xenstore_suspend(&mut self) -> StepResult;
    /// Grant table: PV unmaps its frames; PVH's frames are in its physmap and vanish with it.
    fn gnttab_suspend(&mut self) -> StepResult;
    /// Remember the payload's monotonic time, so it continues from here.
    fn time_suspend(&mut self) -> StepResult;
    /// PV: turn store/console mfns into pfns, unmap shared_info. PVH: nothing.
    fn arch_pre_suspend(&mut self) -> StepResult;
    /// `SCHEDOP_shutdown(SHUTDOWN_suspend)`; its return value.
    fn hypercall_suspend(&mut self) -> i64;
    /// New domain: map shared_info again. Cancelled: undo what arch_pre_suspend did.
    fn arch_post_suspend(&mut self, outcome: Outcome) -> StepResult;
    /// Re-base the monotonic clock on the (possibly new) Xen system time.
    fn time_resume(&mut self, outcome: Outcome) -> StepResult;
    /// Map the grant frame again where it was unmapped or lost.
    fn gnttab_resume(&mut self, outcome: Outcome) -> StepResult;
    /// New domain only: every port is gone; rebind VIRQs, read the new console and xenstore
    /// ports, unmask them.
    fn events_resume(&mut self) -> StepResult;
    /// Reconnect the console ring (new domain: a new page and port).
    fn console_resume(&mut self, outcome: Outcome) -> StepResult;
    /// Re-register watches and feature nodes (new domain) or carry on (cancelled).
    fn xenstore_resume(&mut self, outcome: Outcome) -> StepResult;
    /// New domain: start reconnecting the split devices (new rings, grants, ports). The
    /// connections go on in the background while the payload runs again, driven by the
    /// backends' state changes: waiting here for blkback and netback was most of a resume.
    /// The requests that had no response are sent again once connected; the payload's calls
    /// wait meanwhile. Cancelled: nothing.
    fn devices_resume(&mut self, outcome: Outcome) -> StepResult;
    /// New domain: mark the memory given back since the last new domain to give back again
    /// (a live migration's receiver keeps pages that were sent before they were given back);
    /// the payload's idle time does it, or a touch that would populate such memory first.
    fn memory_resume(&mut self, outcome: Outcome) -> StepResult;
    /// New domain: bind every vCPU's timer and IPI again. Then let the others go on.
    fn vcpus_resume(&mut self, outcome: Outcome) -> StepResult;
    /// Let events reach the payload again.
    fn payload_resume(&mut self, outcome: Outcome) -> StepResult;
}

/// Runs the whole sequence once and reports how it came back. The caller bumps the
/// payload's generation on `NewDomain`.
pub fn suspend_and_resume(s: &mut impl SuspendSteps) -> Result<Outcome, SuspendError> {
    let at = |step: &'static str| move |error| SuspendError { step, error };
    s.quiesce().map_err(at("quiesce"))?;
    s.vcpus_stop().map_err(at("vcpus_stop"))?;
    s.console_flush().map_err(at("console_flush"))?;
    s.devices_suspend().map_err(at("devices_suspend"))?;
    s.xenstore_suspend().map_err(at("xenstore_suspend"))?;
    s.gnttab_suspend().map_err(at("gnttab_suspend"))?;
    s.time_suspend().map_err(at("time_suspend"))?;
    s.arch_pre_suspend().map_err(at("arch_pre_suspend"))?;
    // The last thing before the hypercall: nothing is written to the console after it.
    s.console_take_back().map_err(at("console_take_back"))?;

    let outcome = match s.hypercall_suspend() {
        0 => Outcome::NewDomain,
        _ => Outcome::Cancelled,
    };

    s.arch_post_suspend(outcome).map_err(at("arch_post_suspend"))?;
    s.time_resume(outcome).map_err(at("time_resume"))?;
    s.gnttab_resume(outcome).map_err(at("gnttab_resume"))?;
    if outcome == Outcome::NewDomain {
        s.events_resume().map_err(at("events_resume"))?;
    }
    // The console comes back as early as possible so that later steps can log.
    s.console_resume(outcome).map_err(at("console_resume"))?;
    s.console_give_back().map_err(at("console_give_back"))?;
    s.xenstore_resume(outcome).map_err(at("xenstore_resume"))?;
    s.devices_resume(outcome).map_err(at("devices_resume"))?;
    s.memory_resume(outcome).map_err(at("memory_resume"))?;
    s.vcpus_resume(outcome).map_err(at("vcpus_resume"))?;
    s.payload_resume(outcome).map_err(at("payload_resume"))?;
    Ok(outcome)
}

/// What both modes' steps share: the hypercalls, the shim's drivers, the reserved pages,
/// the ports (rebound in a new domain) and the path's timing.
pub struct StepsCommon<'a, H, E> {
    pub hc: &'a mut H,
    pub env: &'a mut E,
    pub pages: ReservedPages,
    pub ports: &'a mut XenPorts,
    /// Monotonic time when the request was taken (for the timing line).
    pub t_request: u64,
    t_hypercall: u64,
    t_return: u64,
    mono_at_suspend: u64,
    /// Console bytes the backend left unread at the suspend (taken back, written again).
    console_left: u32,
}

impl<'a, H: Hypercalls, E: GuestEnv> StepsCommon<'a, H, E> {
    pub fn new(hc: &'a mut H, env: &'a mut E, pages: ReservedPages, ports: &'a mut XenPorts, t_request: u64) -> Self {
        StepsCommon { hc, env, pages, ports, t_request, t_hypercall: 0, t_return: 0, mono_at_suspend: 0, console_left: 0 }
    }
    fn quiesce(&mut self) -> StepResult {
        // We run in the event handler with events masked: the payload is frozen where it was.
        // Keeping them masked stops Xen from delivering anything while we suspend.
        self.env.set_events_masked(true);
        Ok(())
    }
    fn vcpus_stop(&mut self) -> StepResult {
        let t0 = self.env.now_ns();
        let n = self.env.vcpus_stop()?;
        if n > 0 {
            log::debug!("vCPUs: {n} other(s) stopped in {} us", self.env.now_ns().saturating_sub(t0) / 1000);
        }
        Ok(())
    }
    fn vcpus_resume(&mut self, outcome: Outcome) -> StepResult {
        let t0 = self.env.now_ns();
        self.env.vcpus_resume(outcome == Outcome::NewDomain)?;
        log::debug!("vCPUs: the others go on after {} us ({:?})", self.env.now_ns().saturating_sub(t0) / 1000, outcome);
        Ok(())
    }
    fn console_flush(&mut self) -> StepResult {
        // Briefly: a backend that reads its ring at all reads it within milliseconds. What
        // a slow or stalled one leaves unread it reads from the old domain's page later,
        // even once the domain is gone: it no longer holds up the suspend.
        self.console_left = self.env.console_flush(SUSPEND_CONSOLE_FLUSH_NS);
        if self.console_left != 0 {
            log::info!("console: the backend left {} bytes unread: taken back and written again after the suspend", self.console_left);
        }
        Ok(())
    }
    fn console_take_back(&mut self) -> StepResult {
        if self.console_left != 0 {
            self.console_left = self.env.console_take_back() as u32;
        }
        Ok(())
    }
    fn console_give_back(&mut self) -> StepResult {
        if self.console_left != 0 {
            let n = self.env.console_give_back();
            log::debug!("console: {n} bytes written again after the suspend");
            self.console_left = 0;
        }
        Ok(())
    }
    fn xenstore_suspend(&mut self) -> StepResult {
        self.env.xenstore_quiesce();
        Ok(())
    }
    fn devices_suspend(&mut self) -> StepResult {
        self.env.devices_suspend();
        Ok(())
    }
    fn devices_resume(&mut self, outcome: Outcome) -> StepResult {
        // A device that cannot reconnect is marked failed by the driver; the guest carries on.
        self.env.devices_resume(outcome == Outcome::NewDomain);
        Ok(())
    }
    fn memory_resume(&mut self, outcome: Outcome) -> StepResult {
        if outcome == Outcome::NewDomain {
            self.env.memory_resume();
        }
        Ok(())
    }
    fn time_suspend(&mut self) -> StepResult {
        self.mono_at_suspend = self.env.now_ns();
        Ok(())
    }
    fn time_resume(&mut self) -> StepResult {
        // Either way the guest stood still (saved, or paused while checkpointed): the
        // payload's clock continues from where it stopped instead of jumping ahead.
        self.env.clock_rebase(self.mono_at_suspend);
        self.t_return = self.env.now_ns();
        Ok(())
    }
    fn console_resume(&mut self, console: crate::xen::guest::RingPage) -> StepResult {
        self.env.console_attach(console);
        Ok(())
    }
    fn xenstore_resume(&mut self, store: crate::xen::guest::RingPage) -> StepResult {
        if let Err(e) = self.env.xenstore_attach(store) {
            // The payload keeps running; only the next save will not be possible.
            log::error!("xenstore: re-registering after resume failed: {e}; the guest cannot be saved again");
        }
        Ok(())
    }
    fn log_timing(&mut self, outcome: Outcome) {
        let now = self.env.now_ns();
        log::debug!(
            "suspend timing: request->hypercall {} us, hypercall->payload {} us ({:?})",
            self.t_hypercall.saturating_sub(self.t_request) / 1000,
            now.saturating_sub(self.t_return) / 1000,
            outcome
        );
    }
}

/// PVH: auto-translated. Xen keeps our physmap; only shared_info (and with it vcpu_info),
/// the grant frame and the callback vector must be set up again in a new domain.
pub struct PvhSteps<'a, H, E>(pub StepsCommon<'a, H, E>);

impl<H: Hypercalls, E: GuestEnv> SuspendSteps for PvhSteps<'_, H, E> {
    fn quiesce(&mut self) -> StepResult {
        self.0.quiesce()
    }
    fn vcpus_stop(&mut self) -> StepResult {
        self.0.vcpus_stop()
    }
    fn vcpus_resume(&mut self, outcome: Outcome) -> StepResult {
        self.0.vcpus_resume(outcome)
    }
    fn console_flush(&mut self) -> StepResult {
        self.0.console_flush()
    }
    fn console_take_back(&mut self) -> StepResult {
        self.0.console_take_back()
    }
    fn console_give_back(&mut self) -> StepResult {
        self.0.console_give_back()
    }
    fn xenstore_suspend(&mut self) -> StepResult {
        self.0.xenstore_suspend()
    }
    fn devices_suspend(&mut self) -> StepResult {
        self.0.devices_suspend()
    }
    fn devices_resume(&mut self, outcome: Outcome) -> StepResult {
        self.0.devices_resume(outcome)
    }
    fn memory_resume(&mut self, outcome: Outcome) -> StepResult {
        self.0.memory_resume(outcome)
    }
    fn gnttab_suspend(&mut self) -> StepResult {
        // The grant frame is in our physmap and goes with it.
        Ok(())
    }
    fn time_suspend(&mut self) -> StepResult {
        self.0.time_suspend()
    }
    fn arch_pre_suspend(&mut self) -> StepResult {
        self.0.t_hypercall = self.0.env.now_ns();
        Ok(())
    }
    fn hypercall_suspend(&mut self) -> i64 {
        // Nothing may read shared_info from here until arch_post_suspend: in a new domain it
        // is not in our physmap until we add it again.
        self.0.hc.sched_shutdown(ShutdownReason::Suspend, 0)
    }
    fn arch_post_suspend(&mut self, outcome: Outcome) -> StepResult {
        if outcome == Outcome::NewDomain {
            pvh::map_shared_info(self.0.hc, self.0.env, &self.0.pages)?;
        }
        pvh::set_callback_vector(self.0.hc)?;
        Ok(())
    }
    fn time_resume(&mut self, _outcome: Outcome) -> StepResult {
        self.0.time_resume()
    }
    fn gnttab_resume(&mut self, outcome: Outcome) -> StepResult {
        if outcome == Outcome::NewDomain {
            let n = self.0.env.grant_frames();
            if let Err(e) = pvh::map_grant_frames(self.0.hc, &self.0.pages, 0, n) {
                log::warn!("grant table frames not re-mapped after resume ({e})");
            }
        }
        Ok(())
    }
    fn events_resume(&mut self) -> StepResult {
        *self.0.ports = pvh::bind_ports(self.0.hc)?;
        Ok(())
    }
    fn console_resume(&mut self, outcome: Outcome) -> StepResult {
        if outcome == Outcome::NewDomain {
            let (console, _) = pvh::rings(self.0.hc, self.0.ports)?;
            self.0.console_resume(console)?;
        }
        Ok(())
    }
    fn xenstore_resume(&mut self, outcome: Outcome) -> StepResult {
        if outcome == Outcome::NewDomain {
            let (_, store) = pvh::rings(self.0.hc, self.0.ports)?;
            self.0.xenstore_resume(store)?;
        }
        Ok(())
    }
    fn payload_resume(&mut self, outcome: Outcome) -> StepResult {
        // Unmask; delivery itself stays off until the interrupt handler's iretq restores
        // the payload's IF.
        self.0.env.set_events_masked(false);
        self.0.log_timing(outcome);
        Ok(())
    }
}

/// PV: the guest owns machine frames. Frames that are not ours are unmapped first,
/// start_info's ring frames are turned into pfns for the toolstack, and in a new domain
/// every mfn (shared_info, rings, the p2m frames) is looked up again (Linux's
/// xen_pre_suspend / xen_post_suspend).
pub struct PvSteps<'a, H, E, M> {
    pub common: StepsCommon<'a, H, E>,
    pub mem: &'a mut M,
    /// start_info's ring frames while they are pfns.
    canonical: Option<pv::CanonicalRings>,
}

impl<'a, H, E, M> PvSteps<'a, H, E, M> {
    pub fn new(common: StepsCommon<'a, H, E>, mem: &'a mut M) -> Self {
        PvSteps { common, mem, canonical: None }
    }
}

impl<H: Hypercalls, E: GuestEnv, M: PvMemory> SuspendSteps for PvSteps<'_, H, E, M> {
    fn quiesce(&mut self) -> StepResult {
        self.common.quiesce()
    }
    fn vcpus_stop(&mut self) -> StepResult {
        self.common.vcpus_stop()
    }
    fn vcpus_resume(&mut self, outcome: Outcome) -> StepResult {
        self.common.vcpus_resume(outcome)
    }
    fn console_flush(&mut self) -> StepResult {
        self.common.console_flush()
    }
    fn console_take_back(&mut self) -> StepResult {
        self.common.console_take_back()
    }
    fn console_give_back(&mut self) -> StepResult {
        self.common.console_give_back()
    }
    fn xenstore_suspend(&mut self) -> StepResult {
        self.common.xenstore_suspend()
    }
    fn devices_suspend(&mut self) -> StepResult {
        self.common.devices_suspend()
    }
    fn devices_resume(&mut self, outcome: Outcome) -> StepResult {
        self.common.devices_resume(outcome)
    }
    fn memory_resume(&mut self, outcome: Outcome) -> StepResult {
        self.common.memory_resume(outcome)
    }
    fn gnttab_suspend(&mut self) -> StepResult {
        // The grant frames are Xen's frames, mapped in our page tables: unmap them before the
        // toolstack reads them.
        let n = self.common.env.grant_frames();
        pv::unmap_grant_frames(self.common.hc, self.mem, &self.common.pages, n)
    }
    fn time_suspend(&mut self) -> StepResult {
        self.common.time_suspend()
    }
    fn arch_pre_suspend(&mut self) -> StepResult {
        // Our only top-level page table is the one the domain builder pinned, and every L1
        // we added hangs below it: every page table is pinned or reachable from a pinned
        // one, so the toolstack canonicalises them all. Rings as pfns; shared_info out.
        self.canonical = Some(pv::canonicalise(self.mem));
        self.common.env.set_shared_info_mapped(false);
        pv::unmap_foreign(self.common.hc, self.mem, self.common.pages.shared_info(), "update_va_mapping(unmap shared_info)")?;
        self.common.t_hypercall = self.common.env.now_ns();
        Ok(())
    }
    fn hypercall_suspend(&mut self) -> i64 {
        // The suspend record: start_info's mfn (the toolstack rejects a bad one).
        match mfn_of_va(self.mem, self.mem.start_info_va()) {
            Ok(record) => self.common.hc.sched_shutdown(ShutdownReason::Suspend, record.raw()),
            // Not reachable with a sane p2m; -EINVAL reads as "cancelled", which undoes.
            Err(_) => -22,
        }
    }
    fn arch_post_suspend(&mut self, outcome: Outcome) -> StepResult {
        match outcome {
            // start_info now names the new domain's shared_info and rings.
            Outcome::NewDomain => {
                self.canonical = None;
                pv::attach_to_domain(self.common.hc, self.common.env, self.mem, &self.common.pages)
            }
            Outcome::Cancelled => {
                if let Some(rings) = self.canonical.take() {
                    pv::uncanonicalise(self.mem, rings)?;
                }
                pv::map_shared_info(self.common.hc, self.common.env, &self.common.pages, self.mem.start_info().shared_info)
            }
        }
    }
    fn time_resume(&mut self, _outcome: Outcome) -> StepResult {
        self.common.time_resume()
    }
    fn gnttab_resume(&mut self, _outcome: Outcome) -> StepResult {
        // Unmapped before the hypercall, whatever came back.
        let n = self.common.env.grant_frames();
        if let Err(e) = pv::map_grant_frames(self.common.hc, &self.common.pages, n) {
            log::warn!("grant table frames not re-mapped after resume ({e})");
        }
        Ok(())
    }
    fn events_resume(&mut self) -> StepResult {
        *self.common.ports = pv::bind_ports(self.common.hc, self.mem)?;
        Ok(())
    }
    fn console_resume(&mut self, outcome: Outcome) -> StepResult {
        if outcome == Outcome::NewDomain {
            let (console, _) = pv::rings(self.mem, self.common.ports);
            self.common.console_resume(console)?;
        }
        Ok(())
    }
    fn xenstore_resume(&mut self, outcome: Outcome) -> StepResult {
        if outcome == Outcome::NewDomain {
            let (_, store) = pv::rings(self.mem, self.common.ports);
            self.common.xenstore_resume(store)?;
        }
        Ok(())
    }
    fn payload_resume(&mut self, outcome: Outcome) -> StepResult {
        // Events stay masked here: HYPERVISOR_iret restores the mask from the saved
        // rflags.IF when the event callback returns to the payload.
        self.common.log_timing(outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::abi::hvm_params as hp;
    use crate::xen::abi::xen::StartInfo;
    use crate::xen::frames::{EvtchnPort, Mfn, Pfn};
    use crate::xen::guest::RingPage;
    use crate::xen::hypercalls::testing::RecordingHypercalls;
    use crate::xen::xenstore_wire::XsError;
    use alloc::collections::BTreeMap;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;
    use zerocopy::FromZeros;

    struct Recorder {
        rc: i64,
        calls: Vec<String>,
    }

    impl SuspendSteps for Recorder {
        fn quiesce(&mut self) -> StepResult {
            self.calls.push("quiesce".into());
            Ok(())
        }
        fn vcpus_stop(&mut self) -> StepResult {
            self.calls.push("vcpus_stop".into());
            Ok(())
        }
        fn vcpus_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("vcpus_resume({o:?})"));
            Ok(())
        }
        fn console_flush(&mut self) -> StepResult {
            self.calls.push("console_flush".into());
            Ok(())
        }
        fn console_take_back(&mut self) -> StepResult {
            self.calls.push("console_take_back".into());
            Ok(())
        }
        fn console_give_back(&mut self) -> StepResult {
            self.calls.push("console_give_back".into());
            Ok(())
        }
        fn devices_suspend(&mut self) -> StepResult {
            self.calls.push("devices_suspend".into());
            Ok(())
        }
        fn devices_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("devices_resume({o:?})"));
            Ok(())
        }
        fn memory_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("memory_resume({o:?})"));
            Ok(())
        }
        fn xenstore_suspend(&mut self) -> StepResult {
            self.calls.push("xenstore_suspend".into());
            Ok(())
        }
        fn gnttab_suspend(&mut self) -> StepResult {
            self.calls.push("gnttab_suspend".into());
            Ok(())
        }
        fn time_suspend(&mut self) -> StepResult {
            self.calls.push("time_suspend".into());
            Ok(())
        }
        fn arch_pre_suspend(&mut self) -> StepResult {
            self.calls.push("arch_pre_suspend".into());
            Ok(())
        }
        fn hypercall_suspend(&mut self) -> i64 {
            self.calls.push("HYPERCALL".into());
            self.rc
        }
        fn arch_post_suspend(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("arch_post_suspend({o:?})"));
            Ok(())
        }
        fn time_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("time_resume({o:?})"));
            Ok(())
        }
        fn gnttab_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("gnttab_resume({o:?})"));
            Ok(())
        }
        fn events_resume(&mut self) -> StepResult {
            self.calls.push("events_resume".into());
            Ok(())
        }
        fn console_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("console_resume({o:?})"));
            Ok(())
        }
        fn xenstore_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("xenstore_resume({o:?})"));
            Ok(())
        }
        fn payload_resume(&mut self, o: Outcome) -> StepResult {
            self.calls.push(format!("payload_resume({o:?})"));
            Ok(())
        }
    }

    const BEFORE: [&str; 10] = ["quiesce", "vcpus_stop", "console_flush", "devices_suspend", "xenstore_suspend", "gnttab_suspend", "time_suspend", "arch_pre_suspend", "console_take_back", "HYPERCALL"];

    #[test]
    fn new_domain_rebinds_everything_in_order() {
        let mut r = Recorder { rc: 0, calls: Vec::new() };
        assert_eq!(suspend_and_resume(&mut r), Ok(Outcome::NewDomain));
        let after = [
            "arch_post_suspend(NewDomain)",
            "time_resume(NewDomain)",
            "gnttab_resume(NewDomain)",
            "events_resume",
            "console_resume(NewDomain)",
            "console_give_back",
            "xenstore_resume(NewDomain)",
            "devices_resume(NewDomain)",
            "memory_resume(NewDomain)",
            "vcpus_resume(NewDomain)",
            "payload_resume(NewDomain)",
        ];
        let expect: Vec<&str> = BEFORE.iter().chain(after.iter()).copied().collect();
        assert_eq!(r.calls, expect);
        println!("checked order: {}", r.calls.join(" -> "));
    }

    #[test]
    fn cancelled_and_failed_suspends_undo_without_rebinding() {
        for rc in [1, -22] {
            let mut r = Recorder { rc, calls: Vec::new() };
            assert_eq!(suspend_and_resume(&mut r), Ok(Outcome::Cancelled));
            assert!(!r.calls.iter().any(|c| c == "events_resume"), "ports survive a cancelled suspend");
            assert_eq!(&r.calls[..BEFORE.len()], &BEFORE);
            assert_eq!(r.calls.last().unwrap(), "payload_resume(Cancelled)");
            println!("rc {rc}: {}", r.calls.join(" -> "));
        }
    }

    /// The shim's drivers as a log of what was asked of them.
    #[derive(Default)]
    struct FakeEnv {
        log: Vec<String>,
        now: u64,
        masked: bool,
        shared_info_mapped: bool,
        console: Option<RingPage>,
        store: Option<RingPage>,
        rebased_to: Option<u64>,
        /// vcpus_stop fails naming this vCPU.
        stuck_vcpu: Option<usize>,
    }

    impl GuestEnv for FakeEnv {
        fn set_events_masked(&mut self, masked: bool) {
            self.masked = masked;
            self.log.push(format!("events_masked={masked}"));
        }
        fn now_ns(&mut self) -> u64 {
            self.now += 1000;
            self.now
        }
        fn clock_rebase(&mut self, mono: u64) {
            self.rebased_to = Some(mono);
        }
        fn console_flush(&mut self, _t: u64) -> u32 {
            self.log.push("console_flush".into());
            0
        }
        fn console_attach(&mut self, ring: RingPage) {
            self.console = Some(ring);
        }
        fn console_take_back(&mut self) -> usize {
            self.log.push("console_take_back".into());
            0
        }
        fn console_give_back(&mut self) -> usize {
            self.log.push("console_give_back".into());
            0
        }
        fn xenstore_quiesce(&mut self) {
            self.log.push("xenstore_quiesce".into());
        }
        fn xenstore_attach(&mut self, ring: RingPage) -> Result<(), XsError> {
            self.store = Some(ring);
            Ok(())
        }
        fn set_shared_info_mapped(&mut self, mapped: bool) {
            self.shared_info_mapped = mapped;
            self.log.push(format!("shared_info_mapped={mapped}"));
        }
        fn set_vcpu_info_registered(&mut self, registered: bool) {
            self.log.push(format!("vcpu_info_registered={registered}"));
        }
        fn grant_frames(&self) -> u32 {
            1
        }
        fn devices_suspend(&mut self) {
            self.log.push("devices_suspend".into());
        }
        fn memory_resume(&mut self) {
            self.log.push("memory_resume".into());
        }
        fn devices_resume(&mut self, new_domain: bool) {
            self.log.push(format!("devices_resume(new_domain={new_domain})"));
        }
        fn vcpus_stop(&mut self) -> Result<usize, PlatformError> {
            self.log.push("vcpus_stop".into());
            self.stuck_vcpu.map_or(Ok(3), |v| Err(PlatformError::VcpuDidNotStop(v)))
        }
        fn vcpus_resume(&mut self, new_domain: bool) -> Result<(), PlatformError> {
            self.log.push(format!("vcpus_resume(new_domain={new_domain})"));
            Ok(())
        }
    }

    // The reserved pages at fixed addresses, as in the shim's bss.
    const SHARED_INFO_VA: u64 = 0x20_0000;
    const GRANT_VA: u64 = 0x20_1000;
    const VCPU_INFO_VA: u64 = 0x20_2040;
    const START_INFO_VA: u64 = 0x30_0000;
    fn pages() -> ReservedPages {
        // SAFETY: test addresses; the recording fake never touches memory.
        unsafe { ReservedPages::new(SHARED_INFO_VA, GRANT_VA, VCPU_INFO_VA) }
    }

    /// A PV domain: pfn -> mfn = pfn + offset, and start_info.
    struct FakePvMem {
        si: StartInfo,
        mfn_offset: u64,
        published: u32,
    }
    impl PvMemory for FakePvMem {
        fn start_info(&self) -> StartInfo {
            self.si
        }
        fn set_start_info(&mut self, si: &StartInfo) {
            self.si = *si;
        }
        fn start_info_va(&self) -> u64 {
            START_INFO_VA
        }
        fn p2m(&self, pfn: Pfn) -> Option<Mfn> {
            (pfn.raw() < 0x8000).then(|| Mfn::new(pfn.raw() + self.mfn_offset))
        }
        fn m2p(&self, mfn: Mfn) -> Pfn {
            Pfn::new(mfn.raw() - self.mfn_offset)
        }
        fn publish_p2m(&mut self) -> Result<(), PlatformError> {
            self.published += 1;
            Ok(())
        }
    }

    const STORE_PFN: u64 = 0x7ffe;
    const CONSOLE_PFN: u64 = 0x7fff;

    fn pv_domain(mfn_offset: u64) -> FakePvMem {
        let mut si = StartInfo::new_zeroed();
        si.store_mfn = STORE_PFN + mfn_offset;
        si.console.mfn = CONSOLE_PFN + mfn_offset;
        si.store_evtchn = 1;
        si.console.evtchn = 2;
        si.shared_info = 0xabc_d000;
        FakePvMem { si, mfn_offset, published: 0 }
    }

    fn old_ports() -> XenPorts {
        XenPorts { timer: EvtchnPort::new(3), console: EvtchnPort::new(2), store: EvtchnPort::new(1) }
    }

    fn run_pv(rc: i64, mem: &mut FakePvMem, restore_to: Option<u64>) -> (Outcome, RecordingHypercalls, FakeEnv, XenPorts) {
        let mut hc = RecordingHypercalls { suspend_rc: rc, next_port: 10, grant_mfn: 0x5_0000, ..Default::default() };
        let mut env = FakeEnv { shared_info_mapped: true, ..Default::default() };
        let mut ports = old_ports();
        // What the toolstack does while we are suspended: a restore rewrites start_info with
        // the new domain's frames and ports (from the pfns we left there).
        struct Toolstack<'a, 'b> {
            steps: PvSteps<'a, RecordingHypercalls, FakeEnv, FakePvMem>,
            restore_to: Option<u64>,
            seen_at_hypercall: &'b mut Option<StartInfo>,
        }
        impl SuspendSteps for Toolstack<'_, '_> {
            fn quiesce(&mut self) -> StepResult { self.steps.quiesce() }
            fn vcpus_stop(&mut self) -> StepResult { self.steps.vcpus_stop() }
            fn vcpus_resume(&mut self, o: Outcome) -> StepResult { self.steps.vcpus_resume(o) }
            fn console_flush(&mut self) -> StepResult { self.steps.console_flush() }
            fn console_take_back(&mut self) -> StepResult { self.steps.console_take_back() }
            fn console_give_back(&mut self) -> StepResult { self.steps.console_give_back() }
            fn xenstore_suspend(&mut self) -> StepResult { self.steps.xenstore_suspend() }
            fn devices_suspend(&mut self) -> StepResult { self.steps.devices_suspend() }
            fn devices_resume(&mut self, o: Outcome) -> StepResult { self.steps.devices_resume(o) }
            fn memory_resume(&mut self, o: Outcome) -> StepResult { self.steps.memory_resume(o) }
            fn gnttab_suspend(&mut self) -> StepResult { self.steps.gnttab_suspend() }
            fn time_suspend(&mut self) -> StepResult { self.steps.time_suspend() }
            fn arch_pre_suspend(&mut self) -> StepResult { self.steps.arch_pre_suspend() }
            fn hypercall_suspend(&mut self) -> i64 {
                let si = self.steps.mem.start_info();
                *self.seen_at_hypercall = Some(si);
                let rc = self.steps.hypercall_suspend();
                if let Some(off) = self.restore_to {
                    let m = &mut *self.steps.mem;
                    m.mfn_offset = off;
                    m.si.store_mfn = si.store_mfn + off;
                    m.si.console.mfn = si.console.mfn + off;
                    m.si.store_evtchn = 7;
                    m.si.console.evtchn = 8;
                    m.si.shared_info = 0xdef_0000;
                }
                rc
            }
            fn arch_post_suspend(&mut self, o: Outcome) -> StepResult { self.steps.arch_post_suspend(o) }
            fn time_resume(&mut self, o: Outcome) -> StepResult { self.steps.time_resume(o) }
            fn gnttab_resume(&mut self, o: Outcome) -> StepResult { self.steps.gnttab_resume(o) }
            fn events_resume(&mut self) -> StepResult { self.steps.events_resume() }
            fn console_resume(&mut self, o: Outcome) -> StepResult { self.steps.console_resume(o) }
            fn xenstore_resume(&mut self, o: Outcome) -> StepResult { self.steps.xenstore_resume(o) }
            fn payload_resume(&mut self, o: Outcome) -> StepResult { self.steps.payload_resume(o) }
        }
        let mut seen = None;
        let outcome = {
            let common = StepsCommon::new(&mut hc, &mut env, pages(), &mut ports, 0);
            let mut t = Toolstack { steps: PvSteps::new(common, mem), restore_to, seen_at_hypercall: &mut seen };
            suspend_and_resume(&mut t).expect("no step fails")
        };
        let si = seen.expect("hypercall made");
        assert_eq!((si.store_mfn, si.console.mfn), (STORE_PFN, CONSOLE_PFN), "at the hypercall start_info holds pfns");
        (outcome, hc, env, ports)
    }

    #[test]
    fn pv_before_the_hypercall_unmaps_foreign_frames_and_canonicalises() {
        let mut mem = pv_domain(0x10_0000);
        let (_, hc, env, _) = run_pv(1, &mut mem, None);
        let before: Vec<&String> = hc.calls.iter().take_while(|c| !c.starts_with("sched_shutdown")).collect();
        // Both reserved pages get their own frames back (pfn + offset), nothing else is mapped.
        assert_eq!(before, [
            &format!("update_va_mapping(va {GRANT_VA:#x}, mfn {:#x}, flags 0x67)", (GRANT_VA >> 12) + 0x10_0000),
            &format!("update_va_mapping(va {SHARED_INFO_VA:#x}, mfn {:#x}, flags 0x67)", (SHARED_INFO_VA >> 12) + 0x10_0000),
        ]);
        assert!(hc.calls.contains(&format!("sched_shutdown(Suspend, {:#x})", (START_INFO_VA >> 12) + 0x10_0000)), "record = start_info's mfn: {:?}", hc.calls);
        let order: Vec<&str> = env.log.iter().map(|s| s.as_str()).take(6).collect();
        assert_eq!(order, ["events_masked=true", "vcpus_stop", "console_flush", "devices_suspend", "xenstore_quiesce", "shared_info_mapped=false"]);
        println!("checked: PV pre-suspend: grant frame and shared_info unmapped, start_info pfns, record = start_info mfn");
    }

    #[test]
    fn pv_cancelled_path_restores_mfns_and_remaps_shared_info_and_grant_frame() {
        let mut mem = pv_domain(0x10_0000);
        let (outcome, hc, env, ports) = run_pv(1, &mut mem, None);
        assert_eq!(outcome, Outcome::Cancelled);
        assert_eq!((mem.si.store_mfn, mem.si.console.mfn), (STORE_PFN + 0x10_0000, CONSOLE_PFN + 0x10_0000), "pfns turned back into this domain's mfns");
        let after: Vec<&String> = hc.calls.iter().skip_while(|c| !c.starts_with("sched_shutdown")).skip(1).collect();
        assert_eq!(after, [
            &format!("update_va_mapping(va {SHARED_INFO_VA:#x}, mfn 0xabcd, flags 0x67)"),
            &String::from("gnttab_setup_table(1)"),
            &format!("update_va_mapping(va {GRANT_VA:#x}, mfn 0x50000, flags 0x67)"),
        ], "shared_info and the grant frame mapped again, no port rebound, no vcpu_info re-registration");
        assert_eq!(ports, old_ports());
        assert!(env.shared_info_mapped);
        assert_eq!(mem.published, 0, "the p2m tree is still valid in the same domain");
        assert!(env.console.is_none() && env.store.is_none(), "rings untouched");
        println!("checked: PV cancelled: {}", after.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "));
    }

    #[test]
    fn pv_new_domain_remaps_everything_and_rebinds_every_port() {
        let mut mem = pv_domain(0x10_0000);
        let (outcome, hc, env, ports) = run_pv(0, &mut mem, Some(0x20_0000));
        assert_eq!(outcome, Outcome::NewDomain);
        let after: Vec<&str> = hc.calls.iter().skip_while(|c| !c.starts_with("sched_shutdown")).skip(1).map(|s| s.as_str()).collect();
        assert_eq!(after[0], "update_va_mapping(va 0x200000, mfn 0xdef0, flags 0x67)", "the new shared_info from start_info");
        assert_eq!(after[1], format!("register_vcpu_info(frame {:#x}, offset 0x40)", (VCPU_INFO_VA >> 12) + 0x20_0000), "by the new mfn");
        assert_eq!(after[2], "stop_periodic_timer()");
        assert_eq!(mem.published, 1, "p2m frame lists rebuilt for the next save");
        assert!(after.contains(&"evtchn_bind_virq(virq 0, vcpu 0)"));
        for p in ["10", "8", "7"] {
            assert!(after.contains(&format!("evtchn_unmask({p})").as_str()), "port {p} unmasked: {after:?}");
        }
        assert_eq!(ports, XenPorts { timer: EvtchnPort::new(10), console: EvtchnPort::new(8), store: EvtchnPort::new(7) });
        assert_eq!(env.console, Some(RingPage { addr: CONSOLE_PFN << 12, port: EvtchnPort::new(8) }), "console ring found through the new m2p");
        assert_eq!(env.store, Some(RingPage { addr: STORE_PFN << 12, port: EvtchnPort::new(7) }));
        assert!(env.masked, "PV: events stay masked until HYPERVISOR_iret");
        assert!(env.rebased_to.is_some());
        println!("checked: PV new domain: {}", after.join("; "));
    }

    fn pvh_hc(rc: i64) -> RecordingHypercalls {
        let params: BTreeMap<u32, u64> = [(hp::HVM_PARAM_CONSOLE_EVTCHN, 5), (hp::HVM_PARAM_STORE_EVTCHN, 6), (hp::HVM_PARAM_CONSOLE_PFN, 0xfefff), (hp::HVM_PARAM_STORE_PFN, 0xfeffc)].into_iter().collect();
        RecordingHypercalls { suspend_rc: rc, next_port: 20, params, ..Default::default() }
    }

    fn run_pvh(hc: &mut RecordingHypercalls, env: &mut FakeEnv, ports: &mut XenPorts) -> Outcome {
        let mut steps = PvhSteps(StepsCommon::new(hc, env, pages(), ports, 0));
        suspend_and_resume(&mut steps).expect("no step fails")
    }

    #[test]
    fn pvh_new_domain_readds_shared_info_grant_frame_callback_and_ports() {
        let (mut hc, mut env, mut ports) = (pvh_hc(0), FakeEnv::default(), old_ports());
        assert_eq!(run_pvh(&mut hc, &mut env, &mut ports), Outcome::NewDomain);
        let after: Vec<&str> = hc.calls.iter().skip_while(|c| !c.starts_with("sched_shutdown")).map(|s| s.as_str()).collect();
        assert_eq!(after[0], "sched_shutdown(Suspend, 0x0)", "PVH: no suspend record");
        assert_eq!(after[1], format!("add_to_physmap(space 0, idx 0, gfn {:#x})", SHARED_INFO_VA >> 12));
        assert_eq!(after[2], format!("register_vcpu_info(frame {:#x}, offset 0x40)", VCPU_INFO_VA >> 12));
        assert!(after[3].starts_with(&format!("hvm_set_param({}, ", hp::HVM_PARAM_CALLBACK_IRQ)), "{}", after[3]);
        assert_eq!(after[4], format!("add_to_physmap(space 1, idx 0, gfn {:#x})", GRANT_VA >> 12));
        assert_eq!(ports, XenPorts { timer: EvtchnPort::new(20), console: EvtchnPort::new(5), store: EvtchnPort::new(6) });
        assert_eq!(env.console, Some(RingPage { addr: 0xfefff000, port: EvtchnPort::new(5) }));
        assert_eq!(env.store, Some(RingPage { addr: 0xfeffc000, port: EvtchnPort::new(6) }));
        assert!(!env.masked, "PVH unmasks; the iretq restores IF");
        assert!(hc.named("update_va_mapping").is_empty(), "no PV page-table work under PVH");
        println!("checked: PVH new domain: {}", after.join("; "));
    }

    #[test]
    fn pvh_cancelled_only_sets_the_callback_vector_again() {
        let (mut hc, mut env, mut ports) = (pvh_hc(1), FakeEnv::default(), old_ports());
        assert_eq!(run_pvh(&mut hc, &mut env, &mut ports), Outcome::Cancelled);
        let after: Vec<&str> = hc.calls.iter().skip_while(|c| !c.starts_with("sched_shutdown")).skip(1).map(|s| s.as_str()).collect();
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(after[0].starts_with("hvm_set_param("), "register_vcpu_info may be called once per domain: not again");
        assert_eq!(ports, old_ports());
        println!("checked: PVH cancelled: {}", after.join("; "));
    }

    #[test]
    fn the_other_vcpus_stop_before_anything_and_go_on_after_everything() {
        for (rc, new_domain) in [(0, true), (1, false)] {
            let (mut hc, mut env, mut ports) = (pvh_hc(rc), FakeEnv::default(), old_ports());
            run_pvh(&mut hc, &mut env, &mut ports);
            assert_eq!(env.log.iter().position(|l| l == "vcpus_stop"), Some(1), "right after quiesce: {:?}", env.log);
            let resumed = format!("vcpus_resume(new_domain={new_domain})");
            let at = env.log.iter().position(|l| *l == resumed).expect("the others go on");
            assert!(env.log[..at].iter().any(|l| l.starts_with("devices_resume")) && env.log[..at].iter().any(|l| l == "memory_resume") == new_domain, "{:?}", env.log);
        }
        // One that does not stop ends the suspend before the hypercall, named.
        let (mut hc, mut env, mut ports) = (pvh_hc(0), FakeEnv { stuck_vcpu: Some(2), ..Default::default() }, old_ports());
        let mut steps = PvhSteps(StepsCommon::new(&mut hc, &mut env, pages(), &mut ports, 0));
        let e = suspend_and_resume(&mut steps).unwrap_err();
        assert_eq!(format!("{e}"), "suspend step vcpus_stop: vCPU 2 did not stop for the suspend");
        assert!(hc.named("sched_shutdown").is_empty(), "no suspend hypercall");
        println!("checked: {e}");
    }

    #[test]
    fn a_failing_step_is_reported_with_its_name() {
        let (mut hc, mut env, mut ports) = (pvh_hc(0), FakeEnv::default(), old_ports());
        hc.fail.insert("evtchn_bind_virq", crate::xen::errno::XenErrno::ENOSPC);
        let mut steps = PvhSteps(StepsCommon::new(&mut hc, &mut env, pages(), &mut ports, 0));
        let e = suspend_and_resume(&mut steps).unwrap_err();
        assert_eq!(e.step, "events_resume");
        assert_eq!(format!("{e}"), "suspend step events_resume: EVTCHNOP_bind_virq(VIRQ_TIMER) failed: -ENOSPC (-28)");
        println!("checked: {e}");
    }
}
