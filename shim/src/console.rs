//! The shim's consoles: the 16550 UART when booted without Xen, Xen's debug port (0xE9, lands
//! in `xl dmesg`) and the PV console ring under Xen. Payload output goes to the guest console
//! (UART or ring); log lines also go to the debug port so early boot is visible in `xl dmesg`.
use crate::hw::xen::console_ring::ConsoleRing;
use crate::hw::{cpu, debugcon};
use crate::hw::EventsOff;
use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::SerialPort;
use xshim_shim::layout;

/// 16550 line status register (offset 5), bit 0: a byte is waiting.
const UART_LSR: u16 = 5;
const UART_LSR_DATA_READY: u8 = 1;

pub struct Console {
    serial: Option<SerialPort>,
    debug_port: bool,
    ring: Option<ConsoleRing>,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console { serial: None, debug_port: false, ring: None });

/// Booted without Xen: COM1.
pub fn init_serial() {
    // SAFETY: COM1 is the standard 16550 at 0x3f8 on the PC platform QEMU emulates.
    let mut port = unsafe { SerialPort::new(layout::COM1_PORT) };
    port.init();
    CONSOLE.lock().serial = Some(port);
}

/// Under Xen PVH: port 0xE9 until the ring is up (and for log lines after). PV may not
/// touch I/O ports.
pub fn init_xen_debug_port() {
    debugcon::enable();
    CONSOLE.lock().debug_port = true;
}

/// Payload output goes to this ring from now on. Events must be off: the console lock is
/// also taken from the event handler.
pub fn attach_ring(_events: &EventsOff, ring: ConsoleRing) {
    CONSOLE.lock().ring = Some(ring);
}

/// Runs `f` on the console ring, if there is one.
pub fn with_ring<R>(_events: &EventsOff, f: impl FnOnce(&mut ConsoleRing) -> R) -> Option<R> {
    CONSOLE.lock().ring.as_mut().map(f)
}

/// Waits for the console backend to drain the ring (on the way out; skips if locked).
pub fn flush_ring(timeout_ns: u64) {
    if let Some(mut c) = CONSOLE.try_lock() {
        if let Some(r) = c.ring.as_mut() {
            r.flush(timeout_ns);
        }
    }
}

impl Console {
    fn serial_bytes(&mut self, bytes: &[u8]) {
        if let Some(s) = self.serial.as_mut() {
            for &b in bytes {
                if b == b'\n' {
                    s.send(b'\r');
                }
                s.send(b);
            }
        }
    }

    fn guest_console(&mut self, bytes: &[u8]) {
        self.serial_bytes(bytes);
        match self.ring.as_mut() {
            Some(r) => r.write_all(bytes),
            None if self.debug_port => debugcon::write_bytes(bytes),
            None => {}
        }
    }
}

/// The payload's console output.
pub fn payload_write(bytes: &[u8]) {
    CONSOLE.lock().guest_console(bytes);
}

/// Non-blocking console input.
pub fn read(buf: &mut [u8]) -> usize {
    let mut c = CONSOLE.lock();
    if let Some(r) = c.ring.as_mut() {
        return r.read(buf);
    }
    let mut n = 0;
    if let Some(s) = c.serial.as_mut() {
        while n < buf.len() {
            match s.try_receive() {
                Ok(b) => {
                    buf[n] = b;
                    n += 1;
                }
                Err(_) => break,
            }
        }
    }
    n
}

pub fn input_pending() -> bool {
    let c = CONSOLE.lock();
    if let Some(r) = c.ring.as_ref() {
        return r.input_pending();
    }
    // Line status register, bit 0: data ready.
    c.serial.is_some() && cpu::inb(layout::COM1_PORT + UART_LSR) & UART_LSR_DATA_READY != 0
}

/// The shim's own lines: to the guest console, and copied to Xen's debug port (`xl dmesg`)
/// when `mirror` says so. Before the console ring exists everything goes to the port anyway.
/// Every byte written to the port is a VM exit: the copy is kept for warnings, errors and the
/// crash path (what must survive a broken console ring), not for the info and debug lines
/// that every suspend and resume logs. (Under the lab's emulated SVM a PVH guest
/// triple-faulted on the exit of one such `out` in its resume path; fewer exits, fewer of
/// those chances, and less time in the resume path everywhere.)
struct Sink<'a> {
    console: &'a mut Console,
    mirror: bool,
}
impl Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.console.guest_console(s.as_bytes());
        if self.mirror && self.console.debug_port && self.console.ring.is_some() {
            debugcon::write_bytes(s.as_bytes());
        }
        Ok(())
    }
}

/// Crash path: takes the console even if the crashing code held it.
pub fn emergency(args: fmt::Arguments) {
    if CONSOLE.is_locked() {
        // SAFETY: we are about to crash the domain; the holder was interrupted by the fault
        // on this single vCPU and will never run again.
        unsafe { CONSOLE.force_unlock() };
    }
    let mut c = CONSOLE.lock();
    let _ = Sink { console: &mut c, mirror: true }.write_fmt(args);
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        // Only the shim's own records: libraries (goblin) log their parsing at debug level.
        m.level() <= log::max_level() && m.target().starts_with("xshim")
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let us = crate::clock::now_ns() / 1000;
        let mut c = CONSOLE.lock();
        let mirror = r.level() <= log::Level::Warn;
        let _ = writeln!(Sink { console: &mut c, mirror }, "[{:5}.{:06}] xshim: {}: {}", us / 1_000_000, us % 1_000_000, r.level().as_str().to_ascii_lowercase(), r.args());
    }
    fn flush(&self) {}
}

/// Installs the logger; `level` from `xshim.log=` on the command line.
pub fn init_logger(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
