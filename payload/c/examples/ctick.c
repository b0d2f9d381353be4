/* ctick: the ticker (payload/src/bin/ticker.rs) written in C with the xshim C kit, line for
 * line the same workload, so the host's checker proves its continuity across save/restore
 * and migration the same way: `TICK <n> <monotonic_ns> <checksum>` once a second over 4 MiB
 * of malloc'd memory mutated each tick. At start it checks the kit itself (formatting,
 * strings, the heap, the clocks) and prints `CKIT selfcheck: PASS <n> checks`; each tick it
 * also checks that SSE floating point kept its state across the WAIT (a saved and restored
 * guest included). Built with -DCTICK_BIGTABLE (bigtable.S) it first checks a 64 MiB
 * initialised table in its ELF: `BIGTABLE ok ...`.
 * Arguments: ticks=N (stop after N ticks; default: forever), spin=1 (busy between ticks). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "xshim_rt.h"

const char *xshim_program_name = "ctick";

#define TICKER_BYTES (4u << 20)
#define MUTATIONS_PER_TICK 4096u

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static void fill(uint64_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w[i] = splitmix64(i);
}

static void mutate(uint64_t *w, size_t n, uint64_t tick)
{
    for (uint64_t j = 0; j < MUTATIONS_PER_TICK; j++) {
        uint64_t r = splitmix64(tick * 0x100000001ULL + j);
        size_t idx = (size_t)(r % n);
        w[idx] = rotl(w[idx], 7) ^ r ^ tick;
    }
}

static uint64_t checksum(const uint64_t *w, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = rotl((h ^ w[i]) * 0x100000001b3ULL, 5);
    return h;
}

static uint64_t arg(int argc, char **argv, const char *key, uint64_t dflt)
{
    size_t k = strlen(key);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], key, k) == 0 && argv[i][k] == '=')
            return strtoull(argv[i] + k + 1, NULL, 0);
    return dflt;
}

/* ---- the kit's own check ------------------------------------------------------------ */

static int checks, failures;

static void expect(const char *got, const char *want, const char *what)
{
    checks++;
    if (strcmp(got, want) != 0) {
        failures++;
        printf("CKIT-ERROR %s: got \"%s\", want \"%s\"\n", what, got, want);
    }
}

static void selfcheck(void)
{
    char b[128];
#define F(want, ...) do { snprintf(b, sizeof b, __VA_ARGS__); expect(b, want, #__VA_ARGS__); } while (0)
    F("42 -7 +5  3", "%d %i %+d % d", 42, -7, 5, 3);
    F("18446744073709551615", "%llu", 18446744073709551615ULL);
    F("-9223372036854775808", "%lld", (long long)(-9223372036854775807LL - 1));
    F("ff FF 0xff 0377", "%x %X %#x %#o", 255u, 255u, 255u, 255u);
    F("deadbeefcafe", "%lx", 0xdeadbeefcafeUL);
    F("0x800000", "%p", (void *)0x800000);
    F("[   ab] [ab   ] [00042] [  -42]", "[%5s] [%-5s] [%05d] [%5d]", "ab", "ab", 42, -42);
    F("abc x %", "%.3s %c %%", "abcdef", 'x');
    F("3.141593 3.14 -0.50 2", "%f %.2f %.2f %.0f", 3.14159265, 3.14159265, -0.5, 1.5);
    F("1.500000e+00 1.2346E+05 1e-05", "%e %.4E %g", 1.5, 123456.0, 0.00001);
    F("0.1 100000 1e+06 2.5", "%g %g %g %g", 0.1, 100000.0, 1000000.0, 2.5);
    F("inf -inf nan", "%f %f %f", __builtin_inf(), -__builtin_inf(), __builtin_nan(""));
    F("  12.50|12.5  |0012.5", "%7.2f|%-6.1f|%06.1f", 12.5, 12.5, 12.5);
    F("1234567890123456768.000", "%.3f", 1234567890123456789.0);
    F("00000000000000ff", "%016llx", 255ULL);
    checks++;
    if (snprintf(b, 4, "%s", "truncated") != 9 || strcmp(b, "tru") != 0) {
        failures++;
        printf("CKIT-ERROR snprintf truncation: \"%s\"\n", b);
    }
    checks++;
    if (strtol("  -0x1f", NULL, 0) != -31 || strtoul("0777", NULL, 0) != 511 || atoi("12abc") != 12) {
        failures++;
        puts("CKIT-ERROR strtol/strtoul/atoi");
    }
    checks++;
    const char *hello = "hello";
    if (memcmp("abc", "abd", 3) >= 0 || strchr(hello, 'l') != hello + 2 || strrchr(hello, 'l') != hello + 3 || strncmp("abcx", "abcy", 3) != 0 || strlen(hello) != 5) {
        failures++;
        puts("CKIT-ERROR memcmp/strchr/strrchr/strncmp/strlen");
    }
    /* The heap: many blocks, freed in a scattered order, merged back into one. */
    struct xshim_heap_stats before, after;
    xshim_heap_stats(&before);
    void *blocks[64];
    for (int i = 0; i < 64; i++) {
        blocks[i] = malloc((size_t)(i * 97 + 1));
        memset(blocks[i], i, (size_t)(i * 97 + 1));
    }
    int heap_ok = 1;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < i * 97 + 1; j++)
            if (((unsigned char *)blocks[i])[j] != (unsigned char)i)
                heap_ok = 0;
    blocks[5] = realloc(blocks[5], 100000);
    heap_ok &= ((unsigned char *)blocks[5])[485] == 5; /* the old contents moved with it */
    for (int i = 0; i < 64; i += 2) free(blocks[i]);
    for (int i = 1; i < 64; i += 2) free(blocks[i]);
    int *z = calloc(1000, sizeof(int));
    for (int i = 0; i < 1000; i++) heap_ok &= z[i] == 0;
    free(z);
    void *big = malloc(before.total + 1);
    heap_ok &= big == NULL;
    xshim_heap_stats(&after);
    heap_ok &= after.in_use == 0 && after.total == before.total;
    checks++;
    if (!heap_ok) {
        failures++;
        printf("CKIT-ERROR heap: in use %zu after freeing everything\n", after.in_use);
    }
    struct timespec m1, m2, wall;
    clock_gettime(CLOCK_MONOTONIC, &m1);
    clock_gettime(CLOCK_MONOTONIC, &m2);
    checks++;
    if (clock_gettime(CLOCK_REALTIME, &wall) != 0 || wall.tv_sec < 1700000000 || (m2.tv_sec * 1000000000LL + m2.tv_nsec) < (m1.tv_sec * 1000000000LL + m1.tv_nsec) || time(NULL) < 1700000000) {
        failures++;
        printf("CKIT-ERROR clocks: wall %lld, monotonic %lld.%09ld then %lld.%09ld\n", (long long)wall.tv_sec, (long long)m1.tv_sec, m1.tv_nsec, (long long)m2.tv_sec, m2.tv_nsec);
    }
    /* The entry state the ABI promises: %rsp = boot info - 8 (as after a call, so %rsp + 8
     * is 16-byte aligned), .bss zero, SSE usable (this file's doubles are SSE code). */
    static uint64_t bss_probe[4096];
    uint64_t nonzero = 0;
    for (int i = 0; i < 4096; i++)
        nonzero |= bss_probe[i];
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    checks++;
    if (xshim_entry_rsp + 8 != (uint64_t)(uintptr_t)xshim_boot || (xshim_entry_rsp + 8) % 16 != 0 || nonzero || (mxcsr & 0x1f80) != 0x1f80) {
        failures++;
        printf("CKIT-ERROR entry state: rsp %#llx, boot info %p, bss %s, MXCSR %#x\n", (unsigned long long)xshim_entry_rsp, (const void *)xshim_boot, nonzero ? "dirty" : "zero", mxcsr);
    } else {
        printf("CKIT entry: rsp = boot info - 8 = %#llx, .bss zero, SSE on (MXCSR %#x)\n", (unsigned long long)xshim_entry_rsp, mxcsr);
    }
    printf("CKIT selfcheck: %s %d checks, heap %zu MiB in %zu region(s)\n", failures ? "FAIL" : "PASS", checks, before.total >> 20, before.regions);
