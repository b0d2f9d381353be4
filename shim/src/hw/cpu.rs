//! Thin wrappers over the x86-64 instructions the shim uses: port I/O, CPUID, MSRs, the TSC,
//! CR2, and interrupt enable/halt. Nothing above the CPU.
use core::arch::asm;

/// IA32_APIC_BASE and its global-enable bit.
pub const MSR_APIC_BASE: u32 = 0x1b;
pub const APIC_BASE_ENABLE: u64 = 1 << 11;

pub fn outb(port: u16, val: u8) {
    // SAFETY: the shim owns the machine; the ports it names are the legacy devices it drives.
    unsafe { x86_64::instructions::port::Port::new(port).write(val) }
}

pub fn inb(port: u16) -> u8 {
    // SAFETY: see outb.
    unsafe { x86_64::instructions::port::Port::new(port).read() }
}

pub fn outl(port: u16, val: u32) {
    // SAFETY: see outb.
    unsafe { x86_64::instructions::port::Port::new(port).write(val) }
}

pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The CPU honours the no-execute bit in page-table entries (CPUID 0x80000001 EDX bit 20).
pub fn has_no_execute() -> bool {
    cpuid(0x8000_0001, 0).3 & (1 << 20) != 0
}

/// Supervisor-mode execution prevention (CPUID 7 EBX bit 7).
pub fn has_smep() -> bool {
    cpuid(7, 0).1 & (1 << 7) != 0
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: callers write architectural or hypervisor-advertised MSRs with valid values.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) }
}

pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: callers read architectural MSRs that exist on every x86-64 CPU.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}

/// The faulting address of the last page fault (ring 0 only: PVH and native).
pub fn cr2() -> u64 {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    cr2
}

/// Drops any TLB entry for the page holding `addr` (ring 0 only: PVH and native).
pub fn invlpg(addr: u64) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(addr));
}

pub fn interrupts_enabled() -> bool {
    x86_64::instructions::interrupts::are_enabled()
}

pub fn disable_interrupts() {
    x86_64::instructions::interrupts::disable();
}

pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

/// Interrupts on, halt until one arrives, interrupts off again: no lost wake-up, because
/// `sti` takes effect only after the following `hlt` has started.
pub fn wait_for_interrupt() {
    // SAFETY: enabling interrupts is fine here: handlers run on the IST stack and return.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// PV's `halt_forever`: `cli` and `hlt` are privileged in Xen's guest-kernel mode (they would
/// fault), so after SCHEDOP_shutdown, which does not return, the vCPU just spins.
pub fn spin_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
