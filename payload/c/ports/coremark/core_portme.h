/* CoreMark's porting layer for xshim payloads (the C kit in payload/c). CoreMark itself
 * (github.com/eembc/coremark) is used unmodified: core_main.c, core_list_join.c,
 * core_matrix.c, core_state.c, core_util.c. Build: `cargo xshim build-c` as in ABI.md,
 * "Writing one in C", section "A ported program: CoreMark". Run with the command line
 * `0 0 0x66 ITERATIONS` (ITERATIONS 0: CoreMark picks a count that runs at least 10 s). */
#ifndef CORE_PORTME_H
#define CORE_PORTME_H

#include <stddef.h>
#include <stdint.h>

#define HAS_FLOAT 1      /* the kit's printf has %f; SSE is on for payloads */
#define HAS_TIME_H 1
#define USE_CLOCK 0
#define HAS_STDIO 1
#define HAS_PRINTF 1     /* the kit's printf (to the payload's console) */

#ifndef COMPILER_VERSION
#define COMPILER_VERSION "GCC" __VERSION__
#endif
#ifndef FLAGS_STR
#define FLAGS_STR "xshim build-c (-O2)"
#endif
#ifndef COMPILER_FLAGS
#define COMPILER_FLAGS FLAGS_STR
#endif
#ifndef MEM_LOCATION
#define MEM_LOCATION "HEAP (MEMMAP)"
#endif

typedef int16_t ee_s16;
typedef uint16_t ee_u16;
typedef int32_t ee_s32;
typedef double ee_f32;
typedef uint8_t ee_u8;
typedef uint32_t ee_u32;
typedef uintptr_t ee_ptr_int;   /* pointers are 64-bit */
typedef size_t ee_size_t;

#define align_mem(x) (void *)(4 + (((ee_ptr_int)(x)-1) & ~3))

/* Time: MONOTONIC_NS through the kit's clock_gettime, in nanoseconds. */
#define CORETIMETYPE uint64_t
typedef uint64_t CORE_TICKS;

#define SEED_METHOD SEED_ARG   /* seeds and iterations from the payload's command line */
#define MEM_METHOD MEM_MALLOC  /* the kit's malloc over the payload's free memory */

#define MULTITHREAD 1
#define USE_PTHREAD 0
#define USE_FORK 0
#define USE_SOCKET 0
#define MAIN_HAS_NOARGC 0
#define MAIN_HAS_NORETURN 0

extern ee_u32 default_num_contexts;

typedef struct CORE_PORTABLE_S {
    ee_u8 portable_id;
} core_portable;

void portable_init(core_portable *p, int *argc, char *argv[]);
void portable_fini(core_portable *p);

#if !defined(PROFILE_RUN) && !defined(PERFORMANCE_RUN) && !defined(VALIDATION_RUN)
#if (TOTAL_DATA_SIZE == 1200)
#define PROFILE_RUN 1
#elif (TOTAL_DATA_SIZE == 2000)
#define PERFORMANCE_RUN 1
#else
#define VALIDATION_RUN 1
#endif
#endif

#endif /* CORE_PORTME_H */
