/* xshim C kit: <time.h>. CLOCK_MONOTONIC is MONOTONIC_NS (stands still while the guest is
 * saved); CLOCK_REALTIME is WALLCLOCK (Xen's wall clock, or the CMOS RTC under QEMU). */
#ifndef XSHIM_TIME_H
#define XSHIM_TIME_H
#include <stddef.h>

typedef long long time_t;
typedef int clockid_t;
struct timespec { time_t tv_sec; long tv_nsec; };
#define CLOCK_REALTIME  0
#define CLOCK_MONOTONIC 1
#define CLOCKS_PER_SEC  1000000L
typedef long clock_t;

int clock_gettime(clockid_t id, struct timespec *ts);
time_t time(time_t *out);
/* Microseconds of MONOTONIC_NS (what benchmarks time with). */
clock_t clock(void);
/* Sleeps (WAIT) for the given time; always 0. */
int nanosleep(const struct timespec *req, struct timespec *rem);

#endif
