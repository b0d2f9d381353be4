//! What PVH and PV share as Xen guests: the Xen state (xenstore client, ports), the bring-up
//! both finish with (grant frame, ports, console ring, xenstore feature nodes and watch), the
//! event upcall (which hands `control/shutdown` requests up to the kernel), the suspend
//! sequence with each mode's steps, the timer, and the way out. The mode-specific pieces are
//! `xshim_shim::xen::{pvh, pv}` and this module's siblings.
use super::block::{self, Disk};
use super::net::{self, Nic};
use super::{Exit, Platform};
use crate::console;
use crate::hw::xen::console_ring::ConsoleRing;
use crate::hw::xen::grant_table::{self, Translation};
use crate::hw::xen::hypercall::{self, XenHypercalls};
use crate::hw::xen::pv_mm::PvMem;
use crate::hw::xen::ring_page;
use crate::hw::xen::shared_info;
use crate::hw::xen::xenstore::Xenstore;
use crate::hw::{cpu, EventsOff};
use crate::hw::smp::{self, MAX_VCPUS};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;
use xshim_shim::layout::timeouts::CONSOLE_EXIT_FLUSH_NS;
use xshim_shim::suspend::{suspend_and_resume, Outcome, PvSteps, PvhSteps, StepsCommon, SuspendError};
use xshim_shim::xen::abi::sched::ShutdownReason;
use xshim_shim::xen::control::{self, Request, FEATURE_NODES, MEMORY_TARGET_NODE, MEMORY_TARGET_WATCH_TOKEN, SHUTDOWN_NODE, SHUTDOWN_WATCH_TOKEN, SUSPEND_EVTCHN_NODE};
use xshim_shim::xen::frames::EvtchnPort;
use xshim_shim::xen::guest::{GuestEnv, PlatformError, RingPage, XenPorts};
use xshim_shim::xen::hypercalls::Hypercalls;
use xshim_shim::xen::xenstore_wire::XsError;
use xshim_shim::xen::{pv, pvh};

pub struct XenState {
    xenstore: Xenstore,
    ports: XenPorts,
    /// The disks (`platform::block`).
    disks: alloc::vec::Vec<Disk>,
    /// The network interfaces (`platform::net`).
    nics: alloc::vec::Vec<Nic>,
    /// The suspend event channel, when published (`publish_suspend_port`).
    suspend_port: Option<EvtchnPort>,
    /// Suspends completed (either outcome), for the log.
    pub suspends: u64,
}

static XEN: Mutex<Option<XenState>> = Mutex::new(None);
/// Console bytes taken back out of the ring for the suspend (`console_take_back`).
static CONSOLE_TAKEN_BACK: Mutex<alloc::vec::Vec<u8>> = Mutex::new(alloc::vec::Vec::new());

/// The nodes libxl and other toolstacks look for before they ask us to suspend, and the
/// watch that brings their requests.
fn advertise_features(xs: &mut Xenstore) -> Result<(), XsError> {
    // Posted, not waited for: in a new domain this is on the resume path, where a busy
    // dom0's xenstored took ~20 ms a round trip; an error is logged when its reply comes.
    for f in FEATURE_NODES {
        xs.post_write(f, "1", "writing a control/feature-* node failed: the toolstack may not ask for that")?;
    }
    // The memory target: the watch fires once at once, which reads it.
    xs.post_watch(MEMORY_TARGET_NODE, MEMORY_TARGET_WATCH_TOKEN, "cannot watch memory/target")?;
    // The suspend request: the watch fires once at once, so a request written before it
    // was set is seen too.
    xs.post_watch(SHUTDOWN_NODE, SHUTDOWN_WATCH_TOKEN, "cannot watch control/shutdown: save/restore and xl shutdown will not work")
}

