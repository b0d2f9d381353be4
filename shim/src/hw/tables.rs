//! The x86-64 machine state the shim sets up: entry.S (the PVH and PV entries, trap stubs,
//! the hypercall page), the GDT with its TSS and IST stacks, the IDT, the frame the trap
//! stubs save, and the jump into the payload.
use core::arch::global_asm;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;
use xshim_shim::layout;
use super::smp::MAX_VCPUS;

global_asm!(include_str!("entry.S"), options(att_syntax));

/// Entries in entry.S's trap_stub_table (vectors 0-31 that have stubs, then the IRQs).
const TRAP_STUBS: usize = 51;

extern "C" {
    static trap_stub_table: [[u64; 2]; TRAP_STUBS];
    static kernel_entry_stack_top: u8;
    fn enter_payload_user(entry: u64, stack_top: u64, boot: u64) -> !;
    fn enter_payload_pv_user(entry: u64, stack_top: u64, boot: u64) -> !;
    fn syscall_entry();
    fn pv_syscall_entry();
    fn payload_call_gate();
}

/// The top of the stack the shim runs on when the payload enters it (calls, traps).
pub fn entry_stack_top() -> u64 {
    &raw const kernel_entry_stack_top as u64
}

/// Where `syscall` enters the shim (LSTAR), PVH and native.
pub fn syscall_entry_address() -> u64 {
    syscall_entry as *const () as u64
}

/// PV: entry.S's handler for the payload's `syscall` (Xen's syscall callback).
pub fn pv_syscall_callback() -> u64 {
    pv_syscall_entry as *const () as u64
}

/// The address of the call gate's user-mode stub (entry.S), which the payload calls.
pub fn user_call_gate() -> u64 {
    payload_call_gate as *const () as u64
}

/// Registers saved by trap_common, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[repr(C, align(16))]
struct Stack<const N: usize>([u8; N]);

static mut FAULT_STACK: Stack<{ layout::FAULT_STACK_SIZE }> = Stack([0; layout::FAULT_STACK_SIZE]);
/// The GDT's selectors, in the order `syscall`/`sysret` require: kernel code, kernel data,
/// then user data and user code (entry.S's `enter_payload_user` uses 0x18 and 0x20, RPL 3).
struct Selectors {
    kernel_code: SegmentSelector,
    kernel_data: SegmentSelector,
    user_data: SegmentSelector,
    user_code: SegmentSelector,
    tss: SegmentSelector,
}
/// Each vCPU's TSS (its ring-0 and IST stacks) and GDT (which holds that TSS); the IDT is
/// shared.
struct VcpuTables {
    tss: spin::Once<TaskStateSegment>,
    gdt: spin::Once<(GlobalDescriptorTable, Selectors)>,
}
static VCPU_TABLES: [VcpuTables; MAX_VCPUS] = [const { VcpuTables { tss: spin::Once::new(), gdt: spin::Once::new() } }; MAX_VCPUS];
static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// What `syscall_entry` finds through the kernel GS base (swapgs): a scratch word for the
/// payload's %rsp and the top of this vCPU's entry stack. entry.S uses the offsets 0 and 8.
#[repr(C)]
struct SyscallBlock {
    user_rsp: u64,
    entry_stack_top: u64,
}
static mut SYSCALL_BLOCKS: [SyscallBlock; MAX_VCPUS] = [const { SyscallBlock { user_rsp: 0, entry_stack_top: 0 } }; MAX_VCPUS];

/// IST slots. Double faults, NMIs and machine checks run on a stack of their own. Interrupts
/// (Xen's upcall, the LAPIC timer) do not: from the payload they arrive on the TSS's ring-0
/// stack, in the shim on the stack they interrupt, so a nested or spurious delivery (seen from
/// the lab's emulated SVM: a storm of upcalls with nothing pending) stacks below the frame it
/// interrupted instead of overwriting it from the top of a shared IST stack.
const IST_FAULT: u16 = 0;

fn stack_top<const N: usize>(stack: *mut Stack<N>) -> VirtAddr {
    VirtAddr::new(stack as u64 + N as u64)
}

/// The stacks a vCPU's descriptor tables name: where traps from the payload and its calls
/// land (`entry_top`), and the IST stack of double faults, NMIs and machine checks.
#[derive(Debug, Clone, Copy)]
pub struct VcpuStacks {
    pub entry_top: u64,
    pub fault_top: u64,
}

/// vCPU 0's stacks: entry.S's entry stack and a static fault stack.
pub fn boot_vcpu_stacks() -> VcpuStacks {
    VcpuStacks { entry_top: entry_stack_top(), fault_top: stack_top(&raw mut FAULT_STACK).as_u64() }
}

