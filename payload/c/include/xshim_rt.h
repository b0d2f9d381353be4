/* xshim C kit: the runtime around the call gate (payload/c/src/start.c).
 * The payload ABI itself (calls, structs, constants) is ../../include/xshim.h. */
#ifndef XSHIM_RT_H
#define XSHIM_RT_H
#include <stdint.h>
#include <stddef.h>
#include "xshim.h"

/* The boot info the shim passed to _start (a copy at the top of the payload's stack). */
extern const struct xshim_boot_info *xshim_boot;

/* %rsp as _start found it: the boot info's address less 8 (as just after a `call`). */
extern uint64_t xshim_entry_rsp;

/* One call through the gate: XSHIM_* call number and up to four arguments. */
int64_t xshim_call(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3);

/* MONOTONIC_NS: nanoseconds since boot; stands still while the guest is saved. */
uint64_t xshim_monotonic_ns(void);
/* WAIT until `deadline_ns` (monotonic) or an event; returns the XSHIM_WAKE_* bits. */
uint64_t xshim_wait(uint64_t deadline_ns);
/* Sleeps until `deadline_ns` has passed (WAIT in a loop: other wake-ups are absorbed). */
void xshim_sleep_until(uint64_t deadline_ns);
/* VCPU_START: vCPU `vcpu` runs `entry(arg)` on the stack [stack, stack + stack_bytes)
 * (16-byte aligned top; the vCPU owns it from now on). `entry` must not return. */
int64_t xshim_vcpu_start(uint64_t vcpu, void (*entry)(uint64_t arg), void *stack, size_t stack_bytes, uint64_t arg);

/* The name main() gets as argv[0]; define your own `const char *xshim_program_name`. */
extern const char *xshim_program_name;

/* Most words main() gets from the command line (the rest are dropped with a warning). */
#define XSHIM_MAX_ARGS 64
/* Longest payload command line kept (the shim keeps at most 1024 bytes of its own). */
#define XSHIM_MAX_CMDLINE 1024

#endif