/// `memory/target` changed (or its watch was set): note it, and say how it compares with
/// what the payload uses. The shim cannot make the payload use less (it has no swap): a
/// target below what is populated is only reported, and the next populate past Xen's
/// ceiling ends in a clean out-of-memory crash.
fn memory_target_changed(xs: &mut Xenstore) {
    let value = match xs.read(0, MEMORY_TARGET_NODE) {
        Ok(v) => v,
        Err(e) => {
            log::warn!("{MEMORY_TARGET_NODE}: cannot read it: {e}");
            return;
        }
    };
    let Ok(kib) = value.trim().parse::<u64>() else {
        log::warn!("{MEMORY_TARGET_NODE}: \"{value}\" is not a number of KiB; ignored");
        return;
    };
    let before = super::memory::target_kib();
    super::memory::set_target_kib(kib);
    if before != kib {
        let held = XenHypercalls.reservation_pages(false).map_or(0, |p| p * 4);
        let populated = super::memory::demand().map_or(0, |m| m.populated_bytes() >> 10);
        let level = if held > kib { log::Level::Warn } else { log::Level::Info };
        log::log!(level, "{MEMORY_TARGET_NODE}: {kib} KiB; the domain holds {held} KiB (the payload's populated memory {populated} KiB){}", if held > kib { ": above the target, which the shim cannot shrink; more will not be populated" } else { "" });
    }
}

/// `xshim.suspend_evtchn=1`: publish the suspend event channel (below). Off by default:
/// with it, two `xl save` of one guest at once can lose the guest — xl's loser fails at once
/// (at the event channel's lock) and its error path resumes the domain the winner has just
/// suspended, so the winner saves memory while the guest runs and still reports success
/// (measured in the lab, PVH: the restored guest never ran again). With `control/shutdown`
/// the loser fails without resuming it. The gain is small: the request reaches the guest in
/// 2-3 ms instead of 12-30 ms, of a migration downtime of about 2.7 s in the lab.
static SUSPEND_EVTCHN: AtomicBool = AtomicBool::new(false);

/// The Xen-wide options from the command line (the devices' own: `block::set_options`).
pub fn set_options(opts: &[&str]) {
    if opts.contains(&"xshim.suspend_evtchn=1") {
        SUSPEND_EVTCHN.store(true, Ordering::Relaxed);
    }
    if let Some(n) = opts.iter().find_map(|o| o.strip_prefix("xshim.grant_reserve=")).and_then(|v| v.parse::<u32>().ok()) {
        grant_table::hold_back(n);
    }
}

/// A port of ours for dom0 to bind, published at `device/suspend/event-channel`: libxl then
/// asks for a suspend by signalling it, without the xenstore round trips of
/// `control/shutdown` (both stay supported: other toolstacks write the node). At boot and in
/// every new domain (ports do not survive a migration); a checkpoint keeps it. None when the
/// toolstack made no such node (the write is refused), which is not an error, or when not
/// asked for (`SUSPEND_EVTCHN`).
fn publish_suspend_port(xs: &mut Xenstore) -> Option<EvtchnPort> {
    if !SUSPEND_EVTCHN.load(Ordering::Relaxed) {
        return None;
    }
    let port = match ring_page::alloc_port(0) {
        Ok(p) => EvtchnPort::new(p),
        Err(e) => {
            log::warn!("suspend event channel: {e}; suspends come through {SHUTDOWN_NODE} only");
            return None;
        }
    };
    match xs.write(0, SUSPEND_EVTCHN_NODE, &alloc::format!("{}", port.raw())) {
        Ok(()) => {
            log::debug!("suspend event channel: port {} published at {SUSPEND_EVTCHN_NODE}", port.raw());
            Some(port)
        }
        Err(e) => {
            log::info!("suspend event channel not published ({SUSPEND_EVTCHN_NODE}: {e}); suspends come through {SHUTDOWN_NODE}");
            None
        }
    }
}

fn attach_console(events: &EventsOff, ring: RingPage) {
    // SAFETY: the console ring page the toolstack set up, mapped 1:1 (both modes).
    console::attach_ring(events, unsafe { ConsoleRing::new(ring.addr, ring.port) });
}

/// The shim's drivers as the suspend steps and bring-up see them (at boot, before the Xen
/// state exists, without a xenstore client).
pub struct Env<'a> {
    events: &'a EventsOff,
    xenstore: Option<&'a mut Xenstore>,
    /// The split devices (none at boot, before they are connected).
    disks: Option<&'a mut alloc::vec::Vec<Disk>>,
    nics: Option<&'a mut alloc::vec::Vec<Nic>>,
    /// The suspend event channel (re-published by xenstore_attach in a new domain).
    suspend_port: Option<&'a mut Option<EvtchnPort>>,
    /// Set by xenstore_attach at boot, where there is no client yet.
    new_xenstore: Option<Xenstore>,
}

