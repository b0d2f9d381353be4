//! The xshim kernel. Boots through the PVH entry (Xen, or QEMU's -kernel), brings up its
//! platform (Xen PVH, or native devices under plain QEMU), loads the payload and serves it
//! the payload ABI. On the host this file builds to a stub: the logic lives in the library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("xshim-shim is a bare-metal kernel: build it with `cargo xshim build`");
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod hw;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod vcpus;

#[cfg(target_os = "none")]
mod entry {
    use crate::hw::{cpu, tables, xen::hypercall};
    use crate::kernel::{self, fatal};
    use crate::platform::{self, Platform};
    use crate::console;
    use alloc::vec::Vec;
    use linked_list_allocator::LockedHeap;
    use xshim_elf_notes::{ty, xen_note_num, xen_note_str};
    use xshim_shim::demand::Range;
    use xshim_shim::layout;
    use xshim_shim::start_info::{self, PhysRead};

    // The notes Xen's domain builder and QEMU read: the 32-bit PVH entry, and who we are.
    xen_note_num!(NOTE_PHYS32_ENTRY, ty::PHYS32_ENTRY, u32, layout::PVH_ENTRY);
    xen_note_str!(NOTE_GUEST_OS, ty::GUEST_OS, "xshim");
    xen_note_str!(NOTE_GUEST_VERSION, ty::GUEST_VERSION, env!("CARGO_PKG_VERSION"));
    xen_note_str!(NOTE_XEN_VERSION, ty::XEN_VERSION, "xen-3.0");
    xen_note_num!(NOTE_SUSPEND_CANCEL, ty::SUSPEND_CANCEL, u32, 1);
    // Classic PV: entry, hypercall page, and a 1:1 virtual = pseudo-physical layout.
    // MOD_START_PFN: the payload module goes after Xen's start-of-day pages, unmapped, by
    // pfn, so those pages sit right after the shim, clear of the payload's window however
    // large the module is (the shim maps RAM itself and moves the module out of the window).
    xen_note_num!(NOTE_ENTRY, ty::ENTRY, u64, layout::PV_ENTRY);
    xen_note_num!(NOTE_HYPERCALL_PAGE, ty::HYPERCALL_PAGE, u64, layout::HYPERCALL_PAGE);
    xen_note_num!(NOTE_VIRT_BASE, ty::VIRT_BASE, u64, 0);
    xen_note_num!(NOTE_PADDR_OFFSET, ty::PADDR_OFFSET, u64, 0);
    xen_note_str!(NOTE_LOADER, ty::LOADER, "generic");
    xen_note_str!(NOTE_FEATURES, ty::FEATURES, "!writable_page_tables");
    xen_note_str!(NOTE_PAE_MODE, ty::PAE_MODE, "yes");
    xen_note_num!(NOTE_MOD_START_PFN, ty::MOD_START_PFN, u32, 1);

    /// xshim's own note: the payload ABI version this shim serves (read by `xshim inspect`).
    #[repr(C, align(4))]
    struct XshimNote {
        namesz: u32,
        descsz: u32,
        note_type: u32,
        name: [u8; 8],
        desc: u32,
    }
    #[used]
    #[link_section = ".note.xshim"]
    static NOTE_XSHIM_ABI: XshimNote = XshimNote { namesz: 6, descsz: 4, note_type: 1, name: *b"XSHIM\0\0\0", desc: xshim_elf_notes::XSHIM_NOTE_ABI_VERSION };

    #[repr(C, align(16))]
    struct Heap([u8; layout::HEAP_SIZE]);
    static mut HEAP: Heap = Heap([0; layout::HEAP_SIZE]);
    #[global_allocator]
    static ALLOCATOR: LockedHeap = LockedHeap::empty();

    extern "C" {
        static __shim_end: u8;
    }

    /// The end of the shim's image and bss (linker/shim.ld).
    fn shim_end() -> u64 {
        // Only the address of the linker symbol is taken, never its contents.
        &raw const __shim_end as u64
    }

    /// Guest-physical reads through the identity map (first 4 GiB).
    struct IdentityMap;
    impl PhysRead for IdentityMap {
        fn read(&self, paddr: u64, out: &mut [u8]) -> bool {
            let Some(end) = paddr.checked_add(out.len() as u64) else { return false };
            if paddr == 0 || end > layout::IDENTITY_MAP_LIMIT {
                return false;
            }
            // SAFETY: the range is inside the identity-mapped low 4 GiB and non-null; boot
            // data is plain memory that nothing writes concurrently.
            unsafe { core::ptr::copy_nonoverlapping(paddr as *const u8, out.as_mut_ptr(), out.len()) };
            true
        }
    }

    fn log_level(opts: &[&str]) -> log::LevelFilter {
        opts.iter()
            .find_map(|o| o.strip_prefix("xshim.log="))
            .and_then(|l| l.parse().ok())
            .unwrap_or(log::LevelFilter::Info)
    }

    fn init_heap() {
        // SAFETY: HEAP is a static array used only by the allocator, initialised once here.
        unsafe { ALLOCATOR.lock().init(&raw mut HEAP as *mut u8, layout::HEAP_SIZE) };
    }

