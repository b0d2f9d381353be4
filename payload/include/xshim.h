/* xshim payload ABI, version 1 — C mirror of payload/src/abi.rs (the single definition).
 * A payload is a static x86-64 ELF (ET_EXEC) linked inside the payload window
 * 0x800000..0x1000000 (see linker/payload.ld). Entry: _start(const struct xshim_boot_info *)
 * in %rdi, 64-bit long mode, user mode (privileged instructions fault; the shim's memory is out
 * of reach), identity-mapped, its own stack with a guard page below; it must not return. */
#ifndef XSHIM_H
#define XSHIM_H
#include <stdint.h>

#define XSHIM_BOOT_MAGIC   0x3149424d49485358ULL /* "XSHIMBI1" little-endian */
#define XSHIM_ABI_VERSION  1

/* Feature bits (xshim_boot_info.features) */
#define XSHIM_F_CONSOLE_INPUT (1u << 0)
#define XSHIM_F_WALLCLOCK     (1u << 1)
#define XSHIM_F_SAVE_RESTORE  (1u << 2)
#define XSHIM_F_XEN           (1u << 3)
#define XSHIM_F_BLOCK         (1u << 4)
#define XSHIM_F_NET           (1u << 5)
#define XSHIM_F_MEMORY        (1u << 6)  /* MEM_DISCARD and MEM_INFO are served */
#define XSHIM_F_VCPUS         (1u << 7)  /* the VCPU_* calls are served */

struct xshim_boot_info {
    uint64_t magic;
    uint32_t abi_version;
    uint32_t features;
    uint64_t call;        /* address of the call gate, see xshim_call_t */
    uint64_t stack_size;
    uint64_t reserved;
};                        /* 40 bytes */

/* The call gate (System V calling convention). Negative results are XSHIM_E_* errors. */
typedef int64_t (*xshim_call_t)(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3);

/* Call numbers: arguments -> result */
#define XSHIM_CONSOLE_WRITE  1  /* (ptr, len) -> len; blocks until accepted */
#define XSHIM_CONSOLE_READ   2  /* (ptr, len) -> bytes read, 0 if none; never blocks */
#define XSHIM_MONOTONIC_NS   3  /* () -> ns since boot, never backwards, also across save/restore */
#define XSHIM_WALLCLOCK      4  /* (struct xshim_wallclock *) -> 0 */
#define XSHIM_WAIT           5  /* (deadline_ns; UINT64_MAX = none) -> XSHIM_WAKE_* bits */
#define XSHIM_SHUTDOWN       6  /* (kind, code) -> does not return */
#define XSHIM_CMDLINE        7  /* (ptr, len) -> full length; copies min(len, length) bytes */
#define XSHIM_MEMMAP         8  /* (struct xshim_mem_region *, max) -> number of regions */
#define XSHIM_RESUME_NOTIFY  9  /* (0 or 1) -> previous setting */
#define XSHIM_GENERATION    10  /* () -> resumes in a new domain so far */
#define XSHIM_VERSION       11  /* () -> version | features << 32 */
#define XSHIM_BLOCK_INFO    12  /* (dev, struct xshim_block_info *) -> 0 */
#define XSHIM_BLOCK_READ    13  /* (dev, offset, ptr, len) -> len; blocks until read */
#define XSHIM_BLOCK_WRITE   14  /* (dev, offset, ptr, len) -> len once the backend completed it all */
#define XSHIM_BLOCK_FLUSH   15  /* (dev) -> 0 once completed writes are durable */
#define XSHIM_NET_INFO      16  /* (dev, struct xshim_net_info *) -> 0 */
#define XSHIM_NET_SEND      17  /* (dev, ptr, len) -> len, or XSHIM_E_AGAIN; never blocks */
#define XSHIM_NET_RECV      18  /* (dev, ptr, len >= mtu + 14) -> frame length, or XSHIM_E_AGAIN; never blocks */
#define XSHIM_MEM_DISCARD   19  /* (ptr, len: page-aligned, in one MEMMAP region) -> bytes given back to Xen */
#define XSHIM_MEM_INFO      20  /* (struct xshim_mem_info *) -> 0 */
#define XSHIM_VCPU_COUNT    21  /* () -> vCPUs the payload may use */
#define XSHIM_VCPU_START    22  /* (vcpu, entry, stack_top, arg) -> 0; entry(arg) must not return */
#define XSHIM_CURRENT_VCPU  23  /* () -> the calling vCPU's number */
#define XSHIM_WAKE          24  /* (vcpu) -> 0; ends its WAIT with XSHIM_WAKE_WOKEN */
#define XSHIM_MAX_VCPUS      8

