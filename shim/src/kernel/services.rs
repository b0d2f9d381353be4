//! The payload ABI served by the shim: the call gate (a thin shell: events off, then the
//! library's `dispatch`), and `Services` over the consoles, the clock and the platform.
use crate::console;
use crate::platform::Exit;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::platform::xen::{disks, nics};
use xshim_payload::abi::{self, BlockInfo, BootInfo, Error, Features, MemRegion, NetInfo, Wake};
use xshim_shim::xen::abi::blkif::{BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE};
use xshim_shim::abi_dispatch::{dispatch, encode, PayloadSlice, Services, ShutdownRequest};
use xshim_shim::payload_mem::PayloadMemory;

pub struct PayloadInfo {
    pub cmdline: String,
    pub regions: Vec<MemRegion>,
    pub window: MemRegion,
    pub stack: MemRegion,
    pub features: Features,
}

static INFO: spin::Once<PayloadInfo> = spin::Once::new();
static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();
static RESUME_NOTIFY: AtomicBool = AtomicBool::new(false);
static RESUMED: AtomicBool = AtomicBool::new(false);
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// A NET_SEND answered `Again` since WAIT last reported a free slot (`Wake::NET_TX`).
static NET_TX_WANTED: AtomicBool = AtomicBool::new(false);

/// Fixes the payload's view of the platform and returns its BootInfo; `call` is the address
/// the payload calls (`Platform::payload_call_gate`).
pub fn init(info: PayloadInfo, call: u64) -> &'static BootInfo {
    let features = info.features;
    let stack_size = info.stack.len;
    INFO.call_once(|| info);
    BOOT_INFO.call_once(|| BootInfo {
        magic: abi::BOOT_MAGIC,
        abi_version: abi::ABI_VERSION,
        features: features.bits(),
        call,
        stack_size,
        reserved: 0,
    })
}

/// The shim's record of the payload's memory, as one line (after a payload fault, it shows
/// that the payload did not reach it).
pub fn payload_memory_record() -> Option<String> {
    let info = INFO.get()?;
    let (w, s) = (info.window, info.stack);
    Some(alloc::format!(
        "window {:#x}..{:#x}, stack {:#x}..{:#x}, {} region(s) of {} MiB",
        w.base, w.base + w.len, s.base, s.base + s.len, info.regions.len(), info.regions.iter().map(|r| r.len).sum::<u64>() >> 20
    ))
}

/// The payload's window, once the payload is loaded.
pub fn payload_window() -> Option<MemRegion> {
    INFO.get().map(|i| i.window)
}

pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// The guest woke in a new domain: bump the generation, raise the opt-in notification.
pub fn note_resumed() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    RESUMED.store(true, Ordering::SeqCst);
}

/// The call gate: entered from entry.S's `syscall_entry` (PVH, native) or `pv_syscall_entry`
/// (PV), for a payload in user mode. A thin shell: events off while the shim works for the
/// payload (so an event upcall never finds shim state half-updated), then the safe dispatcher.
#[no_mangle]
extern "sysv64" fn payload_call(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let platform = super::platform();
    let (events, were_on) = platform.events_disable();
    let lock = crate::vcpus::lock();
    let r = encode(dispatch(nr, [a0, a1, a2, a3], &mut ShimServices { info: INFO.get().expect("services initialised before the payload runs"), events: &events }));
    drop(lock);
    if were_on {
        platform.events_enable(events);
    }
    r
}

struct ShimServices<'a> {
    info: &'a PayloadInfo,
    events: &'a crate::hw::EventsOff,
}

