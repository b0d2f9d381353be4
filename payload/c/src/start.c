/* xshim C kit: from the boot info to main(argc, argv), and out through exit(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xshim_rt.h"

const struct xshim_boot_info *xshim_boot;
uint64_t xshim_entry_rsp;
static xshim_call_t gate;
__attribute__((weak)) const char *xshim_program_name = "payload";

int main(int argc, char **argv);
void __xshim_c_start(const struct xshim_boot_info *boot) __attribute__((noreturn, used));

int64_t xshim_call(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
    return gate(nr, a0, a1, a2, a3);
}

uint64_t xshim_monotonic_ns(void)
{
    return (uint64_t)xshim_call(XSHIM_MONOTONIC_NS, 0, 0, 0, 0);
}

uint64_t xshim_wait(uint64_t deadline_ns)
{
    return (uint64_t)xshim_call(XSHIM_WAIT, deadline_ns, 0, 0, 0);
}

void xshim_sleep_until(uint64_t deadline_ns)
{
    while (xshim_monotonic_ns() < deadline_ns)
        xshim_wait(deadline_ns);
}

int64_t xshim_vcpu_start(uint64_t vcpu, void (*entry)(uint64_t arg), void *stack, size_t stack_bytes, uint64_t arg)
{
    uint64_t top = ((uint64_t)(uintptr_t)stack + stack_bytes) & ~(uint64_t)15;
    return xshim_call(XSHIM_VCPU_START, vcpu, (uint64_t)(uintptr_t)entry, top, arg);
}

static char cmdline[XSHIM_MAX_CMDLINE + 1];
static char *argv[XSHIM_MAX_ARGS + 2];

static int split_words(char *s, char **out, int max, int *dropped)
{
    int n = 0;
    *dropped = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n')
            *s++ = 0;
        if (!*s)
            break;
        if (n < max)
            out[n++] = s;
        else
            (*dropped)++;
        while (*s && *s != ' ' && *s != '\t' && *s != '\n')
            s++;
    }
    out[n] = NULL;
    return n;
}

void __xshim_c_start(const struct xshim_boot_info *boot)
{
    if (boot->magic != XSHIM_BOOT_MAGIC)
        __builtin_trap(); /* no call gate to report through: the shim reports the fault */
    gate = (xshim_call_t)(uintptr_t)boot->call;
    xshim_boot = boot;
    int64_t len = xshim_call(XSHIM_CMDLINE, (uint64_t)(uintptr_t)cmdline, XSHIM_MAX_CMDLINE, 0, 0);
    if (len > XSHIM_MAX_CMDLINE)
        fprintf(stderr, "%s: command line of %lld bytes cut to %d\n", xshim_program_name, (long long)len, XSHIM_MAX_CMDLINE);
    cmdline[len < 0 ? 0 : len > XSHIM_MAX_CMDLINE ? XSHIM_MAX_CMDLINE : len] = 0;
    argv[0] = (char *)xshim_program_name;
    int dropped;
    int argc = 1 + split_words(cmdline, argv + 1, XSHIM_MAX_ARGS, &dropped);
    if (dropped)
        fprintf(stderr, "%s: %d command-line words past the first %d dropped\n", xshim_program_name, dropped, XSHIM_MAX_ARGS);
    exit(main(argc, argv));
}

__attribute__((noreturn)) void exit(int code)
{
    fflush(stdout);
    xshim_call(XSHIM_SHUTDOWN, XSHIM_SHUTDOWN_POWEROFF, (uint64_t)(uint32_t)code, 0, 0);
    for (;;)
        __builtin_trap();
}

__attribute__((noreturn)) void abort(void)
{
    fflush(stdout);
    fputs("abort()\n", stderr);
    xshim_call(XSHIM_SHUTDOWN, XSHIM_SHUTDOWN_CRASH, 134, 0, 0);
    for (;;)
        __builtin_trap();
}

__attribute__((noreturn)) void __xshim_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: %s: assertion `%s' failed\n", file, line, func, expr);
    abort();
}

char *getenv(const char *name)
{
    (void)name;
    return NULL;
}
