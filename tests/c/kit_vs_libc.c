/* The C kit's formatter, string functions and heap, run on the host against glibc: the kit's
 * objects are compiled freestanding (as for a payload) with every symbol prefixed `kit_`
 * (objcopy), so both libraries live in one program. tests/tests/c_kit.rs builds and runs it.
 * Prints "checked: ..." and exits 0, or prints each difference and exits 1. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kit_snprintf(char *buf, size_t size, const char *fmt, ...);
int kit_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
void *kit_malloc(size_t);
void kit_free(void *);
void *kit_realloc(void *, size_t);
void *kit_calloc(size_t, size_t);
void *kit_memmove(void *, const void *, size_t);
void *kit_memset(void *, int, size_t);
int kit_strcmp(const char *, const char *);
long kit_strtol(const char *, char **, int);
unsigned long long kit_strtoull(const char *, char **, int);
struct stats { size_t in_use, total, regions; };
void kit_xshim_heap_stats(struct stats *);

/* The kit's only way out: xshim_call. MEMMAP gives it two regions of a static arena. */
static unsigned char arena[8 << 20] __attribute__((aligned(4096)));
int64_t kit_xshim_call(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
    (void)a2; (void)a3;
    if (nr == 8) { /* MEMMAP */
        uint64_t *r = (uint64_t *)(uintptr_t)a0;
        if (a1 < 2) return 2;
        r[0] = (uint64_t)(uintptr_t)arena; r[1] = 3 << 20;
        r[2] = (uint64_t)(uintptr_t)arena + (4 << 20); r[3] = 4 << 20;
        return 2;
    }
    if (nr == 1) { fwrite((void *)(uintptr_t)a0, 1, a1, stderr); return (int64_t)a1; }
    return -1;
}

/* What start.c provides on a payload (not linked here). */
void kit_abort(void) { puts("kit called abort()"); exit(2); }
uint64_t kit_xshim_monotonic_ns(void) { return 0; }
void kit_xshim_sleep_until(uint64_t deadline) { (void)deadline; }

static int failures, checks;

static void same(const char *fmt, const char *kit, const char *libc, int kn, int ln)
{
    checks++;
    if (strcmp(kit, libc) != 0 || kn != ln) {
        if (failures++ < 40)
            printf("DIFF %-12s kit \"%s\" (%d)  libc \"%s\" (%d)\n", fmt, kit, kn, libc, ln);
    }
}

#define BOTH(fmt, ...) do { \
    char a[512], b[512]; \
    int kn = kit_snprintf(a, sizeof a, fmt, __VA_ARGS__); \
    int ln = snprintf(b, sizeof b, fmt, __VA_ARGS__); \
    same(fmt, a, b, kn, ln); } while (0)

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