impl Services for ShimServices<'_> {
    fn memory(&self) -> PayloadMemory<'_> {
        PayloadMemory { window: self.info.window, stack: self.info.stack, regions: &self.info.regions }
    }
    fn console_write(&mut self, buf: PayloadSlice) {
        // SAFETY: checked to be payload memory, identity-mapped; the payload is stopped.
        console::payload_write(unsafe { buf.as_bytes() });
    }
    fn console_read(&mut self, buf: PayloadSlice) -> usize {
        // SAFETY: as console_write; no other reference to the payload's buffer exists.
        console::read(unsafe { buf.as_bytes_mut() })
    }
    fn monotonic_ns(&mut self) -> u64 {
        crate::clock::now_ns()
    }
    fn wallclock(&mut self) -> (u64, u32) {
        super::platform().wallclock()
    }
    fn write_payload(&mut self, dst: PayloadSlice, bytes: &[u8]) {
        // SAFETY: as console_read; `dispatch` never writes more than the checked length.
        let out = unsafe { dst.as_bytes_mut() };
        let n = out.len().min(bytes.len());
        out[..n].copy_from_slice(&bytes[..n]);
    }
    fn wait(&mut self, deadline: u64) -> Wake {
        wait(self.events, deadline)
    }
    fn shutdown(&mut self, how: ShutdownRequest) {
        let exit = match how {
            ShutdownRequest::Poweroff(code) => Exit::Poweroff(code),
            ShutdownRequest::Reboot => Exit::Reboot,
            ShutdownRequest::Crash(code) => {
                log::error!("payload asked for a crash (code {code})");
                Exit::Crash
            }
        };
        if let Exit::Poweroff(code) = exit {
            log::info!("poweroff (payload code {code})");
        }
        super::platform().exit(exit)
    }
    fn cmdline(&self) -> &str {
        &self.info.cmdline
    }
    fn regions(&self) -> &[MemRegion] {
        &self.info.regions
    }
    fn set_resume_notify(&mut self, on: bool) -> bool {
        if on {
            RESUMED.store(false, Ordering::SeqCst);
        }
        RESUME_NOTIFY.swap(on, Ordering::SeqCst)
    }
    fn generation(&self) -> u64 {
        generation()
    }
    fn features(&self) -> Features {
        self.info.features
    }
    fn block_info(&mut self, dev: u64) -> Result<BlockInfo, Error> {
        disks::info(dev)
    }
    fn block_io(&mut self, dev: u64, write: bool, offset: u64, buf: PayloadSlice) -> Result<u64, Error> {
        // SAFETY: checked to be payload memory, identity-mapped; the payload is stopped in
        // this call and no other reference to its buffer exists (a write only reads it).
        let bytes = unsafe { buf.as_bytes_mut() };
        block_call(self.events, dev, if write { BLKIF_OP_WRITE } else { BLKIF_OP_READ }, offset, bytes)
    }
    fn block_flush(&mut self, dev: u64) -> Result<u64, Error> {
        block_call(self.events, dev, BLKIF_OP_FLUSH_DISKCACHE, 0, &mut []).map(|_| 0)
    }
    fn net_info(&mut self, dev: u64) -> Result<NetInfo, Error> {
        nics::info(dev)
    }
    fn net_send(&mut self, dev: u64, frame: PayloadSlice) -> Result<u64, Error> {
        // SAFETY: checked to be payload memory, identity-mapped; the payload is stopped in
        // this call; the frame is only read (copied into the shim's buffer).
        let r = nics::send(dev, unsafe { frame.as_bytes() });
        if r == Err(Error::Again) {
            NET_TX_WANTED.store(true, Ordering::SeqCst);
        }
        r
    }
    fn mem_discard(&mut self, start: u64, end: u64) -> u64 {
        crate::platform::memory::discard(start, end).unwrap_or_else(|e| super::fatal::fatal("MEM_DISCARD", e))
    }
    fn mem_info(&mut self) -> xshim_payload::abi::MemInfo {
        let total = self.info.window.len + self.info.regions.iter().map(|r| r.len).sum::<u64>();
        let (populated, limit) = crate::platform::memory::info(total);
        xshim_payload::abi::MemInfo { total, populated, limit, reserved: 0 }
    }
    fn net_recv(&mut self, dev: u64, buf: PayloadSlice) -> Result<u64, Error> {
        // SAFETY: as console_read; no other reference to the payload's buffer exists.
        nics::recv(dev, unsafe { buf.as_bytes_mut() })
    }
    fn vcpu_count(&self) -> u64 {
        crate::vcpus::count() as u64
    }
    fn current_vcpu(&self) -> u64 {
        crate::vcpus::current() as u64
    }
    fn vcpu_start(&mut self, vcpu: u64, entry: u64, stack_top: u64, arg: u64) -> Result<u64, Error> {
        let p = super::platform();
        if crate::vcpus::start(vcpu as usize, entry, stack_top, arg, |v| p.kick(v)) { Ok(0) } else { Err(Error::BadArgument) }
    }
    fn wake(&mut self, vcpu: u64) {
        let p = super::platform();
        crate::vcpus::wake(vcpu as usize, |v| p.kick(v));
    }
}

