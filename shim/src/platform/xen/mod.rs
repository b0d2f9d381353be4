//! The shim as a Xen guest: PVH bring-up (hypercall page, shared_info, grant frames, event
//! channels, console, xenstore) and PV bring-up after `pv::init`, the event upcall, the
//! `control/shutdown` protocol, and the PVH and PV steps of the suspend/resume sequence
//! (`xshim_shim::suspend` fixes their order).
pub mod console_ring;
pub mod events;
pub mod hypercall;
pub mod pv;
pub mod shared_ring;
pub mod time;
pub mod xenstore;

use crate::platform::{clock, Exit};
use crate::{console, services};
use alloc::format;
use spin::Mutex;
use xenstore::Xenstore;
use xshim_shim::layout;
use xshim_shim::suspend::{suspend_and_resume, Outcome, SuspendSteps};
use xshim_shim::xen::abi::{event_channel::VIRQ_TIMER, hvm_params as hp, memory, sched::ShutdownReason};
use xshim_shim::xen::xenstore_wire::XsError;

#[repr(C, align(4096))]
struct GrantFrame([u8; 4096]);
/// The grant table's first frame, placed here with XENMAPSPACE_grant_table.
static mut GRANT_FRAME: GrantFrame = GrantFrame([0; 4096]);

pub struct XenState {
    xenstore: Xenstore,
    timer_port: u32,
    console_port: u32,
    /// Suspends completed (either outcome), for the log.
    suspends: u64,
}

static XEN: Mutex<Option<XenState>> = Mutex::new(None);

fn gpfn_of<T>(p: *const T) -> u64 {
    p as u64 >> 12
}

fn param(index: u32, name: &str) -> u64 {
    hypercall::hvm_get_param(index).unwrap_or_else(|rc| crate::platform::crash(&format!("HVMOP_get_param({name}) failed: {rc}")))
}

/// shared_info into our physmap, then vCPU0's vcpu_info into our own area.
fn map_shared_info() {
    if let Err(rc) = hypercall::add_to_physmap(memory::XENMAPSPACE_SHARED_INFO, 0, events::shared_info_gpfn()) {
        crate::platform::crash(&format!("XENMEM_add_to_physmap(shared_info) failed: {rc}"));
    }
    events::set_shared_info_mapped();
    events::register_vcpu_info();
}

/// Grant table v1, frame 0 at GRANT_FRAME: PVH adds it to the physmap, PV maps the mfn
/// GNTTABOP_setup_table names.
fn map_grant_frame() -> Result<(), alloc::string::String> {
    if crate::platform::is_pv() {
        pv::map_grant_frame(&raw const GRANT_FRAME as u64).map(|_| ())
    } else {
        hypercall::add_to_physmap(memory::XENMAPSPACE_GRANT_TABLE, 0, gpfn_of(&raw const GRANT_FRAME)).map_err(|rc| format!("XENMEM_add_to_physmap(grant table) failed: {rc}"))
    }
}

fn set_callback_vector() {
    if let Err(rc) = hypercall::hvm_set_param(hp::HVM_PARAM_CALLBACK_IRQ, hp::callback_via_vector(layout::VECTOR_XEN_CALLBACK)) {
        crate::platform::crash(&format!("HVM_PARAM_CALLBACK_IRQ failed: {rc}"));
    }
}

/// Binds VIRQ_TIMER and reads the console and xenstore ports (PVH: HVM params; PV:
/// start_info, rewritten by the toolstack in a new domain); unmasks all three.
fn bind_ports() -> (u32, u32, u32) {
    let timer = hypercall::evtchn_bind_virq(VIRQ_TIMER, 0).unwrap_or_else(|rc| crate::platform::crash(&format!("EVTCHNOP_bind_virq(VIRQ_TIMER) failed: {rc}")));
    let (console, store) = if crate::platform::is_pv() {
        let si = pv::start_info();
        (si.console.evtchn, si.store_evtchn)
    } else {
        (param(hp::HVM_PARAM_CONSOLE_EVTCHN, "CONSOLE_EVTCHN") as u32, param(hp::HVM_PARAM_STORE_EVTCHN, "STORE_EVTCHN") as u32)
    };
    for port in [timer, console, store] {
        hypercall::evtchn_unmask(port);
    }
    (timer, console, store)
}

