//! Every fixed address, size and limit of the shim, in one place. Under PVH (and QEMU's PVH
//! boot) physical = virtual: the shim identity-maps the first 4 GiB.

/// Where the shim image is linked and loaded (1 MiB: above the legacy BIOS area).
pub const SHIM_BASE: u64 = 0x10_0000;
/// The PVH 32-bit entry point: the first byte of the image (linker/shim.ld asserts it).
pub const PVH_ENTRY: u32 = SHIM_BASE as u32;
/// The 64-bit PV entry point (XEN_ELFNOTE_ENTRY), at a fixed offset in the entry section.
pub const PV_ENTRY: u64 = SHIM_BASE + 0x200;
/// The hypercall page (XEN_ELFNOTE_HYPERCALL_PAGE): the first page after the entry code.
pub const HYPERCALL_PAGE: u64 = SHIM_BASE + 0x1000;
/// PV guests: the static pool of page-table pages the shim adds to map RAM beyond Xen's
/// bootstrap mapping (each maps 2 MiB: 256 MiB); beyond that, L1 pages come from RAM.
pub const PV_EXTRA_L1_PAGES: usize = 128;

/// End of the region reserved for the shim's image, bss, stacks, heap and page tables.
pub const SHIM_LIMIT: u64 = 0x40_0000;

/// A payload embedded by `xshim wrap` is a PT_LOAD segment at this address, starting with an
/// `EmbeddedPayloadHeader`.
pub const EMBEDDED_PAYLOAD_BASE: u64 = 0x40_0000;
pub const EMBEDDED_PAYLOAD_LIMIT: u64 = 0x80_0000;
/// "XSHIMPLD": the embedded payload header's magic.
pub const EMBEDDED_PAYLOAD_MAGIC: u64 = u64::from_le_bytes(*b"XSHIMPLD");
/// Size of the header before the payload ELF bytes.
pub const EMBEDDED_PAYLOAD_HEADER: u64 = 16;

/// The payload's loadable segments must lie inside this window (linker/payload.ld links there).
pub const PAYLOAD_WINDOW_BASE: u64 = 0x80_0000;
pub const PAYLOAD_WINDOW_LIMIT: u64 = 0x100_0000;
/// RAM from here up (less boot modules and firmware areas) is the payload's free memory.
pub const PAYLOAD_FREE_BASE: u64 = 0x100_0000;

/// The payload's stack (in the shim's bss, handed over at entry).
pub const PAYLOAD_STACK_SIZE: usize = 256 * 1024;
/// The shim's own boot stack and the interrupt stack (IST) used for event upcalls.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;
pub const IRQ_STACK_SIZE: usize = 64 * 1024;
/// The shim's heap (goblin's parse tables, the memory map copy).
pub const HEAP_SIZE: usize = 1024 * 1024;

/// Identity-mapped range (2 MiB pages): all of the low 4 GiB, which holds RAM below the
/// PCI hole and Xen's special pages (console, xenstore) just under 4 GiB.
pub const IDENTITY_MAP_LIMIT: u64 = 4 << 30;

/// Most memory-map entries kept from start-of-day data.
pub const MAX_MEMMAP_ENTRIES: usize = 64;
/// Most regions handed to the payload.
pub const MAX_PAYLOAD_REGIONS: usize = 16;
/// Longest command line kept.
pub const MAX_CMDLINE: usize = 1024;

pub const PAGE_SIZE: u64 = 4096;

/// Interrupt vectors the shim uses.
pub const VECTOR_LAPIC_TIMER: u8 = 0x40;
pub const VECTOR_XEN_CALLBACK: u8 = 0xf3;
pub const VECTOR_SPURIOUS: u8 = 0xff;
/// The legacy PIC is remapped here and masked, so stray IRQs can't look like exceptions.
pub const VECTOR_PIC_BASE: u8 = 0x50;

/// QEMU's isa-debug-exit port (xshim run adds the device): exit status = (code << 1) | 1.
pub const QEMU_DEBUG_EXIT_PORT: u16 = 0xf4;
/// Xen's (and Bochs') debug console port: bytes land in `xl dmesg` for HVM/PVH guests.
pub const XEN_DEBUG_PORT: u16 = 0xe9;
/// COM1.
pub const COM1_PORT: u16 = 0x3f8;