impl<'a> Env<'a> {
    pub fn boot(events: &'a EventsOff) -> Env<'a> {
        Env { events, xenstore: None, disks: None, nics: None, suspend_port: None, new_xenstore: None }
    }
}

impl GuestEnv for Env<'_> {
    fn set_events_masked(&mut self, masked: bool) {
        shared_info::set_upcall_mask(masked);
    }
    fn now_ns(&mut self) -> u64 {
        crate::clock::now_ns()
    }
    fn clock_rebase(&mut self, mono: u64) {
        crate::clock::rebase_on_xen(mono);
    }
    fn console_flush(&mut self, timeout_ns: u64) -> u32 {
        console::with_ring(self.events, |r| r.flush(timeout_ns)).unwrap_or(0)
    }
    fn console_attach(&mut self, ring: RingPage) {
        attach_console(self.events, ring);
    }
    fn console_take_back(&mut self) -> usize {
        let taken = console::with_ring(self.events, |r| r.take_back_unread()).unwrap_or_default();
        let n = taken.len();
        *CONSOLE_TAKEN_BACK.lock() = taken;
        n
    }
    fn console_give_back(&mut self) -> usize {
        let taken = core::mem::take(&mut *CONSOLE_TAKEN_BACK.lock());
        console::with_ring(self.events, |r| r.write_all(&taken)).map_or(0, |()| taken.len())
    }
    fn xenstore_quiesce(&mut self) {
        if let Some(xs) = self.xenstore.as_deref_mut() {
            xs.poll_watches();
        }
    }
    fn xenstore_attach(&mut self, ring: RingPage) -> Result<(), XsError> {
        // SAFETY: the xenstore ring page the toolstack set up, mapped 1:1.
        let mut xs = unsafe { Xenstore::new(ring.addr, ring.port) };
        xs.reconnect(ring.port);
        let r = advertise_features(&mut xs);
        // In a new domain (at boot `connect` publishes it once the state exists).
        if let Some(port) = self.suspend_port.as_deref_mut() {
            *port = publish_suspend_port(&mut xs);
        }
        match self.xenstore.as_deref_mut() {
            Some(old) => *old = xs,
            None => self.new_xenstore = Some(xs),
        }
        r
    }
    fn set_shared_info_mapped(&mut self, mapped: bool) {
        shared_info::set_shared_info_mapped(mapped);
    }
    fn set_vcpu_info_registered(&mut self, registered: bool) {
        shared_info::set_vcpu_info_registered(registered);
    }
    fn grant_frames(&self) -> u32 {
        grant_table::frames()
    }
    fn devices_suspend(&mut self) {
        // Disks: requests in flight are waited for (bounded). Network: nothing; frames in
        // flight may be lost (at most once).
        if let Some(disks) = self.disks.as_deref_mut() {
            block::suspend(disks);
        }
    }
    fn memory_resume(&mut self) {
        super::memory::resume_in_new_domain();
    }
    fn vcpus_stop(&mut self) -> Result<usize, PlatformError> {
        crate::vcpus::stop_others(kick).map_err(PlatformError::VcpuDidNotStop)
    }
    fn vcpus_resume(&mut self, new_domain: bool) -> Result<(), PlatformError> {
        let n = crate::vcpus::count();
        if new_domain && n > 1 {
            // The old domain's numbers mean nothing here (and may name new ports of vCPU 0).
            for (ipi, timer) in IPI_PORT.iter().zip(&SECONDARY_TIMER_PORT) {
                ipi.store(0, Ordering::Relaxed);
                timer.store(0, Ordering::Relaxed);
            }
            for v in 0..n {
                bind_vcpu_ports(v)?;
            }
        }
        crate::vcpus::release_others();
        Ok(())
    }
    fn devices_resume(&mut self, new_domain: bool) {
        log::debug!("devices: resuming ({})", if new_domain { "new domain" } else { "cancelled" });
        if new_domain {
            // A new domain's grant table is empty: every device grants anew.
            grant_table::reset();
            log::debug!("{} again", grant_table::describe());
        }
        let disks = self.disks.as_deref_mut().is_some_and(|d| block::resume(d, new_domain));
        let nics = self.nics.as_deref_mut().is_some_and(|n| net::resume(n, new_domain));
        DEVICES_CONNECTING.store(disks || nics, Ordering::Relaxed);
        // The first look comes at the payload's first WAIT or device call.
        DEVICE_WATCH_FIRED.store(true, Ordering::Relaxed);
    }
}

