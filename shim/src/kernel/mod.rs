//! The top of the shim: policy. It holds the `Platform` chosen at entry, loads the payload and
//! enters it, serves its calls, handles traps and `control/shutdown` requests, and is the
//! only place that decides to crash the domain.
pub mod fatal;
pub mod payload_load;
pub mod services;
pub mod traps;

use crate::platform::Platform;
use crate::vcpus;
use alloc::string::String;
use alloc::vec::Vec;
use xshim_payload::abi::{BootInfo, MemRegion};
use xshim_shim::address_space::{Access, AddressSpace, PlanError, Span};
use xshim_shim::demand::{self, Range};
use xshim_shim::layout;
use xshim_shim::start_info::Module;

static PLATFORM: spin::Once<Platform> = spin::Once::new();

/// The platform chosen at entry (Native until then, which only the early crash path sees).
pub fn platform() -> Platform {
    PLATFORM.get().copied().unwrap_or(Platform::Native)
}

/// Fixes the platform, once, at entry.
pub fn set_platform(p: Platform) {
    PLATFORM.call_once(|| p);
}

/// The payload's stack, with an unmapped guard page below it: an overflow faults there
/// instead of running into the shim's data.
#[repr(C, align(4096))]
struct PayloadStack {
    guard: [u8; layout::PAGE_SIZE as usize],
    stack: [u8; layout::PAYLOAD_STACK_SIZE],
}
static mut PAYLOAD_STACK: PayloadStack = PayloadStack { guard: [0; layout::PAGE_SIZE as usize], stack: [0; layout::PAYLOAD_STACK_SIZE] };

/// The guard page below the payload's stack.
pub fn payload_stack_guard() -> MemRegion {
    MemRegion { base: &raw const PAYLOAD_STACK as u64, len: layout::PAGE_SIZE }
}

extern "C" {
    static __shim_start: u8;
    static __user_gate_start: u8;
    static __user_gate_end: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __shim_end: u8;
}

/// The address of a linker symbol (never its contents).
fn sym_addr(s: *const u8) -> u64 {
    s as u64
}

/// The guest's RAM, as the platform found it.
pub struct RamLayout {
    /// All of it (the demand-population plan gives back what is not kept).
    pub ram: Vec<Range>,
    /// What the shim mapped 1:1 for the payload (PV: the low 4 GiB at most; PVH and QEMU:
    /// RAM below 4 GiB): the payload's window and free memory come from here.
    pub usable: Vec<Range>,
    /// What the platform needs kept populated and untouched (PV: Xen's start-of-day pages
    /// and the page tables taken from RAM): never the payload's, never overwritten.
    pub keep: Vec<Range>,
}

/// Who may touch what once the payload runs (linker/shim.ld's section symbols: only their
/// addresses are taken). `released`: memory given back to Xen that the payload has no
/// business with either, mapped not at all.
fn address_space(window: MemRegion, stack: MemRegion, regions: &[MemRegion], released: &[Range]) -> Result<AddressSpace, PlanError> {
    let (text, gate, gate_end, rodata, data) = (
        sym_addr(&raw const __shim_start),
        sym_addr(&raw const __user_gate_start),
        sym_addr(&raw const __user_gate_end),
        sym_addr(&raw const __rodata_start),
        sym_addr(&raw const __data_start),
    );
    let guard = payload_stack_guard();
    let span = |r: MemRegion, access| Span { start: r.base, end: r.base + r.len, access };
    let mut spans = alloc::vec![
        Span { start: text, end: gate, access: Access::KernelCode },
        Span { start: gate, end: gate_end, access: Access::UserCode },
        Span { start: rodata, end: data, access: Access::KernelRead },
        span(guard, Access::None),
        span(stack, Access::UserData),
        span(window, Access::UserAll),
    ];
    spans.extend(regions.iter().map(|&r| span(r, Access::UserAll)));
    spans.extend(released.iter().map(|r| Span { start: r.start, end: r.end, access: Access::None }));
    AddressSpace::new(spans)
}

/// `xshim.selftest=text-write|data-exec` on the command line: once its memory protection is
/// on, the shim attacks itself instead of entering the payload, to show that the protection
/// is real: each must end in a page fault reported as a shim exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTest {
    /// Write to the shim's own text.
    TextWrite,
    /// Execute a `ret` placed in the shim's data.
    DataExec,
}

