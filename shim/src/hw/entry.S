/* The PVH entry (xen/include/public/arch-x86/hvm/start_info.h): 32-bit protected mode,
 * paging off, only CR0.PE set, %ebx = physical address of hvm_start_info. We build nothing
 * at run time: the boot page tables below identity-map 0..4 GiB with 2 MiB pages. */

    .section .text.entry32, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    mov     %ebx, %edi                      /* hvm_start_info, first argument of pvh_main */
    mov     $boot_stack_top, %esp
    mov     %cr4, %eax
    or      $0x620, %eax                    /* PAE | OSFXSR | OSXMMEXCPT */
    mov     %eax, %cr4
    mov     $boot_pml4, %eax
    mov     %eax, %cr3
    mov     $0xc0000080, %ecx               /* EFER */
    rdmsr
    or      $0x100, %eax                    /* LME */
    wrmsr
    mov     %cr0, %eax
    and     $~0x60000004, %eax              /* clear CD and NW (firmware may leave caching off), EM */
    or      $0x80010022, %eax               /* PG | WP | NE | MP */
    mov     %eax, %cr0
    lgdt    boot_gdt_ptr
    ljmp    $0x08, $long_mode_entry

    .code64
long_mode_entry:
    mov     $0x10, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    mov     %eax, %fs
    mov     %eax, %gs
    mov     $boot_stack_top, %rsp
    mov     %edi, %edi                      /* zero-extend the start_info address */
    xor     %ebp, %ebp
    call    pvh_main
    ud2

/* The 64-bit PV entry (XEN_ELFNOTE_ENTRY, layout::PV_ENTRY): long mode already, the kernel in
 * ring 3 on Xen's bootstrap pagetables, %rsi = start_info (virtual). */
    .org    0x200
    .globl pv_start64
pv_start64:
    cld
    mov     $boot_stack_top, %rsp
    mov     %rsi, %rdi
    xor     %ebp, %ebp
    call    pv_main
    ud2

/* The hypercall page (XEN_ELFNOTE_HYPERCALL_PAGE, layout::HYPERCALL_PAGE), pre-filled with
 * `ret` so that a page Xen did not fill is detectable. */
    .section .text.hypercall_page, "ax"
    .globl hypercall_page
hypercall_page:
    .fill   4096, 1, 0xc3

/* Entering the payload: every general register but %rdi (its argument) cleared, so nothing
 * of the shim's leaks to it. */
    .macro CLEAR_REGS_BUT_RDI
    xor     %eax, %eax
    xor     %ebx, %ebx
    xor     %ecx, %ecx
    xor     %edx, %edx
    xor     %esi, %esi
    xor     %ebp, %ebp
    xor     %r8d, %r8d
    xor     %r9d, %r9d
    xor     %r10d, %r10d
    xor     %r11d, %r11d
    xor     %r12d, %r12d
    xor     %r13d, %r13d
    xor     %r14d, %r14d
    xor     %r15d, %r15d
    .endm

/* Returning from a call: the caller-saved registers that carried arguments, cleared. */
    .macro CLEAR_ARG_REGS
    xor     %edi, %edi
    xor     %esi, %esi
    xor     %edx, %edx
    xor     %r8d, %r8d
    xor     %r9d, %r9d
    xor     %r10d, %r10d
    .endm

/* PV: drop to the payload in Xen's guest user mode: rdi = entry, rsi = stack top, rdx =
 * BootInfo. An iret frame with FLAT_USER_CS64 (RPL 3) makes Xen switch the vCPU to user mode
 * and to the user page table (MMUEXT_NEW_USER_BASEPTR); rflags.IF unmasks events. The
 * general registers are cleared (the hypercall page's iret stub pushes rcx, r11, rax). */
    .section .text, "ax"
    .globl enter_payload_pv_user
