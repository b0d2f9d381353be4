//! Xen's (and Bochs') debug console, I/O port 0xE9: bytes land in `xl dmesg` for HVM/PVH
//! guests. Lock-free, so the console ring's own error path and the crash path can use it.
//! Only where it exists: PV guests may not do port I/O, and without Xen nobody listens.
use super::cpu::outb;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use xshim_shim::layout::XEN_DEBUG_PORT;

static PRESENT: AtomicBool = AtomicBool::new(false);

/// Under Xen PVH: the port exists.
pub fn enable() {
    PRESENT.store(true, Ordering::Relaxed);
}

pub fn present() -> bool {
    PRESENT.load(Ordering::Relaxed)
}

pub fn write_bytes(bytes: &[u8]) {
    if present() {
        for &b in bytes {
            outb(XEN_DEBUG_PORT, b);
        }
    }
}

/// One line, if the port exists.
pub fn write_line(args: fmt::Arguments) {
    struct E9;
    impl Write for E9 {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            write_bytes(s.as_bytes());
            Ok(())
        }
    }
    let _ = writeln!(E9, "{args}");
}