/// The part of bring-up both modes share, once shared_info and time work: the grant frame,
/// the ports, the console ring, and xenstore with the nodes and the watch that make the
/// guest saveable. Returns the ports and the ring pages, for the boot log.
pub fn connect(platform: Platform, events: &EventsOff) -> Result<(XenPorts, RingPage, RingPage), PlatformError> {
    let hc = &mut XenHypercalls;
    let pages = shared_info::pages();
    let (ports, (console_ring, store_ring)) = match platform {
        Platform::Pvh => {
            match pvh::map_grant_frames(hc, &pages, 0, 1) {
                Ok(()) => grant_table::init(Translation::Gfn),
                Err(e) => log::warn!("grant table frame not mapped ({e}): grants unavailable"),
            }
            let ports = pvh::bind_ports(hc)?;
            let rings = pvh::rings(hc, &ports)?;
            pvh::set_callback_vector(hc)?;
            (ports, rings)
        }
        Platform::Pv => {
            match pv::map_grant_frames(hc, &pages, 1) {
                Ok(()) => grant_table::init(Translation::Mfn),
                Err(e) => log::warn!("grant table frame not mapped ({e}): grants unavailable"),
            }
            let ports = pv::bind_ports(hc, &PvMem)?;
            (ports, pv::rings(&PvMem, &ports))
        }
        Platform::Native => unreachable!("connect() is for Xen guests"),
    };
    attach_console(events, console_ring);
    let mut env = Env::boot(events);
    if let Err(e) = env.xenstore_attach(store_ring) {
        log::error!("xenstore: cannot advertise features/watch {SHUTDOWN_NODE}: {e}; save/restore will not work");
    }
    let mut xenstore = env.new_xenstore.take().expect("xenstore_attach made the client");
    let suspend_port = publish_suspend_port(&mut xenstore);
    log::info!("{}", grant_table::describe());
    let disks = block::connect_all(&mut xenstore);
    let nics = net::connect_all(&mut xenstore);
    *XEN.lock() = Some(XenState { xenstore, ports, disks, nics, suspend_port, suspends: 0 });
    Ok((ports, console_ring, store_ring))
}

/// Bytes of RAM the devices would take, set aside once the payload is placed (`give_ram`).
pub fn ram_wanted() -> u64 {
    XEN.lock().as_ref().map_or(0, |st| block::ram_wanted(&st.disks))
}

/// The RAM `ram_wanted` asked for, at `base` (page-aligned, mapped, never the payload's).
pub fn give_ram(base: u64) {
    if let Some(st) = XEN.lock().as_mut() {
        block::add_ram_pages(&mut st.disks, base);
    }
}

/// PV idle, called with events masked: SCHEDOP_block unmasks them atomically and sleeps until
/// one is pending; Xen runs the event callback on the way back; then mask them again.
pub fn pv_idle() {
    hypercall::sched_block();
    shared_info::pv_unmask_and_deliver();
    shared_info::set_upcall_mask(true);
}

/// The Xen time each vCPU's single-shot timer is armed for (0: not armed). WAIT arms the
/// same deadline again after every event that wakes it (a frame, a console byte), and each
/// arming is a hypercall: skipped while that deadline is still armed. Cleared when the
/// timer's port fires and after every suspend (a new domain has no timer).
static TIMER_ARMED_AT: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

pub fn arm_timer(xen_time_ns: u64) {
    let armed = &TIMER_ARMED_AT[smp::current()];
    if xen_time_ns != 0 && armed.load(Ordering::Relaxed) == xen_time_ns {
        return;
    }
    match XenHypercalls.set_singleshot_timer(xen_time_ns) {
        Ok(()) => armed.store(xen_time_ns, Ordering::Relaxed),
        Err(e) => log::warn!("VCPUOP_set_singleshot_timer({xen_time_ns}) failed: {e}"),
    }
}

