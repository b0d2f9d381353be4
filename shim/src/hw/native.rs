//! The PC devices the shim drives when booted without Xen (QEMU's direct PVH boot): the
//! 8259 PICs (masked), PIT channel 2 (calibration), the local APIC timer, the CMOS RTC, the
//! keyboard controller's reset line and QEMU's isa-debug-exit.
use super::cpu::{inb, outb, outl, rdtsc};
use xshim_shim::rtc::RtcRegisters;

/// The xAPIC's registers (identity-mapped MMIO).
const LAPIC_BASE: u64 = 0xfee0_0000;
const LAPIC_EOI: u64 = 0xb0;
const LAPIC_SVR: u64 = 0xf0;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_TIMER_INIT: u64 = 0x380;
const LAPIC_TIMER_CUR: u64 = 0x390;
const LAPIC_TIMER_DIV: u64 = 0x3e0;
/// SVR bit 8: APIC software enable. LVT bit 16: masked. Divide configuration 0b0011: by 16.
const LAPIC_SVR_ENABLE: u32 = 1 << 8;
const LAPIC_LVT_MASKED: u32 = 1 << 16;
const LAPIC_DIVIDE_BY_16: u32 = 0x3;

/// 8259 command/data ports of the master and slave PIC.
const PIC1_CMD: u16 = 0x20;
const PIC1_DATA: u16 = 0x21;
const PIC2_CMD: u16 = 0xa0;
const PIC2_DATA: u16 = 0xa1;
/// ICW1: initialise, ICW4 follows. ICW4: 8086 mode. OCW1 0xff: every line masked.
const PIC_ICW1_INIT: u8 = 0x11;
const PIC_ICW4_8086: u8 = 0x01;
const PIC_MASK_ALL: u8 = 0xff;

/// PIT: channel 2 data, mode/command, and port 0x61 (bit 0 gate, bit 1 speaker, bit 5 out).
const PIT_CH2: u16 = 0x42;
const PIT_CMD: u16 = 0x43;
const PIT_GATE_PORT: u16 = 0x61;
const PIT_GATE: u8 = 0x01;
const PIT_SPEAKER: u8 = 0x02;
const PIT_OUT2: u8 = 0x20;
/// Channel 2, lo/hi byte, mode 0 (interrupt on terminal count).
const PIT_CH2_ONESHOT: u8 = 0xb0;
pub const PIT_HZ: u64 = 1_193_182;
/// Calibration runs the PIT for 1/CALIBRATION_DIVISOR of a second (10 ms).
const CALIBRATION_DIVISOR: u64 = 100;
/// A PIT that never counts down (none present) stops calibration after this many polls.
const CALIBRATION_MAX_SPINS: u64 = 100_000_000;

/// CMOS index/data ports and registers.
const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;
const CMOS_STATUS_A: u8 = 0x0a;
const CMOS_STATUS_B: u8 = 0x0b;
const CMOS_UPDATE_IN_PROGRESS: u8 = 0x80;
/// Reads wait at most this many polls for an RTC update to finish.
const CMOS_MAX_WAIT: u32 = 1_000_000;

/// The keyboard controller's command port, and its "pulse reset line" command.
const KBC_CMD: u16 = 0x64;
const KBC_RESET: u8 = 0xfe;

fn lapic_write(reg: u64, v: u32) {
    // SAFETY: the xAPIC registers are at LAPIC_BASE (identity-mapped); reg is a valid offset.
    unsafe { core::ptr::write_volatile((LAPIC_BASE + reg) as *mut u32, v) }
}

fn lapic_read(reg: u64) -> u32 {
    // SAFETY: as lapic_write.
    unsafe { core::ptr::read_volatile((LAPIC_BASE + reg) as *const u32) }
}