impl SelfTest {
    pub fn from_options(opts: &[&str]) -> Option<SelfTest> {
        match opts.iter().find_map(|o| o.strip_prefix("xshim.selftest="))? {
            "text-write" => Some(SelfTest::TextWrite),
            "data-exec" => Some(SelfTest::DataExec),
            other => {
                log::warn!("unknown xshim.selftest={other} ignored");
                None
            }
        }
    }

    fn run(self) -> ! {
        /// A `ret` in writable data: executing it must fault.
        static mut RET_IN_DATA: [u8; 16] = [0xc3; 16];
        match self {
            SelfTest::TextWrite => {
                let target = load_and_enter as *const () as *mut u8;
                log::info!("selftest: writing the shim's own text at {:#x}", target as u64);
                // SAFETY: none, on purpose: the write must fault (text is read-only); if it
                // does not, the byte written is the one that was there.
                unsafe { core::ptr::write_volatile(target, core::ptr::read_volatile(target)) };
            }
            SelfTest::DataExec => {
                let target = &raw mut RET_IN_DATA as u64;
                log::info!("selftest: executing the shim's own data at {target:#x}");
                // SAFETY: none, on purpose: the call must fault (data is no-execute); if it
                // does not, the bytes are `ret` and the call returns.
                let f: extern "C" fn() = unsafe { core::mem::transmute::<u64, extern "C" fn()>(target) };
                f();
            }
        }
        log::error!("selftest: {self:?} did not fault: the shim's memory is not protected");
        fatal::crash("selftest failed")
    }
}

