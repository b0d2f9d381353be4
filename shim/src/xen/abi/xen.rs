//! xen/include/public/xen.h and arch-x86/xen-x86_64.h: hypercall numbers, shared_info,
//! vcpu_info, vcpu_time_info (x86_64 layout).
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub mod hypercall {
    pub const SET_TRAP_TABLE: usize = 0;
    pub const MMU_UPDATE: usize = 1;
    pub const SET_GDT: usize = 2;
    pub const STACK_SWITCH: usize = 3;
    pub const IRET: usize = 23;
    pub const MMUEXT_OP: usize = 26;
    pub const CALLBACK_OP: usize = 30;
    pub const UPDATE_VA_MAPPING: usize = 14;
    pub const MEMORY_OP: usize = 12;
    pub const XEN_VERSION: usize = 17;
    pub const CONSOLE_IO: usize = 18;
    pub const GRANT_TABLE_OP: usize = 20;
    pub const VCPU_OP: usize = 24;
    pub const SCHED_OP: usize = 29;
    pub const EVENT_CHANNEL_OP: usize = 32;
    pub const HVM_OP: usize = 34;
}

/// XENVER_version: returns major << 16 | minor.
pub const XENVER_VERSION: u64 = 0;
/// CONSOLEIO_write: write to the hypervisor console (`xl dmesg`).
pub const CONSOLEIO_WRITE: u64 = 0;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the record.
    pub version: u32,
    pub pad0: u32,
    pub tsc_timestamp: u64,
    /// Nanoseconds of Xen system time at `tsc_timestamp`.
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
    pub pad1: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<VcpuTimeInfo>() == 32);

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ArchVcpuInfo {
    pub cr2: u64,
    pub pad: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub evtchn_upcall_mask: u8,
    pub pad: [u8; 6],
    pub evtchn_pending_sel: u64,
    pub arch: ArchVcpuInfo,
    pub time: VcpuTimeInfo,
}
const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);

pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// 2-level event channel ABI: 64 words of 64 bits = 4096 ports.
pub const EVTCHN_WORDS: usize = 64;

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ArchSharedInfo {
    pub max_pfn: u64,
    pub pfn_to_mfn_frame_list_list: u64,
    pub nmi_reason: u64,
    pub p2m_cr3: u64,
    pub p2m_vaddr: u64,
    pub p2m_generation: u64,
}
const _: () = assert!(core::mem::size_of::<ArchSharedInfo>() == 48);

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    pub evtchn_pending: [u64; EVTCHN_WORDS],
    pub evtchn_mask: [u64; EVTCHN_WORDS],
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
    pub arch: ArchSharedInfo,
}
const _: () = assert!(core::mem::offset_of!(SharedInfo, evtchn_pending) == 2048);
const _: () = assert!(core::mem::offset_of!(SharedInfo, wc_version) == 3072);
const _: () = assert!(core::mem::offset_of!(SharedInfo, arch) == 3088);
const _: () = assert!(core::mem::size_of::<SharedInfo>() == 3136);

/// PV: the machine-to-physical table, read-only at this address in every 64-bit PV guest
/// (arch-x86/xen-x86_64.h MACH2PHYS_VIRT_START).
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;

/// `struct mmu_update`: `ptr` is the machine address of the entry (low 2 bits: command).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}
const _: () = assert!(core::mem::size_of::<MmuUpdate>() == 16);
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// update_va_mapping flag: flush just this entry from the TLB.
pub const UVMF_INVLPG: u64 = 2;

/// start_info.flags: mod_start is a pfn rather than a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ConsoleDomU {
    pub mfn: u64,
    pub evtchn: u32,
    pub pad: u32,
}
const _: () = assert!(core::mem::size_of::<ConsoleDomU>() == 16);

