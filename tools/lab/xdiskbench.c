/* The Linux guest's side of `cargo xshim bench disk`: the measurements the journal payload
 * makes with `bench=1`, on a block device with O_DIRECT (no page cache): sequential write and
 * read of 16 MiB in 44 KiB and in 1 MiB calls (MB/s = 10^6 bytes/s), then 200 writes of
 * 4 KiB each followed by fdatasync (a FLUSH to the backend), median and p99 in us.
 * Prints `BENCH <name> <value> <unit>` lines, then `BENCH done`. Built statically by
 * tools/lab/build-lab.sh into the baseline guest's initramfs. usage: xdiskbench DEVICE */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BYTES (16u << 20)
#define SYNC_WRITES 200

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int throughput(int fd, const char *name, int write, size_t chunk, char *buf) {
    uint64_t t0 = now_ns();
    for (uint64_t off = 0; off < BYTES; off += chunk) {
        ssize_t n = write ? pwrite(fd, buf, chunk, off) : pread(fd, buf, chunk, off);
        if (n != (ssize_t)chunk) { printf("BENCH-ERROR %s at %llu: %zd\n", name, (unsigned long long)off, n); return -1; }
    }
    uint64_t ns = now_ns() - t0;
    printf("BENCH %s %llu MB/s\n", name, (unsigned long long)((uint64_t)BYTES * 1000u / (ns ? ns : 1)));
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: xdiskbench DEVICE\n"); return 2; }
    int fd = open(argv[1], O_RDWR | O_DIRECT);
    if (fd < 0) { printf("BENCH-ERROR open %s: %m\n", argv[1]); return 2; }
    char *buf;
    if (posix_memalign((void **)&buf, 4096, 1u << 20)) return 2;
    for (size_t i = 0; i < (1u << 20); i++) buf[i] = (char)(i * 7);
    if (throughput(fd, "seq-write-44k", 1, 44u << 10, buf) || throughput(fd, "seq-write-1m", 1, 1u << 20, buf) ||
        throughput(fd, "seq-read-44k", 0, 44u << 10, buf) || throughput(fd, "seq-read-1m", 0, 1u << 20, buf)) return 1;
    static uint64_t lat[SYNC_WRITES];
    for (int i = 0; i < SYNC_WRITES; i++) {
        uint64_t t0 = now_ns();
        if (pwrite(fd, buf, 4096, BYTES + (uint64_t)(i % 1024) * 4096) != 4096 || fdatasync(fd)) { printf("BENCH-ERROR write+flush: %m\n"); return 1; }
        lat[i] = now_ns() - t0;
    }
    qsort(lat, SYNC_WRITES, sizeof lat[0], cmp);
    printf("BENCH write-flush-4k-median %llu us\n", (unsigned long long)(lat[SYNC_WRITES / 2] / 1000));
    printf("BENCH write-flush-4k-p99 %llu us\n", (unsigned long long)(lat[SYNC_WRITES * 99 / 100] / 1000));
    printf("BENCH done\n");
    return 0;
}
