//! Booted without Xen (QEMU direct PVH boot): the legacy PIC is masked, the TSC and the local
//! APIC timer are calibrated against the PIT, wall-clock time comes from the CMOS RTC, and
//! the shim leaves QEMU through isa-debug-exit.
use crate::arch::{self, inb, outb};
use core::sync::atomic::{AtomicU64, Ordering};
use xshim_shim::layout;

const LAPIC_BASE: u64 = 0xfee0_0000;
const LAPIC_EOI: u64 = 0xb0;
const LAPIC_SVR: u64 = 0xf0;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_TIMER_INIT: u64 = 0x380;
const LAPIC_TIMER_CUR: u64 = 0x390;
const LAPIC_TIMER_DIV: u64 = 0x3e0;

/// LAPIC timer ticks per millisecond (divide-by-16).
static LAPIC_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);
static WALL_BASE_SEC: AtomicU64 = AtomicU64::new(0);

fn lapic_write(reg: u64, v: u32) {
    // SAFETY: the xAPIC registers are at LAPIC_BASE (identity-mapped); reg is a valid offset.
    unsafe { core::ptr::write_volatile((LAPIC_BASE + reg) as *mut u32, v) }
}

fn lapic_read(reg: u64) -> u32 {
    // SAFETY: as lapic_write.
    unsafe { core::ptr::read_volatile((LAPIC_BASE + reg) as *const u32) }
}

/// Remaps the 8259 PICs away from the exception vectors and masks every line: firmware may
/// have left the PIT's IRQ0 on vector 8.
fn mask_legacy_pic() {
    let base = layout::VECTOR_PIC_BASE;
    for (cmd, data, offset, cascade) in [(0x20u16, 0x21u16, base, 4u8), (0xa0, 0xa1, base + 8, 2)] {
        outb(cmd, 0x11);
        outb(data, offset);
        outb(data, cascade);
        outb(data, 0x01);
        outb(data, 0xff);
    }
}

/// Measures ~10 ms with PIT channel 2 and returns (TSC ticks, LAPIC ticks) in that time.
fn calibrate() -> (u64, u64) {
    const PIT_HZ: u64 = 1_193_182;
    const COUNT: u64 = PIT_HZ / 100;
    let gate = inb(0x61);
    outb(0x61, (gate & !0x02) | 0x01);
    outb(0x43, 0xb0); // channel 2, lo/hi byte, mode 0 (interrupt on terminal count)
    outb(0x42, (COUNT & 0xff) as u8);
    outb(0x42, (COUNT >> 8) as u8);
    lapic_write(LAPIC_TIMER_DIV, 0x3);
    lapic_write(LAPIC_LVT_TIMER, 1 << 16); // masked while calibrating
    let g = inb(0x61) & !0x01;
    outb(0x61, g);
    outb(0x61, g | 0x01); // rising edge on the gate starts the count
    lapic_write(LAPIC_TIMER_INIT, u32::MAX);
    let t0 = arch::rdtsc();
    let mut spins = 0u64;
    while inb(0x61) & 0x20 == 0 && spins < 100_000_000 {
        spins += 1;
    }
    let t1 = arch::rdtsc();
    let lapic = u32::MAX - lapic_read(LAPIC_TIMER_CUR);
    lapic_write(LAPIC_TIMER_INIT, 0);
    outb(0x61, gate);
    ((t1 - t0) * 100, lapic as u64 * 100)
}

pub fn init(boot_tsc: u64) {
    mask_legacy_pic();
    // Enable the local APIC (global enable in IA32_APIC_BASE, software enable in the SVR).
    let apic_base = arch::rdmsr(0x1b);
    arch::wrmsr(0x1b, apic_base | (1 << 11));
    lapic_write(LAPIC_SVR, 0x100 | layout::VECTOR_SPURIOUS as u32);
    let (tsc_hz, lapic_hz) = calibrate();
    crate::platform::clock::use_tsc(boot_tsc, tsc_hz);
    LAPIC_TICKS_PER_MS.store((lapic_hz / 1000).max(1), Ordering::SeqCst);
    lapic_write(LAPIC_LVT_TIMER, layout::VECTOR_LAPIC_TIMER as u32); // one-shot, unmasked
    WALL_BASE_SEC.store(read_rtc(), Ordering::SeqCst);
    log::info!("native platform: TSC {} MHz, LAPIC timer {} kHz (div 16)", tsc_hz / 1_000_000, lapic_hz / 1000);
}

/// Arms the LAPIC one-shot timer for `ns` from now (capped: the caller loops).
pub fn arm_timer_in(ns: u64) {
    let ticks = (ns / 1000).saturating_mul(LAPIC_TICKS_PER_MS.load(Ordering::Relaxed)) / 1000;
    lapic_write(LAPIC_TIMER_INIT, ticks.clamp(1, u32::MAX as u64) as u32);
}

pub fn on_timer() {
    lapic_write(LAPIC_EOI, 0);
}

fn cmos(reg: u8) -> u8 {
    outb(0x70, reg);
    inb(0x71)
}

/// Seconds since the Unix epoch from the CMOS RTC (UTC, as QEMU provides it).
fn read_rtc() -> u64 {
    while cmos(0x0a) & 0x80 != 0 {}
    let bcd = cmos(0x0b) & 0x04 == 0;
    let conv = |v: u8| if bcd { (v & 0x0f) as u64 + (v >> 4) as u64 * 10 } else { v as u64 };
    let (s, mi, h, d, mo, y) = (conv(cmos(0)), conv(cmos(2)), conv(cmos(4) & 0x7f), conv(cmos(7)), conv(cmos(8)), conv(cmos(9)));
    let year = 2000 + y;
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, m) = if mo <= 2 { (year - 1, mo + 9) } else { (year, mo - 3) };
    let era = yy / 400;
    let yoe = yy - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60 + s
}

pub fn wallclock() -> (u64, u32) {
    let ns = crate::platform::clock::now_ns();
    (WALL_BASE_SEC.load(Ordering::Relaxed) + ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
}

/// Leaves QEMU with status (code << 1) | 1 through isa-debug-exit; halts if it is absent.
pub fn exit_qemu(code: u8) -> ! {
    // SAFETY: port 0xf4 is isa-debug-exit when `xshim run` boots us; elsewhere it is unused.
    unsafe { x86_64::instructions::port::Port::<u32>::new(layout::QEMU_DEBUG_EXIT_PORT).write(code as u32) };
    arch::halt_forever()
}

pub fn reboot() -> ! {
    outb(0x64, 0xfe); // keyboard controller reset line
    arch::halt_forever()
}