/// Each vCPU's IPI port (WAKE, VCPU_START, the stop for a suspend) and each secondary's
/// timer port (vCPU 0's is `XenPorts::timer`); 0: none (bound only with secondaries up).
static IPI_PORT: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
static SECONDARY_TIMER_PORT: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];

/// A port bound to vCPU `v` by the shim (its IPI, a secondary's timer).
fn is_port_of(v: usize, port: EvtchnPort) -> bool {
    let p = port.raw();
    p != 0 && (IPI_PORT[v].load(Ordering::Relaxed) == p || SECONDARY_TIMER_PORT[v].load(Ordering::Relaxed) == p)
}

/// Everything not bound to a secondary is vCPU 0's (Xen binds new ports to vCPU 0).
fn is_vcpu0_port(port: EvtchnPort) -> bool {
    !(1..MAX_VCPUS).any(|v| is_port_of(v, port))
}

/// Binds vCPU `v`'s IPI and, for a secondary, its VIRQ_TIMER; unmasks them. At boot and
/// in every new domain (ports do not survive a migration).
fn bind_vcpu_ports(v: usize) -> Result<(), xshim_shim::xen::errno::XenError> {
    use xshim_shim::xen::errno::XenResultExt;
    let hc = &mut XenHypercalls;
    let ipi = hypercall::evtchn_bind_ipi(v).op("EVTCHNOP_bind_ipi")?;
    hc.evtchn_unmask(ipi).op("EVTCHNOP_unmask")?;
    IPI_PORT[v].store(ipi.raw(), Ordering::Relaxed);
    if v != 0 {
        let timer = hc.evtchn_bind_virq(xshim_shim::xen::abi::event_channel::VIRQ_TIMER, v as u32).op("EVTCHNOP_bind_virq(VIRQ_TIMER)")?;
        hc.evtchn_unmask(timer).op("EVTCHNOP_unmask")?;
        SECONDARY_TIMER_PORT[v].store(timer.raw(), Ordering::Relaxed);
        // Its single-shot timer is all it needs (a PV vCPU starts with a 100 Hz one).
        hypercall::vcpu_stop_periodic_timer(v).op("VCPUOP_stop_periodic_timer")?;
    }
    Ok(())
}

/// Sends vCPU `v` its IPI: its upcall runs (and it parks if asked), its sleep ends.
pub fn kick(v: usize) {
    let port = IPI_PORT[v].load(Ordering::Relaxed);
    if port != 0 {
        if let Err(e) = XenHypercalls.evtchn_send(EvtchnPort::new(port)) {
            log::warn!("EVTCHNOP_send to vCPU {v}'s IPI port {port} failed: {e}");
        }
    }
}

/// The vCPUs this domain has (`vcpus=` in xl; at most MAX_VCPUS), whether up or not.
pub fn vcpus_available() -> usize {
    (1..MAX_VCPUS).take_while(|&v| hypercall::vcpu_is_up(v).is_some()).count() + 1
}

/// How long vCPU 0 waits for a secondary it started to reach its loop.
const SECONDARY_ONLINE_TIMEOUT_NS: u64 = 5_000_000_000;

/// Starts vCPUs 1 .. `n` on their stacks (`smp::set_secondary_stacks` done) on the shim's
/// page tables (PVH: in 64-bit mode with vCPU 0's control registers; PV: in guest kernel
/// mode with vCPU 0's trap table, callbacks and page tables), each with its own timer and
/// IPI ports. Returns how many vCPUs run in all; one that cannot be started is reported and
/// the count stops before it.
pub fn start_secondaries(platform: Platform, n: usize) -> usize {
    if let Err(e) = bind_vcpu_ports(0) {
        log::warn!("vCPU 0: no IPI port ({e}): the payload gets one vCPU");
        return 1;
    }
    let mut started = 1;
    for v in 1..n {
        if let Err(e) = bind_vcpu_ports(v) {
            log::warn!("vCPU {v}: cannot bind its ports ({e}): the payload gets {started} vCPU(s)");
            break;
        }
        if let Err(e) = start_secondary(platform, v) {
            log::warn!("vCPU {v}: cannot start it ({e}): the payload gets {started} vCPU(s)");
            break;
        }
        started += 1;
    }
    let online = crate::vcpus::wait_online(started, SECONDARY_ONLINE_TIMEOUT_NS);
    if online < started {
        log::warn!("vCPU {online} did not come up: the payload gets {online} vCPU(s)");
    }
    online
}

