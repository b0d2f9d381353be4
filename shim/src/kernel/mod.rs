//! The top of the shim: policy. It holds the `Platform` chosen at entry, loads the payload and
//! enters it, serves its calls, handles traps and `control/shutdown` requests, and is the
//! only place that decides to crash the domain.
pub mod fatal;
pub mod payload_load;
pub mod services;
pub mod traps;

use crate::platform::Platform;
use alloc::string::String;
use alloc::vec::Vec;
use xshim_payload::abi::MemRegion;
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

#[repr(C, align(4096))]
struct PayloadStack([u8; layout::PAYLOAD_STACK_SIZE]);
static mut PAYLOAD_STACK: PayloadStack = PayloadStack([0; layout::PAYLOAD_STACK_SIZE]);

/// Loads the payload and enters it; shared by every platform.
pub fn load_and_enter(modules: &[Module], regions: Vec<MemRegion>, payload_cmdline: String, shim_end: u64) -> ! {
    let p = platform();
    let plan = payload_load::find(modules, shim_end).and_then(|src| payload_load::load(&src));
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            log::error!("payload refused: {e}");
            fatal::crash("no valid payload");
        }
    };
    let stack_base = &raw const PAYLOAD_STACK as u64;
    let stack = MemRegion { base: stack_base, len: layout::PAYLOAD_STACK_SIZE as u64 };
    let window = MemRegion { base: layout::PAYLOAD_WINDOW_BASE, len: layout::PAYLOAD_WINDOW_LIMIT - layout::PAYLOAD_WINDOW_BASE };
    let free: u64 = regions.iter().map(|r| r.len).sum();
    let boot_info = services::init(services::PayloadInfo { cmdline: payload_cmdline, regions, window, stack, features: p.features() });
    log::info!(
        "payload: {} segment(s), {} KiB, entry {:#x}; {} MiB free memory; entering after {} us",
        plan.segments.len(),
        plan.footprint() / 1024,
        plan.entry,
        free >> 20,
        crate::clock::now_ns() / 1000
    );
    // SAFETY: the loader validated that `entry` is inside an executable segment it copied,
    // the stack is the payload's own static, and `boot_info` points at a static.
    unsafe { p.enter_payload(plan.entry, stack_base + layout::PAYLOAD_STACK_SIZE as u64, boot_info as *const _ as u64) }
}
