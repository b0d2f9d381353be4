//! Which vCPU is running, and the pieces of bringing another one up that are the CPU's:
//! each vCPU runs the shim only on its own stacks, so the stack pointer names it (no per-CPU
//! register to keep right across traps; only `syscall_entry`, which has no stack yet, finds
//! its vCPU's through the kernel GS base, and swaps straight back).
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const MAX_VCPUS: usize = xshim_payload::abi::MAX_VCPUS as usize;

/// A secondary vCPU's stacks, one block each: the IST stack of double faults, NMIs and
/// machine checks at the bottom, the entry stack (its calls, traps from the payload, its idle
/// loop) above it. The shim's own static stacks are vCPU 0's.
pub const SECONDARY_FAULT_STACK: u64 = 8 * 1024;
pub const SECONDARY_STACKS: u64 = 64 * 1024;

/// `[base, base + SECONDARY_STACKS)` of each secondary vCPU (0: none).
static STACK_BASE: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
/// Secondaries with stacks (vCPUs 1 ..= this - 1).
static WITH_STACKS: AtomicUsize = AtomicUsize::new(1);

/// Gives the secondaries 1 .. `count` their stacks from `base` (page-aligned, mapped,
/// `(count - 1) * SECONDARY_STACKS` bytes that nothing else uses).
pub fn set_secondary_stacks(base: u64, count: usize) {
    for (v, slot) in STACK_BASE.iter().enumerate().take(count.min(MAX_VCPUS)).skip(1) {
        slot.store(base + (v as u64 - 1) * SECONDARY_STACKS, Ordering::Release);
    }
    WITH_STACKS.store(count.min(MAX_VCPUS), Ordering::Release);
}

/// vCPU `v`'s stacks (v ≥ 1, after `set_secondary_stacks`).
pub fn secondary_stacks(v: usize) -> super::tables::VcpuStacks {
    let base = STACK_BASE[v].load(Ordering::Acquire);
    super::tables::VcpuStacks { entry_top: base + SECONDARY_STACKS, fault_top: base + SECONDARY_FAULT_STACK }
}

fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reading %rsp has no effect.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// The running vCPU's number: the one whose stacks hold the stack pointer (vCPU 0 runs on
/// the shim's static stacks, never in a secondary's block).
pub fn current() -> usize {
    let n = WITH_STACKS.load(Ordering::Relaxed);
    if n <= 1 {
        return 0;
    }
    let sp = stack_pointer();
    (1..n)
        .find(|&v| {
            let base = STACK_BASE[v].load(Ordering::Relaxed);
            base != 0 && sp > base && sp <= base + SECONDARY_STACKS
        })
        .unwrap_or(0)
}

/// The control registers a secondary starts with: vCPU 0's (the same page tables, the same
/// protection, SSE enabled).
pub fn control_registers() -> (u64, u64, u64, u64) {
    use x86_64::registers::control::{Cr0, Cr3, Cr4};
    use x86_64::registers::model_specific::Efer;
    let (frame, flags) = Cr3::read_raw();
    (Cr0::read_raw(), frame.start_address().as_u64() | flags as u64, Cr4::read_raw(), Efer::read_raw())
}

extern "C" {
    fn secondary_start64();
}

/// Where a secondary starts (entry.S: 64-bit mode, %rsp its entry stack, %rdi its number).
pub fn secondary_entry() -> u64 {
    secondary_start64 as *const () as u64
}

/// The x87/SSE state a payload starts with (the same reset state vCPU 0's payload got).
pub fn reset_fpu() {
    // SAFETY: FNINIT only resets the x87 unit; CR4.OSFXSR is set (copied from vCPU 0), and
    // the default MXCSR (0x1f80: all exceptions masked) is what the payload expects.
    unsafe {
        let mxcsr: u32 = 0x1f80;
        core::arch::asm!("fninit", "ldmxcsr [{}]", in(reg) &mxcsr, options(nostack));
    }
}
