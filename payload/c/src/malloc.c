/* xshim C kit: malloc over the payload's free memory (every MEMMAP region). A first-fit,
 * address-ordered free list that merges neighbours on free: simple and predictable, and it
 * touches a page only when a block there is handed out (the shim populates memory on first
 * touch, so an idle heap costs the guest nothing). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xshim_rt.h"

#define ALIGN 16
#define HEADER 16 /* keeps user pointers 16-byte aligned */
#define MAGIC_USED 0x75736564a110c8edULL

struct free_block {
    size_t size;               /* the whole block, header included */
    struct free_block *next;   /* next free block at a higher address */
};

struct used_header {
    size_t size;
    uint64_t magic;
};

static struct free_block *free_list;
static int initialised;
static size_t heap_total, heap_in_use, heap_regions;

static void heap_init(void)
{
    struct xshim_mem_region regions[16];
    int64_t n = xshim_call(XSHIM_MEMMAP, (uint64_t)(uintptr_t)regions, 16, 0, 0);
    struct free_block **tail = &free_list;
    initialised = 1;
    for (int64_t i = 0; i < n && i < 16; i++) {
        uintptr_t start = (regions[i].base + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
        uintptr_t end = (regions[i].base + regions[i].len) & ~(uintptr_t)(ALIGN - 1);
        if (end <= start + 2 * HEADER)
            continue;
        struct free_block *b = (struct free_block *)start;
        b->size = end - start;
        b->next = NULL;
        *tail = b;
        tail = &b->next;
        heap_total += b->size;
        heap_regions++;
    }
}

void *malloc(size_t size)
{
    if (!initialised)
        heap_init();
    if (size > SIZE_MAX / 2)
        return NULL;
    size_t need = (size + HEADER + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need < sizeof(struct free_block) + HEADER)
        need = sizeof(struct free_block) + HEADER;
    for (struct free_block **link = &free_list; *link; link = &(*link)->next) {
        struct free_block *b = *link;
        if (b->size < need)
            continue;
        if (b->size - need >= sizeof(struct free_block) + HEADER) {
            struct free_block *rest = (struct free_block *)((char *)b + need);
            rest->size = b->size - need;
            rest->next = b->next;
            *link = rest;
        } else {
            need = b->size;
            *link = b->next;
        }
        struct used_header *h = (struct used_header *)b;
        h->size = need;
        h->magic = MAGIC_USED;
        heap_in_use += need;
        return (char *)h + HEADER;
    }
    return NULL;
}

static struct used_header *header_of(void *p, const char *who)
{
    struct used_header *h = (struct used_header *)((char *)p - HEADER);
    if (((uintptr_t)p & (ALIGN - 1)) || h->magic != MAGIC_USED) {
        fprintf(stderr, "%s(%p): not a block malloc handed out, or freed already\n", who, p);
        abort();
    }
    return h;
}

void free(void *p)
{
    if (!p)
        return;
    struct used_header *h = header_of(p, "free");
    size_t size = h->size;
    h->magic = 0;
    heap_in_use -= size;
    struct free_block *b = (struct free_block *)h;
    b->size = size;
    struct free_block *prev = NULL, *next = free_list;
    while (next && next < b) {
        prev = next;
        next = next->next;
    }
    b->next = next;
    if (prev)
        prev->next = b;
    else
        free_list = b;
    if (next && (char *)b + b->size == (char *)next) {
        b->size += next->size;
        b->next = next->next;
    }
    if (prev && (char *)prev + prev->size == (char *)b) {
        prev->size += b->size;
        prev->next = b->next;
    }
}

void *calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = malloc(n * size);
    return p ? memset(p, 0, n * size) : NULL;
}

void *realloc(void *p, size_t size)
{
    if (!p)
        return malloc(size);
    if (!size) {
        free(p);
        return NULL;
    }
    struct used_header *h = header_of(p, "realloc");
    if (h->size - HEADER >= size)
        return p;
    void *q = malloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, h->size - HEADER);
    free(p);
    return q;
}

void xshim_heap_stats(struct xshim_heap_stats *out)
{
    if (!initialised)
        heap_init();
    out->in_use = heap_in_use;
    out->total = heap_total;
    out->regions = heap_regions;
}
