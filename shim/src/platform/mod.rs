//! The two ways the shim can find itself booted — natively under QEMU, or as a Xen PVH
//! guest — behind one small interface that the payload services use.
pub mod clock;
pub mod native;
pub mod xen;

use core::sync::atomic::{AtomicBool, Ordering};

static ON_XEN: AtomicBool = AtomicBool::new(false);
static XEN_PV: AtomicBool = AtomicBool::new(false);

/// Classic PV: the shim runs in ring 3 and may not use cli/sti/hlt or port I/O.
pub fn is_pv() -> bool {
    XEN_PV.load(Ordering::Relaxed)
}

pub fn set_pv() {
    XEN_PV.store(true, Ordering::Relaxed);
}

/// Turns event delivery off (interrupts; PV: the vCPU's upcall mask); returns whether it was on.
pub fn events_disable() -> bool {
    if is_pv() {
        !xen::events::set_upcall_mask(true)
    } else {
        let were = x86_64::instructions::interrupts::are_enabled();
        x86_64::instructions::interrupts::disable();
        were
    }
}

/// Turns event delivery on; PV: delivers what arrived while it was off.
pub fn events_enable() {
    if is_pv() {
        xen::events::pv_unmask_and_deliver();
    } else {
        x86_64::instructions::interrupts::enable();
    }
}

/// Sleeps until an event or the armed timer, with events off on entry and exit: `sti; hlt`
/// (PVH, native), or SCHEDOP_block, which unmasks atomically, then the upcall runs (PV).
pub fn idle() {
    if is_pv() {
        xen::pv_idle();
    } else {
        crate::arch::wait_for_interrupt();
    }
}

pub fn on_xen() -> bool {
    ON_XEN.load(Ordering::Relaxed)
}

pub fn set_on_xen() {
    ON_XEN.store(true, Ordering::Relaxed);
}

/// The Xen event upcall (HVM callback vector).
pub fn on_xen_upcall() {
    xen::on_upcall();
}

pub fn on_lapic_timer() {
    native::on_timer();
}

/// Wakes the vCPU at monotonic time `deadline_ns` (or earlier: callers loop).
pub fn arm_timer(deadline_ns: u64) {
    let now = clock::now_ns();
    if on_xen() {
        if deadline_ns != u64::MAX {
            xen::arm_timer(clock::xen_time_for(deadline_ns));
        }
    } else {
        // No UART interrupt is wired up: wake every 10 ms to look for console input.
        native::arm_timer_in(deadline_ns.saturating_sub(now).min(10_000_000));
    }
}

pub fn wallclock() -> (u64, u32) {
    if on_xen() {
        xen::time::wallclock()
    } else {
        native::wallclock()
    }
}

/// How the guest ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Poweroff(u8),
    Reboot,
    Crash,
}

pub fn exit(how: Exit) -> ! {
    if on_xen() {
        xen::exit(how)
    }
    match how {
        Exit::Poweroff(code) => native::exit_qemu(code.min(126)),
        Exit::Reboot => native::reboot(),
        Exit::Crash => native::exit_qemu(0x7f),
    }
}

/// Crashes the domain (Xen: SHUTDOWN_crash, so `on_crash` applies) after a fatal error.
pub fn crash(why: &str) -> ! {
    crate::console::emergency(format_args!("xshim: crashing the domain: {why}\n"));
    exit(Exit::Crash)
}