/// How long a disk call may wait for its backend (time suspended does not count: the clock
/// stands still then) before the disk is given up.
const BLOCK_CALL_TIMEOUT_NS: u64 = 60_000_000_000;
/// A call looks at its ring at least this often, event or not.
const BLOCK_POLL_NS: u64 = 100_000_000;

/// A disk call, to the end: step it, and sleep until the disk's event in between. A suspend
/// may come while it sleeps (the event handler runs it): the call goes on afterwards, its
/// requests sent again in a new domain, and returns once.
fn block_call(events: &crate::hw::EventsOff, dev: u64, op: u8, offset: u64, buf: &mut [u8]) -> Result<u64, Error> {
    let platform = super::platform();
    let mut t = disks::start(dev, op, offset, buf.len())?;
    let t0 = crate::clock::now_ns();
    // The poll deadline moves only once passed: arming the same deadline again is free, a
    // new one is a hypercall (a VM exit under PVH) on every wake.
    let mut poll_at = t0 + BLOCK_POLL_NS;
    loop {
        if let Some(n) = disks::step(dev, &mut t, buf)? {
            return Ok(n);
        }
        let now = crate::clock::now_ns();
        if now.saturating_sub(t0) > BLOCK_CALL_TIMEOUT_NS {
            disks::give_up(dev, now - t0);
            return Err(Error::Io);
        }
        if now >= poll_at {
            poll_at = now + BLOCK_POLL_NS;
        }
        platform.arm_timer(poll_at);
        crate::vcpus::device_wait(|| crate::vcpus::unlocked(|| platform.idle(events)));
    }
}

/// Sleeps until the deadline or an event, halting the vCPU in between (no busy loop), the
/// shim lock given up meanwhile. The devices' and console's wake bits go to vCPU 0 (their
/// ports are bound to it); a secondary wakes for its deadline and WAKE.
fn wait(events: &crate::hw::EventsOff, deadline: u64) -> Wake {
    let platform = super::platform();
    let me = crate::vcpus::current();
    loop {
        if crate::vcpus::take_woken(me) {
            return Wake::WOKEN;
        }
        if me != 0 {
            if crate::clock::now_ns() >= deadline {
                return Wake::DEADLINE;
            }
            platform.arm_timer(deadline);
            crate::vcpus::unlocked(|| platform.idle(events));
            continue;
        }
        if RESUME_NOTIFY.load(Ordering::SeqCst) && RESUMED.swap(false, Ordering::SeqCst) {
            return Wake::RESUMED;
        }
        // In a new domain the devices connect while the payload runs: here it waits anyway.
        crate::platform::xen::devices_advance();
        if console::input_pending() {
            return Wake::CONSOLE_INPUT;
        }
        let (rx, tx) = nics::ready();
        let mut net = Wake::empty();
        net.set(Wake::NET_RX, rx);
        if tx && NET_TX_WANTED.swap(false, Ordering::SeqCst) {
            net |= Wake::NET_TX;
        }
        if !net.is_empty() {
            return net;
        }
        if crate::clock::now_ns() >= deadline {
            return Wake::DEADLINE;
        }
        // Memory the payload never touched goes back to Xen while it has nothing to do.
        if crate::platform::memory::give_back_some(deadline) {
            continue;
        }
        // Devices still connecting are looked at again soon even if no watch event comes.
        let wake_at = if crate::platform::xen::devices_connecting() { deadline.min(crate::clock::now_ns() + crate::platform::xen::DEVICE_POLL_NS) } else { deadline };
        platform.arm_timer(wake_at);
        crate::vcpus::unlocked(|| platform.idle(events));
    }
}
