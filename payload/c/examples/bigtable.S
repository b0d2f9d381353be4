/* ctick's 64 MiB initialised table (-DCTICK_BIGTABLE): word i = splitmix64(i ^ 0x5eed), the
 * file `bigtable.bin` written by `xshim build`. It becomes a 64 MiB PT_LOAD of the payload. */
    .section .rodata.bigtable, "a"
    .p2align 12
    .globl bigtable
bigtable:
    .incbin "bigtable.bin"
    .globl bigtable_end
bigtable_end:
    .section .note.GNU-stack, "", @progbits