/// `struct start_info` (x86_64): what a PV guest finds in %rsi at entry.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct StartInfo {
    /// "xen-<version>-x86_64".
    pub magic: [u8; 32],
    pub nr_pages: u64,
    /// Machine address of shared_info.
    pub shared_info: u64,
    pub flags: u32,
    pub pad0: u32,
    pub store_mfn: u64,
    pub store_evtchn: u32,
    pub pad1: u32,
    pub console: ConsoleDomU,
    /// Virtual address of the top-level page table.
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    /// Virtual address of the p2m array (pfn -> mfn).
    pub mfn_list: u64,
    pub mod_start: u64,
    pub mod_len: u64,
    pub cmd_line: [u8; 1024],
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}
const _: () = assert!(core::mem::size_of::<StartInfo>() == 1168);

/// arch-x86/xen.h `struct trap_info`: one entry of the PV trap table (HYPERVISOR_set_trap_table;
/// the table ends with an entry whose address is 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: the lowest privilege level allowed to raise it with `int`; bit 2
    /// (`TI_CLEAR_EVENT_MASK`): mask events on entry, like an interrupt gate.
    pub flags: u8,
    pub cs: u16,
    pub pad: u32,
    pub address: u64,
}

/// arch-x86/xen-x86_64.h `struct cpu_user_regs` (64-bit): a PV vCPU's registers.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub error_code: u32,
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub pad0: u16,
    pub saved_upcall_mask: u8,
    pub pad1: [u8; 3],
    /// rflags.IF == !saved_upcall_mask.
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub pad2: [u16; 3],
    pub es: u16,
    pub pad3: [u16; 3],
    pub ds: u16,
    pub pad4: [u16; 3],
    pub fs: u16,
    pub pad5: [u16; 3],
    pub gs: u16,
    pub pad6: [u16; 3],
}
const _: () = assert!(core::mem::size_of::<CpuUserRegs>() == 200);

/// `VGCF_in_kernel`: the vCPU starts in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_online`.
pub const VGCF_ONLINE: u64 = 1 << 5;

/// arch-x86/xen.h `struct vcpu_guest_context` (64-bit, as a guest sees it): the state
/// VCPUOP_initialise starts a PV vCPU in. The user page table goes in `ctrlreg[1]`, the
/// kernel's in `ctrlreg[3]` (both as `mfn << 12`).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VcpuGuestContext {
    pub fpu_ctxt: [u8; 512],
    pub flags: u64,
    pub user_regs: CpuUserRegs,
    pub trap_ctxt: [TrapInfo; 256],
    pub ldt_base: u64,
    pub ldt_ents: u64,
    pub gdt_frames: [u64; 16],
    pub gdt_ents: u64,
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    pub ctrlreg: [u64; 8],
    pub debugreg: [u64; 8],
    pub event_callback_eip: u64,
    pub failsafe_callback_eip: u64,
    pub syscall_callback_eip: u64,
    pub vm_assist: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuGuestContext>() == 5168);
const _: () = assert!(core::mem::size_of::<TrapInfo>() == 16);
/// arch-x86/xen-x86_64.h: the ring-3 kernel code selector of a 64-bit PV guest.
pub const FLAT_KERNEL_CS64: u16 = 0xe033;
pub const FLAT_KERNEL_SS64: u16 = 0xe02b;
/// The same selectors in guest user mode: an iret frame whose CS has RPL 3 makes Xen switch
/// the vCPU to user mode and to its user page table (MMUEXT_NEW_USER_BASEPTR).
pub const FLAT_USER_CS64: u16 = 0xe033;
pub const FLAT_USER_SS64: u16 = 0xe02b;

/// MMUEXT_OP commands (xen.h) the PV shim uses.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// Flushes this vCPU's TLB (after page-table entries were cleared with mmu_update).
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// Sets the page table Xen switches to in guest user mode (64-bit PV only).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;

/// xen.h `struct mmuext_op` (64-bit): cmd, then one machine frame / linear address, then a
/// second argument we never use.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct MmuextOp {
    pub cmd: u32,
    pub pad: u32,
    pub arg1: u64,
    pub arg2: u64,
}
const _: () = assert!(core::mem::size_of::<MmuextOp>() == 24);

/// arch-x86/xen.h: GDT entries from here on are Xen's (the flat selectors above); a guest's
/// own GDT (HYPERVISOR_set_gdt) may have at most this many.
pub const FIRST_RESERVED_GDT_ENTRY: u32 = 14 * 512;
