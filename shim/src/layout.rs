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

/// `xshim wrap` puts a one-page header here (`EmbeddedPayloadHeader`: magic, the payload
/// ELF's size and where its bytes are) as a PT_LOAD of its own; the ELF bytes are a second
/// PT_LOAD, above the payload's window (`embedded_payload_addr`), so that neither Xen's PV
/// start-of-day pages (placed after the image) nor the bytes themselves lie where the
/// payload's segments go.
pub const EMBEDDED_PAYLOAD_BASE: u64 = 0x40_0000;
/// "XSHIMPL2": the embedded payload header's magic (v2: the bytes are where the header says).
pub const EMBEDDED_PAYLOAD_MAGIC: u64 = u64::from_le_bytes(*b"XSHIMPL2");
/// Size of the header: magic, size, address.
pub const EMBEDDED_PAYLOAD_HEADER: u64 = 24;

/// The payload's loadable segments start at or above this address (linker/payload.ld links
/// there) ...
pub const PAYLOAD_WINDOW_BASE: u64 = 0x80_0000;
/// ... and end at or below this one: the window must fit in any guest that can hold it,
/// below the page tables a PV guest takes from RAM (from about 264 MiB down in large guests).
pub const PAYLOAD_SEGMENT_LIMIT: u64 = 0x4000_0000;
/// The payload's window reaches at least here (8..16 MiB, what every payload had before
/// windows grew), and RAM from its end up (less what the platform keeps) is the payload's
/// free memory (MEMMAP).
pub const PAYLOAD_WINDOW_MIN_END: u64 = 0x100_0000;
/// Window ends are rounded up to this (a PVH demand unit, a PV L1 table's span).
pub const PAYLOAD_WINDOW_ALIGN: u64 = 2 << 20;

/// The end of the payload's window for segments ending at `segments_end`: the window is
/// `PAYLOAD_WINDOW_BASE..payload_window_end(end)`, everything the payload's ELF occupies
/// plus its remainder (the payload's to use, like a MEMMAP region).
pub const fn payload_window_end(segments_end: u64) -> u64 {
    let rounded = segments_end.div_ceil(PAYLOAD_WINDOW_ALIGN) * PAYLOAD_WINDOW_ALIGN;
    if rounded > PAYLOAD_WINDOW_MIN_END {
        rounded
    } else {
        PAYLOAD_WINDOW_MIN_END
    }
}

/// Where `xshim wrap` puts the payload ELF's bytes: the page after the payload's window.
pub const fn embedded_payload_addr(segments_end: u64) -> u64 {
    payload_window_end(segments_end)
}

/// The payload's stack (in the shim's bss, handed over at entry).
pub const PAYLOAD_STACK_SIZE: usize = 256 * 1024;
/// The shim's own boot stack (interrupts that come while the shim runs use the stack they
/// interrupt: this one before the payload starts, the entry stack afterwards).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;
/// The stack double faults, NMIs and machine checks run on (IST).
pub const FAULT_STACK_SIZE: usize = 16 * 1024;
/// The shim's heap (goblin's parse tables, the memory map copy).
pub const HEAP_SIZE: usize = 1024 * 1024;

/// The grant table frames the shim can map (512 references each, 8 reserved): the first at
/// boot, more as drivers need references.
pub const GRANT_FRAMES: u32 = 4;

/// The pages Xen places its own frames in or writes behind our back, all in the shim's
/// bss (hw/xen/shared_info.rs, `XenPages`): shared_info, the grant table's frames, and
/// vCPU0's registered vcpu_info. PV also keeps there the p2m frame-list pages, its GDT page
/// and the static pool of L1 page tables (hw/xen/pv_mm.rs). No Rust reference ever covers
/// them: they are read and written through volatile or atomic raw pointers only.
pub const XEN_SHARED_PAGES: usize = 2 + GRANT_FRAMES as usize;

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
pub const PAGE_SHIFT: u32 = 12;
/// Entries in one x86-64 page table (each 8 bytes).
pub const PTES_PER_TABLE: u64 = 512;
/// The frame-address bits of a page-table entry (bits 12..52).
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// PV: the shim maps RAM 1:1 up to the identity map's end (4 GiB: four L2 tables of 512
/// slots of 2 MiB; Xen's bootstrap has the first).
pub const PV_MAX_MAPPED_PAGES: u64 = IDENTITY_MAP_LIMIT / PAGE_SIZE;
/// PV: the most 1 GiB ranges (L2 tables) the shim maps.
pub const PV_MAX_GIBS: usize = (IDENTITY_MAP_LIMIT >> 30) as usize;
/// PV: L1 tables are taken from the top of RAM only if at least this much stays above the
/// payload's free-memory base for the payload.
pub const PV_MIN_FREE_RAM_FOR_PAYLOAD: u64 = 16 << 20;

/// Time limits (nanoseconds of Xen system time or of the monotonic clock).
pub mod timeouts {
    /// A console write waits at most this long for a backend that consumes nothing; the
    /// suspend path waits much less (`SUSPEND_CONSOLE_FLUSH_NS`).
    pub const CONSOLE_STALL_NS: u64 = 5_000_000_000;
    /// A suspend gives the console backend this long to read the ring; what it leaves is
    /// written into the new domain's ring.
    pub const SUSPEND_CONSOLE_FLUSH_NS: u64 = 100_000_000;
    /// On the way out (poweroff, crash) the backend gets this long to drain the console.
    pub const CONSOLE_EXIT_FLUSH_NS: u64 = 2_000_000_000;
    /// One xenstore request, sent and answered.
    pub const XENSTORE_REQUEST_NS: u64 = 10_000_000_000;
    /// How long one blocked wait on a ring's port lasts before the caller looks again.
    pub const RING_POLL_NS: u64 = 100_000_000;
    /// The same, for a console ring that is full (the backend is slow, not gone).
    pub const CONSOLE_FULL_POLL_NS: u64 = 500_000_000;
    /// Without Xen no UART interrupt is wired up: WAIT wakes this often to look for input.
    pub const NATIVE_INPUT_POLL_NS: u64 = 10_000_000;
}

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