int main(void)
{
    /* Integers: every flag, width and precision combination over edge and random values. */
    const char *ifmts[] = { "%d", "%5d", "%-5d|", "%05d", "%+d", "% d", "%.3d", "%8.3d", "%-8.3d|", "%+.0d", "%x", "%#x", "%08x", "%#010x", "%X", "%#o", "%o", "%u", "%10u", "%.0u", "%hhd", "%hd", "%hhu", "%hx" };
    int ivals[] = { 0, 1, -1, 7, -7, 42, 255, 256, -256, 65535, 65536, 2147483647, -2147483647 - 1, 123456789 };
    for (size_t f = 0; f < sizeof ifmts / sizeof *ifmts; f++) {
        for (size_t i = 0; i < sizeof ivals / sizeof *ivals; i++)
            BOTH(ifmts[f], ivals[i]);
        for (int i = 0; i < 200; i++)
            { int v = (int)next(); BOTH(ifmts[f], v); }
    }
    const char *lfmts[] = { "%lld", "%llu", "%llx", "%#llx", "%020lld", "%-22llu|", "%lx", "%zu", "%ld", "%jd" };
    for (size_t f = 0; f < sizeof lfmts / sizeof *lfmts; f++)
        for (int i = 0; i < 300; i++) {
            long long v = (long long)next() >> (next() % 64);
            BOTH(lfmts[f], v);
        }
    BOTH("%lld", (long long)(-9223372036854775807LL - 1));
    BOTH("%llu", 18446744073709551615ULL);
    BOTH("%p", (void *)0x800000);
    BOTH("%s|%10s|%-10s|%.2s|%10.3s", "abc", "abc", "abc", "abc", "abcdef");
    BOTH("%c%c%5c|%-3c|", 'a', 'Z', 'x', 'y');
    BOTH("%%|%5%|", 0);
    /* Floats: every precision 0..15 of %f, %e and %g over edge values and random ones; the
     * kit rounds exactly (ties to even, as glibc) for values in 1e-18..9.2e18. */
    double fvals[] = { 0.0, -0.0, 1.0, -1.5, 0.5, 2.5, 0.125, 3.14159265358979, 1e-5, 123456.789, 1e10, 9.999999, 0.1, 1.0 / 3, 2.0 / 3, 1e15, 9007199254740993.0, 4.35, 1e-300, 1e300 };
    char fmt[32];
    for (int p = 0; p <= 15; p++) {
        for (size_t i = 0; i < sizeof fvals / sizeof *fvals; i++) {
            if (fvals[i] < 1e19 && fvals[i] > -1e19 && (fvals[i] == 0 || fvals[i] > 1e-20 || fvals[i] < -1e-20)) {
                snprintf(fmt, sizeof fmt, "%%.%df", p); BOTH(fmt, fvals[i]);
            }
            /* Beyond 1e-18..9.2e18 the kit scales by powers of ten: 14 digits are right. */
            int exact = (fvals[i] > -9.2e18 && fvals[i] < 9.2e18 && (fvals[i] == 0 || fvals[i] > 1e-18 || fvals[i] < -1e-18));
            if (!exact && p > 13)
                continue;
            snprintf(fmt, sizeof fmt, "%%.%de", p); BOTH(fmt, fvals[i]);
            snprintf(fmt, sizeof fmt, "%%.%dg", p); BOTH(fmt, fvals[i]);
        }
        for (int i = 0; i < 300; i++) {
            /* random doubles with a random decimal exponent, few enough digits to be exact */
            double v = (double)(int64_t)(next() % 2000000001ULL - 1000000000LL) / 1000.0;
            snprintf(fmt, sizeof fmt, "%%.%df", p); BOTH(fmt, v);
            snprintf(fmt, sizeof fmt, "%%.%de", p < 12 ? p : 12); BOTH(fmt, v * 1e7);
            snprintf(fmt, sizeof fmt, "%%.%dg", p < 12 ? p : 12); BOTH(fmt, v / 1e5);
        }
    }
    BOTH("%f %F %e %g", 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0 < 0 ? 0.0 : 1.5, 100000.0);
    BOTH("[%10.3f] [%-10.2f] [%+.1f] [% .2f] [%010.4f] [%#.0f] [%#g]", 3.14159, -2.5, 7.25, 1.0, -3.5, 2.0, 1.5);
    /* Truncation: the return value is the full length, the buffer holds size-1 bytes. */
    {
        char a[8], b[8];
        int kn = kit_snprintf(a, sizeof a, "%s-%d", "truncated", 12345);
        int ln = snprintf(b, sizeof b, "%s-%d", "truncated", 12345);
        same("truncation", a, b, kn, ln);
        kn = kit_snprintf(NULL, 0, "%d", 1234567);
        same("size 0", "", "", kn, 7);
    }
    /* Strings and numbers. */
    const char *nums[] = { "0", "42", "-17", "  +99", "0x1f", "0X1F", "077", "12abc", "", "-", "9223372036854775807", "-9223372036854775808", "0x" };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        for (int base = 0; base <= 16; base += 8) {
            char *ke, *le;
            long kv = kit_strtol(nums[i], &ke, base), lv = strtol(nums[i], &le, base);
            checks++;
            if (kv != lv || ke - nums[i] != le - nums[i]) {
                failures++;
                printf("DIFF strtol(\"%s\", %d): kit %ld end %td, libc %ld end %td\n", nums[i], base, kv, ke - nums[i], lv, le - nums[i]);
            }
        }
    }
    /* The heap: random malloc/realloc/free, each block filled and checked; all of it back. */
    struct stats s0, s1;
    kit_xshim_heap_stats(&s0);
    enum { N = 400 };
    unsigned char *blk[N] = { 0 };
    size_t len[N] = { 0 };
    int heap_bad = 0;
    for (int round = 0; round < 20000; round++) {
        int i = (int)(next() % N);
        if (blk[i]) {
            for (size_t k = 0; k < len[i]; k++)
                if (blk[i][k] != (unsigned char)(i + len[i])) { heap_bad++; break; }
            if (next() % 3 == 0) {
                size_t nl = next() % 20000;
                unsigned char *q = kit_realloc(blk[i], nl);
                if (!q && nl) continue;
                size_t keep = nl < len[i] ? nl : len[i];
                for (size_t k = 0; k < keep; k++)
                    if (q[k] != (unsigned char)(i + len[i])) { heap_bad++; break; }
                blk[i] = q; len[i] = nl;
                if (q) memset(q, (unsigned char)(i + nl), nl);
            } else {
                kit_free(blk[i]); blk[i] = NULL;
            }
        } else {
            size_t l = next() % 30000;
            blk[i] = next() % 4 ? kit_malloc(l) : kit_calloc(l, 1);
            if (!blk[i]) continue;
            if (((uintptr_t)blk[i] & 15) != 0) heap_bad++;
            len[i] = l;
            memset(blk[i], (unsigned char)(i + l), l);
        }
    }
    for (int i = 0; i < N; i++) kit_free(blk[i]);
    kit_xshim_heap_stats(&s1);
    checks++;
    if (heap_bad || s1.in_use != 0 || s0.total != s1.total || s0.regions != 2 || kit_malloc(s0.total) != NULL) {
        failures++;
        printf("DIFF heap: %d bad blocks, %zu bytes in use at the end, total %zu -> %zu, %zu regions\n", heap_bad, s1.in_use, s0.total, s1.total, s0.regions);
    }
    /* After everything is freed, one block as large as the larger region fits again. */
    void *big = kit_malloc((4 << 20) - 64);
    checks++;
    if (!big) { failures++; puts("DIFF heap: freed blocks were not merged back"); }
    printf("checked: %d cases of the kit against glibc, %d differences\n", checks, failures);
    return failures != 0;
}