/// Where the console and xenstore ring pages are (both modes map RAM 1:1): PVH names their
/// pfns in HVM params, PV their mfns in start_info (found again through the m2p).
fn ring_addresses() -> (u64, u64) {
    if crate::platform::is_pv() {
        let si = pv::start_info();
        (pv::ring_va(si.console.mfn), pv::ring_va(si.store_mfn))
    } else {
        (param(hp::HVM_PARAM_CONSOLE_PFN, "CONSOLE_PFN") << 12, param(hp::HVM_PARAM_STORE_PFN, "STORE_PFN") << 12)
    }
}

/// The nodes libxl and other toolstacks look for before they ask us to suspend.
fn advertise_features(xs: &mut Xenstore) -> Result<(), XsError> {
    for f in ["control/feature-suspend", "control/feature-poweroff", "control/feature-reboot"] {
        xs.write(0, f, "1")?;
    }
    xs.watch("control/shutdown", "shutdown")
}

/// The part of bring-up both modes share, once shared_info and time work: the grant frame,
/// the ports, the console ring, and xenstore with the nodes and the watch that make the
/// guest saveable. Returns (timer, console, xenstore) ports and the ring addresses for the log.
fn connect() -> ((u32, u32, u32), (u64, u64)) {
    if let Err(e) = map_grant_frame() {
        log::warn!("grant table frame not mapped ({e}): grants unavailable");
    }
    let (timer_port, console_port, store_port) = bind_ports();
    let (console_addr, store_addr) = ring_addresses();
    // SAFETY: the console ring page the toolstack set up, mapped 1:1.
    console::attach_ring(unsafe { console_ring::ConsoleRing::new(console_addr, console_port) });
    if !crate::platform::is_pv() {
        set_callback_vector();
    }
    // SAFETY: the xenstore ring page the toolstack set up, mapped 1:1.
    let mut xenstore = unsafe { Xenstore::new(store_addr, store_port) };
    if let Err(e) = advertise_features(&mut xenstore) {
        log::error!("xenstore: cannot advertise features/watch control/shutdown: {e}; save/restore will not work");
    }
    *XEN.lock() = Some(XenState { xenstore, timer_port, console_port, suspends: 0 });
    ((timer_port, console_port, store_port), (console_addr, store_addr))
}

/// PVH bring-up: everything Xen-facing, before the payload is loaded.
pub fn init(cpuid_base: u32) {
    if hypercall::install_page(cpuid_base).is_err() {
        crate::platform::crash("Xen did not fill the hypercall page");
    }
    map_shared_info();
    clock::use_xen();
    let ((timer, console_port, store_port), (console_addr, store_addr)) = connect();
    let ver = hypercall::xen_version();
    log::info!(
        "Xen {}.{} PVH: shared_info at pfn {:#x}, console pfn {:#x} port {}, xenstore pfn {:#x} port {}, timer port {}",
        ver >> 16, ver & 0xffff, events::shared_info_gpfn(), console_addr >> 12, console_port, store_addr >> 12, store_port, timer
    );
}

/// PV bring-up after `pv::init` (start_info, shared_info, traps, page tables, time).
pub fn init_pv() {
    let ((timer, console_port, store_port), _) = connect();
    let si = pv::start_info();
    let ver = hypercall::xen_version();
    log::info!(
        "Xen {}.{} PV: {} pages, shared_info at maddr {:#x}, console mfn {:#x} port {}, xenstore mfn {:#x} port {}, timer port {}, start_info mfn {:#x}",
        ver >> 16, ver & 0xffff, si.nr_pages, si.shared_info, si.console.mfn, console_port, si.store_mfn, store_port, timer, pv::start_info_mfn().0
    );
}

/// PV idle, called with events masked: SCHEDOP_block unmasks them atomically and sleeps until
/// one is pending; Xen runs the event callback on the way back; then mask them again.
pub fn pv_idle() {
    hypercall::sched_block();
    events::pv_unmask_and_deliver();
    events::set_upcall_mask(true);
}

pub fn arm_timer(xen_time_ns: u64) {
    let rc = hypercall::set_singleshot_timer(xen_time_ns);
    if rc != 0 {
        log::warn!("VCPUOP_set_singleshot_timer({xen_time_ns}) failed: {rc}");
    }
}

