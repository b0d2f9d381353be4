//! xen/include/public/hvm/hvm_vcpu.h: the state VCPUOP_initialise starts a PVH vCPU in.
//! The shim starts its vCPUs directly in long mode (`VCPU_HVM_MODE_64B`): Xen sets the hidden
//! parts of the segment registers to a flat 64-bit environment, and the vCPU loads its own
//! GDT and selectors first thing.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const VCPU_HVM_MODE_32B: u32 = 0;
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// `struct vcpu_hvm_x86_64`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuHvmX86_64 {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuHvmX86_64>() == 112);

/// The `cpu_regs` union: the 64-bit view, padded to the 32-bit view's 120 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuHvmRegs {
    pub x86_64: VcpuHvmX86_64,
    pub x86_32_tail: [u8; 8],
}

/// `struct vcpu_hvm_context`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuHvmContext {
    pub mode: u32,
    pub pad: u32,
    pub cpu_regs: VcpuHvmRegs,
}
const _: () = assert!(core::mem::size_of::<VcpuHvmContext>() == 128);