enter_payload_pv_user:
    sub     $8, %rsi
    movq    $0, (%rsi)                      /* fake return address: the entry must not return */
    push    $0xe02b                         /* FLAT_USER_SS64 */
    push    %rsi
    push    $0x202                          /* IF: events on */
    push    $0xe033                         /* FLAT_USER_CS64 */
    push    %rdi
    push    $0                              /* iret flags: not returning from a syscall */
    mov     %rdx, %rdi
    CLEAR_REGS_BUT_RDI
    jmp     hypercall_page + 23 * 32        /* __HYPERVISOR_iret */

/* PV: the shim side of the payload's `syscall` (CALLBACKTYPE_syscall). Xen enters on the
 * stack HYPERVISOR_stack_switch named, events masked, with [rcx, r11, rip, cs, rflags, rsp,
 * ss]: rcx and r11 are the payload's return address and rflags, which the frame holds too.
 * Call payload_call(nr, a0, a1, a2, a3) and return through HYPERVISOR_iret with the frame
 * Xen built (RPL 3: back to user mode; IF: events on again). */
    .globl pv_syscall_entry
pv_syscall_entry:
    add     $16, %rsp
    push    %rbp                            /* keeps %rsp 16-byte aligned for the call */
    mov     %r10, %rcx
    call    payload_call
    pop     %rbp
    CLEAR_ARG_REGS
    push    $0                              /* iret flags */
    jmp     hypercall_page + 23 * 32        /* __HYPERVISOR_iret */

/* PVH and native: drop to the payload in ring 3 with interrupts on: rdi = entry, rsi =
 * stack top, rdx = BootInfo. The selectors are tables.rs's user data (0x18) and code (0x20)
 * with RPL 3. The general registers are cleared: nothing of the shim's leaks. Never returns. */
    .globl enter_payload_user
enter_payload_user:
    sub     $8, %rsi
    movq    $0, (%rsi)                      /* fake return address: the entry must not return */
    push    $0x1b
    push    %rsi
    push    $0x202                          /* IF, and the reserved bit 1 */
    push    $0x23
    push    %rdi
    mov     %rdx, %rdi
    CLEAR_REGS_BUT_RDI
    iretq

/* The call gate as the payload sees it (BootInfo.call, a sysv64 function of (nr, a0..a3)):
 * the only shim page a user-mode payload may execute (linker/shim.ld). `syscall` takes %rcx
 * for the return address, so the fourth argument travels in %r10. */
    .section .user_gate, "ax"
    .globl payload_call_gate
payload_call_gate:
    mov     %rcx, %r10
    syscall
    ret

/* The shim side of `syscall` (LSTAR): interrupts off (SFMASK), still on the payload's stack.
 * Switch to this vCPU's entry stack (found through the kernel GS base, tables.rs's
 * SyscallBlock: the payload's %rsp at 0, the stack top at 8; GS is swapped back at once, so
 * the shim never runs with the payload's GS base swapped out), call payload_call(nr, a0, a1,
 * a2, a3) and go back with sysretq; the caller-saved registers that carried arguments are
 * cleared on the way out. */
    .section .text, "ax"
    .globl syscall_entry
syscall_entry:
    swapgs
    mov     %rsp, %gs:0
    mov     %gs:8, %rsp
    push    %gs:0
    swapgs
    push    %rcx                            /* the payload's return address */
    push    %r11                            /* its rflags */
    push    %rbp                            /* keeps %rsp 16-byte aligned for the call */
    mov     %r10, %rcx
    call    payload_call
    pop     %rbp
    pop     %r11
    pop     %rcx
    pop     %rsp
    CLEAR_ARG_REGS
    sysretq

/* A secondary vCPU, started by VCPUOP_initialise on the shim's page tables (PVH: 64-bit
 * mode; PV: guest kernel mode): %rsp = the top of its entry stack, %rdi = its number. */
    .globl secondary_start64
secondary_start64:
    cld
    xor     %ebp, %ebp
    call    secondary_main
    ud2