/// The event upcall: drain ports; xenstore traffic may carry a shutdown request.
pub fn on_upcall() {
    let mut guard = XEN.lock();
    let Some(st) = guard.as_mut() else {
        events::drain_pending(|_| {});
        return;
    };
    let mut xenstore_event = false;
    let store_port = st.xenstore.port;
    events::drain_pending(|port| xenstore_event |= port == store_port);
    if xenstore_event {
        st.xenstore.poll_watches();
    }
    while let Some((path, token)) = st.xenstore.watch_events.pop_front() {
        if token == "shutdown" {
            handle_shutdown_request(st);
        } else {
            log::debug!("xenstore: watch event {path} ({token}) ignored");
        }
    }
}

/// Reads and acknowledges `control/shutdown` in a transaction, as libxl expects.
fn take_shutdown_request(xs: &mut Xenstore) -> Result<alloc::string::String, XsError> {
    loop {
        let tx = xs.transaction_start()?;
        let req = match xs.read(tx, "control/shutdown") {
            Ok(r) => r,
            Err(XsError::Xenstore(e)) if e == "ENOENT" => alloc::string::String::new(),
            Err(e) => {
                let _ = xs.transaction_end(tx, false);
                return Err(e);
            }
        };
        if req.is_empty() {
            xs.transaction_end(tx, false)?;
            return Ok(req);
        }
        xs.write(tx, "control/shutdown", "")?;
        match xs.transaction_end(tx, true) {
            Ok(()) => return Ok(req),
            Err(XsError::Xenstore(e)) if e == "EAGAIN" => continue,
            Err(e) => return Err(e),
        }
    }
}

fn handle_shutdown_request(st: &mut XenState) {
    let t_request = clock::now_ns();
    let req = match take_shutdown_request(&mut st.xenstore) {
        Ok(r) => r,
        Err(e) => {
            log::error!("control/shutdown: cannot read the request: {e}");
            return;
        }
    };
    match req.as_str() {
        "" => {}
        "poweroff" | "halt" => {
            log::info!("control/shutdown: {req}");
            exit(Exit::Poweroff(0));
        }
        "reboot" => {
            log::info!("control/shutdown: reboot");
            exit(Exit::Reboot);
        }
        "suspend" => {
            log::info!("control/shutdown: suspend (generation {})", services::generation());
            let mut steps = XenSuspend { st, pv: crate::platform::is_pv(), t_request, t_hypercall: 0, t_return: 0, mono_at_suspend: 0 };
            let outcome = suspend_and_resume(&mut steps);
            let st = steps.st;
            st.suspends += 1;
            log::info!(
                "resumed: {:?}, generation {}, suspends {}",
                outcome, services::generation(), st.suspends
            );
        }
        other => log::warn!("control/shutdown: unknown request \"{other}\" ignored"),
    }
}

/// The PVH and PV steps of the suspend/resume sequence. PVH is auto-translated: Xen keeps
/// our physmap and only shared_info and the grant frame must be added again. PV owns machine
/// frames: frames that are not ours are unmapped first, start_info's frames are turned into
/// pfns for the toolstack, and in the new domain every mfn (shared_info, rings, the p2m
/// frames) is looked up again (Linux's xen_pre_suspend / xen_post_suspend).
struct XenSuspend<'a> {
    st: &'a mut XenState,
    pv: bool,
    t_request: u64,
    t_hypercall: u64,
    t_return: u64,
    mono_at_suspend: u64,
}