/// Loads the shim's GDT (with user segments, and a TSS for the IST stacks and the stack a
/// trap from the payload's ring 3 lands on) and IDT on this vCPU, and points `syscall` at the
/// call gate with this vCPU's entry stack. Once per vCPU (`vcpu` < MAX_VCPUS).
pub fn init_descriptor_tables(vcpu: usize, stacks: VcpuStacks) {
    let tables = &VCPU_TABLES[vcpu];
    let tss = tables.tss.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[IST_FAULT as usize] = VirtAddr::new(stacks.fault_top);
        tss.privilege_stack_table[0] = VirtAddr::new(stacks.entry_top);
        tss
    });
    let (gdt, sel) = tables.gdt.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { kernel_code, kernel_data, user_data, user_code, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded; the code selector is a 64-bit code
    // segment and the data selector a writable data segment, as the CPU requires.
    unsafe {
        use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
        CS::set_reg(sel.kernel_code);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        SS::set_reg(sel.kernel_data);
        x86_64::instructions::tables::load_tss(sel.tss);
    }
    // SAFETY: this vCPU's own block, written before its `syscall` can be used (SCE is set
    // below), and read only by entry.S on this vCPU.
    let block = unsafe {
        let b = &raw mut SYSCALL_BLOCKS[vcpu];
        (*b).entry_stack_top = stacks.entry_top;
        b as u64
    };
    x86_64::registers::model_specific::KernelGsBase::write(VirtAddr::new(block));
    init_syscall(sel);
    let idt = IDT.call_once(build_idt);
    idt.load();
}

fn build_idt() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    // SAFETY: trap_stub_table is a static table of (vector, stub address) pairs emitted by
    // entry.S; every stub ends in iretq with the frame the CPU pushed for that vector.
    let table = unsafe { &trap_stub_table };
    for &[vector, addr] in table {
        let addr = VirtAddr::new(addr);
        // SAFETY: each address is the matching stub for `vector` (error code or not), and
        // the IST indices name stacks installed in the TSS above.
        unsafe {
            let opts = match vector {
                0 => idt.divide_error.set_handler_addr(addr),
                1 => idt.debug.set_handler_addr(addr),
                2 => idt.non_maskable_interrupt.set_handler_addr(addr).set_stack_index(IST_FAULT),
                3 => idt.breakpoint.set_handler_addr(addr),
                4 => idt.overflow.set_handler_addr(addr),
                5 => idt.bound_range_exceeded.set_handler_addr(addr),
                6 => idt.invalid_opcode.set_handler_addr(addr),
                7 => idt.device_not_available.set_handler_addr(addr),
                8 => idt.double_fault.set_handler_addr(addr).set_stack_index(IST_FAULT),
                10 => idt.invalid_tss.set_handler_addr(addr),
                11 => idt.segment_not_present.set_handler_addr(addr),
                12 => idt.stack_segment_fault.set_handler_addr(addr),
                13 => idt.general_protection_fault.set_handler_addr(addr),
                14 => idt.page_fault.set_handler_addr(addr),
                16 => idt.x87_floating_point.set_handler_addr(addr),
                17 => idt.alignment_check.set_handler_addr(addr),
                18 => idt.machine_check.set_handler_addr(addr).set_stack_index(IST_FAULT),
                19 => idt.simd_floating_point.set_handler_addr(addr),
                20 => idt.virtualization.set_handler_addr(addr),
                21 => idt.cp_protection_exception.set_handler_addr(addr),
                28 => idt.hv_injection_exception.set_handler_addr(addr),
                29 => idt.vmm_communication_exception.set_handler_addr(addr),
                30 => idt.security_exception.set_handler_addr(addr),
                9 | 15 | 22..=27 | 31 => continue,
                v => idt[v as u8].set_handler_addr(addr),
            };
            let _ = opts;
        }
    }
    idt
}

/// `syscall` enters entry.S's `syscall_entry` in ring 0 with interrupts, single-step,
/// direction and alignment-check flags cleared; `sysretq` returns to ring 3.
fn init_syscall(sel: &Selectors) {
    use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
    use x86_64::registers::rflags::RFlags;
    Star::write(sel.user_code, sel.user_data, sel.kernel_code, sel.kernel_data).expect("the GDT is laid out for syscall/sysret");
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(RFlags::INTERRUPT_FLAG | RFlags::TRAP_FLAG | RFlags::DIRECTION_FLAG | RFlags::ALIGNMENT_CHECK);
    // SAFETY: SCE only makes `syscall` usable; its target was set just above.
    unsafe { Efer::update(|f| *f |= EferFlags::SYSTEM_CALL_EXTENSIONS) };
}

pub const EXCEPTION_NAMES: [&str; 32] = [
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range", "invalid opcode", "device not available",
    "double fault", "coprocessor overrun", "invalid TSS", "segment not present", "stack fault", "general protection",
    "page fault", "reserved", "x87 FP", "alignment check", "machine check", "SIMD FP", "virtualization", "control protection",
    "reserved", "reserved", "reserved", "reserved", "reserved", "reserved", "HV injection", "VMM communication", "security", "reserved",
];

/// Drops to the payload in ring 3 on its own stack with interrupts enabled (PVH, native).
/// # Safety
/// `entry` must be the loaded payload's entry, `stack_top` the top of its stack and
/// `boot_info` a pointer to its BootInfo, all mapped user-accessible.
pub unsafe fn enter_payload_ring3(entry: u64, stack_top: u64, boot_info: u64) -> ! {
    // SAFETY: the caller vouches for the arguments.
    unsafe { enter_payload_user(entry, stack_top, boot_info) }
}

/// PV: the same through Xen's guest user mode (events unmasked by the iret).
/// # Safety
/// As `enter_payload_ring3`, with the user page table installed (`pv_mm::protect`), the
/// syscall callback and kernel stack registered.
pub unsafe fn enter_payload_xen_pv_user(entry: u64, stack_top: u64, boot_info: u64) -> ! {
    // SAFETY: the caller vouches for the arguments.
    unsafe { enter_payload_pv_user(entry, stack_top, boot_info) }
}