    /// Rust entry from entry.S's 64-bit PV entry: Xen's bootstrap page tables, ring 3.
    #[no_mangle]
    extern "C" fn pv_main(start_info_va: u64) -> ! {
        kernel::set_platform(Platform::Pv);
        init_heap();
        // Events are masked (Xen starts a PV guest so); the token says so for the locks.
        let (events, _) = Platform::Pv.events_disable();
        let info = platform::pv::init(start_info_va, &events).unwrap_or_else(|e| fatal::fatal("PV bring-up", e));
        let (shim_opts, payload_cmdline) = start_info::split_cmdline(&info.cmdline);
        console::init_logger(log_level(&shim_opts));
        platform::block::set_options(&shim_opts);
        platform::xen::set_options(&shim_opts);
        platform::memory::set_options(&shim_opts);
        platform::pv::connect(&info, &events).unwrap_or_else(|e| fatal::fatal("PV bring-up", e));
        log::info!(
            "xshim {} booted (Xen PV), {} MiB mapped 1:1{}",
            env!("CARGO_PKG_VERSION"),
            info.ram.end >> 20,
            info.ram.l1_pages_in_ram.as_ref().map_or(alloc::string::String::new(), |m| alloc::format!(", {} KiB of page tables in RAM at {:#x}", m.size >> 10, m.paddr))
        );
        let modules: Vec<start_info::Module> = info.module.into_iter().collect();
        let start_of_day = crate::hw::xen::pv_mm::start_of_day_pages();
        // Right after the shim they must end below the window (a wrapped image puts them
        // after its payload, above the window: the loader checks those against its end).
        if start_of_day.start < layout::PAYLOAD_WINDOW_BASE && start_of_day.end > layout::PAYLOAD_WINDOW_BASE {
            // Xen lays them out right after the shim, the p2m first (8 bytes per page of RAM).
            log::error!(
                "PV: Xen's start-of-day pages (the p2m for {} MiB of RAM, start_info, rings, bootstrap page tables) end at {:#x}, inside the payload's window from {:#x}: a PV guest booted with its payload as a module can have at most about 2 GiB (wrap the payload with `xshim wrap`, which puts them above the window, or use PVH)",
                (info.nr_pages * layout::PAGE_SIZE) >> 20,
                start_of_day.end,
                layout::PAYLOAD_WINDOW_BASE
            );
            fatal::crash("PV guest too large");
        }
        // Xen's start-of-day pages (p2m, start_info, rings, bootstrap tables) and the page
        // tables taken from RAM stay where they are, out of the payload's reach.
        let ram = kernel::RamLayout {
            ram: alloc::vec![Range::new(0, info.nr_pages * layout::PAGE_SIZE)],
            usable: alloc::vec![Range::new(0, info.ram.end)],
            keep: core::iter::once(start_of_day).chain(info.ram.l1_pages_in_ram.map(|m| Range::new(m.paddr, m.paddr + m.size))).collect(),
        };
        kernel::load_and_enter(&modules, ram, payload_cmdline, shim_end(), kernel::SelfTest::from_options(&shim_opts))
    }

    /// Rust entry from entry.S, in long mode on the boot stack (interrupts off).
    #[no_mangle]
    extern "C" fn pvh_main(start_info_paddr: u64) -> ! {
        let boot_tsc = cpu::rdtsc();
        let xen_base = hypercall::xen_cpuid_base();
        let mode = if xen_base.is_some() { Platform::Pvh } else { Platform::Native };
        kernel::set_platform(mode);
        match mode {
            Platform::Pvh => console::init_xen_debug_port(),
            _ => console::init_serial(),
        }
        tables::init_descriptor_tables(0, tables::boot_vcpu_stacks());
        init_heap();
        let (events, _) = mode.events_disable();

        let boot = start_info::parse_hvm_start_info(&IdentityMap, start_info_paddr).unwrap_or_else(|e| fatal::fatal("bad start-of-day data", e));
        let (shim_opts, payload_cmdline) = start_info::split_cmdline(&boot.cmdline);
        console::init_logger(log_level(&shim_opts));
        platform::block::set_options(&shim_opts);
        platform::xen::set_options(&shim_opts);
        platform::memory::set_options(&shim_opts);

        match xen_base {
            Some(base) => platform::pvh::init(base, &events).unwrap_or_else(|e| fatal::fatal("PVH bring-up", e)),
            None => platform::native::init(boot_tsc),
        }
        log::info!(
            "xshim {} booted ({}), hvm_start_info v{}, {} module(s), {} memory map entries",
            env!("CARGO_PKG_VERSION"),
            mode.name(),
            boot.version,
            boot.modules.len(),
            boot.memmap.len()
        );
        let ram = kernel::RamLayout {
            ram: boot.memmap.iter().filter(|e| e.ty == xshim_shim::xen::abi::start_info::XEN_HVM_MEMMAP_TYPE_RAM).map(|e| Range::new(e.addr, e.addr.saturating_add(e.size))).collect(),
            usable: start_info::ram_ranges(&boot.memmap),
            keep: Vec::new(),
        };
        kernel::load_and_enter(&boot.modules, ram, payload_cmdline, shim_end(), kernel::SelfTest::from_options(&shim_opts))
    }

    /// Rust entry of a secondary vCPU, from entry.S's secondary_start64 on its own entry
    /// stack on vCPU 0's page tables: interrupts off (PVH), or events masked in guest kernel
    /// mode with the trap table and callbacks Xen took from its start state (PV).
    #[no_mangle]
    extern "C" fn secondary_main(vcpu: u64) -> ! {
        let v = vcpu as usize;
        if kernel::platform() == Platform::Pvh {
            tables::init_descriptor_tables(v, crate::hw::smp::secondary_stacks(v));
        }
        kernel::secondary_loop(v)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        console::emergency(format_args!("\nxshim: PANIC: {info}\n"));
        fatal::crash("shim panic")
    }
}