impl SuspendSteps for XenSuspend<'_> {
    fn quiesce(&mut self) {
        // We run in the event handler with events masked: the payload is frozen where it was.
        // Keeping them masked stops Xen from delivering anything while we suspend.
        events::set_upcall_mask(true);
    }
    fn console_flush(&mut self) {
        let left = console::with_ring(|r| r.flush(5_000_000_000)).unwrap_or(0);
        if left != 0 {
            crate::console::debug_port_write(format_args!("xshim: console backend left {left} bytes unread before suspend"));
        }
    }
    fn xenstore_suspend(&mut self) {
        // Requests are synchronous: none is in flight here. Pick up anything already queued.
        self.st.xenstore.poll_watches();
    }
    fn gnttab_suspend(&mut self) {
        // PVH: the grant frame is in our physmap and goes with it. PV: it is Xen's frame,
        // mapped in our page tables: unmap it before the toolstack reads them.
        if self.pv {
            pv::unmap_grant_frame(&raw const GRANT_FRAME as u64);
        }
    }
    fn time_suspend(&mut self) {
        self.mono_at_suspend = clock::now_ns();
    }
    fn arch_pre_suspend(&mut self) {
        // PV: our only top-level page table is the one the domain builder pinned, and every
        // L1 we added hangs below it, so every page table is pinned or reachable from a
        // pinned one: the toolstack canonicalises them all. Rings as pfns; shared_info out.
        if self.pv {
            pv::canonicalise_start_info();
            pv::unmap_shared_info();
        }
        self.t_hypercall = clock::now_ns();
    }
    fn hypercall_suspend(&mut self) -> i64 {
        // Nothing may read shared_info between here and arch_post_suspend: in a new domain
        // its frame is not mapped until we map it again.
        let record = if self.pv { pv::start_info_mfn().0 } else { 0 };
        hypercall::sched_shutdown(ShutdownReason::Suspend, record)
    }
    fn arch_post_suspend(&mut self, outcome: Outcome) {
        if self.pv {
            match outcome {
                // start_info now names the new domain's shared_info and rings.
                Outcome::NewDomain => pv::attach_to_domain(),
                Outcome::Cancelled => {
                    pv::uncanonicalise_start_info();
                    pv::map_shared_info(pv::start_info().shared_info);
                }
            }
        } else {
            if outcome == Outcome::NewDomain {
                map_shared_info();
            }
            set_callback_vector();
        }
    }
    fn time_resume(&mut self, _outcome: Outcome) {
        // Either way the guest stood still (saved, or paused while checkpointed): the
        // payload's clock continues from where it stopped instead of jumping ahead.
        clock::rebase_on_xen(self.mono_at_suspend);
        self.t_return = clock::now_ns();
    }
    fn gnttab_resume(&mut self, outcome: Outcome) {
        if outcome == Outcome::NewDomain || self.pv {
            if let Err(e) = map_grant_frame() {
                log::warn!("grant table frame not re-mapped after resume ({e})");
            }
        }
    }
    fn events_resume(&mut self) {
        let (timer, console_port, store) = bind_ports();
        self.st.timer_port = timer;
        self.st.console_port = console_port;
        self.st.xenstore.port = store;
    }
    fn console_resume(&mut self, outcome: Outcome) {
        if outcome == Outcome::NewDomain {
            let (console_addr, _) = ring_addresses();
            // SAFETY: the new domain's console ring page, mapped 1:1.
            console::attach_ring(unsafe { console_ring::ConsoleRing::new(console_addr, self.st.console_port) });
        }
    }
    fn xenstore_resume(&mut self, outcome: Outcome) {
        if outcome == Outcome::NewDomain {
            let port = self.st.xenstore.port;
            let (_, store_addr) = ring_addresses();
            // SAFETY: the new domain's xenstore ring page, mapped 1:1.
            self.st.xenstore = unsafe { Xenstore::new(store_addr, port) };
            self.st.xenstore.reconnect(port);
            if let Err(e) = advertise_features(&mut self.st.xenstore) {
                log::error!("xenstore: re-registering after resume failed: {e}");
            }
        }
    }
    fn payload_resume(&mut self, outcome: Outcome) {
        if outcome == Outcome::NewDomain {
            services::note_resumed();
        }
        // PVH: unmask (delivery itself is still off: we are in the interrupt handler, and
        // its iretq restores the payload's IF). PV: HYPERVISOR_iret restores the mask from
        // the saved rflags.IF when the event callback returns.
        if !self.pv {
            events::set_upcall_mask(false);
        }
        let now = clock::now_ns();
        log::debug!(
            "suspend timing: request->hypercall {} us, hypercall->payload {} us ({:?})",
            (self.t_hypercall - self.t_request) / 1000,
            now.saturating_sub(self.t_return) / 1000,
            outcome
        );
    }
}

pub fn exit(how: Exit) -> ! {
    let reason = match how {
        Exit::Poweroff(_) => ShutdownReason::Poweroff,
        Exit::Reboot => ShutdownReason::Reboot,
        Exit::Crash => ShutdownReason::Crash,
    };
    if let Exit::Poweroff(code) = how {
        log::info!("poweroff (payload code {code})");
    }
    // Let the backend drain the console so the last lines are not lost.
    crate::console::flush_ring(2_000_000_000);
    hypercall::sched_shutdown(reason, 0);
    crate::arch::halt_forever()
}
