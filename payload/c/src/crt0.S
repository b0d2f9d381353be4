/* xshim C kit: the payload's entry point. The shim enters _start in user mode with %rdi =
 * the boot info and %rsp = the top of the payload's stack less 8 (as just after a `call`:
 * %rsp + 8 is 16-byte aligned), the boot info copied just above. .bss is already zero (the
 * shim zero-fills every segment past its file bytes), so nothing here touches it: clearing a
 * large .bss again would populate every one of its pages. */
    .section .text._start, "ax"
    .globl _start
    .type _start, @function
_start:
    mov     %rsp, xshim_entry_rsp(%rip) /* kept for the record (ctick checks the ABI's word) */
    xor     %ebp, %ebp                  /* the outermost frame, for debuggers */
    and     $-16, %rsp                  /* SysV: 16-byte aligned before the call */
    call    __xshim_c_start             /* (boot info): main(), then exit(); no return */
    ud2
    .size _start, . - _start

/* The payload ABI version this payload was built for (read by the shim and `xshim inspect`):
 * owner "XSHIM", type 1, a 4-byte version. */
    .section .note.xshim, "a", @note
    .p2align 2
    .long   6                           /* namesz: "XSHIM\0" */
    .long   4                           /* descsz */
    .long   1                           /* type: ABI version */
    .asciz  "XSHIM"
    .p2align 2
    .long   1                           /* XSHIM_ABI_VERSION */

    .section .note.GNU-stack, "", @progbits