/// Remaps the 8259 PICs to `vector_base` (away from the exception vectors: firmware may
/// have left the PIT's IRQ0 on vector 8) and masks every line.
pub fn mask_legacy_pic(vector_base: u8) {
    for (cmd, data, offset, cascade) in [(PIC1_CMD, PIC1_DATA, vector_base, 4u8), (PIC2_CMD, PIC2_DATA, vector_base + 8, 2)] {
        outb(cmd, PIC_ICW1_INIT);
        outb(data, offset);
        outb(data, cascade);
        outb(data, PIC_ICW4_8086);
        outb(data, PIC_MASK_ALL);
    }
}

/// Turns the local APIC on with `spurious_vector`.
pub fn lapic_enable(spurious_vector: u8) {
    let apic_base = super::cpu::rdmsr(super::cpu::MSR_APIC_BASE);
    super::cpu::wrmsr(super::cpu::MSR_APIC_BASE, apic_base | super::cpu::APIC_BASE_ENABLE);
    lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | spurious_vector as u32);
}

/// Measures ~10 ms with PIT channel 2 and returns (TSC Hz, LAPIC timer Hz at divide-by-16).
pub fn calibrate() -> (u64, u64) {
    const COUNT: u64 = PIT_HZ / CALIBRATION_DIVISOR;
    let gate = inb(PIT_GATE_PORT);
    outb(PIT_GATE_PORT, (gate & !PIT_SPEAKER) | PIT_GATE);
    outb(PIT_CMD, PIT_CH2_ONESHOT);
    outb(PIT_CH2, (COUNT & 0xff) as u8);
    outb(PIT_CH2, (COUNT >> 8) as u8);
    lapic_write(LAPIC_TIMER_DIV, LAPIC_DIVIDE_BY_16);
    lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
    let g = inb(PIT_GATE_PORT) & !PIT_GATE;
    outb(PIT_GATE_PORT, g);
    outb(PIT_GATE_PORT, g | PIT_GATE); // a rising edge on the gate starts the count
    lapic_write(LAPIC_TIMER_INIT, u32::MAX);
    let t0 = rdtsc();
    let mut spins = 0u64;
    while inb(PIT_GATE_PORT) & PIT_OUT2 == 0 && spins < CALIBRATION_MAX_SPINS {
        spins += 1;
    }
    let t1 = rdtsc();
    let lapic = u32::MAX - lapic_read(LAPIC_TIMER_CUR);
    lapic_write(LAPIC_TIMER_INIT, 0);
    outb(PIT_GATE_PORT, gate);
    ((t1 - t0) * CALIBRATION_DIVISOR, lapic as u64 * CALIBRATION_DIVISOR)
}

/// One-shot timer mode, unmasked, on `vector`.
pub fn lapic_timer_vector(vector: u8) {
    lapic_write(LAPIC_LVT_TIMER, vector as u32);
}

/// Starts the one-shot timer with `ticks` (at least 1).
pub fn lapic_timer_start(ticks: u32) {
    lapic_write(LAPIC_TIMER_INIT, ticks.max(1));
}

pub fn lapic_eoi() {
    lapic_write(LAPIC_EOI, 0);
}

fn cmos(reg: u8) -> u8 {
    outb(CMOS_INDEX, reg);
    inb(CMOS_DATA)
}

/// The RTC's date and time registers, read outside an update.
pub fn read_rtc() -> RtcRegisters {
    let mut n = 0;
    while cmos(CMOS_STATUS_A) & CMOS_UPDATE_IN_PROGRESS != 0 && n < CMOS_MAX_WAIT {
        n += 1;
    }
    RtcRegisters { sec: cmos(0x00), min: cmos(0x02), hour: cmos(0x04), day: cmos(0x07), month: cmos(0x08), year: cmos(0x09), status_b: cmos(CMOS_STATUS_B) }
}

/// Leaves QEMU with status (code << 1) | 1 through isa-debug-exit (`xshim run` adds it at
/// QEMU_DEBUG_EXIT_PORT); does nothing where it is absent.
pub fn qemu_exit(code: u8) {
    outl(xshim_shim::layout::QEMU_DEBUG_EXIT_PORT, code as u32);
}

/// Pulses the reset line through the keyboard controller.
pub fn kbc_reset() {
    outb(KBC_CMD, KBC_RESET);
}