/// VCPUOP_initialise and VCPUOP_up for secondary `v`: at entry.S's secondary_start64 on its
/// own stack (set aside for it, mapped, used by nothing else).
fn start_secondary(platform: Platform, v: usize) -> Result<(), PlatformError> {
    use xshim_shim::xen::abi::hvm_vcpu::{VcpuHvmContext, VcpuHvmRegs, VcpuHvmX86_64, VCPU_HVM_MODE_64B};
    use xshim_shim::xen::errno::XenResultExt;
    let stack_top = smp::secondary_stacks(v).entry_top;
    match platform {
        Platform::Pvh => {
            let (cr0, cr3, cr4, efer) = smp::control_registers();
            let x86_64 = VcpuHvmX86_64 { rsp: stack_top, rdi: v as u64, rip: smp::secondary_entry(), rflags: 2, cr0, cr3, cr4, efer, ..Default::default() };
            let ctx = VcpuHvmContext { mode: VCPU_HVM_MODE_64B, pad: 0, cpu_regs: VcpuHvmRegs { x86_64, x86_32_tail: [0; 8] } };
            // SAFETY: the shim's entry and the vCPU's own stack, with vCPU 0's page tables
            // and modes.
            unsafe { hypercall::vcpu_start(v, &ctx) }.op("VCPUOP_initialise/up")?;
        }
        Platform::Pv => {
            let ctx = super::pv::secondary_context(v, smp::secondary_entry(), stack_top)?;
            // SAFETY: as above, with vCPU 0's pinned page tables, trap table and callbacks.
            unsafe { hypercall::vcpu_start(v, &*ctx) }.op("VCPUOP_initialise/up")?;
        }
        Platform::Native => unreachable!("no secondaries without Xen"),
    }
    Ok(())
}

/// A secondary's upcall: its timer or its IPI. Nothing else is bound to it.
pub fn secondary_upcall(me: usize) {
    let timer = SECONDARY_TIMER_PORT[me].load(Ordering::Relaxed);
    let mut timer_fired = false;
    shared_info::drain_pending(|p| is_port_of(me, p), |p| timer_fired |= p.raw() == timer);
    if timer_fired {
        TIMER_ARMED_AT[me].store(0, Ordering::Relaxed);
    }
}

/// What an upcall brought for the kernel to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// A `control/shutdown` request (read and acknowledged).
    Control(Request),
    /// The suspend event channel fired: a suspend, no acknowledgement expected.
    SuspendEvent,
}

/// The event upcall: drains the ports. The suspend event channel asks for a suspend;
/// xenstore traffic may carry a `control/shutdown` request, which is read, acknowledged and
/// returned. `_events`: the Xen state's lock is only taken with event delivery off.
pub fn on_upcall(_events: &EventsOff) -> Option<Asked> {
    let mut guard = XEN.lock();
    let Some(st) = guard.as_mut() else {
        shared_info::drain_pending(is_vcpu0_port, |_| {});
        return None;
    };
    let (mut xenstore_event, mut suspend_event, mut timer_event, mut other_event) = (false, false, false, false);
    let (store_port, suspend_port, timer_port) = (st.xenstore.port, st.suspend_port, st.ports.timer);
    shared_info::drain_pending(is_vcpu0_port, |port| {
        xenstore_event |= port == store_port;
        suspend_event |= Some(port) == suspend_port;
        timer_event |= port == timer_port;
        other_event |= port != store_port && port != timer_port;
    });
    // A device's event (its ports are vCPU 0's): the secondaries asleep in a disk call look
    // at their rings now rather than at their next poll.
    if other_event {
        for v in crate::vcpus::device_waiters() {
            kick(v);
        }
    }
    if timer_event {
        TIMER_ARMED_AT[0].store(0, Ordering::Relaxed);
    }
    if suspend_event {
        // Watch events wait for the next upcall (the resume path polls xenstore anyway).
        return Some(Asked::SuspendEvent);
    }
    if xenstore_event {
        st.xenstore.poll_watches();
    }
    let mut request = None;
    while let Some((path, token)) = st.xenstore.watch_events.pop_front() {
        if token == MEMORY_TARGET_WATCH_TOKEN {
            memory_target_changed(&mut st.xenstore);
            continue;
        }
        if token.starts_with(super::devices::CONNECT_WATCH_PREFIX) {
            // A backend's state changed: the connection moves on at vCPU 0's next WAIT or
            // device call (not here: its xenstore round trips would hold the payload up).
            DEVICE_WATCH_FIRED.store(true, Ordering::Relaxed);
            continue;
        }
        if token != SHUTDOWN_WATCH_TOKEN {
            log::debug!("xenstore: watch event {path} ({token}) ignored");
            continue;
        }
        match control::take_request(&mut st.xenstore) {
            Ok(Request::Nothing) => {}
            Ok(r) => request = Some(Asked::Control(r)),
            Err(e) => log::error!("{SHUTDOWN_NODE}: cannot read the request: {e}"),
        }
    }
    request
}