/// Loads the payload and enters it; shared by every platform.
pub fn load_and_enter(modules: &[Module], ram: RamLayout, payload_cmdline: String, shim_end: u64, selftest: Option<SelfTest>) -> ! {
    let p = platform();
    // Never written by the loader, never the payload's: what the platform keeps, the shim,
    // and boot modules other than the payload (module 0, dead once loaded, is free memory).
    let busy: Vec<Range> = ram
        .keep
        .iter()
        .copied()
        .chain(core::iter::once(Range::new(layout::SHIM_BASE, shim_end)))
        .chain(modules.iter().skip(1).map(|m| Range::new(m.paddr, m.paddr.saturating_add(m.size))))
        .collect();
    let plan = payload_load::find(modules, shim_end).and_then(|src| payload_load::load(&src, &ram.usable, &busy));
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            log::error!("payload refused: {e}");
            fatal::crash("no valid payload");
        }
    };
    let stack_base = &raw const PAYLOAD_STACK as u64 + layout::PAGE_SIZE;
    let stack = MemRegion { base: stack_base, len: layout::PAYLOAD_STACK_SIZE as u64 };
    let window = plan.window();
    let window = MemRegion { base: window.start, len: window.end - window.start };
    let mut regions = xshim_shim::start_info::payload_regions(&ram.usable, window.base + window.len, &busy);
    // The platform's devices may take some RAM for themselves now that the payload's place
    // is known (blkfront's bounce pages): off the top of the payload's free memory.
    let device_ram = match p.device_ram_wanted() {
        0 => None,
        want => {
            let got = xshim_shim::start_info::carve_from_top(&mut regions, want);
            if got.is_none() {
                log::warn!("devices: no {} KiB of free memory to spare for them: they run with fewer requests in flight", want >> 10);
            }
            got
        }
    };
    // Secondary vCPUs' stacks, off the top of the payload's free memory too.
    let vcpus_wanted = p.vcpus_available();
    let vcpu_stacks = (vcpus_wanted > 1).then(|| xshim_shim::start_info::carve_from_top(&mut regions, (vcpus_wanted as u64 - 1) * crate::hw::smp::SECONDARY_STACKS)).flatten();
    if vcpus_wanted > 1 && vcpu_stacks.is_none() {
        log::warn!("vCPUs: no free memory for {} secondary vCPUs' stacks: the payload gets one vCPU", vcpus_wanted - 1);
    }
    let free: u64 = regions.iter().map(|r| r.len).sum();
    // Demand population: all RAM but the shim, the loaded payload and what the platform
    // needs goes back to Xen; the payload's part comes back on first touch.
    let memory = Some(ram).filter(|_| crate::platform::memory::enabled(p)).map(|ram| {
        let to_range = |r: &MemRegion| Range::new(r.base, r.base + r.len);
        let mut keep = ram.keep;
        keep.push(Range::new(layout::SHIM_BASE, shim_end));
        keep.extend(plan.segments.iter().map(|s| Range::new(s.addr, s.addr + s.mem_len)));
        keep.extend(device_ram);
        keep.extend(vcpu_stacks);
        let payload: Vec<Range> = core::iter::once(&window).chain(regions.iter()).map(to_range).collect();
        demand::plan(&ram.ram, &keep, &payload)
    });
    if let Some(r) = device_ram {
        log::info!("devices: {} KiB of RAM at {:#x} for their buffers", (r.end - r.start) >> 10, r.start);
        p.give_device_ram(r.start);
    }
    let released_unmapped = memory.as_ref().map_or(Vec::new(), |m| demand::subtract(&m.release, &m.demand));
    let space = address_space(window, stack, &regions, &released_unmapped).unwrap_or_else(|e| fatal::fatal("the shim's memory layout", e));
    let boot_info = services::init(services::PayloadInfo { cmdline: payload_cmdline, regions, window, stack, features: p.features() }, p.payload_call_gate());
    // The payload's BootInfo is a copy at the top of its own stack: the shim's pages are out
    // of its reach.
    let boot_at = (stack_base + layout::PAYLOAD_STACK_SIZE as u64 - core::mem::size_of::<BootInfo>() as u64) & !15;
    // SAFETY: `boot_at` is inside the payload's stack (a static the shim owns until the
    // payload starts), aligned, and nothing references that memory.
    unsafe { (boot_at as *mut BootInfo).write(*boot_info) };
    let image = (sym_addr(&raw const __shim_start), sym_addr(&raw const __shim_end));
    if let Some(m) = &memory {
        let r = crate::platform::memory::release_at_boot(p, m).unwrap_or_else(|e| fatal::fatal("giving unused memory back to Xen", e));
        log::info!(
            "memory: {} MiB given back to Xen in {} us (the domain holds {} of at most {} KiB); the payload's {} MiB are populated on first touch, {} KiB at a time ({} MiB of it given back when the payload waits)",
            (r.pages << layout::PAGE_SHIFT) >> 20,
            r.micros,
            r.xen_pages.map_or(0, |(now, _)| now * 4),
            r.xen_pages.map_or(0, |(_, max)| max * 4),
            r.demand_bytes >> 20,
            r.unit_bytes >> 10,
            r.held_bytes >> 20
        );
    }
    let protection = p.protect(&space, image).unwrap_or_else(|e| fatal::fatal("memory protection", e));
    if let Some(t) = selftest {
        t.run();
    }
    if let Some(r) = vcpu_stacks {
        // On the final page tables (the secondaries start with vCPU 0's CR3 and CR4).
        crate::hw::smp::set_secondary_stacks(r.start, vcpus_wanted);
        let n = p.start_secondaries(vcpus_wanted);
        vcpus::set_count(n);
        log::info!("vCPUs: {n} of {vcpus_wanted} running (stacks at {:#x})", r.start);
    }
    log::info!(
        "payload: {} segment(s), {} KiB, entry {:#x}; {} MiB free memory; {protection}; entering after {} us",
        plan.segments.len(),
        plan.footprint() / 1024,
        plan.entry,
        free >> 20,
        crate::clock::now_ns() / 1000
    );
    // SAFETY: the loader validated that `entry` is inside an executable segment it copied,
    // the stack is the payload's own static (its top holds the BootInfo copy), all mapped
    // for the payload by `protect`.
    unsafe { p.enter_payload(plan.entry, boot_at, boot_at) }
}

/// A secondary's life after its descriptor tables are loaded: online, then asleep in the
/// shim until VCPU_START names a function, which it runs in user mode (never to return).
pub fn secondary_loop(me: usize) -> ! {
    let p = platform();
    let (events, _) = p.events_disable();
    crate::hw::smp::reset_fpu();
    let lock = vcpus::lock();
    vcpus::mark_online(me);
    loop {
        if let Some((entry, stack_top, arg)) = vcpus::start_request(me) {
            log::debug!("vCPU {me}: entering the payload at {entry:#x}");
            drop(lock);
            // SAFETY: the dispatcher checked that `entry` is in the payload's window and the
            // stack's top 16 bytes are payload memory, 16-byte aligned; both mapped for the
            // payload by `protect` (the page tables are vCPU 0's).
            unsafe { p.enter_payload(entry, stack_top, arg) }
        }
        p.arm_timer(u64::MAX);
        vcpus::unlocked(|| p.idle(&events));
    }
}