/* Both trap paths: save the general registers in `TrapFrame` order, call
 * trap_dispatch(&mut TrapFrame), restore them and drop the vector and error code. */
    .macro DISPATCH_TRAP
    push    %rax
    push    %rbx
    push    %rcx
    push    %rdx
    push    %rsi
    push    %rdi
    push    %rbp
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    mov     %rsp, %rdi
    cld
    call    trap_dispatch
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %r11
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rbp
    pop     %rdi
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rbx
    pop     %rax
    add     $16, %rsp
    .endm

/* Trap stubs: push a zero error code where the CPU pushes none, then the vector number,
 * save the general registers in `TrapFrame` order, and call trap_dispatch(&mut TrapFrame). */
    .macro TRAP_NOERR n
trap_stub_\n:
    push    $0
    push    $\n
    jmp     trap_common
    .endm
    .macro TRAP_ERR n
trap_stub_\n:
    push    $\n
    jmp     trap_common
    .endm

    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,64,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,243,255
    TRAP_NOERR \n
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    TRAP_ERR \n
    .endr

trap_common:
    DISPATCH_TRAP
    iretq

/* PV traps and the event callback. Xen enters a 64-bit PV guest with %rcx and %r11 of the
 * interrupted context pushed above the usual frame ([rcx, r11, (error code), rip, cs, rflags,
 * rsp, ss]): restore them, then build the same TrapFrame as above. A PV guest cannot `iretq`
 * to itself: it returns through HYPERVISOR_iret, which also restores the event mask from the
 * saved rflags.IF (Xen sets IF there to "events were unmasked"). */
    .macro PV_TRAP n, has_error_code
    .globl pv_trap_stub_\n
pv_trap_stub_\n:
    mov     (%rsp), %rcx
    mov     8(%rsp), %r11
    add     $16, %rsp
    .if \has_error_code == 0
    push    $0
    .endif
    push    $\n
    jmp     pv_trap_common
    .endm

    .irp n, 0,1,2,3,4,5,6,7,9,16,18,19,243
    PV_TRAP \n, 0
    .endr
    .irp n, 8,10,11,12,13,14,17
    PV_TRAP \n, 1
    .endr

pv_trap_common:
    DISPATCH_TRAP
    push    $0                              /* iret flags: not returning from a syscall */
    jmp     hypercall_page + 23 * 32        /* __HYPERVISOR_iret */

/* Xen calls this when it cannot load the guest's segment registers on the way back to it:
 * [rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss]. Nothing to repair: report and crash. */
    .globl pv_failsafe_callback
pv_failsafe_callback:
    mov     %rsp, %rdi
    and     $-16, %rsp
    call    pv_failsafe
    ud2

    .section .rodata.trap_stubs, "a"
    .balign 8
    .globl trap_stub_table
trap_stub_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,64,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,243,255
    .quad \n, trap_stub_\n
    .endr
    .globl trap_stub_count
trap_stub_count:
    .quad 51

    .section .data.boot_tables, "aw"
    .balign 4096
boot_pml4:
    .quad   boot_pdpt + 0x3
    .fill   511, 8, 0
boot_pdpt:
    .quad   boot_pd + 0x3
    .quad   boot_pd + 0x1003
    .quad   boot_pd + 0x2003
    .quad   boot_pd + 0x3003
    .fill   508, 8, 0
boot_pd:
    .set    pde, 0
    .rept   2048
    .quad   (pde << 21) | 0x83              /* present | writable | 2 MiB page */
    .set    pde, pde + 1
    .endr

    .balign 16
boot_gdt:
    .quad   0
    .quad   0x00af9a000000ffff              /* 0x08: 64-bit code */
    .quad   0x00cf92000000ffff              /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word   boot_gdt_end - boot_gdt - 1
    .long   boot_gdt
    .long   0

    .section .bss.kernel_entry_stack, "aw", @nobits
    .balign 16
    /* The stack the shim runs on when the payload enters it: its calls (syscall_entry) and
     * its exceptions (the TSS's ring-0 stack). Never both at once: a call runs in ring 0. */
    .skip   65536
    .globl kernel_entry_stack_top
kernel_entry_stack_top:

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
    .skip   65536
    .globl boot_stack_top
boot_stack_top:
