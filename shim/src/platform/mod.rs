//! The three ways the shim finds itself booted — natively under QEMU, as a Xen PVH guest, or
//! as a classic 64-bit Xen PV guest — as one value, `Platform`, chosen once at entry and
//! passed up; what differs between them is a `match` here, or a type (the suspend steps).
//! Nothing here decides to crash: errors go to the kernel.
pub mod block;
pub mod devices;
pub mod memory;
pub mod native;
pub mod net;
pub mod pv;
pub mod pvh;
pub mod xen;

use crate::hw::{cpu, paging, tables, xen::shared_info, EventsOff};
use xshim_shim::address_space::AddressSpace;
use xshim_payload::abi::Features;
use xshim_shim::layout::timeouts::NATIVE_INPUT_POLL_NS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// No Xen (QEMU's direct PVH boot): 16550, LAPIC timer, CMOS RTC.
    Native,
    /// Xen PVH: ring 0 in an HVM container, auto-translated physmap.
    Pvh,
    /// Xen classic 64-bit PV: ring 3, machine frames, hypercalls for page tables.
    Pv,
}

/// What keeps the payload away from the shim, as `protect` set it up.
#[derive(Debug, Clone, Copy)]
pub struct Protection {
    /// The payload runs in user mode (ring 3; PV: Xen's guest user mode).
    pub user_mode: bool,
    /// The shim's text and read-only data are read-only.
    pub read_only_text: bool,
    /// Data is no-execute.
    pub no_execute: bool,
    /// The shim cannot execute user pages (SMEP).
    pub smep: bool,
}

impl core::fmt::Display for Protection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let on = |b: bool| if b { "on" } else { "off" };
        write!(
            f,
            "payload in {} mode, shim text read-only {}, no-execute {}, SMEP {}",
            if self.user_mode { "user" } else { "kernel" },
            on(self.read_only_text),
            on(self.no_execute),
            on(self.smep)
        )
    }
}

/// How the guest ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Poweroff(u8),
    Reboot,
    Crash,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Native => "no Xen: QEMU",
            Platform::Pvh => "Xen PVH",
            Platform::Pv => "Xen PV",
        }
    }

    /// What the payload is told it has.
    pub fn features(self) -> Features {
        match self {
            Platform::Native => Features::CONSOLE_INPUT | Features::WALLCLOCK | Features::MEMORY | Features::VCPUS,
            Platform::Pvh | Platform::Pv => Features::XEN | Features::SAVE_RESTORE | Features::CONSOLE_INPUT | Features::WALLCLOCK | Features::BLOCK | Features::NET | Features::MEMORY | Features::VCPUS,
        }
    }

    /// Bytes of RAM the platform's devices would take for themselves (page-aligned), asked
    /// once the payload is placed: until then only the shim's own memory is known to be free.
    pub fn device_ram_wanted(self) -> u64 {
        match self {
            Platform::Native => 0,
            Platform::Pvh | Platform::Pv => xen::ram_wanted(),
        }
    }

    /// The RAM `device_ram_wanted` asked for, at `base`: mapped, out of the payload's memory
    /// map, never given back to Xen.
    pub fn give_device_ram(self, base: u64) {
        match self {
            Platform::Native => {}
            Platform::Pvh | Platform::Pv => xen::give_ram(base),
        }
    }

    /// The vCPUs the guest has (Xen: `vcpus=`), before any but the first is brought up.
    /// Under QEMU without Xen the shim runs one (no INIT/SIPI bring-up).
    pub fn vcpus_available(self) -> usize {
        match self {
            Platform::Pvh | Platform::Pv => xen::vcpus_available(),
            Platform::Native => 1,
        }
    }

    /// Brings up vCPUs 1 .. `n` (their stacks set aside); returns how many run in all.
    pub fn start_secondaries(self, n: usize) -> usize {
        match self {
            Platform::Pvh | Platform::Pv if n > 1 => xen::start_secondaries(self, n),
            _ => 1,
        }
    }

    /// Sends vCPU `v` its IPI (it parks if asked, its sleep ends).
    pub fn kick(self, v: usize) {
        if self != Platform::Native {
            xen::kick(v);
        }
    }

    /// Turns event delivery off (interrupts; PV: the vCPU's upcall mask). Returns the token
    /// that proves it, and whether delivery was on before.
    pub fn events_disable(self) -> (EventsOff, bool) {
        let were_on = match self {
            Platform::Pv => !shared_info::set_upcall_mask(true),
            Platform::Pvh | Platform::Native => {
                let on = cpu::interrupts_enabled();
                cpu::disable_interrupts();
                on
            }
        };
        // SAFETY: delivery was just turned off, and stays off until `events_enable` takes
        // the token back.
        (unsafe { EventsOff::assume() }, were_on)
    }

    /// Turns event delivery on again; PV: delivers what arrived while it was off.
    pub fn events_enable(self, token: EventsOff) {
        let _ = token;
        match self {
            Platform::Pv => shared_info::pv_unmask_and_deliver(),
            Platform::Pvh | Platform::Native => cpu::enable_interrupts(),
        }
    }

    /// Sleeps until an event or the armed timer, with events off on entry and exit: `sti;
    /// hlt` (PVH, native), or SCHEDOP_block, which unmasks atomically; then the upcall runs (PV).
    pub fn idle(self, _events: &EventsOff) {
        match self {
            Platform::Pv => xen::pv_idle(),
            Platform::Pvh | Platform::Native => cpu::wait_for_interrupt(),
        }
    }

    /// Wakes the vCPU at monotonic time `deadline_ns` (or earlier: callers loop).
    pub fn arm_timer(self, deadline_ns: u64) {
        match self {
            Platform::Pvh | Platform::Pv => {
                if deadline_ns != u64::MAX {
                    xen::arm_timer(crate::clock::xen_time_for(deadline_ns));
                }
            }
            // No UART interrupt is wired up: wake regularly to look for console input.
            Platform::Native => native::arm_timer_in(deadline_ns.saturating_sub(crate::clock::now_ns()).min(NATIVE_INPUT_POLL_NS)),
        }
    }

    /// (seconds, nanoseconds) since the Unix epoch.
    pub fn wallclock(self) -> (u64, u32) {
        match self {
            Platform::Pvh | Platform::Pv => crate::hw::xen::time::wallclock(),
            Platform::Native => native::wallclock(),
        }
    }

    /// The address of the last page fault: CR2, or (PV, ring 3) what Xen put in vcpu_info.
    pub fn fault_address(self) -> u64 {
        match self {
            Platform::Pv => shared_info::pv_cr2(),
            Platform::Pvh | Platform::Native => cpu::cr2(),
        }
    }

    /// The address the payload calls for the shim's services (BootInfo.call): the user-mode
    /// stub that enters the shim by `syscall` (to the CPU's LSTAR, or Xen's syscall callback).
    pub fn payload_call_gate(self) -> u64 {
        tables::user_call_gate()
    }

    /// Applies `space` to the page tables: the payload's pages user-accessible, the shim's
    /// supervisor-only, its text read-only and its data no-execute, the guard page unmapped.
    /// `image` is the shim's image and bss, `[start, end)`.
    pub fn protect(self, space: &AddressSpace, image: (u64, u64)) -> Result<Protection, alloc::string::String> {
        match self {
            Platform::Pvh | Platform::Native => {
                let p = paging::install(space, memory::demand())?;
                Ok(Protection { user_mode: true, read_only_text: true, no_execute: p.no_execute, smep: p.smep })
            }
            Platform::Pv => {
                let p = pv::protect(space, image).map_err(|e| alloc::format!("{e}"))?;
                // Under PV the payload's user-mode table does not map the shim at all; Xen
                // keeps its guest kernel from executing user pages itself (SMEP/SMAP).
                Ok(Protection { user_mode: true, read_only_text: true, no_execute: p.no_execute, smep: false })
            }
        }
    }

    /// Enters the payload on its stack with events on.
    /// # Safety
    /// `entry` must be the loaded payload's entry, `stack_top` the top of its stack and
    /// `boot_info` its BootInfo, all mapped.
    pub unsafe fn enter_payload(self, entry: u64, stack_top: u64, boot_info: u64) -> ! {
        match self {
            // Events stay masked until Xen's iret to user mode unmasks them.
            // SAFETY: the caller vouches for the arguments; `protect` set up user mode.
            Platform::Pv => unsafe { tables::enter_payload_xen_pv_user(entry, stack_top, boot_info) },
            // SAFETY: the caller vouches for the arguments.
            Platform::Pvh | Platform::Native => unsafe { tables::enter_payload_ring3(entry, stack_top, boot_info) },
        }
    }

    /// Ends the guest: Xen's SCHEDOP_shutdown (so `on_poweroff`/`on_crash` apply), or QEMU's
    /// exit device.
    pub fn exit(self, how: Exit) -> ! {
        match self {
            Platform::Pvh | Platform::Pv => xen::exit(self, how),
            Platform::Native => native::exit(how),
        }
    }
}
