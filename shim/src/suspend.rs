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

/// How the suspend hypercall came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Returned 0: running in a new domain after restore or migration.
    NewDomain,
    /// Returned non-zero: same domain (checkpoint, cancelled or failed save).
    Cancelled,
}

/// The subsystem steps the sequence calls, in the order `suspend_and_resume` calls them.
pub trait SuspendSteps {
    /// Mask event delivery and note where the payload stopped (its registers are on our stack).
    fn quiesce(&mut self);
    /// Wait until the backend has consumed every console byte the payload wrote.
    fn console_flush(&mut self);
    /// Make sure no xenstore request is in flight and stop reading the ring.
    fn xenstore_suspend(&mut self);
    /// Grant table: PV unmaps its frames; PVH's frames are in its physmap and vanish with it.
    fn gnttab_suspend(&mut self);
    /// Remember the payload's monotonic time, so it continues from here.
    fn time_suspend(&mut self);
    /// PV: pin pagetables and turn store/console mfns into pfns. PVH: nothing.
    fn arch_pre_suspend(&mut self);
    /// `SCHEDOP_shutdown(SHUTDOWN_suspend)`; its return value.
    fn hypercall_suspend(&mut self) -> i64;
    /// New domain: re-add shared_info to the physmap. Both: set the callback vector again
    /// (HVM_PARAM_CALLBACK_IRQ is not carried across migration).
    fn arch_post_suspend(&mut self, outcome: Outcome);
    /// Re-base the monotonic clock on the (possibly new) Xen system time.
    fn time_resume(&mut self, outcome: Outcome);
    /// Re-map the grant frames (new domain) or keep them (cancelled).
    fn gnttab_resume(&mut self, outcome: Outcome);
    /// New domain only: every port is gone; rebind VIRQs, read the new console and xenstore
    /// ports, unmask them.
    fn events_resume(&mut self);
    /// Reconnect the console ring (the toolstack cleared it on restore).
    fn console_resume(&mut self, outcome: Outcome);
    /// Re-register watches and feature nodes (new domain) or carry on (cancelled).
    fn xenstore_resume(&mut self, outcome: Outcome);
    /// Bump the generation, raise the payload's opt-in "resumed" event, re-arm its deadline.
    fn payload_resume(&mut self, outcome: Outcome);
}

/// Runs the whole sequence once and reports how it came back.
pub fn suspend_and_resume(s: &mut impl SuspendSteps) -> Outcome {
    s.quiesce();
    s.console_flush();
    s.xenstore_suspend();
    s.gnttab_suspend();
    s.time_suspend();
    s.arch_pre_suspend();

    let outcome = match s.hypercall_suspend() {
        0 => Outcome::NewDomain,
        _ => Outcome::Cancelled,
    };

    s.arch_post_suspend(outcome);
    s.time_resume(outcome);
    s.gnttab_resume(outcome);
    if outcome == Outcome::NewDomain {
        s.events_resume();
    }
    // The console comes back as early as possible so that later steps can log.
    s.console_resume(outcome);
    s.xenstore_resume(outcome);
    s.payload_resume(outcome);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    struct Recorder {
        rc: i64,
        calls: Vec<String>,
    }

    impl SuspendSteps for Recorder {
        fn quiesce(&mut self) {
            self.calls.push("quiesce".into());
        }
        fn console_flush(&mut self) {
            self.calls.push("console_flush".into());
        }
        fn xenstore_suspend(&mut self) {
            self.calls.push("xenstore_suspend".into());
        }
        fn gnttab_suspend(&mut self) {
            self.calls.push("gnttab_suspend".into());
        }
        fn time_suspend(&mut self) {
            self.calls.push("time_suspend".into());
        }
        fn arch_pre_suspend(&mut self) {
            self.calls.push("arch_pre_suspend".into());
        }
        fn hypercall_suspend(&mut self) -> i64 {
            self.calls.push("HYPERCALL".into());
            self.rc
        }
        fn arch_post_suspend(&mut self, o: Outcome) {
            self.calls.push(alloc::format!("arch_post_suspend({o:?})"));
        }
        fn time_resume(&mut self, o: Outcome) {
            self.calls.push(alloc::format!("time_resume({o:?})"));
        }
        fn gnttab_resume(&mut self, o: Outcome) {
            self.calls.push(alloc::format!("gnttab_resume({o:?})"));
        }
        fn events_resume(&mut self) {
            self.calls.push("events_resume".into());
        }
        fn console_resume(&mut self, o: Outcome) {
            self.calls.push(alloc::format!("console_resume({o:?})"));
        }
        fn xenstore_resume(&mut self, o: Outcome) {
            self.calls.push(alloc::format!("xenstore_resume({o:?})"));
        }
        fn payload_resume(&mut self, o: Outcome) {
            self.calls.push(alloc::format!("payload_resume({o:?})"));
        }
    }

    const BEFORE: [&str; 7] = ["quiesce", "console_flush", "xenstore_suspend", "gnttab_suspend", "time_suspend", "arch_pre_suspend", "HYPERCALL"];

    #[test]
    fn new_domain_rebinds_everything_in_order() {
        let mut r = Recorder { rc: 0, calls: Vec::new() };
        assert_eq!(suspend_and_resume(&mut r), Outcome::NewDomain);
        let after = [
            "arch_post_suspend(NewDomain)",
            "time_resume(NewDomain)",
            "gnttab_resume(NewDomain)",
            "events_resume",
            "console_resume(NewDomain)",
            "xenstore_resume(NewDomain)",
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
            assert_eq!(suspend_and_resume(&mut r), Outcome::Cancelled);
            assert!(!r.calls.iter().any(|c| c == "events_resume"), "ports survive a cancelled suspend");
            assert_eq!(&r.calls[..7], &BEFORE);
            assert_eq!(r.calls.last().unwrap(), "payload_resume(Cancelled)");
            println!("rc {rc}: {}", r.calls.join(" -> "));
        }
    }
}