/// Devices connect in the background in a new domain (`Env::devices_resume`) until this is
/// false again.
static DEVICES_CONNECTING: AtomicBool = AtomicBool::new(false);
/// A backend's state changed since the connections last moved on (their watch fired).
static DEVICE_WATCH_FIRED: AtomicBool = AtomicBool::new(false);
/// When the connections last moved on (Xen time), for `DEVICE_POLL_NS`.
static DEVICES_LOOKED_AT: AtomicU64 = AtomicU64::new(0);
/// How often the connections are looked at without a watch event (a busy dom0 may be slow to
/// deliver one; a watch may be refused).
pub const DEVICE_POLL_NS: u64 = 20_000_000;

/// Whether devices are connecting in the background.
pub fn devices_connecting() -> bool {
    DEVICES_CONNECTING.load(Ordering::Relaxed)
}

/// Moves the devices' background connections on (in WAIT and in the devices' calls, where
/// the payload waits anyway): when a watch fired, else at most every `DEVICE_POLL_NS`.
pub fn devices_advance() {
    if !devices_connecting() {
        return;
    }
    let now = crate::hw::xen::time::xen_system_time();
    if !DEVICE_WATCH_FIRED.swap(false, Ordering::Relaxed) && now.saturating_sub(DEVICES_LOOKED_AT.load(Ordering::Relaxed)) < DEVICE_POLL_NS {
        return;
    }
    DEVICES_LOOKED_AT.store(now, Ordering::Relaxed);
    let mut guard = XEN.lock();
    let Some(st) = guard.as_mut() else { return };
    let disks_connecting = st.disks.iter().any(Disk::connecting);
    let still = block::advance(&mut st.xenstore, &mut st.disks) | net::advance(&mut st.xenstore, &mut st.nics);
    DEVICES_CONNECTING.store(still, Ordering::Relaxed);
    // A disk that connected now: the secondaries asleep in its calls look at it.
    if disks_connecting && !st.disks.iter().any(Disk::connecting) {
        for v in crate::vcpus::device_waiters() {
            kick(v);
        }
    }
    // A secondary's xenstore traffic may have read watch events meant for vCPU 0's upcall
    // (a suspend request among them): vCPU 0 looks at them now.
    if smp::current() != 0 && !st.xenstore.watch_events.is_empty() {
        kick(0);
    }
}

/// Runs the suspend sequence with this mode's steps (from the event handler, events off).
pub fn suspend(platform: Platform, events: &EventsOff, t_request: u64) -> Result<(Outcome, u64), SuspendError> {
    let mut guard = XEN.lock();
    let st = guard.as_mut().expect("suspend requested through xenstore, so Xen state exists");
    let XenState { xenstore, ports, disks, nics, suspend_port, suspends } = st;
    let mut hc = XenHypercalls;
    let mut env = Env { events, xenstore: Some(xenstore), disks: Some(disks), nics: Some(nics), suspend_port: Some(suspend_port), new_xenstore: None };
    let common = StepsCommon::new(&mut hc, &mut env, shared_info::pages(), ports, t_request);
    let outcome = match platform {
        Platform::Pvh => suspend_and_resume(&mut PvhSteps(common)),
        Platform::Pv => suspend_and_resume(&mut PvSteps::new(common, &mut PvMem)),
        Platform::Native => unreachable!("no suspend without Xen"),
    }?;
    *suspends += 1;
    for armed in &TIMER_ARMED_AT {
        armed.store(0, Ordering::Relaxed);
    }
    Ok((outcome, *suspends))
}