#undef F
}

#ifdef CTICK_BIGTABLE
extern const uint64_t bigtable[], bigtable_end[];
#define BIGTABLE_SEED 0x5eedULL
static int check_bigtable(void)
{
    size_t words = (size_t)(bigtable_end - bigtable);
    uint64_t t0 = xshim_monotonic_ns();
    size_t bad = 0;
    for (size_t i = 0; i < words; i++)
        if (bigtable[i] != splitmix64(i ^ BIGTABLE_SEED))
            bad++;
    printf("BIGTABLE %s words=%zu MiB=%zu at=%p bad=%zu in %llu ms\n", bad ? "BAD" : "ok", words, (words * 8) >> 20, (const void *)bigtable, bad,
           (unsigned long long)((xshim_monotonic_ns() - t0) / 1000000u));
    return bad == 0;
}
#endif

int main(int argc, char **argv)
{
    uint64_t ticks = arg(argc, argv, "ticks", UINT64_MAX);
    int spin = arg(argc, argv, "spin", 0) != 0;
    selfcheck();
#ifdef CTICK_BIGTABLE
    if (!check_bigtable())
        return 3;
#endif
    if (failures)
        return 2;
    size_t n = TICKER_BYTES / 8;
    uint64_t *words = malloc(TICKER_BYTES);
    if (!words) {
        puts("TICKER-ERROR malloc of the ticker's 4 MiB failed");
        return 2;
    }
    fill(words, n);
    printf("TICKER start bytes=%u base=%p spin=%d\n", TICKER_BYTES, (void *)words, spin);
    uint64_t start = xshim_monotonic_ns();
    /* SSE state across WAITs (and saves): a running harmonic sum against a fresh one. */
    double harmonic = 0.0;
    for (uint64_t t = 1; t <= ticks; t++) {
        mutate(words, n, t);
        uint64_t sum = checksum(words, n);
        uint64_t deadline = start + t * 1000000000ULL;
        harmonic += 1.0 / (double)t;
        if (spin) {
            volatile uint64_t x = sum;
            while (xshim_monotonic_ns() < deadline)
                for (int i = 0; i < 100000; i++)
                    x = rotl(x, 3) ^ 0x9e37;
        } else {
            xshim_sleep_until(deadline);
        }
        printf("TICK %llu %llu %016llx\n", (unsigned long long)t, (unsigned long long)xshim_monotonic_ns(), (unsigned long long)sum);
        double fresh = 0.0;
        for (uint64_t k = 1; k <= t; k++)
            fresh += 1.0 / (double)k;
        if (fresh != harmonic)
            printf("CTICK-ERROR floating point state lost: %.17g != %.17g at tick %llu\n", harmonic, fresh, (unsigned long long)t);
    }
    printf("TICKER done ticks=%llu harmonic=%.6f\n", (unsigned long long)ticks, harmonic);
    free(words);
    return 0;
}