#define XSHIM_E_NO_SUCH_CALL  (-1)
#define XSHIM_E_BAD_POINTER   (-2)
#define XSHIM_E_BAD_LENGTH    (-3)
#define XSHIM_E_BAD_ARGUMENT  (-4)
#define XSHIM_E_NO_DEVICE     (-5)
#define XSHIM_E_IO            (-6)
#define XSHIM_E_AGAIN         (-7)

#define XSHIM_MAX_IO_LEN (1u << 20)

#define XSHIM_WAKE_DEADLINE      (1u << 0)
#define XSHIM_WAKE_CONSOLE_INPUT (1u << 1)
#define XSHIM_WAKE_RESUMED       (1u << 2)
#define XSHIM_WAKE_NET_RX        (1u << 3)  /* a frame is queued for NET_RECV */
#define XSHIM_WAKE_NET_TX        (1u << 4)  /* a send slot is free again after XSHIM_E_AGAIN */
#define XSHIM_WAKE_WOKEN         (1u << 5)  /* another vCPU called XSHIM_WAKE for this one */

#define XSHIM_SHUTDOWN_POWEROFF 0
#define XSHIM_SHUTDOWN_REBOOT   1
#define XSHIM_SHUTDOWN_CRASH    2

struct xshim_wallclock { uint64_t sec; uint32_t nsec; uint32_t reserved; };   /* 16 bytes */
struct xshim_mem_region { uint64_t base; uint64_t len; };                     /* 16 bytes */

#define XSHIM_BLOCK_READ_ONLY (1u << 0)
#define XSHIM_BLOCK_FLUSH_NEEDED (1u << 1)  /* completed writes may wait in a cache until BLOCK_FLUSH */
struct xshim_block_info {
    uint64_t capacity_bytes;
    uint32_t block_size;  /* offsets and lengths are multiples of it */
    uint32_t flags;       /* XSHIM_BLOCK_* */
    uint32_t max_io;      /* the most one read or write takes */
    uint32_t reserved;
};                        /* 24 bytes */

struct xshim_mem_info {
    uint64_t total;       /* the window and the MEMMAP regions */
    uint64_t populated;   /* backed by memory now */
    uint64_t limit;       /* what the guest may hold (memory/target); 0 without Xen */
    uint64_t reserved;
};                        /* 32 bytes */

struct xshim_net_info {
    uint8_t  mac[6];
    uint16_t reserved0;
    uint32_t mtu;         /* the largest frame is mtu + 14 bytes */
    uint32_t reserved;
};                        /* 16 bytes */

/* A spin lock for data the vCPUs share (the payload cannot turn events off and needs not:
 * the shim never runs payload code from an event): acquire on lock, release on unlock, so
 * what one holder wrote the next holder sees. Initialise with XSHIM_SPINLOCK_INIT. */
typedef struct { uint32_t locked; } xshim_spinlock_t;
#define XSHIM_SPINLOCK_INIT { 0 }
static inline void xshim_spin_lock(xshim_spinlock_t *l) {
    while (__atomic_exchange_n(&l->locked, 1u, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
            __builtin_ia32_pause();
}
static inline void xshim_spin_unlock(xshim_spinlock_t *l) {
    __atomic_store_n(&l->locked, 0u, __ATOMIC_RELEASE);
}

#endif
