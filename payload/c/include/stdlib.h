/* xshim C kit: <stdlib.h>. The heap is the payload's free memory (MEMMAP). */
#ifndef XSHIM_STDLIB_H
#define XSHIM_STDLIB_H
#include <stddef.h>

#define EXIT_SUCCESS 0
#define EXIT_FAILURE 1
#define RAND_MAX 0x7fffffff

void *malloc(size_t size);
void free(void *p);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);
/* Flushes stdout and powers the guest off (SHUTDOWN) with `code`: QEMU's exit status, the
 * code in the shim's log under Xen. */
__attribute__((noreturn)) void exit(int code);
/* Prints "abort()" and crashes the domain (SHUTDOWN crash: on_crash applies). */
__attribute__((noreturn)) void abort(void);
int atoi(const char *s);
long atol(const char *s);
long long atoll(const char *s);
long strtol(const char *restrict s, char **restrict end, int base);
unsigned long strtoul(const char *restrict s, char **restrict end, int base);
long long strtoll(const char *restrict s, char **restrict end, int base);
unsigned long long strtoull(const char *restrict s, char **restrict end, int base);
int abs(int x);
long labs(long x);
long long llabs(long long x);
int rand(void);
void srand(unsigned seed);
void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
/* There is no environment: always NULL. */
char *getenv(const char *name);

/* Kit statistics: bytes handed out and the heap's total size. */
struct xshim_heap_stats { size_t in_use; size_t total; size_t regions; };
void xshim_heap_stats(struct xshim_heap_stats *out);

#endif
