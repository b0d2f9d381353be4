//! Booted without Xen (QEMU direct PVH boot): the legacy PIC masked, the TSC and the local
//! APIC timer calibrated against the PIT, wall-clock time from the CMOS RTC, exit through
//! isa-debug-exit.
use super::Exit;
use crate::hw::{cpu, native as dev};
use core::sync::atomic::{AtomicU64, Ordering};
use xshim_shim::layout;

/// LAPIC timer ticks per microsecond x 1024 (divide-by-16), and the RTC's time at boot.
static LAPIC_TICKS_PER_US_X1024: AtomicU64 = AtomicU64::new(0);
static WALL_BASE_SEC: AtomicU64 = AtomicU64::new(0);

/// QEMU's isa-debug-exit status for a crash (the payload's codes are 0..=126).
const CRASH_EXIT_CODE: u8 = 0x7f;
const MAX_PAYLOAD_EXIT_CODE: u8 = 126;

pub fn init(boot_tsc: u64) {
    dev::mask_legacy_pic(layout::VECTOR_PIC_BASE);
    dev::lapic_enable(layout::VECTOR_SPURIOUS);
    let (tsc_hz, lapic_hz) = dev::calibrate();
    crate::clock::use_tsc(boot_tsc, tsc_hz);
    LAPIC_TICKS_PER_US_X1024.store((lapic_hz * 1024 / 1_000_000).max(1), Ordering::SeqCst);
    dev::lapic_timer_vector(layout::VECTOR_LAPIC_TIMER);
    let rtc = dev::read_rtc();
    match xshim_shim::rtc::unix_seconds(rtc) {
        Some(s) => WALL_BASE_SEC.store(s, Ordering::SeqCst),
        None => log::warn!("CMOS RTC holds no valid date ({rtc:?}): wall clock starts at 1970"),
    }
    log::info!("native platform: TSC {} MHz, LAPIC timer {} kHz (div 16)", tsc_hz / 1_000_000, lapic_hz / 1000);
}

/// The LAPIC ticks for `ns`, at least 1, at most what the counter holds.
fn ticks_for(ns: u64) -> u32 {
    let per_us_x1024 = LAPIC_TICKS_PER_US_X1024.load(Ordering::Relaxed);
    ((ns / 1000).saturating_mul(per_us_x1024) / 1024).clamp(1, u32::MAX as u64) as u32
}

/// Arms the LAPIC one-shot timer for `ns` from now (capped: the caller loops).
pub fn arm_timer_in(ns: u64) {
    dev::lapic_timer_start(ticks_for(ns));
}

pub fn on_timer() {
    dev::lapic_eoi();
}

pub fn wallclock() -> (u64, u32) {
    let ns = crate::clock::now_ns();
    (WALL_BASE_SEC.load(Ordering::Relaxed) + ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
}

pub fn exit(how: Exit) -> ! {
    match how {
        Exit::Poweroff(code) => dev::qemu_exit(code.min(MAX_PAYLOAD_EXIT_CODE)),
        Exit::Reboot => dev::kbc_reset(),
        Exit::Crash => dev::qemu_exit(CRASH_EXIT_CODE),
    }
    cpu::halt_forever()
}
