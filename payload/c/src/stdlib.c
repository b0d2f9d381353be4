/* xshim C kit: the rest of <stdlib.h> (numbers, rand, qsort) and <time.h>. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "xshim_rt.h"

int errno;

static unsigned long long parse_unsigned(const char *s, char **end, int base, int *negative, int *overflow)
{
    const char *p = s;
    while (isspace((unsigned char)*p))
        p++;
    *negative = 0;
    if (*p == '+' || *p == '-')
        *negative = *p++ == '-';
    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && isxdigit((unsigned char)p[2])) {
        p += 2;
        base = 16;
    } else if (base == 0) {
        base = *p == '0' ? 8 : 10;
    }
    unsigned long long v = 0;
    const char *digits = p;
    *overflow = 0;
    for (;; p++) {
        int d = isdigit((unsigned char)*p) ? *p - '0' : islower((unsigned char)*p) ? *p - 'a' + 10 : isupper((unsigned char)*p) ? *p - 'A' + 10 : 99;
        if (d >= base)
            break;
        if (v > (ULLONG_MAX - (unsigned)d) / (unsigned)base)
            *overflow = 1;
        else
            v = v * (unsigned)base + (unsigned)d;
    }
    if (end)
        *end = (char *)(p == digits ? s : p);
    return v;
}

unsigned long long strtoull(const char *restrict s, char **restrict end, int base)
{
    int neg, ovf;
    unsigned long long v = parse_unsigned(s, end, base, &neg, &ovf);
    if (ovf) {
        errno = ERANGE;
        return ULLONG_MAX;
    }
    return neg ? 0ULL - v : v;
}

long long strtoll(const char *restrict s, char **restrict end, int base)
{
    int neg, ovf;
    unsigned long long v = parse_unsigned(s, end, base, &neg, &ovf);
    if (ovf || v > (unsigned long long)LLONG_MAX + neg) {
        errno = ERANGE;
        return neg ? LLONG_MIN : LLONG_MAX;
    }
    return neg ? (long long)(0ULL - v) : (long long)v;
}

unsigned long strtoul(const char *restrict s, char **restrict end, int base) { return strtoull(s, end, base); }
long strtol(const char *restrict s, char **restrict end, int base) { return strtoll(s, end, base); }
long long atoll(const char *s) { return strtoll(s, NULL, 10); }
long atol(const char *s) { return strtol(s, NULL, 10); }
int atoi(const char *s) { return (int)strtol(s, NULL, 10); }
int abs(int x) { return x < 0 ? -x : x; }
long labs(long x) { return x < 0 ? -x : x; }
long long llabs(long long x) { return x < 0 ? -x : x; }

static unsigned long long rand_state = 1;
void srand(unsigned seed) { rand_state = seed; }
int rand(void)
{
    rand_state = rand_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int)(rand_state >> 33);
}

/* Shell sort: no recursion, no allocation, O(n^1.3)-ish; fine for a payload's tables. */
void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    char *a = base;
    static const size_t gaps[] = { 701, 301, 132, 57, 23, 10, 4, 1 };
    char tmp[256];
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; i++) {
            for (size_t j = i; j >= gap && cmp(a + (j - gap) * size, a + j * size) > 0; j -= gap) {
                /* swap elements j-gap and j, in chunks of tmp */
                char *x = a + (j - gap) * size, *y = a + j * size;
                for (size_t off = 0; off < size; off += sizeof tmp) {
                    size_t k = size - off < sizeof tmp ? size - off : sizeof tmp;
                    memcpy(tmp, x + off, k);
                    memcpy(x + off, y + off, k);
                    memcpy(y + off, tmp, k);
                }
            }
        }
    }
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (id == CLOCK_MONOTONIC) {
        uint64_t ns = xshim_monotonic_ns();
        ts->tv_sec = (time_t)(ns / 1000000000u);
        ts->tv_nsec = (long)(ns % 1000000000u);
        return 0;
    }
    if (id == CLOCK_REALTIME) {
        struct xshim_wallclock w;
        if (xshim_call(XSHIM_WALLCLOCK, (uint64_t)(uintptr_t)&w, 0, 0, 0) < 0) {
            errno = EINVAL;
            return -1;
        }
        ts->tv_sec = (time_t)w.sec;
        ts->tv_nsec = (long)w.nsec;
        return 0;
    }
    errno = EINVAL;
    return -1;
}

time_t time(time_t *out)
{
    struct timespec ts = { 0, 0 };
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}

clock_t clock(void)
{
    return (clock_t)(xshim_monotonic_ns() / 1000u);
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    uint64_t ns = (uint64_t)req->tv_sec * 1000000000u + (uint64_t)req->tv_nsec;
    xshim_sleep_until(xshim_monotonic_ns() + ns);
    if (rem) {
        rem->tv_sec = 0;
        rem->tv_nsec = 0;
    }
    return 0;
}