pub fn exit(platform: Platform, how: Exit) -> ! {
    let reason = match how {
        Exit::Poweroff(_) => ShutdownReason::Poweroff,
        Exit::Reboot => ShutdownReason::Reboot,
        Exit::Crash => ShutdownReason::Crash,
    };
    // Tell the devices' backends we are going (a clean poweroff or reboot only, and only if
    // the lock is free: the exit path may come from anywhere).
    if matches!(how, Exit::Poweroff(_) | Exit::Reboot) {
        if let Some(mut guard) = XEN.try_lock() {
            if let Some(st) = guard.as_mut() {
                block::close_all(&mut st.xenstore, &mut st.disks);
                net::close_all(&mut st.xenstore, &mut st.nics);
            }
        }
    }
    // Let the backend drain the console so the last lines are not lost. The exit path may
    // come from anywhere (a fault inside a console write): only if the lock is free.
    console::flush_ring(CONSOLE_EXIT_FLUSH_NS);
    XenHypercalls.sched_shutdown(reason, 0);
    match platform {
        Platform::Pv => cpu::spin_forever(),
        _ => cpu::halt_forever(),
    }
}

/// The payload's BLOCK_* calls, on the disks found at boot (none without Xen state).
pub mod disks {
    use super::{block, XEN};
    use xshim_payload::abi::{BlockInfo, Error};
    use xshim_shim::xen::blkfront::Transfer;

    pub fn info(dev: u64) -> Result<BlockInfo, Error> {
        XEN.lock().as_mut().map_or(Err(Error::NoDevice), |st| block::info(&mut st.disks, dev))
    }
    pub fn start(dev: u64, op: u8, offset: u64, len: usize) -> Result<Transfer, Error> {
        XEN.lock().as_mut().map_or(Err(Error::NoDevice), |st| block::start(&mut st.disks, dev, op, offset, len))
    }
    /// `Ok(None)`: not done yet; wait for an event and step again (without the lock held:
    /// a suspend may come meanwhile).
    pub fn step(dev: u64, t: &mut Transfer, buf: &mut [u8]) -> Result<Option<u64>, Error> {
        super::devices_advance();
        XEN.lock().as_mut().map_or(Err(Error::NoDevice), |st| block::step(&mut st.disks, dev, t, buf))
    }
    pub fn give_up(dev: u64, waited_ns: u64) {
        if let Some(st) = XEN.lock().as_mut() {
            block::give_up(&mut st.disks, dev, waited_ns);
        }
    }
}

/// The payload's NET_* calls, on the interfaces found at boot (none without Xen state).
pub mod nics {
    use super::{net, XEN};
    use xshim_payload::abi::{Error, NetInfo};

    pub fn info(dev: u64) -> Result<NetInfo, Error> {
        XEN.lock().as_mut().map_or(Err(Error::NoDevice), |st| net::info(&mut st.nics, dev))
    }
    pub fn send(dev: u64, frame: &[u8]) -> Result<u64, Error> {
        super::devices_advance();
        XEN.lock().as_mut().map_or(Err(Error::NoDevice), |st| net::send(&mut st.nics, dev, frame))
    }
    pub fn recv(dev: u64, buf: &mut [u8]) -> Result<u64, Error> {
        super::devices_advance();
        XEN.lock().as_mut().map_or(Err(Error::NoDevice), |st| net::recv(&mut st.nics, dev, buf))
    }
    /// (a frame is queued, a send slot is free), over every interface.
    pub fn ready() -> (bool, bool) {
        XEN.lock().as_mut().map_or((false, false), |st| net::ready(&mut st.nics))
    }
}
